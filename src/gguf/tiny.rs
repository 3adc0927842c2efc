//! Tiny random-weight llama models in the real GGUF format, for tests.
//!
//! They mirror the default model's layout (llama architecture, gpt2 byte-level BPE with the
//! `smollm` pre-tokenizer, control tokens, tied embeddings) so that tests exercise the same
//! loading, tokenizing and scoring code as real runs, in milliseconds and without downloads.

use std::collections::HashMap;
use std::path::Path;

use super::{GgufError, GgufValue, GgufWriter, TensorData};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyWeightType {
    F32,
    F16,
    Q8_0,
}

#[derive(Debug, Clone)]
pub struct TinyLlamaSpec {
    /// BPE merges learned from a built-in corpus (vocabulary = 3 control + 256 bytes + merges).
    pub n_vocab_merges: usize,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_ff: u32,
    pub n_layer: u32,
    pub n_ctx: u32,
    pub seed: u64,
    pub weight_type: TinyWeightType,
    pub tied_embeddings: bool,
    pub add_bos: bool,
}

impl Default for TinyLlamaSpec {
    fn default() -> Self {
        Self {
            n_vocab_merges: 200,
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            n_layer: 2,
            n_ctx: 256,
            seed: 42,
            weight_type: TinyWeightType::F32,
            tied_embeddings: true,
            add_bos: false,
        }
    }
}

const CONTROL: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

const CORPUS: &str = "def main(args):\n    for item in args:\n        if item is not None:\n            print(item)\n    return 0\n\n\
class Parser:\n    def __init__(self, text):\n        self.text = text\n        self.pos = 0\n\n    def parse(self):\n        return self.text[self.pos:]\n\n\
The quick brown fox jumps over the lazy dog. The function returns the value of the parser and the test passes.\n\
import os\nimport sys\nfrom typing import List, Optional\n\nresult = [x * 2 for x in range(10) if x % 2 == 0]\n";

/// Writes a tiny random llama model that llama.cpp loads.
pub fn write_tiny_llama(path: &Path, spec: &TinyLlamaSpec) -> Result<(), GgufError> {
    let (tokens, merges) = train_bpe(spec.n_vocab_merges);
    let n_vocab = tokens.len() as u64;
    let head_dim = spec.n_embd / spec.n_head;
    let (e, ff, kv) = (
        spec.n_embd as u64,
        spec.n_ff as u64,
        (spec.n_head_kv * head_dim) as u64,
    );
    let mut rng = SplitMix(spec.seed);
    let mut w = GgufWriter::new();
    let s = |v: &str| GgufValue::String(v.to_string());
    let u = GgufValue::U32;
    w.add_kv("general.architecture", s("llama"))
        .add_kv("general.name", s("hesnr tiny test llama"))
        .add_kv("general.file_type", u(match spec.weight_type {
            TinyWeightType::F32 => 0,
            TinyWeightType::F16 => 1,
            TinyWeightType::Q8_0 => 7,
        }))
        .add_kv("llama.context_length", u(spec.n_ctx))
        .add_kv("llama.embedding_length", u(spec.n_embd))
        .add_kv("llama.block_count", u(spec.n_layer))
        .add_kv("llama.feed_forward_length", u(spec.n_ff))
        .add_kv("llama.attention.head_count", u(spec.n_head))
        .add_kv("llama.attention.head_count_kv", u(spec.n_head_kv))
        .add_kv("llama.rope.freq_base", GgufValue::F32(100_000.0))
        .add_kv("llama.rope.dimension_count", u(head_dim))
        .add_kv("llama.attention.layer_norm_rms_epsilon", GgufValue::F32(1e-5))
        .add_kv("llama.vocab_size", u(n_vocab as u32))
        .add_kv("tokenizer.ggml.model", s("gpt2"))
        .add_kv("tokenizer.ggml.pre", s("smollm"))
        .add_kv("tokenizer.ggml.tokens", GgufValue::Array(tokens.iter().map(|t| s(t)).collect()))
        .add_kv(
            "tokenizer.ggml.token_type",
            GgufValue::Array((0..tokens.len()).map(|i| GgufValue::I32(if i < CONTROL.len() { 3 } else { 1 })).collect()),
        )
        .add_kv("tokenizer.ggml.merges", GgufValue::Array(merges.iter().map(|m| s(m)).collect()))
        .add_kv("tokenizer.ggml.bos_token_id", u(1))
        .add_kv("tokenizer.ggml.eos_token_id", u(2))
        .add_kv("tokenizer.ggml.unknown_token_id", u(0))
        .add_kv("tokenizer.ggml.padding_token_id", u(2))
        .add_kv("tokenizer.ggml.add_bos_token", GgufValue::Bool(spec.add_bos))
        .add_kv(
            "tokenizer.chat_template",
            s("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
        );
    let matrix = |rng: &mut SplitMix, n: u64, scale: f32| -> TensorData {
        let v: Vec<f32> = (0..n).map(|_| rng.uniform() * scale).collect();
        match spec.weight_type {
            TinyWeightType::F32 => TensorData::F32(v),
            TinyWeightType::F16 => TensorData::F16(v),
            TinyWeightType::Q8_0 => TensorData::Q8_0(v),
        }
    };
    let ones = |n: u64| TensorData::F32(vec![1.0; n as usize]);
    // Embeddings large enough that next-token distributions range from peaked to flat.
    w.add_tensor(
        "token_embd.weight",
        &[e, n_vocab],
        matrix(&mut rng, e * n_vocab, 1.0),
    );
    w.add_tensor("output_norm.weight", &[e], ones(e));
    if !spec.tied_embeddings {
        w.add_tensor(
            "output.weight",
            &[e, n_vocab],
            matrix(&mut rng, e * n_vocab, 1.0),
        );
    }
    let a = 0.25;
    for i in 0..spec.n_layer {
        let name = |t: &str| format!("blk.{i}.{t}.weight");
        w.add_tensor(&name("attn_norm"), &[e], ones(e));
        w.add_tensor(&name("attn_q"), &[e, e], matrix(&mut rng, e * e, a));
        w.add_tensor(&name("attn_k"), &[e, kv], matrix(&mut rng, e * kv, a));
        w.add_tensor(&name("attn_v"), &[e, kv], matrix(&mut rng, e * kv, a));
        w.add_tensor(&name("attn_output"), &[e, e], matrix(&mut rng, e * e, a));
        w.add_tensor(&name("ffn_norm"), &[e], ones(e));
        w.add_tensor(&name("ffn_gate"), &[e, ff], matrix(&mut rng, e * ff, a));
        w.add_tensor(&name("ffn_up"), &[e, ff], matrix(&mut rng, e * ff, a));
        w.add_tensor(&name("ffn_down"), &[ff, e], matrix(&mut rng, ff * e, a));
    }
    w.write_to(path)
}

/// Deterministic PRNG (splitmix64), so that the same spec always gives the same file.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// GPT-2's byte -> printable character table.
pub fn byte_to_unicode() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xa1..=0xac)
        .chain(0xae..=0xff)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec![' '; 256];
    for (b, c) in printable.iter().zip(chars) {
        table[*b as usize] = char::from_u32(c).expect("valid char");
    }
    table
}

