//! Knowledge operations: the live engine, FAQ edits, imports and reloads.
//!
//! Every change runs under one lock and in this order: read the knowledge
//! files and the stored edits, derive the new edit from that latest state,
//! build a whole new engine beside the live one, then store the edit and
//! swap the engine in. So concurrent edits of one FAQ are applied one after
//! another (none is lost), and a failed build stores nothing.
//!
//! Edits are versioned in the database: an edit is stored only if no other
//! process (a replica on the same database) stored one since this one was
//! derived, else it is derived again; and each replica follows the stored
//! version, rebuilding within about a second of another's edit.
//!
//! A changed knowledge base answers at once with the previous verifier; one
//! background thread then fits its own (about three seconds of both cores
//! for the sample store) and swaps it in, skipping engines a later change
//! replaced.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use utoipa::ToSchema;

use super::desk::draft_was_right;
use super::turns::{Context, read_message};
use super::{ServiceError, lock, message_text};
use crate::config::Config;
use crate::decision::{Action, decide, substance};
use crate::embed::Embedder;
use crate::engine::{Engine, IndexStorage, Progress};
use crate::kb::{
    FaqEdit, FaqInput, ImportReport, KbOptions, KnowledgeBase, apply_edits, load_path, parse_csv, parse_jsonl,
};
use crate::kb_calibration::{Labelled, MAX_HISTORY};
use crate::store::{Actor, Judgement, Store, StoreError};

/// The knowledge base after a change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KbSummary {
    pub faqs: usize,
    pub phrasings: usize,
    /// Stored edits that no longer validate (e.g. their product was removed).
    pub skipped_edits: Vec<String>,
    /// The knowledge base's version now (the last stored edit's number; 0: the files alone).
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportOutcome {
    /// Entries written (0 for a dry run or a blocked import).
    pub imported: usize,
    pub report: ImportReport,
    pub kb: Option<KbSummary>,
}

/// How a question would rank with an entry as edited, before it is saved.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RankPreview {
    /// The edited entry's place among the first five (1 = first); none when
    /// it is not among them.
    pub rank: Option<usize>,
    /// What the bot would do with the question: answer it (with `candidates[0]`),
    /// clarify or hand it off.
    pub action: Action,
    /// The confidence in the first candidate.
    pub confidence: f32,
    pub candidates: Vec<PreviewCandidate>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewCandidate {
    pub faq_id: String,
    pub question: String,
}

/// Candidates a preview shows.
const PREVIEW_CANDIDATES: usize = 5;
/// Times a change is derived again when other replicas' edits overtook it.
const STALE_RETRIES: usize = 5;
/// How often a replica looks for edits another one stored.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// The knowledge files with the stored edits applied.
struct Current {
    kb: KnowledgeBase,
    /// Stored edits that no longer validate.
    skipped: Vec<String>,
    /// The stored version they make.
    version: i64,
}

pub struct Knowledge {
    config: Config,
    store: Arc<Store>,
    model: Option<Arc<Embedder>>,
    /// The live engine and the stored version it was built from, swapped
    /// together (a reader never sees one without the other). Requests take
    /// a snapshot; a change builds a new engine beside it and swaps it in,
    /// so no query sees a half-built index.
    live: ArcSwap<Live>,
    /// One change at a time, each derived from the state the last one left.
    changing: Mutex<()>,
    /// Engines still answering with a previous knowledge base's verifier.
    to_calibrate: Sender<Arc<Engine>>,
}

struct Live {
    engine: Arc<Engine>,
    version: i64,
}

impl Knowledge {
    /// Builds the engine once, from the knowledge files plus the stored
    /// edits, reusing the on-disk index and vectors when they match. Its
    /// verifier is the cached one when that was fitted from the same
    /// knowledge base, model and labelled turns, else fitted before serving
    /// (a stale one could belong to another model or knowledge base).
    pub fn open(
        config: Config,
        store: Arc<Store>,
        model: Option<Arc<Embedder>>,
        progress: Progress,
    ) -> Result<Knowledge, ServiceError> {
        let Current { kb, version, .. } = Self::current_kb(&config, &store)?;
        let history = history(&store, &kb)?;
        let engine = Engine::provisional(
            config.clone(),
            kb,
            IndexStorage::OnDisk,
            model.clone(),
            progress,
            Arc::default(),
            history,
        )
        .map_err(ServiceError::Rebuild)?;
        engine.calibrate().map_err(ServiceError::Rebuild)?;
        let (to_calibrate, pending) = channel();
        std::thread::spawn(move || calibrate_latest(pending));
        Ok(Knowledge {
            config,
            store,
            model,
            live: ArcSwap::from_pointee(Live { engine: Arc::new(engine), version }),
            changing: Mutex::new(()),
            to_calibrate,
        })
    }

    /// The stored version the live engine serves.
    pub fn version(&self) -> i64 {
        self.live.load().version
    }

