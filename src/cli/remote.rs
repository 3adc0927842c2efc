//! Remote logit servers at the command line: the `--remote` flags every model-using command
//! takes, `hesnr probe` and `hesnr serve`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use hesnr::engine::remote::client::{redact_url, ClientOptions, DEFAULT_TOTAL_TIMEOUT_SECS};
use hesnr::engine::remote::protocol::Protocol;
use hesnr::engine::remote::verify::CHECKS;
use hesnr::engine::remote::{self, RemoteBackend, RemoteOptions, TokenizerCheck};
use hesnr::engine::{model_store, Backend};
use hesnr::server::{self, Fault, ServeOptions};

use super::common::{load_local_model, LocalModelArgs};

/// Flags for scoring through an OpenAI-compatible completions server instead of the embedded
/// engine. `--model` then names the GGUF whose tokenizer matches the served model.
#[derive(Args, Clone, Debug)]
pub struct RemoteArgs {
    /// Base URL of a completions server returning prompt log-probabilities (vLLM, `hesnr serve`),
    /// e.g. http://gpu-node:8000; `-m` then names a GGUF with the served model's tokenizer. Every
    /// answer is verified (docs/remote.md)
    #[arg(long, env = "HESNR_REMOTE_URL", help_heading = "Remote server")]
    pub remote: Option<String>,
    /// API key sent as a bearer token (never written to outputs or logs)
    #[arg(
        long,
        env = "HESNR_API_KEY",
        hide_env_values = true,
        help_heading = "Remote server"
    )]
    pub api_key: Option<String>,
    /// Served model name [default: the only model the server lists]
    #[arg(long, help_heading = "Remote server")]
    pub remote_model: Option<String>,
    /// Request form [default: the first that passes the checks]
    #[arg(long, value_enum, default_value_t = ProtocolChoice::Auto, help_heading = "Remote server")]
    pub remote_protocol: ProtocolChoice,
    /// Send text for the server to tokenize (checked against hesnr's tokenization) instead of ids
    #[arg(long, help_heading = "Remote server")]
    pub remote_text: bool,
    /// Documents in flight at once (1 to 256)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Remote server")]
    pub concurrency: u16,
    /// Seconds before a request is abandoned and retried (over 0, at most a day)
    #[arg(long, default_value_t = 300.0, value_parser = parse_timeout, help_heading = "Remote server")]
    pub timeout: f64,
    /// Retries of a failed request (429, 5xx, refused connection, timeout), with backoff (0 to 100)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=100), help_heading = "Remote server")]
    pub retries: u32,
    /// Seconds one request may take in all, every retry and wait included (at least one full
    /// --timeout); past it the run stops, resumable
    #[arg(long, default_value_t = DEFAULT_TOTAL_TIMEOUT_SECS, value_parser = parse_timeout, help_heading = "Remote server")]
    pub total_timeout: f64,
    /// Largest server answer read, in MiB (1 to 65536) [default: what the request can need:
    /// about 0.5 KiB per token and candidate, plus 1 MiB]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536), help_heading = "Remote server")]
    pub max_response_mb: Option<u32>,
}

/// `--timeout`: seconds, over 0 and at most a day. `inf`, `nan`, 0 and negative values are
/// refused here rather than becoming a panic or a 1 ms timeout blamed on the server.
fn parse_timeout(s: &str) -> Result<f64, String> {
    const DAY: f64 = 86_400.0;
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if secs.is_finite() && secs > 0.0 && secs <= DAY {
        Ok(secs)
    } else {
        Err(format!(
            "'{s}': give seconds over 0 and at most {DAY} (a day)"
        ))
    }
}

/// Which request form to use with a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolChoice {
    Auto,
    /// vLLM's `prompt_logprobs`
    PromptLogprobs,
    /// `echo` + `logprobs` (legacy OpenAI form)
    Echo,
}

