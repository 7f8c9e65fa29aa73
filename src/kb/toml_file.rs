//! One TOML knowledge file: `[[faq]]` and `[[product]]` tables.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::{LineIndex, Problem};
use super::types::{Faq, Lexicon, Location, Product, SmallTalk};
use super::validate::{
    MAX_ANSWER_CHARS, MAX_PHRASING_CHARS, MAX_SIMILAR, check_id, check_length, check_similar_count, is_blank,
};

const FAQ_KEYS: &[&str] =
    &["id", "question", "similar", "answer", "category", "tags", "products", "valid_from", "valid_until", "priority"];
const PRODUCT_KEYS: &[&str] = &["id", "name", "brand", "category", "aliases"];

/// Times without an offset are the store's local time (China Standard Time).
const STORE_UTC_OFFSET_SECS: i32 = 8 * 3600;

/// A product id an entry refers to, kept with its line until the whole
/// catalogue is known.
pub(super) struct ProductRef {
    pub faq_index: usize,
    pub product_id: String,
    pub line: usize,
}

#[derive(Default)]
pub(super) struct ParsedFile {
    pub faqs: Vec<Faq>,
    pub products: Vec<Product>,
    pub product_refs: Vec<ProductRef>,
    /// Brand names, product names and aliases, for segmentation.
    pub words: Vec<String>,
    pub lexicon: Option<Lexicon>,
    pub smalltalk: Vec<SmallTalk>,
}

#[derive(Deserialize)]
struct RawFaq {
    id: Option<Spanned<String>>,
    question: Option<Spanned<String>>,
    #[serde(default)]
    similar: Vec<Spanned<String>>,
    answer: Option<Spanned<toml::Value>>,
    #[serde(default)]
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    products: Vec<Spanned<String>>,
    valid_from: Option<Spanned<toml::Value>>,
    valid_until: Option<Spanned<toml::Value>>,
    #[serde(default)]
    priority: i64,
}

#[derive(Deserialize)]
struct RawProduct {
    id: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    #[serde(default)]
    brand: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    aliases: Vec<String>,
}

struct Ctx<'a> {
    path: &'a Path,
    lines: LineIndex,
    problems: &'a mut Vec<Problem>,
}

impl Ctx<'_> {
    fn line(&self, span: &std::ops::Range<usize>) -> usize {
        self.lines.line(span.start)
    }
    fn report(&mut self, line: usize, message: String) {
        self.problems.push(Problem::new(self.path, Some(line), message));
    }
    /// Reports a failed check at `line`; whether it passed.
    fn check(&mut self, line: usize, result: Result<(), String>) -> bool {
        result.map_err(|m| self.report(line, m)).is_ok()
    }
}

pub(super) fn parse(path: &Path, text: &str, problems: &mut Vec<Problem>) -> ParsedFile {
    let mut out = ParsedFile::default();
    let mut ctx = Ctx { path, lines: LineIndex::new(text), problems };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let line = e.span().map(|s| ctx.line(&s)).unwrap_or(1);
            ctx.report(line, format!("invalid TOML: {}", e.message().trim()));
            return out;
        }
    };
    for (key, value) in root.get_ref().iter() {
        let line = ctx.line(&key.span());
        if key.get_ref() == "handoff" {
            out.lexicon = deserialize::<Lexicon>(&mut ctx, value, line);
            if let Some(lexicon) = &out.lexicon {
                let words = [&lexicon.human, &lexicon.complaint, &lexicon.anger, &lexicon.order_lookup];
                for word in words.into_iter().flatten() {
                    ctx.check(line, handoff_pattern(word));
                }
            }
            continue;
        }
        let tables = match value.get_ref() {
            DeValue::Array(items) => items.as_ref(),
            _ => {
                ctx.report(line, format!("`{}` must be an array of tables ([[{}]])", key.get_ref(), key.get_ref()));
                continue;
            }
        };
        match key.get_ref().as_ref() {
            "faq" => tables.iter().for_each(|t| parse_faq(&mut ctx, t, &mut out)),
            "product" => tables.iter().for_each(|t| parse_product(&mut ctx, t, &mut out)),
            "smalltalk" => tables.iter().for_each(|t| parse_smalltalk(&mut ctx, t, &mut out)),
            other => ctx.report(
                line,
                format!("unknown table `{other}` (expected [[faq]], [[product]], [handoff] or [[smalltalk]])"),
            ),
        }
    }
    out
}

/// A `[handoff]` word that could never match: an empty part of `A+B`, or
/// a half-written or mixed `^A$` (the whole message takes no `+`).
fn handoff_pattern(word: &str) -> Result<(), String> {
    let anchored = word.starts_with('^') || word.ends_with('$');
    let inner = word.trim_start_matches('^').trim_end_matches('$');
    if anchored && !(word.starts_with('^') && word.ends_with('$') && !inner.contains('+')) {
        return Err(format!("[handoff] word {word:?}: the whole message is written ^word$, without +"));
    }
    if (anchored && !inner.chars().any(char::is_alphanumeric)) || inner.split('+').any(|p| p.trim().is_empty()) {
        return Err(format!("[handoff] word {word:?} has an empty part and would never match"));
    }
    Ok(())
}

