//! Whole records, for the commands that pass records through rather than score them: `select`
//! writes the chosen records back out with every field they had, where the document reader
//! ([`super::inputs`]) keeps only text, id and metadata.
//!
//! A file is read in the same forms and decided by the same rules as documents (JSON Lines or
//! a JSON array by the first byte, gzip/zstd by the magic bytes, Parquet by name or magic, any
//! other file one text record), and each record comes with the same place (line, row, or 0 for
//! a whole text file), so a record here and the document the input layer made of it, and the
//! profile row scored from that document, name the same `file:place`.

use std::fs::File;
use std::path::Path;

use serde_json::{Map, Value};

use super::inputs::{classify, decode_as, read_failed, Layout};
use super::json::{JsonRecord, JsonRecords};
use super::parquet::read_parquet_records;
use super::reader::{
    read_whole_text, whole_file_error, ReaderOptions, RecordError, RecordErrorKind,
};

/// The records of one file, in order; see the module docs. A bad record is an `Err` item and
/// the records after it are still read; a file that cannot be read at all is one `Err` item
/// with kind [`RecordErrorKind::Io`].
pub fn read_records(
    path: &Path,
    opts: &ReaderOptions,
) -> Box<dyn Iterator<Item = Result<JsonRecord, RecordError>> + Send> {
    let source = path.display().to_string();
    let fail = |e: RecordError| -> Box<dyn Iterator<Item = _> + Send> {
        Box::new(std::iter::once(Err(e)))
    };
    // A path that cannot be inspected is treated as a file; opening it reports why.
    let regular = std::fs::metadata(path).map_or(true, |m| m.is_file());
    let layout = classify(path, opts.format, regular);
    if layout == Layout::Parquet {
        return Box::new(read_parquet_records(path));
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let message = format!("cannot open: {e}");
            return fail(whole_file_error(&source, RecordErrorKind::Io, message));
        }
    };
    let (layout, mut reader, compression) = match decode_as(&source, file.into(), layout) {
        Ok(x) => x,
        Err(e) => return fail(read_failed(&source, e)),
    };
    if layout == Layout::Text {
        let record = read_whole_text(&source, &mut reader, compression).map(|doc| {
            let mut m = Map::new();
            m.insert(opts.text_field.clone(), Value::String(doc.text));
            m.insert(opts.id_field.clone(), Value::String(doc.id));
            JsonRecord {
                line: doc.line,
                value: Value::Object(m),
            }
        });
        return Box::new(std::iter::once(record));
    }
    match JsonRecords::sniffed(source.clone(), reader, compression.read_failure()) {
        Ok(records) => Box::new(records),
        Err(e) => fail(read_failed(&source, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    fn records(path: &Path) -> Vec<Result<JsonRecord, RecordError>> {
        read_records(path, &ReaderOptions::default()).collect()
    }

    fn values(items: Vec<Result<JsonRecord, RecordError>>) -> Vec<(u64, Value)> {
        items
            .into_iter()
            .map(|r| {
                let r = r.expect("a record");
                (r.line, r.value)
            })
            .collect()
    }

    /// The same two records, whatever form the file has, with every field kept.
    #[test]
    fn every_form_gives_whole_records_with_their_places() {
        let dir = tempfile::tempdir().unwrap();
        let a = serde_json::json!({"id": "a", "text": "x = 1", "repo": {"name": "r", "stars": 3}});
        let b = serde_json::json!({"id": "b", "text": "y = 2", "repo": null});
        let lines = format!("{a}\n\n{b}\n");
        let expected_lines = vec![(1, a.clone()), (3, b.clone())];
        let expected_rows = vec![(1, a.clone()), (2, b.clone())];

        let jsonl = dir.path().join("d.jsonl");
        std::fs::write(&jsonl, &lines).unwrap();
        assert_eq!(values(records(&jsonl)), expected_lines, "JSON Lines");

        let array = dir.path().join("d.json");
        std::fs::write(&array, format!("[{a},\n {b}]")).unwrap();
        assert_eq!(values(records(&array)), expected_rows, "JSON array");

        // gzip under a plain .jsonl name: recognised by its bytes.
        let gz = dir.path().join("g.jsonl");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(lines.as_bytes()).unwrap();
        enc.finish().unwrap();
        assert_eq!(values(records(&gz)), expected_lines, "gzip");

        let zst = dir.path().join("d.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(lines.as_bytes(), 0).unwrap()).unwrap();
        assert_eq!(values(records(&zst)), expected_lines, "zstd");

        // Parquet with a struct column and a null.
        use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
        use arrow_schema::{DataType, Field, Fields};
        let repo_fields = Fields::from(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("stars", DataType::Int64, true),
        ]);
        let repo = StructArray::new(
            repo_fields.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("r"), None])) as ArrayRef,
                Arc::new(Int64Array::from(vec![Some(3), None])),
            ],
            Some(vec![true, false].into()),
        );
        let batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
            ("text", Arc::new(StringArray::from(vec!["x = 1", "y = 2"]))),
            ("repo", Arc::new(repo)),
        ])
        .unwrap();
        let pq = dir.path().join("d.parquet");
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(&pq).unwrap(), batch.schema(), None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        assert_eq!(values(records(&pq)), expected_rows, "Parquet");

        // Any other file: one record of its text, its path the id, place 0 as for documents.
        let txt = dir.path().join("main.py");
        std::fs::write(&txt, "print(1)\n").unwrap();
        let id = txt.display().to_string();
        assert_eq!(
            values(records(&txt)),
            vec![(0, serde_json::json!({"text": "print(1)\n", "id": id}))],
            "text"
        );
    }

    #[test]
    fn bad_records_are_items_and_unreadable_files_are_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, "{\"id\": \"a\"}\n{not json\n{\"id\": \"c\"}\n").unwrap();
        let items = records(&p);
        assert_eq!(items.len(), 3);
        let e = items[1].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (2, RecordErrorKind::InvalidJson));
        assert_eq!(items[2].as_ref().unwrap().line, 3);

        let missing = records(&dir.path().join("gone.jsonl"));
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].as_ref().unwrap_err().kind, RecordErrorKind::Io);

        let not_parquet = dir.path().join("x.parquet");
        std::fs::write(&not_parquet, "not parquet").unwrap();
        let items = records(&not_parquet);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().unwrap_err().kind, RecordErrorKind::Io);
    }
}
