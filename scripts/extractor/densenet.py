"""DenseNet-201 in the torchvision layout, as a plain dict of numpy arrays.

The state dict uses torchvision's key names (``features.conv0.weight``,
``features.denseblock1.denselayer1.norm1.running_mean``, ...) so that a real
torchvision export and the seeded demo weights go through the same exporter.
Arrays are float32; convolution weights are (out, in, kh, kw).
"""

import numpy as np

GROWTH_RATE = 32
BOTTLENECK = 4 * GROWTH_RATE
STEM_CHANNELS = 64
BLOCK_LAYERS = (6, 12, 48, 32)
FEATURE_CHANNELS = 1920
BN_EPSILON = 1e-5

# Conv weights plus BN weight and bias of the feature part, no classifier,
# counted the way torchvision's `sum(p.numel() for p in features.parameters())`
# counts densenet201 (20,013,928 in total minus the 1920x1000+1000 classifier).
FEATURE_PARAMETERS = 18_092_928

BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


def layer_names():
    """Yield (kind, prefix, in_channels) for every BN-carrying unit in order.

    kind is "stem", "dense", "transition" or "final". For a dense layer the
    prefix is ``features.denseblockB.denselayerL``.
    """
    yield "stem", "features", 3
    channels = STEM_CHANNELS
    for block, layers in enumerate(BLOCK_LAYERS, start=1):
        for layer in range(1, layers + 1):
            prefix = f"features.denseblock{block}.denselayer{layer}"
            yield "dense", prefix, channels
            channels += GROWTH_RATE
        if block < len(BLOCK_LAYERS):
            yield "transition", f"features.transition{block}", channels
            channels //= 2
    assert channels == FEATURE_CHANNELS
    yield "final", "features", channels


def parameter_shapes():
    """Return {key: shape} for every conv weight and BN array of the features."""
    shapes = {}

    def bn(prefix, channels):
        for field in BN_FIELDS:
            shapes[f"{prefix}.{field}"] = (channels,)

    for kind, prefix, channels in layer_names():
        if kind == "stem":
            shapes[f"{prefix}.conv0.weight"] = (STEM_CHANNELS, 3, 7, 7)
            bn(f"{prefix}.norm0", STEM_CHANNELS)
        elif kind == "dense":
            bn(f"{prefix}.norm1", channels)
            shapes[f"{prefix}.conv1.weight"] = (BOTTLENECK, channels, 1, 1)
            bn(f"{prefix}.norm2", BOTTLENECK)
            shapes[f"{prefix}.conv2.weight"] = (GROWTH_RATE, BOTTLENECK, 3, 3)
        elif kind == "transition":
            bn(f"{prefix}.norm", channels)
            shapes[f"{prefix}.conv.weight"] = (channels // 2, channels, 1, 1)
        else:
            bn(f"{prefix}.norm5", channels)
    return shapes


def count_feature_parameters(shapes):
    """Count conv weights and BN weight/bias; running statistics are buffers."""
    total = 0
    for key, shape in shapes.items():
        if key.endswith(".running_mean") or key.endswith(".running_var"):
            continue
        total += int(np.prod(shape))
    return total


def seeded_state_dict(seed):
    """Draw He-normal conv weights (fan-in) with BN gamma=1, beta=0.

    Running statistics start as mean 0, variance 1; `forward` with
    ``fill_statistics=True`` replaces them with measured ones.
    """
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in parameter_shapes().items():
        field = key.rsplit(".", 1)[1]
        if ".conv" in key:
            fan_in = shape[1] * shape[2] * shape[3]
            std = np.float32(np.sqrt(2.0 / fan_in))
            state[key] = rng.standard_normal(shape, dtype=np.float32) * std
        elif field in ("weight", "running_var"):
            state[key] = np.ones(shape, dtype=np.float32)
        else:
            state[key] = np.zeros(shape, dtype=np.float32)
    return state


def check_state_dict(state):
    """Raise ValueError naming the first missing key or wrong shape."""
    for key, shape in parameter_shapes().items():
        if key not in state:
            raise ValueError(f"state dict has no `{key}`: is it a torchvision densenet201?")
        if tuple(state[key].shape) != shape:
            raise ValueError(
                f"`{key}` has shape {tuple(state[key].shape)}, expected {shape}"
            )


def _conv(x, weight, stride=1, pad=0):
    """Convolve NHWC `x` with an (out, in, kh, kw) weight, no bias."""
    out_channels, in_channels, kh, kw = weight.shape
    n, h, w, c = x.shape
    assert c == in_channels
    if kh == 1 and kw == 1 and stride == 1 and pad == 0:
        flat = x.reshape(-1, c) @ weight.reshape(out_channels, c).T
        return flat.reshape(n, h, w, out_channels)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (w + 2 * pad - kw) // stride + 1
    columns = np.empty((n, ho, wo, kh, kw, c), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride * ho, stride)
            cols = slice(j, j + stride * wo, stride)
            columns[:, :, :, i, j, :] = padded[:, rows, cols, :]
    matrix = weight.transpose(2, 3, 1, 0).reshape(kh * kw * c, out_channels)
    flat = columns.reshape(-1, kh * kw * c) @ matrix
    return flat.reshape(n, ho, wo, out_channels)


def _max_pool_3x3_s2(x):
    n, h, w, c = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    ho = (h + 2 - 3) // 2 + 1
    wo = (w + 2 - 3) // 2 + 1
    out = np.full((n, ho, wo, c), -np.inf, dtype=np.float32)
    for i in range(3):
        for j in range(3):
            out = np.maximum(out, padded[:, i : i + 2 * ho : 2, j : j + 2 * wo : 2, :])
    return out


def _avg_pool_2x2(x):
    return 0.25 * (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2])


