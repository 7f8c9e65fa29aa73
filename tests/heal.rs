//! The on-disk caches heal: a damaged tantivy index or phrasing-vector store
//! is rebuilt instead of stopping the engine, leftovers of crashed builds are
//! removed, an unchanged cache is not written, and a cache that cannot be
//! written does not stop the engine. Real model, real index in a tempdir.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{model, sample_kb, shared_data};
use xiaoer::config::Config;
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::index::{FaqIndex, Filter};
use xiaoer::retrieval::{Mode, Retriever};
use xiaoer::text::Analyzer;

const QUERY: &str = "七天无理由退货怎么申请";
/// `vectors.bin`: magic (8 bytes), dimension (u64), then per phrasing a key
/// (u64) and `dimension` little-endian f32.
const HEADER: usize = 16;

/// A private data directory seeded with the shared phrasing vectors, so
/// only what a test damages is re-embedded.
fn seeded() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(shared_data().join("vectors.bin"), dir.path().join("vectors.bin")).unwrap();
    dir
}

fn engine_at(data: &Path) -> Engine {
    let config = Config { data_dir: data.to_path_buf(), ..Config::default() };
    Engine::with_kb_and_model(config, sample_kb(), IndexStorage::OnDisk, Some(model()), &|_, _| {})
        .expect("the engine builds")
}

/// The top FAQ for [`QUERY`] by BM25 alone (so a broken index is not masked
/// by the dense side) and in hybrid mode.
fn top(engine: &Engine) -> (String, String) {
    let r = &engine.retriever;
    let best = |mode| {
        let hits = r.search_mode(QUERY, &Filter::default(), 3, mode).unwrap();
        assert!(hits.iter().all(|c| c.score.is_finite()), "{hits:?}");
        r.faq(&hits[0]).id.clone()
    };
    (best(Mode::Bm25), best(Mode::Hybrid))
}

fn segment_file(index: &Path, ext: &str) -> PathBuf {
    fs::read_dir(index)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == ext) && fs::metadata(p).unwrap().len() > 64)
        .unwrap_or_else(|| panic!("no .{ext} segment file in {}", index.display()))
}

/// The index on disk opens and every file matches its checksum.
fn assert_index_intact(index: &Path) {
    let index = tantivy::Index::open_in_dir(index).expect("index opens");
    let damaged = index.validate_checksum().unwrap();
    assert!(damaged.is_empty(), "damaged files left on disk: {damaged:?}");
}

/// Builds an engine, damages its index with `damage`, and builds it again:
/// the second build heals the index and answers as the first did.
fn damage_and_rebuild(damage: impl FnOnce(&Path)) {
    let data = seeded();
    let index = data.path().join("index");
    let before = top(&engine_at(data.path()));
    assert_eq!(before.0, "return-7day");
    damage(&index);
    let engine = engine_at(data.path());
    engine.check().unwrap();
    assert_eq!(top(&engine), before);
    assert!(FaqIndex::is_current(&index, engine.retriever.kb()));
    assert_index_intact(&index);
}

#[test]
fn truncated_segment_file_is_rebuilt() {
    damage_and_rebuild(|index| {
        let f = fs::OpenOptions::new().write(true).open(segment_file(index, "term")).unwrap();
        f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    });
}

#[test]
fn overwritten_segment_footer_is_rebuilt() {
    // The footer's magic bytes: tantivy's "Footer magic byte mismatch".
    damage_and_rebuild(|index| {
        let path = segment_file(index, "fast");
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 8..].fill(0xAB);
        fs::write(path, bytes).unwrap();
    });
}

#[test]
fn overwritten_postings_are_rebuilt() {
    // Bytes in the middle of a file: the footer is intact, only the checksum tells.
    damage_and_rebuild(|index| {
        let path = segment_file(index, "idx");
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid - 8..mid + 8] {
            *b ^= 0x5A;
        }
        fs::write(path, bytes).unwrap();
    });
}

#[test]
fn missing_meta_json_is_rebuilt() {
    damage_and_rebuild(|index| fs::remove_file(index.join("meta.json")).unwrap());
}

