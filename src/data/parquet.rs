//! Parquet input: the rows of a Parquet file (as Hugging Face `datasets` and datatrove write
//! them) as [`Document`]s, streamed one record batch at a time so memory does not grow with the
//! file.
//!
//! The text, id and metadata are top-level columns named by the same [`ReaderOptions`] fields as
//! for JSON Lines. `line` is the 1-based row number in the file. A file whose schema cannot
//! work (no text column, a text column that is not a string) is one [`RecordError`] naming the
//! file and the column; a row with a null or empty text is one error for that row.
//!
//! [`read_parquet_rows`] reads whole rows as JSON objects instead, for the trajectory reader.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use serde_json::Value;

use super::json::JsonRecord;
use super::reader::{Document, ReaderOptions, RecordError, RecordErrorKind};

/// Rows decoded per record batch.
const BATCH_ROWS: usize = 1024;

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
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
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

// ---------------------------------------------------------------------------------------------
// Rows as JSON

/// Rows decoded per record batch when whole rows are read: a row can be a whole agent
/// trajectory.
const JSON_BATCH_ROWS: usize = 64;

/// The rows of a Parquet file as JSON objects (column name -> value), in row order, one record
/// batch in memory at a time: how trajectories are read from Parquet (nebius/SWE-agent-
/// trajectories rows, whose `trajectory` column is a list of `{role, text}` structs). Lists are
/// arrays, structs and maps objects, strings, booleans and numbers themselves; a value of a type
/// JSON has no form for (binary, dates, times, decimals) is null. `line` is the 1-based row.
pub struct ParquetRows {
    source: String,
    reader: Option<ParquetRecordBatchReader>,
    pending: Option<RecordError>,
    batch: Option<RecordBatch>,
    pos: usize,
    /// Rows read before the current batch.
    row_base: u64,
}

/// Opens a Parquet file for [`ParquetRows`]; a file that cannot be read is the stream's one
/// item.
pub fn read_parquet_rows(path: &Path) -> ParquetRows {
    let mut rows = ParquetRows {
        source: path.display().to_string(),
        reader: None,
        pending: None,
        batch: None,
        pos: 0,
        row_base: 0,
    };
    let opened = builder(path).and_then(|b| {
        b.with_batch_size(JSON_BATCH_ROWS)
            .build()
            .map_err(|e| (None, RecordErrorKind::Io, format!("cannot read: {e}")))
    });
    match opened {
        Ok(r) => rows.reader = Some(r),
        Err((field, kind, message)) => {
            rows.pending = Some(RecordError {
                source: rows.source.clone(),
                line: 0,
                field,
                kind,
                message,
            })
        }
    }
    rows
}

impl Iterator for ParquetRows {
    type Item = Result<JsonRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        loop {
            if let Some(b) = &self.batch {
                if self.pos < b.num_rows() {
                    let i = self.pos;
                    self.pos += 1;
                    let row = b
                        .schema()
                        .fields()
                        .iter()
                        .zip(b.columns())
                        .map(|(f, c)| (f.name().clone(), json_value(c.as_ref(), i)))
                        .collect();
                    return Some(Ok(JsonRecord {
                        line: self.row_base + i as u64 + 1,
                        value: Value::Object(row),
                    }));
                }
                self.row_base += b.num_rows() as u64;
                self.batch = None;
                self.pos = 0;
            }
            match self.reader.as_mut()?.next() {
                None => {
                    self.reader = None;
                    return None;
                }
                Some(Ok(batch)) => self.batch = Some(batch),
                Some(Err(e)) => {
                    self.reader = None;
                    return Some(Err(RecordError {
                        source: self.source.clone(),
                        line: self.row_base + 1,
                        field: None,
                        kind: RecordErrorKind::Io,
                        message: format!("Parquet read failed, rest of the file skipped: {e}"),
                    }));
                }
            }
        }
    }
}

/// Element `i` of `a` as JSON (see [`ParquetRows`]).
fn json_value(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    let elements = |l: &dyn Array| Value::Array((0..l.len()).map(|j| json_value(l, j)).collect());
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        DataType::Float16 => float(a.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Float32 => float(f64::from(a.as_primitive::<Float32Type>().value(i))),
        DataType::Float64 => float(a.as_primitive::<Float64Type>().value(i)),
        t if is_string(t) => str_at(a, i).map_or(Value::Null, Value::from),
        DataType::List(_) => elements(a.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => elements(a.as_list::<i64>().value(i).as_ref()),
        DataType::FixedSizeList(..) => elements(a.as_fixed_size_list().value(i).as_ref()),
        DataType::Struct(fields) => Value::Object(
            fields
                .iter()
                .zip(a.as_struct().columns())
                .map(|(f, c)| (f.name().clone(), json_value(c.as_ref(), i)))
                .collect(),
        ),
        DataType::Map(..) => {
            let entries = a.as_map().value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            Value::Object(
                (0..entries.len())
                    .map(|j| match json_value(keys.as_ref(), j) {
                        Value::String(k) => (k, json_value(values.as_ref(), j)),
                        k => (k.to_string(), json_value(values.as_ref(), j)),
                    })
                    .collect(),
            )
        }
        DataType::Dictionary(..) => {
            let d = a.as_any_dictionary();
            match json_value(d.keys(), i).as_u64() {
                Some(k) => json_value(d.values().as_ref(), k as usize),
                None => Value::Null,
            }
        }
        _ => Value::Null,
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
        let mut w = parquet::arrow::ArrowWriter::try_new(
            File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let rows: Vec<(u64, Value)> = read_parquet_rows(&path)
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
        let e = read_parquet_rows(&missing).next().unwrap().unwrap_err();
        assert_eq!((e.kind, e.line), (RecordErrorKind::Io, 0));
        assert!(e.message.starts_with("cannot open"), "{}", e.message);
    }
}
