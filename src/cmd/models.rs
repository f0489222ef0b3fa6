//! The feature extractor and signature a scoring command loads, with their default paths.

use std::path::PathBuf;

use anyhow::Context;

use ceus_edge::extractor::{Extractor, LoadOptions, FEATURES as FEATURE_DIMENSION};
use ceus_edge::signature::Signature;

/// File name of the bundled int8 extractor inside the models folder.
pub const DEFAULT_MODEL: &str = "densenet201-int8.onnx";
/// File name of the bundled demo signature inside the models folder.
pub const DEFAULT_SIGNATURE: &str = "demo-signature.bin";

#[derive(clap::Args)]
pub struct ModelArgs {
    /// Feature extractor (ONNX, with its manifest beside it as FILE.toml). Default: the
    /// bundled demo extractor in the models folder.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// Signature file written by `ceus-edge train`. Default: the bundled demo signature.
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,

    /// Threads for the feature extractor. Default 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: Option<u16>,
}

impl ModelArgs {
    /// Fills the options the command line left out, from a board profile. A bare model
    /// file name is looked up in the models folder.
    pub fn fill_missing(
        &mut self,
        model: Option<PathBuf>,
        signature: Option<PathBuf>,
        threads: Option<u16>,
    ) {
        if self.model.is_none() {
            self.model = model.map(|path| {
                if path.components().count() == 1 {
                    models_dir().join(path)
                } else {
                    path
                }
            });
        }
        self.signature = self.signature.take().or(signature);
        self.threads = self.threads.or(threads);
    }

    /// Loads the extractor and the signature and checks that they belong together.
    pub fn load(&self) -> anyhow::Result<(Extractor, Signature)> {
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| models_dir().join(DEFAULT_MODEL));
        let signature_path = self
            .signature
            .clone()
            .unwrap_or_else(|| models_dir().join(DEFAULT_SIGNATURE));

        if self.signature.is_none() && !signature_path.exists() {
            anyhow::bail!(
                "the demo signature {} is missing: run scripts/build-demo-signature.sh, or give --signature FILE from `ceus-edge train`",
                signature_path.display()
            );
        }
        let signature = Signature::load(&signature_path)
            .with_context(|| format!("cannot load signature {}", signature_path.display()))?;
        if signature.feature_dimension as usize != FEATURE_DIMENSION {
            anyhow::bail!(
                "signature {} was fitted on {} features, but the extractor gives {FEATURE_DIMENSION}: refit it with `ceus-edge train --feature-dimension {FEATURE_DIMENSION}`",
                signature_path.display(),
                signature.feature_dimension
            );
        }
        let options = LoadOptions {
            threads: usize::from(self.threads.unwrap_or(1)),
            ..LoadOptions::default()
        };
        let extractor = Extractor::load(&model, &options)
            .with_context(|| format!("cannot load feature extractor {}", model.display()))?;
        signature
            .check_extractor(extractor.sha256())
            .with_context(|| {
                format!(
                    "signature {} does not fit {}",
                    signature_path.display(),
                    model.display()
                )
            })?;
        Ok((extractor, signature))
    }
}

/// Returns the models folder: `CEUS_EDGE_MODELS` when set, else `models/` in the working directory
/// when present, else the source tree's `models/` (for `cargo run` from anywhere).
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CEUS_EDGE_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models");
    if local.join(DEFAULT_MODEL).exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}
