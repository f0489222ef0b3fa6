//! int8 convolutions on tract-linalg's integer kernels.
//!
//! tract 0.23.9 runs a QDQ model's convolutions in f32, between quantise and dequantise
//! passes. This module rewrites each QDQ convolution of the ONNX graph into one fused
//! node ([`rewrite`]) whose operator quantises the input, runs the i8 x i8 -> i32 matrix
//! kernel tract-linalg picks for the machine, and requantises the result ([`conv`]).
//! The rewrite works on the decoded protobuf: the model file and its SHA-256 are unchanged.

pub mod conv;
mod kernel;
pub mod rewrite;

pub use kernel::{
    int8_kernels, ConvShape, Int8Conv, Int8ConvParams, Prologue, QuantParams, Scratch,
};
pub use rewrite::{fuse_qdq_convs, FusionReport, FUSED_DOMAIN, FUSED_OP};

/// tract's ONNX front end with the parser of the fused convolution registered.
pub fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert(FUSED_OP, conv::parse);
    onnx
}
