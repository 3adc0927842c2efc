//! Model backends: load a model, tokenize with character offsets, and turn teacher-forced
//! forward passes into [`PositionStats`]. Everything above this module sees only the
//! [`Backend`] trait and the statistics, never logits.

pub mod fused;
pub mod llama;
pub mod model_store;
pub mod pack;
pub mod remote;
pub mod window;

use std::ops::Range;
use std::path::PathBuf;

use serde::Serialize;

use crate::metrics::PositionStats;
pub use window::{Policy, Windowing};

/// Tokens of one text, with where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub ids: Vec<u32>,
    /// Byte range in the source text per token; a BOS token added by the model gets an empty
    /// range at 0. A token whose bytes are part of a multi-byte character spans that character.
    pub offsets: Vec<Range<usize>>,
    /// Whether `ids[0]` is a BOS token that the model requires and the text does not contain.
    pub bos: bool,
}

impl Tokenized {
    /// The first position that is a real prediction target (BOS, or the first token of a text
    /// without one, has nothing to be predicted from).
    pub fn first_target(&self) -> usize {
        1
    }
}

/// What a loaded model is, for logs and for the provenance written beside every result.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub name: String,
    pub architecture: String,
    pub sha256: String,
    pub vocab_size: usize,
    /// Context length the model was trained with (from the GGUF).
    pub train_context: usize,
    pub add_bos: bool,
    /// Weight precision used for the forward pass (e.g. `f32`, or `as-is` for the file's own).
    pub precision: String,
    /// The compute backend and CPU kernel variant picked at load (e.g. `CPU (icelake)`).
    pub compute: String,
    pub threads: usize,
}

/// A chat template as a model file carries it (GGUF `tokenizer.chat_template`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplateSpec {
    pub template: String,
    pub bos_token: String,
    pub eos_token: String,
}

/// Errors of a backend, each saying which model or document was involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("llama.cpp runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("tokenizer: {0}")]
    Tokenize(String),
    #[error("forward pass failed: {0}")]
    Forward(String),
    #[error("position {position}: {source}")]
    Row {
        position: usize,
        source: fused::RowError,
    },
    #[error("{0}")]
    Config(String),
    #[error("remote server: {0}")]
    Remote(String),
    /// What a [`pack::Recorder`] answers a forward pass with: the request was noted for
    /// packing. Never reaches a user (the work it stops is thrown away).
    #[error("the forward pass was deferred to be packed with other documents'")]
    Deferred,
    /// The server could not be reached even after retries: every further document would fail
    /// the same way, so runs stop (and resume later) instead of skipping documents.
    #[error("remote server unavailable: {0}")]
    Unavailable(String),
    /// A server's answer failed one of hesnr's checks (an error status, not JSON, over its
    /// size bound, not the shape asked for, numbers that fail verification): the server
    /// would answer every further document the same way, so runs stop (and resume later)
    /// rather than skip documents.
    #[error("remote server failed the `{check}` check: {message}")]
    ServerFault {
        check: &'static str,
        message: String,
    },
}

impl EngineError {
    /// Whether the run must stop rather than skip the document at hand.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::ServerFault { .. })
    }
}

/// What hesnr needs of a model's tokenizer. [`llama::GgufTokenizer`] (llama.cpp's, exact) is the
/// one every backend uses.
pub trait Tokenizer {
    /// Tokenizes with byte offsets; `special` parses control tokens written in the text (chat
    /// renderings), otherwise they stay plain text. BOS is added when the model wants one.
    fn tokenize(&self, text: &str, special: bool) -> Result<Tokenized, EngineError>;
    /// The model's own chat template and the special tokens it refers to, if it ships one.
    fn chat_template(&self) -> Option<ChatTemplateSpec>;
    /// The text of a token (lossy where its bytes are not valid UTF-8 on their own).
    fn token_text(&self, id: u32) -> String;
}

/// A causal LM that can be teacher-forced. Implementations: [`llama::LlamaCppBackend`] (embedded)
/// and [`remote::RemoteBackend`] (a completions server).
pub trait Backend {
    fn info(&self) -> &ModelInfo;

    /// The model's tokenizer (every backend tokenizes with the GGUF's own, exact one, so that the
    /// tokens a remote server is sent are the ones the embedded engine would run).
    fn tokenizer(&self) -> &dyn Tokenizer;

    /// Tokenizes raw text as the model would see it: the model's BOS if it wants one, control
    /// tokens in the text kept as plain text (never parsed as special).
    fn tokenize(&self, text: &str) -> Result<Tokenized, EngineError> {
        self.tokenizer().tokenize(text, false)
    }

