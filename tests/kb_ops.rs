//! Knowledge operations over real HTTP: live edits without restart, reloads
//! under concurrent traffic, CSV imports with located problems.

mod common;

use std::sync::Arc;

use common::{assert_error, private_data, raw_connection, start};
use reqwest::StatusCode;
use serde_json::json;

fn csv_body(rows: &[&str]) -> Vec<u8> {
    let mut text = String::from("问题,相似问法,答案,分类,商品,生效时间,失效时间\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    text.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_edits_are_live_at_once_and_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db.sqlite3");
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let d = data.clone();
    let server = start(&db, move |c| c.data_dir = d).await;
    let question = "发票抬头可以写公司名称吗？";
    let before = server.ask(json!({"text": question})).await;
    assert_ne!(before["faq_id"], "invoice-title");

    let entry = json!({
        "question": question,
        "similar": ["能开公司抬头吗", "发票抬头写单位可以吗", "抬头能不能写公司"],
        "answer": {"zh": "跨境商品不能开具国内增值税发票，订单凭证上的抬头为订购人姓名，不能改为公司名称。", "en": "Cross-border orders carry no VAT invoice; the order certificate is in the buyer's name."},
        "category": "发票",
    });
    let (status, summary) = server
        .http
        .put(format!("{}/v1/kb/faqs/invoice-title", server.url))
        .bearer_auth(common::KEY)
        .json(&entry)
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let summary: serde_json::Value = summary.json().await.unwrap();
    assert_eq!(summary["faqs"], 211);
    let after = server.ask(json!({"text": question})).await;
    assert_eq!(after["faq_id"], "invoice-title", "{after}");
    // The edit answered before its knowledge base's verifier was fitted; the
    // fit follows in the background and is swapped in.
    server.refitted().await;

    // A similar question added by an operator (an admin account) matches too.
    let boss_id = server.create_agent("boss", "老板", "admin").await["id"].as_i64().unwrap();
    let boss = server.login("boss").await;
    let similar = json!({"text": "公司报销要写单位抬头"});
    let path = "/v1/kb/faqs/invoice-title/similar";
    let (status, _) = server.call(reqwest::Method::POST, path, Some(&boss), Some(similar)).await;
    assert_eq!(status, StatusCode::OK);
    // Each edit records who made it: the API key is no one, the admin is named.
    let signed: Vec<Option<i64>> = raw_connection(&db)
        .query_map("SELECT agent_id FROM kb_edits ORDER BY seq", (), |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(signed, [None, Some(boss_id)]);
    let (_, shown) = server.get("/v1/kb/faqs/invoice-title").await;
    assert!(shown["similar"].as_array().unwrap().iter().any(|s| s == "公司报销要写单位抬头"));

    // Invalid edits are refused and change nothing.
    let bad = json!({"question": "", "answer": {"en": "x"}, "products": ["p-404"]});
    let r = server
        .http
        .put(format!("{}/v1/kb/faqs/broken", server.url))
        .bearer_auth(common::KEY)
        .json(&bad)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("p-404"), "{body}");
    let r = server
        .http
        .delete(format!("{}/v1/kb/faqs/no-such-faq", server.url))
        .bearer_auth(common::KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = server.http.put(format!("{}/v1/kb/faqs/x", server.url)).json(&entry).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Delete an entry from the files: it stops answering.
    let r = server
        .http
        .delete(format!("{}/v1/kb/faqs/ship-free", server.url))
        .bearer_auth(common::KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(server.ask(json!({"text": "包邮吗？"})).await["faq_id"], "ship-free");

    // Restart on the same database: the edits are still there.
    server.handle.abort();
    let d = data.clone();
    let server = start(&db, move |c| c.data_dir = d).await;
    assert_eq!(server.ask(json!({"text": question})).await["faq_id"], "invoice-title");
    let (status, _) = server.get("/v1/kb/faqs/ship-free").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_during_reloads_all_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let server = Arc::new(
        start(&tmp.path().join("db.sqlite3"), move |c| {
            c.data_dir = data;
            c.server.rate_burst = 10_000;
        })
        .await,
    );
    let reloader = {
        let server = server.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                let (status, v) = server.post("/v1/kb/reload", json!({})).await;
                assert_eq!(status, StatusCode::OK, "{v}");
            }
        })
    };
    let mut queries = Vec::new();
    for i in 0..60 {
        let server = server.clone();
        queries.push(tokio::spawn(async move {
            let q = ["七天无理由退货怎么申请？", "发什么快递", "跨境商品要交税吗"][i % 3];
            let (status, v) = server.post("/v1/answer", json!({"text": q})).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            v["action"].as_str().unwrap().to_string()
        }));
    }
    for q in queries {
        q.await.unwrap();
    }
    reloader.await.unwrap();
    assert_eq!(server.ask(json!({"text": "七天无理由退货怎么申请？"})).await["faq_id"], "return-7day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_import_reports_bad_rows_and_imports_nothing_partial_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), move |c| c.data_dir = data).await;
    let body = csv_body(&[
        "雪花秀滋阴水是正品吗,雪花秀是真的吗|雪花秀正品吗,本店雪花秀均为韩国官方渠道直采，假一赔十。,正品保障,,,",
        "\"安热沙可以带上飞机吗\",\"安热沙能托运吗\n防晒霜能带上飞机吗\",60ml可以随身携带，符合民航液体规定。,商品知识,p-anessa-sunscreen,2026-01-01,",
        "不存在的商品怎么用,,请咨询客服,商品知识,p-does-not-exist,,",
        ",没有问题的行,有答案,其他,,,",
        "活动时间,,双旦活动,优惠活动,,2026-12-31,2026-12-01",
    ]);
    let import = |query: &'static str, body: Vec<u8>| {
        let http = server.http.clone();
        let url = format!("{}/v1/kb/import{query}", server.url);
        async move {
            let r = http
                .post(url)
                .bearer_auth(common::KEY)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    // Bad rows block the import: every problem listed by row, nothing written.
    let (status, out) = import("", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["imported"], 0);
    let problems: Vec<(u64, String)> = out["report"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_str().unwrap().to_string()))
        .collect();
    assert!(problems.iter().any(|(row, m)| *row == 4 && m.contains("p-does-not-exist")), "{problems:?}");
    assert!(problems.iter().any(|(row, m)| *row == 5 && m.contains("question")), "{problems:?}");
    assert!(problems.iter().any(|(row, m)| *row == 6 && m.contains("valid_until")), "{problems:?}");
    assert_eq!(out["report"]["entries"].as_array().unwrap().len(), 2);
    let not_yet = server.ask(json!({"text": "雪花秀滋阴水是正品吗"})).await;
    assert!(!not_yet["faq_id"].as_str().unwrap_or("").starts_with("csv-"), "{not_yet}");
    let (status, _) = server.get("/v1/kb/faqs/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Dry run with partial: a report, still nothing written.
    let (_, dry) = import("?dry_run=true&partial=true", body.clone()).await;
    assert_eq!(dry["imported"], 0);

    // Asked for a partial import: the two good rows go live.
    let (_, partial) = import("?partial=true", body).await;
    assert_eq!(partial["imported"], 2, "{partial}");
    let a = server.ask(json!({"text": "安热沙能不能带上飞机"})).await;
    let id = a["faq_id"].as_str().or(a["choices"][0]["faq_id"].as_str()).unwrap().to_string();
    assert!(id.starts_with("csv-"), "{a}");
    let (_, shown) = server.get(&format!("/v1/kb/faqs/{id}")).await;
    assert_eq!(shown["similar"].as_array().unwrap().len(), 2, "newline-separated phrasings split: {shown}");
    assert_eq!(shown["products"][0], "p-anessa-sunscreen");

    // GBK spreadsheets (Excel's default in China) are read too.
    let (gbk, _, _) =
        encoding_rs::GBK.encode("问题,答案\n跨境商品可以开专票吗,不可以，跨境商品不能开具增值税专用发票。\n");
    let (_, out) = import("?dry_run=true", gbk.into_owned()).await;
    assert_eq!(out["report"]["encoding"], "GBK");
    assert_eq!(out["report"]["problems"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(out["report"]["entries"][0]["entry"]["question"], "跨境商品可以开专票吗");
}

/// The operator page's tools: how a question would rank with an entry as
/// edited (nothing saved, no file written), and conversations exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_ranks_an_unsaved_edit_and_export_writes_every_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let d = data.clone();
    let server = start(&tmp.path().join("db.sqlite3"), move |c| {
        c.data_dir = d;
        c.server.rate_burst = 1000;
    })
    .await;
    let vectors_before = std::fs::read(data.join("vectors.bin")).unwrap();
    let files_before = std::fs::read_dir(&data).unwrap().count();

    let preview = |entry: serde_json::Value, question: &'static str| {
        let server = &server;
        async move {
            let body = json!({"entry": entry, "question": question});
            let started = std::time::Instant::now();
            let r = server.post("/v1/kb/faqs/gift-wrap/preview", body).await;
            eprintln!("preview took {:?}", started.elapsed());
            r
        }
    };
    let gift = |similar: Vec<&str>| {
        json!({"question": "可以提供礼品包装吗？", "similar": similar,
               "answer": {"zh": "可以，下单时备注“礼品包装”，免费提供礼盒和贺卡。"}, "category": "服务"})
    };
    // Without a phrasing for it, 「能包成礼物送人吗」 is not this entry's yet …
    let (status, without) = preview(gift(vec![]), "送朋友的 能包成礼物送人吗").await;
    assert_eq!(status, StatusCode::OK, "{without}");
    // … with one, it ranks first, and the bot would answer it with this entry.
    let (status, with) = preview(gift(vec!["能包成礼物送人吗", "有礼盒吗"]), "送朋友的 能包成礼物送人吗").await;
    assert_eq!(status, StatusCode::OK, "{with}");
    assert_eq!(with["rank"], 1, "{with}");
    assert_eq!(with["candidates"][0]["faq_id"], "gift-wrap");
    assert!(with["candidates"].as_array().unwrap().len() <= 5);
    assert!(
        without["rank"] != 1 || without["confidence"].as_f64() < with["confidence"].as_f64(),
        "{without} vs {with}"
    );
    // An unrelated question keeps its own entry first.
    let (_, other) = preview(gift(vec!["能包成礼物送人吗"]), "七天无理由退货怎么申请？").await;
    assert_ne!(other["candidates"][0]["faq_id"], "gift-wrap", "{other}");
    assert_eq!(other["action"], "answer", "{other}");

    // Nothing was saved, and no file in the data directory changed.
    let (status, v) = server.get("/v1/kb/faqs/gift-wrap").await;
    assert_error(status, &v, StatusCode::NOT_FOUND);
    assert_eq!(std::fs::read(data.join("vectors.bin")).unwrap(), vectors_before);
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), files_before);
    // Bad input: an entry without a Chinese answer, an empty question.
    let (status, v) = preview(json!({"question": "礼品包装？", "answer": {"en": "Yes"}}), "礼品包装").await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);
    let (status, v) = preview(gift(vec![]), " \u{3000}").await;
    assert_error(status, &v, StatusCode::BAD_REQUEST);

    // Two conversations: one answered, one handed off and answered by an agent.
    let answered = server.ask(json!({"text": "七天无理由退货怎么申请？"})).await;
    assert_eq!(answered["action"], "answer", "{answered}");
    let handed = server.ask(json!({"text": "转人工，面霜漏液了 😭"})).await;
    let conv = handed["conversation_id"].as_str().unwrap();
    let (status, v) = server
        .post(&format!("/v1/conversations/{conv}/messages"), json!({"text": "您好，麻烦拍张照片，\"马上\"为您补发"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A shopper's text a spreadsheet would run as a formula.
    let formula = "=HYPERLINK(\"http://example.com\",\"退款\")";
    server.ask(json!({"text": formula})).await;

    let export = |query: &str| {
        let request =
            server.http.get(format!("{}/v1/conversations/export?{query}", server.url)).bearer_auth(common::KEY);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            (status, content_type, r.bytes().await.unwrap().to_vec())
        }
    };
    let (status, content_type, csv_bytes) = export("format=csv").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/csv; charset=utf-8"));
    assert!(csv_bytes.starts_with(b"\xEF\xBB\xBF"), "a byte-order mark for spreadsheets");
    let mut reader = csv::Reader::from_reader(&csv_bytes[3..]);
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let column = |row: &csv::StringRecord, name: &str| row[header.iter().position(|h| h == name).unwrap()].to_string();
    // shopper + bot, shopper + bot, agent, shopper + bot.
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert!(rows.iter().any(|r| column(r, "text") == format!("'{formula}")), "quoted for spreadsheets: {rows:?}");
    let agent_row = rows.iter().find(|r| column(r, "role") == "agent").unwrap();
    assert_eq!(column(agent_row, "text"), "您好，麻烦拍张照片，\"马上\"为您补发");
    assert_eq!(column(agent_row, "conversation_id"), conv);
    let asked = rows.iter().find(|r| column(r, "text") == "七天无理由退货怎么申请？").unwrap();
    assert_eq!(column(asked, "action"), "answer");
    assert_eq!(column(asked, "faq_id"), answered["faq_id"].as_str().unwrap());
    assert!(rows.iter().any(|r| column(r, "text").contains('😭') && column(r, "reason") == "human_requested"));

    let (status, content_type, jsonl) = export("format=jsonl").await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("application/x-ndjson")));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7);
    assert!(lines.iter().any(|l| l["text"] == formula), "JSON keeps the text as it was");
    assert!(lines.iter().all(|l| l["time"].as_str().is_some_and(|t| t.ends_with("+00:00"))), "{lines:?}");

    // A window before these conversations is empty; a reversed one or an
    // unknown format or a window over 92 days is refused.
    let (status, _, empty) = export("format=jsonl&from=0&to=1000").await;
    assert_eq!((status, empty.len()), (StatusCode::OK, 0));
    for bad in ["from=100&to=50", "format=xml", "from=0&to=99999999"] {
        let (status, _, body) = export(bad).await;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
}

