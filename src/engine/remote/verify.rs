//! Checks what a server sent before any number reaches the metrics, and turns it into
//! [`PositionStats`]. Servers have been seen returning prompt log-probabilities one position off
//! without any error; each check here names what it guards against, and a failure stops the run
//! with that name rather than producing quietly wrong metrics.
//!
//! The statistics built from a server are exact for every metric that reads the top-k list, the
//! true token's log-probability and rank: log-probabilities are logits shifted by the
//! log-sum-exp, so `lse = 0` and `logit = logprob` (the top-k mass is then sum exp(logprob)).
//! The full-vocabulary entropy is not in a top-k list, so it is `None`, never estimated.

use std::ops::Range;

use super::protocol::{ServerPosition, ServerToken};
use crate::metrics::{PositionStats, TokenLogit};

/// Slack for rounding in servers that compute in 16-bit floats and print decimals.
const LOGPROB_TOL: f64 = 2e-3;

/// Candidates an echo-form list may lack because tokens with equal text share one key.
const TEXT_MERGES_ALLOWED: usize = 2;

/// The checks, in the order they run. Names appear in errors and in `hesnr probe`.
pub const CHECKS: &[(&str, &str)] = &[
    (
        "length",
        "one entry per prompt token (no token dropped or merged)",
    ),
    (
        "alignment",
        "each entry names the prompt token hesnr sent at that position",
    ),
    (
        "logprob-range",
        "every log-probability is a number in (-inf, 0]",
    ),
    (
        "top-k",
        "k candidates per position (k - 2 when keyed by text, where equal texts merge), their \
         probabilities summing to at most 1",
    ),
    (
        "offset",
        "the top-k lists predict the token at their own position, not the next one (tested \
         over a window of 8 or more tokens)",
    ),
    (
        "consistency",
        "the prompt token's log-probability agrees with the top-k list: equal where listed, \
         not above the k-th where not",
    ),
];

/// A failed check: which one, where, and what was seen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("server answer failed the `{check}` check at token {position}: {detail}")]
pub struct VerifyError {
    pub check: &'static str,
    pub position: usize,
    pub detail: String,
}

fn fail(check: &'static str, position: usize, detail: String) -> VerifyError {
    VerifyError {
        check,
        position,
        detail,
    }
}

/// What hesnr knows about the prompt it sent.
pub struct SentPrompt<'a> {
    pub ids: &'a [u32],
    /// A token's text, as the server would print it.
    pub text_of: &'a dyn Fn(u32) -> String,
    /// A token text back to an id, for naming echo-form candidates: `None` if no token has
    /// that text, or if several do (the text does not say which token it is).
    pub id_of: &'a dyn Fn(&str) -> Option<u32>,
}

/// Server and hesnr agree that this is the token at a position.
fn same_token(server: &ServerToken, id: u32, text_of: &dyn Fn(u32) -> String) -> bool {
    match server {
        ServerToken::Id(s) => *s == id,
        ServerToken::Text(s) => {
            let ours = text_of(id);
            // Bytes that are not a character on their own print differently on every server.
            *s == ours || ours.contains('\u{FFFD}') || s.contains('\u{FFFD}')
        }
    }
}

