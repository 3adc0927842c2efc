//! `hesnr profile` and `hesnr merge` end to end on tiny models: JSONL and Parquet inputs, bad
//! input, sharding, resume after SIGKILL, and reference-model deltas.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    default_tiny, hesnr_command, ok, run_hesnr as hesnr, s, scratch, tiny_model, CODE,
};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use hesnr::gguf::tiny::TinyLlamaSpec;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde_json::Value;

pub(crate) type Row = BTreeMap<String, Value>;

fn model() -> String {
    default_tiny().to_string_lossy().into_owned()
}

fn dir(name: &str) -> PathBuf {
    let d = scratch().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn doc_text(i: usize) -> String {
    let body = format!(
        "def f{i}(x):\n    \"\"\"Step {i}.\"\"\"\n    return x * {} + {}\n",
        i % 7 + 2,
        i * i
    );
    body.repeat(1 + i % 4)
}

fn write_jsonl(path: &Path, docs: &[(String, String)]) {
    let mut s = String::new();
    for (id, text) in docs {
        s.push_str(&serde_json::json!({"id": id, "text": text}).to_string());
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), cols.into_iter().map(|c| c.1).collect()).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Every row of a Parquet file as column name -> JSON value (null for nulls).
pub(crate) fn read_rows(path: &Path) -> Vec<Row> {
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for b in r {
        let b = b.unwrap();
        for i in 0..b.num_rows() {
            let mut row = Row::new();
            for (f, c) in b.schema().fields().iter().zip(b.columns()) {
                let v = if c.is_null(i) {
                    Value::Null
                } else {
                    match f.data_type() {
                        DataType::Utf8 => {
                            Value::from(c.as_any().downcast_ref::<StringArray>().unwrap().value(i))
                        }
                        DataType::UInt64 => Value::from(
                            c.as_any()
                                .downcast_ref::<arrow_array::UInt64Array>()
                                .unwrap()
                                .value(i),
                        ),
                        DataType::Float64 => Value::from(
                            c.as_any()
                                .downcast_ref::<arrow_array::Float64Array>()
                                .unwrap()
                                .value(i),
                        ),
                        t => panic!("unexpected column type {t}"),
                    }
                };
                row.insert(f.name().clone(), v);
            }
            rows.push(row);
        }
    }
    rows
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (None, None) => {}
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
            "{what}: {x} vs {y}"
        ),
        _ => panic!("{what}: {a:?} vs {b:?}"),
    }
}

