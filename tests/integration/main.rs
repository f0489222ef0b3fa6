//! Integration tests of the ceus-edge binary and library.

mod agreement;
mod analyze;
mod capture;
mod cohort;
mod common;
mod dicom;
mod extractor;
mod phantom;
mod stats;
mod tic;
mod y4m_png;
