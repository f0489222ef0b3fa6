//! Outputs of the overlaid frames: a Linux framebuffer, none, and a recording.
//!
//! - [`Display`] is one output of the live pipeline: [`NoDisplay`], or the framebuffer
//!   ([`fbdev::Framebuffer`], Linux only).
//! - [`Recorder`] writes the overlaid frames to a Y4M file and a PNG at each event.
//!
//! Each output converts into buffers it sized when the frame size was first seen, so
//! showing a frame allocates nothing after that.

pub mod fbdev;
mod fit;
mod recorder;

use std::path::PathBuf;

pub use recorder::{rgb_to_ycbcr, Recorder};

use crate::frame::Frame;

/// Error from an output, split by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// A system call or a write failed.
    #[error("{operation} failed on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The device reports a pixel layout this build cannot draw.
    #[error("{0}")]
    Unsupported(String),
    /// A caller-supplied parameter is invalid.
    #[error("{0}")]
    Parameter(String),
}

/// One output of overlaid RGB8 frames.
pub trait Display {
    /// Shows `frame`, an RGB8 frame.
    ///
    /// # Errors
    /// [`DisplayError::Io`] when the output fails; the caller decides whether to go on.
    fn show(&mut self, frame: &Frame) -> Result<(), DisplayError>;
}

/// Drops every frame: the pipeline runs headless.
#[derive(Debug, Default)]
pub struct NoDisplay;

impl Display for NoDisplay {
    fn show(&mut self, _frame: &Frame) -> Result<(), DisplayError> {
        Ok(())
    }
}

/// The `--display` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisplaySpec {
    None,
    /// A Linux framebuffer device such as `/dev/fb0`.
    Framebuffer(PathBuf),
    /// A desktop window, for development.
    Window,
}

impl std::str::FromStr for DisplaySpec {
    type Err = String;

    fn from_str(text: &str) -> Result<DisplaySpec, String> {
        match text {
            "none" => Ok(DisplaySpec::None),
            "window" => Ok(DisplaySpec::Window),
            _ => match text.strip_prefix("fb:") {
                Some(path) if !path.is_empty() => Ok(DisplaySpec::Framebuffer(path.into())),
                _ => Err(format!(
                    "invalid display `{text}`: expected none, fb:/dev/fbN or window"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_spec_forms() {
        assert_eq!("none".parse(), Ok(DisplaySpec::None));
        assert_eq!(
            "fb:/dev/fb1".parse(),
            Ok(DisplaySpec::Framebuffer("/dev/fb1".into()))
        );
        assert_eq!("window".parse(), Ok(DisplaySpec::Window));
        let error = "fb:".parse::<DisplaySpec>().unwrap_err();
        assert!(error.contains("fb:/dev/fbN"), "{error}");
        assert!("hdmi".parse::<DisplaySpec>().is_err());
    }
}
