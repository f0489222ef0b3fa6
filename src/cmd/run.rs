//! `ceus-edge run`: the live pipeline, from a capture card, a recording or the phantom to
//! the overlay on a display, with JSON-lines events and a control channel.

use std::fs::OpenOptions as FileOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use ceus_edge::board::BoardProfile;
use ceus_edge::capture::source::{open_v4l2, CaptureOptions};
use ceus_edge::capture::spec::{SourceSpec, V4l2Request};
use ceus_edge::display::fbdev::Framebuffer;
use ceus_edge::display::{Display, DisplaySpec, NoDisplay, Recorder, Window};
use ceus_edge::live::control::{self, Command, Reply};
use ceus_edge::live::events::{Event, EventSink, JsonLines, SessionStats};
use ceus_edge::live::input::{AwaitedInput, DeviceInput, LiveInput, Pace, ReplayInput};
use ceus_edge::live::pipeline::{self, ControlMessage, LiveOptions, Outputs};
use ceus_edge::live::queue::FullPolicy;
use ceus_edge::live::session::{ExamSession, SessionConfig};
use ceus_edge::live::worker::InferenceWorker;
use ceus_edge::phantom::source::PhantomSource;
use ceus_edge::phantom::{Phantom, PhantomConfig};
use ceus_edge::source::{self, OpenOptions, SourceError, SourceInfo, TimingSource};

use super::clinical::ClinicalArgs;
use super::models::ModelArgs;
use super::tic::CurveArgs;

/// Maximum wait of a control connection for the pipeline's reply to a command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Control connections served at once; each takes a thread.
const MAX_CONTROL_CONNECTIONS: usize = 8;

/// Set by SIGINT and SIGTERM: the session ends as after a `quit` command.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PaceArg {
    /// Recordings play at their own frame rate, like a capture card.
    Native,
    /// Recordings play as fast as the pipeline takes them, and no frame is dropped.
    Fast,
}

#[derive(clap::Args)]
pub struct Args {
    /// Frame source: v4l2:/dev/videoN[:WIDTHxHEIGHT[@FPS][:FOURCC]], file:PATH (DICOM,
    /// Y4M or a PNG folder) or phantom[:SEED].
    #[arg(long, value_name = "SPEC")]
    pub(crate) source: Option<String>,

    /// Replay speed of file: and phantom sources.
    #[arg(long, value_enum, default_value_t = PaceArg::Native)]
    pub(crate) pace: PaceArg,

    /// Output of the overlay: none, fb:/dev/fbN (Linux framebuffer) or window.
    #[arg(long, value_name = "OUTPUT")]
    pub(crate) display: Option<String>,

    /// Folder for the overlaid frames (overlay.y4m) and a PNG at each event.
    #[arg(long, value_name = "DIR")]
    pub(crate) record: Option<PathBuf>,

    /// JSON-lines events: `-` for stdout, or a file to append to.
    #[arg(long, value_name = "-|FILE")]
    pub(crate) events: Option<String>,

    /// JSON-lines commands: `stdin`, or `unix:PATH` for a Unix socket (mode 0600).
    #[arg(long, value_name = "stdin|unix:PATH")]
    pub(crate) control: Option<String>,

    /// Board profile (TOML) with defaults for these options; see board/.
    #[arg(long, value_name = "FILE")]
    pub(crate) board: Option<PathBuf>,

    /// Maximum wait for a frame from a capture device before it counts as no signal, ms.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub(crate) timeout_ms: u64,

    /// Frames used to find the layout at the start of each exam.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub(crate) detect_frames: u32,

    /// Maximum exam length whose curve is kept, minutes.
    #[arg(long, value_name = "MIN", default_value_t = 15.0, value_parser = parse_minutes)]
    pub(crate) max_exam_minutes: f64,

    /// Size of the phantom source's frames.
    #[arg(long, value_name = "WIDTHxHEIGHT", value_parser = parse_size)]
    pub(crate) phantom_size: Option<(u32, u32)>,

