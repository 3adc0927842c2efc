//! The registry metrics a run was asked for (`--metrics`), as columns of its per-document rows
//! and fields of its pooled summary. The numbers come from `metrics::proxy`; this only keeps
//! each document's compact per-position records until the pooled values are computed.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::metrics::proxy::ProxyContext;
use crate::metrics::{PositionStats, ProxyMetric, TokenFrequencies, TokenRecord};

/// Registry metric values by name, in the order asked; `None` where unavailable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyValues(pub Vec<(String, Option<f64>)>);

impl ProxyValues {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v)
    }
}

impl Serialize for ProxyValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The registry metrics of a run: per-document values as documents come, pooled at the end.
#[derive(Debug, Clone, Default)]
pub struct ProxyColumns {
    pub metrics: Vec<ProxyMetric>,
    pub k: usize,
    pub vocab_size: usize,
    /// Last N scored tokens of each document/trajectory.
    pub window: Option<usize>,
    /// A given corpus's token frequencies; without one, each document's row uses its own
    /// tokens and the pooled value the whole set's.
    pub frequencies: Option<TokenFrequencies>,
    samples: Vec<Vec<TokenRecord>>,
}

impl ProxyColumns {
    pub fn new(
        metrics: Vec<ProxyMetric>,
        k: usize,
        vocab_size: usize,
        window: Option<usize>,
        frequencies: Option<TokenFrequencies>,
    ) -> Self {
        Self {
            metrics,
            k,
            vocab_size,
            window,
            frequencies,
            samples: Vec::new(),
        }
    }

    fn context(&self) -> ProxyContext<'_> {
        ProxyContext {
            vocab_size: self.vocab_size,
            frequencies: self.frequencies.as_ref(),
            window: self.window,
        }
    }

    fn values(&self, samples: &[&[TokenRecord]]) -> ProxyValues {
        let ctx = self.context();
        ProxyValues(
            self.metrics
                .iter()
                .map(|m| (m.name(), m.compute(samples, &ctx).ok()))
                .collect(),
        )
    }

    /// The names of the metrics, in the order asked (the columns they become).
    pub fn names(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.name()).collect()
    }

    fn records<'a>(
        &self,
        positions: impl IntoIterator<Item = &'a PositionStats>,
    ) -> Vec<TokenRecord> {
        positions
            .into_iter()
            .map(|p| TokenRecord::from_stats(p, self.k))
            .collect()
    }

    /// One document's values; its records are kept for [`ProxyColumns::pooled`] (memory grows
    /// with the scored tokens: 75 bytes each).
    pub fn document<'a>(
        &mut self,
        positions: impl IntoIterator<Item = &'a PositionStats>,
    ) -> ProxyValues {
        if self.metrics.is_empty() {
            return ProxyValues::default();
        }
        let records = self.records(positions);
        let values = self.values(&[&records]);
        self.samples.push(records);
        values
    }

    /// One document's values, keeping nothing: for runs whose rows are the whole result
    /// (`profile`, over corpora that need not fit in memory), with no pooled values.
    pub fn values_of<'a>(
        &self,
        positions: impl IntoIterator<Item = &'a PositionStats>,
    ) -> ProxyValues {
        if self.metrics.is_empty() {
            return ProxyValues::default();
        }
        self.values(&[&self.records(positions)])
    }

    /// The values over every document so far.
    pub fn pooled(&self) -> ProxyValues {
        let samples: Vec<&[TokenRecord]> = self.samples.iter().map(Vec::as_slice).collect();
        self.values(&samples)
    }

    /// Why each pooled metric without a value has none.
    pub fn unavailable(&self) -> Vec<(String, String)> {
        let samples: Vec<&[TokenRecord]> = self.samples.iter().map(Vec::as_slice).collect();
        let ctx = self.context();
        self.metrics
            .iter()
            .filter_map(|m| match m.compute(&samples, &ctx) {
                Err(e) => Some((m.name(), e.to_string())),
                Ok(_) => None,
            })
            .collect()
    }
}

/// Serialize helper for `unavailable` lists: a map name -> reason.
pub fn reasons_map(reasons: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Object(
        reasons
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}
