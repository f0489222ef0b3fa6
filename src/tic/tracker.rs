//! The per-frame part of the time-intensity curve: one [`TicTracker::push`] per frame.
//!
//! Each push costs one power-table lookup per ROI pixel, a grey histogram of every
//! second pixel of every second row of the views, a hash of the views' bytes and one
//! coarse-to-fine block search. Nothing is allocated per frame except the amortised
//! growth of the sample list, which [`TicTracker::reserve`] avoids.

use super::flags::{flag_flashes, hash_rect, median_in_place, FrameFlags, Histogram};
use super::linearise::PowerTable;
use super::motion::{MotionEstimate, MotionTracker};
use super::{TicError, TicSettings};
use crate::frame::{rgb_to_luma, Frame, PixelFormat};
use crate::geometry::Rect;
use crate::layout::{Layout, Span};

/// Half-width in seconds of the window whose median motion NCC a frame is compared with.
const LOCAL_NCC_WINDOW_S: f64 = 1.0;

/// Measurements of one frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameSample {
    pub index: u64,
    pub time_s: f64,
    /// Mean grey level over the ROI's mask pixels, 0 to 255.
    pub mean_grey: f64,
    /// Mean linear power over the ROI's mask pixels, relative to full scale.
    pub power: f64,
    /// Mean linear power over the whole contrast view (sub-sampled), for the flash test.
    pub view_power: f64,
    /// Grey level at the black-test percentile of the tissue view.
    pub tissue_percentile: u8,
    /// The views are identical to the previous frame's, and have been for longer than
    /// [`super::flags::FlagSettings::freeze_after_s`].
    pub same_as_previous: bool,
    /// Block match against the reference, when one was made.
    pub motion: Option<MotionEstimate>,
}

/// The measured curve with the flags of every frame.
#[derive(Clone, Debug)]
pub struct TicCurve {
    pub roi: Rect,
    /// Pixels of the ROI inside the sector mask: the pixels averaged per frame.
    pub roi_pixels: u64,
    pub samples: Vec<FrameSample>,
    pub flags: Vec<FrameFlags>,
    /// Frames skipped as short repeats of the frame before them, not in `samples`.
    pub repeated_frames: usize,
    pub warnings: Vec<String>,
}

/// What [`TicTracker::push`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The frame was measured and its sample appended.
    Measured,
    /// The frame's views repeat the previous frame's within
    /// [`super::flags::FlagSettings::freeze_after_s`]: the capture runs faster than the
    /// scanner draws, so the frame is no new sample and was skipped.
    Repeat,
}

/// Builds the time-intensity curve of one ROI frame by frame.
#[derive(Debug)]
pub struct TicTracker {
    settings: TicSettings,
    table: PowerTable,
    layout: Layout,
    roi: Rect,
    spans: Vec<Span>,
    roi_pixels: u64,
    motion: Option<MotionTracker>,
    motion_on_bmode: bool,
    contrast_histogram: Histogram,
    tissue_histogram: Histogram,
    previous_hash: Option<u64>,
    /// Time of the first frame of the current run of identical views.
    run_start_s: f64,
    repeated_frames: usize,
    samples: Vec<FrameSample>,
    warnings: Vec<String>,
}

impl TicTracker {
    /// A tracker of `roi` (full-frame pixels) inside `layout`'s contrast view.
    ///
    /// Errors with [`TicError::RoiOutsideView`] when `roi` is empty or not inside the
    /// contrast view, and with [`TicError::Setting`] for an invalid dynamic range. When
    /// the sector mask leaves no ROI pixel, every ROI pixel is used and a warning records it.
    pub fn new(layout: &Layout, roi: Rect, settings: TicSettings) -> Result<TicTracker, TicError> {
        if roi.w == 0 || roi.h == 0 || !layout.contrast.contains_rect(&roi) {
            return Err(TicError::RoiOutsideView {
                roi,
                view: layout.contrast,
            });
        }
        let table = PowerTable::new(settings.dynamic_range_db)?;
        let mut warnings = Vec::new();
        let mut spans = layout.mask().spans(&roi);
        if spans.is_empty() {
            warnings.push(format!(
                "the sector mask excludes every pixel of ROI {roi}: the whole ROI is used"
            ));
            spans = (roi.y..roi.bottom() as u32)
                .map(|y| Span {
                    y,
                    x_start: roi.x,
                    x_end: roi.right() as u32,
                })
                .collect();
        }
        let roi_pixels = spans.iter().map(|s| u64::from(s.x_end - s.x_start)).sum();
        let motion_view = layout.bmode.unwrap_or(layout.contrast);
        let motion = MotionTracker::new(motion_view, settings.motion.clone());
        if motion.is_none() {
            warnings.push(format!(
                "view {motion_view} is too small for motion tracking: no motion flags"
            ));
        }
        Ok(TicTracker {
            table,
            layout: layout.clone(),
            roi,
            spans,
            roi_pixels,
            motion,
            motion_on_bmode: layout.bmode.is_some(),
            contrast_histogram: Histogram::default(),
            tissue_histogram: Histogram::default(),
            previous_hash: None,
            run_start_s: f64::NEG_INFINITY,
            repeated_frames: 0,
            samples: Vec::new(),
            warnings,
            settings,
        })
    }

