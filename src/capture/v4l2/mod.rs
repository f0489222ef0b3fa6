//! The V4L2 capture device: negotiation, mmap streaming and the device listing, on a real
//! `/dev/videoN` node. Raw calls are in [`sys`].

mod sys;

use std::io;
use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::time::Duration;

use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;

use super::device::{BufferInfo, CaptureDevice, Readiness};
use super::format::BufferFormat;
use super::listing::{
    capability_names, video_nodes, DeviceListing, FormatListing, IntervalListing, SizeListing,
};
use super::spec::V4l2Request;
use super::CaptureError;

/// `V4L2_CAP_VIDEO_CAPTURE`.
const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
/// `V4L2_CAP_STREAMING`.
const CAP_STREAMING: u32 = 0x0400_0000;

/// Buffers requested from the driver: enough to ride out a slow frame without drops, few
/// enough to keep latency at a few frames.
const BUFFER_COUNT: u32 = 4;

/// A V4L2 capture device streaming into mmap buffers.
///
/// Single-planar capture (`V4L2_BUF_TYPE_VIDEO_CAPTURE`) only.
pub struct V4l2Device {
    request: V4l2Request,
    format: BufferFormat,
    frame_rate: Option<f64>,
    /// `None` after a teardown, until a reopen succeeds. Declared before `device` so the
    /// buffers are unmapped before the file descriptor closes.
    buffers: Option<sys::MappedBuffers>,
    // NOTE: v4l 0.14 panics in `Drop` if close(2) fails, which Linux does not do for a
    // V4L2 node, even an unplugged one (an assumption, not tested on hardware).
    device: v4l::Device,
}

impl V4l2Device {
    /// Opens the device, requests the size, frame rate and pixel format of `request`,
    /// reads back what the driver granted, maps its buffers and starts streaming.
    ///
    /// # Errors
    /// [`CaptureError::Io`] when the node cannot be opened or an ioctl fails,
    /// [`CaptureError::UnsupportedFormat`] when it is not a streaming capture device.
    pub fn open(request: &V4l2Request) -> Result<V4l2Device, CaptureError> {
        let path = request.path.as_path();
        let device = v4l::Device::with_path(path).map_err(|e| io_error(path, "open", e))?;
        let fd = device.handle().fd();
        check_capabilities(path, fd)?;

        negotiate(path, fd, request)?;
        let format = sys::get_format(fd).map_err(|e| io_error(path, "VIDIOC_G_FMT", e))?;
        let frame_rate = read_frame_rate(fd);
        log_negotiation(request, &format, frame_rate);

        let buffers = start_streaming(path, fd)?;
        Ok(V4l2Device {
            request: request.clone(),
            format,
            frame_rate,
            buffers: Some(buffers),
            device,
        })
    }

    fn fd(&self) -> c_int {
        self.device.handle().fd()
    }

    fn buffers_mut(&mut self) -> Result<&mut sys::MappedBuffers, CaptureError> {
        let path = self.request.path.clone();
        self.buffers.as_mut().ok_or(CaptureError::Disconnected {
            device: path,
            reason: "the device is closed after a failure: reopen it".into(),
        })
    }

    /// Stops streaming and frees the buffers, ignoring errors from a device that is gone.
    fn teardown(&mut self) {
        if self.buffers.is_none() {
            return;
        }
        if let Err(error) = sys::set_streaming(self.fd(), false) {
            log::debug!("VIDIOC_STREAMOFF failed: {error}");
        }
        self.buffers = None;
    }

    fn map_error(&self, operation: &'static str, error: io::Error) -> CaptureError {
        classify(&self.request.path, operation, error)
    }
}