def _channel_statistics(x):
    """Per-channel mean and population variance of NHWC `x`, in float64."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    var = (flat * flat).mean(axis=0) - mean * mean
    return mean, np.maximum(var, 0.0)


class _Norm:
    """Applies (and optionally measures) one BN of the state dict."""

    def __init__(self, state, fill_statistics):
        self.state = state
        self.fill = fill_statistics

    def __call__(self, prefix, x, statistics=None):
        if self.fill:
            mean, var = statistics if statistics is not None else _channel_statistics(x)
            self.state[f"{prefix}.running_mean"] = mean.astype(np.float32)
            self.state[f"{prefix}.running_var"] = var.astype(np.float32)
        scale, shift = bn_scale_shift(self.state, prefix)
        return np.maximum(x * scale + shift, 0.0, dtype=np.float32)


def bn_scale_shift(state, prefix):
    """Return the float32 per-channel (scale, shift) that a BN in eval mode applies."""
    gamma = state[f"{prefix}.weight"].astype(np.float64)
    beta = state[f"{prefix}.bias"].astype(np.float64)
    mean = state[f"{prefix}.running_mean"].astype(np.float64)
    var = state[f"{prefix}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPSILON)
    shift = beta - mean * scale
    return scale.astype(np.float32), shift.astype(np.float32)


def forward(state, images, fill_statistics=False):
    """Run the features on NCHW float32 `images`; return the NCHW post-ReLU map.

    With ``fill_statistics`` every BN's running mean and variance are set to the
    batch statistics of its input, layer by layer, before that BN is applied, so
    each BN normalises what the already-calibrated layers before it produce.
    """
    norm = _Norm(state, fill_statistics)
    x = images.transpose(0, 2, 3, 1).astype(np.float32)

    x = _conv(x, state["features.conv0.weight"], stride=2, pad=3)
    x = _max_pool_3x3_s2(norm("features.norm0", x))

    for block, layers in enumerate(BLOCK_LAYERS, start=1):
        x, statistics = _dense_block(state, norm, block, layers, x)
        if block < len(BLOCK_LAYERS):
            prefix = f"features.transition{block}"
            x = norm(f"{prefix}.norm", x, statistics)
            x = _avg_pool_2x2(_conv(x, state[f"{prefix}.conv.weight"]))

    x = norm("features.norm5", x, statistics)
    return x.transpose(0, 3, 1, 2)


def _dense_block(state, norm, block, layers, x):
    """Run one dense block; return its concatenated output and, when filling,
    the per-channel statistics of that output.

    A channel of the concatenation holds the same values in every BN that reads
    it, so its statistics are measured once, when the layer that makes it runs.
    """
    n, h, w, channels = x.shape
    final = channels + layers * GROWTH_RATE
    buffer = np.zeros((n, h, w, final), dtype=np.float32)
    buffer[..., :channels] = x
    means = [None] * final
    variances = [None] * final
    if norm.fill:
        mean, var = _channel_statistics(x)
        means[:channels], variances[:channels] = list(mean), list(var)

    for layer in range(1, layers + 1):
        prefix = f"features.denseblock{block}.denselayer{layer}"
        inputs = buffer[..., :channels]
        statistics = None
        if norm.fill:
            statistics = (np.array(means[:channels]), np.array(variances[:channels]))
        y = norm(f"{prefix}.norm1", inputs, statistics)
        y = norm(f"{prefix}.norm2", _conv(y, state[f"{prefix}.conv1.weight"]))
        new = _conv(y, state[f"{prefix}.conv2.weight"], stride=1, pad=1)
        buffer[..., channels : channels + GROWTH_RATE] = new
        if norm.fill:
            mean, var = _channel_statistics(new)
            means[channels : channels + GROWTH_RATE] = list(mean)
            variances[channels : channels + GROWTH_RATE] = list(var)
        channels += GROWTH_RATE

    statistics = None
    if norm.fill:
        statistics = (np.array(means), np.array(variances))
    return buffer, statistics
