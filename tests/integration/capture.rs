//! Capture layer: decoders on fake buffers, MJPEG table insertion, and the capture source
//! on the mock device.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ceus_edge::capture::decode::{decode_raw, DecodeOptions};
use ceus_edge::capture::format::{BufferFormat, FourCc, PlaneLayout, QUANTIZATION_DEFAULT};
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
        colorspace: 0,
        quantization: QUANTIZATION_DEFAULT,
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

mod on_mock_device {
    use std::time::Duration;

    use ceus_edge::capture::device::{CaptureDevice, BUF_FLAG_ERROR};
    use ceus_edge::capture::format::{
        QUANTIZATION_DEFAULT, QUANTIZATION_FULL_RANGE, QUANTIZATION_LIM_RANGE,
    };
    use ceus_edge::capture::mock::{MockDevice, MockEvent};
    use ceus_edge::capture::source::{CaptureOptions, CaptureSource};
    use ceus_edge::capture::{CaptureError, FrameError};
    use ceus_edge::frame::{Frame, PixelFormat};
    use ceus_edge::source::{FrameSource, SourceError};

    use super::{buffer_format, fixture, strip_dht};

    const PAGE: usize = 4096;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn options(output: PixelFormat) -> CaptureOptions {
        let mut options = CaptureOptions::default();
        options.decode.output = output;
        options.timeout = ms(500);
        options
    }

    /// Makes a 4x2 YUYV image whose luma ramps up from `level`.
    fn yuyv_payload(level: u8) -> Vec<u8> {
        (0..8)
            .flat_map(|i| [level.saturating_add(i * 10), 128])
            .collect()
    }

    fn yuyv_source(events: Vec<MockEvent>) -> CaptureSource<MockDevice> {
        let device = MockDevice::new(buffer_format("YUYV", 4, 2, 8, 16), 2, events);
        CaptureSource::new(device, options(PixelFormat::Gray8)).unwrap()
    }

    /// Makes a frame whose mapping is page-rounded, with garbage after the payload.
    fn page_rounded(payload: &[u8], sequence: u32, timestamp: Duration) -> MockEvent {
        let mut mapping = payload.to_vec();
        mapping.extend((payload.len()..PAGE).map(|i| (i * 131 % 251) as u8));
        MockEvent::Frame {
            mapping,
            bytesused: payload.len() as u32,
            sequence,
            timestamp,
            flags: 0,
        }
    }

    #[test]
    fn yuyv_garbage_past_bytesused_ignored() {
        let payload = yuyv_payload(40);
        let mut exact = yuyv_source(vec![MockEvent::frame(&payload, 0, ms(10))]);
        let mut padded = yuyv_source(vec![page_rounded(&payload, 0, ms(10))]);

        let (mut expected, mut got) = (Frame::empty(), Frame::empty());
        exact.capture(&mut expected).unwrap();
        padded.capture(&mut got).unwrap();
        assert_eq!(got.data, expected.data);
        assert_eq!(got.data.len(), 8);
    }

    /// Captures one GREY frame whose samples are 16, 126 and 235, from a device that
    /// reports `quantization`.
    fn grey_levels(quantization: u32) -> Vec<u8> {
        let mut format = buffer_format("GREY", 4, 1, 4, 4);
        format.quantization = quantization;
        let event = MockEvent::frame(&[16, 126, 235, 235], 0, ms(10));
        let device = MockDevice::new(format, 2, vec![event]);
        let mut source = CaptureSource::new(device, options(PixelFormat::Gray8)).unwrap();
        let mut frame = Frame::empty();
        source.capture(&mut frame).unwrap();
        frame.data
    }

    #[test]
    fn grey_follows_the_reported_quantization() {
        assert_eq!(grey_levels(QUANTIZATION_DEFAULT), [0, 128, 255, 255]);
        assert_eq!(grey_levels(QUANTIZATION_LIM_RANGE), [0, 128, 255, 255]);
        assert_eq!(grey_levels(QUANTIZATION_FULL_RANGE), [16, 126, 235, 235]);
    }

