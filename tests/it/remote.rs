//! Scoring through a remote completions server, against real server processes started here on
//! loopback: `hesnr serve` (vLLM's prompt-logprobs format, fed by the embedded engine) for
//! agreement with the embedded backend, behind a fault-injecting proxy (500s, hangs) and killed
//! and restarted mid-run; and llama-cpp-python's server, whose misaligned prompt
//! log-probabilities the verification must catch (run when `scripts/setup-servers.sh` has
//! installed it; CI does).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    default_tiny, hesnr_command as hesnr, ok, real_model, run_hesnr as run, s, scratch, skipping,
    Server,
};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process that is killed when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the proxy does with the n-th request.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    Pass,
    Error500,
    /// Read the request, then say nothing for this long and close.
    Hang(Duration),
    /// An HTML page with status 200 (a login page, a proxy's notice).
    Html200,
    NotFound404,
    /// Status 200 and a JSON body of this many bytes.
    Huge(usize),
    /// The server's answer with every negative number made positive (log-probabilities over 0).
    PositiveLogprobs,
}

/// A loopback HTTP proxy that forwards one request per connection and injects faults.
struct Proxy {
    url: String,
    /// Requests seen, and requests forwarded to the server.
    seen: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
}

fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().ok()?;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).ok()?;
    head.extend_from_slice(&body);
    Some(head)
}

impl Proxy {
    fn start(upstream: String, plan: impl Fn(usize) -> Fault + Send + Sync + 'static) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let (seen2, fwd2) = (Arc::clone(&seen), Arc::clone(&forwarded));
        let plan = Arc::new(plan);
        let upstream = upstream.trim_start_matches("http://").to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                let (seen, fwd, plan, upstream) = (
                    Arc::clone(&seen2),
                    Arc::clone(&fwd2),
                    Arc::clone(&plan),
                    upstream.clone(),
                );
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut client) else {
                        return;
                    };
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    match plan(n) {
                        Fault::Error500 => {
                            let body = r#"{"error":{"message":"injected failure","type":"internal_error"}}"#;
                            let _ = write!(
                                client,
                                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Fault::Hang(d) => std::thread::sleep(d),
                        Fault::Html200 => {
                            let body = "<html><body>Please log in</body></html>";
                            let _ = write!(
                                client,
                                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Fault::NotFound404 => {
                            let body = r#"{"detail":"Not Found"}"#;
                            let _ = write!(
                                client,
                                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Fault::Huge(n) => {
                            let _ = write!(
                                client,
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
                            );
                            let mut body = vec![b' '; n];
                            body[0] = b'[';
                            body[n - 1] = b']';
                            let _ = client.write_all(&body);
                        }
                        Fault::PositiveLogprobs | Fault::Pass => {
                            let Ok(mut up) = TcpStream::connect(&upstream) else {
                                // Server down: the client sees a reset connection.
                                return;
                            };
                            fwd.fetch_add(1, Ordering::SeqCst);
                            if up.write_all(&req).is_err() {
                                return;
                            }
                            let mut resp = Vec::new();
                            let _ = up.read_to_end(&mut resp);
                            if plan(n) == Fault::PositiveLogprobs {
                                // Same length: the Content-Length stays right.
                                let text = String::from_utf8_lossy(&resp).replace(":-", ": ");
                                resp = text.into_bytes();
                            }
                            let _ = client.write_all(&resp);
                        }
                    }
                });
            }
        });
        Proxy {
            url,
            seen,
            forwarded,
        }
    }
}

fn corpus(name: &str, n: usize) -> PathBuf {
    let path = scratch().join(format!("{name}.jsonl"));
    let mut out = String::new();
    for i in 0..n {
        let text = format!(
            "def f{i}(x):\n    \"\"\"Step {i}.\"\"\"\n    return x * {} + {}\n",
            i % 7 + 2,
            i * i
        );
        out.push_str(&serde_json::json!({"id": format!("doc-{i}"), "text": text}).to_string());
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    path
}

fn rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Per-document numbers, keyed by id, asserting every id appears once.
fn by_id(rows: &[Value]) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for r in rows {
        let id = r["id"].as_str().unwrap().to_string();
        assert!(m.insert(id.clone(), r.clone()).is_none(), "{id} twice");
    }
    m
}

