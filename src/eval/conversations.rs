//! Labelled shopper messages run through the code behind `POST /v1/answer`
//! (`Services::open`, then `Turns::answer` per message) over a throw-away
//! database and data directory. The product page, the locale and the
//! earlier messages of the chat (`history`, sent first in one conversation)
//! reach the engine as they would in production; only the last message's
//! turn is judged.
//!
//! Query lines: store-dev's `{query, product_id, history, locale, type, gold}`
//! or jddc-dev's `{query, gold, type}`; other fields are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CURVE_THRESHOLDS, CurvePoint, load_jsonl};
use crate::config::Config;
use crate::decision::{Action, GroupSummary, Reason, ScriptGroup};
use crate::embed::Embedder;
use crate::engine::EMBEDDING_CACHES;
use crate::kb::{KbOptions, Problem, load_path};
use crate::service::{AnswerRequest, AnswerResponse, ServiceError, Services};
use crate::store::{Actor, Store, StoreError, Verdict};

/// One labelled shopper message.
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationItem {
    pub query: String,
    /// The product page the shopper is on.
    #[serde(default)]
    pub product_id: Option<String>,
    /// Earlier shopper messages of the same chat, oldest first.
    #[serde(default)]
    pub history: Vec<String>,
    /// Omitted: guessed from the text, as the API does.
    #[serde(default)]
    pub locale: Option<String>,
    /// `pos`, `oos_in`, `order_lookup`, `human`, `complaint`, `smalltalk` or `oos_out`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The FAQ ids that answer it (`pos` only).
    #[serde(default)]
    pub gold: Vec<String>,
}

impl ConversationItem {
    pub fn is_pos(&self) -> bool {
        self.kind == "pos"
    }
}

pub fn load_conversation_items(path: &Path) -> Result<Vec<ConversationItem>, Problem> {
    load_jsonl(path)
}

/// What the service did with one item's last message.
#[derive(Debug, Clone, Serialize)]
pub struct ItemOutcome {
    /// Position in the file (blank lines not counted), from 0.
    pub item: usize,
    #[serde(rename = "type")]
    pub kind: String,
    /// None: the service refused a message of the item (`error`).
    pub action: Option<Action>,
    pub reason: Option<Reason>,
    /// The FAQ answered with.
    pub faq_id: Option<String>,
    /// Calibrated confidence of the top candidate; None when no decision
    /// was made (the chat was already with a human).
    pub confidence: Option<f32>,
    /// FAQ ids as the turn's retrieval ranked them (the stored decision's).
    pub candidates: Vec<String>,
    /// 猜你想问 choices shown (clarify).
    pub choices: Vec<String>,
    /// `pos`, answered with a gold FAQ.
    pub correct: bool,
    pub error: Option<String>,
    /// The throw-away conversation it ran in (None: refused at its first message).
    #[serde(skip)]
    pub conversation_id: Option<String>,
}

/// Outcomes of the items of one `type`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub items: usize,
    pub answered: usize,
    pub clarified: usize,
    pub handed_off: usize,
    /// Replied with the store's small talk (no FAQ; not an automatic answer).
    pub small_talk: usize,
    /// Messages the service refused (invalid product, too long…).
    pub errors: usize,
    /// Handoffs by reason (`human_requested`, `no_confident_match`, …).
    pub handoff_reasons: BTreeMap<String, usize>,
    /// `pos`: answered with a gold FAQ.
    pub answered_right: usize,
    /// Automatic answers that are wrong: `pos` with a non-gold FAQ, any other type with any FAQ.
    pub answered_wrong: usize,
    /// `pos` only: clarified with a gold FAQ among the choices, or without.
    pub clarified_with_gold: usize,
    pub clarified_without_gold: usize,
    /// `pos` only: a gold FAQ ranked first, whatever the action.
    pub ranked_first: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationReport {
    pub faqs: usize,
    pub items: usize,
    /// Messages sent, history included.
    pub turns: usize,
    /// The configured `decision.answer_threshold`.
    pub answer_threshold: f32,
    /// The knowledge base's own thresholds per script group.
    pub calibration: Vec<GroupSummary>,
    pub answered: usize,
    /// Share of all items answered automatically.
    pub auto_answer_rate: f64,
    pub answered_right: usize,
    /// `answered_right / answered` (1 when nothing was answered).
    pub precision: f64,
    pub wrong_answers: usize,
    pub by_type: Vec<TypeReport>,
    /// The `pos` items with `history` (follow-ups), also counted in `by_type`.
    pub follow_ups: TypeReport,
    /// Auto-answer precision / coverage had the answer threshold been each
    /// of `CURVE_THRESHOLDS`, and last at the one Chinese messages are
    /// answered at (the knowledge base's verifier's; see [`answered_at`]).
    pub curve: Vec<CurvePoint>,
    pub outcomes: Vec<ItemOutcome>,
}

