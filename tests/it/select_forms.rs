//! `hesnr select` and `hesnr report-select` read their `documents` through the input layer: the
//! same records as JSON Lines, a JSON array, gzip under a `.jsonl` name, zstd, Parquet, a
//! directory or a glob pattern give the same selection, every field of a record kept; a folder
//! of text files is one record per file; `-` is refused by name.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use serde_json::{json, Value};

use crate::common::{default_tiny, hesnr, ok, s, scratch};
use crate::select_cli::read_rows;

/// Eight records, each with a field (`repo`) that only a reader keeping whole records keeps.
fn records() -> Vec<Value> {
    (0..8)
        .map(|i| {
            let text = format!(
                "def f_{i}(xs):\n    total = {i}\n    for x in xs[:{k}]:\n        total += x * {m}\n    return total\n",
                k = i % 3 + 1,
                m = 2 * i + 1
            );
            json!({"id": format!("doc-{i}"), "text": text, "repo": {"stars": i * 10}})
        })
        .collect()
}

fn jsonl(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

fn write_parquet(path: &Path, records: &[Value]) {
    let col = |k: &str| -> Vec<String> {
        records
            .iter()
            .map(|r| r[k].as_str().unwrap().to_string())
            .collect()
    };
    let stars: Vec<i64> = records
        .iter()
        .map(|r| r["repo"]["stars"].as_i64().unwrap())
        .collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(StringArray::from(col("id"))) as ArrayRef),
        ("text", Arc::new(StringArray::from(col("text")))),
        ("stars", Arc::new(Int64Array::from(stars))),
    ])
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Writes the records in one input form under `dir`; returns the `documents` entry naming it.
fn write_form(dir: &Path, form: &str, records: &[Value]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let (head, tail) = records.split_at(records.len() / 2);
    let path = |name: &str| dir.join(name);
    match form {
        "jsonl" => {
            std::fs::write(path("docs.jsonl"), jsonl(records)).unwrap();
            s(&path("docs.jsonl")).into()
        }
        "json-array" => {
            std::fs::write(path("docs.json"), serde_json::to_string(records).unwrap()).unwrap();
            s(&path("docs.json")).into()
        }
        "gzip-named-jsonl" => {
            let mut gz = flate2::write::GzEncoder::new(
                std::fs::File::create(path("docs.jsonl")).unwrap(),
                flate2::Compression::default(),
            );
            gz.write_all(jsonl(records).as_bytes()).unwrap();
            gz.finish().unwrap();
            s(&path("docs.jsonl")).into()
        }
        "zstd" => {
            let bytes = zstd::encode_all(jsonl(records).as_bytes(), 0).unwrap();
            std::fs::write(path("docs.jsonl.zst"), bytes).unwrap();
            s(&path("docs.jsonl.zst")).into()
        }
        "parquet" => {
            write_parquet(&path("docs.parquet"), records);
            s(&path("docs.parquet")).into()
        }
        "directory" => {
            let sub = path("corpus");
            std::fs::create_dir_all(sub.join("b")).unwrap();
            std::fs::write(sub.join("a.jsonl"), jsonl(head)).unwrap();
            std::fs::write(sub.join("b/c.json"), serde_json::to_string(tail).unwrap()).unwrap();
            s(&sub).into()
        }
        "glob" => {
            std::fs::write(path("part-0.jsonl"), jsonl(head)).unwrap();
            std::fs::write(path("part-1.jsonl"), jsonl(tail)).unwrap();
            format!("{}/part-*.jsonl", s(dir))
        }
        _ => unreachable!("{form}"),
    }
}

fn config(documents: &str, profile: &Path) -> String {
    format!(
        r#"seed = 7

[[source]]
name = "code"
documents = "{documents}"
profile = "{}"
filter = [{{ score = "tokens", top_fraction = 0.75 }}]
weight = {{ score = "decision_density", clip = [0.05, 1.0] }}
"#,
        s(profile)
    )
}

