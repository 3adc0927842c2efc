//! The metrics of a [`Summary`] by name: the one place that says what each is called, how a
//! report labels it, which way it improves and which field holds it.
//!
//! The names are the keys of every output (JSON rows and summaries, the track report's JSON and
//! CSV files, the profile's Parquet columns) and of every place a user names a metric, so they
//! must agree everywhere: each list of metrics elsewhere (a report's columns, the metrics
//! correlated with downstream scores, a profile's columns) is a list of [`Metric`]s, and its
//! names come from here. A metric renamed keeps its old name as an alias ([`Metric::ALIASES`]),
//! so that files written by earlier versions still parse.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Summary;

/// Which way a metric improves (for picking the best checkpoint of a column, and for captions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Neither direction is better (counts, shares and entropies describe the text, not the
    /// model's quality).
    Neither,
}

/// A number of a [`Summary`], per document or pooled over a set.
///
/// Serialized as its [`name`](Metric::name); parsed from the name or an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Mean over the decision set H of p(true token) / H_k.
    HeSnr,
    /// Perplexity over H only.
    HePpl,
    /// Perplexity over every scored position.
    Ppl,
    /// Mean negative log-likelihood (nats) over every scored position.
    MeanNll,
    /// Share of scored positions whose true token is the argmax.
    Top1Acc,
    /// |H|: scored positions with H_k > eps whose true token is in the top-k.
    DecisionTokens,
    /// |H| / scored tokens: the share of scored positions that are decisions. Called
    /// `decision_share` in the track outputs and summaries of earlier versions.
    DecisionDensity,
    /// Mean renormalised top-k entropy (named for the default k = 10).
    MeanH10,
    /// Positions scored.
    ScoredTokens,
}

/// What [`Metric`]'s methods read: one row per metric, so that nothing can be left out of one
/// method and not another.
struct Spec {
    name: &'static str,
    label: &'static str,
    better: Better,
    percent: bool,
    count: bool,
}

const fn spec(
    name: &'static str,
    label: &'static str,
    better: Better,
    percent: bool,
    count: bool,
) -> Spec {
    Spec {
        name,
        label,
        better,
        percent,
        count,
    }
}

impl Metric {
    /// Every metric, in the order of a report's columns.
    pub const ALL: [Metric; 9] = [
        Metric::HeSnr,
        Metric::HePpl,
        Metric::Ppl,
        Metric::MeanNll,
        Metric::Top1Acc,
        Metric::DecisionTokens,
        Metric::DecisionDensity,
        Metric::MeanH10,
        Metric::ScoredTokens,
    ];

