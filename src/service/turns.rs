//! Shopper turns: validate a message, retrieve with the conversation's
//! context, decide, and record the turn with the bot's reply.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::availability::{Offline, Presence, ServiceHours, offline};
use super::knowledge::Knowledge;
use super::{ServiceError, message_text};
use crate::config::Config;
use crate::decision::{Action, Confidence, Reason, ScriptGroup, decide, is_follow_up};
use crate::engine::Engine;
use crate::index::Filter;
use crate::retrieval::{Candidate, ProductContext};
use crate::store::{ContactKind, ConversationStatus, DecisionRecord, Message, Store, TurnRecord};
use crate::text::{clean, detect_locale};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Continue this conversation; omitted, or closed: a new one is started.
    pub conversation_id: Option<String>,
    /// What the shopper wrote (1–2000 characters).
    pub text: String,
    /// `zh`, `en`, `ja`, …; omitted: guessed from the text.
    pub locale: Option<String>,
    /// The product page the shopper is on.
    pub product_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Choice {
    pub faq_id: String,
    pub question: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnswerResponse {
    /// The conversation the turn was recorded in: a new id when none was
    /// given or the given one had been closed.
    pub conversation_id: String,
    pub action: Action,
    /// The reply shown to the shopper (answer text, clarify prompt or handoff notice).
    pub answer: Option<String>,
    /// The FAQ answered with (`answer` only).
    pub faq_id: Option<String>,
    /// Calibrated probability that the best FAQ is right.
    pub confidence: f32,
    /// 猜你想问 (clarify) choices.
    pub choices: Vec<Choice>,
    pub reason: Reason,
    /// Id to rate an automatic answer with (`POST /v1/decisions/{id}/rating`).
    pub decision_id: Option<i64>,
    /// A handoff while no human can answer (outside `service.hours`, or no
    /// agent present): the shopper may leave a message with contact details
    /// (`POST /v1/conversations/{id}/leave-message`). Absent otherwise, and
    /// always for stores without service hours.
    pub offline: Option<Offline>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub kind: ContactKind,
    pub value: String,
}

/// A message left for the agents while none can answer.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveMessage {
    pub contact: Contact,
    /// What the shopper wants the agent to know (1–2000 characters).
    pub text: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeftMessage {
    pub message: Message,
    /// The confirmation shown to the shopper.
    pub notice: String,
}

/// A conversation as its shopper may read it again (the widget after a reload).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShopperTranscript {
    pub conversation_id: String,
    pub status: ConversationStatus,
    /// Shopper, bot and agent messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether a message with contact details is waiting for the agents.
    pub message_left: bool,
    /// While waiting for an agent and none can answer: why, and when service resumes.
    pub offline: Option<Offline>,
    /// An agent closed the conversation and the shopper has not rated the service yet.
    pub survey_pending: bool,
}

/// The shopper's satisfaction survey, offered when an agent closes the conversation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: i64,
    /// Optional words for the store (at most 500 characters).
    #[serde(default)]
    pub comment: Option<String>,
}

/// Longest survey comment kept.
const MAX_COMMENT_CHARS: usize = 500;

/// What the conversation was last about.
#[derive(Default)]
pub(super) struct Context<'a> {
    pub question: Option<&'a str>,
    pub faq_id: Option<&'a str>,
}

pub struct Turns {
    config: Config,
    knowledge: Arc<Knowledge>,
    store: Arc<Store>,
    hours: Option<ServiceHours>,
    presence: Arc<Presence>,
}

impl Turns {
    pub fn new(
        config: Config,
        knowledge: Arc<Knowledge>,
        store: Arc<Store>,
        hours: Option<ServiceHours>,
        presence: Arc<Presence>,
    ) -> Turns {
        Turns { config, knowledge, store, hours, presence }
    }

    /// Whether no human can answer now, and when service resumes as a
    /// shopper of `locale` reads it.
    fn unavailable(&self, locale: &str) -> Option<Unavailable> {
        let hours = self.hours.as_ref()?;
        let now = self.store.now();
        let offline = offline(Some(hours), &self.presence, now)?;
        let back_at = offline.resumes_at.map(|at| hours.clock(at, now, is_zh(locale)));
        Some(Unavailable { offline, back_at })
    }

