//! JSON records and the helpers every JSON reader shares: dotted field lookup, type names and
//! error messages that point at the record, and one iterator over the records of a file that
//! is either JSON Lines or a single JSON array of records.
//!
//! Every record comes with its place: the 1-based line for JSON Lines, the 1-based row (element)
//! for an array, so an error reads `file:line: ...` or `file:row: ...`. A bad record is an
//! `Err` item and the records after it are still read.

use std::io::{self, BufRead};

use serde_json::{Map, Value};

use super::open::{first_non_blank, max_record_bytes, over_limit, put_back, BOM, MAX_RECORD_ENV};
use super::reader::{RecordError, RecordErrorKind};

/// The value at `path`: the key itself if present (a key that contains dots wins), else the
/// dotted path through objects and arrays (`metadata.content`, `messages.0.content`).
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
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

/// The JSON type of a value, as error messages name it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// serde_json's message without its position, with the column (the line is the record's).
pub fn json_message(e: &serde_json::Error) -> String {
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

/// "missing", with the object's own top-level keys: usually they show what the record is
/// instead, and the fix is a `--text-field`.
pub fn missing_message(obj: &Map<String, Value>) -> String {
    const SHOWN: usize = 8;
    if obj.is_empty() {
        return "missing (the record is an empty object)".into();
    }
    let keys: Vec<&str> = obj.keys().map(String::as_str).take(SHOWN).collect();
    let more = if obj.len() > SHOWN { ", ..." } else { "" };
    format!("missing (the record has: {}{more})", keys.join(", "))
}

/// How the records of a JSON file are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLayout {
    /// One record per line (blank lines skipped); the place is the line.
    Lines,
    /// One JSON array whose elements are the records; the place is the element's row.
    Array,
}

/// One record of a JSON file.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonRecord {
    /// 1-based line (JSON Lines) or row (array element).
    pub line: u64,
    pub value: Value,
}

/// The records of one JSON Lines file or JSON array, read lazily: one line, or one array
/// element, in memory at a time.
pub struct JsonRecords {
    source: String,
    reader: Box<dyn BufRead + Send>,
    layout: JsonLayout,
    /// Lines or rows read so far.
    line: u64,
    buf: Vec<u8>,
    /// What a read error is called (`"gzip stream corrupt or truncated"`, ...).
    read_failure: &'static str,
    done: bool,
    /// An error to return before anything else (found while reading the record before it).
    pending: Option<RecordError>,
    /// Array: the opening `[` has been read.
    started: bool,
    /// The longest line or array element read whole; a longer one is skipped and reported.
    max_record: usize,
}

impl JsonRecords {
    /// Records of `reader` in the given layout; `source` names the input in errors.
    pub fn new(
        source: String,
        reader: Box<dyn BufRead + Send>,
        layout: JsonLayout,
        read_failure: &'static str,
    ) -> Self {
        Self {
            source,
            reader,
            layout,
            line: 0,
            buf: Vec::new(),
            read_failure,
            done: false,
            pending: None,
            started: false,
            max_record: max_record_bytes(),
        }
    }

    /// Records of `reader`, as an array if its first non-blank byte (after a BOM) is `[`, else
    /// as JSON Lines (line numbers still count the leading blank lines).
    pub fn sniffed(
        source: String,
        mut reader: Box<dyn BufRead + Send>,
        read_failure: &'static str,
    ) -> io::Result<Self> {
        let (first, prefix) = first_non_blank(&mut reader)?;
        let layout = if first == Some(b'[') {
            JsonLayout::Array
        } else {
            JsonLayout::Lines
        };
        Ok(Self::new(
            source,
            put_back(reader, prefix),
            layout,
            read_failure,
        ))
    }

    pub fn layout(&self) -> JsonLayout {
        self.layout
    }

    fn error(&self, line: u64, kind: RecordErrorKind, message: String) -> RecordError {
        RecordError {
            source: self.source.clone(),
            line,
            field: None,
            kind,
            message,
        }
    }

    fn io_error(&mut self, line: u64, e: io::Error) -> RecordError {
        self.done = true;
        self.error(
            line,
            RecordErrorKind::Io,
            format!("{}, rest of the file skipped: {e}", self.read_failure),
        )
    }

