//! The Linux framebuffer (`/dev/fbN`) as a display.
//!
//! The device reports its visible size, bits per pixel, the position of each colour
//! channel in a pixel, and the bytes per line (`FBIOGET_VSCREENINFO`,
//! `FBIOGET_FSCREENINFO`; see the kernel's Documentation/fb/api.rst). Frames are scaled
//! to fit the screen with their aspect ratio kept (nearest neighbour), centred on black,
//! and packed into 16, 24 or 32 bits per pixel at the reported line length.
//!
//! [`Packer`] does the drawing into any byte slice, so it is tested without a device;
//! [`Framebuffer`] maps the device's memory and hands it to the packer.

use std::path::{Path, PathBuf};

use super::fit::{FitMap, BORDER};
use super::{Display, DisplayError};
use crate::frame::{Frame, PixelFormat};

/// Position of one colour channel in a pixel: its lowest bit and its width in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    pub offset: u32,
    pub length: u32,
}

/// The pixel layout of a framebuffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FbGeometry {
    /// Visible width and height in pixels.
    pub width: u32,
    pub height: u32,
    pub bits_per_pixel: u32,
    /// Bytes from one line to the next, padding included.
    pub line_length: u32,
    pub red: Channel,
    pub green: Channel,
    pub blue: Channel,
}

impl FbGeometry {
    /// Checks that the layout can be drawn: 16, 24 or 32 bits per pixel, channels of at
    /// most 8 bits inside the pixel, and lines long enough for the width.
    ///
    /// # Errors
    /// [`DisplayError::Unsupported`] naming the value that cannot be drawn.
    pub fn validate(&self) -> Result<(), DisplayError> {
        if !matches!(self.bits_per_pixel, 16 | 24 | 32) {
            return Err(DisplayError::Unsupported(format!(
                "framebuffer depth {} bits per pixel is not supported: use 16, 24 or 32",
                self.bits_per_pixel
            )));
        }
        if self.width == 0 || self.height == 0 {
            return Err(DisplayError::Unsupported(format!(
                "framebuffer size {}x{} is empty",
                self.width, self.height
            )));
        }
        for (name, channel) in [
            ("red", self.red),
            ("green", self.green),
            ("blue", self.blue),
        ] {
            if channel.length == 0
                || channel.length > 8
                || channel.offset + channel.length > self.bits_per_pixel
            {
                return Err(DisplayError::Unsupported(format!(
                    "framebuffer {name} channel at bit {} with {} bits does not fit a {}-bit pixel",
                    channel.offset, channel.length, self.bits_per_pixel
                )));
            }
        }
        let needed = u64::from(self.width) * u64::from(self.bytes_per_pixel());
        if u64::from(self.line_length) < needed {
            return Err(DisplayError::Unsupported(format!(
                "framebuffer line length {} bytes is shorter than {} pixels of {} bytes",
                self.line_length,
                self.width,
                self.bytes_per_pixel()
            )));
        }
        Ok(())
    }

    pub fn bytes_per_pixel(&self) -> u32 {
        self.bits_per_pixel / 8
    }

    /// Bytes of the visible screen: `line_length` times the height.
    pub fn screen_bytes(&self) -> usize {
        self.line_length as usize * self.height as usize
    }

    /// Packs one RGB pixel into the device's layout, little-endian.
    pub fn pack(&self, r: u8, g: u8, b: u8) -> u32 {
        let place = |value: u8, channel: Channel| {
            (u32::from(value) >> (8 - channel.length)) << channel.offset
        };
        place(r, self.red) | place(g, self.green) | place(b, self.blue)
    }
}

/// Scales and packs RGB8 frames into a framebuffer's memory.
#[derive(Debug)]
pub struct Packer {
    geometry: FbGeometry,
    /// Frame size the map was made for.
    frame_size: (u32, u32),
    map: FitMap,
}

impl Packer {
    /// # Errors
    /// The errors of [`FbGeometry::validate`].
    pub fn new(geometry: FbGeometry) -> Result<Packer, DisplayError> {
        geometry.validate()?;
        Ok(Packer {
            geometry,
            frame_size: (0, 0),
            map: FitMap::default(),
        })
    }

    pub fn geometry(&self) -> &FbGeometry {
        &self.geometry
    }

