//! Writing a phantom exam: a streamed multi-frame DICOM cine or a Y4M stream, and
//! truth.json beside it.
//!
//! The DICOM header is built with dicom-object and written without Pixel Data. The
//! Pixel Data element header, whose length is known in advance (frames x rows x
//! columns), follows, and then the frames as they are rendered, so a long exam is never
//! held in memory whole.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};

use super::config::PhantomConfig;
use super::scene::ScreenLayout;
use super::{Phantom, PhantomError, Truth};
use crate::frame::Frame;
use crate::geometry::Rect;

/// Container of the written exam.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExamFormat {
    /// exam.dcm: Ultrasound Multi-frame Image Storage, Explicit VR Little Endian.
    Dicom,
    /// exam.y4m: YUV4MPEG2 with the Cmono colour space.
    Y4m,
}

/// Files written by [`write_exam`].
#[derive(Clone, Debug)]
pub struct ExamPaths {
    pub exam: PathBuf,
    pub truth: PathBuf,
}

/// Ultrasound Multi-frame Image Storage.
pub const US_MULTIFRAME_SOP_CLASS: &str = "1.2.840.10008.5.1.4.1.1.3.1";
/// Manufacturer (0008,0070) of every phantom exam.
pub const MANUFACTURER: &str = "ceus-edge phantom";

/// DICOM Region Data Type (0018,6014) codes. The standard has no code for a
/// contrast-only view, so both views are `TISSUE` regions. The B-mode view is always the
/// first region and the contrast view the second (the only one in the single layout).
const REGION_TISSUE: u16 = 0x0001;
const REGION_GRAY_BAR: u16 = 0x000D;
/// Region Spatial Format (0018,6012) codes.
const SPATIAL_2D: u16 = 0x0001;
const SPATIAL_GRAPHICS: u16 = 0x0005;
/// Physical Units (0018,6024): centimetres.
const UNITS_CM: u16 = 0x0003;
/// Imaged depth of a view, in centimetres, used for the physical pixel size.
const VIEW_DEPTH_CM: f64 = 8.0;

