//! Conformance of the chat, mini-swe-agent and SWE-agent readers on real trajectory files
//! written by those projects (`../shared/real-trajectories`, described in its `SOURCES.md`):
//! every file is read whole, with no error items, and each trajectory's format name, segment
//! counts by kind and first and last Action are pinned. The counts were derived from each
//! format's semantics (`docs/trajectory-formats.md`) by reading the files independently, not
//! from this reader's output.

use std::path::{Path, PathBuf};

use hesnr::data::trajectory::read::{
    read_trajectories, read_trajectories_with, ReadOptions, TrajectoryFormat,
};
use hesnr::data::trajectory::{Role, SegmentKind, Trajectory};

/// The corpus folder, or `None` (the test prints "skipped") when it is absent.
fn corpus() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/real-trajectories"
    ));
    if dir.is_dir() {
        Some(dir.to_path_buf())
    } else {
        eprintln!("skipped: {} absent", dir.display());
        None
    }
}

/// Every trajectory of the file, failing on any error item.
fn read_all(path: &Path, options: ReadOptions) -> Vec<Trajectory> {
    read_trajectories_with(&[path.to_path_buf()], options)
        .unwrap()
        .map(|item| item.unwrap_or_else(|e| panic!("error item in {}: {e}", path.display())))
        .collect()
}

/// Segments by kind: [Prompt, Thought, Action, Observation].
fn counts(t: &Trajectory) -> [usize; 4] {
    let mut c = [0; 4];
    for s in t.messages.iter().flat_map(|m| &m.segments) {
        c[match s.kind {
            SegmentKind::Prompt => 0,
            SegmentKind::Thought => 1,
            SegmentKind::Action => 2,
            SegmentKind::Observation => 3,
        }] += 1;
    }
    c
}

fn actions(t: &Trajectory) -> Vec<&str> {
    t.messages
        .iter()
        .flat_map(|m| &m.segments)
        .filter(|s| s.kind == SegmentKind::Action)
        .map(|s| s.text.as_str())
        .collect()
}

/// What one trajectory of a file must read as.
struct Expect {
    id: &'static str,
    format: &'static str,
    /// [Prompt, Thought, Action, Observation] segments.
    counts: [usize; 4],
    first: &'static str,
    last: &'static str,
}

/// Reads `rel` (under the corpus) through the public `read_trajectories` and compares every
/// trajectory, in order, with `expected`.
fn check(rel: &str, expected: &[Expect]) {
    let Some(dir) = corpus() else { return };
    let path = dir.join(rel);
    let items: Vec<_> = read_trajectories(std::slice::from_ref(&path), TrajectoryFormat::Auto)
        .unwrap()
        .collect();
    let errors: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(errors.is_empty(), "{rel}: error items {errors:?}");
    let trajs: Vec<&Trajectory> = items.iter().map(|i| i.as_ref().unwrap()).collect();
    assert_eq!(trajs.len(), expected.len(), "{rel}: number of trajectories");
    for (t, e) in trajs.iter().zip(expected) {
        assert_eq!(t.id, e.id, "{rel}");
        assert_eq!(t.format, e.format, "{rel} {}", t.id);
        assert_eq!(counts(t), e.counts, "{rel} {}: [P, T, A, O]", t.id);
        let a = actions(t);
        assert_eq!(
            a.first().copied(),
            Some(e.first),
            "{rel} {}: first action",
            t.id
        );
        assert_eq!(
            a.last().copied(),
            Some(e.last),
            "{rel} {}: last action",
            t.id
        );
        assert!(t.warnings.is_empty(), "{rel} {}: {:?}", t.id, t.warnings);
    }
}

#[test]
fn swe_agent_function_calling_simple() {
    check(
        "swe-agent/function_calling_simple.traj",
        &[
            Expect {
                id: "function_calling_simple",
                format: "swe-agent-fncall",
                counts: [2, 5, 5, 5],
                first: "<function=find_file>\n<parameter=file_name>missing_colon.py</parameter>\n</function>",
                last: "<function=submit>\n</function>",
            },
        ],
    );
}

