//! Statistics of src/stats compared with reference values from scipy, scikit-learn and
//! statsmodels (fixtures written by scripts/reference/stats_reference.py).

use std::path::Path;

use ceus_edge::stats::calibration::{calibration, decision_curve, hosmer_lemeshow};
use ceus_edge::stats::lasso::{self, LassoOptions};
use ceus_edge::stats::logistic::{fit_logistic, LogisticOptions};
use ceus_edge::stats::mann_whitney::mann_whitney_u;
use ceus_edge::stats::roc::{auc_delong, delong_test, youden};
use ceus_edge::stats::spearman::{redundancy_filter, spearman_matrix};
use ceus_edge::stats::special::{chi2_sf, normal_sf};
use ceus_edge::stats::StatsError;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stats")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn bools(value: &Value) -> Vec<bool> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect()
}

fn columns(value: &Value) -> Vec<Vec<f64>> {
    value.as_array().unwrap().iter().map(floats).collect()
}

#[track_caller]
fn assert_abs(what: &str, actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} differs from {expected} by more than {tolerance}"
    );
}

#[track_caller]
fn assert_rel(what: &str, actual: f64, expected: f64, tolerance: f64) {
    let scale = expected.abs().max(1e-300);
    assert!(
        ((actual - expected) / scale).abs() <= tolerance,
        "{what}: {actual} differs from {expected} by more than {tolerance} relative"
    );
}

#[test]
fn special_functions_match_scipy() {
    let case = fixture("special.json");
    for point in case["chi2_sf"].as_array().unwrap() {
        let x = point["x"].as_f64().unwrap();
        let df = point["df"].as_f64().unwrap();
        let what = format!("chi2 sf({x}, {df})");
        assert_rel(&what, chi2_sf(x, df), point["sf"].as_f64().unwrap(), 1e-12);
    }
    for point in case["normal_sf"].as_array().unwrap() {
        let z = point["z"].as_f64().unwrap();
        assert_rel(
            &format!("normal sf({z})"),
            normal_sf(z),
            point["sf"].as_f64().unwrap(),
            1e-12,
        );
    }
}

#[test]
fn mann_whitney_matches_scipy() {
    for case in fixture("mann_whitney.json").as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let result = mann_whitney_u(&floats(&case["x"]), &floats(&case["y"])).unwrap();
        assert_abs(name, result.u, case["u"].as_f64().unwrap(), 1e-9);
        assert_abs(name, result.p_value, case["p"].as_f64().unwrap(), 1e-9);
    }
}

