//! Motion tracking by block matching on the tissue view.
//!
//! A block at the centre of the view in a reference frame is searched for in each new
//! frame over a small window of shifts. The match score is the normalised
//! cross-correlation (NCC) of grey levels, computed on every `sample_step`-th pixel in
//! both directions. The search runs coarse to fine: every second shift first, then the
//! eight neighbours of the best one. The coarse pass relies on speckle grains at least
//! 2 pixels wide, as scan conversion to screen pixels leaves them. All buffers are sized once, at construction.

use crate::frame::{rgb_to_luma, Frame, PixelFormat};
use crate::geometry::Rect;

/// Block size, search range and the thresholds of the motion flag.
#[derive(Clone, Debug)]
pub struct MotionSettings {
    /// Side of the matched block in pixels, before clipping to half the view's shorter
    /// side. Default 128.
    pub block_px: u32,
    /// Largest shift searched in each direction, in pixels. Default 8.
    pub search_px: u32,
    /// Pixel step of the NCC sums inside the block. Default 2.
    pub sample_step: u32,
    /// A shift longer than this (Euclidean, pixels) flags motion. Default 2.0: tissue
    /// whose speckle decorrelates between frames jitters by a pixel at rest.
    pub max_shift_px: f64,
    /// An NCC below this flags motion on a B-mode view. Default 0.5.
    pub min_ncc: f64,
    /// Standard deviation of grey levels below which a block has too little texture to
    /// match, so no estimate is made. Default 3.
    pub min_texture: f64,
}

impl Default for MotionSettings {
    fn default() -> MotionSettings {
        MotionSettings {
            block_px: 128,
            search_px: 8,
            sample_step: 2,
            max_shift_px: 2.0,
            min_ncc: 0.5,
            min_texture: 3.0,
        }
    }
}

/// Best match of the reference block in one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionEstimate {
    /// Shift of the tissue in pixels, right and down positive.
    pub dx: i32,
    pub dy: i32,
    /// NCC at that shift, from -1 to 1.
    pub ncc: f64,
}

impl MotionEstimate {
    pub fn shift_px(&self) -> f64 {
        f64::from(self.dx).hypot(f64::from(self.dy))
    }
}

/// Reference block and search buffers for one view.
#[derive(Clone, Debug)]
pub struct MotionTracker {
    settings: MotionSettings,
    /// Reference block in full-frame pixels.
    block: Rect,
    /// Block plus the search margin, in full-frame pixels.
    region: Rect,
    reference: Vec<u8>,
    reference_sum: i64,
    reference_norm: f64,
    has_reference: bool,
    /// Luma of `region` in the current frame.
    current: Vec<u8>,
    samples_per_side: u32,
}

impl MotionTracker {
    /// Creates a tracker for `view`, or returns `None` when the view is too small for a
    /// block of 16 pixels plus the search margin.
    pub fn new(view: Rect, settings: MotionSettings) -> Option<MotionTracker> {
        let search = settings.search_px;
        let step = settings.sample_step.max(1);
        let room = view.w.min(view.h).checked_sub(2 * search)?;
        // Half the view's shorter side keeps the block inside a sector fan, whose
        // static edges would otherwise pin the match at zero shift.
        let side = settings.block_px.min(room).min(view.w.min(view.h) / 2) / step * step;
        if side < 16 {
            return None;
        }
        let block = Rect::new(
            view.x + (view.w - side) / 2,
            view.y + (view.h - side) / 2,
            side,
            side,
        );
        let region = Rect::new(
            block.x - search,
            block.y - search,
            side + 2 * search,
            side + 2 * search,
        );
        let samples_per_side = side / step;
        Some(MotionTracker {
            settings: MotionSettings {
                sample_step: step,
                ..settings
            },
            block,
            region,
            reference: vec![0; (samples_per_side * samples_per_side) as usize],
            reference_sum: 0,
            reference_norm: 0.0,
            has_reference: false,
            current: vec![0; region.area() as usize],
            samples_per_side,
        })
    }

    pub fn settings(&self) -> &MotionSettings {
        &self.settings
    }

    pub fn has_reference(&self) -> bool {
        self.has_reference
    }

