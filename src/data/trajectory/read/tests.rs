//! Tests of the trajectory readers, by format and for the file handling.

use super::*;
use crate::data::trajectory::{CodeRegion, Lang};
use crate::data::trajectory::{Role, Segment, SegmentKind};
use serde_json::json;
use std::io::Write;
use std::path::Path;

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
    // A bare array is a list of messages: its elements must be message objects.
    let e = parse_chat(&json!([1]), "f", 1).unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (RecordErrorKind::WrongType, Some("$[0]"))
    );
    let e = parse_chat(&json!(1), "f", 1).unwrap_err();
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
    let e = parse_openhands(&json!([{"action": "run", "args": "ls"}]), "a.json", 0).unwrap_err();
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
    // An array is read element by element: the place is the row that is cut short.
    assert_eq!((e.kind, e.line), (RecordErrorKind::InvalidJson, 1));
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

#[test]
fn json_arrays_hold_one_trajectory_per_record_or_are_an_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let chat = |id: &str| json!({"id": id, "messages": [{"role": "user", "content": "x"}]});
    let records = json!([chat("a"), chat("b")]);
    let places = |items: Vec<Result<Trajectory, RecordError>>| -> Vec<String> {
        items
            .into_iter()
            .map(|i| {
                i.map_or_else(
                    |e| e.to_string(),
                    |t| format!("{} {}:{}", t.id, t.source, t.line),
                )
            })
            .collect()
    };
    // Under a .json name, under a .jsonl name (pretty-printed or not), and gzip: a row each.
    for (name, bytes) in [
        ("r.json", serde_json::to_vec_pretty(&records).unwrap()),
        ("r.jsonl", records.to_string().into_bytes()),
        ("p.jsonl", serde_json::to_vec_pretty(&records).unwrap()),
    ] {
        let p = write(d, name, &bytes);
        let src = p.display();
        assert_eq!(
            places(read(std::slice::from_ref(&p))),
            vec![format!("a {src}:1"), format!("b {src}:2")],
            "{name}"
        );
    }
    // An OpenHands event log is one trajectory, whatever the name.
    let p = write(d, "oh.jsonl", openhands_events().to_string().as_bytes());
    let items = read(std::slice::from_ref(&p));
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].as_ref().unwrap().id, "oh");
    // A forced format reads every element as its record; an element of no known shape is an
    // error at its row, and the next element is still read.
    let p = write(
        d,
        "odd.json",
        json!([{"x": 1}, chat("c")]).to_string().as_bytes(),
    );
    let items: Vec<_> = read_trajectories(std::slice::from_ref(&p), TrajectoryFormat::Chat)
        .unwrap()
        .collect();
    let e = items[0].as_ref().unwrap_err();
    assert_eq!((e.line, e.kind), (1, RecordErrorKind::MissingField));
    let t = items[1].as_ref().unwrap();
    assert_eq!((t.id.as_str(), t.line), ("c", 2));
}

// =============================================================================================
// OpenHands: compact events, [action, observation] pairs, several tool calls of one reply,
// bookkeeping events, the record's instruction.

/// An action of the current event form whose model reply is `reply`, with the call as written.
fn oh_call(id: u64, action: &str, args: Value, reply: &str, call: (&str, &str, Value)) -> Value {
    let (call_id, name, arguments) = call;
    json!({"id": id, "source": "agent", "action": action, "args": args,
        "tool_call_metadata": {"function_name": name, "tool_call_id": call_id,
            "model_response": {"id": reply, "choices": [{"message": {"content": "c", "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": arguments.to_string()}}]}}]}}})
}

fn oh_observation(id: u64, cause: u64, kind: &str, content: &str) -> Value {
    json!({"id": id, "source": "agent", "cause": cause, "observation": kind,
        "content": content, "extras": {}})
}

