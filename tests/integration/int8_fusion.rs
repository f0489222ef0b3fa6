//! The fused int8 path (`ceus_edge::quant`) against tract's own QDQ path and onnxruntime's
//! fixtures, and the graph rewrite that builds it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ceus_edge::extractor::{Extractor, Features, LoadOptions};
use ceus_edge::npy;
use ceus_edge::quant;
use tract_onnx::pb::ValueInfoProto;
use tract_onnx::prelude::*;

use crate::extractor::cosine;

/// Lowest pooled cosine between the fused path and tract's unfused path or onnxruntime,
/// as for every int8 path (tests/integration/extractor.rs).
const MIN_COSINE_INT8: f64 = 0.995;
/// Lowest map cosine between two int8 paths (see MIN_COSINE_INT8_MAP in extractor.rs).
const MIN_COSINE_INT8_MAP: f64 = 0.98;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn int8_model() -> PathBuf {
    repo("models/densenet201-int8.onnx")
}

fn load_fixture(name: &str) -> npy::Array {
    npy::read_f32(&repo("tests/fixtures/extractor").join(name)).unwrap()
}

fn load(fuse_int8: bool, threads: usize) -> Extractor {
    let options = LoadOptions {
        fuse_int8,
        threads,
        ..LoadOptions::default()
    };
    Extractor::load(&int8_model(), &options).unwrap()
}

/// Returns the int8 model as tract loads it, without the rewrite, loaded once.
fn plain() -> &'static Extractor {
    static PLAIN: OnceLock<Extractor> = OnceLock::new();
    PLAIN.get_or_init(|| load(false, 1))
}

/// Returns the int8 model with the QDQ convolutions fused, loaded once.
fn fused() -> &'static Extractor {
    static FUSED: OnceLock<Extractor> = OnceLock::new();
    FUSED.get_or_init(|| load(true, 1))
}

fn run(extractor: &Extractor, input: &npy::Array) -> Features {
    extractor.run(&input.shape, &input.data).unwrap()
}

fn bundled_proto() -> tract_onnx::pb::ModelProto {
    quant::onnx().proto_model_for_path(int8_model()).unwrap()
}

fn op_count(proto: &tract_onnx::pb::ModelProto, op: &str) -> usize {
    let graph = proto.graph.as_ref().unwrap();
    graph.node.iter().filter(|n| n.op_type == op).count()
}

#[test]
fn rewrite_fuses_every_bundled_conv() {
    let mut proto = bundled_proto();
    let convs = op_count(&proto, "Conv");
    assert_eq!(convs, 200);

    let report = quant::fuse_qdq_convs(&mut proto).unwrap();
    assert_eq!(report.fused, convs);
    assert_eq!(report.skipped, 0);
    assert_eq!(op_count(&proto, quant::FUSED_OP), convs);
    for op in ["Conv", "QuantizeLinear", "DequantizeLinear"] {
        assert_eq!(op_count(&proto, op), 0, "{op} nodes left after the rewrite");
    }
    // The fused nodes read the dense blocks' pieces directly: only the Concat in front of
    // the final BN stays, as one copy of all 33 pieces of the last block.
    assert_eq!(report.concats_removed, 97);
    assert_eq!(op_count(&proto, "Concat"), 1);
    let graph = proto.graph.as_ref().unwrap();
    let concat = graph.node.iter().find(|n| n.op_type == "Concat").unwrap();
    assert_eq!(concat.input.len(), 33);
}

#[test]
fn rewrite_keeps_chain_with_outside_consumer() {
    let mut proto = bundled_proto();
    let graph = proto.graph.as_mut().unwrap();
    // Expose the stem's requantised output: its Q -> DQ pair must then stay.
    let stem = graph.node.iter().find(|n| n.op_type == "Conv").unwrap();
    let exposed = graph
        .node
        .iter()
        .find(|n| n.op_type == "QuantizeLinear" && n.input[0] == stem.output[0])
        .unwrap()
        .output[0]
        .clone();
    graph.output.push(ValueInfoProto {
        name: exposed.clone(),
        ..ValueInfoProto::default()
    });

    let report = quant::fuse_qdq_convs(&mut proto).unwrap();
    assert_eq!(report.fused, 199);
    assert_eq!(report.skipped, 1);
    let graph = proto.graph.as_ref().unwrap();
    assert!(graph.node.iter().any(|n| n.output.contains(&exposed)));
    assert_eq!(op_count(&proto, "Conv"), 1);
}

