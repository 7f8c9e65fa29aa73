//! Live updates for the pages: a broadcast of conversation events, streamed
//! as Server-Sent Events to the shopper (their conversation only) and to
//! agents (everything).

use serde::Serialize;
use tokio::sync::broadcast;

use crate::decision::Reason;
use crate::store::Message;

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

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Events {
    pub fn new() -> Events {
        // Slow listeners skip ahead (Lagged) rather than block senders.
        Events { tx: broadcast::channel(256).0 }
    }

    pub fn send(&self, event: Event) {
        // No listener is not an error.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}
