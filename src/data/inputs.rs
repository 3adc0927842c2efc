//! The one input layer: `inputs: &[PathBuf]` as given on a command line (files, directories,
//! glob patterns the shell did not expand, `-` for stdin) become the files to read, and those
//! files one lazy stream of `Result<Document, RecordError>`.
//!
//! | form | how it is read |
//! |---|---|
//! | `*.jsonl`, `*.json`, `*.ndjson` | JSON Lines, one record per line; or, when the first non-blank byte is `[`, one JSON array of records (place: row) |
//! | gzip / zstd | by the magic bytes, whatever the name (`data.jsonl` that is gzip is read) |
//! | `*.parquet`, `*.pq` (or the Parquet magic) | one document per row, columns named by `--text-field`/`--id-field` |
//! | other files | one text document each |
//! | a directory | its non-hidden files, recursively, sorted by name |
//! | a glob pattern (`data/*.jsonl.gz`) | its matches, sorted (matched directories expanded) |
//! | `-` | stdin, sniffed: `{` JSON Lines, `[` then `{` a JSON array, else text |
//!
//! A missing input or a pattern that matches nothing fails before anything is read; a bad record
//! is one error item (file, line or row, field) and the stream goes on.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use super::json::JsonRecords;
use super::open::{
    decode, first_non_blank, put_back, starts_with_parquet_magic, Compression, RawInput, STDIN_ARG,
    STDIN_NAME,
};
use super::parquet::{is_parquet, read_parquet};
use super::reader::{
    read_whole_text, to_document, whole_file_error, DataError, Document, InputFormat,
    ReaderOptions, RecordError, RecordErrorKind,
};

type Item = Result<Document, RecordError>;

/// One file to read, as found by [`expand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// `None` is stdin.
    pub path: Option<PathBuf>,
    /// Named by the user (or matched by their pattern) rather than found inside a directory;
    /// readers that keep only some files of a directory read a named file whatever its name.
    pub named: bool,
}

/// Expands inputs into the files to read, in order: `-` (stdin) and files as given,
/// directories recursively (sorted by name, hidden entries skipped), and glob patterns (only
/// when no file has that name; matches sorted, matched directories expanded).
///
/// A missing input is [`DataError::NotFound`], a pattern matching nothing
/// [`DataError::NoMatch`]: both before anything is read.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<InputFile>, DataError> {
    let mut out = Vec::new();
    let found = |files: Vec<PathBuf>, out: &mut Vec<InputFile>| {
        out.extend(files.into_iter().map(|p| InputFile {
            path: Some(p),
            named: false,
        }))
    };
    for p in inputs {
        if p.as_os_str() == STDIN_ARG {
            out.push(InputFile {
                path: None,
                named: true,
            });
            continue;
        }
        let meta = match input_metadata(p) {
            Ok(m) => m,
            Err(DataError::NotFound { .. }) if has_glob(&p.to_string_lossy()) => {
                expand_glob(&p.to_string_lossy(), &mut out)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            collect_dir(p, &mut HashSet::new(), &mut files)?;
            if files.is_empty() {
                tracing::warn!("input directory {} has no files", p.display());
            }
            found(files, &mut out);
        } else {
            out.push(InputFile {
                path: Some(p.clone()),
                named: true,
            });
        }
    }
    Ok(out)
}

