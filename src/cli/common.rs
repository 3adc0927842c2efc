//! What every command that loads a model shares: the model and metric flags, loading the
//! backend, the progress line and the terminal summary of skipped records.

use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use hesnr::data::trajectory::read::draw::Condition;
use hesnr::data::trajectory::read::{
    read_trajectories_with, DrawManifest, DrawSpec, ReadOptions, TrajectoryFormat, TrajectoryStream,
};
use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::model_store::{self, Precision};
use hesnr::engine::window::{PolicyKind, PolicyRequest};
use hesnr::engine::Backend;
use hesnr::metrics::proxy::{self, AnyMetric};
use hesnr::metrics::{MetricConfig, Pooling, SignalProb, TokenFrequencies};
use hesnr::pipeline::proxy_columns::ProxyColumns;
use hesnr::pipeline::run::{Reporter, RunLog};
use hesnr::pipeline::score::ScoreSettings;

use super::remote::RemoteArgs;

/// The flags of the embedded engine: which GGUF and how to run it.
#[derive(Args, Clone)]
pub struct LocalModelArgs {
    /// GGUF model file [default: $HESNR_MODEL, else the fetched default model]
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// CPU threads [default: all cores]
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Weight precision: auto (quantized files run as exact F32), as-is, f32, f16, bf16
    #[arg(long, default_value = "auto")]
    pub precision: Precision,
    /// Tokens per forward window [default: the model's training context]
    #[arg(long)]
    pub window: Option<usize>,
    /// Tokens per llama.cpp decode call (bounds the logits buffer)
    #[arg(long, default_value_t = 512)]
    pub ubatch: usize,
    /// Layers to offload to the GPU (builds with the `cuda` feature)
    #[arg(long, default_value_t = 0)]
    pub gpu_layers: u32,
    /// Plain attention instead of flash attention: slower, but bit-identical for any --ubatch
    /// (flash attention: for any --ubatch from 128, and ~5e-4 nats a position from plain)
    #[arg(long)]
    pub exact_attention: bool,
    /// Short documents run together in one decode batch, each its own sequence, at most this
    /// many a batch (`score`, `profile`, `track` on documents), e.g. 16; 1 (or 0) runs each
    /// document alone. Results are those of one document at a time within the attention
    /// tolerance (docs/method.md, "Short documents packed")
    #[arg(long, default_value_t = LlamaOptions::DEFAULT_PACK)]
    pub pack: usize,
    /// Most tokens of such a batch; longer documents run alone [default: --ubatch]
    #[arg(long)]
    pub pack_tokens: Option<usize>,
}

/// The model flags of a command that scores: the embedded engine's, and `--remote` to score
/// through a server instead (`serve`, which is the server, takes only the engine's).
#[derive(Args, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub local: LocalModelArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl std::ops::Deref for ModelArgs {
    type Target = LocalModelArgs;
    fn deref(&self) -> &LocalModelArgs {
        &self.local
    }
}

impl std::ops::DerefMut for ModelArgs {
    fn deref_mut(&mut self) -> &mut LocalModelArgs {
        &mut self.local
    }
}

/// `--signal`: the library's [`SignalProb`], with the spellings the command line accepts.
#[derive(Clone, Copy, ValueEnum)]
pub enum SignalArg {
    /// The softmax probability of the true token over the whole vocabulary
    Full,
    /// Its probability renormalised over the top-k
    #[value(alias = "renormalised", alias = "renorm")]
    Renormalized,
}

/// `--pooling`: the library's [`Pooling`], with the spellings the command line accepts.
#[derive(Clone, Copy, ValueEnum)]
pub enum PoolingArg {
    /// The mean over all decision tokens of all documents
    Pooled,
    /// The mean of the per-document means
    #[value(alias = "per_document", alias = "document")]
    PerDocument,
}