fn stats(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn jsonl_and_parquet_inputs_with_bad_input() {
    let d = dir("mixed");
    let corpus = d.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    // a.jsonl: 3 good documents (one repeating an id), a broken line, a record without text.
    let mut a = String::new();
    a.push_str(&format!(
        "{}\n",
        serde_json::json!({"id": "a1", "text": CODE})
    ));
    a.push_str("{\"id\": \"broken\", \"text\": \n");
    a.push_str(&format!(
        "{}\n",
        serde_json::json!({"id": "a2", "text": doc_text(3)})
    ));
    a.push_str("{\"id\": \"notext\"}\n");
    a.push_str(&format!(
        "{}\n",
        serde_json::json!({"id": "a1", "text": doc_text(5)})
    ));
    std::fs::write(corpus.join("a.jsonl"), a).unwrap();
    // b.parquet: integer ids, one null text.
    let texts = vec![
        Some(doc_text(1)),
        None,
        Some(doc_text(2)),
        Some(doc_text(8)),
    ];
    write_parquet(
        &corpus.join("b.parquet"),
        vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![10, 11, 12, 13])) as ArrayRef,
            ),
            (
                "text",
                Arc::new(StringArray::from(texts.clone())) as ArrayRef,
            ),
        ],
    );
    // c.parquet: no text column; d.parquet: a text column that is not a string.
    write_parquet(
        &corpus.join("c.parquet"),
        vec![(
            "content",
            Arc::new(StringArray::from(vec!["x = 1"])) as ArrayRef,
        )],
    );
    write_parquet(
        &corpus.join("d.parquet"),
        vec![("text", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)],
    );
    std::fs::write(corpus.join("e.jsonl"), "").unwrap();

    let out = d.join("out");
    let err = ok(&hesnr(
        &[
            "profile",
            s(&corpus),
            "--out",
            s(&out),
            "-m",
            &model(),
            "-t",
            "2",
        ],
        &[],
    ));
    assert!(
        err.contains("1 duplicate ids") || err.contains("duplicate"),
        "{err}"
    );
    let st = stats(&out.join("profile-00000-of-00001.stats.json"));
    assert_eq!(st["documents"], 6, "{st}");
    // broken line, missing text, null parquet text, c.parquet, d.parquet, empty e.jsonl
    assert_eq!(st["skipped"], 6, "{st}");
    assert_eq!(st["duplicate_ids"], 1);
    let errors = st["errors"].to_string();
    assert!(
        errors.contains("c.parquet: field 'text': no column 'text'"),
        "{errors}"
    );
    assert!(
        errors.contains("d.parquet: field 'text': column 'text' has type Int64"),
        "{errors}"
    );
    assert!(errors.contains("b.parquet:2: field 'text'"), "{errors}");
    assert!(errors.contains("e.jsonl: empty file"), "{errors}");
    assert!(!out.join(".parts").exists(), "parts removed on completion");

    let rows = read_rows(&out.join("profile-00000-of-00001.parquet"));
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a1", "a2", "a1", "10", "12", "13"]);
    let idx: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, [0, 1, 2, 3, 4, 5]);
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 3, 5, 1, 3, 4]);
    assert!(rows[3]["source"].as_str().unwrap().ends_with("b.parquet"));
    assert!(rows[0].contains_key("order_share_10"));

    // The same documents through `hesnr score`: equal values.
    let same = d.join("same.jsonl");
    let mut docs = vec![
        ("a1".to_string(), CODE.to_string()),
        ("a2".into(), doc_text(3)),
        ("a1".into(), doc_text(5)),
    ];
    for (id, t) in [(10, &texts[0]), (12, &texts[2]), (13, &texts[3])] {
        docs.push((id.to_string(), t.clone().unwrap()));
    }
    write_jsonl(&same, &docs);
    let scored = d.join("scored.jsonl");
    ok(&hesnr(
        &[
            "score",
            s(&same),
            "-m",
            &model(),
            "-t",
            "2",
            "-o",
            s(&scored),
        ],
        &[],
    ));
    let srows: Vec<Value> = std::fs::read_to_string(&scored)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(srows.len(), rows.len());
    for (p, r) in rows.iter().zip(&srows) {
        assert_eq!(p["id"], r["id"]);
        assert_eq!(p["tokens"], r["tokens"]);
        assert_eq!(p["scored_tokens"], r["scored_tokens"]);
        assert_eq!(p["decision_tokens"], r["decision_tokens"]);
        // One name per metric: a profile column is the score row's key.
        for key in [
            "decision_density",
            "he_snr",
            "he_ppl",
            "mean_h10",
            "mean_nll",
            "ppl",
            "top1_acc",
        ] {
            close(f(&p[key]), f(&r[key]), key);
        }
        for m in 1..=10 {
            close(
                f(&p[&format!("order_share_{m}")]),
                r["order_shares"][m - 1].as_f64(),
                "order",
            );
        }
    }

    // A completed shard is not redone.
    let again = ok(&hesnr(
        &["profile", s(&corpus), "--out", s(&out), "-m", &model()],
        &[],
    ));
    assert!(again.contains("already complete"), "{again}");
}

fn corpus(d: &Path, n: usize, files: usize) -> Vec<PathBuf> {
    (0..files)
        .map(|f| {
            let p = d.join(format!("part{f}.jsonl"));
            let docs: Vec<(String, String)> = (0..n)
                .filter(|i| i % files == f)
                .map(|i| (format!("doc-{i}"), doc_text(i)))
                .collect();
            write_jsonl(&p, &docs);
            p
        })
        .collect()
}

