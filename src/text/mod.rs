//! Text analysis: one normalisation and one segmentation used for both indexing
//! and querying, so that a phrasing and a query meet on the same terms.
//!
//! Invariant: this module does no IO. Custom words and synonym groups are
//! handed in by the caller (they come from the knowledge base).

mod analyzer;
mod clean;
mod locale;
mod normalize;
mod tantivy_adapter;

pub use analyzer::Analyzer;
pub use clean::{Cleaned, LONG_MESSAGE_CHARS, clean};
pub use locale::detect_locale;
pub(crate) use normalize::is_han;
pub use normalize::{fold, normalize};
pub use tantivy_adapter::{TOKENIZER_NAME, TantivyAnalyzer};
