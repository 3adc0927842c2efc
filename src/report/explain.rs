//! `hesnr eval --explain ID`: one trajectory as the model saw it, with the scored tokens
//! highlighted and the decision tokens marked, in a terminal (ANSI colours) or as an HTML page.
//!
//! Every token is drawn from the bytes of the rendered text it covers, so what is shown is
//! exactly what was scored; the HTML page comes from `templates/explain.html.j2`, which escapes
//! everything from the data.

use std::fmt::Write as _;

use serde::Serialize;

use crate::data::trajectory::mask::Preset;
use crate::data::trajectory::SegmentKind;
use crate::engine::Backend;
use crate::metrics::{PositionMetrics, PositionStats};
use crate::pipeline::eval::EvaluatedTrajectory;
use crate::pipeline::score::ScoredDocument;
use crate::report::format::visible_controls;
use crate::report::html;

/// What one token is in the explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenClass {
    /// Template text (role headers, special tokens).
    Template,
    /// Context of a segment kind that this preset does not score.
    Context(SegmentKind),
    /// Part of a scored kind of segment, but removed by cleaning (or straddling removed text).
    Removed,
    /// Scored.
    Scored,
    /// Scored and in the high-entropy decision set H.
    Decision,
}

impl TokenClass {
    /// The CSS class of the token in the HTML views.
    pub fn css(self) -> &'static str {
        match self {
            TokenClass::Template => "tpl",
            TokenClass::Context(SegmentKind::Prompt) => "prompt",
            TokenClass::Context(SegmentKind::Thought) => "thought",
            TokenClass::Context(SegmentKind::Action) => "action",
            TokenClass::Context(SegmentKind::Observation) => "obs",
            TokenClass::Removed => "removed",
            TokenClass::Scored => "scored",
            TokenClass::Decision => "decision",
        }
    }

    fn ansi(self) -> &'static str {
        match self {
            TokenClass::Template => "\x1b[2;35m",
            TokenClass::Context(SegmentKind::Observation) => "\x1b[2m",
            TokenClass::Context(_) => "\x1b[2;3m",
            TokenClass::Removed => "\x1b[2;9m",
            TokenClass::Scored => "\x1b[32m",
            TokenClass::Decision => "\x1b[1;4;31m",
        }
    }
}

/// One token of the explanation with its numbers.
#[derive(Debug, Clone)]
pub struct ExplainedToken {
    pub text: String,
    pub class: TokenClass,
    /// H_k, p(true), rank and the top candidates, for prediction targets.
    pub detail: Option<String>,
}

/// Classifies every token of an evaluated trajectory under `preset`.
pub fn explain_tokens(
    eval: &EvaluatedTrajectory,
    preset: Preset,
    backend: &dyn Backend,
) -> Vec<ExplainedToken> {
    let result = eval
        .presets
        .iter()
        .find(|r| r.preset == preset)
        .expect("explained preset was evaluated");
    let kinds = eval.rendered.byte_kinds();
    let bytes = eval.rendered.text.as_bytes();
    let k = result.acc.config.k;
    eval.tokens
        .offsets
        .iter()
        .enumerate()
        .map(|(pos, r)| {
            let text = String::from_utf8_lossy(&bytes[r.clone()]).into_owned();
            let kind = kinds.get(r.start).copied().flatten();
            let stats = eval.position(pos);
            let metrics = stats.map(|s| PositionMetrics::from_stats(s, k));
            let class = if result.scored[pos] {
                if metrics.is_some_and(|m| result.acc.is_decision(&m)) {
                    TokenClass::Decision
                } else {
                    TokenClass::Scored
                }
            } else {
                match kind {
                    None => TokenClass::Template,
                    Some(kd) if kd == preset.scored_kind() => TokenClass::Removed,
                    Some(kd) => TokenClass::Context(kd),
                }
            };
            let detail = stats.zip(metrics).map(|(s, m)| detail(s, &m, k, backend));
            ExplainedToken {
                text,
                class,
                detail,
            }
        })
        .collect()
}

