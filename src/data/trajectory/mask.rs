//! Which bytes of a rendered trajectory are scored, and which tokens that makes.
//!
//! A [`Preset`] names one row of the paper's ablation: which segments are scored (thoughts or
//! actions) and which cleaning steps apply to actions. The mask is computed per byte of the
//! rendered text; [`token_mask`] maps it to tokens through the tokenizer's byte offsets.

use std::ops::Range;

use serde::Serialize;

use super::clean::{clean_action, CleanStats, CleanSteps};
use super::render::Rendered;
use super::{SegmentKind, Trajectory};

/// The paper's ablation rows (method.md, "The evaluation set"), from least to most filtered.
/// Serialized under the names the command line takes ([`Preset::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Preset {
    /// Thought segments, unfiltered.
    #[serde(rename = "thought")]
    Thought,
    /// Action segments, unfiltered.
    #[serde(rename = "action")]
    Action,
    /// Actions without XML tool-call tags and markdown markup.
    #[serde(rename = "action+xml")]
    ActionMarkup,
    /// ... and without redundant whitespace and symbols.
    #[serde(rename = "action+xml+ws")]
    ActionWhitespace,
    /// ... and without code comments: the paper's evaluation set (the default).
    #[serde(rename = "full")]
    Full,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Thought,
        Preset::Action,
        Preset::ActionMarkup,
        Preset::ActionWhitespace,
        Preset::Full,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Thought => "thought",
            Preset::Action => "action",
            Preset::ActionMarkup => "action+xml",
            Preset::ActionWhitespace => "action+xml+ws",
            Preset::Full => "full",
        }
    }

    /// The row label of the paper's ablation table.
    pub fn description(self) -> &'static str {
        match self {
            Preset::Thought => "Thought, unfiltered",
            Preset::Action => "Action, unfiltered",
            Preset::ActionMarkup => "+ XML/markdown removed",
            Preset::ActionWhitespace => "+ whitespace/symbols removed",
            Preset::Full => "+ comments removed (full)",
        }
    }

    /// A preset by its name, also with `-` for `+` (`action-xml`), `paper` for `full`, and the
    /// names summaries used before they were made the same as the command line's.
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "paper" => return Some(Preset::Full),
            "action-markup" => return Some(Preset::ActionMarkup),
            "action-whitespace" => return Some(Preset::ActionWhitespace),
            _ => {}
        }
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s || p.name().replace('+', "-") == s)
    }

    /// The segments this preset scores.
    pub fn scored_kind(self) -> SegmentKind {
        match self {
            Preset::Thought => SegmentKind::Thought,
            _ => SegmentKind::Action,
        }
    }

    pub fn steps(self) -> CleanSteps {
        let (markup, whitespace, comments) = match self {
            Preset::Thought | Preset::Action => (false, false, false),
            Preset::ActionMarkup => (true, false, false),
            Preset::ActionWhitespace => (true, true, false),
            Preset::Full => (true, true, true),
        };
        CleanSteps {
            markup,
            whitespace,
            comments,
        }
    }
}

/// How a token's bytes decide whether it is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRule {
    /// Scored only if every byte is kept (the default: a token straddling kept and removed text
    /// is not a clean action token).
    #[default]
    All,
    /// Scored if any byte is kept.
    Any,
}

/// The scored bytes of a rendered trajectory under a preset, and how cleaning went.
pub fn byte_mask(
    traj: &Trajectory,
    rendered: &Rendered,
    preset: Preset,
    stats: &mut CleanStats,
) -> Vec<bool> {
    let mut mask = vec![false; rendered.text.len()];
    let steps = preset.steps();
    for span in &rendered.spans {
        if span.kind != preset.scored_kind() {
            continue;
        }
        let seg = &traj.messages[span.message].segments[span.segment];
        let range = span.offset..span.offset + span.range.len();
        if seg.kind == SegmentKind::Action && steps != CleanSteps::default() {
            let kept = clean_action(seg, steps, stats);
            mask[span.range.clone()].copy_from_slice(&kept[range]);
        } else {
            mask[span.range.clone()].fill(true);
        }
    }
    mask
}

/// Maps a byte mask to tokens. Tokens with no bytes (a BOS added by the model) are never scored.
pub fn token_mask(offsets: &[Range<usize>], bytes: &[bool], rule: TokenRule) -> Vec<bool> {
    offsets
        .iter()
        .map(|r| {
            let b = &bytes[r.start.min(bytes.len())..r.end.min(bytes.len())];
            !b.is_empty()
                && match rule {
                    TokenRule::All => b.iter().all(|&k| k),
                    TokenRule::Any => b.iter().any(|&k| k),
                }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_serialize_under_their_command_line_names() {
        for p in Preset::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        assert_eq!(Preset::parse("action-markup"), Some(Preset::ActionMarkup));
        assert_eq!(
            Preset::parse("action-whitespace"),
            Some(Preset::ActionWhitespace)
        );
    }

    #[test]
    fn presets_parse_by_name() {
        for p in Preset::ALL {
            assert_eq!(Preset::parse(p.name()), Some(p));
        }
        assert_eq!(
            Preset::parse("action-xml-ws"),
            Some(Preset::ActionWhitespace)
        );
        assert_eq!(Preset::parse("paper"), Some(Preset::Full));
        assert_eq!(Preset::parse("nope"), None);
    }

    #[test]
    fn a_token_straddling_kept_and_removed_bytes_is_not_scored_by_default() {
        // bytes: k k k r r k ; tokens [0,2) [2,4) [4,6) and an empty BOS
        let bytes = [true, true, true, false, false, true];
        let offsets = [0..0, 0..2, 2..4, 4..6];
        assert_eq!(
            token_mask(&offsets, &bytes, TokenRule::All),
            vec![false, true, false, false]
        );
        assert_eq!(
            token_mask(&offsets, &bytes, TokenRule::Any),
            vec![false, true, true, true]
        );
    }
}
