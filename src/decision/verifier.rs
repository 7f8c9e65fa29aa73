//! The match verifier: a knowledge base's own confidence model.
//!
//! A logistic regression over the retrieval evidence (scores of both sides
//! and their agreement, lexical overlap, length ratio, product, number and
//! negation mismatches), one model per script group, with the answer and
//! clarify thresholds chosen on cross-validated predictions for the
//! operator's target precision. Fitting is pure; what the samples are (the
//! knowledge base's own phrasings held out, labelled traffic) is decided by
//! the caller (`kb_calibration`).

use serde::{Deserialize, Serialize};

/// Which model judges a message: Chinese script or any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptGroup {
    Chinese,
    Other,
}

impl ScriptGroup {
    pub const ALL: [ScriptGroup; 2] = [ScriptGroup::Chinese, ScriptGroup::Other];

    /// From a locale tag (`zh`, `zh-Hant`, `en`, `ja`…).
    pub fn of_locale(locale: &str) -> ScriptGroup {
        if locale.to_ascii_lowercase().starts_with("zh") { ScriptGroup::Chinese } else { ScriptGroup::Other }
    }
}

/// One labelled observation: the evidence for a top candidate and whether
/// that candidate was right.
#[derive(Debug, Clone)]
pub struct Sample {
    pub evidence: Vec<f32>,
    pub correct: bool,
    /// A right FAQ was among the first three candidates (a clarify helps).
    pub right_in_top3: bool,
    /// The question had a right FAQ at all (coverage is counted over these).
    pub answerable: bool,
    /// Cross-validation fold (samples of one FAQ share a fold).
    pub fold: usize,
    /// Weight in the fit (held-out FAQs count less than answerable questions).
    pub weight: f32,
}

/// Standardised logistic regression with a light L2 penalty.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Logistic {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub weights: Vec<f32>,
    pub bias: f32,
}

const L2: f64 = 1e-3;
const ITERATIONS: usize = 400;

impl Logistic {
    pub fn probability(&self, x: &[f32]) -> f32 {
        let z: f32 = self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| w * (v - m) / s)
                .sum::<f32>();
        1.0 / (1.0 + (-z).exp())
    }

    /// Fits by Newton's method (a handful of features, a few thousand
    /// samples: each step is one pass and a small linear solve).
    pub fn fit(samples: &[&Sample]) -> Logistic {
        let d = samples.first().map_or(0, |s| s.evidence.len());
        let total: f64 = samples.iter().map(|s| s.weight as f64).sum::<f64>().max(1e-9);
        let mut mean = vec![0f64; d];
        for s in samples {
            for (m, v) in mean.iter_mut().zip(&s.evidence) {
                *m += s.weight as f64 * *v as f64 / total;
            }
        }
        let mut scale = vec![0f64; d];
        for s in samples {
            for ((q, v), m) in scale.iter_mut().zip(&s.evidence).zip(&mean) {
                *q += s.weight as f64 * (*v as f64 - m).powi(2) / total;
            }
        }
        let scale: Vec<f64> = scale.into_iter().map(|v| if v.sqrt() > 1e-6 { v.sqrt() } else { 1.0 }).collect();
        let rows: Vec<Vec<f64>> = samples
            .iter()
            .map(|s| {
                let mut r: Vec<f64> =
                    s.evidence.iter().zip(&mean).zip(&scale).map(|((v, m), q)| (*v as f64 - m) / q).collect();
                r.push(1.0);
                r
            })
            .collect();
        let n = d + 1;
        let mut w = vec![0f64; n];
        for _ in 0..ITERATIONS {
            let mut grad = vec![0f64; n];
            let mut hess = vec![0f64; n * n];
            for (r, s) in rows.iter().zip(samples) {
                let z: f64 = r.iter().zip(&w).map(|(a, b)| a * b).sum();
                let p = 1.0 / (1.0 + (-z).exp());
                let c = s.weight as f64 / total;
                let err = p - f64::from(u8::from(s.correct));
                for i in 0..n {
                    grad[i] += c * err * r[i];
                    for j in 0..n {
                        hess[i * n + j] += c * p * (1.0 - p) * r[i] * r[j];
                    }
                }
            }
            for i in 0..d {
                grad[i] += L2 * w[i];
                hess[i * n + i] += L2;
            }
            hess[n * n - 1] += 1e-9;
            let Some(step) = solve(&mut hess, &mut grad, n) else { break };
            let mut moved = 0f64;
            for i in 0..n {
                w[i] -= step[i];
                moved = moved.max(step[i].abs());
            }
            if moved < 1e-7 {
                break;
            }
        }
        Logistic {
            mean: mean.iter().map(|&v| v as f32).collect(),
            scale: scale.iter().map(|&v| v as f32).collect(),
            weights: w[..d].iter().map(|&v| v as f32).collect(),
            bias: w[d] as f32,
        }
    }
}

