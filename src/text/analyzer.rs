use std::collections::{HashMap, HashSet};

use jieba_rs::{Jieba, TokenizeMode};

use super::normalize::{is_han, normalize};

/// Function words that carry no intent in a short customer-service question.
/// Kept small on purpose: BM25 already discounts frequent words, and anything
/// that can change meaning (不, 没, 怎么, 哪) stays.
const STOPWORDS: &[&str] = &[
    "的", "了", "吗", "呢", "吧", "啊", "呀", "哦", "嘛", "么", "哈", "呗", "啦", "喔", "嗯", "亲", "我", "你", "您",
    "我们", "请问", "请", "一下", "是", "在", "a", "an", "the", "is", "are", "am", "be", "was", "do", "does", "did",
    "i", "you", "my", "me", "we", "our", "us", "your", "it", "its", "they", "them", "this", "that", "these", "those",
    "to", "of", "and", "or", "in", "on", "at", "for", "by", "from", "with", "can", "could", "will", "would", "should",
    "have", "has", "please", "what", "how", "when", "where", "which", "who", "why", "there", "if", "so", "about",
];

/// Normalises and segments text into index/query terms.
///
/// Built once per knowledge base (custom words and synonyms come from it) and
/// shared read-only; segmenting never allocates beyond the returned terms.
pub struct Analyzer {
    jieba: Jieba,
    canonical: HashMap<String, String>,
    stopwords: HashSet<&'static str>,
}

impl Analyzer {
    /// `custom_words`: brand / product / model-number words jieba should keep whole.
    /// `synonym_groups`: each group's members are mapped to its first member.
    pub fn new<W, G>(custom_words: W, synonym_groups: G) -> Self
    where
        W: IntoIterator,
        W::Item: AsRef<str>,
        G: IntoIterator,
        G::Item: IntoIterator,
        <G::Item as IntoIterator>::Item: AsRef<str>,
    {
        let mut jieba = Jieba::new();
        let mut add = |w: &str| {
            let w = normalize(w);
            // A word with an inner space cannot be one jieba token.
            if !w.is_empty() && !w.contains(' ') {
                jieba.add_word(&w, None, None);
            }
        };
        for word in custom_words {
            add(word.as_ref());
        }
        let mut canonical = HashMap::new();
        for group in synonym_groups {
            let members: Vec<String> =
                group.into_iter().map(|m| normalize(m.as_ref())).filter(|m| !m.is_empty()).collect();
            let Some(head) = members.first().cloned() else {
                continue;
            };
            for m in &members {
                add(m);
                if *m != head {
                    canonical.insert(m.clone(), head.clone());
                }
            }
        }
        Analyzer { jieba, canonical, stopwords: STOPWORDS.iter().copied().collect() }
    }

    /// The terms of `text`, in order, for BM25. Fine-grained (search mode)
    /// segmentation: long words also yield their dictionary sub-words, and
    /// mixed letter/digit tokens (`iphone15promax`) also yield their runs,
    /// and multi-character Chinese words also yield their characters.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let normalized = normalize(text);
        let mut out = Vec::with_capacity(normalized.len() / 2);
        for token in self.jieba.cut_for_search(&normalized, true) {
            let word = token.word.trim();
            if word.is_empty() || self.stopwords.contains(word) {
                continue;
            }
            let word = self.canonical.get(word).map_or(word, String::as_str);
            out.push(word.to_owned());
            push_alnum_runs(word, &mut out);
            // Single characters of multi-character Chinese words: short
            // questions often share meaning through characters of words
            // segmented differently (measured on ant-dev / bq-dev: R@1 +4 pt).
            if word.chars().count() > 1 && word.chars().all(is_han) {
                let mut buf = [0u8; 4];
                for c in word.chars() {
                    let c = c.encode_utf8(&mut buf);
                    if !self.stopwords.contains(&*c) {
                        out.push(c.to_owned());
                    }
                }
            }
        }
        out
    }

    /// Byte offsets in `text` (as given, not normalised) where a word starts
    /// or ends, sorted: the edges of every word jieba's search mode finds,
    /// sub-words included (大骗子 also yields 骗子). A complaint or anger
    /// word must start and end at such edges: 天气死冷 holds 气死 only across
    /// the edge of 天气.
    pub fn word_edges(&self, text: &str) -> Vec<usize> {
        let mut edges: Vec<usize> = self
            .jieba
            .tokenize(text, TokenizeMode::Search, true)
            .iter()
            .flat_map(|t| [t.byte_start, t.byte_end])
            .collect();
        edges.sort_unstable();
        edges.dedup();
        edges
    }

    /// One analyzer without custom words or synonyms, for unit tests
    /// elsewhere (building jieba's dictionary takes a while).
    #[cfg(test)]
    pub(crate) fn plain() -> &'static Analyzer {
        static PLAIN: std::sync::LazyLock<Analyzer> =
            std::sync::LazyLock::new(|| Analyzer::new(Vec::<&str>::new(), Vec::<Vec<&str>>::new()));
        &PLAIN
    }
}