    /// Earlier names that still parse, so that files of earlier versions can be read.
    pub const ALIASES: [(&'static str, Metric); 1] = [("decision_share", Metric::DecisionDensity)];

    fn spec(self) -> Spec {
        use Better::{Higher, Lower, Neither};
        match self {
            Metric::HeSnr => spec("he_snr", "HE-SNR", Higher, false, false),
            Metric::HePpl => spec("he_ppl", "HE-PPL", Lower, false, false),
            Metric::Ppl => spec("ppl", "PPL", Lower, false, false),
            // Reports have always shown the key: there is no shorter label people know it by.
            Metric::MeanNll => spec("mean_nll", "mean_nll", Lower, false, false),
            Metric::Top1Acc => spec("top1_acc", "top-1", Higher, true, false),
            Metric::DecisionTokens => spec("decision_tokens", "|H|", Neither, false, true),
            Metric::DecisionDensity => spec("decision_density", "|H| share", Neither, true, false),
            Metric::MeanH10 => spec("mean_h10", "mean H10", Neither, false, false),
            Metric::ScoredTokens => spec("scored_tokens", "scored tokens", Neither, false, true),
        }
    }

    /// The snake_case key used in JSON, CSV and Parquet outputs and on the command line.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The label of a report's column, plot axis or table.
    pub fn label(self) -> &'static str {
        self.spec().label
    }

    /// Which way the metric improves.
    pub fn better(self) -> Better {
        self.spec().better
    }

    /// Whether reports show it as a percentage (a share of positions).
    pub fn is_percent(self) -> bool {
        self.spec().percent
    }

    /// Whether it is a count of positions (shown whole).
    pub fn is_count(self) -> bool {
        self.spec().count
    }

    /// The metric's value in a summary; `None` where it is undefined (a mean over no position).
    pub fn value(self, s: &Summary) -> Option<f64> {
        match self {
            Metric::HeSnr => s.he_snr,
            Metric::HePpl => s.he_ppl,
            Metric::Ppl => s.ppl,
            Metric::MeanNll => s.mean_nll,
            Metric::Top1Acc => s.top1_acc,
            Metric::DecisionDensity => s.decision_density,
            Metric::MeanH10 => s.mean_h10,
            Metric::DecisionTokens | Metric::ScoredTokens => self.count(s).map(|n| n as f64),
        }
    }

    /// A count's value as a whole number (for integer columns); `None` for the other metrics.
    pub fn count(self, s: &Summary) -> Option<u64> {
        match self {
            Metric::DecisionTokens => Some(s.decision_tokens),
            Metric::ScoredTokens => Some(s.scored_tokens),
            _ => None,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Metric {
    type Err = String;

    /// A metric by its name or an alias.
    fn from_str(s: &str) -> Result<Self, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .or_else(|| Metric::ALIASES.iter().find(|a| a.0 == s).map(|a| a.1))
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                format!("unknown metric '{s}' (known: {})", names.join(", "))
            })
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for m in Metric::ALL {
            assert_eq!(m.name().parse::<Metric>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), m);
        }
        let mut names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len(), "names are unique");
    }

    #[test]
    fn old_names_parse_as_aliases() {
        assert_eq!("decision_share".parse(), Ok(Metric::DecisionDensity));
        assert_eq!(
            serde_json::from_str::<Metric>("\"decision_share\"").unwrap(),
            Metric::DecisionDensity
        );
        // An alias is never written.
        assert_eq!(Metric::DecisionDensity.name(), "decision_density");
        for (alias, _) in Metric::ALIASES {
            assert!(Metric::ALL.iter().all(|m| m.name() != alias));
        }
        let e = "he-snr".parse::<Metric>().unwrap_err();
        assert!(e.contains("'he-snr'") && e.contains("he_snr"), "{e}");
    }

    #[test]
    fn value_reads_the_metrics_own_field() {
        // Every field a different number, so a metric that reads another's field shows.
        let s = Summary {
            documents: 1,
            scored_tokens: 200,
            mean_nll: Some(1.0),
            ppl: Some(2.0),
            top1_acc: Some(3.0),
            decision_tokens: 40,
            decision_density: Some(5.0),
            he_snr: Some(6.0),
            he_ppl: Some(7.0),
            mean_h10: Some(8.0),
            order_shares: vec![],
        };
        let expected = [
            (Metric::HeSnr, 6.0),
            (Metric::HePpl, 7.0),
            (Metric::Ppl, 2.0),
            (Metric::MeanNll, 1.0),
            (Metric::Top1Acc, 3.0),
            (Metric::DecisionTokens, 40.0),
            (Metric::DecisionDensity, 5.0),
            (Metric::MeanH10, 8.0),
            (Metric::ScoredTokens, 200.0),
        ];
        assert_eq!(expected.len(), Metric::ALL.len());
        for (m, v) in expected {
            assert_eq!(m.value(&s), Some(v), "{m}");
            assert_eq!(m.count(&s).is_some(), m.is_count(), "{m}");
        }
        assert_eq!(Metric::DecisionTokens.count(&s), Some(40));
        let empty = Summary { he_snr: None, ..s };
        assert_eq!(Metric::HeSnr.value(&empty), None);
    }

    #[test]
    fn shares_are_percentages_and_counts_whole() {
        let percent: Vec<Metric> = Metric::ALL.into_iter().filter(|m| m.is_percent()).collect();
        assert_eq!(percent, [Metric::Top1Acc, Metric::DecisionDensity]);
        let counts: Vec<Metric> = Metric::ALL.into_iter().filter(|m| m.is_count()).collect();
        assert_eq!(counts, [Metric::DecisionTokens, Metric::ScoredTokens]);
        assert_eq!(Metric::HeSnr.better(), Better::Higher);
        assert_eq!(Metric::Ppl.better(), Better::Lower);
    }
}
