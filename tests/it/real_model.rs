//! Checks on the embedded default model (SmolLM2-135M-Instruct). They run when the model has
//! been fetched (`hesnr fetch-model`; CI does it) and say they were skipped otherwise.

use crate::common::{real_model, strided, CODE};
use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::{score_tokens, Backend};
use hesnr::metrics::{Accumulator, MetricConfig, PositionMetrics};

#[test]
fn default_model_tokenizes_like_the_reference_tokenizer() {
    let Some(path) = real_model() else { return };
    let b = LlamaCppBackend::load(
        &path,
        &LlamaOptions {
            threads: Some(2),
            window: Some(512),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(b.info().vocab_size, 49152);
    assert!(!b.info().add_bos);
    // Digits split one by one (the `smollm` pre-tokenizer), no prefix space, literal control text.
    let t = b.tokenize("x = 12345").unwrap();
    let pieces: Vec<String> = t.ids.iter().map(|&i| b.token_text(i)).collect();
    assert_eq!(pieces, ["x", " =", " ", "1", "2", "3", "4", "5"]);
    let t = b.tokenize("<|endoftext|>").unwrap();
    assert!(
        t.ids.len() > 1,
        "control token text must not become one special id: {:?}",
        t.ids
    );
}

#[test]
fn default_model_scores_code_sensibly_and_windows_agree() {
    let Some(path) = real_model() else { return };
    let mut b = LlamaCppBackend::load(
        &path,
        &LlamaOptions {
            threads: Some(2),
            window: Some(2048),
            ..Default::default()
        },
    )
    .unwrap();
    let text = CODE.repeat(4);
    let t = b.tokenize(&text).unwrap();
    let stats = score_tokens(&mut b, &t, &strided(2048, 1024), 10).unwrap();
    let cfg = MetricConfig::default();
    let mut acc = Accumulator::new(cfg);
    stats
        .iter()
        .for_each(|p| acc.push(&PositionMetrics::from_stats(p, 10)));
    let s = acc.summary();
    // A small instruct model on repeated simple Python: low perplexity, high top-1.
    let ppl = s.ppl.unwrap();
    assert!(ppl > 1.0 && ppl < 4.0, "ppl {ppl}");
    assert!(s.top1_acc.unwrap() > 0.6);
    assert!(s.decision_tokens > 0);
    // A 64-token window with stride 32 scores the same tokens; the first window is identical.
    let windowed = score_tokens(&mut b, &t, &strided(64, 32), 10).unwrap();
    assert_eq!(windowed.len(), stats.len());
    for i in 0..63 {
        assert!(
            (windowed[i].lse - stats[i].lse).abs() < 2e-3,
            "position {}",
            i + 1
        );
    }
}

/// Per-document mean NLL of bench/corpus/code-512.jsonl under Hugging Face transformers 5.23.0 +
/// torch 2.15.0 (fp32, the same GGUF dequantized, SmolLM2's own pre-tokenizer restored), from
/// `python bench/peer_transformers.py MODEL bench/corpus/code-512.jsonl --reps 1`.
const TRANSFORMERS_MEAN_NLL: [f64; 8] = [
    0.9911321401596069,
    2.08988356590271,
    1.6629576683044434,
    1.357945203781128,
    1.8003798723220825,
    1.1760896444320679,
    1.666746735572815,
    1.3660259246826172,
];

#[test]
fn perplexity_agrees_with_an_independent_implementation() {
    let Some(path) = real_model() else { return };
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/corpus/code-512.jsonl");
    let mut b = LlamaCppBackend::load(
        &path,
        &LlamaOptions {
            threads: Some(2),
            window: Some(1024),
            ..Default::default()
        },
    )
    .unwrap();
    let texts: Vec<String> = std::fs::read_to_string(corpus)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(texts.len(), TRANSFORMERS_MEAN_NLL.len());
    for (text, want) in texts.iter().zip(TRANSFORMERS_MEAN_NLL) {
        let t = b.tokenize(text).unwrap();
        let stats = score_tokens(&mut b, &t, &strided(1024, 512), 10).unwrap();
        let mut acc = Accumulator::new(MetricConfig::default());
        stats
            .iter()
            .for_each(|p| acc.push(&PositionMetrics::from_stats(p, 10)));
        let got = acc.summary().mean_nll.unwrap();
        // Within 1% in perplexity (|exp(a - b) - 1| < 0.01); measured: 1e-5 nats.
        assert!(
            (got - want).abs() < 0.00995,
            "mean NLL {got} vs transformers {want}"
        );
    }
}

/// The full-vocabulary entropy of the fused pass against a direct f64 computation over every
/// whole logits row the model produces for the benchmark's code documents: within 1e-6 relative.
#[test]
fn full_vocabulary_entropy_agrees_with_a_direct_f64_computation() {
    let Some(path) = real_model() else { return };
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/corpus/code-512.jsonl");
    let mut b = LlamaCppBackend::load(
        &path,
        &LlamaOptions {
            threads: Some(2),
            window: Some(512),
            ..Default::default()
        },
    )
    .unwrap();
    let mut worst = 0f64;
    let mut rows_seen = 0usize;
    let mut rows_wanted = 0usize;
    for line in std::fs::read_to_string(corpus).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = b.tokenize(v["text"].as_str().unwrap()).unwrap();
        let n = t.ids.len().min(512);
        let ids = &t.ids[..n];
        rows_wanted += n - 1;
        b.forward(ids, 1..n, None, None, |rows| {
            for &(target, row) in rows {
                let fused = hesnr::engine::fused::reduce_row(row, ids[target], 10).unwrap();
                let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                let lse = max
                    + row
                        .iter()
                        .map(|&l| (l as f64 - max).exp())
                        .sum::<f64>()
                        .ln();
                let direct: f64 = -row
                    .iter()
                    .map(|&l| {
                        let log_p = l as f64 - lse;
                        log_p.exp() * log_p
                    })
                    .sum::<f64>();
                let got = fused
                    .entropy
                    .expect("the embedded engine sees the whole row");
                let rel = (got - direct).abs() / direct.max(1e-300);
                assert!(
                    rel < 1e-6 || (got - direct).abs() < 1e-12,
                    "position {target}: fused {got} vs direct {direct} (relative {rel:e})"
                );
                worst = worst.max(rel);
                rows_seen += 1;
            }
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(rows_seen, rows_wanted);
    assert!(rows_seen > 1000, "{rows_seen} rows");
    eprintln!("entropy: {rows_seen} rows, worst relative difference {worst:e}");
}
