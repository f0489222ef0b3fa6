//! Stand-in for the desktop window when the Cargo feature `window` is off: the same
//! signatures, and [`Window::open`] fails with [`DisplayError::Unavailable`].

use std::convert::Infallible;

use super::{Display, DisplayError};
use crate::frame::Frame;

/// A desktop window, which this build cannot open.
pub struct Window {
    never: Infallible,
}

impl Window {
    /// Fails with [`DisplayError::Unavailable`], naming the build flag that adds the
    /// window.
    pub fn open() -> Result<Window, DisplayError> {
        Err(DisplayError::Unavailable(
            "the desktop window is not part of this build: rebuild with `cargo build --release --features window`"
                .to_string(),
        ))
    }
}

impl Display for Window {
    fn show(&mut self, _frame: &Frame) -> Result<(), DisplayError> {
        match self.never {}
    }
}
