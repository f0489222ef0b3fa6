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

use ceus_edge::signature::{ClinicalOutcome, OutOfRangeValue, RangePolicy, Signature};
use ceus_edge::stats::calibration::{calibration, decision_curve, hosmer_lemeshow};
use ceus_edge::stats::roc::{auc_delong, delong_test, youden};
use ceus_edge::table::Table;

use super::report::{self, Group, ModelScores};

/// Number of Hosmer-Lemeshow groups.
const HOSMER_LEMESHOW_GROUPS: usize = 10;
/// Out-of-range clinical values logged one by one per variable; the rest are only counted.
const RANGE_WARNINGS_LOGGED: usize = 5;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["signature", "scores"])))]
pub struct Args {
    /// Signature file to score the table with (feature columns PREFIX<index>).
    #[arg(long, requires = "table")]
    signature: Option<PathBuf>,
    /// Feature table scored with --signature. A clinical value outside the signature's
    /// range is scored by extrapolation and listed with its line under "out_of_range". A
    /// model with an empty clinical cell is skipped and listed under "skipped_models".
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
    /// Column whose values split the rows into groups evaluated separately, such as the
    /// "train" and "test" of `train`'s predictions.csv. Each group gets its own AUCs,
    /// DeLong tests and charts.
    #[arg(long)]
    split_column: Option<String>,
    /// Directory for the report: evaluate.md with the model table, evaluate.json, and the
    /// ROC, calibration and decision-curve charts as SVG and PNG.
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
    let mut range_warnings = Vec::new();
    let mut skipped = Vec::new();
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
        let scored = score_signature(&loaded, &table, &args.features_prefix)?;
        range_warnings = scored.range_warnings;
        skipped = scored.skipped;
        (table, scored.models)
    };
    let labels = table.label_column(&args.label)?;
    let (groups, models) = split_groups(&table, args.split_column.as_deref(), &labels, &models)?;

    let mut evaluations = Vec::with_capacity(groups.len());
    for (g, group) in groups.iter().enumerate() {
        let mut results = BTreeMap::new();
        for model in &models {
            let value = evaluate(&model.scores[g], &group.labels)
                .with_context(|| format!("evaluating {} on {}", model.name, group_rows(group)))?;
            results.insert(model.name.clone(), value);
        }
        let comparisons = compare(&models, g, &group.labels);
        evaluations.push(json!({
            "rows": group.labels.len(),
            "models": results,
            "delong_tests": comparisons,
        }));
    }
    let mut summary = match &args.split_column {
        None => evaluations.swap_remove(0),
        Some(column) => {
            let by_group: serde_json::Map<String, Value> = groups
                .iter()
                .map(|g| g.name.clone())
                .zip(evaluations)
                .collect();
            json!({"rows": labels.len(), "split_column": column, "groups": by_group})
        }
    };
    summary["out_of_range"] = json!(range_warnings);
    summary["skipped_models"] = json!(skipped);

    if let Some(directory) = &args.report {
        write_report(directory, &summary, &groups, &models)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, &groups)?;
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

/// Rows of one clinical variable whose value lies outside the signature's valid range.
#[derive(serde::Serialize)]
struct RangeWarning {
    variable: String,
    /// Valid range recorded in the signature (the training rows' range).
    min: f64,
    max: f64,
    rows: usize,
    /// Smallest and largest value seen outside the range.
    lowest: f64,
    highest: f64,
    /// Table lines (the header is line 1) of the rows scored by extrapolation.
    lines: Vec<usize>,
}

/// A model of the signature left out of the evaluation, with the rows that lack its
/// clinical values.
#[derive(serde::Serialize)]
struct SkippedModel {
    model: &'static str,
    reason: String,
    missing: Vec<MissingValues>,
}

/// The rows without a numeric value of one clinical variable.
#[derive(serde::Serialize)]
struct MissingValues {
    variable: String,
    /// False when the table has no column of that name.
    column_present: bool,
    /// Table lines whose cell is empty or not a number (every row without the column).
    lines: Vec<usize>,
}

/// The models scored with a signature, the models skipped and the out-of-range clinical
/// values met.
struct SignatureScores {
    models: Vec<Scored>,
    skipped: Vec<SkippedModel>,
    range_warnings: Vec<RangeWarning>,
}

