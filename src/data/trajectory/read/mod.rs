//! Trajectory readers: OpenAI-style chat records (JSONL rows, mini-swe-agent `.traj.json` and
//! bare message lists, nebius/SWE-agent-trajectories rows, LLM-completion logs), SWE-agent
//! `.traj` files and OpenHands event logs, all turned into [`Trajectory`] values whose segments
//! say what is prompt, thought, action and observation.
//!
//! Joining rules (what is added to the recorded text, and where):
//! - A message's content is the concatenation of its segments; nothing is added except between a
//!   thought and a rendered tool call, and between two rendered tool calls, where one `"\n"` is
//!   written: appended to the thought (unless it already ends with a newline), or appended to
//!   the previous action and recorded as its markup (it is syntax written by the renderer).
//! - Actions written in free text (`<function=...>` blocks, fenced commands) are split out of the
//!   text in place: see [`super::action`] for the rules. A SWE-agent step appended from
//!   `trajectory[]` in a function-calling run writes one `"\n"` between thought and command.
//! - A user message right after an assistant message with an action is an Observation (that is
//!   what SWE-agent-style agents send back); in SWE-agent histories and mini-swe-agent
//!   trajectories, whose environment answers every turn, any user message after an assistant
//!   turn is; other system/user messages are Prompts.
//! - An assistant message's `reasoning_content` is a Thought before its content, ended by one
//!   `"\n"`. Non-text content parts are left out (reported as a warning).
//! - Turns whose actions the agent rejected without running them (mini-swe-agent: not exactly
//!   one action block) are Thought unless [`ReadOptions::score_rejected_actions`] is set.
//!
//! The per-format tables (what each part of a record becomes) are in
//! `docs/trajectory-formats.md`.
//!
//! One module per format, each readable alone: [`chat`] (OpenAI-style `messages`),
//! [`swe_agent`] (`.traj`), [`openhands`] (event logs); [`record`] holds what they share. This
//! module finds the files (through [`crate::data::inputs`]), opens them (through
//! [`crate::data::open`], compression by magic bytes), reads JSON Lines through
//! [`crate::data::json::JsonRecords`] and Parquet rows through [`crate::data::parquet`], and
//! picks the format of each record by its shape.

mod chat;
pub mod draw;
mod openhands;
mod record;
mod swe_agent;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};

pub use chat::{parse_chat, parse_chat_with};
pub use draw::{Draw, DrawManifest, DrawSpec};
pub use openhands::parse_openhands;
pub use swe_agent::parse_swe_agent;

use super::Trajectory;
use crate::data::inputs::{expand, InputFile};
use crate::data::json::{json_message, type_name, JsonLayout, JsonRecord, JsonRecords};
use crate::data::open::{
    first_non_blank, max_whole_file_bytes, open_decoded, over_limit, put_back, read_to_end_bounded,
    starts_with_parquet_magic, BOM, MAX_WHOLE_FILE_ENV, STDIN_NAME,
};
use crate::data::parquet::{is_parquet, read_parquet_records};
use crate::data::reader::whole_file_error;
use crate::data::{DataError, RecordError, RecordErrorKind};

/// What a read error of a trajectory file is called (the stream may be compressed).
const READ_FAILED: &str = "read failed (corrupt or truncated compressed stream?)";

/// How trajectory inputs are parsed. `Auto` decides per file (by extension, then by the shape of
/// the JSON); the others force one parser on every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrajectoryFormat {
    /// `*.jsonl`/`*.ndjson`, Parquet (and stdin): one record per line or row, each sniffed,
    /// chat by default;
    /// `*.traj`: SWE-agent unless the JSON says otherwise; `*.json`: sniffed.
    #[default]
    Auto,
    /// OpenAI chat `messages` (or a nebius-style `trajectory` of `{role, text}`).
    Chat,
    /// SWE-agent `.traj`: `history` and/or `trajectory` steps, `info`.
    SweAgent,
    /// OpenHands event log: an array of events (or of `[action, observation]` pairs), or
    /// `{"history" | "events": [...]}` (there also in the compact form of early output).
    OpenHands,
}

