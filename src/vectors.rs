//! Phrasing vectors: one embedding per indexed phrasing, in phrasing-ordinal
//! order, kept in one contiguous f16 matrix for an exact dot-product scan.
//! f16 halves the memory (77 MB instead of 154 MB at 100k phrasings), and
//! with F16C widening the scan got faster too; the rounding (≤ 2⁻¹¹
//! per component) moves cosines by ~1e-4, far below what separates answers.
//!
//! Persisted as `vectors.bin` in the data directory, keyed per phrasing by a
//! hash of (model weights, role, text), so a rebuild re-embeds only phrasings
//! whose text (or the model) changed. The file is a cache: damaged entries
//! are re-embedded, and failing to write it only costs the next start time.
//! Depends on `kb`, `index` (phrasing table) and `embed`.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use half::f16;
use half::slice::HalfFloatSliceExt;
use sha2::{Digest, Sha256};

use crate::embed::{EmbedError, Embedder, Role};
use crate::index::PhrasingRef;
use crate::kb::KnowledgeBase;

const MAGIC: &[u8; 8] = b"XEVEC001";
/// Phrasings embedded per call while building (bounded memory, progress).
const EMBED_BATCH: usize = 64;
/// A stored vector further than this from unit length is not a model output.
const NORM_TOLERANCE: f32 = 1e-3;

pub struct PhrasingVectors {
    dim: usize,
    /// `len × dim`, row `i` is phrasing ordinal `i`, L2-normalised.
    matrix: Vec<f16>,
    /// Every component finite, checked once at build (readiness reads it).
    finite: bool,
}

fn key(model_sha: &str, role: Role, text: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(model_sha.as_bytes());
    h.update([role as u8]);
    h.update(text.as_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

impl PhrasingVectors {
    /// Embeds every phrasing of `kb`, reusing vectors stored in `file` (when
    /// given) and, with `save`, writing the updated store back when anything
    /// was embedded or dropped as damaged; a failed write is logged, not returned.
    /// `progress(done, total)` is called after each batch.
    pub fn build(
        kb: &KnowledgeBase,
        table: &[PhrasingRef],
        embedder: &Embedder,
        role: Role,
        file: Option<&Path>,
        save: bool,
        progress: &dyn Fn(usize, usize),
    ) -> Result<PhrasingVectors, EmbedError> {
        let texts: Vec<&str> =
            table.iter().map(|p| kb.faqs[p.faq as usize].phrasings().nth(p.idx as usize).unwrap_or_default()).collect();
        Self::of_texts(&texts, embedder, role, file, save, progress)
    }

    /// One row per text, in order, with the same store as [`PhrasingVectors::build`].
    pub fn of_texts(
        texts: &[&str],
        embedder: &Embedder,
        role: Role,
        file: Option<&Path>,
        save: bool,
        progress: &dyn Fn(usize, usize),
    ) -> Result<PhrasingVectors, EmbedError> {
        let dim = embedder.dim();
        let model = embedder.manifest().weights_sha256.clone();
        let (mut stored, damaged) = file.map(|f| read_store(f, dim)).unwrap_or_default();
        let keys: Vec<u64> = texts.iter().map(|t| key(&model, role, t)).collect();
        let mut missing: Vec<usize> = (0..texts.len()).filter(|&i| !stored.contains_key(&keys[i])).collect();
        missing.sort_by_key(|&i| keys[i]);
        missing.dedup_by_key(|i| keys[*i]);
        let total = missing.len();
        if total > 0 {
            tracing::info!(phrasings = total, "embedding new or changed phrasings");
        }
        for (n, chunk) in missing.chunks(EMBED_BATCH).enumerate() {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, v) in chunk.iter().zip(embedder.embed(&batch, role)?) {
                stored.insert(keys[i], v);
            }
            progress((n * EMBED_BATCH + chunk.len()).min(total), total);
        }
        let mut matrix = vec![f16::ZERO; texts.len() * dim];
        for (row, k) in matrix.chunks_exact_mut(dim.max(1)).zip(&keys) {
            row.convert_from_f32_slice(&stored[k]);
        }
        let finite = matrix.iter().all(|x| x.is_finite());
        if !finite {
            tracing::warn!("the model produced non-finite phrasing vectors");
        }
        if let Some(f) = file.filter(|_| save)
            && (total > 0 || damaged)
        {
            let live: std::collections::HashSet<u64> = keys.iter().copied().collect();
            stored.retain(|k, v| live.contains(k) && is_unit(v));
            if let Err(e) = write_store(f, dim, &stored) {
                tracing::warn!(file = %f.display(), error = %e, "cannot save the phrasing vectors: kept in memory only");
            }
        }
        Ok(PhrasingVectors { dim, matrix, finite })
    }

    pub fn len(&self) -> usize {
        self.matrix.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.matrix.is_empty()
    }

    /// Whether every stored component is finite (a NaN row would rank first).
    pub fn all_finite(&self) -> bool {
        self.finite
    }

    /// Cosine similarity of `query` (L2-normalised) with every phrasing for
    /// which `keep(ordinal)` holds; the `k` best as (ordinal, cosine).
    pub fn top_k(&self, query: &[f32], k: usize, keep: impl Fn(usize) -> bool) -> Vec<(u32, f32)> {
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
        let mut floor = f32::NEG_INFINITY;
        for (i, row) in self.matrix.chunks_exact(self.dim).enumerate() {
            let score = dot_f16(row, query);
            // A non-finite score (damaged row or query) must never rank: NaN
            // fails every comparison below and would be inserted first.
            if !score.is_finite() || (best.len() == k && score <= floor) {
                continue;
            }
            if !keep(i) {
                continue;
            }
            let at = best.partition_point(|&(_, s)| s >= score);
            best.insert(at, (i as u32, score));
            if best.len() > k {
                best.pop();
            }
            if best.len() == k {
                floor = best[k - 1].1;
            }
        }
        best
    }

    /// The vector of phrasing `ordinal`, widened to f32.
    pub fn row(&self, ordinal: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.dim];
        self.matrix[ordinal * self.dim..(ordinal + 1) * self.dim].convert_to_f32_slice(&mut out);
        out
    }

    /// Cosine similarity of `query` (L2-normalised) with phrasing `ordinal`.
    pub fn cosine(&self, ordinal: usize, query: &[f32]) -> f32 {
        dot_f16(&self.matrix[ordinal * self.dim..(ordinal + 1) * self.dim], query)
    }
}

