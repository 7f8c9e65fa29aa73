//! Entries written through the admin API or imported from spreadsheets:
//! the JSON shape of a FAQ, its validation against the catalogue, and
//! applying stored edits on top of the files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::toml_file::parse_time_text;
use super::types::{Faq, KnowledgeBase, Location};
use super::validate::{
    MAX_ANSWER_CHARS, MAX_PHRASING_CHARS, check_id, check_length, check_similar_count, is_blank, shown,
};

/// A FAQ as the admin API and the importers take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaqInput {
    pub question: String,
    #[serde(default)]
    pub similar: Vec<String>,
    /// Locale → answer; `zh` required.
    pub answer: BTreeMap<String, String>,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub products: Vec<String>,
    /// e.g. `2026-12-01` or `2026-12-01T20:00:00+08:00` (China time without offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub priority: i64,
}

/// A stored edit: the entry with this id is replaced (`Some`) or deleted (`None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaqEdit {
    pub id: String,
    pub entry: Option<FaqInput>,
}

impl FaqInput {
    /// Checks the entry and turns it into a [`Faq`]; every problem is listed.
    pub fn to_faq(&self, id: &str, kb: &KnowledgeBase, source: &str) -> Result<Faq, Vec<String>> {
        let mut problems = Vec::new();
        let question = self.question.trim();
        let similar: Vec<String> = self.similar.iter().map(|s| s.trim().to_string()).filter(|s| !is_blank(s)).collect();
        let mut checks = vec![
            // Not trimmed: the Faq must carry exactly the id its edit is stored under.
            check_id(id),
            if is_blank(question) { Err("`question` is empty".into()) } else { Ok(()) },
            check_length("`question`", question, MAX_PHRASING_CHARS),
            check_similar_count(similar.len()),
        ];
        checks.extend(
            self.similar
                .iter()
                .enumerate()
                .map(|(i, s)| check_length(&format!("similar phrasing {}", i + 1), s.trim(), MAX_PHRASING_CHARS)),
        );
        problems.extend(checks.into_iter().filter_map(Result::err));
        if self.answer.get("zh").is_none_or(|a| is_blank(a)) {
            problems.push("a non-empty `zh` answer is required".into());
        }
        for (locale, text) in &self.answer {
            if is_blank(text) {
                problems.push(format!("empty answer for locale `{locale}`"));
            } else if let Err(e) = check_length(&format!("answer for locale `{locale}`"), text.trim(), MAX_ANSWER_CHARS)
            {
                problems.push(e);
            }
        }
        for p in &self.products {
            if !kb.products.iter().any(|x| x.id == *p) {
                problems.push(format!("unknown product id `{}`", shown(p)));
            }
        }
        let mut time = |name: &str, v: &Option<String>| match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let t = parse_time_text(s);
                if t.is_none() {
                    problems.push(format!(
                        "bad date in `{name}`: {s:?} (expected e.g. 2026-11-01 or 2026-11-01T20:00:00+08:00)"
                    ));
                }
                t
            }
        };
        let from = time("valid_from", &self.valid_from);
        let until = time("valid_until", &self.valid_until);
        if let (Some(f), Some(u)) = (from, until)
            && u <= f
        {
            problems.push("`valid_until` must be after `valid_from`".into());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Faq {
            id: id.to_string(),
            question: question.to_string(),
            similar,
            answers: self.answer.iter().map(|(l, t)| (l.to_ascii_lowercase(), t.trim().to_string())).collect(),
            category: self.category.trim().to_string(),
            tags: self.tags.clone(),
            products: self.products.clone(),
            valid_from: from,
            valid_until: until,
            priority: self.priority,
            location: Location { file: PathBuf::from(source), line: 0 },
        })
    }

    /// The input form of an existing entry (dates as unix-seconds RFC 3339).
    pub fn from_faq(faq: &Faq) -> FaqInput {
        let date = |t: Option<i64>| t.and_then(|t| chrono::DateTime::from_timestamp(t, 0)).map(|d| d.to_rfc3339());
        FaqInput {
            question: faq.question.clone(),
            similar: faq.similar.clone(),
            answer: faq.answers.clone(),
            category: faq.category.clone(),
            tags: faq.tags.clone(),
            products: faq.products.clone(),
            valid_from: date(faq.valid_from),
            valid_until: date(faq.valid_until),
            priority: faq.priority,
        }
    }
}

/// Applies `edits` (in order) to `kb`; entries that no longer validate are
/// reported and skipped. The content hash then covers the edits too.
pub fn apply_edits(kb: &mut KnowledgeBase, edits: &[FaqEdit]) -> Vec<String> {
    let mut problems = Vec::new();
    for edit in edits {
        // Chained per edit, so applying edits in two steps gives the same
        // hash as in one (the on-disk index stays reusable after a restart).
        let mut hasher = Sha256::new();
        hasher.update(kb.content_hash.as_bytes());
        hasher.update(serde_json::to_vec(edit).unwrap_or_default());
        kb.content_hash = hex::encode(hasher.finalize());
        let at = kb.faqs.iter().position(|f| f.id == edit.id);
        match (&edit.entry, at) {
            (None, Some(i)) => {
                kb.faqs.remove(i);
            }
            (None, None) => {}
            (Some(input), at) => match input.to_faq(&edit.id, kb, "admin edit") {
                Ok(faq) => match at {
                    Some(i) => kb.faqs[i] = faq,
                    None => kb.faqs.push(faq),
                },
                Err(p) => problems.push(format!("edit of `{}` skipped: {}", shown(&edit.id), p.join("; "))),
            },
        }
    }
    problems
}

