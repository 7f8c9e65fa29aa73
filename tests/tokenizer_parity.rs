//! The compact unigram model gives exactly the ids of the `tokenizers`
//! crate's own model (which needs ~290 MB): on every phrasing of the sample
//! knowledge base, every question and query of the shared evaluation sets,
//! and odd input (emoji, full-width and traditional characters, unknown
//! characters, special-token look-alikes, whitespace, long text).

use std::path::Path;

use xiaoer::embed::{default_model_dir, load_tokenizer};
use xiaoer::kb::{KbOptions, load_dir};

fn shared_texts() -> Vec<String> {
    let mut texts = Vec::new();
    for set in ["ant-dev", "bq-dev", "xling-dev"] {
        for (file, field) in [("faq.jsonl", "question"), ("queries.jsonl", "query")] {
            let path = Path::new("../shared/eval").join(set).join(file);
            let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                texts.push(v[field].as_str().unwrap().to_string());
            }
        }
    }
    texts
}

#[test]
fn compact_model_gives_the_crates_ids() {
    let path = default_model_dir().join("tokenizer.json");
    let mut reference = tokenizers::Tokenizer::from_file(&path).unwrap();
    let mut compact = load_tokenizer(&path).unwrap();
    reference.set_encode_special_tokens(true);
    compact.set_encode_special_tokens(true);

    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap();
    let mut texts: Vec<String> = kb.faqs.iter().flat_map(|f| f.phrasings().map(str::to_string)).collect();
    texts.extend(shared_texts());
    texts.extend(
        [
            "",
            " ",
            "\t\n",
            "退货😊😊👍🏻",
            "ＳＫ－Ⅱ神仙水２３０ｍｌ",
            "發什麼快遞？幾天到貨",
            "iPhone15的壳有吗 case for iPhone 15",
            "\u{E000}\u{E001}私用区字符\u{10FFFF}",
            "𠮷野家𩸽",
            "<s>退货</s><mask><unk><pad>",
            "ﾃｽﾄ半角カナ",
            "a\u{0301}e\u{0301} combining",
            "🇨🇳🇯🇵 flags",
        ]
        .map(String::from),
    );
    texts.push("七天无理由退货怎么申请？".repeat(60));
    assert!(texts.len() > 6000, "{} texts", texts.len());
    for prefix in ["query: ", "passage: "] {
        for text in &texts {
            let input = format!("{prefix}{text}");
            let want = reference.encode(input.as_str(), true).unwrap();
            let got = compact.encode(input.as_str(), true).unwrap();
            assert_eq!(got.get_ids(), want.get_ids(), "{input:?}");
            assert_eq!(got.get_offsets(), want.get_offsets(), "{input:?}");
        }
    }
    assert_eq!(compact.get_vocab_size(true), reference.get_vocab_size(true));
}
