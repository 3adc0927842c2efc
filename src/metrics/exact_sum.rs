use serde::{Deserialize, Serialize};

/// A sum of f64 terms kept in 2^-48 fixed point inside an i128.
///
/// Floating-point addition is not associative, so pooling the same positions in a different order
/// (other shards, batches or windows) would change the last digits. Rounding each term once to a
/// 2^-48 grid (3.6e-15, below f64 resolution for the magnitudes we sum) and adding integers makes
/// every merge exact and order-independent. Terms are clamped to +-1e12, so at least 6e11 worst-case
/// terms (and ~1e24 typical ones, a few nats each) fit before the i128 could overflow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExactSum(#[serde(with = "i128_as_string")] i128);

const SCALE: f64 = (1u64 << 48) as f64;
const TERM_LIMIT: f64 = 1.0e12;

impl ExactSum {
    /// Adds one term. Non-finite terms are the caller's bug; they are clamped, not propagated.
    pub fn add(&mut self, x: f64) {
        let x = if x.is_nan() {
            0.0
        } else {
            x.clamp(-TERM_LIMIT, TERM_LIMIT)
        };
        self.0 += (x * SCALE).round() as i128;
    }

    pub fn merge(&mut self, other: &ExactSum) {
        self.0 += other.0;
    }

    pub fn value(&self) -> f64 {
        self.0 as f64 / SCALE
    }
}

/// JSON numbers cannot hold an i128 losslessly in every reader, so the raw value travels as a string.
mod i128_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sums_simple_values() {
        let mut s = ExactSum::default();
        s.add(0.5);
        s.add(0.25);
        s.add(-1.0);
        assert_eq!(s.value(), -0.25);
    }

    #[test]
    fn clamps_non_finite_terms() {
        let mut s = ExactSum::default();
        s.add(f64::INFINITY);
        s.add(f64::NAN);
        assert_eq!(s.value(), TERM_LIMIT);
    }

    #[test]
    fn round_trips_through_json() {
        let mut s = ExactSum::default();
        s.add(1.0 / 3.0);
        let j = serde_json::to_string(&s).unwrap();
        let back: ExactSum = serde_json::from_str(&j).unwrap();
        assert_eq!(s, back);
    }

    proptest! {
        #[test]
        fn merge_is_order_independent(xs in prop::collection::vec(-1e3f64..1e3, 0..200), split in 0usize..200) {
            let split = split.min(xs.len());
            let mut whole = ExactSum::default();
            xs.iter().for_each(|&x| whole.add(x));
            let mut a = ExactSum::default();
            let mut b = ExactSum::default();
            xs[..split].iter().rev().for_each(|&x| a.add(x));
            xs[split..].iter().for_each(|&x| b.add(x));
            b.merge(&a);
            prop_assert_eq!(whole, b);
            let naive: f64 = xs.iter().sum();
            prop_assert!((whole.value() - naive).abs() < 1e-9 * (1.0 + naive.abs()) + 1e-10 * xs.len() as f64);
        }
    }
}
