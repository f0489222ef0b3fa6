//! Integration tests of the ceus-edge binary and library.

mod common;
mod dicom;
mod extractor;
mod phantom;
mod tic;
