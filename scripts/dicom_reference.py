"""Write reference values for the real DICOM test files, decoded by pydicom.

Run scripts/fetch-test-data.sh first, then:
    .venv/bin/python scripts/dicom_reference.py
It writes tests/fixtures/dicom/reference.json, which tests/integration/dicom.rs compares
the Rust decoder against. For each file and frame it stores the mean of each channel of
pydicom's `pixel_array` (RGB for YBR data, palette indices before the LUT) and the samples
at a fixed grid of pixels. For PALETTE COLOR files it also stores the LUT colours at those
pixels, at the LUT's full precision, from `apply_color_lut`. Uncompressed YBR files keep
their YBR samples (`as_rgb=False`) and add pydicom's RGB conversion of them.
"""

import json
import pathlib

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, pixel_array

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "testdata" / "dicom"
OUT = ROOT / "tests" / "fixtures" / "dicom" / "reference.json"

# Files the Rust decoder must read, relative to testdata/dicom/.
FILES = [
    "pydicom/ExplVR_BigEnd.dcm",
    "pydicom/SC_rgb_rle_16bit_2frame.dcm",
    "pydicom/SC_rgb_rle_2frame.dcm",
    "pydicom/SC_ybr_full_422_uncompressed.dcm",
    "pydicom/examples_palette.dcm",
    "pydicom/examples_rgb_color.dcm",
    "pydicom/examples_ybr_color.dcm",
    "pydicom-data/OBXXXX1A.dcm",
    "pydicom-data/OBXXXX1A_2frame.dcm",
    "pydicom-data/OBXXXX1A_expb_2frame.dcm",
    "pydicom-data/OBXXXX1A_rle_2frame.dcm",
    "pydicom-data/SC_ybr_full_uncompressed.dcm",
    "pydicom-data/US1_UNCR.dcm",
    "pydicom-data/color-pl.dcm",
    "pydicom-data/color-px.dcm",
    "pydicom-data/color3d_jpeg_baseline.dcm",
    "pydicom-data/emri_small.dcm",
    "pydicom-data/emri_small_RLE.dcm",
    "pydicom-data/emri_small_big_endian.dcm",
    "pydicom-data/gdcm-US-ALOKA-16.dcm",
    "pydicom-data/gdcm-US-ALOKA-16_big.dcm",
]

# Frames beyond this many per file are not stored, to keep the fixture small.
MAX_FRAMES = 6
GRID = 5


def grid_points(rows, columns):
    """Pixel positions (x, y) on a GRID x GRID lattice inside the frame."""
    return [
        (columns * (2 * i + 1) // (2 * GRID), rows * (2 * j + 1) // (2 * GRID))
        for j in range(GRID)
        for i in range(GRID)
    ]


def little_endian_luts(ds):
    """Byte-swap plain palette LUT data of a big endian file in place.

    pydicom 3.0.2's `apply_color_lut` reads plain LUT data as little-endian words whatever
    the transfer syntax (its segmented path does check the byte order), so without this a
    big endian table comes out byte-swapped.
    """
    if ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2":
        return
    for colour in ["Red", "Green", "Blue"]:
        keyword = f"{colour}PaletteColorLookupTableData"
        if keyword in ds:
            words = np.frombuffer(ds[keyword].value, dtype=">u2")
            ds[keyword].value = words.astype("<u2").tobytes()


def frame_reference(ds, frame, points, rgb=None):
    """Means and sampled values of one decoded frame, and of its RGB form when given."""
    samples = frame if frame.ndim == 3 else frame[..., np.newaxis]
    entry = {
        "mean": [float(samples[..., c].mean()) for c in range(samples.shape[-1])],
        "samples": [
            [x, y, [int(v) for v in samples[y, x]]] for (x, y) in points
        ],
    }
    if rgb is not None:
        entry["display_rgb"] = [[x, y, [int(v) for v in rgb[y, x]]] for (x, y) in points]
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        entry["palette_rgb"] = [[x, y, [int(v) for v in rgb[y, x]]] for (x, y) in points]
    return entry


def file_reference(path):
    ds = pydicom.dcmread(path)
    little_endian_luts(ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    points = grid_points(ds.Rows, ds.Columns)
    entries = []
    native_ybr = ds.PhotometricInterpretation.startswith("YBR") and not ds.file_meta.TransferSyntaxUID.is_compressed
    for index in range(min(frames, MAX_FRAMES)):
        if native_ybr:
            frame = pixel_array(ds, index=index, as_rgb=False)
            rgb = pixel_array(ds, index=index, as_rgb=True)
            entries.append(frame_reference(ds, frame, points, rgb))
        else:
            frame = pixel_array(ds, index=index)
            entries.append(frame_reference(ds, frame, points))
    return {
        "frames": frames,
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "photometric": str(ds.PhotometricInterpretation),
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "reference_frames": entries,
    }


def main():
    reference = {
        "generator": f"pydicom {pydicom.__version__}, numpy {np.__version__}",
        "files": {name: file_reference(DATA / name) for name in FILES},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(reference) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
