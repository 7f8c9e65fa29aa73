//! The answer service over real HTTP: the real router on an ephemeral port,
//! the real model, the sample knowledge base, SQLite on disk.

mod common;

use std::sync::Arc;

use common::{assert_error, open_store, start};
use reqwest::StatusCode;
use serde_json::json;
use xiaoer::store::{Role, Verdict};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopper_to_agent_walk_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("xiaoer.sqlite3");
    let server = start(&db, |_| {}).await;

    // A clear policy question is answered automatically.
    let a = server.ask(json!({"text": "七天无理由退货怎么申请？"})).await;
    assert_eq!(a["action"], "answer", "{a}");
    assert_eq!(a["faq_id"], "return-7day");
    assert!(a["answer"].as_str().unwrap().contains("七天无理由"));
    assert!(a["confidence"].as_f64().unwrap() >= 0.874);

    // An ambiguous one (a bare topic, in traditional characters) gets 猜你想问 choices.
    let c = server.ask(json!({"text": "跨境稅"})).await;
    assert_eq!(c["action"], "clarify", "{c}");
    let choices: Vec<&str> = c["choices"].as_array().unwrap().iter().map(|x| x["faq_id"].as_str().unwrap()).collect();
    assert_eq!(choices.len(), 3);
    assert!(choices.contains(&"tax-rate"), "{choices:?}");

    // English in, English answer out.
    let en = server.ask(json!({"text": "Do I have to pay import tax on cross-border items?"})).await;
    if en["action"] == "answer" {
        assert!(en["answer"].as_str().unwrap().is_ascii(), "{en}");
    }

    // A follow-up on a product page uses the conversation's product.
    let p = server.ask(json!({"text": "神仙水是正品吗", "product_id": "p-skii-essence"})).await;
    let conv_p = p["conversation_id"].as_str().unwrap().to_string();
    let f = server.ask(json!({"conversation_id": conv_p, "text": "这个适合孕妇吗？"})).await;
    let first = if f["action"] == "answer" { f["faq_id"].clone() } else { f["choices"][0]["faq_id"].clone() };
    assert_eq!(first, "p-skii-essence-suits", "{f}");

    // 转人工 → handoff → queue → drafts → accepted → stored.
    let start_msg = server.ask(json!({"text": "收到的瓶子碎了怎么办"})).await;
    let conv = start_msg["conversation_id"].as_str().unwrap().to_string();
    let h = server.ask(json!({"conversation_id": conv, "text": "转人工"})).await;
    assert_eq!((h["action"].as_str(), h["reason"].as_str()), (Some("handoff"), Some("human_requested")));
    // While the human is awaited the bot still answers what it knows …
    let meanwhile = server.ask(json!({"conversation_id": conv, "text": "七天无理由退货怎么申请？"})).await;
    assert_eq!((meanwhile["action"].as_str(), meanwhile["faq_id"].as_str()), (Some("answer"), Some("return-7day")));
    assert_eq!(meanwhile["conversation_id"], conv.as_str());
    // … and tells the shopper where they stand with the rest.
    let waiting = server.ask(json!({"conversation_id": conv, "text": "我还在等呢"})).await;
    assert_eq!((waiting["action"].as_str(), waiting["reason"].as_str()), (Some("handoff"), Some("waiting_for_agent")));
    assert!(waiting["answer"].as_str().unwrap().contains("客服会尽快回复"), "{waiting}");
    let waiting = server.ask(json!({"conversation_id": conv, "text": "瓶子碎了，漏了一箱子"})).await;
    assert_eq!(waiting["conversation_id"], conv.as_str());
    let (_, t) = server.get(&format!("/v1/conversations/{conv}")).await;
    assert_eq!(t["conversation"]["status"], "handoff", "answering while waiting keeps the ticket");

    let (status, queue) = server.get("/v1/handoffs").await;
    assert_eq!(status, StatusCode::OK);
    let ticket = queue.as_array().unwrap().iter().find(|t| t["conversation_id"] == conv.as_str()).expect("in queue");
    assert_eq!(ticket["reason"], "human_requested");
    assert_eq!(ticket["last_message"], "瓶子碎了，漏了一箱子");

    let (status, drafts) = server.post(&format!("/v1/conversations/{conv}/suggestions"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{drafts}");
    let drafts = drafts.as_array().unwrap();
    assert_eq!(drafts.len(), 3);
    assert!(drafts.iter().all(|d| d["confidence"].as_f64().unwrap() > 0.0 && d["faq_id"].is_string()));
    assert_eq!(drafts[0]["faq_id"], "after-damaged", "{drafts:?}");
    let sid = drafts[0]["id"].as_str().unwrap().to_string();

    let (status, fb) = server.post(&format!("/v1/suggestions/{sid}/feedback"), json!({"verdict": "accepted"})).await;
    assert_eq!(status, StatusCode::OK, "{fb}");
    assert_eq!(fb["message"]["role"], "agent");
    let (status, again) = server.post(&format!("/v1/suggestions/{sid}/feedback"), json!({"verdict": "rejected"})).await;
    assert_error(status, &again, StatusCode::CONFLICT);
    let (status, _) = server
        .post(&format!("/v1/conversations/{conv}/messages"), json!({"text": "已为您登记补发，请留意物流。"}))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Metrics and OpenAPI.
    let metrics = reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("xiaoer_http_request_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("action=\"handoff\""), "{metrics}");
    let sample = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // Every distinct question above was embedded in some batched pass.
    let passes = sample("xiaoer_embedding_pass_seconds_count");
    assert!(passes >= 5.0, "{metrics}");
    assert!(sample("xiaoer_embedding_pass_queries_sum") >= passes, "{metrics}");
    assert!(sample("xiaoer_embedding_pass_seconds_sum") > 0.0, "{metrics}");
    let (status, spec) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/v1/answer", "/v1/handoffs", "/v1/suggestions/{id}/feedback", "/v1/conversations/{id}/close"] {
        assert!(spec["paths"][path].is_object(), "{path} missing from OpenAPI");
    }

    // Restart on the same database: nothing lost.
    server.handle.abort();
    let _ = server.handle.await;
    let server = start(&db, |_| {}).await;
    let (status, t) = server.get(&format!("/v1/conversations/{conv}")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let texts: Vec<&str> = t["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"转人工") && texts.contains(&"已为您登记补发，请留意物流。"), "{texts:?}");
    assert_eq!(t["conversation"]["status"], "handoff");
    assert_eq!(open_store(&db).feedback(&sid).unwrap().map(|f| f.0), Some(Verdict::Accepted));

    // Closing ends the ticket.
    let (status, closed) = server.post(&format!("/v1/conversations/{conv}/close"), json!({})).await;
    assert_eq!((status, closed["status"].as_str()), (StatusCode::OK, Some("closed")));
    let (_, queue) = server.get("/v1/handoffs").await;
    assert!(queue.as_array().unwrap().iter().all(|t| t["conversation_id"] != conv.as_str()));
    // The shopper's next message starts a new conversation, answered by the bot.
    let next = server.ask(json!({"conversation_id": conv, "text": "七天无理由退货怎么申请？"})).await;
    assert_ne!(next["conversation_id"], conv.as_str());
    assert_eq!((next["action"].as_str(), next["faq_id"].as_str()), (Some("answer"), Some("return-7day")));
    let (status, body) = server.post(&format!("/v1/conversations/{conv}/close"), json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_and_the_server_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;
    let long = "退".repeat(2001);
    for (body, want) in [
        (json!({"text": ""}), StatusCode::BAD_REQUEST),
        (json!({"text": " \u{3000}\n\t "}), StatusCode::BAD_REQUEST),
        (json!({"text": long}), StatusCode::BAD_REQUEST),
        (json!({"text": 5}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"question": "包邮吗"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"text": "包邮吗", "product_id": "p-nope"}), StatusCode::BAD_REQUEST),
        (json!({"text": "包邮吗", "locale": "zh CN; drop"}), StatusCode::BAD_REQUEST),
        (json!({"text": "包邮吗", "conversation_id": "no-such-conversation"}), StatusCode::NOT_FOUND),
    ] {
        let (status, v) = server.post("/v1/answer", body.clone()).await;
        assert_error(status, &v, want);
    }
    let (status, v) = server.raw("/v1/answer", "application/json", b"{\"text\": \"\xe5\x8c\x85".to_vec()).await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);
    let (status, v) = server.raw("/v1/answer", "application/json", b"{not json".to_vec()).await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);
    let (status, v) = server.raw("/v1/answer", "text/plain", b"{\"text\":\"hi\"}".to_vec()).await;
    assert_error(status, &v, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"text\": \"{}\"}}", "a".repeat(200_000));
    let r = server.http.post(format!("{}/v1/answer", server.url)).header("content-type", "application/json");
    let r = r.body(huge).send().await.unwrap();
    // Its body was never read: the connection closes rather than carry the next request.
    assert_eq!(r.headers().get("connection").map(|v| v.as_bytes()), Some(&b"close"[..]));
    assert_error(r.status(), &r.json().await.unwrap(), StatusCode::PAYLOAD_TOO_LARGE);

    // Agent routes: key required; unknown ids are 404s.
    let r = server.http.get(format!("{}/v1/handoffs", server.url)).send().await.unwrap();
    let status = r.status();
    assert_error(status, &r.json().await.unwrap(), StatusCode::UNAUTHORIZED);
    let r = server.http.get(format!("{}/v1/handoffs", server.url)).header("x-api-key", "wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (status, v) = server.get("/v1/conversations/nope").await;
    assert_error(status, &v, StatusCode::NOT_FOUND);
    let (status, v) = server.post("/v1/conversations/nope/suggestions", json!({})).await;
    assert_error(status, &v, StatusCode::NOT_FOUND);
    let (status, v) = server.post("/v1/suggestions/nope/feedback", json!({"verdict": "accepted"})).await;
    assert_error(status, &v, StatusCode::NOT_FOUND);
    let (status, v) = server.post("/v1/suggestions/nope/feedback", json!({"verdict": "maybe"})).await;
    assert_error(status, &v, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, v) = server.get("/v1/nothing-here").await;
    assert_error(status, &v, StatusCode::NOT_FOUND);

    // Odd Unicode is just text.
    for text in ["😊😊😊", "ＡＢＣ　１２３？", "\u{200b}退货\u{200d}", "<s>退货</s><mask>", "退貨運費誰付🙏"]
    {
        let v = server.ask(json!({"text": text})).await;
        assert!(["answer", "clarify", "handoff"].contains(&v["action"].as_str().unwrap()), "{v}");
    }

    // Edited feedback needs its text.
    let conv = server.ask(json!({"text": "我要投诉，东西是坏的"})).await;
    assert_eq!((conv["action"].as_str(), conv["reason"].as_str()), (Some("handoff"), Some("complaint")));
    let id = conv["conversation_id"].as_str().unwrap();
    let (_, drafts) = server.post(&format!("/v1/conversations/{id}/suggestions"), json!({})).await;
    let sid = drafts[0]["id"].as_str().unwrap();
    let (status, v) = server.post(&format!("/v1/suggestions/{sid}/feedback"), json!({"verdict": "edited"})).await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);
    let (status, v) = server
        .post(
            &format!("/v1/suggestions/{sid}/feedback"),
            json!({"verdict": "edited", "text": "非常抱歉，已为您补发。"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["message"]["text"], "非常抱歉，已为您补发。");

    // Still serving.
    let ok = reqwest::get(format!("{}/healthz", server.url)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let ready = reqwest::get(format!("{}/readyz", server.url)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(server.ask(json!({"text": "七天无理由退货怎么申请？"})).await["faq_id"], "return-7day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conversations_are_all_stored_and_widget_is_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db.sqlite3");
    let server = Arc::new(start(&db, |c| c.server.rate_burst = 1000).await);
    let questions = ["发什么快递", "包邮吗", "可以开发票吗", "运费险怎么理赔", "怎么查物流", "转人工"];
    let mut tasks = Vec::new();
    for i in 0..24 {
        let server = server.clone();
        let q = questions[i % questions.len()];
        tasks.push(tokio::spawn(async move {
            server.ask(json!({"text": q})).await["conversation_id"].as_str().unwrap().to_string()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24);
    let store = open_store(&db);
    for id in &ids {
        let t = store.transcript(id).unwrap();
        assert_eq!(t.messages.iter().filter(|m| m.role == Role::Shopper).count(), 1);
        assert_eq!(t.decisions.len(), 1);
    }
    assert_eq!(store.handoffs().unwrap().len(), 4, "every 转人工 opened one ticket");

    let limited = start(&tmp.path().join("db2.sqlite3"), |c| {
        c.server.rate_per_second = 1;
        c.server.rate_burst = 2;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(limited.post("/v1/answer", json!({"text": "包邮吗"})).await);
    }
    let (status, body) = statuses.last().unwrap();
    assert_error(*status, body, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(statuses[0].0, StatusCode::OK);
}
