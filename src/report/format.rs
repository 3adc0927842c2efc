//! Number formatting shared by the reports: table cells, captions, axis ticks and the
//! template filters of [`crate::report::html`]. One home, so that a number reads the same in a
//! table, a caption and a plot. Also the one rule for showing untrusted text
//! ([`visible_controls`]).

/// `v` when it is finite.
pub(crate) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// `v` with 4 significant digits (scientific notation when very large or small); `-` when not
/// finite.
pub(crate) fn sig4(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.3e}");
    }
    let mag = a.log10().floor() as i32;
    let mut dec = (3 - mag).max(0) as usize;
    let mut s = format!("{v:.dec$}");
    // Rounding up to the next power of ten (9.99996 -> 10.000) adds a digit.
    let rounded: f64 = s.trim_start_matches('-').parse().unwrap_or(0.0);
    if dec > 0 && rounded >= 10f64.powi(mag + 1) {
        dec -= 1;
        s = format!("{v:.dec$}");
    }
    s
}

/// [`sig4`] of a value that may be missing; `-` when missing or not finite.
pub(crate) fn opt(v: Option<f64>) -> String {
    finite(v).map_or_else(|| "-".to_string(), sig4)
}

/// A fraction as a percentage with 4 significant digits; `-` when missing or not finite.
pub(crate) fn pct(v: Option<f64>) -> String {
    finite(v).map_or_else(|| "-".to_string(), |v| format!("{}%", sig4(v * 100.0)))
}

/// An integer when the value is one (steps, counts), else [`sig4`]; `-` when missing.
pub(crate) fn num(v: Option<f64>) -> String {
    match finite(v) {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        other => opt(other),
    }
}

/// `sig4` without trailing zeros: for axis ticks.
fn trim_zeros(s: String) -> String {
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// An axis tick: short (`12.5k`, `3M`, `0.25`).
pub(crate) fn tick(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1e6 {
        format!("{}M", trim_zeros(sig4(v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim_zeros(sig4(v / 1e3)))
    } else if a < 1e-12 {
        "0".to_string()
    } else {
        trim_zeros(sig4(v))
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// An axis tick of a fraction, as a percentage.
pub(crate) fn tick_pct(v: f64) -> String {
    format!("{}%", tick(v * 100.0))
}

/// At most `max` characters of `s`, with `...` when cut (for plot labels only; tables show all).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

/// Untrusted text (ids, documents, trajectories) made safe to show on a terminal or a page:
/// control characters (but newline and tab), which could move a terminal's cursor, recolour
/// it or rewrite its title, become visible pictures (`ESC` as `␛`), and the Unicode bidi
/// controls, which reorder what a reader sees (Trojan Source), become `⟨U+202E⟩`. Everything
/// else is kept as it is.
pub(crate) fn visible_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if !text.contains(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            // The Control Pictures block: U+2400 + the C0 code, U+2421 for DEL.
            '\0'..='\u{1F}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
            '\u{7F}' => out.push('\u{2421}'),
            c => out.push_str(&format!("⟨U+{:04X}⟩", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formatting() {
        assert_eq!(sig4(0.141234), "0.1412");
        assert_eq!(sig4(3.91), "3.910");
        assert_eq!(sig4(9.99996), "10.00");
        assert_eq!(sig4(-0.5), "-0.5000");
        assert_eq!(sig4(12345.6), "12346");
        assert_eq!(sig4(0.0), "0");
        assert_eq!(sig4(1.5e-5), "1.500e-5");
        assert_eq!(sig4(f64::NAN), "-");
        assert_eq!(opt(None), "-");
        assert_eq!(pct(Some(0.9123)), "91.23%");
        assert_eq!(num(Some(2000.0)), "2000");
        assert_eq!(num(Some(0.25)), "0.2500");
        assert_eq!(num(Some(f64::INFINITY)), "-");
        assert_eq!(tick(12500.0), "12.5k");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick_pct(0.5), "50%");
        assert_eq!(truncate("abcdef", 5), "ab...");
        assert_eq!(truncate("abc", 5), "abc");
    }

    #[test]
    fn controls_and_bidi_become_visible() {
        assert_eq!(visible_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            visible_controls("a\x1b[31mred\x07\r\x7f"),
            "a\u{241B}[31mred\u{2407}\u{240D}\u{2421}"
        );
        assert_eq!(visible_controls("\u{9b}x"), "⟨U+009B⟩x");
        assert_eq!(
            visible_controls("if x \u{202E}\u{2066}y"),
            "if x ⟨U+202E⟩⟨U+2066⟩y"
        );
    }
}
