//! The DenseNet-201 feature extractor: an ONNX model run by tract.
//!
//! A model file comes with a TOML manifest (see models/README.md) whose `model.sha256`
//! must match the file: the signature fitted on an extractor's features is only valid for
//! that exact extractor. Loading fixes the input fact to 1x3x224x224 f32, optimises the
//! graph once and keeps the runnable plan; each [`Extractor::run`] then reuses it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;

/// Input shape of the extractor: one NCHW RGB image of 224x224.
pub const INPUT_SHAPE: [usize; 4] = [1, 3, 224, 224];
/// Length of the pooled feature vector.
pub const FEATURES: usize = 1920;
/// Side of the final feature map.
pub const MAP_SIDE: usize = 7;

/// Error from loading or running the extractor.
#[derive(Debug, thiserror::Error)]
pub enum ExtractorError {
    /// A model or manifest file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No manifest file exists for the model.
    #[error(
        "no manifest {} for model {}: keep the .toml written by scripts/build_extractor.py \
         beside the model, or give its path with --manifest",
        manifest.display(),
        model.display()
    )]
    ManifestNotFound { manifest: PathBuf, model: PathBuf },
    /// The manifest is missing fields or is not valid TOML.
    #[error("invalid model manifest {}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    /// The model file is not the one its manifest describes.
    #[error(
        "SHA-256 of {} is {actual} but its manifest {} expects {expected}: \
         rebuild the model with scripts/build_extractor.py or use the manifest written with it",
        model.display(),
        manifest.display()
    )]
    HashMismatch {
        model: PathBuf,
        manifest: PathBuf,
        expected: String,
        actual: String,
    },
    /// tract could not load, type, optimise or run the model.
    #[error("{context}: {source}")]
    Tract {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The model's outputs are not the two DenseNet-201 feature tensors.
    #[error("model {} output {name} has shape {shape:?}, expected {expected:?}", path.display())]
    OutputShape {
        path: PathBuf,
        name: &'static str,
        shape: Vec<usize>,
        expected: Vec<usize>,
    },
    /// The caller's tensor is not 1x3x224x224.
    #[error("input tensor has shape {shape:?}, expected {INPUT_SHAPE:?} (1x3x224x224 NCHW)")]
    InputShape { shape: Vec<usize> },
    /// The thread count is 0.
    #[error("thread count must be at least 1, got {0}")]
    Threads(usize),
}

fn tract_error(context: String) -> impl FnOnce(anyhow::Error) -> ExtractorError {
    move |error| ExtractorError::Tract {
        context,
        source: error.into(),
    }
}

/// The part of a model manifest the extractor checks; other tables are for people.
#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub model: ManifestModel,
}

/// The `[model]` table of a manifest.
#[derive(Debug, Deserialize)]
pub struct ManifestModel {
    /// Lowercase hex SHA-256 of the model file.
    pub sha256: String,
    /// Whether the weights are the seeded demo ones, unfit for clinical use.
    #[serde(default)]
    pub demo: bool,
    /// `int8` or `f32`, as written by scripts/build_extractor.py.
    #[serde(default)]
    pub precision: String,
}

impl Manifest {
    /// Reads a manifest TOML file.
    pub fn read(path: &Path) -> Result<Manifest, ExtractorError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExtractorError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| ExtractorError::Manifest {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
        let hash = &manifest.model.sha256;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ExtractorError::Manifest {
                path: path.to_path_buf(),
                reason: format!("model.sha256 `{hash}` is not 64 hexadecimal digits"),
            });
        }
        Ok(manifest)
    }
}

/// Returns the manifest path of a model: the same path with the extension `.toml`.
pub fn manifest_path(model: &Path) -> PathBuf {
    model.with_extension("toml")
}

