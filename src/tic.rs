//! The time-intensity curve of a region of interest.
