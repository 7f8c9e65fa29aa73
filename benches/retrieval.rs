//! Retrieval latency at 1k / 10k / 100k phrasings: BM25 top-50, and hybrid
//! (BM25 ∪ exact vector scan, fused) with the real model. `docs/BENCHMARKS.md`
//! says how to run these and what they measured.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xiaoer::config::Config;
use xiaoer::embed::Embedder;
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::index::Filter;
use xiaoer::kb::{Faq, KbOptions, KnowledgeBase, load_dir};
use xiaoer::retrieval::Mode;

const QUERIES: &[&str] =
    &["七天无理由退货怎么申请？", "跨境综合税怎么算", "神仙水孕妇能用吗", "發什麼快遞", "运费险多久到账😊"];
const NOW: i64 = 1_795_406_400;
const SCALES: [(&str, usize); 3] = [("1k", 1_000), ("10k", 10_000), ("100k", 100_000)];

/// Scales the sample KB up to at least `phrasings` by cloning its entries.
/// With `vary`, each clone's texts get a product name and the round number,
/// so BM25 term statistics stay realistic; without it the texts stay as they
/// are, so the model embeds only the sample's distinct texts once (the
/// vector scan still walks one vector per phrasing).
fn scaled_kb(sample: &KnowledgeBase, phrasings: usize, vary: bool) -> KnowledgeBase {
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
            let mut faq = Faq { id: format!("{}-{round}", f.id), ..f.clone() };
            if vary {
                faq.question = format!("{w} {}", f.question);
                faq.similar = f.similar.iter().map(|s| format!("{s} {w} {round}")).collect();
            }
            n += 1 + faq.similar.len();
            kb.faqs.push(faq);
            if n >= phrasings {
                break;
            }
        }
        round += 1;
    }
    kb.content_hash = format!("bench-{phrasings}-{vary}");
    kb
}

fn sample_kb() -> KnowledgeBase {
    load_dir(Path::new("knowledge_base"), &KbOptions::default()).expect("sample KB")
}

/// `search(…, k)` on the sample KB scaled to each of `SCALES`, cycling
/// through `QUERIES`; `vary` as in [`scaled_kb`].
fn search_at_scales(
    c: &mut Criterion,
    group: &str,
    config: &Config,
    model: Option<Arc<Embedder>>,
    vary: bool,
    k: usize,
) {
    let sample = sample_kb();
    let filter = Filter { product_id: None, now: Some(NOW) };
    let mut group = c.benchmark_group(group);
    for (name, size) in SCALES {
        let kb = scaled_kb(&sample, size, vary);
        let engine = Engine::with_kb_and_model(config.clone(), kb, IndexStorage::InMemory, model.clone(), &|_, _| {})
            .expect("engine");
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                i = (i + 1) % QUERIES.len();
                black_box(engine.retriever.search(QUERIES[i], &filter, k).expect("search"))
            })
        });
    }
    group.finish();
}

fn bm25(c: &mut Criterion) {
    let mut config = Config::default();
    config.retrieval.mode = Mode::Bm25;
    search_at_scales(c, "bm25_top50", &config, None, true, 50);
}

/// Hybrid retrieval of the top 5 with query embeddings served from the cache
/// (what a repeated question costs), so the figure is the index side alone;
/// `embedding` benches the model.
fn hybrid(c: &mut Criterion) {
    let config = Config { data_dir: std::env::temp_dir().join("xiaoer-bench"), ..Config::default() };
    let model = Arc::new(Embedder::load(&config.model_dir, 64).expect("`make models` first"));
    search_at_scales(c, "hybrid_top5_cached_query", &config, Some(model), false, 5);
}

criterion_group!(benches, bm25, hybrid);
criterion_main!(benches);