#[test]
fn openhands_compact_events_have_their_fields_at_the_top_level() {
    // Resolver output: the event dataclasses as they are (no id, no source, no args).
    let v = json!({"instruction": "Fix it.", "history": [
        {"content": "Fix it.", "images_urls": null, "wait_for_response": false, "action": "message", "action_risk": null},
        {"command": "ls", "thought": "Look.", "keep_prompt": true, "action": "run", "is_confirmed": "confirmed", "action_risk": null},
        {"content": "a.py", "command_id": -1, "command": "ls", "exit_code": 0, "observation": "run"},
        {"code": "print(1)", "thought": "", "action": "run_ipython", "is_confirmed": "confirmed", "kernel_init_code": "from agentskills import *"},
        {"content": "1", "code": "print(1)", "observation": "run_ipython"},
        {"content": "Shall I go on?", "images_urls": null, "wait_for_response": true, "action": "message"},
        {"content": "Please continue.", "images_urls": null, "wait_for_response": false, "action": "message"},
        {"outputs": {}, "thought": "Done.", "action": "finish"}
    ]});
    assert_eq!(sniff(&v), Some(TrajectoryFormat::OpenHands));
    let t = parse_openhands(&v, "output.jsonl", 3).unwrap();
    assert_eq!(
        (t.format, t.id.as_str()),
        ("openhands-compact", "output.jsonl:3")
    );
    assert_eq!(
        shape(&t),
        vec![
            // The instruction is this first message: not repeated.
            (Role::User, vec![(Prompt, "Fix it.")]),
            (
                Role::Assistant,
                vec![
                    (Thought, "Look.\n"),
                    (
                        Action,
                        "<function=execute_bash>\n<parameter=command>ls</parameter>\n</function>"
                    )
                ]
            ),
            (Role::Tool, vec![(Observation, "a.py")]),
            (
                Role::Assistant,
                vec![(
                    Action,
                    "<function=execute_ipython_cell>\n<parameter=code>print(1)</parameter>\n\
                     </function>"
                )]
            ),
            (Role::Tool, vec![(Observation, "1")]),
            // Waiting for a response: the agent's message, prose, not an action.
            (Role::Assistant, vec![(Thought, "Shall I go on?")]),
            (Role::User, vec![(Prompt, "Please continue.")]),
            (
                Role::Assistant,
                vec![
                    (Thought, "Done.\n"),
                    (Action, "<function=finish>\n</function>")
                ]
            ),
        ]
    );
    // A compact action of another kind keeps its own fields, minus bookkeeping.
    let v = json!([{"action": "delegate", "agent": "B", "inputs": {"t": 1}, "thought": "", "action_risk": null}]);
    let t = parse_openhands(&v, "a.json", 0).unwrap();
    assert_eq!(
        shape(&t),
        vec![(
            Role::Assistant,
            vec![(
                Action,
                "<function=delegate>\n<parameter=agent>B</parameter>\n\
                 <parameter=inputs>{\"t\":1}</parameter>\n</function>"
            )]
        )]
    );
    // Under `history` only: an SWE-agent step (action and observation) is not an event.
    assert_eq!(
        sniff(&json!({"history": [{"action": "ls", "observation": "a.py"}]})),
        None
    );
    assert_eq!(sniff(&json!([{"action": "run", "command": "ls"}])), None);
}

