//! Parquet input: the rows of a Parquet file (as Hugging Face `datasets` and datatrove write
//! them) as [`Document`]s, streamed one record batch at a time so memory does not grow with the
//! file.
//!
//! The text, id and metadata are top-level columns named by the same [`ReaderOptions`] fields as
//! for JSON Lines. `line` is the 1-based row number in the file. A file whose schema cannot
//! work (no text column, a text column that is not a string) is one [`RecordError`] naming the
//! file and the column; a row with a null or empty text is one error for that row.
//!
//! [`read_parquet_records`] reads whole rows as JSON objects instead.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int16Type, Int32Type, Int64Type, UInt16Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use serde_json::Value;

use super::open::{max_record_bytes, over_limit, MAX_RECORD_ENV};
use super::reader::{Document, ReaderOptions, RecordError, RecordErrorKind};

/// Rows decoded per record batch, at most.
const BATCH_ROWS: usize = 1024;
/// What one decoded record batch may take, by the row sizes the file's metadata declares:
/// rows of a few MiB (whole agent trajectories) come fewer to a batch, so a batch's memory does
/// not grow with the row size.
const BATCH_BYTES: usize = 64 << 20;

/// Rows per batch for a file: `max_rows`, or fewer when the largest average row (over the
/// columns read, per row group, uncompressed, as the metadata says) would make a batch of them
/// larger than `batch_bytes` ([`BATCH_BYTES`]). `columns`: the leaf columns read (`None`: all).
fn batch_rows(
    metadata: &parquet::file::metadata::ParquetMetaData,
    columns: Option<&[usize]>,
    max_rows: usize,
    batch_bytes: usize,
) -> usize {
    let widest_row = metadata
        .row_groups()
        .iter()
        .filter(|g| g.num_rows() > 0)
        .map(|g| {
            let bytes: i64 = match columns {
                Some(cols) => cols
                    .iter()
                    .filter_map(|&c| g.columns().get(c))
                    .map(|c| c.uncompressed_size())
                    .sum(),
                None => g.total_byte_size(),
            };
            bytes.max(0) as u64 / g.num_rows() as u64
        })
        .max()
        .unwrap_or(0);
    (batch_bytes as u64 / widest_row.max(1)).clamp(1, max_rows as u64) as usize
}

/// Whether a path names a Parquet file (by extension).
pub fn is_parquet(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".parquet") || name.ends_with(".pq")
}

/// The documents of one Parquet file, in row order; see the module docs.
pub struct ParquetDocuments {
    source: String,
    id_prefix: String,
    opts: ReaderOptions,
    /// `None` when the file could not be opened (the error is in `pending`) or is exhausted.
    reader: Option<ParquetRecordBatchReader>,
    pending: Option<RecordError>,
    batch: Option<Columns>,
    pos: usize,
    /// Rows read before the current batch.
    row_base: u64,
}

struct Columns {
    rows: usize,
    text: ArrayRef,
    id: Option<ArrayRef>,
    metadata: Option<ArrayRef>,
}

/// Opens a Parquet file; problems with it come out as the stream's first (and only) item.
pub fn read_parquet(path: &Path, opts: &ReaderOptions) -> ParquetDocuments {
    let source = path.display().to_string();
    let id_prefix = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.clone());
    let mut docs = ParquetDocuments {
        source,
        id_prefix,
        opts: opts.clone(),
        reader: None,
        pending: None,
        batch: None,
        pos: 0,
        row_base: 0,
    };
    match open(path, opts) {
        Ok(r) => docs.reader = Some(r),
        Err(e) => docs.pending = Some(docs.error(0, e.0, e.1, e.2)),
    }
    docs
}

type OpenError = (Option<String>, RecordErrorKind, String);

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, OpenError> {
    let file =
        File::open(path).map_err(|e| (None, RecordErrorKind::Io, format!("cannot open: {e}")))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        (
            None,
            RecordErrorKind::Io,
            format!("not a readable Parquet file: {e}"),
        )
    })
}

