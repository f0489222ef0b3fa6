//! The overlay on a real Linux framebuffer, read back from outside the machine.
//!
//! Ignored in a normal run: they unbind the framebuffer console, change the depth of
//! /dev/fb0 and draw on it, and they need the host to serve screendump requests.
//! scripts/vm-test.sh boots a kernel in QEMU with `-vga std`, whose bochs-drm driver
//! gives /dev/fb0, and runs them there with `--ignored --test-threads 1 fbdev::`.
//!
//! The test prints `ceus-vm: screendump NAME` on the console. The host then saves the
//! guest's screen through the QEMU monitor as target-vm/NAME.ppm in the shared repository
//! and creates target-vm/NAME.done, which the test waits for before it reads the PPM.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ceus_edge, repo_root};

const FRAMEBUFFER: &str = "/dev/fb0";

/// Maximum wait for the host to save a screendump. The host looks at the console once a
/// second, and QEMU without KVM is slow.
const SCREENDUMP_TIMEOUT: Duration = Duration::from_secs(60);

/// Frames of the phantom that `ceus-edge run` shows. Layout detection takes them all, so
/// the layout is found on the last frame, which is both the last frame drawn and the
/// frame of the `layout` snapshot.
const FRAMES: u32 = 20;
const FPS: u32 = 10;

/// `FBIOGET_VSCREENINFO` and `FBIOPUT_VSCREENINFO` from linux/fb.h.
const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOPUT_VSCREENINFO: libc::c_ulong = 0x4601;

/// `struct fb_bitfield`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

/// `struct fb_var_screeninfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct VarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: Bitfield,
    green: Bitfield,
    blue: Bitfield,
    transp: Bitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    timings: [u32; 11],
    reserved: [u32; 4],
}

fn get_var(device: &File) -> std::io::Result<VarScreeninfo> {
    let mut var = VarScreeninfo::default();
    // SAFETY: VarScreeninfo is a repr(C) copy of struct fb_var_screeninfo, which
    // FBIOGET_VSCREENINFO fills, and the descriptor stays open during the call.
    let status = unsafe { libc::ioctl(device.as_raw_fd(), FBIOGET_VSCREENINFO as _, &mut var) };
    if status < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(var)
}

fn put_var(device: &File, var: &VarScreeninfo) -> std::io::Result<VarScreeninfo> {
    let mut var = *var;
    // SAFETY: as in `get_var`. FBIOPUT_VSCREENINFO reads the struct and writes back the
    // values the driver granted.
    let status = unsafe { libc::ioctl(device.as_raw_fd(), FBIOPUT_VSCREENINFO as _, &mut var) };
    if status < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(var)
}

/// Returns `var` with `bits_per_pixel` and the usual channel layout of that depth:
/// RGB565, or 8-bit channels with red highest.
fn with_depth(var: &VarScreeninfo, bits_per_pixel: u32) -> VarScreeninfo {
    let field = |offset, length| Bitfield {
        offset,
        length,
        msb_right: 0,
    };
    let mut var = *var;
    var.bits_per_pixel = bits_per_pixel;
    (var.red, var.green, var.blue) = match bits_per_pixel {
        16 => (field(11, 5), field(5, 6), field(0, 5)),
        _ => (field(16, 8), field(8, 8), field(0, 8)),
    };
    var.transp = Bitfield::default();
    var
}

/// Unbinds the framebuffer console, so nothing but the program draws on the screen.
fn unbind_framebuffer_console() {
    let Ok(entries) = std::fs::read_dir("/sys/class/vtconsole") else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = std::fs::read_to_string(path.join("name")).unwrap_or_default();
        if name.contains("frame buffer") {
            std::fs::write(path.join("bind"), "0")
                .unwrap_or_else(|e| panic!("cannot unbind {}: {e}", path.display()));
            println!("unbound {} ({})", path.display(), name.trim());
        }
    }
}

/// Asks the host for a screendump named `name` and returns the PPM once it is saved.
fn request_screendump(name: &str) -> PathBuf {
    let folder = repo_root().join("target-vm");
    let done = folder.join(format!("{name}.done"));
    // The leading newline starts the request on a line of its own even when the test
    // harness has printed the test's name without one.
    println!("\nceus-vm: screendump {name}");
    std::io::stdout().flush().unwrap();
    let deadline = Instant::now() + SCREENDUMP_TIMEOUT;
    while !done.exists() {
        assert!(
            Instant::now() < deadline,
            "no screendump {} within {} s: these tests need the host side of \
             scripts/vm-test.sh",
            done.display(),
            SCREENDUMP_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    folder.join(format!("{name}.ppm"))
}

/// An RGB8 image.
struct Rgb {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Rgb {
    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let start = 3 * (y * self.width + x);
        [self.data[start], self.data[start + 1], self.data[start + 2]]
    }
}

/// Reads a binary PPM (P6) with a maximum value of 255, as QEMU 10.0's screendump writes.
fn read_ppm(path: &Path) -> Rgb {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));

    // The header is the magic, width, height and maximum, separated by whitespace and
    // `#` comments. One whitespace byte ends it.
    let mut fields = Vec::new();
    let mut position = 0;
    while fields.len() < 4 {
        while bytes[position].is_ascii_whitespace() {
            position += 1;
        }
        if bytes[position] == b'#' {
            while bytes[position] != b'\n' {
                position += 1;
            }
            continue;
        }
        let start = position;
        while !bytes[position].is_ascii_whitespace() {
            position += 1;
        }
        fields.push(
            std::str::from_utf8(&bytes[start..position])
                .unwrap()
                .to_string(),
        );
    }
    position += 1;

    assert_eq!(fields[0], "P6", "{} is not a binary PPM", path.display());
    assert_eq!(fields[3], "255", "{}: maximum value", path.display());
    let width: usize = fields[1].parse().unwrap();
    let height: usize = fields[2].parse().unwrap();
    let data = bytes[position..].to_vec();
    assert_eq!(
        data.len(),
        3 * width * height,
        "{}: pixel data",
        path.display()
    );
    Rgb {
        width,
        height,
        data,
    }
}

