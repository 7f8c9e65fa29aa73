//! The agent desk's service figures (README: "Service metrics"), overall
//! and per agent, for the handoffs opened in a window; and the shopper's
//! satisfaction survey they include. The store reads the tickets' facts in
//! a few queries; `figures` is pure arithmetic over them.

use std::collections::BTreeMap;

use super::db::{OptionalExtension, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Store, StoreError, Verdict, conversation};

/// Service figures over a window; a rate or an average with nothing to
/// count is absent (null), never a made-up 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct DeskFigures {
    /// Handoffs (tickets) opened in the window; per agent: those the agent
    /// held, answered or closed.
    pub handoffs: i64,
    /// Handoffs an agent replied to.
    pub answered: i64,
    /// Handoffs closed.
    pub closed: i64,
    /// Average seconds from the handoff to the first agent reply (per agent:
    /// the replies that were first).
    pub first_response_secs: Option<f64>,
    /// Average seconds from the first agent reply to closing (per agent: the
    /// handoffs the agent closed).
    pub handling_secs: Option<f64>,
    /// Of the closed handoffs, the share an agent answered and closed without
    /// a transfer (per agent: of those the agent closed).
    pub first_contact_resolution_rate: Option<f64>,
    /// Of the handoffs, the share transferred at least once: to another agent
    /// or back to the queue (per agent: of those the agent held, the share
    /// the agent transferred away).
    pub transfer_rate: Option<f64>,
    /// Drafts reviewed in the window (accepted, edited or rejected).
    pub drafts_reviewed: i64,
    /// Of those, the share sent as drafted.
    pub draft_acceptance_rate: Option<f64>,
    /// Satisfaction surveys answered.
    pub surveys: i64,
    /// `surveys / closed`.
    pub survey_response_rate: Option<f64>,
    /// Average survey score, 1–5.
    pub satisfaction: Option<f64>,
}

impl DeskFigures {
    /// Every figure by the name `/metrics` gives it, counts included.
    pub fn named(&self) -> [(&'static str, Option<f64>); 12] {
        let count = |n: i64| Some(n as f64);
        [
            ("handoffs", count(self.handoffs)),
            ("answered", count(self.answered)),
            ("closed", count(self.closed)),
            ("first_response_seconds", self.first_response_secs),
            ("handling_seconds", self.handling_secs),
            ("first_contact_resolution_ratio", self.first_contact_resolution_rate),
            ("transfer_ratio", self.transfer_rate),
            ("drafts_reviewed", count(self.drafts_reviewed)),
            ("draft_acceptance_ratio", self.draft_acceptance_rate),
            ("surveys", count(self.surveys)),
            ("survey_response_ratio", self.survey_response_rate),
            ("satisfaction_score", self.satisfaction),
        ]
    }
}

/// One agent's figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentFigures {
    pub agent_id: i64,
    pub display_name: String,
    #[serde(flatten)]
    pub figures: DeskFigures,
}

/// What happened to one handoff.
#[derive(Debug, Clone, Default)]
pub(super) struct TicketFacts {
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    /// None: closed with the API key (or open).
    pub closed_by: Option<i64>,
    /// When, and by whom, the first agent reply came.
    pub first_reply: Option<(i64, Option<i64>)>,
    /// Owner changes while it was open: (from, to); None is the queue.
    pub moves: Vec<(Option<i64>, Option<i64>)>,
    pub survey: Option<i64>,
}

impl TicketFacts {
    fn transferred_by(&self, agent: i64) -> bool {
        self.moves.iter().any(|&(from, to)| from == Some(agent) && to != Some(agent))
    }

    fn transferred(&self) -> bool {
        self.moves.iter().any(|&(from, to)| from.is_some() && from != to)
    }

