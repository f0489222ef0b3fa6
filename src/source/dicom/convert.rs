//! From stored sample bytes to raw samples, and from raw samples to 8-bit display frames.
//!
//! Display rule for samples wider than 8 bits: monochrome data with a Window Center/Width
//! goes through the rescale and the linear VOI window of PS3.3 C.11.2.1.2; everything else
//! maps the Bits Stored range linearly onto 0..=255. 8-bit samples pass unchanged, so a
//! scanner's grey levels reach the time-intensity curve as recorded. MONOCHROME1 is inverted
//! after that mapping.

use super::header::{DicomHeader, Photometric};
use super::palette::Palette;
use crate::frame::{Frame, PixelFormat};

/// Decoded samples of one frame, pixel-interleaved, before any display mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum RawSamples {
    /// Bits Allocated 8.
    U8(Vec<u8>),
    /// Bits Allocated 16.
    U16(Vec<u16>),
}

/// One frame of samples as stored: shifted down to bit 0 and masked to Bits Stored, with
/// planar data interleaved and YBR_FULL_422 pairs expanded to one Y, Cb, Cr per pixel.
///
/// `photometric` is the colour model of `samples`. It is the file's, except for JPEG
/// Baseline, whose decoder already yields RGB from YBR data.
#[derive(Clone, Debug, PartialEq)]
pub struct RawFrame {
    pub index: u64,
    pub time_s: f64,
    pub width: u32,
    pub height: u32,
    pub samples_per_pixel: u16,
    pub photometric: Photometric,
    pub samples: RawSamples,
}

impl RawFrame {
    /// An empty frame to hand to [`super::DicomSource::read_raw_frame`].
    pub fn empty() -> RawFrame {
        RawFrame {
            index: 0,
            time_s: 0.0,
            width: 0,
            height: 0,
            samples_per_pixel: 1,
            photometric: Photometric::Monochrome2,
            samples: RawSamples::U8(Vec::new()),
        }
    }

    /// Sample `s` of pixel (`x`, `y`) widened to u16, `None` outside the frame.
    pub fn sample(&self, x: u32, y: u32, s: u16) -> Option<u16> {
        if x >= self.width || y >= self.height || s >= self.samples_per_pixel {
            return None;
        }
        let pixel = y as usize * self.width as usize + x as usize;
        let i = pixel * usize::from(self.samples_per_pixel) + usize::from(s);
        match &self.samples {
            RawSamples::U8(v) => v.get(i).map(|&b| u16::from(b)),
            RawSamples::U16(v) => v.get(i).copied(),
        }
    }
}

/// How stored bytes are laid out, from the header and the codec that produced them.
#[derive(Clone, Copy, Debug)]
pub struct StoredLayout {
    pub big_endian: bool,
    /// Colour planes one after the other (Planar Configuration 1).
    pub planar: bool,
    /// Y1 Y2 Cb Cr groups for each horizontal pair of pixels.
    pub subsampled_422: bool,
}

/// Turns the bytes of one frame into raw samples in `out`.
///
/// `bytes` holds at least the frame's samples; the header has been validated so the
/// sizes agree (the caller checks the length before calling).
pub fn unpack_samples(
    header: &DicomHeader,
    layout: StoredLayout,
    bytes: &[u8],
    out: &mut RawSamples,
) {
    let pixels = header.rows as usize * header.columns as usize;
    let samples_per_pixel = usize::from(header.samples_per_pixel);
    let shift = header.high_bit + 1 - header.bits_stored;
    let mask = ((1u32 << header.bits_stored) - 1) as u16;

    let mut values: Vec<u16> = match header.bits_allocated {
        8 => bytes.iter().map(|&b| u16::from(b)).collect(),
        _ => bytes
            .chunks_exact(2)
            .map(|pair| {
                let pair = [pair[0], pair[1]];
                if layout.big_endian {
                    u16::from_be_bytes(pair)
                } else {
                    u16::from_le_bytes(pair)
                }
            })
            .collect(),
    };
    if layout.subsampled_422 {
        values = expand_422(&values, pixels);
    } else {
        values.truncate(pixels * samples_per_pixel);
        if layout.planar && samples_per_pixel == 3 {
            values = interleave_planes(&values, pixels);
        }
    }
    for value in &mut values {
        *value = (*value >> shift) & mask;
    }

    *out = match header.bits_allocated {
        8 => RawSamples::U8(values.iter().map(|&v| v as u8).collect()),
        _ => RawSamples::U16(values),
    };
}

