//! Synthetic cohorts: many phantom exams with a binary outcome (distant metastasis),
//! clinical variables tied to it by known odds ratios, and lesions whose perfusion and
//! texture depend on it, plus a B-mode and a colour Doppler still of every exam.
//!
//! The outcome model is a logistic regression on the clinical variables; its odds ratios
//! are those of [`CLINICAL_EFFECTS`]. The imaging phenotype of an exam is
//! `z = IMAGING_SHIFT * label + N(0, 1)`, so the classes overlap (a perfect reader of `z`
//! reaches an AUC of Phi(IMAGING_SHIFT / sqrt 2), about 0.76). A larger `z` means an
//! earlier, higher lesion peak, a faster wash-out, a more heterogeneous and more
//! hypoechoic lesion, and more and more tortuous Doppler vessels.
//!
//! Every exam draws from its own ChaCha8 stream of the cohort seed, so an exam's files do
//! not depend on the number of worker threads or on the order they finish in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use super::config::{EventRequest, LesionProfile, PhantomConfig, ViewLayout};
use super::writer::DicomCineWriter;
use super::{Phantom, PhantomError};
use crate::frame::{Frame, PixelFormat};
use crate::geometry::Rect;

/// Version of cohort.json; raised when a field changes meaning or is removed.
pub const COHORT_SCHEMA_VERSION: u32 = 1;
/// Largest cohort [`write_cohort`] accepts.
pub const MAX_EXAMS: u32 = 100_000;
/// Mean shift of the imaging phenotype between label 1 and label 0, in standard deviations.
pub const IMAGING_SHIFT: f64 = 1.0;
/// Log-odds of the outcome for an exam with every clinical variable at its centre.
pub const LABEL_INTERCEPT: f64 = -1.2;

/// One clinical variable's effect on the log-odds of the outcome: the log-odds rise by
/// `ln(odds_ratio)` for every `per` units above `centre`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ClinicalEffect {
    pub name: &'static str,
    pub unit: &'static str,
    pub odds_ratio: f64,
    pub per: f64,
    pub centre: f64,
    /// Whether the effect is on the natural log of the value (CEA is log-normal).
    pub log_scale: bool,
}

/// The outcome model's clinical variables, in CSV column order.
pub const CLINICAL_EFFECTS: [ClinicalEffect; 4] = [
    ClinicalEffect {
        name: "age",
        unit: "years",
        odds_ratio: 1.2,
        per: 10.0,
        centre: 60.0,
        log_scale: false,
    },
    ClinicalEffect {
        name: "cea",
        unit: "ng/mL",
        odds_ratio: 1.8,
        per: 1.0,
        centre: 5.0,
        log_scale: true,
    },
    ClinicalEffect {
        name: "t_stage",
        unit: "T category 1-4",
        odds_ratio: 1.5,
        per: 1.0,
        centre: 2.0,
        log_scale: false,
    },
    ClinicalEffect {
        name: "n_stage",
        unit: "N category 0-2",
        odds_ratio: 2.0,
        per: 1.0,
        centre: 1.0,
        log_scale: false,
    },
];

/// Settings of a cohort; every exam shares the frame size, length and rate.
#[derive(Clone, Debug, Serialize)]
pub struct CohortConfig {
    pub exams: u32,
    pub seed: u64,
    /// Mean number of random acquisition events per minute of exam.
    pub event_rate: f64,
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub fps: f64,
    /// Display dynamic range of every exam's log compression, in dB.
    pub dynamic_range_db: f64,
    /// Worker threads that render exams at the same time.
    #[serde(skip)]
    pub jobs: usize,
}

impl Default for CohortConfig {
    /// 100 exams of 100 frames at 5 fps (20 s) and 320x240, without events, 60 dB, one
    /// thread.
    fn default() -> CohortConfig {
        CohortConfig {
            exams: 100,
            seed: 1,
            event_rate: 0.0,
            width: 320,
            height: 240,
            frames: 100,
            fps: 5.0,
            dynamic_range_db: 60.0,
            jobs: 1,
        }
    }
}

/// Clinical values of one exam.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ClinicalValues {
    pub age: f64,
    pub cea: f64,
    pub t_stage: u8,
    pub n_stage: u8,
}

