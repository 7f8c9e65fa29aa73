//! The answer service's logic, independent of HTTP: validates a shopper
//! message, retrieves with conversation context, decides, and records the
//! turn; drafts replies for agents and records their feedback.
//!
//! Blocking (model inference, SQLite): the API calls it from
//! `spawn_blocking`. Depends on `engine` (retrieval), `decision`, `store`.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::Config;
use crate::decision::{Action, Reason, contextual_query, decide, is_follow_up};
use crate::embed::Role;
use crate::engine::{Engine, IndexStorage};
use crate::gaps::cluster;
use crate::index::Filter;
use crate::kb::{FaqEdit, FaqInput, ImportReport, KbOptions, apply_edits, load_path, parse_csv, parse_jsonl};
use crate::retrieval::{Candidate, RetrievalError};
use crate::store::{
    DecisionRecord, Draft, FeedbackRecord, Handoff, Message, NewProposal, Proposal, Store, StoreError, Suggestion,
    Transcript, TurnRecord, Verdict,
};
use crate::text::detect_locale;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or refers to something that cannot exist.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Retrieval(#[from] RetrievalError),
}

/// An edited draft still counts as the FAQ's answer at this similarity
/// (normalised Levenshtein) to the draft.
const LIGHT_EDIT_SIMILARITY: f64 = 0.7;
/// Unanswered questions this close (cosine to the cluster centroid) are one gap.
const GAP_SIMILARITY: f32 = 0.9;

