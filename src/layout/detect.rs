//! Layout detection from per-pixel statistics of the first frames.
//!
//! A pixel belongs to an ultrasound image when it changes between frames (speckle,
//! noise, moving bubbles) or carries speckle texture (a large grey-level step to its
//! right or lower neighbour). Static chrome, such as grey bars and fixed labels, does
//! neither, or only in small patches. The active pixels are pooled into cells, the
//! cells into 8-connected components, and components too small to be a view (text,
//! clocks, icons) are dropped. Two components of about equal size on either side of
//! the frame's vertical centre line make a dual layout, B-mode on the left. One makes
//! a single layout.

use log::debug;

use super::{Layout, LayoutError, LayoutKind, ViewMask};
use crate::frame::Frame;
use crate::geometry::Rect;

/// Thresholds of layout detection, with their defaults.
#[derive(Clone, Debug)]
pub struct DetectSettings {
    /// A pixel whose grey level never exceeds this is black: outside the sector.
    /// Default 12.
    pub black_level: u8,
    /// A grey-level change larger than this between pushed frames counts. Default 2.
    pub change_level: u8,
    /// A pixel that changes in at least this share of transitions is active.
    /// Default 0.25.
    pub active_fraction: f64,
    /// A grey-level step to the right or lower neighbour of at least this is speckle
    /// texture. Default 6.
    pub texture_level: u8,
    /// Side of the cells pixels are pooled into. Default 8.
    pub cell_px: u32,
    /// A cell with at least this share of active pixels is active. Default 0.3.
    pub cell_active_fraction: f64,
    /// Smallest view as a share of the frame's area. Default 0.02.
    pub min_view_fraction: f64,
    /// Smallest view side in pixels. Default 32.
    pub min_view_side: u32,
    /// Largest relative difference in width and height of the two views of a dual
    /// layout. Default 0.1.
    pub equal_size_tolerance: f64,
}

impl Default for DetectSettings {
    fn default() -> DetectSettings {
        DetectSettings {
            black_level: 12,
            change_level: 2,
            active_fraction: 0.25,
            texture_level: 6,
            cell_px: 8,
            cell_active_fraction: 0.3,
            min_view_fraction: 0.02,
            min_view_side: 32,
            equal_size_tolerance: 0.1,
        }
    }
}

/// Per-pixel statistics of the frames pushed so far.
#[derive(Debug)]
pub struct LayoutDetector {
    width: u32,
    height: u32,
    settings: DetectSettings,
    /// Distinct frames accumulated.
    frames: u32,
    /// Frames pushed, repeats included.
    pushed: u32,
    previous: Vec<u8>,
    current: Vec<u8>,
    max: Vec<u8>,
    changes: Vec<u16>,
    textured: Vec<u16>,
}

impl LayoutDetector {
    /// Creates a detector for `width` x `height` frames. The caller bounds the size (see
    /// [`crate::source::Limits`]); the detector keeps about 8 bytes per pixel.
    pub fn new(width: u32, height: u32, settings: DetectSettings) -> LayoutDetector {
        let pixels = width as usize * height as usize;
        LayoutDetector {
            width,
            height,
            settings,
            frames: 0,
            pushed: 0,
            previous: vec![0; pixels],
            current: vec![0; pixels],
            max: vec![0; pixels],
            changes: vec![0; pixels],
            textured: vec![0; pixels],
        }
    }

    /// Width and height of the frames the detector takes.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Distinct frames accumulated so far: pushes that repeated the previous frame's
    /// grey levels exactly are not counted.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Frames pushed so far, repeats included.
    pub fn pushed(&self) -> u32 {
        self.pushed
    }

    /// Adds one frame's statistics, unless its grey levels repeat the previous frame's
    /// exactly: a capture card running faster than the scanner draws repeats frames,
    /// and counting those as transitions without change would make a changing view look
    /// static. Counts stop growing after 65,535 frames.
    ///
    /// Errors with [`LayoutError::FrameSize`] when the frame's size differs.
    pub fn push(&mut self, frame: &Frame) -> Result<(), LayoutError> {
        let expected =
            frame.width as usize * frame.height as usize * frame.format.bytes_per_pixel();
        if frame.width != self.width || frame.height != self.height || frame.data.len() < expected {
            return Err(LayoutError::FrameSize {
                width: self.width,
                height: self.height,
                got_width: frame.width,
                got_height: frame.height,
            });
        }
        self.pushed = self.pushed.saturating_add(1);
        for y in 0..self.height {
            for x in 0..self.width {
                self.current[(y * self.width + x) as usize] = frame.luma_at(x, y);
            }
        }
        if self.frames > 0 && self.current == self.previous {
            return Ok(());
        }
        self.accumulate();
        std::mem::swap(&mut self.previous, &mut self.current);
        self.frames = self.frames.saturating_add(1);
        Ok(())
    }

