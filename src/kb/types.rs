use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// Where an entry was written, for error messages and for the operators' tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

/// One FAQ entry: a standard question, its similar phrasings and its answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Faq {
    pub id: String,
    pub question: String,
    pub similar: Vec<String>,
    /// Locale (`zh`, `en`, …) → answer text; `zh` is always present for
    /// entries loaded from the store's own files.
    pub answers: BTreeMap<String, String>,
    pub category: String,
    pub tags: Vec<String>,
    /// Product ids this entry is about; empty means it applies store-wide.
    pub products: Vec<String>,
    /// Unix seconds; `None` means open-ended.
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub priority: i64,
    pub location: Location,
}

impl Faq {
    /// The standard question first, then every similar phrasing.
    pub fn phrasings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.question.as_str()).chain(self.similar.iter().map(String::as_str))
    }

    /// Whether the entry is in force at `now` (unix seconds).
    pub fn is_valid_at(&self, now: i64) -> bool {
        self.valid_from.is_none_or(|from| from <= now) && self.valid_until.is_none_or(|until| now < until)
    }

    /// The answers not in Chinese, with their languages (`en-US` → `en`):
    /// what a shopper writing in another language may be answered with.
    pub fn foreign_answers(&self) -> impl Iterator<Item = (String, &str)> {
        self.answers.iter().map(|(l, a)| (language(l), a.as_str())).filter(|(l, _)| l != "zh")
    }

    /// The answer in `locale` (`en-US` falls back to `en`), else the Chinese one.
    pub fn answer_for(&self, locale: &str) -> Option<(&str, &str)> {
        let lang = language(locale);
        self.answers
            .get_key_value(locale)
            .or_else(|| self.answers.get_key_value(lang.as_str()))
            .or_else(|| self.answers.get_key_value("zh"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The language of a locale tag: `en-US` → `en`, `zh_Hant` → `zh`.
pub fn language(locale: &str) -> String {
    locale.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase()
}

/// A product of the store's catalogue, referenced by FAQ `products` scopes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub brand: String,
    /// Names shoppers use (神仙水, 小黑瓶), for recognising the product in a message.
    pub aliases: Vec<String>,
    pub category: String,
    pub location: Location,
}

/// Words that send a conversation to a human at once (`lexicon.toml`,
/// `[handoff]`), matched after case, width and script folding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lexicon {
    /// Explicit requests: 转人工, 人工客服, human, agent… Every list takes
    /// `A+B` (both parts, in that order) and `^A$` (the whole message);
    /// Latin words match whole words, and Chinese complaint and anger words
    /// must start and end where the message's jieba words do.
    #[serde(default)]
    pub human: Vec<String>,
    /// Complaints: 投诉, 差评, 12315…
    #[serde(default)]
    pub complaint: Vec<String>,
    /// Anger and insults.
    #[serde(default)]
    pub anger: Vec<String>,
    /// Questions about the shopper's own order (到哪了, 钱呢, my order…): an
    /// agent must look them up.
    #[serde(default)]
    pub order_lookup: Vec<String>,
    /// Small talk the bot answers itself (`[[smalltalk]]` tables).
    #[serde(skip)]
    pub smalltalk: Vec<SmallTalk>,
}

/// One kind of small talk (`lexicon.toml`, `[[smalltalk]]`): what shoppers
/// say (greetings, thanks, goodbyes, "are you a bot") and the store's reply.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmallTalk {
    pub kind: String,
    /// Whole messages of this kind, matched after folding, with
    /// punctuation, emoji and filler particles (呀, 啊, 哦 …) ignored.
    pub phrases: Vec<String>,
    /// Locale → reply; `zh` required.
    pub reply: BTreeMap<String, String>,
}

impl SmallTalk {
    /// The reply in `locale` (`ja-JP` → `ja`), else English for other
    /// languages, else Chinese.
    pub fn reply_for(&self, locale: &str) -> &str {
        let lang = locale.split(['-', '_']).next().unwrap_or(locale).to_ascii_lowercase();
        let fallback = if lang == "zh" { "zh" } else { "en" };
        [locale.to_ascii_lowercase().as_str(), lang.as_str(), fallback, "zh"]
            .iter()
            .find_map(|l| self.reply.get(*l))
            .map_or("", String::as_str)
    }
}

/// Everything loaded from a knowledge-base directory, already validated.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    pub faqs: Vec<Faq>,
    pub products: Vec<Product>,
    /// Custom segmentation words (`dict.txt`), plus product names and brands.
    pub dict_words: Vec<String>,
    /// Synonym groups (`synonyms.txt`); the first member is canonical.
    pub synonyms: Vec<Vec<String>>,
    pub lexicon: Lexicon,
    /// SHA-256 over every source file, hex; changes whenever any input changes.
    pub content_hash: String,
}

impl KnowledgeBase {
    pub fn faq(&self, id: &str) -> Option<&Faq> {
        self.faqs.iter().find(|f| f.id == id)
    }

    pub fn phrasing_count(&self) -> usize {
        self.faqs.iter().map(|f| 1 + f.similar.len()).sum()
    }
}