#[test]
fn swe_agent_marshmallow_1867_default_install_from_source() {
    check(
        "swe-agent/marshmallow-1867.default_install_from_source.traj",
        &[Expect {
            id: "marshmallow-1867.default_install_from_source",
            format: "swe-agent",
            counts: [2, 14, 14, 13],
            first: "```\nls -F\n```",
            last: "```\nsubmit\n```",
        }],
    );
}

#[test]
fn swe_agent_marshmallow_1867_fncall_replace_from_source() {
    check(
        "swe-agent/marshmallow-1867.fncall_replace_from_source.traj",
        &[Expect {
            id: "marshmallow-1867.fncall_replace_from_source",
            format: "swe-agent-fncall",
            counts: [2, 13, 13, 13],
            first: "<function=bash>\n<parameter=command>ls -F</parameter>\n</function>",
            last: "<function=submit>\n</function>",
        }],
    );
}

#[test]
fn swe_agent_pydicom_pydicom_1458_gpt4() {
    check(
        "swe-agent/pydicom__pydicom-1458.gpt4.traj",
        &[Expect {
            id: "pydicom__pydicom-1458.gpt4",
            format: "swe-agent",
            counts: [3, 12, 12, 11],
            first: "```\ncreate reproduce_bug.py\n```",
            last: "```\nsubmit\n```",
        }],
    );
}

#[test]
fn swe_agent_swe_agent_test_repo_i1_gpt4() {
    check(
        "swe-agent/swe-agent__test-repo-i1.gpt4.traj",
        &[Expect {
            id: "swe-agent__test-repo-i1.gpt4",
            format: "swe-agent",
            counts: [3, 5, 5, 4],
            first: "```\nfind_file \"missing_colon.py\"\n```",
            last: "```\nsubmit\n```",
        }],
    );
}

#[test]
fn swe_agent_sweagenttestrepo_1c2844_fncall() {
    check(
        "swe-agent/sweagenttestrepo-1c2844.fncall.traj",
        &[
            Expect {
                id: "sweagenttestrepo-1c2844.fncall",
                format: "swe-agent-fncall",
                counts: [2, 5, 5, 5],
                first: "<function=find_file>\n<parameter=file_name>missing_colon.py</parameter>\n</function>",
                last: "submit",
            },
        ],
    );
}

#[test]
fn swe_agent_swesmith_pandas_dev_pandas_95280573_pr_53856() {
    check(
        "swe-agent/swesmith.pandas-dev__pandas.95280573.pr_53856.traj",
        &[
            Expect {
                id: "swesmith.pandas-dev__pandas.95280573.pr_53856",
                format: "swe-agent-fncall",
                counts: [2, 17, 17, 17],
                first: "<function=bash>\n<parameter=command>find /testbed -type f -name \"*.py\" | grep -v \"__pycache__\" | grep -E \"sql|arrow\" | sort</parameter>\n</function>",
                last: "<function=submit>\n</function>",
            },
        ],
    );
}

#[test]
fn mini_swe_agent_deepseek_chat_toolcall_django_django_11099() {
    check(
        "mini-swe-agent/deepseek-chat.toolcall.django__django-11099.traj.json",
        &[
            Expect {
                id: "django__django-11099",
                format: "mini-swe-agent-toolcall",
                counts: [2, 35, 42, 42],
                first: "<function=bash>\n<parameter=command>find . -type f -name \"*.py\" | grep -i validator | head -20</parameter>\n</function>",
                last: "<function=bash>\n<parameter=command>echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && cat patch.txt</parameter>\n</function>",
            },
        ],
    );
}

#[test]
fn mini_swe_agent_early_2025_07_test_repo() {
    check(
        "mini-swe-agent/early-2025-07.test-repo.traj.json",
        &[
            Expect {
                id: "early-2025-07.test-repo",
                format: "mini-swe-agent",
                counts: [2, 10, 10, 10],
                first: "```bash\ncat /Users/fuchur/Documents/24/git_sync/swe-agent-test-repo/tests/./missing_colon.py\n```",
                last: "```bash\necho NANO_SWE_AGENT_FINAL_OUTPUT && git add -A && git diff --cached\n```",
            },
        ],
    );
}