/// Settings for [`Extractor::load`].
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Manifest to check the model against; `None` uses [`manifest_path`].
    pub manifest: Option<PathBuf>,
    /// Threads for tract's matrix products; 1 runs everything on the calling thread.
    ///
    /// tract 0.23.9 takes the tract-linalg executor attached to the plan (a rayon pool of
    /// this many threads) in matrix products, which include convolutions, in weight
    /// packing, and in a few other operators (max pool, reductions, depth-wise convolution).
    /// Everything else runs on the calling thread.
    pub threads: usize,
    /// Rewrite the QDQ convolutions into fused int8 ones (see [`crate::quant`]) before
    /// tract optimises the graph. `false` runs the graph as tract loads it, which is
    /// the reference the fused path is tested against. Models without QDQ
    /// convolutions are unaffected either way.
    pub fuse_int8: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            manifest: None,
            threads: 1,
            fuse_int8: true,
        }
    }
}

/// The outputs of one run.
#[derive(Clone, Debug)]
pub struct Features {
    /// The 1920 global-average-pooled post-ReLU features.
    pub pooled: Vec<f32>,
    /// The 1920x7x7 post-ReLU map before pooling, channel-major (C, H, W).
    pub map: Vec<f32>,
}

/// A loaded, optimised extractor ready to run.
#[derive(Debug)]
pub struct Extractor {
    plan: Arc<TypedRunnableModel>,
    path: PathBuf,
    sha256: String,
    demo: bool,
    threads: usize,
    startup: Duration,
}

impl Extractor {
    /// Loads `path`, checks its SHA-256 against the manifest and optimises the graph.
    ///
    /// Errors: [`ExtractorError::HashMismatch`] when the file differs from its manifest,
    /// [`ExtractorError::Tract`] when tract cannot load or optimise it, and
    /// [`ExtractorError::OutputShape`] when it is not a 1920-feature DenseNet-201.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Extractor, ExtractorError> {
        if options.threads == 0 {
            return Err(ExtractorError::Threads(0));
        }
        let started = Instant::now();

        if let Err(source) = std::fs::metadata(path) {
            return Err(ExtractorError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
        let manifest_file = options
            .manifest
            .clone()
            .unwrap_or_else(|| manifest_path(path));
        if !manifest_file.exists() {
            return Err(ExtractorError::ManifestNotFound {
                manifest: manifest_file,
                model: path.to_path_buf(),
            });
        }
        let manifest = Manifest::read(&manifest_file)?;
        let sha256 = verify_sha256(path, &manifest_file, &manifest.model.sha256)?;

        let plan = optimise(path, options)?;
        check_outputs(&plan, path)?;

        let startup = started.elapsed();
        let demo = if manifest.model.demo {
            ", demo weights"
        } else {
            ""
        };
        log::info!(
            "loaded feature extractor {} ({}{demo}) in {:.0} ms with {} thread(s)",
            path.display(),
            manifest.model.precision,
            startup.as_secs_f64() * 1e3,
            options.threads
        );
        Ok(Extractor {
            plan,
            path: path.to_path_buf(),
            sha256,
            demo: manifest.model.demo,
            threads: options.threads,
            startup,
        })
    }

    /// Runs the model on a 1x3x224x224 NCHW tensor given as `shape` and row-major `data`.
    pub fn run(&self, shape: &[usize], data: &[f32]) -> Result<Features, ExtractorError> {
        if shape != INPUT_SHAPE || data.len() != INPUT_SHAPE.iter().product::<usize>() {
            return Err(ExtractorError::InputShape {
                shape: shape.to_vec(),
            });
        }
        let input = Tensor::from_shape(&INPUT_SHAPE, data)
            .map_err(tract_error("cannot build the input tensor".to_string()))?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(tract_error(format!(
                "running {} failed",
                self.path.display()
            )))?;

        let pooled = output_values(&outputs, 0, &self.path)?;
        let map = output_values(&outputs, 1, &self.path)?;
        Ok(Features { pooled, map })
    }

    /// Lowercase hex SHA-256 of the model file, as checked against the manifest.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Returns whether the manifest marks the weights as a demo, unfit for clinical use.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// Thread count of the matrix products.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Wall time of [`Extractor::load`]: hashing, parsing and optimising.
    pub fn startup(&self) -> Duration {
        self.startup
    }
}

/// Hashes the model file and compares it with the manifest; returns the hash.
fn verify_sha256(model: &Path, manifest: &Path, expected: &str) -> Result<String, ExtractorError> {
    let bytes = std::fs::read(model).map_err(|source| ExtractorError::Io {
        path: model.to_path_buf(),
        source,
    })?;
    let actual: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(ExtractorError::HashMismatch {
            model: model.to_path_buf(),
            manifest: manifest.to_path_buf(),
            expected: expected.to_ascii_lowercase(),
            actual,
        });
    }
    Ok(actual)
}

