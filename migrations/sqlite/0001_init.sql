-- Conversations between a shopper, the bot and agents.
CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL CHECK (status IN ('bot', 'handoff', 'closed')),
    locale          TEXT NOT NULL,
    product_id      TEXT,
    last_question   TEXT,
    last_faq_id     TEXT,
    unresolved_turns INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    role            TEXT NOT NULL CHECK (role IN ('shopper', 'bot', 'agent')),
    text            TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);

-- One row per shopper message the bot decided on, with its scores.
CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    action          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    faq_id          TEXT,
    confidence      REAL NOT NULL,
    candidates      TEXT NOT NULL, -- JSON [{faq_id, score, bm25, cosine}]
    created_at      INTEGER NOT NULL
);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    reason          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created_at      INTEGER NOT NULL,
    closed_at       INTEGER
);
CREATE UNIQUE INDEX one_open_ticket ON tickets(conversation_id) WHERE status = 'open';

CREATE TABLE suggestions (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    message_id      INTEGER REFERENCES messages(id),
    rank            INTEGER NOT NULL,
    faq_id          TEXT NOT NULL,
    text            TEXT NOT NULL,
    confidence      REAL NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE feedback (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    suggestion_id   TEXT NOT NULL REFERENCES suggestions(id),
    verdict         TEXT NOT NULL CHECK (verdict IN ('accepted', 'edited', 'rejected')),
    final_text      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX one_feedback_per_suggestion ON feedback(suggestion_id);
