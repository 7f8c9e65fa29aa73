//! Learning: unanswered questions mined into new-FAQ proposals, drafts that
//! agents sent proposed as phrasings, and the operator's approve / dismiss.

use std::sync::Arc;

use super::ServiceError;
use super::knowledge::{KbSummary, Knowledge};
use super::turns::{Context, read_message};
use crate::embed::Role;
use crate::gaps::{cluster, near_any};
use crate::kb::FaqInput;
use crate::retrieval::RetrievalError;
use crate::store::{Actor, NewProposal, Proposal, ProposalKind, ProposalStatus, Store};

/// Unanswered questions this close (cosine to the cluster centroid) are one gap.
const GAP_SIMILARITY: f32 = 0.9;

pub struct Learning {
    knowledge: Arc<Knowledge>,
    store: Arc<Store>,
}

impl Learning {
    pub fn new(knowledge: Arc<Knowledge>, store: Arc<Store>) -> Learning {
        Learning { knowledge, store }
    }

    /// The shopper's `question` was answered by FAQ `faq_id` (an agent sent
    /// its draft): propose it as a phrasing unless the FAQ has it already.
    pub fn propose_phrasing(&self, faq_id: String, question: String) -> Result<(), ServiceError> {
        let engine = self.knowledge.engine();
        if engine.retriever.kb().faq(&faq_id).is_some_and(|f| f.phrasings().any(|p| p == question)) {
            return Ok(());
        }
        Ok(self.store.add_proposal(&NewProposal {
            kind: ProposalKind::Similar,
            faq_id: Some(faq_id),
            text: question.clone(),
            count: 1,
            examples: vec![question],
        })?)
    }

    /// Clusters the questions in `[from, to)` that ended in clarify or a
    /// no-match handoff and stores each group of two or more as a pending
    /// new-FAQ proposal; returns the pending new-FAQ proposals. Never
    /// proposed: questions the live knowledge base now answers on its own
    /// (an approved gap among them), questions an earlier proposal already
    /// holds, and groups close to an earlier proposal, whether pending,
    /// approved or dismissed. (Small talk and handoff requests never reach
    /// here: they are not unanswered questions.)
    pub fn mine_gaps(&self, from: i64, to: i64) -> Result<Vec<Proposal>, ServiceError> {
        let engine = self.knowledge.engine();
        let embedder = engine.retriever.embedder().ok_or(RetrievalError::NoModel("gap mining"))?;
        let mut earlier = Vec::new();
        for status in [ProposalStatus::Pending, ProposalStatus::Approved, ProposalStatus::Dismissed] {
            earlier.extend(self.store.proposals(status)?.into_iter().filter(|p| p.kind == ProposalKind::NewFaq));
        }
        let held = |q: &str| earlier.iter().any(|p| p.text == q || p.examples.iter().any(|e| e == q));
        let no_context = Context::default();
        let mut questions = Vec::new();
        for q in self.store.unanswered_questions(from, to)? {
            if held(&q) {
                continue;
            }
            let reading = read_message(&engine, &q, &no_context, None, 5)?;
            if !reading.judged.answers() {
                questions.push(q);
            }
        }
        let embed = |texts: Vec<&str>| match texts.is_empty() {
            true => Ok(Vec::new()),
            false => embedder.embed(&texts, Role::Query).map_err(RetrievalError::from),
        };
        let vectors = embed(questions.iter().map(String::as_str).collect())?;
        let earlier_vectors = embed(earlier.iter().map(|p| p.text.as_str()).collect())?;
        for c in cluster(&vectors, GAP_SIMILARITY, 2) {
            if near_any(&vectors[c.representative], &earlier_vectors, GAP_SIMILARITY) {
                continue;
            }
            let mut examples: Vec<String> = Vec::new();
            for &m in &c.members {
                if !examples.contains(&questions[m]) && examples.len() < 5 {
                    examples.push(questions[m].clone());
                }
            }
            self.store.add_proposal(&NewProposal {
                kind: ProposalKind::NewFaq,
                faq_id: None,
                text: questions[c.representative].clone(),
                count: c.members.len() as i64,
                examples,
            })?;
        }
        let pending = self.store.proposals(ProposalStatus::Pending)?;
        Ok(pending.into_iter().filter(|p| p.kind == ProposalKind::NewFaq).collect())
    }

    pub fn proposals(&self, status: ProposalStatus) -> Result<Vec<Proposal>, ServiceError> {
        Ok(self.store.proposals(status)?)
    }

    /// Approves a proposal: a learned phrasing joins its FAQ; a mined gap
    /// becomes the FAQ `faq_id` written by the operator (`entry`).
    pub fn approve(
        &self,
        id: i64,
        faq_id: Option<&str>,
        entry: Option<FaqInput>,
        actor: &Actor,
    ) -> Result<KbSummary, ServiceError> {
        let p = self.store.proposal(id)?;
        if p.status != ProposalStatus::Pending {
            return Err(ServiceError::Conflict(format!("proposal {id} was already decided")));
        }
        let summary = match (p.kind, p.faq_id.as_deref(), faq_id, entry) {
            (ProposalKind::Similar, Some(target), _, _) => self.knowledge.add_similar(target, &p.text, actor)?,
            (ProposalKind::NewFaq, _, Some(new_id), Some(entry)) => {
                self.knowledge.edit_faq(new_id, Some(entry), actor)?
            }
            _ => {
                return Err(ServiceError::Invalid(
                    "a new-FAQ proposal needs `faq_id` and `entry` (with its answer)".into(),
                ));
            }
        };
        self.store.decide_proposal(id, ProposalStatus::Approved)?;
        Ok(summary)
    }

    pub fn dismiss(&self, id: i64) -> Result<(), ServiceError> {
        Ok(self.store.decide_proposal(id, ProposalStatus::Dismissed)?)
    }
}