fn expand_422(values: &[u16], pixels: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(pixels * 3);
    for group in values.chunks_exact(4).take(pixels / 2) {
        let (y1, y2, cb, cr) = (group[0], group[1], group[2], group[3]);
        out.extend_from_slice(&[y1, cb, cr, y2, cb, cr]);
    }
    out
}

fn interleave_planes(values: &[u16], pixels: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(pixels * 3);
    for p in 0..pixels {
        out.extend_from_slice(&[values[p], values[pixels + p], values[2 * pixels + p]]);
    }
    out
}

/// Precomputed mapping from every stored value to 8-bit output.
#[derive(Clone, Debug)]
pub enum DisplayMap {
    /// One grey level per stored value (monochrome) or one level per channel value (RGB).
    Levels(Vec<u8>),
    /// YBR_FULL samples: each channel value to 8 bits, then YCbCr to RGB.
    Ybr(Vec<u8>),
    /// One RGB colour per stored palette index.
    Palette(Vec<[u8; 3]>),
}

impl DisplayMap {
    /// Builds the mapping for frames whose raw samples are in `photometric`.
    pub fn new(
        header: &DicomHeader,
        photometric: Photometric,
        palette: Option<&Palette>,
    ) -> DisplayMap {
        let values = 1usize << header.bits_stored;
        let signed = header.pixel_representation == 1;
        match photometric {
            Photometric::PaletteColor => {
                let colours = (0..values)
                    .map(|stored| {
                        let value = signed_value(stored as u16, header.bits_stored, signed);
                        palette.map_or([0; 3], |p| {
                            let shift = p.shift_to_8_bits();
                            p.lookup(value).map(|c| (c >> shift) as u8)
                        })
                    })
                    .collect();
                DisplayMap::Palette(colours)
            }
            Photometric::Monochrome1 | Photometric::Monochrome2 => {
                let mut levels = grey_levels(header);
                if photometric == Photometric::Monochrome1 {
                    levels.iter_mut().for_each(|l| *l = 255 - *l);
                }
                DisplayMap::Levels(levels)
            }
            Photometric::Rgb => DisplayMap::Levels(range_levels(header.bits_stored)),
            Photometric::YbrFull | Photometric::YbrFull422 => {
                DisplayMap::Ybr(range_levels(header.bits_stored))
            }
        }
    }

    /// Writes the display form of `raw` into `frame`: Gray8 for monochrome, Rgb8 otherwise.
    pub fn apply(&self, raw: &RawFrame, frame: &mut Frame) {
        let format = match self {
            DisplayMap::Levels(_) if raw.samples_per_pixel == 1 => PixelFormat::Gray8,
            _ => PixelFormat::Rgb8,
        };
        frame.reset(raw.width, raw.height, format);
        frame.index = raw.index;
        frame.time_s = raw.time_s;

        let level = |table: &[u8], v: u16| table.get(usize::from(v)).copied().unwrap_or(255);
        match (self, &raw.samples) {
            (DisplayMap::Levels(table), RawSamples::U8(samples)) => {
                for (out, &v) in frame.data.iter_mut().zip(samples) {
                    *out = level(table, u16::from(v));
                }
            }
            (DisplayMap::Levels(table), RawSamples::U16(samples)) => {
                for (out, &v) in frame.data.iter_mut().zip(samples) {
                    *out = level(table, v);
                }
            }
            (DisplayMap::Ybr(table), samples) => {
                for (p, out) in frame.data.chunks_exact_mut(3).enumerate() {
                    let s = |k: usize| level(table, sample_at(samples, 3 * p + k));
                    out.copy_from_slice(&ybr_full_to_rgb(s(0), s(1), s(2)));
                }
            }
            (DisplayMap::Palette(colours), samples) => {
                for (p, out) in frame.data.chunks_exact_mut(3).enumerate() {
                    let index = usize::from(sample_at(samples, p));
                    out.copy_from_slice(&colours.get(index).copied().unwrap_or([0; 3]));
                }
            }
        }
    }
}

fn sample_at(samples: &RawSamples, i: usize) -> u16 {
    match samples {
        RawSamples::U8(v) => v.get(i).map_or(0, |&b| u16::from(b)),
        RawSamples::U16(v) => v.get(i).copied().unwrap_or(0),
    }
}