/// How trajectory records are read: the format, and the choices where a format leaves a
/// reading open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadOptions {
    pub format: TrajectoryFormat,
    /// Score the action blocks of turns the agent rejected without running them
    /// (mini-swe-agent turns with zero or several action blocks, answered with a format error):
    /// by default such a turn is all Thought, since none of its blocks was executed; with this
    /// set, each of its blocks is an Action. See `docs/trajectory-formats.md`.
    pub score_rejected_actions: bool,
    /// The field of every record that holds its messages (a dataset's column), instead of
    /// finding them by the record's shape.
    pub messages_field: Option<String>,
}

/// The version of what the readers make of a record: bumped whenever a reader change gives some
/// trajectory other segments, so that caches keyed on the data's content (`hesnr track`) are
/// re-scored rather than misread.
pub const READER_VERSION: u32 = 2;

/// [`read_trajectories_with`] with the default [`ReadOptions`] for `format`.
pub fn read_trajectories(
    inputs: &[PathBuf],
    format: TrajectoryFormat,
) -> Result<TrajectoryStream, DataError> {
    read_trajectories_with(
        inputs,
        ReadOptions {
            format,
            ..ReadOptions::default()
        },
    )
}

/// Checks inputs (missing -> [`DataError`] at once), then streams trajectories; a bad record is
/// an `Err` item and the stream goes on.
///
/// `-` is stdin (JSON Lines). A directory expands to its non-hidden files, recursively, sorted
/// by name, keeping only trajectory files (`.jsonl`, `.ndjson`, `.json`, `.traj`, each maybe
/// `.gz`/`.zst`, and `.parquet`/`.pq`); a glob pattern to its matches; a file named explicitly
/// (or matched by a pattern) is read whatever its name (Parquet by its magic bytes, else as one
/// JSON value, or as JSON Lines when it is a pipe). Whatever the name, JSON whose first
/// non-blank byte is `[` is one array: one trajectory per element when the elements are
/// trajectory records (place `file:row`), else one trajectory (an OpenHands event log). A
/// Parquet file is one record per row (place `file:row`; see
/// [`crate::data::parquet::read_parquet_records`]), as JSON Lines are one per line. Compression is
/// detected from the bytes.
pub fn read_trajectories_with(
    inputs: &[PathBuf],
    options: ReadOptions,
) -> Result<TrajectoryStream, DataError> {
    let format = options.format;
    let mut queue = VecDeque::new();
    for p in inputs {
        let files = expand(std::slice::from_ref(p))?;
        let before = queue.len();
        let listed = files.len();
        for InputFile { path, named } in files {
            match path {
                None => queue.push_back(Input {
                    path: None,
                    layout: Layout::Lines,
                    format,
                    fallback: Some(TrajectoryFormat::Chat),
                }),
                Some(f) => {
                    // A path that cannot be inspected is treated as a file; opening it says why.
                    let regular = std::fs::metadata(&f).map_or(true, |m| m.is_file());
                    queue.extend(classify(f, format, named, regular));
                }
            }
        }
        if queue.len() == before && p.is_dir() && listed > 0 {
            tracing::warn!("input directory {} has no trajectory files", p.display());
        }
    }
    Ok(TrajectoryStream {
        options,
        queue,
        pending: VecDeque::new(),
        lines: None,
        draw: None,
        stopped: false,
    })
}

