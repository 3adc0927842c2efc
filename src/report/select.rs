//! `hesnr report-select`: what a selection did, for the person who has to trust it.
//!
//! The report is built from a selection folder as
//! [`verify`](crate::pipeline::select::verify()) read and checked it (the selection recomputed
//! from the manifest's config and checked against the manifest's counts, the input hashes and
//! the shards), so that every document is known as dropped by a filter, kept but not sampled, or
//! selected. It recomputes and reads nothing itself: the caller fills in the texts of the
//! documents it shows ([`read_texts`](crate::pipeline::select::read_texts)) and their tokens
//! when a model scored them again ([`rescore`](crate::pipeline::select::rescore)).
//!
//! The [`SelectReport`] is pure data (also written as JSON): per source the counts kept and
//! dropped (per filter), histograms of the chosen scores for all, kept and selected documents,
//! and the top and bottom documents by one score, with their text and, when a model re-scored
//! them, every token classed (decision tokens highlighted). [`render_html`] draws it as one
//! self-contained page (inline CSS and SVG, no script, no network) from
//! `templates/select.html.j2`, which escapes everything from the data.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde::Serialize;

use crate::data::AtomicFile;
use crate::engine::Backend;
use crate::pipeline::score::ScoredDocument;
use crate::pipeline::select::{
    Count, DocAt, DocStatus, FilterReport, Rescored, SourceCounts, VerifiedDoc, VerifiedSelection,
    VerifiedSource,
};
use crate::report::explain;
use crate::report::format::{sig4, tick};
use crate::report::html;
use crate::report::plot::{
    self, anchored, draw_message, render_svg, Area, DrawResult, ALL_FILL, INK, KEPT_FILL,
    SELECTED_FILL, SMALL,
};

/// Score by which documents are ranked when none is given.
pub const DEFAULT_RANK_SCORE: &str = "decision_density";
/// Histogram bins when none are given.
pub const DEFAULT_BINS: usize = 20;
/// Scores that always get a histogram when the profile has them.
const DEFAULT_HIST_SCORES: [&str; 2] = ["decision_density", "he_snr"];
/// At most this many tokens of a document are shown highlighted (the rest is summarised).
pub const MAX_SHOWN_TOKENS: usize = 4000;
/// At most this many characters of a document are shown as plain text.
pub const MAX_SHOWN_CHARS: usize = 16000;

/// What to put in the report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Documents shown at each end of the ranking, per source.
    pub top: usize,
    /// The score documents are ranked by.
    pub rank_score: String,
    /// Scores to draw histograms of; empty: decision_density, he_snr, the scores the source's
    /// filters and weight use, and the rank score (those the profile has).
    pub hist_scores: Vec<String>,
    pub bins: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            top: 5,
            rank_score: DEFAULT_RANK_SCORE.to_string(),
            hist_scores: Vec::new(),
            bins: DEFAULT_BINS,
        }
    }
}

/// Why a report could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "source '{source_name}': no score '{score}' in its profile (columns: {})",
        columns.join(", ")
    )]
    NoHistScore {
        source_name: String,
        score: String,
        columns: Vec<String>,
    },
    #[error(
        "source '{source_name}': no score '{score}' to rank documents by (profile columns: {})",
        columns.join(", ")
    )]
    NoRankScore {
        source_name: String,
        score: String,
        columns: Vec<String>,
    },
    #[error("creating {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

// ------------------------------------------------------------------------------------------
// The model
// ------------------------------------------------------------------------------------------

/// Counts of one score's values in equal-width bins, for all, kept and selected documents.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    pub score: String,
    /// `bins + 1` edges; bin `i` is `[edges[i], edges[i+1])`, the last one closed.
    pub edges: Vec<f64>,
    pub all: Vec<u64>,
    pub kept: Vec<u64>,
    pub selected: Vec<u64>,
    /// Documents without a value (null) in each group: all, kept, selected.
    pub null: [u64; 3],
}

/// One token of a highlighted document: its text, its class (`decision`, `scored`, `tpl`) and
/// the hover details (H_k, p, rank, top candidates).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShownToken {
    pub text: String,
    pub class: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A document re-scored by a model, every token classed.
#[derive(Debug, Clone, Serialize)]
pub struct Highlight {
    /// The first [`MAX_SHOWN_TOKENS`] tokens.
    pub tokens: Vec<ShownToken>,
    pub total_tokens: usize,
    pub scored_tokens: u64,
    pub decision_tokens: u64,
    pub he_snr: Option<f64>,
}

