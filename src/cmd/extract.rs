//! `ceus-edge extract`: deep features of every exam of a cohort table, for `train`.

use std::collections::HashSet;
use std::fs::OpenOptions as FileOptions;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};

use ceus_edge::analysis;
use ceus_edge::extractor::{Extractor, LoadOptions, FEATURES};
use ceus_edge::geometry::Rect;
use ceus_edge::preprocess::{self, ResizeMode, SIZE};
use ceus_edge::source::{self, OpenOptions};
use ceus_edge::table::{Table, TableError};
use ceus_edge::tic::pipeline::{PipelineOptions, RoiChoice};

use super::models::{models_dir, DEFAULT_MODEL};

/// Columns of the cohort table that are not copied through as clinical columns.
const COHORT_COLUMNS: [&str; 9] = [
    "id",
    "label",
    "path",
    "bmode_path",
    "doppler_path",
    "roi_x",
    "roi_y",
    "roi_w",
    "roi_h",
];

/// Writes one row per exam: id, label, the cohort table's other columns (clinical values),
/// peak_frame (empty for stills), then f0..f1919, the pooled features. Beside the output
/// FILE, FILE.sha256 records the extractor's SHA-256 and path (sha256sum format), which
/// `train` reads when --extractor-sha256 is absent. Exams whose id is already in FILE are
/// skipped, so a stopped run resumes where it stopped. An exam that fails is reported on
/// stderr (id and cause) and skipped. The exit status is 0 even then, and the final line
/// counts the failures.
#[derive(clap::Args)]
pub struct Args {
    /// Cohort CSV with columns id, label, path (cine, for ceus), bmode_path, doppler_path
    /// (stills), and optionally roi_x, roi_y, roi_w, roi_h (full-frame pixels); paths are
    /// relative to the CSV's folder.
    #[arg(long, value_name = "FILE.csv")]
    cohort: PathBuf,

    /// Output CSV; rows are appended to an existing file with the same columns.
    #[arg(long, value_name = "FILE.csv")]
    out: PathBuf,

    /// Exams processed at the same time, each on its own thread.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,

    /// Input of each exam: ceus (the cine's TIC peak frame), bmode or doppler (the still).
    #[arg(long, value_enum, default_value_t = Mode::Ceus)]
    mode: Mode,

    /// Feature extractor (ONNX, manifest beside it). Default: the bundled demo extractor.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// ROI when the table has no roi_* columns: auto (proposed from the cine, ceus only)
    /// or whole (the whole contrast view for ceus, the whole image for stills).
    #[arg(long, value_enum, default_value_t = RoiFallback::Whole)]
    roi: RoiFallback,

    /// Resize mode of the ROI: squash (stretch to 224x224) or crop (short side, centre).
    #[arg(long, default_value_t = ResizeMode::Squash)]
    resize: ResizeMode,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Ceus,
    Bmode,
    Doppler,
}