    /// Answers one shopper message. Work that has not reached the database
    /// by `deadline` is abandoned with `Busy`, so a timed-out request has
    /// changed nothing.
    pub fn answer(&self, req: &AnswerRequest, deadline: Instant) -> Result<AnswerResponse, ServiceError> {
        let text = message_text(&req.text, self.config.server.max_text_chars)?;
        if let Some(l) = &req.locale
            && (l.is_empty() || l.len() > 16 || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(ServiceError::Invalid(format!("`locale` {l:?} is not a locale tag such as zh or en-US")));
        }
        let engine = self.knowledge.engine();
        let kb = engine.retriever.kb();
        if let Some(p) = &req.product_id
            && !kb.products.iter().any(|x| &x.id == p)
        {
            return Err(ServiceError::Invalid(format!("unknown product_id {p:?}")));
        }
        let locale = req.locale.clone().unwrap_or_else(|| detect_locale(text).to_string());
        let existing = match &req.conversation_id {
            Some(id) => Some(self.store.conversation(id)?),
            None => None,
        };
        // A closed conversation is over: the shopper's next message starts a new one.
        let conversation = match existing.filter(|c| c.status != ConversationStatus::Closed) {
            Some(c) => c,
            None => {
                self.store.create_conversation(&uuid::Uuid::new_v4().to_string(), &locale, req.product_id.as_deref())?
            }
        };
        let mut turn = TurnRecord {
            conversation_id: conversation.id.clone(),
            text: text.to_string(),
            locale: locale.clone(),
            product_id: req.product_id.clone(),
            topic_question: None,
            decision: None,
            bot_reply: None,
            handoff_reason: None,
            unresolved: false,
        };
        let product = req.product_id.as_deref().or(conversation.product_id.as_deref());
        let cfg = &self.config.decision;
        let context =
            Context { question: conversation.last_question.as_deref(), faq_id: conversation.last_faq_id.as_deref() };
        let reading = read_message(&engine, text, &context, product, cfg.choices.max(5))?;
        let candidates = reading.candidates;
        let decision = decide(
            text,
            &reading.text,
            &candidates,
            reading.judged,
            conversation.unresolved_turns,
            &kb.lexicon,
            engine.retriever.analyzer(),
            cfg,
        );
        if conversation.status == ConversationStatus::Handoff && decision.action != Action::Answer {
            // Waiting for a human: the message is stored for the agent, and the
            // shopper is told where they stand; the bot still answers what it can.
            let unavailable = self.unavailable(&locale);
            turn.bot_reply = Some(match &unavailable {
                Some(u) => offline_notice(&locale, u),
                None => waiting_notice(&locale, self.store.tickets_ahead(&conversation.id)?),
            });
            check_deadline(deadline)?;
            self.store.record_turn(&turn)?;
            return Ok(AnswerResponse {
                conversation_id: conversation.id,
                action: Action::Handoff,
                answer: turn.bot_reply,
                faq_id: None,
                confidence: decision.confidence,
                choices: Vec::new(),
                reason: Reason::WaitingForAgent,
                decision_id: None,
                offline: unavailable.map(|u| u.offline),
            });
        }
        let faq_id = decision.faq.map(|f| kb.faqs[f].id.clone());
        let choices: Vec<Choice> = match decision.action {
            Action::Clarify => decision
                .choices
                .iter()
                .map(|&f| Choice {
                    faq_id: kb.faqs[f].id.clone(),
                    question: question_for(&kb.faqs[f], &locale).to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let unavailable = match decision.action {
            Action::Handoff => self.unavailable(&locale),
            _ => None,
        };
        let reply = match (decision.action, decision.small_talk) {
            (Action::Answer, Some(k)) => Some(kb.lexicon.smalltalk[k].reply_for(&locale).to_string()),
            (Action::Answer, None) => {
                decision.faq.and_then(|f| kb.faqs[f].answer_for(&locale)).map(|(_, a)| a.to_string())
            }
            (Action::Clarify, _) => Some(clarify_prompt(&locale).to_string()),
            (Action::Handoff, _) => Some(match &unavailable {
                Some(u) => offline_notice(&locale, u),
                None => handoff_notice(&locale, self.store.tickets_ahead(&conversation.id)?),
            }),
        };
        // Small talk is no topic a follow-up could refer to.
        turn.topic_question = match reading.restated {
            Some(restated) => Some(restated),
            // A follow-up with nothing before it ("这个孕妇能吃吗" on a product
            // page) is the conversation's first topic.
            None => ((!is_follow_up(text) || context.question.is_none()) && decision.reason != Reason::SmallTalk)
                .then(|| text.to_string()),
        };
        turn.unresolved = decision.action == Action::Clarify;
        turn.handoff_reason = (decision.action == Action::Handoff).then_some(decision.reason);
        turn.bot_reply = reply.clone();
        turn.decision = Some(DecisionRecord {
            action: decision.action,
            reason: decision.reason,
            faq_id: faq_id.clone(),
            confidence: decision.confidence,
            candidates_json: candidates_json(&engine, &candidates),
            choices: choices.iter().map(|c| c.faq_id.clone()).collect(),
        });
        check_deadline(deadline)?;
        let decision_id = self.store.record_turn(&turn)?;
        Ok(AnswerResponse {
            conversation_id: conversation.id,
            action: decision.action,
            answer: reply,
            faq_id,
            confidence: decision.confidence,
            choices,
            reason: decision.reason,
            decision_id,
            offline: unavailable.map(|u| u.offline),
        })
    }

    /// The shopper of a handed-off conversation leaves a message and how to
    /// reach them; the agents see it first in the queue.
    pub fn leave_message(&self, conversation_id: &str, req: &LeaveMessage) -> Result<LeftMessage, ServiceError> {
        let text = message_text(&req.text, self.config.server.max_text_chars)?;
        let contact = checked_contact(req.contact.kind, &req.contact.value).map_err(ServiceError::Invalid)?;
        let conversation = self.store.conversation(conversation_id)?;
        let message = self.store.leave_message(conversation_id, req.contact.kind, &contact, text)?;
        let back_at = self.unavailable(&conversation.locale).and_then(|u| u.back_at);
        let notice = match (is_zh(&conversation.locale), back_at) {
            (true, Some(at)) => format!("留言已收到，客服 {at} 上线后会第一时间联系您。"),
            (true, None) => "留言已收到，客服会尽快联系您。".to_string(),
            (false, Some(at)) => format!("Message received; an agent will contact you after {at}."),
            (false, None) => "Message received; an agent will contact you soon.".to_string(),
        };
        Ok(LeftMessage { message, notice })
    }

    /// The conversation as its shopper reads it again (whoever holds its id).
    pub fn transcript(&self, conversation_id: &str) -> Result<ShopperTranscript, ServiceError> {
        let t = self.store.transcript(conversation_id)?;
        let waiting = t.conversation.status == ConversationStatus::Handoff;
        let offline = match waiting {
            true => self.unavailable(&t.conversation.locale).map(|u| u.offline),
            false => None,
        };
        Ok(ShopperTranscript {
            conversation_id: t.conversation.id,
            status: t.conversation.status,
            message_left: self.store.message_left(conversation_id)?,
            messages: t.messages,
            offline,
            survey_pending: self.store.survey_pending(conversation_id)?,
        })
    }
}

impl Turns {
    /// The shopper of `conversation_id` rates one of its automatic answers.
    pub fn rate(&self, decision_id: i64, conversation_id: &str, helpful: bool) -> Result<(), ServiceError> {
        Ok(self.store.rate(decision_id, conversation_id, helpful)?)
    }

    /// The shopper answers the survey of the conversation an agent closed.
    pub fn answer_survey(&self, conversation_id: &str, answer: &SurveyAnswer) -> Result<(), ServiceError> {
        if !(1..=5).contains(&answer.score) {
            return Err(ServiceError::Invalid("`score` must be 1 to 5".into()));
        }
        let comment = answer.comment.as_deref().map(str::trim).filter(|c| !crate::kb::is_blank(c));
        if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
            return Err(ServiceError::Invalid(format!("`comment` is longer than {MAX_COMMENT_CHARS} characters")));
        }
        Ok(self.store.answer_survey(conversation_id, answer.score, comment)?)
    }
}

/// The contact as stored (spaces and dashes out of phone numbers), or why it is not one.
fn checked_contact(kind: ContactKind, value: &str) -> Result<String, String> {
    let value = value.trim();
    let ok = match kind {
        ContactKind::Phone => {
            let digits: String = value.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
            let (plus, rest) = digits.strip_prefix('+').map_or((false, digits.as_str()), |r| (true, r));
            let all_digits = !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit());
            let valid = all_digits
                && match plus {
                    true => (7..=15).contains(&rest.len()),
                    false => rest.len() == 11 && rest.starts_with('1'),
                };
            return valid
                .then_some(digits)
                .ok_or_else(|| "a phone number is 11 digits starting with 1, or + and 7–15 digits".to_string());
        }
        ContactKind::Email => {
            value.len() <= 254
                && value.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !value.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
                        && !domain.contains('@')
                })
        }
        ContactKind::Wangwang => {
            (2..=64).contains(&value.chars().count()) && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
    };
    ok.then(|| value.to_string()).ok_or_else(|| format!("{value:?} is not a valid {}", kind.name()))
}

