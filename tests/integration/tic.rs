//! The TIC tracker, the bolus fits and the peak frame on synthetic scanner screens.

use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::geometry::Rect;
use ceus_edge::layout::{DetectSettings, Layout, LayoutDetector, LayoutKind};
use ceus_edge::tic::linearise::power_to_grey;
use ceus_edge::tic::{FrameFlags, Pushed, TicCurve, TicSettings, TicTracker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1};

/// Something that happens to one frame of a [`Screen`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    /// Contrast view 30 times brighter.
    Flash,
    /// Both views copied from the previous frame: a repeat, and a frozen image once the
    /// copies last longer than `FlagSettings::freeze_after_s`.
    Frozen,
    /// Both views black.
    Black,
    /// Tissue shifted by this many pixels right and down.
    Motion(i32, i32),
}

/// A synthetic dual-view CEUS screen: chrome with a grey bar and text that changes every
/// frame, a B-mode view on the left with fixed tissue speckle and a little noise, and a
/// contrast view on the right whose lesion follows a gamma-variate bolus.
struct Screen {
    width: u32,
    height: u32,
    bmode: Rect,
    contrast: Rect,
    fps: f64,
    dynamic_range_db: f64,
    /// Tissue grey level per view pixel, row-major, for the B-mode view.
    tissue: Vec<f64>,
    sector: Vec<bool>,
    /// Lesion centre and radius in view pixels.
    lesion: (f64, f64, f64),
    events: Vec<(u64, Event)>,
    /// Leave the B-mode view black, as a single-view layout.
    single: bool,
    rng: ChaCha8Rng,
    previous: Option<Frame>,
}

/// Noise-free lesion power at time `t`: a gamma variate with t0 = 2 s, a = 3, beta = 1.5 s
/// (peak at 6.5 s) of peak power 0.02 above a baseline of 1e-5.
fn lesion_power(t: f64) -> f64 {
    let baseline = 1e-5;
    let tau = t - 2.0;
    if tau <= 0.0 {
        return baseline;
    }
    let peak_time = 3.0 * 1.5;
    baseline + 0.02 * (tau / peak_time).powi(3) * (3.0 * (1.0 - tau / peak_time)).exp()
}

impl Screen {
    fn new(seed: u64) -> Screen {
        let (width, height) = (320, 200);
        let side = 140;
        let bmode = Rect::new(12, 40, side, side);
        let contrast = Rect::new(168, 40, side, side);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tissue = blurred_texture(side, side, &mut rng);
        let sector = fan(side, side);
        Screen {
            width,
            height,
            bmode,
            contrast,
            fps: 10.0,
            dynamic_range_db: 60.0,
            tissue,
            sector,
            lesion: (70.0, 80.0, 18.0),
            events: Vec::new(),
            single: false,
            rng,
            previous: None,
        }
    }

    fn layout(&self) -> Layout {
        Layout::with_views(
            LayoutKind::Manual,
            self.width,
            self.height,
            self.contrast,
            Some(self.bmode),
            Vec::new(),
        )
        .unwrap()
    }

    /// The square around the lesion, in full-frame pixels.
    fn lesion_roi(&self) -> Rect {
        let (cx, cy, r) = self.lesion;
        let half = (r * 0.7) as u32;
        Rect::new(
            self.contrast.x + cx as u32 - half,
            self.contrast.y + cy as u32 - half,
            2 * half,
            2 * half,
        )
    }

    fn event_at(&self, index: u64) -> Option<Event> {
        self.events
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, event)| *event)
    }

    fn render(&mut self, index: u64) -> Frame {
        let time_s = index as f64 / self.fps;
        let event = self.event_at(index);
        let mut frame = match (&self.previous, event) {
            (Some(previous), Some(Event::Frozen)) => previous.clone(),
            _ => {
                let mut frame = Frame::new(self.width, self.height, PixelFormat::Gray8);
                if event != Some(Event::Black) {
                    if !self.single {
                        self.draw_bmode(&mut frame, event);
                    }
                    self.draw_contrast(&mut frame, time_s, event);
                }
                frame
            }
        };
        self.draw_chrome(&mut frame, index);
        frame.index = index;
        frame.time_s = time_s;
        self.previous = Some(frame.clone());
        frame
    }

    fn draw_chrome(&mut self, frame: &mut Frame, index: u64) {
        for y in 0..14 {
            for x in 0..self.width {
                frame.data[(y * self.width + x) as usize] = 100;
            }
        }
        // Text that changes every frame: a frame counter drawn as random glyph pixels.
        let mut text_rng = ChaCha8Rng::seed_from_u64(index);
        for y in 18..30 {
            for x in 10..110 {
                let on = text_rng.random_bool(0.4);
                frame.data[(y * self.width + x) as usize] = if on { 230 } else { 0 };
            }
        }
        for y in 186..196 {
            for x in 200..300 {
                let on = text_rng.random_bool(0.3);
                frame.data[(y * self.width + x) as usize] = if on { 200 } else { 0 };
            }
        }
    }

    fn draw_bmode(&mut self, frame: &mut Frame, event: Option<Event>) {
        let (dx, dy) = match event {
            Some(Event::Motion(dx, dy)) => (dx, dy),
            _ => (0, 0),
        };
        let side = self.bmode.w as i32;
        for vy in 0..side {
            for vx in 0..side {
                if !self.sector[(vy * side + vx) as usize] {
                    continue;
                }
                let sx = (vx - dx).clamp(0, side - 1);
                let sy = (vy - dy).clamp(0, side - 1);
                let grey =
                    self.tissue[(sy * side + sx) as usize] + self.rng.random_range(-3.0..3.0);
                let x = self.bmode.x as i32 + vx;
                let y = self.bmode.y as i32 + vy;
                frame.data[(y * self.width as i32 + x) as usize] = grey.clamp(1.0, 255.0) as u8;
            }
        }
    }

    fn draw_contrast(&mut self, frame: &mut Frame, time_s: f64, event: Option<Event>) {
        let gain = if event == Some(Event::Flash) {
            30.0
        } else {
            1.0
        };
        let lesion = lesion_power(time_s);
        let background = 1e-5 + 0.25 * (lesion - 1e-5);
        let (cx, cy, r) = self.lesion;
        let side = self.contrast.w;
        for vy in 0..side {
            for vx in 0..side {
                if !self.sector[(vy * side + vx) as usize] {
                    continue;
                }
                let inside = (f64::from(vx) - cx).hypot(f64::from(vy) - cy) <= r;
                let mean = if inside { lesion } else { background };
                let speckle: f64 = Exp1.sample(&mut self.rng);
                let power = (mean * speckle * gain).min(1.0);
                let grey = power_to_grey(power, self.dynamic_range_db).clamp(0.0, 255.0);
                let x = self.contrast.x + vx;
                let y = self.contrast.y + vy;
                frame.data[(y * self.width + x) as usize] = grey.round() as u8;
            }
        }
    }
}

