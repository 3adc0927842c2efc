//! Trajectory readers: OpenAI-style chat records (JSONL rows, mini-swe-agent `.traj.json`,
//! nebius/SWE-agent-trajectories rows), SWE-agent `.traj` files and OpenHands event logs, all
//! turned into [`Trajectory`] values whose segments say what is prompt, thought, action and
//! observation.
//!
//! Joining rules (what is added to the recorded text, and where):
//! - A message's content is the concatenation of its segments; nothing is added except between a
//!   thought and a rendered tool call, and between two rendered tool calls, where one `"\n"` is
//!   written: appended to the thought (unless it already ends with a newline), or appended to
//!   the previous action and recorded as its markup (it is syntax written by the renderer).
//! - Actions written in free text (`<function=...>` blocks, fenced commands) are split out of the
//!   text in place: see [`super::action`] for the rules.
//! - A user message right after an assistant message with an action is an Observation (that is
//!   what SWE-agent and mini-swe-agent send back); other system/user messages are Prompts.
//! - `reasoning_content` and non-text content parts are not part of the rendered context and are
//!   left out (a non-text part is reported as a warning).

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::action::{
    raw_command_action, render_raw_tool_call, render_tool_call, split_actions, track_current_file,
    wrap,
};
use super::{Message, Role, Segment, SegmentKind, Trajectory};
use crate::data::reader::{collect_dir, input_metadata};
use crate::data::{DataError, RecordError, RecordErrorKind};

const STDIN: &str = "<stdin>";
const BUF_SIZE: usize = 1 << 16;
const BOM: &[u8] = b"\xEF\xBB\xBF";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";
const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";

/// How trajectory inputs are parsed. `Auto` decides per file (by extension, then by the shape of
/// the JSON); the others force one parser on every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrajectoryFormat {
    /// `*.jsonl`/`*.ndjson` (and stdin): one record per line, each sniffed, chat by default;
    /// `*.traj`: SWE-agent unless the JSON says otherwise; `*.json`: sniffed.
    #[default]
    Auto,
    /// OpenAI chat `messages` (or a nebius-style `trajectory` of `{role, text}`).
    Chat,
    /// SWE-agent `.traj`: `history` and/or `trajectory` steps, `info`.
    SweAgent,
    /// OpenHands event log: an array of events, or `{"history" | "events": [...]}`.
    OpenHands,
}

/// Checks inputs (missing -> [`DataError`] at once), then streams trajectories; a bad record is
/// an `Err` item and the stream goes on.
///
/// `-` is stdin (JSON Lines). A directory expands to its non-hidden files, recursively, sorted
/// by name, keeping only trajectory files (`.jsonl`, `.ndjson`, `.json`, `.traj`, each maybe
/// `.gz`/`.zst`); a file named explicitly is read whatever its name (as one JSON value, or as
/// JSON Lines when it is a pipe). Compression is detected from the bytes.
pub fn read_trajectories(
    inputs: &[PathBuf],
    format: TrajectoryFormat,
) -> Result<TrajectoryStream, DataError> {
    let mut queue = VecDeque::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            queue.push_back(Input {
                path: None,
                lines: true,
                format,
                fallback: Some(TrajectoryFormat::Chat),
            });
            continue;
        }
        let meta = input_metadata(p)?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_dir(p, &mut HashSet::new(), &mut files)?;
            let before = queue.len();
            queue.extend(
                files
                    .into_iter()
                    .filter_map(|f| classify(f, format, false, true)),
            );
            if queue.len() == before {
                tracing::warn!("input directory {} has no trajectory files", p.display());
            }
        } else {
            queue.extend(classify(p.clone(), format, true, meta.is_file()));
        }
    }
    Ok(TrajectoryStream {
        queue,
        pending: VecDeque::new(),
        lines: None,
    })
}

/// The trajectories of all inputs in order, each item a [`Trajectory`] or the [`RecordError`]
/// of one record. Inputs are opened one at a time as they are reached; JSON Lines are read one
/// line at a time.
pub struct TrajectoryStream {
    queue: VecDeque<Input>,
    /// Items of a whole file already parsed.
    pending: VecDeque<Result<Trajectory, RecordError>>,
    lines: Option<LineInput>,
}

#[derive(Debug, Clone)]
struct Input {
    /// `None` is stdin.
    path: Option<PathBuf>,
    /// JSON Lines rather than one JSON value.
    lines: bool,
    format: TrajectoryFormat,
    /// With `Auto`, the parser for a value whose shape says nothing.
    fallback: Option<TrajectoryFormat>,
}

struct LineInput {
    source: String,
    reader: Box<dyn BufRead + Send>,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
    line: u64,
    buf: Vec<u8>,
}

impl Iterator for TrajectoryStream {
    type Item = Result<Trajectory, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if let Some(cur) = self.lines.as_mut() {
                cur.buf.clear();
                match cur.reader.read_until(b'\n', &mut cur.buf) {
                    Ok(0) => self.lines = None,
                    Ok(_) => {
                        cur.line += 1;
                        let mut bytes = cur.buf.as_slice();
                        bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                        bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                        if cur.line == 1 {
                            bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
                        }
                        if bytes.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        return Some(parse_line(
                            bytes,
                            &cur.source,
                            cur.line,
                            cur.format,
                            cur.fallback,
                        ));
                    }
                    Err(e) => {
                        let err = RecordError {
                            source: cur.source.clone(),
                            line: cur.line + 1,
                            field: None,
                            kind: RecordErrorKind::Io,
                            message: format!(
                                "read failed (corrupt or truncated compressed stream?), rest of \
                                 the file skipped: {e}"
                            ),
                        };
                        self.lines = None;
                        return Some(Err(err));
                    }
                }
                continue;
            }
            let input = self.queue.pop_front()?;
            let source = input
                .path
                .as_ref()
                .map_or_else(|| STDIN.to_string(), |p| p.display().to_string());
            let reader = match open(input.path.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    return Some(Err(file_error(
                        &source,
                        RecordErrorKind::Io,
                        format!("cannot open: {e}"),
                    )))
                }
            };
            if input.lines {
                self.lines = Some(LineInput {
                    source,
                    reader,
                    format: input.format,
                    fallback: input.fallback,
                    line: 0,
                    buf: Vec::new(),
                });
            } else {
                self.pending
                    .extend(read_whole(reader, &source, input.format, input.fallback));
            }
        }
    }
}

/// Parses one chat record: `{"id" | "instance_id" | "trajectory_id", "messages": [...],
/// "metadata": {...}}`, or the same with `trajectory` as the list and `text` for `content`
/// (nebius/SWE-agent-trajectories).
///
/// Roles: system (and developer), user (human), assistant (ai, model), tool (function). Content
/// is a string, null, or a list of `{"type": "text", "text": ...}` parts (concatenated). An
/// assistant's content is a Thought when it has `tool_calls` (each rendered with
/// [`render_tool_call`]; a legacy `function_call` counts as one); otherwise actions written in
/// it are split out. Metadata: the record's `metadata` object, plus top-level `resolved`,
/// `instance_id`, `model_name`, `exit_status`, `info.exit_status`, `info.submission`, and a
/// boolean `target` as `resolved`, where `metadata` lacks them.
pub fn parse_chat(value: &Value, source: &str, line: u64) -> Result<Trajectory, RecordError> {
    let mut cx = Cx::new(source, line);
    let obj = value
        .as_object()
        .ok_or_else(|| cx.wrong_type("$", "a JSON object with `messages`", value))?;
    let (key, list) = match (non_null(obj, "messages"), non_null(obj, "trajectory")) {
        (Some(m), _) => ("messages", m),
        (None, Some(t)) => ("trajectory", t),
        (None, None) => {
            return Err(cx.err(
                RecordErrorKind::MissingField,
                "$.messages",
                missing_message(obj),
            ))
        }
    };
    let path = format!("$.{key}");
    let list = list
        .as_array()
        .ok_or_else(|| cx.wrong_type(&path, "an array of messages", list))?;
    let mut current_file = None;
    let mut after_action = false;
    let mut messages = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let msg = chat_message(
            &mut cx,
            m,
            &format!("{path}[{i}]"),
            &mut current_file,
            after_action,
        )?;
        after_action = msg.role == Role::Assistant && has_action(&msg);
        messages.push(msg);
    }
    let id = record_id(&cx, value)?;
    let metadata = merged_metadata(&cx, obj)?;
    Ok(cx.finish(id, messages, metadata))
}