/// Solves `a · x = b` (Gaussian elimination with partial pivoting).
fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> Option<Vec<f64>> {
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-12 {
            return None;
        }
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0f64; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// A fitted verifier for one script group and what it is expected to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupVerifier {
    pub model: Logistic,
    /// Confidence needed to answer automatically (reaches the target precision
    /// on cross-validated samples).
    pub answer_threshold: f32,
    /// Below the answer threshold but at least this: offer choices.
    pub clarify_threshold: f32,
    /// Cross-validated precision of automatic answers at the threshold.
    pub expected_precision: f32,
    /// Share of answerable samples answered right at the threshold.
    pub expected_coverage: f32,
    pub samples: usize,
    pub answerable: usize,
    /// Of the samples, the store's own labelled turns.
    #[serde(default)]
    pub history_samples: usize,
    /// The knowledge base's phrasings that another entry wins when held
    /// out, the surest first (what holds the threshold up).
    #[serde(default)]
    pub confusions: Vec<Confusion>,
}

/// A phrasing of one entry that, held out, another entry wins with this
/// confidence: the two overlap, and an operator can reword or merge them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Confusion {
    pub phrasing: String,
    pub faq_id: String,
    pub answered_by: String,
    pub confidence: f32,
}

/// A knowledge base's verifier: one model per script group; a group with
/// too few samples has none and the configured calibration applies to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KbCalibration {
    /// What it was fitted for (knowledge base, model, retrieval settings,
    /// target), so a stored one is reused only for that.
    pub key: String,
    pub target_precision: f32,
    pub chinese: Option<GroupVerifier>,
    pub other: Option<GroupVerifier>,
}

/// What `stats` shows of the calibration, per script group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupSummary {
    #[schema(value_type = String)]
    pub group: ScriptGroup,
    /// The knowledge base has its own verifier for this group (else the
    /// configured calibration and thresholds apply).
    pub fitted: bool,
    pub target_precision: f32,
    pub answer_threshold: f32,
    pub clarify_threshold: f32,
    /// Cross-validated on the knowledge base's own phrasings (fitted groups only).
    pub expected_precision: Option<f32>,
    /// Share of answerable questions expected to be answered right.
    pub expected_coverage: Option<f32>,
    pub samples: usize,
    /// Of the samples, the store's own labelled turns (ratings, agents' verdicts on drafts).
    pub history_samples: usize,
    /// Phrasings another entry wins, surest first (fitted groups only; at most 20).
    pub confusions: Vec<Confusion>,
}

impl KbCalibration {
    /// Per group: the fitted verifier's figures, or the configured thresholds.
    pub fn summary(&self, cfg: &super::DecisionConfig) -> Vec<GroupSummary> {
        ScriptGroup::ALL
            .into_iter()
            .map(|group| match self.group(group) {
                Some(v) => GroupSummary {
                    group,
                    fitted: true,
                    target_precision: self.target_precision,
                    answer_threshold: v.answer_threshold,
                    clarify_threshold: v.clarify_threshold,
                    expected_precision: Some(v.expected_precision),
                    expected_coverage: Some(v.expected_coverage),
                    samples: v.samples,
                    history_samples: v.history_samples,
                    confusions: v.confusions.clone(),
                },
                None => GroupSummary {
                    group,
                    fitted: false,
                    target_precision: cfg.target_precision,
                    answer_threshold: cfg.answer_threshold,
                    clarify_threshold: cfg.clarify_threshold,
                    expected_precision: None,
                    expected_coverage: None,
                    samples: 0,
                    history_samples: 0,
                    confusions: Vec::new(),
                },
            })
            .collect()
    }

    pub fn group(&self, group: ScriptGroup) -> Option<&GroupVerifier> {
        match group {
            ScriptGroup::Chinese => self.chinese.as_ref(),
            ScriptGroup::Other => self.other.as_ref(),
        }
    }
}

/// Fewer answerable samples than this (or as few unanswerable ones): no
/// model of its own, the configured calibration applies.
pub const MIN_SAMPLES: usize = 30;
const FOLDS: usize = 5;

/// Share of clarify turns whose choices should contain a right FAQ.
const CLARIFY_HIT_RATE: f64 = 0.5;

