-- Knowledge-base edits made through the admin API or imports, applied in
-- order on top of the knowledge files at every (re)load.
CREATE TABLE kb_edits (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    faq_id     TEXT NOT NULL,
    entry      TEXT, -- JSON FaqInput; NULL deletes the entry
    created_at INTEGER NOT NULL
);
