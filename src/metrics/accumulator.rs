use serde::{Deserialize, Serialize};

use super::{entropy_order, ExactSum, MetricConfig, Pooling, PositionMetrics, SignalProb};

/// Resolution of the stored H_k histogram: bins of width ln(k) / ENTROPY_BINS.
pub const ENTROPY_BINS: usize = 100;

/// Running sums over scored positions that merge exactly (shard, batch and order independent).
///
/// One accumulator per document gives the per-document row; merging them gives the pooled
/// summary. Both signal probabilities are summed, so the choice of [`SignalProb`] and [`Pooling`]
/// is made when reading, not when scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    pub config: MetricConfig,
    pub documents: u64,
    pub scored: u64,
    pub top1: u64,
    pub in_top_k: u64,
    pub sum_nll: ExactSum,
    pub sum_h: ExactSum,
    pub decision: u64,
    pub sum_snr_full: ExactSum,
    pub sum_snr_renorm: ExactSum,
    pub sum_nll_decision: ExactSum,
    /// Count of positions per entropy order m = 1..=k (index m - 1).
    pub orders: Vec<u64>,
    /// Fine histogram of H_k over [0, ln k], for plots.
    pub entropy_hist: Vec<u64>,
    /// Per-document means of the HE-SNR terms, for [`Pooling::PerDocument`].
    pub docs_with_decisions: u64,
    pub sum_doc_snr_full: ExactSum,
    pub sum_doc_snr_renorm: ExactSum,
}

impl Accumulator {
    pub fn new(config: MetricConfig) -> Self {
        Self {
            config,
            documents: 0,
            scored: 0,
            top1: 0,
            in_top_k: 0,
            sum_nll: ExactSum::default(),
            sum_h: ExactSum::default(),
            decision: 0,
            sum_snr_full: ExactSum::default(),
            sum_snr_renorm: ExactSum::default(),
            sum_nll_decision: ExactSum::default(),
            orders: vec![0; config.k],
            entropy_hist: vec![0; ENTROPY_BINS],
            docs_with_decisions: 0,
            sum_doc_snr_full: ExactSum::default(),
            sum_doc_snr_renorm: ExactSum::default(),
        }
    }

    /// Whether a position belongs to the high-entropy decision set H.
    pub fn is_decision(&self, m: &PositionMetrics) -> bool {
        m.h_k > self.config.eps && m.in_top_k
    }

    pub fn push(&mut self, m: &PositionMetrics) {
        let k = self.config.k;
        self.scored += 1;
        self.top1 += m.top1 as u64;
        self.in_top_k += m.in_top_k as u64;
        self.sum_nll.add(m.nll);
        self.sum_h.add(m.h_k);
        self.orders[entropy_order(m.h_k, k) - 1] += 1;
        let bin = (m.h_k / (k as f64).ln() * ENTROPY_BINS as f64) as usize;
        self.entropy_hist[bin.min(ENTROPY_BINS - 1)] += 1;
        if self.is_decision(m) {
            self.decision += 1;
            self.sum_snr_full.add(m.p_true / m.h_k);
            self.sum_snr_renorm.add(m.p_true_renorm / m.h_k);
            self.sum_nll_decision.add(m.nll);
        }
    }

    /// Closes one document: records its mean HE-SNR terms for per-document pooling.
    ///
    /// Call it on a per-document accumulator before merging it into a pooled one.
    pub fn finish_document(&mut self) {
        self.documents = 1;
        self.docs_with_decisions = 0;
        self.sum_doc_snr_full = ExactSum::default();
        self.sum_doc_snr_renorm = ExactSum::default();
        if self.decision > 0 {
            let n = self.decision as f64;
            self.docs_with_decisions = 1;
            self.sum_doc_snr_full.add(self.sum_snr_full.value() / n);
            self.sum_doc_snr_renorm.add(self.sum_snr_renorm.value() / n);
        }
    }

    /// Adds another accumulator's sums; fails if the two were built with different settings.
    pub fn merge(&mut self, other: &Accumulator) -> Result<(), String> {
        if self.config != other.config {
            return Err(format!(
                "cannot merge metrics computed with different settings ({:?} vs {:?})",
                self.config, other.config
            ));
        }
        self.documents += other.documents;
        self.scored += other.scored;
        self.top1 += other.top1;
        self.in_top_k += other.in_top_k;
        self.sum_nll.merge(&other.sum_nll);
        self.sum_h.merge(&other.sum_h);
        self.decision += other.decision;
        self.sum_snr_full.merge(&other.sum_snr_full);
        self.sum_snr_renorm.merge(&other.sum_snr_renorm);
        self.sum_nll_decision.merge(&other.sum_nll_decision);
        self.orders
            .iter_mut()
            .zip(&other.orders)
            .for_each(|(a, b)| *a += b);
        self.entropy_hist
            .iter_mut()
            .zip(&other.entropy_hist)
            .for_each(|(a, b)| *a += b);
        self.docs_with_decisions += other.docs_with_decisions;
        self.sum_doc_snr_full.merge(&other.sum_doc_snr_full);
        self.sum_doc_snr_renorm.merge(&other.sum_doc_snr_renorm);
        Ok(())
    }

