//! `ceus-edge train`: fit a deep-radiomics signature on a cohort table.
//!
//! The steps follow the feature-selection chain of deep-radiomics work: z-score every
//! feature with the training rows' mean and sample standard deviation, keep features with
//! Mann-Whitney p < 0.05, drop redundant ones (|Spearman rho| > 0.9), fit a LASSO logistic
//! model chosen by cross-validation, then fit the clinical and integrated logistic models.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use ceus_edge::signature::{
    ClinicalModel, ClinicalVariable, IntegratedModel, ModelAucs, Preprocessing, RadScore,
    Signature, FORMAT_VERSION, UNKNOWN_EXTRACTOR_SHA256,
};
use ceus_edge::stats::lasso::{self, LassoOptions};
use ceus_edge::stats::logistic::{fit_logistic, CoefficientRow, LogisticFit, LogisticOptions};
use ceus_edge::stats::mann_whitney::mann_whitney_u;
use ceus_edge::stats::roc::{auc_delong, youden};
use ceus_edge::stats::spearman::redundancy_filter;
use ceus_edge::stats::special::sigmoid;
use ceus_edge::stats::StatsError;
use ceus_edge::table::Table;

use super::report::{self, Group, ModelScores};

/// Significance level of the Mann-Whitney filter.
const MANN_WHITNEY_P: f64 = 0.05;
/// |rho| above which two features count as redundant.
const SPEARMAN_THRESHOLD: f64 = 0.9;

#[derive(clap::Args)]
pub struct Args {
    /// Cohort CSV: a header row, one row per exam.
    #[arg(long)]
    table: PathBuf,
    /// Column with the outcome, 1 (positive) or 0.
    #[arg(long)]
    label: String,
    /// Feature columns are those whose name starts with this prefix; with names PREFIX0,
    /// PREFIX1, ... the number is the index into the extractor's feature vector.
    #[arg(long, default_value = "f")]
    features_prefix: String,

    /// Length of the extractor's feature vector; every feature index must be below it.
    /// DenseNet-201's pooled features number 1920.
    #[arg(long, value_name = "N", default_value_t = 1920, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    feature_dimension: u32,
    /// Clinical columns, comma-separated, candidates for the clinical model.
    #[arg(long, value_delimiter = ',')]
    clinical: Vec<String>,
    /// Column whose values "train" and "test" split the rows.
    #[arg(long, conflicts_with = "test_fraction")]
    split_column: Option<String>,
    /// Fraction of rows held out for testing, stratified by label; 0 fits on all rows.
    #[arg(long, default_value_t = 0.3)]
    test_fraction: f64,
    /// Seed of the train/test split and of the cross-validation folds.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of cross-validation folds for the LASSO.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(2..))]
    folds: u16,
    /// Column of integer fold ids for the training rows, in place of seeded folds.
    #[arg(long)]
    fold_column: Option<String>,
    /// Cross-validation folds fitted at the same time, each on its own thread; 0 takes
    /// one per available core. The fit does not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    jobs: u16,
    /// Smallest lambda of the LASSO path as a fraction of lambda_max; default 0.01 with
    /// fewer rows than features, 1e-4 otherwise (glmnet's lambda.min.ratio).
    #[arg(long)]
    lambda_min_ratio: Option<f64>,
    /// Cross-validated lambda to use: the largest within one standard error of the minimum
    /// deviance (1se) or the minimum itself (min).
    #[arg(long, value_enum, default_value = "1se")]
    lambda: LambdaChoice,
    /// Unit of a clinical variable, NAME=UNIT (for example cea=ng/mL); repeatable. The
    /// signature records it, and the range errors of `analyze` and `run` name it.
    #[arg(long = "unit", value_name = "NAME=UNIT")]
    units: Vec<String>,
    /// Univariate p-value below which a clinical variable enters the multivariate model.
    #[arg(long, default_value_t = 0.1)]
    clinical_p: f64,
    /// Signature file to write.
    #[arg(long)]
    out: PathBuf,
    /// Directory for the report: train.md with the models side by side and the selected
    /// features, train.json, predictions.csv (each row's split and probabilities), and the
    /// ROC, calibration and decision-curve charts as SVG and PNG.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Name of the imaging model in the report, such as CEUS, TDUS or CDUS after the
    /// images the features came from. The integrated model is then "clinical + NAME".
    #[arg(long, default_value = "imaging")]
    imaging_name: String,
    /// Print the fit summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// SHA-256 (hex) of the feature extractor that produced the features; default: the
    /// first word of TABLE.sha256 when `extract` wrote one beside the table.
    #[arg(long)]
    extractor_sha256: Option<String>,
    /// Mark the signature as a demo artefact (synthetic data, not for clinical use).
    #[arg(long)]
    demo: bool,
}

#[derive(Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
enum LambdaChoice {
    #[value(name = "1se")]
    OneSe,
    Min,
}

/// Training and test rows of one column.
#[derive(Clone)]
struct Split<T> {
    train: Vec<T>,
    test: Vec<T>,
}

/// A z-scored feature column.
struct Feature {
    name: String,
    index: u32,
    mean: f64,
    std_dev: f64,
    values: Split<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_args(&args)?;
    let units = parse_units(&args)?;
    let table = Table::read(&args.table)?;
    let labels_all = table.label_column(&args.label)?;
    let is_test = test_rows(&args, &table, &labels_all)?;
    let labels = split(&labels_all, &is_test);
    let positives = labels.train.iter().filter(|&&y| y).count();
    let negatives = labels.train.len() - positives;
    if positives == 0 || negatives == 0 {
        bail!(
            "the label {:?} has one class only on the training rows ({positives} positive, \
             {negatives} negative): training needs both",
            args.label
        );
    }

