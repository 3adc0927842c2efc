//! `hesnr track`: HE-SNR and its companions across checkpoints, with their correlation to
//! downstream scores and a report; and `hesnr precision-series`, a checkpoint series of known
//! quality order made from one model, for trying it out.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use hesnr::data::trajectory::mask::{Preset, TokenRule};
use hesnr::data::trajectory::render::TemplateChoice;
use hesnr::data::{InputFormat, ReaderOptions};
use hesnr::engine::llama::TokenizerOnly;
use hesnr::engine::window::PolicyRequest;
use hesnr::engine::{model_store, Backend};
use hesnr::metrics::Metric;
use hesnr::pipeline::track::{self, CheckpointEvent, EvalSet, TrackOptions};
use hesnr::pipeline::track_types::TrackReport;
use hesnr::report;

use super::common::{load_model, num4, DrawArgs, MetricArgs, ModelArgs};
use super::eval::FormatArg;

pub const TRACK_EXAMPLES: &str = "Examples:
  hesnr track checkpoints.toml -T evalset/ --out report/      # trajectories, the paper's way
  hesnr track checkpoints.csv --documents held-out.jsonl --out report/
  hesnr precision-series --out series/ && hesnr track series/manifest.toml -T examples/trajectories/chat.jsonl --out series/report

Manifest (TOML):
  title = \"mid-training run 7\"
  [[checkpoint]]
  model = \"ckpt/step-2000.gguf\"   # relative to the manifest
  step = 2000
  stage = \"32k\"
  [checkpoint.scores]
  swebench_verified = 0.214
Manifest (CSV): model,step,stage,name,swebench_verified  (empty cells: unknown)

Per-position numbers are cached (--cache) by model content, data content and settings: adding a
checkpoint scores only that one, and a killed run resumes with the checkpoints it finished.";

#[derive(Args)]
pub struct TrackArgs {
    /// Checkpoint manifest (.toml or .csv)
    manifest: PathBuf,
    /// Evaluation set: trajectory files, directories or glob patterns, as `hesnr eval -T` reads
    /// them but not stdin (scored the paper's way)
    #[arg(long, short = 'T', num_args = 1.., required_unless_present = "documents", conflicts_with = "documents")]
    trajectories: Vec<PathBuf>,
    /// Evaluation set: plain documents (JSON Lines, JSON arrays, Parquet or text; files,
    /// directories or glob patterns, not stdin), every position scored
    #[arg(long, num_args = 1..)]
    documents: Vec<PathBuf>,
    /// Trajectory format
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// Score the action blocks of turns the agent rejected without running them
    /// (mini-swe-agent turns with several action blocks, answered with a format error); by
    /// default such a turn is all thought
    #[arg(long, conflicts_with = "documents")]
    score_rejected_actions: bool,
    /// Which trajectory tokens are scored (one preset; see `hesnr eval --help`)
    #[arg(long, default_value = "full", value_parser = parse_preset)]
    preset: Preset,
    /// Chat template: model, chatml, or a file
    #[arg(long, default_value = "model")]
    chat_template: TemplateChoice,
    /// JSON field holding the text of --documents
    #[arg(long, default_value = "text")]
    text_field: String,
    /// Report folder: report.html, plots/*.svg, checkpoints.csv, correlations.csv, sweep.csv, report.json
    #[arg(long, short = 'o', default_value = "hesnr-report")]
    out: PathBuf,
    /// Cache of per-position numbers [default: <hesnr home>/track-cache]
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Print the report as JSON on stdout
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    draw: DrawArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    metric: MetricArgs,
}

fn parse_preset(s: &str) -> Result<Preset, String> {
    Preset::parse(s).ok_or_else(|| format!("unknown preset '{s}'"))
}

