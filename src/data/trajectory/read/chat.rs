//! OpenAI-style chat records: a JSON Lines row or a JSON file with `messages` (also
//! mini-swe-agent `.traj.json`), or a nebius/SWE-agent-trajectories row whose `trajectory` is a
//! list of `{role, text}`.
//!
//! Segments: system/developer and user messages are Prompts, except a user message right after
//! an assistant action, which is an Observation (what SWE-agent and mini-swe-agent send back);
//! tool messages are Observations; an assistant message with `tool_calls` is a Thought (its
//! content) followed by one Action per rendered call; an assistant message without calls has
//! the actions written in its text (`<function=...>` blocks, fenced commands) split out as
//! Actions, the rest Thought.

use serde_json::Value;

use super::record::{
    content_text, context_segments, has_action, merged_metadata, message_role, non_null, record_id,
    tool_call_segments, with_tool_calls, Cx,
};
use crate::data::json::missing_message;
use crate::data::trajectory::action::split_actions;
use crate::data::trajectory::{Message, Role, Trajectory};
use crate::data::{RecordError, RecordErrorKind};

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
    let mut cx = Cx::new(source, line, "chat");
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
