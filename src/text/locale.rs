/// A best guess of the asker's locale from the script of their text, for
/// requests that do not say: kana → `ja`, Hangul → `ko`, Han → `zh`, Latin
/// letters only → `en`; anything else (emoji, digits) → `zh`, the store's own.
pub fn detect_locale(text: &str) -> &'static str {
    let (mut han, mut latin) = (0, 0);
    for c in text.chars() {
        match c as u32 {
            0x3040..=0x30FF => return "ja",
            0xAC00..=0xD7AF | 0x1100..=0x11FF => return "ko",
            _ if super::normalize::is_han(c) => han += 1,
            _ if c.is_ascii_alphabetic() => latin += 1,
            _ => {}
        }
    }
    if latin > 0 && han == 0 { "en" } else { "zh" }
}

#[cfg(test)]
mod tests {
    use super::detect_locale;

    #[test]
    fn scripts_map_to_locales() {
        assert_eq!(detect_locale("七天无理由退货怎么申请？"), "zh");
        assert_eq!(detect_locale("退貨運費誰付"), "zh");
        assert_eq!(detect_locale("Do I have to pay import tax?"), "en");
        assert_eq!(detect_locale("返品できますか"), "ja");
        assert_eq!(detect_locale("반품할 수 있나요?"), "ko");
        assert_eq!(detect_locale("SK-II神仙水是正品吗"), "zh");
        assert_eq!(detect_locale("😊👍"), "zh");
    }
}
