//! Frames written into a V4L2 video output node through the raw ioctls of the v4l crate.
//!
//! NOTE: v4l 0.14's `OutputStream::next()` waits for a free buffer before anything has been
//! queued, and on vivid that wait never ends, so this module queues the mmap buffers itself.

use std::io;
use std::mem;
use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::ptr;
use std::time::{Duration, Instant};

use v4l::v4l2 as api;
use v4l::v4l2::vidioc;
use v4l::v4l_sys::{
    v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT as BUF_TYPE_VIDEO_OUTPUT, v4l2_buffer, v4l2_control,
    v4l2_dv_timings, v4l2_enum_dv_timings, v4l2_field_V4L2_FIELD_NONE as FIELD_NONE, v4l2_format,
    v4l2_memory_V4L2_MEMORY_MMAP as MEMORY_MMAP, v4l2_queryctrl, v4l2_requestbuffers,
};

/// `V4L2_CTRL_FLAG_NEXT_CTRL`: `VIDIOC_QUERYCTRL` returns the control after the given id.
const CTRL_FLAG_NEXT_CTRL: u32 = 0x8000_0000;

/// Output buffers: enough that one is always queued while another is being refilled.
const BUFFER_COUNT: u32 = 4;

/// Runs one ioctl, retrying when a signal interrupts it.
///
/// # Safety
/// `argument` must be a value of the type that `request` expects.
pub unsafe fn ioctl<T>(fd: c_int, request: vidioc::_IOC_TYPE, argument: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: the caller upholds that `argument` has the type `request` expects; the
        // exclusive borrow keeps it alive and unaliased during the call.
        let result = unsafe { api::ioctl(fd, request, argument as *mut T as *mut c_void) };
        match result {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Selects input `index` of a capture node (`VIDIOC_S_INPUT`).
pub fn select_input(fd: c_int, index: u32) -> io::Result<()> {
    let mut value = index as c_int;
    // SAFETY: VIDIOC_S_INPUT takes an int.
    unsafe { ioctl(fd, vidioc::VIDIOC_S_INPUT, &mut value) }
}

/// Selects output `index` of an output node (`VIDIOC_S_OUTPUT`).
pub fn select_output(fd: c_int, index: u32) -> io::Result<()> {
    let mut value = index as c_int;
    // SAFETY: VIDIOC_S_OUTPUT takes an int.
    unsafe { ioctl(fd, vidioc::VIDIOC_S_OUTPUT, &mut value) }
}

/// Finds the id of the control named `name` (such as vivid's "Loop Video") by walking
/// the controls with `VIDIOC_QUERYCTRL`.
pub fn find_control(fd: c_int, name: &str) -> io::Result<u32> {
    let mut id = 0;
    loop {
        // SAFETY: v4l2_queryctrl is plain old data, for which all zero bytes are valid.
        let mut query: v4l2_queryctrl = unsafe { mem::zeroed() };
        query.id = id | CTRL_FLAG_NEXT_CTRL;
        // SAFETY: VIDIOC_QUERYCTRL takes a struct v4l2_queryctrl.
        if let Err(error) = unsafe { ioctl(fd, vidioc::VIDIOC_QUERYCTRL, &mut query) } {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no control named {name:?} ({error})"),
            ));
        }
        let end = query
            .name
            .iter()
            .position(|c| *c == 0)
            .unwrap_or(query.name.len());
        if &query.name[..end] == name.as_bytes() {
            return Ok(query.id);
        }
        id = query.id;
    }
}

/// Sets the integer, boolean or menu control `id` to `value` (`VIDIOC_S_CTRL`).
pub fn set_control(fd: c_int, id: u32, value: i32) -> io::Result<()> {
    let mut control = v4l2_control { id, value };
    // SAFETY: VIDIOC_S_CTRL takes a struct v4l2_control.
    unsafe { ioctl(fd, vidioc::VIDIOC_S_CTRL, &mut control) }
}

