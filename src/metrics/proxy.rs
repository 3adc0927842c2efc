//! The 2025-26 proxy-metric family beside HE-SNR, computed from the same per-position statistics.
//!
//! * The token-level proxies of "Forecasting Downstream Performance of LLMs With Proxy Metrics"
//!   (arXiv 2605.18607): ten per-position [`Measure`]s (cross-entropy; top-k accuracy for
//!   k = 1, 2, 3, 5; normalised entropy; rank of the expert token; reciprocal rank; margin;
//!   wrong-confidence), each pooled as a weighted mean under eight [`Weighting`]s (uniform, p,
//!   1-p, entropy, inverse entropy, token frequency, inverse frequency, a Gaussian-NLL kernel):
//!   80 metrics named `<measure>__<weighting>` (`xent__uniform`, `rank__inv_freq`).
//! * HES, the High-Entropy Sum (arXiv 2605.22389): per sample, the sum of the full-vocabulary
//!   entropies of its top 0.5% highest-entropy tokens (at least one token); pooled as the mean
//!   over samples.
//! * The retained top-k mass: per position the full-softmax probability the top-k list holds,
//!   pooled as a mean. It says whether metrics computed from a server's top-k list are exact.
//!
//! The definitions where the papers leave a choice open are ours and are written on each item
//! (and in docs/method.md). Every metric says what it needs ([`Needs`]); a metric whose needs a
//! run cannot meet (a remote server's top-k list has no full-vocabulary entropy) is
//! [`Unavailable`], never approximated.
//!
//! All of it is pure: [`TokenRecord`]s in (one per scored position, derived from
//! [`PositionStats`]), numbers out. `scripts/proxy_reference.py` is an independent numpy
//! implementation of HES and the weightings, checked by a test.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Better, Metric, PositionStats};

/// The compact per-position numbers every registry metric is computed from (a few dozen bytes,
/// so a whole evaluation set's positions can be kept, cached and re-read).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The expert (true) token.
    pub token: u32,
    /// -ln p(token) under the full softmax.
    pub nll: f64,
    /// Full-vocabulary entropy in nats; `None` when the backend saw only a top-k list.
    pub entropy: Option<f64>,
    /// 1 + number of tokens with a strictly larger logit (ties share the better rank).
    pub rank: u32,
    /// Index of the true token in the top list (0 = argmax; ties: lower id first), if listed.
    pub top_index: Option<u8>,
    /// Length of the top list the position came with.
    pub top_len: u8,
    /// Full-softmax probability of the most probable token other than the true one.
    pub best_other_p: f64,
    /// Full-softmax probability of the argmax token (first of the top list).
    pub argmax_p: f64,
    /// Sum of the full-softmax probabilities of the top list: the mass it retains.
    pub top_mass: f64,
}

impl TokenRecord {
    /// Derives the record from a position's statistics, keeping the first `k` candidates.
    pub fn from_stats(s: &PositionStats, k: usize) -> Self {
        let top = &s.top[..k.min(s.top.len())];
        let p = |logit: f32| (logit as f64 - s.lse).exp().min(1.0);
        let top_index = top.iter().position(|t| t.id == s.true_id);
        let best_other_p = top
            .iter()
            .find(|t| t.id != s.true_id)
            .map_or(0.0, |t| p(t.logit));
        Self {
            token: s.true_id,
            nll: (s.lse - s.true_logit as f64).max(0.0),
            entropy: s.entropy,
            rank: s.true_rank.max(1),
            top_index: top_index.map(|i| i.min(u8::MAX as usize) as u8),
            top_len: top.len().min(u8::MAX as usize) as u8,
            best_other_p,
            argmax_p: top.first().map_or(0.0, |t| p(t.logit)),
            top_mass: top.iter().map(|t| p(t.logit)).sum::<f64>().min(1.0),
        }
    }

    /// p(true token) under the full softmax.
    pub fn p(&self) -> f64 {
        (-self.nll).exp()
    }
}

