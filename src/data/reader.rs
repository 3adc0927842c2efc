//! What a document is, what can go wrong reading one, and how one JSON record or one whole
//! text becomes a [`Document`]. Finding and opening the inputs is [`super::inputs`]' job.

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;

use serde_json::Value;

use super::json::{lookup, missing_message, type_name};
use super::open::{max_record_bytes, over_limit, Compression, BUF_SIZE, MAX_RECORD_ENV};

/// One document to score, with where it came from so that results and errors point back to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The record's id; when absent, `{file name}:{line}` (JSON Lines; `{file name}:{row}` for
    /// JSON arrays and Parquet) or the path (whole-file text),
    /// so every output row can still be joined back to its input.
    pub id: String,
    pub text: String,
    /// The file path (as given, or as found under a given directory), or `<stdin>`.
    pub source: String,
    /// 1-based line for JSON Lines, 1-based row for a JSON array or Parquet file; 0 for a
    /// whole-file text document.
    pub line: u64,
    /// The record's `metadata` field, passed through untouched (`null` counts as absent).
    pub metadata: Option<Value>,
}

/// What was wrong with a skipped record, so callers can count and group skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordErrorKind {
    /// The line is not valid JSON.
    InvalidJson,
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// The text field is absent.
    MissingField,
    /// A field, or the record itself, has the wrong JSON type.
    WrongType,
    /// The text is empty or whitespace only: there is nothing to score.
    EmptyText,
    /// The file could not be opened, or reading it failed (e.g. a corrupt or truncated
    /// gzip/zstd stream); the rest of that file is skipped.
    Io,
    /// The record (a line, an array element, or a whole text file) is over
    /// [`crate::data::open::max_record_bytes`], or a file read whole as one JSON value over
    /// [`crate::data::open::max_whole_file_bytes`]: no model context holds it, and reading it
    /// whole could exhaust memory.
    TooLarge,
}

/// One record that could not be read. It is an item of the stream, not its end: the caller
/// reports and counts it, and the stream goes on with the next record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// The file path, or `<stdin>`.
    pub source: String,
    /// 1-based line (for [`RecordErrorKind::Io`], the line being read when it failed); 0 when
    /// the error is about a whole file.
    pub line: u64,
    /// The field at fault, as configured (e.g. `metadata.content`), when there is one.
    pub field: Option<String>,
    pub kind: RecordErrorKind,
    /// What went wrong, without the location; `Display` gives the full `file:line: ...` form.
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field '{field}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RecordError {}

/// A problem with the inputs as a whole, found by [`read_documents`](super::read_documents) before anything is read,
/// so that a typo fails at once instead of after a model load or hours of scoring.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("input not found: {}", path.display())]
    NotFound { path: PathBuf },
    #[error("input {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("bad glob pattern '{pattern}': {message}")]
    Pattern { pattern: String, message: String },
    #[error("pattern '{pattern}' matched no files")]
    NoMatch { pattern: String },
    #[error(
        "output {} is also an input ({}): hesnr never writes over its inputs; name another file",
        output.display(),
        input.display()
    )]
    OutputIsInput { output: PathBuf, input: PathBuf },
}

/// How inputs are parsed. `Auto` decides per file by extension, and for stdin (or a pipe such
/// as `<(zcat ...)`) by content; the others force one layout on every input. Compression is
/// always detected from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// `.jsonl`, `.json`, `.ndjson` (optionally `.gz`, `.zst`, `.zstd`) are JSON Lines, or a
    /// JSON array of records when the first non-blank byte is `[`; `.parquet`/`.pq` (or a file
    /// starting with the Parquet magic) are Parquet; other files are one text document each;
    /// stdin is JSON Lines if its first non-blank byte is `{`, a JSON array if it is `[` then
    /// `{`, else text.
    #[default]
    Auto,
    /// Every input is JSON Lines (or a JSON array of records).
    Jsonl,
    /// Every input is one text document.
    Text,
}

/// Which fields hold the text and the id, so datasets with other schemas (`content`,
/// `metadata.content`, ...) need no conversion step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderOptions {
    /// Field with the text (default `text`). A dotted path reaches into nested objects
    /// (`metadata.content`) and arrays (`messages.0.content`); a key that itself contains the
    /// dots wins over the path.
    pub text_field: String,
    /// Field with the id (default `id`), a string or an integer; dotted like `text_field`.
    pub id_field: String,
    pub format: InputFormat,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        Self {
            text_field: "text".into(),
            id_field: "id".into(),
            format: InputFormat::Auto,
        }
    }
}

