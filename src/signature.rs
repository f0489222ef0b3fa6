//! The deep-radiomics signature file: what `train` fitted and what the edge box scores.
//!
//! A file is the 8-byte magic [`MAGIC`], the format version as a little-endian u16, the
//! postcard encoding of [`Signature`], and the SHA-256 of all the bytes before it.
//! Loading checks the magic, the version, the checksum, that the bytes decode with
//! nothing left over, and that every length, index and range is consistent, so a loaded
//! signature can score without further checks.
//!
//! The rad-score is the LASSO logistic model on z-scored pooled features, so the
//! imaging-only probability is sigmoid(rad-score). The clinical and integrated models are
//! maximum-likelihood logistic regressions.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use thiserror::Error;

use crate::stats::special::sigmoid;

/// First bytes of every signature file.
pub const MAGIC: [u8; 8] = *b"CEUSSIG\0";
/// Format version written by this build, the only one it reads.
pub const FORMAT_VERSION: u16 = 2;

/// Length of the SHA-256 checksum that ends a signature file.
const CHECKSUM_BYTES: usize = 32;
/// Largest feature dimension accepted, checked before a feature vector is sized by it.
pub const MAX_FEATURE_DIMENSION: u32 = 1 << 20;
/// Largest signature file read: far above a 1920-feature signature (a few tens of KiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Failure to read, decode, validate or apply a signature.
#[derive(Debug, Error)]
pub enum SignatureError {
    #[error("cannot read signature file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write signature file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("signature file {size} bytes is larger than the {max}-byte limit")]
    TooLarge { size: u64, max: u64 },
    #[error("not a ceus-edge signature file: the magic bytes are wrong or missing")]
    BadMagic,
    #[error("signature format version {found} is not supported (this build reads version {supported}); refit it with this build's `train`")]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("signature file is truncated or corrupt: {0}")]
    Corrupt(String),
    #[error("signature is inconsistent: {0}")]
    Inconsistent(String),
    #[error("the feature vector has {found} values, the signature expects {expected}")]
    FeatureLength { found: usize, expected: usize },
    #[error("feature {index} is not finite ({value})")]
    NonFiniteFeature { index: usize, value: f64 },
    #[error("clinical variable {name} is not finite ({value}); give a number")]
    NonFiniteClinical { name: String, value: f64 },
    #[error(
        "clinical variable {name} = {value} is outside its valid range [{min}, {max}]{}: \
         check the value and its unit",
        unit_suffix(.unit)
    )]
    OutOfRange {
        name: String,
        value: f64,
        min: f64,
        max: f64,
        unit: String,
    },
    #[error(
        "clinical variable `{name}` is not a variable of the signature, which uses {}: \
         check the name",
        variable_list(.known)
    )]
    UnknownClinical { name: String, known: Vec<String> },
    #[error("the signature was fitted with feature extractor {expected}, not {found}; use the matching model or refit the signature")]
    ExtractorMismatch { expected: String, found: String },
    #[error(
        "the signature does not record its feature extractor (`train` ran without \
         --extractor-sha256), so it cannot be checked against {found}; refit it with \
         --extractor-sha256 {found} if the features came from that extractor"
    )]
    ExtractorUnknown { found: String },
    #[error("cannot encode the signature: {0}")]
    Encode(String),
}

/// Formats a unit after a range: " ng/mL", or a note when the signature records none.
fn unit_suffix(unit: &str) -> String {
    if unit.trim().is_empty() {
        " (no unit recorded)".to_string()
    } else {
        format!(" {unit}")
    }
}

/// Formats variable names for a message: "age, cea", or "no clinical variables".
fn variable_list(names: &[String]) -> String {
    if names.is_empty() {
        "no clinical variables".to_string()
    } else {
        names.join(", ")
    }
}

/// Extractor hash that `train` records when no extractor hash was given: 64 zeros,
/// which no SHA-256 of a real file is expected to equal.
pub const UNKNOWN_EXTRACTOR_SHA256: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

