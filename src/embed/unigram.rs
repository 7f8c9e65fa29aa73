//! A compact, load-only unigram (SentencePiece) model plugged into the
//! `tokenizers` pipeline in place of the crate's own `Unigram`. That one
//! keeps a byte trie with a hash map per node: for the 250k-piece XLM-R
//! vocabulary ~290 MB of memory and ~0.7 s to build. Here the pieces live in
//! one string arena found through one table of 64-bit hashes (~10 MB).
//!
//! The search is the crate's `encode_optimized` step for step (the same
//! candidate pieces in the same order, the same unknown-piece score, unknown
//! runs fused), so ids are identical: the tests compare both models on the
//! knowledge base and the evaluation sets.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use tokenizers::models::unigram::UnigramTrainer;
use tokenizers::{Model, Token};

/// What SentencePiece charges an unknown character, below the worst piece.
const UNK_PENALTY: f64 = 10.0;

pub struct CompactUnigram {
    /// Piece `i` is `arena[ends[i - 1]..ends[i]]`.
    arena: String,
    ends: Vec<u32>,
    scores: Vec<f64>,
    /// Hash of a piece → its id (the last one, for repeated pieces, as the
    /// crate's map does).
    index: HashMap<u64, u32>,
    unk_id: u32,
    unk_score: f64,
    longest_piece: usize,
}

fn hash(piece: &str) -> u64 {
    let mut h = DefaultHasher::new();
    piece.hash(&mut h);
    h.finish()
}

impl CompactUnigram {
    pub fn new(vocab: Vec<(String, f64)>, unk_id: usize) -> Result<CompactUnigram, String> {
        if unk_id >= vocab.len() {
            return Err(format!("unk_id {unk_id} outside a vocabulary of {}", vocab.len()));
        }
        let mut model = CompactUnigram {
            arena: String::with_capacity(vocab.iter().map(|(p, _)| p.len()).sum()),
            ends: Vec::with_capacity(vocab.len()),
            scores: Vec::with_capacity(vocab.len()),
            index: HashMap::with_capacity(vocab.len()),
            unk_id: unk_id as u32,
            unk_score: 0.0,
            longest_piece: 0,
        };
        let mut min_score = f64::INFINITY;
        for (id, (piece, score)) in vocab.into_iter().enumerate() {
            let key = hash(&piece);
            if let Some(&other) = model.index.get(&key)
                && model.piece(other) != piece
            {
                return Err(format!("pieces {piece:?} and {:?} share a 64-bit hash", model.piece(other)));
            }
            model.arena.push_str(&piece);
            model.ends.push(u32::try_from(model.arena.len()).map_err(|_| "vocabulary over 4 GiB")?);
            model.index.insert(key, id as u32);
            model.longest_piece = model.longest_piece.max(piece.len());
            min_score = min_score.min(score);
            model.scores.push(score);
        }
        model.unk_score = min_score - UNK_PENALTY;
        Ok(model)
    }

    fn piece(&self, id: u32) -> &str {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] as usize };
        &self.arena[start..self.ends[id] as usize]
    }

    fn lookup(&self, piece: &str) -> Option<u32> {
        let id = *self.index.get(&hash(piece))?;
        (self.piece(id) == piece).then_some(id)
    }

    /// The best segmentation of `sentence` as byte ranges, unknown runs fused.
    fn segment(&self, sentence: &str) -> Vec<(usize, usize)> {
        #[derive(Clone)]
        struct Best {
            id: u32,
            score: f64,
            start: Option<usize>,
        }
        let mut best = vec![Best { id: 0, score: 0.0, start: None }; sentence.len() + 1];
        let mut at = 0;
        while at < sentence.len() {
            let rest = &sentence[at..];
            let till_here = best[at].score;
            let first_char = rest.chars().next().map_or(1, char::len_utf8);
            let mut has_single = false;
            // Every piece that is a prefix of `rest`, shortest first (the trie's order).
            let ends = rest.char_indices().skip(1).map(|(i, _)| i).chain(std::iter::once(rest.len()));
            for end in ends.take_while(|&end| end <= self.longest_piece) {
                let Some(id) = self.lookup(&rest[..end]) else { continue };
                let score = till_here + self.scores[id as usize];
                let node = &mut best[at + end];
                if node.start.is_none() || score > node.score {
                    *node = Best { id, score, start: Some(at) };
                }
                has_single |= end == first_char;
            }
            if !has_single {
                let score = till_here + self.unk_score;
                let node = &mut best[at + first_char];
                if node.start.is_none() || score > node.score {
                    *node = Best { id: self.unk_id, score, start: Some(at) };
                }
            }
            at += first_char;
        }
        let mut pieces = Vec::new();
        let mut end = sentence.len();
        let mut unk_run_end = None;
        while end > 0 {
            let node = &best[end];
            let start = node.start.expect("every char boundary is reached");
            if node.id == self.unk_id {
                unk_run_end.get_or_insert(end);
            } else {
                if let Some(run_end) = unk_run_end.take() {
                    pieces.push((end, run_end));
                }
                pieces.push((start, end));
            }
            end = start;
        }
        if let Some(run_end) = unk_run_end {
            pieces.push((0, run_end));
        }
        pieces.reverse();
        pieces
    }
}

