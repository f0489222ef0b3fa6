//! The live pipeline on a phantom cine played into vivid's HDMI output and captured from
//! its HDMI input, the way a capture card on a scanner's HDMI output delivers it.
//!
//! The cine comes from `ceus-edge phantom`. Each injected frame carries its phantom frame
//! number as a row of black and white blocks in the banner, outside both views, so every
//! captured frame can be matched to the phantom frame and its ground truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ceus_edge::capture::format::FourCc;
use ceus_edge::capture::source::{open_v4l2, CaptureOptions};
use ceus_edge::capture::spec::V4l2Request;
use ceus_edge::display::NoDisplay;
use ceus_edge::extractor::{Extractor, LoadOptions};
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::geometry::Rect;
use ceus_edge::live::events::{Event, EventLog};
use ceus_edge::live::input::{DeviceInput, LiveInput};
use ceus_edge::live::pipeline::{self, LiveOptions, Opener, Outputs};
use ceus_edge::live::session::{ExamSession, SessionConfig};
use ceus_edge::live::worker::InferenceWorker;
use ceus_edge::phantom::{FrameEvent, Truth};
use ceus_edge::signature::Signature;
use ceus_edge::source::{self, FrameSource, SourceError, SourceInfo};
use ceus_edge::tic::pipeline::RoiChoice;

use super::output::{grey_to_yuyv, OutputStream};
use super::{connect_hdmi_loop, FRAME_TIMEOUT};
use crate::common::{ceus_edge, repo_root};

/// Size and rate of the cine. vivid's HDMI loop runs at the 59.94 Hz of the 640x480
/// timings, so each phantom frame is on the wire for about six loop frames. A scanner
/// that updates its image at 10 Hz on a 60 Hz HDMI screen does the same.
const CINE_SIZE: (u32, u32) = (640, 480);
const CINE_FPS: u32 = 10;
/// 20 s of exam: the phantom puts the lesion's peak at most at 80% of the exam, so the
/// curve has at least 4 s to fall after it.
const CINE_FRAMES: u32 = 200;
const CINE_SEED: u64 = 23;

/// How long the last phantom frame stays on the wire before the stream ends, so the
/// frames still in the loop and in the capture queue reach the pipeline.
const TAIL: Duration = Duration::from_secs(1);

/// Maximum wait for the result once the stream ends. DenseNet-201 takes about a minute
/// under QEMU without KVM.
const RESULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Threads of the extractor: the guest's two processors.
const INFERENCE_THREADS: usize = 2;

/// Maximum wait for the capture to show the looped frame 0, and for it to end the stream
/// once the cine is over. Either wait failing ends the session, so the test fails
/// instead of hanging.
const LOOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Bits of the frame number, each shown as a block and its complement.
const MARKER_BITS: u32 = 10;
/// Side of one marker block in pixels.
const MARKER_BLOCK: u32 = 8;

/// Returns the top-left corner of the marker: centred in the banner.
fn marker_origin(banner: Rect) -> (u32, u32) {
    let width = 2 * MARKER_BITS * MARKER_BLOCK;
    (
        banner.x + (banner.w - width) / 2,
        banner.y + (banner.h - MARKER_BLOCK) / 2,
    )
}

/// Writes `number` into a grey image as `MARKER_BITS` pairs of blocks: white then black
/// for a 1, black then white for a 0, least significant bit first.
fn stamp_marker(grey: &mut [u8], width: u32, banner: Rect, number: u32) {
    let (x0, y0) = marker_origin(banner);
    for bit in 0..MARKER_BITS {
        let one = number >> bit & 1 == 1;
        for (half, white) in [(0, one), (1, !one)] {
            let x = x0 + (2 * bit + half) * MARKER_BLOCK;
            for y in y0..y0 + MARKER_BLOCK {
                let start = (y * width + x) as usize;
                grey[start..start + MARKER_BLOCK as usize].fill(if white { 255 } else { 0 });
            }
        }
    }
}

/// Reads the number that [`stamp_marker`] wrote, from the centre of each block. Returns
/// `None` when any pair is not one clearly white and one clearly black block.
fn read_marker(frame: &Frame, banner: Rect) -> Option<u32> {
    let (x0, y0) = marker_origin(banner);
    let centre = |block: u32| {
        let x = x0 + block * MARKER_BLOCK + MARKER_BLOCK / 2;
        frame.luma_at(x, y0 + MARKER_BLOCK / 2)
    };
    let mut number = 0;
    for bit in 0..MARKER_BITS {
        let (first, second) = (centre(2 * bit), centre(2 * bit + 1));
        match (first, second) {
            (192.., ..64) => number |= 1 << bit,
            (..64, 192..) => {}
            _ => return None,
        }
    }
    Some(number)
}

