//! Decoders of uncompressed V4L2 buffers into a packed [`Frame`].
//!
//! YUV input is taken as ITU-R BT.601. The sample range is the one the driver reports
//! (resolved into [`PlaneLayout::range`]): limited range (luma and R'G'B' 16..235, chroma
//! 16..240, as HDMI and SDI carry video) is expanded to full range 0..255, and full range
//! is used as it is. Gray8 output from YUV is the Y sample alone, put through the same
//! expansion, so a neutral pixel (U = V = 128) gets the same value in Gray8 as in each
//! channel of Rgb8. GREY, RGB3 and BGR3 samples are expanded the same way when the driver
//! reports them as limited range.

use crate::frame::{rgb_to_luma, Frame, PixelFormat};

use super::format::{Encoding, PlaneLayout, QuantizationRange};
use super::FrameError;

/// The pixel format of decoded frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Gray8 for the analysis path (luma only), Rgb8 for display.
    pub output: PixelFormat,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            output: PixelFormat::Gray8,
        }
    }
}

/// Decodes the payload of one uncompressed buffer into `frame`, reusing its buffer.
///
/// `payload` must be the first `bytesused` bytes of the buffer. Bytes past the image, such
/// as row padding, are never read.
///
/// # Errors
/// [`FrameError::Short`] when the payload is smaller than the layout needs, and
/// [`FrameError::Compressed`] when the layout is MJPEG.
pub fn decode_raw(
    layout: &PlaneLayout,
    payload: &[u8],
    options: DecodeOptions,
    frame: &mut Frame,
) -> Result<(), FrameError> {
    let needed = layout.min_payload();
    if layout.encoding == Encoding::Mjpeg {
        return Err(FrameError::Compressed);
    }
    if payload.len() < needed {
        return Err(FrameError::Short {
            bytesused: payload.len(),
            needed,
        });
    }

    frame.reset(layout.width, layout.height, options.output);
    let rows = Rows {
        payload,
        stride: layout.stride,
        row_bytes: layout.row_bytes(),
    };
    let range = layout.range;
    match layout.encoding {
        Encoding::Yuyv => packed_422(&rows, [0, 1, 2, 3], range, frame),
        Encoding::Uyvy => packed_422(&rows, [1, 0, 3, 2], range, frame),
        Encoding::Nv12 => nv12(&rows, layout, frame),
        Encoding::Grey => grey(&rows, range, frame),
        Encoding::Rgb24 => packed_rgb(&rows, [0, 1, 2], range, frame),
        Encoding::Bgr24 => packed_rgb(&rows, [2, 1, 0], range, frame),
        // Rejected before the frame was reset.
        Encoding::Mjpeg => {}
    }
    Ok(())
}

/// The rows of the payload, each without its padding.
struct Rows<'a> {
    payload: &'a [u8],
    stride: usize,
    row_bytes: usize,
}

impl Rows<'_> {
    /// Row `y` counted over all planes. The caller checked the payload length against
    /// [`PlaneLayout::min_payload`], so every row of the layout is in range.
    fn row(&self, y: usize) -> &[u8] {
        let start = y * self.stride;
        &self.payload[start..start + self.row_bytes]
    }
}

/// Decodes packed 4:2:2, where `order` gives the positions of Y0, U, Y1, V in each group.
fn packed_422(rows: &Rows, order: [usize; 4], range: QuantizationRange, frame: &mut Frame) {
    let [y0, u, y1, v] = order;
    let format = frame.format;
    let out_stride = frame.stride();
    for (y, out) in frame.data.chunks_exact_mut(out_stride).enumerate() {
        let src = rows.row(y);
        match format {
            PixelFormat::Gray8 => {
                let luma = range_table(range);
                for (group, pair) in src.chunks_exact(4).zip(out.chunks_exact_mut(2)) {
                    pair[0] = luma[usize::from(group[y0])];
                    pair[1] = luma[usize::from(group[y1])];
                }
            }
            PixelFormat::Rgb8 => {
                for (group, pair) in src.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
                    let (cb, cr) = (group[u], group[v]);
                    let first = yuv_to_rgb(range, group[y0], cb, cr);
                    let second = yuv_to_rgb(range, group[y1], cb, cr);
                    pair[..3].copy_from_slice(&first);
                    pair[3..].copy_from_slice(&second);
                }
            }
        }
    }
}

