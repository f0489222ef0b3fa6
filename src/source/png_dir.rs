//! A directory of PNG files, one frame per file.
//!
//! Frames are the files whose names end in `.png` (any case), in natural order of their
//! names: runs of digits compare as numbers, so `frame_2.png` comes before
//! `frame_10.png`, and names equal as numbers (`f01`, `f1`) fall back to byte order.
//! Other files and subdirectories are skipped with a debug log.
//!
//! Grey and grey+alpha frames are yielded as [`PixelFormat::Gray8`], RGB, RGBA and palette
//! frames as [`PixelFormat::Rgb8`]. When the folder mixes both, every frame is yielded as
//! Rgb8 (grey copied to the three channels), so the format does not change mid-stream.
//! Alpha is dropped, 16-bit samples keep their high byte, and bit depths below 8 are
//! scaled to 8 bits.

use std::cmp::Ordering;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use png::{ColorType, Transformations};

use super::{FrameSource, Limits, OpenOptions, SourceError, SourceInfo, TimingSource};
use crate::frame::{Frame, PixelFormat};

/// The frames of a PNG folder, decoded one file at a time.
pub struct PngDirSource {
    info: SourceInfo,
    files: Vec<PathBuf>,
    format: PixelFormat,
    fps: f64,
    limits: Limits,
    next_index: usize,
    decoded: Vec<u8>,
}

impl PngDirSource {
    /// Lists the PNG files of `path` and reads every file's header.
    ///
    /// Errors with [`SourceError::Malformed`] when the folder has no PNG file, a file is not
    /// a valid PNG, or a frame's size differs from the first (naming that file). Errors
    /// with [`SourceError::Limit`] for a frame size above `options.limits`, and with
    /// [`SourceError::MissingTiming`] for more than one frame without `options.fps`.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<PngDirSource, SourceError> {
        let files = list_frames(path)?;
        let Some(first) = files.first() else {
            return Err(SourceError::Malformed(format!(
                "{}: the folder contains no .png file",
                path.display()
            )));
        };
        let limits = options.limits;
        limits.check_frames(files.len() as u64)?;

        let header = read_header(first, &limits)?;
        let mut colour = header.colour;
        for file in &files[1..] {
            let other = read_header(file, &limits)?;
            if (other.width, other.height) != (header.width, header.height) {
                return Err(SourceError::Malformed(format!(
                    "{}: frame size {}x{} differs from {}x{} of {}: every frame of a PNG folder \
                     must have the same size",
                    file.display(),
                    other.width,
                    other.height,
                    header.width,
                    header.height,
                    first.display()
                )));
            }
            colour |= other.colour;
        }
        let format = if colour {
            PixelFormat::Rgb8
        } else {
            PixelFormat::Gray8
        };
        limits.check_size(
            header.width.into(),
            header.height.into(),
            format.bytes_per_pixel() as u64,
        )?;

        let (fps, timing) = match (options.fps, files.len()) {
            (Some(fps), _) => (fps, TimingSource::UserFps),
            // A single image has no time axis; its one frame is at 0 s.
            (None, 1) => (1.0, TimingSource::SingleFrame),
            (None, count) => {
                return Err(SourceError::MissingTiming(format!(
                    "PNG folder {} with {count} frames",
                    path.display()
                )))
            }
        };
        log::debug!(
            "{}: {} PNG frames of {}x{} as {format:?}",
            path.display(),
            files.len(),
            header.width,
            header.height
        );
        let info = SourceInfo {
            container: "PNG folder",
            width: header.width,
            height: header.height,
            frames: Some(files.len() as u64),
            fps: options.fps,
            timing,
        };
        Ok(PngDirSource {
            info,
            files,
            format,
            fps,
            limits,
            next_index: 0,
            decoded: Vec::new(),
        })
    }

    /// Returns the frame files in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl FrameSource for PngDirSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let Some(path) = self.files.get(self.next_index) else {
            return Ok(false);
        };
        let (colour, width, height) = decode(path, &self.limits, &mut self.decoded)?;
        if (width, height) != (self.info.width, self.info.height) {
            // The file changed after open() read its header.
            return Err(SourceError::Malformed(format!(
                "{}: frame size {width}x{height} differs from {}x{}",
                path.display(),
                self.info.width,
                self.info.height
            )));
        }
        frame.reset(width, height, self.format);
        convert(&self.decoded, colour, self.format, &mut frame.data);
        frame.index = self.next_index as u64;
        frame.time_s = self.next_index as f64 / self.fps;
        self.next_index += 1;
        Ok(true)
    }
}

/// Lists the `.png` files of `dir` in natural order.
fn list_frames(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SourceError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SourceError::io(dir, e))?;
        let path = entry.path();
        let is_png = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("png"));
        let is_file = entry
            .file_type()
            .map_err(|e| SourceError::io(&path, e))?
            .is_file();
        if is_png && is_file {
            files.push(path);
        } else {
            log::debug!("{}: skipped, not a .png file", path.display());
        }
    }
    files.sort_by(|a, b| natural_order(file_name(a), file_name(b)));
    Ok(files)
}

fn file_name(path: &Path) -> &[u8] {
    path.file_name()
        .map(|name| name.as_encoded_bytes())
        .unwrap_or_default()
}

