//! Writing frames as PNG files.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::frame::{Frame, PixelFormat};

/// Error from writing a PNG file.
#[derive(Debug, thiserror::Error)]
pub enum PngWriteError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write PNG {}: {source}", path.display())]
    Encode {
        path: std::path::PathBuf,
        #[source]
        source: png::EncodingError,
    },
}

/// Writes `frame` to `path` as an 8-bit grey or RGB PNG.
pub fn write_png(path: &Path, frame: &Frame) -> Result<(), PngWriteError> {
    let file = File::create(path).map_err(|source| PngWriteError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let encode_error = |source| PngWriteError::Encode {
        path: path.to_path_buf(),
        source,
    };

    let mut encoder = png::Encoder::new(BufWriter::new(file), frame.width, frame.height);
    encoder.set_color(match frame.format {
        PixelFormat::Gray8 => png::ColorType::Grayscale,
        PixelFormat::Rgb8 => png::ColorType::Rgb,
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(encode_error)?;
    writer.write_image_data(&frame.data).map_err(encode_error)?;
    writer.finish().map_err(encode_error)
}
