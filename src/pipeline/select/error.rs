//! Why a selection, or the check of one, failed. Each variant carries the facts (file, line,
//! key, id, ...) and says them in the words `hesnr select` and `hesnr report-select` have always
//! used (users and tests grep them); a variant with a `source` is the context of that error,
//! shown before it (`{:#}`: `reading config x.toml: No such file or directory`).

use std::io;
use std::path::PathBuf;

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;

use super::config::ConfigError;
use super::manifest::ManifestError;
use crate::data::RecordError;
use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    // ---- The config and the inputs.
    /// A config entry that cannot be used (also a document path or a profile folder).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading config {label}")]
    ReadConfig {
        label: String,
        #[source]
        source: io::Error,
    },
    #[error("--shard-size must be > 0")]
    ShardSize,
    /// A file that cannot be read whole (to hash it).
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A document file that cannot be read, or stops reading midway.
    #[error(transparent)]
    Records(#[from] RecordError),

    // ---- Profiles.
    #[error("opening profile {}", path.display())]
    OpenProfile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("profile {}: not a Parquet file", path.display())]
    NotParquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("reading profile {}", path.display())]
    ReadProfile {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("reading profile {}", path.display())]
    ReadProfileBatch {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
    #[error("profile {}: column '{column}' is missing", path.display())]
    ProfileColumnMissing { path: PathBuf, column: String },
    #[error("profile {}: column '{column}' has an unexpected type", path.display())]
    ProfileColumnType { path: PathBuf, column: String },
    #[error("profile {}: row {row} has a null id, source or line", path.display())]
    ProfileNullKey { path: PathBuf, row: usize },
    /// A profile file of a source without a score column its first profile file has.
    #[error(
        "profile {}: column '{column}' is missing (other profile files of source '{source_name}' have it)",
        path.display()
    )]
    ProfileColumnNotShared {
        path: PathBuf,
        column: String,
        source_name: String,
    },
    #[error("source '{source_name}': two profile rows for {file}:{line} (profiles overlap?)")]
    ProfileOverlap {
        source_name: String,
        file: String,
        line: u64,
    },

    // ---- Documents (`file` as the config names it).
    /// A record that is not a JSON object (refused with `strict`, or in a file read again).
    #[error("{file}:{line}: {message}")]
    BadRecord {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}:{line}: field '{field}' missing or not a string")]
    NoText {
        file: String,
        line: u64,
        field: String,
    },
    #[error(
        "{file}:{line}: document id '{id}' but the profile row for this line has id '{profile_id}': the data changed since it was profiled"
    )]
    ProfileIdMismatch {
        file: String,
        line: u64,
        id: String,
        profile_id: String,
    },
    #[error("{file}:{line}: document '{id}' has no profile row (source '{source_name}')")]
    NoProfileRow {
        file: String,
        line: u64,
        id: String,
        source_name: String,
    },

    // ---- The output.
    /// A selected record that no longer reads as a JSON object when the shards are written.
    #[error("{file}:{line}: {message} (the file changed during the run?)")]
    RecordChanged {
        file: String,
        line: u64,
        message: String,
    },
    #[error("{file}:{line}: `metadata` is not an object; cannot add the scores")]
    MetadataNotObject { file: String, line: u64 },
    #[error("{file}:{line}: record vanished on the second read")]
    RecordVanished { file: String, line: u64 },
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing an output file (the writer's message names the file).
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    #[error(transparent)]
    Arrow(#[from] ArrowError),

    // ---- Checking a selection folder against its recomputation (`manifest` is its path).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the config recorded in {}", manifest.display())]
    RecordedConfig {
        manifest: PathBuf,
        #[source]
        source: ConfigError,
    },
    /// An input the manifest lists that cannot be read (`source`: [`SelectError::Read`]).
    #[error(
        "input {path} of the selection (listed in {}); run report-select from the directory `hesnr select` ran in",
        manifest.display()
    )]
    InputUnreadable {
        path: String,
        manifest: PathBuf,
        #[source]
        source: Box<SelectError>,
    },
    #[error(
        "{path} changed since the selection (sha256 {now}, the manifest {} says {recorded}); re-run `hesnr select` first",
        manifest.display()
    )]
    InputChanged {
        path: String,
        now: String,
        recorded: String,
        manifest: PathBuf,
    },
    #[error("recomputing the selection of {}", manifest.display())]
    Recompute {
        manifest: PathBuf,
        #[source]
        source: Box<SelectError>,
    },
    #[error("{}: {recorded} sources, but its config has {config}", manifest.display())]
    SourceCount {
        manifest: PathBuf,
        recorded: usize,
        config: usize,
    },
    /// A count of a source (`key`, as JSON) that the recomputation does not reproduce.
    #[error(
        "source '{source_name}': `{key}` is {recorded} in {} but {recomputed} when recomputed from its config: the documents or profiles changed since the selection; re-run `hesnr select`",
        manifest.display()
    )]
    CountChanged {
        source_name: String,
        key: &'static str,
        recorded: String,
        recomputed: String,
        manifest: PathBuf,
    },
    #[error("{}: listed in {} but missing", path.display(), manifest.display())]
    ShardMissing { path: PathBuf, manifest: PathBuf },
    #[error("{file}:{line}: no metadata.hesnr.source")]
    ShardNoSource { file: String, line: u64 },
    #[error("{file}:{line}: source '{source_name}' is not in the config")]
    ShardUnknownSource {
        file: String,
        line: u64,
        source_name: String,
    },
    #[error(
        "{file}:{line}: document '{id}' of source '{source_name}' is not in the selection recomputed from {}: the inputs changed since the selection",
        manifest.display()
    )]
    ShardNotSelected {
        file: String,
        line: u64,
        id: String,
        source_name: String,
        manifest: PathBuf,
    },
    #[error(
        "source '{source_name}': {rows} rows in the shards of {} but {selected} selected when recomputed",
        dir.display()
    )]
    ShardRows {
        source_name: String,
        rows: u64,
        dir: PathBuf,
        selected: u64,
    },

    // ---- Reading the shown documents back, and scoring them again.
    #[error("{file}:{line}: document id '{found}', expected '{expected}' (the file changed?)")]
    IdChanged {
        file: String,
        line: u64,
        found: String,
        expected: String,
    },
    #[error("{file}:{line}: document '{id}' not found")]
    DocumentNotFound { file: String, line: u64, id: String },
    #[error("{file}:{line}: scoring document '{id}'")]
    Rescore {
        file: String,
        line: u64,
        id: String,
        #[source]
        source: Box<EngineError>,
    },
}
