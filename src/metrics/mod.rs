//! HE-SNR and its companion metrics, computed from per-position statistics alone.
//!
//! Nothing here knows which model or backend produced the numbers: a backend hands over one
//! [`PositionStats`] per scored position (log-sum-exp of the logits, the top-k logits with their ids
//! and the true token's logit) and everything else (H_k, the decision set, HE-SNR, HE-PPL, PPL,
//! top-1, the entropy-order histogram) is derived here. See `docs/method.md` for the definitions.
//!
//! Accumulators add their sums in fixed point (see [`ExactSum`]), so merging shards, batches or
//! windows in any order gives bit-identical results.

mod accumulator;
mod config;
mod exact_sum;
mod metric;
mod position;
pub mod proxy;

pub use accumulator::{Accumulator, Summary, ENTROPY_BINS};
pub use config::{MetricConfig, Pooling, SignalProb};
pub use exact_sum::ExactSum;
pub use metric::{Better, Metric};
#[cfg(test)]
pub(crate) use position::reference_stats;
pub use position::{entropy_order, PositionMetrics, PositionStats, TokenLogit};
pub use proxy::{AnyMetric, ProxyContext, ProxyMetric, TokenFrequencies, TokenRecord};
