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

pub use edit::{FaqEdit, FaqInput, apply_edits, export_jsonl, export_toml};
pub use error::{KbError, Problem};
pub use import::{ImportReport, export_csv, parse_csv, parse_jsonl};
pub use load::{KbOptions, load_dir, load_path};
pub use types::{Faq, KnowledgeBase, Lexicon, Location, Product};

/// PLACEHOLDER until the kb-loaders branch lands.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}'))
}
