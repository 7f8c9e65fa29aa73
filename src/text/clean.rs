//! Real shopper messages, made matchable: what a chat client pastes in
//! (order cards, placeholders such as `[订单x]`), greetings before the
//! question (亲 / 在吗 / 你好 …), repeated sentences; and the clauses of a
//! long message, so the question clause can be matched on its own.

use super::normalize::fold;

/// Field names of pasted order cards (`订单号:123 商品ID:456 …`): the field
/// and its value carry no question.
const CARD_FIELDS: &[&str] = &[
    "咨询订单号",
    "订单编号",
    "订单号",
    "运单号",
    "商品id",
    "商品编号",
    "商品名称",
    "订单金额",
    "实付金额",
    "下单时间",
    "付款时间",
    "收货地址",
    "收货人",
    "联系电话",
    "手机号",
    "数量",
    "单价",
    "order no",
    "order number",
    "order id",
    "tracking number",
];

/// Greetings and fillers shoppers put before the question.
const OPENERS: &[&str] = &[
    "亲爱的",
    "亲亲",
    "亲",
    "在吗",
    "在么",
    "在嘛",
    "在不在",
    "你好",
    "您好",
    "哈喽",
    "客服",
    "小二",
    "掌柜的",
    "掌柜",
    "嗯嗯",
    "嗯",
    "请问",
    "hello",
    "hi",
    "hey",
    "dear",
    "excuse me",
    "すみません",
    "안녕하세요",
];

/// Openers that lead straight into the question without a break.
const ATTACHED_OPENERS: &[&str] = &["在吗", "在么", "你好", "您好", "请问", "亲亲", "亲爱的"];

/// Messages longer than this (in characters, after cleaning) are split
/// into clauses for matching.
pub const LONG_MESSAGE_CHARS: usize = 40;

/// A message cleaned for matching.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleaned {
    /// The whole message without cards, placeholders, openers and repeats
    /// (the original when nothing would be left).
    pub text: String,
    /// Its clauses that read as questions, when the message is long; empty
    /// otherwise (match the whole text).
    pub questions: Vec<String>,
}

/// Cleans `text` (see the module comment).
pub fn clean(text: &str) -> Cleaned {
    let without_cards = strip_cards(&strip_placeholders(text));
    let mut clauses: Vec<String> = Vec::new();
    for clause in split_clauses(&without_cards) {
        let clause = strip_openers(clause);
        let key = match_key(clause);
        if key.is_empty() || clauses.iter().any(|c| match_key(c) == key) {
            continue;
        }
        clauses.push(clause.to_string());
    }
    let joined = clauses.join(" ");
    let cleaned = if joined.trim().is_empty() { text.trim().to_string() } else { joined };
    let questions = if cleaned.chars().count() > LONG_MESSAGE_CHARS {
        clauses.into_iter().filter(|c| is_question(c)).collect()
    } else {
        Vec::new()
    };
    Cleaned { text: cleaned, questions }
}

/// Letters and digits only, folded: two clauses with the same key repeat each other.
fn match_key(clause: &str) -> String {
    fold(clause).chars().filter(|c| c.is_alphanumeric()).collect()
}