/// The trajectories of all inputs in order, each item a [`Trajectory`] or the [`RecordError`]
/// of one record. Inputs are opened one at a time as they are reached; JSON Lines are read one
/// line at a time.
pub struct TrajectoryStream {
    options: ReadOptions,
    queue: VecDeque<Input>,
    /// Records of a whole file already read.
    pending: VecDeque<Result<RawRecord, RecordError>>,
    lines: Option<LineInput>,
    /// Which records are taken ([`TrajectoryStream::drawing`]); all when `None`.
    draw: Option<Draw>,
    /// The draw's limit was reached: nothing more is read.
    stopped: bool,
}

/// One record before it is parsed: a JSON value and where it came from.
struct RawRecord {
    value: Value,
    source: String,
    line: u64,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
}

impl TrajectoryStream {
    /// Takes only the records `spec` draws (see [`draw`]); [`TrajectoryStream::manifest`] then
    /// says what was drawn.
    pub fn drawing(mut self, spec: DrawSpec) -> Self {
        self.draw = Some(Draw::new(spec));
        self
    }

    /// What the draw took so far (all of it once the stream is done), if drawing.
    pub fn manifest(&self) -> Option<&DrawManifest> {
        self.draw.as_ref().map(Draw::manifest)
    }

    /// Runs the draw over every record without parsing what it takes: what would be drawn,
    /// for a caller that parses the set elsewhere (`track` writes it down once). `None` when
    /// not drawing.
    pub fn into_manifest(mut self) -> Option<DrawManifest> {
        let mut draw = self.draw.take()?;
        while let Some(record) = self.next_record() {
            let verdict = match &record {
                Ok(r) => draw.decide(Some(&r.value), &r.source, r.line),
                Err(e) => draw.decide(None, &e.source, e.line),
            };
            if verdict == draw::Verdict::Stop {
                break;
            }
        }
        Some(draw.manifest().clone())
    }

    /// The next record of the inputs, read but not parsed.
    fn next_record(&mut self) -> Option<Result<RawRecord, RecordError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if let Some(cur) = self.lines.as_mut() {
                match cur.records.next() {
                    None => self.lines = None,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(rec)) => {
                        return Some(Ok(RawRecord {
                            value: rec.value,
                            source: cur.source.clone(),
                            line: rec.line,
                            format: cur.format,
                            fallback: cur.fallback,
                        }))
                    }
                }
                continue;
            }
            let input = self.queue.pop_front()?;
            let source = input
                .path
                .as_ref()
                .map_or_else(|| STDIN_NAME.to_string(), |p| p.display().to_string());
            if let (Layout::Parquet, Some(path)) = (input.layout, &input.path) {
                self.lines = Some(LineInput {
                    source,
                    records: Box::new(read_parquet_records(path)),
                    format: input.format,
                    fallback: input.fallback,
                });
                continue;
            }
            let mut reader = match open_decoded(input.path.as_deref()) {
                Ok(d) => {
                    d.warn_if_unchecked(&source);
                    d.reader
                }
                Err(e) => {
                    return Some(Err(whole_file_error(
                        &source,
                        RecordErrorKind::Io,
                        format!("cannot open: {e}"),
                    )))
                }
            };
            let (first, prefix) = match first_non_blank(&mut reader) {
                Ok(f) => f,
                Err(e) => {
                    return Some(Err(whole_file_error(
                        &source,
                        RecordErrorKind::Io,
                        format!("{READ_FAILED}: {e}"),
                    )))
                }
            };
            let reader = put_back(reader, prefix);
            // A JSON array, whatever the name (`.jsonl` and stdin too): records one element at
            // a time, or one trajectory (an OpenHands event log, a bare message list).
            if first == Some(b'[') {
                self.open_array(reader, source, input.format, input.fallback);
            } else if input.layout == Layout::Lines {
                let records =
                    JsonRecords::new(source.clone(), reader, JsonLayout::Lines, READ_FAILED);
                self.lines = Some(LineInput {
                    source,
                    records: Box::new(records),
                    format: input.format,
                    fallback: input.fallback,
                });
            } else {
                self.pending
                    .extend(read_whole(reader, &source, input.format, input.fallback));
            }
        }
    }
}

