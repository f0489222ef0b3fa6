//! The live pipeline: the exam session on phantom frames, control commands, a device
//! that goes away, inference that must not block frames, and `ceus-edge run` end to end.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use ceus_edge::analysis::{Quality, Risk};
use ceus_edge::capture::format::{BufferFormat, FourCc, QUANTIZATION_FULL_RANGE};
use ceus_edge::capture::mock::{MockDevice, MockEvent};
use ceus_edge::capture::source::{CaptureOptions, CaptureSource};
use ceus_edge::capture::CaptureError;
use ceus_edge::display::NoDisplay;
use ceus_edge::extractor::{Extractor, LoadOptions};
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::geometry::Rect;
use ceus_edge::live::control::Command;
use ceus_edge::live::events::{Event, EventLog, EventSink, ResultEvent};
use ceus_edge::live::input::{AwaitedInput, Backoff, DeviceInput, LiveInput};
use ceus_edge::live::pipeline::{self, LiveOptions, Opener, Outputs};
use ceus_edge::live::queue::FullPolicy;
use ceus_edge::live::session::{
    ExamSession, Inference, InferenceJob, InferenceOutcome, LiveResult, SessionConfig,
};
use ceus_edge::live::worker::InferenceWorker;
use ceus_edge::phantom::source::PhantomSource;
use ceus_edge::phantom::{FrameEvent, Phantom, PhantomConfig, Truth};
use ceus_edge::signature::Signature;
use ceus_edge::source::y4m::Y4mSource;
use ceus_edge::source::{FrameSource, OpenOptions, SourceError, SourceInfo, TimingSource};
use ceus_edge::tic::pipeline::RoiChoice;
use ceus_edge::tic::TicStatus;

use crate::common::{ceus_edge, repo_root};

/// An inference stand-in that returns an outcome for each job after `delay`, on its own thread, with a
/// result whose probability is the job's frame number scaled into 0..1, so tests can
/// tell which job a result belongs to.
struct DelayedInference {
    delay: Duration,
    jobs: Vec<InferenceJob>,
    sender: mpsc::Sender<InferenceOutcome>,
    outcomes: mpsc::Receiver<InferenceOutcome>,
    busy_until: Option<Instant>,
}

impl DelayedInference {
    fn new(delay: Duration) -> DelayedInference {
        let (sender, outcomes) = mpsc::channel();
        DelayedInference {
            delay,
            jobs: Vec::new(),
            sender,
            outcomes,
            busy_until: None,
        }
    }
}

impl Inference for DelayedInference {
    fn submit(&mut self, job: Box<InferenceJob>) -> Result<(), Box<InferenceJob>> {
        if self.busy_until.is_some_and(|until| Instant::now() < until) {
            return Err(job);
        }
        self.busy_until = Some(Instant::now() + self.delay);
        self.jobs.push((*job).clone());
        let sender = self.sender.clone();
        let delay = self.delay;
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = sender.send(InferenceOutcome {
                generation: job.generation,
                result: Ok(stand_in_result(&job)),
            });
        });
        Ok(())
    }

    fn poll(&mut self) -> Option<InferenceOutcome> {
        self.outcomes.try_recv().ok()
    }
}

fn stand_in_result(job: &InferenceJob) -> LiveResult {
    LiveResult {
        event: ResultEvent {
            exam: job.exam,
            frame: job.frame,
            time_s: job.time_s,
            roi: job.roi.to_array(),
            probability: (job.frame % 100) as f64 / 100.0,
            risk: Risk::Low,
            cutoff: 0.5,
            rad_score: 0.0,
            imaging_probability: 0.0,
            clinical_score: None,
            integrated_available: false,
            missing_clinical: Vec::new(),
            reliable: job.quality.reliable,
            reasons: job.quality.reasons.clone(),
            inference_ms: 0.0,
            demo: true,
        },
        heatmap: [0.0; 49],
    }
}

/// A 60 s exam, long enough for the curve to fall 20% below its peak before the end, so
/// the peak is confirmed while frames still arrive.
fn phantom_config(seed: u64) -> PhantomConfig {
    PhantomConfig {
        seed,
        frames: 900,
        fps: 15.0,
        width: 320,
        height: 240,
        ..PhantomConfig::default()
    }
}

