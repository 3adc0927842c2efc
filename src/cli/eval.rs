//! `hesnr eval`: HE-SNR of a model on an agent-trajectory evaluation set, the paper's way.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use hesnr::data::trajectory::mask::{Preset, TokenRule};
use hesnr::data::trajectory::read::{read_trajectories_with, ReadOptions, TrajectoryFormat};
use hesnr::data::trajectory::render::TemplateChoice;
use hesnr::data::trajectory::Trajectory;
use hesnr::data::{self, JsonlWriter};
use hesnr::engine::Backend;
use hesnr::pipeline::eval::{
    self, choose_template, EvalSettings, EvalSummary, EvalTotals, EvaluatedTrajectory,
};
use hesnr::pipeline::run::{Flow, Outcome, Unit};
use hesnr::report::explain;

use super::common::{load_model, num4, print_skips, MetricArgs, ModelArgs, Spinner};

pub const EVAL_EXAMPLES: &str = "Examples:
  hesnr eval -T examples/trajectories                    # every trajectory file under the folder
  hesnr eval -T runs/*.traj --preset all                 # the paper's ablation rows side by side
  hesnr eval -T chat.jsonl -o rows.jsonl --json > summary.json
  hesnr eval -T chat.jsonl --explain django__django-11099            # colours in a terminal
  hesnr eval -T chat.jsonl --explain django__django-11099 --html t.html
  hesnr eval -T trajs/ --chat-template tokenizer_config.json --model ckpt.gguf

Formats (auto-detected, or --format): OpenAI chat JSONL (messages with tool_calls), SWE-agent
.traj, mini-swe-agent .traj.json, OpenHands event logs (.json); docs/trajectory-formats.md says
what each part of a record becomes. Presets: thought, action, action+xml, action+xml+ws,
full (default: the paper's evaluation set), all.";

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
    /// Stop after this many trajectories
    #[arg(long)]
    limit: Option<u64>,
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
    // Open inputs and outputs before the (slow) model load, so that typos fail at once.
    data::refuse_overwriting_inputs(
        &data::expand_inputs(&args.trajectories)?,
        &[
            args.output.as_deref(),
            args.summary.as_deref(),
            args.rendered.as_deref(),
            args.html.as_deref(),
        ],
    )?;
    let trajectories = read_trajectories_with(
        &args.trajectories,
        ReadOptions {
            format: args.format.into(),
            score_rejected_actions: args.score_rejected_actions,
        },
    )?;
    let explaining = args.explain.is_some();
    let mut rows_out = match (&args.output, args.json || explaining) {
        (Some(p), _) => Some(data::create_output(Some(p.as_path()))?),
        (None, false) => Some(data::create_output(None)?),
        (None, true) => None,
    }
    .map(JsonlWriter::new);
    let mut rendered_out = args
        .rendered
        .as_ref()
        .map(|p| data::create_output(Some(p.as_path())).map(JsonlWriter::new))
        .transpose()
        .context("opening the rendered-text output")?;
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
    let mut flow = Flow::new(&spinner);
    let mut explained = false;
    let wanted = |t: &Trajectory| args.explain.as_ref().is_none_or(|id| *id == t.id);
    let items = trajectories.take(args.limit.map_or(usize::MAX, |l| l as usize));
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
        if let Some(out) = rows_out.as_mut() {
            for row in eval::rows(&traj, &evaluated) {
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
    flow.drive(&mut [backend.as_mut()], items, work, sink)?;
    let log = flow.log;
    if let Some(out) = rows_out {
        out.finish().context("writing the per-trajectory rows")?;
    }
    if let Some(out) = rendered_out {
        out.finish().context("writing the rendered trajectories")?;
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
    let summary = totals.finish(
        &log,
        backend.info().clone(),
        template.origin.clone(),
        settings,
    );
    if let Some(p) = &args.summary {
        data::write_json_atomic(p, &summary)?;
    }
    if args.json {
        super::common::print_line(serde_json::to_string_pretty(&summary)?)?;
    }
    print_table(&summary);
    if summary.trajectories == 0 {
        bail!(
            "no trajectory could be scored ({} skipped)",
            summary.skipped
        );
    }
    Ok(())
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
    print_skips(&mut e, s.skipped, &s.errors, "see --summary");
}
