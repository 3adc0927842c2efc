//! The trajectory eval pipeline on tiny random-weight models: the engine path, the presets, the
//! window policy, and the command line with bad input.

use std::path::Path;

use crate::common::{default_tiny, hesnr, run_hesnr, scratch, shift, strided};
use hesnr::data::trajectory::mask::{Preset, TokenRule};
use hesnr::data::trajectory::read::parse_chat;
use hesnr::data::trajectory::render::{render, ChatTemplate};
use hesnr::data::trajectory::Trajectory;
use hesnr::engine::llama::{LlamaCppBackend, LlamaOptions};
use hesnr::engine::{score_tokens, Backend, Windowing};
use hesnr::metrics::MetricConfig;
use hesnr::pipeline::eval::{eval_trajectory, EvalSettings};
use hesnr::pipeline::score::ScoreSettings;
use serde_json::{json, Value};

fn backend(window: usize) -> LlamaCppBackend {
    LlamaCppBackend::load(
        &default_tiny(),
        &LlamaOptions {
            threads: Some(2),
            window: Some(window),
            ubatch: 64,
            ..Default::default()
        },
    )
    .expect("load tiny model")
}

fn settings(window: usize, presets: &[Preset]) -> EvalSettings {
    with_windowing(strided(window, window / 2), presets)
}

fn with_windowing(windowing: Windowing, presets: &[Preset]) -> EvalSettings {
    EvalSettings {
        score: ScoreSettings {
            metrics: MetricConfig::default(),
            windowing,
        },
        presets: presets.to_vec(),
        token_rule: TokenRule::All,
    }
}

