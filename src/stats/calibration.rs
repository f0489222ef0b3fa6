//! Calibration of predicted probabilities: the Hosmer-Lemeshow test, the logistic
//! recalibration slope and intercept, calibration-in-the-large, and decision curves.

use super::logistic::{fit_logistic, LogisticOptions};
use super::special::{chi2_sf, logit};
use super::{check_len, class_counts, StatsError};

/// Hosmer-Lemeshow goodness-of-fit result.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HosmerLemeshow {
    pub chi2: f64,
    /// Number of groups minus 2.
    pub df: usize,
    pub p: f64,
    /// Groups actually formed: fewer than requested when quantiles coincide.
    pub groups: usize,
}

/// Runs the Hosmer-Lemeshow test with `groups` groups cut at the quantiles of the
/// predictions (R's type 7 quantiles, `np.quantile(method="linear")`), bins closed on the
/// right and the lowest bin closed on both sides. Coinciding quantiles are merged, so the
/// test may use fewer groups; df is the number of groups formed minus 2.
///
/// chi2 sums (observed - expected)^2 / expected over both outcomes of every group, the
/// expected counts being the sums of p and of 1 - p.
///
/// Errors: lengths differ, a probability outside (0, 1), or fewer than 3 groups formed.
pub fn hosmer_lemeshow(
    probabilities: &[f64],
    labels: &[bool],
    groups: usize,
) -> Result<HosmerLemeshow, StatsError> {
    check_len("labels", labels.len(), probabilities.len())?;
    check_probabilities(probabilities)?;
    if groups < 3 {
        return Err(StatsError::InvalidParameter(format!(
            "hosmer-lemeshow needs at least 3 groups, got {groups}"
        )));
    }

    let mut sorted = probabilities.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut breaks: Vec<f64> = (0..=groups)
        .map(|k| quantile_type7(&sorted, k as f64 / groups as f64))
        .collect();
    breaks.dedup();
    let formed = breaks.len() - 1;
    if formed < 3 {
        return Err(StatsError::TooFew(format!(
            "the predictions take too few distinct values to form 3 hosmer-lemeshow groups \
             ({formed} formed)"
        )));
    }

    let mut observed = vec![0.0; formed];
    let mut expected = vec![0.0; formed];
    let mut counts = vec![0.0; formed];
    for (&p, &y) in probabilities.iter().zip(labels) {
        // The first break b with p <= b closes the bin (b_prev, b]; the lowest bin also
        // takes p == breaks[0].
        let upper = breaks[1..].partition_point(|&b| b < p).min(formed - 1);
        observed[upper] += f64::from(u8::from(y));
        expected[upper] += p;
        counts[upper] += 1.0;
    }

    let chi2: f64 = (0..formed)
        .filter(|&g| counts[g] > 0.0)
        .map(|g| {
            let o1 = observed[g];
            let e1 = expected[g];
            let o0 = counts[g] - o1;
            let e0 = counts[g] - e1;
            (o1 - e1).powi(2) / e1 + (o0 - e0).powi(2) / e0
        })
        .sum();
    let df = formed - 2;
    Ok(HosmerLemeshow {
        chi2,
        df,
        p: chi2_sf(chi2, df as f64),
        groups: formed,
    })
}

/// Quantile of sorted values by linear interpolation between order statistics (type 7).
fn quantile_type7(sorted: &[f64], probability: f64) -> f64 {
    let position = probability * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = (low + 1).min(sorted.len() - 1);
    let fraction = position - low as f64;
    sorted[low] + fraction * (sorted[high] - sorted[low])
}

fn check_probabilities(probabilities: &[f64]) -> Result<(), StatsError> {
    if probabilities.is_empty() {
        return Err(StatsError::TooFew("no predictions".to_string()));
    }
    match probabilities
        .iter()
        .position(|p| p.is_nan() || *p <= 0.0 || *p >= 1.0)
    {
        Some(index) => Err(StatsError::InvalidParameter(format!(
            "prediction {} at index {index} is not a probability strictly between 0 and 1",
            probabilities[index]
        ))),
        None => Ok(()),
    }
}

/// Logistic recalibration of predicted probabilities.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Slope b of y ~ a + b logit(p): 1 when the predictions are well spread.
    pub slope: f64,
    /// Intercept a of that same model.
    pub intercept: f64,
    /// Calibration-in-the-large: the intercept of y ~ a with logit(p) as an offset, 0 when
    /// the mean prediction matches the event rate.
    pub citl: f64,
}

/// Fits the recalibration models by maximum likelihood.
///
/// Errors: a probability outside (0, 1), one class only, or separation by logit(p) (then
/// the slope is infinite).
pub fn calibration(probabilities: &[f64], labels: &[bool]) -> Result<Calibration, StatsError> {
    check_len("labels", labels.len(), probabilities.len())?;
    check_probabilities(probabilities)?;
    let logits: Vec<f64> = probabilities.iter().map(|&p| logit(p)).collect();
    let options = LogisticOptions::default();
    let recalibration = fit_logistic(&[&logits], labels, None, true, options)?;
    let in_the_large = fit_logistic(&[], labels, Some(&logits), true, options)?;
    Ok(Calibration {
        slope: recalibration.coefficients[1],
        intercept: recalibration.coefficients[0],
        citl: in_the_large.coefficients[0],
    })
}

/// One point of a decision curve.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DecisionPoint {
    pub threshold: f64,
    /// TP/n - FP/n * pt / (1 - pt), calling positive when p >= pt.
    pub net_benefit: f64,
    /// Net benefit of treating everyone.
    pub treat_all: f64,
}

/// Computes net benefit at thresholds 0.01, 0.02, ..., 0.99.
///
/// Errors: lengths differ or no observations.
pub fn decision_curve(
    probabilities: &[f64],
    labels: &[bool],
) -> Result<Vec<DecisionPoint>, StatsError> {
    check_len("labels", labels.len(), probabilities.len())?;
    if labels.is_empty() {
        return Err(StatsError::TooFew("no predictions".to_string()));
    }
    let n = labels.len() as f64;
    let prevalence = class_counts(labels).0 as f64 / n;
    Ok((1..=99)
        .map(|k| {
            let threshold = k as f64 / 100.0;
            let odds = threshold / (1.0 - threshold);
            let (mut tp, mut fp) = (0usize, 0usize);
            for (&p, &y) in probabilities.iter().zip(labels) {
                if p >= threshold {
                    if y {
                        tp += 1;
                    } else {
                        fp += 1;
                    }
                }
            }
            DecisionPoint {
                threshold,
                net_benefit: tp as f64 / n - fp as f64 / n * odds,
                treat_all: prevalence - (1.0 - prevalence) * odds,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_matches_linear_interpolation() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_type7(&sorted, 0.0), 1.0);
        assert_eq!(quantile_type7(&sorted, 0.5), 3.0);
        assert_eq!(quantile_type7(&sorted, 1.0), 8.0);
    }

    #[test]
    fn probability_of_one_rejected() {
        let error = hosmer_lemeshow(&[0.2, 1.0, 0.5], &[false, true, true], 10).unwrap_err();
        assert!(matches!(error, StatsError::InvalidParameter(_)));
    }
}