impl Model for CompactUnigram {
    /// Required by the trait; this model is only ever loaded, never trained.
    type Trainer = UnigramTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        Ok(self
            .segment(sequence)
            .into_iter()
            .map(|(start, end)| {
                let text = &sequence[start..end];
                Token::new(self.lookup(text).unwrap_or(self.unk_id), text.to_string(), (start, end))
            })
            .collect())
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.lookup(token)
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        ((id as usize) < self.ends.len()).then(|| self.piece(id).to_string())
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        (0..self.ends.len() as u32).map(|id| (self.piece(id).to_string(), id)).collect()
    }

    fn get_vocab_size(&self) -> usize {
        self.ends.len()
    }

    fn save(&self, _folder: &Path, _prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        Err("the compact unigram model is load-only".into())
    }

    fn get_trainer(&self) -> UnigramTrainer {
        UnigramTrainer::default()
    }
}

/// `tokenizer.json` with the compact model in place of the crate's.
pub type E5Tokenizer = tokenizers::TokenizerImpl<
    CompactUnigram,
    tokenizers::NormalizerWrapper,
    tokenizers::PreTokenizerWrapper,
    tokenizers::PostProcessorWrapper,
    tokenizers::DecoderWrapper,
>;

/// The parts of `tokenizer.json` the pipeline needs, each deserialised by
/// the crate's own types except the model.
#[derive(serde::Deserialize)]
struct TokenizerFile {
    normalizer: Option<tokenizers::NormalizerWrapper>,
    pre_tokenizer: Option<tokenizers::PreTokenizerWrapper>,
    post_processor: Option<tokenizers::PostProcessorWrapper>,
    decoder: Option<tokenizers::DecoderWrapper>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenEntry>,
    model: UnigramFile,
}

#[derive(serde::Deserialize)]
struct UnigramFile {
    #[serde(rename = "type")]
    kind: String,
    unk_id: Option<usize>,
    vocab: Vec<(String, f64)>,
    #[serde(default)]
    byte_fallback: bool,
}

#[derive(serde::Deserialize)]
struct AddedTokenEntry {
    id: u32,
    content: String,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

/// Loads a unigram `tokenizer.json` with [`CompactUnigram`] as its model.
pub fn load_tokenizer(path: &Path) -> Result<E5Tokenizer, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: TokenizerFile = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    drop(text);
    let model = file.model;
    if model.kind != "Unigram" || model.byte_fallback {
        return Err(format!("{}: a unigram model without byte fallback expected", path.display()));
    }
    let unk_id = model.unk_id.ok_or_else(|| format!("{}: the unigram model has no unk_id", path.display()))?;
    let mut tokenizer = E5Tokenizer::new(CompactUnigram::new(model.vocab, unk_id)?);
    tokenizer.with_normalizer(file.normalizer).map_err(|e| e.to_string())?;
    tokenizer
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder);
    for t in &file.added_tokens {
        let token = tokenizers::AddedToken::from(t.content.clone(), t.special)
            .single_word(t.single_word)
            .lstrip(t.lstrip)
            .rstrip(t.rstrip)
            .normalized(t.normalized);
        let added = if t.special { tokenizer.add_special_tokens([token]) } else { tokenizer.add_tokens([token]) };
        added.map_err(|e| format!("{}: added token {:?}: {e}", path.display(), t.content))?;
        if tokenizer.token_to_id(&t.content) != Some(t.id) {
            return Err(format!("{}: added token {:?} does not get its id {}", path.display(), t.content, t.id));
        }
    }
    Ok(tokenizer)
}
