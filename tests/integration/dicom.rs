//! DICOM reader: synthetic fixtures with known contents, real files checked against pydicom,
//! and damaged files that must fail with a one-line error.
//!
//! The fixtures in tests/fixtures/dicom/ and their expected values come from
//! scripts/make_dicom_fixtures.py; reference.json comes from scripts/dicom_reference.py.
//! The real files are fetched by scripts/fetch-test-data.sh into testdata/dicom/.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::source::dicom::{DicomSource, RawFrame, RawSamples};
use ceus_edge::source::{FrameSource, OpenOptions, SourceError, TimingSource};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom")
        .join(name)
}

fn synthetic() -> Value {
    let text = std::fs::read_to_string(fixture("synthetic.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open(path: &Path) -> DicomSource {
    DicomSource::open(path, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn open_with_fps(path: &Path, fps: f64) -> DicomSource {
    let options = OpenOptions {
        fps: Some(fps),
        ..OpenOptions::default()
    };
    DicomSource::open(path, &options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_all(source: &mut DicomSource) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut frame = Frame::empty();
    while source.read_frame(&mut frame).unwrap() {
        frames.push(frame.clone());
    }
    frames
}

fn raw(source: &mut DicomSource, index: u64) -> RawFrame {
    let mut raw = RawFrame::empty();
    assert!(source.read_raw_frame(index, &mut raw).unwrap());
    raw
}

fn json_u16s(value: &Value) -> Vec<u16> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u16)
        .collect()
}

fn centre_rgb(frame: &Frame) -> [u8; 3] {
    let offset = (frame.height as usize / 2) * frame.stride() + (frame.width as usize / 2) * 3;
    [
        frame.data[offset],
        frame.data[offset + 1],
        frame.data[offset + 2],
    ]
}

/// Largest difference per 8-bit sample allowed between jpeg-decoder and the libjpeg behind
/// Pillow. They round the IDCT, chroma upsampling and YCbCr conversion differently. On the
/// files here they differ by at most one level.
const JPEG_SAMPLE_TOLERANCE: i32 = 1;

fn assert_rgb_near(actual: [u8; 3], expected: &[u16], context: &str) {
    for (channel, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let difference = (i32::from(a) - i32::from(e)).abs();
        assert!(
            difference <= JPEG_SAMPLE_TOLERANCE,
            "{context}: channel {channel} is {a}, pydicom gives {e}"
        );
    }
}

#[test]
fn jpeg_red_then_blue_in_order() {
    let expected = synthetic();
    let expected = expected["jpeg_red_blue"].as_array().unwrap();
    for name in ["jpeg_ybr422_red_blue.dcm", "jpeg_ybr422_red_blue_split.dcm"] {
        let mut source = open(&fixture(name));
        let frames = read_all(&mut source);
        assert_eq!(frames.len(), 2, "{name}");
        for (index, frame) in frames.iter().enumerate() {
            assert_eq!(frame.format, PixelFormat::Rgb8, "{name}");
            let context = format!("{name} frame {index}");
            assert_rgb_near(centre_rgb(frame), &json_u16s(&expected[index]), &context);
        }
        assert!(
            centre_rgb(&frames[0])[0] > 250,
            "{name}: frame 0 is not red"
        );
        assert!(
            centre_rgb(&frames[1])[2] > 250,
            "{name}: frame 1 is not blue"
        );
    }
}

#[test]
fn jpeg_random_access_matches_sequential() {
    let path = fixture("jpeg_ybr422_red_blue.dcm");
    let sequential = read_all(&mut open(&path));
    for index in [1u64, 0] {
        let mut source = open(&path);
        let mut frame = Frame::empty();
        assert!(source.read_frame_at(index, &mut frame).unwrap());
        assert_eq!(frame.index, index);
        assert_eq!(frame.data, sequential[index as usize].data, "frame {index}");
    }
    let times: Vec<f64> = sequential.iter().map(|f| f.time_s).collect();
    assert_eq!(times, [0.0, 0.04]);
}

#[test]
fn rle_rgb_2x2_exact() {
    let expected = synthetic();
    let expected = expected["rle_rgb_2x2"].as_array().unwrap();
    let mut source = open(&fixture("rle_rgb_2x2.dcm"));
    let frames = read_all(&mut source);
    assert_eq!(frames.len(), 1);
    let pixels: Vec<Vec<u16>> = frames[0]
        .data
        .chunks(3)
        .map(|p| p.iter().map(|&v| u16::from(v)).collect())
        .collect();
    let expected: Vec<Vec<u16>> = expected.iter().map(json_u16s).collect();
    assert_eq!(pixels, expected);
}

#[test]
fn rle_mono16_keeps_full_value() {
    let expected = json_u16s(&synthetic()["rle_mono16_2x2"]);
    assert_eq!(expected[0], 0x0102);
    for name in ["rle_mono16_2x2.dcm", "native_mono16_be_2x2.dcm"] {
        let mut source = open(&fixture(name));
        let raw = raw(&mut source, 0);
        assert_eq!(raw.samples, RawSamples::U16(expected.clone()), "{name}");
    }
}

#[test]
fn palette_variants_give_lut_colours() {
    let expected = synthetic();
    let indices = json_u16s(&expected["palette_indices"]);
    let rgb16: Vec<Vec<u16>> = expected["palette_rgb16"]
        .as_array()
        .unwrap()
        .iter()
        .map(json_u16s)
        .collect();
    assert_eq!(rgb16[0][0], 0x12AB);

    let mut frames = Vec::new();
    for name in [
        "palette16_plain_le.dcm",
        "palette16_plain_be.dcm",
        "palette16_segmented_le.dcm",
        "palette16_segmented_be.dcm",
    ] {
        let mut source = open(&fixture(name));
        let raw = raw(&mut source, 0);
        assert_eq!(
            raw.samples,
            RawSamples::U8(indices.iter().map(|&i| i as u8).collect())
        );
        let palette = source.palette().expect("a palette").clone();
        for (pixel, &index) in indices.iter().enumerate() {
            let colour = palette.lookup(i32::from(index));
            assert_eq!(colour.to_vec(), rgb16[pixel], "{name}: pixel {pixel}");
        }

        let frame = read_all(&mut source).remove(0);
        assert_eq!(
            frame.format,
            PixelFormat::Rgb8,
            "{name}: not shown in colour"
        );
        for (pixel, expected) in rgb16.iter().enumerate() {
            let displayed: Vec<u16> = frame.data[3 * pixel..3 * pixel + 3]
                .iter()
                .map(|&v| u16::from(v))
                .collect();
            let expected: Vec<u16> = expected.iter().map(|v| v >> 8).collect();
            assert_eq!(displayed, expected, "{name}: pixel {pixel}");
        }
        frames.push(frame.data);
    }
    assert!(frames.windows(2).all(|pair| pair[0] == pair[1]));
}

#[test]
fn frame_time_vector_is_cumulative() {
    let expected = synthetic();
    let expected: Vec<f64> = expected["frame_time_vector_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut source = open(&fixture("frame_time_vector.dcm"));
    assert_eq!(source.info().timing, TimingSource::FrameTimeVector);
    let times: Vec<f64> = read_all(&mut source).iter().map(|f| f.time_s).collect();
    assert_eq!(times.len(), expected.len());
    for (index, (&time, &want)) in times.iter().zip(&expected).enumerate() {
        assert!(
            (time - want).abs() < 1e-12,
            "frame {index}: {time} s, expected {want} s"
        );
    }
}

#[test]
fn missing_timing_needs_fps() {
    let path = fixture("no_timing.dcm");
    let error = DicomSource::open(&path, &OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::MissingTiming(_)), "{error}");
    assert!(error.to_string().contains("--fps"), "{error}");

    let mut source = open_with_fps(&path, 10.0);
    assert_eq!(source.info().timing, TimingSource::UserFps);
    let times: Vec<f64> = read_all(&mut source).iter().map(|f| f.time_s).collect();
    assert_eq!(times, [0.0, 0.1, 0.2]);
}

#[test]
fn absurd_header_hits_limit() {
    for name in ["absurd_header.dcm", "absurd_frame_count.dcm"] {
        let error = DicomSource::open(&fixture(name), &OpenOptions::default())
            .err()
            .unwrap();
        assert!(matches!(error, SourceError::Limit(_)), "{name}: {error}");
    }
}

#[test]
fn short_pixel_data_is_malformed() {
    let error = DicomSource::open(&fixture("short_pixel_data.dcm"), &OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::Malformed(_)), "{error}");
    assert!(error.to_string().contains("frame 1"), "{error}");
}

#[test]
fn monochrome1_is_inverted() {
    let expected = json_u16s(&synthetic()["mono1_12bit_raw"]);
    let mut source = open(&fixture("mono1_12bit.dcm"));
    assert_eq!(raw(&mut source, 0).samples, RawSamples::U16(expected));
    let frame = read_all(&mut source).remove(0);
    assert_eq!(frame.format, PixelFormat::Gray8);
    // Stored 0 is white and 4095 black in MONOCHROME1: 1000 and 2000 of 4095 are levels
    // 62.3 and 124.5 of 255, rounded to 62 and 125, then inverted.
    assert_eq!(frame.data, [255, 193, 130, 0]);
}

/// Runs scripts/fetch-test-data.sh once. Returns the folder of real files, or `None`
/// (after printing why) when PyPI cannot be reached.
fn real_data() -> Option<&'static Path> {
    static DATA: OnceLock<Option<PathBuf>> = OnceLock::new();
    DATA.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = Command::new("bash")
            .arg(root.join("scripts/fetch-test-data.sh"))
            .status()
            .expect("bash runs");
        match status.code() {
            Some(0) => Some(root.join("testdata/dicom")),
            Some(3) => {
                eprintln!("skipping real DICOM files: fetch-test-data.sh cannot reach PyPI");
                None
            }
            _ => panic!("scripts/fetch-test-data.sh failed with {status}"),
        }
    })
    .as_deref()
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open_real(path: &Path) -> DicomSource {
    match DicomSource::open(path, &OpenOptions::default()) {
        Err(SourceError::MissingTiming(_)) => open_with_fps(path, 25.0),
        other => other.unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    }
}