    let (features, constant, dimension) = z_scored_features(&args, &table, &is_test)?;
    let selection = select(&args, &table, &is_test, &features, &labels)?;
    let selected: Vec<&Feature> = selection.kept.iter().map(|&k| &features[k]).collect();

    let rad_scores = rad_scores(&selected, &selection);
    let imaging = imaging_summary(&rad_scores, &labels)?;
    let clinical = clinical_models(&args, &table, &is_test, &labels, &rad_scores)?;

    let extractor = extractor_hash(&args)?;
    let provenance = Provenance::new(&args, &extractor)?;
    let mut signature = build_signature(
        &args,
        &provenance,
        &extractor.sha256,
        dimension,
        &selected,
        &selection,
        &imaging,
        &clinical,
    );
    set_units(&mut signature, &units);
    signature
        .save(&args.out)
        .with_context(|| format!("cannot write the signature to {}", args.out.display()))?;

    let summary = json!({
        "rows": {"train": labels.train.len(), "test": labels.test.len()},
        "features": {
            "total": features.len() + constant.len(),
            "constant_excluded": constant,
        },
        "selection": selection_json(&args, &selection, &features),
        "imaging_model": imaging.json,
        "clinical_model": clinical.clinical_json,
        "integrated_model": clinical.integrated_json,
        "signature": args.out.display().to_string(),
        "provenance": provenance.json(),
    });
    if let Some(directory) = &args.report {
        let models = report_models(&args, &rad_scores, &clinical, selected.len());
        let rows = ReportRows {
            table: &table,
            is_test: &is_test,
            labels_all: &labels_all,
            labels: &labels,
        };
        write_report(directory, &summary, &rows, &models)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary)?;
    }
    Ok(())
}

fn check_args(args: &Args) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.test_fraction) {
        bail!(
            "--test-fraction {} is outside [0, 1): give the share of rows to hold out",
            args.test_fraction
        );
    }
    if !(args.clinical_p > 0.0 && args.clinical_p <= 1.0) {
        bail!("--clinical-p {} is outside (0, 1]", args.clinical_p);
    }
    if let Some(hash) = &args.extractor_sha256 {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("--extractor-sha256 {hash:?} is not 64 hexadecimal digits");
        }
    }
    Ok(())
}

/// Parses the --unit options into units by variable name. Every name must be one of
/// --clinical, so that a misspelt name does not leave its variable without a unit.
fn parse_units(args: &Args) -> anyhow::Result<BTreeMap<String, String>> {
    let mut units = BTreeMap::new();
    for option in &args.units {
        let Some((name, unit)) = option.split_once('=') else {
            bail!("invalid --unit `{option}`: expected NAME=UNIT, for example --unit cea=ng/mL");
        };
        let name = name.trim();
        if !args.clinical.iter().any(|c| c == name) {
            bail!(
                "--unit `{option}` names {name:?}, which is not one of the --clinical \
                 columns ({}): check the name",
                args.clinical.join(", ")
            );
        }
        units.insert(name.to_string(), unit.trim().to_string());
    }
    Ok(units)
}

/// Records the unit of each clinical variable of the signature's models that has one.
fn set_units(signature: &mut Signature, units: &BTreeMap<String, String>) {
    let clinical = signature
        .clinical_model
        .iter_mut()
        .flat_map(|m| &mut m.variables);
    let integrated = signature
        .integrated_model
        .iter_mut()
        .flat_map(|m| &mut m.variables);
    for variable in clinical.chain(integrated) {
        if let Some(unit) = units.get(&variable.name) {
            variable.unit.clone_from(unit);
        }
    }
}

/// Marks each row as a test row, from the split column or by a stratified seeded draw.
fn test_rows(args: &Args, table: &Table, labels: &[bool]) -> anyhow::Result<Vec<bool>> {
    if let Some(column) = &args.split_column {
        let values = table.text_column(column)?;
        return values
            .iter()
            .zip(&table.lines)
            .map(|(value, line)| match *value {
                "train" => Ok(false),
                "test" => Ok(true),
                other => bail!(
                    "line {line}, column {column:?}: {other:?} is neither \"train\" nor \"test\""
                ),
            })
            .collect();
    }

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut is_test = vec![false; labels.len()];
    for class in [true, false] {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        let count = (members.len() as f64 * args.test_fraction).round() as usize;
        for &i in &members[..count] {
            is_test[i] = true;
        }
    }
    Ok(is_test)
}

fn split<T: Clone>(values: &[T], is_test: &[bool]) -> Split<T> {
    let mut result = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    for (value, &test) in values.iter().zip(is_test) {
        if test {
            result.test.push(value.clone());
        } else {
            result.train.push(value.clone());
        }
    }
    result
}