impl Drop for V4l2Device {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn check_capabilities(path: &Path, fd: c_int) -> Result<(), CaptureError> {
    let capabilities =
        sys::query_capabilities(fd).map_err(|e| io_error(path, "VIDIOC_QUERYCAP", e))?;
    let needed = CAP_VIDEO_CAPTURE | CAP_STREAMING;
    if capabilities.capabilities & needed != needed {
        return Err(CaptureError::UnsupportedFormat(format!(
            "{} ({}, driver {}) is not a single-planar streaming capture device \
             (capabilities {:?}): pick another node from `ceus-edge devices`",
            path.display(),
            capabilities.card,
            capabilities.driver,
            capability_names(capabilities.capabilities)
        )));
    }
    Ok(())
}

fn negotiate(path: &Path, fd: c_int, request: &V4l2Request) -> Result<(), CaptureError> {
    if request.size.is_some() || request.fourcc.is_some() {
        sys::set_format(fd, request.size, request.fourcc)
            .map_err(|e| io_error(path, "VIDIOC_S_FMT", e))?;
    }
    if let Some(fps) = request.fps {
        let (numerator, denominator) = frame_interval(fps);
        // Many capture cards run at the rate of their input and reject S_PARM.
        if let Err(error) = sys::set_frame_interval(fd, numerator, denominator) {
            log::warn!(
                "{} did not accept {fps} frames per second ({error}); using the driver's rate",
                path.display()
            );
        }
    }
    Ok(())
}

/// Converts frames per second to a time per frame in seconds, as a fraction: 1/30 for
/// 30, 1000/29970 for 29.97.
fn frame_interval(fps: f64) -> (u32, u32) {
    if fps.fract() == 0.0 {
        return (1, fps as u32);
    }
    (1000, (fps * 1000.0).round() as u32)
}

fn read_frame_rate(fd: c_int) -> Option<f64> {
    match sys::get_frame_interval(fd) {
        Ok(Some((numerator, denominator))) => Some(f64::from(denominator) / f64::from(numerator)),
        Ok(None) => None,
        Err(error) => {
            log::debug!("VIDIOC_G_PARM failed, so the frame rate is unknown: {error}");
            None
        }
    }
}

fn log_negotiation(request: &V4l2Request, format: &BufferFormat, frame_rate: Option<f64>) {
    let granted_size = (format.width, format.height);
    if request.size.is_some_and(|size| size != granted_size)
        || request.fourcc.is_some_and(|fourcc| fourcc != format.fourcc)
    {
        log::warn!(
            "{} granted {} {}x{} instead of the requested format; decoding what it granted",
            request.path.display(),
            format.fourcc,
            format.width,
            format.height
        );
    }
    log::info!(
        "{}: {} {}x{}, bytesperline {}, sizeimage {}, {} frames per second",
        request.path.display(),
        format.fourcc,
        format.width,
        format.height,
        format.bytesperline,
        format.sizeimage,
        frame_rate.map_or("unknown".to_string(), |fps| format!("{fps:.3}"))
    );
}

fn start_streaming(path: &Path, fd: c_int) -> Result<sys::MappedBuffers, CaptureError> {
    let mut buffers = sys::MappedBuffers::allocate(fd, BUFFER_COUNT)
        .map_err(|e| io_error(path, "VIDIOC_REQBUFS", e))?;
    for index in 0..buffers.count() {
        buffers
            .queue(index)
            .map_err(|e| classify(path, "VIDIOC_QBUF", e))?;
    }
    sys::set_streaming(fd, true).map_err(|e| classify(path, "VIDIOC_STREAMON", e))?;
    Ok(buffers)
}

impl CaptureDevice for V4l2Device {
    fn path(&self) -> &Path {
        &self.request.path
    }

    fn format(&self) -> &BufferFormat {
        &self.format
    }

    fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }

    fn poll(&mut self, timeout: Duration) -> Result<Readiness, CaptureError> {
        self.buffers_mut()?;
        match sys::poll_readable(self.fd(), timeout) {
            Ok(sys::PollOutcome::TimedOut) => Ok(Readiness::TimedOut),
            // A signal cut the wait short; the caller's dequeue finds nothing and polls
            // again with the time left.
            Ok(sys::PollOutcome::Interrupted) => Ok(Readiness::Ready),
            Ok(sys::PollOutcome::Readable) | Ok(sys::PollOutcome::Error) => Ok(Readiness::Ready),
            Err(error) => Err(self.map_error("poll", error)),
        }
    }

