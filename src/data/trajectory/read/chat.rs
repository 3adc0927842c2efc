//! Chat-message trajectories: OpenAI-style `messages` (JSON Lines rows, JSON files, SFT
//! datasets such as SWE-smith and SWE-Gym), mini-swe-agent `.traj.json` (v1 and v2, text-based
//! and tool calling, and the bare message lists of early versions), nebius/SWE-agent-trajectories
//! rows (`trajectory` of `{role, text}`), and LLM-completion logs whose last assistant turn is
//! only in `response.choices[0].message`.
//!
//! Segments (the full tables are in `docs/trajectory-formats.md`):
//! - system/developer and user messages are Prompts, tool messages Observations; a user message
//!   right after an assistant action is an Observation (what SWE-agent-style agents send back);
//!   in mini-swe-agent every user/tool message after an assistant turn is an Observation (the
//!   environment answers every turn: command output, format error or the submission), and the
//!   final `exit` message (v2: the submission) is a user Observation;
//! - an assistant message's `reasoning_content` is a Thought before its content;
//! - an assistant message with `tool_calls` is a Thought (its content) followed by one Action per
//!   rendered call; without calls, the actions written in its text are split out (see
//!   [`split_actions`]), except in mini-swe-agent, whose actions are exactly the fenced blocks
//!   tagged `bash` (v1) or `mswea_bash_command` (v2), and only in a turn with exactly one such
//!   block: a turn with several was rejected by the agent ("Please always provide EXACTLY ONE
//!   action") and never executed, so it is all Thought unless
//!   [`ReadOptions::score_rejected_actions`] is set. In tool-calling mini-swe-agent only the
//!   tool calls are actions.

use serde_json::{Map, Value};

use super::record::{
    content_text, context_segments, function_segment, has_action, merged_metadata, message_role,
    non_null, record_id, single, tool_call_segments, with_tool_calls, Cx,
};
use super::ReadOptions;
use crate::data::json::missing_message;
use crate::data::trajectory::action::{count_tagged_fences, split_actions, split_tagged_fences};
use crate::data::trajectory::{Message, Role, Segment, SegmentKind, Trajectory};
use crate::data::{RecordError, RecordErrorKind};

/// mini-swe-agent v1's action fence tag.
const MINI_V1_FENCE: &str = "bash";
/// mini-swe-agent v2's action fence tag (text-based models).
const MINI_V2_FENCE: &str = "mswea_bash_command";

/// Which writer's rules a chat record follows, decided from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// OpenAI-style chat: actions are tool calls, or written in the text.
    Chat,
    /// nebius/SWE-agent-trajectories: `trajectory` of `{role, text}`, the system prompt in
    /// `system_prompt`.
    Nebius,
    /// ShareGPT conversations (SFT datasets for LLaMA-Factory, axolotl, FastChat): `{from,
    /// value}` messages, `from` being `system`, `human`, `gpt`, `function_call` (the assistant's
    /// tool call as a JSON `{name, arguments}` text) or `observation` (the tool's answer).
    ShareGpt,
    /// mini-swe-agent, text-based: exactly one fenced block tagged `fence` per accepted turn.
    Mini { fence: &'static str },
    /// mini-swe-agent with tool calling (`tool_calls`, `role: "exit"`).
    MiniToolCall,
}

impl Dialect {
    /// Reads the dialect off the record: mini-swe-agent by its `trajectory_format`
    /// (`mini-swe-agent-*`) or `info.mini_version`, or for a bare list of messages (which is
    /// what early mini-swe-agent saved); then tool calling when an assistant message has
    /// `tool_calls`, else v2 when an assistant message writes a `mswea_bash_command` fence.
    fn of(record: Option<&Map<String, Value>>, key: &str, messages: &[Value]) -> Self {
        if key == "trajectory" {
            return Dialect::Nebius;
        }
        let mini = match record {
            None => true,
            Some(obj) => {
                obj.get("trajectory_format")
                    .and_then(Value::as_str)
                    .is_some_and(|f| f.starts_with("mini-swe-agent"))
                    || obj
                        .get("info")
                        .and_then(Value::as_object)
                        .is_some_and(|info| info.contains_key("mini_version"))
            }
        };
        if !mini {
            let sharegpt = messages
                .first()
                .and_then(Value::as_object)
                .is_some_and(|m| {
                    !m.contains_key("role") && m.get("from").is_some_and(Value::is_string)
                });
            return if sharegpt {
                Dialect::ShareGpt
            } else {
                Dialect::Chat
            };
        }
        let assistant = messages
            .iter()
            .filter_map(Value::as_object)
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
        let mut fence = MINI_V1_FENCE;
        for m in assistant {
            if non_null(m, "tool_calls")
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty())
            {
                return Dialect::MiniToolCall;
            }
            if let Some(text) = m.get("content").and_then(Value::as_str) {
                if count_tagged_fences(text, MINI_V2_FENCE) > 0 {
                    fence = MINI_V2_FENCE;
                }
            }
        }
        Dialect::Mini { fence }
    }

    fn name(self) -> &'static str {
        match self {
            Dialect::Chat => "chat",
            Dialect::ShareGpt => "sharegpt",
            Dialect::Nebius => "nebius",
            Dialect::Mini { .. } => "mini-swe-agent",
            Dialect::MiniToolCall => "mini-swe-agent-toolcall",
        }
    }

    fn is_mini(self) -> bool {
        matches!(self, Dialect::Mini { .. } | Dialect::MiniToolCall)
    }
}

