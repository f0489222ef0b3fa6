//! MJPEG frames: checking that a frame is whole, inserting the Huffman tables that UVC
//! grabbers leave out, and decoding with jpeg-decoder.

use crate::frame::{rgb_to_luma, Frame, PixelFormat};
use crate::source::Limits;

use super::FrameError;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHT: u8 = 0xC4;
const TEM: u8 = 0x01;

/// Offsets of the parts of a JPEG stream, as found by [`scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JpegLayout {
    /// Offset of the first SOS marker.
    pub first_sos: usize,
    /// Whether a DHT segment comes before the first SOS.
    pub has_dht: bool,
    /// Bytes up to and including the EOI marker; anything after it is ignored.
    pub len: usize,
}

/// Walks the markers of a JPEG stream to its EOI.
///
/// # Errors
/// [`FrameError::NotJpeg`] without an SOI marker at the start, [`FrameError::Truncated`]
/// when a segment or the entropy-coded data runs past the end before EOI, and
/// [`FrameError::CorruptJpeg`] when bytes stand where a marker must be.
pub fn scan(data: &[u8]) -> Result<JpegLayout, FrameError> {
    if data.len() < 2 || data[0] != 0xFF || data[1] != SOI {
        return Err(FrameError::NotJpeg);
    }
    let mut pos = 2;
    let mut has_dht = false;
    let mut first_sos = None;
    loop {
        let (marker_start, marker) = next_marker(data, pos)?;
        pos = marker_start + 2;
        match marker {
            EOI => {
                let Some(first_sos) = first_sos else {
                    return Err(FrameError::CorruptJpeg(
                        "EOI marker before any SOS marker, so the frame contains no image data"
                            .into(),
                    ));
                };
                return Ok(JpegLayout {
                    first_sos,
                    has_dht,
                    len: pos,
                });
            }
            0xD0..=0xD7 | TEM => continue,
            _ => {}
        }

        let segment_end = segment_end(data, pos)?;
        if marker == DHT && first_sos.is_none() {
            has_dht = true;
        }
        pos = segment_end;
        if marker == SOS {
            first_sos.get_or_insert(marker_start);
            pos = skip_entropy_coded(data, pos)?;
        }
    }
}

/// Finds the marker at `pos`, skipping the 0xFF fill bytes that may precede it.
fn next_marker(data: &[u8], mut pos: usize) -> Result<(usize, u8), FrameError> {
    match data.get(pos) {
        None => return Err(FrameError::Truncated),
        Some(0xFF) => {}
        Some(byte) => {
            return Err(FrameError::CorruptJpeg(format!(
                "byte 0x{byte:02X} at offset {pos} where a marker must start"
            )))
        }
    }
    while data.get(pos + 1) == Some(&0xFF) {
        pos += 1;
    }
    match data.get(pos + 1) {
        None => Err(FrameError::Truncated),
        Some(&marker) => Ok((pos, marker)),
    }
}

/// Returns the end of the segment whose 2-byte length field starts at `pos`.
fn segment_end(data: &[u8], pos: usize) -> Result<usize, FrameError> {
    let length = match data.get(pos..pos + 2) {
        Some(bytes) => usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
        None => return Err(FrameError::Truncated),
    };
    if length < 2 {
        return Err(FrameError::CorruptJpeg(format!(
            "segment length {length} at offset {pos} is below the minimum of 2"
        )));
    }
    let end = pos + length;
    if end > data.len() {
        return Err(FrameError::Truncated);
    }
    Ok(end)
}

/// Skips entropy-coded data to the next marker other than a restart marker. Inside it,
/// 0xFF is followed by 0x00 (a stuffed byte), RST0..RST7, or fill bytes.
fn skip_entropy_coded(data: &[u8], mut pos: usize) -> Result<usize, FrameError> {
    loop {
        let offset = data
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&byte| byte == 0xFF))
            .ok_or(FrameError::Truncated)?;
        pos += offset;
        match data.get(pos + 1) {
            None => return Err(FrameError::Truncated),
            Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
            Some(0xFF) => pos += 1,
            Some(_) => return Ok(pos),
        }
    }
}

