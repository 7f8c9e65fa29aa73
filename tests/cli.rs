//! The `xiaoer` binary's knowledge commands: problems named by file and
//! line or row, and an exit status that says whether there were any.

use std::path::Path;
use std::process::{Command, Output};

fn xiaoer(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xiaoer")).args(args).env("XIAOER_DATA_DIR", data).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn kb_import_dry_run_fails_on_bad_rows_and_names_them() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("faq.csv");
    std::fs::write(
        &csv,
        "问题,答案,商品\n亲，发票怎么开？,在订单页申请电子发票。,\n,没有问题的答案,\n保质期多久,见包装,p-404\n",
    )
    .unwrap();
    let o = xiaoer(&["kb", "import", "--dry-run", csv.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("faq.csv:3:") && out.contains("faq.csv:4:"), "{out}");
    assert!(out.contains("nothing imported (dry run)"), "{out}");

    std::fs::write(&csv, "问题,答案\n亲，发票怎么开？,在订单页申请电子发票。\n").unwrap();
    let o = xiaoer(&["kb", "import", "--dry-run", csv.to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(!tmp.path().join("xiaoer.sqlite3").exists(), "a dry run wrote the database");
}

#[test]
fn check_names_file_and_line_of_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = tmp.path().join("kb");
    std::fs::create_dir(&kb).unwrap();
    std::fs::write(
        kb.join("faq.toml"),
        "[[faq]]\nid = \"ok\"\nquestion = \"发什么快递？\"\nanswer = \"顺丰\"\n\n[[faq]]\nid = \"bad/../id\"\nquestion = \"\u{200b}\"\nanswer = \"x\"\n",
    )
    .unwrap();
    let mut bad_utf8 = b"{\"id\": \"j\", \"question\": \"\xe5\x8c\", \"answer\": \"a\"}\n".to_vec();
    bad_utf8.splice(0..0, b"{\"id\": \"k\", \"question\": \"q\", \"answer\": \"a\"}\n".iter().copied());
    std::fs::write(kb.join("more.jsonl"), bad_utf8).unwrap();
    let o = xiaoer(&["--kb", kb.to_str().unwrap(), "check"], tmp.path());
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains("faq.toml:7:") && out.contains("faq.toml:8:"), "{out}");
    assert!(out.contains("more.jsonl:2:") && out.contains("UTF-8"), "{out}");
}
