//! The track report end to end: every plot, table and file, hostile text, degenerate runs.

use super::tables::{checkpoints_csv, correlations_csv, sweep_csv};
use super::*;

fn sample_report() -> TrackReport {
    demo_report()
}

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

/// The sample with hostile text in every field that comes from data.
fn hostile_report() -> TrackReport {
    let mut r = sample_report();
    r.title = format!("{SCRIPT} run & co");
    r.eval_set = format!("{IMG} set");
    let renames: Vec<(String, String)> = r
        .checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let new = match i % 3 {
                0 => format!("{SCRIPT} {}", c.name),
                1 => format!("{IMG} {}", c.name),
                _ => format!("R&D, \"quoted\" {}", c.name),
            };
            (c.name.clone(), new)
        })
        .collect();
    let rename = |s: &str| {
        renames
            .iter()
            .find(|(a, _)| a == s)
            .map_or_else(|| s.to_string(), |(_, b)| b.clone())
    };
    let down = |d: &str| format!("{SCRIPT}&{d}");
    for c in &mut r.checkpoints {
        c.name = rename(&c.name);
        c.model = format!("{IMG}/{}", c.model);
        c.stage = c.stage.as_ref().map(|s| {
            if s == "32k" {
                format!("32k{IMG}")
            } else {
                format!("128k{SCRIPT}&")
            }
        });
        c.downstream = c.downstream.iter().map(|(k, v)| (down(k), *v)).collect();
    }
    for c in &mut r.correlations {
        c.downstream = down(&c.downstream);
        c.report.note = format!("{} {SCRIPT}", c.report.note);
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

/// Every `&` starts an entity reference (named, decimal or hexadecimal).
fn assert_no_bare_ampersand(s: &str, what: &str) {
    for (i, _) in s.match_indices('&') {
        let rest = &s[i + 1..];
        let ok = rest
            .find(';')
            .filter(|&j| j > 0 && j < 12)
            .is_some_and(|j| {
                let e = &rest[..j];
                match (e.strip_prefix("#x"), e.strip_prefix('#')) {
                    (Some(hex), _) => !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
                    (None, Some(n)) => !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
                    (None, None) => e.chars().all(|c| c.is_ascii_alphanumeric()),
                }
            });
        assert!(
            ok,
            "{what}: bare & at {i}: {:?}",
            &s[i..(i + 30).min(s.len())]
        );
    }
}

fn assert_clean(s: &str, what: &str) {
    assert!(!s.contains("<script"), "{what}: live <script>");
    assert!(!s.contains("<img"), "{what}: live <img>");
    assert!(
        !s.contains(SCRIPT) && !s.contains(IMG),
        "{what}: raw hostile text"
    );
    assert!(!s.contains("R&D"), "{what}: raw &");
    assert!(!has_nonfinite(s), "{what}: non-finite number");
    assert_no_bare_ampersand(s, what);
}

fn count(s: &str, pat: &str) -> usize {
    s.matches(pat).count()
}

#[test]
fn html_has_every_plot_table_and_stage_label() {
    let r = sample_report();
    let html = render_html(&r);
    let ps = plots(&r);
    // trend, 2 scatters, 2 leaderboard leaders (one per downstream score), histograms, HE-SNR
    // sweep, 2 correlation sweeps
    assert_eq!(
        ps.len(),
        9,
        "{:?}",
        ps.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    assert_eq!(count(&html, "<svg"), ps.len());
    for (stem, title, svg) in &ps {
        assert!(html.contains(&format!("id=\"plot-{stem}\"")), "{stem}");
        assert!(html.contains(title.as_str()), "{title}");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}"
        );
        assert!(!svg.contains("could not be drawn"), "{stem}: {svg:.300}");
        assert!(
            count(svg, "<polyline") + count(svg, "<circle") > 3,
            "{stem} looks empty"
        );
    }
    assert!(html.contains("id=\"checkpoint-table\""));
    assert!(html.contains("id=\"correlation-table\""));
    assert_eq!(
        count(&html, "<tbody class=\"group\">"),
        r.correlations.len()
    );
    // Stage boundary labelled in the trend plot, the tax pair listed.
    assert!(
        ps[0].2.contains(">\n128k\n</text>") || ps[0].2.contains("128k\n"),
        "stage label"
    );
    assert!(html.contains("step 2500</strong> &rarr; <strong>step 3000"));
    assert!(html.contains("badge b-tax"));
    // ln m markers and eps
    let hist = &ps.iter().find(|p| p.0 == "h10_histograms").unwrap().2;
    for m in 1..=10 {
        assert!(hist.contains(&format!("ln {m}\n")), "ln {m}");
    }
    assert!(hist.contains("eps 1.242"));
    // Each leaderboard's first metrics are plotted against its score, named by place.
    for board in &r.leaderboard {
        let plot = ps
            .iter()
            .find(|p| p.0.starts_with("leaders_") && p.1.ends_with(&board.downstream))
            .expect("a leaders plot per board");
        let first = &board.rows[0];
        assert!(
            plot.2.contains(&format!("#1 {}", first.metric)),
            "{}: {:.300}",
            first.metric,
            plot.2
        );
    }
    // plateau shaded
    assert!(ps
        .iter()
        .any(|p| p.0.starts_with("sweep_corr") && p.2.contains("plateau")));
    // best values highlighted (highest HE-SNR is the last checkpoint)
    assert!(html.contains("<td class=\"num best\">0.1390</td>"));
    assert!(!html.contains("NaN"));
    assert!(!html.contains("<script"));
    assert!(html.contains("Read this first"));
}

