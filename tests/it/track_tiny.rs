//! `hesnr track` end to end on tiny random-weight checkpoints: the cache (adding a checkpoint
//! scores only that one), resuming after SIGKILL, and the report files.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{hesnr, hesnr_command, scratch, tiny_model, Server};
use hesnr::gguf::tiny::{TinyArchitecture, TinyLlamaSpec};
use serde_json::{json, Value};

/// Three "checkpoints": the same tiny architecture with different weights.
fn checkpoints() -> Vec<PathBuf> {
    (1..=3)
        .map(|seed| {
            tiny_model(
                &format!("ckpt-{seed}"),
                TinyLlamaSpec {
                    seed,
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// A set of small chat trajectories, large enough that scoring a checkpoint takes a moment.
fn eval_set(dir: &Path, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("set.jsonl");
    let mut lines = String::new();
    for i in 0..n {
        let call = |id: &str, name: &str, args: Value| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}});
        let record = json!({"id": format!("t{i}"), "messages": [
            {"role": "user", "content": format!("Issue {i}: last() returns the wrong element.")},
            {"role": "assistant", "content": "Look at the file.", "tool_calls": [call("a", "execute_bash", json!({"command": format!("cat -n utils{i}.py  # show")}))]},
            {"role": "tool", "tool_call_id": "a", "content": "     1\tdef last(xs):\n     2\t    return xs[len(xs)]\n"},
            {"role": "assistant", "content": "Use -1.", "tool_calls": [call("b", "str_replace_editor", json!({"command": "str_replace", "path": format!("utils{i}.py"), "old_str": "    return xs[len(xs)]", "new_str": "    # the last one\n    return xs[-1]\n"}))]},
        ]});
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    std::fs::write(&path, lines).unwrap();
    path
}

fn manifest(dir: &Path, models: &[PathBuf]) -> PathBuf {
    let mut m = String::from("title = \"tiny run\"\n");
    for (i, p) in models.iter().enumerate() {
        m.push_str(&format!(
            "[[checkpoint]]\nmodel = \"{}\"\nstep = {}\nstage = \"{}\"\n[checkpoint.scores]\nswe = {}\n",
            p.display(),
            (i + 1) * 1000,
            if i < 2 { "32k" } else { "128k" },
            0.1 * (i + 1) as f64
        ));
    }
    let path = dir.join(format!("manifest-{}.toml", models.len()));
    std::fs::write(&path, m).unwrap();
    path
}

fn track(manifest: &Path, set: &Path, cache: &Path, out: &Path) -> (Value, String) {
    track_with(manifest, set, cache, out, &[])
}

fn track_with(
    manifest: &Path,
    set: &Path,
    cache: &Path,
    out: &Path,
    extra: &[&str],
) -> (Value, String) {
    let o = hesnr(
        &[
            "track",
            manifest.to_str().unwrap(),
            "-T",
            set.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-t",
            "2",
        ]
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    (report, stderr)
}

#[test]
fn checkpoints_served_remotely_give_the_same_table() {
    let dir = scratch().join("remote");
    let models = checkpoints();
    let set = eval_set(&dir, 3);
    // Served checkpoints are scored with the strided window policy (a server cannot shift a
    // cache for hesnr); the embedded run asks for it, so that the two compare.
    let (embedded, _) = track_with(
        &manifest(&dir, &models),
        &set,
        &dir.join("cache-a"),
        &dir.join("out-a"),
        &["--window-policy", "strided"],
    );
    // The same checkpoints, each behind its own `hesnr serve`; the GGUFs give the tokenizer.
    let servers: Vec<Server> = models
        .iter()
        .map(|m| Server::start(m, 0, &["-t", "1"]))
        .collect();
    let mut m = String::new();
    for (i, (p, srv)) in models.iter().zip(&servers).enumerate() {
        m.push_str(&format!(
            "[[checkpoint]]\nmodel = \"{}\"\nurl = \"{}\"\nstep = {}\nstage = \"{}\"\n[checkpoint.scores]\nswe = {}\n",
            p.display(),
            srv.url,
            (i + 1) * 1000,
            if i < 2 { "32k" } else { "128k" },
            0.1 * (i + 1) as f64
        ));
    }
    let remote_manifest = dir.join("manifest-remote.toml");
    std::fs::write(&remote_manifest, m).unwrap();
    let (remote, _) = track(
        &remote_manifest,
        &set,
        &dir.join("cache-b"),
        &dir.join("out-b"),
    );
    let (a, b) = (
        embedded["checkpoints"].as_array().unwrap(),
        remote["checkpoints"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 3);
    // Each checkpoint says what it was computed in, on the page and in the tables too.
    let csv = std::fs::read_to_string(dir.join("out-a").join("checkpoints.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "precision")
        .expect("a precision column");
    // The tiny checkpoints are F32 files, run as they are.
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.split(',').nth(col) == Some("as-is")),
        "{csv}"
    );
    let html = std::fs::read_to_string(dir.join("out-b").join("report.html")).unwrap();
    assert!(
        html.contains("&middot; server</div>"),
        "no precision on the page"
    );
    for (ca, cb) in a.iter().zip(b) {
        assert_eq!(
            (&ca["precision"], &cb["precision"]),
            (&"as-is".into(), &"server".into())
        );
        assert_eq!(
            ca["summary"]["scored_tokens"],
            cb["summary"]["scored_tokens"]
        );
        assert_eq!(ca["entropy_hist"], cb["entropy_hist"]);
        for key in ["he_snr", "ppl", "mean_h10"] {
            let (x, y) = (
                ca["summary"][key].as_f64().unwrap(),
                cb["summary"][key].as_f64().unwrap(),
            );
            assert!((x - y).abs() <= 1e-6 * x.abs(), "{key}: {x} vs {y}");
        }
    }
}

/// The report without the per-run `cached` flags: what must not depend on caching.
fn table(mut report: Value) -> Value {
    for c in report["checkpoints"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("cached");
    }
    report
}

#[test]
fn adding_a_checkpoint_scores_only_that_one() {
    let dir = scratch().join("track-add");
    let _ = std::fs::remove_dir_all(&dir);
    let set = eval_set(&dir, 4);
    let models = checkpoints();
    let cache = dir.join("cache");
    let (first, log) = track(&manifest(&dir, &models[..2]), &set, &cache, &dir.join("r2"));
    assert_eq!(log.matches(": scoring").count(), 2, "{log}");
    assert_eq!(log.matches(": cached").count(), 0, "{log}");
    let (second, log) = track(&manifest(&dir, &models), &set, &cache, &dir.join("r3"));
    assert_eq!(log.matches(": cached").count(), 2, "{log}");
    assert_eq!(log.matches(": scoring").count(), 1, "{log}");
    assert!(log.contains("[3/3] step 3000: scoring"), "{log}");
    // The two old checkpoints read from the cache give exactly the numbers they gave fresh.
    let (a, b) = (table(first), table(second));
    assert_eq!(a["checkpoints"][0], b["checkpoints"][0]);
    assert_eq!(a["checkpoints"][1], b["checkpoints"][1]);
    assert_eq!(b["checkpoints"].as_array().unwrap().len(), 3);
    // Correlations of every tracked metric with the downstream score, n = 3: inconclusive.
    let corr = b["correlations"].as_array().unwrap();
    assert!(corr
        .iter()
        .any(|c| c["metric"] == "he_snr" && c["downstream"] == "swe"));
    assert!(corr.iter().all(|c| c["report"]["conclusive"] == false));
    assert_eq!(b["sweep"][0]["points"].as_array().unwrap().len(), 25);
    for f in ["report.html", "report.json", "checkpoints.csv"] {
        assert!(dir.join("r3").join(f).is_file(), "{f}");
    }
}

/// Metrics added to a finished run are computed from the cached positions: no checkpoint is
/// scored (or loaded) again, and the numbers equal those of a run that scores from scratch.
#[test]
fn adding_metrics_to_a_finished_run_reuses_the_cache() {
    let dir = scratch().join("track-add-metrics");
    let _ = std::fs::remove_dir_all(&dir);
    let set = eval_set(&dir, 3);
    let models = checkpoints();
    let m = manifest(&dir, &models);
    let cache = dir.join("cache");
    let (plain, log) = track(&m, &set, &cache, &dir.join("r1"));
    assert_eq!(log.matches(": scoring").count(), 3, "{log}");
    assert_eq!(
        plain["leaderboard"][0]["metrics"], 7,
        "{}",
        plain["leaderboard"]
    );
    let (more, log) = track_with(&m, &set, &cache, &dir.join("r2"), &["--metrics", "all"]);
    assert_eq!(log.matches(": cached").count(), 3, "{log}");
    assert_eq!(log.matches(": scoring").count(), 0, "{log}");
    let (fresh, log) = track_with(
        &m,
        &set,
        &dir.join("cache-fresh"),
        &dir.join("r3"),
        &["--metrics", "all"],
    );
    assert_eq!(log.matches(": scoring").count(), 3, "{log}");
    for i in 0..3 {
        let proxy = &more["checkpoints"][i]["proxy"];
        assert!(proxy["hes"].as_f64().unwrap() > 0.0, "{proxy}");
        assert!(proxy["rank__inv_freq"].as_f64().unwrap() >= 1.0, "{proxy}");
        assert_eq!(proxy, &fresh["checkpoints"][i]["proxy"]);
    }
    // The leaderboard ranks every metric but the two counts (7 + 82), with Holm p-values, and
    // says plainly that 3 checkpoints cannot separate them.
    let board = &more["leaderboard"][0];
    assert_eq!(board["downstream"], "swe");
    assert_eq!(board["metrics"], 89);
    assert_eq!(board["rows"].as_array().unwrap().len(), 89);
    assert_eq!(board["leader_separated"], false);
    let verdict = board["verdict"].as_str().unwrap();
    assert!(verdict.contains("No metric can be told apart"), "{verdict}");
    assert!(board["rows"][0]["place"] == 1);
    let html = std::fs::read_to_string(dir.join("r2").join("report.html")).unwrap();
    assert!(html.contains("Metric leaderboard") && html.contains("rank_<wbr>_<wbr>inv_<wbr>freq"));
}

#[test]
fn a_killed_run_resumes_to_the_same_table() {
    let dir = scratch().join("track-kill");
    let _ = std::fs::remove_dir_all(&dir);
    let set = eval_set(&dir, 120);
    let m = manifest(&dir, &checkpoints());
    let (uninterrupted, _) = track(&m, &set, &dir.join("cache-a"), &dir.join("ra"));

    let cache = dir.join("cache-b");
    let out = dir.join("rb");
    let mut child = hesnr_command()
        .args([
            "track",
            m.to_str().unwrap(),
            "-T",
            set.to_str().unwrap(),
            "--cache",
        ])
        .arg(&cache)
        .arg("--out")
        .arg(&out)
        .args(["-t", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the first checkpoint is in the cache, while it scores the second.
    let entries = |d: &Path| {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    while entries(&cache) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no cache entry appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let cached_before = entries(&cache);
    assert!(
        cached_before < 3,
        "the run finished before it could be killed"
    );
    assert!(!out.join("report.json").exists());

    let (resumed, log) = track(&m, &set, &cache, &out);
    assert_eq!(log.matches(": cached").count(), cached_before, "{log}");
    assert_eq!(table(resumed), table(uninterrupted));
}

/// `track -T` draws its set as `eval` does: the drawn set scores exactly as a file holding only
/// the drawn records, under a cache key of its own, with the manifest in the report folder.
#[test]
fn a_drawn_set_tracks_like_a_file_of_the_drawn_records() {
    let dir = scratch().join("track-draw");
    let _ = std::fs::remove_dir_all(&dir);
    let all = eval_set(&dir, 6);
    let records: Vec<Value> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut r: Value = serde_json::from_str(l).unwrap();
            r["resolved"] = json!(i % 3 != 1);
            r
        })
        .collect();
    let write = |name: &str, keep: &dyn Fn(&Value) -> bool| {
        let p = dir.join(name);
        let lines: String = records
            .iter()
            .filter(|r| keep(r))
            .map(|r| format!("{r}\n"))
            .collect();
        std::fs::write(&p, lines).unwrap();
        p
    };
    let labelled = write("labelled.jsonl", &|_| true);
    let resolved = write("resolved.jsonl", &|r| r["resolved"] == true);
    let models = checkpoints();
    let manifest = manifest(&dir, &models[..2]);
    let cache = dir.join("cache");
    let run = |set: &Path, out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let mut args = vec![
            "track",
            manifest.to_str().unwrap(),
            "-T",
            set.to_str().unwrap(),
            "--cache",
            cache.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-t",
            "2",
        ];
        args.extend_from_slice(extra);
        let o = hesnr(&args);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        let report: Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        (table(report), stderr, out)
    };
    let (want, _, _) = run(&resolved, "plain", &[]);
    let (got, log, out) = run(&labelled, "drawn", &["--where", "resolved=true"]);
    // Another set: scored afresh, not read from the plain set's cache entries.
    assert_eq!(log.matches(": scoring").count(), 2, "{log}");
    for i in 0..2 {
        assert_eq!(
            got["checkpoints"][i]["summary"], want["checkpoints"][i]["summary"],
            "checkpoint {i}"
        );
    }
    let drawn: Value =
        serde_json::from_slice(&std::fs::read(out.join("eval-set.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(drawn["where"], json!(["resolved=true"]));
    assert_eq!(drawn["excluded_by_where"], 2);
    assert_eq!(drawn["drawn"].as_array().unwrap().len(), 4);
    // The same draw again: every checkpoint from the cache.
    let (again, log, _) = run(&labelled, "drawn-again", &["--where", "resolved=true"]);
    assert_eq!(log.matches(": cached").count(), 2, "{log}");
    assert_eq!(again["checkpoints"], got["checkpoints"]);
    // Draw options do not apply to --documents.
    let o = hesnr(&[
        "track",
        manifest.to_str().unwrap(),
        "--documents",
        all.to_str().unwrap(),
        "--limit",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not from --documents"));
}

/// One local checkpoint whose architecture cannot shift its KV cache (M-RoPE) makes the default
/// window policy strided for every checkpoint, said once, instead of failing at that checkpoint;
/// its cache entries are then those of an explicit `--window-policy strided` run.
#[test]
fn a_checkpoint_that_cannot_shift_makes_the_run_strided() {
    let dir = scratch().join("mrope");
    let mrope = tiny_model(
        "ckpt-qwen2vl",
        TinyLlamaSpec {
            seed: 2,
            architecture: TinyArchitecture::Qwen2Vl,
            ..Default::default()
        },
    );
    let models = [checkpoints()[0].clone(), mrope];
    let set = eval_set(&dir, 2);
    let (m, cache) = (manifest(&dir, &models), dir.join("cache"));
    let (default, stderr) = track(&m, &set, &cache, &dir.join("out-a"));
    assert!(
        stderr.contains("(qwen2vl) cannot shift its KV cache: every checkpoint is scored with the strided window policy"),
        "{stderr}"
    );
    assert_eq!(default["checkpoints"].as_array().unwrap().len(), 2);
    let (strided, stderr) = track_with(
        &m,
        &set,
        &cache,
        &dir.join("out-b"),
        &["--window-policy", "strided"],
    );
    assert_eq!(stderr.matches(": cached (cache key").count(), 2, "{stderr}");
    assert_eq!(table(default), table(strided));
}
