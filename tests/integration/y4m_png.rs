//! The Y4M reader and the PNG-folder reader: decoded pixels, timing, and bad input.

use std::path::{Path, PathBuf};

use ceus_edge::frame::{Frame, PixelFormat};
use ceus_edge::phantom::{write_exam, ExamFormat, Phantom, PhantomConfig};
use ceus_edge::source::png_dir::PngDirSource;
use ceus_edge::source::y4m::Y4mSource;
use ceus_edge::source::{self, FrameSource, Limits, OpenOptions, SourceError, TimingSource};

fn fixture(name: &str) -> PathBuf {
    crate::common::repo_root()
        .join("tests/fixtures/y4m")
        .join(name)
}

fn read_all(source: &mut dyn FrameSource) -> Result<Vec<Frame>, SourceError> {
    let mut frames = Vec::new();
    let mut frame = Frame::empty();
    while source.read_frame(&mut frame)? {
        frames.push(frame.clone());
    }
    Ok(frames)
}

/// Luma of test frame `n` at (`x`, `y`): varied enough that a misplaced plane shows.
fn luma(x: usize, y: usize, n: usize) -> u8 {
    ((x * 7 + y * 13 + n * 31) % 256) as u8
}

/// Writes a Y4M stream of `frames` frames of `width` x `height` with chroma bytes of value
/// 200 (never a valid test luma at (0, 0)) after each luma plane.
fn write_y4m(path: &Path, header: &str, width: usize, height: usize, chroma: usize, frames: usize) {
    let mut bytes = format!("{header}\n").into_bytes();
    for n in 0..frames {
        bytes.extend_from_slice(if n % 2 == 0 {
            b"FRAME\n"
        } else {
            b"FRAME Ixyz XA=1\n"
        });
        for y in 0..height {
            for x in 0..width {
                bytes.push(luma(x, y, n));
            }
        }
        bytes.extend(std::iter::repeat_n(200u8, chroma));
    }
    std::fs::write(path, bytes).unwrap();
}

fn check_luma(frames: &[Frame], width: usize, height: usize) {
    for (n, frame) in frames.iter().enumerate() {
        assert_eq!(frame.format, PixelFormat::Gray8);
        assert_eq!(
            (frame.width as usize, frame.height as usize),
            (width, height)
        );
        assert_eq!(frame.index, n as u64);
        for y in 0..height {
            for x in 0..width {
                assert_eq!(
                    frame.data[y * width + x],
                    luma(x, y, n),
                    "frame {n} at {x},{y}"
                );
            }
        }
    }
}

#[test]
fn y4m_ffmpeg_fixtures_decode_luma() {
    let cases = [
        ("yuv420p", 30000.0 / 1001.0),
        ("yuv420p_mpeg2", 25.0),
        ("yuv420p_paldv", 25.0),
        ("yuv422p", 25.0),
        ("yuv444p", 25.0),
        ("gray", 12.0),
    ];
    for (name, fps) in cases {
        let path = fixture(&format!("{name}.y4m"));
        let expected = std::fs::read(fixture(&format!("{name}.luma"))).unwrap();
        let mut source = Y4mSource::open(&path, &OpenOptions::default()).unwrap();
        assert_eq!(source.info().timing, TimingSource::StreamHeader);
        assert!((source.info().fps.unwrap() - fps).abs() < 1e-9, "{name}");
        let frames = read_all(&mut source).unwrap();
        assert_eq!(frames.len(), 3, "{name}");
        let luma: Vec<u8> = frames.iter().flat_map(|f| f.data.iter().copied()).collect();
        assert_eq!(luma, expected, "{name}");
        assert!((frames[2].time_s - 2.0 / fps).abs() < 1e-9, "{name}");
    }
}

