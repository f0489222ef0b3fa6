//! Placeholder until the reader lands.

use std::path::Path;

use super::{FrameSource, OpenOptions, SourceError, SourceInfo};
use crate::frame::Frame;

pub struct DicomSource {
    info: SourceInfo,
}

impl DicomSource {
    pub fn open(path: &Path, _options: &OpenOptions) -> Result<DicomSource, SourceError> {
        Err(SourceError::Unsupported(format!(
            "{}: reader not implemented yet",
            path.display()
        )))
    }
}

impl FrameSource for DicomSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_frame(&mut self, _frame: &mut Frame) -> Result<bool, SourceError> {
        Ok(false)
    }
}
