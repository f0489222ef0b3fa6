//! The overlay drawn over an ultrasound frame: ROI box, heatmap, TIC sparkline, phase,
//! risk gauge, warnings and the demo label.
//!
//! Shapes and text go through embedded-graphics onto an RGB canvas that borrows the
//! caller's buffer, so drawing allocates nothing and the same code serves the offline
//! overlay PNG and the live display.

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10, FONT_7X13};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use crate::frame::{Frame, PixelFormat};
use crate::geometry::Rect;

const ROI_COLOUR: Rgb888 = Rgb888::new(255, 220, 0);
const TEXT_COLOUR: Rgb888 = Rgb888::new(240, 240, 240);
const WARNING_COLOUR: Rgb888 = Rgb888::new(255, 160, 0);
const DEMO_COLOUR: Rgb888 = Rgb888::new(255, 64, 64);
const HIGH_RISK_COLOUR: Rgb888 = Rgb888::new(230, 40, 40);
const LOW_RISK_COLOUR: Rgb888 = Rgb888::new(40, 200, 90);
const PANEL_COLOUR: Rgb888 = Rgb888::new(16, 16, 24);
const CURVE_COLOUR: Rgb888 = Rgb888::new(120, 200, 255);
const ARRIVAL_COLOUR: Rgb888 = Rgb888::new(120, 255, 120);
const PEAK_COLOUR: Rgb888 = Rgb888::new(255, 80, 200);

/// Shown on every overlay drawn with a demo model or signature.
pub const DEMO_LABEL: &str = "DEMO MODEL - NOT FOR CLINICAL USE";

/// Width and height of the class-activation grid of the feature extractor.
pub const HEATMAP_CELLS: usize = 7;

/// The stage of the exam, as shown to the sonographer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    WaitingForContrast,
    WashIn,
    Peak,
    Result,
    NoSignal,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::WaitingForContrast => "waiting for contrast",
            Phase::WashIn => "wash-in",
            Phase::Peak => "peak",
            Phase::Result => "result",
            Phase::NoSignal => "no signal",
        }
    }
}

/// The time-intensity curve as a sparkline, with the arrival and peak marked.
#[derive(Clone, Copy, Debug)]
pub struct Sparkline<'a> {
    pub times_s: &'a [f64],
    pub values: &'a [f64],
    pub arrival_s: Option<f64>,
    pub peak_s: Option<f64>,
}

/// The risk as shown in the gauge.
#[derive(Clone, Copy, Debug)]
pub struct RiskGauge {
    /// Probability of distant metastasis, 0 to 1.
    pub probability: f64,
    /// Probability at or above which the risk is called high.
    pub cutoff: f64,
    /// Whether the clinical variables entered the probability.
    pub integrated: bool,
}

/// Everything the overlay can show; absent parts are not drawn.
#[derive(Clone, Copy, Debug)]
pub struct OverlayContent<'a> {
    pub roi: Option<Rect>,
    /// Per-cell contributions to the rad-score, row-major over the ROI.
    pub heatmap: Option<&'a [f64; HEATMAP_CELLS * HEATMAP_CELLS]>,
    pub curve: Option<Sparkline<'a>>,
    pub phase: Phase,
    pub risk: Option<RiskGauge>,
    pub warnings: &'a [&'a str],
    /// Draws the "demo model, not for clinical use" label.
    pub demo: bool,
}

/// A packed RGB8 image that embedded-graphics can draw on.
pub struct RgbCanvas<'a> {
    width: u32,
    height: u32,
    data: &'a mut [u8],
}

impl<'a> RgbCanvas<'a> {
    /// Wraps an RGB8 frame. Returns `None` for a grey frame; convert it with
    /// [`copy_to_rgb`] first.
    pub fn new(frame: &'a mut Frame) -> Option<RgbCanvas<'a>> {
        if frame.format != PixelFormat::Rgb8 {
            return None;
        }
        Some(RgbCanvas {
            width: frame.width,
            height: frame.height,
            data: &mut frame.data,
        })
    }

    fn blend(&mut self, x: u32, y: u32, colour: [u8; 3], alpha: f64) {
        if x >= self.width || y >= self.height {
            return;
        }
        let offset = (y as usize * self.width as usize + x as usize) * 3;
        for (channel, value) in self.data[offset..offset + 3].iter_mut().zip(colour) {
            let mixed = f64::from(*channel) * (1.0 - alpha) + f64::from(value) * alpha;
            *channel = mixed.round().clamp(0.0, 255.0) as u8;
        }
    }
}

impl OriginDimensions for RgbCanvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for RgbCanvas<'_> {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, colour) in pixels {
            let (Ok(x), Ok(y)) = (u32::try_from(point.x), u32::try_from(point.y)) else {
                continue;
            };
            if x >= self.width || y >= self.height {
                continue;
            }
            let offset = (y as usize * self.width as usize + x as usize) * 3;
            self.data[offset] = colour.r();
            self.data[offset + 1] = colour.g();
            self.data[offset + 2] = colour.b();
        }
        Ok(())
    }
}

