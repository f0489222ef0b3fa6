//! The phantom: determinism, the written DICOM and Y4M files, the ground truth, and the
//! events it records.

use std::path::{Path, PathBuf};
use std::process::Command;

use ceus_edge::frame::Frame;
use ceus_edge::geometry::Rect;
use ceus_edge::phantom::scene::Sector;
use ceus_edge::phantom::source::PhantomSource;
use ceus_edge::phantom::{
    grey_to_power, write_exam, EventKind, EventRequest, ExamFormat, FrameEvent, Phantom,
    PhantomConfig, Truth, ViewLayout,
};
use ceus_edge::source::{FrameSource, OpenOptions, TimingSource};
use dicom_dictionary_std::tags;
use sha2::{Digest, Sha256};

fn small_config(seed: u64) -> PhantomConfig {
    PhantomConfig {
        seed,
        frames: 40,
        fps: 10.0,
        width: 240,
        height: 180,
        ..PhantomConfig::default()
    }
}

/// Builds a config of 20 s at 10 fps, long enough for every listed event.
fn eventful_config(seed: u64) -> PhantomConfig {
    PhantomConfig {
        seed,
        frames: 200,
        fps: 10.0,
        width: 320,
        height: 240,
        events: EventRequest::Listed(vec![
            EventKind::Flash,
            EventKind::Freeze,
            EventKind::ProbeLift,
            EventKind::Motion,
        ]),
        ..PhantomConfig::default()
    }
}

fn render_all(config: &PhantomConfig) -> (Truth, Vec<Frame>) {
    let phantom = Phantom::new(config.clone()).unwrap();
    let truth = phantom.truth().clone();
    let mut renderer = phantom.into_renderer();
    let mut frames = Vec::new();
    while let Some(frame) = renderer.next_frame() {
        frames.push(frame.clone());
    }
    (truth, frames)
}

fn write(config: &PhantomConfig, dir: &Path, format: ExamFormat) -> PathBuf {
    let (_, paths) = write_exam(config, dir, format).unwrap();
    paths.exam
}

fn pixels_in_sector(frame: &Frame, sector: &Sector) -> Vec<u8> {
    let mut values = Vec::new();
    for y in 0..frame.height {
        for x in 0..frame.width {
            if sector.contains(x, y) {
                values.push(frame.data[(y * frame.width + x) as usize]);
            }
        }
    }
    values
}

fn mean(values: &[u8]) -> f64 {
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64
}

#[test]
fn phantom_same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(7);
    let a = write(&config, &dir.path().join("a"), ExamFormat::Dicom);
    let b = write(&config, &dir.path().join("b"), ExamFormat::Dicom);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let truth_a = std::fs::read(dir.path().join("a/truth.json")).unwrap();
    let truth_b = std::fs::read(dir.path().join("b/truth.json")).unwrap();
    assert_eq!(truth_a, truth_b);
}

#[test]
fn phantom_other_seed_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(&small_config(7), &dir.path().join("a"), ExamFormat::Dicom);
    let b = write(&small_config(8), &dir.path().join("b"), ExamFormat::Dicom);
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(bytes_a.len(), bytes_b.len());
    assert_ne!(bytes_a, bytes_b);
}

#[test]
fn phantom_dicom_reads_back_with_dicom_object() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(3);
    let path = write(&config, dir.path(), ExamFormat::Dicom);
    let object = dicom_object::open_file(&path).unwrap();

    assert_eq!(
        object.meta().media_storage_sop_class_uid(),
        "1.2.840.10008.5.1.4.1.1.3.1"
    );
    assert_eq!(object.meta().transfer_syntax(), "1.2.840.10008.1.2.1");
    let int = |tag| object.element(tag).unwrap().to_int::<u32>().unwrap();
    assert_eq!(int(tags::NUMBER_OF_FRAMES), 40);
    assert_eq!(int(tags::ROWS), 180);
    assert_eq!(int(tags::COLUMNS), 240);
    assert_eq!(int(tags::BITS_ALLOCATED), 8);
    let frame_time = object
        .element(tags::FRAME_TIME)
        .unwrap()
        .to_float64()
        .unwrap();
    assert!(
        (frame_time - 100.0).abs() < 1e-9,
        "frame time {frame_time} ms"
    );
    let manufacturer = object
        .element(tags::MANUFACTURER)
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(manufacturer.trim_end(), "ceus-edge phantom");
    let photometric = object.element(tags::PHOTOMETRIC_INTERPRETATION).unwrap();
    assert_eq!(photometric.to_str().unwrap().trim_end(), "MONOCHROME2");

    let (_, frames) = render_all(&config);
    let expected: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
    let pixel_data = object
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap();
    assert_eq!(pixel_data.len(), expected.len());
    assert!(
        pixel_data.as_ref() == expected.as_slice(),
        "pixel data differs from the frames"
    );
}

