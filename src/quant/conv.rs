//! The fused node in tract: an ONNX parser, an inference-time expansion, and the typed
//! operator that calls [`Int8Conv`].

use std::cell::RefCell;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::kernel::{ConvShape, Int8Conv, Int8ConvParams, Prologue, QuantParams, Scratch};

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Parses a [`super::rewrite::FUSED_OP`] node written by the rewrite.
pub fn parse(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let int = |name: &str| -> TractResult<i64> { node.get_attr::<i64>(name) };
    let float = |name: &str| -> TractResult<f32> { node.get_attr::<f32>(name) };
    let usizes = |name: &str| -> TractResult<Vec<usize>> { node.get_attr_vec::<usize>(name) };
    let kernel = usizes("kernel_shape")?;
    let strides = usizes("strides")?;
    let pads = usizes("pads")?;
    ensure!(
        kernel.len() == 2 && strides.len() == 2 && pads.len() == 4,
        "2-D convolutions only"
    );
    let sources = node.get_attr_opt::<i64>("x_inputs")?.unwrap_or(1);
    ensure!(sources >= 1, "x_inputs must be at least 1, got {sources}");
    let expansion = QConvExpansion {
        sources: sources as usize,
        kernel: [kernel[0], kernel[1]],
        strides: [strides[0], strides[1]],
        pads: [pads[0], pads[1], pads[2], pads[3]],
        input: QuantParams {
            scale: float("x_scale")?,
            zero_point: int("x_zero_point")? as i32,
            signed: int("x_signed")? != 0,
        },
        output: QuantParams {
            scale: float("y_scale")?,
            zero_point: int("y_zero_point")? as i32,
            signed: int("y_signed")? != 0,
        },
        has_bias: int("has_bias")? != 0,
        has_affine: int("has_affine")? != 0,
        pre_relu: int("pre_relu")? != 0,
        post_relu: int("post_relu")? != 0,
    };
    Ok((expand(expansion), vec![]))
}

/// The fused node before typing. Inputs: the f32 activation, as `sources` tensors whose
/// channels are concatenated, the int8 weights, their scales, then the int32 bias when
/// `has_bias`, then the affine scale and shift when `has_affine`. All but the activation
/// tensors must be constants.
#[derive(Clone, Debug, PartialEq)]
pub struct QConvExpansion {
    sources: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
    input: QuantParams,
    output: QuantParams,
    has_bias: bool,
    has_affine: bool,
    pre_relu: bool,
    post_relu: bool,
}

impl QConvExpansion {
    fn arity(&self) -> usize {
        self.sources + 2 + self.has_bias as usize + 2 * self.has_affine as usize
    }

    fn output_side(&self, axis: usize, input: usize) -> TractResult<usize> {
        let padded = input + self.pads[axis] + self.pads[axis + 2];
        ensure!(
            padded >= self.kernel[axis],
            "kernel larger than the padded input"
        );
        Ok((padded - self.kernel[axis]) / self.strides[axis] + 1)
    }
}

fn constant<T: Datum + Copy>(
    model: &TypedModel,
    outlet: OutletId,
    what: &str,
) -> TractResult<Vec<T>> {
    let fact = model.outlet_fact(outlet)?;
    let konst = fact
        .konst
        .as_ref()
        .with_context(|| format!("{what} must be a constant"))?;
    Ok(konst
        .cast_to::<T>()?
        .try_as_plain_ram()?
        .as_slice::<T>()?
        .to_vec())
}

