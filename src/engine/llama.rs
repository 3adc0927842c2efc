//! The embedded engine: llama.cpp (through `llama-cpp-2`) on GGUF models.
//!
//! Why llama.cpp: it loads every common GGUF architecture with its exact tokenizer, and its CPU
//! kernels are the fastest measured here (see docs/benchmarks.md). It is built with every CPU
//! kernel variant as a loadable module; ggml picks the best one for the CPU it finds at run time,
//! so one binary runs on any x86-64 machine without `-march=native`.
//!
//! Quantized files are by default expanded once to F32 (cached beside the models): the forward
//! pass then computes exactly the function the stored weights define, and it is faster on CPU
//! than the low-bit kernels, which also quantize activations on the fly.

use std::mem::ManuallyDrop;
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend as RawBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::model_store::{self, Precision};
use super::pack::{PackLimits, Packs, Request};
use super::{
    fused, window, Backend, ChatTemplateSpec, EngineError, ModelInfo, Tokenized, Tokenizer,
};
use crate::gguf;
use crate::metrics::PositionStats;

/// Settings of the embedded engine.
#[derive(Debug, Clone)]
pub struct LlamaOptions {
    /// CPU threads; `None` = all available cores.
    pub threads: Option<usize>,
    pub precision: Precision,
    /// Tokens per forward window; `None` = the model's training context.
    pub window: Option<usize>,
    /// Tokens per decode call (llama.cpp's micro-batch); bounds the logits buffer.
    pub ubatch: usize,
    /// Layers to offload to a GPU (only with the `cuda` feature).
    pub gpu_layers: u32,
    /// Flash attention (the command line's default; off in `Default`, the exact setting): 1.5x
    /// faster at 512-token documents, 1.75x at 2,048 and 2.1x on an 8K window on a 2-core CPU
    /// (docs/benchmarks.md, "Flash or plain attention"); results are then the same for any
    /// decode chunk size (`ubatch`) from 128 ([`window::decode_plan`]) and move slightly below
    /// that. Off = plain attention over an F32 KV cache, bit-identical for any chunking.
    pub flash_attention: bool,
    /// Most short documents run together in one decode batch, each its own sequence
    /// ([`super::pack`]); 1 runs every document alone.
    pub pack: usize,
    /// Most input tokens of such a pack; `None` = `ubatch` (one decode call a pack).
    pub pack_tokens: Option<usize>,
}

impl LlamaOptions {
    /// Documents per pack by default: 1, packing off. Packed results depend (within the
    /// attention tolerance, docs/method.md) on which documents share a pack, so a sharded or
    /// resumed `profile` would no longer give byte-identical rows; and on a quiet CPU packing
    /// gains nothing measurable (docs/benchmarks.md). 16 is a good value to turn it on.
    pub const DEFAULT_PACK: usize = 1;
}

impl Default for LlamaOptions {
    fn default() -> Self {
        Self {
            threads: None,
            precision: Precision::Auto,
            window: None,
            ubatch: 512,
            gpu_layers: 0,
            flash_attention: false,
            pack: Self::DEFAULT_PACK,
            pack_tokens: None,
        }
    }
}

/// The process-wide llama.cpp runtime (it may be initialised only once).
pub(crate) fn runtime() -> Result<&'static RawBackend, EngineError> {
    static RUNTIME: OnceLock<Result<RawBackend, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            let dir = without_amx_kernels(backends_dir());
            tracing::debug!(dir = %dir.display(), "loading ggml compute backends");
            llama_cpp_2::llama_backend::load_backends_from_path(&dir);
            RawBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Runtime(e.clone()))
}

/// Where the CPU kernel modules (`libggml-cpu-*.so`) live: `$HESNR_BACKENDS_DIR`, else a
/// `hesnr-backends` folder beside the executable (an installed copy), else the build's own folder.
pub fn backends_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HESNR_BACKENDS_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("hesnr-backends")))
    {
        if d.is_dir() {
            return d;
        }
    }
    PathBuf::from(llama_cpp_sys_2::BACKENDS_DIR.unwrap_or("."))
}

