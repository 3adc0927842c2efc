//! Shared helpers for the integration tests: tiny random-weight GGUF models in the real format.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use hesnr::gguf::tiny::{write_tiny_llama, TinyLlamaSpec};

/// A scratch folder per test binary under cargo's target tmp dir (emptied when the binary
/// starts), also used as HESNR_HOME so that model conversions are cached there.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(env!("CARGO_CRATE_NAME"));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        std::env::set_var("HESNR_HOME", &d);
        d
    })
}

/// The hesnr binary with the scratch home and none of the user's model, server or Slurm settings.
pub fn hesnr_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hesnr"));
    c.env("HESNR_HOME", scratch())
        .env_remove("HESNR_MODEL")
        .env_remove("HESNR_REMOTE_URL")
        .env_remove("HESNR_API_KEY")
        .env_remove("SLURM_ARRAY_TASK_ID");
    c
}

/// Runs hesnr with `args` and extra environment variables.
pub fn run_hesnr(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = hesnr_command();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run hesnr")
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

/// Writes (once per spec name) a tiny llama model and returns its path.
pub fn tiny_model(name: &str, spec: TinyLlamaSpec) -> PathBuf {
    let path = scratch().join(format!("{name}.gguf"));
    if !path.exists() {
        write_tiny_llama(&path, &spec).expect("write tiny model");
    }
    path
}

pub fn default_tiny() -> PathBuf {
    tiny_model("tiny-f32", TinyLlamaSpec::default())
}

/// The real default model, when fetched; tests that need it return early (and say so) without it.
/// Found from $XDG_CACHE_HOME or $HOME, not $HESNR_HOME, which the tests point at their scratch
/// folder.
pub fn real_model() -> Option<PathBuf> {
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(|x| PathBuf::from(x).join("hesnr"))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hesnr")));
    let p = home?
        .join("models")
        .join(hesnr::engine::model_store::DEFAULT_MODEL_FILE);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: default model not fetched ({})", p.display());
        None
    }
}

pub const CODE: &str = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\nif __name__ == \"__main__\":\n    print([fibonacci(i) for i in range(10)])\n";

/// A `hesnr serve` process; killed on drop.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
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