/// Tissue grey levels: uniform noise box-blurred over 5x5 pixels around grey 110.
fn blurred_texture(width: u32, height: u32, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let noise: Vec<f64> = (0..width * height)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let (w, h) = (width as i32, height as i32);
    let mut out = Vec::with_capacity(noise.len());
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0.0;
            for dy in -2..=2 {
                for dx in -2..=2 {
                    let (sx, sy) = ((x + dx).clamp(0, w - 1), (y + dy).clamp(0, h - 1));
                    sum += noise[(sy * w + sx) as usize];
                }
            }
            out.push(110.0 + 500.0 * (sum / 25.0 - 0.5));
        }
    }
    out
}

/// A sector fan with its apex at the top centre: 70 degrees wide, radius from 8 pixels
/// to the bottom of the view.
fn fan(width: u32, height: u32) -> Vec<bool> {
    let apex_x = f64::from(width) / 2.0;
    let mut inside = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        for x in 0..width {
            let (dx, dy) = (f64::from(x) + 0.5 - apex_x, f64::from(y) + 0.5);
            let radius = dx.hypot(dy);
            let angle = dx.atan2(dy).to_degrees();
            inside.push(angle.abs() <= 35.0 && (8.0..f64::from(height) - 1.0).contains(&radius));
        }
    }
    inside
}

fn track(screen: &mut Screen, frames: u64, roi: Rect) -> TicCurve {
    let mut tracker = TicTracker::new(&screen.layout(), roi, TicSettings::default()).unwrap();
    for index in 0..frames {
        let frame = screen.render(index);
        tracker.push(&frame).unwrap();
    }
    tracker.finish()
}

fn flagged(curve: &TicCurve, flag: FrameFlags) -> Vec<u64> {
    curve
        .samples
        .iter()
        .zip(&curve.flags)
        .filter(|(_, f)| f.contains(flag))
        .map(|(s, _)| s.index)
        .collect()
}

/// The frames of `screen` as a capture card at six times the scanner's rate delivers
/// them: each one six times, numbered and timed as captured.
fn captured_six_times(screen: &mut Screen, frames: u64) -> Vec<Frame> {
    let mut captured = Vec::new();
    for index in 0..frames {
        let frame = screen.render(index);
        for copy in 0..6 {
            let mut repeat = frame.clone();
            repeat.index = index * 6 + copy;
            repeat.time_s = frame.time_s + copy as f64 / (6.0 * screen.fps);
            captured.push(repeat);
        }
    }
    captured
}

#[test]
fn faster_capture_gives_same_curve() {
    let frames = 120;
    let roi = Screen::new(3).lesion_roi();
    let scanner = track(&mut Screen::new(3), frames, roi);

    let mut screen = Screen::new(3);
    let mut tracker = TicTracker::new(&screen.layout(), roi, TicSettings::default()).unwrap();
    let mut measured = 0;
    for frame in captured_six_times(&mut screen, frames) {
        if tracker.push(&frame).unwrap() == Pushed::Measured {
            measured += 1;
        }
    }
    let captured = tracker.finish();

    assert_eq!(measured, frames);
    assert_eq!(captured.repeated_frames, 5 * frames as usize);
    assert_eq!(captured.samples.len(), scanner.samples.len());
    for (a, b) in captured.samples.iter().zip(&scanner.samples) {
        assert_eq!(a.index, 6 * b.index);
        assert_eq!(a.time_s, b.time_s);
        assert_eq!(a.power, b.power);
    }
    assert_eq!(captured.flags, scanner.flags);
    let settings = TicSettings::default();
    let peak = |curve: &TicCurve| {
        let report = ceus_edge::tic::analyse(curve, 60.0, &settings.analysis).report;
        report.peak.map(|p| p.time_s)
    };
    assert!(peak(&scanner).is_some());
    assert_eq!(peak(&captured), peak(&scanner));
}

