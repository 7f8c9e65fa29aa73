//! Canned replies (快捷短语, issue #14 item 4) through the real HTTP API:
//! who may add and delete which, who sees which, search as `/` in the reply
//! box uses it, and edited drafts agents keep sending suggested as new ones.

mod common;

use common::{Server, assert_error, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn add(server: &Server, token: &str, body: Value) -> (StatusCode, Value) {
    server.call(Method::POST, "/v1/canned", Some(token), Some(body)).await
}

async fn titles(server: &Server, token: &str, query: &str) -> Vec<String> {
    let path = format!("/v1/canned?q={}", urlencoding(query));
    let (status, v) = server.call(Method::GET, &path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_array().unwrap().iter().map(|r| r["title"].as_str().unwrap().to_string()).collect()
}

fn urlencoding(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canned_replies_belong_to_the_store_or_to_one_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |c| c.server.rate_burst = 1000).await;
    server.create_agent("boss", "店长", "admin").await;
    server.create_agent("li", "小李", "agent").await;
    server.create_agent("wang", "小王", "agent").await;
    let (boss, li, wang) = (server.login("boss").await, server.login("li").await, server.login("wang").await);

    // Store-wide replies: admins (and the API key) add them; agents may not.
    let (status, v) = add(
        &server,
        &boss,
        json!({"title": "退货地址", "text": "退货请寄回：杭州市余杭区仓前街道 1 号，收件人：小二"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["personal"], false);
    let address = v["id"].as_i64().unwrap();
    let (status, v) =
        server.post("/v1/canned", json!({"title": "發貨時間", "text": "现货 48 小时内发货，预售以页面为准。"})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = add(&server, &li, json!({"title": "问候", "text": "亲，在的～"})).await;
    assert_error(status, &v, StatusCode::FORBIDDEN);
    // A personal reply is the agent's own; the API key has none.
    let (status, v) =
        add(&server, &li, json!({"title": "问候", "text": "亲，在的～ 我是小李 😊", "personal": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["personal"], true);
    let greeting = v["id"].as_i64().unwrap();
    let (status, v) = server.post("/v1/canned", json!({"title": "x", "text": "y", "personal": true})).await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);

    // Bad input: blank or overlong titles, empty text, unknown fields, not JSON.
    for bad in [
        json!({"title": "  ", "text": "有货", "personal": true}),
        json!({"title": "长".repeat(41), "text": "有货", "personal": true}),
        json!({"title": "有货", "text": " \u{3000} ", "personal": true}),
    ] {
        let (status, v) = add(&server, &li, bad).await;
        assert_error(status, &v, StatusCode::BAD_REQUEST);
    }
    let (status, v) = add(&server, &li, json!({"title": "a", "text": "b", "owner": 3})).await;
    assert_error(status, &v, StatusCode::UNPROCESSABLE_ENTITY);

    // Each sees the store's replies first, then their own; never another agent's.
    assert_eq!(titles(&server, &li, "").await, ["發貨時間", "退货地址", "问候"]);
    assert_eq!(titles(&server, &wang, "").await, ["發貨時間", "退货地址"]);
    // Search folds traditional and full-width characters: 发货 finds 發貨時間,
    // ４８ its text, 退貨 退货地址; 亲 finds li's own reply, for li only.
    assert_eq!(titles(&server, &wang, "发货").await, ["發貨時間"]);
    assert_eq!(titles(&server, &wang, "４８").await, ["發貨時間"]);
    assert_eq!(titles(&server, &wang, "退貨").await, ["退货地址"]);
    assert_eq!(titles(&server, &li, "亲").await, ["问候"]);
    assert!(titles(&server, &wang, "亲").await.is_empty());

    // Deleting: another agent's personal reply is not found, a store-wide one
    // is admins' business, an unknown id is not found.
    let del = |token: String, id: i64| {
        let server = &server;
        async move { server.call(Method::DELETE, &format!("/v1/canned/{id}"), Some(&token), None).await }
    };
    let (status, v) = del(wang.clone(), greeting).await;
    assert_error(status, &v, StatusCode::NOT_FOUND);
    let (status, v) = del(li.clone(), address).await;
    assert_error(status, &v, StatusCode::FORBIDDEN);
    let (status, v) = del(boss.clone(), 999_999).await;
    assert_error(status, &v, StatusCode::NOT_FOUND);
    let (status, v) = del(li.clone(), greeting).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    let (status, v) = del(boss.clone(), address).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(titles(&server, &li, "").await, ["發貨時間"]);

    // Shoppers have no business here.
    let (status, v) = server.call(Method::GET, "/v1/canned", None, None).await;
    assert_error(status, &v, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_drafts_sent_three_times_are_suggested_until_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |c| c.server.rate_burst = 1000).await;
    server.create_agent("li", "小李", "agent").await;
    let li = server.login("li").await;
    let apology = "非常抱歉给您带来不便，已为您登记补发 (顺丰)，请留意物流信息。";
    let suggestions = || async {
        let (status, v) = server.call(Method::GET, "/v1/canned/suggestions", Some(&li), None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v.as_array().unwrap().clone()
    };

    for (i, complaint) in ["我要投诉，发错货了", "投诉！少发了一件", "我要投诉 快递把盒子压坏了"].iter().enumerate()
    {
        let a = server.ask(json!({"text": complaint})).await;
        assert_eq!(a["action"], "handoff", "{a}");
        let id = a["conversation_id"].as_str().unwrap();
        let path = format!("/v1/conversations/{id}/suggestions");
        let (status, drafts) = server.call(Method::POST, &path, Some(&li), Some(json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{drafts}");
        let draft = drafts[0]["id"].as_str().unwrap();
        // The same text each time, spaced differently the last time.
        let text = if i == 2 { format!("{}\n", apology.replace(' ', "   ")) } else { apology.to_string() };
        let body = json!({"verdict": "edited", "text": text});
        let (status, v) =
            server.call(Method::POST, &format!("/v1/suggestions/{draft}/feedback"), Some(&li), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if i < 2 {
            assert!(suggestions().await.is_empty(), "suggested after {} sends", i + 1);
        }
    }
    let list = suggestions().await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["sent"], 3);
    assert!(list[0]["text"].as_str().unwrap().contains("已为您登记补发"), "{list:?}");

    // Adopted as the agent's own reply, it is suggested no more.
    let body = json!({"title": "补发致歉", "text": list[0]["text"], "personal": true});
    let (status, v) = add(&server, &li, body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(suggestions().await.is_empty());
}
