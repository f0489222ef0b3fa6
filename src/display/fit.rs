//! Nearest-neighbour scaling of a frame to fit a screen: the aspect ratio is kept and the
//! image is centred, with a border on the two sides it does not fill.
//!
//! The framebuffer and the window draw through the same [`FitMap`], so both show a frame
//! at the same size and position on a screen of the same size.

/// Marks a screen position in the border, where no frame pixel is shown.
pub const BORDER: u32 = u32::MAX;

/// The frame pixel shown at each screen column and row, for one screen size and one
/// frame size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FitMap {
    /// Source column of each screen column, [`BORDER`] in the border.
    columns: Vec<u32>,
    /// Source row of each screen row, [`BORDER`] in the border.
    rows: Vec<u32>,
}

impl FitMap {
    /// Makes the maps that fit a `frame` (width, height) inside a `screen` (width,
    /// height). An empty screen gives empty maps, and an empty frame shows only border.
    pub fn new(screen: (u32, u32), frame: (u32, u32)) -> FitMap {
        let (screen_w, screen_h) = screen;
        let (width, height) = frame;
        if width == 0 || height == 0 {
            return FitMap {
                columns: vec![BORDER; screen_w as usize],
                rows: vec![BORDER; screen_h as usize],
            };
        }
        // The larger scale that keeps both sides inside the screen, in exact fractions.
        let (shown_w, shown_h) =
            if u64::from(screen_w) * u64::from(height) <= u64::from(screen_h) * u64::from(width) {
                let shown_h = (u64::from(height) * u64::from(screen_w) / u64::from(width)).max(1);
                (screen_w, (shown_h as u32).min(screen_h))
            } else {
                let shown_w = (u64::from(width) * u64::from(screen_h) / u64::from(height)).max(1);
                ((shown_w as u32).min(screen_w), screen_h)
            };
        FitMap {
            columns: axis_map(screen_w, shown_w, width),
            rows: axis_map(screen_h, shown_h, height),
        }
    }

    /// Source column of each screen column, [`BORDER`] in the border.
    pub fn columns(&self) -> &[u32] {
        &self.columns
    }

    /// Source row of each screen row, [`BORDER`] in the border.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }
}

/// For each of `screen` positions, the source position shown there, with `shown`
/// positions centred and scaled from `source`, and [`BORDER`] outside them.
fn axis_map(screen: u32, shown: u32, source: u32) -> Vec<u32> {
    let start = (screen - shown) / 2;
    (0..screen)
        .map(|position| {
            if position < start || position >= start + shown {
                return BORDER;
            }
            let offset = u64::from(position - start);
            (offset * u64::from(source) / u64::from(shown)) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the first screen position that shows the frame, and how many do.
    fn shown(map: &[u32]) -> (usize, usize) {
        let first = map.iter().position(|&s| s != BORDER).unwrap();
        let count = map.iter().filter(|&&s| s != BORDER).count();
        (first, count)
    }

    #[test]
    fn vga_frame_in_hd_screen_is_pillarboxed() {
        // 640x480 scaled by 1.5 is 960x720, centred with 160 columns on each side.
        let map = FitMap::new((1280, 720), (640, 480));
        assert_eq!(shown(map.columns()), (160, 960));
        assert_eq!(shown(map.rows()), (0, 720));
        assert_eq!(map.columns()[159], BORDER);
        assert_eq!(map.columns()[160], 0);
        assert_eq!(map.columns()[161], 0);
        assert_eq!(map.columns()[162], 1);
        assert_eq!(map.columns()[1119], 639);
        assert_eq!(map.columns()[1120], BORDER);
        assert_eq!(map.rows()[719], 479);
    }

    #[test]
    fn wide_frame_is_letterboxed() {
        // 1920x1080 in a 4:3 screen of 800x600 is 800x450, 75 rows from the top.
        let map = FitMap::new((800, 600), (1920, 1080));
        assert_eq!(shown(map.columns()), (0, 800));
        assert_eq!(shown(map.rows()), (75, 450));
        assert_eq!(map.rows()[75], 0);
        assert_eq!(map.rows()[524], 1077);
    }

    #[test]
    fn same_size_is_identity() {
        let map = FitMap::new((5, 3), (5, 3));
        assert_eq!(map.columns(), [0, 1, 2, 3, 4]);
        assert_eq!(map.rows(), [0, 1, 2]);
    }

    #[test]
    fn source_indices_stay_inside_the_frame() {
        for (screen, frame) in [
            ((1, 1), (1920, 1080)),
            ((3, 1000), (7, 5)),
            ((1000, 3), (7, 5)),
            ((641, 479), (640, 480)),
            ((2, 2), (1, 1000)),
        ] {
            let map = FitMap::new(screen, frame);
            assert_eq!(
                map.columns().len(),
                screen.0 as usize,
                "{screen:?} {frame:?}"
            );
            assert_eq!(map.rows().len(), screen.1 as usize, "{screen:?} {frame:?}");
            assert!(
                map.columns().iter().all(|&c| c == BORDER || c < frame.0),
                "{screen:?} {frame:?}"
            );
            assert!(
                map.rows().iter().all(|&r| r == BORDER || r < frame.1),
                "{screen:?} {frame:?}"
            );
            assert!(shown(map.columns()).1 >= 1, "{screen:?} {frame:?}");
            assert!(shown(map.rows()).1 >= 1, "{screen:?} {frame:?}");
        }
    }

    #[test]
    fn empty_sizes_do_not_panic() {
        let map = FitMap::new((0, 0), (640, 480));
        assert!(map.columns().is_empty());
        assert!(map.rows().is_empty());
        let map = FitMap::new((4, 2), (0, 480));
        assert_eq!(map.columns(), [BORDER; 4]);
        assert_eq!(map.rows(), [BORDER; 2]);
        let map = FitMap::new((0, 720), (640, 480));
        assert!(map.columns().is_empty());
        assert_eq!(map.rows().len(), 720);
    }
}
