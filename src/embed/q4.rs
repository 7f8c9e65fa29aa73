//! The encoder's linear layers: Q4_0 weights × Q8_0 activations, as a candle
//! custom op. This is where the model spends its time, and candle's generic
//! Q4_0 path re-unpacks every weight nibble for every token and spends half
//! its instructions on sign juggling. Here the weights are unpacked once at
//! load into unsigned bytes (0..=15, the Q4_0 offset of 8 is taken out once
//! per block through the activation sums), laid out eight output rows at a
//! time, so the inner loop is one AVX2 `maddubs` per 32 multiply-adds with
//! each activation block reused across the eight rows.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
use half::f16;

/// Weights per Q4_0 / Q8_0 block.
pub(super) const QK: usize = 32;
/// Bytes of one Q4_0 block: f16 scale + 16 nibble bytes.
pub(super) const Q4_0_BYTES: usize = 18;
/// Output rows computed together.
const ROWS: usize = 8;

/// What the workers apply to each output after the bias.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// GELU with the exact erf (the feed-forward layer's), see `gelu.rs`.
    Gelu,
}

pub struct Q4Linear {
    out_dim: usize,
    in_dim: usize,
    /// `[row group][block][row in group][32]` nibble values 0..=15.
    weights: Vec<u8>,
    /// `[row group][block][row in group]` block scales.
    scales: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
}

impl Q4Linear {
    /// From GGUF Q4_0 bytes of a row-major `[out_dim, in_dim]` matrix.
    pub fn new(
        q4_0: &[u8],
        out_dim: usize,
        in_dim: usize,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Result<Q4Linear, String> {
        let blocks = in_dim / QK;
        if !in_dim.is_multiple_of(QK) || !out_dim.is_multiple_of(ROWS) || bias.len() != out_dim {
            return Err(format!("Q4_0 linear {out_dim}×{in_dim}: dimensions must be multiples of {QK} and {ROWS}"));
        }
        if q4_0.len() != out_dim * blocks * Q4_0_BYTES {
            return Err(format!("Q4_0 linear {out_dim}×{in_dim}: {} bytes of weights", q4_0.len()));
        }
        let mut weights = vec![0u8; out_dim * in_dim];
        let mut scales = vec![0f32; out_dim * blocks];
        for row in 0..out_dim {
            let (group, r) = (row / ROWS, row % ROWS);
            for b in 0..blocks {
                let src = &q4_0[(row * blocks + b) * Q4_0_BYTES..][..Q4_0_BYTES];
                let at = (group * blocks + b) * ROWS + r;
                scales[at] = f16::from_le_bytes([src[0], src[1]]).to_f32();
                let dst = &mut weights[at * QK..][..QK];
                for (j, &byte) in src[2..].iter().enumerate() {
                    dst[j] = byte & 0x0F;
                    dst[j + 16] = byte >> 4;
                }
            }
        }
        Ok(Q4Linear { out_dim, in_dim, weights, scales, bias, activation })
    }

    /// `x` is `[tokens, in_dim]`; returns `[tokens, out_dim]` = act(x·Wᵀ + bias).
    /// Both steps (quantising the activations, the matmul) are split across
    /// candle's CPU pool.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.forward_with(x, Kernel::detect())
    }

    fn forward_with(&self, x: &[f32], kernel: Kernel) -> Vec<f32> {
        let tokens = x.len() / self.in_dim;
        let blocks = self.in_dim / QK;
        let pool = candle_core::utils::barrier_pool();
        let mut acts = vec![Q8Block::default(); tokens * blocks];
        let shared = Disjoint(acts.as_mut_ptr());
        pool.execute_chunked(tokens, |range| {
            // SAFETY: each token's blocks are written by the one worker given that token.
            let dst = unsafe { shared.slice(range.start * blocks, range.len() * blocks) };
            for (src, block) in x[range.start * self.in_dim..range.end * self.in_dim].chunks_exact(QK).zip(dst) {
                *block = Q8Block::quantize(src.try_into().expect("QK"));
            }
        });
        let mut y = vec![0f32; tokens * self.out_dim];
        let out = Disjoint(y.as_mut_ptr());
        pool.execute_chunked(self.out_dim / ROWS, |range| {
            for g in range {
                let w = &self.weights[g * blocks * ROWS * QK..][..blocks * ROWS * QK];
                let d = &self.scales[g * blocks * ROWS..][..blocks * ROWS];
                let bias = &self.bias[g * ROWS..][..ROWS];
                for t in 0..tokens {
                    let mut rows = [0f32; ROWS];
                    dot_rows(kernel, w, d, &acts[t * blocks..][..blocks], &mut rows);
                    // SAFETY: row group `g` of token `t` belongs to this worker alone.
                    let dst = unsafe { out.slice(t * self.out_dim + g * ROWS, ROWS) };
                    for ((o, v), b) in dst.iter_mut().zip(rows).zip(bias) {
                        *o = v + b;
                    }
                }
            }
        });
        if self.activation == Activation::Gelu {
            // A pass of its own over whole rows: contiguous, so it vectorises.
            let out = Disjoint(y.as_mut_ptr());
            pool.execute_chunked(tokens, |range| {
                // SAFETY: each token's row is handed to exactly one worker.
                super::gelu::gelu_in_place(unsafe {
                    out.slice(range.start * self.out_dim, range.len() * self.out_dim)
                });
            });
        }
        y
    }
}

