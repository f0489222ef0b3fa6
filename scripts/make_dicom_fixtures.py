"""Write the small synthetic DICOM fixtures of tests/fixtures/dicom/.

    .venv/bin/python scripts/make_dicom_fixtures.py

Each file exercises one case of the Rust reader. The JPEG frames come from Pillow, the RLE
frames from pydicom's RLE encoder, the palette tables are built here and checked against
pydicom's `apply_color_lut`, so the expected values in tests/integration/dicom.rs do not
come from the code under test. Expected values the tests need are written to
tests/fixtures/dicom/synthetic.json.
"""

import io
import json
import pathlib
import struct

import numpy as np
import PIL
from PIL import Image
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_color_lut, pixel_array
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "dicom"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def new_dataset(transfer_syntax, rows, columns, photometric, samples, bits, frames=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME if frames else SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[photometric, str(rows)])
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Manufacturer = "ceus-edge fixtures"
    ds.PatientName = "Fixture^Patient"
    ds.PatientID = "FIXTURE-0001"
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if samples == 3:
        ds.PlanarConfiguration = 0
    if frames:
        ds.NumberOfFrames = frames
    return ds


def save(ds, name):
    ds.save_as(OUT / name, enforce_file_format=True)
    print(f"wrote {name} ({(OUT / name).stat().st_size} bytes)")


def jpeg_frame(rgb, rows, columns):
    """One JPEG Baseline frame (JFIF, YCbCr with 4:2:2 chroma subsampling) of a solid colour."""
    image = Image.new("RGB", (columns, rows), rgb)
    buffer = io.BytesIO()
    # Pillow's subsampling=1 is 4:2:2.
    image.save(buffer, format="JPEG", quality=95, subsampling=1)
    return buffer.getvalue()


