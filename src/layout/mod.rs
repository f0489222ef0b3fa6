//! Where the ultrasound views sit inside the scanner's screen.
//!
//! A [`Layout`] names the contrast view (the only place a time-intensity curve may be
//! measured), an optional B-mode view (the tissue reference used for motion tracking)
//! and a [`ViewMask`] of the contrast-view pixels inside the ultrasound sector. It comes
//! from detection over the first frames ([`LayoutDetector`]), a TOML profile
//! ([`LayoutProfile`]), rectangles given on the command line, or, failing all of these,
//! the whole image ([`Layout::whole_frame`]).

mod detect;
mod profile;

pub use detect::{DetectSettings, LayoutDetector};
pub use profile::LayoutProfile;

use serde::Serialize;

use crate::geometry::Rect;

/// Error from building a layout, split by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A rectangle given by the caller does not fit the frame or the other views.
    #[error("{0}")]
    InvalidRect(String),
    /// A layout profile could not be read or parsed.
    #[error("cannot read layout profile {path}: {reason}")]
    Profile { path: String, reason: String },
    /// Frames pushed to the detector do not match its frame size.
    #[error("frame of {got_width}x{got_height} does not match the layout size {width}x{height}")]
    FrameSize {
        width: u32,
        height: u32,
        got_width: u32,
        got_height: u32,
    },
}

/// Origin of a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// Detected: B-mode view on the left, contrast view on the right, equal sizes.
    Dual,
    /// Detected: one ultrasound view.
    Single,
    /// Given as rectangles on the command line or through the API.
    Manual,
    /// Read from a layout profile.
    Profile,
    /// No view found: the whole image is the view.
    None,
}

/// One run of mask pixels on a row, in full-frame coordinates: `x_start..x_end` on row `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub y: u32,
    pub x_start: u32,
    pub x_end: u32,
}

/// The contrast-view pixels that belong to the ultrasound image, row-major over the
/// view's rectangle.
#[derive(Clone, Debug)]
pub struct ViewMask {
    view: Rect,
    inside: Vec<bool>,
}

impl ViewMask {
    /// Builds a mask that keeps every pixel of `view`.
    pub fn full(view: Rect) -> ViewMask {
        ViewMask {
            view,
            inside: vec![true; view.area() as usize],
        }
    }

    /// Builds a mask from one flag per view pixel, row-major. Returns `None` when the length
    /// does not match the view's area.
    pub fn from_flags(view: Rect, inside: Vec<bool>) -> Option<ViewMask> {
        (inside.len() as u64 == view.area()).then_some(ViewMask { view, inside })
    }

    pub fn view(&self) -> Rect {
        self.view
    }

