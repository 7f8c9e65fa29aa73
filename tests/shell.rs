//! The service shell's guarantees over real HTTP: concurrent edits lose
//! nothing, a failed rebuild stores nothing, closing is announced and the
//! shopper starts afresh, cross-origin widget calls, every error is JSON,
//! forwarded addresses only from trusted proxies, bounded model work.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{KEY, assert_error, private_data, start};
use reqwest::StatusCode;
use serde_json::{Value, json};
use xiaoer::store::{NewProposal, ProposalKind};

/// A private copy of the sample knowledge base that a test may break.
fn kb_copy() -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() { copy(&path, &target) } else { std::fs::copy(&path, &target).map(drop).unwrap() }
        }
    }
    let dir = tempfile::tempdir().unwrap().keep();
    copy(Path::new("knowledge_base"), &dir);
    dir
}

async fn private_server(db: &Path, kb: Option<PathBuf>) -> common::Server {
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    start(db, move |c| {
        c.data_dir = data;
        if let Some(kb) = kb {
            c.kb_dir = kb;
        }
    })
    .await
}

fn similar_of(faq: &Value) -> Vec<String> {
    faq["similar"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_of_one_faq_all_survive() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Arc::new(private_server(&tmp.path().join("db.sqlite3"), None).await);
    let (_, before) = server.get("/v1/kb/faqs/ship-courier").await;
    let mut tasks = Vec::new();
    for n in 0..10 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            server.post("/v1/kb/faqs/ship-courier/similar", json!({"text": format!("并发追加{n}")})).await
        }));
    }
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (_, after) = server.get("/v1/kb/faqs/ship-courier").await;
    let similar = similar_of(&after);
    for n in 0..10 {
        assert!(similar.contains(&format!("并发追加{n}")), "并发追加{n} lost: {similar:?}");
    }
    assert_eq!(similar.len(), similar_of(&before).len() + 10);

    // Approving learned phrasings concurrently loses none either.
    let store = server.services.store.clone();
    for n in 0..6 {
        store
            .add_proposal(&NewProposal {
                kind: ProposalKind::Similar,
                faq_id: Some("ship-free".into()),
                text: format!("批准的问法{n}"),
                count: 1,
                examples: vec![],
            })
            .unwrap();
    }
    let (_, pending) = server.get("/v1/kb/proposals").await;
    let ids: Vec<i64> = pending.as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 6);
    let mut tasks = Vec::new();
    for id in ids {
        let server = server.clone();
        tasks
            .push(tokio::spawn(async move { server.post(&format!("/v1/kb/proposals/{id}/approve"), json!({})).await }));
    }
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (_, faq) = server.get("/v1/kb/faqs/ship-free").await;
    let similar = similar_of(&faq);
    assert!((0..6).all(|n| similar.contains(&format!("批准的问法{n}"))), "{similar:?}");

    // After a restart on the same database every edit is still there, and
    // the index built for files + edits is reused, not rebuilt.
    let db = tmp.path().join("db.sqlite3");
    let data = server.services.config.data_dir.clone();
    let index_files = || {
        let mut files: Vec<(PathBuf, std::time::SystemTime)> = std::fs::read_dir(data.join("index"))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
            .collect();
        files.sort();
        files
    };
    let before_restart = index_files();
    server.handle.abort();
    let restart_data = data.clone();
    let restarted = start(&db, move |c| c.data_dir = restart_data).await;
    let (_, again) = restarted.get("/v1/kb/faqs/ship-courier").await;
    assert_eq!(similar_of(&again), similar_of(&after));
    assert_eq!(index_files(), before_restart, "the restart rebuilt the index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rebuild_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = kb_copy();
    let server = private_server(&tmp.path().join("db.sqlite3"), Some(kb.clone())).await;
    let faq_file = std::fs::read_dir(kb.join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("id = \"ship-courier\"")))
        .expect("the file holding ship-courier");
    let good = std::fs::read_to_string(&faq_file).unwrap();
    std::fs::write(&faq_file, format!("{good}\n[[faq]]\nid = \"broken\"\nquestion = \n")).unwrap();

    let (status, v) = server.post("/v1/kb/faqs/ship-courier/similar", json!({"text": "坏文件时加的问法"})).await;
    assert_error(status, &v, StatusCode::CONFLICT);
    assert_eq!(v["code"], "kb_files_invalid", "{v}");
    let entry = json!({"question": "坏文件时新建的问题", "answer": {"zh": "不应保存"}});
    let r = server.http.put(format!("{}/v1/kb/faqs/new-while-broken", server.url)).bearer_auth(KEY).json(&entry);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let csv = "问题,答案\n坏文件时导入的问题,不应保存\n".as_bytes().to_vec();
    let (status, v) = server.raw("/v1/kb/import", "text/csv", csv).await;
    assert_error(status, &v, StatusCode::CONFLICT);
    let (status, v) = server.post("/v1/kb/reload", json!({})).await;
    assert_error(status, &v, StatusCode::CONFLICT);
    assert!(server.services.store.edits().unwrap().0.is_empty(), "a failed change was stored");
    // Still answering from the old engine.
    assert_eq!(server.ask(json!({"text": "七天无理由退货怎么申请？"})).await["faq_id"], "return-7day");

    // Once the file is fixed, a reload shows that none of the failed edits happened.
    std::fs::write(&faq_file, good).unwrap();
    let (status, _) = server.post("/v1/kb/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, faq) = server.get("/v1/kb/faqs/ship-courier").await;
    assert!(!similar_of(&faq).contains(&"坏文件时加的问法".to_string()));
    let (status, _) = server.get("/v1/kb/faqs/new-while-broken").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Reads server-sent events from `response` until one named `name` arrives.
async fn next_event(response: &mut reqwest::Response, name: &str) -> Value {
    let mut buffer = String::new();
    loop {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(30), response.chunk())
            .await
            .expect("event in time")
            .unwrap()
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
            let data = block.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim);
            if event == Some(name) {
                return serde_json::from_str(data.unwrap_or("null")).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_is_announced_and_the_shopper_starts_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;
    let handoff = server.ask(json!({"text": "转人工"})).await;
    let conv = handoff["conversation_id"].as_str().unwrap().to_string();
    let mut shopper = server.http.get(format!("{}/v1/conversations/{conv}/events", server.url)).send().await.unwrap();
    assert_eq!(shopper.status(), StatusCode::OK);
    let mut agent = server.http.get(format!("{}/v1/agent/events", server.url)).bearer_auth(KEY).send().await.unwrap();
    let (status, closed) = server.post(&format!("/v1/conversations/{conv}/close"), json!({})).await;
    assert_eq!((status, closed["status"].as_str()), (StatusCode::OK, Some("closed")));
    let event = next_event(&mut shopper, "closed").await;
    assert_eq!(event["conversation_id"], conv.as_str());
    assert_eq!(next_event(&mut agent, "closed").await["conversation_id"], conv.as_str());

    // The next message (as after a page reload, with the old id) is a new conversation with the bot.
    let next = server.ask(json!({"conversation_id": conv, "text": "发什么快递？"})).await;
    assert_ne!(next["conversation_id"], conv.as_str());
    assert_ne!(next["reason"], "waiting_for_agent");
    let (_, t) = server.get(&format!("/v1/conversations/{conv}")).await;
    assert_eq!(t["conversation"]["status"], "closed");
    assert!(t["messages"].as_array().unwrap().iter().all(|m| m["text"] != "发什么快递？"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_routes_allow_the_configured_origins() {
    let tmp = tempfile::tempdir().unwrap();
    let any = start(&tmp.path().join("a.sqlite3"), |_| {}).await;
    let preflight = |server: &common::Server, path: &str, origin: &str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let r = preflight(&any, "/v1/answer", "https://shop.example").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = any
        .http
        .post(format!("{}/v1/answer", any.url))
        .header("origin", "https://shop.example")
        .json(&json!({"text": "包邮吗"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // Agent routes are not opened to other sites.
    let r = preflight(&any, "/v1/handoffs", "https://shop.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let listed =
        start(&tmp.path().join("b.sqlite3"), |c| c.server.allowed_origins = vec!["https://shop.example".into()]).await;
    for path in ["/v1/answer", "/v1/decisions/1/rating", "/widget.js"] {
        let r = preflight(&listed, path, "https://shop.example").await.unwrap();
        assert_eq!(r.headers()["access-control-allow-origin"], "https://shop.example", "{path}");
        let r = preflight(&listed, path, "https://evil.example").await.unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |c| c.server.max_body_bytes = 1024).await;
    // A path parameter of the wrong type.
    let (status, v) = server.post("/v1/decisions/abc/rating", json!({"conversation_id": "x", "helpful": true})).await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);
    // An import over the body limit.
    let (status, v) = server.raw("/v1/kb/import", "text/csv", vec![b'a'; 4096]).await;
    assert_error(status, &v, StatusCode::PAYLOAD_TOO_LARGE);
    // A long request target, and too many header bytes.
    let (status, v) = server.get(&format!("/v1/kb/faqs/{}", "a".repeat(20_000))).await;
    assert_error(status, &v, StatusCode::URI_TOO_LONG);
    let mut request = server.http.get(format!("{}/healthz", server.url));
    for i in 0..80 {
        request = request.header(format!("x-filler-{i}"), "x".repeat(100));
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    assert_error(status, &r.json().await.unwrap(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Text made only of invisible characters is empty.
    let (status, v) = server.post("/v1/answer", json!({"text": "\u{200b}\u{200d}\u{feff}"})).await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);
    // Wrong method.
    let r = server.http.delete(format!("{}/v1/answer", server.url)).send().await.unwrap();
    let status = r.status();
    assert_error(status, &r.json().await.unwrap(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_key_opens_only_the_agent_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;
    let get = |path: String| server.http.get(format!("{}{path}", server.url));
    assert_eq!(get(format!("/v1/handoffs?key={KEY}")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let stream = get(format!("/v1/agent/events?key={KEY}")).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    drop(stream);
    let header_wins = get("/v1/handoffs?key=wrong".into()).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(header_wins.status(), StatusCode::OK);
    let stream = get("/v1/agent/events?key=wrong".into()).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    drop(stream);
    assert_eq!(get("/v1/agent/events?key=wrong".into()).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_follow_the_client_behind_a_trusted_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = |c: &mut xiaoer::config::Config| {
        c.server.rate_per_second = 1;
        c.server.rate_burst = 1;
    };
    let proxied = start(&tmp.path().join("a.sqlite3"), move |c| {
        limits(c);
        c.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let ask = |server: &common::Server, client: &str| {
        server
            .http
            .post(format!("{}/v1/answer", server.url))
            .header("x-forwarded-for", client)
            .json(&json!({"text": "包邮吗"}))
            .send()
    };
    // Client A empties its bucket (a refill takes a second; a few quick tries always hit it) …
    let limited = |server: &'static common::Server, clients: &'static [&'static str]| async move {
        for client in clients.iter().cycle().take(6) {
            let r = ask(server, client).await.unwrap();
            if r.status() == StatusCode::TOO_MANY_REQUESTS {
                assert!(r.headers().contains_key("retry-after"));
                return true;
            }
        }
        false
    };
    let proxied: &'static common::Server = Box::leak(Box::new(proxied));
    assert_eq!(ask(proxied, "203.0.113.1").await.unwrap().status(), StatusCode::OK);
    assert!(limited(proxied, &["203.0.113.1"]).await, "client A was never limited");
    // … while another shopper behind the same proxy is still served at once.
    assert_eq!(ask(proxied, "203.0.113.2").await.unwrap().status(), StatusCode::OK, "another shopper");
    // A forged leftmost entry does not give A a new bucket.
    assert!(limited(proxied, &["198.51.100.9, 203.0.113.1", "198.51.100.10, 203.0.113.1"]).await);

    // Without trusted proxies the header is ignored: everyone here is 127.0.0.1.
    let direct: &'static common::Server = Box::leak(Box::new(start(&tmp.path().join("b.sqlite3"), limits).await));
    assert!(limited(direct, &["203.0.113.1", "203.0.113.2", "203.0.113.3"]).await, "forwarded addresses were trusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn model_work_over_the_bound_is_refused_and_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Arc::new(
        start(&tmp.path().join("db.sqlite3"), |c| {
            c.server.max_queued_answers = 1;
            c.server.rate_burst = 1000;
        })
        .await,
    );
    let mut tasks = Vec::new();
    for i in 0..12 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let text = format!("第{i}次问：进口商品的保质期一般有多久，生产日期怎么看？");
            let r = server.http.post(format!("{}/v1/answer", server.url)).json(&json!({"text": text})).send().await;
            let r = r.unwrap();
            let retry = r.headers().get("retry-after").cloned();
            (r.status(), retry, r.json::<Value>().await.unwrap())
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (status, retry, body) = t.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "overloaded", "{body}");
                assert!(retry.is_some());
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1 && refused >= 1, "ok {ok}, refused {refused}");
    let (_, stats) = server.get("/v1/stats").await;
    assert_eq!(stats["conversations"], ok, "refused questions must not be recorded");
}