    /// Tokenizes text rendered by a chat template: control tokens written in it
    /// (`<|im_start|>`, `<s>`) become their special ids. BOS is added when the model wants one
    /// and the text does not already start with it.
    fn tokenize_chat(&self, text: &str) -> Result<Tokenized, EngineError> {
        self.tokenizer().tokenize(text, true)
    }

    /// The model's own chat template and the special tokens it refers to, if it ships one.
    fn chat_template(&self) -> Option<ChatTemplateSpec> {
        self.tokenizer().chat_template()
    }

    /// The text of a token, for traces (bytes that are not valid UTF-8 on their own are shown
    /// lossily).
    fn token_text(&self, id: u32) -> String {
        self.tokenizer().token_text(id)
    }

    /// The largest number of tokens one forward pass may hold.
    fn max_window(&self) -> usize;

    /// Runs `tokens` as a fresh sequence and returns, for each t in `targets` (indices into
    /// `tokens`, all >= 1), the statistics of predicting `tokens[t]` from `tokens[..t]`.
    ///
    /// Tokens after the last target are never context for a target; a backend may still
    /// decode some of them (the embedded engine does, up to 63, so that its last decode chunk
    /// has the same attention kernel whichever targets were asked for). Here and in the other
    /// `evaluate` methods.
    fn evaluate(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        k: usize,
    ) -> Result<Vec<PositionStats>, EngineError>;

    /// Like [`Backend::evaluate`], but only the targets with `wanted[t - targets.start]` are
    /// computed (the others are `None`): the whole window is still the context. Backends that can
    /// skip the output layer for unwanted rows override this; the result is the same.
    fn evaluate_selected(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        wanted: &[bool],
        k: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        let all = self.evaluate(tokens, targets, k)?;
        Ok(all
            .into_iter()
            .zip(wanted)
            .map(|(p, &w)| w.then_some(p))
            .collect())
    }

    /// Whether [`Backend::evaluate_shifted`] works: a local KV cache whose positions can be shifted
    /// (the shift window policy, [`window::Policy::Shift`]).
    fn can_shift(&self) -> bool {
        false
    }

    /// Runs `tokens` once, as one sequence, through a KV cache of `size` tokens (at most
    /// [`Backend::max_window`]) that keeps the first `sinks` tokens and evicts the oldest others
    /// as [`window::shift_plan`] says, and returns for each t in `targets` (indices into
    /// `tokens`, all >= 1) with `wanted[t - targets.start]` (every t when `None`) the statistics
    /// of predicting `tokens[t]` from what the cache holds; `None` for the others.
    fn evaluate_shifted(
        &mut self,
        _tokens: &[u32],
        _targets: Range<usize>,
        _wanted: Option<&[bool]>,
        _size: usize,
        _sinks: usize,
        _k: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        Err(EngineError::Config(
            "this backend cannot shift a KV cache: use --window-policy strided".into(),
        ))
    }

    /// Another handle on the same model for a worker thread, when the backend can serve several
    /// documents at once (a remote server); `None` for a backend bound to one local context.
    fn fork(&self) -> Option<Box<dyn Backend + Send>> {
        None
    }

    /// How many documents the backend wants in flight at once.
    fn parallelism(&self) -> usize {
        1
    }

    /// How many short documents the backend can run in one decode batch
    /// ([`pack`]); `None` (the default) runs every document alone.
    fn pack_limits(&self) -> Option<pack::PackLimits> {
        None
    }

    /// Announces the forward passes ([`Backend::evaluate`] calls) the next documents will ask
    /// for, in order, so that a backend with [`Backend::pack_limits`] runs them together; the
    /// answers are those of the same calls one at a time (within the attention tolerance of
    /// docs/method.md). Replaces earlier plans. The default ignores it.
    fn plan(&mut self, _requests: Vec<pack::Request>) {}
}

/// A boxed backend is a backend (the command line picks embedded or remote at run time).
impl<B: Backend + ?Sized> Backend for Box<B> {
    fn info(&self) -> &ModelInfo {
        (**self).info()
    }
    fn tokenizer(&self) -> &dyn Tokenizer {
        (**self).tokenizer()
    }
    fn max_window(&self) -> usize {
        (**self).max_window()
    }
    fn evaluate(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        k: usize,
    ) -> Result<Vec<PositionStats>, EngineError> {
        (**self).evaluate(tokens, targets, k)
    }
    fn evaluate_selected(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        wanted: &[bool],
        k: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        (**self).evaluate_selected(tokens, targets, wanted, k)
    }
    fn can_shift(&self) -> bool {
        (**self).can_shift()
    }
    fn evaluate_shifted(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        wanted: Option<&[bool]>,
        size: usize,
        sinks: usize,
        k: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        (**self).evaluate_shifted(tokens, targets, wanted, size, sinks, k)
    }
    fn fork(&self) -> Option<Box<dyn Backend + Send>> {
        (**self).fork()
    }
    fn parallelism(&self) -> usize {
        (**self).parallelism()
    }
    fn pack_limits(&self) -> Option<pack::PackLimits> {
        (**self).pack_limits()
    }
    fn plan(&mut self, requests: Vec<pack::Request>) {
        (**self).plan(requests)
    }
}

