//! Spearman rank correlation between feature columns and the redundancy filter built on
//! it.

use super::rank::average_ranks;
use super::{check_finite, check_len, StatsError};

/// Returns Spearman's rho: the Pearson correlation of the average ranks. A column whose
/// values are all equal has no defined correlation, so its rho with any column is NaN.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> Result<f64, StatsError> {
    check_len("second column", y.len(), x.len())?;
    check_finite("first column", x)?;
    check_finite("second column", y)?;
    let (rx, _) = average_ranks(x);
    let (ry, _) = average_ranks(y);
    Ok(pearson(&rx, &ry))
}

/// Returns the matrix of Spearman's rho between every pair of `columns` (row-major,
/// `columns.len()` squared entries). All columns must have the same length.
pub fn spearman_matrix(columns: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, StatsError> {
    let n = columns.first().map_or(0, Vec::len);
    let mut ranked = Vec::with_capacity(columns.len());
    for (j, column) in columns.iter().enumerate() {
        check_len(&format!("column {j}"), column.len(), n)?;
        check_finite(&format!("column {j}"), column)?;
        ranked.push(average_ranks(column).0);
    }

    let k = columns.len();
    let mut rho = vec![vec![0.0; k]; k];
    for a in 0..k {
        rho[a][a] = 1.0;
        for b in (a + 1)..k {
            let r = pearson(&ranked[a], &ranked[b]);
            rho[a][b] = r;
            rho[b][a] = r;
        }
    }
    Ok(rho)
}

/// Returns the indices (into `columns`) kept by the redundancy filter: while some pair of
/// kept columns has |rho| > `threshold`, drop the column with the most such partners among
/// the kept ones, the first in column order on ties. NaN correlations (constant columns)
/// never count as redundant.
pub fn redundancy_filter(columns: &[Vec<f64>], threshold: f64) -> Result<Vec<usize>, StatsError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(StatsError::InvalidParameter(format!(
            "correlation threshold {threshold} is outside [0, 1]"
        )));
    }
    let rho = spearman_matrix(columns)?;
    let redundant = |a: usize, b: usize| a != b && rho[a][b].abs() > threshold;
    let mut partners: Vec<usize> = (0..columns.len())
        .map(|a| (0..columns.len()).filter(|&b| redundant(a, b)).count())
        .collect();
    let mut kept = vec![true; columns.len()];
    // `max_by_key` returns the last maximum, so the search runs in reverse for the first.
    while let Some((drop, _)) = partners
        .iter()
        .enumerate()
        .rev()
        .filter(|&(a, &count)| kept[a] && count > 0)
        .max_by_key(|&(_, &count)| count)
    {
        kept[drop] = false;
        for b in 0..columns.len() {
            if kept[b] && redundant(drop, b) {
                partners[b] -= 1;
            }
        }
    }
    Ok((0..columns.len()).filter(|&j| kept[j]).collect())
}

/// Pearson correlation, NaN when either input has zero variance.
fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;
    let mut sxy = 0.0;
    let mut sxx = 0.0;
    let mut syy = 0.0;
    for (a, b) in x.iter().zip(y) {
        let dx = a - mean_x;
        let dy = b - mean_y;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotone_columns_have_rho_one() {
        let rho = spearman_rho(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 35.0, 100.0]).unwrap();
        assert!((rho - 1.0).abs() < 1e-15);
    }

    #[test]
    fn filter_drops_most_connected_first() {
        // Columns 0, 1 and 2 are monotone in each other; 3 is unrelated.
        let a = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = vec![2.0, 4.0, 6.0, 8.0, 10.0, 12.0];
        let c = vec![1.0, 4.0, 9.0, 16.0, 25.0, 36.0];
        let d = vec![3.0, 1.0, 6.0, 2.0, 5.0, 4.0];
        let kept = redundancy_filter(&[a, b, c, d], 0.9).unwrap();
        // All of 0, 1, 2 have two partners: 0 goes, then 1 (one partner, first), 2 stays.
        assert_eq!(kept, vec![2, 3]);
    }
}
