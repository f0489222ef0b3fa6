//! Layout profiles: the views of one scanner model's screen, written down once.
//!
//! A profile is a TOML file with rectangles as `[x, y, w, h]` in full-frame pixels:
//!
//! ```toml
//! # The contrast (or only) view: required.
//! contrast_view = [968, 150, 900, 700]
//! # The B-mode tissue view of a dual layout: optional.
//! bmode_view = [52, 150, 900, 700]
//! # Rectangles inside the contrast view to leave out of every ROI, such as a depth
//! # scale or a focus marker drawn over the image: optional.
//! exclude = [[1840, 150, 28, 700]]
//! ```
//!
//! `board/layout-profile.example.toml` is a commented example.

use std::path::Path;

use serde::Deserialize;

use super::{Layout, LayoutError, LayoutKind};
use crate::geometry::Rect;

/// The contents of a layout profile.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayoutProfile {
    pub contrast_view: [u32; 4],
    #[serde(default)]
    pub bmode_view: Option<[u32; 4]>,
    #[serde(default)]
    pub exclude: Vec<[u32; 4]>,
}

impl LayoutProfile {
    /// Reads and parses a profile file.
    ///
    /// Errors with [`LayoutError::Profile`] naming the file when it cannot be read or
    /// is not a valid profile.
    pub fn read(path: &Path) -> Result<LayoutProfile, LayoutError> {
        let profile_error = |reason: String| LayoutError::Profile {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| profile_error(e.to_string()))?;
        LayoutProfile::parse(&text).map_err(profile_error)
    }

    /// Parses profile text; the error is the TOML parser's message on one line.
    pub fn parse(text: &str) -> Result<LayoutProfile, String> {
        toml::from_str(text).map_err(|e| e.message().replace('\n', " "))
    }

    /// Builds the [`LayoutKind::Profile`] layout for `width` x `height` frames.
    ///
    /// Errors with [`LayoutError::InvalidRect`] when a view does not fit the frames.
    pub fn to_layout(&self, width: u32, height: u32) -> Result<Layout, LayoutError> {
        let rect = |[x, y, w, h]: [u32; 4]| Rect::new(x, y, w, h);
        Layout::with_views(
            LayoutKind::Profile,
            width,
            height,
            rect(self.contrast_view),
            self.bmode_view.map(rect),
            self.exclude.iter().copied().map(rect).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_parses_all_fields() {
        let text = "contrast_view = [100, 10, 80, 60]\nbmode_view = [10, 10, 80, 60]\n\
                    exclude = [[170, 10, 10, 60]]\n";
        let profile = LayoutProfile::parse(text).unwrap();
        let layout = profile.to_layout(200, 100).unwrap();
        assert_eq!(layout.kind, LayoutKind::Profile);
        assert_eq!(layout.bmode, Some(Rect::new(10, 10, 80, 60)));
        assert_eq!(layout.mask().count(), 70 * 60);
    }

    #[test]
    fn profile_rejects_unknown_and_missing_fields() {
        assert!(LayoutProfile::parse("contrast_view = [1, 2, 3, 4]\ncolour = 1\n").is_err());
        assert!(LayoutProfile::parse("bmode_view = [1, 2, 3, 4]\n").is_err());
        assert!(LayoutProfile::parse("contrast_view = [1, 2, 3]\n").is_err());
    }

    #[test]
    fn profile_view_must_fit_frame() {
        let profile = LayoutProfile::parse("contrast_view = [150, 0, 80, 60]\n").unwrap();
        assert!(profile.to_layout(200, 100).is_err());
    }

    #[test]
    fn example_profile_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/board/layout-profile.example.toml"
        );
        let profile = LayoutProfile::read(Path::new(path)).unwrap();
        assert!(profile.to_layout(1920, 1080).is_ok());
    }
}
