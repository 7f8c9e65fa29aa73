-- Agent accounts (issue #14): each agent logs in with their own password
-- (a PHC string: argon2id with its salt and parameters); sessions are kept
-- by the SHA-256 of their token, so a copied database holds no live token.
CREATE TABLE agents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    login         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    agent_id   INTEGER NOT NULL REFERENCES agents(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_agent ON sessions(agent_id);

-- Who did it: NULL is the store's API key (automation) or an action before accounts.
ALTER TABLE messages ADD COLUMN agent_id INTEGER REFERENCES agents(id);
ALTER TABLE messages ADD COLUMN author TEXT; -- the agent's display name when sent
ALTER TABLE feedback ADD COLUMN agent_id INTEGER REFERENCES agents(id);
-- The one agent handling a conversation; NULL: in the queue.
ALTER TABLE conversations ADD COLUMN owner_id INTEGER REFERENCES agents(id);
