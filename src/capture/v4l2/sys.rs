//! The raw V4L2 calls of the capture device: capabilities, mmap buffers, queueing,
//! streaming, `poll` and the monotonic clock. Every `unsafe` block of the capture layer
//! is in this module.
//!
//! NOTE: streaming does not go through `v4l::io::mmap::Stream` (v4l 0.14), because after a
//! failed dequeue its `next()` queues the same buffer a second time, which the driver
//! rejects, and its `Drop` panics when `VIDIOC_STREAMOFF` fails.

use std::io;
use std::mem;
use std::os::raw::{c_int, c_void};
use std::ptr;
use std::time::Duration;

use v4l::v4l2 as api;
use v4l::v4l2::vidioc;
use v4l::v4l_sys::{
    v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE as BUF_TYPE_VIDEO_CAPTURE, v4l2_buffer,
    v4l2_capability, v4l2_fmtdesc, v4l2_format, v4l2_memory_V4L2_MEMORY_MMAP as MEMORY_MMAP,
    v4l2_requestbuffers, v4l2_streamparm,
};

use crate::capture::device::BufferInfo;
use crate::capture::format::{BufferFormat, FourCc, QUANTIZATION_DEFAULT};

/// `V4L2_CAP_DEVICE_CAPS`: `device_caps` describes the opened node.
const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
/// `V4L2_PIX_FMT_PRIV_MAGIC`: the extended fields of `struct v4l2_pix_format` are valid.
const PIX_FMT_PRIV_MAGIC: u32 = 0xfeed_cafe;

/// Capabilities from `VIDIOC_QUERYCAP`, with the strings decoded leniently.
#[derive(Clone, Debug)]
pub struct Capabilities {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// `V4L2_CAP_*` bits of the opened node (`device_caps` where the driver sets it).
    pub capabilities: u32,
}

