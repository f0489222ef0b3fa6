//! A desktop window as a display, for development (Cargo feature `window`).
//!
//! minifb opens the window through X11; on a Wayland desktop that is XWayland. It loads
//! Xlib with dlopen when the window opens, so the build needs no system development
//! packages, and a machine without Xlib gets an error rather than a failed start.
//!
//! The window lives on its own thread. [`Window::show`] copies the frame into a
//! one-frame mailbox and returns. The window thread takes the newest frame, scales it to
//! the window's current size with [`FitMap`], presents it and handles the window's
//! events. A slow window system or a large window therefore delays only the window, not
//! the frame path. Frames that arrive while the window is still presenting replace each
//! other in the mailbox, so the window skips frames rather than falling behind.
//!
//! Closing the window or pressing Escape marks the display closed
//! ([`Display::is_closed`]), and the live pipeline then ends the session.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::fit::{FitMap, BORDER};
use super::{desktop_session, Display, DisplayError};
use crate::frame::{Frame, PixelFormat};

/// Title of the window.
const TITLE: &str = "ceus-edge";

/// Size of the window when it opens, in pixels; the viewer can resize it.
const INITIAL_SIZE: (usize, usize) = (1280, 720);

/// Maximum time between two passes of the window thread over the window's events when no
/// frame arrives, so closing the window or pressing Escape is noticed within it.
const EVENT_INTERVAL: Duration = Duration::from_millis(20);