/// `_IOWR('V', nr, size)` of the kernel's ioctl encoding, for requests that v4l 0.14
/// does not define.
const fn iowr(nr: u32, size: usize) -> vidioc::_IOC_TYPE {
    ((3 << 30) | ((size as u32) << 16) | ((b'V' as u32) << 8) | nr) as vidioc::_IOC_TYPE
}

const VIDIOC_S_DV_TIMINGS: vidioc::_IOC_TYPE = iowr(87, mem::size_of::<v4l2_dv_timings>());
const VIDIOC_ENUM_DV_TIMINGS: vidioc::_IOC_TYPE = iowr(98, mem::size_of::<v4l2_enum_dv_timings>());

/// Finds, among the DV timings the node lists (`VIDIOC_ENUM_DV_TIMINGS`), the progressive
/// ones of `width`x`height` whose frame rate is nearest to `fps`.
pub fn find_dv_timings(
    fd: c_int,
    width: u32,
    height: u32,
    fps: f64,
) -> io::Result<v4l2_dv_timings> {
    let mut best: Option<(f64, v4l2_dv_timings)> = None;
    // Drivers end the list with EINVAL; the cap guards against one that never does.
    for index in 0..256 {
        // SAFETY: v4l2_enum_dv_timings is plain old data, for which all zero bytes are
        // valid.
        let mut entry: v4l2_enum_dv_timings = unsafe { mem::zeroed() };
        entry.index = index;
        // SAFETY: VIDIOC_ENUM_DV_TIMINGS takes a struct v4l2_enum_dv_timings.
        match unsafe { ioctl(fd, VIDIOC_ENUM_DV_TIMINGS, &mut entry) } {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => break,
            Err(error) => return Err(error),
        }
        let timings = entry.timings;
        // SAFETY: the driver lists BT.656/1120 timings, whose member is `bt`. The packed
        // struct is copied out before its fields are read.
        let bt = unsafe { timings.__bindgen_anon_1.bt };
        let (bt_width, bt_height, interlaced) = (bt.width, bt.height, bt.interlaced);
        if (bt_width, bt_height, interlaced) != (width, height, 0) {
            continue;
        }
        let total = u64::from(bt_width + bt.hfrontporch + bt.hsync + bt.hbackporch)
            * u64::from(bt_height + bt.vfrontporch + bt.vsync + bt.vbackporch);
        let rate = bt.pixelclock as f64 / total as f64;
        if best
            .as_ref()
            .is_none_or(|(best_rate, _)| (rate - fps).abs() < (best_rate - fps).abs())
        {
            best = Some((rate, timings));
        }
    }
    best.map(|(_, timings)| timings).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no progressive {width}x{height} DV timings listed"),
        )
    })
}

/// Sets the DV timings of the node's current HDMI input or output (`VIDIOC_S_DV_TIMINGS`).
pub fn set_dv_timings(fd: c_int, timings: &v4l2_dv_timings) -> io::Result<()> {
    let mut timings = *timings;
    // SAFETY: VIDIOC_S_DV_TIMINGS takes a struct v4l2_dv_timings.
    unsafe { ioctl(fd, VIDIOC_S_DV_TIMINGS, &mut timings) }
}

struct Mapping {
    start: *mut u8,
    length: usize,
}

/// A streaming video output node with mmap buffers, all queued except while one is
/// being refilled, so the driver always has a frame to send.
pub struct OutputStream {
    fd: c_int,
    mappings: Vec<Mapping>,
    /// Bytes of one image, as `VIDIOC_G_FMT` reports it.
    pub sizeimage: usize,
    pub bytesperline: usize,
    pub width: u32,
    pub height: u32,
    streaming: bool,
}

impl OutputStream {
    /// Opens `path`, selects output `output` (an HDMI output), sets its DV timings and a
    /// progressive format of `fourcc` to `width`x`height` at 60 Hz, and maps the
    /// driver's buffers.
    pub fn open(
        path: &Path,
        output: u32,
        width: u32,
        height: u32,
        fourcc: [u8; 4],
    ) -> io::Result<OutputStream> {
        let fd = api::open(path, libc::O_RDWR | libc::O_NONBLOCK)?;
        // From here on, dropping `stream` closes the descriptor and unmaps the buffers.
        let mut stream = OutputStream {
            fd,
            mappings: Vec::new(),
            sizeimage: 0,
            bytesperline: 0,
            width: 0,
            height: 0,
            streaming: false,
        };
        select_output(fd, output)?;
        set_dv_timings(fd, &find_dv_timings(fd, width, height, 60.0)?)?;
        stream.set_format(width, height, fourcc)?;
        stream.map_buffers()?;
        Ok(stream)
    }

