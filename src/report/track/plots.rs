//! The plots of the track report, as SVG: metrics across training, metrics against each
//! downstream score, the entropy histograms and the eps sweep.

use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{downstream_names, metric_value, tax_flagged, METRICS};
use crate::analysis::stats::{self, Correlation, CorrelationReport};
use crate::metrics::{AnyMetric, Better, Metric};
use crate::pipeline::track_types::{
    CheckpointResult, Leaderboard, LeaderboardRow, SweepCorrelation, TrackReport,
};
use crate::report::format::{finite, opt, sig4, tick, tick_pct, truncate};
use crate::report::plot::{
    self, anchored, draw_message, font, render_svg, series_color, Area, DrawResult, ACCENT, INK,
    MUTED, PANEL, PLATEAU, STAGE, STAT_COLORS, TAX,
};

/// Panels of the metrics-across-training plot: the checkpoint table's metrics but mean H10 (six
/// panels, three rows of two).
fn trend_metrics() -> Vec<Metric> {
    METRICS
        .into_iter()
        .filter(|&m| m != Metric::MeanH10)
        .collect()
}

/// Panels of each metric-vs-downstream scatter plot: the table's metrics of the model's quality
/// (those with a better direction; the others describe the text).
fn scatter_metrics() -> Vec<Metric> {
    METRICS
        .into_iter()
        .filter(|m| m.better() != Better::Neither)
        .collect()
}

/// A file-name-safe stem from any text.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let t = out.trim_matches('_');
    if t.is_empty() {
        "score".to_string()
    } else {
        t.to_string()
    }
}

/// The x axis of plots across training: steps when every checkpoint has one, else 1-based index.
struct XAxis {
    xs: Vec<f64>,
    label: &'static str,
    by_step: bool,
}

fn x_axis(r: &TrackReport) -> XAxis {
    let steps: Option<Vec<f64>> = r.checkpoints.iter().map(|c| finite(c.step)).collect();
    match steps {
        Some(xs) if !xs.is_empty() => XAxis {
            xs,
            label: "training step",
            by_step: true,
        },
        _ => XAxis {
            xs: (1..=r.checkpoints.len()).map(|i| i as f64).collect(),
            label: "checkpoint # (steps not given)",
            by_step: false,
        },
    }
}

/// A change of stage label between consecutive checkpoints, drawn midway between them.
struct Boundary {
    x: f64,
    label: String,
}

fn boundaries(r: &TrackReport, xs: &[f64]) -> Vec<Boundary> {
    (1..r.checkpoints.len())
        .filter(|&i| r.checkpoints[i].stage != r.checkpoints[i - 1].stage)
        .map(|i| Boundary {
            x: (xs[i - 1] + xs[i]) / 2.0,
            label: r.checkpoints[i]
                .stage
                .clone()
                .unwrap_or_else(|| "(no stage)".to_string()),
        })
        .collect()
}

/// Finite (lo, hi) covering `vals`, padded by `pad` of the width; a single value gets a margin.
fn span(vals: impl IntoIterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    let w = hi - lo;
    let (a, b) = if w > 1e-9 * lo.abs().max(hi.abs()) && w.is_finite() {
        (lo - w * pad, hi + w * pad)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    };
    (a.is_finite() && b.is_finite() && a < b).then_some((a, b))
}

