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

/// Adding and removing 1.5 * 2^23 rounds an f32 of magnitude up to 2^22 to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Bytes read past the end of the quantised input by whole-panel copies.
const SLACK: usize = 256;

/// Rounds half to even, for |x| <= 2^22; vectorises, unlike `round_ties_even`
/// on a baseline x86_64 target.
#[inline(always)]
fn round_even(x: f32) -> f32 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

/// Runs `$body` compiled for AVX2 when the CPU has it, else for the baseline target.
/// `$body` must be an `#[inline(always)]` function, so that it is compiled into both.
macro_rules! with_avx2 {
    ($avx2:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2($($arg: $ty),*) {
            $body($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above; the function is otherwise
            // the same safe code as `$body`.
            unsafe { $avx2($($arg),*) };
            return;
        }
        $body($($arg),*)
    }};
}

/// The quantisation of one input row: `round((x * scale + shift) * inv)` clamped to
/// `bounds`, stored as a byte with `offset` added. The affine and the division by the
/// scale stay two steps, in the graph's order, so that rounding ties fall as in
/// onnxruntime.
#[derive(Clone, Copy)]
struct QuantiseRow {
    scale: f32,
    shift: f32,
    inv: f32,
    bounds: (f32, f32),
    offset: u8,
}

impl QuantiseRow {
    fn run(self, src: &[f32], dst: &mut [u8]) {
        let row = self;
        with_avx2!(quantise_avx2, quantise_row, (row: QuantiseRow, src: &[f32], dst: &mut [u8]))
    }
}

#[inline(always)]
fn quantise_row(row: QuantiseRow, src: &[f32], dst: &mut [u8]) {
    let (lo, hi) = row.bounds;
    for (d, &x) in dst.iter_mut().zip(src) {
        let v = (x * row.scale + row.shift) * row.inv;
        let v = if v > lo { v } else { lo };
        let v = if v < hi { v } else { hi };
        // The low byte of the magic sum is the rounded value modulo 256.
        *d = ((v + ROUND_MAGIC).to_bits() as u8).wrapping_add(row.offset);
    }
}

/// The requantisation of one output channel's accumulators.
#[derive(Clone, Copy)]
struct RequantiseRow {
    correction: i32,
    multiplier: f32,
    bounds: (f32, f32),
    scale: f32,
}

impl RequantiseRow {
    fn run(self, acc: &[i32], out: &mut [f32]) {
        let row = self;
        with_avx2!(requantise_avx2, requantise_row, (row: RequantiseRow, acc: &[i32], out: &mut [f32]))
    }
}

#[inline(always)]
fn requantise_row(row: RequantiseRow, acc: &[i32], out: &mut [f32]) {
    let (lo, hi) = row.bounds;
    for (o, &a) in out.iter_mut().zip(acc) {
        let v = (a + row.correction) as f32 * row.multiplier;
        let v = if v > lo { v } else { lo };
        let v = if v < hi { v } else { hi };
        *o = round_even(v) * row.scale;
    }
}

/// Copies the `R`-lane chunks of `words` (one per panel, the last maybe partial) to
/// offset `at` of consecutive panels of `panel_bytes`, zeroing the lanes past the end.
fn scatter_panels<const R: usize>(words: &[u8], dst: &mut [u8], panel_bytes: usize, at: usize) {
    let mut chunks = words.chunks_exact(4 * R);
    let mut panels = dst.chunks_exact_mut(panel_bytes);
    for (chunk, panel) in (&mut chunks).zip(&mut panels) {
        panel[at..at + 4 * R].copy_from_slice(chunk);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if let Some(panel) = panels.next() {
            let block = &mut panel[at..at + 4 * R];
            block[..tail.len()].copy_from_slice(tail);
            block[tail.len()..].fill(0);
        }
    }
}

/// Interleaves four rows of `dst.len() / 4` bytes, stored one after the other in `lanes`,
/// into `dst`: byte `4 * i + j` is byte `i` of row `j`.
fn interleave4(lanes: &[u8], dst: &mut [u8]) {
    with_avx2!(interleave4_avx2, interleave4_impl, (lanes: &[u8], dst: &mut [u8]))
}

