//! Layout detection from the first frames.

/// Thresholds of layout detection.
#[derive(Clone, Debug, Default)]
pub struct DetectSettings {}

/// Per-pixel statistics of the first frames, from which views and the sector are found.
#[derive(Debug)]
pub struct LayoutDetector {}