fn tool_call(id: &str, name: &str, args: Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

/// A small bug-fix trajectory in OpenAI chat form; `steps` repeats the edit/test loop.
fn chat_record(id: &str, steps: usize) -> Value {
    let mut messages = vec![
        json!({"role": "system", "content": "You are a software engineering agent."}),
        json!({"role": "user", "content": "last() in utils.py returns the wrong element; fix it."}),
    ];
    for i in 0..steps {
        messages.push(json!({"role": "assistant", "content": format!("Step {i}: look at the file first."),
            "tool_calls": [tool_call(&format!("a{i}"), "execute_bash", json!({"command": "cat -n utils.py  # show it"}))]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("a{i}"), "content": "     1\tdef last(xs):\n     2\t    return xs[len(xs)]\n"}));
        messages.push(json!({"role": "assistant", "content": "Index out of range: use -1.",
            "tool_calls": [tool_call(&format!("b{i}"), "str_replace_editor", json!({
                "command": "str_replace", "path": "utils.py",
                "old_str": "    return xs[len(xs)]",
                "new_str": "    # the last element, not one past it\n    return xs[-1]  # fixed\n"}))]}));
        messages.push(json!({"role": "tool", "tool_call_id": format!("b{i}"), "content": "The file utils.py has been edited."}));
    }
    messages.push(json!({"role": "assistant", "content": "Done.", "tool_calls": [tool_call("z", "submit", json!({}))]}));
    json!({"id": id, "messages": messages, "metadata": {"resolved": true}})
}

fn trajectory(id: &str, steps: usize) -> Trajectory {
    parse_chat(&chat_record(id, steps), "test.jsonl", 1).expect("valid trajectory")
}

/// Under both window policies, and with the text longer than the window (64) or not (256).
#[test]
fn selected_positions_equal_plain_scoring_of_the_rendered_text() {
    let traj = trajectory("t", 3);
    for (window, windowing) in [256, 64]
        .into_iter()
        .flat_map(|w| [(w, strided(w, w / 2)), (w, shift(w, 4))])
    {
        let mut b = backend(window);
        let template = ChatTemplate::chatml();
        let s = with_windowing(windowing, &Preset::ALL);
        let e = eval_trajectory(&mut b, &template, &traj, &s).unwrap();
        // The same text through the plain document path, every position computed.
        let rendered = render(&traj, &template).unwrap();
        let tokens = b.tokenize_chat(&rendered.text).unwrap();
        assert_eq!(tokens, e.tokens);
        let all = score_tokens(&mut b, &tokens, &windowing, 10).unwrap();
        let mut compared = 0;
        for (i, p) in e.positions.iter().enumerate() {
            if let Some(p) = p {
                assert_eq!(p, &all[i], "{windowing:?}, position {}", i + 1);
                compared += 1;
            }
        }
        let union = (0..tokens.ids.len())
            .filter(|&t| e.presets.iter().any(|r| r.scored[t]))
            .count();
        assert_eq!(compared, union);
        assert!(compared > 0 && compared < all.len());
    }
}

#[test]
fn presets_nest_and_thoughts_are_disjoint_from_actions() {
    let traj = trajectory("t", 2);
    let mut b = backend(256);
    let e = eval_trajectory(
        &mut b,
        &ChatTemplate::chatml(),
        &traj,
        &settings(256, &Preset::ALL),
    )
    .unwrap();
    let scored = |p: Preset| &e.presets.iter().find(|r| r.preset == p).unwrap().scored;
    let subset = |a: &[bool], b: &[bool]| a.iter().zip(b).all(|(&x, &y)| !x || y);
    let count = |m: &[bool]| m.iter().filter(|&&x| x).count();
    let chain = [
        Preset::Full,
        Preset::ActionWhitespace,
        Preset::ActionMarkup,
        Preset::Action,
    ];
    for w in chain.windows(2) {
        assert!(
            subset(scored(w[0]), scored(w[1])),
            "{:?} within {:?}",
            w[0],
            w[1]
        );
        assert!(
            count(scored(w[0])) < count(scored(w[1])),
            "{:?} removes something",
            w[0]
        );
    }
    assert!(scored(Preset::Thought)
        .iter()
        .zip(scored(Preset::Action))
        .all(|(&t, &a)| !(t && a)));
    // Each preset's accumulator counts exactly its scored tokens.
    for r in &e.presets {
        assert_eq!(r.acc.scored as usize, count(&r.scored), "{:?}", r.preset);
    }
    // The comment text of the edit is not scored under `full`, and is under `action`.
    let text = &e.rendered.text;
    let comment_at = text.find("# the last element").unwrap();
    let covering = e
        .tokens
        .offsets
        .iter()
        .position(|r| r.start <= comment_at + 2 && comment_at + 2 < r.end)
        .unwrap();
    assert!(!scored(Preset::Full)[covering]);
    assert!(scored(Preset::Action)[covering]);
}

#[test]
fn a_long_trajectory_is_windowed_and_scores_the_same_positions() {
    // ~40 steps: far beyond the tiny model's 256-token window.
    let traj = trajectory("long", 40);
    let mut small = backend(256);
    let s = settings(256, &[Preset::Full]);
    let e = eval_trajectory(&mut small, &ChatTemplate::chatml(), &traj, &s).unwrap();
    assert!(
        e.tokens.ids.len() > 8 * 256,
        "{} tokens",
        e.tokens.ids.len()
    );
    let mut big = backend(8192);
    let e2 = eval_trajectory(
        &mut big,
        &ChatTemplate::chatml(),
        &traj,
        &settings(8192, &[Preset::Full]),
    )
    .unwrap();
    assert_eq!(e.presets[0].scored, e2.presets[0].scored);
    assert_eq!(e.presets[0].acc.scored, e2.presets[0].acc.scored);
    assert!(e.positions.iter().flatten().all(|p| p.lse.is_finite()));
}

fn write(dir: &Path, name: &str, content: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), content).unwrap();
}

