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
use ceus_edge::stats::roc::{auc_delong, delong_test, roc_curve, youden};
use ceus_edge::table::Table;

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
    let mut range_warnings = Vec::new();
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
        (table, scored.models)
    };
    let labels = table.label_column(&args.label)?;

    let mut results = BTreeMap::new();
    for model in &models {
        let value = evaluate(&model.scores, &labels)
            .with_context(|| format!("evaluating {}", model.name))?;
        results.insert(model.name.clone(), value);
    }
    let comparisons = compare(&models, &labels);
    let summary = json!({
        "rows": labels.len(),
        "models": results,
        "delong_tests": comparisons,
        "out_of_range": range_warnings,
    });

    if let Some(directory) = &args.report {
        write_report(directory, &summary)?;
        write_plots(directory, &models, &labels)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary)?;
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
}

/// The models scored with a signature and the out-of-range clinical values met.
struct SignatureScores {
    models: Vec<Scored>,
    range_warnings: Vec<RangeWarning>,
}

/// Scores each row with the signature: the imaging probability always, the clinical and
/// integrated probabilities when the table has every column they need. A finite clinical
/// value outside the signature's range is scored by extrapolation and counted, because an
/// external cohort rarely stays inside the training cohort's minimum and maximum.
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
    let mut clinical = Vec::new();
    let mut integrated = Vec::new();
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
            push_outcome(&mut clinical, outcome);
        }
        if let Some(outcome) = signature
            .integrated_probability_with(rad_score, &values, policy)
            .with_context(|| format!("line {line}"))?
        {
            push_outcome(&mut integrated, outcome);
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
    Ok(SignatureScores {
        models,
        range_warnings,
    })
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
            });
            warnings.len() - 1
        }
    };
    let warning = &mut warnings[index];
    warning.rows += 1;
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