#[test]
fn hostile_text_is_escaped_everywhere() {
    let r = hostile_report();
    let html = render_html(&r);
    assert_clean(&html, "html");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("R&amp;D, &quot;quoted&quot;"));
    let ps = plots(&r);
    assert_eq!(count(&html, "<svg"), ps.len());
    for (stem, _, svg) in &ps {
        assert_clean(svg, stem);
        assert!(
            stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{stem}"
        );
    }
    // Stage labels and downstream names reach the SVGs, escaped.
    assert!(
        ps[0].2.contains("128k&lt;script&gt;"),
        "stage label in the trend plot"
    );
    assert!(ps[1]
        .2
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;"));
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(&r, dir.path()).unwrap();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let ext = f.extension().unwrap().to_str().unwrap();
        if ext == "svg" || ext == "html" {
            assert_clean(&text, &f.display().to_string());
        }
    }
}

#[test]
fn a_rewritten_report_drops_plots_it_no_longer_has() {
    let r = sample_report();
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("plots/from-an-earlier-run.svg");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "<svg/>").unwrap();
    let keep = dir.path().join("plots/notes.txt");
    std::fs::write(&keep, "mine").unwrap();
    let files = write_report(&r, dir.path()).unwrap();
    assert!(!stale.exists(), "stale plot removed");
    assert!(keep.exists(), "only SVGs are touched");
    let svgs = std::fs::read_dir(dir.path().join("plots")).unwrap().count() - 1;
    assert_eq!(
        svgs,
        files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "svg"))
            .count()
    );
}

#[test]
fn write_report_writes_every_file() {
    let r = sample_report();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/report");
    let files = write_report(&r, &out).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&out).unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "report.html",
        "checkpoints.csv",
        "correlations.csv",
        "sweep.csv",
        "report.json",
    ] {
        assert!(names.iter().any(|n| n == want), "{want}");
    }
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("plots/") && n.ends_with(".svg"))
            .count(),
        9
    );
    for f in &files {
        assert!(
            f.is_file() && std::fs::metadata(f).unwrap().len() > 0,
            "{}",
            f.display()
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["checkpoints"].as_array().unwrap().len(), 8);
    assert_eq!(
        std::fs::read_to_string(out.join("report.html")).unwrap(),
        render_html(&r)
    );
    // No temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Splits one CSV line into fields (quoted fields may hold commas and doubled quotes).
fn parse_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[test]
fn csv_has_header_one_row_per_checkpoint_and_quotes() {
    let r = hostile_report();
    let csv = checkpoints_csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + r.checkpoints.len());
    let header = parse_csv_line(lines[0]);
    assert_eq!(&header[..3], ["index", "name", "model"]);
    assert!(header
        .iter()
        .any(|h| h == &format!("downstream:{SCRIPT}&swebench_verified")));
    for (line, c) in lines[1..].iter().zip(&r.checkpoints) {
        let row = parse_csv_line(line);
        assert_eq!(row.len(), header.len(), "{line}");
        assert_eq!(row[1], c.name);
        assert_eq!(row[2], c.model);
        let he = header.iter().position(|h| h == "he_snr").unwrap();
        assert_eq!(row[he].parse::<f64>().unwrap(), c.summary.he_snr.unwrap());
    }
    assert!(csv.contains("\"R&D, \"\"quoted\"\" step 1500\""));
    let corr = correlations_csv(&r);
    assert_eq!(corr.lines().count(), 1 + 3 * r.correlations.len());
    for line in corr.lines() {
        assert_eq!(parse_csv_line(line).len(), 16, "{line}");
    }
    let sweep = sweep_csv(&r);
    let per_ckpt: usize = r.checkpoints.iter().map(|c| c.sweep.len()).sum();
    let per_corr: usize = r.sweep.iter().map(|s| s.points.len()).sum();
    assert_eq!(sweep.lines().count(), 1 + per_ckpt + per_corr);
    assert!(
        sweep.lines().any(|l| l.ends_with(",true")),
        "plateau marked"
    );
}

