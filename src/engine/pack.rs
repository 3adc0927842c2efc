//! Packing short documents: the forward passes of several documents run in one decode batch,
//! each document its own sequence (llama.cpp multi-sequence batches), so that a corpus of short
//! documents keeps the matrix multiplications as wide as one long document would.
//!
//! How it fits the one document flow ([`crate::pipeline::run::Flow`]): the flow reads a few
//! documents ahead and runs their work once against a [`Recorder`], which notes the forward
//! pass each document asks for ([`Request`]) and stops it there; the backend is told the
//! requests ([`crate::engine::Backend::plan`]), groups them ([`plan`]) and, when the work runs
//! for real, document after document, answers the first request of a pack by running the
//! whole pack and the others from what it kept. A document that is not in a pack (too long,
//! or its work asks for something else) runs as before; a pack that fails in any way runs its
//! documents one at a time, so that each document fails or succeeds exactly as it would alone.

use std::ops::Range;

use serde::Serialize;

use super::{Backend, EngineError, ModelInfo, Tokenizer};
use crate::metrics::PositionStats;

/// How many documents a backend runs in one decode batch, and how many tokens they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PackLimits {
    /// Most documents (sequences) in one pack.
    pub sequences: usize,
    /// Most input tokens in one pack; a longer document is never packed.
    pub tokens: usize,
}

impl PackLimits {
    /// Whether packing can put two documents together at all.
    pub fn is_active(&self) -> bool {
        self.sequences > 1 && self.tokens > 1
    }

    /// Documents the flow reads ahead to plan packs from: enough for a few full packs.
    pub fn lookahead(&self) -> usize {
        (4 * self.sequences).clamp(2, 64)
    }
}

/// A forward pass a document's work asks for: [`Backend::evaluate`]`(tokens, targets, k)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tokens: Vec<u32>,
    pub targets: Range<usize>,
    pub k: usize,
}

impl Request {
    /// Tokens the forward pass feeds the model (the last target is never an input).
    pub fn inputs(&self) -> usize {
        self.targets.end.saturating_sub(1)
    }

    /// Whether this is the request `tokens, targets, k` describe.
    pub fn is(&self, tokens: &[u32], targets: &Range<usize>, k: usize) -> bool {
        self.k == k && self.targets == *targets && self.tokens == tokens
    }
}

/// Groups documents of `inputs` tokens each into packs: first fit in input order (each document
/// joins the first pack with room for it, else opens one), at most `limits.sequences` documents
/// and `limits.tokens` tokens a pack. Documents longer than the budget (or empty) are in no
/// pack, nor is a document left alone in one (it runs as it would unpacked). Each pack lists its
/// documents' indices in input order.
pub fn plan(inputs: &[usize], limits: PackLimits) -> Vec<Vec<usize>> {
    if !limits.is_active() {
        return Vec::new();
    }
    let mut packs: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, &n) in inputs.iter().enumerate() {
        if n == 0 || n > limits.tokens {
            continue;
        }
        let room = packs
            .iter_mut()
            .find(|(used, docs)| docs.len() < limits.sequences && used + n <= limits.tokens);
        match room {
            Some((used, docs)) => {
                *used += n;
                docs.push(i);
            }
            None => packs.push((n, vec![i])),
        }
    }
    packs
        .into_iter()
        .map(|(_, docs)| docs)
        .filter(|docs| docs.len() > 1)
        .collect()
}

/// Stands in for a backend while the flow finds out which forward pass each document will ask
/// for: tokenizing and everything else go to the real backend, [`Backend::evaluate`] is noted
/// (when it could be packed) and answered with [`EngineError::Deferred`], so the work stops
/// there. What the work returns is thrown away.
pub struct Recorder<'a> {
    inner: &'a dyn Backend,
    /// The backend's packing (`None`: nothing is noted).
    limits: Option<PackLimits>,
    /// The requests noted, in order.
    pub requests: Vec<Request>,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a dyn Backend, limits: Option<PackLimits>) -> Self {
        Self {
            inner,
            limits,
            requests: Vec::new(),
        }
    }
}