/// Runs a session over every frame of `config`'s phantom, with the lesion as ROI.
fn run_session(
    config: &PhantomConfig,
    inference: &mut dyn Inference,
    before_frame: impl FnMut(u64, &mut ExamSession, &mut EventLog),
) -> (EventLog, Truth) {
    let lesion = |truth: &Truth| RoiChoice::Rect(truth.lesion_roi);
    run_session_with_roi(config, lesion, inference, before_frame)
}

/// Runs a session over every frame of `config`'s phantom, with the ROI `choose` picks
/// given the phantom's truth.
fn run_session_with_roi(
    config: &PhantomConfig,
    choose: impl FnOnce(&Truth) -> RoiChoice,
    inference: &mut dyn Inference,
    mut before_frame: impl FnMut(u64, &mut ExamSession, &mut EventLog),
) -> (EventLog, Truth) {
    let phantom = Phantom::new(config.clone()).unwrap();
    let truth = phantom.truth().clone();
    let session_config = SessionConfig {
        roi: choose(&truth),
        frame_rate: Some(config.fps),
        ..SessionConfig::default()
    };
    let mut session = ExamSession::new(session_config, BTreeMap::new());
    let mut source = PhantomSource::new(phantom);
    let mut events = EventLog::default();
    let mut frame = Frame::empty();
    let mut overlay = Frame::empty();
    session.begin(&mut events);
    while source.read_frame(&mut frame).unwrap() {
        before_frame(frame.index, &mut session, &mut events);
        session.process_frame(&frame, &mut overlay, inference, &mut events);
    }
    session.finish(inference, &mut events, Duration::from_secs(10));
    (events, truth)
}

fn kinds(events: &EventLog) -> Vec<&'static str> {
    events
        .events
        .iter()
        .filter_map(|event| match event {
            Event::BolusArrival { .. } => Some("arrival"),
            Event::Peak { .. } => Some("peak"),
            Event::Result(_) => Some("result"),
            _ => None,
        })
        .collect()
}

/// Checks the peak frame as the offline phantom test does: an event-free frame with at
/// least 90% of the lesion's true peak power.
fn check_peak_frame(truth: &Truth, frame: u64) {
    let true_peak = truth
        .frames
        .iter()
        .filter(|f| f.event == FrameEvent::None)
        .map(|f| f.lesion_power)
        .fold(0.0, f64::max);
    let chosen = &truth.frames[frame as usize];
    assert_eq!(chosen.event, FrameEvent::None, "peak frame {frame}");
    assert!(
        chosen.lesion_power >= 0.9 * true_peak,
        "peak frame {frame} has {:.1}% of the peak power (true peak frame {:?})",
        100.0 * chosen.lesion_power / true_peak,
        truth.peak_frame
    );
}

#[test]
fn session_gives_arrival_peak_result_in_order() {
    for seed in [3, 11] {
        let mut inference = DelayedInference::new(Duration::from_millis(1));
        let (events, truth) = run_session(&phantom_config(seed), &mut inference, |_, _, _| {});
        assert_eq!(kinds(&events), ["arrival", "peak", "result"], "seed {seed}");

        let peak = events.events.iter().find_map(|e| match e {
            Event::Peak { frame, .. } => Some(*frame),
            _ => None,
        });
        check_peak_frame(&truth, peak.unwrap());
        assert_eq!(inference.jobs.len(), 1);
        assert_eq!(inference.jobs[0].roi, truth.lesion_roi);
    }
}

#[test]
fn auto_roi_finds_lesion_peak() {
    for seed in [3, 7, 11] {
        let mut inference = DelayedInference::new(Duration::from_millis(1));
        let auto = |_: &Truth| RoiChoice::Auto;
        let (events, truth) =
            run_session_with_roi(&phantom_config(seed), auto, &mut inference, |_, _, _| {});

        assert_eq!(kinds(&events), ["arrival", "peak", "result"], "seed {seed}");
        let job = &inference.jobs[0];
        let lesion = truth.lesion_roi;
        let overlap = job.roi.intersection(&lesion).map_or(0, |r| r.area());
        assert!(
            2 * overlap >= job.roi.area(),
            "seed {seed}: ROI {} lies mostly outside the lesion {lesion}",
            job.roi
        );
        check_peak_frame(&truth, job.frame);
    }
}

