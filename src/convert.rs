//! Hugging Face checkpoints (config.json + safetensors) to GGUF, natively: `hesnr convert-hf`.
//!
//! A mid-training checkpoint straight out of a trainer is a folder with `config.json` and one or
//! more `*.safetensors` files (sharded ones listed by `model.safetensors.index.json`). For the
//! Llama family (`LlamaForCausalLM`, `MistralForCausalLM`: SmolLM2, Llama 2/3 without RoPE
//! scaling, Mistral 7B, ...) this writes the GGUF llama.cpp's `convert_hf_to_gguf.py` would, without
//! Python or torch:
//!
//! - tensors renamed to llama.cpp's names (`model.layers.N.self_attn.q_proj.weight` ->
//!   `blk.N.attn_q.weight`, ...), dims reversed (safetensors `[out, in]` is ggml `[in, out]`,
//!   same bytes);
//! - the rows of `q_proj` and `k_proj` permuted as the Python converter's `permute` does: Hugging
//!   Face stores each head's rotary pairs as two halves, llama.cpp's RoPE (mode 0) rotates
//!   adjacent pairs;
//! - `llama.*` hyper-parameters from config.json;
//! - the tokenizer copied from a GGUF of the same tokenizer (`--tokenizer-from`: the base model's
//!   GGUF or a vocabulary-only one). Converting `tokenizer.json` itself is not done.
//!
//! Weights are memory-mapped and streamed tensor by tensor into the output (row by row when
//! converted), so memory stays small whatever the model size. Checkpoint files are untrusted
//! input: every tensor's presence, dtype, shape and byte range is checked first, and errors name
//! the file and the tensor.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::gguf::{f16_to_f32, read_gguf, GgufValue, GgufWriter, StreamedTensor};

/// `architectures` values with the Llama tensor layout this converter handles.
pub const SUPPORTED_ARCHITECTURES: [&str; 3] =
    ["LlamaForCausalLM", "MistralForCausalLM", "LLaMAForCausalLM"];

/// Storage type of the weight matrices in the output (1-D tensors are always F32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutType {
    /// Every tensor F32: exact from F32, F16 and BF16 checkpoints, and what hesnr computes in.
    #[default]
    F32,
    /// Matrices keep their checkpoint type (F32, F16 or BF16): half the size of F32 for 16-bit
    /// checkpoints; hesnr's default `--precision auto` expands them to F32 when loading.
    AsIs,
}

#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    pub out_type: OutType,
    /// `general.name` [default: the checkpoint folder's name].
    pub name: Option<String>,
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertSummary {
    pub architecture: String,
    pub tensors: usize,
    pub parameters: u64,
    pub layers: u64,
    pub vocab_size: u64,
    pub tied_embeddings: bool,
    pub output_bytes: u64,
}

/// The hyper-parameters read from config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub architecture: String,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    pub head_dim: u64,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Linear RoPE scaling factor (`rope_scaling: {"type": "linear", "factor": f}`).
    pub rope_linear_factor: Option<f64>,
    pub max_position_embeddings: u64,
    pub vocab_size: u64,
    pub tie_word_embeddings: bool,
}

