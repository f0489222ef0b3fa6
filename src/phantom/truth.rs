//! Ground truth of a phantom exam, written beside it as truth.json.

use serde::{Deserialize, Serialize};

use super::bolus::BolusPair;
use super::config::PhantomConfig;
use super::events::{FrameEvent, ScheduledEvent};
use super::scene::{Lesion, ScreenLayout};
use crate::geometry::Rect;

/// Version of the truth.json layout; raised on any change that breaks a reader.
pub const TRUTH_SCHEMA_VERSION: u32 = 1;

/// Everything known about a phantom exam. Rectangles and positions are in full-frame
/// pixels unless a field's doc states otherwise. Powers are linear, relative to the
/// display reference power (see [`super::power_to_grey`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub schema_version: u32,
    /// `ceus-edge phantom` and the crate version that wrote the exam.
    pub generator: String,
    pub seed: u64,
    pub settings: PhantomConfig,
    pub layout: ScreenLayout,
    /// Bounding rectangle of the lesion in the contrast view.
    pub lesion_roi: Rect,
    /// Bounding rectangle of the lesion in the B-mode view (dual layout only).
    pub lesion_roi_bmode: Option<Rect>,
    /// The lesion ellipse, relative to the top-left corner of each view.
    pub lesion: Lesion,
    pub display: DisplayTruth,
    /// The agent curves before any destruction by a flash.
    pub bolus: BolusPair,
    /// Time constants of the refill after a flash, in seconds.
    pub refill: RefillTimes,
    /// Arrival time of the lesion's bolus, in seconds.
    pub arrival_time_s: f64,
    /// Index of the unflagged frame with the highest noise-free lesion power; `None` when
    /// every frame is flagged.
    pub peak_frame: Option<u32>,
    pub peak_time_s: Option<f64>,
    pub events: Vec<ScheduledEvent>,
    pub frames: Vec<FrameTruth>,
}

/// Relation of grey levels to power in this exam.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisplayTruth {
    /// Dynamic range of the log compression, in dB.
    pub dynamic_range_db: f64,
    /// Mean power of the electronic noise, relative to the reference power.
    pub noise_floor_power: f64,
}

/// Refill after destruction: after a flash ending at `t1`, agent power is multiplied by
/// `1 - exp(-(t - t1) / tau)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefillTimes {
    pub lesion_s: f64,
    pub parenchyma_s: f64,
}

/// Ground truth of one frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameTruth {
    pub index: u32,
    /// Seconds from the first frame: `index / fps`.
    pub time_s: f64,
    /// Noise-free mean agent power over the lesion at the field's rest position, with
    /// destruction and refill applied and without speckle, noise or tissue leak. Display
    /// corruption (flash glare, freeze, probe lift, motion) is not in it, and `event` flags it.
    pub lesion_power: f64,
    /// Noise-free agent power of the parenchyma at unit perfusion.
    pub parenchyma_power: f64,
    pub event: FrameEvent,
    /// Shift of the imaged field, in pixels (x right, y down).
    pub shift_px: [i32; 2],
}

/// Index of the unflagged frame with the highest lesion power, the first one on ties.
pub fn peak_frame(frames: &[FrameTruth]) -> Option<u32> {
    let mut best: Option<&FrameTruth> = None;
    for frame in frames.iter().filter(|f| f.event == FrameEvent::None) {
        if best.is_none_or(|b| frame.lesion_power > b.lesion_power) {
            best = Some(frame);
        }
    }
    best.map(|frame| frame.index)
}
