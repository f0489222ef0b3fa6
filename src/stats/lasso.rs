//! LASSO-penalised logistic regression following glmnet's conventions (family binomial,
//! alpha 1), fitted by coordinate descent along a lambda path, and its K-fold
//! cross-validation.
//!
//! The objective at each lambda is `-loglik / n + lambda * sum |b_j|`, with the intercept
//! unpenalised. Unlike glmnet's default (`standardize = TRUE`), the columns are used as
//! given: callers pass features already z-scored with the training rows' mean and sample
//! standard deviation, so the coefficients apply directly to those z-scores.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::special::sigmoid;
use super::{check_finite, check_len, class_counts, StatsError};

/// Settings of the path and the coordinate descent.
#[derive(Debug, Clone, Copy)]
pub struct LassoOptions {
    /// Number of lambda values on the path (glmnet's `nlambda`).
    pub lambda_count: usize,
    /// Smallest lambda as a fraction of lambda_max; `None` takes glmnet's default of 0.01
    /// when there are fewer observations than features and 1e-4 otherwise.
    pub lambda_min_ratio: Option<f64>,
    /// Convergence threshold of both the inner (coordinate descent) and the outer (IRLS)
    /// loop, on glmnet's scale: the largest weighted squared change of a coefficient,
    /// `(sum_i w_i x_ij^2 / n) * delta_j^2`, intercept included.
    pub tolerance: f64,
    pub max_outer_iterations: usize,
    pub max_inner_sweeps: usize,
    /// Stop the path early by glmnet's rules for the binomial family (after at least 5
    /// lambdas): when the deviance ratio exceeds 0.999, or grows by less than 1e-5 from
    /// one lambda to the next.
    pub early_stop: bool,
    /// Threads that fit the cross-validation folds; 0 takes one per available core. The
    /// result does not depend on it.
    pub threads: usize,
}

/// Deviance ratio beyond which the path stops (glmnet's `devmax`).
const MAX_DEVIANCE_RATIO: f64 = 0.999;
/// Smallest growth of the deviance ratio that continues the path (glmnet's `fdev`).
const MIN_DEVIANCE_RATIO_GAIN: f64 = 1e-5;
/// Number of lambdas fitted before the early-stop rules apply (glmnet's `mnlam`).
const MIN_LAMBDAS_BEFORE_STOP: usize = 5;

impl Default for LassoOptions {
    /// 100 lambdas and a tolerance of 1e-10, far below glmnet's `thresh` of 1e-7, so that
    /// coefficients of z-scored features settle to about 1e-5 and the path agrees with an
    /// independent solver (scikit-learn's saga, tests/fixtures/stats/lasso.json) to 1e-4.
    fn default() -> LassoOptions {
        LassoOptions {
            lambda_count: 100,
            lambda_min_ratio: None,
            tolerance: 1e-10,
            max_outer_iterations: 500,
            max_inner_sweeps: 100_000,
            early_stop: true,
            threads: 0,
        }
    }
}

/// Solutions along a decreasing lambda path.
#[derive(Debug, Clone, PartialEq)]
pub struct LassoPath {
    pub lambdas: Vec<f64>,
    pub intercepts: Vec<f64>,
    /// One coefficient vector (one value per column) per lambda.
    pub coefficients: Vec<Vec<f64>>,
    /// Whether the descent met its tolerance at each lambda.
    pub converged: Vec<bool>,
}

/// Cross-validated choice of lambda.
#[derive(Debug, Clone, PartialEq)]
pub struct LassoCv {
    /// Fit on all rows along the path.
    pub path: LassoPath,
    /// Mean binomial deviance on the held-out folds, per lambda.
    pub cv_mean: Vec<f64>,
    /// Its standard error, per lambda.
    pub cv_std_error: Vec<f64>,
    pub index_min: usize,
    pub index_1se: usize,
    pub lambda_min: f64,
    pub lambda_1se: f64,
}

