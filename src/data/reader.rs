//! Input readers: every supported input becomes a lazy stream of [`Document`]s, with one
//! [`RecordError`] item per bad record instead of an abort.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The name used for standard input in sources, ids and messages.
const STDIN: &str = "<stdin>";
const BUF_SIZE: usize = 1 << 16;
const BOM: &[u8] = b"\xEF\xBB\xBF";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";
const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";

/// One document to score, with where it came from so that results and errors point back to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The record's id; when absent, `{file name}:{line}` (JSONL) or the path (whole-file text),
    /// so every output row can still be joined back to its input.
    pub id: String,
    pub text: String,
    /// The file path (as given, or as found under a given directory), or `<stdin>`.
    pub source: String,
    /// 1-based line for JSONL; 0 for a whole-file text document.
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

/// A problem with the inputs as a whole, found by [`read_documents`] before anything is read,
/// so that a typo fails at once instead of after a model load or hours of scoring.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("input not found: {}", path.display())]
    NotFound { path: PathBuf },
    #[error("input {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// How inputs are parsed. `Auto` decides per file by extension, and for stdin (or a pipe such
/// as `<(zcat ...)`) by content; the others force one layout on every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// `.jsonl`, `.json`, `.ndjson` (optionally `.gz`, `.zst`, `.zstd`) are JSON Lines, other
    /// files are one text document each; stdin is JSONL if its first non-blank byte is `{`.
    #[default]
    Auto,
    /// Every input is JSON Lines.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Jsonl,
    Text,
    /// Decided by the first non-blank byte.
    Sniff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
    /// Decided by magic bytes (stdin and pipes, which have no useful name).
    Sniff,
}

impl Compression {
    /// What a read error most likely means: for compressed input, a damaged stream.
    fn read_failure(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip stream corrupt or truncated",
            Compression::Zstd => "zstd stream corrupt or truncated",
            Compression::None | Compression::Sniff => "read failed",
        }
    }
}

#[derive(Debug, Clone)]
struct Input {
    /// `None` is stdin.
    path: Option<PathBuf>,
    layout: Layout,
    compression: Compression,
}

/// Checks every input and returns a lazy stream over the documents of all of them, in order.
///
/// `-` is stdin; a directory expands to its non-hidden files, recursively, sorted by name. A
/// missing input fails here, naming it, before anything is read. Memory use does not grow with
/// the corpus: JSONL is read one line at a time.
pub fn read_documents(
    inputs: &[PathBuf],
    opts: &ReaderOptions,
) -> Result<DocumentStream, DataError> {
    let mut queue = VecDeque::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            queue.push_back(Input {
                path: None,
                layout: forced_layout(opts.format).unwrap_or(Layout::Sniff),
                compression: Compression::Sniff,
            });
            continue;
        }
        let meta = input_metadata(p)?;
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_dir(p, &mut HashSet::new(), &mut files)?;
            if files.is_empty() {
                tracing::warn!("input directory {} has no files", p.display());
            }
            queue.extend(files.into_iter().map(|f| classify(f, opts.format, true)));
        } else {
            queue.push_back(classify(p.clone(), opts.format, meta.is_file()));
        }
    }
    Ok(DocumentStream {
        queue,
        current: None,
        opts: opts.clone(),
    })
}

fn forced_layout(format: InputFormat) -> Option<Layout> {
    match format {
        InputFormat::Auto => None,
        InputFormat::Jsonl => Some(Layout::Jsonl),
        InputFormat::Text => Some(Layout::Text),
    }
}

/// What an input path is; a missing one is [`DataError::NotFound`], so a typo fails at once.
pub(crate) fn input_metadata(p: &Path) -> Result<std::fs::Metadata, DataError> {
    std::fs::metadata(p).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => DataError::NotFound {
            path: p.to_path_buf(),
        },
        _ => DataError::Io {
            path: p.to_path_buf(),
            source: e,
        },
    })
}

