//! Frame flags: frames that must not enter the fit or be chosen as the peak.
//!
//! The evidence for black and frozen frames is measured as frames arrive. A flash needs
//! the frames around it, so [`flag_flashes`] runs once the curve is complete. Motion comes from
//! [`super::motion`].

use serde::Serialize;

/// A set of reasons to reject one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameFlags(u8);

impl FrameFlags {
    /// The contrast view jumped far above its running median and came back: a
    /// destruction flash or a gain change.
    pub const FLASH: FrameFlags = FrameFlags(1);
    /// The views have been byte for byte identical for longer than
    /// [`FlagSettings::freeze_after_s`]: a frozen scanner.
    pub const FROZEN: FrameFlags = FrameFlags(2);
    /// The view is black: the probe is off the patient.
    pub const BLACK: FrameFlags = FrameFlags(4);
    /// The tissue moved against the reference frame, or no longer matches it.
    pub const MOTION: FrameFlags = FrameFlags(8);

    const NAMES: [(FrameFlags, &'static str); 4] = [
        (FrameFlags::FLASH, "flash"),
        (FrameFlags::FROZEN, "frozen"),
        (FrameFlags::BLACK, "black"),
        (FrameFlags::MOTION, "motion"),
    ];

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: FrameFlags) -> bool {
        self.0 & other.0 == other.0 && !other.is_empty()
    }

    pub fn insert(&mut self, other: FrameFlags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: FrameFlags) {
        self.0 &= !other.0;
    }

    /// Names of the flags set, in the order flash, frozen, black, motion.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        FrameFlags::NAMES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }

    /// Joins the flag names with `|`, giving an empty string when none is set.
    pub fn joined(self) -> String {
        self.names().collect::<Vec<_>>().join("|")
    }
}

impl Serialize for FrameFlags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.names())
    }
}

/// Thresholds of the flash, black and frozen tests.
#[derive(Clone, Debug)]
pub struct FlagSettings {
    /// A frame is a flash when the contrast view's mean linear power exceeds this many
    /// times the median of the frames around it. Default 2.0 (+3 dB).
    pub flash_ratio: f64,
    /// Frames on each side of a frame in the flash median. A flash shorter than this
    /// many frames is still caught: 10 covers a 0.4 s flash at 25 fps. Default 10.
    pub flash_half_window: usize,
    /// A frame is black when the grey level at [`FlagSettings::black_percentile`] of
    /// the tissue view (the B-mode view of a dual layout, else the contrast view) is at
    /// most this. Default 12.
    pub black_level: u8,
    /// Percentile of the black test, from 0 to 1. Default 0.99, so the sector's
    /// background and a few bright specks do not matter.
    pub black_percentile: f64,
    /// Whether frames that repeat their predecessor for longer than
    /// [`FlagSettings::freeze_after_s`] are flagged frozen. Default true.
    pub detect_frozen: bool,
    /// Seconds a run of identical frames may last before its frames count as a frozen
    /// image. Shorter runs are what a capture card running faster than the scanner
    /// delivers (a 10 fps image captured at 60 Hz repeats each frame six times), so their
    /// repeats are skipped as no new sample rather than flagged. Default 0.5, longer than
    /// one frame of a scanner at 2 fps or more.
    pub freeze_after_s: f64,
}

impl Default for FlagSettings {
    fn default() -> FlagSettings {
        FlagSettings {
            flash_ratio: 2.0,
            flash_half_window: 10,
            black_level: 12,
            black_percentile: 0.99,
            detect_frozen: true,
            freeze_after_s: 0.5,
        }
    }
}

/// A 256-bin grey-level histogram, filled without allocating.
#[derive(Clone, Debug)]
pub struct Histogram {
    bins: [u32; 256],
    total: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            bins: [0; 256],
            total: 0,
        }
    }
}

impl Histogram {
    pub fn clear(&mut self) {
        self.bins = [0; 256];
        self.total = 0;
    }

    #[inline]
    pub fn add(&mut self, grey: u8) {
        self.bins[usize::from(grey)] += 1;
        self.total += 1;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Mean of `value(grey)` over the samples, or 0 when empty.
    pub fn mean_of(&self, value: impl Fn(u8) -> f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let sum: f64 = (0..=255u8)
            .map(|grey| f64::from(self.bins[usize::from(grey)]) * value(grey))
            .sum();
        sum / self.total as f64
    }

    /// Smallest grey level with at least `fraction` of the samples at or below it, or 0
    /// when empty.
    pub fn percentile(&self, fraction: f64) -> u8 {
        let target_count = (fraction.clamp(0.0, 1.0) * self.total as f64).ceil() as u64;
        let mut seen = 0u64;
        for grey in 0..=255u8 {
            seen += u64::from(self.bins[usize::from(grey)]);
            if seen >= target_count.max(1) {
                return grey;
            }
        }
        255
    }
}

/// Flags as flash every unflagged frame whose view power exceeds `flash_ratio` times
/// the median view power of the unflagged frames within `flash_half_window` on each
/// side (the frame itself left out).
///
/// A centred median follows a steady wash-in or wash-out, so only a short excursion
/// that comes back exceeds it. `scratch` is reused for the window.
pub fn flag_flashes(
    view_power: &[f64],
    flags: &mut [FrameFlags],
    settings: &FlagSettings,
    scratch: &mut Vec<f64>,
) {
    let half = settings.flash_half_window.max(1);
    let mut flash = vec![false; view_power.len()];
    for (i, &power) in view_power.iter().enumerate() {
        if !flags[i].is_empty() {
            continue;
        }
        scratch.clear();
        let start = i.saturating_sub(half);
        let end = (i + half + 1).min(view_power.len());
        for j in (start..end).filter(|&j| j != i && flags[j].is_empty()) {
            scratch.push(view_power[j]);
        }
        if scratch.len() < 2 {
            continue;
        }
        let median = median_in_place(scratch);
        flash[i] = power > settings.flash_ratio * median;
    }
    for (flag, is_flash) in flags.iter_mut().zip(flash) {
        if is_flash {
            flag.insert(FrameFlags::FLASH);
        }
    }
}

/// Median of `values` (reordered), or 0 when empty.
pub fn median_in_place(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    }
}

