//! `hesnr convert-hf`: Hugging Face checkpoints (config.json + safetensors) to GGUF.
//!
//! A GGUF is exported to a Hugging Face folder here (the inverse of llama.cpp's converter:
//! names, transposed shapes, q/k rows un-permuted back to the halves layout transformers uses),
//! converted back by hesnr, and both files are scored: the results must match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::common::{default_tiny, hesnr, real_model, scratch, tiny_model};
use hesnr::gguf::tiny::TinyLlamaSpec;
use hesnr::gguf::{f16_to_f32, f32_to_f16, read_gguf, GgufFile, GgufValue};
use safetensors::{Dtype, View};
use serde_json::{json, Value};

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "hesnr failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fails(out: Output) -> String {
    assert!(!out.status.success(), "hesnr succeeded unexpectedly");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tensor's values as f32 (F32, F16 or BF16 storage); `bytes` is the whole file.
fn tensor_f32(bytes: &[u8], f: &GgufFile, name: &str) -> Vec<f32> {
    let t = f.tensor(name).unwrap_or_else(|| panic!("no tensor {name}"));
    let at = (f.data_offset + t.offset) as usize;
    let data = &bytes[at..at + t.byte_size().unwrap() as usize];
    match t.ggml_type {
        0 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        1 => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        30 => data
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
            .collect(),
        t => panic!("{name}: type {t}"),
    }
}

/// An owned safetensors tensor.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|&x| f32_to_f16(x).to_le_bytes())
            .collect(),
        // Round to nearest even on the 16 dropped bits (values here are finite).
        Dtype::BF16 => values
            .iter()
            .flat_map(|x| {
                let b = x.to_bits();
                let r = b + 0x7fff + ((b >> 16) & 1);
                ((r >> 16) as u16).to_le_bytes()
            })
            .collect(),
        d => panic!("{d:?}"),
    }
}