/// The knowledge base after a change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KbSummary {
    pub faqs: usize,
    pub phrasings: usize,
    /// Stored edits that no longer validate (e.g. their product was removed).
    pub skipped_edits: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportOutcome {
    /// Entries written (0 for a dry run or a blocked import).
    pub imported: usize,
    pub report: ImportReport,
    pub kb: Option<KbSummary>,
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::Store(StoreError::NotFound(format!("faq {id}")))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Continue this conversation; omitted: a new one is started.
    pub conversation_id: Option<String>,
    /// What the shopper wrote (1–2000 characters).
    pub text: String,
    /// `zh`, `en`, `ja`, …; omitted: guessed from the text.
    pub locale: Option<String>,
    /// The product page the shopper is on.
    pub product_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Choice {
    pub faq_id: String,
    pub question: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnswerResponse {
    pub conversation_id: String,
    pub action: Action,
    /// The reply shown to the shopper (answer text, clarify prompt or handoff notice).
    pub answer: Option<String>,
    /// The FAQ answered with (`answer` only).
    pub faq_id: Option<String>,
    /// Calibrated probability that the best FAQ is right.
    pub confidence: f32,
    /// 猜你想问 (clarify) choices.
    pub choices: Vec<Choice>,
    pub reason: Reason,
    /// Id to rate an automatic answer with (`POST /v1/decisions/{id}/rating`).
    pub decision_id: Option<i64>,
}

/// What the conversation was last about.
struct Context<'a> {
    question: Option<&'a str>,
    faq_id: Option<&'a str>,
}

pub struct Assistant {
    /// The live engine. Requests take a snapshot; a reload builds a new engine
    /// beside it and swaps it in, so no query sees a half-built index.
    engine: ArcSwap<Engine>,
    store: Store,
    config: Config,
    /// One rebuild at a time.
    reloading: Mutex<()>,
}

impl Assistant {
    /// Wraps `engine`; knowledge-base edits stored in `store` are applied at once.
    pub fn new(engine: Engine, store: Store) -> Result<Arc<Assistant>, ServiceError> {
        let config = engine.config.clone();
        let has_edits = !store.edits()?.is_empty();
        let assistant =
            Arc::new(Assistant { engine: ArcSwap::from_pointee(engine), store, config, reloading: Mutex::new(()) });
        if has_edits {
            assistant.reload()?;
        }
        Ok(assistant)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A snapshot of the live engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    /// Re-reads the knowledge files, applies the stored edits, builds a new
    /// engine (re-embedding only new or changed phrasings) and swaps it in.
    pub fn reload(&self) -> Result<KbSummary, ServiceError> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.engine();
        let mut kb = load_path(&self.config.kb_dir, &KbOptions::default())
            .map_err(|e| ServiceError::Invalid(format!("knowledge files: {e}")))?;
        let skipped = apply_edits(&mut kb, &self.store.edits()?);
        let model = current.retriever.embedder().cloned();
        let engine = Engine::with_kb_and_model(self.config.clone(), kb, IndexStorage::OnDisk, model, &|_, _| {})
            .map_err(|e| ServiceError::Invalid(format!("rebuilding: {e}")))?;
        let summary = KbSummary {
            faqs: engine.retriever.kb().faqs.len(),
            phrasings: engine.retriever.kb().phrasing_count(),
            skipped_edits: skipped,
        };
        self.engine.store(Arc::new(engine));
        Ok(summary)
    }

    /// The entry `id` as the admin API shows it.
    pub fn faq(&self, id: &str) -> Result<FaqInput, ServiceError> {
        let engine = self.engine();
        let faq = engine.retriever.kb().faq(id).ok_or_else(|| not_found(id))?;
        Ok(FaqInput::from_faq(faq))
    }

    /// Creates or replaces (`Some`) or deletes (`None`) entry `id`, persists
    /// the edit and makes it live.
    pub fn edit_faq(&self, id: &str, entry: Option<FaqInput>) -> Result<KbSummary, ServiceError> {
        let engine = self.engine();
        let kb = engine.retriever.kb();
        match &entry {
            Some(input) => {
                input.to_faq(id, kb, "admin edit").map_err(|p| ServiceError::Invalid(p.join("; ")))?;
            }
            None if kb.faq(id).is_none() => return Err(not_found(id)),
            None => {}
        }
        self.store.save_edits(&[FaqEdit { id: id.to_string(), entry }])?;
        self.reload()
    }

    /// Adds a similar question to entry `id`.
    pub fn add_similar(&self, id: &str, text: &str) -> Result<KbSummary, ServiceError> {
        let text = self.validate_text(text)?;
        let mut input = self.faq(id)?;
        if !input.similar.iter().any(|s| s == text) && input.question != text {
            input.similar.push(text.to_string());
        }
        self.edit_faq(id, Some(input))
    }

    /// Checks a CSV or JSON Lines file; unless `dry_run`, imports its entries:
    /// all of them, or (with `partial`) the good rows even when others are bad.
    pub fn import(
        &self,
        bytes: &[u8],
        jsonl: bool,
        dry_run: bool,
        partial: bool,
    ) -> Result<ImportOutcome, ServiceError> {
        let engine = self.engine();
        let kb = engine.retriever.kb();
        let report = if jsonl { parse_jsonl(bytes, kb) } else { parse_csv(bytes, kb) };
        let blocked = !report.problems.is_empty() && !partial;
        if dry_run || blocked || report.entries.is_empty() {
            return Ok(ImportOutcome { imported: 0, report, kb: None });
        }
        self.store.save_edits(&report.entries)?;
        let kb = self.reload()?;
        Ok(ImportOutcome { imported: report.entries.len(), report, kb: Some(kb) })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// Checks and trims a message text.
    pub fn validate_text<'a>(&self, text: &'a str) -> Result<&'a str, ServiceError> {
        let t = text.trim();
        let max = self.config().server.max_text_chars;
        if t.is_empty() {
            return Err(ServiceError::Invalid("`text` is empty".into()));
        }
        if t.chars().count() > max {
            return Err(ServiceError::Invalid(format!("`text` is longer than {max} characters")));
        }
        Ok(t)
    }

    pub fn answer(&self, req: &AnswerRequest) -> Result<AnswerResponse, ServiceError> {
        let text = self.validate_text(&req.text)?;
        if let Some(l) = &req.locale
            && (l.is_empty() || l.len() > 16 || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(ServiceError::Invalid(format!("`locale` {l:?} is not a locale tag such as zh or en-US")));
        }
        let engine = self.engine();
        let kb = engine.retriever.kb();
        if let Some(p) = &req.product_id
            && !kb.products.iter().any(|x| &x.id == p)
        {
            return Err(ServiceError::Invalid(format!("unknown product_id {p:?}")));
        }
        let locale = req.locale.clone().unwrap_or_else(|| detect_locale(text).to_string());
        let conversation = match &req.conversation_id {
            Some(id) => self.store.conversation(id)?,
            None => {
                self.store.create_conversation(&uuid::Uuid::new_v4().to_string(), &locale, req.product_id.as_deref())?
            }
        };
        let mut turn = TurnRecord {
            conversation_id: conversation.id.clone(),
            text: text.to_string(),
            locale: locale.clone(),
            product_id: req.product_id.clone(),
            topic_question: None,
            decision: None,
            bot_reply: None,
            handoff_reason: None,
            unresolved_turns: 0,
        };
        if conversation.status == "handoff" {
            // With a human already: store the message for the agent, no bot reply.
            self.store.record_turn(&turn)?;
            return Ok(AnswerResponse {
                conversation_id: conversation.id,
                action: Action::Handoff,
                answer: None,
                faq_id: None,
                confidence: 0.0,
                choices: Vec::new(),
                reason: Reason::WaitingForAgent,
                decision_id: None,
            });
        }
        let product = req.product_id.as_deref().or(conversation.product_id.as_deref());
        let cfg = &self.config().decision;
        let filter = Filter { product_id: product, now: Some(Self::now()) };
        let context =
            Context { question: conversation.last_question.as_deref(), faq_id: conversation.last_faq_id.as_deref() };
        let candidates = Self::retrieve_in_context(&engine, text, &context, &filter, cfg.choices.max(5))?;
        let decision = decide(text, &candidates, conversation.unresolved_turns, &kb.lexicon, cfg);
        let faq_id = decision.faq.map(|f| kb.faqs[f].id.clone());
        let choices: Vec<Choice> = match decision.action {
            Action::Clarify => decision
                .choices
                .iter()
                .map(|&f| Choice { faq_id: kb.faqs[f].id.clone(), question: kb.faqs[f].question.clone() })
                .collect(),
            _ => Vec::new(),
        };
        let reply = match decision.action {
            Action::Answer => decision.faq.and_then(|f| kb.faqs[f].answer_for(&locale)).map(|(_, a)| a.to_string()),
            Action::Clarify => Some(clarify_prompt(&locale).to_string()),
            Action::Handoff => Some(handoff_notice(&locale).to_string()),
        };
        turn.topic_question = (!is_follow_up(text)).then(|| text.to_string());
        turn.unresolved_turns = if decision.action == Action::Clarify { conversation.unresolved_turns + 1 } else { 0 };
        turn.handoff_reason = (decision.action == Action::Handoff).then(|| decision.reason.name().to_string());
        turn.bot_reply = reply.clone();
        turn.decision = Some(DecisionRecord {
            action: action_name(decision.action).to_string(),
            reason: decision.reason.name().to_string(),
            faq_id: faq_id.clone(),
            confidence: decision.confidence,
            candidates_json: candidates_json(&engine, &candidates),
        });
        let decision_id = self.store.record_turn(&turn)?;
        Ok(AnswerResponse {
            conversation_id: conversation.id,
            action: decision.action,
            answer: reply,
            faq_id,
            confidence: decision.confidence,
            choices,
            reason: decision.reason,
            decision_id,
        })
    }

    /// Three drafted replies for the conversation's latest shopper message.
    pub fn suggest(&self, conversation_id: &str) -> Result<Vec<Suggestion>, ServiceError> {
        let conversation = self.store.conversation(conversation_id)?;
        let last = self.store.last_shopper_message(conversation_id)?.ok_or_else(|| {
            ServiceError::Store(StoreError::Conflict("no shopper message to draft a reply for".into()))
        })?;
        let cfg = &self.config().decision;
        let context = Context {
            question: conversation.last_question.as_deref().filter(|q| *q != last.text),
            faq_id: conversation.last_faq_id.as_deref(),
        };
        let filter = Filter { product_id: conversation.product_id.as_deref(), now: Some(Self::now()) };
        let engine = self.engine();
        let candidates = Self::retrieve_in_context(&engine, &last.text, &context, &filter, cfg.choices)?;
        let kb = engine.retriever.kb();
        let drafts: Vec<Draft> = candidates
            .iter()
            .map(|c| {
                let faq = &kb.faqs[c.faq];
                let best_other = candidates.iter().filter(|o| o.faq != c.faq).map(|o| o.score).fold(f32::MIN, f32::max);
                let margin = if best_other == f32::MIN { c.score } else { c.score - best_other };
                Draft {
                    faq_id: faq.id.clone(),
                    question: faq.question.clone(),
                    text: faq.answer_for(&conversation.locale).map(|(_, a)| a.to_string()).unwrap_or_default(),
                    confidence: cfg.calibration.probability(c.score, margin),
                }
            })
            .collect();
        Ok(self.store.save_suggestions(conversation_id, Some(last.id), &drafts)?)
    }

    /// Candidates for `text`; a follow-up ("那运费呢?") is searched both alone
    /// and with the previous question, and each FAQ scored by the mean of
    /// the two, so what is relevant to the new words *and* the topic wins.
    /// The FAQ just answered is left out: a follow-up asks about something else.
    fn retrieve_in_context(
        engine: &Engine,
        text: &str,
        context: &Context,
        filter: &Filter,
        k: usize,
    ) -> Result<Vec<Candidate>, ServiceError> {
        let retriever = &engine.retriever;
        let Some(previous) = context.question.filter(|_| is_follow_up(text)) else {
            return Ok(retriever.search(text, filter, k)?);
        };
        let answered = context.faq_id.and_then(|id| retriever.kb().faqs.iter().position(|f| f.id == id));
        let alone = retriever.search(text, filter, 2 * k)?;
        let together = retriever.search(&contextual_query(text, Some(previous)), filter, 2 * k)?;
        let floor = |list: &[Candidate]| list.last().map_or(0.0, |c| c.score);
        let (floor_alone, floor_together) = (floor(&alone), floor(&together));
        let mut merged: Vec<Candidate> = Vec::new();
        for c in alone.iter().chain(&together) {
            if merged.iter().any(|m| m.faq == c.faq) || Some(c.faq) == answered {
                continue;
            }
            let score_in =
                |list: &[Candidate], floor: f32| list.iter().find(|o| o.faq == c.faq).map_or(floor, |o| o.score);
            let score = (score_in(&alone, floor_alone) + score_in(&together, floor_together)) / 2.0;
            merged.push(Candidate { score, ..c.clone() });
        }
        merged.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.faq.cmp(&b.faq)));
        merged.truncate(k);
        Ok(merged)
    }

    pub fn feedback(
        &self,
        suggestion_id: &str,
        verdict: Verdict,
        text: Option<&str>,
    ) -> Result<FeedbackRecord, ServiceError> {
        let text = match (verdict, text) {
            (Verdict::Edited, Some(t)) => Some(self.validate_text(t)?),
            (Verdict::Edited, None) => {
                return Err(ServiceError::Invalid("`edited` feedback needs the final `text`".into()));
            }
            (_, Some(_)) => return Err(ServiceError::Invalid("`text` is only for `edited` feedback".into())),
            (_, None) => None,
        };
        let (faq_id, draft, question) = self.store.suggestion_context(suggestion_id)?;
        let record = self.store.record_feedback(suggestion_id, verdict, text)?;
        // Learning loop: a draft the agent sent (as is or lightly edited) shows
        // that the shopper's words mean this FAQ: propose them as a phrasing.
        let light = |t: &str| strsim::normalized_levenshtein(&draft, t) >= LIGHT_EDIT_SIMILARITY;
        let sent_as_drafted = verdict == Verdict::Accepted || (verdict == Verdict::Edited && text.is_some_and(light));
        if let Some(question) = question.filter(|_| sent_as_drafted) {
            let engine = self.engine();
            let known = engine.retriever.kb().faq(&faq_id).is_some_and(|f| f.phrasings().any(|p| p == question));
            if !known {
                self.store.add_proposal(&NewProposal {
                    kind: "similar",
                    faq_id: Some(faq_id),
                    text: question.clone(),
                    count: 1,
                    examples: vec![question],
                })?;
            }
        }
        Ok(record)
    }

    /// Clusters the questions in `[from, to)` that ended in clarify or a
    /// no-match handoff and stores each group of two or more as a pending
    /// new-FAQ proposal; returns the pending new-FAQ proposals.
    pub fn mine_gaps(&self, from: i64, to: i64) -> Result<Vec<Proposal>, ServiceError> {
        let questions = self.store.unanswered_questions(from, to)?;
        let engine = self.engine();
        let embedder = engine.retriever.embedder().ok_or(RetrievalError::NoModel("gap mining"))?;
        let texts: Vec<&str> = questions.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&texts, Role::Query).map_err(RetrievalError::from)?;
        for c in cluster(&vectors, GAP_SIMILARITY, 2) {
            let mut examples: Vec<String> = Vec::new();
            for &m in &c.members {
                if !examples.contains(&questions[m]) && examples.len() < 5 {
                    examples.push(questions[m].clone());
                }
            }
            self.store.add_proposal(&NewProposal {
                kind: "new_faq",
                faq_id: None,
                text: questions[c.representative].clone(),
                count: c.members.len() as i64,
                examples,
            })?;
        }
        Ok(self.store.proposals("pending")?.into_iter().filter(|p| p.kind == "new_faq").collect())
    }

    /// Approves a proposal: a learned phrasing joins its FAQ; a mined gap
    /// becomes the FAQ `faq_id` written by the operator (`entry`).
    pub fn approve(&self, id: i64, faq_id: Option<&str>, entry: Option<FaqInput>) -> Result<KbSummary, ServiceError> {
        let p = self.store.proposal(id)?;
        if p.status != "pending" {
            return Err(ServiceError::Store(StoreError::Conflict(format!("proposal {id} was already decided"))));
        }
        let summary = match (p.kind.as_str(), p.faq_id.as_deref(), faq_id, entry) {
            ("similar", Some(target), _, _) => self.add_similar(target, &p.text)?,
            ("new_faq", _, Some(new_id), Some(entry)) => self.edit_faq(new_id, Some(entry))?,
            _ => {
                return Err(ServiceError::Invalid(
                    "a new-FAQ proposal needs `faq_id` and `entry` (with its answer)".into(),
                ));
            }
        };
        self.store.decide_proposal(id, "approved")?;
        Ok(summary)
    }

    pub fn dismiss(&self, id: i64) -> Result<(), ServiceError> {
        Ok(self.store.decide_proposal(id, "dismissed")?)
    }

    pub fn agent_message(&self, conversation_id: &str, text: &str) -> Result<Message, ServiceError> {
        let text = self.validate_text(text)?;
        Ok(self.store.add_agent_message(conversation_id, text)?)
    }

    pub fn handoffs(&self) -> Result<Vec<Handoff>, ServiceError> {
        Ok(self.store.handoffs()?)
    }

    pub fn transcript(&self, id: &str) -> Result<Transcript, ServiceError> {
        Ok(self.store.transcript(id)?)
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Answer => "answer",
        Action::Clarify => "clarify",
        Action::Handoff => "handoff",
    }
}

fn candidates_json(engine: &Engine, candidates: &[Candidate]) -> String {
    let kb = engine.retriever.kb();
    let rows: Vec<serde_json::Value> = candidates
        .iter()
        .map(|c| serde_json::json!({"faq_id": kb.faqs[c.faq].id, "score": c.score, "bm25": c.bm25, "cosine": c.cosine}))
        .collect();
    serde_json::Value::Array(rows).to_string()
}

fn is_zh(locale: &str) -> bool {
    locale.starts_with("zh")
}

fn clarify_prompt(locale: &str) -> &'static str {
    if is_zh(locale) {
        "您是想问以下哪个问题呢？请点选："
    } else {
        "Did you mean one of these questions?"
    }
}

fn handoff_notice(locale: &str) -> &'static str {
    if is_zh(locale) {
        "正在为您转接人工客服，请稍候，客服会尽快回复您。"
    } else {
        "We are passing you to a human agent; please wait a moment."
    }
}
