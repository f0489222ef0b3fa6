//! The rad-score's exact split over the extractor's 7x7 feature map, which shows where
//! in the ROI the score comes from.
//!
//! Each pooled feature is the mean of its channel over the 49 cells of the final map, and
//! the rad-score is linear in the pooled features:
//!
//! ```text
//! rad = b + sum_k beta_k (f_k - mu_k) / sigma_k,   f_k = (1/49) sum_c M[k, c]
//!     = (b - sum_k beta_k mu_k / sigma_k) + sum_c sum_k beta_k M[k, c] / (49 sigma_k)
//! ```
//!
//! so cell `c` contributes `sum_k beta_k M[k, c] / (49 sigma_k)` and the cells plus the
//! constant term add up to the rad-score (a class activation map for a linear head).

use crate::overlay::HEATMAP_CELLS;
use crate::signature::{Signature, SignatureError};

const CELLS: usize = HEATMAP_CELLS * HEATMAP_CELLS;

/// The rad-score split into a constant and one contribution per map cell.
#[derive(Clone, Debug, PartialEq)]
pub struct RadScoreMap {
    /// Contribution of each cell, row-major (7 rows of 7).
    pub cells: [f64; CELLS],
    /// The part that does not depend on the image: intercept minus the z-scoring offsets.
    pub constant: f64,
}

impl RadScoreMap {
    /// Adds the cells and the constant: the rad-score.
    pub fn total(&self) -> f64 {
        self.constant + self.cells.iter().sum::<f64>()
    }
}

/// Splits the signature's rad-score over a feature map of `feature_dimension` channels of
/// 7x7 cells, channel-major (C, H, W).
///
/// Errors: a map whose length is not `feature_dimension * 49`, or a non-finite value in a
/// selected channel.
pub fn rad_score_map(signature: &Signature, map: &[f32]) -> Result<RadScoreMap, SignatureError> {
    let channels = signature.feature_dimension as usize;
    if map.len() != channels * CELLS {
        return Err(SignatureError::FeatureLength {
            found: map.len(),
            expected: channels * CELLS,
        });
    }

    let model = &signature.rad_score;
    let mut cells = [0.0; CELLS];
    let mut constant = model.intercept;
    for (k, &index) in model.feature_indices.iter().enumerate() {
        let index = index as usize;
        let weight = model.coefficients[k] / model.std_devs[k];
        constant -= weight * model.means[k];

        let channel = &map[index * CELLS..(index + 1) * CELLS];
        for (cell, &value) in cells.iter_mut().zip(channel) {
            let value = f64::from(value);
            if !value.is_finite() {
                return Err(SignatureError::NonFiniteFeature { index, value });
            }
            *cell += weight * value / CELLS as f64;
        }
    }
    Ok(RadScoreMap { cells, constant })
}
