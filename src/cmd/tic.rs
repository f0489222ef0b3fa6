//! `ceus-edge tic`: the time-intensity curve, bolus fit and peak frame of one input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;

use ceus_edge::geometry::Rect;
use ceus_edge::layout::LayoutProfile;
use ceus_edge::source::{self, OpenOptions};
use ceus_edge::tic::linearise::{MAX_DYNAMIC_RANGE_DB, MIN_DYNAMIC_RANGE_DB};
use ceus_edge::tic::pipeline::{self, LayoutChoice, PipelineOptions, PipelineResult, RoiChoice};

#[derive(clap::Args)]
pub struct Args {
    /// DICOM file, Y4M file or folder of PNG frames.
    input: PathBuf,

    #[command(flatten)]
    curve: CurveArgs,

    /// Print one JSON document on stdout in place of the summary.
    #[arg(long)]
    json: bool,

    /// Write the per-frame curve as CSV to this file.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

/// Options of the curve measurement: ROI, timing, log compression and layout. Shared by every
/// command that computes a TIC.
#[derive(clap::Args)]
pub struct CurveArgs {
    /// Region of interest as X,Y,W,H in full-frame pixels, inside the contrast view, or
    /// `auto` for the most strongly enhancing square. Default: the whole contrast view.
    #[arg(long, value_name = "X,Y,W,H|auto")]
    roi: Option<RoiArg>,

    /// Frame rate in frames per second, for inputs without timing or to override it.
    #[arg(long, value_name = "F", value_parser = parse_fps)]
    pub fps: Option<f64>,

    /// Dynamic range of the scanner's log compression, in dB [default: 60].
    #[arg(long, value_name = "DB", value_parser = parse_dynamic_range)]
    dynamic_range: Option<f64>,

    /// TOML layout profile with the view rectangles (see board/layout-profile.example.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "contrast_view")]
    layout_profile: Option<PathBuf>,

    /// Contrast view as X,Y,W,H in full-frame pixels, in place of layout detection.
    #[arg(long, value_name = "X,Y,W,H")]
    contrast_view: Option<Rect>,

    /// B-mode view as X,Y,W,H, used for motion tracking; needs --contrast-view.
    #[arg(long, value_name = "X,Y,W,H", requires = "contrast_view")]
    bmode_view: Option<Rect>,
}

/// `--roi` as typed.
#[derive(Clone, Copy, Debug)]
enum RoiArg {
    Auto,
    Rect(Rect),
}

impl FromStr for RoiArg {
    type Err = String;

    fn from_str(s: &str) -> Result<RoiArg, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(RoiArg::Auto);
        }
        s.parse()
            .map(RoiArg::Rect)
            .map_err(|e| format!("{e}, or `auto`"))
    }
}

pub fn parse_fps(s: &str) -> Result<f64, String> {
    let fps: f64 = s
        .parse()
        .map_err(|_| format!("invalid frame rate `{s}`: expected a number"))?;
    if fps.is_finite() && (0.01..=10_000.0).contains(&fps) {
        Ok(fps)
    } else {
        Err(format!(
            "frame rate `{s}` is out of range: give 0.01 to 10000 frames per second"
        ))
    }
}

