//! `hesnr track`: the report a training lead puts in front of their team.
//!
//! One self-contained HTML page (inline CSS and SVG, no script, no network), the same plots as
//! SVG files, CSV tables of every number, and the [`TrackReport`] itself as JSON. Everything
//! that comes from the data (names, paths, stage labels, downstream names, notes, findings) is
//! escaped, in HTML text, attributes and SVG text alike. Nothing depends on the date, so the
//! same run renders the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::analysis::stats::{self, Correlation, CorrelationReport, CorrelationSummary};
use crate::data::AtomicFile;
use crate::metrics::Summary;
use crate::pipeline::track_types::{
    CheckpointResult, MetricCorrelation, SweepCorrelation, SweepPoint, TaxFlag, TrackReport,
};
use crate::report::explain::html_escape as esc;

// ------------------------------------------------------------------------------------------
// Metrics and number formatting
// ------------------------------------------------------------------------------------------

/// Which way a metric improves (for highlighting the best checkpoint of a column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

#[derive(Debug, Clone, Copy)]
struct MetricDef {
    key: &'static str,
    label: &'static str,
    better: Better,
    percent: bool,
}

const fn metric(
    key: &'static str,
    label: &'static str,
    better: Better,
    percent: bool,
) -> MetricDef {
    MetricDef {
        key,
        label,
        better,
        percent,
    }
}

/// The per-checkpoint metrics, in table order.
const METRICS: [MetricDef; 7] = [
    metric("he_snr", "HE-SNR", Better::Higher, false),
    metric("he_ppl", "HE-PPL", Better::Lower, false),
    metric("ppl", "PPL", Better::Lower, false),
    metric("top1_acc", "top-1", Better::Higher, true),
    metric("decision_tokens", "|H|", Better::Neither, false),
    metric("decision_share", "|H| share", Better::Neither, true),
    metric("mean_h10", "mean H10", Better::Neither, false),
];

/// Panels of the metrics-across-training plot.
const TREND_METRICS: [&str; 6] = [
    "he_snr",
    "he_ppl",
    "ppl",
    "top1_acc",
    "decision_tokens",
    "decision_share",
];

/// Panels of each metric-vs-downstream scatter plot.
const SCATTER_METRICS: [&str; 4] = ["he_snr", "he_ppl", "ppl", "top1_acc"];

fn metric_def(key: &str) -> Option<MetricDef> {
    METRICS.iter().copied().find(|m| m.key == key)
}

fn metric_label(key: &str) -> String {
    metric_def(key).map_or_else(|| key.to_string(), |m| m.label.to_string())
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// A summary's value of a metric key (`None` when undefined, unknown or not finite).
fn metric_value(s: &Summary, key: &str) -> Option<f64> {
    finite(match key {
        "he_snr" => s.he_snr,
        "he_ppl" => s.he_ppl,
        "ppl" => s.ppl,
        "top1_acc" => s.top1_acc,
        "decision_tokens" => Some(s.decision_tokens as f64),
        "decision_share" => s.decision_share,
        "mean_h10" => s.mean_h10,
        "mean_nll" => s.mean_nll,
        "scored_tokens" => Some(s.scored_tokens as f64),
        _ => None,
    })
}

/// `v` with 4 significant digits (scientific notation when very large or small); `-` when not
/// finite.
pub(crate) fn sig4(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.3e}");
    }
    let mag = a.log10().floor() as i32;
    let mut dec = (3 - mag).max(0) as usize;
    let mut s = format!("{v:.dec$}");
    // Rounding up to the next power of ten (9.99996 -> 10.000) adds a digit.
    let rounded: f64 = s.trim_start_matches('-').parse().unwrap_or(0.0);
    if dec > 0 && rounded >= 10f64.powi(mag + 1) {
        dec -= 1;
        s = format!("{v:.dec$}");
    }
    s
}

fn opt(v: Option<f64>) -> String {
    finite(v).map_or_else(|| "-".to_string(), sig4)
}

fn pct(v: Option<f64>) -> String {
    finite(v).map_or_else(|| "-".to_string(), |v| format!("{}%", sig4(v * 100.0)))
}

fn fmt_metric(m: &MetricDef, v: Option<f64>) -> String {
    match (m.key, finite(v)) {
        ("decision_tokens", Some(v)) => format!("{}", v as u64),
        _ if m.percent => pct(v),
        _ => opt(v),
    }
}

/// A step: an integer when it is one.
fn fmt_step(s: Option<f64>) -> String {
    match finite(s) {
        Some(s) if s.fract() == 0.0 && s.abs() < 1e15 => format!("{}", s as i64),
        other => opt(other),
    }
}

