//! Sequence of Ultrasound Regions (0018,6011): the positions of the images, spectra and
//! traces in an ultrasound frame, a layout hint for finding the views in a scanner's screen.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Serialize;

use super::header::first_float;
use crate::geometry::Rect;

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

/// Reads the Sequence of Ultrasound Regions; items without a usable location are skipped
/// with a warning, because regions are only a layout hint.
pub(super) fn ultrasound_regions(object: &InMemDicomObject) -> Vec<UltrasoundRegion> {
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
