//! Retrieval: turns a shopper's text into ranked FAQ candidates.
//!
//! BM25 proposes phrasings; candidates are aggregated per FAQ (the best
//! phrasing wins). Depends on `kb`, `text` and `index`; does no IO after
//! construction.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::index::{FaqIndex, Filter, IndexError, PhrasingRef, phrasing_table};
use crate::kb::{Faq, KnowledgeBase};
use crate::text::Analyzer;

/// Tunables of the retrieval stage (part of [`crate::config::Config`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrievalConfig {
    /// Phrasings fetched from BM25 before per-FAQ aggregation.
    pub bm25_candidates: usize,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            bm25_candidates: 50,
        }
    }
}

/// One FAQ proposed for a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Position of the FAQ in the knowledge base.
    pub faq: usize,
    /// Ranking score of the mode used (BM25 score in BM25 mode).
    pub score: f32,
    /// Best BM25 score among the FAQ's phrasings (0 when not matched).
    pub bm25: f32,
    /// Ordinal of the phrasing that matched best.
    pub phrasing: usize,
}

pub struct Retriever {
    kb: Arc<KnowledgeBase>,
    analyzer: Arc<Analyzer>,
    index: FaqIndex,
    phrasings: Vec<PhrasingRef>,
    config: RetrievalConfig,
}

impl Retriever {
    pub fn new(
        kb: Arc<KnowledgeBase>,
        analyzer: Arc<Analyzer>,
        index: FaqIndex,
        config: RetrievalConfig,
    ) -> Self {
        let phrasings = phrasing_table(&kb);
        Retriever {
            kb,
            analyzer,
            index,
            phrasings,
            config,
        }
    }

    pub fn kb(&self) -> &KnowledgeBase {
        &self.kb
    }

    pub fn faq(&self, c: &Candidate) -> &Faq {
        &self.kb.faqs[c.faq]
    }

    /// The text of a candidate's best-matching phrasing.
    pub fn phrasing_text(&self, c: &Candidate) -> &str {
        let p = self.phrasings[c.phrasing];
        self.kb.faqs[p.faq as usize]
            .phrasings()
            .nth(p.idx as usize)
            .unwrap_or_default()
    }

    /// The `k` best FAQs for `text` under `filter`, best first.
    pub fn search(
        &self,
        text: &str,
        filter: &Filter,
        k: usize,
    ) -> Result<Vec<Candidate>, IndexError> {
        let terms = self.analyzer.terms(text);
        let hits = self
            .index
            .search(&terms, filter, self.config.bm25_candidates.max(k))?;
        let mut best: HashMap<u32, Candidate> = HashMap::with_capacity(hits.len());
        for (ord, score) in hits {
            let faq = self.phrasings[ord as usize].faq;
            best.entry(faq).or_insert(Candidate {
                faq: faq as usize,
                score,
                bm25: score,
                phrasing: ord as usize,
            });
        }
        let mut out: Vec<Candidate> = best.into_values().collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.faq.cmp(&b.faq)));
        out.truncate(k);
        Ok(out)
    }
}