/// Reads the feature columns and z-scores them with the training rows' statistics.
/// Returns the features, the names of constant features (excluded) and the dimension of
/// the feature vector.
fn z_scored_features(
    args: &Args,
    table: &Table,
    is_test: &[bool],
) -> anyhow::Result<(Vec<Feature>, Vec<String>, u32)> {
    let excluded: Vec<&str> = [
        Some(&args.label),
        args.split_column.as_ref(),
        args.fold_column.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(&args.clinical)
    .map(String::as_str)
    .collect();
    let columns: Vec<usize> = (0..table.headers.len())
        .filter(|&j| {
            let name = &table.headers[j];
            name.starts_with(&args.features_prefix) && !excluded.contains(&name.as_str())
        })
        .collect();
    if columns.is_empty() {
        bail!(
            "no feature columns: no header starts with {:?}; set --features-prefix",
            args.features_prefix
        );
    }
    let indices = feature_indices(
        &args.features_prefix,
        table,
        &columns,
        args.feature_dimension,
    )?;
    let dimension = args.feature_dimension;

    let mut features = Vec::new();
    let mut constant = Vec::new();
    for (&j, &index) in columns.iter().zip(&indices) {
        let name = table.headers[j].clone();
        let values = split(&table.numeric_at(j)?, is_test);
        let (mean, std_dev) = mean_and_sd(&values.train);
        if !(std_dev > 0.0 && std_dev.is_finite()) {
            log::info!("feature {name} excluded: constant on the training rows");
            constant.push(name);
            continue;
        }
        let scale = |v: &Vec<f64>| v.iter().map(|x| (x - mean) / std_dev).collect();
        features.push(Feature {
            name,
            index,
            mean,
            std_dev,
            values: Split {
                train: scale(&values.train),
                test: scale(&values.test),
            },
        });
    }
    if features.is_empty() {
        bail!("every feature column is constant on the training rows");
    }
    Ok((features, constant, dimension))
}

/// Takes PREFIX<number> as the feature-vector index when every column is named so, the
/// column order otherwise.
/// Parses each feature column's index from its name, PREFIX followed by a number below
/// `dimension`, because that number is the position in the extractor's feature vector.
fn feature_indices(
    prefix: &str,
    table: &Table,
    columns: &[usize],
    dimension: u32,
) -> anyhow::Result<Vec<u32>> {
    let mut indices = Vec::with_capacity(columns.len());
    for &j in columns {
        let name = &table.headers[j];
        match name[prefix.len()..].parse::<u32>() {
            Ok(index) if index < dimension => indices.push(index),
            _ => bail!(
                "feature column `{name}` is not {prefix}N with N below the feature dimension \
                 {dimension}: rename it, change --features-prefix or set --feature-dimension"
            ),
        }
    }
    let mut sorted = indices.clone();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
        bail!("two feature columns map to the feature index {}", pair[0]);
    }
    Ok(indices)
}

/// Mean and sample standard deviation (n - 1).
fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, variance.sqrt())
}

/// Outcome of the selection chain.
struct Selection {
    after_mann_whitney: usize,
    after_spearman: usize,
    lambda_min: f64,
    lambda_1se: f64,
    lambda: f64,
    /// Indices into the feature list of the non-zero LASSO coefficients.
    kept: Vec<usize>,
    coefficients: Vec<f64>,
    intercept: f64,
}

fn select(
    args: &Args,
    table: &Table,
    is_test: &[bool],
    features: &[Feature],
    labels: &Split<bool>,
) -> anyhow::Result<Selection> {
    let mut significant = Vec::new();
    for (k, feature) in features.iter().enumerate() {
        let (positives, negatives) = by_class(&feature.values.train, &labels.train);
        let test = mann_whitney_u(&positives, &negatives)
            .with_context(|| format!("mann-whitney u on feature {}", feature.name))?;
        if test.p_value < MANN_WHITNEY_P {
            significant.push(k);
        }
    }
    if significant.is_empty() {
        bail!("no feature differs between the classes at mann-whitney p < {MANN_WHITNEY_P}");
    }

    let columns: Vec<Vec<f64>> = significant
        .iter()
        .map(|&k| features[k].values.train.clone())
        .collect();
    let kept_local = redundancy_filter(&columns, SPEARMAN_THRESHOLD)?;
    let candidates: Vec<usize> = kept_local.iter().map(|&i| significant[i]).collect();
    let lasso_columns: Vec<Vec<f64>> = kept_local.iter().map(|&i| columns[i].clone()).collect();

    // NOTE: the Mann-Whitney and Spearman screens see every training row, so the LASSO's
    // cross-validated deviance is optimistic and lambda.1se can keep features even on
    // pure noise. The cross-validation itself is checked against the cv.glmnet
    // reference in tests/fixtures/stats/lasso.json.
    let folds = fold_ids(args, table, is_test, &labels.train)?;
    let options = LassoOptions {
        lambda_min_ratio: args.lambda_min_ratio,
        threads: usize::from(args.jobs),
        ..LassoOptions::default()
    };
    let cv = lasso::cross_validate(&lasso_columns, &labels.train, &folds, &options)
        .context("lasso cross-validation")?;
    let index = match args.lambda {
        LambdaChoice::OneSe => cv.index_1se,
        LambdaChoice::Min => cv.index_min,
    };
    let beta = &cv.path.coefficients[index];
    let kept: Vec<usize> = (0..beta.len()).filter(|&j| beta[j] != 0.0).collect();
    if kept.is_empty() {
        bail!(
            "the lasso keeps no feature at lambda {:.4e}; try --lambda min",
            cv.path.lambdas[index]
        );
    }
    Ok(Selection {
        after_mann_whitney: significant.len(),
        after_spearman: candidates.len(),
        lambda_min: cv.lambda_min,
        lambda_1se: cv.lambda_1se,
        lambda: cv.path.lambdas[index],
        coefficients: kept.iter().map(|&j| beta[j]).collect(),
        kept: kept.iter().map(|&j| candidates[j]).collect(),
        intercept: cv.path.intercepts[index],
    })
}

fn by_class(values: &[f64], labels: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let positives = values
        .iter()
        .zip(labels)
        .filter(|(_, &y)| y)
        .map(|(v, _)| *v)
        .collect();
    let negatives = values
        .iter()
        .zip(labels)
        .filter(|(_, &y)| !y)
        .map(|(v, _)| *v)
        .collect();
    (positives, negatives)
}

/// Fold ids of the training rows: from --fold-column (distinct values numbered in
/// increasing order), or stratified seeded folds.
fn fold_ids(
    args: &Args,
    table: &Table,
    is_test: &[bool],
    labels: &[bool],
) -> anyhow::Result<Vec<usize>> {
    let Some(column) = &args.fold_column else {
        return Ok(lasso::stratified_folds(
            labels,
            usize::from(args.folds),
            args.seed,
        )?);
    };
    let values = table.numeric_column(column)?;
    let mut ids: Vec<i64> = Vec::with_capacity(values.len());
    for (&value, line) in values.iter().zip(&table.lines) {
        if value.fract() != 0.0 || value.abs() > 1e9 {
            bail!("line {line}, column {column:?}: fold id {value} is not an integer");
        }
        ids.push(value as i64);
    }
    let distinct = split(&ids, is_test).train;
    let mut sorted = distinct.clone();
    sorted.sort_unstable();
    sorted.dedup();
    Ok(distinct
        .iter()
        .map(|v| sorted.binary_search(v).unwrap_or(0))
        .collect())
}

