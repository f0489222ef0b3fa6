//! Decoded video frames: what every source yields and every analysis step reads.

/// Sample layout of a [`Frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// One 8-bit grey sample per pixel.
    Gray8,
    /// Three 8-bit samples per pixel in R, G, B order.
    Rgb8,
}

impl PixelFormat {
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Gray8 => 1,
            PixelFormat::Rgb8 => 3,
        }
    }
}

/// One decoded image of a cine or a live stream, with tightly packed rows.
///
/// Sources fill a caller-owned `Frame` so its buffer is reused from frame to frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Position in the stream, counting from 0.
    pub index: u64,
    /// Presentation time in seconds from the first frame of the stream.
    pub time_s: f64,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// `width * height * format.bytes_per_pixel()` bytes, row after row.
    pub data: Vec<u8>,
}

impl Frame {
    /// Creates an empty frame to hand to [`crate::source::FrameSource::read_frame`].
    pub fn empty() -> Frame {
        Frame {
            index: 0,
            time_s: 0.0,
            width: 0,
            height: 0,
            format: PixelFormat::Gray8,
            data: Vec::new(),
        }
    }

    /// Creates a frame of the given size with every sample 0.
    pub fn new(width: u32, height: u32, format: PixelFormat) -> Frame {
        let mut frame = Frame::empty();
        frame.reset(width, height, format);
        frame
    }

    /// Resizes the frame for new contents, keeping the buffer's capacity.
    pub fn reset(&mut self, width: u32, height: u32, format: PixelFormat) {
        self.width = width;
        self.height = height;
        self.format = format;
        let len = width as usize * height as usize * format.bytes_per_pixel();
        self.data.clear();
        self.data.resize(len, 0);
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.width as usize * self.format.bytes_per_pixel()
    }

    /// Luma of the pixel at (`x`, `y`), using ITU-R BT.601 weights for colour frames.
    ///
    /// The caller keeps `x < width` and `y < height`.
    #[inline]
    pub fn luma_at(&self, x: u32, y: u32) -> u8 {
        let offset = y as usize * self.stride() + x as usize * self.format.bytes_per_pixel();
        match self.format {
            PixelFormat::Gray8 => self.data[offset],
            PixelFormat::Rgb8 => {
                let rgb = &self.data[offset..offset + 3];
                rgb_to_luma(rgb[0], rgb[1], rgb[2])
            }
        }
    }

    /// Row `y` of the frame as packed samples.
    #[inline]
    pub fn row(&self, y: u32) -> &[u8] {
        let stride = self.stride();
        let start = y as usize * stride;
        &self.data[start..start + stride]
    }
}

/// BT.601 luma in integer arithmetic: (77 R + 150 G + 29 B) / 256, rounded.
#[inline]
pub fn rgb_to_luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) >> 8) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_of_grey_and_colour() {
        assert_eq!(rgb_to_luma(0, 0, 0), 0);
        assert_eq!(rgb_to_luma(255, 255, 255), 255);
        assert_eq!(rgb_to_luma(200, 200, 200), 200);
        assert_eq!(rgb_to_luma(255, 0, 0), 77);
    }

    #[test]
    fn reset_keeps_capacity() {
        let mut frame = Frame::new(64, 32, PixelFormat::Rgb8);
        let capacity = frame.data.capacity();
        frame.reset(32, 32, PixelFormat::Gray8);
        assert_eq!(frame.data.len(), 32 * 32);
        assert_eq!(frame.data.capacity(), capacity);
    }
}
