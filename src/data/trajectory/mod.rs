//! Agent trajectories: read them from the formats people have, render them whole through the
//! model's chat template, and say which characters of the rendered text are scored.
//!
//! The flow is one way: a reader ([`read`]) turns a file into [`Trajectory`] values, messages made
//! of typed [`Segment`]s (prompt, thought, action, observation); [`render`] lays the messages out
//! with the chat template and keeps, for every byte of the rendered text, the segment it came
//! from; [`clean`] turns an action segment into a keep-mask (tool-call tags, markdown, comments,
//! redundant whitespace removed, each step switchable); [`mask`] combines both into the byte mask
//! of a whole rendered trajectory for a [`mask::Preset`], which the eval pipeline maps to tokens.

pub mod action;
pub mod clean;
pub mod comments;
pub mod lang;
pub mod mask;
pub mod read;
pub mod render;
pub mod template_worker;

use std::ops::Range;

use serde::Serialize;

pub use lang::Lang;

/// Who speaks a message, in the chat template's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    /// The role name chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// What a piece of a message is. Only actions are scored by the paper's method; thoughts are
/// scored by the "thought" ablation preset; prompts and observations are context only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentKind {
    /// System prompt, task statement, other user text.
    Prompt,
    /// The agent's reasoning before it acts.
    Thought,
    /// What the agent does: a command, an edit, a tool call.
    Action,
    /// Tool or environment output.
    Observation,
}

/// A region of an action that is source code, for comment removal by a parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRegion {
    /// Byte range in the segment's text.
    pub range: Range<usize>,
    pub lang: Lang,
}

/// A contiguous piece of a message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub kind: SegmentKind,
    pub text: String,
    /// Byte ranges of `text` that are tool-call syntax written when a structured tool call was
    /// turned into text (`<function=...>`, `<parameter=...>`, closing tags). Markup found in
    /// free text is detected by [`clean`] itself.
    pub markup: Vec<Range<usize>>,
    /// Byte ranges of `text` that hold code, with their language. Sorted, non-overlapping.
    pub code: Vec<CodeRegion>,
}

impl Segment {
    /// A segment with no markup or code annotations.
    pub fn plain(kind: SegmentKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
            markup: Vec::new(),
            code: Vec::new(),
        }
    }
}

/// One chat message; its content is the concatenation of its segments' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub segments: Vec<Segment>,
}

impl Message {
    pub fn content(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect()
    }
}

/// One agent trajectory, with where it came from so that results and errors point back to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// The record's id (`id`, `instance_id`, `trajectory_id`), else derived from the file name
    /// (and line, for JSONL).
    pub id: String,
    /// The file path as given or found under a given directory, or `<stdin>`.
    pub source: String,
    /// 1-based line for JSONL; 0 for a whole-file trajectory.
    pub line: u64,
    /// The format it was read as, for `eval --check` and errors: the reader (`chat`,
    /// `swe-agent`, `openhands`), or a finer dialect a reader recognised (`mini-swe-agent`).
    pub format: &'static str,
    pub messages: Vec<Message>,
    /// The record's `metadata` (and labels such as `resolved`), passed through to output rows.
    pub metadata: Option<serde_json::Value>,
    /// Problems the reader worked around (e.g. tool-call arguments that are not valid JSON,
    /// kept as raw text), reported with the trajectory's results.
    pub warnings: Vec<String>,
}

impl Trajectory {
    /// Number of action segments: a trajectory without any has nothing to score.
    pub fn action_count(&self) -> usize {
        self.messages
            .iter()
            .flat_map(|m| &m.segments)
            .filter(|s| s.kind == SegmentKind::Action)
            .count()
    }
}