#[test]
fn clean_speckle_has_no_flags() {
    let mut screen = Screen::new(1);
    let roi = screen.lesion_roi();
    let curve = track(&mut screen, 120, roi);
    let any: Vec<u64> = (0..120)
        .filter(|&i| !curve.flags[i as usize].is_empty())
        .collect();
    assert_eq!(any, Vec::<u64>::new(), "warnings {:?}", curve.warnings);
}

#[test]
fn injected_events_are_flagged() {
    let mut screen = Screen::new(2);
    screen.events = vec![
        (30, Event::Flash),
        (60, Event::Black),
        (61, Event::Black),
        (75, Event::Motion(6, 0)),
        (76, Event::Motion(-4, 5)),
    ];
    // Frames 45 to 51 repeat frame 44 at 10 fps: up to 0.5 s they are repeats, after
    // that a frozen image.
    screen
        .events
        .extend((45..=51).map(|index| (index, Event::Frozen)));
    let roi = screen.lesion_roi();
    let curve = track(&mut screen, 100, roi);
    assert_eq!(flagged(&curve, FrameFlags::FLASH), vec![30]);
    assert_eq!(flagged(&curve, FrameFlags::FROZEN), vec![50, 51]);
    // Frame 61 repeats the black frame 60 byte for byte, so it is a repeat too.
    assert_eq!(curve.repeated_frames, 6);
    let measured: Vec<u64> = curve.samples.iter().map(|s| s.index).collect();
    for repeat in [45, 46, 47, 48, 49, 61] {
        assert!(!measured.contains(&repeat), "frame {repeat} measured");
    }
    assert_eq!(flagged(&curve, FrameFlags::BLACK), vec![60]);
    assert_eq!(flagged(&curve, FrameFlags::MOTION), vec![75, 76]);
    let sample = curve.samples.iter().find(|s| s.index == 75).unwrap();
    let motion = sample.motion.unwrap();
    assert_eq!((motion.dx, motion.dy), (6, 0));
}

#[test]
fn roi_power_follows_lesion() {
    let mut screen = Screen::new(3);
    let roi = screen.lesion_roi();
    let curve = track(&mut screen, 100, roi);
    // Exponential speckle averages to the mean power; about 600 ROI pixels leave a few
    // percent of noise, and clipping at grey 0 adds at most 1e-6 at baseline.
    for sample in curve.samples.iter().step_by(10) {
        let truth = lesion_power(sample.time_s);
        let relative = (sample.power - truth).abs() / truth;
        assert!(
            relative < 0.15,
            "t {} power {} truth {truth}",
            sample.time_s,
            sample.power
        );
    }
}

mod fits {
    use ceus_edge::tic::fit::fit_model;
    use ceus_edge::tic::model::{perfusion, BolusModel, Params};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Reference {
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        model: String,
        params: [f64; 5],
        perfusion: Expected,
        noisy: Noisy,
    }

    #[derive(Deserialize)]
    struct Expected {
        pe: f64,
        ttp_s: f64,
        rt_s: f64,
        mtt_s: f64,
        wiauc: f64,
        wir: f64,
    }

    #[derive(Deserialize)]
    struct Noisy {
        t: Vec<f64>,
        y: Vec<f64>,
        params: [f64; 5],
        sse: f64,
    }

