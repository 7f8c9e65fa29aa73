//! A knowledge base's own calibration, fitted when its engine is built,
//! without labelled traffic (issue #12): every phrasing is asked as a
//! question with itself held out (answerable: its FAQ should win), and with
//! its whole FAQ held out (in-domain but unanswerable: whatever wins is
//! wrong); product entries are asked half the time on their product's page;
//! the entries' answers in other languages stand in for foreign questions,
//! and so do shipped generic questions with their translations, labelled
//! by what the Chinese verifier makes of the original; shipped off-topic
//! messages are negatives. The store's own labelled
//! turns join them as they accumulate (`Labelled`: a shopper's 👍/👎 on an
//! automatic answer, an agent sending or rejecting a drafted FAQ answer),
//! each weighing more than a phrasing: they are the traffic the verifier judges.
//!
//! Depends on `retrieval`, `decision` (the verifier), `kb`, `index`
//! (filter), `text`. The result is cached beside the vectors, keyed by
//! everything it was fitted from.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::decision::{Confusion, GroupVerifier, KbCalibration, Sample, ScriptGroup};
use crate::embed::Role;
use crate::index::Filter;
use crate::retrieval::{Candidate, Mode, ProductContext, RetrievalError, Retriever};
use crate::text::detect_locale;

/// Bumped whenever the evidence or the sampling changes.
const VERSION: u32 = 7;
/// Candidates looked at per pseudo-query (the decision sees as many).
const K: usize = 5;
/// Phrasings asked per FAQ at most (bounds the work on huge entries).
const MAX_PER_FAQ: usize = 12;
/// Phrasings asked in all at most: a large knowledge base is sampled (every
/// n-th FAQ), which keeps the fit to a few seconds at 100k phrasings.
const MAX_QUERIES: usize = 1500;
/// Foreign answers asked at most (each needs a model pass): past that,
/// every n-th FAQ's, all its languages together.
const MAX_FOREIGN: usize = 300;
/// A held-out FAQ's phrasing counts this much: one per phrasing would make
/// half of all questions unanswerable, several times what stores see
/// (most unanswerable traffic is off-topic, orders or small talk, which
/// have their own routes).
const UNANSWERABLE_WEIGHT: f32 = 0.5;
/// Foreign answers are cut to their first sentence, at most this many characters.
const FOREIGN_CHARS: usize = 160;
/// A labelled turn of the store's own traffic counts this much (a phrasing 1).
const HISTORY_WEIGHT: f32 = 2.0;
/// Confusions kept per script group (the surest).
const MAX_CONFUSIONS: usize = 20;
/// Labelled turns used at most, the newest (each is one model pass in the
/// fit: about 15 s of background work at this bound).
pub const MAX_HISTORY: usize = 1000;

/// One of the store's shopper questions with what is known of one FAQ for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// What the shopper asked (requests for a human and small talk left out).
    pub text: String,
    /// The product page it was asked on.
    pub page: Option<String>,
    pub faq_id: String,
    /// The FAQ answers it (👍, a draft sent as drafted), or does not (👎, a rejected draft).
    pub right: bool,
}

const OFF_TOPIC: &str = include_str!("off_topic.txt");
/// Generic shopper questions, Chinese with English, Japanese and Korean
/// translations (tab-separated), written without any store's FAQ in view.
const PARALLEL: &str = include_str!("parallel_questions.txt");