    /// Draws `frame` into `screen`, the device memory of at least
    /// [`FbGeometry::screen_bytes`] bytes.
    ///
    /// # Errors
    /// [`DisplayError::Parameter`] for a grey frame or a screen buffer that is too short.
    pub fn draw(&mut self, frame: &Frame, screen: &mut [u8]) -> Result<(), DisplayError> {
        if frame.format != PixelFormat::Rgb8 || frame.width == 0 || frame.height == 0 {
            return Err(DisplayError::Parameter(
                "the framebuffer takes non-empty RGB8 frames".to_string(),
            ));
        }
        if screen.len() < self.geometry.screen_bytes() {
            return Err(DisplayError::Parameter(format!(
                "screen buffer of {} bytes is shorter than {} lines of {} bytes",
                screen.len(),
                self.geometry.height,
                self.geometry.line_length
            )));
        }
        if self.frame_size != (frame.width, frame.height) {
            let screen = (self.geometry.width, self.geometry.height);
            self.frame_size = (frame.width, frame.height);
            self.map = FitMap::new(screen, self.frame_size);
        }

        let bytes_per_pixel = self.geometry.bytes_per_pixel() as usize;
        let line_length = self.geometry.line_length as usize;
        let stride = frame.stride();
        let black = self.geometry.pack(0, 0, 0).to_le_bytes();
        let columns = self.map.columns();
        for (y, &source_row) in self.map.rows().iter().enumerate() {
            let line = &mut screen[y * line_length..][..columns.len() * bytes_per_pixel];
            let row = (source_row != BORDER)
                .then(|| &frame.data[source_row as usize * stride..][..stride]);
            for (pixel, &source_column) in line.chunks_exact_mut(bytes_per_pixel).zip(columns) {
                let packed = match row {
                    Some(row) if source_column != BORDER => {
                        let rgb = &row[3 * source_column as usize..][..3];
                        self.geometry.pack(rgb[0], rgb[1], rgb[2]).to_le_bytes()
                    }
                    _ => black,
                };
                pixel.copy_from_slice(&packed[..bytes_per_pixel]);
            }
        }
        Ok(())
    }
}

/// A framebuffer device with its memory mapped.
pub struct Framebuffer {
    path: PathBuf,
    packer: Packer,
    #[cfg(target_os = "linux")]
    memory: sys::Mapping,
}

impl Framebuffer {
    /// Opens `path`, reads its layout and maps its memory.
    ///
    /// # Errors
    /// [`DisplayError::Io`] when the device cannot be opened, queried or mapped, and
    /// [`DisplayError::Unsupported`] for a layout that cannot be drawn (or on a system
    /// without framebuffers).
    #[cfg(target_os = "linux")]
    pub fn open(path: &Path) -> Result<Framebuffer, DisplayError> {
        let (geometry, memory) = sys::open(path)?;
        let packer = Packer::new(geometry)?;
        log::info!(
            "drawing on framebuffer {}: {}x{}, {} bits per pixel, {} bytes per line",
            path.display(),
            geometry.width,
            geometry.height,
            geometry.bits_per_pixel,
            geometry.line_length
        );
        Ok(Framebuffer {
            path: path.to_path_buf(),
            packer,
            memory,
        })
    }

    /// Framebuffers are a Linux interface; elsewhere opening one fails.
    #[cfg(not(target_os = "linux"))]
    pub fn open(path: &Path) -> Result<Framebuffer, DisplayError> {
        Err(DisplayError::Unsupported(format!(
            "framebuffer {} needs Linux",
            path.display()
        )))
    }

    pub fn geometry(&self) -> &FbGeometry {
        self.packer.geometry()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Display for Framebuffer {
    fn show(&mut self, frame: &Frame) -> Result<(), DisplayError> {
        #[cfg(target_os = "linux")]
        {
            self.packer.draw(frame, self.memory.bytes_mut())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = frame;
            Ok(())
        }
    }
}

/// The ioctl and mmap calls, kept in one place.
#[cfg(target_os = "linux")]
mod sys {
    use std::fs::OpenOptions;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    use super::{Channel, DisplayError, FbGeometry};

    /// `FBIOGET_VSCREENINFO` and `FBIOGET_FSCREENINFO` from linux/fb.h.
    const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
    const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;

    /// `struct fb_bitfield`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct FbBitfield {
        offset: u32,
        length: u32,
        msb_right: u32,
    }

    /// `struct fb_var_screeninfo`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct FbVarScreeninfo {
        xres: u32,
        yres: u32,
        xres_virtual: u32,
        yres_virtual: u32,
        xoffset: u32,
        yoffset: u32,
        bits_per_pixel: u32,
        grayscale: u32,
        red: FbBitfield,
        green: FbBitfield,
        blue: FbBitfield,
        transp: FbBitfield,
        nonstd: u32,
        activate: u32,
        height: u32,
        width: u32,
        accel_flags: u32,
        timings: [u32; 11],
        reserved: [u32; 4],
    }

