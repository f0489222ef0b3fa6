//! Finds the QDQ convolutions of an ONNX graph and replaces each with one fused node.
//!
//! onnxruntime's static quantiser writes every quantised convolution as
//!
//! ```text
//! [Mul(scale) -> Add(shift) ->] [Relu ->] QuantizeLinear -> DequantizeLinear -> Conv
//!     -> QuantizeLinear -> DequantizeLinear [-> Relu]
//! ```
//!
//! with the weights and the bias behind their own DequantizeLinear over int8 and int32
//! initialisers. tract runs that chain in f32 with a quantise and dequantise pass around
//! every convolution. The rewrite swaps the chain for one [`FUSED_OP`] node that keeps the
//! integer weights and the quantisation parameters, so the convolution runs on tract-linalg's
//! integer kernels (see [`super::conv`]). The model file is not changed: the rewrite works on
//! the decoded protobuf before tract parses it.
//!
//! A chain is only fused when every tensor it swallows has no other consumer and is not a
//! graph output, so the rest of the graph receives the same values, up to rounding, as before.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Context};
use tract_onnx::data_resolver::MmapDataResolver;
use tract_onnx::pb::{self, attribute_proto::AttributeType, AttributeProto, NodeProto};
use tract_onnx::prelude::*;

/// `op_type` of the fused node; [`super::onnx`] registers its parser.
pub const FUSED_OP: &str = "CeusQConv";
/// Domain of the fused node, so no reader mistakes it for a standard operator.
pub const FUSED_DOMAIN: &str = "ceus.edge";

/// Counts of the changes the rewrite made to a graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FusionReport {
    /// Conv nodes replaced by a fused node.
    pub fused: usize,
    /// Conv nodes left as they were, because they did not match the pattern.
    pub skipped: usize,
    /// Nodes removed, the replaced Conv nodes and the Concats included.
    pub removed: usize,
    /// Concat nodes removed because the fused nodes read their inputs directly.
    pub concats_removed: usize,
}

/// Rewrites every QDQ convolution of `model` that matches the pattern into a fused node.
pub fn fuse_qdq_convs(model: &mut pb::ModelProto) -> TractResult<FusionReport> {
    let Some(graph) = model.graph.as_mut() else {
        bail!("model proto has no graph")
    };
    let fusions = {
        let index = GraphIndex::new(graph)?;
        let mut claimed = HashSet::new();
        let mut fusions = vec![];
        let mut skipped = 0;
        for (ix, node) in graph.node.iter().enumerate() {
            if node.op_type != "Conv" {
                continue;
            }
            match index.match_conv(ix, &claimed)? {
                Some(fusion) => {
                    claimed.extend(fusion.absorbed.iter().copied());
                    fusions.push(fusion);
                }
                None => skipped += 1,
            }
        }
        (fusions, skipped)
    };
    let (fusions, skipped) = fusions;
    let mut report = FusionReport {
        fused: fusions.len(),
        skipped,
        ..FusionReport::default()
    };
    let mut removed: HashSet<usize> = HashSet::new();
    for fusion in fusions {
        removed.extend(
            fusion
                .absorbed
                .iter()
                .copied()
                .filter(|&ix| ix != fusion.conv),
        );
        graph.node[fusion.conv] = fusion.node;
    }
    report.removed = removed.len() + report.fused;
    let mut ix = 0;
    graph.node.retain(|_| {
        ix += 1;
        !removed.contains(&(ix - 1))
    });
    report.concats_removed = flatten_concats(graph);
    report.removed += report.concats_removed;
    Ok(report)
}

