//! `ceus-edge demo`: the live pipeline on a phantom exam with the bundled demo model and
//! signature, so a fresh checkout shows the product working with no inputs.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use anyhow::Context;

use ceus_edge::display::{self, Window};
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
    /// In real time in a desktop window when built with the Cargo feature `window` and a
    /// desktop session is available, else on the framebuffer /dev/fb0 when it can be
    /// opened, else headless.
    Auto,
}

/// The output the demo draws its overlay on.
enum Output {
    Window(Window),
    Framebuffer(&'static str),
    Headless,
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
    let output = match args.display {
        Display::Auto => choose_output()?,
        Display::None => Output::Headless,
    };
    let recording = args.out.join("recording");
    let events_path = args.out.join("events.jsonl");
    // Each demo run starts a fresh events file, since `run` appends.
    let _ = std::fs::remove_file(&events_path);

    let (pace, display_arg) = match &output {
        Output::Window(_) => (run_cmd::PaceArg::Native, "window".to_string()),
        Output::Framebuffer(fb) => (run_cmd::PaceArg::Native, format!("fb:{fb}")),
        Output::Headless => (run_cmd::PaceArg::Fast, "none".to_string()),
    };
    let run_args = run_cmd::Args {
        source: Some(format!("phantom:{}", args.seed)),
        pace,
        display: Some(display_arg),
        record: Some(recording.clone()),
        events: Some(events_path.display().to_string()),
        phantom_size: Some((640, 480)),
        phantom_seconds: Some(30.0),
        curve: args.curve,
        clinical: args.clinical,
        models: args.models,
        ..run_cmd::Args::defaults()
    };
    let window = match output {
        Output::Window(window) => {
            outln!(
                "phantom exam {} live in a window for 30 s (Escape or closing it ends the demo)",
                args.seed
            );
            Some(Box::new(window) as Box<dyn display::Display>)
        }
        Output::Framebuffer(fb) => {
            outln!("phantom exam {} live on {fb} for 30 s", args.seed);
            None
        }
        Output::Headless => {
            outln!("phantom exam {} (no display: recording only)", args.seed);
            None
        }
    };

    let mut log = EventLog::default();
    let stats = run_cmd::run_live(&run_args, window, Some(&mut log))?;
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

/// Opens a window when a desktop session is set, else picks the framebuffer when it can
/// be opened, else headless. A window that fails to open is reported on one line, and
/// the demo goes on with the next output.
fn choose_output() -> anyhow::Result<Output> {
    if display::desktop_session().is_some() {
        match Window::open() {
            Ok(window) => return Ok(Output::Window(window)),
            Err(error) => outln!("no window: {error}"),
        }
    }
    if can_open(Path::new(DEMO_FRAMEBUFFER)) {
        Ok(Output::Framebuffer(DEMO_FRAMEBUFFER))
    } else {
        Ok(Output::Headless)
    }
}

fn can_open(path: &Path) -> bool {
    OpenOptions::new().read(true).write(true).open(path).is_ok()
}