fn rad_scores(selected: &[&Feature], selection: &Selection) -> Split<f64> {
    let score = |rows: usize, pick: &dyn Fn(&Feature) -> &Vec<f64>| -> Vec<f64> {
        (0..rows)
            .map(|i| {
                selection.intercept
                    + selected
                        .iter()
                        .zip(&selection.coefficients)
                        .map(|(f, b)| b * pick(f)[i])
                        .sum::<f64>()
            })
            .collect()
    };
    let train_rows = selected[0].values.train.len();
    let test_rows = selected[0].values.test.len();
    Split {
        train: score(train_rows, &|f| &f.values.train),
        test: score(test_rows, &|f| &f.values.test),
    }
}

struct Imaging {
    json: Value,
    cutoff: f64,
    auc_train: f64,
    auc_test: Option<f64>,
}

fn imaging_summary(rad_scores: &Split<f64>, labels: &Split<bool>) -> anyhow::Result<Imaging> {
    let train = auc_delong(&rad_scores.train, &labels.train)?;
    let test = test_auc(&rad_scores.test, &labels.test)?;
    let probabilities: Vec<f64> = rad_scores
        .train
        .iter()
        .map(|&r| Signature::imaging_probability(r))
        .collect();
    let cut = youden(&probabilities, &labels.train)?;
    Ok(Imaging {
        json: json!({
            "auc": {"train": train.auc, "test": test},
            "auc_ci95_train": train.ci95,
            "youden_threshold": cut.threshold,
        }),
        cutoff: cut.threshold,
        auc_train: train.auc,
        auc_test: test,
    })
}

/// AUC on the test rows, `None` without test rows.
fn test_auc(scores: &[f64], labels: &[bool]) -> anyhow::Result<Option<f64>> {
    if scores.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        auc_delong(scores, labels)
            .context("auc on the test rows")?
            .auc,
    ))
}

struct Clinical {
    clinical: Option<ClinicalModel>,
    /// `None` when the fit separated the training rows.
    integrated: Option<IntegratedModel>,
    clinical_json: Value,
    integrated_json: Value,
    aucs: [(Option<f64>, Option<f64>); 2],
    /// Youden cut-off on the integrated model's training probabilities.
    integrated_cutoff: Option<f64>,
    /// Names of the clinical variables in both models.
    retained: Vec<String>,
    /// Predicted probabilities of the clinical and the integrated model, when fitted.
    probabilities: [Option<Split<f64>>; 2],
}

/// Fits the univariate screens, the multivariate clinical model and the integrated model.
fn clinical_models(
    args: &Args,
    table: &Table,
    is_test: &[bool],
    labels: &Split<bool>,
    rad_scores: &Split<f64>,
) -> anyhow::Result<Clinical> {
    let options = LogisticOptions::default();
    let mut univariate = Vec::new();
    let mut retained: Vec<(String, Split<f64>)> = Vec::new();
    for name in &args.clinical {
        let values = split(&table.numeric_column(name)?, is_test);
        let fit = fit_logistic(&[&values.train], &labels.train, None, true, options)
            .with_context(|| format!("univariate logistic model of {name}"))?;
        let p = fit.p_values()[1];
        let entered = p < args.clinical_p;
        univariate.push(json!({"name": name, "p_value": p, "entered": entered}));
        if entered {
            retained.push((name.clone(), values));
        }
    }

    let names: Vec<String> = retained.iter().map(|(n, _)| n.clone()).collect();
    let mut clinical_probabilities = None;
    let screen_reason = no_clinical_reason(args, &univariate);
    let (clinical, clinical_json, clinical_aucs) = if let Some(reason) = &screen_reason {
        let value = json!({
            "fitted": false,
            "reason": reason,
            "univariate": univariate,
            "coefficients": [],
            "auc": null,
        });
        (None, value, (None, None))
    } else {
        let train: Vec<&[f64]> = retained.iter().map(|(_, v)| v.train.as_slice()).collect();
        let fit = fit_logistic(&train, &labels.train, None, true, options)
            .context("multivariate clinical logistic model")?;
        let (auc_train, auc_test) = model_aucs(&fit, &retained, None, labels)?;
        clinical_probabilities = Some(probabilities(&fit, &retained, None, labels));
        let model = ClinicalModel {
            intercept: fit.coefficients[0],
            variables: variables(&fit, &retained, 1),
        };
        let value = json!({
            "fitted": true,
            "univariate": univariate,
            "coefficients": fit.table(&names),
            "auc": {"train": auc_train, "test": auc_test},
        });
        (Some(model), value, (Some(auc_train), auc_test))
    };

    let mut predictors: Vec<&[f64]> = vec![&rad_scores.train];
    predictors.extend(retained.iter().map(|(_, v)| v.train.as_slice()));
    let integrated = match fit_logistic(&predictors, &labels.train, None, true, options) {
        Ok(fit) => integrated_model(
            &fit,
            &predictors,
            &retained,
            rad_scores,
            labels,
            names.clone(),
        )?,
        Err(StatsError::Separation { kind, detail }) => {
            // A separating rad-score has no finite maximum-likelihood estimate. The
            // imaging and clinical models stay valid, so the signature is written
            // without the integrated model and scoring falls back to imaging only.
            let reason = format!(
                "the rad-score and clinical variables show {kind} separation of the \
                 training rows ({detail})"
            );
            log::warn!(
                "integrated model not fitted: {reason}; the signature is written without it"
            );
            IntegratedFit::NotFitted { reason }
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context("integrated logistic model (rad-score and clinical variables)"))
        }
    };
    let mut integrated_probabilities = None;
    let (integrated, integrated_json, integrated_aucs, integrated_cutoff) = match integrated {
        IntegratedFit::Fitted {
            model,
            json,
            auc_train,
            auc_test,
            cutoff,
            probabilities,
        } => {
            integrated_probabilities = Some(probabilities);
            let mut json = json;
            if let Some(reason) = &screen_reason {
                json["note"] = json!(format!(
                    "fitted on the rad-score alone, because the clinical model was not \
                     fitted: {reason}"
                ));
            }
            (Some(model), json, (Some(auc_train), auc_test), Some(cutoff))
        }
        IntegratedFit::NotFitted { reason } => (
            None,
            json!({"fitted": false, "reason": reason, "coefficients": [], "auc": null}),
            (None, None),
            None,
        ),
    };
    Ok(Clinical {
        clinical,
        integrated,
        clinical_json,
        integrated_json,
        aucs: [clinical_aucs, integrated_aucs],
        integrated_cutoff,
        retained: names,
        probabilities: [clinical_probabilities, integrated_probabilities],
    })
}

