use unicode_normalization::UnicodeNormalization;

use super::Reason;
use crate::kb::Lexicon;
use crate::text::fold;

/// Words of a question *about* agents (人工客服几点上班？): such a message
/// is answered from the knowledge base, not taken as a request for one.
const ABOUT_AGENTS: &[&str] =
    &["几点", "什么时候", "时间", "上班", "下班", "在线吗", "电话", "what time", "when are", "hours", "何時", "몇 시"];

/// Emoji that read as anger whatever the words.
const ANGRY_EMOJI: &[char] = &['😡', '🤬', '😤', '👎', '💢'];

/// Whether `text` must go to a human at once, and why: an explicit request,
/// a complaint, anger (lexicon words, three or more `!`, angry emoji), or a
/// question about the shopper's own order. Latin words match whole words
/// only ("complains" is not "complaint"); `A+B` patterns need both parts in
/// that order.
pub fn escalation(text: &str, lexicon: &Lexicon) -> Option<Reason> {
    let folded = fold(text);
    let has = |words: &[String]| words.iter().any(|w| matches_pattern(&folded, &fold(w)));
    if has(&lexicon.human) && !ABOUT_AGENTS.iter().any(|w| folded.contains(w)) {
        return Some(Reason::HumanRequested);
    }
    if has(&lexicon.complaint) {
        return Some(Reason::Complaint);
    }
    let exclamations = text.nfkc().filter(|&c| c == '!').count();
    if has(&lexicon.anger) || exclamations >= 3 || text.chars().any(|c| ANGRY_EMOJI.contains(&c)) {
        return Some(Reason::Anger);
    }
    if has(&lexicon.order_lookup) || has_order_number(&folded) {
        return Some(Reason::OrderLookup);
    }
    None
}

/// `pattern`'s `+`-separated parts all occur in `text`, in order.
fn matches_pattern(text: &str, pattern: &str) -> bool {
    let mut from = 0;
    for part in pattern.split('+').map(str::trim) {
        if part.is_empty() {
            return false;
        }
        match find_word(&text[from..], part) {
            Some(end) => from += end,
            None => return false,
        }
    }
    true
}

/// End of the first occurrence of `word` in `text`; a word that starts or
/// ends with a Latin letter or digit must not touch another one there.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let latin = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut start = 0;
    while let Some(at) = text[start..].find(word) {
        let (s, e) = (start + at, start + at + word.len());
        let touches_before = latin(word.chars().next()) && latin(text[..s].chars().next_back());
        let touches_after = latin(word.chars().next_back()) && latin(text[e..].chars().next());
        if !touches_before && !touches_after {
            return Some(e);
        }
        start = s + word.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// An order or tracking number: eight or more digits in a row, possibly
/// after letters (YT7723918844).
fn has_order_number(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 8 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_words_match_whole_words_and_patterns_in_order() {
        assert!(matches_pattern("i want a human", "human"));
        assert!(!matches_pattern("humane treatment", "human"));
        assert!(!matches_pattern("my mom always complains", "complain"));
        assert!(matches_pattern("我的快递到哪了", "快递+到哪"));
        assert!(!matches_pattern("到哪里买快递盒", "快递+到哪"));
        assert!(has_order_number("帮我查下 yt7723918844 到哪了"));
        assert!(!has_order_number("满299减30"));
    }
}
