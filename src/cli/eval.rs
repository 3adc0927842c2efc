//! `hesnr eval`: HE-SNR of a model on an agent-trajectory evaluation set, the paper's way.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use hesnr::data::trajectory::mask::{Preset, TokenRule};
use hesnr::data::trajectory::read::{TrajectoryFormat, TrajectoryStream};
use hesnr::data::trajectory::render::TemplateChoice;
use hesnr::data::trajectory::Trajectory;
use hesnr::data::{self, JsonlWriter};
use hesnr::engine::llama::TokenizerOnly;
use hesnr::engine::{model_store, Backend};
use hesnr::pipeline::check::{
    check_trajectory, CheckGroup, CheckSummary, CheckTotals, CheckedTrajectory,
};
use hesnr::pipeline::eval::{
    self, choose_template, EvalSettings, EvalSummary, EvalTotals, EvaluatedTrajectory,
};
use hesnr::pipeline::run::{Flow, Outcome, Stopped, Unit};
use hesnr::report::explain;

use super::common::{
    load_model, manifest_beside, num4, print_skips, DrawArgs, MetricArgs, ModelArgs, Spinner,
};

pub const EVAL_EXAMPLES: &str = "Examples:
  hesnr eval -T examples/trajectories                    # every trajectory file under the folder
  hesnr eval -T runs/*.traj --preset all                 # the paper's ablation rows side by side
  hesnr eval -T chat.jsonl -o rows.jsonl --json > summary.json
  hesnr eval -T chat.jsonl --explain django__django-11099            # colours in a terminal
  hesnr eval -T chat.jsonl --explain django__django-11099 --html t.html
  hesnr eval -T trajs/ --chat-template tokenizer_config.json --model ckpt.gguf
  hesnr eval -T trajs/ --check                           # seconds, no model run: what is scored
  hesnr eval -T sampled.parquet --where resolved=true --per-instance 1 --limit 500 -o rows.jsonl
                                       # draw a set from a dataset; rows.manifest.json says what

Formats (sniffed per record, or --format): SWE-agent .traj (0.x and function calling),
mini-swe-agent .traj.json (v1, v2, tool calling), OpenAI chat records (SWE-Gym, SWE-smith, SFT
rows), ShareGPT conversations, nebius-style {role: ai, text}, LLM-completion logs, OpenHands
event logs (also compact events and [action, observation] pairs); as files, JSON arrays, JSON
Lines or Parquet datasets. docs/trajectory-formats.md says what each part of a record becomes.
Presets: thought, action, action+xml, action+xml+ws, full (default: the paper's evaluation set),
all.";

#[derive(Args)]
pub struct EvalArgs {
    /// Trajectory files (JSON Lines, JSON, .traj, Parquet; gzip/zstd by their bytes),
    /// directories or quoted glob patterns; `-` reads JSON Lines or a JSON array from stdin
    #[arg(long, short = 'T', required = true, num_args = 1..)]
    trajectories: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Trajectory format
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// Score the action blocks of turns the agent rejected without running them
    /// (mini-swe-agent turns with several action blocks, answered with a format error); by
    /// default such a turn is all thought
    #[arg(long)]
    score_rejected_actions: bool,
    /// Which tokens are scored: full, action+xml+ws, action+xml, action, thought, or `all`
    /// (every preset side by side); comma-separate several
    #[arg(long, default_value = "full", value_parser = parse_presets)]
    preset: PresetList,
    /// Chat template: `model` (the GGUF's own, ChatML if it has none), `chatml`, or a file
    /// (Jinja, or a Hugging Face tokenizer_config.json or its directory)
    #[arg(long, default_value = "model")]
    chat_template: TemplateChoice,
    /// A token is scored if all (default) or any of its characters survive cleaning
    #[arg(long, value_enum, default_value = "all")]
    token_rule: TokenRuleArg,
    #[command(flatten)]
    metric: MetricArgs,
    /// Per-trajectory rows (JSONL, one per trajectory and preset) [default: stdout, unless --json]
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Write the run summary (JSON) to this file
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Print the run summary as JSON on stdout (rows then need -o)
    #[arg(long)]
    json: bool,
    /// Also write each trajectory as rendered for the model (JSONL: id, text), to see exactly
    /// what it was given or to feed other tools the same text
    #[arg(long)]
    rendered: Option<PathBuf>,
    /// Show one trajectory with its scored and decision tokens marked, instead of the whole set
    #[arg(long, value_name = "ID")]
    explain: Option<String>,
    /// With --explain: write a self-contained HTML page instead of terminal output
    #[arg(long, requires = "explain")]
    html: Option<PathBuf>,
    /// Terminal colours for --explain
    #[arg(long, value_enum, default_value = "auto")]
    color: ColorArg,
    #[command(flatten)]
    draw: DrawArgs,
    /// Read, render, clean, mask and tokenize the set without running the model (seconds, not
    /// hours): per file and per format, the trajectories, segments by kind, context and scored
    /// tokens, warnings and what would be skipped. Exits 1 if anything would be skipped. With
    /// -o, one row per trajectory; with --json, the summary on stdout
    #[arg(long, conflicts_with_all = ["explain", "html"])]
    check: bool,
}

#[derive(Clone)]
struct PresetList(Vec<Preset>);

fn parse_presets(s: &str) -> Result<PresetList, String> {
    if s == "all" {
        return Ok(PresetList(Preset::ALL.to_vec()));
    }
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim) {
        let p = Preset::parse(name).ok_or_else(|| {
            format!(
                "unknown preset '{name}' (full, action+xml+ws, action+xml, action, thought, all)"
            )
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(PresetList(out))
}

/// `--format` of trajectory inputs: the library's [`TrajectoryFormat`], with the spellings the
/// command line accepts.
#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// Detected per file from its name and content
    Auto,
    /// OpenAI chat JSONL (messages with tool_calls)
    #[value(alias = "openai", alias = "jsonl")]
    Chat,
    /// SWE-agent .traj files
    #[value(alias = "sweagent", alias = "traj")]
    SweAgent,
    /// OpenHands event logs
    Openhands,
}

impl From<FormatArg> for TrajectoryFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => TrajectoryFormat::Auto,
            FormatArg::Chat => TrajectoryFormat::Chat,
            FormatArg::SweAgent => TrajectoryFormat::SweAgent,
            FormatArg::Openhands => TrajectoryFormat::OpenHands,
        }
    }
}

/// `--token-rule`: which tokens a cleaned segment scores.
#[derive(Clone, Copy, ValueEnum)]
pub enum TokenRuleArg {
    /// Tokens whose characters all survive cleaning
    All,
    /// Tokens with at least one surviving character
    Any,
}

impl From<TokenRuleArg> for TokenRule {
    fn from(r: TokenRuleArg) -> Self {
        match r {
            TokenRuleArg::All => TokenRule::All,
            TokenRuleArg::Any => TokenRule::Any,
        }
    }
}

/// `--color` of the terminal explanation.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    /// Colours when stdout is a terminal
    Auto,
    Always,
    Never,
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    let presets = args.preset.0.clone();
    let metrics = args.metric.config()?;
    args.metric.selection()?;
    // Open inputs and outputs before the (slow) model load, so that typos fail at once.
    data::refuse_overwriting_inputs(
        &data::expand_inputs(&args.trajectories)?,
        &[
            args.output.as_deref(),
            args.summary.as_deref(),
            args.rendered.as_deref(),
            args.html.as_deref(),
            args.draw.manifest.as_deref(),
        ],
    )?;
    let read = args
        .draw
        .read_options(args.format.into(), args.score_rejected_actions);
    let mut trajectories = args.draw.open(&args.trajectories, read)?;
    if args.check {
        return run_check(&args, &mut trajectories);
    }
    let explaining = args.explain.is_some();
    let mut rows_out = match (&args.output, args.json || explaining) {
        (Some(p), _) => Some(data::create_output(Some(p.as_path()))?),
        (None, false) => Some(data::create_output(None)?),
        (None, true) => None,
    }
    .map(JsonlWriter::new);
    let mut rendered_out = jsonl_output(args.rendered.as_deref(), "the rendered-text output")?;
    let mut backend = load_model(&args.model)?;
    let template = choose_template(&args.chat_template, &backend)?;
    let settings = EvalSettings {
        score: args.metric.settings(&backend)?,
        presets: presets.clone(),
        token_rule: args.token_rule.into(),
    };
    debug_assert_eq!(settings.score.metrics, metrics);

    let spinner = Spinner::new(|log| {
        format!(
            "{} trajectories, {} context tokens, {:.0} tok/s",
            log.done,
            log.tokens,
            log.tokens_per_second()
        )
    });
    let mut totals = EvalTotals::new(&presets, metrics);
    let proxy_template = args.metric.proxy_columns(backend.as_ref())?;
    let precision = backend.info().precision.clone();
    let mut proxy = vec![proxy_template; presets.len()];
    let mut flow = Flow::new(&spinner);
    let mut explained = false;
    let wanted = |t: &Trajectory| args.explain.as_ref().is_none_or(|id| *id == t.id);
    let items = &mut trajectories;
    // Trajectories are evaluated in parallel when the backend can (a remote server); rows are
    // written in input order either way.
    let work = |b: &mut [&mut dyn Backend], traj: &Trajectory| {
        wanted(traj).then(|| eval::eval_trajectory(&mut *b[0], &template, traj, &settings))
    };
    let sink = |tracer: &dyn Backend, traj: Trajectory, outcome: Outcome<EvaluatedTrajectory>| {
        let Outcome::Done(evaluated) = outcome else {
            return Ok(());
        };
        if explained {
            return Ok(());
        }
        totals.add(&traj, &evaluated);
        let proxy_values: Vec<_> = proxy
            .iter_mut()
            .enumerate()
            .map(|(j, columns)| columns.document(evaluated.scored_positions(j)))
            .collect();
        if let Some(out) = rows_out.as_mut() {
            for (mut row, values) in eval::rows(&traj, &evaluated, &precision)
                .into_iter()
                .zip(proxy_values)
            {
                row.proxy = values;
                out.write(&row)?;
            }
        }
        if let Some(out) = rendered_out.as_mut() {
            out.write(&serde_json::json!({"id": traj.id, "text": evaluated.rendered.text}))?;
        }
        if explaining {
            spinner.clear();
            // The paper's preset when it was computed, else the first one asked for.
            let shown = presets
                .iter()
                .copied()
                .find(|&p| p == Preset::Full)
                .unwrap_or(presets[0]);
            write_explanation(&args, tracer, &traj, &evaluated, shown)?;
            explained = true;
        }
        anyhow::Ok(())
    };
    // A run stopped by a fatal failure (the server gone, or its answers failing a check) keeps
    // what it scored, as `score` does: the rows and the manifest so far are written, the
    // summary says where it stopped, and the command fails. Any other error (an output that
    // cannot be written) leaves no output behind.
    let stopped = match flow.drive(&mut [backend.as_mut()], items, work, sink) {
        Ok(()) => None,
        Err(e) => Some(e.downcast::<Stopped>()?),
    };
    let log = flow.log;
    if let Some(out) = rows_out {
        out.finish().context("writing the per-trajectory rows")?;
    }
    if let Some(out) = rendered_out {
        out.finish().context("writing the rendered trajectories")?;
    }
    if !explaining {
        let beside = manifest_beside(&[args.output.as_deref(), args.summary.as_deref()]);
        args.draw
            .write_manifest(&args.trajectories, trajectories.manifest(), beside)?;
    }
    if let (Some(s), Some(_)) = (&stopped, &args.explain) {
        bail!("{s}");
    }
    if let Some(id) = &args.explain {
        if !explained {
            let why = log
                .skips
                .reasons
                .iter()
                .find(|e| e.contains(&format!("'{id}'")));
            match why {
                Some(e) => bail!("trajectory '{id}' could not be scored: {e}"),
                None => bail!("no trajectory with id '{id}' in the inputs"),
            }
        }
        return Ok(());
    }
    let mut summary = totals.finish(
        &log,
        backend.info().clone(),
        template.origin.clone(),
        settings,
    );
    summary.stopped = stopped.as_ref().map(ToString::to_string);
    for (preset, columns) in summary.presets.iter_mut().zip(&proxy) {
        preset.proxy = columns.pooled();
        let reasons = columns.unavailable();
        if !reasons.is_empty() {
            preset.unavailable = hesnr::pipeline::proxy_columns::reasons_map(&reasons);
        }
    }
    if let Some(p) = &args.summary {
        data::write_json_atomic(p, &summary)?;
    }
    if args.json {
        super::common::print_line(serde_json::to_string_pretty(&summary)?)?;
    }
    print_table(&summary);
    if let Some(s) = stopped {
        bail!(
            "{s}: the {} trajectories scored before it are written{}; the rest are not scored",
            summary.trajectories,
            args.output
                .as_ref()
                .map_or(String::new(), |p| format!(" ({})", p.display()))
        );
    }
    if summary.trajectories == 0 {
        bail!(
            "no trajectory could be scored ({} skipped)",
            summary.skipped
        );
    }
    Ok(())
}

/// A JSON Lines output at `path`, if one is asked for (`what` names it in errors).
fn jsonl_output(path: Option<&Path>, what: &str) -> Result<Option<JsonlWriter<data::Output>>> {
    path.map(|p| data::create_output(Some(p)).map(JsonlWriter::new))
        .transpose()
        .with_context(|| format!("opening {what}"))
}

/// `eval --check`: everything `eval` does before the forward pass, with the model's tokenizer
/// alone (no weights), counted per file and per format.
fn run_check(args: &EvalArgs, trajectories: &mut TrajectoryStream) -> Result<()> {
    let mut rows_out = jsonl_output(args.output.as_deref(), "the per-trajectory rows")?;
    let mut rendered_out = jsonl_output(args.rendered.as_deref(), "the rendered-text output")?;
    let path = model_store::resolve_model(args.model.model.as_deref())?;
    let mut tokenizer = TokenizerOnly::load(&path)
        .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
    let template = choose_template(&args.chat_template, &tokenizer)?;
    let presets = &args.preset.0;
    let token_rule = args.token_rule.into();
    let spinner = Spinner::new(|log| {
        format!(
            "{} trajectories checked, {} context tokens",
            log.done, log.tokens
        )
    });
    // Records that cannot be read never reach the sink; they are counted on their way in.
    let totals = RefCell::new(CheckTotals::new(presets));
    let items = trajectories.by_ref().inspect(|item| {
        if let Err(e) = item {
            totals.borrow_mut().skip_record(e);
        }
    });
    let work = |b: &mut [&mut dyn Backend], traj: &Trajectory| {
        Some(check_trajectory(
            &*b[0], &template, traj, presets, token_rule,
        ))
    };
    let sink = |_: &dyn Backend, traj: Trajectory, outcome: Outcome<CheckedTrajectory>| {
        let checked = match outcome {
            Outcome::Done(c) => c,
            Outcome::Skipped(_) => {
                totals.borrow_mut().skip_trajectory(&traj);
                return Ok(());
            }
        };
        totals.borrow_mut().add(&checked);
        if let Some(out) = rows_out.as_mut() {
            out.write(&checked)?;
        }
        if let Some(out) = rendered_out.as_mut() {
            out.write(&serde_json::json!({"id": traj.id, "text": checked.rendered}))?;
        }
        anyhow::Ok(())
    };
    let mut flow = Flow::new(&spinner);
    flow.drive(&mut [&mut tokenizer], items, work, sink)?;
    if let Some(out) = rows_out {
        out.finish().context("writing the per-trajectory rows")?;
    }
    if let Some(out) = rendered_out {
        out.finish().context("writing the rendered trajectories")?;
    }
    let beside = manifest_beside(&[args.output.as_deref(), args.summary.as_deref()]);
    args.draw
        .write_manifest(&args.trajectories, trajectories.manifest(), beside)?;
    let summary = totals.into_inner().finish(
        &flow.log,
        tokenizer.info().name.clone(),
        template.origin.clone(),
    );
    if let Some(p) = &args.summary {
        data::write_json_atomic(p, &summary)?;
    }
    if args.json {
        super::common::print_line(serde_json::to_string_pretty(&summary)?)?;
    }
    print_check_table(&summary);
    if summary.total.trajectories == 0 && summary.total.skipped == 0 {
        bail!("the inputs hold no trajectory to evaluate");
    }
    if summary.total.skipped > 0 {
        bail!(
            "{} of {} trajectories or records would be skipped (reasons above)",
            summary.total.skipped,
            summary.total.skipped + summary.total.trajectories
        );
    }
    Ok(())
}

fn print_check_table(s: &CheckSummary) {
    let mut e = std::io::stderr().lock();
    // One column of scored tokens per preset asked for, headed by its name.
    let widths: Vec<usize> = s
        .total
        .presets
        .iter()
        .map(|p| p.preset.len().max(8))
        .collect();
    let mut head = format!(
        "{:>6} {:>5} {:>6} {:>7} {:>6} {:>6} {:>9}",
        "trajs", "skip", "prompt", "thought", "action", "obs", "context"
    );
    for (p, w) in s.total.presets.iter().zip(&widths) {
        head.push_str(&format!(" {:>w$}", p.preset));
    }
    let _ = writeln!(e, "{head} {:>5}  file / format", "warn");
    let line = |e: &mut std::io::StderrLock, g: &CheckGroup, label: &str| {
        let mut row = format!(
            "{:>6} {:>5} {:>6} {:>7} {:>6} {:>6} {:>9}",
            g.trajectories,
            g.skipped,
            g.segments.prompt,
            g.segments.thought,
            g.segments.action,
            g.segments.observation,
            g.context_tokens,
        );
        for (p, w) in g.presets.iter().zip(&widths) {
            row.push_str(&format!(" {:>w$}", p.scored_tokens));
        }
        let _ = writeln!(e, "{row} {:>5}  {label}", g.warnings);
    };
    for f in &s.files {
        let formats = if f.formats.is_empty() {
            "unreadable".to_string()
        } else {
            f.formats.join(", ")
        };
        line(&mut e, f, &format!("{} ({formats})", f.name));
    }
    if s.formats.len() > 1 {
        for f in &s.formats {
            line(&mut e, f, &format!("format {}", f.name));
        }
    }
    line(
        &mut e,
        &s.total,
        &format!(
            "all ({:.1} s; template: {}; tokenizer: {})",
            s.seconds, s.chat_template, s.model
        ),
    );
    let _ = writeln!(
        e,
        "(preset columns: tokens each preset scores; prompt..obs: segments by kind)"
    );
    print_skips(&mut e, s.total.skipped, &s.errors, "see --summary");
}

fn write_explanation(
    args: &EvalArgs,
    backend: &dyn Backend,
    traj: &Trajectory,
    evaluated: &EvaluatedTrajectory,
    preset: Preset,
) -> Result<()> {
    let tokens = explain::explain_tokens(evaluated, preset, backend);
    let result = evaluated
        .presets
        .iter()
        .find(|r| r.preset == preset)
        .expect("the explained preset was evaluated");
    let s = result.acc.summary();
    let f = num4;
    let lines = vec![
        format!("source: {}", traj.place()),
        format!(
            "preset: {} ({}); context tokens: {}; scored tokens: {}; decision tokens |H|: {}",
            preset.name(),
            preset.description(),
            evaluated.tokens.ids.len(),
            s.scored_tokens,
            s.decision_tokens
        ),
        format!(
            "HE-SNR {}  HE-PPL {}  PPL {}  top-1 {}",
            f(s.he_snr),
            f(s.he_ppl),
            f(s.ppl),
            f(s.top1_acc)
        ),
    ];
    if let Some(path) = &args.html {
        let page = explain::to_html(&tokens, &format!("hesnr explain: {}", traj.id), &lines);
        let mut out = data::create_output(Some(path.as_path()))?;
        out.write_all(page.as_bytes())?;
        out.finish()
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        return Ok(());
    }
    let colour = match args.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::stdout().is_terminal(),
    };
    let header = lines.join("\n");
    let text = if colour {
        explain::to_ansi(&tokens, &header)
    } else {
        explain::to_plain(&tokens, &header)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn print_table(s: &EvalSummary) {
    let f = num4;
    let mut e = std::io::stderr().lock();
    let _ = writeln!(
        e,
        "trajectories {}  skipped {}  context tokens {}  ({:.0} tok/s)  template: {}",
        s.trajectories, s.skipped, s.context_tokens, s.context_tokens_per_second, s.chat_template
    );
    let _ = writeln!(
        e,
        "{:<15} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7} {:>9}",
        "preset", "scored", "|H|", "HE-SNR", "HE-PPL", "PPL", "top-1", "fallback"
    );
    for p in &s.presets {
        let m = &p.metrics;
        let _ = writeln!(
            e,
            "{:<15} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7} {:>9}",
            p.preset,
            m.scored_tokens,
            m.decision_tokens,
            f(m.he_snr),
            f(m.he_ppl),
            f(m.ppl),
            f(m.top1_acc),
            p.clean.fallbacks
        );
    }
    for p in &s.presets {
        let Some(iv) = &p.intervals else { continue };
        let span =
            |v: Option<[f64; 2]>| v.map_or("-".into(), |[lo, hi]| format!("[{lo:.4}, {hi:.4}]"));
        let _ = writeln!(
            e,
            "{:<15} {:.0}% interval over {} trajectories (bootstrap): HE-SNR {}  PPL {}  |H| {}",
            p.preset,
            iv.level * 100.0,
            iv.units,
            span(iv.he_snr),
            span(iv.ppl),
            iv.decision_tokens
                .map_or("-".into(), |[lo, hi]| format!("[{lo:.0}, {hi:.0}]")),
        );
    }
    print_skips(&mut e, s.skipped, &s.errors, "see --summary");
}
