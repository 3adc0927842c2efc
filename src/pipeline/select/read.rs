//! Everything `hesnr select` (and the report that re-runs it) reads: the configured paths
//! expanded to files and the documents' records, both through the shared input layer (so
//! `documents` takes every form other commands take), profile folders resolved to their files,
//! and profile Parquet files.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::Array;
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::key_err;
use super::error::SelectError;
use crate::data::json::JsonRecord;
use crate::data::parquet::is_parquet;
use crate::data::records::read_records;
use crate::data::{InputFile, ReaderOptions, RecordErrorKind};

/// Columns of a profile that are keys, not scores.
const KEY_COLUMNS: [&str; 4] = ["id", "source", "line", "index"];
/// The file `hesnr merge DIR` writes by default.
const MERGED_PROFILE: &str = "profile.parquet";

/// Expands one configured path through the input layer (a file, a directory's files
/// recursively, or a glob pattern's matches, each sorted), so `documents` takes what every
/// other command takes. `file` and `key` name the config entry in errors.
fn expand_entry(file: &str, key: &str, entry: &str) -> Result<Vec<InputFile>, SelectError> {
    if entry == crate::data::open::STDIN_ARG {
        return Err(key_err(
            file,
            key,
            "`-` (stdin) cannot be used: select reads its documents twice (to plan, then to write the selection); name a file",
        )
        .into());
    }
    let files = crate::data::expand(&[PathBuf::from(entry)]).map_err(|e| key_err(file, key, e))?;
    if files.is_empty() {
        return Err(key_err(file, key, format!("{entry}: no files there")).into());
    }
    Ok(files)
}

/// The document files of one configured `documents` entry: every file the input layer finds
/// there (JSON Lines, JSON arrays, Parquet, text; compressed or not), as `profile` reads them.
pub(crate) fn expand_documents(
    file: &str,
    key: &str,
    entry: &str,
) -> Result<Vec<PathBuf>, SelectError> {
    Ok(expand_entry(file, key, entry)?
        .into_iter()
        .filter_map(|f| f.path)
        .collect())
}

/// Expands one configured profile path. A `hesnr profile --out` folder means its merged
/// `profile.parquet` when there is one, else its `profile-*-of-*.parquet` shards (all of them);
/// any other folder, every Parquet file in it. The same rows either way, so the selection is the
/// same whether or not the folder was merged.
pub(crate) fn expand_profile(
    file: &str,
    key: &str,
    entry: &str,
) -> Result<Vec<PathBuf>, SelectError> {
    let dir = Path::new(entry);
    if dir.is_dir() {
        if let Some(files) = profile_folder(dir).map_err(|e| key_err(file, key, e))? {
            return Ok(files);
        }
    }
    // Files named (or matched by a pattern) are read whatever their name; inside a directory
    // only the Parquet files are profiles.
    let files: Vec<PathBuf> = expand_entry(file, key, entry)?
        .into_iter()
        .filter(|f| f.named || f.path.as_deref().is_some_and(is_parquet))
        .filter_map(|f| f.path)
        .collect();
    if files.is_empty() {
        return Err(key_err(file, key, format!("{entry} has no .parquet files")).into());
    }
    Ok(files)
}

/// `profile-{i:05}-of-{n:05}.parquet` -> (i, n).
fn shard_of(name: &str) -> Option<(usize, usize)> {
    let mid = name.strip_prefix("profile-")?.strip_suffix(".parquet")?;
    let (i, n) = mid.split_once("-of-")?;
    if i.len() < 5 || n.len() < 5 || !(i.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (i, n) = (i.parse().ok()?, n.parse().ok()?);
    (i < n).then_some((i, n))
}

/// What select needs of a shard's or a merged file's `.stats.json` (written by `hesnr profile`
/// and `hesnr merge`; other fields are not read).
#[derive(Deserialize)]
struct RunStats {
    documents: u64,
    fingerprint: String,
}

fn read_stats(path: &Path) -> Result<RunStats, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Rows of a Parquet file, from its footer.
fn parquet_rows(path: &Path) -> Result<u64, String> {
    let f = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| format!("{}: not a Parquet file: {e}", path.display()))?;
    Ok(b.metadata().file_metadata().num_rows().max(0) as u64)
}

