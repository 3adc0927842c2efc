//! Correlation statistics for a handful of points (3-10 checkpoints), in plain `f64` math.
//!
//! Every statistic returns `None` where it is undefined (too few points, a constant side, a
//! non-finite input, slices of different lengths) and never NaN. Point estimates match
//! `scipy.stats` (`pearsonr`, `spearmanr`, `kendalltau` with tau-b, `linregress`,
//! `permutation_test`); the tests pin them against `scripts/stats_reference.py`.
//!
//! Randomised procedures (bootstrap, Monte Carlo permutations) draw from an inline SplitMix64
//! generator and integer index arithmetic only, so a seed gives the same result on every platform.
//!
//! [`correlate`] puts it all together with a verdict rule meant for few points; see
//! [`CorrelationReport`].

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Confidence level of the intervals in a [`CorrelationReport`].
pub const CI_LEVEL: f64 = 0.95;
/// Bootstrap resamples behind each interval in a [`CorrelationReport`].
pub const CI_RESAMPLES: usize = 2000;
/// Seed of the bootstrap and permutation tests of reports, fixed so that they are reproducible
/// (the paper's arXiv number).
pub const SEED: u64 = 2601_20255;
/// Fewest points [`correlate`] will call conclusive.
pub const MIN_POINTS: usize = 4;
/// A permutation p-value must be below this for [`correlate`] to call the association conclusive.
pub const SIGNIFICANCE: f64 = 0.05;
/// Up to this many points [`permutation_test`] enumerates all n! pairings (10! = 3,628,800).
pub const EXACT_PERMUTATION_MAX_N: usize = 10;
/// Random pairings drawn by [`permutation_test`] above [`EXACT_PERMUTATION_MAX_N`] points.
pub const MONTE_CARLO_PERMUTATIONS: usize = 9999;

/// One of the three correlation coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Correlation {
    /// Pearson's r: linear association of the values.
    Pearson,
    /// Spearman's rho: Pearson's r of the average ranks (monotone association).
    Spearman,
    /// Kendall's tau-b: concordant minus discordant pairs, corrected for ties.
    Kendall,
}

impl Correlation {
    pub const ALL: [Correlation; 3] = [
        Correlation::Pearson,
        Correlation::Spearman,
        Correlation::Kendall,
    ];

    /// Lower-case identifier, as serialized and as parsed by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Correlation::Pearson => "pearson",
            Correlation::Spearman => "spearman",
            Correlation::Kendall => "kendall",
        }
    }

    /// Name for people: "Pearson", "Spearman", "Kendall".
    pub fn title(self) -> &'static str {
        match self {
            Correlation::Pearson => "Pearson",
            Correlation::Spearman => "Spearman",
            Correlation::Kendall => "Kendall",
        }
    }

    /// The coefficient of `x` against `y`.
    pub fn compute(self, x: &[f64], y: &[f64]) -> Option<f64> {
        match self {
            Correlation::Pearson => pearson(x, y),
            Correlation::Spearman => spearman(x, y),
            Correlation::Kendall => kendall_tau_b(x, y),
        }
    }
}

impl fmt::Display for Correlation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

impl FromStr for Correlation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Correlation::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown correlation {s:?} (pearson, spearman or kendall)"))
    }
}

/// Same length, at least two points, all finite.
fn usable(x: &[f64], y: &[f64]) -> bool {
    x.len() == y.len() && x.len() >= 2 && x.iter().chain(y).all(|v| v.is_finite())
}

fn is_constant(v: &[f64]) -> bool {
    v.iter().all(|a| *a == v[0])
}

/// `v` multiplied by a power of two when its magnitude is extreme, so that sums of squares can
/// neither overflow nor underflow. Exact (a power-of-two factor only moves exponents), and the
/// correlation and rank statistics are scale-invariant.
fn rescaled(v: &[f64]) -> Vec<f64> {
    const BIG: f64 = 1.0e150;
    const SMALL: f64 = 1.0e-150;
    let m = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
    let k = if m > BIG {
        2f64.powi(-600)
    } else if m > 0.0 && m < SMALL {
        2f64.powi(600)
    } else {
        1.0
    };
    v.iter().map(|a| a * k).collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Deviations from the mean, divided by the largest of them (so the largest is +-1).
/// `None` when all deviations are zero or something overflowed.
fn unit_deviations(v: &[f64]) -> Option<Vec<f64>> {
    let m = mean(v);
    let mut d: Vec<f64> = v.iter().map(|a| a - m).collect();
    let s = d.iter().fold(0.0f64, |s, a| s.max(a.abs()));
    if !(s > 0.0 && s.is_finite()) {
        return None;
    }
    d.iter_mut().for_each(|a| *a /= s);
    Some(d)
}

/// Pearson's r of two non-constant centered, scaled vectors.
fn dot_correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (p, q) in a.iter().zip(b) {
        ab += p * q;
        aa += p * p;
        bb += q * q;
    }
    // aa, bb <= n (entries within +-1): the product cannot overflow, and one square root keeps
    // an exactly linear relation at exactly +-1.
    let r = ab / (aa * bb).sqrt();
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// Pearson's correlation coefficient, as `scipy.stats.pearsonr(x, y).statistic`.
///
/// `None` when the slices differ in length, have fewer than 2 points, hold a non-finite value,
/// or either side is constant. With exactly 2 points the result is +-1.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if !usable(x, y) || is_constant(x) || is_constant(y) {
        return None;
    }
    let a = unit_deviations(&rescaled(x))?;
    let b = unit_deviations(&rescaled(y))?;
    dot_correlation(&a, &b)
}

/// 1-based ranks with ties given the average of the ranks they span, as
/// `scipy.stats.rankdata(x, method="average")`. `-0.0` and `0.0` tie; NaNs rank last, each on
/// its own (the correlations reject non-finite input before ranking).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && x[order[end]] == x[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1 ..= end; their average:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation: Pearson's r of the average ranks, as
/// `scipy.stats.spearmanr(x, y).statistic`. `None` under the same conditions as [`pearson`].
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if !usable(x, y) {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Sign of `a - b` (-1, 0, 1) without forming the difference.
fn sgn(a: f64, b: f64) -> i64 {
    i64::from(a > b) - i64::from(a < b)
}

/// Concordant-minus-discordant sum, pairs tied in x, pairs tied in y (a pair tied in both counts
/// in both), over all n(n-1)/2 pairs. O(n^2), which is nothing at checkpoint counts.
fn kendall_counts(x: &[f64], y: &[f64]) -> (i64, i64, i64) {
    let (mut s, mut tx, mut ty) = (0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let a = sgn(x[i], x[j]);
            let b = sgn(y[i], y[j]);
            tx += i64::from(a == 0);
            ty += i64::from(b == 0);
            s += a * b;
        }
    }
    (s, tx, ty)
}

/// Kendall's tau-b, as `scipy.stats.kendalltau(x, y).statistic` (its default variant):
/// `(concordant - discordant) / sqrt((pairs - ties_x) * (pairs - ties_y))`, where a pair tied in
/// both x and y counts in both tie terms. `None` under the same conditions as [`pearson`].
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    if !usable(x, y) || is_constant(x) || is_constant(y) {
        return None;
    }
    let n = x.len() as i64;
    let pairs = n * (n - 1) / 2;
    let (s, tx, ty) = kendall_counts(x, y);
    let tau = s as f64 / (((pairs - tx) * (pairs - ty)) as f64).sqrt();
    tau.is_finite().then(|| tau.clamp(-1.0, 1.0))
}

