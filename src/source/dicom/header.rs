//! Image attributes read from a DICOM header, checked before any pixel buffer is sized.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Serialize;

use super::timing::FrameTiming;
use crate::geometry::Rect;
use crate::source::{Limits, OpenOptions, SourceError};

/// A transfer syntax, named as in PS3.6.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransferSyntaxName {
    pub uid: String,
    pub name: String,
}

/// How the pixel data of a file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelEncoding {
    /// Uncompressed samples.
    Native { big_endian: bool },
    /// RLE Lossless (PS3.5 Annex G), one fragment per frame.
    RleLossless,
    /// JPEG Baseline (Process 1), 8-bit samples.
    JpegBaseline,
}

/// The colour model of the stored samples (Photometric Interpretation (0028,0004)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Photometric {
    /// Grey, the minimum sample is white.
    Monochrome1,
    /// Grey, the minimum sample is black.
    Monochrome2,
    Rgb,
    /// Full-range Y, Cb, Cr for every pixel.
    YbrFull,
    /// Full-range Y for every pixel, Cb and Cr shared by each horizontal pair.
    YbrFull422,
    /// One index per pixel into the red, green and blue palette lookup tables.
    PaletteColor,
}

impl Photometric {
    /// The defined term of PS3.3 C.7.6.3.1.2.
    pub fn as_str(self) -> &'static str {
        match self {
            Photometric::Monochrome1 => "MONOCHROME1",
            Photometric::Monochrome2 => "MONOCHROME2",
            Photometric::Rgb => "RGB",
            Photometric::YbrFull => "YBR_FULL",
            Photometric::YbrFull422 => "YBR_FULL_422",
            Photometric::PaletteColor => "PALETTE COLOR",
        }
    }

    /// Samples per pixel that the interpretation requires.
    pub fn samples_per_pixel(self) -> u16 {
        match self {
            Photometric::Monochrome1 | Photometric::Monochrome2 | Photometric::PaletteColor => 1,
            Photometric::Rgb | Photometric::YbrFull | Photometric::YbrFull422 => 3,
        }
    }

    fn parse(text: &str) -> Result<Photometric, SourceError> {
        match text {
            "MONOCHROME1" => Ok(Photometric::Monochrome1),
            "MONOCHROME2" => Ok(Photometric::Monochrome2),
            "RGB" => Ok(Photometric::Rgb),
            "YBR_FULL" => Ok(Photometric::YbrFull),
            "YBR_FULL_422" => Ok(Photometric::YbrFull422),
            "PALETTE COLOR" => Ok(Photometric::PaletteColor),
            other => Err(SourceError::Unsupported(format!(
                "photometric interpretation `{other}` is not supported: supported are \
                 MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422 and PALETTE COLOR"
            ))),
        }
    }
}

/// VOI window (Window Center (0028,1050) and Window Width (0028,1051)), first values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

/// One item of the Sequence of Ultrasound Regions (0018,6011): where an image, a Doppler
/// spectrum or a trace sits inside the frame, and its physical scale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UltrasoundRegion {
    /// The region in frame pixels, from Region Location Min X0/Y0 and Max X1/Y1 (inclusive).
    pub rect: Rect,
    /// Region Spatial Format (0018,6012): 0 none, 1 2D, 2 M-mode, 3 spectral, 4 waveform,
    /// 5 graphics.
    pub spatial_format: u16,
    /// Region Data Type (0018,6014): 1 tissue, 2 colour flow, 3 PW Doppler, 4 CW Doppler,
    /// 0x0D grey bar, 0x0E colour bar, others per PS3.3 C.8.5.5.1.2.
    pub data_type: u16,
    /// Region Flags (0018,6016).
    pub flags: u32,
    /// Physical Units X Direction (0018,6024): 3 is cm, 4 seconds, 7 cm/s, 0 none.
    pub physical_units_x: u16,
    /// Physical Units Y Direction (0018,6026), coded as the X direction.
    pub physical_units_y: u16,
    /// Physical Delta X (0018,602C): physical units per pixel in x.
    pub physical_delta_x: Option<f64>,
    /// Physical Delta Y (0018,602E): physical units per pixel in y.
    pub physical_delta_y: Option<f64>,
}