#[test]
fn openhands_pair_lists_are_read_action_then_observation() {
    // OpenDevin/early OpenHands evaluation output: `history` of [action, observation] pairs.
    let v = json!({"instance_id": "p-1", "instruction": "Fix it.", "history": [
        [{"id": 1, "source": "user", "action": "message", "args": {"content": "Fix it.", "wait_for_response": false}},
         {"id": -1, "source": "user", "observation": "null", "content": "", "extras": {}}],
        [{"id": 2, "source": "agent", "action": "run", "args": {"command": "ls", "thought": "Look."}},
         {"id": 3, "source": "agent", "cause": 2, "observation": "run", "content": "a.py", "extras": {"command": "ls", "exit_code": 0}}],
        [{"id": 4, "source": "agent", "action": "message", "args": {"content": "Done?", "wait_for_response": true}},
         {"id": -1, "source": "agent", "observation": "null", "content": "", "extras": {}}],
        [{"id": -1, "source": "agent", "action": "null", "args": {}},
         {"id": 5, "source": "environment", "observation": "run", "content": "bg output", "extras": {}}],
        [{"id": 6, "source": "agent", "action": "finish", "args": {"outputs": {}, "thought": ""}},
         {"id": -1, "source": "agent", "observation": "null", "content": "", "extras": {}}]
    ]});
    assert_eq!(sniff(&v), Some(TrajectoryFormat::OpenHands));
    let t = parse_openhands(&v, "output.jsonl", 1).unwrap();
    assert_eq!((t.format, t.id.as_str()), ("openhands-pairs", "p-1"));
    assert_eq!(
        shape(&t),
        vec![
            (Role::User, vec![(Prompt, "Fix it.")]),
            (
                Role::Assistant,
                vec![
                    (Thought, "Look.\n"),
                    (
                        Action,
                        "<function=execute_bash>\n<parameter=command>ls</parameter>\n</function>"
                    )
                ]
            ),
            (Role::Tool, vec![(Observation, "a.py")]),
            (Role::Assistant, vec![(Thought, "Done?")]),
            (Role::Tool, vec![(Observation, "bg output")]),
            (
                Role::Assistant,
                vec![(Action, "<function=finish>\n</function>")]
            ),
        ]
    );
    // A bare array of pairs is one event log too.
    let bare = v["history"].clone();
    assert_eq!(sniff(&bare), Some(TrajectoryFormat::OpenHands));
    assert_eq!(
        parse_openhands(&bare, "h.json", 0).unwrap().messages,
        t.messages
    );
    // Anything but a pair is an error at that item.
    let e = parse_openhands(
        &json!({"history": [[{"action": "run", "args": {}}]]}),
        "a.json",
        0,
    )
    .unwrap_err();
    assert_eq!(
        (e.kind, e.field.as_deref()),
        (RecordErrorKind::WrongType, Some("$.history[0]"))
    );
}

#[test]
fn openhands_tool_calls_of_one_reply_are_one_assistant_message() {
    // One reply with two calls: OpenHands writes two action events sharing the reply id (the
    // thought with the first), each followed by its observation.
    let v = json!([
        oh_call(
            1,
            "run",
            json!({"command": "ls", "thought": "Two things."}),
            "r1",
            ("t1", "execute_bash", json!({"command": "ls"}))
        ),
        oh_observation(2, 1, "run", "a.py"),
        oh_call(
            3,
            "read",
            json!({"path": "/w/a.py", "thought": ""}),
            "r1",
            (
                "t2",
                "str_replace_editor",
                json!({"command": "view", "path": "/w/a.py"})
            )
        ),
        oh_observation(4, 3, "read", "print(1)"),
        oh_call(
            5,
            "run",
            json!({"command": "pwd", "thought": "Next."}),
            "r2",
            ("t3", "execute_bash", json!({"command": "pwd"}))
        ),
        oh_observation(6, 5, "run", "/w"),
    ]);
    let t = parse_openhands(&v, "a.json", 0).unwrap();
    assert_eq!(
        shape(&t),
        vec![
            (
                Role::Assistant,
                vec![
                    (Thought, "Two things.\n"),
                    (
                        Action,
                        "<function=execute_bash>\n<parameter=command>ls</parameter>\n</function>\n"
                    ),
                    (
                        Action,
                        "<function=str_replace_editor>\n<parameter=command>view</parameter>\n\
                         <parameter=path>/w/a.py</parameter>\n</function>"
                    )
                ]
            ),
            (Role::Tool, vec![(Observation, "a.py")]),
            (Role::Tool, vec![(Observation, "print(1)")]),
            (
                Role::Assistant,
                vec![
                    (Thought, "Next.\n"),
                    (
                        Action,
                        "<function=execute_bash>\n<parameter=command>pwd</parameter>\n</function>"
                    )
                ]
            ),
            (Role::Tool, vec![(Observation, "/w")]),
        ]
    );
    // The newline between the two calls is written by the reader: markup of the first call.
    let first_call = &t.messages[0].segments[1];
    assert_eq!(
        marked(first_call).last().copied(),
        Some("\n"),
        "{first_call:?}"
    );
}