    fn parse(&self, bytes: &[u8]) -> Result<JsonRecord, RecordError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            self.error(
                self.line,
                RecordErrorKind::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        let value = serde_json::from_str(text).map_err(|e| {
            self.error(
                self.line,
                RecordErrorKind::InvalidJson,
                format!("invalid JSON: {}", json_message(&e)),
            )
        })?;
        Ok(JsonRecord {
            line: self.line,
            value,
        })
    }

    fn next_line(&mut self) -> Option<Result<JsonRecord, RecordError>> {
        loop {
            self.buf.clear();
            let limit = self.max_record as u64 + 1;
            match io::Read::take(&mut self.reader, limit).read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) if self.buf.len() > self.max_record && !self.buf.ends_with(b"\n") => {
                    self.line += 1;
                    if let Err(e) = skip_line(&mut self.reader) {
                        let line = self.line;
                        return Some(Err(self.io_error(line, e)));
                    }
                    return Some(Err(self.error(
                        self.line,
                        RecordErrorKind::TooLarge,
                        format!(
                            "{}, skipped (no model context holds it)",
                            over_limit("line", self.max_record, MAX_RECORD_ENV)
                        ),
                    )));
                }
                Ok(_) => {
                    self.line += 1;
                    let mut bytes = self.buf.as_slice();
                    bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                    bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                    if self.line == 1 {
                        bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
                    }
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(self.parse(bytes));
                }
                Err(e) => {
                    let line = self.line + 1;
                    return Some(Err(self.io_error(line, e)));
                }
            }
        }
    }

    /// Skips blanks; the next byte without consuming it (`None` at the end).
    fn peek_non_blank(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let b = buf[i];
                    self.reader.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.reader.consume(n);
                }
            }
        }
    }

    /// Reads one array element's bytes into `buf`, up to (and consuming) the `,` or `]` after
    /// it at depth 0; returns that byte, or `None` when the input ends first, and whether the
    /// element was over the record bound (its bytes are then scanned past, not kept).
    fn scan_element(&mut self) -> io::Result<(Option<u8>, bool)> {
        self.buf.clear();
        let mut oversized = false;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok((None, oversized));
            }
            for (i, &b) in chunk.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b',' | b']' | b'}' if depth == 0 => {
                        if !oversized {
                            self.buf.extend_from_slice(&chunk[..i]);
                            oversized = self.buf.len() > self.max_record;
                        }
                        self.reader.consume(i + 1);
                        return Ok((Some(b), oversized));
                    }
                    b'}' | b']' => depth -= 1,
                    _ => {}
                }
            }
            let n = chunk.len();
            if !oversized {
                self.buf.extend_from_slice(chunk);
                if self.buf.len() > self.max_record {
                    oversized = true;
                    self.buf = Vec::new();
                }
            }
            self.reader.consume(n);
        }
    }

    fn next_element(&mut self) -> Option<Result<JsonRecord, RecordError>> {
        if !self.started {
            self.started = true;
            if matches!(self.reader.fill_buf(), Ok(b) if b.starts_with(BOM)) {
                self.reader.consume(BOM.len());
            }
            match self.peek_non_blank() {
                Ok(Some(b'[')) => self.reader.consume(1),
                Ok(_) => {
                    self.done = true;
                    return Some(Err(self.error(
                        0,
                        RecordErrorKind::InvalidJson,
                        "invalid JSON: expected an array of records".into(),
                    )));
                }
                Err(e) => return Some(Err(self.io_error(1, e))),
            }
            // `[]`: no records.
            match self.peek_non_blank() {
                Ok(Some(b']')) => {
                    self.reader.consume(1);
                    return self.end_of_array();
                }
                Ok(_) => {}
                Err(e) => return Some(Err(self.io_error(1, e))),
            }
        }
        let (end, oversized) = match self.scan_element() {
            Ok(x) => x,
            Err(e) => {
                let line = self.line + 1;
                return Some(Err(self.io_error(line, e)));
            }
        };
        self.line += 1;
        let item = match end {
            _ if oversized => Err(self.error(
                self.line,
                RecordErrorKind::TooLarge,
                format!(
                    "{}, skipped (no model context holds it)",
                    over_limit("row", self.max_record, MAX_RECORD_ENV)
                ),
            )),
            Some(b'}') => Err(self.error(
                self.line,
                RecordErrorKind::InvalidJson,
                "invalid JSON: unexpected `}` in the array".into(),
            )),
            _ if self.buf.iter().all(u8::is_ascii_whitespace) => Err(self.error(
                self.line,
                RecordErrorKind::InvalidJson,
                "invalid JSON: no value between the separators".into(),
            )),
            _ => {
                let bytes = std::mem::take(&mut self.buf);
                let item = self.parse(&bytes);
                self.buf = bytes;
                item
            }
        };
        match end {
            Some(b',') => {}
            Some(b']') => {
                // The record is still good; trailing bytes are reported after it.
                if let Some(Err(e)) = self.end_of_array() {
                    self.pending = Some(e);
                }
            }
            Some(_) => self.done = true,
            None => {
                self.done = true;
                if item.is_ok() {
                    self.pending = Some(self.error(
                        self.line + 1,
                        RecordErrorKind::InvalidJson,
                        "invalid JSON: EOF while parsing the array (no closing `]`)".into(),
                    ));
                }
            }
        }
        Some(item)
    }

    /// After the closing `]`: only blanks may follow.
    fn end_of_array(&mut self) -> Option<Result<JsonRecord, RecordError>> {
        self.done = true;
        match self.peek_non_blank() {
            Ok(None) => None,
            Ok(Some(_)) => Some(Err(self.error(
                0,
                RecordErrorKind::InvalidJson,
                "invalid JSON: trailing characters after the array".into(),
            ))),
            Err(e) => {
                let line = self.line + 1;
                Some(Err(self.io_error(line, e)))
            }
        }
    }
}

