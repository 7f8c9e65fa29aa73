//! Retrieval: turns a shopper's text into ranked FAQ candidates.
//!
//! BM25 (tantivy) and dense (e5 cosine over every phrasing) each propose
//! phrasings; candidates are aggregated per FAQ (the best phrasing wins) and,
//! in hybrid mode, ranked by a fused score whose weights were fitted on the
//! dev sets (`xiaoer fit`). Depends on `kb`, `text`, `index`, `embed` and
//! `vectors`; does no IO after construction.

mod evidence;
mod fusion;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use evidence::{EVIDENCE_LEN, EVIDENCE_NAMES, ProductContext};
pub use fusion::{Features, Fusion};

use crate::embed::{EmbedError, Embedder, Role};
use crate::index::{FaqIndex, Filter, IndexError, PhrasingRef, phrasing_table};
use crate::kb::{Faq, KnowledgeBase};
use crate::text::{Analyzer, detect_locale};
use crate::vectors::PhrasingVectors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Lexical only (tantivy BM25 over jieba terms).
    Bm25,
    /// Semantic only (e5 cosine over every phrasing).
    Dense,
    /// Both, fused.
    Hybrid,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Bm25 => "bm25",
            Mode::Dense => "dense",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// Tunables of the retrieval stage (part of [`crate::config::Config`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrievalConfig {
    /// `bm25`, `dense` or `hybrid` (default).
    pub mode: Mode,
    /// Phrasings fetched from BM25 before per-FAQ aggregation (default 50).
    pub bm25_candidates: usize,
    /// Phrasings fetched from the dense scan (default 50).
    pub dense_candidates: usize,
    /// Which e5 prefix phrasings are embedded with. Questions are matched
    /// against questions, and `query` measured better on the dev sets.
    pub phrasing_role: Role,
    pub fusion: Fusion,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        RetrievalConfig {
            mode: Mode::Hybrid,
            bm25_candidates: 50,
            dense_candidates: 50,
            phrasing_role: Role::Query,
            fusion: Fusion::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error("{0}")]
    Index(#[from] IndexError),
    #[error("{0}")]
    Embed(#[from] EmbedError),
    #[error("retrieval mode `{0}` needs the embedding model, which is not loaded")]
    NoModel(&'static str),
    /// The model returned NaN or infinity: every cosine would be NaN.
    #[error("the query embedding is not finite")]
    NonFiniteQuery,
}

/// One FAQ proposed for a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Position of the FAQ in the knowledge base.
    pub faq: usize,
    /// Ranking score of the mode used.
    pub score: f32,
    /// Best BM25 score among the FAQ's phrasings (0 when BM25 did not propose it).
    pub bm25: f32,
    /// Best cosine among the FAQ's phrasings (0 without the model).
    pub cosine: f32,
    /// Ordinal of the phrasing that matched best.
    pub phrasing: usize,
}

/// The dense side: the model, the phrasing vectors and each FAQ's answer
/// vectors (passages; the verifier weighs how well the answer fits): row
/// `faq` is its Chinese answer, and its answers in other languages follow
/// all of those, found through `foreign_answers`.
pub struct Dense {
    pub embedder: Arc<Embedder>,
    pub vectors: PhrasingVectors,
    pub answers: PhrasingVectors,
    /// Per FAQ: (language, row in `answers`) of each answer not in Chinese.
    pub foreign_answers: Vec<Vec<(String, usize)>>,
}

impl Dense {
    /// The row of FAQ `faq`'s answer in `language`, else of its Chinese one:
    /// the answer a shopper writing in `language` gets.
    pub fn answer_row(&self, faq: usize, language: &str) -> usize {
        self.foreign_answers[faq].iter().find(|(l, _)| l == language).map_or(faq, |(_, row)| *row)
    }
}

pub struct Retriever {
    kb: Arc<KnowledgeBase>,
    analyzer: Arc<Analyzer>,
    index: FaqIndex,
    dense: Option<Dense>,
    phrasings: Vec<PhrasingRef>,
    /// First phrasing ordinal of each FAQ (phrasings of a FAQ are contiguous).
    faq_start: Vec<usize>,
    /// Folded names and aliases per product (catalogue order).
    product_names: Vec<Vec<String>>,
    /// The locale most phrasings are written in (`detect_locale`): a query
    /// in another is ranked with the cross-script fusion.
    kb_locale: &'static str,
    config: RetrievalConfig,
}

impl Retriever {
    pub fn new(
        kb: Arc<KnowledgeBase>,
        analyzer: Arc<Analyzer>,
        index: FaqIndex,
        dense: Option<Dense>,
        config: RetrievalConfig,
    ) -> Result<Self, RetrievalError> {
        if config.mode != Mode::Bm25 && dense.is_none() {
            return Err(RetrievalError::NoModel(config.mode.name()));
        }
        let phrasings = phrasing_table(&kb);
        let mut faq_start = Vec::with_capacity(kb.faqs.len() + 1);
        let mut n = 0;
        for f in &kb.faqs {
            faq_start.push(n);
            n += 1 + f.similar.len();
        }
        faq_start.push(n);
        let product_names = evidence::product_names(&kb);
        let kb_locale = main_locale(&kb);
        Ok(Retriever { kb, analyzer, index, dense, phrasings, faq_start, product_names, kb_locale, config })
    }

    pub fn kb(&self) -> &KnowledgeBase {
        &self.kb
    }

    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    pub fn config(&self) -> &RetrievalConfig {
        &self.config
    }

    pub fn embedder(&self) -> Option<&Arc<Embedder>> {
        self.dense.as_ref().map(|d| &d.embedder)
    }

    pub fn faq(&self, c: &Candidate) -> &Faq {
        &self.kb.faqs[c.faq]
    }

    /// Whether the index and the phrasing vectors can answer: one document
    /// and one finite vector per phrasing. Cheap (no scan).
    pub fn check(&self) -> Result<(), String> {
        let phrasings = self.phrasings.len();
        let docs = self.index.num_docs();
        if docs != phrasings as u64 {
            return Err(format!("index holds {docs} documents for {phrasings} phrasings"));
        }
        if let Some(dense) = &self.dense {
            if dense.vectors.len() != phrasings {
                return Err(format!("{} phrasing vectors for {phrasings} phrasings", dense.vectors.len()));
            }
            if !dense.vectors.all_finite() {
                return Err("phrasing vectors contain NaN or infinite values".to_string());
            }
            let answers = self.kb.faqs.len() + dense.foreign_answers.iter().map(Vec::len).sum::<usize>();
            if dense.answers.len() != answers || !dense.answers.all_finite() {
                return Err(format!("{} answer vectors for {answers} answers, or not finite", dense.answers.len()));
            }
        }
        Ok(())
    }

    /// The text of a candidate's best-matching phrasing.
    pub fn phrasing_text(&self, c: &Candidate) -> &str {
        let p = self.phrasings[c.phrasing];
        self.kb.faqs[p.faq as usize].phrasings().nth(p.idx as usize).unwrap_or_default()
    }

    /// The `k` best FAQs for `text` under `filter` in the configured mode.
    pub fn search(&self, text: &str, filter: &Filter, k: usize) -> Result<Vec<Candidate>, RetrievalError> {
        self.search_mode(text, filter, k, self.config.mode)
    }

    /// As [`Retriever::search`], in an explicit mode (evaluation compares modes).
    pub fn search_mode(
        &self,
        text: &str,
        filter: &Filter,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<Candidate>, RetrievalError> {
        let vector = self.query_vector(text, mode)?;
        self.search_with(text, vector.as_deref(), filter, k, mode, &|_| false)
    }

    /// As [`Retriever::search_mode`], for `text` and its embedding `vector`
    /// (required unless `mode` is BM25), leaving out the phrasings for which
    /// `skip(ordinal)` holds (self-calibration holds phrasings out).
    pub fn search_with(
        &self,
        text: &str,
        vector: Option<&[f32]>,
        filter: &Filter,
        k: usize,
        mode: Mode,
        skip: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Candidate>, RetrievalError> {
        let fusion = self.fusion_for(text);
        Ok(rank(self.candidates_with(text, vector, filter, k, mode, skip)?, k, mode, &fusion))
    }

    /// The query embedding a mode needs (none for BM25).
    pub fn query_vector(&self, text: &str, mode: Mode) -> Result<Option<Arc<[f32]>>, RetrievalError> {
        if mode == Mode::Bm25 {
            return Ok(None);
        }
        let dense = self.dense.as_ref().ok_or(RetrievalError::NoModel(mode.name()))?;
        let query = dense.embedder.embed_query(text)?;
        if !query.iter().all(|x| x.is_finite()) {
            return Err(RetrievalError::NonFiniteQuery);
        }
        Ok(Some(query))
    }

    /// Embeds the uncached ones of `texts` in one batched pass (a no-op
    /// without the model or in BM25 mode), so their searches find them cached.
    pub fn prefetch(&self, texts: &[&str]) -> Result<(), RetrievalError> {
        match self.dense.as_ref().filter(|_| self.config.mode != Mode::Bm25) {
            Some(dense) => Ok(dense.embedder.prefetch_queries(texts)?),
            None => Ok(()),
        }
    }

    /// The stored vector of phrasing `ordinal` (self-calibration queries
    /// with a phrasing's own text, so it needs no model pass).
    pub fn phrasing_vector(&self, ordinal: usize) -> Option<Vec<f32>> {
        self.dense.as_ref().map(|d| d.vectors.row(ordinal))
    }

    /// The phrasing ordinals of FAQ `faq`.
    pub fn faq_phrasings(&self, faq: usize) -> std::ops::Range<usize> {
        self.faq_start[faq]..self.faq_start[faq + 1]
    }

    /// The hybrid fusion `text` is ranked with (see [`Fusion`]).
    fn fusion_for(&self, text: &str) -> Fusion {
        let fusion = self.config.fusion;
        if detect_locale(text) == self.kb_locale { fusion } else { fusion.cross_script() }
    }

    /// Per-FAQ candidates with both features, unranked (`score` unset).
    pub fn candidates(
        &self,
        text: &str,
        filter: &Filter,
        k: usize,
        mode: Mode,
    ) -> Result<Vec<Candidate>, RetrievalError> {
        let vector = self.query_vector(text, mode)?;
        self.candidates_with(text, vector.as_deref(), filter, k, mode, &|_| false)
    }

    /// As [`Retriever::candidates`], for
    /// `text` and its embedding `vector` (required unless `mode` is BM25).
    /// Phrasings for which `skip(ordinal)` holds are left out.
    fn candidates_with(
        &self,
        text: &str,
        vector: Option<&[f32]>,
        filter: &Filter,
        k: usize,
        mode: Mode,
        skip: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Candidate>, RetrievalError> {
        let mut best: HashMap<usize, Candidate> = HashMap::new();
        if mode != Mode::Dense {
            let terms = self.analyzer.terms(text);
            let hits = self.index.search(&terms, filter, self.config.bm25_candidates.max(k))?;
            for (ord, score) in hits.into_iter().filter(|&(ord, _)| !skip(ord as usize)) {
                let faq = self.phrasings[ord as usize].faq as usize;
                best.entry(faq).or_insert(Candidate {
                    faq,
                    score: 0.0,
                    bm25: score,
                    cosine: 0.0,
                    phrasing: ord as usize,
                });
            }
        }
        if let (Some(dense), Some(query)) = (self.dense.as_ref().filter(|_| mode != Mode::Bm25), vector) {
            let keep = |ord: usize| !skip(ord) && self.passes(self.phrasings[ord].faq as usize, filter);
            for (ord, cosine) in dense.vectors.top_k(query, self.config.dense_candidates.max(k), keep) {
                let faq = self.phrasings[ord as usize].faq as usize;
                let c =
                    best.entry(faq).or_insert(Candidate { faq, score: 0.0, bm25: 0.0, cosine, phrasing: ord as usize });
                if cosine > c.cosine {
                    c.cosine = cosine;
                    c.phrasing = ord as usize;
                }
            }
            // BM25-only candidates still get their best cosine, so the fused
            // score compares like with like.
            for c in best.values_mut().filter(|c| c.cosine == 0.0) {
                for ord in self.faq_phrasings(c.faq).filter(|&o| !skip(o)) {
                    let cosine = dense.vectors.cosine(ord, query);
                    if cosine > c.cosine {
                        c.cosine = cosine;
                        c.phrasing = ord;
                    }
                }
            }
        }
        Ok(best.into_values().collect())
    }

    fn passes(&self, faq: usize, filter: &Filter) -> bool {
        let f = &self.kb.faqs[faq];
        filter.now.is_none_or(|now| f.is_valid_at(now))
            && filter.product_id.is_none_or(|p| f.products.is_empty() || f.products.iter().any(|x| x == p))
    }
}

/// Scores `candidates` in `mode`, best first, at most `k`.
fn rank(mut candidates: Vec<Candidate>, k: usize, mode: Mode, fusion: &Fusion) -> Vec<Candidate> {
    for c in &mut candidates {
        c.score = match mode {
            Mode::Bm25 => c.bm25,
            Mode::Dense => c.cosine,
            Mode::Hybrid => fusion.score(&Features { bm25: c.bm25, cosine: c.cosine }),
        };
    }
    // total_cmp ranks NaN above every score: a candidate without a real
    // score (damaged vectors) must not reach the decision.
    candidates.retain(|c| c.score.is_finite());
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.faq.cmp(&b.faq)));
    candidates.truncate(k);
    candidates
}

/// The locale most of the knowledge base's phrasings are written in.
fn main_locale(kb: &KnowledgeBase) -> &'static str {
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    for p in kb.faqs.iter().flat_map(|f| f.phrasings()) {
        *counts.entry(detect_locale(p)).or_default() += 1;
    }
    counts.into_iter().max_by_key(|&(l, n)| (n, l)).map_or("zh", |(l, _)| l)
}