/// What a metric needs beyond what every backend gives (the true token's log-probability and
/// rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Needs {
    /// Nothing more: any backend.
    TrueToken,
    /// A top list of at least this many candidates.
    TopK(usize),
    /// The whole distribution (the full-vocabulary entropy): embedded engine only.
    FullDistribution,
    /// A token-frequency table (the evaluation set's own, or a given corpus's).
    TokenFrequencies,
}

impl fmt::Display for Needs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Needs::TrueToken => f.write_str("the true token's probability and rank"),
            Needs::TopK(k) => write!(f, "a top-{k} list"),
            Needs::FullDistribution => f.write_str("the full distribution"),
            Needs::TokenFrequencies => f.write_str("token frequencies"),
        }
    }
}

/// A per-position quantity of the proxy-metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// -ln p(true): cross-entropy in nats.
    CrossEntropy,
    /// 1 if the true token is among the k first of the top list (ties: lower id first), else 0.
    TopKAcc(u8),
    /// Full-vocabulary entropy divided by ln V (in [0, 1]).
    NormEntropy,
    /// Rank of the true token: 1 + tokens with a strictly larger logit (ties share the better).
    Rank,
    /// 1 / rank.
    ReciprocalRank,
    /// p(true) - max over other tokens of p: positive when the true token wins, 0 on a tie for
    /// first place, negative by how far it trails the winner.
    Margin,
    /// p(argmax) when the argmax (ties: lower id) is not the true token, else 0.
    WrongConfidence,
}

impl Measure {
    pub const ALL: [Measure; 10] = [
        Measure::CrossEntropy,
        Measure::TopKAcc(1),
        Measure::TopKAcc(2),
        Measure::TopKAcc(3),
        Measure::TopKAcc(5),
        Measure::NormEntropy,
        Measure::Rank,
        Measure::ReciprocalRank,
        Measure::Margin,
        Measure::WrongConfidence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Measure::CrossEntropy => "xent",
            Measure::TopKAcc(1) => "top1",
            Measure::TopKAcc(2) => "top2",
            Measure::TopKAcc(3) => "top3",
            Measure::TopKAcc(5) => "top5",
            Measure::TopKAcc(_) => "topk",
            Measure::NormEntropy => "norm_entropy",
            Measure::Rank => "rank",
            Measure::ReciprocalRank => "recip_rank",
            Measure::Margin => "margin",
            Measure::WrongConfidence => "wrong_conf",
        }
    }

    /// Which way the measure improves. Entropy counts as "lower is better" by the family's
    /// convention (a model surer of expert text); the leaderboard ranks by strength either way
    /// and shows the sign found.
    pub fn better(self) -> Better {
        match self {
            Measure::TopKAcc(_) | Measure::ReciprocalRank | Measure::Margin => Better::Higher,
            _ => Better::Lower,
        }
    }

    pub fn needs(self) -> Needs {
        match self {
            Measure::CrossEntropy | Measure::Rank | Measure::ReciprocalRank => Needs::TrueToken,
            Measure::TopKAcc(k) => Needs::TopK(k as usize),
            Measure::NormEntropy => Needs::FullDistribution,
            Measure::Margin => Needs::TopK(2),
            Measure::WrongConfidence => Needs::TopK(1),
        }
    }

    /// The measure at one position; `None` where the record lacks what it needs.
    pub fn at(self, r: &TokenRecord, vocab_size: usize) -> Option<f64> {
        match self {
            Measure::CrossEntropy => Some(r.nll),
            Measure::TopKAcc(k) => (r.top_len >= k || r.top_index.is_some())
                .then(|| r.top_index.is_some_and(|i| i < k) as u8 as f64),
            Measure::NormEntropy => {
                let h = r.entropy?;
                (vocab_size > 1).then(|| h / (vocab_size as f64).ln())
            }
            Measure::Rank => Some(r.rank as f64),
            Measure::ReciprocalRank => Some(1.0 / r.rank as f64),
            Measure::Margin => {
                // The runner-up is needed when the true token wins; the winner otherwise.
                let need = if r.top_index == Some(0) { 2 } else { 1 };
                if r.top_len < need {
                    return None;
                }
                Some(if r.top_index == Some(0) {
                    r.p() - r.best_other_p
                } else {
                    // The winner is another token (on a tie, the lower id): margin <= 0.
                    r.p() - r.argmax_p
                })
            }
            Measure::WrongConfidence => (r.top_len >= 1).then(|| {
                if r.top_index == Some(0) {
                    0.0
                } else {
                    r.argmax_p
                }
            }),
        }
    }
}

