//! `hesnr eval`: the paper's evaluation set. Every trajectory is rendered whole with the chat
//! template and teacher-forced as context (windowed like any long document); only the positions a
//! [`Preset`] selects (by default, cleaned Action tokens) are pushed into the metrics.
//!
//! One forward pass serves every preset: the presets differ only in which positions they score.

use serde::Serialize;

use super::proxy_columns::ProxyValues;
use super::run::{per_second, RunLog};
use crate::analysis::intervals::{metric_intervals, MetricIntervals};
use crate::data::trajectory::clean::CleanStats;
use crate::data::trajectory::mask::{byte_mask, token_mask, Preset, TokenRule};
use crate::data::trajectory::render::{
    render, ChatTemplate, RenderError, Rendered, TemplateChoice,
};
use crate::data::trajectory::{SegmentKind, Trajectory};
use crate::engine::{score_selected, Backend, EngineError, ModelInfo, Tokenized};
use crate::metrics::{Accumulator, MetricConfig, PositionMetrics, PositionStats, Summary};
use crate::pipeline::score::ScoreSettings;

/// Settings of an eval run that are not the model's.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSettings {
    #[serde(flatten)]
    pub score: ScoreSettings,
    /// The presets computed; the first is the headline.
    pub presets: Vec<Preset>,
    pub token_rule: TokenRule,
}

/// Why one trajectory was not scored.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("no {0} segment to score")]
    NothingToScore(&'static str),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl EvalError {
    /// Whether the run must stop rather than skip the trajectory (see [`EngineError::is_fatal`]).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Engine(e) if e.is_fatal())
    }
}

/// One preset's result on one trajectory.
#[derive(Debug, Clone)]
pub struct PresetResult {
    pub preset: Preset,
    pub acc: Accumulator,
    /// Per token of [`EvaluatedTrajectory::tokens`]: scored under this preset.
    pub scored: Vec<bool>,
    pub clean: CleanStats,
}

/// A trajectory after the forward pass: what the model saw and every preset's result.
#[derive(Debug, Clone)]
pub struct EvaluatedTrajectory {
    pub rendered: Rendered,
    pub tokens: Tokenized,
    /// Statistics of the positions `tokens.first_target()..` that some preset scores (the
    /// others are context only and not computed).
    pub positions: Vec<Option<PositionStats>>,
    pub presets: Vec<PresetResult>,
}

impl EvaluatedTrajectory {
    /// The statistics of the positions `preset_index` scores, in order.
    pub fn scored_positions(&self, preset_index: usize) -> impl Iterator<Item = &PositionStats> {
        let scored = &self.presets[preset_index].scored;
        (0..scored.len())
            .filter(|&i| scored[i])
            .filter_map(|i| self.position(i))
    }

    /// The statistics of token `pos`, if it is a prediction target.
    pub fn position(&self, pos: usize) -> Option<&PositionStats> {
        pos.checked_sub(self.tokens.first_target())
            .and_then(|i| self.positions.get(i))
            .and_then(Option::as_ref)
    }
}

/// A trajectory rendered, tokenized and masked under every preset: all of its work before the
/// forward pass, and all that `eval --check` does.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub rendered: Rendered,
    pub tokens: Tokenized,
    /// Per preset asked for, in order: per token of `tokens`, scored or not; and what cleaning
    /// did.
    pub masks: Vec<(Preset, Vec<bool>, CleanStats)>,
}