/// [`expand`] as plain paths, stdin as `-`: the list a resumable run records and re-reads.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    Ok(expand(inputs)?
        .into_iter()
        .map(|f| f.path.unwrap_or_else(|| PathBuf::from(STDIN_ARG)))
        .collect())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn expand_glob(pattern: &str, out: &mut Vec<InputFile>) -> Result<(), DataError> {
    let mut matched: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|e| DataError::Pattern {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?
        .filter_map(Result::ok)
        .collect();
    if matched.is_empty() {
        return Err(DataError::NoMatch {
            pattern: pattern.to_string(),
        });
    }
    matched.sort();
    for m in matched {
        if m.is_dir() {
            let mut files = Vec::new();
            collect_dir(&m, &mut HashSet::new(), &mut files)?;
            out.extend(files.into_iter().map(|p| InputFile {
                path: Some(p),
                named: false,
            }));
        } else {
            out.push(InputFile {
                path: Some(m),
                named: true,
            });
        }
    }
    Ok(())
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
fn collect_dir(
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

/// Checks every input and returns a lazy stream over the documents of all of them, in order
/// (see the module docs for the forms accepted).
///
/// A missing input fails here, naming it, before anything is read. Memory use does not grow
/// with the corpus: JSON Lines are read one line, arrays one element, Parquet one record batch
/// at a time.
pub fn read_documents(
    inputs: &[PathBuf],
    opts: &ReaderOptions,
) -> Result<DocumentStream, DataError> {
    Ok(read_files(&expand_inputs(inputs)?, opts))
}

/// The documents of files already expanded (by [`expand_inputs`]), `-` being stdin; nothing is
/// checked up front: a file that cannot be opened is one error item.
pub fn read_files(files: &[PathBuf], opts: &ReaderOptions) -> DocumentStream {
    DocumentStream {
        queue: files.iter().cloned().collect(),
        current: None,
        opts: opts.clone(),
        report_empty_files: false,
        yielded: false,
    }
}

/// How one file is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// JSON Lines, or a JSON array of records (by the first non-blank byte).
    Json,
    Text,
    Parquet,
    /// Decided by the content (stdin and pipes, whose name says nothing).
    Sniff,
}

/// The layout of `path` by its name (and, for a pipe, by nothing yet).
pub(crate) fn classify(path: &Path, format: InputFormat, regular_file: bool) -> Layout {
    let stem = crate::data::open::uncompressed_name(path);
    let stem = stem.as_str();
    let is_json = [".jsonl", ".json", ".ndjson"]
        .iter()
        .any(|e| stem.ends_with(e));
    match format {
        InputFormat::Jsonl => Layout::Json,
        InputFormat::Text => Layout::Text,
        InputFormat::Auto if is_parquet(path) => Layout::Parquet,
        InputFormat::Auto if is_json => Layout::Json,
        // A pipe (`<(zcat data.jsonl.gz)`) has a meaningless name: look at its content.
        InputFormat::Auto if !regular_file => Layout::Sniff,
        InputFormat::Auto if starts_with_parquet_magic(path) => Layout::Parquet,
        InputFormat::Auto => Layout::Text,
    }
}

/// The layout of a source with no name to go by (stdin): sniffed unless forced.
fn unnamed_layout(format: InputFormat) -> Layout {
    match format {
        InputFormat::Auto => Layout::Sniff,
        InputFormat::Jsonl => Layout::Json,
        InputFormat::Text => Layout::Text,
    }
}

/// The documents of all inputs in order, each item a [`Document`] or the [`RecordError`] of
/// one record. Returned by [`read_documents`]; inputs are opened one at a time as reached.
pub struct DocumentStream {
    /// Files still to open; `-` is stdin.
    queue: VecDeque<PathBuf>,
    current: Option<(String, Box<dyn Iterator<Item = Item> + Send>)>,
    opts: ReaderOptions,
    report_empty_files: bool,
    /// The current file has produced an item.
    yielded: bool,
}

impl DocumentStream {
    /// Also yields one error item (`empty file: no records`) for each file that produces no
    /// item at all (an empty JSON Lines file, an empty array, a Parquet file with no rows), so
    /// a run that must account for every input file sees it.
    pub fn report_empty_files(mut self) -> Self {
        self.report_empty_files = true;
        self
    }

    /// The documents of one byte source read like stdin (decompressed and sniffed, unless
    /// `opts.format` forces a layout); `source` names it in documents and errors.
    pub fn from_reader(source: &str, raw: Box<dyn Read + Send>, opts: &ReaderOptions) -> Self {
        let layout = unnamed_layout(opts.format);
        let it = open_stream(
            source.to_string(),
            source.to_string(),
            RawInput::Stream(raw),
            layout,
            opts,
        );
        DocumentStream {
            queue: VecDeque::new(),
            current: Some((source.to_string(), it)),
            opts: opts.clone(),
            report_empty_files: false,
            yielded: false,
        }
    }

    fn open_next(&mut self, path: PathBuf) -> (String, Box<dyn Iterator<Item = Item> + Send>) {
        if path.as_os_str() == STDIN_ARG {
            let it = open_stream(
                STDIN_NAME.into(),
                STDIN_NAME.into(),
                RawInput::Stream(Box::new(io::stdin())),
                unnamed_layout(self.opts.format),
                &self.opts,
            );
            return (STDIN_NAME.into(), it);
        }
        let source = path.display().to_string();
        // A path that cannot be inspected is treated as a file; opening it reports why.
        let regular = std::fs::metadata(&path).map_or(true, |m| m.is_file());
        let layout = classify(&path, self.opts.format, regular);
        if layout == Layout::Parquet {
            return (source, Box::new(read_parquet(&path, &self.opts)));
        }
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let err =
                    whole_file_error(&source, RecordErrorKind::Io, format!("cannot open: {e}"));
                return (source, Box::new(std::iter::once(Err(err))));
            }
        };
        let id_prefix = path
            .file_name()
            .map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned());
        let it = open_stream(
            source.clone(),
            id_prefix,
            RawInput::File(file),
            layout,
            &self.opts,
        );
        (source, it)
    }
}