/// Parses the ONNX file, fixes the input fact and builds the optimised runnable plan.
fn optimise(path: &Path, options: &LoadOptions) -> Result<Arc<TypedRunnableModel>, ExtractorError> {
    let context = |step: &str| format!("{step} {} failed", path.display());
    let fact = f32::fact(INPUT_SHAPE).into();
    let onnx = crate::quant::onnx();
    let mut proto = onnx
        .proto_model_for_path(path)
        .map_err(tract_error(context("reading")))?;
    if options.fuse_int8 {
        let report = crate::quant::fuse_qdq_convs(&mut proto)
            .map_err(tract_error(context("fusing the int8 convolutions of")))?;
        log::debug!(
            "fused {} QDQ convolutions of {} ({} left unfused, {} nodes removed)",
            report.fused,
            path.display(),
            report.skipped,
            report.removed
        );
    }
    let threads = options.threads;
    let model = onnx
        .model_for_proto_model(&proto)
        .map_err(tract_error(context("loading")))?
        .with_input_fact(0, fact)
        .map_err(tract_error(context("fixing the 1x3x224x224 input of")))?
        .into_optimized()
        .map_err(tract_error(context("optimising")))?;
    if log::log_enabled!(log::Level::Debug) {
        let mut ops = std::collections::BTreeMap::<String, usize>::new();
        for node in model.nodes() {
            *ops.entry(node.op.name().to_string()).or_default() += 1;
        }
        log::debug!("optimised plan of {}: {ops:?}", path.display());
    }

    let executor = if threads > 1 {
        Executor::multithread(threads)
    } else {
        Executor::SingleThread
    };
    let options = RunOptions {
        executor: Some(executor),
        ..RunOptions::default()
    };
    model
        .into_runnable_with_options(&options)
        .map_err(tract_error(context("planning")))
}

fn check_outputs(plan: &TypedRunnableModel, path: &Path) -> Result<(), ExtractorError> {
    let model = plan.model();
    let expected: [(&'static str, Vec<usize>); 2] = [
        ("features", vec![1, FEATURES]),
        ("feature_map", vec![1, FEATURES, MAP_SIDE, MAP_SIDE]),
    ];
    for (slot, (name, shape)) in expected.into_iter().enumerate() {
        let outlet = model
            .output_outlets()
            .ok()
            .and_then(|outlets| outlets.get(slot).copied());
        let actual = outlet
            .and_then(|o| model.outlet_fact(o).ok())
            .and_then(|fact| fact.shape.as_concrete().map(|dims| dims.to_vec()))
            .unwrap_or_default();
        if actual != shape {
            return Err(ExtractorError::OutputShape {
                path: path.to_path_buf(),
                name,
                shape: actual,
                expected: shape,
            });
        }
    }
    Ok(())
}

fn output_values(
    outputs: &TVec<TValue>,
    slot: usize,
    path: &Path,
) -> Result<Vec<f32>, ExtractorError> {
    let value = outputs.get(slot).ok_or_else(|| ExtractorError::Tract {
        context: format!("running {}", path.display()),
        source: format!("output {slot} is missing").into(),
    })?;
    let view = value
        .to_plain_array_view::<f32>()
        .map_err(tract_error(format!(
            "reading output {slot} of {}",
            path.display()
        )))?;
    Ok(view.iter().copied().collect())
}