/// How per-position measures are pooled: a weighted mean sum(w m) / sum(w).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weighting {
    /// w = 1.
    Uniform,
    /// w = p(true).
    P,
    /// w = 1 - p(true).
    OneMinusP,
    /// w = H (full-vocabulary entropy).
    Entropy,
    /// w = 1 / (H + [`INVERSE_ENTROPY_FLOOR`]).
    InverseEntropy,
    /// w = f(true token), the add-one-smoothed relative frequency of the token.
    Frequency,
    /// w = 1 / f(true token).
    InverseFrequency,
    /// w = exp(-(nll - mu)^2 / (2 sigma^2)) with mu, sigma the mean and (population) standard
    /// deviation of the NLL over the positions pooled (all weights 1 when sigma = 0).
    GaussianNll,
}

/// Keeps near-certain positions (H -> 0) from taking all the weight of the inverse-entropy mean.
pub const INVERSE_ENTROPY_FLOOR: f64 = 0.01;

impl Weighting {
    pub const ALL: [Weighting; 8] = [
        Weighting::Uniform,
        Weighting::P,
        Weighting::OneMinusP,
        Weighting::Entropy,
        Weighting::InverseEntropy,
        Weighting::Frequency,
        Weighting::InverseFrequency,
        Weighting::GaussianNll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Weighting::Uniform => "uniform",
            Weighting::P => "p",
            Weighting::OneMinusP => "one_minus_p",
            Weighting::Entropy => "entropy",
            Weighting::InverseEntropy => "inv_entropy",
            Weighting::Frequency => "freq",
            Weighting::InverseFrequency => "inv_freq",
            Weighting::GaussianNll => "gauss_nll",
        }
    }

    pub fn needs(self) -> Needs {
        match self {
            Weighting::Entropy | Weighting::InverseEntropy => Needs::FullDistribution,
            Weighting::Frequency | Weighting::InverseFrequency => Needs::TokenFrequencies,
            _ => Needs::TrueToken,
        }
    }
}

/// One metric of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyMetric {
    /// A measure pooled under a weighting.
    Weighted(Measure, Weighting),
    /// High-Entropy Sum, mean over samples.
    Hes,
    /// Mean retained top-k mass.
    TopKMass,
}

impl ProxyMetric {
    /// Every registry metric, in a fixed order (measures, then weightings within each).
    pub fn all() -> Vec<ProxyMetric> {
        let mut v: Vec<ProxyMetric> = Measure::ALL
            .iter()
            .flat_map(|&m| {
                Weighting::ALL
                    .iter()
                    .map(move |&w| ProxyMetric::Weighted(m, w))
            })
            .collect();
        v.push(ProxyMetric::Hes);
        v.push(ProxyMetric::TopKMass);
        v
    }

    pub fn name(self) -> String {
        match self {
            ProxyMetric::Weighted(m, w) => format!("{}__{}", m.name(), w.name()),
            ProxyMetric::Hes => "hes".into(),
            ProxyMetric::TopKMass => "topk_mass".into(),
        }
    }

