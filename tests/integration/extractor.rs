//! The feature extractor, preprocessing and `.npy` I/O against references computed by
//! onnxruntime and numpy (scripts/make_extractor_fixtures.py writes them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ceus_edge::extractor::{self, Extractor, ExtractorError, LoadOptions};
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::geometry::Rect;
use ceus_edge::npy::{self, NpyError};
use ceus_edge::preprocess::{self, ResizeMode};
use tract_onnx::prelude::*;

/// Lowest cosine between tract's and onnxruntime's outputs on the same int8 model.
const MIN_COSINE_INT8: f64 = 0.995;

/// Lowest cosine between the two runtimes' unpooled int8 maps. The engines round the
/// requantisation between layers differently, and the per-cell differences only average
/// out in the pooled vector. When the fixtures were made, tract's map was at 0.983 to
/// onnxruntime's, while either int8 map was at about 0.913 to the f32 map.
const MIN_COSINE_INT8_MAP: f64 = 0.98;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn fixture(name: &str) -> PathBuf {
    repo("tests/fixtures/extractor").join(name)
}

fn load_fixture(name: &str) -> npy::Array {
    npy::read_f32(&fixture(name)).unwrap()
}

pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Reads `key` from the fixtures' reference.toml as text.
fn reference(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(fixture("reference.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    table.get(key).map(|v| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Returns the int8 model, loaded once for every test of this binary.
fn int8() -> &'static Extractor {
    static EXTRACTOR: OnceLock<Extractor> = OnceLock::new();
    EXTRACTOR.get_or_init(|| {
        let path = repo("models/densenet201-int8.onnx");
        let extractor = Extractor::load(&path, &LoadOptions::default()).unwrap();
        assert_eq!(
            Some(extractor.sha256().to_string()),
            reference("int8_sha256"),
            "the fixtures were computed on another int8 model: rerun \
             scripts/make_extractor_fixtures.py"
        );
        extractor
    })
}

fn run(extractor: &Extractor, input: &npy::Array) -> extractor::Features {
    extractor.run(&input.shape, &input.data).unwrap()
}

#[test]
fn int8_matches_onnxruntime() {
    for name in ["ultrasound", "pattern"] {
        let input = load_fixture(&format!("input_{name}.npy"));
        let expected = load_fixture(&format!("ort_int8_features_{name}.npy"));
        let features = run(int8(), &input);

        assert_eq!(expected.shape, vec![1, extractor::FEATURES]);
        assert_eq!(features.pooled.len(), extractor::FEATURES);
        let similarity = cosine(&features.pooled, &expected.data);
        assert!(
            similarity >= MIN_COSINE_INT8,
            "{name}: cosine {similarity:.5} to onnxruntime is below {MIN_COSINE_INT8}"
        );
    }
}

#[test]
fn int8_map_matches_onnxruntime() {
    let input = load_fixture("input_ultrasound.npy");
    let expected = load_fixture("ort_int8_map_ultrasound.npy");
    let features = run(int8(), &input);

    assert_eq!(expected.shape, vec![1, 1920, 7, 7]);
    let similarity = cosine(&features.map, &expected.data);
    assert!(
        similarity >= MIN_COSINE_INT8_MAP,
        "map cosine {similarity:.5} to onnxruntime is below {MIN_COSINE_INT8_MAP}"
    );
}

#[test]
fn pooled_features_are_map_means() {
    let features = run(int8(), &load_fixture("input_pattern.npy"));
    for (channel, pooled) in features.pooled.iter().enumerate() {
        let cells = &features.map[channel * 49..(channel + 1) * 49];
        let mean = cells.iter().sum::<f32>() / 49.0;
        assert!(
            (mean - pooled).abs() <= 1e-4 * (1.0 + mean.abs()),
            "channel {channel}: pooled {pooled}, map mean {mean}"
        );
    }
}

#[test]
fn f32_matches_onnxruntime_when_present() {
    let path = repo("models/densenet201-f32.onnx");
    if !path.exists() {
        eprintln!(
            "skipped: {} is absent (build it with scripts/build_extractor.py)",
            path.display()
        );
        return;
    }
    let f32_model = Extractor::load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(
        Some(f32_model.sha256().to_string()),
        reference("f32_sha256")
    );

    for name in ["ultrasound", "pattern"] {
        let input = load_fixture(&format!("input_{name}.npy"));
        let expected = load_fixture(&format!("ort_f32_features_{name}.npy"));
        let f32_features = run(&f32_model, &input);
        let similarity = cosine(&f32_features.pooled, &expected.data);
        assert!(similarity >= 0.9999, "{name}: f32 cosine {similarity:.6}");

        // onnxruntime's int8-vs-f32 cosine was 0.9928 (ultrasound) and 0.9969 (pattern)
        // when the fixtures were made; see int8_vs_f32_cosine_* in reference.toml.
        let int8_features = run(int8(), &input);
        let quantisation = cosine(&int8_features.pooled, &f32_features.pooled);
        eprintln!("tract int8 vs f32 cosine on {name}: {quantisation:.6}");
        assert!(
            quantisation >= 0.99,
            "{name}: int8 vs f32 cosine {quantisation:.5}"
        );
    }
}

#[test]
fn wrong_input_shape_is_rejected() {
    let data = vec![0.0f32; 3 * 224 * 223];
    let error = int8().run(&[1, 3, 224, 223], &data).unwrap_err();
    assert!(matches!(error, ExtractorError::InputShape { .. }));
    let message = error.to_string();
    assert!(message.contains("[1, 3, 224, 223]"), "{message}");
    assert!(message.contains("expected [1, 3, 224, 224]"), "{message}");

    let short = vec![0.0f32; 10];
    let error = int8().run(&extractor::INPUT_SHAPE, &short).unwrap_err();
    assert!(matches!(error, ExtractorError::InputShape { .. }));
}

/// Copies the tiny dequantise model into `dir` with a manifest carrying `sha256`.
fn model_with_manifest(dir: &Path, sha256: &str) -> PathBuf {
    let model = dir.join("tiny.onnx");
    std::fs::copy(fixture("dequantize_per_channel.onnx"), &model).unwrap();
    let manifest = format!("[model]\nsha256 = \"{sha256}\"\nprecision = \"int8\"\n");
    std::fs::write(dir.join("tiny.toml"), manifest).unwrap();
    model
}

#[test]
fn hash_mismatch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let model = model_with_manifest(dir.path(), &wrong);

    let error = Extractor::load(&model, &LoadOptions::default()).unwrap_err();
    let ExtractorError::HashMismatch {
        expected, actual, ..
    } = &error
    else {
        panic!("expected a hash mismatch, got {error}");
    };
    assert_eq!(expected, &wrong);
    let message = error.to_string();
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(actual.as_str()), "{message}");
    assert!(message.contains("build_extractor.py"), "{message}");
}

