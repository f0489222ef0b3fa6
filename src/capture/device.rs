//! The device layer: what the capture source needs from a V4L2 device (or a mock).

use std::path::Path;
use std::time::Duration;

use super::format::BufferFormat;
use super::CaptureError;

/// `V4L2_BUF_FLAG_ERROR`: the buffer was filled, but its data is corrupt.
pub const BUF_FLAG_ERROR: u32 = 0x0000_0040;
/// `V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`: the timestamp is on `CLOCK_MONOTONIC`.
pub const BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;

/// The metadata of one dequeued buffer, as `VIDIOC_DQBUF` fills `struct v4l2_buffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferInfo {
    /// Index of the buffer among the device's buffers, to pass back to [`CaptureDevice::queue`].
    pub index: u32,
    /// Bytes of payload at the start of the buffer. The rest of the mapping is undefined.
    pub bytesused: u32,
    /// The driver's frame counter; a gap means the driver dropped frames.
    pub sequence: u32,
    /// The driver's timestamp (`CLOCK_MONOTONIC` when `flags` has
    /// [`BUF_FLAG_TIMESTAMP_MONOTONIC`]).
    pub timestamp: Duration,
    /// `V4L2_BUF_FLAG_*` bits.
    pub flags: u32,
    /// When the buffer was dequeued, on [`CaptureDevice::now`]'s clock.
    pub dequeued_at: Duration,
}

/// Whether a buffer can be dequeued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// `poll` reported the device readable, or in error, which the next dequeue reports.
    Ready,
    /// The timeout passed with nothing to read.
    TimedOut,
}

/// A streaming capture device with memory-mapped buffers.
///
/// The caller polls, dequeues one buffer, reads its bytes, and queues it back before it
/// dequeues the next one, so the driver always has buffers to fill.
pub trait CaptureDevice {
    /// Returns the device node, for messages.
    fn path(&self) -> &Path;

    /// Returns the format the driver returned from `VIDIOC_G_FMT` after negotiation.
    fn format(&self) -> &BufferFormat;

    /// Returns the frames per second the driver reported after negotiation, if any.
    fn frame_rate(&self) -> Option<f64>;

    /// Waits at most `timeout` for a filled buffer.
    ///
    /// # Errors
    /// [`CaptureError::Disconnected`] when the device is gone, [`CaptureError::Io`] when
    /// `poll` itself fails.
    fn poll(&mut self, timeout: Duration) -> Result<Readiness, CaptureError>;

    /// Dequeues a filled buffer without waiting; `Ok(None)` when none is ready.
    ///
    /// # Errors
    /// [`CaptureError::Disconnected`] when the device is gone (`ENODEV`), and
    /// [`CaptureError::Io`] for other failures of `VIDIOC_DQBUF`.
    fn dequeue(&mut self) -> Result<Option<BufferInfo>, CaptureError>;

    /// Returns the whole mapping of buffer `index`, of which only the first `bytesused`
    /// bytes are payload.
    ///
    /// # Errors
    /// [`CaptureError::Parameter`] for an index the device does not have.
    fn buffer(&self, index: u32) -> Result<&[u8], CaptureError>;

    /// Gives buffer `index` back to the driver to be filled again.
    fn queue(&mut self, index: u32) -> Result<(), CaptureError>;

    /// Returns the current time on `CLOCK_MONOTONIC` (or on the mock's clock).
    fn now(&self) -> Duration;

    /// Closes and opens the device again with the same settings, after a disconnect.
    ///
    /// # Errors
    /// The errors of opening: the device may still be missing.
    fn reopen(&mut self) -> Result<(), CaptureError>;
}