/// Runs of consecutive defined points (a missing value breaks the line).
fn segments(points: impl IntoIterator<Item = (f64, Option<f64>)>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        match (x.is_finite(), finite(y)) {
            (true, Some(y)) => out.last_mut().expect("non-empty").push((x, y)),
            _ => {
                if !out.last().expect("non-empty").is_empty() {
                    out.push(Vec::new());
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The correlation of metric `m` with downstream `down` as the report has it.
fn find_corr<'a>(r: &'a TrackReport, m: Metric, down: &str) -> Option<&'a CorrelationReport> {
    r.correlations
        .iter()
        .find(|c| c.metric == m && c.downstream == down)
        .map(|c| &c.report)
}

/// Pearson, Spearman, Kendall and n for a scatter: the report's when present, else computed.
fn corr_triplet(
    r: &TrackReport,
    m: Metric,
    down: &str,
    pts: &[(f64, f64)],
) -> ([Option<f64>; 3], usize) {
    if let Some(c) = find_corr(r, m, down) {
        return (
            [c.pearson.value, c.spearman.value, c.kendall.value].map(finite),
            c.n,
        );
    }
    let (x, y): (Vec<f64>, Vec<f64>) = pts.iter().copied().unzip();
    (
        Correlation::ALL.map(|s| finite(s.compute(&x, &y))),
        pts.len(),
    )
}

fn triplet_text(t: &[Option<f64>; 3], n: usize) -> String {
    format!(
        "r {} · Spearman {} · Kendall {} · n {n}",
        opt(t[0]),
        opt(t[1]),
        opt(t[2])
    )
}

/// One drawn plot.
pub(super) struct Plot {
    /// File stem of its SVG under `plots/`, and the figure's id on the page.
    pub(super) stem: String,
    pub(super) title: String,
    pub(super) caption: String,
    pub(super) svg: String,
}

/// Short dashes of a vertical line at `x` from `y0` to `y1` (geometric steps when `log`).
fn dashed_vline(
    x: f64,
    y0: f64,
    y1: f64,
    log: bool,
    style: ShapeStyle,
) -> Vec<PathElement<(f64, f64)>> {
    const N: usize = 36;
    let at = |t: f64| {
        if log {
            (y0.ln() + t * (y1.ln() - y0.ln())).exp()
        } else {
            y0 + t * (y1 - y0)
        }
    };
    (0..N)
        .map(|i| {
            // Scaled so that the last dash ends at the end of the line.
            let t = i as f64 / (N as f64 - 0.45);
            PathElement::new(
                vec![(x, at(t)), (x, at(t + 0.55 / (N as f64 - 0.45)))],
                style,
            )
        })
        .collect()
}

/// Dashes of a straight line between two points (for fit lines).
fn dashed_line(a: (f64, f64), b: (f64, f64), style: ShapeStyle) -> Vec<PathElement<(f64, f64)>> {
    const N: usize = 30;
    let p = |t: f64| (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
    (0..N)
        .map(|i| {
            let t = i as f64 / (N as f64 - 0.4);
            PathElement::new(vec![p(t), p(t + 0.6 / (N as f64 - 0.4))], style)
        })
        .collect()
}

/// A legend beside a plot: one coloured line and name per series.
fn side_legend(area: &Area<'_>, title: &str, entries: &[(String, RGBColor)]) -> DrawResult {
    let (_, h) = area.dim_in_pixel();
    area.draw(&Text::new(title.to_string(), (10, 34), font(15, INK)))?;
    const ROW: i32 = 22;
    let max_rows = ((h as i32 - 80) / ROW).max(1) as usize;
    let shown = if entries.len() > max_rows {
        max_rows - 1
    } else {
        entries.len()
    };
    for (i, (name, c)) in entries.iter().take(shown).enumerate() {
        let y = 62 + i as i32 * ROW;
        area.draw(&PathElement::new(vec![(10, y), (34, y)], c.stroke_width(3)))?;
        area.draw(&Text::new(
            truncate(name, 24),
            (40, y),
            anchored(14, INK, HPos::Left, VPos::Center),
        ))?;
    }
    if shown < entries.len() {
        area.draw(&Text::new(
            format!("... and {} more", entries.len() - shown),
            (40, 62 + shown as i32 * ROW),
            anchored(14, MUTED, HPos::Left, VPos::Center),
        ))?;
    }
    Ok(())
}

/// Context shared by the plots across training.
struct Ctx<'a> {
    r: &'a TrackReport,
    xa: XAxis,
    bounds: Vec<Boundary>,
    flagged: Vec<bool>,
}

impl<'a> Ctx<'a> {
    fn new(r: &'a TrackReport) -> Self {
        let xa = x_axis(r);
        let bounds = boundaries(r, &xa.xs);
        Ctx {
            r,
            flagged: tax_flagged(r),
            bounds,
            xa,
        }
    }
}

/// One metric across training: line and points, stage boundaries, tax-flagged checkpoints.
fn trend_panel(area: &Area<'_>, ctx: &Ctx<'_>, m: Metric) -> DrawResult {
    let better = match m.better() {
        Better::Higher => " (higher is better)",
        Better::Lower => " (lower is better)",
        Better::Neither => "",
    };
    let caption = format!("{}{better}", m.label());
    let ys: Vec<Option<f64>> = ctx
        .r
        .checkpoints
        .iter()
        .map(|c| metric_value(&c.summary, m))
        .collect();
    let pts: Vec<(f64, f64)> = ctx
        .xa
        .xs
        .iter()
        .zip(&ys)
        .filter_map(|(&x, y)| y.map(|y| (x, y)))
        .collect();
    let xpad = if ctx.xa.by_step { 0.04 } else { 0.08 };
    let (Some((x0, x1)), Some((y0, y1))) = (
        span(ctx.xa.xs.iter().copied(), xpad),
        span(pts.iter().map(|p| p.1), 0.1),
    ) else {
        return draw_message(area, &caption, "no values");
    };
    // Room above the data for the stage labels.
    let y1 = y1 + (y1 - y0) * 0.22;
    let mut chart = plot::chart(area, &PANEL, caption, x0..x1, y0..y1)?;
    let percent = m.is_percent();
    plot::mesh(&mut chart, &PANEL)
        .x_desc(ctx.xa.label)
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| if percent { tick_pct(*v) } else { tick(*v) })
        .draw()?;
    for (j, b) in ctx.bounds.iter().enumerate() {
        chart.draw_series(dashed_vline(b.x, y0, y1, false, STAGE.stroke_width(2)))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((b.x, y1))
                + Text::new(
                    truncate(&b.label, 18),
                    (5, 3 + 17 * (j as i32 % 2)),
                    font(14, STAGE),
                ),
        ))?;
    }
    for seg in segments(ctx.xa.xs.iter().copied().zip(ys.iter().copied())) {
        chart.draw_series(LineSeries::new(seg, ACCENT.stroke_width(2)))?;
    }
    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, ACCENT.filled())))?;
    chart.draw_series(
        ctx.xa
            .xs
            .iter()
            .zip(&ys)
            .zip(&ctx.flagged)
            .filter_map(|((&x, y), &f)| y.filter(|_| f).map(|y| (x, y)))
            .map(|p| Circle::new(p, 8, TAX.stroke_width(2))),
    )?;
    Ok(())
}