#[test]
fn sharded_runs_merge_to_the_same_file() {
    let d = dir("shards");
    let inputs = corpus(&d, 40, 3);
    let pattern = d.join("part*.jsonl");
    let one = d.join("one");
    let three = d.join("three");
    ok(&hesnr(
        &[
            "profile",
            s(&pattern),
            "--out",
            s(&one),
            "-m",
            &model(),
            "-t",
            "2",
            "--part-size",
            "7",
        ],
        &[],
    ));
    ok(&hesnr(&["merge", s(&one)], &[]));
    for i in 0..3 {
        let shard = format!("{i}/3");
        let m = model();
        let mut args = vec!["profile"];
        args.extend(inputs.iter().map(|p| s(p)));
        args.extend(["--out", s(&three), "-m", &m, "-t", "2", "--part-size", "3"]);
        if i == 1 {
            // The Slurm array variables pick the shard when --shard is absent.
            let err = ok(&hesnr(
                &args,
                &[
                    ("SLURM_ARRAY_TASK_ID", "2"),
                    ("SLURM_ARRAY_TASK_MIN", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "3"),
                ],
            ));
            assert!(err.contains("shard 1/3 from the Slurm array"), "{err}");
        } else {
            args.extend(["--shard", &shard]);
            ok(&hesnr(&args, &[]));
        }
        if i == 1 {
            // Two of three shards: merge refuses and names the missing one.
            let m = hesnr(&["merge", s(&three)], &[]);
            assert!(!m.status.success());
            let e = String::from_utf8_lossy(&m.stderr);
            assert!(
                e.contains("1 of 3 shards missing") && e.contains(": 2;"),
                "{e}"
            );
        }
    }
    ok(&hesnr(&["merge", s(&three)], &[]));
    let a = std::fs::read(one.join("profile.parquet")).unwrap();
    let b = std::fs::read(three.join("profile.parquet")).unwrap();
    let rows = read_rows(&three.join("profile.parquet"));
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().enumerate().all(|(g, r)| r["index"] == g as u64));
    assert_eq!(rows, read_rows(&one.join("profile.parquet")));
    assert!(a == b, "merged files differ between 1 and 3 shards");
    let st = stats(&three.join("profile.stats.json"));
    assert_eq!(st["documents"], 40);
    assert_eq!(st["shards"], 3);
}

#[test]
fn killed_run_resumes_to_the_same_rows() {
    let d = dir("resume");
    let inputs = corpus(&d, 1500, 2);
    let full = d.join("full");
    let killed = d.join("killed");
    let args = |out: &Path| {
        let mut a: Vec<String> = vec!["profile".into()];
        a.extend(inputs.iter().map(|p| p.to_string_lossy().into_owned()));
        a.extend(
            [
                "--out",
                s(out),
                "-m",
                &model(),
                "-t",
                "2",
                "--part-size",
                "10",
            ]
            .map(String::from),
        );
        a
    };
    let mut child = hesnr_command()
        .args(args(&killed))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let parts = killed.join(".parts").join("00000-of-00001");
    let t0 = Instant::now();
    loop {
        let n = std::fs::read_dir(&parts)
            .map(|r| {
                r.filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("part-") && name.ends_with(".parquet")
                })
                .count()
            })
            .unwrap_or(0);
        if n >= 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no parts appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !killed.join("profile-00000-of-00001.stats.json").exists(),
        "the run finished before it was killed: make the corpus bigger"
    );
    // Other settings are refused while the parts of the first run are there.
    let mut other = args(&killed);
    other.extend(["--eps".into(), "1.0".into()]);
    let o = hesnr(&other.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("other inputs or settings"), "{e}");
    // So is an input changed in place under the same name (rows would get the wrong indices).
    let original = std::fs::read(&inputs[0]).unwrap();
    let mut changed = original.clone();
    changed.extend(b"{\"id\": \"late\", \"text\": \"x = 1\"}\n");
    std::fs::write(&inputs[0], &changed).unwrap();
    let o = hesnr(
        &args(&killed).iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("other inputs or settings"),
        "{e}"
    );
    std::fs::write(&inputs[0], &original).unwrap();

    ok(&hesnr(
        &args(&killed).iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    ));
    let st = stats(&killed.join("profile-00000-of-00001.stats.json"));
    assert!(st["resumed_documents"].as_u64().unwrap() >= 30, "{st}");
    assert_eq!(st["documents"], 1500);
    ok(&hesnr(
        &args(&full).iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    ));
    ok(&hesnr(&["merge", s(&killed)], &[]));
    ok(&hesnr(&["merge", s(&full)], &[]));
    let a = read_rows(&killed.join("profile.parquet"));
    let b = read_rows(&full.join("profile.parquet"));
    assert_eq!(a.len(), 1500);
    assert!(a == b, "resumed rows differ from an uninterrupted run");
    assert_eq!(
        std::fs::read(killed.join("profile.parquet")).unwrap(),
        std::fs::read(full.join("profile.parquet")).unwrap()
    );
}

