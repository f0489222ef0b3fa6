//! One exam at a time on a live stream, frame by frame.
//!
//! The session first finds the layout on the first frames. It then measures the curve
//! of every frame, calls the bolus arrival, follows wash-in, and confirms the peak. At
//! that point it analyses the whole curve, picks the peak frame among the stored
//! candidates and hands a job to the inference worker. The overlay of every frame shows
//! the exam's phase.
//!
//! Steady per-frame work allocates nothing once the exam's buffers exist. A frame that
//! changes the exam's state (layout found, arrival, peak, result, a command) may allocate;
//! [`ExamSession::process_frame`] reports such frames.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::candidates::PeakCandidates;
use super::events::{Event, EventSink, ResultEvent};
use super::peak::{ConfirmedBy, CurvePoint, PeakDetector, PeakEvent, PeakSettings};
use super::spark::SparkBuffer;
use crate::analysis::{assess_quality, Quality};
use crate::frame::{Frame, PixelFormat};
use crate::geometry::Rect;
use crate::layout::{DetectSettings, Layout, LayoutDetector};
use crate::overlay::{self, OverlayContent, Phase, RiskGauge, Sparkline, HEATMAP_CELLS};
use crate::signature::ClinicalRanges;
use crate::tic::auto_roi::{smoothing_weight, AutoRoi, AutoRoiSettings};
use crate::tic::linearise::PowerTable;
use crate::tic::pipeline::{layout_from_detector, LayoutChoice, PipelineOptions, RoiChoice};
use crate::tic::{FrameSample, Pushed, TicSettings, TicTracker};

/// Frame rate assumed for sizing the curve when the source declares none.
const DEFAULT_FRAME_RATE: f64 = 30.0;
/// Bounds on the samples reserved for one exam's curve.
const MIN_CURVE_SAMPLES: usize = 1_000;
const MAX_CURVE_SAMPLES: usize = 500_000;

/// Settings of a live session, with their defaults.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub layout: LayoutChoice,
    pub roi: RoiChoice,
    pub settings: TicSettings,
    pub detect: DetectSettings,
    pub auto_roi: AutoRoiSettings,
    /// Distinct frames used to find the layout and the sector mask, or ten times as many
    /// frames pushed when the screen stays still. Default 30 (1 s at 30 fps).
    pub detect_frames: u32,
    pub peak: PeakSettings,
    /// Maximum exam length whose curve is kept, seconds; the curve stops there with a
    /// warning.
    /// Default 900 (15 minutes).
    pub max_exam_s: f64,
    /// The source's frame rate, for sizing the curve.
    pub frame_rate: Option<f64>,
    /// Shows the demo label: the model or signature is a demo artefact.
    pub demo: bool,
    /// The signature's clinical variables: a `clinical` command with another name or a
    /// value outside a variable's range is rejected. `None` (the default) checks nothing.
    pub clinical_ranges: Option<ClinicalRanges>,
}

impl Default for SessionConfig {
    /// Takes the layout, ROI and curve defaults from the offline pipeline.
    fn default() -> SessionConfig {
        let offline = PipelineOptions::default();
        SessionConfig {
            layout: offline.layout,
            roi: offline.roi,
            settings: offline.settings,
            detect: offline.detect,
            auto_roi: offline.auto_roi,
            detect_frames: 30,
            peak: PeakSettings::default(),
            max_exam_s: 900.0,
            frame_rate: None,
            demo: false,
            clinical_ranges: None,
        }
    }
}

/// The work handed to the inference worker at the peak.
#[derive(Clone, Debug)]
pub struct InferenceJob {
    /// Identifies the curve the job belongs to; outcomes of older curves are dropped.
    pub generation: u64,
    pub exam: u32,
    pub frame: u64,
    pub time_s: f64,
    /// The stored region of the peak frame.
    pub crop: Frame,
    /// The ROI in full-frame pixels, for the result.
    pub roi: Rect,
    /// The ROI inside `crop`.
    pub roi_in_crop: Rect,
    pub clinical: BTreeMap<String, f64>,
    pub quality: Quality,
}

/// A result as the overlay shows it: the event and the heatmap.
#[derive(Clone, Debug)]
pub struct LiveResult {
    pub event: ResultEvent,
    /// The rad-score's split over the 7x7 grid of the ROI.
    pub heatmap: [f64; HEATMAP_CELLS * HEATMAP_CELLS],
}