#[test]
fn mini_swe_agent_fixture_v1_github_issue() {
    check(
        "mini-swe-agent/fixture-v1.github_issue.traj.json",
        &[
            Expect {
                id: "fixture-v1.github_issue",
                format: "mini-swe-agent",
                counts: [2, 10, 10, 10],
                first: "```bash\ncat /Users/fuchur/Documents/24/git_sync/swe-agent-test-repo/tests/./missing_colon.py\n```",
                last: "```bash\necho MINI_SWE_AGENT_FINAL_OUTPUT && git add -A && git diff --cached\n```",
            },
        ],
    );
}

#[test]
fn mini_swe_agent_gemini3pro_astropy_astropy_12907() {
    check(
        "mini-swe-agent/gemini3pro.astropy__astropy-12907.traj.json",
        &[
            Expect {
                id: "astropy__astropy-12907",
                format: "mini-swe-agent",
                counts: [2, 20, 20, 20],
                first: "```bash\nls -R\n```",
                last: "```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached\n```",
            },
        ],
    );
}

#[test]
fn mini_swe_agent_gemini3pro_django_django_11299() {
    check(
        "mini-swe-agent/gemini3pro.django__django-11299.traj.json",
        &[
            Expect {
                id: "django__django-11299",
                format: "mini-swe-agent",
                counts: [2, 49, 38, 49],
                first: "```bash\nls -la\n```",
                last: "```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached\n```",
            },
        ],
    );
}

#[test]
fn openai_chat_adp_nebius_swe_agent_trajectories_sample_raw() {
    check(
        "openai-chat/adp.nebius_SWE-agent-trajectories.sample_raw.json",
        &[
            Expect {
                id: "tomerfiliba__plumbum-366_17",
                format: "nebius",
                counts: [2, 6, 6, 5],
                first: "```\nls -F\n```",
                last: "```\nsubmit\n```",
            },
            Expect {
                id: "tempoCollaboration__OQuPy-74_55",
                format: "nebius",
                counts: [2, 14, 14, 13],
                first: "```\ncreate reproduce.py\n```",
                last: "```\nsubmit\n```",
            },
            Expect {
                id: "marshmallow-code__apispec-811_21",
                format: "nebius",
                counts: [2, 5, 5, 4],
                first: "```\ngrep -r \"class OpenAPIConverter\" src\n```",
                last: "```\nsubmit\n```",
            },
            Expect {
                id: "brightway-lca__brightway2-analyzer-19_23",
                format: "nebius",
                counts: [2, 8, 8, 7],
                first: "```\nfind_file \"contribution.py\" .\n```",
                last: "```\nsubmit\n```",
            },
            Expect {
                id: "ReviewNB__treon-25_38",
                format: "nebius",
                counts: [2, 16, 16, 15],
                first: "```\nfind_file \"*.py\"\n```",
                last: "```\nsubmit\n```",
            },
        ],
    );
}

