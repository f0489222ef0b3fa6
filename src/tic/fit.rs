//! Fitting the bolus models to the unflagged samples of a curve.
//!
//! The samples are scaled so the largest intensity is 1. Each model is fitted by
//! [`super::lm::minimise`] from nine start points: three bolus starts `t0` before the
//! estimated arrival, each with three shapes (lognormal `s` of 0.3, 0.6 and 1.0,
//! gamma-variate `a` of 1.5, 3 and 6). The fit with the lowest sum of squares wins.

use super::lm::{minimise, LmSettings};
use super::model::{perfusion, BolusModel, Params, Perfusion, PARAMETERS};

/// A fitted bolus model with its quality.
#[derive(Clone, Debug)]
pub struct ModelFit {
    pub model: BolusModel,
    /// Parameters in the curve's own units, in the order [`BolusModel::value`] reads.
    pub params: Params,
    /// Coefficient of determination on the fitted samples.
    pub r2: f64,
    /// Akaike information criterion `n ln(SSE/n) + 2k` with `k` = 5.
    pub aic: f64,
    pub sse: f64,
    /// Samples fitted.
    pub samples: usize,
    pub iterations: usize,
    pub converged: bool,
    /// `None` when the fitted curve has no positive peak.
    pub perfusion: Option<Perfusion>,
}

/// Fits `model` to (`t`, `y`), or returns `None` when there are fewer samples than
/// parameters, the times span no interval, or `y` is not positive somewhere.
pub fn fit_model(model: BolusModel, t: &[f64], y: &[f64]) -> Option<ModelFit> {
    if t.len() != y.len() || t.len() <= PARAMETERS {
        return None;
    }
    let scale = y.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
    let (first, last) = (t[0], t[t.len() - 1]);
    let span = last - first;
    if !(scale > 0.0 && span > 0.0 && scale.is_finite() && span.is_finite()) {
        return None;
    }
    let scaled: Vec<f64> = y.iter().map(|v| v / scale).collect();
    let guess = Guess::from_samples(t, &scaled);
    let (lower, upper) = bounds(model, first, span, t.len());

    let settings = LmSettings::default();
    let mut best: Option<super::lm::LmResult<PARAMETERS>> = None;
    for start in guess.starts(model) {
        let value = |p: &Params, ti: f64| model.value(p, ti);
        let Some(result) = minimise(value, t, &scaled, start, lower, upper, &settings) else {
            continue;
        };
        if best.is_none_or(|b| result.sse < b.sse) {
            best = Some(result);
        }
    }
    let best = best?;

    let mut params = best.params;
    params[0] *= scale;
    params[1] *= scale;
    let sse = best.sse * scale * scale;
    Some(ModelFit {
        model,
        params,
        r2: r_squared(&scaled, best.sse),
        aic: aic(sse, t.len()),
        sse,
        samples: t.len(),
        iterations: best.iterations,
        converged: best.converged,
        perfusion: perfusion(model, &params),
    })
}

/// `1 - SSE / SST`; 0 when the samples are constant.
fn r_squared(y: &[f64], sse: f64) -> f64 {
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let total: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if total > 0.0 {
        1.0 - sse / total
    } else {
        0.0
    }
}

/// AIC of a least-squares fit with Gaussian errors; an exact fit is floored at an SSE of
/// 1e-300 so the value stays finite.
fn aic(sse: f64, n: usize) -> f64 {
    let n = n as f64;
    n * (sse.max(1e-300) / n).ln() + 2.0 * PARAMETERS as f64
}

/// Bounds in scaled units: baseline and peak within a few times the largest sample,
/// `t0` from one span before the first sample to the last sample, shapes within what a
/// bolus can look like over the clip.
fn bounds(model: BolusModel, first: f64, span: f64, n: usize) -> (Params, Params) {
    let spacing = span / n as f64;
    match model {
        BolusModel::Lognormal => (
            [-0.5, 0.0, first - span, (spacing / 10.0).ln(), 0.05],
            [
                1.5,
                1e3 * span.max(1.0),
                first + span,
                (10.0 * span).ln(),
                3.0,
            ],
        ),
        BolusModel::GammaVariate => (
            [-0.5, 0.0, first - span, 1.0, spacing / 10.0],
            [1.5, 10.0, first + span, 50.0, 10.0 * span],
        ),
    }
}

/// Rough baseline, peak and arrival read off the samples, to place the start points.
struct Guess {
    baseline: f64,
    peak: f64,
    peak_time: f64,
    arrival: f64,
}

impl Guess {
    fn from_samples(t: &[f64], y: &[f64]) -> Guess {
        let smooth: Vec<f64> = (0..y.len())
            .map(|i| {
                let window = &y[i.saturating_sub(2)..(i + 3).min(y.len())];
                window.iter().sum::<f64>() / window.len() as f64
            })
            .collect();
        let head = (y.len() / 10).max(3).min(y.len());
        let mut first: Vec<f64> = smooth[..head].to_vec();
        first.sort_by(f64::total_cmp);
        let baseline = first[first.len() / 2];
        let (peak_index, &peak) = smooth
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &baseline));
        let level = baseline + 0.1 * (peak - baseline);
        let arrival_index = smooth[..=peak_index]
            .iter()
            .position(|&v| v >= level)
            .unwrap_or(0);
        Guess {
            baseline,
            peak,
            peak_time: t[peak_index],
            arrival: t[arrival_index],
        }
    }

    fn starts(&self, model: BolusModel) -> Vec<Params> {
        let rise = (self.peak_time - self.arrival).max(1e-3);
        let height = (self.peak - self.baseline).max(1e-6);
        let mut starts = Vec::with_capacity(9);
        for lead in [0.1, 0.4, 0.8] {
            let t0 = self.arrival - lead * rise;
            let to_peak = self.peak_time - t0;
            match model {
                BolusModel::Lognormal => {
                    for s in [0.3, 0.6, 1.0] {
                        let m = to_peak.ln() + s * s;
                        let unit = [0.0, 1.0, 0.0, m, s];
                        let area = height / BolusModel::Lognormal.enhancement(&unit, to_peak);
                        starts.push([self.baseline, area, t0, m, s]);
                    }
                }
                BolusModel::GammaVariate => {
                    for a in [1.5, 3.0, 6.0] {
                        starts.push([self.baseline, height, t0, a, to_peak]);
                    }
                }
            }
        }
        starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_samples_give_no_fit() {
        let t = [0.0, 1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 2.0, 3.0, 2.0, 1.0];
        assert!(fit_model(BolusModel::Lognormal, &t, &y).is_none());
    }

    #[test]
    fn zero_curve_gives_no_fit() {
        let t: Vec<f64> = (0..20).map(f64::from).collect();
        assert!(fit_model(BolusModel::GammaVariate, &t, &[0.0; 20]).is_none());
    }
}
