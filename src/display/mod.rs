//! Outputs of the overlaid frames: a Linux framebuffer, a desktop window, none, and a
//! recording.
//!
//! - [`Display`] is one output of the live pipeline: [`NoDisplay`], the framebuffer
//!   ([`fbdev::Framebuffer`], Linux only) or a desktop [`Window`] for development.
//!   Without the Cargo feature `window`, [`Window`] is a stand-in whose `open` fails
//!   with [`DisplayError::Unavailable`].
//! - [`Recorder`] writes the overlaid frames to a Y4M file and a PNG at each event.
//!
//! Each output converts into buffers it sized when the frame size was first seen, so
//! showing a frame allocates nothing after that.

pub mod fbdev;
mod fit;
mod recorder;
#[cfg(feature = "window")]
mod window;
#[cfg(not(feature = "window"))]
mod window_disabled;

use std::path::PathBuf;

pub use recorder::{rgb_to_ycbcr, Recorder};
#[cfg(feature = "window")]
pub use window::Window;
#[cfg(not(feature = "window"))]
pub use window_disabled::Window;

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
    /// The output cannot be used here: it is not part of this build, or there is no
    /// desktop session to open a window on, or the window system refused it.
    #[error("{0}")]
    Unavailable(String),
}

/// One output of overlaid RGB8 frames.
pub trait Display {
    /// Shows `frame`, an RGB8 frame.
    ///
    /// # Errors
    /// [`DisplayError::Io`] when the output fails; the caller decides whether to go on.
    fn show(&mut self, frame: &Frame) -> Result<(), DisplayError>;

    /// Returns whether the viewer has closed the output, as with a window's close button
    /// or Escape key. The live pipeline then ends the session as after a `quit` command.
    fn is_closed(&self) -> bool {
        false
    }
}

/// Returns the desktop session a window would open on, such as `DISPLAY=:0`, or `None`
/// when neither `WAYLAND_DISPLAY` nor `DISPLAY` is set.
pub fn desktop_session() -> Option<String> {
    let set = ["WAYLAND_DISPLAY", "DISPLAY"]
        .into_iter()
        .filter_map(|name| {
            let value = std::env::var_os(name).filter(|value| !value.is_empty())?;
            Some(format!("{name}={}", value.to_string_lossy()))
        })
        .collect::<Vec<_>>();
    (!set.is_empty()).then(|| set.join(" or "))
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
