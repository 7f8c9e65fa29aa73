use unicode_normalization::UnicodeNormalization;

use super::Reason;
use crate::kb::Lexicon;
use crate::text::fold;

/// Emoji that read as anger whatever the words.
const ANGRY_EMOJI: &[char] = &['😡', '🤬', '😤', '👎', '💢'];

/// Whether `text` must go to a human at once, and why: an explicit request,
/// a complaint, or anger (lexicon words, three or more `!`, angry emoji).
pub fn escalation(text: &str, lexicon: &Lexicon) -> Option<Reason> {
    let folded = fold(text);
    let has = |words: &[String]| words.iter().any(|w| !w.is_empty() && folded.contains(&fold(w)));
    if has(&lexicon.human) {
        return Some(Reason::HumanRequested);
    }
    if has(&lexicon.complaint) {
        return Some(Reason::Complaint);
    }
    let exclamations = text.nfkc().filter(|&c| c == '!').count();
    if has(&lexicon.anger) || exclamations >= 3 || text.chars().any(|c| ANGRY_EMOJI.contains(&c)) {
        return Some(Reason::Anger);
    }
    None
}