fn read_vectors(path: &Path) -> Vec<Vec<f32>> {
    let bytes = fs::read(path).unwrap();
    let dim = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    bytes[HEADER..]
        .chunks_exact(8 + dim * 4)
        .map(|r| r[8..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
        .collect()
}

/// Overwrites component `at` of stored vector `record` with `value`.
fn poke(path: &Path, record: usize, at: usize, value: f32) {
    let mut bytes = fs::read(path).unwrap();
    let dim = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let offset = HEADER + record * (8 + dim * 4) + 8 + at * 4;
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    fs::write(path, bytes).unwrap();
}

/// One sound vector per distinct phrasing text.
fn assert_store_sound(path: &Path, texts: usize) {
    let vectors = read_vectors(path);
    assert_eq!(vectors.len(), texts);
    for v in vectors {
        assert!(v.iter().all(|x| x.is_finite()), "non-finite vector left in the store");
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "vector of norm {norm} left in the store");
    }
}

#[test]
fn damaged_phrasing_vectors_are_re_embedded() {
    let data = seeded();
    let file = data.path().join("vectors.bin");
    let texts = read_vectors(&file).len();
    let want = top(&engine_at(data.path()));

    // A NaN component in one vector, another vector far off unit length.
    poke(&file, 0, 0, f32::NAN);
    poke(&file, 1, 5, 3.0);
    let engine = engine_at(data.path());
    engine.check().unwrap();
    assert_eq!(top(&engine), want);
    assert_store_sound(&file, texts);
}

#[test]
fn staging_directories_of_dead_builds_are_removed() {
    let data = seeded();
    drop(engine_at(data.path()));
    let dead = data.path().join("index.building-999999999-0");
    let live = data.path().join(format!("index.building-{}-999999", std::process::id()));
    let unrelated = [data.path().join("index.building-x-1"), data.path().join("other.building-999999999-0")];
    for d in [&dead, &live].into_iter().chain(&unrelated) {
        fs::create_dir(d).unwrap();
        fs::write(d.join("meta.json"), "{}").unwrap();
    }
    engine_at(data.path()).check().unwrap();
    assert!(!dead.exists(), "staging directory of a dead process left behind");
    assert!(live.exists(), "staging directory of a live process removed");
    for d in &unrelated {
        assert!(d.exists(), "{} is not a staging directory", d.display());
    }
}

/// Every file and directory under `dir` with its inode, size and mtime.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            if m.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path, (m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
        }
        let m = fs::metadata(&d).unwrap();
        out.insert(d, (m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
    }
    out
}

#[test]
fn opening_an_unchanged_cache_writes_nothing() {
    let data = seeded();
    let want = top(&engine_at(data.path()));
    let before = snapshot(data.path());
    // Past the file system's timestamp granularity, so a rewrite would show.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let engine = engine_at(data.path());
    engine.check().unwrap();
    assert_eq!(top(&engine), want);
    assert_eq!(snapshot(data.path()), before, "opening an unchanged cache wrote to it");
}

#[test]
fn unwritable_vector_store_is_kept_in_memory() {
    let data = seeded();
    let file = data.path().join("vectors.bin");
    let want = top(&engine_at(data.path()));
    // One vector missing, so the store must be rewritten; its temporary file
    // is the full device (ENOSPC on write).
    let mut stored = fs::read(&file).unwrap();
    let dim = u64::from_le_bytes(stored[8..16].try_into().unwrap()) as usize;
    stored.truncate(stored.len() - (8 + dim * 4));
    fs::write(&file, &stored).unwrap();
    let tmp = data.path().join(format!("vectors.bin.partial-{}", std::process::id()));
    std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();

    let engine = engine_at(data.path());
    engine.check().unwrap();
    assert_eq!(top(&engine), want);
    assert!(fs::read(&file).unwrap() == stored, "a failed write must leave the old store whole");
    assert!(fs::symlink_metadata(&tmp).is_err(), "temporary file left behind");
}

#[test]
fn unwritable_index_is_served_from_memory() {
    let data = seeded();
    let want = top(&engine_at(data.path()));
    // The new index cannot replace what stands where it lives.
    let index = data.path().join("index");
    fs::remove_dir_all(&index).unwrap();
    fs::write(&index, "not an index directory").unwrap();

    let engine = engine_at(data.path());
    engine.check().unwrap();
    assert_eq!(top(&engine), want);
    let leftovers: Vec<_> = fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".building-"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn check_reports_an_index_that_does_not_hold_every_phrasing() {
    let kb = sample_kb();
    let mut fewer = kb.clone();
    fewer.faqs.truncate(3);
    let analyzer = std::sync::Arc::new(Analyzer::new(&kb.dict_words, &kb.synonyms));
    let mut config = Config::default();
    config.retrieval.mode = Mode::Bm25;
    let index = FaqIndex::in_memory(&fewer, analyzer.clone()).unwrap();
    let retriever = Retriever::new(std::sync::Arc::new(kb), analyzer, index, None, config.retrieval.clone()).unwrap();
    let err = retriever.check().unwrap_err();
    assert!(err.contains("documents"), "{err}");
}
