//! Bad knowledge files: every kind of problem is reported with file and line,
//! all problems at once, and the CLI names them and exits non-zero.

use std::fs;
use std::path::Path;
use std::process::Command;

use xiaoer::kb::{KbOptions, Problem, load_dir};

const PRODUCTS: &str = r#"
[[product]]
id = "p-1"
name = "安热沙金瓶防晒乳60ml"
"#;

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn problems(files: &[(&str, &str)]) -> Vec<Problem> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "products.toml", PRODUCTS);
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    load_dir(dir.path(), &KbOptions::default()).expect_err("must fail").problems
}

fn assert_problem(ps: &[Problem], file: &str, line: usize, needle: &str) {
    assert!(
        ps.iter().any(|p| p.file.ends_with(file) && p.line == Some(line) && p.message.contains(needle)),
        "expected {file}:{line} containing {needle:?}, got:\n{}",
        ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let a = "[[faq]]\nid = \"ship\"\nquestion = \"发什么快递？\"\nanswer = \"中通\"\n";
    let b = "\n\n[[faq]]\nid = \"ship\"\nquestion = \"發貨用什麼快遞\"\nanswer = \"圆通\"\n";
    let ps = problems(&[("a.toml", a), ("b.toml", b)]);
    assert_problem(&ps, "b.toml", 3, "duplicate faq id `ship`");
    assert!(ps[0].message.contains("a.toml:1"), "{}", ps[0]);
}

#[test]
fn empty_question_and_answer() {
    let t = "[[faq]]\nid = \"x\"\nquestion = \"   \"\nanswer = \"\"\n\n[[faq]]\nid = \"y\"\nquestion = \"运费险怎么赔\"\nanswer.zh = \"\"\nanswer.en = \"ok\"\n";
    let ps = problems(&[("faq.toml", t)]);
    assert_problem(&ps, "faq.toml", 3, "`question` is empty");
    assert_problem(&ps, "faq.toml", 4, "empty answer for locale `zh`");
    assert_problem(&ps, "faq.toml", 9, "empty answer for locale `zh`");
}

#[test]
fn unknown_keys_are_located() {
    let t = "[[faq]]\nid = \"x\"\nquestion = \"包邮吗\"\nanswer = \"包邮\"\nanwser_en = \"Free shipping\"\n";
    let ps = problems(&[("faq.toml", t), ("more.toml", "[[faqs]]\nid = \"z\"\n")]);
    assert_problem(&ps, "faq.toml", 5, "unknown key `anwser_en`");
    assert_problem(&ps, "more.toml", 1, "unknown table `faqs`");
}

#[test]
fn bad_dates_and_inverted_windows() {
    let t = concat!(
        "[[faq]]\nid = \"d11\"\nquestion = \"双11尾款什么时候付\"\nanswer = \"11月10日\"\n",
        "valid_from = \"2026-02-30\"\n\n",
        "[[faq]]\nid = \"d12\"\nquestion = \"双12有什么活动\"\nanswer = \"满减\"\n",
        "valid_from = 2026-12-13\nvalid_until = 2026-11-20\n",
    );
    let ps = problems(&[("promo.toml", t)]);
    assert_problem(&ps, "promo.toml", 5, "bad date in `valid_from`");
    assert_problem(&ps, "promo.toml", 12, "`valid_until` must be after `valid_from`");
}

#[test]
fn unknown_product_ids() {
    let t = "[[faq]]\nid = \"x\"\nquestion = \"安热沙怎么用\"\nanswer = \"摇匀\"\nproducts = [\n  \"p-1\",\n  \"p-404\",\n]\n";
    let ps = problems(&[("faq.toml", t)]);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_problem(&ps, "faq.toml", 7, "unknown product id `p-404`");
}

#[test]
fn missing_fields_wrong_types_and_answer_without_zh() {
    let t = concat!(
        "[[faq]]\nquestion = \"发票怎么开\"\nanswer = \"不能开\"\n\n",
        "[[faq]]\nid = \"t\"\nquestion = \"税率\"\nsimilar = \"税率是多少\"\nanswer = \"9.1%\"\n\n",
        "[[faq]]\nid = \"e\"\nquestion = \"可以退货吗\"\nanswer = { en = \"yes\" }\n",
    );
    let ps = problems(&[("faq.toml", t)]);
    assert_problem(&ps, "faq.toml", 1, "missing `id`");
    assert_problem(&ps, "faq.toml", 8, "");
    assert_problem(&ps, "faq.toml", 14, "needs a `zh` answer");
}

#[test]
fn toml_syntax_error_is_located_and_other_files_still_checked() {
    let bad = "[[faq]]\nid = \"x\"\nquestion = \"包邮吗\nanswer = \"包邮\"\n";
    let dup = "[[faq]]\nid = \"a\"\nquestion = \"q\"\nanswer = \"a\"\n[[faq]]\nid = \"a\"\nquestion = \"q2\"\nanswer = \"a2\"\n";
    let ps = problems(&[("bad.toml", bad), ("dup.toml", dup)]);
    assert_problem(&ps, "bad.toml", 3, "invalid TOML");
    assert_problem(&ps, "dup.toml", 5, "duplicate faq id `a`");
}

#[test]
fn jsonl_problems_by_line_and_bad_synonyms() {
    let jsonl = "{\"id\":\"1\",\"question\":\"花呗怎么还款\",\"answer\":\"自动扣款\"}\n{not json}\n\n{\"id\":\"2\",\"question\":\"\",\"answer\":\"x\"}\n{\"id\":\"3\",\"question\":\"借呗\"}\n";
    let ps = problems(&[("import.jsonl", jsonl), ("synonyms.txt", "# 注释\n多少钱 = 价格\n退货\n")]);
    assert_problem(&ps, "import.jsonl", 2, "invalid JSON");
    assert_problem(&ps, "import.jsonl", 4, "`question` is empty");
    assert_problem(&ps, "import.jsonl", 5, "answer");
    assert_problem(&ps, "synonyms.txt", 3, "at least two words");
}

#[test]
fn non_utf8_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "products.toml", PRODUCTS);
    // "退货" in GBK.
    fs::write(dir.path().join("gbk.toml"), [0xcd, 0xcb, 0xbb, 0xf5]).unwrap();
    let ps = load_dir(dir.path(), &KbOptions::default()).unwrap_err().problems;
    assert!(ps[0].file.ends_with("gbk.toml") && ps[0].message.contains("UTF-8"), "{ps:?}");
}

