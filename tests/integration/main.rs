//! Integration tests of the ceus-edge binary and library.
mod stats;