/// The calibration cached in `file`, whatever it was fitted from.
pub fn stored(file: &Path) -> Option<KbCalibration> {
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

/// The calibration cached in `file`, when it was fitted from the inputs `key` names.
pub fn cached(file: &Path, key: &str) -> Option<KbCalibration> {
    stored(file).filter(|c| c.key == key)
}

/// Fits the calibration for `retriever`'s knowledge base and writes it to
/// `file` (a failed write is logged; the calibration is kept in memory).
pub fn fit_and_save(
    retriever: &Retriever,
    key: String,
    target: f64,
    history: &[Labelled],
    file: &Path,
) -> Result<KbCalibration, RetrievalError> {
    let started = std::time::Instant::now();
    let calibration = fit(retriever, key, target, history)?;
    for group in ScriptGroup::ALL {
        match calibration.group(group) {
            Some(v) => tracing::info!(
                ?group,
                samples = v.samples,
                answer_threshold = v.answer_threshold,
                expected_precision = v.expected_precision,
                expected_coverage = v.expected_coverage,
                history_samples = v.history_samples,
                weights = ?v.model.weights,
                "fitted the knowledge base's verifier"
            ),
            None => tracing::info!(?group, "too few samples: the configured calibration applies"),
        }
    }
    tracing::info!(ms = started.elapsed().as_millis() as u64, "fitted the knowledge base's calibration");
    // A cache: a torn file fails to parse and is fitted again.
    let tmp = file.with_extension(format!("partial-{}", std::process::id()));
    let written = serde_json::to_vec_pretty(&calibration)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        tracing::warn!(file = %file.display(), error = %e, "cannot save the calibration: kept in memory only");
    }
    Ok(calibration)
}

/// Names everything a calibration is fitted from: the knowledge base, the
/// model, the retrieval settings, the target, the shipped negatives and the
/// store's labelled turns.
pub fn key(retriever: &Retriever, model_sha: &str, target: f64, history: &[Labelled]) -> String {
    let mut h = Sha256::new();
    let config = retriever.config();
    h.update(format!(
        "v{VERSION}|{}|{model_sha}|{}|{}|{}|{}|{target}|",
        retriever.kb().content_hash,
        config.mode.name(),
        config.fusion.bm25_weight,
        config.fusion.bm25_saturation,
        config.fusion.cross_script_bm25_weight
    ));
    h.update(OFF_TOPIC);
    h.update(PARALLEL);
    for l in history {
        h.update(format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1e}",
            l.text,
            l.page.as_deref().unwrap_or(""),
            l.faq_id,
            l.right
        ));
    }
    hex::encode(h.finalize())
}

/// Fits both script groups' verifiers (see the module comment).
pub fn fit(
    retriever: &Retriever,
    key: String,
    target: f64,
    history: &[Labelled],
) -> Result<KbCalibration, RetrievalError> {
    let mut groups: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    let mut push = |group: ScriptGroup, s: Sample| groups[group as usize].push(s);
    let misses = pseudo_queries(retriever, &mut push)?;
    foreign_answers(retriever, &mut push)?;
    for (i, line) in OFF_TOPIC.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).enumerate() {
        let language = detect_locale(line);
        if let Some((s, _)) = ask(retriever, &Probe::new(line, ProductContext::default()), &|_| false, None, i)? {
            push(ScriptGroup::of_locale(language), s);
        }
    }
    let mut from_history = [0; 2];
    for (group, s) in history_samples(retriever, history)? {
        from_history[group as usize] += 1;
        push(group, s);
    }
    let fit_group = |samples: &[Sample], group: ScriptGroup| {
        GroupVerifier::fit(samples, target).map(|v| GroupVerifier {
            history_samples: from_history[group as usize],
            confusions: confusions(retriever, &v, misses.iter().filter(|m| m.group == group)),
            ..v
        })
    };
    let [chinese, mut other] = groups;
    let chinese = fit_group(&chinese, ScriptGroup::Chinese);
    if let Some(judge) = &chinese {
        other.extend(translated_questions(retriever, judge)?);
    }
    Ok(KbCalibration { key, target_precision: target as f32, chinese, other: fit_group(&other, ScriptGroup::Other) })
}