#[test]
fn repeated_capture_frames_stay_reliable() {
    // A capture card at 60 Hz on a 15 fps scanner delivers every frame four times.
    let config = phantom_config(3);
    let phantom = Phantom::new(config.clone()).unwrap();
    let truth = phantom.truth().clone();
    let session_config = SessionConfig {
        roi: RoiChoice::Rect(truth.lesion_roi),
        frame_rate: Some(4.0 * config.fps),
        ..SessionConfig::default()
    };
    let mut session = ExamSession::new(session_config, BTreeMap::new());
    let mut inference = DelayedInference::new(Duration::from_millis(1));
    let mut source = PhantomSource::new(phantom);
    let mut events = EventLog::default();
    let (mut frame, mut overlay) = (Frame::empty(), Frame::empty());
    session.begin(&mut events);
    while source.read_frame(&mut frame).unwrap() {
        let (index, time_s) = (frame.index, frame.time_s);
        for copy in 0..4 {
            frame.index = 4 * index + copy;
            frame.time_s = time_s + copy as f64 / (4.0 * config.fps);
            session.process_frame(&frame, &mut overlay, &mut inference, &mut events);
        }
    }
    session.finish(&mut inference, &mut events, Duration::from_secs(10));

    assert_eq!(kinds(&events), ["arrival", "peak", "result"]);
    let job = &inference.jobs[0];
    assert_eq!(
        job.frame % 4,
        0,
        "the peak is a repeat: frame {}",
        job.frame
    );
    check_peak_frame(&truth, job.frame / 4);
    assert!(
        !job.quality.reasons.iter().any(|r| r.contains("flagged")),
        "{:?}",
        job.quality.reasons
    );
    let frozen = events
        .events
        .iter()
        .any(|e| matches!(e, Event::Warning { message, .. } if message.contains("frozen")));
    assert!(!frozen);
}

#[test]
fn new_exam_drops_stale_results() {
    // The first exam's job takes 2 s; new_exam arrives while it runs, so its result
    // must never be reported for the second exam.
    let config = phantom_config(5);
    let mut inference = DelayedInference::new(Duration::from_secs(2));
    let mut peak_seen_at = None;
    let (events, _) = run_session(&config, &mut inference, |index, session, events| {
        let peaked = events
            .events
            .iter()
            .any(|e| matches!(e, Event::Peak { .. }));
        if peaked && peak_seen_at.is_none() {
            peak_seen_at = Some(index);
            session.apply(&Command::NewExam, events).unwrap();
        }
    });
    assert!(peak_seen_at.is_some(), "the first exam never peaked");

    let results: Vec<u32> = events
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Result(result) => Some(result.exam),
            _ => None,
        })
        .collect();
    assert!(results.iter().all(|&exam| exam == 2), "results {results:?}");
    let exams: Vec<(u32, &str)> = events
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Exam { exam, state } => Some((*exam, *state)),
            _ => None,
        })
        .collect();
    assert_eq!(exams, [(1, "started"), (2, "started")]);
    let abandoned = events.events.iter().find_map(|e| match e {
        Event::Warning {
            exam,
            kind: "abandoned",
            message,
        } => Some((*exam, message.clone())),
        _ => None,
    });
    assert_eq!(
        abandoned,
        Some((1, "exam 1 ended before its result".to_string()))
    );
}

#[test]
fn roi_command_after_the_peak_is_rejected() {
    let config = phantom_config(9);
    let mut inference = DelayedInference::new(Duration::from_millis(1));
    let mut rejected = None;
    let (events, truth) = run_session(&config, &mut inference, |_, session, events| {
        let peaked = events
            .events
            .iter()
            .any(|e| matches!(e, Event::Peak { .. }));
        if peaked && rejected.is_none() {
            rejected = Some(session.apply(&Command::AutoRoi, events));
        }
    });
    let error = rejected.unwrap().unwrap_err();
    assert!(error.contains("confirmed"), "{error}");
    assert!(error.contains("send reset"), "{error}");
    assert_eq!(kinds(&events), ["arrival", "peak", "result"]);
    assert_eq!(inference.jobs[0].roi, truth.lesion_roi);
}