#[test]
fn spearman_matches_scipy() {
    let case = fixture("spearman.json");
    let data = columns(&case["columns"]);
    let rho = spearman_matrix(&data).unwrap();
    for (a, row) in case["rho"].as_array().unwrap().iter().enumerate() {
        for (b, expected) in floats(row).into_iter().enumerate() {
            assert_abs(&format!("rho[{a}][{b}]"), rho[a][b], expected, 1e-9);
        }
    }
    let kept = redundancy_filter(&data, case["threshold"].as_f64().unwrap()).unwrap();
    let expected: Vec<usize> = case["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(kept, expected);
}

#[test]
fn logistic_matches_statsmodels() {
    let case = fixture("logistic.json");
    let data = columns(&case["columns"]);
    let labels = bools(&case["labels"]);
    let refs: Vec<&[f64]> = data.iter().map(Vec::as_slice).collect();
    let fit = fit_logistic(&refs, &labels, None, true, LogisticOptions::default()).unwrap();
    let names: Vec<String> = (1..=data.len()).map(|j| format!("x{j}")).collect();
    let table = fit.table(&names);
    assert_eq!(table[0].name, "(intercept)");
    for (key, field) in [
        ("coefficients", 0),
        ("std_errors", 1),
        ("z", 2),
        ("p_values", 3),
        ("odds_ratio", 4),
        ("ci_low", 5),
        ("ci_high", 6),
    ] {
        for (j, expected) in floats(&case[key]).into_iter().enumerate() {
            let row = &table[j];
            let actual = [
                row.estimate,
                row.std_error,
                row.z,
                row.p_value,
                row.odds_ratio,
                row.ci_low,
                row.ci_high,
            ][field];
            assert_rel(&format!("{key}[{j}]"), actual, expected, 1e-6);
        }
    }
    assert_rel(
        "log-likelihood",
        fit.log_likelihood,
        case["log_likelihood"].as_f64().unwrap(),
        1e-9,
    );
}

#[test]
fn lasso_path_matches_sklearn() {
    let case = fixture("lasso.json");
    let data = columns(&case["columns"]);
    let labels = bools(&case["labels"]);
    let options = LassoOptions::default();
    let lambdas = lasso::lambda_path(&data, &labels, &options).unwrap();
    let expected_lambdas = floats(&case["lambdas"]);
    assert_eq!(lambdas.len(), expected_lambdas.len());
    for (k, (a, e)) in lambdas.iter().zip(&expected_lambdas).enumerate() {
        assert_rel(&format!("lambda[{k}]"), *a, *e, 1e-12);
    }

    let path = lasso::lasso_path(&data, &labels, &lambdas, &options).unwrap();
    let length = case["path_length"].as_u64().unwrap() as usize;
    assert_eq!(
        path.lambdas.len(),
        length,
        "early stop after a different lambda"
    );
    let checked = case["checked"].as_array().unwrap();
    let intercepts = floats(&case["intercepts"]);
    for (row, k) in checked.iter().enumerate() {
        let k = k.as_u64().unwrap() as usize;
        assert!(path.converged[k], "lambda {k} did not converge");
        assert_abs(
            &format!("intercept at lambda {k}"),
            path.intercepts[k],
            intercepts[row],
            1e-4,
        );
        let expected = floats(&case["coefficients"][row]);
        for (j, e) in expected.iter().enumerate() {
            assert_abs(
                &format!("coefficient {j} at lambda {k}"),
                path.coefficients[k][j],
                *e,
                1e-4,
            );
        }
    }
}

#[test]
fn lasso_cv_matches_sklearn_on_same_folds() {
    let case = fixture("lasso.json");
    let data = columns(&case["columns"]);
    let labels = bools(&case["labels"]);
    let folds: Vec<usize> = case["folds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let options = LassoOptions::default();
    let cv = lasso::cross_validate(&data, &labels, &folds, &options).unwrap();
    for (k, e) in floats(&case["cv_mean"]).iter().enumerate() {
        assert_abs(&format!("cv mean at lambda {k}"), cv.cv_mean[k], *e, 1e-4);
    }
    for (k, e) in floats(&case["cv_std_error"]).iter().enumerate() {
        assert_abs(
            &format!("cv se at lambda {k}"),
            cv.cv_std_error[k],
            *e,
            1e-4,
        );
    }
    assert_eq!(
        cv.cv_mean.len(),
        case["path_length"].as_u64().unwrap() as usize
    );
    assert_eq!(cv.index_min, case["index_min"].as_u64().unwrap() as usize);
    assert_eq!(cv.index_1se, case["index_1se"].as_u64().unwrap() as usize);
}

#[test]
fn lasso_cv_same_on_any_thread_count() {
    let case = fixture("lasso.json");
    let data = columns(&case["columns"]);
    let labels = bools(&case["labels"]);
    let folds: Vec<usize> = case["folds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let fit = |threads| {
        let options = LassoOptions {
            threads,
            ..LassoOptions::default()
        };
        lasso::cross_validate(&data, &labels, &folds, &options).unwrap()
    };
    let serial = fit(1);
    // 3 threads over 5 folds: workers fit unequal numbers of folds.
    assert_eq!(fit(3), serial);
    assert_eq!(fit(8), serial);
}

#[test]
fn lasso_cv_rejects_class_smaller_than_folds() {
    let data = vec![(0..12).map(f64::from).collect::<Vec<_>>()];
    let labels: Vec<bool> = (0..12).map(|i| i % 4 == 0).collect();
    let folds: Vec<usize> = (0..12).map(|i| i % 5).collect();
    let error =
        lasso::cross_validate(&data, &labels, &folds, &LassoOptions::default()).unwrap_err();
    assert!(matches!(error, StatsError::TooFew(_)));
    assert!(error.to_string().contains("use at most 3 folds"), "{error}");
}

#[test]
fn roc_and_delong_match_pairwise_reference() {
    let case = fixture("roc.json");
    let labels = bools(&case["labels"]);
    let scores = [floats(&case["first"]), floats(&case["second"])];
    for (s, score) in scores.iter().enumerate() {
        let estimate = auc_delong(score, &labels).unwrap();
        let (low, high) = estimate.ci95.unwrap();
        assert_abs("auc", estimate.auc, case["auc"][s].as_f64().unwrap(), 1e-9);
        let variance = estimate.variance.unwrap();
        assert_abs(
            "variance",
            variance,
            case["variance"][s].as_f64().unwrap(),
            1e-9,
        );
        assert_abs("ci low", low, case["ci_low"][s].as_f64().unwrap(), 1e-9);
        assert_abs("ci high", high, case["ci_high"][s].as_f64().unwrap(), 1e-9);
    }
    let test = delong_test(&scores[0], &scores[1], &labels).unwrap();
    assert_abs("delong z", test.z, case["delong_z"].as_f64().unwrap(), 1e-9);
    assert_abs(
        "delong p",
        test.p_value,
        case["delong_p"].as_f64().unwrap(),
        1e-9,
    );

    let cut = youden(&scores[0], &labels).unwrap();
    let expected = &case["youden"];
    assert_eq!(cut.threshold, expected["threshold"].as_f64().unwrap());
    assert_abs(
        "sensitivity",
        cut.sensitivity,
        expected["sensitivity"].as_f64().unwrap(),
        1e-12,
    );
    assert_abs(
        "specificity",
        cut.specificity,
        expected["specificity"].as_f64().unwrap(),
        1e-12,
    );
    assert_abs(
        "accuracy",
        cut.accuracy,
        expected["accuracy"].as_f64().unwrap(),
        1e-12,
    );
    assert_abs(
        "ppv",
        cut.ppv.unwrap(),
        expected["ppv"].as_f64().unwrap(),
        1e-12,
    );
    assert_abs(
        "npv",
        cut.npv.unwrap(),
        expected["npv"].as_f64().unwrap(),
        1e-12,
    );
}

#[test]
fn delong_large_sample_stays_finite() {
    // 150,000 observations with heavy ties: pair counts exceed u32 and the CI stays in
    // [0, 1]. The AUC of a score that is the label itself plus ties is known exactly.
    let n = 150_000;
    let labels: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            if labels[i] {
                1.0
            } else {
                f64::from((i % 2) as u32)
            }
        })
        .collect();
    // Half of the negatives score 1 (tied with every positive), half score 0.
    let estimate = auc_delong(&scores, &labels).unwrap();
    assert_abs("auc", estimate.auc, 0.75, 1e-12);
    let (low, high) = estimate.ci95.unwrap();
    assert!(low >= 0.0, "ci low {low}");
    assert!(high <= 1.0, "ci high {high}");
    assert!(estimate.variance.unwrap() > 0.0);

    let perfect: Vec<f64> = labels.iter().map(|&y| f64::from(u8::from(y))).collect();
    let estimate = auc_delong(&perfect, &labels).unwrap();
    assert_eq!(estimate.auc, 1.0);
    assert_eq!(estimate.ci95, Some((1.0, 1.0)));
}