/// The shipped parallel questions as foreign-language samples, labelled
/// through their Chinese original: where this knowledge base's Chinese
/// verifier would answer the original with a FAQ, each translation is an
/// answerable question whose right answer is that FAQ; where it would not
/// even offer choices, the translations are unanswerable here (weighed as
/// a held-out FAQ's phrasing); in between the label is unknown and the line
/// is left out. Every text is embedded in one batched pass.
fn translated_questions(retriever: &Retriever, judge: &GroupVerifier) -> Result<Vec<Sample>, RetrievalError> {
    let lines: Vec<Vec<&str>> = PARALLEL
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').map(str::trim).filter(|f| !f.is_empty()).collect::<Vec<_>>())
        .filter(|fields| fields.len() > 1)
        .collect();
    let texts: Vec<&str> = lines.iter().flatten().copied().collect();
    let mut vectors = match (retriever.config().mode, retriever.embedder()) {
        (Mode::Bm25, _) | (_, None) => vec![None; texts.len()],
        (_, Some(model)) => model.embed(&texts, Role::Query)?.into_iter().map(Some).collect(),
    }
    .into_iter();
    let mut samples = Vec::new();
    for (i, fields) in lines.iter().enumerate() {
        let line_vectors: Vec<Option<Vec<f32>>> = vectors.by_ref().take(fields.len()).collect();
        let (original, vector) = (fields[0], line_vectors[0].as_deref());
        let ranked =
            retriever.search_with(original, vector, &Filter::default(), K, retriever.config().mode, &|_| false)?;
        let Some(evidence) =
            retriever.evidence(original, vector, &ranked, &ProductContext::default(), detect_locale(original))
        else {
            continue;
        };
        let confidence = judge.confidence(&evidence);
        let answer = match confidence {
            c if c >= judge.answer_threshold => Some(ranked[0].faq),
            c if c < judge.clarify_threshold => None,
            _ => continue,
        };
        let fold = answer.unwrap_or(retriever.kb().faqs.len() + i);
        for (text, vector) in fields[1..].iter().zip(&line_vectors[1..]) {
            let products = ProductContext { page: None, named: retriever.products_named(text) };
            let probe = Probe { vector: vector.as_deref(), ..Probe::new(text, products) };
            if let Some((mut s, _)) = ask(retriever, &probe, &|_| false, answer, fold)? {
                if answer.is_none() {
                    s.weight = UNANSWERABLE_WEIGHT;
                }
                samples.push(s);
            }
        }
    }
    Ok(samples)
}

/// The store's labelled turns as samples: a question whose FAQ is known
/// right is answerable, and its sample right when that FAQ wins; one whose
/// FAQ is known wrong tells only about that FAQ winning (a wrong answer),
/// not about another FAQ winning, so then it is left out. FAQs no longer in
/// the knowledge base are left out too.
fn history_samples(retriever: &Retriever, history: &[Labelled]) -> Result<Vec<(ScriptGroup, Sample)>, RetrievalError> {
    let kb = retriever.kb();
    let mut samples = Vec::new();
    for l in history.iter().rev().take(MAX_HISTORY) {
        let Some(faq) = kb.faqs.iter().position(|f| f.id == l.faq_id) else { continue };
        let products = ProductContext { page: l.page.as_deref(), named: retriever.products_named(&l.text) };
        let Some((mut s, _)) = ask(retriever, &Probe::new(&l.text, products), &|_| false, Some(faq), faq)? else {
            continue;
        };
        if !l.right {
            if !s.correct {
                continue;
            }
            // It won and is wrong; whether another FAQ would be right is unknown.
            s = Sample { correct: false, right_in_top3: false, answerable: false, ..s };
        }
        s.weight = HISTORY_WEIGHT;
        samples.push((ScriptGroup::of_locale(detect_locale(&l.text)), s));
    }
    Ok(samples)
}

/// An answerable pseudo-query another FAQ won.
struct Miss {
    group: ScriptGroup,
    text: String,
    faq: usize,
    winner: usize,
    evidence: Vec<f32>,
}

/// The misses `verifier` is surest of, surest first, as an operator reads
/// them. Not only those above the threshold: a twin entry's phrasings are
/// what pushes the threshold above everything.
fn confusions<'a>(
    retriever: &Retriever,
    verifier: &GroupVerifier,
    misses: impl Iterator<Item = &'a Miss>,
) -> Vec<Confusion> {
    let faqs = &retriever.kb().faqs;
    let mut found: Vec<Confusion> = misses
        .map(|m| Confusion {
            phrasing: m.text.clone(),
            faq_id: faqs[m.faq].id.clone(),
            answered_by: faqs[m.winner].id.clone(),
            confidence: verifier.confidence(&m.evidence),
        })
        .collect();
    found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    // A phrasing asked both on and off its product's page is one confusion.
    let mut seen = std::collections::HashSet::new();
    found.retain(|c| seen.insert((c.phrasing.clone(), c.faq_id.clone())));
    found.truncate(MAX_CONFUSIONS);
    found
}

