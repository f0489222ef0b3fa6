//! The frames that may become the peak frame, kept until the peak is confirmed.
//!
//! A live stream cannot be read again, so the region the features come from is copied
//! out of the brightest frames as they pass. The store keeps the frames with the highest
//! ROI power in a fixed number of preallocated slots. When the peak is confirmed, the
//! analysis of the whole curve names the peak frame, and the store returns that frame or
//! the stored one nearest to it in time.

use crate::frame::{Frame, PixelFormat};
use crate::geometry::Rect;

/// Slots kept at most.
pub const MAX_SLOTS: usize = 48;
/// Slots kept at least, whatever the region's size.
const MIN_SLOTS: usize = 4;
/// Memory the slots may take together, bytes. With a 1920x1080 RGB contrast view
/// (6 MiB a slot) this allows 10 slots, and with a 256x256 ROI all 48.
pub const SLOT_BUDGET_BYTES: usize = 64 << 20;

/// One stored region with the frame it came from.
#[derive(Debug)]
pub struct Candidate {
    pub index: u64,
    pub time_s: f64,
    /// The ranking key: the frame's ROI power, or its strongest local enhancement
    /// while the ROI is still to be proposed.
    pub power: f64,
    /// The region's pixels, `region.w` x `region.h`.
    pub crop: Frame,
}

/// Top frames by ROI power, each as a copy of one region.
#[derive(Debug)]
pub struct PeakCandidates {
    region: Rect,
    slots: Vec<Candidate>,
    used: usize,
}

impl PeakCandidates {
    /// Preallocates the slots for crops of `region` in `format`.
    pub fn new(region: Rect, format: PixelFormat) -> PeakCandidates {
        let slot_bytes = (region.w as usize * region.h as usize * format.bytes_per_pixel()).max(1);
        let count = (SLOT_BUDGET_BYTES / slot_bytes).clamp(MIN_SLOTS, MAX_SLOTS);
        let slots = (0..count)
            .map(|_| Candidate {
                index: 0,
                time_s: 0.0,
                power: f64::NEG_INFINITY,
                crop: Frame::new(region.w, region.h, format),
            })
            .collect();
        PeakCandidates {
            region,
            slots,
            used: 0,
        }
    }

    pub fn region(&self) -> Rect {
        self.region
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Keeps the region of `frame` when its power ranks among the stored ones, replacing
    /// the weakest; returns whether it was kept. The frame must cover the region.
    pub fn offer(&mut self, frame: &Frame, power: f64) -> bool {
        if !power.is_finite() || !self.covers(frame) {
            return false;
        }
        let position = if self.used < self.slots.len() {
            self.used += 1;
            self.used - 1
        } else {
            let (weakest, slot) = self
                .slots
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.power.total_cmp(&b.1.power))
                .expect("at least MIN_SLOTS slots");
            if slot.power >= power {
                return false;
            }
            weakest
        };

        let slot = &mut self.slots[position];
        slot.index = frame.index;
        slot.time_s = frame.time_s;
        slot.power = power;
        copy_region(frame, self.region, &mut slot.crop);
        true
    }

    /// Returns the stored frame nearest in time to `time_s`, preferring `index` itself.
    pub fn nearest(&self, index: u64, time_s: f64) -> Option<&Candidate> {
        let stored = &self.slots[..self.used];
        stored
            .iter()
            .find(|c| c.index == index)
            .or_else(|| self.nearest_in_time(time_s))
    }

    /// Returns the stored frame with the highest ranking key.
    pub fn strongest(&self) -> Option<&Candidate> {
        self.slots[..self.used]
            .iter()
            .max_by(|a, b| a.power.total_cmp(&b.power))
    }

    /// Returns the stored frame nearest in time to `time_s`.
    pub fn nearest_in_time(&self, time_s: f64) -> Option<&Candidate> {
        self.slots[..self.used].iter().min_by(|a, b| {
            (a.time_s - time_s)
                .abs()
                .total_cmp(&(b.time_s - time_s).abs())
        })
    }

    /// Forgets every stored frame, keeping the slots' buffers.
    pub fn clear(&mut self) {
        self.used = 0;
        for slot in &mut self.slots {
            slot.power = f64::NEG_INFINITY;
        }
    }

