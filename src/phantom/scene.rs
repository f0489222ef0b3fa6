//! The static part of an exam: where the chrome and the views sit on the screen, the
//! sector of each view, and the tissue and perfusion maps of the imaged field.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::config::{LesionProfile, ViewLayout};
use crate::geometry::Rect;

/// The fan-shaped field of view of a curvilinear probe, in full-frame pixels.
///
/// A pixel belongs to the sector when its centre lies between the two arcs of radius
/// `radius_min` and `radius_max` around the (virtual) apex, and within `half_angle_deg`
/// of the downward vertical. The apex sits above the view, so the near field is an arc.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sector {
    pub apex_x: f64,
    pub apex_y: f64,
    pub radius_min: f64,
    pub radius_max: f64,
    pub half_angle_deg: f64,
}

impl Sector {
    /// Fits the largest sector with a half angle of at most 35 degrees in `view`.
    fn fit(view: Rect) -> Sector {
        let height = f64::from(view.h);
        let offset = 0.15 * height;
        let radius_max = offset + height - 1.0;
        let half_width = f64::from(view.w) / 2.0 - 1.0;
        let half_angle = (half_width / radius_max)
            .min(1.0)
            .asin()
            .min(35f64.to_radians());
        Sector {
            apex_x: f64::from(view.x) + f64::from(view.w) / 2.0,
            apex_y: f64::from(view.y) - offset,
            // Keeps the corners of the near arc, not only its middle, inside the view.
            radius_min: (offset + 1.0) / half_angle.cos(),
            radius_max,
            half_angle_deg: half_angle.to_degrees(),
        }
    }

    /// Tests whether the centre of pixel (`x`, `y`) lies inside the sector.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        self.contains_point(f64::from(x) + 0.5, f64::from(y) + 0.5)
    }

    fn contains_point(&self, x: f64, y: f64) -> bool {
        let dx = x - self.apex_x;
        let dy = y - self.apex_y;
        let r2 = dx * dx + dy * dy;
        let tan = self.half_angle_deg.to_radians().tan();
        dy > 0.0
            && r2 >= self.radius_min * self.radius_min
            && r2 <= self.radius_max * self.radius_max
            && dx.abs() <= dy * tan
    }

    /// Full-frame position of the point at `depth` (0 at the near arc, 1 at the far arc)
    /// and `angle` radians from the vertical (positive to the right).
    fn point(&self, depth: f64, angle: f64) -> (f64, f64) {
        let r = self.radius_min + depth * (self.radius_max - self.radius_min);
        (self.apex_x + r * angle.sin(), self.apex_y + r * angle.cos())
    }
}

/// Positions of the chrome and the views on the scanner screen, in full-frame pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScreenLayout {
    pub width: u32,
    pub height: u32,
    /// Top banner with the exam text and the clock.
    pub banner: Rect,
    /// Vertical grey-scale bar at the right, white at the top.
    pub grey_bar: Rect,
    /// Image area of the contrast-only view.
    pub contrast_view: Rect,
    /// Image area of the B-mode view, in the dual layout only.
    pub bmode_view: Option<Rect>,
    pub contrast_sector: Sector,
    pub bmode_sector: Option<Sector>,
}

impl ScreenLayout {
    /// Lays out a `width` x `height` screen. The caller keeps the size within the
    /// configuration's ranges, which leave every rectangle non-empty.
    pub fn new(width: u32, height: u32, layout: ViewLayout) -> ScreenLayout {
        let banner_h = (height * 6 / 100).max(10);
        let margin = (width / 100).max(4);
        let bar_w = (width / 50).max(6);
        let top = banner_h + margin;
        let area_h = height - top - margin;
        let grey_bar = Rect::new(width - margin - bar_w, top, bar_w, area_h);
        let area_w = grey_bar.x - 2 * margin;

        let (contrast_view, bmode_view) = match layout {
            ViewLayout::Dual => {
                let view_w = (area_w - margin) / 2;
                let bmode = Rect::new(margin, top, view_w, area_h);
                let contrast = Rect::new(margin + view_w + margin, top, view_w, area_h);
                (contrast, Some(bmode))
            }
            ViewLayout::Single => {
                let view_w = area_w.min(area_h * 4 / 3);
                let x = margin + (area_w - view_w) / 2;
                (Rect::new(x, top, view_w, area_h), None)
            }
        };
        ScreenLayout {
            width,
            height,
            banner: Rect::new(0, 0, width, banner_h),
            grey_bar,
            contrast_view,
            bmode_view,
            contrast_sector: Sector::fit(contrast_view),
            bmode_sector: bmode_view.map(Sector::fit),
        }
    }
}

/// The lesion: an axis-aligned ellipse, in pixels relative to the view's top-left corner.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lesion {
    pub centre_x: f64,
    pub centre_y: f64,
    pub semi_axis_x: f64,
    pub semi_axis_y: f64,
}

