//! The capture source: buffers from any [`CaptureDevice`] decoded into [`Frame`]s, with
//! dropped-frame counts, an always increasing time axis and bounded waits.

use std::time::Duration;

use crate::frame::Frame;
use crate::source::{FrameSource, Limits, SourceError, SourceInfo, TimingSource};

use super::decode::{decode_raw, DecodeOptions};
use super::device::{BufferInfo, CaptureDevice, Readiness, BUF_FLAG_ERROR};
use super::format::{Encoding, PlaneLayout};
use super::mjpeg::MjpegDecoder;
use super::{CaptureError, FrameError};

/// Settings of a [`CaptureSource`].
#[derive(Clone, Copy, Debug)]
pub struct CaptureOptions {
    /// Maximum wait for one frame before [`CaptureError::Timeout`]. The default of 2 s is
    /// an estimate that leaves room for a capture card to lock onto its input again.
    pub timeout: Duration,
    pub decode: DecodeOptions,
    pub limits: Limits,
    /// How many frames in a row [`FrameSource::read_frame`] skips as corrupt before it
    /// returns the error; 30 by default (about a second of video).
    pub max_consecutive_bad_frames: u32,
}

impl Default for CaptureOptions {
    fn default() -> CaptureOptions {
        CaptureOptions {
            timeout: Duration::from_secs(2),
            decode: DecodeOptions::default(),
            limits: Limits::default(),
            max_consecutive_bad_frames: 30,
        }
    }
}

/// Maximum count of `poll` wakeups without a buffer to dequeue within one wait. It bounds
/// the loop when a driver keeps reporting readiness without data.
const MAX_SPURIOUS_WAKEUPS: u32 = 8;

/// Counts kept over the life of a [`CaptureSource`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames decoded and returned.
    pub delivered: u64,
    /// Frames the driver dropped, from gaps in the sequence numbers.
    pub dropped: u64,
    /// Buffers that could not be decoded (truncated, corrupt, flagged by the driver).
    pub bad: u64,
    /// Buffers whose driver timestamp did not increase.
    pub non_increasing_timestamps: u64,
    /// Times `poll` reported readiness but no buffer could be dequeued.
    pub spurious_wakeups: u64,
}

/// Metadata of one captured frame besides its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapturedFrame {
    pub sequence: u32,
    /// Frames the driver dropped just before this one.
    pub dropped_before: u32,
    /// Whether the frame's time comes from the dequeue time instead of the driver.
    pub dequeue_timed: bool,
}

/// A live [`FrameSource`] on a capture device.
///
/// Frames are decoded into the caller's [`Frame`], reusing its buffer, so uncompressed
/// formats allocate nothing per frame once the buffer has grown to size.
pub struct CaptureSource<D: CaptureDevice> {
    device: D,
    layout: PlaneLayout,
    options: CaptureOptions,
    info: SourceInfo,
    mjpeg: MjpegDecoder,
    stats: CaptureStats,
    last_sequence: Option<u32>,
    time_axis: TimeAxis,
}

impl<D: CaptureDevice> CaptureSource<D> {
    /// Wraps a device whose format is already negotiated.
    ///
    /// # Errors
    /// [`CaptureError::UnsupportedFormat`] when the device's format cannot be decoded.
    pub fn new(device: D, options: CaptureOptions) -> Result<CaptureSource<D>, CaptureError> {
        let layout = PlaneLayout::resolve(device.format(), &options.limits)?;
        log::info!(
            "capturing {} {}x{} from {} (stride {} bytes, {:?} range)",
            device.format().fourcc,
            layout.width,
            layout.height,
            device.path().display(),
            layout.stride,
            layout.range
        );
        let info = source_info(&device, &layout);
        Ok(CaptureSource {
            device,
            layout,
            options,
            info,
            mjpeg: MjpegDecoder::default(),
            stats: CaptureStats::default(),
            last_sequence: None,
            time_axis: TimeAxis::default(),
        })
    }

    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn layout(&self) -> &PlaneLayout {
        &self.layout
    }