#[test]
fn openhands_bookkeeping_system_think_and_the_instruction() {
    let v = json!({"instance_id": "b-1", "instruction": "Build it.", "history": [
        {"id": 0, "source": "environment", "observation": "agent_state_changed", "content": "", "extras": {"agent_state": "loading"}},
        {"id": 1, "source": "environment", "action": "change_agent_state", "args": {"agent_state": "init", "thought": ""}},
        {"id": 2, "source": "environment", "cause": 1, "observation": "null", "content": "", "extras": {}},
        {"id": 3, "source": "agent", "action": "system", "args": {"content": "You are OpenHands.", "tools": []}},
        {"id": 4, "source": "user", "action": "recall", "args": {"recall_type": "workspace_context", "query": "Build it."}},
        {"id": 5, "source": "environment", "cause": 4, "observation": "recall", "content": "Added workspace context", "extras": {}},
        // `think` through the think tool: args.thought is the reply's text and the tool's
        // argument; it is reasoning, a Thought.
        oh_call(6, "think", json!({"thought": "c\nPlan."}), "r1", ("t1", "think", json!({"thought": "Plan."}))),
        oh_observation(7, 6, "think", "Your thought has been logged."),
        oh_call(8, "run", json!({"command": "make", "thought": ""}), "r2", ("t2", "execute_bash", json!({"command": "make"}))),
        oh_observation(9, 8, "run", "ok"),
        {"id": 10, "source": "agent", "action": "message", "args": {"content": "Built.", "wait_for_response": true}},
        {"id": 11, "source": "agent", "cause": 10, "observation": "null", "content": "", "extras": {}},
        {"id": 12, "source": "environment", "observation": "agent_state_changed", "content": "", "extras": {"agent_state": "awaiting_user_input"}}
    ]});
    let t = parse_openhands(&v, "output.jsonl", 1).unwrap();
    assert_eq!(t.format, "openhands");
    assert_eq!(
        shape(&t),
        vec![
            (Role::System, vec![(Prompt, "You are OpenHands.")]),
            // No user message in the history: the record's instruction, after the system prompt.
            (Role::User, vec![(Prompt, "Build it.")]),
            (Role::Assistant, vec![(Thought, "c\nPlan.")]),
            (
                Role::Tool,
                vec![(Observation, "Your thought has been logged.")]
            ),
            (
                Role::Assistant,
                vec![(
                    Action,
                    "<function=execute_bash>\n<parameter=command>make</parameter>\n</function>"
                )]
            ),
            (Role::Tool, vec![(Observation, "ok")]),
            // The agent's closing message: prose, nothing runs.
            (Role::Assistant, vec![(Thought, "Built.")]),
        ]
    );
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    // Only without a user message: with one, the instruction is not added.
    let mut with_user = v.clone();
    with_user["history"].as_array_mut().unwrap().insert(
        4,
        json!({"id": 13, "source": "user", "action": "message", "args": {"content": "Build it, please."}}),
    );
    let t = parse_openhands(&with_user, "output.jsonl", 1).unwrap();
    let prompts: Vec<&str> = t
        .messages
        .iter()
        .flat_map(|m| &m.segments)
        .filter(|s| s.kind == Prompt)
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(prompts, vec!["You are OpenHands.", "Build it, please."]);
    // An instruction of the wrong type is an error naming it.
    let mut bad = v.clone();
    bad["instruction"] = json!(5);
    let e = parse_openhands(&bad, "output.jsonl", 1).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("$.instruction"));
}