/// Parses an SWE-agent `.traj` value: `history` (what the model saw) when it has messages, else
/// the `trajectory` steps. Metadata: `info.exit_status`, `info.submission`, `format:
/// "swe-agent"`.
///
/// History: system/user -> Prompt, except a user message with `message_type: "observation"` or
/// one right after an assistant action -> Observation; tool -> Observation. An assistant message
/// with `tool_calls` (function-calling SWE-agent) is Thought + rendered calls. One with `action`:
/// the action is looked up in `content` (last occurrence, with the fence lines around it) and
/// that part is the Action ([`raw_command_action`], current file tracked from `open`/`create`),
/// the rest Thought; when it is not found, Thought = `thought` + `"\n"`, Action = `action`.
///
/// Steps (no history): per step, an assistant message with Thought = `thought` (trailing
/// whitespace trimmed) followed by `"\n\n"`, and Action = `` "```\n" + action + "\n```" `` (the
/// action's trailing newlines trimmed, fences as markup); then a user message with the
/// `observation`. A step with only `response` has it split like free text.
pub fn parse_swe_agent(value: &Value, source: &str, line: u64) -> Result<Trajectory, RecordError> {
    let mut cx = Cx::new(source, line);
    let obj = value.as_object().ok_or_else(|| {
        cx.wrong_type(
            "$",
            "an SWE-agent trajectory object with `history` or `trajectory`",
            value,
        )
    })?;
    let history = non_null(obj, "history")
        .map(|h| {
            h.as_array()
                .ok_or_else(|| cx.wrong_type("$.history", "an array of messages", h))
        })
        .transpose()?;
    let steps = non_null(obj, "trajectory")
        .map(|t| {
            t.as_array()
                .ok_or_else(|| cx.wrong_type("$.trajectory", "an array of steps", t))
        })
        .transpose()?;
    let messages = match (history, steps) {
        (Some(h), Some(s)) if h.is_empty() && !s.is_empty() => swe_steps(&mut cx, s)?,
        (Some(h), _) => swe_history(&mut cx, h)?,
        (None, Some(s)) => swe_steps(&mut cx, s)?,
        (None, None) => {
            return Err(cx.err(
                RecordErrorKind::MissingField,
                "$.history",
                format!(
                    "{}; an SWE-agent trajectory has `history` or `trajectory`",
                    missing_message(obj)
                ),
            ))
        }
    };
    let mut meta = Map::new();
    if let Some(Value::Object(info)) = obj.get("info") {
        for key in ["exit_status", "submission"] {
            if let Some(v) = info.get(key).filter(|v| !v.is_null()) {
                meta.insert(key.into(), v.clone());
            }
        }
    }
    meta.insert("format".into(), "swe-agent".into());
    let id = record_id(&cx, value)?;
    Ok(cx.finish(id, messages, Some(Value::Object(meta))))
}

/// Parses an OpenHands event log: an array of events, or an object with `history` or `events`
/// (as in OpenHands' evaluation `output.jsonl`, whose `instance_id` becomes the id).
///
/// Actions: `system` -> system Prompt (`args.content`); `message` from the user -> user Prompt,
/// from the agent -> assistant Thought (`args.content`); `think` -> assistant Thought
/// (`args.thought`); any other action -> one assistant message, Thought = `args.thought` (if not
/// empty), then the tool call as an Action. The call's name is
/// `tool_call_metadata.function_name`, its arguments those of the matching call in
/// `tool_call_metadata.model_response` (what the model wrote), else built from `args`:
/// `run` -> `execute_bash{command}`, `run_ipython` -> `execute_ipython_cell{code}`, `read` ->
/// `str_replace_editor{command: "view", path, view_range}`, `edit` ->
/// `str_replace_editor{command, path, file_text, old_str, new_str, insert_line}` (or, without
/// `command`, `edit_file{path, content, start, end}`), `finish` -> `finish{message,
/// task_completed}` (message from `final_thought`, else `message`), `browse` -> `web_read{url}`,
/// `browse_interactive` -> `browser{code}`, others -> the action's name with its `args` minus
/// bookkeeping; null values are left out. Observations -> tool Observation (`content`).
/// Bookkeeping events (`agent_state_changed`, `change_agent_state`, `recall`, `condensation`,
/// `null`, empty) are skipped. Metadata: `format: "openhands"`, plus the object form's fields as
/// for chat.
pub fn parse_openhands(value: &Value, source: &str, line: u64) -> Result<Trajectory, RecordError> {
    let mut cx = Cx::new(source, line);
    const EXPECTED: &str = "an array of OpenHands events, or an object with `history` or `events`";
    let (base, events) = match value {
        Value::Array(a) => ("$", a),
        Value::Object(o) => {
            let (key, list) = match (non_null(o, "history"), non_null(o, "events")) {
                (Some(h), _) => ("$.history", h),
                (None, Some(e)) => ("$.events", e),
                (None, None) => {
                    return Err(cx.err(
                        RecordErrorKind::MissingField,
                        "$.history",
                        format!("{}; expected {EXPECTED}", missing_message(o)),
                    ))
                }
            };
            let list = list
                .as_array()
                .ok_or_else(|| cx.wrong_type(key, "an array of events", list))?;
            (key, list)
        }
        other => return Err(cx.wrong_type("$", EXPECTED, other)),
    };
    let mut messages = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        openhands_event(&mut cx, ev, &format!("{base}[{i}]"), &mut messages)?;
    }
    let id = record_id(&cx, value)?;
    let mut meta = match value {
        Value::Object(o) => match merged_metadata(&cx, o)? {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    meta.entry("format").or_insert_with(|| "openhands".into());
    Ok(cx.finish(id, messages, Some(Value::Object(meta))))
}

// ---------------------------------------------------------------------------------------------
// Record context and JSON helpers

/// Where a record is, and the warnings collected while reading it.
struct Cx<'a> {
    source: &'a str,
    line: u64,
    warnings: Vec<String>,
}

impl<'a> Cx<'a> {
    fn new(source: &'a str, line: u64) -> Self {
        Self {
            source,
            line,
            warnings: Vec::new(),
        }
    }

    fn err(&self, kind: RecordErrorKind, path: &str, message: impl Into<String>) -> RecordError {
        RecordError {
            source: self.source.to_string(),
            line: self.line,
            field: Some(path.to_string()),
            kind,
            message: message.into(),
        }
    }

    fn wrong_type(&self, path: &str, expected: &str, found: &Value) -> RecordError {
        self.err(
            RecordErrorKind::WrongType,
            path,
            format!("expected {expected}, found {}", type_name(found)),
        )
    }

