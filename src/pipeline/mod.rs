//! Pipelines compose the pieces: data readers -> backend -> metrics -> writers.

pub mod eval;
pub mod score;
pub mod track_types;
pub mod track;
