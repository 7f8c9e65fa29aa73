//! The embedding model: one query of 8 / 15 / 60 tokens (cache bypassed), a
//! batch of 32 short questions (`batch-questions.txt`), and index build throughput (phrasings/s,
//! BM25 index plus embedding every phrasing). `docs/BENCHMARKS.md` says how
//! to run these and what they measured; `scripts/bench-reference.sh` times
//! the reference C engine on the same texts.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use xiaoer::config::Config;
use xiaoer::embed::{Embedder, Role};
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::kb::{KbOptions, load_dir};

/// `tokens<TAB>text`: model-input lengths (with `<s>`, the `query: ` prefix
/// and `</s>`, which alone are 6 tokens, so a 5-token question does not
/// exist) and texts. `scripts/bench-reference.sh` reads the same file.
const QUERY_TEXTS: &str = include_str!("query-texts.tsv");

fn model() -> Arc<Embedder> {
    Arc::new(Embedder::load(&Config::default().model_dir, 1).expect("`make models` first"))
}

fn query(c: &mut Criterion) {
    let model = model();
    let mut group = c.benchmark_group("embed_query");
    for line in QUERY_TEXTS.lines() {
        let (tokens, text) = line.split_once('\t').expect("tokens<TAB>text");
        let tokens: usize = tokens.parse().expect("token count");
        assert_eq!(model.model_ids(text, Role::Query).expect("tokenize").len(), tokens, "{text}");
        group.bench_function(BenchmarkId::from_parameter(format!("{tokens}_tokens")), |b| {
            b.iter(|| black_box(model.embed(&[text], Role::Query).expect("embed")))
        });
    }
    group.finish();
}

/// 32 standard questions of the sample KB, one per line (the reference
/// script embeds the same batch).
const BATCH_QUESTIONS: &str = include_str!("batch-questions.txt");

fn batch(c: &mut Criterion) {
    let model = model();
    let texts: Vec<&str> = BATCH_QUESTIONS.lines().collect();
    let mut group = c.benchmark_group("embed_batch");
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function("32_questions", |b| b.iter(|| black_box(model.embed(&texts, Role::Query).expect("embed"))));
    group.finish();
}

/// Building the engine for the whole sample KB from scratch: BM25 index in
/// memory and every phrasing embedded (a fresh vector store per iteration).
fn index_build(c: &mut Criterion) {
    let model = model();
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).expect("sample KB");
    let phrasings: usize = kb.faqs.iter().map(|f| f.phrasings().count()).sum();
    let mut group = c.benchmark_group("index_build");
    group.sample_size(10).throughput(Throughput::Elements(phrasings as u64));
    group.bench_function(BenchmarkId::new("sample_kb_with_embedding", phrasings), |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temp dir"),
            |dir| {
                let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
                let engine = Engine::with_kb_and_model(
                    config,
                    kb.clone(),
                    IndexStorage::InMemory,
                    Some(model.clone()),
                    &|_, _| {},
                )
                .expect("engine");
                black_box(engine);
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, query, batch, index_build);
criterion_main!(benches);