/// Writes the phantom cine with `ceus-edge phantom` into `dir`, unless a cine with the
/// same settings is there already (scripts/vm-test.sh writes it on the host, which is
/// many times faster than the guest).
fn phantom_cine(dir: &Path) -> Truth {
    let truth_path = dir.join("truth.json");
    let matches = |truth: &Truth| {
        let settings = &truth.settings;
        (
            settings.seed,
            settings.frames,
            settings.width,
            settings.height,
        ) == (CINE_SEED, CINE_FRAMES, CINE_SIZE.0, CINE_SIZE.1)
            && settings.fps == f64::from(CINE_FPS)
            && dir.join("exam.y4m").exists()
    };
    if let Some(truth) = read_truth(&truth_path).filter(matches) {
        return truth;
    }
    let output = ceus_edge()
        .args(["phantom", "--format", "y4m"])
        .args(["--size", &format!("{}x{}", CINE_SIZE.0, CINE_SIZE.1)])
        .args(["--fps", &CINE_FPS.to_string()])
        .args(["--frames", &CINE_FRAMES.to_string()])
        .args(["--seed", &CINE_SEED.to_string()])
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ceus-edge phantom failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_truth(&truth_path).expect("ceus-edge phantom wrote truth.json")
}

fn read_truth(path: &Path) -> Option<Truth> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Flags shared by the injecting thread and the capture thread.
#[derive(Default)]
struct CineFlags {
    /// Set by the capture at the first frame with a marker, which starts the cine.
    looping: AtomicBool,
    /// Set by the injector `TAIL` after the last frame went out.
    over: AtomicBool,
    /// Set by the capture when it has ended the stream, which stops the injector.
    captured: AtomicBool,
    /// Stops the session; set when the injector stops, so an injector that fails ends
    /// the session too.
    shutdown: AtomicBool,
}

/// Sets `over` and `shutdown` when dropped, however the injecting thread ends.
struct EndSession<'a>(&'a CineFlags);

impl Drop for EndSession<'_> {
    fn drop(&mut self) {
        self.0.over.store(true, Ordering::Relaxed);
        self.0.shutdown.store(true, Ordering::Relaxed);
    }
}

/// A capture device that notes the marker of every frame it delivers, by frame index,
/// and ends the stream once the cine is over, as a recording ends. The capture thread
/// then stops before the session waits for the result, so the inference has the
/// processors to itself.
struct MarkedInput<I: LiveInput> {
    inner: I,
    banner: Rect,
    markers: Arc<Mutex<Vec<Option<u32>>>>,
    flags: Arc<CineFlags>,
}