fn trend_plot(root: &Area<'_>, ctx: &Ctx<'_>) -> DrawResult {
    let head = format!(
        "Metrics across training (x = {}). Dashed purple: stage change. Red ring: Long-Context Tax flag.",
        if ctx.xa.by_step { "step" } else { "checkpoint #" }
    );
    let body = root.titled(&head, font(18, INK))?;
    let metrics = trend_metrics();
    let panels = body.split_evenly((metrics.len().div_ceil(2), 2));
    for (area, m) in panels.iter().zip(metrics) {
        trend_panel(area, ctx, m)?;
    }
    Ok(())
}

/// Points (metric, downstream score, checkpoint index) for a scatter.
fn scatter_points(r: &TrackReport, m: AnyMetric, down: &str) -> Vec<(f64, f64, usize)> {
    r.checkpoints
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let x = c.value(m)?;
            let y = finite(c.downstream.get(down).copied())?;
            Some((x, y, i))
        })
        .collect()
}

/// One panel's data: a metric against one downstream score.
struct Scatter {
    label: String,
    percent: bool,
    points: Vec<(f64, f64, usize)>,
    /// Pearson, Spearman, Kendall and n, as the caption shows them.
    triplet: ([Option<f64>; 3], usize),
}

impl Scatter {
    /// A companion metric, with the report's correlation when it has one.
    fn core(r: &TrackReport, m: Metric, down: &str) -> Self {
        let points = scatter_points(r, AnyMetric::Core(m), down);
        let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
        Self {
            label: m.label().to_string(),
            percent: m.is_percent(),
            triplet: corr_triplet(r, m, down, &xy),
            points,
        }
    }

