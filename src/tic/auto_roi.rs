//! `--roi auto`: the most strongly enhancing compact region of the contrast view.
//!
//! A first analysis of the whole contrast view gives the baseline window and shows
//! whether the contrast agent arrived. Each cell of a coarse grid then gets its mean
//! linear power over the unflagged baseline frames, and after the baseline its power
//! smoothed over time as the frames arrive. The proposal is the square of whole cells
//! whose cells reached the largest summed enhancement over the baseline, each at its
//! own time, among squares whose cells lie mostly inside the sector. The whole view's
//! peak can come well after a lesion's, so enhancement at that one time would favour
//! the parenchyma.
//!
//! The live session feeds the same maps frame by frame ([`AutoRoi::track`]), because
//! a live stream cannot be read twice.

use super::analysis::AnalysisSettings;
use super::linearise::PowerTable;
use super::report::TicReport;
use super::tracker::TicCurve;
use super::TicError;
use crate::frame::{rgb_to_luma, Frame, PixelFormat};
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
    /// Time constant of the per-cell smoothing over time, seconds. Default 0.5.
    pub smoothing_s: f64,
    /// A cell with a smaller share of sector pixels than this cannot be part of the
    /// ROI. Default 0.8.
    pub min_sector_fraction: f64,
}

impl Default for AutoRoiSettings {
    fn default() -> AutoRoiSettings {
        AutoRoiSettings {
            cell_px: 8,
            side_px: None,
            smoothing_s: 0.5,
            min_sector_fraction: 0.8,
        }
    }
}

/// Part of the power maps a frame contributes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRole {
    /// A frame of the baseline window, averaged into the baseline.
    Baseline,
    /// A frame after the baseline, smoothed into the enhancement maps.
    Track,
    Skip,
}

/// Returns the weight of a frame `step_s` after the previous one in an exponential
/// average with time constant `time_constant_s`.
pub fn smoothing_weight(step_s: f64, time_constant_s: f64) -> f64 {
    if time_constant_s > 0.0 && step_s.is_finite() {
        1.0 - (-step_s.max(0.0) / time_constant_s).exp()
    } else {
        1.0
    }
}

/// Per-cell power over the baseline and the frames after it.
#[derive(Debug)]
pub struct AutoRoi {
    settings: AutoRoiSettings,
    view: Rect,
    cols: u32,
    rows: u32,
    table: PowerTable,
    /// Sector pixels per cell.
    sector: Vec<u32>,
    /// Whether each cell lies enough inside the sector to join an ROI.
    usable: Vec<bool>,
    /// Index of each view pixel's cell, or `u32::MAX` outside the sector.
    cell_of: Vec<u32>,
    frame_sum: Vec<f64>,
    baseline: Vec<f64>,
    baseline_frames: u32,
    live: LiveMaps,
    search: SquareSearch,
}