fn close(a: &Value, b: &Value, rel: f64) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= rel * x.abs().max(y.abs()).max(1e-12),
        _ => a == b,
    }
}

/// Every document is in both runs once, with the same numbers.
fn assert_same_rows(embedded: &Path, remote: &Path) {
    let (a, b) = (by_id(&rows(embedded)), by_id(&rows(remote)));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (id, ra) in &a {
        let rb = &b[id];
        for key in [
            "tokens",
            "scored_tokens",
            "decision_tokens",
            "ppl",
            "he_snr",
            "mean_h10",
            "top1_acc",
        ] {
            assert!(
                close(&ra[key], &rb[key], 1e-5),
                "{id} {key}: embedded {} remote {}",
                ra[key],
                rb[key]
            );
        }
    }
}

/// Runs `hesnr score` through `url`, which must fail; returns its stderr.
fn failing_remote_score(docs: &Path, model: &Path, url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "score",
        s(docs),
        "-m",
        s(model),
        "--remote",
        url,
        "-o",
        "/dev/null",
    ];
    args.extend(extra);
    let out = run(&args, &[]);
    assert!(!out.status.success(), "scoring through {url} must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A one-document corpus of real code.
fn code_doc(name: &str) -> PathBuf {
    let docs = scratch().join(format!("{name}.jsonl"));
    let record = serde_json::json!({"id": "fib", "text": crate::common::CODE});
    std::fs::write(&docs, record.to_string() + "\n").unwrap();
    docs
}

fn embedded_rows(model: &Path, corpus: &Path, name: &str) -> PathBuf {
    let out = scratch().join(format!("{name}-embedded.jsonl"));
    ok(&run(
        &["score", s(corpus), "-m", s(model), "-o", s(&out), "-t", "1"],
        &[],
    ));
    out
}

#[test]
fn remote_scores_equal_embedded_scores() {
    let model = default_tiny();
    let docs = corpus("parity", 24);
    let emb = embedded_rows(&model, &docs, "parity");
    // `--api-key`, as the help shows it, is the key the server requires (it used to be the
    // client flag, silently ignored: the server ran open).
    let server = Server::start(&model, 0, &["-t", "1", "--api-key", "s3cret-key"]);

    // Without the key: a clear 401, not retried for minutes.
    let err = failing_remote_score(&docs, &model, &server.url, &[]);
    assert!(err.contains("401") && err.contains("API key"), "{err}");

    // The echo form is checked on the real model (below): the tiny vocabulary has so many
    // tokens printing the same text that its text-keyed lists lose candidates.
    for (protocol, text) in [("prompt-logprobs", false), ("prompt-logprobs", true)] {
        let rem = scratch().join(format!("parity-remote-{protocol}-{text}.jsonl"));
        let summary = scratch().join(format!("parity-summary-{protocol}-{text}.json"));
        let mut args = vec![
            "score",
            s(&docs),
            "-m",
            s(&model),
            "--remote",
            &server.url,
            "--remote-protocol",
            protocol,
            "--concurrency",
            "3",
            "-o",
            s(&rem),
            "--summary",
            s(&summary),
        ];
        if text {
            args.push("--remote-text");
        }
        let stderr = ok(&run(&args, &[("HESNR_API_KEY", "s3cret-key")]));
        assert_same_rows(&emb, &rem);
        let all = format!(
            "{stderr}{}{}",
            std::fs::read_to_string(&rem).unwrap(),
            std::fs::read_to_string(&summary).unwrap()
        );
        assert!(!all.contains("s3cret-key"), "the key leaked into outputs");
        let sum: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        let compute = sum["model"]["compute"].as_str().unwrap();
        assert!(compute.contains(protocol), "{compute}");
    }
}

#[test]
fn a_tokenizer_that_does_not_match_the_served_model_is_refused() {
    let model = default_tiny();
    let other = crate::common::tiny_model(
        "tiny-other-vocab",
        hesnr::gguf::tiny::TinyLlamaSpec {
            n_vocab_merges: 40,
            ..Default::default()
        },
    );
    let server = Server::start(&model, 0, &["-t", "1"]);
    let err = failing_remote_score(&corpus("mismatch", 2), &other, &server.url, &[]);
    assert!(err.contains("tokenizes differently"), "{err}");
}

#[test]
fn failures_are_retried_and_every_document_is_scored_once() {
    let model = default_tiny();
    let docs = corpus("faults", 40);
    let emb = embedded_rows(&model, &docs, "faults");
    let server = Server::start(&model, 0, &["-t", "1"]);
    // Connection checks pass; then every 4th request fails with 500 and every 7th hangs.
    let proxy = Proxy::start(server.url.clone(), |n| match n {
        0..=3 => Fault::Pass,
        n if n % 7 == 3 => Fault::Hang(Duration::from_secs(4)),
        n if n % 4 == 1 => Fault::Error500,
        _ => Fault::Pass,
    });
    let rem = scratch().join("faults-remote.jsonl");
    let stderr = ok(&run(
        &[
            "score",
            s(&docs),
            "-m",
            s(&model),
            "--remote",
            &proxy.url,
            "--concurrency",
            "3",
            "--timeout",
            "1.5",
            "--retries",
            "6",
            "-o",
            s(&rem),
        ],
        &[("RUST_LOG", "warn")],
    ));
    assert_same_rows(&emb, &rem);
    let seen = proxy.seen.load(Ordering::SeqCst);
    assert!(
        seen > 40 + 8,
        "faults were injected ({seen} requests for 40 documents)"
    );
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(
        stderr.contains("500") && stderr.contains("injected failure"),
        "{stderr}"
    );
}

#[test]
fn a_server_killed_and_restarted_midway_loses_nothing() {
    let model = default_tiny();
    let docs = corpus("restart", 120);
    let emb = embedded_rows(&model, &docs, "restart");
    let port = free_port();
    let mut server = Server::start(&model, port, &["-t", "1"]);
    let proxy = Proxy::start(server.url.clone(), |_| Fault::Pass);
    let rem = scratch().join("restart-remote.jsonl");
    let mut child = hesnr()
        .args([
            "score",
            s(&docs),
            "-m",
            s(&model),
            "--remote",
            &proxy.url,
            "--concurrency",
            "2",
            "--timeout",
            "5",
            "--retries",
            "8",
            "-o",
            s(&rem),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while proxy.forwarded.load(Ordering::SeqCst) < 30 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let _restarted = Server::start(&model, port, &["-t", "1"]);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("retrying"), "the outage was seen: {stderr}");
    assert_same_rows(&emb, &rem);
}

#[test]
fn profile_runs_through_a_server() {
    let model = default_tiny();
    let docs = corpus("profile", 30);
    let server = Server::start(&model, 0, &["-t", "1"]);
    let a = scratch().join("profile-embedded");
    let b = scratch().join("profile-remote");
    for (dir, remote) in [(&a, None), (&b, Some(server.url.as_str()))] {
        let mut args = vec!["profile", s(&docs), "-m", s(&model), "--out", s(dir)];
        if let Some(u) = remote {
            args.extend(["--remote", u, "--concurrency", "3"]);
        }
        ok(&run(&args, &[]));
    }
    let stats = |d: &Path| -> Value {
        let f = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".stats.json"))
            .expect("stats file");
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap()
    };
    let (sa, sb) = (stats(&a), stats(&b));
    assert_eq!(sa["documents"], sb["documents"]);
    assert_eq!(sa["tokens"], sb["tokens"]);
    assert_eq!(sb["documents"], 30);
}