impl Iterator for JsonRecords {
    type Item = Result<JsonRecord, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        match self.layout {
            JsonLayout::Lines => self.next_line(),
            JsonLayout::Array => self.next_element(),
        }
    }
}

/// Consumes the rest of a line, the newline included, without keeping it.
fn skip_line(reader: &mut Box<dyn BufRead + Send>) -> io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line over the limit is one error with its line number, read past without keeping it;
    /// the records around it are read.
    #[test]
    fn an_oversized_line_is_skipped_and_reported() {
        let text = format!("{{\"a\": 1}}\n\"{}\"\n{{\"b\": 2}}\n", "x".repeat(5000));
        let mut records = JsonRecords::new(
            "f.jsonl".into(),
            Box::new(io::Cursor::new(text.into_bytes())),
            JsonLayout::Lines,
            "read failed",
        );
        records.max_record = 1000;
        let items: Vec<_> = records.collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap().line, 1);
        let e = items[1].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (2, RecordErrorKind::TooLarge));
        let b = items[2].as_ref().unwrap();
        assert_eq!((b.line, &b.value), (3, &serde_json::json!({"b": 2})));
    }

    /// An array element over the limit is one error with its row, scanned past without keeping
    /// it (nested brackets and strings with brackets in it included); the rows around it are
    /// read, and an element that never ends is one error, not a read into memory.
    #[test]
    fn an_oversized_array_element_is_skipped_and_reported() {
        let big = format!(
            "{{\"t\": \"{}]}}\", \"n\": [[{}]]}}",
            "x".repeat(3000),
            "1,".repeat(1000) + "1"
        );
        let text = format!("[{{\"a\": 1}}, {big}, {{\"b\": 2}}]");
        let mut records = JsonRecords::new(
            "f.json".into(),
            Box::new(io::Cursor::new(text.into_bytes())),
            JsonLayout::Array,
            "read failed",
        );
        records.max_record = 1000;
        let items: Vec<_> = records.collect();
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().line, 1);
        let e = items[1].as_ref().unwrap_err();
        assert_eq!((e.line, e.kind), (2, RecordErrorKind::TooLarge));
        assert_eq!(
            e.to_string(),
            "f.json:2: row over 0 MiB (the limit; HESNR_MAX_RECORD_MB=MiB raises it), skipped (no model context holds it)"
        );
        let b = items[2].as_ref().unwrap();
        assert_eq!((b.line, &b.value), (3, &serde_json::json!({"b": 2})));

        let endless = format!("[{{\"a\": \"{}", "y".repeat(5000));
        let mut records = JsonRecords::new(
            "f.json".into(),
            Box::new(io::Cursor::new(endless.into_bytes())),
            JsonLayout::Array,
            "read failed",
        );
        records.max_record = 1000;
        let items: Vec<_> = records.collect();
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(
            items[0].as_ref().unwrap_err().kind,
            RecordErrorKind::TooLarge
        );
    }
}
