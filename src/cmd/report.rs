//! The figures and the model table shared by the reports of `train` and `evaluate`.
//!
//! The figures are ROC curves with AUCs and DeLong CIs in the legend, calibration plots
//! and decision curves, one set per group of rows (training and test rows, or all rows).

use std::path::{Path, PathBuf};

use anyhow::Context;

use ceus_edge::stats::calibration::decision_curve;
use ceus_edge::stats::roc::{auc_delong, roc_curve};

use super::chart::{model_colour, Chart, Legend, Mark, REFERENCE};

/// Rows evaluated together, such as the training or the test rows of a split.
pub struct Group {
    /// Short name used in titles and file names ("train", "test"), or empty for all rows.
    pub name: String,
    pub labels: Vec<bool>,
}

/// One model's scores, one vector per group in the order of the groups.
pub struct ModelScores {
    pub name: String,
    pub scores: Vec<Vec<f64>>,
}

impl ModelScores {
    /// True when every score of every group lies in [0, 1], so calibration and decision
    /// curves apply.
    fn are_probabilities(&self) -> bool {
        self.scores
            .iter()
            .flatten()
            .all(|p| (0.0..=1.0).contains(p))
    }
}

/// Number of groups of equal size in the calibration plot.
const CALIBRATION_GROUPS: usize = 10;

/// Writes the ROC, calibration and decision-curve charts of every group as SVG and PNG,
/// and returns the files written with a caption for each.
pub fn write_charts(
    directory: &Path,
    groups: &[Group],
    models: &[ModelScores],
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let rows = describe(group);
        let charts = [
            (
                "roc",
                format!("ROC curves, {rows}"),
                roc_chart(group, g, models)?,
            ),
            (
                "calibration",
                format!("Calibration, {rows}"),
                calibration_chart(group, g, models),
            ),
            (
                "decision_curve",
                format!("Decision curves, {rows}"),
                decision_chart(group, g, models)?,
            ),
        ];
        for (stem, caption, chart) in charts {
            let stem = if group.name.is_empty() {
                stem.to_string()
            } else {
                format!("{stem}_{}", group.name)
            };
            for path in chart.write(directory, &stem)? {
                files.push((caption.clone(), path));
            }
        }
    }
    Ok(files)
}

/// Describes a group as "test rows (n = 264, 66 positive)" or "all rows (...)".
fn describe(group: &Group) -> String {
    let positives = group.labels.iter().filter(|&&y| y).count();
    let name = if group.name.is_empty() {
        "all"
    } else {
        &group.name
    };
    format!(
        "{name} rows (n = {}, {positives} positive)",
        group.labels.len()
    )
}

/// Formats an AUC with its DeLong 95% CI as "0.812 (0.751-0.873)", or the AUC alone when
/// the CI is undefined.
pub fn auc_with_ci(scores: &[f64], labels: &[bool]) -> anyhow::Result<String> {
    let estimate = auc_delong(scores, labels)?;
    Ok(match estimate.ci95 {
        Some((low, high)) => format!("{:.3} ({low:.3}-{high:.3})", estimate.auc),
        None => format!("{:.3}", estimate.auc),
    })
}

fn roc_chart(group: &Group, g: usize, models: &[ModelScores]) -> anyhow::Result<Chart> {
    let title = format!("ROC, {}", describe(group));
    let mut chart = Chart::new(&title, "1 - specificity", "sensitivity", Legend::LowerRight);
    chart.add(
        "chance",
        REFERENCE,
        Mark::Reference,
        &[(0.0, 0.0), (1.0, 1.0)],
    );
    for (k, model) in models.iter().enumerate() {
        let scores = &model.scores[g];
        let auc = auc_with_ci(scores, &group.labels)
            .with_context(|| format!("AUC of {} on {title}", model.name))?;
        let curve = roc_curve(scores, &group.labels)?;
        let name = format!("{}: AUC {auc}", model.name);
        chart.add(&name, model_colour(k), Mark::Line, &curve);
    }
    Ok(chart)
}

fn calibration_chart(group: &Group, g: usize, models: &[ModelScores]) -> Chart {
    let title = format!("Calibration, {}", describe(group));
    let mut chart = Chart::new(
        &title,
        "mean predicted probability (deciles)",
        "observed rate",
        Legend::UpperLeft,
    );
    chart.add(
        "ideal",
        REFERENCE,
        Mark::Reference,
        &[(0.0, 0.0), (1.0, 1.0)],
    );
    for (k, model) in models.iter().enumerate() {
        if !model.are_probabilities() {
            continue;
        }
        let points = calibration_points(&model.scores[g], &group.labels, CALIBRATION_GROUPS);
        chart.add(&model.name, model_colour(k), Mark::Points, &points);
    }
    chart
}