    /// The reported numbers. Means over an empty set are `None`, not NaN.
    pub fn summary(&self) -> Summary {
        let ratio = |num: f64, den: u64| (den > 0).then(|| num / den as f64);
        let mean_nll = ratio(self.sum_nll.value(), self.scored);
        let he_snr = match (self.config.pooling, self.config.signal) {
            (Pooling::Pooled, SignalProb::Full) => ratio(self.sum_snr_full.value(), self.decision),
            (Pooling::Pooled, SignalProb::Renormalized) => {
                ratio(self.sum_snr_renorm.value(), self.decision)
            }
            (Pooling::PerDocument, SignalProb::Full) => {
                ratio(self.sum_doc_snr_full.value(), self.docs_with_decisions)
            }
            (Pooling::PerDocument, SignalProb::Renormalized) => {
                ratio(self.sum_doc_snr_renorm.value(), self.docs_with_decisions)
            }
        };
        Summary {
            documents: self.documents,
            scored_tokens: self.scored,
            mean_nll,
            ppl: mean_nll.map(f64::exp),
            top1_acc: ratio(self.top1 as f64, self.scored),
            decision_tokens: self.decision,
            decision_density: ratio(self.decision as f64, self.scored),
            he_snr,
            he_ppl: ratio(self.sum_nll_decision.value(), self.decision).map(f64::exp),
            mean_h10: ratio(self.sum_h.value(), self.scored),
            order_shares: self
                .orders
                .iter()
                .map(|&c| {
                    if self.scored > 0 {
                        c as f64 / self.scored as f64
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }
}

/// The numbers a user reads, per document or pooled over a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub documents: u64,
    pub scored_tokens: u64,
    pub mean_nll: Option<f64>,
    pub ppl: Option<f64>,
    pub top1_acc: Option<f64>,
    /// |H|: scored positions with H_k > eps whose true token is in the top-k.
    pub decision_tokens: u64,
    /// |H| / scored tokens ([`Metric::DecisionDensity`](super::Metric::DecisionDensity)).
    /// Earlier versions wrote it as `decision_share`; summaries and rows they wrote still read.
    #[serde(alias = "decision_share")]
    pub decision_density: Option<f64>,
    pub he_snr: Option<f64>,
    pub he_ppl: Option<f64>,
    /// Mean renormalised top-k entropy (named for the default k = 10).
    pub mean_h10: Option<f64>,
    /// Share of scored positions per entropy order m = 1..=k.
    pub order_shares: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pm(h_k: f64, p_true: f64, in_top_k: bool, top1: bool) -> PositionMetrics {
        PositionMetrics {
            nll: -p_true.ln(),
            p_true,
            p_true_renorm: p_true * 1.25,
            h_k,
            in_top_k,
            top1,
        }
    }

    #[test]
    fn decision_set_boundaries() {
        let acc = Accumulator::new(MetricConfig::default());
        let eps = MetricConfig::DEFAULT_EPS;
        assert!(
            !acc.is_decision(&pm(eps, 0.3, true, false)),
            "H == eps is not above eps"
        );
        assert!(acc.is_decision(&pm(eps + 1e-9, 0.3, true, false)));
        assert!(
            !acc.is_decision(&pm(2.0, 0.01, false, false)),
            "true token outside top-k"
        );
        assert!(!acc.is_decision(&pm(0.5, 0.9, true, true)));
    }

    #[test]
    fn hand_computed_summary() {
        let mut acc = Accumulator::new(MetricConfig::default());
        acc.push(&pm(0.0, 1.0, true, true)); // order 1, not a decision
        acc.push(&pm(1.5, 0.3, true, false)); // decision: 0.3 / 1.5 = 0.2
        acc.push(&pm(2.0, 0.5, true, true)); // decision: 0.5 / 2.0 = 0.25
        acc.push(&pm(2.2, 0.01, false, false)); // high entropy but true token outside top-k
        acc.finish_document();
        let s = acc.summary();
        assert_eq!(s.scored_tokens, 4);
        assert_eq!(s.decision_tokens, 2);
        assert!((s.he_snr.unwrap() - 0.225).abs() < 1e-12);
        let mean_nll = -(1.0f64.ln() + 0.3f64.ln() + 0.5f64.ln() + 0.01f64.ln()) / 4.0;
        assert!((s.ppl.unwrap() - mean_nll.exp()).abs() < 1e-9);
        let he_nll = -(0.3f64.ln() + 0.5f64.ln()) / 2.0;
        assert!((s.he_ppl.unwrap() - he_nll.exp()).abs() < 1e-9);
        assert_eq!(s.top1_acc, Some(0.5));
        assert_eq!(s.decision_density, Some(0.5));
        assert!((s.mean_h10.unwrap() - 5.7 / 4.0).abs() < 1e-12);
        // Orders: 0 -> 1; 1.5 is above the 4|5 edge (ln4+ln5)/2 = 1.498 -> 5; 2.0 -> 7; 2.2 -> 9.
        for m in [1, 5, 7, 9] {
            assert_eq!(s.order_shares[m - 1], 0.25, "order {m}");
        }
        assert_eq!(s.order_shares.iter().sum::<f64>(), 1.0);
    }

    /// A summary as earlier versions wrote it (`decision_share`) reads into `decision_density`;
    /// it is written under the new name only.
    #[test]
    fn summaries_of_earlier_versions_read() {
        let old = r#"{"documents": 1, "scored_tokens": 4, "mean_nll": 1.5, "ppl": 4.48,
            "top1_acc": 0.5, "decision_tokens": 2, "decision_share": 0.5, "he_snr": 0.225,
            "he_ppl": 2.58, "mean_h10": 1.425, "order_shares": [0.25, 0.75]}"#;
        let s: Summary = serde_json::from_str(old).unwrap();
        assert_eq!(s.decision_density, Some(0.5));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["decision_density"], 0.5);
        assert!(json.get("decision_share").is_none());
        assert_eq!(serde_json::from_value::<Summary>(json).unwrap(), s);
    }

    #[test]
    fn empty_set_reports_none_not_nan() {
        let s = Accumulator::new(MetricConfig::default()).summary();
        assert_eq!(s.ppl, None);
        assert_eq!(s.he_snr, None);
        assert_eq!(s.order_shares.iter().sum::<f64>(), 0.0);
    }

    #[test]
    fn per_document_pooling_averages_document_means() {
        let cfg = MetricConfig {
            pooling: Pooling::PerDocument,
            ..Default::default()
        };
        let mut d1 = Accumulator::new(cfg);
        d1.push(&pm(2.0, 0.4, true, false)); // 0.2
        d1.finish_document();
        let mut d2 = Accumulator::new(cfg);
        d2.push(&pm(2.0, 0.8, true, false)); // 0.4
        d2.push(&pm(2.0, 0.0, true, false)); // 0.0 -> doc mean 0.2
        d2.finish_document();
        let mut d3 = Accumulator::new(cfg); // no decisions: left out of the mean
        d3.push(&pm(0.1, 0.9, true, true));
        d3.finish_document();
        let mut all = Accumulator::new(cfg);
        for d in [&d1, &d2, &d3] {
            all.merge(d).unwrap();
        }
        assert!((all.summary().he_snr.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(all.summary().documents, 3);
        let pooled = Accumulator {
            config: MetricConfig::default(),
            ..all.clone()
        };
        assert!((pooled.summary().he_snr.unwrap() - 0.6 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn merging_different_settings_fails() {
        let mut a = Accumulator::new(MetricConfig::default());
        let b = Accumulator::new(MetricConfig {
            eps: 1.0,
            ..Default::default()
        });
        assert!(a.merge(&b).is_err());
    }

    proptest! {
        #[test]
        fn any_split_merges_to_the_same_result(
            items in prop::collection::vec((0.0f64..2.3, 0.0001f64..1.0, any::<bool>(), any::<bool>()), 0..120),
            cuts in prop::collection::vec(0usize..120, 0..6),
        ) {
            let cfg = MetricConfig::default();
            let mut whole = Accumulator::new(cfg);
            items.iter().for_each(|&(h, p, t, t1)| whole.push(&pm(h, p, t, t1)));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(items.len())).collect();
            cuts.push(0);
            cuts.push(items.len());
            cuts.sort();
            let mut parts: Vec<Accumulator> = cuts.windows(2).map(|w| {
                let mut a = Accumulator::new(cfg);
                items[w[0]..w[1]].iter().for_each(|&(h, p, t, t1)| a.push(&pm(h, p, t, t1)));
                a
            }).collect();
            parts.reverse();
            let mut merged = Accumulator::new(cfg);
            parts.iter().for_each(|p| merged.merge(p).unwrap());
            prop_assert_eq!(whole.summary(), merged.summary());
        }
    }
}
