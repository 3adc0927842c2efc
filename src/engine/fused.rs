//! One logits row -> [`PositionStats`], without keeping or allocating anything of vocabulary size.
//!
//! Two passes over the row (which stays in cache): the first finds the top-k (and so the maximum),
//! the second adds exp(l - max) for the log-sum-exp, exp(l - max) * (l - max) for the
//! full-vocabulary entropy, and counts the logits above the true token's.
//! The exponential is a branch-free polynomial over fixed 16-lane partial sums, so the compiler
//! vectorises it and the result is bit-identical whatever SIMD width the CPU offers.

use crate::metrics::{PositionStats, TokenLogit};

const LANES: usize = 16;
/// Partial f32 lane sums are flushed into f64 every this many elements, bounding rounding error.
const FLUSH_EVERY: usize = 1024;

/// Why a row could not be reduced: the model produced non-finite logits or a bad target.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("the model produced a non-finite logit (NaN or infinity)")]
    NonFinite,
    #[error("target token id {id} is outside the vocabulary of {vocab} tokens")]
    TargetOutOfRange { id: u32, vocab: usize },
}

/// Reduces one row of logits to the statistics the metrics need, keeping the `k` largest.
pub fn reduce_row(row: &[f32], true_id: u32, k: usize) -> Result<PositionStats, RowError> {
    let (true_logit, top, max) = first_pass(row, true_id, k)?;
    if !max.is_finite() || !true_logit.is_finite() {
        return Err(RowError::NonFinite);
    }
    let sums = sum_exp_and_count_above::<true>(row, max, true_logit);
    if !sums.exp.is_finite() || sums.exp < 1.0 {
        // sum >= 1 always holds (the max contributes exp(0)); anything else means a NaN slipped in.
        return Err(RowError::NonFinite);
    }
    let ln_sum = sums.exp.ln();
    Ok(PositionStats {
        lse: max as f64 + ln_sum,
        top,
        true_id,
        true_logit,
        true_rank: sums.above + 1,
        entropy: Some(shifted_entropy(ln_sum, sums.exp, sums.exp_times_shift)),
    })
}

/// Full-vocabulary entropy from the shifted sums: with d = l - max, S = sum e^d and
/// T = sum e^d d (<= 0), H = ln S - T / S. Both terms are >= 0, so nothing cancels however peaked
/// the row is; rounding can leave a hair below zero, which is clamped.
fn shifted_entropy(ln_sum: f64, sum: f64, exp_times_shift: f64) -> f64 {
    (ln_sum - exp_times_shift / sum).max(0.0)
}

/// [`reduce_row`] without the entropy sum, i.e. the pass as it was before that sum was added.
/// Kept only so that `benches/engine.rs` can state the sum's cost against it in one run.
#[doc(hidden)]
pub fn reduce_row_without_entropy(
    row: &[f32],
    true_id: u32,
    k: usize,
) -> Result<(f64, u32), RowError> {
    let (true_logit, _, max) = first_pass(row, true_id, k)?;
    let sums = sum_exp_and_count_above::<false>(row, max, true_logit);
    Ok((max as f64 + sums.exp.ln(), sums.above + 1))
}

/// The first pass over a row: the true token's logit, the top-k and the maximum.
fn first_pass(
    row: &[f32],
    true_id: u32,
    k: usize,
) -> Result<(f32, Vec<TokenLogit>, f32), RowError> {
    let true_logit = *row
        .get(true_id as usize)
        .ok_or(RowError::TargetOutOfRange {
            id: true_id,
            vocab: row.len(),
        })?;
    let top = top_k(row, k);
    let max = top.first().map_or(0.0, |t| t.logit);
    Ok((true_logit, top, max))
}

/// The k largest logits, descending; ties keep the lower id first (the row is scanned in id order
/// and only a strictly larger value displaces an equal one).
fn top_k(row: &[f32], k: usize) -> Vec<TokenLogit> {
    let k = k.min(row.len());
    let mut top: Vec<TokenLogit> = Vec::with_capacity(k + 1);
    let mut threshold = f32::NEG_INFINITY;
    let mut base = 0usize;
    for chunk in row.chunks(LANES) {
        // Skip whole chunks that cannot enter (the common case once the list is full).
        if top.len() == k && chunk_max(chunk) <= threshold {
            base += chunk.len();
            continue;
        }
        for (j, &l) in chunk.iter().enumerate() {
            if top.len() < k || l > threshold {
                let pos = top.partition_point(|t| t.logit >= l);
                top.insert(
                    pos,
                    TokenLogit {
                        id: (base + j) as u32,
                        logit: l,
                    },
                );
                top.truncate(k);
                if top.len() == k {
                    threshold = top[k - 1].logit;
                }
            }
        }
        base += chunk.len();
    }
    top
}