impl LlamaConfig {
    /// Reads and checks `config.json`; errors name the file and the field.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let cfg: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", path.display()))?;
        Self::from_json(&cfg).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    fn from_json(cfg: &Value) -> Result<Self, String> {
        let archs = cfg
            .get("architectures")
            .and_then(Value::as_array)
            .ok_or("missing field 'architectures' (a list such as [\"LlamaForCausalLM\"])")?;
        let names: Vec<&str> = archs.iter().filter_map(Value::as_str).collect();
        let architecture = names
            .iter()
            .find(|a| SUPPORTED_ARCHITECTURES.contains(a))
            .ok_or_else(|| {
                format!(
                    "field 'architectures' is {names:?}; hesnr convert-hf converts the Llama \
                     family ({}); use llama.cpp's convert_hf_to_gguf.py for other architectures",
                    SUPPORTED_ARCHITECTURES.join(", ")
                )
            })?
            .to_string();
        let uint = |key: &str| -> Result<Option<u64>, String> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("field '{key}' must be a positive integer, got {v}")),
                },
            }
        };
        let need = |key: &str| -> Result<u64, String> {
            uint(key)?.ok_or_else(|| format!("missing field '{key}'"))
        };
        let float = |key: &str| -> Result<Option<f64>, String> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                    _ => Err(format!("field '{key}' must be a positive number, got {v}")),
                },
            }
        };
        let hidden_size = need("hidden_size")?;
        let num_attention_heads = need("num_attention_heads")?;
        let num_key_value_heads = uint("num_key_value_heads")?.unwrap_or(num_attention_heads);
        let head_dim = match uint("head_dim")? {
            Some(d) => d,
            None if hidden_size.is_multiple_of(num_attention_heads) => {
                hidden_size / num_attention_heads
            }
            None => {
                return Err(format!(
                    "hidden_size {hidden_size} is not a multiple of num_attention_heads \
                     {num_attention_heads} and there is no 'head_dim'"
                ))
            }
        };
        if !head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {head_dim} must be even (RoPE rotates pairs)"
            ));
        }
        if !num_attention_heads.is_multiple_of(num_key_value_heads) {
            return Err(format!(
                "num_attention_heads {num_attention_heads} must be a multiple of \
                 num_key_value_heads {num_key_value_heads}"
            ));
        }
        if let Some(act) = cfg.get("hidden_act").and_then(Value::as_str) {
            if act != "silu" {
                return Err(format!(
                    "field 'hidden_act' is '{act}'; the llama architecture uses silu"
                ));
            }
        }
        for key in ["attention_bias", "mlp_bias"] {
            if cfg.get(key).and_then(Value::as_bool) == Some(true) {
                return Err(format!(
                    "field '{key}' is true; bias tensors are not supported by hesnr convert-hf"
                ));
            }
        }
        let rope_linear_factor = match cfg.get("rope_scaling") {
            None | Some(Value::Null) => None,
            Some(s) => {
                let kind = s
                    .get("rope_type")
                    .or_else(|| s.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let factor = s.get("factor").and_then(Value::as_f64);
                match (kind, factor) {
                    ("default", _) => None,
                    ("linear", Some(f)) if f.is_finite() && f > 0.0 => Some(f),
                    _ => {
                        return Err(format!(
                            "field 'rope_scaling' is {s}; only linear scaling is supported by \
                             hesnr convert-hf (use llama.cpp's convert_hf_to_gguf.py for others)"
                        ))
                    }
                }
            }
        };
        let tie_word_embeddings = match cfg.get("tie_word_embeddings") {
            None | Some(Value::Null) => false, // transformers' LlamaConfig default
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(format!(
                    "field 'tie_word_embeddings' must be a boolean, got {v}"
                ))
            }
        };
        Ok(Self {
            architecture,
            hidden_size,
            intermediate_size: need("intermediate_size")?,
            num_hidden_layers: need("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: float("rms_norm_eps")?.ok_or("missing field 'rms_norm_eps'")?,
            rope_theta: float("rope_theta")?.unwrap_or(10_000.0),
            rope_linear_factor,
            max_position_embeddings: need("max_position_embeddings")?,
            vocab_size: need("vocab_size")?,
            tie_word_embeddings,
        })
    }
}

/// Row order of a converted matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    AsStored,
    /// `convert_hf_to_gguf.py`'s `permute` with this many heads.
    Rope(u64),
}

/// One output tensor: GGUF name, Hugging Face name, expected safetensors shape.
#[derive(Debug, Clone)]
struct Planned {
    gguf: String,
    hf: String,
    shape: Vec<u64>,
    rows: Rows,
}

