//! `xiaoer eval --conversations` on a small labelled file against the sample
//! knowledge base: every item goes through the real answering service.

use std::path::Path;
use std::sync::Arc;

use xiaoer::config::Config;
use xiaoer::decision::{Action, Reason, ScriptGroup};
use xiaoer::embed::Embedder;
use xiaoer::eval::conversations::{ConversationEval, ItemOutcome, answered_at, load_conversation_items};
use xiaoer::kb::{KbOptions, load_dir};

const ITEMS: &str = r#"
{"query": "那运费呢", "history": ["七天无理由退货怎么申请？"], "locale": "zh", "type": "pos", "gold": ["return-shipping-fee"]}
{"query": "那运费呢", "locale": "zh", "type": "pos", "gold": ["return-shipping-fee"]}
{"query": "这个孕妇能用吗", "product_id": "p-skii-essence", "locale": "zh", "type": "pos", "gold": ["p-skii-essence-suits"]}
{"query": "这个孕妇能用吗", "type": "pos", "gold": ["p-skii-essence-suits"], "note": "same question, no product page"}
{"query": "七天无理由退货怎么申请？", "type": "pos", "gold": ["return-7day"]}
{"query": "别跟我说这些了，帮我转人工", "type": "human"}
{"query": "我要投诉你们，东西一直不发货", "type": "complaint"}
{"query": "今天天气怎么样", "type": "oos_out"}
{"query": "那神仙水呢", "history": ["小黑瓶是哪国生产的"], "type": "pos", "gold": ["p-skii-essence-origin"]}
{"query": "孕妇能用吗", "history": ["雅诗兰黛小棕瓶一次用几滴"], "type": "pos", "gold": ["p-esteelauder-anr-suits"]}
"#;

