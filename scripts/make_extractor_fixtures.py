#!/usr/bin/env python3
"""Write the reference fixtures of tests/integration/extractor.rs.

- onnxruntime's outputs of models/densenet201-int8.onnx on two fixed inputs (a
  preprocessed synthetic ultrasound image and a seeded pattern), and, when
  models/densenet201-f32.onnx is present, its outputs and the int8-vs-f32 cosine;
- a tiny per-channel DequantizeLinear model with onnxruntime's output;
- numpy-reference preprocessing of two small images (scripts/extractor/preprocess.py),
  checked against Pillow's BILINEAR resize when Pillow is installed.

Run from the repository root after scripts/build_extractor.py.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extractor import preprocess, synthetic  # noqa: E402

OUT = Path("tests/fixtures/extractor")
INT8 = Path("models/densenet201-int8.onnx")
F32 = Path("models/densenet201-f32.onnx")
SEED = 4242


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fixed_inputs():
    """Return a preprocessed synthetic ultrasound image and a seeded smooth pattern with noise."""
    image = synthetic.ultrasound_images(SEED, 1)[0]
    ultrasound = preprocess.preprocess(image)
    rng = np.random.default_rng(SEED)
    ys, xs = np.mgrid[0:224, 0:224] / 224.0
    base = np.sin(9.0 * xs + 4.0 * ys) * np.cos(5.0 * ys)
    pattern = np.stack([base + 0.3 * rng.standard_normal((224, 224)) + c * 0.2 for c in range(3)])
    return {"ultrasound": ultrasound, "pattern": pattern[None].astype(np.float32)}


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def write_model_references(inputs):
    int8 = session(INT8)
    lines = [f'int8_sha256 = "{sha256_of(INT8)}"']
    for name, tensor in inputs.items():
        np.save(OUT / f"input_{name}.npy", tensor)
        features, feature_map = int8.run(["features", "feature_map"], {"input": tensor})
        np.save(OUT / f"ort_int8_features_{name}.npy", features)
        if name == "ultrasound":
            np.save(OUT / f"ort_int8_map_{name}.npy", feature_map)
    if F32.exists():
        f32 = session(F32)
        lines.append(f'f32_sha256 = "{sha256_of(F32)}"')
        for name, tensor in inputs.items():
            features = f32.run(["features"], {"input": tensor})[0]
            np.save(OUT / f"ort_f32_features_{name}.npy", features)
            int8_features = np.load(OUT / f"ort_int8_features_{name}.npy")
            value = cosine(int8_features, features)
            lines.append(f"int8_vs_f32_cosine_{name} = {value:.6f}")
            print(f"onnxruntime int8 vs f32 cosine on {name}: {value:.6f}")
    else:
        print(f"{F32} is absent: no f32 references (build it with scripts/build_extractor.py)")
    (OUT / "reference.toml").write_text(
        "# Models the references were computed with, by scripts/make_extractor_fixtures.py.\n"
        + "\n".join(lines) + "\n")


def write_dequantize_model():
    """Write a DequantizeLinear of int8 x [2, 3], per-channel scale and zero point (axis 1)."""
    scale = numpy_helper.from_array(np.array([0.5, 2.0, 10.0], dtype=np.float32), "scale")
    zero = numpy_helper.from_array(np.array([0, 1, -1], dtype=np.int8), "zero_point")
    node = helper.make_node("DequantizeLinear", ["x", "scale", "zero_point"], ["y"], axis=1)
    graph = helper.make_graph(
        [node], "per_channel_dequantize",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [scale, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = OUT / "dequantize_per_channel.onnx"
    onnx.save(model, path)

    x = np.array([[1, 1, 1], [4, 4, 4]], dtype=np.int8)
    y = session(path).run(["y"], {"x": x})[0]
    expected = np.array([[0.5, 0.0, 20.0], [2.0, 6.0, 50.0]], dtype=np.float32)
    assert np.array_equal(y, expected), y


def preprocessing_images():
    rng = np.random.default_rng(SEED + 1)
    ys, xs = np.mgrid[0:36, 0:48]
    rgb = np.stack([xs * 5, ys * 7, (xs + ys) * 3], axis=-1) + rng.integers(0, 40, (36, 48, 3))
    grey = synthetic.ultrasound_images(SEED + 2, 1, height=300, width=250)[0]
    return rgb.clip(0, 255).astype(np.uint8), grey


def write_preprocessing():
    """Write an RGB image upscaled in squash mode with an ROI, a grey one shrunk in crop mode."""
    rgb, grey = preprocessing_images()
    np.save(OUT / "pre_rgb.npy", rgb.astype(np.float32))
    np.save(OUT / "pre_rgb_squash_roi.npy", preprocess.preprocess(rgb, (5, 3, 40, 30), "squash"))
    np.save(OUT / "pre_grey.npy", grey.astype(np.float32))
    np.save(OUT / "pre_grey_crop.npy", preprocess.preprocess(grey, None, "crop"))
    check_against_pillow(grey)


def check_against_pillow(grey):
    """Compare the squash resize with Pillow's BILINEAR, within 1 grey level.

    PIL rounds to 8 bits between its two passes, so exact equality is not expected.
    """
    try:
        from PIL import Image
    except ImportError:
        print("Pillow is not installed: resize not checked against PIL")
        return
    ours = preprocess.resize(grey, "squash")
    theirs = np.asarray(Image.fromarray(grey).resize((224, 224), Image.BILINEAR), dtype=float)
    difference = np.abs(ours - theirs).max()
    assert difference <= 1.0, difference
    print(f"squash resize vs Pillow BILINEAR: max difference {difference:.3f} grey levels")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_model_references(fixed_inputs())
    write_dequantize_model()
    write_preprocessing()


if __name__ == "__main__":
    main()
