//! `hesnr select`: filtering, weighting and mixing of mid-training data by per-document scores.
//!
//! Inputs are the original documents (JSONL, optionally .gz/.zst) and the per-document profile
//! rows `hesnr profile` wrote (Parquet). Documents are joined to profile rows by (file, line),
//! checked by id, so a profile may be split in any number of files. The output is a set of
//! training-ready shards (JSONL and Parquet, the same rows) and a manifest; the same inputs,
//! config and seed give byte-identical outputs.
//!
//! # Semantics (see `examples/corpus/select.toml`)
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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::data::AtomicFile;

/// A profile row joined to its document: (id, scores in config order).
type JoinedRow = (String, Vec<Option<f64>>);
/// Columns of a profile that are keys, not scores.
const KEY_COLUMNS: [&str; 4] = ["id", "source", "line", "index"];
/// Default shard size of the output, in documents.
pub const DEFAULT_SHARD_SIZE: usize = 100_000;

// ---------------------------------------------------------------------------------------------
// Config

/// A parsed selection config.
#[derive(Debug, Clone, Serialize)]
pub struct SelectConfig {
    pub seed: u64,
    pub token_budget: Option<u64>,
    pub general_ratio: Option<f64>,
    /// Token estimate for sources without a profile.
    pub bytes_per_token: f64,
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceConfig {
    pub name: String,
    pub general: bool,
    pub documents: Vec<String>,
    pub profile: Vec<String>,
    pub filter: Vec<Filter>,
    pub weight: Option<WeightSpec>,
    pub text_field: String,
    pub id_field: String,
}

/// One filter: a range (`min`, `max`, or both) or one of the fractions.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Filter {
    pub score: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottom_fraction: Option<f64>,
}