impl TrajectoryStream {
    /// Reads a JSON array: when its first element is a trajectory record (a dataset), the
    /// elements are streamed one at a time like JSON Lines (place `file:row`), so that a dataset
    /// larger than memory is read; otherwise the array is one trajectory (an OpenHands event
    /// log, a bare message list), gathered whole up to the whole-file bound.
    fn open_array(
        &mut self,
        reader: Box<dyn BufRead + Send>,
        source: String,
        format: TrajectoryFormat,
        fallback: Option<TrajectoryFormat>,
    ) {
        let read = Arc::new(AtomicU64::new(0));
        let counted = Box::new(CountingReader {
            inner: reader,
            read: Arc::clone(&read),
        });
        let mut elements =
            JsonRecords::new(source.clone(), counted, JsonLayout::Array, READ_FAILED).peekable();
        let records = match elements.peek() {
            Some(Ok(first)) => is_record_array(std::slice::from_ref(&first.value), format),
            // The first row is reported as what it is; the rest are read as records.
            Some(Err(_)) => true,
            None => false,
        };
        if records {
            self.lines = Some(LineInput {
                source,
                records: Box::new(elements),
                format,
                fallback,
            });
            return;
        }
        let limit = max_whole_file_bytes();
        let mut items = Vec::new();
        for element in elements {
            if read.load(Ordering::Relaxed) > limit as u64 {
                let why = over_limit("file", limit, MAX_WHOLE_FILE_ENV);
                let message = format!("{why}: too large to read whole as one trajectory");
                self.pending.push_back(Err(whole_file_error(
                    &source,
                    RecordErrorKind::TooLarge,
                    message,
                )));
                return;
            }
            match element {
                Ok(e) => items.push(e.value),
                Err(e) => {
                    self.pending.push_back(Err(e));
                    return;
                }
            }
        }
        self.pending.push_back(Ok(RawRecord {
            value: Value::Array(items),
            source,
            line: 0,
            format,
            fallback,
        }));
    }
}

/// A reader that counts the bytes taken from it, for a bound on what is gathered.
struct CountingReader {
    inner: Box<dyn BufRead + Send>,
    read: Arc<AtomicU64>,
}

impl io::Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl BufRead for CountingReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.read.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

#[derive(Debug, Clone)]
struct Input {
    /// `None` is stdin.
    path: Option<PathBuf>,
    layout: Layout,
    format: TrajectoryFormat,
    /// With `Auto`, the parser for a value whose shape says nothing.
    fallback: Option<TrajectoryFormat>,
}

/// How an input holds its trajectories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// JSON Lines (read whole when it is a JSON array).
    Lines,
    /// One JSON value (JSON Lines when it turns out to be).
    Whole,
    /// Parquet: one record per row.
    Parquet,
}

/// An input read one record (line or row) at a time.
struct LineInput {
    source: String,
    records: Box<dyn Iterator<Item = Result<JsonRecord, RecordError>> + Send>,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
}