/// `iphone15promax` → `iphone`, `15`, `promax`; nothing for single-run words.
fn push_alnum_runs(word: &str, out: &mut Vec<String>) {
    if !word.is_ascii() {
        return;
    }
    let mut runs = Vec::new();
    let mut start = 0;
    let bytes = word.as_bytes();
    for i in 1..=bytes.len() {
        let boundary = i == bytes.len()
            || !bytes[i].is_ascii_alphanumeric()
            || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit();
        if boundary {
            let run = &word[start..i];
            if run.bytes().all(|b| b.is_ascii_alphanumeric()) && !run.is_empty() {
                runs.push(run);
            }
            start = if i < bytes.len() && !bytes[i].is_ascii_alphanumeric() { i + 1 } else { i };
        }
    }
    if runs.len() > 1 {
        out.extend(runs.into_iter().map(str::to_owned));
    }
}

#[cfg(test)]
mod tests {
    use super::Analyzer;

    fn analyzer() -> Analyzer {
        Analyzer::new(
            ["SK-II", "神仙水", "跨境综合税", "运费险", "iPhone15ProMax"],
            [vec!["多少钱", "价格", "价钱"], vec!["退货", "退换货"]],
        )
    }

    #[test]
    fn word_edges_fall_on_character_boundaries_of_the_text_as_given() {
        assert!(Analyzer::plain().word_edges("").is_empty());
        for text in ["北方天气死冷😡", "ＳＫ－ＩＩ神仙水 ok?", "e\u{301}好评👍🏽！", "你们就是大骗子"]
        {
            let edges = Analyzer::plain().word_edges(text);
            assert_eq!((edges.first(), edges.last()), (Some(&0), Some(&text.len())), "{text}");
            assert!(edges.iter().all(|&e| text.is_char_boundary(e)), "{text}: {edges:?}");
        }
        let text = "北方天气死冷";
        let edges = Analyzer::plain().word_edges(text);
        assert!(edges.contains(&text.find("天气").unwrap()) && !edges.contains(&text.find("气").unwrap()));
        // Search mode: 骗子 is also a word of 大骗子.
        let text = "你们就是大骗子";
        assert!(Analyzer::plain().word_edges(text).contains(&text.find("骗子").unwrap()));
    }

    #[test]
    fn custom_words_stay_whole() {
        let t = analyzer().terms("SK-II神仙水是正品吗");
        assert!(t.contains(&"sk-ii".to_string()), "{t:?}");
        assert!(t.contains(&"神仙水".to_string()), "{t:?}");
        assert!(t.contains(&"正品".to_string()), "{t:?}");
        assert!(!t.contains(&"吗".to_string()), "stopword kept: {t:?}");
    }

    #[test]
    fn traditional_and_full_width_match_simplified() {
        let a = analyzer();
        assert_eq!(a.terms("跨境綜合稅怎麼算？"), a.terms("跨境综合税怎么算"));
        assert_eq!(a.terms("ＳＫ－ＩＩ神仙水"), a.terms("sk-ii神仙水"));
    }

    #[test]
    fn synonyms_map_to_the_group_head() {
        let a = analyzer();
        assert!(a.terms("这个价钱是多少").contains(&"多少钱".to_string()));
        assert!(a.terms("退换货要运费吗").contains(&"退货".to_string()));
    }

    #[test]
    fn model_numbers_split_into_runs() {
        let t = analyzer().terms("iPhone15ProMax的壳有吗");
        for w in ["iphone15promax", "iphone", "15", "promax"] {
            assert!(t.contains(&w.to_string()), "{w} missing in {t:?}");
        }
    }

    #[test]
    fn emoji_and_mixed_text() {
        let t = analyzer().terms("运费险😊怎么理赔 refund please");
        assert!(t.contains(&"运费险".to_string()), "{t:?}");
        assert!(t.contains(&"理赔".to_string()), "{t:?}");
        assert!(t.contains(&"refund".to_string()), "{t:?}");
        assert!(!t.contains(&"please".to_string()), "{t:?}");
        assert!(analyzer().terms("😊😊🙏").is_empty());
    }
}
