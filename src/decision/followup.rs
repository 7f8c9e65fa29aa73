use crate::text::fold;

/// Openers and endings of elliptical follow-ups: "那运费呢?", "这个适合孕妇吗?".
const OPENERS: &[&str] = &["那", "那么", "这个", "那个", "它", "还有", "另外", "what about", "and "];
const ENDINGS: &[&str] = &["呢"];
/// Longer messages carry their own topic (Latin text spends more characters per word).
const MAX_FOLLOW_UP_CHARS: usize = 12;
const MAX_FOLLOW_UP_CHARS_LATIN: usize = 24;

/// Whether a message leans on the previous turn for its topic.
pub fn is_follow_up(text: &str) -> bool {
    let t = fold(text);
    let t = t.trim_matches(|c: char| !c.is_alphanumeric());
    let limit = if t.is_ascii() { MAX_FOLLOW_UP_CHARS_LATIN } else { MAX_FOLLOW_UP_CHARS };
    t.chars().count() <= limit && (OPENERS.iter().any(|o| t.starts_with(o)) || ENDINGS.iter().any(|e| t.ends_with(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_elliptical_questions_are_follow_ups() {
        for t in ["那运费呢?", "这个适合孕妇吗？", "那個呢", "還有贈品嗎", "What about shipping?"] {
            assert!(is_follow_up(t), "{t}");
        }
        for t in ["七天无理由退货怎么申请？", "发什么快递", "那天买的东西到现在都没有发货怎么回事"]
        {
            assert!(!is_follow_up(t), "{t}");
        }
    }
}