impl Iterator for TrajectoryStream {
    type Item = Result<Trajectory, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.stopped {
                return None;
            }
            let Some(record) = self.next_record() else {
                if let Some(draw) = &self.draw {
                    for field in draw.absent_fields() {
                        tracing::warn!(
                            "no record read has the field '{field}' of --where: every record \
                             was compared with null"
                        );
                    }
                }
                self.stopped = true;
                return None;
            };
            if let Some(draw) = self.draw.as_mut() {
                let verdict = match &record {
                    Ok(r) => draw.decide(Some(&r.value), &r.source, r.line),
                    Err(e) => draw.decide(None, &e.source, e.line),
                };
                match verdict {
                    draw::Verdict::Take => {}
                    draw::Verdict::Leave => continue,
                    draw::Verdict::Stop => {
                        self.stopped = true;
                        return None;
                    }
                }
            }
            return Some(record.and_then(|r| {
                parse_value(
                    &r.value,
                    &r.source,
                    r.line,
                    r.format,
                    r.fallback,
                    &self.options,
                )
            }));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Format detection

/// A chat message rather than a record holding messages: a string `role` and no list of them.
fn is_message(o: &Map<String, Value>) -> bool {
    o.get("role").is_some_and(Value::is_string)
        && !["messages", "trajectory", "history"]
            .iter()
            .any(|k| o.contains_key(*k))
}

fn sniff(value: &Value) -> Option<TrajectoryFormat> {
    fn first_obj(v: Option<&Value>) -> Option<Option<&Map<String, Value>>> {
        // Some(None): an empty array; Some(Some(o)): its first element is an object.
        let a = v?.as_array()?;
        match a.first() {
            None => Some(None),
            Some(Value::Object(o)) => Some(Some(o)),
            Some(_) => None,
        }
    }
    // An OpenHands event: `action` or `observation` (never both: an SWE-agent step has both),
    // no `role`; with `args`/`extras`/... (event_to_dict), or in the compact form only when
    // under `history`/`events`, where the action's fields sit beside `action`.
    fn is_event(o: &Map<String, Value>, compact_allowed: bool) -> bool {
        let is_str = |k: &str| o.get(k).is_some_and(Value::is_string);
        !o.contains_key("role")
            && (is_str("action") != is_str("observation"))
            && (compact_allowed
                || ["args", "extras", "source", "cause", "tool_call_metadata"]
                    .iter()
                    .any(|k| o.contains_key(*k)))
    }
    // An event log's first item: an event, or an `[action, observation]` pair of them.
    fn is_event_item(v: &Value, compact_allowed: bool) -> bool {
        match v {
            Value::Object(o) => is_event(o, compact_allowed),
            Value::Array(pair) => {
                pair.len() == 2
                    && matches!(&pair[0], Value::Object(o) if is_event(o, compact_allowed))
            }
            _ => false,
        }
    }
    match value {
        Value::Array(a) => match a.first() {
            None => Some(TrajectoryFormat::OpenHands),
            Some(first) if is_event_item(first, false) => Some(TrajectoryFormat::OpenHands),
            // A bare list of chat messages (early mini-swe-agent).
            Some(Value::Object(o)) => is_message(o).then_some(TrajectoryFormat::Chat),
            Some(_) => None,
        },
        Value::Object(o) => {
            if o.get("messages").is_some_and(Value::is_array) {
                return Some(TrajectoryFormat::Chat);
            }
            for key in ["history", "events"] {
                if let Some(Value::Array(a)) = o.get(key) {
                    if a.first().is_some_and(|first| is_event_item(first, true)) {
                        return Some(TrajectoryFormat::OpenHands);
                    }
                }
            }
            if let Some(Some(first)) = first_obj(o.get("history")) {
                if first.contains_key("role") {
                    return Some(TrajectoryFormat::SweAgent);
                }
            }
            match first_obj(o.get("trajectory")) {
                Some(Some(first)) => {
                    if ["thought", "action", "response", "observation"]
                        .iter()
                        .any(|k| first.contains_key(*k))
                    {
                        return Some(TrajectoryFormat::SweAgent);
                    }
                    if first.contains_key("role") {
                        return Some(TrajectoryFormat::Chat);
                    }
                }
                // An SWE-agent run with no steps at all.
                Some(None) if first_obj(o.get("history")).is_some_and(|f| f.is_none()) => {
                    return Some(TrajectoryFormat::SweAgent)
                }
                _ => {}
            }
            None
        }
        _ => None,
    }
}

/// The one column of a record that holds a list of chat messages (objects with a string `role`,
/// or ShareGPT's `from`: a `conversations` column), when the record has exactly one such column;
/// `--messages-field` names it otherwise.
fn messages_column(value: &Value) -> Option<String> {
    let obj = value.as_object()?;
    let mut found = obj.iter().filter(|(_, v)| {
        v.as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_object)
            .is_some_and(|m| {
                ["role", "from"]
                    .iter()
                    .any(|k| m.get(*k).is_some_and(Value::is_string))
            })
    });
    let (key, _) = found.next()?;
    found.next().is_none().then(|| key.clone())
}

