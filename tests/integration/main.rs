//! Integration tests of the ceus-edge binary and library.

mod common;
mod dicom;
mod phantom;
mod tic;
mod extractor;