/// The documents of one opened byte source in the given layout (not Parquet).
fn open_stream(
    source: String,
    id_prefix: String,
    raw: RawInput,
    layout: Layout,
    opts: &ReaderOptions,
) -> Box<dyn Iterator<Item = Item> + Send> {
    let fail = |source: &str, e: io::Error| -> Box<dyn Iterator<Item = Item> + Send> {
        Box::new(std::iter::once(Err(read_failed(source, e))))
    };
    let (layout, mut reader, compression) = match decode_as(&source, raw, layout) {
        Ok(x) => x,
        Err(e) => return fail(&source, e),
    };
    match layout {
        Layout::Text => {
            let item = read_whole_text(&source, &mut reader, compression);
            Box::new(std::iter::once(item))
        }
        _ => {
            let records =
                match JsonRecords::sniffed(source.clone(), reader, compression.read_failure()) {
                    Ok(r) => r,
                    Err(e) => return fail(&source, e),
                };
            let opts = opts.clone();
            Box::new(records.map(move |r| {
                r.and_then(|rec| to_document(rec.value, &source, &id_prefix, rec.line, &opts))
            }))
        }
    }
}

/// A byte source that could not be read at all: one error for the whole file.
pub(crate) fn read_failed(source: &str, e: io::Error) -> RecordError {
    whole_file_error(source, RecordErrorKind::Io, format!("read failed: {e}"))
}

/// Decompresses a byte source (gzip and zstd by their magic bytes) and settles its layout,
/// looking at the content when the name said nothing ([`Layout::Sniff`]).
pub(crate) fn decode_as(
    source: &str,
    raw: RawInput,
    layout: Layout,
) -> io::Result<(Layout, Box<dyn BufRead + Send>, Compression)> {
    let decoded = decode(raw)?;
    decoded.warn_if_unchecked(source);
    let mut reader = decoded.reader;
    let layout = match layout {
        Layout::Sniff => {
            let (layout, r) = sniff(&mut reader)?;
            reader = r;
            layout
        }
        l => l,
    };
    Ok((layout, reader, decoded.compression))
}

/// Decides JSON or text for a source with no useful name: JSON Lines if the first non-blank
/// byte is `{`, a JSON array if it is `[` followed by `{` (so a Markdown text opening with a
/// `[link]` stays text), else text. Returns the reader with every byte put back.
fn sniff(reader: &mut Box<dyn BufRead + Send>) -> io::Result<(Layout, Box<dyn BufRead + Send>)> {
    let (first, mut prefix) = first_non_blank(reader)?;
    let layout = match first {
        Some(b'{') => Layout::Json,
        Some(b'[') => {
            reader.consume(1);
            prefix.push(b'[');
            let (next, blanks) = first_non_blank(reader)?;
            prefix.extend(blanks);
            if next == Some(b'{') {
                Layout::Json
            } else {
                Layout::Text
            }
        }
        _ => Layout::Text,
    };
    let taken = std::mem::replace(reader, Box::new(io::empty()));
    Ok((layout, put_back(taken, prefix)))
}

