use serde::{Deserialize, Serialize};

/// One candidate token and its raw logit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenLogit {
    pub id: u32,
    pub logit: f32,
}

/// Everything the metrics need to know about one scored position, and nothing of vocabulary size.
///
/// A backend produces this from a logits row in one pass; method.md lists exactly these numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionStats {
    /// log sum_v exp(logit_v) over the whole vocabulary.
    pub lse: f64,
    /// The highest logits, sorted descending (ties: lower id first). At least `k` entries unless
    /// the vocabulary is smaller.
    pub top: Vec<TokenLogit>,
    /// The token that actually follows.
    pub true_id: u32,
    pub true_logit: f32,
    /// 1 + number of vocabulary entries with a strictly larger logit than the true token.
    pub true_rank: u32,
    /// Entropy in nats of the softmax over the whole vocabulary, -sum_v p_v ln p_v. `None` where
    /// the backend never saw the whole distribution (a remote server's top-k list): metrics that
    /// need it are then unavailable, never approximated from the top-k.
    #[serde(default)]
    pub entropy: Option<f64>,
}

/// The per-position quantities derived from [`PositionStats`] for a given k.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionMetrics {
    /// -ln p(x_t) under the full softmax.
    pub nll: f64,
    /// p(x_t) under the full softmax.
    pub p_true: f64,
    /// p(x_t) renormalised over the top-k; 0 when the true token is outside the top-k.
    pub p_true_renorm: f64,
    /// Entropy of the top-k distribution renormalised to sum to 1, in nats; in [0, ln k].
    pub h_k: f64,
    /// Whether the true token is among the k most probable tokens.
    pub in_top_k: bool,
    /// Whether the true token is the single most probable token.
    pub top1: bool,
}

impl PositionMetrics {
    /// Derives the metrics from raw statistics, with all exponentials shifted by the maximum logit.
    pub fn from_stats(stats: &PositionStats, k: usize) -> Self {
        let top = &stats.top[..k.min(stats.top.len())];
        let nll = (stats.lse - stats.true_logit as f64).max(0.0);
        let (h_k, max, ln_z) = topk_entropy(top);
        let in_top_k = top.iter().any(|t| t.id == stats.true_id);
        let p_true_renorm = if in_top_k {
            ((stats.true_logit as f64 - max) - ln_z).exp().min(1.0)
        } else {
            0.0
        };
        Self {
            nll,
            p_true: (-nll).exp(),
            p_true_renorm,
            h_k,
            in_top_k,
            top1: top.first().is_some_and(|t| t.id == stats.true_id),
        }
    }
}

/// Entropy of the softmax over `top` alone, with the shift and log-normaliser it used.
///
/// Everything is computed on logits shifted by the maximum (d_i = l_i - max <= 0), so that
/// H = ln z - sum q_i d_i with q_i = exp(d_i - ln z) stays exact for any logit scale.
/// Returns (H, max, ln z).
fn topk_entropy(top: &[TokenLogit]) -> (f64, f64, f64) {
    let Some(first) = top.first() else {
        return (0.0, 0.0, 0.0);
    };
    let max = first.logit as f64;
    let ln_z = top
        .iter()
        .map(|t| (t.logit as f64 - max).exp())
        .sum::<f64>()
        .ln();
    let mut h = 0.0;
    for t in top {
        let d = t.logit as f64 - max - ln_z;
        h -= d.exp() * d;
    }
    (h.clamp(0.0, (top.len() as f64).ln()), max, ln_z)
}

/// The "entropy-compressed state" of a position: the m in 1..=k whose ln m is nearest to `h`.
///
/// Bin edges sit at the midpoints (ln m + ln(m+1)) / 2; a value exactly on an edge goes up.
pub fn entropy_order(h: f64, k: usize) -> usize {
    let mut m = 1;
    while m < k && h >= ((m as f64).ln() + ((m + 1) as f64).ln()) / 2.0 {
        m += 1;
    }
    m
}

