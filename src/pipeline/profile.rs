//! `hesnr profile`: one row of scores per document of a whole corpus (data guidance, method.md
//! "How it is used"), sharded, streamed and resumable; and `hesnr merge`, which combines the
//! shards of a run into one Parquet file sorted by document index.
//!
//! * **Index.** Every document read from the inputs (in input order; records that cannot be read
//!   are not documents) gets a global index g = 0, 1, ...; shard i of N profiles the documents
//!   with g % N == i. Reading errors are attributed the same way by their own ordinal, so each is
//!   counted by exactly one shard.
//! * **Parts.** Rows go to `DIR/.parts/{i:05}-of-{N:05}/part-{p:06}.parquet`, each written
//!   atomically after `part_size` documents or `part_seconds`, whichever comes first. A part
//!   holds the rows of the indices it covers, and in its key-value metadata (`hesnr.part`) the
//!   indices whose scoring failed. A re-run skips every index already in a part, so a run killed
//!   at any point and re-run yields exactly the rows of an uninterrupted run.
//! * **Completion.** At the end the parts are merged by index into
//!   `DIR/profile-{i:05}-of-{N:05}.parquet`, then `...stats.json` is written (the shard's
//!   completion marker) and the parts are removed.
//! * **Determinism.** Output files are written in row groups of exactly [`ROW_GROUP_ROWS`] rows
//!   (the last one shorter) whatever batches they were assembled from, so the merged file of a
//!   run is byte-identical for any shard count.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::proxy_columns::{ProxyColumns, ProxyValues};
use super::run::{Flow, Outcome, Reporter, Stopped, Unit, Worked};
use super::score::{score_text, ScoreSettings};
use super::skips::MAX_REASONS_KEPT;
use crate::data::digest::hex;
use crate::data::{self, write_json_atomic, AtomicFile, Document, ReaderOptions};
use crate::engine::Backend;
use crate::metrics::{Metric, Summary};

/// Rows per row group of every file written (parts, shards, merged).
pub const ROW_GROUP_ROWS: usize = 8192;
/// Rows decoded per batch when reading parts and shards back.
const READ_BATCH_ROWS: usize = 4096;
/// Parquet key-value metadata of a part file: its failed documents and timing.
const PART_META_KEY: &str = "hesnr.part";

// ---------------------------------------------------------------------------------------------
// Inputs

/// Expands inputs into the files to read, in order (files, directories, glob patterns: see
/// [`crate::data::expand_inputs`]). Stdin is refused: a run must be re-readable to shard and
/// resume. The list is part of the run's fingerprint.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    ensure!(
        !inputs.iter().any(|p| p.as_os_str() == "-"),
        "hesnr profile cannot read stdin (a run must be re-readable to shard and resume)"
    );
    Ok(data::expand_inputs(inputs)?)
}

// ---------------------------------------------------------------------------------------------
// Shards

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// Parses `i/N`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected i/N (e.g. 3/16), got '{s}'"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("bad shard index '{i}'"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("bad shard count '{n}'"))?;
        Shard::new(index, count)
    }

    pub fn new(index: usize, count: usize) -> Result<Shard, String> {
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= i < N"));
        }
        Ok(Shard { index, count })
    }

    /// The shard of a Slurm array task: `SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN` (min
    /// defaults to 0) of `SLURM_ARRAY_TASK_COUNT`; `None` outside an array job.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
        let Some(id) = get("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let num = |name: &str, v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{name}='{v}' is not a number"))
        };
        let id = num("SLURM_ARRAY_TASK_ID", &id)?;
        let min = match get("SLURM_ARRAY_TASK_MIN") {
            Some(v) => num("SLURM_ARRAY_TASK_MIN", &v)?,
            None => 0,
        };
        let count = match (get("SLURM_ARRAY_TASK_COUNT"), get("SLURM_ARRAY_TASK_MAX")) {
            (Some(v), _) => num("SLURM_ARRAY_TASK_COUNT", &v)?,
            (None, Some(max)) => num("SLURM_ARRAY_TASK_MAX", &max)? + 1 - min,
            (None, None) => {
                return Err("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not".into())
            }
        };
        ensure_ok(id >= min, || {
            format!("SLURM_ARRAY_TASK_ID {id} < SLURM_ARRAY_TASK_MIN {min}")
        })?;
        Shard::new(id - min, count).map(Some)
    }

    /// `profile-{i:05}-of-{N:05}`.
    pub fn stem(&self) -> String {
        format!("profile-{:05}-of-{:05}", self.index, self.count)
    }

    pub fn parquet_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.parquet", self.stem()))
    }

    pub fn stats_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.stats.json", self.stem()))
    }

    pub fn parts_dir(&self, dir: &Path) -> PathBuf {
        dir.join(".parts")
            .join(format!("{:05}-of-{:05}", self.index, self.count))
    }
}