/// A small byte-level BPE: control tokens, the 256 byte symbols, then `n_merges` merges learned
/// greedily from the built-in corpus (words split before spaces, as GPT-2 does).
fn train_bpe(n_merges: usize) -> (Vec<String>, Vec<String>) {
    let table = byte_to_unicode();
    let mut tokens: Vec<String> = CONTROL.iter().map(|s| s.to_string()).collect();
    tokens.extend(table.iter().map(|c| c.to_string()));
    let mut words: HashMap<Vec<String>, usize> = HashMap::new();
    let mut word = Vec::new();
    for &b in CORPUS.as_bytes() {
        if (b == b' ' || b == b'\n') && !word.is_empty() {
            *words.entry(std::mem::take(&mut word)).or_default() += 1;
        }
        word.push(table[b as usize].to_string());
    }
    if !word.is_empty() {
        *words.entry(word).or_default() += 1;
    }
    let mut merges = Vec::new();
    let mut known: std::collections::HashSet<String> = tokens.iter().cloned().collect();
    while merges.len() < n_merges {
        let mut pairs: HashMap<(String, String), usize> = HashMap::new();
        for (w, c) in &words {
            for p in w.windows(2) {
                *pairs.entry((p[0].clone(), p[1].clone())).or_default() += c;
            }
        }
        // Most frequent pair; ties broken by the pair itself, for determinism.
        let Some(((l, r), _)) = pairs
            .into_iter()
            .filter(|((l, r), _)| !known.contains(&format!("{l}{r}")))
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        else {
            break;
        };
        let merged = format!("{l}{r}");
        merges.push(format!("{l} {r}"));
        tokens.push(merged.clone());
        known.insert(merged.clone());
        words = words
            .into_iter()
            .map(|(w, c)| {
                let mut out = Vec::with_capacity(w.len());
                let mut i = 0;
                while i < w.len() {
                    if i + 1 < w.len() && w[i] == l && w[i + 1] == r {
                        out.push(merged.clone());
                        i += 2;
                    } else {
                        out.push(w[i].clone());
                        i += 1;
                    }
                }
                (out, c)
            })
            .fold(HashMap::new(), |mut m, (w, c)| {
                *m.entry(w).or_default() += c;
                m
            });
    }
    (tokens, merges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_consistent() {
        let (tokens, merges) = train_bpe(150);
        assert_eq!(tokens.len(), 3 + 256 + merges.len());
        assert!(
            merges.len() >= 100,
            "corpus yields enough merges: {}",
            merges.len()
        );
        let set: std::collections::HashSet<&String> = tokens.iter().collect();
        assert_eq!(set.len(), tokens.len(), "no duplicate tokens");
        for m in &merges {
            let (l, r) = m.split_once(' ').unwrap();
            assert!(
                set.contains(&l.to_string()) && set.contains(&r.to_string()),
                "{m}"
            );
        }
        assert_eq!(byte_to_unicode()[b' ' as usize], 'Ġ');
        assert_eq!(byte_to_unicode()[b'\n' as usize], 'Ċ');
    }

    #[test]
    fn same_spec_same_bytes() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.gguf"), d.path().join("b.gguf"));
        write_tiny_llama(&a, &TinyLlamaSpec::default()).unwrap();
        write_tiny_llama(&b, &TinyLlamaSpec::default()).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let f = crate::gguf::read_gguf(&a).unwrap();
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.tensors.len(), 2 + 9 * 2);
    }
}