    fn dequeue(&mut self) -> Result<Option<BufferInfo>, CaptureError> {
        let result = self.buffers_mut()?.dequeue();
        match result {
            Ok(buffer) => Ok(buffer),
            Err(error) => {
                let error = self.map_error("VIDIOC_DQBUF", error);
                if matches!(error, CaptureError::Disconnected { .. }) {
                    self.teardown();
                }
                Err(error)
            }
        }
    }

    fn buffer(&self, index: u32) -> Result<&[u8], CaptureError> {
        self.buffers
            .as_ref()
            .and_then(|buffers| buffers.get(index))
            .ok_or_else(|| {
                CaptureError::Parameter(format!(
                    "buffer {index} of {} is not dequeued",
                    self.request.path.display()
                ))
            })
    }

    fn queue(&mut self, index: u32) -> Result<(), CaptureError> {
        let result = self.buffers_mut()?.queue(index);
        result.map_err(|error| self.map_error("VIDIOC_QBUF", error))
    }

    fn now(&self) -> Duration {
        sys::monotonic_now()
    }

    fn reopen(&mut self) -> Result<(), CaptureError> {
        self.teardown();
        let reopened = V4l2Device::open(&self.request)?;
        *self = reopened;
        Ok(())
    }
}

/// Maps an errno from streaming to a typed error. `ENODEV` and `ENXIO` mean the device is
/// gone. Since Linux 2.6.35, `EIO` from `VIDIOC_DQBUF` means an unrecoverable streaming
/// error, after which the kernel does not say which buffer failed. Only a reopen
/// recovers from any of these.
fn classify(path: &Path, operation: &'static str, error: io::Error) -> CaptureError {
    match error.raw_os_error() {
        Some(libc::ENODEV) | Some(libc::ENXIO) | Some(libc::EIO) => CaptureError::Disconnected {
            device: path.to_path_buf(),
            reason: format!("{operation}: {error}"),
        },
        _ => io_error(path, operation, error),
    }
}

fn io_error(path: &Path, operation: &'static str, error: io::Error) -> CaptureError {
    CaptureError::Io {
        device: path.to_path_buf(),
        operation,
        source: error,
    }
}

/// Lists the `/dev/video*` nodes with their driver, card, bus, capabilities and, for
/// capture nodes, their formats, frame sizes and frame intervals.
///
/// A node that cannot be opened or queried is listed with its error.
///
/// # Errors
/// [`CaptureError::Io`] when `/dev` cannot be read.
pub fn list_devices() -> Result<Vec<DeviceListing>, CaptureError> {
    let dev = Path::new("/dev");
    let entries = std::fs::read_dir(dev).map_err(|e| io_error(dev, "read_dir", e))?;
    let paths = entries.filter_map(|entry| entry.ok().map(|entry| entry.path()));
    Ok(video_nodes(paths).into_iter().map(describe_node).collect())
}

fn describe_node(path: PathBuf) -> DeviceListing {
    let mut listing = DeviceListing {
        path: path.clone(),
        driver: String::new(),
        card: String::new(),
        bus: String::new(),
        capabilities: Vec::new(),
        formats: Vec::new(),
        error: None,
    };
    let device = match v4l::Device::with_path(&path) {
        Ok(device) => device,
        Err(error) => {
            listing.error = Some(format!("cannot open: {error}"));
            return listing;
        }
    };
    let capabilities = match sys::query_capabilities(device.handle().fd()) {
        Ok(capabilities) => capabilities,
        Err(error) => {
            listing.error = Some(format!("VIDIOC_QUERYCAP failed: {error}"));
            return listing;
        }
    };
    listing.driver = capabilities.driver;
    listing.card = capabilities.card;
    listing.bus = capabilities.bus;
    listing.capabilities = capability_names(capabilities.capabilities);

    if capabilities.capabilities & CAP_VIDEO_CAPTURE != 0 {
        match list_formats(&device) {
            Ok(formats) => listing.formats = formats,
            Err(error) => listing.error = Some(format!("VIDIOC_ENUM_FMT failed: {error}")),
        }
    }
    listing
}