// ---------------------------------------------------------------------------------------------
// mini-swe-agent, chat dialects and SWE-agent step rules

fn mini_v1_with_rejected_turn() -> Value {
    json!({
        "trajectory_format": "mini-swe-agent-1",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "task"},
            {"role": "assistant", "content": "THOUGHT: two.\n```bash\nls\n```\nand\n```bash\npwd\n```\n"},
            {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks, found 2 actions."},
            {"role": "assistant", "content": "THOUGHT: see\n```python\nx = 1\n```\n```bash\nls\n```"},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\n</output>"}
        ]
    })
}

#[test]
fn mini_swe_agent_rejected_turn_is_thought_by_default() {
    let v = mini_v1_with_rejected_turn();
    let t = parse_chat(&v, "m.traj.json", 0).unwrap();
    assert_eq!(t.format, "mini-swe-agent");
    assert_eq!(
        shape(&t)[2..],
        vec![
            (
                Role::Assistant,
                vec![(
                    Thought,
                    "THOUGHT: two.\n```bash\nls\n```\nand\n```bash\npwd\n```\n"
                )]
            ),
            // The format error answers the turn: an Observation although nothing ran.
            (
                Role::User,
                vec![(
                    Observation,
                    "Please always provide EXACTLY ONE action in triple backticks, found 2 actions."
                )]
            ),
            // Only the `bash` fence is the action; the python fence in the prose is Thought.
            (
                Role::Assistant,
                vec![
                    (Thought, "THOUGHT: see\n```python\nx = 1\n```\n"),
                    (Action, "```bash\nls\n```")
                ]
            ),
            (
                Role::User,
                vec![(
                    Observation,
                    "<returncode>0</returncode>\n<output>\n</output>"
                )]
            ),
        ]
    );
}

#[test]
fn mini_swe_agent_rejected_turn_scored_with_the_option() {
    let v = mini_v1_with_rejected_turn();
    let options = ReadOptions {
        score_rejected_actions: true,
        ..ReadOptions::default()
    };
    let t = parse_chat_with(&v, "m.traj.json", 0, &options).unwrap();
    assert_eq!(
        shape(&t)[2].1,
        vec![
            (Thought, "THOUGHT: two.\n"),
            (Action, "```bash\nls\n```"),
            (Thought, "\nand\n"),
            (Action, "```bash\npwd\n```"),
            (Thought, "\n")
        ]
    );
    assert_eq!(t.action_count(), 3);
    // Through the stream too.
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "m.traj.json", v.to_string().as_bytes());
    let scored: Vec<_> = read_trajectories_with(std::slice::from_ref(&p), options)
        .unwrap()
        .collect();
    assert_eq!(scored[0].as_ref().unwrap().action_count(), 3);
    assert_eq!(read(&[p])[0].as_ref().unwrap().action_count(), 1);
}

#[test]
fn mini_swe_agent_v2_fence_language() {
    let v = json!({
        "trajectory_format": "mini-swe-agent-1.1",
        "messages": [
            {"role": "user", "content": "task"},
            {"role": "assistant", "content": "Like this:\n```bash\nrm -rf x\n```\nSo:\n```mswea_bash_command\nls\n```",
             "extra": {"actions": [{"command": "ls"}]}},
            {"role": "user", "content": "<returncode>0</returncode>"}
        ]
    });
    let t = parse_chat(&v, "m.traj.json", 0).unwrap();
    assert_eq!(t.format, "mini-swe-agent");
    assert_eq!(
        shape(&t)[1].1,
        vec![
            (Thought, "Like this:\n```bash\nrm -rf x\n```\nSo:\n"),
            (Action, "```mswea_bash_command\nls\n```")
        ]
    );
    let a = &t.messages[1].segments[1];
    assert_eq!(marked(a), vec!["```mswea_bash_command", "```"]);
    assert_eq!(regions(a), vec![("ls\n", Lang::Bash)]);
}

