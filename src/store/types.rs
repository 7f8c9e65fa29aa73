use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    pub id: String,
    /// `bot`, `handoff` (waiting for or with an agent) or `closed`.
    pub status: String,
    pub locale: String,
    pub product_id: Option<String>,
    /// The last shopper question that carried a topic (for follow-ups).
    pub last_question: Option<String>,
    pub last_faq_id: Option<String>,
    pub unresolved_turns: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    pub id: i64,
    /// `shopper`, `bot` or `agent`.
    pub role: String,
    pub text: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredDecision {
    pub message_id: i64,
    pub action: String,
    pub reason: String,
    pub faq_id: Option<String>,
    pub confidence: f32,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Transcript {
    pub conversation: Conversation,
    pub messages: Vec<Message>,
    pub decisions: Vec<StoredDecision>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Handoff {
    pub ticket_id: i64,
    pub conversation_id: String,
    pub reason: String,
    pub created_at: i64,
    pub waiting_seconds: i64,
    pub locale: String,
    pub product_id: Option<String>,
    pub last_message: String,
}

/// A decision as stored with the turn.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub action: String,
    pub reason: String,
    pub faq_id: Option<String>,
    pub confidence: f32,
    pub candidates_json: String,
}

/// Everything one shopper turn changes.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    pub conversation_id: String,
    pub text: String,
    pub locale: String,
    pub product_id: Option<String>,
    /// Becomes the conversation's `last_question` (None keeps the old one).
    pub topic_question: Option<String>,
    pub decision: Option<DecisionRecord>,
    pub bot_reply: Option<String>,
    /// Opens a ticket with this reason.
    pub handoff_reason: Option<String>,
    pub unresolved_turns: u32,
}

/// A drafted reply before it is stored.
#[derive(Debug, Clone)]
pub struct Draft {
    pub faq_id: String,
    pub question: String,
    pub text: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Suggestion {
    pub id: String,
    pub conversation_id: String,
    pub faq_id: String,
    /// The FAQ's standard question, so the agent sees what the draft answers.
    pub question: String,
    pub text: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accepted,
    Edited,
    Rejected,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Edited => "edited",
            Verdict::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedbackRecord {
    pub suggestion_id: String,
    pub conversation_id: String,
    pub verdict: Verdict,
    /// The reply sent to the shopper (accepted or edited).
    pub message: Option<Message>,
}

/// Per-FAQ automatic answers and how shoppers rated them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FaqStats {
    pub faq_id: String,
    pub answered: i64,
    pub helpful: i64,
    pub unhelpful: i64,
}

/// Service figures over a time window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stats {
    pub from: i64,
    pub to: i64,
    /// Conversations started in the window.
    pub conversations: i64,
    /// Shopper messages the bot decided on.
    pub decisions: i64,
    pub auto_answer_rate: f64,
    pub clarify_rate: f64,
    pub handoff_rate: f64,
    /// (reason, count), most frequent first.
    pub handoff_by_reason: Vec<(String, i64)>,
    /// Drafts an agent accepted, edited or rejected.
    pub suggestions_reviewed: i64,
    pub accepted_rate: f64,
    pub edited_rate: f64,
    pub rejected_rate: f64,
    /// Most answered first.
    pub faqs: Vec<FaqStats>,
}

/// A proposed knowledge-base change waiting for an operator.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Proposal {
    pub id: i64,
    /// `new_faq` (mined gap) or `similar` (learned phrasing).
    pub kind: String,
    /// The FAQ a `similar` proposal adds to.
    pub faq_id: Option<String>,
    /// Representative question, or the phrasing to add.
    pub text: String,
    /// How many shopper questions it stands for.
    pub count: i64,
    pub examples: Vec<String>,
    /// `pending`, `approved` or `dismissed`.
    pub status: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewProposal {
    pub kind: &'static str,
    pub faq_id: Option<String>,
    pub text: String,
    pub count: i64,
    pub examples: Vec<String>,
}