/// Verifies `positions` (one per prompt token, as sent) and returns the statistics of the
/// `targets` positions with `k` candidates each.
pub fn to_stats(
    positions: &[ServerPosition],
    sent: &SentPrompt,
    targets: Range<usize>,
    k: usize,
    vocab_size: usize,
) -> Result<Vec<PositionStats>, VerifyError> {
    let n = sent.ids.len();
    // The echo form may append generated tokens after the prompt; they are not ours.
    if positions.len() < n {
        return Err(fail(
            "length",
            positions.len(),
            format!(
                "{} entries for {n} prompt tokens (the server tokenized differently or truncated)",
                positions.len()
            ),
        ));
    }
    for (i, p) in positions.iter().take(n).enumerate() {
        if let Some(t) = &p.token {
            if !same_token(t, sent.ids[i], sent.text_of) {
                return Err(fail(
                    "alignment",
                    i,
                    format!(
                        "server has {t:?}, hesnr sent id {} ({:?})",
                        sent.ids[i],
                        (sent.text_of)(sent.ids[i])
                    ),
                ));
            }
        }
    }
    let want_k = k.min(vocab_size.max(1));
    let first = targets.start;
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let p = &positions[t];
        let id = sent.ids[t];
        let lp = p.logprob.ok_or_else(|| {
            fail(
                "alignment",
                t,
                format!(
                    "no log-probability for the prompt token hesnr sent (id {id}): the server \
                     tokenized the prompt differently"
                ),
            )
        })?;
        if lp.is_nan() || lp > LOGPROB_TOL || lp == f64::NEG_INFINITY {
            return Err(fail(
                "logprob-range",
                t,
                format!("prompt token log-probability {lp}"),
            ));
        }
        if let Some(bad) = p.top.iter().find(|c| c.1.is_nan() || c.1 > LOGPROB_TOL) {
            return Err(fail(
                "logprob-range",
                t,
                format!("candidate {:?} has log-probability {}", bad.0, bad.1),
            ));
        }
        // Candidates of probability zero carry nothing (and would make 0 * -inf).
        let top: Vec<&(ServerToken, f64)> = p.top.iter().filter(|c| c.1.is_finite()).collect();
        // Lists keyed by text (echo form) merge tokens that print the same: allow two merges.
        let by_text = p.top.iter().any(|c| matches!(c.0, ServerToken::Text(_)));
        let need = if by_text {
            want_k.saturating_sub(TEXT_MERGES_ALLOWED).max(1)
        } else {
            want_k
        };
        if p.top.len() < need {
            return Err(fail(
                "top-k",
                t,
                format!(
                    "{} candidates, {want_k} requested (does the server cap logprobs?)",
                    p.top.len()
                ),
            ));
        }
        let mass: f64 = top.iter().map(|c| c.1.exp()).sum();
        if mass > 1.0 + 1e-2 {
            return Err(fail(
                "top-k",
                t,
                format!("top-{want_k} probabilities sum to {mass:.4}"),
            ));
        }
        let listed = top.iter().position(|c| match &c.0 {
            ServerToken::Id(x) => *x == id,
            // By text only when the text names exactly this token; a text several tokens share
            // (or bytes that are no character) may be another token with its own probability.
            ServerToken::Text(t) => (sent.id_of)(t) == Some(id),
        });
        match listed {
            Some(j) => {
                let l = top[j].1;
                if (l - lp).abs() > LOGPROB_TOL * (1.0 + lp.abs()) {
                    return Err(fail(
                        "consistency",
                        t,
                        format!("prompt token has log-probability {lp} but is listed in the top-k with {l}"),
                    ));
                }
            }
            None => {
                let kth = top.last().map_or(f64::NEG_INFINITY, |c| c.1);
                if top.len() >= want_k && lp > kth + LOGPROB_TOL * (1.0 + kth.abs()) {
                    return Err(fail(
                        "consistency",
                        t,
                        format!(
                            "prompt token has log-probability {lp}, above the k-th candidate ({kth}), yet is not listed"
                        ),
                    ));
                }
            }
        }
        let mut synthetic = u32::MAX;
        let top_logits: Vec<TokenLogit> = top
            .iter()
            .enumerate()
            .map(|(j, c)| TokenLogit {
                id: if Some(j) == listed {
                    id
                } else {
                    match &c.0 {
                        ServerToken::Id(x) => *x,
                        ServerToken::Text(s) => {
                            (sent.id_of)(s).filter(|&x| x != id).unwrap_or_else(|| {
                                synthetic -= 1;
                                synthetic
                            })
                        }
                    }
                },
                logit: c.1 as f32,
            })
            .collect();
        let true_rank = p.rank.unwrap_or_else(|| match listed {
            Some(j) => j as u32 + 1,
            // At least below every listed candidate.
            None => top.len() as u32 + 1,
        });
        out.push(PositionStats {
            lse: 0.0,
            top: top_logits,
            true_id: id,
            true_logit: lp as f32,
            true_rank,
            // A top-k list is not the distribution: the full entropy stays unknown.
            entropy: None,
        });
    }
    check_offset(&out, sent.ids, first)?;
    Ok(out)
}

/// Fewest targets for the offset test: below this, chance agreement decides.
const OFFSET_MIN_TARGETS: usize = 8;