fn check_deadline(deadline: Instant) -> Result<(), ServiceError> {
    if Instant::now() > deadline {
        return Err(ServiceError::Busy("the answer took too long; nothing was recorded, please send it again".into()));
    }
    Ok(())
}

/// What the engine made of one shopper message.
pub struct Reading {
    /// Ranked candidates of the reading judged most confidently.
    pub candidates: Vec<Candidate>,
    pub judged: Confidence,
    /// The message cleaned (what requests and intents are read from).
    pub text: String,
    /// The question a follow-up that names another product stands for
    /// ("那小黑瓶呢" after "神仙水哪里产的": "小黑瓶 哪里产的"): the
    /// conversation's topic from now on.
    pub restated: Option<String>,
}

/// Reads a shopper message as the engine should match it: cleaned (cards,
/// placeholders, greetings, repeats gone); about the product it names, else
/// the one the conversation's question named, else the page's; a message
/// that names no product may be about that product (it is read a second
/// time with the product's short name joined: "发什么快递" is not, "这个一次
/// 用几滴" is); a long message is also read clause by clause (each question
/// clause alone); a follow-up that names another product is also read as
/// the previous question about that product; the reading the verifier
/// trusts most wins. `k` candidates.
pub(super) fn read_message(
    engine: &Engine,
    text: &str,
    context: &Context,
    page: Option<&str>,
    k: usize,
) -> Result<Reading, ServiceError> {
    let retriever = &engine.retriever;
    let kb = retriever.kb();
    let cfg = &engine.config.decision;
    let cleaned = clean(text);
    let named = retriever.products_named(&cleaned.text);
    let only = |products: Vec<usize>| (products.len() == 1).then(|| products[0]);
    let earlier = context.question.and_then(|q| only(retriever.products_named(q)));
    let product = match named.as_slice() {
        [] => earlier.or_else(|| page.and_then(|id| kb.products.iter().position(|p| p.id == id))),
        [one] => Some(*one),
        _ => None,
    };
    let filter =
        Filter { product_id: product.map(|p| kb.products[p].id.as_str()), now: Some(chrono::Utc::now().timestamp()) };
    let products = ProductContext { page: filter.product_id, named: named.clone() };
    let short_name = |p: usize| {
        let p = &kb.products[p];
        p.aliases.first().unwrap_or(&p.name).clone()
    };
    // The message's language picks its verifier and the answers it is judged against.
    let language = detect_locale(text);
    let group = ScriptGroup::of_locale(language);
    // "这个一次用几滴" on the 神仙水 page reads as "神仙水 这个一次用几滴"
    // (Chinese only: the names are, and a mixed query misleads the verifier).
    let subject = product.filter(|_| named.is_empty() && group == ScriptGroup::Chinese).map(short_name);
    let restated = match (context.question, named.as_slice()) {
        (Some(previous), [p]) if is_follow_up(&cleaned.text) => {
            Some(format!("{} {}", short_name(*p), retriever.without_product_names(previous).trim()))
        }
        _ => None,
    };
    let calibration = engine.calibration();
    let verifier = calibration.group(group);
    let parts = std::iter::once(&cleaned.text).chain(&cleaned.questions);
    let readings = parts.flat_map(|part| {
        let with_subject = subject.iter().map(move |name| (format!("{name} {part}"), is_follow_up(part)));
        with_subject.chain([(part.clone(), is_follow_up(part))])
    });
    let readings: Vec<(String, bool)> = readings.chain(restated.clone().map(|r| (r, false))).collect();
    let searched: Vec<String> = readings
        .iter()
        .flat_map(|(q, follow_up)| std::iter::once(q.clone()).chain(with_topic(context, q, *follow_up)))
        .collect();
    retriever.prefetch(&searched.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut best: Option<(Vec<Candidate>, Confidence)> = None;
    for (query, follow_up) in readings {
        // Prefetched above: the cache answers.
        let vector = retriever.query_vector(&query, retriever.config().mode)?;
        let candidates = retrieve_in_context(engine, &query, vector.as_deref(), follow_up, context, &filter, k)?;
        let evidence = retriever.evidence(&query, vector.as_deref(), &candidates, &products, language);
        let judged = Confidence::judge(verifier, evidence.as_ref().map(|e| &e[..]), &candidates, cfg);
        if best.as_ref().is_none_or(|(_, b)| judged.value > b.value) {
            best = Some((candidates, judged));
        }
    }
    let (candidates, judged) = best.expect("the whole message is always read");
    Ok(Reading { candidates, judged, text: cleaned.text, restated })
}

/// How the engine reads `text` asked on product page `page` as the first
/// message of a conversation: what `POST /v1/answer` decides from, without
/// the store (the benches time the reading path with it).
pub fn read_question(engine: &Engine, text: &str, page: Option<&str>) -> Result<Reading, ServiceError> {
    read_message(engine, text, &Context::default(), page, engine.config.decision.choices.max(5))
}

/// Candidates for `text`; a follow-up ("那运费呢?") is searched both alone
/// and with the previous question, and each FAQ scored by the mean of
/// the two, so what is relevant to the new words *and* the topic wins.
/// The FAQ just answered is left out: a follow-up asks about something else.
/// `vector` is `text`'s embedding (None in BM25 mode).
fn retrieve_in_context(
    engine: &Engine,
    text: &str,
    vector: Option<&[f32]>,
    follow_up: bool,
    context: &Context,
    filter: &Filter,
    k: usize,
) -> Result<Vec<Candidate>, ServiceError> {
    let retriever = &engine.retriever;
    let mode = retriever.config().mode;
    let search_alone = |k: usize| retriever.search_with(text, vector, filter, k, mode, &|_| false);
    let Some(together) = with_topic(context, text, follow_up) else {
        return Ok(search_alone(k)?);
    };
    let answered = context.faq_id.and_then(|id| retriever.kb().faqs.iter().position(|f| f.id == id));
    let alone = search_alone(2 * k)?;
    let together = retriever.search(&together, filter, 2 * k)?;
    let floor = |list: &[Candidate]| list.last().map_or(0.0, |c| c.score);
    let (floor_alone, floor_together) = (floor(&alone), floor(&together));
    let mut merged: Vec<Candidate> = Vec::new();
    for c in alone.iter().chain(&together) {
        if merged.iter().any(|m| m.faq == c.faq) || Some(c.faq) == answered {
            continue;
        }
        let score_in = |list: &[Candidate], floor: f32| list.iter().find(|o| o.faq == c.faq).map_or(floor, |o| o.score);
        let score = (score_in(&alone, floor_alone) + score_in(&together, floor_together)) / 2.0;
        merged.push(Candidate { score, ..c.clone() });
    }
    merged.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.faq.cmp(&b.faq)));
    merged.truncate(k);
    Ok(merged)
}