#[test]
fn calibration_matches_statsmodels() {
    let case = fixture("calibration.json");
    let probabilities = floats(&case["probabilities"]);
    let labels = bools(&case["labels"]);
    let result = calibration(&probabilities, &labels).unwrap();
    assert_rel("slope", result.slope, case["slope"].as_f64().unwrap(), 1e-6);
    assert_rel(
        "intercept",
        result.intercept,
        case["intercept"].as_f64().unwrap(),
        1e-6,
    );
    assert_rel("citl", result.citl, case["citl"].as_f64().unwrap(), 1e-6);
}

#[test]
fn hosmer_lemeshow_matches_numpy() {
    let case = fixture("calibration.json");
    let probabilities = floats(&case["probabilities"]);
    let labels = bools(&case["labels"]);
    let expected = &case["hosmer_lemeshow"];
    let result = hosmer_lemeshow(&probabilities, &labels, 10).unwrap();
    assert_eq!(result.df as u64, expected["df"].as_u64().unwrap());
    assert_abs(
        "chi2",
        result.chi2,
        expected["chi2"].as_f64().unwrap(),
        1e-9,
    );
    assert_abs("p", result.p, expected["p"].as_f64().unwrap(), 1e-9);
}

#[test]
fn decision_curve_matches_numpy() {
    let case = fixture("calibration.json");
    let probabilities = floats(&case["probabilities"]);
    let labels = bools(&case["labels"]);
    let curve = decision_curve(&probabilities, &labels).unwrap();
    let expected = case["decision_curve"].as_array().unwrap();
    assert_eq!(curve.len(), expected.len());
    for (point, e) in curve.iter().zip(expected) {
        let t = e["threshold"].as_f64().unwrap();
        assert_abs("threshold", point.threshold, t, 1e-12);
        assert_abs(
            &format!("net benefit at {t}"),
            point.net_benefit,
            e["net_benefit"].as_f64().unwrap(),
            1e-9,
        );
        assert_abs(
            &format!("treat all at {t}"),
            point.treat_all,
            e["treat_all"].as_f64().unwrap(),
            1e-9,
        );
    }
}

#[test]
fn logistic_perfect_separation_is_an_error() {
    let x: Vec<f64> = (0..40).map(f64::from).collect();
    let labels: Vec<bool> = (0..40).map(|i| i >= 20).collect();
    let error = fit_logistic(&[&x], &labels, None, true, LogisticOptions::default()).unwrap_err();
    assert!(matches!(error, StatsError::Separation { .. }), "{error}");
}

#[test]
fn constant_feature_and_label_rejected() {
    let constant = vec![3.0; 20];
    let labels: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
    let error = fit_logistic(
        &[&constant],
        &labels,
        None,
        true,
        LogisticOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(error, StatsError::RankDeficient(_)), "{error}");

    let feature: Vec<f64> = (0..20).map(f64::from).collect();
    let error = lasso::lambda_path(&[feature], &[false; 20], &LassoOptions::default()).unwrap_err();
    assert!(matches!(error, StatsError::TooFew(_)), "{error}");
    let error = auc_delong(&[0.1, 0.2], &[true, true]).unwrap_err();
    assert!(matches!(error, StatsError::TooFew(_)), "{error}");
}

mod signature_file {
    use std::collections::BTreeMap;

    use ceus_edge::signature::{
        ClinicalModel, ClinicalOutcome, ClinicalVariable, IntegratedModel, ModelAucs,
        OutOfRangeValue, Preprocessing, RadScore, RangePolicy, Signature, SignatureError,
        FORMAT_VERSION, MAGIC,
    };

    fn variable(name: &str, min: f64, max: f64, coefficient: f64) -> ClinicalVariable {
        ClinicalVariable {
            name: name.to_string(),
            unit: "units".to_string(),
            min,
            max,
            coefficient,
        }
    }