/// The worker's outcome of one job.
#[derive(Debug)]
pub struct InferenceOutcome {
    pub generation: u64,
    pub result: Result<LiveResult, String>,
}

/// The inference worker's interface to the session: jobs go in without waiting, and
/// outcomes come back when ready.
pub trait Inference {
    /// Hands over `job`, or returns it when the worker is busy.
    fn submit(&mut self, job: Box<InferenceJob>) -> Result<(), Box<InferenceJob>>;
    /// Returns a finished outcome, without waiting.
    fn poll(&mut self) -> Option<InferenceOutcome>;
}

/// The peak frame chosen for the current curve.
#[derive(Clone, Debug)]
struct Chosen {
    frame: u64,
    time_s: f64,
    roi: Rect,
    quality: Quality,
}

/// Per-frame warnings shown on the overlay.
#[derive(Clone, Copy, Debug, Default)]
struct FrameWarnings {
    black: bool,
    frozen: bool,
    motion: bool,
    flash: bool,
}

/// The live flash test: a frame whose contrast view has more than `flash_ratio` times
/// the power of the last clean frame's is a flash.
///
/// The offline test compares with a centred median, which follows a steady wash-in. Live
/// only the past is known, and a wash-in from a black view rises a hundredfold within
/// seconds, so the comparison is with the previous frame: a flash jumps within one frame,
/// a wash-in does not. After `MAX_FLASH_RUN` flagged frames in a row the new level is
/// taken as the reference, so a lasting change (a gain step) stops being flagged.
#[derive(Debug, Default)]
struct FlashWatch {
    reference: Option<f64>,
    run: u32,
}

/// Flagged frames in a row after which the view's new level becomes the reference.
const MAX_FLASH_RUN: u32 = 15;

impl FlashWatch {
    /// Returns whether `view_power` is a flash, and updates the reference.
    fn check(&mut self, view_power: f64, ratio: f64) -> bool {
        let is_flash = self
            .reference
            .is_some_and(|reference| view_power > ratio * reference)
            && self.run < MAX_FLASH_RUN;
        if is_flash {
            self.run += 1;
        } else {
            self.reference = Some(view_power);
            self.run = 0;
        }
        is_flash
    }
}

/// The curve of the current exam, from the layout on.
struct Tracking {
    layout: Layout,
    /// The region whose curve is measured.
    roi: Rect,
    auto_roi: bool,
    format: PixelFormat,
    tracker: TicTracker,
    sample_capacity: usize,
    detector: PeakDetector,
    candidates: PeakCandidates,
    /// Baseline power map for the automatic ROI.
    auto_map: Option<AutoRoi>,
    /// Weight of a new frame in the automatic ROI's per-cell smoothing.
    smoothing_weight: f64,
    spark: SparkBuffer,
    flash: FlashWatch,
    warnings: FrameWarnings,
    arrival: Option<CurvePoint>,
    chosen: Option<Chosen>,
    /// A job the worker has not taken yet.
    job: Option<Box<InferenceJob>>,
    /// A job was taken and its outcome has not come back.
    awaiting: bool,
    result: Option<LiveResult>,
    curve_full: bool,
}

enum Stage {
    Detecting(Box<LayoutDetector>),
    Tracking(Box<Tracking>),
}

/// The live session: one exam at a time.
pub struct ExamSession {
    config: SessionConfig,
    exam: u32,
    generation: u64,
    roi_choice: RoiChoice,
    clinical: BTreeMap<String, f64>,
    stage: Option<Stage>,
    no_signal: bool,
    changed: bool,
}

impl ExamSession {
    /// Creates a session whose first exam has the `clinical` values.
    pub fn new(config: SessionConfig, clinical: BTreeMap<String, f64>) -> ExamSession {
        ExamSession {
            roi_choice: config.roi,
            config,
            exam: 1,
            generation: 1,
            clinical,
            stage: None,
            no_signal: false,
            changed: false,
        }
    }

    /// Returns the current exam's number, from 1.
    pub fn exam(&self) -> u32 {
        self.exam
    }

    /// Sets the frame rate that sizes the curve, when the configuration has none.
    pub fn set_frame_rate(&mut self, fps: Option<f64>) {
        self.config.frame_rate = self.config.frame_rate.or(fps);
    }

    pub fn is_demo(&self) -> bool {
        self.config.demo
    }