/// The error for a value of no known shape: where it stops matching, and what was expected.
fn unknown_shape(value: &Value, source: &str, line: u64) -> RecordError {
    const EXPECTED: &str = "an object with `messages` (chat) or an array of chat messages, an \
        object with `history` or `trajectory` of SWE-agent steps, or an array of OpenHands events (or an object with \
        `history` or `events` of them)";
    let describe = |v: &Value| match v {
        Value::Object(o) if o.is_empty() => "an empty object".to_string(),
        Value::Object(o) => {
            let keys: Vec<&str> = o.keys().map(String::as_str).take(8).collect();
            let more = if o.len() > 8 { ", ..." } else { "" };
            format!("an object with keys {}{more}", keys.join(", "))
        }
        other => type_name(other).to_string(),
    };
    let (path, found) = match value {
        Value::Array(a) => ("$[0]".to_string(), describe(&a[0])),
        Value::Object(o) => {
            let list = ["history", "events", "trajectory"]
                .iter()
                .find_map(|k| match o.get(*k) {
                    Some(Value::Array(a)) if !a.is_empty() => Some((k, &a[0])),
                    _ => None,
                });
            match list {
                Some((k, first)) => (format!("$.{k}[0]"), describe(first)),
                None => ("$".to_string(), describe(value)),
            }
        }
        other => ("$".to_string(), type_name(other).to_string()),
    };
    RecordError {
        source: source.to_string(),
        line,
        field: Some(path),
        kind: RecordErrorKind::WrongType,
        message: format!("unknown trajectory shape: expected {EXPECTED}; found {found}"),
    }
}

