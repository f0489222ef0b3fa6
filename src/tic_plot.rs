//! The time-intensity curve as a standalone SVG plot: measured power, the fitted bolus,
//! flagged frames, and the arrival and peak marks.

use std::fmt::Write;

/// Contents of the plot. Slices are per frame and of equal length.
#[derive(Clone, Copy, Debug)]
pub struct TicPlot<'a> {
    pub title: &'a str,
    pub times_s: &'a [f64],
    /// Linearised echo power of the ROI.
    pub power: &'a [f64],
    /// The fitted curve, where a fit exists.
    pub fitted: &'a [Option<f64>],
    /// Whether each frame was flagged (flash, frozen, black, motion).
    pub flagged: &'a [bool],
    pub arrival_s: Option<f64>,
    pub peak_s: Option<f64>,
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// Renders the plot as an SVG document.
pub fn render_svg(plot: &TicPlot<'_>) -> String {
    let frames = plot
        .times_s
        .len()
        .min(plot.power.len())
        .min(plot.fitted.len())
        .min(plot.flagged.len());
    let axes = Axes::fit(plot, frames);
    let mut svg = String::new();

    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" font-size="15">{}</text>"#,
        LEFT,
        escape(plot.title)
    );
    draw_axes(&mut svg, &axes);

    for index in 0..frames {
        let (t, p) = (plot.times_s[index], plot.power[index]);
        if !(t.is_finite() && p.is_finite()) {
            continue;
        }
        let colour = if plot.flagged[index] {
            "#d62728"
        } else {
            "#1f77b4"
        };
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="1.8" fill="{colour}"/>"#,
            axes.x(t),
            axes.y(p)
        );
    }
    draw_fitted(&mut svg, &axes, plot, frames);
    draw_mark(&mut svg, &axes, plot.arrival_s, "#2ca02c", "arrival");
    draw_mark(&mut svg, &axes, plot.peak_s, "#e377c2", "peak");
    draw_legend(&mut svg);
    svg.push_str("</svg>\n");
    svg
}

/// The mapping from data to plot coordinates.
struct Axes {
    t_min: f64,
    t_max: f64,
    p_min: f64,
    p_max: f64,
}

impl Axes {
    fn fit(plot: &TicPlot<'_>, frames: usize) -> Axes {
        let finite_times = plot.times_s[..frames]
            .iter()
            .copied()
            .filter(|t| t.is_finite());
        let (t_min, t_max) = min_max(finite_times).unwrap_or((0.0, 1.0));
        let measured = plot.power[..frames].iter().copied();
        let fitted = plot.fitted[..frames].iter().flatten().copied();
        let values = measured.chain(fitted).filter(|p| p.is_finite());
        let (p_min, p_max) = min_max(values).unwrap_or((0.0, 1.0));
        Axes {
            t_min,
            t_max: if t_max > t_min { t_max } else { t_min + 1.0 },
            p_min: p_min.min(0.0),
            p_max: if p_max > p_min { p_max } else { p_min + 1.0 },
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + (WIDTH - LEFT - RIGHT) * (t - self.t_min) / (self.t_max - self.t_min)
    }

    fn y(&self, p: f64) -> f64 {
        HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * (p - self.p_min) / (self.p_max - self.p_min)
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |range, v| match range {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn draw_axes(svg: &mut String, axes: &Axes) {
    let (x0, x1) = (LEFT, WIDTH - RIGHT);
    let (y0, y1) = (HEIGHT - BOTTOM, TOP);
    let _ = writeln!(
        svg,
        r##"<polyline points="{x0},{y1} {x0},{y0} {x1},{y0}" fill="none" stroke="#333"/>"##
    );
    for step in 0..=5 {
        let fraction = f64::from(step) / 5.0;
        let t = axes.t_min + fraction * (axes.t_max - axes.t_min);
        let p = axes.p_min + fraction * (axes.p_max - axes.p_min);
        let (x, y) = (axes.x(t), axes.y(p));
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{t:.1}</text>"#,
            y0 + 18.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{p:.2e}</text>"#,
            x0 - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time (s)</text>"#,
        (x0 + x1) / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">linear echo power (relative)</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0
    );
}

fn draw_fitted(svg: &mut String, axes: &Axes, plot: &TicPlot<'_>, frames: usize) {
    let mut points = String::new();
    for index in 0..frames {
        let (t, fitted) = (plot.times_s[index], plot.fitted[index]);
        if let Some(p) = fitted.filter(|p| p.is_finite() && t.is_finite()) {
            let _ = write!(points, "{:.1},{:.1} ", axes.x(t), axes.y(p));
        }
    }
    if !points.is_empty() {
        let _ = writeln!(
            svg,
            r##"<polyline points="{points}" fill="none" stroke="#ff7f0e" stroke-width="2"/>"##
        );
    }
}

fn draw_mark(svg: &mut String, axes: &Axes, time_s: Option<f64>, colour: &str, label: &str) {
    let Some(t) = time_s.filter(|t| t.is_finite()) else {
        return;
    };
    let x = axes.x(t);
    let _ = writeln!(
        svg,
        r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-dasharray="4 3"/>"#,
        HEIGHT - BOTTOM
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{label} {t:.2} s</text>"#,
        x + 4.0,
        TOP + 14.0
    );
}

fn draw_legend(svg: &mut String) {
    let entries = [
        ("#1f77b4", "measured"),
        ("#d62728", "flagged frame"),
        ("#ff7f0e", "fitted bolus"),
    ];
    for (row, (colour, label)) in entries.iter().enumerate() {
        let y = TOP + 30.0 + 16.0 * row as f64;
        let x = WIDTH - RIGHT - 130.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            y - 9.0,
            x + 16.0,
            y
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot<'a>(
        times: &'a [f64],
        power: &'a [f64],
        fitted: &'a [Option<f64>],
        flagged: &'a [bool],
    ) -> TicPlot<'a> {
        TicPlot {
            title: "exam <1> & more",
            times_s: times,
            power,
            fitted,
            flagged,
            arrival_s: Some(1.0),
            peak_s: Some(2.0),
        }
    }

    #[test]
    fn svg_has_one_marker_per_finite_frame() {
        let times = [0.0, 1.0, 2.0, 3.0];
        let power = [0.1, f64::NAN, 0.5, 0.3];
        let fitted = [Some(0.1), Some(0.3), Some(0.5), None];
        let flagged = [false, false, true, false];
        let svg = render_svg(&plot(&times, &power, &fitted, &flagged));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert_eq!(svg.matches(r##"fill="#d62728"/>"##).count(), 2);
        assert!(svg.contains("exam &lt;1&gt; &amp; more"));
        assert!(svg.contains("peak 2.00 s"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn svg_coordinates_stay_finite() {
        let svg = render_svg(&plot(&[], &[], &[], &[]));
        assert!(!svg.contains("NaN"));
        let flat = render_svg(&plot(
            &[0.0, 0.0],
            &[1.0, 1.0],
            &[None, None],
            &[false, false],
        ));
        assert!(!flat.contains("NaN"));
        assert!(!flat.contains("inf"));
    }
}