impl<I: LiveInput> LiveInput for MarkedInput<I> {
    fn info(&self) -> &SourceInfo {
        self.inner.info()
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        if self.flags.over.load(Ordering::Relaxed) {
            self.flags.captured.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        let delivered = self.inner.next_frame(frame)?;
        if delivered {
            let marker = read_marker(frame, self.banner);
            if marker.is_some() {
                self.flags.looping.store(true, Ordering::Relaxed);
            }
            // Frame indices count the delivered frames, so this only appends, but a gap
            // would show as frames without a marker rather than as a panic here.
            let index = frame.index as usize;
            let mut markers = self.markers.lock().unwrap();
            if markers.len() <= index {
                markers.resize(index + 1, None);
            }
            markers[index] = marker;
        }
        Ok(delivered)
    }

    fn recover(&mut self) -> Result<(), SourceError> {
        self.inner.recover()
    }

    fn can_recover(&self) -> bool {
        self.inner.can_recover()
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}

/// What the injecting thread did.
#[derive(Debug, Default)]
struct Injection {
    /// Buffers queued on the output node.
    queued: u64,
    /// Phantom frames never queued, because the thread fell behind the cine's clock.
    skipped: Vec<u32>,
}

/// Plays the cine on the output node at `CINE_FPS`, by the wall clock, from the first
/// captured frame that carries a marker. Every buffer vivid returns is queued again at once with the frame due,
/// so the output never runs dry. After the last frame it sets `over` and repeats that
/// frame until the capture has ended the stream. `streaming` receives a message once the
/// output streams frame 0.
///
/// # Errors
/// The output node's errors, and `TimedOut` when the capture does not show the loop, or
/// does not end the stream, within `LOOP_TIMEOUT`.
fn play_cine(
    stream: &mut OutputStream,
    cine: &mut dyn FrameSource,
    banner: Rect,
    flags: &CineFlags,
    streaming: mpsc::Sender<()>,
) -> std::io::Result<Injection> {
    let width = CINE_SIZE.0;
    let mut injection = Injection::default();
    let mut frame = Frame::empty();
    let mut yuyv = Vec::new();
    let mut load = |number: u32, frame: &mut Frame, yuyv: &mut Vec<u8>| {
        let read = cine.read_frame(frame).map_err(std::io::Error::other)?;
        assert!(read, "the cine ended before frame {number}");
        assert_eq!(frame.format, PixelFormat::Gray8);
        stamp_marker(&mut frame.data, width, banner, number);
        grey_to_yuyv(
            &frame.data,
            width as usize,
            stream_bytesperline(width),
            yuyv,
        );
        Ok::<(), std::io::Error>(())
    };
    load(0, &mut frame, &mut yuyv)?;
    stream.start(&yuyv)?;
    let _ = streaming.send(());

    // Frame 0 stays on the wire until a captured frame carries its marker.
    let streamed = Instant::now();
    let mut started = None;
    let mut shown = 0;
    let end = Duration::from_secs_f64(f64::from(CINE_FRAMES) / f64::from(CINE_FPS));
    while !flags.captured.load(Ordering::Relaxed) {
        if started.is_none() && flags.looping.load(Ordering::Relaxed) {
            started = Some(Instant::now());
        }
        let timeout = LOOP_TIMEOUT.as_secs();
        let late = match started {
            None if streamed.elapsed() > LOOP_TIMEOUT => Some(format!(
                "no captured frame carried a marker within {timeout} s of the output starting"
            )),
            Some(started) if started.elapsed() > end + TAIL + LOOP_TIMEOUT => Some(format!(
                "the capture did not end the stream within {timeout} s of the cine's end"
            )),
            _ => None,
        };
        if let Some(message) = late {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message));
        }
        if let Some(started) = started {
            let elapsed = started.elapsed();
            let due = (elapsed.as_secs_f64() * f64::from(CINE_FPS)) as u32;
            let due = due.min(CINE_FRAMES - 1);
            while shown < due {
                shown += 1;
                load(shown, &mut frame, &mut yuyv)?;
                if shown < due {
                    injection.skipped.push(shown);
                }
            }
            if elapsed >= end + TAIL {
                flags.over.store(true, Ordering::Relaxed);
            }
        }
        stream.push(&yuyv, FRAME_TIMEOUT)?;
        injection.queued += 1;
    }
    Ok(injection)
}

/// Bytes per line of a YUYV image `width` pixels wide, as vivid lays it out.
fn stream_bytesperline(width: u32) -> usize {
    2 * width as usize
}

