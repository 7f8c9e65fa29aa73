//! Wiring: configuration → knowledge base → analyzer → index (+ model and
//! phrasing vectors) → retriever. The one place that knows how the layers are
//! assembled; used by the CLI, the benches and the tests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::decision::KbCalibration;
use crate::embed::{EmbedError, Embedder, Role};
use crate::index::{FaqIndex, IndexError, phrasing_table};
use crate::kb::{KbError, KbOptions, KnowledgeBase, load_path};
use crate::kb_calibration::{self, Labelled};
use crate::retrieval::{Dense, Mode, RetrievalError, Retriever};
use crate::text::Analyzer;
use crate::vectors::PhrasingVectors;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Kb(#[from] KbError),
    #[error("{0}")]
    Index(#[from] IndexError),
    #[error("{0}")]
    Embed(#[from] EmbedError),
    #[error("{0}")]
    Retrieval(#[from] RetrievalError),
}

/// Where the index of an engine lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStorage {
    /// Under the configured data directory, reused while the KB is unchanged.
    OnDisk,
    /// Built in memory and discarded (evaluation of external data sets);
    /// phrasing vectors are still cached in the data directory.
    InMemory,
    /// Built in memory and discarded, reading the on-disk engine's cached
    /// phrasing vectors but writing nothing (a preview of an edit: only its
    /// changed phrasings are embedded, and no file changes).
    Scratch,
}

/// Called with (done, total) while phrasings are embedded.
pub type Progress<'a> = &'a dyn Fn(usize, usize);

/// The data directory's files that only cache what the model computed
/// (phrasings, then answers; keyed by model and text): seeding another data
/// directory with them saves embedding again, a missing one is computed.
pub const EMBEDDING_CACHES: [&str; 2] = ["vectors.bin", "answers.bin"];

pub struct Engine {
    pub config: Config,
    pub retriever: Retriever,
    /// The knowledge base's own verifier (empty when
    /// `decision.kb_calibration` is off: the configured calibration applies);
    /// until [`Engine::calibrate`] ran, possibly a previous knowledge base's.
    calibration: ArcSwap<KbCalibration>,
    /// What a calibration of this engine must have been fitted from.
    calibration_key: String,
    calibration_file: PathBuf,
    /// The store's labelled turns the calibration learns from.
    history: Vec<Labelled>,
    /// One fit at a time: a caller arriving while another fits waits and
    /// then finds the engine calibrated, instead of fitting it again.
    fitting: Mutex<()>,
}

impl Engine {
    /// Loads the configured knowledge base and opens (or builds) its index.
    pub fn load(config: Config) -> Result<Engine, EngineError> {
        let kb = load_path(&config.kb_dir, &KbOptions::default())?;
        Self::with_kb(config, kb, IndexStorage::OnDisk, &|_, _| {})
    }

    pub fn with_kb(
        config: Config,
        kb: KnowledgeBase,
        storage: IndexStorage,
        progress: Progress,
    ) -> Result<Engine, EngineError> {
        let embedder = Self::model_for(&config)?;
        Self::with_kb_and_model(config, kb, storage, embedder, progress)
    }

    /// The embedding model the configured retrieval mode needs (none for BM25).
    pub fn model_for(config: &Config) -> Result<Option<Arc<Embedder>>, EngineError> {
        Ok(match config.retrieval.mode {
            Mode::Bm25 => None,
            Mode::Dense | Mode::Hybrid => Some(Arc::new(Embedder::load(&config.model_dir, config.embed.cache_size)?)),
        })
    }

    /// As [`Engine::with_kb`], sharing an already loaded model.
    pub fn with_kb_and_model(
        config: Config,
        kb: KnowledgeBase,
        storage: IndexStorage,
        embedder: Option<Arc<Embedder>>,
        progress: Progress,
    ) -> Result<Engine, EngineError> {
        let engine = Self::provisional(config, kb, storage, embedder, progress, Arc::default(), Vec::new())?;
        engine.calibrate()?;
        Ok(engine)
    }

    /// As [`Engine::with_kb_and_model`], but answering with `provisional` as
    /// its calibration (unless one fitted for this very knowledge base is
    /// cached) until [`Engine::calibrate`] runs: a knowledge edit need not
    /// wait for the fit, and one edit hardly moves the thresholds. The fit
    /// learns from `history`, the store's labelled turns, as well.
    pub fn provisional(
        config: Config,
        kb: KnowledgeBase,
        storage: IndexStorage,
        embedder: Option<Arc<Embedder>>,
        progress: Progress,
        provisional: Arc<KbCalibration>,
        history: Vec<Labelled>,
    ) -> Result<Engine, EngineError> {
        let analyzer = Arc::new(Analyzer::new(&kb.dict_words, &kb.synonyms));
        let index = match storage {
            IndexStorage::OnDisk => FaqIndex::open_or_build(&config.index_dir(), &kb, analyzer.clone())?,
            IndexStorage::InMemory | IndexStorage::Scratch => FaqIndex::in_memory(&kb, analyzer.clone())?,
        };
        let model_sha = embedder.as_ref().map_or_else(String::new, |e| e.manifest().weights_sha256.clone());
        // Short synthetic hashes (benches) are used whole.
        let stamp = kb.content_hash.get(..16).unwrap_or(&kb.content_hash).to_string();
        let calibration_file = match storage {
            IndexStorage::OnDisk | IndexStorage::Scratch => config.calibration_path(),
            IndexStorage::InMemory => config.data_dir.join(format!("calibration-{stamp}.json")),
        };
        let dense = match embedder {
            None => None,
            Some(embedder) => {
                let (file, answers_file) = match storage {
                    IndexStorage::OnDisk | IndexStorage::Scratch => {
                        let [phrasings, answers] = EMBEDDING_CACHES.map(|name| config.data_dir.join(name));
                        (phrasings, answers)
                    }
                    IndexStorage::InMemory => (
                        config.data_dir.join(format!("vectors-{stamp}.bin")),
                        config.data_dir.join(format!("answers-{stamp}.bin")),
                    ),
                };
                let table = phrasing_table(&kb);
                let role = config.retrieval.phrasing_role;
                let save = storage != IndexStorage::Scratch;
                let vectors = PhrasingVectors::build(&kb, &table, &embedder, role, Some(&file), save, progress)?;
                // Answers as passages (what e5 was trained to match questions
                // with), in a store of their own: one Chinese row per FAQ, then
                // its answers in other languages.
                let mut texts: Vec<&str> = kb.faqs.iter().map(answer_text).collect();
                let mut foreign_answers = vec![Vec::new(); kb.faqs.len()];
                for (faq, rows) in kb.faqs.iter().zip(&mut foreign_answers) {
                    for (lang, answer) in faq.foreign_answers() {
                        rows.push((lang, texts.len()));
                        texts.push(answer);
                    }
                }
                let answers =
                    PhrasingVectors::of_texts(&texts, &embedder, Role::Passage, Some(&answers_file), save, &|_, _| {})?;
                Some(Dense { embedder, vectors, answers, foreign_answers })
            }
        };
        let retriever = Retriever::new(Arc::new(kb), analyzer, index, dense, config.retrieval.clone())?;
        let target = f64::from(config.decision.target_precision);
        let calibration_key = kb_calibration::key(&retriever, &model_sha, target, &history);
        let calibration = match config.decision.kb_calibration {
            true => kb_calibration::cached(&calibration_file, &calibration_key).map_or(provisional, Arc::new),
            false => Arc::default(),
        };
        Ok(Engine {
            config,
            retriever,
            calibration: ArcSwap::new(calibration),
            calibration_key,
            calibration_file,
            history,
            fitting: Mutex::new(()),
        })
    }

    /// The verifier decisions use now.
    pub fn calibration(&self) -> Arc<KbCalibration> {
        self.calibration.load_full()
    }

    /// Whether the calibration in use was fitted for this knowledge base
    /// (always, with `decision.kb_calibration` off).
    pub fn calibrated(&self) -> bool {
        !self.config.decision.kb_calibration || self.calibration.load().key == self.calibration_key
    }

    /// Fits this knowledge base's calibration (unless it has it), caches it
    /// and uses it from then on.
    pub fn calibrate(&self) -> Result<(), EngineError> {
        let _one = self.fitting.lock().unwrap_or_else(|e| e.into_inner());
        if self.calibrated() {
            return Ok(());
        }
        let target = f64::from(self.config.decision.target_precision);
        let key = self.calibration_key.clone();
        let fitted = kb_calibration::fit_and_save(&self.retriever, key, target, &self.history, &self.calibration_file)?;
        self.calibration.store(Arc::new(fitted));
        Ok(())
    }

    /// Whether this engine can answer (for readiness probes): the index holds
    /// one document per phrasing and, with the model, there is one finite
    /// phrasing vector per phrasing. Cheap: counts and a flag set at build.
    /// The error says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        self.retriever.check()
    }
}

/// The text a FAQ's answer vector is made from: its Chinese answer, else
/// (question-matching sets have none) its question.
fn answer_text(faq: &crate::kb::Faq) -> &str {
    faq.answer_for("zh").map_or(faq.question.as_str(), |(_, a)| a)
}