impl RemoteArgs {
    fn options(&self, url: &str, window: Option<usize>) -> RemoteOptions {
        RemoteOptions {
            client: ClientOptions {
                base_url: url.to_string(),
                api_key: self.api_key.clone().filter(|k| !k.is_empty()),
                timeout: Duration::from_secs_f64(self.timeout),
                retries: self.retries,
                backoff: Duration::from_millis(500),
                total_timeout: Duration::from_secs_f64(self.total_timeout),
                max_answer_bytes: self.max_response_mb.map(|mb| mb as usize * (1 << 20)),
            },
            model: self.remote_model.clone(),
            protocol: match self.remote_protocol {
                ProtocolChoice::Auto => None,
                ProtocolChoice::PromptLogprobs => Some(Protocol::PromptLogprobs),
                ProtocolChoice::Echo => Some(Protocol::Echo),
            },
            send_text: self.remote_text,
            window,
            concurrency: usize::from(self.concurrency),
        }
    }
}

/// Connects to the server named by `--remote`, tokenizing with the GGUF at `tokenizer`.
pub fn connect(
    args: &RemoteArgs,
    url: &str,
    tokenizer: &Path,
    window: Option<usize>,
) -> Result<RemoteBackend> {
    RemoteBackend::connect(tokenizer, &args.options(url, window))
        .with_context(|| format!("connecting to {}", redact_url(url)))
}

pub const PROBE_EXAMPLES: &str = "Examples:
  hesnr probe http://localhost:8000
  hesnr probe http://gpu-node:8000 --model tokenizer-of-served-model.gguf --json

Sends one small code prompt in each request form (prompt-logprobs / echo; token ids / text) and
runs every check hesnr applies to a server's answers. A form marked ok is safe to score with.";

#[derive(Args)]
pub struct ProbeArgs {
    /// Base URL of the server
    url: String,
    /// GGUF whose tokenizer matches the served model [default: the default model]
    #[arg(long, short = 'm')]
    model: Option<std::path::PathBuf>,
    #[arg(long, env = "HESNR_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Served model name [default: the first the server lists]
    #[arg(long)]
    remote_model: Option<String>,
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Print the findings as JSON
    #[arg(long)]
    json: bool,
}