#[test]
fn invalid_roi_command_changes_nothing() {
    let config = phantom_config(9);
    let mut inference = DelayedInference::new(Duration::from_millis(1));
    let mut rejected = None;
    let (events, truth) = run_session(&config, &mut inference, |index, session, events| {
        if index == 60 {
            let outside = Rect::new(0, 0, 5000, 5000);
            rejected = Some(session.apply(&Command::Roi(outside), events));
        }
    });
    let error = rejected.unwrap().unwrap_err();
    assert!(error.contains("not inside the contrast view"), "{error}");
    assert_eq!(kinds(&events), ["arrival", "peak", "result"]);
    assert_eq!(inference.jobs[0].roi, truth.lesion_roi);
}

#[test]
fn clinical_values_after_the_result_score_again() {
    let config = phantom_config(3);
    let mut inference = DelayedInference::new(Duration::from_millis(1));
    let mut sent = false;
    let (events, _) = run_session(&config, &mut inference, |_, session, events| {
        let has_result = events.events.iter().any(|e| matches!(e, Event::Result(_)));
        if has_result && !sent {
            sent = true;
            let values = BTreeMap::from([("age".to_string(), 63.0)]);
            session.apply(&Command::Clinical(values), events).unwrap();
        }
    });
    assert!(sent);
    assert_eq!(inference.jobs.len(), 2);
    assert!(inference.jobs[0].clinical.is_empty());
    assert_eq!(inference.jobs[1].clinical["age"], 63.0);
    assert_eq!(kinds(&events), ["arrival", "peak", "result", "result"]);
}

/// A full-range GREY format, so decoded frames keep the mock's bytes.
fn grey_format(width: u32, height: u32) -> BufferFormat {
    BufferFormat {
        fourcc: FourCc(*b"GREY"),
        width,
        height,
        bytesperline: width,
        sizeimage: width * height,
        colorspace: 0,
        quantization: QUANTIZATION_FULL_RANGE,
    }
}

fn grey_frames(count: u32, first_sequence: u32, size: usize) -> Vec<MockEvent> {
    (0..count)
        .map(|i| {
            let sequence = first_sequence + i;
            let payload = vec![(sequence % 200) as u8 + 20; size];
            MockEvent::frame(
                &payload,
                sequence,
                Duration::from_millis(1000 + 33 * u64::from(sequence)),
            )
        })
        .collect()
}

/// Logs events and sets the shutdown flag at the `stop_at`-th `no_signal`, so a test can
/// end a live source that never ends by itself.
struct StopAtNoSignal<'a> {
    log: EventLog,
    stop: &'a AtomicBool,
    stop_at: u32,
    seen: u32,
}

impl EventSink for StopAtNoSignal<'_> {
    fn emit(&mut self, event: &Event) {
        if matches!(
            event,
            Event::Device {
                state: "no_signal",
                ..
            }
        ) {
            self.seen += 1;
            if self.seen == self.stop_at {
                self.stop.store(true, Ordering::Relaxed);
            }
        }
        self.log.emit(event);
    }
}

/// A device that disconnects after frame 3 and comes back when reopened: the pipeline
/// reports no signal, reconnects, and goes on with the next frames.
#[test]
fn device_disconnect_shows_no_signal_then_reconnects() {
    let (width, height) = (64, 48);
    let size = (width * height) as usize;
    let mut first = grey_frames(3, 0, size);
    first.push(MockEvent::Disconnect);
    // After the second script the mock delivers nothing: the source times out, which is
    // the second no_signal, and the test stops there.
    let device = MockDevice::new(grey_format(width, height), 4, first)
        .then_after_reopen(grey_frames(5, 0, size));

    let open: Opener = Box::new(move || {
        let source = CaptureSource::new(device, CaptureOptions::default())?;
        Ok(Box::new(DeviceInput::new(source)) as Box<dyn LiveInput>)
    });
    let (frames, states) = run_until_second_no_signal(open);

    assert_eq!(frames, 8);
    assert_eq!(states, ["no_signal", "reconnected", "no_signal"]);
}

