//! Two-sided Mann-Whitney U test, with the method chosen as
//! `scipy.stats.mannwhitneyu(method="auto")` chooses it in scipy 1.17. The exact null
//! distribution applies when the smaller sample has at most 8 values and no value is tied.
//! Otherwise the normal approximation with tie and continuity correction applies.

use super::rank::average_ranks;
use super::special::normal_sf;
use super::{check_finite, StatsError};

/// Largest size of the smaller sample for which the exact distribution is used.
const EXACT_MAX_SMALLER: usize = 8;

/// Method of the p-value computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Exact,
    Asymptotic,
}

/// Result of a two-sided Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MannWhitney {
    /// U statistic of the first sample: the number of pairs (x, y) with x > y, ties
    /// counting one half.
    pub u: f64,
    /// Two-sided p-value, clipped to at most 1.
    pub p_value: f64,
    pub method: Method,
}

/// Tests whether `x` and `y` come from the same distribution (two-sided).
///
/// Errors: either sample empty, or a non-finite value. When every value is tied the
/// normal approximation has zero variance and the p-value is 1, as in scipy.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Result<MannWhitney, StatsError> {
    if x.is_empty() || y.is_empty() {
        return Err(StatsError::TooFew(format!(
            "mann-whitney u needs two non-empty samples, got {} and {} values",
            x.len(),
            y.len()
        )));
    }
    check_finite("first sample", x)?;
    check_finite("second sample", y)?;

    let n1 = x.len();
    let n2 = y.len();
    let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
    let (ranks, ties) = average_ranks(&pooled);
    let rank_sum: f64 = ranks[..n1].iter().sum();
    let u1 = rank_sum - (n1 * (n1 + 1)) as f64 / 2.0;
    let u2 = (n1 * n2) as f64 - u1;
    let u_max = u1.max(u2);

    let has_ties = ties.iter().any(|&t| t > 1);
    let (p_one_sided, method) = if n1.min(n2) <= EXACT_MAX_SMALLER && !has_ties {
        (exact_sf(u_max, n1, n2), Method::Exact)
    } else {
        (asymptotic_sf(u_max, n1, n2, &ties), Method::Asymptotic)
    };

    Ok(MannWhitney {
        u: u1,
        p_value: (2.0 * p_one_sided).clamp(0.0, 1.0),
        method,
    })
}

/// P(U >= u) under the normal approximation with continuity and tie correction.
fn asymptotic_sf(u: f64, n1: usize, n2: usize, ties: &[usize]) -> f64 {
    let (n1, n2) = (n1 as f64, n2 as f64);
    let n = n1 + n2;
    let tie_term: f64 = ties.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance.is_nan() || variance <= 0.0 {
        return 0.5;
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / variance.sqrt();
    normal_sf(z)
}

/// P(U >= u) under the exact null distribution without ties.
///
/// The counts of arrangements by U are the coefficients of the Gaussian binomial
/// [n1 + n2 choose m]_q with m = min(n1, n2), built as the product over i = 1..=m of
/// (1 - q^(n + i)) / (1 - q^i) with n = max(n1, n2). Every partial product is itself a
/// Gaussian binomial, so its coefficients stay non-negative. They are kept in f64, which
/// loses exactness beyond 2^53 arrangements but keeps the relative precision of the tail.
fn exact_sf(u: f64, n1: usize, n2: usize) -> f64 {
    let m = n1.min(n2);
    let n = n1.max(n2);
    let max_u = m * n;
    let mut counts = vec![0.0_f64; max_u + 1];
    counts[0] = 1.0;
    for i in 1..=m {
        // Multiply by (1 - q^(n + i)), highest degree first so each term reads old values.
        let shift = n + i;
        for k in (shift..=max_u).rev() {
            counts[k] -= counts[k - shift];
        }
        // Divide by (1 - q^i): a running sum with stride i.
        for k in i..=max_u {
            counts[k] += counts[k - i];
        }
    }

    let total: f64 = counts.iter().sum();
    // U of a sample without ties is an integer; round to guard against float noise.
    let start = (u.round().max(0.0) as usize).min(max_u + 1);
    let tail: f64 = counts[start..].iter().sum();
    (tail / total).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_distribution_small_case() {
        // n1 = n2 = 2: U takes 0, 1, 2, 2, 3, 4 over the 6 arrangements.
        assert!((exact_sf(4.0, 2, 2) - 1.0 / 6.0).abs() < 1e-15);
        assert!((exact_sf(2.0, 2, 2) - 4.0 / 6.0).abs() < 1e-15);
        assert!((exact_sf(0.0, 2, 2) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn empty_sample_rejected() {
        assert!(matches!(
            mann_whitney_u(&[], &[1.0]),
            Err(StatsError::TooFew(_))
        ));
    }

    #[test]
    fn all_tied_gives_p_one() {
        let result = mann_whitney_u(&[1.0; 10], &[1.0; 12]).unwrap();
        assert_eq!(result.u, 60.0);
        assert_eq!(result.p_value, 1.0);
    }
}