/// The hover text of a prediction target: H_k, p(true), rank and the top 5 candidates.
fn detail(s: &PositionStats, m: &PositionMetrics, k: usize, backend: &dyn Backend) -> String {
    let top: Vec<String> = s
        .top
        .iter()
        .take(5)
        .map(|t| {
            format!(
                "{:?} {:.3}",
                backend.token_text(t.id),
                (t.logit as f64 - s.lse).exp()
            )
        })
        .collect();
    format!(
        "H{k}={:.3} p={:.3} rank={} | {}",
        m.h_k,
        m.p_true,
        s.true_rank,
        top.join(", ")
    )
}

/// Classifies every token of a document scored whole (`hesnr score`, `hesnr profile`): every
/// prediction target is scored, and a decision token when it is in H; the first token (BOS, or
/// the first token of the text) has nothing to be predicted from and shows as template.
pub fn explain_document(
    text: &str,
    doc: &ScoredDocument,
    backend: &dyn Backend,
) -> Vec<ExplainedToken> {
    let bytes = text.as_bytes();
    let k = doc.acc.config.k;
    let first = doc.tokens.first_target();
    doc.tokens
        .offsets
        .iter()
        .enumerate()
        .map(|(pos, r)| {
            let end = r.end.min(bytes.len());
            let start = r.start.min(end);
            let text = String::from_utf8_lossy(&bytes[start..end]).into_owned();
            let Some(s) = pos.checked_sub(first).and_then(|i| doc.positions.get(i)) else {
                return ExplainedToken {
                    text,
                    class: TokenClass::Template,
                    detail: None,
                };
            };
            let m = PositionMetrics::from_stats(s, k);
            ExplainedToken {
                text,
                class: if doc.acc.is_decision(&m) {
                    TokenClass::Decision
                } else {
                    TokenClass::Scored
                },
                detail: Some(detail(s, &m, k, backend)),
            }
        })
        .collect()
}

/// The trajectory with ANSI colours, for a terminal.
pub fn to_ansi(tokens: &[ExplainedToken], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", visible_controls(header));
    let _ = writeln!(
        out,
        "legend: {}scored\x1b[0m  {}decision token\x1b[0m  {}removed by cleaning\x1b[0m  {}context\x1b[0m  {}template\x1b[0m\n",
        TokenClass::Scored.ansi(),
        TokenClass::Decision.ansi(),
        TokenClass::Removed.ansi(),
        TokenClass::Context(SegmentKind::Thought).ansi(),
        TokenClass::Template.ansi(),
    );
    for t in tokens {
        // Reset before newlines so a colour never bleeds into the terminal's margin.
        for (i, line) in visible_controls(&t.text).split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if !line.is_empty() {
                let _ = write!(out, "{}{line}\x1b[0m", t.class.ansi());
            }
        }
    }
    out.push('\n');
    out
}

/// The trajectory without colours: scored runs in «», decision tokens in ⟦⟧.
pub fn to_plain(tokens: &[ExplainedToken], header: &str) -> String {
    let mut out = format!(
        "{}\nlegend: «scored» ⟦decision token⟧\n\n",
        visible_controls(header)
    );
    let mut in_run = false;
    for t in tokens {
        let scored = matches!(t.class, TokenClass::Scored | TokenClass::Decision);
        if scored != in_run {
            out.push(if scored { '«' } else { '»' });
            in_run = scored;
        }
        let text = visible_controls(&t.text);
        if t.class == TokenClass::Decision {
            let _ = write!(out, "⟦{text}⟧");
        } else {
            out.push_str(&text);
        }
    }
    if in_run {
        out.push('»');
    }
    out.push('\n');
    out
}

/// A token as `tokens.html.j2` shows it: text, CSS class, hover details.
#[derive(Serialize)]
struct TokenView<'a> {
    text: &'a str,
    class: &'static str,
    detail: Option<&'a str>,
}

