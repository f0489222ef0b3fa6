"""Checks of the DenseNet-201 builder; run with
`.venv/bin/python -m unittest discover -s scripts -p 'test_*.py'`."""

import hashlib
import subprocess
import sys
import tempfile
import tomllib
import unittest
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extractor import densenet, preprocess  # noqa: E402

# torchvision's densenet201 has 20,013,928 parameters; its classifier is a
# 1920 -> 1000 linear layer with bias.
TORCHVISION_TOTAL = 20_013_928
CLASSIFIER = 1920 * 1000 + 1000


class ArchitectureTest(unittest.TestCase):
    def test_feature_parameter_count(self):
        count = densenet.count_feature_parameters(densenet.parameter_shapes())
        self.assertEqual(count, TORCHVISION_TOTAL - CLASSIFIER)
        self.assertEqual(count, densenet.FEATURE_PARAMETERS)

    def test_layer_counts(self):
        kinds = [kind for kind, _, _ in densenet.layer_names()]
        self.assertEqual(kinds.count("dense"), 6 + 12 + 48 + 32)
        self.assertEqual(kinds.count("transition"), 3)

    def test_state_dict_shape_check(self):
        state = densenet.seeded_state_dict(1)
        densenet.check_state_dict(state)
        del state["features.norm5.bias"]
        with self.assertRaises(ValueError):
            densenet.check_state_dict(state)
        state = densenet.seeded_state_dict(1)
        state["features.conv0.weight"] = np.zeros((64, 3, 3, 3), dtype=np.float32)
        with self.assertRaises(ValueError):
            densenet.check_state_dict(state)

    def test_seed_decides_weights(self):
        a = densenet.seeded_state_dict(7)["features.conv0.weight"]
        b = densenet.seeded_state_dict(7)["features.conv0.weight"]
        c = densenet.seeded_state_dict(8)["features.conv0.weight"]
        self.assertTrue(np.array_equal(a, b))
        self.assertFalse(np.array_equal(a, c))


class ReproducibilityTest(unittest.TestCase):
    def test_f32_rebuild_matches_manifest(self):
        """A rebuild from the default seed must give the SHA-256 the manifest records.

        It takes about 10 s and depends on the pinned numpy and onnx versions.
        """
        root = Path(__file__).resolve().parent.parent
        manifest = tomllib.loads((root / "models/densenet201-f32.toml").read_text())
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, str(root / "scripts/build_extractor.py"),
                            "--f32-only", "--out-dir", out], check=True, capture_output=True)
            digest = hashlib.sha256(Path(out, "densenet201-f32.onnx").read_bytes()).hexdigest()
        self.assertEqual(digest, manifest["model"]["sha256"])


class PreprocessTest(unittest.TestCase):
    def test_resize_weights_sum_to_one(self):
        for size in (30, 224, 500):
            matrix = preprocess.resize_weights(size, 224)
            np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)

    def test_identity_resize(self):
        np.testing.assert_allclose(preprocess.resize_weights(224, 224), np.eye(224), atol=1e-12)


if __name__ == "__main__":
    unittest.main()
