//! How a document longer than the model's window is scored: two policies ([`Policy`]).
//!
//! **Shift** ([`shift_plan`], `--window-policy shift`): the document is decoded once, as one sequence, through
//! a KV cache of `size` tokens. When the cache is full, the oldest [`shift_block`] tokens after
//! the first `sinks` are removed and the rest are moved back by as many positions (llama.cpp
//! re-rotates the cached keys; RoPE makes that exact in exact arithmetic), so every token is
//! decoded once with at least `size - shift_block(size)` tokens of context. The first tokens are
//! kept because a causal LM parks attention on the first tokens it saw (the "attention sink" of
//! StreamingLLM, arXiv 2309.17453): dropping them wrecks the predictions that follow. The
//! evictions fall at fixed token positions (`size`, `size + block`, ...), not at decode-chunk
//! boundaries, so what each token sees does not depend on `--ubatch`.
//!
//! The default is shift where the backend can shift its cache, strided where it cannot
//! ([`PolicyRequest::kind_for`]).
//!
//! **Strided** (the strided scheme of Hugging Face's perplexity guide and llama.cpp's `--ppl-stride`):
//! windows of `size` tokens start every `stride` tokens. The first window scores every target in
//! it; each later window scores only the targets the previous window did not reach, so every
//! target is scored exactly once and, past the first window, with at least `size - stride`
//! tokens of context. A smaller stride means more context per token and more compute
//! (about size / stride forward passes per token for long documents).

use std::ops::Range;

use serde::Serialize;

/// How texts longer than the window are scored (`--window-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "window_policy", rename_all = "lowercase")]
pub enum Policy {
    /// Overlapping windows of `size` tokens every `stride` tokens, each a fresh sequence.
    Strided { stride: usize },
    /// One pass through a sliding KV cache that keeps the first `sinks` tokens.
    Shift { sinks: usize },
}

impl Policy {
    /// Sink tokens kept by default by the shift policy (StreamingLLM keeps 4).
    pub const DEFAULT_SINKS: usize = 4;

    /// Validates the policy against a window size.
    pub fn check(&self, size: usize) -> Result<(), String> {
        match *self {
            Policy::Strided { stride } => check(size, stride),
            Policy::Shift { sinks } => check_shift(size, sinks),
        }
    }
}

/// The policy names of `--window-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Strided,
    Shift,
}

/// The window policy as asked for (the command line's flags), before a backend is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyRequest {
    pub kind: Option<PolicyKind>,
    pub stride: Option<usize>,
    pub sinks: Option<usize>,
}

impl PolicyRequest {
    /// The policy kind this request means on backends that can (or cannot) shift a KV cache.
    ///
    /// The default is shift where the backend can: every token decoded once, each with more
    /// context (docs/method.md, "Texts longer than the window": on texts longer than the window
    /// it was 1.18x faster on a 30K-token trajectory, median of three quiet pairs, and moved
    /// HE-SNR by at most 0.6% on the example set). A stride asks for the strided policy, sink
    /// tokens for the shift policy; otherwise a backend that cannot shift (a remote server, a
    /// recurrent model) gets the strided one. `track` decides once for all checkpoints (its
    /// command line reads each local checkpoint's architecture first).
    pub fn kind_for(&self, can_shift: bool) -> PolicyKind {
        match self.kind {
            Some(kind) => kind,
            None if self.stride.is_some() => PolicyKind::Strided,
            None if self.sinks.is_some() => PolicyKind::Shift,
            None if !can_shift => PolicyKind::Strided,
            None => PolicyKind::Shift,
        }
    }

    /// This request with the policy kind made explicit for backends that can (or cannot) shift,
    /// so that one run's backends all use the same policy (`track` decides once for all its
    /// checkpoints).
    pub fn decided(self, can_shift: bool) -> Self {
        Self {
            kind: Some(self.kind_for(can_shift)),
            ..self
        }
    }

