//! `ceus-edge demo`: the whole job on a generated phantom exam with the bundled demo model
//! and signature, so a fresh checkout shows a result with no inputs.

use std::path::PathBuf;

use anyhow::Context;

use ceus_edge::phantom::{write_exam, ExamFormat, PhantomConfig};

use super::analyze;
use super::clinical::ClinicalArgs;
use super::models::ModelArgs;
use super::tic::CurveArgs;

/// Output of the demo's result.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Display {
    /// Write files only.
    None,
    /// A display when one is available; this build has no live display yet, so files only.
    Auto,
}

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the phantom exam and the result files; created when missing.
    #[arg(long, value_name = "DIR", default_value = "ceus-edge-demo")]
    out: PathBuf,

    /// Seed of the phantom exam.
    #[arg(long, default_value_t = 7)]
    seed: u64,

    #[arg(long, value_enum, default_value_t = Display::Auto)]
    display: Display,

    #[command(flatten)]
    clinical: ClinicalArgs,

    /// Curve options; the ROI defaults to `auto`, the most strongly enhancing square.
    #[command(flatten)]
    curve: CurveArgs,

    #[command(flatten)]
    models: ModelArgs,
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    args.curve.default_to_auto_roi();
    if matches!(args.display, Display::Auto) {
        log::info!("no live display in this build: writing files only");
    }
    let (extractor, signature) = args.models.load()?;
    let clinical = args.clinical.values()?;

    let config = PhantomConfig {
        seed: args.seed,
        frames: 450,
        width: 640,
        height: 480,
        ..PhantomConfig::default()
    };
    let exam_dir = args.out.join("exam");
    let (truth, paths) = write_exam(&config, &exam_dir, ExamFormat::Dicom)
        .with_context(|| format!("cannot write the phantom exam to {}", exam_dir.display()))?;
    outln!(
        "phantom exam {} ({} frames at {} fps); its true peak is frame {}",
        paths.exam.display(),
        config.frames,
        config.fps,
        truth
            .peak_frame
            .map_or("none".to_string(), |frame| frame.to_string())
    );

    let analysis =
        analyze::analyse_input(&paths.exam, &args.curve, &extractor, &signature, &clinical)?;
    analyze::write_outputs(&args.out, &paths.exam, &analysis, &extractor, &signature)?;
    let scores = &analysis.scores;
    outln!(
        "risk {:?}: probability {:.3}, cut-off {:.3}; demo model and signature, not for clinical use",
        scores.risk, scores.probability, scores.cutoff
    );
    outln!(
        "wrote {}/result.json, overlay.png, tic.csv and tic.svg",
        args.out.display()
    );
    Ok(())
}