fn ensure_ok(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

// ---------------------------------------------------------------------------------------------
// Rows and the Parquet schema

/// One document's scores.
#[derive(Debug, Clone)]
pub struct ProfileRow {
    pub id: String,
    pub source: String,
    pub line: u64,
    pub index: u64,
    pub tokens: u64,
    pub metrics: Summary,
    /// The same document under the reference model.
    pub reference: Option<Summary>,
    /// Registry metrics asked for (`--metrics`), in the schema's order.
    pub proxy: ProxyValues,
}

/// The count columns, after the document's `tokens`.
const COUNTS: [Metric; 2] = [Metric::ScoredTokens, Metric::DecisionTokens];
/// The float columns of the main model, then `order_share_1..k`.
const FLOATS: [Metric; 7] = [
    Metric::DecisionDensity,
    Metric::HeSnr,
    Metric::HePpl,
    Metric::MeanH10,
    Metric::MeanNll,
    Metric::Ppl,
    Metric::Top1Acc,
];
/// The metrics of the reference model: `ref_<name>` columns, then `delta_<name>` (main minus
/// reference) columns.
const REF_FLOATS: [Metric; 3] = [Metric::HeSnr, Metric::MeanNll, Metric::DecisionDensity];

fn float_columns(k: usize, with_ref: bool) -> Vec<String> {
    let mut v: Vec<String> = FLOATS.iter().map(|m| m.name().to_string()).collect();
    v.extend((1..=k).map(|m| format!("order_share_{m}")));
    if with_ref {
        for prefix in ["ref_", "delta_"] {
            v.extend(REF_FLOATS.iter().map(|m| format!("{prefix}{m}")));
        }
    }
    v
}

/// The schema of profile rows for candidate-set size `k`, with or without reference columns,
/// then one column per registry metric asked for (`proxy`, names).
pub fn profile_schema(k: usize, with_ref: bool, proxy: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("line", DataType::UInt64, false),
        Field::new("index", DataType::UInt64, false),
        Field::new("tokens", DataType::UInt64, false),
    ];
    fields.extend(
        COUNTS
            .iter()
            .map(|m| Field::new(m.name(), DataType::UInt64, false)),
    );
    fields.extend(
        float_columns(k, with_ref)
            .into_iter()
            .chain(proxy.iter().cloned())
            .map(|n| Field::new(n, DataType::Float64, true)),
    );
    Arc::new(Schema::new(fields))
}

fn row_floats(r: &ProfileRow, k: usize, with_ref: bool) -> Vec<Option<f64>> {
    let m = &r.metrics;
    let mut v: Vec<Option<f64>> = FLOATS.iter().map(|f| f.value(m)).collect();
    v.extend((0..k).map(|j| {
        (m.scored_tokens > 0)
            .then(|| m.order_shares.get(j).copied())
            .flatten()
    }));
    if with_ref {
        let reference = REF_FLOATS.map(|f| r.reference.as_ref().and_then(|s| f.value(s)));
        v.extend(reference);
        v.extend(
            REF_FLOATS
                .iter()
                .zip(reference)
                .map(|(f, rv)| Some(f.value(m)? - rv?)),
        );
    }
    v
}

/// Rows as one record batch of `schema` (from [`profile_schema`]).
pub fn rows_to_batch(rows: &[ProfileRow], schema: &SchemaRef) -> Result<RecordBatch> {
    let with_ref = schema.column_with_name("ref_he_snr").is_some();
    let k = schema
        .fields()
        .iter()
        .filter(|f| f.name().starts_with("order_share_"))
        .count();
    let u = |f: &dyn Fn(&ProfileRow) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(f)))
    };
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.id))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &r.source),
        )),
        u(&|r| r.line),
        u(&|r| r.index),
        u(&|r| r.tokens),
    ];
    cols.extend(COUNTS.map(|m| u(&|r| m.count(&r.metrics).expect("a count metric"))));
    let floats: Vec<Vec<Option<f64>>> = rows.iter().map(|r| row_floats(r, k, with_ref)).collect();
    let n = float_columns(k, with_ref).len();
    for c in 0..n {
        cols.push(Arc::new(Float64Array::from(
            floats.iter().map(|f| f[c]).collect::<Vec<_>>(),
        )));
    }
    // The registry metrics' columns: every field after the fixed ones.
    for field in &schema.fields()[cols.len()..] {
        cols.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.proxy.get(field.name())),
        )));
    }
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(format!("hesnr {}", env!("CARGO_PKG_VERSION")));
    for f in schema.fields() {
        if f.data_type() == &DataType::Float64 {
            b = b.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
        }
    }
    b.build()
}

/// An Arrow writer that hands the Parquet writer batches of exactly [`ROW_GROUP_ROWS`] rows,
/// whatever it is given, so that files with the same rows are byte-identical.
struct GroupedWriter<W: Write + Send> {
    inner: ArrowWriter<W>,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    rows: usize,
    written_rows: u64,
    tokens: u64,
}

impl<W: Write + Send> GroupedWriter<W> {
    fn new(out: W, schema: &SchemaRef) -> Result<Self> {
        Ok(Self {
            inner: ArrowWriter::try_new(out, schema.clone(), Some(writer_properties(schema)))?,
            schema: schema.clone(),
            pending: Vec::new(),
            rows: 0,
            written_rows: 0,
            tokens: 0,
        })
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // The batch as this file's schema (read-back schemas may carry metadata).
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        if let Some(t) = batch.column_by_name("tokens") {
            self.tokens += t.as_primitive::<UInt64Type>().values().iter().sum::<u64>();
        }
        self.rows += batch.num_rows();
        self.pending.push(batch);
        while self.rows >= ROW_GROUP_ROWS {
            let all = arrow_select::concat::concat_batches(&self.schema, &self.pending)?;
            self.inner.write(&all.slice(0, ROW_GROUP_ROWS))?;
            self.pending = vec![all.slice(ROW_GROUP_ROWS, all.num_rows() - ROW_GROUP_ROWS)];
            self.rows -= ROW_GROUP_ROWS;
            self.written_rows += ROW_GROUP_ROWS as u64;
        }
        Ok(())
    }

    fn append_metadata(&mut self, key: &str, value: String) {
        self.inner
            .append_key_value_metadata(KeyValue::new(key.to_string(), value));
    }

