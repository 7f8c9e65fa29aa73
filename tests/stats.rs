//! Analytics computed from a scripted set of conversations over real HTTP.

mod common;

use common::{assert_error, start};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_follow_a_scripted_day() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;

    let a1 = server.ask(json!({"text": "七天无理由退货怎么申请？"})).await;
    let a2 = server.ask(json!({"text": "7天无理由怎么退"})).await;
    assert_eq!((a1["action"].as_str(), a2["action"].as_str()), (Some("answer"), Some("answer")), "{a1} {a2}");
    for (a, helpful) in [(&a1, true), (&a2, false)] {
        let body = json!({"conversation_id": a["conversation_id"], "helpful": helpful});
        let (status, _) = server.post(&format!("/v1/decisions/{}/rating", a["decision_id"]), body).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Only the conversation's own shopper may rate: another conversation's
    // id, or none, cannot forge a rating (and ids cannot be probed).
    let forged = json!({"conversation_id": a2["conversation_id"], "helpful": false});
    let (status, body) = server.post(&format!("/v1/decisions/{}/rating", a1["decision_id"]), forged).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) =
        server.post(&format!("/v1/decisions/{}/rating", a1["decision_id"]), json!({"helpful": false})).await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    let clarify = server.ask(json!({"text": "跨境稅"})).await;
    assert_eq!(clarify["action"], "clarify");
    let human = server.ask(json!({"text": "转人工"})).await;
    let complaint = server.ask(json!({"text": "我要投诉你们"})).await;
    assert_eq!(complaint["reason"], "complaint");

    // Only answers can be rated; unknown ids are 404.
    let body = json!({"conversation_id": complaint["conversation_id"], "helpful": true});
    let (status, body) = server.post(&format!("/v1/decisions/{}/rating", complaint["decision_id"]), body).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let body = json!({"conversation_id": complaint["conversation_id"], "helpful": true});
    let (status, body) = server.post("/v1/decisions/999999/rating", body).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server.post("/v1/decisions/abc/rating", json!({"helpful": true})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);

    // The agent reviews drafts: one accepted, one edited, one rejected.
    let conv = human["conversation_id"].as_str().unwrap();
    let (_, drafts) = server.post(&format!("/v1/conversations/{conv}/suggestions"), json!({})).await;
    let ids: Vec<&str> = drafts.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    for (id, body) in ids.iter().zip([
        json!({"verdict": "accepted"}),
        json!({"verdict": "edited", "text": "您好，请问遇到了什么问题？"}),
        json!({"verdict": "rejected"}),
    ]) {
        let (status, v) = server.post(&format!("/v1/suggestions/{id}/feedback"), body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    let (status, s) = server.get("/v1/stats").await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["conversations"], 5);
    assert_eq!(s["decisions"], 5);
    assert_eq!(s["auto_answer_rate"], 0.4);
    assert_eq!(s["clarify_rate"], 0.2);
    assert_eq!(s["handoff_rate"], 0.4);
    assert_eq!(s["handoff_by_reason"], json!([["complaint", 1], ["human_requested", 1]]));
    assert_eq!(s["suggestions_reviewed"], 3);
    let third = 1.0 / 3.0;
    for k in ["accepted_rate", "edited_rate", "rejected_rate"] {
        assert!((s[k].as_f64().unwrap() - third).abs() < 1e-9, "{k}: {s}");
    }
    // Per FAQ: the answered one first; hits count every message an FAQ
    // ranked first for (the clarified question's first choice, unanswered).
    let faqs = s["faqs"].as_array().unwrap();
    assert_eq!(
        faqs[0],
        json!({"faq_id": "return-7day", "hits": 2, "answered": 2, "helpful": 1, "unhelpful": 1, "auto_resolution_rate": null})
    );
    let first_choice = clarify["choices"][0]["faq_id"].as_str().unwrap();
    assert!(
        faqs.iter().any(|f| f["faq_id"] == first_choice && f["answered"] == 0 && f["hits"].as_i64() >= Some(1)),
        "{faqs:?}"
    );
    assert_eq!(faqs.iter().map(|f| f["hits"].as_i64().unwrap()).sum::<i64>(), 5, "{faqs:?}");
    // Nothing has ended yet (closed, or idle for 30 minutes).
    assert_eq!((s["ended_conversations"].as_i64(), s["auto_resolution_rate"].as_f64()), (Some(0), Some(0.0)), "{s}");

    // Conversations end: answered and 👍 (resolved), answered and 👎, handed
    // off, small talk only (not counted); the clarified one stays open.
    let hello = server.ask(json!({"text": "你好"})).await;
    assert_eq!(hello["reason"], "small_talk");
    for c in [&a1, &a2, &human, &hello] {
        let (status, v) = server
            .post(&format!("/v1/conversations/{}/close", c["conversation_id"].as_str().unwrap()), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (_, s) = server.get("/v1/stats").await;
    assert_eq!((s["ended_conversations"].as_i64(), s["auto_resolved"].as_i64()), (Some(3), Some(1)), "{s}");
    assert!((s["auto_resolution_rate"].as_f64().unwrap() - third).abs() < 1e-9, "{s}");
    assert_eq!(s["faqs"][0]["auto_resolution_rate"], 0.5, "{s}");

    // A window before everything is empty; an inverted one is refused.
    let (_, empty) = server.get("/v1/stats?from=0&to=1000").await;
    assert_eq!((empty["conversations"].as_i64(), empty["decisions"].as_i64()), (Some(0), Some(0)));
    let (status, body) = server.get("/v1/stats?from=10&to=5").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
}