/// Feeds the fused nodes and the remaining channel Concats from the leaves of the Concat
/// trees in front of them, then removes the Concats no node reads any more.
///
/// DenseNet's blocks grow their input by one Concat per layer, each copying the whole of
/// the previous one. A fused node can read its channels from several tensors, so with the
/// leaves as its inputs those copies are not needed; the one Concat that feeds another
/// operator becomes a single copy of all its leaves. Returns the number of Concats removed.
fn flatten_concats(graph: &mut pb::GraphProto) -> usize {
    let producers: HashMap<String, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(ix, node)| node.output.iter().map(move |o| (o.clone(), ix)))
        .collect();
    let is_channel_concat = |node: &NodeProto| {
        node.op_type == "Concat" && node_int(node, "axis") == Some(1) && node.output.len() == 1
    };
    let leaves = |tensor: &str| -> Vec<String> {
        let mut leaves = vec![];
        let mut pending = vec![tensor.to_string()];
        while let Some(tensor) = pending.pop() {
            match producers.get(&tensor).map(|&ix| &graph.node[ix]) {
                Some(node) if is_channel_concat(node) => {
                    pending.extend(node.input.iter().rev().cloned());
                }
                _ => leaves.push(tensor),
            }
        }
        leaves
    };

    let mut rewired = vec![];
    for (ix, node) in graph.node.iter().enumerate() {
        if node.op_type == FUSED_OP {
            let sources = leaves(&node.input[0]);
            if sources.len() > 1 {
                rewired.push((ix, sources, true));
            }
        } else if is_channel_concat(node) {
            let sources: Vec<String> = node.input.iter().flat_map(|i| leaves(i)).collect();
            if sources.len() > node.input.len() {
                rewired.push((ix, sources, false));
            }
        }
    }
    for (ix, sources, fused) in rewired {
        let node = &mut graph.node[ix];
        if fused {
            let count = sources.len() as i64;
            node.input.splice(0..1, sources);
            node.attribute.push(int_attr("x_inputs", count));
        } else {
            node.input = sources;
        }
    }

    let mut removed = 0;
    loop {
        let mut read: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        read.extend(
            graph
                .node
                .iter()
                .flat_map(|n| n.input.iter().map(String::as_str)),
        );
        let dead: HashSet<usize> = graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| is_channel_concat(n) && !read.contains(n.output[0].as_str()))
            .map(|(ix, _)| ix)
            .collect();
        if dead.is_empty() {
            return removed;
        }
        removed += dead.len();
        let mut ix = 0;
        graph.node.retain(|_| {
            ix += 1;
            !dead.contains(&(ix - 1))
        });
    }
}

/// One matched chain: the Conv it replaces, every node it swallows and the fused node.
struct Fusion {
    conv: usize,
    absorbed: Vec<usize>,
    node: NodeProto,
}

/// Scale and zero point of one QuantizeLinear or DequantizeLinear node.
#[derive(Clone, Copy, Debug, PartialEq)]
struct QuantParams {
    scale: f32,
    zero_point: i32,
    signed: bool,
}

struct GraphIndex<'g> {
    graph: &'g pb::GraphProto,
    producer: HashMap<&'g str, usize>,
    consumers: HashMap<&'g str, Vec<usize>>,
    outputs: HashSet<&'g str>,
    initializers: HashMap<&'g str, &'g pb::TensorProto>,
}

impl<'g> GraphIndex<'g> {
    fn new(graph: &'g pb::GraphProto) -> TractResult<GraphIndex<'g>> {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (ix, node) in graph.node.iter().enumerate() {
            for output in &node.output {
                producer.insert(output.as_str(), ix);
            }
            for input in &node.input {
                consumers.entry(input.as_str()).or_default().push(ix);
            }
        }
        let outputs = graph.output.iter().map(|o| o.name.as_str()).collect();
        let initializers = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        Ok(GraphIndex {
            graph,
            producer,
            consumers,
            outputs,
            initializers,
        })
    }

    fn node(&self, ix: usize) -> &'g NodeProto {
        &self.graph.node[ix]
    }

    /// Returns the node producing `tensor` when it is of type `op` and not claimed yet.
    fn producer_of(&self, tensor: &str, op: &str, claimed: &HashSet<usize>) -> Option<usize> {
        let ix = *self.producer.get(tensor)?;
        (self.node(ix).op_type == op && !claimed.contains(&ix)).then_some(ix)
    }

    /// Returns the only consumer of `tensor` when it is of type `op` and `tensor` is no
    /// graph output.
    fn sole_consumer(&self, tensor: &str, op: &str) -> Option<usize> {
        if self.outputs.contains(tensor) {
            return None;
        }
        match self.consumers.get(tensor).map(Vec::as_slice) {
            Some(&[ix]) if self.node(ix).op_type == op => Some(ix),
            _ => None,
        }
    }