impl UltrasoundRegion {
    /// Name of the spatial format code, or `None` for a code PS3.3 does not define.
    pub fn spatial_format_name(&self) -> Option<&'static str> {
        match self.spatial_format {
            0 => Some("none"),
            1 => Some("2D"),
            2 => Some("M-mode"),
            3 => Some("spectral"),
            4 => Some("waveform"),
            5 => Some("graphics"),
            _ => None,
        }
    }

    /// Name of the data type code, or `None` for a code PS3.3 does not define.
    pub fn data_type_name(&self) -> Option<&'static str> {
        match self.data_type {
            0x00 => Some("none"),
            0x01 => Some("tissue"),
            0x02 => Some("color flow"),
            0x03 => Some("PW spectral Doppler"),
            0x04 => Some("CW spectral Doppler"),
            0x05 => Some("Doppler mean trace"),
            0x06 => Some("Doppler mode trace"),
            0x07 => Some("Doppler max trace"),
            0x08 => Some("volume trace"),
            0x0A => Some("ECG trace"),
            0x0B => Some("pulse trace"),
            0x0C => Some("phonocardiogram trace"),
            0x0D => Some("gray bar"),
            0x0E => Some("color bar"),
            0x0F => Some("integrated backscatter"),
            0x10 => Some("area trace"),
            0x11 => Some("d(area)/dt"),
            0x12 => Some("other physiological input"),
            _ => None,
        }
    }
}

/// Attributes that identify the patient or the visit. `inspect` prints them only with
/// `--show-phi`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProtectedHealthInformation {
    /// (keyword, value) pairs of the attributes present, in tag order.
    pub attributes: Vec<(&'static str, String)>,
}

/// What a DICOM file declares about its images, validated for decoding.
#[derive(Clone, Debug, Serialize)]
pub struct DicomHeader {
    pub transfer_syntax: TransferSyntaxName,
    #[serde(skip)]
    pub encoding: PixelEncoding,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub modality: Option<String>,
    pub sop_class_uid: Option<String>,
    pub rows: u32,
    pub columns: u32,
    /// Number of Frames (0028,0008), 1 when absent.
    pub frames: u64,
    pub photometric: Photometric,
    pub samples_per_pixel: u16,
    /// 8 or 16.
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    /// 0 unsigned, 1 two's complement.
    pub pixel_representation: u16,
    /// 0 when samples are interleaved per pixel, 1 when each colour plane follows the other.
    pub planar_configuration: u16,
    pub window: Option<Window>,
    /// Rescale Slope (0028,1053) and Rescale Intercept (0028,1052) when present.
    pub rescale: Option<(f64, f64)>,
    pub timing: FrameTiming,
    pub regions: Vec<UltrasoundRegion>,
    #[serde(skip)]
    pub phi: ProtectedHealthInformation,
}

impl DicomHeader {
    /// Bytes of one stored sample: 1 or 2.
    pub fn bytes_per_sample(&self) -> usize {
        usize::from(self.bits_allocated / 8)
    }

    /// Bytes one uncompressed frame occupies in the pixel data element.
    pub fn native_frame_len(&self) -> u64 {
        let pixels = u64::from(self.rows) * u64::from(self.columns);
        let samples = if self.photometric == Photometric::YbrFull422 {
            // Two Y samples, one Cb and one Cr for every two pixels.
            pixels * 2
        } else {
            pixels * u64::from(self.samples_per_pixel)
        };
        samples * self.bytes_per_sample() as u64
    }
}