    /// A leaderboard row's metric, with the board's correlation.
    fn ranked(r: &TrackReport, row: &LeaderboardRow, down: &str) -> Option<Self> {
        let m: AnyMetric = row.metric.parse().ok()?;
        let c = &row.report;
        Some(Self {
            label: format!("#{} {}", row.place, row.metric),
            percent: matches!(m, AnyMetric::Core(core) if core.is_percent()),
            points: scatter_points(r, m, down),
            triplet: (
                [c.pearson.value, c.spearman.value, c.kendall.value].map(finite),
                c.n,
            ),
        })
    }
}

fn scatter_panel(area: &Area<'_>, ctx: &Ctx<'_>, s: &Scatter, down: &str) -> DrawResult {
    let caption = format!("{} vs {}", truncate(&s.label, 40), truncate(down, 40));
    let (t, n) = s.triplet;
    let (xs, ys): (Vec<f64>, Vec<f64>) = s.points.iter().map(|p| (p.0, p.1)).unzip();
    let Some((x0, x1)) = span(xs.iter().copied(), 0.08) else {
        return draw_message(area, &caption, "no checkpoint has both values");
    };
    let fit = stats::linear_fit(&xs, &ys).and_then(|(a, b, _)| {
        let (lo, hi) = span(xs.iter().copied(), 0.0)?;
        let ends = ((lo, a * lo + b), (hi, a * hi + b));
        (ends.0 .1.is_finite() && ends.1 .1.is_finite()).then_some(ends)
    });
    let fit_ys = fit.map(|(p, q)| [p.1, q.1]).unwrap_or([f64::NAN; 2]);
    let Some((y0, y1)) = span(ys.iter().copied().chain(fit_ys), 0.1) else {
        return draw_message(area, &caption, "no checkpoint has both values");
    };
    let y1 = y1 + (y1 - y0) * 0.18;
    let mut chart = plot::chart(area, &PANEL, caption, x0..x1, y0..y1)?;
    let percent = s.percent;
    plot::mesh(&mut chart, &PANEL)
        .x_desc(truncate(&s.label, 40))
        .y_desc(truncate(down, 30))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| if percent { tick_pct(*v) } else { tick(*v) })
        .y_label_formatter(&|v| tick(*v))
        .draw()?;
    chart.draw_series(std::iter::once(
        EmptyElement::at((x0, y1)) + Text::new(triplet_text(&t, n), (8, 6), font(14, INK)),
    ))?;
    if let Some((p, q)) = fit {
        chart.draw_series(dashed_line(p, q, MUTED.stroke_width(2)))?;
    }
    let label_points = s.points.len() <= 12;
    for &(x, y, i) in &s.points {
        let name = truncate(&ctx.r.checkpoints[i].name, 16);
        let label = if label_points { name } else { String::new() };
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, y))
                + Circle::new((0, 0), 5, ACCENT.filled())
                + Text::new(label, (7, -15), font(12, MUTED)),
        ))?;
        if ctx.flagged[i] {
            chart.draw_series(std::iter::once(Circle::new((x, y), 9, TAX.stroke_width(2))))?;
        }
    }
    Ok(())
}

/// The leaders of a metric leaderboard: this many panels.
const LEADERS_PLOTTED: usize = 4;

