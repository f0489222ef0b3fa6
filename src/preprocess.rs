//! Turns a frame's region of interest into the extractor's 1x3x224x224 input tensor.
//!
//! Steps, in order: luma of the ROI (grey frames as they are, RGB frames with
//! [`crate::frame::rgb_to_luma`]), resize to 224x224, scale to [0, 1], ImageNet mean and
//! std per channel with the grey value copied to all three channels, NCHW layout.
//! scripts/extractor/preprocess.py is the numpy reference of the same steps.
//!
//! The resize follows PIL's BILINEAR convention, which torchvision's antialiased resize
//! also uses. Pixel centres sit at half-integers, and output pixel `i` is centred on input
//! coordinate `(i + 0.5) * in / out`. When shrinking, the triangle filter widens by the
//! scale factor, so every input pixel contributes and speckle does not alias. Unlike PIL,
//! both passes run in f32 with no rounding to 8 bits in between.

use std::fmt;
use std::str::FromStr;

use crate::frame::{rgb_to_luma, Frame, PixelFormat};
use crate::geometry::Rect;

/// Side of the square input.
pub const SIZE: usize = 224;
/// ImageNet channel means (R, G, B) of values scaled to [0, 1].
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (R, G, B).
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Resize mode that turns the ROI into a square.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResizeMode {
    /// Stretch the ROI to 224x224, ignoring its aspect ratio.
    #[default]
    Squash,
    /// Scale the short side to 224 (long side truncated to whole pixels), then keep the
    /// centre 224x224, as torchvision's `Resize(224)` followed by `CenterCrop(224)`.
    Crop,
}

impl FromStr for ResizeMode {
    type Err = PreprocessError;

    fn from_str(s: &str) -> Result<ResizeMode, PreprocessError> {
        match s {
            "squash" => Ok(ResizeMode::Squash),
            "crop" => Ok(ResizeMode::Crop),
            other => Err(PreprocessError::Mode(other.to_string())),
        }
    }
}

impl fmt::Display for ResizeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResizeMode::Squash => "squash",
            ResizeMode::Crop => "crop",
        })
    }
}

/// Error from preprocessing a frame.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The ROI is empty or reaches outside the frame.
    #[error("ROI {roi} does not fit in the {width}x{height} frame: give X,Y,W,H inside it")]
    Roi { roi: Rect, width: u32, height: u32 },
    /// The frame's buffer does not hold `width * height` pixels.
    #[error("frame buffer has {len} bytes, expected {expected} for {width}x{height}")]
    Buffer {
        len: usize,
        expected: usize,
        width: u32,
        height: u32,
    },
    /// An unknown resize mode name.
    #[error("unknown resize mode `{0}`: expected squash or crop")]
    Mode(String),
}

/// Preprocesses `roi` of `frame` (the whole frame when `None`) into a 1x3x224x224 NCHW
/// tensor, returned as `3 * 224 * 224` row-major values.
pub fn preprocess(
    frame: &Frame,
    roi: Option<Rect>,
    mode: ResizeMode,
) -> Result<Vec<f32>, PreprocessError> {
    let roi = roi.unwrap_or(Rect::new(0, 0, frame.width, frame.height));
    check_frame(frame, roi)?;

    let grey = roi_luma(frame, roi);
    let (width, height) = (roi.w as usize, roi.h as usize);
    let (columns, rows) = match mode {
        ResizeMode::Squash => (
            AxisWeights::new(width, SIZE, 0),
            AxisWeights::new(height, SIZE, 0),
        ),
        ResizeMode::Crop => {
            let geometry = CropGeometry::new(width, height);
            (
                AxisWeights::new(width, geometry.width, geometry.left),
                AxisWeights::new(height, geometry.height, geometry.top),
            )
        }
    };
    let resized = resize(&grey, width, &columns, &rows);
    Ok(normalise(&resized))
}

fn check_frame(frame: &Frame, roi: Rect) -> Result<(), PreprocessError> {
    let expected = frame.width as usize * frame.height as usize * frame.format.bytes_per_pixel();
    if frame.data.len() != expected {
        return Err(PreprocessError::Buffer {
            len: frame.data.len(),
            expected,
            width: frame.width,
            height: frame.height,
        });
    }
    if !roi.fits_in(frame.width, frame.height) {
        return Err(PreprocessError::Roi {
            roi,
            width: frame.width,
            height: frame.height,
        });
    }
    Ok(())
}

/// Luma samples of the ROI as f32 in [0, 255], row after row.
fn roi_luma(frame: &Frame, roi: Rect) -> Vec<f32> {
    let mut grey = Vec::with_capacity(roi.area() as usize);
    let (x0, x1) = (roi.x as usize, roi.right() as usize);
    for y in roi.y..roi.bottom() as u32 {
        let row = frame.row(y);
        match frame.format {
            PixelFormat::Gray8 => grey.extend(row[x0..x1].iter().map(|&v| f32::from(v))),
            PixelFormat::Rgb8 => grey.extend(
                row[3 * x0..3 * x1]
                    .chunks_exact(3)
                    .map(|p| f32::from(rgb_to_luma(p[0], p[1], p[2]))),
            ),
        }
    }
    grey
}

/// Resized size and kept 224x224 window of "crop" mode.
#[derive(Debug, PartialEq)]
struct CropGeometry {
    width: usize,
    height: usize,
    left: usize,
    top: usize,
}