    fn covers(&self, frame: &Frame) -> bool {
        let format_matches = self
            .slots
            .first()
            .is_some_and(|slot| slot.crop.format == frame.format);
        format_matches
            && u64::from(frame.width) >= self.region.right()
            && u64::from(frame.height) >= self.region.bottom()
            && frame.data.len() >= frame.stride() * frame.height as usize
    }
}

/// Copies `region` of `frame` into `crop`, whose buffer already has the region's size.
fn copy_region(frame: &Frame, region: Rect, crop: &mut Frame) {
    crop.index = frame.index;
    crop.time_s = frame.time_s;
    let bytes_per_pixel = frame.format.bytes_per_pixel();
    let row_bytes = region.w as usize * bytes_per_pixel;
    let start = region.x as usize * bytes_per_pixel;
    for (row, y) in crop
        .data
        .chunks_exact_mut(row_bytes)
        .zip(region.y..region.y + region.h)
    {
        row.copy_from_slice(&frame.row(y)[start..start + row_bytes]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(index: u64, value: u8) -> Frame {
        let mut frame = Frame::new(32, 24, PixelFormat::Gray8);
        frame.index = index;
        frame.time_s = index as f64 * 0.1;
        frame.data.fill(value);
        frame
    }

    #[test]
    fn keeps_the_strongest_frames() {
        let region = Rect::new(4, 4, 8, 8);
        let mut store = PeakCandidates::new(region, PixelFormat::Gray8);
        let capacity = store.capacity() as u64;
        for index in 0..capacity * 2 {
            store.offer(&frame(index, index as u8), index as f64);
        }
        assert_eq!(store.len(), capacity as usize);
        assert!(store.nearest(0, 0.0).unwrap().index >= capacity);
        let last = store.nearest(capacity * 2 - 1, 0.0).unwrap();
        assert_eq!(last.index, capacity * 2 - 1);
        assert!(last
            .crop
            .data
            .iter()
            .all(|&v| v == (capacity * 2 - 1) as u8));
    }

    #[test]
    fn crop_is_the_region() {
        let region = Rect::new(2, 3, 4, 2);
        let mut source = Frame::new(8, 6, PixelFormat::Gray8);
        for (i, value) in source.data.iter_mut().enumerate() {
            *value = i as u8;
        }
        let mut store = PeakCandidates::new(region, PixelFormat::Gray8);
        assert!(store.offer(&source, 1.0));
        let crop = &store.nearest(0, 0.0).unwrap().crop;
        assert_eq!(crop.data, [26, 27, 28, 29, 34, 35, 36, 37]);
    }

    #[test]
    fn nearest_prefers_exact_index_then_time() {
        let mut store = PeakCandidates::new(Rect::new(0, 0, 4, 4), PixelFormat::Gray8);
        store.offer(&frame(10, 1), 1.0);
        store.offer(&frame(20, 1), 2.0);
        assert_eq!(store.nearest(20, 0.0).unwrap().index, 20);
        assert_eq!(store.nearest(14, 1.4).unwrap().index, 10);
        assert_eq!(store.nearest_in_time(1.9).unwrap().index, 20);
        assert_eq!(store.strongest().unwrap().index, 20);
    }

    #[test]
    fn frames_not_covering_the_region_are_refused() {
        let mut store = PeakCandidates::new(Rect::new(20, 20, 16, 16), PixelFormat::Gray8);
        assert!(!store.offer(&frame(0, 1), 1.0));
        let mut rgb = PeakCandidates::new(Rect::new(0, 0, 4, 4), PixelFormat::Rgb8);
        assert!(!rgb.offer(&frame(0, 1), 1.0));
        assert!(store.is_empty());
    }

    #[test]
    fn slot_count_follows_the_budget() {
        let large = PeakCandidates::new(Rect::new(0, 0, 1920, 1080), PixelFormat::Rgb8);
        assert_eq!(large.capacity(), SLOT_BUDGET_BYTES / (1920 * 1080 * 3));
        let small = PeakCandidates::new(Rect::new(0, 0, 64, 64), PixelFormat::Gray8);
        assert_eq!(small.capacity(), MAX_SLOTS);
    }
}