#[test]
fn non_utf8_names_the_line_of_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "products.toml", PRODUCTS);
    let mut toml = "# 退货政策\n[[faq]]\nid = \"r\"\nquestion = \"".as_bytes().to_vec();
    toml.extend([0xcd, 0xcb, 0xbb, 0xf5]); // "退货" in GBK
    toml.extend("\"\nanswer = \"可以\"\n".as_bytes());
    fs::write(dir.path().join("gbk.toml"), toml).unwrap();
    // A UTF-8 sequence cut short at the very end of the file.
    let mut jsonl = "{\"id\":\"1\",\"question\":\"包邮吗\",\"answer\":\"包邮\"}\n\n".as_bytes().to_vec();
    jsonl.extend(&"退".as_bytes()[..2]);
    fs::write(dir.path().join("cut.jsonl"), jsonl).unwrap();
    let ps = load_dir(dir.path(), &KbOptions::default()).unwrap_err().problems;
    assert_problem(&ps, "gbk.toml", 4, "not valid UTF-8");
    assert_problem(&ps, "cut.jsonl", 3, "not valid UTF-8");
    let shown = ps.iter().find(|p| p.file.ends_with("gbk.toml")).unwrap().to_string();
    assert!(shown.ends_with("gbk.toml:4: not valid UTF-8 (byte 0xCD; save the file as UTF-8)"), "{shown}");
}

#[test]
fn bad_ids_and_overlong_texts_are_located() {
    let similar: String = (0..=200).map(|i| format!("  \"怎么退货{i}\",\n")).collect();
    let toml = [
        "[[faq]]\nid = \"../etc/passwd\"\nquestion = \"退货地址\"\nanswer = \"见订单页\"\n\n".to_string(),
        "[[faq]]\nid = \"gift\\u202Etxt.exe\"\nquestion = \"有赠品吗\"\nanswer = \"有\"\n\n".to_string(),
        format!("[[faq]]\nid = \"long-q\"\nquestion = \"{}\"\nanswer = \"好的\"\n\n", "问".repeat(501)),
        format!("[[faq]]\nid = \"many\"\nquestion = \"怎么退货\"\nsimilar = [\n{similar}]\nanswer = {{ zh = \"{}\", en = \"ok\" }}\n", "答".repeat(5001)),
    ]
    .concat();
    let jsonl = [
        "{\"id\":\"a/b\",\"question\":\"包邮吗\",\"answer\":\"包邮\"}\n".to_string(),
        format!("{{\"id\":\"long\",\"question\":\"{}\",\"answer\":\"好\"}}\n", "问".repeat(501)),
        format!("{{\"id\":\"{}\",\"question\":\"q\",\"answer\":\"好\"}}\n", "x".repeat(65)),
        format!(
            "{{\"id\":\"sim\",\"question\":\"q\",\"similar\":[\"\",\"{}\"],\"answer\":\"好\"}}\n",
            "问".repeat(501)
        ),
    ]
    .concat();
    let ps = problems(&[("faq.toml", &toml), ("import.jsonl", &jsonl)]);
    assert_problem(&ps, "faq.toml", 2, "id `../etc/passwd` may contain only ASCII letters");
    assert_problem(&ps, "faq.toml", 7, "id `gift\\u{202e}txt.exe` may contain only");
    assert_problem(&ps, "faq.toml", 13, "`question` is too long: 501 characters (at most 500)");
    // The 201st phrasing's line, then the answer's.
    assert_problem(&ps, "faq.toml", 220, "too many similar phrasings: 201 (at most 200)");
    assert_problem(&ps, "faq.toml", 222, "answer for locale `zh` is too long: 5001 characters (at most 5000)");
    assert_problem(&ps, "import.jsonl", 1, "id `a/b`");
    assert_problem(&ps, "import.jsonl", 2, "`question` is too long");
    assert_problem(&ps, "import.jsonl", 3, "is too long: 65 characters (at most 64)");
    assert_problem(&ps, "import.jsonl", 4, "similar phrasing 2 is too long");
    assert_eq!(ps.len(), 9, "{ps:?}");
}

