//! `--roi auto`: the most strongly enhancing compact region of the contrast view.
//!
//! A first analysis of the whole contrast view gives the baseline window and the time
//! of peak enhancement. A second pass then averages the linear power of each cell of a
//! coarse grid over the unflagged baseline frames and over the unflagged frames near
//! the peak. The proposal is the square of whole cells with the largest summed
//! peak-minus-baseline power, among squares whose cells lie mostly inside the sector.

use super::analysis::AnalysisSettings;
use super::linearise::PowerTable;
use super::report::TicReport;
use super::tracker::TicCurve;
use super::TicError;
use crate::frame::Frame;
use crate::geometry::Rect;
use crate::layout::Layout;

/// Grid and size of the proposed ROI.
#[derive(Clone, Debug)]
pub struct AutoRoiSettings {
    /// Side of the grid cells in pixels. Default 8.
    pub cell_px: u32,
    /// Side of the proposed square in pixels, rounded down to whole cells; `None` for a
    /// fifth of the view's shorter side. Default `None`.
    pub side_px: Option<u32>,
    /// Frames within this many seconds of the view's peak make the peak average.
    /// Default 1.0.
    pub peak_window_s: f64,
    /// A cell with a smaller share of sector pixels than this cannot be part of the
    /// ROI. Default 0.8.
    pub min_sector_fraction: f64,
}

impl Default for AutoRoiSettings {
    fn default() -> AutoRoiSettings {
        AutoRoiSettings {
            cell_px: 8,
            side_px: None,
            peak_window_s: 1.0,
            min_sector_fraction: 0.8,
        }
    }
}

/// Part of the power map a frame contributes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRole {
    Baseline,
    Peak,
    Skip,
}

/// Per-cell power sums over the baseline and peak frames.
#[derive(Debug)]
pub struct AutoRoi {
    settings: AutoRoiSettings,
    view: Rect,
    cols: u32,
    rows: u32,
    table: PowerTable,
    /// Sector pixels per cell.
    sector: Vec<u32>,
    /// Index of each view pixel's cell, or `u32::MAX` outside the sector.
    cell_of: Vec<u32>,
    frame_sum: Vec<f64>,
    baseline: Vec<f64>,
    peak: Vec<f64>,
    baseline_frames: u32,
    peak_frames: u32,
}

impl AutoRoi {
    /// Creates an empty power map over `layout`'s contrast view.
    pub fn new(layout: &Layout, table: PowerTable, settings: AutoRoiSettings) -> AutoRoi {
        let view = layout.contrast;
        let cell = settings.cell_px.max(1);
        let (cols, rows) = (view.w.div_ceil(cell), view.h.div_ceil(cell));
        let cells = (cols * rows) as usize;
        let mut sector = vec![0u32; cells];
        let mut cell_of = Vec::with_capacity(view.area() as usize);
        for dy in 0..view.h {
            for dx in 0..view.w {
                let c = (dy / cell) * cols + dx / cell;
                if layout.mask().contains(view.x + dx, view.y + dy) {
                    sector[c as usize] += 1;
                    cell_of.push(c);
                } else {
                    cell_of.push(u32::MAX);
                }
            }
        }
        AutoRoi {
            settings,
            view,
            cols,
            rows,
            table,
            sector,
            cell_of,
            frame_sum: vec![0.0; cells],
            baseline: vec![0.0; cells],
            peak: vec![0.0; cells],
            baseline_frames: 0,
            peak_frames: 0,
        }
    }

    /// Assigns each sample of a whole-view curve its role in the map: unflagged frames of the
    /// baseline window, and unflagged frames within `peak_window_s` of the peak. Without
    /// a peak every frame is skipped.
    pub fn roles(
        curve: &TicCurve,
        report: &TicReport,
        analysis: &AnalysisSettings,
        settings: &AutoRoiSettings,
    ) -> Vec<MapRole> {
        let Some(peak) = &report.peak else {
            return vec![MapRole::Skip; curve.samples.len()];
        };
        let first = curve
            .samples
            .iter()
            .zip(&curve.flags)
            .find(|(_, f)| f.is_empty())
            .map_or(0.0, |(s, _)| s.time_s);
        let baseline_end = report
            .bolus_arrival_s
            .unwrap_or(first + analysis.baseline_s)
            .min(first + analysis.baseline_s);
        curve
            .samples
            .iter()
            .zip(&curve.flags)
            .map(|(sample, flags)| {
                if !flags.is_empty() {
                    MapRole::Skip
                } else if (sample.time_s - peak.time_s).abs() <= settings.peak_window_s {
                    MapRole::Peak
                } else if sample.time_s <= baseline_end {
                    MapRole::Baseline
                } else {
                    MapRole::Skip
                }
            })
            .collect()
    }

