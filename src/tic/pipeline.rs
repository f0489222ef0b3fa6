//! The offline TIC pipeline over a recorded input: layout, ROI, tracking, analysis.
//!
//! The input is read up to three times through a caller-supplied opener. The first
//! pass detects the layout on up to [`PipelineOptions::detect_frames`] frames, spread
//! over the clip when its length is known and else the first ones. The second pass,
//! only for an automatic ROI, measures the whole-view curve. The last pass measures the
//! ROI's curve.

use serde::Serialize;

use super::auto_roi::{smoothing_weight, AutoRoi, AutoRoiSettings, MapRole};
use super::linearise::PowerTable;
use super::report::TicReport;
use super::{TicAnalysis, TicCurve, TicError, TicSettings, TicTracker};
use crate::frame::Frame;
use crate::geometry::Rect;
use crate::layout::{
    DetectSettings, Layout, LayoutDetector, LayoutError, LayoutKind, LayoutProfile, LayoutReport,
};
use crate::source::{FrameSource, SourceError, SourceInfo};

/// Version of the JSON document [`TicDocument`]; raised when a field changes meaning or
/// is removed.
pub const SCHEMA_VERSION: u32 = 1;

/// Largest number of samples reserved before the first frame: an hour at 30 fps.
const MAX_RESERVED_SAMPLES: u64 = 108_000;

/// Error from running the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A frame could not be decoded.
    #[error("cannot read frame {index}: {source}")]
    Read {
        index: u64,
        #[source]
        source: SourceError,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Tic(#[from] TicError),
}

/// Source of the view rectangles.
#[derive(Clone, Debug)]
pub enum LayoutChoice {
    /// Detected from the frames, with optional region rectangles from the file as a hint.
    Detect {
        hint: Vec<Rect>,
    },
    /// Given rectangles.
    Manual {
        contrast: Rect,
        bmode: Option<Rect>,
    },
    Profile(LayoutProfile),
}

/// Region the curve is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoiChoice {
    /// The whole contrast view.
    WholeView,
    Rect(Rect),
    /// Proposed by [`AutoRoi`].
    Auto,
}

/// Origin of the ROI, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoiSource {
    WholeView,
    Manual,
    Auto,
}

/// Every choice and setting of a pipeline run.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub layout: LayoutChoice,
    pub roi: RoiChoice,
    pub settings: TicSettings,
    pub detect: DetectSettings,
    pub auto_roi: AutoRoiSettings,
    /// Frames used for layout detection and the sector mask. Default 60.
    pub detect_frames: u32,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            layout: LayoutChoice::Detect { hint: Vec::new() },
            roi: RoiChoice::WholeView,
            settings: TicSettings::default(),
            detect: DetectSettings::default(),
            auto_roi: AutoRoiSettings::default(),
            detect_frames: 60,
        }
    }
}

/// Everything a run produced.
#[derive(Debug)]
pub struct PipelineResult {
    pub info: SourceInfo,
    pub layout: Layout,
    pub roi: Rect,
    pub roi_source: RoiSource,
    pub curve: TicCurve,
    pub analysis: TicAnalysis,
    /// Frames per second: the input's, else the median frame interval's inverse.
    pub fps: Option<f64>,
}

/// The JSON document of `ceus-edge tic --json`.
#[derive(Debug, Serialize)]
pub struct TicDocument<'a> {
    pub schema_version: u32,
    pub input: String,
    pub fps: Option<f64>,
    pub layout: LayoutReport,
    pub roi_source: RoiSource,
    #[serde(flatten)]
    pub report: &'a TicReport,
}

impl PipelineResult {
    pub fn document(&self, input: String) -> TicDocument<'_> {
        TicDocument {
            schema_version: SCHEMA_VERSION,
            input,
            fps: self.fps.filter(|f| f.is_finite()),
            layout: self.layout.report(),
            roi_source: self.roi_source,
            report: &self.analysis.report,
        }
    }
}

/// Runs the pipeline on the input that `open` opens afresh on each call.
pub fn run(
    mut open: impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    options: &PipelineOptions,
) -> Result<PipelineResult, PipelineError> {
    let source = open()?;
    let info = source.info().clone();
    drop(source);

    let layout = find_layout(&mut open, &info, options)?;
    let (roi, roi_source, mut warnings) = choose_roi(&mut open, &layout, options)?;

    let mut tracker = TicTracker::new(&layout, roi, options.settings.clone())?;
    if let Some(frames) = info.frames {
        tracker.reserve(frames.min(MAX_RESERVED_SAMPLES) as usize);
    }
    each_frame(&mut open, |frame| {
        tracker.push(frame).map(drop).map_err(PipelineError::from)
    })?;
    let curve = tracker.finish();
    let settings = &options.settings;
    let mut analysis = super::analyse(&curve, settings.dynamic_range_db, &settings.analysis);
    if layout.kind == LayoutKind::None {
        warnings.push("no ultrasound view found: the whole image is the view".to_string());
    }
    analysis.report.warnings.extend(warnings);
    let fps = info.fps.or_else(|| fps_from_times(&curve));
    Ok(PipelineResult {
        info,
        layout,
        roi,
        roi_source,
        curve,
        analysis,
        fps,
    })
}