    #[test]
    fn mjpeg_garbage_past_bytesused_ignored() {
        let jpeg = strip_dht(&fixture("colour_422.jpg"));
        let format = buffer_format("MJPG", 64, 48, 0, PAGE as u32);
        let source = |event| {
            let device = MockDevice::new(format, 2, vec![event]);
            CaptureSource::new(device, options(PixelFormat::Rgb8)).unwrap()
        };
        let mut exact = source(MockEvent::frame(&jpeg, 0, ms(10)));
        let mut padded = source(page_rounded(&jpeg, 0, ms(10)));

        let (mut expected, mut got) = (Frame::empty(), Frame::empty());
        exact.capture(&mut expected).unwrap();
        padded.capture(&mut got).unwrap();
        assert_eq!(got.data, expected.data);
        assert_eq!(got.data.len(), 64 * 48 * 3);
    }

    #[test]
    fn disconnect_after_three_frames() {
        let mut events: Vec<MockEvent> = (0..3)
            .map(|i| MockEvent::frame(&yuyv_payload(i as u8), i, ms(100 + 33 * u64::from(i))))
            .collect();
        events.push(MockEvent::Disconnect);
        let mut source = yuyv_source(events);
        let mut frame = Frame::empty();

        for expected_index in 0..3 {
            assert!(source.read_frame(&mut frame).unwrap());
            assert_eq!(frame.index, expected_index);
        }
        let error = source.read_frame(&mut frame).unwrap_err();
        assert!(
            matches!(
                error,
                SourceError::Capture(CaptureError::Disconnected { .. })
            ),
            "{error}"
        );
        // One poll per frame and one for the disconnect: no busy loop.
        assert_eq!(source.device().counters().polls, 4);
        assert_eq!(source.device().counters().queues, 3);
    }

    #[test]
    fn never_ready_times_out_once() {
        let mut source = yuyv_source(Vec::new());
        let start = source.device().clock();
        let mut frame = Frame::empty();

        let error = source.capture(&mut frame).unwrap_err();
        assert!(
            matches!(error, CaptureError::Timeout { timeout, .. } if timeout == ms(500)),
            "{error}"
        );
        assert_eq!(source.device().counters().polls, 1);
        assert_eq!(source.device().clock() - start, ms(500));
    }

    #[test]
    fn spurious_wakeups_bounded() {
        let events = vec![MockEvent::SpuriousWakeup; 100];
        let mut source = yuyv_source(events);
        let error = source.capture(&mut Frame::empty()).unwrap_err();
        assert!(matches!(error, CaptureError::Io { .. }), "{error}");
        assert_eq!(source.device().counters().polls, 8);
        assert_eq!(source.stats().spurious_wakeups, 8);
    }

    #[test]
    fn spurious_wakeup_then_frame() {
        let events = vec![
            MockEvent::SpuriousWakeup,
            MockEvent::frame(&yuyv_payload(0), 0, ms(5)),
        ];
        let mut source = yuyv_source(events);
        source.capture(&mut Frame::empty()).unwrap();
        assert_eq!(source.stats().spurious_wakeups, 1);
        assert_eq!(source.device().counters().polls, 2);
    }

    #[test]
    fn sequence_gaps_count_drops() {
        let sequences = [10, 11, 14, 15, 19];
        let events = sequences
            .iter()
            .map(|&s| MockEvent::frame(&yuyv_payload(0), s, ms(u64::from(s) * 33)))
            .collect();
        let mut source = yuyv_source(events);
        let mut frame = Frame::empty();
        let mut dropped_before = Vec::new();
        for _ in sequences {
            dropped_before.push(source.capture(&mut frame).unwrap().dropped_before);
        }
        assert_eq!(dropped_before, [0, 0, 2, 0, 3]);
        assert_eq!(source.stats().dropped, 5);
        assert_eq!(source.stats().delivered, 5);
    }

    #[test]
    fn sequence_wrap_is_not_a_drop() {
        let events = vec![
            MockEvent::frame(&yuyv_payload(0), u32::MAX, ms(10)),
            MockEvent::frame(&yuyv_payload(0), 0, ms(20)),
        ];
        let mut source = yuyv_source(events);
        let mut frame = Frame::empty();
        source.capture(&mut frame).unwrap();
        source.capture(&mut frame).unwrap();
        assert_eq!(source.stats().dropped, 0);
    }