/// Maps a transfer syntax UID to its decoding path, or rejects it as unsupported.
pub fn classify_transfer_syntax(
    uid: &str,
) -> Result<(TransferSyntaxName, PixelEncoding), SourceError> {
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

    let name = TransferSyntaxRegistry
        .get(uid)
        .map_or("unknown transfer syntax", |ts| ts.name())
        .to_string();
    let syntax = TransferSyntaxName {
        uid: uid.to_string(),
        name,
    };
    let encoding = match uid {
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" => PixelEncoding::Native { big_endian: false },
        "1.2.840.10008.1.2.2" => PixelEncoding::Native { big_endian: true },
        "1.2.840.10008.1.2.5" => PixelEncoding::RleLossless,
        "1.2.840.10008.1.2.4.50" => PixelEncoding::JpegBaseline,
        _ => {
            return Err(SourceError::Unsupported(format!(
                "transfer syntax {} ({}) is not supported: convert the file to Explicit VR \
                 Little Endian, RLE Lossless or JPEG Baseline",
                syntax.name, syntax.uid
            )))
        }
    };
    Ok((syntax, encoding))
}

/// Reads and validates the image attributes of `object`, checking sizes against
/// `options.limits` and resolving the frame timing.
pub fn parse_header(
    object: &InMemDicomObject,
    transfer_syntax: TransferSyntaxName,
    encoding: PixelEncoding,
    options: &OpenOptions,
) -> Result<DicomHeader, SourceError> {
    let rows = required_uint(object, tags::ROWS, "Rows")?;
    let columns = required_uint(object, tags::COLUMNS, "Columns")?;
    let frames = number_of_frames(object)?;
    check_limits(&options.limits, rows, columns, frames, object)?;

    let photometric_text =
        optional_string(object, tags::PHOTOMETRIC_INTERPRETATION)?.ok_or_else(|| {
            missing(
                "Photometric Interpretation",
                tags::PHOTOMETRIC_INTERPRETATION,
            )
        })?;
    let photometric = Photometric::parse(&photometric_text)?;
    let samples_per_pixel = required_uint(object, tags::SAMPLES_PER_PIXEL, "Samples per Pixel")?;
    let bits_allocated = required_uint(object, tags::BITS_ALLOCATED, "Bits Allocated")?;
    let bits_stored = optional_uint(object, tags::BITS_STORED)?.unwrap_or(bits_allocated);
    let high_bit = optional_uint(object, tags::HIGH_BIT)?.unwrap_or(bits_stored.saturating_sub(1));
    let pixel_representation = optional_uint(object, tags::PIXEL_REPRESENTATION)?.unwrap_or(0);
    let planar_configuration = optional_uint(object, tags::PLANAR_CONFIGURATION)?.unwrap_or(0);

    let header = DicomHeader {
        transfer_syntax,
        encoding,
        manufacturer: optional_string(object, tags::MANUFACTURER)?,
        model: optional_string(object, tags::MANUFACTURER_MODEL_NAME)?,
        modality: optional_string(object, tags::MODALITY)?,
        sop_class_uid: optional_string(object, tags::SOP_CLASS_UID)?,
        rows: u32::from(rows),
        columns: u32::from(columns),
        frames,
        photometric,
        samples_per_pixel,
        bits_allocated,
        bits_stored,
        high_bit,
        pixel_representation,
        planar_configuration,
        window: window(object),
        rescale: rescale(object),
        timing: FrameTiming::from_header(object, frames, options.fps)?,
        regions: ultrasound_regions(object),
        phi: protected_health_information(object),
    };
    check_sample_layout(&header)?;
    Ok(header)
}

/// Checks the declared frame size and count before any buffer is sized from them.
fn check_limits(
    limits: &Limits,
    rows: u16,
    columns: u16,
    frames: u64,
    object: &InMemDicomObject,
) -> Result<(), SourceError> {
    let samples = optional_uint(object, tags::SAMPLES_PER_PIXEL)?.unwrap_or(1);
    let bits = optional_uint(object, tags::BITS_ALLOCATED)?.unwrap_or(8);
    let stored_bytes = u64::from(samples) * u64::from(bits).div_ceil(8);
    // The decoded frame is at least RGB8 for colour output.
    let bytes_per_pixel = stored_bytes.max(3);
    limits.check_size(u64::from(columns), u64::from(rows), bytes_per_pixel)?;
    limits.check_frames(frames)
}

