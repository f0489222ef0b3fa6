//! `ceus-edge infer`: run the feature extractor on a tensor or an image.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use ceus_edge::extractor::{self, Extractor, LoadOptions};
use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::geometry::Rect;
use ceus_edge::npy;
use ceus_edge::preprocess::{self, ResizeMode};
use ceus_edge::source::Limits;

#[derive(clap::Args)]
pub struct Args {
    /// ONNX feature extractor; its manifest is the same path ending in .toml.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// Manifest to check the model's SHA-256 against, instead of the one beside it.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,

    /// Input tensor: float32 .npy of shape 1x3x224x224 (NCHW, already preprocessed).
    #[arg(
        long,
        value_name = "X.npy",
        conflicts_with = "image",
        required_unless_present = "image"
    )]
    input: Option<PathBuf>,

    /// Input image (PNG, grey or colour) to preprocess instead of a tensor.
    #[arg(long, value_name = "FILE.png")]
    image: Option<PathBuf>,

    /// Region of interest of --image in pixels; the whole image when absent.
    #[arg(long, value_name = "X,Y,W,H", requires = "image")]
    roi: Option<Rect>,

    /// Resize mode of --image's ROI: squash (stretch to 224x224) or crop (short side, centre).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "squash",
        requires = "image"
    )]
    resize: ResizeMode,

    /// Write the preprocessed 1x3x224x224 tensor of --image here (.npy).
    #[arg(long, value_name = "T.npy", requires = "image")]
    save_tensor: Option<PathBuf>,

    /// Write the pooled features (1x1920, float32 .npy) here.
    #[arg(long, value_name = "Y.npy")]
    output: Option<PathBuf>,

    /// Write the 1x1920x7x7 feature map (float32 .npy) here.
    #[arg(long, value_name = "FILE.npy")]
    feature_map: Option<PathBuf>,

    /// Time this many runs after one warm-up run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    repeat: Option<u32>,

    /// Threads for tract's matrix products.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,

    /// Print timings and the model's identity as one JSON object on stdout.
    #[arg(long)]
    json: bool,

    /// Run the QDQ convolutions as tract loads them (f32 between quantise and
    /// dequantise passes) instead of as fused int8 convolutions; for comparisons.
    #[arg(long)]
    no_int8_fusion: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (shape, tensor) = input_tensor(&args)?;
    if let Some(path) = &args.save_tensor {
        npy::write_f32(path, &shape, &tensor)?;
    }

    let Some(model) = &args.model else {
        if args.output.is_some() || args.feature_map.is_some() || args.repeat.is_some() {
            bail!("no model given: add --model FILE to compute features");
        }
        if args.save_tensor.is_none() {
            bail!("nothing to do: give --model FILE, or --save-tensor T.npy with --image");
        }
        return Ok(());
    };

    let options = LoadOptions {
        manifest: args.manifest.clone(),
        threads: usize::from(args.threads),
        fuse_int8: !args.no_int8_fusion,
    };
    let extractor = Extractor::load(model, &options)
        .with_context(|| format!("cannot load the feature extractor {}", model.display()))?;
    let features = extractor.run(&shape, &tensor)?;
    let latencies = time_runs(&extractor, &shape, &tensor, args.repeat)?;

    write_outputs(&args, &features)?;
    report(&args, &extractor, &latencies)?;
    Ok(())
}

/// Reads the tensor to run from --input, or preprocesses --image into it.
fn input_tensor(args: &Args) -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
    if let Some(path) = &args.input {
        let array = npy::read_f32(path)?;
        if array.shape != extractor::INPUT_SHAPE {
            bail!(
                "{} has shape {:?}, expected [1, 3, 224, 224]: preprocess with --image or \
                 `ceus-edge infer --image F --save-tensor T.npy`",
                path.display(),
                array.shape
            );
        }
        return Ok((array.shape, array.data));
    }
    let Some(path) = &args.image else {
        bail!("no input: give --input X.npy or --image FILE.png");
    };
    let frame = read_png(path)?;
    let tensor = preprocess::preprocess(&frame, args.roi, args.resize)
        .with_context(|| format!("cannot preprocess {}", path.display()))?;
    Ok((extractor::INPUT_SHAPE.to_vec(), tensor))
}

/// Decodes a PNG to an 8-bit grey or RGB frame (alpha dropped, 16-bit reduced to 8).
pub(super) fn read_png(path: &Path) -> anyhow::Result<Frame> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("invalid PNG {}", path.display()))?;

    let info = reader.info();
    let (width, height) = (info.width, info.height);
    Limits::default()
        .check_size(u64::from(width), u64::from(height), 4)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut buffer = vec![0; reader.output_buffer_size().context("PNG too large")?];
    let output = reader
        .next_frame(&mut buffer)
        .with_context(|| format!("cannot decode {}", path.display()))?;

    let (color, _) = reader.output_color_type();
    let channels = color.samples();
    let format = if channels <= 2 {
        PixelFormat::Gray8
    } else {
        PixelFormat::Rgb8
    };
    let mut frame = Frame::new(width, height, format);
    let keep = format.bytes_per_pixel();
    let stride = frame.stride();
    let rows = frame.data.chunks_exact_mut(stride);
    for (row, line) in rows.zip(buffer.chunks_exact(output.line_size)) {
        for (pixel, samples) in row.chunks_exact_mut(keep).zip(line.chunks_exact(channels)) {
            pixel.copy_from_slice(&samples[..keep]);
        }
    }
    Ok(frame)
}

/// Times `repeat` runs (after the run that produced the outputs, the warm-up); returns
/// the latencies in milliseconds, sorted.
fn time_runs(
    extractor: &Extractor,
    shape: &[usize],
    tensor: &[f32],
    repeat: Option<u32>,
) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for _ in 0..repeat.unwrap_or(0) {
        let started = Instant::now();
        extractor.run(shape, tensor)?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

fn write_outputs(args: &Args, features: &extractor::Features) -> anyhow::Result<()> {
    if let Some(path) = &args.output {
        npy::write_f32(path, &[1, extractor::FEATURES], &features.pooled)?;
    }
    if let Some(path) = &args.feature_map {
        let side = extractor::MAP_SIDE;
        npy::write_f32(path, &[1, extractor::FEATURES, side, side], &features.map)?;
    }
    Ok(())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

fn report(args: &Args, extractor: &Extractor, latencies: &[f64]) -> std::io::Result<()> {
    let startup_ms = extractor.startup().as_secs_f64() * 1e3;
    if args.json {
        let mut json = serde_json::json!({
            "sha256": extractor.sha256(),
            "demo": extractor.is_demo(),
            "threads": extractor.threads(),
            "startup_ms": startup_ms,
        });
        if !latencies.is_empty() {
            json["runs"] = latencies.len().into();
            json["latency_ms"] = serde_json::json!({
                "median": median(latencies),
                "p95": percentile(latencies, 95.0),
                "min": latencies[0],
            });
        }
        outln!("{json}");
    } else if !latencies.is_empty() {
        outln!(
            "start-up {startup_ms:.0} ms; latency over {} runs: median {:.1} ms, p95 {:.1} ms, \
             min {:.1} ms ({} thread(s))",
            latencies.len(),
            median(latencies),
            percentile(latencies, 95.0),
            latencies[0],
            extractor.threads()
        );
    }
    Ok(())
}