    /// Reserves room for `frames` more samples, so pushes up to that count never
    /// allocate.
    pub fn reserve(&mut self, frames: usize) {
        self.samples.reserve(frames);
    }

    pub fn roi(&self) -> Rect {
        self.roi
    }

    pub fn samples(&self) -> &[FrameSample] {
        &self.samples
    }

    /// Frames skipped so far as short repeats of the frame before them.
    pub fn repeated_frames(&self) -> usize {
        self.repeated_frames
    }

    /// Measures one frame and appends its sample, unless the frame is a short repeat of
    /// the previous one (see [`Pushed::Repeat`]).
    ///
    /// Errors with [`TicError::FrameMismatch`] when the frame's size differs from the
    /// layout's or its buffer is shorter than its size requires.
    pub fn push(&mut self, frame: &Frame) -> Result<Pushed, TicError> {
        self.check_frame(frame)?;

        let hash = self.views_hash(frame);
        let same_as_previous = self.previous_hash == Some(hash);
        self.previous_hash = Some(hash);
        if !same_as_previous {
            self.run_start_s = frame.time_s;
        } else if frame.time_s - self.run_start_s <= self.settings.flags.freeze_after_s {
            self.repeated_frames += 1;
            return Ok(Pushed::Repeat);
        }

        let (mean_grey, power) = self.roi_means(frame);

        view_histogram(frame, &self.layout.contrast, &mut self.contrast_histogram);
        let table = &self.table;
        let view_power = self.contrast_histogram.mean_of(|g| table.power(g));
        let tissue = match self.layout.bmode {
            Some(bmode) => {
                view_histogram(frame, &bmode, &mut self.tissue_histogram);
                &self.tissue_histogram
            }
            None => &self.contrast_histogram,
        };
        let tissue_percentile = tissue.percentile(self.settings.flags.black_percentile);

        // NOTE: a single contrast-only view that is truly black before the bolus
        // arrives looks like a lifted probe, so those frames are flagged black.
        let is_black = tissue_percentile <= self.settings.flags.black_level;
        let motion = match &mut self.motion {
            Some(tracker) if !is_black && !same_as_previous => tracker.update(frame),
            _ => None,
        };

        self.samples.push(FrameSample {
            index: frame.index,
            time_s: frame.time_s,
            mean_grey,
            power,
            view_power,
            tissue_percentile,
            same_as_previous,
            motion,
        });
        Ok(Pushed::Measured)
    }

    /// Decides the flags of every frame and returns the curve.
    pub fn finish(&self) -> TicCurve {
        let mut warnings = self.warnings.clone();
        let mut flags = vec![FrameFlags::default(); self.samples.len()];
        let settings = &self.settings.flags;
        for (flag, sample) in flags.iter_mut().zip(&self.samples) {
            if sample.tissue_percentile <= settings.black_level {
                flag.insert(FrameFlags::BLACK);
            } else if sample.same_as_previous && settings.detect_frozen {
                flag.insert(FrameFlags::FROZEN);
            }
        }
        self.flag_motion(&mut flags, &mut warnings);
        let view_power: Vec<f64> = self.samples.iter().map(|s| s.view_power).collect();
        flag_flashes(&view_power, &mut flags, settings, &mut Vec::new());
        TicCurve {
            roi: self.roi,
            roi_pixels: self.roi_pixels,
            samples: self.samples.clone(),
            flags,
            repeated_frames: self.repeated_frames,
            warnings,
        }
    }

    /// Decides the flags and analyses the curve with the tracker's settings.
    pub fn analyse(&self) -> super::TicAnalysis {
        let settings = &self.settings;
        super::analyse(
            &self.finish(),
            settings.dynamic_range_db,
            &settings.analysis,
        )
    }

