//! Gap mining and the learning loop over real HTTP with the real model.

mod common;

use common::{assert_error, private_data, start};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_questions_become_proposals_and_approved_ones_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), move |c| c.data_dir = data).await;
    let gift = ["可以帮我做礼品包装吗", "能不能包装成礼物送人", "礼品包装可以做吗", "送人的话可以帮忙包装一下吗"];
    let store = ["你们有线下实体店吗", "实体店在哪里可以买到"];
    for q in gift.iter().chain(&store).chain(["转人工"].iter()) {
        let a = server.ask(json!({"text": q})).await;
        assert_ne!(a["action"], "answer", "{q}: {a}");
    }
    for q in ["你好", "你好", "在吗", "谢谢"] {
        server.ask(json!({"text": q})).await;
    }
    let (status, mined) = server.post("/v1/kb/gaps/mine", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{mined}");
    let mined = mined.as_array().unwrap();
    let top = &mined[0];
    assert_eq!(top["kind"], "new_faq");
    assert!(top["count"].as_i64().unwrap() >= 3, "{mined:?}");
    let examples: Vec<&str> = top["examples"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(examples.iter().all(|e| gift.contains(e)), "gift questions cluster alone: {examples:?}");
    for p in mined {
        let texts = std::iter::once(&p["text"]).chain(p["examples"].as_array().unwrap());
        for t in texts.map(|t| t.as_str().unwrap()) {
            assert!(!["转人工", "你好", "在吗", "谢谢"].contains(&t), "small talk and requests are no gaps: {mined:?}");
        }
    }

    // Mining again does not duplicate pending proposals.
    let (_, again) = server.post("/v1/kb/gaps/mine", json!({})).await;
    assert_eq!(again.as_array().unwrap().len(), mined.len());

    // The operator writes the answer; the gap is answered from then on.
    let id = top["id"].as_i64().unwrap();
    let (status, body) = server.post(&format!("/v1/kb/proposals/{id}/approve"), json!({})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let entry = json!({
        "question": "可以做礼品包装吗？",
        "similar": examples,
        "answer": {"zh": "本店暂不提供礼品包装服务，商品均以原厂包装发出，可在备注中要求不放价格单。"},
        "category": "订单",
    });
    let (status, v) = server
        .post(&format!("/v1/kb/proposals/{id}/approve"), json!({"faq_id": "order-gift-wrap", "entry": entry}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let a = server.ask(json!({"text": "能帮忙包装成礼物吗"})).await;
    let hit = if a["action"] == "answer" { a["faq_id"].clone() } else { a["choices"][0]["faq_id"].clone() };
    assert_eq!(hit, "order-gift-wrap", "{a}");
    let (status, body) = server.post(&format!("/v1/kb/proposals/{id}/dismiss"), json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (_, approved) = server.get("/v1/kb/proposals?status=approved").await;
    assert_eq!(approved.as_array().unwrap().len(), 1);

    // The operator dismisses what is left; mining the same window again
    // proposes neither the approved gap nor the dismissed ones.
    let (_, pending) = server.get("/v1/kb/proposals").await;
    let pending: Vec<i64> = pending.as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert!(!pending.is_empty(), "the 实体店 questions were proposed too: {mined:?}");
    for id in pending {
        let (status, v) = server.post(&format!("/v1/kb/proposals/{id}/dismiss"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (status, again) = server.post("/v1/kb/gaps/mine", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, json!([]), "approved and dismissed gaps came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_drafts_teach_new_phrasings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), move |c| c.data_dir = data).await;
    let question = "瓶子在路上磕坏了咋整";
    let first = server.ask(json!({"text": "转人工"})).await;
    let conv = first["conversation_id"].as_str().unwrap();
    server.ask(json!({"conversation_id": conv, "text": question})).await;
    let (_, drafts) = server.post(&format!("/v1/conversations/{conv}/suggestions"), json!({})).await;
    let damaged = drafts.as_array().unwrap().iter().find(|d| d["faq_id"] == "after-damaged").expect("drafted");
    let sid = damaged["id"].as_str().unwrap();
    let (status, _) = server.post(&format!("/v1/suggestions/{sid}/feedback"), json!({"verdict": "accepted"})).await;
    assert_eq!(status, StatusCode::OK);

    // A heavily rewritten reply teaches nothing.
    let other = server.ask(json!({"text": "转人工"})).await;
    let conv2 = other["conversation_id"].as_str().unwrap();
    server.ask(json!({"conversation_id": conv2, "text": "快递盒子压扁了里面的东西也坏了"})).await;
    let (_, drafts2) = server.post(&format!("/v1/conversations/{conv2}/suggestions"), json!({})).await;
    let sid2 = drafts2[0]["id"].as_str().unwrap();
    let (status, _) = server
        .post(
            &format!("/v1/suggestions/{sid2}/feedback"),
            json!({"verdict": "edited", "text": "您好，麻烦提供一下订单号，我马上为您处理。"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, pending) = server.get("/v1/kb/proposals").await;
    let pending = pending.as_array().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        (pending[0]["kind"].as_str(), pending[0]["faq_id"].as_str(), pending[0]["text"].as_str()),
        (Some("similar"), Some("after-damaged"), Some(question))
    );
    let id = pending[0]["id"].as_i64().unwrap();
    let (status, v) = server.post(&format!("/v1/kb/proposals/{id}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, faq) = server.get("/v1/kb/faqs/after-damaged").await;
    assert!(faq["similar"].as_array().unwrap().iter().any(|s| s == question), "{faq}");
    let (status, body) = server.post("/v1/kb/proposals/424242/approve", json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

/// Issue #12: the knowledge base's verifier learns from the store's own
/// labelled turns (shoppers' 👍/👎, agents' verdicts on drafts) when it is
/// fitted again (after a knowledge change, at start), and the fit is
/// cached for a restart on the same labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_learns_from_ratings_and_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db.sqlite3");
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let d = data.clone();
    let server = start(&db, move |c| {
        c.data_dir = d;
        c.server.rate_burst = 1000;
    })
    .await;
    let history_samples = |server: &common::Server| {
        let calibration = server.services.knowledge.engine().calibration();
        calibration.chinese.as_ref().map_or(0, |v| v.history_samples)
    };
    assert_eq!(history_samples(&server), 0);

    // Shoppers rate three automatic answers: 👍, 👍, 👎.
    for (text, helpful) in [("七天无理由退货怎么申请？", true), ("发什么快递", true), ("可以开发票吗", false)]
    {
        let a = server.ask(json!({"text": text})).await;
        assert_eq!(a["action"], "answer", "{text}: {a}");
        let body = json!({"conversation_id": a["conversation_id"], "helpful": helpful});
        let (status, v) = server.post(&format!("/v1/decisions/{}/rating", a["decision_id"]), body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    // An agent sends one draft as drafted, rejects another's first draft, and
    // rewrites a third (which says nothing either way); a request for a human
    // with no question in it gives no label.
    for (text, verdict) in [
        ("转人工 拆封了的面霜还能退吗", json!({"verdict": "accepted"})),
        ("转人工 你们的快递太慢了怎么回事", json!({"verdict": "rejected"})),
        ("转人工 想问下保税仓发货要多久", json!({"verdict": "edited", "text": "亲，这个我帮您查一下具体仓库再回复您"})),
        ("转人工", json!({"verdict": "accepted"})),
    ] {
        let a = server.ask(json!({"text": text})).await;
        assert_eq!(a["action"], "handoff", "{text}: {a}");
        let conv = a["conversation_id"].as_str().unwrap();
        let (_, drafts) = server.post(&format!("/v1/conversations/{conv}/suggestions"), json!({})).await;
        let id = drafts[0]["id"].as_str().unwrap();
        let (status, v) = server.post(&format!("/v1/suggestions/{id}/feedback"), verdict).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    // A knowledge change fits the verifier again, now with those turns: the
    // two 👍 and the sent draft always count (their FAQ known right), the 👎
    // and the rejection only where that FAQ still ranks first.
    let (status, v) = server.post("/v1/kb/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    server.refitted().await;
    let learned = history_samples(&server);
    assert!((3..=5).contains(&learned), "{learned} labelled turns in the fit");
    let chinese = server.calibration("chinese").await;
    assert_eq!(chinese["history_samples"], learned, "{chinese}");
    server.handle.abort();

    // A restart on the same labels finds that fit cached: calibrated at once.
    let d = data.clone();
    let again = start(&db, move |c| c.data_dir = d).await;
    assert!(again.services.knowledge.engine().calibrated());
    assert_eq!(history_samples(&again), learned);
}