impl Lesion {
    fn contains(&self, x: f64, y: f64) -> bool {
        let u = (x - self.centre_x) / self.semi_axis_x;
        let v = (y - self.centre_y) / self.semi_axis_y;
        u * u + v * v <= 1.0
    }

    /// Pixels whose centres may lie inside the ellipse, relative to the view.
    pub fn bounding_rect(&self) -> Rect {
        let x0 = (self.centre_x - self.semi_axis_x).floor().max(0.0) as u32;
        let y0 = (self.centre_y - self.semi_axis_y).floor().max(0.0) as u32;
        let x1 = (self.centre_x + self.semi_axis_x).ceil() as u32;
        let y1 = (self.centre_y + self.semi_axis_y).ceil() as u32;
        Rect::new(x0, y0, x1 - x0, y1 - y0)
    }
}

/// Tissue backscatter of the parenchyma, in linear power relative to the display reference.
const PARENCHYMA_POWER_DB: f64 = -22.0;
/// The brighter skin and fat layer under the probe.
const SKIN_POWER_DB: f64 = -14.0;
/// Depth fraction of the skin layer.
const SKIN_DEPTH: f64 = 0.06;
/// Relative perfusion of the skin layer.
const SKIN_PERFUSION: f32 = 0.2;

/// Noise-free maps of one view's imaged field, view-local, row after row.
pub struct FieldMaps {
    pub width: u32,
    pub height: u32,
    /// Tissue backscatter power.
    pub tissue: Vec<f32>,
    /// Weight of the lesion's agent curve (0 outside the lesion).
    pub lesion_weight: Vec<f32>,
    /// Weight of the parenchyma's agent curve (0 inside the lesion).
    pub parenchyma_weight: Vec<f32>,
    /// 1 inside the sector, 0 outside (at the rest position of the field).
    pub sector_mask: Vec<u8>,
    pub lesion: Lesion,
    /// Mean of `lesion_weight` over the pixels inside the lesion.
    pub lesion_weight_mean: f64,
}

impl FieldMaps {
    /// Draws the lesion and the textures of a view of `view`'s size with `sector`.
    pub fn draw<R: Rng>(rng: &mut R, view: Rect, sector: &Sector, profile: &LesionProfile) -> Self {
        let lesion = draw_lesion(rng, view, sector);
        let grid = (view.h / 16).max(4);
        let lesion_texture = Texture::draw(rng, view, grid, profile.perfusion_heterogeneity);
        let parenchyma_texture = Texture::draw(rng, view, grid, 0.15);
        let tissue_texture = Texture::draw(rng, view, grid * 2, 0.35);

        let len = view.w as usize * view.h as usize;
        let mut maps = FieldMaps {
            width: view.w,
            height: view.h,
            tissue: vec![0.0; len],
            lesion_weight: vec![0.0; len],
            parenchyma_weight: vec![0.0; len],
            sector_mask: vec![0; len],
            lesion,
            lesion_weight_mean: 0.0,
        };
        let lesion_tissue = 10f64.powf((PARENCHYMA_POWER_DB + profile.echogenicity_db) / 10.0);
        let parenchyma_tissue = 10f64.powf(PARENCHYMA_POWER_DB / 10.0);
        let skin_tissue = 10f64.powf(SKIN_POWER_DB / 10.0);
        let mut lesion_sum = 0.0;
        let mut lesion_pixels = 0u64;

        for y in 0..view.h {
            for x in 0..view.w {
                let i = y as usize * view.w as usize + x as usize;
                let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                let full = (fx + f64::from(view.x), fy + f64::from(view.y));
                maps.sector_mask[i] = u8::from(sector.contains_point(full.0, full.1));
                let depth = depth_fraction(sector, full);
                // What time-gain compensation leaves of the attenuation: about 3 dB.
                let attenuation = 10f64.powf(-0.3 * depth.clamp(0.0, 1.0));
                let tissue_texture = f64::from(tissue_texture.at(x, y));
                let (tissue, lesion_w, parenchyma_w) = if lesion.contains(fx, fy) {
                    let weight = lesion_texture.at(x, y);
                    lesion_sum += f64::from(weight);
                    lesion_pixels += 1;
                    (lesion_tissue, weight, 0.0)
                } else if depth < SKIN_DEPTH {
                    (
                        skin_tissue,
                        0.0,
                        SKIN_PERFUSION * parenchyma_texture.at(x, y),
                    )
                } else {
                    (parenchyma_tissue, 0.0, parenchyma_texture.at(x, y))
                };
                maps.tissue[i] = (tissue * tissue_texture * attenuation) as f32;
                maps.lesion_weight[i] = lesion_w;
                maps.parenchyma_weight[i] = parenchyma_w;
            }
        }
        maps.lesion_weight_mean = lesion_sum / lesion_pixels.max(1) as f64;
        maps
    }
}

