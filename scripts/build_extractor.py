#!/usr/bin/env python3
"""Build the DenseNet-201 feature extractor: the f32 ONNX, its int8 version, manifests.

Demo weights (default): seeded He-normal convs, BN statistics measured by a
forward pass over synthetic ultrasound-like images, then BN gamma=1, beta=0.
The same seed gives the same f32 ONNX bit for bit on the same package versions.

Real weights: export torchvision's state dict to .npz on a machine with torch,

    import numpy, torchvision
    sd = torchvision.models.densenet201(weights="IMAGENET1K_V1").state_dict()
    numpy.savez("densenet201.npz", **{k: v.numpy() for k, v in sd.items()})

then pass it with --torchvision-state-dict densenet201.npz. The manifest then
records the .npz's SHA-256 and drops the demo label.

Calibration for int8: --calibration-dir takes a directory of preprocessed
1x3x224x224 float32 .npy tensors (`ceus-edge infer --image F --save-tensor T`
writes them). Without it, synthetic images go through the reference
preprocessing in scripts/extractor/preprocess.py, which matches src/preprocess.rs.
"""

import os

# One BLAS thread keeps the float sums of the BN statistics in a fixed order, so
# the f32 model is reproducible. OpenBLAS also picks its matrix kernels by CPU, and
# other kernels sum in another order: on an AMD family 25 machine it took its
# Cooperlake kernels and the rebuild came out different. Its Haswell kernels run on
# every x86_64 CPU with AVX2 and FMA, and they built the committed models. Both must be
# set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
from onnxruntime import quantization  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extractor import densenet, export, preprocess, synthetic  # noqa: E402

DEFAULT_SEED = 201
STATISTICS_SEED_OFFSET = 1
CALIBRATION_SEED_OFFSET = 2


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("models"),
                        help="where the .onnx and .toml files go (default: models)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the demo weights and images (default: {DEFAULT_SEED})")
    parser.add_argument("--statistics-images", type=int, default=32,
                        help="synthetic images for the demo BN statistics (default: 32)")
    parser.add_argument("--torchvision-state-dict", type=Path,
                        help=".npz export of torchvision's densenet201 state dict")
    parser.add_argument("--bn-style", choices=["muladd", "batchnorm"], default="muladd",
                        help="how pre-activation BNs appear in the graph (default: muladd)")
    parser.add_argument("--calibration-dir", type=Path,
                        help="directory of preprocessed 1x3x224x224 float32 .npy tensors")
    parser.add_argument("--calibration-images", type=int, default=32,
                        help="synthetic images for int8 calibration without "
                             "--calibration-dir (default: 32)")
    parser.add_argument("--int8-format", choices=["qoperator", "qdq"], default="qdq",
                        help="QLinearConv nodes or QuantizeLinear/DequantizeLinear pairs")
    parser.add_argument("--activation-type", choices=["u8", "s8"], default="u8",
                        help="int8 activation type (weights are always per-channel s8)")
    parser.add_argument("--name", default="densenet201",
                        help="file stem: NAME-f32.onnx and NAME-int8.onnx")
    parser.add_argument("--f32-only", action="store_true", help="skip quantisation")
    return parser.parse_args()


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def synthetic_tensors(seed, count):
    """Preprocess `count` seeded synthetic images into 1x3x224x224 tensors."""
    return [preprocess.preprocess(image) for image in synthetic.ultrasound_images(seed, count)]


def demo_state_dict(seed, images):
    state = densenet.seeded_state_dict(seed)
    batch = np.concatenate(synthetic_tensors(seed + STATISTICS_SEED_OFFSET, images))
    densenet.forward(state, batch, fill_statistics=True)
    return state


def load_state_dict(path):
    with np.load(path) as archive:
        state = {key: archive[key].astype(np.float32) for key in archive.files
                 if key.startswith("features.") and not key.endswith("num_batches_tracked")}
    densenet.check_state_dict(state)
    return state


def check_against_numpy(model_path, state, tensor):
    """Compare onnxruntime on the exported graph with the numpy forward pass."""
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    features, feature_map = session.run(["features", "feature_map"], {"input": tensor})
    expected = densenet.forward(state, tensor)
    error = np.abs(feature_map - expected).max() / max(np.abs(expected).max(), 1e-12)
    if error > 1e-3:
        raise SystemExit(f"exported graph differs from the numpy forward pass: "
                         f"max relative error {error:.2e}")
    pooled = expected.mean(axis=(2, 3))
    if np.abs(features - pooled).max() > 1e-3 * max(np.abs(pooled).max(), 1e-12):
        raise SystemExit("exported `features` is not the spatial mean of `feature_map`")
    return error


class _TensorReader(quantization.CalibrationDataReader):
    def __init__(self, tensors):
        self.items = iter([{"input": t} for t in tensors])

    def get_next(self):
        return next(self.items, None)


def calibration_tensors(args):
    if args.calibration_dir is None:
        tensors = synthetic_tensors(args.seed + CALIBRATION_SEED_OFFSET, args.calibration_images)
        source = (f"{args.calibration_images} synthetic ultrasound images "
                  f"(seed {args.seed + CALIBRATION_SEED_OFFSET}, scripts/extractor/synthetic.py)")
        return tensors, source
    paths = sorted(args.calibration_dir.glob("*.npy"))
    if not paths:
        raise SystemExit(f"no .npy tensors in {args.calibration_dir}: write them with "
                         f"`ceus-edge infer --image FILE --save-tensor T.npy`")
    tensors = []
    for path in paths:
        tensor = np.load(path)
        if tensor.shape != (1, 3, 224, 224) or tensor.dtype != np.float32:
            raise SystemExit(f"{path}: expected a 1x3x224x224 float32 tensor, "
                             f"got {tensor.shape} {tensor.dtype}")
        tensors.append(tensor)
    return tensors, f"{len(paths)} tensors from {args.calibration_dir}"


