//! Throughput of the embedded engine: bare forward pass vs forward + fused metrics pass.
//!
//! `cargo bench --bench engine -- [--model M] [--threads 2] [--precision auto] [--reps 3] FILE.jsonl...`
//! Prints, per input file, the median over `reps` runs of tokens/second for the bare forward
//! (logits produced, rows only touched) and for forward + the fused per-row reduction, the
//! overhead in percent, and the process's peak RSS. Not a test: timings are machine-dependent.

use std::path::PathBuf;
use std::time::Instant;

use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::model_store::{self, Precision};
use hesnr::engine::{window, Backend};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut model, mut threads, mut precision, mut reps, mut files) =
        (None, 2usize, Precision::Auto, 3usize, Vec::new());
    let mut window_size: Option<usize> = None;
    let mut flash_attention = true;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => model = args.next().map(PathBuf::from),
            "--threads" => threads = args.next().unwrap().parse()?,
            "--precision" => {
                precision = args.next().unwrap().parse().map_err(anyhow::Error::msg)?
            }
            "--reps" => reps = args.next().unwrap().parse()?,
            "--window" => window_size = Some(args.next().unwrap().parse()?),
            "--exact-attention" => flash_attention = false,
            f => files.push(PathBuf::from(f)),
        }
    }
    let path = model_store::resolve_model(model.as_deref())?;
    let opts = LlamaOptions {
        threads: Some(threads),
        precision,
        window: window_size,
        flash_attention,
        ..Default::default()
    };
    let mut backend = LlamaCppBackend::load(&path, &opts)?;
    let w = backend.max_window();
    println!(
        "model {} precision {} compute {} threads {threads}",
        backend.info().name,
        backend.info().precision,
        backend.info().compute
    );
    let (micros, micros_no_entropy) = reduce_row_micros(backend.info().vocab_size);
    println!(
        "metrics pass with the full-vocabulary entropy sum {micros:.1} us, without it {micros_no_entropy:.1} us per position (ratio {:.3})",
        micros / micros_no_entropy
    );
    println!(
        "metrics pass: {micros:.1} us per position on one thread ({} vocabulary); on {threads} threads that is {:.1}% of a forward pass running at 500 tok/s",
        backend.info().vocab_size,
        micros / threads as f64 * 500.0 / 1e6 * 100.0
    );
    for file in files {
        let texts: Vec<String> = std::fs::read_to_string(&file)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .map(|v| v["text"].as_str().unwrap_or_default().to_string())
            })
            .collect::<Result<_, _>>()?;
        let docs: Vec<_> = texts
            .iter()
            .map(|t| backend.tokenize(t))
            .collect::<Result<_, _>>()?;
        let n_tokens: usize = docs.iter().map(|d| d.ids.len()).sum();
        let mut run = |with_metrics: bool| -> anyhow::Result<f64> {
            let t0 = Instant::now();
            let mut sink = 0f64;
            for d in &docs {
                for win in window::plan(d.ids.len(), 1, w, w / 2) {
                    let ids = &d.ids[win.tokens.clone()];
                    let local = (win.targets.start - win.tokens.start)
                        ..(win.targets.end - win.tokens.start);
                    if with_metrics {
                        // The same path `hesnr score` takes: rows reduced on all threads.
                        sink += backend
                            .evaluate(ids, local, 10)?
                            .iter()
                            .map(|s| s.lse)
                            .sum::<f64>();
                    } else {
                        backend.forward(ids, local, None, None, |rows| {
                            sink += rows
                                .iter()
                                .map(|(t, row)| row[ids[*t] as usize] as f64)
                                .sum::<f64>();
                            Ok(())
                        })?;
                    }
                }
            }
            std::hint::black_box(sink);
            Ok(n_tokens as f64 / t0.elapsed().as_secs_f64())
        };
        run(true)?; // warm-up
        let mut bare = Vec::new();
        let mut full = Vec::new();
        for _ in 0..reps {
            bare.push(run(false)?);
            full.push(run(true)?);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (b, f) = (med(&mut bare), med(&mut full));
        println!(
            "{}: {} docs, {n_tokens} tokens | forward {b:.0} tok/s | forward+metrics {f:.0} tok/s | metrics overhead {:.1}% | peak RSS {:.2} GB",
            file.display(),
            docs.len(),
            (b / f - 1.0) * 100.0,
            peak_rss_gb()
        );
    }
    Ok(())
}

/// The metrics pass alone, timed directly (the difference of two noisy end-to-end runs cannot
/// resolve a few percent): microseconds per logits row of the model's vocabulary size, one
/// thread, as (the pass as shipped, the same pass without the full-vocabulary entropy sum). The
/// two are timed in alternating rounds of the same rows and each reported as its median round.
fn reduce_row_micros(vocab: usize) -> (f64, f64) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let rows: Vec<Vec<f32>> = (0..64)
        .map(|_| {
            (0..vocab)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 * 20.0 - 10.0
                })
                .collect()
        })
        .collect();
    let reps = 500;
    let mut sink = 0f64;
    let mut time = |with_entropy: bool| {
        let t0 = Instant::now();
        for i in 0..reps {
            let row = &rows[i % rows.len()];
            let id = (i * 7919 % vocab) as u32;
            sink += if with_entropy {
                let s = hesnr::engine::fused::reduce_row(row, id, 10).expect("finite");
                s.lse + s.entropy.unwrap_or(0.0)
            } else {
                hesnr::engine::fused::reduce_row_without_entropy(row, id, 10)
                    .expect("finite")
                    .0
            };
        }
        t0.elapsed().as_secs_f64() * 1e6 / reps as f64
    };
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        with.push(time(true));
        without.push(time(false));
    }
    std::hint::black_box(sink);
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (med(&mut with), med(&mut without))
}

fn peak_rss_gb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0)
}
