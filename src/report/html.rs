//! HTML pages from templates: every byte of the track, selection and explain pages comes from
//! the templates in `src/report/templates/`, compiled into the binary.
//!
//! Escaping is the default, not a call to remember: minijinja escapes every value printed into
//! a template whose name ends in `.html` (a final `.j2` is ignored, see
//! [`minijinja::default_auto_escape_callback`]). Only values built as safe strings pass
//! unescaped: the SVGs drawn by [`crate::report::plot`] (plotters escapes their text) and the
//! output of macros. Undefined names are errors (strict), so a misspelt field fails the
//! unit tests that render every template instead of printing nothing.

use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::report::format;

/// The templates, by name. `report.css` is included by `base.html.j2`.
const TEMPLATES: [(&str, &str); 6] = [
    ("report.css", include_str!("templates/report.css")),
    ("base.html.j2", include_str!("templates/base.html.j2")),
    ("tokens.html.j2", include_str!("templates/tokens.html.j2")),
    ("track.html.j2", include_str!("templates/track.html.j2")),
    ("select.html.j2", include_str!("templates/select.html.j2")),
    ("explain.html.j2", include_str!("templates/explain.html.j2")),
];

/// A number from a template value (`None` for none, undefined and non-numbers).
fn number(v: &Value) -> Option<f64> {
    f64::try_from(v.clone()).ok()
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // Block tags on lines of their own leave no blank lines behind.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Pages end with a newline, as text files do.
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Untrusted text shows its control and bidi characters instead of obeying them; safe
        // strings (the SVG plots) pass as they are. Then the usual HTML escaping.
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(text) if !value.is_safe() => {
                let shown = Value::from(format::visible_controls(text).as_ref());
                minijinja::escape_formatter(out, state, &shown)
            }
            _ => minijinja::escape_formatter(out, state, value),
        });
        // `x|sig4`: 4 significant digits, `-` when missing or not finite.
        env.add_filter("sig4", |v: Value| format::opt(number(&v)));
        // `x|num`: an integer when it is one (steps, counts, scores that count), else sig4.
        env.add_filter("num", |v: Value| format::num(number(&v)));
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("built-in template {name}: {e:#}"));
        }
        env
    })
}

/// Renders the built-in template `name` with `ctx` (a [`Value::from_serialize`] of a view
/// model, usually).
///
/// # Panics
///
/// If a built-in template is broken; the unit tests render every template, with hostile and
/// with empty data, so that this fails `cargo test` rather than a user's run.
pub(crate) fn render(name: &str, ctx: Value) -> String {
    environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| panic!("built-in template {name} failed to render: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_templates_escape_and_css_is_verbatim() {
        let env = environment();
        for (name, _) in TEMPLATES {
            let t = env.get_template(name).unwrap();
            let want = if name.ends_with(".html.j2") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            };
            assert_eq!(
                minijinja::default_auto_escape_callback(t.name()),
                want,
                "{name}"
            );
        }
        let css = env.get_template("report.css").unwrap().render(()).unwrap();
        assert_eq!(css.trim_end(), TEMPLATES[0].1.trim_end());
    }

    #[test]
    fn filters_format_numbers() {
        let env = environment();
        let out = env
            .render_str(
                "{{ a|sig4 }} {{ b|sig4 }} {{ c|num }} {{ d|num }} {{ e|sig4 }} {{ f|num }}",
                minijinja::context! { a => 0.141234, b => (), c => 2000.0, d => 0.25, e => f64::NAN, f => 7u64 },
            )
            .unwrap();
        assert_eq!(out, "0.1412 - 2000 0.2500 - 7");
    }

    /// Every page template renders (with the base page, the CSS and the token macro) and ends
    /// as a whole document; a template error fails here, not in a user's run.
    #[test]
    fn every_page_template_renders() {
        use crate::pipeline::select::{Count, VerifiedSelection};
        use crate::report::explain::{self, ExplainedToken, TokenClass};
        use crate::report::select::{self, ReportOptions};
        use crate::report::track;

        let track = track::render_html(&track::demo_report());
        let input = VerifiedSelection {
            selection_dir: "out".into(),
            config_path: "select.toml".into(),
            config_sha256: "00".into(),
            seed: 1,
            token_budget: None,
            general_ratio: None,
            selected: Count::default(),
            general_share: 0.0,
            sources: Vec::new(),
        };
        let report = select::build(&input, &ReportOptions::default()).unwrap();
        let select = select::render_html(&report);
        let token = ExplainedToken {
            text: "x".into(),
            class: TokenClass::Scored,
            detail: Some("H10=0.1".into()),
        };
        let explain = explain::to_html(&[token], "t", &["s".into()]);
        for (name, page) in [("track", track), ("select", select), ("explain", explain)] {
            assert!(page.starts_with("<!DOCTYPE html>\n"), "{name}");
            assert!(page.ends_with("</main></body></html>\n"), "{name}");
            assert!(page.contains("Content-Security-Policy"), "{name}");
            assert!(page.contains(".b-tax {"), "{name}: report.css");
            assert!(!page.contains("{{") && !page.contains("{%"), "{name}");
        }
    }
}
