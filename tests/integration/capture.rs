//! Capture layer: decoders on fake buffers, MJPEG table insertion, and the capture source
//! on the mock device.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ceus_edge::capture::decode::{decode_raw, DecodeOptions, YuvRange};
use ceus_edge::capture::format::{BufferFormat, FourCc, PlaneLayout};
use ceus_edge::capture::mjpeg::{push_standard_dht, MjpegDecoder};
use ceus_edge::capture::FrameError;
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::source::Limits;

use crate::common::repo_root;

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = repo_root().join("tests/fixtures/capture").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn reference(name: &str) -> serde_json::Value {
    let text = String::from_utf8(fixture("reference.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[name].clone()
}

fn buffer_format(fourcc: &str, width: u32, height: u32, bpl: u32, size: u32) -> BufferFormat {
    BufferFormat {
        width,
        height,
        fourcc: FourCc::parse(fourcc).unwrap(),
        bytesperline: bpl,
        sizeimage: size,
    }
}

fn layout(format: &BufferFormat) -> PlaneLayout {
    PlaneLayout::resolve(format, &Limits::default()).unwrap()
}

fn decode_jpeg(jpeg: &[u8], size: (u32, u32), output: PixelFormat) -> Result<Frame, FrameError> {
    let mut frame = Frame::empty();
    MjpegDecoder::default().decode(jpeg, size, output, &Limits::default(), &mut frame)?;
    Ok(frame)
}

/// Lists the segments of a JPEG stream before its first SOS as (marker, offset, length).
fn segments_before_scan(jpeg: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut segments = Vec::new();
    let mut pos = 2;
    loop {
        assert_eq!(jpeg[pos], 0xFF, "marker expected at {pos}");
        let marker = jpeg[pos + 1];
        if marker == 0xDA {
            return segments;
        }
        let length = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        segments.push((marker, pos, 2 + length));
        pos += 2 + length;
    }
}

/// Cuts every DHT segment out of a stream, as a UVC grabber sends it.
fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
    let mut stripped = jpeg.to_vec();
    for (marker, offset, length) in segments_before_scan(jpeg).into_iter().rev() {
        if marker == 0xC4 {
            stripped.drain(offset..offset + length);
        }
    }
    stripped
}

/// Collects the Huffman tables of DHT segment bodies, keyed by class and id.
fn huffman_tables(segment_bodies: &[&[u8]]) -> BTreeMap<u8, Vec<u8>> {
    let mut tables = BTreeMap::new();
    for body in segment_bodies {
        let mut rest = *body;
        while !rest.is_empty() {
            let class_and_id = rest[0];
            let count: usize = rest[1..17].iter().map(|&n| usize::from(n)).sum();
            tables.insert(class_and_id, rest[1..17 + count].to_vec());
            rest = &rest[17 + count..];
        }
    }
    tables
}

fn dht_bodies(jpeg: &[u8]) -> Vec<&[u8]> {
    segments_before_scan(jpeg)
        .into_iter()
        .filter(|(marker, _, _)| *marker == 0xC4)
        .map(|(_, offset, length)| &jpeg[offset + 4..offset + length])
        .collect()
}

#[test]
fn inserted_tables_match_libjpeg_standard_tables() {
    let jpeg = fixture("colour_422.jpg");
    let from_libjpeg = huffman_tables(&dht_bodies(&jpeg));
    assert_eq!(
        from_libjpeg.len(),
        4,
        "the fixture should carry all four tables"
    );

    let mut segment = Vec::new();
    push_standard_dht(&mut segment);
    let inserted = huffman_tables(&[&segment[4..]]);
    assert_eq!(inserted, from_libjpeg);
}

#[test]
fn mjpeg_without_dht_decodes_identically() {
    for (name, output) in [
        ("colour_422.jpg", PixelFormat::Rgb8),
        ("colour_422.jpg", PixelFormat::Gray8),
        ("grey.jpg", PixelFormat::Gray8),
    ] {
        let jpeg = fixture(name);
        let stripped = strip_dht(&jpeg);
        assert!(dht_bodies(&stripped).is_empty());
        assert!(stripped.len() < jpeg.len());

        let size = image_size(name);
        let original = decode_jpeg(&jpeg, size, output).unwrap();
        let rebuilt = decode_jpeg(&stripped, size, output).unwrap();
        assert_eq!(original.data, rebuilt.data, "{name} as {output:?}");
    }
}

fn image_size(name: &str) -> (u32, u32) {
    let reference = reference(name);
    (
        reference["width"].as_u64().unwrap() as u32,
        reference["height"].as_u64().unwrap() as u32,
    )
}

#[test]
fn mjpeg_agrees_with_pillow_means() {
    // libjpeg (behind Pillow) and jpeg-decoder differ in IDCT rounding and chroma
    // upsampling by a few levels on single pixels; the channel means stay within 1.
    for (name, output, channels) in [
        ("colour_422.jpg", PixelFormat::Rgb8, 3),
        ("grey.jpg", PixelFormat::Gray8, 1),
    ] {
        let frame = decode_jpeg(&strip_dht(&fixture(name)), image_size(name), output).unwrap();
        let expected = reference(name)["channel_means"].clone();
        for channel in 0..channels {
            let samples: Vec<f64> = frame
                .data
                .iter()
                .skip(channel)
                .step_by(channels)
                .map(|&v| f64::from(v))
                .collect();
            let mean = samples.iter().sum::<f64>() / samples.len() as f64;
            let expected = expected[channel].as_f64().unwrap();
            assert!(
                (mean - expected).abs() < 1.0,
                "{name} channel {channel}: {mean} vs Pillow {expected}"
            );
        }
    }
}

#[test]
fn mjpeg_garbage_after_eoi_ignored() {
    let jpeg = strip_dht(&fixture("colour_422.jpg"));
    let clean = decode_jpeg(&jpeg, (64, 48), PixelFormat::Rgb8).unwrap();

    let mut padded = jpeg.clone();
    padded.extend((0..1000).map(|i| (i * 37 % 256) as u8));
    let decoded = decode_jpeg(&padded, (64, 48), PixelFormat::Rgb8).unwrap();
    assert_eq!(decoded.data, clean.data);
}

#[test]
fn truncated_mjpeg_is_an_error_at_every_length() {
    let jpeg = strip_dht(&fixture("colour_422.jpg"));
    for len in 0..jpeg.len() - 1 {
        let result = decode_jpeg(&jpeg[..len], (64, 48), PixelFormat::Rgb8);
        assert!(result.is_err(), "truncated to {len} bytes decoded");
    }
}

#[test]
fn mjpeg_of_wrong_size_rejected() {
    let result = decode_jpeg(&fixture("grey.jpg"), (64, 48), PixelFormat::Gray8);
    assert!(matches!(result, Err(FrameError::SizeMismatch { .. })));
}

#[test]
fn rgb24_real_stride_from_sizeimage() {
    // 6 pixels of 3 bytes are 18 bytes, padded by the driver to 32; it claims 24.
    let (width, height, real_stride) = (6u32, 4u32, 32usize);
    let format = buffer_format("RGB3", width, height, 24, (real_stride * 4) as u32);
    let mut payload = vec![0xAAu8; real_stride * height as usize];
    for y in 0..height as usize {
        for x in 0..width as usize {
            let pixel = &mut payload[y * real_stride + x * 3..][..3];
            pixel.copy_from_slice(&[(10 * x) as u8, (50 * y) as u8, 7]);
        }
    }

    let mut frame = Frame::empty();
    let options = DecodeOptions {
        output: PixelFormat::Rgb8,
        range: YuvRange::Limited,
    };
    decode_raw(&layout(&format), &payload, options, &mut frame).unwrap();
    for y in 0..height {
        for x in 0..width as usize {
            let got = &frame.row(y)[x * 3..x * 3 + 3];
            assert_eq!(got, [(10 * x) as u8, (50 * y) as u8, 7], "pixel {x},{y}");
        }
    }
}

#[test]
fn same_bytes_differ_by_fourcc() {
    let bytes = [16, 128, 235, 128];
    let options = DecodeOptions {
        output: PixelFormat::Rgb8,
        range: YuvRange::Limited,
    };
    let mut yuyv = Frame::empty();
    decode_raw(
        &layout(&buffer_format("YUYV", 2, 1, 4, 4)),
        &bytes,
        options,
        &mut yuyv,
    )
    .unwrap();
    assert_eq!(yuyv.data, [0, 0, 0, 255, 255, 255]);

    let mut uyvy = Frame::empty();
    decode_raw(
        &layout(&buffer_format("UYVY", 2, 1, 4, 4)),
        &bytes,
        options,
        &mut uyvy,
    )
    .unwrap();
    assert_ne!(uyvy.data, yuyv.data);
    // Both UYVY pixels share Y = 128, so they are equal.
    assert_eq!(uyvy.data[..3], uyvy.data[3..]);
}