    /// Frame rate of the phantom source.
    #[arg(long, value_name = "FPS", value_parser = super::tic::parse_fps)]
    pub(crate) phantom_fps: Option<f64>,

    /// Length of the phantom exam, seconds.
    #[arg(long, value_name = "S", value_parser = parse_seconds)]
    pub(crate) phantom_seconds: Option<f64>,

    #[command(flatten)]
    pub(crate) curve: CurveArgs,

    #[command(flatten)]
    pub(crate) clinical: ClinicalArgs,

    #[command(flatten)]
    pub(crate) models: ModelArgs,
}

impl Args {
    /// Returns the options of `ceus-edge run` with nothing given: every default in one
    /// place.
    pub fn defaults() -> Args {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: Args,
        }
        <Wrapper as clap::Parser>::parse_from(["run"]).args
    }
}

pub fn run(mut args: Args) -> anyhow::Result<()> {
    if let Some(path) = args.board.clone() {
        apply_board(&mut args, &path)?;
    }
    let stats = run_live(&args, None, None)?;
    let to_stdout = args.events.as_deref() == Some("-");
    if !to_stdout {
        print_summary(&stats)?;
    }
    Ok(())
}

/// Runs the live pipeline with `args`. `display`, when given, is used in place of
/// `--display`, and `extra_events` receives the events besides `--events`.
pub fn run_live(
    args: &Args,
    display: Option<Box<dyn Display>>,
    extra_events: Option<&mut dyn EventSink>,
) -> anyhow::Result<SessionStats> {
    let Some(source_text) = args.source.as_deref() else {
        bail!(
            "no source: give --source v4l2:/dev/video0, file:PATH or phantom, or a --board profile"
        );
    };
    let spec: SourceSpec = source_text
        .parse()
        .with_context(|| format!("invalid --source `{source_text}`"))?;
    let display_spec: DisplaySpec = args
        .display
        .as_deref()
        .unwrap_or("none")
        .parse()
        .map_err(anyhow::Error::msg)?;
    let clinical = args.clinical.values()?;
    let pipeline_options = args.curve.pipeline_options()?;

    let (extractor, signature) = args.models.load()?;
    let clinical_ranges = signature.clinical_ranges();
    clinical_ranges
        .check(&clinical)
        .context("invalid clinical value from --set or --clinical")?;
    let demo = extractor.is_demo() || signature.demo;
    let mut display = match display {
        Some(display) => display,
        None => open_display(&display_spec)?,
    };
    let mut events_file = open_events(args.events.as_deref())?;
    let (control, socket) = start_control(args.control.as_deref())?;
    install_signal_handlers();

    let pace = match args.pace {
        PaceArg::Native => Pace::Native,
        PaceArg::Fast => Pace::Fast,
    };
    let (open, policy, fps) = opener(&spec, pace, args)?;
    let mut recorder = match &args.record {
        Some(dir) => Some(Recorder::create(dir, fps.unwrap_or(30.0))?),
        None => None,
    };

    let config = SessionConfig {
        layout: pipeline_options.layout,
        roi: pipeline_options.roi,
        settings: pipeline_options.settings,
        detect: pipeline_options.detect,
        auto_roi: pipeline_options.auto_roi,
        detect_frames: args.detect_frames,
        max_exam_s: args.max_exam_minutes * 60.0,
        frame_rate: fps,
        demo,
        clinical_ranges: Some(clinical_ranges),
        ..SessionConfig::default()
    };
    let mut session = ExamSession::new(config, clinical);
    let mut worker = InferenceWorker::spawn(extractor, signature)
        .context("cannot start the inference thread")?;

    let mut nothing = NoEvents;
    let extra: &mut dyn EventSink = match extra_events {
        Some(sink) => sink,
        None => &mut nothing,
    };
    let mut sinks = Fanout {
        file: events_file.as_mut(),
        extra,
    };
    let options = LiveOptions {
        policy,
        result_timeout: Duration::from_secs(120),
        ..LiveOptions::default()
    };
    let mut outputs = Outputs {
        display: display.as_mut(),
        recorder: recorder.as_mut(),
        events: &mut sinks,
    };
    let result = pipeline::run(
        open,
        source_text,
        &mut session,
        &mut worker,
        &mut outputs,
        control.as_ref(),
        &SHUTDOWN,
        options,
    );
    if let Some(path) = socket {
        let _ = std::fs::remove_file(path);
    }
    result.with_context(|| format!("live session on {source_text}"))
}

