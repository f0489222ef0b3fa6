//! The desktop window display (Cargo feature `window`): `ceus-edge run --display window`
//! and `ceus-edge demo` under a real X server.
//!
//! The tests that start Xvfb are ignored in a normal run. They need the Debian packages
//! xvfb, x11-apps (for xwd) and xdotool, and .ci/run runs them with `--ignored`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use ceus_edge::display::rgb_to_ycbcr;
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::png_out::write_png;

use crate::common::ceus_edge;

/// The window's size when it opens.
const WINDOW_SIZE: (u32, u32) = (1280, 720);
/// The phantom's frame size in these tests; the window shows it scaled by 1.5, as
/// 960x720 from column 160.
const FRAME_SIZE: (u32, u32) = (640, 480);
/// The X screen, larger than the window so a misplaced window shows.
const SCREEN: &str = "1600x900x24";

/// Tolerance of the screenshot against the recorded frame. Both go through the same
/// integer RGB-to-luma conversion on a 24-bit screen, so the expected difference is
/// zero: at most 0.5 levels on average, and at most 1% of pixels differing at all.
const MAX_MEAN_DIFFERENCE: f64 = 0.5;
const MAX_DIFFERING_SHARE: f64 = 0.01;

/// Maximum wait for the window to appear: the models load first.
const WINDOW_TIMEOUT: Duration = Duration::from_secs(90);

/// Keeps the tests of this file from starting their X servers at the same time.
static X_SERVERS: Mutex<()> = Mutex::new(());

/// An Xvfb server on a free display number, stopped when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let _starting = X_SERVERS.lock().unwrap_or_else(PoisonError::into_inner);
        for number in 90..200 {
            let lock = PathBuf::from(format!("/tmp/.X{number}-lock"));
            if lock.exists() || Path::new(&format!("/tmp/.X11-unix/X{number}")).exists() {
                continue;
            }
            let display = format!(":{number}");
            // Without -noreset the server resets when its last client leaves, such as
            // the readiness probe, and refuses connections while it does.
            let child = Command::new("Xvfb")
                .args([display.as_str(), "-screen", "0", SCREEN, "-nolisten", "tcp"])
                .arg("-noreset")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start Xvfb: install the Debian package xvfb");
            let mut server = Xvfb { child, display };
            if server.wait_ready(&lock) {
                return server;
            }
        }
        panic!("no free X display number from :90 to :199");
    }

    /// Waits until this server owns the display (its process id is in `lock`) and
    /// accepts clients. Returns false when it exited or another server owns the display.
    fn wait_ready(&mut self, lock: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let owner = std::fs::read_to_string(lock)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            match owner {
                Some(pid) if pid != self.child.id() => return false,
                Some(_) if self.accepts_clients() => return true,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Xvfb on {} accepted no client within 20 s", self.display);
    }

    fn accepts_clients(&self) -> bool {
        Command::new("xwininfo")
            .args(["-root", "-display", &self.display])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cannot run xwininfo: install the Debian package x11-utils")
            .success()
    }
}