    /// Returns whether `tensor` feeds only `node` and is no graph output.
    fn feeds_only(&self, tensor: &str, node: usize) -> bool {
        !self.outputs.contains(tensor)
            && matches!(self.consumers.get(tensor).map(Vec::as_slice), Some(&[ix]) if ix == node)
    }

    fn initializer(&self, name: &str) -> TractResult<Option<Tensor>> {
        let Some(proto) = self.initializers.get(name) else {
            return Ok(None);
        };
        let tensor = tract_onnx::tensor::load_tensor(&MmapDataResolver, proto, None)
            .with_context(|| format!("loading initialiser {name}"))?;
        Ok(Some(tensor))
    }

    /// Scale and zero point of a per-tensor QuantizeLinear or DequantizeLinear node.
    fn tensor_params(&self, node: &NodeProto) -> TractResult<Option<QuantParams>> {
        let Some(scale) = self.initializer(&node.input[1])? else {
            return Ok(None);
        };
        if scale.len() != 1 || scale.datum_type() != f32::datum_type() {
            return Ok(None);
        }
        let scale = *scale
            .try_as_plain_ram()?
            .as_slice::<f32>()?
            .first()
            .context("scale")?;
        let zero_point = match node.input.get(2).filter(|name| !name.is_empty()) {
            None => Some(tensor0(0u8)),
            Some(name) => self.initializer(name)?,
        };
        let Some(zero_point) = zero_point else {
            return Ok(None);
        };
        if zero_point.len() != 1 || !(scale.is_finite() && scale > 0.0) {
            return Ok(None);
        }
        let (zero_point, signed) = match zero_point.datum_type() {
            DatumType::U8 => (
                zero_point.try_as_plain_ram()?.as_slice::<u8>()?[0] as i32,
                false,
            ),
            DatumType::I8 => (
                zero_point.try_as_plain_ram()?.as_slice::<i8>()?[0] as i32,
                true,
            ),
            _ => return Ok(None),
        };
        Ok(Some(QuantParams {
            scale,
            zero_point,
            signed,
        }))
    }

    /// Returns the parameters of an activation's QuantizeLinear and DequantizeLinear
    /// nodes, or `None` unless both are per-tensor with the same scale and zero point.
    fn qdq_pair(&self, quantise: usize, dequantise: usize) -> TractResult<Option<QuantParams>> {
        let (q, dq) = (self.node(quantise), self.node(dequantise));
        let (Some(qp), Some(dqp)) = (self.tensor_params(q)?, self.tensor_params(dq)?) else {
            return Ok(None);
        };
        Ok((qp == dqp).then_some(qp))
    }

    /// Checks that a per-channel DequantizeLinear of a constant has zero points of 0 and
    /// returns its (quantised initialiser, scale initialiser) names and scales.
    fn constant_dequantise(
        &self,
        node: &NodeProto,
        dt: DatumType,
        channels: Option<usize>,
    ) -> TractResult<Option<Vec<f32>>> {
        let Some(values) = self.initializer(&node.input[0])? else {
            return Ok(None);
        };
        if values.datum_type() != dt {
            return Ok(None);
        }
        let Some(scale) = self.initializer(&node.input[1])? else {
            return Ok(None);
        };
        if scale.datum_type() != f32::datum_type() {
            return Ok(None);
        }
        let scales = scale.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let axis = node_int(node, "axis").unwrap_or(1);
        if scales.len() > 1 && axis != 0 {
            return Ok(None);
        }
        if let Some(channels) = channels {
            if scales.len() != 1 && scales.len() != channels {
                return Ok(None);
            }
        }
        if let Some(name) = node.input.get(2).filter(|name| !name.is_empty()) {
            let Some(zero_point) = self.initializer(name)? else {
                return Ok(None);
            };
            let zero = zero_point.cast_to::<i32>()?;
            if zero
                .try_as_plain_ram()?
                .as_slice::<i32>()?
                .iter()
                .any(|&z| z != 0)
            {
                return Ok(None);
            }
        }
        Ok(Some(scales))
    }

    fn match_conv(&self, conv_ix: usize, claimed: &HashSet<usize>) -> TractResult<Option<Fusion>> {
        let conv = self.node(conv_ix);
        if node_int(conv, "group").unwrap_or(1) != 1
            || node_ints(conv, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1))
            || node_string(conv, "auto_pad").is_some_and(|p| p != "NOTSET")
        {
            return Ok(None);
        }
        let mut absorbed = vec![conv_ix];