/// Renders the exam that `config` describes into `dir` (created when missing) as
/// exam.dcm or exam.y4m, plus truth.json, and returns the truth.
///
/// Errors with [`PhantomError::InvalidConfig`] for settings out of range, and
/// [`PhantomError::Io`] naming the file that could not be written.
pub fn write_exam(
    config: &PhantomConfig,
    dir: &Path,
    format: ExamFormat,
) -> Result<(Truth, ExamPaths), PhantomError> {
    if format == ExamFormat::Dicom {
        config.check_dicom_pixel_data()?;
    }
    let phantom = Phantom::new(config.clone())?;
    std::fs::create_dir_all(dir).map_err(|source| PhantomError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let exam = dir.join(match format {
        ExamFormat::Dicom => "exam.dcm",
        ExamFormat::Y4m => "exam.y4m",
    });
    let truth = phantom.truth().clone();

    let file = File::create(&exam).map_err(|source| io_error(&exam, source))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut renderer = phantom.into_renderer();
    let out = match format {
        ExamFormat::Dicom => {
            let mut writer = DicomCineWriter::new(out, renderer.phantom())?;
            while let Some(frame) = renderer.next_frame() {
                writer.write_frame(frame).map_err(|e| io_error(&exam, e))?;
            }
            writer.finish().map_err(|e| io_error(&exam, e))?
        }
        ExamFormat::Y4m => {
            let mut writer = Y4mWriter::new(out, config).map_err(|e| io_error(&exam, e))?;
            while let Some(frame) = renderer.next_frame() {
                writer.write_frame(frame).map_err(|e| io_error(&exam, e))?;
            }
            writer.into_inner()
        }
    };
    finish_file(out, &exam)?;

    let truth_path = dir.join("truth.json");
    write_truth(&truth, &truth_path)?;
    Ok((
        truth,
        ExamPaths {
            exam,
            truth: truth_path,
        },
    ))
}

fn io_error(path: &Path, source: std::io::Error) -> PhantomError {
    PhantomError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Flushes the buffer into the file. The file is not synced to disk: a phantom can be
/// written again.
fn finish_file(out: BufWriter<File>, path: &Path) -> Result<(), PhantomError> {
    out.into_inner()
        .map(drop)
        .map_err(|e| io_error(path, e.into_error()))
}

/// Writes `truth` as pretty-printed JSON to `path`.
pub fn write_truth(truth: &Truth, path: &Path) -> Result<(), PhantomError> {
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut out = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, truth).map_err(|e| io_error(path, e.into()))?;
    out.write_all(b"\n").map_err(|e| io_error(path, e))?;
    finish_file(out, path)
}

/// Streams a multi-frame MONOCHROME2 8-bit cine: header first, then one frame at a time.
pub struct DicomCineWriter<W: Write> {
    out: W,
    frame_bytes: usize,
    frames_left: u32,
    odd_length: bool,
}

impl<W: Write> DicomCineWriter<W> {
    /// Writes the preamble, the file meta group, the data set and the Pixel Data element
    /// header for all of the phantom's frames.
    pub fn new(mut out: W, phantom: &Phantom) -> Result<DicomCineWriter<W>, PhantomError> {
        let config = phantom.config();
        config.check_dicom_pixel_data()?;
        let object = build_header(config, &phantom.truth().layout)?;
        let sop_instance = uid_for(config, "sop-instance");
        let file_object = object
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(US_MULTIFRAME_SOP_CLASS)
                    .media_storage_sop_instance_uid(sop_instance)
                    .implementation_class_uid(implementation_uid())
                    .implementation_version_name(implementation_version()),
            )
            .map_err(|e| PhantomError::Dicom(e.to_string()))?;
        file_object
            .write_all(&mut out)
            .map_err(|e| PhantomError::Dicom(e.to_string()))?;

        // Validation keeps the length below 0xFFFFFFFF, the undefined-length marker.
        let length = config.pixel_data_bytes();
        let odd_length = length % 2 == 1;
        let padded = (length + u64::from(odd_length)) as u32;
        let mut element_header = Vec::with_capacity(12);
        element_header.extend_from_slice(&0x7FE0u16.to_le_bytes());
        element_header.extend_from_slice(&0x0010u16.to_le_bytes());
        element_header.extend_from_slice(b"OB\0\0");
        element_header.extend_from_slice(&padded.to_le_bytes());
        out.write_all(&element_header)
            .map_err(|e| PhantomError::Dicom(format!("pixel data header: {e}")))?;
        Ok(DicomCineWriter {
            out,
            frame_bytes: config.width as usize * config.height as usize,
            frames_left: config.frames,
            odd_length,
        })
    }

    /// Appends one frame; it must have the declared size, and no more frames than
    /// declared may be written.
    pub fn write_frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        if frame.data.len() != self.frame_bytes || self.frames_left == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "frame {} of {} bytes does not match the declared pixel data \
                     ({} bytes per frame, {} frames left)",
                    frame.index,
                    frame.data.len(),
                    self.frame_bytes,
                    self.frames_left
                ),
            ));
        }
        self.frames_left -= 1;
        self.out.write_all(&frame.data)
    }

    /// Pads Pixel Data to even length and returns the writer, after checking that every
    /// declared frame was written.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.frames_left != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} declared frames were not written", self.frames_left),
            ));
        }
        if self.odd_length {
            self.out.write_all(&[0])?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Builds the data set of the cine: every attribute except Pixel Data.
fn build_header(
    config: &PhantomConfig,
    layout: &ScreenLayout,
) -> Result<InMemDicomObject, PhantomError> {
    let rows = u16::try_from(config.height).map_err(|_| {
        PhantomError::InvalidConfig(format!("height {} exceeds 65535", config.height))
    })?;
    let columns = u16::try_from(config.width).map_err(|_| {
        PhantomError::InvalidConfig(format!("width {} exceeds 65535", config.width))
    })?;
    let frame_time_ms = format_decimal(1000.0 / config.fps);
    let seed = config.seed;
    let text =
        |tag: Tag, vr: VR, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let us = |tag: Tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));

    let mut object = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(["DERIVED".to_string(), "PRIMARY".to_string()].into()),
        ),
        text(tags::SOP_CLASS_UID, VR::UI, US_MULTIFRAME_SOP_CLASS),
        text(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            &uid_for(config, "sop-instance"),
        ),
        text(tags::STUDY_DATE, VR::DA, "20260101"),
        text(tags::CONTENT_DATE, VR::DA, "20260101"),
        text(tags::STUDY_TIME, VR::TM, "120000"),
        text(tags::CONTENT_TIME, VR::TM, "120000"),
        text(tags::ACCESSION_NUMBER, VR::SH, ""),
        text(tags::MODALITY, VR::CS, "US"),
        text(tags::MANUFACTURER, VR::LO, MANUFACTURER),
        text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
        text(tags::MANUFACTURER_MODEL_NAME, VR::LO, "ceus-edge"),
        text(tags::PATIENT_NAME, VR::PN, &format!("PHANTOM^SEED{seed}")),
        text(tags::PATIENT_ID, VR::LO, &format!("PHANTOM-{seed}")),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, ""),
        text(tags::PATIENT_SEX, VR::CS, "O"),
        text(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        text(tags::FRAME_TIME, VR::DS, &frame_time_ms),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &uid_for(config, "study")),
        text(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            &uid_for(config, "series"),
        ),
        text(tags::STUDY_ID, VR::SH, "1"),
        text(tags::SERIES_NUMBER, VR::IS, "1"),
        text(tags::INSTANCE_NUMBER, VR::IS, "1"),
        text(tags::PATIENT_ORIENTATION, VR::CS, ""),
        text(
            tags::IMAGE_COMMENTS,
            VR::LT,
            "Synthetic CEUS phantom, not patient data. Ultrasound regions: B-mode view \
             (dual layout only), contrast-only view, grey-scale bar.",
        ),
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        text(tags::NUMBER_OF_FRAMES, VR::IS, &config.frames.to_string()),
        DataElement::new(
            tags::FRAME_INCREMENT_POINTER,
            VR::AT,
            PrimitiveValue::Tags(dicom_core::smallvec::smallvec![tags::FRAME_TIME]),
        ),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, columns),
        us(tags::BITS_ALLOCATED, 8),
        us(tags::BITS_STORED, 8),
        us(tags::HIGH_BIT, 7),
        us(tags::PIXEL_REPRESENTATION, 0),
        text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
    ]);
    object.put(DataElement::new(
        tags::SEQUENCE_OF_ULTRASOUND_REGIONS,
        VR::SQ,
        DataSetSequence::from(ultrasound_regions(layout)),
    ));
    Ok(object)
}

