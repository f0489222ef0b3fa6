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
fn palette_8_bit_entries_and_offset() {
    let expected = synthetic();
    let indices = json_u16s(&expected["palette8_indices"]);
    let rgb: Vec<Vec<u16>> = expected["palette8_rgb"]
        .as_array()
        .unwrap()
        .iter()
        .map(json_u16s)
        .collect();
    for name in ["palette8_bytes.dcm", "palette8_words.dcm"] {
        let mut source = open(&fixture(name));
        let palette = source.palette().expect("a palette").clone();
        assert_eq!(palette.bits, 8, "{name}");
        assert_eq!(palette.first_mapped, 10, "{name}");
        for (pixel, &index) in indices.iter().enumerate() {
            let colour = palette.lookup(i32::from(index));
            assert_eq!(colour.to_vec(), rgb[pixel], "{name}: pixel {pixel}");
        }

        let frame = read_all(&mut source).remove(0);
        assert_eq!(frame.format, PixelFormat::Rgb8, "{name}");
        for (pixel, expected) in rgb.iter().enumerate() {
            let displayed: Vec<u16> = frame.data[3 * pixel..3 * pixel + 3]
                .iter()
                .map(|&v| u16::from(v))
                .collect();
            assert_eq!(&displayed, expected, "{name}: pixel {pixel}");
        }
    }
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

/// Path of one real file by name, from either wheel's folder; `None` when PyPI cannot be
/// reached (see [`real_data`]).
pub(crate) fn real_file(name: &str) -> Option<PathBuf> {
    let data = real_data()?;
    let found = ["pydicom", "pydicom-data"]
        .iter()
        .map(|folder| data.join(folder).join(name))
        .find(|path| path.exists());
    Some(found.unwrap_or_else(|| panic!("{name} is not among the fetched test files")))
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
            if let Some(expected_rgb) = frame.get("display_rgb") {
                let mut display = Frame::empty();
                assert!(source.read_frame_at(index as u64, &mut display).unwrap());
                check_display_rgb(name, index, &display, expected_rgb);
            }
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

/// Checks the RGB frame of a YBR file against pydicom's conversion, which uses the same
/// PS3.3 coefficients and rounding, so the values must be equal.
fn check_display_rgb(name: &str, index: usize, frame: &Frame, expected: &Value) {
    assert_eq!(frame.format, PixelFormat::Rgb8, "{name}");
    for sample in expected.as_array().unwrap() {
        let x = sample[0].as_u64().unwrap() as usize;
        let y = sample[1].as_u64().unwrap() as usize;
        let offset = y * frame.stride() + 3 * x;
        for (c, &want) in json_u16s(&sample[2]).iter().enumerate() {
            let actual = u16::from(frame.data[offset + c]);
            assert_eq!(
                actual, want,
                "{name} frame {index} pixel ({x}, {y}) channel {c}"
            );
        }
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

fn run_binary(args: &[&std::ffi::OsStr]) -> std::process::Output {
    crate::common::ceus_edge()
        .args(args)
        .output()
        .expect("the ceus-edge binary runs")
}

#[test]
fn inspect_hides_phi_by_default() {
    let path = fixture("frame_time_vector.dcm");
    for json in [false, true] {
        let mut args = vec![std::ffi::OsStr::new("inspect"), path.as_os_str()];
        if json {
            args.push("--json".as_ref());
        }
        let output = run_binary(&args);
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("Frame Time Vector"), "{text}");
        assert!(!text.contains("Fixture^Patient"), "{text}");
        assert!(!text.contains("FIXTURE-0001"), "{text}");

        args.push("--show-phi".as_ref());
        let text = String::from_utf8(run_binary(&args).stdout).unwrap();
        assert!(text.contains("Fixture^Patient"), "{text}");
        assert!(text.contains("FIXTURE-0001"), "{text}");
    }
}

/// Runs `inspect --check` on `bytes` written to a file and checks the outcome: exit 0, or
/// exit 1 with one line on stderr. A panic exits with 101 and a crash with a signal, so
/// both fail here. Returns whether the file was rejected.
fn check_damaged_binary(dir: &Path, bytes: &[u8], label: &str) -> bool {
    let path = dir.join("damaged.dcm");
    std::fs::write(&path, bytes).unwrap();
    let output = run_binary(&["inspect".as_ref(), "--check".as_ref(), path.as_os_str()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => false,
        Some(1) => {
            assert_eq!(
                stderr.lines().count(),
                1,
                "{label}: stderr is not one line: {stderr}"
            );
            assert!(
                stderr.starts_with("ceus-edge: error: "),
                "{label}: {stderr}"
            );
            true
        }
        other => panic!("{label}: exit status {other:?}, stderr: {stderr}"),
    }
}

/// Opens `bytes` through the library and reads every frame, catching panics. Returns
/// whether the file was rejected; an error message must be one line.
fn check_damaged_library(dir: &Path, bytes: &[u8], label: &str) -> bool {
    let path = dir.join("damaged-lib.dcm");
    std::fs::write(&path, bytes).unwrap();
    let outcome = std::panic::catch_unwind(|| -> Result<u64, SourceError> {
        let options = OpenOptions {
            fps: Some(25.0),
            ..OpenOptions::default()
        };
        let mut source = DicomSource::open(&path, &options)?;
        let mut frame = Frame::empty();
        let mut count = 0;
        while source.read_frame(&mut frame)? {
            count += 1;
        }
        Ok(count)
    });
    match outcome {
        Ok(Ok(_)) => false,
        Ok(Err(error)) => {
            let message = error.to_string();
            assert!(
                !message.contains('\n'),
                "{label}: message is not one line: {message}"
            );
            assert!(!message.is_empty(), "{label}: empty message");
            true
        }
        Err(_) => panic!("{label}: the reader panicked"),
    }
}

/// Cut points spread over the whole file, with extra ones in the preamble, the meta group
/// and the first elements.
fn cut_points(len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = [0, 1, 4, 127, 128, 131, 132, 140, 200, 300, 400, 600]
        .into_iter()
        .filter(|&c| c < len)
        .collect();
    cuts.extend((1..24).map(|k| len * k / 24));
    cuts.extend([len.saturating_sub(2), len.saturating_sub(1)]);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// Damaged versions of a file: truncations (which must all be rejected), bit flips and
/// random bytes (which may happen to decode), each labelled.
fn damaged_versions(
    bytes: &[u8],
    name: &str,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<(Vec<u8>, String, bool)> {
    use rand::{Rng, RngCore};

    let mut versions = Vec::new();
    for cut in cut_points(bytes.len()) {
        let label = format!("{name} cut at {cut} of {}", bytes.len());
        versions.push((bytes[..cut].to_vec(), label, true));
    }

    for trial in 0..16 {
        let mut flipped = bytes.to_vec();
        // Half the trials hit the first kilobyte, where lengths and sizes live.
        let span = if trial % 2 == 0 {
            flipped.len().min(1024)
        } else {
            flipped.len()
        };
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..span);
            flipped[at] ^= 1 << rng.random_range(0..8);
        }
        versions.push((flipped, format!("{name} bit flip trial {trial}"), false));
    }

    let mut random = vec![0u8; bytes.len().clamp(132, 4096)];
    rng.fill_bytes(&mut random);
    versions.push((
        random.clone(),
        format!("random bytes as long as {name}"),
        false,
    ));
    random[128..132].copy_from_slice(b"DICM");
    versions.push((
        random,
        format!("random bytes with DICM, as long as {name}"),
        false,
    ));
    versions
}

/// Checks every damaged version through the library, and every eighth one through the
/// binary as well (a process per case is too slow for all of them).
fn check_damaged_file(dir: &Path, path: &Path, rng: &mut rand_chacha::ChaCha8Rng) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let bytes = std::fs::read(path).unwrap();
    for (k, (damaged, label, must_fail)) in damaged_versions(&bytes, &name, rng).iter().enumerate()
    {
        let rejected = check_damaged_library(dir, damaged, label);
        assert!(rejected || !must_fail, "{label}: accepted by the library");
        if k % 8 == 0 {
            let rejected = check_damaged_binary(dir, damaged, label);
            assert!(
                rejected || !must_fail,
                "{label}: accepted by inspect --check"
            );
        }
    }
}

#[test]
fn damaged_fixtures_fail_cleanly() {
    use rand::SeedableRng;

    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xD1C0);
    assert!(check_damaged_binary(dir.path(), b"", "empty file"));
    assert!(check_damaged_library(dir.path(), b"", "empty file"));
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "dcm") {
            check_damaged_file(dir.path(), &path, &mut rng);
        }
    }
}