    /// The policy for a window of `size` tokens on a backend that can (or cannot) shift its
    /// KV cache ([`Self::kind_for`]); the stride defaults to half the window, the sinks to
    /// [`Policy::DEFAULT_SINKS`].
    pub fn resolve(&self, size: usize, can_shift: bool) -> Result<Policy, String> {
        let policy = match self.kind_for(can_shift) {
            PolicyKind::Strided => {
                if self.sinks.is_some() {
                    return Err("sink tokens apply to the shift window policy only".into());
                }
                Policy::Strided {
                    stride: self.stride.unwrap_or((size / 2).max(1)),
                }
            }
            PolicyKind::Shift => {
                if self.stride.is_some() {
                    return Err("a stride applies to the strided window policy only".into());
                }
                if !can_shift {
                    let advice = if self.kind.is_none() {
                        "drop --sink-tokens (they ask for the shift policy)"
                    } else {
                        "use --window-policy strided"
                    };
                    return Err(format!(
                        "this backend cannot shift a KV cache (a remote server, or a model llama.cpp cannot shift): {advice}"
                    ));
                }
                Policy::Shift {
                    sinks: self.sinks.unwrap_or(Policy::DEFAULT_SINKS),
                }
            }
        };
        policy.check(size)?;
        Ok(policy)
    }
}

/// A window size and the policy for texts longer than it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Windowing {
    /// Tokens per forward window (the KV cache size under [`Policy::Shift`]).
    #[serde(rename = "window")]
    pub size: usize,
    #[serde(flatten)]
    pub policy: Policy,
}

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

/// Tokens evicted at a time by the shift policy: a quarter of the window, at most 512 (so with
/// the default 8,192-token window every token sees at least 7,680 tokens of context).
pub fn shift_block(size: usize) -> usize {
    (size / 4).clamp(1, 512)
}

/// Validates a window size and a sink count for the shift policy.
pub fn check_shift(size: usize, sinks: usize) -> Result<(), String> {
    if size < 8 {
        return Err(format!(
            "the shift window policy needs a window of at least 8 tokens, got {size}"
        ));
    }
    if sinks > size / 2 {
        return Err(format!(
            "sink tokens must be at most half the window ({}), got {sinks}",
            size / 2
        ));
    }
    Ok(())
}

/// One decode call of the shift policy: first drop `evict` cached tokens (those right after the
/// sinks) and move the later ones back by `evict` positions, then decode `inputs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftStep {
    pub evict: usize,
    /// Absolute indices of the tokens fed.
    pub inputs: Range<usize>,
}

/// Plans the decode calls that feed `n_inputs` tokens once through a KV cache of `size` tokens,
/// in calls of at most `chunk` tokens: the cache fills to `size`, then before every
/// [`shift_block`] of further tokens that many are evicted. A chunk never spans an eviction.
///
/// With `n_inputs <= size` this is the plain chunked decode of one window (no eviction).
/// `size` and the sinks are the caller's to check ([`check_shift`]); `chunk` >= 1.
pub fn shift_plan(n_inputs: usize, size: usize, chunk: usize) -> Vec<ShiftStep> {
    let block = shift_block(size);
    let mut steps = Vec::new();
    let (mut seg_start, mut seg_end, mut evict) = (0, size.min(n_inputs), 0);
    while seg_start < n_inputs {
        for c in (seg_start..seg_end).step_by(chunk.max(1)) {
            steps.push(ShiftStep {
                evict: if c == seg_start { evict } else { 0 },
                inputs: c..(c + chunk).min(seg_end),
            });
        }
        evict = block;
        seg_start = seg_end;
        seg_end = (seg_start + block).min(n_inputs);
    }
    steps
}

/// Fewest rows a decode chunk needs for ggml's CPU flash attention to take its tiled kernel
/// (`GGML_FA_TILE_Q` in llama.cpp's `ggml-cpu/common.h`). A shorter chunk takes a row-by-row
/// kernel (and a chunk of one row a split-KV one) that sums in another order and is less
/// accurate: on the same positions it was ~4x further from exact attention (docs/method.md).
pub const FLASH_TILE_ROWS: usize = 64;