/// Runs one ioctl, retrying when a signal interrupts it.
///
/// # Safety
/// `argument` must be a value of the type that `request` expects. With a wrong type the
/// kernel reads and writes out of bounds.
unsafe fn ioctl<T>(fd: c_int, request: vidioc::_IOC_TYPE, argument: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: the caller upholds that `argument` has the type `request` expects, and
        // the exclusive borrow keeps it alive and unaliased during the call.
        let result = unsafe { api::ioctl(fd, request, argument as *mut T as *mut c_void) };
        match result {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Queries the capabilities of the device open on `fd`.
pub fn query_capabilities(fd: c_int) -> io::Result<Capabilities> {
    // SAFETY: v4l2_capability is plain old data, for which all zero bytes are valid.
    let mut raw: v4l2_capability = unsafe { mem::zeroed() };
    // SAFETY: VIDIOC_QUERYCAP takes a struct v4l2_capability.
    unsafe { ioctl(fd, vidioc::VIDIOC_QUERYCAP, &mut raw)? };

    let capabilities = if raw.capabilities & CAP_DEVICE_CAPS != 0 {
        raw.device_caps
    } else {
        raw.capabilities
    };
    Ok(Capabilities {
        driver: c_string(&raw.driver),
        card: c_string(&raw.card),
        bus: c_string(&raw.bus_info),
        capabilities,
    })
}

/// Reads the current capture format with `VIDIOC_G_FMT`.
pub fn get_format(fd: c_int) -> io::Result<BufferFormat> {
    let mut raw = format_descriptor();
    // SAFETY: VIDIOC_G_FMT takes a struct v4l2_format.
    unsafe { ioctl(fd, vidioc::VIDIOC_G_FMT, &mut raw)? };
    // SAFETY: for a single-planar capture type the kernel fills the `pix` member.
    let pix = unsafe { raw.fmt.pix };
    // The fields after `priv` (the quantization among them) are defined only when `priv`
    // holds V4L2_PIX_FMT_PRIV_MAGIC, which the V4L2 core sets since Linux 3.17.
    let quantization = if pix.priv_ == PIX_FMT_PRIV_MAGIC {
        pix.quantization
    } else {
        QUANTIZATION_DEFAULT
    };
    Ok(BufferFormat {
        width: pix.width,
        height: pix.height,
        fourcc: FourCc::from_u32(pix.pixelformat),
        bytesperline: pix.bytesperline,
        sizeimage: pix.sizeimage,
        colorspace: pix.colorspace,
        quantization,
    })
}

/// Requests a size and pixel format with `VIDIOC_S_FMT`, keeping the other fields of the
/// current format. The driver may adjust the request; read the result with [`get_format`].
pub fn set_format(fd: c_int, size: Option<(u32, u32)>, fourcc: Option<FourCc>) -> io::Result<()> {
    let mut raw = format_descriptor();
    // SAFETY: VIDIOC_G_FMT takes a struct v4l2_format.
    unsafe { ioctl(fd, vidioc::VIDIOC_G_FMT, &mut raw)? };
    // Writing a union field is safe; G_FMT filled `pix`, the member of this buffer type.
    if let Some((width, height)) = size {
        raw.fmt.pix.width = width;
        raw.fmt.pix.height = height;
    }
    if let Some(fourcc) = fourcc {
        raw.fmt.pix.pixelformat = fourcc.to_u32();
    }
    // Let the driver compute the stride and image size for the new format.
    raw.fmt.pix.bytesperline = 0;
    raw.fmt.pix.sizeimage = 0;
    // SAFETY: VIDIOC_S_FMT takes a struct v4l2_format.
    unsafe { ioctl(fd, vidioc::VIDIOC_S_FMT, &mut raw) }
}

fn format_descriptor() -> v4l2_format {
    // SAFETY: v4l2_format is plain old data, for which all zero bytes are valid.
    let mut raw: v4l2_format = unsafe { mem::zeroed() };
    raw.type_ = BUF_TYPE_VIDEO_CAPTURE;
    raw
}

/// Reads the time per frame with `VIDIOC_G_PARM` as (numerator, denominator) seconds,
/// or `None` when the driver does not report it.
pub fn get_frame_interval(fd: c_int) -> io::Result<Option<(u32, u32)>> {
    let mut raw = streamparm_descriptor();
    // SAFETY: VIDIOC_G_PARM takes a struct v4l2_streamparm.
    unsafe { ioctl(fd, vidioc::VIDIOC_G_PARM, &mut raw)? };
    // SAFETY: for a capture type the kernel fills the `capture` member.
    let interval = unsafe { raw.parm.capture.timeperframe };
    if interval.numerator == 0 || interval.denominator == 0 {
        return Ok(None);
    }
    Ok(Some((interval.numerator, interval.denominator)))
}

/// Requests a time per frame of `numerator / denominator` seconds with `VIDIOC_S_PARM`.
pub fn set_frame_interval(fd: c_int, numerator: u32, denominator: u32) -> io::Result<()> {
    let mut raw = streamparm_descriptor();
    // SAFETY: VIDIOC_G_PARM takes a struct v4l2_streamparm.
    unsafe { ioctl(fd, vidioc::VIDIOC_G_PARM, &mut raw)? };
    // Writing a union field is safe; G_PARM filled `capture`, the member of this type.
    raw.parm.capture.timeperframe.numerator = numerator;
    raw.parm.capture.timeperframe.denominator = denominator;
    // SAFETY: VIDIOC_S_PARM takes a struct v4l2_streamparm.
    unsafe { ioctl(fd, vidioc::VIDIOC_S_PARM, &mut raw) }
}

fn streamparm_descriptor() -> v4l2_streamparm {
    // SAFETY: v4l2_streamparm is plain old data, for which all zero bytes are valid.
    let mut raw: v4l2_streamparm = unsafe { mem::zeroed() };
    raw.type_ = BUF_TYPE_VIDEO_CAPTURE;
    raw
}

/// Lists the capture pixel formats with `VIDIOC_ENUM_FMT`, as (fourcc, description).
pub fn enum_formats(fd: c_int) -> io::Result<Vec<(FourCc, String)>> {
    let mut formats = Vec::new();
    // Drivers end the list with EINVAL; the cap guards against one that never does.
    for index in 0..256 {
        // SAFETY: v4l2_fmtdesc is plain old data, for which all zero bytes are valid.
        let mut raw: v4l2_fmtdesc = unsafe { mem::zeroed() };
        raw.index = index;
        raw.type_ = BUF_TYPE_VIDEO_CAPTURE;
        // SAFETY: VIDIOC_ENUM_FMT takes a struct v4l2_fmtdesc.
        match unsafe { ioctl(fd, vidioc::VIDIOC_ENUM_FMT, &mut raw) } {
            Ok(()) => formats.push((
                FourCc::from_u32(raw.pixelformat),
                c_string(&raw.description),
            )),
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(formats)
}

/// Decodes a NUL-padded byte array from the kernel, replacing invalid UTF-8.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn buffer_descriptor() -> v4l2_buffer {
    // SAFETY: v4l2_buffer is plain old data, for which all zero bytes are valid.
    let mut buffer: v4l2_buffer = unsafe { mem::zeroed() };
    buffer.type_ = BUF_TYPE_VIDEO_CAPTURE;
    buffer.memory = MEMORY_MMAP;
    buffer
}

/// One memory-mapped driver buffer.
#[derive(Debug)]
struct Mapping {
    start: *mut u8,
    length: usize,
}

/// The driver's capture buffers, mapped into this process, and whether each is
/// dequeued (owned by the program) or queued (owned by the driver).
///
/// Dropping it unmaps the buffers and frees them with `VIDIOC_REQBUFS` count 0.
#[derive(Debug)]
pub struct MappedBuffers {
    fd: c_int,
    mappings: Vec<Mapping>,
    dequeued: Vec<bool>,
}

impl MappedBuffers {
    /// Requests `count` mmap buffers (the driver may grant a different number) and maps
    /// each of them. All start dequeued; queue them before `VIDIOC_STREAMON`.
    pub fn allocate(fd: c_int, count: u32) -> io::Result<MappedBuffers> {
        // SAFETY: v4l2_requestbuffers is plain old data, for which all zero bytes are valid.
        let mut request: v4l2_requestbuffers = unsafe { mem::zeroed() };
        request.count = count;
        request.type_ = BUF_TYPE_VIDEO_CAPTURE;
        request.memory = MEMORY_MMAP;
        // SAFETY: VIDIOC_REQBUFS takes a struct v4l2_requestbuffers.
        unsafe { ioctl(fd, vidioc::VIDIOC_REQBUFS, &mut request)? };
        if request.count == 0 {
            return Err(io::Error::other("the driver granted no mmap buffers"));
        }

        // From here on, dropping `buffers` unmaps what was mapped and frees the buffers.
        let mut buffers = MappedBuffers {
            fd,
            mappings: Vec::new(),
            dequeued: Vec::new(),
        };
        for index in 0..request.count {
            let mapping = map_buffer(fd, index)?;
            buffers.mappings.push(mapping);
            buffers.dequeued.push(true);
        }
        Ok(buffers)
    }

    pub fn count(&self) -> u32 {
        self.mappings.len() as u32
    }

    /// Returns the whole mapping of buffer `index`, or `None` when it does not exist or is
    /// queued, because the driver may be writing into a queued buffer.
    pub fn get(&self, index: u32) -> Option<&[u8]> {
        let index = index as usize;
        if !self.dequeued.get(index).copied().unwrap_or(false) {
            return None;
        }
        let mapping = &self.mappings[index];
        // SAFETY: the mapping of `length` bytes at `start` stays valid until `Drop` unmaps
        // it, which cannot happen while `&self` is borrowed. The buffer is dequeued, so the
        // driver does not write into it, and it cannot be queued again while the returned
        // slice borrows `self`, because `queue` needs `&mut self`.
        Some(unsafe { std::slice::from_raw_parts(mapping.start, mapping.length) })
    }

    /// Queues buffer `index` so the driver can fill it.
    pub fn queue(&mut self, index: u32) -> io::Result<()> {
        match self.dequeued.get(index as usize) {
            Some(true) => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("buffer {index} is not dequeued"),
                ))
            }
        }
        let mut buffer = buffer_descriptor();
        buffer.index = index;
        // SAFETY: VIDIOC_QBUF takes a struct v4l2_buffer.
        unsafe { ioctl(self.fd, vidioc::VIDIOC_QBUF, &mut buffer)? };
        self.dequeued[index as usize] = false;
        Ok(())
    }

    /// Dequeues a filled buffer without waiting (the device is open with `O_NONBLOCK`);
    /// `Ok(None)` when none is ready.
    pub fn dequeue(&mut self) -> io::Result<Option<BufferInfo>> {
        let mut buffer = buffer_descriptor();
        // SAFETY: VIDIOC_DQBUF takes a struct v4l2_buffer.
        match unsafe { ioctl(self.fd, vidioc::VIDIOC_DQBUF, &mut buffer) } {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(error) => return Err(error),
        }
        let dequeued_at = monotonic_now();

        let Some(slot) = self.dequeued.get_mut(buffer.index as usize) else {
            return Err(io::Error::other(format!(
                "the driver returned buffer {} of {}",
                buffer.index,
                self.mappings.len()
            )));
        };
        *slot = true;
        // time_t and suseconds_t are 32-bit on 32-bit targets, so the conversion is not
        // useless everywhere.
        #[allow(clippy::useless_conversion)]
        let timestamp = timeval_duration(
            i64::from(buffer.timestamp.tv_sec),
            i64::from(buffer.timestamp.tv_usec),
        );
        Ok(Some(BufferInfo {
            index: buffer.index,
            bytesused: buffer.bytesused,
            sequence: buffer.sequence,
            timestamp,
            flags: buffer.flags,
            dequeued_at,
        }))
    }
}

