//! Rendering speed of the phantom, without file output.
//!
//! `render_320x240_150_frames` draws a whole 320x240 exam of 150 frames (scene, speckle,
//! every frame), the size the integration tests use over many seeds. `render_800x600_frame`
//! is the cost of one default-size frame once the scene exists. Read the times as per
//! iteration: the first is per exam, the second per frame.

use criterion::{criterion_group, criterion_main, Criterion};

use ceus_edge::phantom::{Phantom, PhantomConfig};

fn render_small_exam(c: &mut Criterion) {
    let config = PhantomConfig {
        frames: 150,
        width: 320,
        height: 240,
        ..PhantomConfig::default()
    };
    c.bench_function("render_320x240_150_frames", |b| {
        b.iter(|| {
            let mut renderer = Phantom::new(config.clone()).unwrap().into_renderer();
            let mut bytes = 0;
            while let Some(frame) = renderer.next_frame() {
                bytes += frame.data.len();
            }
            bytes
        })
    });
}

fn render_default_frame(c: &mut Criterion) {
    let config = PhantomConfig::default();
    let new_renderer = || Phantom::new(config.clone()).unwrap().into_renderer();
    let mut renderer = new_renderer();
    c.bench_function("render_800x600_frame", |b| {
        b.iter(|| {
            // Starting over after the last frame adds one scene draw per 600 frames.
            if renderer.next_frame().is_none() {
                renderer = new_renderer();
            }
        })
    });
}

criterion_group!(benches, render_small_exam, render_default_frame);
criterion_main!(benches);