#[test]
fn openai_chat_adp_swe_gym_openhands_sampled_trajectories_sample_raw() {
    check(
        "openai-chat/adp.swe-gym_openhands_sampled_trajectories.sample_raw.json",
        &[
            Expect {
                id: "python__mypy-15976_0",
                format: "chat",
                counts: [4, 8, 21, 20],
                first: "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/workspace/python__mypy__1.6</parameter>\n<parameter=view_range>[0,-1]</parameter>\n</function>",
                last: "<function=finish>\n</function>",
            },
            Expect {
                id: "Project-MONAI__MONAI-5686_4",
                format: "chat",
                counts: [4, 6, 9, 8],
                first: "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/workspace/Project-MONAI__MONAI__1.1</parameter>\n<parameter=view_range>[0,50]</parameter>\n</function>",
                last: "<function=finish>\n</function>",
            },
            Expect {
                id: "Project-MONAI__MONAI-6849_1",
                format: "chat",
                counts: [4, 4, 11, 10],
                first: "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/workspace/Project-MONAI__MONAI__1.2</parameter>\n<parameter=view_range>[0,20]</parameter>\n</function>",
                last: "<function=finish>\n</function>",
            },
            Expect {
                id: "getmoto__moto-6387_0",
                format: "chat",
                counts: [3, 10, 17, 16],
                first: "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/workspace/getmoto__moto__4.1</parameter>\n</function>",
                last: "<function=finish>\n</function>",
            },
            Expect {
                id: "Project-MONAI__MONAI-3715_4",
                format: "chat",
                counts: [3, 11, 29, 28],
                first: "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/workspace/Project-MONAI__MONAI__0.8</parameter>\n<parameter=view_range>[0,20]</parameter>\n</function>",
                last: "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/workspace/Project-MONAI__MONAI__0.8/reproduce_error.py</parameter>\n</function>",
            },
        ],
    );
}

#[test]
fn openai_chat_openhands_llm_completion_astropy_astropy_12907() {
    check(
        "openai-chat/openhands-llm_completion.astropy__astropy-12907.json",
        &[
            Expect {
                id: "openhands-llm_completion.astropy__astropy-12907",
                format: "llm-completion",
                counts: [3, 9, 9, 8],
                first: "<function=execute_bash>\n<parameter=command>ls -R /workspace/astropy__astropy__4.3</parameter>\n</function>",
                last: "<function=finish>\n</function>",
            },
        ],
    );
}

#[test]
fn openai_chat_swesmith_ft_xml_example() {
    check(
        "openai-chat/swesmith.ft_xml_example.jsonl",
        &[
            Expect {
                id: "pandas-dev__pandas.95280573.pr_53652",
                format: "chat",
                counts: [2, 37, 37, 36],
                first: "<function=bash>\n<parameter=command>find /testbed -type f -name \"*.py\" | grep -v \"__pycache__\" | grep -v \"test_\" | head -20</parameter>\n</function>",
                last: "<function=submit>\n</function>",
            },
            Expect {
                id: "getmoto__moto.694ce1f4.pr_7331",
                format: "chat",
                counts: [2, 44, 44, 43],
                first: "<function=bash>\n<parameter=command>find /testbed -type f -name \"*.py\" | grep -v \"__pycache__\" | sort</parameter>\n</function>",
                last: "<function=submit>\n</function>",
            },
            Expect {
                id: "pydantic__pydantic.acb0f10f.pr_8316",
                format: "chat",
                counts: [2, 22, 22, 21],
                first: "<function=bash>\n<parameter=command>find /testbed -type f -name \"*.py\" | grep -i alias</parameter>\n</function>",
                last: "<function=submit>\n</function>",
            },
        ],
    );
}

/// The 11 turns of gemini3pro.django__django-11299 with several ```bash blocks were answered
/// "Please always provide EXACTLY ONE action" and never run: Thought by default, their blocks
/// Actions with `score_rejected_actions`; the format-error replies are Observations either way.
#[test]
fn mini_swe_agent_rejected_turns_both_ways() {
    let Some(dir) = corpus() else { return };
    let path = dir.join("mini-swe-agent/gemini3pro.django__django-11299.traj.json");
    let by_default = read_all(&path, ReadOptions::default());
    let t = &by_default[0];
    let silent_turns: Vec<usize> = t
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::Assistant)
        .filter(|(_, m)| m.segments.iter().all(|s| s.kind == SegmentKind::Thought))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        silent_turns,
        vec![32, 48, 58, 62, 64, 66, 68, 70, 72, 74, 76]
    );
    for i in silent_turns {
        let reply = &t.messages[i + 1];
        assert_eq!(reply.role, Role::User);
        assert_eq!(reply.segments[0].kind, SegmentKind::Observation);
        assert!(reply
            .content()
            .starts_with("Please always provide EXACTLY ONE action in triple backticks"));
    }
    let scored = read_all(
        &path,
        ReadOptions {
            score_rejected_actions: true,
            ..ReadOptions::default()
        },
    );
    // 2+2+2+3+5+7+2+5+2+2+3 = 35 rejected blocks on top of the 38 accepted ones.
    assert_eq!(counts(&scored[0]), [2, 73, 73, 49]);
    assert_eq!(actions(&scored[0]).len(), 38 + 35);
}