// SAFETY: the mappings belong to this value alone and nothing about them is tied to the
// thread that made them, so the value may move to another thread.
unsafe impl Send for MappedBuffers {}

impl Drop for MappedBuffers {
    fn drop(&mut self) {
        for mapping in &self.mappings {
            // SAFETY: `start` and `length` come from a successful mmap and are unmapped
            // once, here. No slice into the mapping outlives `self`.
            if let Err(error) = unsafe { api::munmap(mapping.start.cast(), mapping.length) } {
                log::debug!("munmap of a capture buffer failed: {error}");
            }
        }
        // SAFETY: v4l2_requestbuffers is plain old data, for which all zero bytes are valid.
        let mut request: v4l2_requestbuffers = unsafe { mem::zeroed() };
        request.type_ = BUF_TYPE_VIDEO_CAPTURE;
        request.memory = MEMORY_MMAP;
        // SAFETY: VIDIOC_REQBUFS takes a struct v4l2_requestbuffers.
        if let Err(error) = unsafe { ioctl(self.fd, vidioc::VIDIOC_REQBUFS, &mut request) } {
            // A removed device fails here with ENODEV, and its buffers go with it.
            log::debug!("freeing the capture buffers failed: {error}");
        }
    }
}

/// Looks up buffer `index` with `VIDIOC_QUERYBUF` and maps it.
fn map_buffer(fd: c_int, index: u32) -> io::Result<Mapping> {
    let mut buffer = buffer_descriptor();
    buffer.index = index;
    // SAFETY: VIDIOC_QUERYBUF takes a struct v4l2_buffer.
    unsafe { ioctl(fd, vidioc::VIDIOC_QUERYBUF, &mut buffer)? };

    let length = buffer.length as usize;
    // SAFETY: for MMAP buffers the kernel fills the `offset` member of the union.
    let offset = unsafe { buffer.m.offset };
    // SAFETY: the kernel picks the address of this new shared mapping, so it aliases no
    // Rust object. The length and offset are the ones the driver gave for this buffer.
    let start = unsafe {
        api::mmap(
            ptr::null_mut(),
            length,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            libc::off_t::from(offset),
        )?
    };
    Ok(Mapping {
        start: start.cast(),
        length,
    })
}

