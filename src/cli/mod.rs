//! Subcommands of the `hesnr` binary that are larger than a screen.

pub mod convert;
pub mod eval;
pub mod profile;
pub mod remote;
pub mod report_select;
pub mod select;
pub mod track;