impl ClinicalValues {
    fn as_array(&self) -> [f64; 4] {
        [
            self.age,
            self.cea,
            f64::from(self.t_stage),
            f64::from(self.n_stage),
        ]
    }
}

/// The random draws of one exam, made before rendering.
#[derive(Clone, Debug, Serialize)]
pub struct ExamDraw {
    pub id: String,
    pub label: u8,
    /// True probability of label 1 under the outcome model.
    pub probability: f64,
    pub clinical: ClinicalValues,
    /// Imaging phenotype `z`.
    pub phenotype: f64,
    pub lesion: LesionProfile,
    /// Number of vessels drawn in the Doppler still.
    pub vessels: u32,
    /// Standard deviation of a vessel's change of direction per step, in radians.
    pub tortuosity: f64,
    /// Seed of the exam's phantom.
    pub phantom_seed: u64,
}

/// One written exam: the draw, its lesion ROI and peak frame from the phantom truth.
#[derive(Clone, Debug, Serialize)]
pub struct CohortExam {
    #[serde(flatten)]
    pub draw: ExamDraw,
    /// Lesion ROI in full-frame pixels; the same rectangle in the cine and both stills.
    pub roi: Rect,
    pub peak_frame: Option<u32>,
    pub arrival_time_s: f64,
}

/// Stream of the cohort-level draws; exam `i` uses stream `EXAM_STREAM_BASE + i`.
const EXAM_STREAM_BASE: u64 = 16;

/// Draws exam `index` (0-based) of the cohort: outcome, clinical values and phenotype.
pub fn draw_exam(config: &CohortConfig, index: u32) -> ExamDraw {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(EXAM_STREAM_BASE + u64::from(index));

    let clinical = draw_clinical(&mut rng);
    let log_odds = LABEL_INTERCEPT + clinical_log_odds(&clinical);
    let probability = 1.0 / (1.0 + (-log_odds).exp());
    let label = u8::from(rng.random::<f64>() < probability);

    let noise: f64 = StandardNormal.sample(&mut rng);
    let phenotype = IMAGING_SHIFT * f64::from(label) + noise;
    let vessel_noise: f64 = StandardNormal.sample(&mut rng);
    let vessels = (5.0 + 2.5 * phenotype + vessel_noise)
        .round()
        .clamp(1.0, 16.0) as u32;
    let tortuosity = (0.15 + 0.1 * phenotype).clamp(0.03, 0.6);

    ExamDraw {
        id: format!("exam{:05}", index + 1),
        label,
        probability,
        clinical,
        phenotype,
        lesion: lesion_profile(phenotype),
        vessels,
        tortuosity,
        phantom_seed: rng.random(),
    }
}

fn draw_clinical(rng: &mut ChaCha8Rng) -> ClinicalValues {
    let normal = |rng: &mut ChaCha8Rng| -> f64 { StandardNormal.sample(rng) };
    let age = (60.0 + 11.0 * normal(rng)).clamp(25.0, 90.0).round();
    // Median 5 ng/mL with a log standard deviation of 1: most values fall in 1-30 ng/mL.
    let cea = (5f64.ln() + normal(rng)).exp().clamp(0.2, 500.0);
    let cea = (cea * 10.0).round() / 10.0;
    let t_stage = pick_category(rng, &[0.15, 0.35, 0.35, 0.15]) + 1;
    let n_stage = pick_category(rng, &[0.45, 0.35, 0.20]);
    ClinicalValues {
        age,
        cea,
        t_stage,
        n_stage,
    }
}

fn pick_category(rng: &mut ChaCha8Rng, probabilities: &[f64]) -> u8 {
    let u: f64 = rng.random();
    let mut cumulative = 0.0;
    for (k, p) in probabilities.iter().enumerate() {
        cumulative += p;
        if u < cumulative {
            return k as u8;
        }
    }
    (probabilities.len() - 1) as u8
}

/// Sum of the clinical terms of the outcome model's log-odds.
pub fn clinical_log_odds(clinical: &ClinicalValues) -> f64 {
    CLINICAL_EFFECTS
        .iter()
        .zip(clinical.as_array())
        .map(|(effect, value)| {
            let (value, centre) = if effect.log_scale {
                (value.ln(), effect.centre.ln())
            } else {
                (value, effect.centre)
            };
            effect.odds_ratio.ln() * (value - centre) / effect.per
        })
        .sum()
}

