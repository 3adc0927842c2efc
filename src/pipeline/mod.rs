//! Pipelines compose the pieces: data readers -> backend -> metrics -> writers.

pub mod score;
pub mod eval;
