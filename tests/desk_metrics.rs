//! The agent desk's service figures (issue #14, item 3) on a scripted set
//! of conversations with known timings: the store's clock is set by hand,
//! everything else is real (HTTP, accounts, model, SQLite). Also the
//! shopper's satisfaction survey, and the figures in `/metrics`.

mod common;

use common::{Server, assert_error, start_clocked};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use xiaoer::store::Clock;

async fn as_agent(server: &Server, token: &str, path: &str, body: Value) -> Value {
    let (status, v) = server.call(Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {v}");
    v
}

async fn handoff(server: &Server, text: &str) -> String {
    let a = server.ask(json!({"text": text})).await;
    assert_eq!(a["action"], "handoff", "{a}");
    a["conversation_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_figures_follow_a_scripted_shift() {
    let tmp = tempfile::tempdir().unwrap();
    // An hour ago, so that /metrics (the last 24 hours of real time) sees it all.
    let t0 = chrono::Utc::now().timestamp() - 3600;
    let clock = Clock::manual(t0);
    let server = start_clocked(&tmp.path().join("db.sqlite3"), clock.clone(), |c| c.server.rate_burst = 1000).await;
    let li_id = server.create_agent("li", "小李", "agent").await["id"].as_i64().unwrap();
    let wang_id = server.create_agent("wang", "小王", "agent").await["id"].as_i64().unwrap();
    let (li, wang) = (server.login("li").await, server.login("wang").await);

    // A: handed off at t0; 小李 takes it at +40 and sends the drafted reply
    // at +60 (first response 60 s), closes it at +300 (handling 240 s); survey 5.
    let a = handoff(&server, "转人工").await;
    clock.advance(40);
    as_agent(&server, &li, &format!("/v1/conversations/{a}/take"), Value::Null).await;
    clock.advance(20);
    let drafts = as_agent(&server, &li, &format!("/v1/conversations/{a}/suggestions"), json!({})).await;
    let draft = drafts[0]["id"].as_str().unwrap();
    as_agent(&server, &li, &format!("/v1/suggestions/{draft}/feedback"), json!({"verdict": "accepted"})).await;
    clock.advance(240);
    // The survey opens only when the agent closes the conversation.
    let (status, v) = server.post(&format!("/v1/conversations/{a}/survey"), json!({"score": 5})).await;
    assert_error(status, &v, StatusCode::CONFLICT);
    as_agent(&server, &li, &format!("/v1/conversations/{a}/close"), Value::Null).await;
    let (_, t) = server.get(&format!("/v1/conversations/{a}/transcript")).await;
    assert_eq!(t["survey_pending"], true, "{t}");
    for bad in [json!({"score": 0}), json!({"score": 6}), json!({"score": 4, "comment": "好".repeat(501)})] {
        let (status, v) = server.post(&format!("/v1/conversations/{a}/survey"), bad).await;
        assert_error(status, &v, StatusCode::BAD_REQUEST);
    }
    let (status, v) = server.post(&format!("/v1/conversations/{a}/survey"), json!({"score": "five"})).await;
    assert_error(status, &v, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, v) =
        server.post(&format!("/v1/conversations/{a}/survey"), json!({"score": 5, "comment": "小李很耐心 👍"})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = server.post(&format!("/v1/conversations/{a}/survey"), json!({"score": 1})).await;
    assert_error(status, &v, StatusCode::CONFLICT);
    let (_, t) = server.get(&format!("/v1/conversations/{a}/transcript")).await;
    assert_eq!(t["survey_pending"], false, "answered once: {t}");
    let (status, v) = server.post("/v1/conversations/no-such-id/survey", json!({"score": 3})).await;
    assert_error(status, &v, StatusCode::NOT_FOUND);

    // B: a complaint at +1000; 小李 answers at +1120 (first response 120 s),
    // transfers it to 小王 at +1150, who answers and closes it at +1300
    // (handling 180 s from the first reply); survey 2.
    clock.advance(700);
    let b = handoff(&server, "我要投诉，你们发错货了").await;
    clock.advance(120);
    as_agent(&server, &li, &format!("/v1/conversations/{b}/messages"), json!({"text": "非常抱歉，我看一下"})).await;
    clock.advance(30);
    as_agent(&server, &li, &format!("/v1/conversations/{b}/transfer"), json!({"agent_id": wang_id})).await;
    clock.advance(100);
    as_agent(&server, &wang, &format!("/v1/conversations/{b}/messages"), json!({"text": "已为您补发"})).await;
    clock.advance(50);
    as_agent(&server, &wang, &format!("/v1/conversations/{b}/close"), Value::Null).await;
    let (status, _) = server.post(&format!("/v1/conversations/{b}/survey"), json!({"score": 2})).await;
    assert_eq!(status, StatusCode::OK);

    // C: waiting since +2000; 小王 rejects a draft for it (no reply sent).
    clock.advance(700);
    let c = handoff(&server, "转人工客服").await;
    let drafts = as_agent(&server, &wang, &format!("/v1/conversations/{c}/suggestions"), json!({})).await;
    let draft = drafts[0]["id"].as_str().unwrap();
    as_agent(&server, &wang, &format!("/v1/suggestions/{draft}/feedback"), json!({"verdict": "rejected"})).await;

    let (status, s) = server.get(&format!("/v1/stats?from={t0}&to={}", t0 + 3000)).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    let d = &s["desk"];
    assert_eq!((&d["handoffs"], &d["answered"], &d["closed"]), (&json!(3), &json!(2), &json!(2)), "{d}");
    assert_eq!(d["first_response_secs"], 90.0, "(60 + 120) / 2: {d}");
    assert_eq!(d["handling_secs"], 210.0, "(240 + 180) / 2: {d}");
    assert_eq!(d["first_contact_resolution_rate"], 0.5, "B was transferred: {d}");
    assert_eq!(d["transfer_rate"].as_f64().unwrap(), 1.0 / 3.0, "{d}");
    assert_eq!((&d["drafts_reviewed"], &d["draft_acceptance_rate"]), (&json!(2), &json!(0.5)), "{d}");
    assert_eq!((&d["surveys"], &d["survey_response_rate"], &d["satisfaction"]), (&json!(2), &json!(1.0), &json!(3.5)));

    let agent = |id: i64| s["agents"].as_array().unwrap().iter().find(|a| a["agent_id"] == id).unwrap().clone();
    let (l, w) = (agent(li_id), agent(wang_id));
    assert_eq!(l["display_name"], "小李");
    assert_eq!((&l["handoffs"], &l["answered"], &l["closed"]), (&json!(2), &json!(2), &json!(1)), "{l}");
    assert_eq!((&l["first_response_secs"], &l["handling_secs"]), (&json!(90.0), &json!(240.0)), "{l}");
    assert_eq!((&l["transfer_rate"], &l["first_contact_resolution_rate"]), (&json!(0.5), &json!(1.0)), "{l}");
    assert_eq!((&l["draft_acceptance_rate"], &l["satisfaction"]), (&json!(1.0), &json!(5.0)), "{l}");
    assert_eq!((&w["handoffs"], &w["answered"], &w["closed"]), (&json!(1), &json!(0), &json!(1)), "{w}");
    assert_eq!(w["first_response_secs"], Value::Null, "小王 sent no first reply: {w}");
    assert_eq!((&w["handling_secs"], &w["transfer_rate"]), (&json!(180.0), &json!(0.0)), "{w}");
    assert_eq!((&w["first_contact_resolution_rate"], &w["satisfaction"]), (&json!(0.0), &json!(2.0)), "{w}");
    assert_eq!((&w["drafts_reviewed"], &w["draft_acceptance_rate"]), (&json!(1), &json!(0.0)), "{w}");

    // A window before the shift counts nothing, and says so with nulls.
    let (_, empty) = server.get(&format!("/v1/stats?from={}&to={t0}", t0 - 3600)).await;
    assert_eq!((&empty["desk"]["handoffs"], &empty["desk"]["satisfaction"]), (&json!(0), &Value::Null));
    assert_eq!(empty["agents"], json!([]));

    // The same figures reach /metrics (last 24 hours), overall and per agent.
    let metrics = server.http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    for line in [
        "xiaoer_desk{figure=\"first_response_seconds\",agent=\"all\"} 90.0".to_string(),
        "xiaoer_desk{figure=\"satisfaction_score\",agent=\"all\"} 3.5".to_string(),
        format!("xiaoer_desk{{figure=\"handling_seconds\",agent=\"{wang_id}\"}} 180.0"),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from:\n{metrics}");
    }
}