/// The kernel variant built for AMX (`sapphirerapids`) runs AMX tile instructions on quantized
/// weights; a virtual machine whose CPU advertises AMX without enabling it kills the process
/// with SIGILL there (seen on this project's CI machines). hesnr's default precision (F32) never
/// reaches those kernels, and the next-best variant (`zen4`: AVX-512, VNNI, BF16) gives
/// byte-identical F32 results, so the AMX variant is left out unless `HESNR_AMX=1`.
const AMX_VARIANT: &str = "libggml-cpu-sapphirerapids";

/// `dir`, or when it holds the AMX kernel variant (and `HESNR_AMX` is not `1`), a folder of
/// links to everything else in it, made once under the temporary folder.
fn without_amx_kernels(dir: PathBuf) -> PathBuf {
    if std::env::var_os("HESNR_AMX").is_some_and(|v| v == "1") {
        return dir;
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return dir;
    };
    let files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    let is_amx = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(AMX_VARIANT))
    };
    if !files.iter().any(|p| is_amx(p)) {
        return dir;
    }
    match link_folder(&dir, files.iter().filter(|p| !is_amx(p))) {
        Ok(filtered) => filtered,
        Err(e) => {
            tracing::warn!(
                "could not leave the AMX kernels out ({e}); loading {}",
                dir.display()
            );
            dir
        }
    }
}

/// A folder of symbolic links to `files`, named after `dir`, created atomically (a temporary
/// folder renamed into place) so that concurrent processes share one.
#[cfg(unix)]
fn link_folder<'a>(
    dir: &Path,
    files: impl Iterator<Item = &'a PathBuf>,
) -> std::io::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    dir.hash(&mut h);
    let target = std::env::temp_dir().join(format!("hesnr-backends-{:016x}", h.finish()));
    if target.is_dir() {
        return Ok(target);
    }
    let tmp = tempfile::Builder::new()
        .prefix(".hesnr-backends-")
        .tempdir_in(std::env::temp_dir())?;
    for f in files {
        if let Some(name) = f.file_name() {
            std::os::unix::fs::symlink(f, tmp.path().join(name))?;
        }
    }
    match std::fs::rename(tmp.path(), &target) {
        Ok(()) => {
            let _ = tmp.keep();
            Ok(target)
        }
        // Another process made it first.
        Err(_) if target.is_dir() => Ok(target),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn link_folder<'a>(dir: &Path, _: impl Iterator<Item = &'a PathBuf>) -> std::io::Result<PathBuf> {
    Ok(dir.to_path_buf())
}

/// A GGUF model's tokenizer (llama.cpp's, exact), with the pieces and chat template that
/// traces and rendering need. Loaded on its own (no weights) when another backend, such as a
/// remote server, does the forward pass.
pub struct GgufTokenizer {
    model: Box<LlamaModel>,
    pieces: Vec<Vec<u8>>,
    bos: Option<u32>,
    chat_template: Option<ChatTemplateSpec>,
}

impl GgufTokenizer {
    /// Loads only the vocabulary of a GGUF file (fast, no weights).
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let header = gguf::read_gguf(path)?;
        let runtime = runtime()?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model =
            LlamaModel::load_from_file(runtime, path, &params).map_err(|e| EngineError::Load {
                path: path.into(),
                message: format!("llama.cpp could not read its vocabulary ({e})"),
            })?;
        Ok(Self::from_model(Box::new(model), &header))
    }

    fn from_model(model: Box<LlamaModel>, header: &gguf::GgufFile) -> Self {
        let vocab = model.vocab();
        let n_vocab = vocab.n_tokens().max(0) as usize;
        let pieces: Vec<Vec<u8>> = (0..n_vocab)
            // Control tokens as their text (`<|im_start|>`): they appear when chat-rendered text
            // is tokenized, and traces show them.
            .map(|i| vocab.token_to_piece(LlamaToken(i as i32), true, None))
            .collect();
        let bos = vocab.should_add_bos().then(|| vocab.bos().0 as u32);
        let piece_text = |id: Option<u64>| {
            id.and_then(|i| pieces.get(i as usize))
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default()
        };
        let chat_template = header.chat_template().map(|t| ChatTemplateSpec {
            template: t.to_string(),
            bos_token: piece_text(header.get_u64("tokenizer.ggml.bos_token_id")),
            eos_token: piece_text(header.get_u64("tokenizer.ggml.eos_token_id")),
        });
        Self {
            model,
            pieces,
            bos,
            chat_template,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the model wants a BOS token in front of every sequence.
    pub fn add_bos(&self) -> bool {
        self.bos.is_some()
    }

    /// The BOS token the model wants in front of every sequence, if any.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    pub fn chat_template(&self) -> Option<ChatTemplateSpec> {
        self.chat_template.clone()
    }

    /// The raw bytes of a token (control tokens as their text).
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.piece(id)).into_owned()
    }
}