fn check_sample_layout(header: &DicomHeader) -> Result<(), SourceError> {
    let expected_samples = header.photometric.samples_per_pixel();
    if header.samples_per_pixel != expected_samples {
        return Err(SourceError::Malformed(format!(
            "samples per pixel is {} but {} requires {expected_samples}",
            header.samples_per_pixel,
            header.photometric.as_str()
        )));
    }
    if header.bits_allocated != 8 && header.bits_allocated != 16 {
        return Err(SourceError::Unsupported(format!(
            "bits allocated {} is not supported: only 8 and 16 are",
            header.bits_allocated
        )));
    }
    if header.bits_stored == 0
        || header.bits_stored > header.bits_allocated
        || header.high_bit >= header.bits_allocated
        || header.high_bit + 1 < header.bits_stored
    {
        return Err(SourceError::Malformed(format!(
            "bits stored {} with high bit {} does not fit in {} bits allocated",
            header.bits_stored, header.high_bit, header.bits_allocated
        )));
    }
    if header.pixel_representation > 1 {
        return Err(SourceError::Malformed(format!(
            "pixel representation {} is invalid: it must be 0 or 1",
            header.pixel_representation
        )));
    }
    if header.samples_per_pixel == 3 && header.planar_configuration > 1 {
        return Err(SourceError::Malformed(format!(
            "planar configuration {} is invalid: it must be 0 or 1",
            header.planar_configuration
        )));
    }
    check_encoding_layout(header)
}

fn check_encoding_layout(header: &DicomHeader) -> Result<(), SourceError> {
    let is_native = matches!(header.encoding, PixelEncoding::Native { .. });
    if header.photometric == Photometric::YbrFull422 && is_native {
        if header.columns % 2 != 0 {
            return Err(SourceError::Malformed(format!(
                "YBR_FULL_422 needs an even number of columns, got {}",
                header.columns
            )));
        }
        if header.planar_configuration != 0 {
            return Err(SourceError::Malformed(
                "YBR_FULL_422 needs planar configuration 0".to_string(),
            ));
        }
    }
    if header.encoding == PixelEncoding::JpegBaseline && header.bits_allocated != 8 {
        return Err(SourceError::Malformed(format!(
            "JPEG Baseline carries 8-bit samples, but bits allocated is {}",
            header.bits_allocated
        )));
    }
    Ok(())
}

fn number_of_frames(object: &InMemDicomObject) -> Result<u64, SourceError> {
    let Some(element) = object.get(tags::NUMBER_OF_FRAMES) else {
        return Ok(1);
    };
    let text = element.to_str().unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(1);
    }
    match element.to_int::<i64>() {
        Ok(frames) if frames >= 1 => Ok(frames as u64),
        _ => Err(SourceError::Malformed(format!(
            "number of frames `{}` is invalid: it must be a positive integer",
            text.trim()
        ))),
    }
}

pub(super) fn missing(name: &str, tag: Tag) -> SourceError {
    SourceError::Malformed(format!("missing {name} {tag} in the DICOM header"))
}

fn required_uint(object: &InMemDicomObject, tag: Tag, name: &str) -> Result<u16, SourceError> {
    optional_uint(object, tag)?.ok_or_else(|| missing(name, tag))
}

/// The first value of an unsigned short attribute, `None` when absent or empty.
pub(super) fn optional_uint(
    object: &InMemDicomObject,
    tag: Tag,
) -> Result<Option<u16>, SourceError> {
    let Some(element) = object.get(tag) else {
        return Ok(None);
    };
    if element.value().multiplicity() == 0 {
        return Ok(None);
    }
    element.to_int::<u16>().map(Some).map_err(|e| {
        SourceError::Malformed(format!(
            "attribute {tag} is not an unsigned 16-bit integer: {e}"
        ))
    })
}