/// A document at one end of the ranking.
#[derive(Debug, Clone, Serialize)]
pub struct DocView {
    /// 1 for the highest (top) or lowest (bottom) score.
    pub rank: usize,
    pub id: String,
    pub file: String,
    pub line: u64,
    pub tokens: u64,
    pub score: Option<f64>,
    /// The histogram scores and the profile's `decision_tokens`, when it has them.
    pub scores: BTreeMap<String, Option<f64>>,
    /// `selected`, `kept, not sampled`, or `dropped by filter N: ...`.
    pub status: String,
    pub selected: bool,
    pub kept: bool,
    pub weight: Option<f64>,
    /// The document's text (filled by the caller, from
    /// [`read_texts`](crate::pipeline::select::read_texts)).
    pub text: Option<String>,
    /// Tokens with their classes (filled by [`show_rescored`] when a model re-scored it).
    pub highlight: Option<Highlight>,
}

/// One source of the report.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub name: String,
    pub general: bool,
    pub profiled: bool,
    pub text_field: String,
    pub id_field: String,
    pub counts: SourceCounts,
    /// Read minus kept: documents and tokens the source lost (no profile row, filters).
    pub dropped: Count,
    /// Kept but not sampled (the source's token target was met before them).
    pub not_sampled: Count,
    pub histograms: Vec<Histogram>,
    /// Whether the rank score exists in this source's profile.
    pub ranked: bool,
    pub top: Vec<DocView>,
    pub bottom: Vec<DocView>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct SelectReport {
    pub title: String,
    pub hesnr_version: String,
    pub selection_dir: String,
    pub config_path: String,
    pub config_sha256: String,
    pub seed: u64,
    pub token_budget: Option<u64>,
    pub general_ratio: Option<f64>,
    pub read: Count,
    pub kept: Count,
    pub selected: Count,
    pub general_share: f64,
    pub rank_score: String,
    pub top_n: usize,
    /// The model that re-scored the top and bottom documents, if any.
    pub model: Option<String>,
    pub notes: Vec<String>,
    pub sources: Vec<SourceView>,
}

impl DocView {
    /// Where the document is, to read its text back or score it again.
    pub fn at(&self) -> DocAt<'_> {
        DocAt {
            file: &self.file,
            line: self.line,
            id: &self.id,
        }
    }

    /// The profile's `decision_tokens` of the document, when the profile has them.
    pub fn profile_decision_tokens(&self) -> Option<f64> {
        self.scores.get("decision_tokens").copied().flatten()
    }
}

impl SourceView {
    /// The documents shown: the top, then the bottom of the ranking.
    pub fn shown(&self) -> impl Iterator<Item = &DocView> {
        self.top.iter().chain(&self.bottom)
    }

    pub fn shown_mut(&mut self) -> impl Iterator<Item = &mut DocView> {
        self.top.iter_mut().chain(self.bottom.iter_mut())
    }
}

/// `selected`, `kept, not sampled`, or `dropped by filter N: ...`.
fn describe_status(status: DocStatus, filters: &[FilterReport]) -> String {
    match status {
        DocStatus::Selected => "selected".to_string(),
        DocStatus::Kept => "kept, not sampled".to_string(),
        DocStatus::Dropped(j) => format!(
            "dropped by filter {}: {}",
            j + 1,
            filters.get(j).map_or("?", |f| f.filter.as_str())
        ),
    }
}

/// Equal-width bins over the range of the values of all documents; every value lands in a
/// bin (the maximum in the last). A range of one value gets a small width around it.
pub fn histogram(score: &str, values: &[(Option<f64>, DocStatus)], bins: usize) -> Histogram {
    let bins = bins.max(1);
    let finite: Vec<f64> = values
        .iter()
        .filter_map(|v| v.0.filter(|x| x.is_finite()))
        .collect();
    let mut h = Histogram {
        score: score.to_string(),
        edges: Vec::new(),
        all: vec![0; bins],
        kept: vec![0; bins],
        selected: vec![0; bins],
        null: [0; 3],
    };
    let (Some(&lo), Some(&hi)) = (
        finite.iter().min_by(|a, b| a.total_cmp(b)),
        finite.iter().max_by(|a, b| a.total_cmp(b)),
    ) else {
        h.all.clear();
        h.kept.clear();
        h.selected.clear();
        for (_, st) in values {
            bump_null(&mut h.null, *st);
        }
        return h;
    };
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let d = if lo == 0.0 { 0.5 } else { lo.abs() * 0.05 };
        (lo - d, hi + d)
    };
    let width = (hi - lo) / bins as f64;
    h.edges = (0..=bins).map(|i| lo + width * i as f64).collect();
    h.edges[bins] = hi;
    for (v, st) in values {
        match v.filter(|x| x.is_finite()) {
            None => bump_null(&mut h.null, *st),
            Some(x) => {
                let b = (((x - lo) / width).floor().max(0.0) as usize).min(bins - 1);
                h.all[b] += 1;
                if st.kept() {
                    h.kept[b] += 1;
                }
                if *st == DocStatus::Selected {
                    h.selected[b] += 1;
                }
            }
        }
    }
    h
}