/// Profiles `documents` with the tiny model, selects from it, writes the report of the
/// selection; returns the selected records in output order.
fn profile_select_report(dir: &Path, documents: &str, form: &str) -> Vec<Value> {
    let model = default_tiny();
    let prof = dir.join("profile");
    ok(&hesnr(&[
        "profile",
        documents,
        "--out",
        s(&prof),
        "--model",
        s(&model),
    ]));
    let cfg = dir.join("select.toml");
    std::fs::write(&cfg, config(documents, &prof)).unwrap();
    let sel = dir.join("selected");
    let out = hesnr(&["select", s(&cfg), "--out", s(&sel)]);
    assert!(
        out.status.success(),
        "{form}: select failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report re-runs the selection from the documents and quotes the top ones' texts.
    let html = dir.join("report.html");
    let out = hesnr(&[
        "report-select",
        s(&sel),
        "-o",
        s(&html),
        "--top",
        "2",
        "--no-tokens",
    ]);
    assert!(
        out.status.success(),
        "{form}: report-select failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    let rows = read_rows(&sel);
    assert!(!rows.is_empty(), "{form}: nothing selected");
    assert!(
        rows.iter()
            .any(|r| page.contains(&escaped(r["id"].as_str().unwrap_or("\u{0}")))),
        "{form}: the report names no selected document"
    );
    rows
}

/// Text as the report's templates escape it (minijinja's HTML escaping).
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// What a selected record must agree on across forms: id, text, weight and the scores (the
/// source of the profile row, which names the file, differs by form).
fn essence(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|r| {
            let mut scores = r["metadata"]["hesnr"].clone();
            scores.as_object_mut().unwrap().remove("source");
            json!({"id": r["id"], "text": r["text"], "weight": r["weight"], "scores": scores})
        })
        .collect()
}

#[test]
fn every_document_form_gives_the_same_selection_and_report() {
    let root = scratch().join("select-forms");
    let _ = std::fs::remove_dir_all(&root);
    let recs = records();
    let base_dir = root.join("jsonl");
    let base = profile_select_report(&base_dir, &write_form(&base_dir, "jsonl", &recs), "jsonl");
    // Whole records: the field no scorer reads is kept.
    assert!(
        base.iter().all(|r| r["repo"]["stars"].is_number()),
        "{base:?}"
    );
    for form in [
        "json-array",
        "gzip-named-jsonl",
        "zstd",
        "parquet",
        "directory",
        "glob",
    ] {
        let dir = root.join(form);
        let rows = profile_select_report(&dir, &write_form(&dir, form, &recs), form);
        assert_eq!(essence(&rows), essence(&base), "{form}");
        if form == "parquet" {
            // Every column of the row, with its type.
            assert!(rows.iter().all(|r| r["stars"].is_i64()), "{form}: {rows:?}");
        }
    }
}

#[test]
fn a_folder_of_text_files_is_one_record_per_file() {
    let dir = scratch().join("select-forms-text");
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut texts = Vec::new();
    for r in records().iter().take(4) {
        let p = src.join(format!("{}.py", r["id"].as_str().unwrap()));
        std::fs::write(&p, r["text"].as_str().unwrap()).unwrap();
        texts.push((s(&p).to_string(), r["text"].clone()));
    }
    let rows = profile_select_report(&dir, s(&src), "text files");
    for r in &rows {
        let id = r["id"].as_str().unwrap();
        let (_, text) = texts
            .iter()
            .find(|(p, _)| p == id)
            .unwrap_or_else(|| panic!("selected id {id} is not one of the files"));
        assert_eq!(&r["text"], text, "{id}");
    }
}

#[test]
fn stdin_is_refused_by_name() {
    let dir = scratch().join("select-forms-stdin");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("select.toml");
    std::fs::write(&cfg, "[[source]]\nname = \"code\"\ndocuments = \"-\"\n").unwrap();
    let out = hesnr(&["select", s(&cfg), "--out", s(&dir.join("sel"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("source[0].documents") && err.contains("stdin"),
        "{err}"
    );
}
