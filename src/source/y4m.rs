//! Placeholder until the reader lands.

use std::path::Path;

use super::{FrameSource, OpenOptions, SourceError, SourceInfo};
use crate::frame::Frame;

pub struct Y4mSource {
    info: SourceInfo,
}

impl Y4mSource {
    pub fn open(path: &Path, _options: &OpenOptions) -> Result<Y4mSource, SourceError> {
        Err(SourceError::Unsupported(format!(
            "{}: reader not implemented yet",
            path.display()
        )))
    }
}

impl FrameSource for Y4mSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_frame(&mut self, _frame: &mut Frame) -> Result<bool, SourceError> {
        Ok(false)
    }
}

/// Whether the file starts with the Y4M signature `YUV4MPEG2 `.
pub fn has_signature(path: &Path) -> Result<bool, SourceError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| SourceError::io(path, e))?;
    let mut magic = [0u8; 10];
    let mut read = 0;
    while read < magic.len() {
        match file.read(&mut magic[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(SourceError::io(path, e)),
        }
    }
    Ok(&magic[..read] == b"YUV4MPEG2 ")
}
