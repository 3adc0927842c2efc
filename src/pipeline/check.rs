//! `hesnr eval --check`: what an evaluation set holds, before any compute is spent on it.
//!
//! Every trajectory goes through exactly the steps `eval` runs before the forward pass (read,
//! render with the chat template, clean and mask, tokenize: [`prepare_trajectory`]), so a
//! trajectory the check counts is one `eval` scores, and one it skips is skipped for the same
//! reason. What it found is counted per trajectory, per file and per format.

use serde::Serialize;

use super::eval::{prepare_trajectory, EvalError, Prepared};
use super::run::{per_second, RunLog, Worked};
use crate::data::trajectory::mask::{Preset, TokenRule};
use crate::data::trajectory::render::ChatTemplate;
use crate::data::trajectory::{SegmentKind, Trajectory};
use crate::data::RecordError;
use crate::engine::Backend;

/// Segments of a trajectory (or a set) by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SegmentCounts {
    pub prompt: u64,
    pub thought: u64,
    pub action: u64,
    pub observation: u64,
}

impl SegmentCounts {
    /// The segments of `traj`, counted by kind.
    pub fn of(traj: &Trajectory) -> Self {
        let mut c = Self::default();
        for s in traj.messages.iter().flat_map(|m| &m.segments) {
            *match s.kind {
                SegmentKind::Prompt => &mut c.prompt,
                SegmentKind::Thought => &mut c.thought,
                SegmentKind::Action => &mut c.action,
                SegmentKind::Observation => &mut c.observation,
            } += 1;
        }
        c
    }

    fn add(&mut self, o: &Self) {
        self.prompt += o.prompt;
        self.thought += o.thought;
        self.action += o.action;
        self.observation += o.observation;
    }
}

/// Tokens one preset scores.
#[derive(Debug, Clone, Serialize)]
pub struct PresetTokens {
    pub preset: &'static str,
    pub scored_tokens: u64,
}

/// One trajectory as the check found it (a row of `eval --check -o`).
#[derive(Debug, Clone, Serialize)]
pub struct CheckedTrajectory {
    pub id: String,
    pub source: String,
    pub line: u64,
    pub format: &'static str,
    pub messages: usize,
    pub segments: SegmentCounts,
    /// Tokens of the rendered trajectory: the context `eval` would run.
    pub context_tokens: u64,
    /// Per preset asked for, the tokens it would score.
    pub presets: Vec<PresetTokens>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The text as rendered for the model (for `--rendered`; not part of the row).
    #[serde(skip)]
    pub rendered: String,
}

impl Worked for CheckedTrajectory {
    fn tokens(&self) -> u64 {
        self.context_tokens
    }
}

/// Prepares `traj` as `eval` would and counts what it holds.
pub fn check_trajectory(
    backend: &dyn Backend,
    template: &ChatTemplate,
    traj: &Trajectory,
    presets: &[Preset],
    token_rule: TokenRule,
) -> Result<CheckedTrajectory, EvalError> {
    let Prepared {
        rendered,
        tokens,
        masks,
    } = prepare_trajectory(backend, template, traj, presets, token_rule)?;
    Ok(CheckedTrajectory {
        id: traj.id.clone(),
        source: traj.source.clone(),
        line: traj.line,
        format: traj.format,
        messages: traj.messages.len(),
        segments: SegmentCounts::of(traj),
        context_tokens: tokens.ids.len() as u64,
        presets: masks
            .iter()
            .map(|(p, scored, _)| PresetTokens {
                preset: p.name(),
                scored_tokens: scored.iter().filter(|&&s| s).count() as u64,
            })
            .collect(),
        warnings: traj.warnings.clone(),
        rendered: rendered.text,
    })
}

/// What a group of trajectories (a file, a format, the whole set) holds.
#[derive(Debug, Clone, Serialize)]
pub struct CheckGroup {
    /// The file, or the format's name, or `all`.
    pub name: String,
    /// Formats seen in the group, in order of first appearance (files only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<&'static str>,
    pub trajectories: u64,
    /// Trajectories or records `eval` would skip.
    pub skipped: u64,
    pub segments: SegmentCounts,
    pub context_tokens: u64,
    /// Per preset, the tokens it would score.
    pub presets: Vec<PresetTokens>,
    pub warnings: u64,
}

impl CheckGroup {
    fn new(name: String, presets: &[Preset]) -> Self {
        Self {
            name,
            formats: Vec::new(),
            trajectories: 0,
            skipped: 0,
            segments: SegmentCounts::default(),
            context_tokens: 0,
            presets: presets
                .iter()
                .map(|p| PresetTokens {
                    preset: p.name(),
                    scored_tokens: 0,
                })
                .collect(),
            warnings: 0,
        }
    }

    fn add(&mut self, t: &CheckedTrajectory) {
        self.trajectories += 1;
        self.segments.add(&t.segments);
        self.context_tokens += t.context_tokens;
        for (total, one) in self.presets.iter_mut().zip(&t.presets) {
            total.scored_tokens += one.scored_tokens;
        }
        self.warnings += t.warnings.len() as u64;
    }
}

/// The check of a whole set, as `eval --check --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    /// The model whose tokenizer and chat template were used.
    pub model: String,
    pub chat_template: String,
    /// Per input file, in input order.
    pub files: Vec<CheckGroup>,
    /// Per format, in order of first appearance.
    pub formats: Vec<CheckGroup>,
    pub total: CheckGroup,
    /// The first skipped trajectories or records, with file, line and reason.
    pub errors: Vec<String>,
    pub seconds: f64,
    pub context_tokens_per_second: f64,
}

/// Counts of a check in progress, per file and per format.
pub struct CheckTotals {
    presets: Vec<Preset>,
    files: Vec<CheckGroup>,
    formats: Vec<CheckGroup>,
    total: CheckGroup,
}

