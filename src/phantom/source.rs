//! A phantom exam as a live [`FrameSource`], rendered on demand.

use super::{Phantom, Renderer};
use crate::frame::Frame;
use crate::source::{FrameSource, SourceError, SourceInfo, TimingSource};

/// Frames of a phantom, rendered as they are read; nothing is written to disk.
pub struct PhantomSource {
    info: SourceInfo,
    renderer: Renderer,
}

impl PhantomSource {
    pub fn new(phantom: Phantom) -> PhantomSource {
        let config = phantom.config();
        let info = SourceInfo {
            container: "phantom",
            width: config.width,
            height: config.height,
            frames: Some(u64::from(config.frames)),
            fps: Some(config.fps),
            timing: TimingSource::StreamHeader,
        };
        PhantomSource {
            info,
            renderer: phantom.into_renderer(),
        }
    }

    /// Returns the phantom, whose [`Phantom::truth`] describes the frames.
    pub fn phantom(&self) -> &Phantom {
        self.renderer.phantom()
    }
}

impl FrameSource for PhantomSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let Some(rendered) = self.renderer.next_frame() else {
            return Ok(false);
        };
        frame.reset(rendered.width, rendered.height, rendered.format);
        frame.data.copy_from_slice(&rendered.data);
        frame.index = rendered.index;
        frame.time_s = rendered.time_s;
        Ok(true)
    }
}