/// Writes one DHT segment holding the four tables of JPEG (ITU-T T.81) Annex K.3: DC and
/// AC, luminance (table 0) and chrominance (table 1).
pub fn push_standard_dht(out: &mut Vec<u8>) {
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_LUMINANCE_BITS, &DC_VALUES),
        (0x10, &AC_LUMINANCE_BITS, &AC_LUMINANCE_VALUES),
        (0x01, &DC_CHROMINANCE_BITS, &DC_VALUES),
        (0x11, &AC_CHROMINANCE_BITS, &AC_CHROMINANCE_VALUES),
    ];
    let length: usize = 2 + tables
        .iter()
        .map(|(_, bits, values)| 1 + bits.len() + values.len())
        .sum::<usize>();

    out.extend_from_slice(&[0xFF, DHT]);
    out.extend_from_slice(&(length as u16).to_be_bytes());
    for (class_and_id, bits, values) in tables {
        out.push(class_and_id);
        out.extend_from_slice(bits);
        out.extend_from_slice(values);
    }
}

// Table K.3: code lengths 1..16 of the luminance DC table.
const DC_LUMINANCE_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
// Table K.4: code lengths of the chrominance DC table.
const DC_CHROMINANCE_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
// Both DC tables code the categories 0..11 in order.
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

// Table K.5: the luminance AC table, code lengths then run/size symbols by code.
const AC_LUMINANCE_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
#[rustfmt::skip]
const AC_LUMINANCE_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

// Table K.6: the chrominance AC table.
const AC_CHROMINANCE_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const AC_CHROMINANCE_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// Decodes MJPEG frames, keeping one scratch buffer for frames that need tables inserted.
#[derive(Debug, Default)]
pub struct MjpegDecoder {
    scratch: Vec<u8>,
}

impl MjpegDecoder {
    /// Decodes one JPEG image into `frame` as `output`.
    ///
    /// `payload` is the first `bytesused` bytes of the buffer; anything after the EOI
    /// marker is ignored. Without a DHT segment before the first SOS, the standard tables
    /// of Annex K.3 are inserted. The image must be `width` x `height`.
    ///
    /// # Errors
    /// A [`FrameError`] for a frame that is truncated, corrupt, of another size, larger
    /// than `limits`, or in a colour model other than grey or YCbCr/RGB.
    pub fn decode(
        &mut self,
        payload: &[u8],
        (width, height): (u32, u32),
        output: PixelFormat,
        limits: &Limits,
        frame: &mut Frame,
    ) -> Result<(), FrameError> {
        let layout = scan(payload)?;
        let jpeg = self.with_tables(&payload[..layout.len], &layout);

        let mut decoder = jpeg_decoder::Decoder::new(jpeg);
        decoder.set_max_decoding_buffer_size(limits.max_frame_bytes as usize);
        decoder.read_info().map_err(jpeg_error)?;
        let info = decoder.info().ok_or(FrameError::Truncated)?;
        let size = (u32::from(info.width), u32::from(info.height));
        if size != (width, height) {
            return Err(FrameError::SizeMismatch {
                width: size.0,
                height: size.1,
                expected_width: width,
                expected_height: height,
            });
        }

        // NOTE: jpeg-decoder returns a new Vec per image, so MJPEG capture allocates once
        // per frame, unlike the uncompressed formats.
        let pixels = decoder.decode().map_err(jpeg_error)?;
        write_pixels(&pixels, info.pixel_format, size, output, frame)
    }

    /// Inserts the standard Huffman tables before the first SOS of a stream that has none,
    /// and returns the stream to decode.
    fn with_tables<'a>(&'a mut self, jpeg: &'a [u8], layout: &JpegLayout) -> &'a [u8] {
        if layout.has_dht {
            return jpeg;
        }
        let (head, tail) = jpeg.split_at(layout.first_sos);
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        push_standard_dht(&mut self.scratch);
        self.scratch.extend_from_slice(tail);
        &self.scratch
    }
}

fn jpeg_error(error: jpeg_decoder::Error) -> FrameError {
    FrameError::CorruptJpeg(error.to_string())
}