pub use crate::preprocess::ResizeMode;

/// Preprocessing of the feature extractor's input, recorded so that scoring uses the same
/// settings as fitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub resize: ResizeMode,
    /// Side of the square input in pixels.
    pub input_size: u32,
    /// Per-channel (R, G, B) mean subtracted from values scaled to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel (R, G, B) standard deviation divided after the mean.
    pub std: [f32; 3],
}

impl Default for Preprocessing {
    /// Squash to 224 x 224 with the ImageNet mean and standard deviation.
    fn default() -> Preprocessing {
        Preprocessing {
            resize: ResizeMode::Squash,
            input_size: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }
}

/// The rad-score: intercept + sum of coefficient * (feature - mean) / std over the selected
/// features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RadScore {
    /// 0-based indices into the pooled feature vector, one per selected feature.
    pub feature_indices: Vec<u32>,
    /// Training mean of each selected feature.
    pub means: Vec<f64>,
    /// Training sample standard deviation of each selected feature.
    pub std_devs: Vec<f64>,
    /// LASSO coefficient of each selected feature's z-score.
    pub coefficients: Vec<f64>,
    pub intercept: f64,
}

/// One clinical predictor of a logistic model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalVariable {
    pub name: String,
    /// Unit of the value, free text (for example "years" or "ng/mL").
    pub unit: String,
    /// Smallest valid value, inclusive.
    pub min: f64,
    /// Largest valid value, inclusive.
    pub max: f64,
    pub coefficient: f64,
}

/// Logistic model on clinical variables only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalModel {
    pub intercept: f64,
    pub variables: Vec<ClinicalVariable>,
}

/// Logistic model on the rad-score and clinical variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegratedModel {
    pub intercept: f64,
    pub rad_score_coefficient: f64,
    pub variables: Vec<ClinicalVariable>,
}

/// AUCs on the training rows (and on held-out rows when `train` had a test split).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelAucs {
    pub imaging_train: f64,
    pub imaging_test: Option<f64>,
    pub clinical_train: Option<f64>,
    pub clinical_test: Option<f64>,
    pub integrated_train: Option<f64>,
    pub integrated_test: Option<f64>,
}

/// A fitted signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub format_version: u16,
    /// True for signatures fitted on synthetic data, never for clinical use.
    pub demo: bool,
    /// Free text: data, command and date of the fit.
    pub provenance: String,
    /// SHA-256 (lowercase hex) of the feature extractor the features came from.
    pub extractor_sha256: String,
    pub preprocessing: Preprocessing,
    /// Length of the pooled feature vector (1920 for DenseNet201).
    pub feature_dimension: u32,
    pub rad_score: RadScore,
    /// Youden cut-off on the imaging probability: positive when probability >= it.
    pub imaging_cutoff: f64,
    /// Youden cut-off on the integrated model's probability, when that model exists.
    pub integrated_cutoff: Option<f64>,
    pub clinical_model: Option<ClinicalModel>,
    pub integrated_model: Option<IntegratedModel>,
    pub training_aucs: ModelAucs,
}

/// Outcome of a model that needs clinical values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ClinicalOutcome {
    Available {
        probability: f64,
    },
    /// Some variables had no value; their names, in model order.
    Unavailable {
        missing: Vec<String>,
    },
}

/// What scoring does with a finite clinical value outside a variable's valid range (the
/// range of the training rows when `train` fitted the signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RangePolicy {
    /// Fail with [`SignatureError::OutOfRange`]: the default, for scoring one patient.
    #[default]
    Reject,
    /// Extrapolate the linear predictor. The caller reports the values that
    /// [`Signature::out_of_range_values`] lists, for example when evaluating on an
    /// external cohort.
    Extrapolate,
}

/// The clinical variables a signature's models use, with their valid ranges and units.
///
/// The live session keeps this in place of the signature, which the inference worker
/// owns, so that it can reject a clinical value before the value reaches scoring.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClinicalRanges {
    variables: Vec<ClinicalVariable>,
}