/// [`parse_chat_with`] with the default [`ReadOptions`].
pub fn parse_chat(value: &Value, source: &str, line: u64) -> Result<Trajectory, RecordError> {
    parse_chat_with(value, source, line, &ReadOptions::default())
}

/// Parses one chat record: `{"id" | "instance_id" | "trajectory_id", "messages": [...],
/// "metadata": {...}}`, the same with `trajectory` as the list and `text` for `content`
/// (nebius/SWE-agent-trajectories), the list under [`ReadOptions::messages_field`] when it is
/// set, or a bare array of messages.
///
/// Roles: system (and developer), user (human), assistant (ai, model), tool (function), and
/// `exit` in mini-swe-agent. Content is a string, null, or a list of `{"type": "text", "text":
/// ...}` parts (concatenated; other keys such as `cache_control` are ignored); a null `text`
/// with a `system_prompt` string (nebius) is that prompt. An assistant's content is a Thought
/// when it has `tool_calls` (each rendered with
/// [`crate::data::trajectory::action::render_tool_call`]; a legacy `function_call` counts as
/// one); otherwise actions written in it are split out by the dialect's rule (module docs).
/// `reasoning_content` is a Thought before the content, ended by a `"\n"` when it lacks one.
/// A top-level `response.choices[0].message` (an LLM-completion log: the request's `messages`
/// and the model's answer) is appended as the last assistant message.
///
/// Metadata: the record's `metadata` object, plus top-level `resolved`, `instance_id`,
/// `model_name`, `exit_status`, `info.exit_status`, `info.submission`, and a boolean `target`
/// as `resolved`, where `metadata` lacks them.
pub fn parse_chat_with(
    value: &Value,
    source: &str,
    line: u64,
    options: &ReadOptions,
) -> Result<Trajectory, RecordError> {
    let mut cx = Cx::new(source, line, "chat");
    let (record, key, list) = match value {
        Value::Array(list) => (None, "", list),
        Value::Object(obj) => {
            let found = match options.messages_field.as_deref() {
                // The column named (`--messages-field`), or found by the caller.
                Some(field) => non_null(obj, field).map(|m| (field, m)),
                None => non_null(obj, "messages")
                    .map(|m| ("messages", m))
                    .or_else(|| non_null(obj, "trajectory").map(|t| ("trajectory", t))),
            };
            let Some((key, list)) = found else {
                let field = options.messages_field.as_deref().unwrap_or("messages");
                return Err(cx.err(
                    RecordErrorKind::MissingField,
                    &format!("$.{field}"),
                    missing_message(obj),
                ));
            };
            let list = list
                .as_array()
                .ok_or_else(|| cx.wrong_type(&format!("$.{key}"), "an array of messages", list))?;
            (Some(obj), key, list)
        }
        other => {
            return Err(cx.wrong_type(
                "$",
                "a JSON object with `messages` or an array of messages",
                other,
            ))
        }
    };
    let path = if key.is_empty() {
        "$".to_string()
    } else {
        format!("$.{key}")
    };
    let dialect = Dialect::of(record, key, list);
    cx.format = dialect.name();
    let mut reader = ChatReader {
        dialect,
        options,
        current_file: None,
        previous: None,
    };
    let mut messages = Vec::with_capacity(list.len() + 1);
    for (i, m) in list.iter().enumerate() {
        messages.push(reader.message(&mut cx, m, &format!("{path}[{i}]"))?);
    }
    if let Some(obj) = record {
        if let Some(answer) = final_response(obj) {
            cx.format = "llm-completion";
            messages.push(reader.message(&mut cx, answer, "$.response.choices[0].message")?);
        }
    }
    let id = record_id(&cx, value)?;
    let metadata = match record {
        Some(obj) => merged_metadata(&cx, obj)?,
        None => None,
    };
    Ok(cx.finish(id, messages, metadata))
}

/// The model's answer in an LLM-completion log: `response.choices[0].message`, when it is an
/// assistant message object.
fn final_response(obj: &Map<String, Value>) -> Option<&Value> {
    let message = non_null(obj, "response")?
        .get("choices")?
        .as_array()?
        .first()?
        .get("message")?;
    let role = message.get("role").and_then(Value::as_str);
    (message.is_object() && role.is_none_or(|r| r == "assistant")).then_some(message)
}

