//! Decision: answer, clarify (猜你想问) or hand off to a human, from the
//! retrieval candidates, the text and the conversation's recent history.
//!
//! Pure code: no IO, no clock, no model. Depends on `retrieval` (candidate
//! type) and `kb` (the handoff lexicon's type).

mod calibration;
mod escalation;
mod followup;
mod smalltalk;
mod verifier;

use serde::{Deserialize, Serialize};

pub use calibration::Calibration;
pub use escalation::escalation;
pub use followup::is_follow_up;
pub use smalltalk::{small_talk, substance};
pub use verifier::{Confusion, GroupSummary, GroupVerifier, KbCalibration, Logistic, Sample, ScriptGroup};

use crate::kb::Lexicon;
use crate::retrieval::Candidate;
use crate::text::Analyzer;

/// Thresholds and calibration ([`crate::config::Config`]'s `[decision]`).
/// With `kb_calibration` (default) each knowledge base fits its own verifier
/// and thresholds for `target_precision`; `answer_threshold`,
/// `clarify_threshold` and `calibration` apply where it has none (too few
/// phrasings to fit, or switched off). Their defaults are what `xiaoer
/// calibrate` fitted for a 0.95 auto-answer precision on ant-dev + bq-dev +
/// the sample store's queries (README).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionConfig {
    /// Fit a verifier per knowledge base (and script group) when it is indexed.
    pub kb_calibration: bool,
    /// Auto-answer precision the per-knowledge-base thresholds aim for.
    pub target_precision: f32,
    /// Calibrated confidence needed to answer automatically.
    pub answer_threshold: f32,
    /// Below the answer threshold but at least this: offer choices.
    pub clarify_threshold: f32,
    /// Consecutive clarify turns after which the next unresolved turn goes to a human.
    pub max_unresolved_turns: u32,
    /// Number of 猜你想问 choices (default 3).
    pub choices: usize,
    pub calibration: Calibration,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            kb_calibration: true,
            target_precision: 0.95,
            answer_threshold: 0.874,
            clarify_threshold: 0.131,
            max_unresolved_turns: 2,
            choices: 3,
            calibration: Calibration::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Answer,
    Clarify,
    Handoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Confidence above the answer threshold.
    Confident,
    /// Several FAQs plausible: the shopper picks.
    Ambiguous,
    /// Nothing matched well enough.
    NoConfidentMatch,
    /// 转人工, "human", "agent"…
    HumanRequested,
    /// 投诉, 差评, 12315…
    Complaint,
    /// Insults, repeated exclamation marks, angry emoji.
    Anger,
    /// Too many clarify turns in a row.
    Unresolved,
    /// The conversation is already with a human.
    WaitingForAgent,
    /// Greetings, thanks, goodbyes…: the store's small-talk reply.
    SmallTalk,
    /// The shopper asks about their own order (到哪了, 钱呢…): an agent looks it up.
    OrderLookup,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Answer, Action::Clarify, Action::Handoff];

    pub fn name(self) -> &'static str {
        match self {
            Action::Answer => "answer",
            Action::Clarify => "clarify",
            Action::Handoff => "handoff",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Self::ALL.into_iter().find(|a| a.name() == text)
    }
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Confident,
        Reason::Ambiguous,
        Reason::NoConfidentMatch,
        Reason::HumanRequested,
        Reason::Complaint,
        Reason::Anger,
        Reason::Unresolved,
        Reason::WaitingForAgent,
        Reason::SmallTalk,
        Reason::OrderLookup,
    ];

    pub fn parse(text: &str) -> Option<Reason> {
        Self::ALL.into_iter().find(|r| r.name() == text)
    }

    pub fn name(self) -> &'static str {
        match self {
            Reason::Confident => "confident",
            Reason::Ambiguous => "ambiguous",
            Reason::NoConfidentMatch => "no_confident_match",
            Reason::HumanRequested => "human_requested",
            Reason::Complaint => "complaint",
            Reason::Anger => "anger",
            Reason::Unresolved => "unresolved",
            Reason::WaitingForAgent => "waiting_for_agent",
            Reason::SmallTalk => "small_talk",
            Reason::OrderLookup => "order_lookup",
        }
    }
}

/// What to do with one shopper message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    /// The FAQ answered with (position in the KB).
    pub faq: Option<usize>,
    /// Calibrated probability that the top candidate is right.
    pub confidence: f32,
    /// FAQs offered as choices (clarify) or drafted for the agent (handoff).
    pub choices: Vec<usize>,
    /// The small-talk kind answered (position in `lexicon.smalltalk`).
    pub small_talk: Option<usize>,
}

/// Calibrated confidence in the top candidate and the thresholds it is judged by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    pub value: f32,
    pub answer_at: f32,
    pub clarify_at: f32,
}

impl Confidence {
    /// Whether the bot answers on its own at this confidence.
    pub fn answers(&self) -> bool {
        self.value >= self.answer_at
    }

    /// By the knowledge base's verifier for the message's script group when
    /// there is one (`evidence` is None without candidates), else by the
    /// configured calibration and thresholds.
    pub fn judge(
        verifier: Option<&GroupVerifier>,
        evidence: Option<&[f32]>,
        candidates: &[Candidate],
        cfg: &DecisionConfig,
    ) -> Confidence {
        match verifier {
            Some(v) => Confidence {
                value: evidence.map_or(0.0, |e| v.confidence(e)),
                answer_at: v.answer_threshold,
                clarify_at: v.clarify_threshold,
            },
            None => Confidence {
                value: cfg.calibration.confidence(candidates),
                answer_at: cfg.answer_threshold,
                clarify_at: cfg.clarify_threshold,
            },
        }
    }
}