/// A device missing when the run starts is waited for: the pipeline reports no signal,
/// opens the device when it appears, and reads its frames.
#[test]
fn device_missing_at_start_is_waited_for() {
    let (width, height) = (64, 48);
    let size = (width * height) as usize;
    let device = MockDevice::new(grey_format(width, height), 4, grey_frames(5, 0, size));
    let mut device = Some(device);
    let mut attempts = 0;
    let open_device = Box::new(move || {
        attempts += 1;
        if attempts <= 2 {
            let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(SourceError::Capture(CaptureError::Io {
                device: "/dev/video7".into(),
                operation: "open",
                source: missing,
            }));
        }
        let device = device.take().expect("opened twice");
        let source = CaptureSource::new(device, CaptureOptions::default())?;
        Ok(Box::new(DeviceInput::new(source)) as Box<dyn LiveInput>)
    });
    let placeholder = SourceInfo {
        container: "V4L2",
        width: 0,
        height: 0,
        frames: None,
        fps: None,
        timing: TimingSource::DeviceTimestamps,
    };
    let open: Opener =
        Box::new(move || AwaitedInput::open("/dev/video7".into(), placeholder, open_device));
    let (frames, states) = run_until_second_no_signal(open);

    assert_eq!(frames, 5);
    assert_eq!(states, ["no_signal", "reconnected", "no_signal"]);
}

/// Runs the pipeline on a mock device until its second `no_signal` and returns the
/// frames analysed and the device states reported.
fn run_until_second_no_signal(open: Opener) -> (u64, Vec<&'static str>) {
    let mut session = ExamSession::new(SessionConfig::default(), BTreeMap::new());
    let mut inference = DelayedInference::new(Duration::from_millis(1));
    let stop = AtomicBool::new(false);
    let mut events = StopAtNoSignal {
        log: EventLog::default(),
        stop: &stop,
        stop_at: 2,
        seen: 0,
    };
    let mut display = NoDisplay;
    let mut outputs = Outputs {
        display: &mut display,
        recorder: None,
        events: &mut events,
    };
    // The mock delivers its frames at once; waiting instead of dropping keeps all of them.
    let options = LiveOptions {
        policy: FullPolicy::Wait,
        backoff: Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        ..LiveOptions::default()
    };
    let stats = pipeline::run(
        open,
        "mock",
        &mut session,
        &mut inference,
        &mut outputs,
        None,
        &stop,
        options,
    )
    .unwrap();

    assert!(matches!(events.log.events.last(), Some(Event::Stats(_))));
    let states = events
        .log
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Device { state, .. } => Some(*state),
            _ => None,
        })
        .collect();
    (stats.frames, states)
}

/// Makes a 1920x1080 frame: dark with a brighter square, timed at 60 fps.
fn hd_frame(index: u64) -> Frame {
    let mut frame = Frame::new(1920, 1080, PixelFormat::Rgb8);
    frame.index = index;
    frame.time_s = index as f64 / 60.0;
    for y in 300..700 {
        let row = &mut frame.data[y * 1920 * 3..(y + 1) * 1920 * 3];
        row[3 * 1200..3 * 1600].fill(90 + (index % 7) as u8);
    }
    frame
}