/// Renders `traj` with `template`, tokenizes it with `backend`'s tokenizer and computes each
/// preset's token mask. Fails (the trajectory is skipped) when no preset has anything to score,
/// when the template cannot render it, or when the tokenizer fails.
pub fn prepare_trajectory(
    backend: &dyn Backend,
    template: &ChatTemplate,
    traj: &Trajectory,
    presets: &[Preset],
    token_rule: TokenRule,
) -> Result<Prepared, EvalError> {
    // A preset whose segments the trajectory lacks (no Thought text: native tool-calling agents
    // often leave `content` empty) gets a row with nothing scored; the trajectory is skipped
    // only when no preset asked for has anything to score, so that each preset's row is the
    // same whichever other presets are computed with it.
    let present = |kind: SegmentKind| {
        traj.messages
            .iter()
            .flat_map(|m| &m.segments)
            .any(|s| s.kind == kind && !s.text.trim().is_empty())
    };
    if !presets.iter().any(|p| present(p.scored_kind())) {
        let headline = presets
            .first()
            .map_or(SegmentKind::Action, |p| p.scored_kind());
        return Err(EvalError::NothingToScore(match headline {
            SegmentKind::Thought => "Thought",
            _ => "Action",
        }));
    }
    let rendered = render(traj, template)?;
    let tokens = backend.tokenize_chat(&rendered.text)?;
    let masks = presets
        .iter()
        .map(|&preset| {
            let mut clean = CleanStats::default();
            let bytes = byte_mask(traj, &rendered, preset, &mut clean);
            (
                preset,
                token_mask(&tokens.offsets, &bytes, token_rule),
                clean,
            )
        })
        .collect();
    Ok(Prepared {
        rendered,
        tokens,
        masks,
    })
}

/// Renders, tokenizes, runs and scores one trajectory under every preset of `settings`.
pub fn eval_trajectory(
    backend: &mut dyn Backend,
    template: &ChatTemplate,
    traj: &Trajectory,
    settings: &EvalSettings,
) -> Result<EvaluatedTrajectory, EvalError> {
    let Prepared {
        rendered,
        tokens,
        masks,
    } = prepare_trajectory(
        &*backend,
        template,
        traj,
        &settings.presets,
        settings.token_rule,
    )?;
    let first = tokens.first_target();
    let k = settings.score.metrics.k;
    // One forward pass for all presets; only positions some preset scores are computed.
    let wanted: Vec<bool> = (0..tokens.ids.len())
        .map(|t| masks.iter().any(|(_, m, _)| m[t]))
        .collect();
    let positions = score_selected(backend, &tokens, &wanted, &settings.score.windowing, k)?;
    let presets = masks
        .into_iter()
        .map(|(preset, scored, clean)| {
            let mut acc = Accumulator::new(settings.score.metrics);
            for (i, p) in positions.iter().enumerate() {
                if scored[first + i] {
                    let p = p.as_ref().expect("scored positions are computed");
                    acc.push(&PositionMetrics::from_stats(p, k));
                }
            }
            acc.finish_document();
            PresetResult {
                preset,
                acc,
                scored,
                clean,
            }
        })
        .collect();
    Ok(EvaluatedTrajectory {
        rendered,
        tokens,
        positions,
        presets,
    })
}

/// One output row: one trajectory under one preset (long format, one row per pair).
#[derive(Debug, Clone, Serialize)]
pub struct TrajectoryRow<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub line: u64,
    pub preset: &'static str,
    /// Tokens of the rendered trajectory: the context the model saw.
    pub context_tokens: usize,
    pub action_segments: usize,
    #[serde(flatten)]
    pub metrics: Summary,
    /// The registry metrics asked for with `--metrics` (null where unavailable).
    #[serde(flatten)]
    pub proxy: ProxyValues,
    pub clean: &'a CleanStats,
    /// The weights' precision the numbers were computed in ([`ModelInfo::precision`]).
    pub precision: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<&'a serde_json::Value>,
}

/// The rows of one evaluated trajectory, one per preset, computed in `precision`.
pub fn rows<'a>(
    traj: &'a Trajectory,
    eval: &'a EvaluatedTrajectory,
    precision: &'a str,
) -> Vec<TrajectoryRow<'a>> {
    eval.presets
        .iter()
        .map(|r| TrajectoryRow {
            id: &traj.id,
            source: &traj.source,
            line: traj.line,
            preset: r.preset.name(),
            context_tokens: eval.tokens.ids.len(),
            action_segments: traj.action_count(),
            metrics: r.acc.summary(),
            proxy: ProxyValues::default(),
            clean: &r.clean,
            precision,
            warnings: &traj.warnings,
            metadata: traj.metadata.as_ref(),
        })
        .collect()
}

