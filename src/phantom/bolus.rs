//! The lognormal bolus model of agent concentration over time, and its random draw.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::config::LesionProfile;

/// Lognormal bolus curve:
/// `C(t) = A / ((t - t0) sigma sqrt(2 pi)) exp(-(ln(t - t0) - mu)^2 / (2 sigma^2))` for
/// `t > t0`, and 0 before.
///
/// Here `C` is in linear echo power relative to the display reference power (the
/// perfusion map scales it per pixel), `t` and `t0` in seconds, `A` in power x seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LognormalBolus {
    /// `t0`: arrival time, in seconds from the first frame.
    pub arrival_s: f64,
    pub mu: f64,
    pub sigma: f64,
    /// `A`: area under the curve, in power x seconds.
    pub amplitude: f64,
}

impl LognormalBolus {
    /// Builds the curve that arrives at `arrival_s`, peaks `time_to_peak_s` later at `peak_power`,
    /// with shape `sigma` (larger is more skewed, with a longer wash-out).
    pub fn with_peak(arrival_s: f64, time_to_peak_s: f64, sigma: f64, peak_power: f64) -> Self {
        // The mode of a lognormal is exp(mu - sigma^2).
        let mu = time_to_peak_s.ln() + sigma * sigma;
        let unit = LognormalBolus {
            arrival_s,
            mu,
            sigma,
            amplitude: 1.0,
        };
        let amplitude = peak_power / unit.concentration(arrival_s + time_to_peak_s);
        LognormalBolus { amplitude, ..unit }
    }

    /// `C(t)` at `t` seconds.
    pub fn concentration(&self, t: f64) -> f64 {
        let dt = t - self.arrival_s;
        if dt <= 0.0 {
            return 0.0;
        }
        let z = (dt.ln() - self.mu) / self.sigma;
        let norm = dt * self.sigma * (2.0 * std::f64::consts::PI).sqrt();
        self.amplitude / norm * (-0.5 * z * z).exp()
    }

    /// Time of the maximum of `C`, in seconds from the first frame.
    pub fn peak_time_s(&self) -> f64 {
        self.arrival_s + (self.mu - self.sigma * self.sigma).exp()
    }
}

/// The two curves of an exam: the lesion's, and the later, lower parenchyma's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BolusPair {
    pub lesion: LognormalBolus,
    pub parenchyma: LognormalBolus,
}

/// Draws the bolus curves of one exam of `duration_s` seconds with the default lesion
/// profile except for `enhancement_ratio`; see [`draw_boluses_for`].
pub fn draw_boluses<R: Rng>(
    rng: &mut R,
    duration_s: f64,
    enhancement_ratio: [f64; 2],
) -> BolusPair {
    let profile = LesionProfile {
        enhancement_ratio,
        ..LesionProfile::default()
    };
    draw_boluses_for(rng, duration_s, &profile)
}

/// Draws the bolus curves of one exam of `duration_s` seconds for a lesion `profile`.
///
/// Arrival is drawn in 5-15 s and time to peak in 10-30 s after arrival. When their sum
/// passes 80% of the exam, both shrink by one factor, so the peak and the start of the
/// wash-out are always recorded. The lesion peak power is -11 to -6 dB of the display
/// reference. The parenchyma arrives 1-4 s later (shrunk alike), peaks 1.2-1.6 times
/// later after its arrival, and is lower by the drawn `enhancement_ratio`. Last, the
/// profile's arrival scale, peak gain and wash-out scale change the lesion curve only;
/// at their defaults (1, 0 dB, 1) the curves are bit for bit those of the plain draw.
pub fn draw_boluses_for<R: Rng>(
    rng: &mut R,
    duration_s: f64,
    profile: &LesionProfile,
) -> BolusPair {
    let enhancement_ratio = profile.enhancement_ratio;
    let mut arrival = rng.random_range(5.0..=15.0);
    let mut time_to_peak = rng.random_range(10.0..=30.0);
    let latest_peak = 0.8 * duration_s;
    let shrink = (latest_peak / (arrival + time_to_peak)).min(1.0);
    arrival *= shrink;
    time_to_peak *= shrink;

    let sigma = rng.random_range(0.35..=0.75);
    let peak_db: f64 = rng.random_range(-11.0..=-6.0);
    let lesion_peak = 10f64.powf(peak_db / 10.0);

    let delay = rng.random_range(1.0..=4.0) * shrink;
    let ttp_factor = rng.random_range(1.2..=1.6);
    let sigma_factor = rng.random_range(1.0..=1.3);
    let ratio = rng.random_range(enhancement_ratio[0]..=enhancement_ratio[1]);
    let parenchyma = LognormalBolus::with_peak(
        arrival + delay,
        time_to_peak * ttp_factor,
        sigma * sigma_factor,
        lesion_peak / ratio,
    );

    // The arrival scale is at most 1, so the lesion peak still falls in the recorded part.
    let lesion = LognormalBolus::with_peak(
        arrival * profile.arrival_scale,
        time_to_peak,
        sigma * profile.washout_scale,
        lesion_peak * 10f64.powf(profile.peak_gain_db / 10.0),
    );
    BolusPair { lesion, parenchyma }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn bolus_peaks_where_and_how_high_requested() {
        let bolus = LognormalBolus::with_peak(8.0, 15.0, 0.5, 0.1);
        assert!((bolus.peak_time_s() - 23.0).abs() < 1e-9);
        assert!((bolus.concentration(23.0) - 0.1).abs() < 1e-12);
        assert!(bolus.concentration(22.9) < 0.1);
        assert!(bolus.concentration(23.1) < 0.1);
        assert_eq!(bolus.concentration(8.0), 0.0);
        assert_eq!(bolus.concentration(3.0), 0.0);
    }

    #[test]
    fn bolus_area_is_amplitude() {
        // The lognormal density integrates to 1, so the curve integrates to A.
        let bolus = LognormalBolus::with_peak(5.0, 12.0, 0.6, 0.2);
        let step = 0.001;
        let area: f64 = (0..400_000)
            .map(|i| bolus.concentration(5.0 + step * (f64::from(i) + 0.5)) * step)
            .sum();
        assert!((area - bolus.amplitude).abs() < 1e-3 * bolus.amplitude);
    }

    #[test]
    fn drawn_peak_fits_in_short_exam() {
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let pair = draw_boluses(&mut rng, 10.0, [2.0, 3.0]);
            assert!(pair.lesion.peak_time_s() <= 8.0 + 1e-9);
            assert!(pair.parenchyma.arrival_s > pair.lesion.arrival_s);
            let lesion_peak = pair.lesion.concentration(pair.lesion.peak_time_s());
            let parenchyma_peak = pair.parenchyma.concentration(pair.parenchyma.peak_time_s());
            assert!(parenchyma_peak < lesion_peak);
        }
    }
}