#[test]
fn labelled_chats_run_through_the_answering_service() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("items.jsonl");
    std::fs::write(&file, ITEMS).unwrap();
    let items = load_conversation_items(&file).unwrap();
    assert_eq!(items.len(), 10);

    let config = Config { data_dir: tmp.path().join("unused"), ..Config::default() };
    let model = Arc::new(Embedder::load(&config.model_dir, 256).expect("`make models` first"));
    let eval = ConversationEval::open(config.clone(), Some(model), &|_, _| {}).unwrap();
    let ticks = std::sync::atomic::AtomicUsize::new(0);
    let r = eval
        .run(&items, || {
            ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
    let o: &[ItemOutcome] = &r.outcomes;
    assert_eq!(ticks.into_inner(), 10);
    assert_eq!((r.items, r.turns, r.faqs), (10, 13, 210), "the history messages are sent too");

    // Types in the report's order, with their item counts; every item has an action.
    let kinds: Vec<(&str, usize)> = r.by_type.iter().map(|t| (t.kind.as_str(), t.items)).collect();
    assert_eq!(kinds, [("pos", 7), ("human", 1), ("complaint", 1), ("oos_out", 1)]);
    for t in &r.by_type {
        assert_eq!(t.answered + t.clarified + t.handed_off, t.items, "{t:?}");
        assert_eq!(t.errors, 0);
        assert_eq!(t.handoff_reasons.values().sum::<usize>(), t.handed_off, "{t:?}");
    }

    // The human request and the complaint go to a person, nothing else of those types is answered.
    let by = |kind: &str| r.by_type.iter().find(|t| t.kind == kind).unwrap();
    assert_eq!((o[5].action, o[5].reason), (Some(Action::Handoff), Some(Reason::HumanRequested)));
    assert_eq!((o[6].action, o[6].reason), (Some(Action::Handoff), Some(Reason::Complaint)));
    assert_eq!(by("human").handoff_reasons.get("human_requested"), Some(&1));
    assert_eq!(by("complaint").handoff_reasons.get("complaint"), Some(&1));
    for kind in ["human", "complaint", "oos_out"] {
        assert_eq!((by(kind).answered, by(kind).answered_wrong), (0, 0), "{kind}");
    }
    // Escalations are never answered, at any threshold of the curve.
    assert_eq!(answered_at(&o[6], 0.0), None, "{:?}", o[6]);

    // The KB's own question is answered right.
    assert_eq!((o[4].action, o[4].faq_id.as_deref(), o[4].correct), (Some(Action::Answer), Some("return-7day"), true));

    // The product page reaches retrieval: only store-wide entries and that
    // product's rank, its "suits" entry first; without it other products' do.
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap();
    let products = |id: &str| &kb.faqs.iter().find(|f| f.id == id).unwrap().products;
    assert_eq!(o[2].candidates.first().map(String::as_str), Some("p-skii-essence-suits"), "{:?}", o[2]);
    for c in &o[2].candidates {
        let p = products(c);
        assert!(p.is_empty() || p.contains(&"p-skii-essence".to_string()), "{c} on the p-skii-essence page");
    }
    assert!(
        o[3].candidates.iter().any(|c| !products(c).is_empty() && !products(c).contains(&"p-skii-essence".to_string())),
        "without a product page other products' entries rank: {:?}",
        o[3]
    );

    // The history message shares the conversation: the follow-up is searched
    // with the earlier question (different ranking than alone) and the FAQ
    // answered to it is left out.
    assert_ne!(o[0].candidates, o[1].candidates);
    assert!(!o[0].candidates.iter().any(|c| c == "return-7day"), "{:?}", o[0]);
    assert!(o[0].candidates.iter().any(|c| c == "return-shipping-fee"), "{:?}", o[0]);

    // A follow-up naming another product asks the earlier question about
    // it; one naming none stays with the product the earlier question named.
    assert_eq!(o[8].candidates.first().map(String::as_str), Some("p-skii-essence-origin"), "{:?}", o[8]);
    assert_eq!(o[9].candidates.first().map(String::as_str), Some("p-esteelauder-anr-suits"), "{:?}", o[9]);
    // Follow-ups (items with history) are reported on their own as well.
    let f = &r.follow_ups;
    assert_eq!((f.items, f.answered + f.clarified + f.handed_off), (3, 3), "{f:?}");
    let first =
        [0, 8, 9].iter().filter(|&&i| o[i].candidates.first().is_some_and(|c| items[i].gold.contains(c))).count();
    assert_eq!(f.ranked_first, first);
    assert!(f.ranked_first >= 2, "{f:?}");

    // Overall figures agree with the outcomes, and the curve at the
    // threshold in force (these items are all Chinese) reproduces what the
    // service actually did.
    let answered = o.iter().filter(|x| x.action == Some(Action::Answer)).count();
    let right = o.iter().filter(|x| x.correct).count();
    assert_eq!((r.answered, r.answered_right, r.wrong_answers), (answered, right, answered - right));
    assert!((r.auto_answer_rate - answered as f64 / 10.0).abs() < 1e-9);
    let at_config = r.curve.last().unwrap();
    let chinese = r.calibration.iter().find(|g| g.group == ScriptGroup::Chinese).unwrap();
    assert!(chinese.fitted, "{chinese:?}");
    assert_eq!(at_config.threshold, chinese.answer_threshold);
    assert_eq!(r.answer_threshold, config.decision.answer_threshold);
    assert!((at_config.auto_answer_rate - r.auto_answer_rate).abs() < 1e-9, "{at_config:?}");
    assert!((at_config.precision - r.precision).abs() < 1e-9, "{at_config:?}");
    assert!(r.curve[0].auto_answer_rate >= at_config.auto_answer_rate, "a lower threshold answers no less");

    // The JSON report names types and actions as the API does.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["by_type"][1]["type"], "human");
    assert_eq!(json["outcomes"][5]["reason"], "human_requested");
}

#[test]
fn a_knowledge_base_without_answers_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = tmp.path().join("faq.jsonl");
    std::fs::write(&kb, "{\"id\":\"a\",\"question\":\"花呗怎么还款\",\"answer\":\"\"}\n").unwrap();
    let config = Config { kb_dir: kb, data_dir: tmp.path().join("unused"), ..Config::default() };
    let err = ConversationEval::open(config, None, &|_, _| {}).err().expect("refused");
    assert!(err.to_string().contains("1 of 1 FAQ entries have no answer"), "{err}");
}
