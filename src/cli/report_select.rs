//! `hesnr report-select`: an HTML report (and its JSON) of a `hesnr select` output folder:
//! counts kept and dropped per source and filter, score distributions of all, kept and selected
//! documents, and the top and bottom documents with their decision tokens highlighted.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use hesnr::pipeline::select;
use hesnr::report::select::{self as report, DocView, ReportOptions};

use super::common::{load_model, MetricArgs, ModelArgs};

pub const REPORT_SELECT_EXAMPLES: &str = "Examples:
  hesnr report-select out/selected                    # out/selected/report.html + report.json
  hesnr report-select out/selected -o sel.html --top 10 --score he_snr
  hesnr report-select out/selected --hist decision_density,delta_mean_nll --bins 30
  hesnr report-select out/selected --no-tokens        # no model: the text without highlighting

Run it from the directory `hesnr select` ran in (the config's paths are relative to it). The
selection is recomputed from the config recorded in DIR/manifest.json and checked against the
manifest's counts, its input hashes and the shards; changed inputs are refused. With a model
(--model, $HESNR_MODEL or the default model), only the top and bottom documents are re-scored,
to highlight their decision tokens; use the model and --eps/-k the profile was made with.";

#[derive(Args)]
pub struct ReportSelectArgs {
    /// Output folder of `hesnr select` (with manifest.json)
    dir: PathBuf,
    /// HTML report [default: DIR/report.html]
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// The report's numbers as JSON [default: the HTML path with .json]
    #[arg(long)]
    json: Option<PathBuf>,
    /// Documents shown at each end of the ranking, per source (0 to 1000)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(0..=1000))]
    top: u16,
    /// Profile score to rank documents by
    #[arg(long, default_value = report::DEFAULT_RANK_SCORE)]
    score: String,
    /// Scores to draw histograms of, comma-separated [default: decision_density, he_snr, the
    /// scores the source's filters and weight use, and --score]
    #[arg(long, value_delimiter = ',')]
    hist: Vec<String>,
    /// Histogram bins (1 to 1000; 100000000 used to write a 15 GB report)
    #[arg(long, default_value_t = report::DEFAULT_BINS as u16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    bins: u16,
    /// Do not load a model: show the documents' text without decision tokens
    #[arg(long)]
    no_tokens: bool,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    metric: MetricArgs,
}

pub fn run_report_select(args: ReportSelectArgs) -> Result<()> {
    args.metric.config()?;
    let html = args
        .output
        .clone()
        .unwrap_or_else(|| args.dir.join("report.html"));
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| html.with_extension("json"));
    let opts = ReportOptions {
        top: usize::from(args.top),
        rank_score: args.score.clone(),
        hist_scores: args.hist.clone(),
        bins: usize::from(args.bins),
    };
    eprintln!(
        "reading the selection in {} (manifest, inputs, profiles, shards)",
        args.dir.display()
    );
    let input = select::verify(&args.dir)?;
    let mut rep = report::build(&input, &opts)?;
    for s in &mut rep.sources {
        let at: Vec<select::DocAt> = s.shown().map(DocView::at).collect();
        let texts = select::read_texts(&s.text_field, &s.id_field, &at)?;
        for (d, text) in s.shown_mut().zip(texts) {
            d.text = Some(text);
        }
    }
    let n_docs: usize = rep.sources.iter().map(|s| s.shown().count()).sum();
    if !args.no_tokens && n_docs > 0 {
        let mut loaded = load_model(&args.model)
            .context("loading the model that highlights decision tokens (--no-tokens: none)")?;
        let backend = loaded.as_mut();
        let settings = args.metric.settings(backend)?;
        rep.model = Some(backend.info().path.display().to_string());
        let mut done = 0;
        for s in &mut rep.sources {
            let name = s.name.clone();
            for d in s.shown_mut() {
                done += 1;
                eprintln!(
                    "re-scoring {done}/{n_docs}: source '{name}', document '{}' ({} tokens)",
                    d.id, d.tokens
                );
                let text = d.text.as_deref().unwrap_or_default();
                let r = select::rescore(
                    backend,
                    &settings,
                    d.at(),
                    text,
                    d.profile_decision_tokens(),
                )?;
                report::show_rescored(&mut rep.notes, &name, d, &r, backend);
            }
        }
    }
    report::write_report(&rep, &html, &json)?;
    for s in &rep.sources {
        eprintln!(
            "{:<16} read {:>7} docs {:>10} tok | kept {:>7} docs {:>10} tok | selected {:>7} docs {:>10} tok",
            s.name,
            s.counts.read.documents,
            s.counts.read.tokens,
            s.counts.kept.documents,
            s.counts.kept.tokens,
            s.counts.selected.documents,
            s.counts.selected.tokens
        );
    }
    eprintln!("wrote {} and {}", html.display(), json.display());
    Ok(())
}
