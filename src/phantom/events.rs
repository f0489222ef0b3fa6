//! Scheduling of acquisition events (flash, freeze, probe lift, motion) over the frames.

use rand::Rng;
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};

use super::config::{EventKind, EventRequest, PhantomConfig};
use super::PhantomError;

/// Corruption of one frame, as recorded in the ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrameEvent {
    None,
    /// Part of a destruction flash: the contrast view is saturated bright.
    Flash,
    /// A byte-for-byte copy of the previous frame.
    Frozen,
    /// Probe lifted: only the noise floor inside the sectors.
    Black,
    /// The imaged field is shifted from its rest position.
    Motion,
}

/// One event placed on the time axis.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledEvent {
    pub kind: EventKind,
    pub start_frame: u32,
    /// Number of frames, at least 2.
    pub frames: u32,
    /// Largest shift of a motion event, in pixels (x right, y down); 0 for other kinds.
    pub shift_px: [i32; 2],
}

impl ScheduledEvent {
    /// First frame after the event.
    pub fn end_frame(&self) -> u32 {
        self.start_frame + self.frames
    }

    /// Shift of the field at `frame` for a motion event: a ramp over the first quarter,
    /// a hold, and a ramp back over the last quarter, rounded to whole pixels.
    pub fn shift_at(&self, frame: u32) -> [i32; 2] {
        if self.kind != EventKind::Motion || frame < self.start_frame || frame >= self.end_frame() {
            return [0, 0];
        }
        let position = f64::from(frame - self.start_frame) + 0.5;
        let length = f64::from(self.frames);
        let ramp = length / 4.0;
        let weight = (position / ramp).min((length - position) / ramp).min(1.0);
        let [dx, dy] = self.shift_px;
        [
            (f64::from(dx) * weight).round() as i32,
            (f64::from(dy) * weight).round() as i32,
        ]
    }
}

/// Frames kept free between two events, so no event starts on another's frames.
const EVENT_GAP_FRAMES: u32 = 2;
const PLACEMENT_ATTEMPTS: u32 = 200;

/// Per-frame view of the scheduled events.
#[derive(Clone, Debug)]
pub struct EventPlan {
    pub events: Vec<ScheduledEvent>,
    pub per_frame: Vec<FrameEvent>,
    pub shifts: Vec<[i32; 2]>,
}

impl EventPlan {
    /// Draws the events the configuration requests and places them without overlap.
    ///
    /// Errors with [`PhantomError::InvalidConfig`] when a listed event cannot be placed
    /// because the exam is too short. A random event that does not fit is skipped with a
    /// warning.
    pub fn draw<R: Rng>(rng: &mut R, config: &PhantomConfig) -> Result<EventPlan, PhantomError> {
        let (kinds, required) = requested_kinds(rng, config);
        let mut events: Vec<ScheduledEvent> = Vec::new();
        for kind in kinds {
            match place_event(rng, config, kind, &events) {
                Some(event) => events.push(event),
                None if required => {
                    return Err(PhantomError::InvalidConfig(format!(
                        "cannot place a {} event in {} frames beside the other events: \
                         use more frames or fewer events",
                        kind.name(),
                        config.frames
                    )))
                }
                None => log::warn!(
                    "skipped a random {} event: no free stretch of frames is left",
                    kind.name()
                ),
            }
        }
        events.sort_by_key(|event| event.start_frame);
        Ok(EventPlan::from_events(events, config.frames))
    }

    fn from_events(events: Vec<ScheduledEvent>, frames: u32) -> EventPlan {
        let mut per_frame = vec![FrameEvent::None; frames as usize];
        let mut shifts = vec![[0, 0]; frames as usize];
        for event in &events {
            for frame in event.start_frame..event.end_frame() {
                let flag = match event.kind {
                    EventKind::Flash => FrameEvent::Flash,
                    EventKind::Freeze => FrameEvent::Frozen,
                    EventKind::ProbeLift => FrameEvent::Black,
                    EventKind::Motion => {
                        let shift = event.shift_at(frame);
                        shifts[frame as usize] = shift;
                        if shift == [0, 0] {
                            FrameEvent::None
                        } else {
                            FrameEvent::Motion
                        }
                    }
                };
                per_frame[frame as usize] = flag;
            }
        }
        EventPlan {
            events,
            per_frame,
            shifts,
        }
    }

    /// End frame of the last flash that ended at or before `frame`, if any.
    pub fn last_flash_end(&self, frame: u32) -> Option<u32> {
        self.events
            .iter()
            .filter(|event| event.kind == EventKind::Flash && event.end_frame() <= frame)
            .map(ScheduledEvent::end_frame)
            .next_back()
    }
}

