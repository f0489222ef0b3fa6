"""Reference preprocessing, step for step what src/preprocess.rs does.

The steps: take the luma of the ROI (BT.601 integer weights for RGB) and resize
it to 224x224. "squash" stretches the ROI, while "crop" scales the short side to
224 and keeps the centre. Then scale to [0, 1], apply the ImageNet mean and std
with the grey value copied to 3 channels, and lay the tensor out as NCHW.

The resize follows PIL's BILINEAR convention (also torchvision's antialiased
resize): pixel centres sit at half-integers, output pixel i samples the input
around (i + 0.5) * in / out, and when shrinking the triangle filter widens by
the scale factor so every input pixel contributes. Unlike PIL it works in
floating point throughout, with no 8-bit rounding between the two passes.
"""

import numpy as np

SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def luma(image):
    """uint8 luma of a HxW grey or HxWx3 RGB uint8 image: (77R + 150G + 29B + 128) >> 8."""
    if image.ndim == 2:
        return image
    rgb = image.astype(np.uint32)
    value = (77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8
    return value.astype(np.uint8)


def resize_weights(in_size, out_size):
    """Return an (out_size, in_size) float64 matrix of normalised bilinear weights."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = filter_scale
    matrix = np.zeros((out_size, in_size))
    for i in range(out_size):
        centre = (i + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        taps = np.arange(first, last)
        weights = np.maximum(0.0, 1.0 - np.abs((taps + 0.5 - centre) / filter_scale))
        matrix[i, first:last] = weights / weights.sum()
    return matrix


def crop_geometry(width, height):
    """For "crop" mode: the resized size and the top-left corner of the 224x224 window.

    Matches torchvision's Resize(224) (long side truncated) then CenterCrop(224)
    (offsets rounded half to even, as Python's round does).
    """
    if width <= height:
        new_w, new_h = SIZE, int(SIZE * height / width)
    else:
        new_w, new_h = int(SIZE * width / height), SIZE
    left = int(round((new_w - SIZE) / 2.0))
    top = int(round((new_h - SIZE) / 2.0))
    return new_w, new_h, left, top


def resize(grey, mode="squash"):
    """Resize a HxW uint8 image to SIZE x SIZE float64 values in [0, 255]."""
    height, width = grey.shape
    if mode == "squash":
        rows = resize_weights(height, SIZE)
        cols = resize_weights(width, SIZE)
    elif mode == "crop":
        new_w, new_h, left, top = crop_geometry(width, height)
        rows = resize_weights(height, new_h)[top : top + SIZE]
        cols = resize_weights(width, new_w)[left : left + SIZE]
    else:
        raise ValueError(f"unknown resize mode `{mode}`: expected squash or crop")
    horizontal = grey.astype(np.float64) @ cols.T
    return rows @ horizontal


def preprocess(image, roi=None, mode="squash"):
    """Return the 1x3x224x224 float32 tensor for an image and an optional (x, y, w, h) ROI."""
    grey = luma(image)
    if roi is not None:
        x, y, w, h = roi
        grey = grey[y : y + h, x : x + w]
    unit = resize(grey, mode) / 255.0
    channels = [(unit - m) / s for m, s in zip(MEAN, STD)]
    return np.stack(channels)[None].astype(np.float32)
