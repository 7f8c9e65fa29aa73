//! Service hours and agent presence over real HTTP (issue #13 item 3): a
//! shopper handed off while no human can answer is told so and when service
//! resumes, may leave a message with validated contact details, and that
//! ticket heads the agents' queue; the agent's reply is in the transcript
//! the shopper's page reads on their next visit.

mod common;

use chrono::{Timelike, Utc};
use common::{KEY, assert_error, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A three-hour window around (`true`) or away from (`false`) the present, China time.
fn hours(around_now: bool) -> String {
    let h = (Utc::now().hour() + 8) % 24;
    let (open, close) = match around_now {
        true => ((h + 23) % 24, (h + 2) % 24),
        false => ((h + 3) % 24, (h + 6) % 24),
    };
    format!("{open:02}:00-{close:02}:00")
}

async fn handed_off(server: &common::Server, text: &str) -> Value {
    let v = server.ask(json!({"text": text})).await;
    assert_eq!(v["action"], "handoff", "{v}");
    v
}

/// A server whose service hours are around (`true`) or away from (`false`) the present.
async fn start_with_hours(around_now: bool, tmp: &tempfile::TempDir) -> common::Server {
    let window = hours(around_now);
    start(&tmp.path().join("db.sqlite3"), |c| {
        c.service.hours = window;
        c.server.rate_burst = 1000;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_hours_the_shopper_leaves_a_message_that_heads_the_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with_hours(false, &tmp).await;

    // An earlier shopper, offered 猜你想问 choices, waits without leaving a message.
    let clarified = server.ask(json!({"text": "跨境稅"})).await;
    assert_eq!(clarified["action"], "clarify", "{clarified}");
    let earlier = server.ask(json!({"conversation_id": clarified["conversation_id"], "text": "转人工"})).await;
    assert_eq!(earlier["action"], "handoff", "{earlier}");
    // This shopper greets, asks, then asks for a human at night.
    let hello = server.ask(json!({"text": "在吗"})).await;
    assert_eq!(hello["reason"], "small_talk", "{hello}");
    let id = hello["conversation_id"].as_str().unwrap().to_string();
    let v = server.ask(json!({"conversation_id": id, "text": "我要找人工客服"})).await;
    assert_eq!((v["action"].as_str(), v["reason"].as_str()), (Some("handoff"), Some("human_requested")), "{v}");
    assert_eq!(v["offline"]["reason"], "outside_hours", "{v}");
    let resumes = v["offline"]["resumes_at"].as_i64().expect("when service resumes");
    let now = Utc::now().timestamp();
    assert!(resumes > now && resumes <= now + 24 * 3600, "{v}");
    let notice = v["answer"].as_str().unwrap();
    assert!(notice.contains("非服务时间") && notice.contains("留言"), "{notice}");

    // While waiting, an FAQ question is still answered.
    let v = server.ask(json!({"conversation_id": id, "text": "七天无理由退货怎么申请？"})).await;
    assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some("return-7day")), "{v}");

    // Contact details are checked; nothing is stored for a refused message.
    let leave = |body: Value, conv: String| {
        let http = server.http.clone();
        let url = format!("{}/v1/conversations/{conv}/leave-message", server.url);
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (kind, value) in
        [("phone", "12345"), ("phone", "2380013800０"), ("email", "shopper@localhost"), ("wangwang", " ")]
    {
        let (status, body) =
            leave(json!({"contact": {"kind": kind, "value": value}, "text": "瓶子碎了"}), id.clone()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    // A body of the wrong shape is refused like any other (422, `invalid_body`).
    let (status, body) = leave(json!({"contact": {"kind": "fax", "value": "1"}, "text": "x"}), id.clone()).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) =
        leave(json!({"contact": {"kind": "phone", "value": "13800138000"}, "text": "  "}), id.clone()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) =
        leave(json!({"contact": {"kind": "phone", "value": "13800138000"}, "text": "x"}), "nope".into()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let not_waiting =
        server.ask(json!({"text": "发什么快递？"})).await["conversation_id"].as_str().unwrap().to_string();
    let (status, body) =
        leave(json!({"contact": {"kind": "phone", "value": "13800138000"}, "text": "x"}), not_waiting).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (_, queue) = server.get("/v1/handoffs").await;
    assert!(queue.as_array().unwrap().iter().all(|t| t["message_left_at"].is_null()), "{queue}");

    let (status, left) = leave(
        json!({"contact": {"kind": "phone", "value": "138 0013 8000"}, "text": "收到的神仙水瓶子碎了，明天联系我"}),
        id.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert!(left["notice"].as_str().unwrap().contains("留言已收到"), "{left}");

    // The ticket with a message comes first, with the contact and what the bot answered.
    let (_, queue) = server.get("/v1/handoffs").await;
    let queue = queue.as_array().unwrap();
    assert_eq!(queue.len(), 2, "{queue:?}");
    assert_eq!(queue[0]["conversation_id"], id.as_str());
    assert_eq!((queue[0]["contact_kind"].as_str(), queue[0]["contact"].as_str()), (Some("phone"), Some("13800138000")));
    assert_eq!(queue[0]["last_message"], "收到的神仙水瓶子碎了，明天联系我");
    assert_eq!(queue[0]["answered_faq_id"], "return-7day");
    assert!(queue[0]["answered_question"].as_str().unwrap().contains("七天无理由"), "{:?}", queue[0]);
    assert_eq!(queue[0]["offered_faq_ids"], json!([]), "no choices were offered to this shopper");
    // The other ticket shows the choices its shopper was offered, with their questions.
    assert_eq!(queue[1]["conversation_id"], earlier["conversation_id"]);
    let offered: Vec<&Value> = clarified["choices"].as_array().unwrap().iter().map(|c| &c["faq_id"]).collect();
    assert_eq!(queue[1]["offered_faq_ids"].as_array().unwrap().iter().collect::<Vec<_>>(), offered);
    let questions: Vec<&Value> = clarified["choices"].as_array().unwrap().iter().map(|c| &c["question"]).collect();
    assert_eq!(queue[1]["offered_questions"].as_array().unwrap().iter().collect::<Vec<_>>(), questions);

    // The agent replies later; the shopper's page reads it on the next visit.
    let (status, _) =
        server.post(&format!("/v1/conversations/{id}/messages"), json!({"text": "您好，已为您登记补发"})).await;
    assert_eq!(status, StatusCode::OK);
    let r = server.http.get(format!("{}/v1/conversations/{id}/transcript", server.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!((t["status"].as_str(), t["message_left"].as_bool()), (Some("handoff"), Some(true)), "{t}");
    let texts: Vec<(&str, &str)> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(texts.first(), Some(&("shopper", "在吗")), "{texts:?}");
    assert_eq!(texts.last(), Some(&("agent", "您好，已为您登记补发")), "{texts:?}");
    assert!(texts.contains(&("shopper", "收到的神仙水瓶子碎了，明天联系我")), "{texts:?}");
    let r = server.http.get(format!("{}/v1/conversations/no-such-id/transcript", server.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_hours_an_agent_is_present_while_a_console_is_connected_and_not_away() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with_hours(true, &tmp).await;

    let v = handed_off(&server, "转人工").await;
    assert_eq!(v["offline"]["reason"], "no_agent", "{v}");
    assert!(v["offline"]["resumes_at"].is_null(), "{v}");

    // A console connects: the next handoff waits for that agent.
    let console = server
        .http
        .get(format!("{}/v1/agent/events?console=desk-1", server.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), StatusCode::OK);
    let v = handed_off(&server, "转人工").await;
    assert!(v["offline"].is_null(), "{v}");
    assert!(v["answer"].as_str().unwrap().contains("请稍候") || v["answer"].as_str().unwrap().contains("等待"), "{v}");

    // Away: connected but not taking shoppers.
    let (status, body) = server.post("/v1/agent/presence", json!({"console": "desk-1", "away": true})).await;
    assert_eq!((status, body["present"].as_u64()), (StatusCode::OK, Some(0)), "{body}");
    assert_eq!(handed_off(&server, "转人工").await["offline"]["reason"], "no_agent");
    let (status, body) = server.post("/v1/agent/presence", json!({"console": "desk-9", "away": true})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, _) = server.post("/v1/agent/presence", json!({"console": "desk-1", "away": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(handed_off(&server, "转人工").await["offline"].is_null());

    // The console's tab closes: nobody is present any more.
    drop(console);
    let started = std::time::Instant::now();
    while server.services.presence.present() > 0 {
        assert!(started.elapsed().as_secs() < 60, "a closed console still counts as present");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(handed_off(&server, "转人工").await["offline"]["reason"], "no_agent");
}
