//! Settings of one synthetic exam, with the ranges they are checked against.

use serde::{Deserialize, Serialize};

use super::PhantomError;

/// Smallest frame size that still leaves room for the chrome and two readable views.
pub const MIN_WIDTH: u32 = 160;
pub const MIN_HEIGHT: u32 = 120;
/// Largest frame size: 4K UHD, inside the default source limits.
pub const MAX_WIDTH: u32 = 3840;
pub const MAX_HEIGHT: u32 = 2160;
pub const MAX_FRAMES: u32 = 100_000;
pub const MIN_FPS: f64 = 1.0;
pub const MAX_FPS: f64 = 120.0;
pub const MIN_DYNAMIC_RANGE_DB: f64 = 20.0;
pub const MAX_DYNAMIC_RANGE_DB: f64 = 100.0;
/// Largest random event rate, in events per minute.
pub const MAX_EVENT_RATE: f64 = 60.0;

/// Arrangement of the views on the scanner screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ViewLayout {
    /// B-mode (tissue, low mechanical index) on the left, contrast-only on the right.
    Dual,
    /// One contrast-only view.
    Single,
}

/// A kind of acquisition event that corrupts a run of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A high-MI destruction pulse: the contrast view flashes bright for a few frames, then
    /// the agent in the view is destroyed and refills.
    Flash,
    /// The scanner repeats its last frame byte for byte.
    Freeze,
    /// The probe leaves the skin: the image area shows only the noise floor.
    ProbeLift,
    /// The imaged field translates by a few pixels in both views and comes back.
    Motion,
}

impl EventKind {
    /// Returns the name used on the command line and in truth.json.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Flash => "flash",
            EventKind::Freeze => "freeze",
            EventKind::ProbeLift => "probe-lift",
            EventKind::Motion => "motion",
        }
    }
}

/// Events requested for an exam.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventRequest {
    None,
    /// Each listed event once, at a random time.
    Listed(Vec<EventKind>),
    /// Random events of random kinds, with this mean number per minute of exam.
    Rate(f64),
}

/// Properties of the lesion that a cohort label may change; the defaults describe a
/// hyper-enhancing lesion in moderately heterogeneous parenchyma.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LesionProfile {
    /// Range of the ratio of lesion to parenchyma peak agent power, drawn uniformly.
    pub enhancement_ratio: [f64; 2],
    /// Standard deviation of the natural log of the lesion's perfusion texture.
    pub perfusion_heterogeneity: f64,
    /// Tissue backscatter of the lesion relative to the parenchyma, in dB (negative is
    /// hypoechoic).
    pub echogenicity_db: f64,
    /// Factor on the lesion's drawn arrival time (below 1 arrives earlier); the
    /// parenchyma keeps its own arrival.
    #[serde(default = "unit_factor")]
    pub arrival_scale: f64,
    /// Gain on the lesion's drawn peak agent power, in dB; the parenchyma keeps its own.
    #[serde(default)]
    pub peak_gain_db: f64,
    /// Factor on the lesion curve's lognormal shape sigma (below 1 washes out faster).
    #[serde(default = "unit_factor")]
    pub washout_scale: f64,
}

fn unit_factor() -> f64 {
    1.0
}

impl Default for LesionProfile {
    fn default() -> LesionProfile {
        LesionProfile {
            enhancement_ratio: [1.8, 3.5],
            perfusion_heterogeneity: 0.25,
            echogenicity_db: -5.0,
            arrival_scale: 1.0,
            peak_gain_db: 0.0,
            washout_scale: 1.0,
        }
    }
}

/// Everything that determines a phantom exam: the same settings give the same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhantomConfig {
    pub seed: u64,
    pub frames: u32,
    /// Frames per second.
    pub fps: f64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    pub layout: ViewLayout,
    pub events: EventRequest,
    /// Display dynamic range of the log compression, in dB.
    pub dynamic_range_db: f64,
    pub lesion: LesionProfile,
}

impl Default for PhantomConfig {
    /// Seed 1, 600 frames at 15 fps (40 s), 800x600, dual layout, no events, 60 dB.
    fn default() -> PhantomConfig {
        PhantomConfig {
            seed: 1,
            frames: 600,
            fps: 15.0,
            width: 800,
            height: 600,
            layout: ViewLayout::Dual,
            events: EventRequest::None,
            dynamic_range_db: 60.0,
            lesion: LesionProfile::default(),
        }
    }
}

impl PhantomConfig {
    /// Exam duration in seconds: `frames / fps`.
    pub fn duration_s(&self) -> f64 {
        f64::from(self.frames) / self.fps
    }

