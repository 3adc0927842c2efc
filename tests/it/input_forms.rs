//! Every command that reads documents or trajectories takes the input forms of the README's
//! "Inputs" table, and the form changes nothing but the place fields: the same records as JSON
//! Lines, a JSON array (under a `.json` or a `.jsonl` name), gzip or zstd under any name, a
//! directory, a quoted glob pattern, stdin (and Parquet and text files for documents) give the
//! same ids and the same scores from `profile` and `track --documents` (documents) and from
//! `eval` and `track -T` (trajectories, Parquet included). Where a form does not apply (stdin for `profile` and
//! `track`, which read their inputs more than once) the command says why before loading a model.
//!
//! Each command runs once per form; a failure names the form.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, ListBuilder, StringBuilder, StructBuilder};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field};
use serde_json::{json, Value};

use crate::common::{default_tiny, run_hesnr, run_hesnr_stdin, s};
use crate::inputs::{dir, doc_records, gzip, json_lines, rows, write_batch, write_parquet, DOCS};
use crate::profile_cli::read_rows;

/// One way of handing the same records to a command.
struct Form {
    name: String,
    /// The input arguments.
    inputs: Vec<String>,
    /// What stdin carries (the inputs are then `-`).
    stdin: Option<Vec<u8>>,
    /// The ids this form gives its records when they are not the records' own (text files: the
    /// path).
    ids: Option<Vec<String>>,
}

impl Form {
    fn files(name: &str, paths: &[&Path]) -> Form {
        Form {
            name: name.to_string(),
            inputs: paths.iter().map(|p| s(p).to_string()).collect(),
            stdin: None,
            ids: None,
        }
    }

    fn stdin(name: &str, bytes: Vec<u8>) -> Form {
        Form {
            name: name.to_string(),
            inputs: vec!["-".into()],
            stdin: Some(bytes),
            ids: None,
        }
    }