#[test]
fn y4m_written_streams_decode_luma() {
    let dir = tempfile::tempdir().unwrap();
    // Width 5 and height 3 are odd, so 4:2:0 chroma planes are 3x2.
    let cases = [
        ("C420jpeg", 2 * 3 * 2),
        ("C420", 2 * 3 * 2),
        ("C420mpeg2", 2 * 3 * 2),
        ("C422", 2 * 3 * 3),
        ("C444", 2 * 5 * 3),
        ("Cmono", 0),
    ];
    for (colour, chroma) in cases {
        let path = dir.path().join(format!("{colour}.y4m"));
        write_y4m(
            &path,
            &format!("YUV4MPEG2 W5 H3 F30:1 It {colour}"),
            5,
            3,
            chroma,
            4,
        );
        let mut source = Y4mSource::open(&path, &OpenOptions::default()).unwrap();
        let frames = read_all(&mut source).unwrap();
        assert_eq!(frames.len(), 4, "{colour}");
        check_luma(&frames, 5, 3);
    }
}

#[test]
fn y4m_without_colour_tag_is_420() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.y4m");
    write_y4m(&path, "YUV4MPEG2 W4 H2 F25:1", 4, 2, 2 * 2, 2);
    let frames = read_all(&mut Y4mSource::open(&path, &OpenOptions::default()).unwrap()).unwrap();
    check_luma(&frames, 4, 2);
}

#[test]
fn y4m_fps_option_overrides_header() {
    let options = OpenOptions {
        fps: Some(10.0),
        ..OpenOptions::default()
    };
    let mut source = Y4mSource::open(&fixture("gray.y4m"), &options).unwrap();
    assert_eq!(source.info().timing, TimingSource::UserFps);
    assert_eq!(source.info().fps, Some(10.0));
    let frames = read_all(&mut source).unwrap();
    assert!((frames[1].time_s - 0.1).abs() < 1e-12);
}

#[test]
fn y4m_without_rate_needs_fps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("norate.y4m");
    write_y4m(&path, "YUV4MPEG2 W4 H2 Cmono", 4, 2, 0, 1);
    let error = Y4mSource::open(&path, &OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::MissingTiming(_)), "{error}");
    let options = OpenOptions {
        fps: Some(5.0),
        ..OpenOptions::default()
    };
    assert!(Y4mSource::open(&path, &options).is_ok());
}

#[test]
fn y4m_truncated_last_frame_names_index() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.y4m");
    write_y4m(&full, "YUV4MPEG2 W5 H3 F30:1 C420jpeg", 5, 3, 12, 3);
    let bytes = std::fs::read(&full).unwrap();
    let path = dir.path().join("cut.y4m");
    // Cuts inside the luma plane, inside the chroma planes, and inside the FRAME line.
    for cut in [
        bytes.len() - 1,
        bytes.len() - 12 - 2,
        bytes.len() - 12 - 15 - 3,
    ] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let mut source = Y4mSource::open(&path, &OpenOptions::default()).unwrap();
        let mut frame = Frame::empty();
        assert!(source.read_frame(&mut frame).unwrap());
        assert!(source.read_frame(&mut frame).unwrap());
        let error = source.read_frame(&mut frame).err().unwrap();
        assert!(matches!(error, SourceError::Malformed(_)), "{error}");
        assert!(error.to_string().contains("frame 2"), "{error}");
    }
}

