use super::db::{FromValue, ToValue, Value};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::decision::{Action, Reason};

/// Types with `name()` / `parse()` are stored as their name (an
/// unknown name in the database is an error, not a silent default).
macro_rules! sql_by_name {
    ($($t:ty),+) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Text(self.name().into())
            }
        }
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, String> {
                let text = String::from_value(v)?;
                <$t>::parse(&text).ok_or_else(|| format!("unknown {} {text:?}", stringify!($t)))
            }
        }
    )+};
}

sql_by_name!(Action, Reason);

/// A closed set of names stored as TEXT: serde in snake_case, `name()`,
/// `parse()`, and database conversion both ways.
macro_rules! text_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        sql_by_name!($name);
    };
}

text_enum! {
    /// Who a conversation is with.
    pub enum ConversationStatus {
        /// The bot answers.
        Bot = "bot",
        /// Waiting for or with an agent.
        Handoff = "handoff",
        /// Ended; a new message starts a new conversation.
        Closed = "closed",
    }
}

text_enum! {
    /// Who wrote a message.
    pub enum Role { Shopper = "shopper", Bot = "bot", Agent = "agent" }
}

text_enum! {
    /// What an agent account may do: `agent` works the queue; `admin` also
    /// manages accounts and the knowledge base.
    pub enum AgentRole { Agent = "agent", Admin = "admin" }
}

/// An agent account as the API shows it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Agent {
    pub id: i64,
    pub login: String,
    /// The name shoppers see on the agent's replies.
    pub display_name: String,
    pub role: AgentRole,
    pub disabled: bool,
    pub created_at: i64,
}

/// Who acts on the agents' side: a logged-in agent, or the store's API key
/// (automation; `agent` None) which acts as an admin without a name.
#[derive(Debug, Clone)]
pub struct Actor {
    pub agent: Option<Agent>,
}

impl Actor {
    pub const API_KEY: Actor = Actor { agent: None };

    pub fn agent_id(&self) -> Option<i64> {
        self.agent.as_ref().map(|a| a.id)
    }

    pub fn is_admin(&self) -> bool {
        self.agent.as_ref().is_none_or(|a| a.role == AgentRole::Admin)
    }
}

text_enum! {
    /// How an agent can reach a shopper who left a message.
    pub enum ContactKind {
        /// A mobile number: 11 digits starting with 1 (China), or `+` and 7–15 digits.
        Phone = "phone",
        /// An e-mail address.
        Email = "email",
        /// A Wangwang (旺旺) / Taobao account name.
        Wangwang = "wangwang",
    }
}

text_enum! {
    /// An agent's verdict on a drafted reply.
    pub enum Verdict { Accepted = "accepted", Edited = "edited", Rejected = "rejected" }
}

text_enum! {
    pub enum ProposalKind {
        /// A mined gap: a new FAQ to write.
        NewFaq = "new_faq",
        /// A learned phrasing for an existing FAQ.
        Similar = "similar",
    }
}

text_enum! {
    pub enum ProposalStatus { Pending = "pending", Approved = "approved", Dismissed = "dismissed" }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    pub id: String,
    pub status: ConversationStatus,
    pub locale: String,
    pub product_id: Option<String>,
    /// The last shopper question that carried a topic (for follow-ups).
    pub last_question: Option<String>,
    pub last_faq_id: Option<String>,
    pub unresolved_turns: u32,
    pub created_at: i64,
    pub updated_at: i64,
    /// The agent handling it (None: in the queue, or with the bot).
    pub owner_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    pub id: i64,
    pub role: Role,
    pub text: String,
    pub created_at: i64,
    /// An agent's reply: the agent's display name (None: sent with the
    /// store's API key, or before agent accounts).
    pub author: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredDecision {
    pub id: i64,
    pub message_id: i64,
    pub action: Action,
    pub reason: Reason,
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
    pub reason: Reason,
    pub created_at: i64,
    pub waiting_seconds: i64,
    pub locale: String,
    pub product_id: Option<String>,
    /// The shopper's own latest message (not the bot's notices).
    pub last_message: String,
    /// How to reach a shopper who left a message.
    pub contact_kind: Option<ContactKind>,
    pub contact: Option<String>,
    /// When the shopper left a message for the agents (unix seconds).
    pub message_left_at: Option<i64>,
    /// What the bot offered: the FAQ it last answered with automatically …
    pub answered_faq_id: Option<String>,
    /// … and that FAQ's question.
    pub answered_question: Option<String>,
    /// The 猜你想问 choices the bot last offered (FAQ ids) …
    pub offered_faq_ids: Vec<String>,
    /// … and their questions, in the same order (an entry deleted since: its id).
    pub offered_questions: Vec<String>,
    /// The agent handling it (None: waiting for someone to take it).
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
}

/// A decision as stored with the turn.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub action: Action,
    pub reason: Reason,
    pub faq_id: Option<String>,
    pub confidence: f32,
    pub candidates_json: String,
    /// The 猜你想问 choices offered (clarify), FAQ ids.
    pub choices: Vec<String>,
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
    pub handoff_reason: Option<Reason>,
    /// The turn left the shopper's question unresolved (a clarify): the
    /// conversation's count goes up by one, else back to 0. Counted inside
    /// the turn's transaction, so concurrent turns lose no update.
    pub unresolved: bool,
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
    /// Shopper messages this FAQ ranked first for, whatever the bot did.
    pub hits: i64,
    /// Shopper messages the bot answered automatically with it.
    pub answered: i64,
    pub helpful: i64,
    pub unhelpful: i64,
    /// Of the ended conversations this FAQ was answered in automatically,
    /// the share resolved automatically (see [`Stats::auto_resolution_rate`]);
    /// absent while none has ended.
    pub auto_resolution_rate: Option<f64>,
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
    pub handoff_by_reason: Vec<(Reason, i64)>,
    /// Drafts an agent accepted, edited or rejected.
    pub suggestions_reviewed: i64,
    pub accepted_rate: f64,
    pub edited_rate: f64,
    pub rejected_rate: f64,
    /// Conversations started in the window that have ended (closed, or no
    /// message for 30 minutes) and asked the bot something beyond small talk.
    pub ended_conversations: i64,
    /// Of those, the ones resolved automatically: at least one automatic
    /// FAQ answer, never handed off, no 👎 on any answer.
    pub auto_resolved: i64,
    /// `auto_resolved / ended_conversations` (0 when none ended).
    pub auto_resolution_rate: f64,
    /// Most answered first, then most hit.
    pub faqs: Vec<FaqStats>,
    /// The agent desk's figures for the handoffs opened in the window.
    pub desk: super::DeskFigures,
    /// The same per agent (agents with nothing in the window are left out).
    pub agents: Vec<super::AgentFigures>,
    /// The live knowledge base's answer thresholds and expected coverage per
    /// script group (absent where no engine is loaded and none is stored).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<crate::decision::GroupSummary>,
}

/// A proposed knowledge-base change waiting for an operator.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Proposal {
    pub id: i64,
    pub kind: ProposalKind,
    /// The FAQ a `similar` proposal adds to.
    pub faq_id: Option<String>,
    /// Representative question, or the phrasing to add.
    pub text: String,
    /// How many shopper questions it stands for.
    pub count: i64,
    pub examples: Vec<String>,
    pub status: ProposalStatus,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewProposal {
    pub kind: ProposalKind,
    pub faq_id: Option<String>,
    pub text: String,
    pub count: i64,
    pub examples: Vec<String>,
}