/// Starts or stops streaming on `fd`.
pub fn set_streaming(fd: c_int, on: bool) -> io::Result<()> {
    let mut buffer_type: c_int = BUF_TYPE_VIDEO_CAPTURE as c_int;
    let request = if on {
        vidioc::VIDIOC_STREAMON
    } else {
        vidioc::VIDIOC_STREAMOFF
    };
    // SAFETY: VIDIOC_STREAMON and VIDIOC_STREAMOFF take an int buffer type.
    unsafe { ioctl(fd, request, &mut buffer_type) }
}

/// Outcome of one `poll` on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    Readable,
    /// `POLLERR`, `POLLHUP` or `POLLNVAL`: the next dequeue returns the cause.
    Error,
    TimedOut,
    Interrupted,
}

/// Waits at most `timeout` for `fd` to become readable.
pub fn poll_readable(fd: c_int, timeout: Duration) -> io::Result<PollOutcome> {
    let mut entry = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    // SAFETY: `entry` is one valid pollfd, and the count passed is 1.
    let result = unsafe { libc::poll(&mut entry, 1, millis) };
    if result < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(PollOutcome::Interrupted);
        }
        return Err(error);
    }
    if result == 0 {
        return Ok(PollOutcome::TimedOut);
    }
    if entry.revents & libc::POLLIN != 0 {
        return Ok(PollOutcome::Readable);
    }
    Ok(PollOutcome::Error)
}

/// Returns the current time on `CLOCK_MONOTONIC`, the clock of V4L2 monotonic timestamps.
pub fn monotonic_now() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write into. Linux supports CLOCK_MONOTONIC, and
    // if the call failed anyway `now` would stay zero.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn timeval_duration(seconds: i64, micros: i64) -> Duration {
    let seconds = u64::try_from(seconds).unwrap_or(0);
    let micros = u64::try_from(micros).unwrap_or(0).min(999_999);
    Duration::from_secs(seconds) + Duration::from_micros(micros)
}