fn open(path: &Path, opts: &ReaderOptions) -> Result<ParquetRecordBatchReader, OpenError> {
    let builder = builder(path)?;
    let schema = builder.schema().clone();
    let find = |name: &str| schema.fields().iter().position(|f| f.name() == name);
    let columns = || {
        schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = find(&opts.text_field).ok_or_else(|| {
        (
            Some(opts.text_field.clone()),
            RecordErrorKind::MissingField,
            format!(
                "no column '{}' in the Parquet schema (columns: {}); whole file skipped (see --text-field)",
                opts.text_field,
                columns()
            ),
        )
    })?;
    let text_type = schema.field(text).data_type();
    if !is_string(text_type) {
        return Err((
            Some(opts.text_field.clone()),
            RecordErrorKind::WrongType,
            format!(
                "column '{}' has type {text_type}, expected a string; whole file skipped",
                opts.text_field
            ),
        ));
    }
    let mut wanted = vec![text];
    if let Some(i) = find(&opts.id_field) {
        wanted.push(i);
    }
    if let Some(i) = find("metadata") {
        wanted.push(i);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted.iter().copied());
    let leaves: Vec<usize> = (0..builder.parquet_schema().num_columns())
        .filter(|&leaf| mask.leaf_included(leaf))
        .collect();
    let rows = batch_rows(builder.metadata(), Some(&leaves), BATCH_ROWS, BATCH_BYTES);
    builder
        .with_projection(mask)
        .with_batch_size(rows)
        .build()
        .map_err(|e| (None, RecordErrorKind::Io, format!("cannot read: {e}")))
}

fn str_at(a: &dyn Array, i: usize) -> Option<&str> {
    if a.is_null(i) {
        return None;
    }
    if let Some(s) = a.as_string_opt::<i32>() {
        Some(s.value(i))
    } else if let Some(s) = a.as_string_opt::<i64>() {
        Some(s.value(i))
    } else {
        a.as_string_view_opt().map(|s| s.value(i))
    }
}

fn id_at(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    if let Some(s) = str_at(a, i) {
        return Some(s.to_string());
    }
    macro_rules! int {
        ($($t:ty),*) => {$(
            if let Some(p) = a.as_primitive_opt::<$t>() {
                return Some(p.value(i).to_string());
            }
        )*};
    }
    int!(Int64Type, Int32Type, Int16Type, UInt64Type, UInt32Type, UInt16Type);
    None
}

impl ParquetDocuments {
    fn error(
        &self,
        line: u64,
        field: Option<String>,
        kind: RecordErrorKind,
        message: String,
    ) -> RecordError {
        RecordError {
            source: self.source.clone(),
            line,
            field,
            kind,
            message,
        }
    }

    fn load(&mut self, batch: RecordBatch) -> Columns {
        let col = |name: &str| batch.column_by_name(name).cloned();
        Columns {
            rows: batch.num_rows(),
            text: col(&self.opts.text_field).expect("projected"),
            id: col(&self.opts.id_field),
            metadata: if self.opts.id_field == "metadata" || self.opts.text_field == "metadata" {
                None
            } else {
                col("metadata")
            },
        }
    }
}

impl Iterator for ParquetDocuments {
    type Item = Result<Document, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        loop {
            if let Some(b) = &self.batch {
                if self.pos < b.rows {
                    let i = self.pos;
                    self.pos += 1;
                    let line = self.row_base + i as u64 + 1;
                    let text = match str_at(b.text.as_ref(), i) {
                        None => {
                            return Some(Err(self.error(
                                line,
                                Some(self.opts.text_field.clone()),
                                RecordErrorKind::MissingField,
                                "null text".into(),
                            )))
                        }
                        Some(t) if t.trim().is_empty() => {
                            return Some(Err(self.error(
                                line,
                                Some(self.opts.text_field.clone()),
                                RecordErrorKind::EmptyText,
                                "empty or whitespace-only text".into(),
                            )))
                        }
                        Some(t) if t.len() > max_record_bytes() => {
                            return Some(Err(self.error(
                                line,
                                Some(self.opts.text_field.clone()),
                                RecordErrorKind::TooLarge,
                                over_limit("text", max_record_bytes(), MAX_RECORD_ENV),
                            )))
                        }
                        Some(t) => t.to_string(),
                    };
                    let id =
                        b.id.as_ref()
                            .and_then(|a| id_at(a.as_ref(), i))
                            .unwrap_or_else(|| format!("{}:{line}", self.id_prefix));
                    let metadata = b.metadata.as_ref().and_then(|a| {
                        str_at(a.as_ref(), i).map(|s| {
                            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.into()))
                        })
                    });
                    return Some(Ok(Document {
                        id,
                        text,
                        source: self.source.clone(),
                        line,
                        metadata,
                    }));
                }
                self.row_base += b.rows as u64;
                self.batch = None;
                self.pos = 0;
            }
            let reader = self.reader.as_mut()?;
            match reader.next() {
                None => {
                    self.reader = None;
                    return None;
                }
                Some(Ok(batch)) => self.batch = Some(self.load(batch)),
                Some(Err(e)) => {
                    self.reader = None;
                    return Some(Err(self.error(
                        self.row_base + 1,
                        None,
                        RecordErrorKind::Io,
                        format!("Parquet read failed, rest of the file skipped: {e}"),
                    )));
                }
            }
        }
    }
}

