//! The phantom cohort and `extract`: determinism, the table's schema, the label's effect,
//! and extraction with resume and per-exam failures.

use std::path::Path;
use std::process::Output;

use ceus_edge::table::Table;

use crate::common::ceus_edge;

/// Writes a cohort of `exams` small exams (200x150, 30 frames at 5 fps) into `dir`.
fn write_cohort(dir: &Path, exams: u32, seed: u64, jobs: u32) -> Output {
    let output = ceus_edge()
        .args(["phantom", "--cohort", &exams.to_string(), "--out"])
        .arg(dir)
        .args(["--seed", &seed.to_string(), "--jobs", &jobs.to_string()])
        .args(["--size", "200x150", "--frames", "30", "--fps", "5"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "phantom --cohort failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn extract(cohort: &Path, out: &Path, mode: &str) -> Output {
    ceus_edge()
        .arg("extract")
        .arg("--cohort")
        .arg(cohort)
        .arg("--out")
        .arg(out)
        .args(["--mode", mode, "--jobs", "2"])
        .output()
        .unwrap()
}

#[test]
fn cohort_is_deterministic_across_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    write_cohort(&one, 4, 9, 1);
    write_cohort(&two, 4, 9, 2);

    for file in [
        "cohort.csv",
        "cohort.json",
        "exams/exam00003/exam.dcm",
        "exams/exam00003/bmode.png",
        "exams/exam00003/doppler.png",
    ] {
        let a = std::fs::read(one.join(file)).unwrap();
        let b = std::fs::read(two.join(file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 2 jobs");
    }
    let other = dir.path().join("other");
    write_cohort(&other, 4, 10, 1);
    let a = std::fs::read(one.join("cohort.csv")).unwrap();
    let b = std::fs::read(other.join("cohort.csv")).unwrap();
    assert!(a != b, "seeds 9 and 10 gave the same table");
}

#[test]
fn cohort_csv_schema_and_rois() {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), 5, 2, 2);
    let table = Table::read(&dir.path().join("cohort.csv")).unwrap();
    let expected = [
        "id",
        "path",
        "bmode_path",
        "doppler_path",
        "roi_x",
        "roi_y",
        "roi_w",
        "roi_h",
        "label",
        "age",
        "cea",
        "t_stage",
        "n_stage",
    ];
    assert_eq!(table.headers, expected);
    assert_eq!(table.rows.len(), 5);

    for row in &table.rows {
        for path in &row[1..4] {
            assert!(dir.path().join(path).is_file(), "missing {path}");
        }
        let roi: Vec<u32> = row[4..8].iter().map(|v| v.parse().unwrap()).collect();
        assert!(roi[2] > 0, "empty ROI {roi:?}");
        assert!(roi[3] > 0, "empty ROI {roi:?}");
        assert!(
            roi[0] + roi[2] <= 200 && roi[1] + roi[3] <= 150,
            "ROI {roi:?} off frame"
        );
        assert!(row[8] == "0" || row[8] == "1", "label {}", row[8]);
        let age: f64 = row[9].parse().unwrap();
        assert!((25.0..=90.0).contains(&age), "age {age}");
        let cea: f64 = row[10].parse().unwrap();
        assert!(cea > 0.0, "cea {cea}");
        let t_stage: u32 = row[11].parse().unwrap();
        assert!((1..=4).contains(&t_stage), "t_stage {t_stage}");
        let n_stage: u32 = row[12].parse().unwrap();
        assert!(n_stage <= 2, "n_stage {n_stage}");
    }
}

#[test]
fn cohort_truth_shows_label_effect() {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), 60, 4, 2);
    let text = std::fs::read_to_string(dir.path().join("cohort.json")).unwrap();
    let truth: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exams = truth["exams"].as_array().unwrap();
    assert_eq!(exams.len(), 60);
    let odds_ratios: Vec<f64> = truth["outcome_model"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["odds_ratio"].as_f64().unwrap())
        .collect();
    assert_eq!(odds_ratios, [1.2, 1.8, 1.5, 2.0]);

    // The lesion's peak gain and vessel count rise with the phenotype, whose class
    // means differ by one standard deviation.
    let mean = |label: u64, field: &dyn Fn(&serde_json::Value) -> f64| {
        let values: Vec<f64> = exams
            .iter()
            .filter(|e| e["label"].as_u64() == Some(label))
            .map(field)
            .collect();
        assert!(!values.is_empty(), "no exam with label {label}");
        values.iter().sum::<f64>() / values.len() as f64
    };
    let gain = |e: &serde_json::Value| e["lesion"]["peak_gain_db"].as_f64().unwrap();
    let vessels = |e: &serde_json::Value| e["vessels"].as_f64().unwrap();
    let arrival = |e: &serde_json::Value| e["lesion"]["arrival_scale"].as_f64().unwrap();
    assert!(mean(1, &gain) > mean(0, &gain));
    assert!(mean(1, &vessels) > mean(0, &vessels));
    assert!(mean(1, &arrival) < mean(0, &arrival));
}

