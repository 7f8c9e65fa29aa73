-- What the agent desk's service figures are computed from (issue #14).

-- Every change of a conversation's owner: taking it, an agent answering an
-- unowned one, a transfer to another agent or back to the queue.
CREATE TABLE assignments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    from_id         INTEGER REFERENCES agents(id), -- NULL: from the queue
    to_id           INTEGER REFERENCES agents(id), -- NULL: back to the queue
    by_id           INTEGER REFERENCES agents(id), -- NULL: the API key, or automatic assignment
    created_at      INTEGER NOT NULL
);
CREATE INDEX assignments_by_conversation ON assignments(conversation_id, id);

-- Who closed a ticket (NULL: the API key, or before accounts).
ALTER TABLE tickets ADD COLUMN closed_by INTEGER REFERENCES agents(id);
CREATE INDEX tickets_by_created ON tickets(created_at);

-- The shopper's satisfaction survey after an agent closed the conversation.
CREATE TABLE surveys (
    ticket_id  INTEGER PRIMARY KEY REFERENCES tickets(id),
    score      INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment    TEXT,
    created_at INTEGER NOT NULL
);

-- Who made a knowledge-base edit (NULL: the API key, a CLI import, or before accounts).
ALTER TABLE kb_edits ADD COLUMN agent_id INTEGER REFERENCES agents(id);

-- Canned replies (快捷短语): store-wide (agent_id NULL) or one agent's own.
CREATE TABLE canned_replies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id   INTEGER REFERENCES agents(id),
    title      TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_by INTEGER REFERENCES agents(id), -- NULL: the API key
    created_at INTEGER NOT NULL
);
CREATE INDEX canned_by_agent ON canned_replies(agent_id);
CREATE INDEX feedback_by_created ON feedback(created_at);

-- Exporting a window's conversations with each message's decision.
CREATE INDEX conversations_by_created ON conversations(created_at);
CREATE INDEX decisions_by_message ON decisions(message_id);
