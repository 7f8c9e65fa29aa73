//! Gap mining: group the questions the bot could not answer (handoff or
//! clarify) by embedding similarity, so operators see which missing FAQs
//! matter most. Pure: vectors in, clusters out.

use crate::vectors::dot;

/// A group of similar unanswered questions.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Index of the member closest to the centroid.
    pub representative: usize,
    /// Indices of all members, representative included.
    pub members: Vec<usize>,
}

/// Greedy single-pass clustering: each question joins the first cluster
/// whose centroid it matches with cosine ≥ `threshold`, else starts one.
/// Returns clusters of at least `min_size`, largest first.
pub fn cluster(vectors: &[Vec<f32>], threshold: f32, min_size: usize) -> Vec<Cluster> {
    let mut centroids: Vec<Vec<f32>> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let best = centroids
            .iter()
            .enumerate()
            .map(|(c, centroid)| (c, dot(centroid, v) / norm(centroid)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((c, cos)) if cos >= threshold => {
                centroids[c].iter_mut().zip(v).for_each(|(s, x)| *s += x);
                members[c].push(i);
            }
            _ => {
                centroids.push(v.clone());
                members.push(vec![i]);
            }
        }
    }
    let mut out: Vec<Cluster> = centroids
        .iter()
        .zip(members)
        .filter(|(_, m)| m.len() >= min_size)
        .map(|(centroid, m)| {
            let representative = *m
                .iter()
                .max_by(|&&a, &&b| dot(centroid, &vectors[a]).total_cmp(&dot(centroid, &vectors[b])))
                .expect("non-empty cluster");
            Cluster { representative, members: m }
        })
        .collect();
    out.sort_by(|a, b| b.members.len().cmp(&a.members.len()).then(a.representative.cmp(&b.representative)));
    out
}

/// Whether unit vector `v` is within cosine `threshold` of any of `known`
/// (a group close to an earlier proposal is not proposed again).
pub fn near_any(v: &[f32], known: &[Vec<f32>], threshold: f32) -> bool {
    known.iter().any(|k| dot(k, v) >= threshold)
}

fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt().max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::{cluster, near_any};

    fn unit(x: f32, y: f32) -> Vec<f32> {
        let n = (x * x + y * y).sqrt();
        vec![x / n, y / n]
    }

    #[test]
    fn near_vectors_group_and_singletons_are_dropped() {
        let v =
            vec![unit(1.0, 0.0), unit(0.0, 1.0), unit(1.0, 0.05), unit(1.0, -0.05), unit(0.05, 1.0), unit(-1.0, 0.0)];
        let c = cluster(&v, 0.99, 2);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].members, vec![0, 2, 3]);
        assert_eq!(c[0].representative, 0);
        assert_eq!(c[1].members, vec![1, 4]);
    }

    #[test]
    fn near_any_compares_with_every_known_vector() {
        let known = vec![unit(1.0, 0.0), unit(0.0, 1.0)];
        assert!(near_any(&unit(0.05, 1.0), &known, 0.99));
        assert!(!near_any(&unit(1.0, 1.0), &known, 0.99));
        assert!(!near_any(&unit(1.0, 0.0), &[], 0.5));
    }
}