    /// Every agent who held, answered or closed it.
    fn agents(&self) -> Vec<i64> {
        let mut all: Vec<i64> = self
            .moves
            .iter()
            .flat_map(|&(from, to)| [from, to])
            .chain([self.closed_by, self.first_reply.and_then(|(_, by)| by)])
            .flatten()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// Sums behind one `DeskFigures`.
#[derive(Default)]
struct Tally {
    handoffs: i64,
    answered: i64,
    response_secs: i64,
    closed: i64,
    handled: i64,
    handling_secs: i64,
    resolved_first: i64,
    transferred: i64,
    reviewed: i64,
    accepted: i64,
    surveys: i64,
    score: i64,
}

impl Tally {
    fn first_reply(&mut self, t: &TicketFacts, at: i64) {
        self.answered += 1;
        self.response_secs += at - t.opened_at;
    }

    fn close(&mut self, t: &TicketFacts, at: i64) {
        self.closed += 1;
        if let Some((replied, _)) = t.first_reply {
            self.handled += 1;
            self.handling_secs += at - replied;
            self.resolved_first += i64::from(!t.transferred());
        }
        if let Some(score) = t.survey {
            self.surveys += 1;
            self.score += score;
        }
    }

    fn figures(&self) -> DeskFigures {
        let ratio = |n: i64, d: i64| (d > 0).then(|| n as f64 / d as f64);
        DeskFigures {
            handoffs: self.handoffs,
            answered: self.answered,
            closed: self.closed,
            first_response_secs: ratio(self.response_secs, self.answered),
            handling_secs: ratio(self.handling_secs, self.handled),
            first_contact_resolution_rate: ratio(self.resolved_first, self.closed),
            transfer_rate: ratio(self.transferred, self.handoffs),
            drafts_reviewed: self.reviewed,
            draft_acceptance_rate: ratio(self.accepted, self.reviewed),
            surveys: self.surveys,
            survey_response_rate: ratio(self.surveys, self.closed),
            satisfaction: ratio(self.score, self.surveys),
        }
    }
}

/// The figures overall and per agent id, from each handoff's facts and
/// each draft verdict (reviewing agent, verdict).
pub(super) fn figures(
    tickets: &[TicketFacts],
    verdicts: &[(Option<i64>, Verdict)],
) -> (DeskFigures, BTreeMap<i64, DeskFigures>) {
    let mut all = Tally::default();
    let mut per: BTreeMap<i64, Tally> = BTreeMap::new();
    for t in tickets {
        all.handoffs += 1;
        all.transferred += i64::from(t.transferred());
        for agent in t.agents() {
            let a = per.entry(agent).or_default();
            a.handoffs += 1;
            a.transferred += i64::from(t.transferred_by(agent));
        }
        if let Some((at, by)) = t.first_reply {
            all.first_reply(t, at);
            if let Some(by) = by {
                per.entry(by).or_default().first_reply(t, at);
            }
        }
        if let Some(at) = t.closed_at {
            all.close(t, at);
            if let Some(by) = t.closed_by {
                per.entry(by).or_default().close(t, at);
            }
        }
    }
    for &(agent, verdict) in verdicts {
        for tally in std::iter::once(&mut all).chain(agent.map(|a| per.entry(a).or_default())) {
            tally.reviewed += 1;
            tally.accepted += i64::from(verdict == Verdict::Accepted);
        }
    }
    (all.figures(), per.into_iter().map(|(id, t)| (id, t.figures())).collect())
}

impl Store {
    /// The desk's figures for the handoffs opened in `[from, to)` (and the
    /// draft verdicts given in it), overall and per agent.
    pub fn desk_figures(&self, from: i64, to: i64) -> Result<(DeskFigures, Vec<AgentFigures>), StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare(
            "SELECT t.id, t.created_at, t.closed_at, t.closed_by, m.created_at, m.agent_id, s.score
             FROM tickets t
             LEFT JOIN surveys s ON s.ticket_id = t.id
             LEFT JOIN messages m ON m.id = (
                 SELECT id FROM messages WHERE conversation_id = t.conversation_id AND role = 'agent'
                   AND created_at >= t.created_at ORDER BY id LIMIT 1)
             WHERE t.created_at >= ?1 AND t.created_at < ?2",
        )?;
        let mut tickets: BTreeMap<i64, TicketFacts> = stmt
            .query_map(params![from, to], |r| {
                let replied: Option<i64> = r.get(4)?;
                Ok((
                    r.get(0)?,
                    TicketFacts {
                        opened_at: r.get(1)?,
                        closed_at: r.get(2)?,
                        closed_by: r.get(3)?,
                        first_reply: replied.map(|at| Ok::<_, super::db::DbError>((at, r.get(5)?))).transpose()?,
                        moves: Vec::new(),
                        survey: r.get(6)?,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT t.id, a.from_id, a.to_id FROM tickets t
             JOIN assignments a ON a.conversation_id = t.conversation_id
               AND a.created_at >= t.created_at AND (t.closed_at IS NULL OR a.created_at <= t.closed_at)
             WHERE t.created_at >= ?1 AND t.created_at < ?2 ORDER BY a.id",
        )?;
        let moves = stmt.query_map(params![from, to], |r| Ok((r.get::<i64>(0)?, r.get(1)?, r.get(2)?)))?;
        for m in moves {
            let (ticket, from_id, to_id) = m?;
            if let Some(t) = tickets.get_mut(&ticket) {
                t.moves.push((from_id, to_id));
            }
        }
        let mut stmt =
            conn.prepare("SELECT agent_id, verdict FROM feedback WHERE created_at >= ?1 AND created_at < ?2")?;
        let verdicts =
            stmt.query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        let tickets: Vec<TicketFacts> = tickets.into_values().collect();
        let (all, per) = figures(&tickets, &verdicts);
        let mut agents = Vec::with_capacity(per.len());
        for (agent_id, figures) in per {
            let display_name =
                conn.query_row("SELECT display_name FROM agents WHERE id = ?1", [agent_id], |r| r.get(0))?;
            agents.push(AgentFigures { agent_id, display_name, figures });
        }
        Ok((all, agents))
    }

    /// The shopper's survey (score 1–5, optional comment) of the conversation's
    /// latest handoff, once an agent has closed it; one answer per handoff.
    pub fn answer_survey(&self, conversation_id: &str, score: i64, comment: Option<&str>) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let tx = conn.transaction()?;
        conversation(&tx, conversation_id)?;
        let ticket: Option<(i64, Option<i64>)> = tx
            .query_row(
                "SELECT id, closed_at FROM tickets WHERE conversation_id = ?1 ORDER BY id DESC LIMIT 1",
                [conversation_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let ticket = match ticket {
            None => return Err(StoreError::Conflict("only a conversation an agent handled has a survey".into())),
            Some((_, None)) => {
                return Err(StoreError::Conflict("the survey opens when the agent closes the conversation".into()));
            }
            Some((id, Some(_))) => id,
        };
        let inserted = tx.execute(
            "INSERT INTO surveys (ticket_id, score, comment, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![ticket, score, comment, self.now()],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict("the survey was already answered".into()));
        }
        tx.commit()?;
        Ok(())
    }
}

impl Store {
    /// Whether the conversation's latest handoff is closed and its survey unanswered.
    pub fn survey_pending(&self, conversation_id: &str) -> Result<bool, StoreError> {
        let pending: Option<bool> = self
            .read()?
            .query_row(
                "SELECT t.closed_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.ticket_id = t.id)
                 FROM tickets t WHERE t.conversation_id = ?1 ORDER BY t.id DESC LIMIT 1",
                [conversation_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(pending.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(opened_at: i64) -> TicketFacts {
        TicketFacts { opened_at, ..TicketFacts::default() }
    }

    #[test]
    fn figures_follow_their_definitions() {
        // 1: agent 1 replies after 30 s, closes 300 s later, survey 5.
        let one = TicketFacts {
            first_reply: Some((130, Some(1))),
            moves: vec![(None, Some(1))],
            closed_at: Some(430),
            closed_by: Some(1),
            survey: Some(5),
            ..ticket(100)
        };
        // 2: agent 1 replies after 90 s, transfers to agent 2, who closes 100 s after the reply; no survey.
        let two = TicketFacts {
            first_reply: Some((290, Some(1))),
            moves: vec![(None, Some(1)), (Some(1), Some(2))],
            closed_at: Some(390),
            closed_by: Some(2),
            ..ticket(200)
        };
        // 3: still waiting.
        let three = ticket(300);
        let verdicts = [(Some(1), Verdict::Accepted), (Some(2), Verdict::Edited), (None, Verdict::Accepted)];
        let (all, per) = figures(&[one, two, three], &verdicts);
        assert_eq!(
            all,
            DeskFigures {
                handoffs: 3,
                answered: 2,
                closed: 2,
                first_response_secs: Some(60.0),
                handling_secs: Some(200.0),
                first_contact_resolution_rate: Some(0.5),
                transfer_rate: Some(1.0 / 3.0),
                drafts_reviewed: 3,
                draft_acceptance_rate: Some(2.0 / 3.0),
                surveys: 1,
                survey_response_rate: Some(0.5),
                satisfaction: Some(5.0),
            }
        );
        let (a1, a2) = (&per[&1], &per[&2]);
        assert_eq!((a1.handoffs, a1.answered, a1.closed), (2, 2, 1));
        assert_eq!(a1.first_response_secs, Some(60.0));
        assert_eq!(a1.transfer_rate, Some(0.5), "agent 1 transferred one of the two it held");
        assert_eq!(
            (a1.handling_secs, a1.first_contact_resolution_rate, a1.satisfaction),
            (Some(300.0), Some(1.0), Some(5.0))
        );
        assert_eq!((a2.handoffs, a2.answered, a2.closed), (1, 0, 1));
        assert_eq!(a2.first_response_secs, None, "agent 2 sent no first reply");
        assert_eq!(a2.transfer_rate, Some(0.0), "receiving a transfer is not transferring");
        assert_eq!(
            a2.first_contact_resolution_rate,
            Some(0.0),
            "a transferred handoff is not resolved at first contact"
        );
        assert_eq!((a2.survey_response_rate, a2.satisfaction), (Some(0.0), None));
        assert_eq!((a2.drafts_reviewed, a2.draft_acceptance_rate), (1, Some(0.0)));
    }

    #[test]
    fn nothing_to_count_is_absent_not_zero() {
        let (all, per) = figures(&[], &[]);
        assert_eq!(all, DeskFigures::default());
        assert!(all.first_response_secs.is_none() && all.satisfaction.is_none() && per.is_empty());
    }
}