/// Dot product in eight independent lanes so the compiler vectorises it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `dot` with the left side stored as f16: eight values per F16C
/// conversion and FMA where the build targets them (x86-64-v3 does).
fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(all(target_arch = "x86_64", target_feature = "f16c", target_feature = "fma"))]
    // SAFETY: the build enables F16C, FMA and AVX (cfg above); every load
    // reads 8 values at `i + 8 <= len` of both slices (equal lengths, asserted).
    unsafe {
        use std::arch::x86_64::*;
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= a.len() {
            let x0 = _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().add(i) as *const __m128i));
            let x1 = _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().add(i + 8) as *const __m128i));
            acc0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b.as_ptr().add(i)), acc0);
            acc1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b.as_ptr().add(i + 8)), acc1);
            i += 16;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1));
        let tail: f32 = a[i..].iter().zip(&b[i..]).map(|(x, y)| x.to_f32() * y).sum();
        lanes.iter().sum::<f32>() + tail
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "f16c", target_feature = "fma")))]
    a.iter().zip(b).map(|(x, y)| x.to_f32() * y).sum()
}

/// Whether `v` can be a model output: finite and of unit length.
fn is_unit(v: &[f32]) -> bool {
    v.iter().all(|x| x.is_finite()) && (dot(v, v).sqrt() - 1.0).abs() <= NORM_TOLERANCE
}

/// The stored vectors by key, and whether the file needs rewriting. Entries
/// that cannot be a model output are dropped (so they are re-embedded); a
/// file that is not a whole store of this dimension counts as empty.
fn read_store(path: &Path, dim: usize) -> (HashMap<u64, Vec<f32>>, bool) {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (HashMap::new(), false),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the phrasing vectors: re-embedding all");
            return (HashMap::new(), true);
        }
    };
    let record = 8 + dim * 4;
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        tracing::warn!(file = %path.display(), "phrasing vector store is not one: re-embedding all");
        return (HashMap::new(), true);
    }
    if u64::from_le_bytes(bytes[8..16].try_into().expect("8")) != dim as u64 {
        tracing::info!(file = %path.display(), "phrasing vectors of another model dimension: re-embedding all");
        return (HashMap::new(), true);
    }
    if (bytes.len() - 16) % record != 0 {
        tracing::warn!(file = %path.display(), "phrasing vector store is truncated: re-embedding all");
        return (HashMap::new(), true);
    }
    let mut dropped = 0usize;
    let store: HashMap<u64, Vec<f32>> = bytes[16..]
        .chunks_exact(record)
        .filter_map(|r| {
            let k = u64::from_le_bytes(r[..8].try_into().expect("8"));
            let v: Vec<f32> = r[8..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4"))).collect();
            let ok = is_unit(&v);
            dropped += usize::from(!ok);
            ok.then_some((k, v))
        })
        .collect();
    if dropped > 0 {
        tracing::warn!(file = %path.display(), dropped, "damaged phrasing vectors dropped: re-embedding them");
    }
    (store, dropped > 0)
}