/// The decode calls of one pass over `n_inputs` inputs ([`shift_plan`]), shaped so that every
/// position lands in a chunk of at least `min_rows` inputs wherever the text allows: then the
/// chunk sizes no longer decide a position's kernel (see [`FLASH_TILE_ROWS`]), so a position's
/// numbers depend neither on the decode chunk size (`chunk` >= 2 x `min_rows`) nor on which
/// later positions were asked for.
///
/// Two changes to the plain plan, neither changing what any position sees:
/// - a segment (the inputs between two evictions) cut short by the last wanted input runs on,
///   into the inputs up to `available` (never context for a wanted one), to at least
///   `min_rows` inputs; at most `min_rows - 1` extra inputs a pass;
/// - a segment's last chunk shorter than `min_rows` starts earlier, taking inputs from the
///   chunk before it (when that leaves both at least `min_rows` long).
pub fn decode_plan(
    n_inputs: usize,
    available: usize,
    size: usize,
    chunk: usize,
    min_rows: usize,
) -> Vec<ShiftStep> {
    let plain = shift_plan(n_inputs, size, chunk);
    let Some(first) = plain.first() else {
        return plain;
    };
    // The last segment starts at the last eviction, or with the text.
    let segment_start = plain.iter().rev().find(|s| s.evict > 0).unwrap_or(first);
    let segment_start = segment_start.inputs.start;
    let padded_end = (segment_start + min_rows).min(available);
    let mut steps = if padded_end > n_inputs {
        // The grid does not depend on the length (it is only cut there): plan the longer run
        // and drop the steps that start after the wanted inputs.
        let mut longer = shift_plan(padded_end, size, chunk);
        longer.retain(|s| s.inputs.start < n_inputs);
        longer
    } else {
        plain
    };
    for i in 1..steps.len() {
        let last_of_segment = steps.get(i + 1).is_none_or(|next| next.evict > 0);
        let (prev, cur) = (&steps[i - 1].inputs, &steps[i].inputs);
        if last_of_segment
            && steps[i].evict == 0
            && cur.len() < min_rows
            && prev.len() + cur.len() >= 2 * min_rows
        {
            let boundary = cur.end - min_rows;
            steps[i - 1].inputs.end = boundary;
            steps[i].inputs.start = boundary;
        }
    }
    steps
}

/// Fewest output rows a decode chunk asks llama.cpp for, when it asks for any. Output rows
/// go through the last layer's feed-forward and the output layer as one matrix multiplication,
/// and ggml's CPU backend takes its tiled kernel (llamafile's sgemm) only from 2 rows on x86
/// (4 on ARM); one row takes the vector kernel, which sums in another order. A position
/// wanted alone in its chunk would then come out ~1e-7 apart from the same position computed
/// beside others (measured on a tiny model).
pub const MIN_OUTPUT_ROWS: usize = 4;