/// A buffer the pool's workers write in disjoint ranges; see the SAFETY
/// notes where it is used.
struct Disjoint<T>(*mut T);
// SAFETY: workers only ever write disjoint ranges of the buffer.
unsafe impl<T> Sync for Disjoint<T> {}
impl<T> Disjoint<T> {
    /// # Safety
    /// `start + len` is within the buffer and no other live slice overlaps.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: upheld by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// 32 activations quantised to i8 with an f32 scale, plus scale·Σq (for
/// the Q4_0 offset correction).
#[derive(Clone, Copy, Default)]
struct Q8Block {
    q: [i8; QK],
    scale: f32,
    scaled_sum: f32,
}

impl Q8Block {
    fn quantize(x: &[f32; QK]) -> Q8Block {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        // Round half to even, as the reference engine's `lrintf` (and one instruction).
        let q = x.map(|v| (v * inv).round_ties_even().clamp(-128.0, 127.0) as i8);
        let sum: i32 = q.iter().map(|&v| v as i32).sum();
        Q8Block { q, scale, scaled_sum: scale * sum as f32 }
    }
}

/// The dot-product kernels this CPU can run, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// AVX-512 VNNI on 256-bit vectors: one `vpdpbusd` per 32 multiply-adds
    /// (Zen 4, Ice Lake and later).
    Vnni,
    /// AVX2: `vpmaddubsw` + `vpmaddwd` (the build's baseline, x86-64-v3).
    Avx2,
    Portable,
}

impl Kernel {
    /// The best kernel, detected once (every linear layer asks, every pass).
    fn detect() -> Kernel {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Kernel::available()[0])
    }

    fn available() -> Vec<Kernel> {
        let mut kernels = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                if has!("avx512vnni") && has!("avx512vl") {
                    kernels.push(Kernel::Vnni);
                }
                kernels.push(Kernel::Avx2);
            }
        }
        kernels.push(Kernel::Portable);
        kernels
    }
}