#[test]
fn rewrite_leaves_graph_without_qdq_conv() {
    let path = repo("tests/fixtures/extractor/dequantize_per_channel.onnx");
    let mut proto = quant::onnx().proto_model_for_path(path).unwrap();
    let before = proto.graph.as_ref().unwrap().node.clone();
    let report = quant::fuse_qdq_convs(&mut proto).unwrap();
    assert_eq!(report, quant::FusionReport::default());
    assert_eq!(proto.graph.as_ref().unwrap().node, before);
}

#[test]
fn fused_matches_plain_tract() {
    for name in ["ultrasound", "pattern"] {
        let input = load_fixture(&format!("input_{name}.npy"));
        let fused = run(fused(), &input);
        let plain = run(plain(), &input);
        let pooled = cosine(&fused.pooled, &plain.pooled);
        assert!(
            pooled >= MIN_COSINE_INT8,
            "{name}: pooled cosine {pooled:.5} to tract's QDQ path"
        );
        let map = cosine(&fused.map, &plain.map);
        assert!(
            map >= MIN_COSINE_INT8_MAP,
            "{name}: map cosine {map:.5} to tract's QDQ path"
        );
    }
}

#[test]
fn fused_map_matches_onnxruntime() {
    let input = load_fixture("input_ultrasound.npy");
    let expected = load_fixture("ort_int8_map_ultrasound.npy");
    let fused = run(fused(), &input);
    let plain = run(plain(), &input);
    let fused_cosine = cosine(&fused.map, &expected.data);
    let plain_cosine = cosine(&plain.map, &expected.data);
    eprintln!("map cosine to onnxruntime: fused {fused_cosine:.6}, plain {plain_cosine:.6}");
    assert!(
        fused_cosine >= MIN_COSINE_INT8_MAP,
        "fused map cosine {fused_cosine:.5}"
    );
    // The fused path does onnxruntime's integer arithmetic, so it must be at least as close
    // as tract's f32 emulation of it.
    assert!(
        fused_cosine >= plain_cosine,
        "fused map cosine {fused_cosine:.6} is below the unfused {plain_cosine:.6}"
    );
}

/// The fused path does onnxruntime's integer arithmetic, so its quantisation error (the
/// int8-to-f32 cosine) must be onnxruntime's. tract's unfused path is printed beside it:
/// it lands above on one input and below on the other (BENCHMARKS.md).
#[test]
fn fused_quantisation_error_equals_onnxruntime() {
    for name in ["ultrasound", "pattern"] {
        let input = load_fixture(&format!("input_{name}.npy"));
        let f32_features = load_fixture(&format!("ort_f32_features_{name}.npy"));
        let ort_int8 = load_fixture(&format!("ort_int8_features_{name}.npy"));
        let fused = cosine(&run(fused(), &input).pooled, &f32_features.data);
        let plain = cosine(&run(plain(), &input).pooled, &f32_features.data);
        let onnxruntime = cosine(&ort_int8.data, &f32_features.data);
        eprintln!(
            "{name}: int8 vs f32 cosine: fused {fused:.6}, plain tract {plain:.6}, \
             onnxruntime {onnxruntime:.6}"
        );
        assert!(
            (fused - onnxruntime).abs() <= 1e-5,
            "{name}: fused int8 is at cosine {fused:.6} to f32, onnxruntime's int8 at \
             {onnxruntime:.6}"
        );
    }
}

#[test]
fn fused_two_threads_match_one() {
    let input = load_fixture("input_pattern.npy");
    let one_thread = run(fused(), &input);
    let two_threads = run(&load(true, 2), &input);
    assert_eq!(one_thread.pooled, two_threads.pooled);
    assert_eq!(one_thread.map, two_threads.map);
}