#[inline(always)]
fn interleave4_impl(lanes: &[u8], dst: &mut [u8]) {
    let len = dst.len() / 4;
    let (a, rest) = lanes.split_at(len);
    let (b, rest) = rest.split_at(len);
    let (c, d) = rest.split_at(len);
    for (i, out) in dst.chunks_exact_mut(4).enumerate() {
        let word = a[i] as u32 | (b[i] as u32) << 8 | (c[i] as u32) << 16 | (d[i] as u32) << 24;
        out.copy_from_slice(&word.to_le_bytes());
    }
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

    /// Rows and row pitch of the grid of windows the matrix product computes. With stride
    /// 1 the grid is as wide as the padded input, so the windows of consecutive grid cells
    /// are consecutive in memory even across rows, and every panel is one copy. The
    /// windows past the output width straddle two rows; their results are dropped.
    fn grid(&self) -> Option<[usize; 2]> {
        let [oh, ow] = self.output_size()?;
        if self.strides == [1, 1] {
            Some([oh, self.padded()[1]])
        } else {
            Some([oh, ow])
        }
    }

    fn channel_blocks(&self) -> usize {
        self.in_channels.div_ceil(4)
    }

    /// K of the matrix product: channels rounded up to 4, times the kernel area.
    fn depth(&self) -> usize {
        self.channel_blocks() * 4 * self.kernel[0] * self.kernel[1]
    }
}

/// Operations applied before the quantisation of the input, per input channel.
#[derive(Clone, Debug, Default)]
pub struct Prologue {
    /// `x * scale + shift` per channel (a pre-activation BN written as Mul and Add).
    pub affine: Option<(Vec<f32>, Vec<f32>)>,
    pub relu: bool,
}

