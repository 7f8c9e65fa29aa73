use serde::{Deserialize, Serialize};

/// What the fused score sees of a candidate.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub bm25: f32,
    pub cosine: f32,
}

/// Hybrid score = cosine + `bm25_weight` · bm25 / (1 + bm25 / `bm25_saturation`).
///
/// `bm25_weight` is the slope for small BM25 scores; the saturation keeps a
/// long query's many lexical matches from swamping the semantic score. The defaults were fitted by
/// `xiaoer fit` (grid search maximising mean MRR@10 over ant-dev and bq-dev);
/// see the README's evaluation section.
///
/// A query in another script than the knowledge base (English asked of a
/// Chinese store) shares no terms with the right phrasings: its BM25 hits
/// are accidental (a brand, a number), so its weight is
/// `cross_script_bm25_weight` (default 0: such a query ranks as dense-only).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Fusion {
    pub bm25_weight: f32,
    pub bm25_saturation: f32,
    pub cross_script_bm25_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion { bm25_weight: 0.0025, bm25_saturation: 320.0, cross_script_bm25_weight: 0.0 }
    }
}

impl Fusion {
    /// The fusion for a query in another script than the knowledge base.
    pub fn cross_script(self) -> Fusion {
        Fusion { bm25_weight: self.cross_script_bm25_weight, ..self }
    }

    pub fn score(&self, f: &Features) -> f32 {
        f.cosine + self.bm25_weight * f.bm25 / (1.0 + f.bm25 / self.bm25_saturation)
    }
}
