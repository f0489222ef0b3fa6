//! `ceus-edge analyze`: one recorded exam in, a risk with its overlay out.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use ceus_edge::analysis::{self, ExamAnalysis, Scorer};
use ceus_edge::extractor::Extractor;
use ceus_edge::frame::Frame;
use ceus_edge::overlay::{self, OverlayContent, Phase, RiskGauge, Sparkline};
use ceus_edge::png_out;
use ceus_edge::signature::Signature;
use ceus_edge::source;
use ceus_edge::tic_plot::{self, TicPlot};

use super::clinical::ClinicalArgs;
use super::models::ModelArgs;
use super::tic::{self as tic_cmd, CurveArgs};

/// Version of `result.json`; raised when a field changes meaning or is removed.
pub const RESULT_SCHEMA_VERSION: u32 = 1;

#[derive(clap::Args)]
pub struct Args {
    /// DICOM file, Y4M file or folder of PNG frames.
    input: PathBuf,

    #[command(flatten)]
    curve: CurveArgs,

    #[command(flatten)]
    clinical: ClinicalArgs,

    #[command(flatten)]
    models: ModelArgs,

    /// Folder for result.json, overlay.png, tic.csv and tic.svg; created when missing.
    #[arg(long, value_name = "DIR", default_value = "ceus-edge-out")]
    out: PathBuf,

    /// Print result.json on stdout in place of the summary.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let clinical = args.clinical.values()?;
    super::reject_input_as_output(&args.out, &args.input)?;
    let (extractor, signature) = args.models.load()?;
    check_clinical_ranges(&signature, &clinical)?;
    let analysis = analyse_input(&args.input, &args.curve, &extractor, &signature, &clinical)?;
    let document = write_outputs(&args.out, &args.input, &analysis, &extractor, &signature)?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &document)?;
        writeln!(out)?;
    } else {
        write_summary(&mut out, &args.out, &analysis, &signature)?;
    }
    Ok(())
}

/// Rejects a clinical value outside the signature's range before the curve and the
/// extractor run, rather than when scoring after them. A name the signature does not use
/// is left to scoring, which ignores it with a warning.
fn check_clinical_ranges(
    signature: &Signature,
    clinical: &BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let ranges = signature.clinical_ranges();
    let names = ranges.names();
    let used: BTreeMap<String, f64> = clinical
        .iter()
        .filter(|(name, _)| names.contains(name))
        .map(|(name, &value)| (name.clone(), value))
        .collect();
    ranges
        .check(&used)
        .context("invalid clinical value from --set or --clinical")
}

/// Runs the analysis of one input with the loaded models.
pub fn analyse_input(
    input: &Path,
    curve: &CurveArgs,
    extractor: &Extractor,
    signature: &Signature,
    clinical: &BTreeMap<String, f64>,
) -> anyhow::Result<ExamAnalysis> {
    let options = curve.pipeline_options()?;
    let open_options = curve.open_options();
    let open = || source::open(input, &open_options);
    let scorer = Scorer {
        extractor,
        signature,
        clinical,
    };
    let resize = signature.preprocessing.resize;
    analysis::analyse(open, &options, resize, &scorer)
        .with_context(|| format!("cannot analyse {}", input.display()))
}

/// Writes result.json, overlay.png, tic.csv and tic.svg into `out`; returns the result
/// document.
pub fn write_outputs(
    out: &Path,
    input: &Path,
    analysis: &ExamAnalysis,
    extractor: &Extractor,
    signature: &Signature,
) -> anyhow::Result<serde_json::Value> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let document = result_document(input, analysis, extractor, signature)?;

    let result_path = out.join("result.json");
    let text = serde_json::to_string_pretty(&document)? + "\n";
    std::fs::write(&result_path, text)
        .with_context(|| format!("cannot write {}", result_path.display()))?;

    let overlay_path = out.join("overlay.png");
    let overlay = render_overlay(analysis, extractor.is_demo() || signature.demo);
    png_out::write_png(&overlay_path, &overlay)?;

    let csv_path = out.join("tic.csv");
    tic_cmd::write_csv(&csv_path, &analysis.tic)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;

    let svg_path = out.join("tic.svg");
    std::fs::write(&svg_path, render_tic_svg(input, analysis))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    Ok(document)
}

#[derive(Serialize)]
struct FeatureSummary<'a> {
    extractor_sha256: &'a str,
    extractor_demo: bool,
    dims: usize,
    /// The rad-score's split over the 7x7 map, row-major, plus its constant part.
    heatmap: &'a [f64],
    heatmap_constant: f64,
}

#[derive(Serialize)]
struct SignatureSummary<'a> {
    sha256: String,
    demo: bool,
    provenance: &'a str,
}