/// A desktop window that shows each frame scaled to fit, drawn by its own thread.
pub struct Window {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Window {
    /// Opens the window on the X server named by `DISPLAY` and starts its thread.
    ///
    /// # Errors
    /// [`DisplayError::Unavailable`] when `DISPLAY` is not set, or when the X server
    /// cannot be reached or refuses the window.
    pub fn open() -> Result<Window, DisplayError> {
        let session = match (desktop_session(), x_display()) {
            (_, Some(display)) => format!("DISPLAY={display}"),
            (Some(session), None) => {
                return Err(DisplayError::Unavailable(format!(
                    "cannot open a window on {session}: the window needs X11 (XWayland on a \
                     Wayland desktop), and DISPLAY is not set"
                )))
            }
            (None, None) => {
                return Err(DisplayError::Unavailable(
                    "no desktop session to open a window on: neither DISPLAY nor \
                     WAYLAND_DISPLAY is set"
                        .to_string(),
                ))
            }
        };
        let shared = Arc::new(Shared::default());
        let (opened_sender, opened) = mpsc::sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("window".to_string())
            .spawn(move || {
                // Marks the display closed however the thread ends, a panic included.
                let _closed_on_exit = ClosedOnExit(&thread_shared);
                match open_window() {
                    Ok(window) => {
                        let _ = opened_sender.send(Ok(()));
                        present_until_closed(window, &thread_shared);
                    }
                    Err(message) => {
                        let _ = opened_sender.send(Err(message));
                    }
                }
            })
            .map_err(|error| {
                DisplayError::Unavailable(format!("cannot start the window thread: {error}"))
            })?;

        let failure = match opened.recv() {
            Ok(Ok(())) => {
                log::info!(
                    "drawing in a {}x{} window on {session}",
                    INITIAL_SIZE.0,
                    INITIAL_SIZE.1
                );
                return Ok(Window {
                    shared,
                    thread: Some(thread),
                });
            }
            Ok(Err(message)) => message,
            Err(_) => "the window thread stopped while opening the window".to_string(),
        };
        let _ = thread.join();
        Err(DisplayError::Unavailable(format!(
            "cannot open a window on {session}: {failure}"
        )))
    }
}

impl Display for Window {
    /// Copies `frame` into the window thread's mailbox. The only wait is for the window
    /// thread's buffer swap, never for drawing.
    fn show(&mut self, frame: &Frame) -> Result<(), DisplayError> {
        check_frame(frame)?;
        if self.is_closed() {
            return Ok(());
        }
        self.shared.post(frame);
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Returns the value of `DISPLAY` when it is set and not empty.
fn x_display() -> Option<String> {
    std::env::var_os("DISPLAY")
        .filter(|value| !value.is_empty())
        .map(|value| value.to_string_lossy().into_owned())
}

/// Rejects what the window thread cannot draw: grey frames and frames whose data is
/// shorter than their size.
fn check_frame(frame: &Frame) -> Result<(), DisplayError> {
    if frame.format != PixelFormat::Rgb8 {
        return Err(DisplayError::Parameter(
            "the window takes RGB8 frames".to_string(),
        ));
    }
    let needed = frame.stride() * frame.height as usize;
    if frame.data.len() < needed {
        return Err(DisplayError::Parameter(format!(
            "frame of {}x{} has {} bytes of data, fewer than the {needed} its size needs",
            frame.width,
            frame.height,
            frame.data.len()
        )));
    }
    Ok(())
}

/// State shared by the frame path and the window thread.
#[derive(Default)]
struct Shared {
    mailbox: Mutex<Mailbox>,
    /// Wakes the window thread for a new frame or for `stop`.
    wake: Condvar,
    /// Set when the window thread has ended: the viewer closed the window, the window
    /// failed, or [`Window`] was dropped.
    closed: AtomicBool,
}

/// The newest frame not yet taken by the window thread.
#[derive(Debug)]
struct Mailbox {
    frame: Frame,
    /// Whether `frame` arrived since the window thread last took it.
    fresh: bool,
    /// Set when [`Window`] is dropped: the window thread closes the window and ends.
    stop: bool,
}

impl Default for Mailbox {
    fn default() -> Mailbox {
        Mailbox {
            frame: Frame::empty(),
            fresh: false,
            stop: false,
        }
    }
}

/// What [`Shared::take`] found.
#[derive(Debug, PartialEq, Eq)]
enum Take {
    /// A new frame was swapped into the caller's frame.
    Fresh,
    /// No new frame arrived within the wait.
    Idle,
    /// The window is being dropped.
    Stop,
}

impl Shared {
    /// Locks the mailbox. A panic on the window thread never happens while it holds the
    /// lock, so a poisoned mailbox still holds a whole frame and is used as it is.
    fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies `frame` into the mailbox, replacing a frame the window thread has not taken,
    /// and wakes the window thread. The copy reuses the mailbox's buffer, so frames of an
    /// unchanged size allocate nothing.
    fn post(&self, frame: &Frame) {
        let mut mailbox = self.lock();
        let target = &mut mailbox.frame;
        target.index = frame.index;
        target.time_s = frame.time_s;
        target.width = frame.width;
        target.height = frame.height;
        target.format = frame.format;
        target.data.clear();
        target.data.extend_from_slice(&frame.data);
        mailbox.fresh = true;
        drop(mailbox);
        self.wake.notify_one();
    }

    /// Waits up to `timeout` for a new frame and swaps it into `frame`, so the mailbox
    /// keeps the old frame's buffer for the next copy.
    fn take(&self, frame: &mut Frame, timeout: Duration) -> Take {
        let mailbox = self.lock();
        let (mut mailbox, _) = self
            .wake
            .wait_timeout_while(mailbox, timeout, |m| !m.fresh && !m.stop)
            .unwrap_or_else(PoisonError::into_inner);
        if mailbox.stop {
            return Take::Stop;
        }
        if !mailbox.fresh {
            return Take::Idle;
        }
        std::mem::swap(&mut mailbox.frame, frame);
        mailbox.fresh = false;
        Take::Fresh
    }
}

/// Sets [`Shared::closed`] when dropped.
struct ClosedOnExit<'a>(&'a Shared);

impl Drop for ClosedOnExit<'_> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

/// Opens the minifb window, resizable, and clears it to black.
fn open_window() -> Result<minifb::Window, String> {
    let options = minifb::WindowOptions {
        resize: true,
        ..minifb::WindowOptions::default()
    };
    let (width, height) = INITIAL_SIZE;
    let mut window =
        minifb::Window::new(TITLE, width, height, options).map_err(|error| error.to_string())?;
    // The window thread paces itself on the mailbox, so minifb's own frame limiter,
    // which sleeps inside every update, is turned off.
    window.set_target_fps(0);
    let black = vec![0u32; width * height];
    window
        .update_with_buffer(&black, width, height)
        .map_err(|error| error.to_string())?;
    Ok(window)
}

/// Notes a press of Escape. minifb's `is_key_down` shows only the state after the last
/// event, which misses a press released before the next update; this sees every press.
struct EscapeWatch(Rc<Cell<bool>>);

impl minifb::InputCallback for EscapeWatch {
    fn add_char(&mut self, _character: u32) {}

