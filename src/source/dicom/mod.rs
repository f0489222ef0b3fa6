//! DICOM cines read frame by frame.
//!
//! dicom-object parses the header up to Pixel Data (7FE0,0010). The frames are then read
//! straight from the file, one at a time: uncompressed frames by offset and length,
//! encapsulated ones (RLE Lossless, JPEG Baseline) by walking the item fragments. A 1 GB
//! multi-frame file therefore costs one frame of memory, plus 16 bytes per fragment.

mod convert;
mod header;
mod palette;
mod pixeldata;
mod rle;
mod timing;

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{FileMetaTable, InMemDicomObject, OpenFileOptions};

pub use convert::{RawFrame, RawSamples};
pub use header::{
    DicomHeader, Photometric, PixelEncoding, ProtectedHealthInformation, TransferSyntaxName,
    UltrasoundRegion, Window,
};
pub use palette::Palette;
pub use timing::FrameTiming;

use convert::{DisplayMap, StoredLayout};
use pixeldata::{FragmentIndex, PixelDataElement};

use super::{FrameSource, OpenOptions, SourceError, SourceInfo};
use crate::frame::Frame;

/// A DICOM file read as a stream of frames.
pub struct DicomSource {
    file: File,
    header: DicomHeader,
    info: SourceInfo,
    pixel_data: PixelDataElement,
    /// Fragments of each frame, for encapsulated transfer syntaxes.
    fragments: Option<FragmentIndex>,
    palette: Option<Palette>,
    display: DisplayMap,
    /// Colour model of the raw samples (RGB after JPEG decoding of YBR data).
    raw_photometric: Photometric,
    next: u64,
    /// Stored or compressed bytes of the current frame.
    stored: Vec<u8>,
    /// RLE output of the current frame.
    decoded: Vec<u8>,
    raw: RawFrame,
}

impl DicomSource {
    /// Opens `path`, reads its header and locates its frames without decoding any.
    ///
    /// Errors: [`SourceError::Io`] when the file cannot be read, [`SourceError::Malformed`]
    /// for an invalid header or pixel data shorter than the header implies,
    /// [`SourceError::Unsupported`] for a transfer syntax or sample layout this reader does
    /// not decode, [`SourceError::Limit`] for sizes beyond `options.limits`, and
    /// [`SourceError::MissingTiming`] for several frames without timing or `options.fps`.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<DicomSource, SourceError> {
        let mut file = File::open(path).map_err(|e| SourceError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| SourceError::io(path, e))?.len();

        let meta_offset = find_meta_group(&mut file)?;
        file.seek(SeekFrom::Start(meta_offset))
            .map_err(|e| SourceError::io(path, e))?;
        let meta = FileMetaTable::from_reader(&mut file).map_err(|e| {
            SourceError::Malformed(format!(
                "invalid DICOM file meta group: {}",
                error_chain(&e)
            ))
        })?;
        let dataset_offset = file
            .stream_position()
            .map_err(|e| SourceError::io(path, e))?;
        let uid = meta.transfer_syntax().to_string();
        let (syntax, encoding) = header::classify_transfer_syntax(&uid)?;

        let object = read_header_object(&mut file, meta_offset)?;
        let header = header::parse_header(&object, syntax, encoding, options)?;
        let big_endian = matches!(encoding, PixelEncoding::Native { big_endian: true });
        let palette = match header.photometric {
            Photometric::PaletteColor => Some(Palette::from_header(&object, big_endian)?),
            _ => None,
        };
        drop(object);

        let file_for_walk = file.try_clone().map_err(|e| SourceError::io(path, e))?;
        let pixel_data = pixeldata::locate_pixel_data(file_for_walk, dataset_offset, &uid)?;
        let fragments = match encoding {
            PixelEncoding::Native { .. } => {
                check_native_length(&header, &pixel_data, file_len)?;
                None
            }
            PixelEncoding::RleLossless | PixelEncoding::JpegBaseline => {
                if pixel_data.length.is_some() {
                    return Err(SourceError::Malformed(format!(
                        "pixel data of transfer syntax {} must be encapsulated (undefined \
                         length)",
                        header.transfer_syntax.name
                    )));
                }
                Some(pixeldata::index_fragments(
                    &mut file,
                    pixel_data.value_offset,
                    file_len,
                    header.frames,
                    encoding,
                )?)
            }
        };

        let raw_photometric = raw_photometric(&header);
        let display = DisplayMap::new(&header, raw_photometric, palette.as_ref());
        let info = SourceInfo {
            container: "DICOM",
            width: header.columns,
            height: header.rows,
            frames: Some(header.frames),
            fps: header.timing.nominal_fps(),
            timing: header.timing.source.clone(),
        };
        log::debug!(
            "opened DICOM {}x{} x{} frames, {} {}, {} bits, pixel data at byte {}",
            header.columns,
            header.rows,
            header.frames,
            header.transfer_syntax.name,
            header.photometric.as_str(),
            header.bits_allocated,
            pixel_data.value_offset
        );