/// Rows decoded per record batch when whole rows are read: a row can be a whole agent
/// trajectory.
const RECORD_BATCH_ROWS: usize = 64;

/// Every column of every row of a Parquet file as one JSON object, one record batch in memory
/// at a time: for readers that need whole rows (`select` writes the chosen rows back out with
/// all their fields; a trajectory row, as in nebius/SWE-agent-trajectories, is a list of
/// `{role, text}` structs), where [`ParquetDocuments`] keeps only text, id and metadata.
///
/// Values are converted by `arrow-json` (nested structs and lists included); nulls are kept
/// as `null` so every record has the file's columns. A `metadata` column holding a JSON object
/// as a string (as some writers store it) becomes that object, as it does for documents.
pub struct ParquetRecords {
    source: String,
    reader: Option<ParquetRecordBatchReader>,
    pending: Option<RecordError>,
    /// Rows of the current batch not handed out yet; `Err`: a row over the record bound.
    rows: std::collections::VecDeque<Result<Value, String>>,
    /// Rows handed out so far (the next row's 1-based number minus one).
    row: u64,
}

/// Opens a Parquet file for [`ParquetRecords`]; a file that cannot be read is the stream's
/// first (and only) item.
pub fn read_parquet_records(path: &Path) -> ParquetRecords {
    let source = path.display().to_string();
    let opened = builder(path).and_then(|b| {
        let rows = batch_rows(b.metadata(), None, RECORD_BATCH_ROWS, BATCH_BYTES);
        b.with_batch_size(rows)
            .build()
            .map_err(|e| (None, RecordErrorKind::Io, format!("cannot read: {e}")))
    });
    let (reader, pending) = match opened {
        Ok(r) => (Some(r), None),
        Err((field, kind, message)) => (
            None,
            Some(RecordError {
                source: source.clone(),
                line: 0,
                field,
                kind,
                message,
            }),
        ),
    };
    ParquetRecords {
        source,
        reader,
        pending,
        rows: Default::default(),
        row: 0,
    }
}

/// One record batch as JSON objects, in row order; a row over the record bound
/// ([`max_record_bytes`], as a JSON Lines line is) is an `Err` with the reason, in its place.
fn batch_to_json(batch: &RecordBatch) -> Result<Vec<Result<Value, String>>, String> {
    use arrow_json::writer::{LineDelimited, WriterBuilder};
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, LineDelimited>(Vec::new());
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    let bytes = writer.into_inner();
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            if line.len() > max_record_bytes() {
                return Ok(Err(over_limit("row", max_record_bytes(), MAX_RECORD_ENV)));
            }
            let mut row: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
            if let Some(m) = row.get_mut("metadata") {
                if let Some(Value::Object(o)) =
                    m.as_str().and_then(|s| serde_json::from_str(s).ok())
                {
                    *m = Value::Object(o);
                }
            }
            Ok(Ok(row))
        })
        .collect()
}