/// Integers, and floats with an integral value (pandas turns an int column with gaps into
/// floats), as their integer text.
fn integer_id(n: &serde_json::Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        return Some(n.to_string());
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15).then(|| format!("{}", f as i64))
}

/// The [`Document`] of one JSON record at `source:line`: the text and id fields as configured,
/// `metadata` passed through; an absent or null id becomes `{id_prefix}:{line}`.
pub(crate) fn to_document(
    v: Value,
    source: &str,
    id_prefix: &str,
    line: u64,
    opts: &ReaderOptions,
) -> Result<Document, RecordError> {
    let err = |kind, field: Option<&str>, message: String| RecordError {
        source: source.to_string(),
        line,
        field: field.map(str::to_string),
        kind,
        message,
    };
    let Value::Object(obj) = &v else {
        return Err(err(
            RecordErrorKind::WrongType,
            None,
            format!("expected a JSON object, found {}", type_name(&v)),
        ));
    };
    let tf = opts.text_field.as_str();
    let text = match lookup(&v, tf) {
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(err(
                RecordErrorKind::EmptyText,
                Some(tf),
                "empty or whitespace-only text".into(),
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(err(
                RecordErrorKind::WrongType,
                Some(tf),
                format!("expected a string, found {}", type_name(other)),
            ))
        }
        None => {
            return Err(err(
                RecordErrorKind::MissingField,
                Some(tf),
                missing_message(obj),
            ))
        }
    };
    let idf = opts.id_field.as_str();
    let id = match lookup(&v, idf) {
        None | Some(Value::Null) => format!("{id_prefix}:{line}"),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => integer_id(n).ok_or_else(|| {
            err(
                RecordErrorKind::WrongType,
                Some(idf),
                format!("expected a string or an integer, found {n}"),
            )
        })?,
        Some(other) => {
            return Err(err(
                RecordErrorKind::WrongType,
                Some(idf),
                format!(
                    "expected a string or an integer, found {}",
                    type_name(other)
                ),
            ))
        }
    };
    let metadata = match v {
        Value::Object(mut map) => map.remove("metadata").filter(|m| !m.is_null()),
        _ => None,
    };
    Ok(Document {
        id,
        text,
        source: source.to_string(),
        line,
        metadata,
    })
}

pub(crate) fn whole_file_error(
    source: &str,
    kind: RecordErrorKind,
    message: String,
) -> RecordError {
    RecordError {
        source: source.to_string(),
        line: 0,
        field: None,
        kind,
        message,
    }
}

/// Reads a whole input as one document (id and source: `source`), stopping early at the first
/// invalid UTF-8 byte (so a stray binary file in a data folder is rejected without being
/// loaded whole). A leading BOM is dropped.
pub(crate) fn read_whole_text(
    source: &str,
    reader: &mut dyn Read,
    compression: Compression,
) -> Result<Document, RecordError> {
    let err = |kind, message| whole_file_error(source, kind, message);
    let mut bytes = Vec::new();
    let mut valid = 0;
    let limit = max_record_bytes();
    loop {
        if bytes.len() > limit {
            return Err(err(
                RecordErrorKind::TooLarge,
                format!(
                    "{}: too large to be one document",
                    over_limit("file", limit, MAX_RECORD_ENV)
                ),
            ));
        }
        let n = match Read::take(&mut *reader, BUF_SIZE as u64).read_to_end(&mut bytes) {
            Ok(n) => n,
            Err(e) => {
                let what = compression.read_failure();
                return Err(err(RecordErrorKind::Io, format!("{what}: {e}")));
            }
        };
        match std::str::from_utf8(&bytes[valid..]) {
            Ok(_) => valid = bytes.len(),
            // An invalid byte, or a sequence cut short by the end of the file.
            Err(e) if e.error_len().is_some() || n == 0 => {
                return Err(err(
                    RecordErrorKind::InvalidUtf8,
                    format!("invalid UTF-8 at byte {}", valid + e.valid_up_to()),
                ));
            }
            // A character split across two reads: check it with the next read.
            Err(e) => valid += e.valid_up_to(),
        }
        if n == 0 {
            break;
        }
    }
    let mut text = String::from_utf8(bytes).map_err(|e| {
        err(
            RecordErrorKind::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
        )
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    if text.trim().is_empty() {
        return Err(err(
            RecordErrorKind::EmptyText,
            "empty or whitespace-only file".into(),
        ));
    }
    Ok(Document {
        id: source.to_string(),
        text,
        source: source.to_string(),
        line: 0,
        metadata: None,
    })
}
