//! Trajectory datasets as they are published (Parquet, JSON arrays, JSON Lines of records in
//! the shapes of nebius/SWE-agent-trajectories, SWE-Gym/OpenHands-Sampled-Trajectories and
//! SWE-bench/SWE-smith-trajectories): the same trajectories give the same rows in every form,
//! and an evaluation set is drawn from them by column values, per instance and up to a limit,
//! with a manifest of what was drawn.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::common::{default_tiny, hesnr, s};
use crate::inputs::{dir, json_lines, rows, write_batch};

/// `records` as Parquet with the schema arrow infers from them: nested lists and structs, null
/// where a record lacks a field, as a JSON-to-Parquet conversion of a dataset writes them.
pub(crate) fn write_parquet_of(path: &Path, records: &[Value]) {
    let lines = json_lines(records);
    let (schema, _) =
        arrow_json::reader::infer_json_schema(std::io::Cursor::new(&lines), None).unwrap();
    let mut reader = arrow_json::ReaderBuilder::new(Arc::new(schema))
        .build(std::io::Cursor::new(&lines))
        .unwrap();
    let batch = reader.next().unwrap().unwrap();
    assert_eq!(batch.num_rows(), records.len());
    write_batch(path, &batch);
}

/// nebius/SWE-agent-trajectories: `{role: system|user|ai, text}` with the system prompt in
/// `system_prompt`, fenced SWE-agent commands, `target` for resolved.
fn nebius(i: usize) -> Value {
    json!({"instance_id": format!("repo__issue-{}", i / 2), "model_name": "swe-agent-llama-70b",
        "target": i.is_multiple_of(2), "exit_status": "submitted", "trajectory": [
        {"role": "system", "text": null, "system_prompt": "You are an autonomous programmer.", "mask": false},
        {"role": "user", "text": format!("Issue {i}: last() returns the wrong element."), "mask": false},
        {"role": "ai", "text": "Let me look at the file first.\n```\nopen utils.py\n```", "mask": true},
        {"role": "user", "text": "[File: utils.py (2 lines total)]\n1:def last(xs):\n2:    return xs[len(xs)]", "mask": false},
        {"role": "ai", "text": format!("Use -1.\n```\nedit 2:2\n    return xs[-{}]  # fixed\nend_of_edit\n```", i + 1), "mask": true},
    ]})
}