impl Expansion for QConvExpansion {
    fn name(&self) -> StaticName {
        super::rewrite::FUSED_OP.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.arity())?;
        check_output_arity(outputs, 1)?;
        for input in &inputs[..self.sources] {
            s.equals(&input.datum_type, f32::datum_type())?;
            s.equals(&input.rank, 4)?;
        }
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].rank, 4)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], &inputs[self.sources].shape[0])?;
        for axis in 0..2 {
            s.given(&inputs[0].shape[2 + axis], move |s, side| {
                let side = side.to_usize()?;
                let out = self.output_side(axis, side)?;
                s.equals(&outputs[0].shape[2 + axis], out.to_dim())
            })?;
        }
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let mut channels = vec![];
        let mut dims: Vec<usize> = vec![];
        for &input in &inputs[..self.sources] {
            let fact = model.outlet_fact(input)?;
            let shape = fact
                .shape
                .as_concrete()
                .with_context(|| format!("{prefix}: the input shape must be known"))?;
            ensure!(
                shape.len() == 4 && shape[0] == 1,
                "{prefix}: expected 1xCxHxW inputs"
            );
            ensure!(
                dims.is_empty() || shape[2..] == dims[2..],
                "{prefix}: input sides {shape:?} differ from {dims:?}"
            );
            channels.push(shape[1]);
            dims = shape.to_vec();
        }
        dims[1] = channels.iter().sum();
        let (activations, inputs) = inputs.split_at(self.sources);
        let weight_fact = model.outlet_fact(inputs[0])?;
        let weight_dims = weight_fact
            .shape
            .as_concrete()
            .with_context(|| format!("{prefix}: the weight shape must be known"))?
            .to_vec();
        ensure!(
            weight_dims.len() == 4 && weight_dims[1] == dims[1],
            "{prefix}: weights {weight_dims:?} do not match the input {dims:?}"
        );
        ensure!(
            weight_dims[2..] == self.kernel,
            "{prefix}: weights {weight_dims:?} do not match the kernel {:?}",
            self.kernel
        );

        let weights = constant::<i8>(model, inputs[0], "the weights")?;
        let weight_scales = constant::<f32>(model, inputs[1], "the weight scales")?;
        let mut next = 2;
        let bias = if self.has_bias {
            next += 1;
            Some(constant::<i32>(model, inputs[next - 1], "the bias")?)
        } else {
            None
        };
        let affine = if self.has_affine {
            let scale = constant::<f32>(model, inputs[next], "the affine scale")?;
            let shift = constant::<f32>(model, inputs[next + 1], "the affine shift")?;
            Some((scale, shift))
        } else {
            None
        };

        let conv = Int8Conv::new(Int8ConvParams {
            shape: ConvShape {
                in_channels: dims[1],
                height: dims[2],
                width: dims[3],
                out_channels: weight_dims[0],
                kernel: self.kernel,
                strides: self.strides,
                pads: self.pads,
            },
            input_channels: channels,
            weights: &weights,
            weight_scales: &weight_scales,
            bias: bias.as_deref(),
            prologue: Prologue {
                affine,
                relu: self.pre_relu,
            },
            input: self.input,
            output: self.output,
            post_relu: self.post_relu,
        })
        .with_context(|| format!("building the int8 convolution {prefix}"))?;
        model.wire_node(
            prefix,
            QConv {
                conv: Arc::new(conv),
            },
            activations,
        )
    }
}

/// The typed operator: f32 in, f32 out, the integer work inside.
#[derive(Clone, Debug)]
pub struct QConv {
    conv: Arc<Int8Conv>,
}

impl QConv {
    /// Returns the convolution this operator runs.
    pub fn conv(&self) -> &Int8Conv {
        &self.conv
    }
}

impl PartialEq for QConv {
    fn eq(&self, other: &QConv) -> bool {
        Arc::ptr_eq(&self.conv, &other.conv)
    }
}

impl Eq for QConv {}

impl Op for QConv {
    fn name(&self) -> StaticName {
        "QConvInt8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.conv)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for QConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let plain = inputs
            .iter()
            .map(|input| input.try_as_plain_ram())
            .collect::<TractResult<Vec<_>>>()?;
        let sources = plain
            .iter()
            .map(|input| input.as_slice::<f32>())
            .collect::<TractResult<Vec<_>>>()?;
        // SAFETY: f32 has no invalid bit patterns, and `run` writes every element.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.conv.output_shape())? };
        {
            let mut plain = output.try_as_plain_ram_mut()?;
            let values = plain.as_slice_mut::<f32>()?;
            SCRATCH.with(|scratch| self.conv.run(&sources, values, &mut scratch.borrow_mut()))?;
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for QConv {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(self.conv.output_shape())))
    }

    as_op!();
}
