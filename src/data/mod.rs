//! Documents in, results out.
//!
//! Readers normalise the formats ML engineers have (JSON Lines as Hugging Face `datasets` and
//! datatrove write them, gzip- or zstd-compressed or not, whole source files, directories of
//! either, stdin) into one stream of [`Document`]s. A bad record becomes a [`RecordError`] item
//! naming the file, line and field, and the stream goes on: one broken line must not cost a
//! multi-hour scoring run. Writers never leave a half-written output under its final name, so
//! a file that exists is a file that is complete.

pub mod parquet;
pub(crate) mod reader;
pub mod trajectory;
mod writer;

pub use reader::{
    read_documents, DataError, Document, DocumentStream, InputFormat, ReaderOptions, RecordError,
    RecordErrorKind,
};
pub use writer::{create_output, write_json_atomic, AtomicFile, JsonlWriter, Output};
