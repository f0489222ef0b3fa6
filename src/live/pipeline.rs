//! The live pipeline: a capture thread, the analysis loop on the calling thread and the
//! inference worker, joined by bounded queues.
//!
//! ```text
//! capture thread ──FrameQueue (4 frames)──> analysis loop ──overlay──> display, recorder
//!                                            │    ▲
//!                              job (rendezvous)    outcome
//!                                            ▼    │
//!                                       inference worker
//! ```
//! The capture thread never waits for analysis on a live source: a full queue drops its
//! oldest frame. The analysis loop never waits for inference: a job is handed over only
//! when the worker is idle, and outcomes are picked up between frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::{Command, Reply};
use super::events::{Event, EventSink, SessionStats, EVENT_SCHEMA_VERSION};
use super::input::{capture_loop, Backoff, CaptureEnd, LiveInput};
use super::latency::LatencyHistogram;
use super::queue::{FrameQueue, FullPolicy, Popped, SourceNotice, TimedFrame};
use super::session::{ExamSession, Inference};
use crate::display::{Display, Recorder};
use crate::frame::Frame;
use crate::source::{SourceError, SourceInfo};

/// How long the analysis loop waits for a frame before it looks at commands again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Opens the live input on the capture thread.
pub type Opener = Box<dyn FnOnce() -> Result<Box<dyn LiveInput>, SourceError> + Send>;

/// A command from a control connection with the channel for its reply.
pub type ControlMessage = (Command, SyncSender<Reply>);

/// Error that ends a live run.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The source could not be opened.
    #[error(transparent)]
    Open(#[from] SourceError),
    /// The source failed and cannot recover.
    #[error("the source failed: {0}")]
    SourceFailed(String),
    #[error("cannot start the capture thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Settings of one run.
#[derive(Clone, Copy, Debug)]
pub struct LiveOptions {
    pub policy: FullPolicy,
    pub backoff: Backoff,
    /// Maximum wait for the last result when the stream ends.
    pub result_timeout: Duration,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            policy: FullPolicy::DropOldest,
            backoff: Backoff::default(),
            result_timeout: Duration::from_secs(120),
        }
    }
}

/// The outputs of the analysis loop.
pub struct Outputs<'a> {
    pub display: &'a mut dyn Display,
    pub recorder: Option<&'a mut Recorder>,
    pub events: &'a mut dyn EventSink,
}

/// Opens the input on a new capture thread and returns its description once it is open.
///
/// # Errors
/// [`LiveError::Open`] when `open` fails, and [`LiveError::Thread`] when the thread
/// cannot start.
pub fn start_capture(
    open: Opener,
    queue: Arc<FrameQueue>,
    stop: Arc<AtomicBool>,
    backoff: Backoff,
) -> Result<(SourceInfo, std::thread::JoinHandle<(CaptureEnd, u64)>), LiveError> {
    let (opened_sender, opened) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("capture".to_string())
        .spawn(move || {
            let mut input = match open() {
                Ok(input) => input,
                Err(error) => {
                    let _ = opened_sender.send(Err(error));
                    queue.close();
                    return (CaptureEnd::Stopped, 0);
                }
            };
            let _ = opened_sender.send(Ok(input.info().clone()));
            let end = capture_loop(input.as_mut(), &queue, &stop, backoff);
            (end, input.dropped())
        })
        .map_err(LiveError::Thread)?;
    match opened.recv() {
        Ok(Ok(info)) => Ok((info, thread)),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(LiveError::Open(error))
        }
        Err(_) => {
            let _ = thread.join();
            Err(LiveError::SourceFailed(
                "the capture thread ended before opening the source".to_string(),
            ))
        }
    }
}