fn raw_means(raw: &RawFrame) -> Vec<f64> {
    let channels = usize::from(raw.samples_per_pixel);
    let mut sums = vec![0.0; channels];
    let pixels = raw.width as usize * raw.height as usize;
    for p in 0..pixels {
        for (c, sum) in sums.iter_mut().enumerate() {
            let x = (p % raw.width as usize) as u32;
            let y = (p / raw.width as usize) as u32;
            *sum += f64::from(raw.sample(x, y, c as u16).unwrap());
        }
    }
    sums.iter().map(|s| s / pixels as f64).collect()
}

#[test]
fn real_files_match_pydicom() {
    let Some(data) = real_data() else { return };
    let reference = reference();
    let files = reference["files"].as_object().unwrap();
    assert!(files.len() >= 15);

    for (name, expected) in files {
        let path = data.join(name);
        let mut source = open_real(&path);
        let header = source.header();
        assert_eq!(
            u64::from(header.rows),
            expected["rows"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            header.frames,
            expected["frames"].as_u64().unwrap(),
            "{name}"
        );
        let lossy = header.transfer_syntax.uid == "1.2.840.10008.1.2.4.50";

        for (index, frame) in expected["reference_frames"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let raw = raw(&mut source, index as u64);
            check_frame(name, index, &raw, frame, lossy, source.palette());
        }
    }
}

fn check_frame(
    name: &str,
    index: usize,
    raw: &RawFrame,
    expected: &Value,
    lossy: bool,
    palette: Option<&ceus_edge::source::dicom::Palette>,
) {
    let means = raw_means(raw);
    let expected_means: Vec<f64> = expected["mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Lossless data must match up to float rounding. A JPEG mean can move by no more than
    // the per-sample tolerance.
    let mean_tolerance = if lossy {
        f64::from(JPEG_SAMPLE_TOLERANCE)
    } else {
        1e-9
    };
    for (c, (m, e)) in means.iter().zip(&expected_means).enumerate() {
        assert!(
            (m - e).abs() <= mean_tolerance,
            "{name} frame {index} channel {c}: mean {m}, pydicom {e}"
        );
    }

    for sample in expected["samples"].as_array().unwrap() {
        let x = sample[0].as_u64().unwrap() as u32;
        let y = sample[1].as_u64().unwrap() as u32;
        let values = json_u16s(&sample[2]);
        for (c, &value) in values.iter().enumerate() {
            let actual = raw.sample(x, y, c as u16).unwrap();
            let difference = (i32::from(actual) - i32::from(value)).abs();
            let tolerance = if lossy { JPEG_SAMPLE_TOLERANCE } else { 0 };
            assert!(
                difference <= tolerance,
                "{name} frame {index} pixel ({x}, {y}) sample {c}: {actual}, pydicom {value}"
            );
        }
    }

    let Some(expected_rgb) = expected.get("palette_rgb") else {
        return;
    };
    let palette = palette.expect("a palette for a PALETTE COLOR file");
    for sample in expected_rgb.as_array().unwrap() {
        let x = sample[0].as_u64().unwrap() as u32;
        let y = sample[1].as_u64().unwrap() as u32;
        let index = raw.sample(x, y, 0).unwrap();
        let colour = palette.lookup(i32::from(index));
        assert_eq!(
            colour.to_vec(),
            json_u16s(&sample[2]),
            "{name} pixel ({x}, {y})"
        );
    }
}

#[test]
fn real_files_decode_every_frame() {
    let Some(data) = real_data() else { return };
    let reference = reference();
    for name in reference["files"].as_object().unwrap().keys() {
        let mut source = open_real(&data.join(name));
        let frames = source.header().frames;
        let mut frame = Frame::empty();
        let mut count = 0;
        while source.read_frame(&mut frame).unwrap() {
            assert_eq!(frame.index, count, "{name}");
            count += 1;
        }
        assert_eq!(count, frames, "{name}");
    }
}

#[test]
fn real_file_timing_and_regions() {
    let Some(data) = real_data() else { return };
    let source = open(&data.join("pydicom-data/color3d_jpeg_baseline.dcm"));
    let info = source.info();
    assert_eq!(info.timing, TimingSource::FrameTime);
    assert_eq!(info.frames, Some(120));
    let fps = info.fps.unwrap();
    assert!((fps - 1000.0 / 33.333).abs() < 1e-9, "{fps}");
    let header = source.header();
    assert_eq!(header.manufacturer.as_deref(), Some("SonoSite, Inc."));
    assert_eq!(header.regions.len(), 1);
    assert_eq!(header.regions[0].data_type, 1);
}

#[test]
fn unsupported_syntax_is_named() {
    let Some(data) = real_data() else { return };
    for (name, uid) in [
        ("pydicom-data/US1_J2KR.dcm", "1.2.840.10008.1.2.4.90"),
        (
            "pydicom-data/JPGLosslessP14SV1_1s_1f_8b.dcm",
            "1.2.840.10008.1.2.4.70",
        ),
    ] {
        let error = DicomSource::open(&data.join(name), &OpenOptions::default())
            .err()
            .unwrap();
        assert!(
            matches!(error, SourceError::Unsupported(_)),
            "{name}: {error}"
        );
        assert!(error.to_string().contains(uid), "{name}: {error}");
        assert!(error.to_string().contains("JPEG"), "{name}: {error}");
    }
}