    /// Writes the rest and the footer; returns (rows, tokens).
    fn close(mut self) -> Result<(u64, u64)> {
        if self.rows > 0 {
            let all = arrow_select::concat::concat_batches(&self.schema, &self.pending)?;
            self.inner.write(&all)?;
            self.written_rows += all.num_rows() as u64;
        }
        self.inner.close()?;
        Ok((self.written_rows, self.tokens))
    }
}

fn open_reader(path: &Path) -> Result<(SchemaRef, Option<String>, ParquetRecordBatchReader)> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)
        .with_context(|| format!("reading {}", path.display()))?;
    let meta = b
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == PART_META_KEY))
        .and_then(|e| e.value.clone());
    let schema = Arc::new(Schema::new(b.schema().fields().clone()));
    let r = b.with_batch_size(READ_BATCH_ROWS).build()?;
    Ok((schema, meta, r))
}

fn index_column(b: &RecordBatch) -> Result<UInt64Array> {
    Ok(b.column_by_name("index")
        .context("no 'index' column")?
        .as_primitive_opt::<UInt64Type>()
        .context("'index' is not UInt64")?
        .clone())
}

/// What [`merge_sorted`] wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct MergeCount {
    pub rows: u64,
    pub tokens: u64,
}

/// Concatenates Parquet files of profile rows whose indices ascend across the files (the parts
/// of a shard in part order: every run continues after the parts already written), reading one
/// file at a time so that the number of parts does not matter. Fails if an index does not
/// ascend (a document scored twice).
pub fn concat_sorted<W: Write + Send>(
    inputs: &[PathBuf],
    schema: &SchemaRef,
    out: W,
) -> Result<MergeCount> {
    let mut w = GroupedWriter::new(out, schema)?;
    let mut last: Option<u64> = None;
    for p in inputs {
        let (s, _, reader) = open_reader(p)?;
        ensure!(
            s.fields() == schema.fields(),
            "{} has other columns than this run",
            p.display()
        );
        for b in reader {
            let b = b.with_context(|| format!("reading {}", p.display()))?;
            for &g in index_column(&b)?.values().iter() {
                ensure!(
                    last.is_none_or(|l| g > l),
                    "document index {g} appears twice or out of order ({})",
                    p.display()
                );
                last = Some(g);
            }
            w.write(b)?;
        }
    }
    let (rows, tokens) = w.close()?;
    Ok(MergeCount { rows, tokens })
}

/// Merges Parquet files of profile rows, each sorted by `index`, into one sorted file written
/// to `out`. An index seen twice is an error (a document scored twice).
pub fn merge_sorted<W: Write + Send>(
    inputs: &[PathBuf],
    schema: &SchemaRef,
    out: W,
) -> Result<MergeCount> {
    struct Src {
        path: PathBuf,
        reader: ParquetRecordBatchReader,
        batch: RecordBatch,
        idx: UInt64Array,
        pos: usize,
        done: bool,
    }
    let mut srcs = Vec::new();
    for p in inputs {
        let (s, _, reader) = open_reader(p)?;
        ensure!(
            s.fields() == schema.fields(),
            "{} has other columns than the rest of the run (different --k or --reference?)",
            p.display()
        );
        srcs.push(Src {
            path: p.clone(),
            reader,
            batch: RecordBatch::new_empty(schema.clone()),
            idx: UInt64Array::from(Vec::<u64>::new()),
            pos: 0,
            done: false,
        });
    }
    let mut w = GroupedWriter::new(out, schema)?;
    let mut sel: Vec<(usize, usize)> = Vec::new();
    let mut last: Option<(u64, usize)> = None;
    let flush = |srcs: &Vec<Src>, sel: &mut Vec<(usize, usize)>, w: &mut GroupedWriter<W>| {
        if sel.is_empty() {
            return Ok::<_, anyhow::Error>(());
        }
        let refs: Vec<&RecordBatch> = srcs.iter().map(|s| &s.batch).collect();
        let b = arrow_select::interleave::interleave_record_batch(&refs, sel)?;
        sel.clear();
        w.write(b)
    };
    loop {
        // Refill exhausted batches (after flushing rows that point into them).
        if srcs.iter().any(|s| !s.done && s.pos >= s.batch.num_rows()) {
            flush(&srcs, &mut sel, &mut w)?;
            for s in srcs.iter_mut() {
                while !s.done && s.pos >= s.batch.num_rows() {
                    match s.reader.next() {
                        Some(b) => {
                            let b = b.with_context(|| format!("reading {}", s.path.display()))?;
                            s.idx = index_column(&b)?;
                            s.batch = b;
                            s.pos = 0;
                        }
                        None => s.done = true,
                    }
                }
            }
        }
        let mut best: Option<(u64, usize)> = None;
        for (i, s) in srcs.iter().enumerate() {
            if !s.done {
                let g = s.idx.value(s.pos);
                if best.is_none_or(|(b, _)| g < b) {
                    best = Some((g, i));
                }
            }
        }
        let Some((g, i)) = best else { break };
        if let Some((lg, li)) = last {
            ensure!(
                g > lg,
                "document index {g} appears twice or out of order ({} and {})",
                srcs[li].path.display(),
                srcs[i].path.display()
            );
        }
        last = Some((g, i));
        sel.push((i, srcs[i].pos));
        srcs[i].pos += 1;
        if sel.len() >= ROW_GROUP_ROWS {
            flush(&srcs, &mut sel, &mut w)?;
        }
    }
    flush(&srcs, &mut sel, &mut w)?;
    let (rows, tokens) = w.close()?;
    Ok(MergeCount { rows, tokens })
}

// ---------------------------------------------------------------------------------------------
// Profiling one shard

/// One model and its window settings.
pub struct Scorer<'a> {
    pub backend: &'a mut dyn Backend,
    pub settings: ScoreSettings,
}

