//! Integration tests of the ceus-edge binary and library.

mod agreement;
mod analyze;
mod board;
mod capture;
mod cohort;
mod common;
mod dicom;
mod extractor;
#[cfg(target_os = "linux")]
mod fbdev;
mod int8_fusion;
mod live;
mod phantom;
mod stats;
mod tic;
#[cfg(feature = "v4l2")]
mod vivid;
#[cfg(feature = "window")]
mod window;
mod y4m_png;