    fn set_format(&mut self, width: u32, height: u32, fourcc: [u8; 4]) -> io::Result<()> {
        // SAFETY: v4l2_format is plain old data, for which all zero bytes are valid.
        let mut format: v4l2_format = unsafe { mem::zeroed() };
        format.type_ = BUF_TYPE_VIDEO_OUTPUT;
        // Writing a union field is safe; `pix` is the member of single-planar formats.
        format.fmt.pix.width = width;
        format.fmt.pix.height = height;
        format.fmt.pix.pixelformat = u32::from_le_bytes(fourcc);
        format.fmt.pix.field = FIELD_NONE;
        // SAFETY: VIDIOC_S_FMT takes a struct v4l2_format.
        unsafe { ioctl(self.fd, vidioc::VIDIOC_S_FMT, &mut format)? };
        // SAFETY: the driver filled `pix` for the single-planar output type.
        let pix = unsafe { format.fmt.pix };
        if pix.width != width
            || pix.height != height
            || pix.pixelformat != u32::from_le_bytes(fourcc)
        {
            return Err(io::Error::other(format!(
                "output granted {}x{} fourcc {:08x} instead of {width}x{height}",
                pix.width, pix.height, pix.pixelformat
            )));
        }
        self.width = pix.width;
        self.height = pix.height;
        self.bytesperline = pix.bytesperline as usize;
        self.sizeimage = pix.sizeimage as usize;
        Ok(())
    }

    fn map_buffers(&mut self) -> io::Result<()> {
        // SAFETY: v4l2_requestbuffers is plain old data, for which all zero bytes are valid.
        let mut request: v4l2_requestbuffers = unsafe { mem::zeroed() };
        request.count = BUFFER_COUNT;
        request.type_ = BUF_TYPE_VIDEO_OUTPUT;
        request.memory = MEMORY_MMAP;
        // SAFETY: VIDIOC_REQBUFS takes a struct v4l2_requestbuffers.
        unsafe { ioctl(self.fd, vidioc::VIDIOC_REQBUFS, &mut request)? };
        if request.count < 2 {
            return Err(io::Error::other(format!(
                "the output node granted {} buffers, at least 2 are needed",
                request.count
            )));
        }
        for index in 0..request.count {
            let mut buffer = descriptor(index);
            // SAFETY: VIDIOC_QUERYBUF takes a struct v4l2_buffer.
            unsafe { ioctl(self.fd, vidioc::VIDIOC_QUERYBUF, &mut buffer)? };
            let length = buffer.length as usize;
            // SAFETY: for MMAP buffers the kernel fills the `offset` member of the union.
            let offset = unsafe { buffer.m.offset };
            // SAFETY: the kernel picks the address of this new shared mapping, so it aliases
            // no Rust object. Length and offset are the driver's for this buffer.
            let start = unsafe {
                api::mmap(
                    ptr::null_mut(),
                    length,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    self.fd,
                    libc::off_t::from(offset),
                )?
            };
            self.mappings.push(Mapping {
                start: start.cast(),
                length,
            });
        }
        Ok(())
    }

    /// Fills every buffer with `image`, queues them all and starts streaming.
    pub fn start(&mut self, image: &[u8]) -> io::Result<()> {
        for index in 0..self.mappings.len() as u32 {
            self.fill_and_queue(index, image)?;
        }
        let mut buffer_type = BUF_TYPE_VIDEO_OUTPUT as c_int;
        // SAFETY: VIDIOC_STREAMON takes an int buffer type.
        unsafe { ioctl(self.fd, vidioc::VIDIOC_STREAMON, &mut buffer_type)? };
        self.streaming = true;
        Ok(())
    }

