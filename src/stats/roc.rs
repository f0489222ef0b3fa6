//! ROC analysis: AUC in its Mann-Whitney form, DeLong's variance by the fast midrank
//! algorithm of Sun and Xu (IEEE Signal Processing Letters 21(11), 2014), the DeLong test
//! of two correlated AUCs, and the Youden cut-off.

use super::rank::average_ranks;
use super::special::{two_sided_p, Z_975};
use super::{check_finite, check_len, class_counts, StatsError};

/// AUC with its DeLong variance and 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AucEstimate {
    /// P(score of a positive > score of a negative), ties counting one half.
    pub auc: f64,
    /// DeLong variance; `None` when a class has one member, where it is undefined.
    pub variance: Option<f64>,
    /// Normal 95% interval clipped to [0, 1]; `None` with the variance.
    pub ci95: Option<(f64, f64)>,
}

/// Result of DeLong's test that two AUCs on the same observations are equal.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DelongTest {
    pub auc_difference: f64,
    pub z: f64,
    pub p_value: f64,
}

/// Structural components of one score: V10 per positive, V01 per negative.
struct Components {
    auc: f64,
    positives: Vec<f64>,
    negatives: Vec<f64>,
}

/// Computes the AUC of `scores` for `labels`, with the DeLong variance when both classes
/// have at least two members.
///
/// Errors: lengths differ, a non-finite score, or a class without members. Counts are
/// kept in `f64`, so n above 100,000 neither overflows nor loses the half-counts of ties.
pub fn auc_delong(scores: &[f64], labels: &[bool]) -> Result<AucEstimate, StatsError> {
    let components = components(scores, labels)?;
    let variance = variance(&components.positives).and_then(|s10| {
        variance(&components.negatives).map(|s01| {
            s10 / components.positives.len() as f64 + s01 / components.negatives.len() as f64
        })
    });
    let ci95 = variance.map(|v| interval(components.auc, v));
    Ok(AucEstimate {
        auc: components.auc,
        variance,
        ci95,
    })
}

/// Tests whether two scores of the same observations have equal AUC (two-sided).
///
/// Errors as [`auc_delong`], plus [`StatsError::Undefined`] when a class has one member
/// or the variance of the difference is zero (for example, the two scores rank every pair
/// the same way).
pub fn delong_test(
    first: &[f64],
    second: &[f64],
    labels: &[bool],
) -> Result<DelongTest, StatsError> {
    check_len("second score", second.len(), first.len())?;
    let a = components(first, labels)?;
    let b = components(second, labels)?;
    let m = a.positives.len() as f64;
    let n = a.negatives.len() as f64;
    let undefined = || {
        StatsError::Undefined(
            "the delong variance needs at least 2 members in each class".to_string(),
        )
    };
    let s10 = covariance(&a.positives, &b.positives).ok_or_else(undefined)?;
    let s01 = covariance(&a.negatives, &b.negatives).ok_or_else(undefined)?;
    let var_a = variance(&a.positives).ok_or_else(undefined)? / m
        + variance(&a.negatives).ok_or_else(undefined)? / n;
    let var_b = variance(&b.positives).ok_or_else(undefined)? / m
        + variance(&b.negatives).ok_or_else(undefined)? / n;
    let difference_variance = var_a + var_b - 2.0 * (s10 / m + s01 / n);
    let difference = a.auc - b.auc;
    if difference_variance.is_nan() || difference_variance <= 0.0 {
        return Err(StatsError::Undefined(format!(
            "the variance of the auc difference is {difference_variance:e}, so the delong \
             test is undefined (the scores order the observations alike)"
        )));
    }
    let z = difference / difference_variance.sqrt();
    Ok(DelongTest {
        auc_difference: difference,
        z,
        p_value: two_sided_p(z),
    })
}