/// SplitMix64 (Steele, Lea, Flood 2014; Vigna's reference constants). Tiny, fast, and defined
/// purely in wrapping integer arithmetic, so identical on every platform.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias (Lemire's multiply-and-reject).
    fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as usize;
            }
        }
    }
}

/// A percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// Resamples on which the statistic was defined; the others (e.g. a resample that drew one
    /// point over and over, so a side is constant) are skipped.
    pub resamples_used: usize,
}

impl Interval {
    /// True when 0 lies in `[low, high]`.
    pub fn contains_zero(&self) -> bool {
        self.low <= 0.0 && self.high >= 0.0
    }
}

/// Quantile of sorted, non-empty data with linear interpolation between order statistics
/// (numpy's default `percentile` method, Hyndman-Fan type 7).
fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Percentile bootstrap interval of `stat` over resampled (x, y) pairs.
///
/// Each of `resamples` resamples draws n indices with replacement from a SplitMix64 stream seeded
/// with `seed` and computes `stat` on the drawn pairs; resamples where it is undefined are skipped
/// and counted out of `resamples_used`. The interval is the `(1 - level) / 2` and
/// `(1 + level) / 2` quantiles of the defined values (linear interpolation, as numpy).
///
/// `None` when `stat` is undefined on the full data, `level` is not in (0, 1), `resamples` is 0,
/// or fewer than half the resamples were defined (the data are then too degenerate for the
/// interval to mean anything).
///
/// With few points the percentile bootstrap is optimistic (with 4 monotone points every defined
/// resample gives exactly 1, so the interval is [1, 1]); [`correlate`] therefore also asks for a
/// permutation test.
pub fn bootstrap_ci(
    x: &[f64],
    y: &[f64],
    stat: Correlation,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<Interval> {
    stat.compute(x, y)?;
    let (mut xs, mut ys) = (Vec::with_capacity(x.len()), Vec::with_capacity(y.len()));
    let [interval] = bootstrap_intervals(x.len(), resamples, level, seed, |drawn, out| {
        xs.clear();
        ys.clear();
        xs.extend(drawn.iter().map(|&i| x[i]));
        ys.extend(drawn.iter().map(|&i| y[i]));
        out[0] = stat.compute(&xs, &ys);
    });
    interval
}

/// Percentile bootstrap intervals of `N` statistics of `n` units, all from the same resamples:
/// each of `resamples` resamples draws n unit indices with replacement from a SplitMix64 stream
/// seeded with `seed`, and `compute(drawn, values)` writes the statistics of the drawn units
/// (`None` where undefined, which skips that resample for that statistic).
///
/// An interval is the `(1 - level) / 2` and `(1 + level) / 2` quantiles of the defined values
/// (linear interpolation, as numpy); `None` when `level` is not in (0, 1), `resamples` or `n`
/// is 0, or fewer than half the resamples were defined. Resampling whole units (documents,
/// trajectories) rather than positions keeps the dependence between positions of one unit, so
/// the interval says how much a metric would move on another set of units like these.
pub fn bootstrap_intervals<const N: usize>(
    n: usize,
    resamples: usize,
    level: f64,
    seed: u64,
    mut compute: impl FnMut(&[usize], &mut [Option<f64>; N]),
) -> [Option<Interval>; N] {
    if !(level > 0.0 && level < 1.0) || resamples == 0 || n == 0 {
        return [None; N];
    }
    let mut rng = SplitMix64(seed);
    let mut drawn = vec![0; n];
    let mut values: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(resamples));
    for _ in 0..resamples {
        drawn.iter_mut().for_each(|d| *d = rng.below(n));
        let mut out = [None; N];
        compute(&drawn, &mut out);
        for (v, o) in values.iter_mut().zip(out) {
            v.extend(o);
        }
    }
    let alpha = (1.0 - level) / 2.0;
    values.map(|mut v| {
        if v.len() * 2 < resamples {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Interval {
            low: quantile_sorted(&v, alpha),
            high: quantile_sorted(&v, 1.0 - alpha),
            resamples_used: v.len(),
        })
    })
}

/// The statistic recomputed with each point left out in turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LooSummary {
    /// Smallest and largest defined leave-one-out value; `None` when none is defined.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `values[i]`: the statistic without point i.
    pub values: Vec<Option<f64>>,
    /// How many defined `values` lack the sign of the statistic on all points (a value of
    /// exactly 0 counts: it has lost the sign); 0 when that statistic is undefined or 0.
    pub sign_flips: usize,
}

fn signum0(v: f64) -> i8 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// Leave-one-out values of `stat`, to show how much one checkpoint carries the result. If the
/// slices differ in length, `values` is empty and `min`/`max` are `None`.
pub fn leave_one_out(x: &[f64], y: &[f64], stat: Correlation) -> LooSummary {
    let full = stat.compute(x, y);
    let values: Vec<Option<f64>> = if x.len() != y.len() {
        Vec::new()
    } else {
        (0..x.len())
            .map(|i| {
                let xs: Vec<f64> = [&x[..i], &x[i + 1..]].concat();
                let ys: Vec<f64> = [&y[..i], &y[i + 1..]].concat();
                stat.compute(&xs, &ys)
            })
            .collect()
    };
    let defined = values.iter().flatten();
    let min = defined.clone().copied().reduce(f64::min);
    let max = defined.clone().copied().reduce(f64::max);
    let sign_flips = match full {
        Some(f) if f != 0.0 => defined.filter(|v| signum0(**v) != signum0(f)).count(),
        _ => 0,
    };
    LooSummary {
        min,
        max,
        values,
        sign_flips,
    }
}

/// A two-sided permutation test of "no association".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PermutationTest {
    pub p_value: f64,
    /// Pairings evaluated: n! when `exact`, otherwise [`MONTE_CARLO_PERMUTATIONS`].
    pub permutations: usize,
    /// True when all n! pairings of y with x were enumerated.
    pub exact: bool,
}

/// Evaluates `stat` for re-pairings of `y` with a fixed `x`. Permuting y leaves each side's
/// centring, scale and tie counts unchanged, so only a numerator changes.
enum PermutationKernel {
    /// Pearson (on values) or Spearman (on average ranks): `a . b_perm / (|a| |b|)`. For ranks the
    /// centred values are multiples of 1/2, so the numerator is exact and equal statistics compare
    /// equal.
    Dot { a: Vec<f64>, norm: f64 },
    /// Kendall: `sum_{i<j} sign(x_i - x_j) sign(y_i - y_j) / denom`, an integer numerator.
    Kendall { x: Vec<f64>, denom: f64 },
}

impl PermutationKernel {
    /// The kernel and the transformed y that gets permuted.
    fn new(x: &[f64], y: &[f64], stat: Correlation) -> Option<(Self, Vec<f64>)> {
        stat.compute(x, y)?;
        match stat {
            Correlation::Pearson | Correlation::Spearman => {
                let (a, b) = if stat == Correlation::Pearson {
                    (
                        unit_deviations(&rescaled(x))?,
                        unit_deviations(&rescaled(y))?,
                    )
                } else {
                    let centred = |v: &[f64]| -> Vec<f64> {
                        let c = (v.len() + 1) as f64 / 2.0;
                        average_ranks(v).into_iter().map(|r| r - c).collect()
                    };
                    (centred(x), centred(y))
                };
                let sq = |v: &[f64]| v.iter().map(|t| t * t).sum::<f64>();
                let norm = (sq(&a) * sq(&b)).sqrt();
                Some((PermutationKernel::Dot { a, norm }, b))
            }
            Correlation::Kendall => {
                let n = x.len() as i64;
                let (_, tx, ty) = kendall_counts(x, y);
                let pairs = n * (n - 1) / 2;
                let denom = (((pairs - tx) * (pairs - ty)) as f64).sqrt();
                let x = x.to_vec();
                Some((PermutationKernel::Kendall { x, denom }, y.to_vec()))
            }
        }
    }

