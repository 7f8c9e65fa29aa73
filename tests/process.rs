//! The real `xiaoer serve` binary as a process: SIGTERM and SIGINT with
//! open event streams and a request in flight shut it down cleanly, and
//! after kill -9 during a stream of edits and turns every acknowledged
//! write is there when it comes back. Two replicas on one database (SQLite,
//! and a real PostgreSQL) follow each other's knowledge edits, concurrent
//! edits of one FAQ through both lose nothing, live events and consoles
//! cross replicas, and when one is killed the shopper goes on through the
//! other with nothing lost.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{KEY, private_data};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Process {
    child: Child,
    url: String,
}

/// A test that fails leaves no server behind.
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port over `data` (seeded with the sample
/// KB's phrasing vectors, so starting embeds nothing).
fn spawn(data: &Path) -> Process {
    spawn_with(data, &[])
}

/// As `spawn`, with more environment (configuration) variables.
fn spawn_with(data: &Path, env: &[(&str, &str)]) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xiaoer"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .env("XIAOER_DATA_DIR", data)
        .env("XIAOER_SERVER__API_KEY", KEY)
        .env("XIAOER_SERVER__RATE_BURST", "100000")
        .env("XIAOER_SERVER__RATE_PER_SECOND", "100000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server printed its address").unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Process { child, url }
}

fn signal(p: &Process, sig: libc::c_int) {
    // SAFETY: sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(p.child.id() as libc::pid_t, sig) }, 0);
}

/// Waits for the process to exit, at most `limit`.
fn wait_exit(p: &mut Process, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = p.child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether an index rebuild is in progress in `data`.
fn building(data: &Path) -> bool {
    std::fs::read_dir(data).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("index.building-"))
}