def quantize(f32_path, int8_path, tensors, int8_format, activation_type):
    """Static int8 quantisation of the convs only, per-channel s8 weights, MinMax ranges."""
    formats = {"qdq": quantization.QuantFormat.QDQ,
               "qoperator": quantization.QuantFormat.QOperator}
    types = {"u8": quantization.QuantType.QUInt8, "s8": quantization.QuantType.QInt8}
    quantization.quantize_static(
        str(f32_path), str(int8_path), _TensorReader(tensors),
        quant_format=formats[int8_format],
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=types[activation_type],
        weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax,
    )


def toml_string(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_manifest(path, model_path, fields):
    """Write the manifest TOML next to a model: hash, tensors, preprocessing, provenance."""
    demo = fields["demo"]
    lines = [
        f"# Manifest of {model_path.name}, written by scripts/build_extractor.py.",
        "",
        "[model]",
        f"file = {toml_string(model_path.name)}",
        f"sha256 = {toml_string(sha256_of(model_path))}",
        'architecture = "densenet201, torchvision layout, features only"',
        f"precision = {toml_string(fields['precision'])}",
        f"demo = {'true' if demo else 'false'}",
        f"note = {toml_string(fields['note'])}",
        f"licence = {toml_string(fields['licence'])}",
        "",
        "[input]",
        'name = "input"',
        "shape = [1, 3, 224, 224]",
        'dtype = "float32"',
        'layout = "NCHW"',
        "",
        "[[outputs]]",
        'name = "features"',
        "shape = [1, 1920]",
        'description = "global average pool of the post-ReLU final map"',
        "",
        "[[outputs]]",
        'name = "feature_map"',
        "shape = [1, 1920, 7, 7]",
        'description = "post-ReLU final map before pooling"',
        "",
        "[preprocess]",
        'resize = "squash"',
        "size = 224",
        'interpolation = "bilinear, PIL convention (half-pixel centres, antialiased when '
        'shrinking)"',
        "scale = 0.00392156862745098",
        f"mean = [{', '.join(str(m) for m in preprocess.MEAN)}]",
        f"std = [{', '.join(str(s) for s in preprocess.STD)}]",
        'channel_order = "RGB"',
        'grey = "BT.601 luma copied to the three channels"',
        "",
        "[provenance]",
        'script = "scripts/build_extractor.py"',
    ]
    for key, value in fields["provenance"].items():
        lines.append(f"{key} = {toml_string(value) if isinstance(value, str) else value}")
    path.write_text("\n".join(lines) + "\n")


def main():
    args = parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    f32_path = args.out_dir / f"{args.name}-f32.onnx"
    int8_path = args.out_dir / f"{args.name}-int8.onnx"

    provenance = {
        "command": " ".join(["scripts/build_extractor.py"] + sys.argv[1:]),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "bn_style": args.bn_style,
    }
    if args.torchvision_state_dict is None:
        state = demo_state_dict(args.seed, args.statistics_images)
        demo = True
        note = ("demo extractor with seeded, untrained weights: its features carry no "
                "learned meaning; not for clinical use")
        licence = "MIT OR Apache-2.0 (weights generated by the script)"
        provenance["weights"] = "seeded He-normal (fan-in) convs, BN gamma 1 and beta 0"
        provenance["seed"] = args.seed
        provenance["bn_statistics"] = (
            f"{args.statistics_images} synthetic ultrasound images "
            f"(seed {args.seed + STATISTICS_SEED_OFFSET}), batch mean and population variance")
    else:
        state = load_state_dict(args.torchvision_state_dict)
        demo = False
        note = "exported from a torchvision state dict; validate before clinical use"
        licence = "that of the exported weights (torchvision's ImageNet weights: BSD-3-Clause)"
        provenance["weights"] = (f"torchvision state dict {args.torchvision_state_dict.name}, "
                                 f"sha256 {sha256_of(args.torchvision_state_dict)}")

    count = densenet.count_feature_parameters(densenet.parameter_shapes())
    assert count == densenet.FEATURE_PARAMETERS, count

    model = export.build_model(state, args.bn_style)
    onnx.save(model, f32_path)
    error = check_against_numpy(f32_path, state, synthetic_tensors(args.seed + 3, 1)[0])
    print(f"{f32_path}: sha256 {sha256_of(f32_path)}, {count} feature parameters, "
          f"max relative error against numpy {error:.1e}")
    common = {"demo": demo, "note": note, "licence": licence}
    write_manifest(f32_path.with_suffix(".toml"), f32_path,
                   {**common, "precision": "f32", "provenance": provenance})
    if args.f32_only:
        return

    tensors, source = calibration_tensors(args)
    quantize(f32_path, int8_path, tensors, args.int8_format, args.activation_type)
    provenance.update({
        "f32_sha256": sha256_of(f32_path),
        "calibration": source,
        "quantization": (f"onnxruntime quantize_static, {args.int8_format}, Conv only, "
                         f"per-channel s8 weights, {args.activation_type} activations, MinMax"),
    })
    write_manifest(int8_path.with_suffix(".toml"), int8_path,
                   {**common, "precision": "int8", "provenance": provenance})
    print(f"{int8_path}: sha256 {sha256_of(int8_path)}")


if __name__ == "__main__":
    main()