/// Builds one Sequence of Ultrasound Regions item per view, then one for the grey-scale bar.
fn ultrasound_regions(layout: &ScreenLayout) -> Vec<InMemDicomObject> {
    let mut items = Vec::new();
    if let Some(view) = layout.bmode_view {
        items.push(region_item(view, SPATIAL_2D, REGION_TISSUE, true));
    }
    items.push(region_item(
        layout.contrast_view,
        SPATIAL_2D,
        REGION_TISSUE,
        true,
    ));
    items.push(region_item(
        layout.grey_bar,
        SPATIAL_GRAPHICS,
        REGION_GRAY_BAR,
        false,
    ));
    items
}

fn region_item(
    rect: Rect,
    spatial_format: u16,
    data_type: u16,
    calibrated: bool,
) -> InMemDicomObject {
    let ul = |tag: Tag, value: u32| DataElement::new(tag, VR::UL, PrimitiveValue::from(value));
    let us = |tag: Tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    let fd = |tag: Tag, value: f64| DataElement::new(tag, VR::FD, PrimitiveValue::from(value));
    let (units, delta) = if calibrated {
        (UNITS_CM, VIEW_DEPTH_CM / f64::from(rect.h))
    } else {
        (0, 0.0)
    };
    InMemDicomObject::from_element_iter([
        us(tags::REGION_SPATIAL_FORMAT, spatial_format),
        us(tags::REGION_DATA_TYPE, data_type),
        ul(tags::REGION_FLAGS, 0),
        ul(tags::REGION_LOCATION_MIN_X0, rect.x),
        ul(tags::REGION_LOCATION_MIN_Y0, rect.y),
        ul(tags::REGION_LOCATION_MAX_X1, rect.x + rect.w - 1),
        ul(tags::REGION_LOCATION_MAX_Y1, rect.y + rect.h - 1),
        us(tags::PHYSICAL_UNITS_X_DIRECTION, units),
        us(tags::PHYSICAL_UNITS_Y_DIRECTION, units),
        fd(tags::PHYSICAL_DELTA_X, delta),
        fd(tags::PHYSICAL_DELTA_Y, delta),
    ])
}