#[test]
fn y4m_every_truncation_is_error_or_end() {
    let bytes = std::fs::read(fixture("yuv420p.y4m")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.y4m");
    let frame_bytes = 17 * 9 + 2 * 9 * 5 + "FRAME\n".len();
    let header = bytes.len() - 3 * frame_bytes;
    for cut in 0..bytes.len() {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let result = Y4mSource::open(&path, &OpenOptions::default())
            .and_then(|mut source| read_all(&mut source));
        match result {
            Ok(frames) => {
                // Only cuts at a frame boundary read cleanly, with the whole frames.
                assert!(cut >= header, "cut {cut}");
                assert_eq!((cut - header) % frame_bytes, 0, "cut {cut}");
                assert_eq!(frames.len(), (cut - header) / frame_bytes);
            }
            Err(error) => assert!(
                matches!(error, SourceError::Malformed(_)),
                "cut {cut}: {error}"
            ),
        }
    }
}

#[test]
fn y4m_absurd_headers_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.y4m");
    let cases: [(&[u8], &str); 8] = [
        (b"YUV4MPEG2 W99999999 H99999999 F25:1\nFRAME\n", "limit"),
        (b"YUV4MPEG2 W7681 H10 F25:1\nFRAME\n", "limit"),
        (b"YUV4MPEG2 W0 H10 F25:1\n", "malformed"),
        (b"YUV4MPEG2 W18446744073709551616 H10 F25:1\n", "malformed"),
        (b"YUV4MPEG2 W10 H10 F25:0\n", "malformed"),
        (b"YUV4MPEG2 W10 H10 F25:1 C420p10\n", "unsupported"),
        (b"YUV4MPEG2 W10 H10 F25:1", "malformed"),
        (b"YUV4MPEG2 W4 H2 F25:1\nFRAMES\n", "frame line"),
    ];
    for (bytes, kind) in cases {
        std::fs::write(&path, bytes).unwrap();
        let result = Y4mSource::open(&path, &OpenOptions::default())
            .and_then(|mut source| read_all(&mut source));
        let error = result.err().unwrap_or_else(|| panic!("accepted {kind}"));
        let expected = match kind {
            "limit" => matches!(error, SourceError::Limit(_)),
            "unsupported" => matches!(error, SourceError::Unsupported(_)),
            _ => matches!(error, SourceError::Malformed(_)),
        };
        assert!(expected, "{kind}: {error}");
    }

    let mut long = b"YUV4MPEG2 W4 H2 F25:1 X".to_vec();
    long.extend(std::iter::repeat_n(b'a', 100_000));
    std::fs::write(&path, long).unwrap();
    let error = Y4mSource::open(&path, &OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::Malformed(_)), "{error}");
}

#[test]
fn y4m_small_limits_reject_before_reading() {
    let narrow = OpenOptions {
        limits: Limits {
            max_width: 16,
            ..Limits::default()
        },
        ..OpenOptions::default()
    };
    let error = Y4mSource::open(&fixture("gray.y4m"), &narrow)
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::Limit(_)), "{error}");

    // 17x9 luma is 153 bytes and fits; with 4:4:4 chroma a frame is 459 bytes.
    let small = OpenOptions {
        limits: Limits {
            max_frame_bytes: 300,
            ..Limits::default()
        },
        ..OpenOptions::default()
    };
    let error = Y4mSource::open(&fixture("yuv444p.y4m"), &small)
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::Limit(_)), "{error}");
    assert!(Y4mSource::open(&fixture("gray.y4m"), &small).is_ok());
}

#[test]
fn y4m_reads_phantom_stream() {
    let dir = tempfile::tempdir().unwrap();
    let config = PhantomConfig {
        frames: 5,
        width: 200,
        height: 150,
        fps: 12.5,
        ..PhantomConfig::default()
    };
    let (_, paths) = write_exam(&config, dir.path(), ExamFormat::Y4m).unwrap();
    let mut source = source::open(&paths.exam, &OpenOptions::default()).unwrap();
    assert_eq!(source.info().container, "Y4M");
    assert_eq!(source.info().fps, Some(12.5));
    let frames = read_all(source.as_mut()).unwrap();

    let mut renderer = Phantom::new(config).unwrap().into_renderer();
    for frame in &frames {
        let expected = renderer.next_frame().unwrap();
        assert!(frame.data == expected.data, "frame {}", frame.index);
        assert_eq!(frame.time_s, expected.time_s);
    }
    assert!(renderer.next_frame().is_none());
}

// PNG folders.

fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    colour: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    palette: Option<(&[u8], &[u8])>,
) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(colour);
    encoder.set_depth(depth);
    if let Some((palette, trns)) = palette {
        encoder.set_palette(palette.to_vec());
        encoder.set_trns(trns.to_vec());
    }
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
}

