//! Small talk: a message made only of greetings, thanks, acknowledgements,
//! goodbyes or "are you a bot" gets the store's friendly reply instead of a
//! search (and so is never handed off or mined as a knowledge gap).

use crate::kb::Lexicon;
use crate::text::fold;

/// Particles shoppers sprinkle around small talk; they never decide the kind.
const FILLERS: &[char] = &['呀', '啊', '哦', '呢', '哈', '嘛', '吧', '啦', '哟', '噢', '喔', '哇', '亲', '~'];
/// Longer messages carry a question even when they open with 你好.
const MAX_CHARS: usize = 40;

/// The index (in `lexicon.smalltalk`) of the kind `text` is, when the whole
/// message is small talk: it must be covered end to end by the lexicon's
/// phrases and fillers (case, width and traditional characters folded;
/// punctuation, emoji and spaces ignored; Latin phrases only as whole
/// words). The last phrase decides the kind (你好，谢谢 → thanks).
pub fn small_talk(text: &str, lexicon: &Lexicon) -> Option<usize> {
    if lexicon.smalltalk.is_empty() {
        return None;
    }
    let message = letters(text);
    if message.is_empty() || message.len() > MAX_CHARS {
        return None;
    }
    let phrases: Vec<(Vec<char>, usize)> = lexicon
        .smalltalk
        .iter()
        .enumerate()
        .flat_map(|(kind, t)| t.phrases.iter().map(move |p| (letters(p), kind)))
        .filter(|(p, _)| !p.is_empty())
        .collect();
    // covered[i]: the prefix of length i is covered; Some(kind) once a phrase matched.
    let mut covered: Vec<Option<Option<usize>>> = vec![None; message.len() + 1];
    covered[0] = Some(None);
    for i in 0..message.len() {
        let Some(kind_so_far) = covered[i] else { continue };
        if message[i] == ' ' || FILLERS.contains(&message[i]) {
            covered[i + 1] = covered[i + 1].or(Some(kind_so_far));
        }
        for (phrase, kind) in &phrases {
            let end = i + phrase.len();
            if end <= message.len() && message[i..end] == phrase[..] && whole_words(&message, i, end) {
                covered[end] = Some(Some(*kind));
            }
        }
    }
    covered[message.len()].flatten()
}

/// What `text` asks beyond small talk and requests for a human: the folded
/// text without the lexicon's handoff-request words ("瓶子碎了，转人工" →
/// "瓶子碎了，"), or None when nothing is left to answer. Drafts for agents
/// are made from this, not from "转人工".
pub fn substance(text: &str, lexicon: &Lexicon) -> Option<String> {
    let mut rest = fold(text);
    for word in &lexicon.human {
        let word = fold(word);
        if !word.trim().is_empty() {
            rest = rest.replace(&word, " ");
        }
    }
    let has_words = rest.chars().any(char::is_alphanumeric);
    (has_words && small_talk(&rest, lexicon).is_none()).then_some(rest)
}

/// Folded text with everything but letters and digits turned into spaces,
/// trimmed.
pub(super) fn letters(text: &str) -> Vec<char> {
    let folded: Vec<char> = fold(text).chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    let start = folded.iter().position(|c| *c != ' ').unwrap_or(folded.len());
    let end = folded.iter().rposition(|c| *c != ' ').map_or(start, |e| e + 1);
    folded[start..end].to_vec()
}

/// A Latin phrase must not start or end inside a Latin word ("hi" is not in "hit").
fn whole_words(message: &[char], start: usize, end: usize) -> bool {
    let latin = |c: &char| c.is_ascii_alphanumeric();
    let open = start == 0 || !(latin(&message[start - 1]) && latin(&message[start]));
    let close = end == message.len() || !(latin(&message[end - 1]) && latin(&message[end]));
    open && close
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kb::SmallTalk;

    fn lexicon() -> Lexicon {
        let talk = |kind: &str, phrases: &[&str]| SmallTalk {
            kind: kind.into(),
            phrases: phrases.iter().map(|p| p.to_string()).collect(),
            reply: BTreeMap::from([("zh".to_string(), format!("{kind}!"))]),
        };
        Lexicon {
            smalltalk: vec![
                talk("greeting", &["你好", "您好", "在吗", "在不在", "hi", "hello", "こんにちは"]),
                talk("thanks", &["谢谢", "thanks", "thank you", "ありがとう"]),
                talk("ack", &["好的", "嗯", "ok", "okay", "哈哈"]),
                talk("bot", &["你是机器人吗", "are you a bot"]),
            ],
            ..Lexicon::default()
        }
    }

    fn kind(text: &str) -> Option<&'static str> {
        small_talk(text, &lexicon()).map(|i| ["greeting", "thanks", "ack", "bot"][i])
    }

    #[test]
    fn whole_messages_of_small_talk_are_recognised() {
        assert_eq!(kind("在吗"), Some("greeting"));
        assert_eq!(kind("亲，在嗎？？"), Some("greeting"), "traditional, prefix particle, full-width punctuation");
        assert_eq!(kind("亲 在吗 😊"), Some("greeting"));
        assert_eq!(kind("你好呀～"), Some("greeting"));
        assert_eq!(kind("ＨＥＬＬＯ!"), Some("greeting"));
        assert_eq!(kind("好的，谢谢！"), Some("thanks"), "the last phrase decides");
        assert_eq!(kind("谢谢亲"), Some("thanks"));
        assert_eq!(kind("哈哈哈哈"), Some("ack"));
        assert_eq!(kind("嗯嗯"), Some("ack"));
        assert_eq!(kind("Thank you!!"), Some("thanks"));
        assert_eq!(kind("okay"), Some("ack"));
        assert_eq!(kind("你是机器人吗？"), Some("bot"));
        assert_eq!(kind("Are you a bot?"), Some("bot"));
        assert_eq!(kind("ありがとう"), Some("thanks"));
    }

    #[test]
    fn substance_leaves_out_requests_for_a_human_and_small_talk() {
        let lexicon = Lexicon { human: vec!["转人工".into(), "human agent".into()], ..lexicon() };
        let rest = substance("瓶子碎了，转人工！", &lexicon).unwrap();
        assert!(rest.contains("瓶子碎了") && !rest.contains("转人工"), "{rest}");
        assert_eq!(substance("转人工", &lexicon), None);
        assert_eq!(substance("你好 转人工", &lexicon), None);
        assert_eq!(substance("谢谢", &lexicon), None);
        assert!(substance("Human agent please, my parcel is lost", &lexicon).is_some_and(|s| s.contains("parcel")));
    }

    #[test]
    fn questions_are_not_small_talk() {
        for text in [
            "你好，发什么快递？",
            "在吗 这个孕妇能用吗",
            "谢谢，那运费呢",
            "hit",
            "oklahoma",
            "hi, is it genuine?",
            "好",
            "啊",
            "😊",
            "",
        ] {
            assert_eq!(kind(text), None, "{text}");
        }
        assert_eq!(small_talk("你好", &Lexicon::default()), None, "no small talk without a lexicon");
    }
}
