//! The selected rows and the files they go to: output order, the records decorated with their
//! weight and scores, JSONL and Parquet shards (with the Parquet schema inferred from the rows),
//! and the hashes the manifest records.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::config::SelectConfig;
use super::error::SelectError;
use super::manifest::OutputFile;
use super::plan::{hash_u64, Plan};
use super::read::{for_each_record, reader_options};
use crate::data::digest::hex;
use crate::data::AtomicFile;

/// SHA-256 (hex) and size of a file, as the manifest records them.
pub(crate) fn sha256_file(path: &Path) -> Result<(String, u64), SelectError> {
    crate::data::digest::sha256_file(path).map_err(|source| SelectError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Indices into `plan.docs` of the selected documents in output order: ascending SHA-256 of
/// (seed, "order", source name, id, occurrence), ties by file and line.
pub(crate) fn output_order(cfg: &SelectConfig, plan: &Plan) -> Vec<usize> {
    let docs = &plan.docs;
    let mut order: Vec<(u64, usize)> = plan
        .selected
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
    order.into_iter().map(|x| x.1).collect()
}

/// The selected records, read again from their files, in `order`, each with its `weight` and,
/// under `metadata.hesnr`, its source and scores (or its token estimate).
pub(crate) fn decorated_rows(
    cfg: &SelectConfig,
    plan: &Plan,
    order: &[usize],
) -> Result<Vec<Map<String, Value>>, SelectError> {
    let docs = &plan.docs;
    let mut wanted: HashMap<(usize, u64), usize> = HashMap::new();
    for (pos, &i) in order.iter().enumerate() {
        wanted.insert((docs[i].file, docs[i].line), pos);
    }
    let mut out_rows: Vec<Option<Map<String, Value>>> = vec![None; order.len()];
    for (gi, (si, path, shown)) in plan.files.iter().enumerate() {
        if !wanted.keys().any(|k| k.0 == gi) {
            continue;
        }
        let names = &plan.score_names[*si];
        let source = &cfg.sources[*si];
        let opts = reader_options(&source.text_field, &source.id_field);
        for_each_record(path, &opts, |line, rec| {
            let Some(&pos) = wanted.get(&(gi, line)) else {
                return Ok(());
            };
            let mut rec = rec.map_err(|message| SelectError::RecordChanged {
                file: shown.clone(),
                line,
                message,
            })?;
            let d = &docs[order[pos]];
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
                    return Err(SelectError::MetadataNotObject {
                        file: shown.clone(),
                        line,
                    })
                }
            }
            out_rows[pos] = Some(rec);
            Ok(())
        })?;
    }
    out_rows
        .into_iter()
        .enumerate()
        .map(|(pos, r)| {
            r.ok_or_else(|| {
                let d = &docs[order[pos]];
                SelectError::RecordVanished {
                    file: plan.files[d.file].2.clone(),
                    line: d.line,
                }
            })
        })
        .collect()
}

/// Writes `rows` as `selected-NNNNN.jsonl` and `.parquet` shards of `shard_size` rows into
/// `out` (one empty pair for no rows), removes the shards of an earlier, larger run there, and
/// returns the files written.
pub(crate) fn write_shards(
    out: &Path,
    rows: &[Map<String, Value>],
    shard_size: usize,
) -> Result<Vec<OutputFile>, SelectError> {
    std::fs::create_dir_all(out).map_err(|source| SelectError::CreateDir {
        path: out.to_path_buf(),
        source,
    })?;
    let schema = infer_schema(rows);
    let n_shards = rows.len().div_ceil(shard_size).max(1);
    let mut outputs = Vec::new();
    let mut written = HashSet::new();
    for k in 0..n_shards {
        let rows = &rows[(k * shard_size).min(rows.len())..((k + 1) * shard_size).min(rows.len())];
        let name = format!("selected-{k:05}.jsonl");
        let mut w = Hashing::new(AtomicFile::create(&out.join(&name))?);
        for r in rows {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        let (f, sha256, bytes) = w.finish();
        f.commit()?;
        outputs.push(OutputFile {
            path: name.clone(),
            format: "jsonl".into(),
            rows: rows.len() as u64,
            bytes,
            sha256,
        });
        written.insert(name);

        let name = format!("selected-{k:05}.parquet");
        let (sha256, bytes) = write_parquet(&out.join(&name), &schema, rows)?;
        outputs.push(OutputFile {
            path: name.clone(),
            format: "parquet".into(),
            rows: rows.len() as u64,
            bytes,
            sha256,
        });
        written.insert(name);
    }
    // Shards of an earlier, larger run in the same directory would look like part of this one.
    if let Ok(rd) = std::fs::read_dir(out) {
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
    Ok(outputs)
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
) -> Result<(String, u64), SelectError> {
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
}
