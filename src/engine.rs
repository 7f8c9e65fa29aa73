//! Wiring: configuration → knowledge base → analyzer → index → retriever.
//! The one place that knows how the layers are assembled; used by the CLI,
//! the benches and the tests.

use std::sync::Arc;

use crate::config::Config;
use crate::index::{FaqIndex, IndexError};
use crate::kb::{KbError, KbOptions, KnowledgeBase, load_path};
use crate::retrieval::Retriever;
use crate::text::Analyzer;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Kb(#[from] KbError),
    #[error("{0}")]
    Index(#[from] IndexError),
}

/// Where the index of an engine lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStorage {
    /// Under the configured data directory, reused while the KB is unchanged.
    OnDisk,
    /// Built in memory and discarded (evaluation of external data sets).
    InMemory,
}

pub struct Engine {
    pub config: Config,
    pub retriever: Retriever,
}

impl Engine {
    /// Loads the configured knowledge base and opens (or builds) its index.
    pub fn load(config: Config) -> Result<Engine, EngineError> {
        let kb = load_path(&config.kb_dir, &KbOptions::default())?;
        Self::with_kb(config, kb, IndexStorage::OnDisk)
    }

    pub fn with_kb(
        config: Config,
        kb: KnowledgeBase,
        storage: IndexStorage,
    ) -> Result<Engine, EngineError> {
        let analyzer = Arc::new(Analyzer::new(&kb.dict_words, &kb.synonyms));
        let index = match storage {
            IndexStorage::OnDisk => {
                FaqIndex::open_or_build(&config.index_dir(), &kb, analyzer.clone())?
            }
            IndexStorage::InMemory => FaqIndex::in_memory(&kb, analyzer.clone())?,
        };
        let retriever = Retriever::new(Arc::new(kb), analyzer, index, config.retrieval.clone());
        Ok(Engine { config, retriever })
    }
}
