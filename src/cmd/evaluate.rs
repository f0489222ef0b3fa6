//! `ceus-edge evaluate`: discrimination, calibration and clinical usefulness of scored
//! models on a cohort table.
//!
//! Two inputs: a signature scored on a feature table (imaging, clinical and integrated
//! models where their columns are present), or score columns already in a CSV. Models
//! scored on the same rows are compared pairwise by DeLong's test.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use ceus_edge::signature::{ClinicalOutcome, Signature};
use ceus_edge::stats::calibration::{calibration, decision_curve, hosmer_lemeshow};
use ceus_edge::stats::roc::{auc_delong, delong_test, youden};
use ceus_edge::table::Table;

/// Number of Hosmer-Lemeshow groups.
const HOSMER_LEMESHOW_GROUPS: usize = 10;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["signature", "scores"])))]
pub struct Args {
    /// Signature file to score the table with (feature columns PREFIX<index>).
    #[arg(long, requires = "table")]
    signature: Option<PathBuf>,
    /// Feature table scored with --signature.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Table of precomputed scores, evaluated with --score.
    #[arg(long, conflicts_with_all = ["signature", "table"], requires = "score")]
    scores: Option<PathBuf>,
    /// Score columns of --scores, comma-separated; probabilities in (0, 1) also get
    /// calibration statistics.
    #[arg(long, value_delimiter = ',')]
    score: Vec<String>,
    /// Column with the outcome, 1 (positive) or 0.
    #[arg(long)]
    label: String,
    /// Prefix of the feature columns of --table.
    #[arg(long, default_value = "f")]
    features_prefix: String,
    /// Directory for a Markdown report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print the evaluation as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// One model's scores, one per row.
struct Scored {
    name: String,
    scores: Vec<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (table, models) = if let Some(path) = &args.scores {
        let table = Table::read(path)?;
        let models = score_columns(&table, &args.score)?;
        (table, models)
    } else {
        let (Some(signature), Some(table)) = (&args.signature, &args.table) else {
            bail!("give --signature with --table, or --scores with --score");
        };
        let loaded = Signature::load(signature)?;
        let table = Table::read(table)?;
        let models = score_signature(&loaded, &table, &args.features_prefix)?;
        (table, models)
    };
    let labels = table.label_column(&args.label)?;

    let mut results = BTreeMap::new();
    for model in &models {
        let value = evaluate(&model.scores, &labels)
            .with_context(|| format!("evaluating {}", model.name))?;
        results.insert(model.name.clone(), value);
    }
    let comparisons = compare(&models, &labels);
    let summary = json!({"rows": labels.len(), "models": results, "delong_tests": comparisons});