/// Builds the lesion of phenotype `z`: each property moves linearly with `z`, clamped
/// to the phantom's valid ranges.
fn lesion_profile(z: f64) -> LesionProfile {
    let ratio = (2.6 + 0.5 * z).clamp(1.3, 6.0);
    LesionProfile {
        enhancement_ratio: [ratio * 0.9, ratio * 1.1],
        perfusion_heterogeneity: (0.25 + 0.1 * z).clamp(0.05, 0.8),
        echogenicity_db: (-5.0 - 1.5 * z).clamp(-20.0, 5.0),
        arrival_scale: (0.85 - 0.1 * z).clamp(0.4, 1.0),
        peak_gain_db: (1.5 * z).clamp(-6.0, 6.0),
        washout_scale: (1.0 - 0.15 * z).clamp(0.5, 1.5),
    }
}

/// Builds the phantom settings of one exam.
pub fn exam_config(config: &CohortConfig, draw: &ExamDraw) -> PhantomConfig {
    PhantomConfig {
        seed: draw.phantom_seed,
        frames: config.frames,
        fps: config.fps,
        width: config.width,
        height: config.height,
        layout: ViewLayout::Dual,
        events: if config.event_rate > 0.0 {
            EventRequest::Rate(config.event_rate)
        } else {
            EventRequest::None
        },
        dynamic_range_db: config.dynamic_range_db,
        lesion: draw.lesion.clone(),
    }
}

/// Paths of one exam's files relative to the cohort directory.
pub struct ExamFiles {
    pub cine: PathBuf,
    pub bmode: PathBuf,
    pub doppler: PathBuf,
    pub truth: PathBuf,
}

impl ExamFiles {
    pub fn new(id: &str) -> ExamFiles {
        let dir = PathBuf::from("exams").join(id);
        ExamFiles {
            cine: dir.join("exam.dcm"),
            bmode: dir.join("bmode.png"),
            doppler: dir.join("doppler.png"),
            truth: dir.join("truth.json"),
        }
    }
}

/// Writes the cohort into `dir`: exams/ID/{exam.dcm,truth.json,bmode.png,doppler.png},
/// cohort.csv and cohort.json. Returns the exams in id order.
///
/// Errors with [`PhantomError::InvalidConfig`] for settings out of range (checked before
/// anything is written) and [`PhantomError::Io`] for the first file that failed.
pub fn write_cohort(config: &CohortConfig, dir: &Path) -> Result<Vec<CohortExam>, PhantomError> {
    check_config(config)?;
    create_dir(dir)?;

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<CohortExam, PhantomError>>>> =
        Mutex::new((0..config.exams).map(|_| None).collect());
    let workers = config.jobs.clamp(1, config.exams as usize);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= config.exams as usize {
                    break;
                }
                let result = write_one(config, dir, index as u32);
                let failed = result.is_err();
                if let Ok(mut slots) = results.lock() {
                    slots[index] = Some(result);
                }
                if failed {
                    // Later exams are pointless once one failed: stop taking new ones.
                    next.store(config.exams as usize, Ordering::Relaxed);
                }
            });
        }
    });

    let slots = results
        .into_inner()
        .map_err(|_| PhantomError::InvalidConfig("a cohort worker panicked".to_string()))?;
    let mut exams = Vec::with_capacity(slots.len());
    for slot in slots.into_iter().flatten() {
        exams.push(slot?);
    }
    write_csv(&exams, &dir.join("cohort.csv"))?;
    write_cohort_json(config, &exams, &dir.join("cohort.json"))?;
    Ok(exams)
}

fn check_config(config: &CohortConfig) -> Result<(), PhantomError> {
    if config.exams == 0 || config.exams > MAX_EXAMS {
        return Err(PhantomError::InvalidConfig(format!(
            "cohort size {} is out of range: expected 1 to {MAX_EXAMS}",
            config.exams
        )));
    }
    // The first exam's settings stand for all: only the lesion differs, within range.
    exam_config(config, &draw_exam(config, 0)).validate()
}