    /// Announces the first exam.
    pub fn begin(&mut self, events: &mut dyn EventSink) {
        events.emit(&Event::Exam {
            exam: self.exam,
            state: "started",
        });
    }

    /// Shows "no signal" on the next overlay, until a frame arrives.
    pub fn set_no_signal(&mut self) {
        self.no_signal = true;
    }

    /// Analyses one frame and draws its overlay into `out`. Returns whether the frame
    /// changed the exam's state (and so may have allocated).
    pub fn process_frame(
        &mut self,
        frame: &Frame,
        out: &mut Frame,
        inference: &mut dyn Inference,
        events: &mut dyn EventSink,
    ) -> bool {
        self.changed = false;
        self.no_signal = false;
        self.collect_outcomes(inference, events);
        self.fit_stage_to(frame, events);

        match self.stage.as_mut() {
            Some(Stage::Detecting(detector)) => {
                if let Err(error) = detector.push(frame) {
                    log::warn!("layout detection skipped frame {}: {error}", frame.index);
                }
                // Repeated frames do not count, so a still screen would hold detection
                // up for ever: ten times as many pushed frames end it too.
                let limit = self.config.detect_frames;
                if detector.frames() >= limit || detector.pushed() >= limit.saturating_mul(10) {
                    self.finish_detection(frame, events);
                }
            }
            Some(Stage::Tracking(_)) => self.track(frame, events),
            None => {}
        }

        self.submit_pending(inference);
        self.draw(frame, out);
        self.changed
    }

    /// Draws the overlay of `frame` into `out` again without analysing it, to show a
    /// result that arrived after the last frame.
    pub fn redraw(&self, frame: &Frame, out: &mut Frame) {
        self.draw(frame, out);
    }

    /// Draws "no signal" on a black frame of the last size into `out`.
    pub fn draw_no_signal(&self, out: &mut Frame) {
        if out.width == 0 || out.height == 0 {
            return;
        }
        out.reset(out.width, out.height, PixelFormat::Rgb8);
        let mut content = self.content();
        content.phase = Phase::NoSignal;
        content.warnings = &["no signal: check the scanner's video output"];
        overlay::draw(out, &content);
    }

