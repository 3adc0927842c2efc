//! `hesnr score`: per-document metrics and a pooled summary.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use hesnr::data::{self, Document, InputFormat, JsonlWriter, ReaderOptions};
use hesnr::engine::Backend;
use hesnr::metrics::{Metric, Summary};
use hesnr::pipeline::run::{Flow, Outcome, Stopped};
use hesnr::pipeline::score::{self, DocumentRow, RunTotals, ScoredDocument};

use super::common::{load_model, num4, print_skips, MetricArgs, ModelArgs, Spinner};

pub const SCORE_EXAMPLES: &str = "Examples:
  hesnr score data.jsonl                       # per-document rows on stdout, summary on stderr
  hesnr score data.jsonl.zst -o rows.jsonl --json > summary.json
  hesnr score src/*.py --tokens trace.jsonl    # plain text files, one document each
  cat data.jsonl | hesnr score - --text-field content
  hesnr score data.jsonl --model other.gguf --eps 1.0 --signal renormalized
  hesnr score data.jsonl --remote http://gpu-node:8000 -m vocab.gguf --concurrency 16   # a vLLM server

Inputs: .jsonl/.json/.ndjson (optionally .gz or .zst), directories, other files as plain text, `-` for stdin.
The model defaults to $HESNR_MODEL, else the default model fetched by `hesnr fetch-model`.";

/// `--format`: how inputs whose kind the name does not tell are read.
#[derive(Clone, Copy, ValueEnum)]
pub enum InputFormatArg {
    /// By the file name, else by the content
    Auto,
    /// JSON Lines records
    Jsonl,
    /// The whole input is one document
    Text,
}

impl From<InputFormatArg> for InputFormat {
    fn from(f: InputFormatArg) -> Self {
        match f {
            InputFormatArg::Auto => InputFormat::Auto,
            InputFormatArg::Jsonl => InputFormat::Jsonl,
            InputFormatArg::Text => InputFormat::Text,
        }
    }
}

#[derive(Args)]
pub struct ScoreArgs {
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
    /// Input format for stdin and unknown extensions
    #[arg(long, value_enum, default_value = "auto")]
    format: InputFormatArg,
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

pub fn run_score(args: ScoreArgs) -> Result<()> {
    let metrics = args.metric.config()?;
    args.metric.selection()?;
    let reader_opts = ReaderOptions {
        text_field: args.text_field.clone(),
        id_field: args.id_field.clone(),
        format: args.format.into(),
    };
    // Open inputs and outputs before the (slow) model load, so that typos fail at once.
    let files = data::expand_inputs(&args.inputs)?;
    data::refuse_overwriting_inputs(
        &files,
        &[
            args.output.as_deref(),
            args.tokens.as_deref(),
            args.summary.as_deref(),
        ],
    )?;
    let docs = data::read_files(&files, &reader_opts);
    let rows_path = match (&args.output, args.json) {
        (Some(p), _) => Some(Some(p.clone())),
        (None, false) => Some(None),
        (None, true) => None,
    };
    let mut rows_out = rows_path
        .map(|p| data::create_output(p.as_deref()).map(JsonlWriter::new))
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
    let mut proxy = args.metric.proxy_columns(backend.as_ref())?;
    let precision = backend.info().precision.clone();

    let mut totals = RunTotals::new(metrics);
    let spinner = Spinner::new(|log| {
        format!(
            "{} docs, {} tokens, {:.0} tok/s",
            log.done,
            log.tokens,
            log.tokens_per_second()
        )
    });
    let items = docs.take(args.limit.map_or(usize::MAX, |l| l as usize));
    // Documents are scored in parallel when the backend can (a remote server); rows are written
    // in input order either way.
    let work = |b: &mut [&mut dyn Backend], doc: &Document| {
        Some(score::score_text(&mut *b[0], &doc.text, &settings))
    };
    let sink = |tracer: &dyn Backend, doc: Document, outcome: Outcome<ScoredDocument>| {
        let Outcome::Done(scored) = outcome else {
            return Ok(());
        };
        totals.add(&scored);
        let proxy_values = proxy.document(&scored.positions);
        if let Some(out) = rows_out.as_mut() {
            out.write(&DocumentRow {
                id: doc.id.clone(),
                source: doc.source.clone(),
                line: doc.line,
                tokens: scored.tokens.ids.len(),
                metrics: scored.acc.summary(),
                proxy: proxy_values,
                precision: precision.clone(),
                metadata: doc.metadata.clone(),
            })?;
        }
        if let Some(out) = trace_out.as_mut() {
            score::write_token_trace(out, tracer, &doc.id, &doc.text, &scored, metrics.k)?;
        }
        anyhow::Ok(())
    };
    let mut flow = Flow::new(&spinner);
    // A run stopped by a fatal failure (the server gone, or its answers failing a check) keeps
    // what it scored: the outputs are finished with the rows so far, the summary says where it
    // stopped, and the command fails. Any other error (an output that cannot be written)
    // leaves no output behind.
    let stopped = match flow.drive(&mut [backend.as_mut()], items, work, sink) {
        Ok(()) => None,
        Err(e) => Some(e.downcast::<Stopped>()?),
    };
    let log = flow.log;
    if let Some(out) = rows_out {
        out.finish().context("writing the per-document rows")?;
    }
    if let Some(out) = trace_out {
        out.finish().context("writing the token trace")?;
    }
    let mut summary = totals.finish(&log, backend.info().clone(), settings);
    summary.stopped = stopped.as_ref().map(ToString::to_string);
    summary.proxy = proxy.pooled();
    let reasons = proxy.unavailable();
    if !reasons.is_empty() {
        summary.unavailable = hesnr::pipeline::proxy_columns::reasons_map(&reasons);
    }
    if let Some(p) = &args.summary {
        data::write_json_atomic(p, &summary)?;
    }
    if args.json {
        super::common::print_line(serde_json::to_string_pretty(&summary)?)?;
    }
    print_summary(
        &summary.metrics,
        summary.skipped,
        &summary.errors,
        summary.tokens_per_second,
    );
    if let Some(s) = stopped {
        bail!(
            "{s}: the {} documents scored before it are written{}; the rest are not scored",
            summary.documents,
            args.output
                .as_ref()
                .map_or(String::new(), |p| format!(" ({})", p.display()))
        );
    }
    if summary.documents == 0 && summary.skipped > 0 {
        bail!("no document could be scored ({} skipped)", summary.skipped);
    }
    Ok(())
}

fn print_summary(s: &Summary, skipped: u64, errors: &[String], tps: f64) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "documents {}  scored tokens {}  skipped {}  ({tps:.0} tok/s)",
        s.documents, s.scored_tokens, skipped
    );
    let quality = [Metric::HeSnr, Metric::HePpl, Metric::Ppl, Metric::Top1Acc]
        .map(|m| format!("{} {}", m.label(), num4(m.value(s))))
        .join("  ");
    let _ = writeln!(
        e,
        "{quality}  {} {} ({})  {} {}",
        Metric::DecisionTokens.label(),
        s.decision_tokens,
        num4(s.decision_density),
        Metric::MeanH10.label(),
        num4(s.mean_h10)
    );
    print_skips(&mut e, skipped, errors, "see --summary");
}
