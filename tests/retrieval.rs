//! BM25 retrieval on the real sample knowledge base with a real tantivy index.

use std::path::Path;
use std::sync::OnceLock;

use xiaoer::config::Config;
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::index::{FaqIndex, Filter};
use xiaoer::kb::{KbOptions, load_dir};
use xiaoer::retrieval::Mode;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap();
        let mut config = Config::default();
        config.retrieval.mode = Mode::Bm25;
        Engine::with_kb(config, kb, IndexStorage::InMemory, &|_, _| {}).unwrap()
    })
}

/// 2026-11-23 12:00 China time.
const NOW: i64 = 1_795_406_400;

fn top(q: &str, filter: &Filter) -> String {
    let r = &engine().retriever;
    let hits = r.search(q, filter, 5).unwrap();
    hits.first().map(|c| r.faq(c).id.clone()).unwrap_or_default()
}

#[test]
fn common_questions_in_many_spellings() {
    let f = Filter { product_id: None, now: Some(NOW) };
    for (q, id) in [
        ("七天无理由退货怎么申请?", "return-7day"),
        ("7天无理由怎么退呀", "return-7day"),
        ("跨境商品要交税吗", "tax-what"),
        ("跨境綜合稅怎麼計算？", "tax-rate"),
        ("發什麼快遞", "ship-courier"),
        ("ＳＦ顺丰吗？用的哪家快递", "ship-courier"),
        ("运费险😊怎么理赔", "return-insurance"),
        ("收到的东西摔坏了😭😭", "after-damaged"),
        ("我的地址写错了怎么改!!!", "order-change-address"),
        ("你们是正品吗 会不会是假货", "auth-genuine"),
        ("可以开发票吗 公司要报销", "invoice-vat"),
        ("神仙水孕妇能用吗", "p-skii-essence-suits"),
        ("SK-II神仙水的产地", "p-skii-essence-origin"),
        ("Dyson吹风机HD15需要转换插头吗", "after-voltage-plug"),
    ] {
        assert_eq!(top(q, &f), id, "query {q:?}");
    }
}

#[test]
fn validity_windows_apply_at_query_time() {
    let during_11 = Filter { product_id: None, now: Some(1_793_000_000) }; // 2026-10-26
    assert_eq!(top("双11尾款什么时候付", &during_11), "promo-double11-2026");
    let after = Filter { product_id: None, now: Some(NOW) };
    assert_ne!(top("双11尾款什么时候付", &after), "promo-double11-2026");
    assert_eq!(top("双12有什么活动", &after), "promo-double12-2026");
    let unfiltered = Filter::default();
    assert_eq!(top("双11尾款什么时候付", &unfiltered), "promo-double11-2026");
}

#[test]
fn product_scope_excludes_other_products() {
    let on_anessa = Filter { product_id: Some("p-anessa-sunscreen"), now: Some(NOW) };
    let r = &engine().retriever;
    let hits = r.search("孕妇能用吗", &on_anessa, 10).unwrap();
    assert!(!hits.is_empty());
    for c in &hits {
        let p = &r.faq(c).products;
        assert!(p.is_empty() || p.iter().any(|p| p == "p-anessa-sunscreen"), "{:?} leaked", r.faq(c).id);
    }
    assert_eq!(r.faq(&hits[0]).id, "p-anessa-sunscreen-suits");
}

#[test]
fn nonsense_and_empty_queries_return_nothing_without_error() {
    let r = &engine().retriever;
    assert!(r.search("", &Filter::default(), 5).unwrap().is_empty());
    assert!(r.search("😊🙏！！？", &Filter::default(), 5).unwrap().is_empty());
    assert!(r.search("\u{200b}\u{3000}", &Filter::default(), 5).unwrap().is_empty());
}

#[test]
fn on_disk_index_is_reused_until_the_kb_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let kb_dir = tmp.path().join("kb");
    std::fs::create_dir(&kb_dir).unwrap();
    std::fs::write(kb_dir.join("faq.toml"), "[[faq]]\nid = \"a\"\nquestion = \"包邮吗\"\nanswer = \"包邮\"\n").unwrap();
    let mut config = Config { kb_dir: kb_dir.clone(), data_dir: tmp.path().join("data"), ..Config::default() };
    config.retrieval.mode = Mode::Bm25;
    let kb = load_dir(&kb_dir, &KbOptions::default()).unwrap();
    assert!(!FaqIndex::is_current(&config.index_dir(), &kb));
    let first = Engine::load(config.clone()).unwrap();
    assert!(FaqIndex::is_current(&config.index_dir(), &kb));
    drop(first);
    let stamp = std::fs::metadata(config.index_dir().join("meta.json")).unwrap().modified().unwrap();
    let again = Engine::load(config.clone()).unwrap();
    assert_eq!(
        std::fs::metadata(config.index_dir().join("meta.json")).unwrap().modified().unwrap(),
        stamp,
        "rebuilt needlessly"
    );
    assert_eq!(again.retriever.kb().faqs.len(), 1);
    std::fs::write(kb_dir.join("more.toml"), "[[faq]]\nid = \"b\"\nquestion = \"发票怎么开\"\nanswer = \"不能开\"\n")
        .unwrap();
    let changed = load_dir(&kb_dir, &KbOptions::default()).unwrap();
    assert!(!FaqIndex::is_current(&config.index_dir(), &changed));
    let rebuilt = Engine::load(config.clone()).unwrap();
    let hits = rebuilt.retriever.search("发票", &Filter::default(), 3).unwrap();
    assert_eq!(rebuilt.retriever.faq(&hits[0]).id, "b");
}
