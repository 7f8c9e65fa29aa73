//! The agent desk: the queue of handed-off conversations, transcripts,
//! drafted replies, agents' verdicts on drafts, their own replies, closing,
//! and who handles what: taking, transfers, automatic assignment.

use std::sync::Arc;

use super::availability::Presence;
use super::knowledge::Knowledge;
use super::learning::Learning;
use super::turns::{Context, read_message};
use super::{ServiceError, message_text};
use crate::config::Config;
use crate::decision::substance;
use crate::kb::quote_cell;
use crate::store::{
    Actor, Conversation, Draft, ExportedMessage, FeedbackRecord, Handoff, Message, Store, Suggestion, Transcript,
    Verdict,
};

/// An edited draft still counts as the FAQ's answer at this similarity
/// (normalised Levenshtein) to the draft.
const LIGHT_EDIT_SIMILARITY: f64 = 0.7;
/// How far back drafts look for the shopper's real question.
const RECENT_MESSAGES: usize = 10;

/// What an agent's verdict says of a drafted FAQ answer: right when sent
/// as is or lightly edited, wrong when rejected, unknown when rewritten.
pub(super) fn draft_was_right(verdict: Verdict, draft: &str, sent: Option<&str>) -> Option<bool> {
    match verdict {
        Verdict::Accepted => Some(true),
        Verdict::Rejected => Some(false),
        Verdict::Edited => {
            sent.filter(|t| strsim::normalized_levenshtein(draft, t) >= LIGHT_EDIT_SIMILARITY).map(|_| true)
        }
    }
}

pub struct Desk {
    config: Config,
    knowledge: Arc<Knowledge>,
    learning: Arc<Learning>,
    store: Arc<Store>,
    presence: Arc<Presence>,
}

impl Desk {
    pub fn new(
        config: Config,
        knowledge: Arc<Knowledge>,
        learning: Arc<Learning>,
        store: Arc<Store>,
        presence: Arc<Presence>,
    ) -> Desk {
        Desk { config, knowledge, learning, store, presence }
    }

    /// The queue, with the questions of what the bot offered each shopper
    /// (its last automatic answer, its last 猜你想问 choices).
    pub fn handoffs(&self) -> Result<Vec<Handoff>, ServiceError> {
        let mut queue = self.store.handoffs()?;
        let engine = self.knowledge.engine();
        let kb = engine.retriever.kb();
        let question = |id: &String| kb.faq(id).map(|f| f.question.clone());
        for h in &mut queue {
            h.answered_question = h.answered_faq_id.as_ref().and_then(question);
            h.offered_questions =
                h.offered_faq_ids.iter().map(|id| question(id).unwrap_or_else(|| id.clone())).collect();
        }
        Ok(queue)
    }

    pub fn transcript(&self, id: &str) -> Result<Transcript, ServiceError> {
        Ok(self.store.transcript(id)?)
    }

    /// Three drafted replies for the shopper's latest real question: the
    /// newest message with something to answer once requests for a human
    /// and small talk are left out ("瓶子碎了 … 转人工" drafts for 瓶子碎了),
    /// else the latest message.
    pub fn suggest(&self, conversation_id: &str) -> Result<Vec<Suggestion>, ServiceError> {
        let conversation = self.store.conversation(conversation_id)?;
        let engine = self.knowledge.engine();
        let kb = engine.retriever.kb();
        let messages = self.store.shopper_messages(conversation_id, RECENT_MESSAGES)?;
        let (asked, query) = messages
            .iter()
            .find_map(|m| substance(&m.text, &kb.lexicon).map(|q| (m, q)))
            .or_else(|| messages.first().map(|m| (m, m.text.clone())))
            .ok_or_else(|| ServiceError::Conflict("no shopper message to draft a reply for".into()))?;
        let cfg = &self.config.decision;
        let context = Context {
            question: conversation.last_question.as_deref().filter(|q| *q != asked.text),
            faq_id: conversation.last_faq_id.as_deref(),
        };
        let candidates =
            read_message(&engine, &query, &context, conversation.product_id.as_deref(), cfg.choices)?.candidates;
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
        Ok(self.store.save_suggestions(conversation_id, Some(asked.id), &drafts)?)
    }