fn plan(c: &LlamaConfig) -> Vec<Planned> {
    let (e, ff, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let (q, kv) = (
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
    );
    let t = |gguf: String, hf: String, shape: &[u64], rows: Rows| Planned {
        gguf,
        hf,
        shape: shape.to_vec(),
        rows,
    };
    let s = |x: &str| x.to_string();
    let mut out = vec![
        t(
            s("token_embd.weight"),
            s("model.embed_tokens.weight"),
            &[v, e],
            Rows::AsStored,
        ),
        t(
            s("output_norm.weight"),
            s("model.norm.weight"),
            &[e],
            Rows::AsStored,
        ),
    ];
    if !c.tie_word_embeddings {
        out.push(t(
            s("output.weight"),
            s("lm_head.weight"),
            &[v, e],
            Rows::AsStored,
        ));
    }
    for i in 0..c.num_hidden_layers {
        let layer: [(&str, &str, Vec<u64>, Rows); 9] = [
            ("attn_norm", "input_layernorm", vec![e], Rows::AsStored),
            (
                "attn_q",
                "self_attn.q_proj",
                vec![q, e],
                Rows::Rope(c.num_attention_heads),
            ),
            (
                "attn_k",
                "self_attn.k_proj",
                vec![kv, e],
                Rows::Rope(c.num_key_value_heads),
            ),
            ("attn_v", "self_attn.v_proj", vec![kv, e], Rows::AsStored),
            (
                "attn_output",
                "self_attn.o_proj",
                vec![e, q],
                Rows::AsStored,
            ),
            (
                "ffn_norm",
                "post_attention_layernorm",
                vec![e],
                Rows::AsStored,
            ),
            ("ffn_gate", "mlp.gate_proj", vec![ff, e], Rows::AsStored),
            ("ffn_up", "mlp.up_proj", vec![ff, e], Rows::AsStored),
            ("ffn_down", "mlp.down_proj", vec![e, ff], Rows::AsStored),
        ];
        for (g, h, shape, rows) in layer {
            out.push(t(
                format!("blk.{i}.{g}.weight"),
                format!("model.layers.{i}.{h}.weight"),
                &shape,
                rows,
            ));
        }
    }
    out
}

/// Where a tensor's bytes are in the mapped checkpoint files.
#[derive(Debug, Clone)]
struct Located {
    file: usize,
    dtype: Dtype,
    shape: Vec<u64>,
    start: usize,
    end: usize,
}

/// The memory-mapped safetensors files of a checkpoint and the tensors in them.
struct Checkpoint {
    files: Vec<(PathBuf, Mmap)>,
    tensors: HashMap<String, Located>,
}

impl Checkpoint {
    fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let (paths, weight_map) = if index.is_file() {
            let text = std::fs::read_to_string(&index)
                .with_context(|| format!("{}: cannot read", index.display()))?;
            let json: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not valid JSON", index.display()))?;
            let map = json
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| anyhow!("{}: missing object 'weight_map'", index.display()))?;
            let mut weight_map = BTreeMap::new();
            for (name, file) in map {
                let file = file
                    .as_str()
                    .filter(|f| is_plain_file_name(f))
                    .ok_or_else(|| {
                        anyhow!(
                            "{}: tensor '{name}' maps to {file}, not a file name in the folder",
                            index.display()
                        )
                    })?;
                weight_map.insert(name.clone(), file.to_string());
            }
            let files: BTreeMap<&str, ()> = weight_map.values().map(|f| (f.as_str(), ())).collect();
            let paths = files.keys().map(|f| dir.join(f)).collect::<Vec<_>>();
            (paths, Some(weight_map))
        } else {
            let mut paths = Vec::new();
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("{}: cannot list the folder", dir.display()))?;
            for entry in entries {
                let p = entry
                    .with_context(|| format!("{}: cannot list the folder", dir.display()))?
                    .path();
                if p.extension().is_some_and(|x| x == "safetensors") && p.is_file() {
                    paths.push(p);
                }
            }
            paths.sort();
            if paths.is_empty() {
                bail!(
                    "{}: no *.safetensors files (and no model.safetensors.index.json)",
                    dir.display()
                );
            }
            (paths, None)
        };

        let mut files: Vec<(PathBuf, Mmap)> = Vec::with_capacity(paths.len());
        let mut tensors: HashMap<String, Located> = HashMap::new();
        for path in paths {
            let shown = path.display().to_string();
            let file = File::open(&path).with_context(|| format!("{shown}: cannot open"))?;
            let len = file
                .metadata()
                .with_context(|| format!("{shown}: cannot read"))?
                .len();
            if len < 8 {
                bail!("{shown}: truncated ({len} bytes; a safetensors file starts with an 8-byte header length)");
            }
            // SAFETY: the map is read-only; a checkpoint rewritten while it is being converted
            // can give wrong bytes (as any reader would), never undefined behaviour in safe code
            // that only copies from it.
            let map =
                unsafe { Mmap::map(&file) }.with_context(|| format!("{shown}: cannot map"))?;
            let (header_len, meta) = SafeTensors::read_metadata(&map).map_err(|e| {
                anyhow!("{shown}: not a valid safetensors file (truncated or corrupt?): {e}")
            })?;
            let base = 8 + header_len;
            let file_index = files.len();
            for (name, info) in meta.tensors() {
                let (a, b) = info.data_offsets;
                let n: Option<u64> = info
                    .shape
                    .iter()
                    .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
                let expect = n.and_then(|n| n.checked_mul(info.dtype.bitsize() as u64 / 8));
                if b < a || base + b > map.len() || expect != Some((b - a) as u64) {
                    bail!(
                        "{shown}: tensor '{name}': byte range {a}..{b} does not fit its shape {:?} \
                         {:?} or the file (truncated?)",
                        info.shape,
                        info.dtype
                    );
                }
                let loc = Located {
                    file: file_index,
                    dtype: info.dtype,
                    shape: info.shape.iter().map(|&d| d as u64).collect(),
                    start: base + a,
                    end: base + b,
                };
                if let Some(prev) = tensors.insert(name.clone(), loc) {
                    bail!(
                        "tensor '{name}' is in both {} and {shown}",
                        files[prev.file].0.display()
                    );
                }
            }
            files.push((path, map));
        }
        if let Some(weight_map) = weight_map {
            for (name, file) in &weight_map {
                match tensors.get(name) {
                    Some(loc) if files[loc.file].0.file_name() == Some(file.as_ref()) => {}
                    Some(loc) => bail!(
                        "model.safetensors.index.json puts tensor '{name}' in {file} but it is in {}",
                        files[loc.file].0.display()
                    ),
                    None => bail!(
                        "{}: tensor '{name}' is listed by model.safetensors.index.json but missing",
                        dir.join(file).display()
                    ),
                }
            }
        }
        Ok(Self { files, tensors })
    }

    fn bytes(&self, loc: &Located) -> &[u8] {
        &self.files[loc.file].1[loc.start..loc.end]
    }

    fn file_of(&self, loc: &Located) -> String {
        self.files[loc.file].0.display().to_string()
    }
}

