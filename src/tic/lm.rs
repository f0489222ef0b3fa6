//! Levenberg-Marquardt least squares with box bounds, for models of a few parameters.
//!
//! Each iteration solves the damped normal equations `(J'J + lambda diag(J'J)) d = J'r`
//! for the step `d`, with a central finite-difference Jacobian `J` and residuals `r`.
//! A step that lowers the sum of squared residuals is kept and lambda shrinks, so the
//! method moves towards Gauss-Newton. Otherwise lambda grows, towards a short gradient
//! step. Parameters are clamped to their bounds after every step.

/// Stopping rules of [`minimise`].
#[derive(Clone, Debug)]
pub struct LmSettings {
    /// Largest number of accepted or rejected steps. Default 300.
    pub max_iterations: usize,
    /// Stop when an accepted step lowers the sum of squares by less than this fraction
    /// of it. Default 1e-12.
    pub relative_tolerance: f64,
    /// Starting damping. Default 1e-3.
    pub initial_lambda: f64,
}

impl Default for LmSettings {
    fn default() -> LmSettings {
        LmSettings {
            max_iterations: 300,
            relative_tolerance: 1e-12,
            initial_lambda: 1e-3,
        }
    }
}

/// Outcome of one [`minimise`] run.
#[derive(Clone, Copy, Debug)]
pub struct LmResult<const N: usize> {
    pub params: [f64; N],
    /// Sum of squared residuals at `params`.
    pub sse: f64,
    pub iterations: usize,
    /// Whether a stopping rule other than the iteration limit ended the run.
    pub converged: bool,
}

/// Fits `model(params, t)` to the samples (`t`, `y`) from `start`, keeping every
/// parameter within `lower[i]..=upper[i]`.
///
/// Returns `None` when the model is not finite at the start point. `t` and `y` must have
/// the same length.
pub fn minimise<const N: usize>(
    model: impl Fn(&[f64; N], f64) -> f64,
    t: &[f64],
    y: &[f64],
    start: [f64; N],
    lower: [f64; N],
    upper: [f64; N],
    settings: &LmSettings,
) -> Option<LmResult<N>> {
    let clamp = |p: [f64; N]| -> [f64; N] {
        let mut out = p;
        for i in 0..N {
            out[i] = p[i].clamp(lower[i], upper[i]);
        }
        out
    };
    let sse_of = |p: &[f64; N]| -> f64 {
        t.iter()
            .zip(y)
            .map(|(&ti, &yi)| (yi - model(p, ti)).powi(2))
            .sum()
    };

    let mut params = clamp(start);
    let mut sse = sse_of(&params);
    if !sse.is_finite() {
        return None;
    }
    let mut lambda = settings.initial_lambda;
    let mut converged = false;
    let mut iterations = 0;
    let mut jacobian = vec![[0.0; N]; t.len()];

    while iterations < settings.max_iterations {
        iterations += 1;
        fill_jacobian(&model, t, &params, &lower, &upper, &mut jacobian);
        let (normal, gradient) = normal_equations(&model, t, y, &params, &jacobian);

        let mut accepted = false;
        while lambda < 1e16 {
            let mut damped = normal;
            for (i, row) in damped.iter_mut().enumerate() {
                row[i] += lambda * normal[i][i].max(1e-30);
            }
            let Some(step) = solve(damped, gradient) else {
                lambda *= 10.0;
                continue;
            };
            let mut candidate = params;
            for i in 0..N {
                candidate[i] += step[i];
            }
            let candidate = clamp(candidate);
            let candidate_sse = sse_of(&candidate);
            if candidate_sse.is_finite() && candidate_sse < sse {
                let gain = sse - candidate_sse;
                params = candidate;
                sse = candidate_sse;
                lambda = (lambda / 3.0).max(1e-12);
                accepted = true;
                if gain <= settings.relative_tolerance * sse.max(f64::MIN_POSITIVE) {
                    converged = true;
                }
                break;
            }
            lambda *= 4.0;
        }
        if !accepted || converged {
            // No step lowers the sum of squares at any damping: a (bounded) minimum.
            converged = true;
            break;
        }
    }
    Some(LmResult {
        params,
        sse,
        iterations,
        converged,
    })
}

