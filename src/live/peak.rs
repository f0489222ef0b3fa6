//! Online bolus arrival and peak confirmation on the live time-intensity curve.
//!
//! The offline analysis has the whole curve. Live, the detector receives one sample at a
//! time: it learns the baseline from the first seconds, calls the arrival when a
//! trailing mean rises above the baseline by a noise margin for a few frames in a row,
//! follows the maximum through wash-in, and confirms the peak once the maximum has held
//! for a while and the trailing mean has fallen a set fraction of the enhancement below
//! it, or once a set time has passed without a new maximum. The enhancement must also be
//! large in dB over the baseline, because a contrast view is nearly black before the
//! bolus and a fraction of its baseline is no margin at all. Everything the detector
//! keeps has a fixed capacity.

use crate::tic::flags::median_in_place;

/// Samples kept for the trailing mean; enough for a 1 s window at 500 frames per second.
const WINDOW_CAPACITY: usize = 512;
/// Samples kept for the baseline; enough for a 2 s baseline at 500 frames per second.
const BASELINE_CAPACITY: usize = 1024;
/// Scale from the median absolute deviation to a normal standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

/// Thresholds of the live detector, with their defaults.
#[derive(Clone, Debug)]
pub struct PeakSettings {
    /// Length of the trailing mean, seconds. Default 1.0.
    pub smooth_s: f64,
    /// Length of the baseline from the first clean sample, seconds. Default 2.0.
    pub baseline_s: f64,
    /// The arrival margin is this many baseline noise sigmas... Default 3.
    pub arrival_sigmas: f64,
    /// ... and at least this fraction of the baseline. Default 0.1.
    pub arrival_fraction: f64,
    /// Samples in a row above the margin that make the arrival. Default 3.
    pub arrival_sustain: u32,
    /// The peak is confirmed only when the enhancement exceeds this many noise sigmas...
    /// Default 5.
    pub min_enhancement_sigmas: f64,
    /// ... and the maximum is this many dB above the baseline. Default 3.
    pub min_enhancement_db: f64,
    /// The peak is confirmed when the maximum has held this many seconds... Default 2.
    pub peak_hold_s: f64,
    /// ... and the trailing mean has fallen this fraction of the enhancement below it.
    /// Default 0.2.
    pub confirm_drop: f64,
    /// ... or when this many seconds have passed since the maximum. Default 20.
    pub confirm_after_s: f64,
}

impl Default for PeakSettings {
    fn default() -> PeakSettings {
        PeakSettings {
            smooth_s: 1.0,
            baseline_s: 2.0,
            arrival_sigmas: 3.0,
            arrival_fraction: 0.1,
            arrival_sustain: 3,
            min_enhancement_sigmas: 5.0,
            min_enhancement_db: 3.0,
            peak_hold_s: 2.0,
            confirm_drop: 0.2,
            confirm_after_s: 20.0,
        }
    }
}

/// A frame of the curve, by its index in the stream and its time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    pub index: u64,
    pub time_s: f64,
}

/// The condition that confirmed the peak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfirmedBy {
    /// The trailing mean fell the set fraction below its maximum.
    Drop,
    /// The set time passed without a new maximum.
    Timeout,
    /// The stream ended after the arrival; the peak comes from the whole curve.
    EndOfStream,
}

impl ConfirmedBy {
    pub fn name(self) -> &'static str {
        match self {
            ConfirmedBy::Drop => "drop",
            ConfirmedBy::Timeout => "timeout",
            ConfirmedBy::EndOfStream => "end_of_stream",
        }
    }
}

/// A change of the detector's state caused by one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PeakEvent {
    /// The baseline window ended.
    BaselineReady { baseline: f64, sigma: f64 },
    /// The first sample of the sustained rise.
    Arrival(CurvePoint),
    /// The sample at which the trailing mean was highest.
    PeakConfirmed {
        peak: CurvePoint,
        confirmed_by: ConfirmedBy,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Baseline,
    WaitingForArrival,
    WashIn,
    Confirmed,
}

/// The online detector of one exam's curve.
#[derive(Debug)]
pub struct PeakDetector {
    settings: PeakSettings,
    stage: Stage,
    window: heapless::Deque<(f64, f64), WINDOW_CAPACITY>,
    window_sum: f64,
    baseline_values: heapless::Vec<f64, BASELINE_CAPACITY>,
    first_time_s: Option<f64>,
    baseline: f64,
    sigma: f64,
    above: u32,
    first_above: Option<CurvePoint>,
    max_smoothed: f64,
    max_at: Option<CurvePoint>,
    smoothed: Option<f64>,
}