    fn eval(&self, b: &[f64]) -> f64 {
        match self {
            PermutationKernel::Dot { a, norm } => {
                a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>() / norm
            }
            PermutationKernel::Kendall { x, denom } => kendall_counts(x, b).0 as f64 / denom,
        }
    }

    /// Swaps `b[p]` and `b[q]` (p != q) and returns the statistic after the swap. `kendall_s`
    /// carries Kendall's integer numerator from call to call (start it at `None`): only the pairs
    /// touching p or q change, so a swap costs O(n) instead of O(n^2).
    fn swap_eval(&self, b: &mut [f64], p: usize, q: usize, kendall_s: &mut Option<i64>) -> f64 {
        match self {
            PermutationKernel::Dot { .. } => {
                b.swap(p, q);
                self.eval(b)
            }
            PermutationKernel::Kendall { x, denom } => {
                // Pairs (p, k) and (q, k) over all k; (p, p) and (q, q) add 0, (p, q) is counted
                // twice and taken off once.
                let pair = |b: &[f64], i: usize, j: usize| sgn(x[i], x[j]) * sgn(b[i], b[j]);
                let touching = |b: &[f64]| -> i64 {
                    let mut t = -pair(b, p, q);
                    for k in 0..b.len() {
                        t += pair(b, p, k) + pair(b, q, k);
                    }
                    t
                };
                let s = kendall_s.get_or_insert_with(|| kendall_counts(x, b).0);
                *s -= touching(b);
                b.swap(p, q);
                *s += touching(b);
                *s as f64 / denom
            }
        }
    }
}

/// Two-sided permutation p-value of `stat`: how often re-pairing the y values with the x values at
/// random gives a statistic at least as extreme, as `scipy.stats.permutation_test(...,
/// permutation_type="pairings", alternative="two-sided")`: `p = min(1, 2 min(P(T <= t),
/// P(T >= t)))`, comparisons with a relative slack of 100 machine epsilons.
///
/// Up to [`EXACT_PERMUTATION_MAX_N`] points all n! pairings are enumerated (exact; the observed
/// pairing counts itself); above, [`MONTE_CARLO_PERMUTATIONS`] random pairings from a SplitMix64
/// stream seeded with `seed` are drawn and each tail is `(hits + 1) / (draws + 1)`. The exact test
/// with 10 points takes well under a second (each pairing is one swap away from the previous
/// one); a Monte Carlo Kendall costs O(n^2) per pairing. `None` when `stat` is undefined.
///
/// The smallest p-value n points can give is 2 / n! (two-sided): 0.33 for 3 points, 0.083 for 4,
/// so no 4-point result is significant at 5%.
pub fn permutation_test(
    x: &[f64],
    y: &[f64],
    stat: Correlation,
    seed: u64,
) -> Option<PermutationTest> {
    let (kernel, mut b) = PermutationKernel::new(x, y, stat)?;
    let observed = kernel.eval(&b);
    let gamma = (observed * 100.0 * f64::EPSILON).abs();
    let (mut less, mut greater, mut total) = (0usize, 0usize, 0usize);
    let mut tally = |v: f64| {
        less += usize::from(v <= observed + gamma);
        greater += usize::from(v >= observed - gamma);
        total += 1;
    };
    let n = b.len();
    let exact = n <= EXACT_PERMUTATION_MAX_N;
    if exact {
        // Heap's algorithm, iterative: every permutation of b exactly once, one swap apart.
        tally(kernel.eval(&b));
        let mut kendall_s = None;
        let mut c = vec![0usize; n];
        let mut i = 1;
        while i < n {
            if c[i] < i {
                let k = if i % 2 == 0 { 0 } else { c[i] };
                tally(kernel.swap_eval(&mut b, k, i, &mut kendall_s));
                c[i] += 1;
                i = 1;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
    } else {
        let mut rng = SplitMix64(seed);
        for _ in 0..MONTE_CARLO_PERMUTATIONS {
            for i in (1..n).rev() {
                b.swap(i, rng.below(i + 1));
            }
            tally(kernel.eval(&b));
        }
    }
    let adjust = usize::from(!exact);
    let tail = |hits: usize| (hits + adjust) as f64 / (total + adjust) as f64;
    let p_value = (2.0 * tail(less).min(tail(greater))).min(1.0);
    Some(PermutationTest {
        p_value,
        permutations: total,
        exact,
    })
}

/// Everything [`correlate`] reports about one coefficient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorrelationSummary {
    pub statistic: Correlation,
    pub value: Option<f64>,
    /// [`CI_LEVEL`] percentile bootstrap interval from [`CI_RESAMPLES`] resamples.
    pub ci95: Option<Interval>,
    pub permutation: Option<PermutationTest>,
    pub leave_one_out: LooSummary,
}

impl CorrelationSummary {
    fn new(x: &[f64], y: &[f64], statistic: Correlation, seed: u64) -> Self {
        CorrelationSummary {
            statistic,
            value: statistic.compute(x, y),
            ci95: bootstrap_ci(x, y, statistic, CI_RESAMPLES, CI_LEVEL, seed),
            permutation: permutation_test(x, y, statistic, seed),
            leave_one_out: leave_one_out(x, y, statistic),
        }
    }
}

/// Correlations of a metric `x` with a downstream score `y` over the same checkpoints, with a
/// verdict for a person.
///
/// # Verdict rule
/// `conclusive` is true only when all of these hold; otherwise `note` names every one that fails
/// and ends "add checkpoints before concluding":
/// 1. x and y have the same length n >= [`MIN_POINTS`] and every value is finite;
/// 2. Spearman and Kendall are both defined (neither the metric nor the score is constant) and
///    have the same, non-zero sign;
/// 3. for both, the 95% bootstrap interval is defined and excludes 0;
/// 4. for both, leaving out any one point never changes the sign;
/// 5. for both, the two-sided permutation p-value is below [`SIGNIFICANCE`] (this is what keeps
///    4 points, or 5 with one swapped pair, from passing on an optimistic bootstrap interval).
///
/// The verdict rests on the rank statistics because the question is whether the metric orders
/// checkpoints as the downstream score does; Pearson is reported alongside (it is swayed by one
/// outlier and penalises monotone but curved relations). A negative association is as useful as
/// a positive one (PPL falls as scores rise); the note says which it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorrelationReport {
    pub n: usize,
    pub pearson: CorrelationSummary,
    pub spearman: CorrelationSummary,
    pub kendall: CorrelationSummary,
    pub conclusive: bool,
    pub note: String,
}

impl CorrelationReport {
    pub fn get(&self, stat: Correlation) -> &CorrelationSummary {
        match stat {
            Correlation::Pearson => &self.pearson,
            Correlation::Spearman => &self.spearman,
            Correlation::Kendall => &self.kendall,
        }
    }
}

fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_string()
    } else {
        format!("= {p:.3}")
    }
}

fn fmt_interval(ci: &Interval) -> String {
    format!("[{:.2}, {:.2}]", ci.low, ci.high)
}