    fn reference() -> Reference {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tic_reference.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn model_of(case: &Case) -> BolusModel {
        match case.model.as_str() {
            "lognormal" => BolusModel::Lognormal,
            _ => BolusModel::GammaVariate,
        }
    }

    fn assert_relative(name: &str, got: f64, want: f64, tolerance: f64) {
        let error = (got - want).abs() / want.abs().max(1e-300);
        assert!(
            error <= tolerance,
            "{name}: got {got}, want {want}, relative error {error:e}"
        );
    }

    #[test]
    fn perfusion_matches_scipy() {
        for case in reference().cases {
            let model = model_of(&case);
            let params = model.from_published(&case.params);
            let got = perfusion(model, &params).unwrap();
            let want = &case.perfusion;
            assert_relative("pe", got.pe, want.pe, 1e-7);
            assert_relative("ttp", got.ttp_s, want.ttp_s, 1e-7);
            assert_relative("rt", got.rt_s, want.rt_s, 1e-7);
            assert_relative("mtt", got.mtt_s, want.mtt_s, 1e-12);
            assert_relative("wiauc", got.wiauc, want.wiauc, 1e-7);
            assert_relative("wir", got.wir, want.wir, 1e-6);
        }
    }

    #[test]
    fn lognormal_closed_forms() {
        let (m, s) = (1.7f64, 0.45f64);
        let params: Params = [0.0, 2.0, 1.0, m, s];
        let got = perfusion(BolusModel::Lognormal, &params).unwrap();
        assert_relative("ttp", got.ttp_s, (m - s * s).exp(), 1e-12);
        assert_relative("mtt", got.mtt_s, (m + s * s / 2.0).exp(), 1e-12);
        assert_eq!(got.t0_s, 1.0);
    }

    #[test]
    fn gamma_variate_closed_forms() {
        let (a, beta) = (2.5f64, 1.2f64);
        let params = BolusModel::GammaVariate.from_published(&[0.0, 0.01, 3.0, a, beta]);
        let got = perfusion(BolusModel::GammaVariate, &params).unwrap();
        assert_relative("ttp", got.ttp_s, a * beta, 1e-12);
        assert_relative("mtt", got.mtt_s, (a + 1.0) * beta, 1e-12);
        let pe = 0.01 * (a * beta).powf(a) * (-a).exp();
        assert_relative("pe", got.pe, pe, 1e-12);
    }

    #[test]
    fn noise_free_fit_recovers_parameters() {
        for case in reference().cases {
            let model = model_of(&case);
            let t: Vec<f64> = (0..160).map(|i| f64::from(i) * 0.25).collect();
            let truth = model.from_published(&case.params);
            let y: Vec<f64> = t.iter().map(|&t| model.value(&truth, t)).collect();
            let fit = fit_model(model, &t, &y).unwrap();
            assert!(fit.r2 > 0.999_999, "{} r2 {}", case.model, fit.r2);
            let got = model.published(&fit.params);
            for ((name, value), want) in got.iter().zip(case.params) {
                assert_relative(&format!("{} {name}", case.model), *value, want, 1e-4);
            }
        }
    }

    #[test]
    fn noisy_fit_matches_curve_fit() {
        for case in reference().cases {
            let model = model_of(&case);
            let noisy = &case.noisy;
            let fit = fit_model(model, &noisy.t, &noisy.y).unwrap();
            // The same least-squares minimum as scipy, reached from our own starts.
            assert!(
                fit.sse <= noisy.sse * (1.0 + 1e-6),
                "{} sse {} vs scipy {}",
                case.model,
                fit.sse,
                noisy.sse
            );
            let got = model.published(&fit.params);
            for ((name, value), want) in got.iter().zip(noisy.params) {
                assert_relative(&format!("{} {name}", case.model), *value, want, 1e-3);
            }
        }
    }

    #[test]
    fn noisy_fit_recovers_peak_timing() {
        // 3% noise on 160 samples leaves the time to peak within 5% of the truth.
        for case in reference().cases {
            let model = model_of(&case);
            let fit = fit_model(model, &case.noisy.t, &case.noisy.y).unwrap();
            let got = fit.perfusion.unwrap();
            let want = &case.perfusion;
            let peak_time = got.t0_s + got.ttp_s;
            let true_peak_time = case.params[2] + want.ttp_s;
            assert_relative("peak time", peak_time, true_peak_time, 0.05);
            assert_relative("pe", got.pe, want.pe, 0.05);
        }
    }
}

mod analysis {
    use super::*;
    use ceus_edge::tic::{analyse, AnalysisSettings, FrameSample, TicStatus};

    fn curve_from(t: &[f64], power: &[f64], flags: &[FrameFlags]) -> TicCurve {
        let samples = t
            .iter()
            .zip(power)
            .enumerate()
            .map(|(i, (&time_s, &power))| FrameSample {
                index: i as u64,
                time_s,
                mean_grey: 0.0,
                power,
                view_power: power,
                tissue_percentile: 100,
                same_as_previous: false,
                motion: None,
            })
            .collect();
        TicCurve {
            roi: Rect::new(0, 0, 10, 10),
            roi_pixels: 100,
            samples,
            flags: flags.to_vec(),
            repeated_frames: 0,
            warnings: Vec::new(),
        }
    }

    fn run(t: &[f64], power: &[f64]) -> ceus_edge::tic::TicReport {
        let flags = vec![FrameFlags::default(); t.len()];
        analyse(
            &curve_from(t, power, &flags),
            60.0,
            &AnalysisSettings::default(),
        )
        .report
    }

    fn times(n: usize, fps: f64) -> Vec<f64> {
        (0..n).map(|i| i as f64 / fps).collect()
    }

    /// Deterministic noise in -1..1 from a seed.
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn bolus_is_fitted_with_arrival() {
        let t = times(300, 10.0);
        let power: Vec<f64> = t.iter().map(|&t| lesion_power(t)).collect();
        let report = run(&t, &power);
        assert_eq!(report.status, TicStatus::Ok);
        let fit = report.fit.as_ref().unwrap();
        assert!(fit.r2.unwrap() > 0.9999);
        // The bolus starts at 2 s; the smoothed curve crosses 5% of the peak soon after.
        let arrival = report.bolus_arrival_s.unwrap();
        assert!((2.0..3.5).contains(&arrival), "arrival {arrival}");
        let peak = report.peak.unwrap();
        assert!((peak.time_s - 6.5).abs() <= 0.15, "peak {}", peak.time_s);
        assert_eq!(report.fits.len(), 2);
        // The data are a gamma variate, so that model wins.
        assert_eq!(fit.model, ceus_edge::tic::model::BolusModel::GammaVariate);
    }

    #[test]
    fn decreasing_start_is_reported() {
        let t = times(200, 10.0);
        let power: Vec<f64> = t.iter().map(|&t| 1e-5 + 0.02 * (-t / 4.0).exp()).collect();
        let report = run(&t, &power);
        assert_eq!(report.status, TicStatus::DecreasingAtStart);
        assert!(report.fit.is_none());
        assert!(report.bolus_arrival_s.is_none());
    }