fn parse_value(
    value: &Value,
    source: &str,
    line: u64,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
    options: &ReadOptions,
) -> Result<Trajectory, RecordError> {
    if options.messages_field.is_some() {
        // A dataset's messages column, named: chat messages whatever else the record holds.
        return parse_chat_with(value, source, line, options);
    }
    let format = match format {
        TrajectoryFormat::Auto => match sniff(value) {
            Some(f) => f,
            None => {
                if let Some(column) = messages_column(value) {
                    // A dataset row whose messages sit under a name of its own
                    // (`conversations`, `chat`): read as chat from that column.
                    let options = ReadOptions {
                        messages_field: Some(column),
                        ..options.clone()
                    };
                    return parse_chat_with(value, source, line, &options);
                }
                match fallback {
                    Some(f) => f,
                    None => return Err(unknown_shape(value, source, line)),
                }
            }
        },
        f => f,
    };
    match format {
        TrajectoryFormat::Chat | TrajectoryFormat::Auto => {
            parse_chat_with(value, source, line, options)
        }
        TrajectoryFormat::SweAgent => parse_swe_agent(value, source, line),
        TrajectoryFormat::OpenHands => parse_openhands(value, source, line),
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// A whole file that is not a JSON array as one JSON value (or, when it turns out to be JSON
/// Lines, one per line).
fn read_whole(
    mut reader: Box<dyn BufRead + Send>,
    source: &str,
    format: TrajectoryFormat,
    fallback: Option<TrajectoryFormat>,
) -> Vec<Result<RawRecord, RecordError>> {
    let raw = |value: Value, line: u64, fallback: Option<TrajectoryFormat>| RawRecord {
        value,
        source: source.to_string(),
        line,
        format,
        fallback,
    };
    let mut bytes = Vec::new();
    let limit = max_whole_file_bytes();
    match read_to_end_bounded(&mut reader, limit, &mut bytes) {
        Ok(true) => {}
        Ok(false) => {
            let why = over_limit("file", limit, MAX_WHOLE_FILE_ENV);
            let message = format!("{why}: too large to read whole as one JSON value");
            return vec![Err(whole_file_error(
                source,
                RecordErrorKind::TooLarge,
                message,
            ))];
        }
        Err(e) => {
            let message = format!("{READ_FAILED}: {e}");
            return vec![Err(whole_file_error(source, RecordErrorKind::Io, message))];
        }
    }
    let bytes = bytes.strip_prefix(BOM).unwrap_or(&bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return vec![Err(whole_file_error(
                source,
                RecordErrorKind::InvalidUtf8,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            ))]
        }
    };
    if text.trim().is_empty() {
        return vec![Err(whole_file_error(
            source,
            RecordErrorKind::EmptyText,
            "empty file".into(),
        ))];
    }
    match serde_json::from_str::<Value>(text) {
        // (Arrays never get here: see `TrajectoryStream::open_array`.)
        Ok(v) => vec![Ok(raw(v, 0, fallback))],
        Err(e) if e.line() > 1 && e.to_string().starts_with("trailing characters") => {
            // JSON Lines under a `.json` name.
            let lines = Box::new(io::Cursor::new(text.as_bytes().to_vec()));
            JsonRecords::new(source.to_string(), lines, JsonLayout::Lines, READ_FAILED)
                .map(|r| {
                    r.map(|rec| {
                        raw(
                            rec.value,
                            rec.line,
                            fallback.or(Some(TrajectoryFormat::Chat)),
                        )
                    })
                })
                .collect()
        }
        Err(e) => vec![Err(RecordError {
            source: source.to_string(),
            line: e.line() as u64,
            field: None,
            kind: RecordErrorKind::InvalidJson,
            message: format!("invalid JSON: {}", json_message(&e)),
        })],
    }
}

/// Whether a JSON array holds one trajectory record per element (place `file:row`) rather than
/// being one trajectory itself (an OpenHands event log, a bare list of chat messages): its first
/// element is a record of a known shape, or the format is forced to one whose trajectories are
/// objects (for chat: unless the elements are messages).
fn is_record_array(rows: &[Value], format: TrajectoryFormat) -> bool {
    match format {
        TrajectoryFormat::Chat => !rows
            .first()
            .and_then(Value::as_object)
            .is_some_and(is_message),
        TrajectoryFormat::SweAgent => true,
        TrajectoryFormat::OpenHands => false,
        TrajectoryFormat::Auto => rows
            .first()
            .is_some_and(|r| r.is_object() && sniff(r).is_some()),
    }
}

/// How to read `path`, or `None` for a file in a directory that is not a trajectory file.
fn classify(
    path: PathBuf,
    format: TrajectoryFormat,
    explicit: bool,
    regular: bool,
) -> Option<Input> {
    let stem = crate::data::open::uncompressed_name(&path);
    let stem = stem.as_str();
    let (layout, fallback) =
        if is_parquet(&path) || (explicit && regular && starts_with_parquet_magic(&path)) {
            (Layout::Parquet, Some(TrajectoryFormat::Chat))
        } else if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
            (Layout::Lines, Some(TrajectoryFormat::Chat))
        } else if stem.ends_with(".json") {
            (Layout::Whole, None)
        } else if stem.ends_with(".traj") {
            (Layout::Whole, Some(TrajectoryFormat::SweAgent))
        } else if !explicit {
            tracing::debug!("skipping non-trajectory file {}", path.display());
            return None;
        } else if !regular {
            // A pipe (`<(zcat runs.jsonl.gz)`): its name says nothing; read it like stdin.
            (Layout::Lines, Some(TrajectoryFormat::Chat))
        } else {
            (Layout::Whole, None)
        };
    Some(Input {
        path: Some(path),
        layout,
        format,
        fallback,
    })
}