/// Compares names piece by piece: runs of ASCII digits by numeric value (of any length),
/// other bytes by value. Names equal that way compare by their bytes.
pub fn natural_order(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let run_a = digit_run(&a[i..]);
            let run_b = digit_run(&b[j..]);
            let order = compare_numbers(&a[i..i + run_a], &b[j..j + run_b]);
            if order != Ordering::Equal {
                return order;
            }
            i += run_a;
            j += run_b;
        } else {
            match a[i].cmp(&b[j]) {
                Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
                order => return order,
            }
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

fn digit_run(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Compares two digit strings by value without parsing, so any length works.
fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let a = &a[digit_run_zeros(a)..];
    let b = &b[digit_run_zeros(b)..];
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn digit_run_zeros(digits: &[u8]) -> usize {
    digits.iter().take_while(|&&d| d == b'0').count()
}

/// Size and colour of one PNG file.
struct PngHeader {
    width: u32,
    height: u32,
    /// Whether the frame has colour (RGB, RGBA or palette).
    colour: bool,
}

fn open_decoder(path: &Path, limits: &Limits) -> Result<png::Reader<BufReader<File>>, SourceError> {
    let file = File::open(path).map_err(|e| SourceError::io(path, e))?;
    let byte_limit = usize::try_from(limits.max_frame_bytes).unwrap_or(usize::MAX);
    let mut decoder =
        png::Decoder::new_with_limits(BufReader::new(file), png::Limits { bytes: byte_limit });
    decoder.set_transformations(Transformations::normalize_to_color8());
    decoder.read_info().map_err(|e| png_error(path, e))
}

fn read_header(path: &Path, limits: &Limits) -> Result<PngHeader, SourceError> {
    let reader = open_decoder(path, limits)?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    limits
        .check_size(width.into(), height.into(), 3)
        .map_err(|e| match e {
            SourceError::Limit(m) => SourceError::Limit(format!("{}: {m}", path.display())),
            other => other,
        })?;
    let (colour_type, _) = reader.output_color_type();
    Ok(PngHeader {
        width,
        height,
        colour: !matches!(
            colour_type,
            ColorType::Grayscale | ColorType::GrayscaleAlpha
        ),
    })
}

/// Decodes `path` into `buf` as 8-bit samples; returns the colour type, width and height.
fn decode(
    path: &Path,
    limits: &Limits,
    buf: &mut Vec<u8>,
) -> Result<(ColorType, u32, u32), SourceError> {
    let mut reader = open_decoder(path, limits)?;
    let size = reader.output_buffer_size().ok_or_else(|| {
        SourceError::Limit(format!(
            "{}: the decoded frame does not fit in memory",
            path.display()
        ))
    })?;
    if size as u64 > limits.max_frame_bytes {
        return Err(SourceError::Limit(format!(
            "{}: a decoded frame of {size} bytes exceeds the limit of {} bytes",
            path.display(),
            limits.max_frame_bytes
        )));
    }
    buf.resize(size, 0);
    let output = reader.next_frame(buf).map_err(|e| png_error(path, e))?;
    buf.truncate(output.buffer_size());
    Ok((output.color_type, output.width, output.height))
}

fn png_error(path: &Path, error: png::DecodingError) -> SourceError {
    match error {
        png::DecodingError::IoError(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            SourceError::io(path, e)
        }
        png::DecodingError::LimitsExceeded => SourceError::Limit(format!(
            "{}: decoding needs more memory than the frame size limit allows",
            path.display()
        )),
        png::DecodingError::Parameter(e) => {
            SourceError::Unsupported(format!("{}: cannot decode this PNG: {e}", path.display()))
        }
        other => SourceError::Malformed(format!("{}: invalid PNG: {other}", path.display())),
    }
}

/// Converts 8-bit decoded samples of `colour` into `out` (already sized) as `format`.
fn convert(decoded: &[u8], colour: ColorType, format: PixelFormat, out: &mut [u8]) {
    let channels = match colour {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        // The EXPAND transformation turns palette frames into RGB or RGBA.
        ColorType::Indexed => 3,
        ColorType::Rgba => 4,
    };
    let pixels = decoded.chunks_exact(channels);
    match format {
        PixelFormat::Gray8 => {
            for (value, pixel) in out.iter_mut().zip(pixels) {
                *value = pixel[0];
            }
        }
        PixelFormat::Rgb8 => {
            for (rgb, pixel) in out.chunks_exact_mut(3).zip(pixels) {
                if channels >= 3 {
                    rgb.copy_from_slice(&pixel[..3]);
                } else {
                    rgb.fill(pixel[0]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut names: Vec<&str> = names.to_vec();
        names.sort_by(|a, b| natural_order(a.as_bytes(), b.as_bytes()));
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn natural_order_compares_numbers() {
        assert_eq!(
            sorted(&["f10.png", "f2.png", "f1.png", "f010.png", "e9.png"]),
            ["e9.png", "f1.png", "f2.png", "f010.png", "f10.png"]
        );
    }

    #[test]
    fn natural_order_handles_long_numbers() {
        let a = "x99999999999999999999999.png";
        let b = "x100000000000000000000000.png";
        assert_eq!(natural_order(a.as_bytes(), b.as_bytes()), Ordering::Less);
        assert_eq!(natural_order(b"a", b"a1"), Ordering::Less);
        assert_eq!(natural_order(b"a1b", b"a1"), Ordering::Greater);
    }
}
