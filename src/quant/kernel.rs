//! The fused int8 convolution: quantise, im2col, integer matrix product, requantise.
//!
//! One call of [`Int8Conv::run`] does, for a 1xCxHxW f32 input:
//!
//! 1. quantise: the optional per-channel affine (a pre-activation BN) and Relu, then
//!    `round(x / x_scale) + x_zero_point` saturated to u8 or i8, shifted to i8. The result
//!    is written padded and channel-interleaved by 4, `[C/4][H+pads][W+pads][4]`, so that
//!    four consecutive K values of one output pixel are 4 contiguous bytes;
//! 2. pack: im2col straight into the panel layout the tract-linalg kernel reads
//!    (`PackedI8K4`, K=4-inner, or the K-major `PackedFormat`), one panel of `nr` output
//!    pixels at a time;
//! 3. the i8 x i8 -> i32 product with the weights, packed once at load time;
//! 4. requantise: add the bias and the zero-point correction, scale per output channel,
//!    round half to even, saturate to the output type and dequantise, with the optional Relu.
//!
//! Integer sums are exact, so the result follows onnxruntime's QLinearConv arithmetic: the
//! only differences come from f32 rounding in steps 1 and 4.

use std::sync::Arc;

use anyhow::{ensure, Context};
use tract_linalg::mmm::{
    AsInputValue, EagerPackedInput, FusedSpec, MMMInputFormat, MMMInputValue, MatMatMul,
    PackedExoticFact, Query,
};
use tract_linalg::pack::{PackedFormat, PackedI8K4};
use tract_linalg::MmmDispatch;
use tract_onnx::prelude::*;

/// Largest magnitude for which adding and removing 1.5 * 2^23 rounds an f32 to an integer.
const ROUND_LIMIT: f32 = 4_194_304.0;
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Bytes read past the end of the quantised input by whole-panel copies.
const SLACK: usize = 256;

/// Rounds half to even, for |x| <= [`ROUND_LIMIT`]; vectorises, unlike `round_ties_even`
/// on a baseline x86_64 target.
#[inline(always)]
fn round_even(x: f32) -> f32 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

/// Scale and zero point of an 8-bit quantised tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
    /// i8 when true, u8 otherwise.
    pub signed: bool,
}

impl QuantParams {
    fn range(&self) -> (i32, i32) {
        if self.signed {
            (-128, 127)
        } else {
            (0, 255)
        }
    }
}

/// Geometry of a 2-D convolution on a 1xCxHxW input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// Top, left, bottom, right, as ONNX orders them.
    pub pads: [usize; 4],
}

impl ConvShape {
    /// Output height and width, or `None` when the kernel does not fit.
    pub fn output_size(&self) -> Option<[usize; 2]> {
        let padded_h = self.height + self.pads[0] + self.pads[2];
        let padded_w = self.width + self.pads[1] + self.pads[3];
        if self.kernel[0] > padded_h || self.kernel[1] > padded_w || self.strides.contains(&0) {
            return None;
        }
        Some([
            (padded_h - self.kernel[0]) / self.strides[0] + 1,
            (padded_w - self.kernel[1]) / self.strides[1] + 1,
        ])
    }

    fn padded(&self) -> [usize; 2] {
        [
            self.height + self.pads[0] + self.pads[2],
            self.width + self.pads[1] + self.pads[3],
        ]
    }

    fn channel_blocks(&self) -> usize {
        self.in_channels.div_ceil(4)
    }

    /// K of the matrix product: channels rounded up to 4, times the kernel area.
    fn depth(&self) -> usize {
        self.channel_blocks() * 4 * self.kernel[0] * self.kernel[1]
    }
}

/// What runs before the quantisation of the input, per input channel.
#[derive(Clone, Debug, Default)]
pub struct Prologue {
    /// `x * scale + shift` per channel (a pre-activation BN written as Mul and Add).
    pub affine: Option<(Vec<f32>, Vec<f32>)>,
    pub relu: bool,
}