#[test]
fn damaged_real_files_fail_cleanly() {
    use rand::SeedableRng;

    let Some(data) = real_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x05EE);
    // The smaller files of each kind, so that about a hundred decodes of each stay quick.
    for name in [
        "pydicom/ExplVR_BigEnd.dcm",
        "pydicom/SC_rgb_rle_2frame.dcm",
        "pydicom-data/OBXXXX1A_rle_2frame.dcm",
        "pydicom-data/emri_small_big_endian.dcm",
        "pydicom-data/gdcm-US-ALOKA-16.dcm",
        "pydicom-data/US1_J2KR.dcm",
    ] {
        check_damaged_file(dir.path(), &data.join(name), &mut rng);
    }
}

/// Searches longer for panics with random byte changes, through the library only. Run it
/// on demand: `CEUS_DICOM_FLIPS=20000 cargo test --test integration many_bit_flips -- --ignored`.
#[test]
#[ignore = "slow: thousands of damaged files"]
fn many_bit_flips_never_panic() {
    use rand::{Rng, SeedableRng};

    let flips: usize = std::env::var("CEUS_DICOM_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xF11F);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "dcm"))
        .collect();
    if let Some(data) = real_data() {
        paths.push(data.join("pydicom/SC_rgb_rle_2frame.dcm"));
        paths.push(data.join("pydicom/ExplVR_BigEnd.dcm"));
    }

    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        for trial in 0..flips / paths.len() {
            let mut flipped = bytes.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..flipped.len());
                flipped[at] = rng.random();
            }
            check_damaged_library(dir.path(), &flipped, &format!("{name} trial {trial}"));
        }
    }
}
