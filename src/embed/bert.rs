//! A BERT encoder over Q4_0 weights from a GGUF file (llama.cpp naming),
//! run with candle. Sequences are packed back to back instead of padded:
//! the linear layers see one `[tokens, hidden]` matrix for the whole batch
//! and only attention runs per sequence.

use std::path::Path;

use candle_core::quantized::{GgmlDType, gguf_file};
use candle_core::{D, Device, Module, Tensor};
use candle_nn::LayerNorm;
use candle_transformers::quantized_var_builder::VarBuilder;

use super::EmbedError;
use super::q4::{Activation, Q4_0_BYTES, Q4Linear, QK};

struct Layer {
    /// Q, K and V fused into one `[3·hidden, hidden]` matrix: one matmul instead of three.
    qkv: Q4Linear,
    out: Q4Linear,
    attn_norm: LayerNorm,
    up: Q4Linear,
    down: Q4Linear,
    out_norm: LayerNorm,
}

pub struct Bert {
    /// Token embeddings kept quantised (250k × 384 would be 384 MB as f32);
    /// only the rows a batch uses are dequantised.
    word_q4: Vec<u8>,
    position: Tensor,
    token_type0: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    pub hidden: usize,
    pub heads: usize,
    pub max_positions: usize,
    pub vocab: usize,
}

fn meta_u32(content: &gguf_file::Content, key: &str) -> Result<usize, EmbedError> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| EmbedError::Model(format!("GGUF metadata `{key}` missing")))
}

