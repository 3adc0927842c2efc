//! Tiny random-weight llama models in the real GGUF format, for tests.
//!
//! They mirror the default model's (SmolLM2-135M-Instruct) layout: llama architecture, a
//! gpt2-style byte-level BPE vocabulary with the `smollm` pre-tokenizer and ChatML control
//! tokens, tied embeddings. Tests therefore exercise the same loading, tokenizing and scoring
//! code as real runs, in milliseconds and without downloads. The same spec always gives the
//! same bytes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{GgufError, GgufValue, GgufWriter, TensorData};

/// Storage type of the weight matrices (norm vectors are always F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TinyWeightType {
    #[default]
    F32,
    F16,
    /// Needs `n_embd` and `n_ff` to be multiples of 32.
    Q8_0,
}

/// The architecture a tiny model is written as (the weights are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TinyArchitecture {
    #[default]
    Llama,
    /// `qwen2vl`: the llama layout under multi-section RoPE (M-RoPE), whose KV cache llama.cpp
    /// cannot shift; for testing what hesnr does with such models (the strided window policy).
    Qwen2Vl,
}

impl TinyArchitecture {
    /// The `general.architecture` value, also the prefix of the model's keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2Vl => "qwen2vl",
        }
    }
}

/// Shape and options of a tiny model. `head_dim = n_embd / n_head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyLlamaSpec {
    /// BPE merges learned from a built-in English and Python corpus; the vocabulary is
    /// 3 control tokens + 256 byte tokens + the merges (fewer if the corpus runs out of pairs).
    pub n_vocab_merges: usize,
    pub n_embd: u32,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_ff: u32,
    pub n_layer: u32,
    /// Training context length written to `llama.context_length`.
    pub n_ctx: u32,
    /// Seed of the weights (the vocabulary does not depend on it).
    pub seed: u64,
    pub weight_type: TinyWeightType,
    /// Use `token_embd.weight` as the output projection (no `output.weight`), as SmolLM2 does.
    pub tied_embeddings: bool,
    /// `tokenizer.ggml.add_bos_token`: whether llama.cpp prepends `<|im_start|>` (id 1).
    pub add_bos: bool,
    /// The architecture written (llama by default).
    pub architecture: TinyArchitecture,
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
            architecture: TinyArchitecture::Llama,
        }
    }
}

/// Control tokens, ids 0, 1, 2 (SmolLM2's).
pub const CONTROL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

const CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The text the BPE merges are learned from: common English and Python.
const CORPUS: &str = r#"The quick brown fox jumps over the lazy dog. The function returns the value of the
parser, and the test passes when the result is the same as the expected output. This is a
small model that is used in the tests of the scoring engine; it is not trained, so its
predictions are random, but its tokenizer is real and its file is a real GGUF file.
When a model reads a program, some tokens are easy to predict and others are not: after
"return" there is often a name, and after an opening bracket there is often a closing one.

import os
import sys
from typing import List, Optional


def main(args: List[str]) -> int:
    """Print every argument that is not empty."""
    for item in args:
        if item is not None and len(item) > 0:
            print(item)
    return 0


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Optional[str]:
        if self.pos >= len(self.text):
            return None
        result = self.text[self.pos:]
        self.pos = len(self.text)
        return result


def fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def read_lines(path: str) -> List[str]:
    """Return the lines of a text file, without their line endings."""
    with open(path, "r", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def count_words(lines: List[str]) -> dict:
    counts = {}
    for line in lines:
        for word in line.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


class Stack:
    """A last-in, first-out stack."""

    def __init__(self) -> None:
        self.items = []

    def push(self, item) -> None:
        self.items.append(item)

    def pop(self):
        if not self.items:
            raise IndexError("pop from an empty stack")
        return self.items.pop()

    def __len__(self) -> int:
        return len(self.items)


if __name__ == "__main__":
    values = [x * 2 for x in range(10) if x % 2 == 0]
    print(values, fibonacci(10))
    sys.exit(main(sys.argv[1:]))
"#;

/// Writes a tiny random-weight llama model that llama.cpp loads (see the module docs).
///
/// Weights are uniform, with a standard deviation of `1 / sqrt(fan_in)` for the layer matrices
/// and [`EMBEDDING_STD`] for the embeddings, so that next-token distributions range from peaked
/// to flat: scoring tests need both low- and high-entropy positions.
pub fn write_tiny_llama(path: &Path, spec: &TinyLlamaSpec) -> Result<(), GgufError> {
    check_spec(spec).map_err(|reason| GgufError::InvalidValue {
        path: path.to_path_buf(),
        what: "the tiny model spec".into(),
        reason,
    })?;
    let (tokens, merges) = bpe_vocab(spec.n_vocab_merges);
    let n_vocab = tokens.len() as u64;
    let head_dim = spec.n_embd / spec.n_head;
    let (e, ff, kv) = (
        u64::from(spec.n_embd),
        u64::from(spec.n_ff),
        u64::from(spec.n_head_kv * head_dim),
    );
    let s = |v: &str| GgufValue::String(v.to_string());
    let u = GgufValue::U32;
    let arch = spec.architecture.name();
    let key = |k: &str| format!("{arch}.{k}");
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", s(arch))
        .add_kv("general.name", s(&format!("hesnr tiny {arch}")))
        .add_kv(
            "general.file_type",
            // llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0.
            u(match spec.weight_type {
                TinyWeightType::F32 => 0,
                TinyWeightType::F16 => 1,
                TinyWeightType::Q8_0 => 7,
            }),
        )
        .add_kv(key("context_length"), u(spec.n_ctx))
        .add_kv(key("embedding_length"), u(spec.n_embd))
        .add_kv(key("block_count"), u(spec.n_layer))
        .add_kv(key("feed_forward_length"), u(spec.n_ff))
        .add_kv(key("attention.head_count"), u(spec.n_head))
        .add_kv(key("attention.head_count_kv"), u(spec.n_head_kv))
        .add_kv(key("rope.freq_base"), GgufValue::F32(100_000.0))
        .add_kv(key("rope.dimension_count"), u(head_dim))
        .add_kv(
            key("attention.layer_norm_rms_epsilon"),
            GgufValue::F32(1e-5),
        )
        .add_kv(key("vocab_size"), u(n_vocab as u32))
        .add_kv("tokenizer.ggml.add_space_prefix", GgufValue::Bool(false))
        .add_kv("tokenizer.ggml.model", s("gpt2"))
        .add_kv("tokenizer.ggml.pre", s("smollm"))
        .add_kv(
            "tokenizer.ggml.tokens",
            GgufValue::Array(tokens.iter().map(|t| s(t)).collect()),
        )
        .add_kv(
            "tokenizer.ggml.token_type",
            GgufValue::Array(
                (0..tokens.len())
                    .map(|i| GgufValue::I32(if i < CONTROL_TOKENS.len() { 3 } else { 1 }))
                    .collect(),
            ),
        )
        .add_kv(
            "tokenizer.ggml.merges",
            GgufValue::Array(merges.iter().map(|m| s(m)).collect()),
        )
        .add_kv("tokenizer.ggml.bos_token_id", u(1))
        .add_kv("tokenizer.ggml.eos_token_id", u(2))
        .add_kv("tokenizer.ggml.unknown_token_id", u(0))
        .add_kv("tokenizer.ggml.padding_token_id", u(2))
        .add_kv(
            "tokenizer.ggml.add_bos_token",
            GgufValue::Bool(spec.add_bos),
        )
        .add_kv("tokenizer.chat_template", s(CHAT_TEMPLATE));
    if spec.architecture == TinyArchitecture::Qwen2Vl {
        // The rotary pairs split into time, height and width sections as Qwen2-VL splits them
        // (16/24/24 of 64), scaled to this head; text positions use all three alike.
        let pairs = head_dim / 2;
        let (t, h) = (pairs / 4, (pairs - pairs / 4) / 2);
        let sections = [t, h, pairs - t - h, 0].map(|v| GgufValue::I32(v as i32));
        w.add_kv(
            key("rope.dimension_sections"),
            GgufValue::Array(sections.to_vec()),
        );
    }

    let mut rng = SplitMix64(spec.seed);
    // Uniform on [-a, a] has standard deviation a / sqrt(3).
    let mut matrix = |n_in: u64, n_out: u64, std: f32| -> TensorData {
        let a = std * 3f32.sqrt();
        let v: Vec<f32> = (0..n_in * n_out).map(|_| rng.uniform() * a).collect();
        match spec.weight_type {
            TinyWeightType::F32 => TensorData::F32(v),
            TinyWeightType::F16 => TensorData::F16(v),
            TinyWeightType::Q8_0 => TensorData::Q8_0(v),
        }
    };
    let fan_in = |n: u64| 1.0 / (n as f32).sqrt();
    let ones = |n: u64| TensorData::F32(vec![1.0; n as usize]);

    w.add_tensor(
        "token_embd.weight",
        &[e, n_vocab],
        matrix(e, n_vocab, EMBEDDING_STD),
    );
    w.add_tensor("output_norm.weight", &[e], ones(e));
    if !spec.tied_embeddings {
        w.add_tensor(
            "output.weight",
            &[e, n_vocab],
            matrix(e, n_vocab, EMBEDDING_STD),
        );
    }
    for i in 0..spec.n_layer {
        let name = |t: &str| format!("blk.{i}.{t}.weight");
        w.add_tensor(name("attn_norm"), &[e], ones(e));
        w.add_tensor(name("attn_q"), &[e, e], matrix(e, e, fan_in(e)));
        w.add_tensor(name("attn_k"), &[e, kv], matrix(e, kv, fan_in(e)));
        w.add_tensor(name("attn_v"), &[e, kv], matrix(e, kv, fan_in(e)));
        w.add_tensor(name("attn_output"), &[e, e], matrix(e, e, fan_in(e)));
        w.add_tensor(name("ffn_norm"), &[e], ones(e));
        w.add_tensor(name("ffn_gate"), &[e, ff], matrix(e, ff, fan_in(e)));
        w.add_tensor(name("ffn_up"), &[e, ff], matrix(e, ff, fan_in(e)));
        w.add_tensor(name("ffn_down"), &[ff, e], matrix(ff, e, fan_in(ff)));
    }
    w.write_to(path)
}

/// Standard deviation of the embeddings. Measured with llama.cpp on the default spec (tied,
/// 64 wide) over a Python snippet: 0.4 gives entropies from ~0.02 to ~3.8 nats (median ~2, a
/// fifth below 1 nat); 0.6 already makes the model repeat its input token with near-zero
/// entropy almost everywhere, 0.2 makes every position near-uniform.
pub const EMBEDDING_STD: f32 = 0.4;

fn check_spec(s: &TinyLlamaSpec) -> Result<(), String> {
    let sizes = [
        ("n_embd", s.n_embd),
        ("n_head", s.n_head),
        ("n_head_kv", s.n_head_kv),
        ("n_ff", s.n_ff),
        ("n_layer", s.n_layer),
        ("n_ctx", s.n_ctx),
    ];
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(format!("{name} must be positive"));
    }
    if !s.n_embd.is_multiple_of(s.n_head) || !(s.n_embd / s.n_head).is_multiple_of(2) {
        return Err(format!(
            "n_embd {} must be n_head {} times an even head size (RoPE rotates pairs)",
            s.n_embd, s.n_head
        ));
    }
    if !s.n_head.is_multiple_of(s.n_head_kv) {
        return Err(format!(
            "n_head {} must be a multiple of n_head_kv {}",
            s.n_head, s.n_head_kv
        ));
    }
    if s.weight_type == TinyWeightType::Q8_0
        && (!s.n_embd.is_multiple_of(32) || !s.n_ff.is_multiple_of(32))
    {
        return Err(format!(
            "Q8_0 weights need n_embd ({}) and n_ff ({}) to be multiples of 32",
            s.n_embd, s.n_ff
        ));
    }
    Ok(())
}