impl Tokenizer for GgufTokenizer {
    fn tokenize(&self, text: &str, special: bool) -> Result<Tokenized, EngineError> {
        GgufTokenizer::tokenize(self, text, special)
    }
    fn chat_template(&self) -> Option<ChatTemplateSpec> {
        GgufTokenizer::chat_template(self)
    }
    fn token_text(&self, id: u32) -> String {
        GgufTokenizer::token_text(self, id)
    }
}

/// The model's name: `general.name`, else the file's stem.
fn model_name(header: &gguf::GgufFile, path: &Path) -> String {
    header
        .get_str("general.name")
        .map(str::to_string)
        .unwrap_or_else(|| {
            path.file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
}

/// A model's tokenizer and chat template without its weights: what renders, masks and counts
/// tokens (`hesnr eval --check`) in seconds whatever the model's size. It is a [`Backend`] so
/// that such runs go through the one document flow; it cannot run a forward pass, and says so.
pub struct TokenizerOnly {
    tok: GgufTokenizer,
    info: ModelInfo,
}

impl TokenizerOnly {
    /// Loads the vocabulary of a GGUF file (no weights, no hashing of the file).
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let header = gguf::read_gguf(path)?;
        let tok = GgufTokenizer::load(path)?;
        let info = ModelInfo {
            path: path.to_path_buf(),
            name: model_name(&header, path),
            architecture: header.architecture().unwrap_or("unknown").to_string(),
            sha256: String::new(),
            vocab_size: tok.vocab_size(),
            train_context: header.context_length().unwrap_or(2048) as usize,
            add_bos: tok.add_bos(),
            precision: "none (tokenizer only)".into(),
            compute: "none (tokenizer only)".into(),
            threads: 1,
        };
        Ok(Self { tok, info })
    }

    /// Whether llama.cpp can shift this model's KV cache (the shift window policy), known from
    /// the architecture without loading the weights.
    pub fn can_shift_kv_cache(&self) -> bool {
        can_shift_kv_cache(&self.tok.model, &self.info.architecture)
    }
}

impl Backend for TokenizerOnly {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        &self.tok
    }

    fn max_window(&self) -> usize {
        self.info.train_context
    }

    fn evaluate(
        &mut self,
        _tokens: &[u32],
        _targets: Range<usize>,
        _k: usize,
    ) -> Result<Vec<PositionStats>, EngineError> {
        Err(EngineError::Config(format!(
            "model {} was loaded for its tokenizer only: it cannot run a forward pass",
            self.info.path.display()
        )))
    }
}

/// A loaded GGUF model with one context, ready to score windows.
pub struct LlamaCppBackend {
    // Field order matters: the context borrows the model and must be dropped first.
    ctx: ManuallyDrop<LlamaContext<'static>>,
    tok: ManuallyDrop<GgufTokenizer>,
    window: usize,
    ubatch: usize,
    /// Whether llama.cpp can shift this model's KV cache (see [`can_shift_kv_cache`]).
    can_shift: bool,
    /// How short documents are packed (`None`: never).
    pack: Option<PackLimits>,
    /// The packs of the documents the flow announced ([`Backend::plan`]).
    packs: Packs,
    /// Documents answered from a pack so far.
    packed: u64,
    info: ModelInfo,
}

impl Drop for LlamaCppBackend {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, context before the model it borrows.
        unsafe {
            ManuallyDrop::drop(&mut self.ctx);
            ManuallyDrop::drop(&mut self.tok);
        }
    }
}

