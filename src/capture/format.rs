//! The buffer format a driver reports, and the plane layout the decoders read it with.

use std::fmt;

use crate::source::Limits;

use super::CaptureError;

/// A V4L2 four-character code, such as `YUYV` or `MJPG`, stored in the byte order of the
/// kernel's `v4l2_fourcc()` (first character in the least significant byte).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    /// Parses a code of exactly four ASCII characters, padding a shorter one with spaces as
    /// V4L2 does for `GREY`-like codes of fewer letters.
    pub fn parse(text: &str) -> Result<FourCc, CaptureError> {
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() > 4 || !text.is_ascii() {
            return Err(CaptureError::Parameter(format!(
                "invalid fourcc {text:?}: expected 1 to 4 ASCII characters, such as YUYV or MJPG"
            )));
        }
        let mut code = [b' '; 4];
        code[..bytes.len()].copy_from_slice(bytes);
        Ok(FourCc(code))
    }

    /// Returns the code as the little-endian `u32` of `struct v4l2_pix_format`.
    pub fn to_u32(self) -> u32 {
        u32::from_le_bytes(self.0)
    }

    pub fn from_u32(code: u32) -> FourCc {
        FourCc(code.to_le_bytes())
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in &self.0 {
            let shown = if byte.is_ascii_graphic() || byte == b' ' {
                char::from(byte)
            } else {
                '?'
            };
            write!(f, "{shown}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// A pixel encoding this module decodes, chosen from the fourcc the driver returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Packed 4:2:2, bytes Y0 U Y1 V.
    Yuyv,
    /// Packed 4:2:2, bytes U Y0 V Y1.
    Uyvy,
    /// A Y plane followed by an interleaved U V plane at half resolution in both directions.
    Nv12,
    /// 8-bit grey samples.
    Grey,
    /// Packed 8-bit R G B (`RGB3`).
    Rgb24,
    /// Packed 8-bit B G R (`BGR3`).
    Bgr24,
    /// One baseline JPEG image per buffer (`MJPG` or `JPEG`).
    Mjpeg,
}

impl Encoding {
    /// Maps a driver's fourcc to an encoding, or rejects one this module cannot decode.
    pub fn from_fourcc(fourcc: FourCc) -> Result<Encoding, CaptureError> {
        let encoding = match &fourcc.0 {
            b"YUYV" => Encoding::Yuyv,
            b"UYVY" => Encoding::Uyvy,
            b"NV12" => Encoding::Nv12,
            b"GREY" => Encoding::Grey,
            b"RGB3" => Encoding::Rgb24,
            b"BGR3" => Encoding::Bgr24,
            b"MJPG" | b"JPEG" => Encoding::Mjpeg,
            _ => {
                return Err(CaptureError::UnsupportedFormat(format!(
                    "pixel format {fourcc} is not supported: request one of YUYV, UYVY, \
                     NV12, GREY, RGB3, BGR3, MJPG or JPEG"
                )))
            }
        };
        Ok(encoding)
    }

    /// Bytes of one pixel in the first plane, or `None` for a compressed encoding.
    fn bytes_per_pixel(self) -> Option<u64> {
        match self {
            Encoding::Yuyv | Encoding::Uyvy => Some(2),
            Encoding::Nv12 | Encoding::Grey => Some(1),
            Encoding::Rgb24 | Encoding::Bgr24 => Some(3),
            Encoding::Mjpeg => None,
        }
    }
}

/// `V4L2_QUANTIZATION_DEFAULT`: the range that the colorspace and the pixel encoding
/// imply (see [`QuantizationRange::resolve`]).
pub const QUANTIZATION_DEFAULT: u32 = 0;
/// `V4L2_QUANTIZATION_FULL_RANGE`: 8-bit samples span 0..255.
pub const QUANTIZATION_FULL_RANGE: u32 = 1;
/// `V4L2_QUANTIZATION_LIM_RANGE`: luma and R'G'B' span 16..235, chroma 16..240.
pub const QUANTIZATION_LIM_RANGE: u32 = 2;
/// `V4L2_COLORSPACE_JPEG`, whose Y'CbCr is full range by default.
pub const COLORSPACE_JPEG: u32 = 7;

/// The format of the driver's buffers as `VIDIOC_G_FMT` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferFormat {
    pub width: u32,
    pub height: u32,
    pub fourcc: FourCc,
    /// Bytes from the start of one row of the first plane to the next (0 when the driver
    /// leaves it unset, as it may for compressed formats).
    pub bytesperline: u32,
    /// Bytes a buffer must hold for one image (the maximum for compressed formats).
    pub sizeimage: u32,
    /// `enum v4l2_colorspace`, of which only [`COLORSPACE_JPEG`] changes how the samples
    /// are read.
    pub colorspace: u32,
    /// `enum v4l2_quantization`: [`QUANTIZATION_DEFAULT`], [`QUANTIZATION_FULL_RANGE`] or
    /// [`QUANTIZATION_LIM_RANGE`].
    pub quantization: u32,
}

/// The range of 8-bit samples in a buffer, resolved from the quantization the driver
/// reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantizationRange {
    /// Luma and R'G'B' 16..235, chroma 16..240 (BT.601 "studio swing"), as HDMI and SDI
    /// carry Y'CbCr video.
    Limited,
    /// Every sample 0..255, as in JPEG.
    Full,
}

