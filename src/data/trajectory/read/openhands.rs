//! OpenHands event logs, in the three shapes OpenHands has written them:
//!
//! - **event log** (`openhands`): an array of events, or an object with `history` or `events` of
//!   them (OpenHands' evaluation `output.jsonl` rows, whose `instance_id` becomes the id). Each
//!   event is `event_to_dict`: `id`, `source` (`agent`/`user`/`environment`), `message`, and
//!   either `action` + `args` or `observation` + `content` + `extras`;
//! - **compact events** (`openhands-compact`, the resolver's `output.jsonl`): each event
//!   dataclass as is (`dataclasses.asdict(event)`): no `id` or `source`, the action's fields at
//!   the top level of the event (`{"action": "run", "command": ..., "thought": ...}`);
//! - **pair lists** (`openhands-pairs`, OpenDevin/early OpenHands evaluation output): `history`
//!   is a list of `[action_event, observation_event]` pairs, each event in one of the forms
//!   above; the pairs are read in order, action then observation.
//!
//! What each part becomes:
//! - `system` action -> system Prompt (`args.content`);
//! - `message` from the user (or environment) -> user Prompt; from the agent -> assistant
//!   Thought. An agent message is the model writing prose with no tool call (in the function
//!   calling agents, a reply without tool calls; in OpenHands' GUI, its final answer): nothing
//!   runs, so it is not an Action. Without `source` (compact form), a message that waits for a
//!   response (`wait_for_response: true`) is the agent's (OpenHands' agents set it on the message
//!   they make of a reply in prose), any other the user's;
//! - `think` -> assistant Thought (`args.thought`: the reply's text and the `think` tool's
//!   argument): the think tool is a scratchpad that changes nothing, so it is reasoning, not an
//!   Action;
//! - any other action (`run`, `run_ipython`, `read`, `edit`, `browse`, `finish`, ...) -> an
//!   assistant message: Thought (`args.thought`, if not empty), then the tool call rendered as
//!   an Action (see [`parse_openhands`] for the name and arguments). `finish` is an Action: it
//!   is the call that ends the run, as `submit` is in SWE-agent;
//! - actions of one model reply: OpenHands turns a reply with several tool calls into several
//!   action events that share `tool_call_metadata.model_response.id` (the thought goes with the
//!   first one), each followed by its observation. They become ONE assistant message, the
//!   thought once and then each call as its own Action, as the model wrote it; the observations
//!   follow it in order, as OpenHands sends them back to the model;
//! - observations -> tool Observation (`content`);
//! - left out: `null` actions and observations, agent-state bookkeeping
//!   (`agent_state_changed`, `change_agent_state`), `recall` actions and observations (the
//!   workspace context OpenHands adds to the prompt from templates the event does not hold;
//!   its `content` is a status line such as "Added workspace context", not what the model
//!   read) and condensation events.
//!
//! The record's `instruction`: OpenHands' evaluation output puts the task both there and in the
//! first user `message` event. When the history holds no user Prompt (a history cut short, or
//! written without the first message), the instruction becomes the user Prompt, after the
//! leading system messages; otherwise it is not repeated.

use serde_json::{Map, Value};

use super::record::{
    content_text, merged_metadata, non_null, opt_str, push_joined, record_id, single,
    with_tool_calls, Cx,
};
use crate::data::json::missing_message;
use crate::data::trajectory::action::render_tool_call;
use crate::data::trajectory::{Message, Role, Segment, SegmentKind, Trajectory};
use crate::data::{RecordError, RecordErrorKind};