/// Copies `source` into `target` as RGB8, reusing `target`'s buffer.
pub fn copy_to_rgb(source: &Frame, target: &mut Frame) {
    target.reset(source.width, source.height, PixelFormat::Rgb8);
    target.index = source.index;
    target.time_s = source.time_s;
    match source.format {
        PixelFormat::Rgb8 => target.data.copy_from_slice(&source.data),
        PixelFormat::Gray8 => {
            for (rgb, &grey) in target.data.chunks_exact_mut(3).zip(&source.data) {
                rgb.fill(grey);
            }
        }
    }
}

/// Draws the overlay onto an RGB8 frame. A grey frame is left unchanged.
pub fn draw(frame: &mut Frame, content: &OverlayContent<'_>) {
    let Some(mut canvas) = RgbCanvas::new(frame) else {
        return;
    };
    let style = Style::for_frame(canvas.width, canvas.height);
    let panel = style.panel(canvas.height);
    fill_panel(&mut canvas, panel);

    if let (Some(roi), Some(cells)) = (content.roi, content.heatmap) {
        draw_heatmap(&mut canvas, roi, cells);
    }
    if let Some(roi) = content.roi {
        draw_roi(&mut canvas, roi, &style);
    }

    let mut cursor = Point::new(
        panel.top_left.x + style.margin,
        panel.top_left.y + style.margin,
    );
    if content.demo {
        cursor = draw_text_line(&mut canvas, cursor, DEMO_LABEL, DEMO_COLOUR, &style);
    }
    cursor = draw_text_line(
        &mut canvas,
        cursor,
        content.phase.label(),
        TEXT_COLOUR,
        &style,
    );
    if let Some(risk) = content.risk {
        cursor = draw_risk(&mut canvas, cursor, panel, &risk, &style);
    }
    if let Some(curve) = content.curve {
        cursor = draw_sparkline(&mut canvas, cursor, panel, &curve, &style);
    }
    for warning in content.warnings {
        cursor = draw_text_line(&mut canvas, cursor, warning, WARNING_COLOUR, &style);
    }
}

/// Sizes that follow the frame height, so the overlay reads the same from 480p to 4K.
struct Style {
    font: &'static MonoFont<'static>,
    /// Width of the text panel in pixels.
    panel_width: i32,
    line_height: i32,
    margin: i32,
    stroke: u32,
}

impl Style {
    fn for_frame(width: u32, height: u32) -> Style {
        let font = match height {
            700.. => &FONT_10X20,
            400..700 => &FONT_7X13,
            _ => &FONT_6X10,
        };
        let line_height = font.character_size.height as i32 + 4;
        let panel_width = (width / 3).max(46 * font.character_size.width).min(width);
        Style {
            font,
            panel_width: panel_width as i32,
            line_height,
            margin: line_height / 2,
            stroke: if height >= 700 { 3 } else { 1 },
        }
    }

    /// Places the text panel at the bottom left: a third of the width (at least 46
    /// characters) and ten text lines high.
    fn panel(&self, height: u32) -> Rectangle {
        let panel_height = (self.line_height * 10).min(height as i32) as u32;
        let top = height.saturating_sub(panel_height) as i32;
        Rectangle::new(
            Point::new(0, top),
            Size::new(self.panel_width as u32, panel_height),
        )
    }

    fn text(&self, colour: Rgb888) -> MonoTextStyle<'static, Rgb888> {
        MonoTextStyle::new(self.font, colour)
    }
}

fn fill_panel(canvas: &mut RgbCanvas<'_>, panel: Rectangle) {
    let colour = [PANEL_COLOUR.r(), PANEL_COLOUR.g(), PANEL_COLOUR.b()];
    let bottom = panel.top_left.y as u32 + panel.size.height;
    for y in panel.top_left.y as u32..bottom {
        for x in 0..panel.size.width {
            canvas.blend(x, y, colour, 0.7);
        }
    }
}

fn draw_roi(canvas: &mut RgbCanvas<'_>, roi: Rect, style: &Style) {
    let rectangle = Rectangle::new(
        Point::new(roi.x as i32, roi.y as i32),
        Size::new(roi.w, roi.h),
    );
    let _ = rectangle
        .into_styled(PrimitiveStyle::with_stroke(ROI_COLOUR, style.stroke))
        .draw(canvas);
}

