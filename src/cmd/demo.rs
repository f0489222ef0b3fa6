//! `ceus-edge demo`: the live pipeline on a phantom exam with the bundled demo model and
//! signature, so a fresh checkout shows the product working with no inputs.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use anyhow::Context;

use ceus_edge::live::events::{Event, EventLog};

use super::clinical::ClinicalArgs;
use super::models::ModelArgs;
use super::run as run_cmd;
use super::tic::CurveArgs;

/// Framebuffer the demo draws on when it can open it.
const DEMO_FRAMEBUFFER: &str = "/dev/fb0";

/// Output of the demo's overlay.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Display {
    /// Headless: the phantom runs as fast as the pipeline takes it, and the overlay is
    /// only recorded.
    None,
    /// The framebuffer /dev/fb0 in real time when it can be opened, else headless.
    Auto,
}

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the recording, the events and the result overlay; created when missing.
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
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let framebuffer = match args.display {
        Display::Auto if can_open(Path::new(DEMO_FRAMEBUFFER)) => Some(DEMO_FRAMEBUFFER),
        _ => None,
    };
    let recording = args.out.join("recording");
    let events_path = args.out.join("events.jsonl");
    // Each demo run starts a fresh events file, since `run` appends.
    let _ = std::fs::remove_file(&events_path);

    let run_args = run_cmd::Args {
        source: Some(format!("phantom:{}", args.seed)),
        pace: if framebuffer.is_some() {
            run_cmd::PaceArg::Native
        } else {
            run_cmd::PaceArg::Fast
        },
        display: Some(framebuffer.map_or("none".to_string(), |fb| format!("fb:{fb}"))),
        record: Some(recording.clone()),
        events: Some(events_path.display().to_string()),
        phantom_size: Some((640, 480)),
        phantom_seconds: Some(30.0),
        curve: args.curve,
        clinical: args.clinical,
        models: args.models,
        ..run_cmd::Args::defaults()
    };
    match framebuffer {
        Some(fb) => outln!("phantom exam {} live on {fb} for 30 s", args.seed),
        None => outln!("phantom exam {} (no display: recording only)", args.seed),
    }

    let mut log = EventLog::default();
    let stats = run_cmd::run_live(&run_args, Some(&mut log))?;
    report(&log, &args.out, &recording)?;
    outln!(
        "{} frames, p95 latency {:.1} ms; wrote {} and {}",
        stats.frames,
        stats.latency_ms.map_or(0.0, |l| l.p95),
        events_path.display(),
        recording.display()
    );
    Ok(())
}

/// Prints the exam's result and copies the result snapshot to `out/overlay.png`.
fn report(log: &EventLog, out: &Path, recording: &Path) -> anyhow::Result<()> {
    for event in &log.events {
        match event {
            Event::BolusArrival { frame, time_s, .. } => {
                outln!("bolus arrival at frame {frame} ({time_s:.1} s)")
            }
            Event::Peak { frame, time_s, .. } => {
                outln!("peak frame {frame} ({time_s:.1} s)")
            }
            Event::Result(result) => outln!(
                "risk {:?}: probability {:.3}, cut-off {:.3}; demo model and signature, not for clinical use",
                result.risk,
                result.probability,
                result.cutoff
            ),
            Event::Warning { message, .. } => outln!("warning: {message}"),
            _ => {}
        }
    }
    let snapshot = std::fs::read_dir(recording)
        .with_context(|| format!("cannot read {}", recording.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with("-result.png"));
    match snapshot {
        Some(path) => {
            let target = out.join("overlay.png");
            std::fs::copy(&path, &target).with_context(|| {
                format!("cannot copy {} to {}", path.display(), target.display())
            })?;
            outln!("result overlay: {}", target.display());
        }
        None => outln!("no result: see the warnings above"),
    }
    Ok(())
}

fn can_open(path: &Path) -> bool {
    OpenOptions::new().read(true).write(true).open(path).is_ok()
}
