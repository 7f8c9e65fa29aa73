//! Answer-quality evaluation on question-matching data sets
//! (`../shared/eval/*-dev`): Recall@1/@5 and MRR@10 on `pos` queries, and the
//! auto-answer precision / coverage trade-off over every query.
//! [`conversations`]: labelled shopper messages (with product page and
//! earlier messages) run through the real answering service instead.

pub mod conversations;

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::decision::{Calibration, Confidence, DecisionConfig, KbCalibration, ScriptGroup};
use crate::index::Filter;
use crate::kb::{KnowledgeBase, Problem};
use crate::retrieval::{Candidate, Features, Fusion, Mode, ProductContext, RetrievalError, Retriever};
use crate::text::detect_locale;

/// One labelled query. `kind` is `pos` (gold FAQs given), `oos_in` (in
/// domain, no FAQ matches) or `oos_out` (off topic).
#[derive(Debug, Clone, Deserialize)]
pub struct EvalQuery {
    pub query: String,
    #[serde(default)]
    pub gold: Vec<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl EvalQuery {
    pub fn is_pos(&self) -> bool {
        self.kind == "pos" && !self.gold.is_empty()
    }
}

pub fn load_queries(path: &Path) -> Result<Vec<EvalQuery>, Problem> {
    load_jsonl(path)
}

/// One `T` per non-blank line; the first bad line is the error.
fn load_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, Problem> {
    let text = std::fs::read_to_string(path).map_err(|e| Problem::new(path, None, e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Problem::new(path, Some(i + 1), format!("invalid query line: {e}")))
        })
        .collect()
}

/// Best auto-answer coverage reachable at a precision target.
#[derive(Debug, Clone, Serialize)]
pub struct OperatingPoint {
    pub target_precision: f64,
    /// Lowest confidence that is still answered automatically.
    pub threshold: f32,
    pub precision: f64,
    /// Share of all queries answered automatically.
    pub auto_answer_rate: f64,
    /// Share of `pos` queries answered automatically and correctly.
    pub pos_coverage: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub mode: String,
    pub faqs: usize,
    pub queries: usize,
    pub pos_queries: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mrr_at_10: f64,
    /// On the raw ranking score of the mode.
    pub operating_points: Vec<OperatingPoint>,
    /// Hybrid only: auto-answer precision / coverage over the calibrated
    /// confidence the decision uses, at fixed thresholds.
    pub decision_curve: Vec<CurvePoint>,
    /// Hybrid only: what the decision answers automatically, judged as the
    /// service judges (the knowledge base's own verifier for the query's
    /// script group at its threshold, else the configured calibration).
    pub operating_point: Option<DecisionPoint>,
}

/// The decision's own operating point on a labelled set.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionPoint {
    /// The verifier's target (what its threshold was chosen for).
    pub target_precision: f32,
    pub answered: usize,
    pub precision: f64,
    /// Share of all queries answered automatically.
    pub auto_answer_rate: f64,
    /// Share of `pos` queries answered automatically and correctly.
    pub pos_coverage: f64,
}

/// Confidence thresholds reported in the decision curve.
pub const CURVE_THRESHOLDS: [f32; 8] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];

/// One query's outcome, kept for the precision/coverage sweep.
struct Outcome {
    confidence: f32,
    correct: bool,
}