/// NV12: `height` rows of Y, then `height / 2` rows of interleaved U V at the same stride.
fn nv12(rows: &Rows, layout: &PlaneLayout, frame: &mut Frame) {
    let (height, range) = (layout.height as usize, layout.range);
    let format = frame.format;
    let out_stride = frame.stride();
    for (y, out) in frame.data.chunks_exact_mut(out_stride).enumerate() {
        let luma_row = rows.row(y);
        match format {
            PixelFormat::Gray8 => {
                let luma = range_table(range);
                for (sample, pixel) in luma_row.iter().zip(out.iter_mut()) {
                    *pixel = luma[usize::from(*sample)];
                }
            }
            PixelFormat::Rgb8 => {
                let chroma_row = rows.row(height + y / 2);
                let pixels = luma_row.chunks_exact(2).zip(chroma_row.chunks_exact(2));
                for ((pair, chroma), rgb) in pixels.zip(out.chunks_exact_mut(6)) {
                    let first = yuv_to_rgb(range, pair[0], chroma[0], chroma[1]);
                    let second = yuv_to_rgb(range, pair[1], chroma[0], chroma[1]);
                    rgb[..3].copy_from_slice(&first);
                    rgb[3..].copy_from_slice(&second);
                }
            }
        }
    }
}

fn grey(rows: &Rows, range: QuantizationRange, frame: &mut Frame) {
    let format = frame.format;
    let full = range_table(range);
    let out_stride = frame.stride();
    for (y, out) in frame.data.chunks_exact_mut(out_stride).enumerate() {
        let src = rows.row(y);
        match (format, range) {
            (PixelFormat::Gray8, QuantizationRange::Full) => out.copy_from_slice(src),
            (PixelFormat::Gray8, QuantizationRange::Limited) => {
                for (sample, pixel) in src.iter().zip(out.iter_mut()) {
                    *pixel = full[usize::from(*sample)];
                }
            }
            (PixelFormat::Rgb8, _) => {
                for (sample, rgb) in src.iter().zip(out.chunks_exact_mut(3)) {
                    rgb.fill(full[usize::from(*sample)]);
                }
            }
        }
    }
}

/// Decodes packed 24-bit RGB, where `order` gives the positions of R, G, B in each pixel.
fn packed_rgb(rows: &Rows, order: [usize; 3], range: QuantizationRange, frame: &mut Frame) {
    let [r, g, b] = order;
    let full = range_table(range);
    let format = frame.format;
    let out_stride = frame.stride();
    for (y, out) in frame.data.chunks_exact_mut(out_stride).enumerate() {
        let src = rows.row(y);
        for (pixel, target) in src
            .chunks_exact(3)
            .zip(out.chunks_exact_mut(format.bytes_per_pixel()))
        {
            let [red, green, blue] = [pixel[r], pixel[g], pixel[b]].map(|v| full[usize::from(v)]);
            match format {
                PixelFormat::Gray8 => target[0] = rgb_to_luma(red, green, blue),
                PixelFormat::Rgb8 => target.copy_from_slice(&[red, green, blue]),
            }
        }
    }
}

// BT.601 (Kr = 0.299, Kb = 0.114) in 16-bit fixed point: each constant is the real
// coefficient times 65536, rounded. Limited range also scales luma by 255/219 and chroma
// by 255/224.
const LIMITED_Y: i32 = 76309;
const LIMITED_R_V: i32 = 104597;
const LIMITED_G_U: i32 = 25675;
const LIMITED_G_V: i32 = 53279;
const LIMITED_B_U: i32 = 132201;
const FULL_R_V: i32 = 91881;
const FULL_G_U: i32 = 22553;
const FULL_G_V: i32 = 46802;
const FULL_B_U: i32 = 116130;
const HALF: i32 = 1 << 15;

/// Converts one BT.601 pixel to R, G, B, rounded and clamped to 0..255.
#[inline]
pub fn yuv_to_rgb(range: QuantizationRange, y: u8, u: u8, v: u8) -> [u8; 3] {
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let (luma, r, g, b) = match range {
        QuantizationRange::Limited => (
            LIMITED_Y * (i32::from(y) - 16),
            LIMITED_R_V * e,
            -LIMITED_G_U * d - LIMITED_G_V * e,
            LIMITED_B_U * d,
        ),
        QuantizationRange::Full => (
            i32::from(y) << 16,
            FULL_R_V * e,
            -FULL_G_U * d - FULL_G_V * e,
            FULL_B_U * d,
        ),
    };
    [
        clamp_fixed(luma + r),
        clamp_fixed(luma + g),
        clamp_fixed(luma + b),
    ]
}