/// The run's one window policy ([`track::decide_policy`]): each local checkpoint's vocabulary
/// (no weights) tells whether llama.cpp can shift its KV cache.
fn window_policy(asked: PolicyRequest, manifest: &track::Manifest) -> PolicyRequest {
    let mut architecture = String::new();
    let (policy, strided_by) = track::decide_policy(asked, manifest, |c| {
        let t = TokenizerOnly::load(&c.model).ok()?;
        architecture = t.info().architecture.clone();
        Some(t.can_shift_kv_cache())
    });
    if let Some(c) = strided_by {
        let why = match c.remote {
            Some(_) => "is served".to_string(),
            None => format!("({architecture}) cannot shift its KV cache"),
        };
        eprintln!(
            "track: checkpoint {} {why}: every checkpoint is scored with the strided window policy",
            c.name
        );
    }
    policy
}

pub fn run_track(args: TrackArgs) -> Result<()> {
    let manifest = track::read_manifest(&args.manifest)?;
    if !args.documents.is_empty() && args.draw.is_used() {
        bail!("--where, --per-instance, --limit, --messages-field and --manifest draw from -T trajectories, not from --documents");
    }
    let set = if args.documents.is_empty() {
        EvalSet::Trajectories {
            inputs: args.trajectories.clone(),
            read: args
                .draw
                .read_options(args.format.into(), args.score_rejected_actions),
            draw: args.draw.spec(),
            preset: args.preset,
            chat_template: args.chat_template.clone(),
            token_rule: TokenRule::All,
        }
    } else {
        EvalSet::Documents {
            inputs: args.documents.clone(),
            reader: ReaderOptions {
                text_field: args.text_field.clone(),
                format: InputFormat::Auto,
                ..ReaderOptions::default()
            },
        }
    };
    let opts = TrackOptions {
        metrics: args.metric.config()?,
        selection: args.metric.selection()?,
        metric_window: args.metric.metric_window,
        window: args.model.window,
        policy: window_policy(args.metric.policy(), &manifest),
        engine: serde_json::json!({
            "precision": args.model.precision.to_string(),
            "exact_attention": args.model.exact_attention,
            "ubatch": args.model.ubatch,
        }),
        cache_dir: args
            .cache
            .clone()
            .unwrap_or_else(|| model_store::home().join("track-cache")),
    };
    let n = manifest.checkpoints.len();
    let mut done = 0usize;
    let model_args = args.model.clone();
    let mut load = |c: &track::Checkpoint| -> Result<Box<dyn Backend>, hesnr::engine::EngineError> {
        let mut m = model_args.clone();
        m.model = Some(c.model.clone());
        if let Some(r) = &c.remote {
            m.remote.remote = Some(r.url.clone());
            m.remote.remote_model = r.served_model.clone();
        }
        load_model(&m).map_err(|e| hesnr::engine::EngineError::Config(format!("{e:#}")))
    };
    let mut log = |c: &track::Checkpoint, event: CheckpointEvent, key: &str| {
        // Each checkpoint reports Cached, or Scoring then Scored: count it at its first event.
        let what = match event {
            CheckpointEvent::Cached => "cached",
            CheckpointEvent::Scoring => "scoring",
            CheckpointEvent::Scored => "scored",
        };
        if event != CheckpointEvent::Scored {
            done += 1;
        }
        eprintln!("track: [{done}/{n}] {}: {what} (cache key {key})", c.name);
    };
    let report = track::run_track(&manifest, &set, &opts, &mut load, &mut log)?;
    let files = report::track::write_report(&report, &args.out)
        .with_context(|| format!("writing the report to {}", args.out.display()))?;
    if let EvalSet::Trajectories { inputs, read, .. } = &set {
        if args.draw.spec().is_active() || args.draw.manifest.is_some() {
            // The set as drawn, written down once: the draw runs over the raw records again,
            // without parsing them or a model.
            let drawn = args.draw.open(inputs, read.clone())?.into_manifest();
            let default = args.out.join("eval-set.manifest.json");
            args.draw
                .write_manifest(inputs, drawn.as_ref(), Some(default))?;
        }
    }
    if args.json {
        super::common::print_line(serde_json::to_string_pretty(&report)?)?;
    }
    print_report(&report);
    eprintln!(
        "report: {} ({} files)",
        args.out.join("report.html").display(),
        files.len()
    );
    Ok(())
}