    /// Ends the stream: confirms a peak the curve has not confirmed yet, then waits at
    /// most `timeout` for the result.
    pub fn finish(
        &mut self,
        inference: &mut dyn Inference,
        events: &mut dyn EventSink,
        timeout: Duration,
    ) {
        self.confirm_at_end(events);
        let deadline = Instant::now() + timeout;
        while self.result_pending() && Instant::now() < deadline {
            self.submit_pending(inference);
            self.collect_outcomes(inference, events);
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.result_pending() {
            self.warn(
                events,
                "inference",
                format!(
                    "no result within {} s of the end of the stream",
                    timeout.as_secs()
                ),
            );
        }
    }

    /// Applies a control command; an invalid one changes nothing.
    ///
    /// # Errors
    /// A message saying why the command was rejected.
    pub fn apply(
        &mut self,
        command: &super::control::Command,
        events: &mut dyn EventSink,
    ) -> Result<(), String> {
        use super::control::Command;
        match command {
            Command::NewExam => {
                self.warn_if_unfinished(events);
                self.clinical.clear();
                self.roi_choice = self.config.roi;
                self.restart(events, "started");
            }
            Command::Reset => {
                self.warn_if_unfinished(events);
                self.restart(events, "reset");
            }
            Command::Clinical(values) => {
                if let Some(ranges) = &self.config.clinical_ranges {
                    ranges.check(values).map_err(|error| error.to_string())?;
                }
                self.clinical
                    .extend(values.iter().map(|(k, v)| (k.clone(), *v)));
                self.rescore();
            }
            Command::Roi(roi) => {
                self.check_roi_change()?;
                self.check_roi(*roi)?;
                self.change_roi(RoiChoice::Rect(*roi), events);
            }
            Command::AutoRoi => {
                self.check_roi_change()?;
                self.change_roi(RoiChoice::Auto, events);
            }
            Command::Quit => {}
        }
        Ok(())
    }

    /// Rejects an ROI change once the peak is confirmed: the frames before it are gone,
    /// so a new curve could not reach a result and the shown result would be lost.
    fn check_roi_change(&self) -> Result<(), String> {
        match &self.stage {
            Some(Stage::Tracking(t)) if t.chosen.is_some() => Err(format!(
                "the peak of exam {} is confirmed and its result stands: send reset (a new \
                 injection) or new_exam before changing the ROI",
                self.exam
            )),
            _ => Ok(()),
        }
    }

    /// Warns that the current exam ends without a result when the bolus had arrived.
    fn warn_if_unfinished(&mut self, events: &mut dyn EventSink) {
        let unfinished = match &self.stage {
            Some(Stage::Tracking(t)) => t.arrival.is_some() && t.result.is_none(),
            _ => false,
        };
        if unfinished {
            let message = format!("exam {} ended before its result", self.exam);
            self.warn(events, "abandoned", message);
        }
    }

    fn result_pending(&self) -> bool {
        match &self.stage {
            Some(Stage::Tracking(t)) => t.job.is_some() || t.awaiting,
            _ => false,
        }
    }

    /// Starts a new exam: a new number, a new curve, the layout found again.
    fn restart(&mut self, events: &mut dyn EventSink, state: &'static str) {
        self.exam += 1;
        self.generation += 1;
        self.stage = None;
        self.changed = true;
        events.emit(&Event::Exam {
            exam: self.exam,
            state,
        });
    }

    fn check_roi(&self, roi: Rect) -> Result<(), String> {
        let Some(Stage::Tracking(tracking)) = &self.stage else {
            return Ok(());
        };
        let view = tracking.layout.contrast;
        if view.contains_rect(&roi) {
            Ok(())
        } else {
            Err(format!(
                "ROI {roi} is not inside the contrast view {view}: give an ROI within the view"
            ))
        }
    }

    /// Measures a new curve in the new ROI, keeping the layout and the exam.
    fn change_roi(&mut self, choice: RoiChoice, events: &mut dyn EventSink) {
        self.roi_choice = choice;
        self.generation += 1;
        self.changed = true;
        if let Some(Stage::Tracking(tracking)) = self.stage.take() {
            let Tracking { layout, format, .. } = *tracking;
            self.start_tracking(layout, format, events);
        }
    }

    /// Computes the result again with the current clinical values.
    fn rescore(&mut self) {
        let clinical = self.clinical.clone();
        let generation = self.generation;
        let exam = self.exam;
        let Some(Stage::Tracking(tracking)) = &mut self.stage else {
            return;
        };
        let Some(chosen) = tracking.chosen.clone() else {
            return;
        };
        tracking.job = build_job(tracking, &chosen, generation, exam, clinical);
        self.changed = true;
    }

    /// Starts detection again when the frame's size or format differs from the stage's.
    fn fit_stage_to(&mut self, frame: &Frame, events: &mut dyn EventSink) {
        let fits = match &self.stage {
            None => false,
            Some(Stage::Detecting(detector)) => detector.size() == (frame.width, frame.height),
            Some(Stage::Tracking(t)) => {
                (t.layout.frame_width, t.layout.frame_height) == (frame.width, frame.height)
                    && t.format == frame.format
            }
        };
        if fits {
            return;
        }
        if matches!(self.stage, Some(Stage::Tracking(_))) {
            self.generation += 1;
            self.warn(
                events,
                "format",
                format!(
                    "the frames changed to {}x{}: the layout is found again and the curve restarts",
                    frame.width, frame.height
                ),
            );
        }
        let detector = LayoutDetector::new(frame.width, frame.height, self.config.detect.clone());
        self.stage = Some(Stage::Detecting(Box::new(detector)));
        self.changed = true;
    }

    fn finish_detection(&mut self, frame: &Frame, events: &mut dyn EventSink) {
        let Some(Stage::Detecting(detector)) = self.stage.take() else {
            return;
        };
        let layout =
            match layout_from_detector(&detector, &self.config.layout, frame.width, frame.height) {
                Ok(layout) => layout,
                Err(error) => {
                    self.warn(
                        events,
                        "layout",
                        format!("{error}: the layout is detected instead"),
                    );
                    detector.detect(&[])
                }
            };
        self.start_tracking(layout, frame.format, events);
    }

    /// Builds the exam's curve, peak detector and candidate store on `layout`.
    fn start_tracking(&mut self, layout: Layout, format: PixelFormat, events: &mut dyn EventSink) {
        self.changed = true;
        let view = layout.contrast;
        let (roi, auto_roi) = match self.roi_choice {
            RoiChoice::WholeView => (view, false),
            RoiChoice::Auto => (view, true),
            RoiChoice::Rect(roi) if view.contains_rect(&roi) && roi.w > 0 && roi.h > 0 => {
                (roi, false)
            }
            RoiChoice::Rect(roi) => {
                self.warn(
                    events,
                    "roi",
                    format!(
                        "ROI {roi} is not inside the contrast view {view}: the whole view is used"
                    ),
                );
                (view, false)
            }
        };

        let settings = self.config.settings.clone();
        let tracker = match TicTracker::new(&layout, roi, settings) {
            Ok(tracker) => tracker,
            Err(error) => {
                self.warn(events, "roi", error.to_string());
                return;
            }
        };
        let frame_rate = self
            .config
            .frame_rate
            .filter(|f| f.is_finite() && *f > 0.0)
            .unwrap_or(DEFAULT_FRAME_RATE);
        let sample_capacity = ((self.config.max_exam_s * frame_rate).ceil() as usize)
            .clamp(MIN_CURVE_SAMPLES, MAX_CURVE_SAMPLES);
        let mut tracker = tracker;
        tracker.reserve(sample_capacity);

        let auto_map = if auto_roi {
            PowerTable::new(self.config.settings.dynamic_range_db)
                .ok()
                .map(|table| AutoRoi::new(&layout, table, self.config.auto_roi.clone()))
        } else {
            None
        };
        let region = if auto_roi { view } else { roi };

        events.emit(&Event::Layout {
            exam: self.exam,
            kind: format!("{:?}", layout.kind).to_lowercase(),
            contrast: view.to_array(),
            bmode: layout.bmode.map(Rect::to_array),
            roi: roi.to_array(),
            roi_source: match self.roi_choice {
                RoiChoice::WholeView => "whole_view",
                RoiChoice::Rect(_) if !auto_roi && roi != view => "manual",
                RoiChoice::Rect(_) => "whole_view",
                RoiChoice::Auto => "auto",
            },
        });
        self.stage = Some(Stage::Tracking(Box::new(Tracking {
            layout,
            roi,
            auto_roi,
            format,
            tracker,
            sample_capacity,
            detector: PeakDetector::new(self.config.peak.clone()),
            candidates: PeakCandidates::new(region, format),
            auto_map,
            smoothing_weight: smoothing_weight(1.0 / frame_rate, self.config.auto_roi.smoothing_s),
            spark: SparkBuffer::default(),
            flash: FlashWatch::default(),
            warnings: FrameWarnings::default(),
            arrival: None,
            chosen: None,
            job: None,
            awaiting: false,
            result: None,
            curve_full: false,
        })));
    }

    /// Measures one frame of the curve and advances arrival and peak.
    fn track(&mut self, frame: &Frame, events: &mut dyn EventSink) {
        let exam = self.exam;
        let Some(Stage::Tracking(t)) = &mut self.stage else {
            return;
        };
        if t.tracker.samples().len() >= t.sample_capacity {
            if !t.curve_full {
                t.curve_full = true;
                self.changed = true;
                let message = format!(
                    "the exam passed {} s: the curve stops here; send new_exam to start another",
                    self.config.max_exam_s
                );
                events.emit(&Event::Warning {
                    exam,
                    kind: "curve_full",
                    message,
                });
            }
            return;
        }
        match t.tracker.push(frame) {
            Ok(Pushed::Measured) => {}
            // A repeat changes nothing: the overlay keeps the previous frame's state.
            Ok(Pushed::Repeat) => return,
            Err(error) => {
                log::warn!("frame {} not measured: {error}", frame.index);
                return;
            }
        }
        let Some(sample) = t.tracker.samples().last().copied() else {
            return;
        };
        t.warnings = frame_warnings(&sample, &self.config.settings, &mut t.flash);
        let clean = !(t.warnings.black || t.warnings.frozen || t.warnings.flash);
        t.spark.push(sample.time_s, sample.power);

        if let Some(map) = &mut t.auto_map {
            if clean && t.detector.baseline().is_none() {
                let _ = map.push_baseline(frame);
            }
        }
        if t.arrival.is_some() && t.chosen.is_none() && clean && !t.warnings.motion {
            let key = candidate_key(t, frame, sample.power, t.smoothing_weight);
            t.candidates.offer(frame, key);
        }

        let point = CurvePoint {
            index: frame.index,
            time_s: frame.time_s,
        };
        match t.detector.push(point, sample.power, clean) {
            Some(PeakEvent::BaselineReady { baseline, sigma }) => {
                log::debug!("baseline power {baseline:.3e}, noise sigma {sigma:.3e}");
            }
            Some(PeakEvent::Arrival(arrival)) => {
                t.arrival = Some(arrival);
                let key = candidate_key(t, frame, sample.power, t.smoothing_weight);
                t.candidates.offer(frame, key);
                self.changed = true;
                events.emit(&Event::BolusArrival {
                    exam,
                    frame: arrival.index,
                    time_s: arrival.time_s,
                });
            }
            Some(PeakEvent::PeakConfirmed { peak, confirmed_by }) => {
                self.confirm_peak(peak, confirmed_by, events);
            }
            None => {}
        }
    }

    /// Confirms a peak the detector has not confirmed when the stream ends.
    fn confirm_at_end(&mut self, events: &mut dyn EventSink) {
        let Some(Stage::Tracking(t)) = &self.stage else {
            return;
        };
        if t.chosen.is_some() {
            return;
        }
        let Some(arrival) = t.arrival else {
            self.warn(
                events,
                "no_bolus",
                "the stream ended before a bolus arrival was detected: no result".to_string(),
            );
            return;
        };
        self.confirm_peak(arrival, ConfirmedBy::EndOfStream, events);
    }

    /// Analyses the whole curve, picks the stored frame nearest its peak and queues the
    /// inference job.
    fn confirm_peak(
        &mut self,
        detected: CurvePoint,
        confirmed_by: ConfirmedBy,
        events: &mut dyn EventSink,
    ) {
        self.changed = true;
        let (exam, generation) = (self.exam, self.generation);
        let clinical = self.clinical.clone();
        let auto_settings = self.config.auto_roi.clone();
        let Some(Stage::Tracking(t)) = &mut self.stage else {
            return;
        };

        let analysis = t.tracker.analyse();
        let report = &analysis.report;
        let (index, time_s, mut fitted_peak_s) = match &report.peak {
            Some(peak) => (peak.frame_index, peak.time_s, peak.fitted_peak_s),
            None => (detected.index, detected.time_s, None),
        };
        let Some(candidate) = t.candidates.nearest(index, time_s) else {
            let message = "no frame near the peak was stored: no result for this exam";
            self.warn(events, "peak", message.to_string());
            return;
        };
        let (mut frame, mut frame_time_s) = (candidate.index, candidate.time_s);

        let mut messages = Vec::new();
        let roi = if t.auto_roi {
            // The curve is the whole view's, whose peak may come well after a lesion's:
            // the region and its peak frame come from the per-cell maps instead.
            match auto_roi_and_frame(t, auto_settings.smoothing_s) {
                Some((roi, index, time_s)) => {
                    (frame, frame_time_s, fitted_peak_s) = (index, time_s, None);
                    roi
                }
                None => {
                    let message = "no ROI could be proposed: the whole contrast view is used";
                    messages.push(("roi", message.to_string()));
                    t.layout.contrast
                }
            }
        } else {
            t.roi
        };
        if frame != index {
            log::debug!(
                "curve peak frame {index}: using stored frame {frame} at {frame_time_s:.2} s"
            );
        }
        let mut reasons = Vec::new();
        let quality = assess_quality(report, &mut reasons);
        for reason in reasons {
            messages.push(("unreliable", reason));
        }

        let chosen = Chosen {
            frame,
            time_s: frame_time_s,
            roi,
            quality,
        };
        t.job = build_job(t, &chosen, generation, exam, clinical);
        t.chosen = Some(chosen);
        events.emit(&Event::Peak {
            exam,
            frame,
            time_s: frame_time_s,
            fitted_peak_s,
            confirmed_by: confirmed_by.name(),
        });
        for (kind, message) in messages {
            self.warn(events, kind, message);
        }
    }

    fn submit_pending(&mut self, inference: &mut dyn Inference) {
        let Some(Stage::Tracking(t)) = &mut self.stage else {
            return;
        };
        let Some(job) = t.job.take() else {
            return;
        };
        match inference.submit(job) {
            Ok(()) => {
                t.awaiting = true;
                self.changed = true;
            }
            Err(job) => t.job = Some(job),
        }
    }

    fn collect_outcomes(&mut self, inference: &mut dyn Inference, events: &mut dyn EventSink) {
        while let Some(outcome) = inference.poll() {
            self.changed = true;
            let current = self.generation;
            let Some(Stage::Tracking(t)) = &mut self.stage else {
                continue;
            };
            if outcome.generation != current {
                log::debug!("dropping the result of an earlier curve");
                continue;
            }
            t.awaiting = t.job.is_some();
            match outcome.result {
                Ok(result) => {
                    events.emit(&Event::Result(Box::new(result.event.clone())));
                    t.result = Some(result);
                }
                Err(message) => {
                    let exam = self.exam;
                    events.emit(&Event::Warning {
                        exam,
                        kind: "inference",
                        message,
                    });
                }
            }
        }
    }

    fn warn(&mut self, events: &mut dyn EventSink, kind: &'static str, message: String) {
        self.changed = true;
        log::warn!("{message}");
        events.emit(&Event::Warning {
            exam: self.exam,
            kind,
            message,
        });
    }

    fn draw(&self, frame: &Frame, out: &mut Frame) {
        overlay::copy_to_rgb(frame, out);
        let warnings = self.warning_lines();
        let mut content = self.content();
        content.warnings = &warnings;
        overlay::draw(out, &content);
    }

    fn content(&self) -> OverlayContent<'_> {
        let mut content = OverlayContent {
            roi: None,
            heatmap: None,
            curve: None,
            phase: Phase::WaitingForContrast,
            risk: None,
            warnings: &[],
            demo: self.config.demo,
        };
        let Some(Stage::Tracking(t)) = &self.stage else {
            return content;
        };
        content.roi = Some(t.chosen.as_ref().map_or(t.roi, |c| c.roi));
        content.curve = Some(Sparkline {
            times_s: t.spark.times_s(),
            values: t.spark.values(),
            arrival_s: t.arrival.map(|a| a.time_s),
            peak_s: t.chosen.as_ref().map(|c| c.time_s),
        });
        content.phase = match (&t.result, &t.chosen, &t.arrival) {
            (Some(_), _, _) => Phase::Result,
            (None, Some(_), _) => Phase::Peak,
            (None, None, Some(_)) => Phase::WashIn,
            (None, None, None) => Phase::WaitingForContrast,
        };
        if let Some(result) = &t.result {
            content.heatmap = Some(&result.heatmap);
            content.risk = Some(RiskGauge {
                probability: result.event.probability,
                cutoff: result.event.cutoff,
                integrated: result.event.integrated_available,
            });
        }
        content
    }

