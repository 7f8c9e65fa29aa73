-- Shopper thumbs up / down on an automatic answer.
CREATE TABLE ratings (
    decision_id INTEGER PRIMARY KEY REFERENCES decisions(id),
    helpful     INTEGER NOT NULL CHECK (helpful IN (0, 1)),
    created_at  INTEGER NOT NULL
);