/// Scores every target of a tokenized document through the window policy, in order.
///
/// Returns one [`PositionStats`] per position `first_target..ids.len()`. A text that fits in one
/// window is one forward pass under either policy (the same numbers).
pub fn score_tokens(
    backend: &mut dyn Backend,
    tokens: &Tokenized,
    windowing: &Windowing,
    k: usize,
) -> Result<Vec<PositionStats>, EngineError> {
    windowing
        .policy
        .check(windowing.size)
        .map_err(EngineError::Config)?;
    let (n, first) = (tokens.ids.len(), tokens.first_target());
    let mut out = Vec::with_capacity(n.saturating_sub(first));
    match windowing.policy {
        Policy::Shift { sinks } if n > windowing.size => {
            let all =
                backend.evaluate_shifted(&tokens.ids, first..n, None, windowing.size, sinks, k)?;
            for p in all {
                out.push(p.ok_or_else(|| {
                    EngineError::Forward("the shifted pass left a target unscored".into())
                })?);
            }
        }
        policy => {
            let stride = match policy {
                Policy::Strided { stride } => stride,
                // Fits in one window: the stride is never used.
                Policy::Shift { .. } => windowing.size / 2,
            };
            for w in window::plan(n, first, windowing.size, stride) {
                let local = (w.targets.start - w.tokens.start)..(w.targets.end - w.tokens.start);
                out.extend(backend.evaluate(&tokens.ids[w.tokens.clone()], local, k)?);
            }
        }
    }
    Ok(out)
}

/// Scores the targets of a tokenized text that `wanted` selects (one flag per token), through
/// the window policy: every token is still context, but only selected positions are computed,
/// and no token after the last selected one is run, beyond the few a backend may add to keep
/// its decode chunks alike (nor, under the strided policy, windows holding no selected target).
///
/// Returns one entry per position `first_target..ids.len()`, `Some` where selected. The values
/// are those [`score_tokens`] gives at the same positions.
pub fn score_selected(
    backend: &mut dyn Backend,
    tokens: &Tokenized,
    wanted: &[bool],
    windowing: &Windowing,
    k: usize,
) -> Result<Vec<Option<PositionStats>>, EngineError> {
    windowing
        .policy
        .check(windowing.size)
        .map_err(EngineError::Config)?;
    assert_eq!(wanted.len(), tokens.ids.len(), "one flag per token");
    let (n, first) = (tokens.ids.len(), tokens.first_target());
    let mut out = Vec::with_capacity(n.saturating_sub(first));
    let stride = match windowing.policy {
        Policy::Strided { stride } => stride,
        Policy::Shift { sinks } => {
            let last = (first..n).rev().find(|&t| wanted[t]);
            match last {
                Some(last) if last + 1 > windowing.size => {
                    out.extend(backend.evaluate_shifted(
                        &tokens.ids,
                        first..last + 1,
                        Some(&wanted[first..last + 1]),
                        windowing.size,
                        sinks,
                        k,
                    )?);
                    out.extend(std::iter::repeat_n(None, n - last - 1));
                    return Ok(out);
                }
                // Nothing selected, or all of it within the first window: one window pass.
                _ => windowing.size / 2,
            }
        }
    };
    for w in window::plan(n, first, windowing.size, stride) {
        let flags = &wanted[w.targets.clone()];
        if !flags.iter().any(|&f| f) {
            out.extend(std::iter::repeat_n(None, flags.len()));
            continue;
        }
        // Targets end at the last wanted one: later tokens are not context for it (the backend
        // gets them anyway and may decode a few to keep its chunks alike, Backend::evaluate).
        let last = w.targets.start + flags.iter().rposition(|&f| f).expect("one is wanted");
        let local = (w.targets.start - w.tokens.start)..(last + 1 - w.tokens.start);
        out.extend(backend.evaluate_selected(
            &tokens.ids[w.tokens.clone()],
            local,
            &flags[..last + 1 - w.targets.start],
            k,
        )?);
        out.extend(std::iter::repeat_n(None, w.targets.end - last - 1));
    }
    Ok(out)
}
