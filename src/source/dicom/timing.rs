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
    /// A Frame Time Vector contains the increments from frame to frame in ms, and its first
    /// value is the time of frame 0, so frame `i` is shown at the sum of values `0..=i`.
    ///
    /// Errors: [`SourceError::MissingTiming`] when `frames > 1` and no timing is found,
    /// [`SourceError::Malformed`] for a non-positive or non-finite value or a vector whose
    /// length is not `frames`. A single frame with invalid timing gets
    /// [`TimingSource::SingleFrame`] instead, because it has no time axis.
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
            match timing_from_attribute(object, tag, frames) {
                Ok(Some(timing)) => return Ok(timing),
                Ok(None) => {}
                // A single frame has no time axis, so a bad timing value does not matter.
                Err(error) if frames <= 1 => {
                    log::debug!("ignoring the timing of a single frame: {error}");
                }
                Err(error) => return Err(error),
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

/// Lists the timing attributes to try, the one Frame Increment Pointer names first.
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

#[cfg(test)]
mod tests {
    use dicom_core::{DataElement, PrimitiveValue, VR};

    use super::*;

    fn object(elements: Vec<(Tag, VR, PrimitiveValue)>) -> InMemDicomObject {
        InMemDicomObject::from_element_iter(
            elements
                .into_iter()
                .map(|(tag, vr, value)| DataElement::new(tag, vr, value)),
        )
    }

    fn text(value: &str) -> PrimitiveValue {
        PrimitiveValue::from(value)
    }

    fn texts(values: &[&str]) -> PrimitiveValue {
        PrimitiveValue::Strs(values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn pointer_picks_vector_over_frame_time() {
        let header = object(vec![
            (tags::FRAME_TIME, VR::DS, text("40")),
            (tags::FRAME_TIME_VECTOR, VR::DS, texts(&["0", "100", "100"])),
            (
                tags::FRAME_INCREMENT_POINTER,
                VR::AT,
                PrimitiveValue::Tags(vec![tags::FRAME_TIME_VECTOR].into()),
            ),
        ]);
        let timing = FrameTiming::from_header(&header, 3, None).unwrap();
        assert_eq!(timing.source, TimingSource::FrameTimeVector);
        assert_eq!(timing.time_of(2), 0.2);
    }

    #[test]
    fn frame_time_before_cine_rate() {
        let header = object(vec![
            (tags::FRAME_TIME, VR::DS, text("40")),
            (tags::CINE_RATE, VR::IS, text("10")),
        ]);
        let timing = FrameTiming::from_header(&header, 3, None).unwrap();
        assert_eq!(timing.source, TimingSource::FrameTime);
        assert_eq!(timing.time_of(1), 0.04);
    }

    #[test]
    fn cine_rate_alone() {
        let header = object(vec![(tags::CINE_RATE, VR::IS, text("20"))]);
        let timing = FrameTiming::from_header(&header, 3, None).unwrap();
        assert_eq!(timing.source, TimingSource::CineRate);
        assert_eq!(timing.time_of(2), 0.1);
        assert_eq!(timing.nominal_fps(), Some(20.0));
    }

    #[test]
    fn fps_overrides_file_timing() {
        let header = object(vec![(tags::FRAME_TIME, VR::DS, text("40"))]);
        let timing = FrameTiming::from_header(&header, 3, Some(50.0)).unwrap();
        assert_eq!(timing.source, TimingSource::UserFps);
        assert_eq!(timing.time_of(1), 0.02);
    }

    #[test]
    fn invalid_timing_values_rejected() {
        let zero = object(vec![(tags::FRAME_TIME, VR::DS, text("0"))]);
        let error = FrameTiming::from_header(&zero, 3, None).unwrap_err();
        assert!(matches!(error, SourceError::Malformed(_)), "{error}");

        let short = object(vec![(
            tags::FRAME_TIME_VECTOR,
            VR::DS,
            texts(&["0", "100"]),
        )]);
        let error = FrameTiming::from_header(&short, 3, None).unwrap_err();
        assert!(matches!(error, SourceError::Malformed(_)), "{error}");

        let error = FrameTiming::from_header(&object(vec![]), 3, Some(-1.0)).unwrap_err();
        assert!(matches!(error, SourceError::Malformed(_)), "{error}");
    }

    #[test]
    fn single_frame_needs_no_timing() {
        let timing = FrameTiming::from_header(&object(vec![]), 1, None).unwrap();
        assert_eq!(timing.source, TimingSource::SingleFrame);
        assert_eq!(timing.time_of(0), 0.0);

        let zero = object(vec![(tags::FRAME_TIME, VR::DS, text("0"))]);
        let timing = FrameTiming::from_header(&zero, 1, None).unwrap();
        assert_eq!(timing.source, TimingSource::SingleFrame);

        let error = FrameTiming::from_header(&object(vec![]), 2, None).unwrap_err();
        assert!(matches!(error, SourceError::MissingTiming(_)), "{error}");
    }
}