fn parse_smalltalk(ctx: &mut Ctx, item: &Spanned<DeValue>, out: &mut ParsedFile) {
    let Some(line) = check_keys(ctx, item, &["kind", "phrases", "reply"], "smalltalk") else {
        return;
    };
    let Some(talk) = deserialize::<SmallTalk>(ctx, item, line) else {
        return;
    };
    let mut ok = true;
    if talk.phrases.is_empty() || talk.phrases.iter().any(|p| is_blank(p)) {
        ctx.report(line, format!("[[smalltalk]] `{}` needs non-empty `phrases`", talk.kind));
        ok = false;
    }
    if talk.reply.get("zh").is_none_or(|r| is_blank(r)) || talk.reply.values().any(|r| is_blank(r)) {
        ctx.report(line, format!("[[smalltalk]] `{}` needs a non-empty `reply` with a `zh` text", talk.kind));
        ok = false;
    }
    if ok {
        out.smalltalk.push(talk);
    }
}

/// Reports keys outside `allowed`; returns the table's own line.
fn check_keys(ctx: &mut Ctx, item: &Spanned<DeValue>, allowed: &[&str], kind: &str) -> Option<usize> {
    let line = ctx.line(&item.span());
    let DeValue::Table(table) = item.get_ref() else {
        ctx.report(line, format!("each [[{kind}]] entry must be a table"));
        return None;
    };
    for key in table.keys() {
        if !allowed.contains(&key.get_ref().as_ref()) {
            let key_line = ctx.line(&key.span());
            ctx.report(
                key_line,
                format!("unknown key `{}` in [[{kind}]] (allowed: {})", key.get_ref(), allowed.join(", ")),
            );
        }
    }
    Some(line)
}

fn deserialize<T: for<'de> Deserialize<'de>>(ctx: &mut Ctx, item: &Spanned<DeValue>, line: usize) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(item.clone())) {
        Ok(v) => Some(v),
        Err(e) => {
            let at = e.span().map(|s| ctx.line(&s)).unwrap_or(line);
            ctx.report(at, e.message().trim().to_string());
            None
        }
    }
}

/// A required, non-blank string field.
fn required(
    ctx: &mut Ctx,
    field: Option<Spanned<String>>,
    name: &str,
    kind: &str,
    line: usize,
) -> Option<(String, usize)> {
    match field {
        None => {
            ctx.report(line, format!("[[{kind}]] is missing `{name}`"));
            None
        }
        Some(s) => {
            let at = ctx.line(&s.span());
            let value = s.into_inner().trim().to_string();
            if is_blank(&value) {
                ctx.report(at, format!("`{name}` is empty"));
                None
            } else {
                Some((value, at))
            }
        }
    }
}

fn parse_faq(ctx: &mut Ctx, item: &Spanned<DeValue>, out: &mut ParsedFile) {
    let Some(line) = check_keys(ctx, item, FAQ_KEYS, "faq") else {
        return;
    };
    let Some(raw) = deserialize::<RawFaq>(ctx, item, line) else {
        return;
    };
    let id = required(ctx, raw.id, "id", "faq", line).filter(|(id, at)| ctx.check(*at, check_id(id)));
    let question = required(ctx, raw.question, "question", "faq", line)
        .filter(|(q, at)| ctx.check(*at, check_length("`question`", q, MAX_PHRASING_CHARS)));
    if let Some(extra) = raw.similar.get(MAX_SIMILAR) {
        let at = ctx.line(&extra.span());
        ctx.check(at, check_similar_count(raw.similar.len()));
    }
    let mut similar = Vec::with_capacity(raw.similar.len());
    for s in raw.similar {
        let at = ctx.line(&s.span());
        let text = s.into_inner().trim().to_string();
        if is_blank(&text) {
            ctx.report(at, "empty phrasing in `similar`".into());
        } else if ctx.check(at, check_length("similar phrasing", &text, MAX_PHRASING_CHARS)) {
            similar.push(text);
        }
    }
    let answers = parse_answer(ctx, raw.answer, line);
    let valid_from = raw.valid_from.and_then(|v| parse_time(ctx, v, "valid_from"));
    let valid_until = raw.valid_until.and_then(|v| parse_time(ctx, v, "valid_until"));
    if let (Some((from, _)), Some((until, at))) = (valid_from, valid_until)
        && until <= from
    {
        ctx.report(at, "`valid_until` must be after `valid_from`".into());
    }
    let (Some((id, _)), Some((question, _)), Some(answers)) = (id, question, answers) else {
        return;
    };
    let faq_index = out.faqs.len();
    let mut products = Vec::with_capacity(raw.products.len());
    for p in raw.products {
        let at = ctx.line(&p.span());
        let product_id = p.into_inner().trim().to_string();
        out.product_refs.push(ProductRef { faq_index, product_id: product_id.clone(), line: at });
        products.push(product_id);
    }
    out.faqs.push(Faq {
        id,
        question,
        similar,
        answers,
        category: raw.category.trim().to_string(),
        tags: raw.tags,
        products,
        valid_from: valid_from.map(|v| v.0),
        valid_until: valid_until.map(|v| v.0),
        priority: raw.priority,
        location: Location { file: ctx.path.to_path_buf(), line },
    });
}