#[test]
fn extract_resumes_and_skips_broken_exam() {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), 6, 5, 2);
    let broken = dir.path().join("exams/exam00004/exam.dcm");
    let bytes = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let cohort = dir.path().join("cohort.csv");
    let out = dir.path().join("features.csv");

    let first = extract(&cohort, &out, "ceus");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "extract failed: {stderr}");
    assert!(
        stderr.contains("exam exam00004: "),
        "no report of the broken exam: {stderr}"
    );
    let table = Table::read(&out).unwrap();
    assert_eq!(table.rows.len(), 5);
    assert_eq!(table.headers.len(), 2 + 4 + 1 + 1920);
    assert_eq!(table.headers[6], "peak_frame");
    assert_eq!(table.headers[7], "f0");
    assert_eq!(table.headers[1926], "f1919");
    assert!(!table.text_column("id").unwrap().contains(&"exam00004"));
    let features = table.numeric_column("f100").unwrap();
    assert!(features.iter().all(|v| v.is_finite() && *v >= 0.0));

    let hash = std::fs::read_to_string(dir.path().join("features.csv.sha256")).unwrap();
    assert_eq!(hash.split_whitespace().next().unwrap().len(), 64);

    let second = extract(&cohort, &out, "ceus");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "rerun failed: {stderr}");
    assert!(
        stderr.contains("5 already in"),
        "rerun did not skip: {stderr}"
    );
    assert_eq!(Table::read(&out).unwrap().rows.len(), 5);
}

#[test]
fn extract_still_modes() {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), 3, 6, 1);
    let cohort = dir.path().join("cohort.csv");
    let bmode = dir.path().join("bmode.csv");
    let doppler = dir.path().join("doppler.csv");
    for (mode, out) in [("bmode", &bmode), ("doppler", &doppler)] {
        let output = extract(&cohort, out, mode);
        assert!(
            output.status.success(),
            "extract --mode {mode} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let bmode = Table::read(&bmode).unwrap();
    let doppler = Table::read(&doppler).unwrap();
    assert_eq!(bmode.rows.len(), 3);
    assert_eq!(doppler.rows.len(), 3);
    // Stills have no TIC, so no peak frame.
    assert!(bmode
        .text_column("peak_frame")
        .unwrap()
        .iter()
        .all(|v| v.is_empty()));
    // The vessels change the features of the same exam.
    assert_ne!(
        bmode.numeric_column("f0").unwrap(),
        doppler.numeric_column("f0").unwrap()
    );
}

#[test]
fn analyze_with_demo_signature() {
    // The bundled demo signature is trained on a phantom cohort with these defaults.
    let dir = tempfile::tempdir().unwrap();
    let output = ceus_edge()
        .args(["phantom", "--cohort", "1", "--seed", "77", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let exam = dir.path().join("exams/exam00001/exam.dcm");

    let output = ceus_edge()
        .arg("analyze")
        .arg(&exam)
        .args(["--set", "age=60", "--set", "cea=5", "--set", "t_stage=2"])
        .args(["--set", "n_stage=1", "--json", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "analyze failed: {stderr}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let scores = &result["scores"];
    let probability = scores["probability"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&probability),
        "probability {probability}"
    );
    assert!(scores["cutoff"].is_f64());
    assert!(scores["risk"] == "low" || scores["risk"] == "high");
    assert!(scores["integrated_available"].is_boolean());
    assert_eq!(result["signature"]["demo"], true);
}
