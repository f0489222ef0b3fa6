"""ONNX graph of the DenseNet-201 features from a torchvision-layout state dict.

A BN that follows a conv (the stem's norm0 and each dense layer's norm2) is
folded into that conv's weight and bias. The pre-activation BNs (norm1 of each
dense layer, the transitions' norm, norm5) act on concatenations and stay as
per-channel scale and shift: either Mul + Add or BatchNormalization.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import densenet

OPSET = 17
INPUT_SHAPE = [1, 3, 224, 224]


class _Graph:
    def __init__(self):
        self.nodes = []
        self.initializers = []

    def constant(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op, inputs, name, **attributes):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name


def _folded_conv(graph, state, conv_key, norm_prefix, x, name, **attributes):
    """Conv whose weight and bias absorb the BN that follows it."""
    scale, shift = densenet.bn_scale_shift(state, norm_prefix)
    weight = state[conv_key].astype(np.float64) * scale.astype(np.float64)[:, None, None, None]
    w = graph.constant(f"{name}.weight", weight.astype(np.float32))
    b = graph.constant(f"{name}.bias", shift)
    return graph.node("Conv", [x, w, b], name, **attributes)


def _pre_activation(graph, state, prefix, x, bn_style):
    """Apply the BN of a concatenation, then ReLU."""
    if bn_style == "batchnorm":
        inputs = [x] + [graph.constant(f"{prefix}.{f}", state[f"{prefix}.{f}"])
                        for f in densenet.BN_FIELDS]
        y = graph.node("BatchNormalization", inputs, f"{prefix}.bn",
                       epsilon=densenet.BN_EPSILON)
    elif bn_style == "muladd":
        scale, shift = densenet.bn_scale_shift(state, prefix)
        s = graph.constant(f"{prefix}.scale", scale.reshape(1, -1, 1, 1))
        t = graph.constant(f"{prefix}.shift", shift.reshape(1, -1, 1, 1))
        y = graph.node("Add", [graph.node("Mul", [x, s], f"{prefix}.mul"), t], f"{prefix}.add")
    else:
        raise ValueError(f"unknown BN style `{bn_style}`: expected muladd or batchnorm")
    return graph.node("Relu", [y], f"{prefix}.relu")


def build_model(state, bn_style="muladd", doc=""):
    """Return the ONNX ModelProto with input `input` and outputs `features`, `feature_map`."""
    densenet.check_state_dict(state)
    graph = _Graph()

    x = _folded_conv(graph, state, "features.conv0.weight", "features.norm0", "input",
                     "features.conv0", kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3])
    x = graph.node("Relu", [x], "features.relu0")
    x = graph.node("MaxPool", [x], "features.pool0", kernel_shape=[3, 3], strides=[2, 2],
                   pads=[1, 1, 1, 1])

    for block, layers in enumerate(densenet.BLOCK_LAYERS, start=1):
        for layer in range(1, layers + 1):
            prefix = f"features.denseblock{block}.denselayer{layer}"
            y = _pre_activation(graph, state, f"{prefix}.norm1", x, bn_style)
            y = _folded_conv(graph, state, f"{prefix}.conv1.weight", f"{prefix}.norm2", y,
                             f"{prefix}.conv1", kernel_shape=[1, 1])
            y = graph.node("Relu", [y], f"{prefix}.relu2")
            w = graph.constant(f"{prefix}.conv2.weight", state[f"{prefix}.conv2.weight"])
            y = graph.node("Conv", [y, w], f"{prefix}.conv2", kernel_shape=[3, 3],
                           pads=[1, 1, 1, 1])
            x = graph.node("Concat", [x, y], f"{prefix}.concat", axis=1)
        if block < len(densenet.BLOCK_LAYERS):
            prefix = f"features.transition{block}"
            y = _pre_activation(graph, state, f"{prefix}.norm", x, bn_style)
            w = graph.constant(f"{prefix}.conv.weight", state[f"{prefix}.conv.weight"])
            y = graph.node("Conv", [y, w], f"{prefix}.conv", kernel_shape=[1, 1])
            x = graph.node("AveragePool", [y], f"{prefix}.pool", kernel_shape=[2, 2],
                           strides=[2, 2])

    feature_map = _pre_activation(graph, state, "features.norm5", x, bn_style)
    graph.nodes.append(helper.make_node("Identity", [feature_map], ["feature_map"],
                                        name="feature_map"))
    pooled = graph.node("GlobalAveragePool", ["feature_map"], "features.pool")
    graph.nodes.append(helper.make_node("Flatten", [pooled], ["features"], name="features",
                                        axis=1))

    channels = densenet.FEATURE_CHANNELS
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, INPUT_SHAPE)]
    outputs = [
        helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, channels]),
        helper.make_tensor_value_info("feature_map", TensorProto.FLOAT, [1, channels, 7, 7]),
    ]
    onnx_graph = helper.make_graph(graph.nodes, "densenet201_features", inputs, outputs,
                                   graph.initializers)
    model = helper.make_model(onnx_graph, producer_name="ceus-edge build_extractor.py",
                              opset_imports=[helper.make_opsetid("", OPSET)], doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