/// Returns the capture-thread opener for `spec`, the queue policy that suits it, and its
/// nominal frame rate when known before opening.
fn opener(
    spec: &SourceSpec,
    pace: Pace,
    args: &Args,
) -> anyhow::Result<(pipeline::Opener, FullPolicy, Option<f64>)> {
    let replay_policy = match pace {
        Pace::Native => FullPolicy::DropOldest,
        Pace::Fast => FullPolicy::Wait,
    };
    match spec {
        SourceSpec::V4l2(request) => {
            let request = request.clone();
            let options = CaptureOptions {
                timeout: Duration::from_millis(args.timeout_ms),
                ..CaptureOptions::default()
            };
            // A capture card that is not plugged in yet is waited for, as after an unplug.
            let open: pipeline::Opener = Box::new(move || {
                let placeholder = waiting_info(&request);
                let device = request.path.clone();
                let open_device = Box::new(move || {
                    let source = open_v4l2(&request, options)?;
                    Ok(Box::new(DeviceInput::new(source)) as Box<dyn LiveInput>)
                });
                AwaitedInput::open(device, placeholder, open_device)
            });
            Ok((open, FullPolicy::DropOldest, None))
        }
        SourceSpec::File(path) => {
            let path = path.clone();
            let open_options: OpenOptions = args.curve.open_options();
            let fps = args.curve.fps;
            let open: pipeline::Opener = Box::new(move || {
                let source = source::open(&path, &open_options)?;
                Ok(Box::new(ReplayInput::new(source, pace)) as Box<dyn LiveInput>)
            });
            Ok((open, replay_policy, fps))
        }
        SourceSpec::Phantom { seed } => {
            let config = phantom_config(*seed, args);
            config
                .validate()
                .context("invalid phantom source settings")?;
            let fps = Some(config.fps);
            let open: pipeline::Opener = Box::new(move || {
                let phantom =
                    Phantom::new(config).map_err(|e| SourceError::Malformed(e.to_string()))?;
                let source = Box::new(PhantomSource::new(phantom));
                Ok(Box::new(ReplayInput::new(source, pace)) as Box<dyn LiveInput>)
            });
            Ok((open, replay_policy, fps))
        }
    }
}

/// Describes a V4L2 device that is not there yet by the requested size and rate.
fn waiting_info(request: &V4l2Request) -> SourceInfo {
    let (width, height) = request.size.unwrap_or((0, 0));
    SourceInfo {
        container: "V4L2",
        width,
        height,
        frames: None,
        fps: request.fps,
        timing: TimingSource::DeviceTimestamps,
    }
}

/// Builds the phantom exam of `phantom[:SEED]` with the --phantom-* options.
pub fn phantom_config(seed: Option<u64>, args: &Args) -> PhantomConfig {
    let mut config = PhantomConfig::default();
    if let Some(seed) = seed {
        config.seed = seed;
    }
    if let Some((width, height)) = args.phantom_size {
        config.width = width;
        config.height = height;
    }
    if let Some(fps) = args.phantom_fps {
        config.fps = fps;
    }
    let seconds = args.phantom_seconds.unwrap_or(config.duration_s());
    config.frames = (seconds * config.fps).round().max(1.0) as u32;
    config
}