/// What reading a record's messages in order carries from one message to the next.
struct ChatReader<'o> {
    dialect: Dialect,
    options: &'o ReadOptions,
    /// SWE-agent's open file, for the language of `edit` bodies.
    current_file: Option<String>,
    /// The previous message's role, and whether it had an action.
    previous: Option<(Role, bool)>,
}

impl ChatReader<'_> {
    fn message(&mut self, cx: &mut Cx, m: &Value, path: &str) -> Result<Message, RecordError> {
        let obj = m
            .as_object()
            .ok_or_else(|| cx.wrong_type(path, "a message object", m))?;
        let exit =
            self.dialect.is_mini() && obj.get("role").and_then(Value::as_str) == Some("exit");
        let role = if exit {
            Role::User
        } else {
            message_role(cx, obj, path)?
        };
        // `content` (OpenAI), else `text` (nebius), else `value` (ShareGPT).
        let key = ["content", "text", "value"]
            .into_iter()
            .find(|k| obj.contains_key(*k))
            .unwrap_or("content");
        let mut content = content_text(cx, obj.get(key), &format!("{path}.{key}"))?;
        if content.is_empty() && non_null(obj, key).is_none() {
            if let Some(Value::String(prompt)) = obj.get("system_prompt") {
                content = prompt.clone();
            }
        }
        let after_assistant = matches!(self.previous, Some((Role::Assistant, _)));
        let after_action = matches!(self.previous, Some((Role::Assistant, true)));
        let segments = match role {
            Role::Assistant => {
                let reasoning = match obj.get("reasoning_content") {
                    Some(Value::String(r)) => r.as_str(),
                    _ => "",
                };
                let segs = self.assistant_segments(cx, obj, path, content)?;
                with_reasoning(reasoning, segs)
            }
            _ if exit => single(SegmentKind::Observation, content),
            // The environment answers every mini-swe-agent turn, accepted or rejected.
            _ if self.dialect.is_mini() => {
                context_segments(role, after_action, after_assistant, content)
            }
            _ => context_segments(role, after_action, false, content),
        };
        let msg = Message { role, segments };
        self.previous = Some((role, role == Role::Assistant && has_action(&msg)));
        Ok(msg)
    }

    fn assistant_segments(
        &mut self,
        cx: &mut Cx,
        obj: &Map<String, Value>,
        path: &str,
        content: String,
    ) -> Result<Vec<Segment>, RecordError> {
        let calls = tool_call_segments(cx, obj, path)?;
        if !calls.is_empty() {
            return Ok(with_tool_calls(content, calls));
        }
        Ok(match self.dialect {
            Dialect::ShareGpt
                if obj.get("from").and_then(Value::as_str) == Some("function_call") =>
            {
                sharegpt_call(cx, content, path)?
            }
            Dialect::Chat | Dialect::Nebius | Dialect::ShareGpt => {
                split_actions(&content, &mut self.current_file)
            }
            // Only tool calls are executed.
            Dialect::MiniToolCall => single(SegmentKind::Thought, content),
            Dialect::Mini { fence } => {
                let accepted = count_tagged_fences(&content, fence) == 1;
                if accepted || self.options.score_rejected_actions {
                    split_tagged_fences(&content, fence, &mut self.current_file)
                } else {
                    single(SegmentKind::Thought, content)
                }
            }
        })
    }
}

/// A ShareGPT `function_call` message: its text is the call as JSON `{name, arguments}`,
/// rendered like any tool call; text that is not such an object is kept as written, an Action,
/// with a warning.
fn sharegpt_call(cx: &mut Cx, content: String, path: &str) -> Result<Vec<Segment>, RecordError> {
    match serde_json::from_str::<Value>(&content) {
        Ok(call @ Value::Object(_)) => {
            Ok(vec![function_segment(cx, &call, &format!("{path}.value"))?])
        }
        _ => {
            cx.warnings.push(format!(
                "{path}.value: a function_call message that is not a JSON {{name, arguments}} \
                 object; kept as written"
            ));
            Ok(single(SegmentKind::Action, content))
        }
    }
}

/// `reasoning` (when not empty) as a Thought before `segs`, ended by a `"\n"` unless it ends
/// with one; merged into `segs`' first segment when that is a Thought too.
fn with_reasoning(reasoning: &str, mut segs: Vec<Segment>) -> Vec<Segment> {
    if reasoning.is_empty() {
        return segs;
    }
    let mut text = reasoning.to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match segs.first_mut() {
        Some(first) if first.kind == SegmentKind::Thought => {
            first.text.insert_str(0, &text);
        }
        _ => segs.insert(0, Segment::plain(SegmentKind::Thought, text)),
    }
    segs
}
