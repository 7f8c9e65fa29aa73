//! Live conversation events for the pages (shopper replies, handoffs, agent
//! replies, closing, assignments), shared by every replica on the database.
//!
//! An event is appended to the store's log first; one thread per process
//! reads the log in order and broadcasts what it finds to this process's
//! streams. So an agent replying through replica B reaches a shopper whose
//! stream is on replica A, every process sees one order, and a stream that
//! reconnects replays what it missed from the log (`Last-Event-ID`).
//! The reader is woken at once by this process's events and by PostgreSQL's
//! NOTIFY; on SQLite it also polls (another process's events).

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use super::ServiceError;
use crate::decision::Reason;
use crate::store::{Message, Store, StoredEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new shopper message (agents only).
    Shopper,
    /// A ticket opened.
    Handoff,
    /// An agent replied.
    Agent,
    /// The conversation ended.
    Closed,
    /// An agent took it, or it was transferred or returned to the queue.
    Assigned,
}

impl EventKind {
    /// The SSE `event:` name the pages listen for.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Shopper => "shopper",
            EventKind::Handoff => "handoff",
            EventKind::Agent => "agent",
            EventKind::Closed => "closed",
            EventKind::Assigned => "assigned",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub conversation_id: String,
    pub kind: EventKind,
    pub message: Option<Message>,
    pub reason: Option<Reason>,
}

impl Event {
    pub fn new(conversation_id: impl Into<String>, kind: EventKind) -> Event {
        Event { conversation_id: conversation_id.into(), kind, message: None, reason: None }
    }
}

/// An event as streams send it: its number in the log, the SSE `event:`
/// name and the JSON the pages read.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub id: i64,
    pub conversation_id: Arc<str>,
    pub kind: Arc<str>,
    pub data: Arc<str>,
}

impl LiveEvent {
    /// Shoppers get their own conversation's events, but not their own messages.
    pub fn for_shopper(&self, conversation_id: &str) -> bool {
        &*self.conversation_id == conversation_id && &*self.kind != EventKind::Shopper.name()
    }
}

impl From<StoredEvent> for LiveEvent {
    fn from(e: StoredEvent) -> LiveEvent {
        LiveEvent { id: e.id, conversation_id: e.conversation_id.into(), kind: e.kind.into(), data: e.body.into() }
    }
}

/// Most events one replay sends; a stream that missed more ends after them
/// and the browser reconnects for the rest.
const MAX_REPLAY: usize = 1000;

/// What a reconnecting stream missed.
pub struct Replay {
    pub events: Vec<LiveEvent>,
    /// Live events after this id follow the replay.
    pub after: i64,
    /// Everything missed is in `events` (else the stream ends after them).
    pub complete: bool,
}

pub struct Events {
    store: Arc<Store>,
    tx: broadcast::Sender<LiveEvent>,
    /// Wakes the reader thread (this process appended an event).
    wake: std::sync::mpsc::SyncSender<()>,
    /// Taken by the reader thread when it starts.
    woken: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Events {
    pub fn new(store: Arc<Store>) -> Events {
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        // Slow listeners skip ahead (Lagged) rather than block the reader.
        Events { store, tx: broadcast::channel(256).0, wake, woken: std::sync::Mutex::new(Some(woken)) }
    }

    /// Logs `event` for every replica's streams; its number. Blocking.
    pub fn publish(&self, event: &Event) -> Result<i64, ServiceError> {
        let body = serde_json::to_string(event).expect("events serialize");
        let id = self.store.append_event(&event.conversation_id, event.kind.name(), &body)?;
        // Full: a wake-up is pending already.
        let _ = self.wake.try_send(());
        Ok(id)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// What a stream missed after event `after`: one conversation's, or all.
    /// An id the log never reached (another database's) replays nothing. Blocking.
    pub fn replay(&self, after: i64, conversation_id: Option<&str>) -> Result<Replay, ServiceError> {
        if after > self.store.last_event_id()? {
            return Ok(Replay { events: Vec::new(), after: 0, complete: true });
        }
        let events = self.store.events_after(after, conversation_id, MAX_REPLAY)?;
        let complete = events.len() < MAX_REPLAY;
        let after = events.last().map_or(after, |e| e.id);
        Ok(Replay { events: events.into_iter().map(LiveEvent::from).collect(), after, complete })
    }

    /// Broadcasts the log's events after `cursor`, moving it on.
    pub(super) fn read_on(&self, cursor: &mut i64) -> Result<(), ServiceError> {
        loop {
            let batch = self.store.events_after(*cursor, None, MAX_REPLAY)?;
            let full = batch.len() == MAX_REPLAY;
            for e in batch {
                *cursor = e.id;
                // No listener is not an error.
                let _ = self.tx.send(e.into());
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The reader's wake-ups (once: the thread that reads takes them).
    pub(super) fn take_wakeups(&self) -> Option<std::sync::mpsc::Receiver<()>> {
        super::lock(&self.woken).take()
    }

    /// Wakes the reader (another replica's event, by NOTIFY).
    pub(super) fn waker(&self) -> impl Fn() + Send + 'static {
        let wake = self.wake.clone();
        move || {
            let _ = wake.try_send(());
        }
    }
}
