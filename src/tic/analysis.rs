//! From a measured curve to a [`TicReport`]: baseline and noise, flat and truncated
//! curves, the bolus fits, the bolus arrival and the peak frame.

use super::fit::{fit_model, ModelFit};
use super::flags::{median_in_place, FrameFlags};
use super::model::{BolusModel, PARAMETERS};
use super::report::{
    finite, FitReport, FlagCounts, FlagReport, FlaggedFrame, PeakReport, TicReport, TicStatus,
};
use super::tracker::TicCurve;

/// Thresholds of the analysis, with their defaults.
#[derive(Clone, Debug)]
pub struct AnalysisSettings {
    /// Width of the centred moving average, seconds; widened to cover at least three
    /// frames. Default 1.0.
    pub smooth_s: f64,
    /// Length of the baseline window from the first unflagged frame, seconds; at least
    /// three frames. Default 2.0.
    pub baseline_s: f64,
    /// The arrival margin above baseline is this many noise sigmas, and at least
    /// [`AnalysisSettings::arrival_fraction`] of the enhancement. Default 3.
    pub arrival_sigmas: f64,
    /// Default 0.05.
    pub arrival_fraction: f64,
    /// Unflagged frames in a row that must stay above the margin. Default 3.
    pub arrival_sustain: usize,
    /// A curve whose smoothed maximum exceeds the baseline by no more than this many
    /// noise sigmas is flat. Default 5.
    pub flat_sigmas: f64,
    /// ... or by no more than this fraction of the baseline. Default 0.1.
    pub flat_fraction: f64,
    /// Peak candidates have a smoothed enhancement within this fraction of the
    /// smoothed maximum. Default 0.05.
    pub peak_tolerance: f64,
    /// Candidates within this many seconds of the one closest to the fitted maximum
    /// compete on motion NCC. Default 0.25.
    pub peak_time_window_s: f64,
    /// Peak candidates this many frames or fewer from a flagged frame are used only
    /// when no other candidate exists, because the edges of an event are often
    /// corrupted below the detection thresholds. Default 1.
    pub peak_guard_frames: usize,
    /// Shortest span of unflagged frames that is fitted, seconds. Default 2.0.
    pub min_fit_duration_s: f64,
    /// A selected fit with R^2 below this gives [`TicStatus::PoorFit`]. Default 0.5.
    pub min_r2: f64,
}

impl Default for AnalysisSettings {
    fn default() -> AnalysisSettings {
        AnalysisSettings {
            smooth_s: 1.0,
            baseline_s: 2.0,
            arrival_sigmas: 3.0,
            arrival_fraction: 0.05,
            arrival_sustain: 3,
            flat_sigmas: 5.0,
            flat_fraction: 0.1,
            peak_tolerance: 0.05,
            peak_time_window_s: 0.25,
            peak_guard_frames: 1,
            min_fit_duration_s: 2.0,
            min_r2: 0.5,
        }
    }
}

/// The report and the selected model's value at every frame time.
#[derive(Clone, Debug)]
pub struct TicAnalysis {
    pub report: TicReport,
    /// Fitted intensity per frame of the curve, `None` without a fit.
    pub fitted: Vec<Option<f64>>,
}

/// The unflagged samples of a curve.
struct Clean {
    /// Positions in the curve's sample list.
    positions: Vec<usize>,
    t: Vec<f64>,
    power: Vec<f64>,
    smoothed: Vec<f64>,
}