    /// Checks whether the full-frame pixel (`x`, `y`) is inside the mask; pixels outside the
    /// view are not.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        let inside_view = x >= self.view.x
            && y >= self.view.y
            && u64::from(x) < self.view.right()
            && u64::from(y) < self.view.bottom();
        if !inside_view {
            return false;
        }
        let offset = (y - self.view.y) as usize * self.view.w as usize + (x - self.view.x) as usize;
        self.inside[offset]
    }

    /// Number of pixels inside the mask.
    pub fn count(&self) -> u64 {
        self.inside.iter().filter(|&&inside| inside).count() as u64
    }

    /// Share of the view's pixels inside the mask, from 0 to 1.
    pub fn fraction(&self) -> f64 {
        self.count() as f64 / self.view.area().max(1) as f64
    }

    /// Clears every pixel of the view that lies in `rect`.
    pub fn exclude(&mut self, rect: &Rect) {
        for y in rect.y..rect.bottom().min(self.view.bottom()) as u32 {
            for x in rect.x..rect.right().min(self.view.right()) as u32 {
                if x >= self.view.x && y >= self.view.y {
                    let offset = (y - self.view.y) as usize * self.view.w as usize
                        + (x - self.view.x) as usize;
                    self.inside[offset] = false;
                }
            }
        }
    }

    /// Runs of mask pixels inside `roi`, top to bottom and left to right. `roi` is
    /// clipped to the view.
    pub fn spans(&self, roi: &Rect) -> Vec<Span> {
        let mut spans = Vec::new();
        let y_end = roi.bottom().min(self.view.bottom()) as u32;
        let x_end = roi.right().min(self.view.right()) as u32;
        for y in roi.y.max(self.view.y)..y_end {
            let mut start = None;
            for x in roi.x.max(self.view.x)..x_end {
                match (self.contains(x, y), start) {
                    (true, None) => start = Some(x),
                    (false, Some(x_start)) => {
                        spans.push(Span {
                            y,
                            x_start,
                            x_end: x,
                        });
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(x_start) = start {
                spans.push(Span { y, x_start, x_end });
            }
        }
        spans
    }
}

/// The views of a scanner screen and the sector mask of the contrast view.
#[derive(Clone, Debug)]
pub struct Layout {
    pub kind: LayoutKind,
    /// Frame size the rectangles refer to.
    pub frame_width: u32,
    pub frame_height: u32,
    /// The contrast (or only) view.
    pub contrast: Rect,
    /// The B-mode tissue view of a dual layout.
    pub bmode: Option<Rect>,
    /// Rectangles removed from the mask (annotations drawn inside the view).
    pub exclusions: Vec<Rect>,
    mask: ViewMask,
}

impl Layout {
    /// Builds a layout with the whole `width` x `height` image as the only view, every pixel in the mask.
    pub fn whole_frame(width: u32, height: u32) -> Layout {
        let contrast = Rect::new(0, 0, width, height);
        Layout {
            kind: LayoutKind::None,
            frame_width: width,
            frame_height: height,
            contrast,
            bmode: None,
            exclusions: Vec::new(),
            mask: ViewMask::full(contrast),
        }
    }

    /// Builds a layout from given rectangles, with a full mask minus `exclusions`.
    ///
    /// Errors with [`LayoutError::InvalidRect`] when a view does not fit the frame or
    /// the two views overlap.
    pub fn with_views(
        kind: LayoutKind,
        width: u32,
        height: u32,
        contrast: Rect,
        bmode: Option<Rect>,
        exclusions: Vec<Rect>,
    ) -> Result<Layout, LayoutError> {
        check_fits("contrast view", &contrast, width, height)?;
        if let Some(bmode) = &bmode {
            check_fits("B-mode view", bmode, width, height)?;
            if overlaps(bmode, &contrast) {
                return Err(LayoutError::InvalidRect(format!(
                    "B-mode view {bmode} overlaps contrast view {contrast}: give views \
                     that do not share pixels"
                )));
            }
        }
        let mut layout = Layout {
            kind,
            frame_width: width,
            frame_height: height,
            contrast,
            bmode,
            exclusions,
            mask: ViewMask::full(contrast),
        };
        layout.apply_exclusions();
        Ok(layout)
    }

    pub fn mask(&self) -> &ViewMask {
        &self.mask
    }

    /// Replaces the sector mask; exclusions are applied again. A mask for another
    /// rectangle than the contrast view is ignored.
    pub fn set_mask(&mut self, mask: ViewMask) {
        if mask.view() == self.contrast {
            self.mask = mask;
            self.apply_exclusions();
        }
    }

    /// Summarises the rectangles and mask for JSON output.
    pub fn report(&self) -> LayoutReport {
        LayoutReport {
            kind: self.kind,
            contrast_view: self.contrast.to_array(),
            bmode_view: self.bmode.map(Rect::to_array),
            exclusions: self.exclusions.iter().map(|r| r.to_array()).collect(),
            mask_fraction: self.mask.fraction(),
        }
    }

    fn apply_exclusions(&mut self) {
        for rect in &self.exclusions {
            self.mask.exclude(rect);
        }
    }
}

/// Kind of a [`Layout`], as written in JSON reports.
#[derive(Clone, Debug, Serialize)]
pub struct LayoutReport {
    pub kind: LayoutKind,
    /// `[x, y, w, h]` in full-frame pixels.
    pub contrast_view: [u32; 4],
    pub bmode_view: Option<[u32; 4]>,
    pub exclusions: Vec<[u32; 4]>,
    /// Share of the contrast view inside the sector mask, from 0 to 1.
    pub mask_fraction: f64,
}

fn check_fits(name: &str, rect: &Rect, width: u32, height: u32) -> Result<(), LayoutError> {
    if rect.fits_in(width, height) {
        Ok(())
    } else {
        Err(LayoutError::InvalidRect(format!(
            "{name} {rect} does not fit the {width}x{height} frame: give X,Y,W,H inside it"
        )))
    }
}

fn overlaps(a: &Rect, b: &Rect) -> bool {
    u64::from(a.x) < b.right()
        && u64::from(b.x) < a.right()
        && u64::from(a.y) < b.bottom()
        && u64::from(b.y) < a.bottom()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_follow_mask_runs() {
        let view = Rect::new(10, 20, 4, 2);
        let flags = vec![true, true, false, true, false, false, false, false];
        let mask = ViewMask::from_flags(view, flags).unwrap();
        let spans = mask.spans(&view);
        assert_eq!(
            spans,
            vec![
                Span {
                    y: 20,
                    x_start: 10,
                    x_end: 12
                },
                Span {
                    y: 20,
                    x_start: 13,
                    x_end: 14
                },
            ]
        );
    }

    #[test]
    fn exclusion_clears_mask() {
        let layout = Layout::with_views(
            LayoutKind::Manual,
            100,
            50,
            Rect::new(50, 0, 50, 50),
            Some(Rect::new(0, 0, 50, 50)),
            vec![Rect::new(90, 0, 20, 10)],
        )
        .unwrap();
        assert!(!layout.mask().contains(95, 5));
        assert!(layout.mask().contains(85, 5));
        assert_eq!(layout.mask().count(), 50 * 50 - 10 * 10);
    }

    #[test]
    fn views_must_fit_and_not_overlap() {
        let outside = Layout::with_views(
            LayoutKind::Manual,
            100,
            50,
            Rect::new(60, 0, 50, 50),
            None,
            Vec::new(),
        );
        assert!(outside.is_err());
        let overlap = Layout::with_views(
            LayoutKind::Manual,
            100,
            50,
            Rect::new(40, 0, 50, 50),
            Some(Rect::new(0, 0, 50, 50)),
            Vec::new(),
        );
        assert!(overlap.is_err());
    }
}
