//! BM25 top-50 retrieval latency on the sample knowledge base and on a
//! generated knowledge base of 100k phrasings.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use xiaoer::config::Config;
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::index::Filter;
use xiaoer::kb::{Faq, KbOptions, KnowledgeBase, load_dir};

const QUERIES: &[&str] = &[
    "七天无理由退货怎么申请？",
    "跨境综合税怎么算",
    "神仙水孕妇能用吗",
    "發什麼快遞",
    "运费险多久到账😊",
];

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
    let mut n = 0;
    let mut round = 0;
    while n < phrasings {
        for (i, f) in sample.faqs.iter().enumerate() {
            let w = words[(i + round) % words.len()];
            let faq = Faq {
                id: format!("{}-{round}", f.id),
                question: format!("{w} {}", f.question),
                similar: f
                    .similar
                    .iter()
                    .map(|s| format!("{s} {w} {round}"))
                    .collect(),
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

fn bench(c: &mut Criterion) {
    let sample = load_dir(Path::new("knowledge_base"), &KbOptions::default()).expect("sample KB");
    let mut group = c.benchmark_group("bm25_top50");
    for (name, kb) in [
        ("sample", sample.clone()),
        ("100k_phrasings", scaled_kb(&sample, 100_000)),
    ] {
        let engine = Engine::with_kb(Config::default(), kb, IndexStorage::InMemory).expect("index");
        let filter = Filter {
            product_id: None,
            now: Some(1_795_406_400),
        };
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % QUERIES.len();
                black_box(
                    engine
                        .retriever
                        .search(QUERIES[i], &filter, 50)
                        .expect("search"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
