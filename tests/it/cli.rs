//! The `hesnr` binary end to end on a tiny model: outputs, summaries and bad input.

use std::path::Path;

use crate::common::{default_tiny, hesnr, hesnr_command, scratch, tiny_model, CODE};
use hesnr::gguf::tiny::{TinyArchitecture, TinyLlamaSpec};
use serde_json::Value;

fn write(name: &str, content: &[u8]) -> String {
    let p = scratch().join(name);
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn model() -> String {
    default_tiny().to_string_lossy().into_owned()
}

#[test]
fn bad_records_are_reported_counted_and_skipped() {
    let mut data = Vec::new();
    data.extend(
        format!(
            "{}\n",
            serde_json::json!({"id": "good-1", "text": CODE, "metadata": {"lang": "py"}})
        )
        .as_bytes(),
    );
    data.extend(b"{\"id\": \"broken\", \"text\": \n");
    data.extend(b"{\"id\": \"bytes\", \"text\": \"caf\xff\"}\n");
    data.extend(b"{\"id\": \"notext\"}\n");
    data.extend(b"{\"id\": \"number\", \"text\": 42}\n");
    data.extend(b"{\"id\": \"empty\", \"text\": \"\"}\n");
    data.extend(
        format!(
            "{}\n",
            serde_json::json!({"id": "good-2", "text": "fn main() {}"})
        )
        .as_bytes(),
    );
    let input = write("mixed.jsonl", &data);
    let rows = scratch().join("mixed-rows.jsonl");
    let out = hesnr(&[
        "score",
        &input,
        "-m",
        &model(),
        "-o",
        rows.to_str().unwrap(),
        "--json",
        "-t",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON on stdout");
    assert_eq!(summary["documents"], 2);
    assert_eq!(summary["skipped"], 5);
    let errors: Vec<String> = summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    for (line, what) in [
        (2, "JSON"),
        (3, "UTF-8"),
        (4, "text"),
        (5, "text"),
        (6, "text"),
    ] {
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("mixed.jsonl:{line}")) && e.contains(what)),
            "line {line} ({what}) not reported: {errors:?}"
        );
    }
    let rows: Vec<Value> = read_jsonl(&rows);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], "good-1");
    assert_eq!(rows[0]["metadata"]["lang"], "py", "metadata passes through");
    assert!(rows[1].get("metadata").is_none());
    assert_eq!(rows[1]["id"], "good-2");
    for key in [
        "scored_tokens",
        "ppl",
        "top1_acc",
        "decision_tokens",
        "he_snr",
        "he_ppl",
        "mean_h10",
    ] {
        assert!(rows[0].get(key).is_some(), "missing {key}");
    }
    assert!(rows[0]["ppl"].as_f64().unwrap() > 1.0);
}

