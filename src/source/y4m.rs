//! YUV4MPEG2 (Y4M) streams, read frame by frame.
//!
//! The reader yields the luma (Y) plane of each frame as [`PixelFormat::Gray8`], byte for
//! byte: the analysis works on luma, and chroma planes are read and dropped. Luma values
//! are passed through without range conversion, so in a limited-range stream (`C420`,
//! `C420mpeg2`, `C420paldv`) black is 16 and white 235, while `C420jpeg`, `Cmono` and the
//! phantom's own streams are full range.
//!
//! Colour spaces: `C420jpeg` (the default when `C` is absent), `C420`, `C420mpeg2`,
//! `C420paldv`, `C422`, `C444` and `Cmono`. Higher bit depths (`C420p10`, `Cmono16` and
//! the like) and alpha (`C444alpha`) are rejected as unsupported.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{FrameSource, OpenOptions, SourceError, SourceInfo, TimingSource};
use crate::frame::{Frame, PixelFormat};

/// Maximum length of the stream header or a FRAME line, in bytes. ffmpeg 5.1 writes
/// headers of about 70 bytes.
const MAX_LINE: usize = 4096;

/// A Y4M file opened for reading.
pub struct Y4mSource {
    info: SourceInfo,
    path: PathBuf,
    reader: BufReader<File>,
    /// Bytes of the chroma planes that follow each luma plane.
    chroma_bytes: usize,
    chroma: Vec<u8>,
    fps: f64,
    next_index: u64,
    line: Vec<u8>,
}

/// Parameters declared by the stream header.
#[derive(Debug, PartialEq)]
struct StreamHeader {
    width: u64,
    height: u64,
    /// Frame rate as numerator and denominator, when given and not `0:0`.
    rate: Option<(u64, u64)>,
    chroma: ChromaLayout,
}

/// Size of the chroma planes relative to luma.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ChromaLayout {
    /// 4:2:0: two planes of `ceil(w/2) x ceil(h/2)`.
    Half,
    /// 4:2:2: two planes of `ceil(w/2) x h`.
    HalfWidth,
    /// 4:4:4: two full planes.
    Full,
    /// Luma only.
    None,
}

impl ChromaLayout {
    fn from_tag(tag: &str) -> Result<ChromaLayout, SourceError> {
        match tag {
            "420jpeg" | "420" | "420mpeg2" | "420paldv" => Ok(ChromaLayout::Half),
            "422" => Ok(ChromaLayout::HalfWidth),
            "444" => Ok(ChromaLayout::Full),
            "mono" => Ok(ChromaLayout::None),
            other => Err(SourceError::Unsupported(format!(
                "Y4M colour space C{other} is not supported: expected 8-bit C420jpeg, C420, \
                 C420mpeg2, C420paldv, C422, C444 or Cmono"
            ))),
        }
    }

    fn bytes(self, width: u64, height: u64) -> u64 {
        let half_w = width.div_ceil(2);
        match self {
            ChromaLayout::Half => 2 * half_w * height.div_ceil(2),
            ChromaLayout::HalfWidth => 2 * half_w * height,
            ChromaLayout::Full => 2 * width * height,
            ChromaLayout::None => 0,
        }
    }
}

impl Y4mSource {
    /// Opens `path` and parses its stream header.
    ///
    /// Errors: [`SourceError::Malformed`] for a bad header, [`SourceError::Unsupported`]
    /// for a colour space this reader cannot decode, [`SourceError::Limit`] for a frame
    /// size above `options.limits`, and [`SourceError::MissingTiming`] when the header has
    /// no frame rate and `options.fps` is not set. `options.fps` overrides the header.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Y4mSource, SourceError> {
        let file = File::open(path).map_err(|e| SourceError::io(path, e))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let complete = read_line(&mut reader, &mut line).map_err(|e| SourceError::io(path, e))?;
        if !complete {
            return Err(SourceError::Malformed(format!(
                "{}: the Y4M stream header is truncated or longer than {MAX_LINE} bytes",
                path.display()
            )));
        }
        let header = parse_header(&line).map_err(|e| prefix_path(path, e))?;

