//! Board profiles: the options of `ceus-edge run` for one board, as a flat TOML table
//! whose keys are the options' long names (`source`, `display`, `threads`, `model`,
//! `signature`, `layout_profile`, `roi`, `dynamic_range`, `control`, `events`, `record`),
//! plus an optional `name`.
//!
//! Options given on the command line win over the profile. Relative paths in a profile
//! are relative to the profile's folder, except a bare `model` file name, which is looked
//! up in the models folder.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capture::spec::SourceSpec;
use crate::display::DisplaySpec;
use crate::geometry::Rect;
use crate::tic::linearise::{MAX_DYNAMIC_RANGE_DB, MIN_DYNAMIC_RANGE_DB};

/// Largest profile read; a real one is a few hundred bytes.
const MAX_PROFILE_BYTES: u64 = 64 * 1024;

/// Error from reading a board profile.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("cannot read board profile {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("board profile {} is invalid: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// One board's settings for `ceus-edge run`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    /// A name for logs, such as "Raspberry Pi 5".
    pub name: Option<String>,
    /// A `--source` value.
    pub source: String,
    /// A `--display` value: `none` or `fb:/dev/fbN`.
    pub display: Option<String>,
    /// Threads for the feature extractor.
    pub threads: Option<u16>,
    /// Feature extractor: a file name in the models folder, or a path.
    pub model: Option<PathBuf>,
    pub signature: Option<PathBuf>,
    pub layout_profile: Option<PathBuf>,
    /// A `--roi` value: `auto` or X,Y,W,H in full-frame pixels.
    pub roi: Option<String>,
    /// A `--dynamic-range` value: the scanner's log compression in dB.
    pub dynamic_range: Option<f64>,
    /// A `--control` value: `stdin` or `unix:PATH`.
    pub control: Option<String>,
    /// A `--events` value: `-` or a file.
    pub events: Option<String>,
    /// A `--record` folder.
    pub record: Option<PathBuf>,
}

impl BoardProfile {
    /// Reads and checks a profile, and resolves its relative paths.
    ///
    /// # Errors
    /// [`BoardError::Io`] when the file cannot be read, and [`BoardError::Invalid`] for
    /// bad TOML, an unknown key, or a value the matching option would reject.
    pub fn load(path: &Path) -> Result<BoardProfile, BoardError> {
        let io_error = |source| BoardError::Io {
            path: path.to_path_buf(),
            source,
        };
        let invalid = |message: String| BoardError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let length = std::fs::metadata(path).map_err(io_error)?.len();
        if length > MAX_PROFILE_BYTES {
            return Err(invalid(format!(
                "{length} bytes exceed the limit of {MAX_PROFILE_BYTES}"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(io_error)?;
        let mut profile: BoardProfile =
            toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        profile.check().map_err(invalid)?;
        profile.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        self.source
            .parse::<SourceSpec>()
            .map_err(|e| format!("source: {e}"))?;
        if let Some(display) = &self.display {
            display
                .parse::<DisplaySpec>()
                .map_err(|e| format!("display: {e}"))?;
        }
        if self.threads == Some(0) || self.threads.is_some_and(|t| t > 64) {
            return Err(format!(
                "threads {} is out of range: give 1 to 64",
                self.threads.unwrap_or_default()
            ));
        }
        if let Some(roi) = &self.roi {
            if !roi.eq_ignore_ascii_case("auto") {
                roi.parse::<Rect>()
                    .map_err(|e| format!("roi `{roi}`: {e}, or `auto`"))?;
            }
        }
        if let Some(db) = self.dynamic_range {
            if !(MIN_DYNAMIC_RANGE_DB..=MAX_DYNAMIC_RANGE_DB).contains(&db) {
                return Err(format!(
                    "dynamic_range {db} dB is out of range: give {MIN_DYNAMIC_RANGE_DB} to \
                     {MAX_DYNAMIC_RANGE_DB} dB"
                ));
            }
        }
        if let Some(control) = &self.control {
            if control != "stdin" && !control.starts_with("unix:") {
                return Err(format!(
                    "control `{control}` is invalid: expected stdin or unix:PATH"
                ));
            }
        }
        Ok(())
    }

    fn resolve_paths(&mut self, folder: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        };
        if let Some(model) = &mut self.model {
            if model.components().count() > 1 {
                resolve(model);
            }
        }
        for path in [
            &mut self.signature,
            &mut self.layout_profile,
            &mut self.record,
        ]
        .into_iter()
        .flatten()
        {
            resolve(path);
        }
        if let Some(events) = &mut self.events {
            if events != "-" && Path::new(events.as_str()).is_relative() {
                *events = folder.join(&*events).display().to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<BoardProfile, BoardError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("board.toml");
        std::fs::write(&path, text).unwrap();
        BoardProfile::load(&path)
    }

    #[test]
    fn full_profile_loads_with_paths_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("board.toml");
        std::fs::write(
            &path,
            r#"
name = "test board"
source = "v4l2:/dev/video0:1920x1080@30:YUYV"
display = "fb:/dev/fb0"
threads = 4
model = "densenet201-int8.onnx"
layout_profile = "layout.toml"
roi = "auto"
dynamic_range = 55.0
control = "unix:/run/ceus-edge/control.sock"
events = "/var/lib/ceus-edge/events.jsonl"
"#,
        )
        .unwrap();
        let profile = BoardProfile::load(&path).unwrap();
        assert_eq!(profile.threads, Some(4));
        assert_eq!(profile.model, Some(PathBuf::from("densenet201-int8.onnx")));
        assert_eq!(profile.layout_profile, Some(dir.path().join("layout.toml")));
        assert_eq!(profile.roi.as_deref(), Some("auto"));
        assert_eq!(profile.dynamic_range, Some(55.0));
        assert_eq!(
            profile.events.as_deref(),
            Some("/var/lib/ceus-edge/events.jsonl")
        );
    }

    #[test]
    fn invalid_profiles_name_the_key() {
        let cases = [
            ("display = \"none\"", "missing field `source`"),
            ("source = \"phantom\"\nspeed = 3", "unknown field `speed`"),
            ("source = \"usb:0\"", "source:"),
            ("source = \"phantom\"\ndisplay = \"hdmi\"", "display:"),
            ("source = \"phantom\"\nthreads = 0", "threads 0"),
            ("source = \"phantom\"\nroi = \"1,2,3\"", "roi `1,2,3`"),
            (
                "source = \"phantom\"\ndynamic_range = 0.5",
                "dynamic_range 0.5 dB",
            ),
            (
                "source = \"phantom\"\ncontrol = \"tcp:1\"",
                "control `tcp:1`",
            ),
        ];
        for (text, expected) in cases {
            let error = load(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn missing_profile_is_an_io_error() {
        let error = BoardProfile::load(Path::new("/nonexistent/board.toml")).unwrap_err();
        assert!(matches!(error, BoardError::Io { .. }), "{error}");
    }
}