        Ok(DicomSource {
            file,
            header,
            info,
            pixel_data,
            fragments,
            palette,
            display,
            raw_photometric,
            next: 0,
            stored: Vec::new(),
            decoded: Vec::new(),
            raw: RawFrame::empty(),
        })
    }

    /// The validated header: sizes, sample layout, timing, ultrasound regions and PHI.
    pub fn header(&self) -> &DicomHeader {
        &self.header
    }

    /// The palette lookup tables of a PALETTE COLOR image, at full precision.
    pub fn palette(&self) -> Option<&Palette> {
        self.palette.as_ref()
    }

    /// Decodes frame `index` into `raw` without any display mapping.
    ///
    /// Returns `Ok(false)`, leaving `raw` unchanged, when `index` is past the last frame.
    /// Errors: [`SourceError::Malformed`] naming the frame when its data cannot be read or
    /// decoded.
    pub fn read_raw_frame(&mut self, index: u64, raw: &mut RawFrame) -> Result<bool, SourceError> {
        if index >= self.header.frames {
            return Ok(false);
        }
        let layout = self.fetch_frame(index)?;
        raw.index = index;
        raw.time_s = self.header.timing.time_of(index);
        raw.width = self.header.columns;
        raw.height = self.header.rows;
        raw.samples_per_pixel = self.header.samples_per_pixel;
        raw.photometric = self.raw_photometric;
        let bytes = match self.header.encoding {
            PixelEncoding::Native { .. } => &self.stored,
            PixelEncoding::RleLossless | PixelEncoding::JpegBaseline => &self.decoded,
        };
        convert::unpack_samples(&self.header, layout, bytes, &mut raw.samples);
        Ok(true)
    }

    /// Decodes frame `index` into `frame` for display (see the module doc of the mapping).
    ///
    /// Returns `Ok(false)` when `index` is past the last frame.
    pub fn read_frame_at(&mut self, index: u64, frame: &mut Frame) -> Result<bool, SourceError> {
        let mut raw = std::mem::replace(&mut self.raw, RawFrame::empty());
        let result = self.read_raw_frame(index, &mut raw);
        if let Ok(true) = result {
            self.display.apply(&raw, frame);
        }
        self.raw = raw;
        result
    }

    /// Reads the bytes of frame `index` into `self.stored` (native) or decodes them into
    /// `self.decoded` (encapsulated), and returns how those bytes are laid out.
    fn fetch_frame(&mut self, index: u64) -> Result<StoredLayout, SourceError> {
        match self.header.encoding {
            PixelEncoding::Native { big_endian } => {
                self.read_native(index, big_endian)?;
                Ok(StoredLayout {
                    big_endian,
                    planar: self.header.planar_configuration == 1,
                    subsampled_422: self.header.photometric == Photometric::YbrFull422,
                })
            }
            PixelEncoding::RleLossless => {
                self.read_fragments(index)?;
                let pixels = self.header.rows as usize * self.header.columns as usize;
                rle::decode_frame(
                    &self.stored,
                    pixels,
                    usize::from(self.header.samples_per_pixel),
                    self.header.bytes_per_sample(),
                    index,
                    &mut self.decoded,
                )?;
                Ok(StoredLayout {
                    big_endian: false,
                    planar: false,
                    subsampled_422: false,
                })
            }
            PixelEncoding::JpegBaseline => {
                self.read_fragments(index)?;
                self.decode_jpeg(index)?;
                Ok(StoredLayout {
                    big_endian: false,
                    planar: false,
                    subsampled_422: false,
                })
            }
        }
    }

    fn read_native(&mut self, index: u64, big_endian: bool) -> Result<(), SourceError> {
        let frame_len = self.header.native_frame_len();
        let start = index * frame_len;
        // Explicit VR Big Endian stores 8-bit samples of an OW element as byte-swapped
        // 16-bit words, so read whole words and swap them back.
        let swap_words = big_endian
            && self.header.bits_allocated == 8
            && self.pixel_data.vr == dicom_core::VR::OW;
        let (read_start, read_len) = if swap_words {
            let aligned = start & !1;
            (aligned, (start + frame_len).next_multiple_of(2) - aligned)
        } else {
            (start, frame_len)
        };

        self.stored.clear();
        self.stored.resize(read_len as usize, 0);
        pixeldata::read_at(
            &mut self.file,
            self.pixel_data.value_offset + read_start,
            &mut self.stored,
        )
        .map_err(|e| frame_error(index, e))?;
        if swap_words {
            self.stored
                .chunks_exact_mut(2)
                .for_each(|pair| pair.swap(0, 1));
            let skip = (start - read_start) as usize;
            self.stored.drain(..skip);
            self.stored.truncate(frame_len as usize);
        }
        Ok(())
    }

    fn read_fragments(&mut self, index: u64) -> Result<(), SourceError> {
        let index_usize = usize::try_from(index).unwrap_or(usize::MAX);
        let fragments = self
            .fragments
            .as_ref()
            .and_then(|f| {
                f.frames
                    .get(index_usize)
                    .map(|range| &f.fragments[range.clone()])
            })
            .ok_or_else(|| {
                SourceError::Malformed(format!("frame {index} has no encapsulated fragments"))
            })?;
        let total: u64 = fragments.iter().map(|f| u64::from(f.length)).sum();
        self.stored.clear();
        self.stored.resize(total as usize, 0);
        let mut at = 0usize;
        for fragment in fragments {
            let end = at + fragment.length as usize;
            pixeldata::read_at(&mut self.file, fragment.offset, &mut self.stored[at..end])
                .map_err(|e| frame_error(index, e))?;
            at = end;
        }
        Ok(())
    }

    fn decode_jpeg(&mut self, index: u64) -> Result<(), SourceError> {
        let malformed = |what: String| {
            SourceError::Malformed(format!("JPEG frame {index} cannot be decoded: {what}"))
        };
        let mut decoder = jpeg_decoder::Decoder::new(self.stored.as_slice());
        let expected_len = self.header.rows as usize
            * self.header.columns as usize
            * usize::from(self.header.samples_per_pixel);
        decoder.set_max_decoding_buffer_size(expected_len.max(1));
        decoder.read_info().map_err(|e| malformed(e.to_string()))?;
        let info = decoder
            .info()
            .ok_or_else(|| malformed("no frame header".to_string()))?;
        let components = info.pixel_format.pixel_bytes();
        if u32::from(info.width) != self.header.columns
            || u32::from(info.height) != self.header.rows
            || components != usize::from(self.header.samples_per_pixel)
        {
            return Err(malformed(format!(
                "the JPEG stream is {}x{} with {components} bytes per pixel, the header \
                 declares {}x{} with {} samples",
                info.width,
                info.height,
                self.header.columns,
                self.header.rows,
                self.header.samples_per_pixel
            )));
        }
        self.decoded = decoder.decode().map_err(|e| malformed(e.to_string()))?;
        if self.decoded.len() != expected_len {
            return Err(malformed(format!(
                "decoded {} bytes, expected {expected_len}",
                self.decoded.len()
            )));
        }
        Ok(())
    }
}