    #[test]
    fn non_increasing_timestamps_fall_back() {
        let timestamps = [1000, 1033, 1033, 1020, 1100];
        let events = timestamps
            .iter()
            .enumerate()
            .map(|(i, &t)| MockEvent::frame(&yuyv_payload(0), i as u32, ms(t)))
            .collect();
        let mut source = yuyv_source(events);
        let mut frame = Frame::empty();
        let mut times = Vec::new();
        let mut dequeue_timed = Vec::new();
        for _ in timestamps {
            let captured = source.capture(&mut frame).unwrap();
            times.push(frame.time_s);
            dequeue_timed.push(captured.dequeue_timed);
        }

        assert_eq!(times[0], 0.0);
        assert!((times[1] - 0.033).abs() < 1e-9, "{times:?}");
        for pair in times.windows(2) {
            assert!(pair[1] > pair[0], "time does not increase: {times:?}");
        }
        assert_eq!(dequeue_timed, [false, false, true, true, true]);
        assert_eq!(source.stats().non_increasing_timestamps, 2);
        // After the fallback, frames advance by the mock's dequeue interval of 33.333 ms.
        assert!((times[3] - times[2] - 0.033_333).abs() < 1e-9, "{times:?}");
    }

    #[test]
    fn truncated_mjpeg_dropped_then_next_decodes() {
        let jpeg = strip_dht(&fixture("colour_422.jpg"));
        let truncated = &jpeg[..jpeg.len() / 2];
        let events = vec![
            MockEvent::frame(&jpeg, 0, ms(10)),
            MockEvent::frame(truncated, 1, ms(20)),
            MockEvent::frame(&jpeg, 2, ms(30)),
        ];
        let device = MockDevice::new(buffer_format("MJPG", 64, 48, 0, 0), 2, events.clone());
        let mut source = CaptureSource::new(device, options(PixelFormat::Gray8)).unwrap();
        let mut frame = Frame::empty();

        source.capture(&mut frame).unwrap();
        let error = source.capture(&mut frame).unwrap_err();
        assert!(
            matches!(
                error,
                CaptureError::Frame {
                    sequence: 1,
                    error: FrameError::Truncated
                }
            ),
            "{error}"
        );
        source.capture(&mut frame).unwrap();
        assert_eq!(source.stats().bad, 1);
        assert_eq!(source.stats().delivered, 2);

        // Through FrameSource the bad frame is skipped.
        let device = MockDevice::new(buffer_format("MJPG", 64, 48, 0, 0), 2, events);
        let mut source = CaptureSource::new(device, options(PixelFormat::Gray8)).unwrap();
        assert!(source.read_frame(&mut frame).unwrap());
        assert!(source.read_frame(&mut frame).unwrap());
        assert_eq!(frame.index, 1);
        assert_eq!(source.stats().bad, 1);
    }

    #[test]
    fn consecutive_bad_frames_limit() {
        let mut events = vec![MockEvent::frame(&[0u8; 3], 0, ms(10)); 4];
        events.push(MockEvent::frame(&yuyv_payload(0), 4, ms(50)));
        let device = MockDevice::new(buffer_format("YUYV", 4, 2, 8, 16), 2, events);
        let mut options = options(PixelFormat::Gray8);
        options.max_consecutive_bad_frames = 3;
        let mut source = CaptureSource::new(device, options).unwrap();

        let error = source.read_frame(&mut Frame::empty()).unwrap_err();
        assert!(matches!(
            error,
            SourceError::Capture(CaptureError::Frame {
                error: FrameError::Short { .. },
                ..
            })
        ));
        assert_eq!(source.stats().bad, 4);
    }

    #[test]
    fn driver_error_flag_and_bad_bytesused_dropped() {
        let payload = yuyv_payload(0);
        let flagged = MockEvent::Frame {
            mapping: payload.clone(),
            bytesused: 16,
            sequence: 0,
            timestamp: ms(10),
            flags: BUF_FLAG_ERROR,
        };
        let oversized = MockEvent::Frame {
            mapping: payload.clone(),
            bytesused: 17,
            sequence: 1,
            timestamp: ms(20),
            flags: 0,
        };
        let mut source = yuyv_source(vec![flagged, oversized]);
        let mut frame = Frame::empty();

        let first = source.capture(&mut frame).unwrap_err();
        assert!(matches!(
            first,
            CaptureError::Frame {
                error: FrameError::DriverError,
                ..
            }
        ));
        let second = source.capture(&mut frame).unwrap_err();
        assert!(matches!(
            second,
            CaptureError::Frame {
                error: FrameError::BytesusedBeyondBuffer {
                    bytesused: 17,
                    length: 16
                },
                ..
            }
        ));
        assert_eq!(source.device().counters().queues, 2);
    }