/// Which inputs of a decode chunk get logits: the `wanted` ones and, when there are some but
/// fewer than [`MIN_OUTPUT_ROWS`], the last others of the chunk up to that many. The caller
/// drops the extra rows; each costs one row of the output layer. With [`decode_plan`], a
/// position's numbers then do not depend on what else is wanted.
pub fn output_rows(wanted: &[bool]) -> Vec<bool> {
    let mut rows = wanted.to_vec();
    let n_wanted = wanted.iter().filter(|&&w| w).count();
    if n_wanted > 0 {
        let extra = MIN_OUTPUT_ROWS.saturating_sub(n_wanted);
        for r in rows.iter_mut().rev().filter(|r| !**r).take(extra) {
            *r = true;
        }
    }
    rows
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

    #[test]
    fn policy_requests_resolve() {
        let req = |kind, stride, sinks| PolicyRequest {
            kind,
            stride,
            sinks,
        };
        let (shift, strided) = (Some(PolicyKind::Shift), Some(PolicyKind::Strided));
        // The default: shift where the backend can, strided where it cannot.
        assert_eq!(
            req(None, None, None).resolve(64, true),
            Ok(Policy::Shift { sinks: 4 })
        );
        assert_eq!(
            req(None, None, None).resolve(64, false),
            Ok(Policy::Strided { stride: 32 })
        );
        assert_eq!(
            req(None, None, Some(2)).resolve(64, true),
            Ok(Policy::Shift { sinks: 2 })
        );
        // Sink tokens ask for the shift policy: where it cannot run, the error says to drop them.
        let err = req(None, None, Some(2)).resolve(64, false).unwrap_err();
        assert!(err.contains("drop --sink-tokens"), "{err}");
        let err = req(shift, None, None).resolve(64, false).unwrap_err();
        assert!(err.contains("use --window-policy strided"), "{err}");
        assert_eq!(req(None, None, Some(2)).decided(false).kind, shift);
        assert_eq!(
            req(None, Some(16), None).resolve(64, true),
            Ok(Policy::Strided { stride: 16 })
        );
        assert_eq!(
            req(strided, None, None).resolve(64, true),
            Ok(Policy::Strided { stride: 32 })
        );
        assert_eq!(
            req(shift, None, Some(0)).resolve(64, true),
            Ok(Policy::Shift { sinks: 0 })
        );
        assert!(req(shift, None, None).resolve(64, false).is_err());
        assert!(req(shift, Some(16), None).resolve(64, true).is_err());
        assert!(req(strided, None, Some(4)).resolve(64, true).is_err());
        assert!(req(shift, None, Some(40)).resolve(64, true).is_err());
        // Deciding makes the default explicit and keeps what was asked for.
        assert_eq!(req(None, None, None).decided(true).kind, shift);
        assert_eq!(req(None, None, None).decided(false).kind, strided);
        assert_eq!(req(None, Some(16), None).decided(true).kind, strided);
        assert_eq!(req(strided, None, None).decided(true).kind, strided);
        assert_eq!(req(shift, None, None).decided(false).kind, shift);
    }

    #[test]
    fn shift_plan_hand_computed() {
        // window 16 (block 4), chunks of 6, 27 inputs: fill 0..16 in chunks, then blocks of 4.
        let step = |evict, inputs| ShiftStep { evict, inputs };
        assert_eq!(
            shift_plan(27, 16, 6),
            vec![
                step(0, 0..6),
                step(0, 6..12),
                step(0, 12..16),
                step(4, 16..20),
                step(4, 20..24),
                step(4, 24..27),
            ]
        );
        // A text that fits is the plain chunked decode of one window.
        assert_eq!(
            shift_plan(10, 16, 4),
            vec![step(0, 0..4), step(0, 4..8), step(0, 8..10)]
        );
        assert!(shift_plan(0, 16, 4).is_empty());
        assert!(
            check_shift(16, 8).is_ok() && check_shift(16, 9).is_err() && check_shift(4, 0).is_err()
        );
    }

    #[test]
    fn decode_plan_hand_computed() {
        let step = |evict, inputs| ShiftStep { evict, inputs };
        // 13 of 40 inputs wanted, chunks of 8, at least 6 rows: enough rows, but the last
        // chunk 8..13 is short: it starts earlier (both chunks keep at least 6).
        assert_eq!(
            decode_plan(13, 40, 32, 8, 6),
            vec![step(0, 0..7), step(0, 7..13)]
        );
        // 4 wanted: the segment runs on to 6 rows.
        assert_eq!(decode_plan(4, 40, 32, 8, 6), vec![step(0, 0..6)]);
        // Nothing more to feed: as planned.
        assert_eq!(decode_plan(4, 4, 32, 8, 6), vec![step(0, 0..4)]);
        // Long enough already: the plain plan.
        assert_eq!(decode_plan(15, 40, 32, 8, 6), shift_plan(15, 32, 8));
        // Chunks too small to balance (4 + 1 < 2 x 6): left as they are.
        assert_eq!(
            decode_plan(9, 9, 32, 4, 6),
            vec![step(0, 0..4), step(0, 4..8), step(0, 8..9)]
        );
        // Window 16 (block 4): one wanted input into the segment after an eviction runs on to
        // that segment's end (it is shorter than 6); a segment's chunks are balanced within it.
        assert_eq!(
            decode_plan(17, 40, 16, 10, 6),
            vec![step(0, 0..10), step(0, 10..16), step(4, 16..20)]
        );
        assert_eq!(
            decode_plan(15, 40, 16, 12, 6),
            vec![step(0, 0..9), step(0, 9..15)]
        );
        assert!(decode_plan(0, 40, 16, 6, 6).is_empty());
    }

    #[test]
    fn output_rows_hand_computed() {
        let (t, f) = (true, false);
        // None wanted: none computed. Enough wanted: just those.
        assert_eq!(output_rows(&[f, f, f, f, f]), vec![f; 5]);
        assert_eq!(output_rows(&[t, f, t, t, t, f]), vec![t, f, t, t, t, f]);
        // Fewer: topped up from the end of the chunk.
        assert_eq!(output_rows(&[t, f, f, f, f, f]), vec![t, f, f, t, t, t]);
        assert_eq!(output_rows(&[f, f, f, f, f, t]), vec![f, f, t, t, t, t]);
        assert_eq!(output_rows(&[f, t, f, t, f, f]), vec![f, t, f, t, t, t]);
        // A chunk shorter than that: all of it.
        assert_eq!(output_rows(&[f, t]), vec![t, t]);
        assert_eq!(output_rows(&[t]), vec![t]);
    }

    proptest! {
        /// A wanted input's chunk is at least `min_rows` long in both of two plans, or equally
        /// long, whatever else is wanted and whatever the chunk size (from 2 x `min_rows`); and
        /// the plan still feeds every input once, in order, through the same evictions.
        #[test]
        fn decode_plan_chunks_do_not_depend_on_wants_or_chunk_size(
            a in 1usize..200, b in 1usize..200, extra in 0usize..100,
            size in 8usize..80, chunk_a in 1usize..40, chunk_b in 1usize..40, min_rows in 1usize..12,
        ) {
            let (n1, n2) = (a.min(b), a.max(b));
            let available = n2 + extra;
            let (ca, cb) = (chunk_a.max(2 * min_rows), chunk_b.max(2 * min_rows));
            let short = decode_plan(n1, available, size, ca, min_rows);
            let long = decode_plan(n2, available, size, cb, min_rows);
            for plan in [&short, &long] {
                let mut next = 0;
                for s in plan.iter() {
                    prop_assert_eq!(s.inputs.start, next);
                    prop_assert!(!s.inputs.is_empty() && s.inputs.len() <= ca.max(cb));
                    next = s.inputs.end;
                }
                prop_assert!(next <= available);
            }
            prop_assert!(short.last().is_some_and(|s| s.inputs.end >= n1 && s.inputs.end < n1 + min_rows));
            // Evictions where the plain plan has them.
            let evictions = |p: &[ShiftStep]| p.iter().filter(|s| s.evict > 0).map(|s| (s.inputs.start, s.evict)).collect::<Vec<_>>();
            prop_assert_eq!(evictions(&short), evictions(&shift_plan(short.last().unwrap().inputs.end, size, ca)));
            for i in 0..n1 {
                let rows = |plan: &[ShiftStep]| plan.iter().find(|s| s.inputs.contains(&i)).map(|s| s.inputs.len().min(min_rows));
                prop_assert_eq!(rows(&short), rows(&long), "input {}", i);
            }
        }
    }

    proptest! {
        /// Simulates the cache: every input decoded once, in order; the cache never exceeds the
        /// window; the sinks stay; each input sees at least `size - block` tokens (or all before
        /// it); and what each input sees does not depend on the chunk size.
        #[test]
        fn shift_plan_decodes_once_within_the_window(
            n in 0usize..300, size in 8usize..80, chunk in 1usize..40, sinks_frac in 0.0f64..0.5,
        ) {
            let sinks = ((size as f64 * sinks_frac) as usize).min(size / 2);
            let block = shift_block(size);
            let seen_with = |chunk: usize| {
                let mut cache: Vec<usize> = Vec::new();
                let mut next = 0;
                let mut context = Vec::new();
                for s in shift_plan(n, size, chunk) {
                    assert!(s.inputs.len() <= chunk && !s.inputs.is_empty());
                    let keep = sinks.min(cache.len());
                    let evicted = cache.drain(keep..(keep + s.evict).min(cache.len())).count();
                    assert_eq!(evicted, s.evict, "evicts only what is cached");
                    assert_eq!(s.inputs.start, next, "inputs in order, once");
                    for i in s.inputs.clone() {
                        context.push(cache.clone());
                        cache.push(i);
                    }
                    next = s.inputs.end;
                    assert!(cache.len() <= size);
                    assert!(cache.iter().take(sinks.min(next)).copied().eq(0..sinks.min(next)), "sinks stay");
                }
                assert_eq!(next, n);
                context
            };
            let context = seen_with(chunk);
            for (i, seen) in context.iter().enumerate() {
                prop_assert!(seen.len() >= i.min(size - block), "input {} context {}", i, seen.len());
            }
            prop_assert_eq!(context, seen_with(size), "chunk size changes nothing seen");
        }
    }
}