/// Scores `x` (a metric per checkpoint) against `y` (the downstream score of the same checkpoints)
/// with all three coefficients and applies the verdict rule of [`CorrelationReport`]. `seed` drives
/// the bootstrap (the same stream for the three coefficients) and, above
/// [`EXACT_PERMUTATION_MAX_N`] points, the permutation test.
pub fn correlate(x: &[f64], y: &[f64], seed: u64) -> CorrelationReport {
    let n = x.len();
    let [pearson, spearman, kendall] =
        Correlation::ALL.map(|c| CorrelationSummary::new(x, y, c, seed));
    let ranked = [&spearman, &kendall];
    let mut reasons: Vec<String> = Vec::new();
    if x.len() != y.len() {
        reasons.push(format!(
            "the metric has {} values but the score has {}",
            x.len(),
            y.len()
        ));
    } else if let Some(i) = x
        .iter()
        .zip(y)
        .position(|(a, b)| !a.is_finite() || !b.is_finite())
    {
        reasons.push(format!("point {} is not a finite number", i + 1));
    } else if n < MIN_POINTS {
        reasons.push(format!(
            "too few points to judge a correlation (at least {MIN_POINTS}, better 6 or more)"
        ));
    } else if is_constant(x) {
        reasons.push("the metric is the same at every point, so it cannot rank them".to_string());
    } else if is_constant(y) {
        reasons.push(
            "the score is the same at every point, so there is nothing to predict".to_string(),
        );
    } else {
        let signs: Vec<i8> = ranked.iter().map(|s| s.value.map_or(0, signum0)).collect();
        if signs[0] == 0 || signs[0] != signs[1] {
            reasons.push(format!(
                "Spearman ({}) and Kendall ({}) do not agree on a direction",
                spearman
                    .value
                    .map_or("undefined".to_string(), |v| format!("{v:.2}")),
                kendall
                    .value
                    .map_or("undefined".to_string(), |v| format!("{v:.2}")),
            ));
        }
        let wide: Vec<String> = ranked
            .iter()
            .filter_map(|s| match &s.ci95 {
                Some(ci) if ci.contains_zero() => {
                    Some(format!("{} {}", s.statistic, fmt_interval(ci)))
                }
                Some(_) => None,
                None => Some(format!(
                    "{} (no interval: too many degenerate resamples)",
                    s.statistic
                )),
            })
            .collect();
        if !wide.is_empty() {
            let verb = if wide.len() == 1 {
                "includes"
            } else {
                "include"
            };
            reasons.push(format!(
                "the 95% interval of {} {verb} 0",
                wide.join(" and ")
            ));
        }
        let flips: Vec<String> = ranked
            .iter()
            .filter(|s| s.leave_one_out.sign_flips > 0)
            .map(|s| {
                let points: Vec<String> = s
                    .leave_one_out
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_some_and(|v| Some(signum0(v)) != s.value.map(signum0)))
                    .map(|(i, _)| (i + 1).to_string())
                    .collect();
                let noun = if points.len() == 1 { "point" } else { "points" };
                format!("{} (leaving out {noun} {})", s.statistic, points.join(", "))
            })
            .collect();
        if !flips.is_empty() {
            reasons.push(format!(
                "one point decides the sign of {}",
                flips.join(" and ")
            ));
        }
        let weak: Vec<String> = ranked
            .iter()
            .filter_map(|s| match &s.permutation {
                Some(t) if t.p_value >= SIGNIFICANCE => {
                    Some(format!("{} p {}", s.statistic, fmt_p(t.p_value)))
                }
                Some(_) => None,
                None => Some(format!("{} p undefined", s.statistic)),
            })
            .collect();
        if !weak.is_empty() {
            reasons.push(format!(
                "random pairings of these {n} points are often this strong ({}; needs < {SIGNIFICANCE})",
                weak.join(", ")
            ));
        }
    }
    let conclusive = reasons.is_empty();
    let note = if conclusive {
        let show = |s: &CorrelationSummary| {
            format!(
                "{} {:.2} {}",
                s.statistic,
                s.value.unwrap_or(0.0),
                s.ci95.as_ref().map_or(String::new(), fmt_interval)
            )
        };
        let p = ranked
            .iter()
            .filter_map(|s| s.permutation.map(|t| t.p_value))
            .fold(0.0f64, f64::max);
        let direction = if spearman.value.is_some_and(|v| v > 0.0) {
            "positive: the score rises with the metric"
        } else {
            "negative: the score falls as the metric rises"
        };
        format!(
            "n = {n}: {direction}; {}, {} (95% bootstrap), permutation p {}, same sign with any one point left out",
            show(&spearman),
            show(&kendall),
            fmt_p(p)
        )
    } else {
        format!(
            "n = {n}: {}; add checkpoints before concluding",
            reasons.join("; ")
        )
    };
    CorrelationReport {
        n,
        pearson,
        spearman,
        kendall,
        conclusive,
        note,
    }
}

/// Ordinary least-squares line `y = slope * x + intercept` and its R^2, as
/// `scipy.stats.linregress` (`r2 = rvalue^2`). `None` when the slices differ in length, have fewer
/// than 2 points, hold a non-finite value, or x is constant. A constant y gives slope 0, intercept
/// y, and R^2 0 (scipy's convention: there is no variance to explain).
pub fn linear_fit(x: &[f64], y: &[f64]) -> Option<(f64, f64, f64)> {
    if !usable(x, y) || is_constant(x) {
        return None;
    }
    if is_constant(y) {
        return Some((0.0, y[0], 0.0));
    }
    let (mx, my) = (mean(x), mean(y));
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxx += (a - mx) * (a - mx);
        sxy += (a - mx) * (b - my);
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r = pearson(x, y)?;
    let fit = (slope, intercept, r * r);
    (slope.is_finite() && intercept.is_finite()).then_some(fit)
}

/// The longest flat stretch of a threshold sweep.
///
/// `values` are `(threshold, value)` points in sweep order; only the values are tested (the
/// thresholds ride along so a sweep can be passed as is). A run of consecutive points `i..=j`
/// (at least 2 points) is flat when every value `v` in it satisfies `|v - m| <= tolerance * |m|`,
/// `m` the mean of the run's values, i.e. all values lie within a relative band of the run's mean;
/// a run of identical values is always flat. Returns `(i, j)`, inclusive, of the longest flat run,
/// the earliest on a tie. `None` when there are fewer than 2 points, `tolerance` is negative or not
/// finite, a value is not finite, or no two neighbouring points are flat together.
pub fn plateau(values: &[(f64, f64)], tolerance: f64) -> Option<(usize, usize)> {
    if values.len() < 2 || !(tolerance >= 0.0 && tolerance.is_finite()) {
        return None;
    }
    if values.iter().any(|(_, v)| !v.is_finite()) {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    for i in 0..values.len() {
        let (mut lo, mut hi, mut sum) = (values[i].1, values[i].1, values[i].1);
        for (j, &(_, v)) in values.iter().enumerate().skip(i + 1) {
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v;
            let m = sum / (j - i + 1) as f64;
            let band = tolerance * m.abs();
            let flat = lo == hi || (hi - m <= band && m - lo <= band);
            let longer = best.is_none_or(|(a, b)| j - i > b - a);
            if flat && longer {
                best = Some((i, j));
            }
        }
    }
    best
}

/// Holm's step-down adjustment of p-values for testing several hypotheses at once (here: several
/// metrics against one downstream score). Sorted ascending, the i-th smallest (0-based) of m
/// defined p-values becomes max over j <= i of min(1, (m - j) p_(j)); undefined p-values stay
/// undefined and do not count in m. Controls the family-wise error rate without assuming
/// independence (metrics computed from the same positions are strongly dependent).
pub fn holm(p: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_some()).collect();
    order.sort_by(|&a, &b| p[a].unwrap().total_cmp(&p[b].unwrap()));
    let m = order.len();
    let mut out = vec![None; p.len()];
    let mut running = 0f64;
    for (j, &i) in order.iter().enumerate() {
        let adjusted = ((m - j) as f64 * p[i].unwrap()).min(1.0);
        running = running.max(adjusted);
        out[i] = Some(running);
    }
    out
}