/// `sig4` without trailing zeros: for axis ticks.
fn trim_zeros(s: String) -> String {
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(crate) fn tick(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1e6 {
        format!("{}M", trim_zeros(sig4(v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim_zeros(sig4(v / 1e3)))
    } else if a < 1e-12 {
        "0".to_string()
    } else {
        trim_zeros(sig4(v))
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

fn tick_pct(v: f64) -> String {
    format!("{}%", tick(v * 100.0))
}

/// At most `max` characters of `s`, with `...` when cut (for plot labels only; tables show all).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
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

/// The correlation of metric `key` with downstream `down` as the report has it.
fn find_corr<'a>(r: &'a TrackReport, key: &str, down: &str) -> Option<&'a CorrelationReport> {
    r.correlations
        .iter()
        .find(|c| c.metric == key && c.downstream == down)
        .map(|c| &c.report)
}

/// Pearson, Spearman, Kendall and n for a scatter: the report's when present, else computed.
fn corr_triplet(
    r: &TrackReport,
    key: &str,
    down: &str,
    pts: &[(f64, f64)],
) -> ([Option<f64>; 3], usize) {
    if let Some(c) = find_corr(r, key, down) {
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

// ------------------------------------------------------------------------------------------
// Plots
// ------------------------------------------------------------------------------------------

pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(crate) type DrawResult = Result<(), Box<dyn Error>>;

pub(crate) const INK: RGBColor = RGBColor(31, 35, 40);
pub(crate) const MUTED: RGBColor = RGBColor(87, 96, 106);
pub(crate) const GRID: RGBColor = RGBColor(234, 238, 242);
pub(crate) const GRID_BOLD: RGBColor = RGBColor(208, 215, 222);
pub(crate) const ACCENT: RGBColor = RGBColor(9, 105, 218);
const TAX: RGBColor = RGBColor(207, 34, 46);
const STAGE: RGBColor = RGBColor(130, 80, 223);
const PLATEAU: RGBColor = RGBColor(45, 164, 78);
/// Pearson, Spearman, Kendall.
const STAT_COLORS: [RGBColor; 3] = [
    RGBColor(9, 105, 218),
    RGBColor(219, 109, 40),
    RGBColor(26, 127, 55),
];
/// Distinct, dark enough on white (Tableau 10, olive and cyan darkened).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(158, 158, 20),
    RGBColor(23, 160, 175),
];

/// Colour of series `i` of `n`: categorical up to 10, a hue ramp (in checkpoint order) beyond.
fn series_color(i: usize, n: usize) -> RGBColor {
    if n <= PALETTE.len() {
        PALETTE[i % PALETTE.len()]
    } else {
        let h = 0.62 - 0.62 * i as f64 / (n - 1).max(1) as f64;
        let c = HSLColor(h.max(0.0), 0.75, 0.42).to_backend_color();
        RGBColor(c.rgb.0, c.rgb.1, c.rgb.2)
    }
}

pub(crate) fn font(size: u32, color: RGBColor) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&color)
}

fn anchored(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    font(size, color).pos(Pos::new(h, v))
}

/// One drawn plot.
struct Plot {
    stem: String,
    title: String,
    caption: String,
    svg: String,
}

/// An SVG drawn by `draw` on a white canvas; a plain SVG naming the error if drawing fails.
pub(crate) fn render_svg(
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> String {
    let mut buf = String::new();
    let result: DrawResult = {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let drawn = match root.fill(&WHITE) {
            Ok(()) => draw(&root),
            Err(e) => Err(e.into()),
        };
        let presented = root.present();
        drawn.and_then(|()| presented.map_err(|e| e.into()))
    };
    let svg = match result {
        Ok(()) => buf,
        Err(e) => format!(
            "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n<text x=\"20\" y=\"40\" font-family=\"sans-serif\" font-size=\"14\">This plot could not be drawn: {}</text>\n</svg>\n",
            esc(&e.to_string()),
            w = size.0,
            h = size.1
        ),
    };
    // An accessible name for the figure; plotters' output starts with the <svg ...> tag.
    match svg.find('>') {
        Some(i) => format!(
            "{}\n<title>{}</title>{}",
            &svg[..=i],
            esc(title),
            &svg[i + 1..]
        ),
        None => svg,
    }
}

/// A message in the middle of an area that has nothing to plot.
pub(crate) fn draw_message(area: &Area<'_>, caption: &str, msg: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        caption.to_string(),
        (w as i32 / 2, 14),
        anchored(18, INK, HPos::Center, VPos::Top),
    ))?;
    area.draw(&Text::new(
        msg.to_string(),
        (w as i32 / 2, h as i32 / 2),
        anchored(16, MUTED, HPos::Center, VPos::Center),
    ))?;
    Ok(())
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
fn trend_panel(area: &Area<'_>, ctx: &Ctx<'_>, m: &MetricDef) -> DrawResult {
    let better = match m.better {
        Better::Higher => " (higher is better)",
        Better::Lower => " (lower is better)",
        Better::Neither => "",
    };
    let caption = format!("{}{better}", m.label);
    let ys: Vec<Option<f64>> = ctx
        .r
        .checkpoints
        .iter()
        .map(|c| metric_value(&c.summary, m.key))
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
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(18, INK))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(48)
        .y_label_area_size(74)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let percent = m.percent;
    chart
        .configure_mesh()
        .x_desc(ctx.xa.label)
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| if percent { tick_pct(*v) } else { tick(*v) })
        .light_line_style(GRID.stroke_width(1))
        .bold_line_style(GRID_BOLD.stroke_width(1))
        .max_light_lines(3)
        .label_style(font(14, MUTED))
        .axis_desc_style(font(14, MUTED))
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
    let defs: Vec<MetricDef> = TREND_METRICS.iter().filter_map(|k| metric_def(k)).collect();
    let panels = body.split_evenly((defs.len().div_ceil(2), 2));
    for (area, m) in panels.iter().zip(&defs) {
        trend_panel(area, ctx, m)?;
    }
    Ok(())
}

/// Points (metric, downstream score, checkpoint index) for a scatter.
fn scatter_points(r: &TrackReport, key: &str, down: &str) -> Vec<(f64, f64, usize)> {
    r.checkpoints
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let x = metric_value(&c.summary, key)?;
            let y = finite(c.downstream.get(down).copied())?;
            Some((x, y, i))
        })
        .collect()
}