impl QuantizationRange {
    /// Resolves the `quantization` a driver reports for `encoding` in `colorspace`.
    ///
    /// `V4L2_QUANTIZATION_DEFAULT` follows `V4L2_MAP_QUANTIZATION_DEFAULT` of
    /// linux/videodev2.h (Linux 6.1): full range for R'G'B' and for the JPEG colorspace,
    /// limited range for everything else. The kernel documentation lists GREY among the
    /// luma-only Y'CbCr formats, so GREY is limited range by default. MJPEG ignores the
    /// result, since a JPEG image is full range by definition.
    ///
    /// A value the kernel does not define is logged and taken as the default.
    pub fn resolve(encoding: Encoding, colorspace: u32, quantization: u32) -> QuantizationRange {
        match quantization {
            QUANTIZATION_FULL_RANGE => return QuantizationRange::Full,
            QUANTIZATION_LIM_RANGE => return QuantizationRange::Limited,
            QUANTIZATION_DEFAULT => {}
            unknown => log::warn!(
                "the driver reports quantization {unknown}, which V4L2 does not define: \
                 using the default range of the format"
            ),
        }
        let is_rgb = matches!(encoding, Encoding::Rgb24 | Encoding::Bgr24);
        if is_rgb || colorspace == COLORSPACE_JPEG {
            QuantizationRange::Full
        } else {
            QuantizationRange::Limited
        }
    }
}

/// The encoding, image size, row stride and sample range that the decoders read a buffer
/// with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaneLayout {
    pub encoding: Encoding,
    pub width: u32,
    pub height: u32,
    /// Bytes from one row to the next, the same in every plane (0 for MJPEG).
    pub stride: usize,
    pub range: QuantizationRange,
}

impl PlaneLayout {
    /// Resolves the layout of `format`, checking its size against `limits`.
    ///
    /// The stride is `bytesperline`, unless `sizeimage` is larger than `bytesperline` times
    /// the rows of all planes (`height`, or `height * 3 / 2` for NV12): then it is
    /// `sizeimage` divided by those rows, when that divides evenly and is at least one row long.
    /// Any other inconsistency is rejected as [`CaptureError::UnsupportedFormat`]. The
    /// sample range comes from [`QuantizationRange::resolve`].
    pub fn resolve(format: &BufferFormat, limits: &Limits) -> Result<PlaneLayout, CaptureError> {
        let encoding = Encoding::from_fourcc(format.fourcc)?;
        let range = QuantizationRange::resolve(encoding, format.colorspace, format.quantization);
        let (width, height) = (format.width, format.height);
        limits
            .check_size(u64::from(width), u64::from(height), 3)
            .map_err(|e| CaptureError::UnsupportedFormat(e.to_string()))?;

        let Some(bytes_per_pixel) = encoding.bytes_per_pixel() else {
            return Ok(PlaneLayout {
                encoding,
                width,
                height,
                stride: 0,
                range,
            });
        };
        check_subsampling(encoding, width, height)?;

        let row_bytes = u64::from(width) * bytes_per_pixel;
        let rows = plane_rows(encoding, height);
        let stride = resolve_stride(format, row_bytes, rows)?;
        Ok(PlaneLayout {
            encoding,
            width,
            height,
            stride: usize::try_from(stride).map_err(|_| stride_error(format, "is too large"))?,
            range,
        })
    }