/// Each cell's power smoothed over time and the highest enhancement over the baseline
/// it reached.
#[derive(Debug)]
struct LiveMaps {
    smoothed: Vec<f64>,
    peak_enhancement: Vec<f64>,
    frames: u32,
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
        let usable = (0..cells)
            .map(|c| {
                let (cx, cy) = (c as u32 % cols, c as u32 / cols);
                let w = cell.min(view.w - cx * cell);
                let h = cell.min(view.h - cy * cell);
                let share = f64::from(sector[c]) / f64::from(w * h);
                sector[c] > 0 && share >= settings.min_sector_fraction
            })
            .collect();
        AutoRoi {
            settings,
            view,
            cols,
            rows,
            table,
            sector,
            usable,
            cell_of,
            frame_sum: vec![0.0; cells],
            baseline: vec![0.0; cells],
            baseline_frames: 0,
            live: LiveMaps {
                smoothed: vec![0.0; cells],
                peak_enhancement: vec![f64::NEG_INFINITY; cells],
                frames: 0,
            },
            search: SquareSearch::new(cols, rows),
        }
    }

    /// Assigns each sample of a whole-view curve its role in the maps: unflagged frames
    /// of the baseline window are baseline, later unflagged frames are tracked. Without
    /// a peak (no contrast agent arrived) every frame is skipped.
    pub fn roles(
        curve: &TicCurve,
        report: &TicReport,
        analysis: &AnalysisSettings,
    ) -> Vec<MapRole> {
        if report.peak.is_none() {
            return vec![MapRole::Skip; curve.samples.len()];
        }
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
                } else if sample.time_s <= baseline_end {
                    MapRole::Baseline
                } else {
                    MapRole::Track
                }
            })
            .collect()
    }

    /// Adds `frame` to the baseline average.
    ///
    /// Errors with [`TicError::FrameMismatch`] when the frame does not cover the view.
    pub fn push_baseline(&mut self, frame: &Frame) -> Result<(), TicError> {
        self.check_covers(frame)?;
        self.sum_cells(frame);
        for ((sum, &frame_sum), &count) in self
            .baseline
            .iter_mut()
            .zip(&self.frame_sum)
            .zip(&self.sector)
        {
            if count > 0 {
                *sum += frame_sum / f64::from(count);
            }
        }
        self.baseline_frames += 1;
        Ok(())
    }

    /// Adds a frame after the baseline to the enhancement maps and returns the mean smoothed
    /// enhancement of the most strongly enhancing ROI-sized square in it, or `None` when
    /// no square fits inside the sector.
    ///
    /// Each cell's power is smoothed over time with weight `weight` for the new frame
    /// (an exponential average), so that slowly changing speckle does not make a peak.
    /// Ranking frames by the returned value finds the peak of the region that will be
    /// proposed, before the region is known. Allocates nothing.
    ///
    /// Errors with [`TicError::FrameMismatch`] when the frame does not cover the view.
    pub fn track(&mut self, frame: &Frame, weight: f64) -> Result<Option<f64>, TicError> {
        self.check_covers(frame)?;
        self.sum_cells(frame);
        let weight = if self.live.frames == 0 {
            1.0
        } else {
            weight.clamp(0.0, 1.0)
        };
        self.live.frames += 1;
        let baseline_frames = f64::from(self.baseline_frames.max(1));
        for c in 0..self.sector.len() {
            if !self.usable[c] {
                self.search.values[c] = None;
                continue;
            }
            let power = self.frame_sum[c] / f64::from(self.sector[c]);
            let smoothed = &mut self.live.smoothed[c];
            *smoothed += weight * (power - *smoothed);
            let enhancement = *smoothed - self.baseline[c] / baseline_frames;
            let peak = &mut self.live.peak_enhancement[c];
            *peak = peak.max(enhancement);
            self.search.values[c] = Some(enhancement);
        }
        let side = self.side_cells();
        Ok(self
            .search
            .best(side)
            .map(|(_, sum)| sum / f64::from(side * side)))
    }

    /// Proposes the ROI in full-frame pixels: the square whose cells reached the highest
    /// enhancement, each at its own time. `None` before any tracked frame or when no
    /// square fits inside the sector.
    pub fn propose(&mut self) -> Option<Rect> {
        if self.live.frames == 0 {
            return None;
        }
        for c in 0..self.sector.len() {
            self.search.values[c] = self.usable[c].then_some(self.live.peak_enhancement[c]);
        }
        let side = self.side_cells();
        let (cell, _) = self.search.best(side)?;
        Some(self.square_rect(cell, side))
    }

    fn check_covers(&self, frame: &Frame) -> Result<(), TicError> {
        let expected =
            frame.width as usize * frame.height as usize * frame.format.bytes_per_pixel();
        let covers = u64::from(frame.width) >= self.view.right()
            && u64::from(frame.height) >= self.view.bottom()
            && frame.data.len() >= expected;
        if covers {
            Ok(())
        } else {
            Err(TicError::FrameMismatch(format!(
                "frame {} of {}x{} does not cover the contrast view {}",
                frame.index, frame.width, frame.height, self.view
            )))
        }
    }

    /// Sums the linear power of the frame's sector pixels per cell into `frame_sum`,
    /// a row slice at a time. The frame must cover the view ([`AutoRoi::check_covers`]).
    fn sum_cells(&mut self, frame: &Frame) {
        let AutoRoi {
            view,
            table,
            cell_of,
            frame_sum,
            ..
        } = self;
        frame_sum.fill(0.0);
        let bytes_per_pixel = frame.format.bytes_per_pixel();
        let (left, width) = (view.x as usize, view.w as usize);
        for (dy, cells) in cell_of.chunks_exact(width).enumerate() {
            let row = frame.row(view.y + dy as u32);
            let pixels = &row[left * bytes_per_pixel..(left + width) * bytes_per_pixel];
            let mut add = |grey: u8, c: u32| {
                if c != u32::MAX {
                    frame_sum[c as usize] += table.power(grey);
                }
            };
            match frame.format {
                PixelFormat::Gray8 => {
                    for (&grey, &c) in pixels.iter().zip(cells) {
                        add(grey, c);
                    }
                }
                PixelFormat::Rgb8 => {
                    for (rgb, &c) in pixels.chunks_exact(3).zip(cells) {
                        add(rgb_to_luma(rgb[0], rgb[1], rgb[2]), c);
                    }
                }
            }
        }
    }

    /// Side of the proposed square in whole cells.
    fn side_cells(&self) -> u32 {
        let cell = self.settings.cell_px.max(1);
        let side_px = self
            .settings
            .side_px
            .unwrap_or(self.view.w.min(self.view.h) / 5)
            .max(cell);
        (side_px / cell).clamp(1, self.cols.min(self.rows))
    }

    /// Returns the square of `side` cells from top-left cell `(cx, cy)`, in full-frame pixels
    /// and clipped to the view.
    fn square_rect(&self, (cx, cy): (u32, u32), side: u32) -> Rect {
        let cell = self.settings.cell_px.max(1);
        let x = self.view.x + cx * cell;
        let y = self.view.y + cy * cell;
        let w = (side * cell).min(self.view.right() as u32 - x);
        let h = (side * cell).min(self.view.bottom() as u32 - y);
        Rect::new(x, y, w, h)
    }
}