/// One preset pooled over the set.
#[derive(Debug, Clone, Serialize)]
pub struct PresetSummary {
    pub preset: &'static str,
    pub description: &'static str,
    #[serde(flatten)]
    pub metrics: Summary,
    /// The registry metrics asked for with `--metrics`, pooled over the set.
    #[serde(flatten)]
    pub proxy: ProxyValues,
    /// Why a registry metric has no value, by name.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub unavailable: serde_json::Value,
    /// How far these pooled metrics would move on another set of as many trajectories like
    /// these (bootstrap over trajectories): what a difference between two runs is weighed
    /// against. Absent when no trajectory was scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervals: Option<MetricIntervals>,
    pub clean: CleanStats,
}

/// The summary of an eval run, as written by `--json` and `--summary`.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    pub model: ModelInfo,
    /// Where the chat template came from (`model`, `chatml`, a file).
    pub chat_template: String,
    pub settings: EvalSettings,
    pub trajectories: u64,
    pub skipped: u64,
    /// The first skipped trajectories, with file, line and reason.
    pub errors: Vec<String>,
    pub warnings: u64,
    /// Context tokens processed (every token of every rendered trajectory).
    pub context_tokens: u64,
    pub seconds: f64,
    pub context_tokens_per_second: f64,
    /// Why the run stopped before the end of its inputs (the server gone or failing a check);
    /// the numbers cover the trajectories scored before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub presets: Vec<PresetSummary>,
}

/// Pooled totals per preset; counts, skips and the clock are the driver's [`RunLog`].
pub struct EvalTotals {
    pooled: Vec<(Preset, Accumulator, CleanStats)>,
    /// Each scored trajectory's sums per preset (same order as `pooled`), for the intervals:
    /// about 1 KB a trajectory and preset.
    units: Vec<Vec<Accumulator>>,
    /// Reader warnings of the trajectories scored.
    pub warnings: u64,
}

impl EvalTotals {
    pub fn new(presets: &[Preset], config: MetricConfig) -> Self {
        Self {
            pooled: presets
                .iter()
                .map(|&p| (p, Accumulator::new(config), CleanStats::default()))
                .collect(),
            units: vec![Vec::new(); presets.len()],
            warnings: 0,
        }
    }

    pub fn add(&mut self, traj: &Trajectory, eval: &EvaluatedTrajectory) {
        for (((_, acc, clean), units), r) in self
            .pooled
            .iter_mut()
            .zip(&mut self.units)
            .zip(&eval.presets)
        {
            acc.merge(&r.acc)
                .expect("same settings for every trajectory");
            clean.merge(&r.clean);
            units.push(r.acc.clone());
        }
        self.warnings += traj.warnings.len() as u64;
    }

    pub fn finish(
        &self,
        log: &RunLog,
        model: ModelInfo,
        chat_template: String,
        settings: EvalSettings,
    ) -> EvalSummary {
        let seconds = log.elapsed();
        EvalSummary {
            model,
            chat_template,
            settings,
            trajectories: log.done,
            skipped: log.skips.count,
            errors: log.skips.reasons.clone(),
            warnings: self.warnings,
            context_tokens: log.tokens,
            seconds,
            context_tokens_per_second: per_second(log.tokens, seconds),
            stopped: None,
            presets: self
                .pooled
                .iter()
                .zip(&self.units)
                .map(|((p, acc, clean), units)| PresetSummary {
                    preset: p.name(),
                    description: p.description(),
                    metrics: acc.summary(),
                    proxy: ProxyValues::default(),
                    unavailable: serde_json::Value::Null,
                    intervals: metric_intervals(units, "trajectory"),
                    clean: clean.clone(),
                })
                .collect(),
        }
    }
}

/// The chat template `choice` names for `backend`: the model's own (ChatML, with a warning, when
/// the model ships none), ChatML, or a file.
pub fn choose_template(
    choice: &TemplateChoice,
    backend: &dyn Backend,
) -> Result<ChatTemplate, RenderError> {
    match choice {
        TemplateChoice::Model => match backend.chat_template() {
            Some(spec) => {
                ChatTemplate::new(&spec.template, "model", &spec.bos_token, &spec.eos_token)
            }
            None => {
                tracing::warn!("the model has no chat template; using ChatML");
                Ok(ChatTemplate::chatml())
            }
        },
        TemplateChoice::ChatMl => Ok(ChatTemplate::chatml()),
        TemplateChoice::File(path) => ChatTemplate::from_file(path),
    }
}