/// The metric columns of the terminal table and their widths, then |H| share as a percentage.
const TABLE: [(Metric, usize); 4] = [
    (Metric::HeSnr, 8),
    (Metric::HePpl, 8),
    (Metric::Ppl, 8),
    (Metric::Top1Acc, 7),
];

fn print_report(r: &TrackReport) {
    let f = num4;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "{} on {} (k = {}, eps = {:.4})",
        r.title, r.eval_set, r.k, r.eps
    );
    let header: String = TABLE.map(|(m, w)| format!(" {:>w$}", m.label())).concat();
    let _ = writeln!(
        e,
        "{:<16} {:>8} {:>6}{header} {:>7}",
        "checkpoint", "step", "stage", "|H|%"
    );
    for c in &r.checkpoints {
        let s = &c.summary;
        let values: String = TABLE
            .map(|(m, w)| format!(" {:>w$}", f(m.value(s))))
            .concat();
        let _ = writeln!(
            e,
            "{:<16} {:>8} {:>6}{values} {:>7}",
            c.name,
            c.step.map_or("-".into(), |s| format!("{s}")),
            c.stage.as_deref().unwrap_or("-"),
            s.decision_density
                .map_or("-".into(), |x| format!("{:.2}", x * 100.0)),
        );
    }
    let downstream: std::collections::BTreeSet<&str> = r
        .correlations
        .iter()
        .map(|c| c.downstream.as_str())
        .collect();
    for d in downstream {
        let _ = writeln!(e, "correlation with {d} (Pearson / Spearman / Kendall):");
        for c in r.correlations.iter().filter(|c| c.downstream == d) {
            let rep = &c.report;
            let _ = writeln!(
                e,
                "  {:<15} {:>7} {:>7} {:>7}  n={}{}",
                c.metric,
                f(rep.pearson.value),
                f(rep.spearman.value),
                f(rep.kendall.value),
                rep.n,
                if rep.conclusive {
                    ""
                } else {
                    "  (inconclusive)"
                }
            );
        }
    }
    for t in &r.tax {
        let _ = writeln!(
            e,
            "Long-Context Tax? {} -> {}: {}",
            t.from,
            t.to,
            t.findings.join("; ")
        );
    }
    for n in &r.notes {
        let _ = writeln!(e, "note: {n}");
    }
}

#[derive(Args)]
pub struct SeriesArgs {
    /// Source model [default: $HESNR_MODEL, else the fetched default model]
    #[arg(long, short = 'm')]
    model: Option<PathBuf>,
    /// Folder for the series and its manifest.toml
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Weight types, best first. The default model ships as Q4_1, so its own type is left out:
    /// re-quantizing to Q4_1 gives back exactly the shipped weights, as good as F32
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "f32,f16,q8_0,q5_1,q5_0,q4_0"
    )]
    types: Vec<String>,
}

/// Writes the source model at several precisions (llama.cpp's quantizer, from the F32 weights)
/// and a manifest whose `bits_per_weight` score is the known quality order.
pub fn run_series(args: SeriesArgs) -> Result<()> {
    let src = model_store::resolve_model(args.model.as_deref())?;
    let written = model_store::write_precision_series(&src, &args.out, &args.types)?;
    let mut manifest = String::from(
        "# Written by `hesnr precision-series`: one model at several weight precisions.\n\
         # bits_per_weight orders them by quality (more bits, closer to the F32 weights).\n",
    );
    manifest.push_str(&format!(
        "title = \"Precision series of {}\"\n",
        src.file_name().unwrap_or_default().to_string_lossy()
    ));
    for (i, (ty, path, bits)) in written.iter().enumerate() {
        manifest.push_str(&format!(
            "\n[[checkpoint]]\nname = \"{ty}\"\nmodel = \"{}\"\nstep = {i}\n[checkpoint.scores]\nbits_per_weight = {bits}\n",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
    }
    let path = args.out.join("manifest.toml");
    let mut f = hesnr::data::AtomicFile::create(&path)?;
    f.write_all(manifest.as_bytes())?;
    f.commit()?;
    super::common::print_line(path.display())?;
    Ok(())
}