/// Finds the square of cells with the largest sum over a map of cell values, with
/// buffers allocated once.
///
/// Summed-area tables of the values and of the excluded cells make each square's sum
/// four lookups. The search so takes time in proportion to the cells, not to the cells
/// times the square's area, which keeps it within a frame's time on a 1080p view.
#[derive(Debug)]
struct SquareSearch {
    cols: usize,
    rows: usize,
    /// One value per cell, row by row; `None` excludes the cell from every square.
    values: Vec<Option<f64>>,
    sums: Vec<f64>,
    excluded: Vec<u32>,
}

impl SquareSearch {
    fn new(cols: u32, rows: u32) -> SquareSearch {
        let (cols, rows) = (cols as usize, rows as usize);
        let table = (cols + 1) * (rows + 1);
        SquareSearch {
            cols,
            rows,
            values: vec![None; cols * rows],
            sums: vec![0.0; table],
            excluded: vec![0; table],
        }
    }

    /// Returns the top-left cell and the sum of the best square of `side` cells without an
    /// excluded cell, or `None` when every square has one.
    fn best(&mut self, side: u32) -> Option<((u32, u32), f64)> {
        let (cols, rows, side) = (self.cols, self.rows, side as usize);
        if side == 0 || side > cols || side > rows {
            return None;
        }
        let stride = cols + 1;
        for y in 0..rows {
            for x in 0..cols {
                let (value, out) = match self.values[y * cols + x] {
                    Some(value) => (value, 0),
                    None => (0.0, 1),
                };
                let at = (y + 1) * stride + x + 1;
                let (left, up, diagonal) = (at - 1, at - stride, at - stride - 1);
                self.sums[at] = value + self.sums[left] + self.sums[up] - self.sums[diagonal];
                self.excluded[at] =
                    out + self.excluded[left] + self.excluded[up] - self.excluded[diagonal];
            }
        }

        let mut best = None;
        let mut best_sum = f64::NEG_INFINITY;
        for cy in 0..=rows - side {
            for cx in 0..=cols - side {
                let (top, bottom) = (cy * stride, (cy + side) * stride);
                let (left, right) = (cx, cx + side);
                let out = self.excluded[bottom + right] + self.excluded[top + left]
                    - self.excluded[bottom + left]
                    - self.excluded[top + right];
                let sum =
                    self.sums[bottom + right] - self.sums[bottom + left] - self.sums[top + right]
                        + self.sums[top + left];
                if out == 0 && sum > best_sum {
                    best_sum = sum;
                    best = Some((cx as u32, cy as u32));
                }
            }
        }
        best.map(|cell| (cell, best_sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the best square's sum, found by adding up every cell of every square.
    fn brute_force(values: &[Option<f64>], cols: usize, rows: usize, side: usize) -> Option<f64> {
        let mut best: Option<f64> = None;
        for cy in 0..=rows - side {
            for cx in 0..=cols - side {
                let cells = (cy..cy + side).flat_map(|y| (cx..cx + side).map(move |x| (x, y)));
                let sum: Option<f64> = cells.map(|(x, y)| values[y * cols + x]).sum();
                if let Some(sum) = sum {
                    best = Some(best.map_or(sum, |b: f64| b.max(sum)));
                }
            }
        }
        best
    }

    #[test]
    fn square_search_matches_brute_force() {
        let (cols, rows) = (13u32, 9u32);
        let mut search = SquareSearch::new(cols, rows);
        let mut state = 12345u64;
        for round in 0..20 {
            for value in &mut search.values {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let draw = (state >> 33) as f64 / f64::from(1u32 << 31);
                *value = (draw > 0.1 * f64::from(round % 4)).then_some(draw - 0.5);
            }
            for side in 1..=rows {
                let expected = brute_force(&search.values, 13, 9, side as usize);
                let found = search.best(side).map(|(_, sum)| sum);
                match (expected, found) {
                    (Some(e), Some(f)) => assert!((e - f).abs() < 1e-9, "side {side}: {e} {f}"),
                    (e, f) => assert_eq!(e.is_some(), f.is_some(), "side {side}"),
                }
            }
        }
        assert_eq!(search.best(rows + 1), None);
    }
}
