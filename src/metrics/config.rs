use serde::{Deserialize, Serialize};

/// Which probability of the true token is the "signal" in HE-SNR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignalProb {
    /// p(x_t) under the full softmax (the default of method.md).
    #[default]
    Full,
    /// p(x_t) renormalised over the top-k candidates (the alternative reading of the paper).
    Renormalized,
}

/// How per-position HE-SNR terms are averaged over a set of documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// One mean over every decision token of the whole set (default).
    #[default]
    Pooled,
    /// Mean of per-document means (documents without decision tokens are left out).
    PerDocument,
}

/// The knobs of the method. The defaults are those of method.md.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricConfig {
    /// Size of the candidate set C_k used for the renormalised entropy H_k.
    pub k: usize,
    /// Entropy threshold of the decision set: H_k(t) > eps.
    pub eps: f64,
    pub signal: SignalProb,
    pub pooling: Pooling,
}

impl MetricConfig {
    /// Paper default: (ln 3 + ln 4) / 2, the midpoint between orders 3 and 4.
    pub const DEFAULT_EPS: f64 = 1.242_453_324_894_000_3;
    pub const DEFAULT_K: usize = 10;
    /// Largest k the engine is asked to keep per position.
    pub const MAX_K: usize = 64;

    /// Checks the values a user can set, so that a bad flag fails before any model is loaded.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=Self::MAX_K).contains(&self.k) {
            return Err(format!(
                "k must be between 2 and {}, got {}",
                Self::MAX_K,
                self.k
            ));
        }
        if !self.eps.is_finite() || self.eps <= 0.0 || self.eps >= (self.k as f64).ln() {
            return Err(format!(
                "eps must lie in (0, ln k = {:.4}), got {}",
                (self.k as f64).ln(),
                self.eps
            ));
        }
        Ok(())
    }
}

impl Default for MetricConfig {
    fn default() -> Self {
        Self {
            k: Self::DEFAULT_K,
            eps: Self::DEFAULT_EPS,
            signal: SignalProb::Full,
            pooling: Pooling::Pooled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_eps_is_midpoint_of_ln3_and_ln4() {
        let want = (3f64.ln() + 4f64.ln()) / 2.0;
        assert!((MetricConfig::DEFAULT_EPS - want).abs() < 1e-15);
    }

    #[test]
    fn validate_rejects_out_of_range_values() {
        assert!(MetricConfig::default().validate().is_ok());
        assert!(MetricConfig {
            k: 1,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(MetricConfig {
            eps: 2.31,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(MetricConfig {
            eps: f64::NAN,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(MetricConfig {
            eps: 0.0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