#[test]
fn reference_model_adds_deltas() {
    let d = dir("reference");
    let inputs = corpus(&d, 12, 1);
    let reference = tiny_model(
        "tiny-seed7",
        TinyLlamaSpec {
            seed: 7,
            ..TinyLlamaSpec::default()
        },
    );
    let with_ref = d.join("with_ref");
    let ref_only = d.join("ref_only");
    ok(&hesnr(
        &[
            "profile",
            s(&inputs[0]),
            "--out",
            s(&with_ref),
            "-m",
            &model(),
            "--reference",
            s(&reference),
            "-t",
            "2",
        ],
        &[],
    ));
    ok(&hesnr(
        &[
            "profile",
            s(&inputs[0]),
            "--out",
            s(&ref_only),
            "-m",
            s(&reference),
            "-t",
            "2",
        ],
        &[],
    ));
    let rows = read_rows(&with_ref.join("profile-00000-of-00001.parquet"));
    let refs = read_rows(&ref_only.join("profile-00000-of-00001.parquet"));
    assert_eq!(rows.len(), 12);
    let mut differ = 0;
    for (r, q) in rows.iter().zip(&refs) {
        close(f(&r["ref_he_snr"]), f(&q["he_snr"]), "ref_he_snr");
        close(f(&r["ref_mean_nll"]), f(&q["mean_nll"]), "ref_mean_nll");
        close(
            f(&r["ref_decision_density"]),
            f(&q["decision_density"]),
            "ref_dd",
        );
        for (delta, main, refc) in [
            ("delta_he_snr", "he_snr", "ref_he_snr"),
            ("delta_mean_nll", "mean_nll", "ref_mean_nll"),
            (
                "delta_decision_density",
                "decision_density",
                "ref_decision_density",
            ),
        ] {
            let want = match (f(&r[main]), f(&r[refc])) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            };
            assert_eq!(f(&r[delta]), want, "{delta}");
        }
        differ += usize::from(r["delta_mean_nll"].as_f64().unwrap() != 0.0);
    }
    assert!(differ > 0, "two different models should disagree somewhere");
    let st = stats(&with_ref.join("profile-00000-of-00001.stats.json"));
    assert!(st["reference_model"]["sha256"].is_string());
}

/// A second run of a shard that is being profiled refuses at once, naming the other run, and
/// touches nothing; the folder then completes to the same rows as an undisturbed run (two runs
/// on one folder used to lose 95% of the rows, both exiting 0).
#[test]
fn a_second_run_of_a_running_shard_refuses() {
    let d = dir("locked");
    let inputs = corpus(&d, 12, 1);
    let args = |out: &Path| -> Vec<String> {
        [
            "profile",
            s(&inputs[0]),
            "--out",
            s(out),
            "-m",
            &model(),
            "-t",
            "1",
        ]
        .map(String::from)
        .to_vec()
    };
    let (locked, fresh) = (d.join("locked"), d.join("fresh"));
    std::fs::create_dir_all(&locked).unwrap();
    // The first run, as the lock shows it: this process holds shard 0/1.
    let lock = File::create(locked.join(".profile-00000-of-00001.lock")).unwrap();
    lock.try_lock().unwrap();
    let run = |out: &Path| {
        hesnr(
            &args(out).iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        )
    };
    let second = run(&locked);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{err}");
    assert!(err.contains("being profiled by another run"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&locked)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [".profile-00000-of-00001.lock"],
        "the refused run wrote"
    );
    // The first run ends (its lock goes with it); the shard then completes as if undisturbed.
    drop(lock);
    ok(&run(&locked));
    ok(&run(&fresh));
    let shard = |dir: &Path| read_rows(&dir.join("profile-00000-of-00001.parquet"));
    assert_eq!(shard(&locked), shard(&fresh));
}