fn create_dir(dir: &Path) -> Result<(), PhantomError> {
    std::fs::create_dir_all(dir).map_err(|source| PhantomError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PhantomError + '_ {
    move |source| PhantomError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Draws, renders and writes exam `index`.
fn write_one(config: &CohortConfig, dir: &Path, index: u32) -> Result<CohortExam, PhantomError> {
    let draw = draw_exam(config, index);
    let phantom = Phantom::new(exam_config(config, &draw))?;
    let truth = phantom.truth().clone();
    let files = ExamFiles::new(&draw.id);
    create_dir(&dir.join("exams").join(&draw.id))?;

    let still_index = truth.peak_frame.unwrap_or(0);
    let peak = write_cine(phantom, &dir.join(&files.cine), still_index)?;
    super::writer::write_truth(&truth, &dir.join(&files.truth))?;

    let bmode_view = truth.layout.bmode_view;
    let contrast_view = truth.layout.contrast_view;
    let bmode = bmode_still(&peak, bmode_view, contrast_view);
    let bmode_path = dir.join(&files.bmode);
    crate::png_out::write_png(&bmode_path, &bmode)
        .map_err(|e| io_error(&bmode_path)(std::io::Error::other(e.to_string())))?;

    let doppler = doppler_still(&bmode, truth.lesion_roi, contrast_view, &draw);
    let doppler_path = dir.join(&files.doppler);
    crate::png_out::write_png(&doppler_path, &doppler)
        .map_err(|e| io_error(&doppler_path)(std::io::Error::other(e.to_string())))?;

    Ok(CohortExam {
        draw,
        roi: truth.lesion_roi,
        peak_frame: truth.peak_frame,
        arrival_time_s: truth.arrival_time_s,
    })
}

/// Renders the cine into `path` as DICOM and returns a copy of frame `keep`.
fn write_cine(phantom: Phantom, path: &Path, keep: u32) -> Result<Frame, PhantomError> {
    let file = std::fs::File::create(path).map_err(io_error(path))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut renderer = phantom.into_renderer();
    let mut writer = DicomCineWriter::new(out, renderer.phantom())?;
    let mut kept = None;
    let mut index = 0u32;
    while let Some(frame) = renderer.next_frame() {
        writer.write_frame(frame).map_err(io_error(path))?;
        if index == keep {
            kept = Some(frame.clone());
        }
        index += 1;
    }
    let mut out = writer.finish().map_err(io_error(path))?;
    out.flush().map_err(io_error(path))?;
    kept.ok_or_else(|| {
        PhantomError::InvalidConfig(format!("frame {keep} is past the end of the cine"))
    })
}

/// Builds the B-mode still: `frame` with the B-mode view's pixels copied over the contrast view,
/// so the lesion sits at the contrast view's ROI. Without a B-mode view, the frame as is.
fn bmode_still(frame: &Frame, bmode_view: Option<Rect>, contrast_view: Rect) -> Frame {
    let mut still = frame.clone();
    let Some(bmode) = bmode_view else {
        return still;
    };
    let bytes = frame.format.bytes_per_pixel();
    let stride = frame.stride();
    let width = bmode.w.min(contrast_view.w) as usize * bytes;
    for row in 0..bmode.h.min(contrast_view.h) as usize {
        let from = (bmode.y as usize + row) * stride + bmode.x as usize * bytes;
        let to = (contrast_view.y as usize + row) * stride + contrast_view.x as usize * bytes;
        if let (Some(source), true) = (
            frame.data.get(from..from + width),
            to + width <= still.data.len(),
        ) {
            still.data[to..to + width].copy_from_slice(source);
        }
    }
    still
}

/// Builds the colour Doppler still: the grey B-mode still in RGB, with vessels in red (flow
/// towards the probe, upwards) and blue (away) inside a colour box around the lesion.
fn doppler_still(bmode: &Frame, roi: Rect, view: Rect, draw: &ExamDraw) -> Frame {
    let mut still = Frame::new(bmode.width, bmode.height, PixelFormat::Rgb8);
    for (rgb, &grey) in still.data.chunks_exact_mut(3).zip(&bmode.data) {
        rgb.fill(grey);
    }
    let colour_box = grow_within(roi, view);
    let mut rng = ChaCha8Rng::seed_from_u64(draw.phantom_seed);
    rng.set_stream(EXAM_STREAM_BASE - 1);
    for _ in 0..draw.vessels {
        draw_vessel(&mut still, &mut rng, roi, colour_box, draw.tortuosity);
    }
    still
}

/// `roi` grown by half its size on each side, clipped to `view`.
fn grow_within(roi: Rect, view: Rect) -> Rect {
    let (dx, dy) = (roi.w / 2, roi.h / 2);
    let x0 = roi.x.saturating_sub(dx).max(view.x);
    let y0 = roi.y.saturating_sub(dy).max(view.y);
    let x1 = (roi.x + roi.w + dx).min(view.x + view.w);
    let y1 = (roi.y + roi.h + dy).min(view.y + view.h);
    Rect::new(x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
}

/// Draws one vessel: a random walk from the colour box's edge towards the lesion centre,
/// two pixels wide, coloured by the sign of its vertical direction of flow.
fn draw_vessel(
    still: &mut Frame,
    rng: &mut ChaCha8Rng,
    roi: Rect,
    colour_box: Rect,
    tortuosity: f64,
) {
    let box_x = f64::from(colour_box.x);
    let box_y = f64::from(colour_box.y);
    let (box_w, box_h) = (f64::from(colour_box.w), f64::from(colour_box.h));
    let centre = (
        f64::from(roi.x) + f64::from(roi.w) / 2.0,
        f64::from(roi.y) + f64::from(roi.h) / 2.0,
    );
    let edge = rng.random_range(0.0..4.0);
    let along: f64 = rng.random();
    let (mut x, mut y) = match edge as u32 {
        0 => (box_x + along * box_w, box_y),
        1 => (box_x + box_w - 1.0, box_y + along * box_h),
        2 => (box_x + along * box_w, box_y + box_h - 1.0),
        _ => (box_x, box_y + along * box_h),
    };
    let mut angle = (centre.1 - y).atan2(centre.0 - x) + rng.random_range(-0.5..0.5);
    // Blood flows along the walk or against it, drawn once per vessel.
    let flow_along_walk = rng.random::<bool>();
    let brightness = rng.random_range(150.0..255.0);
    let steps = rng.random_range(0.6..1.2) * (box_w + box_h);

    for _ in 0..steps as u32 {
        let turn: f64 = StandardNormal.sample(rng);
        angle += tortuosity * turn;
        x += angle.cos();
        y += angle.sin();
        let inside = x >= box_x && y >= box_y && x < box_x + box_w - 1.0 && y < box_y + box_h - 1.0;
        if !inside {
            break;
        }
        // Image rows grow downwards, so a negative sine walks towards the probe.
        let upwards = (angle.sin() < 0.0) == flow_along_walk;
        let colour = if upwards {
            [brightness as u8, 30, 20]
        } else {
            [20, 60, brightness as u8]
        };
        for (px, py) in [(x, y), (x + 1.0, y), (x, y + 1.0), (x + 1.0, y + 1.0)] {
            paint(still, px as u32, py as u32, colour);
        }
    }
}

fn paint(still: &mut Frame, x: u32, y: u32, colour: [u8; 3]) {
    if x >= still.width || y >= still.height {
        return;
    }
    let i = (y as usize * still.width as usize + x as usize) * 3;
    if let Some(pixel) = still.data.get_mut(i..i + 3) {
        pixel.copy_from_slice(&colour);
    }
}

/// Header of cohort.csv.
pub const CSV_HEADER: &str =
    "id,path,bmode_path,doppler_path,roi_x,roi_y,roi_w,roi_h,label,age,cea,t_stage,n_stage";

fn write_csv(exams: &[CohortExam], path: &Path) -> Result<(), PhantomError> {
    let mut text = String::from(CSV_HEADER);
    text.push('\n');
    for exam in exams {
        let files = ExamFiles::new(&exam.draw.id);
        let clinical = &exam.draw.clinical;
        let roi = exam.roi;
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            exam.draw.id,
            files.cine.display(),
            files.bmode.display(),
            files.doppler.display(),
            roi.x,
            roi.y,
            roi.w,
            roi.h,
            exam.draw.label,
            clinical.age,
            clinical.cea,
            clinical.t_stage,
            clinical.n_stage,
        ));
    }
    std::fs::write(path, text).map_err(io_error(path))
}

#[derive(Serialize)]
struct CohortTruth<'a> {
    schema_version: u32,
    generator: String,
    settings: &'a CohortConfig,
    outcome_model: OutcomeModel,
    imaging_model: ImagingModel,
    positives: usize,
    exams: &'a [CohortExam],
}

