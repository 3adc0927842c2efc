//! What a person looks at: renderings of results for terminals and browsers.
//!
//! The HTML pages come from templates (`html`, `templates/`), the plots from one plot kit
//! (`plot`), and every number is formatted by `format`, so the three reports look alike and
//! escape alike.

pub mod explain;
mod format;
mod html;
mod plot;
pub mod select;
pub mod track;