    #[test]
    fn buffers_requeued_and_frame_reused() {
        // Two buffer slots and six frames: only a source that queues each buffer back
        // gets past the second frame.
        let events = (0..6)
            .map(|i| MockEvent::frame(&yuyv_payload(i as u8 * 20), i, ms(u64::from(i) * 33 + 1)))
            .collect();
        let mut source = yuyv_source(events);
        let mut frame = Frame::empty();
        source.capture(&mut frame).unwrap();
        let buffer = frame.data.as_ptr();
        for _ in 1..6 {
            source.capture(&mut frame).unwrap();
            assert_eq!(frame.data.as_ptr(), buffer);
        }
        assert_eq!(source.device().counters().queues, 6);
        assert_eq!(frame.data[0], super::limited_to_full(100));
    }

    #[test]
    fn reopen_after_disconnect() {
        let device = MockDevice::new(
            buffer_format("YUYV", 4, 2, 8, 16),
            2,
            vec![
                MockEvent::frame(&yuyv_payload(0), 7, ms(10)),
                MockEvent::Disconnect,
            ],
        )
        .then_after_reopen(vec![MockEvent::frame(&yuyv_payload(0), 0, ms(500))]);
        let mut source = CaptureSource::new(device, options(PixelFormat::Gray8)).unwrap();
        let mut frame = Frame::empty();

        source.capture(&mut frame).unwrap();
        assert!(matches!(
            source.capture(&mut frame),
            Err(CaptureError::Disconnected { .. })
        ));
        source.reopen().unwrap();
        source.capture(&mut frame).unwrap();
        assert_eq!(source.stats().dropped, 0, "sequence restart is not a drop");
        assert!(frame.time_s > 0.0);
        assert_eq!(source.device().counters().reopens, 1);

        // A second reopen finds no device.
        assert!(source.device().path().starts_with("/dev"));
        assert!(matches!(
            source.reopen(),
            Err(CaptureError::Disconnected { .. })
        ));
    }
}

/// Expands a BT.601 limited-range luma sample to full range, from the definition.
fn limited_to_full(y: u8) -> u8 {
    ((f64::from(y) - 16.0) * 255.0 / 219.0)
        .round()
        .clamp(0.0, 255.0) as u8
}

#[test]
fn devices_command_lists_every_node() {
    let output = crate::common::ceus_edge()
        .args(["devices", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if cfg!(not(feature = "v4l2")) {
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("not enabled in this build"), "{stderr}");
        return;
    }
    assert!(output.status.success(), "{stderr}");

    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let devices = listing["devices"].as_array().expect("a devices array");
    let nodes = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("video")
                .is_some_and(|number| number.parse::<u64>().is_ok())
        })
        .count();
    assert_eq!(devices.len(), nodes);
}

#[test]
fn devices_command_without_devices_succeeds() {
    let has_nodes = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(|entry| entry.ok())
        .any(|entry| entry.file_name().to_string_lossy().starts_with("video"));
    if has_nodes || cfg!(not(feature = "v4l2")) {
        // Only meaningful on a machine without video nodes, such as this build host.
        return;
    }
    let output = crate::common::ceus_edge().arg("devices").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "no V4L2 devices found (no /dev/video* nodes)\n"
    );
}

#[test]
fn corrupt_mjpeg_bytes_never_panic() {
    let jpeg = strip_dht(&fixture("colour_422.jpg"));
    let mut decoder = MjpegDecoder::default();
    let mut frame = Frame::empty();
    let mut failures = 0;
    for position in 0..jpeg.len() {
        for value in [0x00, 0xFF, 0xD9, !jpeg[position]] {
            let mut corrupt = jpeg.clone();
            corrupt[position] = value;
            let result = decoder.decode(
                &corrupt,
                (64, 48),
                PixelFormat::Rgb8,
                &Limits::default(),
                &mut frame,
            );
            failures += usize::from(result.is_err());
        }
    }
    // Changing a header or marker byte must be caught; entropy-coded bytes may decode
    // to a different but valid image.
    assert!(failures > 0);
}

#[test]
fn random_buffers_never_panic_raw_decoders() {
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let mut frame = Frame::empty();
    for fourcc in ["YUYV", "UYVY", "NV12", "GREY", "RGB3", "BGR3"] {
        let format = buffer_format(fourcc, 8, 4, 0, 0);
        let layout = layout(&format);
        for _ in 0..50 {
            let len = (next() % 200) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let result = decode_raw(&layout, &payload, DecodeOptions::default(), &mut frame);
            assert_eq!(
                result.is_ok(),
                len >= layout.min_payload(),
                "{fourcc} {len}"
            );
        }
    }
}