    #[test]
    fn flat_curve_has_no_enhancement() {
        let t = times(200, 10.0);
        let power: Vec<f64> = noise(200, 4)
            .iter()
            .map(|n| 1e-4 * (1.0 + 0.02 * n))
            .collect();
        let report = run(&t, &power);
        assert_eq!(report.status, TicStatus::NoEnhancement);
        assert!(report.peak.is_none());
        assert!(report.fit.is_none());
    }

    #[test]
    fn constant_curve_has_no_enhancement() {
        let t = times(50, 10.0);
        let report = run(&t, &[3e-4; 50]);
        assert_eq!(report.status, TicStatus::NoEnhancement);
    }

    #[test]
    fn few_frames_are_too_short() {
        let t = times(5, 1.0);
        let power: Vec<f64> = t.iter().map(|&t| lesion_power(t + 4.0)).collect();
        let report = run(&t, &power);
        assert_eq!(report.status, TicStatus::TooShort);
        assert!(report.fit.is_none());
        assert!(report.peak.is_some());
    }

    #[test]
    fn brief_clip_is_too_short() {
        let t = times(45, 30.0);
        let power: Vec<f64> = t.iter().map(|&t| lesion_power(t + 4.0)).collect();
        assert_eq!(run(&t, &power).status, TicStatus::TooShort);
    }

    #[test]
    fn all_flagged_frames() {
        let t = times(40, 10.0);
        let flags = vec![FrameFlags::BLACK; 40];
        let curve = curve_from(&t, &[1e-4; 40], &flags);
        let report = analyse(&curve, 60.0, &AnalysisSettings::default()).report;
        assert_eq!(report.status, TicStatus::AllFlagged);
        assert!(report.peak.is_none());
        assert_eq!(report.flags.counts.black, 40);
    }

    #[test]
    fn single_and_no_frames() {
        assert_eq!(run(&[0.0], &[1e-3]).status, TicStatus::SingleFrame);
        assert_eq!(run(&[], &[]).status, TicStatus::NoFrames);
    }

    #[test]
    fn report_has_no_nan() {
        // Every status must serialise without null in place of a computed number.
        let cases: Vec<(Vec<f64>, Vec<f64>)> = vec![
            (
                times(300, 10.0),
                times(300, 10.0).iter().map(|&t| lesion_power(t)).collect(),
            ),
            (times(1, 10.0), vec![1e-3]),
            (times(50, 10.0), vec![3e-4; 50]),
        ];
        for (t, power) in cases {
            let report = run(&t, &power);
            let json = serde_json::to_string(&report).unwrap();
            assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
        }
    }

    #[test]
    fn peak_frame_has_ninety_percent_power() {
        let mut screen = Screen::new(7);
        screen.events = vec![
            (64, Event::Flash),
            (65, Event::Frozen),
            (66, Event::Motion(5, 2)),
            (63, Event::Black),
        ];
        let roi = screen.lesion_roi();
        let settings = TicSettings::default();
        let mut tracker = TicTracker::new(&screen.layout(), roi, settings).unwrap();
        for index in 0..140 {
            tracker.push(&screen.render(index)).unwrap();
        }
        let analysis = tracker.analyse();
        let report = &analysis.report;
        assert_eq!(report.status, TicStatus::Ok, "{:?}", report.warnings);
        let peak = report.peak.as_ref().unwrap();
        let truth = lesion_power(peak.time_s);
        let true_peak = lesion_power(6.5);
        assert!(
            truth >= 0.9 * true_peak,
            "peak {} power {truth}",
            peak.time_s
        );
        assert!(![63, 64, 65, 66].contains(&peak.frame_index));
        // Frame 65 repeats frame 64 for 0.1 s: skipped as a repeat, not flagged.
        assert_eq!(report.flags.counts.flagged, 3);
        assert_eq!(report.repeated_frames, 1);
    }
}

mod layout {
    use super::*;

    /// The chrome of [`Screen`]: the grey bar and the two text boxes.
    const CHROME: [Rect; 3] = [
        Rect::new(0, 0, 320, 14),
        Rect::new(10, 18, 100, 12),
        Rect::new(200, 186, 100, 10),
    ];

    fn overlaps(a: &Rect, b: &Rect) -> bool {
        u64::from(a.x) < b.right()
            && u64::from(b.x) < a.right()
            && u64::from(a.y) < b.bottom()
            && u64::from(b.y) < a.bottom()
    }

    fn detect(screen: &mut Screen, frames: u64) -> Layout {
        let mut detector =
            LayoutDetector::new(screen.width, screen.height, DetectSettings::default());
        for index in 0..frames {
            detector.push(&screen.render(index * 5)).unwrap();
        }
        detector.detect(&[])
    }