fn read_png(path: &Path) -> Rgb {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut data).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    data.truncate(info.buffer_size());
    Rgb {
        width: info.width as usize,
        height: info.height as usize,
        data,
    }
}

/// Maps each of `screen` positions to the source position shown there when `source`
/// positions are scaled to `shown` by nearest neighbour and centred. Positions in the
/// black border map to `None`.
fn nearest_map(screen: usize, shown: usize, source: usize) -> Vec<Option<usize>> {
    let start = (screen - shown) / 2;
    (0..screen)
        .map(|position| {
            (start..start + shown)
                .contains(&position)
                .then(|| (position - start) * source / shown)
        })
        .collect()
}

/// Differences between the screen and the frame scaled to fit it.
#[derive(Debug)]
struct Comparison {
    /// Mean absolute difference per channel, over every pixel of the screen.
    mean: f64,
    /// Largest absolute difference of any channel.
    max: u8,
    /// Pixels with any channel different.
    differing: usize,
    first: Option<Mismatch>,
}

/// The first differing pixel of a [`Comparison`].
#[derive(Debug)]
#[allow(dead_code)] // Read through `Debug` in failure messages.
struct Mismatch {
    position: (usize, usize),
    shown: [u8; 3],
    expected: [u8; 3],
}

/// Compares `screen` with `frame` scaled to fit it, aspect ratio kept and centred on
/// black, with each channel reduced by `reduce` before the comparison.
fn compare(screen: &Rgb, frame: &Rgb, reduce: impl Fn(usize, u8) -> u8) -> Comparison {
    let (width, height) = (screen.width, screen.height);
    let (shown_w, shown_h) = if width * frame.height <= height * frame.width {
        (width, (frame.height * width / frame.width).max(1))
    } else {
        ((frame.width * height / frame.height).max(1), height)
    };
    let columns = nearest_map(width, shown_w, frame.width);
    let rows = nearest_map(height, shown_h, frame.height);

    let mut comparison = Comparison {
        mean: 0.0,
        max: 0,
        differing: 0,
        first: None,
    };
    let mut sum = 0u64;
    for (y, row) in rows.iter().enumerate() {
        for (x, column) in columns.iter().enumerate() {
            let expected = match (row, column) {
                (Some(row), Some(column)) => frame.pixel(*column, *row),
                _ => [0, 0, 0],
            };
            let shown = screen.pixel(x, y);
            let mut differs = false;
            for channel in 0..3 {
                let a = reduce(channel, shown[channel]);
                let b = reduce(channel, expected[channel]);
                let difference = a.abs_diff(b);
                sum += u64::from(difference);
                comparison.max = comparison.max.max(difference);
                differs |= difference > 0;
            }
            if differs {
                comparison.differing += 1;
                comparison.first.get_or_insert(Mismatch {
                    position: (x, y),
                    shown,
                    expected,
                });
            }
        }
    }
    comparison.mean = sum as f64 / (3 * width * height) as f64;
    comparison
}

/// Runs `ceus-edge run` on a short phantom with the overlay on /dev/fb0, and returns the
/// snapshot of the last frame it drew.
fn draw_phantom_overlay(size: (usize, usize), record: &Path) -> Rgb {
    let events = record.join("events.jsonl");
    let output = ceus_edge()
        .args([
            "run",
            "--source",
            "phantom:5",
            "--pace",
            "fast",
            "--threads",
            "2",
        ])
        .args(["--phantom-size", &format!("{}x{}", size.0, size.1)])
        .args(["--phantom-fps", &FPS.to_string()])
        .args(["--phantom-seconds", &(FRAMES / FPS).to_string()])
        .args(["--detect-frames", &FRAMES.to_string()])
        .args(["--display", &format!("fb:{FRAMEBUFFER}")])
        .arg("--record")
        .arg(record)
        .arg("--events")
        .arg(&events)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ceus-edge run failed: {stderr}");

    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().filter_map(|e| e["event"].as_str()).collect();
    let stats = lines.last().unwrap();
    assert_eq!(stats["event"], "stats", "{names:?}");
    assert_eq!(stats["frames"], FRAMES, "{stats}");
    // The last frame found the layout, and nothing after it changed the overlay.
    assert!(names.contains(&"layout"), "{names:?}");
    for later in ["bolus_arrival", "peak", "result"] {
        assert!(!names.contains(&later), "{later} in {names:?}");
    }

    let snapshots: Vec<PathBuf> = std::fs::read_dir(record)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with("-layout.png"))
        .collect();
    assert_eq!(snapshots.len(), 1, "layout snapshots {snapshots:?}");
    read_png(&snapshots[0])
}

