-- Proposed knowledge-base changes waiting for an operator: new FAQs mined
-- from questions that ended in handoff or clarify, and similar phrasings
-- learned from drafts agents accepted or lightly edited.
CREATE TABLE proposals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('new_faq', 'similar')),
    faq_id      TEXT,
    text        TEXT NOT NULL,
    count       INTEGER NOT NULL,
    examples    TEXT NOT NULL, -- JSON array of shopper questions
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'dismissed')),
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER
);
CREATE UNIQUE INDEX one_pending_proposal ON proposals(kind, COALESCE(faq_id, ''), text) WHERE status = 'pending';