/// Parses an OpenHands event log: an array of events (or of `[action, observation]` pairs), or
/// an object with `history` or `events` of them (as in OpenHands' evaluation `output.jsonl`,
/// whose `instance_id` becomes the id). See the module docs for what each event becomes.
///
/// The call of an action: its name is `tool_call_metadata.function_name`, its arguments those
/// of the matching call in `tool_call_metadata.model_response` (what the model wrote), else
/// built from `args` (or, in the compact form, from the event's own fields): `run` ->
/// `execute_bash{command}`, `run_ipython` -> `execute_ipython_cell{code}`, `read` ->
/// `str_replace_editor{command: "view", path, view_range}`, `edit` ->
/// `str_replace_editor{command, path, file_text, old_str, new_str, insert_line}` (or, without
/// `command`, `edit_file{path, content, start, end}`), `finish` -> `finish{message,
/// task_completed}` (message from `final_thought`, else `message`), `browse` -> `web_read{url}`,
/// `browse_interactive` -> `browser{code}`, others -> the action's name with its arguments
/// minus bookkeeping; null values are left out. Metadata: `format: "openhands"`, plus the object
/// form's fields as for chat. The format name is `openhands-pairs` for a pair list,
/// `openhands-compact` for compact events, else `openhands`.
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
    let mut log = EventLog::default();
    for (i, item) in events.iter().enumerate() {
        let path = format!("{base}[{i}]");
        match item {
            Value::Array(pair) => {
                if pair.len() != 2 {
                    return Err(cx.err(
                        RecordErrorKind::WrongType,
                        &path,
                        format!(
                            "expected an event object or an [action, observation] pair, found \
                             an array of {} elements",
                            pair.len()
                        ),
                    ));
                }
                log.pairs = true;
                for (j, ev) in pair.iter().enumerate() {
                    log.event(&mut cx, ev, &format!("{path}[{j}]"))?;
                }
            }
            ev => log.event(&mut cx, ev, &path)?,
        }
    }
    if log.pairs {
        cx.format = "openhands-pairs";
    } else if log.compact {
        cx.format = "openhands-compact";
    }
    let mut messages = log.messages;
    if let Value::Object(o) = value {
        add_instruction(&mut cx, o, &mut messages)?;
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

/// The record's `instruction` as the user Prompt, when the history has none (see the module
/// docs), after the leading system messages.
fn add_instruction(
    cx: &mut Cx,
    record: &Map<String, Value>,
    messages: &mut Vec<Message>,
) -> Result<(), RecordError> {
    let has_user_prompt = messages
        .iter()
        .any(|m| m.role == Role::User && m.segments.iter().any(|s| s.kind == SegmentKind::Prompt));
    if has_user_prompt {
        return Ok(());
    }
    let instruction = content_text(cx, record.get("instruction"), "$.instruction")?;
    if instruction.is_empty() {
        return Ok(());
    }
    let at = messages
        .iter()
        .take_while(|m| m.role == Role::System)
        .count();
    messages.insert(
        at,
        Message {
            role: Role::User,
            segments: single(SegmentKind::Prompt, instruction),
        },
    );
    Ok(())
}

/// Events and observations that are not part of what the model wrote or read (see the module
/// docs).
const OPENHANDS_BOOKKEEPING: &[&str] = &[
    "",
    "null",
    "agent_state_changed",
    "change_agent_state",
    "recall",
    "condensation",
    "condensation_request",
];

/// Fields that describe how an action ran, not what the model asked for (under `args`, or at
/// the top level of a compact event, with `action` itself).
const OPENHANDS_ARG_BOOKKEEPING: &[&str] = &[
    "action",
    "thought",
    "blocking",
    "hidden",
    "confirmation_state",
    "security_risk",
    "is_confirmed",
    "action_risk",
    "impl_source",
    "keep_prompt",
    "kernel_init_code",
    "wait_for_response",
];

/// The messages read so far, and what the events said about their form.
#[derive(Default)]
struct EventLog {
    messages: Vec<Message>,
    /// The model reply (`tool_call_metadata.model_response.id`) the last assistant message was
    /// built from, and that message's index: a later action of the same reply joins it.
    reply: Option<(String, usize)>,
    /// An action event had no `args`: the compact form.
    compact: bool,
    /// The history is a list of `[action, observation]` pairs.
    pairs: bool,
}

impl EventLog {
    fn event(&mut self, cx: &mut Cx, ev: &Value, path: &str) -> Result<(), RecordError> {
        let obj = ev
            .as_object()
            .ok_or_else(|| cx.wrong_type(path, "an event object", ev))?;
        if let Some(action) = opt_str(cx, obj, "action", path)? {
            if !OPENHANDS_BOOKKEEPING.contains(&action) {
                self.action(cx, obj, action, path)?;
            }
        } else if let Some(observation) = opt_str(cx, obj, "observation", path)? {
            if !OPENHANDS_BOOKKEEPING.contains(&observation) {
                let content = content_text(cx, obj.get("content"), &format!("{path}.content"))?;
                self.messages.push(Message {
                    role: Role::Tool,
                    segments: single(SegmentKind::Observation, content),
                });
            }
        } else {
            cx.warnings.push(format!(
                "{path}: neither an action nor an observation; left out"
            ));
        }
        Ok(())
    }

    fn action(
        &mut self,
        cx: &mut Cx,
        obj: &Map<String, Value>,
        action: &str,
        path: &str,
    ) -> Result<(), RecordError> {
        let empty = Map::new();
        // The full form holds the action's fields under `args`; the compact form (the event
        // dataclass as is) at the top level.
        let (args, args_path) = match obj.get("args") {
            None => {
                self.compact = true;
                (obj, path.to_string())
            }
            Some(Value::Null) => (&empty, format!("{path}.args")),
            Some(Value::Object(m)) => (m, format!("{path}.args")),
            Some(other) => return Err(cx.wrong_type(&format!("{path}.args"), "an object", other)),
        };
        let text =
            |cx: &mut Cx, key: &str| content_text(cx, args.get(key), &format!("{args_path}.{key}"));
        let (role, segments) = match action {
            "system" => (
                Role::System,
                single(SegmentKind::Prompt, text(cx, "content")?),
            ),
            "message" => {
                let from_agent = match opt_str(cx, obj, "source", path)? {
                    Some(source) => source == "agent",
                    None => args.get("wait_for_response") == Some(&Value::Bool(true)),
                };
                let content = text(cx, "content")?;
                if from_agent {
                    (Role::Assistant, single(SegmentKind::Thought, content))
                } else {
                    (Role::User, single(SegmentKind::Prompt, content))
                }
            }
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
        if role == Role::Assistant {
            let reply = obj
                .get("tool_call_metadata")
                .and_then(|m| m.get("model_response")?.get("id")?.as_str())
                .filter(|id| !id.is_empty());
            self.push_assistant(reply, segments);
        } else if !segments.is_empty() {
            self.messages.push(Message { role, segments });
        }
        Ok(())
    }

    /// An assistant event's segments: appended to the message of the same model reply when
    /// there is one (several tool calls of one reply), else a new message.
    fn push_assistant(&mut self, reply: Option<&str>, segments: Vec<Segment>) {
        if segments.is_empty() {
            return;
        }
        if let (Some(id), Some((last, at))) = (reply, &self.reply) {
            if id == last {
                let message = &mut self.messages[*at];
                for segment in segments {
                    push_joined(&mut message.segments, segment);
                }
                return;
            }
        }
        self.messages.push(Message {
            role: Role::Assistant,
            segments,
        });
        self.reply = reply.map(|id| (id.to_string(), self.messages.len() - 1));
    }
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