fn print_summary(summary: &Value) -> std::io::Result<()> {
    let Some(models) = summary["models"].as_object() else {
        return Ok(());
    };
    for (name, result) in models {
        outln!(
            "{name}: auc {} (95% ci {}), youden threshold {}, sensitivity {}, specificity {}",
            result["auc"],
            result["auc_ci95"],
            result["youden"]["threshold"],
            result["youden"]["sensitivity"],
            result["youden"]["specificity"]
        );
    }
    for test in summary["delong_tests"].as_array().into_iter().flatten() {
        outln!(
            "delong {} vs {}: z {}, p {}",
            test["first"],
            test["second"],
            test["z"],
            test["p_value"]
        );
    }
    Ok(())
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
    let warnings = summary["out_of_range"].as_array().into_iter().flatten();
    let mut lines = String::new();
    for w in warnings {
        lines.push_str(&format!(
            "- {}: {} row(s) outside [{}, {}], values {} to {}, scored by extrapolation\n",
            w["variable"].as_str().unwrap_or(""),
            w["rows"],
            w["min"],
            w["max"],
            w["lowest"],
            w["highest"]
        ));
    }
    if !lines.is_empty() {
        page.push_str(&format!(
            "\n## Clinical values outside the signature's range\n\n{lines}"
        ));
    }
    let path = directory.join("evaluate.md");
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    let path = directory.join("evaluate.json");
    std::fs::write(&path, serde_json::to_string_pretty(summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Line colours of the plotted models, in model order (cycled).
const COLOURS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/// Writes roc.svg, calibration.svg and decision_curve.svg into `directory`. Calibration
/// and decision curves are drawn only for models whose scores are probabilities.
fn write_plots(
    directory: &std::path::Path,
    models: &[Scored],
    labels: &[bool],
) -> anyhow::Result<()> {
    let mut roc = svg::Plot::new("ROC curve", "1 - specificity", "sensitivity");
    let mut calibration =
        svg::Plot::new("Calibration (deciles)", "mean predicted", "observed rate");
    let mut decision = svg::Plot::new("Decision curve", "threshold probability", "net benefit");
    roc.line("chance", "#999999", &[(0.0, 0.0), (1.0, 1.0)]);
    calibration.line("ideal", "#999999", &[(0.0, 0.0), (1.0, 1.0)]);
    decision.y_range = (-0.05, 1.0);

    let mut treat_all_drawn = false;
    for (k, model) in models.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        roc.line(&model.name, colour, &roc_curve(&model.scores, labels)?);
        if !model.scores.iter().all(|&p| (0.0..=1.0).contains(&p)) {
            continue;
        }
        calibration.points(&model.name, colour, &decile_points(&model.scores, labels));
        let curve = decision_curve(&model.scores, labels)?;
        let points: Vec<(f64, f64)> = curve.iter().map(|p| (p.threshold, p.net_benefit)).collect();
        decision.line(&model.name, colour, &points);
        if !treat_all_drawn {
            let all: Vec<(f64, f64)> = curve.iter().map(|p| (p.threshold, p.treat_all)).collect();
            decision.line("treat all", "#555555", &all);
            decision.line("treat none", "#bbbbbb", &[(0.0, 0.0), (1.0, 0.0)]);
            treat_all_drawn = true;
        }
    }

    for (name, plot) in [
        ("roc.svg", roc),
        ("calibration.svg", calibration),
        ("decision_curve.svg", decision),
    ] {
        let path = directory.join(name);
        std::fs::write(&path, plot.render())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Mean prediction and observed event rate in ten groups of equal size, by sorted
/// prediction.
fn decile_points(probabilities: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let groups = 10.min(order.len());
    (0..groups)
        .filter_map(|g| {
            let members = &order[g * order.len() / groups..(g + 1) * order.len() / groups];
            if members.is_empty() {
                return None;
            }
            let count = members.len() as f64;
            let predicted = members.iter().map(|&i| probabilities[i]).sum::<f64>() / count;
            let observed = members.iter().filter(|&&i| labels[i]).count() as f64 / count;
            Some((predicted, observed))
        })
        .collect()
}

/// A minimal SVG line and scatter plot, written by hand so that the report needs no font
/// or drawing library. Axes span [0, 1] unless a range is set.
mod svg {
    use std::fmt::Write;

    const WIDTH: f64 = 480.0;
    const HEIGHT: f64 = 400.0;
    const MARGIN: f64 = 56.0;

    enum Mark {
        Line,
        Points,
    }

    /// One plotted series: legend name, colour, mark and data points.
    struct Series {
        name: String,
        colour: String,
        mark: Mark,
        points: Vec<(f64, f64)>,
    }

    pub struct Plot {
        title: String,
        x_label: String,
        y_label: String,
        pub y_range: (f64, f64),
        series: Vec<Series>,
    }

    impl Plot {
        pub fn new(title: &str, x_label: &str, y_label: &str) -> Plot {
            Plot {
                title: title.to_string(),
                x_label: x_label.to_string(),
                y_label: y_label.to_string(),
                y_range: (0.0, 1.0),
                series: Vec::new(),
            }
        }

        pub fn line(&mut self, name: &str, colour: &str, points: &[(f64, f64)]) {
            self.push(name, colour, Mark::Line, points);
        }

        pub fn points(&mut self, name: &str, colour: &str, points: &[(f64, f64)]) {
            self.push(name, colour, Mark::Points, points);
        }

        fn push(&mut self, name: &str, colour: &str, mark: Mark, points: &[(f64, f64)]) {
            self.series.push(Series {
                name: name.to_string(),
                colour: colour.to_string(),
                mark,
                points: points.to_vec(),
            });
        }

        fn to_pixels(&self, (x, y): (f64, f64)) -> (f64, f64) {
            let (low, high) = self.y_range;
            let y = y.clamp(low, high);
            let px = MARGIN + x.clamp(0.0, 1.0) * (WIDTH - 2.0 * MARGIN);
            let py = HEIGHT - MARGIN - (y - low) / (high - low) * (HEIGHT - 2.0 * MARGIN);
            (px, py)
        }

        pub fn render(&self) -> String {
            let mut out = String::new();
            let _ = writeln!(
                out,
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
            );
            let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
            self.render_axes(&mut out);
            for (k, series) in self.series.iter().enumerate() {
                let Series {
                    name,
                    colour,
                    mark,
                    points,
                } = series;
                match mark {
                    Mark::Line => {
                        let path: Vec<String> = points
                            .iter()
                            .map(|&p| {
                                let (x, y) = self.to_pixels(p);
                                format!("{x:.1},{y:.1}")
                            })
                            .collect();
                        let _ = writeln!(
                            out,
                            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                            path.join(" ")
                        );
                    }
                    Mark::Points => {
                        for &p in points {
                            let (x, y) = self.to_pixels(p);
                            let _ = writeln!(
                                out,
                                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#
                            );
                        }
                    }
                }
                let legend_y = MARGIN + 14.0 * k as f64;
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{legend_y:.1}" fill="{colour}">{}</text>"#,
                    WIDTH - MARGIN - 110.0,
                    escape(name)
                );
            }
            out.push_str("</svg>\n");
            out
        }

        fn render_axes(&self, out: &mut String) {
            let (left, bottom) = self.to_pixels((0.0, self.y_range.0));
            let (right, top) = self.to_pixels((1.0, self.y_range.1));
            let _ = writeln!(
                out,
                r#"<rect x="{left:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
                right - left,
                bottom - top
            );
            for k in 0..=5 {
                let fraction = f64::from(k) / 5.0;
                let (x, _) = self.to_pixels((fraction, 0.0));
                let _ = writeln!(
                    out,
                    r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{fraction:.1}</text>"#,
                    bottom + 16.0
                );
                let value = self.y_range.0 + fraction * (self.y_range.1 - self.y_range.0);
                let (_, y) = self.to_pixels((0.0, value));
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{value:.2}</text>"#,
                    left - 6.0,
                    y + 4.0
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
                WIDTH / 2.0,
                escape(&self.title)
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                WIDTH / 2.0,
                HEIGHT - 12.0,
                escape(&self.x_label)
            );
            let _ = writeln!(
                out,
                r#"<text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">{}</text>"#,
                HEIGHT / 2.0,
                HEIGHT / 2.0,
                escape(&self.y_label)
            );
        }
    }

    fn escape(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
}