fn find_layout(
    open: &mut impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    info: &SourceInfo,
    options: &PipelineOptions,
) -> Result<Layout, PipelineError> {
    let mut detector = LayoutDetector::new(info.width, info.height, options.detect.clone());
    let requested = u64::from(options.detect_frames.max(1));
    let every = info.frames.map_or(1, |n| n.div_ceil(requested).max(1));
    let mut index = 0u64;
    let mut source = open()?;
    let mut frame = Frame::empty();
    while u64::from(detector.frames()) < requested {
        let more = source
            .read_frame(&mut frame)
            .map_err(|source| PipelineError::Read { index, source })?;
        if !more {
            break;
        }
        if index % every == 0 {
            detector.push(&frame)?;
        }
        index += 1;
    }
    let layout = layout_from_detector(&detector, &options.layout, info.width, info.height)?;
    log::debug!(
        "layout {:?}: contrast {} B-mode {:?}",
        layout.kind,
        layout.contrast,
        layout.bmode
    );
    Ok(layout)
}

/// Builds the layout that `choice` selects from the frames `detector` has seen. It is
/// detected, or given by rectangles or a profile with the detector's sector mask applied.
pub fn layout_from_detector(
    detector: &LayoutDetector,
    choice: &LayoutChoice,
    width: u32,
    height: u32,
) -> Result<Layout, LayoutError> {
    let layout = match choice {
        LayoutChoice::Detect { hint } => detector.detect(hint),
        LayoutChoice::Manual { contrast, bmode } => {
            let mut layout = Layout::with_views(
                LayoutKind::Manual,
                width,
                height,
                *contrast,
                *bmode,
                Vec::new(),
            )?;
            detector.apply_mask(&mut layout);
            layout
        }
        LayoutChoice::Profile(profile) => {
            let mut layout = profile.to_layout(width, height)?;
            detector.apply_mask(&mut layout);
            layout
        }
    };
    Ok(layout)
}

fn choose_roi(
    open: &mut impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    layout: &Layout,
    options: &PipelineOptions,
) -> Result<(Rect, RoiSource, Vec<String>), PipelineError> {
    match options.roi {
        RoiChoice::WholeView => Ok((layout.contrast, RoiSource::WholeView, Vec::new())),
        RoiChoice::Rect(roi) => {
            if !layout.contrast.contains_rect(&roi) || roi.w == 0 || roi.h == 0 {
                return Err(TicError::RoiOutsideView {
                    roi,
                    view: layout.contrast,
                }
                .into());
            }
            Ok((roi, RoiSource::Manual, Vec::new()))
        }
        RoiChoice::Auto => auto_roi(open, layout, options),
    }
}

fn auto_roi(
    open: &mut impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    layout: &Layout,
    options: &PipelineOptions,
) -> Result<(Rect, RoiSource, Vec<String>), PipelineError> {
    let settings = &options.settings;
    let mut tracker = TicTracker::new(layout, layout.contrast, settings.clone())?;
    each_frame(open, |frame| {
        tracker.push(frame).map(drop).map_err(PipelineError::from)
    })?;
    let curve = tracker.finish();
    let report = super::analyse(&curve, settings.dynamic_range_db, &settings.analysis).report;
    let roles = AutoRoi::roles(&curve, &report, &settings.analysis);

    let table = PowerTable::new(settings.dynamic_range_db)?;
    let mut map = AutoRoi::new(layout, table, options.auto_roi.clone());
    // One role per sample; frames the tracker skipped as repeats have none.
    let mut position = 0;
    let mut last_tracked_s = None;
    each_frame(open, |frame| {
        let Some(sample) = curve.samples.get(position) else {
            return Ok(());
        };
        if sample.index != frame.index {
            return Ok(());
        }
        position += 1;
        match roles[position - 1] {
            MapRole::Baseline => map.push_baseline(frame)?,
            MapRole::Track => {
                let step_s = last_tracked_s.map_or(0.0, |last| sample.time_s - last);
                let weight = smoothing_weight(step_s, options.auto_roi.smoothing_s);
                map.track(frame, weight)?;
                last_tracked_s = Some(sample.time_s);
            }
            MapRole::Skip => {}
        }
        Ok(())
    })?;
    match map.propose() {
        Some(roi) => Ok((roi, RoiSource::Auto, Vec::new())),
        None => Ok((
            layout.contrast,
            RoiSource::WholeView,
            vec![format!(
                "no ROI could be proposed ({}): the whole contrast view is used",
                report.status.describe()
            )],
        )),
    }
}

/// Calls `visit` on every frame of a freshly opened source.
fn each_frame(
    open: &mut impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    mut visit: impl FnMut(&Frame) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let mut source = open()?;
    let mut frame = Frame::empty();
    let mut index = 0u64;
    while source
        .read_frame(&mut frame)
        .map_err(|source| PipelineError::Read { index, source })?
    {
        visit(&frame)?;
        index += 1;
    }
    Ok(())
}

fn fps_from_times(curve: &TicCurve) -> Option<f64> {
    let mut steps: Vec<f64> = curve
        .samples
        .windows(2)
        .map(|w| w[1].time_s - w[0].time_s)
        .filter(|d| d.is_finite() && *d > 0.0)
        .collect();
    if steps.is_empty() {
        return None;
    }
    let median = super::flags::median_in_place(&mut steps);
    Some(1.0 / median)
}