fn write_pixels(
    pixels: &[u8],
    format: jpeg_decoder::PixelFormat,
    (width, height): (u32, u32),
    output: PixelFormat,
    frame: &mut Frame,
) -> Result<(), FrameError> {
    let channels = match format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => {
            return Err(FrameError::CorruptJpeg(format!(
                "JPEG pixel format {other:?} is not supported: expected grey or YCbCr"
            )))
        }
    };
    let expected = width as usize * height as usize * channels;
    if pixels.len() != expected {
        return Err(FrameError::Short {
            bytesused: pixels.len(),
            needed: expected,
        });
    }

    frame.reset(width, height, output);
    match (channels, output) {
        (1, PixelFormat::Gray8) | (3, PixelFormat::Rgb8) => frame.data.copy_from_slice(pixels),
        (1, PixelFormat::Rgb8) => {
            for (sample, rgb) in pixels.iter().zip(frame.data.chunks_exact_mut(3)) {
                rgb.fill(*sample);
            }
        }
        _ => {
            for (rgb, luma) in pixels.chunks_exact(3).zip(frame.data.iter_mut()) {
                *luma = rgb_to_luma(rgb[0], rgb[1], rgb[2]);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_tables_are_consistent() {
        let tables: [(&[u8; 16], &[u8]); 4] = [
            (&DC_LUMINANCE_BITS, &DC_VALUES),
            (&DC_CHROMINANCE_BITS, &DC_VALUES),
            (&AC_LUMINANCE_BITS, &AC_LUMINANCE_VALUES),
            (&AC_CHROMINANCE_BITS, &AC_CHROMINANCE_VALUES),
        ];
        for (bits, values) in tables {
            let count: usize = bits.iter().map(|&n| usize::from(n)).sum();
            assert_eq!(count, values.len());
            let mut sorted = values.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), values.len(), "duplicate symbols");
        }
        // AC symbols are run/size pairs: EOB, ZRL (0xF0), runs 0..15 with sizes 1..10.
        let expected: usize = 2 + 16 * 10;
        assert_eq!(AC_LUMINANCE_VALUES.len(), expected);
        for &symbol in AC_LUMINANCE_VALUES.iter().chain(&AC_CHROMINANCE_VALUES) {
            let size = symbol & 0x0F;
            assert!(symbol == 0x00 || symbol == 0xF0 || (1..=10).contains(&size));
        }
    }

    #[test]
    fn dht_segment_length_field() {
        let mut segment = Vec::new();
        push_standard_dht(&mut segment);
        let length = usize::from(u16::from_be_bytes([segment[2], segment[3]]));
        assert_eq!(segment.len(), 2 + length);
        // 4 table headers of 1 + 16 bytes, 12 + 12 DC and 162 + 162 AC symbols.
        assert_eq!(length, 2 + 4 * 17 + 12 + 12 + 162 + 162);
    }

    #[test]
    fn scan_rejects_broken_streams() {
        assert_eq!(scan(&[]), Err(FrameError::NotJpeg));
        assert_eq!(scan(&[0x00, 0xD8]), Err(FrameError::NotJpeg));
        assert_eq!(scan(&[0xFF, 0xD8]), Err(FrameError::Truncated));
        // An APP0 segment whose length runs past the end.
        assert_eq!(
            scan(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0]),
            Err(FrameError::Truncated)
        );
        // A segment length below 2.
        assert!(matches!(
            scan(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]),
            Err(FrameError::CorruptJpeg(_))
        ));
        // EOI without a scan.
        assert!(matches!(
            scan(&[0xFF, 0xD8, 0xFF, 0xD9]),
            Err(FrameError::CorruptJpeg(_))
        ));
        // A scan whose entropy-coded data never reaches EOI.
        let open_scan = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34];
        assert_eq!(scan(&open_scan), Err(FrameError::Truncated));
    }

    #[test]
    fn scan_finds_eoi_past_stuffing_and_restarts() {
        let stream = [
            0xFF, 0xD8, // SOI
            0xFF, 0xC4, 0x00, 0x02, // an empty DHT
            0xFF, 0xFF, 0xDA, 0x00, 0x02, // SOS after a fill byte
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56, // data, stuffed 0xFF, RST3
            0xFF, 0xD9, // EOI
            0xAB, 0xCD, // garbage after the image
        ];
        let layout = scan(&stream).unwrap();
        assert_eq!(layout.first_sos, 7);
        assert!(layout.has_dht);
        assert_eq!(layout.len, stream.len() - 2);
    }
}
