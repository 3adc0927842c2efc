//! OpenHands event logs: an array of events, or an object with `history` or `events` of them
//! (OpenHands' evaluation `output.jsonl` rows, whose `instance_id` becomes the id).
//!
//! Segments: the `system` action is a system Prompt, a user `message` a user Prompt, an agent
//! `message` or `think` an assistant Thought, every other action one assistant message of
//! Thought (`args.thought`) + the tool call rendered as an Action; observations are tool
//! Observations. Bookkeeping events (state changes, recalls, condensations) are left out.

use serde_json::{Map, Value};

use super::record::{
    content_text, merged_metadata, non_null, opt_str, record_id, single, with_tool_calls, Cx,
};
use crate::data::json::missing_message;
use crate::data::trajectory::action::render_tool_call;
use crate::data::trajectory::{Message, Role, SegmentKind, Trajectory};
use crate::data::{RecordError, RecordErrorKind};

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
    let mut cx = Cx::new(source, line, "openhands");
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