/// The files of a profile output folder, or `None` if `dir` is not one (no `profile.parquet`
/// and no `profile-*-of-*.parquet`). Refuses an incomplete or mixed set of shards (unless a
/// merged file is there) and a merged file that disagrees with the shards next to it (their
/// stats: run fingerprint and number of rows; cheap, no row is read).
fn profile_folder(dir: &Path) -> Result<Option<Vec<PathBuf>>, String> {
    let mut shards: Vec<(usize, usize)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for e in rd {
        let e = e.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(s) = shard_of(&name) {
            shards.push(s);
        } else if name != MERGED_PROFILE
            && !name.starts_with('.')
            && name.to_lowercase().ends_with(".parquet")
        {
            others.push(name);
        }
    }
    let merged = dir.join(MERGED_PROFILE);
    let merged = merged.is_file().then_some(merged);
    if merged.is_none() && shards.is_empty() {
        return Ok(None);
    }
    shards.sort();
    let mut counts: Vec<usize> = shards.iter().map(|s| s.1).collect();
    counts.dedup();
    if counts.len() > 1 {
        return Err(format!(
            "{} holds profile shards of runs with different shard counts ({counts:?}); keep one run per folder",
            dir.display()
        ));
    }
    let stem = |i: usize, n: usize| dir.join(format!("profile-{i:05}-of-{n:05}"));
    // The shards' stats, when every shard of the run is there and complete.
    let mut shard_stats: Option<(usize, Vec<RunStats>)> = None;
    if let Some(&n) = counts.first() {
        let missing: Vec<String> = (0..n)
            .filter(|&i| {
                !stem(i, n).with_extension("parquet").is_file()
                    || !stem(i, n).with_extension("stats.json").is_file()
            })
            .map(|i| i.to_string())
            .collect();
        if missing.is_empty() {
            let stats = (0..n)
                .map(|i| read_stats(&stem(i, n).with_extension("stats.json")))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(i) = stats
                .iter()
                .position(|s| s.fingerprint != stats[0].fingerprint)
            {
                return Err(format!(
                    "{}: shard {i} of {n} belongs to another profile run than shard 0 (fingerprint {} vs {}); keep one run per folder",
                    dir.display(),
                    stats[i].fingerprint,
                    stats[0].fingerprint
                ));
            }
            shard_stats = Some((n, stats));
        } else if merged.is_none() {
            return Err(format!(
                "{}: {} of {n} profile shards missing or incomplete (no .parquet or no .stats.json): {}; \
                 finish them (`hesnr profile ... --shard i/{n}`) or name the files to use in `profile`",
                dir.display(),
                missing.len(),
                missing.join(", ")
            ));
        }
    }
    let chosen = match merged {
        Some(m) => {
            let rows = parquet_rows(&m)?;
            let stats_path = dir.join("profile.stats.json");
            let merged_stats = stats_path
                .is_file()
                .then(|| read_stats(&stats_path))
                .transpose()?;
            if let Some(st) = &merged_stats {
                if st.documents != rows {
                    return Err(format!(
                        "{} holds {rows} rows but {} counts {}; re-run `hesnr merge {}`",
                        m.display(),
                        stats_path.display(),
                        st.documents,
                        dir.display()
                    ));
                }
            }
            if let Some((n, stats)) = &shard_stats {
                let documents: u64 = stats.iter().map(|s| s.documents).sum();
                let fingerprint = &stats[0].fingerprint;
                let other_run = merged_stats
                    .as_ref()
                    .is_some_and(|st| &st.fingerprint != fingerprint);
                if documents != rows || other_run {
                    return Err(format!(
                        "{} ({rows} rows) does not match the {n} profile shards next to it ({documents} rows{}); \
                         re-run `hesnr merge {}`, or remove the one that is out of date",
                        m.display(),
                        if other_run { ", another run" } else { "" },
                        dir.display()
                    ));
                }
            }
            vec![m]
        }
        None => {
            let n = counts[0];
            (0..n)
                .map(|i| stem(i, n).with_extension("parquet"))
                .collect()
        }
    };
    if !others.is_empty() {
        others.sort();
        tracing::warn!(
            "{}: reading {} and not the other Parquet files there ({}); name them in `profile` to use them",
            dir.display(),
            if chosen.len() == 1 {
                MERGED_PROFILE.to_string()
            } else {
                format!("its {} profile shards", chosen.len())
            },
            others.join(", ")
        );
    }
    Ok(Some(chosen))
}