    fn set_key_state(&mut self, key: minifb::Key, down: bool) {
        if key == minifb::Key::Escape && down {
            self.0.set(true);
        }
    }
}

/// The window thread's loop: presents each new frame and handles the window's events
/// until the viewer closes the window, the window fails, or [`Window`] is dropped.
///
/// NOTE: when the X server goes away during the session, Xlib's default I/O error
/// handler exits the process with status 1, so the session ends without its `stats`
/// event. minifb installs no handler of its own.
fn present_until_closed(mut window: minifb::Window, shared: &Shared) {
    let mut frame = Frame::empty();
    let mut canvas = Canvas::default();
    let escape = Rc::new(Cell::new(false));
    window.set_input_callback(Box::new(EscapeWatch(Rc::clone(&escape))));
    loop {
        let taken = shared.take(&mut frame, EVENT_INTERVAL);
        if taken == Take::Stop {
            log::debug!("closing the window");
            return;
        }
        let (width, height) = window.get_size();
        let redraw = taken == Take::Fresh || canvas.size() != (width, height);
        if redraw && width > 0 && height > 0 {
            let pixels = canvas.draw(&frame, width, height);
            if let Err(error) = window.update_with_buffer(pixels, width, height) {
                log::error!("window: cannot present a {width}x{height} frame: {error}");
                return;
            }
        } else {
            window.update();
        }
        if !window.is_open() || escape.get() {
            log::info!("the viewer closed the window");
            return;
        }
    }
}

/// The window's pixels: a frame scaled to fit the window, as 0RGB words
/// (`0x00RRGGBB`), the layout minifb presents.
#[derive(Debug, Default)]
struct Canvas {
    /// Window size the pixels and the map are for.
    size: (usize, usize),
    /// Frame size the map is for.
    frame_size: (u32, u32),
    map: FitMap,
    pixels: Vec<u32>,
}

impl Canvas {
    fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Draws `frame`, an RGB8 frame that passed [`check_frame`] (or an empty one), into
    /// a `width` x `height` window, black outside the frame.
    fn draw(&mut self, frame: &Frame, width: usize, height: usize) -> &[u32] {
        if self.size != (width, height) || self.frame_size != (frame.width, frame.height) {
            let screen = (clamp_u32(width), clamp_u32(height));
            self.map = FitMap::new(screen, (frame.width, frame.height));
            self.size = (self.map.columns().len(), self.map.rows().len());
            self.frame_size = (frame.width, frame.height);
            self.pixels.resize(self.size.0 * self.size.1, 0);
        }

        let stride = frame.stride();
        let columns = self.map.columns();
        let lines = self.pixels.chunks_exact_mut(columns.len().max(1));
        for (line, &source_row) in lines.zip(self.map.rows()) {
            if source_row == BORDER {
                line.fill(0);
                continue;
            }
            let row = &frame.data[source_row as usize * stride..][..stride];
            for (pixel, &source_column) in line.iter_mut().zip(columns) {
                *pixel = if source_column == BORDER {
                    0
                } else {
                    let rgb = &row[3 * source_column as usize..][..3];
                    pack_0rgb(rgb[0], rgb[1], rgb[2])
                };
            }
        }
        &self.pixels
    }
}

/// One pixel as minifb's 0RGB word.
fn pack_0rgb(r: u8, g: u8, b: u8) -> u32 {
    (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b)
}

fn clamp_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb_frame(width: u32, height: u32, pixels: &[[u8; 3]]) -> Frame {
        let mut frame = Frame::new(width, height, PixelFormat::Rgb8);
        frame.data = pixels.iter().flatten().copied().collect();
        frame
    }

    #[test]
    fn pixels_are_0rgb_words() {
        assert_eq!(pack_0rgb(0x12, 0x34, 0x56), 0x0012_3456);
        assert_eq!(pack_0rgb(255, 0, 0), 0x00FF_0000);
        assert_eq!(pack_0rgb(0, 0, 255), 0x0000_00FF);
    }

    #[test]
    fn canvas_pillarboxes_a_narrow_frame() {
        // A 2x2 frame in a 6x3 window is shown 3x3 (scale 1.5) from column 1 to 3.
        let frame = rgb_frame(2, 2, &[[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]]);
        let mut canvas = Canvas::default();
        let pixels = canvas.draw(&frame, 6, 3).to_vec();
        let grey = |v: u32| v * 0x0001_0101;
        #[rustfmt::skip]
        let expected = [
            0, grey(1), grey(1), grey(2), 0, 0,
            0, grey(1), grey(1), grey(2), 0, 0,
            0, grey(3), grey(3), grey(4), 0, 0,
        ];
        assert_eq!(pixels, expected);
        assert_eq!(canvas.size(), (6, 3));
    }