        // Weights: int8, per output channel, zero points of 0.
        let Some(weight_dq) = self.producer_of(&conv.input[1], "DequantizeLinear", claimed) else {
            return Ok(None);
        };
        let weight_node = self.node(weight_dq);
        let Some(weights) = self.initializer(&weight_node.input[0])? else {
            return Ok(None);
        };
        if weights.rank() != 4 {
            return Ok(None);
        }
        let out_channels = weights.shape()[0];
        let Some(weight_scales) =
            self.constant_dequantise(weight_node, DatumType::I8, Some(out_channels))?
        else {
            return Ok(None);
        };
        if self.feeds_only(&conv.input[1], conv_ix) {
            absorbed.push(weight_dq);
        }

        // Activations: QuantizeLinear -> DequantizeLinear in front of the Conv.
        let Some(input_dq) = self.producer_of(&conv.input[0], "DequantizeLinear", claimed) else {
            return Ok(None);
        };
        let Some(input_q) =
            self.producer_of(&self.node(input_dq).input[0], "QuantizeLinear", claimed)
        else {
            return Ok(None);
        };
        let Some(x_params) = self.qdq_pair(input_q, input_dq)? else {
            return Ok(None);
        };
        if !self.feeds_only(&conv.input[0], conv_ix) {
            return Ok(None);
        }
        absorbed.push(input_dq);
        if self.feeds_only(&self.node(input_q).output[0], input_dq) {
            absorbed.push(input_q);
        }

        // Bias: int32 with the scale x_scale * weight_scale, as onnxruntime writes it.
        let bias = conv.input.get(2).filter(|name| !name.is_empty());
        let mut bias_inputs = vec![];
        if let Some(bias) = bias {
            let Some(bias_dq) = self.producer_of(bias, "DequantizeLinear", claimed) else {
                return Ok(None);
            };
            let bias_node = self.node(bias_dq);
            let Some(bias_scales) =
                self.constant_dequantise(bias_node, DatumType::I32, Some(out_channels))?
            else {
                return Ok(None);
            };
            let consistent = (0..out_channels).all(|m| {
                let expected = x_params.scale * weight_scales[m.min(weight_scales.len() - 1)];
                let actual = bias_scales[m.min(bias_scales.len() - 1)];
                (actual - expected).abs() <= 1e-5 * expected
            });
            if !consistent {
                return Ok(None);
            }
            if self.feeds_only(bias, conv_ix) {
                absorbed.push(bias_dq);
            }
            bias_inputs.push(bias_node.input[0].clone());
        }

        // Prologue: the per-channel Mul + Add of a pre-activation BN and its Relu.
        let quantised = &self.node(input_q).input[0];
        let (source, pre_relu, affine) =
            self.match_prologue(quantised, input_q, claimed, &mut absorbed)?;

        // Epilogue: QuantizeLinear -> DequantizeLinear after the Conv, then maybe a Relu.
        let Some(output_q) = self.sole_consumer(&conv.output[0], "QuantizeLinear") else {
            return Ok(None);
        };
        let Some(output_dq) =
            self.sole_consumer(&self.node(output_q).output[0], "DequantizeLinear")
        else {
            return Ok(None);
        };
        let Some(y_params) = self.qdq_pair(output_q, output_dq)? else {
            return Ok(None);
        };
        absorbed.extend([output_q, output_dq]);
        let mut output = self.node(output_dq).output[0].clone();
        let mut post_relu = false;
        if let Some(relu) = self.sole_consumer(&output, "Relu") {
            if !claimed.contains(&relu) {
                absorbed.push(relu);
                output = self.node(relu).output[0].clone();
                post_relu = true;
            }
        }

