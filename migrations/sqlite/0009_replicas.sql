-- What replicas sharing one database share besides the rows above (issue #15).

-- Live events (agent replies, closing, queue changes): appended here and
-- read back by every replica in id order, so a stream on any replica gets
-- them; a reconnecting stream replays what it missed (Last-Event-ID).
-- Kept a day.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL, -- the event as the pages receive it (JSON)
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_by_conversation ON events(conversation_id, id);
CREATE INDEX events_by_created ON events(created_at);

-- Agents' consoles connected to any replica; each replica refreshes its own
-- every second, and a row not seen for a few seconds (a killed replica) no
-- longer counts.
CREATE TABLE consoles (
    slot     TEXT PRIMARY KEY,            -- the replica's id and the console's number there
    name     TEXT,                        -- the console's own id (to set itself away)
    replica  TEXT NOT NULL,
    agent_id INTEGER REFERENCES agents(id), -- NULL: the API key
    away     INTEGER NOT NULL DEFAULT 0,
    seen_at  INTEGER NOT NULL             -- unix milliseconds
);
CREATE INDEX consoles_by_name ON consoles(name);

-- Widget rate limits per client, shared by replicas: the GCRA's theoretical
-- arrival time (unix milliseconds); rows in the past are at full burst and go.
CREATE TABLE rate_limits (
    client TEXT PRIMARY KEY,
    tat    INTEGER NOT NULL
);