impl ClinicalRanges {
    /// Keeps the first variable of each name, in order.
    pub fn new(variables: Vec<ClinicalVariable>) -> ClinicalRanges {
        let mut unique: Vec<ClinicalVariable> = Vec::with_capacity(variables.len());
        for variable in variables {
            if !unique.iter().any(|v| v.name == variable.name) {
                unique.push(variable);
            }
        }
        ClinicalRanges { variables: unique }
    }

    /// Names of the variables, in model order.
    pub fn names(&self) -> Vec<String> {
        self.variables.iter().map(|v| v.name.clone()).collect()
    }

    /// Checks values by variable name as scoring one patient would, without scoring.
    ///
    /// Errors: [`SignatureError::UnknownClinical`] for a name no model uses,
    /// [`SignatureError::NonFiniteClinical`], and [`SignatureError::OutOfRange`] for a
    /// value outside its variable's range. Missing variables are not an error, because
    /// they can be set later.
    pub fn check(&self, values: &BTreeMap<String, f64>) -> Result<(), SignatureError> {
        for (name, &value) in values {
            let Some(variable) = self.variables.iter().find(|v| &v.name == name) else {
                return Err(SignatureError::UnknownClinical {
                    name: name.clone(),
                    known: self.names(),
                });
            };
            if !value.is_finite() {
                return Err(SignatureError::NonFiniteClinical {
                    name: name.clone(),
                    value,
                });
            }
            if value < variable.min || value > variable.max {
                return Err(SignatureError::OutOfRange {
                    name: name.clone(),
                    value,
                    min: variable.min,
                    max: variable.max,
                    unit: variable.unit.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A finite clinical value outside its variable's valid range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutOfRangeValue {
    pub name: String,
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

impl Signature {
    /// Encodes the signature as a file: magic, version, postcard body.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SignatureError> {
        self.validate()?;
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let body = postcard::to_stdvec(self).map_err(|e| SignatureError::Encode(e.to_string()))?;
        bytes.extend_from_slice(&body);
        let digest = sha2::Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        Ok(bytes)
    }

    /// Decodes and validates a signature file's bytes.
    ///
    /// The file ends with the SHA-256 of everything before it, so a flipped bit in a
    /// coefficient is rejected instead of silently changing the risk.
    ///
    /// Errors: [`SignatureError::BadMagic`], [`SignatureError::UnsupportedVersion`],
    /// [`SignatureError::Corrupt`] for a checksum mismatch or bytes that do not decode, and
    /// [`SignatureError::Inconsistent`] for lengths, indices or ranges that disagree.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signature, SignatureError> {
        let Some((magic, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(SignatureError::BadMagic);
        };
        if *magic != MAGIC {
            return Err(SignatureError::BadMagic);
        }
        let Some((version, body)) = rest.split_first_chunk::<2>() else {
            return Err(SignatureError::Corrupt(
                "the file ends inside the format version".to_string(),
            ));
        };
        let version = u16::from_le_bytes(*version);
        if version != FORMAT_VERSION {
            return Err(SignatureError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }

        let Some((body, checksum)) = body.split_last_chunk::<CHECKSUM_BYTES>() else {
            return Err(SignatureError::Corrupt(
                "the file ends before its checksum".to_string(),
            ));
        };
        let covered = &bytes[..bytes.len() - CHECKSUM_BYTES];
        if sha2::Sha256::digest(covered).as_slice() != checksum.as_slice() {
            return Err(SignatureError::Corrupt(
                "the SHA-256 checksum does not match the contents".to_string(),
            ));
        }
        let (signature, remainder): (Signature, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| SignatureError::Corrupt(e.to_string()))?;
        if !remainder.is_empty() {
            return Err(SignatureError::Corrupt(format!(
                "{} bytes follow the encoded signature",
                remainder.len()
            )));
        }
        signature.validate()?;
        Ok(signature)
    }

    /// Reads and validates a signature file, rejecting files above [`MAX_FILE_BYTES`]
    /// before reading them.
    pub fn load(path: &Path) -> Result<Signature, SignatureError> {
        let io_error = |source| SignatureError::Io {
            path: path.display().to_string(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io_error)?.len();
        if size > MAX_FILE_BYTES {
            return Err(SignatureError::TooLarge {
                size,
                max: MAX_FILE_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(io_error)?;
        Signature::from_bytes(&bytes)
    }

    /// Writes the signature file.
    pub fn save(&self, path: &Path) -> Result<(), SignatureError> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| SignatureError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Returns the signature as TOML for people to read. Options that are absent are left
    /// out.
    pub fn to_toml(&self) -> Result<String, SignatureError> {
        toml::to_string_pretty(self).map_err(|e| SignatureError::Encode(e.to_string()))
    }

    /// Computes the SHA-256 (lowercase hex) of the signature's file encoding.
    pub fn sha256(&self) -> Result<String, SignatureError> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.to_bytes()?);
        Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// Returns the cut-off on the integrated probability, falling back to the imaging
    /// cut-off for a signature without an integrated model.
    pub fn integrated_cutoff(&self) -> f64 {
        self.integrated_cutoff.unwrap_or(self.imaging_cutoff)
    }

    /// Returns false when `train` recorded [`UNKNOWN_EXTRACTOR_SHA256`] because no hash of
    /// the extractor that produced the features was given.
    pub fn extractor_known(&self) -> bool {
        self.extractor_sha256 != UNKNOWN_EXTRACTOR_SHA256
    }

    /// Rejects a feature extractor other than the one the signature was fitted with, and
    /// every extractor when the signature does not record one.
    pub fn check_extractor(&self, sha256: &str) -> Result<(), SignatureError> {
        if !self.extractor_known() {
            return Err(SignatureError::ExtractorUnknown {
                found: sha256.to_string(),
            });
        }
        if self.extractor_sha256.eq_ignore_ascii_case(sha256) {
            Ok(())
        } else {
            Err(SignatureError::ExtractorMismatch {
                expected: self.extractor_sha256.clone(),
                found: sha256.to_string(),
            })
        }
    }

    /// Computes the rad-score (log-odds) of a pooled feature vector.
    ///
    /// Errors: a vector whose length is not `feature_dimension`, or a non-finite selected
    /// feature.
    pub fn rad_score(&self, features: &[f32]) -> Result<f64, SignatureError> {
        if features.len() != self.feature_dimension as usize {
            return Err(SignatureError::FeatureLength {
                found: features.len(),
                expected: self.feature_dimension as usize,
            });
        }
        let model = &self.rad_score;
        let mut score = model.intercept;
        for (k, &index) in model.feature_indices.iter().enumerate() {
            let index = index as usize;
            let value = f64::from(features[index]);
            if !value.is_finite() {
                return Err(SignatureError::NonFiniteFeature { index, value });
            }
            score += model.coefficients[k] * (value - model.means[k]) / model.std_devs[k];
        }
        Ok(score)
    }

    /// Returns the imaging-only probability of a rad-score, sigmoid(rad-score).
    pub fn imaging_probability(rad_score: f64) -> f64 {
        sigmoid(rad_score)
    }

    /// Computes the clinical model's probability from values by variable name.
    ///
    /// Returns `None` when the signature has no clinical model. A variable without a value
    /// makes the outcome unavailable, listing every missing name. Errors: a value that is
    /// non-finite or outside its range.
    pub fn clinical_probability(
        &self,
        values: &BTreeMap<String, f64>,
    ) -> Result<Option<ClinicalOutcome>, SignatureError> {
        self.clinical_probability_with(values, RangePolicy::Reject)
    }

    /// [`Signature::clinical_probability`] with a choice of what an out-of-range value
    /// does. A non-finite value is an error under every policy.
    pub fn clinical_probability_with(
        &self,
        values: &BTreeMap<String, f64>,
        policy: RangePolicy,
    ) -> Result<Option<ClinicalOutcome>, SignatureError> {
        let Some(model) = &self.clinical_model else {
            return Ok(None);
        };
        Ok(Some(linear_outcome(
            model.intercept,
            &model.variables,
            values,
            policy,
        )?))
    }

    /// Computes the integrated model's probability from a rad-score and clinical values.
    /// Returns `None` when the signature has no integrated model; missing values and
    /// errors as [`Signature::clinical_probability`].
    pub fn integrated_probability(
        &self,
        rad_score: f64,
        values: &BTreeMap<String, f64>,
    ) -> Result<Option<ClinicalOutcome>, SignatureError> {
        self.integrated_probability_with(rad_score, values, RangePolicy::Reject)
    }

    /// [`Signature::integrated_probability`] with a choice of what an out-of-range value
    /// does. A non-finite value is an error under every policy.
    pub fn integrated_probability_with(
        &self,
        rad_score: f64,
        values: &BTreeMap<String, f64>,
        policy: RangePolicy,
    ) -> Result<Option<ClinicalOutcome>, SignatureError> {
        let Some(model) = &self.integrated_model else {
            return Ok(None);
        };
        let intercept = model.intercept + model.rad_score_coefficient * rad_score;
        Ok(Some(linear_outcome(
            intercept,
            &model.variables,
            values,
            policy,
        )?))
    }

    /// Returns the clinical variables of the clinical and the integrated model with their
    /// valid ranges, once per name, for checking values before scoring.
    pub fn clinical_ranges(&self) -> ClinicalRanges {
        let clinical = self.clinical_model.iter().flat_map(|m| &m.variables);
        let integrated = self.integrated_model.iter().flat_map(|m| &m.variables);
        ClinicalRanges::new(clinical.chain(integrated).cloned().collect())
    }

    /// Lists the finite values outside their valid range, once per variable name, over
    /// the variables of the clinical and the integrated model. Missing and non-finite
    /// values are not listed.
    pub fn out_of_range_values(&self, values: &BTreeMap<String, f64>) -> Vec<OutOfRangeValue> {
        let clinical = self.clinical_model.iter().flat_map(|m| &m.variables);
        let integrated = self.integrated_model.iter().flat_map(|m| &m.variables);
        let mut found: Vec<OutOfRangeValue> = Vec::new();
        for variable in clinical.chain(integrated) {
            let Some(&value) = values.get(&variable.name) else {
                continue;
            };
            let outside = value < variable.min || value > variable.max;
            if value.is_finite() && outside && !found.iter().any(|f| f.name == variable.name) {
                found.push(OutOfRangeValue {
                    name: variable.name.clone(),
                    value,
                    min: variable.min,
                    max: variable.max,
                });
            }
        }
        found
    }

    /// Checks lengths, indices, ranges and finiteness.
    pub fn validate(&self) -> Result<(), SignatureError> {
        let inconsistent = |m: String| Err(SignatureError::Inconsistent(m));
        if self.format_version != FORMAT_VERSION {
            return inconsistent(format!(
                "the body's format version {} differs from the header's {FORMAT_VERSION}",
                self.format_version
            ));
        }
        if self.extractor_sha256.len() != 64
            || !self.extractor_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return inconsistent(format!(
                "extractor sha-256 {:?} is not 64 hexadecimal digits",
                self.extractor_sha256
            ));
        }
        if self.feature_dimension == 0 || self.feature_dimension > MAX_FEATURE_DIMENSION {
            return inconsistent(format!(
                "feature dimension {} is outside 1..={MAX_FEATURE_DIMENSION}",
                self.feature_dimension
            ));
        }
        self.validate_rad_score()?;
        if !self.imaging_cutoff.is_finite() {
            return inconsistent(format!(
                "imaging cut-off {} is not finite",
                self.imaging_cutoff
            ));
        }
        if let Some(cutoff) = self.integrated_cutoff.filter(|c| !c.is_finite()) {
            return inconsistent(format!("integrated cut-off {cutoff} is not finite"));
        }
        if let Some(model) = &self.clinical_model {
            validate_model("clinical model", model.intercept, &model.variables)?;
        }
        if let Some(model) = &self.integrated_model {
            validate_model("integrated model", model.intercept, &model.variables)?;
            if !model.rad_score_coefficient.is_finite() {
                return inconsistent("integrated model rad-score coefficient is not finite".into());
            }
        }
        Ok(())
    }

    fn validate_rad_score(&self) -> Result<(), SignatureError> {
        let model = &self.rad_score;
        let count = model.feature_indices.len();
        for (what, length) in [
            ("means", model.means.len()),
            ("standard deviations", model.std_devs.len()),
            ("coefficients", model.coefficients.len()),
        ] {
            if length != count {
                return Err(SignatureError::Inconsistent(format!(
                    "rad-score has {count} feature indices but {length} {what}"
                )));
            }
        }
        if let Some(&index) = model
            .feature_indices
            .iter()
            .find(|&&i| i >= self.feature_dimension)
        {
            return Err(SignatureError::Inconsistent(format!(
                "feature index {index} is outside the feature dimension {}",
                self.feature_dimension
            )));
        }
        let finite = model
            .means
            .iter()
            .chain(&model.coefficients)
            .all(|v| v.is_finite())
            && model.intercept.is_finite();
        if !finite {
            return Err(SignatureError::Inconsistent(
                "rad-score has a non-finite mean, coefficient or intercept".to_string(),
            ));
        }
        if let Some(sd) = model
            .std_devs
            .iter()
            .find(|s| !(s.is_finite() && **s > 0.0))
        {
            return Err(SignatureError::Inconsistent(format!(
                "rad-score standard deviation {sd} is not positive and finite"
            )));
        }
        Ok(())
    }
}

fn validate_model(
    what: &str,
    intercept: f64,
    variables: &[ClinicalVariable],
) -> Result<(), SignatureError> {
    if !intercept.is_finite() {
        return Err(SignatureError::Inconsistent(format!(
            "{what} intercept is not finite"
        )));
    }
    for variable in variables {
        if !variable.coefficient.is_finite() {
            return Err(SignatureError::Inconsistent(format!(
                "{what} coefficient of {} is not finite",
                variable.name
            )));
        }
        if variable.min.is_nan() || variable.max.is_nan() || variable.min > variable.max {
            return Err(SignatureError::Inconsistent(format!(
                "{what} range of {} is [{}, {}], which is empty or not a number",
                variable.name, variable.min, variable.max
            )));
        }
    }
    Ok(())
}

/// Sums intercept + coefficient * value, or lists the missing variables. A non-finite
/// value is always an error, an out-of-range one only under [`RangePolicy::Reject`].
fn linear_outcome(
    intercept: f64,
    variables: &[ClinicalVariable],
    values: &BTreeMap<String, f64>,
    policy: RangePolicy,
) -> Result<ClinicalOutcome, SignatureError> {
    let missing: Vec<String> = variables
        .iter()
        .filter(|v| !values.contains_key(&v.name))
        .map(|v| v.name.clone())
        .collect();
    if !missing.is_empty() {
        return Ok(ClinicalOutcome::Unavailable { missing });
    }
    let mut eta = intercept;
    for variable in variables {
        let value = values[&variable.name];
        if !value.is_finite() {
            return Err(SignatureError::NonFiniteClinical {
                name: variable.name.clone(),
                value,
            });
        }
        let in_range = value >= variable.min && value <= variable.max;
        if !in_range && policy == RangePolicy::Reject {
            return Err(SignatureError::OutOfRange {
                name: variable.name.clone(),
                value,
                min: variable.min,
                max: variable.max,
                unit: variable.unit.clone(),
            });
        }
        eta += variable.coefficient * value;
    }
    Ok(ClinicalOutcome::Available {
        probability: sigmoid(eta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(name: &str, unit: &str, min: f64, max: f64) -> ClinicalVariable {
        ClinicalVariable {
            name: name.to_string(),
            unit: unit.to_string(),
            min,
            max,
            coefficient: 0.1,
        }
    }

    /// Builds a signature whose clinical model uses age and cea and whose integrated model uses
    /// cea and t_stage.
    fn signature() -> Signature {
        Signature {
            format_version: FORMAT_VERSION,
            demo: true,
            provenance: "unit test".to_string(),
            extractor_sha256: "ab".repeat(32),
            preprocessing: Preprocessing::default(),
            feature_dimension: 4,
            rad_score: RadScore {
                feature_indices: vec![0],
                means: vec![0.0],
                std_devs: vec![1.0],
                coefficients: vec![1.0],
                intercept: 0.0,
            },
            imaging_cutoff: 0.5,
            integrated_cutoff: Some(0.5),
            clinical_model: Some(ClinicalModel {
                intercept: 0.0,
                variables: vec![
                    variable("age", "years", 18.0, 90.0),
                    variable("cea", "ng/mL", 0.2, 80.0),
                ],
            }),
            integrated_model: Some(IntegratedModel {
                intercept: 0.0,
                rad_score_coefficient: 1.0,
                variables: vec![
                    variable("cea", "ng/mL", 0.2, 80.0),
                    variable("t_stage", "", 1.0, 4.0),
                ],
            }),
            training_aucs: ModelAucs::default(),
        }
    }

    fn values(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|&(n, v)| (n.to_string(), v)).collect()
    }

    #[test]
    fn clinical_ranges_list_each_variable_once() {
        let ranges = signature().clinical_ranges();
        assert_eq!(ranges.names(), ["age", "cea", "t_stage"]);
    }

    #[test]
    fn clinical_ranges_accept_values_inside() {
        let ranges = signature().clinical_ranges();
        let inside = values(&[("age", 18.0), ("cea", 80.0), ("t_stage", 2.0)]);
        assert!(ranges.check(&inside).is_ok());
        assert!(ranges.check(&BTreeMap::new()).is_ok());
    }

    #[test]
    fn clinical_ranges_reject_out_of_range() {
        let ranges = signature().clinical_ranges();
        let error = ranges.check(&values(&[("cea", 500.0)])).unwrap_err();
        assert!(
            matches!(error, SignatureError::OutOfRange { value, .. } if value == 500.0),
            "{error}"
        );
        let message = error.to_string();
        for part in ["cea", "500", "[0.2, 80]", "ng/mL"] {
            assert!(message.contains(part), "{part} not in {message}");
        }
        let message = ranges
            .check(&values(&[("t_stage", 7.0)]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("(no unit recorded)"), "{message}");
    }

    #[test]
    fn clinical_ranges_reject_unknown_name() {
        let ranges = signature().clinical_ranges();
        let error = ranges
            .check(&values(&[("age", 60.0), ("ceaa", 5.0)]))
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`ceaa`"), "{message}");
        assert!(message.contains("age, cea, t_stage"), "{message}");

        let mut imaging_only = signature();
        imaging_only.clinical_model = None;
        imaging_only.integrated_model = None;
        let message = imaging_only
            .clinical_ranges()
            .check(&values(&[("age", 60.0)]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("no clinical variables"), "{message}");
    }

    #[test]
    fn clinical_ranges_reject_non_finite() {
        let ranges = signature().clinical_ranges();
        let error = ranges.check(&values(&[("age", f64::NAN)])).unwrap_err();
        assert!(
            matches!(error, SignatureError::NonFiniteClinical { .. }),
            "{error}"
        );
    }

    #[test]
    fn unknown_extractor_named_as_unknown() {
        let mut unknown = signature();
        unknown.extractor_sha256 = UNKNOWN_EXTRACTOR_SHA256.to_string();
        assert!(!unknown.extractor_known());
        let found = "cd".repeat(32);
        let error = unknown.check_extractor(&found).unwrap_err();
        assert!(
            matches!(error, SignatureError::ExtractorUnknown { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("--extractor-sha256"), "{message}");
        assert!(message.contains(&found), "{message}");
        assert!(signature().extractor_known());
    }
}
