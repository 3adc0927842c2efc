//! The plot kit of the reports: one theme (colours, fonts, frame sizes), SVG rendering, and a
//! `chart` + `mesh` pair that gives every chart the same frame, grid and labels.
//!
//! Plot text is drawn by plotters, which escapes it; [`render_svg`] escapes the two pieces it
//! writes itself (the accessible title and the error message).

use std::error::Error;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(crate) type DrawResult = Result<(), Box<dyn Error>>;
/// A chart with axes `X` and `Y` drawn on an [`Area`].
pub(crate) type Chart<'a, 'b, X, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>;

// ------------------------------------------------------------------------------------------
// Theme
// ------------------------------------------------------------------------------------------

/// Text, titles.
pub(crate) const INK: RGBColor = RGBColor(31, 35, 40);
/// Tick labels, axis descriptions, secondary text.
pub(crate) const MUTED: RGBColor = RGBColor(87, 96, 106);
pub(crate) const GRID: RGBColor = RGBColor(234, 238, 242);
pub(crate) const GRID_BOLD: RGBColor = RGBColor(208, 215, 222);
/// The data of a single series.
pub(crate) const ACCENT: RGBColor = RGBColor(9, 105, 218);
/// Long-Context Tax flags and the run's eps.
pub(crate) const TAX: RGBColor = RGBColor(207, 34, 46);
/// Stage boundaries.
pub(crate) const STAGE: RGBColor = RGBColor(130, 80, 223);
/// The plateau of a correlation across eps.
pub(crate) const PLATEAU: RGBColor = RGBColor(45, 164, 78);
/// Pearson, Spearman, Kendall.
pub(crate) const STAT_COLORS: [RGBColor; 3] = [
    RGBColor(9, 105, 218),
    RGBColor(219, 109, 40),
    RGBColor(26, 127, 55),
];
/// Histogram bars of the selection report: all documents, kept, selected (nested).
pub(crate) const ALL_FILL: RGBColor = RGBColor(208, 215, 222);
pub(crate) const KEPT_FILL: RGBColor = RGBColor(128, 182, 245);
pub(crate) const SELECTED_FILL: RGBColor = ACCENT;
/// Distinct, dark enough on white (Tableau 10, olive and cyan darkened).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(158, 158, 20),
    RGBColor(23, 160, 175),
];

/// Colour of series `i` of `n`: categorical up to 10, a hue ramp (in checkpoint order) beyond.
pub(crate) fn series_color(i: usize, n: usize) -> RGBColor {
    if n <= PALETTE.len() {
        PALETTE[i % PALETTE.len()]
    } else {
        let h = 0.62 - 0.62 * i as f64 / (n - 1).max(1) as f64;
        let c = HSLColor(h.max(0.0), 0.75, 0.42).to_backend_color();
        RGBColor(c.rgb.0, c.rgb.1, c.rgb.2)
    }
}

pub(crate) fn font(size: u32, color: RGBColor) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&color)
}

pub(crate) fn anchored(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    font(size, color).pos(Pos::new(h, v))
}

/// The frame of a chart: caption and label font sizes, room for the tick labels, and how many
/// light grid lines go between two bold ones.
pub(crate) struct Frame {
    caption: u32,
    label: u32,
    x_label_area: u32,
    y_label_area: u32,
    light_lines: usize,
}

/// A panel of the track report (about 550 pixels wide).
pub(crate) const PANEL: Frame = Frame {
    caption: 18,
    label: 14,
    x_label_area: 48,
    y_label_area: 74,
    light_lines: 3,
};

/// A small histogram of the selection report (620 x 340).
pub(crate) const SMALL: Frame = Frame {
    caption: 17,
    label: 13,
    x_label_area: 44,
    y_label_area: 56,
    light_lines: 2,
};

/// A captioned chart on `area` with the theme's margins and label areas.
pub(crate) fn chart<'a, 'b, X: AsRangedCoord, Y: AsRangedCoord>(
    area: &'a Area<'b>,
    frame: &Frame,
    caption: impl AsRef<str>,
    x: X,
    y: Y,
) -> Result<Chart<'a, 'b, X::CoordDescType, Y::CoordDescType>, Box<dyn Error>> {
    Ok(ChartBuilder::on(area)
        .caption(caption, font(frame.caption, INK))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(frame.x_label_area)
        .y_label_area_size(frame.y_label_area)
        .build_cartesian_2d(x, y)?)
}

/// The mesh of a chart with the theme's grid and label styles; the caller adds what differs
/// (descriptions, label counts, formatters) and draws it.
pub(crate) fn mesh<'a, 'b, 's, X, Y, XT, YT>(
    chart: &'b mut Chart<'a, 's, X, Y>,
    frame: &Frame,
) -> MeshStyle<'a, 'b, X, Y, SVGBackend<'s>>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
{
    let mut m = chart.configure_mesh();
    m.light_line_style(GRID.stroke_width(1))
        .bold_line_style(GRID_BOLD.stroke_width(1))
        .max_light_lines(frame.light_lines)
        .label_style(font(frame.label, MUTED))
        .axis_desc_style(font(frame.label, MUTED));
    m
}

// ------------------------------------------------------------------------------------------
// Rendering
// ------------------------------------------------------------------------------------------

/// Escapes text written into SVG outside plotters (the title, an error message).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An SVG drawn by `draw` on a white canvas; a plain SVG naming the error if drawing fails.
pub(crate) fn render_svg(
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&Area<'_>) -> DrawResult,
) -> String {
    let mut buf = String::new();
    let result: DrawResult = {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let drawn = match root.fill(&WHITE) {
            Ok(()) => draw(&root),
            Err(e) => Err(e.into()),
        };
        let presented = root.present();
        drawn.and_then(|()| presented.map_err(|e| e.into()))
    };
    let svg = match result {
        Ok(()) => buf,
        Err(e) => format!(
            "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n<text x=\"20\" y=\"40\" font-family=\"sans-serif\" font-size=\"14\">This plot could not be drawn: {}</text>\n</svg>\n",
            escape(&e.to_string()),
            w = size.0,
            h = size.1
        ),
    };
    // An accessible name for the figure; plotters' output starts with the <svg ...> tag.
    match svg.find('>') {
        Some(i) => format!(
            "{}\n<title>{}</title>{}",
            &svg[..=i],
            escape(title),
            &svg[i + 1..]
        ),
        None => svg,
    }
}

/// A message in the middle of an area that has nothing to plot.
pub(crate) fn draw_message(area: &Area<'_>, caption: &str, msg: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        caption.to_string(),
        (w as i32 / 2, 14),
        anchored(18, INK, HPos::Center, VPos::Top),
    ))?;
    area.draw(&Text::new(
        msg.to_string(),
        (w as i32 / 2, h as i32 / 2),
        anchored(16, MUTED, HPos::Center, VPos::Center),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_title_and_error_are_escaped() {
        let svg = render_svg(
            (100, 50),
            "<b>t</b> & 'x'",
            |_| Err("bad <svg> & co".into()),
        );
        assert!(svg.contains("<title>&lt;b&gt;t&lt;/b&gt; &amp; &#39;x&#39;</title>"));
        assert!(svg.contains("could not be drawn: bad &lt;svg&gt; &amp; co</text>"));
    }
}