/// What to profile and where.
#[derive(Debug, Clone)]
pub struct ProfileJob {
    pub out_dir: PathBuf,
    /// Expanded input files (see [`expand_inputs`]).
    pub files: Vec<PathBuf>,
    pub reader: ReaderOptions,
    pub shard: Shard,
    /// Documents per part file.
    pub part_size: usize,
    /// Seconds after which a non-empty part is written even if not full.
    pub part_seconds: f64,
    /// Registry metrics asked for (`--metrics`): one more column each, after the others.
    pub proxy: ProxyColumns,
    /// The corpus their frequency weightings count tokens in (`--token-frequencies`), part of
    /// the run's identity by content.
    pub token_frequencies: Option<PathBuf>,
}

/// Indices recorded in a part besides its rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PartMeta {
    /// Documents whose scoring failed: (index, message).
    failed: Vec<(u64, String)>,
    /// Scoring time of the part's documents.
    seconds: f64,
}

/// The shard's completion record, `profile-{i}-of-{N}.stats.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardStats {
    pub shard: usize,
    pub shards: usize,
    /// Rows in the shard file.
    pub documents: u64,
    /// Records that could not be read, and documents that could not be scored.
    pub skipped: u64,
    /// The first skipped records, with file, line and reason.
    pub errors: Vec<String>,
    /// Documents of this shard whose id an earlier document of the shard already had.
    pub duplicate_ids: u64,
    /// Tokens of the shard's documents (main model).
    pub tokens: u64,
    /// Wall time of the run that completed the shard.
    pub seconds: f64,
    /// Scoring time summed over every run that contributed parts.
    pub scoring_seconds: f64,
    pub tokens_per_second: f64,
    /// Documents taken over from the parts of an interrupted run.
    pub resumed_documents: u64,
    pub model: Value,
    pub settings: Value,
    pub reference_model: Option<Value>,
    pub reference_settings: Option<Value>,
    /// Hash of inputs and settings (not of the shard): shards of one run share it.
    pub fingerprint: String,
    pub inputs: Vec<String>,
}

/// One document's scores, as the work function hands them to the sink.
struct Profiled {
    tokens: u64,
    metrics: Summary,
    reference: Option<Summary>,
    proxy: ProxyValues,
    /// Scoring time (summed per part, for the shard's throughput).
    seconds: f64,
}

impl Worked for Profiled {
    fn tokens(&self) -> u64 {
        self.tokens
    }
}