/// A path as written, for comparing a profile's `source` with a configured document file.
fn normalise_path(s: &str) -> String {
    let mut s = s.replace('\\', "/");
    while let Some(r) = s.strip_prefix("./") {
        s = r.to_string();
    }
    s
}

/// A record's field by name or dotted path: the one rule of the input layer.
pub(crate) use crate::data::json::lookup as get_field;

/// A record's id as select reads it: a string, or a number as written; `None` otherwise.
pub(crate) fn id_of(rec: &Value, id_field: &str) -> Option<String> {
    match get_field(rec, id_field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// How the input layer is to read a source's documents: its text and id fields (a text file's
/// record carries its text and path under these names).
pub(crate) fn reader_options(text_field: &str, id_field: &str) -> ReaderOptions {
    ReaderOptions {
        text_field: text_field.to_string(),
        id_field: id_field.to_string(),
        ..ReaderOptions::default()
    }
}

/// Calls `each(place, record)` for every record of a document file, read by the input layer
/// (any form it reads; the place is the line, row, or 0 for a text file, as in profile rows).
/// A record that is not a JSON object comes as `Err(message)`, for the caller to skip or refuse;
/// a file that cannot be read (or stops reading midway) is an error: a selection must not be
/// planned on part of a file.
pub(crate) fn for_each_record(
    path: &Path,
    opts: &ReaderOptions,
    mut each: impl FnMut(u64, Result<Map<String, Value>, String>) -> Result<(), SelectError>,
) -> Result<(), SelectError> {
    for item in read_records(path, opts) {
        match item {
            Ok(JsonRecord {
                line,
                value: Value::Object(m),
            }) => each(line, Ok(m))?,
            Ok(JsonRecord { line, .. }) => each(line, Err("not a JSON object".into()))?,
            Err(e) if e.kind == RecordErrorKind::Io => return Err(e.into()),
            Err(e) => each(e.line, Err(e.message))?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Profiles

/// One profile file's rows.
pub(crate) struct ProfileFile {
    /// Score columns (numeric, other than `line`/`index`), in file order; `true` if integer.
    pub(crate) scores: Vec<(String, bool)>,
    pub(crate) rows: Vec<ProfileRow>,
}

pub(crate) struct ProfileRow {
    pub(crate) source: String,
    pub(crate) line: u64,
    pub(crate) id: String,
    pub(crate) values: Vec<Option<f64>>,
}

fn numeric(col: &dyn Array) -> Option<(Vec<Option<f64>>, bool)> {
    macro_rules! prim {
        ($t:ty, $int:expr) => {
            if let Some(a) = col.as_primitive_opt::<$t>() {
                let v = (0..a.len())
                    .map(|i| {
                        (!a.is_null(i))
                            .then(|| a.value(i) as f64)
                            .filter(|x| !x.is_nan())
                    })
                    .collect();
                return Some((v, $int));
            }
        };
    }
    prim!(Float64Type, false);
    prim!(Float32Type, false);
    prim!(UInt64Type, true);
    prim!(Int64Type, true);
    prim!(UInt32Type, true);
    prim!(Int32Type, true);
    None
}

fn strings(col: &dyn Array) -> Option<Vec<Option<String>>> {
    let get = |n: usize, f: &dyn Fn(usize) -> Option<String>| (0..n).map(f).collect();
    if let Some(a) = col.as_string_opt::<i32>() {
        return Some(get(a.len(), &|i| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        }));
    }
    if let Some(a) = col.as_string_opt::<i64>() {
        return Some(get(a.len(), &|i| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        }));
    }
    if let Some(a) = col.as_string_view_opt() {
        return Some(get(a.len(), &|i| {
            (!a.is_null(i)).then(|| a.value(i).to_string())
        }));
    }
    None
}

pub(crate) fn read_profile(path: &Path) -> Result<ProfileFile, SelectError> {
    let f = File::open(path).map_err(|source| SelectError::OpenProfile {
        path: path.to_path_buf(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|source| SelectError::NotParquet {
            path: path.to_path_buf(),
            source,
        })?;
    let schema = builder.schema().clone();
    for c in ["id", "source", "line", "tokens"] {
        if schema.field_with_name(c).is_err() {
            return Err(SelectError::ProfileColumnMissing {
                path: path.to_path_buf(),
                column: c.to_string(),
            });
        }
    }
    let mut scores = Vec::new();
    for f in schema.fields() {
        if KEY_COLUMNS.contains(&f.name().as_str()) {
            continue;
        }
        let int = match f.data_type() {
            DataType::Float64 | DataType::Float32 => false,
            DataType::UInt64 | DataType::Int64 | DataType::UInt32 | DataType::Int32 => true,
            _ => continue,
        };
        scores.push((f.name().clone(), int));
    }
    let reader = builder.build().map_err(|source| SelectError::ReadProfile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| SelectError::ReadProfileBatch {
            path: path.to_path_buf(),
            source,
        })?;
        let col = |n: &str| batch.column_by_name(n).expect("checked");
        let bad = |n: &str| SelectError::ProfileColumnType {
            path: path.to_path_buf(),
            column: n.to_string(),
        };
        let ids = strings(col("id").as_ref()).ok_or_else(|| bad("id"))?;
        let srcs = strings(col("source").as_ref()).ok_or_else(|| bad("source"))?;
        let lines = numeric(col("line").as_ref()).ok_or_else(|| bad("line"))?.0;
        let cols: Vec<Vec<Option<f64>>> = scores
            .iter()
            .map(|(n, _)| numeric(col(n).as_ref()).map(|x| x.0).ok_or_else(|| bad(n)))
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            let (Some(id), Some(source), Some(line)) = (&ids[i], &srcs[i], lines[i]) else {
                return Err(SelectError::ProfileNullKey {
                    path: path.to_path_buf(),
                    row: i,
                });
            };
            rows.push(ProfileRow {
                source: source.clone(),
                line: line as u64,
                id: id.clone(),
                values: cols.iter().map(|c| c[i]).collect(),
            });
        }
    }
    Ok(ProfileFile { scores, rows })
}

/// Finds which document file a profile `source` string names.
pub(crate) fn match_source(row_source: &str, files: &[(PathBuf, String)]) -> Option<usize> {
    let n = normalise_path(row_source);
    if let Some(i) = files.iter().position(|(_, s)| normalise_path(s) == n) {
        return Some(i);
    }
    if let Ok(c) = Path::new(row_source).canonicalize() {
        if let Some(i) = files
            .iter()
            .position(|(p, _)| p.canonicalize().ok().as_ref() == Some(&c))
        {
            return Some(i);
        }
    }
    let hits: Vec<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| {
            let d = normalise_path(s);
            n.ends_with(&format!("/{d}")) || d.ends_with(&format!("/{n}"))
        })
        .map(|(i, _)| i)
        .collect();
    (hits.len() == 1).then(|| hits[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compression is recognised from the bytes, as in every other command (a gzip file named
    /// `.jsonl` used to be read as garbage lines here).
    #[test]
    fn a_gzip_file_named_jsonl_is_read_as_records() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docs.jsonl");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(b"{\"id\": \"a\", \"meta\": {\"text\": \"x\"}}\n\n{\"id\": \"b\"}\n")
            .unwrap();
        gz.finish().unwrap();
        let mut seen = Vec::new();
        for_each_record(&path, &ReaderOptions::default(), |line, rec| {
            let rec = Value::Object(rec.unwrap());
            seen.push((
                line,
                get_field(&rec, "id").cloned(),
                get_field(&rec, "meta.text").cloned(),
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (1, Some("a".into()), Some("x".into())),
                (3, Some("b".into()), None)
            ]
        );
    }

    #[test]
    fn sources_match_by_path_forms() {
        let files = vec![
            (
                PathBuf::from("data/code.jsonl"),
                "data/code.jsonl".to_string(),
            ),
            (
                PathBuf::from("data/other.jsonl"),
                "data/other.jsonl".to_string(),
            ),
        ];
        assert_eq!(match_source("./data/code.jsonl", &files), Some(0));
        assert_eq!(match_source("/abs/root/data/other.jsonl", &files), Some(1));
        assert_eq!(match_source("elsewhere.jsonl", &files), None);
    }

    #[test]
    fn shard_names() {
        assert_eq!(shard_of("profile-00003-of-00016.parquet"), Some((3, 16)));
        assert_eq!(shard_of("profile-00016-of-00016.parquet"), None);
        assert_eq!(shard_of("profile-3-of-16.parquet"), None);
        assert_eq!(shard_of("profile.parquet"), None);
    }
}
