//! Statistics of the cohort tools: feature selection (Mann-Whitney U, Spearman redundancy,
//! LASSO logistic regression), maximum-likelihood logistic models, and model evaluation
//! (ROC AUC with DeLong variance, Youden cut-off, Hosmer-Lemeshow, calibration, decision
//! curves).
//!
//! Every function takes plain `f64` slices (a matrix is a slice of equally long columns)
//! and returns a [`StatsError`] on degenerate input instead of a NaN or a panic. Labels
//! are `bool`, `true` for the positive class.

pub mod calibration;
pub mod lasso;
pub mod linalg;
pub mod logistic;
pub mod mann_whitney;
pub mod rank;
pub mod roc;
pub mod spearman;
pub mod special;

use thiserror::Error;

/// Failure of a statistic on its input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum StatsError {
    /// A sample, class or table is empty or smaller than the statistic needs.
    #[error("{0}")]
    TooFew(String),
    /// Slices that must have one value per observation differ in length.
    #[error("length mismatch: {what} has {found} values, expected {expected}")]
    LengthMismatch {
        what: String,
        found: usize,
        expected: usize,
    },
    /// An input value is NaN or infinite.
    #[error("{what} contains a non-finite value at index {index}")]
    NonFinite { what: String, index: usize },
    /// A parameter is outside its valid range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The statistic is undefined for this data (for example, a variance from one member).
    #[error("undefined: {0}")]
    Undefined(String),
    /// The outcome is perfectly or quasi-completely predicted, so the maximum-likelihood
    /// estimates do not exist (they diverge).
    #[error("{kind} separation: {detail}")]
    Separation {
        kind: SeparationKind,
        detail: String,
    },
    /// Design columns are linearly dependent.
    #[error("rank-deficient design: {0}")]
    RankDeficient(String),
    /// An iterative fit did not meet its tolerance within the iteration limit.
    #[error("{0} did not converge; the data may be near separation or badly scaled")]
    NotConverged(String),
}

/// Complete separation: every observation is fitted with probability 0 or 1. Quasi-complete:
/// only some are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeparationKind {
    Complete,
    QuasiComplete,
}

impl std::fmt::Display for SeparationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeparationKind::Complete => f.write_str("complete"),
            SeparationKind::QuasiComplete => f.write_str("quasi-complete"),
        }
    }
}

/// Rejects NaN and infinite values.
pub(crate) fn check_finite(what: &str, values: &[f64]) -> Result<(), StatsError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(StatsError::NonFinite {
            what: what.to_string(),
            index,
        }),
        None => Ok(()),
    }
}

/// Rejects a slice whose length differs from `expected`.
pub(crate) fn check_len(what: &str, found: usize, expected: usize) -> Result<(), StatsError> {
    if found == expected {
        Ok(())
    } else {
        Err(StatsError::LengthMismatch {
            what: what.to_string(),
            found,
            expected,
        })
    }
}

/// Counts the positive and negative labels.
pub(crate) fn class_counts(labels: &[bool]) -> (usize, usize) {
    let positives = labels.iter().filter(|&&y| y).count();
    (positives, labels.len() - positives)
}