/// Returns glmnet's lambda path: `lambda_count` values log-spaced from lambda_max (the
/// smallest lambda at which every coefficient is zero, max_j |x_j . (y - mean y)| / n)
/// down to lambda_max times the minimum ratio.
pub fn lambda_path(
    columns: &[Vec<f64>],
    labels: &[bool],
    options: &LassoOptions,
) -> Result<Vec<f64>, StatsError> {
    check_inputs(columns, labels)?;
    if options.lambda_count < 2 {
        return Err(StatsError::InvalidParameter(format!(
            "a lambda path needs at least 2 values, got {}",
            options.lambda_count
        )));
    }
    let n = labels.len() as f64;
    let mean = class_counts(labels).0 as f64 / n;
    let lambda_max = columns
        .iter()
        .map(|column| {
            let dot: f64 = column
                .iter()
                .zip(labels)
                .map(|(x, &y)| x * (f64::from(u8::from(y)) - mean))
                .sum();
            (dot / n).abs()
        })
        .fold(0.0, f64::max);
    if lambda_max.is_nan() || lambda_max <= 0.0 {
        return Err(StatsError::Undefined(
            "every feature is orthogonal to the label (lambda_max is 0), so the lasso path \
             is empty"
                .to_string(),
        ));
    }

    let ratio = match options.lambda_min_ratio {
        Some(ratio) if ratio > 0.0 && ratio < 1.0 => ratio,
        Some(ratio) => {
            return Err(StatsError::InvalidParameter(format!(
                "lambda_min_ratio {ratio} is outside (0, 1)"
            )))
        }
        None if labels.len() < columns.len() => 0.01,
        None => 1e-4,
    };
    let last = (options.lambda_count - 1) as f64;
    Ok((0..options.lambda_count)
        .map(|k| lambda_max * ratio.powf(k as f64 / last))
        .collect())
}

/// Fits the lasso at the lambdas of `lambdas` (decreasing), each fit warm-started from the
/// previous one. With [`LassoOptions::early_stop`] the path may end before the last
/// lambda, so the returned path can be shorter than `lambdas`. A lambda whose descent
/// misses the tolerance keeps its last iterate and is flagged in
/// [`LassoPath::converged`].
pub fn lasso_path(
    columns: &[Vec<f64>],
    labels: &[bool],
    lambdas: &[f64],
    options: &LassoOptions,
) -> Result<LassoPath, StatsError> {
    check_inputs(columns, labels)?;
    let mut solver = Solver::new(columns, labels);
    let mut path = LassoPath {
        lambdas: lambdas.to_vec(),
        intercepts: Vec::with_capacity(lambdas.len()),
        coefficients: Vec::with_capacity(lambdas.len()),
        converged: Vec::with_capacity(lambdas.len()),
    };
    let null_deviance = solver.deviance();
    let mut previous_ratio = 0.0;
    for (k, &lambda) in lambdas.iter().enumerate() {
        let previous_lambda = if k == 0 { lambda } else { lambdas[k - 1] };
        let converged = solver.solve_screened(lambda, previous_lambda, options);
        if !converged {
            log::warn!("lasso descent did not converge at lambda {lambda:.6e}");
        }
        path.intercepts.push(solver.intercept);
        path.coefficients.push(solver.beta.clone());
        path.converged.push(converged);

        let ratio = 1.0 - solver.deviance() / null_deviance;
        let stop = ratio > MAX_DEVIANCE_RATIO || ratio - previous_ratio < MIN_DEVIANCE_RATIO_GAIN;
        if options.early_stop && k + 1 >= MIN_LAMBDAS_BEFORE_STOP && stop {
            log::debug!(
                "lasso path stops after {} lambdas (deviance ratio {ratio:.6})",
                k + 1
            );
            break;
        }
        previous_ratio = ratio;
    }
    path.lambdas.truncate(path.coefficients.len());
    Ok(path)
}

/// Assigns each observation a fold in 0..`folds`, stratified by class. The members of each
/// class are shuffled with a ChaCha8 generator seeded by `seed` and dealt round-robin. The
/// negatives continue where the positives stopped, so fold sizes differ by at most one.
///
/// Errors: fewer than 2 folds, or a class with fewer members than folds (every fold must
/// hold both classes for its held-out deviance to be defined). The message states how many
/// folds the data allow.
pub fn stratified_folds(
    labels: &[bool],
    folds: usize,
    seed: u64,
) -> Result<Vec<usize>, StatsError> {
    check_fold_count(labels, folds)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut positives: Vec<usize> = (0..labels.len()).filter(|&i| labels[i]).collect();
    let mut negatives: Vec<usize> = (0..labels.len()).filter(|&i| !labels[i]).collect();
    positives.shuffle(&mut rng);
    negatives.shuffle(&mut rng);

    let mut assignment = vec![0; labels.len()];
    for (position, &index) in positives.iter().chain(&negatives).enumerate() {
        assignment[index] = position % folds;
    }
    Ok(assignment)
}

