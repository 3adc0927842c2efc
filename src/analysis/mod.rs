//! Analysis of scores across checkpoints: which per-checkpoint metric (HE-SNR, PPL, top-1, ...)
//! follows a downstream score (e.g. SWE-bench) on the user's own checkpoints. [`stats`] holds the
//! pure small-sample statistics this needs: Pearson, Spearman and Kendall correlations, bootstrap
//! intervals, leave-one-out stability, permutation p-values, a plain-language verdict for a handful
//! of points, a least-squares line for scatter plots and plateau detection for threshold sweeps. It
//! reads no files and runs no model; callers hand it plain `f64` slices.

pub mod intervals;
pub mod stats;
