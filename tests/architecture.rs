//! ARCHITECTURE.md's module table is the dependency rule: every `crate::X`
//! reference in a module's code must name a module its row allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules its row says it may depend on.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string("ARCHITECTURE.md").unwrap();
    let mut rows: Vec<(String, String)> = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let module = cells[0].trim_start_matches("| ").trim_matches('`').to_string();
        rows.push((module, cells[2].to_string()));
    }
    let mut out = BTreeMap::new();
    for (i, (module, deps)) in rows.iter().enumerate() {
        let set: BTreeSet<String> = if deps.contains("everything above") {
            rows[..i].iter().map(|(m, _)| m.clone()).collect()
        } else {
            deps.split('`').skip(1).step_by(2).map(str::to_string).collect()
        };
        out.insert(module.clone(), set);
    }
    out
}

/// The crate modules a source file refers to, comments left out.
fn references(path: &Path, out: &mut BTreeSet<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            references(&entry.unwrap().path(), out);
        }
        return;
    }
    if path.extension().is_none_or(|e| e != "rs") {
        return;
    }
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let code = line.split("//").next().unwrap_or("");
        for part in code.split("crate::").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
}

#[test]
fn every_module_depends_only_on_what_architecture_md_allows() {
    let allowed = allowed();
    assert!(allowed.len() >= 14, "module table not found: {allowed:?}");
    let mut checked = 0;
    for entry in std::fs::read_dir("src").unwrap() {
        let path = entry.unwrap().path();
        let module = path.file_stem().unwrap().to_str().unwrap().to_string();
        if ["lib", "main"].contains(&module.as_str()) {
            continue;
        }
        let rule = allowed.get(&module).unwrap_or_else(|| panic!("module `{module}` has no row in ARCHITECTURE.md"));
        let mut used = BTreeSet::new();
        references(&path, &mut used);
        used.remove(&module);
        let extra: Vec<&String> = used.iter().filter(|m| !rule.contains(*m)).collect();
        assert!(
            extra.is_empty(),
            "`{module}` uses {extra:?}, which ARCHITECTURE.md does not allow (allowed: {rule:?})"
        );
        checked += 1;
    }
    assert_eq!(checked, allowed.len(), "every row names a module in src/");
}