/// Formats a DS value of at most 16 characters: six decimals, trailing zeros removed.
fn format_decimal(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.chars().take(16).collect()
}

/// Derives a UID under the `2.25` root (a 128-bit number in decimal) from the settings,
/// so the same exam gets the same UIDs.
fn uid_for(config: &PhantomConfig, purpose: &str) -> String {
    let settings = serde_json::to_string(config).unwrap_or_default();
    uid_from_text(&format!("ceus-edge phantom {purpose} {settings}"))
}

fn uid_from_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

fn implementation_uid() -> String {
    uid_from_text("ceus-edge implementation")
}

/// Implementation Version Name (0002,0013): at most 16 characters.
fn implementation_version() -> String {
    format!("CEUSEDGE_{}", env!("CARGO_PKG_VERSION"))
        .chars()
        .take(16)
        .collect()
}

/// Writes a mono YUV4MPEG2 stream (`Cmono`, progressive, square pixels).
pub struct Y4mWriter<W: Write> {
    out: W,
}

impl<W: Write> Y4mWriter<W> {
    /// Writes the stream header. The frame rate is written as a fraction over 1000 when it
    /// is not a whole number (29.97 becomes 2997:100).
    pub fn new(mut out: W, config: &PhantomConfig) -> std::io::Result<Y4mWriter<W>> {
        let (numerator, denominator) = rate_fraction(config.fps);
        writeln!(
            out,
            "YUV4MPEG2 W{} H{} F{numerator}:{denominator} Ip A1:1 Cmono",
            config.width, config.height
        )?;
        Ok(Y4mWriter { out })
    }

    pub fn write_frame(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(&frame.data)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// `fps` as a reduced fraction with a denominator of 1 or dividing 1000.
pub fn rate_fraction(fps: f64) -> (u64, u64) {
    let thousandths = (fps * 1000.0).round() as u64;
    let divisor = gcd(thousandths, 1000);
    (thousandths / divisor, 1000 / divisor)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_fraction_reduces() {
        assert_eq!(rate_fraction(15.0), (15, 1));
        assert_eq!(rate_fraction(29.97), (2997, 100));
        assert_eq!(rate_fraction(12.5), (25, 2));
    }

    #[test]
    fn decimal_fits_ds() {
        assert_eq!(format_decimal(1000.0 / 15.0), "66.666667");
        assert_eq!(format_decimal(40.0), "40");
        assert!(format_decimal(1000.0).len() <= 16);
    }

    #[test]
    fn uid_is_valid_and_stable() {
        let config = PhantomConfig::default();
        let uid = uid_for(&config, "study");
        assert_eq!(uid, uid_for(&config, "study"));
        assert_ne!(uid, uid_for(&config, "series"));
        assert!(uid.len() <= 64);
        assert!(uid.chars().all(|c| c.is_ascii_digit() || c == '.'));
        assert!(!uid.contains(".0"), "{uid}: no component may start with 0");
    }
}
