//! One DenseNet-201 feature extraction (`Extractor::run` on a 1x3x224x224 tensor) on one
//! thread, for each way tract can run the bundled model:
//!
//! - `int8 fused`: the QDQ convolutions rewritten into int8 kernels (the default);
//! - `int8 plain`: the same file as tract loads it, convolutions in f32 between quantise
//!   and dequantise passes;
//! - `f32`: the f32 model, when `CEUS_F32_MODEL` names it (it is not committed; its
//!   manifest must sit beside it), else models/densenet201-f32.onnx when present.
//!
//! Read the figures as latency per image; their ratios are what BENCHMARKS.md records.
//! scripts/bench-vs-ort puts the same runs next to onnxruntime's.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};

use ceus_edge::extractor::{Extractor, LoadOptions, INPUT_SHAPE};
use ceus_edge::npy;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn f32_model() -> Option<PathBuf> {
    let path = std::env::var_os("CEUS_F32_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("models/densenet201-f32.onnx"));
    path.exists().then_some(path)
}

fn bench_extractor(c: &mut Criterion) {
    let input = npy::read_f32(&repo("tests/fixtures/extractor/input_ultrasound.npy")).unwrap();
    assert_eq!(input.shape, INPUT_SHAPE);
    let int8 = repo("models/densenet201-int8.onnx");
    let mut models = vec![
        ("int8 fused", int8.clone(), true),
        ("int8 plain", int8, false),
    ];
    match f32_model() {
        Some(path) => models.push(("f32", path, false)),
        None => eprintln!("f32 model absent: set CEUS_F32_MODEL to time it"),
    }

    let mut group = c.benchmark_group("extractor 1 thread");
    group.sample_size(10);
    for (name, path, fuse_int8) in models {
        let options = LoadOptions {
            fuse_int8,
            ..LoadOptions::default()
        };
        let extractor = Extractor::load(&path, &options).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| extractor.run(&input.shape, &input.data).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_extractor);
criterion_main!(benches);