/// A follow-up joined to the conversation's previous question (the second
/// text a follow-up is searched with); None for anything else.
fn with_topic(context: &Context, text: &str, follow_up: bool) -> Option<String> {
    context.question.filter(|_| follow_up).map(|previous| format!("{previous} {text}"))
}

fn candidates_json(engine: &Engine, candidates: &[Candidate]) -> String {
    let kb = engine.retriever.kb();
    let rows: Vec<serde_json::Value> = candidates
        .iter()
        .map(|c| serde_json::json!({"faq_id": kb.faqs[c.faq].id, "score": c.score, "bm25": c.bm25, "cosine": c.cosine}))
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// A FAQ's question as a shopper of `locale` reads it: the first of its
/// phrasings written in that language (a store writes its questions'
/// translations as similar phrasings), else the standard question.
fn question_for<'a>(faq: &'a crate::kb::Faq, locale: &str) -> &'a str {
    let lang = crate::kb::language(locale);
    match is_zh(&lang) {
        true => &faq.question,
        false => faq.phrasings().find(|p| detect_locale(p) == lang).unwrap_or(&faq.question),
    }
}

fn is_zh(locale: &str) -> bool {
    locale.starts_with("zh")
}

fn clarify_prompt(locale: &str) -> &'static str {
    if is_zh(locale) {
        "您是想问以下哪个问题呢？请点选："
    } else {
        "Did you mean one of these questions?"
    }
}