/// Analyses `curve`, measured with `dynamic_range_db`.
pub fn analyse(
    curve: &TicCurve,
    dynamic_range_db: f64,
    settings: &AnalysisSettings,
) -> TicAnalysis {
    let mut report = empty_report(curve, dynamic_range_db);
    let mut fitted = vec![None; curve.samples.len()];
    let clean = clean_samples(curve, settings);

    let early = match curve.samples.len() {
        0 => Some(TicStatus::NoFrames),
        1 => Some(TicStatus::SingleFrame),
        _ if clean.t.is_empty() => Some(TicStatus::AllFlagged),
        _ => None,
    };
    if let Some(status) = early {
        report.status = status;
        if status == TicStatus::SingleFrame && !clean.t.is_empty() {
            report.peak = Some(peak_at(curve, &clean, 0, None));
            report
                .warnings
                .push("the only frame is reported as the peak, unconfirmed".to_string());
        }
        return TicAnalysis { report, fitted };
    }

    let (baseline, sigma) = baseline_and_noise(&clean, settings);
    report.baseline = finite(baseline);
    report.noise_sigma = finite(sigma);
    let max_index = argmax(&clean.smoothed);
    let enhancement = clean.smoothed[max_index] - baseline;

    let span = clean.t[clean.t.len() - 1] - clean.t[0];
    if clean.t.len() <= PARAMETERS || span < settings.min_fit_duration_s {
        report.status = TicStatus::TooShort;
        report.peak = Some(select_peak(
            curve,
            &clean,
            baseline,
            clean.t[max_index],
            settings,
        ));
        return TicAnalysis { report, fitted };
    }
    // A maximum at the start leaves no baseline before it, so the rise is measured
    // down to the lowest smoothed value instead.
    if clean.t[max_index] - clean.t[0] <= 0.5 * settings.smooth_s {
        let lowest = clean.smoothed.iter().copied().fold(f64::INFINITY, f64::min);
        let drop = clean.smoothed[max_index] - lowest;
        if drop <= flat_limit(sigma, lowest, settings) {
            report.status = TicStatus::NoEnhancement;
            return TicAnalysis { report, fitted };
        }
        report.status = TicStatus::DecreasingAtStart;
        report.peak = Some(select_peak(
            curve,
            &clean,
            lowest,
            clean.t[max_index],
            settings,
        ));
        return TicAnalysis { report, fitted };
    }
    if enhancement <= flat_limit(sigma, baseline, settings) {
        report.status = TicStatus::NoEnhancement;
        return TicAnalysis { report, fitted };
    }

    report.bolus_arrival_s = bolus_arrival(&clean, baseline, sigma, enhancement, settings);
    let fits: Vec<ModelFit> = [BolusModel::Lognormal, BolusModel::GammaVariate]
        .into_iter()
        .filter_map(|model| fit_model(model, &clean.t, &clean.power))
        .collect();
    report.fits = fits.iter().map(FitReport::from_fit).collect();
    let selected = fits
        .iter()
        .filter(|fit| fit.aic.is_finite() && fit.perfusion.is_some())
        .min_by(|a, b| a.aic.total_cmp(&b.aic));

    let Some(selected) = selected else {
        report.status = TicStatus::FitFailed;
        report.peak = Some(select_peak(
            curve,
            &clean,
            baseline,
            clean.t[max_index],
            settings,
        ));
        return TicAnalysis { report, fitted };
    };
    for (value, sample) in fitted.iter_mut().zip(&curve.samples) {
        *value = finite(selected.model.value(&selected.params, sample.time_s));
    }
    report.fit = Some(FitReport::from_fit(selected));
    report.status = if selected.r2 >= settings.min_r2 {
        TicStatus::Ok
    } else {
        TicStatus::PoorFit
    };
    let target = match (report.status, selected.perfusion) {
        (TicStatus::Ok, Some(p)) => p.t0_s + p.ttp_s,
        _ => clean.t[max_index],
    };
    let mut peak = select_peak(curve, &clean, baseline, target, settings);
    if report.status == TicStatus::Ok {
        peak.fitted_peak_s = finite(target);
    }
    report.peak = Some(peak);
    TicAnalysis { report, fitted }
}

/// Largest rise above `level` that still counts as a flat curve.
fn flat_limit(sigma: f64, level: f64, settings: &AnalysisSettings) -> f64 {
    (settings.flat_sigmas * sigma).max(settings.flat_fraction * level.abs())
}

fn empty_report(curve: &TicCurve, dynamic_range_db: f64) -> TicReport {
    TicReport {
        status: TicStatus::Ok,
        frames: curve.samples.len() + curve.repeated_frames,
        repeated_frames: curve.repeated_frames,
        unflagged_frames: curve.flags.iter().filter(|f| f.is_empty()).count(),
        roi: curve.roi.to_array(),
        roi_pixels: curve.roi_pixels,
        dynamic_range_db,
        baseline: None,
        noise_sigma: None,
        bolus_arrival_s: None,
        peak: None,
        fit: None,
        fits: Vec::new(),
        selected_by: "aic",
        flags: flag_report(curve),
        warnings: curve.warnings.clone(),
    }
}

fn flag_report(curve: &TicCurve) -> FlagReport {
    let mut report = FlagReport {
        counts: FlagCounts::default(),
        frames: Vec::new(),
    };
    for (sample, &flags) in curve.samples.iter().zip(&curve.flags) {
        if flags.is_empty() {
            continue;
        }
        let counts = &mut report.counts;
        counts.flagged += 1;
        counts.flash += usize::from(flags.contains(FrameFlags::FLASH));
        counts.frozen += usize::from(flags.contains(FrameFlags::FROZEN));
        counts.black += usize::from(flags.contains(FrameFlags::BLACK));
        counts.motion += usize::from(flags.contains(FrameFlags::MOTION));
        report.frames.push(FlaggedFrame {
            frame_index: sample.index,
            time_s: sample.time_s,
            flags,
            shift_px: sample.motion.map(|m| [m.dx, m.dy]),
            ncc: sample.motion.and_then(|m| finite(m.ncc)),
        });
    }
    report
}

/// Collects the unflagged, finite samples and their centred moving average.
fn clean_samples(curve: &TicCurve, settings: &AnalysisSettings) -> Clean {
    let mut clean = Clean {
        positions: Vec::new(),
        t: Vec::new(),
        power: Vec::new(),
        smoothed: Vec::new(),
    };
    for (position, (sample, flags)) in curve.samples.iter().zip(&curve.flags).enumerate() {
        if flags.is_empty() && sample.time_s.is_finite() && sample.power.is_finite() {
            clean.positions.push(position);
            clean.t.push(sample.time_s);
            clean.power.push(sample.power);
        }
    }
    let half = 0.5 * settings.smooth_s.max(2.5 * median_interval(&clean.t));
    clean.smoothed = moving_average(&clean.t, &clean.power, half);
    clean
}