    /// Matches `frame` against the reference. When there is no reference yet, `frame`
    /// becomes it if its block has enough texture.
    ///
    /// Returns `None` while there is no reference, and for a frame whose block has too
    /// little texture to match (a black or flat frame). The frame must have the size the
    /// view was given in.
    pub fn update(&mut self, frame: &Frame) -> Option<MotionEstimate> {
        self.load_region(frame);
        if !self.has_reference {
            self.take_reference();
            return self.has_reference.then_some(MotionEstimate {
                dx: 0,
                dy: 0,
                ncc: 1.0,
            });
        }
        self.search()
    }

    fn load_region(&mut self, frame: &Frame) {
        let width = self.region.w as usize;
        for row in 0..self.region.h {
            let y = self.region.y + row;
            let line = frame.row(y);
            let out = &mut self.current[row as usize * width..(row as usize + 1) * width];
            let x0 = self.region.x as usize;
            match frame.format {
                PixelFormat::Gray8 => out.copy_from_slice(&line[x0..x0 + width]),
                PixelFormat::Rgb8 => {
                    let rgb = &line[3 * x0..3 * (x0 + width)];
                    for (luma, pixel) in out.iter_mut().zip(rgb.chunks_exact(3)) {
                        *luma = rgb_to_luma(pixel[0], pixel[1], pixel[2]);
                    }
                }
            }
        }
    }

    fn take_reference(&mut self) {
        let search = self.settings.search_px as i32;
        let mut sum = 0i64;
        let mut sum_squares = 0i64;
        for (k, (x, y)) in self.sample_points(search, search).enumerate() {
            let value = self.current[y * self.region.w as usize + x];
            self.reference[k] = value;
            sum += i64::from(value);
            sum_squares += i64::from(value) * i64::from(value);
        }
        let n = self.reference.len() as i64;
        let variance = n * sum_squares - sum * sum;
        if standard_deviation(variance, n) < self.settings.min_texture {
            return;
        }
        self.reference_sum = sum;
        self.reference_norm = (variance as f64).sqrt();
        self.has_reference = true;
    }

    fn search(&self) -> Option<MotionEstimate> {
        let search = self.settings.search_px as i32;
        let mut best: Option<MotionEstimate> = None;
        let consider = |dx: i32, dy: i32, best: &mut Option<MotionEstimate>| {
            if dx.abs() > search || dy.abs() > search {
                return;
            }
            if let Some(ncc) = self.ncc_at(dx, dy) {
                if best.is_none_or(|b| ncc > b.ncc) {
                    *best = Some(MotionEstimate { dx, dy, ncc });
                }
            }
        };
        for dy in (-search..=search).step_by(2) {
            for dx in (-search..=search).step_by(2) {
                consider(dx, dy, &mut best);
            }
        }
        let coarse = best?;
        for dy in -1..=1 {
            for dx in -1..=1 {
                if dx != 0 || dy != 0 {
                    consider(coarse.dx + dx, coarse.dy + dy, &mut best);
                }
            }
        }
        best
    }

    /// NCC of the reference with the block shifted by (`dx`, `dy`), or `None` when the
    /// shifted block is flat.
    fn ncc_at(&self, dx: i32, dy: i32) -> Option<f64> {
        let search = self.settings.search_px as i32;
        let width = self.region.w as usize;
        let step = self.settings.sample_step as usize;
        let count = self.samples_per_side as usize;
        let x0 = (search + dx) as usize;
        let y0 = (search + dy) as usize;
        // Row sums fit in u32: a row has at most 7680 samples (the widest frame the
        // source limits allow) of at most 255^2 each.
        let (mut sum, mut sum_squares, mut cross) = (0u64, 0u64, 0u64);
        for (j, reference_row) in self.reference.chunks_exact(count).enumerate() {
            let start = (y0 + j * step) * width + x0;
            let row = &self.current[start..start + (count - 1) * step + 1];
            let (mut row_sum, mut row_squares, mut row_cross) = (0u32, 0u32, 0u32);
            for (&value, &reference) in row.iter().step_by(step).zip(reference_row) {
                let value = u32::from(value);
                row_sum += value;
                row_squares += value * value;
                row_cross += value * u32::from(reference);
            }
            sum += u64::from(row_sum);
            sum_squares += u64::from(row_squares);
            cross += u64::from(row_cross);
        }
        let (sum, sum_squares, cross) = (sum as i64, sum_squares as i64, cross as i64);
        let n = self.reference.len() as i64;
        let variance = n * sum_squares - sum * sum;
        if standard_deviation(variance, n) < self.settings.min_texture {
            return None;
        }
        let covariance = (n * cross - sum * self.reference_sum) as f64;
        Some(covariance / (self.reference_norm * (variance as f64).sqrt()))
    }