/// Each phrasing held out alone (answerable) and with its whole FAQ
/// (unanswerable), searched with its stored vector. Returns the answerable
/// ones another FAQ won.
fn pseudo_queries(
    retriever: &Retriever,
    push: &mut dyn FnMut(ScriptGroup, Sample),
) -> Result<Vec<Miss>, RetrievalError> {
    let kb = retriever.kb();
    let mut misses = Vec::new();
    let per_faq = (MAX_QUERIES / kb.faqs.len().max(1)).clamp(1, MAX_PER_FAQ);
    let stride = (kb.faqs.len() * per_faq).div_ceil(MAX_QUERIES).max(1);
    for (faq, entry) in kb.faqs.iter().enumerate().step_by(stride) {
        let own = retriever.faq_phrasings(faq);
        for (n, ord) in own.clone().take(per_faq).enumerate() {
            let text = entry.phrasings().nth(n).unwrap_or_default();
            let vector = retriever.phrasing_vector(ord);
            // A product entry's phrasing that does not name its product is
            // what a shopper asks on the product's page; one that names it is
            // asked on the page every other time.
            let named = retriever.products_named(text);
            let page = entry.products.first().filter(|_| named.is_empty() || n % 2 == 1).map(String::as_str);
            let probe = Probe { vector: vector.as_deref(), ..Probe::new(text, ProductContext { page, named }) };
            let group = ScriptGroup::of_locale(detect_locale(text));
            if own.len() > 1
                && let Some((s, winner)) = ask(retriever, &probe, &|o| o == ord, Some(faq), faq)?
            {
                if !s.correct {
                    misses.push(Miss { group, text: text.to_string(), faq, winner, evidence: s.evidence.clone() });
                }
                push(group, s);
            }
            if let Some((mut s, _)) = ask(retriever, &probe, &|o| own.contains(&o), None, faq)? {
                s.weight = UNANSWERABLE_WEIGHT;
                push(group, s);
            }
        }
    }
    Ok(misses)
}

/// An entry's answers in other languages, asked as questions in that
/// language: the only foreign-language text a store's files hold.
fn foreign_answers(retriever: &Retriever, push: &mut dyn FnMut(ScriptGroup, Sample)) -> Result<(), RetrievalError> {
    let faqs = &retriever.kb().faqs;
    let counts: Vec<usize> = faqs.iter().map(|e| e.foreign_answers().count()).collect();
    for faq in sampled_foreign(&counts) {
        for (language, answer) in faqs[faq].foreign_answers() {
            let text = first_sentence(answer);
            let products = ProductContext { page: None, named: retriever.products_named(&text) };
            // Judged against the Chinese answers: this question was cut out
            // of the answer in its own language, which would fit it perfectly.
            let probe = Probe { answers_in: "zh", ..Probe::new(&text, products) };
            if let Some((s, _)) = ask(retriever, &probe, &|_| false, Some(faq), faq)? {
                push(ScriptGroup::of_locale(&language), s);
            }
            let own = retriever.faq_phrasings(faq);
            if let Some((s, _)) = ask(retriever, &probe, &|o| own.contains(&o), None, faq)? {
                push(ScriptGroup::of_locale(&language), s);
            }
        }
    }
    Ok(())
}

/// The FAQs whose foreign answers are asked, given how many each has: all
/// of them up to `MAX_FOREIGN` answers, else every n-th FAQ that has any
/// (all its languages together) until the bound is reached.
fn sampled_foreign(counts: &[usize]) -> Vec<usize> {
    let with_answers: Vec<usize> = (0..counts.len()).filter(|&f| counts[f] > 0).collect();
    let stride = counts.iter().sum::<usize>().div_ceil(MAX_FOREIGN).max(1);
    let mut asked = 0;
    with_answers
        .into_iter()
        .step_by(stride)
        .take_while(|&f| {
            asked += counts[f];
            asked <= MAX_FOREIGN
        })
        .collect()
}