/// SWE-agent 0.x: the demonstration (`is_demo`) is one Prompt, its fenced actions included.
#[test]
fn swe_agent_demonstration_is_prompt() {
    let Some(dir) = corpus() else { return };
    let t = &read_all(
        &dir.join("swe-agent/pydicom__pydicom-1458.gpt4.traj"),
        ReadOptions::default(),
    )[0];
    let demo = &t.messages[1];
    assert_eq!(demo.segments.len(), 1);
    assert_eq!(demo.segments[0].kind, SegmentKind::Prompt);
    assert!(demo.content().starts_with("Here is a demonstration"));
    assert!(demo.content().contains("```"));
}

/// SWE-agent 1.x function calling: the `submit` step is only in `trajectory[]`; it is appended
/// with its observation (the diff).
#[test]
fn swe_agent_submit_only_in_steps_is_appended() {
    let Some(dir) = corpus() else { return };
    let t = &read_all(
        &dir.join("swe-agent/sweagenttestrepo-1c2844.fncall.traj"),
        ReadOptions::default(),
    )[0];
    let n = t.messages.len();
    assert_eq!(n, 12);
    let submit = &t.messages[n - 2];
    assert_eq!(submit.role, Role::Assistant);
    assert_eq!(
        submit.content(),
        "The script `missing_colon.py` ran successfully and the output was `8.2`, indicating \
         that the syntax error has been fixed. The function `division` is now working \
         correctly. \n\nI will now submit the changes to finalize the fix.\nsubmit"
    );
    let diff = &t.messages[n - 1];
    assert_eq!(diff.segments[0].kind, SegmentKind::Observation);
    assert!(diff
        .content()
        .starts_with("\r\ndiff --git a/tests/missing_colon.py"));
}

/// mini-swe-agent tool calling: the final `exit` message (the submission) is a user
/// Observation.
#[test]
fn mini_swe_agent_exit_message_is_the_last_observation() {
    let Some(dir) = corpus() else { return };
    let t = &read_all(
        &dir.join("mini-swe-agent/deepseek-chat.toolcall.django__django-11099.traj.json"),
        ReadOptions::default(),
    )[0];
    let last = t.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert_eq!(last.segments.len(), 1);
    assert_eq!(last.segments[0].kind, SegmentKind::Observation);
    let submission = t.metadata.as_ref().unwrap()["submission"].as_str().unwrap();
    assert_eq!(last.content(), submission);
}

/// nebius rows: the system prompt is in `system_prompt` (with `text` null).
#[test]
fn nebius_system_prompt_is_present() {
    let Some(dir) = corpus() else { return };
    let trajs = read_all(
        &dir.join("openai-chat/adp.nebius_SWE-agent-trajectories.sample_raw.json"),
        ReadOptions::default(),
    );
    for t in &trajs {
        let system = &t.messages[0];
        assert_eq!(system.role, Role::System);
        assert_eq!(system.segments[0].kind, SegmentKind::Prompt);
        assert!(system
            .content()
            .starts_with("SETTING: You are an autonomous programmer"));
    }
}

/// LLM-completion log: the answer in `response.choices[0].message` is the last message.
#[test]
fn llm_completion_response_is_appended() {
    let Some(dir) = corpus() else { return };
    let t = &read_all(
        &dir.join("openai-chat/openhands-llm_completion.astropy__astropy-12907.json"),
        ReadOptions::default(),
    )[0];
    let last = t.messages.last().unwrap();
    assert_eq!(last.role, Role::Assistant);
    let kinds: Vec<SegmentKind> = last.segments.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![SegmentKind::Thought, SegmentKind::Action]);
    assert!(last.segments[0]
        .text
        .starts_with("I believe I have successfully solved the task."));
}