/// Decides for `text` (and its cleaned form `cleaned`, without pasted
/// order cards, which requests and intents are read from) given its ranked
/// `candidates` (distinct FAQs, best first), the confidence in the first,
/// and the number of consecutive clarify turns before it.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    text: &str,
    cleaned: &str,
    candidates: &[Candidate],
    judged: Confidence,
    unresolved_turns: u32,
    lexicon: &Lexicon,
    analyzer: &Analyzer,
    cfg: &DecisionConfig,
) -> Decision {
    let confidence = judged.value;
    let top: Vec<usize> = candidates.iter().take(cfg.choices).map(|c| c.faq).collect();
    let decision =
        |action, reason, faq| Decision { action, reason, faq, confidence, choices: top.clone(), small_talk: None };
    // Before escalation: "are you human?" is small talk, not a request.
    if let Some(kind) = small_talk(text, lexicon) {
        return Decision {
            small_talk: Some(kind),
            choices: Vec::new(),
            ..decision(Action::Answer, Reason::SmallTalk, None)
        };
    }
    if let Some(reason) = escalation(cleaned, lexicon, analyzer) {
        return decision(Action::Handoff, reason, None);
    }
    match candidates.first() {
        Some(best) if judged.answers() => decision(Action::Answer, Reason::Confident, Some(best.faq)),
        _ if unresolved_turns >= cfg.max_unresolved_turns => decision(Action::Handoff, Reason::Unresolved, None),
        Some(_) if confidence >= judged.clarify_at => decision(Action::Clarify, Reason::Ambiguous, None),
        _ => decision(Action::Handoff, Reason::NoConfidentMatch, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(faq: usize, score: f32) -> Candidate {
        Candidate { faq, score, bm25: 0.0, cosine: score, phrasing: faq }
    }

    fn judge(candidates: &[Candidate]) -> Confidence {
        Confidence::judge(None, None, candidates, &cfg())
    }

    fn lexicon() -> Lexicon {
        Lexicon {
            human: vec!["转人工".into(), "human".into()],
            complaint: vec!["投诉".into(), "12315".into()],
            anger: vec!["垃圾".into()],
            order_lookup: vec!["快递+到哪".into()],
            smalltalk: Vec::new(),
        }
    }

    fn cfg() -> DecisionConfig {
        DecisionConfig {
            kb_calibration: false,
            target_precision: 0.95,
            answer_threshold: 0.8,
            clarify_threshold: 0.3,
            max_unresolved_turns: 2,
            choices: 3,
            calibration: Calibration { score_weight: 10.0, margin_weight: 20.0, bias: -10.0 },
        }
    }

    #[test]
    fn clear_winner_is_answered() {
        let c = [cand(4, 1.1), cand(7, 0.8)];
        let d = decide("运费险怎么赔", "运费险怎么赔", &c, judge(&c), 0, &lexicon(), Analyzer::plain(), &cfg());
        assert_eq!((d.action, d.reason, d.faq), (Action::Answer, Reason::Confident, Some(4)));
        assert!(d.confidence > 0.8);
    }

    #[test]
    fn close_candidates_are_offered_as_choices() {
        let c = [cand(1, 0.97), cand(2, 0.96), cand(3, 0.95), cand(9, 0.5)];
        let d = decide("退货", "退货", &c, judge(&c), 0, &lexicon(), Analyzer::plain(), &cfg());
        assert_eq!((d.action, d.reason), (Action::Clarify, Reason::Ambiguous));
        assert_eq!(d.choices, vec![1, 2, 3]);
    }

    #[test]
    fn weak_or_no_match_goes_to_a_human() {
        let c = [cand(1, 0.5), cand(2, 0.49)];
        let d = decide("你们老板是谁", "你们老板是谁", &c, judge(&c), 0, &lexicon(), Analyzer::plain(), &cfg());
        assert_eq!((d.action, d.reason), (Action::Handoff, Reason::NoConfidentMatch));
        let d = decide("😊", "😊", &[], judge(&[]), 0, &lexicon(), Analyzer::plain(), &cfg());
        assert_eq!((d.action, d.reason), (Action::Handoff, Reason::NoConfidentMatch));
    }

    #[test]
    fn explicit_requests_complaints_and_anger_escalate_even_when_confident() {
        let c = [cand(4, 1.1), cand(7, 0.8)];
        for (text, reason) in [
            ("转人工", Reason::HumanRequested),
            ("轉人工！", Reason::HumanRequested),
            ("I want a HUMAN agent", Reason::HumanRequested),
            ("我要投诉你们", Reason::Complaint),
            ("再不处理我打12315", Reason::Complaint),
            ("什么垃圾店", Reason::Anger),
            ("到底什么时候发货！！！", Reason::Anger),
            ("还不发货😡", Reason::Anger),
            ("我的快递到哪了", Reason::OrderLookup),
            ("单号 SF1234567890 怎么没动", Reason::OrderLookup),
        ] {
            let d = decide(text, text, &c, judge(&c), 0, &lexicon(), Analyzer::plain(), &cfg());
            assert_eq!((d.action, d.reason), (Action::Handoff, reason), "{text}");
        }
    }

    #[test]
    fn repeated_clarify_turns_hand_off() {
        let c = [cand(1, 0.97), cand(2, 0.96)];
        assert_eq!(
            decide("退货", "退货", &c, judge(&c), 1, &lexicon(), Analyzer::plain(), &cfg()).action,
            Action::Clarify
        );
        let d = decide("退货", "退货", &c, judge(&c), 2, &lexicon(), Analyzer::plain(), &cfg());
        assert_eq!((d.action, d.reason), (Action::Handoff, Reason::Unresolved));
    }
}