    /// Sample positions of the block whose top-left corner is at (`x0`, `y0`) in the
    /// region buffer.
    fn sample_points(&self, x0: i32, y0: i32) -> impl Iterator<Item = (usize, usize)> {
        let step = self.settings.sample_step as usize;
        let count = self.samples_per_side as usize;
        let (x0, y0) = (x0 as usize, y0 as usize);
        (0..count).flat_map(move |j| (0..count).map(move |i| (x0 + i * step, y0 + j * step)))
    }

    /// Returns the block searched, in full-frame pixels.
    pub fn block(&self) -> Rect {
        self.block
    }
}

/// Standard deviation from `n * sum(x^2) - sum(x)^2` and `n`.
fn standard_deviation(scaled_variance: i64, n: i64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    (scaled_variance.max(0) as f64).sqrt() / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random texture box-blurred over 5x5 pixels: speckle with a grain of a few pixels,
    /// as scan conversion leaves it.
    fn speckle(width: u32, height: u32, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let noise: Vec<f64> = (0..width * height)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let (w, h) = (width as i32, height as i32);
        let mut out = Vec::with_capacity(noise.len());
        for y in 0..h {
            for x in 0..w {
                let mut sum = 0.0;
                for (dx, dy) in (-2..=2).flat_map(|dy| (-2..=2).map(move |dx| (dx, dy))) {
                    let (sx, sy) = ((x + dx).clamp(0, w - 1), (y + dy).clamp(0, h - 1));
                    sum += noise[(sy * w + sx) as usize];
                }
                out.push((125.0 + 510.0 * (sum / 25.0 - 0.5)).clamp(0.0, 255.0) as u8);
            }
        }
        out
    }

    fn shifted(texture: &[u8], width: u32, height: u32, dx: i32, dy: i32) -> Frame {
        let mut frame = Frame::new(width, height, PixelFormat::Gray8);
        for y in 0..height as i32 {
            for x in 0..width as i32 {
                let sx = (x - dx).clamp(0, width as i32 - 1);
                let sy = (y - dy).clamp(0, height as i32 - 1);
                frame.data[(y * width as i32 + x) as usize] =
                    texture[(sy * width as i32 + sx) as usize];
            }
        }
        frame
    }

    #[test]
    fn finds_known_shifts() {
        let (width, height) = (200, 160);
        let texture = speckle(width, height, 3);
        let view = Rect::new(0, 0, width, height);
        let mut tracker = MotionTracker::new(view, MotionSettings::default()).unwrap();
        tracker.update(&shifted(&texture, width, height, 0, 0));
        for (dx, dy) in [(0, 0), (3, -2), (-7, 5), (8, 8), (1, 0)] {
            let estimate = tracker
                .update(&shifted(&texture, width, height, dx, dy))
                .unwrap();
            assert_eq!((estimate.dx, estimate.dy), (dx, dy));
            assert!(estimate.ncc > 0.99, "ncc {}", estimate.ncc);
        }
    }

    #[test]
    fn unrelated_texture_has_low_ncc() {
        let (width, height) = (200, 160);
        let view = Rect::new(0, 0, width, height);
        let mut tracker = MotionTracker::new(view, MotionSettings::default()).unwrap();
        tracker.update(&shifted(&speckle(width, height, 1), width, height, 0, 0));
        let other = tracker.update(&shifted(&speckle(width, height, 2), width, height, 0, 0));
        assert!(other.unwrap().ncc < 0.2);
    }

    #[test]
    fn flat_frame_gives_no_estimate() {
        let view = Rect::new(0, 0, 100, 100);
        let mut tracker = MotionTracker::new(view, MotionSettings::default()).unwrap();
        assert!(tracker
            .update(&Frame::new(100, 100, PixelFormat::Gray8))
            .is_none());
        assert!(!tracker.has_reference());
    }

    #[test]
    fn tiny_view_has_no_tracker() {
        assert!(MotionTracker::new(Rect::new(0, 0, 30, 30), MotionSettings::default()).is_none());
    }
}