/// The metric definitions (method.md), shared by every command that scores.
#[derive(Args, Clone)]
pub struct MetricArgs {
    /// Candidate set size k for the renormalised entropy H_k
    #[arg(long, default_value_t = MetricConfig::DEFAULT_K)]
    pub k: usize,
    /// Decision threshold: positions with H_k > eps [default: (ln 3 + ln 4) / 2]
    #[arg(long, default_value_t = MetricConfig::DEFAULT_EPS)]
    pub eps: f64,
    /// HE-SNR signal: the true token's probability over the full vocabulary or the top-k
    #[arg(long, value_enum, default_value = "full")]
    pub signal: SignalArg,
    /// HE-SNR averaging: over all decision tokens, or the mean of per-document means
    #[arg(long, value_enum, default_value = "pooled")]
    pub pooling: PoolingArg,
    /// How texts longer than the window are scored. `shift`: every token decoded once through a
    /// sliding KV cache of --window tokens that keeps the first --sink-tokens tokens, each token
    /// with at least the window minus min(512, window/4) tokens of context. `strided`:
    /// overlapping windows every --stride tokens, each a fresh sequence (most tokens decoded
    /// twice with the default stride). E.g. `--window 2048 --window-policy strided --stride 512`
    /// [default: shift; strided with --remote, with --stride, or for a model whose cache cannot
    /// shift]
    #[arg(long, value_enum)]
    pub window_policy: Option<WindowPolicyArg>,
    /// Strided policy: distance between window starts [default: half the window]
    #[arg(long)]
    pub stride: Option<usize>,
    /// Shift policy: tokens at the start of a text kept in the cache as attention sinks
    /// (StreamingLLM) [default: 4]
    #[arg(long)]
    pub sink_tokens: Option<usize>,
    /// Metrics to report, comma-separated: names (`he_snr`, `rank__inv_freq`, `hes`,
    /// `topk_mass`) or families (`default`, `proxy`, a measure such as `rank`, `all`)
    #[arg(long, default_value = "default")]
    pub metrics: String,
    /// Proxy metrics use only the last N scored tokens of each document or trajectory
    #[arg(long)]
    pub metric_window: Option<usize>,
    /// Token frequencies for the `freq`/`inv_freq` weightings from this corpus (JSON Lines with
    /// a `text` field, or text) [default: the evaluated texts themselves]
    #[arg(long)]
    pub token_frequencies: Option<PathBuf>,
}

/// `--window-policy`: the library's [`PolicyKind`].
#[derive(Clone, Copy, ValueEnum)]
pub enum WindowPolicyArg {
    /// One pass through a sliding KV cache (every token decoded once)
    Shift,
    /// Overlapping windows every --stride tokens
    Strided,
}

impl MetricArgs {
    pub fn config(&self) -> Result<MetricConfig> {
        let metrics = MetricConfig {
            k: self.k,
            eps: self.eps,
            signal: match self.signal {
                SignalArg::Full => SignalProb::Full,
                SignalArg::Renormalized => SignalProb::Renormalized,
            },
            pooling: match self.pooling {
                PoolingArg::Pooled => Pooling::Pooled,
                PoolingArg::PerDocument => Pooling::PerDocument,
            },
        };
        metrics.validate().map_err(anyhow::Error::msg)?;
        Ok(metrics)
    }

    /// The metrics asked for with `--metrics`, checked before any model is loaded.
    pub fn selection(&self) -> Result<Vec<AnyMetric>> {
        if self.metric_window == Some(0) {
            anyhow::bail!("--metric-window must be at least 1");
        }
        proxy::parse_selection(&self.metrics).map_err(anyhow::Error::msg)
    }

    /// The registry metrics asked for, ready to fill rows (token frequencies of a given corpus
    /// are counted with the loaded model's tokenizer).
    pub fn proxy_columns(&self, backend: &dyn Backend) -> Result<ProxyColumns> {
        let metrics = proxy::proxies_of(&self.selection()?);
        let vocab = backend.info().vocab_size;
        let frequencies = match (&self.token_frequencies, metrics.is_empty()) {
            (Some(path), false) => {
                let mut table = TokenFrequencies::from_tokens([], vocab);
                let files = hesnr::data::expand_inputs(std::slice::from_ref(path))?;
                for doc in hesnr::data::read_files(&files, &Default::default()) {
                    let doc = doc.with_context(|| format!("reading {}", path.display()))?;
                    table.add(backend.tokenize(&doc.text)?.ids);
                }
                Some(table)
            }
            _ => None,
        };
        Ok(ProxyColumns::new(
            metrics,
            self.k,
            vocab,
            self.metric_window,
            frequencies,
        ))
    }

    /// The window policy as the flags ask for it.
    pub fn policy(&self) -> PolicyRequest {
        PolicyRequest {
            kind: self.window_policy.map(|p| match p {
                WindowPolicyArg::Shift => PolicyKind::Shift,
                WindowPolicyArg::Strided => PolicyKind::Strided,
            }),
            stride: self.stride,
            sinks: self.sink_tokens,
        }
    }

    /// The window settings for a loaded backend.
    pub fn settings(&self, backend: &dyn Backend) -> Result<ScoreSettings> {
        ScoreSettings::for_backend(self.config()?, backend, self.policy())
            .map_err(anyhow::Error::msg)
    }
}

