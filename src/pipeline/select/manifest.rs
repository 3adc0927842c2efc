//! `manifest.json` and `profile-files.json` of a selection, as types: written by `hesnr select`,
//! read back by [`verify`](super::verify()) (which re-runs the selection and checks it against the
//! manifest) and by the CLI summary. Field order is the file's key order, so the bytes are fixed
//! by these declarations.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::SelectConfig;
use super::error::SelectError;
use crate::data::AtomicFile;

/// Documents and tokens.
#[derive(Debug, Default, Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub documents: u64,
    pub tokens: u64,
}

impl Count {
    pub(crate) fn add(&mut self, tokens: u64) {
        self.documents += 1;
        self.tokens += tokens;
    }
    pub(crate) fn plus(self, o: Count) -> Count {
        Count {
            documents: self.documents + o.documents,
            tokens: self.tokens + o.tokens,
        }
    }
    /// `self - o`, each part at least 0.
    pub(crate) fn minus(self, o: Count) -> Count {
        Count {
            documents: self.documents.saturating_sub(o.documents),
            tokens: self.tokens.saturating_sub(o.tokens),
        }
    }
}

/// One filter of a source (`score min 0.1`) and what it dropped.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FilterReport {
    pub filter: String,
    pub dropped: Count,
}

/// The weights of a source's kept documents (normalised to mean 1) and the mean of the raw
/// weights they were normalised by.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct WeightStats {
    pub max: f64,
    pub min: f64,
    pub raw_mean: f64,
}

/// What happened to one source, `sources[i]` of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceReport {
    pub name: String,
    pub general: bool,
    /// `profile`, or `bytes_per_token` for a source without a profile.
    pub tokens_from: String,
    pub read: Count,
    pub bad_records: u64,
    pub no_profile: Count,
    pub profile_rows_matched: u64,
    pub profile_rows_without_document: u64,
    /// Hash of the joined profile rows, independent of how the profile was split into files.
    pub profile_rows_sha256: Option<String>,
    pub filters: Vec<FilterReport>,
    pub kept: Count,
    pub target_tokens: f64,
    pub selected: Count,
    pub shortfall_tokens: f64,
    pub weight: Option<WeightStats>,
}

/// The config as given, and as parsed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub path: String,
    pub sha256: String,
    pub text: String,
    pub parsed: SelectConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct OptionsRecord {
    pub shard_size: usize,
    pub strict: bool,
}

/// One document file read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentInput {
    pub source: String,
    /// As the config names it (relative to where `hesnr select` ran).
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inputs {
    pub documents: Vec<DocumentInput>,
    /// The side file listing the profile files (`profile-files.json`).
    pub profile_files: String,
}

/// Token targets: the total, and its specialist and general shares.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    pub token_budget: Option<u64>,
    pub general_ratio: Option<f64>,
    pub total_tokens: f64,
    pub specialist_tokens: f64,
    pub general_tokens: f64,
}

/// Counts summed over a group of sources.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Bucket {
    pub read: Count,
    pub no_profile: Count,
    pub dropped_by_filters: Count,
    pub kept: Count,
    pub selected: Count,
}

impl Bucket {
    /// The sources of `reports` in the group (`Some(general)`), or all of them.
    pub(crate) fn of(reports: &[SourceReport], general: Option<bool>) -> Bucket {
        let mut b = Bucket::default();
        for r in reports
            .iter()
            .filter(|r| general.is_none_or(|g| r.general == g))
        {
            b.read = b.read.plus(r.read);
            b.kept = b.kept.plus(r.kept);
            b.selected = b.selected.plus(r.selected);
            b.no_profile = b.no_profile.plus(r.no_profile);
            for f in &r.filters {
                b.dropped_by_filters = b.dropped_by_filters.plus(f.dropped);
            }
        }
        b
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Buckets {
    pub specialist: Bucket,
    pub general: Bucket,
    pub total: Bucket,
}

/// What went into the output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectedTotals {
    pub documents: u64,
    pub tokens: u64,
    /// Share of the selected tokens from general sources (0 when nothing is selected).
    pub general_share: f64,
}

/// One output file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputFile {
    /// File name within the output folder.
    pub path: String,
    /// `jsonl` or `parquet`.
    pub format: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// `manifest.json` of a selection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SelectManifest {
    pub hesnr_version: String,
    /// Always `select`.
    pub command: String,
    pub seed: u64,
    pub config: ConfigRecord,
    pub options: OptionsRecord,
    pub inputs: Inputs,
    pub targets: Targets,
    pub sources: Vec<SourceReport>,
    pub buckets: Buckets,
    pub selected: SelectedTotals,
    pub outputs: Vec<OutputFile>,
}

/// The name of the manifest in a selection folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The name of the profile file list in a selection folder.
pub const PROFILE_FILES_FILE: &str = "profile-files.json";

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {} (is this the output folder of `hesnr select`?)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: not a `hesnr select` manifest (no \"command\": \"select\")", path.display())]
    NotSelect { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Fields {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl SelectManifest {
    /// Reads `path`, refusing a file that is not a select manifest before naming missing keys.
    pub fn read(path: &Path) -> Result<SelectManifest, ManifestError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        #[derive(Deserialize)]
        struct Command {
            command: Option<serde_json::Value>,
        }
        let probe: Command =
            serde_json::from_slice(&bytes).map_err(|source| ManifestError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        if probe.command.as_ref().and_then(|c| c.as_str()) != Some("select") {
            return Err(ManifestError::NotSelect {
                path: path.to_path_buf(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Fields {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// One profile file of a selection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileFileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// `profile-files.json`: the profile files a selection read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileFiles {
    pub note: String,
    pub files: Vec<ProfileFileEntry>,
}

impl ProfileFiles {
    pub(crate) const NOTE: &'static str = "The profile files of this selection. The manifest records the joined profile rows (profile_rows_sha256 per source) instead, so that it does not depend on how the profile was sharded.";
}

/// Writes `value` as pretty JSON and a newline, atomically.
pub(crate) fn write_pretty_json(path: &Path, value: &impl Serialize) -> Result<(), SelectError> {
    let mut f = AtomicFile::create(path)?;
    serde_json::to_writer_pretty(&mut f, value)?;
    f.write_all(b"\n")?;
    f.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_stats_keep_the_sorted_key_order() {
        // Written before as a BTreeMap: max, min, raw_mean.
        let w = WeightStats {
            max: 2.0,
            min: 0.5,
            raw_mean: 0.1,
        };
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"max":2.0,"min":0.5,"raw_mean":0.1}"#
        );
    }

    #[test]
    fn a_non_select_manifest_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest.json");
        std::fs::write(&p, r#"{"command": "track", "x": 1}"#).unwrap();
        let e = SelectManifest::read(&p).unwrap_err().to_string();
        assert!(e.contains("not a `hesnr select` manifest"), "{e}");
        std::fs::write(&p, r#"{"command": "select"}"#).unwrap();
        let e = SelectManifest::read(&p).unwrap_err().to_string();
        assert!(e.contains("missing field"), "{e}");
    }
}
