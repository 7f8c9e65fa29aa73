//! Property tests: whatever bytes arrive as a knowledge file or an import, the
//! loaders never panic and every problem they report is located (a line inside
//! the file, a row inside the spreadsheet).

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use xiaoer::kb::{KbOptions, KnowledgeBase, Location, Product, load_path, parse_csv, parse_jsonl};

const CASES: u32 = 200;

const TOML: &str = r#"# 售后政策
[[product]]
id = "p-anessa"
name = "安热沙金瓶防晒乳60ml"
brand = "资生堂"
aliases = ["小金瓶"]

[[faq]]
id = "return-7day"
question = "七天无理由退货怎么申请？"
similar = ["不想要了能退吗", "7天无理由怎么退", "退货流程是什么"]
answer.zh = "在订单页点击“申请售后”，选择七天无理由退货，填写原因后提交即可。"
answer.en = "Open the order, choose After-sales, then 7-day return."
category = "退换货"
tags = ["退货"]
products = ["p-anessa"]
valid_from = 2026-01-01
valid_until = "2026-12-31T23:59:59+08:00"
priority = 2

[[faq]]
id = "ship-time"
question = "几天能到？"
answer = "保税仓发货，一般3–5个工作日送达。"

[handoff]
human = ["转人工", "人工客服"]
complaint = ["投诉"]
"#;

const JSONL: &str = concat!(
    "{\"id\":\"gift\",\"question\":\"可以礼品包装吗\",\"similar\":[\"能包装成礼物吗\"],\"answer\":\"暂不提供礼品包装\"}\n",
    "{\"id\":42,\"question\":\"怎么开发票\",\"answer\":{\"zh\":\"跨境商品不能开增值税发票\",\"en\":\"No VAT invoice\"}}\n",
    "\n",
    "{\"id\":\"tax\",\"question\":\"要交税吗\",\"answer\":\"按9.1%综合税率计税\",\"category\":\"税费\"}\n",
);

const CSV: &str = "编号,问题,相似问法,答案,英文答案,分类,商品,生效时间,失效时间\n\
ret,七天无理由退货怎么申请？,\"不想要了能退吗|7天无理由怎么退\n退货流程\",在订单页申请售后。,Apply in the order page.,退换货,p-anessa,2026-01-01,\n\
,'=HYPERLINK(\"http://x\"),,'-不是公式,,其他,,,2026-12-31\n\
ship,几天能到？,,\"保税仓发货，一般3–5个工作日送达。\",,物流,,,\n";

/// Characters that have broken text handling before: emoji, full-width
/// forms, bidi controls, zero-width and control characters, TOML/CSV/JSON syntax.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '😊',
            '🤬',
            '👍',
            '\u{1F3FD}',
            '\u{FE0F}',
            '\u{200D}',
            '\u{200B}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{202E}',
            '\u{202A}',
            '\u{2066}',
            '\u{2069}',
            '\u{200F}',
            '\u{3000}',
            'Ａ',
            '１',
            '！',
            '，',
            '退',
            '貨',
            '\u{0}',
            '\u{7}',
            '\u{7F}',
            '\u{85}',
            '\u{2028}',
            '\r',
            '\n',
            '\t',
            '"',
            '\'',
            '\\',
            '[',
            ']',
            '{',
            '}',
            '=',
            ',',
            '#',
            '|',
            '.',
            '-',
            '@',
            '+',
            '\u{FFFD}',
            '\u{10FFFF}',
        ]),
        any::<char>(),
    ]
}

fn tricky_text() -> impl Strategy<Value = String> {
    vec(tricky_char(), 1..12).prop_map(|cs| cs.into_iter().collect())
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(Index),
    Delete(Index, usize),
    /// Inserted at a character boundary, so valid UTF-8 stays valid.
    InsertText(Index, String),
    InsertBytes(Index, Vec<u8>),
    Xor(Index, u8),
}

/// Text-level mutations only (the result stays UTF-8 if the input was).
fn text_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (any::<Index>(), 1..40usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        6 => (any::<Index>(), tricky_text()).prop_map(|(i, t)| Mutation::InsertText(i, t)),
    ]
}

fn byte_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => text_mutation(),
        2 => (any::<Index>(), vec(any::<u8>(), 1..6)).prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
        2 => (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Xor(i, x)),
    ]
}

/// A position in `0..=len` moved back to the start of a UTF-8 sequence.
fn boundary(bytes: &[u8], at: &Index) -> usize {
    let mut i = at.index(bytes.len() + 1);
    while i > 0 && i < bytes.len() && bytes[i] & 0xC0 == 0x80 {
        i -= 1;
    }
    i
}

fn mutate(original: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for m in mutations {
        match m {
            Mutation::Truncate(at) => bytes.truncate(boundary(&bytes, at)),
            Mutation::Delete(at, n) => {
                let start = boundary(&bytes, at);
                let mut end = (start + n).min(bytes.len());
                while end < bytes.len() && bytes[end] & 0xC0 == 0x80 {
                    end += 1;
                }
                bytes.drain(start..end);
            }
            Mutation::InsertText(at, text) => {
                let i = boundary(&bytes, at);
                bytes.splice(i..i, text.bytes());
            }
            Mutation::InsertBytes(at, new) => {
                let i = at.index(bytes.len() + 1);
                bytes.splice(i..i, new.iter().copied());
            }
            Mutation::Xor(at, x) => {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
            }
        }
    }
    bytes
}