/// Report order of the known types; others follow in file order.
const TYPE_ORDER: [&str; 7] = ["pos", "oos_in", "order_lookup", "human", "complaint", "smalltalk", "oos_out"];

/// The real services over a throw-away database and data directory
/// (removed when this is dropped).
pub struct ConversationEval {
    services: Arc<Services>,
    // Declared last: dropped after the services have closed the database.
    _dir: TempDir,
}

impl ConversationEval {
    /// Opens the services on `config`'s knowledge base, in a new temporary
    /// data directory; `progress` as for phrasing embedding.
    pub fn open(
        config: Config,
        model: Option<Arc<Embedder>>,
        progress: &dyn Fn(usize, usize),
    ) -> Result<ConversationEval, ServiceError> {
        check_answers(&config.kb_dir)?;
        let dir = TempDir::new().map_err(|e| ServiceError::Storage(StoreError::Io(e)))?;
        // Seeding the configured embedding caches only saves re-embedding; missing is fine.
        for name in EMBEDDING_CACHES {
            let _ = std::fs::copy(config.data_dir.join(name), dir.0.join(name));
        }
        // A throw-away SQLite file, whatever database the store is configured with.
        let store = Store::open(&dir.0.join("eval.sqlite3"))?;
        let config = Config { data_dir: dir.0.clone(), ..config };
        let services = Services::open(config, store, model, progress)?;
        Ok(ConversationEval { services, _dir: dir })
    }

    /// Runs every item in its own conversation; `tick` once per item.
    /// A message the service refuses is that item's outcome (`error`); a
    /// failing database ends the run.
    pub fn run(&self, items: &[ConversationItem], tick: impl Fn()) -> Result<ConversationReport, ServiceError> {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut turns = 0;
        for (i, item) in items.iter().enumerate() {
            outcomes.push(self.run_item(i, item, &mut turns)?);
            tick();
        }
        let engine = self.services.knowledge.engine();
        let faqs = engine.retriever.kb().faqs.len();
        let cfg = &self.services.config.decision;
        let calibration = engine.calibration().summary(cfg);
        // The threshold Chinese messages are answered at: the knowledge base's
        // own when it has one, else the configured.
        let in_force = calibration
            .iter()
            .find(|g| g.group == ScriptGroup::Chinese)
            .map_or(cfg.answer_threshold, |g| g.answer_threshold);
        let mut report = report(items, outcomes, faqs, turns, cfg.answer_threshold, in_force);
        report.calibration = calibration;
        Ok(report)
    }

    /// Simulates agents reviewing the drafts of each answerable or
    /// out-of-scope item (the others never reach drafts about FAQs): the
    /// gold FAQ's draft is sent as drafted when offered, else the first draft
    /// is rejected. Then the verifier is fitted again on those verdicts (as
    /// after a knowledge change) and this waits for it. Returns the verdicts given.
    pub fn teach(&self, items: &[ConversationItem], tick: impl Fn()) -> Result<usize, ServiceError> {
        let mut verdicts = 0;
        for (i, item) in items.iter().enumerate() {
            tick();
            if !matches!(item.kind.as_str(), "pos" | "oos_in" | "oos_out") {
                continue;
            }
            let Some(conversation) = self.run_item(i, item, &mut 0)?.conversation_id else { continue };
            let drafts = self.services.desk.suggest(&conversation)?;
            let (draft, verdict) = match drafts.iter().find(|d| item.gold.contains(&d.faq_id)) {
                Some(gold) => (gold, Verdict::Accepted),
                None => match drafts.first() {
                    Some(first) => (first, Verdict::Rejected),
                    None => continue,
                },
            };
            self.services.desk.feedback(&draft.id, verdict, None, &Actor::API_KEY)?;
            verdicts += 1;
        }
        self.services.knowledge.reload()?;
        let engine = self.services.knowledge.engine();
        engine.calibrate().map_err(ServiceError::Rebuild)?;
        Ok(verdicts)
    }

