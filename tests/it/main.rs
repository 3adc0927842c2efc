//! The integration tests, one binary (one link of the crate and of llama.cpp instead of one per
//! file). New test files go in `tests/it/` and get a `mod` line here; they reach the shared
//! helpers as `crate::common` and run the binary only through `common::hesnr_command()` (or the
//! runners built on it), never with `std::env::set_var`: every module runs as threads of this
//! one process.

mod common;

mod cli;
mod convert_hf;
mod corpus_openhands;
mod corpus_swe;
mod datasets;
mod engine_tiny;
mod environment;
mod eval_tiny;
mod fuzz;
mod golden_eval;
mod hostile_inputs;
mod input_forms;
mod inputs;
mod packing;
mod profile_cli;
mod proxy_metrics;
mod real_model;
mod remote;
mod report_browser;
mod select_cli;
mod select_forms;
mod select_report;
mod track_tiny;
