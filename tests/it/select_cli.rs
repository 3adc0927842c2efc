//! `hesnr select` end to end: filters, weights, mixing, determinism, profile sharding, errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::hesnr;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use serde_json::Value;

/// One profile row: (id, line, index, tokens, decision_density, he_snr).
type Row = (String, u64, u64, u64, Option<f64>, Option<f64>);

fn write_profile(path: &Path, source: &str, rows: &[Row]) {
    let col_u = |f: fn(&Row) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let col_f = |f: fn(&Row) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
        (
            "source",
            Arc::new(StringArray::from(vec![source; rows.len()])) as ArrayRef,
        ),
        ("line", col_u(|r| r.1)),
        ("index", col_u(|r| r.2)),
        ("tokens", col_u(|r| r.3)),
        ("decision_density", col_f(|r| r.4)),
        ("he_snr", col_f(|r| r.5)),
    ])
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn write_jsonl(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn select(config: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "select",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    hesnr(&args)
}

fn select_ok(config: &Path, out: &Path) -> Value {
    let o = select(config, out, &[]);
    assert!(
        o.status.success(),
        "select failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// The rows of an output folder's JSONL shards, in shard order.
pub(crate) fn read_rows(out: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// Every file of an output directory, by name.
fn dir_bytes(out: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Ten code documents with hand-picked scores; c6 has a null density.
fn hand_corpus(dir: &Path) -> (PathBuf, Vec<Row>) {
    let dd = [
        Some(0.01),
        Some(0.03),
        Some(0.05),
        Some(0.30),
        Some(0.02),
        Some(0.10),
        None,
        Some(0.04),
        Some(0.15),
        Some(0.005),
    ];
    let snr = [5.0, 4.0, 3.0, 9.0, 1.0, 8.0, 7.0, 2.0, 6.0, 0.0];
    let code = dir.join("code.jsonl");
    let records: Vec<Value> = (0..10)
        .map(|i| {
            serde_json::json!({"id": format!("c{i}"), "text": format!("def f{i}(): pass"),
                "metadata": {"kind": "function", "repo": "r"}})
        })
        .collect();
    write_jsonl(&code, &records);
    let rows = (0..10)
        .map(|i| {
            (
                format!("c{i}"),
                i as u64 + 1,
                i as u64,
                100 + 10 * i as u64,
                dd[i],
                Some(snr[i]),
            )
        })
        .collect();
    (code, rows)
}

#[test]
fn filters_and_weights_match_hand_computation() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, rows) = hand_corpus(tmp.path());
    let prof = tmp.path().join("p.parquet");
    write_profile(&prof, code.to_str().unwrap(), &rows);
    let cfg = tmp.path().join("select.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"seed = 1
[[source]]
name = "code"
documents = "{}"
profile = "{}"
filter = [{{ score = "decision_density", min = 0.02 }}, {{ score = "he_snr", top_fraction = 0.5 }}]
weight = {{ score = "decision_density", clip = [0.01, 0.2] }}
"#,
            code.display(),
            prof.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let m = select_ok(&cfg, &out);
    // Filter 1 drops c0, c6 (null), c9; filter 2 keeps ceil(0.5 * 7) = 4 by he_snr: c3 c5 c8 c1.
    let s = &m["sources"][0];
    assert_eq!(s["filters"][0]["dropped"]["documents"], 3);
    assert_eq!(s["filters"][0]["dropped"]["tokens"], 100 + 160 + 190);
    assert_eq!(s["filters"][1]["dropped"]["documents"], 3);
    assert_eq!(s["filters"][1]["dropped"]["tokens"], 120 + 140 + 170);
    assert_eq!(s["kept"]["tokens"], 110 + 130 + 150 + 180);
    assert_eq!(m["selected"]["tokens"], 570);
    let got: BTreeMap<String, f64> = read_rows(&out)
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["weight"].as_f64().unwrap(),
            )
        })
        .collect();
    // Weights: clip(dd) = 0.03, 0.2, 0.10, 0.15; mean 0.12.
    let want = [
        ("c1", 0.03 / 0.12),
        ("c3", 0.2 / 0.12),
        ("c5", 0.10 / 0.12),
        ("c8", 0.15 / 0.12),
    ];
    assert_eq!(got.len(), 4, "{got:?}");
    for (id, w) in want {
        assert!((got[id] - w).abs() < 1e-9, "{id}: {} vs {w}", got[id]);
    }
    // Original fields kept, scores merged into metadata.
    let rows = read_rows(&out);
    let r = rows.iter().find(|r| r["id"] == "c3").unwrap();
    assert_eq!(r["metadata"]["kind"], "function");
    assert_eq!(r["metadata"]["repo"], "r");
    assert_eq!(r["metadata"]["hesnr"]["source"], "code");
    assert_eq!(r["metadata"]["hesnr"]["tokens"], 130);
    assert_eq!(r["metadata"]["hesnr"]["he_snr"], 9.0);
    assert_eq!(r["text"], "def f3(): pass");
    // The Parquet shard has the same rows.
    let f = std::fs::File::open(out.join("selected-00000.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let n: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(n, 4);
}

/// A bigger corpus: `n_code` profiled code documents, `n_gen` unprofiled general ones.
fn mix_corpus(dir: &Path, n_code: usize, n_gen: usize) -> (PathBuf, PathBuf, Vec<Row>) {
    let code = dir.join("code.jsonl");
    let general = dir.join("general.jsonl");
    let recs: Vec<Value> = (0..n_code)
        .map(|i| serde_json::json!({"id": format!("c{i}"), "text": format!("x = {i}")}))
        .collect();
    write_jsonl(&code, &recs);
    let recs: Vec<Value> = (0..n_gen)
        .map(
            |i| serde_json::json!({"id": format!("g{i}"), "text": "w".repeat(40 + (i * 37) % 400)}),
        )
        .collect();
    write_jsonl(&general, &recs);
    let rows = (0..n_code)
        .map(|i| {
            let tokens = 50 + (i as u64 * 7919) % 300;
            let dd = ((i * 13) % 29) as f64 / 100.0;
            (
                format!("c{i}"),
                i as u64 + 1,
                i as u64,
                tokens,
                Some(dd),
                Some((i % 17) as f64),
            )
        })
        .collect();
    (code, general, rows)
}

fn mix_config(code: &Path, general: &Path, profile: &str, budget: Option<u64>) -> String {
    format!(
        r#"seed = 17
{}general_ratio = 0.3
[[source]]
name = "code"
documents = ["{}"]
profile = "{profile}"
filter = [{{ score = "decision_density", min = 0.02 }}, {{ score = "he_snr", top_fraction = 0.8 }}]
weight = {{ score = "decision_density", clip = [0.01, 0.2] }}
[[source]]
name = "general"
general = true
documents = ["{}"]
"#,
        budget
            .map(|b| format!("token_budget = {b}\n"))
            .unwrap_or_default(),
        code.display(),
        general.display()
    )
}

#[test]
fn mix_meets_the_ratio_within_one_document() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, general, rows) = mix_corpus(tmp.path(), 300, 400);
    let prof = tmp.path().join("p.parquet");
    write_profile(&prof, code.to_str().unwrap(), &rows);
    let max_code = rows.iter().map(|r| r.3).max().unwrap() as f64;
    let max_gen = ((40 + 399) as f64 / 4.0).ceil();
    for budget in [Some(20_000u64), Some(7_001), None] {
        let cfg = tmp.path().join("mix.toml");
        std::fs::write(
            &cfg,
            mix_config(&code, &general, prof.to_str().unwrap(), budget),
        )
        .unwrap();
        let out = tmp.path().join(format!("out-{budget:?}"));
        let m = select_ok(&cfg, &out);
        let total = m["targets"]["total_tokens"].as_f64().unwrap();
        let spec = m["buckets"]["specialist"]["selected"]["tokens"]
            .as_f64()
            .unwrap();
        let gen = m["buckets"]["general"]["selected"]["tokens"]
            .as_f64()
            .unwrap();
        assert!(
            (spec - 0.7 * total).abs() <= max_code,
            "{budget:?}: specialist {spec} vs {}",
            0.7 * total
        );
        assert!(
            (gen - 0.3 * total).abs() <= max_gen,
            "{budget:?}: general {gen} vs {}",
            0.3 * total
        );
        if budget.is_none() {
            // Without a budget, one group is used in full.
            let kept_spec = m["buckets"]["specialist"]["kept"]["tokens"]
                .as_f64()
                .unwrap();
            let kept_gen = m["buckets"]["general"]["kept"]["tokens"].as_f64().unwrap();
            assert!(spec == kept_spec || gen == kept_gen);
        }
        // The output rows agree with the manifest.
        let rows_out = read_rows(&out);
        assert_eq!(
            rows_out.len() as u64,
            m["selected"]["documents"].as_u64().unwrap()
        );
    }
}

#[test]
fn deterministic_and_independent_of_profile_sharding() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, general, rows) = mix_corpus(tmp.path(), 120, 150);
    let pdir = tmp.path().join("profile");
    std::fs::create_dir_all(&pdir).unwrap();
    let cfg = tmp.path().join("mix.toml");
    std::fs::write(
        &cfg,
        mix_config(&code, &general, pdir.to_str().unwrap(), Some(9_000)),
    )
    .unwrap();
    // Three shards, rows in a shuffled order across them.
    let src = code.to_str().unwrap();
    for k in 0..3 {
        let part: Vec<Row> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| (i * 7) % 3 == k)
            .map(|(_, r)| r.clone())
            .rev()
            .collect();
        write_profile(&pdir.join(format!("shard-{k}.parquet")), src, &part);
    }
    let out_a = tmp.path().join("a");
    let out_b = tmp.path().join("b");
    select_ok(&cfg, &out_a);
    select_ok(&cfg, &out_b);
    let a = dir_bytes(&out_a);
    assert_eq!(a, dir_bytes(&out_b), "two runs differ");
    // Small shards: several files, same rows in the same order.
    let out_s = tmp.path().join("s");
    let o = select(&cfg, &out_s, &["--shard-size", "10"]);
    assert!(o.status.success());
    assert!(out_s.join("selected-00002.parquet").is_file());
    let rows_a: Vec<Value> = read_rows(&out_a);
    assert_eq!(rows_a, read_rows(&out_s));

    // One merged profile file in place of the shards.
    for k in 0..3 {
        std::fs::remove_file(pdir.join(format!("shard-{k}.parquet"))).unwrap();
    }
    write_profile(&pdir.join("merged.parquet"), src, &rows);
    let out_c = tmp.path().join("c");
    select_ok(&cfg, &out_c);
    let mut c = dir_bytes(&out_c);
    let mut a = a;
    // Only the list of profile files (a side file, not in the manifest) differs.
    assert_ne!(
        a.remove("profile-files.json"),
        c.remove("profile-files.json")
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), c.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(v == &c[k], "{k} differs between sharded and merged profile");
    }
}