/// A PNG flavour: its name, a function that writes a 2x2 frame of it, and the RGB the
/// frame must decode to.
type Flavour = (&'static str, Box<dyn Fn(&Path)>, [[u8; 3]; 4]);

/// A 2x2 frame of each PNG flavour, with the RGB it must decode to.
fn png_flavours() -> Vec<Flavour> {
    use png::{BitDepth, ColorType};
    vec![
        (
            "grey8",
            Box::new(|p: &Path| {
                write_png(
                    p,
                    2,
                    2,
                    ColorType::Grayscale,
                    BitDepth::Eight,
                    &[0, 50, 100, 255],
                    None,
                )
            }),
            [[0; 3], [50; 3], [100; 3], [255; 3]],
        ),
        (
            "grey_alpha",
            Box::new(|p: &Path| {
                write_png(
                    p,
                    2,
                    2,
                    ColorType::GrayscaleAlpha,
                    BitDepth::Eight,
                    &[10, 0, 20, 255, 30, 128, 40, 255],
                    None,
                )
            }),
            [[10; 3], [20; 3], [30; 3], [40; 3]],
        ),
        (
            "rgb",
            Box::new(|p: &Path| {
                write_png(
                    p,
                    2,
                    2,
                    ColorType::Rgb,
                    BitDepth::Eight,
                    &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                    None,
                )
            }),
            [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]],
        ),
        (
            "rgba",
            Box::new(|p: &Path| {
                let data = [1, 2, 3, 0, 4, 5, 6, 9, 7, 8, 9, 200, 10, 11, 12, 255];
                write_png(p, 2, 2, ColorType::Rgba, BitDepth::Eight, &data, None)
            }),
            [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]],
        ),
        (
            "palette",
            Box::new(|p: &Path| {
                let palette = [255, 0, 0, 0, 255, 0, 0, 0, 255];
                // Two pixels per row at 4 bits: indices 0,1 and 2,0.
                write_png(
                    p,
                    2,
                    2,
                    ColorType::Indexed,
                    BitDepth::Four,
                    &[0x01, 0x20],
                    Some((&palette, &[255, 128])),
                )
            }),
            [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 0]],
        ),
        (
            "grey16",
            Box::new(|p: &Path| {
                let data = [0x12, 0x34, 0xAB, 0xFF, 0x00, 0x01, 0xFF, 0xFF];
                write_png(
                    p,
                    2,
                    2,
                    ColorType::Grayscale,
                    BitDepth::Sixteen,
                    &data,
                    None,
                )
            }),
            [[0x12; 3], [0xAB; 3], [0x00; 3], [0xFF; 3]],
        ),
        (
            "rgb16",
            Box::new(|p: &Path| {
                let mut data = Vec::new();
                for v in [[1u8, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]] {
                    for c in v {
                        data.extend_from_slice(&[c, 0x99]);
                    }
                }
                write_png(p, 2, 2, ColorType::Rgb, BitDepth::Sixteen, &data, None)
            }),
            [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]],
        ),
        (
            "grey1",
            Box::new(|p: &Path| {
                write_png(
                    p,
                    2,
                    2,
                    ColorType::Grayscale,
                    BitDepth::One,
                    &[0b1000_0000, 0b0100_0000],
                    None,
                )
            }),
            [[255; 3], [0; 3], [0; 3], [255; 3]],
        ),
    ]
}

fn with_fps(fps: f64) -> OpenOptions {
    OpenOptions {
        fps: Some(fps),
        ..OpenOptions::default()
    }
}

#[test]
fn png_mixed_formats_decode_as_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let flavours = png_flavours();
    for (i, (name, write, _)) in flavours.iter().enumerate() {
        write(&dir.path().join(format!("frame_{}_{name}.png", i + 1)));
    }
    let mut source = PngDirSource::open(dir.path(), &with_fps(20.0)).unwrap();
    assert_eq!(source.info().frames, Some(flavours.len() as u64));
    assert_eq!(source.info().timing, TimingSource::UserFps);
    let frames = read_all(&mut source).unwrap();
    assert_eq!(frames.len(), flavours.len());
    for (frame, (name, _, expected)) in frames.iter().zip(&flavours) {
        assert_eq!(frame.format, PixelFormat::Rgb8, "{name}");
        let expected: Vec<u8> = expected.iter().flatten().copied().collect();
        assert_eq!(frame.data, expected, "{name}");
    }
    assert!((frames[3].time_s - 3.0 / 20.0).abs() < 1e-12);
}