    /// `struct fb_fix_screeninfo`.
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct FbFixScreeninfo {
        id: [u8; 16],
        smem_start: libc::c_ulong,
        smem_len: u32,
        kind: u32,
        type_aux: u32,
        visual: u32,
        xpanstep: u16,
        ypanstep: u16,
        ywrapstep: u16,
        line_length: u32,
        mmio_start: libc::c_ulong,
        mmio_len: u32,
        accel: u32,
        capabilities: u16,
        reserved: [u16; 2],
    }

    /// A shared mapping of the visible screen, unmapped on drop.
    pub struct Mapping {
        pointer: *mut u8,
        /// Bytes mapped, from the start of the device memory.
        len: usize,
        /// Offset of the visible screen inside the mapping (the panning offset).
        visible: usize,
        screen_bytes: usize,
    }

    // SAFETY: the mapping is owned by one `Mapping` and only reached through
    // `&mut self`, so moving it to another thread cannot create shared access.
    unsafe impl Send for Mapping {}

    impl Mapping {
        pub fn bytes_mut(&mut self) -> &mut [u8] {
            // SAFETY: `open` checked that `visible + screen_bytes <= len`, the mapping
            // lives until `drop`, and `&mut self` makes this the only slice into it.
            unsafe {
                std::slice::from_raw_parts_mut(self.pointer.add(self.visible), self.screen_bytes)
            }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: `pointer` and `len` are what mmap returned and mapped, and no slice
            // from `bytes_mut` outlives `self`.
            unsafe {
                libc::munmap(self.pointer.cast(), self.len);
            }
        }
    }

    fn io_error(path: &Path, operation: &'static str) -> DisplayError {
        DisplayError::Io {
            path: path.to_path_buf(),
            operation,
            source: std::io::Error::last_os_error(),
        }
    }