    fn warning_lines(&self) -> heapless::Vec<&'static str, 8> {
        let mut lines = heapless::Vec::new();
        if self.no_signal {
            let _ = lines.push("no signal");
        }
        let Some(Stage::Tracking(t)) = &self.stage else {
            return lines;
        };
        let flags = [
            (t.warnings.motion, "motion: hold the probe still"),
            (t.warnings.flash, "flash: frame not counted"),
            (t.warnings.frozen, "image frozen"),
            (t.warnings.black, "no image: probe lifted?"),
            (t.curve_full, "curve full: start a new exam"),
        ];
        for (on, text) in flags {
            if on {
                let _ = lines.push(text);
            }
        }
        if let Some(result) = &t.result {
            if !result.event.reliable {
                let _ = lines.push("NOT RELIABLE: see the events");
            }
            if !result.event.integrated_available {
                let _ = lines.push("clinical values missing: imaging only");
            }
        }
        lines
    }
}

/// Derives the overlay warnings of one measured frame.
fn frame_warnings(
    sample: &FrameSample,
    settings: &TicSettings,
    flash: &mut FlashWatch,
) -> FrameWarnings {
    let black = sample.tissue_percentile <= settings.flags.black_level;
    let frozen = sample.same_as_previous && settings.flags.detect_frozen;
    let motion = sample
        .motion
        .is_some_and(|m| m.shift_px() > settings.motion.max_shift_px);
    let flash = !black && !frozen && flash.check(sample.view_power, settings.flags.flash_ratio);
    FrameWarnings {
        black,
        frozen,
        motion,
        flash,
    }
}

