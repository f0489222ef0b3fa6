//! Live inputs of the capture thread (a capture device, or a recording replayed at its
//! own pace or as fast as possible) and the loop that feeds the frame queue.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::queue::{FrameQueue, SourceNotice};
use crate::capture::device::CaptureDevice;
use crate::capture::source::CaptureSource;
use crate::capture::CaptureError;
use crate::frame::Frame;
use crate::source::{FrameSource, SourceError, SourceInfo};

/// A source of live frames.
pub trait LiveInput {
    fn info(&self) -> &SourceInfo;

    /// Reads the next frame into `frame`; `Ok(false)` at the end of a recording.
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError>;

    /// Tries to recover after an error: reopens a device. A recording cannot recover.
    fn recover(&mut self) -> Result<(), SourceError>;

    /// Returns whether [`LiveInput::recover`] can ever succeed.
    fn can_recover(&self) -> bool;

    /// Frames the driver dropped so far.
    fn dropped(&self) -> u64;
}

/// A capture device through [`CaptureSource`].
pub struct DeviceInput<D: CaptureDevice> {
    source: CaptureSource<D>,
}

impl<D: CaptureDevice> DeviceInput<D> {
    pub fn new(source: CaptureSource<D>) -> DeviceInput<D> {
        DeviceInput { source }
    }
}

impl<D: CaptureDevice> LiveInput for DeviceInput<D> {
    fn info(&self) -> &SourceInfo {
        self.source.info()
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        self.source.read_frame(frame)
    }

    fn recover(&mut self) -> Result<(), SourceError> {
        Ok(self.source.reopen()?)
    }

    fn can_recover(&self) -> bool {
        true
    }

    fn dropped(&self) -> u64 {
        self.source.stats().dropped
    }
}

/// Opens a device opener's input once it succeeds. While the device is missing, reading
/// fails as it does after an unplug, so the pipeline shows "no signal" and retries with
/// back-off until the device appears.
pub struct AwaitedInput {
    open: Box<dyn FnMut() -> Result<Box<dyn LiveInput>, SourceError> + Send>,
    input: Option<Box<dyn LiveInput>>,
    /// Stands in for the device's description until it is open.
    placeholder: SourceInfo,
    device: PathBuf,
}

impl AwaitedInput {
    /// Calls `open` now, and returns its input or, when `open` fails because the
    /// device is missing ([`CaptureError::is_missing_device`]), an input that keeps
    /// trying. Any other error is returned.
    ///
    /// # Errors
    /// The error of `open` when the device is there but cannot be used.
    pub fn open(
        device: PathBuf,
        placeholder: SourceInfo,
        mut open: Box<dyn FnMut() -> Result<Box<dyn LiveInput>, SourceError> + Send>,
    ) -> Result<Box<dyn LiveInput>, SourceError> {
        match open() {
            Ok(input) => Ok(input),
            Err(SourceError::Capture(error)) if error.is_missing_device() => {
                log::warn!("{error}: waiting for the device");
                Ok(Box::new(AwaitedInput {
                    open,
                    input: None,
                    placeholder,
                    device,
                }))
            }
            Err(error) => Err(error),
        }
    }
}

impl LiveInput for AwaitedInput {
    fn info(&self) -> &SourceInfo {
        self.input
            .as_ref()
            .map_or(&self.placeholder, |input| input.info())
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        match &mut self.input {
            Some(input) => input.next_frame(frame),
            None => Err(SourceError::Capture(CaptureError::NotPresent {
                device: self.device.clone(),
            })),
        }
    }

    fn recover(&mut self) -> Result<(), SourceError> {
        match &mut self.input {
            Some(input) => input.recover(),
            None => {
                self.input = Some((self.open)()?);
                Ok(())
            }
        }
    }

    fn can_recover(&self) -> bool {
        self.input.as_ref().is_none_or(|input| input.can_recover())
    }

    fn dropped(&self) -> u64 {
        self.input.as_ref().map_or(0, |input| input.dropped())
    }
}

/// Replay speed of a recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// At the recording's own frame times, as a capture card would deliver it.
    Native,
    /// As fast as the pipeline takes the frames.
    Fast,
}

/// A recording (or the phantom) as a live input.
pub struct ReplayInput {
    source: Box<dyn FrameSource>,
    pace: Pace,
    /// Wall-clock instant of the first frame and that frame's time.
    started: Option<(Instant, f64)>,
}

