//! Careless and hostile input files end to end (issue 13): a damaged compressed file is refused
//! whole before any of it is scored, and the size bounds on records and on files read whole
//! skip what is over them, naming the file, the limit and the variable that raises it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::{default_tiny, ok, run_hesnr, run_hesnr_stdin, s, scratch};
use serde_json::{json, Value};

/// An empty folder `name` in this module's scratch folder.
fn dir(name: &str) -> PathBuf {
    let d = scratch().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lines(records: &[Value]) -> Vec<u8> {
    records
        .iter()
        .map(|r| r.to_string() + "\n")
        .collect::<String>()
        .into_bytes()
}

/// `{id: d{i}, text}` records, each with its own short text.
fn docs(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("d{i}"), "text": format!("def f{i}(x):\n    return x + {i}\n")}))
        .collect()
}

/// gzip with stored (uncompressed) blocks: a changed byte decodes without complaint to
/// changed text, and only the CRC at the end of the member tells.
fn gzip_stored(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The ids of a rows file.
fn ids(rows: &Path) -> Vec<String> {
    std::fs::read_to_string(rows)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `hesnr score` with the tiny model; the summary (`--json`) and the row ids.
fn score(inputs: &[&Path], rows: &Path, env: &[(&str, &str)]) -> (Value, Vec<String>) {
    let model = default_tiny();
    let mut args = vec!["score"];
    args.extend(inputs.iter().map(|p| s(p)));
    args.extend(["-m", s(&model), "-o", s(rows), "--json"]);
    let out = run_hesnr(&args, env);
    ok(&out);
    (serde_json::from_slice(&out.stdout).unwrap(), ids(rows))
}

/// The case: one changed byte in a gzip file. Before, its garbage text was scored and
/// written and the CRC error showed only as "skipped 1" at the end; now nothing of the file is
/// scored, the error names the file and the compressed offset, and the next file is scored.
#[test]
fn a_corrupt_gzip_is_refused_whole_before_any_of_it_is_scored() {
    let d = dir("corrupt-gz");
    let mut bad = gzip_stored(&lines(&docs(40)));
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    let bad_path = d.join("bad.jsonl.gz");
    std::fs::write(&bad_path, &bad).unwrap();
    let good = d.join("good.jsonl");
    std::fs::write(&good, lines(&[json!({"id": "good", "text": "x = 1\n"})])).unwrap();
    let rows = d.join("rows.jsonl");
    let (summary, got) = score(&[&bad_path, &good], &rows, &[]);
    assert_eq!(got, ["good"], "{summary:#}");
    assert_eq!(summary["skipped"], 1, "{summary:#}");
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains(&format!(
            "{}: read failed: gzip stream corrupt or truncated at compressed byte ",
            bad_path.display()
        )) && errors.contains("the whole file is refused"),
        "{errors}"
    );

    // The same bytes on stdin: nothing scored, the run says why.
    let model = default_tiny();
    let rows = d.join("stdin-rows.jsonl");
    let out = run_hesnr_stdin(
        &["score", "-", "-m", s(&model), "-o", s(&rows), "--json"],
        &bad,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        summary["errors"]
            .to_string()
            .contains("gzip stream corrupt")
            || stderr.contains("gzip stream corrupt"),
        "{summary:#} {stderr}"
    );
    assert!(!rows.exists() || ids(&rows).is_empty(), "{stderr}");
}

/// A zstd file written without frame checksums (Python's `zstandard` default) is scored, and
/// the run says, naming the file, that damage which still decodes could not be detected.
#[test]
fn a_zstd_file_without_checksums_is_scored_with_a_warning() {
    let d = dir("unchecked-zst");
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    z.include_checksum(false).unwrap();
    z.write_all(&lines(&docs(3))).unwrap();
    let path = d.join("docs.jsonl.zst");
    std::fs::write(&path, z.finish().unwrap()).unwrap();
    let rows = d.join("rows.jsonl");
    let model = default_tiny();
    let out = run_hesnr(
        &["score", s(&path), "-m", s(&model), "-o", s(&rows), "--json"],
        &[],
    );
    let stderr = ok(&out);
    assert_eq!(ids(&rows), ["d0", "d1", "d2"]);
    assert!(
        stderr.contains(&format!(
            "{}: its zstd frames carry no checksum",
            path.display()
        )),
        "{stderr}"
    );
}

/// A truncated trajectory file (a download cut short) gives no trajectory, not the ones
/// before the cut; the other files are scored.
#[test]
fn a_truncated_compressed_trajectory_file_is_refused_whole() {
    let d = dir("cut-zst");
    let chat = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/trajectories/chat.jsonl"
    ))
    .unwrap();
    let zst = zstd::encode_all(&chat[..], 3).unwrap();
    let cut = d.join("cut.jsonl.zst");
    std::fs::write(&cut, &zst[..zst.len() * 9 / 10]).unwrap();
    let first = chat.split(|&b| b == b'\n').next().unwrap();
    let good = d.join("good.jsonl");
    std::fs::write(&good, [first, b"\n"].concat()).unwrap();
    let rows = d.join("rows.jsonl");
    let model = default_tiny();
    let out = run_hesnr(
        &[
            "eval",
            "-T",
            s(&cut),
            s(&good),
            "-m",
            s(&model),
            "-o",
            s(&rows),
            "--json",
        ],
        &[],
    );
    ok(&out);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["trajectories"], 1, "{summary:#}");
    assert_eq!(ids(&rows).len(), 1);
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains(&format!(
            "{}: cannot open: zstd stream corrupt or truncated at compressed byte",
            cut.display()
        )),
        "{errors}"
    );
}

