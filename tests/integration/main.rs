//! Integration tests of the ceus-edge binary and library.

mod common;
mod phantom;
mod dicom;
mod tic;
