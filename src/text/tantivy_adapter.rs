use std::sync::Arc;

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

use super::Analyzer;

/// Name under which the analyzer is registered with tantivy.
pub const TOKENIZER_NAME: &str = "xiaoer_zh";

/// The [`Analyzer`] as a tantivy tokenizer, so that the index and the query
/// path cannot drift apart.
#[derive(Clone)]
pub struct TantivyAnalyzer(pub Arc<Analyzer>);

pub struct TermStream {
    tokens: Vec<Token>,
    next: usize,
}

impl Tokenizer for TantivyAnalyzer {
    type TokenStream<'a> = TermStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> TermStream {
        let tokens = self
            .0
            .terms(text)
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token { offset_from: 0, offset_to: 0, position, text, position_length: 1 })
            .collect();
        TermStream { tokens, next: 0 }
    }
}

impl TokenStream for TermStream {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}
