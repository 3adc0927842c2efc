//! A demonstration tracking run, for the unit tests and the browser test of the report.

use std::collections::BTreeMap;

use super::metric_value;
use crate::analysis::stats;
use crate::metrics::Summary;
use crate::pipeline::track::TRACKED_METRICS;
use crate::pipeline::track_types::{
    CheckpointResult, MetricCorrelation, SweepCorrelation, SweepPoint, TaxFlag, TrackReport,
};
use crate::report::format::sig4;

/// Test data: a synthetic but realistic tracking run (8 checkpoints, a 32k -> 128k switch with
/// the Long-Context Tax, two downstream scores, an eps sweep). Public only because the headless
/// browser test (`tests/report_browser.rs`) renders it; not a result of any model.
#[doc(hidden)]
pub fn demo_report() -> TrackReport {
    const K: usize = 10;
    const EPS: f64 = 1.242_453_324_894;
    const BINS: usize = crate::metrics::ENTROPY_BINS;
    let n = 8;
    let ln = |m: f64| m.ln();
    let scored = 600_000u64;
    let he_snr = [
        0.1212, 0.1248, 0.1279, 0.1306, 0.1331, 0.1349, 0.1372, 0.1390,
    ];
    let ppl: [f64; 8] = [2.104, 2.061, 2.027, 1.998, 1.975, 2.214, 2.083, 2.012];
    let top1 = [
        0.9021, 0.9058, 0.9087, 0.9110, 0.9129, 0.8947, 0.9061, 0.9118,
    ];
    let he_ppl = [3.912, 3.861, 3.822, 3.790, 3.766, 3.851, 3.771, 3.734];
    let dec = [
        41_250u64, 40_610, 40_080, 39_640, 39_270, 51_930, 46_220, 43_310,
    ];
    let mean_h = [
        0.4212, 0.4168, 0.4127, 0.4095, 0.4069, 0.4633, 0.4388, 0.4221,
    ];
    let swe = [0.182, 0.196, 0.203, 0.219, 0.224, 0.238, 0.251, 0.262];
    let humaneval: [Option<f64>; 8] = [
        None,
        Some(0.52),
        None,
        Some(0.57),
        None,
        Some(0.55),
        None,
        Some(0.61),
    ];
    let eps_grid: Vec<f64> = (0..7)
        .map(|j| ln(2.0) + j as f64 * (ln(5.0) - ln(2.0)) / 6.0)
        .collect();
    let checkpoints: Vec<CheckpointResult> = (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            let tax = if i == 5 { 1.0 } else { 0.0 };
            // Hesitation among 4 candidates folds into 3 as training goes on.
            let w = [
                0.60,
                0.17,
                0.09 + 0.03 * t,
                0.07 - 0.03 * t + 0.02 * tax,
                0.03,
            ];
            let width = ln(K as f64) / BINS as f64;
            let entropy_hist: Vec<u64> = (0..BINS)
                .map(|b| {
                    let x = (b as f64 + 0.5) * width;
                    let mut d = 0.02;
                    for (m, wm) in w.iter().enumerate() {
                        let mu = ln(m as f64 + 1.0);
                        let sd = 0.035 + 0.02 * m as f64;
                        d += wm * (-(x - mu).powi(2) / (2.0 * sd * sd)).exp() / sd;
                    }
                    (d * 1_000.0).round() as u64
                })
                .collect();
            let mut shares = [
                0.62,
                0.17,
                0.09 + 0.03 * t,
                0.06 - 0.03 * t,
                0.025,
                0.015,
                0.008,
                0.006,
                0.004,
                0.002,
            ];
            let total: f64 = shares.iter().sum();
            shares.iter_mut().for_each(|s| *s /= total);
            let sweep = eps_grid
                .iter()
                .enumerate()
                .map(|(j, &e)| SweepPoint {
                    eps: e,
                    he_snr: Some(he_snr[i] * (EPS / e).powf(0.85) * (1.0 + 0.004 * j as f64 * t)),
                    decision_tokens: (dec[i] as f64 * (-(e - EPS) * 1.6).exp()).round() as u64,
                })
                .collect();
            let mut downstream = BTreeMap::new();
            downstream.insert("swebench_verified".to_string(), swe[i]);
            if let Some(h) = humaneval[i] {
                downstream.insert("humaneval_plus".to_string(), h);
            }
            let step = 500.0 * (i + 1) as f64;
            CheckpointResult {
                proxy: Default::default(),
                name: format!("step {step}"),
                model: format!("checkpoints/run-7/step-{step:05}.gguf"),
                step: Some(step),
                stage: Some(if i < 5 { "32k" } else { "128k" }.to_string()),
                precision: Some("f32".to_string()),
                downstream,
                summary: Summary {
                    documents: 7,
                    scored_tokens: scored,
                    mean_nll: Some(ppl[i].ln()),
                    ppl: Some(ppl[i]),
                    top1_acc: Some(top1[i]),
                    decision_tokens: dec[i],
                    decision_density: Some(dec[i] as f64 / scored as f64),
                    he_snr: Some(he_snr[i]),
                    he_ppl: Some(he_ppl[i]),
                    mean_h10: Some(mean_h[i]),
                    order_shares: shares.to_vec(),
                },
                entropy_hist,
                sweep,
                cached: i < 3,
            }
        })
        .collect();
    let downs = ["humaneval_plus", "swebench_verified"];
    let mut correlations = Vec::new();
    for m in TRACKED_METRICS {
        for d in downs {
            let (x, y): (Vec<f64>, Vec<f64>) = checkpoints
                .iter()
                .filter_map(|c| Some((metric_value(&c.summary, m)?, *c.downstream.get(d)?)))
                .unzip();
            correlations.push(MetricCorrelation {
                metric: m,
                downstream: d.to_string(),
                report: stats::correlate(&x, &y, 7),
            });
        }
    }
    let sweep = downs
        .iter()
        .map(|d| {
            let points: Vec<_> = eps_grid
                .iter()
                .enumerate()
                .map(|(j, &e)| {
                    let (x, y): (Vec<f64>, Vec<f64>) = checkpoints
                        .iter()
                        .filter_map(|c| Some((c.sweep[j].he_snr?, *c.downstream.get(*d)?)))
                        .unzip();
                    (
                        e,
                        stats::pearson(&x, &y),
                        stats::spearman(&x, &y),
                        stats::kendall_tau_b(&x, &y),
                    )
                })
                .collect();
            let pearson: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.0, p.1.unwrap_or(f64::NAN)))
                .collect();
            SweepCorrelation {
                downstream: d.to_string(),
                plateau: stats::plateau(&pearson, 0.01),
                points,
            }
        })
        .collect();
    let (a, b) = (&checkpoints[4], &checkpoints[5]);
    let change = |x: f64, y: f64| {
        format!(
            "{} -> {} ({:+.1}%)",
            sig4(x),
            sig4(y),
            (y / x - 1.0) * 100.0
        )
    };
    let tax = vec![TaxFlag {
        from: a.name.clone(),
        to: b.name.clone(),
        stage_change: true,
        findings: vec![
            format!(
                "PPL {} while HE-SNR {}",
                change(ppl[4], ppl[5]),
                change(he_snr[4], he_snr[5])
            ),
            format!("top-1 {}", change(top1[4], top1[5])),
            format!("|H| {}", change(dec[4] as f64, dec[5] as f64)),
        ],
    }];
    let selection: Vec<crate::metrics::AnyMetric> = TRACKED_METRICS
        .iter()
        .map(|&m| crate::metrics::AnyMetric::Core(m))
        .collect();
    let leaderboard = ["swebench_verified", "humaneval_plus"]
        .iter()
        .map(|d| crate::pipeline::track::leaderboard(&checkpoints, &selection, d))
        .collect();
    TrackReport {
        leaderboard,
        title: "Mid-training run 7: HE-SNR across checkpoints".into(),
        eval_set: "7 trajectories (examples/trajectories), preset full".into(),
        k: K,
        eps: EPS,
        checkpoints,
        correlations,
        sweep,
        tax,
        notes: vec![
            "8 checkpoints: permutation p-values are exact, but intervals from this few points are wide; treat the ranking as a guide, not a result.".into(),
            "humaneval_plus is known for 4 checkpoints only.".into(),
        ],
    }
}
