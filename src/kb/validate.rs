//! The limits every FAQ entry meets, wherever it enters (knowledge files,
//! imports, the admin API), in one place so the service layer checks the same.

/// FAQ ids: 1–64 ASCII letters, digits, `-`, `_`, `.`; they end up in URLs,
/// file names and log lines, so nothing that could break or hide in those.
pub const MAX_ID_CHARS: usize = 64;
/// The standard question and each similar phrasing, in characters.
pub const MAX_PHRASING_CHARS: usize = 500;
/// Each answer (per locale), in characters.
pub const MAX_ANSWER_CHARS: usize = 5000;
/// Similar phrasings per entry.
pub const MAX_SIMILAR: usize = 200;

/// Whether `text` shows nothing: only whitespace (full-width U+3000 included),
/// control characters, zero-width characters, bidi marks, embeddings and
/// isolates, and variation selectors. Such a question or answer is empty.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
}

/// Format characters that render as nothing on their own.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                      // soft hyphen
        | '\u{034F}'                    // combining grapheme joiner
        | '\u{061C}'                    // Arabic letter mark (bidi)
        | '\u{180E}'                    // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space, (non-)joiner, LRM, RLM
        | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'       // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'       // bidi isolates, deprecated format controls
        | '\u{3164}' | '\u{FFA0}'       // Hangul fillers
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors
        | '\u{FEFF}'                    // zero-width no-break space (BOM)
        | '\u{E0000}'..='\u{E007F}'     // tag characters
        | '\u{E0100}'..='\u{E01EF}'     // variation selectors supplement
    )
}

/// Checks a FAQ id against the rules of [`MAX_ID_CHARS`]; the message names
/// the id with anything invisible escaped.
pub fn check_id(id: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let problem = if id.is_empty() {
        "must not be empty".to_string()
    } else if id.chars().count() > MAX_ID_CHARS {
        format!("is too long: {} characters (at most {MAX_ID_CHARS})", id.chars().count())
    } else if !id.chars().all(allowed) {
        "may contain only ASCII letters, digits, `-`, `_` and `.`".to_string()
    } else if id.starts_with('.') {
        "must not start with `.`".to_string()
    } else if id.contains("..") {
        "must not contain `..`".to_string()
    } else {
        return Ok(());
    };
    Err(format!("id `{}` {problem}", shown(id)))
}

/// Checks that `text` has at most `max` characters; `what` names it in the message.
pub fn check_length(what: &str, text: &str, max: usize) -> Result<(), String> {
    match text.chars().count() {
        n if n > max => Err(format!("{what} is too long: {n} characters (at most {max})")),
        _ => Ok(()),
    }
}

/// Checks the number of similar phrasings against [`MAX_SIMILAR`].
pub fn check_similar_count(n: usize) -> Result<(), String> {
    match n {
        n if n > MAX_SIMILAR => Err(format!("too many similar phrasings: {n} (at most {MAX_SIMILAR})")),
        _ => Ok(()),
    }
}

/// `text` cut to a readable length with control and invisible characters
/// escaped, so a message cannot be reordered or split by the text it quotes.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_ID_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_whitespace_and_invisible_characters_only() {
        for blank in [
            "",
            " ",
            "\u{3000}",
            " \t\r\n",
            "\u{200B}\u{200B}",
            "\u{FEFF}",
            "\u{202E}\u{2066}\u{200F}",
            "\u{FE0F}",
            "\u{0}\u{7F}\u{2060}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for text in ["亲\u{200B}", "\u{200B}亲", "a", "\u{3000}退货\u{3000}", "😊", "❤\u{FE0F}", "-"] {
            assert!(!is_blank(text), "{text:?}");
        }
    }

    #[test]
    fn ids_are_short_plain_ascii_without_dot_dot() {
        for ok in ["return-7day", "csv-0123456789ab", "a", "v1.2_x", "A.b-C_d", &"x".repeat(MAX_ID_CHARS)] {
            assert_eq!(check_id(ok), Ok(()), "{ok:?}");
        }
        for (bad, why) in [
            ("", "must not be empty"),
            (&"x".repeat(MAX_ID_CHARS + 1), "too long: 65 characters"),
            ("a b", "only ASCII"),
            ("a\nb", "only ASCII"),
            ("a/b", "only ASCII"),
            ("a/../b", "only ASCII"),
            ("退货", "only ASCII"),
            ("ab\u{202E}cd", "only ASCII"),
            ("ab\u{200B}", "only ASCII"),
            ("ａｂ", "only ASCII"),
            (".hidden", "must not start with `.`"),
            ("a..b", "must not contain `..`"),
            ("..", "must not start with `.`"),
        ] {
            let err = check_id(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        // The message shows invisible characters escaped, and long ids cut.
        assert_eq!(
            check_id("ab\u{202E}\n").unwrap_err(),
            "id `ab\\u{202e}\\u{a}` may contain only ASCII letters, digits, `-`, `_` and `.`"
        );
        assert!(check_id(&"界".repeat(10_000)).unwrap_err().len() < 400);
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(check_length("`question`", &"退".repeat(MAX_PHRASING_CHARS), MAX_PHRASING_CHARS).is_ok());
        let err = check_length("`question`", &"退".repeat(MAX_PHRASING_CHARS + 1), MAX_PHRASING_CHARS).unwrap_err();
        assert_eq!(err, "`question` is too long: 501 characters (at most 500)");
        assert!(check_similar_count(MAX_SIMILAR).is_ok());
        assert!(check_similar_count(MAX_SIMILAR + 1).unwrap_err().contains("201"));
    }
}