impl LlamaCppBackend {
    /// Validates the file, converts it to the chosen precision if needed, and loads it.
    pub fn load(path: &Path, opts: &LlamaOptions) -> Result<Self, EngineError> {
        let header = gguf::read_gguf(path)?;
        let architecture = header.architecture().unwrap_or("unknown").to_string();
        let train_context = header.context_length().unwrap_or(2048) as usize;
        let name = model_name(&header, path);
        let sha256 = model_store::sha256_file(path).map_err(|e| EngineError::Load {
            path: path.into(),
            message: format!("cannot read: {e}"),
        })?;

        let runtime = runtime()?;
        let (run_path, precision) =
            model_store::prepare_precision(path, &sha256, &header, opts.precision)?;
        let params = LlamaModelParams::default().with_n_gpu_layers(opts.gpu_layers);
        let model = LlamaModel::load_from_file(runtime, &run_path, &params).map_err(|e| {
            EngineError::Load {
                path: run_path.clone(),
                message: format!(
                    "llama.cpp could not load it ({e}); run with RUST_LOG=debug for its log"
                ),
            }
        })?;
        let can_shift = can_shift_kv_cache(&model, &architecture);
        let tok = GgufTokenizer::from_model(Box::new(model), &header);

        let threads = opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let window = opts.window.unwrap_or(train_context).max(2);
        let ubatch = opts.ubatch.clamp(1, window);
        let pack = PackLimits {
            // llama.cpp keeps room for one output row a sequence in every decode call (so at
            // most `ubatch` sequences), and serves at most 256 sequences.
            sequences: opts.pack.clamp(1, ubatch.min(256)),
            tokens: opts.pack_tokens.unwrap_or(ubatch).clamp(1, window),
        };
        let pack = pack.is_active().then_some(pack);
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(window as u32))
            .with_n_batch(ubatch as u32)
            .with_n_ubatch(ubatch as u32)
            // One sequence a packed document; the KV cache is one buffer of `window` cells
            // shared by all of them (not `window / n_seq_max` cells each), so that one long
            // document still gets the whole window.
            .with_n_seq_max(pack.map_or(1, |p| p.sequences) as u32)
            .with_kv_unified(true)
            .with_n_threads(threads as i32)
            .with_n_threads_batch(threads as i32)
            // See LlamaOptions::flash_attention. The KV cache stays F32 either way: the model's
            // own precision, not a 16-bit approximation of it.
            .with_flash_attention_policy(if opts.flash_attention { 1 } else { 0 })
            .with_type_k(KvCacheType::F32)
            .with_type_v(KvCacheType::F32);
        // SAFETY: the model is boxed (stable address) and outlives the context: both are owned by
        // the returned value, whose Drop releases the context first.
        let model_ref: &'static LlamaModel = unsafe { &*(tok.model.as_ref() as *const LlamaModel) };
        let ctx = model_ref
            .new_context(runtime, ctx_params)
            .map_err(|e| EngineError::Load {
                path: path.into(),
                message: format!("cannot create a context of {window} tokens: {e}"),
            })?;

        let info = ModelInfo {
            path: path.to_path_buf(),
            name,
            architecture,
            sha256,
            vocab_size: tok.vocab_size(),
            train_context,
            add_bos: tok.add_bos(),
            precision: precision.to_string(),
            compute: compute_description(opts.gpu_layers),
            threads,
        };
        tracing::info!(model = %info.name, precision = %info.precision, compute = %info.compute, threads, window, "model loaded");
        Ok(Self {
            ctx: ManuallyDrop::new(ctx),
            tok: ManuallyDrop::new(tok),
            window,
            ubatch,
            can_shift,
            pack,
            packs: Packs::default(),
            packed: 0,
            info,
        })
    }
}

impl LlamaCppBackend {
    /// How many documents were answered from a pack (run with others) so far.
    pub fn documents_packed(&self) -> u64 {
        self.packed
    }
}