#[inline]
fn chunk_max(chunk: &[f32]) -> f32 {
    // NaN compares false everywhere, so a NaN chunk is scanned, and caught by the sum pass.
    chunk
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// The sums of the second pass over a row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowSums {
    /// sum of exp(l - max)
    exp: f64,
    /// sum of exp(l - max) * (l - max) (0 when not asked for)
    exp_times_shift: f64,
    /// number of logits strictly above the true token's
    above: u32,
}

fn sum_exp_and_count_above<const ENTROPY: bool>(row: &[f32], max: f32, true_logit: f32) -> RowSums {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { sum_exp_avx2::<ENTROPY>(row, max, true_logit) };
        }
    }
    sum_exp_portable::<ENTROPY>(row, max, true_logit)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_exp_avx2<const ENTROPY: bool>(row: &[f32], max: f32, true_logit: f32) -> RowSums {
    sum_exp_portable::<ENTROPY>(row, max, true_logit)
}

/// Same arithmetic on every target: lane i always accumulates elements i, i+16, ..., and the
/// lanes are combined in a fixed order, so the SIMD width changes speed, never the result.
#[inline(always)]
fn sum_exp_portable<const ENTROPY: bool>(row: &[f32], max: f32, true_logit: f32) -> RowSums {
    let mut total = 0f64;
    let mut total_shift = 0f64;
    let mut above = 0u32;
    for block in row.chunks(FLUSH_EVERY) {
        let mut acc = [0f32; LANES];
        let mut acc_shift = [0f32; LANES];
        let mut cnt = [0u32; LANES];
        let mut at_max = [0u32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                let d = c[i] - max;
                let e = exp_nonpositive(d);
                // Logits equal to the max contribute exactly 1 each and are counted, not summed:
                // a 1.0 in an f32 lane would round away the small terms that make up a confident
                // row's entropy. (A NaN is not == 0, so it still reaches the sum.)
                acc[i] += if d == 0.0 { 0.0 } else { e };
                at_max[i] += (d == 0.0) as u32;
                if ENTROPY {
                    acc_shift[i] += e * d;
                }
                cnt[i] += (c[i] > true_logit) as u32;
            }
        }
        for (i, &x) in chunks.remainder().iter().enumerate() {
            let d = x - max;
            let e = exp_nonpositive(d);
            acc[i] += if d == 0.0 { 0.0 } else { e };
            at_max[i] += (d == 0.0) as u32;
            if ENTROPY {
                acc_shift[i] += e * d;
            }
            cnt[i] += (x > true_logit) as u32;
        }
        total += at_max.iter().sum::<u32>() as f64;
        total += acc.iter().map(|&a| a as f64).sum::<f64>();
        if ENTROPY {
            total_shift += acc_shift.iter().map(|&a| a as f64).sum::<f64>();
        }
        above += cnt.iter().sum::<u32>();
    }
    RowSums {
        exp: total,
        exp_times_shift: total_shift,
        above,
    }
}