    pub(super) fn example() -> Signature {
        Signature {
            format_version: FORMAT_VERSION,
            demo: true,
            provenance: "integration test".to_string(),
            extractor_sha256: "ab".repeat(32),
            preprocessing: Preprocessing::default(),
            feature_dimension: 1920,
            rad_score: RadScore {
                feature_indices: vec![3, 1000, 1919],
                means: vec![0.5, 1.0, 2.0],
                std_devs: vec![0.25, 2.0, 4.0],
                coefficients: vec![1.0, -0.5, 0.25],
                intercept: -0.2,
            },
            imaging_cutoff: 0.4,
            integrated_cutoff: Some(0.45),
            clinical_model: Some(ClinicalModel {
                intercept: -1.0,
                variables: vec![
                    variable("age", 18.0, 100.0, 0.02),
                    variable("cea", 0.0, 500.0, 0.1),
                ],
            }),
            integrated_model: Some(IntegratedModel {
                intercept: -0.5,
                rad_score_coefficient: 0.9,
                variables: vec![variable("cea", 0.0, 500.0, 0.05)],
            }),
            training_aucs: ModelAucs {
                imaging_train: 0.9,
                ..ModelAucs::default()
            },
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let signature = example();
        let bytes = signature.to_bytes().unwrap();
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), FORMAT_VERSION);
        assert_eq!(Signature::from_bytes(&bytes).unwrap(), signature);
    }

    #[test]
    fn bad_magic_rejected() {
        let mut bytes = example().to_bytes().unwrap();
        bytes[0] = b'X';
        assert!(matches!(
            Signature::from_bytes(&bytes),
            Err(SignatureError::BadMagic)
        ));
        assert!(matches!(
            Signature::from_bytes(&[]),
            Err(SignatureError::BadMagic)
        ));
    }

    #[test]
    fn unknown_version_rejected() {
        let mut bytes = example().to_bytes().unwrap();
        bytes[8] = 9;
        let error = Signature::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(error, SignatureError::UnsupportedVersion { found: 9, .. }),
            "{error}"
        );
    }

    #[test]
    fn every_truncation_rejected() {
        let bytes = example().to_bytes().unwrap();
        for length in 0..bytes.len() {
            assert!(
                Signature::from_bytes(&bytes[..length]).is_err(),
                "a file cut at {length} bytes was accepted"
            );
        }
    }

    #[test]
    fn trailing_bytes_rejected() {
        let mut bytes = example().to_bytes().unwrap();
        bytes.push(0);
        let error = Signature::from_bytes(&bytes).unwrap_err();
        assert!(matches!(error, SignatureError::Corrupt(_)), "{error}");
    }

    #[test]
    fn flipped_bytes_rejected() {
        let bytes = example().to_bytes().unwrap();
        for position in 10..bytes.len() {
            for flip in [0x01_u8, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[position] ^= flip;
                // The checksum catches a flip inside a float, which would still decode.
                let error = Signature::from_bytes(&corrupt).expect_err(&format!(
                    "a flip of {flip:#04x} at byte {position} was accepted"
                ));
                assert!(matches!(error, SignatureError::Corrupt(_)), "{error}");
            }
        }
    }

    #[test]
    fn inconsistent_lengths_rejected() {
        let mut signature = example();
        signature.rad_score.means.pop();
        let error = signature.to_bytes().unwrap_err();
        assert!(matches!(error, SignatureError::Inconsistent(_)), "{error}");

        let mut signature = example();
        signature.rad_score.feature_indices[0] = 1920;
        let error = signature.to_bytes().unwrap_err();
        assert!(error.to_string().contains("1920"), "{error}");

        let mut signature = example();
        signature.rad_score.std_devs[1] = 0.0;
        assert!(signature.to_bytes().is_err());

        let mut signature = example();
        signature.feature_dimension = u32::MAX;
        let error = signature.to_bytes().unwrap_err();
        assert!(error.to_string().contains("feature dimension"), "{error}");
    }

    #[test]
    fn rad_score_by_hand() {
        let signature = example();
        let mut features = vec![0.0_f32; 1920];
        features[3] = 1.0;
        features[1000] = 5.0;
        features[1919] = 2.0;
        // -0.2 + 1.0 * (1 - 0.5) / 0.25 - 0.5 * (5 - 1) / 2 + 0.25 * 0 = 0.8
        let score = signature.rad_score(&features).unwrap();
        assert!((score - 0.8).abs() < 1e-12, "{score}");
        let probability = Signature::imaging_probability(score);
        assert!((probability - 1.0 / (1.0 + (-0.8_f64).exp())).abs() < 1e-15);

        let error = signature.rad_score(&features[..100]).unwrap_err();
        assert!(matches!(
            error,
            SignatureError::FeatureLength {
                found: 100,
                expected: 1920
            }
        ));
        features[1000] = f32::NAN;
        let error = signature.rad_score(&features).unwrap_err();
        assert!(matches!(
            error,
            SignatureError::NonFiniteFeature { index: 1000, .. }
        ));
    }

    #[test]
    fn missing_clinical_values_listed() {
        let signature = example();
        let values = BTreeMap::new();
        let outcome = signature.clinical_probability(&values).unwrap().unwrap();
        assert_eq!(
            outcome,
            ClinicalOutcome::Unavailable {
                missing: vec!["age".to_string(), "cea".to_string()]
            }
        );
        let outcome = signature
            .integrated_probability(0.3, &values)
            .unwrap()
            .unwrap();
        assert_eq!(
            outcome,
            ClinicalOutcome::Unavailable {
                missing: vec!["cea".to_string()]
            }
        );
    }

    #[test]
    fn clinical_values_scored_and_checked() {
        let signature = example();
        let mut values = BTreeMap::from([("age".to_string(), 60.0), ("cea".to_string(), 5.0)]);
        let Some(ClinicalOutcome::Available { probability }) =
            signature.integrated_probability(0.3, &values).unwrap()
        else {
            panic!("integrated model unavailable");
        };
        let eta: f64 = -0.5 + 0.9 * 0.3 + 0.05 * 5.0;
        assert!((probability - 1.0 / (1.0 + (-eta).exp())).abs() < 1e-15);

        values.insert("age".to_string(), 150.0);
        let error = signature.clinical_probability(&values).unwrap_err();
        assert!(error.to_string().contains("age = 150"), "{error}");
        assert!(error.to_string().contains("[18, 100]"), "{error}");
        values.insert("age".to_string(), f64::NAN);
        assert!(signature.clinical_probability(&values).is_err());
    }

    #[test]
    fn out_of_range_extrapolated_on_request() {
        let signature = example();
        let values = BTreeMap::from([("age".to_string(), 150.0), ("cea".to_string(), 600.0)]);
        assert_eq!(
            signature.out_of_range_values(&values),
            vec![
                OutOfRangeValue {
                    name: "age".to_string(),
                    value: 150.0,
                    min: 18.0,
                    max: 100.0
                },
                OutOfRangeValue {
                    name: "cea".to_string(),
                    value: 600.0,
                    min: 0.0,
                    max: 500.0
                },
            ]
        );
        let error = signature.clinical_probability(&values).unwrap_err();
        assert!(
            matches!(error, SignatureError::OutOfRange { .. }),
            "{error}"
        );
        let error = signature.integrated_probability(0.3, &values).unwrap_err();
        assert!(error.to_string().contains("cea = 600"), "{error}");

        let policy = RangePolicy::Extrapolate;
        let Some(ClinicalOutcome::Available { probability }) = signature
            .clinical_probability_with(&values, policy)
            .unwrap()
        else {
            panic!("clinical model unavailable");
        };
        let eta: f64 = -1.0 + 0.02 * 150.0 + 0.1 * 600.0;
        assert!((probability - 1.0 / (1.0 + (-eta).exp())).abs() < 1e-15);
        let Some(ClinicalOutcome::Available { probability }) = signature
            .integrated_probability_with(0.3, &values, policy)
            .unwrap()
        else {
            panic!("integrated model unavailable");
        };
        let eta: f64 = -0.5 + 0.9 * 0.3 + 0.05 * 600.0;
        assert!((probability - 1.0 / (1.0 + (-eta).exp())).abs() < 1e-15);

        let inside = BTreeMap::from([("age".to_string(), 18.0), ("cea".to_string(), 500.0)]);
        assert!(signature.out_of_range_values(&inside).is_empty());
    }

    #[test]
    fn non_finite_clinical_always_rejected() {
        let signature = example();
        for value in [f64::NAN, f64::INFINITY] {
            let values = BTreeMap::from([("age".to_string(), 60.0), ("cea".to_string(), value)]);
            assert!(signature.out_of_range_values(&values).is_empty());
            for policy in [RangePolicy::Reject, RangePolicy::Extrapolate] {
                let error = signature
                    .clinical_probability_with(&values, policy)
                    .unwrap_err();
                assert!(
                    matches!(error, SignatureError::NonFiniteClinical { .. }),
                    "{error}"
                );
                assert!(error.to_string().contains("cea is not finite"), "{error}");
            }
        }
    }

    #[test]
    fn other_extractor_rejected() {
        let signature = example();
        assert!(signature.check_extractor(&"AB".repeat(32)).is_ok());
        let error = signature.check_extractor(&"cd".repeat(32)).unwrap_err();
        assert!(matches!(error, SignatureError::ExtractorMismatch { .. }));
    }

    #[test]
    fn toml_export_readable() {
        let text = example().to_toml().unwrap();
        assert!(text.contains("feature_dimension = 1920"), "{text}");
        assert!(text.contains("resize = \"squash\""), "{text}");
        assert!(text.contains("[rad_score]"), "{text}");
    }
}

