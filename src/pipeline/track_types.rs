//! The data of a checkpoint-tracking run (`hesnr track`): what the report, the CSV/JSON outputs
//! and the terminal table are all rendered from. Plain values only, so that renderers need no
//! model, cache or statistics code.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::stats::CorrelationReport;
use crate::metrics::{AnyMetric, Metric, Summary};
use crate::pipeline::proxy_columns::ProxyValues;

/// One checkpoint's results on the evaluation set.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointResult {
    /// Display name (the manifest's `name`, else `step N`, else the model file's stem).
    pub name: String,
    /// The model file.
    pub model: String,
    /// Training step (the x axis), if the manifest gives one.
    pub step: Option<f64>,
    /// Training stage label, e.g. `32k` or `128k` (context-extension stages).
    pub stage: Option<String>,
    /// The weights' precision the checkpoint was scored in (`f32`, `bf16`, `as-is`, `server`);
    /// `None` for cache entries written before it was recorded.
    pub precision: Option<String>,
    /// Downstream scores by name (e.g. `swebench_verified`), where known.
    pub downstream: BTreeMap<String, f64>,
    /// The pooled metrics over the evaluation set at the run's eps.
    pub summary: Summary,
    /// Counts of scored positions per H_k bin: `entropy_hist[i]` counts H_k in
    /// [i, i + 1) * ln(k) / entropy_hist.len().
    pub entropy_hist: Vec<u64>,
    /// HE-SNR and |H| at each eps of the sweep (same eps grid for every checkpoint).
    pub sweep: Vec<SweepPoint>,
    /// Whether this checkpoint was read from the cache (not scored in this run).
    pub cached: bool,
    /// The registry metrics asked for (`--metrics`), computed from the cached positions.
    pub proxy: ProxyValues,
}

impl CheckpointResult {
    /// A metric's value for this checkpoint: a companion from its summary, a registry metric
    /// from the values computed for the run.
    pub fn value(&self, m: AnyMetric) -> Option<f64> {
        match m {
            AnyMetric::Core(core) => core.value(&self.summary),
            AnyMetric::Proxy(p) => self.proxy.get(&p.name()),
        }
    }
}

/// HE-SNR at one decision threshold.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub eps: f64,
    pub he_snr: Option<f64>,
    pub decision_tokens: u64,
}

/// How well one metric tracks one downstream score across the checkpoints that have it.
#[derive(Debug, Clone, Serialize)]
pub struct MetricCorrelation {
    /// One of [`TRACKED_METRICS`](super::track::TRACKED_METRICS), written as its name.
    pub metric: Metric,
    pub downstream: String,
    pub report: CorrelationReport,
}

/// One metric's row of a [`Leaderboard`].
#[derive(Debug, Clone, Serialize)]
pub struct LeaderboardRow {
    /// Place by |Spearman| (1 = closest), ties by |Kendall|; metrics without a value last.
    pub place: usize,
    pub metric: String,
    /// `higher`, `lower` or `neither` is better.
    pub better: &'static str,
    pub report: CorrelationReport,
    /// The Spearman permutation p-value, Holm-adjusted over the metrics of this board.
    pub spearman_p_holm: Option<f64>,
    /// The Kendall permutation p-value, Holm-adjusted over the metrics of this board.
    pub kendall_p_holm: Option<f64>,
}

/// Every chosen metric ranked by how well it orders the checkpoints as one downstream score does.
#[derive(Debug, Clone, Serialize)]
pub struct Leaderboard {
    pub downstream: String,
    /// Checkpoints with this score.
    pub checkpoints: usize,
    /// Metrics compared (the Holm family).
    pub metrics: usize,
    pub rows: Vec<LeaderboardRow>,
    /// Whether the leader can be told apart from the rest: its Holm-adjusted p-values are below
    /// 0.05 and its Spearman interval does not overlap the runner-up's.
    pub leader_separated: bool,
    /// The plain-language verdict.
    pub verdict: String,
}

/// (eps, Pearson, Spearman, Kendall) of HE-SNR with a downstream score at one sweep point.
pub type EpsCorrelation = (f64, Option<f64>, Option<f64>, Option<f64>);

/// The correlation of HE-SNR with one downstream score at each eps of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepCorrelation {
    pub downstream: String,
    /// (eps, Pearson, Spearman, Kendall) at each sweep point.
    pub points: Vec<EpsCorrelation>,
    /// Inclusive index range of the plateau of Pearson over the sweep, if one was found.
    pub plateau: Option<(usize, usize)>,
}

/// A pair of consecutive checkpoints that shows the Long-Context Tax: PPL or top-1 get worse
/// while HE-SNR improves, and |H| jumps (method.md, "How it is used").
#[derive(Debug, Clone, Serialize)]
pub struct TaxFlag {
    pub from: String,
    pub to: String,
    /// Whether the stage label changes between the two (e.g. 32k -> 128k).
    pub stage_change: bool,
    /// Plain-language findings, e.g. "PPL 3.91 -> 4.20 (+7.4%) while HE-SNR 0.141 -> 0.149".
    pub findings: Vec<String>,
}

/// Everything a tracking run found, in checkpoint order (by step, then manifest order).
#[derive(Debug, Clone, Serialize)]
pub struct TrackReport {
    pub title: String,
    /// What the checkpoints were scored on, e.g. "7 trajectories (examples/trajectories), preset full".
    pub eval_set: String,
    /// k of H_k and the run's eps.
    pub k: usize,
    pub eps: f64,
    pub checkpoints: Vec<CheckpointResult>,
    /// Every metric against every downstream score.
    pub correlations: Vec<MetricCorrelation>,
    pub sweep: Vec<SweepCorrelation>,
    pub tax: Vec<TaxFlag>,
    /// The metric leaderboard per downstream score (the metrics chosen with `--metrics`).
    pub leaderboard: Vec<Leaderboard>,
    /// Lines for the reader about what can and cannot be concluded (few points, wide intervals).
    pub notes: Vec<String>,
}