fn data_dir() -> PathBuf {
    private_data()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_finish_in_flight_requests_and_end_streams() {
    let data = tokio::task::spawn_blocking(data_dir).await.unwrap();
    let http = reqwest::Client::new();
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let mut p = spawn(&data);
        let conv = http.post(format!("{}/v1/answer", p.url)).json(&json!({"text": "转人工"})).send().await.unwrap();
        let conv: Value = conv.json().await.unwrap();
        let id = conv["conversation_id"].as_str().unwrap().to_string();
        // Two open event streams, as browsers keep them.
        let mut shopper = http.get(format!("{}/v1/conversations/{id}/events", p.url)).send().await.unwrap();
        let mut agent = http.get(format!("{}/v1/agent/events", p.url)).bearer_auth(KEY).send().await.unwrap();
        assert_eq!((shopper.status(), agent.status()), (StatusCode::OK, StatusCode::OK));
        // A rebuild takes long enough to still be running when the signal arrives.
        let entry = json!({"question": format!("{name} 时正在保存的问题"), "answer": {"zh": "保存了"}});
        let put = tokio::spawn(
            http.put(format!("{}/v1/kb/faqs/during-{}", p.url, name.to_lowercase()))
                .bearer_auth(KEY)
                .json(&entry)
                .send(),
        );
        // Signal once the rebuild is under way (its staging directory exists),
        // however slow the machine; if it already finished, the signal still
        // comes with the event streams open.
        let started = Instant::now();
        while !put.is_finished() && !building(&data) && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        signal(&p, sig);
        let status = tokio::task::spawn_blocking(move || {
            let status = wait_exit(&mut p, Duration::from_secs(15));
            (status, p)
        });
        let put = put.await.unwrap().expect("the in-flight request was answered");
        assert_eq!(put.status(), StatusCode::OK, "{name}: {:?}", put.text().await);
        // Both streams end (the server closes them) instead of holding shutdown up.
        for stream in [&mut shopper, &mut agent] {
            let ended = tokio::time::timeout(Duration::from_secs(12), async {
                while let Ok(Some(_)) = stream.chunk().await {}
            })
            .await;
            assert!(ended.is_ok(), "{name}: event stream still open");
        }
        let (status, _p) = status.await.unwrap();
        let status = status.unwrap_or_else(|| panic!("{name}: still running 15 s after the signal"));
        assert!(status.success(), "{name}: exit status {status}");
    }
    // The edits acknowledged during shutdown are there after a restart.
    let mut p = spawn(&data);
    for name in ["sigterm", "sigint"] {
        let r = http.get(format!("{}/v1/kb/faqs/during-{name}", p.url)).bearer_auth(KEY).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "during-{name} lost");
    }
    signal(&p, libc::SIGTERM);
    assert!(wait_exit(&mut p, Duration::from_secs(15)).is_some_and(|s| s.success()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_no_acknowledged_write() {
    let data = tokio::task::spawn_blocking(data_dir).await.unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut phrasings: Vec<String> = Vec::new();
    let mut turns: Vec<(String, String)> = Vec::new();
    for cycle in 0..3 {
        let mut p = spawn(&data);
        let url = p.url.clone();
        // What this cycle got acknowledged so far: edits, turns.
        let progress = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        // Writers: similar phrasings added one after another, and shopper turns
        // from several concurrent shoppers; each remembers what got a 200.
        let edits = tokio::spawn({
            let (http, url, counted) = (http.clone(), url.clone(), progress.clone());
            async move {
                let mut acked = Vec::new();
                for n in 0.. {
                    let text = format!("第{cycle}轮第{n}个追加问法");
                    let r = http
                        .post(format!("{url}/v1/kb/faqs/ship-courier/similar"))
                        .bearer_auth(KEY)
                        .json(&json!({"text": text}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == StatusCode::OK => acked.push(text),
                        _ => break,
                    }
                    counted.0.fetch_add(1, Ordering::SeqCst);
                }
                acked
            }
        });
        let mut shoppers = Vec::new();
        for s in 0..3 {
            let (http, url, counted) = (http.clone(), url.clone(), progress.clone());
            shoppers.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut conversation: Option<String> = None;
                for n in 0.. {
                    let text = format!("第{cycle}轮顾客{s}的第{n}句：发什么快递？");
                    let r = http
                        .post(format!("{url}/v1/answer"))
                        .json(&json!({"conversation_id": conversation, "text": text}))
                        .send()
                        .await;
                    let Ok(r) = r else { break };
                    if r.status() != StatusCode::OK {
                        break;
                    }
                    let Ok(v) = r.json::<Value>().await else { break };
                    let id = v["conversation_id"].as_str().unwrap().to_string();
                    acked.push((id.clone(), text));
                    counted.1.fetch_add(1, Ordering::SeqCst);
                    // A new conversation now and then, as shoppers come and go.
                    conversation = (n % 20 != 19).then_some(id);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                acked
            }));
        }
        // Killed a varying while into the traffic, and never before this
        // cycle has acknowledged an edit and some turns, however slow the
        // machine (each edit rebuilds the index).
        tokio::time::sleep(Duration::from_millis(2500 + 700 * cycle)).await;
        let started = Instant::now();
        while (progress.0.load(Ordering::SeqCst) < 1 || progress.1.load(Ordering::SeqCst) < 5)
            && started.elapsed() < Duration::from_secs(120)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p.child.kill().unwrap(); // SIGKILL
        p.child.wait().unwrap();
        phrasings.extend(edits.await.unwrap());
        for s in shoppers {
            turns.extend(s.await.unwrap());
        }
    }
    eprintln!("acknowledged before the kills: {} edits, {} turns", phrasings.len(), turns.len());
    assert!(
        phrasings.len() >= 3 && turns.len() >= 10,
        "too little traffic: {} edits, {} turns",
        phrasings.len(),
        turns.len()
    );

    let mut p = spawn(&data);
    let agent_get = |path: String| {
        let request = http.get(format!("{}{path}", p.url)).bearer_auth(KEY);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let faq = agent_get("/v1/kb/faqs/ship-courier".into()).await;
    let similar: Vec<&str> = faq["similar"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for text in &phrasings {
        assert!(similar.contains(&text.as_str()), "acknowledged phrasing {text} lost");
    }
    let mut by_conversation: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (conversation, text) in &turns {
        by_conversation.entry(conversation).or_default().push(text);
    }
    for (conversation, texts) in by_conversation {
        let t = agent_get(format!("/v1/conversations/{conversation}")).await;
        let stored: Vec<&str> = t["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
        for text in texts {
            assert!(stored.contains(&text), "acknowledged turn {text} lost");
        }
    }
    // And the restarted server answers.
    let r = http.post(format!("{}/v1/answer", p.url)).json(&json!({"text": "七天无理由退货怎么申请？"})).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::OK);
    signal(&p, libc::SIGTERM);
    wait_exit(&mut p, Duration::from_secs(15));
}

/// A new shared database of `kind` for two replicas; its URL.
async fn shared_database(kind: &str) -> String {
    match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap().keep();
            format!("sqlite://{}", dir.join("shared.sqlite3").display())
        }
        _ => tokio::task::spawn_blocking(common::pg::new_database).await.unwrap(),
    }
}

/// Two replicas, each with its own data directory, on one new database of `kind`.
async fn replicas(kind: &str) -> (Process, Process) {
    let (a_data, b_data) = tokio::task::spawn_blocking(|| (data_dir(), data_dir())).await.unwrap();
    let url = shared_database(kind).await;
    let env = [("XIAOER_STORAGE__URL", url.as_str())];
    (spawn_with(&a_data, &env), spawn_with(&b_data, &env))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_sqlite_follow_each_others_edits() {
    follow_each_others_edits("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_follow_each_others_edits() {
    follow_each_others_edits("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_sqlite_share_live_events_and_outlive_each_other() {
    share_live_events_and_outlive_each_other("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_live_events_and_outlive_each_other() {
    share_live_events_and_outlive_each_other("postgres").await;
}

async fn follow_each_others_edits(kind: &str) {
    let (a, b) = replicas(kind).await;
    let version_of = |p: &Process| call(reqwest::Method::GET, format!("{}/readyz", p.url), None);

    // An entry added through A is answered by B: B follows the stored version.
    let question = "你们支持礼品包装吗？";
    let entry = json!({"question": question, "similar": ["可以包装成礼物吗"], "answer": {"zh": "支持，下单时备注“礼品包装”即可。"}});
    let (status, summary) = call(reqwest::Method::PUT, format!("{}/v1/kb/faqs/gift-wrap", a.url), Some(entry)).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let version = summary["version"].as_i64().unwrap();
    assert!(version > 0, "{summary}");
    let edited = Instant::now();
    loop {
        let body = json!({"text": question});
        let (status, v) = call(reqwest::Method::POST, format!("{}/v1/answer", b.url), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if v["faq_id"] == "gift-wrap" {
            break;
        }
        assert!(edited.elapsed() < Duration::from_secs(60), "replica B never served the edit: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{kind}: replica B answered with A's edit {:?} after A's response", edited.elapsed());
    assert_eq!(version_of(&b).await.1["kb_version"], version);

    // Phrasings added to one FAQ through both replicas at once: every one lands.
    let texts = [
        "拆了封还能七天无理由吗",
        "试穿过的能退吗",
        "七天内不想要了怎么办",
        "没拆封能退货吗",
        "七天无理由包括运费吗",
        "退货要自己出运费吗",
    ];
    let mut adds = tokio::task::JoinSet::new();
    for (i, text) in texts.iter().enumerate() {
        let at = if i % 2 == 0 { &a.url } else { &b.url };
        let path = format!("{at}/v1/kb/faqs/return-7day/similar");
        adds.spawn(call(reqwest::Method::POST, path, Some(json!({"text": text}))));
    }
    while let Some(done) = adds.join_next().await {
        let (status, v) = done.unwrap();
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let started = Instant::now();
    for p in [&a, &b] {
        loop {
            let (status, faq) = call(reqwest::Method::GET, format!("{}/v1/kb/faqs/return-7day", p.url), None).await;
            assert_eq!(status, StatusCode::OK, "{faq}");
            let similar: Vec<&str> = faq["similar"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
            if texts.iter().all(|t| similar.contains(t)) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{}: lost phrasings, has {similar:?}", p.url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (va, vb) = (version_of(&a).await.1["kb_version"].clone(), version_of(&b).await.1["kb_version"].clone());
    assert_eq!(va, vb, "both replicas serve the same version");
    assert_eq!(va.as_i64(), Some(version + texts.len() as i64), "one version per edit");
    for mut p in [a, b] {
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
}

async fn share_live_events_and_outlive_each_other(kind: &str) {
    let (mut a, b) = replicas(kind).await;
    // A shopper on A asks for a human and listens on A.
    let ask = |url: &str, body: Value| call(reqwest::Method::POST, format!("{url}/v1/answer"), Some(body));
    let (status, first) = ask(&a.url, json!({"text": "亲，在吗？我要转人工"})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["action"], "handoff", "{first}");
    let conversation = first["conversation_id"].as_str().unwrap().to_string();
    let mut shopper = Sse::open(&format!("{}/v1/conversations/{conversation}/events", a.url), None).await;

    // An agent's console on B counts as present on A, and A can set it away.
    let console = format!("{}/v1/agent/events?key={KEY}&console=tab-1", b.url);
    let agent_stream = Sse::open(&console, None).await;
    let presence = |away: bool| {
        let body = json!({"console": "tab-1", "away": away});
        call(reqwest::Method::POST, format!("{}/v1/agent/presence", a.url), Some(body))
    };
    let started = Instant::now();
    loop {
        let (status, v) = presence(false).await;
        if status == StatusCode::OK && v["present"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "B's console never present on A: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, v) = presence(true).await;
    assert_eq!((status, v["present"].as_i64()), (StatusCode::OK, Some(0)), "{v}");

    // The agent replies through B; the shopper's stream on A receives it.
    let reply = "您好，我是客服小王，请问有什么可以帮您？";
    let path = format!("{}/v1/conversations/{conversation}/messages", b.url);
    let (status, v) = call(reqwest::Method::POST, path, Some(json!({"text": reply}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let replied = Instant::now();
    let (id, data) = shopper.next_event("agent").await;
    eprintln!("{kind}: the agent's reply through B reached the shopper's stream on A after {:?}", replied.elapsed());
    assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["message"]["text"], reply);

    // A is killed mid-conversation; the shopper goes on through B.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    drop((shopper, agent_stream));
    let (status, next) = ask(&b.url, json!({"conversation_id": conversation, "text": "好的，我的订单还没发货"})).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["conversation_id"], conversation.as_str());
    // The agent answers while the shopper's stream is down; the stream
    // reconnects to B and gets what came after the last event it saw.
    let missed = "已为您查询，订单今天下午发出。";
    let path = format!("{}/v1/conversations/{conversation}/messages", b.url);
    let (status, v) = call(reqwest::Method::POST, path, Some(json!({"text": missed}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let mut again = Sse::open(&format!("{}/v1/conversations/{conversation}/events", b.url), Some(id)).await;
    let (replayed, data) = again.next_event("agent").await;
    assert!(replayed > id, "the replay starts after Last-Event-ID");
    assert_eq!(serde_json::from_str::<Value>(&data).unwrap()["message"]["text"], missed);
    let (status, t) = call(reqwest::Method::GET, format!("{}/v1/conversations/{conversation}", b.url), None).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let texts: Vec<&str> = t["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    for text in ["亲，在吗？我要转人工", reply, "好的，我的订单还没发货", missed] {
        assert!(texts.contains(&text), "{text} lost: {texts:?}");
    }
    drop(again);
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
}

/// A server-sent event stream read as it arrives.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(url: &str, last_event_id: Option<i64>) -> Sse {
        let mut r = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            r = r.header("Last-Event-ID", id.to_string());
        }
        let response = r.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Sse { response, buffer: String::new() }
    }

    /// The next event named `kind` (failing after 30 s: a stuck stream): its id and data.
    async fn next_event(&mut self, kind: &str) -> (i64, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field =
                    |name: &str| block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_string()));
                if field("event:").as_deref() == Some(kind) {
                    return (field("id:").unwrap().parse().unwrap(), field("data:").unwrap());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk()).await;
            let chunk = chunk.unwrap_or_else(|_| panic!("no {kind} event within 30 s: {}", self.buffer));
            self.buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("stream open")));
        }
    }
}

/// One request with the API key; the status and the JSON body (null if none).
async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new().request(method, url).bearer_auth(KEY);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
}