fn decision_chart(group: &Group, g: usize, models: &[ModelScores]) -> anyhow::Result<Chart> {
    let title = format!("Decision curve, {}", describe(group));
    let mut chart = Chart::new(
        &title,
        "threshold probability",
        "net benefit",
        Legend::UpperRight,
    );
    let prevalence =
        group.labels.iter().filter(|&&y| y).count() as f64 / group.labels.len().max(1) as f64;
    // Net benefit never exceeds the prevalence, and a negative net benefit means harm
    // whatever its size, so the axis stops at -0.05 to keep the curves readable.
    chart.y_range = (-0.05, (prevalence * 1.15).max(0.1));

    let mut references_drawn = false;
    for (k, model) in models.iter().enumerate() {
        if !model.are_probabilities() {
            continue;
        }
        let curve = decision_curve(&model.scores[g], &group.labels)?;
        if !references_drawn {
            let all: Vec<(f64, f64)> = curve.iter().map(|p| (p.threshold, p.treat_all)).collect();
            chart.add("treat all", REFERENCE, Mark::Reference, &all);
            chart.add(
                "treat none",
                BLACK_REFERENCE,
                Mark::Reference,
                &[(0.0, 0.0), (1.0, 0.0)],
            );
            references_drawn = true;
        }
        let points: Vec<(f64, f64)> = curve.iter().map(|p| (p.threshold, p.net_benefit)).collect();
        chart.add(&model.name, model_colour(k), Mark::Line, &points);
    }
    Ok(chart)
}

/// Colour of the "treat none" line, darker than the other references.
const BLACK_REFERENCE: plotters::style::RGBColor = plotters::style::RGBColor(30, 30, 30);

/// Mean prediction and observed event rate in `groups` groups of equal size, by sorted
/// prediction.
pub fn calibration_points(
    probabilities: &[f64],
    labels: &[bool],
    groups: usize,
) -> Vec<(f64, f64)> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let groups = groups.min(order.len());
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

/// Renders the side-by-side Markdown table of the models: one "AUC (95% CI)" column per
/// group. `predictors` gives an optional description column per model.
pub fn auc_table(
    groups: &[Group],
    models: &[ModelScores],
    predictors: Option<&[String]>,
) -> anyhow::Result<String> {
    let mut header = String::from("| model |");
    let mut rule = String::from("|---|");
    if predictors.is_some() {
        header.push_str(" predictors |");
        rule.push_str("---|");
    }
    for group in groups {
        let name = if group.name.is_empty() {
            "all rows"
        } else {
            &group.name
        };
        header.push_str(&format!(" AUC {name} (95% CI) |"));
        rule.push_str("---|");
    }
    let mut table = format!("{header}\n{rule}\n");
    for (k, model) in models.iter().enumerate() {
        table.push_str(&format!("| {} |", model.name));
        if let Some(predictors) = predictors {
            table.push_str(&format!(" {} |", predictors[k]));
        }
        for (g, group) in groups.iter().enumerate() {
            let cell = auc_with_ci(&model.scores[g], &group.labels)
                .with_context(|| format!("AUC of {} on the {} rows", model.name, group.name))?;
            table.push_str(&format!(" {cell} |"));
        }
        table.push('\n');
    }
    Ok(table)
}

/// Renders Markdown links to the chart files, SVG shown inline and PNG linked.
pub fn chart_links(directory: &Path, files: &[(String, PathBuf)]) -> String {
    let mut page = String::new();
    for (caption, path) in files {
        let name = path
            .strip_prefix(directory)
            .unwrap_or(path)
            .display()
            .to_string();
        if name.ends_with(".svg") {
            page.push_str(&format!("### {caption}\n\n![{caption}]({name})\n\n"));
        } else {
            page.push_str(&format!("PNG: [{name}]({name})\n\n"));
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_points_by_decile() {
        let probabilities: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
        let labels: Vec<bool> = (0..20).map(|i| i >= 10).collect();
        let points = calibration_points(&probabilities, &labels, 10);
        assert_eq!(points.len(), 10);
        assert!((points[0].0 - 0.025).abs() < 1e-12, "{points:?}");
        assert_eq!(points[0].1, 0.0);
        assert_eq!(points[9].1, 1.0);
        assert_eq!(
            calibration_points(&probabilities[..3], &labels[..3], 10).len(),
            3
        );
    }

    #[test]
    fn auc_table_has_one_column_per_group() {
        let groups = [
            Group {
                name: "train".to_string(),
                labels: vec![false, false, true, true],
            },
            Group {
                name: "test".to_string(),
                labels: vec![false, true, true],
            },
        ];
        let models = [ModelScores {
            name: "CEUS".to_string(),
            scores: vec![vec![0.1, 0.4, 0.35, 0.8], vec![0.2, 0.9, 0.7]],
        }];
        let predictors = ["rad-score".to_string()];
        let table = auc_table(&groups, &models, Some(&predictors)).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "| model | predictors | AUC train (95% CI) | AUC test (95% CI) |"
        );
        // Training AUC: 3 of 4 positive-negative pairs ordered correctly.
        assert!(
            lines[2].starts_with("| CEUS | rad-score | 0.750 ("),
            "{table}"
        );
        assert!(lines[2].contains("| 1.000 |"), "{table}");
    }
}
