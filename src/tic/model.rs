//! The two bolus models and the perfusion parameters read from a fitted curve.
//!
//! With `tau = t - t0` and baseline `b`, both models are `b` for `tau <= 0` and above it:
//! - lognormal: `b + A / (tau s sqrt(2 pi)) exp(-(ln tau - m)^2 / (2 s^2))`, where `A`
//!   is the area under the bolus;
//! - gamma variate: `b + K tau^a exp(-tau / beta)`.
//!
//! The gamma variate is fitted as `b + PE (tau/tp)^a exp(a (1 - tau/tp))` with the peak
//! enhancement `PE` and the time to peak `tp = a beta`, because `K` spans hundreds of
//! orders of magnitude as `a` and `beta` vary. The report converts back to `K` and `beta`.

use std::f64::consts::{E, PI};

use serde::Serialize;

/// Number of fitted parameters of either model.
pub const PARAMETERS: usize = 5;

/// Fitted parameters in the order each model's `value` reads them: lognormal
/// `[b, A, t0, m, s]`, gamma variate `[b, PE, t0, a, tp]`.
pub type Params = [f64; PARAMETERS];

/// A bolus model of the time-intensity curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BolusModel {
    Lognormal,
    GammaVariate,
}

impl BolusModel {
    pub fn name(self) -> &'static str {
        match self {
            BolusModel::Lognormal => "lognormal",
            BolusModel::GammaVariate => "gamma_variate",
        }
    }

    /// Model intensity at time `t` in seconds.
    #[inline]
    pub fn value(self, p: &Params, t: f64) -> f64 {
        p[0] + self.enhancement(p, t - p[2])
    }

    /// Intensity above baseline `tau` seconds after `t0`; 0 for `tau <= 0`.
    #[inline]
    pub fn enhancement(self, p: &Params, tau: f64) -> f64 {
        if tau <= 0.0 {
            return 0.0;
        }
        match self {
            BolusModel::Lognormal => {
                let (area, m, s) = (p[1], p[3], p[4]);
                let z = (tau.ln() - m) / s;
                area / (tau * s * (2.0 * PI).sqrt()) * (-0.5 * z * z).exp()
            }
            BolusModel::GammaVariate => {
                let (peak, a, tp) = (p[1], p[3], p[4]);
                let x = tau / tp;
                peak * (a * (x.ln() + 1.0 - x)).exp()
            }
        }
    }

    /// Slope of the enhancement at `tau > 0`, per second.
    pub fn slope(self, p: &Params, tau: f64) -> f64 {
        if tau <= 0.0 {
            return 0.0;
        }
        let value = self.enhancement(p, tau);
        match self {
            BolusModel::Lognormal => {
                let (m, s) = (p[3], p[4]);
                let z = (tau.ln() - m) / s;
                -value * (1.0 + z / s) / tau
            }
            BolusModel::GammaVariate => {
                let (a, tp) = (p[3], p[4]);
                value * a * (1.0 / tau - 1.0 / tp)
            }
        }
    }

    /// Time from `t0` to the maximum: `exp(m - s^2)` (the lognormal mode) or `a beta`.
    pub fn time_to_peak(self, p: &Params) -> f64 {
        match self {
            BolusModel::Lognormal => (p[3] - p[4] * p[4]).exp(),
            BolusModel::GammaVariate => p[4],
        }
    }

    /// Mean transit time from `t0`: `exp(m + s^2/2)` or `(a + 1) beta`.
    pub fn mean_transit_time(self, p: &Params) -> f64 {
        match self {
            BolusModel::Lognormal => (p[3] + 0.5 * p[4] * p[4]).exp(),
            BolusModel::GammaVariate => (p[3] + 1.0) * p[4] / p[3],
        }
    }

    /// Parameters from the published form that [`BolusModel::published`] returns, in
    /// the same order.
    pub fn from_published(self, published: &Params) -> Params {
        match self {
            BolusModel::Lognormal => *published,
            BolusModel::GammaVariate => {
                let [b, k, t0, a, beta] = *published;
                let tp = a * beta;
                [b, k * tp.powf(a) * (-a).exp(), t0, a, tp]
            }
        }
    }

    /// Converts the parameters to the model's published form, with their report names: lognormal
    /// `baseline, area, t0_s, mu, sigma`; gamma variate `baseline, k, t0_s, alpha, beta_s`.
    pub fn published(self, p: &Params) -> Vec<(&'static str, f64)> {
        match self {
            BolusModel::Lognormal => vec![
                ("baseline", p[0]),
                ("area", p[1]),
                ("t0_s", p[2]),
                ("mu", p[3]),
                ("sigma", p[4]),
            ],
            BolusModel::GammaVariate => {
                let (peak, a, tp) = (p[1], p[3], p[4]);
                let beta = tp / a;
                let k = peak * (E / tp).powf(a);
                vec![
                    ("baseline", p[0]),
                    ("k", k),
                    ("t0_s", p[2]),
                    ("alpha", a),
                    ("beta_s", beta),
                ]
            }
        }
    }
}

/// Perfusion parameters of a fitted curve. Times are in seconds and intensities in the
/// curve's units (linear power relative to full scale).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Perfusion {
    /// Peak enhancement: maximum of the curve above baseline.
    pub pe: f64,
    /// Time to peak, from `t0`.
    pub ttp_s: f64,
    /// Fitted bolus start.
    pub t0_s: f64,
    /// Rise time: from 10% to 90% of `pe` on the wash-in.
    pub rt_s: f64,
    /// Mean transit time, from `t0`.
    pub mtt_s: f64,
    /// Wash-in area under the curve above baseline, from `t0` to `t0 + ttp_s`.
    pub wiauc: f64,
    /// Wash-in rate: maximum slope of the wash-in, per second.
    pub wir: f64,
}