/// SWE-Gym/OpenHands-Sampled-Trajectories: OpenAI messages with tool calls (two in one turn),
/// null content, `function_call: null`, tool results, a `tools` column, `resolved`.
fn swe_gym(i: usize) -> Value {
    let call = |id: &str, name: &str, args: Value| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}});
    json!({"instance_id": format!("proj__repo-{}", i / 2), "run_id": format!("run_{i}"), "resolved": !i.is_multiple_of(2),
    "messages": [
        {"role": "system", "content": "You are OpenHands agent."},
        {"role": "user", "content": format!("Fix issue {i} in /workspace/repo.")},
        {"role": "assistant", "content": null, "function_call": null, "tool_calls": [
            call("c1", "execute_bash", json!({"command": "ls /workspace/repo"})),
            call("c2", "str_replace_editor", json!({"command": "view", "path": "/workspace/repo/utils.py"}))]},
        {"role": "tool", "content": "utils.py", "name": "execute_bash", "tool_call_id": "c1"},
        {"role": "tool", "content": "def last(xs):\n    return xs[len(xs)]", "name": "str_replace_editor", "tool_call_id": "c2"},
        {"role": "assistant", "content": "The index is off by one.", "function_call": null, "tool_calls": [
            call("c3", "str_replace_editor", json!({"command": "str_replace", "path": "/workspace/repo/utils.py",
                "old_str": "xs[len(xs)]", "new_str": format!("xs[-{}]  # last", i + 1)}))]},
        {"role": "tool", "content": "The file has been edited.", "name": "str_replace_editor", "tool_call_id": "c3"},
        {"role": "assistant", "content": "Done.", "function_call": null, "tool_calls": [call("c4", "finish", json!({}))]},
    ],
    "tools": [
        {"type": "function", "function": {"name": "execute_bash", "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "finish", "parameters": {"type": "object", "properties": {}}}},
    ]})
}

/// SWE-bench/SWE-smith-trajectories: string contents, XML `<function=...>` actions in the
/// assistant's text, `OBSERVATION:` user turns.
fn swe_smith(i: usize) -> Value {
    json!({"instance_id": format!("owner__repo.abc.pr_{}", i / 2), "resolved": true, "messages": [
        {"role": "system", "content": "You are a helpful assistant that can interact with a computer."},
        {"role": "user", "content": format!("<uploaded_files>/testbed</uploaded_files> Fix issue {i}.")},
        {"role": "assistant", "content": "Let me find the file.\n\n<function=bash>\n<parameter=command>find /testbed -name '*.py'</parameter>\n</function>"},
        {"role": "user", "content": "OBSERVATION:\n/testbed/utils.py"},
        {"role": "assistant", "content": format!("Fix it.\n\n<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n<parameter=path>/testbed/utils.py</parameter>\n<parameter=old_str>xs[len(xs)]</parameter>\n<parameter=new_str>xs[-{}]</parameter>\n</function>", i + 1)},
        {"role": "user", "content": "OBSERVATION:\nThe file /testbed/utils.py has been edited."},
        {"role": "assistant", "content": "<function=submit>\n</function>"},
    ]})
}

/// The three forms of one dataset under `d`: JSON Lines, a JSON array, Parquet.
fn dataset_forms(d: &Path, name: &str, records: &[Value]) -> [PathBuf; 3] {
    std::fs::create_dir_all(d).unwrap();
    let jsonl = d.join(format!("{name}.jsonl"));
    std::fs::write(&jsonl, json_lines(records)).unwrap();
    let array = d.join(format!("{name}.json"));
    std::fs::write(&array, serde_json::to_vec_pretty(records).unwrap()).unwrap();
    let parquet = d.join(format!("{name}.parquet"));
    write_parquet_of(&parquet, records);
    [jsonl, array, parquet]
}

/// Rows without their place (`source`, `line`), which is all a form may change.
fn placeless(rows: Vec<Value>) -> Vec<Value> {
    rows.into_iter()
        .map(|mut r| {
            let o = r.as_object_mut().unwrap();
            o.remove("source");
            o.remove("line");
            r
        })
        .collect()
}

#[test]
fn dataset_shapes_evaluate_the_same_from_parquet_json_arrays_and_json_lines() {
    let d = dir("datasets-forms");
    let model = default_tiny();
    type Shape = fn(usize) -> Value;
    let shapes: [(&str, Shape); 3] = [
        ("nebius", nebius),
        ("swe-gym", swe_gym),
        ("swe-smith", swe_smith),
    ];
    for (name, make) in shapes {
        let records: Vec<Value> = (0..3).map(make).collect();
        let forms = dataset_forms(&d, name, &records);
        let mut reference: Option<Vec<Value>> = None;
        for form in &forms {
            let out = hesnr(&["eval", "-T", s(form), "-m", s(&model), "--preset", "all"]);
            let what = format!("{name}: {}", form.display());
            assert!(
                out.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rows = placeless(rows(&out.stdout));
            match &reference {
                None => {
                    assert_eq!(rows.len(), 3 * 5, "{what}: one row per record and preset");
                    for r in &rows {
                        assert!(r["action_segments"].as_u64().unwrap() >= 2, "{what}: {r}");
                        if r["preset"] == "full" {
                            assert!(r["scored_tokens"].as_u64().unwrap() > 0, "{what}: {r}");
                        }
                        assert!(r.get("warnings").is_none(), "{what}: {r}");
                    }
                    reference = Some(rows);
                }
                Some(want) => assert_eq!(&rows, want, "{what}: rows differ from JSON Lines"),
            }
        }
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn an_evaluation_set_is_drawn_by_column_values_per_instance_and_limit_with_a_manifest() {
    let d = dir("datasets-draw");
    let model = default_tiny();
    // Instances 0,0,1,1,2,2; resolved on the odd records (1, 3, 5).
    let records: Vec<Value> = (0..6).map(swe_gym).collect();
    let [_, _, parquet] = dataset_forms(&d, "runs", &records);
    let check = |extra: &[&str], rows: &Path| {
        let mut args = vec![
            "eval",
            "-T",
            s(&parquet),
            "-m",
            s(&model),
            "--check",
            "-o",
            s(rows),
        ];
        args.extend_from_slice(extra);
        let out = hesnr(&args);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ids: Vec<(String, u64)> = std::fs::read_to_string(rows)
            .unwrap()
            .lines()
            .map(|l| {
                let r: Value = serde_json::from_str(l).unwrap();
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["line"].as_u64().unwrap(),
                )
            })
            .collect();
        ids
    };
    let rows = d.join("resolved.jsonl");
    let got = check(&["--where", "resolved=true", "--per-instance", "1"], &rows);
    let rows_of = |lines: &[u64]| -> Vec<(String, u64)> {
        lines
            .iter()
            .map(|&l| (format!("proj__repo-{}", (l - 1) / 2), l))
            .collect()
    };
    assert_eq!(got, rows_of(&[2, 4, 6]));
    let manifest = read_json(&d.join("resolved.manifest.json"));
    assert_eq!(manifest["where"], json!(["resolved=true"]));
    assert_eq!(manifest["per_instance"], 1);
    assert_eq!(manifest["records_seen"], 6);
    assert_eq!(manifest["excluded_by_where"], 3);
    assert_eq!(manifest["excluded_by_per_instance"], 0);
    let drawn: Vec<(u64, &str)> = manifest["drawn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["line"].as_u64().unwrap(), x["instance"].as_str().unwrap()))
        .collect();
    assert_eq!(
        drawn,
        [
            (2, "proj__repo-0"),
            (4, "proj__repo-1"),
            (6, "proj__repo-2")
        ]
    );
    assert_eq!(manifest["inputs"], json!([s(&parquet)]));

    // Per instance alone keeps the first of each; the limit stops the draw.
    let got = check(
        &["--per-instance", "1", "--limit", "2"],
        &d.join("first.jsonl"),
    );
    assert_eq!(got, rows_of(&[1, 3]));
    let manifest = read_json(&d.join("first.manifest.json"));
    assert_eq!(manifest["excluded_by_per_instance"], 1);
    assert_eq!(manifest["limit"], 2);
    // `!=`, a dotted path and an explicit manifest path.
    let named = d.join("named-manifest.json");
    let got = check(
        &[
            "--where",
            "resolved!=true",
            "--where",
            "run_id=run_2",
            "--manifest",
            s(&named),
        ],
        &d.join("unresolved.jsonl"),
    );
    assert_eq!(got, rows_of(&[3]));
    assert_eq!(read_json(&named)["drawn"][0]["line"], 3);
    // Without a draw option nothing is filtered and no manifest is written.
    let got = check(&[], &d.join("all.jsonl"));
    assert_eq!(got.len(), 6);
    assert!(!d.join("all.manifest.json").exists());
}

#[test]
fn the_messages_column_is_found_by_shape_or_named() {
    let d = dir("datasets-messages");
    let model = default_tiny();
    let base = swe_smith(0);
    let messages = base["messages"].clone();
    // One column of role/content messages under a name of its own: found.
    let found = json!({"instance_id": "found", "conversation": messages});
    // Two such columns: ambiguous until --messages-field names one.
    let two = json!({"instance_id": "two", "chosen": messages, "rejected": messages});
    let p = d.join("found.jsonl");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(&p, json_lines(&[found])).unwrap();
    let out = hesnr(&[
        "eval",
        "-T",
        s(&p),
        "-m",
        s(&default_tiny()),
        "--check",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["total"]["segments"]["action"], 3, "{summary:#}");

    let p = d.join("two.jsonl");
    std::fs::write(&p, json_lines(&[two])).unwrap();
    let out = hesnr(&["eval", "-T", s(&p), "-m", s(&model), "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let out = hesnr(&[
        "eval",
        "-T",
        s(&p),
        "-m",
        s(&model),
        "--check",
        "--json",
        "--messages-field",
        "chosen",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["total"]["segments"]["action"], 3, "{summary:#}");
    // A named column a record lacks: that record is reported with the field.
    let out = hesnr(&[
        "eval",
        "-T",
        s(&p),
        "-m",
        s(&model),
        "--check",
        "--messages-field",
        "conversation",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("two.jsonl:1: field '$.conversation': missing (the record has: instance_id, chosen, rejected)"),
        "{stderr}"
    );
}

/// `eval --check` over the whole real-trajectory corpus beside the checkout: every file of
/// every format is read whole, nothing would be skipped, and every trajectory has Actions.
#[test]
fn check_reads_the_whole_real_corpus() {
    let corpus = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/real-trajectories"
    ));
    if !corpus.is_dir() {
        eprintln!("skipped: {} absent", corpus.display());
        return;
    }
    let rows_file = dir("datasets-corpus").join("rows.jsonl");
    let out = hesnr(&[
        "eval",
        "-T",
        s(corpus),
        "-m",
        s(&default_tiny()),
        "--check",
        "--json",
        "-o",
        s(&rows_file),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["total"]["skipped"], 0, "{summary:#}");
    let files = summary["files"].as_array().unwrap();
    let on_disk = walk_files(corpus)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "SOURCES.md"))
        .count();
    assert_eq!(files.len(), on_disk, "every file of the corpus is read");
    for row in rows(&std::fs::read(&rows_file).unwrap()) {
        assert!(row["segments"]["action"].as_u64().unwrap() > 0, "{row}");
    }
}

fn walk_files(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
