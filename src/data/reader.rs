use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One document to score.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    pub text: String,
    /// The file it came from, or `<stdin>`.
    pub source: String,
    /// 1-based line for JSONL; 0 for a whole-file text document.
    pub line: u64,
    /// The record's `metadata` object, passed through untouched.
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordErrorKind {
    InvalidJson,
    InvalidUtf8,
    MissingField,
    WrongType,
    EmptyText,
    Io,
}

/// A record that could not be read; the stream goes on after it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub source: String,
    pub line: u64,
    pub field: Option<String>,
    pub kind: RecordErrorKind,
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
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

/// A problem with the inputs as a whole, found before reading starts.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("input {path}: {message}")]
    Input { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// By extension for files; for stdin, JSONL if the first non-blank byte is `{`.
    #[default]
    Auto,
    Jsonl,
    Text,
}

#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Field with the text; dotted paths reach into objects (`metadata.content`).
    pub text_field: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone)]
struct Input {
    path: Option<PathBuf>,
    jsonl: bool,
    compression: Compression,
}

/// Opens every input (checking they exist) and returns a lazy stream over their documents.
pub fn read_documents(
    inputs: &[PathBuf],
    opts: &ReaderOptions,
) -> Result<DocumentStream, DataError> {
    let mut queue = VecDeque::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            queue.push_back(Input {
                path: None,
                jsonl: opts.format != InputFormat::Text,
                compression: Compression::None,
            });
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|e| DataError::Input {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_dir(p, &mut files).map_err(|e| DataError::Input {
                path: p.clone(),
                message: e.to_string(),
            })?;
            queue.extend(files.into_iter().map(|f| classify(f, opts.format)));
        } else {
            queue.push_back(classify(p.clone(), opts.format));
        }
    }
    Ok(DocumentStream {
        queue,
        current: None,
        opts: opts.clone(),
    })
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect_dir(&e, out)?;
        } else {
            out.push(e);
        }
    }
    Ok(())
}

fn classify(path: PathBuf, format: InputFormat) -> Input {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s.to_string(), Compression::Gzip)
    } else if let Some(s) = name
        .strip_suffix(".zst")
        .or_else(|| name.strip_suffix(".zstd"))
    {
        (s.to_string(), Compression::Zstd)
    } else {
        (name.clone(), Compression::None)
    };
    let jsonl = match format {
        InputFormat::Jsonl => true,
        InputFormat::Text => false,
        InputFormat::Auto => [".jsonl", ".json", ".ndjson"]
            .iter()
            .any(|e| stem.ends_with(e)),
    };
    Input {
        path: Some(path),
        jsonl,
        compression,
    }
}

struct OpenInput {
    source: String,
    reader: Box<dyn BufRead>,
    jsonl: bool,
    line: u64,
    /// The first line of stdin, peeked to decide the format.
    pending: Option<Vec<u8>>,
}

/// Documents of all inputs in order; each item is a document or the error of one record.
pub struct DocumentStream {
    queue: VecDeque<Input>,
    current: Option<OpenInput>,
    opts: ReaderOptions,
}

impl Iterator for DocumentStream {
    type Item = Result<Document, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.current.is_none() {
                let input = self.queue.pop_front()?;
                match open(&input, &self.opts) {
                    Ok(o) => self.current = Some(o),
                    Err(e) => return Some(Err(e)),
                }
            }
            let cur = self.current.as_mut().expect("set above");
            if !cur.jsonl {
                let item = read_whole_text(cur);
                self.current = None;
                return item;
            }
            match next_line(cur) {
                Ok(None) => self.current = None,
                Ok(Some(bytes)) => {
                    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    return Some(parse_record(&bytes, &cur.source, cur.line, &self.opts));
                }
                Err(e) => {
                    let err = RecordError {
                        source: cur.source.clone(),
                        line: cur.line,
                        field: None,
                        kind: RecordErrorKind::Io,
                        message: format!("read error, rest of the file skipped: {e}"),
                    };
                    self.current = None;
                    return Some(Err(err));
                }
            }
        }
    }
}

