//! Pipelines compose the pieces: data readers -> backend -> metrics -> writers.

pub mod check;
pub mod eval;
pub mod parallel;
pub mod profile;
pub mod proxy_columns;
pub mod run;
pub mod score;
pub mod select;
pub mod skips;
pub mod track;
pub mod track_types;