/// Whether llama.cpp can remove positions from this model's KV cache and move the rest back:
/// attention models with plain RoPE (or none). llama.cpp aborts the process on a K-shift it
/// cannot do (multi-section RoPE, per-layer RoPE dimensions), and cannot cut recurrent states.
fn can_shift_kv_cache(model: &LlamaModel, architecture: &str) -> bool {
    use llama_cpp_2::model::RopeType;
    matches!(
        model.rope_type(),
        None | Some(RopeType::Norm | RopeType::NeoX)
    ) && !model.is_recurrent()
        && !model.is_hybrid()
        && architecture != "step35"
}

impl Backend for LlamaCppBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        &*self.tok
    }

    fn max_window(&self) -> usize {
        self.window
    }

    fn evaluate(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        k: usize,
    ) -> Result<Vec<PositionStats>, EngineError> {
        let mut packs = std::mem::take(&mut self.packs);
        let packed = packs.answer(tokens, &targets, k, |members| self.forward_pack(members));
        self.packs = packs;
        if let Some(stats) = packed {
            self.packed += 1;
            return Ok(stats);
        }
        let mut out = Vec::with_capacity(targets.len());
        let threads = self.info.threads;
        self.forward(tokens, targets, None, None, |rows| {
            out.extend(reduce_rows(&with_true_ids(rows, tokens), k, threads)?);
            Ok(())
        })?;
        Ok(out)
    }

    fn pack_limits(&self) -> Option<PackLimits> {
        self.pack
    }

    fn plan(&mut self, requests: Vec<Request>) {
        let Some(limits) = self.pack else { return };
        let n_vocab = self.tok.vocab_size();
        // A request the forward pass would refuse runs alone, to fail with its own message.
        self.packs = Packs::new(requests, limits, |r| {
            r.targets.start > 0
                && r.targets.end <= r.tokens.len()
                && r.tokens.iter().all(|&t| (t as usize) < n_vocab)
        });
    }

    fn evaluate_selected(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        wanted: &[bool],
        k: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        self.forward_selected(tokens, targets, Some(wanted), None, k)
    }

    fn can_shift(&self) -> bool {
        self.can_shift
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
        if !self.can_shift {
            return Err(EngineError::Config(format!(
                "llama.cpp cannot shift the KV cache of a {} model: use --window-policy strided",
                self.info.architecture
            )));
        }
        if size > self.window {
            return Err(EngineError::Config(format!(
                "a shifted window of {size} tokens does not fit the context of {}",
                self.window
            )));
        }
        self.forward_selected(tokens, targets, wanted, Some(Shift { size, sinks }), k)
    }
}

/// The KV cache size and sink count of a shifted pass.
#[derive(Debug, Clone, Copy)]
pub struct Shift {
    pub size: usize,
    pub sinks: usize,
}

impl GgufTokenizer {
    /// Tokenizes with byte offsets; `special` parses control tokens written in the text (chat
    /// renderings), otherwise they stay plain text. BOS is added when the model wants one (and,
    /// with `special`, the text does not already start with it).
    pub fn tokenize(&self, text: &str, special: bool) -> Result<Tokenized, EngineError> {
        let vocab = self.model.vocab();
        let raw = vocab.tokenize(text.as_bytes(), false, special);
        let mut ids = Vec::with_capacity(raw.len() + 1);
        let mut offsets = Vec::with_capacity(raw.len() + 1);
        let starts_with_bos = raw.first().map(|t| t.0 as u32) == self.bos;
        let add_bos = self.bos.filter(|_| !(special && starts_with_bos));
        if let Some(bos) = add_bos {
            ids.push(bos);
            offsets.push(0..0);
        }
        let bytes = text.as_bytes();
        // Some tokenizers (SentencePiece) add a space in front of the text that is not in it.
        let mut pos = 0isize;
        for (n, t) in raw.iter().enumerate() {
            let id = t.0 as u32;
            let mut piece = self.piece(id);
            if n == 0 && piece.first() == Some(&b' ') && bytes.first() != Some(&b' ') {
                piece = &piece[1..];
                pos = 0;
            }
            let start = pos.max(0) as usize;
            let end = start + piece.len();
            if bytes.get(start..end) != Some(piece) {
                return Err(EngineError::Tokenize(format!(
                    "token {n} (id {id}) does not match the text at byte {start}: the tokenizer's pieces do not reproduce the input"
                )));
            }
            ids.push(id);
            offsets.push(start..end);
            pos = end as isize;
        }
        if pos as usize != bytes.len() {
            return Err(EngineError::Tokenize(format!(
                "tokens cover {pos} of {} bytes of the text",
                bytes.len()
            )));
        }
        Ok(Tokenized {
            ids,
            offsets,
            bos: add_bos.is_some(),
        })
    }
}

