//! Synthetic CEUS exams with known ground truth.
