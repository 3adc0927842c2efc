//! SWE-agent `.traj` files: `history` (the messages the model saw) and/or `trajectory` (the
//! agent's steps: `thought`, `action`, `observation`, `response`), with the run's `info`. Both
//! 0.x (the action in a fence or in `<command>` tags in the text) and 1.x function calling
//! (`tool_calls`, role `tool`) are read; per-step `messages`, `state`, `extra_info` and
//! `replay_config` are not needed and ignored.
//!
//! Segments: from `history`, system/user messages are Prompts, except that a user or tool
//! message after an assistant turn is an Observation (SWE-agent answers every turn);
//! demonstration messages (`is_demo: true`, whatever their role) are Prompts, so the actions
//! written in a demonstration are never scored. An assistant message is split into the Thought
//! and the Action SWE-agent parsed out of it (or Thought + rendered tool calls). The steps that
//! `trajectory` has beyond the history's assistant turns (1.x writes the final `submit` step
//! only there) are appended, as are all steps when there is no history: an assistant message
//! (Thought, then the Action) and a user Observation per step. The tables are in
//! `docs/trajectory-formats.md`.

use serde_json::{Map, Value};

use super::record::{
    content_text, context_segments, message_role, non_null, opt_str, push_joined, record_id,
    single, tool_call_segments, with_tool_calls, Cx,
};
use crate::data::json::missing_message;
use crate::data::trajectory::action::{
    raw_command_action, split_actions, track_current_file, wrap,
};
use crate::data::trajectory::{Message, Role, Segment, SegmentKind, Trajectory};
use crate::data::{RecordError, RecordErrorKind};

