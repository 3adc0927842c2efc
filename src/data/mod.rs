//! Documents in, results out.
//!
//! Readers normalise the formats ML engineers have (JSON Lines as Hugging Face `datasets` and
//! datatrove write them, JSON arrays of records, Parquet, gzip- or zstd-compressed or not, whole
//! source files, directories and glob patterns of either, stdin) into one stream of
//! [`Document`]s ([`inputs`]). A bad record becomes a [`RecordError`] item naming the file,
//! line (or row) and field, and the stream goes on: one broken line must not cost a multi-hour
//! scoring run. A gzip or zstd input is verified whole before any of it is read, so a damaged
//! one is refused as one error instead of read as garbage; records and files read whole have
//! size bounds ([`open::max_record_bytes`], [`open::max_whole_file_bytes`]). Writers never
//! leave a half-written output under its final name, so a file that exists is a file that is
//! complete, and they clean up the temporary files a killed run left.
//!
//! The small primitives every reader shares live here once: [`open`] (decompression by magic
//! bytes, the file constants), [`json`] (field lookup, messages, the JSON record iterator) and
//! [`digest`] (SHA-256 hex).

pub mod digest;
pub mod inputs;
pub mod json;
pub mod open;
pub mod parquet;
pub(crate) mod reader;
pub mod records;
pub mod trajectory;
mod writer;

pub use inputs::{expand, expand_inputs, read_documents, read_files, DocumentStream, InputFile};
pub use reader::{DataError, Document, InputFormat, ReaderOptions, RecordError, RecordErrorKind};
pub use writer::{
    create_output, refuse_overwriting_inputs, write_json_atomic, AtomicFile, JsonlWriter, Output,
};