/// With the real worker running DenseNet-201 on a job, 1080p frames at 60 fps go on
/// through the session: no frame waits for the inference.
#[test]
fn frames_do_not_wait_for_inference() {
    let models = repo_root().join("models");
    let extractor = Extractor::load(
        &models.join("densenet201-int8.onnx"),
        &LoadOptions::default(),
    )
    .unwrap();
    let signature = Signature::load(&models.join("demo-signature.bin")).unwrap();
    let mut worker = InferenceWorker::spawn(extractor, signature).unwrap();

    let whole = hd_frame(0);
    let job = InferenceJob {
        generation: 999,
        exam: 1,
        frame: 0,
        time_s: 0.0,
        crop: whole.clone(),
        roi: Rect::new(1200, 300, 400, 400),
        roi_in_crop: Rect::new(1200, 300, 400, 400),
        clinical: BTreeMap::new(),
        quality: Quality {
            reliable: true,
            reasons: Vec::new(),
            tic_status: TicStatus::Ok,
            fit_r2: None,
            flagged_fraction: 0.0,
            peak_ncc: None,
        },
    };
    let mut session = ExamSession::new(SessionConfig::default(), BTreeMap::new());
    let mut events = EventLog::default();
    let mut overlay = Frame::empty();
    let mut frames: Vec<Frame> = (0..4).map(hd_frame).collect();

    // Warm the session up before the job, so the first frames' allocations do not count.
    for frame in frames.iter_mut() {
        session.process_frame(frame, &mut overlay, &mut worker, &mut events);
    }
    let submitted = Instant::now();
    assert!(worker.submit(Box::new(job.clone())).is_ok());
    let again = Instant::now();
    assert!(
        worker.submit(Box::new(job)).is_err(),
        "a busy worker takes no job"
    );
    assert!(again.elapsed() < Duration::from_millis(50));

    let mut slowest = Duration::ZERO;
    let mut processed = 0u64;
    let mut outcome = None;
    let mut index = 4u64;
    while outcome.is_none() && submitted.elapsed() < Duration::from_secs(60) {
        let due = submitted + Duration::from_secs_f64(processed as f64 / 60.0);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let frame = &mut frames[(index % 4) as usize];
        frame.index = index;
        frame.time_s = index as f64 / 60.0;
        let started = Instant::now();
        session.process_frame(frame, &mut overlay, &mut NoInference, &mut events);
        slowest = slowest.max(started.elapsed());
        processed += 1;
        index += 1;
        outcome = worker.poll();
    }
    let inference_time = submitted.elapsed();
    let outcome = outcome.expect("the worker answered within 60 s");
    assert!(outcome.result.is_ok(), "{:?}", outcome.result.err());
    assert!(
        processed >= 3,
        "only {processed} frames ran during {inference_time:?} of inference"
    );
    assert!(
        slowest < inference_time / 2,
        "the slowest frame took {slowest:?}, inference {inference_time:?}"
    );
    println!(
        "{processed} frames at 1080p during {inference_time:?} of inference; slowest {slowest:?}"
    );
}

/// Takes no job and has no outcome.
struct NoInference;

impl Inference for NoInference {
    fn submit(&mut self, job: Box<InferenceJob>) -> Result<(), Box<InferenceJob>> {
        Err(job)
    }

    fn poll(&mut self) -> Option<InferenceOutcome> {
        None
    }
}