/// Rejects a fold count that some class cannot fill.
fn check_fold_count(labels: &[bool], folds: usize) -> Result<(), StatsError> {
    if folds < 2 {
        return Err(StatsError::InvalidParameter(format!(
            "cross-validation needs at least 2 folds, got {folds}"
        )));
    }
    let (positives, negatives) = class_counts(labels);
    let smaller = positives.min(negatives);
    if smaller < folds {
        let class = if positives < negatives {
            "positive"
        } else {
            "negative"
        };
        return Err(StatsError::TooFew(format!(
            "the {class} class has {smaller} members, fewer than the {folds} folds: every \
             fold needs one of each class, so use at most {smaller} folds{}",
            if smaller < 2 {
                " (cross-validation needs at least 2 members per class)"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Cross-validates the lasso along the path of the full data, as `cv.glmnet` does with
/// `type.measure = "deviance"` and `grouped = TRUE`. The folds are fitted at the lambdas
/// of the full-data path, after its early stop.
///
/// Each fold's held-out binomial deviance (probabilities clipped to [1e-5, 1 - 1e-5]) is
/// averaged within the fold. `cv_mean` is the mean over folds weighted by fold size, and
/// `cv_std_error` is the square root of the weighted variance of the fold means over
/// (K - 1). lambda_min is the largest lambda with the minimum `cv_mean`, and lambda_1se is
/// the largest lambda whose `cv_mean` is within one standard error of that minimum.
///
/// `fold_ids` gives each observation's fold, 0-based; every fold must contain both classes.
pub fn cross_validate(
    columns: &[Vec<f64>],
    labels: &[bool],
    fold_ids: &[usize],
    options: &LassoOptions,
) -> Result<LassoCv, StatsError> {
    check_inputs(columns, labels)?;
    check_len("fold ids", fold_ids.len(), labels.len())?;
    let folds = fold_ids.iter().copied().max().map_or(0, |m| m + 1);
    check_fold_count(labels, folds)?;

    let candidates = lambda_path(columns, labels, options)?;
    let path = lasso_path(columns, labels, &candidates, options)?;
    let lambdas = path.lambdas.clone();

    let mut fold_means = Vec::with_capacity(folds);
    let mut fold_sizes = Vec::with_capacity(folds);
    for result in fit_folds(columns, labels, fold_ids, folds, &lambdas, options) {
        let (deviances, size) = result?;
        fold_means.push(deviances);
        fold_sizes.push(size as f64);
    }

    let (cv_mean, cv_std_error) = combine_folds(&fold_means, &fold_sizes, lambdas.len());
    let index_min = (0..lambdas.len())
        .min_by(|&a, &b| cv_mean[a].total_cmp(&cv_mean[b]))
        .unwrap_or(0);
    let bound = cv_mean[index_min] + cv_std_error[index_min];
    let index_1se = (0..=index_min)
        .find(|&k| cv_mean[k] <= bound)
        .unwrap_or(index_min);

    Ok(LassoCv {
        lambda_min: lambdas[index_min],
        lambda_1se: lambdas[index_1se],
        path,
        cv_mean,
        cv_std_error,
        index_min,
        index_1se,
    })
}

/// Runs [`fold_deviance`] for every fold on up to [`LassoOptions::threads`] threads, and
/// returns the results in fold order.
fn fit_folds(
    columns: &[Vec<f64>],
    labels: &[bool],
    fold_ids: &[usize],
    folds: usize,
    lambdas: &[f64],
    options: &LassoOptions,
) -> Vec<Result<(Vec<f64>, usize), StatsError>> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, folds);
    let fit = |fold| fold_deviance(columns, labels, fold_ids, fold, lambdas, options);
    if threads == 1 {
        return (0..folds).map(fit).collect();
    }

    // Worker t fits folds t, t + threads, ...; interleaving them restores fold order.
    let per_worker: Vec<Vec<_>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..folds).step_by(threads).map(fit).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut iterators: Vec<_> = per_worker.into_iter().map(Vec::into_iter).collect();
    (0..folds)
        .filter_map(|fold| iterators[fold % threads].next())
        .collect()
}

/// Fits on every fold but `fold` and returns the mean held-out deviance per lambda and the
/// size of the held-out fold.
fn fold_deviance(
    columns: &[Vec<f64>],
    labels: &[bool],
    fold_ids: &[usize],
    fold: usize,
    lambdas: &[f64],
    options: &LassoOptions,
) -> Result<(Vec<f64>, usize), StatsError> {
    let train: Vec<usize> = (0..labels.len()).filter(|&i| fold_ids[i] != fold).collect();
    let test: Vec<usize> = (0..labels.len()).filter(|&i| fold_ids[i] == fold).collect();
    let train_columns: Vec<Vec<f64>> = columns
        .iter()
        .map(|c| train.iter().map(|&i| c[i]).collect())
        .collect();
    let train_labels: Vec<bool> = train.iter().map(|&i| labels[i]).collect();
    let path = lasso_path(&train_columns, &train_labels, lambdas, options)?;

    // A fold path that stopped early predicts with its last solution at the remaining
    // lambdas, as cv.glmnet does.
    let last = path.coefficients.len() - 1;
    let deviances = (0..lambdas.len())
        .map(|k| {
            let k = k.min(last);
            let total: f64 = test
                .iter()
                .map(|&i| {
                    let eta = path.intercepts[k]
                        + columns
                            .iter()
                            .zip(&path.coefficients[k])
                            .map(|(c, b)| c[i] * b)
                            .sum::<f64>();
                    let p = sigmoid(eta).clamp(1e-5, 1.0 - 1e-5);
                    if labels[i] {
                        -2.0 * p.ln()
                    } else {
                        -2.0 * (1.0 - p).ln()
                    }
                })
                .sum();
            total / test.len() as f64
        })
        .collect();
    Ok((deviances, test.len()))
}

/// Weighted mean and standard error over folds, per lambda.
fn combine_folds(
    fold_means: &[Vec<f64>],
    fold_sizes: &[f64],
    count: usize,
) -> (Vec<f64>, Vec<f64>) {
    let total: f64 = fold_sizes.iter().sum();
    let folds = fold_means.len() as f64;
    let mut means = Vec::with_capacity(count);
    let mut errors = Vec::with_capacity(count);
    for k in 0..count {
        let mean: f64 = fold_means
            .iter()
            .zip(fold_sizes)
            .map(|(m, w)| m[k] * w)
            .sum::<f64>()
            / total;
        let variance: f64 = fold_means
            .iter()
            .zip(fold_sizes)
            .map(|(m, w)| w * (m[k] - mean).powi(2))
            .sum::<f64>()
            / total;
        means.push(mean);
        errors.push((variance / (folds - 1.0)).sqrt());
    }
    (means, errors)
}

fn check_inputs(columns: &[Vec<f64>], labels: &[bool]) -> Result<(), StatsError> {
    if columns.is_empty() {
        return Err(StatsError::TooFew(
            "the lasso needs at least one feature".to_string(),
        ));
    }
    for (j, column) in columns.iter().enumerate() {
        check_len(&format!("feature {j}"), column.len(), labels.len())?;
        check_finite(&format!("feature {j}"), column)?;
    }
    let (positives, negatives) = class_counts(labels);
    if positives == 0 || negatives == 0 {
        return Err(StatsError::TooFew(format!(
            "the label has one class only ({positives} positive, {negatives} negative): the \
             lasso needs both"
        )));
    }
    Ok(())
}

/// Coordinate descent state: the current solution, reused as the warm start of the next
/// lambda, and the per-observation buffers of the IRLS steps.
struct Solver<'a> {
    columns: &'a [Vec<f64>],
    targets: Vec<f64>,
    intercept: f64,
    beta: Vec<f64>,
    /// Linear predictor of the current solution.
    eta: Vec<f64>,
    weights: Vec<f64>,
    residuals: Vec<f64>,
    /// Weighted mean square of each column under the current weights.
    curvature: Vec<f64>,
}

impl<'a> Solver<'a> {
    fn new(columns: &'a [Vec<f64>], labels: &[bool]) -> Solver<'a> {
        let targets: Vec<f64> = labels.iter().map(|&y| f64::from(u8::from(y))).collect();
        let n = targets.len();
        let mean = targets.iter().sum::<f64>() / n as f64;
        let intercept = (mean / (1.0 - mean)).ln();
        Solver {
            columns,
            targets,
            intercept,
            beta: vec![0.0; columns.len()],
            eta: vec![intercept; n],
            weights: vec![0.0; n],
            residuals: vec![0.0; n],
            curvature: vec![0.0; columns.len()],
        }
    }

    fn update_linear_predictor(&mut self) {
        self.eta.fill(self.intercept);
        for (column, &b) in self.columns.iter().zip(&self.beta) {
            if b != 0.0 {
                for (e, x) in self.eta.iter_mut().zip(column) {
                    *e += b * x;
                }
            }
        }
    }

    /// Binomial deviance, -2 log-likelihood, of the current solution.
    fn deviance(&self) -> f64 {
        let log_likelihood: f64 = self
            .eta
            .iter()
            .zip(&self.targets)
            .map(|(&e, &y)| y * e - (e.max(0.0) + (-e.abs()).exp().ln_1p()))
            .sum();
        -2.0 * log_likelihood
    }

    /// Gradient of the mean log-likelihood for column `j`, `x_j . (y - p) / n`, at the
    /// current solution.
    fn score(&self, j: usize) -> f64 {
        let total: f64 = self.columns[j]
            .iter()
            .zip(&self.eta)
            .zip(&self.targets)
            .map(|((x, &e), y)| x * (y - sigmoid(e)))
            .sum();
        total / self.targets.len() as f64
    }

    /// Solves the lasso at `lambda` on the columns that the sequential strong rule
    /// (Tibshirani et al. 2012) keeps after the solution at `previous_lambda`: those
    /// already non-zero, and those whose score reaches `2 lambda - previous_lambda`. The
    /// rule can be wrong, so each excluded column is then checked against the lasso's
    /// optimality condition (|score| <= lambda); violators join and the fit runs again.
    fn solve_screened(
        &mut self,
        lambda: f64,
        previous_lambda: f64,
        options: &LassoOptions,
    ) -> bool {
        let bound = 2.0 * lambda - previous_lambda;
        let mut included: Vec<bool> = (0..self.columns.len())
            .map(|j| self.beta[j] != 0.0 || self.score(j).abs() >= bound)
            .collect();
        loop {
            let coordinates: Vec<usize> = (0..included.len()).filter(|&j| included[j]).collect();
            let converged = self.solve(lambda, &coordinates, options);
            let violators: Vec<usize> = (0..included.len())
                .filter(|&j| !included[j] && self.score(j).abs() > lambda)
                .collect();
            if violators.is_empty() {
                return converged;
            }
            log::trace!(
                "strong rule missed {} columns at lambda {lambda:.6e}",
                violators.len()
            );
            for j in violators {
                included[j] = true;
            }
        }
    }

    /// Solves the lasso at `lambda` over the columns in `coordinates`, the others held at
    /// zero, by IRLS outer steps that each solve the penalised weighted least squares by
    /// cyclic coordinate descent. Stops when the weighted squared change of every
    /// coefficient over an outer step is below the tolerance. Returns whether it converged.
    fn solve(&mut self, lambda: f64, coordinates: &[usize], options: &LassoOptions) -> bool {
        let mut previous = self.beta.clone();
        for _ in 0..options.max_outer_iterations {
            self.reweight(coordinates);
            let previous_intercept = self.intercept;
            previous.copy_from_slice(&self.beta);

            self.descend(lambda, coordinates, options);
            self.update_linear_predictor();

            let weight_mean = self.weights.iter().sum::<f64>() / self.weights.len() as f64;
            let change = coordinates
                .iter()
                .map(|&j| self.curvature[j] * (self.beta[j] - previous[j]).powi(2))
                .fold(
                    weight_mean * (self.intercept - previous_intercept).powi(2),
                    f64::max,
                );
            if change < options.tolerance {
                return true;
            }
        }
        false
    }

    /// Sets the IRLS weights and working residuals at the current solution, and the
    /// curvature of the columns in `coordinates`.
    fn reweight(&mut self, coordinates: &[usize]) {
        for ((w, r), (&e, &y)) in self
            .weights
            .iter_mut()
            .zip(self.residuals.iter_mut())
            .zip(self.eta.iter().zip(&self.targets))
        {
            let p = sigmoid(e);
            // A floor on the weight keeps the working response finite; the fixed point
            // (the lasso optimum) does not depend on the weights.
            *w = (p * (1.0 - p)).max(1e-5);
            *r = (y - p) / *w;
        }
        let n = self.targets.len() as f64;
        for &j in coordinates {
            self.curvature[j] = self.columns[j]
                .iter()
                .zip(&self.weights)
                .map(|(x, w)| w * x * x)
                .sum::<f64>()
                / n;
        }
    }

    /// Coordinate descent on (1 / 2n) sum w_i (r_i)^2 + lambda |b|_1, where the working
    /// residuals are updated in place. As in glmnet, a sweep over `coordinates` is
    /// followed by sweeps over the non-zero ones until they settle, then by another full
    /// sweep to check that no other coordinate moves.
    ///
    /// NOTE: near separation (small lambda, most weights p(1 - p) tiny) the descent
    /// converges slowly. glmnet's early stop of the path bounds how far it goes there.
    fn descend(&mut self, lambda: f64, coordinates: &[usize], options: &LassoOptions) {
        let mut sweeps = 0;
        while sweeps < options.max_inner_sweeps {
            sweeps += 1;
            if self.sweep(coordinates, lambda) < options.tolerance {
                break;
            }
            let active: Vec<usize> = coordinates
                .iter()
                .copied()
                .filter(|&j| self.beta[j] != 0.0)
                .collect();
            while sweeps < options.max_inner_sweeps {
                sweeps += 1;
                if self.sweep(&active, lambda) < options.tolerance {
                    break;
                }
            }
        }
    }

    /// Updates the intercept and then each coordinate in `coordinates` once. Returns the
    /// largest weighted squared change.
    fn sweep(&mut self, coordinates: &[usize], lambda: f64) -> f64 {
        let n = self.targets.len() as f64;
        let weight_sum: f64 = self.weights.iter().sum();
        let shift = self
            .residuals
            .iter()
            .zip(&self.weights)
            .map(|(r, w)| w * r)
            .sum::<f64>()
            / weight_sum;
        self.intercept += shift;
        self.residuals.iter_mut().for_each(|r| *r -= shift);
        let mut largest = weight_sum / n * shift * shift;

        for &j in coordinates {
            let curvature = self.curvature[j];
            if curvature == 0.0 {
                continue;
            }
            let column = &self.columns[j];
            let gradient: f64 = column
                .iter()
                .zip(&self.weights)
                .zip(&self.residuals)
                .map(|((x, w), r)| w * x * r)
                .sum::<f64>()
                / n;
            let old = self.beta[j];
            let new = soft_threshold(gradient + curvature * old, lambda) / curvature;
            if new != old {
                let delta = new - old;
                for (r, x) in self.residuals.iter_mut().zip(column) {
                    *r -= delta * x;
                }
                self.beta[j] = new;
                largest = largest.max(curvature * delta * delta);
            }
        }
        largest
    }
}

fn soft_threshold(value: f64, threshold: f64) -> f64 {
    if value > threshold {
        value - threshold
    } else if value < -threshold {
        value + threshold
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_members_for_folds() {
        let labels = [
            true, true, true, false, false, false, false, false, false, false, false,
        ];
        let error = stratified_folds(&labels, 5, 1).unwrap_err();
        assert!(error.to_string().contains("use at most 3 folds"), "{error}");
    }

    #[test]
    fn folds_are_stratified_and_reproducible() {
        let labels: Vec<bool> = (0..50).map(|i| i % 5 == 0).collect();
        let a = stratified_folds(&labels, 5, 7).unwrap();
        let b = stratified_folds(&labels, 5, 7).unwrap();
        assert_eq!(a, b);
        for fold in 0..5 {
            let positives = (0..50).filter(|&i| a[i] == fold && labels[i]).count();
            assert_eq!(positives, 2);
        }
    }

    #[test]
    fn first_lambda_gives_zero_coefficients() {
        let x = vec![
            vec![-1.0, -0.5, 0.0, 0.5, 1.0, 1.5],
            vec![1.0, -1.0, 1.0, -1.0, 0.5, 0.0],
        ];
        let labels = [false, true, false, true, true, true];
        let options = LassoOptions::default();
        let lambdas = lambda_path(&x, &labels, &options).unwrap();
        let path = lasso_path(&x, &labels, &lambdas[..2], &options).unwrap();
        assert!(path.coefficients[0].iter().all(|&b| b == 0.0));
        assert!(path.coefficients[1].iter().any(|&b| b != 0.0));
    }
}
