//! Import and export in the formats operators keep: CSV spreadsheets (UTF-8
//! or GBK) with a header row 问题, 相似问法 (`|` or newline separated), 答案,
//! 分类, 商品, 生效时间, 失效时间 (optional 编号 / id, 英文答案; English headers
//! accepted too), and JSON Lines. Every problem is listed by row (line);
//! nothing is imported while any row is bad unless asked.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::edit::{FaqEdit, FaqInput};
use super::error::LineIndex;
use super::types::KnowledgeBase;
use super::validate::is_blank;

/// What an import found: the entries it would write and every bad row.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Encoding the file was read as (`UTF-8` or `GBK`).
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
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (text, encoding) = match std::str::from_utf8(bytes) {
        Ok(t) => (t.to_string(), "UTF-8"),
        Err(_) => (encoding_rs::GBK.decode(bytes).0.into_owned(), "GBK"),
    };
    let mut report = ImportReport { encoding: encoding.into(), ..Default::default() };
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
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
        let cell = |name: &str| index(name).and_then(|i| record.get(i)).map(str::trim).unwrap_or("").to_string();
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
            report.problems.push((row, format!("same entry as row {first} (id `{id}`)")));
            continue;
        }
        check(&mut report, row, id, input, kb);
    }
    report
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
            report.problems.push((row, format!("same id `{id}` as line {first}")));
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
        w.write_record([
            f.id.as_str(),
            &e.question,
            &e.similar.join("|"),
            &answer("zh"),
            &answer("en"),
            &e.category,
            &e.products.join("|"),
            e.valid_from.as_deref().unwrap_or(""),
            e.valid_until.as_deref().unwrap_or(""),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("written from &str"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