fn first_sentence(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(FOREIGN_CHARS) {
        out.push(c);
        if matches!(c, '.' | '?' | '!' | '。' | '？' | '！') {
            break;
        }
    }
    out
}

/// A text asked like a shopper message.
struct Probe<'a> {
    text: &'a str,
    products: ProductContext<'a>,
    /// Its vector when already known (a phrasing's stored one).
    vector: Option<&'a [f32]>,
    /// The language candidates' answers are judged in where they have one:
    /// the text's own, as for a served message.
    answers_in: &'a str,
}

impl<'a> Probe<'a> {
    fn new(text: &'a str, products: ProductContext<'a>) -> Probe<'a> {
        Probe { text, products, vector: None, answers_in: detect_locale(text) }
    }
}

/// Searches `probe` (skipping the phrasings `skip` says) and labels the top
/// candidate: right when it is `answer` (None: nothing is right). Returns
/// the sample and the FAQ that won.
fn ask(
    retriever: &Retriever,
    probe: &Probe,
    skip: &dyn Fn(usize) -> bool,
    answer: Option<usize>,
    fold: usize,
) -> Result<Option<(Sample, usize)>, RetrievalError> {
    let Probe { text, ref products, vector, answers_in } = *probe;
    let mode = retriever.config().mode;
    let embedded = match vector {
        Some(_) => None,
        None => retriever.query_vector(text, mode)?,
    };
    let filter = Filter { product_id: products.page, now: None };
    let ranked = retriever.search_with(text, vector.or(embedded.as_deref()), &filter, K, mode, skip)?;
    let Some(evidence) = retriever.evidence(text, vector.or(embedded.as_deref()), &ranked, products, answers_in) else {
        return Ok(None);
    };
    let is_answer = |c: &Candidate| Some(c.faq) == answer;
    let sample = Sample {
        evidence: evidence.to_vec(),
        correct: is_answer(&ranked[0]),
        right_in_top3: ranked.iter().take(3).any(is_answer),
        answerable: answer.is_some(),
        fold,
        weight: 1.0,
    };
    Ok(Some((sample, ranked[0].faq)))
}

#[cfg(test)]
mod tests {
    use super::{MAX_FOREIGN, first_sentence, sampled_foreign};

    #[test]
    fn at_most_max_foreign_answers_are_asked_however_they_are_spread() {
        let asked = |counts: &[usize]| sampled_foreign(counts).iter().map(|&f| counts[f]).sum::<usize>();
        // A small store: every FAQ with foreign answers.
        assert_eq!(sampled_foreign(&[3, 0, 2]), [0, 2]);
        // 2,500 FAQs, only every fifth translated (three languages): the
        // sample spreads over the translated ones, not over every fifth FAQ.
        let counts: Vec<usize> = (0..2500).map(|f| if f % 5 == 0 { 3 } else { 0 }).collect();
        let sample = sampled_foreign(&counts);
        assert!(asked(&counts) <= MAX_FOREIGN && asked(&counts) >= MAX_FOREIGN / 2, "{}", asked(&counts));
        assert!(sample.iter().all(|&f| counts[f] > 0) && *sample.last().unwrap() > 2000, "{sample:?}");
        // One FAQ in many languages cannot push the total past the bound.
        let mut counts = vec![1; 299];
        counts.insert(0, 40);
        assert!(asked(&counts) <= MAX_FOREIGN);
    }

    #[test]
    fn the_first_sentence_ends_at_any_sentence_mark() {
        assert_eq!(first_sentence("Yes. We ship daily."), "Yes.");
        // Full-width marks are three bytes: the cut must not split one.
        assert_eq!(first_sentence("大変申し訳ございません！お受け取り後"), "大変申し訳ございません！");
        assert_eq!(first_sentence("네, 가능합니다。감사합니다"), "네, 가능합니다。");
        assert_eq!(first_sentence("no mark at all"), "no mark at all");
        assert_eq!(first_sentence(&"長".repeat(500)).chars().count(), super::FOREIGN_CHARS);
    }
}
