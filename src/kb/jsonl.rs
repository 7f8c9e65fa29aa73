//! JSON Lines import: one `{"id","question","answer"}` object per line, so
//! external data sets and spreadsheet exports load directly.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::error::Problem;
use super::load::KbOptions;
use super::types::{Faq, Location};
use super::validate::{MAX_ANSWER_CHARS, MAX_PHRASING_CHARS, check_id, check_length, check_similar_count, is_blank};

/// Extra keys are ignored: external data sets carry their own metadata.
#[derive(Deserialize)]
struct JsonFaq {
    id: serde_json::Value,
    question: String,
    #[serde(default)]
    answer: JsonAnswer,
    #[serde(default)]
    similar: Vec<String>,
    #[serde(default)]
    category: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    products: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum JsonAnswer {
    #[default]
    Missing,
    Text(String),
    Locales(BTreeMap<String, String>),
}

/// Parses JSONL `text` (read from `path`), appending problems by line.
pub(super) fn parse(path: &Path, text: &str, opts: &KbOptions, problems: &mut Vec<Problem>) -> Vec<Faq> {
    let mut faqs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if is_blank(raw) {
            continue;
        }
        let mut report = |m: String| problems.push(Problem::new(path, Some(line), m));
        let entry: JsonFaq = match serde_json::from_str(raw) {
            Ok(e) => e,
            Err(e) => {
                report(format!("invalid JSON: {e}"));
                continue;
            }
        };
        let id = match entry.id {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let question = entry.question.trim().to_string();
        let mut answers: BTreeMap<String, String> = match entry.answer {
            JsonAnswer::Missing => BTreeMap::new(),
            JsonAnswer::Text(t) => [("zh".to_string(), t.trim().to_string())].into(),
            JsonAnswer::Locales(m) => {
                m.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect()
            }
        };
        answers.retain(|_, t| !is_blank(t));
        let mut similar: Vec<String> = entry.similar.into_iter().map(|s| s.trim().to_string()).collect();
        let mut checks = vec![
            if id.is_empty() { Err("`id` must be a non-empty string or a number".into()) } else { check_id(&id) },
            if is_blank(&question) { Err("`question` is empty".into()) } else { Ok(()) },
            check_length("`question`", &question, MAX_PHRASING_CHARS),
        ];
        checks.extend(
            similar
                .iter()
                .enumerate()
                .map(|(i, s)| check_length(&format!("similar phrasing {}", i + 1), s, MAX_PHRASING_CHARS)),
        );
        similar.retain(|s| !is_blank(s));
        checks.push(check_similar_count(similar.len()));
        checks.extend(
            answers.iter().map(|(l, t)| check_length(&format!("answer for locale `{l}`"), t, MAX_ANSWER_CHARS)),
        );
        if opts.require_answers && !answers.contains_key("zh") {
            checks.push(Err("missing or empty `answer` (a `zh` answer is required)".into()));
        }
        let mut ok = true;
        for message in checks.into_iter().filter_map(Result::err) {
            report(message);
            ok = false;
        }
        if ok {
            faqs.push(Faq {
                id,
                question,
                similar,
                answers,
                category: entry.category,
                tags: entry.tags,
                products: entry.products,
                valid_from: None,
                valid_until: None,
                priority: 0,
                location: Location { file: path.to_path_buf(), line },
            });
        }
    }
    faqs
}
