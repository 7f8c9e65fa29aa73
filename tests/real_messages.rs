//! Real shopper messages over real HTTP against the sample store (issue
//! #12): a product-page question ("这个…") is answered from the product's
//! entries, an English question is answered in English (another gets the
//! right entry among its choices), a message with a pasted order card and a greeting is answered
//! from its question, the shopper's own order goes to a human as
//! `order_lookup`, and words that only look like anger or a request for a
//! human do not hand off. `stats` shows the knowledge base's own thresholds.

mod common;

use common::start;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_messages_are_read_for_their_question() {
    let tmp = tempfile::tempdir().unwrap();
    // More messages than one shopper's burst allowance.
    let server = start(&tmp.path().join("db.sqlite3"), |c| c.server.rate_burst = 1000).await;

    // On the 神仙水 page, "这个" is 神仙水.
    let v = server.ask(json!({"text": "亲 在吗 这个孕妇可以用吗", "product_id": "p-skii-essence"})).await;
    assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some("p-skii-essence-suits")), "{v}");
    let v = server.ask(json!({"text": "这个开封后保质期多久", "product_id": "p-lancome-serum"})).await;
    assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some("p-lancome-serum-shelf")), "{v}");
    // A store-wide question asked on a product page is still the store's.
    let v = server.ask(json!({"text": "发什么快递？", "product_id": "p-skii-essence"})).await;
    assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some("ship-courier")), "{v}");

    // A pasted order card and a greeting do not hide the question, and the
    // card's order number does not make it an order lookup.
    let v =
        server.ask(json!({"text": "订单编号：202611110001 商品名称：兰蔻小黑瓶 您好，请问退货的运费谁来出？"})).await;
    assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some("return-shipping-fee")), "{v}");
    let v = server.ask(json!({"text": "咨询订单号:[订单x] 商品ID:[数字x] 你好 收到的商品破损了怎么办"})).await;
    assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some("after-damaged")), "{v}");

    // English, asked of the Chinese store: answered in English where the
    // verifier for other scripts is sure (it weighs how well the entry's
    // English answer fits), else the right entry is among the choices.
    for (text, id) in
        [("can I change my delivery address", "order-change-address"), ("can I cancel my order?", "order-cancel")]
    {
        let v = server.ask(json!({"text": text})).await;
        assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some(id)), "{text}: {v}");
        let answer = v["answer"].as_str().unwrap();
        assert!(!answer.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "in English: {text}: {v}");
    }
    let v = server.ask(json!({"text": "which courier do you use?"})).await;
    assert_eq!(v["action"], "clarify", "{v}");
    assert!(v["choices"].as_array().unwrap().iter().any(|c| c["faq_id"] == "ship-courier"), "{v}");

    // The shopper's own order: a human looks it up, whatever FAQ ranks first.
    for text in [
        "我的快递到哪了",
        "退款申请好几天了 钱呢",
        "帮我查下 SF1234567890",
        "where is my parcel?",
        "帮我查一下订单物流",
        "麻烦查一下我的退款进度",
        "我寄回的包裹你们收到了没",
    ] {
        let v = server.ask(json!({"text": text})).await;
        assert_eq!(
            (v["action"].as_str(), v["reason"].as_str()),
            (Some("handoff"), Some("order_lookup")),
            "{text}: {v}"
        );
    }

    // "Look it up for me" before a question about the store's rules is no
    // order lookup: the shopper asks what the knowledge base answers.
    for text in
        ["帮我查一下退货政策是怎样的", "我寄回的话运费谁出", "帮我查一下下单后多久发货", "我寄回的时候可以到付吗"]
    {
        let v = server.ask(json!({"text": text})).await;
        assert_ne!(v["reason"], "order_lookup", "{text}: {v}");
    }

    // Trigger-like words used innocently, and a question about agents.
    for (text, product) in [
        ("宝宝有病的时候能喝这个吗", Some("p-a2-formula-3")),
        ("会不会曝光我的身份证信息", None),
        ("my mom always complains about dry skin, is this ok for her", Some("p-kiehls-cream")),
    ] {
        let v = server.ask(json!({"text": text, "product_id": product})).await;
        let reason = v["reason"].as_str().unwrap();
        assert!(!["anger", "complaint", "human_requested"].contains(&reason), "{text}: {v}");
    }
    let v = server.ask(json!({"text": "人工客服什么时候在线？"})).await;
    assert_eq!((v["action"].as_str(), v["faq_id"].as_str()), (Some("answer"), Some("service-hours")), "{v}");

    // The knowledge base's own verifier and what it expects, per script.
    let chinese = server.calibration("chinese").await;
    assert_eq!(chinese["fitted"], true, "{chinese}");
    assert!(chinese["expected_precision"].as_f64().unwrap() >= 0.95 - 1e-6, "{chinese}");
    assert!(chinese["expected_coverage"].as_f64().unwrap() > 0.0, "{chinese}");
}