/// transformers' `permute` (convert_llama_weights_to_hf.py), from llama.cpp's row order to
/// Hugging Face's: `w.view(n_heads, dim1 / n_heads / 2, 2, dim2).transpose(1, 2)`, written
/// out index by index.
fn to_hf_rows(w: &[f32], n_rows: usize, n_heads: usize) -> Vec<f32> {
    let cols = w.len() / n_rows;
    let hd = n_rows / n_heads;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_heads {
        for j in 0..hd / 2 {
            for i in 0..2 {
                let from = h * hd + j * 2 + i; // view index (h, j, i)
                let to = h * hd + i * (hd / 2) + j; // after transpose: (h, i, j)
                out[to * cols..(to + 1) * cols].copy_from_slice(&w[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

struct Export {
    dtype: Dtype,
    /// Write `lm_head.weight` for a tied model anyway (as some trainers do).
    tied_lm_head: bool,
    /// Split into this many shards with model.safetensors.index.json.
    shards: usize,
}

impl Default for Export {
    fn default() -> Self {
        Self {
            dtype: Dtype::F32,
            tied_lm_head: false,
            shards: 1,
        }
    }
}

/// Writes `gguf` as a Hugging Face checkpoint folder; returns the config written.
fn export_hf(gguf: &Path, dir: &Path, opts: &Export) -> Value {
    let f = read_gguf(gguf).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let u = |k: &str| f.get_u64(&format!("llama.{k}")).unwrap();
    let (n_head, n_kv, n_layer) = (
        u("attention.head_count"),
        u("attention.head_count_kv"),
        u("block_count"),
    );
    let vocab = f.array_len("tokenizer.ggml.tokens").unwrap() as u64;
    let tied = f.tensor("output.weight").is_none();
    let bytes = std::fs::read(gguf).unwrap();
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": u("embedding_length"),
        "intermediate_size": u("feed_forward_length"),
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "rms_norm_eps": f.get_f64("llama.attention.layer_norm_rms_epsilon").unwrap(),
        "rope_theta": f.get_f64("llama.rope.freq_base").unwrap(),
        "max_position_embeddings": u("context_length"),
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();

    let hf_name = |g: &str| -> (String, usize) {
        match g {
            "token_embd.weight" => ("model.embed_tokens.weight".into(), 0),
            "output_norm.weight" => ("model.norm.weight".into(), 0),
            "output.weight" => ("lm_head.weight".into(), 0),
            _ => {
                let rest = g.strip_prefix("blk.").unwrap();
                let (n, t) = rest.split_once('.').unwrap();
                let t = t.strip_suffix(".weight").unwrap();
                let (h, heads) = match t {
                    "attn_norm" => ("input_layernorm", 0),
                    "attn_q" => ("self_attn.q_proj", n_head as usize),
                    "attn_k" => ("self_attn.k_proj", n_kv as usize),
                    "attn_v" => ("self_attn.v_proj", 0),
                    "attn_output" => ("self_attn.o_proj", 0),
                    "ffn_norm" => ("post_attention_layernorm", 0),
                    "ffn_gate" => ("mlp.gate_proj", 0),
                    "ffn_up" => ("mlp.up_proj", 0),
                    "ffn_down" => ("mlp.down_proj", 0),
                    other => panic!("{other}"),
                };
                (format!("model.layers.{n}.{h}.weight"), heads)
            }
        }
    };
    let mut tensors: Vec<(String, Owned)> = Vec::new();
    for t in &f.tensors {
        let (name, heads) = hf_name(&t.name);
        let mut values = tensor_f32(&bytes, &f, &t.name);
        let shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
        if heads > 0 {
            values = to_hf_rows(&values, shape[0], heads);
        }
        // Norms stay F32 as trainers often keep them; matrices take the export dtype.
        let dtype = if shape.len() == 2 {
            opts.dtype
        } else {
            Dtype::F32
        };
        let data = encode(&values, dtype);
        tensors.push((name, Owned { dtype, shape, data }));
    }
    if tied && opts.tied_lm_head {
        let e = tensors
            .iter()
            .find(|(n, _)| n == "model.embed_tokens.weight")
            .unwrap();
        let copy = Owned {
            dtype: e.1.dtype,
            shape: e.1.shape.clone(),
            data: e.1.data.clone(),
        };
        tensors.push(("lm_head.weight".into(), copy));
    }
    if opts.shards <= 1 {
        safetensors::serialize_to_file(
            tensors.iter().map(|(n, t)| (n.clone(), t)),
            None,
            &dir.join("model.safetensors"),
        )
        .unwrap();
    } else {
        let mut weight_map = serde_json::Map::new();
        let per = tensors.len().div_ceil(opts.shards);
        for (i, chunk) in tensors.chunks(per).enumerate() {
            let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, opts.shards);
            for (n, _) in chunk {
                weight_map.insert(n.clone(), Value::String(file.clone()));
            }
            safetensors::serialize_to_file(
                chunk.iter().map(|(n, t)| (n.clone(), t)),
                None,
                &dir.join(&file),
            )
            .unwrap();
        }
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            serde_json::to_string(&json!({"metadata": {}, "weight_map": weight_map})).unwrap(),
        )
        .unwrap();
    }
    config
}

fn convert(dir: &Path, out: &Path, tokenizer: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "convert-hf",
        path_str(dir),
        "-o",
        path_str(out),
        "--tokenizer-from",
        path_str(tokenizer),
    ];
    args.extend(extra);
    hesnr(&args)
}

/// Per-document rows of `hesnr score` (JSON values, one per document).
fn score_rows(model: &Path, docs: &Path, limit: Option<u32>) -> Vec<Value> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let rows = scratch().join(format!(
        "rows-{}-{}.jsonl",
        model.file_stem().unwrap().to_string_lossy(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut args = vec![
        "score".to_string(),
        docs.display().to_string(),
        "-m".into(),
        model.display().to_string(),
        "-o".into(),
        rows.display().to_string(),
    ];
    if let Some(l) = limit {
        args.extend(["--limit".into(), l.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(hesnr(&args));
    std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tiny_docs() -> PathBuf {
    static DOCS: OnceLock<PathBuf> = OnceLock::new();
    DOCS.get_or_init(write_tiny_docs).clone()
}

fn write_tiny_docs() -> PathBuf {
    let p = scratch().join("convert-docs.jsonl");
    let docs = [
        crate::common::CODE,
        "The quick brown fox jumps over the lazy dog. The function returns the value.",
        "import os\nimport sys\n\n\ndef main(args):\n    for item in args:\n        print(item)\n    return 0\n",
    ];
    let text: String = docs
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{}\n", json!({"id": format!("d{i}"), "text": t})))
        .collect();
    std::fs::write(&p, text).unwrap();
    p
}

fn ppl(row: &Value) -> f64 {
    row["ppl"].as_f64().unwrap()
}

/// Same tensors (names, dims, bytes), same llama.* and tokenizer.* metadata.
fn assert_same_model(a: &Path, b: &Path) {
    let (fa, fb) = (read_gguf(a).unwrap(), read_gguf(b).unwrap());
    let (ba, bb) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let mut na: Vec<_> = fa.tensors.iter().map(|t| (&t.name, &t.dims)).collect();
    let mut nb: Vec<_> = fb.tensors.iter().map(|t| (&t.name, &t.dims)).collect();
    na.sort();
    nb.sort();
    assert_eq!(na, nb);
    for t in &fa.tensors {
        assert_eq!(
            tensor_f32(&ba, &fa, &t.name),
            tensor_f32(&bb, &fb, &t.name),
            "tensor {}",
            t.name
        );
    }
    let keys = |f: &GgufFile| -> HashMap<String, GgufValue> {
        f.metadata
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer.") || k.starts_with("llama."))
            .cloned()
            .collect()
    };
    assert_eq!(keys(&fa), keys(&fb));
    assert_eq!(fb.get_str("general.architecture"), Some("llama"));
}

#[test]
fn tiny_round_trip_scores_identically() {
    let src = default_tiny();
    let docs = tiny_docs();
    let want = score_rows(&src, &docs, None);
    assert_eq!(want.len(), 3);

    // Tied (as SmolLM2), single file; and with a redundant lm_head.weight, which is ignored.
    for (label, lm_head) in [("tied", false), ("tied-lm-head", true)] {
        let dir = scratch().join(format!("hf-{label}"));
        export_hf(
            &src,
            &dir,
            &Export {
                tied_lm_head: lm_head,
                ..Export::default()
            },
        );
        let out = scratch().join(format!("conv-{label}.gguf"));
        let o = ok(convert(&dir, &out, &src, &[]));
        assert!(String::from_utf8_lossy(&o.stdout).contains("conv-"));
        assert_same_model(&src, &out);
        let f = read_gguf(&out).unwrap();
        assert_eq!(
            f.get_str("general.name"),
            Some(format!("hf-{label}").as_str())
        );
        assert_eq!(score_rows(&out, &docs, None), want, "{label}");
    }

    // Untied, sharded in 3 files with an index.
    let untied = tiny_model(
        "tiny-untied",
        TinyLlamaSpec {
            tied_embeddings: false,
            seed: 7,
            ..TinyLlamaSpec::default()
        },
    );
    let dir = scratch().join("hf-untied-sharded");
    export_hf(
        &untied,
        &dir,
        &Export {
            shards: 3,
            ..Export::default()
        },
    );
    assert!(dir.join("model-00003-of-00003.safetensors").is_file());
    let out = scratch().join("conv-untied.gguf");
    ok(convert(&dir, &out, &src, &["--name", "step 7"]));
    assert_same_model(&untied, &out);
    assert_eq!(
        read_gguf(&out).unwrap().get_str("general.name"),
        Some("step 7")
    );
    assert_eq!(
        score_rows(&out, &docs, None),
        score_rows(&untied, &docs, None)
    );
}

#[test]
fn sixteen_bit_checkpoints() {
    let src = default_tiny();
    let docs = tiny_docs();
    let want = score_rows(&src, &docs, None);
    let fsrc = read_gguf(&src).unwrap();
    let bsrc = std::fs::read(&src).unwrap();
    for (dtype, outtype, ggml_type) in [
        (Dtype::F16, "f32", 0u32),
        (Dtype::BF16, "f32", 0),
        (Dtype::BF16, "as-is", 30),
        (Dtype::F16, "as-is", 1),
    ] {
        let label = format!("{dtype:?}-{outtype}").to_lowercase();
        let dir = scratch().join(format!("hf-{label}"));
        export_hf(
            &src,
            &dir,
            &Export {
                dtype,
                ..Export::default()
            },
        );
        let out = scratch().join(format!("conv-{label}.gguf"));
        ok(convert(&dir, &out, &src, &["--outtype", outtype]));
        let f = read_gguf(&out).unwrap();
        let bout = std::fs::read(&out).unwrap();
        let q = f.tensor("blk.0.attn_q.weight").unwrap();
        assert_eq!(q.ggml_type, ggml_type, "{label}");
        assert_eq!(f.tensor("output_norm.weight").unwrap().ggml_type, 0);
        // Every value is the original rounded to the checkpoint's type, exactly.
        let round = |x: f32| -> f32 {
            match dtype {
                Dtype::F16 => f16_to_f32(f32_to_f16(x)),
                _ => {
                    let b = encode(&[x], Dtype::BF16);
                    f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
                }
            }
        };
        for t in &fsrc.tensors {
            let orig = tensor_f32(&bsrc, &fsrc, &t.name);
            let got = tensor_f32(&bout, &f, &t.name);
            let expect: Vec<f32> = if t.dims.len() == 2 {
                orig.iter().map(|&x| round(x)).collect()
            } else {
                orig
            };
            assert_eq!(got, expect, "{label}: {}", t.name);
        }
        let rows = score_rows(&out, &docs, None);
        for (a, b) in want.iter().zip(&rows) {
            let rel = (ppl(a) - ppl(b)).abs() / ppl(a);
            let tol = if dtype == Dtype::F16 { 2e-3 } else { 2e-2 };
            assert!(rel < tol, "{label}: PPL {} vs {} ({rel:e})", ppl(a), ppl(b));
        }
    }
}

#[test]
fn bad_checkpoints_give_clear_errors() {
    let src = default_tiny();
    let base = scratch().join("hf-bad-base");
    let config = export_hf(&src, &base, &Export::default());
    let fresh = |label: &str| -> PathBuf {
        let d = scratch().join(format!("hf-bad-{label}"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for e in std::fs::read_dir(&base).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
        }
        d
    };
    let write_config = |d: &Path, c: &Value| {
        std::fs::write(d.join("config.json"), c.to_string()).unwrap();
    };
    let out = scratch().join("bad-out.gguf");
    let run = |d: &Path| {
        let e = fails(convert(d, &out, &src, &[]));
        assert!(!out.exists(), "no output after a failure");
        e
    };

    // Missing config field, unsupported architecture.
    let d = fresh("config");
    let mut c = config.clone();
    c.as_object_mut().unwrap().remove("rms_norm_eps");
    write_config(&d, &c);
    let e = run(&d);
    assert!(
        e.contains("config.json") && e.contains("missing field 'rms_norm_eps'"),
        "{e}"
    );
    let mut c = config.clone();
    c["architectures"] = json!(["Qwen2ForCausalLM"]);
    write_config(&d, &c);
    let e = run(&d);
    assert!(
        e.contains("'architectures'") && e.contains("Qwen2ForCausalLM"),
        "{e}"
    );

    // Vocabulary mismatch with the tokenizer GGUF.
    let mut c = config.clone();
    c["vocab_size"] = json!(config["vocab_size"].as_u64().unwrap() + 1);
    write_config(&d, &c);
    let e = run(&d);
    assert!(e.contains("vocabulary mismatch"), "{e}");
    assert!(
        e.contains(&format!("vocab_size {}", c["vocab_size"])),
        "{e}"
    );

    // Shapes that disagree with the config.
    let mut c = config.clone();
    c["intermediate_size"] = json!(96);
    write_config(&d, &c);
    let e = run(&d);
    assert!(
        e.contains("model.safetensors")
            && e.contains("has shape [128, 64], expected [96, 64]")
            && e.contains("mlp.gate_proj"),
        "{e}"
    );

    // A missing tensor.
    let d = fresh("missing");
    let f = std::fs::read(d.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&f).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(n, _)| n != "model.layers.1.mlp.up_proj.weight")
        .collect();
    safetensors::serialize_to_file(kept, None, &d.join("model.safetensors")).unwrap();
    let e = run(&d);
    assert!(
        e.contains("tensor 'model.layers.1.mlp.up_proj.weight' is missing"),
        "{e}"
    );

    // An unsupported dtype, and an unexpected tensor.
    let d = fresh("dtype");
    let mut views: Vec<(String, Owned)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let owned = Owned {
                dtype: v.dtype(),
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
            };
            (n, owned)
        })
        .collect();
    for (n, t) in views.iter_mut() {
        if n == "model.norm.weight" {
            t.dtype = Dtype::I32;
        }
    }
    let write = |d: &Path, views: &[(String, Owned)]| {
        safetensors::serialize_to_file(
            views.iter().map(|(n, t)| (n.clone(), t)),
            None,
            &d.join("model.safetensors"),
        )
        .unwrap();
    };
    write(&d, &views);
    let e = run(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("'model.norm.weight' has dtype I32"),
        "{e}"
    );
    for (n, t) in views.iter_mut() {
        if n == "model.norm.weight" {
            t.dtype = Dtype::F32;
        }
    }
    views.push((
        "model.layers.0.self_attn.q_proj.bias".into(),
        Owned {
            dtype: Dtype::F32,
            shape: vec![64],
            data: vec![0; 256],
        },
    ));
    write(&d, &views);
    let e = run(&d);
    assert!(
        e.contains("'model.layers.0.self_attn.q_proj.bias' is not part of the llama layout"),
        "{e}"
    );

    // A truncated file.
    let d = fresh("truncated");
    let p = d.join("model.safetensors");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let e = run(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );

    // No checkpoint at all; a tokenizer GGUF without a tokenizer.
    let d = scratch().join("hf-bad-empty");
    std::fs::create_dir_all(&d).unwrap();
    write_config(&d, &config);
    let e = run(&d);
    assert!(e.contains("no *.safetensors files"), "{e}");
    let no_tok = scratch().join("no-tokenizer.gguf");
    let mut w = hesnr::gguf::GgufWriter::new();
    w.add_kv("general.name", GgufValue::String("empty".into()));
    w.write_to(&no_tok).unwrap();
    let e = fails(convert(&base, &out, &no_tok, &[]));
    assert!(e.contains("no tokenizer.ggml.tokens"), "{e}");
}

/// The real model: its exact F32 expansion exported to Hugging Face format and converted back
/// scores the same as the F32 GGUF.
#[test]
fn real_model_round_trip() {
    let Some(real) = real_model() else { return };
    // The F32 expansion is cached in the user's hesnr home, where the other real-model tests
    // of this process find it too.
    let header = read_gguf(&real).unwrap();
    let sha = hesnr::engine::model_store::sha256_file(&real).unwrap();
    let (f32_path, _) = hesnr::engine::model_store::prepare_precision(
        &real,
        &sha,
        &header,
        hesnr::engine::model_store::Precision::F32,
    )
    .unwrap();
    let dir = scratch().join("hf-smollm2");
    export_hf(&f32_path, &dir, &Export::default());
    let out = scratch().join("smollm2-converted.gguf");
    let start = std::time::Instant::now();
    ok(convert(&dir, &out, &real, &[]));
    eprintln!("converted in {:.1} s", start.elapsed().as_secs_f64());
    assert_same_model(&f32_path, &out);
    let _ = std::fs::remove_dir_all(&dir);

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/corpus/code.jsonl");
    let want = score_rows(&f32_path, &docs, Some(5));
    let got = score_rows(&out, &docs, Some(5));
    assert_eq!(want.len(), 5);
    for (a, b) in want.iter().zip(&got) {
        let rel = (ppl(a) - ppl(b)).abs() / ppl(a);
        assert!(rel <= 1e-6, "{}: PPL {} vs {}", a["id"], ppl(a), ppl(b));
        let snr = |r: &Value| r["he_snr"].as_f64();
        match (snr(a), snr(b)) {
            (Some(x), Some(y)) => assert!(
                (x - y).abs() <= 1e-6 * x.abs(),
                "{}: HE-SNR {x} vs {y}",
                a["id"]
            ),
            (x, y) => assert_eq!(x, y, "{}", a["id"]),
        }
    }
    let _ = std::fs::remove_file(&out);
}