impl GroupVerifier {
    /// Fits on `samples`; thresholds from 5-fold cross-validated
    /// probabilities so that the answered share reaches `target` precision.
    pub fn fit(samples: &[Sample], target: f64) -> Option<GroupVerifier> {
        let answerable = samples.iter().filter(|s| s.answerable).count();
        let right = samples.iter().filter(|s| s.correct).count();
        if right < MIN_SAMPLES || samples.len() - right < MIN_SAMPLES {
            return None;
        }
        let mut held_out: Vec<(f32, &Sample)> = Vec::with_capacity(samples.len());
        for fold in 0..FOLDS {
            let train: Vec<&Sample> = samples.iter().filter(|s| s.fold % FOLDS != fold).collect();
            let model = Logistic::fit(&train);
            held_out
                .extend(samples.iter().filter(|s| s.fold % FOLDS == fold).map(|s| (model.probability(&s.evidence), s)));
        }
        held_out.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (answer, precision, coverage) = operating_point(&held_out, target, answerable);
        let clarify = clarify_point(&held_out).min(answer);
        let all: Vec<&Sample> = samples.iter().collect();
        Some(GroupVerifier {
            model: Logistic::fit(&all),
            answer_threshold: answer,
            clarify_threshold: clarify,
            expected_precision: precision,
            expected_coverage: coverage,
            samples: samples.len(),
            answerable,
            history_samples: 0,
            confusions: Vec::new(),
        })
    }

    pub fn confidence(&self, evidence: &[f32]) -> f32 {
        self.model.probability(evidence)
    }
}

/// An answer threshold no probability reaches.
const NEVER: f32 = 1.001;

/// The lowest threshold whose answered share (weighted) is at least
/// `target` precise: (threshold, precision, coverage of answerable samples).
/// Nothing qualifies: a threshold above every probability.
pub fn operating_point(scored: &[(f32, &Sample)], target: f64, answerable: usize) -> (f32, f32, f32) {
    let (mut best, mut right, mut total) = ((1.0f32, 1.0f32, 0.0f32), 0f64, 0f64);
    let mut right_count = 0usize;
    for (i, (p, s)) in scored.iter().enumerate() {
        total += s.weight as f64;
        if s.correct {
            right += s.weight as f64;
            right_count += 1;
        }
        // Ties: only cut between different probabilities.
        if scored.get(i + 1).is_some_and(|(next, _)| next == p) {
            continue;
        }
        if right / total >= target {
            best = (*p, (right / total) as f32, right_count as f32 / answerable.max(1) as f32);
        }
    }
    if best.2 == 0.0 {
        // No probability can reach it: this group is never answered automatically.
        best.0 = NEVER;
    }
    best
}

fn clarify_point(scored: &[(f32, &Sample)]) -> f32 {
    let mut hits = 0usize;
    let mut out = 1.0f32;
    for (i, (p, s)) in scored.iter().enumerate() {
        hits += usize::from(s.right_in_top3);
        if hits as f64 / (i + 1) as f64 >= CLARIFY_HIT_RATE {
            out = *p;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(x: f32, y: f32, correct: bool, fold: usize) -> Sample {
        Sample { evidence: vec![x, y], correct, right_in_top3: correct, answerable: true, fold, weight: 1.0 }
    }

    #[test]
    fn fit_learns_which_evidence_matters_and_thresholds_reach_the_target() {
        // Correct when x is high; y is noise.
        let mut samples = Vec::new();
        for i in 0..400 {
            let x = (i % 100) as f32 / 100.0;
            let y = ((i * 37) % 100) as f32 / 100.0;
            samples.push(sample(x, y, x > 0.5 || (x > 0.4 && i % 3 == 0), i));
        }
        let v = GroupVerifier::fit(&samples, 0.95).expect("enough samples");
        assert!(v.model.weights[0].abs() > 5.0 * v.model.weights[1].abs(), "{:?}", v.model);
        assert!(v.confidence(&[0.9, 0.1]) > 0.9 && v.confidence(&[0.1, 0.9]) < 0.1);
        assert!(v.expected_precision >= 0.95, "{v:?}");
        assert!(v.expected_coverage > 0.5, "{v:?}");
        let answered: Vec<&Sample> =
            samples.iter().filter(|s| v.confidence(&s.evidence) >= v.answer_threshold).collect();
        let right = answered.iter().filter(|s| s.correct).count();
        assert!(right as f64 / answered.len() as f64 >= 0.9, "{right}/{}", answered.len());
    }

    #[test]
    fn too_few_samples_fit_nothing() {
        let samples: Vec<Sample> = (0..20).map(|i| sample(i as f32, 0.0, i > 10, i)).collect();
        assert!(GroupVerifier::fit(&samples, 0.95).is_none());
    }

    #[test]
    fn locales_map_to_script_groups() {
        assert_eq!(ScriptGroup::of_locale("zh"), ScriptGroup::Chinese);
        assert_eq!(ScriptGroup::of_locale("zh-Hant"), ScriptGroup::Chinese);
        assert_eq!(ScriptGroup::of_locale("en-US"), ScriptGroup::Other);
        assert_eq!(ScriptGroup::of_locale("ja"), ScriptGroup::Other);
    }
}