/// Scores each row with the signature: the imaging probability always, the clinical and
/// integrated probabilities when every row has a value of every variable they use. A
/// model that lacks a value on some row is skipped and reported with those rows, because
/// scoring it on fewer rows would make its AUC and DeLong tests incomparable with the
/// other models'. A finite clinical value outside the signature's range is scored by
/// extrapolation and reported, because an external cohort rarely stays inside the
/// training cohort's minimum and maximum.
fn score_signature(
    signature: &Signature,
    table: &Table,
    prefix: &str,
) -> anyhow::Result<SignatureScores> {
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
    let mut clinical = ModelRows::default();
    let mut integrated = ModelRows::default();
    let mut range_warnings: Vec<RangeWarning> = Vec::new();
    let mut features = vec![0.0_f32; dimension];
    for row in 0..table.rows.len() {
        for (index, values) in &feature_columns {
            features[*index] = values[row] as f32;
        }
        let rad_score = signature.rad_score(&features)?;
        imaging.push(Signature::imaging_probability(rad_score));

        let values = clinical_values(table, &clinical_names, row);
        let line = table.lines[row];
        for value in signature.out_of_range_values(&values) {
            count_out_of_range(&mut range_warnings, &value, line);
        }
        let policy = RangePolicy::Extrapolate;
        if let Some(outcome) = signature
            .clinical_probability_with(&values, policy)
            .with_context(|| format!("line {line}"))?
        {
            clinical.push(outcome, line);
        }
        if let Some(outcome) = signature
            .integrated_probability_with(rad_score, &values, policy)
            .with_context(|| format!("line {line}"))?
        {
            integrated.push(outcome, line);
        }
    }
    for warning in &range_warnings {
        log::warn!(
            "clinical variable {} is outside the signature's range [{}, {}] on {} row(s) \
             (values {} to {}); those rows were scored by extrapolation",
            warning.variable,
            warning.min,
            warning.max,
            warning.rows,
            warning.lowest,
            warning.highest
        );
    }

    let mut models = vec![Scored {
        name: "imaging".to_string(),
        scores: imaging,
    }];
    let mut skipped = Vec::new();
    for (name, rows) in [("clinical", clinical), ("integrated", integrated)] {
        if rows.scores.is_empty() {
            continue;
        }
        if rows.missing.is_empty() {
            models.push(Scored {
                name: name.to_string(),
                scores: rows.scores.into_iter().flatten().collect(),
            });
            continue;
        }
        let missing: Vec<MissingValues> = rows
            .missing
            .into_iter()
            .map(|(variable, lines)| MissingValues {
                column_present: table.column_index(&variable).is_ok(),
                variable,
                lines,
            })
            .collect();
        let reason = missing_reason(&missing);
        log::warn!("{name} model not evaluated: {reason}");
        skipped.push(SkippedModel {
            model: name,
            reason,
            missing,
        });
    }
    Ok(SignatureScores {
        models,
        skipped,
        range_warnings,
    })
}

/// One model's probability on each row, `None` where a clinical value is missing, and
/// the lines of the missing values by variable.
#[derive(Default)]
struct ModelRows {
    scores: Vec<Option<f64>>,
    missing: BTreeMap<String, Vec<usize>>,
}

impl ModelRows {
    fn push(&mut self, outcome: ClinicalOutcome, line: usize) {
        match outcome {
            ClinicalOutcome::Available { probability } => self.scores.push(Some(probability)),
            ClinicalOutcome::Unavailable { missing } => {
                self.scores.push(None);
                for variable in missing {
                    self.missing.entry(variable).or_default().push(line);
                }
            }
        }
    }
}

/// Says which values a skipped model lacks and what to do, in one line.
fn missing_reason(missing: &[MissingValues]) -> String {
    let parts: Vec<String> = missing
        .iter()
        .map(|m| {
            if m.column_present {
                format!(
                    "{} is empty or not a number on {}",
                    m.variable,
                    line_list(&m.lines)
                )
            } else {
                format!("the table has no column {}", m.variable)
            }
        })
        .collect();
    format!(
        "{}; fill those values or drop those rows to evaluate it",
        parts.join(", and ")
    )
}

/// Formats table lines for a message: "line 6", or "lines 3, 7" with at most ten listed.
fn line_list(lines: &[usize]) -> String {
    const LISTED: usize = 10;
    let shown: Vec<String> = lines.iter().take(LISTED).map(usize::to_string).collect();
    let mut text = match lines.len() {
        1 => format!("line {}", shown[0]),
        _ => format!("lines {}", shown.join(", ")),
    };
    if lines.len() > LISTED {
        text.push_str(&format!(" and {} more", lines.len() - LISTED));
    }
    text
}

