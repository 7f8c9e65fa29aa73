//! Restart time of the service: `Services::open` over a data directory whose
//! index and phrasing vectors are current, with 0 / 50 / 200 stored edits.
//! The engine is built once from files + edits, so a restart reuses the
//! on-disk index (before, every start with edits rebuilt it twice).
//! The model is loaded once outside the timing. `docs/BENCHMARKS.md` has
//! the figures.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xiaoer::config::Config;
use xiaoer::embed::Embedder;
use xiaoer::kb::{FaqEdit, FaqInput, KbOptions, load_dir};
use xiaoer::service::Services;
use xiaoer::store::Store;

fn restart(c: &mut Criterion) {
    let config = Config::default();
    let model = Arc::new(Embedder::load(&config.model_dir, 256).expect("`make models` first"));
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap();
    let mut group = c.benchmark_group("restart");
    group.sample_size(10);
    for edits in [0, 50, 200] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("xiaoer.sqlite3");
        // Edits as operators make them: a phrasing added here and there.
        let stored: Vec<FaqEdit> = (0..edits)
            .map(|n| {
                let faq = &kb.faqs[n % kb.faqs.len()];
                let mut entry = FaqInput::from_faq(faq);
                entry.similar.push(format!("{}（第{n}次补充的问法）", faq.question));
                FaqEdit { id: faq.id.clone(), entry: Some(entry) }
            })
            .collect();
        Store::open(&db).unwrap().save_edits(&stored, None, None).unwrap();
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let open =
            || Services::open(config.clone(), Store::open(&db).unwrap(), Some(model.clone()), &|_, _| {}).unwrap();
        open(); // the first start builds the index and embeds; restarts reuse them
        group.bench_with_input(BenchmarkId::from_parameter(format!("{edits} edits")), &edits, |b, _| {
            b.iter(|| black_box(open()))
        });
    }
    group.finish();
}

criterion_group!(benches, restart);
criterion_main!(benches);