        let kernel: Vec<i64> = weights.shape()[2..].iter().map(|&d| d as i64).collect();
        let strides = node_ints(conv, "strides").unwrap_or_else(|| vec![1, 1]);
        let pads = node_ints(conv, "pads").unwrap_or_else(|| vec![0; 4]);
        if strides.len() != 2 || pads.len() != 4 {
            return Ok(None);
        }
        let mut inputs = vec![
            source,
            weight_node.input[0].clone(),
            weight_node.input[1].clone(),
        ];
        inputs.extend(bias_inputs.iter().cloned());
        if let Some((mul, add)) = &affine {
            inputs.extend([mul.clone(), add.clone()]);
        }
        let attributes = vec![
            ints_attr("kernel_shape", kernel),
            ints_attr("strides", strides),
            ints_attr("pads", pads),
            float_attr("x_scale", x_params.scale),
            int_attr("x_zero_point", x_params.zero_point as i64),
            int_attr("x_signed", x_params.signed as i64),
            float_attr("y_scale", y_params.scale),
            int_attr("y_zero_point", y_params.zero_point as i64),
            int_attr("y_signed", y_params.signed as i64),
            int_attr("has_bias", !bias_inputs.is_empty() as i64),
            int_attr("has_affine", affine.is_some() as i64),
            int_attr("pre_relu", pre_relu as i64),
            int_attr("post_relu", post_relu as i64),
        ];
        let node = NodeProto {
            input: inputs,
            output: vec![output],
            name: conv.name.clone(),
            op_type: FUSED_OP.to_string(),
            domain: FUSED_DOMAIN.to_string(),
            attribute: attributes,
            doc_string: String::new(),
        };
        Ok(Some(Fusion {
            conv: conv_ix,
            absorbed,
            node,
        }))
    }

    /// Walks up from the tensor a QuantizeLinear reads: `Relu`, then `Add` and `Mul` by
    /// per-channel constants. Returns the tensor the fused node reads, whether a Relu was
    /// absorbed, and the (mul, add) initialiser names of an absorbed affine.
    #[allow(clippy::type_complexity)]
    fn match_prologue(
        &self,
        quantised: &str,
        quantise: usize,
        claimed: &HashSet<usize>,
        absorbed: &mut Vec<usize>,
    ) -> TractResult<(String, bool, Option<(String, String)>)> {
        let unchanged = Ok((quantised.to_string(), false, None));
        if !self.feeds_only(quantised, quantise) {
            return unchanged;
        }
        let Some(relu) = self.producer_of(quantised, "Relu", claimed) else {
            return unchanged;
        };
        absorbed.push(relu);
        let relu_input = &self.node(relu).input[0];
        let relu_only = Ok((relu_input.clone(), true, None));
        if !self.feeds_only(relu_input, relu) {
            return relu_only;
        }
        let Some(add) = self.producer_of(relu_input, "Add", claimed) else {
            return relu_only;
        };
        let Some((add_source, shift)) = self.constant_operand(add)? else {
            return relu_only;
        };
        if !self.feeds_only(&add_source, add) {
            return relu_only;
        }
        let Some(mul) = self.producer_of(&add_source, "Mul", claimed) else {
            return relu_only;
        };
        let Some((source, scale)) = self.constant_operand(mul)? else {
            return relu_only;
        };
        absorbed.extend([add, mul]);
        Ok((source, true, Some((scale, shift))))
    }

    /// For a binary node with one per-channel f32 initialiser of shape [1, C, 1, 1], returns
    /// (the other input, the initialiser name).
    fn constant_operand(&self, node: usize) -> TractResult<Option<(String, String)>> {
        let node = self.node(node);
        if node.input.len() != 2 {
            return Ok(None);
        }
        for (konst, other) in [(1, 0), (0, 1)] {
            if let Some(tensor) = self.initializer(&node.input[konst])? {
                let shape = tensor.shape();
                let per_channel =
                    shape.len() == 4 && shape[0] == 1 && shape[2] == 1 && shape[3] == 1;
                if tensor.datum_type() == f32::datum_type() && per_channel {
                    return Ok(Some((node.input[other].clone(), node.input[konst].clone())));
                }
                return Ok(None);
            }
        }
        Ok(None)
    }
}

fn attribute<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn node_int(node: &NodeProto, name: &str) -> Option<i64> {
    attribute(node, name).map(|a| a.i)
}

fn node_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

fn node_string(node: &NodeProto, name: &str) -> Option<String> {
    attribute(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

fn float_attr(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..AttributeProto::default()
    }
}

fn ints_attr(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: AttributeType::Ints as i32,
        ints: values,
        ..AttributeProto::default()
    }
}