fn leaders_plot(root: &Area<'_>, ctx: &Ctx<'_>, board: &Leaderboard) -> DrawResult {
    let head = format!(
        "Leading metrics for {} (one point per checkpoint; dashed: least-squares fit)",
        truncate(&board.downstream, 40)
    );
    let body = root.titled(&head, font(18, INK))?;
    let leaders = leaders(ctx.r, board);
    let panels = body.split_evenly((leaders.len().div_ceil(2).max(1), 2));
    for (area, s) in panels.iter().zip(&leaders) {
        scatter_panel(area, ctx, s, &board.downstream)?;
    }
    Ok(())
}

/// The first [`LEADERS_PLOTTED`] rows of a board that name a metric.
fn leaders(r: &TrackReport, board: &Leaderboard) -> Vec<Scatter> {
    board
        .rows
        .iter()
        .filter_map(|row| Scatter::ranked(r, row, &board.downstream))
        .take(LEADERS_PLOTTED)
        .collect()
}

fn scatter_plot(root: &Area<'_>, ctx: &Ctx<'_>, down: &str) -> DrawResult {
    let head = format!(
        "Metrics vs {} (one point per checkpoint; dashed: least-squares fit; red ring: tax flag)",
        truncate(down, 40)
    );
    let body = root.titled(&head, font(18, INK))?;
    let metrics = scatter_metrics();
    let panels = body.split_evenly((metrics.len().div_ceil(2), 2));
    for (area, m) in panels.iter().zip(metrics) {
        scatter_panel(area, ctx, &Scatter::core(ctx.r, m, down), down)?;
    }
    Ok(())
}

/// Density lines of H_k per checkpoint over [0, ln k] (bin centres), zero bins left out.
fn hist_series(c: &CheckpointResult, k: usize) -> Vec<Vec<(f64, f64)>> {
    let total: u64 = c.entropy_hist.iter().sum();
    let bins = c.entropy_hist.len();
    if total == 0 || bins == 0 {
        return Vec::new();
    }
    let width = (k.max(2) as f64).ln() / bins as f64;
    segments(c.entropy_hist.iter().enumerate().map(|(i, &n)| {
        let x = (i as f64 + 0.5) * width;
        let d = n as f64 / (total as f64 * width);
        (x, (n > 0).then_some(d))
    }))
}

fn hist_plot(root: &Area<'_>, ctx: &Ctx<'_>) -> DrawResult {
    let r = ctx.r;
    let k = r.k.max(2);
    let lnk = (k as f64).ln();
    let n = r.checkpoints.len();
    let (w, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally((w as i32 - 240).max(200));
    let series: Vec<Vec<Vec<(f64, f64)>>> =
        r.checkpoints.iter().map(|c| hist_series(c, k)).collect();
    let caption = format!("H_{k} per checkpoint (density, log scale)");
    let Some((lo, hi)) = span(series.iter().flatten().flatten().map(|p| p.1), 0.0) else {
        return draw_message(&left, &caption, "no entropy histogram");
    };
    let (lo, hi) = (lo.max(1e-12) * 0.6, hi.max(lo * 2.0) * 4.0);
    let mut chart = plot::chart(
        &left,
        &PANEL,
        caption,
        0.0..lnk * 1.02,
        (lo..hi).log_scale(),
    )?;
    plot::mesh(&mut chart, &PANEL)
        .x_desc(format!("H_{k} (nats)"))
        .y_desc("density")
        .x_labels(10)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .draw()?;
    for m in 1..=k {
        let x = (m as f64).ln();
        chart.draw_series(dashed_vline(
            x,
            lo,
            hi,
            true,
            MUTED.mix(0.7).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, hi))
                + Text::new(
                    format!("ln {m}"),
                    (3, 3 + 17 * ((m as i32 + 1) % 2)),
                    font(13, MUTED),
                ),
        ))?;
    }
    if r.eps.is_finite() && r.eps > 0.0 && r.eps < lnk * 1.02 {
        chart.draw_series(dashed_vline(r.eps, lo, hi, true, TAX.stroke_width(2)))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((r.eps, lo))
                + Text::new(format!("eps {}", sig4(r.eps)), (4, -18), font(14, TAX)),
        ))?;
    }
    for (i, segs) in series.iter().enumerate() {
        let c = series_color(i, n);
        for seg in segs {
            chart.draw_series(LineSeries::new(seg.clone(), c.stroke_width(2)))?;
        }
    }
    let entries: Vec<(String, RGBColor)> = r
        .checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), series_color(i, n)))
        .collect();
    side_legend(&right, "Checkpoint", &entries)
}