fn median_interval(t: &[f64]) -> f64 {
    let mut steps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    median_in_place(&mut steps)
}

/// Mean of the samples within `half` seconds of each sample.
fn moving_average(t: &[f64], y: &[f64], half: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(y.len());
    let (mut start, mut end, mut sum) = (0, 0, 0.0);
    for &centre in t {
        while end < t.len() && t[end] <= centre + half {
            sum += y[end];
            end += 1;
        }
        while t[start] < centre - half {
            sum -= y[start];
            start += 1;
        }
        out.push(sum / (end - start) as f64);
    }
    out
}

/// Median and 1.4826 MAD of the raw power in the baseline window, which ends at the
/// smoothed maximum at the latest.
fn baseline_and_noise(clean: &Clean, settings: &AnalysisSettings) -> (f64, f64) {
    let limit = clean.t[0] + settings.baseline_s;
    let max_index = argmax(&clean.smoothed);
    let in_window = clean.t.iter().take_while(|&&t| t <= limit).count();
    let count = in_window.max(3).min(max_index.max(1)).min(clean.t.len());
    let mut window: Vec<f64> = clean.power[..count].to_vec();
    let baseline = median_in_place(&mut window);
    if count < 3 {
        return (baseline, 0.0);
    }
    let mut deviations: Vec<f64> = window.iter().map(|v| (v - baseline).abs()).collect();
    (baseline, 1.4826 * median_in_place(&mut deviations))
}

fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// First time the smoothed curve exceeds the baseline by the margin for
/// `arrival_sustain` unflagged frames in a row.
fn bolus_arrival(
    clean: &Clean,
    baseline: f64,
    sigma: f64,
    enhancement: f64,
    settings: &AnalysisSettings,
) -> Option<f64> {
    let margin = (settings.arrival_sigmas * sigma).max(settings.arrival_fraction * enhancement);
    let sustain = settings.arrival_sustain.max(1);
    let above: Vec<bool> = clean
        .smoothed
        .iter()
        .map(|&v| v > baseline + margin)
        .collect();
    let first = above
        .windows(sustain)
        .position(|run| run.iter().all(|&a| a))?;
    finite(clean.t[first])
}

/// Picks the peak frame. Candidates are unflagged frames whose smoothed enhancement is
/// within `peak_tolerance` of the maximum. Those within `peak_time_window_s` of the
/// candidate closest to `target` compete on motion NCC.
fn select_peak(
    curve: &TicCurve,
    clean: &Clean,
    baseline: f64,
    target: f64,
    settings: &AnalysisSettings,
) -> PeakReport {
    let max = clean.smoothed[argmax(&clean.smoothed)];
    let threshold = baseline + (1.0 - settings.peak_tolerance) * (max - baseline);
    let near_max: Vec<usize> = (0..clean.t.len())
        .filter(|&i| clean.smoothed[i] >= threshold)
        .collect();
    let guard = settings.peak_guard_frames;
    let clear_of_events = |i: &usize| {
        let position = clean.positions[*i];
        let start = position.saturating_sub(guard);
        let end = (position + guard + 1).min(curve.flags.len());
        curve.flags[start..end].iter().all(|f| f.is_empty())
    };
    let guarded: Vec<usize> = near_max.iter().copied().filter(clear_of_events).collect();
    let candidates = if guarded.is_empty() {
        near_max
    } else {
        guarded
    };
    let distance = |i: usize| (clean.t[i] - target).abs();
    let nearest = candidates
        .iter()
        .copied()
        .min_by(|&a, &b| distance(a).total_cmp(&distance(b)))
        .unwrap_or(argmax(&clean.smoothed));
    let reach = distance(nearest) + settings.peak_time_window_s;
    let ncc = |i: usize| {
        curve.samples[clean.positions[i]]
            .motion
            .map_or(f64::NEG_INFINITY, |m| m.ncc)
    };
    let chosen = candidates
        .iter()
        .copied()
        .filter(|&i| distance(i) <= reach)
        .max_by(|&a, &b| {
            ncc(a)
                .total_cmp(&ncc(b))
                .then(distance(b).total_cmp(&distance(a)))
        })
        .unwrap_or(nearest);
    peak_at(curve, clean, chosen, None)
}

fn peak_at(curve: &TicCurve, clean: &Clean, i: usize, fitted_peak_s: Option<f64>) -> PeakReport {
    let sample = &curve.samples[clean.positions[i]];
    PeakReport {
        frame_index: sample.index,
        time_s: sample.time_s,
        power: sample.power,
        smoothed_power: clean.smoothed[i],
        ncc: sample.motion.and_then(|m| finite(m.ncc)),
        fitted_peak_s,
    }
}