#[test]
fn matching_hash_passes_to_shape_check() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("dequantize_per_channel.onnx")).unwrap();
    let digest: String =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    let model = model_with_manifest(dir.path(), &digest);

    // The hash matches, so loading goes on and stops at the first non-DenseNet property.
    let error = Extractor::load(&model, &LoadOptions::default()).unwrap_err();
    assert!(
        !matches!(error, ExtractorError::HashMismatch { .. }),
        "{error}"
    );
}

#[test]
fn missing_or_bad_manifest_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_with_manifest(dir.path(), "not-a-hash");
    let error = Extractor::load(&model, &LoadOptions::default()).unwrap_err();
    assert!(matches!(error, ExtractorError::Manifest { .. }), "{error}");

    std::fs::remove_file(dir.path().join("tiny.toml")).unwrap();
    let error = Extractor::load(&model, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(error, ExtractorError::ManifestNotFound { .. }),
        "{error}"
    );

    let absent = dir.path().join("absent.onnx");
    let error = Extractor::load(&absent, &LoadOptions::default()).unwrap_err();
    assert!(matches!(error, ExtractorError::Io { .. }), "{error}");
}

#[test]
fn zero_threads_are_rejected() {
    let options = LoadOptions {
        threads: 0,
        ..LoadOptions::default()
    };
    let error = Extractor::load(&repo("models/densenet201-int8.onnx"), &options).unwrap_err();
    assert!(matches!(error, ExtractorError::Threads(0)));
}

