//! `hesnr track`: the report a training lead puts in front of their team.
//!
//! One self-contained HTML page (inline CSS and SVG, no script, no network), the same plots as
//! SVG files, CSV tables of every number, and the [`TrackReport`] itself as JSON. The page comes
//! from `templates/track.html.j2`, which escapes everything it prints; plotters escapes the SVG
//! text. Nothing depends on the date, so the same run renders the same bytes.
//!
//! By concern: `plots` (the SVGs), `page` (the view the template renders), `tables` (the
//! CSVs), `demo` (a demonstration run for tests); this file holds the metrics the report shows
//! and writes the files.

mod demo;
mod page;
mod plots;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::data::AtomicFile;
use crate::metrics::{Metric, Summary};
use crate::pipeline::track_types::TrackReport;
use crate::report::format::finite;

pub use demo::demo_report;
pub use plots::plots;

// ------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------

/// The per-checkpoint metrics, in table order.
const METRICS: [Metric; 7] = [
    Metric::HeSnr,
    Metric::HePpl,
    Metric::Ppl,
    Metric::Top1Acc,
    Metric::DecisionTokens,
    Metric::DecisionDensity,
    Metric::MeanH10,
];

/// A summary's value of a metric (`None` when undefined or not finite).
fn metric_value(s: &Summary, m: Metric) -> Option<f64> {
    finite(m.value(s))
}

// ------------------------------------------------------------------------------------------
// Shared views of the report
// ------------------------------------------------------------------------------------------

/// Downstream score names over all checkpoints, sorted.
fn downstream_names(r: &TrackReport) -> Vec<String> {
    r.checkpoints
        .iter()
        .flat_map(|c| c.downstream.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Whether checkpoint `i` is the later one of a Long-Context Tax pair.
fn tax_flagged(r: &TrackReport) -> Vec<bool> {
    let to: BTreeSet<&str> = r.tax.iter().map(|t| t.to.as_str()).collect();
    r.checkpoints
        .iter()
        .map(|c| to.contains(c.name.as_str()))
        .collect()
}

/// The report as one self-contained HTML page (inline CSS and SVG, no script, no network).
pub fn render_html(report: &TrackReport) -> String {
    page::render(report, &plots::build_plots(report))
}

// ------------------------------------------------------------------------------------------
// Files
// ------------------------------------------------------------------------------------------

fn put(dir: &Path, rel: &str, bytes: &[u8], written: &mut Vec<PathBuf>) -> io::Result<()> {
    let path = dir.join(rel);
    let mut f = AtomicFile::create(&path)?;
    f.write_all(bytes)?;
    f.commit()?;
    written.push(path);
    Ok(())
}

/// Every file of a report, written into `dir` (created): `report.html` (self-contained), one SVG
/// per plot under `plots/`, `checkpoints.csv` (one row per checkpoint, every number),
/// `correlations.csv`, `sweep.csv`, and `report.json` (the [`TrackReport`] serialized). Each file
/// appears atomically; `report.html` is written last. Returns the paths written.
pub fn write_report(report: &TrackReport, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let plots = plots::build_plots(report);
    let mut written = Vec::new();
    for p in &plots {
        let svg = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}", p.svg);
        put(
            dir,
            &format!("plots/{}.svg", p.stem),
            svg.as_bytes(),
            &mut written,
        )?;
    }
    put(
        dir,
        "checkpoints.csv",
        tables::checkpoints_csv(report).as_bytes(),
        &mut written,
    )?;
    put(
        dir,
        "correlations.csv",
        tables::correlations_csv(report).as_bytes(),
        &mut written,
    )?;
    put(
        dir,
        "sweep.csv",
        tables::sweep_csv(report).as_bytes(),
        &mut written,
    )?;
    let mut json = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
    json.push(b'\n');
    put(dir, "report.json", &json, &mut written)?;
    put(
        dir,
        "report.html",
        page::render(report, &plots).as_bytes(),
        &mut written,
    )?;
    remove_stale_plots(dir, &written)?;
    Ok(written)
}

/// Removes SVGs an earlier run wrote into `plots/` that this run did not (a plot that no longer
/// applies, e.g. correlations once downstream scores are gone), so the folder matches the page.
fn remove_stale_plots(dir: &Path, written: &[PathBuf]) -> io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir.join("plots")) else {
        return Ok(());
    };
    for e in entries {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "svg") && !written.contains(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
