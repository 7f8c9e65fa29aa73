//! Conversation state: conversations, messages, decisions with scores,
//! handoff tickets, suggestions, agent feedback, accounts and knowledge
//! edits, in SQLite (embedded, WAL; the default) or PostgreSQL (replicas
//! sharing one database), chosen by the storage URL.
//!
//! Synchronous on purpose: the services call it from blocking threads. On
//! SQLite one writer connection behind a mutex takes this process's writes
//! (SQLite serialises them anyway) and reads take read-only connections
//! from a small pool, so they never queue behind a write (WAL). On
//! PostgreSQL reads and writes take any connection from the pool. Each
//! writing transaction holds the database's write lock (see `db`), so
//! processes on one database serialise their transactions. Every multi-row change is one
//! transaction, so a crash or a concurrent request never leaves half a turn
//! behind, and counters are updated relative to the stored value inside it.
//! Depends on `kb` (the edit type) and `decision` (its action and reason).

mod agents;
mod canned;
pub mod db;
mod desk;
mod export;
mod labels;
mod replicas;
mod types;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::decision::{Action, Reason};

use db::{Conn, DbError, Dialect, OptionalExtension, Row, params};

pub use canned::CannedReply;
pub use desk::{AgentFigures, DeskFigures};
pub use export::ExportedMessage;
pub use labels::{Judged, Judgement};
pub use replicas::{EVENTS_CHANNEL, SharedConsole, StoredEvent};
pub use types::*;

/// A conversation without a message for this long has ended (shoppers
/// rarely close the widget; agents close what they handled).
const IDLE_ENDS_SECS: i64 = 30 * 60;

/// Schema migrations per database, applied in order; SQLite's `PRAGMA
/// user_version` or PostgreSQL's `schema_version` table records how many ran.
const SQLITE_MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_kb_edits.sql"),
    include_str!("../../migrations/sqlite/0003_ratings.sql"),
    include_str!("../../migrations/sqlite/0004_proposals.sql"),
    include_str!("../../migrations/sqlite/0005_messages_left.sql"),
    include_str!("../../migrations/sqlite/0006_clarify_choices.sql"),
    include_str!("../../migrations/sqlite/0007_agents.sql"),
    include_str!("../../migrations/sqlite/0008_desk.sql"),
    include_str!("../../migrations/sqlite/0009_replicas.sql"),
];
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_replicas.sql"),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Knowledge edits were derived from version `expected`, but another
    /// process stored edits since (the caller derives them again).
    #[error("the knowledge base is at version {current}, not {expected}")]
    StaleKnowledge { expected: i64, current: i64 },
    #[error("database directory: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Store {
    /// SQLite's one writing connection (None on PostgreSQL: the pool writes).
    writer: Option<Mutex<Conn>>,
    /// What pooled connections connect to (None: in memory, the writer does everything).
    readers_open: Option<Location>,
    /// Idle reader connections, reused.
    readers: Mutex<Readers>,
    /// Signalled when a reader connection comes back to the pool.
    reader_back: std::sync::Condvar,
    clock: Clock,
}

/// A database the store connects to.
#[derive(Clone)]
enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    fn reader(&self) -> Result<Conn, StoreError> {
        Ok(match self {
            Location::Sqlite(path) => {
                let c = rusqlite::Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(DbError::from)?;
                c.busy_timeout(std::time::Duration::from_secs(5)).map_err(DbError::from)?;
                Conn::sqlite(c)
            }
            Location::Postgres(url) => Conn::postgres(url)?,
        })
    }
}

/// Most pooled connections a store opens (SQLite: its readers; PostgreSQL:
/// all), since PostgreSQL's connections are shared by every replica (100
/// by default).
const MAX_POOLED: usize = 16;
/// Of those, most that write at once (PostgreSQL): writers waiting for the
/// database's write lock never take every connection from the reads.
const MAX_WRITING: usize = 8;

/// Pooled connections: the idle ones, how many exist in all, and how many write.
#[derive(Default)]
struct Readers {
    idle: Vec<Conn>,
    open: usize,
    writing: usize,
}

/// A pooled connection, returned to the pool when dropped.
struct Reader<'a> {
    conn: Option<Conn>,
    store: &'a Store,
    /// Taken to write (counted in `writing`).
    writes: bool,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("taken only on drop")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut readers = lock(&self.store.readers);
            readers.writing -= self.writes as usize;
            match conn.is_closed() {
                true => readers.open -= 1,
                false => readers.idle.push(conn),
            }
            self.store.reader_back.notify_all();
        }
    }
}

