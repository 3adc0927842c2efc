//! `hesnr select`: filtering, weighting and mixing of mid-training data by per-document scores.
//!
//! Inputs are the original documents (JSONL, optionally .gz/.zst) and the per-document profile
//! rows `hesnr profile` wrote (Parquet). Documents are joined to profile rows by (file, line),
//! checked by id, so a profile may be split in any number of files. The output is a set of
//! training-ready shards (JSONL and Parquet, the same rows) and a manifest; the same inputs,
//! config and seed give byte-identical outputs.
//!
//! # Semantics (see `examples/corpus/select.toml`)
//! - A `profile` entry that is a `hesnr profile --out` folder means its merged `profile.parquet`
//!   when there is one (checked against the shards' stats next to it), else all of its
//!   `profile-*-of-*.parquet` shards (an incomplete set is refused); any other folder, every
//!   Parquet file in it. The joined rows, and so the outputs, are the same either way.
//! - Per source, documents with no profile row are dropped when the source has a `profile`
//!   (an error with `strict`); a source without `profile` keeps every document, its tokens
//!   estimated as `ceil(text bytes / bytes_per_token)`, and may have no filter or weight.
//! - Filters run in order, each on the documents the previous ones kept, within one source:
//!   `min`/`max` keep `min <= score <= max`; `top_fraction = f` keeps the `ceil(f * n)`
//!   highest-scoring of the `n` documents with a score (ties: by id), `bottom_fraction` the
//!   lowest. A null (NaN) score fails every filter on that score.
//! - `weight`: `clip(score, lo, hi) ^ power`, null scores taking `lo` (or the source's smallest
//!   weight without `clip`), normalised to mean 1 over the kept documents of the source.
//! - Mixing by tokens: with `general_ratio = r`, the total target `T` is `token_budget`, or
//!   without a budget the largest `T` both groups can fill (`min(S / (1 - r), G / r)` for kept
//!   specialist tokens `S` and general tokens `G`); specialist sources share `(1 - r) T` and
//!   general sources `r T`, each in proportion to its kept tokens. Without `general_ratio`,
//!   every source gets `T * kept / total kept` (`T` = everything without a budget).
//! - A source takes documents without replacement in the order of Efraimidis-Spirakis keys
//!   `ln(u) / weight` (largest first; `u` uniform from SHA-256 of (seed, source name, id,
//!   occurrence of that id)), until its target is met: the document that crosses the target
//!   is taken when that brings the total closer to it. So each source lands within half a
//!   document's tokens of its target, and nothing depends on a global RNG or on file order
//!   (for unique ids).
//! - Output order: ascending SHA-256 of (seed, "order", source name, id, occurrence): the
//!   sources are interleaved deterministically.
//!
//! # Layout
//! [`config`](SelectConfig) parses and checks the TOML; `read` reads documents and profiles;
//! `plan` decides (join, filter, weigh, targets, sample) without writing; `output` writes the
//! shards and hashes; [`manifest`](SelectManifest) is the typed `manifest.json`;
//! [`verify`](verify()) reads a selection folder back for `hesnr report-select`, recomputes and
//! checks it, and reads (and re-scores) the documents the report shows. Errors are
//! [`SelectError`]s (a [`ConfigError`] or a [`ManifestError`] among them).

mod config;
mod error;
mod manifest;
mod output;
mod plan;
mod read;
mod verify;

use std::path::{Path, PathBuf};

pub use config::{parse_config, ConfigError, Filter, SelectConfig, SourceConfig, WeightSpec};
pub use error::SelectError;
pub use manifest::{
    Bucket, Buckets, ConfigRecord, Count, DocumentInput, FilterReport, Inputs, ManifestError,
    OptionsRecord, OutputFile, ProfileFileEntry, ProfileFiles, SelectManifest, SelectedTotals,
    SourceReport, Targets, WeightStats, MANIFEST_FILE, PROFILE_FILES_FILE,
};
pub use verify::{
    read_texts, rescore, verify, DocAt, DocStatus, Rescored, SourceCounts, VerifiedDoc,
    VerifiedSelection, VerifiedSource,
};