impl Bert {
    pub fn load(path: &Path) -> Result<Bert, EmbedError> {
        let device = Device::Cpu;
        let mut file = std::fs::File::open(path)
            .map_err(|e| EmbedError::Model(format!("{}: {e} (run `make models`)", path.display())))?;
        let content = gguf_file::Content::read(&mut file)?;
        let hidden = meta_u32(&content, "bert.embedding_length")?;
        let heads = meta_u32(&content, "bert.attention.head_count")?;
        let n_layers = meta_u32(&content, "bert.block_count")?;
        let ffn = meta_u32(&content, "bert.feed_forward_length")?;
        let max_positions = meta_u32(&content, "bert.context_length")?;
        let eps =
            content.metadata.get("bert.attention.layer_norm_epsilon").and_then(|v| v.to_f32().ok()).unwrap_or(1e-12)
                as f64;
        drop(file);
        let vb = VarBuilder::from_gguf(path, &device)?;
        let norm = |name: &str| -> Result<LayerNorm, EmbedError> {
            let w = vb.get(hidden, &format!("{name}.weight"))?.dequantize(&device)?;
            let b = vb.get(hidden, &format!("{name}.bias"))?.dequantize(&device)?;
            Ok(LayerNorm::new(w, b, eps))
        };
        let linear = |name: &str, out_dim: usize, in_dim: usize| -> Result<Q4Linear, EmbedError> {
            q4_linear(&vb, &[name], out_dim, in_dim, Activation::Identity, &device)
        };
        let word = vb.get_no_shape("token_embd.weight")?;
        if word.dtype() != GgmlDType::Q4_0 || word.shape().dims().last() != Some(&hidden) {
            return Err(EmbedError::Model("token_embd.weight must be Q4_0 [vocab, hidden]".into()));
        }
        let vocab = word.shape().dims()[0];
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = format!("blk.{i}");
            layers.push(Layer {
                qkv: q4_linear(
                    &vb,
                    &[&format!("{p}.attn_q"), &format!("{p}.attn_k"), &format!("{p}.attn_v")],
                    hidden,
                    hidden,
                    Activation::Identity,
                    &device,
                )?,
                out: linear(&format!("{p}.attn_output"), hidden, hidden)?,
                attn_norm: norm(&format!("{p}.attn_output_norm"))?,
                up: q4_linear(&vb, &[&format!("{p}.ffn_up")], ffn, hidden, Activation::Gelu, &device)?,
                down: linear(&format!("{p}.ffn_down"), hidden, ffn)?,
                out_norm: norm(&format!("{p}.layer_output_norm"))?,
            });
        }
        let token_types = vb.get_no_shape("token_types.weight")?.dequantize(&device)?;
        Ok(Bert {
            word_q4: word.data()?.into_owned(),
            position: vb.get((max_positions, hidden), "position_embd.weight")?.dequantize(&device)?,
            token_type0: token_types.get(0)?,
            emb_norm: norm("token_embd_norm")?,
            layers,
            hidden,
            heads,
            max_positions,
            vocab,
        })
    }

    /// Runs packed sequences (`lens[i]` tokens each, ids back to back, each
    /// at most `max_positions` long) and returns each sequence's mean-pooled,
    /// unnormalised hidden state.
    pub fn forward_packed(&self, ids: &[u32], lens: &[usize]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let h = self.hidden;
        let total: usize = lens.iter().sum();
        debug_assert_eq!(total, ids.len());
        let mut emb = vec![0f32; total * h];
        for (row, &id) in emb.chunks_exact_mut(h).zip(ids) {
            self.dequantize_word(id as usize, row)?;
        }
        let positions: Vec<u32> = lens.iter().flat_map(|&l| 0..l as u32).collect();
        let positions = Tensor::from_vec(positions, total, &Device::Cpu)?;
        let x = Tensor::from_vec(emb, (total, h), &Device::Cpu)?;
        let x = (x + self.position.index_select(&positions, 0)?)?.broadcast_add(&self.token_type0)?;
        let mut x = self.emb_norm.forward(&x)?;
        let head_dim = h / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        for layer in &self.layers {
            let qkv = x.apply_op1_no_bwd(&layer.qkv)?;
            let mut contexts = Vec::with_capacity(lens.len());
            let mut start = 0;
            for &len in lens {
                let seq = qkv.narrow(0, start, len)?;
                let split = |i: usize| -> candle_core::Result<Tensor> {
                    seq.narrow(1, i * h, h)?.reshape((len, self.heads, head_dim))?.transpose(0, 1)?.contiguous()
                };
                let (q, k, v) = (split(0)?, split(1)?, split(2)?);
                let scores = (q.matmul(&k.t()?)? * scale)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let ctx = probs.matmul(&v)?.transpose(0, 1)?.reshape((len, h))?;
                contexts.push(ctx);
                start += len;
            }
            let ctx = if contexts.len() == 1 { contexts.pop().expect("one") } else { Tensor::cat(&contexts, 0)? };
            let attn = ctx.apply_op1_no_bwd(&layer.out)?;
            x = layer.attn_norm.forward(&(x + attn)?)?;
            let ff = x.apply_op1_no_bwd(&layer.up)?.apply_op1_no_bwd(&layer.down)?;
            x = layer.out_norm.forward(&(x + ff)?)?;
        }
        let mut pooled = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &len in lens {
            pooled.push(x.narrow(0, start, len)?.mean(D::Minus2)?.to_vec1::<f32>()?);
            start += len;
        }
        Ok(pooled)
    }

    fn dequantize_word(&self, id: usize, out: &mut [f32]) -> Result<(), EmbedError> {
        let row_bytes = self.hidden / QK * Q4_0_BYTES;
        let row = self
            .word_q4
            .get(id * row_bytes..(id + 1) * row_bytes)
            .ok_or_else(|| EmbedError::Model(format!("token id {id} outside the vocabulary")))?;
        for (block, dst) in row.chunks_exact(Q4_0_BYTES).zip(out.chunks_exact_mut(QK)) {
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            for (j, &b) in block[2..].iter().enumerate() {
                dst[j] = ((b & 0x0F) as f32 - 8.0) * d;
                dst[j + 16] = ((b >> 4) as f32 - 8.0) * d;
            }
        }
        Ok(())
    }
}

/// One Q4_0 linear layer from the named weight matrices stacked row-wise
/// (Q4_0 rows are independent) and their biases concatenated.
fn q4_linear(
    vb: &VarBuilder,
    names: &[&str],
    out_dim: usize,
    in_dim: usize,
    activation: Activation,
    device: &Device,
) -> Result<Q4Linear, EmbedError> {
    let mut bytes = Vec::new();
    let mut bias = Vec::with_capacity(names.len() * out_dim);
    for name in names {
        let w = vb.get((out_dim, in_dim), &format!("{name}.weight"))?;
        if w.dtype() != GgmlDType::Q4_0 {
            return Err(EmbedError::Model(format!("{name}.weight must be Q4_0")));
        }
        bytes.extend_from_slice(&w.data()?);
        bias.extend(vb.get(out_dim, &format!("{name}.bias"))?.dequantize(device)?.to_vec1::<f32>()?);
    }
    Q4Linear::new(&bytes, names.len() * out_dim, in_dim, bias, activation).map_err(EmbedError::Model)
}
