//! Peer benchmark: llama.cpp (default build, shipped weights) scoring every position of each
//! document, the way a user would do it by hand: one decode per 512-token chunk with logits for
//! every position, then a plain per-row pass (max, log-sum-exp, NLL, top-10).
//!
//! `peer-llamacpp MODEL FILE.jsonl [--threads 2] [--reps 3]` prints per-document mean NLL and the
//! median tokens/second of (a) the bare forward and (b) forward + the per-row pass, and peak RSS.

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model_path = &args[1];
    let file = &args[2];
    let flag = |name: &str, default: usize| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (threads, reps) = (flag("--threads", 2), flag("--reps", 3));
    let ubatch = 512usize;

    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, model_path, &LlamaModelParams::default())?;
    let texts: Vec<String> = std::fs::read_to_string(file)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    let docs: Vec<Vec<_>> = texts.iter().map(|t| model.vocab().tokenize(t.as_bytes(), false, false)).collect();
    let max_len = docs.iter().map(Vec::len).max().unwrap_or(1);
    let ctx_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(max_len as u32))
        .with_n_batch(ubatch as u32)
        .with_n_ubatch(ubatch as u32)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = model.new_context(&backend, ctx_params)?;
    let n_tokens: usize = docs.iter().map(Vec::len).sum();

    let mut run = |with_metrics: bool, nlls: &mut Vec<f64>| -> anyhow::Result<f64> {
        nlls.clear();
        let t0 = Instant::now();
        for doc in &docs {
            ctx.clear_kv_cache();
            let mut sum_nll = 0f64;
            let mut batch = LlamaBatch::new(ubatch, 1);
            let inputs = &doc[..doc.len() - 1];
            for start in (0..inputs.len()).step_by(ubatch) {
                let end = (start + ubatch).min(inputs.len());
                batch.clear();
                for (i, &tok) in inputs.iter().enumerate().take(end).skip(start) {
                    batch.add(tok, i as i32, &[0], true)?;
                }
                ctx.decode(&mut batch)?;
                for i in start..end {
                    let row = ctx.get_logits_ith((i - start) as i32);
                    let target = doc[i + 1].0 as usize;
                    if with_metrics {
                        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                        let lse = max as f64 + row.iter().map(|&l| ((l - max) as f64).exp()).sum::<f64>().ln();
                        let mut top: Vec<(usize, f32)> = Vec::with_capacity(11);
                        for (id, &l) in row.iter().enumerate() {
                            if top.len() < 10 || l > top[top.len() - 1].1 {
                                let p = top.partition_point(|t| t.1 >= l);
                                top.insert(p, (id, l));
                                top.truncate(10);
                            }
                        }
                        std::hint::black_box(&top);
                        sum_nll += lse - row[target] as f64;
                    } else {
                        sum_nll += row[target] as f64;
                    }
                }
            }
            nlls.push(sum_nll / (doc.len() - 1) as f64);
        }
        Ok(n_tokens as f64 / t0.elapsed().as_secs_f64())
    };
    let mut nlls = Vec::new();
    run(true, &mut nlls)?; // warm-up
    let (mut bare, mut full) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        bare.push(run(false, &mut nlls)?);
        full.push(run(true, &mut nlls)?);
    }
    bare.sort_by(f64::total_cmp);
    full.sort_by(f64::total_cmp);
    let rss = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({
            "peer": "llama.cpp default build (llama-cpp-2 0.1.160), weights as shipped",
            "file": file, "documents": docs.len(), "tokens": n_tokens, "threads": threads,
            "forward_tok_s": bare[bare.len() / 2], "forward_metrics_tok_s": full[full.len() / 2],
            "peak_rss_gb": rss / 1024.0 / 1024.0, "mean_nll_per_doc": nlls,
        })
    );
    Ok(())
}