impl Backend for Recorder<'_> {
    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }
    fn tokenizer(&self) -> &dyn Tokenizer {
        self.inner.tokenizer()
    }
    fn max_window(&self) -> usize {
        self.inner.max_window()
    }
    fn can_shift(&self) -> bool {
        self.inner.can_shift()
    }
    fn evaluate(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        k: usize,
    ) -> Result<Vec<PositionStats>, EngineError> {
        let request = Request {
            tokens: tokens.to_vec(),
            targets,
            k,
        };
        if self
            .limits
            .is_some_and(|l| l.is_active() && request.inputs() <= l.tokens)
        {
            self.requests.push(request);
        }
        Err(EngineError::Deferred)
    }
    fn evaluate_selected(
        &mut self,
        _: &[u32],
        _: Range<usize>,
        _: &[bool],
        _: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        Err(EngineError::Deferred)
    }
    fn evaluate_shifted(
        &mut self,
        _: &[u32],
        _: Range<usize>,
        _: Option<&[bool]>,
        _: usize,
        _: usize,
        _: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        Err(EngineError::Deferred)
    }
}

/// The packs a backend was told about and what it has computed of them, answering each
/// document's request once.
#[derive(Default)]
pub struct Packs {
    requests: Vec<Request>,
    /// The pack each request is in, if any.
    pack_of: Vec<Option<usize>>,
    packs: Vec<Vec<usize>>,
    /// Whether each pack was run (successfully or not).
    ran: Vec<bool>,
    results: Vec<Option<Vec<PositionStats>>>,
}

impl Packs {
    /// Packs for `requests` (replacing what is left of earlier ones); `valid` says which
    /// requests the backend could run (the others run alone and fail there, as they would).
    pub fn new(
        requests: Vec<Request>,
        limits: PackLimits,
        valid: impl Fn(&Request) -> bool,
    ) -> Self {
        let sizes: Vec<usize> = requests
            .iter()
            .map(|r| if valid(r) { r.inputs() } else { 0 })
            .collect();
        let packs = plan(&sizes, limits);
        let mut pack_of = vec![None; requests.len()];
        for (p, docs) in packs.iter().enumerate() {
            for &i in docs {
                pack_of[i] = Some(p);
            }
        }
        Self {
            results: vec![None; requests.len()],
            ran: vec![false; packs.len()],
            requests,
            pack_of,
            packs,
        }
    }