    fn accumulate(&mut self) {
        let (width, height) = (self.width as usize, self.height as usize);
        let settings = &self.settings;
        for y in 0..height {
            for x in 0..width {
                let i = y * width + x;
                let grey = self.current[i];
                self.max[i] = self.max[i].max(grey);
                if self.frames > 0 && grey.abs_diff(self.previous[i]) > settings.change_level {
                    self.changes[i] = self.changes[i].saturating_add(1);
                }
                let right = if x + 1 < width {
                    self.current[i + 1]
                } else {
                    grey
                };
                let below = if y + 1 < height {
                    self.current[i + width]
                } else {
                    grey
                };
                let step = grey.abs_diff(right).max(grey.abs_diff(below));
                if grey > settings.black_level && step >= settings.texture_level {
                    self.textured[i] = self.textured[i].saturating_add(1);
                }
            }
        }
    }

    fn is_active(&self, i: usize) -> bool {
        let transitions = f64::from(self.frames.saturating_sub(1));
        let changing = transitions > 0.0
            && f64::from(self.changes[i]) >= self.settings.active_fraction * transitions;
        let textured = f64::from(self.textured[i]) >= 0.5 * f64::from(self.frames);
        changing || textured
    }

    /// Detects the layout, or falls back to [`Layout::whole_frame`] when no view is
    /// found or no frame was pushed.
    ///
    /// `hint` is a list of view rectangles from the file (such as a DICOM Sequence of
    /// Ultrasound Regions). Two equal rectangles side by side make a dual layout and one
    /// a single layout; any other hint is ignored. The sector mask always comes from
    /// the pixels.
    pub fn detect(&self, hint: &[Rect]) -> Layout {
        let views = self
            .views_from_hint(hint)
            .or_else(|| self.views_from_pixels());
        let Some((kind, contrast, bmode)) = views else {
            let mut layout = Layout::whole_frame(self.width, self.height);
            layout.set_mask(self.sector_mask(&layout.contrast, None));
            return layout;
        };
        let mut layout =
            Layout::with_views(kind, self.width, self.height, contrast, bmode, Vec::new())
                .unwrap_or_else(|_| Layout::whole_frame(self.width, self.height));
        let mask = self.sector_mask(&layout.contrast, layout.bmode.as_ref());
        layout.set_mask(mask);
        layout
    }

    /// Replaces `layout`'s mask with the sector seen in the pushed frames.
    pub fn apply_mask(&self, layout: &mut Layout) {
        let mask = self.sector_mask(&layout.contrast, layout.bmode.as_ref());
        layout.set_mask(mask);
    }

    /// Contrast-view pixels that were above black and active, or whose B-mode
    /// counterpart (same offset in an equal-size B-mode view) was above black. Without
    /// pushed frames, every pixel.
    fn sector_mask(&self, contrast: &Rect, bmode: Option<&Rect>) -> ViewMask {
        if self.frames == 0 {
            return ViewMask::full(*contrast);
        }
        let bmode = bmode.filter(|b| b.w == contrast.w && b.h == contrast.h);
        let black = self.settings.black_level;
        let mut inside = Vec::with_capacity(contrast.area() as usize);
        for dy in 0..contrast.h {
            for dx in 0..contrast.w {
                let i = ((contrast.y + dy) * self.width + contrast.x + dx) as usize;
                let own = self.max[i] > black && self.is_active(i);
                let tissue = bmode.is_some_and(|b| {
                    self.max[((b.y + dy) * self.width + b.x + dx) as usize] > black
                });
                inside.push(own || tissue);
            }
        }
        ViewMask::from_flags(*contrast, inside).unwrap_or_else(|| ViewMask::full(*contrast))
    }

