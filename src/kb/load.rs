use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{KbError, LineIndex, Problem};
use super::jsonl;
use super::toml_file::{self, ParsedFile};
use super::types::{KnowledgeBase, Lexicon, Location};
use super::validate::shown;

/// How strict loading is.
#[derive(Debug, Clone)]
pub struct KbOptions {
    /// Entries must carry a `zh` answer. Off only for question-matching data
    /// sets (evaluation), whose sources have no answers.
    pub require_answers: bool,
}

impl Default for KbOptions {
    fn default() -> Self {
        KbOptions { require_answers: true }
    }
}

/// Loads a knowledge-base directory, or a single `.toml` / `.jsonl` file.
pub fn load_path(path: &Path, opts: &KbOptions) -> Result<KnowledgeBase, KbError> {
    if path.is_dir() {
        return load_dir(path, opts);
    }
    load_files(vec![path.to_path_buf()], opts)
}

/// Loads every `*.toml` and `*.jsonl` below `dir`, plus `dict.txt` and
/// `synonyms.txt`, validating the whole set.
pub fn load_dir(dir: &Path, opts: &KbOptions) -> Result<KnowledgeBase, KbError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files).map_err(|e| KbError { problems: vec![Problem::new(dir, None, e.to_string())] })?;
    files.sort();
    load_files(files, opts)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("toml" | "jsonl" | "txt")) {
            out.push(path);
        }
    }
    Ok(())
}

fn load_files(files: Vec<PathBuf>, opts: &KbOptions) -> Result<KnowledgeBase, KbError> {
    let mut problems = Vec::new();
    let mut kb = KnowledgeBase::default();
    let mut hasher = Sha256::new();
    let mut refs = Vec::new();
    let (mut own_handoff, mut own_smalltalk) = (false, false);
    for path in &files {
        let text = match fs::read(path).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                let at = e.utf8_error().valid_up_to();
                let line = LineIndex::new(&e.as_bytes()[..at]).line(at);
                let message = format!("not valid UTF-8 (byte 0x{:02X}; save the file as UTF-8)", e.as_bytes()[at]);
                problems.push(Problem::new(path, Some(line), message));
                continue;
            }
            Err(e) => {
                problems.push(Problem::new(path, None, format!("cannot read: {e}")));
                continue;
            }
        };
        hasher.update(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
        // Notepad and Excel start UTF-8 files with a byte-order mark; it is no content.
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                let ParsedFile { faqs, products, product_refs, words, lexicon, smalltalk } =
                    toml_file::parse(path, text, &mut problems);
                own_smalltalk |= !smalltalk.is_empty();
                kb.lexicon.smalltalk.extend(smalltalk);
                if let Some(lexicon) = lexicon {
                    own_handoff = true;
                    kb.lexicon.human.extend(lexicon.human);
                    kb.lexicon.complaint.extend(lexicon.complaint);
                    kb.lexicon.anger.extend(lexicon.anger);
                    kb.lexicon.order_lookup.extend(lexicon.order_lookup);
                }
                let offset = kb.faqs.len();
                refs.extend(product_refs.into_iter().map(|mut r| {
                    r.faq_index += offset;
                    (path.clone(), r)
                }));
                kb.faqs.extend(faqs);
                kb.products.extend(products);
                kb.dict_words.extend(words);
            }
            Some("jsonl") => kb.faqs.extend(jsonl::parse(path, text, opts, &mut problems)),
            _ if name == "dict.txt" => kb.dict_words.extend(parse_dict(text)),
            _ if name == "synonyms.txt" => kb.synonyms.extend(parse_synonyms(path, text, &mut problems)),
            _ => {} // other text files (READMEs, notes) are not knowledge
        }
    }
    fill_in_builtin_lexicon(&mut kb.lexicon, own_handoff, own_smalltalk, &mut hasher);
    check_unique_ids(&kb, &mut problems);
    let known: HashMap<&str, ()> = kb.products.iter().map(|p| (p.id.as_str(), ())).collect();
    for (path, r) in &refs {
        if !known.contains_key(r.product_id.as_str()) {
            let faq = &kb.faqs[r.faq_index].id;
            problems.push(Problem::new(
                path,
                Some(r.line),
                format!("unknown product id `{}` in faq `{faq}`", shown(&r.product_id)),
            ));
        }
    }
    if problems.is_empty() && kb.faqs.is_empty() {
        let place = files.first().map(|f| f.parent().unwrap_or(f).to_path_buf()).unwrap_or_default();
        problems.push(Problem::new(place, None, "no FAQ entries found"));
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(KbError { problems });
    }
    kb.content_hash = hex::encode(hasher.finalize());
    Ok(kb)
}

/// The lexicon every knowledge base starts from (its header says how a
/// knowledge base's own `lexicon.toml` replaces it).
const BUILTIN_LEXICON: &str = include_str!("builtin_lexicon.toml");

/// Gives a knowledge base without a `[handoff]` table the built-in handoff
/// words, and one without `[[smalltalk]]` the built-in small talk: a store
/// that wrote no lexicon still hands 转人工 to a human and answers 你好.
/// What it takes counts in the content hash, like the knowledge files.
fn fill_in_builtin_lexicon(lexicon: &mut Lexicon, own_handoff: bool, own_smalltalk: bool, hasher: &mut Sha256) {
    if own_handoff && own_smalltalk {
        return;
    }
    // The file is part of the binary; a unit test checks it has no problems.
    let builtin = toml_file::parse(Path::new("builtin_lexicon.toml"), BUILTIN_LEXICON, &mut Vec::new());
    if !own_handoff && let Some(handoff) = builtin.lexicon {
        hasher.update(b"builtin [handoff]");
        *lexicon = Lexicon { smalltalk: std::mem::take(&mut lexicon.smalltalk), ..handoff };
    }
    if !own_smalltalk {
        hasher.update(b"builtin [[smalltalk]]");
        lexicon.smalltalk = builtin.smalltalk;
    }
    hasher.update(BUILTIN_LEXICON.as_bytes());
}

