//! Agreement of other architectures with x86_64 on fixed inputs: the extractor's pooled
//! features, and `analyze` on a phantom exam (peak frame, bolus fit, scores).
//!
//! The fixtures under tests/fixtures/agreement/ hold what x86_64 computed. tract picks
//! other matrix kernels on aarch64 (NEON, with or without the dot-product instructions),
//! so scripts/cross-test-aarch64.sh runs these tests under qemu-user against them. To
//! write the fixtures again, run on x86_64:
//! `CEUS_EDGE_WRITE_AGREEMENT=1 cargo test --test integration agreement::`.

use std::path::{Path, PathBuf};

use ceus_edge::extractor::{Extractor, LoadOptions};
use ceus_edge::npy;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{ceus_edge, repo_root};
use crate::extractor::cosine;

/// Lowest cosine between the pooled int8 features of two architectures. The int8
/// products are summed exactly in i32 on both, but the kernels round the requantisation
/// between layers differently, and a one-step difference early in the network spreads.
/// onnxruntime, a different engine on the same model, reaches 0.995 to tract.
const MIN_FEATURE_COSINE: f64 = 0.999;
/// Largest difference of one pooled feature, as a fraction of the largest feature.
const MAX_FEATURE_DIFFERENCE: f32 = 0.02;
/// Relative tolerance of the bolus-fit parameters and perfusion figures. They come from
/// f64 arithmetic on the same frames, and only the rounding of the system libm and of
/// fused multiply-adds may differ between architectures.
const FIT_RELATIVE_TOLERANCE: f64 = 1e-6;
/// Absolute floor of the fit tolerance, for parameters that converge to about zero (the
/// gamma variate's `k` ends near 1e-14), whose relative error means nothing.
const FIT_ABSOLUTE_TOLERANCE: f64 = 1e-9;
/// Tolerance of the rad-score, which follows the features through the signature's
/// z-scores and LASSO coefficients (an estimate: a few requantisation steps of the
/// selected features).
const RAD_SCORE_TOLERANCE: f64 = 0.02;
/// Tolerance of the probabilities, absolute.
const PROBABILITY_TOLERANCE: f64 = 0.005;

const INPUTS: [&str; 2] = ["ultrasound", "pattern"];

/// Added to failures: on x86_64 a mismatch means the computation changed.
const REWRITE_HINT: &str = "if this is x86_64 and the change is intended, rewrite the \
     fixtures with CEUS_EDGE_WRITE_AGREEMENT=1 cargo test --test integration agreement::";

fn fixture_dir() -> PathBuf {
    repo_root().join("tests/fixtures/agreement")
}

/// Returns whether this run writes the x86_64 fixtures instead of comparing with them.
fn writing_fixtures() -> bool {
    let writing = std::env::var_os("CEUS_EDGE_WRITE_AGREEMENT").is_some_and(|v| v == "1");
    if writing {
        if !cfg!(target_arch = "x86_64") {
            panic!("the agreement fixtures hold x86_64 values; write them on x86_64");
        }
        std::fs::create_dir_all(fixture_dir()).unwrap();
    }
    writing
}