    /// Waits at most `timeout` for the driver to finish sending a buffer, then refills it
    /// with `image` and queues it again.
    pub fn push(&mut self, image: &[u8], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut buffer = descriptor(0);
            // SAFETY: VIDIOC_DQBUF takes a struct v4l2_buffer.
            match unsafe { ioctl(self.fd, vidioc::VIDIOC_DQBUF, &mut buffer) } {
                Ok(()) => return self.fill_and_queue(buffer.index, image),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the output node sent no buffer back",
                ));
            }
            let mut entry = libc::pollfd {
                fd: self.fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            let millis = c_int::try_from(remaining.as_millis()).unwrap_or(c_int::MAX);
            // SAFETY: `entry` is one valid pollfd, and the count passed is 1.
            if unsafe { libc::poll(&mut entry, 1, millis) } < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }

    fn fill_and_queue(&mut self, index: u32, image: &[u8]) -> io::Result<()> {
        let mapping = self
            .mappings
            .get(index as usize)
            .ok_or_else(|| io::Error::other(format!("the driver returned buffer {index}")))?;
        if image.len() > mapping.length || image.len() < self.sizeimage {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "image of {} bytes for a format of {} bytes",
                    image.len(),
                    self.sizeimage
                ),
            ));
        }
        // SAFETY: the buffer is dequeued (never queued yet, or just returned by DQBUF), so
        // the driver does not read it while it is written, and `image` fits the mapping.
        unsafe { ptr::copy_nonoverlapping(image.as_ptr(), mapping.start, image.len()) };
        let mut buffer = descriptor(index);
        buffer.bytesused = image.len() as u32;
        buffer.field = FIELD_NONE;
        // SAFETY: VIDIOC_QBUF takes a struct v4l2_buffer.
        unsafe { ioctl(self.fd, vidioc::VIDIOC_QBUF, &mut buffer) }
    }
}

impl Drop for OutputStream {
    fn drop(&mut self) {
        if self.streaming {
            let mut buffer_type = BUF_TYPE_VIDEO_OUTPUT as c_int;
            // SAFETY: VIDIOC_STREAMOFF takes an int buffer type.
            let _ = unsafe { ioctl(self.fd, vidioc::VIDIOC_STREAMOFF, &mut buffer_type) };
        }
        for mapping in &self.mappings {
            // SAFETY: each mapping comes from a successful mmap and is unmapped once, here.
            let _ = unsafe { api::munmap(mapping.start.cast(), mapping.length) };
        }
        let _ = api::close(self.fd);
    }
}

// SAFETY: the mappings belong to this value alone and are not tied to the thread that
// made them, so the stream may move to the injecting thread.
unsafe impl Send for OutputStream {}

fn descriptor(index: u32) -> v4l2_buffer {
    // SAFETY: v4l2_buffer is plain old data, for which all zero bytes are valid.
    let mut buffer: v4l2_buffer = unsafe { mem::zeroed() };
    buffer.index = index;
    buffer.type_ = BUF_TYPE_VIDEO_OUTPUT;
    buffer.memory = MEMORY_MMAP;
    buffer
}

/// Packs a grey image into YUYV with BT.601 limited-range luma (16..235) and neutral
/// chroma, the way a capture card delivers a grey-scale ultrasound screen.
pub fn grey_to_yuyv(grey: &[u8], width: usize, bytesperline: usize, out: &mut Vec<u8>) {
    let height = grey.len() / width;
    out.clear();
    out.resize(bytesperline * height, 0);
    for (row, line) in grey.chunks_exact(width).enumerate() {
        let target = &mut out[row * bytesperline..row * bytesperline + width * 2];
        for (pixel, value) in target.chunks_exact_mut(2).zip(line) {
            pixel[0] = limited_luma(*value);
            pixel[1] = 128;
        }
    }
}

/// Maps full-range grey 0..255 to limited-range luma 16..235, rounding to nearest.
pub fn limited_luma(value: u8) -> u8 {
    (16 + (u32::from(value) * 219 + 127) / 255) as u8
}