    fn finish(self, id: String, messages: Vec<Message>, metadata: Option<Value>) -> Trajectory {
        Trajectory {
            id,
            source: self.source.to_string(),
            line: self.line,
            messages,
            metadata,
            warnings: self.warnings,
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn non_null<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An optional string field: absent or null is `None`, another type an error.
fn opt_str<'v>(
    cx: &Cx,
    obj: &'v Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'v str>, RecordError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(cx.wrong_type(&format!("{path}.{key}"), "a string", other)),
    }
}

/// "missing", with the object's own keys, which usually show what the record is instead.
fn missing_message(obj: &Map<String, Value>) -> String {
    const SHOWN: usize = 8;
    if obj.is_empty() {
        return "missing (the record is an empty object)".into();
    }
    let keys: Vec<&str> = obj.keys().map(String::as_str).take(SHOWN).collect();
    let more = if obj.len() > SHOWN { ", ..." } else { "" };
    format!("missing (the record has: {}{more})", keys.join(", "))
}

/// Message content: a string, null (empty), or a list of parts whose texts are concatenated.
fn content_text(cx: &mut Cx, v: Option<&Value>, path: &str) -> Result<String, RecordError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (i, part) in parts.iter().enumerate() {
                match part {
                    Value::String(s) => out.push_str(s),
                    Value::Object(o) => match o.get("text") {
                        Some(Value::String(s)) => out.push_str(s),
                        Some(other) if !other.is_null() => {
                            return Err(cx.wrong_type(
                                &format!("{path}[{i}].text"),
                                "a string",
                                other,
                            ))
                        }
                        _ => {
                            let kind = o.get("type").and_then(Value::as_str).unwrap_or("unknown");
                            cx.warnings.push(format!(
                                "{path}[{i}]: non-text content part ({kind}) left out"
                            ));
                        }
                    },
                    other => {
                        return Err(cx.wrong_type(
                            &format!("{path}[{i}]"),
                            "a content part object or a string",
                            other,
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(cx.wrong_type(path, "a string, null or a list of content parts", other)),
    }
}

/// The record's own id (`id`, then `trajectory_id`, then `instance_id`; a string or an integer),
/// else `{file name}:{line}` for a line of JSON Lines, else the file name without its
/// extensions (`django__django-11099` for `django__django-11099.traj`).
fn record_id(cx: &Cx, value: &Value) -> Result<String, RecordError> {
    if let Value::Object(obj) = value {
        for key in ["id", "trajectory_id", "instance_id"] {
            match obj.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(Value::String(s)) => return Ok(s.clone()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => return Ok(n.to_string()),
                Some(other) => {
                    return Err(cx.wrong_type(&format!("$.{key}"), "a string or an integer", other))
                }
            }
        }
    }
    Ok(fallback_id(cx.source, cx.line))
}

fn fallback_id(source: &str, line: u64) -> String {
    if source == STDIN {
        return if line > 0 {
            format!("{source}:{line}")
        } else {
            source.to_string()
        };
    }
    let name = Path::new(source)
        .file_name()
        .map_or_else(|| source.to_string(), |n| n.to_string_lossy().into_owned());
    if line > 0 {
        return format!("{name}:{line}");
    }
    let lower = name.to_ascii_lowercase();
    let mut len = name.len();
    for suffix in [".gz", ".zst", ".zstd"] {
        if lower[..len].ends_with(suffix) {
            len -= suffix.len();
            break;
        }
    }
    for suffix in [".traj.json", ".traj", ".jsonl", ".ndjson", ".json"] {
        if lower[..len].ends_with(suffix) && len > suffix.len() {
            len -= suffix.len();
            break;
        }
    }
    name[..len].to_string()
}

/// The record's `metadata` object with the well-known top-level labels added where it lacks
/// them; `None` when there is neither.
fn merged_metadata(cx: &Cx, obj: &Map<String, Value>) -> Result<Option<Value>, RecordError> {
    let given = non_null(obj, "metadata");
    let mut meta = match given {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(cx.wrong_type("$.metadata", "an object", other)),
    };
    for key in ["resolved", "instance_id", "model_name", "exit_status"] {
        if let Some(v) = non_null(obj, key) {
            meta.entry(key).or_insert_with(|| v.clone());
        }
    }
    // nebius/SWE-agent-trajectories: `target` is whether the patch resolved the issue.
    if let Some(Value::Bool(b)) = obj.get("target") {
        meta.entry("resolved").or_insert(Value::Bool(*b));
    }
    // mini-swe-agent: the run's outcome is under `info`.
    if let Some(Value::Object(info)) = obj.get("info") {
        for key in ["exit_status", "submission"] {
            if let Some(v) = non_null(info, key) {
                meta.entry(key).or_insert_with(|| v.clone());
            }
        }
    }
    Ok((given.is_some() || !meta.is_empty()).then_some(Value::Object(meta)))
}

// ---------------------------------------------------------------------------------------------
// Messages

fn chat_role(role: &str) -> Option<Role> {
    Some(match role.to_ascii_lowercase().as_str() {
        "system" | "developer" => Role::System,
        "user" | "human" => Role::User,
        "assistant" | "ai" | "model" | "gpt" => Role::Assistant,
        "tool" | "function" | "ipython" => Role::Tool,
        _ => return None,
    })
}

fn message_role(cx: &Cx, obj: &Map<String, Value>, path: &str) -> Result<Role, RecordError> {
    let role_path = format!("{path}.role");
    let role = opt_str(cx, obj, "role", path)?
        .ok_or_else(|| cx.err(RecordErrorKind::MissingField, &role_path, "missing"))?;
    chat_role(role).ok_or_else(|| {
        cx.err(
            RecordErrorKind::WrongType,
            &role_path,
            format!("expected system, user, assistant or tool, found {role:?}"),
        )
    })
}

fn has_action(m: &Message) -> bool {
    m.segments.iter().any(|s| s.kind == SegmentKind::Action)
}

fn single(kind: SegmentKind, text: String) -> Vec<Segment> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![Segment::plain(kind, text)]
    }
}

/// Appends `seg` after `segs`, with the `"\n"` separator described in the module docs.
fn push_joined(segs: &mut Vec<Segment>, seg: Segment) {
    if let Some(last) = segs.last_mut() {
        if !last.text.ends_with('\n') {
            let at = last.text.len();
            last.text.push('\n');
            if last.kind == SegmentKind::Action {
                last.markup.push(at..at + 1);
            }
        }
    }
    segs.push(seg);
}

/// The content of a system/user/tool message, by role and position.
fn context_segments(
    role: Role,
    after_action: bool,
    observation: bool,
    text: String,
) -> Vec<Segment> {
    let kind = match role {
        Role::Tool => SegmentKind::Observation,
        Role::User if after_action || observation => SegmentKind::Observation,
        _ => SegmentKind::Prompt,
    };
    single(kind, text)
}

fn chat_message(
    cx: &mut Cx,
    m: &Value,
    path: &str,
    current_file: &mut Option<String>,
    after_action: bool,
) -> Result<Message, RecordError> {
    let obj = m
        .as_object()
        .ok_or_else(|| cx.wrong_type(path, "a message object", m))?;
    let role = message_role(cx, obj, path)?;
    let key = if obj.contains_key("content") || !obj.contains_key("text") {
        "content"
    } else {
        "text"
    };
    let content = content_text(cx, obj.get(key), &format!("{path}.{key}"))?;
    let segments = match role {
        Role::Assistant => {
            let calls = tool_call_segments(cx, obj, path)?;
            if calls.is_empty() {
                split_actions(&content, current_file)
            } else {
                with_tool_calls(content, calls)
            }
        }
        _ => context_segments(role, after_action, false, content),
    };
    Ok(Message { role, segments })
}

/// Thought (if any) then the rendered calls, joined.
fn with_tool_calls(thought: String, calls: Vec<Segment>) -> Vec<Segment> {
    let mut segs = single(SegmentKind::Thought, thought);
    for c in calls {
        push_joined(&mut segs, c);
    }
    segs
}

/// The rendered `tool_calls` of an assistant message (and a legacy `function_call`).
fn tool_call_segments(
    cx: &mut Cx,
    obj: &Map<String, Value>,
    path: &str,
) -> Result<Vec<Segment>, RecordError> {
    let mut out = Vec::new();
    if let Some(calls) = non_null(obj, "tool_calls") {
        let calls_path = format!("{path}.tool_calls");
        let calls = calls
            .as_array()
            .ok_or_else(|| cx.wrong_type(&calls_path, "an array of tool calls", calls))?;
        for (i, call) in calls.iter().enumerate() {
            let call_path = format!("{calls_path}[{i}]");
            let call_obj = call
                .as_object()
                .ok_or_else(|| cx.wrong_type(&call_path, "a tool call object", call))?;
            // `{type, id, function: {name, arguments}}`; some datasets flatten the function.
            let (f, f_path) = match non_null(call_obj, "function") {
                Some(f) => (f, format!("{call_path}.function")),
                None => (call, call_path),
            };
            out.push(function_segment(cx, f, &f_path)?);
        }
    }
    if let Some(f) = non_null(obj, "function_call") {
        out.push(function_segment(cx, f, &format!("{path}.function_call"))?);
    }
    Ok(out)
}

/// A `{name, arguments}` object as an action: arguments a JSON string (empty means none) or an
/// object; a string that is not a JSON object is kept raw, with a warning.
fn function_segment(cx: &mut Cx, f: &Value, path: &str) -> Result<Segment, RecordError> {
    let obj = f
        .as_object()
        .ok_or_else(|| cx.wrong_type(path, "a function object with `name` and `arguments`", f))?;
    let name = opt_str(cx, obj, "name", path)?.ok_or_else(|| {
        cx.err(
            RecordErrorKind::MissingField,
            &format!("{path}.name"),
            "missing",
        )
    })?;
    let args_path = format!("{path}.arguments");
    Ok(match obj.get("arguments") {
        None | Some(Value::Null) => render_tool_call(name, &Map::new()),
        Some(Value::Object(m)) => render_tool_call(name, m),
        Some(Value::String(s)) if s.trim().is_empty() => render_tool_call(name, &Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => render_tool_call(name, &m),
            Ok(other) => {
                cx.warnings.push(format!(
                    "{args_path}: tool call arguments are JSON {} rather than an object; kept \
                     as raw text",
                    type_name(&other)
                ));
                render_raw_tool_call(name, s)
            }
            Err(e) => {
                cx.warnings.push(format!(
                    "{args_path}: tool call arguments are not valid JSON ({e}); kept as raw text"
                ));
                render_raw_tool_call(name, s)
            }
        },
        Some(other) => return Err(cx.wrong_type(&args_path, "a JSON string or an object", other)),
    })
}

// ---------------------------------------------------------------------------------------------
// SWE-agent

fn swe_history(cx: &mut Cx, history: &[Value]) -> Result<Vec<Message>, RecordError> {
    let mut current_file = None;
    let mut after_action = false;
    let mut messages = Vec::with_capacity(history.len());
    for (i, m) in history.iter().enumerate() {
        let path = format!("$.history[{i}]");
        let obj = m
            .as_object()
            .ok_or_else(|| cx.wrong_type(&path, "a message object", m))?;
        let role = message_role(cx, obj, &path)?;
        let content = content_text(cx, obj.get("content"), &format!("{path}.content"))?;
        let observation = opt_str(cx, obj, "message_type", &path)? == Some("observation");
        let segments = match role {
            Role::Assistant => {
                let calls = tool_call_segments(cx, obj, &path)?;
                let action = opt_str(cx, obj, "action", &path)?.filter(|a| !a.trim().is_empty());
                let thought = opt_str(cx, obj, "thought", &path)?;
                if !calls.is_empty() {
                    with_tool_calls(content, calls)
                } else if let Some(action) = action {
                    let segs = locate_action(&content, thought, action, current_file.as_deref());
                    track_current_file(action, &mut current_file);
                    segs
                } else {
                    split_actions(&content, &mut current_file)
                }
            }
            _ => context_segments(role, after_action, observation, content),
        };
        let msg = Message { role, segments };
        after_action = role == Role::Assistant && has_action(&msg);
        messages.push(msg);
    }
    Ok(messages)
}

/// Splits `content` around the action SWE-agent parsed out of it (see [`parse_swe_agent`]).
fn locate_action(
    content: &str,
    thought: Option<&str>,
    action: &str,
    current_file: Option<&str>,
) -> Vec<Segment> {
    let needle = action.trim();
    let Some(a) = content.rfind(needle) else {
        let mut segs = single(
            SegmentKind::Thought,
            thought.unwrap_or_default().to_string(),
        );
        push_joined(&mut segs, raw_command_action(action, current_file));
        return segs;
    };
    let b = a + needle.len();
    let (mut start, mut end, mut markup) = (a, b, Vec::new());
    if let Some((open, close)) = surrounding_fences(content, a, b) {
        start = open.start;
        end = close.end;
        markup = vec![open, close];
    }
    let mut seg = wrap(
        raw_command_action(&content[a..b], current_file),
        &content[start..a],
        &content[b..end],
    );
    seg.markup = markup
        .into_iter()
        .map(|r| r.start - start..r.end - start)
        .collect();
    let mut segs = single(SegmentKind::Thought, content[..start].to_string());
    segs.push(seg);
    segs.extend(single(SegmentKind::Thought, content[end..].to_string()));
    segs
}

/// The fence lines around `content[a..b]` (each without its newline), when the text just before
/// is an opening fence line and the text just after (past whitespace) a closing one.
fn surrounding_fences(
    content: &str,
    a: usize,
    b: usize,
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let before = content[..a].strip_suffix('\n')?;
    let before = before.strip_suffix('\r').unwrap_or(before);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..];
    let indent = line.len() - line.trim_start().len();
    let fence = line.trim();
    if !fence.starts_with("```") || fence[3..].contains('`') {
        return None;
    }
    let open = line_start + indent..line_start + indent + fence.len();
    let after = &content[b..];
    let rest = after.trim_start();
    let skipped = &after[..after.len() - rest.len()];
    if !skipped.contains('\n') {
        return None;
    }
    let line_end = rest.find('\n').unwrap_or(rest.len());
    let close_line = rest[..line_end].trim_end();
    if close_line.len() < 3 || !close_line.chars().all(|c| c == '`') {
        return None;
    }
    let close_start = b + skipped.len();
    Some((open, close_start..close_start + close_line.len()))
}

fn swe_steps(cx: &mut Cx, steps: &[Value]) -> Result<Vec<Message>, RecordError> {
    let mut current_file = None;
    let mut messages = Vec::with_capacity(2 * steps.len());
    for (i, step) in steps.iter().enumerate() {
        let path = format!("$.trajectory[{i}]");
        let obj = step
            .as_object()
            .ok_or_else(|| cx.wrong_type(&path, "a step object", step))?;
        let thought = opt_str(cx, obj, "thought", &path)?;
        let action = opt_str(cx, obj, "action", &path)?;
        let response = opt_str(cx, obj, "response", &path)?;
        let observation = opt_str(cx, obj, "observation", &path)?;
        let mut segs = Vec::new();
        if thought.is_none() && action.is_none() {
            if let Some(r) = response {
                segs = split_actions(r, &mut current_file);
            }
        } else {
            let thought = thought.unwrap_or_default().trim_end();
            if !thought.is_empty() {
                segs.push(Segment::plain(
                    SegmentKind::Thought,
                    format!("{thought}\n\n"),
                ));
            }
            let action = action.unwrap_or_default().trim_end_matches(['\n', '\r']);
            if !action.trim().is_empty() {
                let mut seg = wrap(
                    raw_command_action(action, current_file.as_deref()),
                    "```\n",
                    "\n```",
                );
                let n = seg.text.len();
                seg.markup = vec![0..3, n - 3..n];
                segs.push(seg);
                track_current_file(action, &mut current_file);
            }
        }
        if !segs.is_empty() {
            messages.push(Message {
                role: Role::Assistant,
                segments: segs,
            });
        }
        if let Some(o) = observation {
            messages.push(Message {
                role: Role::User,
                segments: single(SegmentKind::Observation, o.to_string()),
            });
        }
    }
    Ok(messages)
}

// ---------------------------------------------------------------------------------------------
// OpenHands

/// Events that are not part of what the model sees.
const OPENHANDS_BOOKKEEPING: &[&str] = &[
    "",
    "null",
    "agent_state_changed",
    "change_agent_state",
    "recall",
    "condensation",
    "condensation_request",
];

/// `args` keys that describe how an action ran, not what the model asked for.
const OPENHANDS_ARG_BOOKKEEPING: &[&str] = &[
    "thought",
    "blocking",
    "hidden",
    "confirmation_state",
    "security_risk",
    "is_confirmed",
    "impl_source",
    "keep_prompt",
    "wait_for_response",
];

fn openhands_event(
    cx: &mut Cx,
    ev: &Value,
    path: &str,
    messages: &mut Vec<Message>,
) -> Result<(), RecordError> {
    let obj = ev
        .as_object()
        .ok_or_else(|| cx.wrong_type(path, "an event object", ev))?;
    if let Some(action) = opt_str(cx, obj, "action", path)? {
        if OPENHANDS_BOOKKEEPING.contains(&action) {
            return Ok(());
        }
        let args_path = format!("{path}.args");
        let empty = Map::new();
        let args = match obj.get("args") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(other) => return Err(cx.wrong_type(&args_path, "an object", other)),
        };
        let from_user = matches!(
            opt_str(cx, obj, "source", path)?,
            Some("user" | "environment")
        );
        let text =
            |cx: &mut Cx, key: &str| content_text(cx, args.get(key), &format!("{args_path}.{key}"));
        let (role, segments) = match action {
            "system" => (
                Role::System,
                single(SegmentKind::Prompt, text(cx, "content")?),
            ),
            "message" if from_user => (
                Role::User,
                single(SegmentKind::Prompt, text(cx, "content")?),
            ),
            "message" => (
                Role::Assistant,
                single(SegmentKind::Thought, text(cx, "content")?),
            ),
            "think" => (
                Role::Assistant,
                single(SegmentKind::Thought, text(cx, "thought")?),
            ),
            _ => {
                let thought = match args.get("thought") {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                };
                let (default_name, mapped) = openhands_tool_args(action, args);
                let meta = obj.get("tool_call_metadata").and_then(Value::as_object);
                let name = meta
                    .and_then(|m| m.get("function_name"))
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(default_name);
                let call_args = meta.and_then(model_arguments).unwrap_or(mapped);
                let call = render_tool_call(name, &call_args);
                (Role::Assistant, with_tool_calls(thought, vec![call]))
            }
        };
        if !segments.is_empty() {
            messages.push(Message { role, segments });
        }
    } else if let Some(observation) = opt_str(cx, obj, "observation", path)? {
        if OPENHANDS_BOOKKEEPING.contains(&observation) {
            return Ok(());
        }
        let content = content_text(cx, obj.get("content"), &format!("{path}.content"))?;
        messages.push(Message {
            role: Role::Tool,
            segments: single(SegmentKind::Observation, content),
        });
    } else {
        cx.warnings.push(format!(
            "{path}: neither an action nor an observation; left out"
        ));
    }
    Ok(())
}