/// `HESNR_MAX_RECORD_MB` bounds a JSON Lines line and a JSON array element (rows beside them
/// are scored); `HESNR_MAX_FILE_MB` bounds a trajectory file read whole as one JSON value.
#[test]
fn size_bounds_skip_what_is_over_them_and_name_the_limit() {
    let d = dir("bounds");
    // Over 1 MiB by blanks between the tokens: small to score if the bound failed to hold.
    let pad = " ".repeat(3 << 20);
    let mut jsonl = lines(&docs(1));
    jsonl.extend(format!("{{\"id\": \"big-line\", {pad}\"text\": \"q = 5\\n\"}}\n").bytes());
    jsonl.extend(lines(&[json!({"id": "after-line", "text": "y = 2\n"})]));
    let jsonl_path = d.join("lines.jsonl");
    std::fs::write(&jsonl_path, jsonl).unwrap();
    let array = format!(
        "[{{\"id\": \"a1\", \"text\": \"z = 3\\n\"}}, {{\"id\": \"big-row\", {pad}\"text\": \"v = 6\\n\"}}, {{\"id\": \"a3\", \"text\": \"w = 4\\n\"}}]"
    );
    let array_path = d.join("array.json");
    std::fs::write(&array_path, array).unwrap();
    let rows = d.join("rows.jsonl");
    let (summary, got) = score(
        &[&jsonl_path, &array_path],
        &rows,
        &[("HESNR_MAX_RECORD_MB", "1")],
    );
    assert_eq!(got, ["d0", "after-line", "a1", "a3"], "{summary:#}");
    let errors = summary["errors"].to_string();
    for place in [
        format!("{}:2", jsonl_path.display()),
        format!("{}:2", array_path.display()),
    ] {
        assert!(errors.contains(&place), "{place}: {errors}");
    }
    assert!(
        errors.contains("over 1 MiB (the limit; HESNR_MAX_RECORD_MB=MiB raises it)"),
        "{errors}"
    );

    // A SWE-agent .traj padded past 1 MiB with blanks (small to score when read).
    let traj = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/trajectories/swe-agent/confload__203.traj"
    ))
    .unwrap();
    let padded = d.join("padded.traj");
    std::fs::write(&padded, format!("{traj}{}", " ".repeat(2 << 20))).unwrap();
    // One small trajectory beside it, so the run has something to score.
    let chat = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/trajectories/chat.jsonl"
    ))
    .unwrap();
    let good = d.join("good.jsonl");
    std::fs::write(&good, chat.split(|&b| b == b'\n').next().unwrap()).unwrap();
    let model = default_tiny();
    let eval = |env: &[(&str, &str)]| -> Value {
        let out = run_hesnr(
            &[
                "eval",
                "-T",
                s(&padded),
                s(&good),
                "-m",
                s(&model),
                "-o",
                s(&d.join("traj-rows.jsonl")),
                "--json",
            ],
            env,
        );
        ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let refused = eval(&[("HESNR_MAX_FILE_MB", "1")]);
    assert_eq!(refused["trajectories"], 1, "{refused:#}");
    let errors = refused["errors"].to_string();
    assert!(
        errors.contains(&format!(
            "{}: file over 1 MiB (the limit; HESNR_MAX_FILE_MB=MiB raises it)",
            padded.display()
        )),
        "{errors}"
    );
    let read = eval(&[("HESNR_MAX_FILE_MB", "3")]);
    assert_eq!(read["trajectories"], 2, "{read:#}");
}