impl PeakDetector {
    pub fn new(settings: PeakSettings) -> PeakDetector {
        PeakDetector {
            settings,
            stage: Stage::Baseline,
            window: heapless::Deque::new(),
            window_sum: 0.0,
            baseline_values: heapless::Vec::new(),
            first_time_s: None,
            baseline: 0.0,
            sigma: 0.0,
            above: 0,
            first_above: None,
            max_smoothed: f64::NEG_INFINITY,
            max_at: None,
            smoothed: None,
        }
    }

    /// Returns the last trailing mean, once a clean sample has arrived.
    pub fn smoothed(&self) -> Option<f64> {
        self.smoothed
    }

    /// Median power of the baseline window, once it has ended.
    pub fn baseline(&self) -> Option<f64> {
        (self.stage != Stage::Baseline).then_some(self.baseline)
    }

    /// Takes the next sample; `clean` is false for a frame that must not count (black,
    /// frozen or flashed), which is skipped.
    pub fn push(&mut self, point: CurvePoint, power: f64, clean: bool) -> Option<PeakEvent> {
        if !clean || !power.is_finite() || !point.time_s.is_finite() {
            return None;
        }
        let smoothed = self.update_window(point.time_s, power);
        self.smoothed = Some(smoothed);

        match self.stage {
            Stage::Baseline => self.collect_baseline(point, power),
            Stage::WaitingForArrival => self.look_for_arrival(point, smoothed),
            Stage::WashIn => self.follow_wash_in(point, smoothed),
            Stage::Confirmed => None,
        }
    }

    /// Adds the sample to the trailing window and returns the window's mean.
    fn update_window(&mut self, time_s: f64, power: f64) -> f64 {
        if self.window.is_full() {
            if let Some((_, oldest)) = self.window.pop_front() {
                self.window_sum -= oldest;
            }
        }
        let _ = self.window.push_back((time_s, power));
        self.window_sum += power;
        while let Some(&(t, value)) = self.window.front() {
            if t >= time_s - self.settings.smooth_s || self.window.len() == 1 {
                break;
            }
            self.window.pop_front();
            self.window_sum -= value;
        }
        self.window_sum / self.window.len() as f64
    }

    fn collect_baseline(&mut self, point: CurvePoint, power: f64) -> Option<PeakEvent> {
        let first = *self.first_time_s.get_or_insert(point.time_s);
        let _ = self.baseline_values.push(power);
        let long_enough = point.time_s - first >= self.settings.baseline_s;
        if !(long_enough || self.baseline_values.is_full()) || self.baseline_values.len() < 3 {
            return None;
        }

        self.baseline = median_in_place(&mut self.baseline_values);
        for value in self.baseline_values.iter_mut() {
            *value = (*value - self.baseline).abs();
        }
        self.sigma = MAD_TO_SIGMA * median_in_place(&mut self.baseline_values);
        self.stage = Stage::WaitingForArrival;
        Some(PeakEvent::BaselineReady {
            baseline: self.baseline,
            sigma: self.sigma,
        })
    }

    fn look_for_arrival(&mut self, point: CurvePoint, smoothed: f64) -> Option<PeakEvent> {
        let settings = &self.settings;
        let margin = (settings.arrival_sigmas * self.sigma)
            .max(settings.arrival_fraction * self.baseline.abs());
        if smoothed <= self.baseline + margin {
            self.above = 0;
            self.first_above = None;
            return None;
        }
        self.above += 1;
        let first = *self.first_above.get_or_insert(point);
        if self.above < settings.arrival_sustain {
            return None;
        }
        self.stage = Stage::WashIn;
        self.max_smoothed = smoothed;
        self.max_at = Some(point);
        Some(PeakEvent::Arrival(first))
    }