/// Returns the key a frame is stored under as a peak candidate: its ROI power, or with the ROI
/// still to be proposed, the strongest smoothed local enhancement in it.
fn candidate_key(t: &mut Tracking, frame: &Frame, roi_power: f64, weight: f64) -> f64 {
    let Some(map) = &mut t.auto_map else {
        return roi_power;
    };
    // Without a square inside the sector no ROI will be proposed: the view's power
    // ranks the frames, as for the whole view.
    match map.track(frame, weight) {
        Ok(Some(enhancement)) => enhancement,
        Ok(None) => roi_power,
        Err(error) => {
            log::warn!("frame {} not ranked: {error}", frame.index);
            f64::NAN
        }
    }
}

/// Proposes the automatic ROI and finds the stored frame at its peak, as index and time.
///
/// The frame ranked highest by smoothed local enhancement marks the proposed region's
/// peak. The exponential smoothing lags the peak by about its time constant, so the
/// stored frame nearest that much earlier is taken.
fn auto_roi_and_frame(t: &mut Tracking, smoothing_s: f64) -> Option<(Rect, u64, f64)> {
    let roi = t.auto_map.as_mut()?.propose()?;
    let strongest = t.candidates.strongest()?;
    let frame = t
        .candidates
        .nearest_in_time(strongest.time_s - smoothing_s)?;
    Some((roi, frame.index, frame.time_s))
}

