//! Arbitrary request bodies against the real server (real model, real
//! SQLite): whatever arrives, the answer is a 2xx or a 4xx with a JSON
//! `{code, message}` body, never a 5xx, and the server keeps serving.
//! Bounded (a few hundred cases) so it runs in CI.

mod common;

use common::{KEY, start};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Map, Value};

/// JSON values of the shapes the API takes, and of the shapes it does not.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "包邮吗",
            "七天无理由退货怎么申请？",
            "亲在吗😊",
            "ＡＢＣ",
            "\u{200b}",
            "",
            "zh",
            "en",
            "accepted",
            "edited",
            "p-skii-essence",
            "ship-courier"
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((field(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names the routes know, and some they do not.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "text",
            "conversation_id",
            "locale",
            "product_id",
            "helpful",
            "verdict",
            "question",
            "similar",
            "answer",
            "category",
            "tags",
            "products",
            "valid_from",
            "valid_until",
            "priority",
            "faq_id",
            "entry",
            "zh",
            "en",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => any::<String>().prop_map(String::into_bytes),
    ]
}

/// (method, path, content type) of the routes that take a body.
const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/v1/answer", "application/json"),
    ("POST", "/v1/decisions/1/rating", "application/json"),
    ("POST", "/v1/suggestions/nope/feedback", "application/json"),
    ("POST", "/v1/conversations/nope/messages", "application/json"),
    ("POST", "/v1/kb/faqs/ship-courier/similar", "application/json"),
    ("PUT", "/v1/kb/faqs/prop-entry", "application/json"),
    ("POST", "/v1/kb/proposals/1/approve", "application/json"),
    ("POST", "/v1/kb/import?dry_run=true", "text/csv"),
    ("POST", "/v1/kb/import?dry_run=true", "application/x-ndjson"),
    ("POST", "/v1/answer", "text/plain"),
];

#[test]
fn arbitrary_bodies_get_json_answers_and_never_a_server_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = common::private_data();
    let server = runtime.block_on(start(&tmp.path().join("db.sqlite3"), move |c| {
        c.data_dir = data;
        c.server.rate_burst = 1_000_000;
        c.server.rate_per_second = 1_000_000;
    }));
    let mut runner = TestRunner::new(RunnerConfig { cases: 300, failure_persistence: None, ..RunnerConfig::default() });
    runner
        .run(&(0..ROUTES.len(), body()), |(route, body)| {
            let (method, path, content_type) = ROUTES[route];
            let (status, text) = runtime.block_on(async {
                let r = server
                    .http
                    .request(method.parse().unwrap(), format!("{}{path}", server.url))
                    .bearer_auth(KEY)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.text().await.unwrap())
            });
            prop_assert!(!status.is_server_error(), "{method} {path}: {status} {text}");
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{status} not JSON ({e}): {text}")))?;
            if !status.is_success() {
                prop_assert!(v["code"].is_string() && v["message"].is_string(), "{status}: {text}");
            }
            Ok(())
        })
        .unwrap();
    let ready = runtime.block_on(async { reqwest::get(format!("{}/readyz", server.url)).await.unwrap().status() });
    assert!(ready.is_success());
}