impl CheckTotals {
    pub fn new(presets: &[Preset]) -> Self {
        Self {
            presets: presets.to_vec(),
            files: Vec::new(),
            formats: Vec::new(),
            total: CheckGroup::new("all".into(), presets),
        }
    }

    /// The group named `name` in `groups`, made when new. Inputs come file after file, so the
    /// last group is tried first.
    fn group<'g>(
        groups: &'g mut Vec<CheckGroup>,
        name: &str,
        presets: &[Preset],
    ) -> &'g mut CheckGroup {
        let at = match groups.iter().rposition(|g| g.name == name) {
            Some(i) => i,
            None => {
                groups.push(CheckGroup::new(name.to_string(), presets));
                groups.len() - 1
            }
        };
        &mut groups[at]
    }

    /// A trajectory that would be scored.
    pub fn add(&mut self, t: &CheckedTrajectory) {
        let file = Self::group(&mut self.files, &t.source, &self.presets);
        file.add(t);
        if !file.formats.contains(&t.format) {
            file.formats.push(t.format);
        }
        Self::group(&mut self.formats, t.format, &self.presets).add(t);
        self.total.add(t);
    }

    /// A trajectory that would be skipped (its format known).
    pub fn skip_trajectory(&mut self, traj: &Trajectory) {
        let file = Self::group(&mut self.files, &traj.source, &self.presets);
        file.skipped += 1;
        if !file.formats.contains(&traj.format) {
            file.formats.push(traj.format);
        }
        Self::group(&mut self.formats, traj.format, &self.presets).skipped += 1;
        self.total.skipped += 1;
    }

    /// A record that could not be read as a trajectory (its format unknown).
    pub fn skip_record(&mut self, e: &RecordError) {
        Self::group(&mut self.files, &e.source, &self.presets).skipped += 1;
        self.total.skipped += 1;
    }

    pub fn finish(self, log: &RunLog, model: String, chat_template: String) -> CheckSummary {
        let seconds = log.elapsed();
        CheckSummary {
            model,
            chat_template,
            files: self.files,
            formats: self.formats,
            total: self.total,
            errors: log.skips.reasons.clone(),
            seconds,
            context_tokens_per_second: per_second(log.tokens, seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::trajectory::{Message, Role, Segment};

    fn traj(source: &str, format: &'static str, kinds: &[SegmentKind]) -> Trajectory {
        Trajectory {
            id: "t".into(),
            source: source.into(),
            line: 1,
            format,
            messages: vec![Message {
                role: Role::Assistant,
                segments: kinds.iter().map(|&k| Segment::plain(k, "x")).collect(),
            }],
            metadata: None,
            warnings: vec!["w".into()],
        }
    }

    fn checked(t: &Trajectory, context: u64, scored: u64) -> CheckedTrajectory {
        CheckedTrajectory {
            id: t.id.clone(),
            source: t.source.clone(),
            line: t.line,
            format: t.format,
            messages: t.messages.len(),
            segments: SegmentCounts::of(t),
            context_tokens: context,
            presets: vec![PresetTokens {
                preset: Preset::Full.name(),
                scored_tokens: scored,
            }],
            warnings: t.warnings.clone(),
            rendered: String::new(),
        }
    }

    #[test]
    fn segments_are_counted_by_kind() {
        use SegmentKind::*;
        let t = traj("a", "chat", &[Prompt, Thought, Action, Action, Observation]);
        assert_eq!(
            SegmentCounts::of(&t),
            SegmentCounts {
                prompt: 1,
                thought: 1,
                action: 2,
                observation: 1
            }
        );
    }

    #[test]
    fn totals_are_kept_per_file_per_format_and_overall() {
        use SegmentKind::*;
        let mut totals = CheckTotals::new(&[Preset::Full]);
        let a1 = traj("a.jsonl", "chat", &[Prompt, Action]);
        let a2 = traj("a.jsonl", "mini-swe-agent", &[Action, Action]);
        let b = traj("b.traj", "swe-agent", &[Thought, Action]);
        totals.add(&checked(&a1, 10, 3));
        totals.add(&checked(&a2, 20, 5));
        totals.skip_trajectory(&b);
        totals.add(&checked(&b, 7, 2));
        totals.skip_record(&RecordError {
            source: "c.json".into(),
            line: 0,
            field: None,
            kind: crate::data::RecordErrorKind::InvalidJson,
            message: "bad".into(),
        });
        let s = totals.finish(&RunLog::new(), "m".into(), "chatml".into());
        let names: Vec<&str> = s.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.jsonl", "b.traj", "c.json"]);
        let a = &s.files[0];
        assert_eq!(a.formats, ["chat", "mini-swe-agent"]);
        assert_eq!((a.trajectories, a.skipped, a.context_tokens), (2, 0, 30));
        assert_eq!(a.segments.action, 3);
        assert_eq!(a.presets[0].scored_tokens, 8);
        assert_eq!(a.warnings, 2);
        assert_eq!((s.files[1].trajectories, s.files[1].skipped), (1, 1));
        assert_eq!((s.files[2].trajectories, s.files[2].skipped), (0, 1));
        let formats: Vec<(&str, u64, u64)> = s
            .formats
            .iter()
            .map(|f| (f.name.as_str(), f.trajectories, f.skipped))
            .collect();
        assert_eq!(
            formats,
            [
                ("chat", 1, 0),
                ("mini-swe-agent", 1, 0),
                ("swe-agent", 1, 1)
            ]
        );
        assert_eq!((s.total.trajectories, s.total.skipped), (3, 2));
        assert_eq!(s.total.presets[0].scored_tokens, 10);
        assert_eq!(s.total.context_tokens, 37);
    }
}