    #[test]
    fn dual_views_are_found() {
        let mut screen = Screen::new(11);
        let layout = detect(&mut screen, 12);
        assert_eq!(layout.kind, LayoutKind::Dual);
        let bmode = layout.bmode.unwrap();
        assert_eq!((bmode.w, bmode.h), (layout.contrast.w, layout.contrast.h));
        assert!(
            screen.contrast.contains_rect(&layout.contrast),
            "{}",
            layout.contrast
        );
        assert!(screen.bmode.contains_rect(&bmode), "{bmode}");
        // The fan spans the full view width and all but its first rows.
        assert!(layout.contrast.w >= 136, "{}", layout.contrast);
        assert!(layout.contrast.h >= 125, "{}", layout.contrast);
        for chrome in CHROME {
            assert!(!overlaps(&chrome, &layout.contrast), "chrome {chrome}");
            assert!(!overlaps(&chrome, &bmode), "chrome {chrome}");
        }
    }

    #[test]
    fn mask_follows_sector() {
        let mut screen = Screen::new(12);
        let layout = detect(&mut screen, 12);
        let view = screen.contrast;
        let mut wrong = 0;
        let mut total = 0;
        for vy in 0..view.h {
            for vx in 0..view.w {
                let (x, y) = (view.x + vx, view.y + vy);
                let in_fan = screen.sector[(vy * view.w + vx) as usize];
                total += 1;
                if in_fan != layout.mask().contains(x, y) {
                    wrong += 1;
                }
            }
        }
        // Only pixels of the fan that lie outside the detected view rectangle may differ.
        assert!(
            wrong * 100 < total * 3,
            "{wrong} of {total} pixels misclassified"
        );
    }

    #[test]
    fn single_view_is_found() {
        let mut screen = Screen::new(13);
        screen.single = true;
        let layout = detect(&mut screen, 12);
        assert_eq!(layout.kind, LayoutKind::Single);
        assert!(layout.bmode.is_none());
        assert!(
            screen.contrast.contains_rect(&layout.contrast),
            "{}",
            layout.contrast
        );
        assert!(layout.contrast.w >= 136);
    }

    #[test]
    fn repeated_frames_find_same_layout() {
        let expected = detect(&mut Screen::new(11), 12);
        let mut screen = Screen::new(11);
        let mut detector =
            LayoutDetector::new(screen.width, screen.height, DetectSettings::default());
        for index in 0..12 {
            let frame = screen.render(index * 5);
            for _ in 0..6 {
                detector.push(&frame).unwrap();
            }
        }
        assert_eq!(detector.frames(), 12);
        assert_eq!(detector.pushed(), 72);
        let layout = detector.detect(&[]);
        assert_eq!(layout.kind, LayoutKind::Dual);
        assert_eq!(layout.contrast, expected.contrast);
        assert_eq!(layout.bmode, expected.bmode);
    }

    #[test]
    fn static_screen_has_no_layout() {
        let mut detector = LayoutDetector::new(64, 48, DetectSettings::default());
        let mut frame = Frame::new(64, 48, PixelFormat::Gray8);
        frame.data.fill(90);
        for _ in 0..5 {
            detector.push(&frame).unwrap();
        }
        let layout = detector.detect(&[]);
        assert_eq!(layout.kind, LayoutKind::None);
        assert_eq!(layout.contrast, Rect::new(0, 0, 64, 48));
    }

    #[test]
    fn region_hint_sets_dual_views() {
        let mut screen = Screen::new(14);
        let mut detector =
            LayoutDetector::new(screen.width, screen.height, DetectSettings::default());
        detector.push(&screen.render(0)).unwrap();
        let layout = detector.detect(&[screen.contrast, screen.bmode]);
        assert_eq!(layout.kind, LayoutKind::Dual);
        assert_eq!(layout.contrast, screen.contrast);
        assert_eq!(layout.bmode, Some(screen.bmode));
    }

    #[test]
    fn detector_rejects_other_size() {
        let mut detector = LayoutDetector::new(64, 48, DetectSettings::default());
        assert!(detector
            .push(&Frame::new(48, 64, PixelFormat::Gray8))
            .is_err());
    }
}

mod auto_roi {
    use super::*;
    use ceus_edge::tic::auto_roi::{smoothing_weight, AutoRoi, AutoRoiSettings, MapRole};
    use ceus_edge::tic::linearise::PowerTable;
    use ceus_edge::tic::AnalysisSettings;

    #[test]
    fn auto_roi_lands_on_lesion() {
        let mut screen = Screen::new(21);
        screen.lesion = (95.0, 100.0, 16.0);
        let layout = screen.layout();
        let settings = TicSettings::default();
        let mut tracker = TicTracker::new(&layout, layout.contrast, settings.clone()).unwrap();
        let frames: Vec<Frame> = (0..120).map(|i| screen.render(i)).collect();
        for frame in &frames {
            tracker.push(frame).unwrap();
        }
        let curve = tracker.finish();
        let report = ceus_edge::tic::analyse(&curve, 60.0, &settings.analysis).report;
        let roi_settings = AutoRoiSettings::default();
        let roles = AutoRoi::roles(&curve, &report, &AnalysisSettings::default());
        let weight = smoothing_weight(0.1, roi_settings.smoothing_s);
        let table = PowerTable::new(60.0).unwrap();
        let mut map = AutoRoi::new(&layout, table, roi_settings);
        for (frame, role) in frames.iter().zip(roles) {
            match role {
                MapRole::Baseline => map.push_baseline(frame).unwrap(),
                MapRole::Track => drop(map.track(frame, weight).unwrap()),
                MapRole::Skip => {}
            }
        }
        let roi = map.propose().unwrap();
        let (cx, cy) = (screen.contrast.x + 95, screen.contrast.y + 100);
        assert!(layout.contrast.contains_rect(&roi));
        let centre_x = roi.x + roi.w / 2;
        let centre_y = roi.y + roi.h / 2;
        assert!(
            centre_x.abs_diff(cx) <= 8 && centre_y.abs_diff(cy) <= 8,
            "roi {roi}"
        );
    }
}

mod pipeline {
    use super::*;
    use ceus_edge::source::{FrameSource, SourceError, SourceInfo, TimingSource};
    use ceus_edge::tic::pipeline::{run, PipelineOptions, RoiChoice};
    use std::rc::Rc;

