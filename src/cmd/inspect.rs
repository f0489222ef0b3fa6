//! `ceus-edge inspect`: what a DICOM file, Y4M stream or PNG folder contains, and what a
//! signature or feature extractor is.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ceus_edge::extractor::{manifest_path, Extractor, LoadOptions, Manifest};
use ceus_edge::frame::Frame;
use ceus_edge::source::dicom::{DicomHeader, DicomSource, UltrasoundRegion};
use ceus_edge::source::{self, FrameSource, OpenOptions, SourceError, SourceInfo, TimingSource};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct Args {
    /// DICOM file, Y4M file, folder of PNG frames, signature file (printed as TOML), or
    /// feature extractor (`.onnx`, checked against its manifest and loaded).
    file: PathBuf,

    /// Also print patient and visit attributes (name, ID, birth date, accession number,
    /// institution). They are hidden by default.
    #[arg(long)]
    show_phi: bool,

    /// Print one JSON object instead of aligned text.
    #[arg(long)]
    json: bool,

    /// Also decode every frame, to check that the whole file is readable.
    #[arg(long)]
    check: bool,

    /// Frame rate for a PNG folder or another input without timing, in frames per second.
    #[arg(long, value_name = "F", value_parser = super::tic::parse_fps)]
    fps: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if has_signature_magic(&args.file) {
        return print_signature(&args);
    }
    if args
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return print_model(&args);
    }
    let (mut report, mut source): (Report, Box<dyn FrameSource>) = if is_dicom(&args.file)? {
        let (source, timing_missing) = open_dicom(&args.file)?;
        (
            dicom_report(&args.file, &source, timing_missing, args.show_phi)?,
            Box::new(source),
        )
    } else {
        let options = OpenOptions {
            fps: args.fps,
            ..OpenOptions::default()
        };
        let source = source::open(&args.file, &options)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        (source_report(&args.file, source.info()), source)
    };
    if args.check {
        let decoded = decode_all(source.as_mut())
            .with_context(|| format!("cannot decode {}", args.file.display()))?;
        report.rows.push(row("decoded frames", decoded));
        if let Value::Object(map) = &mut report.json {
            map.insert("decoded_frames".into(), json!(decoded));
        }
    }

    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report.json)?);
    } else {
        out!("{}", aligned(&report.rows));
    }
    Ok(())
}

/// Tests whether `path` is a file that starts with the signature file's magic number.
fn has_signature_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok_and(|()| magic == ceus_edge::signature::MAGIC)
}

/// Prints a signature file as its TOML export, or as JSON with --json.
fn print_signature(args: &Args) -> anyhow::Result<()> {
    let signature = ceus_edge::signature::Signature::load(&args.file)
        .with_context(|| format!("cannot load signature {}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&signature)?);
    } else {
        print!("{}", signature.to_toml()?);
    }
    Ok(())
}

/// Checks a feature extractor against its manifest, loads it, and prints what it is.
fn print_model(args: &Args) -> anyhow::Result<()> {
    let extractor = Extractor::load(&args.file, &LoadOptions::default())
        .with_context(|| format!("cannot load model {}", args.file.display()))?;
    let manifest_file = manifest_path(&args.file);
    let manifest = Manifest::read(&manifest_file)?;
    let startup_ms = extractor.startup().as_secs_f64() * 1000.0;
    let report = Report {
        rows: vec![
            row("model", args.file.display()),
            row("manifest", manifest_file.display()),
            row("sha256", extractor.sha256()),
            row("precision", &manifest.model.precision),
            row("demo weights", extractor.is_demo()),
            row("threads", extractor.threads()),
            row("load time", format!("{startup_ms:.0} ms")),
        ],
        json: json!({
            "model": args.file.display().to_string(),
            "manifest": manifest_file.display().to_string(),
            "sha256": extractor.sha256(),
            "precision": manifest.model.precision,
            "demo": extractor.is_demo(),
            "threads": extractor.threads(),
            "load_ms": startup_ms,
        }),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report.json)?);
    } else {
        out!("{}", aligned(&report.rows));
    }
    Ok(())
}