fn handoff_notice(locale: &str, ahead: usize) -> String {
    match (is_zh(locale), ahead) {
        (true, 0) => "正在为您转接人工客服，请稍候，客服会尽快回复您。".into(),
        (true, n) => format!("正在为您转接人工客服，您前面还有 {n} 位顾客在等待，客服会尽快回复您。"),
        (false, 0) => "We are passing you to a human agent; please wait a moment.".into(),
        (false, n) => format!("We are passing you to a human agent; {n} customer(s) ahead of you."),
    }
}

/// Why no human can answer now; `back_at` (outside hours only) is when
/// service resumes, as the shopper reads it.
struct Unavailable {
    offline: Offline,
    back_at: Option<String>,
}

/// No human can answer now: when they can, and how to leave a message.
fn offline_notice(locale: &str, u: &Unavailable) -> String {
    let window = &u.offline.hours;
    match (is_zh(locale), &u.back_at) {
        (true, Some(at)) => format!(
            "现在是非服务时间（人工客服服务时间 {window}），客服将于 {at} 上线。您可以留言并留下手机号、旺旺号或邮箱，客服上线后会第一时间联系您；常见问题我也可以先为您解答。"
        ),
        (true, None) => format!(
            "当前暂无人工客服在线（服务时间 {window}）。您可以留言并留下手机号、旺旺号或邮箱，客服看到后会第一时间联系您；常见问题我也可以先为您解答。"
        ),
        (false, Some(at)) => format!(
            "Our agents are offline now (service hours {window}, store time) and back at {at}. Leave a message with your phone, Wangwang id or e-mail and they will contact you; meanwhile I can answer common questions."
        ),
        (false, None) => format!(
            "No agent is online right now (service hours {window}, store time). Leave a message with your phone, Wangwang id or e-mail and an agent will contact you; meanwhile I can answer common questions."
        ),
    }
}

