//! Placeholder until the reader lands.

use std::path::Path;

use super::{FrameSource, OpenOptions, SourceError, SourceInfo};
use crate::frame::Frame;

pub struct PngDirSource {
    info: SourceInfo,
}

impl PngDirSource {
    pub fn open(path: &Path, _options: &OpenOptions) -> Result<PngDirSource, SourceError> {
        Err(SourceError::Unsupported(format!(
            "{}: reader not implemented yet",
            path.display()
        )))
    }
}

impl FrameSource for PngDirSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_frame(&mut self, _frame: &mut Frame) -> Result<bool, SourceError> {
        Ok(false)
    }
}
