//! Logistic regression by maximum likelihood: Newton-Raphson (equivalently IRLS) with step
//! halving, standard errors from the inverse Fisher information, Wald tests and odds ratios.
//!
//! The fit never returns diverging coefficients: perfect or quasi-complete separation and
//! linearly dependent columns are errors.

use super::linalg::Cholesky;
use super::special::{normal_sf, sigmoid, Z_975};
use super::{check_finite, check_len, class_counts, SeparationKind, StatsError};

/// Iteration limits and tolerances of [`fit_logistic`].
#[derive(Debug, Clone, Copy)]
pub struct LogisticOptions {
    /// Maximum number of Newton steps.
    pub max_iterations: usize,
    /// Convergence when every step component is below `tolerance * (1 + |coefficient|)`.
    pub tolerance: f64,
}

impl Default for LogisticOptions {
    /// 100 steps and a tolerance of 1e-10: Newton converges quadratically, so a finite
    /// maximum is reached in well under 30 steps, and the tolerance leaves the estimates
    /// accurate far beyond the 1e-6 at which they are compared with statsmodels.
    fn default() -> LogisticOptions {
        LogisticOptions {
            max_iterations: 100,
            tolerance: 1e-10,
        }
    }
}

/// A fitted logistic model. Index 0 of every vector is the intercept when the model has
/// one; the predictors follow in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticFit {
    pub coefficients: Vec<f64>,
    pub std_errors: Vec<f64>,
    /// Inverse Fisher information at the estimate, row-major.
    pub covariance: Vec<f64>,
    pub log_likelihood: f64,
    pub iterations: usize,
    pub has_intercept: bool,
}

/// One row of a coefficient table: estimate, standard error, Wald z and two-sided p, odds
/// ratio exp(estimate) with its 95% Wald interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoefficientRow {
    pub name: String,
    pub estimate: f64,
    pub std_error: f64,
    pub z: f64,
    pub p_value: f64,
    pub odds_ratio: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl LogisticFit {
    /// Returns the coefficient table; `names` name the predictors (not the intercept, which
    /// is named "(intercept)").
    pub fn table(&self, names: &[String]) -> Vec<CoefficientRow> {
        let mut all_names = Vec::with_capacity(self.coefficients.len());
        if self.has_intercept {
            all_names.push("(intercept)".to_string());
        }
        all_names.extend(names.iter().cloned());

        self.coefficients
            .iter()
            .zip(&self.std_errors)
            .zip(all_names)
            .map(|((&estimate, &std_error), name)| {
                let z = estimate / std_error;
                CoefficientRow {
                    name,
                    estimate,
                    std_error,
                    z,
                    p_value: (2.0 * normal_sf(z.abs())).min(1.0),
                    odds_ratio: estimate.exp(),
                    ci_low: (estimate - Z_975 * std_error).exp(),
                    ci_high: (estimate + Z_975 * std_error).exp(),
                }
            })
            .collect()
    }

    /// Returns the Wald two-sided p-value of each coefficient.
    pub fn p_values(&self) -> Vec<f64> {
        self.coefficients
            .iter()
            .zip(&self.std_errors)
            .map(|(b, se)| (2.0 * normal_sf((b / se).abs())).min(1.0))
            .collect()
    }

    /// Returns the linear predictor for one observation's predictor values (no offset).
    pub fn linear_predictor(&self, values: &[f64]) -> f64 {
        let (intercept, slopes) = if self.has_intercept {
            (self.coefficients[0], &self.coefficients[1..])
        } else {
            (0.0, &self.coefficients[..])
        };
        intercept + slopes.iter().zip(values).map(|(b, x)| b * x).sum::<f64>()
    }
}

/// Fits P(y = 1) = sigmoid(intercept + columns * b + offset) by maximum likelihood.
///
/// `columns` are the predictors, one slice per predictor with one value per observation.
/// Errors: lengths differ, non-finite values, a label with one class only, linearly
/// dependent columns ([`StatsError::RankDeficient`] naming the column, 1-based after the
/// intercept), separation ([`StatsError::Separation`]), or no convergence.
pub fn fit_logistic(
    columns: &[&[f64]],
    labels: &[bool],
    offset: Option<&[f64]>,
    intercept: bool,
    options: LogisticOptions,
) -> Result<LogisticFit, StatsError> {
    let design = Design::new(columns, labels, offset, intercept)?;
    design.check_rank()?;
    design.newton(options)
}

/// The design matrix in column form, with the intercept as an explicit column of ones.
struct Design<'a> {
    columns: Vec<Vec<f64>>,
    labels: &'a [bool],
    offset: Option<&'a [f64]>,
    intercept: bool,
}

