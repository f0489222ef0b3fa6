//! RLE Lossless decoding (PS3.5 Annex G).
//!
//! A frame is a 64-byte header (the segment count and up to 15 segment offsets, little
//! endian) followed by PackBits-coded segments. Segment `k` holds byte `k % b` (0 the most
//! significant) of sample `k / b` of every pixel, for `b` bytes per sample.

use crate::source::SourceError;

const HEADER_LEN: usize = 64;
const MAX_SEGMENTS: usize = 15;

/// Decodes one RLE frame of `pixels` pixels into `out` as pixel-interleaved samples, each
/// sample `bytes_per_sample` bytes long in little-endian order.
///
/// Errors: [`SourceError::Malformed`] naming `frame` when the header is invalid, the segment
/// count does not match `samples_per_pixel * bytes_per_sample`, or a segment decodes to
/// fewer than `pixels` bytes. Extra bytes in a segment are ignored.
pub fn decode_frame(
    data: &[u8],
    pixels: usize,
    samples_per_pixel: usize,
    bytes_per_sample: usize,
    frame: u64,
    out: &mut Vec<u8>,
) -> Result<(), SourceError> {
    let malformed = |what: String| SourceError::Malformed(format!("RLE frame {frame}: {what}"));
    let Some(header) = data.get(..HEADER_LEN) else {
        return Err(malformed(format!(
            "{} bytes are too few for the 64-byte RLE header",
            data.len()
        )));
    };
    let word = |i: usize| {
        u32::from_le_bytes([
            header[4 * i],
            header[4 * i + 1],
            header[4 * i + 2],
            header[4 * i + 3],
        ])
    };

    let segment_count = word(0) as usize;
    let expected = samples_per_pixel * bytes_per_sample;
    if segment_count != expected || segment_count > MAX_SEGMENTS {
        return Err(malformed(format!(
            "the header declares {segment_count} segments, expected {expected}"
        )));
    }
    let offsets: Vec<usize> = (1..=segment_count).map(|i| word(i) as usize).collect();

    out.clear();
    out.resize(pixels * expected, 0);
    let mut segment = Vec::with_capacity(pixels);
    for (k, &start) in offsets.iter().enumerate() {
        let end = offsets.get(k + 1).copied().unwrap_or(data.len());
        if start < HEADER_LEN || start > end || end > data.len() {
            return Err(malformed(format!(
                "segment {k} spans bytes {start}..{end} of a {}-byte frame",
                data.len()
            )));
        }
        unpack_bits(&data[start..end], pixels, &mut segment);
        if segment.len() < pixels {
            return Err(malformed(format!(
                "segment {k} decodes to {} bytes, expected {pixels}",
                segment.len()
            )));
        }
        scatter_segment(&segment, k, samples_per_pixel, bytes_per_sample, out);
    }
    Ok(())
}

/// Copies segment `k` into its byte of each little-endian sample of `out`.
fn scatter_segment(
    segment: &[u8],
    k: usize,
    samples_per_pixel: usize,
    bytes_per_sample: usize,
    out: &mut [u8],
) {
    let sample = k / bytes_per_sample;
    let byte_in_sample = bytes_per_sample - 1 - k % bytes_per_sample;
    let pixel_stride = samples_per_pixel * bytes_per_sample;
    let first = sample * bytes_per_sample + byte_in_sample;
    for (slot, &value) in out[first..].iter_mut().step_by(pixel_stride).zip(segment) {
        *slot = value;
    }
}

/// PackBits decoding of `input`, stopping after `limit` output bytes.
///
/// A header byte `n` of 0..=127 copies the next `n + 1` bytes, -127..=-1 repeats the next
/// byte `1 - n` times, and -128 is a no-op. A run cut short by the end of input is kept.
fn unpack_bits(input: &[u8], limit: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < input.len() && out.len() < limit {
        let n = input[i] as i8;
        i += 1;
        if n >= 0 {
            let count = n as usize + 1;
            let end = (i + count).min(input.len());
            out.extend_from_slice(&input[i..end]);
            i = end;
        } else if n != -128 {
            let count = (1 - i32::from(n)) as usize;
            if let Some(&value) = input.get(i) {
                out.resize(out.len() + count, value);
            }
            i += 1;
        }
    }
    out.truncate(limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_bits_literal_and_run() {
        let mut out = Vec::new();
        // Literal of 3 bytes, a run of 4 times 9, then a no-op.
        unpack_bits(&[2, 1, 2, 3, 0xFD, 9, 0x80], 100, &mut out);
        assert_eq!(out, [1, 2, 3, 9, 9, 9, 9]);
    }

    #[test]
    fn rle_header_too_short() {
        let mut out = Vec::new();
        let error = decode_frame(&[0; 10], 4, 1, 1, 3, &mut out).unwrap_err();
        assert!(error.to_string().contains("RLE frame 3"), "{error}");
    }
}