    /// Frames held in memory, served as a source.
    struct MemorySource {
        info: SourceInfo,
        frames: Rc<Vec<Frame>>,
        next: usize,
    }

    impl FrameSource for MemorySource {
        fn info(&self) -> &SourceInfo {
            &self.info
        }

        fn read_frame(&mut self, frame: &mut Frame) -> Result<bool, SourceError> {
            let Some(next) = self.frames.get(self.next) else {
                return Ok(false);
            };
            frame.clone_from(next);
            self.next += 1;
            Ok(true)
        }
    }

    fn opener(frames: Rc<Vec<Frame>>) -> impl FnMut() -> Result<Box<dyn FrameSource>, SourceError> {
        move || {
            let first = &frames[0];
            let info = SourceInfo {
                container: "memory",
                width: first.width,
                height: first.height,
                frames: Some(frames.len() as u64),
                fps: Some(10.0),
                timing: TimingSource::UserFps,
            };
            Ok(Box::new(MemorySource {
                info,
                frames: Rc::clone(&frames),
                next: 0,
            }))
        }
    }

    #[test]
    fn detected_layout_and_auto_roi() {
        let mut screen = Screen::new(31);
        screen.events = vec![(40, Event::Flash), (80, Event::Black)];
        let frames: Rc<Vec<Frame>> = Rc::new((0..140).map(|i| screen.render(i)).collect());
        let options = PipelineOptions {
            roi: RoiChoice::Auto,
            ..PipelineOptions::default()
        };
        let result = run(opener(frames), &options).unwrap();
        let json = serde_json::to_value(result.document("memory".to_string())).unwrap();

        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["layout"]["kind"], "dual");
        assert_eq!(json["roi_source"], "auto");
        assert_eq!(json["status"], "ok", "{json}");
        assert_eq!(json["frames"], 140);
        assert_eq!(json["fps"], 10.0);
        assert_eq!(json["flags"]["counts"]["flash"], 1);
        assert_eq!(json["flags"]["counts"]["black"], 1);
        assert!(json["bolus_arrival_s"].is_f64());
        assert!(json["peak"]["frame_index"].is_u64());
        assert!(json["peak"]["time_s"].is_f64());
        for key in [
            "model", "r2", "pe", "ttp_s", "rt_s", "mtt_s", "wiauc", "wir", "params",
        ] {
            assert!(!json["fit"][key].is_null(), "fit.{key} missing: {json}");
        }
        assert_eq!(json["fits"].as_array().unwrap().len(), 2);
        let roi = result.roi;
        let (cx, cy) = (screen.contrast.x + 70, screen.contrast.y + 80);
        assert!(roi.x <= cx && u64::from(cx) < roi.right(), "roi {roi}");
        assert!(roi.y <= cy && u64::from(cy) < roi.bottom(), "roi {roi}");
        let peak_time = json["peak"]["time_s"].as_f64().unwrap();
        assert!(lesion_power(peak_time) >= 0.9 * lesion_power(6.5));
    }

    #[test]
    fn roi_outside_view_names_both() {
        let mut screen = Screen::new(32);
        let frames: Rc<Vec<Frame>> = Rc::new((0..20).map(|i| screen.render(i)).collect());
        let options = PipelineOptions {
            roi: RoiChoice::Rect(Rect::new(0, 0, 30, 30)),
            ..PipelineOptions::default()
        };
        let error = run(opener(frames), &options).unwrap_err().to_string();
        assert!(error.contains("0,0,30,30"), "{error}");
        assert!(error.contains("contrast view"), "{error}");
    }

    fn cli(args: &[&str]) -> std::process::Output {
        crate::common::ceus_edge()
            .arg("tic")
            .args(args)
            .output()
            .unwrap()
    }

    #[test]
    fn cli_rejects_bad_options() {
        for args in [
            &["x.dcm", "--dynamic-range", "0"][..],
            &["x.dcm", "--dynamic-range", "nan"],
            &["x.dcm", "--fps", "-2"],
            &["x.dcm", "--fps", "0"],
            &["x.dcm", "--roi", "1,2,3"],
            &["x.dcm", "--bmode-view", "0,0,10,10"],
        ] {
            let output = cli(args);
            assert_eq!(output.status.code(), Some(2), "{args:?}");
        }
    }