/// One entry as written back to a knowledge file.
#[derive(Serialize)]
struct ExportedFaq {
    id: String,
    #[serde(flatten)]
    entry: FaqInput,
}

/// The whole FAQ set as a TOML knowledge file (`[[faq]]` tables), for
/// writing edits made through the API back into `knowledge_base/`.
pub fn export_toml(kb: &KnowledgeBase) -> Result<String, toml::ser::Error> {
    #[derive(Serialize)]
    struct Doc {
        faq: Vec<ExportedFaq>,
    }
    let faq = kb.faqs.iter().map(|f| ExportedFaq { id: f.id.clone(), entry: FaqInput::from_faq(f) }).collect();
    toml::to_string(&Doc { faq })
}

/// The whole FAQ set as JSON Lines (`{"id", "question", "answer", …}` a line).
pub fn export_jsonl(kb: &KnowledgeBase) -> String {
    kb.faqs
        .iter()
        .map(|f| {
            serde_json::to_string(&ExportedFaq { id: f.id.clone(), entry: FaqInput::from_faq(f) }).unwrap_or_default()
                + "\n"
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::validate::{MAX_ANSWER_CHARS, MAX_PHRASING_CHARS, MAX_SIMILAR};

    fn input(question: &str, answer: &str) -> FaqInput {
        FaqInput {
            question: question.into(),
            similar: Vec::new(),
            answer: BTreeMap::from([("zh".to_string(), answer.to_string())]),
            category: String::new(),
            tags: Vec::new(),
            products: Vec::new(),
            valid_from: None,
            valid_until: None,
            priority: 0,
        }
    }

    fn problems(id: &str, input: &FaqInput) -> String {
        input.to_faq(id, &KnowledgeBase::default(), "test").expect_err(id).join("\n")
    }

    #[test]
    fn ids_are_checked_exactly_as_given() {
        let entry = input("包邮吗", "全场包邮");
        assert_eq!(entry.to_faq("ship-free_2.0", &KnowledgeBase::default(), "test").unwrap().id, "ship-free_2.0");
        let long = "x".repeat(65);
        for bad in
            ["", " ship", "ship\n", "../etc/passwd", "a/b", "ship\u{202E}", "ship\u{200B}", "退货", &long, ".x", "a..b"]
        {
            assert!(problems(bad, &entry).starts_with("id `"), "{bad:?}: {}", problems(bad, &entry));
        }
    }

    #[test]
    fn lengths_and_counts_are_limited() {
        let mut entry = input(&"问".repeat(MAX_PHRASING_CHARS + 1), &"答".repeat(MAX_ANSWER_CHARS + 1));
        entry.similar = (0..=MAX_SIMILAR).map(|i| format!("问法{i}")).collect();
        entry.similar[3] = "长".repeat(MAX_PHRASING_CHARS + 1);
        entry.answer.insert("en".into(), "a".repeat(MAX_ANSWER_CHARS + 1));
        let p = problems("x", &entry);
        for needle in [
            "`question` is too long: 501 characters (at most 500)",
            "too many similar phrasings: 201 (at most 200)",
            "similar phrasing 4 is too long: 501 characters",
            "answer for locale `zh` is too long: 5001 characters (at most 5000)",
            "answer for locale `en` is too long",
        ] {
            assert!(p.contains(needle), "{needle:?} not in:\n{p}");
        }
        let mut at_limits = input(&"问".repeat(MAX_PHRASING_CHARS), &"答".repeat(MAX_ANSWER_CHARS));
        at_limits.similar = (0..MAX_SIMILAR).map(|i| format!("问法{i}")).collect();
        assert!(at_limits.to_faq("x", &KnowledgeBase::default(), "test").is_ok());
    }

    #[test]
    fn quoted_product_ids_and_edit_ids_show_invisible_characters_escaped() {
        let mut entry = input("包邮吗", "包邮");
        entry.products = vec!["p-1\u{202E}\nOK".into()];
        assert_eq!(problems("x", &entry), "unknown product id `p-1\\u{202e}\\u{a}OK`");
        let mut kb = KnowledgeBase::default();
        let skipped = apply_edits(&mut kb, &[FaqEdit { id: "a\u{2066}b".into(), entry: Some(input("q", "a")) }]);
        assert!(
            skipped[0].starts_with("edit of `a\\u{2066}b` skipped: id `a\\u{2066}b` may contain only"),
            "{skipped:?}"
        );
    }

    #[test]
    fn texts_of_invisible_characters_are_empty() {
        let mut entry = input("\u{200B}\u{3000}", "\u{FEFF}\u{202E}");
        entry.answer.insert("en".into(), "\u{2060}".into());
        let p = problems("x", &entry);
        for needle in ["`question` is empty", "a non-empty `zh` answer is required", "empty answer for locale `en`"] {
            assert!(p.contains(needle), "{needle:?} not in:\n{p}");
        }
        let mut ok = input("亲\u{200B}", "在的");
        ok.similar = vec!["\u{200D}\u{FE0F}".into(), "在吗".into()];
        let faq = ok.to_faq("x", &KnowledgeBase::default(), "test").unwrap();
        assert_eq!(faq.similar, ["在吗"]);
    }
}