fn interval(auc: f64, variance: f64) -> (f64, f64) {
    let half = Z_975 * variance.max(0.0).sqrt();
    ((auc - half).max(0.0), (auc + half).min(1.0))
}

/// Midrank computation: with Tz the midranks in the pooled sample and Tx, Ty those within
/// each class, V10_i = (Tz_i - Tx_i) / n for positive i and V01_j = 1 - (Tz_j - Ty_j) / m
/// for negative j; the AUC is the mean of either.
fn components(scores: &[f64], labels: &[bool]) -> Result<Components, StatsError> {
    check_len("labels", labels.len(), scores.len())?;
    check_finite("scores", scores)?;
    let (m, n) = class_counts(labels);
    if m == 0 || n == 0 {
        return Err(StatsError::TooFew(format!(
            "the auc needs both classes, got {m} positive and {n} negative"
        )));
    }
    let positive_scores: Vec<f64> = (0..scores.len())
        .filter(|&i| labels[i])
        .map(|i| scores[i])
        .collect();
    let negative_scores: Vec<f64> = (0..scores.len())
        .filter(|&i| !labels[i])
        .map(|i| scores[i])
        .collect();
    let (pooled, _) = average_ranks(&[positive_scores.as_slice(), &negative_scores].concat());
    let (within_positive, _) = average_ranks(&positive_scores);
    let (within_negative, _) = average_ranks(&negative_scores);

    let (mf, nf) = (m as f64, n as f64);
    let positives: Vec<f64> = (0..m)
        .map(|i| (pooled[i] - within_positive[i]) / nf)
        .collect();
    let negatives: Vec<f64> = (0..n)
        .map(|j| 1.0 - (pooled[m + j] - within_negative[j]) / mf)
        .collect();
    let rank_sum: f64 = pooled[..m].iter().sum();
    let auc = (rank_sum - mf * (mf + 1.0) / 2.0) / (mf * nf);
    Ok(Components {
        auc,
        positives,
        negatives,
    })
}

/// Sample variance (denominator count - 1), `None` for fewer than two values.
fn variance(values: &[f64]) -> Option<f64> {
    covariance(values, values)
}

fn covariance(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 {
        return None;
    }
    let count = a.len() as f64;
    let mean_a = a.iter().sum::<f64>() / count;
    let mean_b = b.iter().sum::<f64>() / count;
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - mean_a) * (y - mean_b))
        .sum();
    Some(sum / (count - 1.0))
}

/// Classification at the Youden cut-off.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Youden {
    /// An observed score; an observation is called positive when its score >= threshold.
    pub threshold: f64,
    pub sensitivity: f64,
    pub specificity: f64,
    pub accuracy: f64,
    /// Positive predictive value; `None` when nothing is called positive.
    pub ppv: Option<f64>,
    /// Negative predictive value; `None` when nothing is called negative.
    pub npv: Option<f64>,
}

/// Finds the observed score that maximises sensitivity + specificity - 1, the largest such
/// score on ties.
///
/// Errors: lengths differ, a non-finite score, or a class without members.
pub fn youden(scores: &[f64], labels: &[bool]) -> Result<Youden, StatsError> {
    check_len("labels", labels.len(), scores.len())?;
    check_finite("scores", scores)?;
    let (m, n) = class_counts(labels);
    if m == 0 || n == 0 {
        return Err(StatsError::TooFew(format!(
            "the youden cut-off needs both classes, got {m} positive and {n} negative"
        )));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));

    // Walk thresholds from the highest score down; counts include every score >= it.
    // J = tp/m - fp/n is compared as the integer m*n*J = tp*n - fp*m, so equal J values
    // tie exactly instead of by rounding.
    let mut best: Option<(f64, usize, usize)> = None;
    let mut best_j = i128::MIN;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut k = 0;
    while k < order.len() {
        let threshold = scores[order[k]];
        while k < order.len() && scores[order[k]] == threshold {
            if labels[order[k]] {
                tp += 1;
            } else {
                fp += 1;
            }
            k += 1;
        }
        let j = tp as i128 * n as i128 - fp as i128 * m as i128;
        if j > best_j {
            best_j = j;
            best = Some((threshold, tp, fp));
        }
    }
    let Some((threshold, tp, fp)) = best else {
        return Err(StatsError::TooFew("no scores".to_string()));
    };
    Ok(classify(threshold, tp, fp, m, n))
}