/// One report in both output forms.
struct Report {
    rows: Vec<(String, String)>,
    json: Value,
}

/// Mirrors the dispatch of [`source::open`]: a file that is neither a folder nor Y4M is
/// read as DICOM.
fn is_dicom(path: &Path) -> anyhow::Result<bool> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
    if metadata.is_dir() {
        return Ok(false);
    }
    let y4m = source::y4m::has_signature(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(!y4m)
}

/// Reads every frame and returns how many there were.
fn decode_all(source: &mut dyn FrameSource) -> Result<u64, SourceError> {
    let mut frame = Frame::empty();
    let mut count = 0;
    while source.read_frame(&mut frame)? {
        count += 1;
    }
    Ok(count)
}

fn dicom_report(
    path: &Path,
    source: &DicomSource,
    timing_missing: bool,
    show_phi: bool,
) -> anyhow::Result<Report> {
    let header = source.header();
    let mut rows = vec![
        row("file", path.display()),
        row("container", "DICOM"),
        row(
            "transfer syntax",
            format!(
                "{} ({})",
                header.transfer_syntax.name, header.transfer_syntax.uid
            ),
        ),
        row("manufacturer", or_none(&header.manufacturer)),
        row("model", or_none(&header.model)),
        row("modality", or_none(&header.modality)),
        row("SOP class", sop_class_text(header)),
        row("size", format!("{} x {}", header.columns, header.rows)),
        row("frames", header.frames),
        row("photometric", header.photometric.as_str()),
        row("samples per pixel", header.samples_per_pixel),
        row("bits allocated", header.bits_allocated),
        row("bits stored", header.bits_stored),
        row("planar configuration", header.planar_configuration),
        row("timing", timing_text(header, timing_missing)),
        row("regions", header.regions.len()),
    ];
    for (i, region) in header.regions.iter().enumerate() {
        rows.push(row(&format!("  region {i}"), region_text(region)));
    }
    if show_phi {
        for (keyword, value) in &header.phi.attributes {
            rows.push(row(keyword, value));
        }
    } else {
        rows.push(row("PHI", "hidden (show with --show-phi)"));
    }

    let mut json = serde_json::to_value(header)?;
    if let Value::Object(map) = &mut json {
        map.insert("file".into(), json!(path.display().to_string()));
        map.insert("container".into(), json!("DICOM"));
        map.insert("timing_source".into(), timing_json(header, timing_missing));
        map.insert("fps".into(), json!(source_fps(source, timing_missing)));
        if show_phi {
            let phi: serde_json::Map<String, Value> = header
                .phi
                .attributes
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            map.insert("phi".into(), Value::Object(phi));
        }
        if timing_missing {
            map.remove("timing");
        }
    }
    Ok(Report { rows, json })
}

/// Opens the file, falling back to a nominal rate when it carries no timing so the rest of
/// the header can still be shown. The flag is true when the timing was missing.
fn open_dicom(path: &Path) -> anyhow::Result<(DicomSource, bool)> {
    let context = || format!("cannot open {}", path.display());
    match DicomSource::open(path, &OpenOptions::default()) {
        Ok(source) => Ok((source, false)),
        Err(SourceError::MissingTiming(_)) => {
            let options = OpenOptions {
                fps: Some(1.0),
                ..OpenOptions::default()
            };
            let source = DicomSource::open(path, &options).with_context(context)?;
            Ok((source, true))
        }
        Err(error) => Err(error).with_context(context),
    }
}

fn source_fps(source: &DicomSource, timing_missing: bool) -> Option<f64> {
    if timing_missing {
        None
    } else {
        source.info().fps
    }
}

