//! The proxy-metric family through `hesnr score` on a tiny model: columns asked for by name or
//! family, cross-checked against the HE-SNR companions and the token trace, and unavailable
//! (never approximated) from a remote server's top-k list.

use crate::common::{default_tiny, hesnr, ok, s, scratch, Server, CODE};
use serde_json::Value;

fn corpus(name: &str) -> std::path::PathBuf {
    let p = scratch().join(format!("{name}.jsonl"));
    let lines: Vec<String> = [CODE, "fn main() { println!(\"hi\"); }\n", &CODE.repeat(2)]
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": format!("d{i}"), "text": t}).to_string())
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn rows(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs hesnr, asserts success and parses its stdout as JSON.
fn json_run(args: &[&str]) -> Value {
    let out = hesnr(args);
    ok(&out);
    serde_json::from_slice(&out.stdout).expect("summary JSON on stdout")
}

fn close(a: &Value, b: &Value) -> bool {
    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-9
}

#[test]
fn score_emits_the_metrics_asked_for_and_they_agree_with_the_companions() {
    let model = default_tiny();
    let docs = corpus("proxy-all");
    let out = scratch().join("proxy-all-rows.jsonl");
    let summary = json_run(&[
        "score",
        s(&docs),
        "-m",
        s(&model),
        "--metrics",
        "all",
        "-o",
        s(&out),
        "--json",
    ]);
    let all = rows(&out);
    assert_eq!(all.len(), 3);
    for r in all.iter().chain([&summary]) {
        // Uniform cross-entropy is the mean NLL; uniform top-1 accuracy is top1_acc.
        assert!(close(&r["xent__uniform"], &r["mean_nll"]), "{r}");
        assert!(close(&r["top1__uniform"], &r["top1_acc"]), "{r}");
        for name in [
            "hes",
            "topk_mass",
            "norm_entropy__gauss_nll",
            "margin__inv_freq",
        ] {
            assert!(r[name].is_f64(), "{name} in {r}");
        }
        let mass = r["topk_mass"].as_f64().unwrap();
        assert!(mass > 0.0 && mass <= 1.0);
    }
    assert!(summary.get("unavailable").is_none(), "{summary}");
    // Without --metrics: the HE-SNR columns only.
    let plain = scratch().join("proxy-none-rows.jsonl");
    ok(&hesnr(&[
        "score",
        s(&docs),
        "-m",
        s(&model),
        "-o",
        s(&plain),
    ]));
    let r = &rows(&plain)[0];
    assert!(
        r.get("he_snr").is_some() && r.get("xent__uniform").is_none(),
        "{r}"
    );
}

#[test]
fn the_window_keeps_the_last_tokens_of_each_document() {
    let model = default_tiny();
    let docs = corpus("proxy-window");
    let out = scratch().join("proxy-window-rows.jsonl");
    let trace = scratch().join("proxy-window-tokens.jsonl");
    ok(&hesnr(&[
        "score",
        s(&docs),
        "-m",
        s(&model),
        "--metrics",
        "xent__uniform,hes",
        "--metric-window",
        "5",
        "-o",
        s(&out),
        "--tokens",
        s(&trace),
    ]));
    let tokens = rows(&trace);
    for r in rows(&out) {
        let id = r["id"].as_str().unwrap();
        let nll: Vec<f64> = tokens
            .iter()
            .filter(|t| t["doc"] == id)
            .map(|t| t["nll"].as_f64().unwrap())
            .collect();
        let last = &nll[nll.len() - 5..];
        let want = last.iter().sum::<f64>() / 5.0;
        let got = r["xent__uniform"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{id}: {got} vs {want}");
    }
    // Per position, the trace has the full-vocabulary entropy and the mass the top-k list
    // retains: a non-negative entropy, and a mass of at most 1 that is what the top list sums to.
    for t in &tokens {
        let entropy = t["entropy"]
            .as_f64()
            .expect("entropy from the embedded engine");
        let mass = t["topk_mass"].as_f64().unwrap();
        assert!(entropy >= 0.0 && (0.0..=1.0 + 1e-9).contains(&mass), "{t}");
        let listed: f64 = t["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[1].as_f64().unwrap())
            .sum();
        assert!((listed - mass).abs() < 1e-6, "{t}");
    }
}

#[test]
fn bad_metric_names_fail_before_the_model_loads() {
    let out = hesnr(&[
        "score",
        s(&corpus("proxy-bad")),
        "-m",
        "/nonexistent/model.gguf",
        "--metrics",
        "he_snr,bogus",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'bogus'"), "{err}");
}

/// A server returns top-k lists: metrics needing the full distribution are null with a reason,
/// the others agree with the embedded engine.
#[test]
fn a_remote_top_k_list_leaves_full_distribution_metrics_unavailable() {
    let model = default_tiny();
    let docs = corpus("proxy-remote");
    let server = Server::start(&model, 0, &["-t", "1"]);
    let out = scratch().join("proxy-remote-rows.jsonl");
    let summary = json_run(&[
        "score",
        s(&docs),
        "-m",
        s(&model),
        "--remote",
        &server.url,
        "--metrics",
        "hes,norm_entropy__uniform,xent__entropy,xent__uniform,topk_mass",
        "-o",
        s(&out),
        "--json",
    ]);
    for r in rows(&out).iter().chain([&summary]) {
        for name in ["hes", "norm_entropy__uniform", "xent__entropy"] {
            assert!(r[name].is_null(), "{name} in {r}");
        }
        assert!(close(&r["xent__uniform"], &r["mean_nll"]), "{r}");
        assert!(r["topk_mass"].as_f64().unwrap() <= 1.0 + 1e-6);
    }
    let why = summary["unavailable"]["hes"].as_str().unwrap();
    assert!(why.contains("full distribution"), "{why}");
}

/// `eval` emits the metrics per trajectory and preset, and pooled per preset; the uniform
/// cross-entropy of each is the preset's own mean NLL (only its scored Action tokens).
#[test]
fn eval_emits_the_metrics_per_preset() {
    let dir = scratch().join("proxy-eval");
    std::fs::create_dir_all(&dir).unwrap();
    let record = |id: &str| {
        serde_json::json!({"id": id, "messages": [
            {"role": "user", "content": "List the files, then show the readme."},
            {"role": "assistant", "content": "I will list them first.\n```bash\nls -la\n```"},
            {"role": "user", "content": "README.md src"},
            {"role": "assistant", "content": "Now the readme.\n```bash\ncat README.md\n```"},
        ]})
        .to_string()
    };
    std::fs::write(
        dir.join("set.jsonl"),
        format!("{}\n{}\n", record("t1"), record("t2")),
    )
    .unwrap();
    let out = scratch().join("proxy-eval-rows.jsonl");
    let summary = json_run(&[
        "eval",
        "-T",
        s(&dir),
        "-m",
        s(&default_tiny()),
        "--metrics",
        "xent__uniform,top1__uniform,hes",
        "-o",
        s(&out),
        "--json",
    ]);
    let all = rows(&out);
    assert!(
        all.iter()
            .filter(|r| r["scored_tokens"].as_u64() > Some(0))
            .count()
            >= 2,
        "{all:?}"
    );
    let presets = summary["presets"].as_array().unwrap();
    for r in all.iter().chain(presets) {
        if r["scored_tokens"].as_u64().unwrap() == 0 {
            assert!(r["xent__uniform"].is_null(), "{r}");
            continue;
        }
        assert!(close(&r["xent__uniform"], &r["mean_nll"]), "{r}");
        assert!(close(&r["top1__uniform"], &r["top1_acc"]), "{r}");
        assert!(r["hes"].as_f64().unwrap() >= 0.0, "{r}");
    }
}

/// `profile --metrics` writes each metric as a Parquet column whose values are the ones `score`
/// gives the same documents; asking for other metrics is another run (its resume refuses the
/// parts of this one instead of mixing columns).
#[test]
fn profile_writes_the_metrics_as_columns_equal_to_score() {
    let model = default_tiny();
    let docs = corpus("proxy-profile");
    let metrics = "hes,rank__inv_freq,topk_mass,xent__uniform";
    let scored = scratch().join("proxy-profile-rows.jsonl");
    json_run(&[
        "score",
        s(&docs),
        "-m",
        s(&model),
        "--metrics",
        metrics,
        "-o",
        s(&scored),
        "--json",
    ]);
    let out = scratch().join("proxy-profile-out");
    let _ = std::fs::remove_dir_all(&out);
    ok(&hesnr(&[
        "profile",
        s(&docs),
        "-m",
        s(&model),
        "--metrics",
        metrics,
        "--out",
        s(&out),
    ]));
    let profiled = crate::profile_cli::read_rows(&out.join("profile-00000-of-00001.parquet"));
    let scored = rows(&scored);
    assert_eq!(profiled.len(), scored.len());
    for (p, r) in profiled.iter().zip(&scored) {
        assert_eq!(p["id"], r["id"]);
        for name in metrics.split(',') {
            assert!(close(&p[name], &r[name]), "{name}: profile {p:?} score {r}");
        }
    }
    // Other metrics make another run: its fingerprint (which resume checks parts against)
    // differs, and so does that of a run without any.
    let fingerprint = |out: &std::path::Path| -> Value {
        let stats: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("profile-00000-of-00001.stats.json")).unwrap(),
        )
        .unwrap();
        stats["fingerprint"].clone()
    };
    let mut seen = vec![fingerprint(&out)];
    for (name, extra) in [("hes-only", &["--metrics", "hes"][..]), ("none", &[][..])] {
        let o = scratch().join(format!("proxy-profile-{name}"));
        let _ = std::fs::remove_dir_all(&o);
        let mut args = vec!["profile", s(&docs), "-m", s(&model), "--out", s(&o)];
        args.extend_from_slice(extra);
        ok(&hesnr(&args));
        let fp = fingerprint(&o);
        assert!(!seen.contains(&fp), "{name}: {fp}");
        seen.push(fp);
    }
}
