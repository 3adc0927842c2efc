//! The subcommands of the `hesnr` binary, one module each, and what they share ([`common`]).
//! They translate flags into the library's settings and print; the work is in the library.

pub mod common;
pub mod convert;
pub mod eval;
pub mod profile;
pub mod remote;
pub mod report_select;
pub mod score;
pub mod select;
pub mod track;
