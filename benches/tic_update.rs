//! Cost of one `TicTracker::push` on a 1920x1080 dual-view frame, next to a plain copy of
//! the same frame's bytes.
//!
//! The layout has a 900x700 B-mode view and a 900x700 contrast view with a sector-fan
//! mask and a 200x200 ROI. Two frames with different speckle alternate, so the frozen
//! test never skips the motion search. The copy is the floor for anything that touches
//! every byte once; the ratio of the two medians is what BENCHMARKS.md records. Both
//! run on one thread.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};

use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::geometry::Rect;
use ceus_edge::layout::{Layout, LayoutKind, ViewMask};
use ceus_edge::tic::{TicSettings, TicTracker};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const BMODE: Rect = Rect::new(52, 150, 900, 700);
const CONTRAST: Rect = Rect::new(968, 150, 900, 700);
const ROI: Rect = Rect::new(1318, 450, 200, 200);

/// Builds a mask of a fan 70 degrees wide with its apex at the top centre of the view.
fn fan(view: Rect) -> ViewMask {
    let apex = f64::from(view.w) / 2.0;
    let mut inside = Vec::with_capacity(view.area() as usize);
    for y in 0..view.h {
        for x in 0..view.w {
            let (dx, dy) = (f64::from(x) - apex, f64::from(y) + 1.0);
            inside.push(dx.atan2(dy).to_degrees().abs() <= 35.0);
        }
    }
    ViewMask::from_flags(view, inside).expect("mask size matches the view")
}

/// Renders a screen with grey chrome, blocky tissue speckle on the left and noise on the right.
fn screen(format: PixelFormat, seed: u64) -> Frame {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tissue = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut frame = Frame::new(WIDTH, HEIGHT, format);
    let pixel = format.bytes_per_pixel();
    let blocks: Vec<u8> = (0..(WIDTH / 3 + 1) * (HEIGHT / 3 + 1))
        .map(|_| tissue.random_range(30..220))
        .collect();
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let inside = |r: &Rect| {
                x >= r.x && y >= r.y && u64::from(x) < r.right() && u64::from(y) < r.bottom()
            };
            let grey = if inside(&BMODE) {
                let base = blocks[((y / 3) * (WIDTH / 3 + 1) + x / 3) as usize];
                base.saturating_add(rng.random_range(0..4))
            } else if inside(&CONTRAST) {
                rng.random_range(0..200)
            } else {
                90
            };
            let offset = (y * WIDTH + x) as usize * pixel;
            frame.data[offset..offset + pixel].fill(grey);
        }
    }
    frame
}

fn bench_format(c: &mut Criterion, name: &str, format: PixelFormat) {
    let mut layout = Layout::with_views(
        LayoutKind::Manual,
        WIDTH,
        HEIGHT,
        CONTRAST,
        Some(BMODE),
        Vec::new(),
    )
    .expect("views fit the frame");
    layout.set_mask(fan(CONTRAST));
    let frames = [screen(format, 2), screen(format, 3)];
    let mut tracker =
        TicTracker::new(&layout, ROI, TicSettings::default()).expect("ROI inside the view");
    tracker.reserve(1 << 20);

    let mut next = 0;
    c.bench_function(&format!("tic_push_{name}_1080p"), |b| {
        b.iter(|| {
            next ^= 1;
            tracker
                .push(black_box(&frames[next]))
                .expect("frame matches the layout");
        })
    });

    let mut copy = vec![0u8; frames[0].data.len()];
    c.bench_function(&format!("copy_{name}_1080p"), |b| {
        b.iter(|| {
            next ^= 1;
            copy.copy_from_slice(black_box(&frames[next].data));
            black_box(&copy);
        })
    });
}

fn tic_update(c: &mut Criterion) {
    bench_format(c, "gray8", PixelFormat::Gray8);
    bench_format(c, "rgb8", PixelFormat::Rgb8);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = tic_update
}
criterion_main!(benches);