/// The eps grid of the checkpoint sweeps (the first non-empty one).
fn sweep_grid(r: &TrackReport) -> Vec<f64> {
    r.checkpoints
        .iter()
        .map(|c| c.sweep.iter().map(|p| p.eps).collect::<Vec<_>>())
        .find(|g| !g.is_empty())
        .unwrap_or_default()
}

fn sweep_snr_plot(root: &Area<'_>, ctx: &Ctx<'_>) -> DrawResult {
    let r = ctx.r;
    let n = r.checkpoints.len();
    let (w, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally((w as i32 - 240).max(200));
    let caption = "HE-SNR vs eps, per checkpoint (red dashed: the run's eps)";
    let series: Vec<Vec<Vec<(f64, f64)>>> = r
        .checkpoints
        .iter()
        .map(|c| segments(c.sweep.iter().map(|p| (p.eps, p.he_snr))))
        .collect();
    let all = || series.iter().flatten().flatten();
    let (Some((x0, x1)), Some((y0, y1))) = (
        span(all().map(|p| p.0).chain([r.eps]), 0.03),
        span(all().map(|p| p.1), 0.1),
    ) else {
        return draw_message(&left, caption, "no sweep values");
    };
    let y1 = y1 + (y1 - y0) * 0.1;
    let mut chart = plot::chart(&left, &PANEL, caption, x0..x1, y0..y1)?;
    plot::mesh(&mut chart, &PANEL)
        .x_desc("eps (nats)")
        .y_desc("HE-SNR")
        .x_labels(8)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .draw()?;
    if r.eps.is_finite() {
        chart.draw_series(dashed_vline(r.eps, y0, y1, false, TAX.stroke_width(2)))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((r.eps, y1))
                + Text::new(format!("eps {}", sig4(r.eps)), (5, 4), font(14, TAX)),
        ))?;
    }
    for (i, segs) in series.iter().enumerate() {
        let c = series_color(i, n);
        for seg in segs {
            chart.draw_series(LineSeries::new(seg.clone(), c.stroke_width(2)))?;
            chart.draw_series(seg.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
    }
    let entries: Vec<(String, RGBColor)> = r
        .checkpoints
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), series_color(i, n)))
        .collect();
    side_legend(&right, "Checkpoint", &entries)
}

