//! Live updates for the pages: a broadcast of conversation events, streamed
//! as Server-Sent Events to the shopper (their conversation only) and to
//! agents (everything).

use serde::Serialize;
use tokio::sync::broadcast;

use crate::store::Message;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub conversation_id: String,
    /// `shopper` (new shopper message), `handoff` (a ticket opened),
    /// `agent` (an agent replied) or `closed`.
    pub kind: &'static str,
    pub message: Option<Message>,
    pub reason: Option<String>,
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
