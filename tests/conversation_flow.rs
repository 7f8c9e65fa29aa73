//! The conversation over real HTTP with the sample store: small talk
//! (greetings, thanks, "are you a bot") gets the store's reply in the
//! shopper's language, never a handoff, never a knowledge gap; real questions
//! still search; while a human is awaited the shopper hears where they stand.

mod common;

use common::start;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_talk_gets_a_friendly_reply_not_a_human() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;
    for (text, locale, expect) in [
        ("在吗", None, "店小二"),
        ("亲，在嗎？😊", None, "店小二"),
        ("你好呀~", None, "店小二"),
        ("好的，谢谢！", None, "不客气"),
        ("Thanks!", None, "welcome"),
        ("ありがとうございます", None, "どういたしまして"),
        ("are you human?", None, "assistant bot"),
        ("你是机器人吗？", None, "智能客服"),
        ("拜拜", Some("zh"), "再见"),
        ("안녕하세요", None, "안녕하세요"),
        ("哈哈哈哈", Some("ja"), "承知しました"),
    ] {
        let v = server.ask(json!({"text": text, "locale": locale})).await;
        assert_eq!((v["action"].as_str(), v["reason"].as_str()), (Some("answer"), Some("small_talk")), "{text}: {v}");
        assert!(v["faq_id"].is_null(), "{text}: {v}");
        assert!(v["answer"].as_str().unwrap().contains(expect), "{text}: {v}");
    }
    // Questions, with or without a greeting, still go to the knowledge base.
    let v = server.ask(json!({"text": "七天无理由退货怎么申请？"})).await;
    assert_eq!(v["faq_id"], "return-7day");
    let v = server.ask(json!({"text": "你好，请问发什么快递？"})).await;
    assert_ne!(v["reason"], "small_talk", "{v}");
    // An explicit request still reaches a human.
    let v = server.ask(json!({"text": "转人工"})).await;
    assert_eq!((v["action"].as_str(), v["reason"].as_str()), (Some("handoff"), Some("human_requested")));

    // Small talk opened no ticket and is never mined as a gap.
    let (_, queue) = server.get("/v1/handoffs").await;
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    for _ in 0..3 {
        server.ask(json!({"text": "在吗在吗"})).await;
    }
    let (_, proposals) = server.post("/v1/kb/gaps/mine", json!({})).await;
    let mined: Vec<&str> = proposals.as_array().unwrap().iter().filter_map(|p| p["text"].as_str()).collect();
    assert!(mined.iter().all(|t| !t.contains("在吗") && !t.contains("谢谢")), "{mined:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_can_be_asked_for_in_every_language_the_widget_speaks() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;
    for text in [
        "亲，转人工",
        "人工人工！",
        "can I talk to a real agent pls",
        "オペレーターにつないでください",
        "상담원 연결해 주세요",
    ] {
        let v = server.ask(json!({"text": text})).await;
        assert_eq!(
            (v["action"].as_str(), v["reason"].as_str()),
            (Some("handoff"), Some("human_requested")),
            "{text}: {v}"
        );
    }
    // A question about agents is no request, in Korean too.
    let v = server.ask(json!({"text": "상담원 연결은 몇 시까지 돼요?"})).await;
    assert_ne!(v["reason"], "human_requested", "{v}");
    let v = server.ask(json!({"text": "ありがとうございました！"})).await;
    assert_eq!(v["reason"], "small_talk", "{v}");
    // Lexicon words inside other words are no request, complaint or anger:
    // 人工 in a question about 人工费, 气死 across 天气|死冷.
    for text in ["安装要另外收人工费吗", "北方天气死冷，奶粉寄过去会冻坏吗"] {
        let v = server.ask(json!({"text": text})).await;
        let reason = v["reason"].as_str().unwrap();
        assert!(!["human_requested", "complaint", "anger"].contains(&reason), "{text}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_position_is_told_while_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;
    let first = server.ask(json!({"text": "转人工"})).await;
    assert!(!first["answer"].as_str().unwrap().contains("前面还有"), "{first}");
    let second = server.ask(json!({"text": "我要找人工客服"})).await;
    assert!(second["answer"].as_str().unwrap().contains("前面还有 1 位"), "{second}");
    let id = second["conversation_id"].as_str().unwrap();
    let again = server.ask(json!({"conversation_id": id, "text": "还要等多久"})).await;
    assert_eq!(again["reason"], "waiting_for_agent");
    assert!(again["answer"].as_str().unwrap().contains("前面还有 1 位"), "{again}");
    // Once the first shopper's conversation is closed, the second is next.
    let (status, _) = server
        .post(&format!("/v1/conversations/{}/close", first["conversation_id"].as_str().unwrap()), json!({}))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let next = server.ask(json!({"conversation_id": id, "text": "还要等多久"})).await;
    assert!(next["answer"].as_str().unwrap().contains("下一位"), "{next}");
    // The queue shows what the shopper wrote, not the bot's notice.
    let (_, queue) = server.get("/v1/handoffs").await;
    assert_eq!(queue[0]["last_message"], "还要等多久", "{queue}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_and_learning_speak_about_the_real_question() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |_| {}).await;
    let h = server.ask(json!({"text": "收到的瓶子碎了怎么办，转人工"})).await;
    assert_eq!(h["reason"], "human_requested");
    let id = h["conversation_id"].as_str().unwrap();
    // Later messages that are only a request or small talk do not replace the question.
    server.ask(json!({"conversation_id": id, "text": "转人工！"})).await;
    server.ask(json!({"conversation_id": id, "text": "谢谢"})).await;
    let (_, drafts) = server.post(&format!("/v1/conversations/{id}/suggestions"), json!({})).await;
    assert_eq!(drafts[0]["faq_id"], "after-damaged", "{drafts}");
    let sid = drafts[0]["id"].as_str().unwrap();
    let (status, _) = server.post(&format!("/v1/suggestions/{sid}/feedback"), json!({"verdict": "accepted"})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    // The learned phrasing is the shopper's question, without 转人工.
    let (_, proposals) = server.get("/v1/kb/proposals").await;
    let texts: Vec<&str> = proposals.as_array().unwrap().iter().filter_map(|p| p["text"].as_str()).collect();
    assert_eq!(texts, ["收到的瓶子碎了怎么办"], "{proposals}");
    // A conversation of nothing but 转人工 proposes nothing.
    let only = server.ask(json!({"text": "转人工"})).await;
    let only = only["conversation_id"].as_str().unwrap();
    let (_, drafts) = server.post(&format!("/v1/conversations/{only}/suggestions"), json!({})).await;
    let sid = drafts[0]["id"].as_str().unwrap();
    server.post(&format!("/v1/suggestions/{sid}/feedback"), json!({"verdict": "accepted"})).await;
    let (_, proposals) = server.get("/v1/kb/proposals").await;
    assert_eq!(proposals.as_array().unwrap().len(), 1, "{proposals}");
}
