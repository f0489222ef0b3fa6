//! Stand-ins for the V4L2 device when the Cargo feature `v4l2` is off: the same
//! signatures, each returning [`CaptureError::NotEnabled`].

use std::path::Path;
use std::time::Duration;

use super::device::{BufferInfo, CaptureDevice, Readiness};
use super::format::BufferFormat;
use super::listing::DeviceListing;
use super::spec::V4l2Request;
use super::CaptureError;

/// A V4L2 capture device, which this build cannot open.
pub struct V4l2Device {
    request: V4l2Request,
    format: BufferFormat,
}

impl V4l2Device {
    /// Fails with [`CaptureError::NotEnabled`].
    pub fn open(_request: &V4l2Request) -> Result<V4l2Device, CaptureError> {
        Err(CaptureError::NotEnabled)
    }
}

impl CaptureDevice for V4l2Device {
    fn path(&self) -> &Path {
        &self.request.path
    }

    fn format(&self) -> &BufferFormat {
        &self.format
    }

    fn frame_rate(&self) -> Option<f64> {
        None
    }

    fn poll(&mut self, _timeout: Duration) -> Result<Readiness, CaptureError> {
        Err(CaptureError::NotEnabled)
    }

    fn dequeue(&mut self) -> Result<Option<BufferInfo>, CaptureError> {
        Err(CaptureError::NotEnabled)
    }

    fn buffer(&self, _index: u32) -> Result<&[u8], CaptureError> {
        Err(CaptureError::NotEnabled)
    }

    fn queue(&mut self, _index: u32) -> Result<(), CaptureError> {
        Err(CaptureError::NotEnabled)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }

    fn reopen(&mut self) -> Result<(), CaptureError> {
        Err(CaptureError::NotEnabled)
    }
}

/// Fails with [`CaptureError::NotEnabled`].
pub fn list_devices() -> Result<Vec<DeviceListing>, CaptureError> {
    Err(CaptureError::NotEnabled)
}