/// e^x for x <= 0 (Cephes expf polynomial, relative error ~1e-7); underflows cleanly to 0.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer with plain SSE2/AVX ops.
    const ROUND: f32 = 12_582_912.0;
    // Written as a compare so that a NaN propagates (f32::max would swallow it).
    let x = if x < -87.0 { -87.0 } else { x };
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    y * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(row: &[f32], true_id: u32, k: usize) -> PositionStats {
        let mut s = crate::metrics::reference_stats(row, true_id);
        s.top.truncate(k);
        s
    }

    #[test]
    fn exp_matches_std_within_1e_6_relative() {
        let mut x = -87.0f32;
        while x <= 0.0 {
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            assert!(((got - want) / want).abs() < 1e-6, "x={x}: {got} vs {want}");
            x += 0.0137;
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-1000.0), exp_nonpositive(-87.0));
    }

    #[test]
    fn ties_keep_lower_ids_first() {
        let row = [1.0f32, 3.0, 3.0, 2.0, 3.0, 0.0];
        let s = reduce_row(&row, 4, 3).unwrap();
        let ids: Vec<u32> = s.top.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![1, 2, 4]);
        assert_eq!(s.true_rank, 1);
    }

    #[test]
    fn rejects_nan_and_out_of_range_targets() {
        let mut row = vec![0.5f32; 100];
        row[57] = f32::NAN;
        assert_eq!(reduce_row(&row, 0, 10), Err(RowError::NonFinite));
        assert!(matches!(
            reduce_row(&[0.0; 4], 9, 2),
            Err(RowError::TargetOutOfRange { .. })
        ));
    }

    /// Entropies worked out by hand: uniform rows give ln V; two logits ln 2 apart over a
    /// negligible rest give the entropy of (2/3, 1/3); a one-hot row gives 0.
    #[test]
    fn entropy_of_hand_rows() {
        let h = |row: &[f32]| reduce_row(row, 0, 4).unwrap().entropy.unwrap();
        assert_eq!(h(&[5.0]), 0.0);
        for v in [1usize, 2, 7, 16, 17, 1000, 49_152] {
            let want = (v as f64).ln();
            let got = h(&vec![3.25f32; v]);
            assert!(
                (got - want).abs() <= 1e-6 * want + 1e-12,
                "V={v}: {got} vs {want}"
            );
        }
        let mut row = vec![-200.0f32; 40];
        row[5] = 2f32.ln();
        row[30] = 0.0;
        let want = -(2.0 / 3.0 * (2.0f64 / 3.0).ln() + 1.0 / 3.0 * (1.0f64 / 3.0).ln());
        assert!((h(&row) - want).abs() < 1e-7, "{} vs {want}", h(&row));
        let mut one_hot = vec![-1000.0f32; 100];
        one_hot[3] = 0.0;
        assert!(h(&one_hot) < 1e-30);
        // A large common offset (where f32 logits round) still matches f64 on the rounded row.
        let shifted: Vec<f32> = row.iter().map(|l| l + 1000.0).collect();
        let want_shifted = crate::metrics::reference_stats(&shifted, 0)
            .entropy
            .unwrap();
        assert!((h(&shifted) - want_shifted).abs() < 1e-6 * want_shifted);
        // A confident row (entropy ~1e-4): relative agreement needs the max kept out of the f32
        // lane sums (a 1.0 in a lane would swallow the small terms' last digits).
        let mut sure: Vec<f32> = (0..5000).map(|i| -18.0 - (i % 13) as f32 * 0.7).collect();
        sure[4321] = 0.0;
        let want_sure = crate::metrics::reference_stats(&sure, 0).entropy.unwrap();
        assert!(want_sure < 1e-2, "{want_sure}");
        assert!(
            (h(&sure) - want_sure).abs() < 1e-6 * want_sure,
            "{} vs {want_sure}",
            h(&sure)
        );
    }

    /// The f64 reference agrees with the textbook -sum p ln p on a random row.
    #[test]
    fn reference_entropy_is_minus_sum_p_ln_p() {
        let row: Vec<f32> = (0..500)
            .map(|i| ((i * 37 % 101) as f32) * 0.13 - 6.0)
            .collect();
        let s = crate::metrics::reference_stats(&row, 0);
        let want: f64 = -row
            .iter()
            .map(|&l| {
                let lp = l as f64 - s.lse;
                lp.exp() * lp
            })
            .sum::<f64>();
        assert!((s.entropy.unwrap() - want).abs() < 1e-12);
        assert_eq!(
            reduce_row_without_entropy(&row, 0, 10).unwrap().1,
            reduce_row(&row, 0, 10).unwrap().true_rank
        );
    }

    #[test]
    fn vocabulary_smaller_than_k() {
        let s = reduce_row(&[0.0, 1.0, 2.0], 0, 10).unwrap();
        assert_eq!(s.top.len(), 3);
        assert_eq!(s.true_rank, 3);
    }

    proptest! {
        #[test]
        fn agrees_with_a_plain_f64_reference(
            row in prop::collection::vec(-40f32..40f32, 1..3000),
            pick in 0usize..3000,
            k in 1usize..16,
        ) {
            let true_id = (pick % row.len()) as u32;
            let got = reduce_row(&row, true_id, k).unwrap();
            let want = reference(&row, true_id, k);
            prop_assert!((got.lse - want.lse).abs() < 1e-5, "{} vs {}", got.lse, want.lse);
            let (h, h_want) = (got.entropy.unwrap(), want.entropy.unwrap());
            prop_assert!((h - h_want).abs() <= 1e-6 * h_want + 1e-9, "{} vs {}", h, h_want);
            prop_assert_eq!(got.top, want.top);
            prop_assert_eq!(got.true_rank, want.true_rank);
        }

        #[test]
        fn portable_and_dispatched_paths_are_bit_identical(
            row in prop::collection::vec(-30f32..30f32, 1..5000),
        ) {
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let a = sum_exp_portable::<true>(&row, max, 0.0);
            let b = sum_exp_and_count_above::<true>(&row, max, 0.0);
            prop_assert_eq!(a.exp.to_bits(), b.exp.to_bits());
            prop_assert_eq!(a.exp_times_shift.to_bits(), b.exp_times_shift.to_bits());
            prop_assert_eq!(a.above, b.above);
            // The entropy sum leaves the other sums exactly as they were without it.
            let c = sum_exp_and_count_above::<false>(&row, max, 0.0);
            prop_assert_eq!(a.exp.to_bits(), c.exp.to_bits());
            prop_assert_eq!(a.above, c.above);
        }
    }
}