    pub fn open(path: &Path) -> Result<(FbGeometry, Mapping), DisplayError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| DisplayError::Io {
                path: path.to_path_buf(),
                operation: "opening the framebuffer",
                source,
            })?;
        let fd = file.as_raw_fd();

        let mut var = FbVarScreeninfo::default();
        let mut fix = FbFixScreeninfo::default();
        // SAFETY: both structs are repr(C) copies of the kernel's, the kernel writes at
        // most their size, and the file descriptor is open for the whole call.
        let (var_status, fix_status) = unsafe {
            (
                libc::ioctl(
                    fd,
                    FBIOGET_VSCREENINFO as _,
                    &mut var as *mut FbVarScreeninfo,
                ),
                libc::ioctl(
                    fd,
                    FBIOGET_FSCREENINFO as _,
                    &mut fix as *mut FbFixScreeninfo,
                ),
            )
        };
        if var_status < 0 {
            return Err(io_error(path, "FBIOGET_VSCREENINFO"));
        }
        if fix_status < 0 {
            return Err(io_error(path, "FBIOGET_FSCREENINFO"));
        }

        let geometry = FbGeometry {
            width: var.xres,
            height: var.yres,
            bits_per_pixel: var.bits_per_pixel,
            line_length: fix.line_length,
            red: Channel {
                offset: var.red.offset,
                length: var.red.length,
            },
            green: Channel {
                offset: var.green.offset,
                length: var.green.length,
            },
            blue: Channel {
                offset: var.blue.offset,
                length: var.blue.length,
            },
        };
        geometry.validate()?;
        let visible = var.yoffset as usize * fix.line_length as usize
            + var.xoffset as usize * geometry.bytes_per_pixel() as usize;
        let screen_bytes = geometry.screen_bytes();
        let len = fix.smem_len as usize;
        if visible
            .checked_add(screen_bytes)
            .is_none_or(|end| end > len)
        {
            return Err(DisplayError::Unsupported(format!(
                "framebuffer {} reports {len} bytes of memory, fewer than its visible screen needs",
                path.display()
            )));
        }

        // SAFETY: a shared read-write mapping of `len` bytes of an open framebuffer;
        // the result is checked against MAP_FAILED before use.
        let pointer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if pointer == libc::MAP_FAILED {
            return Err(io_error(path, "mmap"));
        }
        let mapping = Mapping {
            pointer: pointer.cast(),
            len,
            visible,
            screen_bytes,
        };
        Ok((geometry, mapping))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(bits_per_pixel: u32, width: u32, height: u32, line_length: u32) -> FbGeometry {
        let (red, green, blue) = match bits_per_pixel {
            16 => ((11, 5), (5, 6), (0, 5)),
            _ => ((16, 8), (8, 8), (0, 8)),
        };
        let channel = |(offset, length)| Channel { offset, length };
        FbGeometry {
            width,
            height,
            bits_per_pixel,
            line_length,
            red: channel(red),
            green: channel(green),
            blue: channel(blue),
        }
    }

    fn rgb_frame(width: u32, height: u32, pixels: &[[u8; 3]]) -> Frame {
        let mut frame = Frame::new(width, height, PixelFormat::Rgb8);
        frame.data = pixels.iter().flatten().copied().collect();
        frame
    }

    #[test]
    fn packs_each_depth() {
        assert_eq!(geometry(16, 1, 1, 2).pack(255, 0, 0), 0xF800);
        assert_eq!(geometry(16, 1, 1, 2).pack(0, 255, 0), 0x07E0);
        assert_eq!(geometry(32, 1, 1, 4).pack(1, 2, 3), 0x0001_0203);
        assert_eq!(geometry(24, 1, 1, 3).pack(255, 128, 0), 0x00FF_8000);
    }

    #[test]
    fn same_size_frame_keeps_line_padding() {
        // Two pixels per line with 4 bytes of padding after each line.
        let geometry = geometry(32, 2, 2, 12);
        let mut packer = Packer::new(geometry).unwrap();
        let frame = rgb_frame(2, 2, &[[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]);
        let mut screen = vec![0xEE; 24];
        packer.draw(&frame, &mut screen).unwrap();
        assert_eq!(&screen[0..8], &[3, 2, 1, 0, 6, 5, 4, 0]);
        assert_eq!(&screen[8..12], &[0xEE; 4], "padding must stay untouched");
        assert_eq!(&screen[12..20], &[9, 8, 7, 0, 12, 11, 10, 0]);
    }

    #[test]
    fn rgb565_and_rgb24_layouts() {
        let frame = rgb_frame(1, 1, &[[255, 255, 255]]);
        let mut packer = Packer::new(geometry(16, 1, 1, 2)).unwrap();
        let mut screen = vec![0; 2];
        packer.draw(&frame, &mut screen).unwrap();
        assert_eq!(screen, [0xFF, 0xFF]);

        let mut packer = Packer::new(geometry(24, 1, 1, 3)).unwrap();
        let mut screen = vec![0; 3];
        packer
            .draw(&rgb_frame(1, 1, &[[1, 2, 3]]), &mut screen)
            .unwrap();
        assert_eq!(screen, [3, 2, 1]);
    }

    #[test]
    fn wide_frame_is_letterboxed_and_scaled() {
        // A 4x1 frame on a 2x2 screen is shown 2 pixels wide and 1 high, centred.
        let mut packer = Packer::new(geometry(32, 2, 3, 8)).unwrap();
        let frame = rgb_frame(
            4,
            1,
            &[[10, 10, 10], [20, 20, 20], [30, 30, 30], [40, 40, 40]],
        );
        let mut screen = vec![0xEE; 24];
        packer.draw(&frame, &mut screen).unwrap();
        assert_eq!(&screen[0..8], &[0; 8], "top border is black");
        assert_eq!(&screen[8..16], &[10, 10, 10, 0, 30, 30, 30, 0]);
        assert_eq!(&screen[16..24], &[0; 8], "bottom border is black");
    }

    #[test]
    fn invalid_layouts_are_rejected() {
        let mut bad_depth = geometry(32, 2, 2, 8);
        bad_depth.bits_per_pixel = 8;
        assert!(Packer::new(bad_depth).is_err());
        let short_lines = geometry(32, 2, 2, 4);
        let error = Packer::new(short_lines).unwrap_err().to_string();
        assert!(error.contains("line length 4"), "{error}");
        let mut wide_channel = geometry(16, 2, 2, 4);
        wide_channel.red.offset = 12;
        assert!(Packer::new(wide_channel).is_err());
    }

    #[test]
    fn short_screen_and_grey_frames_are_rejected() {
        let mut packer = Packer::new(geometry(32, 2, 2, 8)).unwrap();
        let frame = rgb_frame(1, 1, &[[0, 0, 0]]);
        assert!(packer.draw(&frame, &mut [0; 15]).is_err());
        let grey = Frame::new(1, 1, PixelFormat::Gray8);
        assert!(packer.draw(&grey, &mut [0; 16]).is_err());
    }

    #[test]
    fn missing_device_is_a_clear_error() {
        let error = Framebuffer::open(Path::new("/nonexistent/fb9"))
            .err()
            .expect("opening a missing device fails")
            .to_string();
        assert!(error.contains("/nonexistent/fb9"), "{error}");
    }
}
