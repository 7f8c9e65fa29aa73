use unicode_normalization::UnicodeNormalization;

use super::Reason;
use super::smalltalk::letters;
use crate::kb::Lexicon;
use crate::text::{Analyzer, fold, is_han};

/// Words of a question *about* agents (人工客服几点上班？): such a message
/// is answered from the knowledge base, not taken as a request for one.
const ABOUT_AGENTS: &[&str] =
    &["几点", "什么时候", "时间", "上班", "下班", "在线吗", "电话", "what time", "when are", "hours", "何時", "몇 시"];

/// Emoji that read as anger whatever the words.
const ANGRY_EMOJI: &[char] = &['😡', '🤬', '😤', '👎', '💢'];

/// Whether `text` must go to a human at once, and why: an explicit request,
/// a complaint, anger (lexicon words, three or more `!`, angry emoji), or a
/// question about the shopper's own order. Latin words match whole words
/// ("complains" is not "complaint"); Chinese complaint and anger words are
/// insults and terms, so they must also start and end where the message's
/// jieba words do (天气死冷 holds no 气死), while requests and order lookups
/// are phrase fragments (赔了没 in 赔了没有) matched anywhere. `A+B`
/// patterns need both parts in that order, each a whole word by the same
/// rules; `^A$` is the whole message.
pub fn escalation(text: &str, lexicon: &Lexicon, analyzer: &Analyzer) -> Option<Reason> {
    let folded = fold(text);
    // Only Chinese characters beside Chinese words look at the edges.
    let edges = if folded.chars().any(is_han) { analyzer.word_edges(&folded) } else { Vec::new() };
    let has_fragment = |words: &[String]| words.iter().any(|w| matches_pattern(&folded, &fold(w), None));
    let has = |words: &[String]| words.iter().any(|w| matches_pattern(&folded, &fold(w), Some(&edges)));
    if has_fragment(&lexicon.human) && !ABOUT_AGENTS.iter().any(|w| folded.contains(w)) {
        return Some(Reason::HumanRequested);
    }
    if has(&lexicon.complaint) {
        return Some(Reason::Complaint);
    }
    let exclamations = text.nfkc().filter(|&c| c == '!').count();
    if has(&lexicon.anger) || exclamations >= 3 || text.chars().any(|c| ANGRY_EMOJI.contains(&c)) {
        return Some(Reason::Anger);
    }
    if has_fragment(&lexicon.order_lookup) || has_order_number(&folded) {
        return Some(Reason::OrderLookup);
    }
    None
}

/// `pattern`'s `+`-separated parts all occur in `text`, in order, as whole
/// words (`edges`, where `text`'s Chinese words start and end: Chinese
/// characters may run on into the text beside them only without it).
/// `^word$` is the whole message: the word, repeated or not, and nothing but
/// punctuation, spaces and emoji besides (人工人工人工！, but not 人工费多少).
fn matches_pattern(text: &str, pattern: &str, edges: Option<&[usize]>) -> bool {
    if let Some(word) = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')) {
        let only_letters = |s: &str| letters(s).into_iter().filter(|&c| c != ' ').collect::<Vec<char>>();
        let (text, word) = (only_letters(text), only_letters(word));
        return !word.is_empty() && !text.is_empty() && text.chunks(word.len()).all(|chunk| chunk == word);
    }
    let mut from = 0;
    for part in pattern.split('+').map(str::trim) {
        if part.is_empty() {
            return false;
        }
        match find_word(text, from, part, edges) {
            Some(end) => from = end,
            None => return false,
        }
    }
    true
}

/// End of the first whole-word occurrence of `word` in `text` at or after
/// byte `from`. Where the word and the text beside it are both Latin letters
/// or digits, or (given `edges`) both Chinese characters, the two must not
/// run together: letters not at all, Chinese characters only at an edge of
/// the segmentation.
fn find_word(text: &str, from: usize, word: &str, edges: Option<&[usize]>) -> Option<usize> {
    let latin = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let han = |c: Option<char>| c.is_some_and(is_han);
    let runs_together = |inside: Option<char>, beside: Option<char>, at: usize| {
        (latin(inside) && latin(beside))
            || edges.is_some_and(|edges| han(inside) && han(beside) && edges.binary_search(&at).is_err())
    };
    let mut start = from;
    while let Some(at) = text[start..].find(word) {
        let (s, e) = (start + at, start + at + word.len());
        let touches_before = runs_together(word.chars().next(), text[..s].chars().next_back(), s);
        let touches_after = runs_together(word.chars().next_back(), text[e..].chars().next(), e);
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

    /// As anger and complaint words match.
    fn matches(text: &str, pattern: &str) -> bool {
        let text = fold(text);
        matches_pattern(&text, &fold(pattern), Some(&Analyzer::plain().word_edges(&text)))
    }

    /// As requests and order lookups match.
    fn matches_fragment(text: &str, pattern: &str) -> bool {
        matches_pattern(&fold(text), &fold(pattern), None)
    }

    #[test]
    fn latin_words_match_whole_words_and_patterns_in_order() {
        assert!(matches("i want a human", "human"));
        assert!(!matches("humane treatment", "human"));
        assert!(!matches("my mom always complains", "complain"));
        assert!(matches_fragment("我的快递到哪了", "快递+到哪"));
        assert!(!matches_fragment("到哪里买快递盒", "快递+到哪"));
        assert!(!matches_fragment("my order hasnt movedx", "hasnt moved"));
        // Each part of a pattern is a whole word, where it meets the one before too.
        assert!(matches_fragment("check my order please", "check+order"));
        assert!(!matches_fragment("my ordercheck", "order+check"));
        assert!(matches_fragment("HUMAN!!", "^human$"));
        assert!(!matches_fragment("human please", "^human$"));
        assert!(matches_fragment("人工人工人工！！", "^人工$"));
        assert!(matches_fragment("人工 🙏", "^人工$"));
        assert!(!matches_fragment("人工费怎么算", "^人工$"));
        assert!(!matches_fragment("人工人", "^人工$"));
        assert!(!matches_fragment("？？", "^人工$"));
        assert!(has_order_number("帮我查下 yt7723918844 到哪了"));
        assert!(!has_order_number("满299减30"));
    }

    #[test]
    fn chinese_words_match_only_along_the_segmentation() {
        // Across a word's edge: the weather, not anger.
        assert!(!matches("北方天气死冷 发货会冻坏吗", "气死"));
        assert!(matches("真是气死我了", "气死"));
        // Inside a longer word that contains it as a word of its own.
        assert!(matches("你们就是一群大骗子", "骗子"));
        assert!(matches("質量太差了！", "太差了"));
        assert!(matches("我要去曝光你们", "曝光你们"));
        assert!(matches("你们这是黑店！骗子", "黑店+骗子"));
        assert!(!matches("天气死冷还骗子", "天+气死"));
        // Beside Latin letters no segmentation is asked of Chinese words.
        assert!(matches("垃圾app", "垃圾"));
        // Fragments match inside words: 没 of 没有, 到 of 发到.
        assert!(matches_fragment("帮我看下运费险赔了没有", "赔了没"));
        assert!(matches_fragment("我售后的货发到哪里了", "到哪里了"));
    }
}