    /// Runs hesnr with `before`, this form's inputs, then `after` (which starts with a flag, so
    /// that a multi-valued input option ends there).
    #[track_caller]
    fn run(&self, before: &[&str], after: &[&str]) -> Output {
        let mut args: Vec<&str> = before.to_vec();
        args.extend(self.inputs.iter().map(String::as_str));
        args.extend_from_slice(after);
        match &self.stdin {
            Some(bytes) => run_hesnr_stdin(&args, bytes),
            None => run_hesnr(&args, &[]),
        }
    }
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// The forms every reader takes, each holding `records` (at least two) in order, under `d`.
/// The stdin forms come last.
fn record_forms(d: &Path, records: &[Value]) -> Vec<Form> {
    let lines = json_lines(records);
    let array = serde_json::to_vec_pretty(records).unwrap();
    let one = |i: usize| json_lines(&records[i..=i]);
    // A directory: its files recursively, sorted by name, hidden ones left out.
    let tree = d.join("tree");
    write(&tree.join("a/1.jsonl"), &one(0));
    write(
        &tree.join("b/2.jsonl.gz"),
        &gzip(&json_lines(&records[1..])),
    );
    write(&tree.join(".hidden.jsonl"), b"{ not json");
    // A quoted pattern, expanded by hesnr: its matches sorted, the rest left out.
    write(&d.join("glob/1.jsonl"), &one(0));
    write(&d.join("glob/2.jsonl"), &json_lines(&records[1..]));
    write(&d.join("glob/notes.txt"), b"not a match");
    vec![
        Form::files("JSON Lines", &[&write(&d.join("plain.jsonl"), &lines)]),
        Form::files("JSON array", &[&write(&d.join("array.json"), &array)]),
        Form::files(
            "JSON array named .jsonl",
            &[&write(
                &d.join("array.jsonl"),
                serde_json::to_string(records).unwrap().as_bytes(),
            )],
        ),
        Form::files(
            "gzip named .jsonl",
            &[&write(&d.join("gz.jsonl"), &gzip(&lines))],
        ),
        Form::files(
            "gzip JSON array named .json",
            &[&write(&d.join("gz.json"), &gzip(&array))],
        ),
        Form::files(
            "zstd named .ndjson",
            &[&write(&d.join("zst.ndjson"), &zstd(&lines))],
        ),
        Form::files("directory", &[&tree]),
        Form::files("glob pattern", &[&d.join("glob/*.jsonl")]),
        Form::stdin("stdin JSON Lines", lines.clone()),
        Form::stdin("stdin gzip", gzip(&lines)),
        Form::stdin("stdin zstd JSON array", zstd(&array)),
    ]
}

/// The document forms: [`record_forms`] of [`DOCS`], Parquet, and text files (one document
/// each, the path its id).
fn document_forms(d: &Path) -> Vec<Form> {
    let mut forms = record_forms(d, &doc_records());
    let pq = d.join("docs.parquet");
    write_parquet(&pq);
    forms.insert(0, Form::files("Parquet", &[&pq]));
    let text: Vec<PathBuf> = DOCS
        .iter()
        .enumerate()
        .map(|(i, (_, t))| write(&d.join(format!("text/{i}.txt")), t.as_bytes()))
        .collect();
    let mut texts = Form::files("text files", &[&text[0], &text[1]]);
    texts.ids = Some(text.iter().map(|p| s(p).to_string()).collect());
    forms.insert(1, texts);
    forms
}

/// A nebius/SWE-agent-trajectories row (the form trajectory data sets on the Hugging Face Hub
/// take): SWE-agent's fenced commands in the assistant's text, `target` for resolved.
fn trajectory_record(i: usize) -> Value {
    let step = |role: &str, text: &str| json!({"role": role, "text": text, "mask": role == "ai"});
    json!({"instance_id": format!("repo__issue-{i}"), "target": i == 0, "trajectory": [
        step("system", "You are an autonomous programmer."),
        step("user", &format!("Issue {i}: last() in utils.py returns the wrong element.")),
        step("ai", "Let me look at the file first.\n```\nopen utils.py\n```"),
        step("user", "[File: utils.py (2 lines total)]\n1:def last(xs):\n2:    return xs[len(xs)]\n"),
        step("ai", &format!("Index out of range: use -1.\n```\nedit 2:2\n    return xs[-{}]\nend_of_edit\n```", i + 1)),
    ]})
}

/// `records` (rows of [`trajectory_record`]) as Parquet, with the data set's nested columns.
fn write_trajectory_parquet(path: &Path, records: &[Value]) {
    let fields = vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("mask", DataType::Boolean, false),
    ];
    let mut steps = ListBuilder::new(StructBuilder::from_fields(fields, 0));
    for r in records {
        for m in r["trajectory"].as_array().unwrap() {
            let step = steps.values();
            for (k, name) in ["role", "text"].into_iter().enumerate() {
                let b = step.field_builder::<StringBuilder>(k).unwrap();
                b.append_value(m[name].as_str().unwrap());
            }
            let mask = step.field_builder::<BooleanBuilder>(2).unwrap();
            mask.append_value(m["mask"].as_bool().unwrap());
            step.append(true);
        }
        steps.append(true);
    }
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["instance_id"].as_str().unwrap())
        .collect();
    let target: Vec<bool> = records
        .iter()
        .map(|r| r["target"].as_bool().unwrap())
        .collect();
    let batch = RecordBatch::try_from_iter([
        ("instance_id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("target", Arc::new(BooleanArray::from(target)) as ArrayRef),
        ("trajectory", Arc::new(steps.finish()) as ArrayRef),
    ])
    .unwrap();
    write_batch(path, &batch);
}

/// The trajectory forms: [`record_forms`] of two trajectories, one `.json` file per
/// trajectory (the second zstd), and Parquet.
fn trajectory_forms(d: &Path) -> Vec<Form> {
    let records = [trajectory_record(0), trajectory_record(1)];
    let mut forms = record_forms(d, &records);
    let single = |i: usize| serde_json::to_vec_pretty(&records[i]).unwrap();
    let first = write(&d.join("single/t0.json"), &single(0));
    let second = write(&d.join("single/t1.json.zst"), &zstd(&single(1)));
    forms.insert(0, Form::files("one JSON file each", &[&first, &second]));
    let pq = d.join("runs.parquet");
    write_trajectory_parquet(&pq, &records);
    // Known by its magic bytes too.
    let unnamed = d.join("runs.data");
    std::fs::copy(&pq, &unnamed).unwrap();
    // A directory keeps its Parquet files with its trajectory files (and skips other files).
    let mixed = d.join("mixed");
    write_trajectory_parquet(&write(&mixed.join("a.parquet"), b""), &records[..1]);
    write(&mixed.join("b.json"), &single(1));
    write(&mixed.join("c.txt"), b"not a trajectory");
    forms.insert(1, Form::files("Parquet", &[&pq]));
    forms.insert(2, Form::files("Parquet named .data", &[&unnamed]));
    forms.insert(3, Form::files("directory of Parquet and JSON", &[&mixed]));
    forms
}

/// What a command's output says about the records: their ids, and everything else that does
/// not depend on where they were read from.
type Outcome = (Vec<String>, Value);