/// Depth below the near arc as a fraction of the sector's depth.
fn depth_fraction(sector: &Sector, (x, y): (f64, f64)) -> f64 {
    let r = ((x - sector.apex_x).powi(2) + (y - sector.apex_y).powi(2)).sqrt();
    (r - sector.radius_min) / (sector.radius_max - sector.radius_min)
}

/// Draws a lesion at 35-65% of the depth, whose bounding rectangle lies inside the sector.
fn draw_lesion<R: Rng>(rng: &mut R, view: Rect, sector: &Sector) -> Lesion {
    let depth_span = sector.radius_max - sector.radius_min;
    let half_angle = sector.half_angle_deg.to_radians();
    let mut semi_axis_x = 0.11 * depth_span;
    for _ in 0..100 {
        let depth = rng.random_range(0.35..=0.65);
        let angle = rng.random_range(-0.4 * half_angle..=0.4 * half_angle);
        let ax = rng.random_range(0.08..=0.14) * depth_span;
        let ay = ax * rng.random_range(0.7..=1.0);
        let (cx, cy) = sector.point(depth, angle);
        let lesion = Lesion {
            centre_x: cx - f64::from(view.x),
            centre_y: cy - f64::from(view.y),
            semi_axis_x: ax,
            semi_axis_y: ay,
        };
        if fits_in_sector(&lesion, view, sector) {
            return lesion;
        }
        semi_axis_x = semi_axis_x.min(ax);
    }
    // NOTE: only reached for very narrow views; a small lesion at mid-depth always fits.
    let (cx, cy) = sector.point(0.5, 0.0);
    Lesion {
        centre_x: cx - f64::from(view.x),
        centre_y: cy - f64::from(view.y),
        semi_axis_x: (0.05 * depth_span).min(semi_axis_x),
        semi_axis_y: 0.05 * depth_span,
    }
}

fn fits_in_sector(lesion: &Lesion, view: Rect, sector: &Sector) -> bool {
    // The wedge below the near arc is convex for half angles under 90 degrees, and the
    // lesion's top edge lies far below the near arc, so the four corners decide.
    let rect = lesion.bounding_rect();
    let (x0, y0) = (f64::from(view.x + rect.x), f64::from(view.y + rect.y));
    let (x1, y1) = (x0 + f64::from(rect.w), y0 + f64::from(rect.h));
    [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
        .iter()
        .all(|&(x, y)| sector.contains_point(x, y))
}

/// A smooth random field with mean 1: lognormal values on a coarse grid, interpolated
/// bilinearly.
struct Texture {
    grid: u32,
    columns: usize,
    values: Vec<f32>,
}

impl Texture {
    fn draw<R: Rng>(rng: &mut R, view: Rect, grid: u32, log_sd: f64) -> Texture {
        let columns = (view.w / grid + 2) as usize;
        let rows = (view.h / grid + 2) as usize;
        let values = (0..columns * rows)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                (log_sd * z - 0.5 * log_sd * log_sd).exp() as f32
            })
            .collect();
        Texture {
            grid,
            columns,
            values,
        }
    }

    fn at(&self, x: u32, y: u32) -> f32 {
        let (gx, gy) = (x / self.grid, y / self.grid);
        let fx = (x % self.grid) as f32 / self.grid as f32;
        let fy = (y % self.grid) as f32 / self.grid as f32;
        let i = gy as usize * self.columns + gx as usize;
        let top = self.values[i] * (1.0 - fx) + self.values[i + 1] * fx;
        let bottom =
            self.values[i + self.columns] * (1.0 - fx) + self.values[i + self.columns + 1] * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_views_are_equal_and_apart() {
        let layout = ScreenLayout::new(800, 600, ViewLayout::Dual);
        let bmode = layout.bmode_view.unwrap();
        let contrast = layout.contrast_view;
        assert_eq!((bmode.w, bmode.h), (contrast.w, contrast.h));
        assert!(bmode.right() <= u64::from(contrast.x));
        assert!(contrast.right() <= u64::from(layout.grey_bar.x));
        assert!(u64::from(contrast.y) >= layout.banner.bottom());
        assert!(layout.grey_bar.fits_in(800, 600));
    }

    #[test]
    fn sector_fits_in_view_for_extreme_sizes() {
        for (w, h) in [(160, 120), (3840, 2160), (160, 2160), (3840, 120)] {
            for mode in [ViewLayout::Dual, ViewLayout::Single] {
                let layout = ScreenLayout::new(w, h, mode);
                let view = layout.contrast_view;
                assert!(view.fits_in(w, h), "{w}x{h} {mode:?}");
                let sector = layout.contrast_sector;
                // Every pixel of the sector lies in the view rectangle.
                for y in 0..h {
                    for x in (0..w).step_by(3) {
                        if sector.contains(x, y) {
                            assert!(view.contains_rect(&Rect::new(x, y, 1, 1)), "{x},{y}");
                        }
                    }
                }
                assert!(sector.contains(view.x + view.w / 2, view.y + view.h / 2));
            }
        }
    }
}