    /// Checks every setting against its range.
    ///
    /// Errors with [`PhantomError::InvalidConfig`] naming the first value out of range.
    pub fn validate(&self) -> Result<(), PhantomError> {
        check_range(
            "width",
            f64::from(self.width),
            MIN_WIDTH.into(),
            MAX_WIDTH.into(),
        )?;
        check_range(
            "height",
            f64::from(self.height),
            MIN_HEIGHT.into(),
            MAX_HEIGHT.into(),
        )?;
        check_range("frames", f64::from(self.frames), 1.0, MAX_FRAMES.into())?;
        check_range("fps", self.fps, MIN_FPS, MAX_FPS)?;
        check_range(
            "dynamic range (dB)",
            self.dynamic_range_db,
            MIN_DYNAMIC_RANGE_DB,
            MAX_DYNAMIC_RANGE_DB,
        )?;
        if let EventRequest::Rate(rate) = self.events {
            check_range("event rate (per minute)", rate, 0.0, MAX_EVENT_RATE)?;
        }
        self.check_lesion()
    }

    /// Bytes of all frames together: what the DICOM Pixel Data element holds.
    pub fn pixel_data_bytes(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.frames)
    }

    /// Checks that all frames fit one DICOM Pixel Data element. Only a DICOM cine needs
    /// this: a Y4M or PNG exam, or the live phantom source, has no such limit.
    ///
    /// Errors with [`PhantomError::InvalidConfig`] naming the frames and size.
    pub fn check_dicom_pixel_data(&self) -> Result<(), PhantomError> {
        // An explicit-length Pixel Data element has a 32-bit length, 0xFFFFFFFF excluded.
        let bytes = self.pixel_data_bytes();
        if bytes >= u64::from(u32::MAX - 1) {
            return Err(PhantomError::InvalidConfig(format!(
                "{} frames of {}x{} make {bytes} bytes of pixel data, more than a DICOM \
                 element can hold (4 GiB): use fewer frames or a smaller size",
                self.frames, self.width, self.height
            )));
        }
        Ok(())
    }

    fn check_lesion(&self) -> Result<(), PhantomError> {
        let [low, high] = self.lesion.enhancement_ratio;
        if !(low > 0.0 && low <= high && high.is_finite()) {
            return Err(PhantomError::InvalidConfig(format!(
                "lesion enhancement ratio range [{low}, {high}] is invalid: expected 0 < low <= high"
            )));
        }
        check_range(
            "lesion perfusion heterogeneity",
            self.lesion.perfusion_heterogeneity,
            0.0,
            1.0,
        )?;
        check_range(
            "lesion echogenicity (dB)",
            self.lesion.echogenicity_db,
            -30.0,
            30.0,
        )?;
        check_range("lesion arrival scale", self.lesion.arrival_scale, 0.3, 1.0)?;
        check_range(
            "lesion peak gain (dB)",
            self.lesion.peak_gain_db,
            -10.0,
            10.0,
        )?;
        check_range("lesion wash-out scale", self.lesion.washout_scale, 0.3, 2.0)
    }
}

fn check_range(name: &str, value: f64, min: f64, max: f64) -> Result<(), PhantomError> {
    // Written so that NaN fails too.
    if value >= min && value <= max {
        Ok(())
    } else {
        Err(PhantomError::InvalidConfig(format!(
            "{name} {value} is out of range: expected {min} to {max}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(PhantomConfig::default().validate().is_ok());
    }

    #[test]
    fn validate_rejects_out_of_range() {
        let base = PhantomConfig::default();
        let cases = [
            PhantomConfig {
                width: 100,
                ..base.clone()
            },
            PhantomConfig {
                height: 5000,
                ..base.clone()
            },
            PhantomConfig {
                frames: 0,
                ..base.clone()
            },
            PhantomConfig {
                fps: f64::NAN,
                ..base.clone()
            },
            PhantomConfig {
                fps: 0.5,
                ..base.clone()
            },
            PhantomConfig {
                dynamic_range_db: 5.0,
                ..base.clone()
            },
            PhantomConfig {
                events: EventRequest::Rate(-1.0),
                ..base.clone()
            },
        ];
        for config in cases {
            assert!(config.validate().is_err(), "accepted {config:?}");
        }
    }

    #[test]
    fn dicom_size_limit_applies_to_dicom_only() {
        let config = PhantomConfig {
            width: 3840,
            height: 2160,
            frames: 600,
            ..PhantomConfig::default()
        };
        assert!(config.validate().is_ok());
        let error = config.check_dicom_pixel_data().unwrap_err().to_string();
        assert!(error.contains("4 GiB"), "{error}");
    }
}
