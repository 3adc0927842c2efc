//! The suite's own isolation: a hesnr child process never sees the user's `HESNR_*`, `SLURM_*`
//! or `RUST_LOG` settings (only `HESNR_BACKENDS_DIR`, the kernels' location, passes), and every
//! test module has a scratch folder of its own.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Command;

use crate::common::{default_tiny, hesnr_command, hesnr_command_from, s, scratch, CODE};
use serde_json::Value;

/// The test process's environment plus what a user on a Slurm node with a remote server
/// configured might have exported.
fn dirty_parent() -> Vec<(OsString, OsString)> {
    let dirt = [
        ("HESNR_REMOTE_URL", "http://127.0.0.1:9"),
        ("HESNR_API_KEY", "secret"),
        ("HESNR_MODEL", "/no/such/model.gguf"),
        ("HESNR_HOME", "/no/such/home"),
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("SLURM_JOB_ID", "12345"),
        ("RUST_LOG", "trace"),
    ];
    std::env::vars_os()
        .filter(|(k, _)| !dirt.iter().any(|(d, _)| k == OsStr::new(d)))
        .chain(dirt.map(|(k, v)| (k.into(), v.into())))
        .collect()
}

/// The variables a command sets for its child (none are removed: the child's environment is
/// cleared and given in full).
fn child_env(c: &Command) -> Vec<(String, String)> {
    c.get_envs()
        .map(|(k, v)| {
            let v = v.expect("a set variable, never a removal");
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

fn assert_clean(c: &Command) {
    let env = child_env(c);
    let home: Vec<&String> = env
        .iter()
        .filter(|(k, _)| k == "HESNR_HOME")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        home,
        [&s(scratch()).to_string()],
        "HESNR_HOME is the scratch folder"
    );
    for (k, v) in &env {
        assert!(
            k == "HESNR_HOME"
                || k == "HESNR_BACKENDS_DIR"
                || !(k.starts_with("HESNR_") || k.starts_with("SLURM_") || k == "RUST_LOG"),
            "{k}={v} reaches hesnr"
        );
    }
    if let Some(path) = std::env::var_os("PATH") {
        let path = path.to_string_lossy().into_owned();
        assert!(
            env.contains(&("PATH".to_string(), path)),
            "PATH passes through"
        );
    }
}

#[test]
fn user_settings_never_reach_hesnr() {
    assert_clean(&hesnr_command());
    assert_clean(&hesnr_command_from(dirty_parent()));
}

/// End to end: with a remote server URL (a port nothing listens on), a missing model, another
/// home and a Slurm array exported, a score on a tiny model still runs on the embedded engine;
/// the same environment handed over unfiltered fails, so the filter is what makes it work.
#[test]
fn a_score_works_from_a_dirty_environment() {
    let docs = scratch().join("docs.jsonl");
    std::fs::write(
        &docs,
        format!("{}\n", serde_json::json!({"id": "fib", "text": CODE})),
    )
    .unwrap();
    let model = default_tiny();
    let args = [
        "score",
        s(&docs),
        "-m",
        s(&model),
        "--json",
        "-t",
        "2",
        "--retries",
        "0",
    ];

    let out = hesnr_command_from(dirty_parent())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON on stdout");
    assert_eq!(summary["documents"], 1);
    assert_eq!(summary["skipped"], 0);

    let unfiltered = Command::new(env!("CARGO_BIN_EXE_hesnr"))
        .env_clear()
        .envs(dirty_parent())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&unfiltered.stderr);
    assert!(
        !unfiltered.status.success() && stderr.contains("http://127.0.0.1:9"),
        "unfiltered, the exported remote URL should have been used (and failed): {stderr}"
    );
}

#[test]
fn each_module_has_its_own_scratch_folder() {
    assert_eq!(
        scratch().file_name(),
        Some(OsStr::new("environment")),
        "{}",
        scratch().display()
    );
    assert_eq!(
        scratch().parent().and_then(Path::file_name),
        Some(OsStr::new(env!("CARGO_CRATE_NAME")))
    );
    // A tiny model asked for here is written here, not in the helpers' folder.
    assert!(default_tiny().starts_with(scratch()));
}