/// Runs every query through `retriever` in `mode`; `tick` is called once per
/// query. `cfg`'s calibration turns hybrid scores into the decision curve's
/// confidence; `verifier` (the knowledge base's own) and `cfg` give the
/// decision's operating point.
pub fn evaluate(
    retriever: &Retriever,
    mode: Mode,
    queries: &[EvalQuery],
    cfg: &DecisionConfig,
    verifier: &KbCalibration,
    tick: impl Fn(),
) -> Result<EvalReport, RetrievalError> {
    // Each query's embedding is kept for the operating point's evidence (a
    // second embedding would double the model work of a large set).
    let (mut vectors, mut runs) = (Vec::with_capacity(queries.len()), Vec::with_capacity(queries.len()));
    for q in queries {
        let vector = retriever.query_vector(&q.query, mode)?;
        runs.push(retriever.search_with(&q.query, vector.as_deref(), &Filter::default(), 10, mode, &|_| false)?);
        vectors.push(vector);
        tick();
    }
    let mut report = report(retriever, mode.name(), queries, &runs);
    if mode == Mode::Hybrid {
        let samples: Vec<DecisionSample> =
            queries.iter().zip(&runs).filter_map(|(q, hits)| sample(retriever, q, hits)).collect();
        report.decision_curve = decision_curve(&samples, &cfg.calibration, &CURVE_THRESHOLDS);
        report.operating_point = Some(decision_point(retriever, queries, &runs, &vectors, cfg, verifier));
    }
    Ok(report)
}

/// Which queries the decision would answer automatically (no message
/// cleaning or product pages here: plain question-matching sets).
fn decision_point(
    retriever: &Retriever,
    queries: &[EvalQuery],
    runs: &[Vec<Candidate>],
    vectors: &[Option<Arc<[f32]>>],
    cfg: &DecisionConfig,
    verifier: &KbCalibration,
) -> DecisionPoint {
    let kb = retriever.kb();
    let (mut answered, mut right, mut pos) = (0usize, 0usize, 0usize);
    for ((q, hits), vector) in queries.iter().zip(runs).zip(vectors) {
        pos += usize::from(q.is_pos());
        let language = detect_locale(&q.query);
        let group = verifier.group(ScriptGroup::of_locale(language));
        let evidence = retriever.evidence(&q.query, vector.as_deref(), hits, &ProductContext::default(), language);
        let judged = Confidence::judge(group, evidence.as_ref().map(|e| &e[..]), hits, cfg);
        if hits.is_empty() || judged.value < judged.answer_at {
            continue;
        }
        answered += 1;
        right += usize::from(q.is_pos() && q.gold.contains(&kb.faqs[hits[0].faq].id));
    }
    let ratio = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    DecisionPoint {
        target_precision: verifier.target_precision,
        answered,
        precision: if answered == 0 { 1.0 } else { ratio(right, answered) },
        auto_answer_rate: ratio(answered, queries.len()),
        pos_coverage: ratio(right, pos),
    }
}

/// Metrics of ranked results `runs[i]` for `queries[i]`.
fn report(retriever: &Retriever, mode: &str, queries: &[EvalQuery], runs: &[Vec<Candidate>]) -> EvalReport {
    let kb = retriever.kb();
    let (mut r1, mut r5, mut rr, mut pos) = (0usize, 0usize, 0f64, 0usize);
    let mut outcomes = Vec::with_capacity(queries.len());
    for (q, hits) in queries.iter().zip(runs) {
        let rank = hits.iter().position(|c| q.gold.iter().any(|g| *g == kb.faqs[c.faq].id));
        if q.is_pos() {
            pos += 1;
            if let Some(r) = rank {
                r1 += usize::from(r == 0);
                r5 += usize::from(r < 5);
                rr += 1.0 / (r as f64 + 1.0);
            }
        }
        if let Some(top) = hits.first() {
            outcomes.push(Outcome { confidence: top.score, correct: q.is_pos() && rank == Some(0) });
        }
    }
    let ratio = |n: f64, d: usize| if d == 0 { 0.0 } else { n / d as f64 };
    EvalReport {
        mode: mode.to_string(),
        faqs: kb.faqs.len(),
        queries: queries.len(),
        pos_queries: pos,
        recall_at_1: ratio(r1 as f64, pos),
        recall_at_5: ratio(r5 as f64, pos),
        mrr_at_10: ratio(rr, pos),
        operating_points: [0.8, 0.9, 0.95]
            .into_iter()
            .map(|t| operating_point(&mut outcomes, t, queries.len(), pos))
            .collect(),
        decision_curve: Vec::new(),
        operating_point: None,
    }
}

/// A labelled set prepared for fitting: every query's hybrid candidates
/// with both features, and which of them are gold.
pub struct FitSet {
    pub name: String,
    queries: Vec<Vec<(Features, bool)>>,
}

