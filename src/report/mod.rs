//! What a person looks at: renderings of results for terminals and browsers.

pub mod explain;
pub mod select;
pub mod track;
