//! `ceus-edge analyze` end to end: phantom and real cines in, result.json, overlay.png,
//! tic.csv and tic.svg out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::common::{ceus_edge, repo_root};

/// SHA-256 of the bundled int8 extractor, read from its manifest.
fn bundled_model_sha256() -> String {
    let manifest = std::fs::read_to_string(repo_root().join("models/densenet201-int8.toml"))
        .expect("the bundled model's manifest is committed");
    let line = manifest
        .lines()
        .find(|line| line.starts_with("sha256"))
        .expect("the manifest has a sha256 line");
    line.split('"').nth(1).expect("quoted hash").to_string()
}

/// Fits a small signature for the bundled extractor on a synthetic table: features 0-2
/// shift with the label, and `age` is the one clinical variable.
fn train_signature(dir: &Path) -> PathBuf {
    let columns = [0usize, 1, 2, 3, 4, 1919];
    let mut csv = String::from("id,label,age");
    for index in columns {
        write!(csv, ",f{index}").unwrap();
    }
    csv.push('\n');
    let mut state = 12345u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    for row in 0..240 {
        let label = row % 2;
        let age = 55.0 + 20.0 * uniform() + 3.0 * label as f64;
        write!(csv, "e{row},{label},{age:.1}").unwrap();
        for index in columns {
            let shift = if index < 3 { 0.8 * label as f64 } else { 0.0 };
            let noise = uniform() + uniform() + uniform() - 1.5;
            write!(csv, ",{:.5}", shift + noise).unwrap();
        }
        csv.push('\n');
    }
    let table = dir.join("table.csv");
    std::fs::write(&table, csv).unwrap();

    let signature = dir.join("signature.bin");
    let output = ceus_edge()
        .args(["train", "--table"])
        .arg(&table)
        .args([
            "--label",
            "label",
            "--clinical",
            "age",
            "--unit",
            "age=years",
            "--test-fraction",
            "0.3",
        ])
        .args([
            "--seed",
            "1",
            "--folds",
            "5",
            "--demo",
            "--extractor-sha256",
        ])
        .arg(bundled_model_sha256())
        .arg("--out")
        .arg(&signature)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    signature
}

