//! One recorded exam from input to risk: the TIC and its peak frame, the deep features of
//! the ROI in that frame, the signature's scores and the rad-score heatmap.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::extractor::{Extractor, ExtractorError, Features};
use crate::frame::Frame;
use crate::geometry::Rect;
use crate::heatmap::{self, RadScoreMap};
use crate::preprocess::{self, PreprocessError, ResizeMode, SIZE};
use crate::signature::{ClinicalOutcome, Signature, SignatureError};
use crate::source::{FrameSource, SourceError};
use crate::tic::flags::FlagSettings;
use crate::tic::pipeline::{self, PipelineError, PipelineOptions, PipelineResult};
use crate::tic::report::{TicReport, TicStatus};

/// R^2 below which the bolus fit, and so the choice of peak frame, is called unreliable.
const RELIABLE_FIT_R2: f64 = 0.8;
/// Share of flagged frames above which the curve is called unreliable.
const RELIABLE_FLAGGED_FRACTION: f64 = 0.5;

/// Error from analysing an exam.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Tic(#[from] PipelineError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the input ended before the peak frame {0}")]
    PeakFrameMissing(u64),
    #[error("no peak frame: {0}")]
    NoPeak(&'static str),
    #[error(
        "no contrast enhancement in the ROI {roi} of peak frame {frame}: {detail}; check \
         that the input is the CEUS exam and that the ROI covers the lesion"
    )]
    NoSignal {
        frame: u64,
        roi: Rect,
        detail: String,
    },
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Extractor(#[from] ExtractorError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// The model and signature that turn a frame into a risk, with the patient's clinical
/// values by variable name.
pub struct Scorer<'a> {
    pub extractor: &'a Extractor,
    pub signature: &'a Signature,
    pub clinical: &'a BTreeMap<String, f64>,
}

/// Low or high risk of distant metastasis, by the signature's cut-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    High,
}

/// The scores of one exam, as written to `result.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    /// Log-odds from the selected deep features.
    pub rad_score: f64,
    /// sigmoid(rad-score).
    pub imaging_probability: f64,
    /// Probability of the clinical-only model, when the signature has one and every
    /// variable has a value.
    pub clinical_score: Option<f64>,
    /// The integrated probability when available, else the imaging probability.
    pub probability: f64,
    /// Cut-off on `probability`: the risk is high when `probability >= cutoff`.
    pub cutoff: f64,
    pub risk: Risk,
    pub integrated_available: bool,
    /// Clinical variables the signature needs that were not given.
    pub missing_clinical: Vec<String>,
}

/// Whether the result can be trusted, with the reasons when it cannot.
#[derive(Clone, Debug, Serialize)]
pub struct Quality {
    pub reliable: bool,
    pub reasons: Vec<String>,
    pub tic_status: TicStatus,
    pub fit_r2: Option<f64>,
    pub flagged_fraction: f64,
    /// Motion score (normalised cross-correlation) of the peak frame.
    pub peak_ncc: Option<f64>,
}

/// Everything the analysis of one exam produced.
pub struct ExamAnalysis {
    pub tic: PipelineResult,
    pub peak_frame: Frame,
    pub roi: Rect,
    pub features: Features,
    pub rad_score_map: RadScoreMap,
    pub scores: Scores,
    pub quality: Quality,
    pub warnings: Vec<String>,
}

/// Analyses one recorded exam: TIC and peak frame, then features and scores of the ROI in
/// that frame. `open` opens the input afresh on each call, because the input is streamed
/// several times rather than held in memory.
pub fn analyse(
    open: impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    options: &PipelineOptions,
    resize: ResizeMode,
    scorer: &Scorer<'_>,
) -> Result<ExamAnalysis, AnalysisError> {
    scorer
        .signature
        .check_extractor(scorer.extractor.sha256())?;
    let ExamFeatures {
        tic,
        peak_frame,
        roi,
        features,
        mut warnings,
    } = exam_features(open, options, resize, scorer.extractor)?;
    let rad_score_map = heatmap::rad_score_map(scorer.signature, &features.map)?;
    let scores = score(scorer, &features, &mut warnings)?;
    let quality = assess_quality(&tic.analysis.report, &mut warnings);

    Ok(ExamAnalysis {
        tic,
        peak_frame,
        roi,
        features,
        rad_score_map,
        scores,
        quality,
        warnings,
    })
}

/// The TIC, the peak frame and the deep features of one exam's ROI, before scoring.
pub struct ExamFeatures {
    pub tic: PipelineResult,
    pub peak_frame: Frame,
    pub roi: Rect,
    pub features: Features,
    pub warnings: Vec<String>,
}

