//! The one input layer end to end: `hesnr score` on a tiny model reads every input form (JSON
//! Lines plain/gzip/zstd whatever the name, a JSON array, Parquet, a text file, a directory, a
//! glob pattern, stdin) and gives the same rows for the same documents.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::{default_tiny, ok, run_hesnr, run_hesnr_stdin, s, scratch};
use serde_json::{json, Value};

/// Two short documents (id, text): what every input form below holds.
pub(crate) const DOCS: [(&str, &str); 2] = [
    ("a", "def add(x, y):\n    return x + y\n"),
    ("b", "fn main() {\n    println!(\"hi\");\n}\n"),
];

/// An empty folder `name` in the calling module's scratch folder.
#[track_caller]
pub(crate) fn dir(name: &str) -> PathBuf {
    let d = scratch().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// [`DOCS`] as JSON records `{id, text}`.
pub(crate) fn doc_records() -> Vec<Value> {
    DOCS.iter()
        .map(|(id, text)| json!({"id": id, "text": text}))
        .collect()
}

/// Records as JSON Lines.
pub(crate) fn json_lines(records: &[Value]) -> Vec<u8> {
    records
        .iter()
        .map(|r| r.to_string() + "\n")
        .collect::<String>()
        .into_bytes()
}

fn jsonl() -> Vec<u8> {
    json_lines(&doc_records())
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// [`DOCS`] as a Parquet file with `id` and `text` columns.
pub(crate) fn write_parquet(path: &Path) {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    let ids: Vec<&str> = DOCS.iter().map(|d| d.0).collect();
    let texts: Vec<&str> = DOCS.iter().map(|d| d.1).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
        ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
    ])
    .unwrap();
    write_batch(path, &batch);
}

/// One record batch as a Parquet file.
pub(crate) fn write_batch(path: &Path, batch: &arrow_array::RecordBatch) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Rows of `hesnr score` (stdout, one JSON row per document).
fn score(inputs: &[&str]) -> Vec<Value> {
    let model = default_tiny();
    let mut args = vec!["score"];
    args.extend_from_slice(inputs);
    args.extend_from_slice(&["-m", s(&model)]);
    let out = run_hesnr(&args, &[]);
    ok(&out);
    rows(&out.stdout)
}

/// The JSON rows of a command's JSON Lines output.
pub(crate) fn rows(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (id, line, he_snr, tokens) of each row: what must agree across forms.
fn key(rows: &[Value]) -> Vec<(String, u64, Value, Value)> {
    rows.iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["line"].as_u64().unwrap(),
                r["he_snr"].clone(),
                r["tokens"].clone(),
            )
        })
        .collect()
}

#[test]
fn every_input_form_gives_the_same_rows() {
    let d = dir("forms");
    let plain = d.join("plain.jsonl");
    std::fs::write(&plain, jsonl()).unwrap();
    let reference = score(&[s(&plain)]);
    assert_eq!(reference.len(), 2);
    assert_eq!(reference[0]["source"], s(&plain));
    let want = key(&reference);

    // Compressed under a plain `.jsonl` name: known by the magic bytes.
    let gz = d.join("gz.jsonl");
    std::fs::write(&gz, gzip(&jsonl())).unwrap();
    let zst = d.join("data.jsonl.zst");
    std::fs::write(&zst, zstd::encode_all(&jsonl()[..], 3).unwrap()).unwrap();
    for p in [&gz, &zst] {
        let got = score(&[s(p)]);
        assert_eq!(key(&got), want, "{}", p.display());
        assert_eq!(got[1]["source"], s(p));
    }

    // A JSON array of records: rows numbered by element.
    let arr = d.join("array.json");
    std::fs::write(&arr, serde_json::to_vec_pretty(&doc_records()).unwrap()).unwrap();
    assert_eq!(key(&score(&[s(&arr)])), want);

    // Parquet: one document per row, row numbers as lines.
    let pq = d.join("docs.parquet");
    write_parquet(&pq);
    let got = score(&[s(&pq)]);
    assert_eq!(key(&got), want);
    assert_eq!(got[0]["source"], s(&pq));

    // stdin.
    let model = default_tiny();
    let out = run_hesnr_stdin(&["score", "-", "-m", s(&model)], &gzip(&jsonl()));
    ok(&out);
    let got = rows(&out.stdout);
    assert_eq!(key(&got), want);
    assert_eq!(got[0]["source"], "<stdin>");
}

#[test]
fn text_files_directories_and_globs() {
    let d = dir("tree");
    std::fs::create_dir_all(d.join("src/sub")).unwrap();
    std::fs::write(d.join("src/add.py"), DOCS[0].1).unwrap();
    std::fs::write(d.join("src/sub/main.rs"), DOCS[1].1).unwrap();
    std::fs::write(d.join("src/.hidden.py"), "x = 1\n").unwrap();

    // A text file is one document: id and source are the path, line 0.
    let one = d.join("src/add.py");
    let got = score(&[s(&one)]);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&got[0]["id"], &got[0]["source"], &got[0]["line"]),
        (&json!(s(&one)), &json!(s(&one)), &json!(0))
    );
    let add = got[0]["he_snr"].clone();

    // A directory: its non-hidden files, recursively, sorted.
    let got = score(&[s(&d.join("src"))]);
    let ids: Vec<&str> = got.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![s(&one), s(&d.join("src/sub/main.rs"))]);
    assert_eq!(got[0]["he_snr"], add);

    // A quoted glob pattern, expanded by hesnr (sorted), and one matching nothing.
    std::fs::write(d.join("b.jsonl"), jsonl()).unwrap();
    std::fs::write(d.join("a.jsonl"), jsonl()).unwrap();
    let pattern = d.join("*.jsonl");
    let got = score(&[s(&pattern)]);
    let sources: Vec<&str> = got.iter().map(|r| r["source"].as_str().unwrap()).collect();
    let (a, b) = (d.join("a.jsonl"), d.join("b.jsonl"));
    assert_eq!(sources, vec![s(&a), s(&a), s(&b), s(&b)]);

    let none = d.join("*.parquet");
    let out = run_hesnr(&["score", s(&none), "-m", s(&default_tiny())], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("pattern '{}' matched no files", none.display())),
        "{stderr}"
    );
}

#[test]
fn the_library_reader_mixes_forms_in_one_call() {
    // `track --documents` and `profile` call this same function.
    let d = dir("lib");
    let pq = d.join("docs.parquet");
    write_parquet(&pq);
    std::fs::write(d.join("x.jsonl"), jsonl()).unwrap();
    let docs: Vec<_> = hesnr::data::read_documents(
        &[pq.clone(), d.join("*.jsonl")],
        &hesnr::data::ReaderOptions::default(),
    )
    .unwrap()
    .map(|r| r.unwrap())
    .collect();
    let got: Vec<(&str, u64)> = docs.iter().map(|d| (d.id.as_str(), d.line)).collect();
    assert_eq!(got, vec![("a", 1), ("b", 2), ("a", 1), ("b", 2)]);
}
