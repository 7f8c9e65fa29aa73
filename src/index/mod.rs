//! The BM25 index: every phrasing (standard question and each similar
//! question) is one tantivy document pointing at its FAQ. Stored on disk under
//! the data directory and rebuilt only when the knowledge base's content hash
//! (or this schema) changes.
//!
//! Depends on `kb` (what to index) and `text` (how to tokenize).

mod phrasings;

use std::collections::HashMap;
use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term, doc};

pub use phrasings::{PhrasingRef, phrasing_table};

use crate::kb::KnowledgeBase;
use crate::text::{Analyzer, TOKENIZER_NAME, TantivyAnalyzer};

/// Bumped whenever the schema or the analysis changes, so old indexes rebuild.
const SCHEMA_VERSION: &str = "xiaoer-index-v1";
const HASH_FILE: &str = "kb_hash";
/// Marker for entries that apply to every product.
const ALL_PRODUCTS: &str = "*";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("index directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
}

/// Restrictions a query is answered under.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// The product page the shopper is on: entries scoped to other products
    /// are excluded; store-wide entries always qualify.
    pub product_id: Option<&'a str>,
    /// Unix seconds; entries outside their validity window are excluded.
    pub now: Option<i64>,
}

#[derive(Clone, Copy)]
struct Fields {
    text: Field,
    phrasing: Field,
    products: Field,
    valid_from: Field,
    valid_until: Field,
}

pub struct FaqIndex {
    reader: IndexReader,
    fields: Fields,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default().set_tokenizer(TOKENIZER_NAME).set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        text: b.add_text_field("text", text_options),
        phrasing: b.add_u64_field("phrasing", FAST),
        products: b.add_text_field("products", STRING),
        valid_from: b.add_i64_field("valid_from", INDEXED | FAST),
        valid_until: b.add_i64_field("valid_until", INDEXED | FAST),
    };
    (b.build(), fields)
}

