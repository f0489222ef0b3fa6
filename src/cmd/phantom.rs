//! `ceus-edge phantom`: write a synthetic CEUS exam and its ground truth.

use std::path::PathBuf;

use anyhow::Context;
use ceus_edge::phantom::cohort::{write_cohort, CohortConfig, MAX_EXAMS};
use ceus_edge::phantom::config::{
    MAX_DYNAMIC_RANGE_DB, MAX_EVENT_RATE, MAX_FPS, MAX_FRAMES, MAX_HEIGHT, MAX_WIDTH,
    MIN_DYNAMIC_RANGE_DB, MIN_FPS, MIN_HEIGHT, MIN_WIDTH,
};
use ceus_edge::phantom::{
    write_exam, EventKind, EventRequest, ExamFormat, LesionProfile, PhantomConfig, ViewLayout,
};

/// Writes DIR/exam.dcm (or DIR/exam.y4m) and DIR/truth.json.
#[derive(clap::Args)]
#[command(
    after_help = "Writes DIR/exam.dcm (or DIR/exam.y4m with --format y4m) and \
DIR/truth.json. The defaults make a 40 s exam of 600 frames at 15 fps and 800x600 \
(288 MB of DICOM) in the dual layout, without events, shown with a 60 dB dynamic range.

With --cohort N, writes N exams (DICOM, dual layout, by default 100 frames at 5 fps and \
320x240, 7.7 MB each) under DIR/exams/ID/, each with a B-mode still (bmode.png) and a colour \
Doppler still (doppler.png), plus the table DIR/cohort.csv and the truth DIR/cohort.json. \
The label (distant metastasis) follows a logistic model of the clinical columns with odds \
ratios: age 1.2 per 10 years above 60, CEA 1.8 per unit of ln(ng/mL) above ln 5, T stage \
1.5 per category above T2, N stage 2.0 per category above N1, and log-odds -1.2 at those \
centres. The imaging phenotype is the label plus standard normal noise; a higher phenotype \
gives an earlier and higher lesion peak, a faster wash-out, a more heterogeneous lesion and \
more, more tortuous Doppler vessels."
)]
pub struct Args {
    /// Output directory; created when missing. Existing exam files in it are replaced.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Seed of every random draw: the same seed and settings give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Number of frames (1 to 100000); default 600, or 100 with --cohort.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FRAMES)))]
    frames: Option<u32>,

    /// Frames per second (1 to 120); default 15, or 5 with --cohort.
    #[arg(long, value_parser = parse_fps)]
    fps: Option<f64>,

    /// Frame size in pixels, WIDTHxHEIGHT (160x120 to 3840x2160); default 800x600, or
    /// 320x240 with --cohort.
    #[arg(long, value_parser = parse_size, value_name = "WxH")]
    size: Option<(u32, u32)>,

    /// Views on the screen: dual (B-mode left, contrast right) or single (contrast only).
    #[arg(long, value_enum, default_value_t = ViewLayout::Dual, conflicts_with = "cohort")]
    layout: ViewLayout,

    /// Events to place once each at random times, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with_all = ["event_rate", "cohort"])]
    events: Vec<EventKind>,

    /// Write a cohort of this many exams (1 to 100000) in place of one exam.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_EXAMS)))]
    cohort: Option<u32>,

    /// Exams rendered at the same time with --cohort; default: the available cores.
    #[arg(long, value_name = "N", requires = "cohort", value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: Option<u16>,

    /// Random events of random kinds, with this mean number per minute (0 to 60).
    #[arg(long, value_parser = parse_event_rate, value_name = "PER_MINUTE")]
    event_rate: Option<f64>,

    /// Dynamic range of the display's log compression, in dB (20 to 100).
    #[arg(long = "dynamic-range", default_value_t = 60.0, value_parser = parse_dynamic_range, value_name = "DB")]
    dynamic_range_db: f64,

