//! The `hesnr track` HTML report in a real headless Chromium: the page parses into the expected
//! DOM (every plot, both tables, hostile text escaped, no live script), the console stays free of
//! errors, and a screenshot renders. Skipped, saying so on stderr, when no Chromium is
//! installed; under CI (`$CI` set), where `scripts/setup-tests.sh` installs it, a missing
//! Chromium fails the test instead.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hesnr::pipeline::track_types::TrackReport;
use hesnr::report::track::{demo_report, plots, write_report};

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";
const TIMEOUT: Duration = Duration::from_secs(180);

fn chromium() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from("/usr/bin/chromium");
        p.is_file().then_some(p)
    })
}

/// The demo report with hostile text in names, stages, downstream names, notes and findings.
fn hostile_report() -> TrackReport {
    let mut r = demo_report();
    r.title = format!("{SCRIPT} run & co");
    let old: Vec<String> = r.checkpoints.iter().map(|c| c.name.clone()).collect();
    let rename = |s: &str| match old.iter().position(|o| o == s) {
        Some(0) => format!("{SCRIPT} {s}"),
        Some(i) if i % 2 == 1 => format!("{IMG} {s}"),
        Some(_) => format!("R&D, \"quoted\" {s}"),
        None => s.to_string(),
    };
    let down = |d: &str| format!("{SCRIPT}&{d}");
    for c in &mut r.checkpoints {
        c.name = rename(&c.name);
        c.stage = c.stage.as_ref().map(|s| format!("{s}{IMG}"));
        c.downstream = c.downstream.iter().map(|(k, v)| (down(k), *v)).collect();
    }
    for c in &mut r.correlations {
        c.downstream = down(&c.downstream);
    }
    for s in &mut r.sweep {
        s.downstream = down(&s.downstream);
    }
    for t in &mut r.tax {
        t.from = rename(&t.from);
        t.to = rename(&t.to);
        t.findings.push(format!("{IMG} & {SCRIPT}"));
    }
    r.notes.push(format!("{SCRIPT} & {IMG}"));
    r
}

/// Runs Chromium with `args` (plus the common flags and a fresh profile), waiting at most
/// [`TIMEOUT`]; returns (stdout, stderr).
fn run_chromium(bin: &Path, work: &Path, tag: &str, args: &[String]) -> (String, String) {
    let profile = work.join(format!("profile-{tag}"));
    std::fs::create_dir_all(&profile).unwrap();
    let out_path = work.join(format!("{tag}.stdout"));
    let err_path = work.join(format!("{tag}.stderr"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            assert!(
                status.success(),
                "chromium {tag} failed: {status}\n{stderr}"
            );
            return (stdout, stderr);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {tag} did not finish in {TIMEOUT:?}\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            (l.contains("CONSOLE") && l.contains("Uncaught")) || l.contains("ERROR:CONSOLE")
        })
        .collect()
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        let why = "chromium not found on PATH or at /usr/bin/chromium \
                   (bash scripts/setup-tests.sh installs it)";
        assert!(
            std::env::var_os("CI").is_none(),
            "{why}; CI must run this test"
        );
        crate::common::skipping(why);
        return;
    };
    let report = hostile_report();
    let expected_svgs = plots(&report).len();
    // Kept under the target dir so that the page and the screenshot can be looked at.
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_browser");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let dir = work.join("report");
    write_report(&report, &dir).unwrap();
    let page = std::fs::canonicalize(dir.join("report.html")).unwrap();
    let url = format!("file://{}", page.display());

    let (dom, stderr) = run_chromium(&bin, &work, "dom", &["--dump-dom".into(), url.clone()]);
    assert_eq!(
        dom.matches("<svg").count(),
        expected_svgs,
        "one <svg> per plot"
    );
    assert!(dom.contains("id=\"checkpoint-table\""), "checkpoint table");
    assert!(
        dom.contains("id=\"correlation-table\""),
        "correlation table"
    );
    // The checkpoint and correlation tables, and one leaderboard per downstream score.
    assert!(
        !report.leaderboard.is_empty(),
        "the report has a leaderboard"
    );
    assert_eq!(
        dom.matches("<table class=\"leaderboard\"").count(),
        report.leaderboard.len()
    );
    assert_eq!(dom.matches("<table").count(), 2 + report.leaderboard.len());
    assert!(dom.contains("Long-Context Tax"));
    // One row per checkpoint in the checkpoint table.
    let table = &dom[dom.find("id=\"checkpoint-table\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr>").count(), 1 + report.checkpoints.len());
    // Hostile text arrives as text, never as markup.
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped script text"
    );
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "escaped img text"
    );
    assert!(dom.contains("R&amp;D, \"quoted\""), "escaped ampersand");
    assert!(!dom.contains("<script"), "no live <script> element");
    assert!(!dom.contains("<img"), "no live <img> element");
    let errors = console_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));

    let shot = work.join("screenshot.png");
    let (_, stderr) = run_chromium(
        &bin,
        &work,
        "shot",
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.len() > 10_000, "screenshot is {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let errors = console_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    println!("screenshot: {}", shot.display());

    // The realistic report (short names, one stage label each) as a team would see it.
    let plain = work.join("plain");
    write_report(&demo_report(), &plain).unwrap();
    let url = format!(
        "file://{}",
        std::fs::canonicalize(plain.join("report.html"))
            .unwrap()
            .display()
    );
    let shot = work.join("screenshot-plain.png");
    let (_, stderr) = run_chromium(
        &bin,
        &work,
        "plain",
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2400".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    );
    assert!(std::fs::metadata(&shot).expect("screenshot written").len() > 10_000);
    let errors = console_errors(&stderr);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    println!("screenshot: {}", shot.display());
}