/// The arguments the model wrote for this call, from the response stored with the event.
fn model_arguments(meta: &Map<String, Value>) -> Option<Map<String, Value>> {
    let id = meta.get("tool_call_id")?.as_str()?;
    let choices = meta.get("model_response")?.get("choices")?.as_array()?;
    let call = choices
        .iter()
        .filter_map(|c| c.get("message")?.get("tool_calls")?.as_array())
        .flatten()
        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))?;
    match call.get("function")?.get("arguments")? {
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        Value::Object(m) => Some(m.clone()),
        _ => None,
    }
}

/// The default tool name and arguments of an OpenHands action (see [`parse_openhands`]).
fn openhands_tool_args<'a>(
    action: &'a str,
    args: &Map<String, Value>,
) -> (&'a str, Map<String, Value>) {
    let pick = |pairs: &[(&str, &str)]| -> Map<String, Value> {
        pairs
            .iter()
            .filter_map(|(dst, src)| non_null(args, src).map(|v| (dst.to_string(), v.clone())))
            .collect()
    };
    match action {
        "run" => ("execute_bash", pick(&[("command", "command")])),
        "run_ipython" => ("execute_ipython_cell", pick(&[("code", "code")])),
        "read" => {
            let mut m = Map::new();
            m.insert("command".into(), "view".into());
            m.extend(pick(&[("path", "path"), ("view_range", "view_range")]));
            ("str_replace_editor", m)
        }
        "edit" => {
            let has_command = args
                .get("command")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.is_empty());
            if has_command {
                (
                    "str_replace_editor",
                    pick(&[
                        ("command", "command"),
                        ("path", "path"),
                        ("file_text", "file_text"),
                        ("old_str", "old_str"),
                        ("new_str", "new_str"),
                        ("insert_line", "insert_line"),
                    ]),
                )
            } else {
                (
                    "edit_file",
                    pick(&[
                        ("path", "path"),
                        ("content", "content"),
                        ("start", "start"),
                        ("end", "end"),
                    ]),
                )
            }
        }
        "finish" => {
            let message = ["final_thought", "message"]
                .iter()
                .filter_map(|k| args.get(*k))
                .find(|v| v.as_str().is_some_and(|s| !s.is_empty()));
            let mut m = Map::new();
            if let Some(msg) = message {
                m.insert("message".into(), msg.clone());
            }
            m.extend(pick(&[("task_completed", "task_completed")]));
            ("finish", m)
        }
        "browse" => ("web_read", pick(&[("url", "url")])),
        "browse_interactive" => ("browser", pick(&[("code", "browser_actions")])),
        other => (
            other,
            args.iter()
                .filter(|(k, v)| !v.is_null() && !OPENHANDS_ARG_BOOKKEEPING.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Format detection

/// Which format a value's shape says it is, if it says.
fn sniff(value: &Value) -> Option<TrajectoryFormat> {
    fn first_obj(v: Option<&Value>) -> Option<Option<&Map<String, Value>>> {
        // Some(None): an empty array; Some(Some(o)): its first element is an object.
        let a = v?.as_array()?;
        match a.first() {
            None => Some(None),
            Some(Value::Object(o)) => Some(Some(o)),
            Some(_) => None,
        }
    }
    fn is_event(o: &Map<String, Value>) -> bool {
        !o.contains_key("role")
            && ["action", "observation"]
                .iter()
                .any(|k| o.get(*k).is_some_and(Value::is_string))
            && ["args", "extras", "source", "cause", "tool_call_metadata"]
                .iter()
                .any(|k| o.contains_key(*k))
    }
    match value {
        Value::Array(_) => match first_obj(Some(value))? {
            None => Some(TrajectoryFormat::OpenHands),
            Some(o) => is_event(o).then_some(TrajectoryFormat::OpenHands),
        },
        Value::Object(o) => {
            if o.get("messages").is_some_and(Value::is_array) {
                return Some(TrajectoryFormat::Chat);
            }
            for key in ["history", "events"] {
                if let Some(Some(first)) = first_obj(o.get(key)) {
                    if is_event(first) {
                        return Some(TrajectoryFormat::OpenHands);
                    }
                }
            }
            if let Some(Some(first)) = first_obj(o.get("history")) {
                if first.contains_key("role") {
                    return Some(TrajectoryFormat::SweAgent);
                }
            }
            match first_obj(o.get("trajectory")) {
                Some(Some(first)) => {
                    if ["thought", "action", "response", "observation"]
                        .iter()
                        .any(|k| first.contains_key(*k))
                    {
                        return Some(TrajectoryFormat::SweAgent);
                    }
                    if first.contains_key("role") {
                        return Some(TrajectoryFormat::Chat);
                    }
                }
                // An SWE-agent run with no steps at all.
                Some(None) if first_obj(o.get("history")).is_some_and(|f| f.is_none()) => {
                    return Some(TrajectoryFormat::SweAgent)
                }
                _ => {}
            }
            None
        }
        _ => None,
    }
}

/// The error for a value of no known shape: where it stops matching, and what was expected.
fn unknown_shape(value: &Value, source: &str, line: u64) -> RecordError {
    const EXPECTED: &str = "an object with `messages` (chat), an object with `history` or \
        `trajectory` of SWE-agent steps, or an array of OpenHands events (or an object with \
        `history` or `events` of them)";
    let describe = |v: &Value| match v {
        Value::Object(o) if o.is_empty() => "an empty object".to_string(),
        Value::Object(o) => {
            let keys: Vec<&str> = o.keys().map(String::as_str).take(8).collect();
            let more = if o.len() > 8 { ", ..." } else { "" };
            format!("an object with keys {}{more}", keys.join(", "))
        }
        other => type_name(other).to_string(),
    };
    let (path, found) = match value {
        Value::Array(a) => ("$[0]".to_string(), describe(&a[0])),
        Value::Object(o) => {
            let list = ["history", "events", "trajectory"]
                .iter()
                .find_map(|k| match o.get(*k) {
                    Some(Value::Array(a)) if !a.is_empty() => Some((k, &a[0])),
                    _ => None,
                });
            match list {
                Some((k, first)) => (format!("$.{k}[0]"), describe(first)),
                None => ("$".to_string(), describe(value)),
            }
        }
        other => ("$".to_string(), type_name(other).to_string()),
    };
    RecordError {
        source: source.to_string(),
        line,
        field: Some(path),
        kind: RecordErrorKind::WrongType,
        message: format!("unknown trajectory shape: expected {EXPECTED}; found {found}"),
    }
}

fn parse_value(
    value: &Value,
    source: &str,
    line: u64,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
) -> Result<Trajectory, RecordError> {
    let format = match format {
        TrajectoryFormat::Auto => match sniff(value).or(fallback) {
            Some(f) => f,
            None => return Err(unknown_shape(value, source, line)),
        },
        f => f,
    };
    match format {
        TrajectoryFormat::Chat | TrajectoryFormat::Auto => parse_chat(value, source, line),
        TrajectoryFormat::SweAgent => parse_swe_agent(value, source, line),
        TrajectoryFormat::OpenHands => parse_openhands(value, source, line),
    }
}

// ---------------------------------------------------------------------------------------------
// Files

fn file_error(source: &str, kind: RecordErrorKind, message: String) -> RecordError {
    RecordError {
        source: source.to_string(),
        line: 0,
        field: None,
        kind,
        message,
    }
}

/// serde_json's message without its position, with the column (the line is the record's).
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(m) if e.line() > 0 => format!("{m} at column {}", e.column()),
        _ => full,
    }
}

fn parse_line(
    bytes: &[u8],
    source: &str,
    line: u64,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
) -> Result<Trajectory, RecordError> {
    let err = |kind, message| RecordError {
        source: source.to_string(),
        line,
        field: None,
        kind,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        err(
            RecordErrorKind::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        err(
            RecordErrorKind::InvalidJson,
            format!("invalid JSON: {}", json_message(&e)),
        )
    })?;
    parse_value(&value, source, line, format, fallback)
}

/// A whole file as one JSON value (or, when it turns out to be JSON Lines, one per line).
fn read_whole(
    mut reader: Box<dyn BufRead + Send>,
    source: &str,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
) -> Vec<Result<Trajectory, RecordError>> {
    let mut bytes = Vec::new();
    if let Err(e) = reader.read_to_end(&mut bytes) {
        return vec![Err(file_error(
            source,
            RecordErrorKind::Io,
            format!("read failed (corrupt or truncated compressed stream?): {e}"),
        ))];
    }
    let bytes = bytes.strip_prefix(BOM).unwrap_or(&bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return vec![Err(file_error(
                source,
                RecordErrorKind::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            ))]
        }
    };
    if text.trim().is_empty() {
        return vec![Err(file_error(
            source,
            RecordErrorKind::EmptyText,
            "empty file".into(),
        ))];
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => vec![parse_value(&v, source, 0, format, fallback)],
        Err(e) if e.line() > 1 && e.to_string().starts_with("trailing characters") => {
            // JSON Lines under a `.json` name.
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| {
                    parse_line(
                        l.as_bytes(),
                        source,
                        i as u64 + 1,
                        format,
                        fallback.or(Some(TrajectoryFormat::Chat)),
                    )
                })
                .collect()
        }
        Err(e) => vec![Err(RecordError {
            source: source.to_string(),
            line: e.line() as u64,
            field: None,
            kind: RecordErrorKind::InvalidJson,
            message: format!("invalid JSON: {}", json_message(&e)),
        })],
    }
}