    fn views_from_hint(&self, hint: &[Rect]) -> Option<(LayoutKind, Rect, Option<Rect>)> {
        let fits: Vec<Rect> = hint
            .iter()
            .copied()
            .filter(|r| r.fits_in(self.width, self.height))
            .collect();
        match fits.as_slice() {
            [only] => Some((LayoutKind::Single, *only, None)),
            [a, b] if a.w == b.w && a.h == b.h && a.x != b.x => {
                let (left, right) = if a.x < b.x { (a, b) } else { (b, a) };
                (left.right() <= u64::from(right.x)).then_some((
                    LayoutKind::Dual,
                    *right,
                    Some(*left),
                ))
            }
            _ => {
                if !hint.is_empty() {
                    debug!(
                        "layout hint of {} regions ignored: not one view or two equal views",
                        hint.len()
                    );
                }
                None
            }
        }
    }

    fn views_from_pixels(&self) -> Option<(LayoutKind, Rect, Option<Rect>)> {
        if self.frames == 0 {
            return None;
        }
        let mut regions = self.large_regions();
        regions.sort_by_key(|r| std::cmp::Reverse(r.area()));
        debug!("layout candidates: {regions:?}");
        for (i, a) in regions.iter().enumerate().take(4) {
            for b in regions.iter().skip(i + 1).take(4) {
                if let Some((left, right)) = self.dual_pair(a, b) {
                    return Some((LayoutKind::Dual, right, Some(left)));
                }
            }
        }
        regions.first().map(|r| (LayoutKind::Single, *r, None))
    }

    /// Returns the pair as (B-mode, contrast) with equal sizes, when the two regions are about
    /// equal, overlap vertically and sit on either side of the frame's centre line.
    fn dual_pair(&self, a: &Rect, b: &Rect) -> Option<(Rect, Rect)> {
        let (left, right) = if a.x < b.x { (*a, *b) } else { (*b, *a) };
        let tolerance = self.settings.equal_size_tolerance;
        let similar = |p: u32, q: u32| f64::from(p.abs_diff(q)) <= tolerance * f64::from(p.max(q));
        let centre = u64::from(self.width) / 2;
        let split = left.right() <= u64::from(right.x)
            && (u64::from(left.x) + left.right()) / 2 < centre
            && (u64::from(right.x) + right.right()) / 2 > centre;
        let top = left.y.max(right.y);
        let bottom = left.bottom().min(right.bottom());
        let overlap = bottom.saturating_sub(u64::from(top)) as f64;
        let vertical = overlap >= 0.5 * f64::from(left.h.min(right.h));
        if !(similar(left.w, right.w) && similar(left.h, right.h) && split && vertical) {
            return None;
        }
        let w = left.w.max(right.w).min(right.x - left.x);
        let h = left.h.max(right.h);
        let y = left.y.min(right.y).min(self.height - h);
        let right_x = right.x.min(self.width - w);
        Some((Rect::new(left.x, y, w, h), Rect::new(right_x, y, w, h)))
    }

    /// Bounding boxes of the 8-connected components of active cells that are large
    /// enough to be a view, refined to the active pixels inside them.
    fn large_regions(&self) -> Vec<Rect> {
        let cell = self.settings.cell_px.max(1);
        let (cols, rows) = (self.width.div_ceil(cell), self.height.div_ceil(cell));
        let active = self.active_cells(cell, cols, rows);
        let mut label = vec![0u32; active.len()];
        let mut regions = Vec::new();
        let mut stack = Vec::new();
        let min_area =
            self.settings.min_view_fraction * f64::from(self.width) * f64::from(self.height);
        for start in 0..active.len() {
            if !active[start] || label[start] != 0 {
                continue;
            }
            let id = regions.len() as u32 + 1;
            let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
            label[start] = id;
            stack.push(start);
            while let Some(c) = stack.pop() {
                let (cx, cy) = (c as u32 % cols, c as u32 / cols);
                (x0, y0, x1, y1) = (x0.min(cx), y0.min(cy), x1.max(cx), y1.max(cy));
                for (nx, ny) in neighbours(cx, cy, cols, rows) {
                    let n = (ny * cols + nx) as usize;
                    if active[n] && label[n] == 0 {
                        label[n] = id;
                        stack.push(n);
                    }
                }
            }
            let cells = Rect::new(
                x0 * cell,
                y0 * cell,
                (x1 - x0 + 1) * cell,
                (y1 - y0 + 1) * cell,
            );
            regions.push(self.refine(&cells));
        }
        regions
            .into_iter()
            .flatten()
            .filter(|r| {
                r.area() as f64 >= min_area
                    && r.w >= self.settings.min_view_side
                    && r.h >= self.settings.min_view_side
            })
            .collect()
    }

