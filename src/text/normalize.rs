use unicode_normalization::UnicodeNormalization;
use zhconv::{Variant, zhconv};

/// Canonical form of a text for matching:
/// NFKC (full-width → half-width, compatibility forms), lower case,
/// traditional → simplified Chinese, and every character that is not a letter
/// or digit (punctuation, emoji, symbols, odd spaces) turned into one space.
/// `-`, `.` and `_` survive between two letters/digits, and `+` / `#` after
/// one, so that model numbers such as `SK-II`, `3.5`, `C++` or `C#` stay whole.
pub fn normalize(text: &str) -> String {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    let simplified = if folded.chars().any(is_han) { zhconv(&folded, Variant::ZhHans) } else { folded };
    let chars: Vec<char> = simplified.chars().collect();
    let mut out = String::with_capacity(simplified.len());
    let mut pending_space = false;
    for (i, &c) in chars.iter().enumerate() {
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        let next = chars.get(i + 1).copied().unwrap_or(' ');
        let keep = c.is_alphanumeric()
            || (matches!(c, '-' | '.' | '_') && prev.is_ascii_alphanumeric() && next.is_ascii_alphanumeric())
            || (matches!(c, '+' | '#') && (prev.is_ascii_alphanumeric() || prev == '+'));
        if keep {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out
}

/// NFKC, lower case and simplified Chinese, punctuation and emoji kept:
/// for matching lexicon words where `!` and 😡 still mean something.
pub fn fold(text: &str) -> String {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).collect();
    if folded.chars().any(is_han) { zhconv(&folded, Variant::ZhHans) } else { folded }
}

pub(crate) fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn full_width_becomes_half_width_and_lower_case() {
        assert_eq!(normalize("ＳＫ－ＩＩ神仙水１２０ｍｌ"), "sk-ii神仙水120ml");
        assert_eq!(normalize("ＡＢＣ　ｄｅｆ"), "abc def");
    }

    #[test]
    fn traditional_becomes_simplified() {
        assert_eq!(normalize("退貨運費誰來付？"), "退货运费谁来付");
        assert_eq!(normalize("發票怎麼開"), "发票怎么开");
    }

    #[test]
    fn punctuation_and_emoji_become_single_spaces() {
        assert_eq!(normalize("  怎么退货？？？😡😡  快点!!! "), "怎么退货 快点");
        assert_eq!(normalize("包邮吗🙏"), "包邮吗");
        assert_eq!(normalize("\u{3000}\t\n"), "");
    }

    #[test]
    fn model_numbers_keep_inner_symbols() {
        assert_eq!(normalize("iPhone15ProMax"), "iphone15promax");
        assert_eq!(normalize("维生素C 1.5g/片"), "维生素c 1.5g 片");
        assert_eq!(normalize("C++ 和 c#"), "c++ 和 c#");
        assert_eq!(normalize("-优惠-"), "优惠");
    }

    #[test]
    fn mixed_chinese_english_keeps_both() {
        assert_eq!(normalize("Dyson吹风机HD15 怎么用?"), "dyson吹风机hd15 怎么用");
    }
}