    if let Some(directory) = &args.report {
        write_report(directory, &summary)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn score_columns(table: &Table, names: &[String]) -> anyhow::Result<Vec<Scored>> {
    if names.is_empty() {
        bail!("--scores needs at least one --score column");
    }
    names
        .iter()
        .map(|name| {
            Ok(Scored {
                name: name.clone(),
                scores: table.numeric_column(name)?,
            })
        })
        .collect()
}

/// Scores each row with the signature: the imaging probability always, the clinical and
/// integrated probabilities when the table has every column they need.
fn score_signature(
    signature: &Signature,
    table: &Table,
    prefix: &str,
) -> anyhow::Result<Vec<Scored>> {
    let dimension = signature.feature_dimension as usize;
    let mut feature_columns = Vec::with_capacity(signature.rad_score.feature_indices.len());
    for &index in &signature.rad_score.feature_indices {
        let name = format!("{prefix}{index}");
        feature_columns.push((index as usize, table.numeric_column(&name)?));
    }
    let clinical_names: Vec<String> = table
        .headers
        .iter()
        .filter(|h| !h.starts_with(prefix))
        .cloned()
        .collect();

    let mut imaging = Vec::with_capacity(table.rows.len());
    let mut clinical = Vec::new();
    let mut integrated = Vec::new();
    let mut features = vec![0.0_f32; dimension];
    for row in 0..table.rows.len() {
        for (index, values) in &feature_columns {
            features[*index] = values[row] as f32;
        }
        let rad_score = signature.rad_score(&features)?;
        imaging.push(Signature::imaging_probability(rad_score));

        let values = clinical_values(table, &clinical_names, row);
        let line = table.lines[row];
        if let Some(outcome) = signature
            .clinical_probability(&values)
            .with_context(|| format!("line {line}"))?
        {
            push_outcome(&mut clinical, outcome);
        }
        if let Some(outcome) = signature
            .integrated_probability(rad_score, &values)
            .with_context(|| format!("line {line}"))?
        {
            push_outcome(&mut integrated, outcome);
        }
    }

    let mut models = vec![Scored {
        name: "imaging".to_string(),
        scores: imaging,
    }];
    for (name, scores) in [("clinical", clinical), ("integrated", integrated)] {
        if scores.is_empty() {
            continue;
        }
        match scores.into_iter().collect::<Option<Vec<f64>>>() {
            Some(scores) => models.push(Scored {
                name: name.to_string(),
                scores,
            }),
            None => log::warn!(
                "{name} model not evaluated: the table lacks some of its clinical columns"
            ),
        }
    }
    Ok(models)
}

fn push_outcome(scores: &mut Vec<Option<f64>>, outcome: ClinicalOutcome) {
    match outcome {
        ClinicalOutcome::Available { probability } => scores.push(Some(probability)),
        ClinicalOutcome::Unavailable { .. } => scores.push(None),
    }
}

/// Numeric values of the non-feature columns of one row; text cells are left out.
fn clinical_values(table: &Table, names: &[String], row: usize) -> BTreeMap<String, f64> {
    names
        .iter()
        .filter_map(|name| {
            let index = table.column_index(name).ok()?;
            let value = table.rows[row][index].trim().parse::<f64>().ok()?;
            Some((name.clone(), value))
        })
        .collect()
}

/// AUC with DeLong variance and CI, Youden cut-off and, for probabilities, Hosmer-Lemeshow,
/// calibration and the decision curve.
fn evaluate(scores: &[f64], labels: &[bool]) -> anyhow::Result<Value> {
    let auc = auc_delong(scores, labels)?;
    let cut = youden(scores, labels)?;
    let mut value = json!({
        "auc": auc.auc,
        "auc_var_delong": auc.variance,
        "auc_ci95": auc.ci95.map(|(low, high)| [low, high]),
        "youden": cut,
    });
    if auc.variance.is_none() {
        value["notes"] = json!(["the delong variance is undefined with one member in a class"]);
    }
    let probabilities = scores.iter().all(|&p| p > 0.0 && p < 1.0);
    if !probabilities {
        value["hosmer_lemeshow"] = Value::Null;
        value["calibration"] = Value::Null;
        value["decision_curve"] = Value::Null;
        return Ok(value);
    }
    value["hosmer_lemeshow"] = match hosmer_lemeshow(scores, labels, HOSMER_LEMESHOW_GROUPS) {
        Ok(result) => json!(result),
        Err(error) => json!({"error": error.to_string()}),
    };
    value["calibration"] = match calibration(scores, labels) {
        Ok(result) => json!(result),
        Err(error) => json!({"error": error.to_string()}),
    };
    value["decision_curve"] = json!(decision_curve(scores, labels)?);
    Ok(value)
}

/// DeLong tests between every pair of models; a pair whose test is undefined gets the
/// reason instead.
fn compare(models: &[Scored], labels: &[bool]) -> Vec<Value> {
    let mut tests = Vec::new();
    for a in 0..models.len() {
        for b in (a + 1)..models.len() {
            let value = match delong_test(&models[a].scores, &models[b].scores, labels) {
                Ok(test) => json!({
                    "first": models[a].name,
                    "second": models[b].name,
                    "auc_difference": test.auc_difference,
                    "z": test.z,
                    "p_value": test.p_value,
                }),
                Err(error) => json!({
                    "first": models[a].name,
                    "second": models[b].name,
                    "error": error.to_string(),
                }),
            };
            tests.push(value);
        }
    }
    tests
}

fn print_summary(summary: &Value) {
    let Some(models) = summary["models"].as_object() else {
        return;
    };
    for (name, result) in models {
        println!(
            "{name}: auc {} (95% ci {}), youden threshold {}, sensitivity {}, specificity {}",
            result["auc"],
            result["auc_ci95"],
            result["youden"]["threshold"],
            result["youden"]["sensitivity"],
            result["youden"]["specificity"]
        );
    }
    for test in summary["delong_tests"].as_array().into_iter().flatten() {
        println!(
            "delong {} vs {}: z {}, p {}",
            test["first"], test["second"], test["z"], test["p_value"]
        );
    }
}

/// Writes a Markdown table of the models and the JSON into `directory`.
fn write_report(directory: &std::path::Path, summary: &Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create report directory {}", directory.display()))?;
    let mut page = String::from(
        "# Model evaluation\n\n| model | AUC | 95% CI | threshold | sensitivity | specificity | HL p | slope |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, r) in summary["models"].as_object().into_iter().flatten() {
        page.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["auc"],
            r["auc_ci95"],
            r["youden"]["threshold"],
            r["youden"]["sensitivity"],
            r["youden"]["specificity"],
            r["hosmer_lemeshow"]["p"],
            r["calibration"]["slope"]
        ));
    }
    let path = directory.join("evaluate.md");
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    let path = directory.join("evaluate.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
