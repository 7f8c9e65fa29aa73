//! Entries written through the admin API or imported from spreadsheets:
//! the JSON shape of a FAQ, its validation against the catalogue, and
//! applying stored edits on top of the files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::toml_file::parse_time_text;
use super::types::{Faq, KnowledgeBase, Location};

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
        let id = id.trim();
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            problems.push(format!("id `{id}` must be non-empty without spaces"));
        }
        if self.question.trim().is_empty() {
            problems.push("`question` is empty".into());
        }
        if self.answer.get("zh").is_none_or(|a| a.trim().is_empty()) {
            problems.push("a non-empty `zh` answer is required".into());
        }
        for (locale, text) in &self.answer {
            if text.trim().is_empty() {
                problems.push(format!("empty answer for locale `{locale}`"));
            }
        }
        for p in &self.products {
            if !kb.products.iter().any(|x| x.id == *p) {
                problems.push(format!("unknown product id `{p}`"));
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
            question: self.question.trim().to_string(),
            similar: self.similar.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
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
                Err(p) => problems.push(format!("edit of `{}` skipped: {}", edit.id, p.join("; "))),
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
