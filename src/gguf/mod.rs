//! GGUF model files: a defensive header reader, a small writer, and tiny test models.
//!
//! Model files are untrusted input: downloads get cut short, disks fill up, and a hand-passed
//! `--model` may be anything. llama.cpp's own loader fails on such files with a terse log line
//! (or worse, deep in C++), so [`read_gguf`] validates every count, length, type and tensor
//! range first and reports the file, and the key or tensor, at fault. The reader never loads
//! tensor data and never allocates more than the file could justify.
//!
//! The writer and [`tiny`] exist so that tests can build small random-weight models in the
//! real format (llama architecture, byte-level BPE vocabulary) and run the real engine on them
//! in milliseconds, without downloads.

mod reader;
pub mod tiny;
mod writer;

pub use reader::{
    ggml_type_name, read_gguf, GgufError, GgufFile, GgufValue, TensorInfo, DEFAULT_ALIGNMENT,
};
pub use writer::{f16_to_f32, f32_to_f16, GgufWriter, StreamedTensor, TensorData};