/// Appends the files under `dir` (depth first, sorted by name, hidden entries skipped).
pub(crate) fn collect_dir(
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<(), DataError> {
    // A symlink back up the tree must not recurse forever.
    if let Ok(canonical) = dir.canonicalize() {
        if !seen.insert(canonical) {
            return Ok(());
        }
    }
    let io_err = |e| DataError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    for p in entries {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => collect_dir(&p, seen, out)?,
            // Sockets, FIFOs and devices in a data folder are not documents (and could block).
            Ok(m) if !m.is_file() => tracing::debug!("skipping special file {}", p.display()),
            // Files, and broken links, whose error is then reported as a record when read.
            _ => out.push(p),
        }
    }
    Ok(())
}

fn classify(path: PathBuf, format: InputFormat, regular_file: bool) -> Input {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name
        .strip_suffix(".zst")
        .or_else(|| name.strip_suffix(".zstd"))
    {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let is_jsonl = [".jsonl", ".json", ".ndjson"]
        .iter()
        .any(|e| stem.ends_with(e));
    let (layout, compression) = match forced_layout(format) {
        Some(l) => (l, compression),
        None if is_jsonl => (Layout::Jsonl, compression),
        // A pipe (`<(zcat data.jsonl.gz)`) has a meaningless name: look at its content.
        None if !regular_file && compression == Compression::None => {
            (Layout::Sniff, Compression::Sniff)
        }
        None => (Layout::Text, compression),
    };
    Input {
        path: Some(path),
        layout,
        compression,
    }
}

/// The input being read.
struct OpenInput {
    source: String,
    /// File name (or `<stdin>`) for generated ids.
    id_prefix: String,
    reader: Box<dyn BufRead + Send>,
    jsonl: bool,
    compression: Compression,
    /// Lines read so far.
    line: u64,
    /// Reused line buffer.
    buf: Vec<u8>,
}

/// The documents of all inputs in order, each item a [`Document`] or the [`RecordError`] of
/// one record. Returned by [`read_documents`]; inputs are opened one at a time as reached.
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
                match open(&input) {
                    Ok(o) => self.current = Some(o),
                    Err(e) => return Some(Err(e)),
                }
            }
            let cur = self.current.as_mut()?;
            if !cur.jsonl {
                let item = read_whole_text(cur);
                self.current = None;
                return Some(item);
            }
            cur.buf.clear();
            match cur.reader.read_until(b'\n', &mut cur.buf) {
                Ok(0) => self.current = None,
                Ok(_) => {
                    cur.line += 1;
                    let mut bytes = cur.buf.as_slice();
                    bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                    bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                    if cur.line == 1 {
                        bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
                    }
                    if is_blank(bytes) {
                        continue;
                    }
                    return Some(parse_record(bytes, cur, &self.opts));
                }
                Err(e) => {
                    let what = cur.compression.read_failure();
                    let err = RecordError {
                        source: cur.source.clone(),
                        line: cur.line + 1,
                        field: None,
                        kind: RecordErrorKind::Io,
                        message: format!("{what}, rest of the file skipped: {e}"),
                    };
                    self.current = None;
                    return Some(Err(err));
                }
            }
        }
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

fn open(input: &Input) -> Result<OpenInput, RecordError> {
    match &input.path {
        None => open_reader(
            STDIN.to_string(),
            Box::new(io::stdin()),
            input.layout,
            input.compression,
        ),
        Some(p) => {
            let source = p.display().to_string();
            match File::open(p) {
                Ok(f) => open_reader(source, Box::new(f), input.layout, input.compression),
                Err(e) => Err(whole_file_error(
                    source,
                    RecordErrorKind::Io,
                    format!("cannot open: {e}"),
                )),
            }
        }
    }
}

fn whole_file_error(source: String, kind: RecordErrorKind, message: String) -> RecordError {
    RecordError {
        source,
        line: 0,
        field: None,
        kind,
        message,
    }
}