fn parse_dynamic_range(s: &str) -> Result<f64, String> {
    let db: f64 = s
        .parse()
        .map_err(|_| format!("invalid dynamic range `{s}`: expected dB"))?;
    if (MIN_DYNAMIC_RANGE_DB..=MAX_DYNAMIC_RANGE_DB).contains(&db) {
        Ok(db)
    } else {
        Err(format!(
            "dynamic range {db} dB is out of range: give {MIN_DYNAMIC_RANGE_DB} to {MAX_DYNAMIC_RANGE_DB} dB"
        ))
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = args.curve.pipeline_options()?;
    let open_options = args.curve.open_options();
    let input = &args.input;
    let open = || source::open(input, &open_options);
    let result = pipeline::run(open, &options)
        .with_context(|| format!("cannot compute the TIC of {}", input.display()))?;

    if let Some(path) = &args.csv {
        super::reject_input_as_output(path, input)?;
        write_csv(path, &result).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let document = result.document(input.display().to_string());
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
    } else {
        write_summary(&mut out, input, &result)?;
    }
    Ok(())
}

impl CurveArgs {
    /// Uses `--roi auto` when no ROI was given.
    pub fn default_to_auto_roi(&mut self) {
        self.roi.get_or_insert(RoiArg::Auto);
    }

    /// Builds the TIC pipeline's options, with the layout profile read when one is given.
    pub fn pipeline_options(&self) -> anyhow::Result<PipelineOptions> {
        let args = self;
        let mut options = PipelineOptions::default();
        if let Some(db) = args.dynamic_range {
            options.settings.dynamic_range_db = db;
        }
        if let Some(path) = &args.layout_profile {
            options.layout = LayoutChoice::Profile(LayoutProfile::read(path)?);
        } else if let Some(contrast) = args.contrast_view {
            options.layout = LayoutChoice::Manual {
                contrast,
                bmode: args.bmode_view,
            };
        }
        options.roi = match args.roi {
            None => RoiChoice::WholeView,
            Some(RoiArg::Auto) => RoiChoice::Auto,
            Some(RoiArg::Rect(rect)) => RoiChoice::Rect(rect),
        };
        Ok(options)
    }

    /// Uses a board profile's ROI and dynamic range where the command line gave none.
    ///
    /// # Errors
    /// An invalid `roi` text.
    pub fn fill_missing_curve(
        &mut self,
        roi: Option<&str>,
        dynamic_range: Option<f64>,
    ) -> Result<(), String> {
        if self.roi.is_none() {
            self.roi = roi.map(str::parse).transpose()?;
        }
        self.dynamic_range = self.dynamic_range.or(dynamic_range);
        Ok(())
    }

    /// Uses the layout profile `path` when neither a profile nor the views were given.
    pub fn fill_missing_layout_profile(&mut self, path: Option<PathBuf>) {
        if self.layout_profile.is_none() && self.contrast_view.is_none() {
            self.layout_profile = path;
        }
    }

    /// Options for opening the input, with `--fps` when given.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            fps: self.fps,
            ..OpenOptions::default()
        }
    }
}

/// Writes one row per frame: time, raw mean grey, linearised power, fitted value, flags
/// and the motion estimate. Absent values are empty fields.
pub fn write_csv(path: &Path, result: &PipelineResult) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "frame_index,time_s,mean_grey,power,fitted,flags,dx,dy,ncc"
    )?;
    let curve = &result.curve;
    for ((sample, flags), fitted) in curve
        .samples
        .iter()
        .zip(&curve.flags)
        .zip(&result.analysis.fitted)
    {
        let fitted = fitted.map_or(String::new(), |v| format!("{v:e}"));
        let (dx, dy, ncc) = match sample.motion {
            Some(m) => (m.dx.to_string(), m.dy.to_string(), format!("{:.4}", m.ncc)),
            None => (String::new(), String::new(), String::new()),
        };
        writeln!(
            out,
            "{},{:.6},{:.4},{:e},{fitted},{},{dx},{dy},{ncc}",
            sample.index,
            sample.time_s,
            sample.mean_grey,
            sample.power,
            flags.joined()
        )?;
    }
    out.flush()
}

fn write_summary(
    out: &mut impl Write,
    input: &Path,
    result: &PipelineResult,
) -> std::io::Result<()> {
    let report = &result.analysis.report;
    writeln!(
        out,
        "{}: {} frames, status {:?}: {}",
        input.display(),
        report.frames,
        report.status,
        report.status.describe()
    )?;
    writeln!(
        out,
        "layout {:?}, contrast view {}, ROI {} ({} pixels)",
        result.layout.kind, result.layout.contrast, result.roi, report.roi_pixels
    )?;
    let counts = &report.flags.counts;
    writeln!(
        out,
        "flagged {} frames: flash {}, frozen {}, black {}, motion {}; {} repeats skipped",
        counts.flagged,
        counts.flash,
        counts.frozen,
        counts.black,
        counts.motion,
        report.repeated_frames
    )?;
    if let Some(arrival) = report.bolus_arrival_s {
        writeln!(out, "bolus arrival {arrival:.2} s")?;
    }
    if let Some(peak) = &report.peak {
        writeln!(
            out,
            "peak frame {} at {:.2} s",
            peak.frame_index, peak.time_s
        )?;
    }
    if let Some(fit) = &report.fit {
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        writeln!(
            out,
            "fit {} (lowest AIC): R^2 {}, PE {}, TTP {} s, RT {} s, MTT {} s, WiAUC {}, WiR {}",
            fit.model.name(),
            show(fit.r2),
            fit.pe.map_or("-".to_string(), |v| format!("{v:.3e}")),
            show(fit.ttp_s),
            show(fit.rt_s),
            show(fit.mtt_s),
            fit.wiauc.map_or("-".to_string(), |v| format!("{v:.3e}")),
            fit.wir.map_or("-".to_string(), |v| format!("{v:.3e}")),
        )?;
    }
    for warning in &report.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    Ok(())
}
