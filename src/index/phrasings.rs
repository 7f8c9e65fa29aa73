use crate::kb::KnowledgeBase;

/// One indexed phrasing: FAQ position in the knowledge base and phrasing
/// number within it (0 = the standard question).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhrasingRef {
    pub faq: u32,
    pub idx: u16,
}

/// Every phrasing of the knowledge base in a fixed order; a phrasing's
/// position in this table is its ordinal in the index and the vector store.
pub fn phrasing_table(kb: &KnowledgeBase) -> Vec<PhrasingRef> {
    kb.faqs
        .iter()
        .enumerate()
        .flat_map(|(faq, f)| (0..=f.similar.len()).map(move |idx| PhrasingRef { faq: faq as u32, idx: idx as u16 }))
        .collect()
}
