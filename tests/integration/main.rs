//! Integration tests of the ceus-edge binary and library.

mod capture;
mod common;
mod dicom;
mod phantom;
mod tic;
