//! How a document longer than the model's window is cut into overlapping windows.
//!
//! Policy (the strided scheme of Hugging Face's perplexity guide and llama.cpp's `--ppl-stride`):
//! windows of `size` tokens start every `stride` tokens. The first window scores every target in
//! it; each later window scores only the targets the previous window did not reach, so every
//! target is scored exactly once and, past the first window, with at least `size - stride`
//! tokens of context. A smaller stride means more context per token and more compute
//! (about size / stride forward passes per token for long documents).

use std::ops::Range;

/// One forward pass: the tokens fed and the targets scored in it (both absolute positions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub tokens: Range<usize>,
    pub targets: Range<usize>,
}

/// Plans the windows for a document of `n_tokens` tokens, whose targets are positions
/// `first_target..n_tokens` (position t is predicted from positions < t).
///
/// `size` >= 2 and 1 <= `stride` <= `size` - 1 are the caller's to check (see [`check`]).
pub fn plan(n_tokens: usize, first_target: usize, size: usize, stride: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    if n_tokens <= first_target {
        return windows;
    }
    let mut start = 0usize;
    let mut next_target = first_target.max(1);
    loop {
        let end = (start + size).min(n_tokens);
        if next_target < end {
            windows.push(Window {
                tokens: start..end,
                targets: next_target..end,
            });
            next_target = end;
        }
        if end == n_tokens {
            break;
        }
        start += stride;
    }
    windows
}

/// Validates a window size and stride against each other.
pub fn check(size: usize, stride: usize) -> Result<(), String> {
    if size < 2 {
        return Err(format!("window size must be at least 2 tokens, got {size}"));
    }
    if stride == 0 || stride >= size {
        return Err(format!(
            "stride must be between 1 and window size - 1 ({}), got {stride}",
            size - 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_document_is_one_window() {
        assert_eq!(
            plan(10, 1, 16, 8),
            vec![Window {
                tokens: 0..10,
                targets: 1..10
            }]
        );
    }

    #[test]
    fn long_document_hand_computed() {
        // size 8, stride 4 over 17 tokens.
        let w = plan(17, 1, 8, 4);
        assert_eq!(
            w,
            vec![
                Window {
                    tokens: 0..8,
                    targets: 1..8
                },
                Window {
                    tokens: 4..12,
                    targets: 8..12
                },
                Window {
                    tokens: 8..16,
                    targets: 12..16
                },
                Window {
                    tokens: 12..17,
                    targets: 16..17
                },
            ]
        );
    }

    #[test]
    fn nothing_to_score() {
        assert!(plan(1, 1, 8, 4).is_empty());
        assert!(plan(0, 1, 8, 4).is_empty());
    }

    #[test]
    fn check_rejects_bad_settings() {
        assert!(check(1, 1).is_err());
        assert!(check(8, 0).is_err());
        assert!(check(8, 8).is_err());
        assert!(check(8, 7).is_ok());
    }

    proptest! {
        #[test]
        fn every_target_scored_once_with_enough_context(
            n in 0usize..400, size in 2usize..64, stride_frac in 0.01f64..0.99, first in 1usize..3,
        ) {
            let stride = ((size as f64 * stride_frac) as usize).clamp(1, size - 1);
            let windows = plan(n, first, size, stride);
            let mut seen = vec![0u32; n];
            for w in &windows {
                prop_assert!(w.tokens.len() <= size);
                prop_assert!(w.targets.start > w.tokens.start && w.targets.end <= w.tokens.end);
                for t in w.targets.clone() {
                    seen[t] += 1;
                    let context = t - w.tokens.start;
                    prop_assert!(context >= t.min(size - stride), "t={} context={}", t, context);
                }
            }
            for (t, &c) in seen.iter().enumerate() {
                prop_assert_eq!(c, (t >= first) as u32, "target {}", t);
            }
        }
    }
}
