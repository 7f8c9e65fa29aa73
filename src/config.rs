//! Configuration: one typed struct, read from `xiaoer.toml` (optional) with
//! environment overrides `XIAOER_<SECTION>__<KEY>` (e.g.
//! `XIAOER_RETRIEVAL__BM25_CANDIDATES=80`, `XIAOER_DATA_DIR=/var/lib/xiaoer`).
//! Every field has a documented default, so no file is needed.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::decision::DecisionConfig;
use crate::retrieval::RetrievalConfig;
use crate::service::ServiceConfig;
use crate::store::{POSTGRES_SCHEMES, SQLITE_SCHEME};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Knowledge-base directory (default `knowledge_base`).
    pub kb_dir: PathBuf,
    /// Where the index and other derived state live (default `data`).
    pub data_dir: PathBuf,
    /// Model directory with `manifest.json` (default `models/multilingual-e5-small`).
    pub model_dir: PathBuf,
    pub retrieval: RetrievalConfig,
    pub embed: EmbedConfig,
    pub decision: DecisionConfig,
    pub server: ServerConfig,
    pub service: ServiceConfig,
    pub storage: StorageConfig,
}

/// `[storage]`: where conversations, tickets, accounts and knowledge edits live.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// `sqlite://PATH` (`sqlite:///var/lib/xiaoer/db.sqlite3`: an absolute
    /// path) or `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE` (several
    /// replicas on one database). Empty (default): `xiaoer.sqlite3` in the
    /// data directory. Replicas sharing one database each keep their own
    /// data directory (index, vectors).
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Listen address (default `127.0.0.1:8080`).
    pub addr: String,
    /// Key agents and operators send as `Authorization: Bearer <key>` or
    /// `X-Api-Key`. Empty (default): a random key is generated at start and printed.
    pub api_key: String,
    /// Widget requests per second allowed per client address (default 5) …
    pub rate_per_second: u32,
    /// … with bursts up to this many (default 20).
    pub rate_burst: u32,
    /// Largest request body in bytes (default 64 KiB).
    pub max_body_bytes: usize,
    /// Longest shopper or agent message in characters (default 2000).
    pub max_text_chars: usize,
    /// Origins whose pages may call the widget routes (`/v1/answer`,
    /// ratings, the conversation event stream, `widget.js`) from the
    /// browser. Default `["*"]`: any store site can embed the widget (those
    /// routes carry no credentials). E.g. `["https://shop.example"]`.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For`
    /// names the real client for rate limiting. Default: none (the peer
    /// address is the client).
    pub trusted_proxies: Vec<String>,
    /// Most clients the rate limiter tracks before it forgets idle ones (default 100000).
    pub rate_limit_clients: usize,
    /// Shopper messages and drafts being answered or waiting for the model
    /// at once; more are refused with 503 and `Retry-After` (default 64).
    pub max_queued_answers: usize,
    /// Seconds a read or an answer may take; an answer not recorded by then
    /// is refused with 503 and changes nothing (default 30).
    pub request_timeout_secs: u64,
    /// Seconds to finish in-flight requests after SIGTERM / Ctrl-C before
    /// exiting anyway (default 10).
    pub shutdown_grace_secs: u64,
    /// Hours an agent's console login lasts (default 12: one shift).
    pub session_hours: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:8080".into(),
            api_key: String::new(),
            rate_per_second: 5,
            rate_burst: 20,
            max_body_bytes: 64 * 1024,
            max_text_chars: 2000,
            allowed_origins: vec!["*".into()],
            trusted_proxies: Vec::new(),
            rate_limit_clients: 100_000,
            max_queued_answers: 64,
            request_timeout_secs: 30,
            shutdown_grace_secs: 10,
            session_hours: 12,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbedConfig {
    /// Threads for inference (both of candle's pools); default: all cores.
    pub threads: usize,
    /// Query embeddings kept in the LRU cache (default 4096).
    pub cache_size: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig { threads: std::thread::available_parallelism().map_or(1, |n| n.get()), cache_size: 4096 }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kb_dir: PathBuf::from("knowledge_base"),
            data_dir: PathBuf::from("data"),
            model_dir: crate::embed::default_model_dir(),
            retrieval: RetrievalConfig::default(),
            embed: EmbedConfig::default(),
            decision: DecisionConfig::default(),
            server: ServerConfig::default(),
            service: ServiceConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// Default config file, read when present.
pub const DEFAULT_CONFIG_FILE: &str = "xiaoer.toml";

impl Config {
    /// Defaults, then `file` (or `xiaoer.toml` if it exists), then environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => fig = fig.merge(Toml::file_exact(path)),
            None => fig = fig.merge(Toml::file(DEFAULT_CONFIG_FILE)),
        }
        let config: Config = fig.merge(Env::prefixed("XIAOER_").split("__")).extract().map_err(Box::new)?;
        let url = &config.storage.url;
        let known = std::iter::once(SQLITE_SCHEME).chain(POSTGRES_SCHEMES).any(|s| url.starts_with(s));
        if !url.is_empty() && !known {
            let why = format!("storage.url {url:?}: expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`");
            return Err(Box::new(figment::Error::from(why)));
        }
        Ok(config)
    }

    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }

    /// The database `storage.url` names (checked when loaded); empty: the
    /// SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match self.storage.url.as_str() {
            "" | SQLITE_SCHEME => format!("{SQLITE_SCHEME}{}", self.data_dir.join("xiaoer.sqlite3").display()),
            url => url.to_string(),
        }
    }

    /// Where the live knowledge base's verifier is cached (`kb_calibration`).
    pub fn calibration_path(&self) -> PathBuf {
        self.data_dir.join("calibration.json")
    }
}