#[test]
fn summary_pools_the_documents_exactly() {
    let docs: Vec<String> = (0..4)
        .map(|i| serde_json::json!({"id": i, "text": CODE.repeat(i + 1)}).to_string())
        .collect();
    let input = write("pool.jsonl", (docs.join("\n") + "\n").as_bytes());
    let rows = scratch().join("pool-rows.jsonl");
    let out = hesnr(&[
        "score",
        &input,
        "-m",
        &model(),
        "-o",
        rows.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<Value> = read_jsonl(&rows);
    let scored: u64 = rows
        .iter()
        .map(|r| r["scored_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(summary["scored_tokens"].as_u64().unwrap(), scored);
    // The tiny model is an F32 file, run as it is.
    assert_eq!(summary["model"]["precision"], "as-is");
    assert!(
        rows.iter().all(|r| r["precision"] == "as-is"),
        "every row names its precision"
    );
    let nll: f64 = rows
        .iter()
        .map(|r| r["mean_nll"].as_f64().unwrap() * r["scored_tokens"].as_f64().unwrap())
        .sum();
    let pooled = summary["mean_nll"].as_f64().unwrap();
    assert!((pooled - nll / scored as f64).abs() < 1e-9);
    // Same documents, one per run, give the same per-document rows.
    let single = write("pool-single.jsonl", format!("{}\n", docs[2]).as_bytes());
    let out1 = hesnr(&["score", &single, "-m", &model()]);
    let row: Value =
        serde_json::from_slice(out1.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(row["mean_nll"], rows[2]["mean_nll"]);
    assert_eq!(row["he_snr"], rows[2]["he_snr"]);
}

#[test]
fn token_trace_lists_every_scored_token() {
    let code = format!("{CODE}# héllo 世界 🦀\n");
    let input = write("trace.txt", code.as_bytes());
    let trace = scratch().join("trace.jsonl");
    let out = hesnr(&[
        "score",
        &input,
        "-m",
        &model(),
        "--tokens",
        trace.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines: Vec<Value> = read_jsonl(&trace);
    assert_eq!(
        lines.len() as u64,
        summary["scored_tokens"].as_u64().unwrap()
    );
    let decisions = lines
        .iter()
        .filter(|l| l["decision"].as_bool().unwrap())
        .count() as u64;
    assert_eq!(decisions, summary["decision_tokens"].as_u64().unwrap());
    // Byte offsets tile the scored text: each token starts where the previous one ended.
    let mut at = lines[0]["offset"][0].as_u64().unwrap() as usize;
    for l in &lines {
        assert_eq!(l["offset"][0].as_u64().unwrap() as usize, at);
        at = l["offset"][1].as_u64().unwrap() as usize;
    }
    assert_eq!(at, code.len());
    // Character offsets agree with the byte offsets wherever a token is whole characters.
    let chars: Vec<char> = code.chars().collect();
    for l in &lines {
        let (bs, be) = (
            l["offset"][0].as_u64().unwrap() as usize,
            l["offset"][1].as_u64().unwrap() as usize,
        );
        let (cs, ce) = (
            l["char_offset"][0].as_u64().unwrap() as usize,
            l["char_offset"][1].as_u64().unwrap() as usize,
        );
        if code.is_char_boundary(bs) && code.is_char_boundary(be) {
            assert_eq!(chars[cs..ce].iter().collect::<String>(), code[bs..be]);
            assert_eq!(l["token"].as_str().unwrap(), &code[bs..be], "token text");
        } else {
            assert!(
                cs < ce && ce <= chars.len(),
                "a split character is covered: {l}"
            );
        }
    }
    for l in &lines {
        let top = l["top"].as_array().unwrap();
        assert_eq!(top.len(), 10);
        let h = l["h10"].as_f64().unwrap();
        assert!((0.0..=10f64.ln() + 1e-9).contains(&h));
    }
}

#[test]
fn model_problems_are_clear_errors() {
    let input = write("one.jsonl", b"{\"text\": \"x = 1\"}\n");
    let out = hesnr(&["score", &input, "-m", "/nonexistent/model.gguf"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");

    let bytes = std::fs::read(default_tiny()).unwrap();
    let cut = write("cut.gguf", &bytes[..bytes.len() / 2]);
    let out = hesnr(&["score", &input, "-m", &cut]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.gguf") && err.contains("tensor"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_input_fails_before_loading_the_model() {
    let out = hesnr(&["score", "/no/such/data.jsonl", "-m", &model()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/data.jsonl"), "{err}");
}

#[test]
fn stdin_jsonl_with_custom_field() {
    use std::io::Write;
    let mut child = hesnr_command()
        .args([
            "score",
            "-",
            "-m",
            &model(),
            "--text-field",
            "content",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"content\": \"let x = 1;\"}\n{\"content\": \"let y = 2;\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["documents"], 2);
    assert!(Path::new(&model()).exists());
}

/// Out-of-range flag values are usage errors (exit 2) naming the flag: `--timeout inf` used to
/// panic, `--concurrency 100000` to abort, `--timeout 0`/`-1`/`nan` to become 1 ms.
#[test]
fn out_of_range_flags_are_refused_with_exit_2() {
    let input = write("range.jsonl", b"{\"text\": \"x = 1\"}\n");
    for (flag, value) in [
        ("--timeout", "inf"),
        ("--timeout", "1e30"),
        ("--timeout", "0"),
        ("--timeout", "-1"),
        ("--timeout", "nan"),
        ("--concurrency", "100000"),
        ("--concurrency", "0"),
        ("--retries", "1000"),
    ] {
        let arg = format!("{flag}={value}");
        let out = hesnr(&[
            "score",
            &input,
            "-m",
            &model(),
            "--remote",
            "http://127.0.0.1:9",
            &arg,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(
            err.contains(flag) && !err.contains("panicked"),
            "{arg}: {err}"
        );
    }
}

/// An output naming an input (as given, or through another path) is refused before anything is
/// written, and the input is left as it was: `score x.jsonl -o x.jsonl` used to replace the
/// corpus with its scores.
#[test]
fn outputs_never_overwrite_inputs() {
    let input = write("corpus.jsonl", b"{\"id\": \"a\", \"text\": \"x = 1\"}\n");
    let before = std::fs::read(&input).unwrap();
    let dir = scratch().to_string_lossy().into_owned();
    let other_path = format!(
        "{dir}/../{}/corpus.jsonl",
        scratch().file_name().unwrap().to_string_lossy()
    );
    for flag in ["-o", "--tokens", "--summary"] {
        for out in [input.as_str(), other_path.as_str()] {
            let o = hesnr(&["score", &input, "-m", &model(), flag, out]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{flag} {out}: {err}");
            assert!(err.contains("also an input"), "{flag} {out}: {err}");
            assert_eq!(std::fs::read(&input).unwrap(), before, "{flag} {out}");
        }
    }
    let traj = write(
        "traj.jsonl",
        br#"{"instance_id": "t", "messages": [{"role": "user", "content": "fix"}, {"role": "assistant", "content": "ls"}]}
"#,
    );
    let before = std::fs::read(&traj).unwrap();
    let o = hesnr(&["eval", "-T", &traj, "-m", &model(), "-o", &traj]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("also an input"),
        "{err}"
    );
    assert_eq!(std::fs::read(&traj).unwrap(), before);
}

/// An endless input is one skipped, reported record, not a run that reads until memory runs
/// out (`hesnr score /dev/zero` used to).
#[test]
fn an_endless_input_is_one_skipped_record() {
    let out = hesnr(&["score", "/dev/zero", "-m", &model(), "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too large to be one document"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(summary["skipped"], 1, "{err}");
}

/// `report-select --bins` and `--top` are bounded usage errors (`--bins 100000000` wrote a
/// 15.5 GB report).
#[test]
fn report_select_bounds_bins_and_top() {
    for arg in ["--bins=100000000", "--bins=0", "--top=100000"] {
        let out = hesnr(&["report-select", "/nonexistent", arg]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains(arg.split('=').next().unwrap()), "{arg}: {err}");
    }
}

/// What the Python package relies on: `tiny-model` writes a model that scores like the tests'
/// own, and `HESNR_PROGRESS=json` turns the progress line into JSON lines on stderr, the last
/// one counting every document.
#[test]
fn the_python_package_hooks_write_a_model_and_json_progress() {
    let path = scratch().join("from-cli.gguf");
    let out = hesnr(&["tiny-model", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(model()).unwrap()
    );
    let data = write(
        "progress.jsonl",
        b"{\"text\": \"let x = 1;\"}\n{\"text\": \"let y = 2;\"}\n{\"bad\": 1}\n",
    );
    let out = crate::common::run_hesnr(
        &["score", &data, "-m", &model(), "--json"],
        &[("HESNR_PROGRESS", "json")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("hesnr_progress").cloned())
        .collect();
    let last = progress.last().expect("progress lines on stderr");
    assert_eq!(
        (last["done"].as_u64(), last["skipped"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(last["tokens"].as_u64().unwrap() > 0);
}

/// A one-document input longer than two 64-token windows.
fn long_text(name: &str) -> String {
    let record = serde_json::json!({"id": "long", "text": CODE.repeat(6)});
    write(name, format!("{record}\n").as_bytes())
}

/// `hesnr score` of `input` in 64-token windows, the summary as JSON on stdout.
fn score_in_small_windows(input: &str, model: &str, extra: &[&str]) -> std::process::Output {
    let args: Vec<&str> = ["score", input, "-m", model, "--window", "64", "--json"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    hesnr(&args)
}

/// A text longer than the window is decoded once through a shifting cache unless another policy
/// is asked for: the default's rows are those of `--window-policy shift`, and the summary says so.
#[test]
fn texts_longer_than_the_window_shift_by_default() {
    let input = long_text("long-default.jsonl");
    let model = model();
    let run = |extra: &[&str]| {
        let out = score_in_small_windows(&input, &model, extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let default = run(&[]);
    assert!(
        default["tokens"].as_u64().unwrap() > 128,
        "longer than two windows"
    );
    assert_eq!(default["settings"]["window_policy"], "shift");
    assert_eq!(default["settings"]["sinks"], 4);
    let shift = run(&["--window-policy", "shift"]);
    let strided = run(&["--window-policy", "strided"]);
    assert_eq!(strided["settings"]["window_policy"], "strided");
    assert_eq!(default["mean_nll"], shift["mean_nll"]);
    assert_ne!(
        default["mean_nll"], strided["mean_nll"],
        "the policies differ on long texts"
    );
    // A stride asks for the strided policy.
    let with_stride = run(&["--stride", "32"]);
    assert_eq!(with_stride["settings"]["window_policy"], "strided");
    assert_eq!(with_stride["mean_nll"], strided["mean_nll"]);
}

/// A model whose KV cache llama.cpp cannot shift (M-RoPE, here a tiny `qwen2vl`) is scored with
/// the strided policy by default; asking it for the shift policy, or for sink tokens, is a clear
/// error that says what to do.
#[test]
fn a_model_that_cannot_shift_is_strided_by_default() {
    let model = tiny_model(
        "tiny-qwen2vl",
        TinyLlamaSpec {
            architecture: TinyArchitecture::Qwen2Vl,
            ..Default::default()
        },
    );
    let model = model.to_string_lossy().into_owned();
    let input = long_text("long-mrope.jsonl");
    let run = |extra: &[&str]| score_in_small_windows(&input, &model, extra);
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["settings"]["window_policy"], "strided");
    assert!(
        summary["tokens"].as_u64().unwrap() > 128,
        "longer than two windows"
    );
    assert!(summary["mean_nll"].as_f64().unwrap().is_finite());
    for (extra, advice) in [
        (
            &["--window-policy", "shift"][..],
            "use --window-policy strided",
        ),
        (&["--sink-tokens", "2"][..], "drop --sink-tokens"),
    ] {
        let out = run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} must fail");
        assert!(
            stderr.contains("cannot shift a KV cache") && stderr.contains(advice),
            "{extra:?}: {stderr}"
        );
    }
}
