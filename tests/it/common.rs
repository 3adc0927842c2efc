//! Shared helpers for the integration tests: tiny random-weight GGUF models in the real format,
//! a scratch folder per test module, and the one way to run the hesnr binary.
//!
//! All test modules run as threads of one process, so nothing here changes that process's
//! environment: a child gets its environment explicitly from [`hesnr_command`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use hesnr::gguf::tiny::{write_tiny_llama, TinyLlamaSpec};

/// The scratch folder of the calling test module, `<target>/tmp/it/<module>` (emptied on the
/// module's first use in a run), also the HESNR_HOME of the hesnr processes the module starts,
/// so that their model conversions are cached there.
///
/// The module is the file of the first caller outside this file (`#[track_caller]`): every
/// helper here that reaches `scratch()` is `#[track_caller]` too, so a tiny model or a child
/// process belongs to the test module that asked for it and modules never see each other's
/// files.
#[track_caller]
pub fn scratch() -> &'static Path {
    let file = std::panic::Location::caller().file();
    let module = Path::new(file)
        .file_stem()
        .and_then(OsStr::to_str)
        .expect("caller file name");
    assert!(
        module != "common",
        "scratch() reached from a helper in {file} that is not #[track_caller]"
    );
    static DIRS: Mutex<BTreeMap<String, &'static Path>> = Mutex::new(BTreeMap::new());
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    dirs.entry(module.to_string()).or_insert_with(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(env!("CARGO_CRATE_NAME"))
            .join(module);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        Box::leak(d.into_boxed_path())
    })
}

/// A variable of the test process that would change what hesnr does and so must not reach it:
/// every `HESNR_*` setting (model, remote server, API keys, home), every `SLURM_*` variable
/// (`hesnr profile` shards itself from a Slurm array) and `RUST_LOG`.
///
/// The one exception is `HESNR_BACKENDS_DIR`, where the CPU kernel modules live: it describes
/// the installation, not the run, and the in-process tests of this binary load their kernels
/// from it too, so the tests that compare in-process and child results compare the same kernels
/// (and a machine whose best kernel variant crashes can point the whole suite elsewhere).
pub fn is_user_setting(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    (name.starts_with("HESNR_") && name != "HESNR_BACKENDS_DIR")
        || name.starts_with("SLURM_")
        || name == "RUST_LOG"
}

/// The hesnr binary with the calling module's scratch folder as HESNR_HOME and none of the
/// user's model, server, Slurm or log settings.
#[track_caller]
pub fn hesnr_command() -> Command {
    hesnr_command_from(std::env::vars_os())
}

/// [`hesnr_command`] for a given parent environment: the child gets exactly `parent` without
/// its user settings ([`is_user_setting`]), plus HESNR_HOME.
#[track_caller]
pub fn hesnr_command_from(parent: impl IntoIterator<Item = (OsString, OsString)>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hesnr"));
    c.env_clear()
        .envs(parent.into_iter().filter(|(k, _)| !is_user_setting(k)))
        .env("HESNR_HOME", scratch());
    c
}

/// Runs hesnr with `args`.
#[track_caller]
pub fn hesnr(args: &[&str]) -> std::process::Output {
    run_hesnr(args, &[])
}

/// Runs hesnr with `args` and extra environment variables.
#[track_caller]
pub fn run_hesnr(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = hesnr_command();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run hesnr")
}

/// Runs hesnr with `args` and `stdin` as its standard input (written from another thread, so a
/// child that writes much before it has read all, or fails without reading, cannot block it).
#[track_caller]
pub fn run_hesnr_stdin(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = hesnr_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hesnr");
    let mut input = child.stdin.take().expect("piped stdin");
    let bytes = stdin.to_vec();
    // A child that fails before reading closes the pipe: its output says why, not this write.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().expect("run hesnr");
    writer.join().expect("stdin writer");
    out
}

/// Asserts a run succeeded (showing its stderr otherwise) and returns its stderr.
pub fn ok(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The strided window policy: windows of `size` tokens every `stride`.
pub fn strided(size: usize, stride: usize) -> hesnr::engine::Windowing {
    hesnr::engine::Windowing {
        size,
        policy: hesnr::engine::Policy::Strided { stride },
    }
}

/// The shift window policy: a KV cache of `size` tokens keeping `sinks` sink tokens.
pub fn shift(size: usize, sinks: usize) -> hesnr::engine::Windowing {
    hesnr::engine::Windowing {
        size,
        policy: hesnr::engine::Policy::Shift { sinks },
    }
}

/// Writes (once per spec name and module) a tiny llama model and returns its path.
#[track_caller]
pub fn tiny_model(name: &str, spec: TinyLlamaSpec) -> PathBuf {
    let path = scratch().join(format!("{name}.gguf"));
    if !path.exists() {
        write_tiny_llama(&path, &spec).expect("write tiny model");
    }
    path
}

#[track_caller]
pub fn default_tiny() -> PathBuf {
    tiny_model("tiny-f32", TinyLlamaSpec::default())
}

/// The real default model, when fetched; tests that need it return early (and say so) without it.
/// Found where hesnr itself looks in the test process's environment (the user's hesnr home:
/// only the child processes get a scratch HESNR_HOME).
pub fn real_model() -> Option<PathBuf> {
    let p = hesnr::engine::model_store::default_model_path();
    if p.is_file() {
        Some(p)
    } else {
        skipping(&format!(
            "default model not fetched ({}; bash scripts/setup.sh fetches it)",
            p.display()
        ));
        None
    }
}

/// Says on the real stderr, past the test harness's output capture (which would hide it for a
/// passing test), that the current test skips its checks and why: `skipping: <test>: <why>`.
pub fn skipping(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let _ = writeln!(std::io::stderr().lock(), "skipping: {test}: {why}");
}

pub const CODE: &str = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\nif __name__ == \"__main__\":\n    print([fibonacci(i) for i in range(10)])\n";

/// A `hesnr serve` process; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    #[track_caller]
    pub fn start(model: &Path, port: u16, extra: &[&str]) -> Server {
        let mut child = hesnr_command()
            .args([
                "serve",
                "-m",
                model.to_str().unwrap(),
                "--port",
                &port.to_string(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hesnr serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server { child, url: addr }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