#[test]
fn missing_profile_rows_are_counted_or_strict_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, rows) = hand_corpus(tmp.path());
    let prof = tmp.path().join("p.parquet");
    write_profile(&prof, code.to_str().unwrap(), &rows[..8]);
    let cfg = tmp.path().join("select.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[source]]\nname = \"code\"\ndocuments = \"{}\"\nprofile = \"{}\"\n",
            code.display(),
            prof.display()
        ),
    )
    .unwrap();
    let m = select_ok(&cfg, &tmp.path().join("out"));
    assert_eq!(m["sources"][0]["no_profile"]["documents"], 2);
    assert_eq!(m["selected"]["documents"], 8);
    let o = select(&cfg, &tmp.path().join("out2"), &["--strict"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no profile row") && e.contains("c8"), "{e}");
}

#[test]
fn bad_configs_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, rows) = hand_corpus(tmp.path());
    let prof = tmp.path().join("p.parquet");
    write_profile(&prof, code.to_str().unwrap(), &rows);
    let cfg = tmp.path().join("bad.toml");
    let base = format!(
        "general_ratio = 0\n[[source]]\nname = \"code\"\ndocuments = \"{}\"\nprofile = \"{}\"\n",
        code.display(),
        prof.display()
    );
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{base}filter = [{{ score = \"he_snrr\", min = 1 }}]\n"),
            vec![
                "source[0].filter[0].score",
                "unknown score 'he_snrr'",
                "he_snr",
            ],
        ),
        (
            format!("{base}filter = [{{ score = \"he_snr\", min = 1, top_fraction = 0.5 }}]\n"),
            vec!["source[0].filter[0]", "min and top_fraction"],
        ),
        (
            base.replace("general_ratio = 0", "general_ratio = 1.5"),
            vec!["`general_ratio`", "outside [0, 1]"],
        ),
        (
            base.replace("code.jsonl", "nope.jsonl"),
            vec!["source[0].documents", "nope.jsonl"],
        ),
        (
            format!("{base}weight = {{ score = \"ppl\" }}\n"),
            vec!["source[0].weight.score", "unknown score 'ppl'"],
        ),
    ];
    for (text, wants) in cases {
        std::fs::write(&cfg, &text).unwrap();
        let o = select(&cfg, &tmp.path().join("out"), &[]);
        assert!(!o.status.success(), "{text}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("bad.toml"), "{e}");
        for w in wants {
            assert!(e.contains(w), "missing '{w}' in: {e}");
        }
    }
}