fn sweep_corr_plot(root: &Area<'_>, r: &TrackReport, s: &SweepCorrelation) -> DrawResult {
    let (w, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally((w as i32 - 240).max(200));
    let caption = format!(
        "Correlation of HE-SNR with {} across eps",
        truncate(&s.downstream, 40)
    );
    let lines: Vec<Vec<Vec<(f64, f64)>>> = (0..3)
        .map(|j| {
            segments(s.points.iter().map(|p| {
                let v = [p.1, p.2, p.3][j];
                (p.0, v)
            }))
        })
        .collect();
    let Some((x0, x1)) = span(s.points.iter().map(|p| p.0).chain([r.eps]), 0.03) else {
        return draw_message(&left, &caption, "no sweep values");
    };
    let (y0, y1) = (-1.05, 1.25);
    let mut chart = plot::chart(&left, &PANEL, caption, x0..x1, y0..y1)?;
    plot::mesh(&mut chart, &PANEL)
        .x_desc("eps (nats)")
        .y_desc("correlation")
        .x_labels(8)
        .y_labels(9)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .draw()?;
    if let Some((i, j)) = s.plateau {
        let (a, b) = (s.points.get(i).map(|p| p.0), s.points.get(j).map(|p| p.0));
        if let (Some(a), Some(b)) = (finite(a), finite(b)) {
            let (a, b) = (a.min(b), a.max(b));
            let pad = if b > a { 0.0 } else { (x1 - x0) * 0.01 };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(a - pad, y0), (b + pad, y1)],
                PLATEAU.mix(0.13).filled(),
            )))?;
            chart.draw_series(std::iter::once(
                EmptyElement::at((a - pad, y0))
                    + Text::new("plateau (Pearson)", (5, -20), font(14, PLATEAU)),
            ))?;
        }
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(x0, 0.0), (x1, 0.0)],
        MUTED.stroke_width(1),
    )))?;
    if r.eps.is_finite() {
        chart.draw_series(dashed_vline(r.eps, y0, y1, false, TAX.stroke_width(2)))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((r.eps, y1))
                + Text::new(format!("eps {}", sig4(r.eps)), (5, 4), font(14, TAX)),
        ))?;
    }
    for (j, segs) in lines.iter().enumerate() {
        let c = STAT_COLORS[j];
        for seg in segs {
            // Thick to thin, so that coinciding lines stay visible.
            chart.draw_series(LineSeries::new(
                seg.clone(),
                c.stroke_width(6 - 2 * j as u32),
            ))?;
            chart.draw_series(seg.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
        }
    }
    let entries: Vec<(String, RGBColor)> = Correlation::ALL
        .iter()
        .zip(STAT_COLORS)
        .map(|(c, col)| (c.title().to_string(), col))
        .collect();
    side_legend(&right, "Statistic", &entries)
}