/// Reduces a decode chunk's rows on all threads (llama.cpp's workers are idle meanwhile);
/// rows are independent, so the result is the same as a sequential pass, in order.
/// Rows are (position, the token at it, logits row).
fn reduce_rows(
    rows: &[(usize, u32, &[f32])],
    k: usize,
    threads: usize,
) -> Result<Vec<PositionStats>, EngineError> {
    let reduce = |part: &[(usize, u32, &[f32])]| -> Result<Vec<PositionStats>, EngineError> {
        part.iter()
            .map(|&(t, id, row)| {
                fused::reduce_row(row, id, k).map_err(|source| EngineError::Row {
                    position: t,
                    source,
                })
            })
            .collect()
    };
    if threads <= 1 || rows.len() < 32 {
        return reduce(rows);
    }
    let per = rows.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks(per)
            .map(|part| s.spawn(move || reduce(part)))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for h in handles {
            out.extend(h.join().expect("row reduction does not panic")?);
        }
        Ok(out)
    })
}

/// One document's (position, row) pairs with the token at each position.
fn with_true_ids<'r>(rows: &[(usize, &'r [f32])], tokens: &[u32]) -> Vec<(usize, u32, &'r [f32])> {
    rows.iter().map(|&(t, row)| (t, tokens[t], row)).collect()
}

impl LlamaCppBackend {
    /// Runs several documents' requests (each valid for [`LlamaCppBackend::forward`], all with
    /// one `k`, together within the pack's token budget) as sequences 0, 1, ... of one fresh KV
    /// cache: document after document, in decode chunks of at most `ubatch` tokens (so at most
    /// `ubatch` logits rows exist at once), each document at positions from 0. Returns each
    /// document's statistics, as [`Backend::evaluate`] gives them alone (within the attention
    /// tolerance of docs/method.md).
    fn forward_pack(
        &mut self,
        members: &[&Request],
    ) -> Result<Vec<Vec<PositionStats>>, EngineError> {
        self.zeroing_after_failure(|b| b.forward_pack_once(members))
    }

    /// Runs one pass; if it fails, zeroes the whole KV cache, which the pass may have left with
    /// non-finite values (see [`Self::reset_cache`]): the next pass must not meet them.
    fn zeroing_after_failure<T>(
        &mut self,
        pass: impl FnOnce(&mut Self) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let result = pass(self);
        if result.is_err() {
            self.ctx.clear_kv_cache();
        }
        result
    }

    /// One decode call; returns how long it took in milliseconds, for the caller's debug log.
    fn decode(&mut self, batch: &mut LlamaBatch) -> Result<u64, EngineError> {
        let t0 = std::time::Instant::now();
        self.ctx
            .decode(batch)
            .map_err(|e| EngineError::Forward(e.to_string()))?;
        Ok(t0.elapsed().as_millis() as u64)
    }

