//! The recording of a live session: every overlaid frame in a Y4M file, and a PNG of the
//! frame at each event.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::DisplayError;
use crate::frame::{Frame, PixelFormat};
use crate::png_out;

/// Writes overlaid RGB8 frames as full-range BT.601 YCbCr 4:4:4 Y4M (`C444`), so players
/// show the colours and `ceus-edge tic` reads the luma back.
pub struct Recorder {
    dir: PathBuf,
    fps: f64,
    stream: Option<Stream>,
    /// Streams started so far; a size change starts the next one.
    streams: u32,
    planes: Vec<u8>,
    /// Set when a write failed: the recording stops and the session goes on.
    stopped: bool,
}

struct Stream {
    out: BufWriter<File>,
    path: PathBuf,
    width: u32,
    height: u32,
    header_bytes: u64,
}

impl Recorder {
    /// Creates `dir` when missing; the first frame opens `overlay.y4m` there.
    ///
    /// # Errors
    /// [`DisplayError::Io`] when the folder cannot be created, and
    /// [`DisplayError::Parameter`] for a frame rate that is not positive.
    pub fn create(dir: &Path, fps: f64) -> Result<Recorder, DisplayError> {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(DisplayError::Parameter(format!(
                "recording frame rate {fps} is not positive"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|source| DisplayError::Io {
            path: dir.to_path_buf(),
            operation: "creating the recording folder",
            source,
        })?;
        Ok(Recorder {
            dir: dir.to_path_buf(),
            fps,
            stream: None,
            streams: 0,
            planes: Vec::new(),
            stopped: false,
        })
    }

    /// Appends `frame` (RGB8) to the recording.
    ///
    /// When a write fails (a full disk), the recording stops: the file is cut back to
    /// its last whole frame, so it stays a valid Y4M stream, and later frames are not
    /// recorded.
    ///
    /// # Errors
    /// [`DisplayError::Io`] when the file cannot be written (once, when the recording
    /// stops), [`DisplayError::Parameter`] for a grey frame.
    pub fn record(&mut self, frame: &Frame) -> Result<(), DisplayError> {
        if frame.format != PixelFormat::Rgb8 {
            return Err(DisplayError::Parameter(
                "the recorder takes RGB8 frames".to_string(),
            ));
        }
        if self.stopped {
            return Ok(());
        }
        let same_size = self
            .stream
            .as_ref()
            .is_some_and(|s| (s.width, s.height) == (frame.width, frame.height));
        if !same_size {
            if let Err(error) = self.start_stream(frame.width, frame.height) {
                self.stopped = true;
                return Err(error);
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };

        let pixels = frame.width as usize * frame.height as usize;
        self.planes.resize(3 * pixels, 0);
        let (luma, chroma) = self.planes.split_at_mut(pixels);
        let (blue, red) = chroma.split_at_mut(pixels);
        for (i, rgb) in frame.data.chunks_exact(3).enumerate() {
            [luma[i], blue[i], red[i]] = rgb_to_ycbcr(rgb[0], rgb[1], rgb[2]);
        }
        let written = stream
            .out
            .write_all(b"FRAME\n")
            .and_then(|()| stream.out.write_all(&self.planes));
        match written {
            Ok(()) => Ok(()),
            Err(source) => Err(self.stop(source)),
        }
    }

    /// Stops the recording after a failed write: drops the unwritten buffer, cuts the
    /// file back to its last whole frame, and returns the error to report.
    fn stop(&mut self, source: std::io::Error) -> DisplayError {
        self.stopped = true;
        let Some(stream) = self.stream.take() else {
            return DisplayError::Io {
                path: self.dir.clone(),
                operation: "writing the recording",
                source,
            };
        };
        let (file, _unwritten) = stream.out.into_parts();
        let frame_bytes =
            "FRAME\n".len() as u64 + 3 * u64::from(stream.width) * u64::from(stream.height);
        let whole_frames = file
            .metadata()
            .map(|m| m.len().saturating_sub(stream.header_bytes) / frame_bytes)
            .unwrap_or(0);
        let whole_length = stream.header_bytes + whole_frames * frame_bytes;
        if let Err(error) = file.set_len(whole_length) {
            log::warn!(
                "cannot cut {} back to whole frames: {error}",
                stream.path.display()
            );
        }
        DisplayError::Io {
            path: stream.path,
            operation: "writing the recording, which stops here with its whole frames",
            source,
        }
    }

    /// Writes `frame` as `NAME.png` in the recording folder.
    ///
    /// # Errors
    /// The PNG writer's error, as [`DisplayError::Io`].
    pub fn snapshot(&self, name: &str, frame: &Frame) -> Result<PathBuf, DisplayError> {
        let path = self.dir.join(format!("{name}.png"));
        png_out::write_png(&path, frame).map_err(|error| DisplayError::Io {
            path: path.clone(),
            operation: "writing a snapshot",
            source: std::io::Error::other(error.to_string()),
        })?;
        Ok(path)
    }

    /// Flushes the open stream.
    ///
    /// # Errors
    /// [`DisplayError::Io`] when the data cannot be written.
    pub fn finish(&mut self) -> Result<(), DisplayError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        match stream.out.flush() {
            Ok(()) => Ok(()),
            Err(source) => Err(self.stop(source)),
        }
    }

    fn start_stream(&mut self, width: u32, height: u32) -> Result<(), DisplayError> {
        self.finish()?;
        self.streams += 1;
        let name = match self.streams {
            1 => "overlay.y4m".to_string(),
            n => format!("overlay-{n}.y4m"),
        };
        let path = self.dir.join(name);
        let io_error = |operation, source| DisplayError::Io {
            path: path.clone(),
            operation,
            source,
        };
        let file = File::create(&path).map_err(|e| io_error("creating the recording", e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let (numerator, denominator) = crate::phantom::writer::rate_fraction(self.fps);
        let header = format!(
            "YUV4MPEG2 W{width} H{height} F{numerator}:{denominator} Ip A1:1 C444 XCOLORRANGE=FULL\n"
        );
        out.write_all(header.as_bytes())
            .map_err(|e| io_error("writing the recording", e))?;
        log::info!("recording the overlay to {}", path.display());
        self.stream = Some(Stream {
            out,
            path,
            width,
            height,
            header_bytes: header.len() as u64,
        });
        Ok(())
    }
}

/// Full-range BT.601 (JPEG) YCbCr of one RGB pixel, in integer arithmetic.
pub fn rgb_to_ycbcr(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let y = (19_595 * r + 38_470 * g + 7_471 * b + 32_768) >> 16;
    let cb = ((-11_059 * r - 21_709 * g + 32_768 * b + 32_768) >> 16) + 128;
    let cr = ((32_768 * r - 27_439 * g - 5_329 * b + 32_768) >> 16) + 128;
    [y, cb, cr].map(|v| v.clamp(0, 255) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_of_primaries() {
        assert_eq!(rgb_to_ycbcr(0, 0, 0), [0, 128, 128]);
        assert_eq!(rgb_to_ycbcr(255, 255, 255), [255, 128, 128]);
        // JPEG (JFIF) conversion: red is Y 76, Cb 85, Cr 255.
        assert_eq!(rgb_to_ycbcr(255, 0, 0), [76, 85, 255]);
        assert_eq!(rgb_to_ycbcr(0, 0, 255), [29, 255, 107]);
    }

    #[test]
    fn recording_has_header_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder = Recorder::create(dir.path(), 30.0).unwrap();
        let mut frame = Frame::new(4, 2, PixelFormat::Rgb8);
        frame.data.fill(255);
        recorder.record(&frame).unwrap();
        recorder.record(&frame).unwrap();
        recorder.finish().unwrap();

        let bytes = std::fs::read(dir.path().join("overlay.y4m")).unwrap();
        let header_end = bytes.iter().position(|&b| b == b'\n').unwrap();
        let header = std::str::from_utf8(&bytes[..header_end]).unwrap();
        assert_eq!(
            header,
            "YUV4MPEG2 W4 H2 F30:1 Ip A1:1 C444 XCOLORRANGE=FULL"
        );
        let frame_bytes = 6 + 3 * 8;
        assert_eq!(bytes.len(), header_end + 1 + 2 * frame_bytes);
        assert_eq!(&bytes[header_end + 1..header_end + 7], b"FRAME\n");
        assert_eq!(bytes[header_end + 7], 255);
    }

    #[test]
    fn size_change_starts_a_second_stream() {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder = Recorder::create(dir.path(), 15.0).unwrap();
        recorder
            .record(&Frame::new(4, 2, PixelFormat::Rgb8))
            .unwrap();
        recorder
            .record(&Frame::new(2, 2, PixelFormat::Rgb8))
            .unwrap();
        recorder.finish().unwrap();
        assert!(dir.path().join("overlay-2.y4m").exists());
    }

    #[test]
    fn grey_frames_and_bad_rates_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Recorder::create(dir.path(), 0.0).is_err());
        let mut recorder = Recorder::create(dir.path(), 10.0).unwrap();
        let error = recorder
            .record(&Frame::new(2, 2, PixelFormat::Gray8))
            .unwrap_err();
        assert!(error.to_string().contains("RGB8"), "{error}");
    }
}