#[test]
fn dequantize_linear_per_channel() {
    let model = tract_onnx::onnx()
        .model_for_path(fixture("dequantize_per_channel.onnx"))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = tract_ndarray::arr2(&[[1i8, 1, 1], [4, 4, 4]]).into_tensor();
    let outputs = model.run(tvec!(x.into())).unwrap();
    let y = outputs[0].to_plain_array_view::<f32>().unwrap();

    let expected = [[0.5f32, 0.0, 20.0], [2.0, 6.0, 50.0]];
    assert_eq!(y.shape(), &[2, 3]);
    for (row, values) in expected.iter().enumerate() {
        for (column, value) in values.iter().enumerate() {
            assert_eq!(y[[row, column]], *value, "y[{row}][{column}]");
        }
    }
}

fn frame_from_fixture(name: &str) -> Frame {
    let image = load_fixture(name);
    let (height, width) = (image.shape[0] as u32, image.shape[1] as u32);
    let format = match image.shape.get(2) {
        Some(3) => PixelFormat::Rgb8,
        None => PixelFormat::Gray8,
        Some(other) => panic!("fixture {name} has {other} channels"),
    };
    let mut frame = Frame::new(width, height, format);
    for (byte, value) in frame.data.iter_mut().zip(&image.data) {
        assert!((0.0..=255.0).contains(value), "{name}: sample {value}");
        assert_eq!(value.fract(), 0.0, "{name}: sample {value}");
        *byte = *value as u8;
    }
    frame
}

fn assert_close(actual: &[f32], expected: &npy::Array, tolerance: f32) {
    assert_eq!(expected.shape, extractor::INPUT_SHAPE.to_vec());
    assert_eq!(actual.len(), expected.data.len());
    for (i, (a, e)) in actual.iter().zip(&expected.data).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "value {i}: got {a}, expected {e}"
        );
    }
}

#[test]
fn preprocess_rgb_squash_matches_numpy() {
    let frame = frame_from_fixture("pre_rgb.npy");
    let roi = Rect::new(5, 3, 40, 30);
    let tensor = preprocess::preprocess(&frame, Some(roi), ResizeMode::Squash).unwrap();
    assert_close(&tensor, &load_fixture("pre_rgb_squash_roi.npy"), 1e-4);
}

#[test]
fn preprocess_grey_crop_matches_numpy() {
    let frame = frame_from_fixture("pre_grey.npy");
    let tensor = preprocess::preprocess(&frame, None, ResizeMode::Crop).unwrap();
    assert_close(&tensor, &load_fixture("pre_grey_crop.npy"), 1e-4);
}

#[test]
fn npy_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for shape in [vec![], vec![5], vec![2, 3, 4]] {
        let count: usize = shape.iter().product();
        let data: Vec<f32> = (0..count).map(|i| i as f32 * 0.5 - 3.25).collect();
        let path = dir.path().join("a.npy");
        npy::write_f32(&path, &shape, &data).unwrap();
        let array = npy::read_f32(&path).unwrap();
        assert_eq!(array.shape, shape);
        assert_eq!(array.data, data);
    }
}

#[test]
fn npy_write_rejects_wrong_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let error = npy::write_f32(&path, &[2, 2], &[1.0; 3]).unwrap_err();
    assert!(matches!(error, NpyError::Malformed { .. }));
    assert!(!path.exists());
}