#[test]
fn extractor_features_agree_with_x86_64() {
    let model = repo_root().join("models/densenet201-int8.onnx");
    let extractor = Extractor::load(&model, &LoadOptions::default()).unwrap();
    let writing = writing_fixtures();
    for name in INPUTS {
        let input_path = repo_root().join(format!("tests/fixtures/extractor/input_{name}.npy"));
        let input = npy::read_f32(&input_path).unwrap();
        let features = extractor.run(&input.shape, &input.data).unwrap();
        let fixture = fixture_dir().join(format!("features_{name}_x86_64.npy"));
        if writing {
            let shape = [1, features.pooled.len()];
            npy::write_f32(&fixture, &shape, &features.pooled).unwrap();
            continue;
        }

        let expected = npy::read_f32(&fixture).unwrap();
        assert_eq!(expected.data.len(), features.pooled.len(), "{name}: length");
        let similarity = cosine(&features.pooled, &expected.data);
        assert!(
            similarity >= MIN_FEATURE_COSINE,
            "{name}: cosine {similarity:.6} to x86_64 is below {MIN_FEATURE_COSINE}; \
             {REWRITE_HINT}"
        );
        let largest = expected.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (index, difference) = features
            .pooled
            .iter()
            .zip(&expected.data)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(
            difference <= MAX_FEATURE_DIFFERENCE * largest,
            "{name}: feature {index} differs from x86_64 by {difference} (largest feature {largest})"
        );
        println!("{name}: cosine {similarity:.7}, largest difference {difference:.6}");
    }
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `phantom` and `analyze` with the bundled model and demo signature, and returns
/// the SHA-256 of the exam file and the result document.
fn analyze_phantom(dir: &Path) -> (String, Value) {
    let exam_dir = dir.join("exam");
    let phantom = ceus_edge()
        .args(["phantom", "--out"])
        .arg(&exam_dir)
        .args([
            "--seed", "3", "--frames", "150", "--fps", "5", "--size", "320x240",
        ])
        .output()
        .unwrap();
    assert!(
        phantom.status.success(),
        "phantom failed: {}",
        String::from_utf8_lossy(&phantom.stderr)
    );
    let exam = exam_dir.join("exam.dcm");

    let out = dir.join("out");
    let analyze = ceus_edge()
        .arg("analyze")
        .arg(&exam)
        .args([
            "--set",
            "cea=6.5",
            "--set",
            "t_stage=3",
            "--set",
            "n_stage=1",
        ])
        .arg("--out")
        .arg(&out)
        .env("CEUS_EDGE_MODELS", repo_root().join("models"))
        .output()
        .unwrap();
    assert!(
        analyze.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&analyze.stderr)
    );
    let result = std::fs::read_to_string(out.join("result.json")).unwrap();
    (sha256_hex(&exam), serde_json::from_str(&result).unwrap())
}

/// Selects the parts of a result document that the agreement check compares.
fn compared_parts(result: &Value) -> Value {
    json!({
        "peak": result["peak"],
        "fit": result["fit"],
        "scores": result["scores"],
    })
}

/// Compares `actual` with `expected` at `path`, numbers within the tolerance that
/// `tolerance` gives for the path, everything else exactly. Returns the mismatches.
fn compare(path: &str, actual: &Value, expected: &Value, mismatches: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, value) in e {
                let missing = Value::Null;
                let other = a.get(key).unwrap_or(&missing);
                compare(&format!("{path}.{key}"), other, value, mismatches);
            }
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => {
            for (index, (x, y)) in a.iter().zip(e).enumerate() {
                compare(&format!("{path}[{index}]"), x, y, mismatches);
            }
        }
        (Value::Number(a), Value::Number(e)) if a.is_f64() || e.is_f64() => {
            let (a, e) = (a.as_f64().unwrap(), e.as_f64().unwrap());
            let (absolute, relative) = tolerance(path);
            let allowed = absolute + relative * e.abs();
            if (a - e).abs() > allowed {
                mismatches.push(format!(
                    "{path}: {a} against x86_64 {e} (allowed {allowed:e})"
                ));
            }
        }
        _ if actual != expected => {
            mismatches.push(format!("{path}: {actual} against x86_64 {expected}"));
        }
        _ => {}
    }
}

/// (absolute, relative) tolerance of the number at `path`.
fn tolerance(path: &str) -> (f64, f64) {
    if path.starts_with(".scores.rad_score") {
        (RAD_SCORE_TOLERANCE, 0.0)
    } else if path.starts_with(".scores") {
        (PROBABILITY_TOLERANCE, 0.0)
    } else {
        (FIT_ABSOLUTE_TOLERANCE, FIT_RELATIVE_TOLERANCE)
    }
}

#[test]
fn analyze_agrees_with_x86_64() {
    let dir = tempfile::tempdir().unwrap();
    let (exam_sha256, result) = analyze_phantom(dir.path());
    let actual = json!({
        "exam_sha256": exam_sha256,
        "result": compared_parts(&result),
    });
    let fixture = fixture_dir().join("analyze_x86_64.json");
    if writing_fixtures() {
        let text = serde_json::to_string_pretty(&actual).unwrap();
        std::fs::write(&fixture, text + "\n").unwrap();
        return;
    }

    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    // The phantom promises the same bytes for the same settings on every machine; the
    // bolus-fit tolerance assumes it.
    assert_eq!(
        actual["exam_sha256"], expected["exam_sha256"],
        "the phantom exam differs from the one x86_64 rendered"
    );
    let mut mismatches = Vec::new();
    compare("", &actual["result"], &expected["result"], &mut mismatches);
    assert!(
        mismatches.is_empty(),
        "{} values differ from x86_64:\n{}\n{REWRITE_HINT}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