    /// Bytes of one row of pixels in the first plane, without padding.
    pub fn row_bytes(&self) -> usize {
        let bytes_per_pixel = self.encoding.bytes_per_pixel().unwrap_or(0) as usize;
        self.width as usize * bytes_per_pixel
    }

    /// Rows of all planes together.
    pub fn rows(&self) -> usize {
        plane_rows(self.encoding, self.height) as usize
    }

    /// Returns the smallest payload that contains a whole image: every row at the stride, but the last
    /// one without its padding (0 for MJPEG, whose size varies per frame).
    pub fn min_payload(&self) -> usize {
        match self.encoding {
            Encoding::Mjpeg => 0,
            _ => self.stride * (self.rows() - 1) + self.row_bytes(),
        }
    }
}

/// Rows of all planes: NV12's chroma plane adds half the luma rows.
fn plane_rows(encoding: Encoding, height: u32) -> u64 {
    match encoding {
        Encoding::Nv12 => u64::from(height) * 3 / 2,
        _ => u64::from(height),
    }
}

fn check_subsampling(encoding: Encoding, width: u32, height: u32) -> Result<(), CaptureError> {
    let odd_width = width % 2 != 0;
    let odd_height = height % 2 != 0;
    let rejected = match encoding {
        Encoding::Yuyv | Encoding::Uyvy => odd_width,
        Encoding::Nv12 => odd_width || odd_height,
        _ => false,
    };
    if rejected {
        return Err(CaptureError::UnsupportedFormat(format!(
            "{width}x{height} is not a valid size for chroma-subsampled {encoding:?}: \
             request an even width (and, for NV12, an even height)"
        )));
    }
    Ok(())
}

fn resolve_stride(format: &BufferFormat, row_bytes: u64, rows: u64) -> Result<u64, CaptureError> {
    let bytesperline = match u64::from(format.bytesperline) {
        0 => row_bytes,
        value if value < row_bytes => {
            return Err(stride_error(
                format,
                &format!("is shorter than a row of {row_bytes} bytes"),
            ))
        }
        value => value,
    };

    let sizeimage = u64::from(format.sizeimage);
    let planes_bytes = bytesperline * rows;
    if sizeimage <= planes_bytes {
        let needed = bytesperline * (rows - 1) + row_bytes;
        if sizeimage != 0 && sizeimage < needed {
            return Err(stride_error(
                format,
                &format!("needs {needed} bytes per image but sizeimage is {sizeimage}"),
            ));
        }
        return Ok(bytesperline);
    }

    // Some drivers pad every row but report the unpadded bytesperline; sizeimage then
    // gives the real stride away.
    if sizeimage % rows == 0 && sizeimage / rows >= row_bytes {
        return Ok(sizeimage / rows);
    }
    // NOTE: a driver that pads only the end of the image (sizeimage rounded up to a page)
    // is rejected here too, although bytesperline alone would decode it.
    Err(stride_error(
        format,
        &format!("disagrees with sizeimage {sizeimage}, which is not a whole number of rows"),
    ))
}