fn bump_null(null: &mut [u64; 3], st: DocStatus) {
    null[0] += 1;
    if st.kept() {
        null[1] += 1;
    }
    if st == DocStatus::Selected {
        null[2] += 1;
    }
}

fn doc_view(
    s: &VerifiedSource,
    d: &VerifiedDoc,
    rank: usize,
    score: Option<f64>,
    shown: &[usize],
) -> DocView {
    let mut scores = BTreeMap::new();
    for &k in shown {
        scores.insert(s.score_names[k].clone(), d.values[k]);
    }
    DocView {
        rank,
        id: d.id.clone(),
        file: d.file.clone(),
        line: d.line,
        tokens: d.tokens,
        score,
        scores,
        status: describe_status(d.status, &s.counts.filters),
        selected: d.status == DocStatus::Selected,
        kept: d.status.kept(),
        weight: d.weight,
        text: None,
        highlight: None,
    }
}

/// Builds the report model: histograms, kept/dropped arithmetic, the top and bottom documents.
pub fn build(input: &VerifiedSelection, opts: &ReportOptions) -> Result<SelectReport, ReportError> {
    let mut notes = Vec::new();
    let mut sources = Vec::new();
    let mut read = Count::default();
    let mut kept = Count::default();
    for s in &input.sources {
        let c = &s.counts;
        read = read.plus(c.read);
        kept = kept.plus(c.kept);
        let col = |n: &str| s.score_names.iter().position(|m| m == n);
        let mut hist_names: Vec<String> = if opts.hist_scores.is_empty() {
            DEFAULT_HIST_SCORES
                .iter()
                .map(|x| x.to_string())
                .chain(s.config_scores.iter().cloned())
                .chain(std::iter::once(opts.rank_score.clone()))
                .filter(|n| col(n).is_some())
                .collect()
        } else {
            opts.hist_scores.clone()
        };
        let mut seen = HashSet::new();
        hist_names.retain(|n| seen.insert(n.clone()));
        let mut histograms = Vec::new();
        if s.profiled {
            for n in &hist_names {
                let Some(k) = col(n) else {
                    return Err(ReportError::NoHistScore {
                        source_name: s.name.clone(),
                        score: n.clone(),
                        columns: s.score_names.clone(),
                    });
                };
                let vals: Vec<(Option<f64>, DocStatus)> =
                    s.docs.iter().map(|d| (d.values[k], d.status)).collect();
                histograms.push(histogram(n, &vals, opts.bins));
            }
        }
        // The ranking.
        let rank_col = col(&opts.rank_score);
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        if s.profiled && rank_col.is_none() {
            return Err(ReportError::NoRankScore {
                source_name: s.name.clone(),
                score: opts.rank_score.clone(),
                columns: s.score_names.clone(),
            });
        }
        if let Some(rk) = rank_col {
            let mut shown: Vec<usize> = hist_names.iter().filter_map(|n| col(n)).collect();
            if let Some(k) = col("decision_tokens") {
                if !shown.contains(&k) {
                    shown.push(k);
                }
            }
            let mut ranked: Vec<(f64, &VerifiedDoc)> = s
                .docs
                .iter()
                .filter_map(|d| d.values[rk].filter(|x| x.is_finite()).map(|x| (x, d)))
                .collect();
            ranked.sort_by(|a, b| {
                b.0.total_cmp(&a.0)
                    .then_with(|| (&a.1.id, a.1.occ).cmp(&(&b.1.id, b.1.occ)))
            });
            let n_top = opts.top.min(ranked.len());
            let n_bottom = opts.top.min(ranked.len() - n_top);
            top = ranked[..n_top]
                .iter()
                .enumerate()
                .map(|(i, (x, d))| doc_view(s, d, i + 1, Some(*x), &shown))
                .collect();
            bottom = ranked[ranked.len() - n_bottom..]
                .iter()
                .rev()
                .enumerate()
                .map(|(i, (x, d))| doc_view(s, d, i + 1, Some(*x), &shown))
                .collect();
            let unranked = s.docs.len() - ranked.len();
            if unranked > 0 {
                notes.push(format!(
                    "Source '{}': {unranked} document(s) have no {} (null) and are not ranked.",
                    s.name, opts.rank_score
                ));
            }
        }
        if c.bad_records > 0 {
            notes.push(format!(
                "Source '{}': {} unreadable record(s) were skipped by the selection.",
                s.name, c.bad_records
            ));
        }
        if c.no_profile.documents > 0 {
            notes.push(format!(
                "Source '{}': {} document(s) ({} estimated tokens) had no profile row and were dropped.",
                s.name, c.no_profile.documents, c.no_profile.tokens
            ));
        }
        if c.profile_rows_without_document > 0 {
            notes.push(format!(
                "Source '{}': {} profile row(s) match no document of the source.",
                s.name, c.profile_rows_without_document
            ));
        }
        // Landing within half a document of the target is by design; a source that kept
        // fewer tokens than its target is worth a note.
        if (c.kept.tokens as f64) + 0.5 < c.target_tokens {
            notes.push(format!(
                "Source '{}': {} tokens short of its target of {} tokens (it kept too little).",
                s.name,
                sig4(c.shortfall_tokens),
                sig4(c.target_tokens)
            ));
        }
        sources.push(SourceView {
            name: s.name.clone(),
            general: s.general,
            profiled: s.profiled,
            text_field: s.text_field.clone(),
            id_field: s.id_field.clone(),
            counts: c.clone(),
            dropped: c.read.minus(c.kept),
            not_sampled: c.kept.minus(c.selected),
            histograms,
            ranked: rank_col.is_some(),
            top,
            bottom,
        });
    }
    Ok(SelectReport {
        title: format!("hesnr selection report: {}", input.selection_dir),
        hesnr_version: env!("CARGO_PKG_VERSION").to_string(),
        selection_dir: input.selection_dir.clone(),
        config_path: input.config_path.clone(),
        config_sha256: input.config_sha256.clone(),
        seed: input.seed,
        token_budget: input.token_budget,
        general_ratio: input.general_ratio,
        read,
        kept,
        selected: input.selected,
        general_share: input.general_share,
        rank_score: opts.rank_score.clone(),
        top_n: opts.top,
        model: None,
        notes,
        sources,
    })
}