    /// Keeps this replica on the latest stored version: every half second,
    /// when another process stored edits, the engine is rebuilt with them.
    /// The thread ends with the `Knowledge`.
    pub fn follow(self: &Arc<Self>) {
        let knowledge = Arc::downgrade(self);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(FOLLOW_INTERVAL);
                let Some(k) = knowledge.upgrade() else { return };
                if let Err(e) = k.catch_up() {
                    tracing::warn!(error = %e, "cannot follow the stored knowledge edits: the previous version serves");
                }
            }
        });
    }

    fn catch_up(&self) -> Result<(), ServiceError> {
        if self.store.kb_version()? <= self.version() {
            return Ok(());
        }
        let _one = lock(&self.changing);
        let current = Self::current_kb(&self.config, &self.store)?;
        if current.version > self.version() {
            self.rebuild(current)?;
        }
        Ok(())
    }

    /// A snapshot of the live engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.live.load().engine.clone()
    }

    /// Re-reads the knowledge files (after an operator edited them), applies
    /// the stored edits and swaps in the rebuilt engine.
    pub fn reload(&self) -> Result<KbSummary, ServiceError> {
        let _one = lock(&self.changing);
        self.rebuild(Self::current_kb(&self.config, &self.store)?)
    }

    /// The entry `id` as the admin API shows it.
    pub fn faq(&self, id: &str) -> Result<FaqInput, ServiceError> {
        let engine = self.engine();
        let faq = engine.retriever.kb().faq(id).ok_or_else(|| not_found(id))?;
        Ok(FaqInput::from_faq(faq))
    }

    /// Creates or replaces (`Some`) or deletes (`None`) entry `id`, as `actor`.
    pub fn edit_faq(&self, id: &str, entry: Option<FaqInput>, actor: &Actor) -> Result<KbSummary, ServiceError> {
        self.change(actor, |kb| {
            match &entry {
                Some(input) => {
                    input.to_faq(id, kb, "admin edit").map_err(|p| ServiceError::Invalid(p.join("; ")))?;
                }
                None if kb.faq(id).is_none() => return Err(not_found(id)),
                None => {}
            }
            Ok(vec![FaqEdit { id: id.to_string(), entry: entry.clone() }])
        })
    }

    /// How `question` would rank were entry `id` (new or existing) as
    /// `entry`: a throw-away engine in memory, built as an edit would build
    /// it (only changed phrasings are embedded) and judged with the live
    /// calibration. Nothing is stored.
    pub fn preview(&self, id: &str, entry: &FaqInput, question: &str) -> Result<RankPreview, ServiceError> {
        let question = message_text(question, self.config.server.max_text_chars)?;
        let live = self.engine();
        let mut kb = live.retriever.kb().clone();
        entry.to_faq(id, &kb, "preview").map_err(|p| ServiceError::Invalid(p.join("; ")))?;
        apply_edits(&mut kb, &[FaqEdit { id: id.to_string(), entry: Some(entry.clone()) }]);
        let engine = Engine::provisional(
            self.config.clone(),
            kb,
            IndexStorage::Scratch,
            self.model.clone(),
            &|_, _| {},
            live.calibration(),
            Vec::new(),
        )
        .map_err(ServiceError::Rebuild)?;
        let kb = engine.retriever.kb();
        let cfg = &self.config.decision;
        let reading = read_message(&engine, question, &Context::default(), None, PREVIEW_CANDIDATES)?;
        let decision = decide(
            question,
            &reading.text,
            &reading.candidates,
            reading.judged,
            0,
            &kb.lexicon,
            engine.retriever.analyzer(),
            cfg,
        );
        let candidates: Vec<PreviewCandidate> = reading
            .candidates
            .iter()
            .map(|c| PreviewCandidate { faq_id: kb.faqs[c.faq].id.clone(), question: kb.faqs[c.faq].question.clone() })
            .collect();
        Ok(RankPreview {
            rank: candidates.iter().position(|c| c.faq_id == id).map(|i| i + 1),
            action: decision.action,
            confidence: reading.judged.value,
            candidates,
        })
    }

    /// Adds a similar question to entry `id` (no change when it has it already).
    pub fn add_similar(&self, id: &str, text: &str, actor: &Actor) -> Result<KbSummary, ServiceError> {
        self.change(actor, |kb| {
            let faq = kb.faq(id).ok_or_else(|| not_found(id))?;
            if faq.phrasings().any(|p| p == text) {
                return Ok(Vec::new());
            }
            let mut input = FaqInput::from_faq(faq);
            input.similar.push(text.to_string());
            input.to_faq(id, kb, "admin edit").map_err(|p| ServiceError::Invalid(p.join("; ")))?;
            Ok(vec![FaqEdit { id: id.to_string(), entry: Some(input) }])
        })
    }

    /// Checks a CSV or JSON Lines file; unless `dry_run`, imports its entries:
    /// all of them, or (with `partial`) the good rows even when others are bad.
    pub fn import(
        &self,
        bytes: &[u8],
        jsonl: bool,
        dry_run: bool,
        partial: bool,
        actor: &Actor,
    ) -> Result<ImportOutcome, ServiceError> {
        let engine = self.engine();
        let kb = engine.retriever.kb();
        let report = if jsonl { parse_jsonl(bytes, kb) } else { parse_csv(bytes, kb) };
        let blocked = !report.problems.is_empty() && !partial;
        if dry_run || blocked || report.entries.is_empty() {
            return Ok(ImportOutcome { imported: 0, report, kb: None });
        }
        let summary = self.change(actor, |_| Ok(report.entries.clone()))?;
        Ok(ImportOutcome { imported: report.entries.len(), report, kb: Some(summary) })
    }

    /// Derives edits from the latest state with `make`, builds the engine
    /// with them, and only then stores them (signed by `actor`) as the next
    /// version and swaps the engine in. When another replica stored edits
    /// meanwhile, nothing is stored and the change is derived again.
    fn change(
        &self,
        actor: &Actor,
        make: impl Fn(&KnowledgeBase) -> Result<Vec<FaqEdit>, ServiceError>,
    ) -> Result<KbSummary, ServiceError> {
        let _one = lock(&self.changing);
        for _ in 0..STALE_RETRIES {
            let mut current = Self::current_kb(&self.config, &self.store)?;
            let edits = make(&current.kb)?;
            if edits.is_empty() {
                return Ok(summary(&current.kb, current.skipped, current.version));
            }
            // `make` validated the new edits against this same state, so they apply.
            current.skipped.extend(apply_edits(&mut current.kb, &edits));
            let expected = current.version;
            let stored =
                self.swap_in(current, || Ok(self.store.save_edits(&edits, actor.agent_id(), Some(expected))?));
            match stored {
                Err(ServiceError::Storage(StoreError::StaleKnowledge { .. })) => continue,
                done => return done,
            }
        }
        Err(ServiceError::Conflict("other replicas kept changing the knowledge base; try again".into()))
    }

    /// Builds the engine for `current` (nothing to store). The caller holds `changing`.
    fn rebuild(&self, current: Current) -> Result<KbSummary, ServiceError> {
        let version = current.version;
        self.swap_in(current, || Ok(version))
    }

    /// Builds the engine for `current.kb`; only when that worked runs `store`
    /// (which stores what is to be stored and names the version it makes)
    /// and swaps the engine in. The caller holds `changing`.
    fn swap_in(
        &self,
        current: Current,
        store: impl FnOnce() -> Result<i64, ServiceError>,
    ) -> Result<KbSummary, ServiceError> {
        let Current { kb, skipped, .. } = current;
        let previous = self.engine().calibration();
        let history = history(&self.store, &kb)?;
        let engine = Engine::provisional(
            self.config.clone(),
            kb,
            IndexStorage::OnDisk,
            self.model.clone(),
            &|_, _| {},
            previous,
            history,
        )
        .map_err(ServiceError::Rebuild)?;
        let version = store()?;
        let summary = summary(engine.retriever.kb(), skipped, version);
        let engine = Arc::new(engine);
        self.live.store(Arc::new(Live { engine: engine.clone(), version }));
        if !engine.calibrated() {
            // The thread ends only with `Knowledge`, which holds the sender.
            let _ = self.to_calibrate.send(engine);
        }
        Ok(summary)
    }

    /// The knowledge files with the stored edits applied.
    fn current_kb(config: &Config, store: &Store) -> Result<Current, ServiceError> {
        let mut kb = load_path(&config.kb_dir, &KbOptions::default()).map_err(ServiceError::KbFiles)?;
        let (edits, version) = store.edits()?;
        let skipped = apply_edits(&mut kb, &edits);
        Ok(Current { kb, skipped, version })
    }
}

