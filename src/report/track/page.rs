//! The HTML page of the track report: the view `templates/track.html.j2` renders. Numbers
//! whose format depends on the metric (percentages, counts, intervals) arrive as text; the
//! template escapes everything it prints.

use minijinja::Value;
use serde::Serialize;

use super::plots::Plot;
use super::{downstream_names, metric_value, tax_flagged, METRICS};
use crate::analysis::stats::{self, Correlation, CorrelationSummary};
use crate::metrics::{Better, Metric, Summary};
use crate::pipeline::track_types::{TaxFlag, TrackReport};
use crate::report::format::{finite, opt, pct, sig4};
use crate::report::html;

#[derive(Serialize)]
struct Page<'a> {
    title: &'a str,
    eval_set: &'a str,
    k: usize,
    eps: f64,
    cached: usize,
    downstream: Vec<String>,
    notes: Vec<String>,
    /// Labels of the metric columns.
    metrics: Vec<&'static str>,
    rows: Vec<Row<'a>>,
    correlations: Vec<CorrelationGroup<'a>>,
    leaderboard: Vec<Board<'a>>,
    tax: &'a [TaxFlag],
    plots: Vec<Figure<'a>>,
    version: &'static str,
}

/// One downstream score's metric leaderboard.
#[derive(Serialize)]
struct Board<'a> {
    downstream: &'a str,
    checkpoints: usize,
    metrics: usize,
    separated: bool,
    verdict: &'a str,
    rows: Vec<BoardRow<'a>>,
}

#[derive(Serialize)]
struct BoardRow<'a> {
    place: usize,
    metric: &'a str,
    better: &'a str,
    n: usize,
    spearman: Option<f64>,
    spearman_ci: String,
    kendall: Option<f64>,
    kendall_ci: String,
    spearman_p: String,
    spearman_p_holm: String,
    kendall_p_holm: String,
    loo: String,
}

fn fmt_holm(p: Option<f64>) -> String {
    p.filter(|p| p.is_finite()).map_or("-".into(), |p| {
        if p < 0.001 {
            "< 0.001".into()
        } else {
            format!("{p:.3}")
        }
    })
}

fn leaderboard(r: &TrackReport) -> Vec<Board<'_>> {
    r.leaderboard
        .iter()
        .map(|b| Board {
            downstream: &b.downstream,
            checkpoints: b.checkpoints,
            metrics: b.metrics,
            separated: b.leader_separated,
            verdict: &b.verdict,
            rows: b
                .rows
                .iter()
                .map(|row| BoardRow {
                    place: row.place,
                    metric: &row.metric,
                    better: row.better,
                    n: row.report.n,
                    spearman: finite(row.report.spearman.value),
                    spearman_ci: fmt_ci(&row.report.spearman),
                    kendall: finite(row.report.kendall.value),
                    kendall_ci: fmt_ci(&row.report.kendall),
                    spearman_p: fmt_p(&row.report.spearman),
                    spearman_p_holm: fmt_holm(row.spearman_p_holm),
                    kendall_p_holm: fmt_holm(row.kendall_p_holm),
                    loo: fmt_loo(&row.report.spearman),
                })
                .collect(),
        })
        .collect()
}

/// A checkpoint in the checkpoint table.
#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    model: &'a str,
    precision: Option<&'a str>,
    step: Option<f64>,
    stage: Option<&'a str>,
    tax: bool,
    cached: bool,
    metrics: Vec<Cell>,
    /// The most common entropy orders, one a line.
    orders: Vec<String>,
    downstream: Vec<Cell>,
}

/// A number of the checkpoint table, and whether it is the best of its column.
#[derive(Serialize)]
struct Cell {
    text: String,
    best: bool,
}

/// One metric against one downstream score: a row per statistic.
#[derive(Serialize)]
struct CorrelationGroup<'a> {
    metric: &'static str,
    downstream: &'a str,
    n: usize,
    conclusive: bool,
    note: &'a str,
    stats: Vec<StatRow>,
}

#[derive(Serialize)]
struct StatRow {
    name: &'static str,
    value: Option<f64>,
    ci: String,
    p: String,
    loo: String,
}

#[derive(Serialize)]
struct Figure<'a> {
    stem: &'a str,
    title: &'a str,
    caption: &'a str,
    /// The SVG, a safe string: plotters escaped its text.
    svg: Value,
}

/// The best value of a column (per [`Better`]); `None` when the column has no direction or value.
fn best_of(values: &[Option<f64>], better: Better) -> Option<f64> {
    let defined = values.iter().filter_map(|v| finite(*v));
    match better {
        Better::Higher => defined.reduce(f64::max),
        Better::Lower => defined.reduce(f64::min),
        Better::Neither => None,
    }
}

/// A number of a column whose best value is `best`.
fn cell(text: String, v: Option<f64>, best: Option<f64>) -> Cell {
    Cell {
        text,
        best: matches!((finite(v), best), (Some(v), Some(b)) if v == b),
    }
}

/// A metric as the table shows it: counts whole, shares as percentages.
fn fmt_metric(m: Metric, v: Option<f64>) -> String {
    match finite(v) {
        Some(v) if m.is_count() => format!("{}", v as u64),
        _ if m.is_percent() => pct(v),
        _ => opt(v),
    }
}