/// Wraps a raw byte source in its decompressor and decides the layout where asked to.
fn open_reader(
    source: String,
    mut raw: Box<dyn Read + Send>,
    layout: Layout,
    compression: Compression,
) -> Result<OpenInput, RecordError> {
    let io_err = |e: io::Error| {
        whole_file_error(
            source.clone(),
            RecordErrorKind::Io,
            format!("read failed: {e}"),
        )
    };
    let compression = match compression {
        Compression::Sniff => {
            let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
            raw.by_ref()
                .take(ZSTD_MAGIC.len() as u64)
                .read_to_end(&mut head)
                .map_err(io_err)?;
            let c = if head.starts_with(GZIP_MAGIC) {
                Compression::Gzip
            } else if head.starts_with(ZSTD_MAGIC) {
                Compression::Zstd
            } else {
                Compression::None
            };
            raw = Box::new(Cursor::new(head).chain(raw));
            c
        }
        c => c,
    };
    let decoded: Box<dyn Read + Send> = match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw).map_err(io_err)?),
        Compression::None | Compression::Sniff => raw,
    };
    let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(BUF_SIZE, decoded));
    let jsonl = match layout {
        Layout::Jsonl => true,
        Layout::Text => false,
        Layout::Sniff => {
            let (jsonl, prefix) = sniff_jsonl(&mut reader).map_err(io_err)?;
            if !prefix.is_empty() {
                reader = Box::new(Cursor::new(prefix).chain(reader));
            }
            jsonl
        }
    };
    let id_prefix = if source == STDIN {
        source.clone()
    } else {
        Path::new(&source)
            .file_name()
            .map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned())
    };
    Ok(OpenInput {
        source,
        id_prefix,
        reader,
        jsonl,
        compression,
        line: 0,
        buf: Vec::new(),
    })
}

/// Whether the first non-blank byte (after a UTF-8 BOM) is `{`. Returns the blank bytes it
/// consumed so that they can be put back: they are part of a text document, and line numbers
/// of JSONL count them.
fn sniff_jsonl(reader: &mut Box<dyn BufRead + Send>) -> io::Result<(bool, Vec<u8>)> {
    let mut prefix = Vec::new();
    if reader.fill_buf()?.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((false, prefix));
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let jsonl = buf[i] == b'{';
                prefix.extend_from_slice(&buf[..i]);
                reader.consume(i);
                return Ok((jsonl, prefix));
            }
            None => {
                let n = buf.len();
                prefix.extend_from_slice(buf);
                reader.consume(n);
            }
        }
    }
}

/// Reads a whole input as one document, stopping early at the first invalid UTF-8 byte (so a
/// stray binary file in a data folder is rejected without being loaded whole).
fn read_whole_text(cur: &mut OpenInput) -> Result<Document, RecordError> {
    let err = |kind, message| whole_file_error(cur.source.clone(), kind, message);
    let mut bytes = Vec::new();
    let mut valid = 0;
    loop {
        let n = match cur
            .reader
            .by_ref()
            .take(BUF_SIZE as u64)
            .read_to_end(&mut bytes)
        {
            Ok(n) => n,
            Err(e) => {
                let what = cur.compression.read_failure();
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
        id: cur.source.clone(),
        text,
        source: cur.source.clone(),
        line: 0,
        metadata: None,
    })
}

/// The value at `path`: the key itself if present, else the dotted path through objects and
/// arrays.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(path) {
        return Some(x);
    }
    if !path.contains('.') {
        return None;
    }
    path.split('.').try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
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

/// Integers, and floats with an integral value (pandas turns an int column with gaps into
/// floats), as their integer text.
fn integer_id(n: &serde_json::Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        return Some(n.to_string());
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15).then(|| format!("{}", f as i64))
}

/// serde_json's message without its position, with the column (the line is the record's).
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    if e.line() == 0 {
        return full;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(m) => format!("{m} at column {}", e.column()),
        None => full,
    }
}

fn parse_record(
    bytes: &[u8],
    cur: &OpenInput,
    opts: &ReaderOptions,
) -> Result<Document, RecordError> {
    let err = |kind, field: Option<&str>, message: String| RecordError {
        source: cur.source.clone(),
        line: cur.line,
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
        let mut m = format!("invalid JSON: {}", json_message(&e));
        if cur.line == 1 && s.trim_start().starts_with('[') {
            m.push_str(" (this reads JSON Lines, one object per line, not a JSON array)");
        }
        err(RecordErrorKind::InvalidJson, None, m)
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
                missing_message(&v),
            ))
        }
    };
    let idf = opts.id_field.as_str();
    let id = match lookup(&v, idf) {
        None | Some(Value::Null) => format!("{}:{}", cur.id_prefix, cur.line),
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
        source: cur.source.clone(),
        line: cur.line,
        metadata,
    })
}