pub fn run_probe(args: ProbeArgs) -> Result<()> {
    let tokenizer = model_store::resolve_model(args.model.as_deref())?;
    let remote = RemoteArgs {
        remote: Some(args.url.clone()),
        api_key: args.api_key.clone(),
        remote_model: args.remote_model.clone(),
        remote_protocol: ProtocolChoice::Auto,
        remote_text: false,
        concurrency: 1,
        timeout: args.timeout,
        retries: 1,
        total_timeout: DEFAULT_TOTAL_TIMEOUT_SECS,
        max_response_mb: None,
    };
    let report = remote::probe(&tokenizer, &remote.options(&args.url, None))
        .with_context(|| format!("probing {}", redact_url(&args.url)))?;
    let (model, results) = (&report.model, &report.forms);
    if args.json {
        let v = serde_json::json!({
            "url": redact_url(&args.url),
            "model": model,
            "tokenizer": report.tokenizer,
            "checks": CHECKS.iter().map(|(n, d)| serde_json::json!({"name": n, "what": d})).collect::<Vec<_>>(),
            "forms": results,
        });
        super::common::print_line(serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "server {}  model {model}", redact_url(&args.url))?;
    let tokenizer = match &report.tokenizer {
        TokenizerCheck::Agrees => "agrees with -m (compared through /tokenize)".to_string(),
        TokenizerCheck::NotAvailable => {
            "not compared (no /tokenize); answers checked token by token".to_string()
        }
        TokenizerCheck::Differs(why) => format!("DIFFERS: {why}"),
    };
    writeln!(out, "tokenizer: {tokenizer}")?;
    writeln!(
        out,
        "{:<16} {:<6} {:<16} {:>6} {:>9}  verdict",
        "form", "prompt", "prompt logprobs", "top-k", "mean NLL"
    )?;
    for r in results {
        let verdict = match (&r.failed_check, r.prompt_logprobs) {
            (_, false) => format!("unsupported: {}", r.detail),
            (None, true) => "ok".to_string(),
            (Some(c), true) => format!("WRONG ({c}): {}", r.detail),
        };
        writeln!(
            out,
            "{:<16} {:<6} {:<16} {:>6} {:>9}  {verdict}",
            r.protocol.to_string(),
            if r.send_text { "text" } else { "ids" },
            if r.prompt_logprobs { "yes" } else { "no" },
            r.top_k.map_or("-".into(), |k| format!("{k}/{}", r.asked)),
            r.mean_nll.map_or("-".into(), |x| format!("{x:.4}")),
        )?;
    }
    writeln!(
        out,
        "checks: {}",
        CHECKS.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
    )?;
    Ok(())
}

pub const SERVE_EXAMPLES: &str = "Examples:
  hesnr serve --port 8000
  hesnr serve -m model.gguf --port 8000 --api-key \"$KEY\"
  hesnr serve -m model.gguf --host 0.0.0.0 --port 8000 --api-key \"$KEY\"   # other machines
  hesnr score docs.jsonl --remote http://localhost:8000

Serves POST /v1/completions with vLLM's `prompt_logprobs` (and `echo` + `logprobs`), GET /v1/models,
POST /tokenize and GET /health. Prompts are scored, not continued. The model answers one request
at a time; bodies are read concurrently, bounded (--max-body-mb) and on a deadline
(--read-timeout: a stalled client is answered 408), so no client holds up the others. Listens on loopback unless --host says otherwise; with another host, set --api-key.";

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: LocalModelArgs,
    /// Address to listen on; 0.0.0.0 for every interface (then require a key with --api-key)
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 = any free port; the chosen address is printed on stdout)
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Name the model is listed under [default: the GGUF's file stem]
    #[arg(long)]
    served_model_name: Option<String>,
    /// Require this bearer key on every request but /health (clients pass it with their own
    /// --api-key)
    #[arg(
        long = "api-key",
        alias = "require-api-key",
        env = "HESNR_SERVE_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Largest request body accepted, in MiB (a larger one is answered 413)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_body_mb: u32,
    /// Seconds a client gets to send its whole request (a slower one is answered 408 and
    /// disconnected), and again to take its answer (1 to 3600)
    #[arg(long, default_value_t = server::DEFAULT_READ_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    read_timeout: u64,
    /// Answer wrongly on purpose, to test a client's verification
    #[arg(long, value_enum)]
    fault: Option<Fault>,
}

pub fn run_serve(args: ServeArgs) -> Result<()> {
    let api_key = args.api_key.clone().filter(|k| !k.is_empty());
    let loopback = matches!(args.host.as_str(), "127.0.0.1" | "::1" | "localhost");
    if !loopback && api_key.is_none() {
        tracing::warn!(
            "listening on {} without --api-key: anyone who can reach this machine can use the model",
            args.host
        );
    }
    let mut backend = load_local_model(&args.model)?;
    let name = args.served_model_name.clone().unwrap_or_else(|| {
        Path::new(&backend.info().path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| backend.info().name.clone())
    });
    let addr = format!("{}:{}", args.host, args.port);
    let http =
        std::net::TcpListener::bind(&addr).with_context(|| format!("cannot listen on {addr}"))?;
    let shown = http.local_addr().map_or(addr.clone(), |a| a.to_string());
    super::common::print_line(format_args!("listening on http://{shown} (model {name})"))?;
    std::io::stdout().flush()?;
    let opts = ServeOptions {
        model_name: name,
        api_key,
        max_body_bytes: args.max_body_mb as usize * (1 << 20),
        read_timeout: Duration::from_secs(args.read_timeout),
        fault: args.fault,
    };
    server::serve(backend.as_mut(), &opts, &http);
    Ok(())
}