/// Runs every form (`run`) and checks that each gives the first form's outcome (its own ids
/// for text files). With `refused_stdin`, each stdin form must fail with that message instead.
fn same_outcome_for_every_form(
    command: &str,
    forms: &[Form],
    refused_stdin: Option<&str>,
    run: impl Fn(&Form) -> Output,
    outcome: impl Fn(&Form, &Output) -> Outcome,
) {
    let mut reference: Option<Outcome> = None;
    for form in forms {
        let what = format!("hesnr {command}, {}", form.name);
        let out = run(form);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let (Some(_), Some(message)) = (&form.stdin, refused_stdin) {
            assert!(!out.status.success(), "{what}: should fail");
            assert!(stderr.contains(message), "{what}: {stderr}");
            continue;
        }
        assert!(out.status.success(), "{what}: {stderr}");
        let (ids, rest) = outcome(form, &out);
        let Some((want_ids, want)) = &reference else {
            assert_eq!(ids.len(), 2, "{what}: {ids:?}");
            reference = Some((ids, rest));
            continue;
        };
        assert_eq!(&ids, form.ids.as_ref().unwrap_or(want_ids), "{what}: ids");
        assert_eq!(&rest, want, "{what}: scores");
    }
}

/// Rows without their id and place (`source`, `line`): the ids, and the rest.
fn split_rows(rows: impl IntoIterator<Item = serde_json::Map<String, Value>>) -> Outcome {
    let mut ids = Vec::new();
    let mut rest = Vec::new();
    for mut row in rows {
        ids.push(
            row.remove("id")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap(),
        );
        row.remove("source");
        row.remove("line");
        rest.push(Value::Object(row));
    }
    (ids, Value::Array(rest))
}

#[test]
fn profile_reads_every_document_form() {
    let d = dir("profile");
    let model = default_tiny();
    let out_dir = |form: &Form| d.join("out").join(&form.name);
    same_outcome_for_every_form(
        "profile",
        &document_forms(&d),
        Some("hesnr profile cannot read stdin (a run must be re-readable"),
        |form| form.run(&["profile"], &["--out", s(&out_dir(form)), "-m", s(&model)]),
        |form, _| {
            let shard = read_rows(&out_dir(form).join("profile-00000-of-00001.parquet"));
            split_rows(shard.into_iter().map(|r| r.into_iter().collect()))
        },
    );
}

#[test]
fn eval_reads_every_trajectory_form() {
    let d = dir("eval");
    let model = default_tiny();
    same_outcome_for_every_form(
        "eval -T",
        &trajectory_forms(&d),
        None,
        |form| form.run(&["eval", "-T"], &["-m", s(&model)]),
        |form, out| {
            split_rows(rows(&out.stdout).into_iter().map(|r| match r {
                Value::Object(o) => o,
                other => panic!("{}: row {other}", form.name),
            }))
        },
    );
}

/// A manifest of one checkpoint, the tiny model.
fn manifest(d: &Path) -> PathBuf {
    let m = format!(
        "title = \"forms\"\n[[checkpoint]]\nmodel = \"{}\"\nstep = 1\n",
        default_tiny().display()
    );
    write(&d.join("manifest.toml"), m.as_bytes())
}

/// `hesnr track` on each form (`set` is `-T` or `--documents`), each with a cache of its own (the
/// cache is keyed by content, so a shared one would hand every form the first one's numbers):
/// the ids of the scored units (from the cache entry) and the checkpoint's summary.
fn track_every_form(d: &Path, set: &str, forms: &[Form]) {
    let manifest = manifest(d);
    let cache = |form: &Form| d.join("cache").join(&form.name);
    let out = |form: &Form| d.join("out").join(&form.name);
    same_outcome_for_every_form(
        &format!("track {set}"),
        forms,
        Some("hesnr track cannot read stdin (each checkpoint re-reads the evaluation set"),
        |form| {
            form.run(
                &["track", s(&manifest), set],
                &["--cache", s(&cache(form)), "--out", s(&out(form))],
            )
        },
        |form, _| {
            let report: Value =
                serde_json::from_slice(&std::fs::read(out(form).join("report.json")).unwrap())
                    .unwrap();
            let entries: Vec<PathBuf> = std::fs::read_dir(cache(form))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            assert_eq!(entries.len(), 1, "{}: {entries:?}", form.name);
            let entry: Value =
                serde_json::from_slice(&std::fs::read(&entries[0]).unwrap()).unwrap();
            let ids = entry["units"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u[0].as_str().unwrap().to_string())
                .collect();
            (ids, report["checkpoints"][0]["summary"].clone())
        },
    );
}

#[test]
fn track_documents_reads_every_document_form() {
    let d = dir("track-documents");
    track_every_form(&d, "--documents", &document_forms(&d));
}

#[test]
fn track_trajectories_read_every_trajectory_form() {
    let d = dir("track-trajectories");
    track_every_form(&d, "-T", &trajectory_forms(&d));
}