fn stride_error(format: &BufferFormat, problem: &str) -> CaptureError {
    CaptureError::UnsupportedFormat(format!(
        "driver format {} {}x{} with bytesperline {} {problem}: request another size or \
         pixel format",
        format.fourcc, format.width, format.height, format.bytesperline
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(fourcc: &str, width: u32, height: u32, bpl: u32, size: u32) -> BufferFormat {
        BufferFormat {
            width,
            height,
            fourcc: FourCc::parse(fourcc).unwrap(),
            bytesperline: bpl,
            sizeimage: size,
            colorspace: 0,
            quantization: QUANTIZATION_DEFAULT,
        }
    }

    fn stride_of(format: &BufferFormat) -> Result<usize, CaptureError> {
        PlaneLayout::resolve(format, &Limits::default()).map(|layout| layout.stride)
    }

    #[test]
    fn fourcc_round_trips_through_u32() {
        let fourcc = FourCc::parse("YUYV").unwrap();
        // v4l2_fourcc('Y','U','Y','V') from videodev2.h.
        assert_eq!(fourcc.to_u32(), 0x5659_5559);
        assert_eq!(FourCc::from_u32(0x5659_5559), fourcc);
        assert_eq!(FourCc::parse("Y8").unwrap().0, *b"Y8  ");
        assert!(FourCc::parse("TOOLONG").is_err());
        assert!(FourCc::parse("").is_err());
    }

    #[test]
    fn stride_is_bytesperline_when_consistent() {
        assert_eq!(stride_of(&format("YUYV", 8, 4, 16, 64)).unwrap(), 16);
        assert_eq!(stride_of(&format("YUYV", 8, 4, 20, 80)).unwrap(), 20);
        assert_eq!(stride_of(&format("GREY", 8, 4, 0, 0)).unwrap(), 8);
    }

    #[test]
    fn stride_from_sizeimage_when_larger() {
        // 6 RGB pixels are 18 bytes; the driver claims 24 but sizeimage gives 32 per row.
        assert_eq!(stride_of(&format("RGB3", 6, 5, 24, 32 * 5)).unwrap(), 32);
        // NV12 has height * 3 / 2 rows in all.
        assert_eq!(stride_of(&format("NV12", 4, 4, 4, 8 * 6)).unwrap(), 8);
    }

    #[test]
    fn inconsistent_sizes_rejected() {
        // sizeimage that is not a whole number of rows.
        assert!(stride_of(&format("RGB3", 6, 5, 24, 24 * 5 + 3)).is_err());
        // bytesperline shorter than a row.
        assert!(stride_of(&format("RGB3", 6, 5, 12, 0)).is_err());
        // sizeimage too small for the image.
        assert!(stride_of(&format("YUYV", 8, 4, 16, 40)).is_err());
        // Chroma subsampling needs even sizes.
        assert!(stride_of(&format("YUYV", 7, 4, 14, 56)).is_err());
        assert!(stride_of(&format("NV12", 8, 5, 8, 0)).is_err());
    }

    #[test]
    fn unknown_fourcc_and_huge_size_rejected() {
        assert!(matches!(
            stride_of(&format("H264", 8, 4, 0, 0)),
            Err(CaptureError::UnsupportedFormat(_))
        ));
        assert!(stride_of(&format("GREY", 100_000, 4, 0, 0)).is_err());
        assert!(stride_of(&format("GREY", 0, 4, 0, 0)).is_err());
    }

    #[test]
    fn default_quantization_depends_on_encoding() {
        let resolve = |fourcc: &str, colorspace: u32, quantization: u32| {
            let mut format = format(fourcc, 8, 4, 0, 0);
            format.colorspace = colorspace;
            format.quantization = quantization;
            PlaneLayout::resolve(&format, &Limits::default())
                .unwrap()
                .range
        };
        // V4L2_COLORSPACE_SRGB is 8, V4L2_COLORSPACE_REC709 is 3.
        for fourcc in ["YUYV", "UYVY", "NV12", "GREY"] {
            assert_eq!(
                resolve(fourcc, 8, QUANTIZATION_DEFAULT),
                QuantizationRange::Limited,
                "{fourcc}"
            );
            assert_eq!(
                resolve(fourcc, COLORSPACE_JPEG, QUANTIZATION_DEFAULT),
                QuantizationRange::Full,
                "{fourcc} in the JPEG colorspace"
            );
        }
        for fourcc in ["RGB3", "BGR3"] {
            assert_eq!(
                resolve(fourcc, 3, QUANTIZATION_DEFAULT),
                QuantizationRange::Full,
                "{fourcc}"
            );
        }
    }

    #[test]
    fn reported_quantization_overrides_default() {
        let mut grey = format("GREY", 8, 4, 0, 0);
        grey.quantization = QUANTIZATION_FULL_RANGE;
        let layout = PlaneLayout::resolve(&grey, &Limits::default()).unwrap();
        assert_eq!(layout.range, QuantizationRange::Full);

        let mut rgb = format("RGB3", 8, 4, 0, 0);
        rgb.quantization = QUANTIZATION_LIM_RANGE;
        let layout = PlaneLayout::resolve(&rgb, &Limits::default()).unwrap();
        assert_eq!(layout.range, QuantizationRange::Limited);

        // A value V4L2 does not define falls back to the default of the format.
        rgb.quantization = 9;
        let layout = PlaneLayout::resolve(&rgb, &Limits::default()).unwrap();
        assert_eq!(layout.range, QuantizationRange::Full);
    }

    #[test]
    fn min_payload_omits_last_row_padding() {
        let layout = PlaneLayout::resolve(&format("YUYV", 4, 3, 12, 0), &Limits::default());
        assert_eq!(layout.unwrap().min_payload(), 12 * 2 + 8);
    }
}