fn check_unique_ids(kb: &KnowledgeBase, problems: &mut Vec<Problem>) {
    report_duplicates("faq", kb.faqs.iter().map(|f| (f.id.as_str(), &f.location)), problems);
    report_duplicates("product", kb.products.iter().map(|p| (p.id.as_str(), &p.location)), problems);
}

/// Reports every id seen before, pointing at its first definition.
fn report_duplicates<'a>(
    kind: &str,
    items: impl Iterator<Item = (&'a str, &'a Location)>,
    problems: &mut Vec<Problem>,
) {
    let mut seen: HashMap<&str, &Location> = HashMap::new();
    for (id, at) in items {
        match seen.get(id) {
            Some(first) => problems.push(Problem::new(
                &at.file,
                Some(at.line),
                format!("duplicate {kind} id `{id}` (first defined at {}:{})", first.file.display(), first.line),
            )),
            None => {
                seen.insert(id, at);
            }
        }
    }
}

fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// jieba's dictionary format: `word [freq] [tag]`; only the word is used.
fn parse_dict(text: &str) -> impl Iterator<Item = String> + '_ {
    content_lines(text).filter_map(|(_, l)| l.split_whitespace().next().map(str::to_string))
}

/// One group a line: `多少钱 = 价格 = 价钱`.
fn parse_synonyms(path: &Path, text: &str, problems: &mut Vec<Problem>) -> Vec<Vec<String>> {
    let mut groups = Vec::new();
    for (line, l) in content_lines(text) {
        let members: Vec<String> = l.split('=').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
        if members.len() < 2 {
            problems.push(Problem::new(path, Some(line), "a synonym group needs at least two words separated by `=`"));
        } else {
            groups.push(members);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb_of(files: &[(&str, &str)]) -> KnowledgeBase {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        load_dir(dir.path(), &KbOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    const FAQ: &str = "[[faq]]\nid = \"ship\"\nquestion = \"发什么快递？\"\nanswer = \"默认顺丰。\"\n";

    #[test]
    fn the_builtin_lexicon_has_no_problems() {
        let mut problems = Vec::new();
        let parsed = toml_file::parse(Path::new("builtin_lexicon.toml"), BUILTIN_LEXICON, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let handoff = parsed.lexicon.unwrap();
        assert!(handoff.human.contains(&"转人工".to_string()) && !handoff.order_lookup.is_empty());
        assert!(parsed.smalltalk.iter().any(|s| s.kind == "greeting"));
    }

    #[test]
    fn a_knowledge_base_without_a_lexicon_gets_the_builtin_one() {
        let kb = kb_of(&[("faq.toml", FAQ)]);
        assert!(kb.lexicon.human.contains(&"转人工".to_string()));
        assert!(kb.lexicon.anger.contains(&"骗子".to_string()));
        assert!(kb.lexicon.smalltalk.iter().any(|s| s.phrases.contains(&"在吗".to_string())));
    }

    #[test]
    fn a_knowledge_base_lexicon_replaces_the_builtin_one_section_by_section() {
        let handoff = "[handoff]\nhuman = [\"找掌柜\"]\n";
        let kb = kb_of(&[("faq.toml", FAQ), ("lexicon.toml", handoff)]);
        assert_eq!(kb.lexicon.human, ["找掌柜"]);
        assert!(kb.lexicon.anger.is_empty() && kb.lexicon.order_lookup.is_empty());
        assert!(kb.lexicon.smalltalk.iter().any(|s| s.kind == "greeting"), "built-in small talk kept");

        let smalltalk = "[[smalltalk]]\nkind = \"greeting\"\nphrases = [\"掌柜好\"]\nreply = { zh = \"客官好\" }\n";
        let own = kb_of(&[("faq.toml", FAQ), ("lexicon.toml", smalltalk)]);
        assert_eq!(own.lexicon.smalltalk.len(), 1);
        assert_eq!(own.lexicon.smalltalk[0].phrases, ["掌柜好"]);
        assert!(own.lexicon.human.contains(&"转人工".to_string()), "built-in handoff words kept");
    }

    #[test]
    fn handoff_words_that_could_never_match_are_problems_with_file_and_line() {
        for word in ["^人工", "人工$", "^人工+客服$", "快递+", "^！$"] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("faq.toml"), FAQ).unwrap();
            let lexicon = format!("# words\n[handoff]\nhuman = [\"转人工\", {word:?}]\n");
            fs::write(dir.path().join("lexicon.toml"), lexicon).unwrap();
            let err = load_dir(dir.path(), &KbOptions::default()).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("lexicon.toml:2") && err.contains(word), "{word}: {err}");
        }
        let fine = "[handoff]\nhuman = [\"^人工$\", \"找客服+处理\"]\nanger = [\"？？？\"]\n";
        assert_eq!(kb_of(&[("faq.toml", FAQ), ("lexicon.toml", fine)]).lexicon.human, ["^人工$", "找客服+处理"]);
    }
}