impl Mode {
    fn path_column(self) -> &'static str {
        match self {
            Mode::Ceus => "path",
            Mode::Bmode => "bmode_path",
            Mode::Doppler => "doppler_path",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RoiFallback {
    Auto,
    Whole,
}

/// One exam to extract.
struct Exam {
    id: String,
    label: String,
    clinical: Vec<String>,
    path: PathBuf,
    roi: Option<Rect>,
}

/// Features of one exam.
struct ExamRow {
    peak_frame: Option<u64>,
    pooled: Vec<f32>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let table = Table::read(&args.cohort)
        .with_context(|| format!("cannot read the cohort table {}", args.cohort.display()))?;
    let base = args.cohort.parent().unwrap_or(Path::new("")).to_path_buf();
    let (clinical_names, exams) = read_exams(&table, &base, args.mode)?;
    let header = output_header(&clinical_names);
    let done = finished_ids(&args.out, &header)?;
    let pending: Vec<&Exam> = exams.iter().filter(|e| !done.contains(&e.id)).collect();

    let model = args
        .model
        .clone()
        .unwrap_or_else(|| models_dir().join(DEFAULT_MODEL));
    let extractor = Extractor::load(&model, &LoadOptions::default())
        .with_context(|| format!("cannot load feature extractor {}", model.display()))?;
    write_hash_file(&args.out, &extractor, &model)?;

    let out = open_output(&args.out, &header, done.is_empty())?;
    eprintln!(
        "extract: {} exams in {}, {} already in {}, {} to do with {} job(s)",
        exams.len(),
        args.cohort.display(),
        exams.len() - pending.len(),
        args.out.display(),
        pending.len(),
        args.jobs
    );
    let summary = run_workers(&args, &extractor, &pending, out)?;
    eprintln!(
        "extract: wrote {} exams, {} failed, in {:.1} s",
        summary.written, summary.failed, summary.seconds
    );
    Ok(())
}

/// Reads the exams of the table: the clinical column names and one entry per row.
fn read_exams(table: &Table, base: &Path, mode: Mode) -> anyhow::Result<(Vec<String>, Vec<Exam>)> {
    let ids = table.text_column("id")?;
    let labels = table.text_column("label")?;
    let paths = table.text_column(mode.path_column())?;
    let rois = read_rois(table)?;
    let clinical: Vec<usize> = (0..table.headers.len())
        .filter(|&j| !COHORT_COLUMNS.contains(&table.headers[j].as_str()))
        .collect();
    let names = clinical.iter().map(|&j| table.headers[j].clone()).collect();

    let mut seen = HashSet::new();
    let mut exams = Vec::with_capacity(table.rows.len());
    for (row, (id, line)) in ids.iter().zip(&table.lines).enumerate() {
        if id.is_empty() || id.contains(',') {
            bail!("line {line}: exam id {id:?} is empty or contains a comma");
        }
        if !seen.insert(id.to_string()) {
            bail!("line {line}: exam id {id:?} appears twice; give each exam its own id");
        }
        exams.push(Exam {
            id: id.to_string(),
            label: labels[row].to_string(),
            clinical: clinical
                .iter()
                .map(|&j| table.rows[row][j].clone())
                .collect(),
            path: base.join(paths[row]),
            roi: rois.as_ref().map(|r| r[row]),
        });
    }
    Ok((names, exams))
}

/// ROIs from roi_x, roi_y, roi_w, roi_h, or `None` when the table has none of them.
fn read_rois(table: &Table) -> anyhow::Result<Option<Vec<Rect>>> {
    let names = ["roi_x", "roi_y", "roi_w", "roi_h"];
    let present = names
        .iter()
        .filter(|n| table.headers.iter().any(|h| h == *n))
        .count();
    if present == 0 {
        return Ok(None);
    }
    let columns: Vec<Vec<f64>> = names
        .iter()
        .map(|name| table.numeric_column(name))
        .collect::<Result<_, TableError>>()?;
    let mut rois = Vec::with_capacity(table.rows.len());
    for (row, line) in table.lines.iter().enumerate() {
        let values: Vec<f64> = columns.iter().map(|c| c[row]).collect();
        let valid = values
            .iter()
            .all(|v| v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(v));
        if !valid || values[2] == 0.0 || values[3] == 0.0 {
            bail!("line {line}: ROI {values:?} is not four whole pixels x, y, w > 0, h > 0");
        }
        rois.push(Rect::new(
            values[0] as u32,
            values[1] as u32,
            values[2] as u32,
            values[3] as u32,
        ));
    }
    Ok(Some(rois))
}

fn output_header(clinical: &[String]) -> String {
    let mut columns = vec!["id".to_string(), "label".to_string()];
    columns.extend(clinical.iter().cloned());
    columns.push("peak_frame".to_string());
    columns.extend((0..FEATURES).map(|k| format!("f{k}")));
    columns.join(",")
}

/// Ids already in the output, after checking that its header matches `header`.
fn finished_ids(out: &Path, header: &str) -> anyhow::Result<HashSet<String>> {
    if !out.exists() {
        return Ok(HashSet::new());
    }
    let table = Table::read(out).with_context(|| {
        format!(
            "cannot resume from {}: remove it or choose another --out",
            out.display()
        )
    })?;
    if table.headers.join(",") != header {
        bail!(
            "{} has other columns than this run writes: remove it or choose another --out",
            out.display()
        );
    }
    Ok(table
        .text_column("id")?
        .iter()
        .map(|s| s.to_string())
        .collect())
}

/// Returns the path of the side file with the extractor's SHA-256, FILE.sha256 beside FILE.
pub fn hash_file_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(".sha256");
    PathBuf::from(name)
}

fn write_hash_file(out: &Path, extractor: &Extractor, model: &Path) -> anyhow::Result<()> {
    let path = hash_file_path(out);
    if let Ok(previous) = std::fs::read_to_string(&path) {
        let recorded = previous.split_whitespace().next().unwrap_or("");
        if recorded != extractor.sha256() {
            bail!(
                "{} was extracted with extractor {recorded}, not {} ({}): remove both files \
                 or choose another --out",
                out.display(),
                extractor.sha256(),
                model.display()
            );
        }
    }
    let text = format!("{}  {}\n", extractor.sha256(), model.display());
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn open_output(out: &Path, header: &str, new_file: bool) -> anyhow::Result<std::fs::File> {
    let mut file = FileOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("cannot open {} for writing", out.display()))?;
    if new_file && file.metadata().map(|m| m.len() == 0).unwrap_or(true) {
        writeln!(file, "{header}").with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(file)
}

struct Summary {
    written: usize,
    failed: usize,
    seconds: f64,
}

/// Extracts `pending` on `args.jobs` threads that share the extractor, appending each row
/// as soon as it is ready.
fn run_workers(
    args: &Args,
    extractor: &Extractor,
    pending: &[&Exam],
    out: std::fs::File,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let written = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let out = Mutex::new(out);
    let progress = Progress::new(pending.len());
    let write_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);

    std::thread::scope(|scope| {
        for _ in 0..usize::from(args.jobs).min(pending.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(exam) = pending.get(index) else {
                    break;
                };
                match extract_exam(args, extractor, exam) {
                    Ok(row) => {
                        let line = format_row(exam, &row);
                        let result = append_line(&out, &line, &args.out);
                        if let Err(error) = result {
                            if let Ok(mut slot) = write_error.lock() {
                                slot.get_or_insert(error);
                            }
                            next.store(pending.len(), Ordering::Relaxed);
                            break;
                        }
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        progress.message(&format!("exam {}: {error:#}", exam.id));
                    }
                }
                progress.update(
                    written.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed),
                );
            });
        }
    });
    progress.finish();

    if let Some(error) = write_error.into_inner().ok().flatten() {
        return Err(error);
    }
    Ok(Summary {
        written: written.into_inner(),
        failed: failed.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn append_line(out: &Mutex<std::fs::File>, line: &str, path: &Path) -> anyhow::Result<()> {
    let mut file = out
        .lock()
        .map_err(|_| anyhow::anyhow!("a worker writing {} panicked", path.display()))?;
    // One write per row, so a stopped run leaves whole rows behind.
    file.write_all(line.as_bytes())
        .with_context(|| format!("cannot append to {}", path.display()))
}

fn format_row(exam: &Exam, row: &ExamRow) -> String {
    let mut line = String::with_capacity(16 * FEATURES);
    line.push_str(&exam.id);
    line.push(',');
    line.push_str(&exam.label);
    for value in &exam.clinical {
        line.push(',');
        line.push_str(value);
    }
    line.push(',');
    if let Some(peak) = row.peak_frame {
        line.push_str(&peak.to_string());
    }
    for value in &row.pooled {
        line.push(',');
        // Shortest text that reads back as the same f32.
        line.push_str(&value.to_string());
    }
    line.push('\n');
    line
}

fn extract_exam(args: &Args, extractor: &Extractor, exam: &Exam) -> anyhow::Result<ExamRow> {
    match args.mode {
        Mode::Ceus => extract_cine(args, extractor, exam),
        Mode::Bmode | Mode::Doppler => extract_still(args, extractor, exam),
    }
}

/// Features of the cine's TIC peak frame, by the same steps as `analyze`.
fn extract_cine(args: &Args, extractor: &Extractor, exam: &Exam) -> anyhow::Result<ExamRow> {
    let options = PipelineOptions {
        roi: match (exam.roi, args.roi) {
            (Some(rect), _) => RoiChoice::Rect(rect),
            (None, RoiFallback::Auto) => RoiChoice::Auto,
            (None, RoiFallback::Whole) => RoiChoice::WholeView,
        },
        ..PipelineOptions::default()
    };
    let open_options = OpenOptions::default();
    let open = || source::open(&exam.path, &open_options);
    let result = analysis::exam_features(open, &options, args.resize, extractor)
        .with_context(|| format!("cannot analyse {}", exam.path.display()))?;
    for warning in &result.warnings {
        log::warn!("exam {}: {warning}", exam.id);
    }
    Ok(ExamRow {
        peak_frame: result
            .tic
            .analysis
            .report
            .peak
            .as_ref()
            .map(|p| p.frame_index),
        pooled: result.features.pooled,
    })
}

/// Features of the exam's still image.
fn extract_still(args: &Args, extractor: &Extractor, exam: &Exam) -> anyhow::Result<ExamRow> {
    if exam.roi.is_none() && args.roi == RoiFallback::Auto {
        bail!("--roi auto needs a cine; stills need roi_* columns or --roi whole");
    }
    let frame = super::infer::read_png(&exam.path)?;
    let tensor = preprocess::preprocess(&frame, exam.roi, args.resize)
        .with_context(|| format!("cannot preprocess {}", exam.path.display()))?;
    let features = extractor
        .run(&[1, 3, SIZE, SIZE], &tensor)
        .with_context(|| format!("cannot extract the features of {}", exam.path.display()))?;
    Ok(ExamRow {
        peak_frame: None,
        pooled: features.pooled,
    })
}

/// A one-line progress bar on stderr when it is a terminal; messages go above it.
struct Progress {
    total: usize,
    terminal: bool,
    started: Instant,
    lock: Mutex<()>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            lock: Mutex::new(()),
        }
    }

    fn message(&self, text: &str) {
        let _guard = self.lock.lock();
        if self.terminal {
            eprint!("\r\x1b[K");
        }
        eprintln!("{text}");
    }

    fn update(&self, done: usize, failed: usize) {
        if !self.terminal || self.total == 0 {
            return;
        }
        let _guard = self.lock.lock();
        let width = 30;
        let filled = width * done / self.total;
        let elapsed = self.started.elapsed().as_secs_f64();
        let remaining = elapsed / done.max(1) as f64 * (self.total - done.min(self.total)) as f64;
        eprint!(
            "\r[{}{}] {done}/{} exams, {failed} failed, {remaining:.0} s left",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total
        );
    }

    fn finish(&self) {
        if self.terminal && self.total > 0 {
            eprintln!();
        }
    }
}