/// Every plot that applies to the report, in page order.
pub(super) fn build_plots(r: &TrackReport) -> Vec<Plot> {
    let ctx = Ctx::new(r);
    let mut out = Vec::new();
    let n = r.checkpoints.len();

    let title = "Metrics across training".to_string();
    let svg = render_svg((1100, 820), &title, |a| trend_plot(a, &ctx));
    let mut caption = format!(
        "HE-SNR, HE-PPL, PPL, top-1, |H| and |H| share of each checkpoint against {}.",
        if ctx.xa.by_step {
            "its training step"
        } else {
            "its position in the run (not every checkpoint has a step)"
        }
    );
    if !ctx.bounds.is_empty() {
        let labels: Vec<&str> = ctx.bounds.iter().map(|b| b.label.as_str()).collect();
        let _ = write!(
            caption,
            " Stage changes (dashed): to {}.",
            labels.join(", to ")
        );
    }
    if ctx.flagged.iter().any(|&f| f) {
        caption.push_str(
            " Red rings: checkpoints that show the Long-Context Tax (PPL or top-1 worse, HE-SNR better, |H| up).",
        );
    }
    out.push(Plot {
        stem: "metrics_vs_step".into(),
        title,
        caption,
        svg,
    });

    for (i, down) in downstream_names(r).iter().enumerate() {
        let title = format!("Metrics vs {down}");
        let svg = render_svg((1100, 780), &title, |a| scatter_plot(a, &ctx, down));
        let parts: Vec<String> = scatter_metrics()
            .into_iter()
            .map(|m| {
                let (t, n) = Scatter::core(r, m, down).triplet;
                let verdict = match find_corr(r, m, down) {
                    Some(c) if c.conclusive => ", conclusive",
                    Some(_) => ", inconclusive",
                    None => "",
                };
                format!("{}: {}{verdict}", m.label(), triplet_text(&t, n))
            })
            .collect();
        out.push(Plot {
            stem: format!("scatter_{}_{}", i + 1, slug(down)),
            title,
            caption: format!(
                "Each point is a checkpoint with a known score; dashed line: least-squares fit. {}.",
                parts.join("; ")
            ),
            svg,
        });
    }

    for (i, board) in r.leaderboard.iter().enumerate() {
        let leaders = leaders(r, board);
        if leaders.is_empty() {
            continue;
        }
        let title = format!("Leading metrics for {}", board.downstream);
        let h = (120 + 340 * leaders.len().div_ceil(2) as u32).min(900);
        let svg = render_svg((1100, h), &title, |a| leaders_plot(a, &ctx, board));
        let names: Vec<String> = leaders.iter().map(|s| s.label.clone()).collect();
        out.push(Plot {
            stem: format!("leaders_{}_{}", i + 1, slug(&board.downstream)),
            title,
            caption: format!(
                "The first {} metrics of the leaderboard ({}); each point is a checkpoint. {}",
                leaders.len(),
                names.join(", "),
                board.verdict
            ),
            svg,
        });
    }

    if r.checkpoints
        .iter()
        .any(|c| c.entropy_hist.iter().any(|&n| n > 0))
    {
        let k = r.k.max(2);
        let title = format!("H_{k} histograms");
        let h = (100 + 19 * n as u32).clamp(480, 900);
        let svg = render_svg((1100, h), &title, |a| hist_plot(a, &ctx));
        out.push(Plot {
            stem: "h10_histograms".into(),
            title,
            caption: format!(
                "Density of the top-{k} renormalised entropy over scored positions, one line per checkpoint (log scale). Dotted lines at ln m mark hesitation among m candidates; red: the decision threshold eps = {}.",
                sig4(r.eps)
            ),
            svg,
        });
    }

    if r.checkpoints
        .iter()
        .any(|c| c.sweep.iter().any(|p| finite(p.he_snr).is_some()))
    {
        let title = "HE-SNR across the eps sweep".to_string();
        let h = (100 + 19 * n as u32).clamp(440, 900);
        let svg = render_svg((1100, h), &title, |a| sweep_snr_plot(a, &ctx));
        let grid = sweep_grid(r);
        out.push(Plot {
            stem: "sweep_he_snr".into(),
            title,
            caption: format!(
                "HE-SNR of each checkpoint at each decision threshold eps of the sweep ({} points{}); the run uses eps = {}.",
                grid.len(),
                match (grid.first(), grid.last()) {
                    (Some(a), Some(b)) => format!(", {} to {}", sig4(*a), sig4(*b)),
                    _ => String::new(),
                },
                sig4(r.eps)
            ),
            svg,
        });
    }

    for (i, s) in r.sweep.iter().enumerate() {
        let title = format!("Correlation with {} across eps", s.downstream);
        let svg = render_svg((1100, 440), &title, |a| sweep_corr_plot(a, r, s));
        let plateau = match s.plateau {
            Some((a, b)) => match (s.points.get(a), s.points.get(b)) {
                (Some(p), Some(q)) => format!(
                    "Shaded: the plateau of Pearson, eps {} to {}.",
                    sig4(p.0),
                    sig4(q.0)
                ),
                _ => String::new(),
            },
            None => "No plateau of Pearson was found.".to_string(),
        };
        out.push(Plot {
            stem: format!("sweep_corr_{}_{}", i + 1, slug(&s.downstream)),
            title,
            caption: format!(
                "Pearson, Spearman and Kendall of HE-SNR with {} at each eps; red dashed: the run's eps. {plateau}",
                s.downstream
            ),
            svg,
        });
    }
    out
}

/// Every plot of the report: (file stem, title, SVG).
pub fn plots(report: &TrackReport) -> Vec<(String, String, String)> {
    build_plots(report)
        .into_iter()
        .map(|p| (p.stem, p.title, p.svg))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(
            slug("<script>alert(1)</script>&swe"),
            "script_alert_1_script_swe"
        );
        assert_eq!(slug("&&&"), "score");
    }
}