    #[test]
    fn canvas_follows_a_resize() {
        let frame = rgb_frame(1, 1, &[[9, 8, 7]]);
        let mut canvas = Canvas::default();
        // In a 2x1 window the 1x1 frame is one pixel wide, centred: column 0 of 2.
        assert_eq!(canvas.draw(&frame, 2, 1), [0x0009_0807, 0]);
        assert_eq!(canvas.draw(&frame, 3, 3).len(), 9);
        assert_eq!(canvas.size(), (3, 3));
        assert!(canvas.draw(&frame, 3, 3).iter().all(|&p| p == 0x0009_0807));
    }

    #[test]
    fn canvas_of_an_empty_frame_is_black() {
        let mut canvas = Canvas::default();
        let pixels = canvas.draw(&Frame::empty(), 4, 2);
        assert_eq!(pixels, [0; 8]);
    }

    #[test]
    fn canvas_of_an_empty_window_is_empty() {
        let frame = rgb_frame(1, 1, &[[1, 2, 3]]);
        let mut canvas = Canvas::default();
        assert!(canvas.draw(&frame, 0, 0).is_empty());
        assert!(canvas.draw(&frame, 0, 5).is_empty());
    }

    #[test]
    fn mailbox_keeps_only_the_newest_frame() {
        let shared = Shared::default();
        let mut first = rgb_frame(1, 1, &[[1, 1, 1]]);
        first.index = 1;
        let mut second = rgb_frame(1, 1, &[[2, 2, 2]]);
        second.index = 2;
        shared.post(&first);
        shared.post(&second);

        let mut taken = Frame::empty();
        assert_eq!(shared.take(&mut taken, Duration::ZERO), Take::Fresh);
        assert_eq!(taken.index, 2);
        assert_eq!(taken.data, [2, 2, 2]);
        assert_eq!(shared.take(&mut taken, Duration::ZERO), Take::Idle);
        assert_eq!(taken.index, 2, "an idle take leaves the frame as it was");
    }

    #[test]
    fn mailbox_reuses_the_swapped_buffer() {
        let shared = Shared::default();
        let frame = rgb_frame(2, 1, &[[1, 2, 3], [4, 5, 6]]);
        let mut taken = Frame::empty();
        shared.post(&frame);
        shared.take(&mut taken, Duration::ZERO);
        shared.post(&frame);
        shared.take(&mut taken, Duration::ZERO);
        // The mailbox now holds the first copy's buffer; the next post writes into it.
        let buffer = shared.lock().frame.data.as_ptr();
        shared.post(&frame);
        assert_eq!(shared.lock().frame.data.as_ptr(), buffer);
    }

    #[test]
    fn mailbox_wakes_a_waiting_window_thread() {
        let shared = Arc::new(Shared::default());
        let poster = Arc::clone(&shared);
        let post = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            poster.post(&rgb_frame(1, 1, &[[7, 7, 7]]));
        });
        let mut taken = Frame::empty();
        let started = std::time::Instant::now();
        assert_eq!(
            shared.take(&mut taken, Duration::from_secs(10)),
            Take::Fresh
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(taken.data, [7, 7, 7]);
        post.join().unwrap();
    }

    #[test]
    fn mailbox_stop_ends_the_wait() {
        let shared = Shared::default();
        shared.post(&rgb_frame(1, 1, &[[7, 7, 7]]));
        shared.lock().stop = true;
        let mut taken = Frame::empty();
        assert_eq!(shared.take(&mut taken, Duration::from_secs(10)), Take::Stop);
    }

    #[test]
    fn grey_and_short_frames_are_rejected() {
        let grey = Frame::new(2, 2, PixelFormat::Gray8);
        assert!(check_frame(&grey).unwrap_err().to_string().contains("RGB8"));
        let mut short = Frame::new(2, 2, PixelFormat::Rgb8);
        short.data.truncate(11);
        let error = check_frame(&short).unwrap_err().to_string();
        assert!(error.contains("11 bytes"), "{error}");
        assert!(check_frame(&Frame::new(2, 2, PixelFormat::Rgb8)).is_ok());
    }
}