fn open(input: &Input, opts: &ReaderOptions) -> Result<OpenInput, RecordError> {
    let source = input
        .path
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let io_err = |e: io::Error| RecordError {
        source: source.clone(),
        line: 0,
        field: None,
        kind: RecordErrorKind::Io,
        message: e.to_string(),
    };
    let raw: Box<dyn Read> = match &input.path {
        Some(p) => Box::new(File::open(p).map_err(io_err)?),
        None => Box::new(io::stdin()),
    };
    let raw: Box<dyn Read> = match input.compression {
        Compression::None => raw,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw).map_err(io_err)?),
    };
    let mut o = OpenInput {
        source: source.clone(),
        reader: Box::new(BufReader::with_capacity(1 << 16, raw)),
        jsonl: input.jsonl,
        line: 0,
        pending: None,
    };
    if input.path.is_none() && opts.format == InputFormat::Auto {
        // Peek the first line of stdin to choose between JSONL and one text document.
        let mut first = Vec::new();
        o.reader.read_until(b'\n', &mut first).map_err(io_err)?;
        o.jsonl = first.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        o.pending = Some(first);
    }
    Ok(o)
}

fn next_line(cur: &mut OpenInput) -> io::Result<Option<Vec<u8>>> {
    let mut buf = match cur.pending.take() {
        Some(p) => p,
        None => {
            let mut b = Vec::new();
            if cur.reader.read_until(b'\n', &mut b)? == 0 {
                return Ok(None);
            }
            b
        }
    };
    if buf.is_empty() {
        return Ok(None);
    }
    cur.line += 1;
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(buf))
}

