//! Agent accounts and conversation ownership over real HTTP (issue #14,
//! items 1–2): logins with argon2 hashes, sessions that end (logout,
//! expiry, disabling), role checks on every admin route, messages signed
//! with the agent's name, one owner per conversation (take, 409, transfer,
//! back to the queue), and two agents racing for one shopper.

mod common;

use common::{KEY, assert_error, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_sessions_and_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db.sqlite3");
    let server = start(&db, |c| c.server.rate_burst = 1000).await;

    let li = server.create_agent("li", "小李", "agent").await;
    server.create_agent("boss", "老板", "admin").await;
    assert!(li.get("password_hash").is_none() && li.get("password").is_none(), "{li}");
    // Bad accounts are refused clearly; a taken login is a conflict.
    for (body, want) in [
        (json!({"login": "li", "display_name": "又一个", "role": "agent", "password": "long-enough"}), 409),
        (json!({"login": "Li Ming", "display_name": "x", "role": "agent", "password": "long-enough"}), 400),
        (json!({"login": "zhao", "display_name": "  ", "role": "agent", "password": "long-enough"}), 400),
        (json!({"login": "zhao", "display_name": "小赵", "role": "agent", "password": "short"}), 400),
        (json!({"login": "zhao", "display_name": "小赵", "role": "owner", "password": "long-enough"}), 422),
    ] {
        let (status, v) = server.call(Method::POST, "/v1/agents", Some(KEY), Some(body)).await;
        assert_error(status, &v, StatusCode::from_u16(want).unwrap());
    }

    // Wrong password and unknown login: the same 401.
    let wrong = json!({"login": "li", "password": "li-secret-2"});
    let (status, a) = server.call(Method::POST, "/v1/auth/login", None, Some(wrong)).await;
    assert_error(status, &a, StatusCode::UNAUTHORIZED);
    let unknown = json!({"login": "nobody", "password": "li-secret-1"});
    let (status, b) = server.call(Method::POST, "/v1/auth/login", None, Some(unknown)).await;
    assert_error(status, &b, StatusCode::UNAUTHORIZED);
    assert_eq!(a["message"], b["message"]);

    let token = server.login("li").await;
    let (status, me) = server.call(Method::GET, "/v1/auth/me", Some(&token), None).await;
    assert_eq!(
        (status, me["display_name"].as_str(), me["role"].as_str()),
        (StatusCode::OK, Some("小李"), Some("agent"))
    );
    // An agent works the queue …
    let (status, _) = server.call(Method::GET, "/v1/handoffs", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    // … but every admin route refuses them (403), and refuses no credential (401).
    let admin_routes = [
        (
            Method::POST,
            "/v1/agents",
            json!({"login": "zhao", "display_name": "小赵", "role": "admin", "password": "long-enough"}),
        ),
        (Method::PATCH, "/v1/agents/1", json!({"role": "admin"})),
        (Method::PUT, "/v1/kb/faqs/new-one", json!({"question": "问", "answer": "答"})),
        (Method::DELETE, "/v1/kb/faqs/return-7day", Value::Null),
        (Method::POST, "/v1/kb/faqs/return-7day/similar", json!({"text": "能退吗"})),
        (Method::POST, "/v1/kb/reload", Value::Null),
        (Method::POST, "/v1/kb/gaps/mine", Value::Null),
        (Method::GET, "/v1/kb/proposals", Value::Null),
        (Method::POST, "/v1/kb/proposals/1/approve", json!({})),
        (Method::POST, "/v1/kb/proposals/1/dismiss", Value::Null),
        (Method::POST, "/v1/kb/import", json!({})),
        (Method::POST, "/v1/kb/faqs/return-7day/preview", json!({"entry": {}, "question": "能退吗"})),
        (Method::GET, "/v1/conversations/export", Value::Null),
    ];
    for (method, path, body) in &admin_routes {
        let body = Some(body.clone()).filter(|b| !b.is_null());
        let (status, v) = server.call(method.clone(), path, Some(&token), body.clone()).await;
        assert_error(status, &v, StatusCode::FORBIDDEN);
        assert_eq!(v["code"], "forbidden", "{method} {path}");
        let (status, v) = server.call(method.clone(), path, None, body).await;
        assert_error(status, &v, StatusCode::UNAUTHORIZED);
    }
    // An admin account passes the role check.
    let boss = server.login("boss").await;
    let (status, v) = server.call(Method::GET, "/v1/kb/proposals", Some(&boss), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = server
        .call(Method::PATCH, &format!("/v1/agents/{}", li["id"]), Some(&boss), Some(json!({"display_name": "李明"})))
        .await;
    assert_eq!((status, v["display_name"].as_str()), (StatusCode::OK, Some("李明")), "{v}");

    // Logout ends the session.
    let (status, _) = server.call(Method::POST, "/v1/auth/logout", Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = server.call(Method::GET, "/v1/handoffs", Some(&token), None).await;
    assert_error(status, &v, StatusCode::UNAUTHORIZED);

    // An expired session is refused: one whose end has passed, as the
    // server would have stored it (only the token's SHA-256 is kept).
    let expired = "0123456789abcdef0123456789abcdef";
    let digest = hex::encode(Sha256::digest(expired.as_bytes()));
    let now = chrono::Utc::now().timestamp();
    server.services.store.create_session(&digest, li["id"].as_i64().unwrap(), now - 1).unwrap();
    let (status, v) = server.call(Method::GET, "/v1/handoffs", Some(expired), None).await;
    assert_error(status, &v, StatusCode::UNAUTHORIZED);

    // Disabling an agent ends their sessions at once.
    let token = server.login("li").await;
    let (status, _) = server
        .call(Method::PATCH, &format!("/v1/agents/{}", li["id"]), Some(KEY), Some(json!({"disabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = server.call(Method::GET, "/v1/handoffs", Some(&token), None).await;
    assert_error(status, &v, StatusCode::UNAUTHORIZED);
    let again = json!({"login": "li", "password": "li-secret-1"});
    let (status, v) = server.call(Method::POST, "/v1/auth/login", None, Some(again)).await;
    assert_error(status, &v, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_owns_a_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |c| c.server.rate_burst = 1000).await;
    server.create_agent("li", "小李", "agent").await;
    let wang_agent = server.create_agent("wang", "小王", "agent").await;
    let (li, wang) = (server.login("li").await, server.login("wang").await);

    let v = server.ask(json!({"text": "收到的面霜瓶子碎了，转人工"})).await;
    assert_eq!(v["action"], "handoff", "{v}");
    let id = v["conversation_id"].as_str().unwrap().to_string();
    let path = |action: &str| format!("/v1/conversations/{id}/{action}");
    let queue = |token: String| {
        let server = &server;
        async move { server.call(Method::GET, "/v1/handoffs", Some(&token), None).await.1 }
    };
    // Both agents see the waiting shopper, unowned.
    for token in [&li, &wang] {
        let q = queue(token.clone()).await;
        assert_eq!((q[0]["conversation_id"].as_str(), &q[0]["owner_id"]), (Some(id.as_str()), &Value::Null), "{q}");
    }

    // 小李 takes it; 小王 can no longer take, answer or close it.
    let (status, c) = server.call(Method::POST, &path("take"), Some(&li), None).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(queue(wang.clone()).await[0]["owner_name"], "小李");
    for (action, body) in [("take", None), ("messages", Some(json!({"text": "我来"}))), ("close", None)] {
        let (status, v) = server.call(Method::POST, &path(action), Some(&wang), body).await;
        assert_error(status, &v, StatusCode::CONFLICT);
        assert!(v["message"].as_str().unwrap().contains("小李"), "{v}");
    }
    // 小李's reply carries their name, and the shopper reads it.
    let (status, m) =
        server.call(Method::POST, &path("messages"), Some(&li), Some(json!({"text": "您好，我是小李"}))).await;
    assert_eq!((status, m["author"].as_str()), (StatusCode::OK, Some("小李")), "{m}");
    let r = server.http.get(format!("{}/v1/conversations/{id}/transcript", server.url)).send().await.unwrap();
    let t: Value = r.json().await.unwrap();
    let last = t["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["role"].as_str(), last["author"].as_str()), (Some("agent"), Some("小李")), "{t}");

    // Transfer to 小王: now only they answer.
    let to_wang = json!({"agent_id": wang_agent["id"]});
    let (status, c) = server.call(Method::POST, &path("transfer"), Some(&li), Some(to_wang.clone())).await;
    assert_eq!((status, &c["owner_id"]), (StatusCode::OK, &wang_agent["id"]), "{c}");
    let (status, v) = server.call(Method::POST, &path("messages"), Some(&li), Some(json!({"text": "还在吗"}))).await;
    assert_error(status, &v, StatusCode::CONFLICT);
    let (status, _) =
        server.call(Method::POST, &path("messages"), Some(&wang), Some(json!({"text": "我是小王"}))).await;
    assert_eq!(status, StatusCode::OK);
    // Transfers to nobody real are refused; the owner returns it to the queue.
    let (status, v) = server.call(Method::POST, &path("transfer"), Some(&wang), Some(json!({"agent_id": 999}))).await;
    assert_error(status, &v, StatusCode::NOT_FOUND);
    let (status, c) = server.call(Method::POST, &path("transfer"), Some(&wang), Some(json!({"agent_id": null}))).await;
    assert_eq!((status, &c["owner_id"]), (StatusCode::OK, &Value::Null), "{c}");
    // Answering an unowned conversation takes it.
    let (status, _) =
        server.call(Method::POST, &path("messages"), Some(&li), Some(json!({"text": "我接着处理"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue(wang.clone()).await[0]["owner_name"], "小李");
    let (status, _) = server.call(Method::POST, &path("close"), Some(&li), None).await;
    assert_eq!(status, StatusCode::OK);

    // Two agents take the same new shopper at once: exactly one wins.
    let v = server.ask(json!({"text": "我要投诉，找你们人工"})).await;
    let id = v["conversation_id"].as_str().unwrap().to_string();
    let take = format!("/v1/conversations/{id}/take");
    let (a, b) = tokio::join!(
        server.call(Method::POST, &take, Some(&li), None),
        server.call(Method::POST, &take, Some(&wang), None)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{a:?} {b:?}");
    // The API key (automation) cannot take one: it has no name to answer with.
    let v = server.ask(json!({"text": "转人工"})).await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/conversations/{}/take", v["conversation_id"].as_str().unwrap()),
            Some(KEY),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
}

/// Automatic assignment: each handoff goes at once to the least-loaded
/// present agent, up to `max_conversations` each; the rest wait in the queue
/// until an agent has room or comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_assignment_follows_load_presence_and_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), |c| {
        c.server.rate_burst = 1000;
        c.service.auto_assign = true;
        c.service.max_conversations = 2;
    })
    .await;
    let li_id = server.create_agent("li", "小李", "agent").await["id"].as_i64().unwrap();
    let wang_id = server.create_agent("wang", "小王", "agent").await["id"].as_i64().unwrap();
    let (li, wang) = (server.login("li").await, server.login("wang").await);
    let server = &server;
    let console = |token: String, name: &'static str| {
        let url = format!("{}/v1/agent/events?console={name}", server.url);
        let http = server.http.clone();
        async move {
            let stream = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(stream.status(), StatusCode::OK);
            stream
        }
    };
    let handoff = |text: &'static str| async move {
        let a = server.ask(json!({"text": text})).await;
        assert_eq!(a["action"], "handoff", "{a}");
        a["conversation_id"].as_str().unwrap().to_string()
    };
    // The owner of a conversation, waiting up to 10 s for one (a console
    // connecting assigns in the background).
    let owner = |id: String, want: Option<i64>| async move {
        for _ in 0..100 {
            let (_, t) = server.get(&format!("/v1/conversations/{id}")).await;
            if t["conversation"]["owner_id"].as_i64() == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (_, t) = server.get(&format!("/v1/conversations/{id}")).await;
        panic!("{id}: owner {} instead of {want:?}", t["conversation"]["owner_id"]);
    };

    // Nobody present: the handoff waits in the queue.
    let a = handoff("转人工").await;
    owner(a.clone(), None).await;
    // 小李 connects and gets it; the API key's own console is no agent.
    let _key_console = console(KEY.to_string(), "key-desk").await;
    let _li_console = console(li.clone(), "li-desk").await;
    owner(a.clone(), Some(li_id)).await;
    let b = handoff("我要投诉，快递盒子压坏了").await;
    owner(b.clone(), Some(li_id)).await;
    // 小李 has 2, the limit: the next one waits, until 小王 arrives.
    let c = handoff("找人工客服").await;
    owner(c.clone(), None).await;
    let _wang_console = console(wang.clone(), "wang-desk").await;
    owner(c.clone(), Some(wang_id)).await;

    // 小李 closes one: the next handoff goes to the least loaded (1 each: the lower id).
    let (status, v) = server.call(Method::POST, &format!("/v1/conversations/{a}/close"), Some(&li), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let d = handoff("人工客服！！").await;
    owner(d.clone(), Some(li_id)).await;
    let e = handoff("转人工 退款一直不到账").await;
    owner(e.clone(), Some(wang_id)).await;

    // Both full: it waits; 小王 sets himself away and hands one back to the
    // queue: it stays there (小李 is full, 小王 away).
    let f = handoff("我要人工服务").await;
    owner(f.clone(), None).await;
    let (status, v) = server.post("/v1/agent/presence", json!({"console": "wang-desk", "away": true})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = server
        .call(Method::POST, &format!("/v1/conversations/{c}/transfer"), Some(&wang), Some(json!({"agent_id": null})))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    owner(c.clone(), None).await;
    let (status, v) = server.post("/v1/agent/presence", json!({"console": "wang-desk", "away": false})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Back with room for one: not the one he handed back (c waits for
    // someone else), but the next waiting, f.
    owner(f.clone(), Some(wang_id)).await;
    owner(c.clone(), None).await;
    let (_, queue) = server.get("/v1/handoffs").await;
    let waiting: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["owner_id"].is_null())
        .map(|t| t["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(waiting, [c.as_str()]);

    // Being given a conversation is no transfer in the desk's figures: only
    // 小王's hand-back is.
    let (_, stats) = server.get("/v1/stats").await;
    assert_eq!(stats["desk"]["handoffs"], 6, "{}", stats["desk"]);
    let transfer_rate = stats["desk"]["transfer_rate"].as_f64().unwrap();
    assert!((transfer_rate - 1.0 / 6.0).abs() < 1e-9, "{}", stats["desk"]);
}