/// Parses an SWE-agent `.traj` value: `history` (what the model saw) when it has messages, then
/// the `trajectory` steps it lacks. Metadata: `info.exit_status`, `info.submission`, `format:
/// "swe-agent"`. The trajectory's format is `swe-agent-fncall` when the history has tool calls,
/// else `swe-agent`.
///
/// History: a message with `is_demo: true` -> Prompt; system/user -> Prompt, except a user
/// message after an assistant turn -> Observation; tool -> Observation. An assistant message
/// with `tool_calls` (function-calling SWE-agent) is Thought + rendered calls. One with `action`:
/// the action is looked up in `content` (last occurrence, with the fence lines or the
/// `<command>`/`</command>` tags around it) and that part is the Action ([`raw_command_action`],
/// current file tracked from `open`/`create`, fences or tags as markup), the rest Thought; when
/// it is not found, Thought = `thought` + `"\n"`, Action = `action`.
///
/// Steps: with a history of N assistant turns (demonstrations not counted), the steps from
/// index N on are appended; without one, all steps. Per step, an assistant message with Thought
/// = `thought` (trailing whitespace trimmed) followed by `"\n\n"`, and Action = `` "```\n" +
/// action + "\n```" `` (the action's trailing newlines trimmed, fences as markup), or in a
/// function-calling run, where the model wrote no fence and the step does not keep the call,
/// Action = `action` as SWE-agent ran it; then a user message with the `observation`. A step
/// with only `response` has it split like free text.
pub fn parse_swe_agent(value: &Value, source: &str, line: u64) -> Result<Trajectory, RecordError> {
    let mut cx = Cx::new(source, line, "swe-agent");
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
        (Some(h), steps) => {
            let (mut messages, turns, fncall) = swe_history(&mut cx, h)?;
            if fncall {
                cx.format = "swe-agent-fncall";
            }
            if let Some(steps) = steps {
                let mut current_file = None;
                let fenced = !fncall;
                for (i, step) in steps.iter().enumerate().skip(turns) {
                    messages.extend(swe_step(&mut cx, step, i, &mut current_file, fenced)?);
                }
            }
            messages
        }
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

/// The history's messages, its number of assistant turns (demonstrations not counted), and
/// whether it uses function calling.
fn swe_history(cx: &mut Cx, history: &[Value]) -> Result<(Vec<Message>, usize, bool), RecordError> {
    let mut current_file = None;
    let mut after_assistant = false;
    let mut turns = 0;
    let mut fncall = false;
    let mut messages = Vec::with_capacity(history.len());
    for (i, m) in history.iter().enumerate() {
        let path = format!("$.history[{i}]");
        let obj = m
            .as_object()
            .ok_or_else(|| cx.wrong_type(&path, "a message object", m))?;
        let role = message_role(cx, obj, &path)?;
        let content = content_text(cx, obj.get("content"), &format!("{path}.content"))?;
        let demo = match obj.get("is_demo") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(cx.wrong_type(&format!("{path}.is_demo"), "a boolean", other))
            }
        };
        if demo {
            // A demonstration is part of the prompt, whatever its role: its actions were
            // never this run's.
            messages.push(Message {
                role,
                segments: single(SegmentKind::Prompt, content),
            });
            continue;
        }
        let segments = match role {
            Role::Assistant => {
                let calls = tool_call_segments(cx, obj, &path)?;
                let action = opt_str(cx, obj, "action", &path)?.filter(|a| !a.trim().is_empty());
                let thought = opt_str(cx, obj, "thought", &path)?;
                turns += 1;
                if !calls.is_empty() {
                    fncall = true;
                    with_tool_calls(content, calls)
                } else if let Some(action) = action {
                    let segs = locate_action(&content, thought, action, current_file.as_deref());
                    track_current_file(action, &mut current_file);
                    segs
                } else {
                    split_actions(&content, &mut current_file)
                }
            }
            _ => context_segments(role, after_assistant, false, content),
        };
        after_assistant = role == Role::Assistant;
        messages.push(Message { role, segments });
    }
    Ok((messages, turns, fncall))
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
    if let Some((open, close)) =
        surrounding_fences(content, a, b).or_else(|| surrounding_command_tags(content, a, b))
    {
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

/// The `<command>` and `</command>` tags around `content[a..b]` (SWE-agent's XML
/// thought-action format), when only whitespace separates them from it.
fn surrounding_command_tags(
    content: &str,
    a: usize,
    b: usize,
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    const OPEN: &str = "<command>";
    const CLOSE: &str = "</command>";
    let before = content[..a].trim_end();
    let open_start = before.strip_suffix(OPEN)?.len();
    let after = &content[b..];
    let rest = after.trim_start();
    if !rest.starts_with(CLOSE) {
        return None;
    }
    let close_start = b + (after.len() - rest.len());
    Some((
        open_start..open_start + OPEN.len(),
        close_start..close_start + CLOSE.len(),
    ))
}

fn swe_steps(cx: &mut Cx, steps: &[Value]) -> Result<Vec<Message>, RecordError> {
    let mut current_file = None;
    let mut messages = Vec::with_capacity(2 * steps.len());
    for (i, step) in steps.iter().enumerate() {
        messages.extend(swe_step(cx, step, i, &mut current_file, true)?);
    }
    Ok(messages)
}

/// One step as messages: the assistant's (Thought, then the Action, fenced when `fenced`) and
/// the observation's.
fn swe_step(
    cx: &mut Cx,
    step: &Value,
    i: usize,
    current_file: &mut Option<String>,
    fenced: bool,
) -> Result<Vec<Message>, RecordError> {
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
            segs = split_actions(r, current_file);
        }
    } else {
        let thought = thought.unwrap_or_default().trim_end();
        let action = action.unwrap_or_default().trim_end_matches(['\n', '\r']);
        let has_action = !action.trim().is_empty();
        if !thought.is_empty() {
            // A blank line before a fence; one newline before a bare command, as between a
            // thought and a tool call.
            let gap = if fenced || !has_action { "\n\n" } else { "\n" };
            segs.push(Segment::plain(
                SegmentKind::Thought,
                format!("{thought}{gap}"),
            ));
        }
        if has_action {
            let mut seg = raw_command_action(action, current_file.as_deref());
            if fenced {
                seg = wrap(seg, "```\n", "\n```");
                let n = seg.text.len();
                seg.markup = vec![0..3, n - 3..n];
            }
            segs.push(seg);
            track_current_file(action, current_file);
        }
    }
    let mut messages = Vec::with_capacity(2);
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
    Ok(messages)
}