impl CropGeometry {
    /// Computes the geometry: the short side becomes 224 and the long side
    /// `224 * long / short`, truncated. The window offsets are `(size - 224) / 2` rounded
    /// half to even, as torchvision computes them.
    fn new(width: usize, height: usize) -> CropGeometry {
        let (new_w, new_h) = if width <= height {
            (SIZE, SIZE * height / width)
        } else {
            (SIZE * width / height, SIZE)
        };
        let offset = |size: usize| ((size - SIZE) as f64 / 2.0).round_ties_even() as usize;
        CropGeometry {
            width: new_w,
            height: new_h,
            left: offset(new_w),
            top: offset(new_h),
        }
    }
}

/// Bilinear filter taps of one axis for the `SIZE` outputs starting at output `offset`
/// of a resize from `input` to `output` samples.
struct AxisWeights {
    /// First input index of each output.
    first: Vec<usize>,
    /// Taps per output; outputs with fewer taps are padded with zero weights.
    taps: usize,
    /// `SIZE * taps` normalised weights.
    weights: Vec<f32>,
}

impl AxisWeights {
    fn new(input: usize, output: usize, offset: usize) -> AxisWeights {
        let scale = input as f64 / output as f64;
        let filter_scale = scale.max(1.0);
        let support = filter_scale;
        let taps = (2.0 * support).ceil() as usize + 1;

        let mut first = Vec::with_capacity(SIZE);
        let mut weights = vec![0f32; SIZE * taps];
        for (i, out) in (offset..offset + SIZE).enumerate() {
            let centre = (out as f64 + 0.5) * scale;
            // Truncation toward zero, then clamping, as PIL computes the window.
            let start = ((centre - support + 0.5) as i64).max(0) as usize;
            let end = ((centre + support + 0.5) as usize).min(input);
            let raw: Vec<f64> = (start..end)
                .map(|x| (1.0 - ((x as f64 + 0.5 - centre) / filter_scale).abs()).max(0.0))
                .collect();
            let sum: f64 = raw.iter().sum();
            for (k, w) in raw.iter().enumerate().take(taps) {
                weights[i * taps + k] = (w / sum) as f32;
            }
            first.push(start);
        }
        AxisWeights {
            first,
            taps,
            weights,
        }
    }

    /// Filters one line of samples into `out` (`SIZE` values), reading `get(index)`.
    fn apply(&self, get: impl Fn(usize) -> f32, limit: usize, out: &mut [f32]) {
        for (i, value) in out.iter_mut().enumerate() {
            let start = self.first[i];
            let taps = &self.weights[i * self.taps..(i + 1) * self.taps];
            *value = taps
                .iter()
                .enumerate()
                .take_while(|(k, _)| start + k < limit)
                .map(|(k, w)| w * get(start + k))
                .sum();
        }
    }
}

/// Resizes a `width`-wide grey image: columns first, then rows. Returns `SIZE * SIZE`.
fn resize(grey: &[f32], width: usize, columns: &AxisWeights, rows: &AxisWeights) -> Vec<f32> {
    let height = grey.len() / width;
    let mut horizontal = vec![0f32; height * SIZE];
    for (y, line) in horizontal.chunks_exact_mut(SIZE).enumerate() {
        let source = &grey[y * width..(y + 1) * width];
        columns.apply(|x| source[x], width, line);
    }

    let mut resized = vec![0f32; SIZE * SIZE];
    let mut column = vec![0f32; SIZE];
    for x in 0..SIZE {
        rows.apply(|y| horizontal[y * SIZE + x], height, &mut column);
        for (y, value) in column.iter().enumerate() {
            resized[y * SIZE + x] = *value;
        }
    }
    resized
}

/// Scales to [0, 1] and applies the per-channel mean and std; returns NCHW values.
fn normalise(resized: &[f32]) -> Vec<f32> {
    let mut tensor = Vec::with_capacity(3 * resized.len());
    for channel in 0..3 {
        let (mean, std) = (MEAN[channel], STD[channel]);
        tensor.extend(resized.iter().map(|v| (v / 255.0 - mean) / std));
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_geometry_matches_torchvision() {
        let wide = CropGeometry::new(320, 240);
        assert_eq!(
            wide,
            CropGeometry {
                width: 298,
                height: 224,
                left: 37,
                top: 0
            }
        );
        // 225 - 224 = 1: the offset 0.5 rounds to the even 0.
        assert_eq!(CropGeometry::new(225, 224).left, 0);
        // 227 - 224 = 3: the offset 1.5 rounds to the even 2.
        assert_eq!(CropGeometry::new(227, 224).left, 2);
    }

    #[test]
    fn constant_image_stays_constant() {
        let mut frame = Frame::new(50, 30, PixelFormat::Gray8);
        frame.data.fill(128);
        let tensor = preprocess(&frame, None, ResizeMode::Squash).unwrap();
        let expected = (128.0 / 255.0 - MEAN[1]) / STD[1];
        let green = &tensor[SIZE * SIZE..2 * SIZE * SIZE];
        assert!(green.iter().all(|v| (v - expected).abs() < 1e-5));
    }

    #[test]
    fn roi_outside_frame_is_rejected() {
        let frame = Frame::new(50, 30, PixelFormat::Gray8);
        let error = preprocess(&frame, Some(Rect::new(40, 0, 20, 10)), ResizeMode::Squash);
        assert!(matches!(error, Err(PreprocessError::Roi { .. })));
    }

    #[test]
    fn short_buffer_is_rejected() {
        let mut frame = Frame::new(50, 30, PixelFormat::Rgb8);
        frame.data.truncate(100);
        let error = preprocess(&frame, None, ResizeMode::Crop);
        assert!(matches!(error, Err(PreprocessError::Buffer { .. })));
    }
}
