//! `hesnr score`: every document of the inputs through the model, one row per document and a
//! pooled summary. Bad records are reported and counted; the rest of the run goes on.

use std::io::Write;

use serde::Serialize;

use super::proxy_columns::ProxyValues;
use super::run::{per_second, RunLog};
use crate::engine::window::{PolicyRequest, Windowing};
use crate::engine::{score_tokens, Backend, EngineError, ModelInfo, Tokenized};
use crate::metrics::{Accumulator, MetricConfig, PositionMetrics, PositionStats, Summary};

/// Settings of a scoring run that are not the model's.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ScoreSettings {
    pub metrics: MetricConfig,
    /// Tokens per forward window and the policy for texts longer than it (written as `window`,
    /// `window_policy` and `stride` or `sinks`).
    #[serde(flatten)]
    pub windowing: Windowing,
}

impl ScoreSettings {
    /// The settings for a loaded backend: windows of the backend's size, and the window policy
    /// asked for (by default the shift policy where the backend can shift its KV cache).
    pub fn for_backend(
        metrics: MetricConfig,
        backend: &dyn Backend,
        policy: PolicyRequest,
    ) -> Result<Self, String> {
        let size = backend.max_window();
        let policy = policy.resolve(size, backend.can_shift())?;
        Ok(Self {
            metrics,
            windowing: Windowing { size, policy },
        })
    }
}

/// One document's result.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentRow {
    pub id: String,
    pub source: String,
    pub line: u64,
    /// Tokens of the document as the model sees it (BOS included when the model adds one).
    pub tokens: usize,
    #[serde(flatten)]
    pub metrics: Summary,
    /// The registry metrics asked for with `--metrics` (null where unavailable).
    #[serde(flatten)]
    pub proxy: ProxyValues,
    /// The weights' precision the numbers were computed in ([`ModelInfo::precision`]), so that
    /// rows of runs in different precisions stay told apart once concatenated.
    pub precision: String,
    /// The input record's `metadata`, passed through so rows can be joined and filtered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// One scored position, for `--tokens` traces.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow<'a> {
    pub doc: &'a str,
    pub pos: usize,
    pub token: String,
    /// Byte range of the token in the document's UTF-8 text.
    pub offset: [usize; 2],
    /// The same range in characters (Unicode scalar values, as Python's `str` indexes them).
    pub char_offset: [usize; 2],
    pub h10: f64,
    pub p_true: f64,
    pub nll: f64,
    pub rank: u32,
    pub decision: bool,
    /// Full-vocabulary entropy in nats; `null` where only a top-k list was known (`--remote`).
    pub entropy: Option<f64>,
    /// Full-softmax probability mass of the top-k list: what a top-k metric sees of the
    /// distribution (1 minus what truncation loses).
    pub topk_mass: f64,
    /// The top-k candidates with their full-softmax probabilities.
    pub top: Vec<(String, f64)>,
}

/// A document's per-position statistics, kept while its rows are written.
pub struct ScoredDocument {
    pub tokens: Tokenized,
    pub positions: Vec<PositionStats>,
    pub acc: Accumulator,
}

/// Scores one text: tokenize, window, forward, reduce.
pub fn score_text(
    backend: &mut dyn Backend,
    text: &str,
    s: &ScoreSettings,
) -> Result<ScoredDocument, EngineError> {
    let tokens = backend.tokenize(text)?;
    let positions = score_tokens(backend, &tokens, &s.windowing, s.metrics.k)?;
    let mut acc = Accumulator::new(s.metrics);
    for p in &positions {
        acc.push(&PositionMetrics::from_stats(p, s.metrics.k));
    }
    acc.finish_document();
    Ok(ScoredDocument {
        tokens,
        positions,
        acc,
    })
}

/// Writes the per-token trace of one scored document.
pub fn write_token_trace(
    out: &mut dyn Write,
    backend: &dyn Backend,
    id: &str,
    text: &str,
    doc: &ScoredDocument,
    k: usize,
) -> std::io::Result<()> {
    let first = doc.tokens.first_target();
    // Byte offset -> character offset; a token may end inside a multi-byte character, so every
    // byte position gets the index of the character it belongs to (or the end).
    let mut char_at = vec![0usize; text.len() + 1];
    let mut n = 0;
    for (b, slot) in char_at.iter_mut().enumerate() {
        if text.is_char_boundary(b) && b > 0 {
            n += 1;
        }
        *slot = n;
    }
    for (i, p) in doc.positions.iter().enumerate() {
        let pos = first + i;
        let m = PositionMetrics::from_stats(p, k);
        let r = doc.tokens.offsets[pos].clone();
        let row = TokenRow {
            doc: id,
            pos,
            token: backend.token_text(p.true_id),
            offset: [r.start, r.end],
            // A token that ends inside a character covers that whole character.
            char_offset: [
                char_at[r.start],
                char_at[r.end] + usize::from(!text.is_char_boundary(r.end)),
            ],
            h10: m.h_k,
            p_true: m.p_true,
            nll: m.nll,
            rank: p.true_rank,
            decision: doc.acc.is_decision(&m),
            entropy: p.entropy,
            topk_mass: crate::metrics::TokenRecord::from_stats(p, k).top_mass,
            top: p
                .top
                .iter()
                .take(k)
                .map(|t| (backend.token_text(t.id), (t.logit as f64 - p.lse).exp()))
                .collect(),
        };
        serde_json::to_writer(&mut *out, &row)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The summary of a whole run, as written by `--json` and `--summary`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub model: ModelInfo,
    pub settings: ScoreSettings,
    pub documents: u64,
    pub skipped: u64,
    /// The first skipped records, with file, line and reason.
    pub errors: Vec<String>,
    pub tokens: u64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// Why the run stopped before the end of its inputs (the server gone or failing a check);
    /// the numbers cover the documents scored before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    #[serde(flatten)]
    pub metrics: Summary,
    /// The registry metrics asked for with `--metrics`, pooled over the run (null where
    /// unavailable; `unavailable` says why).
    #[serde(flatten)]
    pub proxy: ProxyValues,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub unavailable: serde_json::Value,
}

/// The pooled totals of a run; counts, skips and the clock are the driver's [`RunLog`].
pub struct RunTotals {
    pub pooled: Accumulator,
}

impl RunTotals {
    pub fn new(config: MetricConfig) -> Self {
        Self {
            pooled: Accumulator::new(config),
        }
    }

    pub fn add(&mut self, doc: &ScoredDocument) {
        self.pooled
            .merge(&doc.acc)
            .expect("same settings for every document");
    }

    pub fn finish(&self, log: &RunLog, model: ModelInfo, settings: ScoreSettings) -> RunSummary {
        let seconds = log.elapsed();
        RunSummary {
            model,
            settings,
            documents: log.done,
            skipped: log.skips.count,
            errors: log.skips.reasons.clone(),
            tokens: log.tokens,
            seconds,
            tokens_per_second: per_second(log.tokens, seconds),
            stopped: None,
            metrics: self.pooled.summary(),
            proxy: ProxyValues::default(),
            unavailable: serde_json::Value::Null,
        }
    }
}