/// A self-contained HTML page (no scripts, no network) with hover details per token, from
/// `templates/explain.html.j2` (which escapes everything it prints).
pub fn to_html(tokens: &[ExplainedToken], title: &str, summary_lines: &[String]) -> String {
    let tokens: Vec<TokenView<'_>> = tokens
        .iter()
        .map(|t| TokenView {
            text: &t.text,
            class: t.class.css(),
            detail: t.detail.as_deref(),
        })
        .collect();
    html::render(
        "explain.html.j2",
        minijinja::context! { title, summary => summary_lines, tokens },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_hostile_text() {
        let t = ExplainedToken {
            text: "<script>alert('x')</script>&".into(),
            class: TokenClass::Decision,
            detail: Some("\"><img src=x onerror=1>".into()),
        };
        let ok = ExplainedToken {
            text: " ok\n".into(),
            class: TokenClass::Scored,
            detail: None,
        };
        let page = to_html(&[t, ok], "<b>id</b> & 'co'", &["a < b \"q\"".into()]);
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>"));
        assert!(page.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt;&amp;"));
        assert!(page.contains("title=\"&quot;&gt;&lt;img src=x onerror=1&gt;\""));
        assert!(page.contains("<h1>&lt;b&gt;id&lt;&#x2f;b&gt; &amp; &#x27;co&#x27;</h1>"));
        assert!(page.contains("<li>a &lt; b &quot;q&quot;</li>"));
        // The tokens sit in <pre> exactly, one span each, without added whitespace.
        assert!(page.contains("&amp;</span><span class=\"scored\"> ok\n</span></pre>"));
    }

    /// Bidi controls, which reorder what a reader sees, are shown, not obeyed, on every page.
    #[test]
    fn html_shows_bidi_controls() {
        let t = ExplainedToken {
            text: "if admin \u{202E}\u{2066}// check".into(),
            class: TokenClass::Scored,
            detail: None,
        };
        let page = to_html(&[t], "id\u{202E}", &[]);
        assert!(
            !page.contains('\u{202E}') && !page.contains('\u{2066}'),
            "{page}"
        );
        assert!(page.contains("⟨U+202E⟩⟨U+2066⟩"), "{page}");
    }

    #[test]
    fn html_page_is_the_shared_report_page() {
        let page = to_html(&[], "t", &[]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"));
        assert!(page
            .contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert!(page.contains("<main>") && page.contains("</main></body></html>"));
        assert!(page.contains(".decision {"), "the token styles");
    }

    /// Escape sequences in the data never reach the terminal: `--color never` used to print
    /// them as they were.
    #[test]
    fn terminal_output_shows_control_characters_instead_of_obeying_them() {
        let t = ExplainedToken {
            text: "x\x1b]0;owned\x07\x1b[2J".into(),
            class: TokenClass::Scored,
            detail: None,
        };
        for out in [
            to_ansi(std::slice::from_ref(&t), "id \x1b[31m"),
            to_plain(std::slice::from_ref(&t), "id \x1b[31m"),
        ] {
            // The header (first line) and the token line (last): only our own colour codes.
            let lines: Vec<&str> = out.lines().collect();
            let ours = |l: &str| l.replace("\x1b[32m", "").replace("\x1b[0m", "");
            for l in [lines[0], lines[lines.len() - 1]] {
                assert!(!ours(l).contains('\x1b'), "{out:?}");
            }
            assert!(out.contains("\u{241B}]0;owned\u{2407}"), "{out:?}");
        }
    }

    #[test]
    fn ansi_resets_at_every_line_end() {
        let t = ExplainedToken {
            text: "a\nb".into(),
            class: TokenClass::Scored,
            detail: None,
        };
        let s = to_ansi(&[t], "h");
        assert!(s.ends_with("\x1b[32ma\x1b[0m\n\x1b[32mb\x1b[0m\n"), "{s:?}");
    }
}
