//! Agent accounts, their sessions, and which agent handles a conversation.
//! Passwords arrive here already hashed and tokens already digested: the
//! store never sees a secret.

use super::db::{self, Conn, OptionalExtension, Row, params};

use super::{Actor, Agent, AgentRole, Conversation, ConversationStatus, Store, StoreError, conversation};

/// The columns `agent_row` reads, in its order.
const AGENT_COLUMNS: &str = "id, login, display_name, role, disabled, created_at";

fn agent_row(r: &Row) -> db::Result<Agent> {
    Ok(Agent {
        id: r.get(0)?,
        login: r.get(1)?,
        display_name: r.get(2)?,
        role: r.get(3)?,
        disabled: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn agent(conn: &Conn, id: i64) -> Result<Agent, StoreError> {
    conn.query_row(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"), [id], agent_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("agent {id}")))
}

fn handled_by(conn: &Conn, c: &Conversation, owner: i64) -> StoreError {
    match agent(conn, owner) {
        Ok(a) => StoreError::Conflict(format!("conversation {} is handled by {}", c.id, a.display_name)),
        Err(e) => e,
    }
}

/// Refuses `actor` on a conversation another agent handles, unless an admin.
pub(super) fn check_owner(conn: &Conn, c: &Conversation, actor: &Actor) -> Result<(), StoreError> {
    match c.owner_id {
        Some(owner) if Some(owner) != actor.agent_id() && !actor.is_admin() => Err(handled_by(conn, c, owner)),
        _ => Ok(()),
    }
}

/// Refuses `actor` on a conversation another agent handles (admins too:
/// they transfer it first).
fn check_free(conn: &Conn, c: &Conversation, actor: &Actor) -> Result<(), StoreError> {
    match c.owner_id {
        Some(owner) if Some(owner) != actor.agent_id() => Err(handled_by(conn, c, owner)),
        _ => Ok(()),
    }
}

/// `actor` answers `c`: refused when another agent handles it; an agent
/// answering an unowned conversation becomes its owner (the API key does not).
pub(super) fn claim(conn: &Conn, c: &Conversation, actor: &Actor, now: i64) -> Result<(), StoreError> {
    check_free(conn, c, actor)?;
    match (c.owner_id, actor.agent_id()) {
        (None, Some(me)) => set_owner(conn, c, Some(me), actor, now),
        _ => Ok(()),
    }
}

/// Gives `c` to `to` (None: the queue), logging the move (the desk's
/// transfer figures come from the log).
fn set_owner(conn: &Conn, c: &Conversation, to: Option<i64>, by: &Actor, now: i64) -> Result<(), StoreError> {
    conn.execute("UPDATE conversations SET owner_id = ?2, updated_at = ?3 WHERE id = ?1", params![c.id, to, now])?;
    if c.owner_id != to {
        conn.execute(
            "INSERT INTO assignments (conversation_id, from_id, to_id, by_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.id, c.owner_id, to, by.agent_id(), now],
        )?;
    }
    Ok(())
}

impl Store {
    /// A new account; a login already taken is a Conflict.
    pub fn create_agent(
        &self,
        login: &str,
        display_name: &str,
        role: AgentRole,
        password_hash: &str,
    ) -> Result<Agent, StoreError> {
        let conn = self.conn()?;
        let id: Option<i64> = conn
            .query_row(
                "INSERT INTO agents (login, display_name, role, password_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (login) DO NOTHING RETURNING id",
                params![login, display_name, role, password_hash, self.now()],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => agent(&conn, id),
            None => Err(StoreError::Conflict(format!("login {login:?} is taken"))),
        }
    }

    pub fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))?;
        Ok(stmt.query_map((), agent_row)?.collect::<Result<_, _>>()?)
    }

    /// An enabled account by login, with its password hash.
    pub fn agent_login(&self, login: &str) -> Result<Option<(Agent, String)>, StoreError> {
        let conn = self.read()?;
        let sql = format!("SELECT {AGENT_COLUMNS}, password_hash FROM agents WHERE login = ?1 AND disabled = 0");
        Ok(conn.query_row(&sql, [login], |r| Ok((agent_row(r)?, r.get(6)?))).optional()?)
    }

    /// Changes an account; disabling it ends its sessions and returns its
    /// conversations to the queue.
    pub fn update_agent(
        &self,
        id: i64,
        display_name: Option<&str>,
        role: Option<AgentRole>,
        password_hash: Option<&str>,
        disabled: Option<bool>,
    ) -> Result<Agent, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        agent(&tx, id)?;
        tx.execute(
            "UPDATE agents SET display_name = COALESCE(?2, display_name), role = COALESCE(?3, role),
                 password_hash = COALESCE(?4, password_hash), disabled = COALESCE(?5, disabled) WHERE id = ?1",
            params![id, display_name, role, password_hash, disabled],
        )?;
        if disabled == Some(true) || password_hash.is_some() {
            tx.execute("DELETE FROM sessions WHERE agent_id = ?1", [id])?;
        }
        if disabled == Some(true) {
            // A disabled agent's conversations go back to the queue (a logged move, by no one).
            tx.execute(
                "INSERT INTO assignments (conversation_id, from_id, to_id, by_id, created_at)
                 SELECT id, owner_id, NULL, NULL, ?2 FROM conversations WHERE owner_id = ?1 AND status = 'handoff'",
                params![id, self.now()],
            )?;
            tx.execute("UPDATE conversations SET owner_id = NULL WHERE owner_id = ?1 AND status = 'handoff'", [id])?;
        }
        let a = agent(&tx, id)?;
        tx.commit()?;
        Ok(a)
    }

    pub fn create_session(&self, token_hash: &str, agent_id: i64, expires_at: i64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let now = self.now();
        // Expired sessions go whenever a new one starts: the table stays small.
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
        conn.execute(
            "INSERT INTO sessions (token_hash, agent_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, agent_id, now, expires_at],
        )?;
        Ok(())
    }

    /// The enabled agent of a session that has not expired at `now`.
    pub fn session_agent(&self, token_hash: &str, now: i64) -> Result<Option<Agent>, StoreError> {
        let conn = self.read()?;
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE disabled = 0
               AND id = (SELECT agent_id FROM sessions WHERE token_hash = ?1 AND expires_at > ?2)"
        );
        Ok(conn.query_row(&sql, params![token_hash, now], agent_row).optional()?)
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.conn()?.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
        Ok(())
    }

    /// `actor` takes a waiting conversation; one another agent handles is a Conflict.
    pub fn take(&self, id: &str, actor: &Actor) -> Result<Conversation, StoreError> {
        let Some(me) = actor.agent_id() else {
            return Err(StoreError::Conflict("only a logged-in agent can take a conversation".into()));
        };
        self.assign(id, Some(me), actor, check_free)
    }

    /// Hands a conversation to another agent (`to`), or back to the queue
    /// (None): its owner may, and an admin.
    pub fn transfer(&self, id: &str, actor: &Actor, to: Option<i64>) -> Result<Conversation, StoreError> {
        self.assign(id, to, actor, |conn, c, actor| match c.owner_id {
            Some(_) => check_owner(conn, c, actor),
            None if actor.is_admin() => Ok(()),
            None => Err(StoreError::Conflict(format!("conversation {id} is in the queue: take it first"))),
        })
    }

    /// Automatic assignment: each unowned conversation in the queue, in the
    /// queue's order, goes to the least-loaded of the `present` agents
    /// (conversations they handle now; ties to the lower id) that has fewer
    /// than `limit`, but never back to the agent who handed it back. One
    /// transaction, so two calls never give one conversation twice. Returns
    /// the conversations assigned.
    pub fn assign_waiting(&self, present: &[i64], limit: usize) -> Result<Vec<String>, StoreError> {
        if present.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let waiting: Vec<String> = tx
            .prepare(
                "SELECT c.id FROM tickets t JOIN conversations c ON c.id = t.conversation_id
                 WHERE t.status = 'open' AND c.status = 'handoff' AND c.owner_id IS NULL
                 ORDER BY t.message_left_at IS NULL, t.message_left_at, t.created_at, t.id",
            )?
            .query_map((), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut load = Vec::with_capacity(present.len());
        for &id in present {
            let enabled: Option<i64> =
                tx.query_row("SELECT id FROM agents WHERE id = ?1 AND disabled = 0", [id], |r| r.get(0)).optional()?;
            if enabled.is_some() {
                let n: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM conversations WHERE owner_id = ?1 AND status = 'handoff'",
                    [id],
                    |r| r.get(0),
                )?;
                load.push((n as usize, id));
            }
        }
        let now = self.now();
        let mut assigned = Vec::new();
        for id in waiting {
            // One handed back to the queue by hand is for someone else.
            let handed_back: Option<i64> = tx
                .query_row(
                    "SELECT from_id FROM assignments WHERE conversation_id = ?1 ORDER BY id DESC LIMIT 1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let room = load.iter_mut().filter(|(n, agent)| *n < limit && Some(*agent) != handed_back);
            let Some(next) = room.min() else { continue };
            next.0 += 1;
            set_owner(&tx, &conversation(&tx, &id)?, Some(next.1), &Actor::API_KEY, now)?;
            assigned.push(id);
        }
        tx.commit()?;
        Ok(assigned)
    }

    /// `actor` gives a waiting conversation to `to` (None: the queue) when `allowed` agrees.
    fn assign(
        &self,
        id: &str,
        to: Option<i64>,
        actor: &Actor,
        allowed: impl FnOnce(&Conn, &Conversation, &Actor) -> Result<(), StoreError>,
    ) -> Result<Conversation, StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        let c = conversation(&tx, id)?;
        if c.status != ConversationStatus::Handoff {
            return Err(StoreError::Conflict(format!("conversation {id} is not with the agents ({:?})", c.status)));
        }
        allowed(&tx, &c, actor)?;
        if let Some(to) = to {
            let target = agent(&tx, to)?;
            if target.disabled {
                return Err(StoreError::Conflict(format!("agent {} is disabled", target.display_name)));
            }
        }
        set_owner(&tx, &c, to, actor, self.now())?;
        let c = conversation(&tx, id)?;
        tx.commit()?;
        Ok(c)
    }
}
