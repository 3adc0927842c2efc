//! What every trajectory format shares: the record context ([`Cx`]: where the record is, the
//! warnings found in it, errors with a JSON path), optional-field access, message content and
//! roles, ids and metadata, and the rendering of tool calls into Action segments.
//!
//! Nothing here knows a format; [`super::chat`], [`super::swe_agent`] and [`super::openhands`]
//! build their messages from these pieces.

use std::path::Path;

use serde_json::{Map, Value};

use crate::data::json::type_name;
use crate::data::open::STDIN_NAME;
use crate::data::trajectory::action::{render_raw_tool_call, render_tool_call};
use crate::data::trajectory::{Message, Role, Segment, SegmentKind, Trajectory};
use crate::data::{RecordError, RecordErrorKind};

/// Where a record is, and the warnings collected while reading it.
pub(super) struct Cx<'a> {
    pub(super) source: &'a str,
    pub(super) line: u64,
    /// The format name the trajectory reports ([`Trajectory::format`]); a reader that
    /// recognises a finer dialect overwrites it.
    pub(super) format: &'static str,
    pub(super) warnings: Vec<String>,
}

impl<'a> Cx<'a> {
    pub(super) fn new(source: &'a str, line: u64, format: &'static str) -> Self {
        Self {
            source,
            line,
            format,
            warnings: Vec::new(),
        }
    }

    pub(super) fn err(
        &self,
        kind: RecordErrorKind,
        path: &str,
        message: impl Into<String>,
    ) -> RecordError {
        RecordError {
            source: self.source.to_string(),
            line: self.line,
            field: Some(path.to_string()),
            kind,
            message: message.into(),
        }
    }

    pub(super) fn wrong_type(&self, path: &str, expected: &str, found: &Value) -> RecordError {
        self.err(
            RecordErrorKind::WrongType,
            path,
            format!("expected {expected}, found {}", type_name(found)),
        )
    }

    pub(super) fn finish(
        self,
        id: String,
        messages: Vec<Message>,
        metadata: Option<Value>,
    ) -> Trajectory {
        Trajectory {
            id,
            source: self.source.to_string(),
            line: self.line,
            format: self.format,
            messages,
            metadata,
            warnings: self.warnings,
        }
    }
}

pub(super) fn non_null<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An optional string field: absent or null is `None`, another type an error.
pub(super) fn opt_str<'v>(
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

/// Message content: a string, null (empty), or a list of parts whose texts are concatenated.
pub(super) fn content_text(
    cx: &mut Cx,
    v: Option<&Value>,
    path: &str,
) -> Result<String, RecordError> {
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
pub(super) fn record_id(cx: &Cx, value: &Value) -> Result<String, RecordError> {
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

pub(super) fn fallback_id(source: &str, line: u64) -> String {
    if source == STDIN_NAME {
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
pub(super) fn merged_metadata(
    cx: &Cx,
    obj: &Map<String, Value>,
) -> Result<Option<Value>, RecordError> {
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

pub(super) fn chat_role(role: &str) -> Option<Role> {
    Some(match role.to_ascii_lowercase().as_str() {
        "system" | "developer" => Role::System,
        "user" | "human" => Role::User,
        "assistant" | "ai" | "model" | "gpt" => Role::Assistant,
        // ShareGPT names the assistant's tool call `function_call` and its answer `observation`.
        "function_call" => Role::Assistant,
        "tool" | "function" | "ipython" | "observation" => Role::Tool,
        _ => return None,
    })
}

pub(super) fn message_role(
    cx: &Cx,
    obj: &Map<String, Value>,
    path: &str,
) -> Result<Role, RecordError> {
    // `role`, or ShareGPT's `from`.
    let key = if !obj.contains_key("role") && obj.contains_key("from") {
        "from"
    } else {
        "role"
    };
    let role_path = format!("{path}.{key}");
    let role = opt_str(cx, obj, key, path)?
        .ok_or_else(|| cx.err(RecordErrorKind::MissingField, &role_path, "missing"))?;
    chat_role(role).ok_or_else(|| {
        cx.err(
            RecordErrorKind::WrongType,
            &role_path,
            format!("expected system, user, assistant or tool, found {role:?}"),
        )
    })
}

pub(super) fn has_action(m: &Message) -> bool {
    m.segments.iter().any(|s| s.kind == SegmentKind::Action)
}

pub(super) fn single(kind: SegmentKind, text: String) -> Vec<Segment> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![Segment::plain(kind, text)]
    }
}

/// Appends `seg` after `segs`, with the `"\n"` separator described in the module docs.
pub(super) fn push_joined(segs: &mut Vec<Segment>, seg: Segment) {
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
pub(super) fn context_segments(
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

/// Thought (if any) then the rendered calls, joined.
pub(super) fn with_tool_calls(thought: String, calls: Vec<Segment>) -> Vec<Segment> {
    let mut segs = single(SegmentKind::Thought, thought);
    for c in calls {
        push_joined(&mut segs, c);
    }
    segs
}

/// The rendered `tool_calls` of an assistant message (and a legacy `function_call`).
pub(super) fn tool_call_segments(
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
pub(super) fn function_segment(cx: &mut Cx, f: &Value, path: &str) -> Result<Segment, RecordError> {
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