#[test]
fn mini_swe_agent_tool_calls_exit_and_reasoning() {
    let v = json!({
        "trajectory_format": "mini-swe-agent-1.1",
        "info": {"mini_version": "2.2.7", "exit_status": "Submitted", "submission": "diff"},
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "task"},
            {"role": "assistant", "content": "Look.", "reasoning_content": "Where is it?",
             "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}],
             "extra": {"actions": [{"command": "ls", "tool_call_id": "c1"}]}},
            {"role": "tool", "tool_call_id": "c1", "content": "<returncode>0</returncode>"},
            // No tool call: a format error in tool-calling mode; the fence is not run.
            {"role": "assistant", "content": "```bash\npwd\n```"},
            {"role": "user", "content": "No tool calls found."},
            {"role": "exit", "content": "diff", "extra": {"exit_status": "Submitted"}}
        ]
    });
    let t = parse_chat(&v, "m.traj.json", 0).unwrap();
    assert_eq!(t.format, "mini-swe-agent-toolcall");
    assert_eq!(
        shape(&t)[2..],
        vec![
            (
                Role::Assistant,
                vec![
                    (Thought, "Where is it?\nLook.\n"),
                    (
                        Action,
                        "<function=bash>\n<parameter=command>ls</parameter>\n</function>"
                    )
                ]
            ),
            (
                Role::Tool,
                vec![(Observation, "<returncode>0</returncode>")]
            ),
            (Role::Assistant, vec![(Thought, "```bash\npwd\n```")]),
            (Role::User, vec![(Observation, "No tool calls found.")]),
            (Role::User, vec![(Observation, "diff")]),
        ]
    );
    // `exit` is mini-swe-agent's: elsewhere it is an unknown role.
    let e = parse_chat(
        &json!({"messages": [{"role": "exit", "content": "x"}]}),
        "c.jsonl",
        1,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("$.messages[0].role"));
}

#[test]
fn reasoning_content_is_a_thought_before_the_content() {
    let v = json!({"messages": [
        {"role": "assistant", "reasoning_content": "think\n", "content": "```bash\nls\n```"},
        {"role": "assistant", "reasoning_content": "only", "content": null}
    ]});
    let t = parse_chat(&v, "c.jsonl", 1).unwrap();
    assert_eq!(t.format, "chat");
    assert_eq!(
        shape(&t),
        vec![
            (
                Role::Assistant,
                vec![(Thought, "think\n"), (Action, "```bash\nls\n```")]
            ),
            (Role::Assistant, vec![(Thought, "only\n")]),
        ]
    );
}

#[test]
fn bare_message_list_is_one_mini_swe_agent_trajectory() {
    let d = tempfile::tempdir().unwrap();
    let list = json!([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": "T\n```bash\nls\n```"},
        {"role": "user", "content": "<returncode>0</returncode>"}
    ]);
    let p = write(d.path(), "early.traj.json", list.to_string().as_bytes());
    assert_eq!(sniff(&list), Some(TrajectoryFormat::Chat));
    for format in [TrajectoryFormat::Auto, TrajectoryFormat::Chat] {
        let items: Vec<_> = read_trajectories(std::slice::from_ref(&p), format)
            .unwrap()
            .collect();
        assert_eq!(items.len(), 1);
        let t = items[0].as_ref().unwrap();
        assert_eq!(
            (t.id.as_str(), t.line, t.format),
            ("early", 0, "mini-swe-agent")
        );
        assert_eq!(t.action_count(), 1);
        assert_eq!(t.messages[3].segments[0].kind, Observation);
    }
}