/// Draws the overlay at `bits_per_pixel`, dumps the screen and compares it with the
/// recorded snapshot. Returns false when the driver does not take that depth.
fn check_depth(device: &File, original: &VarScreeninfo, bits_per_pixel: u32) -> bool {
    if bits_per_pixel != original.bits_per_pixel {
        match put_var(device, &with_depth(original, bits_per_pixel)) {
            Ok(granted) if granted.bits_per_pixel == bits_per_pixel => {}
            Ok(granted) => {
                println!(
                    "{FRAMEBUFFER}: asked for {bits_per_pixel} bits per pixel, the driver \
                     kept {}",
                    granted.bits_per_pixel
                );
                return false;
            }
            Err(error) => {
                println!(
                    "{FRAMEBUFFER}: the driver rejects {bits_per_pixel} bits per pixel: {error}"
                );
                return false;
            }
        }
    }
    let var = get_var(device).unwrap();
    println!(
        "{FRAMEBUFFER}: {}x{}, {} bits per pixel, red {:?} green {:?} blue {:?}",
        var.xres, var.yres, var.bits_per_pixel, var.red, var.green, var.blue
    );

    // Half the screen in each direction scales by exactly 2, so every screen pixel
    // shows one frame pixel and no border is left.
    let size = (var.xres as usize / 2, var.yres as usize / 2);
    let record = tempfile::tempdir().unwrap();
    let snapshot = draw_phantom_overlay(size, record.path());
    assert_eq!((snapshot.width, snapshot.height), size);

    let screen = read_ppm(&request_screendump(&format!("fbdev-{bits_per_pixel}bpp")));
    assert_eq!(
        (screen.width, screen.height),
        (var.xres as usize, var.yres as usize),
        "screendump size"
    );
    // Channels of fewer than 8 bits keep their top bits. QEMU widens them back in its
    // own way, so only those bits are compared.
    let lengths = [var.red.length, var.green.length, var.blue.length];
    let comparison = compare(&screen, &snapshot, |channel, value| {
        value >> (8 - lengths[channel].min(8))
    });
    println!("{bits_per_pixel} bpp: screen against the recorded overlay: {comparison:?}");
    // Every bit the framebuffer stores comes back unchanged, so nothing may differ.
    assert_eq!(
        comparison.differing, 0,
        "{bits_per_pixel} bpp: {} pixels differ (mean {:.3}, max {}), first {:?}",
        comparison.differing, comparison.mean, comparison.max, comparison.first
    );

    // The same comparison must see red and blue swapped: the overlay's yellow ROI frame
    // and red demo label change.
    let mut swapped = snapshot;
    for pixel in swapped.data.chunks_exact_mut(3) {
        pixel.swap(0, 2);
    }
    let wrong = compare(&screen, &swapped, |channel, value| {
        value >> (8 - lengths[channel].min(8))
    });
    println!(
        "{bits_per_pixel} bpp: screen against the overlay with red and blue swapped: {wrong:?}"
    );
    assert!(
        wrong.differing > 1000,
        "swapping red and blue changes only {} pixels",
        wrong.differing
    );
    true
}

/// Checks each depth the driver takes. The screendump is taken after `ceus-edge run` has
/// exited: with the console unbound, nothing draws on the framebuffer after it, so the
/// screen keeps the last frame the program drew.
#[test]
#[ignore = "needs /dev/fb0 and the screendump service of scripts/vm-test.sh"]
fn screen_shows_recorded_overlay() {
    unbind_framebuffer_console();
    let device = OpenOptions::new()
        .read(true)
        .write(true)
        .open(FRAMEBUFFER)
        .unwrap_or_else(|e| panic!("cannot open {FRAMEBUFFER}: {e}"));
    let original = get_var(&device).unwrap();

    let mut checked = Vec::new();
    for bits_per_pixel in [32, 24, 16] {
        if check_depth(&device, &original, bits_per_pixel) {
            checked.push(bits_per_pixel);
        }
    }
    if let Err(error) = put_var(&device, &original) {
        println!("{FRAMEBUFFER}: restoring the original mode failed: {error}");
    }
    println!("compared the screen at {checked:?} bits per pixel");
    assert!(
        checked.contains(&original.bits_per_pixel),
        "the driver's own depth of {} bits per pixel was not checked",
        original.bits_per_pixel
    );
}