    /// One line saying what the metric is.
    pub fn definition(self) -> String {
        match self {
            ProxyMetric::Weighted(m, w) => {
                let measure = match m {
                    Measure::CrossEntropy => "cross-entropy -ln p(true)".to_string(),
                    Measure::TopKAcc(k) => format!("top-{k} accuracy of the true token"),
                    Measure::NormEntropy => "full-vocabulary entropy / ln V".into(),
                    Measure::Rank => "rank of the true token".into(),
                    Measure::ReciprocalRank => "1 / rank of the true token".into(),
                    Measure::Margin => "p(true) - max p(other)".into(),
                    Measure::WrongConfidence => {
                        "p(argmax) where the argmax is wrong, else 0".into()
                    }
                };
                let weight = match w {
                    Weighting::Uniform => "uniform weights",
                    Weighting::P => "weights p(true)",
                    Weighting::OneMinusP => "weights 1 - p(true)",
                    Weighting::Entropy => "weights H",
                    Weighting::InverseEntropy => "weights 1 / (H + 0.01)",
                    Weighting::Frequency => "weights f(token)",
                    Weighting::InverseFrequency => "weights 1 / f(token)",
                    Weighting::GaussianNll => "Gaussian kernel on NLL around its mean",
                };
                format!("mean {measure}, {weight}")
            }
            ProxyMetric::Hes => {
                "per sample, the sum of the full-vocabulary entropies of its top 0.5% \
                 highest-entropy tokens (at least one); mean over samples"
                    .into()
            }
            ProxyMetric::TopKMass => "mean full-softmax probability held by the top-k list".into(),
        }
    }

    pub fn better(self) -> Better {
        match self {
            ProxyMetric::Weighted(m, _) => m.better(),
            ProxyMetric::Hes | ProxyMetric::TopKMass => Better::Neither,
        }
    }

    /// Everything the metric needs (empty: any backend).
    pub fn needs(self, k: usize) -> Vec<Needs> {
        let mut v = match self {
            ProxyMetric::Weighted(m, w) => vec![m.needs(), w.needs()],
            ProxyMetric::Hes => vec![Needs::FullDistribution],
            ProxyMetric::TopKMass => vec![Needs::TopK(k)],
        };
        v.retain(|n| *n != Needs::TrueToken);
        v.dedup();
        v
    }