#[test]
fn phantom_dicom_regions_match_layout() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(4);
    let (truth, paths) = write_exam(&config, dir.path(), ExamFormat::Dicom).unwrap();
    let object = dicom_object::open_file(&paths.exam).unwrap();
    let regions = object
        .element(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)
        .unwrap();
    let items = regions.items().unwrap();
    assert_eq!(items.len(), 3);
    let corners = |item: &dicom_object::InMemDicomObject| -> [u32; 4] {
        [
            tags::REGION_LOCATION_MIN_X0,
            tags::REGION_LOCATION_MIN_Y0,
            tags::REGION_LOCATION_MAX_X1,
            tags::REGION_LOCATION_MAX_Y1,
        ]
        .map(|tag| item.element(tag).unwrap().to_int::<u32>().unwrap())
    };
    let expected = |rect: Rect| [rect.x, rect.y, rect.x + rect.w - 1, rect.y + rect.h - 1];
    assert_eq!(
        corners(&items[0]),
        expected(truth.layout.bmode_view.unwrap())
    );
    assert_eq!(corners(&items[1]), expected(truth.layout.contrast_view));
    assert_eq!(corners(&items[2]), expected(truth.layout.grey_bar));
}

/// pydicom, an independent reader, reads the declared attributes and the same pixels.
#[test]
fn phantom_dicom_reads_back_with_pydicom() {
    // The venv that scripts/test.sh makes; a plain `cargo test` may run without it.
    let venv = std::env::var_os("CEUS_EDGE_VENV").map_or_else(
        || crate::common::repo_root().join(".venv"),
        std::path::PathBuf::from,
    );
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!(
            "skipped: no {} with pydicom; run scripts/test.sh",
            python.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = PhantomConfig {
        layout: ViewLayout::Single,
        width: 241,
        height: 121,
        frames: 3,
        ..small_config(5)
    };
    let path = write(&config, dir.path(), ExamFormat::Dicom);
    let script = crate::common::repo_root().join("scripts/check_phantom_dicom.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(seen["sop_class"], "1.2.840.10008.5.1.4.1.1.3.1");
    assert_eq!(seen["media_sop_class"], "1.2.840.10008.5.1.4.1.1.3.1");
    assert_eq!(seen["sop_instance_matches_meta"], true);
    assert_eq!(seen["transfer_syntax"], "1.2.840.10008.1.2.1");
    assert_eq!(seen["manufacturer"], "ceus-edge phantom");
    assert_eq!(seen["photometric"], "MONOCHROME2");
    assert_eq!(seen["frames"], 3);
    assert_eq!(seen["rows"], 121);
    assert_eq!(seen["columns"], 241);
    assert_eq!(seen["frame_increment_pointer"], "00181063");
    assert_eq!(seen["pixel_shape"], serde_json::json!([3, 121, 241]));
    assert_eq!(seen["pixel_dtype"], "uint8");
    assert_eq!(seen["regions"].as_array().unwrap().len(), 2);

    let (_, frames) = render_all(&config);
    let mut hasher = Sha256::new();
    for frame in &frames {
        hasher.update(&frame.data);
    }
    let expected = format!("{:x}", hasher.finalize());
    assert_eq!(seen["pixel_sha256"], expected.as_str());
}

/// The crate's own DICOM reader yields the rendered frames with the declared timing.
#[test]
fn phantom_dicom_reads_back_with_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = PhantomConfig {
        fps: 12.5,
        ..small_config(13)
    };
    let path = write(&config, dir.path(), ExamFormat::Dicom);
    let mut source = ceus_edge::source::open(&path, &OpenOptions::default()).unwrap();
    let info = source.info().clone();
    assert_eq!(info.container, "DICOM");
    assert_eq!((info.width, info.height), (240, 180));
    assert_eq!(info.frames, Some(40));
    assert_eq!(info.timing, TimingSource::FrameTime);
    assert!((info.fps.unwrap() - 12.5).abs() < 1e-6, "{:?}", info.fps);

    let (_, expected) = render_all(&config);
    let mut frame = Frame::empty();
    for rendered in &expected {
        assert!(source.read_frame(&mut frame).unwrap());
        assert_eq!(frame.format, ceus_edge::frame::PixelFormat::Gray8);
        assert!(frame.data == rendered.data, "frame {}", rendered.index);
        assert!(
            (frame.time_s - rendered.time_s).abs() < 1e-6,
            "frame {}",
            rendered.index
        );
    }
    assert!(!source.read_frame(&mut frame).unwrap());
}

#[test]
fn phantom_y4m_holds_same_frames() {
    let dir = tempfile::tempdir().unwrap();
    let config = PhantomConfig {
        fps: 29.97,
        ..small_config(6)
    };
    let path = write(&config, dir.path(), ExamFormat::Y4m);
    let bytes = std::fs::read(path).unwrap();
    let header = b"YUV4MPEG2 W240 H180 F2997:100 Ip A1:1 Cmono\n";
    assert!(
        bytes.starts_with(header),
        "{:?}",
        String::from_utf8_lossy(&bytes[..60])
    );

    let (_, frames) = render_all(&config);
    let mut rest = &bytes[header.len()..];
    for frame in &frames {
        assert!(rest.starts_with(b"FRAME\n"));
        rest = &rest[6..];
        assert!(
            rest[..frame.data.len()] == frame.data[..],
            "frame {}",
            frame.index
        );
        rest = &rest[frame.data.len()..];
    }
    assert!(rest.is_empty());
}

#[test]
fn truth_peak_is_max_of_unflagged() {
    for seed in 1..=6 {
        let phantom = Phantom::new(PhantomConfig {
            frames: 300,
            events: EventRequest::Rate(20.0),
            ..eventful_config(seed)
        })
        .unwrap();
        let truth = phantom.truth();
        let unflagged: Vec<_> = truth
            .frames
            .iter()
            .filter(|f| f.event == FrameEvent::None)
            .collect();
        let max = unflagged
            .iter()
            .map(|f| f.lesion_power)
            .fold(f64::MIN, f64::max);
        let peak = truth.peak_frame.unwrap() as usize;
        assert_eq!(truth.frames[peak].event, FrameEvent::None);
        assert_eq!(truth.frames[peak].lesion_power, max);
        assert_eq!(truth.peak_time_s, Some(truth.frames[peak].time_s));
    }
}

/// Lognormal density written out here, apart from the library's bolus code.
fn lognormal(t: f64, t0: f64, mu: f64, sigma: f64, area: f64) -> f64 {
    if t <= t0 {
        return 0.0;
    }
    let x = t - t0;
    area / (x * sigma * (2.0 * std::f64::consts::PI).sqrt())
        * (-(x.ln() - mu).powi(2) / (2.0 * sigma * sigma)).exp()
}

#[test]
fn truth_curve_follows_lognormal_bolus() {
    let (truth, _) = render_all(&PhantomConfig {
        frames: 400,
        ..small_config(11)
    });
    let bolus = truth.bolus.lesion;
    assert!((5.0..=15.0).contains(&bolus.arrival_s) || bolus.arrival_s < 5.0);
    assert!(truth.peak_time_s.unwrap() <= 0.8 * 40.0 + 0.1);
    // Without flashes, lesion power is the bolus curve times one constant (the mean
    // perfusion weight of the lesion).
    let mut ratio = None;
    for frame in &truth.frames {
        let curve = lognormal(
            frame.time_s,
            bolus.arrival_s,
            bolus.mu,
            bolus.sigma,
            bolus.amplitude,
        );
        if curve < 1e-6 {
            assert!(frame.lesion_power < 1e-5, "frame {}", frame.index);
            continue;
        }
        let r = frame.lesion_power / curve;
        let first = *ratio.get_or_insert(r);
        assert!(
            (r - first).abs() < 1e-9 * first,
            "frame {}: {r} vs {first}",
            frame.index
        );
    }
    let peak_curve_time = bolus.arrival_s + (bolus.mu - bolus.sigma * bolus.sigma).exp();
    let peak_time = truth.peak_time_s.unwrap();
    assert!(
        (peak_time - peak_curve_time).abs() <= 0.5 / 10.0 + 1e-9,
        "{peak_time} vs {peak_curve_time}"
    );
}

/// The linearised mean grey of the lesion in the contrast view gives the truth's power,
/// plus the noise floor, so the display formula and the truth agree.
#[test]
fn linearised_lesion_mean_matches_truth() {
    let config = PhantomConfig {
        frames: 300,
        width: 480,
        height: 360,
        ..small_config(12)
    };
    let (truth, frames) = render_all(&config);
    let peak = truth.peak_frame.unwrap() as usize;
    let view = truth.layout.contrast_view;
    let lesion = truth.lesion;
    let dr = truth.display.dynamic_range_db;
    for index in [
        peak,
        peak / 2 + truth.frames.len() / 4,
        truth.frames.len() - 1,
    ] {
        let frame = &frames[index];
        let mut sum = 0.0;
        let mut count = 0;
        for y in 0..view.h {
            for x in 0..view.w {
                let u = (f64::from(x) + 0.5 - lesion.centre_x) / lesion.semi_axis_x;
                let v = (f64::from(y) + 0.5 - lesion.centre_y) / lesion.semi_axis_y;
                if u * u + v * v <= 1.0 {
                    let grey = frame.data[((view.y + y) * frame.width + view.x + x) as usize];
                    sum += grey_to_power(grey, dr);
                    count += 1;
                }
            }
        }
        let measured = sum / f64::from(count);
        let expected = truth.frames[index].lesion_power + truth.display.noise_floor_power;
        // Speckle averaged over a few hundred independent cells leaves an error of a few
        // per cent. Clipping at white removes about 2% more at the peak.
        let relative = (measured - expected).abs() / expected;
        eprintln!("frame {index}: relative error {relative:.4}");
        assert!(
            relative < 0.15,
            "frame {index}: measured {measured}, truth {expected}"
        );
    }
}

#[test]
fn frozen_frames_repeat_previous_bytes() {
    let (truth, frames) = render_all(&eventful_config(21));
    let frozen: Vec<_> = truth
        .frames
        .iter()
        .filter(|f| f.event == FrameEvent::Frozen)
        .collect();
    assert!(frozen.len() >= 2);
    for frame in frozen {
        let i = frame.index as usize;
        assert!(
            frames[i].data == frames[i - 1].data,
            "frame {i} is not a copy"
        );
    }
    // A normal frame differs from the one before it: at least the clock changes.
    for (i, frame) in truth.frames.iter().enumerate().skip(1) {
        if frame.event == FrameEvent::None {
            assert!(frames[i].data != frames[i - 1].data, "frame {i} repeats");
        }
    }
}

#[test]
fn black_frames_are_black_in_sector() {
    let (truth, frames) = render_all(&eventful_config(22));
    let sectors = [
        truth.layout.contrast_sector,
        truth.layout.bmode_sector.unwrap(),
    ];
    let black: Vec<_> = truth
        .frames
        .iter()
        .filter(|f| f.event == FrameEvent::Black)
        .collect();
    assert!(black.len() >= 2);
    // Noise alone at -66 dB in a 60 dB range is nearly all grey 0, and the B-mode
    // tissue at -22 dB is far brighter.
    for frame in black {
        for sector in &sectors {
            let values = pixels_in_sector(&frames[frame.index as usize], sector);
            assert!(
                mean(&values) < 25.0,
                "frame {}: mean {}",
                frame.index,
                mean(&values)
            );
        }
    }
    let normal = truth
        .frames
        .iter()
        .position(|f| f.event == FrameEvent::None)
        .unwrap();
    let bmode = pixels_in_sector(&frames[normal], &sectors[1]);
    assert!(mean(&bmode) > 100.0, "B-mode mean {}", mean(&bmode));
}

#[test]
fn flash_frames_are_brighter() {
    let (truth, frames) = render_all(&eventful_config(23));
    let sector = truth.layout.contrast_sector;
    let flash = truth
        .events
        .iter()
        .find(|e| e.kind == EventKind::Flash)
        .unwrap();
    let before = mean(&pixels_in_sector(
        &frames[flash.start_frame as usize - 1],
        &sector,
    ));
    for i in flash.start_frame..flash.end_frame() {
        assert_eq!(truth.frames[i as usize].event, FrameEvent::Flash);
        let during = mean(&pixels_in_sector(&frames[i as usize], &sector));
        assert!(
            during > before + 40.0,
            "frame {i}: {during} vs {before} before"
        );
    }
    // Destruction: right after the flash the lesion contains less agent than before it.
    let end = flash.end_frame() as usize;
    let start = flash.start_frame as usize;
    if truth.frames[start - 1].lesion_power > 1e-4 {
        assert!(truth.frames[end].lesion_power < 0.5 * truth.frames[start - 1].lesion_power);
    }
}

/// The best match of the B-mode picture during motion against the picture before it is
/// the shift the truth records.
#[test]
fn motion_frames_shift_the_field() {
    let (truth, frames) = render_all(&eventful_config(24));
    let motion = truth
        .events
        .iter()
        .find(|e| e.kind == EventKind::Motion)
        .unwrap();
    let (held, shift) = (motion.start_frame..motion.end_frame())
        .map(|i| (i as usize, truth.frames[i as usize].shift_px))
        .max_by_key(|(_, s)| s[0].abs() + s[1].abs())
        .unwrap();
    assert_eq!(truth.frames[held].event, FrameEvent::Motion);

    let rest = &frames[motion.start_frame as usize - 1];
    let moved = &frames[held];
    let view = truth.layout.bmode_view.unwrap();
    // Compare an inner window that stays inside the sector for any tried shift.
    let window = Rect::new(
        view.x + view.w / 3,
        view.y + view.h / 3,
        view.w / 3,
        view.h / 3,
    );

    let mut best = (u64::MAX, [0, 0]);
    for dy in -12i32..=12 {
        for dx in -12i32..=12 {
            let mut sad = 0u64;
            for y in window.y..window.y + window.h {
                for x in window.x..window.x + window.w {
                    let a = moved.data[(y * moved.width + x) as usize];
                    let sx = (x as i32 - dx) as u32;
                    let sy = (y as i32 - dy) as u32;
                    let b = rest.data[(sy * rest.width + sx) as usize];
                    sad += u64::from(a.abs_diff(b));
                }
            }
            if sad < best.0 {
                best = (sad, [dx, dy]);
            }
        }
    }
    assert_eq!(best.1, shift);
}

#[test]
fn phantom_source_yields_rendered_frames() {
    let config = small_config(14);
    let (_, expected) = render_all(&config);
    let mut source = PhantomSource::new(Phantom::new(config).unwrap());
    assert_eq!(source.info().frames, Some(40));
    assert_eq!(source.info().fps, Some(10.0));
    assert_eq!(source.phantom().truth().frames.len(), 40);
    let mut frame = Frame::empty();
    for rendered in &expected {
        assert!(source.read_frame(&mut frame).unwrap());
        assert_eq!(frame.index, rendered.index);
        assert!(frame.data == rendered.data, "frame {}", rendered.index);
    }
    assert!(!source.read_frame(&mut frame).unwrap());
}

#[test]
fn single_layout_has_one_view() {
    let (truth, frames) = render_all(&PhantomConfig {
        layout: ViewLayout::Single,
        ..small_config(2)
    });
    assert!(truth.layout.bmode_view.is_none());
    assert!(truth.lesion_roi_bmode.is_none());
    assert!(truth.layout.contrast_view.contains_rect(&truth.lesion_roi));
    // Outside the sector but inside the view, pixels are black.
    let view = truth.layout.contrast_view;
    let frame = &frames[0];
    for (x, y) in [
        (view.x, view.y),
        (view.x + view.w - 1, view.y),
        (view.x, view.y + view.h - 1),
    ] {
        assert!(!truth.layout.contrast_sector.contains(x, y));
        assert_eq!(frame.data[(y * frame.width + x) as usize], 0);
    }
}

fn run_cli(args: &[&str]) -> std::process::Output {
    crate::common::ceus_edge().args(args).output().unwrap()
}

#[test]
fn cli_writes_exam_and_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exam");
    let output = run_cli(&[
        "phantom",
        "--out",
        out.to_str().unwrap(),
        "--frames",
        "90",
        "--size",
        "200x150",
        "--events",
        "flash,freeze",
        "--seed",
        "9",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let truth: Truth =
        serde_json::from_slice(&std::fs::read(out.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth.seed, 9);
    assert_eq!(truth.frames.len(), 90);
    assert_eq!(truth.events.len(), 2);
    let size = std::fs::metadata(out.join("exam.dcm")).unwrap().len();
    assert!(size > 90 * 200 * 150);
}

#[test]
fn cli_rejects_out_of_range_with_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let cases: [&[&str]; 6] = [
        &["--size", "100x100"],
        &["--size", "800by600"],
        &["--fps", "0"],
        &["--frames", "0"],
        &["--dynamic-range", "500"],
        &["--events", "flash", "--event-rate", "2"],
    ];
    for case in cases {
        let mut args = vec!["phantom", "--out", out];
        args.extend_from_slice(case);
        let output = run_cli(&args);
        assert_eq!(output.status.code(), Some(2), "{case:?}");
    }
}

#[test]
fn cli_reports_unplaceable_event() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let output = run_cli(&[
        "phantom", "--out", out, "--frames", "3", "--events", "motion",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot place"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