impl ReplayInput {
    pub fn new(source: Box<dyn FrameSource>, pace: Pace) -> ReplayInput {
        ReplayInput {
            source,
            pace,
            started: None,
        }
    }
}

impl LiveInput for ReplayInput {
    fn info(&self) -> &SourceInfo {
        self.source.info()
    }

    /// Reads the next frame, then at native pace sleeps until its time has come.
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        if !self.source.read_frame(frame)? {
            return Ok(false);
        }
        if self.pace == Pace::Native && frame.time_s.is_finite() {
            let (start, first_time_s) = *self.started.get_or_insert((Instant::now(), frame.time_s));
            let offset = (frame.time_s - first_time_s).max(0.0);
            let due = start + Duration::from_secs_f64(offset);
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        Ok(true)
    }

    fn recover(&mut self) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(
            "a recording cannot be reopened after an error".to_string(),
        ))
    }

    fn can_recover(&self) -> bool {
        false
    }

    fn dropped(&self) -> u64 {
        0
    }
}

/// Waits between attempts to reopen a device: doubling from `initial` up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s: a replugged capture card is back within a second, and a
    /// missing one costs one attempt every 5 s.
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

/// The reason the capture loop ended.
#[derive(Debug, PartialEq)]
pub enum CaptureEnd {
    /// The recording ended.
    EndOfStream,
    /// The consumer stopped the loop.
    Stopped,
    /// The input failed and cannot recover.
    Failed(String),
}

/// Reads frames from `input` into `queue` until the input ends, fails for good, or
/// `stop` is set. After a recoverable failure it sends [`SourceNotice::NoSignal`],
/// retries with `backoff`, and sends [`SourceNotice::Reconnected`] when the input is back.
/// The queue is closed on return.
pub fn capture_loop(
    input: &mut dyn LiveInput,
    queue: &FrameQueue,
    stop: &AtomicBool,
    backoff: Backoff,
) -> CaptureEnd {
    let end = read_until_end(input, queue, stop, backoff);
    if let CaptureEnd::Failed(reason) = &end {
        queue.notify(SourceNotice::Failed {
            reason: reason.clone(),
        });
    }
    queue.close();
    end
}

fn read_until_end(
    input: &mut dyn LiveInput,
    queue: &FrameQueue,
    stop: &AtomicBool,
    backoff: Backoff,
) -> CaptureEnd {
    loop {
        if stop.load(Ordering::Relaxed) {
            return CaptureEnd::Stopped;
        }
        let mut item = queue.take_free();
        match input.next_frame(&mut item.frame) {
            Ok(true) => {
                // NOTE: latency starts here, after the frame is dequeued and decoded, not at
                // the driver's buffer timestamp, so decode time is not part of it.
                item.captured_at = Instant::now();
                if !queue.push(item) {
                    return CaptureEnd::Stopped;
                }
            }
            Ok(false) => {
                queue.recycle(item);
                return CaptureEnd::EndOfStream;
            }
            Err(error) => {
                queue.recycle(item);
                if !input.can_recover() {
                    return CaptureEnd::Failed(error.to_string());
                }
                log::warn!("no signal: {error}");
                queue.notify(SourceNotice::NoSignal {
                    reason: error.to_string(),
                });
                if !reconnect(input, stop, backoff) {
                    return CaptureEnd::Stopped;
                }
                queue.notify(SourceNotice::Reconnected);
            }
        }
    }
}

/// Retries [`LiveInput::recover`] with back-off; returns false when stopped first.
fn reconnect(input: &mut dyn LiveInput, stop: &AtomicBool, backoff: Backoff) -> bool {
    let mut delay = backoff.initial;
    let mut attempts = 0u32;
    loop {
        if !sleep_unless_stopped(delay, stop) {
            return false;
        }
        attempts += 1;
        match input.recover() {
            Ok(()) => {
                log::info!("the source is back after {attempts} attempt(s)");
                return true;
            }
            Err(error) => {
                if attempts <= 3 || attempts % 10 == 0 {
                    log::warn!("reopening the source failed (attempt {attempts}): {error}");
                }
                delay = (delay * 2).min(backoff.max);
            }
        }
    }
}

/// Sleeps `duration` in short steps; returns false as soon as `stop` is set.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let step = Duration::from_millis(20);
    let deadline = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return true;
        }
        std::thread::sleep(remaining.min(step));
    }
}