    /// The answer to `tokens, targets, k` if it is a packed request: computed with its pack by
    /// `run` (given the pack's requests, returning one result each) the first time one of the
    /// pack is asked for. `None` when the request is in no pack or its pack failed: the caller
    /// runs it alone.
    pub fn answer(
        &mut self,
        tokens: &[u32],
        targets: &Range<usize>,
        k: usize,
        run: impl FnOnce(&[&Request]) -> Result<Vec<Vec<PositionStats>>, EngineError>,
    ) -> Option<Vec<PositionStats>> {
        let i = (0..self.requests.len())
            .find(|&i| self.pack_of[i].is_some() && self.requests[i].is(tokens, targets, k))?;
        let p = self.pack_of[i]?;
        if !self.ran[p] {
            self.ran[p] = true;
            let members: Vec<&Request> = self.packs[p].iter().map(|&j| &self.requests[j]).collect();
            match run(&members) {
                Ok(results) => {
                    for (&j, r) in self.packs[p].iter().zip(results) {
                        self.results[j] = Some(r);
                    }
                }
                Err(e) => tracing::debug!(
                    "a pack of {} documents failed ({e}); they run one at a time",
                    members.len()
                ),
            }
        }
        // Answered once: a document asking again (the same text twice) runs alone.
        self.pack_of[i] = None;
        self.results[i].take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: PackLimits = PackLimits {
        sequences: 3,
        tokens: 100,
    };

    #[test]
    fn first_fit_in_input_order_within_both_limits() {
        assert_eq!(
            plan(&[40, 40, 40, 30, 20, 10], L),
            [vec![0, 1, 4], vec![2, 3, 5]]
        );
        // At most three documents a pack even when tokens are left.
        assert_eq!(plan(&[1; 7], L), [vec![0, 1, 2], vec![3, 4, 5]]);
    }

    #[test]
    fn long_empty_and_lonely_documents_are_in_no_pack() {
        assert_eq!(plan(&[101, 50, 0, 50, 60], L), [vec![1, 3]]);
        assert!(plan(&[90, 90, 90], L).is_empty());
        assert!(plan(&[], L).is_empty());
        // Exactly the budget fits.
        assert_eq!(plan(&[100, 60, 40], L), [vec![1, 2]]);
    }

    #[test]
    fn packing_off_plans_nothing() {
        let off = PackLimits {
            sequences: 1,
            tokens: 512,
        };
        assert!(plan(&[10, 10], off).is_empty());
        assert!(!off.is_active() && L.is_active());
    }

    fn req(n: u32) -> Request {
        Request {
            tokens: (0..n).collect(),
            targets: 1..n as usize,
            k: 2,
        }
    }

    fn stats(id: u32) -> PositionStats {
        PositionStats {
            lse: 0.0,
            top: Vec::new(),
            true_id: id,
            true_logit: 0.0,
            true_rank: 1,
            entropy: None,
        }
    }

    #[test]
    fn a_pack_runs_once_and_answers_each_member_once() {
        let reqs = vec![req(30), req(40), req(200), req(20)];
        let mut packs = Packs::new(reqs.clone(), L, |_| true);
        let mut runs = 0;
        let mut run = |members: &[&Request]| {
            runs += 1;
            Ok(members
                .iter()
                .map(|r| vec![stats(r.tokens.len() as u32)])
                .collect())
        };
        let r1 = reqs[1].clone();
        let got = packs.answer(&r1.tokens, &r1.targets, 2, &mut run).unwrap();
        assert_eq!(got[0].true_id, 40);
        let r0 = reqs[0].clone();
        assert_eq!(
            packs.answer(&r0.tokens, &r0.targets, 2, &mut run).unwrap()[0].true_id,
            30
        );
        // Asked again: runs alone. Too long: in no pack. Another k: not the request planned.
        assert!(packs.answer(&r0.tokens, &r0.targets, 2, &mut run).is_none());
        let r2 = reqs[2].clone();
        assert!(packs.answer(&r2.tokens, &r2.targets, 2, &mut run).is_none());
        let r3 = reqs[3].clone();
        assert!(packs.answer(&r3.tokens, &r3.targets, 5, &mut run).is_none());
        assert_eq!(
            packs.answer(&r3.tokens, &r3.targets, 2, &mut run).unwrap()[0].true_id,
            20
        );
        assert_eq!(runs, 1);
    }

    #[test]
    fn a_failed_pack_leaves_its_members_to_run_alone() {
        let reqs = vec![req(30), req(40)];
        let mut packs = Packs::new(reqs.clone(), L, |_| true);
        let fail = |_: &[&Request]| Err(EngineError::Forward("no".into()));
        assert!(packs
            .answer(&reqs[0].tokens, &reqs[0].targets, 2, fail)
            .is_none());
        assert!(packs
            .answer(&reqs[1].tokens, &reqs[1].targets, 2, |_| unreachable!())
            .is_none());
        // A request the backend cannot run is never packed.
        let mut packs = Packs::new(reqs.clone(), L, |r| r.tokens.len() != 30);
        assert!(packs
            .answer(&reqs[1].tokens, &reqs[1].targets, 2, |_| unreachable!())
            .is_none());
    }
}