/// Says why no clinical variable enters the models, with each variable's univariate
/// p-value, or returns `None` when at least one does.
fn no_clinical_reason(args: &Args, univariate: &[Value]) -> Option<String> {
    if args.clinical.is_empty() {
        return Some("no clinical variables were given (--clinical)".to_string());
    }
    if univariate.iter().any(|u| u["entered"] == true) {
        return None;
    }
    let p_values: Vec<String> = univariate
        .iter()
        .map(|u| {
            let p = u["p_value"].as_f64().unwrap_or(f64::NAN);
            format!("{} p = {p:.3}", u["name"].as_str().unwrap_or(""))
        })
        .collect();
    Some(format!(
        "no clinical variable passed the univariate screen p < {} ({})",
        args.clinical_p,
        p_values.join(", ")
    ))
}

/// The integrated model when its fit converged, or the reason it was not fitted.
enum IntegratedFit {
    Fitted {
        model: IntegratedModel,
        json: Value,
        auc_train: f64,
        auc_test: Option<f64>,
        cutoff: f64,
        probabilities: Split<f64>,
    },
    NotFitted {
        reason: String,
    },
}

/// Builds the integrated model of a converged fit with its AUCs and Youden cut-off.
fn integrated_model(
    fit: &LogisticFit,
    predictors: &[&[f64]],
    retained: &[(String, Split<f64>)],
    rad_scores: &Split<f64>,
    labels: &Split<bool>,
    names: Vec<String>,
) -> anyhow::Result<IntegratedFit> {
    let (auc_train, auc_test) = model_aucs(fit, retained, Some(rad_scores), labels)?;
    let mut integrated_names = vec!["rad_score".to_string()];
    integrated_names.extend(names);
    let model = IntegratedModel {
        intercept: fit.coefficients[0],
        rad_score_coefficient: fit.coefficients[1],
        variables: variables(fit, retained, 2),
    };
    let probabilities = probabilities(fit, retained, Some(rad_scores), labels);
    debug_assert_eq!(predictors.len(), retained.len() + 1);
    let cutoff = youden(&probabilities.train, &labels.train)
        .context("Youden cut-off of the integrated model")?
        .threshold;
    let json = json!({
        "fitted": true,
        "coefficients": fit.table(&integrated_names),
        "auc": {"train": auc_train, "test": auc_test},
        "youden_threshold": cutoff,
    });
    Ok(IntegratedFit::Fitted {
        model,
        json,
        auc_train,
        auc_test,
        cutoff,
        probabilities,
    })
}

/// The feature extractor's SHA-256 as the signature records it, and where it came from.
struct ExtractorHash {
    sha256: String,
    /// "--extractor-sha256", the side file's path, or "unknown".
    source: String,
}

/// Returns the extractor's SHA-256: --extractor-sha256, else the first word of TABLE.sha256
/// (written by `extract`), else [`UNKNOWN_EXTRACTOR_SHA256`] with a warning, because
/// `analyze` and `run` then reject the signature with every extractor.
fn extractor_hash(args: &Args) -> anyhow::Result<ExtractorHash> {
    if let Some(hash) = &args.extractor_sha256 {
        return Ok(ExtractorHash {
            sha256: hash.to_ascii_lowercase(),
            source: "--extractor-sha256".to_string(),
        });
    }
    let mut side_file = args.table.as_os_str().to_os_string();
    side_file.push(".sha256");
    let side_file = PathBuf::from(side_file);
    if !side_file.exists() {
        log::warn!(
            "no --extractor-sha256 given and no {}: the signature records its feature \
             extractor as unknown, and analyze and run will reject it; give \
             --extractor-sha256 HEX to fit one they accept",
            side_file.display()
        );
        return Ok(ExtractorHash {
            sha256: UNKNOWN_EXTRACTOR_SHA256.to_string(),
            source: "unknown".to_string(),
        });
    }
    let text = std::fs::read_to_string(&side_file)
        .with_context(|| format!("cannot read {}", side_file.display()))?;
    let hash = text.split_whitespace().next().unwrap_or("");
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{} does not start with a 64-digit SHA-256: give --extractor-sha256",
            side_file.display()
        );
    }
    log::info!("extractor SHA-256 {hash} read from {}", side_file.display());
    Ok(ExtractorHash {
        sha256: hash.to_ascii_lowercase(),
        source: side_file.display().to_string(),
    })
}