/// Runs the session on every frame of `queue` until the stream ends, the source fails
/// for good, a `quit` command arrives, the viewer closes the display or `shutdown` is
/// set. Then waits for the last result, and returns the session's figures and the
/// source's failure, if any.
pub fn run_analysis(
    session: &mut ExamSession,
    queue: &FrameQueue,
    inference: &mut dyn Inference,
    outputs: &mut Outputs<'_>,
    control: Option<&Receiver<ControlMessage>>,
    shutdown: &AtomicBool,
    result_timeout: Duration,
) -> (SessionStats, Option<String>) {
    let started = Instant::now();
    let mut latency = LatencyHistogram::default();
    let mut frames = 0u64;
    let mut failure = None;
    let mut overlay = Frame::empty();
    let mut last: Option<TimedFrame> = None;
    session.begin(outputs.events);

    loop {
        if shutdown.load(Ordering::Relaxed) {
            log::info!("stopping on a signal");
            break;
        }
        if outputs.display.is_closed() {
            log::info!("the display was closed: ending the session");
            break;
        }
        if handle_commands(session, control, outputs.events) == Flow::Quit {
            break;
        }
        match queue.pop(POLL_INTERVAL) {
            Popped::Frame(item) => {
                let mut noted = EventNames::new(outputs.events);
                let changed =
                    session.process_frame(&item.frame, &mut overlay, inference, &mut noted);
                let names = noted.names;
                show(&overlay, outputs);
                latency.record(item.captured_at.elapsed());
                frames += 1;
                if changed {
                    snapshot_events(&overlay, &names, session.exam(), outputs);
                }
                if let Some(previous) = last.replace(item) {
                    queue.recycle(previous);
                }
            }
            Popped::Notice(notice) => {
                if let Some(reason) = handle_notice(session, &notice, &mut overlay, outputs) {
                    failure = Some(reason);
                }
            }
            Popped::TimedOut => {}
            Popped::Closed => break,
        }
    }

    let mut noted = EventNames::new(outputs.events);
    session.finish(inference, &mut noted, result_timeout);
    let names = noted.names;
    if let (false, Some(item)) = (names.is_empty(), &last) {
        session.redraw(&item.frame, &mut overlay);
        show(&overlay, outputs);
        snapshot_events(&overlay, &names, session.exam(), outputs);
    }
    if let Some(recorder) = outputs.recorder.as_deref_mut() {
        if let Err(error) = recorder.finish() {
            log::error!("{error}");
        }
    }
    let stats = SessionStats {
        frames,
        dropped: queue.dropped(),
        latency_ms: latency.summary(),
        exams: session.exam(),
        duration_s: started.elapsed().as_secs_f64(),
    };
    (stats, failure)
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

fn handle_commands(
    session: &mut ExamSession,
    control: Option<&Receiver<ControlMessage>>,
    events: &mut dyn EventSink,
) -> Flow {
    let Some(control) = control else {
        return Flow::Continue;
    };
    loop {
        let (command, reply_to) = match control.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Flow::Continue,
        };
        let reply = match session.apply(&command, events) {
            Ok(()) => Reply::ok(command.name()),
            Err(message) => Reply::error(command.name(), message),
        };
        let _ = reply_to.send(reply);
        if command == Command::Quit {
            return Flow::Quit;
        }
    }
}

/// Reports a source notice; returns the reason when the source failed for good.
fn handle_notice(
    session: &mut ExamSession,
    notice: &SourceNotice,
    overlay: &mut Frame,
    outputs: &mut Outputs<'_>,
) -> Option<String> {
    let (state, message, failure) = match notice {
        SourceNotice::NoSignal { reason } => ("no_signal", Some(reason.clone()), None),
        SourceNotice::Reconnected => ("reconnected", None, None),
        SourceNotice::Failed { reason } => ("failed", Some(reason.clone()), Some(reason.clone())),
    };
    outputs.events.emit(&Event::Device { state, message });
    if state != "reconnected" {
        session.set_no_signal();
        session.draw_no_signal(overlay);
        show(overlay, outputs);
    }
    failure
}

