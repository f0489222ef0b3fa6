//! Synthetic CEUS exams with known ground truth.
//!
//! A phantom is the screen of a scanner in CEUS mode: a banner with a running clock, a
//! grey-scale bar, and one or two sector views (B-mode left, contrast-only right in the
//! dual layout). The imaged field has parenchyma and an elliptic lesion, each fed by its
//! own lognormal bolus ([`bolus`]). Echo power is tissue or agent power times
//! multiplicative speckle plus a noise floor, shown through the log compression of
//! [`power_to_grey`]. Optional events ([`events`]) corrupt runs of frames the way real
//! exams do. The [`Truth`] records the layout, the curves and the flag of every frame.
//!
//! The same [`PhantomConfig`] gives the same bytes: every random draw comes from ChaCha8
//! streams seeded with the configuration's seed.
//!
//! NOTE: byte identity is tested on one platform only. The rendering uses `exp`, `ln`,
//! `sin` and `cos` from the platform's maths library, whose last bit may differ between
//! libraries, so another target may differ in a few grey levels.

pub mod bolus;
pub mod cohort;
pub mod config;
pub mod events;
mod font;
pub mod render;
pub mod scene;
pub mod source;
pub mod truth;
pub mod writer;

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use config::{EventKind, EventRequest, LesionProfile, PhantomConfig, ViewLayout};
pub use events::FrameEvent;
pub use render::{grey_to_power, power_to_grey, Renderer};
pub use truth::Truth;
pub use writer::{write_exam, ExamFormat, ExamPaths};

use bolus::{draw_boluses_for, BolusPair};
use events::EventPlan;
use scene::{FieldMaps, ScreenLayout};
use truth::{DisplayTruth, FrameTruth, RefillTimes, TRUTH_SCHEMA_VERSION};

/// Error from building or writing a phantom exam.
#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    /// A setting is out of range; the message names it and the range.
    #[error("{0}")]
    InvalidConfig(String),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// dicom-object failed to build or encode the header.
    #[error("cannot encode the DICOM header: {0}")]
    Dicom(String),
}

/// RNG stream of the scene (curves, events, lesion, textures).
const SCENE_STREAM: u64 = 0;
/// RNG stream of the per-frame noise and speckle.
const FRAME_STREAM: u64 = 1;

/// A fully drawn exam, ready to render: scene, curves, events and ground truth.
pub struct Phantom {
    config: PhantomConfig,
    layout: ScreenLayout,
    /// Maps of the contrast view; the B-mode view has the same size and shares them.
    maps: FieldMaps,
    plan: EventPlan,
    /// Per frame: lesion and parenchyma agent power at unit weight.
    agent_levels: Vec<(f64, f64)>,
    truth: Truth,
}

impl Phantom {
    /// Validates `config` and draws the scene.
    ///
    /// Errors with [`PhantomError::InvalidConfig`] when a setting is out of range or a
    /// listed event does not fit in the exam.
    pub fn new(config: PhantomConfig) -> Result<Phantom, PhantomError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(SCENE_STREAM);

        let boluses = draw_boluses_for(&mut rng, config.duration_s(), &config.lesion);
        let refill = RefillTimes {
            lesion_s: rng.random_range(1.5..=3.0),
            parenchyma_s: rng.random_range(3.0..=6.0),
        };
        let plan = EventPlan::draw(&mut rng, &config)?;
        let layout = ScreenLayout::new(config.width, config.height, config.layout);
        let maps = FieldMaps::draw(
            &mut rng,
            layout.contrast_view,
            &layout.contrast_sector,
            &config.lesion,
        );

        let agent_levels = agent_levels(&config, &boluses, &refill, &plan);
        let truth = build_truth(
            &config,
            &layout,
            &maps,
            &plan,
            boluses,
            refill,
            &agent_levels,
        );
        Ok(Phantom {
            config,
            layout,
            maps,
            plan,
            agent_levels,
            truth,
        })
    }

    pub fn config(&self) -> &PhantomConfig {
        &self.config
    }

    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// Turns the phantom into a renderer that yields the frames in order.
    pub fn into_renderer(self) -> Renderer {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        rng.set_stream(FRAME_STREAM);
        Renderer::new(self, rng)
    }
}

/// Agent power of the lesion and the parenchyma at unit perfusion in every frame, with
/// destruction at the end of each flash and exponential refill after it.
fn agent_levels(
    config: &PhantomConfig,
    boluses: &BolusPair,
    refill: &RefillTimes,
    plan: &EventPlan,
) -> Vec<(f64, f64)> {
    (0..config.frames)
        .map(|index| {
            let t = f64::from(index) / config.fps;
            let (lesion_factor, parenchyma_factor) = match plan.last_flash_end(index) {
                Some(end) => {
                    let since = t - f64::from(end) / config.fps;
                    (
                        1.0 - (-since / refill.lesion_s).exp(),
                        1.0 - (-since / refill.parenchyma_s).exp(),
                    )
                }
                None => (1.0, 1.0),
            };
            (
                boluses.lesion.concentration(t) * lesion_factor,
                boluses.parenchyma.concentration(t) * parenchyma_factor,
            )
        })
        .collect()
}

fn build_truth(
    config: &PhantomConfig,
    layout: &ScreenLayout,
    maps: &FieldMaps,
    plan: &EventPlan,
    bolus: BolusPair,
    refill: RefillTimes,
    agent_levels: &[(f64, f64)],
) -> Truth {
    let frames: Vec<FrameTruth> = agent_levels
        .iter()
        .enumerate()
        .map(|(i, &(lesion, parenchyma))| FrameTruth {
            index: i as u32,
            time_s: i as f64 / config.fps,
            lesion_power: lesion * maps.lesion_weight_mean,
            parenchyma_power: parenchyma,
            event: plan.per_frame[i],
            shift_px: plan.shifts[i],
        })
        .collect();
    let peak_frame = truth::peak_frame(&frames);
    let local_roi = maps.lesion.bounding_rect();
    let offset = |view: crate::geometry::Rect| {
        crate::geometry::Rect::new(
            view.x + local_roi.x,
            view.y + local_roi.y,
            local_roi.w,
            local_roi.h,
        )
    };
    Truth {
        schema_version: TRUTH_SCHEMA_VERSION,
        generator: format!("ceus-edge phantom {}", env!("CARGO_PKG_VERSION")),
        seed: config.seed,
        settings: config.clone(),
        layout: layout.clone(),
        lesion_roi: offset(layout.contrast_view),
        lesion_roi_bmode: layout.bmode_view.map(offset),
        lesion: maps.lesion,
        display: DisplayTruth {
            dynamic_range_db: config.dynamic_range_db,
            noise_floor_power: f64::from(render::NOISE_FLOOR_POWER),
        },
        bolus,
        refill,
        arrival_time_s: bolus.lesion.arrival_s,
        peak_time_s: peak_frame.map(|i| f64::from(i) / config.fps),
        peak_frame,
        events: plan.events.clone(),
        frames,
    }
}