/// The value of a text attribute without padding, `None` when absent or empty.
pub(super) fn optional_string(
    object: &InMemDicomObject,
    tag: Tag,
) -> Result<Option<String>, SourceError> {
    let Some(element) = object.get(tag) else {
        return Ok(None);
    };
    let text = element
        .to_str()
        .map_err(|e| SourceError::Malformed(format!("attribute {tag} is not text: {e}")))?;
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

fn first_float(object: &InMemDicomObject, tag: Tag) -> Option<f64> {
    let values = object.get(tag)?.to_multi_float64().ok()?;
    values.first().copied().filter(|v| v.is_finite())
}

fn window(object: &InMemDicomObject) -> Option<Window> {
    let center = first_float(object, tags::WINDOW_CENTER)?;
    let width = first_float(object, tags::WINDOW_WIDTH)?;
    // PS3.3 C.11.2.1.2 requires a width of at least 1.
    (width >= 1.0).then_some(Window { center, width })
}

fn rescale(object: &InMemDicomObject) -> Option<(f64, f64)> {
    let slope = first_float(object, tags::RESCALE_SLOPE)?;
    let intercept = first_float(object, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    (slope != 0.0).then_some((slope, intercept))
}

/// Reads the Sequence of Ultrasound Regions; items without a usable location are skipped
/// with a warning, because regions are only a layout hint.
fn ultrasound_regions(object: &InMemDicomObject) -> Vec<UltrasoundRegion> {
    let Some(items) = object
        .get(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .and_then(|element| element.items())
    else {
        return Vec::new();
    };
    let mut regions = Vec::with_capacity(items.len().min(64));
    for (number, item) in items.iter().enumerate() {
        match ultrasound_region(item) {
            Some(region) => regions.push(region),
            None => {
                log::warn!("ultrasound region {number} has no valid Region Location: skipping it")
            }
        }
    }
    regions
}

fn ultrasound_region(item: &InMemDicomObject) -> Option<UltrasoundRegion> {
    let uint = |tag: Tag| item.get(tag).and_then(|e| e.to_int::<u32>().ok());
    let x0 = uint(tags::REGION_LOCATION_MIN_X0)?;
    let y0 = uint(tags::REGION_LOCATION_MIN_Y0)?;
    let x1 = uint(tags::REGION_LOCATION_MAX_X1)?;
    let y1 = uint(tags::REGION_LOCATION_MAX_Y1)?;
    if x1 < x0 || y1 < y0 || x1 == u32::MAX || y1 == u32::MAX {
        return None;
    }
    let code = |tag: Tag| item.get(tag).and_then(|e| e.to_int::<u16>().ok());
    Some(UltrasoundRegion {
        rect: Rect::new(x0, y0, x1 - x0 + 1, y1 - y0 + 1),
        spatial_format: code(tags::REGION_SPATIAL_FORMAT).unwrap_or(0),
        data_type: code(tags::REGION_DATA_TYPE).unwrap_or(0),
        flags: uint(tags::REGION_FLAGS).unwrap_or(0),
        physical_units_x: code(tags::PHYSICAL_UNITS_X_DIRECTION).unwrap_or(0),
        physical_units_y: code(tags::PHYSICAL_UNITS_Y_DIRECTION).unwrap_or(0),
        physical_delta_x: first_float(item, tags::PHYSICAL_DELTA_X),
        physical_delta_y: first_float(item, tags::PHYSICAL_DELTA_Y),
    })
}

/// Attributes of the Patient, General Study and institution modules that identify a person.
const PHI_TAGS: [(&str, Tag); 12] = [
    ("AccessionNumber", tags::ACCESSION_NUMBER),
    ("InstitutionName", tags::INSTITUTION_NAME),
    ("InstitutionAddress", tags::INSTITUTION_ADDRESS),
    ("ReferringPhysicianName", tags::REFERRING_PHYSICIAN_NAME),
    ("StationName", tags::STATION_NAME),
    ("OperatorsName", tags::OPERATORS_NAME),
    ("PatientName", tags::PATIENT_NAME),
    ("PatientID", tags::PATIENT_ID),
    ("PatientBirthDate", tags::PATIENT_BIRTH_DATE),
    ("PatientSex", tags::PATIENT_SEX),
    ("PatientAddress", tags::PATIENT_ADDRESS),
    ("StudyID", tags::STUDY_ID),
];

fn protected_health_information(object: &InMemDicomObject) -> ProtectedHealthInformation {
    let attributes = PHI_TAGS
        .iter()
        .filter_map(|&(keyword, tag)| {
            let value = optional_string(object, tag).ok().flatten()?;
            Some((keyword, value))
        })
        .collect();
    ProtectedHealthInformation { attributes }
}