/// Blends the 7x7 contributions over the ROI: red where a cell raises the rad-score,
/// blue where it lowers it, opacity growing with the magnitude.
fn draw_heatmap(
    canvas: &mut RgbCanvas<'_>,
    roi: Rect,
    cells: &[f64; HEATMAP_CELLS * HEATMAP_CELLS],
) {
    let scale = cells
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |max, v| max.max(v.abs()));
    if scale <= 0.0 {
        return;
    }
    let bottom = roi.y.saturating_add(roi.h).min(canvas.height);
    let right = roi.x.saturating_add(roi.w).min(canvas.width);
    for y in roi.y..bottom {
        let row = ((y - roi.y) as usize * HEATMAP_CELLS) / roi.h as usize;
        for x in roi.x..right {
            let column = ((x - roi.x) as usize * HEATMAP_CELLS) / roi.w as usize;
            let value = cells[row * HEATMAP_CELLS + column];
            if !value.is_finite() {
                continue;
            }
            let strength = (value.abs() / scale).min(1.0);
            let colour = if value >= 0.0 {
                [255, 40, 0]
            } else {
                [0, 90, 255]
            };
            canvas.blend(x, y, colour, 0.5 * strength);
        }
    }
}

/// Draws one line of text, cut to the characters that fit before the panel's right margin.
fn draw_text_line(
    canvas: &mut RgbCanvas<'_>,
    cursor: Point,
    text: &str,
    colour: Rgb888,
    style: &Style,
) -> Point {
    let fitting =
        (style.panel_width - 2 * style.margin).max(0) as u32 / style.font.character_size.width;
    let end = text
        .char_indices()
        .nth(fitting as usize)
        .map_or(text.len(), |(index, _)| index);
    let _ =
        Text::with_baseline(&text[..end], cursor, style.text(colour), Baseline::Top).draw(canvas);
    cursor + Point::new(0, style.line_height)
}

/// Draws the gauge: the figures, then a bar from 0 to 1 filled up to the probability with
/// a tick at the cut-off.
fn draw_risk(
    canvas: &mut RgbCanvas<'_>,
    cursor: Point,
    panel: Rectangle,
    risk: &RiskGauge,
    style: &Style,
) -> Point {
    let high = risk.probability >= risk.cutoff;
    let colour = if high {
        HIGH_RISK_COLOUR
    } else {
        LOW_RISK_COLOUR
    };
    let mut label: heapless::String<96> = heapless::String::new();
    let _ = core::fmt::write(
        &mut label,
        format_args!(
            "risk {} {:.0}% (cut-off {:.0}%){}",
            if high { "HIGH" } else { "low" },
            risk.probability * 100.0,
            risk.cutoff * 100.0,
            if risk.integrated { "" } else { " imaging only" },
        ),
    );
    let cursor = draw_text_line(canvas, cursor, &label, colour, style);

    let bar_width = (panel.size.width as i32 - 2 * style.margin).max(1);
    let bar_height = style.line_height / 2;
    let outline = Rectangle::new(cursor, Size::new(bar_width as u32, bar_height as u32));
    let _ = outline
        .into_styled(PrimitiveStyle::with_stroke(TEXT_COLOUR, 1))
        .draw(canvas);
    let filled = (f64::from(bar_width) * risk.probability.clamp(0.0, 1.0)) as u32;
    let _ = Rectangle::new(cursor, Size::new(filled, bar_height as u32))
        .into_styled(PrimitiveStyle::with_fill(colour))
        .draw(canvas);
    let tick_x = cursor.x + (f64::from(bar_width) * risk.cutoff.clamp(0.0, 1.0)) as i32;
    let _ = Line::new(
        Point::new(tick_x, cursor.y - 3),
        Point::new(tick_x, cursor.y + bar_height + 3),
    )
    .into_styled(PrimitiveStyle::with_stroke(TEXT_COLOUR, 2))
    .draw(canvas);
    cursor + Point::new(0, bar_height + style.margin)
}