fn apply_board(args: &mut Args, path: &Path) -> anyhow::Result<()> {
    let profile = BoardProfile::load(path)?;
    log::info!(
        "board profile {} ({})",
        path.display(),
        profile.name.as_deref().unwrap_or("unnamed")
    );
    args.source = args.source.take().or(Some(profile.source));
    args.display = args.display.take().or(profile.display);
    args.control = args.control.take().or(profile.control);
    args.events = args.events.take().or(profile.events);
    args.record = args.record.take().or(profile.record);
    args.models
        .fill_missing(profile.model, profile.signature, profile.threads);
    args.curve
        .fill_missing_layout_profile(profile.layout_profile);
    args.curve
        .fill_missing_curve(profile.roi.as_deref(), profile.dynamic_range)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("board profile {}", path.display()))?;
    Ok(())
}

fn open_display(spec: &DisplaySpec) -> anyhow::Result<Box<dyn Display>> {
    match spec {
        DisplaySpec::None => Ok(Box::new(NoDisplay)),
        DisplaySpec::Framebuffer(path) => {
            let framebuffer = Framebuffer::open(path)
                .with_context(|| format!("cannot use --display fb:{}", path.display()))?;
            Ok(Box::new(framebuffer))
        }
        DisplaySpec::Window => {
            let window = Window::open().context("cannot use --display window")?;
            Ok(Box::new(window))
        }
    }
}

fn open_events(target: Option<&str>) -> anyhow::Result<Option<Box<dyn EventSink>>> {
    match target {
        None => Ok(None),
        Some("-") => Ok(Some(Box::new(JsonLines::new(std::io::stdout())))),
        Some(path) => {
            let file = FileOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the events file {path}"))?;
            Ok(Some(Box::new(JsonLines::new(file))))
        }
    }
}

/// Starts the control reader; returns the channel the analysis loop reads and the socket
/// path to remove at the end.
fn start_control(
    target: Option<&str>,
) -> anyhow::Result<(Option<Receiver<ControlMessage>>, Option<PathBuf>)> {
    let Some(target) = target else {
        return Ok((None, None));
    };
    let (sender, receiver) = mpsc::channel();
    if target == "stdin" {
        std::thread::Builder::new()
            .name("control".to_string())
            .spawn(move || {
                let handled =
                    control::serve(std::io::stdin(), std::io::stdout(), forward_to(&sender));
                if let Err(error) = handled {
                    log::warn!("control on stdin stopped: {error}");
                }
            })
            .context("cannot start the control thread")?;
        return Ok((Some(receiver), None));
    }
    let Some(path) = target.strip_prefix("unix:").filter(|p| !p.is_empty()) else {
        bail!("invalid --control `{target}`: expected stdin or unix:PATH");
    };
    let path = PathBuf::from(path);
    let listener = bind_socket(&path)?;
    std::thread::Builder::new()
        .name("control".to_string())
        .spawn(move || serve_socket(&listener, &sender))
        .context("cannot start the control thread")?;
    Ok((Some(receiver), Some(path)))
}

/// Binds a Unix socket at `path` readable and writable by the owner only. A stale socket
/// left by an earlier run is replaced. A socket that still accepts connections (another
/// running instance) or any other file there is an error.
#[cfg(unix)]
fn bind_socket(path: &Path) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            bail!(
                "--control unix:{}: the path exists and is not a socket; choose another path",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "--control unix:{}: another program is listening there; stop it or choose \
                 another path",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    log::info!("control socket {}", path.display());
    Ok(listener)
}

#[cfg(not(unix))]
fn bind_socket(path: &Path) -> anyhow::Result<std::net::TcpListener> {
    bail!("--control unix:{} needs a Unix system", path.display())
}

