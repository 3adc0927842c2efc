//! Readers normalise the formats ML engineers have (JSONL, compressed or not, plain files,
//! stdin) into one stream of [`Document`]s with per-record errors; writers never leave a
//! half-written output under its final name.

mod reader;
mod writer;

pub use reader::{
    read_documents, DataError, Document, DocumentStream, InputFormat, ReaderOptions, RecordError,
    RecordErrorKind,
};
pub use writer::{create_output, AtomicFile, Output};