/// Lists the kinds to place, and whether failing to place one is an error.
fn requested_kinds<R: Rng>(rng: &mut R, config: &PhantomConfig) -> (Vec<EventKind>, bool) {
    const ALL: [EventKind; 4] = [
        EventKind::Flash,
        EventKind::Freeze,
        EventKind::ProbeLift,
        EventKind::Motion,
    ];
    match &config.events {
        EventRequest::None => (Vec::new(), false),
        EventRequest::Listed(kinds) => (kinds.clone(), true),
        EventRequest::Rate(rate) => {
            let mean = rate * config.duration_s() / 60.0;
            let count = match Poisson::new(mean) {
                Ok(poisson) => poisson.sample(rng) as u32,
                // A zero rate is not a valid Poisson mean.
                Err(_) => 0,
            };
            let kinds = (0..count)
                .map(|_| ALL[rng.random_range(0..ALL.len())])
                .collect();
            (kinds, false)
        }
    }
}

/// Length in frames of an event of `kind`, drawn from a range of durations in seconds.
fn draw_length<R: Rng>(rng: &mut R, kind: EventKind, fps: f64) -> u32 {
    let (seconds, min_frames) = match kind {
        EventKind::Flash => (rng.random_range(0.15..=0.4), 2),
        EventKind::Freeze => (rng.random_range(0.5..=2.0), 2),
        EventKind::ProbeLift => (rng.random_range(0.5..=2.0), 2),
        EventKind::Motion => (rng.random_range(1.0..=3.0), 4),
    };
    ((seconds * fps).round() as u32).max(min_frames)
}

fn draw_shift<R: Rng>(rng: &mut R) -> [i32; 2] {
    let amplitude: f64 = rng.random_range(4.0..=10.0);
    let angle: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let shift = [
        (amplitude * angle.cos()).round() as i32,
        (amplitude * angle.sin()).round() as i32,
    ];
    if shift == [0, 0] {
        [4, 0]
    } else {
        shift
    }
}

fn place_event<R: Rng>(
    rng: &mut R,
    config: &PhantomConfig,
    kind: EventKind,
    placed: &[ScheduledEvent],
) -> Option<ScheduledEvent> {
    let frames = draw_length(rng, kind, config.fps);
    let shift_px = if kind == EventKind::Motion {
        draw_shift(rng)
    } else {
        [0, 0]
    };
    // Frame 0 stays clean so a freeze always has a previous frame to repeat.
    let last_start = config.frames.checked_sub(frames)?;
    if last_start < 1 {
        return None;
    }
    for _ in 0..PLACEMENT_ATTEMPTS {
        let start_frame = rng.random_range(1..=last_start);
        let candidate = ScheduledEvent {
            kind,
            start_frame,
            frames,
            shift_px,
        };
        if placed.iter().all(|other| apart(other, &candidate)) {
            return Some(candidate);
        }
    }
    None
}

fn apart(a: &ScheduledEvent, b: &ScheduledEvent) -> bool {
    a.end_frame() + EVENT_GAP_FRAMES <= b.start_frame
        || b.end_frame() + EVENT_GAP_FRAMES <= a.start_frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn config_with(events: EventRequest, frames: u32) -> PhantomConfig {
        PhantomConfig {
            frames,
            events,
            ..PhantomConfig::default()
        }
    }

    #[test]
    fn listed_events_are_placed_apart() {
        let all = vec![
            EventKind::Flash,
            EventKind::Freeze,
            EventKind::ProbeLift,
            EventKind::Motion,
        ];
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let plan = EventPlan::draw(
                &mut rng,
                &config_with(EventRequest::Listed(all.clone()), 300),
            )
            .unwrap();
            assert_eq!(plan.events.len(), 4);
            for pair in plan.events.windows(2) {
                assert!(apart(&pair[0], &pair[1]), "{pair:?}");
            }
            assert_eq!(plan.per_frame[0], FrameEvent::None);
        }
    }

    #[test]
    fn listed_event_too_long_is_error() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let config = config_with(EventRequest::Listed(vec![EventKind::Motion]), 3);
        assert!(EventPlan::draw(&mut rng, &config).is_err());
    }

    #[test]
    fn motion_shift_ramps_and_returns() {
        let event = ScheduledEvent {
            kind: EventKind::Motion,
            start_frame: 10,
            frames: 20,
            shift_px: [8, -4],
        };
        assert_eq!(event.shift_at(9), [0, 0]);
        assert_eq!(event.shift_at(20), [8, -4]);
        assert_eq!(event.shift_at(30), [0, 0]);
        let first = event.shift_at(10);
        assert!(first[0].abs() < 8);
    }
}