#[test]
fn nebius_system_prompt_and_llm_completion_response() {
    let v = json!({"trajectory": [
        {"role": "system", "text": null, "system_prompt": "SETTING: sys"},
        {"role": "user", "text": "issue"}
    ]});
    let t = parse_chat(&v, "n.json", 1).unwrap();
    assert_eq!(t.format, "nebius");
    assert_eq!(shape(&t)[0], (Role::System, vec![(Prompt, "SETTING: sys")]));
    let v = json!({
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "task"}]}
        ],
        "response": {"choices": [{"message": {"role": "assistant", "content": "Done.",
            "tool_calls": [{"id": "t", "type": "function", "function": {"name": "finish", "arguments": "{}"}}]}}]}
    });
    let t = parse_chat(&v, "l.json", 0).unwrap();
    assert_eq!(t.format, "llm-completion");
    assert_eq!(
        shape(&t),
        vec![
            (Role::System, vec![(Prompt, "sys")]),
            (Role::User, vec![(Prompt, "task")]),
            (
                Role::Assistant,
                vec![
                    (Thought, "Done.\n"),
                    (Action, "<function=finish>\n</function>")
                ]
            ),
        ]
    );
}

#[test]
fn swe_agent_submit_only_in_trajectory_and_demos() {
    let v = json!({
        "history": [
            {"role": "system", "content": "sys", "message_type": "system_prompt"},
            // 1.x demonstrations put in the history: Prompt whatever the role.
            {"role": "assistant", "content": "demo", "is_demo": true, "action": "ls",
             "tool_calls": [{"function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}]},
            {"role": "tool", "content": "a.py", "is_demo": true},
            {"role": "user", "content": "task", "message_type": "observation"},
            {"role": "assistant", "content": "Run it.", "thought": "Run it.", "action": "python a.py",
             "tool_calls": [{"function": {"name": "bash", "arguments": "{\"command\": \"python a.py\"}"}}]},
            {"role": "tool", "content": [{"type": "text", "text": "8.2"}], "cache_control": {"type": "ephemeral"}}
        ],
        "trajectory": [
            {"thought": "Run it.", "action": "python a.py", "observation": "8.2"},
            {"thought": "Done. ", "action": "submit", "observation": "diff"}
        ],
        "replay_config": "{\"agent\": {}}"
    });
    let t = parse_swe_agent(&v, "r.traj", 0).unwrap();
    assert_eq!(t.format, "swe-agent-fncall");
    assert_eq!(
        shape(&t),
        vec![
            (Role::System, vec![(Prompt, "sys")]),
            (Role::Assistant, vec![(Prompt, "demo")]),
            (Role::Tool, vec![(Prompt, "a.py")]),
            // Before any turn of the run: the task, whatever `message_type` says.
            (Role::User, vec![(Prompt, "task")]),
            (
                Role::Assistant,
                vec![
                    (Thought, "Run it.\n"),
                    (
                        Action,
                        "<function=bash>\n<parameter=command>python a.py</parameter>\n</function>"
                    )
                ]
            ),
            (Role::Tool, vec![(Observation, "8.2")]),
            (
                Role::Assistant,
                vec![(Thought, "Done.\n"), (Action, "submit")]
            ),
            (Role::User, vec![(Observation, "diff")]),
        ]
    );
    // Without function calling the appended step is fenced like the history's actions.
    let v = json!({
        "history": [
            {"role": "user", "content": "task"},
            {"role": "assistant", "content": "Look.\n<command>\nls\n</command>", "thought": "Look.", "action": "ls\n"},
            {"role": "user", "content": "a.py"}
        ],
        "trajectory": [
            {"thought": "Look.", "action": "ls\n", "observation": "a.py"},
            {"thought": "Done.", "action": "submit\n", "observation": "diff"}
        ]
    });
    let t = parse_swe_agent(&v, "r.traj", 0).unwrap();
    assert_eq!(t.format, "swe-agent");
    assert_eq!(
        shape(&t)[1..],
        vec![
            (
                Role::Assistant,
                vec![(Thought, "Look.\n"), (Action, "<command>\nls\n</command>")]
            ),
            (Role::User, vec![(Observation, "a.py")]),
            (
                Role::Assistant,
                vec![(Thought, "Done.\n\n"), (Action, "```\nsubmit\n```")]
            ),
            (Role::User, vec![(Observation, "diff")]),
        ]
    );
    assert_eq!(
        marked(&t.messages[1].segments[1]),
        vec!["<command>", "</command>"]
    );
}

// ---------------------------------------------------------------------------------------------
// ShareGPT conversations

#[test]
fn sharegpt_conversations_read_from_and_value_with_function_calls() {
    let record = json!({"id": "s1", "conversations": [
        {"from": "system", "value": "You are an agent."},
        {"from": "human", "value": "Fix the bug."},
        {"from": "gpt", "value": "Look first.\n```bash\nls\n```"},
        {"from": "observation", "value": "utils.py"},
        {"from": "function_call", "value": "{\"name\": \"bash\", \"arguments\": {\"command\": \"cat utils.py\"}}"},
        {"from": "observation", "value": "def f(): pass"},
        {"from": "function_call", "value": "not json"},
    ]});
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sft.jsonl");
    std::fs::write(&p, format!("{record}\n")).unwrap();
    let items: Vec<_> = read_trajectories(&[p], TrajectoryFormat::Auto)
        .unwrap()
        .collect();
    let t = items[0].as_ref().unwrap();
    assert_eq!(t.format, "sharegpt");
    assert_eq!(
        shape(t),
        vec![
            (Role::System, vec![(Prompt, "You are an agent.")]),
            (Role::User, vec![(Prompt, "Fix the bug.")]),
            (
                Role::Assistant,
                vec![(Thought, "Look first.\n"), (Action, "```bash\nls\n```")]
            ),
            (Role::Tool, vec![(Observation, "utils.py")]),
            (
                Role::Assistant,
                vec![(
                    Action,
                    "<function=bash>\n<parameter=command>cat utils.py</parameter>\n</function>"
                )]
            ),
            (Role::Tool, vec![(Observation, "def f(): pass")]),
            (Role::Assistant, vec![(Action, "not json")]),
        ]
    );
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    assert!(
        t.warnings[0].contains("$.conversations[6].value"),
        "{:?}",
        t.warnings
    );
    // A message with neither `role` nor `from` is named by its `role` path.
    let bad = json!({"messages": [{"from": "human", "value": "x"}, {"value": "y"}]});
    let e = parse_chat(&bad, "f.jsonl", 3).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("$.messages[1].role"));
}

/// A JSON array of records is read one element at a time (a dataset may not fit in memory), an
/// array that is one trajectory (an event log) whole, within the whole-file bound.
#[test]
fn json_arrays_of_records_are_streamed_and_event_logs_gathered() {
    let dir = tempfile::tempdir().unwrap();
    let record = |i: usize| {
        json!({"id": format!("r{i}"), "messages": [
            {"role": "user", "content": "task"},
            {"role": "assistant", "content": "```bash\nls\n```"}]})
    };
    // A broken element in the middle is one error item; the rows after it are still read.
    let text = format!(
        "[{},\n{{\"id\": \"bad\", \"messages\": 5}},\n{}]",
        record(0),
        record(2)
    );
    let p = write(dir.path(), "set.json", text.as_bytes());
    let items = read(&[p]);
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().line, 1);
    assert_eq!(items[1].as_ref().unwrap_err().line, 2);
    assert_eq!(items[2].as_ref().unwrap().id, "r2");
    // An event log stays one trajectory.
    let log = json!([
        {"id": 1, "source": "user", "action": "message", "args": {"content": "task"}},
        {"id": 2, "source": "agent", "action": "run", "args": {"command": "ls", "thought": ""}},
        {"id": 3, "source": "environment", "observation": "run", "content": "a.py", "extras": {}}
    ]);
    let p = write(dir.path(), "log.json", log.to_string().as_bytes());
    let items = read(&[p]);
    assert_eq!(items.len(), 1);
    let t = items[0].as_ref().unwrap();
    assert_eq!((t.line, t.action_count()), (0, 1));
}