/// The run's identity: what must not change between an interrupted run and its re-run.
///
/// The inputs are described by their content (SHA-256), not only their names: a file changed in
/// place between a run and its resume would otherwise be resumed with rows indexed by the old
/// content (documents lost or doubled). Hashing is one more read of the inputs, which every shard
/// reads whole anyway.
pub fn run_description(
    job: &ProfileJob,
    main: &Scorer,
    reference: Option<&Scorer>,
) -> Result<Value> {
    let contents = job
        .files
        .iter()
        .map(|f| {
            crate::data::digest::sha256_file(f)
                .map(|(sha, _)| sha)
                .with_context(|| format!("reading {}", f.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let model = |s: &Scorer| {
        let i = s.backend.info();
        serde_json::json!({
            "sha256": i.sha256, "precision": i.precision, "add_bos": i.add_bos,
            "settings": s.settings,
        })
    };
    let mut desc = serde_json::json!({
        "version": 2,
        "inputs": job.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "input_sha256": contents,
        "text_field": job.reader.text_field,
        "id_field": job.reader.id_field,
        "shards": job.shard.count,
        "model": model(main),
        "reference": reference.map(model),
    });
    // Only when asked for, so that runs without them keep the identity they always had.
    if !job.proxy.metrics.is_empty() {
        let frequencies = job
            .token_frequencies
            .as_ref()
            .map(|f| {
                crate::data::digest::sha256_file(f)
                    .map(|(sha, _)| sha)
                    .with_context(|| format!("reading {}", f.display()))
            })
            .transpose()?;
        desc["metrics"] = serde_json::json!({
            "names": job.proxy.names(),
            "window": job.proxy.window,
            "token_frequencies_sha256": frequencies,
        });
    }
    Ok(desc)
}

pub fn fingerprint(desc: &Value) -> String {
    hex(&Sha256::digest(desc.to_string().as_bytes())[..16])
}

/// Sorted, disjoint, half-open index ranges.
#[derive(Default)]
struct IndexSet(Vec<(u64, u64)>);

impl IndexSet {
    fn from_sorted_runs(mut v: Vec<(u64, u64)>) -> Self {
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in v {
            match out.last_mut() {
                Some(l) if a <= l.1 => l.1 = l.1.max(b),
                _ => out.push((a, b)),
            }
        }
        IndexSet(out)
    }
    fn contains(&self, g: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 <= g);
        i < self.0.len() && self.0[i].0 <= g
    }
}

/// Collapses indices given in ascending order (with a step of `n`) into runs of one shard.
fn push_run(runs: &mut Vec<(u64, u64)>, g: u64) {
    runs.push((g, g + 1));
}

fn part_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    if !dir.is_dir() {
        return Ok(v);
    }
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("part-")
            .and_then(|s| s.strip_suffix(".parquet"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            v.push((n, dir.join(&name)));
        }
    }
    v.sort();
    Ok(v)
}

struct Resumed {
    done: IndexSet,
    files: Vec<PathBuf>,
    next_part: u64,
    rows: u64,
    failed: Vec<(u64, String)>,
    seconds: f64,
}

fn scan_parts(dir: &Path, shard: Shard) -> Result<Resumed> {
    let parts = part_files(dir)?;
    let mut runs = Vec::new();
    let mut rows = 0;
    let mut failed = Vec::new();
    let mut seconds = 0.0;
    for (_, p) in &parts {
        let (_, meta, reader) = open_reader(p)?;
        let meta: PartMeta = match meta {
            Some(m) => serde_json::from_str(&m)
                .with_context(|| format!("{}: bad part metadata", p.display()))?,
            None => bail!("{} is not a hesnr part file", p.display()),
        };
        for b in reader {
            let idx = index_column(&b?)?;
            rows += idx.len() as u64;
            // Within a part, indices are ascending and step by the shard count: one run each
            // would be wasteful, so keep stretches of consecutive shard indices together.
            let step = shard.count as u64;
            let mut cur: Option<(u64, u64)> = None;
            for &g in idx.values().iter() {
                cur = match cur {
                    Some((a, b)) if g == b - 1 + step => Some((a, g + 1)),
                    Some(r) => {
                        runs.push(r);
                        Some((g, g + 1))
                    }
                    None => Some((g, g + 1)),
                };
            }
            runs.extend(cur);
        }
        for (g, _) in &meta.failed {
            push_run(&mut runs, *g);
        }
        failed.extend(meta.failed);
        seconds += meta.seconds;
    }
    // Runs cover [first, last + 1) of a shard's indices; other shards' indices inside them are
    // never asked about, so the set answers exactly for this shard.
    Ok(Resumed {
        done: IndexSet::from_sorted_runs(runs),
        next_part: parts.last().map_or(0, |(n, _)| n + 1),
        files: parts.into_iter().map(|(_, p)| p).collect(),
        rows,
        failed,
        seconds,
    })
}

fn write_part(path: &Path, schema: &SchemaRef, rows: &[ProfileRow], meta: &PartMeta) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    {
        let mut w = GroupedWriter::new(&mut f, schema)?;
        w.append_metadata(PART_META_KEY, serde_json::to_string(meta)?);
        w.write(rows_to_batch(rows, schema)?)?;
        w.close()?;
    }
    f.commit()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A shard's run held exclusively: two `hesnr profile` runs of one shard in one folder (a
/// requeued Slurm task, a duplicated array task) would each rebuild the shard from their own
/// parts and the later one would overwrite the other's rows. The lock is the operating
/// system's advisory lock on `DIR/.profile-{i}-of-{n}.lock`, released when the process ends
/// however it ends, so a killed run never leaves a stale lock behind.
pub struct ShardLock {
    _file: std::fs::File,
}

/// Takes the shard's lock, or says who holds it.
pub fn lock_shard(out_dir: &Path, shard: Shard) -> Result<ShardLock> {
    use std::io::{Read, Seek, Write};
    let path = out_dir.join(format!(
        ".profile-{:05}-of-{:05}.lock",
        shard.index, shard.count
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "shard {}/{} of {} is being profiled by another run ({}); wait for it, or give this run another --out",
                shard.index,
                shard.count,
                out_dir.display(),
                match holder.trim() {
                    "" => "process unknown".to_string(),
                    h => h.to_string(),
                }
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
    // Who holds it, for the message another run shows.
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "pid {} {host}", std::process::id());
    Ok(ShardLock { _file: file })
}

/// Whether the shard was completed by an earlier run (its stats file exists).
pub fn shard_complete(out_dir: &Path, shard: Shard) -> bool {
    shard.stats_path(out_dir).is_file()
}

/// Profiles one shard: see the module docs. Resumes from the parts of an interrupted run with
/// the same inputs and settings, and refuses parts of a different run.
pub fn run_shard(
    job: &ProfileJob,
    main: &mut Scorer,
    mut reference: Option<&mut Scorer>,
    reporter: &dyn Reporter,
) -> Result<ShardStats> {
    let started = Instant::now();
    let shard = job.shard;
    let k = main.settings.metrics.k;
    let schema = profile_schema(k, reference.is_some(), &job.proxy.names());
    let desc = run_description(job, main, reference.as_deref())?;
    let fp = fingerprint(&desc);
    let parts_dir = shard.parts_dir(&job.out_dir);
    let run_json = parts_dir.join("run.json");
    if run_json.is_file() {
        let old: Value = serde_json::from_str(&std::fs::read_to_string(&run_json)?)
            .with_context(|| format!("reading {}", run_json.display()))?;
        let old_fp = old["fingerprint"].as_str().unwrap_or_default();
        if old_fp != fp {
            bail!(
                "{} holds parts of a run with other inputs or settings (fingerprint {old_fp}, \
                 this run {fp}); re-run with the same inputs and flags, use another --out, or \
                 delete that folder to start the shard over",
                parts_dir.display()
            );
        }
    } else {
        std::fs::create_dir_all(&parts_dir)
            .with_context(|| format!("creating {}", parts_dir.display()))?;
        write_json_atomic(
            &run_json,
            &serde_json::json!({"fingerprint": fp, "shard": shard, "run": desc}),
        )?;
    }
    let resumed = scan_parts(&parts_dir, shard)?;
    if !resumed.files.is_empty() {
        tracing::info!(
            "resuming shard {}/{}: {} parts with {} documents already done",
            shard.index,
            shard.count,
            resumed.files.len(),
            resumed.rows + resumed.failed.len() as u64
        );
    }

    let mut flow = Flow::new(reporter);
    flow.log.resumed = resumed.rows + resumed.failed.len() as u64;
    // Failures recorded in this run's parts (also in `log.skips`, which counts read errors too).
    let mut failed_now = 0u64;
    let mut ids: HashSet<u64> = HashSet::new();
    let mut duplicate_ids = 0u64;
    let mut next_part = resumed.next_part;
    let mut buf: Vec<ProfileRow> = Vec::new();
    let mut meta = PartMeta::default();
    let mut part_started = Instant::now();
    let mut part_scoring = 0.0f64;
    let n = shard.count as u64;
    let i = shard.index as u64;
    let (mut g, mut e) = (0u64, 0u64);

    let flush = |buf: &mut Vec<ProfileRow>,
                 meta: &mut PartMeta,
                 seconds: f64,
                 next_part: &mut u64|
     -> Result<()> {
        if buf.is_empty() && meta.failed.is_empty() {
            return Ok(());
        }
        meta.seconds = seconds;
        let path = parts_dir.join(format!("part-{:06}.parquet", *next_part));
        write_part(&path, &schema, buf, meta)?;
        *next_part += 1;
        buf.clear();
        *meta = PartMeta::default();
        Ok(())
    };

    // Documents of this shard still to do, in input order, with their global index; read errors
    // belong to the shard their ordinal among errors falls in (so every shard of a run reports
    // its own), and ids are checked for duplicates here, on the reading thread.
    // Every file accounts for itself: one that yields nothing at all is one read error.
    let todo = data::read_files(&job.files, &job.reader)
        .report_empty_files()
        .filter_map(|item| {
            let doc = match item {
                Ok(d) => d,
                Err(err) => {
                    let mine = e % n == i;
                    e += 1;
                    return mine.then_some(Err(err));
                }
            };
            let index = g;
            g += 1;
            if index % n != i {
                return None;
            }
            let mut h = std::hash::DefaultHasher::new();
            doc.id.hash(&mut h);
            if !ids.insert(h.finish()) {
                duplicate_ids += 1;
                if duplicate_ids <= 5 {
                    tracing::warn!(
                        "{}: duplicate id '{}' (rows are keyed by index)",
                        doc.place(),
                        doc.id
                    );
                }
            }
            (!resumed.done.contains(index)).then_some(Ok((index, doc)))
        });
    let main_settings = main.settings;
    let ref_settings = reference.as_ref().map(|r| r.settings);
    // Scored on as many threads as the backends allow (remote servers); rows arrive in order.
    let work = |b: &mut [&mut dyn Backend], (_, doc): &(u64, Document)| {
        let t0 = Instant::now();
        let result = score_text(&mut *b[0], &doc.text, &main_settings).and_then(|s| {
            let reference = match (b.get_mut(1), &ref_settings) {
                (Some(rb), Some(rs)) => Some(score_text(&mut **rb, &doc.text, rs)?.acc.summary()),
                _ => None,
            };
            Ok(Profiled {
                tokens: s.tokens.ids.len() as u64,
                metrics: s.acc.summary(),
                proxy: job.proxy.values_of(&s.positions),
                reference,
                seconds: t0.elapsed().as_secs_f64(),
            })
        });
        Some(result)
    };
    let sink = |_: &dyn Backend, (index, doc): (u64, Document), outcome: Outcome<Profiled>| {
        match outcome {
            Outcome::Done(p) => {
                part_scoring += p.seconds;
                buf.push(ProfileRow {
                    id: doc.id,
                    source: doc.source,
                    line: doc.line,
                    index,
                    tokens: p.tokens,
                    metrics: p.metrics,
                    reference: p.reference,
                    proxy: p.proxy,
                });
            }
            Outcome::Skipped(reason) => {
                failed_now += 1;
                meta.failed.push((index, reason));
            }
        }
        let full = buf.len() + meta.failed.len() >= job.part_size;
        if full || part_started.elapsed().as_secs_f64() >= job.part_seconds {
            flush(&mut buf, &mut meta, part_scoring, &mut next_part)?;
            part_started = Instant::now();
            part_scoring = 0.0;
        }
        anyhow::Ok(())
    };
    let mut backends: Vec<&mut dyn Backend> = vec![&mut *main.backend];
    if let Some(r) = reference.as_deref_mut() {
        backends.push(&mut *r.backend);
    }
    let driven = flow.drive(&mut backends, todo, work, sink);
    if let Err(e) = driven {
        // Parts written so far stay, with the documents done before the stop flushed into one
        // more; the unit that stopped the run is in none of them, and a re-run resumes there.
        let s = e.downcast::<Stopped>()?;
        flush(&mut buf, &mut meta, part_scoring, &mut next_part)?;
        bail!("{s} (re-run with the same flags to resume)");
    }
    flush(&mut buf, &mut meta, part_scoring, &mut next_part)?;
    let log = flow.log;

    // Combine every part (earlier runs' and this one's) in index order.
    let resumed_all = scan_parts(&parts_dir, shard)?;
    let out_path = shard.parquet_path(&job.out_dir);
    let mut f = AtomicFile::create(&out_path)?;
    let count = concat_sorted(&resumed_all.files, &schema, &mut f)?;
    f.commit()
        .with_context(|| format!("writing {}", out_path.display()))?;
    // This run's reasons (read errors and failures, in input order), then earlier runs' failures.
    let mut errors = log.skips.reasons.clone();
    for (_, msg) in resumed.failed.iter() {
        if errors.len() < MAX_REASONS_KEPT {
            errors.push(msg.clone());
        }
    }
    let read_skips = log.skips.count - failed_now;
    let scoring_seconds = resumed_all.seconds;
    let info = |s: &Scorer| serde_json::to_value(s.backend.info()).unwrap_or(Value::Null);
    let stats = ShardStats {
        shard: shard.index,
        shards: shard.count,
        documents: count.rows,
        skipped: read_skips + resumed_all.failed.len() as u64,
        errors,
        duplicate_ids,
        tokens: count.tokens,
        seconds: started.elapsed().as_secs_f64(),
        scoring_seconds,
        tokens_per_second: if scoring_seconds > 0.0 {
            count.tokens as f64 / scoring_seconds
        } else {
            0.0
        },
        resumed_documents: log.resumed,
        model: info(main),
        settings: serde_json::to_value(main.settings)?,
        reference_model: reference.as_deref().map(info),
        reference_settings: reference
            .as_deref()
            .map(|r| serde_json::to_value(r.settings))
            .transpose()?,
        fingerprint: fp,
        inputs: job.files.iter().map(|f| f.display().to_string()).collect(),
    };
    write_json_atomic(&shard.stats_path(&job.out_dir), &stats)?;
    std::fs::remove_dir_all(&parts_dir)
        .with_context(|| format!("removing {}", parts_dir.display()))?;
    let _ = std::fs::remove_dir(job.out_dir.join(".parts"));
    Ok(stats)
}

// ---------------------------------------------------------------------------------------------
// Merging the shards of a run

/// The merged stats of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergedStats {
    pub shards: usize,
    pub documents: u64,
    pub skipped: u64,
    pub errors: Vec<String>,
    /// Sum of the shards' duplicate-id counts (duplicates are found within a shard).
    pub duplicate_ids: u64,
    pub tokens: u64,
    pub scoring_seconds: f64,
    pub model: Value,
    pub settings: Value,
    pub reference_model: Option<Value>,
    pub reference_settings: Option<Value>,
    pub fingerprint: String,
    pub inputs: Vec<String>,
}

fn parse_shard_name(name: &str) -> Option<Shard> {
    let mid = name.strip_prefix("profile-")?.strip_suffix(".parquet")?;
    let (i, n) = mid.split_once("-of-")?;
    if i.len() < 5 || n.len() < 5 {
        return None;
    }
    Shard::new(i.parse().ok()?, n.parse().ok()?).ok()
}

/// Merges all `profile-*-of-N.parquet` shards in `dir` into `out` (sorted by index), with
/// `{out without .parquet}.stats.json`. Fails, listing them, if shards are missing or
/// incomplete, or if the folder holds shards of several shard counts or runs.
pub fn merge_run(dir: &Path, out: &Path) -> Result<(MergedStats, PathBuf)> {
    let mut shards = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        if let Some(s) = parse_shard_name(&e?.file_name().to_string_lossy()) {
            shards.push(s);
        }
    }
    ensure!(
        !shards.is_empty(),
        "no profile-*-of-*.parquet shard files in {}",
        dir.display()
    );
    let mut counts: Vec<usize> = shards.iter().map(|s| s.count).collect();
    counts.sort();
    counts.dedup();
    ensure!(
        counts.len() == 1,
        "{} holds shards of runs with different shard counts ({:?}); keep one run per folder",
        dir.display(),
        counts
    );
    let n = counts[0];
    let mut missing = Vec::new();
    let mut stats = Vec::new();
    for i in 0..n {
        let s = Shard { index: i, count: n };
        let p = s.parquet_path(dir);
        let sp = s.stats_path(dir);
        if !p.is_file() || !sp.is_file() {
            missing.push(i);
            continue;
        }
        let st: ShardStats = serde_json::from_str(&std::fs::read_to_string(&sp)?)
            .with_context(|| format!("reading {}", sp.display()))?;
        stats.push((p, st));
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|i| i.to_string()).collect();
        bail!(
            "{} of {n} shards missing or incomplete (no .parquet or no .stats.json): {}; \
             run `hesnr profile ... --shard i/{n}` for them first",
            missing.len(),
            list.join(", ")
        );
    }
    let fp = stats[0].1.fingerprint.clone();
    for (p, st) in &stats {
        ensure!(
            st.fingerprint == fp && st.shards == n,
            "{} belongs to another run (fingerprint {} vs {fp})",
            p.display(),
            st.fingerprint
        );
    }
    let files: Vec<PathBuf> = stats.iter().map(|(p, _)| p.clone()).collect();
    let (schema, _, _) = open_reader(&files[0])?;
    let mut f = AtomicFile::create(out)?;
    let count = merge_sorted(&files, &schema, &mut f)?;
    f.commit()
        .with_context(|| format!("writing {}", out.display()))?;
    let first = &stats[0].1;
    let mut errors = Vec::new();
    for (_, st) in &stats {
        for e in &st.errors {
            if errors.len() < MAX_REASONS_KEPT {
                errors.push(e.clone());
            }
        }
    }
    let merged = MergedStats {
        shards: n,
        documents: count.rows,
        skipped: stats.iter().map(|(_, s)| s.skipped).sum(),
        errors,
        duplicate_ids: stats.iter().map(|(_, s)| s.duplicate_ids).sum(),
        tokens: count.tokens,
        scoring_seconds: stats.iter().map(|(_, s)| s.scoring_seconds).sum(),
        model: first.model.clone(),
        settings: first.settings.clone(),
        reference_model: first.reference_model.clone(),
        reference_settings: first.reference_settings.clone(),
        fingerprint: fp,
        inputs: first.inputs.clone(),
    };
    let expected: u64 = stats.iter().map(|(_, s)| s.documents).sum();
    ensure!(
        expected == count.rows,
        "shard stats count {expected} documents but the shard files hold {}",
        count.rows
    );
    let stats_path = merged_stats_path(out);
    write_json_atomic(&stats_path, &merged)?;
    Ok((merged, stats_path))
}

