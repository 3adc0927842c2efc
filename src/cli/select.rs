//! `hesnr select`: filter, weight and mix mid-training data by per-document profile scores.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use hesnr::pipeline::select::{self, SelectOptions};

pub const SELECT_EXAMPLES: &str = "Examples:
  hesnr select examples/corpus/select.toml --out out/selected
  hesnr select mix.toml --out out/mix --shard-size 50000 --strict

The config (TOML) names the sources (documents + profile Parquet from `hesnr profile`), filters
(min/max, top_fraction, bottom_fraction on any profile score), weights, the token budget, the
general-data ratio and the seed; see examples/corpus/select.toml for every key and its meaning.
Writes DIR/selected-NNNNN.jsonl and .parquet (original fields + `weight` + metadata.hesnr),
DIR/manifest.json (config, input hashes, counts per source and filter, output hashes) and
DIR/profile-files.json (the profile files and their hashes).";

#[derive(Args)]
pub struct SelectArgs {
    /// Selection config (TOML)
    config: PathBuf,
    /// Output directory
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Documents per output shard
    #[arg(long, default_value_t = select::DEFAULT_SHARD_SIZE)]
    shard_size: usize,
    /// Fail on documents without a profile row and on unreadable records instead of counting them
    #[arg(long)]
    strict: bool,
}

pub fn run_select(args: SelectArgs) -> Result<()> {
    let opts = SelectOptions {
        out: args.out.clone(),
        shard_size: args.shard_size,
        strict: args.strict,
    };
    let outcome = select::run_select(&args.config, &opts)?;
    let m = &outcome.manifest;
    eprintln!(
        "{:<16} {:>8} {:>12} {:>8} {:>12} {:>8} {:>12}",
        "source", "read", "tokens", "kept", "tokens", "selected", "tokens"
    );
    for s in &m.sources {
        let name = format!("{}{}", s.name, if s.general { " (g)" } else { "" });
        eprintln!(
            "{:<16} {:>8} {:>12} {:>8} {:>12} {:>8} {:>12}",
            name,
            s.read.documents,
            s.read.tokens,
            s.kept.documents,
            s.kept.tokens,
            s.selected.documents,
            s.selected.tokens
        );
    }
    eprintln!(
        "selected {} documents, {} tokens (general share {:.3}) -> {}",
        m.selected.documents,
        m.selected.tokens,
        m.selected.general_share,
        args.out.display()
    );
    Ok(())
}