fn parse_answer(ctx: &mut Ctx, answer: Option<Spanned<toml::Value>>, line: usize) -> Option<BTreeMap<String, String>> {
    let Some(answer) = answer else {
        ctx.report(line, "[[faq]] is missing `answer`".into());
        return None;
    };
    let at = ctx.line(&answer.span());
    let mut answers = BTreeMap::new();
    match answer.into_inner() {
        toml::Value::String(text) => {
            answers.insert("zh".to_string(), text.trim().to_string());
        }
        toml::Value::Table(table) => {
            for (locale, text) in table {
                match text {
                    toml::Value::String(text) => {
                        answers.insert(locale.to_ascii_lowercase(), text.trim().to_string());
                    }
                    other => ctx.report(at, format!("answer.{locale} must be a string, found {}", other.type_str())),
                }
            }
            if !answers.contains_key("zh") {
                ctx.report(at, "answer table needs a `zh` answer".into());
                return None;
            }
        }
        other => {
            ctx.report(
                at,
                format!("`answer` must be a string or a table of locale = text, found {}", other.type_str()),
            );
            return None;
        }
    }
    let mut ok = true;
    for (locale, text) in &answers {
        if is_blank(text) {
            ctx.report(at, format!("empty answer for locale `{locale}`"));
            ok = false;
        } else {
            ok &= ctx.check(at, check_length(&format!("answer for locale `{locale}`"), text, MAX_ANSWER_CHARS));
        }
    }
    ok.then_some(answers)
}

/// Parses a validity bound into unix seconds, reporting bad values.
fn parse_time(ctx: &mut Ctx, value: Spanned<toml::Value>, name: &str) -> Option<(i64, usize)> {
    let at = ctx.line(&value.span());
    let parsed = match value.into_inner() {
        toml::Value::Datetime(dt) => to_unix(&dt),
        toml::Value::String(s) => parse_time_text(&s),
        _ => None,
    };
    if parsed.is_none() {
        ctx.report(at, format!("bad date in `{name}`: expected e.g. 2026-11-01 or 2026-11-01T20:00:00+08:00"));
    }
    parsed.map(|t| (t, at))
}

/// A date or date-time written as text (`2026-11-01`, `2026-11-01 20:00`,
/// RFC 3339) in unix seconds; China time when no offset is given.
pub(super) fn parse_time_text(s: &str) -> Option<i64> {
    s.trim().parse::<toml::value::Datetime>().ok().and_then(|dt| to_unix(&dt))
}

fn to_unix(dt: &toml::value::Datetime) -> Option<i64> {
    let d = dt.date?;
    let date = NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())?;
    let time = match dt.time {
        Some(t) => NaiveTime::from_hms_opt(t.hour.into(), t.minute.into(), t.second.unwrap_or(0).into())?,
        None => NaiveTime::MIN,
    };
    let offset_secs = match dt.offset {
        None => STORE_UTC_OFFSET_SECS,
        Some(toml::value::Offset::Z) => 0,
        Some(toml::value::Offset::Custom { minutes }) => i32::from(minutes) * 60,
    };
    let tz = FixedOffset::east_opt(offset_secs)?;
    tz.from_local_datetime(&date.and_time(time)).single().map(|t| t.timestamp())
}

fn parse_product(ctx: &mut Ctx, item: &Spanned<DeValue>, out: &mut ParsedFile) {
    let Some(line) = check_keys(ctx, item, PRODUCT_KEYS, "product") else {
        return;
    };
    let Some(raw) = deserialize::<RawProduct>(ctx, item, line) else {
        return;
    };
    let id = required(ctx, raw.id, "id", "product", line);
    let name = required(ctx, raw.name, "name", "product", line);
    let (Some((id, _)), Some((name, _))) = (id, name) else {
        return;
    };
    let brand = raw.brand.trim().to_string();
    out.words.extend([name.clone(), brand.clone()].into_iter().filter(|w| !w.is_empty()));
    let aliases: Vec<String> = raw.aliases.iter().map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect();
    out.words.extend(aliases.iter().cloned());
    out.products.push(Product {
        id,
        name,
        brand,
        aliases,
        category: raw.category.trim().to_string(),
        location: Location { file: ctx.path.to_path_buf(), line },
    });
}