impl FitSet {
    pub fn prepare(
        name: &str,
        retriever: &Retriever,
        queries: &[EvalQuery],
        tick: impl Fn(),
    ) -> Result<FitSet, RetrievalError> {
        let kb = retriever.kb();
        let mut prepared = Vec::new();
        for q in queries.iter().filter(|q| q.is_pos()) {
            let cands = retriever.candidates(&q.query, &Filter::default(), 10, Mode::Hybrid)?;
            let features = cands
                .iter()
                .map(|c| (Features { bm25: c.bm25, cosine: c.cosine }, q.gold.contains(&kb.faqs[c.faq].id)))
                .collect();
            prepared.push(features);
            tick();
        }
        Ok(FitSet { name: name.to_string(), queries: prepared })
    }

    /// MRR@10 of `fusion` on this set.
    pub fn mrr(&self, fusion: &Fusion) -> f64 {
        let mut total = 0.0;
        for cands in &self.queries {
            let Some(gold) = cands.iter().filter(|(_, g)| *g).map(|(f, _)| fusion.score(f)).reduce(f32::max) else {
                continue;
            };
            let above = cands.iter().filter(|(f, g)| !*g && fusion.score(f) > gold).count();
            if above < 10 {
                total += 1.0 / (above as f64 + 1.0);
            }
        }
        total / self.queries.len().max(1) as f64
    }
}

/// Grid search of the fusion weights maximising mean MRR@10 over `sets`.
pub fn fit_fusion(sets: &[FitSet]) -> (Fusion, f64) {
    let mut best = (Fusion::default(), f64::NEG_INFINITY);
    for w in (0..=30).map(|i| i as f32 * 0.0005) {
        for k in [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 10_000.0] {
            let fusion = Fusion { bm25_weight: w, bm25_saturation: k, ..Fusion::default() };
            let mean = sets.iter().map(|s| s.mrr(&fusion)).sum::<f64>() / sets.len().max(1) as f64;
            if mean > best.1 + 1e-9 {
                best = (fusion, mean);
            }
        }
    }
    best
}

/// Sweeps the confidence threshold from high to low and keeps the lowest one
/// whose precision still meets `target`.
fn operating_point(outcomes: &mut [Outcome], target: f64, total: usize, pos: usize) -> OperatingPoint {
    outcomes.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut best = OperatingPoint {
        target_precision: target,
        threshold: f32::INFINITY,
        precision: 1.0,
        auto_answer_rate: 0.0,
        pos_coverage: 0.0,
    };
    let mut correct = 0usize;
    for (i, o) in outcomes.iter().enumerate() {
        correct += usize::from(o.correct);
        let answered = i + 1;
        // Only cut between distinct confidences: ties are answered together.
        if outcomes.get(i + 1).is_some_and(|n| n.confidence == o.confidence) {
            continue;
        }
        let precision = correct as f64 / answered as f64;
        if precision >= target {
            best = OperatingPoint {
                target_precision: target,
                threshold: o.confidence,
                precision,
                auto_answer_rate: answered as f64 / total.max(1) as f64,
                pos_coverage: correct as f64 / pos.max(1) as f64,
            };
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::{Outcome, operating_point};

    #[test]
    fn operating_point_keeps_lowest_threshold_meeting_target() {
        let mut o = vec![
            Outcome { confidence: 0.9, correct: true },
            Outcome { confidence: 0.8, correct: true },
            Outcome { confidence: 0.7, correct: false },
            Outcome { confidence: 0.6, correct: true },
            Outcome { confidence: 0.5, correct: false },
        ];
        let p = operating_point(&mut o, 0.75, 6, 4);
        assert_eq!(p.threshold, 0.6);
        assert!((p.precision - 0.75).abs() < 1e-9);
        assert!((p.pos_coverage - 0.75).abs() < 1e-9);
        let strict = operating_point(&mut o, 1.0, 6, 4);
        assert_eq!(strict.threshold, 0.8);
    }
}

/// One query's top-of-ranking facts for calibrating the decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionSample {
    pub top: f32,
    pub margin: f32,
    pub correct: bool,
    pub pos: bool,
    /// A gold FAQ is among the first three (a clarify would have helped).
    pub gold_in_top3: bool,
}

pub fn decision_samples(
    retriever: &Retriever,
    queries: &[EvalQuery],
    tick: impl Fn(),
) -> Result<Vec<DecisionSample>, RetrievalError> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let hits = retriever.search_mode(&q.query, &Filter::default(), 5, Mode::Hybrid)?;
        tick();
        out.extend(sample(retriever, q, &hits));
    }
    Ok(out)
}