    #[test]
    fn cli_missing_input_is_runtime_error() {
        let output = cli(&["/nonexistent/input.dcm"]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("/nonexistent/input.dcm"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

mod phantom_peak {
    use ceus_edge::phantom::source::PhantomSource;
    use ceus_edge::phantom::{
        EventKind, EventRequest, FrameEvent, Phantom, PhantomConfig, Truth, ViewLayout,
    };
    use ceus_edge::source::{FrameSource, SourceError};
    use ceus_edge::tic::pipeline::{run, PipelineOptions, RoiChoice};

    /// Runs `tic` on one phantom exam with the lesion's bounding box as the ROI and the
    /// layout detected, and returns the reason when the chosen peak frame fails.
    fn check_exam(config: &PhantomConfig) -> Result<(), String> {
        check_exam_with(config, |truth| RoiChoice::Rect(truth.lesion_roi))
    }

    /// Runs `tic` on one phantom exam with the ROI `choose` picks from the truth and the
    /// layout detected, and returns the reason when the ROI lies mostly outside the
    /// lesion or the chosen peak frame fails.
    fn check_exam_with(
        config: &PhantomConfig,
        choose: impl Fn(&Truth) -> RoiChoice,
    ) -> Result<(), String> {
        let truth: Truth = Phantom::new(config.clone()).unwrap().truth().clone();
        let open = || -> Result<Box<dyn FrameSource>, SourceError> {
            Ok(Box::new(PhantomSource::new(
                Phantom::new(config.clone()).unwrap(),
            )))
        };
        let options = PipelineOptions {
            roi: choose(&truth),
            ..PipelineOptions::default()
        };
        let result = run(open, &options).map_err(|e| format!("error: {e}"))?;
        let inside = result
            .roi
            .intersection(&truth.lesion_roi)
            .map_or(0, |r| r.area());
        if 2 * inside < result.roi.area() {
            return Err(format!(
                "ROI {} lies mostly outside the lesion {}",
                result.roi, truth.lesion_roi
            ));
        }
        let report = &result.analysis.report;
        let peak = report
            .peak
            .as_ref()
            .ok_or_else(|| format!("no peak, status {:?}", report.status))?;
        let frame = truth
            .frames
            .get(peak.frame_index as usize)
            .ok_or_else(|| format!("peak frame {} out of range", peak.frame_index))?;
        let true_peak = truth
            .frames
            .iter()
            .filter(|f| f.event == FrameEvent::None)
            .map(|f| f.lesion_power)
            .fold(0.0, f64::max);
        if frame.event != FrameEvent::None {
            return Err(format!(
                "peak frame {} is a {:?} frame",
                frame.index, frame.event
            ));
        }
        if frame.lesion_power < 0.9 * true_peak {
            return Err(format!(
                "peak frame {} has {:.1}% of the peak power (status {:?})",
                frame.index,
                100.0 * frame.lesion_power / true_peak,
                report.status
            ));
        }
        Ok(())
    }

    #[test]
    fn phantom_peak_selection_rate() {
        let layouts = [ViewLayout::Dual, ViewLayout::Single];
        let frame_rates = [8.0, 15.0, 20.0];
        let every_event = vec![
            EventKind::Flash,
            EventKind::Freeze,
            EventKind::ProbeLift,
            EventKind::Motion,
        ];
        let mixes = [
            EventRequest::None,
            EventRequest::Listed(every_event),
            EventRequest::Rate(6.0),
        ];
        let mut cases = 0;
        let mut failures = Vec::new();
        for seed in 0..3u64 {
            for layout in layouts {
                for fps in frame_rates {
                    for events in &mixes {
                        let config = PhantomConfig {
                            seed: 1000 + seed,
                            frames: (30.0 * fps) as u32,
                            fps,
                            width: 320,
                            height: 240,
                            layout,
                            events: events.clone(),
                            ..PhantomConfig::default()
                        };
                        cases += 1;
                        if let Err(reason) = check_exam(&config) {
                            failures.push(format!(
                                "seed {} {layout:?} {fps} fps {events:?}: {reason}",
                                config.seed
                            ));
                        }
                    }
                }
            }
        }
        let rate = (cases - failures.len()) as f64 / cases as f64;
        println!(
            "phantom peak selection: {:.1}% of {cases} exams",
            100.0 * rate
        );
        for failure in &failures {
            println!("  {failure}");
        }
        assert!(rate >= 0.95, "rate {rate:.3}: {failures:#?}");
    }

    #[test]
    fn auto_roi_selection_rate() {
        let mut cases = 0;
        let mut failures = Vec::new();
        for seed in 0..6u64 {
            for layout in [ViewLayout::Dual, ViewLayout::Single] {
                for events in [EventRequest::None, EventRequest::Rate(6.0)] {
                    let config = PhantomConfig {
                        seed: 2000 + seed,
                        frames: 450,
                        fps: 15.0,
                        width: 320,
                        height: 240,
                        layout,
                        events: events.clone(),
                        ..PhantomConfig::default()
                    };
                    cases += 1;
                    if let Err(reason) = check_exam_with(&config, |_| RoiChoice::Auto) {
                        failures.push(format!(
                            "seed {} {layout:?} {events:?}: {reason}",
                            config.seed
                        ));
                    }
                }
            }
        }
        let rate = (cases - failures.len()) as f64 / cases as f64;
        println!("automatic ROI: {:.1}% of {cases} exams", 100.0 * rate);
        for failure in &failures {
            println!("  {failure}");
        }
        assert!(rate >= 0.9, "rate {rate:.3}: {failures:#?}");
    }
}