#[derive(Serialize)]
struct OutcomeModel {
    description: &'static str,
    intercept: f64,
    variables: [ClinicalEffect; 4],
}

#[derive(Serialize)]
struct ImagingModel {
    description: &'static str,
    shift: f64,
}

fn write_cohort_json(
    config: &CohortConfig,
    exams: &[CohortExam],
    path: &Path,
) -> Result<(), PhantomError> {
    let truth = CohortTruth {
        schema_version: COHORT_SCHEMA_VERSION,
        generator: format!("ceus-edge phantom {}", env!("CARGO_PKG_VERSION")),
        settings: config,
        outcome_model: OutcomeModel {
            description:
                "logit P(label = 1) = intercept + sum ln(odds_ratio) * (x - centre) / per, \
                          with x = ln(value) and centre = ln(centre) where log_scale is true",
            intercept: LABEL_INTERCEPT,
            variables: CLINICAL_EFFECTS,
        },
        imaging_model: ImagingModel {
            description: "phenotype = shift * label + N(0, 1); a higher phenotype gives an \
                          earlier, higher, faster-washing, more heterogeneous lesion and more, \
                          more tortuous Doppler vessels",
            shift: IMAGING_SHIFT,
        },
        positives: exams.iter().filter(|e| e.draw.label == 1).count(),
        exams,
    };
    let text = serde_json::to_string_pretty(&truth).map_err(|e| io_error(path)(e.into()))?;
    std::fs::write(path, text + "\n").map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_exam_is_deterministic() {
        let config = CohortConfig::default();
        let a = draw_exam(&config, 7);
        let b = draw_exam(&config, 7);
        assert_eq!(a.phantom_seed, b.phantom_seed);
        assert_eq!(a.label, b.label);
        assert_eq!(a.phenotype, b.phenotype);
        assert_ne!(draw_exam(&config, 8).phantom_seed, a.phantom_seed);
    }

    #[test]
    fn every_drawn_profile_is_valid() {
        let config = CohortConfig::default();
        for index in 0..500 {
            let draw = draw_exam(&config, index);
            let result = exam_config(&config, &draw).validate();
            assert!(result.is_ok(), "exam {index}: {result:?}");
        }
    }

    #[test]
    fn label_follows_outcome_model() {
        // Over many exams the mean drawn label matches the mean model probability, and
        // the phenotype's class means differ by the shift.
        let config = CohortConfig::default();
        let draws: Vec<ExamDraw> = (0..4000).map(|i| draw_exam(&config, i)).collect();
        let n = draws.len() as f64;
        let rate = draws.iter().map(|d| f64::from(d.label)).sum::<f64>() / n;
        let expected = draws.iter().map(|d| d.probability).sum::<f64>() / n;
        // Binomial standard error at n = 4000 is under 0.008; 4 of them.
        assert!(
            (rate - expected).abs() < 0.03,
            "rate {rate}, model {expected}"
        );

        let mean_z = |label: u8| {
            let values: Vec<f64> = draws
                .iter()
                .filter(|d| d.label == label)
                .map(|d| d.phenotype)
                .collect();
            values.iter().sum::<f64>() / values.len() as f64
        };
        let shift = mean_z(1) - mean_z(0);
        assert!((shift - IMAGING_SHIFT).abs() < 0.15, "shift {shift}");
    }

    #[test]
    fn clinical_log_odds_is_zero_at_centre() {
        let centre = ClinicalValues {
            age: 60.0,
            cea: 5.0,
            t_stage: 2,
            n_stage: 1,
        };
        assert!(clinical_log_odds(&centre).abs() < 1e-12);
        let older = ClinicalValues {
            age: 70.0,
            ..centre
        };
        assert!((clinical_log_odds(&older) - 1.2f64.ln()).abs() < 1e-12);
        let node = ClinicalValues {
            n_stage: 2,
            ..centre
        };
        assert!((clinical_log_odds(&node) - 2f64.ln()).abs() < 1e-12);
    }
}