    /// The metric over samples (documents, trajectories) of records.
    pub fn compute(
        self,
        samples: &[&[TokenRecord]],
        ctx: &ProxyContext,
    ) -> Result<f64, Unavailable> {
        let windowed: Vec<&[TokenRecord]> = samples.iter().map(|s| ctx.window_of(s)).collect();
        let all = || windowed.iter().flat_map(|s| s.iter());
        if all().next().is_none() {
            return Err(Unavailable::NoPositions);
        }
        match self {
            ProxyMetric::Hes => {
                let mut total = 0.0;
                let mut n = 0usize;
                for s in windowed.iter().filter(|s| !s.is_empty()) {
                    total += hes(s)?;
                    n += 1;
                }
                Ok(total / n as f64)
            }
            ProxyMetric::TopKMass => Ok(mean(all().map(|r| r.top_mass))),
            ProxyMetric::Weighted(m, w) => {
                let records: Vec<&TokenRecord> = all().collect();
                let weights = weights(w, &records, samples, ctx)?;
                let mut num = 0.0;
                let mut den = 0.0;
                for (r, wt) in records.iter().zip(weights) {
                    let v = m.at(r, ctx.vocab_size).ok_or(match m.needs() {
                        Needs::FullDistribution => Unavailable::NeedsFullDistribution,
                        Needs::TopK(k) => Unavailable::NeedsTopK(k),
                        _ => Unavailable::NoPositions,
                    })?;
                    num += wt * v;
                    den += wt;
                }
                if den > 0.0 && den.is_finite() {
                    Ok(num / den)
                } else {
                    Err(Unavailable::ZeroWeight)
                }
            }
        }
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n as f64
}

/// The weights of `records` (already windowed) under `w`.
fn weights(
    w: Weighting,
    records: &[&TokenRecord],
    samples: &[&[TokenRecord]],
    ctx: &ProxyContext,
) -> Result<Vec<f64>, Unavailable> {
    let entropy = |r: &TokenRecord| r.entropy.ok_or(Unavailable::NeedsFullDistribution);
    Ok(match w {
        Weighting::Uniform => vec![1.0; records.len()],
        Weighting::P => records.iter().map(|r| r.p()).collect(),
        Weighting::OneMinusP => records.iter().map(|r| 1.0 - r.p()).collect(),
        Weighting::Entropy => records
            .iter()
            .map(|r| entropy(r))
            .collect::<Result<_, _>>()?,
        Weighting::InverseEntropy => records
            .iter()
            .map(|r| entropy(r).map(|h| 1.0 / (h + INVERSE_ENTROPY_FLOOR)))
            .collect::<Result<_, _>>()?,
        Weighting::Frequency | Weighting::InverseFrequency => {
            let own;
            let table = match ctx.frequencies {
                Some(t) => t,
                None => {
                    own = TokenFrequencies::from_tokens(
                        samples.iter().flat_map(|s| s.iter().map(|r| r.token)),
                        ctx.vocab_size,
                    );
                    &own
                }
            };
            records
                .iter()
                .map(|r| {
                    let f = table.frequency(r.token);
                    if w == Weighting::Frequency {
                        f
                    } else {
                        1.0 / f
                    }
                })
                .collect()
        }
        Weighting::GaussianNll => {
            let n = records.len() as f64;
            let mu = records.iter().map(|r| r.nll).sum::<f64>() / n;
            let var = records.iter().map(|r| (r.nll - mu).powi(2)).sum::<f64>() / n;
            if var <= 0.0 {
                vec![1.0; records.len()]
            } else {
                records
                    .iter()
                    .map(|r| (-(r.nll - mu).powi(2) / (2.0 * var)).exp())
                    .collect()
            }
        }
    })
}

/// Share of a sample's tokens whose entropies HES sums.
pub const HES_FRACTION: f64 = 0.005;

/// HES of one sample: the sum of the ceil(0.5% x n) largest full-vocabulary entropies.
pub fn hes(sample: &[TokenRecord]) -> Result<f64, Unavailable> {
    let mut h: Vec<f64> = sample
        .iter()
        .map(|r| r.entropy.ok_or(Unavailable::NeedsFullDistribution))
        .collect::<Result<_, _>>()?;
    if h.is_empty() {
        return Err(Unavailable::NoPositions);
    }
    let take = ((h.len() as f64 * HES_FRACTION).ceil() as usize).max(1);
    h.sort_by(|a, b| b.total_cmp(a));
    Ok(h[..take].iter().sum())
}

/// Why a metric has no value for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    #[error("needs the full distribution (a top-k list from a server does not give it)")]
    NeedsFullDistribution,
    #[error("needs a top-{0} list")]
    NeedsTopK(usize),
    #[error("no scored positions")]
    NoPositions,
    #[error("every weight is zero")]
    ZeroWeight,
}

/// Token counts, from the evaluation set itself or a given corpus.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenFrequencies {
    counts: HashMap<u32, u64>,
    total: u64,
    vocab_size: usize,
}

impl TokenFrequencies {
    pub fn from_tokens(tokens: impl IntoIterator<Item = u32>, vocab_size: usize) -> Self {
        let mut t = Self {
            vocab_size,
            ..Default::default()
        };
        t.add(tokens);
        t
    }

    pub fn add(&mut self, tokens: impl IntoIterator<Item = u32>) {
        for id in tokens {
            *self.counts.entry(id).or_default() += 1;
            self.total += 1;
        }
    }