/// The facts a researcher needs to repeat a fit: the build, the table's contents and the
/// options that decide the result, defaults included.
struct Provenance {
    table_sha256: String,
    /// The fit's options as a `train` command line, with every default spelled out.
    options: String,
    extractor: ExtractorHash,
}

impl Provenance {
    fn new(args: &Args, extractor: &ExtractorHash) -> anyhow::Result<Provenance> {
        Ok(Provenance {
            table_sha256: file_sha256(&args.table)?,
            options: fit_options(args),
            extractor: ExtractorHash {
                sha256: extractor.sha256.clone(),
                source: extractor.source.clone(),
            },
        })
    }

    /// Formats the one-line text that the signature file records.
    fn text(&self, args: &Args) -> String {
        let extractor = if self.extractor.source == "unknown" {
            "extractor unknown (no --extractor-sha256)".to_string()
        } else {
            format!(
                "extractor SHA-256 {} from {}",
                self.extractor.sha256, self.extractor.source
            )
        };
        format!(
            "ceus-edge {} train --table {} {}; table SHA-256 {}; {extractor}",
            env!("CARGO_PKG_VERSION"),
            args.table.display(),
            self.options,
            self.table_sha256
        )
    }

    fn json(&self) -> Value {
        let known = self.extractor.source != "unknown";
        json!({
            "ceus_edge_version": env!("CARGO_PKG_VERSION"),
            "command_line": std::env::args().collect::<Vec<String>>(),
            "fit_options": self.options,
            "table_sha256": self.table_sha256,
            "extractor_sha256": known.then_some(&self.extractor.sha256),
            "extractor_sha256_source": self.extractor.source,
        })
    }
}

/// Formats the options that decide the fit as command-line options, defaults included, so
/// that a later build with other defaults can still repeat it. Output options (--out,
/// --report, --json, --jobs) do not change the fit and are left out.
fn fit_options(args: &Args) -> String {
    let mut options = vec![
        format!("--label {}", args.label),
        format!("--features-prefix {}", args.features_prefix),
        format!("--feature-dimension {}", args.feature_dimension),
    ];
    if !args.clinical.is_empty() {
        options.push(format!("--clinical {}", args.clinical.join(",")));
        options.push(format!("--clinical-p {}", args.clinical_p));
    }
    match &args.split_column {
        Some(column) => options.push(format!("--split-column {column}")),
        None => options.push(format!("--test-fraction {}", args.test_fraction)),
    }
    match &args.fold_column {
        Some(column) => options.push(format!("--fold-column {column}")),
        None => options.push(format!("--folds {}", args.folds)),
    }
    options.push(format!("--seed {}", args.seed));
    let lambda = match args.lambda {
        LambdaChoice::OneSe => "1se",
        LambdaChoice::Min => "min",
    };
    options.push(format!("--lambda {lambda}"));
    if let Some(ratio) = args.lambda_min_ratio {
        options.push(format!("--lambda-min-ratio {ratio}"));
    }
    if args.demo {
        options.push("--demo".to_string());
    }
    options.join(" ")
}

/// Computes the SHA-256 (lowercase hex) of a file, read in pieces.
fn file_sha256(path: &std::path::Path) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let mut file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {} to hash it", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {} to hash it", path.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Clinical variables of a fit whose first clinical coefficient is at `offset`.
///
/// The valid range is the range observed on the training rows: `analyze` rejects a patient
/// outside it, and `evaluate` extrapolates and counts such values.
fn variables(
    fit: &LogisticFit,
    retained: &[(String, Split<f64>)],
    offset: usize,
) -> Vec<ClinicalVariable> {
    retained
        .iter()
        .enumerate()
        .map(|(k, (name, values))| ClinicalVariable {
            name: name.clone(),
            unit: String::new(),
            min: values.train.iter().copied().fold(f64::INFINITY, f64::min),
            max: values
                .train
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max),
            coefficient: fit.coefficients[offset + k],
        })
        .collect()
}

/// Training and test AUCs of a fitted model's linear predictor.
fn model_aucs(
    fit: &LogisticFit,
    retained: &[(String, Split<f64>)],
    rad_scores: Option<&Split<f64>>,
    labels: &Split<bool>,
) -> anyhow::Result<(f64, Option<f64>)> {
    let eta = linear_predictors(fit, retained, rad_scores, labels);
    let train = auc_delong(&eta.train, &labels.train)?.auc;
    let test = test_auc(&eta.test, &labels.test)?;
    Ok((train, test))
}

/// Predicted probabilities of a fitted model on the training and test rows.
fn probabilities(
    fit: &LogisticFit,
    retained: &[(String, Split<f64>)],
    rad_scores: Option<&Split<f64>>,
    labels: &Split<bool>,
) -> Split<f64> {
    let eta = linear_predictors(fit, retained, rad_scores, labels);
    Split {
        train: eta.train.into_iter().map(sigmoid).collect(),
        test: eta.test.into_iter().map(sigmoid).collect(),
    }
}