impl FaqIndex {
    /// Opens the index in `dir` if it was built from this exact knowledge
    /// base and is intact, else (re)builds it there. Writes nothing when the
    /// index is current. If the index cannot be written (disk full, read-only
    /// data directory), it is built in memory so the service still answers.
    pub fn open_or_build(dir: &Path, kb: &KnowledgeBase, analyzer: Arc<Analyzer>) -> Result<Self, IndexError> {
        let stamp = format!("{SCHEMA_VERSION}:{}", kb.content_hash);
        let (schema, fields) = schema();
        remove_dead_staging(dir);
        if fs::read_to_string(dir.join(HASH_FILE)).is_ok_and(|s| s == stamp) {
            match Self::open_checked(dir, fields, analyzer.clone(), kb.phrasing_count() as u64) {
                Ok(index) => return Ok(index),
                Err(why) => tracing::warn!(dir = %dir.display(), %why, "index damaged: rebuilding it"),
            }
        } else {
            tracing::info!(dir = %dir.display(), "knowledge base changed: rebuilding the index");
        }
        match Self::build_on_disk(dir, &stamp, schema.clone(), fields, kb, analyzer.clone()) {
            Ok(index) => Ok(index),
            Err(e) if is_storage_error(&e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot write the index: serving it from memory");
                Self::build(Index::create_in_ram(schema), fields, kb, analyzer)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens a stamped index and checks it can serve: the reader opens (every
    /// segment file is present with its footer), every file matches its
    /// checksum (one CRC pass over a few MB, catches overwritten bytes the
    /// footer does not), and it holds one document per phrasing.
    fn open_checked(dir: &Path, fields: Fields, analyzer: Arc<Analyzer>, phrasings: u64) -> Result<Self, String> {
        let index = Index::open(MmapDirectory::open(dir).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let damaged = index.validate_checksum().map_err(|e| e.to_string())?;
        if !damaged.is_empty() {
            return Err(format!("checksum mismatch in {damaged:?}"));
        }
        let this = Self::finish(index, fields, analyzer).map_err(|e| e.to_string())?;
        match this.num_docs() {
            n if n == phrasings => Ok(this),
            n => Err(format!("{n} documents for {phrasings} phrasings")),
        }
    }

    fn build_on_disk(
        dir: &Path,
        stamp: &str,
        schema: Schema,
        fields: Fields,
        kb: &KnowledgeBase,
        analyzer: Arc<Analyzer>,
    ) -> Result<Self, IndexError> {
        // Built beside the live one and swapped in by rename, so a reader never
        // sees a half-built index and a crash mid-build leaves the old one.
        static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = staging_dir(dir, std::process::id(), n);
        let built = (|| {
            if staging.exists() {
                fs::remove_dir_all(&staging)?;
            }
            fs::create_dir_all(&staging)?;
            Self::build(Index::create_in_dir(&staging, schema)?, fields, kb, analyzer.clone())?;
            fs::write(staging.join(HASH_FILE), stamp)?;
            if dir.exists() {
                fs::remove_dir_all(dir)?;
            }
            fs::rename(&staging, dir)?;
            Ok::<_, IndexError>(())
        })();
        if let Err(e) = built {
            // Best effort: a half-built staging directory is worthless.
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let index = Index::open(MmapDirectory::open(dir)?)?;
        Self::finish(index, fields, analyzer)
    }

    /// Builds a throw-away index in memory (evaluation, tests, benches).
    pub fn in_memory(kb: &KnowledgeBase, analyzer: Arc<Analyzer>) -> Result<Self, IndexError> {
        let (schema, fields) = schema();
        Self::build(Index::create_in_ram(schema), fields, kb, analyzer)
    }

    /// Whether `dir` holds an index built from exactly this knowledge base.
    pub fn is_current(dir: &Path, kb: &KnowledgeBase) -> bool {
        fs::read_to_string(dir.join(HASH_FILE)).is_ok_and(|s| s == format!("{SCHEMA_VERSION}:{}", kb.content_hash))
    }

    fn build(index: Index, fields: Fields, kb: &KnowledgeBase, analyzer: Arc<Analyzer>) -> Result<Self, IndexError> {
        index.tokenizers().register(TOKENIZER_NAME, TantivyAnalyzer(analyzer.clone()));
        let mut writer = index.writer_with_num_threads(1, 64 * 1024 * 1024)?;
        for (ord, p) in phrasing_table(kb).iter().enumerate() {
            let faq = &kb.faqs[p.faq as usize];
            let mut d = doc!(
                fields.text => faq.phrasings().nth(p.idx as usize).unwrap_or_default(),
                fields.phrasing => ord as u64,
                fields.valid_from => faq.valid_from.unwrap_or(i64::MIN),
                fields.valid_until => faq.valid_until.unwrap_or(i64::MAX),
            );
            add_products(&mut d, fields.products, &faq.products);
            writer.add_document(d)?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        Self::finish(index, fields, analyzer)
    }

    fn finish(index: Index, fields: Fields, analyzer: Arc<Analyzer>) -> Result<Self, IndexError> {
        index.tokenizers().register(TOKENIZER_NAME, TantivyAnalyzer(analyzer));
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(FaqIndex { reader, fields })
    }

    /// The `limit` best phrasings for `terms` under `filter`, as
    /// (phrasing ordinal, BM25 score), best first.
    pub fn search(&self, terms: &[String], filter: &Filter, limit: usize) -> Result<Vec<(u32, f32)>, IndexError> {
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let mut unique: Vec<&String> = terms.iter().collect();
        unique.sort();
        unique.dedup();
        let clauses: Vec<(Occur, Box<dyn Query>)> = unique
            .into_iter()
            .map(|t| {
                let q = TermQuery::new(Term::from_field_text(f.text, t), IndexRecordOption::WithFreqs);
                (Occur::Should, Box::new(q) as Box<dyn Query>)
            })
            .collect();
        let mut filters: Vec<Box<dyn Query>> = Vec::new();
        if let Some(product) = filter.product_id {
            filters.push(Box::new(BooleanQuery::new(
                [ALL_PRODUCTS, product]
                    .into_iter()
                    .map(|p| {
                        let q = TermQuery::new(Term::from_field_text(f.products, p), IndexRecordOption::Basic);
                        (Occur::Should, Box::new(q) as Box<dyn Query>)
                    })
                    .collect(),
            )));
        }
        if let Some(now) = filter.now {
            filters.push(Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Included(Term::from_field_i64(f.valid_from, now)),
            )));
            filters.push(Box::new(RangeQuery::new(
                Bound::Excluded(Term::from_field_i64(f.valid_until, now)),
                Bound::Unbounded,
            )));
        }
        let text_query: Box<dyn Query> = Box::new(BooleanQuery::new(clauses));
        let query: Box<dyn Query> = if filters.is_empty() {
            text_query
        } else {
            let mut all = vec![(Occur::Must, text_query)];
            // Filters must not add to the BM25 score.
            all.extend(
                filters.into_iter().map(|q| (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)) as Box<dyn Query>)),
            );
            Box::new(BooleanQuery::new(all))
        };
        let searcher = self.reader.searcher();
        let hits = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut columns = HashMap::new();
        let mut out = Vec::with_capacity(hits.len());
        for (score, addr) in hits {
            let column = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(searcher.segment_reader(addr.segment_ord).fast_fields().u64("phrasing")?)
                }
            };
            if let Some(ord) = column.first(addr.doc_id) {
                out.push((ord as u32, score));
            }
        }
        Ok(out)
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

fn add_products(d: &mut TantivyDocument, field: Field, products: &[String]) {
    if products.is_empty() {
        d.add_text(field, ALL_PRODUCTS);
    }
    for p in products {
        d.add_text(field, p);
    }
}

/// `<dir>.building-<pid>-<n>`: where build `n` of process `pid` stages the index.
fn staging_dir(dir: &Path, pid: u32, n: u64) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    dir.with_file_name(format!("{name}.building-{pid}-{n}"))
}

/// Removes staging directories left beside `dir` by builds whose process
/// died mid-build. Those of live processes are kept: several servers may
/// share a data directory, and one of them may be building right now.
fn remove_dead_staging(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) else { return };
    let prefix = format!("{name}.building-");
    let Ok(entries) = fs::read_dir(if parent.as_os_str().is_empty() { Path::new(".") } else { parent }) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((pid, n)) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|r| r.split_once('-'))
        else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else { continue };
        if process_may_be_alive(pid) {
            continue;
        }
        match fs::remove_dir_all(entry.path()) {
            Ok(()) => tracing::info!(path = %entry.path().display(), "removed the staging directory of a dead build"),
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a dead build's staging")
            }
        }
    }
}

/// False only when `pid` is known not to run: without `/proc` (not Linux)
/// nothing is known, and leaking a directory beats deleting a live build.
pub(crate) fn process_may_be_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Errors of the storage rather than of the data: building in memory instead
/// avoids them.
fn is_storage_error(e: &IndexError) -> bool {
    use tantivy::TantivyError as T;
    match e {
        IndexError::Io(_) | IndexError::Directory(_) => true,
        IndexError::Tantivy(t) => matches!(
            t,
            T::IoError(_)
                | T::OpenDirectoryError(_)
                | T::OpenReadError(_)
                | T::OpenWriteError(_)
                | T::LockFailure(..)
                | T::DataCorruption(_)
        ),
    }
}