        let limits = &options.limits;
        limits
            .check_size(header.width, header.height, 1)
            .map_err(|e| prefix_path(path, e))?;
        let chroma_bytes = header.chroma.bytes(header.width, header.height);
        let frame_bytes = header.width * header.height + chroma_bytes;
        if frame_bytes > limits.max_frame_bytes {
            return Err(SourceError::Limit(format!(
                "{}: a Y4M frame of {frame_bytes} bytes exceeds the limit of {} bytes",
                path.display(),
                limits.max_frame_bytes
            )));
        }

        let (fps, timing) = frame_rate(path, &header, options)?;
        let info = SourceInfo {
            container: "Y4M",
            width: header.width as u32,
            height: header.height as u32,
            frames: None,
            fps: Some(fps),
            timing,
        };
        log::debug!(
            "{}: Y4M {}x{}, chroma {:?}, {fps} fps ({:?})",
            path.display(),
            info.width,
            info.height,
            header.chroma,
            info.timing
        );
        Ok(Y4mSource {
            info,
            path: path.to_path_buf(),
            reader,
            chroma_bytes: chroma_bytes as usize,
            chroma: Vec::new(),
            fps,
            next_index: 0,
            line,
        })
    }

    fn truncated(&self, what: &str) -> SourceError {
        SourceError::Malformed(format!(
            "{}: Y4M frame {} is truncated ({what}): the stream ends inside it",
            self.path.display(),
            self.next_index
        ))
    }
}

impl FrameSource for Y4mSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let at_end = self
            .reader
            .fill_buf()
            .map_err(|e| SourceError::io(&self.path, e))?
            .is_empty();
        if at_end {
            return Ok(false);
        }

        let complete = read_line(&mut self.reader, &mut self.line)
            .map_err(|e| SourceError::io(&self.path, e))?;
        if !complete {
            return Err(self.truncated("FRAME line"));
        }
        // The FRAME tag may carry parameters after a space, which this reader ignores.
        if !(self.line == b"FRAME" || self.line.starts_with(b"FRAME ")) {
            return Err(SourceError::Malformed(format!(
                "{}: expected a FRAME line before frame {}, found `{}`",
                self.path.display(),
                self.next_index,
                String::from_utf8_lossy(&self.line[..self.line.len().min(40)])
            )));
        }

        frame.reset(self.info.width, self.info.height, PixelFormat::Gray8);
        let luma_read = read_full(&mut self.reader, &mut frame.data);
        if !luma_read.map_err(|e| SourceError::io(&self.path, e))? {
            return Err(self.truncated("luma plane"));
        }
        self.chroma.resize(self.chroma_bytes, 0);
        let chroma_read = read_full(&mut self.reader, &mut self.chroma);
        if !chroma_read.map_err(|e| SourceError::io(&self.path, e))? {
            return Err(self.truncated("chroma planes"));
        }

        frame.index = self.next_index;
        frame.time_s = self.next_index as f64 / self.fps;
        self.next_index += 1;
        Ok(true)
    }
}