/// The embedded engine on `--model`, or with `--remote`, the server (tokenizing with `--model`).
pub fn load_model(args: &ModelArgs) -> Result<Box<dyn Backend>> {
    if let Some(url) = &args.remote.remote {
        let path = model_store::resolve_model(args.model.as_deref())?;
        let b = super::remote::connect(&args.remote, url, &path, args.window)?;
        return Ok(Box::new(b));
    }
    load_local_model(&args.local)
}

/// The embedded engine on `--model`.
pub fn load_local_model(args: &LocalModelArgs) -> Result<Box<dyn Backend>> {
    let path = model_store::resolve_model(args.model.as_deref())?;
    let opts = LlamaOptions {
        threads: args.threads,
        precision: args.precision,
        window: args.window,
        ubatch: args.ubatch,
        gpu_layers: args.gpu_layers,
        flash_attention: !args.exact_attention,
        pack: args.pack,
        pack_tokens: args.pack_tokens,
    };
    let b = LlamaCppBackend::load(&path, &opts)
        .with_context(|| format!("loading model {}", path.display()))?;
    Ok(Box::new(b))
}

/// The environment variable that turns the progress line into JSON lines for a program (the
/// Python package draws its notebook progress bar from them): `HESNR_PROGRESS=json`.
pub const PROGRESS_ENV: &str = "HESNR_PROGRESS";

/// The progress line of a run on stderr, when stderr is a terminal (hidden otherwise, so that
/// logs written to a file stay clean); with `HESNR_PROGRESS=json`, one JSON line
/// `{"hesnr_progress": {...}}` on stderr at most every quarter second and at the end.
pub struct Spinner {
    bar: ProgressBar,
    label: Box<dyn Fn(&RunLog) -> String>,
    /// When the last JSON progress line was written (`None` inside: none yet); `None` when
    /// progress is not asked for as JSON.
    json: Option<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl Spinner {
    /// A spinner whose message `label` makes from the run's log.
    pub fn new(label: impl Fn(&RunLog) -> String + 'static) -> Self {
        let json = std::env::var(PROGRESS_ENV).is_ok_and(|v| v == "json");
        let bar = if std::io::stderr().is_terminal() && !json {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            label: Box::new(label),
            json: json.then(|| std::sync::Mutex::new(None)),
        }
    }

    /// Removes the line (before the command prints to the terminal mid-run).
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }

    /// Writes the JSON progress line when asked for and due (`last`: the run's end, always).
    fn write_json(&self, log: &RunLog, last: bool) {
        let Some(written) = &self.json else {
            return;
        };
        let mut written = written.lock().unwrap_or_else(|e| e.into_inner());
        let due = written.is_none_or(|t| t.elapsed().as_secs_f64() >= 0.25);
        if !(due || last) {
            return;
        }
        *written = Some(std::time::Instant::now());
        let line = serde_json::json!({"hesnr_progress": {
            "done": log.done,
            "tokens": log.tokens,
            "skipped": log.skips.count,
            "resumed": log.resumed,
            "seconds": log.elapsed(),
            "message": (self.label)(log),
        }});
        let _ = writeln!(io::stderr().lock(), "{line}");
    }
}

impl Reporter for Spinner {
    fn update(&self, log: &RunLog) {
        self.bar.set_message((self.label)(log));
        self.bar.tick();
        self.write_json(log, false);
    }

    fn finish(&self, log: &RunLog) {
        self.clear();
        self.write_json(log, true);
    }
}

/// The first skipped records of a run, under its summary; `more` says where the rest are.
pub fn print_skips(out: &mut impl Write, skipped: u64, errors: &[String], more: &str) {
    for err in errors.iter().take(5) {
        let _ = writeln!(out, "  skipped: {err}");
    }
    if skipped > 5 {
        let _ = writeln!(out, "  ... and {} more ({more})", skipped - 5);
    }
}

/// `x` with 4 decimals, or `-` when undefined (terminal tables).
pub fn num4(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.4}"))
}

