//! Rectangles in full-frame pixel coordinates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An axis-aligned rectangle in full-frame pixels, origin at the top-left corner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    /// Exclusive right edge.
    pub fn right(&self) -> u64 {
        u64::from(self.x) + u64::from(self.w)
    }

    /// Exclusive bottom edge.
    pub fn bottom(&self) -> u64 {
        u64::from(self.y) + u64::from(self.h)
    }

    /// Checks that the rectangle is non-empty and lies inside a `width` x `height` frame.
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        self.w > 0
            && self.h > 0
            && self.right() <= u64::from(width)
            && self.bottom() <= u64::from(height)
    }

    /// Checks that `other` lies entirely inside `self`.
    pub fn contains_rect(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    /// Returns the overlap of the two rectangles, or `None` when they do not overlap.
    pub fn intersection(&self, other: &Rect) -> Option<Rect> {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        let right = self.right().min(other.right());
        let bottom = self.bottom().min(other.bottom());
        let w = u32::try_from(right.checked_sub(u64::from(x))?).ok()?;
        let h = u32::try_from(bottom.checked_sub(u64::from(y))?).ok()?;
        (w > 0 && h > 0).then(|| Rect::new(x, y, w, h))
    }

    /// Returns `[x, y, w, h]`, the order used in JSON output.
    pub fn to_array(self) -> [u32; 4] {
        [self.x, self.y, self.w, self.h]
    }
}

impl fmt::Display for Rect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.w, self.h)
    }
}

/// Error from parsing a rectangle written as `X,Y,W,H`.
#[derive(Debug, thiserror::Error)]
#[error("invalid rectangle `{0}`: expected X,Y,W,H in whole pixels with W and H above 0")]
pub struct ParseRectError(String);

impl FromStr for Rect {
    type Err = ParseRectError;

    fn from_str(s: &str) -> Result<Rect, ParseRectError> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let numbers: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
        match numbers.as_deref() {
            Some(&[x, y, w, h]) if w > 0 && h > 0 => Ok(Rect { x, y, w, h }),
            _ => Err(ParseRectError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_parses_four_numbers() {
        let rect: Rect = "10, 20,30,40".parse().unwrap();
        assert_eq!(rect, Rect::new(10, 20, 30, 40));
    }

    #[test]
    fn rect_rejects_zero_size_and_junk() {
        assert!("1,2,0,4".parse::<Rect>().is_err());
        assert!("1,2,3".parse::<Rect>().is_err());
        assert!("a,b,c,d".parse::<Rect>().is_err());
        assert!("1,2,3,-4".parse::<Rect>().is_err());
    }

    #[test]
    fn rect_fits_checks_edges_without_overflow() {
        assert!(Rect::new(0, 0, 10, 10).fits_in(10, 10));
        assert!(!Rect::new(1, 0, 10, 10).fits_in(10, 10));
        assert!(!Rect::new(u32::MAX, 0, 2, 1).fits_in(10, 10));
    }

    #[test]
    fn intersection_is_the_overlap_or_none() {
        let a = Rect::new(10, 10, 20, 20);
        assert_eq!(
            a.intersection(&Rect::new(25, 0, 20, 15)),
            Some(Rect::new(25, 10, 5, 5))
        );
        assert_eq!(a.intersection(&a), Some(a));
        assert_eq!(a.intersection(&Rect::new(30, 10, 5, 5)), None);
        assert_eq!(Rect::new(u32::MAX - 1, 0, 2, 2).intersection(&a), None);
    }
}