    /// Captures and decodes one frame into `frame`.
    ///
    /// # Errors
    /// [`CaptureError::Frame`] when only this frame is lost, so the next call goes on with
    /// the next buffer. [`CaptureError::Timeout`] when no buffer arrives within the
    /// timeout and [`CaptureError::Disconnected`] when the device is gone. After these
    /// two, [`CaptureSource::reopen`] may recover.
    pub fn capture(&mut self, frame: &mut Frame) -> Result<CapturedFrame, CaptureError> {
        let buffer = self.wait_for_buffer()?;
        let dropped_before = self.count_drops(buffer.sequence);
        let decoded = self.decode(&buffer, frame);
        self.device.queue(buffer.index)?;

        if let Err(error) = decoded {
            if error.is_frame_error() {
                self.stats.bad += 1;
            }
            return Err(error);
        }

        let (time_s, dequeue_timed) = self.time_axis.next(&buffer);
        self.stats.non_increasing_timestamps = self.time_axis.non_increasing;
        frame.index = self.stats.delivered;
        frame.time_s = time_s;
        self.stats.delivered += 1;
        Ok(CapturedFrame {
            sequence: buffer.sequence,
            dropped_before,
            dequeue_timed,
        })
    }

    /// Opens the device again after a disconnect and picks up its new format.
    ///
    /// Sequence numbers restart, so no drops are counted across the reopen; the time axis
    /// goes on increasing.
    pub fn reopen(&mut self) -> Result<(), CaptureError> {
        self.device.reopen()?;
        self.layout = PlaneLayout::resolve(self.device.format(), &self.options.limits)?;
        self.info = source_info(&self.device, &self.layout);
        self.last_sequence = None;
        log::info!("reopened capture device {}", self.device.path().display());
        Ok(())
    }

    /// Polls and dequeues within the timeout, on the device's clock.
    fn wait_for_buffer(&mut self) -> Result<BufferInfo, CaptureError> {
        let timeout = self.options.timeout;
        let deadline = self.device.now() + timeout;
        let mut spurious = 0;
        loop {
            let remaining = deadline.saturating_sub(self.device.now());
            if remaining.is_zero() || self.device.poll(remaining)? == Readiness::TimedOut {
                return Err(CaptureError::Timeout {
                    device: self.device.path().to_path_buf(),
                    timeout,
                });
            }
            if let Some(buffer) = self.device.dequeue()? {
                return Ok(buffer);
            }

            self.stats.spurious_wakeups += 1;
            spurious += 1;
            if spurious >= MAX_SPURIOUS_WAKEUPS {
                return Err(CaptureError::Io {
                    device: self.device.path().to_path_buf(),
                    operation: "VIDIOC_DQBUF",
                    source: std::io::Error::other(format!(
                        "poll reported a buffer {spurious} times but none could be dequeued"
                    )),
                });
            }
        }
    }

    /// Counts the frames missing between the previous sequence number and `sequence`.
    fn count_drops(&mut self, sequence: u32) -> u32 {
        let previous = self.last_sequence.replace(sequence);
        let Some(previous) = previous else {
            return 0;
        };
        let gap = sequence.wrapping_sub(previous).wrapping_sub(1);
        // A sequence that went backwards (a driver restarting its count) is not a drop.
        if gap >= 1 << 31 {
            log::debug!("sequence went from {previous} to {sequence}: counting restarts");
            return 0;
        }
        if gap > 0 {
            log::warn!("driver dropped {gap} frames before sequence {sequence}");
        }
        self.stats.dropped += u64::from(gap);
        gap
    }

    /// Decodes the payload of `buffer`; a buffer that cannot be decoded gives
    /// [`CaptureError::Frame`].
    fn decode(&mut self, buffer: &BufferInfo, frame: &mut Frame) -> Result<(), CaptureError> {
        let mapping = self.device.buffer(buffer.index)?;
        let decoded = decode_payload(
            mapping,
            buffer,
            &self.layout,
            &self.options,
            &mut self.mjpeg,
            frame,
        );
        decoded.map_err(|error| CaptureError::Frame {
            sequence: buffer.sequence,
            error,
        })
    }
}