    fn run_item(&self, i: usize, item: &ConversationItem, turns: &mut usize) -> Result<ItemOutcome, ServiceError> {
        let mut outcome = ItemOutcome {
            item: i,
            kind: item.kind.clone(),
            action: None,
            reason: None,
            faq_id: None,
            confidence: None,
            candidates: Vec::new(),
            choices: Vec::new(),
            correct: false,
            error: None,
            conversation_id: None,
        };
        let mut last: Option<AnswerResponse> = None;
        for (n, text) in item.history.iter().chain(std::iter::once(&item.query)).enumerate() {
            let req = AnswerRequest {
                conversation_id: last.as_ref().map(|r| r.conversation_id.clone()),
                text: text.clone(),
                locale: item.locale.clone(),
                product_id: item.product_id.clone(),
            };
            *turns += 1;
            // A generous deadline: this measures decisions, not latency.
            match self.services.turns.answer(&req, Instant::now() + Duration::from_secs(600)) {
                Ok(r) => {
                    outcome.conversation_id = Some(r.conversation_id.clone());
                    last = Some(r);
                }
                Err(e) => {
                    outcome.error = Some(format!("message {}: {} ({e})", n + 1, e.code()));
                    return Ok(outcome);
                }
            }
        }
        let r = last.expect("the query itself was sent");
        // Action, reason, FAQ and confidence as the API returns them; the
        // ranked candidates (which the response leaves out for a handoff)
        // from the decision stored with the turn.
        if let Some(id) = r.decision_id {
            let stored: Vec<StoredCandidate> = serde_json::from_str(&self.services.store.decision_candidates(id)?)
                .map_err(|e| ServiceError::Conflict(format!("stored candidates of decision {id}: {e}")))?;
            outcome.candidates = stored.into_iter().map(|c| c.faq_id).collect();
            outcome.confidence = Some(r.confidence);
        }
        outcome.correct =
            item.is_pos() && r.action == Action::Answer && r.faq_id.as_ref().is_some_and(|f| item.gold.contains(f));
        outcome.action = Some(r.action);
        outcome.reason = Some(r.reason);
        outcome.faq_id = r.faq_id;
        outcome.choices = r.choices.into_iter().map(|c| c.faq_id).collect();
        Ok(outcome)
    }
}

#[derive(Deserialize)]
struct StoredCandidate {
    faq_id: String,
}

/// The answering service needs an answer per FAQ; question-matching sets
/// (ant-dev, bq-dev, xling-dev) have none. One clear message instead of a
/// problem per entry; other problems are left to `Services::open`.
fn check_answers(kb: &Path) -> Result<(), ServiceError> {
    let Ok(loaded) = load_path(kb, &KbOptions { require_answers: false }) else {
        return Ok(());
    };
    let missing = loaded.faqs.iter().filter(|f| !f.answers.contains_key("zh")).count();
    if missing > 0 {
        return Err(ServiceError::Invalid(format!(
            "{}: {missing} of {} FAQ entries have no answer, and the conversation eval answers through the real \
             service; for a question-matching set use `xiaoer eval` without --conversations",
            kb.display(),
            loaded.faqs.len()
        )));
    }
    Ok(())
}

/// The FAQ that would be answered automatically at `threshold`, given the
/// turn as run. Mirrors `decide`: small talk and escalations (human
/// request, complaint, anger) come before any threshold and a chat already with a human gets
/// no decision, so those never answer; otherwise the top candidate is
/// answered when the confidence reaches the threshold. The conversation
/// state before the turn is the one this run produced (history at the
/// configured thresholds), so points away from the configured threshold
/// are an approximation for items with history.
pub fn answered_at(o: &ItemOutcome, threshold: f32) -> Option<&str> {
    match o.reason? {
        Reason::HumanRequested | Reason::Complaint | Reason::Anger | Reason::WaitingForAgent | Reason::SmallTalk => {
            None
        }
        _ => (o.confidence? >= threshold).then(|| o.candidates.first().map(String::as_str)).flatten(),
    }
}