mod commands {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::{assert_abs, assert_rel, fixture, floats};

    fn fixture_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/stats")
            .join(name)
    }

    fn run(args: &[&str]) -> (Value, String) {
        let output = crate::common::ceus_edge().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(
            output.status.success(),
            "ceus-edge {args:?} failed: {stderr}"
        );
        (serde_json::from_slice(&output.stdout).unwrap(), stderr)
    }

    fn run_failing(args: &[&str]) -> String {
        let output = crate::common::ceus_edge().args(args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(1),
            "ceus-edge {args:?} did not fail"
        );
        String::from_utf8_lossy(&output.stderr).to_string()
    }

    #[test]
    fn train_breast_cancer_matches_sklearn() {
        let expected = fixture("breast_cancer_expected.json");
        let directory = tempfile::tempdir().unwrap();
        let signature = directory.path().join("bc.sig");
        let table = fixture_path("breast_cancer.csv");
        let train_report = directory.path().join("train-report");
        let (summary, _) = run(&[
            "train",
            "--table",
            table.to_str().unwrap(),
            "--label",
            "malignant",
            "--split-column",
            "split",
            "--fold-column",
            "fold",
            "--lambda-min-ratio",
            "0.01",
            "--clinical",
            "c_texture,c_smoothness",
            "--out",
            signature.to_str().unwrap(),
            "--report",
            train_report.to_str().unwrap(),
            "--imaging-name",
            "FNA",
            "--json",
        ]);
        let selection = &summary["selection"];
        for key in ["after_mann_whitney", "after_spearman", "lasso_nonzero"] {
            assert_eq!(selection[key], expected[key], "{key}");
        }
        let selected: Vec<&str> = selection["selected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let expected_names: Vec<&str> = expected["selected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(selected, expected_names);
        for key in ["lambda_min", "lambda_1se"] {
            assert_rel(
                key,
                selection[key].as_f64().unwrap(),
                expected[key].as_f64().unwrap(),
                1e-9,
            );
        }
        for (feature, e) in selection["selected"]
            .as_array()
            .unwrap()
            .iter()
            .zip(floats(&expected["lasso_coefficients"]))
        {
            assert_abs(
                "lasso coefficient",
                feature["coefficient"].as_f64().unwrap(),
                e,
                1e-4,
            );
        }

        let auc = &summary["imaging_model"]["auc"];
        assert_abs(
            "imaging auc train",
            auc["train"].as_f64().unwrap(),
            expected["imaging_auc_train"].as_f64().unwrap(),
            1e-9,
        );
        assert_abs(
            "imaging auc test",
            auc["test"].as_f64().unwrap(),
            expected["imaging_auc_test"].as_f64().unwrap(),
            1e-9,
        );

        let clinical = &summary["clinical_model"];
        let rows = clinical["coefficients"].as_array().unwrap();
        let estimates = floats(&expected["clinical_coefficients"]);
        let errors = floats(&expected["clinical_std_errors"]);
        assert_eq!(rows.len(), estimates.len());
        for (k, row) in rows.iter().enumerate() {
            assert_rel(
                "clinical estimate",
                row["estimate"].as_f64().unwrap(),
                estimates[k],
                1e-6,
            );
            assert_rel(
                "clinical std error",
                row["std_error"].as_f64().unwrap(),
                errors[k],
                1e-6,
            );
        }
        assert_eq!(rows[0]["name"], "(intercept)");
        assert_abs(
            "clinical auc test",
            clinical["auc"]["test"].as_f64().unwrap(),
            expected["clinical_auc_test"].as_f64().unwrap(),
            1e-9,
        );

        let integrated = summary["integrated_model"]["coefficients"]
            .as_array()
            .unwrap();
        for (row, e) in integrated
            .iter()
            .zip(floats(&expected["integrated_coefficients"]))
        {
            // The rad-score carries the lasso's 1e-4 agreement into this fit.
            assert_abs(
                "integrated estimate",
                row["estimate"].as_f64().unwrap(),
                e,
                1e-3,
            );
        }

        // The written signature evaluates on the same table.
        let report = directory.path().join("report");
        let (evaluation, _) = run(&[
            "evaluate",
            "--signature",
            signature.to_str().unwrap(),
            "--table",
            table.to_str().unwrap(),
            "--label",
            "malignant",
            "--report",
            report.to_str().unwrap(),
            "--json",
        ]);
        for name in ["roc.svg", "calibration.svg", "decision_curve.svg"] {
            let text = std::fs::read_to_string(report.join(name)).unwrap();
            assert!(text.starts_with("<svg"), "{name}");
            assert!(text.contains("<polyline"), "{name} has no curve");
        }
        let page = std::fs::read_to_string(report.join("evaluate.md")).unwrap();
        assert!(page.contains("- imaging vs clinical: difference"), "{page}");
        assert!(page.contains(", p < 0.001\n"), "{page}");
        let models = evaluation["models"].as_object().unwrap();
        assert!(models.contains_key("imaging"));
        assert!(models.contains_key("clinical"));
        assert!(models.contains_key("integrated"));
        assert_eq!(evaluation["delong_tests"].as_array().unwrap().len(), 3);

        check_train_report(&train_report, &summary);
    }

    /// Checks the charts, the model table and predictions.csv of a train report on the
    /// breast-cancer fixture, then evaluates predictions.csv by split.
    fn check_train_report(report: &Path, summary: &Value) {
        for chart in ["roc", "calibration", "decision_curve"] {
            for split in ["train", "test"] {
                for extension in ["svg", "png"] {
                    let path = report.join(format!("{chart}_{split}.{extension}"));
                    assert!(path.exists(), "{path:?} missing");
                }
            }
        }
        let roc = std::fs::read_to_string(report.join("roc_test.svg")).unwrap();
        assert!(roc.contains("FNA: AUC 0."), "no AUC in the ROC legend");
        assert!(
            roc.contains("clinical + FNA: AUC"),
            "no integrated model in the legend"
        );

        let page = std::fs::read_to_string(report.join("train.md")).unwrap();
        let header = "| model | predictors | AUC train (95% CI) | AUC test (95% CI) |";
        assert!(page.contains(header), "{page}");
        assert!(page.contains("| clinical | c_texture"), "{page}");
        assert!(page.contains("![ROC curves, test rows"), "{page}");
        assert!(page.contains("(roc_test.png)"), "{page}");
        let table_hash = summary["provenance"]["table_sha256"].as_str().unwrap();
        assert!(
            page.contains(&format!("- table SHA-256 `{table_hash}`")),
            "{page}"
        );
        assert!(page.contains("--split-column split"), "{page}");
        let first = &summary["selection"]["selected"][0];
        let feature_row = format!(
            "| {} | {} | {} |",
            first["name"].as_str().unwrap(),
            first["index"],
            first["coefficient"]
        );
        assert!(page.contains(&feature_row), "{feature_row} not in {page}");

        let predictions = report.join("predictions.csv");
        let text = std::fs::read_to_string(&predictions).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("id,split,label,imaging,clinical,integrated")
        );
        let table = std::fs::read_to_string(fixture_path("breast_cancer.csv")).unwrap();
        assert_eq!(lines.count(), table.lines().count() - 1);

        let (evaluation, _) = run(&[
            "evaluate",
            "--scores",
            predictions.to_str().unwrap(),
            "--score",
            "imaging,clinical,integrated",
            "--label",
            "label",
            "--split-column",
            "split",
            "--json",
        ]);
        for (model, key) in [
            ("imaging", "imaging_model"),
            ("clinical", "clinical_model"),
            ("integrated", "integrated_model"),
        ] {
            for split in ["train", "test"] {
                let found = evaluation["groups"][split]["models"][model]["auc"]
                    .as_f64()
                    .unwrap();
                let expected = summary[key]["auc"][split].as_f64().unwrap();
                assert_abs(&format!("{model} auc {split}"), found, expected, 1e-12);
            }
        }
    }

    #[test]
    fn evaluate_scores_matches_reference() {
        let case = fixture("calibration.json");
        let roc = fixture("roc.json");
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("scores.csv");
        let mut text = String::from("y,p\n");
        for (p, y) in floats(&case["probabilities"])
            .iter()
            .zip(case["labels"].as_array().unwrap())
        {
            text.push_str(&format!("{},{:e}\n", u8::from(y.as_bool().unwrap()), p));
        }
        std::fs::write(&path, text).unwrap();
        let (result, _) = run(&[
            "evaluate",
            "--scores",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--score",
            "p",
            "--json",
        ]);
        let model = &result["models"]["p"];
        let hl = &case["hosmer_lemeshow"];
        assert_abs(
            "chi2",
            model["hosmer_lemeshow"]["chi2"].as_f64().unwrap(),
            hl["chi2"].as_f64().unwrap(),
            1e-9,
        );
        assert_eq!(model["hosmer_lemeshow"]["df"], hl["df"]);
        assert_rel(
            "slope",
            model["calibration"]["slope"].as_f64().unwrap(),
            case["slope"].as_f64().unwrap(),
            1e-6,
        );
        assert_rel(
            "citl",
            model["calibration"]["citl"].as_f64().unwrap(),
            case["citl"].as_f64().unwrap(),
            1e-6,
        );
        assert_eq!(model["decision_curve"].as_array().unwrap().len(), 99);
        for key in ["auc", "auc_var_delong", "auc_ci95", "youden"] {
            assert!(!model[key].is_null(), "{key} missing");
        }

        let path = directory.path().join("two.csv");
        let mut text = String::from("y,a,b\n");
        for ((y, a), b) in roc["labels"]
            .as_array()
            .unwrap()
            .iter()
            .zip(floats(&roc["first"]))
            .zip(floats(&roc["second"]))
        {
            text.push_str(&format!("{},{a:?},{b:?}\n", u8::from(y.as_bool().unwrap())));
        }
        std::fs::write(&path, text).unwrap();
        let (result, _) = run(&[
            "evaluate",
            "--scores",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--score",
            "a,b",
            "--json",
        ]);
        let test = &result["delong_tests"][0];
        assert_abs(
            "delong z",
            test["z"].as_f64().unwrap(),
            roc["delong_z"].as_f64().unwrap(),
            1e-9,
        );
        assert_abs(
            "delong p",
            test["p_value"].as_f64().unwrap(),
            roc["delong_p"].as_f64().unwrap(),
            1e-9,
        );
        // Scores outside [0, 1] are not probabilities, so they get no calibration statistics.
        assert!(result["models"]["a"]["calibration"].is_null());
    }

    /// Writes a table of 20 rows for the example signature, alternating labels, with the
    /// clinical values of row `odd_row` replaced by `odd_cea` and `odd_age`.
    fn external_table(path: &Path, odd_row: usize, odd_cea: &str, odd_age: &str) {
        let mut text = String::from("id,label,f3,f1000,f1919,age,cea\n");
        for i in 0..20 {
            let label = i % 2;
            let f3 = 0.5 + 0.1 * (i % 7) as f64 + 0.2 * label as f64;
            let (age, cea) = if i == odd_row {
                (odd_age.to_string(), odd_cea.to_string())
            } else {
                ((40 + i).to_string(), (2 + i % 5).to_string())
            };
            text.push_str(&format!("e{i},{label},{f3},1.5,2.5,{age},{cea}\n"));
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn evaluate_counts_out_of_range_clinical() {
        let directory = tempfile::tempdir().unwrap();
        let signature = directory.path().join("example.sig");
        super::signature_file::example().save(&signature).unwrap();
        let table = directory.path().join("external.csv");
        // Line 6 contains row 4: cea 900 is above the range [0, 500], age 17 below [18, 100].
        external_table(&table, 4, "900", "17");
        let arguments = [
            "evaluate",
            "--signature",
            signature.to_str().unwrap(),
            "--table",
            table.to_str().unwrap(),
            "--label",
            "label",
            "--json",
        ];
        let (result, stderr) = run(&arguments);
        assert!(
            stderr.contains("line 6: clinical variable cea = 900 is outside"),
            "{stderr}"
        );
        assert!(stderr.contains("age = 17"), "{stderr}");
        let warnings = result["out_of_range"].as_array().unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let cea = warnings.iter().find(|w| w["variable"] == "cea").unwrap();
        assert_eq!(cea["rows"], 1);
        assert_eq!(cea["lines"], serde_json::json!([6]));
        assert_eq!(cea["highest"], 900.0);
        assert_eq!(cea["max"], 500.0);
        let models = result["models"].as_object().unwrap();
        assert!(models.contains_key("clinical"), "{result}");
        assert!(models.contains_key("integrated"), "{result}");

        let text = crate::common::ceus_edge()
            .args(&arguments[..arguments.len() - 1])
            .output()
            .unwrap();
        assert!(text.status.success());
        let stdout = String::from_utf8_lossy(&text.stdout);
        assert!(
            stdout.contains(
                "cea is outside the signature's range [0.0, 500.0] on line 6 (values 900.0 \
                 to 900.0): scored by extrapolation"
            ),
            "{stdout}"
        );

        external_table(&table, 4, "nan", "60");
        let stderr = run_failing(&arguments);
        assert!(stderr.contains("line 6"), "{stderr}");
        assert!(stderr.contains("cea is not finite"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }

    #[test]
    fn evaluate_skips_models_with_empty_clinical_cell() {
        let directory = tempfile::tempdir().unwrap();
        let signature = directory.path().join("example.sig");
        super::signature_file::example().save(&signature).unwrap();
        let table = directory.path().join("external.csv");
        // Line 6 contains row 4, whose cea cell is empty.
        external_table(&table, 4, "", "60");
        let arguments = [
            "evaluate",
            "--signature",
            signature.to_str().unwrap(),
            "--table",
            table.to_str().unwrap(),
            "--label",
            "label",
            "--json",
        ];
        let (result, stderr) = run(&arguments);
        let models = result["models"].as_object().unwrap();
        assert!(models.contains_key("imaging"), "{result}");
        assert!(!models.contains_key("clinical"), "{result}");
        assert!(!models.contains_key("integrated"), "{result}");
        let skipped = result["skipped_models"].as_array().unwrap();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(skipped[0]["model"], "clinical");
        assert_eq!(skipped[1]["model"], "integrated");
        let missing = &skipped[0]["missing"][0];
        assert_eq!(missing["variable"], "cea");
        assert_eq!(missing["lines"], serde_json::json!([6]));
        assert_eq!(missing["column_present"], true);
        assert!(
            stderr.contains("clinical model not evaluated: cea is empty or not a number on line 6"),
            "{stderr}"
        );

        let text = crate::common::ceus_edge()
            .args(&arguments[..arguments.len() - 1])
            .output()
            .unwrap();
        assert!(text.status.success());
        let stdout = String::from_utf8_lossy(&text.stdout);
        assert!(
            stdout
                .contains("integrated model not evaluated: cea is empty or not a number on line 6"),
            "{stdout}"
        );

        // Without the column, every row lacks the value: the message names the column.
        let csv = std::fs::read_to_string(&table).unwrap();
        let without_cea: String = csv
            .lines()
            .map(|line| {
                let cells: Vec<&str> = line.split(',').collect();
                format!("{}\n", cells[..cells.len() - 1].join(","))
            })
            .collect();
        std::fs::write(&table, without_cea).unwrap();
        let (result, _) = run(&arguments);
        let skipped = &result["skipped_models"][0];
        assert_eq!(skipped["missing"][0]["column_present"], false);
        let reason = skipped["reason"].as_str().unwrap();
        assert!(reason.contains("the table has no column cea"), "{reason}");
    }

    #[test]
    fn train_says_why_clinical_model_missing() {
        // The label follows f0, and `noise` has nothing to do with it, so it fails the
        // univariate screen and only the rad-score enters the integrated model.
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("cohort.csv");
        let mut text = String::from("y,noise,f0,f1\n");
        for i in 0..60 {
            let y = i % 2;
            let f0 = f64::from(i % 7) + 2.0 * f64::from(y);
            let noise = f64::from((i / 2) % 9);
            text.push_str(&format!("{y},{noise},{f0},{}\n", (i * 37 % 11) as f64));
        }
        std::fs::write(&path, text).unwrap();
        let out = directory.path().join("s.sig");
        let mut arguments = vec![
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--clinical",
            "noise",
            "--test-fraction",
            "0",
            "--folds",
            "5",
            "--seed",
            "4",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        let (summary, stderr) = run(&arguments);
        let clinical = &summary["clinical_model"];
        assert_eq!(clinical["fitted"], false, "{clinical}");
        let reason = clinical["reason"].as_str().unwrap();
        assert!(
            reason.contains("no clinical variable passed the univariate screen p < 0.1"),
            "{reason}"
        );
        assert!(reason.contains("noise p = "), "{reason}");
        let note = summary["integrated_model"]["note"].as_str().unwrap();
        assert!(note.contains("rad-score alone"), "{note}");

        let provenance = &summary["provenance"];
        assert!(provenance["extractor_sha256"].is_null(), "{provenance}");
        assert_eq!(provenance["extractor_sha256_source"], "unknown");
        let table_hash = provenance["table_sha256"].as_str().unwrap();
        assert_eq!(table_hash.len(), 64);
        let options = provenance["fit_options"].as_str().unwrap();
        for part in ["--seed 4", "--folds 5", "--test-fraction 0", "--lambda 1se"] {
            assert!(options.contains(part), "{part} not in {options}");
        }
        assert!(
            stderr.contains("records its feature extractor as unknown"),
            "{stderr}"
        );
        let signature = ceus_edge::signature::Signature::load(&out).unwrap();
        assert!(!signature.extractor_known());
        assert!(signature.clinical_model.is_none());
        assert!(
            signature.provenance.contains(table_hash),
            "{}",
            signature.provenance
        );
        assert!(
            signature.provenance.contains("--seed 4"),
            "{}",
            signature.provenance
        );

        arguments.pop();
        let output = crate::common::ceus_edge()
            .args(&arguments)
            .output()
            .unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("clinical model not fitted: no clinical variable passed"),
            "{stdout}"
        );
        assert!(stdout.contains("feature extractor unknown"), "{stdout}");
    }

    #[test]
    fn train_errors_name_row_and_column() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("bad.csv");
        std::fs::write(&path, "y,f0,f1\n1,0.5,2\n0,abc,3\n").unwrap();
        let out = directory.path().join("s.sig");
        let stderr = run_failing(&[
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(stderr.contains("line 3, column \"f0\""), "{stderr}");

        let stderr = run_failing(&[
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--clinical",
            "f1",
            "--unit",
            "f2=mm",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            stderr.contains("--unit `f2=mm` names \"f2\", which is not one of the --clinical"),
            "{stderr}"
        );

        std::fs::write(&path, "y,f0\n1,1\n1,2\n1,3\n").unwrap();
        let stderr = run_failing(&[
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--test-fraction",
            "0",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(stderr.contains("one class"), "{stderr}");
    }

    #[test]
    fn train_excludes_constant_feature() {
        // 40 rows: f0 separates the classes partly, f1 is constant, f2 is noise.
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("cohort.csv");
        let mut text = String::from("y,f0,f1,f2\n");
        for i in 0..40 {
            let y = i % 2;
            let f0 = f64::from(i % 7) + 3.0 * f64::from(y);
            text.push_str(&format!("{y},{f0},5,{}\n", (i * 37 % 11) as f64));
        }
        std::fs::write(&path, text).unwrap();
        let out = directory.path().join("s.sig");
        let (summary, _) = run(&[
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--test-fraction",
            "0",
            "--folds",
            "5",
            "--lambda",
            "min",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(summary["features"]["constant_excluded"][0], "f1");
        let report = directory.path().join("report");
        let (_, _) = run(&[
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--test-fraction",
            "0",
            "--folds",
            "5",
            "--lambda",
            "min",
            "--out",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--json",
        ]);
        let page = std::fs::read_to_string(report.join("train.md")).unwrap();
        assert!(page.contains("| LASSO non-zero |"), "{page}");
        assert!(summary["imaging_model"]["auc"]["test"].is_null());

        let stderr = run_failing(&[
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--test-fraction",
            "0",
            "--folds",
            "25",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(stderr.contains("use at most 20 folds"), "{stderr}");
    }

    #[test]
    fn train_separation_drops_integrated_model() {
        // f0 alone separates the classes, so the integrated model has no finite estimate:
        // the signature is written with the imaging model only.
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("separated.csv");
        let mut text = String::from("y,f0,f1\n");
        for i in 0..40 {
            let y = i % 2;
            text.push_str(&format!(
                "{y},{},{}\n",
                f64::from(i) + 100.0 * f64::from(y),
                (i * 37 % 11) as f64
            ));
        }
        std::fs::write(&path, text).unwrap();
        let out = directory.path().join("s.sig");
        let (summary, _) = run(&[
            "train",
            "--table",
            path.to_str().unwrap(),
            "--label",
            "y",
            "--test-fraction",
            "0",
            "--folds",
            "5",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ]);
        let integrated = &summary["integrated_model"];
        assert_eq!(integrated["fitted"], false);
        let reason = integrated["reason"].as_str().unwrap();
        assert!(reason.contains("separation"), "{reason}");
        assert!(summary["imaging_model"]["auc"]["train"].is_number());

        let signature = ceus_edge::signature::Signature::load(&out).unwrap();
        assert!(signature.integrated_model.is_none());
        assert!(signature.integrated_cutoff.is_none());
        assert!(signature.training_aucs.integrated_train.is_none());
    }
}