    /// Adds `frame` to the baseline or peak average.
    ///
    /// Errors with [`TicError::FrameMismatch`] when the frame does not cover the view.
    pub fn push(&mut self, frame: &Frame, role: MapRole) -> Result<(), TicError> {
        let expected =
            frame.width as usize * frame.height as usize * frame.format.bytes_per_pixel();
        let covers = u64::from(frame.width) >= self.view.right()
            && u64::from(frame.height) >= self.view.bottom()
            && frame.data.len() >= expected;
        if !covers {
            return Err(TicError::FrameMismatch(format!(
                "frame {} of {}x{} does not cover the contrast view {}",
                frame.index, frame.width, frame.height, self.view
            )));
        }
        let target = match role {
            MapRole::Baseline => &mut self.baseline,
            MapRole::Peak => &mut self.peak,
            MapRole::Skip => return Ok(()),
        };
        self.frame_sum.fill(0.0);
        let mut pixel = 0;
        for dy in 0..self.view.h {
            for dx in 0..self.view.w {
                let c = self.cell_of[pixel];
                pixel += 1;
                if c != u32::MAX {
                    let grey = frame.luma_at(self.view.x + dx, self.view.y + dy);
                    self.frame_sum[c as usize] += self.table.power(grey);
                }
            }
        }
        for ((sum, &frame_sum), &count) in target.iter_mut().zip(&self.frame_sum).zip(&self.sector)
        {
            if count > 0 {
                *sum += frame_sum / f64::from(count);
            }
        }
        match role {
            MapRole::Baseline => self.baseline_frames += 1,
            _ => self.peak_frames += 1,
        }
        Ok(())
    }

    /// Proposes the ROI in full-frame pixels, or `None` without peak frames or when no
    /// square fits inside the sector.
    pub fn propose(&self) -> Option<Rect> {
        if self.peak_frames == 0 {
            return None;
        }
        let cell = self.settings.cell_px.max(1);
        let side_px = self
            .settings
            .side_px
            .unwrap_or(self.view.w.min(self.view.h) / 5)
            .max(cell);
        let side = (side_px / cell).clamp(1, self.cols.min(self.rows));
        let map = self.enhancement_map(cell);
        let (mut best, mut best_sum) = (None, f64::NEG_INFINITY);
        for cy in 0..=self.rows - side {
            for cx in 0..=self.cols - side {
                let window = (cy..cy + side).flat_map(|y| (cx..cx + side).map(move |x| (x, y)));
                let sum: Option<f64> = window.map(|(x, y)| map[(y * self.cols + x) as usize]).sum();
                if let Some(sum) = sum.filter(|&s| s > best_sum) {
                    best_sum = sum;
                    best = Some((cx, cy));
                }
            }
        }
        let (cx, cy) = best?;
        let x = self.view.x + cx * cell;
        let y = self.view.y + cy * cell;
        let w = (side * cell).min(self.view.right() as u32 - x);
        let h = (side * cell).min(self.view.bottom() as u32 - y);
        Some(Rect::new(x, y, w, h))
    }

    /// Mean peak minus mean baseline power per cell; `None` for cells mostly outside
    /// the sector.
    fn enhancement_map(&self, cell: u32) -> Vec<Option<f64>> {
        let baseline_frames = f64::from(self.baseline_frames.max(1));
        let peak_frames = f64::from(self.peak_frames.max(1));
        (0..self.sector.len())
            .map(|c| {
                let (cx, cy) = (c as u32 % self.cols, c as u32 / self.cols);
                let w = cell.min(self.view.w - cx * cell);
                let h = cell.min(self.view.h - cy * cell);
                let share = f64::from(self.sector[c]) / f64::from(w * h);
                let baseline = if self.baseline_frames > 0 {
                    self.baseline[c] / baseline_frames
                } else {
                    0.0
                };
                (share >= self.settings.min_sector_fraction)
                    .then(|| self.peak[c] / peak_frames - baseline)
            })
            .collect()
    }
}