use output::sha256_file;
use plan::plan;

/// Default shard size of the output, in documents.
pub const DEFAULT_SHARD_SIZE: usize = 100_000;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    pub out: PathBuf,
    pub shard_size: usize,
    pub strict: bool,
}

/// What a run did: the manifest as written.
pub struct SelectOutcome {
    pub manifest: SelectManifest,
}

/// Runs a selection from a config file: plans it, writes the selected shards, the list of
/// profile files and the manifest.
pub fn run_select(config_path: &Path, opts: &SelectOptions) -> Result<SelectOutcome, SelectError> {
    let label = config_path.display().to_string();
    let text = std::fs::read_to_string(config_path).map_err(|source| SelectError::ReadConfig {
        label: label.clone(),
        source,
    })?;
    let cfg = parse_config(&text, &label)?;
    if opts.shard_size == 0 {
        return Err(SelectError::ShardSize);
    }
    let config_sha = crate::data::digest::sha256_hex(text.as_bytes());
    let plan = plan(&cfg, &label, opts.strict)?;

    let order = output::output_order(&cfg, &plan);
    let rows = output::decorated_rows(&cfg, &plan, &order)?;
    let outputs = output::write_shards(&opts.out, &rows, opts.shard_size)?;

    let mut documents = Vec::new();
    for (si, p, shown) in &plan.files {
        let (sha256, bytes) = sha256_file(p)?;
        documents.push(DocumentInput {
            source: cfg.sources[*si].name.clone(),
            path: shown.clone(),
            bytes,
            sha256,
        });
    }
    let mut pfiles: Vec<&PathBuf> = plan.profile_files.iter().flatten().collect();
    pfiles.sort();
    pfiles.dedup();
    let mut files = Vec::new();
    for p in pfiles {
        let (sha256, bytes) = sha256_file(p)?;
        files.push(ProfileFileEntry {
            path: p.display().to_string(),
            bytes,
            sha256,
        });
    }
    let profile_files = ProfileFiles {
        note: ProfileFiles::NOTE.to_string(),
        files,
    };
    manifest::write_pretty_json(&opts.out.join(PROFILE_FILES_FILE), &profile_files)?;

    let reports = plan.reports;
    let target_sum = |general: bool| -> f64 {
        reports
            .iter()
            .filter(|r| r.general == general)
            .map(|r| r.target_tokens)
            .sum()
    };
    let sel_total: u64 = reports.iter().map(|r| r.selected.tokens).sum();
    let sel_general: u64 = reports
        .iter()
        .filter(|r| r.general)
        .map(|r| r.selected.tokens)
        .sum();
    let manifest = SelectManifest {
        hesnr_version: env!("CARGO_PKG_VERSION").to_string(),
        command: "select".to_string(),
        seed: cfg.seed,
        options: OptionsRecord {
            shard_size: opts.shard_size,
            strict: opts.strict,
        },
        inputs: Inputs {
            documents,
            profile_files: PROFILE_FILES_FILE.to_string(),
        },
        targets: Targets {
            token_budget: cfg.token_budget,
            general_ratio: cfg.general_ratio,
            total_tokens: plan.total_target,
            specialist_tokens: target_sum(false),
            general_tokens: target_sum(true),
        },
        buckets: Buckets {
            specialist: Bucket::of(&reports, Some(false)),
            general: Bucket::of(&reports, Some(true)),
            total: Bucket::of(&reports, None),
        },
        selected: SelectedTotals {
            documents: rows.len() as u64,
            tokens: sel_total,
            general_share: if sel_total > 0 {
                sel_general as f64 / sel_total as f64
            } else {
                0.0
            },
        },
        sources: reports,
        outputs,
        config: ConfigRecord {
            path: label,
            sha256: config_sha,
            text,
            parsed: cfg,
        },
    };
    manifest::write_pretty_json(&opts.out.join(MANIFEST_FILE), &manifest)?;
    Ok(SelectOutcome { manifest })
}