/// The stored bit pattern as a number, sign-extended from `bits` when `signed`.
pub fn signed_value(stored: u16, bits: u16, signed: bool) -> i32 {
    let value = i32::from(stored);
    if signed && bits > 0 && value & (1 << (bits - 1)) != 0 {
        value - (1 << bits)
    } else {
        value
    }
}

/// Linear map of 0..2^bits onto 0..=255, rounded; the identity for 8 bits.
fn range_levels(bits: u16) -> Vec<u8> {
    let max = (1u32 << bits) - 1;
    (0..=max)
        .map(|v| ((v * 255 + max / 2) / max.max(1)) as u8)
        .collect()
}

fn grey_levels(header: &DicomHeader) -> Vec<u8> {
    let bits = header.bits_stored;
    let signed = header.pixel_representation == 1;
    let window = header.window.filter(|_| bits > 8);
    let Some(window) = window else {
        if !signed {
            return range_levels(bits);
        }
        // Signed data: the range -2^(bits-1)..2^(bits-1) maps onto 0..=255.
        let offset = 1i32 << (bits - 1);
        let unsigned = range_levels(bits);
        return (0..1u32 << bits)
            .map(|stored| {
                let value = signed_value(stored as u16, bits, true);
                unsigned[(value + offset) as usize]
            })
            .collect();
    };

    let (slope, intercept) = header.rescale.unwrap_or((1.0, 0.0));
    (0..1u32 << bits)
        .map(|stored| {
            let value = f64::from(signed_value(stored as u16, bits, signed));
            linear_window(value * slope + intercept, window.center, window.width)
        })
        .collect()
}

/// PS3.3 C.11.2.1.2.1 linear VOI function onto 0..=255.
fn linear_window(x: f64, center: f64, width: f64) -> u8 {
    let low = center - 0.5 - (width - 1.0) / 2.0;
    let high = center - 0.5 + (width - 1.0) / 2.0;
    if x <= low {
        0
    } else if x > high {
        255
    } else {
        let y = ((x - (center - 0.5)) / (width - 1.0) + 0.5) * 255.0;
        y.round().clamp(0.0, 255.0) as u8
    }
}

/// Full-range YCbCr to RGB (PS3.3 C.7.6.3.1.2, the inverse of the YBR_FULL equations),
/// rounded half up and clamped.
pub fn ybr_full_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let y = f64::from(y);
    let cb = f64::from(cb) - 128.0;
    let cr = f64::from(cr) - 128.0;
    let r = y + 1.402 * cr;
    let g = y - (0.114 * 1.772 / 0.587) * cb - (0.299 * 1.402 / 0.587) * cr;
    let b = y + 1.772 * cb;
    let clamp = |v: f64| (v + 0.5).floor().clamp(0.0, 255.0) as u8;
    [clamp(r), clamp(g), clamp(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ybr_grey_stays_grey() {
        assert_eq!(ybr_full_to_rgb(100, 128, 128), [100, 100, 100]);
    }

    #[test]
    fn ybr_pure_red() {
        // Y, Cb, Cr of (255, 0, 0) by the forward YBR_FULL equations.
        let y: f64 = 0.299 * 255.0;
        let cb: f64 = -0.168_736 * 255.0 + 128.0;
        let cr: f64 = 0.5 * 255.0 + 128.0;
        let rgb = ybr_full_to_rgb(
            y.round() as u8,
            cb.round() as u8,
            cr.round().min(255.0) as u8,
        );
        assert!(rgb[0] >= 253, "{rgb:?}");
        assert!(rgb[1] <= 2, "{rgb:?}");
        assert!(rgb[2] <= 2, "{rgb:?}");
    }

    #[test]
    fn window_edges() {
        // Center 2048, width 4096: the full 12-bit range.
        assert_eq!(linear_window(0.0, 2048.0, 4096.0), 0);
        assert_eq!(linear_window(4095.0, 2048.0, 4096.0), 255);
        assert_eq!(linear_window(5000.0, 2048.0, 4096.0), 255);
    }

    #[test]
    fn range_levels_identity_for_8_bits() {
        let levels = range_levels(8);
        assert!(levels.iter().enumerate().all(|(i, &l)| l as usize == i));
        assert_eq!(range_levels(16)[0xFFFF], 255);
        assert_eq!(range_levels(12)[0], 0);
    }
}