fn scatter_panel(area: &Area<'_>, ctx: &Ctx<'_>, m: &MetricDef, down: &str) -> DrawResult {
    let caption = format!("{} vs {}", m.label, truncate(down, 40));
    let pts = scatter_points(ctx.r, m.key, down);
    let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
    let (t, n) = corr_triplet(ctx.r, m.key, down, &xy);
    let (xs, ys): (Vec<f64>, Vec<f64>) = xy.iter().copied().unzip();
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
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(18, INK))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(48)
        .y_label_area_size(74)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let percent = m.percent;
    chart
        .configure_mesh()
        .x_desc(m.label)
        .y_desc(truncate(down, 30))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| if percent { tick_pct(*v) } else { tick(*v) })
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(GRID.stroke_width(1))
        .bold_line_style(GRID_BOLD.stroke_width(1))
        .max_light_lines(3)
        .label_style(font(14, MUTED))
        .axis_desc_style(font(14, MUTED))
        .draw()?;
    chart.draw_series(std::iter::once(
        EmptyElement::at((x0, y1)) + Text::new(triplet_text(&t, n), (8, 6), font(14, INK)),
    ))?;
    if let Some((p, q)) = fit {
        chart.draw_series(dashed_line(p, q, MUTED.stroke_width(2)))?;
    }
    let label_points = pts.len() <= 12;
    for &(x, y, i) in &pts {
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

fn scatter_plot(root: &Area<'_>, ctx: &Ctx<'_>, down: &str) -> DrawResult {
    let head = format!(
        "Metrics vs {} (one point per checkpoint; dashed: least-squares fit; red ring: tax flag)",
        truncate(down, 40)
    );
    let body = root.titled(&head, font(18, INK))?;
    let defs: Vec<MetricDef> = SCATTER_METRICS
        .iter()
        .filter_map(|k| metric_def(k))
        .collect();
    let panels = body.split_evenly((defs.len().div_ceil(2), 2));
    for (area, m) in panels.iter().zip(&defs) {
        scatter_panel(area, ctx, m, down)?;
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
    let mut chart = ChartBuilder::on(&left)
        .caption(caption, font(18, INK))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(48)
        .y_label_area_size(74)
        .build_cartesian_2d(0.0..lnk * 1.02, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(format!("H_{k} (nats)"))
        .y_desc("density")
        .x_labels(10)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(GRID.stroke_width(1))
        .bold_line_style(GRID_BOLD.stroke_width(1))
        .max_light_lines(3)
        .label_style(font(14, MUTED))
        .axis_desc_style(font(14, MUTED))
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
    let mut chart = ChartBuilder::on(&left)
        .caption(caption, font(18, INK))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(48)
        .y_label_area_size(74)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("eps (nats)")
        .y_desc("HE-SNR")
        .x_labels(8)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(GRID.stroke_width(1))
        .bold_line_style(GRID_BOLD.stroke_width(1))
        .max_light_lines(3)
        .label_style(font(14, MUTED))
        .axis_desc_style(font(14, MUTED))
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
    let mut chart = ChartBuilder::on(&left)
        .caption(caption, font(18, INK))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(48)
        .y_label_area_size(74)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("eps (nats)")
        .y_desc("correlation")
        .x_labels(8)
        .y_labels(9)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(GRID.stroke_width(1))
        .bold_line_style(GRID_BOLD.stroke_width(1))
        .max_light_lines(3)
        .label_style(font(14, MUTED))
        .axis_desc_style(font(14, MUTED))
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

fn build_plots(r: &TrackReport) -> Vec<Plot> {
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
        let parts: Vec<String> = SCATTER_METRICS
            .iter()
            .map(|k| {
                let xy: Vec<(f64, f64)> = scatter_points(r, k, down)
                    .iter()
                    .map(|p| (p.0, p.1))
                    .collect();
                let (t, n) = corr_triplet(r, k, down, &xy);
                let verdict = match find_corr(r, k, down) {
                    Some(c) if c.conclusive => ", conclusive",
                    Some(_) => ", inconclusive",
                    None => "",
                };
                format!("{}: {}{verdict}", metric_label(k), triplet_text(&t, n))
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

// ------------------------------------------------------------------------------------------
// HTML
// ------------------------------------------------------------------------------------------

pub(crate) const CSS: &str = r#"<style>
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #ffffff; color: #1f2328; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", "Liberation Sans", sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 10px; line-height: 1.25; overflow-wrap: anywhere; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 0; }
dl.meta dt { color: #57606a; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
nav { margin: 14px 0 0; font-size: 14px; }
nav a { color: #0969da; margin-right: 16px; text-decoration: none; }
.callout { background: #fff8e1; border: 1px solid #e9c46a; border-left: 6px solid #bf8700; border-radius: 6px; padding: 10px 18px; margin: 20px 0; }
.callout h2 { border: 0; margin: 0 0 4px; padding: 0; font-size: 17px; }
.callout ul { margin: 4px 0; padding-left: 20px; }
.callout li { margin: 3px 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { padding: 5px 8px; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; white-space: nowrap; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { background: #dafbe1; font-weight: 600; }
td.name { min-width: 150px; overflow-wrap: anywhere; }
th.down { white-space: normal; min-width: 70px; }
td.metric { white-space: nowrap; }
td.down { min-width: 90px; }
td.orders { white-space: nowrap; font-size: 12.5px; font-variant-numeric: tabular-nums; }
tbody.group { border-top: 2px solid #d0d7de; }
.model { color: #57606a; font-size: 12px; overflow-wrap: anywhere; }
.note { overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 11.5px; font-weight: 600; margin: 0 4px 0 0; white-space: nowrap; }
.b-cache { background: #eaeef2; color: #424a53; }
.b-tax { background: #ffebe9; color: #a40e26; }
.b-ok { background: #dafbe1; color: #116329; }
.b-no { background: #fff1c2; color: #7d4e00; }
.b-stage { background: #fbefff; color: #6639ba; }
.tax li { margin: 8px 0; overflow-wrap: anywhere; }
.tax ul ul { margin: 4px 0; }
p.hint { color: #57606a; font-size: 13px; margin: 6px 0; }
figure { margin: 20px 0; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { font-size: 13.5px; color: #424a53; margin-top: 8px; overflow-wrap: anywhere; }
figcaption strong { color: #1f2328; }
footer { margin-top: 40px; color: #57606a; font-size: 12px; }
</style>
"#;

/// The best value of a column (per [`Better`]); `None` when the column has no direction or value.
/// Escaped text that may break after underscores (long score names in narrow columns).
fn esc_wrap(s: &str) -> String {
    esc(s).replace('_', "_<wbr>")
}

fn best_of(values: &[Option<f64>], better: Better) -> Option<f64> {
    let defined = values.iter().filter_map(|v| finite(*v));
    match better {
        Better::Higher => defined.reduce(f64::max),
        Better::Lower => defined.reduce(f64::min),
        Better::Neither => None,
    }
}

/// A numeric cell, highlighted when it holds the column's best value.
fn num_cell(out: &mut String, text: &str, v: Option<f64>, best: Option<f64>) {
    let is_best = matches!((finite(v), best), (Some(v), Some(b)) if v == b);
    let class = if is_best { "num best" } else { "num" };
    let _ = write!(out, "<td class=\"{class}\">{}</td>", esc(text));
}

/// "ln 1: 61.20%", "ln 2: 18.00%", ... one a line: the most common entropy orders.
fn top_orders(s: &Summary, n: usize) -> String {
    let mut v: Vec<(usize, f64)> = s
        .order_shares
        .iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite() && **x > 0.0)
        .map(|(i, &x)| (i + 1, x))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if v.is_empty() {
        return "-".to_string();
    }
    v.iter()
        .take(n)
        .map(|(m, x)| format!("ln {m}: {}", pct(Some(*x))))
        .collect::<Vec<_>>()
        .join("\n")
}

fn header_html(out: &mut String, r: &TrackReport) {
    let downs = downstream_names(r);
    let cached = r.checkpoints.iter().filter(|c| c.cached).count();
    let _ = write!(
        out,
        "<header><h1>{}</h1><dl class=\"meta\"><dt>Evaluation set</dt><dd>{}</dd><dt>k (top-k entropy)</dt><dd>{}</dd><dt>eps (decision threshold)</dt><dd>{} nats</dd><dt>Checkpoints</dt><dd>{}{}</dd><dt>Downstream scores</dt><dd>{}</dd></dl>",
        esc(&r.title),
        esc(&r.eval_set),
        r.k,
        esc(&sig4(r.eps)),
        r.checkpoints.len(),
        if cached > 0 {
            format!(" ({cached} read from the cache)")
        } else {
            String::new()
        },
        if downs.is_empty() {
            "none given".to_string()
        } else {
            downs.iter().map(|d| esc(d)).collect::<Vec<_>>().join(", ")
        }
    );
    out.push_str("<nav><a href=\"#notes\">Notes</a><a href=\"#checkpoints\">Checkpoints</a><a href=\"#correlations\">Correlations</a><a href=\"#tax\">Long-Context Tax</a><a href=\"#plots\">Plots</a></nav></header>\n");
}

fn notes_html(out: &mut String, r: &TrackReport) {
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
    out.push_str("<section id=\"notes\" class=\"callout\"><h2>Read this first</h2>");
    if notes.is_empty() {
        out.push_str("<p>No caveats were raised for this run.</p>");
    } else {
        out.push_str("<ul>");
        for n in &notes {
            let _ = write!(out, "<li>{}</li>", esc(n));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>\n");
}

fn checkpoint_table_html(out: &mut String, r: &TrackReport) {
    let downs = downstream_names(r);
    let flagged = tax_flagged(r);
    out.push_str("<section id=\"checkpoints\"><h2>Checkpoints</h2>");
    if r.checkpoints.is_empty() {
        out.push_str("<p>No checkpoints were scored.</p></section>\n");
        return;
    }
    let metric_best: Vec<Option<f64>> = METRICS
        .iter()
        .map(|m| {
            let vals: Vec<Option<f64>> = r
                .checkpoints
                .iter()
                .map(|c| metric_value(&c.summary, m.key))
                .collect();
            best_of(&vals, m.better)
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
    out.push_str("<div class=\"scroll\"><table id=\"checkpoint-table\"><thead><tr><th class=\"num\">#</th><th>Checkpoint</th><th class=\"num\">Step</th><th>Stage</th>");
    for m in &METRICS {
        let _ = write!(out, "<th class=\"num\">{}</th>", esc(m.label));
    }
    out.push_str("<th>Top orders</th>");
    for d in &downs {
        let _ = write!(out, "<th class=\"num down\">{}</th>", esc_wrap(d));
    }
    out.push_str("</tr></thead><tbody>\n");
    for (i, c) in r.checkpoints.iter().enumerate() {
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"name\" title=\"{}\">{}",
            i + 1,
            esc(&c.model),
            esc(&c.name)
        );
        if flagged[i] {
            out.push_str(" <span class=\"badge b-tax\">tax</span>");
        }
        if c.cached {
            out.push_str(" <span class=\"badge b-cache\">cached</span>");
        }
        let _ = write!(
            out,
            "<div class=\"model\">{}</div></td><td class=\"num\">{}</td><td>{}</td>",
            esc(&c.model),
            esc(&fmt_step(c.step)),
            c.stage.as_deref().map_or_else(
                || "-".to_string(),
                |s| format!("<span class=\"badge b-stage\">{}</span>", esc(s))
            )
        );
        for (m, best) in METRICS.iter().zip(&metric_best) {
            let v = metric_value(&c.summary, m.key);
            num_cell(out, &fmt_metric(m, v), v, *best);
        }
        let orders = esc(&top_orders(&c.summary, 3)).replace('\n', "<br>");
        let _ = write!(out, "<td class=\"orders\">{orders}</td>");
        for (d, best) in downs.iter().zip(&down_best) {
            let v = c.downstream.get(d).copied();
            num_cell(out, &opt(v), v, *best);
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>");
    out.push_str("<p class=\"hint\">Green: the best value of a column (higher HE-SNR, top-1 and downstream scores; lower PPL and HE-PPL). |H| is the number of decision tokens (H above eps, true token in the top k); a jump in |H| with a flat or rising HE-SNR is the Long-Context Tax, not a regression. Hover a name for its model file.</p></section>\n");
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

fn correlation_table_html(out: &mut String, r: &TrackReport) {
    out.push_str("<section id=\"correlations\"><h2>Metrics vs downstream scores</h2>");
    if r.correlations.is_empty() {
        out.push_str(if downstream_names(r).is_empty() {
            "<p>No downstream scores were given: there is nothing to correlate. Add scores to the manifest to see which metric tracks them.</p></section>\n"
        } else {
            "<p>No correlations were computed for this run.</p></section>\n"
        });
        return;
    }
    out.push_str("<div class=\"scroll\"><table id=\"correlation-table\"><thead><tr><th>Metric</th><th>Downstream</th><th class=\"num\">n</th><th>Statistic</th><th class=\"num\">Value</th><th class=\"num\">95% CI</th><th class=\"num\">Permutation p</th><th class=\"num\">Leave-one-out range</th><th>Verdict</th></tr></thead>\n");
    for MetricCorrelation {
        metric,
        downstream,
        report: c,
    } in &r.correlations
    {
        out.push_str("<tbody class=\"group\">");
        for (j, stat) in Correlation::ALL.iter().enumerate() {
            let s = c.get(*stat);
            out.push_str("<tr>");
            if j == 0 {
                let _ = write!(
                    out,
                    "<td rowspan=\"3\" class=\"metric\">{}</td><td rowspan=\"3\" class=\"down\">{}</td><td rowspan=\"3\" class=\"num\">{}</td>",
                    esc(&metric_label(metric)),
                    esc_wrap(downstream),
                    c.n
                );
            }
            let _ = write!(
                out,
                "<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                stat.title(),
                esc(&opt(s.value)),
                esc(&fmt_ci(s)),
                esc(&fmt_p(s)),
                esc(&fmt_loo(s))
            );
            if j == 0 {
                let _ = write!(
                    out,
                    "<td rowspan=\"3\" class=\"note\">{}{}</td>",
                    if c.conclusive {
                        "<span class=\"badge b-ok\">conclusive</span> "
                    } else {
                        "<span class=\"badge b-no\">inconclusive</span> "
                    },
                    esc(&c.note)
                );
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n");
    }
    out.push_str("</table></div><p class=\"hint\">Conclusive needs Spearman and Kendall of one sign, 95% bootstrap intervals that exclude 0, no sign flip when any one checkpoint is left out, and permutation p below 0.05. A negative association (PPL falls as scores rise) is as useful as a positive one.</p></section>\n");
}

fn tax_html(out: &mut String, r: &TrackReport) {
    out.push_str("<section id=\"tax\" class=\"tax\"><h2>Long-Context Tax</h2><p class=\"hint\">A pair of consecutive checkpoints where PPL or top-1 get worse while HE-SNR improves and |H| jumps, typically right after a context extension: the switch inflates the number of hard decisions while mastery of them keeps improving. Do not read these as regressions.</p>");
    if r.tax.is_empty() {
        out.push_str("<p>No pair of consecutive checkpoints shows the Long-Context Tax.</p>");
    } else {
        out.push_str("<ul>");
        for TaxFlag {
            from,
            to,
            stage_change,
            findings,
        } in &r.tax
        {
            let _ = write!(
                out,
                "<li><strong>{}</strong> &rarr; <strong>{}</strong> {}",
                esc(from),
                esc(to),
                if *stage_change {
                    "<span class=\"badge b-stage\">stage change</span>"
                } else {
                    "<span class=\"badge b-cache\">same stage</span>"
                }
            );
            if !findings.is_empty() {
                out.push_str("<ul>");
                for f in findings {
                    let _ = write!(out, "<li>{}</li>", esc(f));
                }
                out.push_str("</ul>");
            }
            out.push_str("</li>");
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>\n");
}

fn render_html_with(r: &TrackReport, plots: &[Plot]) -> String {
    let mut out =
        String::with_capacity(64 * 1024 + plots.iter().map(|p| p.svg.len()).sum::<usize>());
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    // Nothing is loaded and nothing runs, even if some text were ever left unescaped.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", esc(&r.title));
    out.push_str(CSS);
    out.push_str("</head><body><main>\n");
    header_html(&mut out, r);
    notes_html(&mut out, r);
    checkpoint_table_html(&mut out, r);
    correlation_table_html(&mut out, r);
    tax_html(&mut out, r);
    out.push_str("<section id=\"plots\"><h2>Plots</h2>");
    for p in plots {
        let _ = writeln!(
            out,
            "<figure id=\"plot-{}\">{}<figcaption><strong>{}.</strong> {}</figcaption></figure>",
            esc(&p.stem),
            p.svg,
            esc(&p.title),
            esc(&p.caption)
        );
    }
    out.push_str("</section>\n");
    let _ = writeln!(
        out,
        "<footer>hesnr {}: HE-SNR and companion metrics (Wang et al., arXiv 2601.20255). The same plots are in plots/*.svg, every number in checkpoints.csv, correlations.csv, sweep.csv and report.json.</footer>",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("</main></body></html>\n");
    out
}

/// The report as one self-contained HTML page (inline CSS and SVG, no script, no network).
pub fn render_html(report: &TrackReport) -> String {
    render_html_with(report, &build_plots(report))
}

// ------------------------------------------------------------------------------------------
// CSV
// ------------------------------------------------------------------------------------------

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Full precision (shortest round-trip form); empty when undefined.
fn csv_num(v: Option<f64>) -> String {
    finite(v).map(|v| format!("{v}")).unwrap_or_default()
}

fn csv_row(out: &mut String, fields: &[String]) {
    let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&row.join(","));
    out.push('\n');
}

/// One row per checkpoint with every number of its summary and its downstream scores.
pub(crate) fn checkpoints_csv(r: &TrackReport) -> String {
    let downs = downstream_names(r);
    let flagged = tax_flagged(r);
    let orders = r
        .checkpoints
        .iter()
        .map(|c| c.summary.order_shares.len())
        .max()
        .unwrap_or(0);
    let mut header: Vec<String> = [
        "index",
        "name",
        "model",
        "step",
        "stage",
        "cached",
        "tax_flag",
        "documents",
        "scored_tokens",
        "mean_nll",
        "ppl",
        "top1_acc",
        "decision_tokens",
        "decision_share",
        "he_snr",
        "he_ppl",
        "mean_h10",
    ]
    .map(String::from)
    .to_vec();
    header.extend((1..=orders).map(|m| format!("order_share_{m}")));
    header.extend(downs.iter().map(|d| format!("downstream:{d}")));
    let mut out = String::new();
    csv_row(&mut out, &header);
    for (i, c) in r.checkpoints.iter().enumerate() {
        let s = &c.summary;
        let mut row = vec![
            (i + 1).to_string(),
            c.name.clone(),
            c.model.clone(),
            csv_num(c.step),
            c.stage.clone().unwrap_or_default(),
            c.cached.to_string(),
            flagged[i].to_string(),
            s.documents.to_string(),
            s.scored_tokens.to_string(),
            csv_num(s.mean_nll),
            csv_num(s.ppl),
            csv_num(s.top1_acc),
            s.decision_tokens.to_string(),
            csv_num(s.decision_share),
            csv_num(s.he_snr),
            csv_num(s.he_ppl),
            csv_num(s.mean_h10),
        ];
        row.extend((0..orders).map(|j| csv_num(s.order_shares.get(j).copied())));
        row.extend(downs.iter().map(|d| csv_num(c.downstream.get(d).copied())));
        csv_row(&mut out, &row);
    }
    out
}

/// One row per metric, downstream score and statistic.
pub(crate) fn correlations_csv(r: &TrackReport) -> String {
    let mut out = String::new();
    csv_row(
        &mut out,
        &[
            "metric",
            "downstream",
            "n",
            "statistic",
            "value",
            "ci95_low",
            "ci95_high",
            "ci_resamples_used",
            "permutation_p",
            "permutations",
            "permutation_exact",
            "loo_min",
            "loo_max",
            "loo_sign_flips",
            "conclusive",
            "note",
        ]
        .map(String::from),
    );
    for c in &r.correlations {
        for stat in Correlation::ALL {
            let s = c.report.get(stat);
            csv_row(
                &mut out,
                &[
                    c.metric.clone(),
                    c.downstream.clone(),
                    c.report.n.to_string(),
                    stat.name().to_string(),
                    csv_num(s.value),
                    csv_num(s.ci95.map(|i| i.low)),
                    csv_num(s.ci95.map(|i| i.high)),
                    s.ci95
                        .map(|i| i.resamples_used.to_string())
                        .unwrap_or_default(),
                    csv_num(s.permutation.map(|p| p.p_value)),
                    s.permutation
                        .map(|p| p.permutations.to_string())
                        .unwrap_or_default(),
                    s.permutation
                        .map(|p| p.exact.to_string())
                        .unwrap_or_default(),
                    csv_num(s.leave_one_out.min),
                    csv_num(s.leave_one_out.max),
                    s.leave_one_out.sign_flips.to_string(),
                    c.report.conclusive.to_string(),
                    c.report.note.clone(),
                ],
            );
        }
    }
    out
}

/// The sweep in long form: HE-SNR and |H| per checkpoint and eps, then the correlations per
/// downstream score and eps.
pub(crate) fn sweep_csv(r: &TrackReport) -> String {
    let mut out = String::new();
    csv_row(
        &mut out,
        &[
            "series",
            "name",
            "eps",
            "he_snr",
            "decision_tokens",
            "pearson",
            "spearman",
            "kendall",
            "in_plateau",
        ]
        .map(String::from),
    );
    for c in &r.checkpoints {
        for SweepPoint {
            eps,
            he_snr,
            decision_tokens,
        } in &c.sweep
        {
            csv_row(
                &mut out,
                &[
                    "checkpoint".into(),
                    c.name.clone(),
                    csv_num(Some(*eps)),
                    csv_num(*he_snr),
                    decision_tokens.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            );
        }
    }
    for s in &r.sweep {
        for (i, &(eps, p, sp, k)) in s.points.iter().enumerate() {
            let inside = s.plateau.is_some_and(|(a, b)| (a..=b).contains(&i));
            csv_row(
                &mut out,
                &[
                    "correlation".into(),
                    s.downstream.clone(),
                    csv_num(Some(eps)),
                    String::new(),
                    String::new(),
                    csv_num(p),
                    csv_num(sp),
                    csv_num(k),
                    inside.to_string(),
                ],
            );
        }
    }
    out
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
    let plots = build_plots(report);
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
        checkpoints_csv(report).as_bytes(),
        &mut written,
    )?;
    put(
        dir,
        "correlations.csv",
        correlations_csv(report).as_bytes(),
        &mut written,
    )?;
    put(dir, "sweep.csv", sweep_csv(report).as_bytes(), &mut written)?;
    let mut json = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
    json.push(b'\n');
    put(dir, "report.json", &json, &mut written)?;
    put(
        dir,
        "report.html",
        render_html_with(report, &plots).as_bytes(),
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

// ------------------------------------------------------------------------------------------
// A demonstration report
// ------------------------------------------------------------------------------------------

/// A synthetic but realistic tracking run (8 checkpoints, a 32k -> 128k switch with the
/// Long-Context Tax, two downstream scores, an eps sweep), for tests and for trying renderers.
#[doc(hidden)]
pub fn demo_report() -> TrackReport {
    const K: usize = 10;
    const EPS: f64 = 1.242_453_324_894;
    const BINS: usize = crate::metrics::ENTROPY_BINS;
    let n = 8;
    let ln = |m: f64| m.ln();
    let scored = 600_000u64;
    let he_snr = [
        0.1212, 0.1248, 0.1279, 0.1306, 0.1331, 0.1349, 0.1372, 0.1390,
    ];
    let ppl: [f64; 8] = [2.104, 2.061, 2.027, 1.998, 1.975, 2.214, 2.083, 2.012];
    let top1 = [
        0.9021, 0.9058, 0.9087, 0.9110, 0.9129, 0.8947, 0.9061, 0.9118,
    ];
    let he_ppl = [3.912, 3.861, 3.822, 3.790, 3.766, 3.851, 3.771, 3.734];
    let dec = [
        41_250u64, 40_610, 40_080, 39_640, 39_270, 51_930, 46_220, 43_310,
    ];
    let mean_h = [
        0.4212, 0.4168, 0.4127, 0.4095, 0.4069, 0.4633, 0.4388, 0.4221,
    ];
    let swe = [0.182, 0.196, 0.203, 0.219, 0.224, 0.238, 0.251, 0.262];
    let humaneval: [Option<f64>; 8] = [
        None,
        Some(0.52),
        None,
        Some(0.57),
        None,
        Some(0.55),
        None,
        Some(0.61),
    ];
    let eps_grid: Vec<f64> = (0..7)
        .map(|j| ln(2.0) + j as f64 * (ln(5.0) - ln(2.0)) / 6.0)
        .collect();
    let checkpoints: Vec<CheckpointResult> = (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            let tax = if i == 5 { 1.0 } else { 0.0 };
            // Hesitation among 4 candidates folds into 3 as training goes on.
            let w = [
                0.60,
                0.17,
                0.09 + 0.03 * t,
                0.07 - 0.03 * t + 0.02 * tax,
                0.03,
            ];
            let width = ln(K as f64) / BINS as f64;
            let entropy_hist: Vec<u64> = (0..BINS)
                .map(|b| {
                    let x = (b as f64 + 0.5) * width;
                    let mut d = 0.02;
                    for (m, wm) in w.iter().enumerate() {
                        let mu = ln(m as f64 + 1.0);
                        let sd = 0.035 + 0.02 * m as f64;
                        d += wm * (-(x - mu).powi(2) / (2.0 * sd * sd)).exp() / sd;
                    }
                    (d * 1_000.0).round() as u64
                })
                .collect();
            let mut shares = [
                0.62,
                0.17,
                0.09 + 0.03 * t,
                0.06 - 0.03 * t,
                0.025,
                0.015,
                0.008,
                0.006,
                0.004,
                0.002,
            ];
            let total: f64 = shares.iter().sum();
            shares.iter_mut().for_each(|s| *s /= total);
            let sweep = eps_grid
                .iter()
                .enumerate()
                .map(|(j, &e)| SweepPoint {
                    eps: e,
                    he_snr: Some(he_snr[i] * (EPS / e).powf(0.85) * (1.0 + 0.004 * j as f64 * t)),
                    decision_tokens: (dec[i] as f64 * (-(e - EPS) * 1.6).exp()).round() as u64,
                })
                .collect();
            let mut downstream = BTreeMap::new();
            downstream.insert("swebench_verified".to_string(), swe[i]);
            if let Some(h) = humaneval[i] {
                downstream.insert("humaneval_plus".to_string(), h);
            }
            let step = 500.0 * (i + 1) as f64;
            CheckpointResult {
                name: format!("step {step}"),
                model: format!("checkpoints/run-7/step-{step:05}.gguf"),
                step: Some(step),
                stage: Some(if i < 5 { "32k" } else { "128k" }.to_string()),
                downstream,
                summary: Summary {
                    documents: 7,
                    scored_tokens: scored,
                    mean_nll: Some(ppl[i].ln()),
                    ppl: Some(ppl[i]),
                    top1_acc: Some(top1[i]),
                    decision_tokens: dec[i],
                    decision_share: Some(dec[i] as f64 / scored as f64),
                    he_snr: Some(he_snr[i]),
                    he_ppl: Some(he_ppl[i]),
                    mean_h10: Some(mean_h[i]),
                    order_shares: shares.to_vec(),
                },
                entropy_hist,
                sweep,
                cached: i < 3,
            }
        })
        .collect();
    let downs = ["humaneval_plus", "swebench_verified"];
    let mut correlations = Vec::new();
    for key in [
        "he_snr",
        "he_ppl",
        "ppl",
        "top1_acc",
        "decision_share",
        "mean_h10",
    ] {
        for d in downs {
            let (x, y): (Vec<f64>, Vec<f64>) = checkpoints
                .iter()
                .filter_map(|c| Some((metric_value(&c.summary, key)?, *c.downstream.get(d)?)))
                .unzip();
            correlations.push(MetricCorrelation {
                metric: key.to_string(),
                downstream: d.to_string(),
                report: stats::correlate(&x, &y, 7),
            });
        }
    }
    let sweep = downs
        .iter()
        .map(|d| {
            let points: Vec<_> = eps_grid
                .iter()
                .enumerate()
                .map(|(j, &e)| {
                    let (x, y): (Vec<f64>, Vec<f64>) = checkpoints
                        .iter()
                        .filter_map(|c| Some((c.sweep[j].he_snr?, *c.downstream.get(*d)?)))
                        .unzip();
                    (
                        e,
                        stats::pearson(&x, &y),
                        stats::spearman(&x, &y),
                        stats::kendall_tau_b(&x, &y),
                    )
                })
                .collect();
            let pearson: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (p.0, p.1.unwrap_or(f64::NAN)))
                .collect();
            SweepCorrelation {
                downstream: d.to_string(),
                plateau: stats::plateau(&pearson, 0.01),
                points,
            }
        })
        .collect();
    let (a, b) = (&checkpoints[4], &checkpoints[5]);
    let change = |x: f64, y: f64| {
        format!(
            "{} -> {} ({:+.1}%)",
            sig4(x),
            sig4(y),
            (y / x - 1.0) * 100.0
        )
    };
    let tax = vec![TaxFlag {
        from: a.name.clone(),
        to: b.name.clone(),
        stage_change: true,
        findings: vec![
            format!(
                "PPL {} while HE-SNR {}",
                change(ppl[4], ppl[5]),
                change(he_snr[4], he_snr[5])
            ),
            format!("top-1 {}", change(top1[4], top1[5])),
            format!("|H| {}", change(dec[4] as f64, dec[5] as f64)),
        ],
    }];
    TrackReport {
        title: "Mid-training run 7: HE-SNR across checkpoints".into(),
        eval_set: "7 trajectories (examples/trajectories), preset full".into(),
        k: K,
        eps: EPS,
        checkpoints,
        correlations,
        sweep,
        tax,
        notes: vec![
            "8 checkpoints: permutation p-values are exact, but intervals from this few points are wide; treat the ranking as a guide, not a result.".into(),
            "humaneval_plus is known for 4 checkpoints only.".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_report() -> TrackReport {
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

    /// Every `&` starts an entity reference.
    fn assert_no_bare_ampersand(s: &str, what: &str) {
        for (i, _) in s.match_indices('&') {
            let rest = &s[i + 1..];
            let ok = rest
                .find(';')
                .filter(|&j| j > 0 && j < 12)
                .is_some_and(|j| {
                    let e = &rest[..j];
                    e.strip_prefix('#')
                        .map_or(e.chars().all(|c| c.is_ascii_alphanumeric()), |n| {
                            !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
                        })
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
        // trend, 2 scatters, histograms, HE-SNR sweep, 2 correlation sweeps
        assert_eq!(
            ps.len(),
            7,
            "{:?}",
            ps.iter().map(|p| &p.0).collect::<Vec<_>>()
        );
        assert_eq!(count(&html, "<svg"), ps.len());
        for (stem, title, svg) in &ps {
            assert!(html.contains(&format!("id=\"plot-{stem}\"")), "{stem}");
            assert!(html.contains(&esc(title)), "{title}");
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
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
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
            7
        );
        for f in &files {
            assert!(
                f.is_file() && std::fs::metadata(f).unwrap().len() > 0,
                "{}",
                f.display()
            );
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
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
            (s.mean_nll, s.ppl, s.top1_acc, s.decision_share) = (None, None, None, None);
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
    fn number_formatting() {
        assert_eq!(sig4(0.141234), "0.1412");
        assert_eq!(sig4(3.91), "3.910");
        assert_eq!(sig4(9.99996), "10.00");
        assert_eq!(sig4(-0.5), "-0.5000");
        assert_eq!(sig4(12345.6), "12346");
        assert_eq!(sig4(0.0), "0");
        assert_eq!(sig4(1.5e-5), "1.500e-5");
        assert_eq!(sig4(f64::NAN), "-");
        assert_eq!(opt(None), "-");
        assert_eq!(pct(Some(0.9123)), "91.23%");
        assert_eq!(fmt_step(Some(2000.0)), "2000");
        assert_eq!(tick(12500.0), "12.5k");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(
            slug("<script>alert(1)</script>&swe"),
            "script_alert_1_script_swe"
        );
        assert_eq!(slug("&&&"), "score");
    }
}