#[test]
fn png_grey_folder_in_natural_order() {
    use png::{BitDepth, ColorType};
    let dir = tempfile::tempdir().unwrap();
    for n in [1u8, 2, 10, 11, 3] {
        let path = dir.path().join(format!("frame_{n}.png"));
        write_png(
            &path,
            3,
            1,
            ColorType::Grayscale,
            BitDepth::Eight,
            &[n, n, n],
            None,
        );
    }
    std::fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
    std::fs::create_dir(dir.path().join("sub.png")).unwrap();

    let mut source = PngDirSource::open(dir.path(), &with_fps(1.0)).unwrap();
    let frames = read_all(&mut source).unwrap();
    let order: Vec<u8> = frames.iter().map(|f| f.data[0]).collect();
    assert_eq!(order, [1, 2, 3, 10, 11]);
    assert!(frames.iter().all(|f| f.format == PixelFormat::Gray8));
}

#[test]
fn png_frame_of_other_size_named() {
    use png::{BitDepth, ColorType};
    let dir = tempfile::tempdir().unwrap();
    write_png(
        &dir.path().join("a1.png"),
        2,
        2,
        ColorType::Grayscale,
        BitDepth::Eight,
        &[0; 4],
        None,
    );
    write_png(
        &dir.path().join("a2.png"),
        3,
        2,
        ColorType::Grayscale,
        BitDepth::Eight,
        &[0; 6],
        None,
    );
    let error = PngDirSource::open(dir.path(), &with_fps(1.0))
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::Malformed(_)), "{error}");
    assert!(error.to_string().contains("a2.png"), "{error}");
    assert!(error.to_string().contains("3x2"), "{error}");
}

#[test]
fn png_folder_without_fps_is_error() {
    use png::{BitDepth, ColorType};
    let dir = tempfile::tempdir().unwrap();
    write_png(
        &dir.path().join("a1.png"),
        2,
        2,
        ColorType::Grayscale,
        BitDepth::Eight,
        &[0; 4],
        None,
    );
    let single = PngDirSource::open(dir.path(), &OpenOptions::default()).unwrap();
    assert_eq!(single.info().timing, TimingSource::SingleFrame);

    write_png(
        &dir.path().join("a2.png"),
        2,
        2,
        ColorType::Grayscale,
        BitDepth::Eight,
        &[0; 4],
        None,
    );
    let error = PngDirSource::open(dir.path(), &OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(error, SourceError::MissingTiming(_)), "{error}");
    assert!(error.to_string().contains("--fps"), "{error}");
}

#[test]
fn png_bad_files_rejected_without_panic() {
    use png::{BitDepth, ColorType};
    let dir = tempfile::tempdir().unwrap();
    let error = PngDirSource::open(dir.path(), &with_fps(1.0))
        .err()
        .unwrap();
    assert!(
        matches!(error, SourceError::Malformed(_)),
        "empty folder: {error}"
    );

    let good = dir.path().join("good.png");
    let data: Vec<u8> = (0..64 * 64).map(|i| (i % 251) as u8).collect();
    write_png(
        &good,
        64,
        64,
        ColorType::Grayscale,
        BitDepth::Eight,
        &data,
        None,
    );
    let bytes = std::fs::read(&good).unwrap();
    std::fs::remove_file(&good).unwrap();
    let cut = dir.path().join("cut.png");
    // The decoder accepts a file cut inside its final 12-byte IEND chunk, because every
    // pixel is there. Shorter cuts lose image data.
    for length in (0..bytes.len() - 12).step_by(7) {
        std::fs::write(&cut, &bytes[..length]).unwrap();
        let result = PngDirSource::open(dir.path(), &with_fps(1.0))
            .and_then(|mut source| read_all(&mut source));
        assert!(result.is_err(), "a PNG cut to {length} bytes was accepted");
    }
}

#[test]
fn png_folder_opens_through_dispatch() {
    use png::{BitDepth, ColorType};
    let dir = tempfile::tempdir().unwrap();
    write_png(
        &dir.path().join("x.png"),
        2,
        1,
        ColorType::Grayscale,
        BitDepth::Eight,
        &[7, 9],
        None,
    );
    let mut source = source::open(dir.path(), &OpenOptions::default()).unwrap();
    assert_eq!(source.info().container, "PNG folder");
    let frames = read_all(source.as_mut()).unwrap();
    assert_eq!(frames[0].data, [7, 9]);
}