#[test]
fn bad_trajectories_are_reported_and_the_rest_is_scored() {
    let dir = scratch().join("bad-set");
    let _ = std::fs::remove_dir_all(&dir);
    let good = chat_record("good-1", 1);
    let mut no_action = chat_record("no-action", 0);
    no_action["messages"].as_array_mut().unwrap().pop();
    let mut bad_args = chat_record("bad-args", 1);
    bad_args["messages"][2]["tool_calls"][0]["function"]["arguments"] = json!("{\"command\": \"ls");
    let mut lines = String::new();
    for r in [&good, &no_action, &bad_args] {
        lines.push_str(&r.to_string());
        lines.push('\n');
    }
    lines.push_str("{\"id\": \"truncated\", \"messages\": [{\"role\": \"user\"\n");
    lines.push_str(&chat_record("good-2", 1).to_string());
    lines.push('\n');
    write(&dir, "chat.jsonl", lines.as_bytes());
    write(&dir, "cut.traj", b"{\"trajectory\": [{\"action\": \"ls\"");
    let rows = scratch().join("bad-set-rows.jsonl");
    let out = hesnr(&[
        "eval",
        "-T",
        dir.to_str().unwrap(),
        "-m",
        default_tiny().to_str().unwrap(),
        "-o",
        rows.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["trajectories"], 3, "{summary:#}");
    assert_eq!(summary["skipped"], 3, "{summary:#}");
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains("chat.jsonl:2: trajectory 'no-action': no Action segment"),
        "{errors}"
    );
    assert!(errors.contains("chat.jsonl:4"), "{errors}");
    assert!(errors.contains("cut.traj"), "{errors}");
    // The tool call with broken JSON arguments is kept as raw text, with a warning.
    assert_eq!(summary["warnings"], 1);
    assert!(stderr.contains("bad-args"), "{stderr}");
    let ids: Vec<String> = std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["good-1", "bad-args", "good-2"]);
}

#[test]
fn a_template_that_fails_skips_only_what_it_fails_on() {
    let dir = scratch().join("template-set");
    let _ = std::fs::remove_dir_all(&dir);
    // mini-swe-agent style: no tool role, the action is a fenced bash block.
    let mini = json!({"id": "mini", "messages": [
        {"role": "user", "content": "Fix the bug."},
        {"role": "assistant", "content": "THOUGHT: list the files.\n\n```bash\nls -la  # all\n```"},
        {"role": "user", "content": "<returncode>0</returncode>\n<output>\nutils.py\n</output>"},
    ]});
    let lines = format!("{}\n{}\n", chat_record("with-tools", 1), mini);
    write(&dir, "set.jsonl", lines.as_bytes());
    let template = scratch().join("no-tools.jinja");
    std::fs::write(&template, "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('tool messages are not supported') }}{% endif %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}").unwrap();
    let out = hesnr(&[
        "eval",
        "-T",
        dir.to_str().unwrap(),
        "-m",
        default_tiny().to_str().unwrap(),
        "--chat-template",
        template.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["trajectories"], 1);
    assert_eq!(summary["skipped"], 1);
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains("tool messages are not supported"),
        "{errors}"
    );
    assert!(errors.contains("'with-tools'"), "{errors}");
}

/// A template that doubles a string in a variable takes memory without end while fuel and the
/// output bound see a handful of instructions and no output (issue 13: it aborted the whole run
/// at 7.2 GB). It renders in a worker under `HESNR_MAX_TEMPLATE_MB`: the trajectory that sets it
/// off is skipped with an error naming the bound, and the next one renders in a fresh worker.
#[test]
fn a_template_that_exhausts_memory_skips_only_its_trajectory() {
    let dir = scratch().join("template-memory-set");
    let _ = std::fs::remove_dir_all(&dir);
    let mut boom = chat_record("boom", 1);
    boom["messages"][0]["content"] = json!("BOOM: fix the bug.");
    let lines = format!("{}\n{}\n", boom, chat_record("calm", 1));
    write(&dir, "set.jsonl", lines.as_bytes());
    let template = scratch().join("doubling.jinja");
    std::fs::write(&template, "{% set ns = namespace(s='0123456789abcdef') %}{% for m in messages %}{% if 'BOOM' in m.content %}{% for i in range(48) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{% endif %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}").unwrap();
    let out = run_hesnr(
        &[
            "eval",
            "-T",
            dir.to_str().unwrap(),
            "-m",
            default_tiny().to_str().unwrap(),
            "--chat-template",
            template.to_str().unwrap(),
            "--json",
        ],
        &[("HESNR_MAX_TEMPLATE_MB", "256")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["trajectories"], 1, "{summary}");
    assert_eq!(summary["skipped"], 1, "{summary}");
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains("'boom'")
            && errors.contains("256 MiB")
            && errors.contains("HESNR_MAX_TEMPLATE_MB"),
        "{errors}"
    );
}