/// `[订单x]`, `[数字x]`, `[链接x]` …: anonymisation placeholders.
fn strip_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('[') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find(']') {
            Some(end) if after[..end].chars().count() <= 12 && after[..end].ends_with('x') => {
                out.push(' ');
                rest = &after[end + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Removes `field: value` pairs of order cards (the value runs to the next
/// space or separator).
fn strip_cards(text: &str) -> String {
    let lower = text.to_lowercase();
    // Lower-casing can change byte lengths (rarely): then leave the text as it is.
    if lower.len() != text.len() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        for field in CARD_FIELDS {
            if lower[i..].starts_with(field) {
                let after = i + field.len();
                let rest = &text[after..];
                let trimmed = rest.trim_start_matches([' ', '\u{3000}']);
                if let Some(value) = trimmed.strip_prefix([':', '：']) {
                    let value = value.trim_start_matches([' ', '\u{3000}']);
                    let end = value
                        .find(|c: char| c.is_whitespace() || matches!(c, ';' | '；' | ',' | '，'))
                        .unwrap_or(value.len());
                    out.push(' ');
                    i = text.len() - value.len() + end;
                    continue 'scan;
                }
            }
        }
        let c = text[i..].chars().next().expect("inside the text");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Clauses: split at sentence punctuation, commas and spaces (how
/// shoppers separate sentences in chat); Latin text only at sentence ends.
fn split_clauses(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for sentence in text.split(['。', '？', '?', '！', '!', '；', ';', '\n', '…']) {
        let sentence = sentence.trim();
        if sentence.is_ascii() {
            out.extend(sentence.split(". ").map(str::trim).filter(|c| !c.is_empty()));
        } else {
            let parts = sentence.split(|c: char| matches!(c, '，' | ',' | '~' | '～' | '、') || c.is_whitespace());
            out.extend(parts.map(str::trim).filter(|c| !c.is_empty()));
        }
    }
    out
}

/// Greeting words before the question: "您好，请问可以…" → "可以…"; a
/// clause of greetings only becomes empty.
fn strip_openers(clause: &str) -> &str {
    let mut rest = clause;
    loop {
        let lower = rest.to_lowercase();
        if lower.len() != rest.len() {
            return rest;
        }
        // Most openers need a break after them (亲子装 is no greeting);
        // these also lead straight into the question.
        let attached = |o: &str| ATTACHED_OPENERS.contains(&o);
        let Some(opener) = OPENERS.iter().find(|o| {
            lower.starts_with(**o)
                && lower[o.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric() || (attached(o) && !c.is_ascii()))
        }) else {
            return rest;
        };
        rest = rest[opener.len()..].trim_start_matches(|c: char| !c.is_alphanumeric());
    }
}

/// Question words and endings (zh, en, ja, ko).
fn is_question(clause: &str) -> bool {
    const MARKS: &[&str] = &[
        "吗",
        "么",
        "呢",
        "怎么",
        "怎样",
        "如何",
        "什么",
        "啥",
        "多少",
        "多久",
        "几",
        "哪",
        "能不能",
        "可不可以",
        "可以",
        "是不是",
        "有没有",
        "会不会",
        "要不要",
        "能",
        "谁",
        "为什么",
        "how",
        "what",
        "when",
        "where",
        "why",
        "which",
        "can ",
        "do ",
        "does ",
        "is ",
        "are ",
        "will ",
        "か",
        "까",
        "요",
    ];
    let t = fold(clause);
    t.contains('?') || MARKS.iter().any(|m| t.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_order_cards_are_removed() {
        let c = clean(
            "咨询订单号:[订单x]    商品ID:[数字x] [数字x]号[数字x]元下的单，现在降价了，申请价格保护失败怎么回事",
        );
        assert!(!c.text.contains("订单号") && !c.text.contains("[数字x]") && !c.text.contains("商品ID"), "{c:?}");
        assert!(c.text.contains("申请价格保护失败怎么回事"), "{c:?}");
        let c = clean("订单编号：20261111 商品名称：神仙水 这个能退吗");
        assert_eq!(c.text, "这个能退吗");
        // Brackets that are no placeholder stay.
        assert_eq!(clean("[急]怎么退货").text, "[急]怎么退货");
    }

    #[test]
    fn greetings_before_the_question_are_dropped() {
        assert_eq!(clean("亲 在吗 这个一次用几滴").text, "这个一次用几滴");
        assert_eq!(clean("您好，请问可以开发票吗？").text, "可以开发票吗");
        assert_eq!(clean("Hi, can I return it?").text, "can I return it");
        // A greeting alone is kept (small talk answers it).
        assert_eq!(clean("在吗").text, "在吗");
        // Words that merely start like a greeting stay whole.
        assert_eq!(clean("亲子装有吗").text, "亲子装有吗");
        assert_eq!(clean("history of my order").text, "history of my order");
    }

    #[test]
    fn repeated_sentences_collapse() {
        assert_eq!(clean("什么时候发货 什么时候发货？ 什么时候發貨").text, "什么时候发货");
    }

    #[test]
    fn long_messages_yield_their_question_clauses() {
        let c = clean(
            "上个月在别家买了个吹风机 用了两周就坏了 客服推来推去的 所以这次想先问清楚 你们家戴森要是出毛病了 保修多久 要怎么修",
        );
        assert_eq!(c.questions, vec!["保修多久", "要怎么修"], "{c:?}");
        assert!(clean("运费谁出").questions.is_empty());
        let c = clean(
            "I'm abroad, buying gifts for my parents in Hangzhou. Can the person receiving it be different from me, the payer?",
        );
        assert!(c.questions.iter().any(|q| q.starts_with("Can the person")), "{c:?}");
    }
}