/// How the kernel wants its B operand (the im2col matrix) laid out.
#[derive(Clone, Copy, Debug)]
enum PanelLayout {
    /// `PackedI8K4`: per block of 4 K, `r` lanes of 4 bytes.
    KInner4 { r: usize },
    /// `PackedFormat`: per K, `r` lanes of 1 byte; `panel` bytes per panel.
    KMajor { r: usize, panel: usize },
}

/// A convolution with int8 weights, ready to run on f32 inputs.
pub struct Int8Conv {
    shape: ConvShape,
    output: [usize; 2],
    prologue: Prologue,
    input_scale_inv: f32,
    input_zero_point: f32,
    input_range: (f32, f32),
    /// Subtracted from the quantised input to bring a u8 into i8.
    input_shift: i32,
    /// Per output channel: bias plus the zero-point and shift correction.
    correction: Vec<i32>,
    /// Per output channel: x_scale * w_scale / y_scale.
    multiplier: Vec<f32>,
    /// Clamp bounds of the requantised value, relative to the output zero point.
    output_range: (f32, f32),
    output_scale: f32,
    mmm: Box<dyn MatMatMul>,
    packing: usize,
    weights: Box<dyn MMMInputValue>,
    b_format: Box<dyn MMMInputFormat>,
    layout: PanelLayout,
}

impl std::fmt::Debug for Int8Conv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Int8Conv({:?}, kernel {}, B {})",
            self.shape,
            self.mmm.name(),
            self.b_format
        )
    }
}

/// Integer weights and the parameters of the quantised tensors around them.
pub struct Int8ConvParams<'a> {
    pub shape: ConvShape,
    /// Output channels x input channels x kernel height x kernel width, row-major.
    pub weights: &'a [i8],
    /// One scale per output channel, or one for all.
    pub weight_scales: &'a [f32],
    /// Bias in units of `input.scale * weight_scale`, per output channel.
    pub bias: Option<&'a [i32]>,
    pub prologue: Prologue,
    pub input: QuantParams,
    pub output: QuantParams,
    pub post_relu: bool,
}

impl Int8Conv {
    /// Checks the parameters, picks the kernel and packs the weights for it.
    pub fn new(params: Int8ConvParams) -> TractResult<Int8Conv> {
        let shape = params.shape;
        let output = shape.output_size().with_context(|| {
            format!("kernel {:?} does not fit the input {shape:?}", shape.kernel)
        })?;
        let [kh, kw] = shape.kernel;
        let (m, c) = (shape.out_channels, shape.in_channels);
        ensure!(
            params.weights.len() == m * c * kh * kw,
            "weights have {} values, expected {m}x{c}x{kh}x{kw}",
            params.weights.len()
        );
        let scale_of = |ix: usize| params.weight_scales[ix.min(params.weight_scales.len() - 1)];
        ensure!(
            params.weight_scales.len() == 1 || params.weight_scales.len() == m,
            "{} weight scales for {m} output channels",
            params.weight_scales.len()
        );
        if let Some(bias) = params.bias {
            ensure!(
                bias.len() == m,
                "{} bias values for {m} output channels",
                bias.len()
            );
        }
        if let Some((scale, shift)) = &params.prologue.affine {
            ensure!(
                scale.len() == c && shift.len() == c,
                "affine of {} and {} values for {c} input channels",
                scale.len(),
                shift.len()
            );
        }

        let (lo, hi) = params.input.range();
        let input_shift = if params.input.signed { 0 } else { 128 };
        let (out_lo, out_hi) = params.output.range();
        let mut output_range = (
            (out_lo - params.output.zero_point) as f32,
            (out_hi - params.output.zero_point) as f32,
        );
        if params.post_relu {
            output_range.0 = output_range.0.max(0.0);
        }

        let depth = shape.depth();
        let a = reorder_weights(params.weights, &shape);
        let correction = (0..m)
            .map(|row| {
                let sum: i32 = params.weights[row * c * kh * kw..][..c * kh * kw]
                    .iter()
                    .map(|&w| w as i32)
                    .sum();
                let bias = params.bias.map_or(0, |b| b[row]);
                bias + (input_shift - params.input.zero_point) * sum
            })
            .collect();
        let multiplier = (0..m)
            .map(|row| params.input.scale * scale_of(row) / params.output.scale)
            .collect();

        let n = output[0] * output[1];
        let query = Query::plain(DatumType::I32, Some(m), Some(depth), Some(n));
        let (mmm, packing, extractor) = MmmDispatch::native()
            .pick(&query)
            .context("tract-linalg has no i8 x i8 -> i32 matrix kernel on this machine")?;
        ensure!(
            extractor.is_none(),
            "kernel {} needs a panel extractor for i8 weights",
            mmm.name()
        );
        let (a_format, b_format) = &mmm.packings()[packing];
        let layout = panel_layout(&**b_format, depth)
            .with_context(|| format!("unsupported B packing {b_format} of {}", mmm.name()))?;
        let a = tensor1(&a).into_shape(&[m, depth])?;
        let weights = a_format.prepare_one(&a, 1, 0)?;
        Ok(Int8Conv {
            shape,
            output,
            prologue: params.prologue,
            input_scale_inv: params.input.scale.recip(),
            input_zero_point: params.input.zero_point as f32,
            input_range: (lo as f32, hi as f32),
            input_shift,
            correction,
            multiplier,
            output_range,
            output_scale: params.output.scale,
            packing,
            weights,
            b_format: b_format.clone(),
            layout,
            mmm: mmm.clone(),
        })
    }