    /// Add-one smoothed relative frequency (count + 1) / (total + V): positive for every token,
    /// so that 1 / f is defined for tokens a given corpus never saw.
    pub fn frequency(&self, id: u32) -> f64 {
        let c = self.counts.get(&id).copied().unwrap_or(0);
        (c + 1) as f64 / (self.total + self.vocab_size.max(1) as u64) as f64
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// What a registry metric is computed with, besides the records.
#[derive(Debug, Clone, Default)]
pub struct ProxyContext<'a> {
    pub vocab_size: usize,
    /// A corpus's frequencies; `None`: the frequencies of the samples' own tokens.
    pub frequencies: Option<&'a TokenFrequencies>,
    /// Keep only the last N records of each sample (the paper scores the last 1,000 tokens).
    pub window: Option<usize>,
}

impl ProxyContext<'_> {
    fn window_of<'s>(&self, s: &'s [TokenRecord]) -> &'s [TokenRecord] {
        match self.window {
            Some(n) if s.len() > n => &s[s.len() - n..],
            _ => s,
        }
    }
}

/// A metric a user can ask for: one of HE-SNR's [`Metric`]s or a registry [`ProxyMetric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnyMetric {
    Core(Metric),
    Proxy(ProxyMetric),
}

impl AnyMetric {
    pub fn name(self) -> String {
        match self {
            AnyMetric::Core(m) => m.name().to_string(),
            AnyMetric::Proxy(p) => p.name(),
        }
    }

    pub fn label(self) -> String {
        match self {
            AnyMetric::Core(m) => m.label().to_string(),
            AnyMetric::Proxy(p) => p.name(),
        }
    }

    pub fn better(self) -> Better {
        match self {
            AnyMetric::Core(m) => m.better(),
            AnyMetric::Proxy(p) => p.better(),
        }
    }
}

impl fmt::Display for AnyMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.name())
    }
}

impl FromStr for ProxyMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProxyMetric::all()
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown metric '{s}'"))
    }
}

impl FromStr for AnyMetric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<Metric>()
            .map(AnyMetric::Core)
            .or_else(|_| s.parse::<ProxyMetric>().map(AnyMetric::Proxy))
            .map_err(|_| format!("unknown metric '{s}' (see `--metrics list`)"))
    }
}

impl Serialize for AnyMetric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for AnyMetric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The metrics of a `--metrics` list, in order, without repeats.
///
/// Items: a metric name; `default` (HE-SNR and its companions, what a run reports unasked);
/// `proxy` (the 80 weighted measures); a measure name (`rank`: its 8 weightings); `hes`;
/// `topk_mass`; `all` (everything).
pub fn parse_selection(spec: &str) -> Result<Vec<AnyMetric>, String> {
    let mut out: Vec<AnyMetric> = Vec::new();
    let push = |m: AnyMetric, out: &mut Vec<AnyMetric>| {
        if !out.contains(&m) {
            out.push(m);
        }
    };
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let family: Option<Vec<AnyMetric>> = match item {
            "default" => Some(default_selection()),
            "proxy" => Some(
                ProxyMetric::all()
                    .into_iter()
                    .filter(|p| matches!(p, ProxyMetric::Weighted(..)))
                    .map(AnyMetric::Proxy)
                    .collect(),
            ),
            "all" => Some(
                default_selection()
                    .into_iter()
                    .chain(ProxyMetric::all().into_iter().map(AnyMetric::Proxy))
                    .collect(),
            ),
            _ => Measure::ALL.iter().find(|m| m.name() == item).map(|&m| {
                Weighting::ALL
                    .iter()
                    .map(|&w| AnyMetric::Proxy(ProxyMetric::Weighted(m, w)))
                    .collect()
            }),
        };
        match family {
            Some(ms) => ms.into_iter().for_each(|m| push(m, &mut out)),
            None => push(item.parse()?, &mut out),
        }
    }
    if out.is_empty() {
        return Err("no metric named".into());
    }
    Ok(out)
}

/// What a run reports when no `--metrics` is given: HE-SNR and its companions.
pub fn default_selection() -> Vec<AnyMetric> {
    Metric::ALL.into_iter().map(AnyMetric::Core).collect()
}

/// The registry metrics of a selection.
pub fn proxies_of(selection: &[AnyMetric]) -> Vec<ProxyMetric> {
    selection
        .iter()
        .filter_map(|m| match m {
            AnyMetric::Proxy(p) => Some(*p),
            AnyMetric::Core(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