/// Central differences, one-sided at a bound.
fn fill_jacobian<const N: usize>(
    model: &impl Fn(&[f64; N], f64) -> f64,
    t: &[f64],
    params: &[f64; N],
    lower: &[f64; N],
    upper: &[f64; N],
    jacobian: &mut [[f64; N]],
) {
    for j in 0..N {
        let scale = params[j]
            .abs()
            .max(1e-6 * (upper[j] - lower[j]).abs())
            .max(1e-12);
        let h = 1e-6 * scale;
        let mut forward = *params;
        let mut backward = *params;
        forward[j] = (params[j] + h).min(upper[j]);
        backward[j] = (params[j] - h).max(lower[j]);
        let width = forward[j] - backward[j];
        for (row, &ti) in jacobian.iter_mut().zip(t) {
            row[j] = if width > 0.0 {
                (model(&forward, ti) - model(&backward, ti)) / width
            } else {
                0.0
            };
        }
    }
}

/// `J'J` and `J'r`.
fn normal_equations<const N: usize>(
    model: &impl Fn(&[f64; N], f64) -> f64,
    t: &[f64],
    y: &[f64],
    params: &[f64; N],
    jacobian: &[[f64; N]],
) -> ([[f64; N]; N], [f64; N]) {
    let mut normal = [[0.0; N]; N];
    let mut gradient = [0.0; N];
    for ((row, &ti), &yi) in jacobian.iter().zip(t).zip(y) {
        let residual = yi - model(params, ti);
        for i in 0..N {
            gradient[i] += row[i] * residual;
            for k in 0..N {
                normal[i][k] += row[i] * row[k];
            }
        }
    }
    (normal, gradient)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting, or `None` when `a` is
/// singular.
pub fn solve<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    for col in 0..N {
        let pivot = (col..N).max_by(|&i, &k| a[i][col].abs().total_cmp(&a[k][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 || !a[pivot][col].is_finite() {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..N {
            let factor = a[row][col] / pivot_row[col];
            for (value, above) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *value -= factor * above;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_small_system() {
        let a = [[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]];
        let x = solve(a, [3.0, 5.0, 5.0]).unwrap();
        for (got, want) in x.iter().zip([1.0, 1.0, 1.0]) {
            assert!((got - want).abs() < 1e-12);
        }
        assert!(solve([[1.0, 2.0], [2.0, 4.0]], [1.0, 2.0]).is_none());
    }

    #[test]
    fn fits_exponential_decay() {
        let t: Vec<f64> = (0..50).map(|i| i as f64 * 0.1).collect();
        let y: Vec<f64> = t.iter().map(|&t| 3.0 * (-1.7 * t).exp() + 0.5).collect();
        let model = |p: &[f64; 3], t: f64| p[0] * (-p[1] * t).exp() + p[2];
        let fit = minimise(
            model,
            &t,
            &y,
            [1.0, 0.5, 0.0],
            [0.0, 0.0, -10.0],
            [10.0, 10.0, 10.0],
            &LmSettings::default(),
        )
        .unwrap();
        assert!(fit.converged);
        assert!((fit.params[0] - 3.0).abs() < 1e-6);
        assert!((fit.params[1] - 1.7).abs() < 1e-6);
        assert!((fit.params[2] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn bounds_hold() {
        let t: Vec<f64> = (0..20).map(f64::from).collect();
        let y: Vec<f64> = t.iter().map(|&t| 2.0 * t).collect();
        let model = |p: &[f64; 1], t: f64| p[0] * t;
        let fit = minimise(model, &t, &y, [0.5], [0.0], [1.5], &LmSettings::default()).unwrap();
        assert_eq!(fit.params[0], 1.5);
    }
}
