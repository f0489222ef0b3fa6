//! Line and scatter charts for the cohort reports, drawn with plotters and written both
//! as SVG and as PNG.
//!
//! The SVG backend writes text as `<text>` elements, and the bitmap backend rasterises it
//! with ab_glyph, so both need the DejaVu Sans font that the dejavu crate embeds in the
//! binary: no system font library is involved.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::png_out::write_png;

/// Size of every chart in pixels (SVG user units and PNG pixels alike).
const WIDTH: u32 = 720;
const HEIGHT: u32 = 560;
/// Font family name under which the embedded font is registered.
const FONT: &str = "sans-serif";

/// Model colours, in model order: the first five of matplotlib's tab10 palette, then
/// three more that stay distinct from them.
pub const MODEL_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
/// Colour of reference lines (chance, ideal calibration, treat all or none).
pub const REFERENCE: RGBColor = RGBColor(120, 120, 120);

/// Colour of the `k`-th model, cycling through [`MODEL_COLOURS`].
pub fn model_colour(k: usize) -> RGBColor {
    MODEL_COLOURS[k % MODEL_COLOURS.len()]
}

/// Drawing style of a series.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mark {
    Line,
    /// A thin line for references such as the chance diagonal.
    Reference,
    /// Dots joined by a thin line, for grouped estimates such as calibration deciles.
    Points,
}

/// One plotted series with its legend text.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    pub colour: RGBColor,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
}

/// Position of the legend: a corner of the plotting area.
#[derive(Clone, Copy, Debug)]
pub enum Legend {
    LowerRight,
    UpperLeft,
    UpperRight,
}

/// A chart described as data, so that the same description renders to both backends.
#[derive(Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub legend: Legend,
    pub series: Vec<Series>,
}

impl Chart {
    /// Starts a chart on the unit square with no series.
    pub fn new(title: &str, x_label: &str, y_label: &str, legend: Legend) -> Chart {
        Chart {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            legend,
            series: Vec::new(),
        }
    }

    /// Adds a series. Points outside the axis ranges are clamped onto the border, so a
    /// curve that leaves the range runs along the edge instead of across the labels.
    pub fn add(&mut self, name: &str, colour: RGBColor, mark: Mark, points: &[(f64, f64)]) {
        let (x_low, x_high) = self.x_range;
        let (y_low, y_high) = self.y_range;
        let points = points
            .iter()
            .map(|&(x, y)| (x.clamp(x_low, x_high), y.clamp(y_low, y_high)))
            .collect();
        self.series.push(Series {
            name: name.to_string(),
            colour,
            mark,
            points,
        });
    }

    /// Writes `STEM.svg` and `STEM.png` into `directory` and returns their paths.
    pub fn write(&self, directory: &Path, stem: &str) -> anyhow::Result<[PathBuf; 2]> {
        register_embedded_font()?;
        let svg = directory.join(format!("{stem}.svg"));
        let png = directory.join(format!("{stem}.png"));

        let root = SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area();
        self.draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| anyhow!("cannot draw {}: {e}", svg.display()))?;
        drop(root);

        let mut frame = Frame::new(WIDTH, HEIGHT, PixelFormat::Rgb8);
        let root = BitMapBackend::with_buffer(&mut frame.data, (WIDTH, HEIGHT)).into_drawing_area();
        self.draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| anyhow!("cannot draw {}: {e}", png.display()))?;
        drop(root);
        write_png(&png, &frame)?;
        Ok([svg, png])
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (x_low, x_high) = self.x_range;
        let (y_low, y_high) = self.y_range;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(x_low..x_high, y_low..y_high)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .x_labels(6)
            .y_labels(6)
            .draw()?;

        for series in &self.series {
            let colour = series.colour;
            let width = match series.mark {
                Mark::Reference => 1,
                Mark::Line | Mark::Points => 2,
            };
            let line = LineSeries::new(series.points.iter().copied(), colour.stroke_width(width));
            chart
                .draw_series(line)?
                .label(series.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(width))
                });
            if series.mark == Mark::Points {
                let dots = series
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 4, colour.filled()));
                chart.draw_series(dots)?;
            }
        }

        let position = match self.legend {
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
            Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
            Legend::UpperRight => SeriesLabelPosition::UpperRight,
        };
        chart
            .configure_series_labels()
            .position(position)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    }
}

/// Registers DejaVu Sans as [`FONT`] once per process.
fn register_embedded_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED
        .get_or_init(|| register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok());
    if registered {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font could not be parsed")).context("chart text")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Chart {
        let mut chart = Chart::new(
            "ROC, test rows",
            "1 - specificity",
            "sensitivity",
            Legend::LowerRight,
        );
        chart.add(
            "chance",
            REFERENCE,
            Mark::Reference,
            &[(0.0, 0.0), (1.0, 1.0)],
        );
        chart.add(
            "CEUS: AUC 0.750",
            model_colour(0),
            Mark::Line,
            &[(0.0, 0.0), (0.2, 0.6), (1.0, 1.0)],
        );
        chart.add(
            "deciles",
            model_colour(1),
            Mark::Points,
            &[(0.1, 0.2), (0.5, 1.7)],
        );
        chart
    }

    #[test]
    fn add_clamps_to_ranges() {
        let chart = example();
        assert_eq!(chart.series[2].points[1], (0.5, 1.0));
        assert_eq!(chart.series[2].points[0], (0.1, 0.2));
    }

    #[test]
    fn write_gives_svg_and_png() {
        let directory = tempfile::tempdir().unwrap();
        let [svg, png] = example().write(directory.path(), "roc").unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg"), "{text}");
        assert!(text.contains("CEUS: AUC 0.750"), "legend text missing");
        assert!(text.contains("1 - specificity"), "axis label missing");

        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        let pixels = &pixels[..info.buffer_size()];
        // The model curve's blue and dark text pixels are both present.
        let blue = pixels.chunks(3).filter(|p| p == &[31, 119, 180]).count();
        let dark = pixels
            .chunks(3)
            .filter(|p| p.iter().all(|&c| c < 60))
            .count();
        assert!(blue > 100, "{blue} curve pixels");
        assert!(dark > 500, "{dark} text and axis pixels");
    }
}