/// "missing", with the record's own top-level fields: usually the fix is a `--text-field`.
fn missing_message(obj: &Value) -> String {
    const SHOWN: usize = 8;
    let keys: Vec<&str> = obj
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if keys.is_empty() {
        return "missing (the record is an empty object)".into();
    }
    let mut list = keys[..keys.len().min(SHOWN)].join(", ");
    if keys.len() > SHOWN {
        list.push_str(", ...");
    }
    format!("missing (the record has: {list})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn read_with(paths: &[PathBuf], opts: &ReaderOptions) -> Vec<Result<Document, RecordError>> {
        read_documents(paths, opts).unwrap().collect()
    }

    fn read(paths: &[PathBuf]) -> Vec<Result<Document, RecordError>> {
        read_with(paths, &ReaderOptions::default())
    }

    fn docs(items: &[Result<Document, RecordError>]) -> Vec<&Document> {
        items
            .iter()
            .map(|i| i.as_ref().expect("a document"))
            .collect()
    }

    fn errors(items: &[Result<Document, RecordError>]) -> Vec<&RecordError> {
        items.iter().filter_map(|i| i.as_ref().err()).collect()
    }

    /// A stream over an in-memory "stdin", as `read_documents` builds for `-`.
    fn stream_from(bytes: &[u8], format: InputFormat) -> DocumentStream {
        let layout = forced_layout(format).unwrap_or(Layout::Sniff);
        let open = open_reader(
            STDIN.into(),
            Box::new(Cursor::new(bytes.to_vec())),
            layout,
            Compression::Sniff,
        )
        .unwrap();
        DocumentStream {
            queue: VecDeque::new(),
            current: Some(open),
            opts: ReaderOptions::default(),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn bad_records_are_items_and_the_stream_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        data.extend(b"{\"id\": \"a\", \"text\": \"one\"}\n");
        data.extend(b"{\"id\": \"b\", \"text\": \n");
        data.extend(b"{\"id\": \"c\", \"text\": \"caf\xff\"}\n");
        data.extend(b"{\"id\": \"d\", \"content\": \"x\"}\n");
        data.extend(b"{\"id\": \"e\", \"text\": 42}\n");
        data.extend(b"{\"id\": \"f\", \"text\": \"six\"}\n");
        let p = write(d.path(), "data.jsonl", &data);
        let items = read(std::slice::from_ref(&p));
        assert_eq!(items.len(), 6);
        assert_eq!(items[0].as_ref().unwrap().id, "a");
        assert_eq!(items[5].as_ref().unwrap().id, "f");
        assert_eq!(items[5].as_ref().unwrap().line, 6);
        let errs: Vec<String> = items[1..5]
            .iter()
            .map(|i| i.as_ref().unwrap_err().to_string())
            .collect();
        let f = p.display();
        assert_eq!(
            errs,
            vec![
                format!("{f}:2: invalid JSON: EOF while parsing a value at column 20"),
                format!("{f}:3: invalid UTF-8 at byte 24"),
                format!("{f}:4: field 'text': missing (the record has: id, content)"),
                format!("{f}:5: field 'text': expected a string, found number"),
            ]
        );
        let kinds: Vec<_> = items[1..5]
            .iter()
            .map(|i| i.as_ref().unwrap_err().kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                RecordErrorKind::InvalidJson,
                RecordErrorKind::InvalidUtf8,
                RecordErrorKind::MissingField,
                RecordErrorKind::WrongType,
            ]
        );
    }

    #[test]
    fn every_error_kind_names_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        let data = b"{\"text\": \"   \\n\\t\"}\n\
            [1, 2]\n\
            {\"text\": \"ok\", \"id\": [1]}\n\
            {\"text\": \"ok\", \"id\": 1.5}\n\
            {\"text\": null}\n\
            {\"id\": 1, \"text\": {\"a\": 1}\n\
            {}\n";
        let p = write(d.path(), "e.jsonl", data);
        let items = read(std::slice::from_ref(&p));
        let f = p.display();
        let got: Vec<(RecordErrorKind, Option<&str>, String)> = errors(&items)
            .iter()
            .map(|e| (e.kind, e.field.as_deref(), e.to_string()))
            .collect();
        use RecordErrorKind::*;
        assert_eq!(
            got,
            vec![
                (
                    EmptyText,
                    Some("text"),
                    format!("{f}:1: field 'text': empty or whitespace-only text")
                ),
                (
                    WrongType,
                    None,
                    format!("{f}:2: expected a JSON object, found array")
                ),
                (
                    WrongType,
                    Some("id"),
                    format!("{f}:3: field 'id': expected a string or an integer, found array")
                ),
                (
                    WrongType,
                    Some("id"),
                    format!("{f}:4: field 'id': expected a string or an integer, found 1.5")
                ),
                (
                    WrongType,
                    Some("text"),
                    format!("{f}:5: field 'text': expected a string, found null")
                ),
                (
                    InvalidJson,
                    None,
                    format!("{f}:6: invalid JSON: EOF while parsing an object at column 26")
                ),
                (
                    MissingField,
                    Some("text"),
                    format!("{f}:7: field 'text': missing (the record is an empty object)")
                ),
            ]
        );
        assert_eq!(items.len(), 7);
    }

    #[test]
    fn a_json_array_file_gets_a_hint() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a.json", b"[\n{\"text\": \"x\"}\n]\n");
        let items = read(&[p]);
        let e = items[0].as_ref().unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::InvalidJson);
        assert!(e.message.contains("not a JSON array"), "{e}");
        assert_eq!(items[1].as_ref().unwrap().text, "x");
    }

    #[test]
    fn jsonl_line_endings_blank_lines_and_ids() {
        let d = tempfile::tempdir().unwrap();
        let data = b"\xEF\xBB\xBF{\"id\": \"s\", \"text\": \"bom\"}\r\n\
            \r\n\
            \n   \t\n\
            {\"id\": 12345678901234, \"text\": \"int\"}\r\n\
            {\"id\": 7.0, \"text\": \"pandas float\"}\n\
            {\"id\": null, \"text\": \"null id\"}\n\
            {\"text\": \"no id\", \"metadata\": {\"lang\": \"py\", \"stars\": [1, 2]}}\n\
            {\"text\": \"crlf\\r\\nin text\", \"metadata\": null}";
        let p = write(d.path(), "sub/x.jsonl", data);
        let items = read(std::slice::from_ref(&p));
        let got: Vec<(&str, &str, u64)> = docs(&items)
            .iter()
            .map(|d| (d.id.as_str(), d.text.as_str(), d.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("s", "bom", 1),
                ("12345678901234", "int", 5),
                ("7", "pandas float", 6),
                ("x.jsonl:7", "null id", 7),
                ("x.jsonl:8", "no id", 8),
                ("x.jsonl:9", "crlf\r\nin text", 9),
            ]
        );
        let all = docs(&items);
        assert!(all.iter().all(|d| d.source == p.display().to_string()));
        assert_eq!(
            all[4].metadata,
            Some(serde_json::json!({"lang": "py", "stars": [1, 2]}))
        );
        assert_eq!(all[0].metadata, None);
        assert_eq!(all[5].metadata, None);
    }

    #[test]
    fn dotted_field_paths() {
        let d = tempfile::tempdir().unwrap();
        let data = b"{\"metadata\": {\"content\": \"nested\", \"doc\": {\"id\": 3}}}\n\
            {\"metadata.content\": \"literal key wins\", \"metadata\": {\"content\": \"no\"}}\n\
            {\"metadata\": {\"content\": [\"a\"]}}\n\
            {\"metadata\": \"flat\"}\n";
        let p = write(d.path(), "n.jsonl", data);
        let opts = ReaderOptions {
            text_field: "metadata.content".into(),
            id_field: "metadata.doc.id".into(),
            ..Default::default()
        };
        let items = read_with(&[p], &opts);
        let a = items[0].as_ref().unwrap();
        assert_eq!((a.id.as_str(), a.text.as_str()), ("3", "nested"));
        assert_eq!(a.metadata.as_ref().unwrap()["content"], "nested");
        let b = items[1].as_ref().unwrap();
        assert_eq!(
            (b.id.as_str(), b.text.as_str()),
            ("n.jsonl:2", "literal key wins")
        );
        let e = items[2].as_ref().unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (RecordErrorKind::WrongType, Some("metadata.content"))
        );
        assert!(e
            .to_string()
            .ends_with("n.jsonl:3: field 'metadata.content': expected a string, found array"));
        let e = items[3].as_ref().unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::MissingField);
        assert!(
            e.to_string().ends_with(
                "n.jsonl:4: field 'metadata.content': missing (the record has: metadata)"
            ),
            "{e}"
        );

        let opts = ReaderOptions {
            text_field: "messages.1.content".into(),
            ..Default::default()
        };
        let arr = write(
            d.path(),
            "chat.jsonl",
            b"{\"messages\": [{\"content\": \"hi\"}, {\"content\": \"there\"}]}\n",
        );
        assert_eq!(read_with(&[arr], &opts)[0].as_ref().unwrap().text, "there");
    }

    #[test]
    fn compressed_jsonl() {
        let d = tempfile::tempdir().unwrap();
        let data = b"{\"id\": 1, \"text\": \"one\"}\n\n{\"id\": 2, \"text\": \"two\"}\n";
        // Two gzip members back to back, as `cat a.gz b.gz` makes.
        let mut multi = gzip(b"{\"id\": 1, \"text\": \"one\"}\n\n");
        multi.extend(gzip(b"{\"id\": 2, \"text\": \"two\"}\n"));
        let paths = vec![
            write(d.path(), "a.jsonl.gz", &gzip(data)),
            write(d.path(), "b.JSONL.GZ", &multi),
            write(
                d.path(),
                "c.ndjson.zst",
                &zstd::encode_all(&data[..], 3).unwrap(),
            ),
            write(
                d.path(),
                "d.json.zstd",
                &zstd::encode_all(&data[..], 3).unwrap(),
            ),
        ];
        let items = read(&paths);
        let got: Vec<(String, u64)> = docs(&items)
            .iter()
            .map(|d| (format!("{}:{}", d.id, d.text), d.line))
            .collect();
        let once = [("1:one".to_string(), 1), ("2:two".to_string(), 3)];
        assert_eq!(
            got,
            [once.clone(), once.clone(), once.clone(), once].concat()
        );
    }

    #[test]
    fn truncated_compressed_streams_report_the_line_then_continue() {
        let d = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        for i in 0..40_000 {
            writeln!(
                data,
                "{{\"id\": {i}, \"text\": \"line {i} {}\"}}",
                i * 7919 % 104729
            )
            .unwrap();
        }
        let gz = gzip(&data);
        let zst = zstd::encode_all(&data[..], 3).unwrap();
        for (name, bytes, what) in [("bad.jsonl.gz", gz, "gzip"), ("bad.jsonl.zst", zst, "zstd")] {
            let bad = write(d.path(), name, &bytes[..bytes.len() / 2]);
            let good = write(d.path(), "good.jsonl", b"{\"text\": \"after\"}\n");
            let items = read(&[bad.clone(), good]);
            let errs = errors(&items);
            assert_eq!(errs.len(), 1, "{name}: {errs:?}");
            let e = errs[0];
            assert_eq!(e.kind, RecordErrorKind::Io);
            let ok = docs(&items[..items.len() - 2]);
            // Every line before the failure was read, and the failure is at the next line.
            assert!(ok.len() > 100, "{name}: {}", ok.len());
            assert_eq!(e.line, ok.last().unwrap().line + 1);
            assert!(
                e.to_string().starts_with(&format!(
                    "{}:{}: {what} stream corrupt or truncated, rest of the file skipped: ",
                    bad.display(),
                    e.line
                )),
                "{e}"
            );
            assert_eq!(items.last().unwrap().as_ref().unwrap().text, "after");
        }
    }

    #[test]
    fn text_files_are_one_document() {
        let d = tempfile::tempdir().unwrap();
        let py = write(d.path(), "m.py", b"\xEF\xBB\xBFdef f():\r\n    return 1\n");
        let gz = write(
            d.path(),
            "l.rs.gz",
            &gzip("fn main() { let é = 1; }".as_bytes()),
        );
        let items = read(&[py.clone(), gz.clone()]);
        let got = docs(&items);
        assert_eq!(got[0].text, "def f():\r\n    return 1\n");
        assert_eq!(got[0].id, py.display().to_string());
        assert_eq!(got[0].source, py.display().to_string());
        assert_eq!(got[0].line, 0);
        assert_eq!(got[1].text, "fn main() { let é = 1; }");
        assert_eq!(got[1].id, gz.display().to_string());
    }

    #[test]
    fn text_file_errors_name_the_byte() {
        let d = tempfile::tempdir().unwrap();
        // The bad byte after the first read chunk, and a character cut by the end of file.
        let mut big = "é".repeat(BUF_SIZE).into_bytes();
        big.push(0xff);
        let bad = write(d.path(), "bad.txt", &big);
        let cut = write(d.path(), "cut.md", b"abc\xc3");
        let empty = write(d.path(), "empty.txt", b" \n\t\r\n");
        let items = read(&[bad.clone(), cut.clone(), empty.clone()]);
        let got: Vec<(RecordErrorKind, String)> = errors(&items)
            .iter()
            .map(|e| (e.kind, e.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    RecordErrorKind::InvalidUtf8,
                    format!("{}: invalid UTF-8 at byte {}", bad.display(), 2 * BUF_SIZE)
                ),
                (
                    RecordErrorKind::InvalidUtf8,
                    format!("{}: invalid UTF-8 at byte 3", cut.display())
                ),
                (
                    RecordErrorKind::EmptyText,
                    format!("{}: empty or whitespace-only file", empty.display())
                ),
            ]
        );
        assert!(errors(&items).iter().all(|e| e.line == 0));
    }

    #[test]
    fn a_character_split_across_reads_is_valid() {
        let d = tempfile::tempdir().unwrap();
        let mut text = "a".repeat(BUF_SIZE - 1);
        text.push('€');
        text.push_str("tail");
        let p = write(d.path(), "split.txt", text.as_bytes());
        assert_eq!(read(&[p])[0].as_ref().unwrap().text, text);
    }

    #[test]
    fn directories_expand_sorted_recursively_without_hidden_files() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "b.py", b"b");
        write(d.path(), "a.rs", b"a");
        write(d.path(), "c/z.txt", b"cz");
        write(
            d.path(),
            "c/a.jsonl",
            b"{\"text\": \"ca1\"}\n{\"text\": \"ca2\"}\n",
        );
        write(d.path(), "d.txt", b"d");
        write(d.path(), ".hidden", b"no");
        write(d.path(), ".git/config", b"no");
        write(d.path(), "c/.cache.jsonl", b"{\"text\": \"no\"}\n");
        #[cfg(unix)]
        std::os::unix::fs::symlink(d.path(), d.path().join("c/loop")).unwrap();
        let items = read(&[d.path().to_path_buf()]);
        let texts: Vec<&str> = docs(&items).iter().map(|d| d.text.as_str()).collect();
        #[cfg(unix)]
        assert_eq!(texts, vec!["a", "b", "ca1", "ca2", "cz", "d"]);
        let _ = texts;
        let ids: Vec<&str> = docs(&items).iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids[2], "a.jsonl:1");
        assert!(ids[0].ends_with("a.rs"));
    }

    #[test]
    fn a_missing_input_fails_before_reading() {
        let d = tempfile::tempdir().unwrap();
        let ok = write(d.path(), "ok.jsonl", b"{\"text\": \"x\"}\n");
        let missing = d.path().join("nope/data.jsonl");
        let err = read_documents(&[ok, missing.clone()], &ReaderOptions::default())
            .err()
            .expect("must fail");
        assert!(matches!(err, DataError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            format!("input not found: {}", missing.display())
        );
    }

    #[test]
    fn a_file_gone_before_reading_is_a_record_error() {
        let d = tempfile::tempdir().unwrap();
        let gone = write(d.path(), "gone.jsonl", b"{\"text\": \"x\"}\n");
        let ok = write(d.path(), "ok.txt", b"still read");
        let stream = read_documents(&[gone.clone(), ok], &ReaderOptions::default()).unwrap();
        std::fs::remove_file(&gone).unwrap();
        let items: Vec<_> = stream.collect();
        let e = items[0].as_ref().unwrap_err();
        assert_eq!((e.kind, e.line), (RecordErrorKind::Io, 0));
        assert!(e
            .to_string()
            .starts_with(&format!("{}: cannot open: ", gone.display())));
        assert_eq!(items[1].as_ref().unwrap().text, "still read");
    }

    #[test]
    fn forced_formats_override_extensions() {
        let d = tempfile::tempdir().unwrap();
        let txt = write(
            d.path(),
            "records.txt",
            b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n",
        );
        let jsonl = write(d.path(), "whole.jsonl", b"{\"text\": \"kept raw\"}\n");
        let as_jsonl = ReaderOptions {
            format: InputFormat::Jsonl,
            ..Default::default()
        };
        let as_text = ReaderOptions {
            format: InputFormat::Text,
            ..Default::default()
        };
        assert_eq!(read_with(&[txt], &as_jsonl).len(), 2);
        let items = read_with(&[jsonl], &as_text);
        assert_eq!(docs(&items)[0].text, "{\"text\": \"kept raw\"}\n");
    }

    #[test]
    fn stdin_is_sniffed() {
        let items: Vec<_> = stream_from(
            b"\n  \n{\"text\": \"a\"}\n{\"text\": \"b\"}",
            InputFormat::Auto,
        )
        .collect();
        let got: Vec<(&str, &str, u64)> = docs(&items)
            .iter()
            .map(|d| (d.id.as_str(), d.source.as_str(), d.line))
            .collect();
        assert_eq!(
            got,
            vec![("<stdin>:3", "<stdin>", 3), ("<stdin>:4", "<stdin>", 4)]
        );

        let items: Vec<_> = stream_from(b"\n  import os\n", InputFormat::Auto).collect();
        let doc = items[0].as_ref().unwrap();
        assert_eq!(
            (doc.id.as_str(), doc.text.as_str(), doc.line),
            ("<stdin>", "\n  import os\n", 0)
        );

        let items: Vec<_> =
            stream_from(&gzip(b"{\"text\": \"zipped\"}\n"), InputFormat::Auto).collect();
        assert_eq!(items[0].as_ref().unwrap().text, "zipped");

        let items: Vec<_> = stream_from(b"{\"text\": \"forced\"}", InputFormat::Text).collect();
        assert_eq!(items[0].as_ref().unwrap().text, "{\"text\": \"forced\"}");

        let items: Vec<_> = stream_from(b"", InputFormat::Auto).collect();
        assert_eq!(
            items[0].as_ref().unwrap_err().kind,
            RecordErrorKind::EmptyText
        );
    }

    #[test]
    fn pipes_are_sniffed_and_regular_files_go_by_name() {
        let pipe = classify(PathBuf::from("/dev/fd/63"), InputFormat::Auto, false);
        assert_eq!(
            (pipe.layout, pipe.compression),
            (Layout::Sniff, Compression::Sniff)
        );
        let file = classify(PathBuf::from("notes"), InputFormat::Auto, true);
        assert_eq!(
            (file.layout, file.compression),
            (Layout::Text, Compression::None)
        );
        let forced = classify(PathBuf::from("x.py.gz"), InputFormat::Jsonl, true);
        assert_eq!(
            (forced.layout, forced.compression),
            (Layout::Jsonl, Compression::Gzip)
        );
    }

    #[test]
    fn the_stream_is_send() {
        fn send<T: Send>() {}
        send::<DocumentStream>();
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(b"{}\"\n\r :,[]0text".to_vec()),
                ],
                0..400,
            )
        ) {
            let d = tempfile::tempdir().unwrap();
            let p = write(d.path(), "r.jsonl", &bytes);
            let n = read(&[p]).len();
            let body = bytes.strip_prefix(BOM).unwrap_or(&bytes);
            let lines = body
                .split(|&b| b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .count();
            proptest::prop_assert_eq!(n, lines);
        }
    }
}
