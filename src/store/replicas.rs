//! What replicas on one database share besides conversations: the live
//! event log, the agents' connected consoles, and the widget's rate limits.

use super::db::{Conn, Dialect, Listener, OptionalExtension, params};
use super::{Store, StoreError};

/// PostgreSQL's notification channel for new events (LISTEN/NOTIFY).
pub const EVENTS_CHANNEL: &str = "xiaoer_events";

/// One logged live event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub conversation_id: String,
    pub kind: String,
    /// JSON, as the pages receive it.
    pub body: String,
}

/// A console as the replicas share it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedConsole {
    pub slot: String,
    pub name: Option<String>,
    pub replica: String,
    pub agent_id: Option<i64>,
    pub away: bool,
}

impl Store {
    /// Appends an event; its id. In a writing transaction, so ids become
    /// visible in order (a reader past id N never misses a smaller one);
    /// on PostgreSQL the commit notifies the listening replicas.
    pub fn append_event(&self, conversation_id: &str, kind: &str, body: &str) -> Result<i64, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let id = tx.query_row(
            "INSERT INTO events (conversation_id, kind, body, created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            params![conversation_id, kind, body, self.now()],
            |r| r.get(0),
        )?;
        if tx.dialect() == Dialect::Postgres {
            tx.execute_batch(&format!("NOTIFY {EVENTS_CHANNEL}"))?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Calls `wake` whenever another replica appends an event, while the
    /// listener lives: PostgreSQL's NOTIFY; None on SQLite (poll instead).
    pub fn listen_events(&self, wake: impl Fn() + Send + 'static) -> Result<Option<Listener>, StoreError> {
        match &self.readers_open {
            Some(super::Location::Postgres(url)) => Ok(Some(super::db::listen(url, EVENTS_CHANNEL, wake)?)),
            _ => Ok(None),
        }
    }

    /// Events after `after` (of one conversation, or all), oldest first, at most `limit`.
    pub fn events_after(
        &self,
        after: i64,
        conversation_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let conn = self.read()?;
        let row = |r: &super::db::Row| {
            Ok(StoredEvent { id: r.get(0)?, conversation_id: r.get(1)?, kind: r.get(2)?, body: r.get(3)? })
        };
        let select = "SELECT id, conversation_id, kind, body FROM events";
        let rows = match conversation_id {
            Some(c) => conn.query_map(
                &format!("{select} WHERE conversation_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"),
                params![c, after, limit as i64],
                row,
            )?,
            None => conn.query_map(
                &format!("{select} WHERE id > ?1 ORDER BY id LIMIT ?2"),
                params![after, limit as i64],
                row,
            )?,
        };
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest event's id (0: none).
    pub fn last_event_id(&self) -> Result<i64, StoreError> {
        Ok(self.read()?.query_row("SELECT COALESCE(MAX(id), 0) FROM events", (), |r| r.get(0))?)
    }

    /// Forgets events, consoles and rate limits older than `before` (unix seconds).
    pub fn prune_shared(&self, before: i64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute("DELETE FROM events WHERE created_at < ?1", [before])?;
        conn.execute("DELETE FROM consoles WHERE seen_at < ?1", [before * 1000])?;
        conn.execute("DELETE FROM rate_limits WHERE tat < ?1", [before * 1000])?;
        Ok(())
    }

    /// A replica's consoles now: `live` are refreshed (`seen_at` = `now_ms`;
    /// a new one is stored as it is, an existing one keeps its stored away
    /// flag, which any replica may set), `gone` are removed. Then every
    /// console seen since `fresh_since_ms`.
    pub fn sync_consoles(
        &self,
        live: &[SharedConsole],
        gone: &[String],
        now_ms: i64,
        fresh_since_ms: i64,
    ) -> Result<Vec<SharedConsole>, StoreError> {
        if !(live.is_empty() && gone.is_empty()) {
            let conn = self.conn()?;
            let tx = conn.transaction()?;
            for c in live {
                tx.execute(
                    "INSERT INTO consoles (slot, name, replica, agent_id, away, seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (slot) DO UPDATE SET seen_at = excluded.seen_at",
                    params![c.slot, c.name, c.replica, c.agent_id, c.away, now_ms],
                )?;
            }
            for slot in gone {
                tx.execute("DELETE FROM consoles WHERE slot = ?1", [slot])?;
            }
            tx.commit()?;
        }
        let conn = self.read()?;
        let rows = conn.query_map(
            "SELECT slot, name, replica, agent_id, away FROM consoles WHERE seen_at >= ?1 ORDER BY slot",
            [fresh_since_ms],
            |r| {
                Ok(SharedConsole {
                    slot: r.get(0)?,
                    name: r.get(1)?,
                    replica: r.get(2)?,
                    agent_id: r.get(3)?,
                    away: r.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks the consoles called `name` away or back, whichever replica
    /// they are connected to; how many there were.
    pub fn set_console_away(&self, name: &str, away: bool) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute("UPDATE consoles SET away = ?2 WHERE name = ?1", params![name, away])?)
    }

    /// One request of `client` at `now_ms` under a limit of one per
    /// `interval_ms` with bursts of `burst` (GCRA, shared by replicas):
    /// whether it is allowed. A refused request changes nothing.
    pub fn rate_allow(&self, client: &str, now_ms: i64, interval_ms: i64, burst: i64) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        Ok(rate_allow(&conn, client, now_ms, interval_ms, burst)?.is_some())
    }
}

fn rate_allow(conn: &Conn, client: &str, now: i64, interval: i64, burst: i64) -> super::db::Result<Option<i64>> {
    let max = match conn.dialect() {
        Dialect::Sqlite => "MAX",
        Dialect::Postgres => "GREATEST",
    };
    // The new arrival time must stay within `burst` intervals of now.
    let sql = format!(
        "INSERT INTO rate_limits (client, tat) VALUES (?1, CAST(?2 AS BIGINT) + ?3)
         ON CONFLICT (client) DO UPDATE SET tat = {max}(rate_limits.tat, ?2) + ?3
         WHERE {max}(rate_limits.tat, ?2) + ?3 - ?2 <= ?4
         RETURNING tat"
    );
    conn.query_row(&sql, params![client, now, interval, burst * interval], |r| r.get(0)).optional()
}