/// 64-bit hash of the bytes of `rect` (rows of `stride` bytes, `bytes_per_pixel` per
/// pixel) in `data`, for the frozen test.
///
/// It is a multiply-xorshift hash over 8-byte words, not a cryptographic one: two
/// different views collide with a chance near 2^-64, and a collision only drops one
/// frame from the curve.
pub fn hash_rect(
    data: &[u8],
    stride: usize,
    bytes_per_pixel: usize,
    rect: &crate::geometry::Rect,
) -> u64 {
    let row_bytes = rect.w as usize * bytes_per_pixel;
    // Four independent lanes keep the multiplier busy; they are folded at the end.
    let mut lanes = [
        0xCBF2_9CE4_8422_2325u64,
        0x8422_2325_CBF2_9CE4,
        0x9CE4_8422_2325_CBF2,
        0x2325_CBF2_9CE4_8422,
    ];
    let mut tail = 0x1000_0000_01B3u64;
    for y in rect.y..rect.bottom() as u32 {
        let start = y as usize * stride + rect.x as usize * bytes_per_pixel;
        let Some(row) = data.get(start..start + row_bytes) else {
            break;
        };
        let mut blocks = row.chunks_exact(32);
        for block in &mut blocks {
            for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
                *lane = mix(*lane, read_word(word));
            }
        }
        for &byte in blocks.remainder() {
            tail = mix(tail, u64::from(byte));
        }
        tail = mix(tail, u64::from(y));
    }
    lanes
        .iter()
        .fold(tail, |hash, &lane| mix(hash.rotate_left(23), lane))
}

#[inline]
fn mix(hash: u64, word: u64) -> u64 {
    const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
    let hash = (hash ^ word).wrapping_mul(MULTIPLIER);
    hash ^ (hash >> 29)
}

#[inline]
fn read_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_stands_out_of_a_rising_curve() {
        let mut power: Vec<f64> = (0..60).map(|i| 1.0 + 0.2 * i as f64).collect();
        power[30] *= 5.0;
        power[31] *= 4.0;
        let mut flags = vec![FrameFlags::default(); power.len()];
        flag_flashes(
            &power,
            &mut flags,
            &FlagSettings::default(),
            &mut Vec::new(),
        );
        let flashes: Vec<usize> = (0..60)
            .filter(|&i| flags[i].contains(FrameFlags::FLASH))
            .collect();
        assert_eq!(flashes, vec![30, 31]);
    }

    #[test]
    fn steep_bolus_is_not_a_flash() {
        // A gamma-variate bolus rising 100-fold to its peak at 3 s, sampled at 10 fps.
        let power: Vec<f64> = (0..100)
            .map(|i| {
                let t = i as f64 / 10.0;
                1e-4 + 1e-2 * (t / 3.0).powi(3) * (3.0 * (1.0 - t / 3.0)).exp()
            })
            .collect();
        let mut flags = vec![FrameFlags::default(); power.len()];
        flag_flashes(
            &power,
            &mut flags,
            &FlagSettings::default(),
            &mut Vec::new(),
        );
        assert!(flags.iter().all(|f| f.is_empty()));
    }

    #[test]
    fn histogram_percentile_and_mean() {
        let mut histogram = Histogram::default();
        for grey in 0..100u8 {
            histogram.add(grey);
        }
        assert_eq!(histogram.percentile(0.5), 49);
        assert_eq!(histogram.percentile(1.0), 99);
        assert!((histogram.mean_of(f64::from) - 49.5).abs() < 1e-12);
    }

    #[test]
    fn hash_sees_one_changed_byte() {
        // 70 bytes per row: two 32-byte blocks and a 6-byte remainder.
        let rect = crate::geometry::Rect::new(1, 1, 70, 3);
        let mut data = vec![7u8; 80 * 5];
        let before = hash_rect(&data, 80, 1, &rect);
        for offset in [2 * 80 + 5, 3 * 80 + 40, 3 * 80 + 68] {
            data[offset] = 8;
            assert_ne!(before, hash_rect(&data, 80, 1, &rect), "offset {offset}");
            data[offset] = 7;
        }
        data[0] = 9;
        assert_eq!(before, hash_rect(&data, 80, 1, &rect));
    }

    #[test]
    fn flag_names_in_order() {
        let mut flags = FrameFlags::default();
        flags.insert(FrameFlags::MOTION);
        flags.insert(FrameFlags::FLASH);
        assert_eq!(flags.joined(), "flash|motion");
    }
}