#[inline]
fn clamp_fixed(value: i32) -> u8 {
    ((value + HALF) >> 16).clamp(0, 255) as u8
}

/// Returns the full-range value of each luma or R'G'B' sample in `range`: the luma
/// term of [`yuv_to_rgb`] alone.
fn range_table(range: QuantizationRange) -> &'static [u8; 256] {
    match range {
        QuantizationRange::Limited => &LIMITED_LUMA,
        QuantizationRange::Full => &FULL_LUMA,
    }
}

static LIMITED_LUMA: [u8; 256] = limited_luma_table();
static FULL_LUMA: [u8; 256] = full_luma_table();

const fn limited_luma_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut y = 0;
    while y < 256 {
        let value = (LIMITED_Y * (y as i32 - 16) + HALF) >> 16;
        table[y] = if value < 0 {
            0
        } else if value > 255 {
            255
        } else {
            value as u8
        };
        y += 1;
    }
    table
}

const fn full_luma_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut y = 0;
    while y < 256 {
        table[y] = y as u8;
        y += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::format::{
        BufferFormat, FourCc, QUANTIZATION_DEFAULT, QUANTIZATION_FULL_RANGE, QUANTIZATION_LIM_RANGE,
    };
    use crate::source::Limits;

    /// `V4L2_COLORSPACE_SRGB`, which vivid reports for its webcam input.
    const COLORSPACE_SRGB: u32 = 8;

    /// Resolves the layout of a driver format in the sRGB colorspace with `quantization`.
    fn layout_with(
        fourcc: &str,
        (width, height): (u32, u32),
        (bpl, size): (u32, u32),
        quantization: u32,
    ) -> PlaneLayout {
        let format = BufferFormat {
            width,
            height,
            fourcc: FourCc::parse(fourcc).unwrap(),
            bytesperline: bpl,
            sizeimage: size,
            colorspace: COLORSPACE_SRGB,
            quantization,
        };
        PlaneLayout::resolve(&format, &Limits::default()).unwrap()
    }

    /// Resolves the layout of a driver format that reports the default quantization.
    fn layout(fourcc: &str, width: u32, height: u32, bpl: u32, size: u32) -> PlaneLayout {
        layout_with(fourcc, (width, height), (bpl, size), QUANTIZATION_DEFAULT)
    }

    fn decode(layout: &PlaneLayout, payload: &[u8], output: PixelFormat) -> Frame {
        let mut frame = Frame::empty();
        decode_raw(layout, payload, DecodeOptions { output }, &mut frame).unwrap();
        frame
    }

    /// BT.601 from its definition in floating point, for comparison.
    fn reference_rgb(range: QuantizationRange, y: u8, u: u8, v: u8) -> [f64; 3] {
        let (kr, kb) = (0.299, 0.114);
        let kg = 1.0 - kr - kb;
        let (luma, pb, pr) = match range {
            QuantizationRange::Limited => (
                (f64::from(y) - 16.0) / 219.0,
                (f64::from(u) - 128.0) / 224.0,
                (f64::from(v) - 128.0) / 224.0,
            ),
            QuantizationRange::Full => (
                f64::from(y) / 255.0,
                (f64::from(u) - 128.0) / 255.0,
                (f64::from(v) - 128.0) / 255.0,
            ),
        };
        let r = luma + 2.0 * (1.0 - kr) * pr;
        let b = luma + 2.0 * (1.0 - kb) * pb;
        let g = (luma - kr * r - kb * b) / kg;
        [r, g, b].map(|c| (c * 255.0).clamp(0.0, 255.0))
    }

    #[test]
    fn yuv_matches_bt601_definition() {
        // Each 16-bit fixed-point constant is within 0.5 / 65536 of its coefficient, which
        // moves a result by less than 0.005 of a step, so every result is the rounded
        // definition give or take that much.
        for range in [QuantizationRange::Limited, QuantizationRange::Full] {
            for y in (0..=255).step_by(5) {
                for u in (0..=255).step_by(15) {
                    for v in (0..=255).step_by(15) {
                        let got = yuv_to_rgb(range, y, u, v);
                        let expected = reference_rgb(range, y, u, v);
                        for (channel, (g, e)) in got.iter().zip(expected).enumerate() {
                            assert!(
                                (f64::from(*g) - e).abs() <= 0.505,
                                "{range:?} y={y} u={u} v={v} channel {channel}: {g} vs {e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn yuyv_black_then_white() {
        let frame = decode(
            &layout("YUYV", 2, 1, 4, 4),
            &[16, 128, 235, 128],
            PixelFormat::Rgb8,
        );
        assert_eq!(frame.data, [0, 0, 0, 255, 255, 255]);
        let grey = decode(
            &layout("YUYV", 2, 1, 4, 4),
            &[16, 128, 235, 128],
            PixelFormat::Gray8,
        );
        assert_eq!(grey.data, [0, 255]);
    }

    #[test]
    fn uyvy_reads_same_bytes_differently() {
        let bytes = [16, 128, 235, 128];
        let yuyv = decode(&layout("YUYV", 2, 1, 4, 4), &bytes, PixelFormat::Rgb8);
        let uyvy = decode(&layout("UYVY", 2, 1, 4, 4), &bytes, PixelFormat::Rgb8);
        assert_ne!(yuyv.data, uyvy.data);
        // As UYVY both pixels have Y = 128 with U = 16, V = 235.
        let expected = yuv_to_rgb(QuantizationRange::Limited, 128, 16, 235);
        assert_eq!(&uyvy.data[..3], &expected);
        assert_eq!(&uyvy.data[3..], &expected);
    }

    #[test]
    fn grey_output_matches_rgb_for_neutral_chroma() {
        for y in 0..=255u8 {
            let bytes = [y, 128, y, 128];
            let rgb = decode(&layout("YUYV", 2, 1, 4, 4), &bytes, PixelFormat::Rgb8);
            let grey = decode(&layout("YUYV", 2, 1, 4, 4), &bytes, PixelFormat::Gray8);
            assert_eq!(rgb.data[0], grey.data[0], "y={y}");
            assert_eq!(rgb.data[1], grey.data[0], "y={y}");
            assert_eq!(rgb.data[2], grey.data[0], "y={y}");
        }
    }

    #[test]
    fn limited_luma_expands_to_full_range() {
        assert_eq!(LIMITED_LUMA[0], 0);
        assert_eq!(LIMITED_LUMA[16], 0);
        assert_eq!(LIMITED_LUMA[235], 255);
        assert_eq!(LIMITED_LUMA[255], 255);
        // (126 - 16) * 255 / 219 = 128.08
        assert_eq!(LIMITED_LUMA[126], 128);
    }

    #[test]
    fn nv12_uses_strided_chroma_plane() {
        // 4x2 image, stride 6: two Y rows, then one U V row, each padded with 0xEE.
        let payload = [
            16, 235, 16, 235, 0xEE, 0xEE, // Y row 0
            235, 16, 235, 16, 0xEE, 0xEE, // Y row 1
            128, 128, 16, 240, 0xEE, 0xEE, // U V for columns 0-1, then 2-3
        ];
        let layout = layout("NV12", 4, 2, 6, 18);
        let grey = decode(&layout, &payload, PixelFormat::Gray8);
        assert_eq!(grey.data, [0, 255, 0, 255, 255, 0, 255, 0]);

        let rgb = decode(&layout, &payload, PixelFormat::Rgb8);
        assert_eq!(&rgb.data[0..3], &[0, 0, 0]);
        assert_eq!(&rgb.data[3..6], &[255, 255, 255]);
        let coloured = yuv_to_rgb(QuantizationRange::Limited, 16, 16, 240);
        assert_eq!(&rgb.data[6..9], &coloured);
        // Row 1 (Y = 235 at column 2) shares the chroma row of row 0.
        assert_eq!(
            &rgb.data[18..21],
            &yuv_to_rgb(QuantizationRange::Limited, 235, 16, 240)
        );
    }

    #[test]
    fn rgb_and_bgr_orders() {
        let layout_rgb = layout("RGB3", 1, 1, 3, 3);
        let layout_bgr = layout("BGR3", 1, 1, 3, 3);
        assert_eq!(
            decode(&layout_rgb, &[10, 20, 30], PixelFormat::Rgb8).data,
            [10, 20, 30]
        );
        assert_eq!(
            decode(&layout_bgr, &[10, 20, 30], PixelFormat::Rgb8).data,
            [30, 20, 10]
        );
        let luma = decode(&layout_bgr, &[0, 0, 255], PixelFormat::Gray8);
        assert_eq!(luma.data, [rgb_to_luma(255, 0, 0)]);
    }

    #[test]
    fn full_range_grey_is_copied_unscaled() {
        let layout = layout_with("GREY", (3, 1), (4, 4), QUANTIZATION_FULL_RANGE);
        assert_eq!(
            decode(&layout, &[0, 16, 255, 9], PixelFormat::Gray8).data,
            [0, 16, 255]
        );
        let rgb = decode(&layout, &[0, 16, 255, 9], PixelFormat::Rgb8);
        assert_eq!(rgb.data, [0, 0, 0, 16, 16, 16, 255, 255, 255]);
    }

    #[test]
    fn limited_range_grey_is_expanded() {
        // GREY is a luma-only Y'CbCr format, so the default quantization is limited range.
        // The last byte of each row is padding.
        let payload = [16, 126, 235, 9, 0, 10, 240, 255];
        for quantization in [QUANTIZATION_DEFAULT, QUANTIZATION_LIM_RANGE] {
            let layout = layout_with("GREY", (3, 2), (4, 8), quantization);
            let grey = decode(&layout, &payload, PixelFormat::Gray8);
            // (126 - 16) * 255 / 219 = 128.08; below 16 and above 235 clamp.
            assert_eq!(grey.data, [0, 128, 255, 0, 0, 255], "{quantization}");
            let rgb = decode(&layout, &payload, PixelFormat::Rgb8);
            assert_eq!(&rgb.data[..9], &[0, 0, 0, 128, 128, 128, 255, 255, 255]);
        }
    }

    #[test]
    fn limited_range_grey_matches_limited_yuyv() {
        // The same luma through GREY and through YUYV with neutral chroma gives the same
        // value when both are limited range.
        for y in 0..=255u8 {
            let grey_layout = layout("GREY", 2, 1, 2, 2);
            let grey = decode(&grey_layout, &[y, y], PixelFormat::Gray8);
            let yuyv = decode(
                &layout("YUYV", 2, 1, 4, 4),
                &[y, 128, y, 128],
                PixelFormat::Gray8,
            );
            assert_eq!(grey.data, yuyv.data, "y={y}");
        }
    }

    #[test]
    fn rgb_range_follows_the_driver() {
        let payload = [16, 126, 235, 0, 128, 255];
        // R'G'B' is full range by default.
        let full = layout("RGB3", 2, 1, 6, 6);
        assert_eq!(decode(&full, &payload, PixelFormat::Rgb8).data, payload);

        let limited = layout_with("RGB3", (2, 1), (6, 6), QUANTIZATION_LIM_RANGE);
        let rgb = decode(&limited, &payload, PixelFormat::Rgb8);
        assert_eq!(rgb.data, [0, 128, 255, 0, 130, 255]);
        let grey = decode(&limited, &payload, PixelFormat::Gray8);
        assert_eq!(
            grey.data,
            [rgb_to_luma(0, 128, 255), rgb_to_luma(0, 130, 255)]
        );
    }

    #[test]
    fn full_range_yuyv_is_not_expanded() {
        let layout = layout_with("YUYV", (2, 1), (4, 4), QUANTIZATION_FULL_RANGE);
        let grey = decode(&layout, &[0, 128, 255, 128], PixelFormat::Gray8);
        assert_eq!(grey.data, [0, 255]);
        let grey = decode(&layout, &[16, 128, 235, 128], PixelFormat::Gray8);
        assert_eq!(grey.data, [16, 235]);
        let rgb = decode(&layout, &[16, 128, 235, 128], PixelFormat::Rgb8);
        assert_eq!(rgb.data, [16, 16, 16, 235, 235, 235]);
    }

    #[test]
    fn short_payload_rejected() {
        let layout = layout("YUYV", 4, 2, 8, 16);
        let mut frame = Frame::empty();
        let result = decode_raw(&layout, &[0; 15], DecodeOptions::default(), &mut frame);
        assert_eq!(
            result,
            Err(FrameError::Short {
                bytesused: 15,
                needed: 16
            })
        );
    }

    #[test]
    fn decoding_reuses_frame_buffer() {
        let layout = layout("YUYV", 4, 2, 8, 16);
        let mut frame = Frame::empty();
        decode_raw(&layout, &[128; 16], DecodeOptions::default(), &mut frame).unwrap();
        let pointer = frame.data.as_ptr();
        decode_raw(&layout, &[64; 16], DecodeOptions::default(), &mut frame).unwrap();
        assert_eq!(frame.data.as_ptr(), pointer);
    }
}