/// Serves each connection on its own thread, at most [`MAX_CONTROL_CONNECTIONS`] at
/// once, until the listener fails. The analysis loop applies the commands one at a time
/// in the order they arrive.
#[cfg(unix)]
fn serve_socket(listener: &std::os::unix::net::UnixListener, sender: &Sender<ControlMessage>) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                log::warn!("control socket: {error}");
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONTROL_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            let message = format!(
                "{MAX_CONTROL_CONNECTIONS} control connections are open: close one and retry"
            );
            let _ = control::write_reply(&mut stream, &Reply::error("", message));
            continue;
        }
        let (sender, open) = (sender.clone(), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name("control-client".to_string())
            .spawn(move || {
                serve_connection(stream, &sender);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(error) = spawned {
            log::warn!("cannot start a control connection thread: {error}");
        }
    }
}

/// Serves one control connection until it closes or sends `quit`.
#[cfg(unix)]
fn serve_connection(stream: std::os::unix::net::UnixStream, sender: &Sender<ControlMessage>) {
    let reader = match stream.try_clone() {
        Ok(reader) => reader,
        Err(error) => {
            log::warn!("control socket: {error}");
            return;
        }
    };
    if let Err(error) = control::serve(reader, stream, forward_to(sender)) {
        log::debug!("control connection closed: {error}");
    }
}

#[cfg(not(unix))]
fn serve_socket(_listener: &std::net::TcpListener, _sender: &Sender<ControlMessage>) {}

/// A command handler that passes each command to the analysis loop and waits for its
/// reply; `quit` ends the connection.
fn forward_to(sender: &Sender<ControlMessage>) -> impl FnMut(Command) -> (Reply, bool) + '_ {
    move |command| {
        let go_on = command != Command::Quit;
        let name = command.name();
        let (reply_sender, reply) = mpsc::sync_channel(1);
        if sender.send((command, reply_sender)).is_err() {
            return (
                Reply::error(name, "the pipeline has stopped".to_string()),
                false,
            );
        }
        match reply.recv_timeout(REPLY_TIMEOUT) {
            Ok(reply) => (reply, go_on),
            Err(_) => (
                Reply::error(name, "the pipeline did not answer in time".to_string()),
                go_on,
            ),
        }
    }
}

#[cfg(unix)]
fn install_signal_handlers() {
    extern "C" fn request_shutdown(_signal: libc::c_int) {
        SHUTDOWN.store(true, Ordering::Relaxed);
    }
    let handler = request_shutdown as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and
    // `signal` is called before any thread that could race on the disposition exists.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

#[cfg(not(unix))]
fn install_signal_handlers() {}

struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&mut self, _event: &Event) {}
}

/// Sends events to the events file and to a second sink.
struct Fanout<'a> {
    file: Option<&'a mut Box<dyn EventSink>>,
    extra: &'a mut dyn EventSink,
}

impl EventSink for Fanout<'_> {
    fn emit(&mut self, event: &Event) {
        if let Some(file) = self.file.as_mut() {
            file.emit(event);
        }
        self.extra.emit(event);
    }
}

fn print_summary(stats: &SessionStats) -> anyhow::Result<()> {
    let latency = stats.latency_ms.map_or("no frames".to_string(), |l| {
        format!(
            "latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            l.p50, l.p95, l.p99
        )
    });
    outln!(
        "{} frames in {:.1} s, {} dropped, {} exam(s); {latency}",
        stats.frames,
        stats.duration_s,
        stats.dropped,
        stats.exams
    );
    Ok(())
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (width, height) = text
        .split_once('x')
        .ok_or_else(|| format!("invalid size `{text}`: expected WIDTHxHEIGHT, such as 1280x720"))?;
    let parse = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("invalid size `{text}`: expected WIDTHxHEIGHT, such as 1280x720"))
    };
    Ok((parse(width)?, parse(height)?))
}

fn parse_minutes(text: &str) -> Result<f64, String> {
    let minutes: f64 = text
        .parse()
        .map_err(|_| format!("invalid duration `{text}`: expected minutes"))?;
    if minutes.is_finite() && (0.5..=240.0).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(format!("{text} minutes is out of range: give 0.5 to 240"))
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("invalid duration `{text}`: expected seconds"))?;
    if seconds.is_finite() && (1.0..=3600.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("{text} seconds is out of range: give 1 to 3600"))
    }
}