    fn active_cells(&self, cell: u32, cols: u32, rows: u32) -> Vec<bool> {
        let mut counts = vec![0u32; (cols * rows) as usize];
        for y in 0..self.height {
            for x in 0..self.width {
                if self.is_active((y * self.width + x) as usize) {
                    counts[((y / cell) * cols + x / cell) as usize] += 1;
                }
            }
        }
        counts
            .iter()
            .enumerate()
            .map(|(c, &count)| {
                let (cx, cy) = (c as u32 % cols, c as u32 / cols);
                let w = cell.min(self.width - cx * cell);
                let h = cell.min(self.height - cy * cell);
                f64::from(count) >= self.settings.cell_active_fraction * f64::from(w * h)
            })
            .collect()
    }

    /// Bounding box of the active pixels inside `cells` (clipped to the frame), cut at
    /// fully inactive pixel rows and columns to the run with the most active pixels.
    /// The cut separates a view from text that touches it at cell resolution.
    fn refine(&self, cells: &Rect) -> Option<Rect> {
        let x_end = cells.right().min(u64::from(self.width)) as u32;
        let y_end = cells.bottom().min(u64::from(self.height)) as u32;
        let mut rect = Rect::new(
            cells.x,
            cells.y,
            x_end.checked_sub(cells.x)?,
            y_end.checked_sub(cells.y)?,
        );
        for _ in 0..2 {
            let rows: Vec<u32> = (rect.y..rect.bottom() as u32)
                .map(|y| self.active_in_row(y, rect.x, rect.right() as u32))
                .collect();
            let (start, len) = busiest_run(&rows)?;
            rect = Rect::new(rect.x, rect.y + start, rect.w, len);
            let cols: Vec<u32> = (rect.x..rect.right() as u32)
                .map(|x| self.active_in_column(x, rect.y, rect.bottom() as u32))
                .collect();
            let (start, len) = busiest_run(&cols)?;
            rect = Rect::new(rect.x + start, rect.y, len, rect.h);
        }
        Some(rect)
    }

    fn active_in_row(&self, y: u32, x_start: u32, x_end: u32) -> u32 {
        (x_start..x_end)
            .filter(|&x| self.is_active((y * self.width + x) as usize))
            .count() as u32
    }

    fn active_in_column(&self, x: u32, y_start: u32, y_end: u32) -> u32 {
        (y_start..y_end)
            .filter(|&y| self.is_active((y * self.width + x) as usize))
            .count() as u32
    }
}

/// Start and length of the run of non-zero counts with the largest sum, or `None` when
/// every count is zero.
fn busiest_run(counts: &[u32]) -> Option<(u32, u32)> {
    let mut best: Option<(u32, u32, u64)> = None;
    let mut start = 0;
    let mut sum = 0u64;
    for (i, &count) in counts.iter().chain(std::iter::once(&0)).enumerate() {
        if count > 0 {
            if sum == 0 {
                start = i;
            }
            sum += u64::from(count);
            continue;
        }
        if sum > 0 && best.is_none_or(|(_, _, b)| sum > b) {
            best = Some((start as u32, (i - start) as u32, sum));
        }
        sum = 0;
    }
    best.map(|(start, len, _)| (start, len))
}

/// Lists the up to eight neighbours of cell (`x`, `y`) in a `cols` x `rows` grid.
fn neighbours(x: u32, y: u32, cols: u32, rows: u32) -> impl Iterator<Item = (u32, u32)> {
    (-1i64..=1)
        .flat_map(|dy| (-1i64..=1).map(move |dx| (dx, dy)))
        .filter(|&(dx, dy)| dx != 0 || dy != 0)
        .filter_map(move |(dx, dy)| {
            let (nx, ny) = (i64::from(x) + dx, i64::from(y) + dy);
            let inside = (0..i64::from(cols)).contains(&nx) && (0..i64::from(rows)).contains(&ny);
            inside.then_some((nx as u32, ny as u32))
        })
}