/// The README's workflow, `hesnr profile ... --out P && hesnr merge P && hesnr select`, leaves
/// the shards and the merged file side by side: a profile folder means the merged file when there
/// is one, else the complete set of shards, and the selection is the same either way. Incomplete
/// sets and merged files that disagree with the shards are refused.
#[test]
fn profile_folder_means_merged_file_or_complete_shards() {
    use crate::common::{default_tiny, ok, run_hesnr, s};
    let dir = crate::common::scratch().join("profile-folder");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (code, general, _) = mix_corpus(&dir, 40, 30);
    let model = default_tiny();
    let prof = dir.join("profile");
    for shard in ["0/2", "1/2"] {
        ok(&run_hesnr(
            &[
                "profile",
                s(&code),
                "--out",
                s(&prof),
                "--model",
                s(&model),
                "--shard",
                shard,
            ],
            &[],
        ));
    }
    let cfg = dir.join("select.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"seed = 5
general_ratio = 0.3
[[source]]
name = "code"
documents = "{}"
profile = "{}"
filter = [{{ score = "tokens", min = 2 }}, {{ score = "mean_nll", top_fraction = 0.9 }}]
weight = {{ score = "tokens", clip = [1, 1000] }}
[[source]]
name = "general"
general = true
documents = "{}"
"#,
            code.display(),
            prof.display(),
            general.display()
        ),
    )
    .unwrap();
    let m = select_ok(&cfg, &dir.join("shards"));
    assert_eq!(m["sources"][0]["profile_rows_matched"], 40);
    assert!(m["selected"]["documents"].as_u64().unwrap() > 10, "{m}");
    let profile_files = |out: &str| -> Vec<String> {
        let v: Value = serde_json::from_slice(
            &std::fs::read(dir.join(out).join("profile-files.json")).unwrap(),
        )
        .unwrap();
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let p = PathBuf::from(f["path"].as_str().unwrap());
                p.file_name().unwrap().to_string_lossy().into_owned()
            })
            .collect()
    };
    assert_eq!(
        profile_files("shards"),
        [
            "profile-00000-of-00002.parquet",
            "profile-00001-of-00002.parquet"
        ]
    );

    ok(&run_hesnr(&["merge", s(&prof)], &[]));
    assert!(prof.join("profile.parquet").is_file());
    assert!(prof.join("profile-00001-of-00002.parquet").is_file());
    select_ok(&cfg, &dir.join("merged"));
    assert_eq!(profile_files("merged"), ["profile.parquet"]);
    let mut a = dir_bytes(&dir.join("shards"));
    let mut b = dir_bytes(&dir.join("merged"));
    a.remove("profile-files.json");
    b.remove("profile-files.json");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert!(
            v == &b[k],
            "{k} differs between the shards and the merged profile"
        );
    }

    let refused = |want: &[&str]| {
        let o = select(&cfg, &dir.join("refused"), &[]);
        assert!(!o.status.success(), "not refused: {want:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("source[0].profile"), "{e}");
        for w in want {
            assert!(e.contains(w), "missing '{w}' in: {e}");
        }
    };
    // A merged file shorter than its stats (or than the shards) is out of date.
    let merged = prof.join("profile.parquet");
    let kept = dir.join("profile.parquet.kept");
    std::fs::rename(&merged, &kept).unwrap();
    std::fs::copy(prof.join("profile-00000-of-00002.parquet"), &merged).unwrap();
    refused(&["profile.stats.json", "hesnr merge"]);
    std::fs::remove_file(prof.join("profile.stats.json")).unwrap();
    refused(&["does not match the 2 profile shards", "hesnr merge"]);
    // Without a merged file, every shard must be complete.
    std::fs::remove_file(&merged).unwrap();
    std::fs::remove_file(prof.join("profile-00001-of-00002.stats.json")).unwrap();
    refused(&["1 of 2 profile shards missing or incomplete", ": 1;"]);
    // The merged file alone is enough, and gives the same selection.
    std::fs::rename(&kept, &merged).unwrap();
    select_ok(&cfg, &dir.join("merged-alone"));
    let mut c = dir_bytes(&dir.join("merged-alone"));
    c.remove("profile-files.json");
    assert!(a == c, "the merged file alone selects differently");
}