/// result.json: the `tic` fields at the top level, then features, scores, signature,
/// quality and every warning.
fn result_document(
    input: &Path,
    analysis: &ExamAnalysis,
    extractor: &Extractor,
    signature: &Signature,
) -> anyhow::Result<serde_json::Value> {
    let tic_document = analysis.tic.document(input.display().to_string());
    let mut document = serde_json::to_value(&tic_document)?;
    let features = FeatureSummary {
        extractor_sha256: extractor.sha256(),
        extractor_demo: extractor.is_demo(),
        dims: analysis.features.pooled.len(),
        heatmap: &analysis.rad_score_map.cells,
        heatmap_constant: analysis.rad_score_map.constant,
    };
    let signature_summary = SignatureSummary {
        sha256: signature.sha256()?,
        demo: signature.demo,
        provenance: &signature.provenance,
    };
    let mut warnings: Vec<String> = analysis.tic.analysis.report.warnings.clone();
    warnings.extend(analysis.warnings.iter().cloned());

    let object = document
        .as_object_mut()
        .context("the TIC document is not a JSON object")?;
    object.insert("schema_version".into(), RESULT_SCHEMA_VERSION.into());
    object.insert("features".into(), serde_json::to_value(features)?);
    object.insert("scores".into(), serde_json::to_value(&analysis.scores)?);
    object.insert("signature".into(), serde_json::to_value(signature_summary)?);
    object.insert("quality".into(), serde_json::to_value(&analysis.quality)?);
    object.insert("warnings".into(), serde_json::to_value(warnings)?);
    object.insert(
        "demo".into(),
        (extractor.is_demo() || signature.demo).into(),
    );
    Ok(document)
}

/// Draws the peak frame with ROI, heatmap, TIC sparkline, risk gauge, warnings and demo
/// label.
pub fn render_overlay(analysis: &ExamAnalysis, demo: bool) -> Frame {
    let mut canvas = Frame::empty();
    overlay::copy_to_rgb(&analysis.peak_frame, &mut canvas);

    let curve = &analysis.tic.curve;
    let times: Vec<f64> = curve.samples.iter().map(|s| s.time_s).collect();
    let power: Vec<f64> = curve.samples.iter().map(|s| s.power).collect();
    let report = &analysis.tic.analysis.report;
    let mut warnings: Vec<&str> = Vec::new();
    if !analysis.quality.reliable {
        warnings.push("NOT RELIABLE: see result.json");
    }
    if !analysis.scores.integrated_available {
        warnings.push("clinical values missing: imaging only");
    }
    let scores = &analysis.scores;

    let content = OverlayContent {
        roi: Some(analysis.roi),
        heatmap: Some(&analysis.rad_score_map.cells),
        curve: Some(Sparkline {
            times_s: &times,
            values: &power,
            arrival_s: report.bolus_arrival_s,
            peak_s: report.peak.as_ref().map(|peak| peak.time_s),
        }),
        phase: Phase::Result,
        risk: Some(RiskGauge {
            probability: scores.probability,
            cutoff: scores.cutoff,
            integrated: scores.integrated_available,
        }),
        warnings: &warnings,
        demo,
    };
    overlay::draw(&mut canvas, &content);
    canvas
}

fn render_tic_svg(input: &Path, analysis: &ExamAnalysis) -> String {
    let curve = &analysis.tic.curve;
    let times: Vec<f64> = curve.samples.iter().map(|s| s.time_s).collect();
    let power: Vec<f64> = curve.samples.iter().map(|s| s.power).collect();
    let flagged: Vec<bool> = curve.flags.iter().map(|flags| !flags.is_empty()).collect();
    let report = &analysis.tic.analysis.report;
    let title = format!("time-intensity curve of {}", input.display());
    tic_plot::render_svg(&TicPlot {
        title: &title,
        times_s: &times,
        power: &power,
        fitted: &analysis.tic.analysis.fitted,
        flagged: &flagged,
        arrival_s: report.bolus_arrival_s,
        peak_s: report.peak.as_ref().map(|peak| peak.time_s),
    })
}

fn write_summary(
    out: &mut impl Write,
    dir: &Path,
    analysis: &ExamAnalysis,
    signature: &Signature,
) -> std::io::Result<()> {
    let scores = &analysis.scores;
    let report = &analysis.tic.analysis.report;
    let peak = report.peak.as_ref();
    writeln!(
        out,
        "peak frame {} at {} s, ROI {}",
        peak.map_or("-".to_string(), |p| p.frame_index.to_string()),
        peak.map_or("-".to_string(), |p| format!("{:.2}", p.time_s)),
        analysis.roi
    )?;
    writeln!(
        out,
        "risk {:?}: probability {:.3} ({}), cut-off {:.3}, rad-score {:.3}",
        scores.risk,
        scores.probability,
        if scores.integrated_available {
            "integrated"
        } else {
            "imaging only"
        },
        scores.cutoff,
        scores.rad_score
    )?;
    if !analysis.quality.reliable {
        writeln!(out, "not reliable: {}", analysis.quality.reasons.join("; "))?;
    }
    if signature.demo {
        writeln!(out, "demo signature: not for clinical use")?;
    }
    writeln!(
        out,
        "wrote {}/result.json, overlay.png, tic.csv and tic.svg",
        dir.display()
    )
}