/// `HESNR_MAX_RECORD_MB` bounds a Parquet row as it bounds a JSON Lines line: a document whose
/// text is over it, and a trajectory row (read whole) over it, are skipped naming the file and
/// row; the rows beside them are read. Small text of big size: repeated so it compresses.
#[test]
fn parquet_rows_over_the_record_bound_are_skipped_and_named() {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use std::sync::Arc;
    let d = dir("parquet-bounds");
    let big = "x = 1\n".repeat(300_000);
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(StringArray::from(vec!["p1", "big", "p3"])) as ArrayRef,
        ),
        (
            "text",
            Arc::new(StringArray::from(vec!["a = 1\n", big.as_str(), "b = 2\n"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let docs_path = d.join("docs.parquet");
    crate::inputs::write_batch(&docs_path, &batch);
    let rows = d.join("rows.jsonl");
    let (summary, got) = score(&[&docs_path], &rows, &[("HESNR_MAX_RECORD_MB", "1")]);
    assert_eq!(got, ["p1", "p3"], "{summary:#}");
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains(&format!("{}:2", docs_path.display()))
            && errors.contains("text over 1 MiB (the limit; HESNR_MAX_RECORD_MB=MiB raises it)"),
        "{errors}"
    );

    // Trajectory rows (read whole, as JSON): the one over the bound is skipped.
    let chat = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/trajectories/chat.jsonl"
    ))
    .unwrap();
    let record = |id: &str, pad: &str| {
        let mut r: Value = serde_json::from_str(chat.lines().next().unwrap()).unwrap();
        r["id"] = json!(id);
        r["messages"][0]["content"] = json!(format!(
            "{}{pad}",
            r["messages"][0]["content"].as_str().unwrap()
        ));
        r
    };
    let trajectories = [record("t1", ""), record("t-big", &big), record("t3", "")];
    let set = d.join("set.parquet");
    crate::datasets::write_parquet_of(&set, &trajectories);
    let model = default_tiny();
    let out = run_hesnr(
        &["eval", "-T", s(&set), "-m", s(&model), "--json"],
        &[("HESNR_MAX_RECORD_MB", "1")],
    );
    ok(&out);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["trajectories"], 2, "{summary:#}");
    let errors = summary["errors"].to_string();
    assert!(
        errors.contains(&format!("{}:2", set.display()))
            && errors.contains("row over 1 MiB (the limit; HESNR_MAX_RECORD_MB=MiB raises it)"),
        "{errors}"
    );
}