/// Layout the kernel expects for its B operand (the im2col matrix).
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
    /// Rows and pitch of the grid of windows computed, see [`ConvShape::grid`].
    grid: [usize; 2],
    /// Channels of each input tensor.
    input_channels: Vec<usize>,
    /// Per input channel: the input tensor it is in, and its channel there.
    channel_sources: Vec<(usize, usize)>,
    /// Per input channel: the affine, or 1 and 0 without one.
    input_affine: (Vec<f32>, Vec<f32>),
    /// 1 / x_scale.
    input_scale_inv: f32,
    /// Clamp bounds of `(x * scale + shift) / x_scale`, relative to the zero point: the
    /// type's range and the Relu, if any.
    input_bounds: (f32, f32),
    /// The input byte of a real 0, which pads the borders.
    input_pad: u8,
    /// Added to the rounded value to give the stored byte: the zero point, minus 128 for
    /// a u8 input, since the kernels multiply i8 by i8.
    input_offset: u8,
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
    /// Channels of each input tensor, which [`Int8Conv::run`] reads as one concatenation;
    /// they add up to `shape.in_channels`.
    pub input_channels: Vec<usize>,
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
    /// Checks the parameters, picks the kernel tract-linalg prefers for the shape on this
    /// machine and packs the weights for it.
    pub fn new(params: Int8ConvParams) -> TractResult<Int8Conv> {
        let shape = params.shape;
        let [rows, pitch] = shape.grid().with_context(|| {
            format!("kernel {:?} does not fit the input {shape:?}", shape.kernel)
        })?;
        let n = rows * pitch;
        let query = Query::plain(
            DatumType::I32,
            Some(shape.out_channels),
            Some(shape.depth()),
            Some(n),
        );
        let (mmm, packing, extractor) = MmmDispatch::native()
            .pick(&query)
            .context("tract-linalg has no i8 x i8 -> i32 matrix kernel on this machine")?;
        ensure!(
            extractor.is_none(),
            "kernel {} needs a panel extractor for i8 weights",
            mmm.name()
        );
        Int8Conv::with_kernel(params, mmm, packing)
    }

    /// Like [`Int8Conv::new`], with the kernel and its packing index given.
    pub fn with_kernel(
        params: Int8ConvParams,
        mmm: Box<dyn MatMatMul>,
        packing: usize,
    ) -> TractResult<Int8Conv> {
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
        ensure!(
            params.input_channels.iter().sum::<usize>() == c,
            "input tensors of {:?} channels for {c} input channels",
            params.input_channels
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
        let input_affine = match &params.prologue.affine {
            Some((scale, shift)) => (scale.clone(), shift.clone()),
            None => (vec![1.0; c], vec![0.0; c]),
        };
        let mut input_bounds = (
            (lo - params.input.zero_point) as f32,
            (hi - params.input.zero_point) as f32,
        );
        if params.prologue.relu {
            input_bounds.0 = input_bounds.0.max(0.0);
        }
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

        let (a_format, b_format) = &mmm.packings()[packing];
        let layout = panel_layout(&**b_format, depth)
            .with_context(|| format!("unsupported B packing {b_format} of {}", mmm.name()))?;
        let a = tensor1(&a).into_shape(&[m, depth])?;
        let weights = a_format.prepare_one(&a, 1, 0)?;
        Ok(Int8Conv {
            shape,
            output,
            grid: shape.grid().context("kernel does not fit the input")?,
            channel_sources: params
                .input_channels
                .iter()
                .enumerate()
                .flat_map(|(tensor, &count)| (0..count).map(move |local| (tensor, local)))
                .collect(),
            input_channels: params.input_channels,
            input_affine,
            input_scale_inv: params.input.scale.recip(),
            input_bounds,
            input_pad: (params.input.zero_point - input_shift) as u8,
            input_offset: (params.input.zero_point - input_shift) as u8,
            correction,
            multiplier,
            output_range,
            output_scale: params.output.scale,
            packing,
            weights,
            b_format: b_format.clone(),
            layout,
            mmm,
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
    pub fn run(
        &self,
        inputs: &[&[f32]],
        output: &mut [f32],
        scratch: &mut Scratch,
    ) -> TractResult<()> {
        let s = &self.shape;
        ensure!(
            inputs.len() == self.input_channels.len(),
            "{} input tensors, expected {}",
            inputs.len(),
            self.input_channels.len()
        );
        for (input, channels) in inputs.iter().zip(&self.input_channels) {
            ensure!(
                input.len() == channels * s.height * s.width,
                "input has {} values, expected {channels}x{}x{}",
                input.len(),
                s.height,
                s.width
            );
        }
        let m = s.out_channels;
        let outputs = m * self.output[0] * self.output[1];
        ensure!(
            output.len() == outputs,
            "output has {} values, expected {outputs}",
            output.len(),
        );
        let n = self.grid[0] * self.grid[1];

        let packed = self.pack(inputs, scratch)?;
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
    /// `lanes` receives four quantised rows before they are interleaved.
    #[inline(never)]
    fn quantise(&self, input: &[&[f32]], out: &mut Vec<u8>, lanes: &mut Vec<u8>) {
        let s = &self.shape;
        let [hp, wp] = s.padded();
        let blocks = s.channel_blocks();
        let pad = self.input_pad;
        // Without padding the rows of a plane are contiguous in the output too.
        let unpadded = s.pads == [0; 4];
        let (rows, row_len) = if unpadded {
            (1, s.height * s.width)
        } else {
            (s.height, s.width)
        };
        out.clear();
        out.resize(blocks * hp * wp * 4 + SLACK, pad);
        lanes.clear();
        lanes.resize(4 * row_len, pad);
        for block in 0..blocks {
            for row in 0..rows {
                self.quantise_block(input, block, row * row_len, row_len, lanes);
                let start = ((block * hp + row + s.pads[0]) * wp + s.pads[1]) * 4;
                interleave4(lanes, &mut out[start..][..row_len * 4]);
            }
        }
    }

    /// Step 2: im2col of the quantised input into the kernel's panels.
    /// Steps 1 and 2: quantises the input and lays it out in the kernel's panels.
    fn pack(&self, input: &[&[f32]], scratch: &mut Scratch) -> TractResult<EagerPackedInput> {
        let n = self.grid[0] * self.grid[1];
        let depth = self.shape.depth();
        let (r, panel_bytes) = match self.layout {
            PanelLayout::KInner4 { r } => (r, depth * r),
            PanelLayout::KMajor { r, panel } => (r, panel),
        };
        let bytes = n.div_ceil(r) * panel_bytes;
        let Scratch {
            quantised,
            lanes,
            panels,
        } = scratch;
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
            PanelLayout::KInner4 { r } if self.is_pointwise() => {
                self.quantise_into_panels(input, dst, r, lanes, quantised)
            }
            PanelLayout::KInner4 { r } => {
                self.quantise(input, quantised, lanes);
                self.pack_k_inner4(quantised, dst, r)
            }
            PanelLayout::KMajor { r, panel } => {
                self.quantise(input, quantised, lanes);
                self.pack_k_major(quantised, dst, r, panel)
            }
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

    /// Returns whether this is a 1x1 convolution with stride 1 and no padding, whose
    /// im2col matrix is the input itself.
    fn is_pointwise(&self) -> bool {
        let s = &self.shape;
        s.kernel == [1, 1] && s.strides == [1, 1] && s.pads == [0; 4]
    }

    /// Steps 1 and 2 at once for a pointwise convolution on a K=4-inner kernel: each block
    /// of 4 channels, once quantised and interleaved, is cut into the panels directly.
    fn quantise_into_panels(
        &self,
        input: &[&[f32]],
        dst: &mut [u8],
        r: usize,
        lanes: &mut Vec<u8>,
        words: &mut Vec<u8>,
    ) {
        let s = &self.shape;
        let plane = s.height * s.width;
        let panel_bytes = s.channel_blocks() * 4 * r;
        lanes.clear();
        lanes.resize(4 * plane, self.input_pad);
        words.clear();
        words.resize(4 * plane, 0);
        for block in 0..s.channel_blocks() {
            self.quantise_block(input, block, 0, plane, lanes);
            interleave4(lanes, words);
            let at = block * 4 * r;
            match r {
                8 => scatter_panels::<8>(words, dst, panel_bytes, at),
                16 => scatter_panels::<16>(words, dst, panel_bytes, at),
                _ => {
                    for (chunk, panel) in words.chunks(4 * r).zip(dst.chunks_mut(panel_bytes)) {
                        let block = &mut panel[at..][..4 * r];
                        block[..chunk.len()].copy_from_slice(chunk);
                        block[chunk.len()..].fill(0);
                    }
                }
            }
        }
    }

    /// Quantises `row_len` values from `start` of each of the 4 channels of `block` into
    /// the 4 rows of `lanes`. Channels past the last one get the padding byte.
    fn quantise_block(
        &self,
        input: &[&[f32]],
        block: usize,
        start: usize,
        row_len: usize,
        lanes: &mut [u8],
    ) {
        let s = &self.shape;
        let plane = s.height * s.width;
        for (lane, dst) in lanes.chunks_exact_mut(row_len).enumerate() {
            let channel = block * 4 + lane;
            if channel >= s.in_channels {
                dst.fill(self.input_pad);
                continue;
            }
            let row = QuantiseRow {
                scale: self.input_affine.0[channel],
                shift: self.input_affine.1[channel],
                inv: self.input_scale_inv,
                bounds: self.input_bounds,
                offset: self.input_offset,
            };
            let (tensor, local) = self.channel_sources[channel];
            row.run(&input[tensor][local * plane + start..][..row_len], dst);
        }
    }

    /// Source offset, in 4-byte groups of the interleaved input, of each lane of panel `p`,
    /// grouped into runs of consecutive offsets: (first lane, lane count, first offset).
    fn lane_runs(&self, p: usize, r: usize, runs: &mut Vec<(usize, usize, usize)>) {
        let [_, wp] = self.shape.padded();
        let [sh, sw] = self.shape.strides;
        let [rows, pitch] = self.grid;
        runs.clear();
        for lane in 0..r.min(rows * pitch - p * r) {
            let cell = p * r + lane;
            let (oy, ox) = (cell / pitch, cell % pitch);
            let offset = oy * sh * wp + ox * sw;
            match runs.last_mut() {
                Some((_, count, start)) if *start + *count == offset => *count += 1,
                _ => runs.push((lane, 1, offset)),
            }
        }
    }

    fn pack_k_inner4(&self, quantised: &[u8], dst: &mut [u8], r: usize) {
        match r {
            8 => self.pack_k_inner4_r::<8>(quantised, dst),
            16 => self.pack_k_inner4_r::<16>(quantised, dst),
            _ => self.pack_k_inner4_any(quantised, dst, r),
        }
    }

    /// Packs for a K=4-inner kernel `R` lanes wide, each lane one u32 (4 channels).
    #[inline(never)]
    fn pack_k_inner4_r<const R: usize>(&self, quantised: &[u8], dst: &mut [u8]) {
        let bases = self.block_bases();
        let panel_bytes = bases.len() * 4 * R;
        let mut runs = Vec::with_capacity(R);
        for (p, panel) in dst.chunks_exact_mut(panel_bytes).enumerate() {
            self.lane_runs(p, R, &mut runs);
            if let [(0, count, offset)] = runs[..] {
                if count < R {
                    self.gather_panel::<R>(quantised, panel, &bases, &runs);
                    continue;
                }
                for (block, base) in panel.chunks_exact_mut(4 * R).zip(&bases) {
                    let start = (base + offset) * 4;
                    block.copy_from_slice(&quantised[start..start + 4 * R]);
                }
                continue;
            }
            self.gather_panel::<R>(quantised, panel, &bases, &runs);
        }
    }

    /// Fills a panel lane by lane: the partial last panel, or windows that are not
    /// consecutive (stride 2). Lanes past the last window are zero.
    fn gather_panel<const R: usize>(
        &self,
        quantised: &[u8],
        panel: &mut [u8],
        bases: &[usize],
        runs: &[(usize, usize, usize)],
    ) {
        let mut offsets = [None; R];
        for &(lane, count, offset) in runs {
            for e in 0..count {
                offsets[lane + e] = Some(offset + e);
            }
        }
        for (block, base) in panel.chunks_exact_mut(4 * R).zip(bases) {
            for (out, offset) in block.chunks_exact_mut(4).zip(offsets) {
                match offset {
                    Some(offset) => {
                        let start = (base + offset) * 4;
                        out.copy_from_slice(&quantised[start..start + 4]);
                    }
                    None => out.fill(0),
                }
            }
        }
    }

    /// Offset, in 4-byte groups of the interleaved input, of the window origin of each
    /// block of 4 K values: K runs over (channel block, ky, kx).
    fn block_bases(&self) -> Vec<usize> {
        let s = &self.shape;
        let [hp, wp] = s.padded();
        let [kh, kw] = s.kernel;
        let mut bases = Vec::with_capacity(s.channel_blocks() * kh * kw);
        for cb in 0..s.channel_blocks() {
            for ky in 0..kh {
                for kx in 0..kw {
                    bases.push((cb * hp + ky) * wp + kx);
                }
            }
        }
        bases
    }

    #[inline(never)]
    fn pack_k_inner4_any(&self, quantised: &[u8], dst: &mut [u8], r: usize) {
        let s = &self.shape;
        let [hp, wp] = s.padded();
        let [kh, kw] = s.kernel;
        let blocks = s.channel_blocks() * kh * kw;
        let panel_bytes = blocks * 4 * r;
        let mut runs = Vec::with_capacity(r);
        for (p, panel) in dst.chunks_exact_mut(panel_bytes).enumerate() {
            self.lane_runs(p, r, &mut runs);
            let lanes: usize = runs.iter().map(|run| run.1).sum();
            for (kb, block) in panel.chunks_exact_mut(4 * r).enumerate() {
                let kx = kb % kw;
                let ky = (kb / kw) % kh;
                let cb = kb / (kw * kh);
                let base = (cb * hp + ky) * wp + kx;
                for &(lane, count, offset) in &runs {
                    let start = (base + offset) * 4;
                    block[lane * 4..][..count * 4]
                        .copy_from_slice(&quantised[start..][..count * 4]);
                }
                block[lanes * 4..].fill(0);
            }
        }
    }

    #[inline(never)]
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
    #[inline(never)]
    fn requantise(&self, acc: &[i32], output: &mut [f32]) {
        let [oh, ow] = self.output;
        let [rows, pitch] = self.grid;
        for (channel, (out, acc)) in output
            .chunks_exact_mut(oh * ow)
            .zip(acc.chunks_exact(rows * pitch))
            .enumerate()
        {
            let row = RequantiseRow {
                correction: self.correction[channel],
                multiplier: self.multiplier[channel],
                bounds: self.output_range,
                scale: self.output_scale,
            };
            if pitch == ow {
                row.run(acc, out);
                continue;
            }
            for (out, acc) in out.chunks_exact_mut(ow).zip(acc.chunks_exact(pitch)) {
                row.run(&acc[..ow], out);
            }
        }
    }
}

/// Buffers reused from one run to the next, shared by all convolutions on a thread.
#[derive(Default)]
pub struct Scratch {
    quantised: Vec<u8>,
    lanes: Vec<u8>,
    panels: Option<Arc<Blob>>,
}

/// Lists every runnable kernel with an i8 x i8 -> i32 packing this module can fill, as
/// (kernel, packing index): what [`Int8Conv::with_kernel`] accepts on this machine.
pub fn int8_kernels() -> Vec<(Box<dyn MatMatMul>, usize)> {
    let query = Query::plain(DatumType::I32, None, None, None);
    MmmDispatch::native()
        .suitable(&query)
        .into_iter()
        .filter(|(mmm, packing, extractor)| {
            extractor.is_none() && panel_layout(&*mmm.packings()[*packing].1, 4).is_some()
        })
        .map(|(mmm, packing, _)| (mmm, packing))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// One test case: shape, activation types and which optional parts are on.
    struct Case {
        shape: ConvShape,
        input: QuantParams,
        output: QuantParams,
        bias: bool,
        affine: bool,
        pre_relu: bool,
        post_relu: bool,
    }

    struct Data {
        x: Vec<f32>,
        weights: Vec<i8>,
        scales: Vec<f32>,
        bias: Option<Vec<i32>>,
        affine: Option<(Vec<f32>, Vec<f32>)>,
    }

    fn data(case: &Case, seed: u64) -> Data {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = &case.shape;
        let [kh, kw] = s.kernel;
        let x = (0..s.in_channels * s.height * s.width)
            .map(|_| rng.random_range(-3.0f32..5.0))
            .collect();
        let weights = (0..s.out_channels * s.in_channels * kh * kw)
            .map(|_| rng.random_range(-127i32..=127) as i8)
            .collect();
        let scales = (0..s.out_channels)
            .map(|_| rng.random_range(0.001f32..0.01))
            .collect();
        let bias = case.bias.then(|| {
            (0..s.out_channels)
                .map(|_| rng.random_range(-3000..3000))
                .collect()
        });
        let affine = case.affine.then(|| {
            let scale = (0..s.in_channels)
                .map(|_| rng.random_range(0.2f32..2.0))
                .collect();
            let shift = (0..s.in_channels)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            (scale, shift)
        });
        Data {
            x,
            weights,
            scales,
            bias,
            affine,
        }
    }

    fn params<'a>(case: &Case, data: &'a Data) -> Int8ConvParams<'a> {
        Int8ConvParams {
            shape: case.shape,
            input_channels: vec![case.shape.in_channels],
            weights: &data.weights,
            weight_scales: &data.scales,
            bias: data.bias.as_deref(),
            prologue: Prologue {
                affine: data.affine.clone(),
                relu: case.pre_relu,
            },
            input: case.input,
            output: case.output,
            post_relu: case.post_relu,
        }
    }

    /// The QDQ graph's arithmetic written out directly: quantise, integer convolution with
    /// the zero point subtracted and padding at real 0, bias, requantise, dequantise.
    fn reference(case: &Case, data: &Data) -> Vec<f32> {
        let s = &case.shape;
        let [oh, ow] = s.output_size().unwrap();
        let [kh, kw] = s.kernel;
        let (lo, hi) = case.input.range();
        let plane = s.height * s.width;
        let q: Vec<i32> = data
            .x
            .iter()
            .enumerate()
            .map(|(ix, &x)| {
                let c = ix / plane;
                let mut v = match &data.affine {
                    Some((scale, shift)) => x * scale[c] + shift[c],
                    None => x,
                };
                if case.pre_relu {
                    v = v.max(0.0);
                }
                let r = (v * case.input.scale.recip()).round_ties_even() as i32;
                (r + case.input.zero_point).clamp(lo, hi)
            })
            .collect();
        let (ylo, yhi) = case.output.range();
        let mut out = vec![0.0; s.out_channels * oh * ow];
        for m in 0..s.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = data.bias.as_ref().map_or(0, |b| b[m]);
                    for c in 0..s.in_channels {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * s.strides[0] + ky) as isize - s.pads[0] as isize;
                                let ix = (ox * s.strides[1] + kx) as isize - s.pads[1] as isize;
                                if iy < 0 || ix < 0 {
                                    continue;
                                }
                                let (iy, ix) = (iy as usize, ix as usize);
                                if iy >= s.height || ix >= s.width {
                                    continue;
                                }
                                let w = data.weights[((m * s.in_channels + c) * kh + ky) * kw + kx];
                                let xq = q[c * plane + iy * s.width + ix] - case.input.zero_point;
                                acc += w as i32 * xq;
                            }
                        }
                    }
                    let multiplier = case.input.scale * data.scales[m] / case.output.scale;
                    let r = (acc as f32 * multiplier).round_ties_even() as i32;
                    let yq = (r + case.output.zero_point).clamp(ylo, yhi);
                    let mut y = (yq - case.output.zero_point) as f32 * case.output.scale;
                    if case.post_relu {
                        y = y.max(0.0);
                    }
                    out[(m * oh + oy) * ow + ox] = y;
                }
            }
        }
        out
    }

    fn u8_params(scale: f32, zero_point: i32) -> QuantParams {
        QuantParams {
            scale,
            zero_point,
            signed: false,
        }
    }

    fn cases() -> Vec<Case> {
        let shape = |c, hw: [usize; 2], m, kernel, strides, pads| ConvShape {
            in_channels: c,
            height: hw[0],
            width: hw[1],
            out_channels: m,
            kernel,
            strides,
            pads,
        };
        vec![
            // A dense layer's 3x3 convolution, 13 channels so the last block is partial.
            Case {
                shape: shape(13, [11, 11], 9, [3, 3], [1, 1], [1, 1, 1, 1]),
                input: u8_params(0.03, 0),
                output: u8_params(0.05, 131),
                bias: true,
                affine: true,
                pre_relu: true,
                post_relu: true,
            },
            // The stem: 7x7, stride 2, 3 channels, a zero point inside the range.
            Case {
                shape: shape(3, [20, 18], 16, [7, 7], [2, 2], [3, 3, 3, 3]),
                input: u8_params(0.02, 114),
                output: u8_params(0.07, 130),
                bias: true,
                affine: false,
                pre_relu: false,
                post_relu: false,
            },
            // A 1x1 convolution on a 7x7 map: panels straddle rows, the last one is partial.
            Case {
                shape: shape(64, [7, 7], 32, [1, 1], [1, 1], [0, 0, 0, 0]),
                input: QuantParams {
                    scale: 0.04,
                    zero_point: -5,
                    signed: true,
                },
                output: QuantParams {
                    scale: 0.06,
                    zero_point: 3,
                    signed: true,
                },
                bias: false,
                affine: true,
                pre_relu: false,
                post_relu: false,
            },
            // Uneven kernel, strides and pads.
            Case {
                shape: shape(8, [9, 10], 5, [2, 3], [2, 1], [0, 1, 2, 0]),
                input: u8_params(0.05, 10),
                output: u8_params(0.04, 128),
                bias: true,
                affine: false,
                pre_relu: true,
                post_relu: true,
            },
        ]
    }

    #[test]
    fn every_kernel_matches_reference() {
        let kernels = int8_kernels();
        assert!(!kernels.is_empty(), "no int8 kernel runs on this machine");
        let names: Vec<&str> = kernels.iter().map(|(mmm, _)| mmm.name()).collect();
        eprintln!("int8 kernels under test: {names:?}");
        for (case_ix, case) in cases().iter().enumerate() {
            let data = data(case, case_ix as u64);
            let expected = reference(case, &data);
            for (mmm, packing) in &kernels {
                let name = mmm.name().to_string();
                let conv =
                    Int8Conv::with_kernel(params(case, &data), mmm.clone(), *packing).unwrap();
                let mut out = vec![f32::NAN; expected.len()];
                conv.run(&[&data.x], &mut out, &mut Scratch::default())
                    .unwrap();
                for (ix, (got, want)) in out.iter().zip(&expected).enumerate() {
                    assert_eq!(got, want, "case {case_ix}, kernel {name}, output {ix}");
                }
            }
        }
    }

    /// Splits the input channels over several tensors, as a Concat in front would.
    #[test]
    fn split_input_matches_reference() {
        for (case_ix, case) in cases().iter().enumerate() {
            let data = data(case, 200 + case_ix as u64);
            let expected = reference(case, &data);
            let channels = case.shape.in_channels;
            let plane = case.shape.height * case.shape.width;
            let cuts = [0, 1.min(channels), (channels / 2).max(1), channels];
            let parts: Vec<&[f32]> = cuts
                .windows(2)
                .filter(|w| w[1] > w[0])
                .map(|w| &data.x[w[0] * plane..w[1] * plane])
                .collect();
            let mut params = params(case, &data);
            params.input_channels = parts.iter().map(|p| p.len() / plane).collect();
            let conv = Int8Conv::new(params).unwrap();
            let mut out = vec![f32::NAN; expected.len()];
            conv.run(&parts, &mut out, &mut Scratch::default()).unwrap();
            assert_eq!(
                out, expected,
                "case {case_ix}, parts {:?}",
                conv.input_channels
            );
        }
    }

    #[test]
    fn scratch_is_reused_across_shapes() {
        let mut scratch = Scratch::default();
        for (case_ix, case) in cases()
            .iter()
            .enumerate()
            .rev()
            .chain(cases().iter().enumerate())
        {
            let data = data(case, 100 + case_ix as u64);
            let conv = Int8Conv::new(params(case, &data)).unwrap();
            let expected = reference(case, &data);
            let mut out = vec![f32::NAN; expected.len()];
            conv.run(&[&data.x], &mut out, &mut scratch).unwrap();
            assert_eq!(out, expected, "case {case_ix}");
        }
    }

    #[test]
    fn wrong_input_length_is_rejected() {
        let case = &cases()[0];
        let data = data(case, 7);
        let conv = Int8Conv::new(params(case, &data)).unwrap();
        let mut out = vec![0.0; 9 * 11 * 11];
        let error = conv
            .run(&[&data.x[1..]], &mut out, &mut Scratch::default())
            .unwrap_err();
        assert!(error.to_string().contains("input has"), "{error}");
    }

    #[test]
    fn mismatched_weights_are_rejected() {
        let case = &cases()[0];
        let mut data = data(case, 8);
        data.weights.pop();
        let error = Int8Conv::new(params(case, &data)).unwrap_err();
        assert!(error.to_string().contains("weights have"), "{error}");
    }
}
