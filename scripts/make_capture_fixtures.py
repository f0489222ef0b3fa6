#!/usr/bin/env python3
"""Write the MJPEG fixtures of the capture tests into tests/fixtures/capture/.

Pillow's JPEG encoder (libjpeg) uses the standard Huffman tables of JPEG Annex K.3 unless
asked to optimise them, so these files carry exactly the tables that the capture layer
inserts into MJPEG frames that lack them. The means of Pillow's own decoded pixels go into
reference.json, as an independent check of the Rust decoding.

Run from the repository root: .venv/bin/python scripts/make_capture_fixtures.py
"""

import json
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path("tests/fixtures/capture")


def colour_scene(width, height):
    """A gradient with a few sharp shapes, so every Huffman table is exercised."""
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            pixels[x, y] = (x * 255 // (width - 1), y * 255 // (height - 1), 128)
    draw = ImageDraw.Draw(image)
    draw.rectangle([8, 8, 23, 19], fill=(250, 20, 30))
    draw.ellipse([36, 20, 58, 42], fill=(10, 200, 240))
    draw.line([0, height - 1, width - 1, 0], fill=(255, 255, 255), width=2)
    return image


def grey_scene(width, height):
    image = Image.new("L", (width, height))
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            pixels[x, y] = (x * 7 + y * 13) % 256
    return image


def channel_means(image):
    """Mean of each channel of the image as Pillow decodes it, in 0..255."""
    bands = image.split()
    count = image.width * image.height
    return [sum(band.get_flattened_data()) / count for band in bands]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    reference = {}
    fixtures = {
        # 4:2:2 chroma subsampling, as UVC MJPEG cameras send.
        "colour_422.jpg": (colour_scene(64, 48), {"subsampling": 1}),
        "grey.jpg": (grey_scene(32, 16), {}),
    }
    for name, (image, options) in fixtures.items():
        path = OUT / name
        image.save(path, "JPEG", quality=90, optimize=False, **options)
        decoded = Image.open(path)
        decoded.load()
        reference[name] = {
            "width": decoded.width,
            "height": decoded.height,
            "mode": decoded.mode,
            "channel_means": channel_means(decoded),
        }
    (OUT / "reference.json").write_text(json.dumps(reference, indent=2) + "\n")


if __name__ == "__main__":
    main()
