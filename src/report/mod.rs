//! What a person looks at: renderings of results for terminals and browsers.

pub mod explain;
pub mod track;
pub mod select;