/// Runs the TIC pipeline on one exam, reads its peak frame and runs `extractor` on the
/// ROI of that frame. `analyse` scores this; `extract` writes it to a cohort table.
///
/// Errors: [`AnalysisError::NoPeak`] when the curve has no peak (a single-frame input is
/// analysed as it is), plus the errors of the source, pipeline, preprocessing and
/// extractor.
pub fn exam_features(
    mut open: impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    options: &PipelineOptions,
    resize: ResizeMode,
    extractor: &Extractor,
) -> Result<ExamFeatures, AnalysisError> {
    let tic = pipeline::run(&mut open, options)?;
    let mut warnings = Vec::new();

    let report = &tic.analysis.report;
    if report.status == TicStatus::SingleFrame {
        warnings.push(
            "single-frame input: no time-intensity curve, the frame is analysed as it is"
                .to_string(),
        );
    }
    let peak_index = match &report.peak {
        Some(peak) => peak.frame_index,
        None if report.status == TicStatus::SingleFrame => 0,
        None if report.status == TicStatus::AllFlagged
            && report.flags.counts.black == report.flags.counts.flagged =>
        {
            return Err(AnalysisError::NoPeak(
                "every frame is black, so the input has no ultrasound signal",
            ))
        }
        None => return Err(AnalysisError::NoPeak(report.status.describe())),
    };
    let peak_frame = read_frame_at(&mut open, peak_index)?;

    let roi = tic.roi;
    check_roi_signal(&peak_frame, roi, &options.settings.flags, peak_index)?;
    let tensor = preprocess::preprocess(&peak_frame, Some(roi), resize)?;
    let features = extractor.run(&[1, 3, SIZE, SIZE], &tensor)?;
    Ok(ExamFeatures {
        tic,
        peak_frame,
        roi,
        features,
        warnings,
    })
}

