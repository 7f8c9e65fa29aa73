//! Evidence about the best candidate, for the match verifier: more than
//! (top score, margin). Each value is cheap (one segmentation of the matched
//! phrasing, a few set operations, a dot product with each candidate's
//! answer vector); `decision::Verifier` weighs them.

use std::collections::HashSet;

use super::{Candidate, Retriever};
use crate::text::fold;

/// Number of evidence values (the verifier's feature vector).
pub const EVIDENCE_LEN: usize = 15;

/// Names of the evidence values, in order (reports, stored calibrations).
pub const EVIDENCE_NAMES: [&str; EVIDENCE_LEN] = [
    "score",
    "score_margin",
    "cosine",
    "cosine_margin",
    "bm25",
    "bm25_agrees",
    "query_covered",
    "phrasing_covered",
    "length_ratio",
    "product_mismatch",
    "product_match",
    "number_mismatch",
    "negation_mismatch",
    "answer_cosine",
    "answer_margin",
];

/// Words that turn a question around (能 / 不能); a match that has one where
/// the query has none (or the reverse) may answer the opposite question.
const NEGATIONS: &[&str] =
    &["不", "没", "无法", "别", "非", "未", "not", "no", "n't", "cannot", "without", "ない", "않", "안 ", "못"];

/// What the shopper's message says about products.
#[derive(Debug, Clone, Default)]
pub struct ProductContext<'a> {
    /// The product page the shopper is on.
    pub page: Option<&'a str>,
    /// Products the message names (aliases, names), as catalogue positions.
    pub named: Vec<usize>,
}

impl Retriever {
    /// Catalogue positions of the products `text` names (aliases or full
    /// names, case/width/script folded), in catalogue order.
    pub fn products_named(&self, text: &str) -> Vec<usize> {
        let folded = fold(text);
        (0..self.product_names.len()).filter(|&p| self.product_names[p].iter().any(|n| folded.contains(n))).collect()
    }

    /// `text` folded, with every product name and alias it contains taken
    /// out (longest first, so "sk2神仙水" goes whole): what it asks about
    /// products in general.
    pub fn without_product_names(&self, text: &str) -> String {
        let mut names: Vec<&String> = self.product_names.iter().flatten().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        names.iter().fold(fold(text), |t, n| t.replace(n.as_str(), " "))
    }

    /// The evidence vector for `candidates[0]` (ranked, best first) as an
    /// answer to `text`, whose embedding is `vector` (None: BM25 mode, no
    /// answer evidence), judging each candidate's answer in language
    /// `answers_in` where it has one (else its Chinese one); None without
    /// candidates.
    pub fn evidence(
        &self,
        text: &str,
        vector: Option<&[f32]>,
        candidates: &[Candidate],
        products: &ProductContext,
        answers_in: &str,
    ) -> Option<[f32; EVIDENCE_LEN]> {
        let top = candidates.first()?;
        let rest = &candidates[1..];
        let second = rest.first().map_or(0.0, |c| c.score);
        let cosine_rest = rest.iter().map(|c| c.cosine).fold(0.0f32, f32::max);
        let bm25_rest = rest.iter().map(|c| c.bm25).fold(0.0f32, f32::max);
        let phrasing = self.phrasing_text(top);
        let q: HashSet<String> = self.analyzer.terms(text).into_iter().collect();
        let p: HashSet<String> = self.analyzer.terms(phrasing).into_iter().collect();
        let shared = q.intersection(&p).count() as f32;
        let covered = |set: &HashSet<String>| if set.is_empty() { 0.0 } else { shared / set.len() as f32 };
        let chars = |t: &str| t.chars().filter(|c| c.is_alphanumeric()).count().max(1) as f32;
        let faq = &self.kb.faqs[top.faq];
        let scoped = |p: usize| faq.products.iter().any(|id| *id == self.kb.products[p].id);
        let page_scoped = products.page.is_some_and(|page| faq.products.iter().any(|id| id == page));
        let named_mismatch =
            !faq.products.is_empty() && !products.named.is_empty() && !products.named.iter().any(|&p| scoped(p));
        let flag = |b: bool| f32::from(u8::from(b));
        // How well each answer fits the question (e5's own query → passage
        // task), and by how much the top one fits better than the others'.
        let fit = |c: &Candidate| match (&self.dense, vector) {
            (Some(d), Some(v)) => d.answers.cosine(d.answer_row(c.faq, answers_in), v),
            _ => 0.0,
        };
        let answer_top = fit(top);
        let answer_rest = rest.iter().map(fit).fold(0.0f32, f32::max);
        Some([
            top.score,
            top.score - second,
            top.cosine,
            top.cosine - cosine_rest,
            top.bm25.ln_1p(),
            flag(top.bm25 > 0.0 && top.bm25 >= bm25_rest),
            covered(&q),
            covered(&p),
            (chars(text) / chars(phrasing)).ln().abs(),
            flag(named_mismatch),
            flag(page_scoped || products.named.iter().any(|&p| scoped(p))),
            flag(numbers_differ(text, phrasing)),
            flag(has_negation(text) != has_negation(phrasing)),
            answer_top,
            answer_top - answer_rest,
        ])
    }
}

/// Folded names and aliases of each product (at least two characters), and
/// its brand when no other product has it ("松下那款" is the one 松下).
pub(super) fn product_names(kb: &crate::kb::KnowledgeBase) -> Vec<Vec<String>> {
    let sole_of_brand =
        |brand: &String| !brand.is_empty() && kb.products.iter().filter(|p| &p.brand == brand).count() == 1;
    kb.products
        .iter()
        .map(|p| {
            let brand = Some(&p.brand).filter(|b| sole_of_brand(b));
            let names = std::iter::once(&p.name).chain(&p.aliases).chain(brand);
            names.map(|n| fold(n)).filter(|n| n.chars().count() >= 2).collect()
        })
        .collect()
}

fn numbers(text: &str) -> HashSet<String> {
    fold(text).split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Both texts name numbers and share none (3 boxes vs 2 boxes).
fn numbers_differ(a: &str, b: &str) -> bool {
    let (x, y) = (numbers(a), numbers(b));
    !x.is_empty() && !y.is_empty() && x.is_disjoint(&y)
}

fn has_negation(text: &str) -> bool {
    let t = fold(text);
    NEGATIONS.iter().any(|n| {
        if n.is_ascii() && n.chars().all(|c| c.is_ascii_alphabetic()) {
            t.split(|c: char| !c.is_ascii_alphabetic()).any(|w| w == *n)
        } else {
            t.contains(n)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_negations() {
        assert!(numbers_differ("拍了3盒只到2盒", "少发了1件"));
        assert!(!numbers_differ("买3盒包邮吗", "满3件包邮"));
        assert!(!numbers_differ("退货运费谁出", "7天无理由"));
        assert!(has_negation("孕妇不能用吗"));
        assert!(has_negation("I did not get it"));
        assert!(!has_negation("Is it genuine"));
        assert!(!has_negation("孕妇能用吗"));
    }
}