/// Prints `text` and a newline on stdout. Unlike `println!`, a closed pipe (`hesnr ... | head`)
/// is an error the command returns, and `main` ends quietly on, rather than a panic; so the
/// command unwinds and removes its temporary files.
pub fn print_line(text: impl Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Whether `error` comes from writing into a closed pipe: the reader went away, which is how a
/// command-line tool is told to stop, not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Which records of a trajectory dataset make the evaluation set, and where their messages are
/// (`eval -T` and `track -T`).
#[derive(Args)]
pub struct DrawArgs {
    /// Take only records where FIELD=VALUE (or FIELD!=VALUE) holds; FIELD is a column or a dotted
    /// path (`info.exit_status`); VALUE is compared as a string, `true`/`false`, a number or
    /// `null`. Repeat for several conditions (all must hold)
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    conditions: Vec<Condition>,
    /// At most N records per instance (the first N in input order), by --instance-field
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    per_instance: Option<u64>,
    /// The field naming a record's instance, for --per-instance
    #[arg(long, value_name = "FIELD", default_value = "instance_id")]
    instance_field: String,
    /// Stop after this many records (after --where and --per-instance)
    #[arg(long)]
    limit: Option<u64>,
    /// The column holding each record's messages (found by shape when not given: `messages`,
    /// `trajectory`, `history`, or the one column of role/content messages)
    #[arg(long, value_name = "FIELD")]
    messages_field: Option<String>,
    /// Write what was drawn (the options, counts, and every record's file and line or row) to
    /// this JSON file [default, when --where, --per-instance or --limit is given: `eval`, beside
    /// -o or --summary as NAME.manifest.json; `track`, OUT/eval-set.manifest.json]
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

impl DrawArgs {
    /// What to draw.
    pub fn spec(&self) -> DrawSpec {
        DrawSpec {
            conditions: self.conditions.clone(),
            per_instance: self.per_instance.map(|n| n as usize),
            instance_field: self.instance_field.clone(),
            limit: self.limit.map(|n| n as usize),
        }
    }

    /// Whether any option of the draw or of the messages column was given.
    pub fn is_used(&self) -> bool {
        self.spec().is_active() || self.messages_field.is_some() || self.manifest.is_some()
    }

    /// How records are read: `format` and `score_rejected_actions` as given, the messages
    /// column from `--messages-field`.
    pub fn read_options(
        &self,
        format: TrajectoryFormat,
        score_rejected_actions: bool,
    ) -> ReadOptions {
        ReadOptions {
            format,
            score_rejected_actions,
            messages_field: self.messages_field.clone(),
        }
    }

    /// The trajectories of `inputs` this draw takes.
    pub fn open(&self, inputs: &[PathBuf], options: ReadOptions) -> Result<TrajectoryStream> {
        let stream = read_trajectories_with(inputs, options)?;
        let spec = self.spec();
        Ok(if spec.is_active() || self.manifest.is_some() {
            stream.drawing(spec)
        } else {
            stream
        })
    }

    /// Writes the manifest of a draw (`None`: nothing was drawn) to `--manifest` or else
    /// `default`.
    pub fn write_manifest(
        &self,
        inputs: &[PathBuf],
        manifest: Option<&DrawManifest>,
        default: Option<PathBuf>,
    ) -> Result<()> {
        let Some(manifest) = manifest else {
            return Ok(());
        };
        let Some(path) = self.manifest.clone().or(default) else {
            return Ok(());
        };
        #[derive(serde::Serialize)]
        struct Written<'a> {
            inputs: &'a [PathBuf],
            #[serde(skip_serializing_if = "Option::is_none")]
            messages_field: Option<&'a str>,
            #[serde(flatten)]
            manifest: &'a DrawManifest,
        }
        hesnr::data::write_json_atomic(
            &path,
            &Written {
                inputs,
                messages_field: self.messages_field.as_deref(),
                manifest,
            },
        )
        .with_context(|| format!("writing the manifest {}", path.display()))?;
        eprintln!(
            "drew {} of {} records; manifest: {}",
            manifest.drawn.len(),
            manifest.records_seen,
            path.display()
        );
        Ok(())
    }
}

/// `NAME.manifest.json` beside the first of `results` given that is (or will be) a regular file
/// (`rows.jsonl` -> `rows.manifest.json`): `-o /dev/null` or a pipe has no "beside".
pub fn manifest_beside(results: &[Option<&Path>]) -> Option<PathBuf> {
    let beside = results
        .iter()
        .flatten()
        .find(|p| std::fs::metadata(p).map_or(true, |m| m.is_file()))?;
    let stem = beside.file_stem()?.to_string_lossy();
    let stem = stem.strip_suffix(".jsonl").unwrap_or(&stem);
    Some(beside.with_file_name(format!("{stem}.manifest.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_goes_beside_a_file_never_beside_a_device() {
        let rows = Path::new("out/rows.jsonl");
        let summary = Path::new("out/summary.json");
        assert_eq!(
            manifest_beside(&[Some(rows), Some(summary)]),
            Some(PathBuf::from("out/rows.manifest.json"))
        );
        let null = Path::new("/dev/null");
        assert_eq!(
            manifest_beside(&[Some(null), Some(summary)]),
            Some(PathBuf::from("out/summary.manifest.json"))
        );
        assert_eq!(manifest_beside(&[Some(null), None]), None);
    }
}