/// Rejects a peak frame whose ROI contains no image: black by the black-frame test (the grey
/// level at `flags.black_percentile` at most `flags.black_level`), or one grey level
/// throughout. The extractor would still return features for such a region, and so a
/// risk, but nothing in it comes from the patient.
///
/// NOTE: a lesion that takes up no contrast at all, inside an ROI drawn tightly around
/// it, is also black and is rejected. An ROI that includes the surrounding tissue passes.
fn check_roi_signal(
    frame: &Frame,
    roi: Rect,
    flags: &FlagSettings,
    index: u64,
) -> Result<(), AnalysisError> {
    let mut histogram = [0_u64; 256];
    let x_end = roi.x.saturating_add(roi.w).min(frame.width);
    let y_end = roi.y.saturating_add(roi.h).min(frame.height);
    for y in roi.y..y_end {
        for x in roi.x..x_end {
            histogram[usize::from(frame.luma_at(x, y))] += 1;
        }
    }
    let count: u64 = histogram.iter().sum();
    if count == 0 {
        // An empty ROI or one outside the frame: preprocessing rejects it with its own error.
        return Ok(());
    }
    let rank = ((flags.black_percentile * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    let percentile_level = histogram
        .iter()
        .position(|&n| {
            seen += n;
            seen >= rank
        })
        .unwrap_or(255);
    let lowest = histogram.iter().position(|&n| n > 0).unwrap_or(0);
    let highest = histogram.iter().rposition(|&n| n > 0).unwrap_or(0);

    let detail = if percentile_level <= usize::from(flags.black_level) {
        format!(
            "the ROI is black ({:.0}% of its pixels are at grey level {percentile_level} or \
             below, and the black level is {})",
            flags.black_percentile * 100.0,
            flags.black_level
        )
    } else if lowest == highest {
        format!("every pixel of the ROI has grey level {lowest}")
    } else {
        return Ok(());
    };
    Err(AnalysisError::NoSignal {
        frame: index,
        roi,
        detail,
    })
}

/// Reads frames up to and including `index`, keeping only that one.
fn read_frame_at(
    open: &mut impl FnMut() -> Result<Box<dyn FrameSource>, SourceError>,
    index: u64,
) -> Result<Frame, AnalysisError> {
    let mut source = open()?;
    let mut frame = Frame::empty();
    for _ in 0..=index {
        if !source.read_frame(&mut frame)? {
            return Err(AnalysisError::PeakFrameMissing(index));
        }
    }
    Ok(frame)
}

/// Scores the pooled features with the signature and the clinical values, adding a
/// warning for every clinical value the signature does not use or misses.
pub fn score(
    scorer: &Scorer<'_>,
    features: &Features,
    warnings: &mut Vec<String>,
) -> Result<Scores, AnalysisError> {
    let signature = scorer.signature;
    let rad_score = signature.rad_score(&features.pooled)?;
    let imaging_probability = Signature::imaging_probability(rad_score);
    warn_unused_clinical(signature, scorer.clinical, warnings);

    let clinical_score = match signature.clinical_probability(scorer.clinical)? {
        Some(ClinicalOutcome::Available { probability }) => Some(probability),
        _ => None,
    };
    let integrated = signature.integrated_probability(rad_score, scorer.clinical)?;
    let (probability, cutoff, integrated_available, missing_clinical) = match integrated {
        Some(ClinicalOutcome::Available { probability }) => {
            (probability, signature.integrated_cutoff(), true, Vec::new())
        }
        Some(ClinicalOutcome::Unavailable { missing }) => {
            warnings.push(format!(
                "integrated model unavailable: no value for {}; the risk is imaging-only",
                missing.join(", ")
            ));
            (
                imaging_probability,
                signature.imaging_cutoff,
                false,
                missing,
            )
        }
        None => (
            imaging_probability,
            signature.imaging_cutoff,
            false,
            Vec::new(),
        ),
    };

    Ok(Scores {
        rad_score,
        imaging_probability,
        clinical_score,
        probability,
        cutoff,
        risk: if probability >= cutoff {
            Risk::High
        } else {
            Risk::Low
        },
        integrated_available,
        missing_clinical,
    })
}

fn warn_unused_clinical(
    signature: &Signature,
    clinical: &BTreeMap<String, f64>,
    warnings: &mut Vec<String>,
) {
    let used = |name: &str| {
        let clinical_model = signature.clinical_model.iter().flat_map(|m| &m.variables);
        let integrated_model = signature.integrated_model.iter().flat_map(|m| &m.variables);
        clinical_model
            .chain(integrated_model)
            .any(|variable| variable.name == name)
    };
    for name in clinical.keys().filter(|name| !used(name)) {
        warnings.push(format!(
            "clinical value `{name}` is not a variable of the signature and was ignored"
        ));
    }
}

/// Decides whether the TIC behind the peak frame can be trusted, adding a warning for
/// every reason it cannot.
pub fn assess_quality(report: &TicReport, warnings: &mut Vec<String>) -> Quality {
    let fit_r2 = report.fit.as_ref().and_then(|fit| fit.r2);
    // Repeats are neither measured nor flagged, so they count in neither share.
    let measured = report.frames.saturating_sub(report.repeated_frames);
    let flagged = measured.saturating_sub(report.unflagged_frames);
    let flagged_fraction = if measured > 0 {
        flagged as f64 / measured as f64
    } else {
        0.0
    };
    let mut reasons = Vec::new();

    match report.status {
        TicStatus::Ok => {}
        TicStatus::SingleFrame => reasons.push(
            "single frame: no time-intensity curve confirms it as the peak-enhancement frame"
                .to_string(),
        ),
        status => reasons.push(format!("TIC status {status:?}: {}", status.describe())),
    }
    if let Some(r2) = fit_r2.filter(|&r2| r2 < RELIABLE_FIT_R2) {
        reasons.push(format!("bolus fit R^2 {r2:.2} is below {RELIABLE_FIT_R2}"));
    }
    if flagged_fraction > RELIABLE_FLAGGED_FRACTION {
        reasons.push(format!(
            "{:.0}% of frames are flagged (flash, frozen, black or motion)",
            flagged_fraction * 100.0
        ));
    }
    for reason in &reasons {
        warnings.push(format!("result not reliable: {reason}"));
    }

    Quality {
        reliable: reasons.is_empty(),
        reasons,
        tic_status: report.status,
        fit_r2,
        flagged_fraction,
        peak_ncc: report.peak.as_ref().and_then(|peak| peak.ncc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;

    /// Makes a 40x30 grey frame filled with `level`, with a speckle pattern of `amplitude`.
    fn frame(level: u8, amplitude: u8) -> Frame {
        let mut frame = Frame::new(40, 30, PixelFormat::Gray8);
        for (i, sample) in frame.data.iter_mut().enumerate() {
            let speckle = if amplitude == 0 {
                0
            } else {
                ((i * 7919) % usize::from(amplitude)) as u8
            };
            *sample = level.saturating_add(speckle);
        }
        frame
    }

    fn check(frame: &Frame, roi: Rect) -> Result<(), AnalysisError> {
        check_roi_signal(frame, roi, &FlagSettings::default(), 4)
    }

    #[test]
    fn black_roi_rejected() {
        let roi = Rect::new(5, 5, 20, 20);
        let error = check(&frame(0, 0), roi).unwrap_err();
        assert!(matches!(error, AnalysisError::NoSignal { frame: 4, .. }));
        let message = error.to_string();
        assert!(
            message.contains("no contrast enhancement in the ROI 5,5,20,20"),
            "{message}"
        );
        assert!(message.contains("black"), "{message}");
    }

    #[test]
    fn dark_noise_with_few_specks_is_black() {
        // Noise up to grey level 9 plus one bright pixel in 400: below the black level at
        // the 99th percentile.
        let mut dark = frame(0, 10);
        dark.data[6 * 40 + 6] = 250;
        let error = check(&dark, Rect::new(5, 5, 20, 20)).unwrap_err();
        assert!(matches!(error, AnalysisError::NoSignal { .. }), "{error}");
    }

    #[test]
    fn uniform_roi_rejected() {
        let error = check(&frame(90, 0), Rect::new(0, 0, 40, 30)).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("every pixel of the ROI has grey level 90"),
            "{message}"
        );
    }

    #[test]
    fn enhanced_roi_accepted() {
        assert!(check(&frame(40, 60), Rect::new(5, 5, 20, 20)).is_ok());
        // Black around a bright ROI does not matter.
        let mut lesion = frame(0, 0);
        for y in 10..20 {
            for x in 10..20 {
                lesion.data[y * 40 + x] = 100 + ((x * y) % 13) as u8;
            }
        }
        assert!(check(&lesion, Rect::new(10, 10, 10, 10)).is_ok());
    }
}
