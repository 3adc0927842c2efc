//! How far the pooled metrics of a set of units (trajectories, documents) would move on another
//! set like it: percentile bootstrap intervals over whole units, from their per-unit
//! [`Accumulator`]s. This is what a difference between two runs (two checkpoints, two
//! precisions) is to be weighed against.

use serde::Serialize;

use super::stats::{bootstrap_intervals, CI_LEVEL, CI_RESAMPLES, SEED};
use crate::metrics::{Accumulator, Summary};

/// Bootstrap intervals of the headline pooled metrics: `[low, high]` at [`CI_LEVEL`], from
/// [`CI_RESAMPLES`] resamples of the units; a metric undefined on too many resamples is left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricIntervals {
    pub level: f64,
    pub resamples: usize,
    /// What was resampled (`trajectory`, `document`) and how many of them there were.
    pub unit: &'static str,
    pub units: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub he_snr: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppl: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_nll: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub he_ppl: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1_acc: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_h10: Option<[f64; 2]>,
    /// |H|, the size of the decision set, over a set of as many units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_tokens: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_density: Option<[f64; 2]>,
}

/// The metrics an interval is computed for, read off a pooled [`Summary`] (one place, so the
/// fields of [`MetricIntervals`] and the values resampled cannot drift apart).
const METRICS: usize = 8;
fn values(s: &Summary) -> [Option<f64>; METRICS] {
    [
        s.he_snr,
        s.ppl,
        s.mean_nll,
        s.he_ppl,
        s.top1_acc,
        s.mean_h10,
        Some(s.decision_tokens as f64),
        s.decision_density,
    ]
}

/// Intervals of the pooled metrics of `units` (one [`Accumulator`] per unit, all with the same
/// settings): each resample merges the drawn units' sums and reads the pooled summary, exactly as
/// the run's own summary is read. `None` without units.
pub fn metric_intervals(units: &[Accumulator], unit: &'static str) -> Option<MetricIntervals> {
    let first = units.first()?;
    let [he_snr, ppl, mean_nll, he_ppl, top1_acc, mean_h10, decision_tokens, decision_density] =
        bootstrap_intervals(units.len(), CI_RESAMPLES, CI_LEVEL, SEED, |drawn, out| {
            let mut pooled = Accumulator::new(first.config);
            for &i in drawn {
                pooled
                    .merge(&units[i])
                    .expect("the units of one run share their settings");
            }
            *out = values(&pooled.summary());
        })
        .map(|i| i.map(|i| [i.low, i.high]));
    Some(MetricIntervals {
        level: CI_LEVEL,
        resamples: CI_RESAMPLES,
        unit,
        units: units.len(),
        he_snr,
        ppl,
        mean_nll,
        he_ppl,
        top1_acc,
        mean_h10,
        decision_tokens,
        decision_density,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{MetricConfig, PositionMetrics};

    /// A unit of `n` positions, each with true-token probability `p` at top-10 entropy `h`.
    fn unit(n: usize, p: f64, h: f64) -> Accumulator {
        let mut acc = Accumulator::new(MetricConfig::default());
        for _ in 0..n {
            acc.push(&PositionMetrics {
                nll: -p.ln(),
                p_true: p,
                p_true_renorm: p,
                h_k: h,
                in_top_k: true,
                top1: p > 0.5,
            });
        }
        acc.finish_document();
        acc
    }

    #[test]
    fn identical_units_give_a_point_interval_at_the_value() {
        // H = 2 nats is above the default eps (ln 3 .. ln 4), so every position is a decision.
        let units = vec![unit(5, 0.25, 2.0); 4];
        let iv = metric_intervals(&units, "trajectory").unwrap();
        // Every resample pools four copies of the same unit: HE-SNR = 0.25 / 2, PPL = 4.
        assert_eq!(iv.he_snr, Some([0.125, 0.125]));
        let ppl = iv.ppl.unwrap();
        assert!((ppl[0] - 4.0).abs() < 1e-12 && (ppl[1] - 4.0).abs() < 1e-12);
        assert_eq!(iv.decision_tokens, Some([20.0, 20.0]));
        assert_eq!((iv.units, iv.unit, iv.resamples), (4, "trajectory", 2000));
    }

    #[test]
    fn two_units_span_their_own_values_and_hold_the_pooled_one() {
        // Unit a: HE-SNR 0.4 (p 0.6, H 1.5); unit b: HE-SNR 0.1 (p 0.2, H 2). Resamples of two
        // units are {a,a} 0.4, {b,b} 0.1 (a quarter each), or {a,b} pooled
        // (5 * 0.4 + 5 * 0.1) / 10 = 0.25; the 2.5% and 97.5% quantiles are the extremes.
        let units = vec![unit(5, 0.6, 1.5), unit(5, 0.2, 2.0)];
        let iv = metric_intervals(&units, "document").unwrap();
        let [lo, hi] = iv.he_snr.unwrap();
        assert!(
            (lo - 0.1).abs() < 1e-12 && (hi - 0.4).abs() < 1e-12,
            "{lo} {hi}"
        );
        // |H| of a two-unit set is always 10 decision tokens.
        assert_eq!(iv.decision_tokens, Some([10.0, 10.0]));
    }

    #[test]
    fn same_units_same_intervals_and_none_without_units() {
        let units: Vec<_> = (1..9).map(|i| unit(i, 0.1 * i as f64, 2.0)).collect();
        assert_eq!(
            metric_intervals(&units, "trajectory"),
            metric_intervals(&units, "trajectory")
        );
        assert!(metric_intervals(&[], "trajectory").is_none());
    }
}