/// While a human is awaited: the message is with the agent, and where the shopper stands.
fn waiting_notice(locale: &str, ahead: usize) -> String {
    match (is_zh(locale), ahead) {
        (true, 0) => "已收到，您是下一位，客服会尽快回复您；其他常见问题我也可以先为您解答。".into(),
        (true, n) => format!("已收到，您前面还有 {n} 位顾客在等待，客服会尽快回复您；常见问题我也可以先为您解答。"),
        (false, 0) => "Got it — you're next for an agent. Meanwhile I can answer common questions.".into(),
        (false, n) => format!("Got it — {n} customer(s) ahead of you. Meanwhile I can answer common questions."),
    }
}

#[cfg(test)]
mod tests {
    use super::question_for;
    use crate::kb::{Faq, Location};

    #[test]
    fn choices_read_in_the_shoppers_language_when_a_phrasing_is() {
        let faq = Faq {
            id: "ship-courier".into(),
            question: "发什么快递？".into(),
            similar: vec!["用哪家快递".into(), "which courier do you use".into(), "どの配送業者ですか".into()],
            answers: Default::default(),
            category: String::new(),
            tags: Vec::new(),
            products: Vec::new(),
            valid_from: None,
            valid_until: None,
            priority: 0,
            location: Location { file: "shipping.toml".into(), line: 1 },
        };
        assert_eq!(question_for(&faq, "en-US"), "which courier do you use");
        assert_eq!(question_for(&faq, "ja"), "どの配送業者ですか");
        // No Korean phrasing: the standard question; Chinese readers always get it.
        assert_eq!(question_for(&faq, "ko"), "发什么快递？");
        assert_eq!(question_for(&faq, "zh-Hant"), "发什么快递？");
    }
}