fn sample(retriever: &Retriever, q: &EvalQuery, hits: &[Candidate]) -> Option<DecisionSample> {
    let kb = retriever.kb();
    let top = hits.first()?;
    let is_gold = |c: &Candidate| q.gold.contains(&kb.faqs[c.faq].id);
    Some(DecisionSample {
        top: top.score,
        margin: hits.get(1).map_or(top.score, |s| top.score - s.score),
        correct: q.is_pos() && is_gold(top),
        pos: q.is_pos(),
        gold_in_top3: q.is_pos() && hits.iter().take(3).any(is_gold),
    })
}

/// Auto-answer quality if everything at or above `threshold` is answered.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub threshold: f32,
    pub precision: f64,
    pub auto_answer_rate: f64,
    pub pos_coverage: f64,
}

pub fn decision_curve(samples: &[DecisionSample], calibration: &Calibration, thresholds: &[f32]) -> Vec<CurvePoint> {
    let pos = samples.iter().filter(|s| s.pos).count().max(1) as f64;
    thresholds
        .iter()
        .map(|&t| {
            let answered: Vec<_> = samples.iter().filter(|s| calibration.probability(s.top, s.margin) >= t).collect();
            let correct = answered.iter().filter(|s| s.correct).count() as f64;
            CurvePoint {
                threshold: t,
                precision: if answered.is_empty() { 1.0 } else { correct / answered.len() as f64 },
                auto_answer_rate: answered.len() as f64 / samples.len().max(1) as f64,
                pos_coverage: correct / pos,
            }
        })
        .collect()
}

/// Fits the calibration, then the lowest answer threshold whose precision
/// reaches `target`, and the lowest clarify threshold at which a gold FAQ
/// is among the three choices at least `clarify_hit_rate` of the time.
pub fn fit_decision(samples: &[DecisionSample], target: f64, clarify_hit_rate: f64) -> (Calibration, f32, f32) {
    let calibration = Calibration::fit(&samples.iter().map(|s| (s.top, s.margin, s.correct)).collect::<Vec<_>>());
    let mut scored: Vec<(f32, &DecisionSample)> =
        samples.iter().map(|s| (calibration.probability(s.top, s.margin), s)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut answer, mut clarify) = (1.0f32, 1.0f32);
    let (mut correct, mut hits) = (0usize, 0usize);
    for (i, (p, s)) in scored.iter().enumerate() {
        correct += usize::from(s.correct);
        hits += usize::from(s.gold_in_top3);
        let n = (i + 1) as f64;
        if correct as f64 / n >= target {
            answer = *p;
        }
        if hits as f64 / n >= clarify_hit_rate {
            clarify = *p;
        }
    }
    (calibration, answer, clarify.min(answer))
}

/// The knowledge base as if operators had approved each query of `learned`
/// as a similar phrasing of its (first) gold FAQ: the learning loop,
/// simulated on a labelled set.
pub fn with_learned_phrasings(kb: &KnowledgeBase, learned: &[EvalQuery]) -> KnowledgeBase {
    let mut out = kb.clone();
    for q in learned.iter().filter(|q| q.is_pos()) {
        if let Some(faq) = out.faqs.iter_mut().find(|f| f.id == q.gold[0]) {
            faq.similar.push(q.query.clone());
        }
    }
    out.content_hash = format!("{}+learned{}", kb.content_hash, learned.len());
    out
}
