//! The time-intensity curve (TIC) of a region of interest and what is read from it.
//!
//! [`TicTracker`] measures each frame as it arrives: the mean linearised echo power of
//! the ROI ([`linearise`]), and the evidence for the frame flags ([`flags`],
//! [`motion`]). [`analyse`] then fits the bolus models, derives the perfusion
//! parameters, finds the bolus arrival and the peak frame, and returns a serialisable
//! [`TicReport`].

mod analysis;
pub mod auto_roi;
pub mod fit;
pub mod flags;
pub mod linearise;
pub mod lm;
pub mod model;
pub mod motion;
pub mod pipeline;
pub mod report;
mod tracker;

pub use analysis::{analyse, AnalysisSettings, TicAnalysis};
pub use flags::{FlagSettings, FrameFlags};
pub use motion::MotionSettings;
pub use report::{TicReport, TicStatus};
pub use tracker::{FrameSample, Pushed, TicCurve, TicTracker};

use crate::geometry::Rect;

/// Error from setting up or feeding the tracker.
#[derive(Debug, thiserror::Error)]
pub enum TicError {
    /// A setting is out of its valid range.
    #[error("{0}")]
    Setting(String),
    /// The ROI is empty or not inside the contrast view.
    #[error("ROI {roi} is not inside the contrast view {view}: give an ROI within the view")]
    RoiOutsideView { roi: Rect, view: Rect },
    /// A frame does not match the layout the tracker was built for.
    #[error("{0}")]
    FrameMismatch(String),
}

/// Every setting of the tracker and the analysis, with documented defaults.
#[derive(Clone, Debug)]
pub struct TicSettings {
    /// Dynamic range of the scanner's log compression in dB. Default 60.
    pub dynamic_range_db: f64,
    pub flags: FlagSettings,
    pub motion: MotionSettings,
    pub analysis: AnalysisSettings,
}

impl Default for TicSettings {
    fn default() -> TicSettings {
        TicSettings {
            dynamic_range_db: 60.0,
            flags: FlagSettings::default(),
            motion: MotionSettings::default(),
            analysis: AnalysisSettings::default(),
        }
    }
}
