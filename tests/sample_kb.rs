//! The shipped sample knowledge base is complete and self-consistent.

use std::path::Path;

use xiaoer::kb::{KbOptions, load_dir};

#[test]
fn sample_kb_is_valid_and_large_enough() {
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(kb.faqs.len() >= 200, "{} FAQ entries", kb.faqs.len());
    let similar: usize = kb.faqs.iter().map(|f| f.similar.len()).sum();
    assert!(similar as f64 / kb.faqs.len() as f64 >= 4.0, "avg similar {}", similar as f64 / kb.faqs.len() as f64);
    assert!(kb.products.len() >= 25);
    let covered: std::collections::HashSet<&str> =
        kb.faqs.iter().flat_map(|f| f.products.iter().map(String::as_str)).collect();
    assert!(kb.products.iter().all(|p| covered.contains(p.id.as_str())), "every product has knowledge entries");
    let english_policies = kb.faqs.iter().filter(|f| f.products.is_empty() && f.answers.contains_key("en")).count();
    assert!(english_policies >= 60, "{english_policies} policy entries with English answers");
    for topic in [
        "return-7day",
        "return-insurance",
        "ship-bonded-vs-direct",
        "tax-rate",
        "tax-quota",
        "realname-why",
        "auth-genuine",
        "promo-double11-2026",
        "invoice-vat",
        "member-join",
        "pay-methods",
        "after-damaged",
        "after-missing",
        "after-expired",
        "after-allergy",
        "order-change-address",
        "order-cancel",
    ] {
        assert!(kb.faq(topic).is_some(), "missing topic {topic}");
    }
    assert!(kb.faqs.iter().any(|f| f.valid_until.is_some()), "some entries have validity windows");
}

#[test]
fn export_round_trips_through_the_toml_loader() {
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for f in ["products.toml", "dict.txt", "synonyms.txt"] {
        std::fs::copy(Path::new("knowledge_base").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("faq.toml"), xiaoer::kb::export_toml(&kb).unwrap()).unwrap();
    let back = load_dir(dir.path(), &KbOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.faqs.len(), kb.faqs.len());
    for (a, b) in kb.faqs.iter().zip(&back.faqs) {
        assert_eq!(
            (&a.id, &a.question, &a.similar, &a.answers, &a.products),
            (&b.id, &b.question, &b.similar, &b.answers, &b.products)
        );
        assert_eq!((a.valid_from, a.valid_until), (b.valid_from, b.valid_until), "{}", a.id);
    }
    let jsonl = xiaoer::kb::export_jsonl(&kb);
    assert_eq!(jsonl.lines().count(), kb.faqs.len());
}

#[test]
fn csv_and_jsonl_exports_import_back_without_problems() {
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap();
    for (name, report) in [
        ("csv", xiaoer::kb::parse_csv(xiaoer::kb::export_csv(&kb).unwrap().as_bytes(), &kb)),
        ("jsonl", xiaoer::kb::parse_jsonl(xiaoer::kb::export_jsonl(&kb).as_bytes(), &kb)),
    ] {
        assert!(report.problems.is_empty(), "{name}: {:?}", &report.problems[..report.problems.len().min(3)]);
        assert_eq!(report.entries.len(), kb.faqs.len(), "{name}");
        for (edit, faq) in report.entries.iter().zip(&kb.faqs) {
            let e = edit.entry.as_ref().unwrap();
            assert_eq!(
                (&edit.id, &e.question, &e.similar, &e.products),
                (&faq.id, &faq.question, &faq.similar, &faq.products),
                "{name}"
            );
            assert_eq!(e.answer.get("zh"), faq.answers.get("zh"), "{name}");
        }
    }
}

#[test]
fn jsonl_import_lists_problems_by_line() {
    let kb = load_dir(Path::new("knowledge_base"), &KbOptions::default()).unwrap();
    let text = concat!(
        "{\"id\":\"gift\",\"question\":\"可以礼品包装吗\",\"answer\":\"暂不提供\"}\n",
        "{broken\n",
        "\n",
        "{\"id\":\"x\",\"question\":\"安热沙能带上飞机吗\",\"answer\":{\"zh\":\"可以\"},\"products\":[\"p-nope\"]}\n",
        "{\"question\":\"没有编号\",\"answer\":\"有答案\"}\n",
        "{\"id\":\"gift\",\"question\":\"重复\",\"answer\":\"重复\"}\n",
    );
    let r = xiaoer::kb::parse_jsonl(text.as_bytes(), &kb);
    assert_eq!(r.entries.len(), 1);
    let lines: Vec<usize> = r.problems.iter().map(|p| p.0).collect();
    assert_eq!(lines, vec![2, 4, 5, 6], "{:?}", r.problems);
    assert!(r.problems[1].1.contains("p-nope"));
}