/// Opens a file (or stdin), decompressing gzip or zstd as its first bytes say.
fn open(path: Option<&Path>) -> io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = match path {
        None => Box::new(io::stdin()),
        Some(p) => Box::new(File::open(p)?),
    };
    let mut buffered = BufReader::with_capacity(BUF_SIZE, raw);
    let head = buffered.fill_buf()?;
    Ok(if head.starts_with(GZIP_MAGIC) {
        Box::new(BufReader::with_capacity(
            BUF_SIZE,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else if head.starts_with(ZSTD_MAGIC) {
        Box::new(BufReader::with_capacity(
            BUF_SIZE,
            zstd::stream::read::Decoder::with_buffer(buffered)?,
        ))
    } else {
        Box::new(buffered)
    })
}

/// How to read `path`, or `None` for a file in a directory that is not a trajectory file.
fn classify(
    path: PathBuf,
    format: TrajectoryFormat,
    explicit: bool,
    regular: bool,
) -> Option<Input> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let stem = [".gz", ".zst", ".zstd"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(&name);
    let (lines, fallback) = if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
        (true, Some(TrajectoryFormat::Chat))
    } else if stem.ends_with(".json") {
        (false, None)
    } else if stem.ends_with(".traj") {
        (false, Some(TrajectoryFormat::SweAgent))
    } else if !explicit {
        tracing::debug!("skipping non-trajectory file {}", path.display());
        return None;
    } else if !regular {
        // A pipe (`<(zcat runs.jsonl.gz)`): its name says nothing; read it like stdin.
        (true, Some(TrajectoryFormat::Chat))
    } else {
        (false, None)
    };
    Some(Input {
        path: Some(path),
        lines,
        format,
        fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::trajectory::{CodeRegion, Lang};
    use serde_json::json;
    use std::io::Write;

    use SegmentKind::{Action, Observation, Prompt, Thought};

    /// (role, [(kind, text)]) per message.
    fn shape(t: &Trajectory) -> Vec<(Role, Vec<(SegmentKind, &str)>)> {
        t.messages
            .iter()
            .map(|m| {
                (
                    m.role,
                    m.segments
                        .iter()
                        .map(|s| (s.kind, s.text.as_str()))
                        .collect(),
                )
            })
            .collect()
    }

    fn marked(s: &Segment) -> Vec<&str> {
        s.markup.iter().map(|r| &s.text[r.clone()]).collect()
    }

    fn regions(s: &Segment) -> Vec<(&str, Lang)> {
        s.code
            .iter()
            .map(|c| (&s.text[c.range.clone()], c.lang))
            .collect()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn read(paths: &[PathBuf]) -> Vec<Result<Trajectory, RecordError>> {
        read_trajectories(paths, TrajectoryFormat::Auto)
            .unwrap()
            .collect()
    }

    #[test]
    fn chat_segments_tool_calls_and_metadata() {
        let v = json!({
            "instance_id": "astropy-1",
            "resolved": true,
            "metadata": {"model": "m", "resolved": false},
            "messages": [
                {"role": "developer", "content": "You are an agent."},
                {"role": "user", "content": [{"type": "text", "text": "Fix "}, {"type": "text", "text": "it."}]},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "execute_bash", "arguments": "{\"command\": \"ls\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "str_replace_editor",
                        "arguments": {"command": "create", "path": "a.py", "file_text": "x = 1\n"}}}
                ]},
                {"role": "function", "content": "a.py"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"function": {"name": "finish", "arguments": ""}}
                ]},
                {"role": "assistant", "content": "Done."}
            ]
        });
        let t = parse_chat(&v, "runs/x.jsonl", 7).unwrap();
        assert_eq!(t.id, "astropy-1");
        assert_eq!((t.source.as_str(), t.line), ("runs/x.jsonl", 7));
        let call1 = "<function=execute_bash>\n<parameter=command>ls</parameter>\n</function>\n";
        let call2 = "<function=str_replace_editor>\n<parameter=command>create</parameter>\n\
            <parameter=path>a.py</parameter>\n<parameter=file_text>\nx = 1\n</parameter>\n</function>";
        assert_eq!(
            shape(&t),
            vec![
                (Role::System, vec![(Prompt, "You are an agent.")]),
                (Role::User, vec![(Prompt, "Fix it.")]),
                (
                    Role::Assistant,
                    vec![
                        (Thought, "Let me look.\n"),
                        (Action, call1),
                        (Action, call2)
                    ]
                ),
                (Role::Tool, vec![(Observation, "a.py")]),
                (
                    Role::Assistant,
                    vec![(Action, "<function=finish>\n</function>")]
                ),
                (Role::Assistant, vec![(Thought, "Done.")]),
            ]
        );
        let a1 = &t.messages[2].segments[1];
        // The joining newline is markup written by the renderer.
        assert_eq!(
            marked(a1),
            vec![
                "<function=execute_bash>",
                "<parameter=command>",
                "</parameter>",
                "</function>",
                "\n"
            ]
        );
        assert_eq!(regions(a1), vec![("ls", Lang::Bash)]);
        assert_eq!(
            regions(&t.messages[2].segments[2]),
            vec![("x = 1\n", Lang::Python)]
        );
        // The record's metadata wins over top-level labels; missing ones are added.
        assert_eq!(
            t.metadata,
            Some(json!({"model": "m", "resolved": false, "instance_id": "astropy-1"}))
        );
        assert_eq!(t.action_count(), 3);
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn multi_line_python_new_str_ranges() {
        let v = json!({"messages": [{"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "str_replace_editor", "arguments":
                "{\"command\": \"str_replace\", \"path\": \"/r/m.py\", \"old_str\": \"a\", \"new_str\": \"# c\\nb = 2\"}"}}
        ]}]});
        let t = parse_chat(&v, "f.jsonl", 1).unwrap();
        let s = &t.messages[0].segments[0];
        assert_eq!(
            s.text,
            "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n\
             <parameter=path>/r/m.py</parameter>\n<parameter=old_str>a</parameter>\n\
             <parameter=new_str>\n# c\nb = 2\n</parameter>\n</function>"
        );
        assert_eq!(
            s.markup,
            vec![
                0..29,
                30..49,
                60..72,
                73..89,
                96..108,
                109..128,
                129..141,
                142..161,
                172..184,
                185..196
            ]
        );
        assert_eq!(
            s.code,
            vec![
                CodeRegion {
                    range: 128..129,
                    lang: Lang::Python
                },
                CodeRegion {
                    range: 162..171,
                    lang: Lang::Python
                },
            ]
        );
        assert_eq!(&s.text[162..171], "# c\nb = 2");
        assert_eq!(t.id, "f.jsonl:1");
        assert_eq!(t.metadata, None);
    }

    #[test]
    fn invalid_arguments_are_kept_raw_with_a_warning() {
        let v = json!({"id": 5, "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "ok", "tool_calls": [
                {"function": {"name": "execute_bash", "arguments": "{\"command\": \"ls"}}
            ]}
        ]});
        let t = parse_chat(&v, "f.jsonl", 1).unwrap();
        assert_eq!(t.id, "5");
        let segs = &t.messages[1].segments;
        assert_eq!(segs[0].text, "ok\n");
        assert_eq!(
            segs[1].text,
            "<function=execute_bash>\n{\"command\": \"ls\n</function>"
        );
        assert_eq!(
            marked(&segs[1]),
            vec!["<function=execute_bash>", "</function>"]
        );
        assert!(segs[1].code.is_empty());
        assert_eq!(t.warnings.len(), 1);
        assert!(
            t.warnings[0].starts_with("$.messages[1].tool_calls[0].function.arguments: "),
            "{}",
            t.warnings[0]
        );
        assert!(t.warnings[0].contains("not valid JSON"));
    }

    #[test]
    fn chat_json_path_errors() {
        let v = json!({"messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": 3}
        ]});
        let e = parse_chat(&v, "f.jsonl", 4).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::WrongType);
        assert_eq!(e.field.as_deref(), Some("$.messages[2].content"));
        assert_eq!(e.line, 4);
        assert_eq!(
            e.to_string(),
            "f.jsonl:4: field '$.messages[2].content': expected a string, null or a list of \
             content parts, found number"
        );
        let e = parse_chat(&json!({"text": "x"}), "f.jsonl", 1).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::MissingField);
        assert_eq!(e.field.as_deref(), Some("$.messages"));
        assert!(e.message.contains("the record has: text"));
        let e = parse_chat(&json!({"messages": [{"role": "robot"}]}), "f", 1).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("$.messages[0].role"));
        let v = json!({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": 1}}]}]});
        let e = parse_chat(&v, "f", 1).unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("$.messages[0].tool_calls[0].function.arguments")
        );
        let e = parse_chat(&json!([1]), "f", 1).unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (RecordErrorKind::WrongType, Some("$"))
        );
    }

    #[test]
    fn mini_swe_agent_fenced_actions() {
        let v = json!({
            "trajectory_format": "mini-swe-agent-1",
            "info": {"exit_status": "Submitted", "submission": "diff"},
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "task"},
                {"role": "assistant", "content": "THOUGHT: list.\n\n```bash\nls -la\n```"},
                {"role": "user", "content": "<returncode>0</returncode>"},
                {"role": "assistant", "content": "THOUGHT: write.\n\n```bash\ncat <<'EOF' > t.py\nx = 1\nEOF\n```\n"},
            ]
        });
        let t = parse_chat(&v, "out/django__django-1.traj.json", 0).unwrap();
        assert_eq!(t.id, "django__django-1");
        assert_eq!(
            shape(&t),
            vec![
                (Role::System, vec![(Prompt, "sys")]),
                (Role::User, vec![(Prompt, "task")]),
                (
                    Role::Assistant,
                    vec![
                        (Thought, "THOUGHT: list.\n\n"),
                        (Action, "```bash\nls -la\n```")
                    ]
                ),
                (
                    Role::User,
                    vec![(Observation, "<returncode>0</returncode>")]
                ),
                (
                    Role::Assistant,
                    vec![
                        (Thought, "THOUGHT: write.\n\n"),
                        (Action, "```bash\ncat <<'EOF' > t.py\nx = 1\nEOF\n```"),
                        (Thought, "\n")
                    ]
                ),
            ]
        );
        let a = &t.messages[2].segments[1];
        assert_eq!(marked(a), vec!["```bash", "```"]);
        assert_eq!(
            a.code,
            vec![CodeRegion {
                range: 8..15,
                lang: Lang::Bash
            }]
        );
        let a = &t.messages[4].segments[1];
        assert_eq!(
            regions(a),
            vec![
                ("cat <<'EOF' > t.py\n", Lang::Bash),
                ("x = 1\n", Lang::Python),
                ("EOF\n", Lang::Bash)
            ]
        );
        assert_eq!(
            t.metadata,
            Some(json!({"exit_status": "Submitted", "submission": "diff"}))
        );
        assert_eq!(sniff(&v), Some(TrajectoryFormat::Chat));
    }

    #[test]
    fn nebius_rows_use_trajectory_and_text() {
        let v = json!({
            "instance_id": "i-1", "model_name": "m", "target": true, "exit_status": "submitted",
            "trajectory": [
                {"role": "system", "text": "sys", "mask": false},
                {"role": "user", "text": "issue"},
                {"role": "ai", "text": "DISCUSSION\nopen it\n\n```\nopen src/a.py\n```\n"},
                {"role": "user", "text": "[File: src/a.py]"},
                {"role": "ai", "text": "fix\n```\nedit 1:1\ny = 2  # two\nend_of_edit\n```"}
            ]
        });
        assert_eq!(sniff(&v), Some(TrajectoryFormat::Chat));
        let t = parse_chat(&v, "n.jsonl", 3).unwrap();
        assert_eq!(t.id, "i-1");
        assert_eq!(t.action_count(), 2);
        assert_eq!(t.messages[3].segments[0].kind, Observation);
        let edit = &t.messages[4].segments[1];
        assert_eq!(edit.text, "```\nedit 1:1\ny = 2  # two\nend_of_edit\n```");
        assert_eq!(
            regions(edit),
            vec![
                ("edit 1:1\n", Lang::Bash),
                ("y = 2  # two\n", Lang::Python),
                ("end_of_edit\n", Lang::Bash)
            ]
        );
        assert_eq!(
            t.metadata,
            Some(
                json!({"instance_id": "i-1", "model_name": "m", "exit_status": "submitted", "resolved": true})
            )
        );
    }

    fn swe_traj() -> Value {
        json!({
            "environment": "swe_main",
            "trajectory": [{"action": "ignored", "observation": "", "thought": "", "response": ""}],
            "history": [
                {"role": "system", "content": "SETTING", "agent": "primary"},
                {"role": "user", "content": "ISSUE", "agent": "primary"},
                {"role": "assistant", "agent": "primary",
                 "content": "DISCUSSION\nOpen it.\n\n```\nopen src/m.py\n```\n",
                 "thought": "DISCUSSION\nOpen it.\n\n", "action": "open src/m.py\n"},
                {"role": "user", "content": "[File: src/m.py]\n(Open file: src/m.py)\nbash-$", "agent": "primary"},
                {"role": "assistant", "agent": "primary",
                 "content": "Fix it.\n```\nedit 2:2\n    return 1  # one\nend_of_edit\n```",
                 "thought": "Fix it.\n", "action": "edit 2:2\n    return 1  # one\nend_of_edit\n"},
                {"role": "user", "content": "File updated.", "agent": "primary", "message_type": "observation"},
                {"role": "assistant", "agent": "primary", "content": "paraphrased",
                 "thought": "Submit.", "action": "submit\n"}
            ],
            "info": {"exit_status": "submitted", "submission": "diff --git a b\n", "model_stats": {}}
        })
    }

    #[test]
    fn swe_agent_history_with_edit_language_from_open_file() {
        let v = swe_traj();
        assert_eq!(sniff(&v), Some(TrajectoryFormat::SweAgent));
        let t = parse_swe_agent(&v, "trajs/django__django-11099.traj", 0).unwrap();
        assert_eq!(t.id, "django__django-11099");
        assert_eq!(
            shape(&t),
            vec![
                (Role::System, vec![(Prompt, "SETTING")]),
                (Role::User, vec![(Prompt, "ISSUE")]),
                (
                    Role::Assistant,
                    vec![
                        (Thought, "DISCUSSION\nOpen it.\n\n"),
                        (Action, "```\nopen src/m.py\n```"),
                        (Thought, "\n")
                    ]
                ),
                (
                    Role::User,
                    vec![(
                        Observation,
                        "[File: src/m.py]\n(Open file: src/m.py)\nbash-$"
                    )]
                ),
                (
                    Role::Assistant,
                    vec![
                        (Thought, "Fix it.\n"),
                        (
                            Action,
                            "```\nedit 2:2\n    return 1  # one\nend_of_edit\n```"
                        )
                    ]
                ),
                (Role::User, vec![(Observation, "File updated.")]),
                // Not found in the content: thought and action as recorded.
                (
                    Role::Assistant,
                    vec![(Thought, "Submit.\n"), (Action, "submit\n")]
                ),
            ]
        );
        let edit = &t.messages[4].segments[1];
        assert_eq!(marked(edit), vec!["```", "```"]);
        assert_eq!(
            regions(edit),
            vec![
                ("edit 2:2\n", Lang::Bash),
                ("    return 1  # one\n", Lang::Python),
                ("end_of_edit", Lang::Bash)
            ]
        );
        assert_eq!(
            t.metadata,
            Some(
                json!({"exit_status": "submitted", "submission": "diff --git a b\n", "format": "swe-agent"})
            )
        );
    }

    #[test]
    fn swe_agent_steps_without_history() {
        let v = json!({"trajectory": [
            {"response": "r", "thought": "Look first.\n", "action": "ls\n", "observation": "a.py\n"},
            {"thought": "", "action": "submit", "observation": null}
        ], "info": {}});
        let t = parse_swe_agent(&v, "x.traj", 0).unwrap();
        assert_eq!(
            shape(&t),
            vec![
                (
                    Role::Assistant,
                    vec![(Thought, "Look first.\n\n"), (Action, "```\nls\n```")]
                ),
                (Role::User, vec![(Observation, "a.py\n")]),
                (Role::Assistant, vec![(Action, "```\nsubmit\n```")]),
            ]
        );
        let a = &t.messages[0].segments[1];
        assert_eq!(a.markup, vec![0..3, 7..10]);
        assert_eq!(regions(a), vec![("ls", Lang::Bash)]);
        assert_eq!(t.metadata, Some(json!({"format": "swe-agent"})));
    }

    #[test]
    fn swe_agent_function_calling_history() {
        let v = json!({"history": [
            {"role": "system", "content": [{"type": "text", "text": "sys"}]},
            {"role": "assistant", "content": "Viewing.", "thought": "Viewing.", "action": "str_replace_editor view /r",
             "tool_calls": [{"id": "t", "type": "function", "function": {"name": "str_replace_editor",
                "arguments": "{\"command\":\"view\",\"path\":\"/r\"}"}}], "message_type": "action"},
            {"role": "tool", "content": [{"type": "text", "text": "OBSERVATION:\nfiles"}], "tool_call_ids": ["t"], "message_type": "observation"}
        ]});
        let t = parse_swe_agent(&v, "a/b.traj", 0).unwrap();
        assert_eq!(
            shape(&t),
            vec![
                (Role::System, vec![(Prompt, "sys")]),
                (
                    Role::Assistant,
                    vec![
                        (Thought, "Viewing.\n"),
                        (
                            Action,
                            "<function=str_replace_editor>\n<parameter=command>view</parameter>\n\
                             <parameter=path>/r</parameter>\n</function>"
                        )
                    ]
                ),
                (Role::Tool, vec![(Observation, "OBSERVATION:\nfiles")]),
            ]
        );
        let e = parse_swe_agent(
            &json!({"history": [{"role": "user", "content": 1}]}),
            "a.traj",
            0,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("$.history[0].content"));
        let e = parse_swe_agent(&json!({"info": {}}), "a.traj", 0).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::MissingField);
    }

    fn openhands_events() -> Value {
        json!([
            {"id": 0, "source": "agent", "action": "system", "args": {"content": "You are OpenHands.", "tools": []}},
            {"id": 1, "source": "user", "action": "message", "args": {"content": "Fix the bug.", "image_urls": null}},
            {"id": 2, "source": "environment", "observation": "agent_state_changed", "content": "", "extras": {"agent_state": "running"}},
            {"id": 3, "source": "user", "action": "recall", "args": {"query": "Fix"}},
            {"id": 4, "source": "environment", "observation": "recall", "content": "", "extras": {}},
            {"id": 5, "source": "agent", "action": "run",
             "args": {"command": "ls", "is_input": false, "thought": "Let me look.", "blocking": false},
             "tool_call_metadata": {"function_name": "execute_bash", "tool_call_id": "tc1",
                "model_response": {"choices": [{"message": {"content": "Let me look.", "tool_calls": [
                    {"id": "tc1", "type": "function", "function": {"name": "execute_bash", "arguments": "{\"command\": \"ls\", \"is_input\": \"false\"}"}}]}}]}}},
            {"id": 6, "source": "agent", "cause": 5, "observation": "run", "content": "a.py", "extras": {"command": "ls"}},
            {"id": 7, "source": "agent", "action": "edit",
             "args": {"path": "/w/a.py", "command": "str_replace", "file_text": null, "old_str": "x", "new_str": "y\nz", "insert_line": null, "thought": ""},
             "tool_call_metadata": {"function_name": "str_replace_editor", "tool_call_id": "tc2"}},
            {"id": 8, "source": "agent", "cause": 7, "observation": "edit", "content": "edited", "extras": {}},
            {"id": 9, "source": "agent", "action": "think", "args": {"thought": "Hmm."}},
            {"id": 10, "source": "agent", "action": "message", "args": {"content": "Done?", "wait_for_response": false}},
            {"id": 11, "source": "agent", "action": "change_agent_state", "args": {"agent_state": "finished"}},
        ])
    }

    #[test]
    fn openhands_with_tool_call_metadata() {
        let v = openhands_events();
        assert_eq!(sniff(&v), Some(TrajectoryFormat::OpenHands));
        let t = parse_openhands(&v, "oh/sympy__sympy-1.json", 0).unwrap();
        assert_eq!(t.id, "sympy__sympy-1");
        assert_eq!(
            shape(&t),
            vec![
                (Role::System, vec![(Prompt, "You are OpenHands.")]),
                (Role::User, vec![(Prompt, "Fix the bug.")]),
                (
                    Role::Assistant,
                    vec![
                        (Thought, "Let me look.\n"),
                        // The arguments as the model wrote them.
                        (
                            Action,
                            "<function=execute_bash>\n<parameter=command>ls</parameter>\n\
                             <parameter=is_input>false</parameter>\n</function>"
                        )
                    ]
                ),
                (Role::Tool, vec![(Observation, "a.py")]),
                (
                    Role::Assistant,
                    vec![(
                        Action,
                        "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n\
                         <parameter=path>/w/a.py</parameter>\n<parameter=old_str>x</parameter>\n\
                         <parameter=new_str>\ny\nz\n</parameter>\n</function>"
                    )]
                ),
                (Role::Tool, vec![(Observation, "edited")]),
                (Role::Assistant, vec![(Thought, "Hmm.")]),
                (Role::Assistant, vec![(Thought, "Done?")]),
            ]
        );
        assert_eq!(
            regions(&t.messages[4].segments[0]),
            vec![("x", Lang::Python), ("y\nz", Lang::Python)]
        );
        assert_eq!(t.metadata, Some(json!({"format": "openhands"})));
    }

    #[test]
    fn openhands_without_tool_call_metadata() {
        let v = json!({"instance_id": "x-1", "resolved": false, "history": [
            {"id": 1, "source": "agent", "action": "run_ipython", "args": {"code": "print(1)", "thought": "py"}},
            {"id": 2, "source": "agent", "action": "read", "args": {"path": "/w/a.rs", "start": 0, "end": -1, "thought": "", "view_range": [1, 5]}},
            {"id": 3, "source": "agent", "action": "edit", "args": {"path": "/w/b.go", "content": "package b", "start": 1, "end": -1, "command": "", "thought": ""}},
            {"id": 4, "source": "agent", "action": "finish", "args": {"outputs": {}, "thought": "", "final_thought": "All done."}},
            {"id": 5, "source": "agent", "action": "run", "args": {"command": "pwd"}},
            {"id": 6, "source": "agent", "action": "delegate", "args": {"agent": "Browsing", "inputs": {"task": "t"}, "thought": "", "x": null}},
            {"id": 7, "source": "agent", "observation": "error", "content": "boom", "extras": {}},
            {"id": 8}
        ]});
        assert_eq!(sniff(&v), Some(TrajectoryFormat::OpenHands));
        let t = parse_openhands(&v, "output.jsonl", 2).unwrap();
        assert_eq!(t.id, "x-1");
        let texts: Vec<Vec<(SegmentKind, &str)>> = shape(&t).into_iter().map(|(_, s)| s).collect();
        assert_eq!(
            texts,
            vec![
                vec![
                    (Thought, "py\n"),
                    (Action, "<function=execute_ipython_cell>\n<parameter=code>print(1)</parameter>\n</function>")
                ],
                vec![(
                    Action,
                    "<function=str_replace_editor>\n<parameter=command>view</parameter>\n\
                     <parameter=path>/w/a.rs</parameter>\n<parameter=view_range>[1,5]</parameter>\n</function>"
                )],
                vec![(
                    Action,
                    "<function=edit_file>\n<parameter=path>/w/b.go</parameter>\n\
                     <parameter=content>package b</parameter>\n<parameter=start>1</parameter>\n\
                     <parameter=end>-1</parameter>\n</function>"
                )],
                vec![(
                    Action,
                    "<function=finish>\n<parameter=message>All done.</parameter>\n</function>"
                )],
                vec![(
                    Action,
                    "<function=execute_bash>\n<parameter=command>pwd</parameter>\n</function>"
                )],
                vec![(
                    Action,
                    "<function=delegate>\n<parameter=agent>Browsing</parameter>\n\
                     <parameter=inputs>{\"task\":\"t\"}</parameter>\n</function>"
                )],
                vec![(Observation, "boom")],
            ]
        );
        assert_eq!(
            regions(&t.messages[0].segments[1]),
            vec![("print(1)", Lang::Python)]
        );
        assert_eq!(
            regions(&t.messages[2].segments[0]),
            vec![("package b", Lang::Go)]
        );
        assert_eq!(
            t.warnings,
            vec!["$.history[7]: neither an action nor an observation; left out"]
        );
        assert_eq!(
            t.metadata,
            Some(json!({"resolved": false, "instance_id": "x-1", "format": "openhands"}))
        );
        let e =
            parse_openhands(&json!([{"action": "run", "args": "ls"}]), "a.json", 0).unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (RecordErrorKind::WrongType, Some("$[0].args"))
        );
    }

    #[test]
    fn jsonl_bad_line_between_good_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = |id: &str| {
            json!({"id": id, "messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "```bash\nls\n```"}]})
            .to_string()
        };
        let body = format!(
            "{}\n\n{}\n{{\"messages\": [{{\"role\": \"user\"\n{}\n",
            good("a"),
            json!({"messages": [{"role": "user", "content": 1}]}),
            good("b")
        );
        let p = write(dir.path(), "runs.jsonl", body.as_bytes());
        let items = read(std::slice::from_ref(&p));
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].as_ref().unwrap().id, "a");
        assert_eq!(items[0].as_ref().unwrap().line, 1);
        let e = items[1].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (3, RecordErrorKind::WrongType));
        assert_eq!(e.field.as_deref(), Some("$.messages[0].content"));
        let e = items[2].as_ref().unwrap_err();
        assert_eq!(
            (e.line, e.kind, e.field.clone()),
            (4, RecordErrorKind::InvalidJson, None)
        );
        assert!(e.message.contains("EOF while parsing"), "{}", e.message);
        assert!(e.message.contains("at column"), "{}", e.message);
        assert_eq!(items[3].as_ref().unwrap().id, "b");
        assert_eq!(items[3].as_ref().unwrap().line, 5);
        assert_eq!(items[3].as_ref().unwrap().source, p.display().to_string());
    }

    #[test]
    fn empty_files_and_unknown_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let empty_jsonl = write(dir.path(), "e.jsonl", b"\n\n");
        assert!(read(&[empty_jsonl]).is_empty());
        let empty_json = write(dir.path(), "e.json", b"  \n");
        let items = read(std::slice::from_ref(&empty_json));
        let e = items[0].as_ref().unwrap_err();
        assert_eq!((e.kind, e.line), (RecordErrorKind::EmptyText, 0));
        assert_eq!(e.source, empty_json.display().to_string());
        let odd = write(
            dir.path(),
            "preds.json",
            br#"{"django-1": {"model_patch": ""}}"#,
        );
        let items = read(std::slice::from_ref(&odd));
        let e = items[0].as_ref().unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::WrongType);
        assert_eq!(e.field.as_deref(), Some("$"));
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!(
                "{}: field '$': unknown trajectory shape",
                odd.display()
            )),
            "{shown}"
        );
        assert!(
            shown.contains("found an object with keys django-1"),
            "{shown}"
        );
        let odd = write(dir.path(), "h.json", br#"{"history": [{"foo": 1}]}"#);
        let e = read(&[odd]).remove(0).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("$.history[0]"));
        let truncated = write(
            dir.path(),
            "t.json",
            b"[\n {\"action\": \"run\",\n  \"args\": {",
        );
        let e = read(&[truncated]).remove(0).unwrap_err();
        assert_eq!((e.kind, e.line), (RecordErrorKind::InvalidJson, 3));
        assert!(e.message.contains("at column"), "{}", e.message);
    }

    #[test]
    fn directories_compression_and_sniffing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let chat = json!({"messages": [{"role": "user", "content": "x"}]}).to_string();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(format!("{chat}\n{chat}\n").as_bytes())
            .unwrap();
        write(d, "b/runs.jsonl.gz", &gz.finish().unwrap());
        write(d, "a/case-1.traj", swe_traj().to_string().as_bytes());
        write(d, "a/case-1.pred", b"not json");
        write(d, "a/.hidden.json", b"{");
        let oh = zstd::encode_all(openhands_events().to_string().as_bytes(), 1).unwrap();
        write(d, "c/oh-7.json.zst", &oh);
        // OpenHands evaluation output: JSON Lines of `{instance_id, history}`.
        let line = json!({"instance_id": "i-9", "history": openhands_events()}).to_string();
        write(d, "c/output.jsonl", line.as_bytes());
        // JSON Lines under a .json name.
        write(d, "d/lines.json", format!("{chat}\n{chat}\n").as_bytes());
        let items = read(&[d.to_path_buf()]);
        let ids: Vec<String> = items
            .iter()
            .map(|i| {
                i.as_ref()
                    .map(|t| t.id.clone())
                    .unwrap_or_else(|e| e.to_string())
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                "case-1",
                "runs.jsonl.gz:1",
                "runs.jsonl.gz:2",
                "oh-7",
                "i-9",
                "lines.json:1",
                "lines.json:2"
            ]
        );
        let t = items[3].as_ref().unwrap();
        assert_eq!(t.metadata, Some(json!({"format": "openhands"})));
        assert_eq!(items[4].as_ref().unwrap().messages.len(), 8);
        match read_trajectories(&[d.join("missing.jsonl")], TrajectoryFormat::Auto) {
            Err(DataError::NotFound { path }) => assert!(path.ends_with("missing.jsonl")),
            _ => panic!("expected NotFound"),
        }
        // A forced format applies to every record.
        let p = d.join("a/case-1.traj");
        let e = read_trajectories(&[p], TrajectoryFormat::Chat)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        // (`trajectory` is read as a nebius-style message list, whose steps have no role.)
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (RecordErrorKind::MissingField, Some("$.trajectory[0].role"))
        );
    }
}