/// Eight output rows of one token (without bias):
/// Σ_blocks d_w·d_a·(Σ w·a − 8·Σ a). `kernel` must come from [`Kernel::available`].
fn dot_rows(kernel: Kernel, w: &[u8], d: &[f32], acts: &[Q8Block], out: &mut [f32; ROWS]) {
    match kernel {
        // SAFETY: `Kernel::available` checked the CPU features each needs.
        #[cfg(target_arch = "x86_64")]
        Kernel::Vnni => unsafe { simd::dot_rows_vnni(w, d, acts, out) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { simd::dot_rows_avx2(w, d, acts, out) },
        _ => {
            *out = [0.0; ROWS];
            for (b, a) in acts.iter().enumerate() {
                for (r, o) in out.iter_mut().enumerate() {
                    let wb = &w[(b * ROWS + r) * QK..][..QK];
                    let dot: i32 = wb.iter().zip(&a.q).map(|(&w, &a)| w as i32 * a as i32).sum();
                    *o += d[b * ROWS + r] * (a.scale * dot as f32 - 8.0 * a.scaled_sum);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::{Q8Block, QK, ROWS};

    /// One kernel per instruction set: the same loop, with `$dot` giving the
    /// eight i32 partial sums of 32 unsigned weight × signed activation bytes.
    macro_rules! dot_rows_kernel {
        ($name:ident, $features:literal, |$wv:ident, $av:ident| $dot:expr) => {
            #[target_feature(enable = $features)]
            pub(super) fn $name(w: &[u8], d: &[f32], acts: &[Q8Block], out: &mut [f32; ROWS]) {
                let blocks = acts.len();
                assert!(w.len() >= blocks * ROWS * QK && d.len() >= blocks * ROWS);
                // SAFETY: every load below reads within the slices bounded above.
                unsafe {
                    let mut acc = [_mm256_setzero_ps(); ROWS];
                    let mut corr = _mm256_setzero_ps();
                    for (b, a) in acts.iter().enumerate() {
                        let $av = _mm256_loadu_si256(a.q.as_ptr() as *const __m256i);
                        let dw = _mm256_loadu_ps(d.as_ptr().add(b * ROWS));
                        let scale = _mm256_mul_ps(dw, _mm256_set1_ps(a.scale));
                        corr = _mm256_fmadd_ps(dw, _mm256_set1_ps(a.scaled_sum), corr);
                        let wb = w.as_ptr().add(b * ROWS * QK);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let $wv = _mm256_loadu_si256(wb.add(r * QK) as *const __m256i);
                            let dot = $dot;
                            let s = _mm256_permutevar8x32_ps(scale, _mm256_set1_epi32(r as i32));
                            *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, *acc);
                        }
                    }
                    // Horizontal sums of the eight accumulators, in row order.
                    let h01 = _mm256_hadd_ps(acc[0], acc[1]);
                    let h23 = _mm256_hadd_ps(acc[2], acc[3]);
                    let h45 = _mm256_hadd_ps(acc[4], acc[5]);
                    let h67 = _mm256_hadd_ps(acc[6], acc[7]);
                    let h0123 = _mm256_hadd_ps(h01, h23);
                    let h4567 = _mm256_hadd_ps(h45, h67);
                    let sums = _mm256_add_ps(
                        _mm256_permute2f128_ps(h0123, h4567, 0x20),
                        _mm256_permute2f128_ps(h0123, h4567, 0x31),
                    );
                    let res = _mm256_fnmadd_ps(_mm256_set1_ps(8.0), corr, sums);
                    _mm256_storeu_ps(out.as_mut_ptr(), res);
                }
            }
        };
    }

    dot_rows_kernel!(dot_rows_avx2, "avx2,fma", |wv, av| _mm256_madd_epi16(
        _mm256_maddubs_epi16(wv, av),
        _mm256_set1_epi16(1)
    ));
    dot_rows_kernel!(dot_rows_vnni, "avx2,fma,avx512vnni,avx512vl", |wv, av| _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        wv,
        av
    ));
}

impl CustomOp1 for Q4Linear {
    fn name(&self) -> &'static str {
        "q4_0-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("q4_0-linear: f32 input expected");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("q4_0-linear: contiguous input expected");
        };
        let dims = layout.shape().dims();
        if dims.last() != Some(&self.in_dim) {
            candle_core::bail!("q4_0-linear: input {dims:?}, expected [.., {}]", self.in_dim);
        }
        let y = self.forward(&data[start..end]);
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty") = self.out_dim;
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels against a plain f32 matmul of the dequantised weights.
    #[test]
    fn matches_dequantised_matmul() {
        let (out_dim, in_dim, tokens) = (16, 64, 3);
        let blocks = in_dim / QK;
        let mut q4 = Vec::new();
        let mut dense = vec![0f32; out_dim * in_dim];
        for row in 0..out_dim {
            for b in 0..blocks {
                let d = 0.01 * (1 + (row + b) % 5) as f32;
                q4.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                let d = f16::from_f32(d).to_f32();
                for j in 0..16 {
                    let (lo, hi) = ((row * 7 + j * 3 + b) % 16, (row * 5 + j * 11 + b) % 16);
                    q4.push((lo | (hi << 4)) as u8);
                    dense[row * in_dim + b * QK + j] = (lo as f32 - 8.0) * d;
                    dense[row * in_dim + b * QK + j + 16] = (hi as f32 - 8.0) * d;
                }
            }
        }
        let bias: Vec<f32> = (0..out_dim).map(|i| i as f32 * 0.1).collect();
        let x: Vec<f32> = (0..tokens * in_dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let layer = Q4Linear::new(&q4, out_dim, in_dim, bias.clone(), Activation::Identity).expect("layer");
        let y = layer.forward(&x);
        for t in 0..tokens {
            for o in 0..out_dim {
                let want: f32 = bias[o] + (0..in_dim).map(|i| x[t * in_dim + i] * dense[o * in_dim + i]).sum::<f32>();
                let got = y[t * out_dim + o];
                assert!((got - want).abs() < 0.02 * want.abs().max(1.0), "t{t} o{o}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn rejects_mismatched_shapes() {
        assert!(Q4Linear::new(&[0; 18], 8, 33, vec![0.0; 8], Activation::Identity).is_err());
        assert!(Q4Linear::new(&[0; 18], 8, 32, vec![0.0; 8], Activation::Identity).is_err());
    }
}