/// Loads `bytes` as the file `name` and checks that every problem names a
/// line of that file, except the whole-file "no FAQ entries found".
fn check_loader(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    if let Err(e) = load_path(&path, &KbOptions::default()) {
        prop_assert!(!e.problems.is_empty());
        for p in &e.problems {
            match p.line {
                Some(n) => {
                    prop_assert!(p.file == path, "{p}");
                    prop_assert!((1..=lines).contains(&n), "line {n} of {lines}: {p}");
                }
                None => prop_assert_eq!(&p.message, "no FAQ entries found", "{}", p),
            }
        }
    }
    Ok(())
}

fn kb() -> KnowledgeBase {
    let location = Location { file: Path::new("products.toml").to_path_buf(), line: 1 };
    let product = Product {
        id: "p-anessa".into(),
        name: "安热沙金瓶防晒乳60ml".into(),
        brand: "资生堂".into(),
        aliases: vec!["安热沙".into()],
        category: "美妆护肤".into(),
        location,
    };
    KnowledgeBase { products: vec![product], ..Default::default() }
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let units = std::iter::once(0xFEFF).chain(text.encode_utf16());
    units.flat_map(|u| if big_endian { u.to_be_bytes() } else { u.to_le_bytes() }).collect()
}

/// `text` as UTF-8, UTF-8 with BOM, GBK, UTF-16LE and UTF-16BE.
fn encodings(text: &str) -> [Vec<u8>; 5] {
    [
        text.as_bytes().to_vec(),
        [b"\xEF\xBB\xBF", text.as_bytes()].concat(),
        encoding_rs::GBK.encode(text).0.into_owned(),
        utf16(text, false),
        utf16(text, true),
    ]
}

/// Every problem's row is the header or one of the rows read.
fn check_rows(bytes: &[u8], jsonl: bool) -> Result<(), TestCaseError> {
    let kb = kb();
    let report = if jsonl { parse_jsonl(bytes, &kb) } else { parse_csv(bytes, &kb) };
    let last = if jsonl {
        // JSON Lines problems are by line, blank lines included.
        String::from_utf8_lossy(bytes).lines().count().max(report.rows)
    } else {
        report.rows + 1
    };
    for (row, message) in &report.problems {
        prop_assert!((1..=last).contains(row), "row {row} of {last}: {message}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn toml_loader_any_text(text in "(?s).{0,400}") {
        check_loader("kb.toml", text.as_bytes())?;
    }

    #[test]
    fn toml_loader_any_bytes(bytes in vec(any::<u8>(), 0..600)) {
        check_loader("kb.toml", &bytes)?;
    }

    #[test]
    fn toml_loader_mutated_text(ms in vec(text_mutation(), 1..6)) {
        check_loader("kb.toml", &mutate(TOML.as_bytes(), &ms))?;
    }

    #[test]
    fn toml_loader_mutated_bytes(ms in vec(byte_mutation(), 1..6)) {
        check_loader("kb.toml", &mutate(TOML.as_bytes(), &ms))?;
    }

    #[test]
    fn jsonl_loader_any_text(text in "(.{0,80}\n){0,6}") {
        check_loader("kb.jsonl", text.as_bytes())?;
    }

    #[test]
    fn jsonl_loader_mutated(ms in vec(byte_mutation(), 1..6)) {
        check_loader("kb.jsonl", &mutate(JSONL.as_bytes(), &ms))?;
    }

    #[test]
    fn jsonl_import_mutated(ms in vec(byte_mutation(), 1..6)) {
        check_rows(&mutate(JSONL.as_bytes(), &ms), true)?;
    }

    #[test]
    fn csv_any_text_in_every_encoding(text in "(.{0,60}[,\n\"]){0,8}") {
        for bytes in encodings(&text) {
            check_rows(&bytes, false)?;
        }
    }

    #[test]
    fn csv_any_bytes(bytes in vec(any::<u8>(), 0..600)) {
        check_rows(&bytes, false)?;
    }

    #[test]
    fn csv_mutated_text_in_every_encoding(ms in vec(text_mutation(), 1..6)) {
        let text = String::from_utf8(mutate(CSV.as_bytes(), &ms)).unwrap();
        for bytes in encodings(&text) {
            check_rows(&bytes, false)?;
        }
    }

    #[test]
    fn csv_mutated_bytes_in_every_encoding(ms in vec(byte_mutation(), 1..6)) {
        for bytes in encodings(CSV) {
            check_rows(&mutate(&bytes, &ms), false)?;
        }
    }
}

/// The unmutated inputs are valid, so the mutations start from files that load.
#[test]
fn originals_load() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("kb.toml", TOML), ("kb.jsonl", JSONL)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let kb = load_path(&path, &KbOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(kb.faqs.len() >= 2, "{name}");
    }
    for bytes in encodings(CSV) {
        let report = parse_csv(&bytes, &kb());
        assert!(report.problems.is_empty(), "{}: {:?}", report.encoding, report.problems);
        assert_eq!(report.entries.len(), 3, "{}", report.encoding);
    }
    assert!(parse_jsonl(JSONL.as_bytes(), &kb()).problems.is_empty());
}
