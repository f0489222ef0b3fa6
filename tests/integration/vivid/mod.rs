//! Capture from the vivid virtual video driver of a real Linux kernel.
//!
//! Ignored in a normal run: they need vivid loaded with its default nodes, and they
//! change its inputs, timings and controls. scripts/vm-test.sh boots a kernel in QEMU,
//! loads vivid and runs them there with `--ignored --test-threads 1 vivid::`.
//!
//! vivid's defaults (Linux 6.1): input 0 is a webcam showing a colour-bar test pattern,
//! input 3 and output 1 are HDMI with 1280x720p60 timings. With both HDMI ends on the
//! same timings and format and the "Loop Video" control set, the capture node delivers
//! the frames queued on the output node. [`live`] runs the live pipeline on such a loop.

mod live;
mod output;

use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ceus_edge::capture::device::CaptureDevice;
use ceus_edge::capture::format::{
    BufferFormat, FourCc, QuantizationRange, QUANTIZATION_DEFAULT, QUANTIZATION_FULL_RANGE,
    QUANTIZATION_LIM_RANGE,
};
use ceus_edge::capture::source::{CaptureOptions, CaptureSource};
use ceus_edge::capture::spec::V4l2Request;
use ceus_edge::capture::{list_devices, V4l2Device};
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::phantom::{Phantom, PhantomConfig};

use crate::common::ceus_edge;
use output::{
    find_control, find_dv_timings, grey_to_yuyv, select_input, set_control, set_dv_timings,
    OutputStream,
};

/// vivid's webcam input, which shows the test pattern.
const WEBCAM_INPUT: u32 = 0;
/// vivid's HDMI input and output, the two ends of the loopback.
const HDMI_INPUT: u32 = 3;
const HDMI_OUTPUT: u32 = 1;
/// The size of the loopback tests: 640x480 at 59.94 Hz (CEA-861 and DMT), whose frames
/// are a third of vivid's default 1280x720, which matters under QEMU without KVM.
const LOOP_SIZE: (u32, u32) = (640, 480);
/// "OSD Text Mode" value 2 draws no text, so every frame of a still pattern is identical.
const OSD_TEXT_NONE: i32 = 2;
/// Values of vivid's "Test Pattern" menu (Linux 6.1).
const PATTERN_COLOUR_BARS: i32 = 0;
const PATTERN_GREY_RAMP: i32 = 20;

/// Maximum wait for one frame. QEMU without KVM runs the guest many times slower than a
/// board does.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the vivid capture and output nodes in the product's own device listing.
fn vivid_nodes() -> (PathBuf, PathBuf) {
    let devices = list_devices().expect("/dev can be listed");
    let node = |capability: &str| {
        devices
            .iter()
            .find(|d| d.driver == "vivid" && d.capabilities.contains(&capability))
            .map(|d| d.path.clone())
            .unwrap_or_else(|| panic!("no vivid node with {capability}: is vivid loaded?"))
    };
    (node("video-capture"), node("video-output"))
}