/// Linear predictors of a fitted model on the training and test rows; the predictors are
/// the rad-score (when given) followed by the retained clinical variables.
fn linear_predictors(
    fit: &LogisticFit,
    retained: &[(String, Split<f64>)],
    rad_scores: Option<&Split<f64>>,
    labels: &Split<bool>,
) -> Split<f64> {
    let predict = |rows: usize, test: bool| -> Vec<f64> {
        (0..rows)
            .map(|i| {
                let mut row = Vec::new();
                if let Some(scores) = rad_scores {
                    row.push(if test {
                        scores.test[i]
                    } else {
                        scores.train[i]
                    });
                }
                for (_, values) in retained {
                    row.push(if test {
                        values.test[i]
                    } else {
                        values.train[i]
                    });
                }
                fit.linear_predictor(&row)
            })
            .collect()
    };
    Split {
        train: predict(labels.train.len(), false),
        test: predict(labels.test.len(), true),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_signature(
    args: &Args,
    provenance: &Provenance,
    extractor: &str,
    dimension: u32,
    selected: &[&Feature],
    selection: &Selection,
    imaging: &Imaging,
    clinical: &Clinical,
) -> Signature {
    Signature {
        format_version: FORMAT_VERSION,
        demo: args.demo,
        provenance: provenance.text(args),
        extractor_sha256: extractor.to_ascii_lowercase(),
        preprocessing: Preprocessing::default(),
        feature_dimension: dimension,
        rad_score: RadScore {
            feature_indices: selected.iter().map(|f| f.index).collect(),
            means: selected.iter().map(|f| f.mean).collect(),
            std_devs: selected.iter().map(|f| f.std_dev).collect(),
            coefficients: selection.coefficients.clone(),
            intercept: selection.intercept,
        },
        imaging_cutoff: imaging.cutoff,
        integrated_cutoff: clinical.integrated_cutoff,
        clinical_model: clinical.clinical.clone(),
        integrated_model: clinical.integrated.clone(),
        training_aucs: ModelAucs {
            imaging_train: imaging.auc_train,
            imaging_test: imaging.auc_test,
            clinical_train: clinical.aucs[0].0,
            clinical_test: clinical.aucs[0].1,
            integrated_train: clinical.aucs[1].0,
            integrated_test: clinical.aucs[1].1,
        },
    }
}

fn selection_json(args: &Args, selection: &Selection, features: &[Feature]) -> Value {
    let selected: Vec<Value> = selection
        .kept
        .iter()
        .zip(&selection.coefficients)
        .map(|(&k, b)| json!({"name": features[k].name, "index": features[k].index, "coefficient": b}))
        .collect();
    json!({
        "after_mann_whitney": selection.after_mann_whitney,
        "after_spearman": selection.after_spearman,
        "lasso_nonzero": selection.kept.len(),
        "lambda_min": selection.lambda_min,
        "lambda_1se": selection.lambda_1se,
        "lambda_used": if args.lambda == LambdaChoice::Min { "min" } else { "1se" },
        "lambda": selection.lambda,
        "intercept": selection.intercept,
        "selected": selected,
    })
}

fn print_summary(summary: &Value) -> std::io::Result<()> {
    let s = &summary["selection"];
    outln!(
        "features: {} after mann-whitney, {} after spearman, {} in the lasso (lambda {})",
        s["after_mann_whitney"],
        s["after_spearman"],
        s["lasso_nonzero"],
        s["lambda_used"]
    );
    for (name, key) in [
        ("imaging", "imaging_model"),
        ("clinical", "clinical_model"),
        ("integrated", "integrated_model"),
    ] {
        let auc = &summary[key]["auc"];
        if auc.is_object() {
            outln!("{name} auc: train {}, test {}", auc["train"], auc["test"]);
        }
        if let Some(reason) = summary[key]["reason"].as_str() {
            outln!("{name} model not fitted: {reason}");
        }
        if let Some(note) = summary[key]["note"].as_str() {
            outln!("{name} model {note}");
        }
    }
    let provenance = &summary["provenance"];
    match provenance["extractor_sha256"].as_str() {
        Some(hash) => outln!("feature extractor SHA-256 {hash}"),
        None => outln!("feature extractor unknown: analyze and run will reject this signature"),
    }
    outln!(
        "table SHA-256 {}",
        provenance["table_sha256"].as_str().unwrap_or("")
    );
    outln!(
        "signature written to {}",
        summary["signature"].as_str().unwrap_or("")
    );
    Ok(())
}

/// A model of the report: its scores on the training and test rows, and what it uses.
struct ReportModel {
    name: String,
    /// Column name in predictions.csv.
    column: &'static str,
    predictors: String,
    probabilities: Split<f64>,
}

/// Collects the report's models: the imaging model, then the clinical and the integrated
/// model when they were fitted.
fn report_models(
    args: &Args,
    rad_scores: &Split<f64>,
    clinical: &Clinical,
    selected: usize,
) -> Vec<ReportModel> {
    let imaging = |values: &[f64]| -> Vec<f64> {
        values
            .iter()
            .map(|&r| Signature::imaging_probability(r))
            .collect()
    };
    let mut models = vec![ReportModel {
        name: args.imaging_name.clone(),
        column: "imaging",
        predictors: format!("rad-score ({selected} features)"),
        probabilities: Split {
            train: imaging(&rad_scores.train),
            test: imaging(&rad_scores.test),
        },
    }];
    let variables = clinical.retained.join(", ");
    let [clinical_probabilities, integrated_probabilities] = &clinical.probabilities;
    if let Some(probabilities) = clinical_probabilities {
        models.push(ReportModel {
            name: "clinical".to_string(),
            column: "clinical",
            predictors: variables.clone(),
            probabilities: probabilities.clone(),
        });
    }
    if let Some(probabilities) = integrated_probabilities {
        let predictors = if variables.is_empty() {
            "rad-score".to_string()
        } else {
            format!("rad-score, {variables}")
        };
        models.push(ReportModel {
            name: format!("clinical + {}", args.imaging_name),
            column: "integrated",
            predictors,
            probabilities: probabilities.clone(),
        });
    }
    models
}

/// The table's rows as the report needs them: ids, split and labels.
struct ReportRows<'a> {
    table: &'a Table,
    is_test: &'a [bool],
    labels_all: &'a [bool],
    labels: &'a Split<bool>,
}

/// Writes train.md, train.json, predictions.csv and the charts into `directory`.
fn write_report(
    directory: &std::path::Path,
    summary: &Value,
    rows: &ReportRows<'_>,
    models: &[ReportModel],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create report directory {}", directory.display()))?;
    let write = |name: &str, text: String| {
        let path = directory.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };

    let mut groups = vec![Group {
        name: "train".to_string(),
        labels: rows.labels.train.clone(),
    }];
    if !rows.labels.test.is_empty() {
        groups.push(Group {
            name: "test".to_string(),
            labels: rows.labels.test.clone(),
        });
    }
    let scores: Vec<ModelScores> = models
        .iter()
        .map(|m| ModelScores {
            name: m.name.clone(),
            scores: [&m.probabilities.train, &m.probabilities.test][..groups.len()]
                .iter()
                .map(|v| v.to_vec())
                .collect(),
        })
        .collect();
    let charts = report::write_charts(directory, &groups, &scores)?;
    let predictors: Vec<String> = models.iter().map(|m| m.predictors.clone()).collect();

    let mut page = String::from("# Signature fit\n\n");
    page.push_str(&report::auc_table(&groups, &scores, Some(&predictors))?);
    page.push('\n');
    page.push_str(&markdown_page(summary));
    page.push_str("\n## Charts\n\n");
    page.push_str(&report::chart_links(directory, &charts));
    page.push_str(
        "Each row's split and predicted probabilities are in [predictions.csv](predictions.csv).\n",
    );
    write("train.md", page)?;
    write("train.json", serde_json::to_string_pretty(summary)?)?;
    write("predictions.csv", predictions_csv(rows, models))?;
    Ok(())
}

/// Renders predictions.csv: one line per table row, in table order, with the id (the
/// table's "id" column, else the line number), split, label and each model's probability.
fn predictions_csv(rows: &ReportRows<'_>, models: &[ReportModel]) -> String {
    let ids: Vec<String> = match rows.table.text_column("id") {
        Ok(ids) => ids.into_iter().map(str::to_string).collect(),
        Err(_) => rows.table.lines.iter().map(usize::to_string).collect(),
    };
    let mut text = String::from("id,split,label");
    for model in models {
        text.push(',');
        text.push_str(model.column);
    }
    text.push('\n');
    let (mut train, mut test) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let (split, k) = if rows.is_test[i] {
            test += 1;
            ("test", test - 1)
        } else {
            train += 1;
            ("train", train - 1)
        };
        text.push_str(&format!("{id},{split},{}", u8::from(rows.labels_all[i])));
        for model in models {
            let values = if rows.is_test[i] {
                &model.probabilities.test
            } else {
                &model.probabilities.train
            };
            text.push_str(&format!(",{}", values[k]));
        }
        text.push('\n');
    }
    text
}

