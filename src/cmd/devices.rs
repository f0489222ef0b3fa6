//! `ceus-edge devices`: the V4L2 device nodes and what each can capture.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use ceus_edge::capture::list_devices;
use ceus_edge::capture::listing::{DeviceListing, IntervalListing, SizeListing};

#[derive(clap::Args)]
pub struct Args {
    /// Print the listing as one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let devices = list_devices().context("cannot list V4L2 devices")?;
    let text = if args.json {
        let document = serde_json::json!({ "devices": devices });
        serde_json::to_string_pretty(&document)? + "\n"
    } else {
        render_text(&devices)
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("cannot write the device listing to stdout")
}

/// Renders the listing for a terminal, one indented block per device node.
fn render_text(devices: &[DeviceListing]) -> String {
    if devices.is_empty() {
        return "no V4L2 devices found (no /dev/video* nodes)\n".to_string();
    }
    let mut text = String::new();
    for device in devices {
        render_device(&mut text, device);
    }
    text
}

fn render_device(text: &mut String, device: &DeviceListing) {
    let _ = writeln!(text, "{}", device.path.display());
    if let Some(error) = &device.error {
        let _ = writeln!(text, "  error: {error}");
    }
    if !device.driver.is_empty() {
        let _ = writeln!(
            text,
            "  driver {}, card {:?}, bus {}",
            device.driver, device.card, device.bus
        );
        let _ = writeln!(text, "  capabilities: {}", device.capabilities.join(", "));
    }
    for format in &device.formats {
        let _ = writeln!(text, "  {} ({})", format.fourcc, format.description);
        for size in &format.sizes {
            let _ = writeln!(text, "    {}", size_text(size));
        }
    }
}

fn size_text(size: &SizeListing) -> String {
    match size {
        SizeListing::Discrete {
            width,
            height,
            intervals,
        } => {
            let rates: Vec<String> = intervals.iter().map(interval_text).collect();
            if rates.is_empty() {
                format!("{width}x{height}")
            } else {
                format!("{width}x{height} at {}", rates.join(", "))
            }
        }
        SizeListing::Stepwise {
            min_width,
            max_width,
            step_width,
            min_height,
            max_height,
            step_height,
        } => format!(
            "{min_width}x{min_height} to {max_width}x{max_height} in steps of \
             {step_width}x{step_height}"
        ),
    }
}

/// Shows a frame interval as frames per second, the unit capture settings use.
fn interval_text(interval: &IntervalListing) -> String {
    match interval {
        IntervalListing::Discrete {
            numerator,
            denominator,
        } => fps_text(*numerator, *denominator),
        IntervalListing::Stepwise { min, max, .. } => format!(
            "{} to {}",
            fps_text(max[0], max[1]),
            fps_text(min[0], min[1])
        ),
    }
}

fn fps_text(numerator: u32, denominator: u32) -> String {
    if numerator == 0 {
        return "? fps".to_string();
    }
    let fps = f64::from(denominator) / f64::from(numerator);
    let shown = format!("{fps:.3}");
    let shown = shown.trim_end_matches('0').trim_end_matches('.');
    format!("{shown} fps")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceus_edge::capture::listing::FormatListing;

    #[test]
    fn text_of_a_capture_device() {
        let device = DeviceListing {
            path: "/dev/video0".into(),
            driver: "uvcvideo".into(),
            card: "USB Capture HDMI".into(),
            bus: "usb-0000:00:14.0-1".into(),
            capabilities: vec!["video-capture", "streaming"],
            formats: vec![FormatListing {
                fourcc: "MJPG".into(),
                description: "Motion-JPEG".into(),
                sizes: vec![
                    SizeListing::Discrete {
                        width: 1920,
                        height: 1080,
                        intervals: vec![
                            IntervalListing::Discrete {
                                numerator: 1,
                                denominator: 60,
                            },
                            IntervalListing::Discrete {
                                numerator: 1001,
                                denominator: 30000,
                            },
                        ],
                    },
                    SizeListing::Stepwise {
                        min_width: 16,
                        max_width: 1920,
                        step_width: 2,
                        min_height: 16,
                        max_height: 1080,
                        step_height: 2,
                    },
                ],
            }],
            error: None,
        };
        let text = render_text(&[device]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "/dev/video0");
        assert_eq!(
            lines[1],
            "  driver uvcvideo, card \"USB Capture HDMI\", bus usb-0000:00:14.0-1"
        );
        assert_eq!(lines[2], "  capabilities: video-capture, streaming");
        assert_eq!(lines[3], "  MJPG (Motion-JPEG)");
        assert_eq!(lines[4], "    1920x1080 at 60 fps, 29.97 fps");
        assert_eq!(lines[5], "    16x16 to 1920x1080 in steps of 2x2");
    }

    #[test]
    fn text_without_devices() {
        assert_eq!(
            render_text(&[]),
            "no V4L2 devices found (no /dev/video* nodes)\n"
        );
    }
}