fn list_formats(device: &v4l::Device) -> io::Result<Vec<FormatListing>> {
    let formats = sys::enum_formats(device.handle().fd())?;
    Ok(formats
        .into_iter()
        .map(|(fourcc, description)| FormatListing {
            fourcc: fourcc.to_string(),
            description,
            sizes: list_sizes(device, fourcc.0),
        })
        .collect())
}

/// Lists the frame sizes of one format; a driver without `VIDIOC_ENUM_FRAMESIZES` gives
/// none.
fn list_sizes(device: &v4l::Device, fourcc: [u8; 4]) -> Vec<SizeListing> {
    let code = v4l::FourCC::new(&fourcc);
    let Ok(sizes) = device.enum_framesizes(code) else {
        return Vec::new();
    };
    sizes
        .into_iter()
        .map(|size| match size.size {
            FrameSizeEnum::Discrete(discrete) => SizeListing::Discrete {
                width: discrete.width,
                height: discrete.height,
                intervals: list_intervals(device, code, discrete.width, discrete.height),
            },
            FrameSizeEnum::Stepwise(stepwise) => SizeListing::Stepwise {
                min_width: stepwise.min_width,
                max_width: stepwise.max_width,
                step_width: stepwise.step_width,
                min_height: stepwise.min_height,
                max_height: stepwise.max_height,
                step_height: stepwise.step_height,
            },
        })
        .collect()
}

fn list_intervals(
    device: &v4l::Device,
    fourcc: v4l::FourCC,
    width: u32,
    height: u32,
) -> Vec<IntervalListing> {
    let Ok(intervals) = device.enum_frameintervals(fourcc, width, height) else {
        return Vec::new();
    };
    intervals
        .into_iter()
        .map(|interval| match interval.interval {
            FrameIntervalEnum::Discrete(fraction) => IntervalListing::Discrete {
                numerator: fraction.numerator,
                denominator: fraction.denominator,
            },
            FrameIntervalEnum::Stepwise(stepwise) => IntervalListing::Stepwise {
                min: [stepwise.min.numerator, stepwise.min.denominator],
                max: [stepwise.max.numerator, stepwise.max.denominator],
                step: [stepwise.step.numerator, stepwise.step.denominator],
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_interval_of_integer_and_ntsc_rates() {
        assert_eq!(frame_interval(30.0), (1, 30));
        assert_eq!(frame_interval(29.97), (1000, 29970));
        assert_eq!(frame_interval(59.94), (1000, 59940));
    }

    #[test]
    fn missing_node_is_an_open_error() {
        let request = V4l2Request {
            path: "/nonexistent/video99".into(),
            size: None,
            fps: None,
            fourcc: None,
        };
        let error = V4l2Device::open(&request)
            .err()
            .expect("opened a missing node");
        assert!(
            matches!(
                error,
                CaptureError::Io {
                    operation: "open",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn enodev_classified_as_disconnect() {
        let path = Path::new("/dev/video0");
        let gone = classify(
            path,
            "VIDIOC_DQBUF",
            io::Error::from_raw_os_error(libc::ENODEV),
        );
        assert!(matches!(gone, CaptureError::Disconnected { .. }));
        let other = classify(
            path,
            "VIDIOC_DQBUF",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert!(matches!(other, CaptureError::Io { .. }));
        let failed_queue = classify(
            path,
            "VIDIOC_DQBUF",
            io::Error::from_raw_os_error(libc::EIO),
        );
        assert!(matches!(failed_queue, CaptureError::Disconnected { .. }));
    }

    #[test]
    fn non_device_file_rejected() {
        // /dev/null opens, but VIDIOC_QUERYCAP on it fails with ENOTTY.
        let request = V4l2Request {
            path: "/dev/null".into(),
            size: None,
            fps: None,
            fourcc: None,
        };
        let error = V4l2Device::open(&request).err().expect("opened /dev/null");
        assert!(
            matches!(
                error,
                CaptureError::Io {
                    operation: "VIDIOC_QUERYCAP",
                    ..
                }
            ),
            "{error}"
        );
    }
}