    fn follow_wash_in(&mut self, point: CurvePoint, smoothed: f64) -> Option<PeakEvent> {
        if smoothed > self.max_smoothed {
            self.max_smoothed = smoothed;
            self.max_at = Some(point);
            return None;
        }
        let peak = self.max_at?;
        let settings = &self.settings;
        let enhancement = self.max_smoothed - self.baseline;
        let above_noise = enhancement > settings.min_enhancement_sigmas * self.sigma;
        let ratio = 10f64.powf(settings.min_enhancement_db / 10.0);
        let above_baseline = self.max_smoothed >= ratio * self.baseline;
        if !(above_noise && above_baseline) {
            return None;
        }

        let held = point.time_s - peak.time_s;
        let dropped = held >= settings.peak_hold_s
            && smoothed <= self.max_smoothed - settings.confirm_drop * enhancement;
        let waited = held >= settings.confirm_after_s;
        let confirmed_by = match (dropped, waited) {
            (true, _) => ConfirmedBy::Drop,
            (false, true) => ConfirmedBy::Timeout,
            (false, false) => return None,
        };
        self.stage = Stage::Confirmed;
        Some(PeakEvent::PeakConfirmed { peak, confirmed_by })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a curve sampled at `fps` and returns every event with its sample number.
    fn run(curve: impl Fn(f64) -> f64, fps: f64, seconds: f64) -> Vec<(usize, PeakEvent)> {
        let mut detector = PeakDetector::new(PeakSettings::default());
        let samples = (seconds * fps) as usize;
        (0..samples)
            .filter_map(|i| {
                let time_s = i as f64 / fps;
                let point = CurvePoint {
                    index: i as u64,
                    time_s,
                };
                detector.push(point, curve(time_s), true).map(|e| (i, e))
            })
            .collect()
    }

    /// Baseline 1.0 with a deterministic ripple, and a bolus of height 4 peaking at 20 s.
    fn bolus(t: f64) -> f64 {
        let ripple = 0.02 * (t * 7.3).sin();
        let rise = if t > 10.0 {
            let tau = t - 10.0;
            4.0 * (tau / 10.0) * (1.0 - tau / 10.0).exp()
        } else {
            0.0
        };
        1.0 + ripple + rise
    }

    #[test]
    fn bolus_gives_arrival_then_peak() {
        let events = run(bolus, 15.0, 60.0);
        let kinds: Vec<&str> = events
            .iter()
            .map(|(_, e)| match e {
                PeakEvent::BaselineReady { .. } => "baseline",
                PeakEvent::Arrival(_) => "arrival",
                PeakEvent::PeakConfirmed { .. } => "peak",
            })
            .collect();
        assert_eq!(kinds, ["baseline", "arrival", "peak"]);

        let PeakEvent::Arrival(arrival) = events[1].1 else {
            panic!("second event is not the arrival: {:?}", events[1]);
        };
        assert!(
            (10.0..13.0).contains(&arrival.time_s),
            "arrival at {} s",
            arrival.time_s
        );
        let PeakEvent::PeakConfirmed { peak, confirmed_by } = events[2].1 else {
            panic!("third event is not the peak: {:?}", events[2]);
        };
        assert_eq!(confirmed_by, ConfirmedBy::Drop);
        // The trailing mean lags by half its window.
        assert!(
            (19.5..21.5).contains(&peak.time_s),
            "peak at {} s",
            peak.time_s
        );
    }

    #[test]
    fn flat_curve_gives_no_arrival() {
        let events = run(|t| 1.0 + 0.02 * (t * 7.3).sin(), 15.0, 60.0);
        assert_eq!(events.len(), 1, "{events:?}");
    }

    #[test]
    fn plateau_is_confirmed_by_timeout() {
        let plateau = |t: f64| if t < 10.0 { 1.0 } else { 3.0 };
        let events = run(plateau, 10.0, 60.0);
        let last = events.last().expect("events");
        let PeakEvent::PeakConfirmed { confirmed_by, .. } = last.1 else {
            panic!("last event is not the peak: {last:?}");
        };
        assert_eq!(confirmed_by, ConfirmedBy::Timeout);
        assert!(last.0 as f64 / 10.0 >= 30.0);
    }

    #[test]
    fn unclean_and_non_finite_samples_are_skipped() {
        let mut detector = PeakDetector::new(PeakSettings::default());
        let point = CurvePoint {
            index: 0,
            time_s: 0.0,
        };
        assert_eq!(detector.push(point, f64::NAN, true), None);
        assert_eq!(detector.push(point, 5.0, false), None);
        assert_eq!(detector.smoothed(), None);
    }

    #[test]
    fn rippling_wash_in_from_black_is_not_a_peak() {
        // A nearly black view (baseline 1e-6) and a wash-in whose samples ripple by 30%:
        // early dips exceed 20% of the small enhancement, but the maximum never holds.
        let curve = |t: f64| {
            let ripple = 1.0 + 0.3 * (t * 3.0).sin();
            let agent = if t > 7.0 {
                0.01 * (t - 7.0).min(13.0)
            } else {
                0.0
            };
            1e-6 * (1.0 + 0.001 * (t * 5.0).sin()) + agent * ripple
        };
        let events = run(curve, 15.0, 30.0);
        let peak = events.iter().find_map(|(_, e)| match e {
            PeakEvent::PeakConfirmed { peak, .. } => Some(peak.time_s),
            _ => None,
        });
        if let Some(time_s) = peak {
            assert!(
                time_s >= 19.0,
                "peak confirmed at {time_s} s during wash-in"
            );
        }
    }

    #[test]
    fn small_rise_below_minimum_is_not_confirmed() {
        // A 15% rise (0.6 dB) passes the arrival margin but not the 3 dB enhancement.
        let step = |t: f64| if (10.0..20.0).contains(&t) { 1.15 } else { 1.0 };
        let events = run(step, 15.0, 40.0);
        assert!(events
            .iter()
            .all(|(_, e)| !matches!(e, PeakEvent::PeakConfirmed { .. })));
    }
}