/// Writes a phantom exam with `ceus-edge phantom` and returns its folder.
fn write_phantom(dir: &Path, seed: u64) -> Truth {
    let status = ceus_edge()
        .args([
            "phantom", "--size", "320x240", "--fps", "15", "--frames", "450",
        ])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = std::fs::read_to_string(dir.join("truth.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn event_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// A recording that hits the file size limit (as on a full disk) stops with its whole
/// frames readable, and the session goes on to the end of the stream.
#[test]
fn recording_stops_whole_when_writes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("recording");
    let run = ceus_edge();
    // The shell ignores SIGXFSZ, so writes past the limit fail with EFBIG instead of
    // killing the process, and sets a file size limit of about 1 to 2 MB (ulimit counts
    // 512- or 1024-byte blocks depending on the shell).
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 2000; exec \"$@\"")
        .arg("sh")
        .arg(run.get_program())
        .args(run.get_args())
        .args(["run", "--source", "phantom:2", "--phantom-size", "320x240"])
        .args([
            "--phantom-seconds",
            "4",
            "--pace",
            "fast",
            "--display",
            "none",
        ])
        .args(["--events", "-", "--record"])
        .arg(&record)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("stops here with its whole frames"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("writing the recording").count(),
        1,
        "{stderr}"
    );
    let events = event_lines(&output.stdout);
    assert_eq!(events.last().unwrap()["frames"], 60);

    let path = record.join("overlay.y4m");
    let length = std::fs::metadata(&path).unwrap().len();
    let mut source = Y4mSource::open(&path, &OpenOptions::default()).unwrap();
    let mut frame = Frame::empty();
    let mut frames = 0u64;
    while source.read_frame(&mut frame).unwrap() {
        frames += 1;
    }
    assert!(
        (1..60).contains(&frames),
        "{frames} frames in {length} bytes"
    );
}

#[test]
fn run_on_phantom_cine_reports_events() {
    let dir = tempfile::tempdir().unwrap();
    let truth = write_phantom(dir.path(), 7);
    let roi = truth.lesion_roi;
    let record = dir.path().join("recording");
    let output = ceus_edge()
        .arg("run")
        .arg("--source")
        .arg(format!("file:{}", dir.path().join("exam.dcm").display()))
        .args(["--pace", "fast", "--display", "none", "--events", "-"])
        .args(["--roi", &format!("{},{},{},{}", roi.x, roi.y, roi.w, roi.h)])
        .arg("--record")
        .arg(&record)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");

    let events = event_lines(&output.stdout);
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let order: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| ["bolus_arrival", "peak", "result"].contains(n))
        .collect();
    assert_eq!(order, ["bolus_arrival", "peak", "result"], "{names:?}");
    assert_eq!(names.first(), Some(&"session"));
    assert_eq!(names.last(), Some(&"stats"));

    let peak = events.iter().find(|e| e["event"] == "peak").unwrap();
    check_peak_frame(&truth, peak["frame"].as_u64().unwrap());
    let result = events.iter().find(|e| e["event"] == "result").unwrap();
    let probability = result["probability"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&probability));
    assert_eq!(result["demo"], true);
    assert_eq!(result["integrated_available"], false);

    let stats = events.last().unwrap();
    assert_eq!(stats["frames"], 450);
    assert_eq!(stats["dropped"], 0);
    assert!(stats["latency_ms"]["p95"].as_f64().unwrap() > 0.0);

    let y4m = std::fs::read(record.join("overlay.y4m")).unwrap();
    assert!(y4m.starts_with(b"YUV4MPEG2 W320 H240 "));
    assert!(y4m.len() > 450 * 320 * 240 * 3);
    let snapshots: Vec<String> = std::fs::read_dir(&record)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".png"))
        .collect();
    for event in ["arrival", "peak", "result"] {
        assert!(
            snapshots
                .iter()
                .any(|n| n.ends_with(&format!("-{event}.png"))),
            "no {event} snapshot in {snapshots:?}"
        );
    }
}