impl Iterator for DocumentStream {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if self.current.is_none() {
                let path = self.queue.pop_front()?;
                self.current = Some(self.open_next(path));
                self.yielded = false;
            }
            let (source, it) = self.current.as_mut()?;
            match it.next() {
                Some(item) => {
                    self.yielded = true;
                    return Some(item);
                }
                None => {
                    let source = std::mem::take(source);
                    self.current = None;
                    if self.report_empty_files && !self.yielded {
                        return Some(Err(RecordError {
                            source,
                            line: 0,
                            field: None,
                            kind: RecordErrorKind::EmptyText,
                            message: "empty file: no records".into(),
                        }));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::open::{BOM, BUF_SIZE};
    use std::io::{Cursor, Write};

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

    /// A stream over an in-memory "stdin", read as `read_documents` reads `-`.
    fn stream_from(bytes: &[u8], format: InputFormat) -> DocumentStream {
        let opts = ReaderOptions {
            format,
            ..Default::default()
        };
        DocumentStream::from_reader(STDIN_NAME, Box::new(Cursor::new(bytes.to_vec())), &opts)
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
    fn a_json_array_file_is_read_by_row() {
        let d = tempfile::tempdir().unwrap();
        let body = "\u{feff}\n [\n  {\"text\": \"x\", \"id\": 1},\n  {\"text\": \"y, ] }\\\" [\"},\n  \
            {\"text\": \"\"},\n  [1],\n  {\"text\": \"z\", \"metadata\": {\"a\": [1, {\"b\": 2}]}}\n]\n";
        let p = write(d.path(), "a.json", body.as_bytes());
        let items = read(std::slice::from_ref(&p));
        let f = p.display();
        let got: Vec<String> = items
            .iter()
            .map(|i| match i {
                Ok(d) => format!("{}|{}|{}", d.id, d.text, d.line),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                "1|x|1".to_string(),
                "a.json:2|y, ] }\" [|2".to_string(),
                format!("{f}:3: field 'text': empty or whitespace-only text"),
                format!("{f}:4: expected a JSON object, found array"),
                "a.json:5|z|5".to_string(),
            ]
        );
        assert_eq!(
            items[4].as_ref().unwrap().metadata,
            Some(serde_json::json!({"a": [1, {"b": 2}]}))
        );
        // The same array, gzip-compressed under a .jsonl name, and on stdin.
        let gz = write(d.path(), "arr.jsonl", &gzip(body.as_bytes()));
        assert_eq!(docs(&read(&[gz])[..2]).len(), 2);
        let items: Vec<_> = stream_from(body.as_bytes(), InputFormat::Auto).collect();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0].as_ref().unwrap().source, "<stdin>");
    }

    #[test]
    fn broken_json_arrays_name_the_row() {
        let d = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], Vec<&str>); 5] = [
            ("empty.json", b" [ ] \n", vec![]),
            (
                "bad.json",
                b"[{\"text\": \"a\"}, {\"text\": }, {\"text\": \"c\"}]",
                vec!["a", ":2: invalid JSON: expected value at column 11", "c"],
            ),
            (
                "cut.json",
                b"[{\"text\": \"a\"},\n{\"text\": \"b",
                vec![
                    "a",
                    ":2: invalid JSON: EOF while parsing a string at column 11",
                ],
            ),
            (
                "open.json",
                b"[{\"text\": \"a\"}",
                vec![
                    "a",
                    ":2: invalid JSON: EOF while parsing the array (no closing `]`)",
                ],
            ),
            (
                "trail.json",
                b"[{\"text\": \"a\"},,{\"text\": \"c\"}] x",
                vec![
                    "a",
                    ":2: invalid JSON: no value between the separators",
                    "c",
                    ": invalid JSON: trailing characters after the array",
                ],
            ),
        ];
        for (name, bytes, want) in cases {
            let p = write(d.path(), name, bytes);
            let f = p.display().to_string();
            let got: Vec<String> = read(std::slice::from_ref(&p))
                .iter()
                .map(|i| match i {
                    Ok(d) => d.text.clone(),
                    Err(e) => e.to_string().replacen(&f, "", 1),
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
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
            // Compression is known by the bytes, not the name.
            write(d.path(), "e.jsonl", &gzip(data)),
            write(
                d.path(),
                "f.jsonl",
                &zstd::encode_all(&data[..], 3).unwrap(),
            ),
        ];
        let items = read(&paths);
        let got: Vec<(String, u64)> = docs(&items)
            .iter()
            .map(|d| (format!("{}:{}", d.id, d.text), d.line))
            .collect();
        let once = [("1:one".to_string(), 1), ("2:two".to_string(), 3)];
        assert_eq!(got, [&once[..]; 6].concat());
    }

    /// A damaged compressed file gives no document at all (its decoder would have handed out
    /// garbage, or the lines before the damage, before failing): one error naming the file and
    /// the offset, and the next file is read.
    #[test]
    fn corrupt_or_truncated_compressed_files_are_refused_whole_then_the_next_is_read() {
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
        // Stored (uncompressed) deflate blocks: a changed byte decodes to changed text.
        let mut stored = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        stored.write_all(&data).unwrap();
        let mut flipped = stored.finish().unwrap();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        for (name, bytes, what) in [
            ("cut.jsonl.gz", gz[..gz.len() / 2].to_vec(), "gzip"),
            ("cut.jsonl.zst", zst[..zst.len() / 2].to_vec(), "zstd"),
            ("flipped.jsonl.gz", flipped, "gzip"),
        ] {
            let bad = write(d.path(), name, &bytes);
            let good = write(d.path(), "good.jsonl", b"{\"text\": \"after\"}\n");
            for opts in [
                ReaderOptions::default(),
                ReaderOptions {
                    format: InputFormat::Text,
                    ..Default::default()
                },
            ] {
                let items = read_with(&[bad.clone(), good.clone()], &opts);
                assert_eq!(items.len(), 2, "{name}: {items:?}");
                let e = items[0].as_ref().unwrap_err();
                assert_eq!((e.kind, e.line), (RecordErrorKind::Io, 0), "{name}");
                assert!(
                    e.to_string().starts_with(&format!(
                        "{}: read failed: {what} stream corrupt or truncated at compressed byte ",
                        bad.display()
                    )),
                    "{e}"
                );
                assert!(e.to_string().contains("the whole file is refused"), "{e}");
                assert!(items[1].as_ref().unwrap().text.contains("after"));
            }
            // Read like stdin, the same.
            let items: Vec<_> = stream_from(&bytes, InputFormat::Auto).collect();
            assert_eq!(items.len(), 1, "{name} (stream)");
            assert_eq!(items[0].as_ref().unwrap_err().kind, RecordErrorKind::Io);
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
        let auto = InputFormat::Auto;
        assert_eq!(
            classify(Path::new("/dev/fd/63"), auto, false),
            Layout::Sniff
        );
        assert_eq!(classify(Path::new("notes"), auto, true), Layout::Text);
        assert_eq!(classify(Path::new("x.JSONL.zst"), auto, true), Layout::Json);
        assert_eq!(classify(Path::new("x.pq"), auto, true), Layout::Parquet);
        assert_eq!(
            classify(Path::new("x.parquet"), InputFormat::Text, true),
            Layout::Text
        );
        assert_eq!(
            classify(Path::new("x.py.gz"), InputFormat::Jsonl, true),
            Layout::Json
        );
    }

    fn write_parquet(
        dir: &Path,
        name: &str,
        ids: &[Option<&str>],
        texts: &[Option<&str>],
    ) -> PathBuf {
        use arrow_array::{ArrayRef, RecordBatch, StringArray};
        let p = dir.join(name);
        let batch = RecordBatch::try_from_iter([
            (
                "doc_id",
                std::sync::Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
            ),
            (
                "content",
                std::sync::Arc::new(StringArray::from(texts.to_vec())) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(&p).unwrap(), batch.schema(), None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        p
    }

    #[test]
    fn parquet_documents_through_read_documents() {
        let d = tempfile::tempdir().unwrap();
        let p = write_parquet(
            d.path(),
            "rows.parquet",
            &[Some("a"), None, Some("c")],
            &[Some("first"), Some("second"), None],
        );
        // The same bytes under a name that says nothing: found by the magic.
        let bare = d.path().join("rows-copy");
        std::fs::copy(&p, &bare).unwrap();
        let opts = ReaderOptions {
            text_field: "content".into(),
            id_field: "doc_id".into(),
            ..Default::default()
        };
        for path in [&p, &bare] {
            let items = read_with(std::slice::from_ref(path), &opts);
            let name = path.file_name().unwrap().to_string_lossy();
            let got: Vec<String> = items
                .iter()
                .map(|i| match i {
                    Ok(d) => format!("{}|{}|{}", d.id, d.text, d.line),
                    Err(e) => e.to_string(),
                })
                .collect();
            assert_eq!(
                got,
                vec![
                    "a|first|1".to_string(),
                    format!("{name}:2|second|2"),
                    format!("{}:3: field 'content': null text", path.display()),
                ]
            );
        }
        // Without --text-field the whole file is one error naming the columns.
        let items = read(std::slice::from_ref(&p));
        assert_eq!(items.len(), 1);
        let e = items[0].as_ref().unwrap_err();
        assert_eq!((e.kind, e.line), (RecordErrorKind::MissingField, 0));
        assert!(e.message.contains("columns: doc_id, content"), "{e}");
    }

    #[test]
    fn globs_expand_sorted_and_match_nothing_fails() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "b.jsonl", b"{\"text\": \"b\"}\n");
        write(d.path(), "a.jsonl", b"{\"text\": \"a\"}\n");
        write(d.path(), "c.txt", b"c");
        write(d.path(), "sub1/x.txt", b"sx");
        write(d.path(), "sub1/.hidden", b"no");
        let pattern = d.path().join("*.jsonl");
        let texts = |items: &[Item]| -> Vec<String> {
            docs(items).iter().map(|d| d.text.clone()).collect()
        };
        assert_eq!(texts(&read(std::slice::from_ref(&pattern))), vec!["a", "b"]);
        // A matched directory is expanded; a named file is read whatever its name.
        let files = expand(&[d.path().join("sub?"), d.path().join("c.txt")]).unwrap();
        assert_eq!(
            files,
            vec![
                InputFile {
                    path: Some(d.path().join("sub1/x.txt")),
                    named: false
                },
                InputFile {
                    path: Some(d.path().join("c.txt")),
                    named: true
                },
            ]
        );
        assert_eq!(
            expand_inputs(&[PathBuf::from("-"), pattern.clone()]).unwrap(),
            vec![
                PathBuf::from("-"),
                d.path().join("a.jsonl"),
                d.path().join("b.jsonl")
            ]
        );
        let none = d.path().join("*.parquet");
        let err = read_documents(std::slice::from_ref(&none), &ReaderOptions::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!("pattern '{}' matched no files", none.display())
        );
        let bad = d.path().join("[z");
        assert!(matches!(
            expand(&[bad]).unwrap_err(),
            DataError::Pattern { .. }
        ));
        // A file whose name looks like a pattern is read as that file.
        let literal = write(d.path(), "odd[1].txt", b"literal");
        assert_eq!(texts(&read(&[literal])), vec!["literal"]);
    }

    #[test]
    fn empty_files_are_reported_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let empty = write(d.path(), "e.jsonl", b"\n\n");
        let arr = write(d.path(), "a.json", b"[]");
        let ok = write(d.path(), "ok.jsonl", b"{\"text\": \"x\"}\n");
        let files = [empty.clone(), arr, ok];
        assert_eq!(read(&files).len(), 1);
        let items: Vec<_> = read_files(&files, &ReaderOptions::default())
            .report_empty_files()
            .collect();
        let shown: Vec<String> = errors(&items).iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 2);
        assert_eq!(
            shown[0],
            format!("{}: empty file: no records", empty.display())
        );
        assert_eq!(items[2].as_ref().unwrap().text, "x");
    }

    #[test]
    fn stdin_sniffing_keeps_markdown_links_as_text() {
        let md = b"[hesnr](https://example.org) scores code.\n";
        let items: Vec<_> = stream_from(md, InputFormat::Auto).collect();
        assert_eq!(items[0].as_ref().unwrap().text.as_bytes(), md);
        let arr = b"  [ {\"text\": \"in an array\"} ]";
        let items: Vec<_> = stream_from(arr, InputFormat::Auto).collect();
        let doc = items[0].as_ref().unwrap();
        assert_eq!((doc.id.as_str(), doc.line), ("<stdin>:1", 1));
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
            if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
                // A JSON array: at least one item (a record or an error), however broken.
                proptest::prop_assert!(n >= 1);
            } else {
                proptest::prop_assert_eq!(n, lines);
            }
        }
    }
}