/// Writes the store atomically: a temporary file per process (two servers may
/// share the data directory), fsynced, then renamed over `path`.
fn write_store(path: &Path, dim: usize, vectors: &HashMap<u64, Vec<f32>>) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_dead_partials(dir, &name);
    let tmp = dir.join(format!("{name}.partial-{}", std::process::id()));
    let written = (|| {
        let mut w = std::io::BufWriter::new(fs::File::create(&tmp)?);
        w.write_all(MAGIC)?;
        w.write_all(&(dim as u64).to_le_bytes())?;
        for (k, v) in vectors {
            w.write_all(&k.to_le_bytes())?;
            for x in v {
                w.write_all(&x.to_le_bytes())?;
            }
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp); // best effort: do not leave a partial file behind
        return written;
    }
    // The rename itself is durable only once the directory is synced.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes `<name>.partial-<pid>` files of processes that died mid-write.
fn remove_dead_partials(dir: &Path, name: &str) {
    let prefix = format!("{name}.partial-");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(Ok(pid)) = file_name.to_str().and_then(|f| f.strip_prefix(&prefix)).map(str::parse::<u32>) else {
            continue;
        };
        if !crate::index::process_may_be_alive(pid) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(dim: usize, hot: usize) -> Vec<f32> {
        (0..dim).map(|i| if i == hot { 1.0 } else { 0.0 }).collect()
    }

    #[test]
    fn damaged_entries_are_dropped_and_broken_stores_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.bin");
        let dim = 4;
        assert_eq!(read_store(&path, dim), (HashMap::new(), false), "a missing store is no damage");

        let mut nan = unit(dim, 1);
        nan[2] = f32::NAN;
        let mut inf = unit(dim, 1);
        inf[0] = f32::INFINITY;
        let good: HashMap<u64, Vec<f32>> = [(1, unit(dim, 0)), (2, unit(dim, 3))].into();
        let mut all = good.clone();
        all.extend([(3, nan), (4, inf), (5, vec![1.5; dim])]);
        write_store(&path, dim, &all).unwrap();
        assert_eq!(read_store(&path, dim), (good.clone(), true));

        write_store(&path, dim, &good).unwrap();
        assert_eq!(read_store(&path, dim), (good, false));
        assert_eq!(read_store(&path, dim + 1), (HashMap::new(), true), "other dimension");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(read_store(&path, dim), (HashMap::new(), true), "truncated");
        fs::write(&path, b"XEVEC999\x04\0\0\0\0\0\0\0").unwrap();
        assert_eq!(read_store(&path, dim), (HashMap::new(), true), "bad magic");
        let partials = fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().path() != path).count();
        assert_eq!(partials, 0, "temporary files left behind");
    }

    #[test]
    fn non_finite_rows_never_rank() {
        let dim = 16;
        let mut rows = [unit(dim, 0), unit(dim, 0), unit(dim, 1)];
        rows[0][3] = f32::NAN;
        let matrix: Vec<f16> = rows.iter().flatten().map(|&x| f16::from_f32(x)).collect();
        let vectors = PhrasingVectors { dim, matrix, finite: false };
        assert!(!vectors.all_finite());
        let hits = vectors.top_k(&unit(dim, 0), 3, |_| true);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [1, 2]);
        assert!(hits.iter().all(|h| h.1.is_finite()));
    }

    /// The SIMD path (whole 16-value steps) and its tail agree with the
    /// plain f32 dot product of the same stored values.
    #[test]
    fn f16_dot_matches_f32_dot() {
        for len in [384, 100, 7, 0] {
            let a: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) / 60.0).collect();
            let b: Vec<f32> = (0..len).map(|i| ((i * 53 % 89) as f32 - 44.0) / 50.0).collect();
            let stored: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
            let widened: Vec<f32> = stored.iter().map(|x| x.to_f32()).collect();
            let (got, want) = (dot_f16(&stored, &b), dot(&widened, &b));
            assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "len {len}: {got} vs {want}");
            assert!((got - dot(&a, &b)).abs() < 0.05, "len {len}: f16 rounding too large");
        }
    }
}