def make_jpeg_red_blue(expected):
    rows, columns = 16, 32
    frames = [jpeg_frame((255, 0, 0), rows, columns), jpeg_frame((0, 0, 255), rows, columns)]
    ds = new_dataset(JPEGBaseline8Bit, rows, columns, "YBR_FULL_422", 3, 8, frames=2)
    ds.FrameTime = 40
    ds.FrameIncrementPointer = 0x00181063
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    save(ds, "jpeg_ybr422_red_blue.dcm")

    # The same frames split in two fragments each, without an offset table, so only the
    # JPEG end-of-image markers tell where a frame ends.
    split = [part for frame in frames for part in (frame[:100], frame[100:])]
    ds.PixelData = encapsulate_fragments(split)
    save(ds, "jpeg_ybr422_red_blue_split.dcm")

    reference = pydicom.dcmread(OUT / "jpeg_ybr422_red_blue.dcm")
    expected["jpeg_red_blue"] = [
        [int(v) for v in pixel_array(reference, index=i)[rows // 2, columns // 2]]
        for i in range(2)
    ]


def encapsulate_fragments(fragments):
    """Encapsulated pixel data with an empty offset table and the given fragments."""
    out = bytearray(b"\xfe\xff\x00\xe0\x00\x00\x00\x00")
    for fragment in fragments:
        if len(fragment) % 2:
            fragment = fragment + b"\x00"
        out += b"\xfe\xff\x00\xe0" + struct.pack("<I", len(fragment)) + fragment
    return bytes(out)


def make_rle(expected):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    ds = new_dataset(ExplicitVRLittleEndian, 2, 2, "RGB", 3, 8)
    ds.PixelData = rgb.tobytes()
    ds.compress(RLELossless, rgb, encoding_plugin="pydicom", generate_instance_uid=False)
    save(ds, "rle_rgb_2x2.dcm")
    expected["rle_rgb_2x2"] = rgb.reshape(-1, 3).tolist()

    grey = np.array([[0x0102, 0x0304], [0xFFFF, 0x0000]], dtype=np.uint16)
    ds = new_dataset(ExplicitVRLittleEndian, 2, 2, "MONOCHROME2", 1, 16)
    ds.PixelData = grey.tobytes()
    ds.compress(RLELossless, grey, encoding_plugin="pydicom", generate_instance_uid=False)
    save(ds, "rle_mono16_2x2.dcm")
    expected["rle_mono16_2x2"] = grey.reshape(-1).tolist()

    # The same 16-bit samples uncompressed in Explicit VR Big Endian.
    ds = new_dataset(ExplicitVRBigEndian, 2, 2, "MONOCHROME2", 1, 16)
    ds.PixelData = grey.astype(">u2").tobytes()
    ds["PixelData"].VR = "OW"
    save(ds, "native_mono16_be_2x2.dcm")


def expand_segments(segments):
    """The plain table of a list of ('discrete', values) / ('linear', n, y1) /
    ('indirect', count, first_segment) segments (PS3.3 C.7.9.2)."""
    table = []
    for segment in segments:
        if segment[0] == "discrete":
            table += segment[1]
        elif segment[0] == "linear":
            _, n, y1 = segment
            y0 = table[-1]
            assert (y1 - y0) % n == 0, "keep the fixture's linear steps exact integers"
            table += [y0 + (y1 - y0) * k // n for k in range(1, n + 1)]
        else:
            _, count, first = segment
            table += expand_segments(segments[first : first + count])
    return table


def encode_segments(segments):
    """Segmented LUT words; indirect offsets count words from the start of the data."""
    words, starts = [], []
    for segment in segments:
        starts.append(len(words))
        if segment[0] == "discrete":
            words += [0, len(segment[1])] + list(segment[1])
        elif segment[0] == "linear":
            words += [1, segment[1], segment[2]]
        else:
            offset = starts[segment[2]]
            words += [2, segment[1], offset & 0xFFFF, offset >> 16]
    return words


PALETTE_SEGMENTS = {
    "Red": [("discrete", [0x12AB]), ("linear", 255, 0x12AB + 255 * 16)],
    "Green": [("discrete", [0xFFFF, 0x0000, 0x8000]), ("linear", 253, 0x8000 + 253 * 64)],
    "Blue": [
        ("discrete", [0x0102, 0xA0B0, 0x1234, 0xFEDC]),
        ("indirect", 1, 0),
        ("linear", 248, 0xFEDC - 248 * 100),
    ],
}


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


def make_palettes(expected):
    indices = np.array([[0, 1, 2, 3], [4, 7, 128, 255]], dtype=np.uint8)
    tables = {c: expand_segments(s) for c, s in PALETTE_SEGMENTS.items()}
    assert all(len(t) == 256 for t in tables.values())

    for syntax, suffix in [(ExplicitVRLittleEndian, "le"), (ExplicitVRBigEndian, "be")]:
        order = "<" if suffix == "le" else ">"
        for kind in ["plain", "segmented"]:
            ds = new_dataset(syntax, 2, 4, "PALETTE COLOR", 1, 8)
            for colour in ["Red", "Green", "Blue"]:
                setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
                if kind == "plain":
                    words = tables[colour]
                    keyword = f"{colour}PaletteColorLookupTableData"
                else:
                    words = encode_segments(PALETTE_SEGMENTS[colour])
                    keyword = f"Segmented{colour}PaletteColorLookupTableData"
                setattr(ds, keyword, struct.pack(f"{order}{len(words)}H", *words))
                ds[keyword].VR = "OW"
            ds.PixelData = indices.tobytes()
            ds["PixelData"].VR = "OB"
            name = f"palette16_{kind}_{suffix}.dcm"
            save(ds, name)

            check = pydicom.dcmread(OUT / name)
            little_endian_luts(check)
            rgb = apply_color_lut(pixel_array(check), check)
            for channel, colour in enumerate(["Red", "Green", "Blue"]):
                lut = np.array(tables[colour])
                assert (rgb[..., channel] == lut[indices]).all(), f"{name}: {colour} differs"

    expected["palette_indices"] = indices.reshape(-1).tolist()
    expected["palette_rgb16"] = [
        [tables[c][i] for c in ["Red", "Green", "Blue"]] for i in indices.reshape(-1)
    ]


def make_palettes_8_bit(expected):
    """8-bit entries, packed one byte per entry or one word per entry, with the first
    mapped value at 10 so lower indices take entry 0."""
    indices = np.array([[0, 9, 10, 11], [100, 200, 254, 255]], dtype=np.uint8)
    first_mapped = 10
    tables = {
        "Red": [(7 * i + 3) % 256 for i in range(256)],
        "Green": [255 - i for i in range(256)],
        "Blue": [(i * i) % 256 for i in range(256)],
    }
    for packing in ["bytes", "words"]:
        ds = new_dataset(ExplicitVRLittleEndian, 2, 4, "PALETTE COLOR", 1, 8)
        for colour, table in tables.items():
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, first_mapped, 8])
            keyword = f"{colour}PaletteColorLookupTableData"
            if packing == "bytes":
                data = bytes(table)
            else:
                data = struct.pack(f"<{len(table)}H", *table)
            setattr(ds, keyword, data)
            ds[keyword].VR = "OW"
        ds.PixelData = indices.tobytes()
        ds["PixelData"].VR = "OB"
        name = f"palette8_{packing}.dcm"
        save(ds, name)

        check = pydicom.dcmread(OUT / name)
        rgb = apply_color_lut(pixel_array(check), check)
        for channel, colour in enumerate(["Red", "Green", "Blue"]):
            lut = np.array(tables[colour])
            positions = np.clip(indices.astype(int) - first_mapped, 0, 255)
            assert (rgb[..., channel] == lut[positions]).all(), f"{name}: {colour} differs"

    positions = np.clip(indices.reshape(-1).astype(int) - first_mapped, 0, 255)
    expected["palette8_indices"] = indices.reshape(-1).tolist()
    expected["palette8_rgb"] = [
        [tables[c][p] for c in ["Red", "Green", "Blue"]] for p in positions
    ]


def make_timing_cases(expected):
    frames = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    ds = new_dataset(ExplicitVRLittleEndian, 4, 4, "MONOCHROME2", 1, 8, frames=5)
    ds.FrameTimeVector = [0, 125, 124, 124, 126]
    ds.FrameIncrementPointer = 0x00181065
    ds.PixelData = frames.tobytes()
    save(ds, "frame_time_vector.dcm")
    expected["frame_time_vector_s"] = [0.0, 0.125, 0.249, 0.373, 0.499]

    ds = new_dataset(ExplicitVRLittleEndian, 4, 4, "MONOCHROME2", 1, 8, frames=3)
    ds.PixelData = frames[:3].tobytes()
    save(ds, "no_timing.dcm")


def make_bad_headers():
    ds = new_dataset(ExplicitVRLittleEndian, 65535, 65535, "MONOCHROME2", 1, 8, frames=1)
    ds.NumberOfFrames = 2**31
    ds.PixelData = bytes(16)
    save(ds, "absurd_header.dcm")

    ds = new_dataset(ExplicitVRLittleEndian, 16, 16, "MONOCHROME2", 1, 8, frames=1)
    ds.NumberOfFrames = 2**31
    ds.CineRate = 30
    ds.PixelData = bytes(16)
    save(ds, "absurd_frame_count.dcm")

    # Two frames of 4x4 declared, 24 bytes present: frame 1 is incomplete.
    ds = new_dataset(ExplicitVRLittleEndian, 4, 4, "MONOCHROME2", 1, 8, frames=2)
    ds.CineRate = 30
    ds.PixelData = bytes(range(24))
    save(ds, "short_pixel_data.dcm")


def make_monochrome1(expected):
    grey = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    ds = new_dataset(ExplicitVRLittleEndian, 2, 2, "MONOCHROME1", 1, 16)
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelData = grey.tobytes()
    save(ds, "mono1_12bit.dcm")
    expected["mono1_12bit_raw"] = grey.reshape(-1).tolist()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {"generator": f"pydicom {pydicom.__version__}, Pillow {PIL.__version__}"}
    make_jpeg_red_blue(expected)
    make_rle(expected)
    make_palettes(expected)
    make_palettes_8_bit(expected)
    make_timing_cases(expected)
    make_bad_headers()
    make_monochrome1(expected)
    (OUT / "synthetic.json").write_text(json.dumps(expected, indent=1) + "\n")
    print("wrote synthetic.json")


if __name__ == "__main__":
    main()
