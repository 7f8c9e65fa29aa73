//! Shared by the HTTP integration tests: the real router on an ephemeral
//! port over the sample knowledge base, the real model and SQLite on disk
//! (or a real PostgreSQL, see `pg`).
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use reqwest::StatusCode;
use serde_json::Value;
use xiaoer::api::{AppState, serve};
use xiaoer::config::Config;
use xiaoer::embed::Embedder;
use xiaoer::engine::{EMBEDDING_CACHES, Engine, IndexStorage};
use xiaoer::kb::{KbOptions, load_dir};
use xiaoer::service::Services;
use xiaoer::store::{Clock, Store};

pub mod pg;

pub const KEY: &str = "test-agent-key";

pub fn model() -> Arc<Embedder> {
    static MODEL: OnceLock<Arc<Embedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| Arc::new(Embedder::load(&Config::default().model_dir, 256).expect("`make models` first")))
        .clone()
}

pub fn sample_kb() -> xiaoer::kb::KnowledgeBase {
    load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap()
}

/// One data directory for the index and phrasing vectors of every server
/// in this file, built once (the first caller blocks the others), so the
/// sample KB is embedded once.
pub fn shared_data() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let config = Config { data_dir: dir.clone(), ..Config::default() };
        Engine::with_kb_and_model(config, sample_kb(), IndexStorage::OnDisk, Some(model()), &|_, _| {}).unwrap();
        dir
    })
    .clone()
}

/// A private data directory seeded with the shared embeddings and the
/// sample KB's fitted verifier (used only while the KB is unchanged), for
/// tests that change the knowledge base (and so rebuild the index).
pub fn private_data() -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    for name in EMBEDDING_CACHES.into_iter().chain(["calibration.json"]) {
        std::fs::copy(shared_data().join(name), dir.join(name)).unwrap();
    }
    dir
}

pub struct Server {
    pub url: String,
    pub http: reqwest::Client,
    pub handle: tokio::task::JoinHandle<()>,
    pub services: Arc<Services>,
}

pub async fn start(db: &Path, tweak: impl FnOnce(&mut Config)) -> Server {
    start_clocked(db, Clock::default(), tweak).await
}

/// A server whose store reads the time from `clock`.
pub async fn start_clocked(db: &Path, clock: Clock, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    tweak(&mut config);
    let db = db.to_path_buf();
    let services = tokio::task::spawn_blocking(move || {
        let config = match config.data_dir == Config::default().data_dir {
            true => Config { data_dir: shared_data(), ..config },
            false => config,
        };
        Services::open(config, open_store(&db).with_clock(clock), Some(model()), &|_, _| {}).unwrap()
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(services.clone(), KEY).unwrap();
    let handle = tokio::spawn(async move { serve(state, listener, std::future::pending()).await.unwrap() });
    Server { url, http: reqwest::Client::new(), handle, services }
}

/// The store a test's database path names: that SQLite file, or with
/// `XIAOER_TEST_STORAGE=postgres` a PostgreSQL database standing for it.
pub fn open_store(db: &Path) -> Store {
    match pg::selected() {
        true => Store::open_url(&pg::database_for(db)).unwrap(),
        false => Store::open(db).unwrap(),
    }
}

/// A plain connection to the same database, for a test to read what is stored.
pub fn raw_connection(db: &Path) -> xiaoer::store::db::Conn {
    match pg::selected() {
        true => xiaoer::store::db::Conn::postgres(&pg::database_for(db)).unwrap(),
        false => xiaoer::store::db::Conn::sqlite(rusqlite::Connection::open(db).unwrap()),
    }
}

impl Server {
    /// A JSON request with a chosen credential (None: none at all) and body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(KEY), Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(KEY), None).await
    }

    /// Waits (two minutes at most) until the knowledge base's own verifier,
    /// fitted again in the background after a change, is the one in use.
    pub async fn refitted(&self) {
        let started = std::time::Instant::now();
        while !self.services.knowledge.engine().calibrated() {
            assert!(started.elapsed().as_secs() < 120, "the knowledge base never got its own verifier");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `GET /v1/stats`'s calibration of script group `group` (`chinese`, `other`).
    pub async fn calibration(&self, group: &str) -> Value {
        let (status, stats) = self.get("/v1/stats").await;
        assert!(status.is_success(), "{stats}");
        let groups = stats["calibration"].as_array().expect("calibration in stats");
        assert_eq!(groups.len(), 2, "{stats}");
        groups.iter().find(|g| g["group"] == group).unwrap_or_else(|| panic!("no {group} group: {stats}")).clone()
    }

    /// An agent account whose password is "<login>-secret-1".
    pub async fn create_agent(&self, login: &str, name: &str, role: &str) -> Value {
        let body = serde_json::json!({"login": login, "display_name": name, "role": role, "password": format!("{login}-secret-1")});
        let (status, agent) = self.post("/v1/agents", body).await;
        assert_eq!(status, StatusCode::CREATED, "{agent}");
        agent
    }

    /// Logs `login` in (see `create_agent`); its session token.
    pub async fn login(&self, login: &str) -> String {
        let body = serde_json::json!({"login": login, "password": format!("{login}-secret-1")});
        let (status, session) = self.call(reqwest::Method::POST, "/v1/auth/login", None, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        assert_eq!(session["agent"]["login"], login);
        session["token"].as_str().unwrap().to_string()
    }

    pub async fn ask(&self, body: Value) -> Value {
        let (status, v) = self.post("/v1/answer", body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// Raw request for malformed bodies.
    pub async fn raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .bearer_auth(KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode) {
    assert_eq!(status, want, "{body}");
    assert!(body["code"].is_string() && body["message"].is_string(), "JSON error body expected, got {body}");
}
