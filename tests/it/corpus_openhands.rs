//! Conformance of the OpenHands reader with the real OpenHands files of the corpus
//! (`../shared/real-trajectories/openhands`, described in its SOURCES.md): each file is read
//! whole through the public reader, and what it becomes is pinned per trajectory (format name,
//! message count, segments by kind, the exact first and last Action). The numbers were counted
//! independently over the JSON following the documented semantics (every non-bookkeeping action
//! except `system`, `message`, `think` is one Action; one assistant message per model reply),
//! not copied from the reader's output.

use std::path::PathBuf;

use hesnr::data::trajectory::read::{read_trajectories, TrajectoryFormat};
use hesnr::data::trajectory::{SegmentKind, Trajectory};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/real-trajectories");

/// What one trajectory of a file must become.
struct Expected {
    id: &'static str,
    format: &'static str,
    messages: usize,
    prompt_thought_action_observation: [usize; 4],
    first_action: &'static str,
    last_action: &'static str,
}

fn segments_of(t: &Trajectory, kind: SegmentKind) -> Vec<&str> {
    t.messages
        .iter()
        .flat_map(|m| &m.segments)
        .filter(|s| s.kind == kind)
        .map(|s| s.text.as_str())
        .collect()
}

/// Reads `openhands/{file}` and checks every trajectory against `expected`, in order; `None`
/// (after saying so) when the corpus is absent.
fn check(file: &str, expected: &[Expected]) -> Option<Vec<Trajectory>> {
    let path = PathBuf::from(CORPUS).join("openhands").join(file);
    if !path.exists() {
        eprintln!("skipped: {} absent", path.display());
        return None;
    }
    let items: Vec<_> = read_trajectories(&[path], TrajectoryFormat::Auto)
        .unwrap()
        .collect();
    let errors: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors, Vec::<String>::new(), "{file}: error items");
    let trajectories: Vec<Trajectory> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(trajectories.len(), expected.len(), "{file}: trajectories");
    for (t, e) in trajectories.iter().zip(expected) {
        assert_eq!(t.id, e.id, "{file}");
        assert_eq!(t.format, e.format, "{file} {}", e.id);
        assert_eq!(t.messages.len(), e.messages, "{file} {}: messages", e.id);
        let counts = [
            SegmentKind::Prompt,
            SegmentKind::Thought,
            SegmentKind::Action,
            SegmentKind::Observation,
        ]
        .map(|kind| segments_of(t, kind).len());
        assert_eq!(
            counts, e.prompt_thought_action_observation,
            "{file} {}: [prompt, thought, action, observation] segments",
            e.id
        );
        let actions = segments_of(t, SegmentKind::Action);
        assert_eq!(
            actions.first().copied(),
            Some(e.first_action),
            "{file} {}",
            e.id
        );
        assert_eq!(
            actions.last().copied(),
            Some(e.last_action),
            "{file} {}",
            e.id
        );
        assert_eq!(
            t.warnings,
            Vec::<String>::new(),
            "{file} {}: warnings",
            e.id
        );
    }
    Some(trajectories)
}

/// Evaluation output of the current event form: system prompt and recall as events, `think`,
/// `error` observations, `finish` with the model's tool-call arguments.
#[test]
fn multi_swe_bench_output_event_log() {
    let Some(ts) = check(
        "multi_swe_bench.ponyc.output.jsonl",
        &[
        Expected {
            id: "ponylang__ponyc-4595",
            format: "openhands",
            messages: 47,
            prompt_thought_action_observation: [2, 23, 22, 21],
            first_action: "<function=execute_bash>\n<parameter=command>ls -l /workspace/ponylang__ponyc__0.1</parameter>\n</function>",
            last_action: "<function=finish>\n<parameter=message>The issue with the `ponyc` compiler segfaulting when using a single-element tuple in a `match` statement has been addressed by modifying the `idseqsingle` rule in `parser.c`. However, the `ponyc` compiler was not built successfully, so the fix could not be verified.</parameter>\n<parameter=task_completed>partial</parameter>\n</function>",
        },
        Expected {
            id: "ponylang__ponyc-4593",
            format: "openhands",
            messages: 68,
            prompt_thought_action_observation: [2, 33, 33, 28],
            first_action: "<function=execute_bash>\n<parameter=command>ls /workspace/ponylang__ponyc__0.1</parameter>\n</function>",
            last_action: "<function=finish>\n<parameter=message>Unable to make necessary changes to the file /workspace/ponylang__ponyc__0.1/packages/cli/command_parser.pony using the str_replace_editor tool. The issue is related to the handling of parent default options when parsing a subcommand.</parameter>\n<parameter=task_completed>false</parameter>\n</function>",
        },
        Expected {
            id: "ponylang__ponyc-4588",
            format: "openhands",
            messages: 101,
            prompt_thought_action_observation: [2, 49, 48, 48],
            first_action: "<function=execute_bash>\n<parameter=command>cd /workspace/ponylang__ponyc__0.1 && ls -l</parameter>\n</function>",
            last_action: "<function=execute_bash>\n<parameter=command>apt-get install -y libgtest-dev</parameter>\n</function>",
        },
        ],
    ) else {
        return;
    };
    // The record's instruction is the first user message's text: it is that Prompt, once (two
    // Prompts: the system prompt and the instruction).
    let text = std::fs::read_to_string(
        PathBuf::from(CORPUS).join("openhands/multi_swe_bench.ponyc.output.jsonl"),
    )
    .unwrap();
    for (t, line) in ts.iter().zip(text.lines()) {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let instruction = record["instruction"].as_str().unwrap();
        assert_eq!(segments_of(t, SegmentKind::Prompt)[1], instruction);
    }
}

/// Resolver output in the old compact form: no `id` or `source`, the action's fields at the
/// top level of each event.
#[test]
fn resolver_output_compact_events() {
    check(
        "resolver.mock_output.jsonl",
        &[
        Expected {
            id: "resolver.mock_output.jsonl:1",
            format: "openhands-compact",
            messages: 8,
            prompt_thought_action_observation: [1, 4, 4, 3],
            first_action: "<function=execute_bash>\n<parameter=command>touch LICENSE</parameter>\n</function>",
            last_action: "<function=finish>\n</function>",
        },
        Expected {
            id: "resolver.mock_output.jsonl:2",
            format: "openhands-compact",
            messages: 44,
            prompt_thought_action_observation: [1, 22, 22, 21],
            first_action: "<function=execute_bash>\n<parameter=command>ls -R /workspace</parameter>\n</function>",
            last_action: "<function=finish>\n</function>",
        },
        ],
    );
}

/// A GUI session replay: state-change events and `null` observations are left out, the agent's
/// closing `message` is a Thought.
#[test]
fn runtime_replay_event_list() {
    let Some(ts) = check(
        "runtime_traj.basic_gui_mode.json",
        &[
        Expected {
            id: "runtime_traj.basic_gui_mode",
            format: "openhands",
            messages: 10,
            prompt_thought_action_observation: [1, 5, 4, 3],
            first_action: "<function=execute_bash>\n<parameter=command>mkdir -p /workspace/todo-app</parameter>\n</function>",
            last_action: "<function=execute_bash>\n<parameter=command>cd /workspace/todo-app && python3 -m http.server 8000</parameter>\n</function>",
        },
        ],
    ) else {
        return;
    };
    let last = ts[0].messages.last().unwrap();
    assert_eq!(
        last.segments.iter().map(|s| s.kind).collect::<Vec<_>>(),
        vec![SegmentKind::Thought]
    );
    assert!(last
        .content()
        .starts_with("I've created a complete Vue.js todo application"));
}