    /// Flags long shifts, and on a B-mode view a sudden drop of NCC.
    ///
    /// The NCC against the reference frame falls slowly as the bolus brightens the B-mode
    /// view and as speckle decorrelates, which is not motion. So a frame is flagged for
    /// low NCC only when it falls below 0.8 times the median NCC of the frames within
    /// one second of it, or below half the absolute threshold.
    fn flag_motion(&self, flags: &mut [FrameFlags], warnings: &mut Vec<String>) {
        let Some(tracker) = &self.motion else {
            return;
        };
        let settings = tracker.settings();
        let mut scores: Vec<f64> = self
            .samples
            .iter()
            .filter_map(|s| s.motion.map(|m| m.ncc))
            .collect();
        let median = median_in_place(&mut scores);
        if self.motion_on_bmode && !scores.is_empty() && median < settings.min_ncc {
            warnings.push(format!(
                "median motion NCC {median:.2} is below {:.2}: the B-mode view decorrelates between frames",
                settings.min_ncc
            ));
        }
        let local_medians = self.local_ncc_medians(LOCAL_NCC_WINDOW_S);
        for ((flag, sample), local) in flags.iter_mut().zip(&self.samples).zip(local_medians) {
            let Some(estimate) = sample.motion else {
                continue;
            };
            let sudden_drop = local.is_some_and(|m| estimate.ncc < 0.8 * m);
            let confident = !sudden_drop && estimate.ncc >= 0.5 * settings.min_ncc;
            let moved = estimate.shift_px() > settings.max_shift_px;
            // A contrast-only view decorrelates as bubbles move, so there only a
            // confident long shift counts.
            let flagged = if self.motion_on_bmode {
                moved || !confident
            } else {
                moved && estimate.ncc >= settings.min_ncc
            };
            if flagged {
                flag.insert(FrameFlags::MOTION);
            }
        }
    }

    /// Median motion NCC of the samples within `window_s` seconds of each sample.
    fn local_ncc_medians(&self, window_s: f64) -> Vec<Option<f64>> {
        let mut window = Vec::new();
        let mut start = 0;
        let mut end = 0;
        let mut medians = Vec::with_capacity(self.samples.len());
        for sample in &self.samples {
            while self.samples[start].time_s < sample.time_s - window_s {
                start += 1;
            }
            while end < self.samples.len() && self.samples[end].time_s <= sample.time_s + window_s {
                end += 1;
            }
            window.clear();
            window.extend(
                self.samples[start..end]
                    .iter()
                    .filter_map(|s| s.motion.map(|m| m.ncc)),
            );
            medians.push((!window.is_empty()).then(|| median_in_place(&mut window)));
        }
        medians
    }

    fn check_frame(&self, frame: &Frame) -> Result<(), TicError> {
        let expected =
            frame.width as usize * frame.height as usize * frame.format.bytes_per_pixel();
        let same_size =
            frame.width == self.layout.frame_width && frame.height == self.layout.frame_height;
        if !same_size || frame.data.len() < expected {
            return Err(TicError::FrameMismatch(format!(
                "frame {} is {}x{} with {} bytes but the layout is for {}x{} frames",
                frame.index,
                frame.width,
                frame.height,
                frame.data.len(),
                self.layout.frame_width,
                self.layout.frame_height
            )));
        }
        Ok(())
    }

    fn roi_means(&self, frame: &Frame) -> (f64, f64) {
        let mut grey_sum = 0u64;
        let mut power_sum = 0.0f64;
        for span in &self.spans {
            let row = frame.row(span.y);
            let (start, end) = (span.x_start as usize, span.x_end as usize);
            match frame.format {
                PixelFormat::Gray8 => {
                    for &grey in &row[start..end] {
                        grey_sum += u64::from(grey);
                        power_sum += self.table.power(grey);
                    }
                }
                PixelFormat::Rgb8 => {
                    for pixel in row[3 * start..3 * end].chunks_exact(3) {
                        let grey = rgb_to_luma(pixel[0], pixel[1], pixel[2]);
                        grey_sum += u64::from(grey);
                        power_sum += self.table.power(grey);
                    }
                }
            }
        }
        let n = self.roi_pixels.max(1) as f64;
        (grey_sum as f64 / n, power_sum / n)
    }

    fn views_hash(&self, frame: &Frame) -> u64 {
        let stride = frame.stride();
        let bytes_per_pixel = frame.format.bytes_per_pixel();
        let mut hash = hash_rect(&frame.data, stride, bytes_per_pixel, &self.layout.contrast);
        if let Some(bmode) = &self.layout.bmode {
            hash ^= hash_rect(&frame.data, stride, bytes_per_pixel, bmode).rotate_left(1);
        }
        hash
    }
}

/// Fills `histogram` with the luma of every second pixel of every second row of `view`.
fn view_histogram(frame: &Frame, view: &Rect, histogram: &mut Histogram) {
    histogram.clear();
    for y in (view.y..view.bottom() as u32).step_by(2) {
        let row = frame.row(y);
        let (start, end) = (view.x as usize, view.right() as usize);
        match frame.format {
            PixelFormat::Gray8 => {
                for &grey in row[start..end].iter().step_by(2) {
                    histogram.add(grey);
                }
            }
            PixelFormat::Rgb8 => {
                for pixel in row[3 * start..3 * end].chunks_exact(3).step_by(2) {
                    histogram.add(rgb_to_luma(pixel[0], pixel[1], pixel[2]));
                }
            }
        }
    }
}