/// Draws the curve scaled into a box two text lines high, with vertical marks at arrival
/// (green) and peak (magenta).
fn draw_sparkline(
    canvas: &mut RgbCanvas<'_>,
    cursor: Point,
    panel: Rectangle,
    curve: &Sparkline<'_>,
    style: &Style,
) -> Point {
    let width = (panel.size.width as i32 - 2 * style.margin).max(1);
    let height = style.line_height * 2;
    let points = curve.times_s.len().min(curve.values.len());
    let (Some(&t_first), Some(&t_last)) = (
        curve.times_s.first(),
        curve.times_s.get(points.wrapping_sub(1)),
    ) else {
        return cursor;
    };
    let finite = curve.values[..points].iter().filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let span_t = (t_last - t_first).max(f64::EPSILON);
    let span_v = (high - low).max(f64::EPSILON);
    let to_point = |t: f64, v: f64| {
        let x = cursor.x + (f64::from(width) * (t - t_first) / span_t) as i32;
        let y = cursor.y + height - (f64::from(height) * (v - low) / span_v) as i32;
        Point::new(x, y)
    };

    let line_style = PrimitiveStyle::with_stroke(CURVE_COLOUR, style.stroke.min(2));
    let mut previous: Option<Point> = None;
    for (&t, &v) in curve.times_s[..points].iter().zip(&curve.values[..points]) {
        if !v.is_finite() {
            previous = None;
            continue;
        }
        let point = to_point(t, v);
        if let Some(start) = previous {
            let _ = Line::new(start, point).into_styled(line_style).draw(canvas);
        }
        previous = Some(point);
    }
    for (mark, colour) in [
        (curve.arrival_s, ARRIVAL_COLOUR),
        (curve.peak_s, PEAK_COLOUR),
    ] {
        if let Some(t) = mark.filter(|t| t.is_finite()) {
            let x = to_point(t, low).x;
            let _ = Line::new(Point::new(x, cursor.y), Point::new(x, cursor.y + height))
                .into_styled(PrimitiveStyle::with_stroke(colour, 2))
                .draw(canvas);
        }
    }
    cursor + Point::new(0, height + style.margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey_frame(width: u32, height: u32, value: u8) -> Frame {
        let mut frame = Frame::new(width, height, PixelFormat::Gray8);
        frame.data.fill(value);
        frame
    }

    fn content(roi: Rect) -> OverlayContent<'static> {
        OverlayContent {
            roi: Some(roi),
            heatmap: None,
            curve: None,
            phase: Phase::WashIn,
            risk: None,
            warnings: &[],
            demo: false,
        }
    }

    #[test]
    fn roi_box_is_drawn_on_its_edge_only() {
        let mut rgb = Frame::empty();
        copy_to_rgb(&grey_frame(640, 480, 0), &mut rgb);
        draw(&mut rgb, &content(Rect::new(150, 10, 20, 20)));
        let pixel = |x: usize, y: usize| &rgb.data[(y * 640 + x) * 3..(y * 640 + x) * 3 + 3];
        assert_eq!(pixel(150, 15), &[255, 220, 0]);
        assert_eq!(pixel(160, 20), &[0, 0, 0]);
    }

    #[test]
    fn heatmap_sign_sets_colour() {
        let mut cells = [0.0; 49];
        cells[0] = 1.0;
        cells[48] = -1.0;
        let mut rgb = Frame::empty();
        copy_to_rgb(&grey_frame(210, 300, 100), &mut rgb);
        let mut content = content(Rect::new(0, 0, 70, 70));
        content.heatmap = Some(&cells);
        draw(&mut rgb, &content);
        let pixel = |x: usize, y: usize| &rgb.data[(y * 210 + x) * 3..(y * 210 + x) * 3 + 3];
        let top_left = pixel(4, 4);
        let bottom_right = pixel(66, 66);
        let centre = pixel(35, 35);
        assert!(
            top_left[0] > top_left[2],
            "positive cell should be red: {top_left:?}"
        );
        assert!(
            bottom_right[2] > bottom_right[0],
            "negative cell should be blue: {bottom_right:?}"
        );
        assert_eq!(centre, &[100, 100, 100]);
    }

    #[test]
    fn grey_frame_is_left_unchanged() {
        let mut frame = grey_frame(64, 64, 7);
        draw(&mut frame, &content(Rect::new(0, 0, 10, 10)));
        assert!(frame.data.iter().all(|&v| v == 7));
    }

    #[test]
    fn everything_draws_on_a_tiny_frame_without_panic() {
        let times = [0.0, 1.0, 2.0];
        let values = [0.0, f64::NAN, 1.0];
        let cells = [0.5; 49];
        let mut rgb = Frame::empty();
        copy_to_rgb(&grey_frame(3, 2, 0), &mut rgb);
        let content = OverlayContent {
            roi: Some(Rect::new(1, 1, 5, 5)),
            heatmap: Some(&cells),
            curve: Some(Sparkline {
                times_s: &times,
                values: &values,
                arrival_s: Some(0.5),
                peak_s: Some(f64::NAN),
            }),
            phase: Phase::Result,
            risk: Some(RiskGauge {
                probability: 2.0,
                cutoff: -1.0,
                integrated: false,
            }),
            warnings: &["motion"],
            demo: true,
        };
        draw(&mut rgb, &content);
        assert_eq!(rgb.data.len(), 3 * 2 * 3);
    }
}
