//! hesnr: HE-SNR and its companion per-token metrics, from one teacher-forced forward pass.
//!
//! Data flows one way: [`data`] readers produce documents, an [`engine`] backend turns them into
//! per-position statistics, [`metrics`] reduces those to numbers, and [`pipeline`]s compose the
//! three for the command line.

pub mod analysis;
pub mod convert;
pub mod data;
pub mod engine;
pub mod gguf;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod server;
