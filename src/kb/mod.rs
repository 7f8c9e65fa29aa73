//! Knowledge base: the FAQ entries and product catalogue written by a store's
//! operators, loaded from `knowledge_base/` (TOML, JSON Lines, `dict.txt`,
//! `synonyms.txt`) and validated with every problem located by file and line.
//!
//! Depends on nothing else in the crate.

mod edit;
mod error;
mod import;
mod jsonl;
mod load;
mod toml_file;
mod types;
mod validate;

pub use edit::{FaqEdit, FaqInput, apply_edits, export_jsonl, export_toml};
pub use error::{KbError, Problem};
pub use import::{ImportReport, export_csv, parse_csv, parse_jsonl, quote_cell};
pub use load::{KbOptions, load_dir, load_path};
pub use types::{Faq, KnowledgeBase, Lexicon, Location, Product, SmallTalk, language};
pub use validate::{
    MAX_ANSWER_CHARS, MAX_ID_CHARS, MAX_PHRASING_CHARS, MAX_SIMILAR, check_id, check_length, check_similar_count,
    is_blank,
};