#[test]
fn npy_reads_numpy_output() {
    // Written by numpy.save in scripts/make_extractor_fixtures.py.
    let array = load_fixture("ort_int8_features_pattern.npy");
    assert_eq!(array.shape, vec![1, 1920]);
    assert!(array.data.iter().all(|v| v.is_finite() && *v >= 0.0));
}

/// A `.npy` file with the given version, header dictionary and data bytes.
fn npy_bytes(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend_from_slice(&[major, 0]);
    if major == 1 {
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn read_bytes(bytes: &[u8]) -> Result<npy::Array, NpyError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    std::fs::write(&path, bytes).unwrap();
    npy::read_f32(&path)
}

#[test]
fn npy_reads_version_2_header() {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
    let data: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let array = read_bytes(&npy_bytes(2, header, &data)).unwrap();
    assert_eq!(array.shape, vec![2]);
    assert_eq!(array.data, vec![1.5, -2.0]);
}

#[test]
fn npy_malformed_files_are_rejected() {
    let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
    let data = [0u8; 8];
    let malformed = [
        ("empty file", Vec::new()),
        ("wrong magic", b"\x93NUMPX\x01\x00\x00\x00".to_vec()),
        ("truncated header", npy_bytes(1, good, &data)[..20].to_vec()),
        ("short data", npy_bytes(1, good, &data[..7])),
        ("trailing data", npy_bytes(1, good, &[0u8; 12])),
        (
            "absurd shape",
            npy_bytes(
                1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4000000000, 4000000000), }",
                &data,
            ),
        ),
        (
            "negative dimension",
            npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", &data),
        ),
        (
            "missing shape",
            npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, }", &data),
        ),
    ];
    for (case, bytes) in malformed {
        let result = read_bytes(&bytes);
        assert!(
            matches!(result, Err(NpyError::Malformed { .. })),
            "{case}: {result:?}"
        );
    }

    let mut oversized = b"\x93NUMPY\x02\x00".to_vec();
    oversized.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        read_bytes(&oversized),
        Err(NpyError::Malformed { .. })
    ));
}

#[test]
fn npy_unsupported_files_are_rejected() {
    let data = [0u8; 8];
    let unsupported = [
        (
            "big endian",
            npy_bytes(
                1,
                "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                &data,
            ),
        ),
        (
            "float64",
            npy_bytes(
                1,
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                &data,
            ),
        ),
        (
            "fortran order",
            npy_bytes(
                1,
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
                &data,
            ),
        ),
        (
            "version 9",
            npy_bytes(
                9,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                &data,
            ),
        ),
    ];
    for (case, bytes) in unsupported {
        let result = read_bytes(&bytes);
        assert!(
            matches!(result, Err(NpyError::Unsupported { .. })),
            "{case}: {result:?}"
        );
    }
}

#[test]
fn inspect_model_prints_checked_hash() {
    let model = repo("models/densenet201-int8.onnx");
    let manifest = extractor::Manifest::read(&extractor::manifest_path(&model)).unwrap();
    let output = ceus_edge()
        .args(["inspect", "--json"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["sha256"], manifest.model.sha256.as_str());
    assert_eq!(report["precision"], "int8");
    assert_eq!(report["demo"], true);

    // Without its manifest the model cannot be checked, so it is not loaded.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.onnx");
    std::fs::copy(&model, &copy).unwrap();
    let output = ceus_edge().arg("inspect").arg(&copy).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no manifest"), "{stderr}");
}

fn ceus_edge() -> Command {
    crate::common::ceus_edge()
}

/// Writes an 8-bit RGB PNG of a `pre_rgb.npy`-style frame.
fn write_png(path: &Path, frame: &Frame) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&frame.data).unwrap();
}