/// Shows the tokens of a document a model scored again ([`rescore`](crate::pipeline::select::rescore)), and says in
/// `notes` when their decision tokens differ from the profile's.
pub fn show_rescored(
    notes: &mut Vec<String>,
    source: &str,
    d: &mut DocView,
    r: &Rescored,
    backend: &dyn Backend,
) {
    let text = d.text.as_deref().unwrap_or_default();
    d.highlight = Some(highlight(text, &r.scored, backend));
    if let Some(p) = r.profile_decision_tokens {
        notes.push(format!(
            "Source '{source}', document '{}': {} decision tokens when re-scored, {p} in the profile: a different model or settings (--eps, -k, --window) than the profile's?",
            d.id, r.decision_tokens
        ));
    }
}

/// Every token of a re-scored document, classed, for [`DocView::highlight`].
fn highlight(text: &str, scored: &ScoredDocument, backend: &dyn Backend) -> Highlight {
    let tokens = explain::explain_document(text, scored, backend);
    let total_tokens = tokens.len();
    let s = scored.acc.summary();
    Highlight {
        tokens: tokens
            .into_iter()
            .take(MAX_SHOWN_TOKENS)
            .map(|t| ShownToken {
                text: t.text,
                class: t.class.css().to_string(),
                detail: t.detail,
            })
            .collect(),
        total_tokens,
        scored_tokens: s.scored_tokens,
        decision_tokens: s.decision_tokens,
        he_snr: s.he_snr,
    }
}

// ------------------------------------------------------------------------------------------
// Plots
// ------------------------------------------------------------------------------------------

fn hist_plot(area: &Area<'_>, h: &Histogram) -> DrawResult {
    let caption = h.score.clone();
    if h.all.is_empty() {
        return draw_message(area, &caption, "no document has this score");
    }
    let lo = h.edges[0];
    let hi = *h.edges.last().expect("edges");
    let ymax = h.all.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.12;
    let mut chart = plot::chart(area, &SMALL, caption, lo..hi, 0.0..ymax)?;
    plot::mesh(&mut chart, &SMALL)
        .x_desc(h.score.clone())
        .y_desc("documents")
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .draw()?;
    // Nested bars: selected within kept within all.
    for (counts, fill) in [
        (&h.all, ALL_FILL),
        (&h.kept, KEPT_FILL),
        (&h.selected, SELECTED_FILL),
    ] {
        chart.draw_series(
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(i, &n)| {
                    Rectangle::new(
                        [(h.edges[i], 0.0), (h.edges[i + 1], n as f64)],
                        fill.filled(),
                    )
                }),
        )?;
    }
    // Legend, top right.
    let (w, _) = area.dim_in_pixel();
    for (i, (label, fill)) in [
        ("all", ALL_FILL),
        ("kept", KEPT_FILL),
        ("selected", SELECTED_FILL),
    ]
    .iter()
    .enumerate()
    {
        let y = 40 + 18 * i as i32;
        let x = w as i32 - 110;
        area.draw(&Rectangle::new(
            [(x, y - 6), (x + 14, y + 6)],
            fill.filled(),
        ))?;
        area.draw(&Text::new(
            label.to_string(),
            (x + 20, y),
            anchored(13, INK, HPos::Left, VPos::Center),
        ))?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// HTML
// ------------------------------------------------------------------------------------------

/// The view `templates/select.html.j2` renders: the report's header numbers, and per source
/// what the page derives from the report (the counts table, the figures, the shown text).
#[derive(Serialize)]
struct Page<'a> {
    title: &'a str,
    selection_dir: &'a str,
    config_path: &'a str,
    config_sha256: &'a str,
    seed: u64,
    token_budget: Option<u64>,
    general_ratio: Option<f64>,
    read: Count,
    kept: Count,
    selected: Count,
    general_share: f64,
    rank_score: &'a str,
    top_n: usize,
    model: Option<&'a str>,
    notes: &'a [String],
    sources: Vec<SourcePage<'a>>,
    version: &'a str,
}