fn prefix_path(path: &Path, error: SourceError) -> SourceError {
    match error {
        SourceError::Malformed(m) => SourceError::Malformed(format!("{}: {m}", path.display())),
        SourceError::Unsupported(m) => SourceError::Unsupported(format!("{}: {m}", path.display())),
        SourceError::Limit(m) => SourceError::Limit(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Frame rate and its origin: `options.fps` first, then the header's `F` parameter.
fn frame_rate(
    path: &Path,
    header: &StreamHeader,
    options: &OpenOptions,
) -> Result<(f64, TimingSource), SourceError> {
    if let Some(fps) = options.fps {
        return Ok((fps, TimingSource::UserFps));
    }
    match header.rate {
        Some((numerator, denominator)) => Ok((
            numerator as f64 / denominator as f64,
            TimingSource::StreamHeader,
        )),
        None => Err(SourceError::MissingTiming(format!(
            "Y4M stream {}",
            path.display()
        ))),
    }
}

/// Parses the stream header line (without its newline).
fn parse_header(line: &[u8]) -> Result<StreamHeader, SourceError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| SourceError::Malformed("the Y4M stream header is not ASCII".to_string()))?;
    let mut tokens = text.split(' ').filter(|t| !t.is_empty());
    if tokens.next() != Some("YUV4MPEG2") {
        return Err(SourceError::Malformed(
            "the file does not start with the Y4M signature `YUV4MPEG2 `".to_string(),
        ));
    }
    let (mut width, mut height, mut rate) = (None, None, None);
    let mut chroma = ChromaLayout::Half;
    for token in tokens {
        let (tag, value) = token.split_at(1);
        match tag {
            "W" => width = Some(parse_dimension("width", value)?),
            "H" => height = Some(parse_dimension("height", value)?),
            "F" => rate = parse_ratio(value)?,
            "C" => chroma = ChromaLayout::from_tag(value)?,
            // Interlacing, aspect ratio and extensions do not change the byte layout.
            "I" | "A" | "X" => {}
            _ => {
                return Err(SourceError::Malformed(format!(
                    "unknown Y4M header parameter `{token}`"
                )))
            }
        }
    }
    let missing = |name: &str| SourceError::Malformed(format!("the Y4M header has no {name}"));
    Ok(StreamHeader {
        width: width.ok_or_else(|| missing("width (W)"))?,
        height: height.ok_or_else(|| missing("height (H)"))?,
        rate,
        chroma,
    })
}

fn parse_dimension(name: &str, value: &str) -> Result<u64, SourceError> {
    value.parse::<u64>().map_err(|_| {
        SourceError::Malformed(format!(
            "invalid Y4M {name} `{value}`: expected a whole number"
        ))
    })
}

/// Parses `N:D`; `0:0` means unknown and returns `None`.
fn parse_ratio(value: &str) -> Result<Option<(u64, u64)>, SourceError> {
    let invalid = || {
        SourceError::Malformed(format!(
            "invalid Y4M frame rate `F{value}`: expected F<numerator>:<denominator> such as F30000:1001"
        ))
    };
    let (numerator, denominator) = value.split_once(':').ok_or_else(invalid)?;
    let numerator: u64 = numerator.parse().map_err(|_| invalid())?;
    let denominator: u64 = denominator.parse().map_err(|_| invalid())?;
    match (numerator, denominator) {
        (0, 0) => Ok(None),
        (0, _) | (_, 0) => Err(invalid()),
        _ => Ok(Some((numerator, denominator))),
    }
}

/// Reads one line without its `\n` into `line`. Returns `false` when the stream ends
/// before a newline or the line passes [`MAX_LINE`] bytes.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let read = reader.take(MAX_LINE as u64 + 1).read_until(b'\n', line)?;
    if read == 0 || line.last() != Some(&b'\n') {
        return Ok(false);
    }
    line.pop();
    Ok(true)
}

/// Fills `buf`; returns `false` when the stream ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Checks whether the file starts with the Y4M signature `YUV4MPEG2 `.
pub fn has_signature(path: &Path) -> Result<bool, SourceError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parses_all_parameters() {
        let header =
            parse_header(b"YUV4MPEG2 W640 H480 F30000:1001 It A1:1 C420mpeg2 XYSCSS=420MPEG2")
                .unwrap();
        assert_eq!(header.width, 640);
        assert_eq!(header.height, 480);
        assert_eq!(header.rate, Some((30000, 1001)));
        assert_eq!(header.chroma, ChromaLayout::Half);
    }

    #[test]
    fn header_defaults_to_420_without_rate() {
        let header = parse_header(b"YUV4MPEG2 W4 H2").unwrap();
        assert_eq!(header.chroma, ChromaLayout::Half);
        assert_eq!(header.rate, None);
        assert_eq!(parse_header(b"YUV4MPEG2 W4 H2 F0:0").unwrap().rate, None);
    }

    #[test]
    fn header_rejects_bad_values() {
        let cases: [&[u8]; 8] = [
            b"YUV4MPEG W4 H2",
            b"YUV4MPEG2 H2",
            b"YUV4MPEG2 W4",
            b"YUV4MPEG2 W-4 H2",
            b"YUV4MPEG2 W4 H2 F25",
            b"YUV4MPEG2 W4 H2 F25:0",
            b"YUV4MPEG2 W4 H2 C420p10",
            b"YUV4MPEG2 W4 H2 Q1",
        ];
        for case in cases {
            assert!(
                parse_header(case).is_err(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn chroma_sizes_round_up() {
        assert_eq!(ChromaLayout::Half.bytes(5, 3), 2 * 3 * 2);
        assert_eq!(ChromaLayout::HalfWidth.bytes(5, 3), 2 * 3 * 3);
        assert_eq!(ChromaLayout::Full.bytes(5, 3), 30);
        assert_eq!(ChromaLayout::None.bytes(5, 3), 0);
    }
}