/// Deterministic PRNG (splitmix64), so that the same spec always gives the same file.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform on [-1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// GPT-2's byte -> character table (`bytes_to_unicode`): printable bytes map to themselves,
/// the others to U+0100 onwards in byte order (so space is 'Ġ' and newline 'Ċ').
pub fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let b = b as u32;
        let c = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(c).expect("below the surrogate range");
    }
    table
}

/// The tiny models' vocabulary: `(tokens, merges)`. Tokens are the control tokens, the 256 byte
/// tokens in byte order, then one token per merge; merges are `"left right"` strings in
/// priority order, learned greedily (most frequent adjacent pair first) from a built-in corpus
/// pre-tokenized roughly as the `smollm` pre-tokenizer does.
pub fn bpe_vocab(n_merges: usize) -> (Vec<String>, Vec<String>) {
    let table = bytes_to_unicode();
    let mut tokens: Vec<String> = CONTROL_TOKENS.iter().map(|s| s.to_string()).collect();
    tokens.extend(table.iter().map(char::to_string));
    let mut known: HashSet<String> = tokens.iter().cloned().collect();
    let first_byte_id = CONTROL_TOKENS.len() as u32;

    // Words as token-id sequences, with their counts, in a deterministic order.
    let mut counts: HashMap<Vec<u32>, u64> = HashMap::new();
    for chunk in pre_tokenize(CORPUS) {
        let ids = chunk
            .bytes()
            .map(|b| first_byte_id + u32::from(b))
            .collect();
        *counts.entry(ids).or_default() += 1;
    }
    let mut words: Vec<(Vec<u32>, u64)> = counts.into_iter().collect();
    words.sort();

    let mut merges = Vec::new();
    let mut banned: HashSet<(u32, u32)> = HashSet::new();
    while merges.len() < n_merges {
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        for (w, c) in &words {
            for p in w.windows(2) {
                if !banned.contains(&(p[0], p[1])) {
                    *pairs.entry((p[0], p[1])).or_default() += c;
                }
            }
        }
        // Most frequent pair; ties go to the smallest ids, for determinism.
        let Some((&(l, r), _)) = pairs
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        else {
            break;
        };
        let merged = format!("{}{}", tokens[l as usize], tokens[r as usize]);
        // Each merge must create a new token; a pair spelling an existing one is skipped.
        if !known.insert(merged.clone()) {
            banned.insert((l, r));
            continue;
        }
        merges.push(format!("{} {}", tokens[l as usize], tokens[r as usize]));
        let id = tokens.len() as u32;
        tokens.push(merged);
        for (w, _) in &mut words {
            let mut out = Vec::with_capacity(w.len());
            let mut i = 0;
            while i < w.len() {
                if i + 1 < w.len() && w[i] == l && w[i + 1] == r {
                    out.push(id);
                    i += 2;
                } else {
                    out.push(w[i]);
                    i += 1;
                }
            }
            *w = out;
        }
    }
    (tokens, merges)
}