/// Opens `path` for control calls; the descriptor closes when the device drops.
fn control_handle(path: &Path) -> v4l::Device {
    v4l::Device::with_path(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

fn set_named_control(fd: c_int, name: &str, value: i32) {
    let id = find_control(fd, name).unwrap();
    set_control(fd, id, value).unwrap_or_else(|e| panic!("cannot set {name:?} to {value}: {e}"));
}

fn open_capture(path: &Path, size: (u32, u32), fourcc: &str) -> CaptureSource<V4l2Device> {
    let request = V4l2Request {
        path: path.to_path_buf(),
        size: Some(size),
        fps: None,
        fourcc: Some(FourCc::parse(fourcc).unwrap()),
    };
    let device = V4l2Device::open(&request)
        .unwrap_or_else(|e| panic!("cannot open {} for {fourcc}: {e}", path.display()));
    let options = CaptureOptions {
        timeout: FRAME_TIMEOUT,
        ..CaptureOptions::default()
    };
    CaptureSource::new(device, options).unwrap()
}

/// Mean absolute difference of two grey images of the same size, on every 4th pixel of
/// every 4th row.
fn mean_abs_difference(a: &[u8], b: &[u8], width: usize) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut count = 0u64;
    for (row_a, row_b) in a.chunks_exact(width).zip(b.chunks_exact(width)).step_by(4) {
        for (x, y) in row_a.iter().zip(row_b).step_by(4) {
            sum += u64::from(x.abs_diff(*y));
            count += 1;
        }
    }
    sum as f64 / count as f64
}

#[test]
#[ignore = "needs the vivid driver; scripts/vm-test.sh runs it in a VM"]
fn devices_lists_vivid_formats() {
    let output = ceus_edge().args(["devices", "--json"]).output().unwrap();
    assert!(
        output.status.success(),
        "devices failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let nodes = listing["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("no `devices` array in {listing}"));
    let capture = nodes
        .iter()
        .find(|node| {
            node["driver"] == "vivid"
                && node["capabilities"]
                    .as_array()
                    .is_some_and(|caps| caps.iter().any(|c| c == "video-capture"))
        })
        .unwrap_or_else(|| panic!("no vivid capture node in {listing}"));

    let formats = capture["formats"].as_array().unwrap();
    for fourcc in ["YUYV", "NV12", "GREY"] {
        let format = formats
            .iter()
            .find(|f| f["fourcc"] == fourcc)
            .unwrap_or_else(|| panic!("{fourcc} is missing from {capture}"));
        assert!(
            !format["sizes"].as_array().unwrap().is_empty(),
            "{fourcc} lists no frame size: {format}"
        );
    }
}

/// Size of the test-pattern captures.
const PATTERN_SIZE: (u32, u32) = (640, 360);

/// A capture of a test pattern: the luma of its last frame, the format the driver
/// reported and the range the capture source read the samples in.
struct PatternCapture {
    luma: Vec<u8>,
    format: BufferFormat,
    range: QuantizationRange,
}

/// Captures 4 frames of vivid's test `pattern` in `fourcc` with vivid's "Quantization"
/// control at `quantization` (a `V4L2_QUANTIZATION_*` value).
fn capture_test_pattern(fourcc: &str, pattern: i32, quantization: u32) -> PatternCapture {
    let (capture_path, _) = vivid_nodes();
    let controls = control_handle(&capture_path);
    let fd = controls.handle().fd();
    select_input(fd, WEBCAM_INPUT).unwrap();
    set_named_control(fd, "OSD Text Mode", OSD_TEXT_NONE);
    set_named_control(fd, "Test Pattern", pattern);
    set_named_control(fd, "Quantization", quantization as i32);

    let size = PATTERN_SIZE;
    let mut source = open_capture(&capture_path, size, fourcc);
    let format = *source.device().format();
    assert_eq!(format.fourcc.to_string(), fourcc);
    assert_eq!((source.layout().width, source.layout().height), size);

    let mut frame = Frame::empty();
    let mut last_sequence = None;
    for _ in 0..4 {
        let captured = source
            .capture(&mut frame)
            .unwrap_or_else(|e| panic!("{fourcc}: {e}"));
        if let Some(last) = last_sequence {
            assert!(captured.sequence > last, "{fourcc}: sequence went back");
        }
        last_sequence = Some(captured.sequence);
    }
    assert_eq!(frame.format, PixelFormat::Gray8);
    assert_eq!((frame.width, frame.height), size);
    assert_eq!(source.stats().bad, 0, "{fourcc}: corrupt buffers");
    let range = frame.data.iter().max().unwrap() - frame.data.iter().min().unwrap();
    assert!(
        range > 100,
        "{fourcc}: the pattern spans only {range} levels"
    );
    println!(
        "{fourcc}: {} frames, {} dropped; colorspace {}, quantization {} read as {:?} range",
        source.stats().delivered,
        source.stats().dropped,
        format.colorspace,
        format.quantization,
        source.layout().range
    );
    PatternCapture {
        luma: frame.data.clone(),
        format,
        range: source.layout().range,
    }
}

/// Largest mean luma difference between two captures of the same test pattern: one level
/// of limited-range rounding, plus chroma subsampling at the bar edges.
const MAX_PATTERN_DIFFERENCE: f64 = 1.5;

#[test]
#[ignore = "needs the vivid driver; scripts/vm-test.sh runs it in a VM"]
fn captures_grey_test_pattern() {
    capture_test_pattern("GREY", PATTERN_COLOUR_BARS, QUANTIZATION_DEFAULT);
}

#[test]
#[ignore = "needs the vivid driver; scripts/vm-test.sh runs it in a VM"]
fn captures_yuyv_and_nv12_alike() {
    let yuyv = capture_test_pattern("YUYV", PATTERN_COLOUR_BARS, QUANTIZATION_DEFAULT);
    let nv12 = capture_test_pattern("NV12", PATTERN_COLOUR_BARS, QUANTIZATION_DEFAULT);
    let difference = mean_abs_difference(&yuyv.luma, &nv12.luma, PATTERN_SIZE.0 as usize);
    assert!(
        difference <= MAX_PATTERN_DIFFERENCE,
        "NV12 luma differs from YUYV by {difference:.2} levels on average"
    );
}

/// Captures `fourcc` in each listed quantization and checks that the driver reported the
/// requested quantization, that the samples were read in the expected range, and that
/// the decoded luma matches `reference`.
fn check_ranges(reference: &[u8], fourcc: &str, cases: &[(u32, QuantizationRange)]) {
    for &(quantization, range) in cases {
        let capture = capture_test_pattern(fourcc, PATTERN_GREY_RAMP, quantization);
        assert_eq!(
            capture.format.quantization, quantization,
            "{fourcc}: reported quantization"
        );
        assert_eq!(
            capture.range, range,
            "{fourcc} with quantization {quantization}"
        );
        let difference = mean_abs_difference(reference, &capture.luma, PATTERN_SIZE.0 as usize);
        assert!(
            difference <= MAX_PATTERN_DIFFERENCE,
            "{fourcc} read as {range:?} range differs from limited-range YUYV by \
             {difference:.2} levels on average"
        );
    }
}

/// vivid writes YUYV and RGB3 in the range that its "Quantization" control selects and
/// reports, so the decoded luma of its grey ramp must not change with the control. The
/// ramp is neutral grey, so the luma weights of the encodings do not matter.
#[test]
#[ignore = "needs the vivid driver; scripts/vm-test.sh runs it in a VM"]
fn decodes_the_range_the_driver_reports() {
    use QuantizationRange::{Full, Limited};
    let reference = capture_test_pattern("YUYV", PATTERN_GREY_RAMP, QUANTIZATION_DEFAULT);
    assert_eq!(reference.format.quantization, QUANTIZATION_DEFAULT);
    assert_eq!(reference.range, Limited);
    let reference = reference.luma;
    check_ranges(&reference, "YUYV", &[(QUANTIZATION_FULL_RANGE, Full)]);
    check_ranges(
        &reference,
        "RGB3",
        &[
            (QUANTIZATION_DEFAULT, Full),
            (QUANTIZATION_LIM_RANGE, Limited),
        ],
    );
}

// NOTE: vivid (Linux 6.1) writes GREY as full-range luma with Rec. 709 weights whatever
// its "Quantization" control is set to, yet reports that control's value, so only "Full
// Range" describes its GREY samples. By default it reports V4L2_QUANTIZATION_DEFAULT, which the
// kernel documentation maps to limited range for the luma-only formats. The decoder
// follows the report, so vivid's GREY luma then comes out stretched by 255/219 from level
// 16 and clipped at 0 and 255, about 9 levels off on average over 16 points of the ramp.
// The ramp keeps the luma weights out of the comparison: on the colour bars, Rec. 709
// luma differs from YUYV's BT.601 luma by 12 levels on average.
#[test]
#[ignore = "needs the vivid driver; scripts/vm-test.sh runs it in a VM"]
fn captures_grey_like_yuyv() {
    let reference = capture_test_pattern("YUYV", PATTERN_GREY_RAMP, QUANTIZATION_DEFAULT);
    check_ranges(
        &reference.luma,
        "GREY",
        &[(QUANTIZATION_FULL_RANGE, QuantizationRange::Full)],
    );
}

/// Sets up both HDMI ends of vivid's loop at `size` and returns the capture node's
/// control handle, which keeps its input and controls set, with the output stream.
fn connect_hdmi_loop(
    capture: &Path,
    output: &Path,
    (width, height): (u32, u32),
) -> (v4l::Device, OutputStream) {
    let controls = control_handle(capture);
    let fd = controls.handle().fd();
    select_input(fd, HDMI_INPUT).unwrap();
    let timings = find_dv_timings(fd, width, height, 60.0).unwrap();
    set_dv_timings(fd, &timings).unwrap();
    set_named_control(fd, "Loop Video", 1);
    set_named_control(fd, "OSD Text Mode", OSD_TEXT_NONE);
    let stream = OutputStream::open(output, HDMI_OUTPUT, width, height, *b"YUYV")
        .unwrap_or_else(|e| panic!("cannot set up {}: {e}", output.display()));
    (controls, stream)
}

/// Renders the frames of a small phantom exam at the loop's size, as grey images.
fn phantom_frames(count: u32) -> Vec<Vec<u8>> {
    let config = PhantomConfig {
        seed: 11,
        frames: count,
        fps: 5.0,
        width: LOOP_SIZE.0,
        height: LOOP_SIZE.1,
        ..PhantomConfig::default()
    };
    let mut renderer = Phantom::new(config).unwrap().into_renderer();
    let mut frames = Vec::new();
    while let Some(frame) = renderer.next_frame() {
        assert_eq!(frame.format, PixelFormat::Gray8);
        frames.push(frame.data.clone());
    }
    frames
}

/// Loop-back of vivid's HDMI output into its HDMI input, with frames fed by a thread.
struct Loopback {
    stop: Arc<AtomicBool>,
    injector: Option<std::thread::JoinHandle<std::io::Result<usize>>>,
    /// Keeps the capture node's input and controls set while the loop runs.
    _controls: v4l::Device,
}

impl Loopback {
    /// Sets up both HDMI ends and starts sending `frames`, each repeated `hold` times,
    /// then the last one until [`Loopback::finish`].
    fn start(capture: &Path, output: &Path, frames: Vec<Vec<u8>>, hold: usize) -> Loopback {
        let (controls, mut stream) = connect_hdmi_loop(capture, output, LOOP_SIZE);
        let width = LOOP_SIZE.0;
        let images: Vec<Vec<u8>> = frames
            .iter()
            .map(|grey| {
                let mut yuyv = Vec::new();
                grey_to_yuyv(grey, width as usize, stream.bytesperline, &mut yuyv);
                yuyv
            })
            .collect();
        stream.start(&images[0]).unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let injector = std::thread::spawn(move || {
            let mut pushed = 0;
            for image in &images {
                for _ in 0..hold {
                    stream.push(image, FRAME_TIMEOUT)?;
                    pushed += 1;
                }
            }
            let last = images.last().expect("at least one frame");
            while !stop_flag.load(Ordering::Relaxed) {
                stream.push(last, FRAME_TIMEOUT)?;
                pushed += 1;
            }
            Ok(pushed)
        });
        Loopback {
            stop,
            injector: Some(injector),
            _controls: controls,
        }
    }

    /// Stops the feeding thread and returns how many buffers it queued.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let injector = self.injector.take().unwrap();
        injector
            .join()
            .unwrap()
            .expect("the output node took every frame")
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
#[ignore = "needs the vivid driver; scripts/vm-test.sh runs it in a VM"]
fn loopback_delivers_injected_cine() {
    let (capture_path, output_path) = vivid_nodes();
    let cine = phantom_frames(8);
    // At 60 frames per second, 6 repeats show each frame for 0.1 s.
    let hold = 6;
    let loopback = Loopback::start(&capture_path, &output_path, cine.clone(), hold);
    let mut source = open_capture(&capture_path, LOOP_SIZE, "YUYV");

    let width = LOOP_SIZE.0 as usize;
    let mut frame = Frame::empty();
    let mut matches: Vec<(usize, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        source.capture(&mut frame).unwrap();
        let (index, difference) = cine
            .iter()
            .map(|grey| mean_abs_difference(grey, &frame.data, width))
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        matches.push((index, difference));
        if index == cine.len() - 1 && difference <= 1.0 {
            break;
        }
    }
    let pushed = loopback.finish();
    println!(
        "loopback: {pushed} buffers queued, {} frames captured, {} dropped; matches {matches:?}",
        source.stats().delivered,
        source.stats().dropped
    );

    // Captured frames are the injected ones after a YUYV round trip, which is exact up
    // to the rounding of the limited-range luma (at most one level).
    let first = matches
        .iter()
        .position(|(_, difference)| *difference <= 1.0)
        .expect("no captured frame matches an injected one");
    assert!(first < 10, "the loop took {first} frames to start");
    let looped = &matches[first..];
    for (position, (index, difference)) in looped.iter().enumerate() {
        assert!(
            *difference <= 1.0,
            "captured frame {position} differs from injected frame {index} by {difference:.2}"
        );
    }
    assert!(
        looped.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "injected frames arrived out of order"
    );
    let mut seen: Vec<usize> = looped.iter().map(|(index, _)| *index).collect();
    seen.dedup();
    assert_eq!(
        seen.last(),
        Some(&(cine.len() - 1)),
        "the last frame never arrived"
    );
    assert!(
        seen.len() * 4 >= cine.len() * 3,
        "only frames {seen:?} of {} arrived",
        cine.len()
    );
}