fn write_phantom(dir: &Path, extra: &[&str]) -> PathBuf {
    let output = ceus_edge()
        .args(["phantom", "--out"])
        .arg(dir)
        .args([
            "--seed", "3", "--frames", "150", "--fps", "5", "--size", "320x240",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "phantom failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join("exam.dcm")
}

/// Runs `ceus-edge analyze INPUT --signature SIGNATURE ARGS... --out OUT`.
fn run_analyze(input: &Path, signature: &Path, args: &[&str], out: &Path) -> std::process::Output {
    ceus_edge()
        .arg("analyze")
        .arg(input)
        .arg("--signature")
        .arg(signature)
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn analyze_phantom_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let signature = train_signature(dir.path());
    let exam = write_phantom(&dir.path().join("exam"), &[]);
    let out = dir.path().join("out");

    let output = run_analyze(&exam, &signature, &["--set", "age=66", "--json"], &out);
    assert!(
        output.status.success(),
        "analyze failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let written = read_json(&out.join("result.json"));
    assert_eq!(printed, written);
    let scores = &written["scores"];
    let probability = scores["probability"].as_f64().unwrap();
    let cutoff = scores["cutoff"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&probability));
    assert_eq!(scores["integrated_available"], true);
    let expected_risk = if probability >= cutoff { "high" } else { "low" };
    assert_eq!(scores["risk"], expected_risk);
    assert_eq!(written["features"]["dims"], 1920);
    assert_eq!(written["signature"]["demo"], true);
    assert!(written["peak"]["frame_index"].is_u64());
    assert!(written["fit"]["r2"].is_f64());

    let heatmap: f64 = written["features"]["heatmap"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum::<f64>()
        + written["features"]["heatmap_constant"].as_f64().unwrap();
    let rad_score = scores["rad_score"].as_f64().unwrap();
    assert!(
        (heatmap - rad_score).abs() < 1e-3 * (1.0 + rad_score.abs()),
        "heatmap adds up to {heatmap}, rad-score {rad_score}"
    );

    let overlay = std::fs::read(out.join("overlay.png")).unwrap();
    assert!(overlay.starts_with(b"\x89PNG"));
    let csv = std::fs::read_to_string(out.join("tic.csv")).unwrap();
    assert_eq!(csv.lines().count(), 151);
    let svg = std::fs::read_to_string(out.join("tic.svg")).unwrap();
    assert!(svg.contains("<svg"));
}

#[test]
fn analyze_without_clinical_values_is_imaging_only() {
    let dir = tempfile::tempdir().unwrap();
    let signature = train_signature(dir.path());
    let exam = write_phantom(&dir.path().join("exam"), &["--layout", "single"]);
    let out = dir.path().join("out");

    let output = run_analyze(&exam, &signature, &[], &out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = read_json(&out.join("result.json"));
    let scores = &result["scores"];
    assert_eq!(scores["integrated_available"], false);
    assert_eq!(scores["missing_clinical"], serde_json::json!(["age"]));
    assert_eq!(scores["probability"], scores["imaging_probability"]);
}

#[test]
fn analyze_rejects_out_of_range_clinical_value() {
    let dir = tempfile::tempdir().unwrap();
    let signature = train_signature(dir.path());
    let exam = write_phantom(&dir.path().join("exam"), &[]);

    let output = run_analyze(
        &exam,
        &signature,
        &["--set", "age=400"],
        &dir.path().join("out"),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("age = 400 is outside its valid range"),
        "{stderr}"
    );
    assert!(stderr.contains("] years"), "{stderr}");
    assert!(stderr.contains("from --set or --clinical"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// Writes a 60-row table whose f0 shifts with the label, enough for `train` to fit.
fn write_small_table(dir: &Path) -> PathBuf {
    let table = dir.join("t.csv");
    let mut csv = String::from("label,f0,f1\n");
    for row in 0..60 {
        let label = row % 2;
        writeln!(
            csv,
            "{label},{},{}",
            label as f64 + (row % 7) as f64 * 0.3,
            row % 5
        )
        .unwrap();
    }
    std::fs::write(&table, csv).unwrap();
    table
}

#[test]
fn analyze_rejects_signature_of_another_extractor() {
    let dir = tempfile::tempdir().unwrap();
    let table = write_small_table(dir.path());
    let signature = dir.path().join("other.bin");
    let trained = ceus_edge()
        .args(["train", "--table"])
        .arg(&table)
        .args(["--label", "label", "--test-fraction", "0", "--folds", "3"])
        .args(["--extractor-sha256", &"ab".repeat(32), "--out"])
        .arg(&signature)
        .output()
        .unwrap();
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let exam = write_phantom(&dir.path().join("exam"), &[]);

    let output = run_analyze(&exam, &signature, &[], &dir.path().join("out"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("feature extractor"), "{stderr}");
    assert!(!dir.path().join("out/result.json").exists());
}

/// Writes a 320x240 Y4M cine of `frames` black frames.
fn write_black_y4m(path: &Path, frames: usize) {
    let mut bytes = b"YUV4MPEG2 W320 H240 F5:1 Ip A1:1 C420jpeg\n".to_vec();
    for _ in 0..frames {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend(std::iter::repeat_n(0_u8, 320 * 240));
        bytes.extend(std::iter::repeat_n(128_u8, 320 * 240 / 2));
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn analyze_rejects_black_input() {
    let dir = tempfile::tempdir().unwrap();
    let signature = repo_root().join("models/demo-signature.bin");
    let cases = [
        (1, "no contrast enhancement in the ROI"),
        (40, "every frame is black"),
    ];
    for (frames, expected) in cases {
        let input = dir.path().join(format!("black{frames}.y4m"));
        write_black_y4m(&input, frames);
        let out = dir.path().join(format!("out{frames}"));
        let output = run_analyze(&input, &signature, &[], &out);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{frames} frames: {stderr}");
        assert!(stderr.contains(expected), "{frames} frames: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!out.join("result.json").exists());
    }
}

#[test]
fn analyze_names_unknown_extractor_of_signature() {
    let dir = tempfile::tempdir().unwrap();
    let table = write_small_table(dir.path());
    let signature = dir.path().join("unknown.bin");
    let trained = ceus_edge()
        .args(["train", "--table"])
        .arg(&table)
        .args(["--label", "label", "--test-fraction", "0", "--folds", "3"])
        .arg("--out")
        .arg(&signature)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&trained.stderr);
    assert!(trained.status.success(), "{stderr}");
    assert!(
        stderr.contains("records its feature extractor as unknown"),
        "{stderr}"
    );
    let exam = write_phantom(&dir.path().join("exam"), &[]);

    let output = run_analyze(&exam, &signature, &[], &dir.path().join("out"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not record its feature extractor"),
        "{stderr}"
    );
    assert!(stderr.contains(&bundled_model_sha256()), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn analyze_real_sonosite_cine() {
    let Some(cine) = crate::dicom::real_file("color3d_jpeg_baseline.dcm") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let signature = train_signature(dir.path());
    let out = dir.path().join("out");

    let output = run_analyze(&cine, &signature, &["--set", "age=60"], &out);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = read_json(&out.join("result.json"));
    assert_eq!(result["frames"], 120);
    // The recording repeats some frames exactly; those are skipped, never flagged.
    let repeated = result["repeated_frames"].as_u64().unwrap();
    assert!(repeated < 120, "{repeated}");
    assert!(result["scores"]["probability"].is_f64());
    assert!(out.join("overlay.png").exists());
}