/// Test reference: the statistics of a full logits row computed the slow, obvious way (f64,
/// full sort), for checking the fused pass and the metrics against.
#[cfg(test)]
pub(crate) fn reference_stats(logits: &[f32], true_id: u32) -> PositionStats {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    let mut top: Vec<TokenLogit> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| TokenLogit {
            id: i as u32,
            logit: l,
        })
        .collect();
    top.sort_by(|a, b| b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id)));
    let true_logit = logits[true_id as usize];
    let true_rank = 1 + logits.iter().filter(|&&l| l > true_logit).count() as u32;
    let entropy = -logits
        .iter()
        .map(|&l| {
            let log_p = l as f64 - lse;
            log_p.exp() * log_p
        })
        .sum::<f64>();
    PositionStats {
        lse,
        top,
        true_id,
        true_logit,
        true_rank,
        entropy: Some(entropy.max(0.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stats(logits: &[f32], true_id: u32) -> PositionStats {
        reference_stats(logits, true_id)
    }

    #[test]
    fn uniform_top10_gives_ln10() {
        // 10 equal logits high above 90 low ones: the renormalised top-10 is exactly uniform.
        let mut logits = vec![-30.0f32; 100];
        logits[..10].iter_mut().for_each(|l| *l = 5.0);
        let m = PositionMetrics::from_stats(&stats(&logits, 3), 10);
        assert!((m.h_k - 10f64.ln()).abs() < 1e-12);
        assert!((m.p_true_renorm - 0.1).abs() < 1e-12);
        assert!(m.in_top_k);
    }

    #[test]
    fn one_sure_candidate_gives_zero_entropy() {
        let mut logits = vec![-1000.0f32; 20];
        logits[7] = 0.0;
        let m = PositionMetrics::from_stats(&stats(&logits, 7), 10);
        assert!(m.h_k.abs() < 1e-12);
        assert!(m.nll.abs() < 1e-12);
        assert!(m.top1);
    }

    #[test]
    fn two_equal_candidates_give_ln2_and_half_probability() {
        let mut logits = vec![-1000.0f32; 20];
        logits[2] = 1.0;
        logits[9] = 1.0;
        let m = PositionMetrics::from_stats(&stats(&logits, 9), 10);
        assert!((m.h_k - 2f64.ln()).abs() < 1e-12);
        assert!((m.p_true - 0.5).abs() < 1e-12);
        assert!((m.nll - 2f64.ln()).abs() < 1e-12);
        // Tie on the top logit: lower id wins the argmax, so id 9 is not top-1.
        assert!(!m.top1);
    }

    #[test]
    fn hand_computed_three_way_distribution() {
        // logits ln 1, ln 2, ln 1 -> probabilities 1/4, 1/2, 1/4 (others negligible).
        let mut logits = vec![-1e4f32; 12];
        logits[0] = 0.0;
        logits[1] = 2f32.ln();
        logits[2] = 0.0;
        let m = PositionMetrics::from_stats(&stats(&logits, 2), 10);
        let want_h = -(0.25f64 * 0.25f64.ln() * 2.0 + 0.5 * 0.5f64.ln());
        assert!((m.h_k - want_h).abs() < 1e-7, "{} vs {}", m.h_k, want_h);
        assert!((m.p_true - 0.25).abs() < 1e-7);
    }

    #[test]
    fn true_token_outside_top_k_is_flagged() {
        let logits: Vec<f32> = (0..30).map(|i| -(i as f32) * 0.1).collect();
        let m = PositionMetrics::from_stats(&stats(&logits, 15), 10);
        assert!(!m.in_top_k);
        assert_eq!(m.p_true_renorm, 0.0);
        assert!(m.p_true > 0.0);
    }

    #[test]
    fn huge_logits_stay_finite() {
        let mut logits = vec![1e30f32; 10];
        logits.extend([0.0f32; 5]);
        let m = PositionMetrics::from_stats(&stats(&logits, 0), 10);
        assert!(m.h_k.is_finite() && (m.h_k - 10f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn orders_follow_ln_m_midpoints() {
        assert_eq!(entropy_order(0.0, 10), 1);
        assert_eq!(entropy_order(2f64.ln(), 10), 2);
        assert_eq!(entropy_order(3f64.ln(), 10), 3);
        let edge34 = (3f64.ln() + 4f64.ln()) / 2.0;
        assert_eq!(entropy_order(edge34 - 1e-12, 10), 3);
        assert_eq!(entropy_order(edge34, 10), 4);
        assert_eq!(entropy_order(10f64.ln(), 10), 10);
        assert_eq!(entropy_order(100.0, 10), 10);
    }

    proptest! {
        #[test]
        fn entropy_bounded_and_probabilities_valid(
            logits in prop::collection::vec(-50f32..50f32, 2..60),
            pick in 0usize..60,
            k in 2usize..12,
        ) {
            let true_id = (pick % logits.len()) as u32;
            let s = stats(&logits, true_id);
            let m = PositionMetrics::from_stats(&s, k);
            let kk = k.min(logits.len());
            prop_assert!(m.h_k >= 0.0 && m.h_k <= (kk as f64).ln() + 1e-12);
            prop_assert!(m.p_true > 0.0 && m.p_true <= 1.0);
            prop_assert!(m.p_true_renorm >= m.p_true - 1e-9 || !m.in_top_k);
            prop_assert_eq!(m.in_top_k, s.top[..kk].iter().any(|t| t.id == true_id));
            prop_assert!(entropy_order(m.h_k, k) >= 1 && entropy_order(m.h_k, k) <= k);
        }

        #[test]
        fn adding_a_constant_to_all_logits_changes_nothing(
            logits in prop::collection::vec(-20f32..20f32, 12..40),
            shift in -100f32..100f32,
        ) {
            let a = PositionMetrics::from_stats(&stats(&logits, 3), 10);
            let shifted: Vec<f32> = logits.iter().map(|l| l + shift).collect();
            let b = PositionMetrics::from_stats(&stats(&shifted, 3), 10);
            prop_assert!((a.h_k - b.h_k).abs() < 1e-4);
            prop_assert!((a.nll - b.nll).abs() < 1e-4);
        }
    }
}