/// A server whose lists belong to the neighbouring position agrees with itself (the prompt
/// token's log-probability is read from the same wrong list), so only the lists' relation to the
/// text shows it: a real model's top-k holds the token at its own position far more often than
/// the next one.
fn check_offset(stats: &[PositionStats], ids: &[u32], first: usize) -> Result<(), VerifyError> {
    let n = stats.len();
    if n < OFFSET_MIN_TARGETS {
        return Ok(());
    }
    let hits = |shift: isize| -> usize {
        stats
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                let t = (first + i) as isize + shift;
                t >= 0 && (t as usize) < ids.len() && s.top.iter().any(|c| c.id == ids[t as usize])
            })
            .count()
    };
    let own = hits(0);
    // Only lists that hold the *next* token: no model can know it, so they are misplaced. (Lists
    // holding the previous token are what an untrained model with tied embeddings produces.)
    let next = hits(1);
    if next * 2 > n && next > 2 * own {
        return Err(fail(
            "offset",
            first,
            format!(
                "over {n} positions the top-k lists hold the next token in {next} cases but the \
                 token at their own position in only {own}: each list is the next position's"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PositionMetrics;

    fn text_of(id: u32) -> String {
        format!("t{id}")
    }
    fn id_of(s: &str) -> Option<u32> {
        s.strip_prefix('t')?.parse().ok()
    }

    fn pos(token: u32, lp: f64, top: &[(u32, f64)]) -> ServerPosition {
        ServerPosition {
            token: Some(ServerToken::Id(token)),
            logprob: Some(lp),
            rank: None,
            top: top.iter().map(|&(i, l)| (ServerToken::Id(i), l)).collect(),
            text_offset: None,
        }
    }

    fn first(token: u32) -> ServerPosition {
        ServerPosition {
            token: Some(ServerToken::Id(token)),
            logprob: None,
            rank: None,
            top: vec![],
            text_offset: None,
        }
    }

    fn run(
        positions: &[ServerPosition],
        ids: &[u32],
        k: usize,
    ) -> Result<Vec<PositionStats>, VerifyError> {
        let sent = SentPrompt {
            ids,
            text_of: &text_of,
            id_of: &id_of,
        };
        to_stats(positions, &sent, 1..ids.len(), k, 100)
    }

    #[test]
    fn a_correct_answer_gives_exact_metrics() {
        // p = (0.5, 0.25, 0.125) for ids (3, 4, 5); the true token is 4.
        let l = |p: f64| p.ln();
        let ps = [
            first(1),
            pos(4, l(0.25), &[(3, l(0.5)), (4, l(0.25)), (5, l(0.125))]),
        ];
        let s = run(&ps, &[1, 4], 3).unwrap();
        assert_eq!(s[0].true_rank, 2);
        let m = PositionMetrics::from_stats(&s[0], 3);
        assert!((m.nll - 4f64.ln()).abs() < 1e-6);
        // Renormalised (4/7, 2/7, 1/7): H = ln 7 - (8 ln 4 + 2 ln 2) / 7 ... computed directly.
        let q = [4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0];
        let h: f64 = -q.iter().map(|x: &f64| x * x.ln()).sum::<f64>();
        assert!((m.h_k - h).abs() < 1e-6, "{} vs {h}", m.h_k);
        assert!(m.in_top_k && !m.top1);
    }

    #[test]
    fn misaligned_tokens_are_caught() {
        let ps = [first(1), pos(9, -0.1, &[(9, -0.1), (2, -3.0)])];
        let e = run(&ps, &[1, 4], 2).unwrap_err();
        assert_eq!(e.check, "alignment");
        assert_eq!(e.position, 1);
    }

    #[test]
    fn too_few_entries_is_a_length_error() {
        let e = run(&[first(1)], &[1, 4], 2).unwrap_err();
        assert_eq!(e.check, "length");
    }

    #[test]
    fn a_listed_token_with_another_logprob_is_inconsistent() {
        let ps = [first(1), pos(4, -2.0, &[(4, -0.1), (2, -3.0)])];
        assert_eq!(run(&ps, &[1, 4], 2).unwrap_err().check, "consistency");
    }

    #[test]
    fn an_unlisted_token_above_the_kth_is_inconsistent() {
        let ps = [first(1), pos(4, -0.5, &[(3, -0.2), (2, -3.0)])];
        assert_eq!(run(&ps, &[1, 4], 2).unwrap_err().check, "consistency");
        // Below the k-th it is fine, with a lower-bound rank.
        let ps = [first(1), pos(4, -5.0, &[(3, -0.2), (2, -3.0)])];
        let s = run(&ps, &[1, 4], 2).unwrap();
        assert_eq!(s[0].true_rank, 3);
    }

    #[test]
    fn range_and_mass_are_checked() {
        let ps = [first(1), pos(4, 0.5, &[(4, 0.5), (2, -3.0)])];
        assert_eq!(run(&ps, &[1, 4], 2).unwrap_err().check, "logprob-range");
        let ps = [first(1), pos(4, -0.1, &[(4, -0.1), (2, -0.2)])];
        assert_eq!(run(&ps, &[1, 4], 2).unwrap_err().check, "top-k");
        let ps = [first(1), pos(4, -0.1, &[(4, -0.1)])];
        let e = run(&ps, &[1, 4], 2).unwrap_err();
        assert_eq!(e.check, "top-k");
        assert!(e.detail.contains("1 candidates"));
        let ps = [first(1), pos(4, f64::NAN, &[(4, -0.1), (2, -3.0)])];
        assert_eq!(run(&ps, &[1, 4], 2).unwrap_err().check, "logprob-range");
    }

    #[test]
    fn echo_form_texts_are_matched_to_ids() {
        let ps = [
            ServerPosition {
                token: Some(ServerToken::Text("t1".into())),
                logprob: None,
                rank: None,
                top: vec![],
                text_offset: Some(0),
            },
            ServerPosition {
                token: Some(ServerToken::Text("t4".into())),
                logprob: Some(-0.2),
                rank: None,
                top: vec![
                    (ServerToken::Text("t4".into()), -0.2),
                    (ServerToken::Text("zz".into()), -2.0),
                ],
                text_offset: Some(2),
            },
        ];
        let s = run(&ps, &[1, 4], 2).unwrap();
        assert_eq!(s[0].top[0].id, 4);
        assert!(
            s[0].top[1].id > 1_000_000,
            "unknown text gets a synthetic id"
        );
        assert_eq!(s[0].true_rank, 1);
        assert!(PositionMetrics::from_stats(&s[0], 2).top1);
    }

    /// A text where the model predicts each token: the list at t has x_t first.
    fn predicted(ids: &[u32], shift: isize) -> Vec<ServerPosition> {
        let mut ps = vec![first(ids[0])];
        for t in 1..ids.len() {
            let j = (t as isize + shift).clamp(0, ids.len() as isize - 1) as usize;
            let listed = ids[j];
            let other = if listed == 99 { 98 } else { 99 };
            let lp_true = if ids[t] == listed { -0.1 } else { -9.0 };
            ps.push(pos(ids[t], lp_true, &[(listed, -0.1), (other, -3.0)]));
        }
        ps
    }

    #[test]
    fn lists_one_position_off_are_caught_even_when_self_consistent() {
        let ids: Vec<u32> = (10..30).collect();
        assert!(run(&predicted(&ids, 0), &ids, 2).is_ok());
        let e = run(&predicted(&ids, 1), &ids, 2).unwrap_err();
        assert_eq!(e.check, "offset", "{e}");
        // Lists holding the previous token are a (poor) model's own business.
        assert!(run(&predicted(&ids, -1), &ids, 2).is_ok());
        // Too short to tell: no verdict.
        let short: Vec<u32> = (10..15).collect();
        assert!(run(&predicted(&short, 1), &short, 2).is_ok());
    }

    #[test]
    fn zero_probability_candidates_do_not_poison_the_entropy() {
        let ps = [first(1), pos(4, -0.1, &[(4, -0.1), (2, f64::NEG_INFINITY)])];
        let s = run(&ps, &[1, 4], 2).unwrap();
        assert_eq!(s[0].top.len(), 1);
        let m = PositionMetrics::from_stats(&s[0], 2);
        assert_eq!(m.h_k, 0.0);
    }
}