fn show(overlay: &Frame, outputs: &mut Outputs<'_>) {
    if overlay.data.is_empty() {
        return;
    }
    if let Err(error) = outputs.display.show(overlay) {
        log::warn!("display: {error}");
    }
    if let Some(recorder) = outputs.recorder.as_deref_mut() {
        if let Err(error) = recorder.record(overlay) {
            log::warn!("recording: {error}");
        }
    }
}

/// Writes a PNG of the overlay for each event of the frame, named by exam and event.
fn snapshot_events(overlay: &Frame, names: &[&'static str], exam: u32, outputs: &mut Outputs<'_>) {
    let Some(recorder) = outputs.recorder.as_deref_mut() else {
        return;
    };
    for name in names {
        let file = format!("exam{exam}-{}-{name}", overlay.index);
        if let Err(error) = recorder.snapshot(&file, overlay) {
            log::warn!("{error}");
        }
    }
}

/// Passes events on and notes the kinds worth a snapshot, without allocating.
struct EventNames<'a> {
    inner: &'a mut dyn EventSink,
    names: heapless::Vec<&'static str, 4>,
}

impl<'a> EventNames<'a> {
    fn new(inner: &'a mut dyn EventSink) -> EventNames<'a> {
        EventNames {
            inner,
            names: heapless::Vec::new(),
        }
    }
}

impl EventSink for EventNames<'_> {
    fn emit(&mut self, event: &Event) {
        let name = match event {
            Event::Layout { .. } => Some("layout"),
            Event::BolusArrival { .. } => Some("arrival"),
            Event::Peak { .. } => Some("peak"),
            Event::Result(_) => Some("result"),
            _ => None,
        };
        if let Some(name) = name {
            let _ = self.names.push(name);
        }
        self.inner.emit(event);
    }
}

/// Runs a whole live session: starts the capture thread, runs the analysis loop, stops
/// the capture thread and emits the final `stats` event.
///
/// # Errors
/// [`LiveError::Open`] when the source cannot be opened, and
/// [`LiveError::SourceFailed`] when it failed for good during the session (after the
/// `stats` event).
#[allow(clippy::too_many_arguments)]
pub fn run(
    open: Opener,
    source_name: &str,
    session: &mut ExamSession,
    inference: &mut dyn Inference,
    outputs: &mut Outputs<'_>,
    control: Option<&Receiver<ControlMessage>>,
    shutdown: &AtomicBool,
    options: LiveOptions,
) -> Result<SessionStats, LiveError> {
    let queue = Arc::new(FrameQueue::new(options.policy));
    let stop = Arc::new(AtomicBool::new(false));
    let (info, capture) = start_capture(open, queue.clone(), stop.clone(), options.backoff)?;
    log::info!(
        "live source {} {}x{} at {} fps",
        info.container,
        info.width,
        info.height,
        info.fps
            .map_or("unknown".to_string(), |f| format!("{f:.2}"))
    );
    session.set_frame_rate(info.fps);
    outputs.events.emit(&Event::Session {
        schema_version: EVENT_SCHEMA_VERSION,
        source: source_name.to_string(),
        width: info.width,
        height: info.height,
        fps: info.fps,
        demo: session.is_demo(),
    });

    let (mut stats, failure) = run_analysis(
        session,
        &queue,
        inference,
        outputs,
        control,
        shutdown,
        options.result_timeout,
    );
    stop.store(true, Ordering::Relaxed);
    queue.close();
    let (end, driver_dropped) = capture
        .join()
        .unwrap_or((CaptureEnd::Failed("the capture thread panicked".into()), 0));
    stats.dropped += driver_dropped;
    log::debug!("capture ended: {end:?}");
    outputs.events.emit(&Event::Stats(stats.clone()));

    match failure {
        Some(reason) => Err(LiveError::SourceFailed(reason)),
        None => Ok(stats),
    }
}