fn is_plain_file_name(f: &str) -> bool {
    !f.is_empty() && !f.contains('/') && !f.contains('\\') && f != "." && f != ".."
}

/// Tensors that may be in a checkpoint without being converted.
fn ignorable(name: &str, cfg: &LlamaConfig) -> bool {
    name.ends_with(".rotary_emb.inv_freq") || (cfg.tie_word_embeddings && name == "lm_head.weight")
}

/// Bytes per element, ggml type when kept as is.
fn dtype_layout(d: Dtype) -> Option<(usize, u32)> {
    match d {
        Dtype::F32 => Some((4, 0)),
        Dtype::F16 => Some((2, 1)),
        Dtype::BF16 => Some((2, 30)),
        _ => None,
    }
}

/// Converts the checkpoint in `dir` to a GGUF at `out` (written atomically), with the
/// tokenizer of the GGUF `tokenizer_from`.
pub fn convert_hf(
    dir: &Path,
    tokenizer_from: &Path,
    out: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertSummary> {
    if !dir.is_dir() {
        bail!("{}: not a folder (expected a Hugging Face model folder with config.json and *.safetensors)", dir.display());
    }
    let cfg = LlamaConfig::read(&dir.join("config.json"))?;

    // The tokenizer first: a cheap check that catches the wrong base model before any work.
    let tok = read_gguf(tokenizer_from)
        .with_context(|| format!("reading the tokenizer GGUF {}", tokenizer_from.display()))?;
    let tok_keys: Vec<(String, GgufValue)> = tok
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .cloned()
        .collect();
    let n_tokens = tok.array_len("tokenizer.ggml.tokens").ok_or_else(|| {
        anyhow!(
            "{}: no tokenizer.ggml.tokens list; --tokenizer-from needs a GGUF with the model's \
             tokenizer (the base model's GGUF or a vocabulary-only one)",
            tokenizer_from.display()
        )
    })?;
    if n_tokens as u64 != cfg.vocab_size {
        bail!(
            "vocabulary mismatch: {} has {n_tokens} tokens but {} says vocab_size {}; \
             --tokenizer-from must be a GGUF of the checkpoint's own tokenizer",
            tokenizer_from.display(),
            dir.join("config.json").display(),
            cfg.vocab_size
        );
    }

    let ckpt = Checkpoint::open(dir)?;
    let planned = plan(&cfg);
    // Every tensor present with the right dtype and shape, and nothing unexpected left over.
    let mut locs = Vec::with_capacity(planned.len());
    for p in &planned {
        let loc = ckpt.tensors.get(&p.hf).ok_or_else(|| {
            let why = if p.hf == "lm_head.weight" {
                " (config.json says tie_word_embeddings is false)"
            } else {
                ""
            };
            anyhow!(
                "{}: tensor '{}' is missing from the checkpoint{why}",
                dir.display(),
                p.hf
            )
        })?;
        if dtype_layout(loc.dtype).is_none() {
            bail!(
                "{}: tensor '{}' has dtype {:?}; hesnr convert-hf reads F32, F16 and BF16",
                ckpt.file_of(loc),
                p.hf,
                loc.dtype
            );
        }
        if loc.shape != p.shape {
            bail!(
                "{}: tensor '{}' has shape {:?}, expected {:?} from config.json",
                ckpt.file_of(loc),
                p.hf,
                loc.shape,
                p.shape
            );
        }
        locs.push(loc);
    }
    let wanted: HashSet<&str> = planned.iter().map(|p| p.hf.as_str()).collect();
    let mut extra: Vec<&String> = ckpt
        .tensors
        .keys()
        .filter(|n| !wanted.contains(n.as_str()) && !ignorable(n, &cfg))
        .collect();
    extra.sort();
    if let Some(name) = extra.first() {
        let loc = &ckpt.tensors[*name];
        bail!(
            "{}: tensor '{name}' is not part of the llama layout hesnr convert-hf writes \
             ({} unexpected tensors in all); use llama.cpp's convert_hf_to_gguf.py for this model",
            ckpt.file_of(loc),
            extra.len()
        );
    }

    // Output types and the tensor directory (ggml dims: safetensors shape reversed).
    let streamed: Vec<StreamedTensor> = planned
        .iter()
        .zip(&locs)
        .map(|(p, loc)| {
            let kept = dtype_layout(loc.dtype).expect("checked").1;
            let ggml_type = match opts.out_type {
                OutType::AsIs if p.shape.len() == 2 => kept,
                _ => 0,
            };
            StreamedTensor {
                name: p.gguf.clone(),
                dims: p.shape.iter().rev().copied().collect(),
                ggml_type,
            }
        })
        .collect();
    let file_type = match streamed
        .iter()
        .find(|t| t.dims.len() == 2)
        .map(|t| t.ggml_type)
    {
        Some(1) => 1,   // MOSTLY_F16
        Some(30) => 32, // MOSTLY_BF16
        _ => 0,         // ALL_F32
    };

    let name = opts.name.clone().unwrap_or_else(|| {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "checkpoint".into())
    });
    let u = |x: u64| -> Result<GgufValue> {
        u32::try_from(x)
            .map(GgufValue::U32)
            .map_err(|_| anyhow!("{x} does not fit a GGUF u32 field"))
    };
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", GgufValue::String("llama".into()))
        .add_kv("general.name", GgufValue::String(name))
        .add_kv("general.file_type", GgufValue::U32(file_type))
        .add_kv("llama.context_length", u(cfg.max_position_embeddings)?)
        .add_kv("llama.embedding_length", u(cfg.hidden_size)?)
        .add_kv("llama.block_count", u(cfg.num_hidden_layers)?)
        .add_kv("llama.feed_forward_length", u(cfg.intermediate_size)?)
        .add_kv("llama.attention.head_count", u(cfg.num_attention_heads)?)
        .add_kv("llama.attention.head_count_kv", u(cfg.num_key_value_heads)?)
        .add_kv(
            "llama.rope.freq_base",
            GgufValue::F32(cfg.rope_theta as f32),
        )
        .add_kv("llama.rope.dimension_count", u(cfg.head_dim)?)
        .add_kv(
            "llama.attention.layer_norm_rms_epsilon",
            GgufValue::F32(cfg.rms_norm_eps as f32),
        )
        .add_kv("llama.vocab_size", u(cfg.vocab_size)?);
    if cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size {
        w.add_kv("llama.attention.key_length", u(cfg.head_dim)?)
            .add_kv("llama.attention.value_length", u(cfg.head_dim)?);
    }
    if let Some(f) = cfg.rope_linear_factor {
        w.add_kv(
            "llama.rope.scaling.type",
            GgufValue::String("linear".into()),
        )
        .add_kv("llama.rope.scaling.factor", GgufValue::F32(f as f32));
    }
    for (k, v) in tok_keys {
        w.add_kv(k, v);
    }

    w.write_streamed_to(out, &streamed, |i, sink| {
        let (p, loc) = (&planned[i], locs[i]);
        write_tensor(
            ckpt.bytes(loc),
            loc.dtype,
            &p.shape,
            p.rows,
            streamed[i].ggml_type,
            sink,
        )
        .with_context(|| {
            format!(
                "writing tensor '{}' (from '{}' in {}) to {}",
                p.gguf,
                p.hf,
                ckpt.file_of(loc),
                out.display()
            )
        })
    })?;

    let parameters = planned
        .iter()
        .map(|p| p.shape.iter().product::<u64>())
        .sum();
    Ok(ConvertSummary {
        architecture: cfg.architecture.clone(),
        tensors: planned.len(),
        parameters,
        layers: cfg.num_hidden_layers,
        vocab_size: cfg.vocab_size,
        tied_embeddings: cfg.tie_word_embeddings,
        output_bytes: std::fs::metadata(out).map_or(0, |m| m.len()),
    })
}