/// `x.parquet` -> `x.stats.json`.
pub fn merged_stats_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".parquet").unwrap_or(&name);
    out.with_file_name(format!("{stem}.stats.json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn row(index: u64, scored: u64) -> ProfileRow {
        ProfileRow {
            id: format!("d{index}"),
            source: "s.jsonl".into(),
            line: index + 1,
            index,
            tokens: scored + 1,
            metrics: Summary {
                documents: 1,
                scored_tokens: scored,
                mean_nll: Some(index as f64 * 0.5),
                ppl: Some((index as f64 * 0.5).exp()),
                top1_acc: Some(0.5),
                decision_tokens: 1,
                decision_density: Some(1.0 / scored.max(1) as f64),
                he_snr: index.is_multiple_of(2).then_some(0.25),
                he_ppl: None,
                mean_h10: Some(0.1),
                order_shares: vec![0.5, 0.5, 0.0],
            },
            reference: None,
            proxy: ProxyValues::default(),
        }
    }

    /// Registry metrics asked for are columns after the fixed ones, in the order asked, null
    /// where a document has no value.
    #[test]
    fn registry_metrics_are_columns_after_the_fixed_ones() {
        let names = vec!["hes".to_string(), "rank__uniform".to_string()];
        let schema = profile_schema(3, false, &names);
        let fixed = profile_schema(3, false, &[]).fields().len();
        let tail: Vec<&str> = schema.fields()[fixed..]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(tail, ["hes", "rank__uniform"]);
        let mut a = row(0, 4);
        a.proxy = ProxyValues(vec![
            ("hes".into(), Some(1.5)),
            ("rank__uniform".into(), Some(2.0)),
        ]);
        let mut b = row(1, 4);
        b.proxy = ProxyValues(vec![
            ("hes".into(), None),
            ("rank__uniform".into(), Some(3.0)),
        ]);
        let batch = rows_to_batch(&[a, b], &schema).unwrap();
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_primitive::<arrow_array::types::Float64Type>()
                .iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(col("hes"), [Some(1.5), None]);
        assert_eq!(col("rank__uniform"), [Some(2.0), Some(3.0)]);
        assert_eq!(col("he_snr"), [Some(0.25), None]);
    }

    #[test]
    fn shard_spec_and_slurm() {
        assert_eq!(
            Shard::parse("3/16").unwrap(),
            Shard {
                index: 3,
                count: 16
            }
        );
        assert!(Shard::parse("16/16").is_err());
        assert!(Shard::parse("x").is_err());
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Shard::from_env(env(&[])).unwrap(), None);
        assert_eq!(
            Shard::from_env(env(&[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "8")
            ]))
            .unwrap(),
            Some(Shard { index: 4, count: 8 })
        );
        assert_eq!(
            Shard::from_env(env(&[
                ("SLURM_ARRAY_TASK_ID", "2"),
                ("SLURM_ARRAY_TASK_MAX", "3")
            ]))
            .unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        assert!(Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "2")])).is_err());
        assert_eq!(
            Shard {
                index: 3,
                count: 16
            }
            .stem(),
            "profile-00003-of-00016"
        );
        assert_eq!(
            parse_shard_name("profile-00003-of-00016.parquet"),
            Some(Shard {
                index: 3,
                count: 16
            })
        );
        assert_eq!(parse_shard_name("profile.parquet"), None);
    }

    #[test]
    fn index_set() {
        let s = IndexSet::from_sorted_runs(vec![(5, 6), (0, 3), (2, 4), (10, 20)]);
        assert!(s.contains(0) && s.contains(3) && s.contains(5) && s.contains(19));
        assert!(!s.contains(4) && !s.contains(6) && !s.contains(20) && !s.contains(9));
    }

    #[test]
    fn merge_is_independent_of_how_rows_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let schema = profile_schema(3, false, &[]);
        let rows: Vec<ProfileRow> = (0..20_000).map(|g| row(g, 10 + g % 7)).collect();
        let write = |name: &str, rows: Vec<ProfileRow>| {
            let p = dir.path().join(name);
            let f = File::create(&p).unwrap();
            let mut w = GroupedWriter::new(f, &schema).unwrap();
            for c in rows.chunks(777) {
                w.write(rows_to_batch(c, &schema).unwrap()).unwrap();
            }
            w.close().unwrap();
            p
        };
        let one = write("one.parquet", rows.clone());
        let parts: Vec<PathBuf> = (0..3)
            .map(|s| {
                let r = rows.iter().filter(|r| r.index % 3 == s).cloned().collect();
                write(&format!("p{s}.parquet"), r)
            })
            .collect();
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        let ca = merge_sorted(&[one], &schema, File::create(&a).unwrap()).unwrap();
        let cb = merge_sorted(&parts, &schema, File::create(&b).unwrap()).unwrap();
        assert_eq!(ca.rows, 20_000);
        assert_eq!(ca.tokens, cb.tokens);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // An index in two inputs is an error.
        let dup = merge_sorted(&[parts[0].clone(), parts[0].clone()], &schema, Vec::new());
        assert!(dup.unwrap_err().to_string().contains("appears twice"));
    }

    #[test]
    fn null_where_undefined_and_deltas() {
        let schema = profile_schema(3, true, &[]);
        let mut r = row(1, 0);
        r.metrics.scored_tokens = 0;
        let mut rf = r.metrics.clone();
        rf.mean_nll = Some(0.2);
        rf.he_snr = Some(0.1);
        r.reference = Some(rf);
        let b = rows_to_batch(&[r], &schema).unwrap();
        let f = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<arrow_array::types::Float64Type>()
                .clone()
        };
        assert!(f("order_share_1").is_null(0));
        assert!(f("he_snr").is_null(0));
        assert!(f("delta_he_snr").is_null(0));
        assert!((f("delta_mean_nll").value(0) - 0.3).abs() < 1e-15);
    }
}
