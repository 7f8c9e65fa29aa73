//! Retrieval latency: BM25 top-50 on the sample knowledge base and on a
//! generated one of 100k phrasings; query embedding (15 tokens, cache off)
//! and hybrid retrieval on the sample knowledge base with the real model.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use xiaoer::config::Config;
use xiaoer::embed::{Embedder, Role};
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::index::Filter;
use xiaoer::kb::{Faq, KbOptions, KnowledgeBase, load_dir};
use xiaoer::retrieval::Mode;

const QUERIES: &[&str] =
    &["七天无理由退货怎么申请？", "跨境综合税怎么算", "神仙水孕妇能用吗", "發什麼快遞", "运费险多久到账😊"];
const NOW: i64 = 1_795_406_400;

/// Scales the sample KB up to at least `phrasings` by cloning entries with
/// varied product words, so term statistics stay realistic.
fn scaled_kb(sample: &KnowledgeBase, phrasings: usize) -> KnowledgeBase {
    let words: Vec<&str> = sample.products.iter().map(|p| p.name.as_str()).collect();
    let mut kb = KnowledgeBase {
        products: sample.products.clone(),
        dict_words: sample.dict_words.clone(),
        synonyms: sample.synonyms.clone(),
        ..Default::default()
    };
    let (mut n, mut round) = (0, 0);
    while n < phrasings {
        for (i, f) in sample.faqs.iter().enumerate() {
            let w = words[(i + round) % words.len()];
            let faq = Faq {
                id: format!("{}-{round}", f.id),
                question: format!("{w} {}", f.question),
                similar: f.similar.iter().map(|s| format!("{s} {w} {round}")).collect(),
                ..f.clone()
            };
            n += 1 + faq.similar.len();
            kb.faqs.push(faq);
        }
        round += 1;
    }
    kb.content_hash = format!("bench-{phrasings}");
    kb
}

fn bm25_config() -> Config {
    let mut config = Config::default();
    config.retrieval.mode = Mode::Bm25;
    config
}

fn bm25(c: &mut Criterion) {
    let sample = load_dir(Path::new("knowledge_base"), &KbOptions::default()).expect("sample KB");
    let mut group = c.benchmark_group("bm25_top50");
    for (name, kb) in [("sample", sample.clone()), ("100k_phrasings", scaled_kb(&sample, 100_000))] {
        let engine = Engine::with_kb(bm25_config(), kb, IndexStorage::InMemory, &|_, _| {}).expect("index");
        let filter = Filter { product_id: None, now: Some(NOW) };
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % QUERIES.len();
                black_box(engine.retriever.search(QUERIES[i], &filter, 50).expect("search"))
            })
        });
    }
    group.finish();
}

fn semantic(c: &mut Criterion) {
    let config = Config { data_dir: std::env::temp_dir().join("xiaoer-bench"), ..Config::default() };
    let model = Arc::new(Embedder::load(&config.model_dir, 1).expect("`make models` first"));
    // 15 tokens with the prefix, <s> and </s>: a text of the reference set.
    let text = "可以开增值税专用发票吗";
    assert_eq!(model.model_ids(text, Role::Query).expect("tokenize").len(), 15);
    c.bench_function("embed_query_15_tokens", |b| {
        b.iter(|| black_box(model.embed(&[text], Role::Query).expect("embed")))
    });

    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).expect("sample KB");
    let engine =
        Engine::with_kb_and_model(config, kb, IndexStorage::InMemory, Some(model.clone()), &|_, _| {}).expect("engine");
    let filter = Filter { product_id: None, now: Some(NOW) };
    // Two texts alternating through a one-entry query cache: every search embeds.
    let texts = [text, "保税仓发货的商品多久能到？"];
    let mut i = 0;
    c.bench_function("hybrid_search_sample_uncached", |b| {
        b.iter(|| {
            i = 1 - i;
            black_box(engine.retriever.search(texts[i], &filter, 5).expect("search"))
        })
    });
}

criterion_group!(benches, bm25, semantic);
criterion_main!(benches);