fn source_report(path: &Path, info: &SourceInfo) -> Report {
    let rows = vec![
        row("file", path.display()),
        row("container", info.container),
        row("size", format!("{} x {}", info.width, info.height)),
        row(
            "frames",
            info.frames.map_or("unknown".to_string(), |f| f.to_string()),
        ),
        row(
            "timing",
            match info.fps {
                Some(fps) => format!("{}: {fps:.3} fps", timing_name(&info.timing)),
                None => timing_name(&info.timing).to_string(),
            },
        ),
    ];
    let json = json!({
        "file": path.display().to_string(),
        "container": info.container,
        "columns": info.width,
        "rows": info.height,
        "frames": info.frames,
        "fps": info.fps,
        "timing_source": timing_name(&info.timing),
    });
    Report { rows, json }
}

fn row(key: &str, value: impl ToString) -> (String, String) {
    (key.to_string(), value.to_string())
}

fn or_none(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_string())
}

/// Rows as `key  value` with the values in one column.
fn aligned(rows: &[(String, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}

fn sop_class_text(header: &DicomHeader) -> String {
    let Some(uid) = &header.sop_class_uid else {
        return "-".to_string();
    };
    match sop_class_name(uid) {
        Some(name) => format!("{name} ({uid})"),
        None => uid.clone(),
    }
}

/// Names of the storage SOP classes a scanner's cine is usually stored as (PS3.6 Annex A).
fn sop_class_name(uid: &str) -> Option<&'static str> {
    match uid {
        "1.2.840.10008.5.1.4.1.1.6.1" => Some("Ultrasound Image Storage"),
        "1.2.840.10008.5.1.4.1.1.3.1" => Some("Ultrasound Multi-frame Image Storage"),
        "1.2.840.10008.5.1.4.1.1.6.2" => Some("Enhanced US Volume Storage"),
        "1.2.840.10008.5.1.4.1.1.7" => Some("Secondary Capture Image Storage"),
        "1.2.840.10008.5.1.4.1.1.7.4" => {
            Some("Multi-frame True Color Secondary Capture Image Storage")
        }
        _ => None,
    }
}

fn timing_name(timing: &TimingSource) -> &'static str {
    match timing {
        TimingSource::FrameTime => "Frame Time (0018,1063)",
        TimingSource::FrameTimeVector => "Frame Time Vector (0018,1065)",
        TimingSource::CineRate => "Cine Rate (0018,0040)",
        TimingSource::StreamHeader => "stream header",
        TimingSource::UserFps => "--fps",
        TimingSource::SingleFrame => "single frame",
        TimingSource::DeviceTimestamps => "device timestamps",
    }
}

fn timing_text(header: &DicomHeader, timing_missing: bool) -> String {
    if timing_missing {
        return "missing (reading the frames needs --fps)".to_string();
    }
    let name = timing_name(&header.timing.source);
    match (header.timing.interval_s(), header.timing.nominal_fps()) {
        (Some(interval), Some(fps)) => {
            format!(
                "{name}: {:.3} ms per frame, {fps:.3} fps",
                interval * 1000.0
            )
        }
        (None, Some(fps)) => format!("{name}: mean {fps:.3} fps"),
        _ => name.to_string(),
    }
}

fn timing_json(header: &DicomHeader, timing_missing: bool) -> Value {
    if timing_missing {
        Value::Null
    } else {
        json!(timing_name(&header.timing.source))
    }
}

fn region_text(region: &UltrasoundRegion) -> String {
    let code = |name: Option<&str>, value: u16| {
        name.map_or_else(|| format!("code {value:#06x}"), str::to_string)
    };
    let delta = |d: Option<f64>| d.map_or("-".to_string(), |d| format!("{d}"));
    format!(
        "rect {}  {}  {}  units {}/{}  delta {}/{}",
        region.rect,
        code(region.spatial_format_name(), region.spatial_format),
        code(region.data_type_name(), region.data_type),
        region.physical_units_x,
        region.physical_units_y,
        delta(region.physical_delta_x),
        delta(region.physical_delta_y),
    )
}
