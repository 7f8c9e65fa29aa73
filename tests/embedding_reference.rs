//! The real model reproduces the reference engine's embeddings
//! (`../shared/model/reference_embeddings.jsonl`): token ids exactly and
//! cosine >= 0.999 for every text, long-text windows included.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use xiaoer::embed::{Embedder, Role, default_model_dir};

#[derive(Deserialize)]
struct Reference {
    text: String,
    mode: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = Path::new("../shared/model/reference_embeddings.jsonl");
    let text =
        std::fs::read_to_string(path).expect("../shared/model/reference_embeddings.jsonl (shared reference data)");
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn reproduces_reference_ids_and_embeddings() {
    let embedder = Embedder::load(&default_model_dir(), 16).expect("model installed by `make models`");
    let refs = references();
    assert_eq!(refs.len(), 20);
    let mut worst = 1.0f32;
    for r in &refs {
        assert_eq!(r.mode, "query");
        let mut ids = vec![0];
        ids.extend(embedder.content_ids(&r.text, Role::Query).unwrap());
        ids.push(2);
        assert_eq!(ids, r.ids, "token ids differ for {:?}", r.text);
    }
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let vectors = embedder.embed(&texts, Role::Query).unwrap();
    for (r, v) in refs.iter().zip(&vectors) {
        let c = cosine(v, &r.embedding);
        worst = worst.min(c);
        assert!(c >= 0.999, "cosine {c} for {:?}", r.text);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    // Batched and single embedding agree (packing does not leak across texts).
    let single = embedder.embed(&[texts[0]], Role::Query).unwrap();
    assert!(cosine(&single[0], &vectors[0]) > 0.9999);
    eprintln!("worst cosine {worst}");
}

#[test]
fn special_tokens_in_user_text_are_plain_text() {
    let embedder = Embedder::load(&default_model_dir(), 16).unwrap();
    let ids = embedder.content_ids("<s>退货</s><mask>", Role::Query).unwrap();
    for special in [0u32, 1, 2, 3, 250001] {
        assert!(!ids.contains(&special), "special id {special} injected: {ids:?}");
    }
}

#[test]
fn query_cache_returns_identical_vectors() {
    let embedder = Embedder::load(&default_model_dir(), 4).unwrap();
    let a = embedder.embed_query("运费险  怎么理赔").unwrap();
    let b = embedder.embed_query("运费险 怎么理赔").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b), "second call should hit the cache");
    let fresh = embedder.embed(&["运费险 怎么理赔"], Role::Query).unwrap();
    assert_eq!(&*a, fresh[0].as_slice());
}

/// Concurrent queries are batched into shared forward passes; each caller
/// still gets exactly the vector its text gets alone.
#[test]
fn concurrent_queries_are_batched_without_changing_results() {
    let embedder = Embedder::load(&default_model_dir(), 1).unwrap();
    let (passes, queries) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (p, q) = (passes.clone(), queries.clone());
    embedder.observe_passes(Box::new(move |n, _| {
        p.fetch_add(1, Ordering::Relaxed);
        q.fetch_add(n, Ordering::Relaxed);
    }));
    let texts = [
        "七天无理由退货怎么申请？",
        "跨境商品要交税吗",
        "發什麼快遞",
        "Do you ship to Singapore?",
        "运费险多久到账😊",
        "ＳＫ－II神仙水孕妇能用吗",
        "可以开增值税专用发票吗",
        "订单一直显示已揽收，三天没动了",
    ];
    // 32 distinct queries, so none is served from the query cache.
    let asked: Vec<String> = (0..32).map(|i| format!("{} 第{i}位顾客", texts[i % texts.len()])).collect();
    let alone: Vec<Vec<f32>> = asked.iter().map(|t| embedder.embed(&[t], Role::Query).unwrap().remove(0)).collect();
    let (before_passes, before_queries) = (passes.load(Ordering::Relaxed), queries.load(Ordering::Relaxed));
    let results: Vec<(usize, Vec<f32>)> = std::thread::scope(|s| {
        let handles: Vec<_> = asked
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let embedder = &embedder;
                s.spawn(move || (i, embedder.embed_query(text).unwrap().to_vec()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, v) in results {
        assert_eq!(v, alone[i], "{}", asked[i]);
    }
    let passes = passes.load(Ordering::Relaxed) - before_passes;
    let queries = queries.load(Ordering::Relaxed) - before_queries;
    assert_eq!(queries, 32);
    assert!(passes < 32, "32 concurrent queries ran in {passes} passes: nothing was batched");
}
