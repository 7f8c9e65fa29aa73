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
//! - [`Events`]: live conversation events, shared by the replicas on one database.

mod accounts;
pub mod availability;
mod canned;
mod desk;
mod error;
pub mod events;
mod knowledge;
mod learning;
mod turns;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

pub use accounts::{Accounts, AgentUpdate, LoginRequest, NewAgent, Session};
pub use availability::{Offline, OfflineReason, Presence, ServiceConfig, ServiceHours};
pub use canned::{Canned, CannedSuggestion, NewCannedReply};
pub use desk::{Desk, ExportFormat};
pub use error::ServiceError;
pub use events::{Event, EventKind, Events, LiveEvent, Replay};
pub use knowledge::{ImportOutcome, KbSummary, Knowledge, PreviewCandidate, RankPreview};
pub use learning::Learning;
pub use turns::{
    AnswerRequest, AnswerResponse, Choice, Contact, LeaveMessage, LeftMessage, Reading, ShopperTranscript,
    SurveyAnswer, Turns, read_question,
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
    pub events: Arc<Events>,
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
        let store = Arc::new(store);
        let presence = Arc::new(Presence::new(store.clone()));
        let events = Arc::new(Events::new(store.clone()));
        let knowledge = Arc::new(Knowledge::open(config.clone(), store.clone(), model, progress)?);
        knowledge.follow();
        let learning = Arc::new(Learning::new(knowledge.clone(), store.clone()));
        let services = Arc::new(Services {
            turns: Turns::new(config.clone(), knowledge.clone(), store.clone(), hours, presence.clone()),
            desk: Desk::new(config.clone(), knowledge.clone(), learning.clone(), store.clone(), presence.clone()),
            accounts: Accounts::new(store.clone(), config.server.session_hours),
            canned: Canned::new(store.clone(), config.server.max_text_chars),
            learning,
            presence,
            events,
            knowledge,
            store,
            config,
        });
        follow_replicas(&services)?;
        Ok(services)
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

/// How often a process reads the event log when nothing woke it (SQLite:
/// another process's events; PostgreSQL notifies, this is the fallback).
const EVENTS_POLL: Duration = Duration::from_millis(100);
const EVENTS_POLL_NOTIFIED: Duration = Duration::from_secs(1);
/// How often consoles are shared, and how long shared events, consoles and
/// rate limits are kept.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const SHARED_KEPT_SECS: i64 = 24 * 3600;

/// The thread that keeps this process in step with the others on the
/// database: the event log read in order, consoles shared, old rows pruned.
/// It ends when the services are dropped.
fn follow_replicas(services: &Arc<Services>) -> Result<(), ServiceError> {
    let woken = services.events.take_wakeups().expect("one reader per process");
    let mut listener = services.store.listen_events(services.events.waker())?;
    let mut cursor = services.store.last_event_id()?;
    let weak: Weak<Services> = Arc::downgrade(services);
    let started = Instant::now();
    std::thread::Builder::new()
        .name("xiaoer-replicas".into())
        .spawn(move || {
            let (mut shared_at, mut pruned_at) = (started, started);
            loop {
                let notified = listener.as_ref().is_some_and(|l| !l.is_closed());
                let _ = woken.recv_timeout(if notified { EVENTS_POLL_NOTIFIED } else { EVENTS_POLL });
                let Some(s) = weak.upgrade() else { return };
                if s.store.is_shared() && !notified {
                    // PostgreSQL restarted (or was away): listen again; polled meanwhile.
                    listener = s.store.listen_events(s.events.waker()).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot listen for other replicas' events");
                        None
                    });
                }
                if let Err(e) = s.events.read_on(&mut cursor) {
                    tracing::warn!(error = %e, "cannot read the live event log");
                }
                if shared_at.elapsed() >= PRESENCE_EVERY {
                    shared_at = Instant::now();
                    if let Err(e) = s.presence.sync() {
                        tracing::warn!(error = %e, "cannot share the connected consoles");
                    }
                }
                if pruned_at.elapsed() >= PRUNE_EVERY {
                    pruned_at = Instant::now();
                    if let Err(e) = s.store.prune_shared(s.store.now() - SHARED_KEPT_SECS) {
                        tracing::warn!(error = %e, "cannot prune old events");
                    }
                }
            }
        })
        .map_err(|e| ServiceError::Storage(crate::store::StoreError::Io(e)))?;
    Ok(())
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