    /// Container of the exam: dicom (exam.dcm) or y4m (exam.y4m, mono).
    #[arg(long, value_enum, default_value_t = ExamFormat::Dicom, conflicts_with = "cohort")]
    format: ExamFormat,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(exams) = args.cohort {
        return run_cohort(&args, exams);
    }
    let config = config_from(&args);
    let (truth, paths) = write_exam(&config, &args.out, args.format)
        .with_context(|| format!("cannot write the phantom exam to {}", args.out.display()))?;

    let peak = match (truth.peak_frame, truth.peak_time_s) {
        (Some(frame), Some(time)) => format!("peak at frame {frame} ({time:.2} s)"),
        _ => "no unflagged frame, so no peak".to_string(),
    };
    outln!(
        "wrote {} ({} frames, {}x{}, {} fps) and {}; bolus arrival {:.2} s, {peak}",
        paths.exam.display(),
        config.frames,
        config.width,
        config.height,
        config.fps,
        paths.truth.display(),
        truth.arrival_time_s,
    );
    Ok(())
}

fn run_cohort(args: &Args, exams: u32) -> anyhow::Result<()> {
    let defaults = CohortConfig::default();
    let (width, height) = args.size.unwrap_or((defaults.width, defaults.height));
    let jobs = match args.jobs {
        Some(jobs) => usize::from(jobs),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let config = CohortConfig {
        exams,
        seed: args.seed,
        event_rate: args.event_rate.unwrap_or(0.0),
        width,
        height,
        frames: args.frames.unwrap_or(defaults.frames),
        fps: args.fps.unwrap_or(defaults.fps),
        dynamic_range_db: args.dynamic_range_db,
        jobs,
    };
    let written = write_cohort(&config, &args.out)
        .with_context(|| format!("cannot write the phantom cohort to {}", args.out.display()))?;
    let positives = written.iter().filter(|exam| exam.draw.label == 1).count();
    println!(
        "wrote {} exams ({positives} with label 1) to {}, table {}",
        written.len(),
        args.out.display(),
        args.out.join("cohort.csv").display()
    );
    Ok(())
}

fn config_from(args: &Args) -> PhantomConfig {
    let events = match (args.event_rate, args.events.is_empty()) {
        (Some(rate), _) => EventRequest::Rate(rate),
        (None, false) => EventRequest::Listed(args.events.clone()),
        (None, true) => EventRequest::None,
    };
    let defaults = PhantomConfig::default();
    PhantomConfig {
        seed: args.seed,
        frames: args.frames.unwrap_or(defaults.frames),
        fps: args.fps.unwrap_or(defaults.fps),
        width: args.size.map_or(defaults.width, |size| size.0),
        height: args.size.map_or(defaults.height, |size| size.1),
        layout: args.layout,
        events,
        dynamic_range_db: args.dynamic_range_db,
        lesion: LesionProfile::default(),
    }
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let invalid = || format!("invalid size `{text}`: expected WIDTHxHEIGHT such as 800x600");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
    let width: u32 = w.trim().parse().map_err(|_| invalid())?;
    let height: u32 = h.trim().parse().map_err(|_| invalid())?;
    if !(MIN_WIDTH..=MAX_WIDTH).contains(&width) || !(MIN_HEIGHT..=MAX_HEIGHT).contains(&height) {
        return Err(format!(
            "size {width}x{height} is out of range: expected {MIN_WIDTH}x{MIN_HEIGHT} to \
             {MAX_WIDTH}x{MAX_HEIGHT}"
        ));
    }
    Ok((width, height))
}

fn parse_in_range(text: &str, what: &str, min: f64, max: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid {what} `{text}`: expected a number"))?;
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(format!(
            "{what} {value} is out of range: expected {min} to {max}"
        ))
    }
}

fn parse_fps(text: &str) -> Result<f64, String> {
    parse_in_range(text, "frame rate", MIN_FPS, MAX_FPS)
}

fn parse_event_rate(text: &str) -> Result<f64, String> {
    parse_in_range(text, "event rate", 0.0, MAX_EVENT_RATE)
}

fn parse_dynamic_range(text: &str) -> Result<f64, String> {
    parse_in_range(
        text,
        "dynamic range",
        MIN_DYNAMIC_RANGE_DB,
        MAX_DYNAMIC_RANGE_DB,
    )
}