/// A connection held for a while: a pooled one, or SQLite's writer.
enum Held<'a> {
    Pooled(Reader<'a>),
    Writer(MutexGuard<'a, Conn>),
}

impl std::ops::Deref for Held<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match self {
            Held::Pooled(r) => r,
            Held::Writer(w) => w,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves SQLite consistent (transactions roll back).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the store reads the time (unix seconds): the system clock, or a
/// hand-set one so that tests can script conversations with known timings.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<std::sync::Arc<std::sync::atomic::AtomicI64>>);

impl Clock {
    /// A clock that shows `start` until it is moved.
    pub fn manual(start: i64) -> Clock {
        Clock(Some(std::sync::Arc::new(start.into())))
    }

    /// Moves a manual clock on by `secs` (the system clock ignores it).
    pub fn advance(&self, secs: i64) {
        if let Some(t) = &self.0 {
            t.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> i64 {
        match &self.0 {
            Some(t) => t.load(std::sync::atomic::Ordering::SeqCst),
            None => chrono::Utc::now().timestamp(),
        }
    }
}

/// The URL scheme of each database (`postgresql://` is PostgreSQL's other spelling).
pub const SQLITE_SCHEME: &str = "sqlite://";
pub const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

impl Store {
    /// The database a storage URL names: `sqlite://PATH` or `postgres://…`.
    pub fn open_url(url: &str) -> Result<Store, StoreError> {
        match url.strip_prefix(SQLITE_SCHEME) {
            Some(path) => Store::open(Path::new(path)),
            None if POSTGRES_SCHEMES.iter().any(|s| url.starts_with(s)) => Store::open_postgres(url),
            None => Err(StoreError::Conflict(format!("storage URL {url:?}: neither sqlite:// nor postgres://"))),
        }
    }

    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = rusqlite::Connection::open(path).map_err(DbError::from)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(DbError::from)?;
        // NORMAL in WAL mode: a committed transaction survives a killed
        // process; only an OS crash or power loss can drop the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(DbError::from)?;
        Self::init_sqlite(conn, Some(Location::Sqlite(path.to_path_buf())))
    }

    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init_sqlite(rusqlite::Connection::open_in_memory().map_err(DbError::from)?, None)
    }

    fn init_sqlite(conn: rusqlite::Connection, readers: Option<Location>) -> Result<Store, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON").map_err(DbError::from)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(DbError::from)?;
        let conn = Conn::sqlite(conn);
        let applied = |c: &Conn| c.query_row("PRAGMA user_version", (), |r| r.get::<usize>(0));
        let record = |c: &Conn, n: usize| c.execute_batch(&format!("PRAGMA user_version = {n}"));
        migrate(&conn, SQLITE_MIGRATIONS, applied, record)?;
        Ok(Store::with_connections(Some(conn), readers))
    }

    fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let conn = Conn::postgres(url)?;
        // Under the write lock: replicas starting together on a new database
        // would otherwise race to create it.
        let tx = conn.transaction()?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        tx.commit()?;
        let applied = |c: &Conn| c.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", (), |r| r.get(0));
        let record = |c: &Conn, n: usize| {
            c.execute("DELETE FROM schema_version", ())?;
            c.execute("INSERT INTO schema_version (version) VALUES (?1)", [n])?;
            Ok(())
        };
        migrate(&conn, POSTGRES_MIGRATIONS, applied, record)?;
        let store = Store::with_connections(None, Some(Location::Postgres(url.to_string())));
        // The migrating connection is the pool's first.
        *lock(&store.readers) = Readers { idle: vec![conn], open: 1, writing: 0 };
        Ok(store)
    }

    fn with_connections(writer: Option<Conn>, readers_open: Option<Location>) -> Store {
        Store {
            writer: writer.map(Mutex::new),
            readers_open,
            readers: Mutex::default(),
            reader_back: std::sync::Condvar::new(),
            clock: Clock::default(),
        }
    }

    /// Whether replicas may share this database (PostgreSQL): then what each
    /// process keeps for itself (rate limits) is kept in the database too.
    pub fn is_shared(&self) -> bool {
        matches!(self.readers_open, Some(Location::Postgres(_)))
    }

    /// The same store reading the time from `clock`.
    pub fn with_clock(self, clock: Clock) -> Store {
        Store { clock, ..self }
    }

    /// Now, by the store's clock: every stored time and every expiry check uses it.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A connection to write with: SQLite's writer, or a pooled one.
    fn conn(&self) -> Result<Held<'_>, StoreError> {
        match &self.writer {
            Some(writer) => Ok(Held::Writer(lock(writer))),
            None => self.pooled(true),
        }
    }

    /// A connection for reads that does not wait for SQLite's writer.
    fn read(&self) -> Result<Held<'_>, StoreError> {
        match self.readers_open {
            Some(_) => self.pooled(false),
            None => self.conn(),
        }
    }

    /// A pooled connection: an idle one, a new one, or, when `MAX_POOLED`
    /// are busy, the next one back (a dropped one is connected again).
    fn pooled(&self, writes: bool) -> Result<Held<'_>, StoreError> {
        let location = self.readers_open.as_ref().expect("pooled connections have a location");
        let wait = |r| self.reader_back.wait(r).unwrap_or_else(|e| e.into_inner());
        let mut readers = lock(&self.readers);
        while writes && readers.writing >= MAX_WRITING {
            readers = wait(readers);
        }
        readers.writing += writes as usize;
        let held = |conn| Held::Pooled(Reader { conn: Some(conn), store: self, writes });
        loop {
            match readers.idle.pop() {
                Some(c) if c.is_closed() => readers.open -= 1,
                Some(c) => return Ok(held(c)),
                None if readers.open < MAX_POOLED => break,
                None => readers = wait(readers),
            }
        }
        readers.open += 1;
        drop(readers);
        match location.reader() {
            Ok(c) => Ok(held(c)),
            Err(e) => {
                let mut readers = lock(&self.readers);
                readers.open -= 1;
                readers.writing -= writes as usize;
                self.reader_back.notify_all();
                Err(e)
            }
        }
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.read()?.query_row("SELECT 1", (), |_| Ok(()))?;
        Ok(())
    }

    pub fn create_conversation(
        &self,
        id: &str,
        locale: &str,
        product_id: Option<&str>,
    ) -> Result<Conversation, StoreError> {
        let now = self.now();
        self.conn()?.execute(
            "INSERT INTO conversations (id, status, locale, product_id, created_at, updated_at) VALUES (?1, 'bot', ?2, ?3, ?4, ?4)",
            params![id, locale, product_id, now],
        )?;
        self.conversation(id)
    }

    pub fn conversation(&self, id: &str) -> Result<Conversation, StoreError> {
        let conn = self.read()?;
        conversation(&conn, id)
    }

    /// Stores one shopper turn and the bot's decision atomically: the
    /// shopper message, the decision, the bot's reply (if any), the
    /// conversation's new state and, on handoff, an open ticket.
    /// Returns the decision's id (when there was one), for ratings.
    pub fn record_turn(&self, turn: &TurnRecord) -> Result<Option<i64>, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = self.now();
        let status: ConversationStatus = tx
            .query_row("SELECT status FROM conversations WHERE id = ?1", [&turn.conversation_id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("conversation {}", turn.conversation_id)))?;
        if status == ConversationStatus::Closed {
            return Err(StoreError::Conflict(format!("conversation {} is closed", turn.conversation_id)));
        }
        let message_id = insert_message(&tx, &turn.conversation_id, Role::Shopper, &turn.text, now, None)?.id;
        let mut decision_id = None;
        if let Some(d) = &turn.decision {
            decision_id = Some(tx.query_row(
                "INSERT INTO decisions (conversation_id, message_id, action, reason, faq_id, confidence, candidates, choices, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                params![
                    turn.conversation_id,
                    message_id,
                    d.action,
                    d.reason,
                    d.faq_id,
                    d.confidence,
                    d.candidates_json,
                    (!d.choices.is_empty()).then(|| serde_json::to_string(&d.choices).expect("strings serialize")),
                    now
                ],
                |r| r.get(0),
            )?);
        }
        if let Some(reply) = &turn.bot_reply {
            insert_message(&tx, &turn.conversation_id, Role::Bot, reply, now, None)?;
        }
        let status = if turn.handoff_reason.is_some() { ConversationStatus::Handoff } else { status };
        tx.execute(
            "UPDATE conversations SET status = ?2, product_id = COALESCE(?3, product_id), locale = ?4,
                 last_question = COALESCE(?5, last_question), last_faq_id = COALESCE(?6, last_faq_id),
                 unresolved_turns = CASE WHEN ?7 THEN unresolved_turns + 1 ELSE 0 END, updated_at = ?8
             WHERE id = ?1",
            params![
                turn.conversation_id,
                status,
                turn.product_id,
                turn.locale,
                turn.topic_question,
                turn.decision.as_ref().and_then(|d| d.faq_id.clone()),
                turn.unresolved,
                now
            ],
        )?;
        if let Some(reason) = &turn.handoff_reason {
            tx.execute(
                "INSERT INTO tickets (conversation_id, reason, status, created_at) VALUES (?1, ?2, 'open', ?3)
                 ON CONFLICT DO NOTHING",
                params![turn.conversation_id, reason, now],
            )?;
        }
        tx.commit()?;
        Ok(decision_id)
    }

    /// A shopper's thumbs up / down on an automatic answer of their own
    /// conversation; the latest rating counts. A decision of another
    /// conversation is "not found", so ids cannot be probed.
    pub fn rate(&self, decision_id: i64, conversation_id: &str, helpful: bool) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let action: Option<Action> = conn
            .query_row(
                "SELECT action FROM decisions WHERE id = ?1 AND conversation_id = ?2",
                params![decision_id, conversation_id],
                |r| r.get(0),
            )
            .optional()?;
        match action {
            None => {
                return Err(StoreError::NotFound(format!("answer {decision_id} in conversation {conversation_id}")));
            }
            Some(Action::Answer) => {}
            Some(_) => return Err(StoreError::Conflict("only automatic answers can be rated".into())),
        }
        conn.execute(
            "INSERT INTO ratings (decision_id, helpful, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (decision_id) DO UPDATE SET helpful = excluded.helpful, created_at = excluded.created_at",
            params![decision_id, helpful, self.now()],
        )?;
        Ok(())
    }

    /// Service figures for decisions and feedback made in `[from, to)` (unix seconds).
    pub fn stats(&self, from: i64, to: i64) -> Result<Stats, StoreError> {
        // First: in memory, reads share the one connection.
        let (desk, agents) = self.desk_figures(from, to)?;
        let conn = self.read()?;
        let one = |sql: &str| -> Result<i64, StoreError> { Ok(conn.query_row(sql, params![from, to], |r| r.get(0))?) };
        let conversations = one("SELECT COUNT(*) FROM conversations WHERE created_at >= ?1 AND created_at < ?2")?;
        let decisions = one("SELECT COUNT(*) FROM decisions WHERE created_at >= ?1 AND created_at < ?2")?;
        let count_action = |a: Action| -> Result<i64, StoreError> {
            Ok(conn.query_row(
                "SELECT COUNT(*) FROM decisions WHERE created_at >= ?1 AND created_at < ?2 AND action = ?3",
                params![from, to, a],
                |r| r.get(0),
            )?)
        };
        let rate = |n: i64, d: i64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        let mut stmt = conn.prepare(
            "SELECT reason, COUNT(*) FROM decisions WHERE created_at >= ?1 AND created_at < ?2 AND action = 'handoff'
             GROUP BY reason ORDER BY 2 DESC, 1",
        )?;
        let handoff_by_reason = stmt
            .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<(Reason, i64)>, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT verdict, COUNT(*) FROM feedback WHERE created_at >= ?1 AND created_at < ?2 GROUP BY verdict",
        )?;
        let verdicts = stmt
            .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<(Verdict, i64)>, _>>()?;
        let verdict = |v: Verdict| verdicts.iter().find(|(k, _)| *k == v).map_or(0, |(_, n)| *n);
        let reviewed = verdicts.iter().map(|(_, n)| n).sum::<i64>();
        let mut stmt = conn.prepare(
            "SELECT d.faq_id, COUNT(*),
                    SUM(CASE WHEN r.helpful = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN r.helpful = 0 THEN 1 ELSE 0 END)
             FROM decisions d LEFT JOIN ratings r ON r.decision_id = d.id
             WHERE d.created_at >= ?1 AND d.created_at < ?2 AND d.action = 'answer' AND d.faq_id IS NOT NULL
             GROUP BY d.faq_id ORDER BY 2 DESC, 1",
        )?;
        let mut faqs: Vec<FaqStats> = stmt
            .query_map(params![from, to], |r| {
                Ok(FaqStats {
                    faq_id: r.get(0)?,
                    hits: 0,
                    answered: r.get(1)?,
                    helpful: r.get(2)?,
                    unhelpful: r.get(3)?,
                    auto_resolution_rate: None,
                })
            })?
            .collect::<Result<_, _>>()?;
        // Hits: messages whose first candidate the FAQ was, whatever was decided.
        let top = match conn.dialect() {
            Dialect::Sqlite => "json_extract(candidates, '$[0].faq_id')",
            Dialect::Postgres => "(candidates::jsonb -> 0 ->> 'faq_id')",
        };
        let hits = format!(
            "SELECT top, COUNT(*) FROM (SELECT {top} AS top FROM decisions WHERE created_at >= ?1 AND created_at < ?2) h
             WHERE top IS NOT NULL GROUP BY top"
        );
        for hit in conn.query_map(&hits, params![from, to], |r| Ok((r.get::<String>(0)?, r.get(1)?)))? {
            let (faq_id, hits) = hit?;
            match faqs.iter_mut().find(|f| f.faq_id == faq_id) {
                Some(f) => f.hits = hits,
                None => faqs.push(FaqStats {
                    faq_id,
                    hits,
                    answered: 0,
                    helpful: 0,
                    unhelpful: 0,
                    auto_resolution_rate: None,
                }),
            }
        }
        faqs.sort_by(|a, b| (b.answered, b.hits).cmp(&(a.answered, a.hits)).then_with(|| a.faq_id.cmp(&b.faq_id)));
        // Conversations that ended, each with whether it was resolved automatically.
        let ended = "WITH ended AS (
               SELECT c.id,
                      EXISTS (SELECT 1 FROM decisions d WHERE d.conversation_id = c.id
                                AND d.action = 'answer' AND d.faq_id IS NOT NULL)
                      AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.conversation_id = c.id)
                      AND NOT EXISTS (SELECT 1 FROM decisions d JOIN ratings r ON r.decision_id = d.id
                                        WHERE d.conversation_id = c.id AND r.helpful = 0) AS resolved
               FROM conversations c
               WHERE c.created_at >= ?1 AND c.created_at < ?2 AND (c.status = 'closed' OR c.updated_at < ?3)
                 AND EXISTS (SELECT 1 FROM decisions d WHERE d.conversation_id = c.id AND d.reason != 'small_talk'))";
        let idle_since = self.now() - IDLE_ENDS_SECS;
        let (ended_conversations, auto_resolved): (i64, i64) = conn.query_row(
            &format!("{ended} SELECT COUNT(*), COALESCE(SUM(CASE WHEN resolved THEN 1 ELSE 0 END), 0) FROM ended"),
            params![from, to, idle_since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut stmt = conn.prepare(&format!(
            "{ended} SELECT d.faq_id, COUNT(DISTINCT e.id), COUNT(DISTINCT CASE WHEN e.resolved THEN e.id END)
             FROM ended e JOIN decisions d ON d.conversation_id = e.id AND d.action = 'answer' AND d.faq_id IS NOT NULL
             GROUP BY d.faq_id"
        ))?;
        let per_faq = stmt
            .query_map(params![from, to, idle_since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<(String, i64, i64)>, _>>()?;
        for f in &mut faqs {
            f.auto_resolution_rate =
                per_faq.iter().find(|(id, _, _)| *id == f.faq_id).map(|(_, ended, resolved)| rate(*resolved, *ended));
        }
        Ok(Stats {
            from,
            to,
            conversations,
            decisions,
            auto_answer_rate: rate(count_action(Action::Answer)?, decisions),
            clarify_rate: rate(count_action(Action::Clarify)?, decisions),
            handoff_rate: rate(count_action(Action::Handoff)?, decisions),
            handoff_by_reason,
            suggestions_reviewed: reviewed,
            accepted_rate: rate(verdict(Verdict::Accepted), reviewed),
            edited_rate: rate(verdict(Verdict::Edited), reviewed),
            rejected_rate: rate(verdict(Verdict::Rejected), reviewed),
            ended_conversations,
            auto_resolved,
            auto_resolution_rate: rate(auto_resolved, ended_conversations),
            faqs,
            desk,
            agents,
            calibration: Vec::new(),
        })
    }

    /// Appends an agent's reply.
    pub fn add_agent_message(&self, conversation_id: &str, text: &str, actor: &Actor) -> Result<Message, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let message = insert_agent_message(&tx, conversation_id, text, actor, self.now())?;
        tx.commit()?;
        Ok(message)
    }

    /// Open tickets opened before the conversation's own (all open ones
    /// when it has none yet): the shoppers ahead of it in the queue.
    pub fn tickets_ahead(&self, conversation_id: &str) -> Result<usize, StoreError> {
        let n: i64 = self.read()?.query_row(
            "SELECT COUNT(*) FROM tickets WHERE status = 'open' AND conversation_id != ?1
               AND id < COALESCE((SELECT id FROM tickets WHERE conversation_id = ?1 AND status = 'open'), 9223372036854775807)",
            [conversation_id],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Open tickets with what an agent needs to pick one: those with a
    /// message left first (oldest message first), then the rest oldest first.
    pub fn handoffs(&self) -> Result<Vec<Handoff>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(
            "SELECT t.id, t.conversation_id, t.reason, t.created_at, c.locale, c.product_id,
                    (SELECT text FROM messages m WHERE m.conversation_id = t.conversation_id AND m.role = 'shopper'
                     ORDER BY id DESC LIMIT 1),
                    t.contact_kind, t.contact, t.message_left_at,
                    (SELECT faq_id FROM decisions d WHERE d.conversation_id = t.conversation_id
                       AND d.action = 'answer' AND d.faq_id IS NOT NULL ORDER BY id DESC LIMIT 1),
                    (SELECT choices FROM decisions d WHERE d.conversation_id = t.conversation_id
                       AND d.choices IS NOT NULL ORDER BY id DESC LIMIT 1),
                    c.owner_id, a.display_name
             FROM tickets t JOIN conversations c ON c.id = t.conversation_id
                  LEFT JOIN agents a ON a.id = c.owner_id
             WHERE t.status = 'open'
             ORDER BY t.message_left_at IS NULL, t.message_left_at, t.created_at, t.id",
        )?;
        let now = self.now();
        let rows = stmt.query_map((), |r| {
            let created_at: i64 = r.get(3)?;
            Ok(Handoff {
                ticket_id: r.get(0)?,
                conversation_id: r.get(1)?,
                reason: r.get(2)?,
                created_at,
                waiting_seconds: (now - created_at).max(0),
                locale: r.get(4)?,
                product_id: r.get(5)?,
                last_message: r.get::<Option<String>>(6)?.unwrap_or_default(),
                contact_kind: r.get(7)?,
                contact: r.get(8)?,
                message_left_at: r.get(9)?,
                answered_faq_id: r.get(10)?,
                answered_question: None,
                offered_faq_ids: r
                    .get::<Option<String>>(11)?
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
                offered_questions: Vec::new(),
                owner_id: r.get(12)?,
                owner_name: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn transcript(&self, id: &str) -> Result<Transcript, StoreError> {
        let conn = self.read()?;
        let conversation = conversation(&conn, id)?;
        let mut stmt = conn.prepare(
            "SELECT id, role, text, created_at, author FROM messages WHERE conversation_id = ?1 ORDER BY id",
        )?;
        let messages = stmt.query_map([id], message_row)?.collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT id, message_id, action, reason, faq_id, confidence, created_at FROM decisions WHERE conversation_id = ?1 ORDER BY id",
        )?;
        let decisions = stmt
            .query_map([id], |r| {
                Ok(StoredDecision {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    action: r.get(2)?,
                    reason: r.get(3)?,
                    faq_id: r.get(4)?,
                    confidence: r.get(5)?,
                    created_at: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Transcript { conversation, messages, decisions })
    }

    /// Records a message the shopper of a handed-off conversation left for
    /// the agents, with how to reach them, on its open ticket.
    pub fn leave_message(
        &self,
        conversation_id: &str,
        contact_kind: ContactKind,
        contact: &str,
        text: &str,
    ) -> Result<Message, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = self.now();
        let updated = tx.execute(
            "UPDATE tickets SET contact_kind = ?2, contact = ?3, message_left_at = COALESCE(message_left_at, ?4)
             WHERE conversation_id = ?1 AND status = 'open'",
            params![conversation_id, contact_kind, contact, now],
        )?;
        if updated == 0 {
            conversation(&tx, conversation_id)?;
            return Err(StoreError::Conflict(format!("conversation {conversation_id} is not waiting for an agent")));
        }
        let message = insert_message(&tx, conversation_id, Role::Shopper, text, now, None)?;
        tx.execute("UPDATE conversations SET updated_at = ?2 WHERE id = ?1", params![conversation_id, now])?;
        tx.commit()?;
        Ok(message)
    }

    /// Whether the conversation's open ticket has a message left with contact details.
    pub fn message_left(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let n: i64 = self.read()?.query_row(
            "SELECT COUNT(*) FROM tickets WHERE conversation_id = ?1 AND status = 'open' AND message_left_at IS NOT NULL",
            [conversation_id],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// A decision's ranked candidates as stored with its turn (JSON
    /// `[{faq_id, score, bm25, cosine}]`, best first).
    pub fn decision_candidates(&self, decision_id: i64) -> Result<String, StoreError> {
        self.read()?
            .query_row("SELECT candidates FROM decisions WHERE id = ?1", [decision_id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("decision {decision_id}")))
    }

    /// A conversation's shopper messages, newest first (at most `limit`).
    pub fn shopper_messages(&self, id: &str, limit: usize) -> Result<Vec<Message>, StoreError> {
        let conn = self.read()?;
        conversation(&conn, id)?;
        let mut stmt = conn.prepare(
            "SELECT id, role, text, created_at, author FROM messages WHERE conversation_id = ?1 AND role = 'shopper'
             ORDER BY id DESC LIMIT ?2",
        )?;
        Ok(stmt.query_map(params![id, limit as i64], message_row)?.collect::<Result<_, _>>()?)
    }

    pub fn save_suggestions(
        &self,
        conversation_id: &str,
        message_id: Option<i64>,
        drafts: &[Draft],
    ) -> Result<Vec<Suggestion>, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = self.now();
        let mut out = Vec::with_capacity(drafts.len());
        for (rank, d) in drafts.iter().enumerate() {
            let id = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "INSERT INTO suggestions (id, conversation_id, message_id, rank, faq_id, text, confidence, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![id, conversation_id, message_id, rank as i64, d.faq_id, d.text, d.confidence, now],
            )?;
            out.push(Suggestion {
                id,
                conversation_id: conversation_id.to_string(),
                faq_id: d.faq_id.clone(),
                question: d.question.clone(),
                text: d.text.clone(),
                confidence: d.confidence,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Stores an agent's verdict on a suggestion; an accepted or edited one
    /// is also sent to the shopper as the agent's reply.
    pub fn record_feedback(
        &self,
        suggestion_id: &str,
        verdict: Verdict,
        final_text: Option<&str>,
        actor: &Actor,
    ) -> Result<FeedbackRecord, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = self.now();
        let (conversation_id, suggested): (String, String) = tx
            .query_row("SELECT conversation_id, text FROM suggestions WHERE id = ?1", [suggestion_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("suggestion {suggestion_id}")))?;
        let sent = match verdict {
            Verdict::Accepted => Some(suggested),
            Verdict::Edited => final_text.map(str::to_string),
            Verdict::Rejected => None,
        };
        let inserted = tx.execute(
            "INSERT INTO feedback (suggestion_id, verdict, final_text, created_at, agent_id) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
            params![suggestion_id, verdict, sent, now, actor.agent_id()],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("suggestion {suggestion_id} already has feedback")));
        }
        let message = match &sent {
            Some(text) => Some(insert_agent_message(&tx, &conversation_id, text, actor, now)?),
            None => None,
        };
        tx.commit()?;
        Ok(FeedbackRecord { suggestion_id: suggestion_id.to_string(), conversation_id, verdict, message })
    }

    pub fn feedback(&self, suggestion_id: &str) -> Result<Option<(Verdict, Option<String>)>, StoreError> {
        Ok(self
            .read()?
            .query_row("SELECT verdict, final_text FROM feedback WHERE suggestion_id = ?1", [suggestion_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    /// Appends knowledge-base edits made by `agent_id` (None: the API key or the CLI), all or none.
    /// Stores `edits` as one new knowledge-base version, when the stored
    /// version is still `expected` (None: whatever it is); the new version.
    pub fn save_edits(
        &self,
        edits: &[crate::kb::FaqEdit],
        agent_id: Option<i64>,
        expected: Option<i64>,
    ) -> Result<i64, StoreError> {
        let conn = self.conn()?;
        // IMMEDIATE: the version check and the insert hold the write lock
        // together, also against another process on the same database.
        let tx = conn.transaction()?;
        let current = kb_version(&tx)?;
        if let Some(expected) = expected.filter(|e| *e != current) {
            return Err(StoreError::StaleKnowledge { expected, current });
        }
        let now = self.now();
        for e in edits {
            let entry = e.entry.as_ref().map(|x| serde_json::to_string(x).unwrap_or_default());
            tx.execute(
                "INSERT INTO kb_edits (faq_id, entry, created_at, agent_id) VALUES (?1, ?2, ?3, ?4)",
                params![e.id, entry, now, agent_id],
            )?;
        }
        let version = kb_version(&tx)?;
        tx.commit()?;
        Ok(version)
    }

    /// The knowledge base's version: the last stored edit's number (0: none).
    pub fn kb_version(&self) -> Result<i64, StoreError> {
        kb_version(&*self.read()?)
    }

    /// Every stored edit, oldest first, and the version they make.
    pub fn edits(&self) -> Result<(Vec<crate::kb::FaqEdit>, i64), StoreError> {
        let conn = self.read()?;
        let version = kb_version(&conn)?;
        let mut stmt = conn.prepare("SELECT faq_id, entry FROM kb_edits WHERE seq <= ?1 ORDER BY seq")?;
        let rows = stmt.query_map([version], |r| Ok((r.get::<String>(0)?, r.get::<Option<String>>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, entry) = row?;
            // A row this version cannot read is skipped rather than losing the rest.
            let entry = match entry {
                Some(json) => match serde_json::from_str(&json) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        tracing::warn!(faq = %id, "unreadable stored edit skipped: {e}");
                        continue;
                    }
                },
                None => None,
            };
            out.push(crate::kb::FaqEdit { id, entry });
        }
        Ok((out, version))
    }

    /// Shopper questions in `[from, to)` the bot could not answer: clarify,
    /// or handoff for lack of a match (not explicit requests or complaints).
    pub fn unanswered_questions(&self, from: i64, to: i64) -> Result<Vec<String>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(
            "SELECT m.text FROM decisions d JOIN messages m ON m.id = d.message_id
             WHERE d.created_at >= ?1 AND d.created_at < ?2
               AND (d.action = 'clarify' OR (d.action = 'handoff' AND d.reason IN ('no_confident_match', 'unresolved')))
             ORDER BY d.id",
        )?;
        Ok(stmt.query_map(params![from, to], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }

    /// What a suggestion drafted: (FAQ id, draft text, the shopper question it answered).
    pub fn suggestion_context(&self, id: &str) -> Result<(String, String, Option<String>), StoreError> {
        self.read()?
            .query_row(
                "SELECT s.faq_id, s.text, m.text FROM suggestions s LEFT JOIN messages m ON m.id = s.message_id WHERE s.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("suggestion {id}")))
    }

    /// Adds a pending proposal unless the same one is already pending.
    pub fn add_proposal(&self, p: &NewProposal) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO proposals (kind, faq_id, text, count, examples, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6) ON CONFLICT DO NOTHING",
            params![
                p.kind,
                p.faq_id,
                p.text,
                p.count,
                serde_json::to_string(&p.examples).unwrap_or_default(),
                self.now()
            ],
        )?;
        Ok(())
    }

    /// Proposals with `status`, largest first.
    pub fn proposals(&self, status: ProposalStatus) -> Result<Vec<Proposal>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(&format!("{PROPOSAL_SELECT} WHERE status = ?1 ORDER BY count DESC, id"))?;
        Ok(stmt.query_map([status], proposal_row)?.collect::<Result<_, _>>()?)
    }

    pub fn proposal(&self, id: i64) -> Result<Proposal, StoreError> {
        self.read()?
            .query_row(&format!("{PROPOSAL_SELECT} WHERE id = ?1"), [id], proposal_row)
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("proposal {id}")))
    }

    /// Marks a pending proposal approved or dismissed.
    pub fn decide_proposal(&self, id: i64, status: ProposalStatus) -> Result<(), StoreError> {
        let changed = self.conn()?.execute(
            "UPDATE proposals SET status = ?2, decided_at = ?3 WHERE id = ?1 AND status = 'pending'",
            params![id, status, self.now()],
        )?;
        if changed == 0 {
            self.proposal(id)?;
            return Err(StoreError::Conflict(format!("proposal {id} was already decided")));
        }
        Ok(())
    }

    /// Closes a conversation and its open ticket: its owner, an admin, or
    /// anyone while it is unowned; closing a closed one is a conflict.
    pub fn close(&self, id: &str, actor: &Actor) -> Result<Conversation, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = self.now();
        let c = conversation(&tx, id)?;
        if c.status == ConversationStatus::Closed {
            return Err(StoreError::Conflict(format!("conversation {id} is already closed")));
        }
        agents::check_owner(&tx, &c, actor)?;
        tx.execute("UPDATE conversations SET status = 'closed', updated_at = ?2 WHERE id = ?1", params![id, now])?;
        tx.execute(
            "UPDATE tickets SET status = 'closed', closed_at = ?2, closed_by = ?3 WHERE conversation_id = ?1 AND status = 'open'",
            params![id, now, actor.agent_id()],
        )?;
        let c = conversation(&tx, id)?;
        tx.commit()?;
        Ok(c)
    }
}

fn conversation(conn: &Conn, id: &str) -> Result<Conversation, StoreError> {
    conn.query_row(
        "SELECT id, status, locale, product_id, last_question, last_faq_id, unresolved_turns, created_at, updated_at,
                owner_id
         FROM conversations WHERE id = ?1",
        [id],
        |r| {
            Ok(Conversation {
                id: r.get(0)?,
                status: r.get(1)?,
                locale: r.get(2)?,
                product_id: r.get(3)?,
                last_question: r.get(4)?,
                last_faq_id: r.get(5)?,
                unresolved_turns: r.get(6)?,
                created_at: r.get(7)?,
                updated_at: r.get(8)?,
                owner_id: r.get(9)?,
            })
        },
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("conversation {id}")))
}

/// The columns `proposal_row` reads, in its order.
const PROPOSAL_SELECT: &str = "SELECT id, kind, faq_id, text, count, examples, status, created_at FROM proposals";

fn proposal_row(r: &Row) -> db::Result<Proposal> {
    let examples: String = r.get(5)?;
    Ok(Proposal {
        id: r.get(0)?,
        kind: r.get(1)?,
        faq_id: r.get(2)?,
        text: r.get(3)?,
        count: r.get(4)?,
        examples: serde_json::from_str(&examples).unwrap_or_default(),
        status: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// A `messages` row selected as `id, role, text, created_at, author`.
fn message_row(r: &Row) -> db::Result<Message> {
    Ok(Message { id: r.get(0)?, role: r.get(1)?, text: r.get(2)?, created_at: r.get(3)?, author: r.get(4)? })
}

/// An agent's reply, signed with their name. An agent answering a queued
/// conversation takes it; one another agent handles is refused (Conflict).
fn insert_agent_message(
    conn: &Conn,
    conversation_id: &str,
    text: &str,
    actor: &Actor,
    now: i64,
) -> Result<Message, StoreError> {
    let c = conversation(conn, conversation_id)?;
    if c.status == ConversationStatus::Closed {
        return Err(StoreError::Conflict(format!("conversation {conversation_id} is closed")));
    }
    agents::claim(conn, &c, actor, now)?;
    insert_message(conn, conversation_id, Role::Agent, text, now, actor.agent.as_ref())
}

/// Appends a message; an agent's is signed with `agent`'s name.
fn insert_message(
    conn: &Conn,
    conversation_id: &str,
    role: Role,
    text: &str,
    now: i64,
    agent: Option<&Agent>,
) -> Result<Message, StoreError> {
    let author = agent.map(|a| a.display_name.clone());
    let id = conn.query_row(
        "INSERT INTO messages (conversation_id, role, text, created_at, agent_id, author) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         RETURNING id",
        params![conversation_id, role, text, now, agent.map(|a| a.id), author],
        |r| r.get(0),
    )?;
    Ok(Message { id, role, text: text.to_string(), created_at: now, author })
}

/// Applies the migrations not yet applied, each in its own transaction
/// (which holds the write lock: replicas starting together migrate once).
fn migrate(
    conn: &Conn,
    migrations: &[&str],
    applied: impl Fn(&Conn) -> db::Result<usize>,
    record: impl Fn(&Conn, usize) -> db::Result<()>,
) -> Result<(), StoreError> {
    for (i, sql) in migrations.iter().enumerate() {
        let tx = conn.transaction()?;
        if applied(&tx)? <= i {
            tx.execute_batch(sql)?;
            record(&tx, i + 1)?;
        }
        tx.commit()?;
    }
    Ok(())
}

fn kb_version(conn: &Conn) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM kb_edits", (), |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::FaqEdit;

    #[test]
    fn an_edit_derived_from_an_old_version_is_refused_and_stores_nothing() {
        let store = Store::open_in_memory().unwrap();
        let edit = |id: &str| FaqEdit { id: id.into(), entry: None };
        assert_eq!(store.kb_version().unwrap(), 0);
        assert_eq!(store.save_edits(&[edit("a"), edit("b")], None, Some(0)).unwrap(), 2);
        // Another writer derived from version 0: refused, nothing stored.
        match store.save_edits(&[edit("c")], None, Some(0)) {
            Err(StoreError::StaleKnowledge { expected: 0, current: 2 }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(store.edits().unwrap(), (vec![edit("a"), edit("b")], 2));
        // Without an expectation (the CLI import) it is appended.
        assert_eq!(store.save_edits(&[edit("c")], None, None).unwrap(), 3);
    }
}