#[test]
fn infer_saves_tensor_of_png() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("frame.png");
    let tensor = dir.path().join("tensor.npy");
    write_png(&image, &frame_from_fixture("pre_rgb.npy"));

    let output = ceus_edge()
        .args(["infer", "--image"])
        .arg(&image)
        .args(["--roi", "5,3,40,30", "--save-tensor"])
        .arg(&tensor)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let saved = npy::read_f32(&tensor).unwrap();
    assert_close(&saved.data, &load_fixture("pre_rgb_squash_roi.npy"), 1e-4);
}

#[test]
fn infer_rejects_wrong_tensor_shape() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("small.npy");
    npy::write_f32(&input, &[1, 3, 32, 32], &vec![0.0; 3 * 32 * 32]).unwrap();

    let output = ceus_edge()
        .args(["infer", "--model"])
        .arg(repo("models/densenet201-int8.onnx"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("y.npy"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[1, 3, 32, 32]"), "{stderr}");
    assert!(stderr.contains("expected [1, 3, 224, 224]"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn infer_writes_features_and_timings() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("y.npy");
    let map = dir.path().join("map.npy");
    let output = ceus_edge()
        .args(["infer", "--model"])
        .arg(repo("models/densenet201-int8.onnx"))
        .arg("--input")
        .arg(fixture("input_ultrasound.npy"))
        .arg("--output")
        .arg(&features)
        .arg("--feature-map")
        .arg(&map)
        .args(["--repeat", "2", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");

    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["runs"], 2);
    assert_eq!(json["threads"], 1);
    assert_eq!(json["demo"], true);
    assert_eq!(json["sha256"].as_str(), reference("int8_sha256").as_deref());
    assert!(json["startup_ms"].as_f64().unwrap() > 0.0);
    let latency = &json["latency_ms"];
    let (min, median, p95) = (
        latency["min"].as_f64().unwrap(),
        latency["median"].as_f64().unwrap(),
        latency["p95"].as_f64().unwrap(),
    );
    assert!(min > 0.0, "{latency}");
    assert!(min <= median, "{latency}");
    assert!(median <= p95, "{latency}");

    let pooled = npy::read_f32(&features).unwrap();
    assert_eq!(pooled.shape, vec![1, 1920]);
    let expected = load_fixture("ort_int8_features_ultrasound.npy");
    assert!(cosine(&pooled.data, &expected.data) >= MIN_COSINE_INT8);
    assert_eq!(npy::read_f32(&map).unwrap().shape, vec![1, 1920, 7, 7]);
}

#[test]
fn npy_truncated_fixture_is_rejected() {
    let bytes = std::fs::read(fixture("ort_int8_features_pattern.npy")).unwrap();
    for length in [0, 5, 9, 40, 127, 128, 129, bytes.len() - 1] {
        let result = read_bytes(&bytes[..length]);
        assert!(
            matches!(result, Err(NpyError::Malformed { .. })),
            "{length} bytes: {result:?}"
        );
    }
}

#[test]
fn infer_reads_16_bit_grey_alpha_png() {
    let dir = tempfile::tempdir().unwrap();
    let grey = frame_from_fixture("pre_grey.npy");
    let image = dir.path().join("grey16.png");
    let file = std::fs::File::create(&image).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), grey.width, grey.height);
    encoder.set_color(png::ColorType::GrayscaleAlpha);
    encoder.set_depth(png::BitDepth::Sixteen);
    let mut writer = encoder.write_header().unwrap();
    // Each 8-bit value v becomes the 16-bit v * 257, whose high byte is v again.
    let samples: Vec<u8> = grey.data.iter().flat_map(|&v| [v, v, 0xff, 0xff]).collect();
    writer.write_image_data(&samples).unwrap();
    writer.finish().unwrap();

    let tensor = dir.path().join("tensor.npy");
    let output = ceus_edge()
        .args(["infer", "--resize", "crop", "--image"])
        .arg(&image)
        .arg("--save-tensor")
        .arg(&tensor)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let saved = npy::read_f32(&tensor).unwrap();
    assert_close(&saved.data, &load_fixture("pre_grey_crop.npy"), 1e-4);
}