    fn forward_pack_once(
        &mut self,
        members: &[&Request],
    ) -> Result<Vec<Vec<PositionStats>>, EngineError> {
        let k = members.first().map_or(0, |r| r.k);
        if members.iter().any(|r| r.k != k) {
            return Err(EngineError::Forward("a pack mixes values of k".into()));
        }
        let threads = self.info.threads;
        // (document, input index) of every token fed, document after document.
        let fed: Vec<(usize, usize)> = members
            .iter()
            .enumerate()
            .flat_map(|(d, r)| (0..r.inputs()).map(move |i| (d, i)))
            .collect();
        let mut out: Vec<Vec<PositionStats>> = members
            .iter()
            .map(|r| Vec::with_capacity(r.targets.len()))
            .collect();
        let wanted = |d: usize, i: usize| members[d].targets.contains(&(i + 1));
        self.reset_cache();
        let mut batch = LlamaBatch::new(self.ubatch, 1);
        for chunk in fed.chunks(self.ubatch) {
            batch.clear();
            for &(d, i) in chunk {
                batch
                    .add(
                        LlamaToken(members[d].tokens[i] as i32),
                        i as i32,
                        &[d as i32],
                        wanted(d, i),
                    )
                    .map_err(|e| EngineError::Forward(e.to_string()))?;
            }
            let ms = self.decode(&mut batch)?;
            tracing::debug!(
                documents = members.len(),
                tokens = chunk.len(),
                ms,
                "decode (packed)"
            );
            let rows: Vec<(usize, u32, &[f32])> = chunk
                .iter()
                .enumerate()
                .filter(|&(_, &(d, i))| wanted(d, i))
                .map(|(b, &(d, i))| {
                    (
                        i + 1,
                        members[d].tokens[i + 1],
                        self.ctx.get_logits_ith(b as i32),
                    )
                })
                .collect();
            let docs: Vec<usize> = chunk
                .iter()
                .filter(|&&(d, i)| wanted(d, i))
                .map(|&(d, _)| d)
                .collect();
            for (d, s) in docs.into_iter().zip(reduce_rows(&rows, k, threads)?) {
                out[d].push(s);
            }
        }
        Ok(out)
    }

    /// Empties the KV cache for a fresh pass: only which cells are used is reset (llama.cpp's
    /// `clear_kv_cache` also zeroes the whole buffer, ~0.4 GB for the default model's 8K
    /// window, once per document). Cells left from earlier passes are masked out of attention
    /// (flash attention skips them; plain attention weighs them by exactly 0), so the results
    /// are the same; after a failed pass, which may have left non-finite values there (and
    /// 0 x NaN is NaN), the buffer is zeroed too.
    fn reset_cache(&mut self) {
        if !matches!(self.ctx.clear_kv_cache_seq(None, None, None), Ok(true)) {
            self.ctx.clear_kv_cache();
        }
    }