/// Source row of output row `r` for `convert_hf_to_gguf.py`'s `permute(w, n_head)`: within head
/// `h` of `hd` rows, output row `h*hd + 2j + i` is input row `h*hd + i*hd/2 + j`.
pub fn rope_source_row(r: u64, rows: u64, n_head: u64) -> u64 {
    let hd = rows / n_head;
    let (h, within) = (r / hd, r % hd);
    let (j, i) = (within / 2, within % 2);
    h * hd + i * (hd / 2) + j
}

/// Writes one tensor: rows reordered if needed, each converted to `ggml_type` (0 = F32, or the
/// source's own 16-bit type, copied).
fn write_tensor(
    data: &[u8],
    dtype: Dtype,
    shape: &[u64],
    rows: Rows,
    ggml_type: u32,
    sink: &mut dyn Write,
) -> Result<()> {
    let (elem, _) = dtype_layout(dtype).ok_or_else(|| anyhow!("unsupported dtype {dtype:?}"))?;
    let n_rows = if shape.len() == 2 { shape[0] } else { 1 };
    let row_elems = shape.iter().product::<u64>() / n_rows.max(1);
    let row_bytes = row_elems as usize * elem;
    let same = ggml_type != 0 || dtype == Dtype::F32;
    if same && rows == Rows::AsStored {
        sink.write_all(data)?;
        return Ok(());
    }
    if let Rows::Rope(n_head) = rows {
        if n_head == 0 || !n_rows.is_multiple_of(n_head) || !(n_rows / n_head).is_multiple_of(2) {
            bail!("{n_rows} rows cannot be split into {n_head} heads of an even size");
        }
    }
    // Batch output rows into ~1 MiB writes.
    let mut buf: Vec<u8> = Vec::with_capacity((1 << 20).max(row_elems as usize * 4));
    for r in 0..n_rows {
        let src = match rows {
            Rows::AsStored => r,
            Rows::Rope(n_head) => rope_source_row(r, n_rows, n_head),
        } as usize;
        let row = &data[src * row_bytes..(src + 1) * row_bytes];
        if same {
            buf.extend_from_slice(row);
        } else {
            match dtype {
                Dtype::F16 => {
                    for b in row.chunks_exact(2) {
                        let x = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                }
                Dtype::BF16 => {
                    for b in row.chunks_exact(2) {
                        let x = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                }
                _ => unreachable!("F32 is copied"),
            }
        }
        if buf.len() >= 1 << 20 {
            sink.write_all(&buf)?;
            buf.clear();
        }
    }
    sink.write_all(&buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &[(&str, Value)]) -> Value {
        let mut v = serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0, "max_position_embeddings": 256, "vocab_size": 300,
            "tie_word_embeddings": true
        });
        for (k, x) in extra {
            v[*k] = x.clone();
        }
        v
    }

    #[test]
    fn rope_permutation_matches_the_python_reshape() {
        // permute(w, n_head) = w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2).reshape(w.shape)
        let (n_head, hd) = (3u64, 8u64);
        let rows = n_head * hd;
        for r in 0..rows {
            // Output index (h, j, i) in shape (n_head, hd/2, 2) comes from input (h, i, j).
            let (h, j, i) = (r / hd, (r % hd) / 2, r % 2);
            assert_eq!(rope_source_row(r, rows, n_head), h * hd + i * (hd / 2) + j);
        }
        let order: Vec<u64> = (0..8).map(|r| rope_source_row(r, 8, 1)).collect();
        assert_eq!(order, [0, 4, 1, 5, 2, 6, 3, 7]);
    }

    #[test]
    fn config_fields_defaults_and_refusals() {
        let c = LlamaConfig::from_json(&cfg(&[])).unwrap();
        assert_eq!(
            (c.head_dim, c.num_key_value_heads, c.vocab_size),
            (16, 2, 300)
        );
        let c = LlamaConfig::from_json(&cfg(&[
            ("num_key_value_heads", Value::Null),
            ("rope_theta", Value::Null),
            ("tie_word_embeddings", Value::Null),
        ]))
        .unwrap();
        assert_eq!(
            (c.num_key_value_heads, c.rope_theta, c.tie_word_embeddings),
            (4, 10_000.0, false)
        );
        let e = LlamaConfig::from_json(&cfg(&[(
            "architectures",
            serde_json::json!(["Qwen2ForCausalLM"]),
        )]))
        .unwrap_err();
        assert!(
            e.contains("'architectures'") && e.contains("Qwen2ForCausalLM"),
            "{e}"
        );
        let e = LlamaConfig::from_json(&cfg(&[("hidden_size", Value::Null)])).unwrap_err();
        assert_eq!(e, "missing field 'hidden_size'");
        let e =
            LlamaConfig::from_json(&cfg(&[("vocab_size", serde_json::json!("300"))])).unwrap_err();
        assert!(e.contains("'vocab_size' must be a positive integer"), "{e}");
        let e = LlamaConfig::from_json(&cfg(&[(
            "rope_scaling",
            serde_json::json!({"rope_type": "llama3", "factor": 8.0}),
        )]))
        .unwrap_err();
        assert!(e.contains("'rope_scaling'"), "{e}");
        let e = LlamaConfig::from_json(&cfg(&[("attention_bias", Value::Bool(true))])).unwrap_err();
        assert!(e.contains("'attention_bias'"), "{e}");
        let c = LlamaConfig::from_json(&cfg(&[(
            "architectures",
            serde_json::json!(["MistralForCausalLM"]),
        )]))
        .unwrap();
        assert_eq!(c.architecture, "MistralForCausalLM");
    }

    #[test]
    fn sixteen_bit_rows_expand_exactly() {
        let halves: Vec<u8> = [0x3c00u16, 0xc000, 0x2e66, 0x0001]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let mut out = Vec::new();
        write_tensor(&halves, Dtype::F16, &[2, 2], Rows::AsStored, 0, &mut out).unwrap();
        let got: Vec<f32> = out
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got, [1.0, -2.0, f16_to_f32(0x2e66), f16_to_f32(1)]);
        let bf: Vec<u8> = [0x3f80u16, 0xc040]
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let mut out = Vec::new();
        write_tensor(&bf, Dtype::BF16, &[2], Rows::AsStored, 0, &mut out).unwrap();
        let got: Vec<f32> = out
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got, [1.0, -3.0]);
        // Kept as is: rows permuted, bytes untouched.
        let mut out = Vec::new();
        write_tensor(&halves, Dtype::F16, &[4, 1], Rows::Rope(1), 1, &mut out).unwrap();
        let order: Vec<u8> = out.chunks(2).map(|b| b[0]).collect();
        assert_eq!(order, [halves[0], halves[4], halves[2], halves[6]]);
    }
}