#[test]
fn a_server_with_shifted_lists_is_refused_by_name() {
    let Some(model) = real_model() else { return };
    let server = Server::start(&model, 0, &["--fault", "shift-topk"]);
    let err = failing_remote_score(&code_doc("shifted"), &model, &server.url, &[]);
    // Which check fires first depends on the form; each names itself.
    assert!(
        err.contains("failed the `")
            && err.contains("at token")
            && err.contains("cannot be trusted"),
        "{err}"
    );
    let probe = run(&["probe", &server.url, "-m", s(&model)], &[]);
    let text = String::from_utf8_lossy(&probe.stdout);
    assert_eq!(
        text.matches("WRONG (").count(),
        4,
        "every form is refused: {text}"
    );
}

#[test]
fn the_default_model_agrees_within_one_percent_through_a_server() {
    let Some(model) = real_model() else { return };
    let corpus_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/corpus/code.jsonl");
    let docs = scratch().join("real-code.jsonl");
    let all = std::fs::read_to_string(&corpus_path).unwrap();
    let head: Vec<&str> = all.lines().take(12).collect();
    std::fs::write(&docs, head.join("\n") + "\n").unwrap();
    let server = Server::start(&model, 0, &[]);
    let forms: [Option<&[&str]>; 4] = [
        None,
        Some(&["--remote-protocol", "prompt-logprobs"]),
        Some(&["--remote-protocol", "echo"]),
        Some(&["--remote-protocol", "echo", "--remote-text"]),
    ];
    let summaries: Vec<Value> = forms
        .iter()
        .map(|form| {
            let mut args = vec![
                "score",
                s(&docs),
                "-m",
                s(&model),
                "-o",
                "/dev/null",
                "--json",
            ];
            if let Some(f) = form {
                args.extend(["--remote", server.url.as_str()]);
                args.extend(f.iter().copied());
            }
            let out = run(&args, &[]);
            ok(&out);
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    for (i, remote) in summaries.iter().enumerate().skip(1) {
        for key in ["ppl", "he_snr"] {
            let (a, b) = (
                summaries[0][key].as_f64().unwrap(),
                remote[key].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 0.01 * a.abs(),
                "form {i} {key}: embedded {a} remote {b}"
            );
        }
        assert_eq!(summaries[0]["scored_tokens"], remote["scored_tokens"]);
    }
}

/// llama-cpp-python's OpenAI server, installed by scripts/setup-servers.sh.
fn llama_cpp_python() -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-servers/bin/python");
    // The same check as scripts/setup-servers.sh: a venv whose install was interrupted has a
    // python but no server module.
    let installed = py.is_file()
        && std::process::Command::new(&py)
            .args(["-c", "import llama_cpp.server"])
            .output()
            .is_ok_and(|o| o.status.success());
    if installed {
        Some(py)
    } else {
        skipping("llama-cpp-python not installed (bash scripts/setup-tests.sh)");
        None
    }
}

#[test]
fn llama_cpp_python_misaligned_logprobs_are_caught() {
    let (Some(model), Some(py)) = (real_model(), llama_cpp_python()) else {
        return;
    };
    let port = free_port();
    let server_log = scratch().join("llama-cpp-python.log");
    let _server = KillOnDrop(
        Command::new(py)
            // Cargo points LD_LIBRARY_PATH at the build's own llama.cpp libraries; the server
            // must load the ones it was built with (another libggml crashes it).
            .env_remove("LD_LIBRARY_PATH")
            .args([
                "-m",
                "llama_cpp.server",
                "--model",
                s(&model),
                "--host",
                "127.0.0.1",
            ])
            .args([
                "--port",
                &port.to_string(),
                "--n_ctx",
                "2048",
                "--logits_all",
                "true",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&server_log).unwrap())
            .spawn()
            .expect("start llama-cpp-python"),
    );
    // What the server printed, for the assertion messages (a crash shows there, not here).
    let log_tail = || {
        let log = std::fs::read_to_string(&server_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "llama-cpp-python did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let err = failing_remote_score(&code_doc("lcp"), &model, &url, &["--retries", "1"]);
    let probe = run(&["probe", &url, "-m", s(&model)], &[]);
    assert!(
        err.contains("`offset` check"),
        "{err}\nserver log:\n{}",
        log_tail()
    );
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        text.contains("echo") && text.contains("WRONG (offset)"),
        "{text}\nserver log:\n{}",
        log_tail()
    );
}

/// Two JSON values equal, numbers within `rel`.
fn assert_close_json(a: &Value, b: &Value, rel: f64, at: &str) {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => {
            assert!(close(a, b, rel), "{at}: {a} vs {b}")
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                assert_close_json(v, &y[k], rel, &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_close_json(v, w, rel, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn eval_through_a_server_gives_the_same_rows_in_the_same_order() {
    let model = default_tiny();
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/trajectories");
    let server = Server::start(&model, 0, &["-t", "1"]);
    let a = scratch().join("eval-embedded.jsonl");
    let b = scratch().join("eval-remote.jsonl");
    ok(&run(
        &[
            "eval",
            "-T",
            s(&set),
            "-m",
            s(&model),
            "--preset",
            "all",
            "-o",
            s(&a),
            // A server cannot shift a cache for hesnr: the remote run is strided, so this one is too.
            "--window-policy",
            "strided",
        ],
        &[],
    ));
    ok(&run(
        &[
            "eval",
            "-T",
            s(&set),
            "-m",
            s(&model),
            "--preset",
            "all",
            "-o",
            s(&b),
            "--remote",
            &server.url,
            "--concurrency",
            "3",
        ],
        &[],
    ));
    let (mut ra, mut rb) = (rows(&a), rows(&b));
    assert!(ra.len() >= 7 * 5, "every trajectory x preset: {}", ra.len());
    // Each row names what computed it: the embedded engine's precision, or the server.
    for (rows, precision) in [(&mut ra, "as-is"), (&mut rb, "server")] {
        for r in rows.iter_mut() {
            assert_eq!(
                r.as_object_mut().unwrap().remove("precision"),
                Some(precision.into())
            );
        }
    }
    assert_close_json(&Value::Array(ra), &Value::Array(rb), 1e-6, "rows");
}

#[test]
fn an_outage_past_the_retries_stops_the_run_and_profile_resumes_after_it() {
    let model = default_tiny();
    let docs = corpus("outage", 80);
    let port = free_port();
    let mut server = Server::start(&model, port, &["-t", "1"]);
    let proxy = Proxy::start(server.url.clone(), |_| Fault::Pass);
    let out_dir = scratch().join("outage-profile");
    let args = [
        "profile",
        s(&docs),
        "-m",
        s(&model),
        "--out",
        s(&out_dir),
        "--remote",
        &proxy.url,
        "--retries",
        "1",
        "--timeout",
        "2",
        "--part-size",
        "8",
    ];
    let mut child = hesnr().args(args).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while proxy.forwarded.load(Ordering::SeqCst) < 30 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the run made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the run must stop, not skip every document"
    );
    assert!(
        stderr.contains("unavailable") && stderr.contains("resume"),
        "{stderr}"
    );

    // Server back: the same command resumes from the parts and finishes every document once.
    let _back = Server::start(&model, port, &["-t", "1"]);
    let stderr = ok(&run(&args, &[]));
    let stats = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".stats.json"))
        .expect("stats file");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap();
    assert_eq!(stats["documents"], 80, "{stderr}");
    assert_eq!(stats["skipped"], 0);
    assert!(stats["resumed_documents"].as_u64().unwrap() > 0, "{stats}");
}

/// Sends raw bytes on a new connection and returns the status line of the answer.
fn raw_request(addr: &str, bytes: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(bytes).unwrap();
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).unwrap();
    line
}

/// Reads what the server sends on `conn` until it closes (at most 30 s).
fn read_answer(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn serve_bounds_bodies_and_no_client_holds_up_the_others() {
    let model = default_tiny();
    let server = Server::start(
        &model,
        0,
        &["-t", "1", "--max-body-mb", "1", "--read-timeout", "2"],
    );
    let addr = server.url.trim_start_matches("http://").to_string();

    // A client that declares a body and stalls after a few bytes of it.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled
        .write_all(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"pro")
        .unwrap();

    // Others are still answered, at once (they used to wait behind it forever).
    let t0 = Instant::now();
    let health = raw_request(&addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.contains(" 200"), "{health}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());

    // A body declared over --max-body-mb is refused before any of it is read.
    let status = raw_request(
        &addr,
        format!(
            "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        )
        .as_bytes(),
    );
    assert!(status.contains(" 413"), "{status}");

    // The stalled client is answered 408 after --read-timeout and disconnected (it used to
    // hold its reading slot for as long as it kept the connection open).
    let cut = read_answer(&mut stalled);
    assert!(
        cut.starts_with("HTTP/1.1 408") && cut.contains("--read-timeout"),
        "{cut:?}"
    );

    // Clients that take every reading slot get them back when they are cut off: meanwhile
    // others are told 503 at once, then answered again.
    let mut hogs: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"POST /tokenize HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    let t0 = Instant::now();
    let mut busy = String::new();
    while !busy.contains(" 503") && t0.elapsed() < Duration::from_secs(20) {
        busy = raw_request(&addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    assert!(busy.contains(" 503"), "{busy}");
    for hog in &mut hogs {
        let cut = read_answer(hog);
        assert!(cut.starts_with("HTTP/1.1 408"), "{cut:?}");
    }
    let health = raw_request(&addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.contains(" 200"), "{health}");
}

/// The requests `connect` makes before scoring: the model list, `/tokenize`, one probe.
const CONNECT_REQUESTS: usize = 3;

#[test]
fn a_server_that_goes_wrong_after_connecting_stops_the_run_naming_the_check_and_keeps_the_rows() {
    let model = default_tiny();
    let docs = corpus("goes-wrong", 12);
    let server = Server::start(&model, 0, &["-t", "1"]);
    for (fault, check) in [
        (Fault::Html200, "`json`"),
        (Fault::NotFound404, "`status`"),
        (Fault::PositiveLogprobs, "`logprob-range`"),
        (Fault::Huge(8 << 20), "`size`"),
    ] {
        // Five documents are scored, then every answer is wrong.
        let proxy = Proxy::start(server.url.clone(), move |n| {
            if n < CONNECT_REQUESTS + 5 {
                Fault::Pass
            } else {
                fault
            }
        });
        let name = format!("{fault:?}").to_lowercase();
        let rows_path = scratch().join(format!("goes-wrong-{name}.jsonl"));
        let summary = scratch().join(format!("goes-wrong-{name}.json"));
        let out = run(
            &[
                "score",
                s(&docs),
                "-m",
                s(&model),
                "--remote",
                &proxy.url,
                "--concurrency",
                "1",
                "-o",
                s(&rows_path),
                "--summary",
                s(&summary),
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{fault:?}: the run must stop: {stderr}"
        );
        assert!(
            stderr.contains(check) && stderr.contains(&proxy.url) && stderr.contains("doc-5"),
            "{fault:?}: the server, the check and the document are named: {stderr}"
        );
        // Not one request per remaining document: the first wrong answer stops the run.
        assert_eq!(
            proxy.seen.load(Ordering::SeqCst),
            CONNECT_REQUESTS + 6,
            "{fault:?}"
        );
        // The rows scored before the stop are kept, and the summary says why it ended.
        let kept = rows(&rows_path);
        let ids: Vec<&str> = kept.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            ["doc-0", "doc-1", "doc-2", "doc-3", "doc-4"],
            "{fault:?}"
        );
        let sum: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        assert_eq!(sum["documents"], 5, "{fault:?}");
        assert!(sum["stopped"].as_str().unwrap().contains(check), "{sum}");
    }
}

#[test]
fn a_large_answer_is_read_only_up_to_its_bound_which_can_be_raised() {
    let model = default_tiny();
    let docs = corpus("large-answer", 2);
    let server = Server::start(&model, 0, &["-t", "1"]);
    // After connecting, every answer is 3 MiB of padding: over what a short document can need.
    let padded = || {
        Proxy::start(server.url.clone(), |n| {
            if n < CONNECT_REQUESTS {
                Fault::Pass
            } else {
                Fault::Huge(3 << 20)
            }
        })
    };
    let proxy = padded();
    let err = failing_remote_score(&docs, &model, &proxy.url, &["--concurrency", "1"]);
    assert!(
        err.contains("`size`") && err.contains("--max-response-mb"),
        "{err}"
    );
    // Raised past it, the answer is read (and then found not to be prompt log-probabilities).
    let proxy = padded();
    let err = failing_remote_score(
        &docs,
        &model,
        &proxy.url,
        &["--concurrency", "1", "--max-response-mb", "4"],
    );
    assert!(err.contains("`form`") && !err.contains("`size`"), "{err}");
}

#[test]
fn profile_stops_at_a_wrong_answer_and_rescores_it_on_resume() {
    let model = default_tiny();
    let docs = corpus("profile-wrong", 30);
    let server = Server::start(&model, 0, &["-t", "1"]);
    let healed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = Arc::clone(&healed);
    let proxy = Proxy::start(server.url.clone(), move |n| {
        if n < CONNECT_REQUESTS + 12 || h.load(Ordering::SeqCst) {
            Fault::Pass
        } else {
            Fault::NotFound404
        }
    });
    let out_dir = scratch().join("profile-wrong");
    let args = [
        "profile",
        s(&docs),
        "-m",
        s(&model),
        "--out",
        s(&out_dir),
        "--remote",
        &proxy.url,
        "--concurrency",
        "2",
        "--part-size",
        "5",
    ];
    let out = run(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must stop: {stderr}");
    assert!(
        stderr.contains("`status`") && stderr.contains("404") && stderr.contains("resume"),
        "{stderr}"
    );
    healed.store(true, Ordering::SeqCst);
    let stderr = ok(&run(&args, &[]));
    let stats = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".stats.json"))
        .expect("stats file");
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap();
    // Every document once, none recorded as skipped: the failed ones were scored on resume.
    assert_eq!(stats["documents"], 30, "{stderr}");
    assert_eq!(stats["skipped"], 0, "{stats}");
    assert!(
        stats["resumed_documents"].as_u64().unwrap() >= 10,
        "{stats}"
    );
}

#[test]
fn one_hanging_request_is_given_up_after_the_total_timeout() {
    let model = default_tiny();
    let docs = corpus("hang-total", 3);
    let server = Server::start(&model, 0, &["-t", "1"]);
    let proxy = Proxy::start(server.url.clone(), |n| {
        if n < CONNECT_REQUESTS {
            Fault::Pass
        } else {
            Fault::Hang(Duration::from_secs(600))
        }
    });
    // 100 retries of 2 s each would take minutes; the total allows 4 s.
    let mut child = hesnr()
        .args([
            "score",
            s(&docs),
            "-m",
            s(&model),
            "--remote",
            &proxy.url,
            "--timeout",
            "2",
            "--retries",
            "100",
            "--total-timeout",
            "4",
            "-o",
            "/dev/null",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child_stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(child_stderr).read_to_string(&mut text);
        text
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still retrying one request after 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = reader.join().unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("unavailable") && stderr.contains("--total-timeout"),
        "{stderr}"
    );
}

/// `eval` through a server that goes wrong mid-run stops as `score` does: the trajectories
/// scored before it are written, the summary says why, and the command fails.
#[test]
fn an_eval_stopped_by_a_failing_server_keeps_the_trajectories_scored_before_it() {
    let model = default_tiny();
    let server = Server::start(&model, 0, &["-t", "1"]);
    let set = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/trajectories/chat.jsonl"
    );
    let eval = |url: &str, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "-T",
            set,
            "-m",
            s(&model),
            "--remote",
            url,
            "--concurrency",
            "1",
        ];
        args.extend_from_slice(extra);
        run(&args, &[])
    };
    // The requests of connecting and of the first trajectory, through a proxy that passes all.
    let counting = Proxy::start(server.url.clone(), |_| Fault::Pass);
    let first_rows = scratch().join("eval-stop-first.jsonl");
    let out = eval(&counting.url, &["--limit", "1", "-o", s(&first_rows)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = counting.seen.load(Ordering::SeqCst);
    // Then every answer after the first trajectory's is an HTML page.
    let proxy = Proxy::start(server.url.clone(), move |n| {
        if n < first {
            Fault::Pass
        } else {
            Fault::Html200
        }
    });
    let rows_path = scratch().join("eval-stop-rows.jsonl");
    let summary = scratch().join("eval-stop-summary.json");
    let out = eval(&proxy.url, &["-o", s(&rows_path), "--summary", s(&summary)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must stop: {stderr}");
    assert!(
        stderr.contains("`json`") && stderr.contains("1 trajectories scored before it are written"),
        "{stderr}"
    );
    let kept = rows(&rows_path);
    assert_eq!(
        kept,
        rows(&first_rows),
        "the first trajectory's row, as scored alone"
    );
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(summary["trajectories"], 1);
    assert!(
        summary["stopped"].as_str().unwrap().contains("`json`"),
        "{summary:#}"
    );
}