fn assert_renders(r: &TrackReport, what: &str) -> String {
    let html = render_html(r);
    let ps = plots(r);
    assert_eq!(count(&html, "<svg"), ps.len(), "{what}");
    assert!(
        !has_nonfinite(&html) && !html.contains("could not be drawn"),
        "{what}"
    );
    for (stem, _, svg) in &ps {
        assert!(
            !has_nonfinite(svg) && !svg.contains("could not be drawn"),
            "{what}: {stem}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write_report(r, dir.path()).unwrap();
    html
}

#[test]
fn one_checkpoint() {
    let mut r = sample_report();
    r.checkpoints.truncate(1);
    r.correlations.clear();
    r.sweep.clear();
    r.tax.clear();
    let html = assert_renders(&r, "one checkpoint");
    assert!(html.contains("Only 1 checkpoint(s)"));
    assert_eq!(checkpoints_csv(&r).lines().count(), 2);
}

#[test]
fn no_downstream_scores() {
    let mut r = sample_report();
    for c in &mut r.checkpoints {
        c.downstream.clear();
    }
    r.correlations.clear();
    r.sweep.clear();
    let html = assert_renders(&r, "no downstream");
    assert!(html.contains("No downstream scores were given"));
    assert!(plots(&r).iter().all(|p| !p.0.starts_with("scatter")));
}

#[test]
fn no_steps_uses_checkpoint_index() {
    let mut r = sample_report();
    for c in &mut r.checkpoints {
        c.step = None;
    }
    r.checkpoints[3].stage = None;
    assert_renders(&r, "no steps");
    let ps = plots(&r);
    assert!(ps[0].2.contains("checkpoint # (steps not given)"));
    assert!(ps[0].2.contains("(no stage)"));
    // Some steps missing: the index too.
    let mut r = sample_report();
    r.checkpoints[2].step = None;
    assert!(plots(&r)[0].2.contains("checkpoint #"));
}

#[test]
fn all_none_metrics_and_non_finite_values() {
    let mut r = sample_report();
    for c in &mut r.checkpoints {
        let s = &mut c.summary;
        (s.mean_nll, s.ppl, s.top1_acc, s.decision_density) = (None, None, None, None);
        (s.he_snr, s.he_ppl, s.mean_h10) = (None, None, None);
        s.decision_tokens = 0;
        s.scored_tokens = 0;
        s.order_shares.clear();
        c.entropy_hist.clear();
        c.sweep.iter_mut().for_each(|p| p.he_snr = None);
    }
    for s in &mut r.sweep {
        s.points
            .iter_mut()
            .for_each(|p| (p.1, p.2, p.3) = (None, None, None));
        s.plateau = None;
    }
    assert_renders(&r, "all none");

    let mut r = sample_report();
    r.checkpoints[1].summary.he_snr = Some(f64::NAN);
    r.checkpoints[2].summary.ppl = Some(f64::INFINITY);
    r.checkpoints[3]
        .downstream
        .insert("swebench_verified".into(), f64::NAN);
    r.checkpoints[4].sweep[2].he_snr = Some(f64::NAN);
    r.eps = f64::NAN;
    r.k = 0;
    let html = assert_renders(&r, "non-finite");
    assert!(html.contains("<svg"));
    assert!(!has_nonfinite(&checkpoints_csv(&r)) && !has_nonfinite(&sweep_csv(&r)));
}

/// A non-finite number printed by Rust (`NaN`, `inf`, `-inf`) as a word of its own.
fn has_nonfinite(s: &str) -> bool {
    let b = s.as_bytes();
    s.contains("NaN")
        || s.match_indices("inf").any(|(i, _)| {
            let before = i.checked_sub(1).map(|j| b[j]);
            let after = b.get(i + 3).copied();
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        })
}

#[test]
fn no_checkpoints_at_all() {
    let mut r = sample_report();
    r.checkpoints.clear();
    r.correlations.clear();
    r.sweep.clear();
    r.tax.clear();
    let html = assert_renders(&r, "empty");
    assert!(html.contains("No checkpoints were scored"));
}

#[test]
fn many_checkpoints_and_identical_values() {
    let mut r = sample_report();
    let base = r.checkpoints.clone();
    for i in 0..4 {
        for c in &base {
            let mut c = c.clone();
            c.name = format!("{} r{i}", c.name);
            c.step = c.step.map(|s| s + 4000.0 * (i + 1) as f64);
            c.summary.he_snr = Some(0.13);
            r.checkpoints.push(c);
        }
    }
    assert_renders(&r, "many");
}

#[test]
fn steps_are_integers_when_they_are_ones() {
    let mut r = sample_report();
    r.checkpoints[0].step = Some(2.5);
    let html = render_html(&r);
    assert!(html.contains("<td class=\"num\">2.500</td>"));
    assert!(html.contains("<td class=\"num\">1000</td>"));
}