impl<'a> Design<'a> {
    fn new(
        columns: &[&[f64]],
        labels: &'a [bool],
        offset: Option<&'a [f64]>,
        intercept: bool,
    ) -> Result<Design<'a>, StatsError> {
        let n = labels.len();
        let (positives, negatives) = class_counts(labels);
        if positives == 0 || negatives == 0 {
            return Err(StatsError::TooFew(format!(
                "the label has one class only ({positives} positive, {negatives} negative): \
                 a logistic model needs both"
            )));
        }

        let mut all = Vec::with_capacity(columns.len() + 1);
        if intercept {
            all.push(vec![1.0; n]);
        }
        for (j, column) in columns.iter().enumerate() {
            check_len(&format!("predictor {}", j + 1), column.len(), n)?;
            check_finite(&format!("predictor {}", j + 1), column)?;
            all.push(column.to_vec());
        }
        if let Some(offset) = offset {
            check_len("offset", offset.len(), n)?;
            check_finite("offset", offset)?;
        }
        if all.is_empty() {
            return Err(StatsError::InvalidParameter(
                "a logistic model needs an intercept or at least one predictor".to_string(),
            ));
        }
        if n <= all.len() {
            return Err(StatsError::TooFew(format!(
                "{n} observations cannot estimate {} parameters",
                all.len()
            )));
        }
        Ok(Design {
            columns: all,
            labels,
            offset,
            intercept,
        })
    }

    /// Rejects linearly dependent columns through a Cholesky factorisation of the
    /// correlation-scaled cross-product matrix.
    fn check_rank(&self) -> Result<(), StatsError> {
        let p = self.columns.len();
        let weights = vec![1.0; self.labels.len()];
        let mut cross = self.weighted_cross_product(&weights);
        let scales: Vec<f64> = (0..p).map(|j| cross[j * p + j].sqrt()).collect();
        if let Some(j) = scales.iter().position(|&s| s == 0.0) {
            return Err(StatsError::RankDeficient(format!(
                "predictor {} is all zeros",
                self.predictor_number(j)
            )));
        }
        for a in 0..p {
            for b in 0..p {
                cross[a * p + b] /= scales[a] * scales[b];
            }
        }
        Cholesky::new(&cross, p, 1e-10).map(|_| ()).map_err(|j| {
            StatsError::RankDeficient(format!(
                "predictor {} is a linear combination of the columns before it{}",
                self.predictor_number(j),
                if self.intercept {
                    " (the intercept included: a constant predictor is one)"
                } else {
                    ""
                }
            ))
        })
    }

    /// Predictor number for messages: 1-based, not counting the intercept.
    fn predictor_number(&self, column: usize) -> usize {
        if self.intercept {
            column
        } else {
            column + 1
        }
    }

    fn linear_predictor(&self, beta: &[f64]) -> Vec<f64> {
        let mut eta = match self.offset {
            Some(offset) => offset.to_vec(),
            None => vec![0.0; self.labels.len()],
        };
        for (column, b) in self.columns.iter().zip(beta) {
            for (e, x) in eta.iter_mut().zip(column) {
                *e += b * x;
            }
        }
        eta
    }

    fn log_likelihood(&self, eta: &[f64]) -> f64 {
        eta.iter()
            .zip(self.labels)
            .map(|(&e, &y)| {
                // log(1 + e^eta) computed without overflow.
                let softplus = e.max(0.0) + (-e.abs()).exp().ln_1p();
                if y {
                    e - softplus
                } else {
                    -softplus
                }
            })
            .sum()
    }

    fn weighted_cross_product(&self, weights: &[f64]) -> Vec<f64> {
        let p = self.columns.len();
        let mut cross = vec![0.0; p * p];
        for a in 0..p {
            for b in a..p {
                let value: f64 = self.columns[a]
                    .iter()
                    .zip(&self.columns[b])
                    .zip(weights)
                    .map(|((x, z), w)| x * z * w)
                    .sum();
                cross[a * p + b] = value;
                cross[b * p + a] = value;
            }
        }
        cross
    }

    fn newton(&self, options: LogisticOptions) -> Result<LogisticFit, StatsError> {
        let p = self.columns.len();
        let mut beta = vec![0.0; p];
        let mut eta = self.linear_predictor(&beta);
        let mut log_likelihood = self.log_likelihood(&eta);

        for iteration in 1..=options.max_iterations {
            let probabilities: Vec<f64> = eta.iter().map(|&e| sigmoid(e)).collect();
            let weights: Vec<f64> = probabilities.iter().map(|q| q * (1.0 - q)).collect();
            let gradient: Vec<f64> = self
                .columns
                .iter()
                .map(|column| {
                    column
                        .iter()
                        .zip(&probabilities)
                        .zip(self.labels)
                        .map(|((x, q), &y)| x * (f64::from(u8::from(y)) - q))
                        .sum()
                })
                .collect();
            let information = self.weighted_cross_product(&weights);
            let Ok(factor) = Cholesky::new(&information, p, 1e-14) else {
                return Err(self.separation_or(&eta, "the fisher information became singular"));
            };
            let step = factor.solve(&gradient);

            let (new_beta, new_eta, new_log_likelihood) =
                self.halve_step(&beta, &step, log_likelihood);
            let converged = step
                .iter()
                .zip(&beta)
                .all(|(d, b)| d.abs() <= options.tolerance * (1.0 + b.abs()));
            beta = new_beta;
            eta = new_eta;
            log_likelihood = new_log_likelihood;

            if converged {
                return self.finish(beta, &eta, log_likelihood, iteration);
            }
        }
        Err(self.separation_or(
            &eta,
            &format!(
                "logistic regression after {} newton steps",
                options.max_iterations
            ),
        ))
    }

    /// Takes the Newton step, halved up to 30 times until the log-likelihood does not
    /// decrease.
    fn halve_step(&self, beta: &[f64], step: &[f64], current: f64) -> (Vec<f64>, Vec<f64>, f64) {
        let mut scale = 1.0;
        let mut candidate = Vec::new();
        let mut eta = Vec::new();
        let mut value = f64::NEG_INFINITY;
        for _ in 0..30 {
            candidate = beta.iter().zip(step).map(|(b, d)| b + scale * d).collect();
            eta = self.linear_predictor(&candidate);
            value = self.log_likelihood(&eta);
            if value >= current - 1e-12 * current.abs() {
                break;
            }
            scale *= 0.5;
        }
        (candidate, eta, value)
    }

    fn finish(
        &self,
        beta: Vec<f64>,
        eta: &[f64],
        log_likelihood: f64,
        iterations: usize,
    ) -> Result<LogisticFit, StatsError> {
        let p = self.columns.len();
        let weights: Vec<f64> = eta
            .iter()
            .map(|&e| {
                let q = sigmoid(e);
                q * (1.0 - q)
            })
            .collect();
        let information = self.weighted_cross_product(&weights);
        let factor = Cholesky::new(&information, p, 1e-14)
            .map_err(|_| self.separation_or(eta, "the fisher information is singular"))?;
        let covariance = factor.inverse();
        let std_errors = (0..p).map(|j| covariance[j * p + j].sqrt()).collect();
        Ok(LogisticFit {
            coefficients: beta,
            std_errors,
            covariance,
            log_likelihood,
            iterations,
            has_intercept: self.intercept,
        })
    }

    /// Classifies a failed fit: separation when some observations are fitted to their own
    /// label with probability within 1e-8 of 0 or 1, else non-convergence.
    fn separation_or(&self, eta: &[f64], what: &str) -> StatsError {
        let fitted_exactly = eta
            .iter()
            .zip(self.labels)
            .filter(|(&e, &y)| if y { e > 18.4 } else { e < -18.4 })
            .count();
        let n = self.labels.len();
        if fitted_exactly == 0 {
            return StatsError::NotConverged(what.to_string());
        }
        let kind = if fitted_exactly == n {
            SeparationKind::Complete
        } else {
            SeparationKind::QuasiComplete
        };
        StatsError::Separation {
            kind,
            detail: format!(
                "{fitted_exactly} of {n} observations are predicted with probability 0 or 1, \
                 so the maximum-likelihood estimates diverge; drop or merge the separating \
                 predictor or use a penalised model"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intercept_only_matches_log_odds() {
        let labels = [true, true, true, false];
        let fit = fit_logistic(&[], &labels, None, true, LogisticOptions::default()).unwrap();
        assert!((fit.coefficients[0] - 3.0_f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn complete_separation_is_an_error() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let labels = [false, false, false, true, true, true];
        let error =
            fit_logistic(&[&x], &labels, None, true, LogisticOptions::default()).unwrap_err();
        assert!(matches!(
            error,
            StatsError::Separation {
                kind: SeparationKind::Complete,
                ..
            }
        ));
    }

    #[test]
    fn quasi_complete_separation_is_an_error() {
        // x <= 3 are all negative; at x = 4 both classes occur.
        let x = [1.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0];
        let labels = [false, false, false, false, true, true, true];
        let error =
            fit_logistic(&[&x], &labels, None, true, LogisticOptions::default()).unwrap_err();
        assert!(matches!(error, StatsError::Separation { .. }), "{error}");
    }

    #[test]
    fn constant_predictor_is_rank_deficient() {
        let x = [2.0; 6];
        let labels = [false, true, false, true, true, false];
        let error =
            fit_logistic(&[&x], &labels, None, true, LogisticOptions::default()).unwrap_err();
        assert!(matches!(error, StatsError::RankDeficient(_)), "{error}");
    }

    #[test]
    fn constant_label_is_an_error() {
        let x = [1.0, 2.0, 3.0];
        let error =
            fit_logistic(&[&x], &[true; 3], None, true, LogisticOptions::default()).unwrap_err();
        assert!(matches!(error, StatsError::TooFew(_)), "{error}");
    }
}
