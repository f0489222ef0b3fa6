//! The analysis thread's work on one live frame: `ExamSession::process_frame` (curve
//! sample, flags, motion, peak detection, overlay drawing) on phantom frames at 720p and
//! 1080p, once with the inference worker idle and once with DenseNet-201 running
//! back to back on another thread, as it does after a peak.
//!
//! Read the figures as time per frame; 33 ms is the budget at 30 fps. The frames come
//! from before the bolus arrives, so the candidate store's copies are not included.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

use ceus_edge::extractor::{Extractor, LoadOptions};
use ceus_edge::frame::Frame;
use ceus_edge::live::events::EventLog;
use ceus_edge::live::session::{
    ExamSession, Inference, InferenceJob, InferenceOutcome, SessionConfig,
};
use ceus_edge::phantom::source::PhantomSource;
use ceus_edge::phantom::{Phantom, PhantomConfig};
use ceus_edge::preprocess::SIZE;
use ceus_edge::source::FrameSource;

/// Takes no job and has no outcome: the worker's part is measured separately.
struct Idle;

impl Inference for Idle {
    fn submit(&mut self, job: Box<InferenceJob>) -> Result<(), Box<InferenceJob>> {
        Err(job)
    }

    fn poll(&mut self) -> Option<InferenceOutcome> {
        None
    }
}

fn phantom_frames(width: u32, height: u32, count: u32) -> Vec<Frame> {
    let config = PhantomConfig {
        seed: 4,
        frames: count,
        fps: 30.0,
        width,
        height,
        ..PhantomConfig::default()
    };
    let mut source = PhantomSource::new(Phantom::new(config).unwrap());
    let mut frames = Vec::new();
    let mut frame = Frame::empty();
    while source.read_frame(&mut frame).unwrap() {
        frames.push(frame.clone());
    }
    frames
}

/// Runs DenseNet-201 on one thread until `stop` is set.
fn busy_extractor(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/densenet201-int8.onnx");
    let extractor = Extractor::load(&model, &LoadOptions::default()).unwrap();
    std::thread::spawn(move || {
        let input = vec![0.5f32; 3 * SIZE * SIZE];
        let mut runs = 0;
        while !stop.load(Ordering::Relaxed) {
            extractor.run(&[1, 3, SIZE, SIZE], &input).unwrap();
            runs += 1;
        }
        runs
    })
}

fn bench_session(c: &mut Criterion) {
    let mut group = c.benchmark_group("live frame");
    group.sample_size(30);
    for (name, width, height) in [("720p", 1280, 720), ("1080p", 1920, 1080)] {
        let frames = phantom_frames(width, height, 60);
        for inference in ["idle", "inference running"] {
            let stop = Arc::new(AtomicBool::new(false));
            let busy = (inference != "idle").then(|| busy_extractor(stop.clone()));
            let config = SessionConfig {
                frame_rate: Some(30.0),
                max_exam_s: 3600.0,
                ..SessionConfig::default()
            };
            let mut session = ExamSession::new(config, BTreeMap::new());
            let mut overlay = Frame::empty();
            let mut events = EventLog::default();
            let mut frame = frames[0].clone();
            let mut index = 0u64;
            group.bench_function(format!("{name} {inference}"), |b| {
                b.iter(|| {
                    let source = &frames[(index % frames.len() as u64) as usize];
                    frame.data.copy_from_slice(&source.data);
                    frame.index = index;
                    frame.time_s = index as f64 / 30.0;
                    index += 1;
                    session.process_frame(&frame, &mut overlay, &mut Idle, &mut events)
                })
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(thread) = busy {
                let runs = thread.join().unwrap();
                println!("{name}: {runs} DenseNet-201 runs alongside");
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_session);
criterion_main!(benches);