/// Loads the bundled extractor and demo signature and starts the inference thread.
fn inference_worker() -> InferenceWorker {
    let models = repo_root().join("models");
    let started = Instant::now();
    let options = LoadOptions {
        threads: INFERENCE_THREADS,
        ..LoadOptions::default()
    };
    let extractor = Extractor::load(&models.join("densenet201-int8.onnx"), &options).unwrap();
    let signature = Signature::load(&models.join("demo-signature.bin")).unwrap();
    println!(
        "live: extractor loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    InferenceWorker::spawn(extractor, signature).unwrap()
}

/// Returns the phantom frame number of captured frame `frame`.
fn phantom_frame(markers: &[Option<u32>], frame: u64, event: &str) -> u32 {
    markers
        .get(frame as usize)
        .copied()
        .flatten()
        .unwrap_or_else(|| panic!("the {event} frame {frame} carries no marker"))
}

/// Share of the lesion's peak power that a chosen peak frame must reach. The live
/// session picks the stored frame nearest the fitted peak of a curve sampled from
/// speckle, so it lands a few frames off the true peak. 90% of the power is 0.46 dB,
/// two grey levels of the phantom's 60 dB display, so those frames look the same.
const MIN_PEAK_SHARE: f64 = 0.9;

/// Returns the highest noise-free lesion power of the frames without events.
fn true_peak_power(truth: &Truth) -> f64 {
    truth
        .frames
        .iter()
        .filter(|f| f.event == FrameEvent::None)
        .map(|f| f.lesion_power)
        .fold(0.0, f64::max)
}

/// Describes where the true curve stays above `MIN_PEAK_SHARE` of its peak.
fn describe_peak_window(truth: &Truth) -> String {
    let peak = true_peak_power(truth);
    let inside: Vec<f64> = truth
        .frames
        .iter()
        .filter(|f| f.event == FrameEvent::None && f.lesion_power >= MIN_PEAK_SHARE * peak)
        .map(|f| f.time_s)
        .collect();
    format!(
        "true peak frame {:?} at {:?} s; {:.0}% window {:.1} to {:.1} s",
        truth.peak_frame,
        truth.peak_time_s,
        100.0 * MIN_PEAK_SHARE,
        inside.first().copied().unwrap_or(f64::NAN),
        inside.last().copied().unwrap_or(f64::NAN)
    )
}

#[test]
#[ignore = "needs the vivid driver; scripts/vm-test.sh runs it in a VM"]
fn live_pipeline_finds_peak_of_looped_cine() {
    let (capture_path, output_path) = super::vivid_nodes();
    let cine_dir: PathBuf = repo_root().join("target-vm/phantom-live");
    let truth = phantom_cine(&cine_dir);
    let banner = truth.layout.banner;
    println!("live: {}", describe_peak_window(&truth));
    let mut worker = inference_worker();

    let (controls, mut stream) = connect_hdmi_loop(&capture_path, &output_path, CINE_SIZE);
    assert_eq!(stream.bytesperline, stream_bytesperline(CINE_SIZE.0));
    let cine_path = cine_dir.join("exam.y4m");
    let flags = Arc::new(CineFlags::default());
    let (streaming, output_started) = mpsc::channel();
    let injector = {
        let flags = flags.clone();
        std::thread::spawn(move || {
            let _end = EndSession(&flags);
            let mut cine = source::open(&cine_path, &Default::default())
                .unwrap_or_else(|e| panic!("{}: {e}", cine_path.display()));
            play_cine(&mut stream, cine.as_mut(), banner, &flags, streaming)
        })
    };
    // Until the output streams, vivid's capture shows its own test pattern.
    output_started
        .recv_timeout(FRAME_TIMEOUT)
        .expect("the output node streams frame 0");

    let markers = Arc::new(Mutex::new(Vec::new()));
    let request = V4l2Request {
        path: capture_path.clone(),
        size: Some(CINE_SIZE),
        fps: None,
        fourcc: Some(FourCc::parse("YUYV").unwrap()),
    };
    let open: Opener = {
        let (markers, flags) = (markers.clone(), flags.clone());
        Box::new(move || {
            let options = CaptureOptions {
                timeout: FRAME_TIMEOUT,
                ..CaptureOptions::default()
            };
            let source = open_v4l2(&request, options)?;
            Ok(Box::new(MarkedInput {
                inner: DeviceInput::new(source),
                banner,
                markers,
                flags,
            }) as Box<dyn LiveInput>)
        })
    };
    // The loop repeats every 10 Hz phantom image six times at 60 Hz, as a capture card
    // does on a scanner that updates its image slower than its video output: the layout
    // is detected and the curve measured on the distinct images only.
    let config = SessionConfig {
        roi: RoiChoice::Rect(truth.lesion_roi),
        ..SessionConfig::default()
    };
    let mut session = ExamSession::new(config, BTreeMap::new());
    let mut events = EventLog::default();
    let mut display = NoDisplay;
    let mut outputs = Outputs {
        display: &mut display,
        recorder: None,
        events: &mut events,
    };
    let options = LiveOptions {
        result_timeout: RESULT_TIMEOUT,
        ..LiveOptions::default()
    };
    let started = Instant::now();
    let stats = pipeline::run(
        open,
        capture_path.to_str().unwrap(),
        &mut session,
        &mut worker,
        &mut outputs,
        None,
        &flags.shutdown,
        options,
    )
    .unwrap();
    // The stream ended by itself, so the injector has stopped or stops at its next frame.
    flags.captured.store(true, Ordering::Relaxed);
    let injection = injector
        .join()
        .unwrap()
        .expect("the output node took every frame");
    drop(controls);
    let markers = markers.lock().unwrap().clone();
    println!(
        "live: session of {:.1} s: {} frames analysed, {} dropped; {} captured, {} buffers \
         queued on the output, phantom frames skipped {:?}",
        started.elapsed().as_secs_f64(),
        stats.frames,
        stats.dropped,
        markers.len(),
        injection.queued,
        injection.skipped
    );
    check_markers(&markers);

    let summary: Vec<String> = events
        .events
        .iter()
        .filter(|e| !matches!(e, Event::Stats(_)))
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    println!("live: events {summary:#?}");
    check_events(&events, &markers, &truth);
}

/// Checks that the loop carried the cine: every captured frame from the first marked
/// one on carries a marker, the markers never go back, and almost every phantom frame
/// was captured at least once.
fn check_markers(markers: &[Option<u32>]) {
    let first = markers
        .iter()
        .position(Option::is_some)
        .expect("no captured frame carries a marker");
    // vivid may send a few frames of its own before the loop runs, as in
    // loopback_delivers_injected_cine.
    assert!(first < 10, "the loop took {first} frames to start");

    let marked: Vec<u32> = markers[first..]
        .iter()
        .enumerate()
        .map(|(offset, marker)| {
            marker.unwrap_or_else(|| panic!("captured frame {} has no marker", first + offset))
        })
        .collect();
    assert!(
        marked.windows(2).all(|pair| pair[0] <= pair[1]),
        "phantom frames arrived out of order"
    );

    let mut distinct = marked.clone();
    distinct.dedup();
    println!(
        "live: {first} frames before the first marker; {} distinct phantom frames captured",
        distinct.len()
    );
    assert_eq!(
        distinct.last(),
        Some(&(CINE_FRAMES - 1)),
        "the last frame never arrived"
    );
    // Each phantom frame is on the wire for six loop frames, so the capture misses one
    // only when it drops six in a row, or when the injecting thread falls a whole frame
    // behind and skips one.
    assert!(
        distinct.len() as f64 >= 0.95 * f64::from(CINE_FRAMES),
        "only {} of {CINE_FRAMES} phantom frames were captured",
        distinct.len()
    );
}

/// Checks the order of arrival, peak and result, and the peak frame against the truth.
fn check_events(events: &EventLog, markers: &[Option<u32>], truth: &Truth) {
    let mut order = Vec::new();
    let mut arrival = None;
    let mut peak = None;
    let mut result = None;
    for event in &events.events {
        match event {
            Event::Layout {
                kind,
                contrast,
                bmode,
                roi,
                ..
            } => {
                assert_eq!(kind, "dual");
                let contrast = Rect::new(contrast[0], contrast[1], contrast[2], contrast[3]);
                assert!(
                    contrast.contains_rect(&truth.lesion_roi),
                    "detected contrast view {contrast}"
                );
                let bmode = bmode.expect("a dual layout has a B-mode view");
                assert!(
                    bmode[0] + bmode[2] <= contrast.x,
                    "B-mode view {bmode:?} is not left of the contrast view"
                );
                assert_eq!(*roi, truth.lesion_roi.to_array(), "the ROI was not taken");
            }
            Event::BolusArrival { frame, .. } => {
                order.push("bolus_arrival");
                arrival = Some(*frame);
            }
            Event::Peak { frame, .. } => {
                order.push("peak");
                peak = Some(*frame);
            }
            Event::Result(event) => {
                order.push("result");
                result = Some(event.clone());
            }
            _ => {}
        }
    }
    assert_eq!(order, ["bolus_arrival", "peak", "result"]);
    let (arrival, peak, result) = (arrival.unwrap(), peak.unwrap(), result.unwrap());

    let arrival_phantom = phantom_frame(markers, arrival, "arrival");
    let peak_phantom = phantom_frame(markers, peak, "peak");
    let arrival_s = f64::from(arrival_phantom) / f64::from(CINE_FPS);
    println!(
        "live: arrival at phantom frame {arrival_phantom} ({arrival_s:.1} s, bolus starts at \
         {:.1} s); peak at phantom frame {peak_phantom} ({:.1} s)",
        truth.arrival_time_s,
        f64::from(peak_phantom) / f64::from(CINE_FPS)
    );
    // The arrival is called once the curve rises out of its baseline noise, after the
    // bolus's start time.
    assert!(
        arrival_s >= truth.arrival_time_s,
        "arrival at {arrival_s:.1} s, before the bolus starts at {:.1} s",
        truth.arrival_time_s
    );
    assert!(arrival_phantom < peak_phantom, "arrival after the peak");

    let true_peak = true_peak_power(truth);
    let chosen = &truth.frames[peak_phantom as usize];
    assert_eq!(chosen.event, FrameEvent::None, "peak frame {peak_phantom}");
    assert!(
        chosen.lesion_power >= MIN_PEAK_SHARE * true_peak,
        "peak at phantom frame {peak_phantom} has {:.1}% of the peak power ({})",
        100.0 * chosen.lesion_power / true_peak,
        describe_peak_window(truth)
    );

    // Repeats of an image are skipped, not flagged as frozen, so they do not make the
    // result unreliable.
    assert!(result.reliable, "not reliable: {:?}", result.reasons);
    assert_eq!(result.frame, peak, "the result is not of the peak frame");
    assert_eq!(result.roi, truth.lesion_roi.to_array());
    assert!(
        (0.0..=1.0).contains(&result.probability),
        "{}",
        result.probability
    );
    assert!(result.demo, "the bundled models are demo models");
}
