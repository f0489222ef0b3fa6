//! ceus-edge: contrast-enhanced ultrasound (CEUS) analysis for an edge box beside the scanner.
//!
//! The library follows the data flow of an exam: a [`source`] yields [`frame::Frame`]s, the
//! [`layout`] finds the ultrasound views inside the scanner's screen, and the [`tic`] tracker
//! builds the time-intensity curve of a region of interest, fits a bolus model and picks the
//! peak-enhancement frame. [`phantom`] renders synthetic exams with known ground truth.
//! [`live`] runs the same steps on a live stream, frame by frame, and [`display`] shows
//! the overlay on a framebuffer or records it.

pub mod analysis;
pub mod board;
pub mod capture;
pub mod display;
pub mod extractor;
pub mod frame;
pub mod geometry;
pub mod heatmap;
pub mod layout;
pub mod live;
pub mod npy;
pub mod overlay;
pub mod phantom;
pub mod png_out;
pub mod preprocess;
pub mod quant;
pub mod signature;
pub mod source;
pub mod stats;
pub mod table;
pub mod tic;
pub mod tic_plot;
