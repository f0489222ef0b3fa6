//! The `--source` argument of the live pipeline.
//!
//! Forms: `v4l2:/dev/videoN[:WIDTHxHEIGHT[@FPS][:FOURCC]]`, `file:PATH` and
//! `phantom[:SEED]`.

use std::path::PathBuf;
use std::str::FromStr;

use super::format::FourCc;
use super::CaptureError;
use crate::source::Limits;

/// Where the live pipeline reads frames from.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A V4L2 capture device with the format to request.
    V4l2(V4l2Request),
    /// A recorded cine (DICOM, Y4M or a folder of PNG frames).
    File(PathBuf),
    /// The built-in synthetic exam, with its random seed when given.
    Phantom { seed: Option<u64> },
}

/// The format to request from a V4L2 device. What the driver grants may differ, and the
/// decoder follows what it grants.
#[derive(Clone, Debug, PartialEq)]
pub struct V4l2Request {
    pub path: PathBuf,
    /// Width and height in pixels.
    pub size: Option<(u32, u32)>,
    /// Frames per second.
    pub fps: Option<f64>,
    pub fourcc: Option<FourCc>,
}

const FORMS: &str = "v4l2:/dev/videoN[:WIDTHxHEIGHT[@FPS][:FOURCC]], file:PATH or phantom[:SEED]";

impl FromStr for SourceSpec {
    type Err = CaptureError;

    /// Parses a `--source` value.
    ///
    /// # Errors
    /// [`CaptureError::Parameter`] naming the part that is invalid and the accepted forms.
    fn from_str(text: &str) -> Result<SourceSpec, CaptureError> {
        let (scheme, rest) = match text.split_once(':') {
            Some((scheme, rest)) => (scheme, Some(rest)),
            None => (text, None),
        };
        match (scheme, rest) {
            ("v4l2", Some(rest)) => parse_v4l2(rest).map(SourceSpec::V4l2),
            ("file", Some(path)) if !path.is_empty() => Ok(SourceSpec::File(path.into())),
            ("phantom", None) => Ok(SourceSpec::Phantom { seed: None }),
            ("phantom", Some(seed)) => {
                let seed = seed.parse().map_err(|_| {
                    invalid(text, &format!("seed {seed:?} is not an unsigned integer"))
                })?;
                Ok(SourceSpec::Phantom { seed: Some(seed) })
            }
            _ => Err(invalid(text, "unknown form")),
        }
    }
}

fn parse_v4l2(rest: &str) -> Result<V4l2Request, CaptureError> {
    let text = format!("v4l2:{rest}");
    let mut parts = rest.split(':');
    let path = parts.next().unwrap_or_default();
    if path.is_empty() {
        return Err(invalid(&text, "the device path is missing"));
    }
    let mut request = V4l2Request {
        path: path.into(),
        size: None,
        fps: None,
        fourcc: None,
    };

    if let Some(mode) = parts.next() {
        let (size, fps) = match mode.split_once('@') {
            Some((size, fps)) => (size, Some(parse_fps(&text, fps)?)),
            None => (mode, None),
        };
        request.size = Some(parse_size(&text, size)?);
        request.fps = fps;
    }
    if let Some(fourcc) = parts.next() {
        request.fourcc = Some(FourCc::parse(fourcc)?);
    }
    if parts.next().is_some() {
        return Err(invalid(&text, "too many ':'-separated parts"));
    }
    Ok(request)
}

fn parse_size(text: &str, size: &str) -> Result<(u32, u32), CaptureError> {
    let parsed = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
    let Some((width, height)) = parsed else {
        return Err(invalid(text, &format!("size {size:?} is not WIDTHxHEIGHT")));
    };
    Limits::default()
        .check_size(u64::from(width), u64::from(height), 3)
        .map_err(|e| invalid(text, &e.to_string()))?;
    Ok((width, height))
}

fn parse_fps(text: &str, fps: &str) -> Result<f64, CaptureError> {
    match fps.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 && value <= 1000.0 => Ok(value),
        _ => Err(invalid(
            text,
            &format!("frame rate {fps:?} is not a number of frames per second in (0, 1000]"),
        )),
    }
}

fn invalid(text: &str, problem: &str) -> CaptureError {
    CaptureError::Parameter(format!(
        "invalid source {text:?}: {problem}; expected {FORMS}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SourceSpec, CaptureError> {
        text.parse()
    }

    #[test]
    fn v4l2_forms() {
        let full = parse("v4l2:/dev/video2:1920x1080@59.94:YUYV").unwrap();
        assert_eq!(
            full,
            SourceSpec::V4l2(V4l2Request {
                path: "/dev/video2".into(),
                size: Some((1920, 1080)),
                fps: Some(59.94),
                fourcc: Some(FourCc(*b"YUYV")),
            })
        );
        let bare = parse("v4l2:/dev/video0").unwrap();
        let SourceSpec::V4l2(bare) = bare else {
            panic!("not a V4L2 source: {bare:?}");
        };
        assert_eq!(bare.size, None);
        assert_eq!(bare.fourcc, None);
        let SourceSpec::V4l2(sized) = parse("v4l2:/dev/video0:640x480:MJPG").unwrap() else {
            panic!("not a V4L2 source");
        };
        assert_eq!(sized.size, Some((640, 480)));
        assert_eq!(sized.fps, None);
        assert_eq!(sized.fourcc, Some(FourCc(*b"MJPG")));
    }

    #[test]
    fn file_and_phantom_forms() {
        assert_eq!(
            parse("file:/tmp/exam.dcm").unwrap(),
            SourceSpec::File("/tmp/exam.dcm".into())
        );
        assert_eq!(
            parse("phantom").unwrap(),
            SourceSpec::Phantom { seed: None }
        );
        assert_eq!(
            parse("phantom:7").unwrap(),
            SourceSpec::Phantom { seed: Some(7) }
        );
    }

    #[test]
    fn invalid_forms_rejected() {
        for text in [
            "",
            "/dev/video0",
            "v4l2:",
            "v4l2:/dev/video0:640",
            "v4l2:/dev/video0:640x0",
            "v4l2:/dev/video0:99999x480",
            "v4l2:/dev/video0:640x480@0",
            "v4l2:/dev/video0:640x480@fast",
            "v4l2:/dev/video0:640x480:TOOLONG",
            "v4l2:/dev/video0:640x480:YUYV:extra",
            "file:",
            "phantom:-1",
            "rtsp://camera",
        ] {
            let error = parse(text).expect_err(text);
            assert!(matches!(error, CaptureError::Parameter(_)), "{text}");
        }
    }

    #[test]
    fn error_names_value_and_forms() {
        let message = parse("v4l2:/dev/video0:640x480@fast")
            .unwrap_err()
            .to_string();
        assert!(message.contains("\"fast\""), "{message}");
        assert!(message.contains("phantom[:SEED]"), "{message}");
    }
}
