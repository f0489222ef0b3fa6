//! The serialisable result of a TIC analysis.
//!
//! Every number is finite: a value that cannot be computed is absent (`null` in JSON),
//! and [`TicStatus`] or a warning gives the reason.

use std::collections::BTreeMap;

use serde::Serialize;

use super::fit::ModelFit;
use super::flags::FrameFlags;
use super::model::BolusModel;

/// Outcome of the analysis as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicStatus {
    /// Fitted, with a peak frame.
    Ok,
    /// Fitted, but the better model explains less of the curve than the R^2 threshold.
    PoorFit,
    /// Neither model could be fitted; the peak comes from the smoothed curve.
    FitFailed,
    /// The curve does not rise above its baseline noise: no bolus, no peak.
    NoEnhancement,
    /// The curve is highest at its start, so the wash-in was missed; no fit.
    DecreasingAtStart,
    /// Fewer unflagged frames than the models have parameters, or too short a time
    /// span to fit; the peak comes from the smoothed curve.
    TooShort,
    /// Every frame is flagged: nothing to measure.
    AllFlagged,
    /// One frame only: no curve.
    SingleFrame,
    /// The input had no frames.
    NoFrames,
}

impl TicStatus {
    /// Returns a one-line explanation for people.
    pub fn describe(self) -> &'static str {
        match self {
            TicStatus::Ok => "bolus fitted",
            TicStatus::PoorFit => "bolus fitted, but the fit explains little of the curve",
            TicStatus::FitFailed => "no bolus model could be fitted",
            TicStatus::NoEnhancement => "no enhancement above the baseline noise",
            TicStatus::DecreasingAtStart => {
                "the curve is already decreasing at the first frame: the wash-in was missed"
            }
            TicStatus::TooShort => "too few unflagged frames or too short a clip to fit",
            TicStatus::AllFlagged => "every frame is flagged",
            TicStatus::SingleFrame => "a single frame has no time-intensity curve",
            TicStatus::NoFrames => "the input has no frames",
        }
    }
}

/// One fitted model and the perfusion parameters of its curve.
#[derive(Clone, Debug, Serialize)]
pub struct FitReport {
    pub model: BolusModel,
    pub r2: Option<f64>,
    pub aic: Option<f64>,
    /// Peak enhancement above baseline, linear power.
    pub pe: Option<f64>,
    /// Time to peak from `t0_s`, seconds.
    pub ttp_s: Option<f64>,
    /// Fitted bolus start, seconds from the first frame.
    pub t0_s: Option<f64>,
    /// Rise time from 10% to 90% of `pe`, seconds.
    pub rt_s: Option<f64>,
    /// Mean transit time from `t0_s`, seconds.
    pub mtt_s: Option<f64>,
    /// Wash-in area above baseline from `t0_s` to the peak, power times seconds.
    pub wiauc: Option<f64>,
    /// Maximum wash-in slope, power per second.
    pub wir: Option<f64>,
    /// Parameters in the model's published form: lognormal `baseline, area, t0_s, mu,
    /// sigma`; gamma variate `baseline, k, t0_s, alpha, beta_s`.
    pub params: BTreeMap<&'static str, f64>,
    pub samples: usize,
    pub iterations: usize,
    pub converged: bool,
}

impl FitReport {
    pub fn from_fit(fit: &ModelFit) -> FitReport {
        let perfusion = fit.perfusion;
        let params = fit
            .model
            .published(&fit.params)
            .into_iter()
            .filter(|(_, value)| value.is_finite())
            .collect();
        FitReport {
            model: fit.model,
            r2: finite(fit.r2),
            aic: finite(fit.aic),
            pe: perfusion.and_then(|p| finite(p.pe)),
            ttp_s: perfusion.and_then(|p| finite(p.ttp_s)),
            t0_s: finite(fit.params[2]),
            rt_s: perfusion.and_then(|p| finite(p.rt_s)),
            mtt_s: perfusion.and_then(|p| finite(p.mtt_s)),
            wiauc: perfusion.and_then(|p| finite(p.wiauc)),
            wir: perfusion.and_then(|p| finite(p.wir)),
            params,
            samples: fit.samples,
            iterations: fit.iterations,
            converged: fit.converged,
        }
    }
}

/// The chosen peak-enhancement frame.
#[derive(Clone, Debug, Serialize)]
pub struct PeakReport {
    pub frame_index: u64,
    pub time_s: f64,
    /// Measured ROI power of the frame.
    pub power: f64,
    /// Smoothed ROI power at the frame.
    pub smoothed_power: f64,
    /// Motion NCC of the frame against the reference, when measured.
    pub ncc: Option<f64>,
    /// Time of the fitted curve's maximum that the choice aimed at, when fitted.
    pub fitted_peak_s: Option<f64>,
}

/// Number of frames with each flag; a frame may carry several.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagCounts {
    pub flash: usize,
    pub frozen: usize,
    pub black: usize,
    pub motion: usize,
    /// Frames with at least one flag.
    pub flagged: usize,
}

/// One flagged frame.
#[derive(Clone, Debug, Serialize)]
pub struct FlaggedFrame {
    pub frame_index: u64,
    pub time_s: f64,
    pub flags: FrameFlags,
    /// Motion shift `[dx, dy]` in pixels, when measured.
    pub shift_px: Option<[i32; 2]>,
    pub ncc: Option<f64>,
}

/// Flag counts and the list of flagged frames.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagReport {
    pub counts: FlagCounts,
    pub frames: Vec<FlaggedFrame>,
}

/// Everything read from one time-intensity curve.
#[derive(Clone, Debug, Serialize)]
pub struct TicReport {
    pub status: TicStatus,
    /// Frames given to the tracker, repeats included.
    pub frames: usize,
    /// Frames skipped as short repeats of the frame before them (within
    /// `freeze_after_s`), as from a capture card running faster than the scanner draws.
    /// Every other frame was measured.
    pub repeated_frames: usize,
    /// Measured frames without a flag.
    pub unflagged_frames: usize,
    /// `[x, y, w, h]` in full-frame pixels.
    pub roi: [u32; 4],
    /// ROI pixels inside the sector mask, averaged per frame.
    pub roi_pixels: u64,
    pub dynamic_range_db: f64,
    /// Median ROI power of the baseline window, linear power.
    pub baseline: Option<f64>,
    /// Robust standard deviation (1.4826 MAD) of the baseline window.
    pub noise_sigma: Option<f64>,
    /// First time the smoothed curve rises above the baseline by the arrival margin and
    /// stays there, seconds from the first frame.
    pub bolus_arrival_s: Option<f64>,
    pub peak: Option<PeakReport>,
    /// The selected model's fit.
    pub fit: Option<FitReport>,
    /// Every model that could be fitted, the selected one included.
    pub fits: Vec<FitReport>,
    /// Model selection rule: `aic` (lowest AIC; with equal parameter counts, the
    /// same as the highest R^2).
    pub selected_by: &'static str,
    pub flags: FlagReport,
    pub warnings: Vec<String>,
}

/// `Some(value)` when finite.
pub fn finite(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}