/// Waits up to 60 s for `run` to create its control socket, which it does after loading
/// the models.
fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn control_socket_takes_commands_and_quits() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let events_path = dir.path().join("events.jsonl");
    let child = ceus_edge()
        .args(["run", "--source", "phantom:3", "--phantom-size", "320x240"])
        .args(["--phantom-seconds", "300", "--display", "none"])
        .arg("--control")
        .arg(format!("unix:{}", socket.display()))
        .arg("--events")
        .arg(&events_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    wait_for_socket(&socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let connect = || {
        let stream = UnixStream::connect(&socket).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        move |line: &str| -> Value {
            writeln!(writer, "{line}").unwrap();
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            serde_json::from_str(&reply).unwrap()
        }
    };
    let mut ask = connect();
    let bogus = ask(r#"{"cmd":"launch"}"#);
    assert_eq!(bogus["reply"], "error");
    assert!(bogus["message"]
        .as_str()
        .unwrap()
        .contains("unknown command"));

    // A second client is served while the first stays connected.
    let mut ask_too = connect();
    assert_eq!(ask_too(r#"{"cmd":"reset"}"#)["reply"], "ok");

    // A second instance does not take over the socket of a running one.
    let second = ceus_edge()
        .args([
            "run",
            "--source",
            "phantom",
            "--display",
            "none",
            "--control",
        ])
        .arg(format!("unix:{}", socket.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another program is listening"), "{stderr}");

    assert_eq!(ask(r#"{"cmd":"new_exam"}"#)["reply"], "ok");
    assert_eq!(ask(r#"{"cmd":"quit"}"#)["reply"], "ok");

    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = event_lines(&std::fs::read(&events_path).unwrap());
    let exams: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "exam")
        .map(|e| e["exam"].as_u64().unwrap())
        .collect();
    assert_eq!(exams, [1, 2, 3]);
    assert_eq!(events.last().unwrap()["event"], "stats");
    assert!(!socket.exists(), "the socket is removed at exit");
}

/// The bundled demo signature uses cea in [0.2, 55.7], t_stage and n_stage: a clinical
/// command outside them gets an error reply, and a valid one after it is taken.
#[test]
fn control_rejects_clinical_values_outside_signature() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let child = ceus_edge()
        .args(["run", "--source", "phantom:3", "--phantom-size", "320x240"])
        .args(["--phantom-seconds", "300", "--display", "none"])
        .arg("--control")
        .arg(format!("unix:{}", socket.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&socket);

    let stream = UnixStream::connect(&socket).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut ask = |line: &str| -> Value {
        writeln!(writer, "{line}").unwrap();
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    };
    let out_of_range = ask(r#"{"cmd":"clinical","values":{"cea":500}}"#);
    assert_eq!(out_of_range["reply"], "error", "{out_of_range}");
    let message = out_of_range["message"].as_str().unwrap();
    for part in ["cea", "500", "[0.2, 55.7]", "unit"] {
        assert!(message.contains(part), "{part} not in {message}");
    }
    let unknown = ask(r#"{"cmd":"clinical","values":{"t_stage":2,"ceaa":5}}"#);
    assert_eq!(unknown["reply"], "error", "{unknown}");
    let message = unknown["message"].as_str().unwrap();
    assert!(message.contains("`ceaa`"), "{message}");
    assert!(message.contains("cea, t_stage, n_stage"), "{message}");
    let valid = ask(r#"{"cmd":"clinical","values":{"cea":6.5,"t_stage":3}}"#);
    assert_eq!(valid["reply"], "ok", "{valid}");
    assert_eq!(ask(r#"{"cmd":"quit"}"#)["reply"], "ok");

    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn run_rejects_bad_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_board = dir.path().join("board.toml");
    std::fs::write(&not_a_board, "source = \"phantom\"\nspeed = 2\n").unwrap();
    // A file that is there but is no device fails at once, unlike a missing device.
    let not_a_device = dir.path().join("video0");
    std::fs::write(&not_a_device, "").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--source".into(), "file:/nonexistent/exam.dcm".into()],
            "/nonexistent/exam.dcm",
        ),
        (
            vec!["--source".into(), "usb:3".into()],
            "invalid --source `usb:3`",
        ),
        (
            vec![
                "--source".into(),
                "phantom".into(),
                "--display".into(),
                "fb:/nonexistent/fb7".into(),
            ],
            "/nonexistent/fb7",
        ),
        (
            vec!["--board".into(), not_a_board.display().to_string()],
            "unknown field `speed`",
        ),
        (vec![], "no source"),
        (
            vec![
                "--source".into(),
                format!("v4l2:{}", not_a_device.display()),
            ],
            "video0",
        ),
        (
            vec![
                "--source".into(),
                "phantom".into(),
                "--set".into(),
                "cea=500".into(),
            ],
            "cea = 500 is outside its valid range [0.2, 55.7]",
        ),
        (
            vec![
                "--source".into(),
                "phantom".into(),
                "--set".into(),
                "ceaa=5".into(),
            ],
            "`ceaa` is not a variable of the signature",
        ),
    ];
    for (args, expected) in cases {
        let output = ceus_edge().arg("run").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// With the feature on, tests/integration/window.rs checks the window's own errors.
#[cfg(not(feature = "window"))]
#[test]
fn window_without_the_feature_names_the_build_flag() {
    let output = ceus_edge()
        .args(["run", "--source", "phantom", "--display", "window"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr
            .contains("cannot use --display window: the desktop window is not part of this build"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`cargo build --release --features window`"),
        "{stderr}"
    );
}