#[test]
fn explain_writes_an_escaped_html_page_and_plain_text() {
    let dir = scratch().join("explain-set");
    let mut r = chat_record("x<script>", 1);
    r["messages"][1]["content"] = json!("<script>alert(1)</script> fix it");
    write(&dir, "set.jsonl", format!("{r}\n").as_bytes());
    let html = scratch().join("explain.html");
    let model = default_tiny();
    let set = dir.join("set.jsonl");
    let base = [
        "eval",
        "-T",
        set.to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
    ];
    let out = hesnr(
        &[
            &base[..],
            &["--explain", "x<script>", "--html", html.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<script>"), "unescaped data in the page");
    // The page's text (tags stripped; attribute values are escaped, so they hold no '>').
    let mut text = String::new();
    let mut in_tag = false;
    for c in page.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    assert!(
        // minijinja escapes '/' too (`&#x2f;`), which browsers show as '/'.
        text.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; fix it"),
        "{text}"
    );
    assert!(page.contains("class=\"scored\"") || page.contains("class=\"decision\""));
    let out = hesnr(&[&base[..], &["--explain", "x<script>", "--color", "never"]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("«"), "{text}");
    assert!(text.contains("legend"), "{text}");
    let out = hesnr(&[&base[..], &["--explain", "nope"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trajectory with id 'nope'"));
}

/// Native tool-calling agents often leave `content` empty: such a trajectory has no Thought text.
/// Under `--preset all` it must still be scored for the presets that have something to score,
/// with the same `full` row as `--preset full` alone (it used to be skipped from every preset).
#[test]
fn a_trajectory_without_thoughts_keeps_its_action_rows_under_every_preset_combination() {
    let mut record = chat_record("silent", 2);
    for m in record["messages"].as_array_mut().unwrap() {
        if m["role"] == "assistant" {
            m["content"] = json!("");
        }
    }
    let traj = parse_chat(&record, "test.jsonl", 1).expect("valid trajectory");
    let mut b = backend(256);
    let template = ChatTemplate::chatml();
    let all = eval_trajectory(&mut b, &template, &traj, &settings(256, &Preset::ALL))
        .expect("scored under the presets that have something to score");
    let full = eval_trajectory(&mut b, &template, &traj, &settings(256, &[Preset::Full]))
        .expect("full alone");
    let row = |e: &hesnr::pipeline::eval::EvaluatedTrajectory, p: Preset| {
        e.presets
            .iter()
            .find(|r| r.preset == p)
            .map(|r| r.acc.summary())
            .unwrap()
    };
    assert_eq!(row(&all, Preset::Thought).scored_tokens, 0);
    let (a, f) = (row(&all, Preset::Full), row(&full, Preset::Full));
    assert!(f.scored_tokens > 0);
    assert_eq!(
        (a.scored_tokens, a.decision_tokens),
        (f.scored_tokens, f.decision_tokens)
    );
    // The same positions, computed the same whatever else is asked for.
    assert!(a.he_snr.is_some() && a.mean_nll.is_some());
    assert_eq!((a.he_snr, a.mean_nll), (f.he_snr, f.mean_nll));
    // Thoughts alone: nothing to score, so the trajectory is skipped with that reason.
    let err =
        eval_trajectory(&mut b, &template, &traj, &settings(256, &[Preset::Thought])).unwrap_err();
    assert_eq!(err.to_string(), "no Thought segment to score");
}

/// `eval --check` runs everything before the forward pass: it must count exactly the context
/// and scored tokens `eval` then runs, and skip (and fail on) exactly what `eval` skips.
#[test]
fn check_counts_what_eval_scores_and_skips_what_eval_skips() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/trajectories");
    let model = default_tiny();
    let model = model.to_str().unwrap();
    let check_rows = scratch().join("check-rows.jsonl");
    let out = hesnr(&[
        "eval",
        "-T",
        examples,
        "-m",
        model,
        "--preset",
        "all",
        "--check",
        "--json",
        "-o",
        check_rows.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let eval_rows = scratch().join("check-eval-rows.jsonl");
    let eval = hesnr(&[
        "eval",
        "-T",
        examples,
        "-m",
        model,
        "--preset",
        "all",
        "-o",
        eval_rows.to_str().unwrap(),
    ]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let read_rows = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let checked = read_rows(&check_rows);
    let evaluated = read_rows(&eval_rows);
    assert_eq!(checked.len(), 7);
    assert_eq!(evaluated.len(), 7 * Preset::ALL.len());
    // The tiny model is an F32 file, run as it is.
    assert!(
        evaluated.iter().all(|r| r["precision"] == "as-is"),
        "every row names its precision"
    );
    let mut compared = 0;
    for c in &checked {
        for p in c["presets"].as_array().unwrap() {
            let row = evaluated
                .iter()
                .find(|r| r["id"] == c["id"] && r["preset"] == p["preset"])
                .unwrap_or_else(|| panic!("no eval row for {c} {p}"));
            assert_eq!(row["context_tokens"], c["context_tokens"], "{}", c["id"]);
            assert_eq!(
                row["scored_tokens"], p["scored_tokens"],
                "{} {}",
                c["id"], p
            );
            assert_eq!(
                row["action_segments"], c["segments"]["action"],
                "{}",
                c["id"]
            );
            compared += 1;
        }
    }
    assert_eq!(compared, evaluated.len());
    let total = &summary["total"];
    assert_eq!(
        (total["trajectories"].as_u64(), total["skipped"].as_u64()),
        (Some(7), Some(0))
    );
    let context: u64 = checked
        .iter()
        .map(|c| c["context_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(total["context_tokens"].as_u64(), Some(context));
    let formats: Vec<&str> = summary["formats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        formats.contains(&"swe-agent") && formats.contains(&"openhands"),
        "{formats:?}"
    );

    // A set with records eval would skip: the check names them and exits 1.
    let dir = scratch().join("check-bad-set");
    let _ = std::fs::remove_dir_all(&dir);
    let mut no_action = chat_record("no-action", 0);
    no_action["messages"].as_array_mut().unwrap().pop();
    let lines = format!(
        "{}\n{}\n{{\"id\": \"truncated\"\n",
        chat_record("good", 1),
        no_action
    );
    write(&dir, "chat.jsonl", lines.as_bytes());
    let out = hesnr(&[
        "eval",
        "-T",
        dir.to_str().unwrap(),
        "-m",
        model,
        "--check",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["total"]["trajectories"], 1, "{summary:#}");
    assert_eq!(summary["total"]["skipped"], 2, "{summary:#}");
    assert_eq!(summary["files"][0]["skipped"], 2, "{summary:#}");
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains("chat.jsonl:2: trajectory 'no-action': no Action segment"),
        "{errors}"
    );
    assert!(errors.contains("chat.jsonl:3"), "{errors}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 of 3 trajectories or records would be skipped"),
        "{stderr}"
    );
}

#[test]
fn each_preset_carries_a_bootstrap_interval_over_its_trajectories() {
    let dir = scratch().join("interval-set");
    let _ = std::fs::remove_dir_all(&dir);
    let lines: String = (1..=5)
        .map(|i| format!("{}\n", chat_record(&format!("t{i}"), i)))
        .collect();
    write(&dir, "chat.jsonl", lines.as_bytes());
    let run = || {
        let out = hesnr(&[
            "eval",
            "-T",
            dir.to_str().unwrap(),
            "-m",
            default_tiny().to_str().unwrap(),
            "--preset",
            "all",
            "-o",
            "/dev/null",
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let summary = run();
    assert_eq!(summary["trajectories"], 5);
    for p in summary["presets"].as_array().unwrap() {
        let iv = &p["intervals"];
        assert_eq!(iv["unit"], "trajectory", "{p:#}");
        assert_eq!(iv["units"], 5, "{p:#}");
        assert_eq!(iv["level"], 0.95);
        // The set's own pooled value lies within the interval of sets like it.
        for name in ["ppl", "mean_nll", "top1_acc", "decision_tokens"] {
            let (lo, hi) = (iv[name][0].as_f64().unwrap(), iv[name][1].as_f64().unwrap());
            let v = p[name].as_f64().unwrap();
            assert!(
                lo <= v && v <= hi,
                "{}: {name} {v} outside [{lo}, {hi}]",
                p["preset"]
            );
        }
        let ppl = &iv["ppl"];
        assert!(
            ppl[0].as_f64() < ppl[1].as_f64(),
            "five different trajectories: {ppl}"
        );
    }
    // Fixed seed: the same trajectories give the same intervals.
    assert_eq!(
        summary["presets"][0]["intervals"],
        run()["presets"][0]["intervals"]
    );
}