impl FrameSource for DicomSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
        let more = self.read_frame_at(self.next, frame)?;
        if more {
            self.next += 1;
        }
        Ok(more)
    }
}

/// File offset of the "DICM" prefix: 128 after a preamble, or 0 without one.
fn find_meta_group(file: &mut File) -> Result<u64, SourceError> {
    let mut start = [0u8; 132];
    let mut filled = 0;
    while filled < start.len() {
        match file.read(&mut start[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(SourceError::Malformed(format!(
                    "cannot read the file start: {e}"
                )))
            }
        }
    }
    if filled == 132 && &start[128..132] == b"DICM" {
        return Ok(128);
    }
    if filled >= 4 && &start[..4] == b"DICM" {
        return Ok(0);
    }
    Err(SourceError::Malformed(
        "not a DICOM file: no \"DICM\" prefix at byte 128 or 0".to_string(),
    ))
}

/// Parses the data set up to, not including, Pixel Data.
fn read_header_object(file: &mut File, meta_offset: u64) -> Result<InMemDicomObject, SourceError> {
    file.seek(SeekFrom::Start(meta_offset))
        .map_err(|e| SourceError::Malformed(format!("cannot seek to the meta group: {e}")))?;
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .read_until(tags::PIXEL_DATA)
        .from_reader(BufReader::new(&*file))
        .map_err(|e| {
            SourceError::Malformed(format!("invalid DICOM header: {}", error_chain(&e)))
        })?;
    Ok(object.into_inner())
}

fn check_native_length(
    header: &DicomHeader,
    pixel_data: &PixelDataElement,
    file_len: u64,
) -> Result<(), SourceError> {
    let frame_len = header.native_frame_len();
    let expected = frame_len.saturating_mul(header.frames);
    let Some(declared) = pixel_data.length.map(u64::from) else {
        return Err(SourceError::Malformed(
            "uncompressed pixel data has an undefined length".to_string(),
        ));
    };
    if declared < expected {
        return Err(SourceError::Malformed(format!(
            "pixel data is shorter than declared: {declared} bytes hold {} of {} frames of \
             {frame_len} bytes, frame {} is incomplete",
            declared / frame_len,
            header.frames,
            declared / frame_len
        )));
    }
    let available = file_len.saturating_sub(pixel_data.value_offset);
    if available < expected {
        return Err(SourceError::Malformed(format!(
            "pixel data is truncated: the file ends inside frame {} of {} ({available} of \
             {expected} bytes present)",
            available / frame_len,
            header.frames
        )));
    }
    Ok(())
}

fn raw_photometric(header: &DicomHeader) -> Photometric {
    match (header.encoding, header.photometric) {
        (PixelEncoding::JpegBaseline, Photometric::YbrFull | Photometric::YbrFull422) => {
            Photometric::Rgb
        }
        (PixelEncoding::Native { .. }, Photometric::YbrFull422) => Photometric::YbrFull,
        (PixelEncoding::RleLossless, Photometric::YbrFull422) => Photometric::YbrFull,
        (_, photometric) => photometric,
    }
}

fn frame_error(index: u64, error: SourceError) -> SourceError {
    SourceError::Malformed(format!("frame {index}: {error}"))
}

/// An error and its sources on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace('\n', " ")
}
