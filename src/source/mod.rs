//! Frame sources: recorded cines (DICOM, Y4M, a folder of PNG frames) read frame by frame.
//!
//! Every source streams: it holds one frame's worth of decoded pixels at a time, so a long
//! cine is never loaded whole. Sizes declared by a file header are checked against
//! [`Limits`] before anything is allocated for them.

pub mod dicom;
pub mod png_dir;
pub mod y4m;

use std::path::{Path, PathBuf};

use crate::frame::Frame;

/// Upper bounds on what a file header may declare. Anything larger is rejected as
/// [`SourceError::Limit`] before any buffer is sized from it.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_frames: u64,
    /// Bytes of one decoded frame, all samples included.
    pub max_frame_bytes: u64,
}

impl Default for Limits {
    /// 8K UHD (7680x4320), 1,000,000 frames and 256 MiB per decoded frame: far above any
    /// scanner's video output, far below what would exhaust memory.
    fn default() -> Limits {
        Limits {
            max_width: 7680,
            max_height: 4320,
            max_frames: 1_000_000,
            max_frame_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// Checks a declared frame size against the limits.
    pub fn check_size(
        &self,
        width: u64,
        height: u64,
        bytes_per_pixel: u64,
    ) -> Result<(), SourceError> {
        if width == 0 || height == 0 {
            return Err(SourceError::Malformed(format!(
                "frame size {width}x{height} is empty"
            )));
        }
        if width > u64::from(self.max_width) || height > u64::from(self.max_height) {
            return Err(SourceError::Limit(format!(
                "frame size {width}x{height} exceeds the limit of {}x{}",
                self.max_width, self.max_height
            )));
        }
        let bytes = width * height * bytes_per_pixel;
        if bytes > self.max_frame_bytes {
            return Err(SourceError::Limit(format!(
                "a decoded frame of {bytes} bytes exceeds the limit of {} bytes",
                self.max_frame_bytes
            )));
        }
        Ok(())
    }

    /// Checks a declared frame count against the limits.
    pub fn check_frames(&self, frames: u64) -> Result<(), SourceError> {
        if frames > self.max_frames {
            return Err(SourceError::Limit(format!(
                "{frames} frames exceed the limit of {}",
                self.max_frames
            )));
        }
        Ok(())
    }
}

/// Settings that apply to every kind of source.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Frame rate for inputs that carry none (a PNG folder, a DICOM file without timing),
    /// or to override the rate a file declares.
    pub fps: Option<f64>,
    pub limits: Limits,
}

/// Origin of the frame times, for reports.
#[derive(Clone, Debug, PartialEq)]
pub enum TimingSource {
    /// DICOM Frame Time (0018,1063).
    FrameTime,
    /// DICOM Frame Time Vector (0018,1065).
    FrameTimeVector,
    /// DICOM Cine Rate (0018,0040).
    CineRate,
    /// The frame rate in a Y4M stream header.
    StreamHeader,
    /// `--fps` given by the user.
    UserFps,
    /// A single image: no time axis.
    SingleFrame,
    /// A live device's buffer timestamps (or dequeue times where those do not increase).
    DeviceTimestamps,
}

/// Stream properties a source reports before the first frame is read.
#[derive(Clone, Debug)]
pub struct SourceInfo {
    /// A short name of the container, such as `DICOM`, `Y4M` or `PNG folder`.
    pub container: &'static str,
    pub width: u32,
    pub height: u32,
    /// Number of frames when the container declares it.
    pub frames: Option<u64>,
    /// Nominal frames per second (from the mean frame interval when times vary).
    pub fps: Option<f64>,
    pub timing: TimingSource,
}

/// Error from opening or reading a frame source, split by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid instance of its format, or is truncated.
    #[error("{0}")]
    Malformed(String),
    /// The file is valid but uses a feature this build cannot decode.
    #[error("{0}")]
    Unsupported(String),
    /// The header declares more than [`Limits`] allows.
    #[error("{0}")]
    Limit(String),
    /// The input carries no frame timing and none was given.
    #[error("{0} carries no frame timing: give the frame rate with --fps")]
    MissingTiming(String),
    /// A live capture device failed, or one of its frames could not be decoded.
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
}

impl SourceError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A stream of frames read one at a time.
pub trait FrameSource {
    fn info(&self) -> &SourceInfo;

    /// Decodes the next frame into `frame`, reusing its buffer.
    ///
    /// Returns `Ok(false)` at the end of the stream; `frame` is then left unchanged.
    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError>;
}

/// Opens a recorded input by its content: a directory is a PNG folder, a file starting
/// with `YUV4MPEG2` is Y4M, anything else is tried as DICOM.
pub fn open(path: &Path, options: &OpenOptions) -> Result<Box<dyn FrameSource>, SourceError> {
    let metadata = std::fs::metadata(path).map_err(|e| SourceError::io(path, e))?;
    if metadata.is_dir() {
        return Ok(Box::new(png_dir::PngDirSource::open(path, options)?));
    }
    if y4m::has_signature(path)? {
        return Ok(Box::new(y4m::Y4mSource::open(path, options)?));
    }
    Ok(Box::new(dicom::DicomSource::open(path, options)?))
}