/// Splits text as the `smollm` pre-tokenizer regex does (for ASCII text): single digits,
/// contractions, an optional space followed by a run of letters or of punctuation, and runs
/// of whitespace that leave their last space to the next word.
fn pre_tokenize(text: &str) -> Vec<&str> {
    #[derive(PartialEq)]
    enum Class {
        Letter,
        Digit,
        Space,
        Other,
    }
    let class = |c: char| {
        if c.is_alphabetic() {
            Class::Letter
        } else if c.is_numeric() {
            Class::Digit
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        }
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
    let run = |mut j: usize, k: &Class| {
        while j < chars.len() && class(chars[j].1) == *k {
            j += 1;
        }
        j
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let next = chars.get(i + 1).map(|c| class(c.1));
        let end = match class(c) {
            Class::Digit => i + 1,
            _ if c == '\'' => {
                let rest = &text[at(i + 1)..];
                match ["s", "t", "m", "d", "re", "ve", "ll"]
                    .iter()
                    .find(|s| rest.starts_with(*s))
                {
                    Some(s) => i + 1 + s.len(),
                    None => run(i, &Class::Other),
                }
            }
            Class::Space if c == ' ' && matches!(next, Some(Class::Letter)) => {
                run(i + 1, &Class::Letter)
            }
            Class::Space if c == ' ' && matches!(next, Some(Class::Other)) => {
                run(i + 1, &Class::Other)
            }
            Class::Space => {
                let j = run(i, &Class::Space);
                // Leave the last space of a run to the word after it.
                if j < chars.len() && j - i > 1 {
                    j - 1
                } else {
                    j
                }
            }
            k => run(i, &k),
        };
        out.push(&text[at(i)..at(end)]);
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::read_gguf;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[b'!' as usize], '!');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'\t' as usize], 'ĉ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xad], 'Ń', "soft hyphen is not printable");
        assert_eq!(t[0xff], 'ÿ');
        let distinct: HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn pre_tokenizer_splits_like_smollm() {
        assert_eq!(
            pre_tokenize("def f(x):\n    return x1 + 23 it's"),
            [
                "def", " f", "(", "x", "):", "\n   ", " return", " x", "1", " +", " ", "2", "3",
                " it", "'s"
            ]
        );
        assert_eq!(pre_tokenize("a  \n\nb"), ["a", "  \n", "\n", "b"]);
        assert_eq!(pre_tokenize("end  "), ["end", "  "]);
    }

    #[test]
    fn vocabulary_is_consistent() {
        let (tokens, merges) = bpe_vocab(300);
        assert_eq!(merges.len(), 300, "the corpus yields enough merges");
        assert_eq!(tokens.len(), 3 + 256 + merges.len());
        assert_eq!(&tokens[..3], CONTROL_TOKENS);
        assert_eq!(tokens[3 + b'a' as usize], "a");
        let mut seen = HashSet::new();
        for (i, m) in merges.iter().enumerate() {
            let (l, r) = m.split_once(' ').unwrap();
            // Only tokens that exist before this merge.
            let before = &tokens[..3 + 256 + i];
            assert!(
                before.iter().any(|t| t == l) && before.iter().any(|t| t == r),
                "{m}"
            );
            assert_eq!(
                tokens[3 + 256 + i],
                format!("{l}{r}"),
                "merge {i} adds its result"
            );
            assert!(
                !before.contains(&tokens[3 + 256 + i]),
                "{m} makes a new token"
            );
            assert!(seen.insert(m), "merge {m} repeated");
        }
        assert!(merges.iter().any(|m| m == "Ġ t"), "{:?}", &merges[..20]);
        assert!(tokens.iter().any(|t| t == "Ġreturn"), "learned a keyword");
        assert_eq!(bpe_vocab(300), (tokens, merges), "deterministic");
        assert_eq!(bpe_vocab(0).0.len(), 259);
    }

    #[test]
    fn same_spec_same_bytes_and_the_expected_layout() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.gguf"), d.path().join("b.gguf"));
        let spec = TinyLlamaSpec::default();
        write_tiny_llama(&a, &spec).unwrap();
        write_tiny_llama(&b, &spec).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let f = read_gguf(&a).unwrap();
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.context_length(), Some(256));
        assert_eq!(f.get_u64("llama.rope.dimension_count"), Some(16));
        assert_eq!(f.get_f64("llama.rope.freq_base"), Some(100_000.0));
        assert_eq!(f.get_str("tokenizer.ggml.pre"), Some("smollm"));
        assert_eq!(f.get_bool("tokenizer.ggml.add_bos_token"), Some(false));
        assert!(f.chat_template().unwrap().contains("<|im_start|>"));
        let n_vocab = 3 + 256 + 200;
        assert_eq!(f.array_len("tokenizer.ggml.tokens"), Some(n_vocab));
        assert_eq!(f.array_len("tokenizer.ggml.token_type"), Some(n_vocab));
        assert_eq!(f.array_len("tokenizer.ggml.merges"), Some(200));
        assert_eq!(f.get_u64("llama.vocab_size"), Some(n_vocab as u64));
        assert_eq!(f.tensors.len(), 2 + 9 * 2);
        assert!(f.tensor("output.weight").is_none(), "tied");
        let dims = |n: &str| f.tensor(n).unwrap().dims.clone();
        assert_eq!(dims("token_embd.weight"), [64, n_vocab as u64]);
        assert_eq!(dims("blk.1.attn_k.weight"), [64, 32]);
        assert_eq!(dims("blk.1.ffn_gate.weight"), [64, 128]);
        assert_eq!(dims("blk.1.ffn_down.weight"), [128, 64]);
        let c = TinyLlamaSpec { seed: 7, ..spec };
        write_tiny_llama(&b, &c).unwrap();
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }

    #[test]
    fn weight_types_and_untied_output() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("q.gguf");
        for (wt, ggml_type, file_type) in
            [(TinyWeightType::F16, 1, 1), (TinyWeightType::Q8_0, 8, 7)]
        {
            let spec = TinyLlamaSpec {
                weight_type: wt,
                tied_embeddings: false,
                add_bos: true,
                ..Default::default()
            };
            write_tiny_llama(&p, &spec).unwrap();
            let f = read_gguf(&p).unwrap();
            assert_eq!(f.get_u64("general.file_type"), Some(file_type));
            assert_eq!(f.get_bool("tokenizer.ggml.add_bos_token"), Some(true));
            assert_eq!(f.tensor("output.weight").unwrap().ggml_type, ggml_type);
            assert_eq!(
                f.tensor("blk.0.attn_q.weight").unwrap().ggml_type,
                ggml_type
            );
            assert_eq!(f.tensor("blk.0.ffn_norm.weight").unwrap().ggml_type, 0);
        }
    }

    #[test]
    fn bad_specs_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.gguf");
        for (spec, want) in [
            (
                TinyLlamaSpec {
                    n_head: 3,
                    ..Default::default()
                },
                "even head size",
            ),
            (
                TinyLlamaSpec {
                    n_head_kv: 3,
                    ..Default::default()
                },
                "multiple of n_head_kv",
            ),
            (
                TinyLlamaSpec {
                    n_layer: 0,
                    ..Default::default()
                },
                "n_layer must be positive",
            ),
            (
                TinyLlamaSpec {
                    n_ff: 100,
                    weight_type: TinyWeightType::Q8_0,
                    ..Default::default()
                },
                "multiples of 32",
            ),
        ] {
            let e = write_tiny_llama(&p, &spec).unwrap_err().to_string();
            assert!(e.contains("bad.gguf") && e.contains(want), "{e}");
        }
        assert!(!p.exists());
    }
}