impl TypeReport {
    fn add(&mut self, item: &ConversationItem, o: &ItemOutcome) {
        self.items += 1;
        let gold_shown = o.choices.iter().any(|c| item.gold.contains(c));
        match o.action {
            None => self.errors += 1,
            Some(Action::Answer) if o.reason == Some(Reason::SmallTalk) => self.small_talk += 1,
            Some(Action::Answer) => {
                self.answered += 1;
                match o.correct {
                    true => self.answered_right += 1,
                    false => self.answered_wrong += 1,
                }
            }
            Some(Action::Clarify) => {
                self.clarified += 1;
                if item.is_pos() {
                    match gold_shown {
                        true => self.clarified_with_gold += 1,
                        false => self.clarified_without_gold += 1,
                    }
                }
            }
            Some(Action::Handoff) => {
                self.handed_off += 1;
                let reason = o.reason.map_or("unknown", Reason::name);
                *self.handoff_reasons.entry(reason.to_string()).or_default() += 1;
            }
        }
        if item.is_pos() && o.candidates.first().is_some_and(|c| item.gold.contains(c)) {
            self.ranked_first += 1;
        }
    }
}

fn report(
    items: &[ConversationItem],
    outcomes: Vec<ItemOutcome>,
    faqs: usize,
    turns: usize,
    answer_threshold: f32,
    in_force: f32,
) -> ConversationReport {
    let mut by_type: Vec<TypeReport> = Vec::new();
    for (item, o) in items.iter().zip(&outcomes) {
        let t = match by_type.iter().position(|t| t.kind == item.kind) {
            Some(p) => &mut by_type[p],
            None => {
                by_type.push(TypeReport { kind: item.kind.clone(), ..TypeReport::default() });
                by_type.last_mut().expect("just pushed")
            }
        };
        t.add(item, o);
    }
    let mut follow_ups = TypeReport { kind: "pos follow-up".into(), ..TypeReport::default() };
    for (item, o) in items.iter().zip(&outcomes).filter(|(i, _)| i.is_pos() && !i.history.is_empty()) {
        follow_ups.add(item, o);
    }
    let rank = |kind: &str| TYPE_ORDER.iter().position(|k| *k == kind).unwrap_or(TYPE_ORDER.len());
    by_type.sort_by_key(|t| rank(&t.kind)); // stable: unknown types keep file order
    let answered: usize = by_type.iter().map(|t| t.answered).sum();
    let right: usize = by_type.iter().map(|t| t.answered_right).sum();
    let mut thresholds = CURVE_THRESHOLDS.to_vec();
    thresholds.push(in_force);
    ConversationReport {
        faqs,
        items: items.len(),
        turns,
        answer_threshold,
        calibration: Vec::new(),
        answered,
        auto_answer_rate: ratio(answered, items.len()),
        answered_right: right,
        precision: if answered == 0 { 1.0 } else { ratio(right, answered) },
        wrong_answers: answered - right,
        by_type,
        follow_ups,
        curve: thresholds.into_iter().map(|t| curve_point(items, &outcomes, t)).collect(),
        outcomes,
    }
}

fn curve_point(items: &[ConversationItem], outcomes: &[ItemOutcome], threshold: f32) -> CurvePoint {
    let (mut answered, mut correct) = (0, 0);
    for (item, o) in items.iter().zip(outcomes) {
        if let Some(faq) = answered_at(o, threshold) {
            answered += 1;
            correct += usize::from(item.is_pos() && item.gold.iter().any(|g| g == faq));
        }
    }
    let pos = items.iter().filter(|i| i.is_pos()).count();
    CurvePoint {
        threshold,
        precision: if answered == 0 { 1.0 } else { ratio(correct, answered) },
        auto_answer_rate: ratio(answered, items.len()),
        pos_coverage: ratio(correct, pos),
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// A uniquely named directory under the system's temporary directory,
/// removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("xiaoer-eval-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
