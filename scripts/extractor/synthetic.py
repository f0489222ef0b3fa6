"""Synthetic B-mode-like grey images: speckle inside a sector with bright and dark blobs.

They stand in for ultrasound frames when BN statistics and int8 calibration
ranges are measured for the demo extractor. They are not meant to look clinical.
"""

import numpy as np

DYNAMIC_RANGE_DB = 50.0


def sector_mask(height, width):
    """Boolean mask of a 70-degree fan whose apex sits just above the top centre."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    apex_x, apex_y = (width - 1) / 2.0, -0.08 * height
    radius = np.hypot(xs - apex_x, ys - apex_y)
    angle = np.degrees(np.arctan2(xs - apex_x, ys - apex_y))
    inner, outer = 0.12 * height, 1.05 * height
    return (np.abs(angle) <= 35.0) & (radius >= inner) & (radius <= outer)


def _blobs(rng, height, width):
    """Echogenicity map in linear amplitude: 1 with a few Gaussian blobs."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    echo = np.ones((height, width))
    for _ in range(int(rng.integers(3, 7))):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.25, 0.9) * height
        sigma = rng.uniform(0.04, 0.15) * min(height, width)
        gain = rng.choice([rng.uniform(2.0, 6.0), rng.uniform(0.05, 0.4)])
        bump = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2.0 * sigma**2))
        echo *= 1.0 + (gain - 1.0) * bump
    return echo


def _speckle(rng, height, width):
    """Rayleigh-distributed amplitude, correlated over about 2 pixels."""
    field = rng.standard_normal((height, width)) + 1j * rng.standard_normal((height, width))
    kernel = np.ones(3) / 3.0
    for axis in (0, 1):
        field = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, field)
    return np.abs(field)


def ultrasound_image(rng, height=240, width=320):
    """Return one uint8 grey image, log-compressed over DYNAMIC_RANGE_DB."""
    amplitude = _blobs(rng, height, width) * _speckle(rng, height, width)
    depth = np.linspace(0.0, 1.0, height)[:, None]
    amplitude *= np.exp(-rng.uniform(0.3, 1.2) * depth)
    reference = np.percentile(amplitude, 99.5)
    db = 20.0 * np.log10(np.maximum(amplitude / reference, 1e-6))
    grey = np.clip((db + DYNAMIC_RANGE_DB) / DYNAMIC_RANGE_DB, 0.0, 1.0) * 255.0
    grey = np.where(sector_mask(height, width), grey, 0.0)
    return np.round(grey).astype(np.uint8)


def ultrasound_images(seed, count, height=240, width=320):
    """Return `count` images from one seeded generator, as a list of uint8 arrays."""
    rng = np.random.default_rng(seed)
    return [ultrasound_image(rng, height, width) for _ in range(count)]