/// Issue #12: the knowledge base's verifier names the entries that answer
/// each other's phrasings (what keeps its threshold high), and an operator
/// who removes the overlap sees the confusion go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_name_entries_that_answer_each_others_phrasings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tokio::task::spawn_blocking(private_data).await.unwrap();
    let server = start(&tmp.path().join("db.sqlite3"), move |c| c.data_dir = data).await;
    let put = |entry: serde_json::Value| {
        server.call(reqwest::Method::PUT, "/v1/kb/faqs/return-postage", Some(common::KEY), Some(entry))
    };
    let refitted = || async {
        server.refitted().await;
        server.calibration("chinese").await
    };
    let twins = |c: &serde_json::Value| {
        let pair = [c["faq_id"].as_str().unwrap(), c["answered_by"].as_str().unwrap()];
        pair == ["return-shipping-fee", "return-postage"] || pair == ["return-postage", "return-shipping-fee"]
    };

    // A second entry for who pays return postage, asked the same ways.
    let twin = json!({
        "question": "退货的邮费由谁出？",
        "similar": ["退货运费谁承担", "退回去要我付邮费吗", "退货邮费怎么算", "退货要自己出运费吗"],
        "answer": {"zh": "七天无理由退货的运费由买家承担，质量问题由本店承担。"},
        "category": "退换货",
    });
    assert_eq!(put(twin).await.0, StatusCode::OK);
    let with_twin = refitted().await;
    let confusions = with_twin["confusions"].as_array().unwrap();
    assert!(!confusions.is_empty() && confusions.len() <= 20, "{with_twin}");
    assert!(twins(&confusions[0]), "the twins are the surest confusion: {with_twin}");
    let confidences: Vec<f64> = confusions.iter().map(|c| c["confidence"].as_f64().unwrap()).collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "surest first: {confidences:?}");

    // Reworded to ask something else, the twin no longer steals them, and
    // the threshold it held up comes down.
    let distinct = json!({
        "question": "退货寄回用哪家快递？",
        "similar": ["退货能用顺丰寄吗", "退货可以发到付吗", "退货寄什么快递"],
        "answer": {"zh": "退货可自选快递寄回，请勿使用到付，也不要寄平邮。"},
        "category": "退换货",
    });
    assert_eq!(put(distinct).await.0, StatusCode::OK);
    let reworded = refitted().await;
    assert!(!reworded["confusions"].as_array().unwrap().iter().any(twins), "{reworded}");
    let threshold = |g: &serde_json::Value| g["answer_threshold"].as_f64().unwrap();
    assert!(threshold(&reworded) < threshold(&with_twin), "{with_twin}\n{reworded}");
}