/// Sensitivity, specificity, accuracy, PPV and NPV from the counts at a threshold.
fn classify(threshold: f64, tp: usize, fp: usize, m: usize, n: usize) -> Youden {
    let fn_ = m - tp;
    let tn = n - fp;
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    Youden {
        threshold,
        sensitivity: tp as f64 / m as f64,
        specificity: tn as f64 / n as f64,
        accuracy: (tp + tn) as f64 / (m + n) as f64,
        ppv: ratio(tp, tp + fp),
        npv: ratio(tn, tn + fn_),
    }
}

/// Classifies `scores` at a given threshold (positive when score >= threshold).
pub fn classify_at(scores: &[f64], labels: &[bool], threshold: f64) -> Result<Youden, StatsError> {
    check_len("labels", labels.len(), scores.len())?;
    let (m, n) = class_counts(labels);
    if m == 0 || n == 0 {
        return Err(StatsError::TooFew(format!(
            "sensitivity and specificity need both classes, got {m} positive and {n} negative"
        )));
    }
    let tp = (0..scores.len())
        .filter(|&i| labels[i] && scores[i] >= threshold)
        .count();
    let fp = (0..scores.len())
        .filter(|&i| !labels[i] && scores[i] >= threshold)
        .count();
    Ok(classify(threshold, tp, fp, m, n))
}

/// Returns the ROC curve as (false positive rate, true positive rate) points from (0, 0) to
/// (1, 1), one per distinct score.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Result<Vec<(f64, f64)>, StatsError> {
    check_len("labels", labels.len(), scores.len())?;
    check_finite("scores", scores)?;
    let (m, n) = class_counts(labels);
    if m == 0 || n == 0 {
        return Err(StatsError::TooFew(format!(
            "a roc curve needs both classes, got {m} positive and {n} negative"
        )));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut k = 0;
    while k < order.len() {
        let threshold = scores[order[k]];
        while k < order.len() && scores[order[k]] == threshold {
            if labels[order[k]] {
                tp += 1;
            } else {
                fp += 1;
            }
            k += 1;
        }
        points.push((fp as f64 / n as f64, tp as f64 / m as f64));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_score_tied() {
        let labels = [true, false, true, false, false];
        let estimate = auc_delong(&[0.3; 5], &labels).unwrap();
        assert_eq!(estimate.auc, 0.5);
        assert_eq!(estimate.variance, Some(0.0));
        assert_eq!(estimate.ci95, Some((0.5, 0.5)));
    }

    #[test]
    fn one_positive_has_no_variance() {
        let labels = [true, false, false, false];
        let estimate = auc_delong(&[0.9, 0.1, 0.5, 0.95], &labels).unwrap();
        assert!((estimate.auc - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(estimate.variance, None);
        assert!(matches!(
            delong_test(&[0.9, 0.1, 0.5, 0.95], &[0.1, 0.2, 0.3, 0.4], &labels),
            Err(StatsError::Undefined(_))
        ));
    }

    #[test]
    fn youden_picks_largest_threshold_on_ties() {
        // Thresholds 0.9, 0.4 and 0.2 all give J = 1/3.
        let scores = [0.9, 0.8, 0.4, 0.3, 0.2, 0.1];
        let labels = [true, false, true, false, true, false];
        let cut = youden(&scores, &labels).unwrap();
        assert_eq!(cut.threshold, 0.9);
        assert!((cut.sensitivity - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(cut.specificity, 1.0);
    }
}