/// Builds the job for `chosen` from the stored region of its frame.
fn build_job(
    t: &Tracking,
    chosen: &Chosen,
    generation: u64,
    exam: u32,
    clinical: BTreeMap<String, f64>,
) -> Option<Box<InferenceJob>> {
    let candidate = t.candidates.nearest(chosen.frame, chosen.time_s)?;
    let region = t.candidates.region();
    let roi_in_crop = Rect::new(
        chosen.roi.x - region.x,
        chosen.roi.y - region.y,
        chosen.roi.w,
        chosen.roi.h,
    );
    Some(Box::new(InferenceJob {
        generation,
        exam,
        frame: candidate.index,
        time_s: candidate.time_s,
        crop: candidate.crop.clone(),
        roi: chosen.roi,
        roi_in_crop,
        clinical,
        quality: chosen.quality.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wash_in_from_black_is_not_a_flash() {
        let mut watch = FlashWatch::default();
        let mut power = 1e-6;
        for _ in 0..100 {
            assert!(!watch.check(power, 2.0), "flagged at {power}");
            power *= 1.15;
        }
    }

    #[test]
    fn one_frame_jump_is_a_flash_until_it_ends() {
        let mut watch = FlashWatch::default();
        assert!(!watch.check(1.0, 2.0));
        assert!(watch.check(5.0, 2.0));
        assert!(watch.check(4.0, 2.0));
        assert!(!watch.check(1.1, 2.0));
    }

    #[test]
    fn clinical_command_outside_signature_changes_nothing() {
        use crate::live::control::Command;
        use crate::live::events::EventLog;
        use crate::signature::ClinicalVariable;

        let cea = ClinicalVariable {
            name: "cea".to_string(),
            unit: "ng/mL".to_string(),
            min: 0.2,
            max: 55.7,
            coefficient: 0.06,
        };
        let config = SessionConfig {
            clinical_ranges: Some(ClinicalRanges::new(vec![cea])),
            ..SessionConfig::default()
        };
        let start = BTreeMap::from([("cea".to_string(), 5.0)]);
        let mut session = ExamSession::new(config, start.clone());
        let mut events = EventLog::default();

        let cases = [
            (("cea", 500.0), vec!["cea", "500", "[0.2, 55.7]", "ng/mL"]),
            (("ceaa", 5.0), vec!["`ceaa`", "uses cea"]),
        ];
        for ((name, value), expected) in cases {
            let values = BTreeMap::from([(name.to_string(), value)]);
            let error = session
                .apply(&Command::Clinical(values), &mut events)
                .unwrap_err();
            for part in expected {
                assert!(error.contains(part), "{part} not in {error}");
            }
            assert_eq!(session.clinical, start);
        }
        assert!(events.events.is_empty());

        let inside = BTreeMap::from([("cea".to_string(), 7.5)]);
        session
            .apply(&Command::Clinical(inside.clone()), &mut events)
            .unwrap();
        assert_eq!(session.clinical, inside);
    }

    #[test]
    fn lasting_step_stops_being_a_flash() {
        let mut watch = FlashWatch::default();
        watch.check(1.0, 2.0);
        let flagged = (0..40).filter(|_| watch.check(5.0, 2.0)).count();
        assert_eq!(flagged, MAX_FLASH_RUN as usize);
    }
}