#[test]
fn texts_of_invisible_characters_are_empty() {
    let toml = concat!(
        "[[faq]]\nid = \"zw\"\nquestion = \"\\u200B\\u200B\"\nanswer = \"\\uFEFF\\u202E\"\n",
        "similar = [\"\\u2060\", \"亲\\u200B\"]\n",
    );
    let jsonl = "{\"id\":\"zw2\",\"question\":\"\\u200d\\u3000\",\"answer\":\"在的\"}\n";
    let ps = problems(&[("faq.toml", toml), ("import.jsonl", jsonl)]);
    assert_problem(&ps, "faq.toml", 3, "`question` is empty");
    assert_problem(&ps, "faq.toml", 4, "empty answer for locale `zh`");
    assert_problem(&ps, "faq.toml", 5, "empty phrasing in `similar`");
    assert_problem(&ps, "import.jsonl", 1, "`question` is empty");
    assert_eq!(ps.len(), 4, "{ps:?}");
}

#[test]
fn files_starting_with_a_utf8_bom_load() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "products.toml", PRODUCTS);
    write(dir.path(), "faq.toml", "\u{FEFF}[[faq]]\nid = \"x\"\nquestion = \"包邮吗\"\nanswer = \"包邮\"\n");
    write(dir.path(), "more.jsonl", "\u{FEFF}{\"id\":\"y\",\"question\":\"几天到\",\"answer\":\"3天\"}\n");
    write(dir.path(), "dict.txt", "\u{FEFF}小金瓶 10 n\n");
    write(dir.path(), "synonyms.txt", "\u{FEFF}多少钱 = 价格\n");
    let kb = load_dir(dir.path(), &KbOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kb.faqs.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["x", "y"]);
    assert!(kb.dict_words.iter().any(|w| w == "小金瓶"), "{:?}", kb.dict_words);
    assert_eq!(kb.synonyms, [["多少钱", "价格"]]);
}

#[test]
fn cli_check_names_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "products.toml", PRODUCTS);
    write(
        dir.path(),
        "faq.toml",
        "[[faq]]\nid = \"x\"\nquestion = \"包邮吗\"\nanswer = \"包邮\"\nproducts = [\"p-9\"]\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_xiaoer")).arg("--kb").arg(dir.path()).arg("check").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("faq.toml:5: unknown product id `p-9`"), "{err}");
}

#[test]
fn bad_small_talk_tables_are_located() {
    let faq = "[[faq]]\nid = \"ship\"\nquestion = \"发什么快递？\"\nanswer = \"中通\"\n";
    let lexicon = "[[smalltalk]]\nkind = \"greeting\"\nphrases = [\"你好\"]\nreply = { en = \"Hi\" }\n\n\
                   [[smalltalk]]\nkind = \"thanks\"\nphrases = []\nreply = { zh = \"不客气\" }\n\n\
                   [[smalltalk]]\nkind = \"bye\"\nphrase = [\"再见\"]\nreply = { zh = \"再见\" }\n";
    let ps = problems(&[("faq.toml", faq), ("lexicon.toml", lexicon)]);
    assert_problem(&ps, "lexicon.toml", 1, "`zh` text");
    assert_problem(&ps, "lexicon.toml", 6, "non-empty `phrases`");
    assert_problem(&ps, "lexicon.toml", 13, "unknown key `phrase`");
}