/// The smallest two-sided permutation p-value `n` points can give (2 / n!, at most 1).
pub fn smallest_permutation_p(n: usize) -> f64 {
    let mut f = 1f64;
    for i in 2..=n {
        f *= i as f64;
    }
    (2.0 / f).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_rel(actual: f64, expected: f64, what: &str) {
        let tol = 1e-12 * expected.abs();
        assert!(
            (actual - expected).abs() <= tol,
            "{what}: got {actual:?}, expected {expected:?}"
        );
    }

    /// One dataset of scripts/stats_reference.py with the values it printed.
    struct Reference {
        name: &'static str,
        x: &'static [f64],
        y: &'static [f64],
        pearson: f64,
        spearman: f64,
        kendall: f64,
        ranks_x: &'static [f64],
        ranks_y: &'static [f64],
        slope: f64,
        intercept: f64,
        r2: f64,
        /// Exact two-sided permutation p-values: Pearson, Spearman, Kendall.
        p: [f64; 3],
    }

    /// Printed by `python3 scripts/stats_reference.py` with scipy 1.17.1, numpy 2.4.6.
    const REFERENCES: &[Reference] = &[
        Reference {
            name: "no_ties",
            x: &[1.2, 2.5, 3.1, 4.8, 5.0, 6.7, 7.3],
            y: &[2.1, 2.0, 3.9, 4.2, 6.1, 5.8, 8.0],
            pearson: 0.9276728729534541,
            spearman: 0.9285714285714288,
            kendall: 0.8095238095238096,
            ranks_x: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ranks_y: &[2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0],
            slope: 0.9143940848857307,
            intercept: 0.5885058574995186,
            r2: 0.860576959213715,
            p: [
                0.0031746031746031746,
                0.006746031746031746,
                0.010714285714285714,
            ],
        },
        Reference {
            name: "ties_x",
            x: &[1.0, 2.0, 2.0, 3.5, 5.0, 5.0, 5.0, 6.0],
            y: &[0.3, 0.9, 0.4, 1.7, 1.1, 2.5, 1.9, 2.2],
            pearson: 0.8525776279816777,
            spearman: 0.8715757936489196,
            kendall: 0.7715167498104596,
            ranks_x: &[1.0, 2.5, 2.5, 4.0, 6.0, 6.0, 6.0, 8.0],
            ranks_y: &[1.0, 3.0, 2.0, 5.0, 4.0, 8.0, 6.0, 7.0],
            slope: 0.38295605858854864,
            intercept: -0.037150466045273056,
            r2: 0.726888611734864,
            p: [
                0.01488095238095238,
                0.008333333333333333,
                0.009523809523809525,
            ],
        },
        Reference {
            name: "ties_both",
            x: &[1.0, 1.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 5.0],
            y: &[10.0, 12.0, 12.0, 11.0, 14.0, 14.0, 13.0, 15.0, 12.0],
            pearson: 0.5765566601970552,
            spearman: 0.5589572944829352,
            kendall: 0.4445004445006667,
            ranks_x: &[1.5, 1.5, 3.0, 5.0, 5.0, 5.0, 7.0, 8.5, 8.5],
            ranks_y: &[1.0, 4.0, 4.0, 2.0, 7.5, 7.5, 6.0, 9.0, 4.0],
            slope: 0.611111111111111,
            intercept: 10.722222222222221,
            r2: 0.33241758241758235,
            p: [0.1246031746031746, 0.12447089947089947, 0.1394179894179894],
        },
        Reference {
            name: "n3",
            x: &[1.0, 2.0, 3.0],
            y: &[2.0, 1.0, 3.0],
            pearson: 0.4999999999999999,
            spearman: 0.5,
            kendall: 0.33333333333333337,
            ranks_x: &[1.0, 2.0, 3.0],
            ranks_y: &[2.0, 1.0, 3.0],
            slope: 0.5,
            intercept: 1.0,
            r2: 0.25,
            p: [1.0, 1.0, 1.0],
        },
        Reference {
            name: "monotone",
            x: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            // e^1 .. e^6 (math.exp in the script; these literals are the same f64s).
            y: &[
                std::f64::consts::E,
                7.38905609893065,
                20.085536923187668,
                54.598150033144236,
                148.4131591025766,
                403.4287934927351,
            ],
            pearson: 0.8467865088853485,
            spearman: 1.0,
            kendall: 0.9999999999999999,
            ranks_x: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ranks_y: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            slope: 70.31821372692214,
            intercept: -140.00825179772193,
            r2: 0.7170473916302369,
            p: [
                0.002777777777777778,
                0.002777777777777778,
                0.002777777777777778,
            ],
        },
        Reference {
            name: "anti",
            x: &[0.5, 1.5, 2.0, 3.2, 4.1, 5.5, 6.0],
            y: &[9.1, 8.7, 8.9, 6.5, 5.0, 5.2, 3.3],
            pearson: -0.9547849417923012,
            spearman: -0.9285714285714288,
            kendall: -0.8095238095238096,
            ranks_x: &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ranks_y: &[7.0, 5.0, 6.0, 4.0, 2.0, 3.0, 1.0],
            slope: -1.057619154173193,
            intercept: 10.116245245021256,
            r2: 0.9116142850733286,
            p: [
                0.001984126984126984,
                0.006746031746031746,
                0.010714285714285714,
            ],
        },
        Reference {
            name: "paper_hesnr",
            x: &[0.412, 0.455, 0.431, 0.489, 0.502, 0.517, 0.526, 0.541],
            y: &[18.2, 21.4, 20.0, 24.6, 25.2, 27.8, 27.4, 29.6],
            pearson: 0.9933452119886765,
            spearman: 0.9761904761904763,
            kendall: 0.9285714285714285,
            ranks_x: &[1.0, 3.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            ranks_y: &[1.0, 3.0, 2.0, 4.0, 5.0, 7.0, 6.0, 8.0],
            slope: 86.1456178084544,
            intercept: -17.430247221517995,
            r2: 0.9867347101808283,
            p: [
                9.92063492063492e-05,
                0.0003968253968253968,
                0.0003968253968253968,
            ],
        },
        Reference {
            name: "paper_ppl",
            x: &[2.31, 2.18, 2.35, 2.09, 2.05, 2.02, 1.99, 1.97],
            y: &[18.2, 21.4, 20.0, 24.6, 25.2, 27.8, 27.4, 29.6],
            pearson: -0.956346934321885,
            spearman: -0.9523809523809524,
            kendall: -0.8571428571428571,
            ranks_x: &[7.0, 6.0, 8.0, 5.0, 4.0, 3.0, 2.0, 1.0],
            ranks_y: &[1.0, 3.0, 2.0, 4.0, 5.0, 7.0, 6.0, 8.0],
            slope: -26.671177266576446,
            intercept: 80.81789580514206,
            r2: 0.9145994587868677,
            p: [
                0.0005456349206349206,
                0.001140873015873016,
                0.001736111111111111,
            ],
        },
    ];

    #[test]
    fn matches_scipy_point_estimates() {
        for r in REFERENCES {
            let name = r.name;
            assert_rel(
                pearson(r.x, r.y).unwrap(),
                r.pearson,
                &format!("{name} pearson"),
            );
            assert_rel(
                spearman(r.x, r.y).unwrap(),
                r.spearman,
                &format!("{name} spearman"),
            );
            assert_rel(
                kendall_tau_b(r.x, r.y).unwrap(),
                r.kendall,
                &format!("{name} kendall"),
            );
            assert_eq!(average_ranks(r.x), r.ranks_x, "{name} ranks x");
            assert_eq!(average_ranks(r.y), r.ranks_y, "{name} ranks y");
            let (slope, intercept, r2) = linear_fit(r.x, r.y).unwrap();
            assert_rel(slope, r.slope, &format!("{name} slope"));
            assert_rel(intercept, r.intercept, &format!("{name} intercept"));
            assert_rel(r2, r.r2, &format!("{name} r2"));
        }
    }

    #[test]
    fn matches_scipy_exact_permutation_p_values() {
        for r in REFERENCES {
            for (stat, expected) in Correlation::ALL.into_iter().zip(r.p) {
                let t = permutation_test(r.x, r.y, stat, 7).unwrap();
                assert!(t.exact);
                let n_fact: usize = (1..=r.x.len()).product();
                assert_eq!(t.permutations, n_fact);
                assert_rel(t.p_value, expected, &format!("{} {stat} p", r.name));
            }
        }
    }

    #[test]
    fn hand_computed_small_cases() {
        // x = [1, 2, 3], y = [1, 2, 4]: deviations (-1, 0, 1) and (-4/3, -1/3, 5/3);
        // Sxy = 4/3 + 5/3 = 3, Sxx = 2, Syy = 42/9, r = 3 / sqrt(2 * 42/9) = sqrt(27/28).
        assert_rel(
            pearson(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]).unwrap(),
            (27.0f64 / 28.0).sqrt(),
            "pearson",
        );

        // n = 3 with one tie: x = [1, 2, 2], y = [1, 3, 2].
        // Pairs (1,2): x up, y up, concordant. (1,3): x up, y up, concordant.
        // (2,3): tied in x (not in y). So C - D = 2, pairs = 3, ties_x = 1, ties_y = 0 and
        // tau-b = 2 / sqrt((3 - 1) * (3 - 0)) = 2 / sqrt(6).
        let (x, y) = ([1.0, 2.0, 2.0], [1.0, 3.0, 2.0]);
        assert_rel(
            kendall_tau_b(&x, &y).unwrap(),
            2.0 / 6.0f64.sqrt(),
            "kendall",
        );
        // Ranks x = (1, 2.5, 2.5), y = (1, 3, 2); centred (-1, .5, .5), (-1, 1, 0):
        // rho = 1.5 / sqrt(1.5 * 2) = sqrt(3) / 2.
        assert_eq!(average_ranks(&x), vec![1.0, 2.5, 2.5]);
        assert_rel(spearman(&x, &y).unwrap(), 3.0f64.sqrt() / 2.0, "spearman");

        // Two points: always +-1.
        assert_eq!(pearson(&[0.0, 1.0], &[5.0, 3.0]), Some(-1.0));
        assert_eq!(kendall_tau_b(&[0.0, 1.0], &[5.0, 3.0]), Some(-1.0));

        // Ties in both, including a pair tied in both: x = [1, 1, 2], y = [1, 1, 2].
        // Pair (1,2) tied in both; (1,3), (2,3) concordant: C - D = 2, ties 1 and 1:
        // tau-b = 2 / sqrt(2 * 2) = 1.
        assert_eq!(kendall_tau_b(&[1.0, 1.0, 2.0], &[1.0, 1.0, 2.0]), Some(1.0));
        // -0.0 and 0.0 are one value.
        assert_eq!(average_ranks(&[0.0, -0.0, 1.0]), vec![1.5, 1.5, 3.0]);
    }

    #[test]
    fn undefined_cases_are_none() {
        for stat in Correlation::ALL {
            let c = |x: &[f64], y: &[f64]| stat.compute(x, y);
            assert_eq!(c(&[], &[]), None, "{stat} empty");
            assert_eq!(c(&[1.0], &[2.0]), None, "{stat} one point");
            assert_eq!(c(&[1.0, 2.0, 3.0], &[1.0, 2.0]), None, "{stat} lengths");
            assert_eq!(
                c(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]),
                None,
                "{stat} constant x"
            );
            assert_eq!(
                c(&[1.0, 2.0, 3.0], &[0.1, 0.1, 0.1]),
                None,
                "{stat} constant y"
            );
            assert_eq!(
                c(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0]),
                None,
                "{stat} NaN"
            );
            assert_eq!(
                c(&[1.0, 2.0, 3.0], &[1.0, f64::INFINITY, 3.0]),
                None,
                "{stat} inf"
            );
            assert_eq!(
                bootstrap_ci(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0], stat, 100, 0.95, 1),
                None
            );
            assert_eq!(
                bootstrap_ci(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], stat, 100, 1.0, 1),
                None
            );
            assert_eq!(
                bootstrap_ci(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], stat, 0, 0.95, 1),
                None
            );
            assert_eq!(permutation_test(&[1.0, 2.0], &[3.0, 3.0], stat, 1), None);
        }
        assert_eq!(linear_fit(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert_eq!(linear_fit(&[1.0], &[1.0]), None);
        assert_eq!(
            linear_fit(&[1.0, 2.0, 3.0], &[4.0, 4.0, 4.0]),
            Some((0.0, 4.0, 0.0))
        );
    }

    #[test]
    fn extreme_magnitudes_do_not_overflow() {
        let x = [1e300, 2e300, 3e300, -1e300];
        let y = [1e-300, 3e-300, 2e-300, 0.0];
        let scaled_x = [1.0, 2.0, 3.0, -1.0];
        let scaled_y = [1.0, 3.0, 2.0, 0.0];
        assert_rel(
            pearson(&x, &y).unwrap(),
            pearson(&scaled_x, &scaled_y).unwrap(),
            "pearson",
        );
        assert_eq!(spearman(&x, &y), spearman(&scaled_x, &scaled_y));
    }

    #[test]
    fn splitmix64_matches_reference_stream() {
        // First outputs of Vigna's splitmix64.c seeded with 0.
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
        let mut r = SplitMix64(42);
        for n in [1, 2, 3, 7, 10] {
            for _ in 0..100 {
                assert!(r.below(n) < n);
            }
        }
    }

    #[test]
    fn bootstrap_is_deterministic_and_sensible() {
        let r = &REFERENCES[6]; // paper_hesnr
        for stat in Correlation::ALL {
            let a = bootstrap_ci(r.x, r.y, stat, 2000, 0.95, 17).unwrap();
            let b = bootstrap_ci(r.x, r.y, stat, 2000, 0.95, 17).unwrap();
            assert_eq!(a, b, "{stat}: same seed, same interval");
            let v = stat.compute(r.x, r.y).unwrap();
            assert!(a.low <= v && v <= a.high, "{stat}: {a:?} misses {v}");
            assert!(a.low > 0.0 && a.high <= 1.0, "{stat}: {a:?}");
            assert!(
                a.resamples_used <= 2000 && a.resamples_used > 1900,
                "{stat}: {a:?}"
            );
            let c = bootstrap_ci(r.x, r.y, stat, 2000, 0.95, 18).unwrap();
            assert_ne!(a, c, "{stat}: another seed draws other resamples");
        }
        // Clean monotone case: every defined resample is monotone, so rank intervals are [1, 1].
        let m = &REFERENCES[4];
        for stat in [Correlation::Spearman, Correlation::Kendall] {
            let ci = bootstrap_ci(m.x, m.y, stat, 500, 0.95, 3).unwrap();
            assert_rel(ci.low, 1.0, &format!("{stat} low"));
            assert_rel(ci.high, 1.0, &format!("{stat} high"));
        }
        // Pins the stream: a change to the generator or the index draw changes these numbers.
        let pinned = bootstrap_ci(r.x, r.y, Correlation::Kendall, 2000, 0.95, 2024).unwrap();
        assert_eq!(pinned, PINNED_KENDALL_CI);
    }

    /// Output of the bootstrap above on this implementation (not scipy: its generator differs).
    const PINNED_KENDALL_CI: Interval = Interval {
        low: 0.6521739130434783,
        high: 1.0,
        resamples_used: 2000,
    };

    #[test]
    fn leave_one_out_by_hand_on_four_points() {
        // x = [1, 2, 3, 4], y = [1, 3, 2, 4]: one discordant pair (points 2 and 3).
        // Kendall: all points 5 concordant - 1 discordant = 4 of 6 pairs, tau = 2/3.
        // Without point 1: (2,3) (3,2) (4,4): pairs d, c, c -> 1/3. Without 2 or 3: all
        // concordant -> 1. Without 4: (1,1) (2,3) (3,2): c, c, d -> 1/3.
        // Spearman (y is a permutation of 1..4, so values are ranks): d = (0, 1, -1, 0),
        // rho = 1 - 6*2/(4*15) = 0.8, and Pearson is the same on all four points.
        // Without point 1: ranks (1,2,3) vs (2,1,3), d = (-1, 1, 0), rho = 1 - 6*2/(3*8) = 0.5;
        // without 2 or 3: monotone, 1; without 4: 0.5.
        // Pearson without point 1 or 4: the values are affine in the ranks, so 0.5 again.
        // Without point 2: x = (1,3,4), y = (1,2,4), deviations (-5,1,4)/3 and (-4,-1,5)/3:
        // Sxy = 39/9, Sxx = Syy = 42/9, r = 13/14. Without point 3: (-4,-1,5)/3 and (-5,1,4)/3,
        // again 13/14.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 3.0, 2.0, 4.0];
        let third = 1.0 / 3.0;
        let k = leave_one_out(&x, &y, Correlation::Kendall);
        assert_rel(kendall_tau_b(&x, &y).unwrap(), 2.0 / 3.0, "tau");
        let expect = [third, 1.0, 1.0, third];
        for (v, e) in k.values.iter().zip(expect) {
            assert_rel(v.unwrap(), e, "kendall loo");
        }
        assert_rel(k.min.unwrap(), third, "min");
        assert_eq!(k.max, Some(1.0));
        assert_eq!(k.sign_flips, 0);
        assert_rel(spearman(&x, &y).unwrap(), 0.8, "rho");
        assert_rel(pearson(&x, &y).unwrap(), 0.8, "r");
        let r1314 = 13.0 / 14.0;
        for (stat, expect) in [
            (Correlation::Spearman, [0.5, 1.0, 1.0, 0.5]),
            (Correlation::Pearson, [0.5, r1314, r1314, 0.5]),
        ] {
            let s = leave_one_out(&x, &y, stat);
            for (v, e) in s.values.iter().zip(expect) {
                assert_rel(v.unwrap(), e, &format!("{stat} loo"));
            }
            assert_eq!(s.sign_flips, 0);
        }

        // x = [1, 2, 3, 4], y = [2, 3, 4, 1]: d = (-1, -1, -1, 3), rho = 1 - 6*12/60 = -0.2.
        // Leaving out point 4 leaves (1,2) (2,3) (3,4): rho = 1, the sign flips. Leaving out any
        // other leaves ranks like (1,2,3) vs (2,3,1): d = (-1, -1, 2), rho = 1 - 36/24 = -0.5.
        let y = [2.0, 3.0, 4.0, 1.0];
        let s = leave_one_out(&x, &y, Correlation::Spearman);
        assert_rel(spearman(&x, &y).unwrap(), -0.2, "rho");
        for (v, e) in s.values.iter().zip([-0.5, -0.5, -0.5, 1.0]) {
            assert_rel(v.unwrap(), e, "spearman loo");
        }
        assert_eq!(s.sign_flips, 1);
        assert_eq!((s.min, s.max), (Some(-0.5), Some(1.0)));

        // Undefined leave-one-out values are kept as None and not counted as flips.
        let s = leave_one_out(&[1.0, 2.0, 2.0], &[1.0, 2.0, 3.0], Correlation::Pearson);
        assert_eq!(s.values[0], None);
        assert_eq!(s.sign_flips, 0);
        assert!(leave_one_out(&[1.0], &[1.0, 2.0], Correlation::Kendall)
            .values
            .is_empty());
    }

    #[test]
    fn permutation_test_small_and_monte_carlo() {
        // Four perfectly ordered points: 2 of 24 pairings are as extreme, p = 1/12.
        let x = [1.0, 2.0, 3.0, 4.0];
        for stat in [Correlation::Spearman, Correlation::Kendall] {
            let t = permutation_test(&x, &x, stat, 0).unwrap();
            assert_rel(t.p_value, 2.0 / 24.0, "p");
        }
        // Above the exact limit: Monte Carlo, deterministic by seed, and small for a clean trend.
        let x: Vec<f64> = (0..12).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v * 2.0 + (v * 7.0).sin()).collect();
        let a = permutation_test(&x, &y, Correlation::Kendall, 5).unwrap();
        assert!(!a.exact);
        assert_eq!(a.permutations, MONTE_CARLO_PERMUTATIONS);
        assert_eq!(
            a,
            permutation_test(&x, &y, Correlation::Kendall, 5).unwrap()
        );
        assert_rel(
            a.p_value,
            2.0 / (MONTE_CARLO_PERMUTATIONS + 1) as f64,
            "p floor",
        );
    }

    #[test]
    fn correlate_verdicts() {
        let hesnr = &REFERENCES[6];
        let rep = correlate(hesnr.x, hesnr.y, 1);
        assert!(rep.conclusive, "{}", rep.note);
        assert_eq!(rep.n, 8);
        assert!(rep.note.starts_with("n = 8: positive"), "{}", rep.note);
        assert_rel(rep.spearman.value.unwrap(), hesnr.spearman, "rho");
        assert_eq!(
            rep.kendall.ci95.unwrap().resamples_used,
            rep.kendall.ci95.unwrap().resamples_used
        );

        let ppl = &REFERENCES[7];
        let rep = correlate(ppl.x, ppl.y, 1);
        assert!(rep.conclusive, "{}", rep.note);
        assert!(rep.note.starts_with("n = 8: negative"), "{}", rep.note);

        // Ties-both data: moderate and not significant.
        let t = &REFERENCES[2];
        let rep = correlate(t.x, t.y, 1);
        assert!(!rep.conclusive);
        assert!(
            rep.note.contains("Kendall [-0.17, 0.89] include 0"),
            "{}",
            rep.note
        );
        assert!(
            rep.note.ends_with("add checkpoints before concluding"),
            "{}",
            rep.note
        );

        let rep = correlate(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 1);
        assert!(!rep.conclusive);
        assert!(
            rep.note.starts_with("n = 3: too few points"),
            "{}",
            rep.note
        );

        // Four monotone points: bootstrap [1, 1], yet p = 0.083.
        let rep = correlate(&[1.0, 2.0, 3.0, 4.0], &[2.0, 3.0, 5.0, 9.0], 1);
        assert!(!rep.conclusive);
        assert!(rep.note.contains("p = 0.083"), "{}", rep.note);

        // One point decides the sign: Spearman -0.2, +1 without point 4 (Kendall is 0).
        let rep = correlate(&[1.0, 2.0, 3.0, 4.0], &[2.0, 3.0, 4.0, 1.0], 1);
        assert!(!rep.conclusive);
        assert!(
            rep.note.contains("Spearman (leaving out point 4)"),
            "{}",
            rep.note
        );
        assert!(
            rep.note.contains("do not agree on a direction"),
            "{}",
            rep.note
        );
        assert_eq!(rep.kendall.leave_one_out.sign_flips, 0);

        let rep = correlate(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0], 1);
        assert!(
            !rep.conclusive && rep.note.contains("4 values but the score has 3"),
            "{}",
            rep.note
        );
        let rep = correlate(&[1.0, 2.0, f64::NAN, 4.0], &[1.0, 2.0, 3.0, 4.0], 1);
        assert!(
            !rep.conclusive && rep.note.contains("point 3 is not a finite"),
            "{}",
            rep.note
        );
        let rep = correlate(&[1.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0], 1);
        assert!(
            !rep.conclusive && rep.note.contains("metric is the same"),
            "{}",
            rep.note
        );
        assert_eq!(rep.spearman.value, None);

        // Serializes without NaN (serde_json would write null for it anyway: check the shape).
        let json = serde_json::to_value(correlate(hesnr.x, hesnr.y, 1)).unwrap();
        assert_eq!(json["kendall"]["statistic"], "kendall");
        assert!(json["spearman"]["ci95"]["low"].is_f64());
        assert!(json["pearson"]["leave_one_out"]["values"].is_array());
    }

    #[test]
    fn plateau_examples() {
        let sweep = |v: &[f64]| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(i, v)| (i as f64 * 0.5, *v))
                .collect()
        };
        // Rises, holds within 2% over points 2..=5, then falls.
        let s = sweep(&[0.2, 0.5, 0.80, 0.81, 0.79, 0.80, 0.6, 0.3]);
        assert_eq!(plateau(&s, 0.02), Some((2, 5)));
        assert_eq!(plateau(&s, 0.0), None);
        // Identical values are flat even with tolerance 0; the earliest of equal runs wins.
        let s = sweep(&[0.1, 0.1, 0.5, 0.7, 0.7]);
        assert_eq!(plateau(&s, 0.0), Some((0, 1)));
        assert_eq!(plateau(&sweep(&[1.0]), 0.1), None);
        assert_eq!(plateau(&sweep(&[1.0, f64::NAN]), 0.1), None);
        assert_eq!(plateau(&sweep(&[1.0, 1.0]), -0.1), None);
        // Huge tolerance: everything is one plateau.
        assert_eq!(plateau(&sweep(&[1.0, 3.0, 2.0]), 10.0), Some((0, 2)));
    }

    /// Brute-force check of the plateau definition.
    fn is_flat(v: &[f64], tol: f64) -> bool {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().all(|a| *a == v[0]) || v.iter().all(|a| (a - m).abs() <= tol * m.abs())
    }

    fn pairs(
        len: std::ops::Range<usize>,
        lo: i32,
        hi: i32,
    ) -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        prop::collection::vec((lo..hi, lo..hi), len).prop_map(|v| {
            v.into_iter()
                .map(|(a, b)| (f64::from(a), f64::from(b)))
                .unzip()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn correlations_are_bounded_and_symmetric(
            (x, y) in prop::collection::vec((-1e6f64..1e6, -1e6f64..1e6), 0..12)
                .prop_map(|v| v.into_iter().unzip::<f64, f64, Vec<f64>, Vec<f64>>()),
            (xt, yt) in pairs(2..12, -3, 3),
        ) {
            for (x, y) in [(&x, &y), (&xt, &yt)] {
                for stat in Correlation::ALL {
                    let a = stat.compute(x, y);
                    let b = stat.compute(y, x);
                    prop_assert_eq!(a.is_some(), b.is_some());
                    if let (Some(a), Some(b)) = (a, b) {
                        prop_assert!((-1.0..=1.0).contains(&a), "{} = {}", stat, a);
                        prop_assert!((a - b).abs() <= 1e-12, "{}: {} vs {}", stat, a, b);
                    }
                }
            }
        }

        #[test]
        fn rank_statistics_ignore_increasing_transforms((x, y) in pairs(2..12, -20, 20)) {
            let f = |v: &[f64]| -> Vec<f64> { v.iter().map(|a| (a / 4.0).exp() + a * a * a).collect() };
            for stat in [Correlation::Spearman, Correlation::Kendall] {
                let a = stat.compute(&x, &y);
                prop_assert_eq!(a, stat.compute(&f(&x), &y));
                prop_assert_eq!(a, stat.compute(&x, &f(&y)));
                prop_assert_eq!(a, stat.compute(&f(&x), &f(&y)));
            }
        }

        #[test]
        fn spearman_without_ties_is_the_classic_formula(y in Just((1..=9).map(f64::from).collect::<Vec<_>>()).prop_shuffle()) {
            let x: Vec<f64> = (1..=9).map(f64::from).collect();
            let n = 9.0;
            let d2: f64 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
            let rho = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
            prop_assert!((spearman(&x, &y).unwrap() - rho).abs() <= 1e-12);
        }

        #[test]
        fn fit_r2_is_pearson_squared((x, y) in pairs(2..12, -50, 50)) {
            if let Some((_, _, r2)) = linear_fit(&x, &y) {
                let r = pearson(&x, &y).unwrap_or(0.0);
                prop_assert!((r2 - r * r).abs() <= 1e-12);
            }
        }

        #[test]
        fn bootstrap_and_loo_are_well_formed((x, y) in pairs(3..9, -4, 4), seed in any::<u64>()) {
            for stat in Correlation::ALL {
                if let Some(ci) = bootstrap_ci(&x, &y, stat, 200, 0.9, seed) {
                    prop_assert!(-1.0 <= ci.low && ci.low <= ci.high && ci.high <= 1.0, "{:?}", ci);
                    prop_assert!(ci.resamples_used >= 100 && ci.resamples_used <= 200);
                }
                let loo = leave_one_out(&x, &y, stat);
                prop_assert_eq!(loo.values.len(), x.len());
                prop_assert!(loo.sign_flips <= x.len());
                if let Some(t) = permutation_test(&x, &y, stat, seed) {
                    prop_assert!(t.p_value > 0.0 && t.p_value <= 1.0);
                }
            }
        }

        #[test]
        fn plateau_is_the_longest_flat_run(
            v in prop::collection::vec(prop::sample::select(vec![1.0, 1.01, 1.02, 1.1, 2.0]), 0..14),
            tol in prop::sample::select(vec![0.0, 0.005, 0.02, 0.2]),
        ) {
            let sweep: Vec<(f64, f64)> = v.iter().map(|a| (0.0, *a)).collect();
            let mut best: Option<(usize, usize)> = None;
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    if is_flat(&v[i..=j], tol) && best.is_none_or(|(a, b)| j - i > b - a) {
                        best = Some((i, j));
                    }
                }
            }
            prop_assert_eq!(plateau(&sweep, tol), best);
        }
    }

    /// Holm by hand: p = (0.01, 0.04, 0.03, undefined, 0.2) over m = 4 defined values:
    /// sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.09, max(0.09, 0.08) = 0.09, max(0.09, 0.2) = 0.2.
    #[test]
    fn holm_adjusts_by_hand() {
        let got = holm(&[Some(0.01), Some(0.04), Some(0.03), None, Some(0.2)]);
        let want = [Some(0.04), Some(0.09), Some(0.09), None, Some(0.2)];
        for (g, w) in got.iter().zip(want) {
            match (g, w) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{got:?}"),
                (None, None) => {}
                _ => panic!("{got:?}"),
            }
        }
        assert_eq!(holm(&[Some(0.6), Some(0.7)]), [Some(1.0), Some(1.0)]);
        assert!((smallest_permutation_p(4) - 2.0 / 24.0).abs() < 1e-15);
        assert_eq!(smallest_permutation_p(1), 1.0);
    }
}