impl Iterator for ParquetRecords {
    type Item = Result<super::json::JsonRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        loop {
            if let Some(row) = self.rows.pop_front() {
                self.row += 1;
                return Some(match row {
                    Ok(value) => Ok(super::json::JsonRecord {
                        line: self.row,
                        value,
                    }),
                    Err(message) => Err(RecordError {
                        source: self.source.clone(),
                        line: self.row,
                        field: None,
                        kind: RecordErrorKind::TooLarge,
                        message,
                    }),
                });
            }
            let failed = |row: u64, e: String| RecordError {
                source: self.source.clone(),
                line: row + 1,
                field: None,
                kind: RecordErrorKind::Io,
                message: format!("Parquet read failed, rest of the file skipped: {e}"),
            };
            let batch = match self.reader.as_mut()?.next()? {
                Ok(b) => b,
                Err(e) => {
                    self.reader = None;
                    return Some(Err(failed(self.row, e.to_string())));
                }
            };
            match batch_to_json(&batch) {
                Ok(rows) => self.rows.extend(rows),
                Err(e) => {
                    self.reader = None;
                    return Some(Err(failed(self.row, e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Int32Builder, ListBuilder, MapBuilder, StringBuilder};
    use arrow_array::{
        BooleanArray, DictionaryArray, Float32Array, Int64Array, StringArray, StructArray,
        UInt8Array,
    };
    use arrow_schema::Field;
    use serde_json::json;
    use std::sync::Arc;

    /// One record batch as a Parquet file.
    fn write_batch(path: &Path, batch: &RecordBatch) {
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None)
                .unwrap();
        w.write(batch).unwrap();
        w.close().unwrap();
    }

    /// Wide rows come fewer to a batch: by the sizes the metadata declares for the columns
    /// read, not for columns left out.
    #[test]
    fn batch_rows_shrink_with_the_width_of_the_rows_read() {
        // Distinct values, or the writer's dictionary stores one of them for all.
        let wide: Vec<String> = (0..20).map(|i| format!("{i:05}").repeat(2_000)).collect();
        let batch = RecordBatch::try_from_iter([
            (
                "wide",
                Arc::new(StringArray::from_iter_values(&wide)) as ArrayRef,
            ),
            (
                "narrow",
                Arc::new(StringArray::from(vec!["a"; 20])) as ArrayRef,
            ),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.parquet");
        write_batch(&path, &batch);
        let b = builder(&path).unwrap();
        let meta = b.metadata();
        // About 10 kB a row: 64 kB takes 6 rows, a row of its own when the budget is smaller.
        assert_eq!(batch_rows(meta, None, 1024, 64_000), 6);
        assert_eq!(batch_rows(meta, Some(&[0]), 1024, 64_000), 6);
        assert_eq!(batch_rows(meta, None, 1024, 100), 1);
        // Only the narrow column read: the cap is max_rows.
        assert_eq!(batch_rows(meta, Some(&[1]), 1024, 64_000), 1024);
        assert_eq!(batch_rows(meta, None, 4, 64 << 20), 4);
    }

    #[test]
    fn rows_read_as_json_objects_with_nested_columns() {
        let mut list = ListBuilder::new(Int32Builder::new());
        list.append_value([Some(1), None]);
        list.append_null();
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        map.keys().append_value("k");
        map.values().append_value(7);
        map.append(true).unwrap();
        map.append(true).unwrap();
        let step = StructArray::from(vec![
            (
                Arc::new(Field::new("role", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![Some("ai"), None])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("mask", DataType::Boolean, false)),
                Arc::new(BooleanArray::from(vec![true, false])) as ArrayRef,
            ),
        ]);
        let dict: DictionaryArray<Int32Type> = vec!["x", "y"].into_iter().collect();
        let batch = RecordBatch::try_from_iter([
            (
                "n",
                Arc::new(Int64Array::from(vec![Some(-3), None])) as ArrayRef,
            ),
            ("u", Arc::new(UInt8Array::from(vec![1, 2])) as ArrayRef),
            (
                "f",
                Arc::new(Float32Array::from(vec![0.5, f32::NAN])) as ArrayRef,
            ),
            ("l", Arc::new(list.finish()) as ArrayRef),
            ("m", Arc::new(map.finish()) as ArrayRef),
            ("s", Arc::new(step) as ArrayRef),
            ("d", Arc::new(dict) as ArrayRef),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.parquet");
        write_batch(&path, &batch);
        let rows: Vec<(u64, Value)> = read_parquet_records(&path)
            .map(|r| r.map(|r| (r.line, r.value)).unwrap())
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    1,
                    json!({"n": -3, "u": 1, "f": 0.5, "l": [1, null], "m": {"k": 7},
                        "s": {"role": "ai", "mask": true}, "d": "x"})
                ),
                (
                    2,
                    json!({"n": null, "u": 2, "f": null, "l": null, "m": {},
                        "s": {"role": null, "mask": false}, "d": "y"})
                ),
            ]
        );
        let missing = dir.path().join("missing.parquet");
        let e = read_parquet_records(&missing).next().unwrap().unwrap_err();
        assert_eq!((e.kind, e.line), (RecordErrorKind::Io, 0));
        assert!(e.message.starts_with("cannot open"), "{}", e.message);
    }
}