/// "ln 1: 61.20%", "ln 2: 18.00%", ...: the most common entropy orders.
fn top_orders(s: &Summary, n: usize) -> Vec<String> {
    let mut v: Vec<(usize, f64)> = s
        .order_shares
        .iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite() && **x > 0.0)
        .map(|(i, &x)| (i + 1, x))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if v.is_empty() {
        return vec!["-".to_string()];
    }
    v.iter()
        .take(n)
        .map(|(m, x)| format!("ln {m}: {}", pct(Some(*x))))
        .collect()
}

/// The rows of the checkpoint table.
fn rows(r: &TrackReport) -> Vec<Row<'_>> {
    let downs = downstream_names(r);
    let metric_best: Vec<Option<f64>> = METRICS
        .iter()
        .map(|m| {
            let vals: Vec<Option<f64>> = r
                .checkpoints
                .iter()
                .map(|c| metric_value(&c.summary, *m))
                .collect();
            best_of(&vals, m.better())
        })
        .collect();
    let down_best: Vec<Option<f64>> = downs
        .iter()
        .map(|d| {
            let vals: Vec<Option<f64>> = r
                .checkpoints
                .iter()
                .map(|c| c.downstream.get(d).copied())
                .collect();
            best_of(&vals, Better::Higher)
        })
        .collect();
    r.checkpoints
        .iter()
        .zip(tax_flagged(r))
        .map(|(c, tax)| Row {
            name: &c.name,
            model: &c.model,
            precision: c.precision.as_deref(),
            step: c.step,
            stage: c.stage.as_deref(),
            tax,
            cached: c.cached,
            metrics: METRICS
                .iter()
                .zip(&metric_best)
                .map(|(m, best)| {
                    let v = metric_value(&c.summary, *m);
                    cell(fmt_metric(*m, v), v, *best)
                })
                .collect(),
            orders: top_orders(&c.summary, 3),
            downstream: downs
                .iter()
                .zip(&down_best)
                .map(|(d, best)| {
                    let v = c.downstream.get(d).copied();
                    cell(opt(v), v, *best)
                })
                .collect(),
        })
        .collect()
}

fn fmt_ci(s: &CorrelationSummary) -> String {
    match s.ci95 {
        Some(ci) if ci.low.is_finite() && ci.high.is_finite() => {
            format!("[{}, {}]", sig4(ci.low), sig4(ci.high))
        }
        _ => "-".to_string(),
    }
}

fn fmt_p(s: &CorrelationSummary) -> String {
    match s.permutation {
        Some(p) if p.p_value.is_finite() => format!(
            "{} ({})",
            sig4(p.p_value),
            if p.exact {
                "exact".to_string()
            } else {
                format!("{} perm.", p.permutations)
            }
        ),
        _ => "-".to_string(),
    }
}

fn fmt_loo(s: &CorrelationSummary) -> String {
    let l = &s.leave_one_out;
    let range = match (finite(l.min), finite(l.max)) {
        (Some(a), Some(b)) => format!("{} to {}", sig4(a), sig4(b)),
        _ => "-".to_string(),
    };
    if l.sign_flips > 0 {
        format!(
            "{range} ({} sign flip{})",
            l.sign_flips,
            if l.sign_flips == 1 { "" } else { "s" }
        )
    } else {
        range
    }
}

fn correlations(r: &TrackReport) -> Vec<CorrelationGroup<'_>> {
    r.correlations
        .iter()
        .map(|c| CorrelationGroup {
            metric: c.metric.label(),
            downstream: &c.downstream,
            n: c.report.n,
            conclusive: c.report.conclusive,
            note: &c.report.note,
            stats: Correlation::ALL
                .iter()
                .map(|&stat| {
                    let s = c.report.get(stat);
                    StatRow {
                        name: stat.title(),
                        value: finite(s.value),
                        ci: fmt_ci(s),
                        p: fmt_p(s),
                        loo: fmt_loo(s),
                    }
                })
                .collect(),
        })
        .collect()
}

/// The run's notes, then the caveats the numbers themselves raise.
fn notes(r: &TrackReport) -> Vec<String> {
    let mut notes: Vec<String> = r.notes.clone();
    if r.checkpoints.len() < stats::MIN_POINTS {
        notes.push(format!(
            "Only {} checkpoint(s): a correlation needs at least {} to be called conclusive.",
            r.checkpoints.len(),
            stats::MIN_POINTS
        ));
    }
    let inconclusive = r
        .correlations
        .iter()
        .filter(|c| !c.report.conclusive)
        .count();
    if inconclusive > 0 {
        notes.push(format!(
            "{inconclusive} of {} metric/score correlations are inconclusive (see the verdicts below).",
            r.correlations.len()
        ));
    }
    notes
}

/// The page of `r` with its `plots`.
pub(super) fn render(r: &TrackReport, plots: &[Plot]) -> String {
    let page = Page {
        title: &r.title,
        eval_set: &r.eval_set,
        k: r.k,
        eps: r.eps,
        cached: r.checkpoints.iter().filter(|c| c.cached).count(),
        downstream: downstream_names(r),
        notes: notes(r),
        metrics: METRICS.iter().map(|m| m.label()).collect(),
        rows: rows(r),
        correlations: correlations(r),
        leaderboard: leaderboard(r),
        tax: &r.tax,
        plots: plots
            .iter()
            .map(|p| Figure {
                stem: &p.stem,
                title: &p.title,
                caption: &p.caption,
                svg: Value::from_safe_string(p.svg.clone()),
            })
            .collect(),
        version: env!("CARGO_PKG_VERSION"),
    };
    html::render("track.html.j2", Value::from_serialize(&page))
}