#[derive(Serialize)]
struct SourcePage<'a> {
    name: &'a str,
    general: bool,
    profiled: bool,
    ranked: bool,
    read: Count,
    /// The rows of the kept-and-dropped table under `read`.
    steps: Vec<Step>,
    figures: Vec<Figure>,
    /// `("Highest", top)` and `("Lowest", bottom)`.
    lists: [(&'static str, Vec<DocPage<'a>>); 2],
}

/// A row of the kept-and-dropped table.
#[derive(Serialize)]
struct Step {
    label: String,
    count: Count,
    /// Percent of the source's read tokens (`None` when it read none).
    share: Option<f64>,
}

/// A histogram: its SVG (a safe string; plotters escaped its text) and the totals under it.
#[derive(Serialize)]
struct Figure {
    title: String,
    svg: minijinja::Value,
    /// All, kept, selected, each with the documents without a value.
    totals: [u64; 3],
    null: [u64; 3],
}

/// A document at one end of the ranking, as shown.
#[derive(Serialize)]
struct DocPage<'a> {
    rank: usize,
    id: &'a str,
    file: &'a str,
    line: u64,
    tokens: u64,
    score: Option<f64>,
    scores: &'a BTreeMap<String, Option<f64>>,
    status: &'a str,
    badge: &'static str,
    weight: Option<f64>,
    highlight: Option<&'a Highlight>,
    /// Tokens re-scored but not shown (beyond [`MAX_SHOWN_TOKENS`]).
    more_tokens: usize,
    /// The first [`MAX_SHOWN_CHARS`] characters of the text, when there are no tokens.
    text: Option<String>,
    more_chars: usize,
}

fn steps(s: &SourceView) -> Vec<Step> {
    let c = &s.counts;
    let mut out = Vec::new();
    let mut row = |label: String, count: Count| {
        let share = (c.read.tokens > 0).then(|| 100.0 * count.tokens as f64 / c.read.tokens as f64);
        out.push(Step {
            label,
            count,
            share,
        });
    };
    if c.bad_records > 0 {
        row(
            format!("unreadable records skipped: {}", c.bad_records),
            Count::default(),
        );
    }
    if c.no_profile.documents > 0 {
        row("dropped: no profile row".to_string(), c.no_profile);
    }
    for (j, f) in c.filters.iter().enumerate() {
        row(
            format!("dropped by filter {}: {}", j + 1, f.filter),
            f.dropped,
        );
    }
    row("kept".to_string(), c.kept);
    row("kept, not sampled".to_string(), s.not_sampled);
    row(
        format!("selected (target {} tokens)", sig4(c.target_tokens)),
        c.selected,
    );
    out
}

fn figures(s: &SourceView) -> Vec<Figure> {
    let total = |v: &[u64]| v.iter().sum::<u64>();
    s.histograms
        .iter()
        .map(|h| {
            let title = format!("{}: {}", s.name, h.score);
            Figure {
                svg: minijinja::Value::from_safe_string(render_svg((620, 340), &title, |a| {
                    hist_plot(a, h)
                })),
                title,
                totals: [
                    total(&h.all) + h.null[0],
                    total(&h.kept) + h.null[1],
                    total(&h.selected) + h.null[2],
                ],
                null: h.null,
            }
        })
        .collect()
}

fn doc_page(d: &DocView) -> DocPage<'_> {
    let shown = d.highlight.is_none().then_some(d.text.as_ref()).flatten();
    DocPage {
        rank: d.rank,
        id: &d.id,
        file: &d.file,
        line: d.line,
        tokens: d.tokens,
        score: d.score,
        scores: &d.scores,
        status: &d.status,
        badge: if d.selected {
            "b-sel"
        } else if d.kept {
            "b-kept"
        } else {
            "b-drop"
        },
        weight: d.weight,
        highlight: d.highlight.as_ref(),
        more_tokens: d
            .highlight
            .as_ref()
            .map_or(0, |h| h.total_tokens.saturating_sub(h.tokens.len())),
        text: shown.map(|t| t.chars().take(MAX_SHOWN_CHARS).collect()),
        more_chars: shown.map_or(0, |t| t.chars().count().saturating_sub(MAX_SHOWN_CHARS)),
    }
}