    /// Records the agent's verdict on a draft (accepted or edited drafts are
    /// sent to the shopper) and feeds the learning loop.
    pub fn feedback(
        &self,
        suggestion_id: &str,
        verdict: Verdict,
        text: Option<&str>,
        actor: &Actor,
    ) -> Result<FeedbackRecord, ServiceError> {
        let text = match (verdict, text) {
            (Verdict::Edited, Some(t)) => Some(message_text(t, self.config.server.max_text_chars)?),
            (Verdict::Edited, None) => {
                return Err(ServiceError::Invalid("`edited` feedback needs the final `text`".into()));
            }
            (_, Some(_)) => return Err(ServiceError::Invalid("`text` is only for `edited` feedback".into())),
            (_, None) => None,
        };
        let (faq_id, draft, question) = self.store.suggestion_context(suggestion_id)?;
        let record = self.store.record_feedback(suggestion_id, verdict, text, actor)?;
        // A draft the agent sent as drafted shows that the shopper's words mean this FAQ.
        // Only what the shopper asked: never "转人工" or a greeting as a phrasing.
        let engine = self.knowledge.engine();
        let asked = question
            .filter(|_| draft_was_right(verdict, &draft, text) == Some(true))
            .and_then(|q| substance(&q, &engine.retriever.kb().lexicon));
        if let Some(asked) = asked {
            let trimmed = asked.trim_matches(|c: char| !c.is_alphanumeric());
            self.learning.propose_phrasing(faq_id, trimmed.to_string())?;
        }
        Ok(record)
    }

    /// The agent's own reply, signed with their name; answering a queued
    /// conversation takes it, one another agent handles is a Conflict.
    pub fn agent_message(&self, conversation_id: &str, text: &str, actor: &Actor) -> Result<Message, ServiceError> {
        let text = message_text(text, self.config.server.max_text_chars)?;
        Ok(self.store.add_agent_message(conversation_id, text, actor)?)
    }

    /// Ends the conversation and its ticket (its owner, or an admin).
    pub fn close(&self, conversation_id: &str, actor: &Actor) -> Result<Conversation, ServiceError> {
        Ok(self.store.close(conversation_id, actor)?)
    }

    /// The agent takes a waiting conversation from the queue.
    pub fn take(&self, conversation_id: &str, actor: &Actor) -> Result<Conversation, ServiceError> {
        Ok(self.store.take(conversation_id, actor)?)
    }

    /// Hands a conversation to another agent, or back to the queue (`to` None).
    pub fn transfer(
        &self,
        conversation_id: &str,
        actor: &Actor,
        to: Option<i64>,
    ) -> Result<Conversation, ServiceError> {
        Ok(self.store.transfer(conversation_id, actor, to)?)
    }

    /// With `service.auto_assign`, gives waiting conversations to the
    /// least-loaded present agents (up to `service.max_conversations` each);
    /// the conversations assigned. Called whenever a conversation may wait or
    /// an agent may have room: a handoff, a close, a transfer, a console
    /// connecting or coming back.
    pub fn auto_assign(&self) -> Result<Vec<String>, ServiceError> {
        let service = &self.config.service;
        if !service.auto_assign {
            return Ok(Vec::new());
        }
        Ok(self.store.assign_waiting(&self.presence.present_agents(), service.max_conversations)?)
    }

    /// The conversations started in `[from, to)`, one row per message, as
    /// CSV (with a byte-order mark, so spreadsheets read the Chinese, and a
    /// shopper's `=…` quoted so they never run it as a formula) or JSON Lines.
    pub fn export(&self, from: i64, to: i64, format: ExportFormat) -> Result<Vec<u8>, ServiceError> {
        let rows = self.store.export_messages(from, to)?;
        // Writing plain strings and numbers into memory cannot fail.
        const INFALLIBLE: &str = "an in-memory export of plain fields";
        Ok(match format {
            ExportFormat::Csv => {
                let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
                out.write_record(ExportedMessage::COLUMNS).expect(INFALLIBLE);
                for row in &rows {
                    out.write_record(row.cells().iter().map(|c| quote_cell(c).into_owned())).expect(INFALLIBLE);
                }
                out.into_inner().expect(INFALLIBLE)
            }
            ExportFormat::Jsonl => {
                let mut out = Vec::new();
                for row in &rows {
                    serde_json::to_writer(&mut out, row).expect(INFALLIBLE);
                    out.push(b'\n');
                }
                out
            }
        })
    }
}

/// How `GET /v1/conversations/export` writes rows.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Csv,
    Jsonl,
}