/// Decodes the first `bytesused` bytes of `mapping`, the buffer of `buffer`.
fn decode_payload(
    mapping: &[u8],
    buffer: &BufferInfo,
    layout: &PlaneLayout,
    options: &CaptureOptions,
    mjpeg: &mut MjpegDecoder,
    frame: &mut Frame,
) -> Result<(), FrameError> {
    if buffer.flags & BUF_FLAG_ERROR != 0 {
        return Err(FrameError::DriverError);
    }
    let bytesused = buffer.bytesused as usize;
    let payload = mapping
        .get(..bytesused)
        .ok_or(FrameError::BytesusedBeyondBuffer {
            bytesused,
            length: mapping.len(),
        })?;

    match layout.encoding {
        Encoding::Mjpeg => mjpeg.decode(
            payload,
            (layout.width, layout.height),
            options.decode.output,
            &options.limits,
            frame,
        ),
        _ => decode_raw(layout, payload, options.decode, frame),
    }
}

impl<D: CaptureDevice> FrameSource for CaptureSource<D> {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Reads the next good frame, skipping up to `max_consecutive_bad_frames` bad ones
    /// (counted in [`CaptureSource::stats`]). A live stream has no end, so this never
    /// returns `Ok(false)`.
    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let mut bad_in_a_row = 0;
        loop {
            match self.capture(frame) {
                Ok(_) => return Ok(true),
                Err(error) if error.is_frame_error() => {
                    bad_in_a_row += 1;
                    if bad_in_a_row > self.options.max_consecutive_bad_frames {
                        return Err(error.into());
                    }
                    log_bad_frame(&error, self.stats.bad);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// Opens a V4L2 device with the format of `request` and wraps it in a capture source.
///
/// # Errors
/// The errors of [`super::V4l2Device::open`] and of [`CaptureSource::new`], including
/// [`CaptureError::NotEnabled`] in a build without the feature `v4l2`.
pub fn open_v4l2(
    request: &super::spec::V4l2Request,
    options: CaptureOptions,
) -> Result<CaptureSource<super::V4l2Device>, CaptureError> {
    let device = super::V4l2Device::open(request)?;
    CaptureSource::new(device, options)
}

/// Logs a skipped frame: each of the first 10, then every 100th, to keep the log short.
fn log_bad_frame(error: &CaptureError, bad_so_far: u64) {
    if bad_so_far <= 10 || bad_so_far % 100 == 0 {
        log::warn!("{error} ({bad_so_far} bad frames so far)");
    }
}

fn source_info<D: CaptureDevice>(device: &D, layout: &PlaneLayout) -> SourceInfo {
    SourceInfo {
        container: "V4L2",
        width: layout.width,
        height: layout.height,
        frames: None,
        fps: device.frame_rate(),
        timing: TimingSource::DeviceTimestamps,
    }
}

/// Frame times in seconds from the first frame, strictly increasing.
///
/// They come from the driver's timestamps until one fails to increase. From then on they
/// advance by the time between dequeues for the rest of the stream, so that the two
/// clocks are never mixed.
#[derive(Debug, Default)]
struct TimeAxis {
    driver_origin: Option<Duration>,
    last_driver: Option<Duration>,
    last_dequeue: Option<Duration>,
    last_time_s: Option<f64>,
    dequeue_timed: bool,
    non_increasing: u64,
}

/// The smallest step between two frame times, for dequeue times that tie.
const MIN_STEP_S: f64 = 1e-6;

impl TimeAxis {
    /// Returns the time of `buffer`, and whether it comes from the dequeue time.
    fn next(&mut self, buffer: &BufferInfo) -> (f64, bool) {
        let increasing = self.last_driver.is_none_or(|last| buffer.timestamp > last);
        if !increasing {
            self.non_increasing += 1;
            if !self.dequeue_timed {
                log::warn!(
                    "driver timestamp {:?} does not increase: timing frames by dequeue time \
                     from now on",
                    buffer.timestamp
                );
            }
            self.dequeue_timed = true;
        }

        let time_s = match (self.last_time_s, self.last_dequeue) {
            (Some(last_time_s), Some(last_dequeue)) if self.dequeue_timed => {
                let step = buffer
                    .dequeued_at
                    .saturating_sub(last_dequeue)
                    .as_secs_f64();
                last_time_s + step.max(MIN_STEP_S)
            }
            _ => {
                let origin = *self.driver_origin.get_or_insert(buffer.timestamp);
                buffer.timestamp.saturating_sub(origin).as_secs_f64()
            }
        };

        self.last_driver = Some(buffer.timestamp);
        self.last_dequeue = Some(buffer.dequeued_at);
        self.last_time_s = Some(time_s);
        (time_s, self.dequeue_timed)
    }
}