/// The report as one self-contained HTML page (inline CSS and SVG, no script, no network).
pub fn render_html(r: &SelectReport) -> String {
    let page = Page {
        title: &r.title,
        selection_dir: &r.selection_dir,
        config_path: &r.config_path,
        config_sha256: &r.config_sha256,
        seed: r.seed,
        token_budget: r.token_budget,
        general_ratio: r.general_ratio,
        read: r.read,
        kept: r.kept,
        selected: r.selected,
        general_share: r.general_share,
        rank_score: &r.rank_score,
        top_n: r.top_n,
        model: r.model.as_deref(),
        notes: &r.notes,
        sources: r
            .sources
            .iter()
            .map(|s| SourcePage {
                name: &s.name,
                general: s.general,
                profiled: s.profiled,
                ranked: s.ranked,
                read: s.counts.read,
                steps: steps(s),
                figures: if s.profiled { figures(s) } else { Vec::new() },
                lists: [
                    ("Highest", s.top.iter().map(doc_page).collect()),
                    ("Lowest", s.bottom.iter().map(doc_page).collect()),
                ],
            })
            .collect(),
        version: env!("CARGO_PKG_VERSION"),
    };
    html::render("select.html.j2", minijinja::Value::from_serialize(&page))
}

/// Writes the HTML page and the JSON model atomically.
pub fn write_report(r: &SelectReport, html: &Path, json: &Path) -> Result<(), ReportError> {
    let create = |path: &Path| {
        AtomicFile::create(path).map_err(|source| ReportError::Create {
            path: path.to_path_buf(),
            source,
        })
    };
    let commit = |f: AtomicFile, path: &Path| {
        f.commit().map_err(|source| ReportError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut f = create(html)?;
    io::Write::write_all(&mut f, render_html(r).as_bytes())?;
    commit(f, html)?;
    let mut f = create(json)?;
    serde_json::to_writer_pretty(&mut f, r)?;
    io::Write::write_all(&mut f, b"\n")?;
    commit(f, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(documents: u64, tokens: u64) -> Count {
        Count { documents, tokens }
    }

    fn doc(id: &str, line: u64, tokens: u64, dd: Option<f64>, status: DocStatus) -> VerifiedDoc {
        VerifiedDoc {
            id: id.to_string(),
            occ: 0,
            file: "code.jsonl".to_string(),
            line,
            tokens,
            values: vec![Some(tokens as f64), dd],
            status,
            weight: status.kept().then_some(1.0),
        }
    }

    /// Six code documents: two dropped by the first filter, one by the second, three kept of
    /// which two selected; one general source without a profile.
    fn input() -> VerifiedSelection {
        use DocStatus::*;
        let docs = vec![
            doc("a", 1, 100, Some(0.0), Dropped(0)),
            doc("b", 2, 200, Some(0.1), Dropped(0)),
            doc("c", 3, 300, Some(0.25), Dropped(1)),
            doc("d", 4, 400, Some(0.5), Kept),
            doc("<script>alert(1)</script>", 5, 500, Some(1.0), Selected),
            doc("f", 6, 600, None, Selected),
        ];
        let code = VerifiedSource {
            name: "code".into(),
            general: false,
            profiled: true,
            text_field: "text".into(),
            id_field: "id".into(),
            score_names: vec!["tokens".into(), "decision_density".into()],
            config_scores: vec!["decision_density".into()],
            counts: SourceCounts {
                read: count(7, 2150),
                bad_records: 1,
                no_profile: count(1, 50),
                profile_rows_without_document: 0,
                filters: vec![
                    FilterReport {
                        filter: "decision_density min 0.2".into(),
                        dropped: count(2, 300),
                    },
                    FilterReport {
                        filter: "decision_density top_fraction 0.75".into(),
                        dropped: count(1, 300),
                    },
                ],
                kept: count(3, 1500),
                target_tokens: 1100.0,
                selected: count(2, 1100),
                shortfall_tokens: 0.0,
            },
            docs,
        };
        let general = VerifiedSource {
            name: "general".into(),
            general: true,
            profiled: false,
            text_field: "text".into(),
            id_field: "id".into(),
            score_names: vec![],
            config_scores: vec![],
            counts: SourceCounts {
                read: count(4, 800),
                bad_records: 0,
                no_profile: count(0, 0),
                profile_rows_without_document: 0,
                filters: vec![],
                kept: count(4, 800),
                target_tokens: 900.0,
                selected: count(4, 800),
                shortfall_tokens: 100.0,
            },
            docs: vec![],
        };
        VerifiedSelection {
            selection_dir: "out/<sel>".into(),
            config_path: "select.toml".into(),
            config_sha256: "00".into(),
            seed: 7,
            token_budget: None,
            general_ratio: Some(0.3),
            selected: count(6, 1900),
            general_share: 800.0 / 1900.0,
            sources: vec![code, general],
        }
    }

    #[test]
    fn histogram_counts_by_hand() {
        use DocStatus::*;
        let vals = [
            (Some(0.0), Dropped(0)),
            (Some(0.1), Dropped(0)),
            (Some(0.25), Kept),
            (Some(0.5), Selected),
            (Some(1.0), Selected),
            (None, Selected),
            (Some(f64::NAN), Dropped(1)),
        ];
        let h = histogram("dd", &vals, 4);
        assert_eq!(h.edges, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        // 0.0, 0.1 -> bin 0; 0.25 -> bin 1; 0.5 -> bin 2; 1.0 (the maximum) -> the last bin.
        assert_eq!(h.all, vec![2, 1, 1, 1]);
        assert_eq!(h.kept, vec![0, 1, 1, 1]);
        assert_eq!(h.selected, vec![0, 0, 1, 1]);
        assert_eq!(h.null, [2, 1, 1]);
    }

    #[test]
    fn histogram_of_one_value_and_of_none() {
        let h = histogram("x", &[(Some(2.0), DocStatus::Kept); 3], 5);
        assert_eq!(h.all.iter().sum::<u64>(), 3);
        assert!(h.edges[0] < 2.0 && h.edges[5] > 2.0);
        let h = histogram("x", &[(None, DocStatus::Selected)], 5);
        assert!(h.all.is_empty() && h.edges.is_empty());
        assert_eq!(h.null, [1, 1, 1]);
        let page = render_html(&{
            let mut r = build(&input(), &ReportOptions::default()).unwrap();
            r.sources[0].histograms = vec![h];
            r
        });
        assert!(page.contains("no document has this score"));
    }

    #[test]
    fn kept_and_dropped_arithmetic() {
        let r = build(&input(), &ReportOptions::default()).unwrap();
        let c = &r.sources[0];
        assert_eq!(c.dropped, count(4, 650)); // read 7/2150 - kept 3/1500
        assert_eq!(c.not_sampled, count(1, 400)); // kept 3/1500 - selected 2/1100
                                                  // Dropped = no profile + every filter.
        let by_steps = c
            .counts
            .filters
            .iter()
            .fold(c.counts.no_profile, |a, f| a.plus(f.dropped));
        assert_eq!(by_steps, c.dropped);
        assert_eq!(r.read, count(11, 2950));
        assert_eq!(r.kept, count(7, 2300));
        assert_eq!(r.sources[1].not_sampled, count(0, 0));
        // Histograms: decision_density (default, also the filter score); he_snr is absent.
        let names: Vec<&str> = c.histograms.iter().map(|h| h.score.as_str()).collect();
        assert_eq!(names, ["decision_density"]);
        let h = &c.histograms[0];
        assert_eq!(h.all, {
            let mut v = vec![0; DEFAULT_BINS];
            v[0] = 1; // 0.0
            v[2] = 1; // 0.1
            v[5] = 1; // 0.25
            v[10] = 1; // 0.5
            v[19] = 1; // 1.0
            v
        });
        assert_eq!(h.selected.iter().sum::<u64>(), 1);
        assert_eq!(h.null, [1, 1, 1]);
        assert!(r.sources[1].histograms.is_empty() && !r.sources[1].ranked);
        // Notes: the unranked null, the bad record, the missing profile row, and general's
        // kept tokens below its target.
        assert_eq!(r.notes.len(), 4, "{:?}", r.notes);
        assert!(
            r.notes[3].contains("'general'") && r.notes[3].contains("100"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn top_and_bottom_documents() {
        let opts = ReportOptions {
            top: 2,
            ..ReportOptions::default()
        };
        let r = build(&input(), &opts).unwrap();
        let s = &r.sources[0];
        let ids = |v: &[DocView]| v.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&s.top), ["<script>alert(1)</script>", "d"]);
        assert_eq!(ids(&s.bottom), ["a", "b"]);
        assert_eq!(s.top[0].status, "selected");
        assert_eq!(s.top[1].status, "kept, not sampled");
        assert_eq!(
            s.bottom[0].status,
            "dropped by filter 1: decision_density min 0.2"
        );
        assert_eq!(s.bottom[0].rank, 1);
        assert_eq!(s.bottom[0].score, Some(0.0));
        // Fewer documents than 2 * top: the bottom gets what the top left.
        let r = build(
            &input(),
            &ReportOptions {
                top: 3,
                ..ReportOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r.sources[0].top.len(), 3);
        assert_eq!(ids(&r.sources[0].bottom), ["a", "b"]);
        // An unknown score names the source and the columns.
        let e = build(
            &input(),
            &ReportOptions {
                rank_score: "nope".into(),
                ..ReportOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'code'") && e.contains("nope") && e.contains("decision_density"),
            "{e}"
        );
    }

    const SCRIPT: &str = "<script>alert(1)</script>";
    const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;";

    #[test]
    fn html_escapes_hostile_ids_and_text() {
        let opts = ReportOptions {
            top: 2,
            ..ReportOptions::default()
        };
        let mut r = build(&input(), &opts).unwrap();
        r.sources[0].top[0].text = Some("x = '<script>alert(2)</script>' & y".into());
        r.sources[0].top[1].highlight = Some(Highlight {
            tokens: vec![
                ShownToken {
                    text: "<script>".into(),
                    class: "decision".into(),
                    detail: Some("\"><img src=x onerror=1>".into()),
                },
                ShownToken {
                    text: "ok".into(),
                    class: "scored".into(),
                    detail: None,
                },
            ],
            total_tokens: 2,
            scored_tokens: 1,
            decision_tokens: 1,
            he_snr: Some(0.5),
        });
        r.model = Some("<b>m</b>.gguf".into());
        // Hostile source names, filters, files, statuses, score names and notes too.
        r.sources[1].name = format!("{SCRIPT}\"'&");
        r.sources[0].counts.filters[0].filter = format!("{SCRIPT} filter");
        r.sources[0].bottom[0].file = format!("{SCRIPT}.jsonl");
        r.sources[0].bottom[0].status = format!("dropped {SCRIPT}");
        r.sources[0].bottom[0]
            .scores
            .insert(format!("{SCRIPT}score"), Some(1.0));
        r.notes.push(format!("{SCRIPT} note"));
        r.rank_score = format!("{SCRIPT}rank");
        let page = render_html(&r);
        assert!(!page.to_lowercase().contains("<script"), "unescaped script");
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>m</b>"));
        assert!(page.contains(ESCAPED));
        assert!(page.contains("x = &#x27;&lt;script&gt;alert(2)&lt;&#x2f;script&gt;&#x27; &amp; y"));
        assert!(page.contains("<span class=\"decision\" title=\"&quot;&gt;&lt;img src=x onerror=1&gt;\">&lt;script&gt;</span><span class=\"scored\">ok</span></pre>"));
        assert!(page.contains("out&#x2f;&lt;sel&gt;"));
        assert!(page.contains(&format!("<h3>{ESCAPED}&quot;&#x27;&amp;</h3>")));
        for hostile in [
            format!("{ESCAPED} filter"),
            format!("{ESCAPED}.jsonl:1"),
            format!("dropped {ESCAPED}"),
            format!("{ESCAPED}score 1"),
            format!("<li>{ESCAPED} note</li>"),
            format!("{ESCAPED}rank"),
        ] {
            assert!(page.contains(&hostile), "{hostile}");
        }
        assert!(page.contains("Content-Security-Policy"));
        // The counts of the manifest are in the table.
        for needle in [
            "<td class=\"num\">2150</td>",
            "dropped by filter 2: decision_density top_fraction 0.75",
            "<td class=\"num\">1100</td>",
            "kept, not sampled",
        ] {
            assert!(page.contains(needle), "{needle}");
        }
        // The JSON model has the same numbers.
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["sources"][0]["dropped"]["tokens"], 650);
        assert_eq!(
            j["sources"][0]["histograms"][0]["score"],
            "decision_density"
        );
    }

    #[test]
    fn long_texts_and_token_lists_are_cut() {
        let mut r = build(&input(), &ReportOptions::default()).unwrap();
        let long = "ab\n".repeat(MAX_SHOWN_CHARS);
        r.sources[0].top[0].text = Some(long.clone());
        let tokens = vec![
            ShownToken {
                text: "t".into(),
                class: "scored".into(),
                detail: None,
            };
            3
        ];
        r.sources[0].top[1].highlight = Some(Highlight {
            tokens,
            total_tokens: 10,
            scored_tokens: 9,
            decision_tokens: 0,
            he_snr: None,
        });
        r.sources[0].top[1].text = Some("not shown: the tokens are".into());
        let page = render_html(&r);
        let shown: String = long.chars().take(MAX_SHOWN_CHARS).collect();
        let more = 3 * MAX_SHOWN_CHARS - MAX_SHOWN_CHARS;
        assert!(page.contains(&format!(
            "<pre class=\"doc\">{shown}\n[... {more} more characters not shown]</pre>"
        )));
        assert!(
            page.contains("<span class=\"scored\">t</span>\n[... 7 more tokens not shown]</pre>")
        );
        assert!(page.contains("HE-SNR -</div>"));
        assert!(!page.contains("not shown: the tokens are"));
        // Documents without a loaded text say so.
        assert!(page.contains("<pre class=\"doc\">(text not loaded)</pre>"));
    }
}
