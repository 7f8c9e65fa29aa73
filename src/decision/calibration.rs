use serde::{Deserialize, Serialize};

use crate::retrieval::Candidate;

/// Logistic calibration of the ranking score into P(top candidate is right):
/// `σ(score_weight · top + margin_weight · (top − second) + bias)`, where
/// `second` is the next distinct FAQ's score. Fitted by `xiaoer calibrate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Calibration {
    pub score_weight: f32,
    pub margin_weight: f32,
    pub bias: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration { score_weight: 17.33, margin_weight: 27.03, bias: -19.02 }
    }
}

impl Calibration {
    pub fn confidence(&self, candidates: &[Candidate]) -> f32 {
        match candidates {
            [] => 0.0,
            [top] => self.probability(top.score, top.score),
            [top, second, ..] => self.probability(top.score, top.score - second.score),
        }
    }

    pub fn probability(&self, top: f32, margin: f32) -> f32 {
        1.0 / (1.0 + (-(self.score_weight * top + self.margin_weight * margin + self.bias)).exp())
    }

    /// Fits the weights by gradient descent on (top, margin, correct) samples.
    pub fn fit(samples: &[(f32, f32, bool)]) -> Calibration {
        let mut w = [0f64; 3];
        let n = samples.len().max(1) as f64;
        for _ in 0..20_000 {
            let mut g = [0f64; 3];
            for &(top, margin, y) in samples {
                let z = w[0] * top as f64 + w[1] * margin as f64 + w[2];
                let err = 1.0 / (1.0 + (-z).exp()) - f64::from(u8::from(y));
                g[0] += err * top as f64;
                g[1] += err * margin as f64;
                g[2] += err;
            }
            for i in 0..3 {
                w[i] -= 2.0 * g[i] / n;
            }
        }
        Calibration { score_weight: w[0] as f32, margin_weight: w[1] as f32, bias: w[2] as f32 }
    }
}

#[cfg(test)]
mod tests {
    use super::Calibration;

    #[test]
    fn fit_separates_right_from_wrong() {
        let mut samples = Vec::new();
        for i in 0..50 {
            let x = i as f32 / 50.0;
            samples.push((0.9 + 0.2 * x, 0.05 + 0.1 * x, true));
            samples.push((0.7 + 0.2 * x, 0.01 * x, false));
        }
        let c = Calibration::fit(&samples);
        assert!(c.probability(1.05, 0.12) > 0.8, "{c:?}");
        assert!(c.probability(0.75, 0.0) < 0.2, "{c:?}");
    }
}