/// Steps of the Simpson rule for WiAUC and of the grid search for WiR.
const STEPS: usize = 2000;

/// Computes the perfusion parameters of `model` with parameters `p`, or `None` when the
/// curve has no positive peak or a parameter comes out non-finite.
pub fn perfusion(model: BolusModel, p: &Params) -> Option<Perfusion> {
    let ttp = model.time_to_peak(p);
    let pe = model.enhancement(p, ttp);
    if !(pe > 0.0 && ttp > 0.0 && pe.is_finite() && ttp.is_finite()) {
        return None;
    }
    let rise_10 = wash_in_time(model, p, 0.1 * pe, ttp);
    let rise_90 = wash_in_time(model, p, 0.9 * pe, ttp);
    let result = Perfusion {
        pe,
        ttp_s: ttp,
        t0_s: p[2],
        rt_s: rise_90 - rise_10,
        mtt_s: model.mean_transit_time(p),
        wiauc: wash_in_area(model, p, ttp),
        wir: wash_in_rate(model, p, ttp),
    };
    let values = [
        result.rt_s,
        result.mtt_s,
        result.wiauc,
        result.wir,
        result.t0_s,
    ];
    values.iter().all(|v| v.is_finite()).then_some(result)
}

/// Time after `t0` at which the rising curve reaches `level`, by bisection on
/// `0..ttp`, where both models increase.
fn wash_in_time(model: BolusModel, p: &Params, level: f64, ttp: f64) -> f64 {
    let (mut low, mut high) = (0.0, ttp);
    for _ in 0..200 {
        let mid = 0.5 * (low + high);
        if model.enhancement(p, mid) < level {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

/// Composite Simpson rule over `0..ttp`.
fn wash_in_area(model: BolusModel, p: &Params, ttp: f64) -> f64 {
    let h = ttp / STEPS as f64;
    let mut sum = model.enhancement(p, 0.0) + model.enhancement(p, ttp);
    for i in 1..STEPS {
        let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += weight * model.enhancement(p, i as f64 * h);
    }
    sum * h / 3.0
}

/// Maximum slope over `0..ttp`: a grid search, then golden-section refinement around
/// the best grid point.
fn wash_in_rate(model: BolusModel, p: &Params, ttp: f64) -> f64 {
    let h = ttp / STEPS as f64;
    let best = (1..=STEPS)
        .map(|i| i as f64 * h)
        .max_by(|&a, &b| model.slope(p, a).total_cmp(&model.slope(p, b)))
        .unwrap_or(ttp);
    let (mut low, mut high) = ((best - h).max(1e-12 * ttp), (best + h).min(ttp));
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let left = high - ratio * (high - low);
        let right = low + ratio * (high - low);
        if model.slope(p, left) > model.slope(p, right) {
            high = right;
        } else {
            low = left;
        }
    }
    model.slope(p, 0.5 * (low + high)).max(model.slope(p, best))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_peak_is_at_mode() {
        let p = [0.1, 5.0, 2.0, 1.5, 0.5];
        let ttp = BolusModel::Lognormal.time_to_peak(&p);
        assert!((ttp - (1.5f64 - 0.25).exp()).abs() < 1e-12);
        let at_peak = BolusModel::Lognormal.enhancement(&p, ttp);
        assert!(at_peak > BolusModel::Lognormal.enhancement(&p, ttp * 0.999));
        assert!(at_peak > BolusModel::Lognormal.enhancement(&p, ttp * 1.001));
    }

    #[test]
    fn gamma_variate_forms_agree() {
        // b + K tau^a exp(-tau/beta) against the peak form.
        let p = [0.05, 0.8, 1.0, 2.5, 4.0];
        let published = BolusModel::GammaVariate.published(&p);
        let (k, a, beta) = (published[1].1, published[3].1, published[4].1);
        for tau in [0.3, 1.7, 4.0, 9.0] {
            let direct = 0.05 + k * f64::powf(tau, a) * (-tau / beta).exp();
            let value = BolusModel::GammaVariate.value(&p, 1.0 + tau);
            assert!((direct - value).abs() < 1e-12, "tau {tau}");
        }
    }

    #[test]
    fn slopes_match_differences() {
        for (model, p) in [
            (BolusModel::Lognormal, [0.0, 3.0, 0.0, 1.0, 0.6]),
            (BolusModel::GammaVariate, [0.0, 1.0, 0.0, 3.0, 5.0]),
        ] {
            for tau in [0.5, 2.0, 6.0] {
                let h = 1e-6;
                let numeric =
                    (model.enhancement(&p, tau + h) - model.enhancement(&p, tau - h)) / (2.0 * h);
                assert!(
                    (numeric - model.slope(&p, tau)).abs() < 1e-6,
                    "{model:?} tau {tau}"
                );
            }
        }
    }

    #[test]
    fn gamma_wash_in_rate_closed_form() {
        // The steepest point of tau^a exp(-tau/beta) is tau = beta (a - sqrt(a)).
        let p = [0.0, 1.0, 0.0, 4.0, 8.0];
        let beta = 2.0;
        let steepest = beta * (4.0 - 2.0);
        let want = BolusModel::GammaVariate.slope(&p, steepest);
        let got = perfusion(BolusModel::GammaVariate, &p).unwrap().wir;
        assert!((got - want).abs() < 1e-9 * want, "{got} vs {want}");
    }
}
