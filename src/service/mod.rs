//! The services behind the API and the CLI, one job each, knowing nothing
//! of HTTP. Blocking (model inference, SQLite): callers run them off the
//! async runtime.
//!
//! - [`Knowledge`]: the live engine, FAQ edits, imports, reloads.
//! - [`Turns`]: one shopper message end to end, and the shopper's ratings.
//! - [`Accounts`]: agent accounts and console sessions.
//! - [`Desk`]: the agents' queue, transcripts, drafts, feedback, replies, closing.
//! - [`Canned`]: canned replies (快捷短语) and suggestions for new ones.
//! - [`Learning`]: gap mining, learned phrasings, proposals.
//! - [`Presence`] and service hours ([`availability`]): whether a human can answer now.

mod accounts;
pub mod availability;
mod canned;
mod desk;
mod error;
mod knowledge;
mod learning;
mod turns;

use std::sync::{Arc, Mutex, MutexGuard};

pub use accounts::{Accounts, AgentUpdate, LoginRequest, NewAgent, Session};
pub use availability::{Offline, OfflineReason, Presence, ServiceConfig, ServiceHours};
pub use canned::{Canned, CannedSuggestion, NewCannedReply};
pub use desk::{Desk, ExportFormat};
pub use error::ServiceError;
pub use knowledge::{ImportOutcome, KbSummary, Knowledge, PreviewCandidate, RankPreview};
pub use learning::Learning;
pub use turns::{
    AnswerRequest, AnswerResponse, Choice, Contact, LeaveMessage, LeftMessage, ShopperTranscript, SurveyAnswer, Turns,
};

use crate::config::Config;
use crate::embed::Embedder;
use crate::engine::Progress;
use crate::store::{Stats, Store};

/// All services over one store and one live knowledge base.
pub struct Services {
    pub config: Config,
    pub store: Arc<Store>,
    pub knowledge: Arc<Knowledge>,
    pub turns: Turns,
    pub desk: Desk,
    pub accounts: Accounts,
    pub canned: Canned,
    pub learning: Arc<Learning>,
    /// Agents' consoles connected now (the API's agent stream registers them).
    pub presence: Arc<Presence>,
}

impl Services {
    /// Builds the engine once (knowledge files + stored edits) and wires the
    /// services; `model` is shared by every engine built later.
    pub fn open(
        config: Config,
        store: Store,
        model: Option<Arc<Embedder>>,
        progress: Progress,
    ) -> Result<Arc<Services>, ServiceError> {
        let hours = ServiceHours::parse(&config.service)?;
        let presence = Arc::new(Presence::default());
        let store = Arc::new(store);
        let knowledge = Arc::new(Knowledge::open(config.clone(), store.clone(), model, progress)?);
        knowledge.follow();
        let learning = Arc::new(Learning::new(knowledge.clone(), store.clone()));
        Ok(Arc::new(Services {
            turns: Turns::new(config.clone(), knowledge.clone(), store.clone(), hours, presence.clone()),
            desk: Desk::new(config.clone(), knowledge.clone(), learning.clone(), store.clone(), presence.clone()),
            accounts: Accounts::new(store.clone(), config.server.session_hours),
            canned: Canned::new(store.clone(), config.server.max_text_chars),
            learning,
            presence,
            knowledge,
            store,
            config,
        }))
    }

    /// Service figures for `[from, to)` (unix seconds).
    pub fn stats(&self, from: i64, to: i64) -> Result<Stats, ServiceError> {
        let mut stats = self.store.stats(from, to)?;
        stats.calibration = self.knowledge.engine().calibration().summary(&self.config.decision);
        Ok(stats)
    }

    /// Whether the services can answer: the database responds and the live
    /// engine is whole.
    pub fn check_ready(&self) -> Result<(), String> {
        self.store.ping().map_err(|e| e.to_string())?;
        self.knowledge.engine().check()
    }
}

/// Checks and trims a shopper's or agent's message.
pub fn message_text(text: &str, max_chars: usize) -> Result<&str, ServiceError> {
    let t = text.trim();
    if crate::kb::is_blank(t) {
        return Err(ServiceError::Invalid("`text` is empty".into()));
    }
    if t.chars().count() > max_chars {
        return Err(ServiceError::Invalid(format!("`text` is longer than {max_chars} characters")));
    }
    Ok(t)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