impl Drop for Xvfb {
    /// Stops the server with SIGTERM, so it removes its lock file and socket.
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|status| status.success());
        if !terminated {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped, so a failing test leaves nothing running.
struct Running(Option<Child>);

impl Running {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }

    /// Waits up to `timeout` for the process to exit and returns its status and stderr.
    fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child().stderr.take() {
                    pipe.read_to_string(&mut stderr).unwrap();
                }
                self.0 = None;
                return (status, stderr);
            }
            assert!(
                Instant::now() < deadline,
                "ceus-edge did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Position and size of a window on the screen.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

/// Waits for the window titled ceus-edge on `display` and returns its geometry; fails
/// when `process` exits first.
fn wait_for_window(display: &str, process: &mut Running) -> Geometry {
    let deadline = Instant::now() + WINDOW_TIMEOUT;
    loop {
        if let Some(status) = process.child().try_wait().unwrap() {
            let (mut stdout, mut stderr) = (String::new(), String::new());
            if let Some(mut pipe) = process.child().stdout.take() {
                pipe.read_to_string(&mut stdout).unwrap();
            }
            if let Some(mut pipe) = process.child().stderr.take() {
                pipe.read_to_string(&mut stderr).unwrap();
            }
            panic!(
                "ceus-edge exited with {status} before its window appeared: \
                 stdout {stdout:?}, stderr {stderr:?}"
            );
        }
        let info = Command::new("xwininfo")
            .args(["-display", display, "-name", "ceus-edge"])
            .output()
            .expect("cannot run xwininfo: install the Debian package x11-utils");
        if info.status.success() {
            return parse_xwininfo(&String::from_utf8_lossy(&info.stdout));
        }
        assert!(
            Instant::now() < deadline,
            "no ceus-edge window within {WINDOW_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn parse_xwininfo(text: &str) -> Geometry {
    let field = |name: &str| -> u32 {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("xwininfo printed no `{name}`: {text}"))
    };
    Geometry {
        x: field("Absolute upper-left X:"),
        y: field("Absolute upper-left Y:"),
        width: field("Width:"),
        height: field("Height:"),
    }
}

/// Takes a screenshot of the whole X screen with xwd, as an RGB8 frame.
fn screenshot(display: &str) -> Frame {
    let output = Command::new("xwd")
        .args(["-display", display, "-root", "-silent"])
        .output()
        .expect("cannot run xwd: install the Debian package x11-apps");
    assert!(output.status.success(), "xwd failed: {output:?}");
    decode_xwd(&output.stdout)
}

/// Decodes an XWD dump of a TrueColor screen with 32 bits per pixel, the layout of
/// Xvfb's 24-bit screens (X11 XWDFileHeader: 25 big-endian 32-bit fields, the window
/// name, `ncolors` 12-byte colour entries, then the pixels).
fn decode_xwd(bytes: &[u8]) -> Frame {
    let field = |index: usize| {
        let start = 4 * index;
        u32::from_be_bytes(bytes[start..start + 4].try_into().unwrap())
    };
    let header_size = field(0) as usize;
    let (width, height) = (field(4), field(5));
    let byte_order_msb_first = field(7) == 1;
    let bits_per_pixel = field(11);
    let bytes_per_line = field(12) as usize;
    let visual_class = field(13);
    let masks = [field(14), field(15), field(16)];
    let colours = field(19) as usize;
    assert_eq!(
        bits_per_pixel, 32,
        "xwd dump with {bits_per_pixel} bits per pixel"
    );
    assert_eq!(visual_class, 4, "xwd dump of a visual other than TrueColor");

    let pixels = &bytes[header_size + 12 * colours..];
    assert!(
        pixels.len() >= bytes_per_line * height as usize,
        "short xwd dump"
    );
    let mut frame = Frame::new(width, height, PixelFormat::Rgb8);
    for y in 0..height as usize {
        let line = &pixels[y * bytes_per_line..];
        for x in 0..width as usize {
            let word: [u8; 4] = line[4 * x..4 * x + 4].try_into().unwrap();
            let value = if byte_order_msb_first {
                u32::from_be_bytes(word)
            } else {
                u32::from_le_bytes(word)
            };
            let rgb = masks.map(|mask| ((value & mask) >> mask.trailing_zeros()) as u8);
            frame.data[3 * (y * width as usize + x)..][..3].copy_from_slice(&rgb);
        }
    }
    frame
}

/// Cuts `area` out of an RGB8 `frame`.
fn crop(frame: &Frame, area: Geometry) -> Frame {
    assert!(
        area.x + area.width <= frame.width && area.y + area.height <= frame.height,
        "window {area:?} is not inside the {}x{} screen",
        frame.width,
        frame.height
    );
    let mut out = Frame::new(area.width, area.height, PixelFormat::Rgb8);
    for y in 0..area.height as usize {
        let start = 3 * ((area.y as usize + y) * frame.width as usize + area.x as usize);
        out.data[3 * y * area.width as usize..][..3 * area.width as usize]
            .copy_from_slice(&frame.data[start..][..3 * area.width as usize]);
    }
    out
}

/// Screenshots until the window shows a frame (a pixel that is not black), and returns
/// the whole screen.
fn screenshot_with_content(display: &str, window: Geometry) -> Frame {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let screen = screenshot(display);
        if crop(&screen, window).data.iter().any(|&v| v != 0) {
            return screen;
        }
        assert!(
            Instant::now() < deadline,
            "the window stayed black for 60 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Presses Escape in the window titled ceus-edge. xdotool sends the key press to the
/// window as an event and no release, because the window closes on the press and a
/// release sent after that fails with BadWindow.
fn press_escape(display: &str) {
    let output = Command::new("xdotool")
        .args(["search", "--name", "^ceus-edge$", "keydown", "Escape"])
        .env("DISPLAY", display)
        .output()
        .expect("cannot run xdotool: install the Debian package xdotool");
    assert!(output.status.success(), "xdotool failed: {output:?}");
}

/// Reads the luma planes of a C444 Y4M recording, one frame at a time.
struct Y4mLuma {
    reader: BufReader<std::fs::File>,
    width: u32,
    height: u32,
}

impl Y4mLuma {
    fn open(path: &Path) -> Y4mLuma {
        let file = std::fs::File::open(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let mut reader = BufReader::new(file);
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        assert!(header.contains(" C444"), "recording header {header}");
        let value = |tag: char| -> u32 {
            header
                .split_whitespace()
                .find_map(|word| word.strip_prefix(tag))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {tag} in recording header {header}"))
        };
        Y4mLuma {
            width: value('W'),
            height: value('H'),
            reader,
        }
    }

    /// Reads the next frame's luma plane; `None` at the end of the file.
    fn next_luma(&mut self) -> Option<Vec<u8>> {
        let mut marker = String::new();
        if self.reader.read_line(&mut marker).unwrap() == 0 {
            return None;
        }
        assert!(marker.starts_with("FRAME"), "frame marker {marker:?}");
        let pixels = self.width as usize * self.height as usize;
        let mut planes = vec![0; 3 * pixels];
        self.reader.read_exact(&mut planes).unwrap();
        planes.truncate(pixels);
        Some(planes)
    }
}

/// How a screenshot of the window compares with one recorded frame.
#[derive(Debug, Clone, Copy)]
struct Difference {
    mean: f64,
    differing_share: f64,
}

/// Compares the window's pixels with the recorded luma of one frame, shown 1.5 times
/// larger from column 160. Written here without the product's scaling code: screen
/// position p of the shown part takes source position floor(p * 640 / 960).
fn compare(window: &Frame, luma: &[u8]) -> Difference {
    let (frame_w, frame_h) = FRAME_SIZE;
    let shown_w = frame_w * WINDOW_SIZE.1 / frame_h;
    let left = (WINDOW_SIZE.0 - shown_w) / 2;
    let mut total = 0u64;
    let mut differing = 0u64;
    for y in 0..WINDOW_SIZE.1 {
        let source_y = y * frame_h / WINDOW_SIZE.1;
        for x in left..left + shown_w {
            let source_x = (x - left) * frame_w / shown_w;
            let expected = luma[(source_y * frame_w + source_x) as usize];
            let pixel = &window.data[3 * (y * window.width + x) as usize..][..3];
            let shown = rgb_to_ycbcr(pixel[0], pixel[1], pixel[2])[0];
            let difference = u64::from(expected.abs_diff(shown));
            total += difference;
            differing += u64::from(difference > 0);
        }
    }
    let count = f64::from(shown_w * WINDOW_SIZE.1);
    Difference {
        mean: total as f64 / count,
        differing_share: differing as f64 / count,
    }
}

/// Checks that the columns beside the shown frame are black.
fn check_black_border(window: &Frame) {
    let shown_w = FRAME_SIZE.0 * WINDOW_SIZE.1 / FRAME_SIZE.1;
    let left = (WINDOW_SIZE.0 - shown_w) / 2;
    for y in 0..window.height {
        for x in (0..left).chain(left + shown_w..window.width) {
            let pixel = &window.data[3 * (y * window.width + x) as usize..][..3];
            assert_eq!(pixel, [0, 0, 0], "border pixel ({x}, {y}) is not black");
        }
    }
}

fn event_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Returns the path of the screenshot the test keeps, to look at after a run.
fn screenshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("window-screenshot.png")
}

#[test]
#[ignore = "starts Xvfb; needs the xvfb, x11-apps and xdotool packages"]
fn window_shows_the_recorded_overlay() {
    let xvfb = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("recording");
    let events_path = dir.path().join("events.jsonl");
    let size = format!("{}x{}", FRAME_SIZE.0, FRAME_SIZE.1);
    let child = ceus_edge()
        .args(["run", "--source", "phantom:7", "--phantom-size", &size])
        .args(["--phantom-fps", "10", "--phantom-seconds", "120"])
        .args(["--display", "window", "--record"])
        .arg(&recording)
        .arg("--events")
        .arg(&events_path)
        .env("DISPLAY", &xvfb.display)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut process = Running(Some(child));

    let window = wait_for_window(&xvfb.display, &mut process);
    assert_eq!((window.width, window.height), WINDOW_SIZE, "{window:?}");
    let early = screenshot_with_content(&xvfb.display, window);
    std::thread::sleep(Duration::from_millis(1500));
    let late = screenshot(&xvfb.display);
    write_png(&screenshot_path(), &late).unwrap();
    press_escape(&xvfb.display);
    let (status, stderr) = process.wait(Duration::from_secs(120));
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Escape ended the session early, and the session still wrote its stats.
    let events = event_lines(&events_path);
    let stats = events.last().unwrap();
    assert_eq!(stats["event"], "stats", "{stats}");
    let frames = stats["frames"].as_u64().unwrap();
    assert!(frames > 0, "no frame was shown: {stats}");
    assert!(
        frames < 1200,
        "Escape did not end the session: {frames} frames of 1200"
    );

    // Each screenshot shows one of the recorded frames, scaled and centred on black,
    // and the later screenshot a later frame.
    let overlay = recording.join("overlay.y4m");
    let mut matched = Vec::new();
    for (name, screen) in [("early", &early), ("late", &late)] {
        let shown = crop(screen, window);
        check_black_border(&shown);
        let (index, best, first) = best_match(&shown, &overlay);
        let context = format!(
            "{name} screenshot: best match recorded frame {index}, {best:?}; frame 0: \
             {first:?}; the late screenshot is in {}",
            screenshot_path().display()
        );
        assert!(best.mean <= MAX_MEAN_DIFFERENCE, "{context}");
        assert!(best.differing_share <= MAX_DIFFERING_SHARE, "{context}");
        matched.push(index);
    }
    assert!(
        matched[1] > matched[0],
        "the window did not follow the stream: recorded frames {matched:?}"
    );
}

/// Returns the recorded frame most like `window`: its index, its difference, and the
/// difference of frame 0 for comparison.
fn best_match(window: &Frame, recording: &Path) -> (usize, Difference, Difference) {
    let mut y4m = Y4mLuma::open(recording);
    assert_eq!((y4m.width, y4m.height), FRAME_SIZE);
    let mut differences = Vec::new();
    while let Some(luma) = y4m.next_luma() {
        differences.push(compare(window, &luma));
    }
    assert!(!differences.is_empty(), "empty recording");
    let (index, best) = differences
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.mean.total_cmp(&b.1.mean))
        .unwrap();
    (index, *best, differences[0])
}

#[test]
#[ignore = "starts Xvfb; needs the xvfb, x11-apps and xdotool packages"]
fn demo_uses_the_window_on_a_desktop() {
    let xvfb = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let child = ceus_edge()
        .args(["demo", "--out"])
        .arg(&out)
        .env("DISPLAY", &xvfb.display)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut process = Running(Some(child));
    let window = wait_for_window(&xvfb.display, &mut process);
    screenshot_with_content(&xvfb.display, window);
    press_escape(&xvfb.display);

    let mut stdout = String::new();
    process
        .child()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let (status, stderr) = process.wait(Duration::from_secs(120));
    assert!(status.success(), "{status}: {stderr}");
    assert!(stdout.contains("live in a window"), "{stdout}");
    let events = event_lines(&out.join("events.jsonl"));
    let stats = events.last().unwrap();
    assert_eq!(stats["event"], "stats", "{stats}");
    let frames = stats["frames"].as_u64().unwrap();
    assert!(frames > 0, "the demo ended before its first frame: {stats}");
}

/// Runs `ceus-edge run --display window` with the given display variables.
fn run_window(display: Option<&str>) -> Output {
    let mut command = ceus_edge();
    command
        .args(["run", "--source", "phantom:3", "--phantom-size", "320x240"])
        .args(["--phantom-seconds", "5", "--display", "window"])
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("DISPLAY");
    if let Some(display) = display {
        command.env("DISPLAY", display);
    }
    command.output().unwrap()
}

#[test]
fn window_without_a_desktop_fails_on_one_line() {
    let output = run_window(None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot use --display window"), "{stderr}");
    assert!(
        stderr.contains("neither DISPLAY nor WAYLAND_DISPLAY is set"),
        "{stderr}"
    );
}

#[test]
fn window_without_x_server_fails_on_one_line() {
    let number = (150..250)
        .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .expect("a display number without a server");
    let display = format!(":{number}");
    let output = run_window(Some(&display));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot open a window on DISPLAY={display}")),
        "{stderr}"
    );
}
