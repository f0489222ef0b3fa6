//! Decoding one 1920x1080 capture buffer, as a capture card on the scanner's HDMI output
//! delivers it, into the frame the pipeline reads.
//!
//! Each figure is the time for one whole frame, buffer reused. At 60 frames per second
//! the budget for everything done per frame is 16.7 ms, so these times show what share of
//! it decoding takes on the machine that runs the bench.

use std::hint::black_box;

use ceus_edge::capture::decode::{decode_raw, DecodeOptions};
use ceus_edge::capture::format::{BufferFormat, FourCc, PlaneLayout, QUANTIZATION_DEFAULT};
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::source::Limits;
use criterion::{criterion_group, criterion_main, Criterion};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

fn layout(fourcc: &str, bytesperline: u32, rows: u32) -> PlaneLayout {
    let format = BufferFormat {
        width: WIDTH,
        height: HEIGHT,
        fourcc: FourCc::parse(fourcc).expect("valid fourcc"),
        bytesperline,
        sizeimage: bytesperline * rows,
        colorspace: 0,
        quantization: QUANTIZATION_DEFAULT,
    };
    PlaneLayout::resolve(&format, &Limits::default()).expect("valid format")
}

/// Makes a payload of varied bytes, so that no branch is always taken.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 1920) as u8).collect()
}

fn bench_decoders(c: &mut Criterion) {
    let cases = [
        ("yuyv", layout("YUYV", WIDTH * 2, HEIGHT)),
        ("nv12", layout("NV12", WIDTH, HEIGHT * 3 / 2)),
        ("rgb24", layout("RGB3", WIDTH * 3, HEIGHT)),
    ];
    for (name, layout) in cases {
        let bytes = payload(layout.min_payload());
        for output in [PixelFormat::Gray8, PixelFormat::Rgb8] {
            let options = DecodeOptions { output };
            let mut frame = Frame::empty();
            let id = format!("decode_1080p/{name}_to_{output:?}");
            c.bench_function(&id, |b| {
                b.iter(|| decode_raw(&layout, black_box(&bytes), options, &mut frame))
            });
        }
    }
}

criterion_group!(benches, bench_decoders);
criterion_main!(benches);