impl Filter {
    fn describe(&self) -> String {
        let mut parts = vec![self.score.clone()];
        if let Some(v) = self.min {
            parts.push(format!("min {v}"));
        }
        if let Some(v) = self.max {
            parts.push(format!("max {v}"));
        }
        if let Some(v) = self.top_fraction {
            parts.push(format!("top_fraction {v}"));
        }
        if let Some(v) = self.bottom_fraction {
            parts.push(format!("bottom_fraction {v}"));
        }
        parts.join(" ")
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WeightSpec {
    pub score: String,
    pub clip: Option<[f64; 2]>,
    pub power: f64,
}

fn key_err(file: &str, key: &str, msg: impl Display) -> anyhow::Error {
    anyhow!("{file}: key `{key}`: {msg}")
}

fn as_f64(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn check_keys(file: &str, prefix: &str, t: &toml::Table, allowed: &[&str]) -> Result<()> {
    for k in t.keys() {
        if !allowed.contains(&k.as_str()) {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            return Err(key_err(
                file,
                &key,
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn get_number(file: &str, key: &str, v: &toml::Value) -> Result<f64> {
    match as_f64(v) {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(key_err(file, key, format!("expected a number, got {v}"))),
    }
}

fn get_ratio(file: &str, key: &str, v: &toml::Value) -> Result<f64> {
    let x = get_number(file, key, v)?;
    if !(0.0..=1.0).contains(&x) {
        return Err(key_err(file, key, format!("{x} is outside [0, 1]")));
    }
    Ok(x)
}

fn get_string(file: &str, key: &str, v: &toml::Value) -> Result<String> {
    match v {
        toml::Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(key_err(
            file,
            key,
            format!("expected a non-empty string, got {v}"),
        )),
    }
}

fn string_list(file: &str, key: &str, v: &toml::Value) -> Result<Vec<String>> {
    let list = match v {
        toml::Value::String(_) => vec![get_string(file, key, v)?],
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| get_string(file, &format!("{key}[{i}]"), x))
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(key_err(file, key, "expected a path or a list of paths")),
    };
    if list.is_empty() {
        return Err(key_err(file, key, "is empty"));
    }
    Ok(list)
}

/// Parses and checks a config; `file` names it in errors.
pub fn parse_config(text: &str, file: &str) -> Result<SelectConfig> {
    let top: toml::Table =
        toml::from_str(text).map_err(|e| anyhow!("{file}: not valid TOML: {e}"))?;
    check_keys(
        file,
        "",
        &top,
        &[
            "seed",
            "token_budget",
            "general_ratio",
            "bytes_per_token",
            "source",
        ],
    )?;
    let seed = match top.get("seed") {
        None => 0,
        Some(toml::Value::Integer(i)) if *i >= 0 => *i as u64,
        Some(v) => {
            return Err(key_err(
                file,
                "seed",
                format!("expected an integer >= 0, got {v}"),
            ))
        }
    };
    let token_budget = match top.get("token_budget") {
        None => None,
        Some(toml::Value::Integer(i)) if *i > 0 => Some(*i as u64),
        Some(v) => {
            return Err(key_err(
                file,
                "token_budget",
                format!("expected an integer > 0, got {v}"),
            ))
        }
    };
    let general_ratio = top
        .get("general_ratio")
        .map(|v| get_ratio(file, "general_ratio", v))
        .transpose()?;
    let bytes_per_token = match top.get("bytes_per_token") {
        None => 4.0,
        Some(v) => {
            let x = get_number(file, "bytes_per_token", v)?;
            if x <= 0.0 {
                return Err(key_err(file, "bytes_per_token", "must be > 0"));
            }
            x
        }
    };
    let raw_sources = match top.get("source") {
        Some(toml::Value::Array(a)) if !a.is_empty() => a,
        Some(_) => return Err(key_err(file, "source", "expected [[source]] tables")),
        None => {
            return Err(key_err(
                file,
                "source",
                "missing: give at least one [[source]]",
            ))
        }
    };
    let mut sources = Vec::new();
    let mut names = HashSet::new();
    for (i, v) in raw_sources.iter().enumerate() {
        let p = format!("source[{i}]");
        let t = v
            .as_table()
            .ok_or_else(|| key_err(file, &p, "expected a table"))?;
        check_keys(
            file,
            &p,
            t,
            &[
                "name",
                "general",
                "documents",
                "profile",
                "filter",
                "weight",
                "text_field",
                "id_field",
            ],
        )?;
        let name = match t.get("name") {
            Some(v) => get_string(file, &format!("{p}.name"), v)?,
            None => return Err(key_err(file, &format!("{p}.name"), "missing")),
        };
        if !names.insert(name.clone()) {
            return Err(key_err(
                file,
                &format!("{p}.name"),
                format!("duplicate source name '{name}'"),
            ));
        }
        let general = match t.get("general") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(v) => {
                return Err(key_err(
                    file,
                    &format!("{p}.general"),
                    format!("expected true or false, got {v}"),
                ))
            }
        };
        let documents = match t.get("documents") {
            Some(v) => string_list(file, &format!("{p}.documents"), v)?,
            None => return Err(key_err(file, &format!("{p}.documents"), "missing")),
        };
        let profile = match t.get("profile") {
            Some(v) => string_list(file, &format!("{p}.profile"), v)?,
            None => Vec::new(),
        };
        let mut filter = Vec::new();
        match t.get("filter") {
            None => {}
            Some(toml::Value::Array(a)) => {
                for (j, f) in a.iter().enumerate() {
                    filter.push(parse_filter(file, &format!("{p}.filter[{j}]"), f)?);
                }
            }
            Some(_) => {
                return Err(key_err(
                    file,
                    &format!("{p}.filter"),
                    "expected a list of filters",
                ))
            }
        }
        let weight = t
            .get("weight")
            .map(|w| parse_weight(file, &format!("{p}.weight"), w))
            .transpose()?;
        if profile.is_empty() {
            if !filter.is_empty() {
                return Err(key_err(
                    file,
                    &format!("{p}.filter"),
                    "needs scores: set `profile` for this source",
                ));
            }
            if weight.is_some() {
                return Err(key_err(
                    file,
                    &format!("{p}.weight"),
                    "needs scores: set `profile` for this source",
                ));
            }
        }
        let field = |k: &str, d: &str| -> Result<String> {
            t.get(k)
                .map(|v| get_string(file, &format!("{p}.{k}"), v))
                .unwrap_or_else(|| Ok(d.to_string()))
        };
        sources.push(SourceConfig {
            name,
            general,
            documents,
            profile,
            filter,
            weight,
            text_field: field("text_field", "text")?,
            id_field: field("id_field", "id")?,
        });
    }
    if let Some(r) = general_ratio {
        let has_general = sources.iter().any(|s| s.general);
        let has_special = sources.iter().any(|s| !s.general);
        if r > 0.0 && !has_general {
            return Err(key_err(
                file,
                "general_ratio",
                format!("is {r} but no source has `general = true`"),
            ));
        }
        if r < 1.0 && !has_special {
            return Err(key_err(
                file,
                "general_ratio",
                format!("is {r} but every source is `general = true`"),
            ));
        }
    }
    Ok(SelectConfig {
        seed,
        token_budget,
        general_ratio,
        bytes_per_token,
        sources,
    })
}

fn parse_filter(file: &str, p: &str, v: &toml::Value) -> Result<Filter> {
    let t = v.as_table().ok_or_else(|| {
        key_err(
            file,
            p,
            "expected a table like { score = \"he_snr\", min = 0.1 }",
        )
    })?;
    check_keys(
        file,
        p,
        t,
        &["score", "min", "max", "top_fraction", "bottom_fraction"],
    )?;
    let score = match t.get("score") {
        Some(v) => get_string(file, &format!("{p}.score"), v)?,
        None => return Err(key_err(file, &format!("{p}.score"), "missing")),
    };
    let num = |k: &str| {
        t.get(k)
            .map(|v| get_number(file, &format!("{p}.{k}"), v))
            .transpose()
    };
    let ratio = |k: &str| {
        t.get(k)
            .map(|v| get_ratio(file, &format!("{p}.{k}"), v))
            .transpose()
    };
    let f = Filter {
        score,
        min: num("min")?,
        max: num("max")?,
        top_fraction: ratio("top_fraction")?,
        bottom_fraction: ratio("bottom_fraction")?,
    };
    let range = f.min.is_some() || f.max.is_some();
    let kinds = [range, f.top_fraction.is_some(), f.bottom_fraction.is_some()];
    match kinds.iter().filter(|k| **k).count() {
        0 => {
            return Err(key_err(
                file,
                p,
                "needs one of min/max, top_fraction or bottom_fraction",
            ))
        }
        1 => {}
        _ => {
            let given: Vec<&str> = ["min", "max", "top_fraction", "bottom_fraction"]
                .into_iter()
                .filter(|k| t.contains_key(*k))
                .collect();
            return Err(key_err(
                file,
                p,
                format!(
                    "gives {}: a filter is a range (min/max) or one fraction; use two filters",
                    given.join(" and ")
                ),
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (f.min, f.max) {
        if lo > hi {
            return Err(key_err(file, p, format!("min {lo} > max {hi}")));
        }
    }
    Ok(f)
}

fn parse_weight(file: &str, p: &str, v: &toml::Value) -> Result<WeightSpec> {
    let t = v.as_table().ok_or_else(|| {
        key_err(
            file,
            p,
            "expected a table like { score = \"decision_density\" }",
        )
    })?;
    check_keys(file, p, t, &["score", "clip", "power"])?;
    let score = match t.get("score") {
        Some(v) => get_string(file, &format!("{p}.score"), v)?,
        None => return Err(key_err(file, &format!("{p}.score"), "missing")),
    };
    let clip = match t.get("clip") {
        None => None,
        Some(toml::Value::Array(a)) if a.len() == 2 => {
            let lo = get_number(file, &format!("{p}.clip[0]"), &a[0])?;
            let hi = get_number(file, &format!("{p}.clip[1]"), &a[1])?;
            if lo <= 0.0 || lo > hi {
                return Err(key_err(
                    file,
                    &format!("{p}.clip"),
                    format!("needs 0 < low <= high, got [{lo}, {hi}]"),
                ));
            }
            Some([lo, hi])
        }
        Some(v) => {
            return Err(key_err(
                file,
                &format!("{p}.clip"),
                format!("expected [low, high], got {v}"),
            ))
        }
    };
    let power = match t.get("power") {
        None => 1.0,
        Some(v) => get_number(file, &format!("{p}.power"), v)?,
    };
    Ok(WeightSpec { score, clip, power })
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

/// A uniform number in (0, 1) from SHA-256 of the parts.
fn hash_u64(seed: u64, tag: &str, source: &str, id: &str, occ: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for part in [tag, source, id] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(occ.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expands one configured path: a glob (sorted), a directory (its files with one of `exts`,
/// recursively, sorted), or a file.
fn expand(file: &str, key: &str, entry: &str, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if has_glob(entry) {
        let paths = glob::glob(entry)
            .map_err(|e| key_err(file, key, format!("bad pattern '{entry}': {e}")))?;
        for p in paths {
            let p = p.map_err(|e| key_err(file, key, e))?;
            if p.is_file() {
                out.push(p);
            }
        }
        out.sort();
        if out.is_empty() {
            return Err(key_err(file, key, format!("no file matches '{entry}'")));
        }
        return Ok(out);
    }
    let p = PathBuf::from(entry);
    let meta = std::fs::metadata(&p).map_err(|e| key_err(file, key, format!("{entry}: {e}")))?;
    if meta.is_dir() {
        let mut set = HashSet::new();
        crate::data::reader::collect_dir(&p, &mut set, &mut out)
            .map_err(|e| key_err(file, key, e))?;
        out.retain(|f| {
            let n = f.to_string_lossy().to_lowercase();
            exts.iter().any(|e| n.ends_with(e))
        });
        if out.is_empty() {
            return Err(key_err(
                file,
                key,
                format!("directory {entry} has no {} files", exts.join("/")),
            ));
        }
    } else {
        out.push(p);
    }
    Ok(out)
}

fn normalise_path(s: &str) -> String {
    let mut s = s.replace('\\', "/");
    while let Some(r) = s.strip_prefix("./") {
        s = r.to_string();
    }
    s
}

/// A dotted field lookup (`metadata.content`); a key containing the dots wins.
pub(crate) fn get_field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn open_lines(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let name = path.to_string_lossy().to_lowercase();
    Ok(if name.ends_with(".gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        Box::new(BufReader::new(zstd::stream::read::Decoder::new(f)?))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, f))
    })
}

/// Calls `each(line, record)` for every non-blank line; records that are not JSON objects
/// come as `Err(message)`.
pub(crate) fn for_each_record(
    path: &Path,
    mut each: impl FnMut(u64, std::result::Result<Map<String, Value>, String>) -> Result<()>,
) -> Result<()> {
    let mut reader = open_lines(path)?;
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("{}: read failed after line {line}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let mut bytes = buf.as_slice();
        bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if line == 1 {
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err("not a JSON object".to_string()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        };
        each(line, rec)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles

/// One profile file's rows.
struct ProfileFile {
    /// Score columns (numeric, other than `line`/`index`), in file order; `true` if integer.
    scores: Vec<(String, bool)>,
    rows: Vec<ProfileRow>,
}

struct ProfileRow {
    source: String,
    line: u64,
    id: String,
    values: Vec<Option<f64>>,
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

fn read_profile(path: &Path) -> Result<ProfileFile> {
    let f = File::open(path).with_context(|| format!("opening profile {}", path.display()))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .with_context(|| format!("profile {}: not a Parquet file", path.display()))?;
    let schema = builder.schema().clone();
    for c in ["id", "source", "line", "tokens"] {
        if schema.field_with_name(c).is_err() {
            bail!("profile {}: column '{c}' is missing", path.display());
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
    let reader = builder
        .build()
        .with_context(|| format!("reading profile {}", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading profile {}", path.display()))?;
        let col = |n: &str| batch.column_by_name(n).expect("checked");
        let bad = |n: &str| {
            anyhow!(
                "profile {}: column '{n}' has an unexpected type",
                path.display()
            )
        };
        let ids = strings(col("id").as_ref()).ok_or_else(|| bad("id"))?;
        let srcs = strings(col("source").as_ref()).ok_or_else(|| bad("source"))?;
        let lines = numeric(col("line").as_ref()).ok_or_else(|| bad("line"))?.0;
        let cols: Vec<Vec<Option<f64>>> = scores
            .iter()
            .map(|(n, _)| numeric(col(n).as_ref()).map(|x| x.0).ok_or_else(|| bad(n)))
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            let (Some(id), Some(source), Some(line)) = (&ids[i], &srcs[i], lines[i]) else {
                bail!(
                    "profile {}: row {i} has a null id, source or line",
                    path.display()
                );
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
fn match_source(row_source: &str, files: &[(PathBuf, String)]) -> Option<usize> {
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

// ---------------------------------------------------------------------------------------------
// Selection

/// One input document.
pub(crate) struct Doc {
    pub(crate) source: usize,
    /// Index into the global file list.
    pub(crate) file: usize,
    pub(crate) line: u64,
    pub(crate) id: String,
    pub(crate) occ: u32,
    pub(crate) tokens: u64,
    /// Scores (aligned with the source's score names) when profiled.
    pub(crate) values: Option<Vec<Option<f64>>>,
    pub(crate) weight: f64,
}

#[derive(Default, Serialize, Clone, Copy)]
struct Count {
    documents: u64,
    tokens: u64,
}

impl Count {
    fn add(&mut self, tokens: u64) {
        self.documents += 1;
        self.tokens += tokens;
    }
    fn plus(self, o: Count) -> Count {
        Count {
            documents: self.documents + o.documents,
            tokens: self.tokens + o.tokens,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct FilterReport {
    filter: String,
    dropped: Count,
}

#[derive(Serialize)]
pub(crate) struct SourceReport {
    name: String,
    general: bool,
    tokens_from: &'static str,
    read: Count,
    bad_records: u64,
    no_profile: Count,
    profile_rows_matched: u64,
    profile_rows_without_document: u64,
    profile_rows_sha256: Option<String>,
    filters: Vec<FilterReport>,
    kept: Count,
    target_tokens: f64,
    selected: Count,
    shortfall_tokens: f64,
    weight: Option<BTreeMap<&'static str, f64>>,
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct SelectOptions {
    pub out: PathBuf,
    pub shard_size: usize,
    pub strict: bool,
}

/// What a run did: the manifest as written.
pub struct SelectOutcome {
    pub manifest: Value,
}

/// What a selection decides, before anything is written: every document read, its scores,
/// which filter dropped it, the kept ones with their weights, and the sampled ones.
pub(crate) struct Plan {
    /// (source index, path, path as configured) of every document file, in config order.
    pub files: Vec<(usize, PathBuf, String)>,
    /// The profile files of each source.
    pub profile_files: Vec<Vec<PathBuf>>,
    /// The documents kept by the filters (candidates for sampling).
    pub docs: Vec<Doc>,
    /// The documents a filter dropped: (filter index within the source, document).
    pub dropped: Vec<(usize, Doc)>,
    pub reports: Vec<SourceReport>,
    /// Score names (and whether integer) of each source's profile, aligned with `Doc::values`.
    pub score_names: Vec<Vec<(String, bool)>>,
    /// Indices into `docs` of the sampled documents, by source.
    pub selected: Vec<usize>,
    pub total_target: f64,
}

/// Reads the documents and profiles of a config and decides the selection (filters, weights,
/// targets, sampling) without writing anything. `label` names the config in errors.
pub(crate) fn plan(cfg: &SelectConfig, label: &str, strict: bool) -> Result<Plan> {
    let label = label.to_string();
    let mut dropped: Vec<(usize, Doc)> = Vec::new();
    // Files of every source, checked before anything is read.
    let mut files: Vec<(usize, PathBuf, String)> = Vec::new();
    let mut profile_files: Vec<Vec<PathBuf>> = Vec::new();
    for (si, s) in cfg.sources.iter().enumerate() {
        for (j, d) in s.documents.iter().enumerate() {
            let key = if s.documents.len() > 1 {
                format!("source[{si}].documents[{j}]")
            } else {
                format!("source[{si}].documents")
            };
            for p in expand(
                &label,
                &key,
                d,
                &[".jsonl", ".json", ".ndjson", ".gz", ".zst", ".zstd"],
            )? {
                let shown = p.display().to_string();
                files.push((si, p, shown));
            }
        }
        let mut pf = Vec::new();
        for (j, d) in s.profile.iter().enumerate() {
            let key = if s.profile.len() > 1 {
                format!("source[{si}].profile[{j}]")
            } else {
                format!("source[{si}].profile")
            };
            pf.extend(expand(&label, &key, d, &[".parquet"])?);
        }
        profile_files.push(pf);
    }

    // Profiles, each file read once even when sources share it.
    let cache: RefCell<HashMap<PathBuf, Rc<ProfileFile>>> = RefCell::new(HashMap::new());
    let load = |p: &Path| -> Result<Rc<ProfileFile>> {
        if let Some(x) = cache.borrow().get(p) {
            return Ok(x.clone());
        }
        let pf = Rc::new(read_profile(p)?);
        cache.borrow_mut().insert(p.to_path_buf(), pf.clone());
        Ok(pf)
    };

    let mut docs: Vec<Doc> = Vec::new();
    let mut reports = Vec::new();
    let mut score_names: Vec<Vec<(String, bool)>> = Vec::new();
    for (si, s) in cfg.sources.iter().enumerate() {
        let my_files: Vec<usize> = (0..files.len()).filter(|&i| files[i].0 == si).collect();
        let my_paths: Vec<(PathBuf, String)> = my_files
            .iter()
            .map(|&i| (files[i].1.clone(), files[i].2.clone()))
            .collect();
        // Join table: (local file, line) -> (id, values).
        let mut names: Vec<(String, bool)> = Vec::new();
        let mut joined: HashMap<(usize, u64), JoinedRow> = HashMap::new();
        for p in &profile_files[si] {
            let pf = load(p)?;
            if names.is_empty() {
                names = pf.scores.clone();
            }
            // Map this file's columns onto the first file's.
            let mut map = Vec::new();
            for (n, _) in &names {
                match pf.scores.iter().position(|(m, _)| m == n) {
                    Some(k) => map.push(k),
                    None => bail!("profile {}: column '{n}' is missing (other profile files of source '{}' have it)", p.display(), s.name),
                }
            }
            let mut matched: HashMap<&str, Option<usize>> = HashMap::new();
            for r in &pf.rows {
                let m = *matched
                    .entry(r.source.as_str())
                    .or_insert_with(|| match_source(&r.source, &my_paths));
                let Some(fi) = m else { continue };
                let vals = map.iter().map(|&k| r.values[k]).collect();
                if joined.insert((fi, r.line), (r.id.clone(), vals)).is_some() {
                    bail!(
                        "source '{}': two profile rows for {}:{} (profiles overlap?)",
                        s.name,
                        my_paths[fi].1,
                        r.line
                    );
                }
            }
        }
        // Scores the config uses must exist.
        let check = |key: String, score: &str| -> Result<()> {
            if names.iter().any(|(n, _)| n == score) {
                return Ok(());
            }
            let avail: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
            Err(key_err(
                &label,
                &key,
                format!(
                    "unknown score '{score}' (profile columns: {})",
                    avail.join(", ")
                ),
            ))
        };
        for (j, f) in s.filter.iter().enumerate() {
            check(format!("source[{si}].filter[{j}].score"), &f.score)?;
        }
        if let Some(w) = &s.weight {
            check(format!("source[{si}].weight.score"), &w.score)?;
        }
        let tokens_col = names.iter().position(|(n, _)| n == "tokens");
        let profiled = !s.profile.is_empty();

        // Rows' canonical hash: independent of how the profile was split.
        let mut keys: Vec<&(usize, u64)> = joined.keys().collect();
        keys.sort();
        let mut rh = Sha256::new();
        for (n, int) in &names {
            rh.update(n.as_bytes());
            rh.update([0, *int as u8]);
        }
        for k in &keys {
            let (id, vals) = &joined[*k];
            rh.update(my_paths[k.0].1.as_bytes());
            rh.update([0]);
            rh.update(k.1.to_le_bytes());
            rh.update(id.as_bytes());
            rh.update([0]);
            for v in vals {
                rh.update(v.map_or(u64::MAX, |x| x.to_bits()).to_le_bytes());
            }
        }
        let rows_sha = profiled.then(|| hex(&rh.finalize()));
        let rows_total = joined.len() as u64;

        let mut rep = SourceReport {
            name: s.name.clone(),
            general: s.general,
            tokens_from: if profiled {
                "profile"
            } else {
                "bytes_per_token"
            },
            read: Count::default(),
            bad_records: 0,
            no_profile: Count::default(),
            profile_rows_matched: 0,
            profile_rows_without_document: 0,
            profile_rows_sha256: rows_sha,
            filters: s
                .filter
                .iter()
                .map(|f| FilterReport {
                    filter: f.describe(),
                    dropped: Count::default(),
                })
                .collect(),
            kept: Count::default(),
            target_tokens: 0.0,
            selected: Count::default(),
            shortfall_tokens: 0.0,
            weight: None,
        };
        let mut occ: HashMap<String, u32> = HashMap::new();
        let mut local: Vec<Doc> = Vec::new();
        for (fi, &gi) in my_files.iter().enumerate() {
            let path = &files[gi].1;
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for_each_record(path, |line, rec| {
                let where_ = format!("{}:{line}", files[gi].2);
                let rec = match rec {
                    Ok(r) => Value::Object(r),
                    Err(msg) => {
                        if strict {
                            bail!("{where_}: {msg}");
                        }
                        rep.bad_records += 1;
                        return Ok(());
                    }
                };
                let text_len = match get_field(&rec, &s.text_field) {
                    Some(Value::String(t)) => t.len(),
                    _ => {
                        if strict {
                            bail!("{where_}: field '{}' missing or not a string", s.text_field);
                        }
                        rep.bad_records += 1;
                        return Ok(());
                    }
                };
                let id = match get_field(&rec, &s.id_field) {
                    Some(Value::String(x)) => x.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => format!("{file_name}:{line}"),
                };
                let o = occ.entry(id.clone()).or_insert(0);
                let this_occ = *o;
                *o += 1;
                let estimate = (text_len as f64 / cfg.bytes_per_token).ceil() as u64;
                let (tokens, values) = if profiled {
                    match joined.remove(&(fi, line)) {
                        Some((pid, vals)) => {
                            if pid != id {
                                bail!(
                                    "{where_}: document id '{id}' but the profile row for this line has id '{pid}': the data changed since it was profiled",
                                );
                            }
                            let t = tokens_col.and_then(|k| vals[k]).unwrap_or(0.0) as u64;
                            (t, Some(vals))
                        }
                        None => {
                            if strict {
                                bail!(
                                    "{where_}: document '{id}' has no profile row (source '{}')",
                                    s.name
                                );
                            }
                            rep.read.add(estimate);
                            rep.no_profile.add(estimate);
                            return Ok(());
                        }
                    }
                } else {
                    (estimate, None)
                };
                rep.read.add(tokens);
                local.push(Doc {
                    source: si,
                    file: gi,
                    line,
                    id,
                    occ: this_occ,
                    tokens,
                    values,
                    weight: 1.0,
                });
                Ok(())
            })?;
        }
        rep.profile_rows_without_document = joined.len() as u64;
        rep.profile_rows_matched = rows_total - joined.len() as u64;

        // Filters, in order.
        let score_of = |d: &Doc, name: &str| -> Option<f64> {
            let k = names.iter().position(|(n, _)| n == name)?;
            d.values.as_ref().and_then(|v| v[k])
        };
        for (j, f) in s.filter.iter().enumerate() {
            let mut keep = vec![false; local.len()];
            if f.min.is_some() || f.max.is_some() {
                for (i, d) in local.iter().enumerate() {
                    keep[i] = score_of(d, &f.score).is_some_and(|x| {
                        f.min.is_none_or(|m| x >= m) && f.max.is_none_or(|m| x <= m)
                    });
                }
            } else {
                let (frac, top) = match (f.top_fraction, f.bottom_fraction) {
                    (Some(x), _) => (x, true),
                    (_, Some(x)) => (x, false),
                    _ => unreachable!("checked when parsed"),
                };
                let mut scored: Vec<(f64, usize)> = local
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| score_of(d, &f.score).map(|x| (x, i)))
                    .collect();
                scored.sort_by(|a, b| {
                    let o = if top {
                        b.0.total_cmp(&a.0)
                    } else {
                        a.0.total_cmp(&b.0)
                    };
                    o.then_with(|| {
                        (&local[a.1].id, local[a.1].occ).cmp(&(&local[b.1].id, local[b.1].occ))
                    })
                });
                let n = ((frac * scored.len() as f64) - 1e-9).ceil().max(0.0) as usize;
                for &(_, i) in scored.iter().take(n) {
                    keep[i] = true;
                }
            }
            let mut next = Vec::with_capacity(local.len());
            for (d, k) in local.into_iter().zip(keep) {
                if k {
                    next.push(d);
                } else {
                    rep.filters[j].dropped.add(d.tokens);
                    dropped.push((j, d));
                }
            }
            local = next;
        }

        // Weights, normalised to mean 1.
        if let Some(w) = &s.weight {
            let raw: Vec<Option<f64>> = local
                .iter()
                .map(|d| {
                    score_of(d, &w.score).map(|x| match w.clip {
                        Some([lo, hi]) => x.clamp(lo, hi),
                        None => x,
                    })
                })
                .collect();
            let floor = match w.clip {
                Some([lo, _]) => lo,
                None => raw.iter().flatten().copied().fold(f64::INFINITY, f64::min),
            };
            let vals: Vec<f64> = raw
                .iter()
                .map(|x| x.unwrap_or(floor).powf(w.power))
                .collect();
            if let Some(bad) = vals.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                bail!(
                    "{}",
                    key_err(
                        &label,
                        &format!("source[{si}].weight"),
                        format!("gives a weight of {bad}: weights must be finite and > 0 (set clip = [low, high] with low > 0)")
                    )
                );
            }
            let mean = vals.iter().sum::<f64>() / vals.len().max(1) as f64;
            for (d, v) in local.iter_mut().zip(&vals) {
                d.weight = v / mean;
            }
            if !vals.is_empty() {
                let ws: Vec<f64> = local.iter().map(|d| d.weight).collect();
                let mut m = BTreeMap::new();
                m.insert("min", ws.iter().copied().fold(f64::INFINITY, f64::min));
                m.insert("max", ws.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                m.insert("raw_mean", mean);
                rep.weight = Some(m);
            }
        }
        for d in &local {
            rep.kept.add(d.tokens);
        }
        docs.extend(local);
        reports.push(rep);
        score_names.push(names);
    }

    // Targets.
    let kept_of = |general: bool| -> f64 {
        reports
            .iter()
            .filter(|r| r.general == general)
            .map(|r| r.kept.tokens as f64)
            .sum()
    };
    let (k_spec, k_gen) = (kept_of(false), kept_of(true));
    let total_target = match (cfg.token_budget, cfg.general_ratio) {
        (Some(b), _) => b as f64,
        (None, None) => k_spec + k_gen,
        (None, Some(r)) => {
            let a = if r < 1.0 {
                k_spec / (1.0 - r)
            } else {
                f64::INFINITY
            };
            let b = if r > 0.0 { k_gen / r } else { f64::INFINITY };
            a.min(b)
        }
    };
    for rep in reports.iter_mut() {
        let k = rep.kept.tokens as f64;
        rep.target_tokens = match cfg.general_ratio {
            None => {
                let all = k_spec + k_gen;
                if all > 0.0 {
                    total_target * k / all
                } else {
                    0.0
                }
            }
            Some(r) => {
                let (share, group) = if rep.general {
                    (r, k_gen)
                } else {
                    (1.0 - r, k_spec)
                };
                if group > 0.0 {
                    total_target * share * k / group
                } else {
                    0.0
                }
            }
        };
    }

    // Sampling per source.
    let mut selected: Vec<usize> = Vec::new();
    for (si, s) in cfg.sources.iter().enumerate() {
        let target = reports[si].target_tokens;
        let mut mine: Vec<(f64, usize)> = docs
            .iter()
            .enumerate()
            .filter(|(_, d)| d.source == si)
            .map(|(i, d)| {
                let u = unit(hash_u64(cfg.seed, "sample", &s.name, &d.id, d.occ));
                (u.ln() / d.weight, i)
            })
            .collect();
        let kept = reports[si].kept.tokens as f64;
        if kept <= target * (1.0 + 1e-12) {
            selected.extend(mine.iter().map(|x| x.1));
        } else {
            mine.sort_by(|a, b| {
                b.0.total_cmp(&a.0).then_with(|| {
                    (&docs[a.1].id, docs[a.1].occ).cmp(&(&docs[b.1].id, docs[b.1].occ))
                })
            });
            let mut cum = 0.0;
            for &(_, i) in &mine {
                if cum >= target {
                    break;
                }
                let t = docs[i].tokens as f64;
                if cum + t <= target {
                    cum += t;
                    selected.push(i);
                } else {
                    if cum + t - target <= target - cum {
                        selected.push(i);
                    }
                    break;
                }
            }
        }
        let rep = &mut reports[si];
        for &i in selected.iter().filter(|&&i| docs[i].source == si) {
            rep.selected.add(docs[i].tokens);
        }
        rep.shortfall_tokens = (target - rep.selected.tokens as f64).max(0.0);
        if rep.shortfall_tokens
            > docs
                .iter()
                .filter(|d| d.source == si)
                .map(|d| d.tokens)
                .max()
                .unwrap_or(0) as f64
        {
            tracing::warn!(
                "source '{}': {} kept tokens fall {:.0} tokens short of its target {:.0}",
                s.name,
                rep.kept.tokens,
                rep.shortfall_tokens,
                target
            );
        }
    }

    Ok(Plan {
        files,
        profile_files,
        docs,
        dropped,
        reports,
        score_names,
        selected,
        total_target,
    })
}

/// Runs a selection from a config file.
pub fn run_select(config_path: &Path, opts: &SelectOptions) -> Result<SelectOutcome> {
    let label = config_path.display().to_string();
    let text =
        std::fs::read_to_string(config_path).with_context(|| format!("reading config {label}"))?;
    let cfg = parse_config(&text, &label)?;
    if opts.shard_size == 0 {
        bail!("--shard-size must be > 0");
    }
    let config_sha = hex(&Sha256::digest(text.as_bytes()));
    let Plan {
        files,
        profile_files,
        docs,
        reports,
        score_names,
        selected,
        total_target,
        ..
    } = plan(&cfg, &label, opts.strict)?;

    // Output order.
    let mut order: Vec<(u64, usize)> = selected
        .iter()
        .map(|&i| {
            let d = &docs[i];
            (
                hash_u64(cfg.seed, "order", &cfg.sources[d.source].name, &d.id, d.occ),
                i,
            )
        })
        .collect();
    order.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (docs[a.1].file, docs[a.1].line).cmp(&(docs[b.1].file, docs[b.1].line)))
    });

    // Second pass: the selected records, decorated.
    let mut wanted: HashMap<(usize, u64), usize> = HashMap::new();
    for (pos, &(_, i)) in order.iter().enumerate() {
        wanted.insert((docs[i].file, docs[i].line), pos);
    }
    let mut out_rows: Vec<Option<Map<String, Value>>> = vec![None; order.len()];
    for (gi, (si, path, shown)) in files.iter().enumerate() {
        if !wanted.keys().any(|k| k.0 == gi) {
            continue;
        }
        let names = &score_names[*si];
        for_each_record(path, |line, rec| {
            let Some(&pos) = wanted.get(&(gi, line)) else {
                return Ok(());
            };
            let mut rec =
                rec.map_err(|m| anyhow!("{shown}:{line}: {m} (the file changed during the run?)"))?;
            let d = &docs[order[pos].1];
            let mut h = Map::new();
            h.insert("source".into(), json!(cfg.sources[*si].name));
            match &d.values {
                Some(vals) => {
                    for ((n, int), v) in names.iter().zip(vals) {
                        let v = match v {
                            None => Value::Null,
                            Some(x) if *int && x.fract() == 0.0 && x.abs() < 9e15 => {
                                json!(*x as i64)
                            }
                            Some(x) => json!(x),
                        };
                        h.insert(n.clone(), v);
                    }
                }
                None => {
                    h.insert("tokens_estimated".into(), json!(d.tokens));
                }
            }
            rec.insert("weight".into(), json!(d.weight));
            match rec.get_mut("metadata") {
                Some(Value::Object(m)) => {
                    m.insert("hesnr".into(), Value::Object(h));
                }
                None | Some(Value::Null) => {
                    let mut m = Map::new();
                    m.insert("hesnr".into(), Value::Object(h));
                    rec.insert("metadata".into(), Value::Object(m));
                }
                Some(_) => {
                    bail!("{shown}:{line}: `metadata` is not an object; cannot add the scores")
                }
            }
            out_rows[pos] = Some(rec);
            Ok(())
        })?;
    }
    let out_rows: Vec<Map<String, Value>> = out_rows
        .into_iter()
        .enumerate()
        .map(|(pos, r)| {
            r.ok_or_else(|| {
                let d = &docs[order[pos].1];
                anyhow!(
                    "{}:{}: record vanished on the second read",
                    files[d.file].2,
                    d.line
                )
            })
        })
        .collect::<Result<_>>()?;

    // Shards.
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let schema = infer_schema(&out_rows);
    let n_shards = out_rows.len().div_ceil(opts.shard_size).max(1);
    let mut outputs = Vec::new();
    let mut written = HashSet::new();
    for k in 0..n_shards {
        let rows = &out_rows[(k * opts.shard_size).min(out_rows.len())
            ..((k + 1) * opts.shard_size).min(out_rows.len())];
        let name = format!("selected-{k:05}.jsonl");
        let mut w = Hashing::new(AtomicFile::create(&opts.out.join(&name))?);
        for r in rows {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        let (f, sha, bytes) = w.finish();
        f.commit()?;
        outputs.push(json!({"path": name, "format": "jsonl", "rows": rows.len(), "bytes": bytes, "sha256": sha}));
        written.insert(name);

        let name = format!("selected-{k:05}.parquet");
        let (sha, bytes) = write_parquet(&opts.out.join(&name), &schema, rows)?;
        outputs.push(json!({"path": name, "format": "parquet", "rows": rows.len(), "bytes": bytes, "sha256": sha}));
        written.insert(name);
    }
    // Shards of an earlier, larger run in the same directory would look like part of this one.
    if let Ok(rd) = std::fs::read_dir(&opts.out) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let stale = n.starts_with("selected-")
                && (n.ends_with(".jsonl") || n.ends_with(".parquet"))
                && !written.contains(&n);
            if stale {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    // Inputs.
    let mut doc_inputs = Vec::new();
    for (si, p, shown) in &files {
        let (sha, bytes) = sha256_file(p)?;
        doc_inputs.push(
            json!({"source": cfg.sources[*si].name, "path": shown, "bytes": bytes, "sha256": sha}),
        );
    }
    let mut pfiles: Vec<PathBuf> = profile_files.iter().flatten().cloned().collect();
    pfiles.sort();
    pfiles.dedup();
    let mut pf_list = Vec::new();
    for p in &pfiles {
        let (sha, bytes) = sha256_file(p)?;
        pf_list.push(json!({"path": p.display().to_string(), "bytes": bytes, "sha256": sha}));
    }
    let pf_doc = json!({
        "note": "The profile files of this selection. The manifest records the joined profile rows (profile_rows_sha256 per source) instead, so that it does not depend on how the profile was sharded.",
        "files": pf_list,
    });
    let mut f = AtomicFile::create(&opts.out.join("profile-files.json"))?;
    serde_json::to_writer_pretty(&mut f, &pf_doc)?;
    f.write_all(b"\n")?;
    f.commit()?;

    let bucket = |general: Option<bool>| -> Value {
        let mut read = Count::default();
        let mut kept = Count::default();
        let mut sel = Count::default();
        let mut no_profile = Count::default();
        let mut filtered = Count::default();
        for r in reports
            .iter()
            .filter(|r| general.is_none_or(|g| r.general == g))
        {
            read = read.plus(r.read);
            kept = kept.plus(r.kept);
            sel = sel.plus(r.selected);
            no_profile = no_profile.plus(r.no_profile);
            for f in &r.filters {
                filtered = filtered.plus(f.dropped);
            }
        }
        json!({"read": read, "no_profile": no_profile, "dropped_by_filters": filtered, "kept": kept, "selected": sel})
    };
    let sel_total: u64 = reports.iter().map(|r| r.selected.tokens).sum();
    let sel_general: u64 = reports
        .iter()
        .filter(|r| r.general)
        .map(|r| r.selected.tokens)
        .sum();
    let manifest = json!({
        "hesnr_version": env!("CARGO_PKG_VERSION"),
        "command": "select",
        "seed": cfg.seed,
        "config": {"path": label, "sha256": config_sha, "text": text, "parsed": cfg},
        "options": {"shard_size": opts.shard_size, "strict": opts.strict},
        "inputs": {
            "documents": doc_inputs,
            "profile_files": "profile-files.json",
        },
        "targets": {
            "token_budget": cfg.token_budget,
            "general_ratio": cfg.general_ratio,
            "total_tokens": total_target,
            "specialist_tokens": reports.iter().filter(|r| !r.general).map(|r| r.target_tokens).sum::<f64>(),
            "general_tokens": reports.iter().filter(|r| r.general).map(|r| r.target_tokens).sum::<f64>(),
        },
        "sources": reports,
        "buckets": {
            "specialist": bucket(Some(false)),
            "general": bucket(Some(true)),
            "total": bucket(None),
        },
        "selected": {
            "documents": out_rows.len(),
            "tokens": sel_total,
            "general_share": if sel_total > 0 { sel_general as f64 / sel_total as f64 } else { 0.0 },
        },
        "outputs": outputs,
    });
    let mut f = AtomicFile::create(&opts.out.join("manifest.json"))?;
    serde_json::to_writer_pretty(&mut f, &manifest)?;
    f.write_all(b"\n")?;
    f.commit()?;
    Ok(SelectOutcome { manifest })
}

/// A writer that hashes and counts what passes through.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Null,
    Str,
    Int,
    Float,
    Bool,
    Json,
}

/// Columns of the Parquet shards: top-level keys in first-seen order; scalars of one type keep
/// it (integers mixed with floats become floats), anything else is a JSON string.
fn infer_schema(rows: &[Map<String, Value>]) -> Vec<(String, Kind)> {
    let mut cols: Vec<(String, Kind)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in rows {
        for (k, v) in r {
            let kind = match v {
                Value::Null => Kind::Null,
                Value::String(_) => Kind::Str,
                Value::Number(n) if n.is_i64() => Kind::Int,
                Value::Number(_) => Kind::Float,
                Value::Bool(_) => Kind::Bool,
                _ => Kind::Json,
            };
            let i = *index.entry(k.clone()).or_insert_with(|| {
                cols.push((k.clone(), Kind::Null));
                cols.len() - 1
            });
            let cur = cols[i].1;
            cols[i].1 = match (cur, kind) {
                (a, Kind::Null) => a,
                (Kind::Null, b) => b,
                (a, b) if a == b => a,
                (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
                _ => Kind::Json,
            };
        }
    }
    for c in cols.iter_mut() {
        if c.1 == Kind::Null {
            c.1 = Kind::Str;
        }
    }
    cols
}

fn write_parquet(
    path: &Path,
    cols: &[(String, Kind)],
    rows: &[Map<String, Value>],
) -> Result<(String, u64)> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, kind) in cols {
        fn field<'a>(r: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
            r.get(name).filter(|v| !v.is_null())
        }
        let get = |r| field(r, name);
        let (dt, arr): (DataType, ArrayRef) = match kind {
            Kind::Int => {
                let mut b = Int64Builder::new();
                rows.iter()
                    .for_each(|r| b.append_option(get(r).and_then(Value::as_i64)));
                (DataType::Int64, Arc::new(b.finish()))
            }
            Kind::Float => {
                let mut b = Float64Builder::new();
                rows.iter()
                    .for_each(|r| b.append_option(get(r).and_then(Value::as_f64)));
                (DataType::Float64, Arc::new(b.finish()))
            }
            Kind::Bool => {
                let mut b = BooleanBuilder::new();
                rows.iter()
                    .for_each(|r| b.append_option(get(r).and_then(Value::as_bool)));
                (DataType::Boolean, Arc::new(b.finish()))
            }
            Kind::Str | Kind::Null => {
                let mut b = StringBuilder::new();
                rows.iter()
                    .for_each(|r| b.append_option(get(r).and_then(Value::as_str)));
                (DataType::Utf8, Arc::new(b.finish()))
            }
            Kind::Json => {
                let mut b = StringBuilder::new();
                for r in rows {
                    b.append_option(get(r).map(|v| serde_json::to_string(v).expect("JSON value")));
                }
                (DataType::Utf8, Arc::new(b.finish()))
            }
        };
        fields.push(Field::new(name, dt, true));
        arrays.push(arr);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = if cols.is_empty() {
        RecordBatch::new_empty(schema.clone())
    } else {
        RecordBatch::try_new(schema.clone(), arrays)?
    };
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(3)?,
        ))
        .build();
    let file = Hashing::new(AtomicFile::create(path)?);
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))?;
    if batch.num_rows() > 0 {
        w.write(&batch)?;
    }
    let (f, sha, bytes) = w.into_inner()?.finish();
    f.commit()?;
    Ok((sha, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
seed = 3
token_budget = 1000
general_ratio = 0.3
[[source]]
name = "code"
documents = ["a.jsonl"]
profile = "p.parquet"
filter = [{ score = "decision_density", min = 0.02 }, { score = "he_snr", top_fraction = 0.5 }]
weight = { score = "decision_density", clip = [0.01, 0.2] }
[[source]]
name = "general"
general = true
documents = "g.jsonl"
"#;

    #[test]
    fn parses_a_config() {
        let c = parse_config(OK, "c.toml").unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.token_budget, Some(1000));
        assert_eq!(c.general_ratio, Some(0.3));
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].filter[1].top_fraction, Some(0.5));
        assert_eq!(
            c.sources[0].weight.as_ref().unwrap().clip,
            Some([0.01, 0.2])
        );
        assert!(c.sources[1].general);
        assert_eq!(c.sources[1].documents, vec!["g.jsonl"]);
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse_config(text, "c.toml").unwrap_err())
    }

    #[test]
    fn bad_configs_name_the_key() {
        let e = err(&OK.replace("top_fraction = 0.5", "top_fraction = 0.5, min = 1"));
        assert!(
            e.contains("c.toml") && e.contains("source[0].filter[1]") && e.contains("min"),
            "{e}"
        );
        let e = err(&OK.replace("general_ratio = 0.3", "general_ratio = 1.3"));
        assert!(
            e.contains("`general_ratio`") && e.contains("outside [0, 1]"),
            "{e}"
        );
        let e = err(&OK.replace("top_fraction = 0.5", "top_fraction = -0.1"));
        assert!(e.contains("source[0].filter[1].top_fraction"), "{e}");
        let e = err(&OK.replace("token_budget", "token_budgt"));
        assert!(
            e.contains("`token_budgt`") && e.contains("unknown key"),
            "{e}"
        );
        let e = err(&OK.replace("clip = [0.01, 0.2]", "clip = [0.0, 0.2]"));
        assert!(e.contains("source[0].weight.clip"), "{e}");
        let e = err(&OK.replace("general = true", "general = false"));
        assert!(
            e.contains("`general_ratio`") && e.contains("no source"),
            "{e}"
        );
        let e = err(&OK.replace("profile = \"p.parquet\"", ""));
        assert!(
            e.contains("source[0].filter") && e.contains("profile"),
            "{e}"
        );
    }

    #[test]
    fn hash_is_stable_and_uniform_enough() {
        let a = hash_u64(1, "sample", "code", "x", 0);
        assert_eq!(a, hash_u64(1, "sample", "code", "x", 0));
        assert_ne!(a, hash_u64(2, "sample", "code", "x", 0));
        let mean: f64 = (0..2000)
            .map(|i| unit(hash_u64(7, "t", "s", &i.to_string(), 0)))
            .sum::<f64>()
            / 2000.0;
        assert!((mean - 0.5).abs() < 0.03, "{mean}");
    }

    #[test]
    fn schema_inference_merges_types() {
        let rows: Vec<Map<String, Value>> = [
            json!({"id": "a", "n": 1, "x": 1, "m": {"k": 1}, "z": null}),
            json!({"id": "b", "n": 2.5, "x": "s", "m": {"k": 2}}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let s = infer_schema(&rows);
        let kinds: Vec<Kind> = s.iter().map(|c| c.1).collect();
        assert_eq!(
            kinds,
            vec![Kind::Str, Kind::Float, Kind::Json, Kind::Json, Kind::Str]
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
}
