//! Using xiaoer as a library: load the sample knowledge base with the model,
//! decide on a few shopper messages, and print what a chat widget would show.
//!
//! `cargo run --release --example ask` (after `make models`).

use std::path::Path;

use xiaoer::config::Config;
use xiaoer::decision::{Confidence, ScriptGroup, decide};
use xiaoer::engine::Engine;
use xiaoer::index::Filter;
use xiaoer::retrieval::ProductContext;
use xiaoer::text::detect_locale;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        data_dir: std::env::temp_dir().join("xiaoer-example"),
        ..Config::load(Some(Path::new("xiaoer.toml")))?
    };
    let engine = Engine::load(config)?;
    let kb = engine.retriever.kb();
    let now = chrono::Utc::now().timestamp();
    for text in ["七天无理由退货怎么申请？", "跨境綜合稅怎麼算", "How long does delivery take?", "转人工！！！"]
    {
        let candidates = engine.retriever.search(text, &Filter { product_id: None, now: Some(now) }, 5)?;
        // The knowledge base's own verifier weighs the evidence for the best candidate.
        let vector = engine.retriever.query_vector(text, engine.config.retrieval.mode)?;
        let language = detect_locale(text);
        let evidence =
            engine.retriever.evidence(text, vector.as_deref(), &candidates, &ProductContext::default(), language);
        let calibration = engine.calibration();
        let verifier = calibration.group(ScriptGroup::of_locale(language));
        let cfg = &engine.config.decision;
        let judged = Confidence::judge(verifier, evidence.as_ref().map(|e| &e[..]), &candidates, cfg);
        let d = decide(text, text, &candidates, judged, 0, &kb.lexicon, engine.retriever.analyzer(), cfg);
        println!("{text}\n  → {:?} ({}, confidence {:.2})", d.action, d.reason.name(), d.confidence);
        if let Some((_, answer)) = d.faq.and_then(|f| kb.faqs[f].answer_for(detect_locale(text))) {
            println!("  {answer}");
        }
        for f in &d.choices {
            println!("  · {}", kb.faqs[*f].question);
        }
    }
    Ok(())
}