/// Fits the verifier of each engine sent, or only of the latest when
/// several wait; a failed fit leaves the previous verifier in use.
fn calibrate_latest(pending: Receiver<Arc<Engine>>) {
    while let Ok(mut engine) = pending.recv() {
        while let Ok(newer) = pending.try_recv() {
            engine = newer;
        }
        if let Err(e) = engine.calibrate() {
            tracing::warn!(error = %e, "cannot fit the changed knowledge base's verifier: the previous one stays");
        }
    }
}

/// The store's labelled turns as the verifier learns from them: what the
/// shopper asked (without requests for a human or small talk) and whether
/// the FAQ answered it; verdicts that say nothing (a rewritten draft) and
/// messages with nothing to ask are left out.
fn history(store: &Store, kb: &KnowledgeBase) -> Result<Vec<Labelled>, ServiceError> {
    Ok(store
        // Each source at most half: shoppers' ratings (a public route) never
        // crowd out the agents' verdicts.
        .judged(MAX_HISTORY / 2)?
        .into_iter()
        .filter_map(|j| {
            let right = match &j.judgement {
                Judgement::Rated { helpful } => Some(*helpful),
                Judgement::Draft { verdict, draft, sent } => draft_was_right(*verdict, draft, sent.as_deref()),
            }?;
            let text = substance(&j.question, &kb.lexicon)?;
            Some(Labelled { text, page: j.page, faq_id: j.faq_id, right })
        })
        .collect())
}

fn summary(kb: &KnowledgeBase, skipped_edits: Vec<String>, version: i64) -> KbSummary {
    KbSummary { faqs: kb.faqs.len(), phrasings: kb.phrasing_count(), skipped_edits, version }
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("faq {id}"))
}
