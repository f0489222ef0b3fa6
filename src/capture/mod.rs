//! Live capture from V4L2 devices: buffer formats, decoders, the device layer and the
//! capture [`source::CaptureSource`] that turns dequeued buffers into [`crate::frame::Frame`]s.
//!
//! The layers, from the bottom:
//! - [`format`](mod@format): the fourcc and sizes the driver reports with `VIDIOC_G_FMT`, resolved to a
//!   plane layout (stride and planes) the decoders can trust.
//! - [`decode`] and [`mjpeg`]: pure decoders of one buffer's `bytesused` bytes.
//! - [`device`]: the [`device::CaptureDevice`] trait, implemented by the V4L2 device (Cargo
//!   feature `v4l2`) and by [`mock::MockDevice`] for tests.
//! - [`source`]: decoding, dropped-frame counts, the time axis and timeouts, on any device.
//! - [`V4l2Device`] and [`list_devices`]: the real device and the listing of
//!   `ceus-edge devices`. Without the feature `v4l2` they are stand-ins that fail with
//!   [`CaptureError::NotEnabled`].
//! - [`spec`]: the `--source` argument.

pub mod decode;
pub mod device;
pub mod format;
pub mod listing;
pub mod mjpeg;
pub mod mock;
pub mod source;
pub mod spec;

#[cfg(feature = "v4l2")]
mod v4l2;
#[cfg(feature = "v4l2")]
pub use v4l2::{list_devices, V4l2Device};

#[cfg(not(feature = "v4l2"))]
mod disabled;
#[cfg(not(feature = "v4l2"))]
pub use disabled::{list_devices, V4l2Device};

use std::path::PathBuf;
use std::time::Duration;

/// Error from a capture device or from the capture source, split by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The device went away (unplugged, or its driver reported it as gone).
    #[error("capture device {} was disconnected: {reason}", device.display())]
    Disconnected { device: PathBuf, reason: String },
    /// The device node is not there, for example a capture card not plugged in yet.
    #[error(
        "capture device {} is not present: plug in the capture card or check the path",
        device.display()
    )]
    NotPresent { device: PathBuf },
    /// No frame arrived within the timeout.
    #[error(
        "capture device {} delivered no frame within {} ms: check the cable and the \
         signal, or raise the timeout", device.display(), timeout.as_millis()
    )]
    Timeout { device: PathBuf, timeout: Duration },
    /// A system call on the device failed for another reason.
    #[error("{operation} failed on capture device {}: {source}", device.display())]
    Io {
        device: PathBuf,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The driver's format cannot be decoded, or is inconsistent.
    #[error("{0}")]
    UnsupportedFormat(String),
    /// A caller-supplied parameter is invalid.
    #[error("{0}")]
    Parameter(String),
    /// One frame could not be decoded; the stream can go on with the next one.
    #[error("frame {sequence} dropped: {error}")]
    Frame {
        sequence: u32,
        #[source]
        error: FrameError,
    },
    /// The program was built without V4L2 support.
    #[error("V4L2 capture is not enabled in this build: rebuild with the Cargo feature `v4l2`")]
    NotEnabled,
}

impl CaptureError {
    /// Returns whether only one frame was lost, so reading can go on.
    pub fn is_frame_error(&self) -> bool {
        matches!(self, CaptureError::Frame { .. })
    }

    /// Returns whether the device node is absent or its hardware gone (not found,
    /// `ENODEV`, `ENXIO`), as when a USB capture card is not plugged in yet. Such a
    /// device may appear later; a format or permission error will not go away.
    pub fn is_missing_device(&self) -> bool {
        match self {
            CaptureError::Disconnected { .. } | CaptureError::NotPresent { .. } => true,
            CaptureError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::NotFound
                    || matches!(source.raw_os_error(), Some(libc::ENODEV | libc::ENXIO))
            }
            _ => false,
        }
    }
}

/// Reason one buffer could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload is smaller than the format needs.
    #[error("payload of {bytesused} bytes is shorter than the {needed} bytes of an image")]
    Short { bytesused: usize, needed: usize },
    /// The driver reported more bytes used than the buffer holds.
    #[error("bytesused {bytesused} exceeds the buffer length {length}")]
    BytesusedBeyondBuffer { bytesused: usize, length: usize },
    /// The driver flagged the buffer as corrupt (`V4L2_BUF_FLAG_ERROR`).
    #[error("the driver flagged the buffer as corrupt")]
    DriverError,
    /// An MJPEG payload that does not start with an SOI marker.
    #[error("payload is not a JPEG image (no SOI marker)")]
    NotJpeg,
    /// An MJPEG payload that ends before its EOI marker.
    #[error("JPEG image is truncated (no EOI marker)")]
    Truncated,
    /// An MJPEG payload whose structure or entropy-coded data is invalid.
    #[error("invalid JPEG image: {0}")]
    CorruptJpeg(String),
    /// An MJPEG image whose size differs from the negotiated format.
    #[error(
        "JPEG image is {width}x{height} but the format is \
         {expected_width}x{expected_height}"
    )]
    SizeMismatch {
        width: u32,
        height: u32,
        expected_width: u32,
        expected_height: u32,
    },
    /// An uncompressed decoder was given an MJPEG layout.
    #[error("compressed payload given to an uncompressed decoder")]
    Compressed,
}