    /// Output shape: 1 x out channels x output height x output width.
    pub fn output_shape(&self) -> [usize; 4] {
        [1, self.shape.out_channels, self.output[0], self.output[1]]
    }

    /// Name of the tract-linalg kernel this convolution runs on.
    pub fn kernel_name(&self) -> &str {
        self.mmm.name()
    }

    /// Runs the convolution on a 1xCxHxW input, writing the 1xMxOHxOW output.
    pub fn run(&self, input: &[f32], output: &mut [f32], scratch: &mut Scratch) -> TractResult<()> {
        let s = &self.shape;
        ensure!(
            input.len() == s.in_channels * s.height * s.width,
            "input has {} values, expected {}x{}x{}",
            input.len(),
            s.in_channels,
            s.height,
            s.width
        );
        let n = self.output[0] * self.output[1];
        let m = s.out_channels;
        ensure!(
            output.len() == m * n,
            "output has {} values, expected {}",
            output.len(),
            m * n
        );

        self.quantise(input, &mut scratch.quantised);
        let packed = self.pack(&scratch.quantised, &mut scratch.panels)?;
        // SAFETY: i32 has no invalid bit patterns, and the kernel stores every element.
        let mut acc = unsafe { Tensor::uninitialized::<i32>(&[m, n])? };
        // SAFETY: the store spec describes `acc` (row stride n, column stride 1, i32
        // elements), `acc` outlives the call, and the packed operands were built for this
        // kernel and packing with k = depth and the m, n given.
        unsafe {
            let store_spec = self.mmm.c_from_data_and_strides(4, n as isize, 1);
            let view = acc.view_mut();
            let specs = [
                FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(&*self.weights),
                    b: AsInputValue::Borrowed(&packed),
                    packing: self.packing,
                },
                FusedSpec::Store(store_spec.wrap(&view)),
            ];
            self.mmm.run(m, n, &specs)?;
        }
        drop(packed);
        let acc = acc.try_as_plain_ram()?.as_slice::<i32>()?;
        self.requantise(acc, output);
        Ok(())
    }

    /// Step 1: writes the quantised, padded, channel-interleaved input into `out`.
    fn quantise(&self, input: &[f32], out: &mut Vec<u8>) {
        let s = &self.shape;
        let [hp, wp] = s.padded();
        let blocks = s.channel_blocks();
        let pad = (self.input_zero_point as i32 - self.input_shift) as i8 as u8;
        out.clear();
        out.resize(blocks * hp * wp * 4 + SLACK, pad);
        let plane = s.height * s.width;
        let mut rows = vec![[pad; 4]; s.width];
        for block in 0..blocks {
            for y in 0..s.height {
                for lane in 0..4 {
                    let channel = block * 4 + lane;
                    if channel >= s.in_channels {
                        rows.iter_mut().for_each(|r| r[lane] = pad);
                        continue;
                    }
                    let src = &input[channel * plane + y * s.width..][..s.width];
                    let (scale, shift) = match &self.prologue.affine {
                        Some((scale, shift)) => (scale[channel], shift[channel]),
                        None => (1.0, 0.0),
                    };
                    self.quantise_row(src, scale, shift, &mut rows, lane);
                }
                let start = ((block * hp + y + s.pads[0]) * wp + s.pads[1]) * 4;
                let dst = &mut out[start..][..s.width * 4];
                for (d, r) in dst.chunks_exact_mut(4).zip(&rows) {
                    d.copy_from_slice(r);
                }
            }
        }
    }

    #[inline]
    fn quantise_row(&self, src: &[f32], scale: f32, shift: f32, rows: &mut [[u8; 4]], lane: usize) {
        let relu = if self.prologue.relu { 0.0 } else { f32::MIN };
        let inv = self.input_scale_inv;
        let zp = self.input_zero_point;
        let (lo, hi) = self.input_range;
        let offset = self.input_shift;
        for (r, &x) in rows.iter_mut().zip(src) {
            let v = (x * scale + shift).max(relu);
            let q = round_even((v * inv).clamp(-ROUND_LIMIT, ROUND_LIMIT));
            let q = (q + zp).clamp(lo, hi) as i32 - offset;
            r[lane] = q as i8 as u8;
        }
    }

    /// Step 2: im2col of the quantised input into the kernel's panels.
    fn pack(
        &self,
        quantised: &[u8],
        panels: &mut Option<Arc<Blob>>,
    ) -> TractResult<EagerPackedInput> {
        let n = self.output[0] * self.output[1];
        let depth = self.shape.depth();
        let (r, panel_bytes) = match self.layout {
            PanelLayout::KInner4 { r } => (r, depth * r),
            PanelLayout::KMajor { r, panel } => (r, panel),
        };
        let count = n.div_ceil(r);
        let bytes = count * panel_bytes;
        let reusable = panels
            .as_mut()
            .and_then(Arc::get_mut)
            .is_some_and(|blob| blob.len() >= bytes);
        if !reusable {
            // SAFETY: a Blob is plain bytes; every byte the kernel reads is written below.
            *panels = Some(Arc::new(unsafe { Blob::new_for_size_and_align(bytes, 64) }));
        }
        let blob = panels
            .as_mut()
            .and_then(Arc::get_mut)
            .context("panel buffer is shared")?;
        let dst = &mut blob.as_bytes_mut()[..bytes];
        match self.layout {
            PanelLayout::KInner4 { r } => self.pack_k_inner4(quantised, dst, r),
            PanelLayout::KMajor { r, panel } => self.pack_k_major(quantised, dst, r, panel),
        }
        Ok(EagerPackedInput {
            fact: PackedExoticFact {
                format: self.b_format.clone(),
                mn: n.to_dim(),
                k: depth,
            },
            packed: panels.clone().context("panel buffer")?,
            panel_bytes,
            mn: n,
        })
    }

    /// Source offset, in 4-byte groups of the interleaved input, of each lane of panel `p`,
    /// grouped into runs of consecutive offsets: (first lane, lane count, first offset).
    fn lane_runs(&self, p: usize, r: usize, runs: &mut Vec<(usize, usize, usize)>) {
        let [_, wp] = self.shape.padded();
        let [sh, sw] = self.shape.strides;
        let n = self.output[0] * self.output[1];
        runs.clear();
        for lane in 0..r.min(n - p * r) {
            let pixel = p * r + lane;
            let (oy, ox) = (pixel / self.output[1], pixel % self.output[1]);
            let offset = oy * sh * wp + ox * sw;
            match runs.last_mut() {
                Some((first, count, start)) if *start + *count == offset => {
                    let _ = first;
                    *count += 1
                }
                _ => runs.push((lane, 1, offset)),
            }
        }
    }

    fn pack_k_inner4(&self, quantised: &[u8], dst: &mut [u8], r: usize) {
        let s = &self.shape;
        let [hp, wp] = s.padded();
        let [kh, kw] = s.kernel;
        let blocks = s.channel_blocks() * kh * kw;
        let panel_bytes = blocks * 4 * r;
        let mut runs = Vec::with_capacity(r);
        for (p, panel) in dst.chunks_exact_mut(panel_bytes).enumerate() {
            self.lane_runs(p, r, &mut runs);
            let lanes: usize = runs.iter().map(|run| run.1).sum();
            let whole = runs.len() == 1 && lanes == r;
            for (kb, block) in panel.chunks_exact_mut(4 * r).enumerate() {
                let kx = kb % kw;
                let ky = (kb / kw) % kh;
                let cb = kb / (kw * kh);
                let base = (cb * hp + ky) * wp + kx;
                if whole {
                    let start = (base + runs[0].2) * 4;
                    block.copy_from_slice(&quantised[start..][..4 * r]);
                    continue;
                }
                for &(lane, count, offset) in &runs {
                    let start = (base + offset) * 4;
                    block[lane * 4..][..count * 4]
                        .copy_from_slice(&quantised[start..][..count * 4]);
                }
                block[lanes * 4..].fill(0);
            }
        }
    }

    fn pack_k_major(&self, quantised: &[u8], dst: &mut [u8], r: usize, panel_bytes: usize) {
        let s = &self.shape;
        let [hp, wp] = s.padded();
        let [kh, kw] = s.kernel;
        let blocks = s.channel_blocks() * kh * kw;
        let mut runs = Vec::with_capacity(r);
        dst.fill(0);
        for (p, panel) in dst.chunks_exact_mut(panel_bytes).enumerate() {
            self.lane_runs(p, r, &mut runs);
            for kb in 0..blocks {
                let kx = kb % kw;
                let ky = (kb / kw) % kh;
                let cb = kb / (kw * kh);
                let base = (cb * hp + ky) * wp + kx;
                for j in 0..4 {
                    let row = &mut panel[(kb * 4 + j) * r..][..r];
                    for &(lane, count, offset) in &runs {
                        for e in 0..count {
                            row[lane + e] = quantised[(base + offset + e) * 4 + j];
                        }
                    }
                }
            }
        }
    }

    /// Step 4: i32 accumulators to dequantised f32 outputs, row by row.
    fn requantise(&self, acc: &[i32], output: &mut [f32]) {
        let n = self.output[0] * self.output[1];
        let (lo, hi) = self.output_range;
        let scale = self.output_scale;
        for (row, (out, acc)) in output
            .chunks_exact_mut(n)
            .zip(acc.chunks_exact(n))
            .enumerate()
        {
            let correction = self.correction[row];
            let multiplier = self.multiplier[row];
            for (o, &a) in out.iter_mut().zip(acc) {
                let v = ((a + correction) as f32 * multiplier).clamp(lo, hi);
                *o = round_even(v) * scale;
            }
        }
    }
}

