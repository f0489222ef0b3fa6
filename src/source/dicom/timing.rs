//! Frame times of a multi-frame DICOM image.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::Serialize;

use crate::source::{SourceError, TimingSource};

/// When each frame is shown, from the first frame of the file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameTiming {
    #[serde(skip)]
    pub source: TimingSource,
    times: FrameTimes,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
enum FrameTimes {
    /// The same interval between all frames, in seconds.
    Interval(f64),
    /// Presentation time of each frame, in seconds.
    Vector(Vec<f64>),
    /// A single frame at time 0.
    Single,
}

impl FrameTiming {
    /// Resolves the timing of `frames` frames: `fps` when given, else the attribute that
    /// Frame Increment Pointer (0028,0009) names, else Frame Time (0018,1063), Frame Time
    /// Vector (0018,1065) or Cine Rate (0018,0040), in that order.
    ///
    /// A Frame Time Vector holds the increments from frame to frame in ms, its first value
    /// being the time of frame 0, so frame `i` is shown at the sum of values `0..=i`.
    ///
    /// Errors: [`SourceError::MissingTiming`] when `frames > 1` and no timing is found,
    /// [`SourceError::Malformed`] for a non-positive or non-finite value or a vector whose
    /// length is not `frames`.
    pub fn from_header(
        object: &InMemDicomObject,
        frames: u64,
        fps: Option<f64>,
    ) -> Result<FrameTiming, SourceError> {
        if let Some(fps) = fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(SourceError::Malformed(format!(
                    "frame rate {fps} is invalid: give a positive number of frames per second"
                )));
            }
            return Ok(FrameTiming {
                source: TimingSource::UserFps,
                times: FrameTimes::Interval(1.0 / fps),
            });
        }

        for tag in timing_attribute_order(object) {
            if let Some(timing) = timing_from_attribute(object, tag, frames)? {
                return Ok(timing);
            }
        }

        if frames > 1 {
            return Err(SourceError::MissingTiming(format!(
                "this DICOM file of {frames} frames"
            )));
        }
        Ok(FrameTiming {
            source: TimingSource::SingleFrame,
            times: FrameTimes::Single,
        })
    }

    /// Presentation time of frame `index` in seconds.
    pub fn time_of(&self, index: u64) -> f64 {
        match &self.times {
            FrameTimes::Interval(interval) => index as f64 * interval,
            FrameTimes::Vector(times) => usize::try_from(index)
                .ok()
                .and_then(|i| times.get(i))
                .copied()
                .unwrap_or(f64::NAN),
            FrameTimes::Single => 0.0,
        }
    }

    /// Nominal frames per second: the inverse of the mean interval. `None` for a single
    /// frame or a vector whose frames all share one time.
    pub fn nominal_fps(&self) -> Option<f64> {
        match &self.times {
            FrameTimes::Interval(interval) => Some(1.0 / interval),
            FrameTimes::Vector(times) => {
                let span = times.last()? - times.first()?;
                (span > 0.0).then(|| (times.len() - 1) as f64 / span)
            }
            FrameTimes::Single => None,
        }
    }

    /// Interval between frames in seconds when it is constant.
    pub fn interval_s(&self) -> Option<f64> {
        match self.times {
            FrameTimes::Interval(interval) => Some(interval),
            _ => None,
        }
    }
}

/// The timing attributes to try, the one Frame Increment Pointer names first.
fn timing_attribute_order(object: &InMemDicomObject) -> Vec<Tag> {
    let mut order = vec![tags::FRAME_TIME, tags::FRAME_TIME_VECTOR, tags::CINE_RATE];
    let pointer = object
        .get(tags::FRAME_INCREMENT_POINTER)
        .and_then(|element| element.value().to_tag().ok());
    if let Some(position) = pointer.and_then(|tag| order.iter().position(|&t| t == tag)) {
        let tag = order.remove(position);
        order.insert(0, tag);
    }
    order
}

fn timing_from_attribute(
    object: &InMemDicomObject,
    tag: Tag,
    frames: u64,
) -> Result<Option<FrameTiming>, SourceError> {
    let Some(element) = object.get(tag) else {
        return Ok(None);
    };
    let values = element.to_multi_float64().map_err(|e| {
        SourceError::Malformed(format!("timing attribute {tag} is not numeric: {e}"))
    })?;
    if values.is_empty() {
        return Ok(None);
    }

    if tag == tags::FRAME_TIME_VECTOR {
        return frame_time_vector(&values, frames).map(Some);
    }
    let value = values[0];
    if !(value.is_finite() && value > 0.0) {
        return Err(SourceError::Malformed(format!(
            "timing attribute {tag} is {value}: it must be positive"
        )));
    }
    let (source, interval) = if tag == tags::FRAME_TIME {
        (TimingSource::FrameTime, value / 1000.0)
    } else {
        (TimingSource::CineRate, 1.0 / value)
    };
    Ok(Some(FrameTiming {
        source,
        times: FrameTimes::Interval(interval),
    }))
}

fn frame_time_vector(increments_ms: &[f64], frames: u64) -> Result<FrameTiming, SourceError> {
    if increments_ms.len() as u64 != frames {
        return Err(SourceError::Malformed(format!(
            "frame time vector {} has {} values for {frames} frames",
            tags::FRAME_TIME_VECTOR,
            increments_ms.len()
        )));
    }
    let mut times = Vec::with_capacity(increments_ms.len());
    let mut elapsed_ms = 0.0;
    for (index, &increment) in increments_ms.iter().enumerate() {
        if !(increment.is_finite() && increment >= 0.0) {
            return Err(SourceError::Malformed(format!(
                "frame time vector value {increment} ms of frame {index} is invalid: it must \
                 be zero or positive"
            )));
        }
        elapsed_ms += increment;
        times.push(elapsed_ms / 1000.0);
    }
    Ok(FrameTiming {
        source: TimingSource::FrameTimeVector,
        times: FrameTimes::Vector(times),
    })
}