/// Renders the selection counts, the models that were not fitted, the selected features
/// and the coefficient tables as Markdown.
fn markdown_page(summary: &Value) -> String {
    let s = &summary["selection"];
    let mut page = String::from("## Feature selection\n\n| step | features |\n|---|---|\n");
    page.push_str(&format!(
        "| Mann-Whitney p < {MANN_WHITNEY_P} | {} |\n",
        s["after_mann_whitney"]
    ));
    page.push_str(&format!(
        "| Spearman abs(rho) <= {SPEARMAN_THRESHOLD} | {} |\n",
        s["after_spearman"]
    ));
    page.push_str(&format!("| LASSO non-zero | {} |\n\n", s["lasso_nonzero"]));

    for (name, key) in [
        ("clinical", "clinical_model"),
        ("integrated", "integrated_model"),
    ] {
        if let Some(text) = summary[key]["reason"].as_str() {
            page.push_str(&format!("The {name} model was not fitted: {text}.\n\n"));
        }
        if let Some(text) = summary[key]["note"].as_str() {
            page.push_str(&format!("The {name} model was {text}.\n\n"));
        }
    }

    page.push_str(&format!(
        "## Selected features\n\nLASSO at lambda {} ({}), intercept {}.\n\n\
         | feature | index | coefficient |\n|---|---|---|\n",
        s["lambda"],
        s["lambda_used"].as_str().unwrap_or(""),
        s["intercept"]
    ));
    for feature in s["selected"].as_array().into_iter().flatten() {
        page.push_str(&format!(
            "| {} | {} | {} |\n",
            feature["name"].as_str().unwrap_or(""),
            feature["index"],
            feature["coefficient"]
        ));
    }

    for (title, key) in [
        ("Clinical model", "clinical_model"),
        ("Integrated model", "integrated_model"),
    ] {
        let rows: Vec<CoefficientRow> =
            serde_json::from_value(summary[key]["coefficients"].clone()).unwrap_or_default();
        if rows.is_empty() {
            continue;
        }
        page.push_str(&format!("\n## {title}\n\n"));
        page.push_str(
            "| variable | estimate | SE | z | p | OR (95% CI) |\n|---|---|---|---|---|---|\n",
        );
        for r in rows {
            page.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.3} | {:.4} | {:.3} ({:.3}-{:.3}) |\n",
                r.name, r.estimate, r.std_error, r.z, r.p_value, r.odds_ratio, r.ci_low, r.ci_high
            ));
        }
    }
    page.push_str(&provenance_section(&summary["provenance"]));
    page
}

/// Renders the provenance as a Markdown section: what repeating the fit needs.
fn provenance_section(provenance: &Value) -> String {
    let extractor = match provenance["extractor_sha256"].as_str() {
        Some(hash) => format!(
            "`{hash}` (from {})",
            provenance["extractor_sha256_source"].as_str().unwrap_or("")
        ),
        None => "unknown: no --extractor-sha256 was given".to_string(),
    };
    format!(
        "\n## Provenance\n\n- ceus-edge {}\n- table SHA-256 `{}`\n- options \
         `{}`\n- feature extractor SHA-256 {extractor}\n",
        provenance["ceus_edge_version"].as_str().unwrap_or(""),
        provenance["table_sha256"].as_str().unwrap_or(""),
        provenance["fit_options"].as_str().unwrap_or("")
    )
}