/// Counts one out-of-range value and logs the first few of each variable with their line.
fn count_out_of_range(warnings: &mut Vec<RangeWarning>, value: &OutOfRangeValue, line: usize) {
    let index = match warnings.iter().position(|w| w.variable == value.name) {
        Some(index) => index,
        None => {
            warnings.push(RangeWarning {
                variable: value.name.clone(),
                min: value.min,
                max: value.max,
                rows: 0,
                lowest: value.value,
                highest: value.value,
                lines: Vec::new(),
            });
            warnings.len() - 1
        }
    };
    let warning = &mut warnings[index];
    warning.rows += 1;
    warning.lines.push(line);
    warning.lowest = warning.lowest.min(value.value);
    warning.highest = warning.highest.max(value.value);
    if warning.rows <= RANGE_WARNINGS_LOGGED {
        log::warn!(
            "line {line}: clinical variable {} = {} is outside the signature's range [{}, {}]",
            value.name,
            value.value,
            value.min,
            value.max
        );
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
    // Scores outside [0, 1] are not probabilities, so they get no calibration statistics.
    // Probabilities of exactly 0 or 1 (a saturated logistic model) still have a decision
    // curve, and Hosmer-Lemeshow and calibration then report why they are undefined.
    let probabilities = scores.iter().all(|&p| (0.0..=1.0).contains(&p));
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

/// DeLong tests between every pair of models on group `g`; a pair whose test is
/// undefined gets the reason instead.
fn compare(models: &[ModelScores], g: usize, labels: &[bool]) -> Vec<Value> {
    let mut tests = Vec::new();
    for a in 0..models.len() {
        for b in (a + 1)..models.len() {
            let value = match delong_test(&models[a].scores[g], &models[b].scores[g], labels) {
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

/// Groups the rows by the split column ("train" first, "test" second, other values in
/// sorted order), or puts every row in one unnamed group, and splits each model's scores
/// to match.
fn split_groups(
    table: &Table,
    column: Option<&str>,
    labels: &[bool],
    models: &[Scored],
) -> anyhow::Result<(Vec<Group>, Vec<ModelScores>)> {
    let Some(column) = column else {
        let groups = vec![Group {
            name: String::new(),
            labels: labels.to_vec(),
        }];
        let models = models
            .iter()
            .map(|m| ModelScores {
                name: m.name.clone(),
                scores: vec![m.scores.clone()],
            })
            .collect();
        return Ok((groups, models));
    };
    let values = table.text_column(column)?;
    let mut names: Vec<&str> = values.clone();
    names.sort_by_key(|&name| (name != "train", name != "test", name));
    names.dedup();
    if let Some(name) = names.iter().find(|n| n.trim().is_empty()) {
        bail!("column {column:?} has an empty cell ({name:?}): give every row a group");
    }
    let members: Vec<Vec<usize>> = names
        .iter()
        .map(|&name| (0..values.len()).filter(|&i| values[i] == name).collect())
        .collect();
    let groups = names
        .iter()
        .zip(&members)
        .map(|(name, rows)| Group {
            name: name.to_string(),
            labels: rows.iter().map(|&i| labels[i]).collect(),
        })
        .collect();
    let models = models
        .iter()
        .map(|m| ModelScores {
            name: m.name.clone(),
            scores: members
                .iter()
                .map(|rows| rows.iter().map(|&i| m.scores[i]).collect())
                .collect(),
        })
        .collect();
    Ok((groups, models))
}

/// "the train rows" or "all rows", for messages.
fn group_rows(group: &Group) -> String {
    if group.name.is_empty() {
        "all rows".to_string()
    } else {
        format!("the {} rows", group.name)
    }
}

/// Lists the evaluations of the summary with their group names, in the order of the
/// groups ("" without a split column).
fn evaluations<'a>(summary: &'a Value, groups: &[Group]) -> Vec<(String, &'a Value)> {
    if summary["groups"].is_object() {
        let by_name = &summary["groups"];
        groups
            .iter()
            .map(|g| (g.name.clone(), &by_name[g.name.as_str()]))
            .collect()
    } else {
        vec![(String::new(), summary)]
    }
}

fn print_summary(summary: &Value, groups: &[Group]) -> std::io::Result<()> {
    for (group, evaluation) in evaluations(summary, groups) {
        let prefix = if group.is_empty() {
            String::new()
        } else {
            format!("{group}: ")
        };
        for (name, result) in evaluation["models"].as_object().into_iter().flatten() {
            outln!(
                "{prefix}{name}: auc {} (95% ci {}), youden threshold {}, sensitivity {}, \
                 specificity {}",
                result["auc"],
                result["auc_ci95"],
                result["youden"]["threshold"],
                result["youden"]["sensitivity"],
                result["youden"]["specificity"]
            );
        }
        for test in evaluation["delong_tests"].as_array().into_iter().flatten() {
            outln!(
                "{prefix}delong {} vs {}: z {}, p {}",
                test["first"],
                test["second"],
                test["z"],
                test["p_value"]
            );
        }
    }
    for line in notes(summary) {
        outln!("{line}");
    }
    Ok(())
}

/// Lists the models skipped for missing clinical values and the values scored by
/// extrapolation, one line each, for the summary and the report.
fn notes(summary: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for skipped in summary["skipped_models"].as_array().into_iter().flatten() {
        lines.push(format!(
            "{} model not evaluated: {}",
            text(&skipped["model"]),
            text(&skipped["reason"])
        ));
    }
    for w in summary["out_of_range"].as_array().into_iter().flatten() {
        let rows: Vec<usize> = w["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|line| line.as_u64().map(|l| l as usize))
            .collect();
        lines.push(format!(
            "{} is outside the signature's range [{}, {}] on {} (values {} to {}): \
             scored by extrapolation",
            text(&w["variable"]),
            w["min"],
            w["max"],
            line_list(&rows),
            w["lowest"],
            w["highest"]
        ));
    }
    lines
}

/// Writes evaluate.md (the model table, per-group statistics, DeLong tests, skipped
/// models, extrapolated values and the charts), evaluate.json and the charts into
/// `directory`.
fn write_report(
    directory: &std::path::Path,
    summary: &Value,
    groups: &[Group],
    models: &[ModelScores],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create report directory {}", directory.display()))?;
    let charts = report::write_charts(directory, groups, models)?;

    let mut page = String::from("# Model evaluation\n\n");
    page.push_str(&report::auc_table(groups, models, None)?);
    for (group, evaluation) in evaluations(summary, groups) {
        let title = if group.is_empty() {
            "All rows".to_string()
        } else {
            format!("{group} rows")
        };
        page.push_str(&format!(
            "\n## {title} (n = {})\n\n| model | AUC | 95% CI | Youden threshold | \
             sensitivity | specificity | Hosmer-Lemeshow p | calibration slope |\n\
             |---|---|---|---|---|---|---|---|\n",
            evaluation["rows"]
        ));
        for (name, r) in evaluation["models"].as_object().into_iter().flatten() {
            page.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
                number(&r["auc"]),
                ci(&r["auc_ci95"]),
                number(&r["youden"]["threshold"]),
                number(&r["youden"]["sensitivity"]),
                number(&r["youden"]["specificity"]),
                p_value(&r["hosmer_lemeshow"]["p"]),
                number(&r["calibration"]["slope"])
            ));
        }
        let tests = evaluation["delong_tests"].as_array().into_iter().flatten();
        let mut lines = String::new();
        for test in tests {
            let outcome = match test["error"].as_str() {
                Some(error) => format!("undefined: {error}"),
                None => format!(
                    "difference {}, z {}, p {}",
                    number(&test["auc_difference"]),
                    number(&test["z"]),
                    p_value(&test["p_value"])
                ),
            };
            let (first, second) = (&test["first"], &test["second"]);
            lines.push_str(&format!(
                "- {} vs {}: {outcome}\n",
                text(first),
                text(second)
            ));
        }
        if !lines.is_empty() {
            page.push_str(&format!("\nDeLong tests of the AUCs:\n\n{lines}"));
        }
    }
    let lines: String = notes(summary)
        .iter()
        .map(|line| format!("- {line}\n"))
        .collect();
    if !lines.is_empty() {
        page.push_str(&format!(
            "\n## Models skipped and values extrapolated\n\n{lines}"
        ));
    }
    page.push_str("\n## Charts\n\n");
    page.push_str(&report::chart_links(directory, &charts));

    let path = directory.join("evaluate.md");
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    let path = directory.join("evaluate.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Formats a JSON number with 3 decimals, or "-" when it is missing.
fn number(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// Formats a p-value with 3 decimals, as "< 0.001" below that, or "-" when it is missing.
fn p_value(value: &Value) -> String {
    match value.as_f64() {
        Some(p) if p < 0.001 => "< 0.001".to_string(),
        _ => number(value),
    }
}

/// Formats a JSON [low, high] pair as "low-high", or "-".
fn ci(value: &Value) -> String {
    match (value[0].as_f64(), value[1].as_f64()) {
        (Some(low), Some(high)) => format!("{low:.3}-{high:.3}"),
        _ => "-".to_string(),
    }
}

/// Returns a JSON string without quotes, or "" for other values.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}