fn read_whole_text(cur: &mut OpenInput) -> Option<Result<Document, RecordError>> {
    let mut bytes = cur.pending.take().unwrap_or_default();
    let err = |kind, message: String| RecordError {
        source: cur.source.clone(),
        line: 0,
        field: None,
        kind,
        message,
    };
    if let Err(e) = cur.reader.read_to_end(&mut bytes) {
        return Some(Err(err(RecordErrorKind::Io, e.to_string())));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Some(Err(err(
                RecordErrorKind::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.utf8_error().valid_up_to()),
            )))
        }
    };
    if text.trim().is_empty() {
        return Some(Err(err(
            RecordErrorKind::EmptyText,
            "empty document".into(),
        )));
    }
    Some(Ok(Document {
        id: cur.source.clone(),
        text,
        source: cur.source.clone(),
        line: 0,
        metadata: None,
    }))
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn parse_record(
    bytes: &[u8],
    source: &str,
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
    let s = std::str::from_utf8(bytes).map_err(|e| {
        err(
            RecordErrorKind::InvalidUtf8,
            None,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let v: Value = serde_json::from_str(s).map_err(|e| {
        err(
            RecordErrorKind::InvalidJson,
            None,
            format!("invalid JSON: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(err(
            RecordErrorKind::WrongType,
            None,
            format!("expected a JSON object, found {}", type_name(&v)),
        ));
    }
    let tf = opts.text_field.as_str();
    let text = match lookup(&v, tf) {
        None => {
            return Err(err(
                RecordErrorKind::MissingField,
                Some(tf),
                "missing text".into(),
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(err(
                RecordErrorKind::WrongType,
                Some(tf),
                format!("expected a string text, found {}", type_name(other)),
            ))
        }
    };
    if text.trim().is_empty() {
        return Err(err(
            RecordErrorKind::EmptyText,
            Some(tf),
            "empty text".into(),
        ));
    }
    let file_name = Path::new(source)
        .file_name()
        .map_or(source.to_string(), |n| n.to_string_lossy().into_owned());
    let id = match lookup(&v, &opts.id_field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => format!("{file_name}:{line}"),
        Some(other) => {
            return Err(err(
                RecordErrorKind::WrongType,
                Some(&opts.id_field),
                format!("expected a string or number id, found {}", type_name(other)),
            ))
        }
    };
    let metadata = v.get("metadata").cloned();
    Ok(Document {
        id,
        text,
        source: source.to_string(),
        line,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn read(paths: &[PathBuf]) -> Vec<Result<Document, RecordError>> {
        read_documents(paths, &ReaderOptions::default())
            .unwrap()
            .collect()
    }

    #[test]
    fn mixed_good_and_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        data.extend(b"{\"id\": \"a\", \"text\": \"one\", \"metadata\": {\"lang\": \"py\"}}\n");
        data.extend(b"{\"id\": \"b\", \"text\": \n");
        data.extend(b"{\"id\": \"c\", \"text\": \"caf\xff\"}\n");
        data.extend(b"\n   \n");
        data.extend(b"{\"id\": \"d\"}\r\n");
        data.extend(b"{\"id\": \"e\", \"text\": 42}\n");
        data.extend(b"{\"id\": 7, \"text\": \"  \"}\n");
        data.extend(b"{\"text\": \"last\"}");
        let p = write(d.path(), "m.jsonl", &data);
        let items = read(&[p]);
        assert_eq!(items.len(), 7);
        let doc = items[0].as_ref().unwrap();
        assert_eq!(
            (doc.id.as_str(), doc.text.as_str(), doc.line),
            ("a", "one", 1)
        );
        assert_eq!(doc.metadata.as_ref().unwrap()["lang"], "py");
        let errs: Vec<&RecordError> = items.iter().filter_map(|i| i.as_ref().err()).collect();
        let kinds: Vec<(u64, RecordErrorKind)> = errs.iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (2, RecordErrorKind::InvalidJson),
                (3, RecordErrorKind::InvalidUtf8),
                (6, RecordErrorKind::MissingField),
                (7, RecordErrorKind::WrongType),
                (8, RecordErrorKind::EmptyText),
            ]
        );
        assert!(
            errs[3]
                .to_string()
                .ends_with("m.jsonl:7: field 'text': expected a string text, found number"),
            "{}",
            errs[3]
        );
        let last = items[6].as_ref().unwrap();
        assert_eq!((last.id.as_str(), last.line), ("m.jsonl:9", 9));
    }

    #[test]
    fn compressed_inputs_and_dotted_fields() {
        let d = tempfile::tempdir().unwrap();
        let line = b"{\"id\": 1, \"meta\": {\"content\": \"x = 1\"}}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(line).unwrap();
        let gz_path = write(d.path(), "a.jsonl.gz", &gz.finish().unwrap());
        let zst_path = write(
            d.path(),
            "b.jsonl.zst",
            &zstd::encode_all(&line[..], 3).unwrap(),
        );
        let opts = ReaderOptions {
            text_field: "meta.content".into(),
            ..Default::default()
        };
        let items: Vec<_> = read_documents(&[gz_path, zst_path], &opts)
            .unwrap()
            .collect();
        assert_eq!(items.len(), 2);
        for i in items {
            let doc = i.unwrap();
            assert_eq!((doc.id.as_str(), doc.text.as_str()), ("1", "x = 1"));
        }
    }

    #[test]
    fn truncated_gzip_reports_then_continues() {
        let d = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..2000 {
            writeln!(
                gz,
                "{{\"id\": {i}, \"text\": \"line number {i} with some padding text\"}}"
            )
            .unwrap();
        }
        let bytes = gz.finish().unwrap();
        let bad = write(d.path(), "bad.jsonl.gz", &bytes[..bytes.len() / 2]);
        let good = write(d.path(), "good.jsonl", b"{\"text\": \"after\"}\n");
        let items = read(&[bad, good]);
        let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, RecordErrorKind::Io);
        assert!(errors[0].to_string().contains("bad.jsonl.gz"));
        assert_eq!(items.last().unwrap().as_ref().unwrap().text, "after");
    }

    #[test]
    fn text_files_and_directories() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        write(d.path(), "b.py", b"print(2)\n");
        write(d.path(), "a.rs", b"fn main() {}\n");
        write(&d.path().join("sub"), "c.txt", b"hello");
        write(d.path(), ".hidden", b"secret");
        write(d.path(), "empty.txt", b"  \n");
        write(d.path(), "bin.txt", b"ok\xfe");
        let items = read(&[d.path().to_path_buf()]);
        let ok: Vec<String> = items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .map(|d| d.text.clone())
            .collect();
        assert_eq!(ok, vec!["fn main() {}\n", "print(2)\n", "hello"]);
        let kinds: Vec<_> = items
            .iter()
            .filter_map(|i| i.as_ref().err())
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![RecordErrorKind::InvalidUtf8, RecordErrorKind::EmptyText]
        );
    }

    #[test]
    fn missing_input_fails_up_front() {
        let err = read_documents(
            &[PathBuf::from("/no/such/file.jsonl")],
            &ReaderOptions::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("/no/such/file.jsonl"));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let d = tempfile::tempdir().unwrap();
            let p = write(d.path(), "r.jsonl", &bytes);
            let n = read(&[p]).len();
            let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.iter().all(|b| b.is_ascii_whitespace())).count();
            proptest::prop_assert_eq!(n, lines);
        }
    }
}