/// Buffers reused from one run to the next, shared by all convolutions on a thread.
#[derive(Default)]
pub struct Scratch {
    quantised: Vec<u8>,
    panels: Option<Arc<Blob>>,
}

fn panel_layout(format: &dyn MMMInputFormat, depth: usize) -> Option<PanelLayout> {
    if let Some(k4) = format.downcast_ref::<PackedI8K4>() {
        return Some(PanelLayout::KInner4 { r: k4.r });
    }
    let plain = format.downcast_ref::<PackedFormat>()?;
    (plain.dt == DatumType::I8).then(|| PanelLayout::KMajor {
        r: plain.r,
        panel: plain.single_panel_len(depth),
    })
}

/// Weights as the A matrix, M x K, with K ordered (channel block, ky, kx, channel % 4) to
/// match the interleaved input; channels past the last one get zero weights.
fn reorder_weights(weights: &[i8], shape: &ConvShape) -> Vec<i8> {
    let [kh, kw] = shape.kernel;
    let c = shape.in_channels;
    let depth = shape.depth();
    let mut a = vec![0i8; shape.out_channels * depth];
    for m in 0..shape.out_channels {
        for channel in 0..c {
            let (block, lane) = (channel / 4, channel % 4);
            for ky in 0..kh {
                for kx in 0..kw {
                    let k = ((block * kh + ky) * kw + kx) * 4 + lane;
                    a[m * depth + k] = weights[((m * c + channel) * kh + ky) * kw + kx];
                }
            }
        }
    }
    a
}