    /// [`LlamaCppBackend::forward`] with the rows reduced to statistics, `None` where not wanted.
    fn forward_selected(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        wanted: Option<&[bool]>,
        shift: Option<Shift>,
        k: usize,
    ) -> Result<Vec<Option<PositionStats>>, EngineError> {
        let start = targets.start;
        let mut out: Vec<Option<PositionStats>> = vec![None; targets.len()];
        let threads = self.info.threads;
        self.forward(tokens, targets, wanted, shift, |rows| {
            let stats = reduce_rows(&with_true_ids(rows, tokens), k, threads)?;
            for (&(t, _), s) in rows.iter().zip(stats) {
                out[t - start] = Some(s);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Teacher-forces `tokens` as a fresh sequence and hands the logits rows of each decode
    /// chunk to `rows` as (target position, row) pairs, in order; at most `ubatch` rows exist at
    /// once, so memory does not grow with the document.
    ///
    /// With `wanted` (one flag per target), only the flagged targets get logits: the output
    /// layer is skipped for the others. Up to [`window::FLASH_TILE_ROWS`] - 1 tokens after
    /// the targets may be fed ([`window::decode_plan`]).
    ///
    /// Without `shift`, `tokens` must fit the window. With it, they may be any length: the cache
    /// of `shift.size` tokens keeps the first `shift.sinks` and evicts the oldest others as
    /// [`window::shift_plan`] says (the shift window policy).
    pub fn forward(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        wanted: Option<&[bool]>,
        shift: Option<Shift>,
        rows: impl FnMut(&[(usize, &[f32])]) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        self.zeroing_after_failure(|b| b.forward_once(tokens, targets, wanted, shift, rows))
    }

    fn forward_once(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        wanted: Option<&[bool]>,
        shift: Option<Shift>,
        mut rows: impl FnMut(&[(usize, &[f32])]) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        if wanted.is_some_and(|w| w.len() != targets.len()) {
            return Err(EngineError::Forward(format!(
                "{} target flags for {} targets",
                wanted.map_or(0, <[bool]>::len),
                targets.len()
            )));
        }
        let is_wanted =
            |t: usize| targets.contains(&t) && wanted.is_none_or(|w| w[t - targets.start]);
        let fits = shift.is_some_and(|s| s.size <= self.window) || tokens.len() <= self.window;
        if targets.start == 0 || targets.end > tokens.len() || !fits {
            return Err(EngineError::Forward(format!(
                "bad window: {} tokens, targets {:?}, window {}",
                tokens.len(),
                targets,
                self.window
            )));
        }
        let n_vocab = self.tok.vocab_size();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(EngineError::Forward(format!(
                "token id {bad} is outside the vocabulary ({n_vocab})"
            )));
        }
        self.reset_cache();
        let (size, sinks) = shift.map_or((self.window, 0), |s| (s.size, s.sinks));
        // The last target is never an input: tokens[..targets.end - 1] are needed. The plan
        // keeps every decode chunk at least FLASH_TILE_ROWS long where the text allows (running
        // on past the last target if it must: those tokens are never context for a target),
        // and every chunk computes at least MIN_OUTPUT_ROWS output rows: then ggml's kernels
        // do not change with `ubatch` or with which targets are wanted, nor do a position's
        // numbers (window::decode_plan, window::output_rows).
        let plan = window::decode_plan(
            targets.end - 1,
            tokens.len() - 1,
            size,
            self.ubatch,
            window::FLASH_TILE_ROWS,
        );
        let inputs = &tokens[..plan.last().map_or(0, |s| s.inputs.end)];
        let mut batch = LlamaBatch::new(self.ubatch, 1);
        // Positions the cache has moved back by so far: input i sits at position i - shifted.
        let mut shifted = 0usize;
        for step in plan {
            if step.evict > 0 {
                let (p0, p1) = (sinks as u32, (sinks + step.evict) as u32);
                let kv = |e: llama_cpp_2::context::kv_cache::KvCacheConversionError| {
                    EngineError::Forward(format!("shifting the KV cache: {e}"))
                };
                self.ctx
                    .kv_cache_seq_rm(0, Some(p0), Some(p1))
                    .map_err(kv)?;
                self.ctx
                    .kv_cache_seq_add(0, Some(p1), None, -(step.evict as i32))
                    .map_err(kv)?;
                shifted += step.evict;
            }
            let chunk = step.inputs;
            // A few more rows than wanted where few are, for the same reason as the padding.
            let wanted_here: Vec<bool> = chunk.clone().map(|i| is_wanted(i + 1)).collect();
            let outputs = window::output_rows(&wanted_here);
            batch.clear();
            for (i, &output) in chunk.clone().zip(&outputs) {
                batch
                    .add(
                        LlamaToken(inputs[i] as i32),
                        (i - shifted) as i32,
                        &[0],
                        output,
                    )
                    .map_err(|e| EngineError::Forward(e.to_string()))?;
            }
            let ms = self.decode(&mut batch)?;
            tracing::debug!(evict = step.evict, tokens = chunk.len(), ms, "decode");
            let chunk_rows: Vec<(usize, &[f32])> = chunk
                .clone()
                .filter(|&i| is_wanted(i + 1))
                .map(|i| (i + 1, self.ctx.get_logits_ith((i - chunk.start) as i32)))
                .collect();
            if !chunk_rows.is_empty() {
                rows(&chunk_rows)?;
            }
        }
        Ok(())
    }
}

/// Names the compute device and, on CPU, the kernel variant ggml loaded for this processor.
fn compute_description(gpu_layers: u32) -> String {
    let variant = std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            maps.lines().find_map(|l| {
                let file = l.rsplit('/').next()?;
                let v = file.strip_prefix("libggml-cpu-")?.strip_suffix(".so")?;
                Some(v.to_string())
            })
        });
    let cpu = match variant {
        Some(v) => format!("cpu ({v} kernels)"),
        None => "cpu".to_string(),
    };
    if gpu_layers > 0 {
        format!("gpu ({gpu_layers} layers) + {cpu}")
    } else {
        cpu
    }
}
