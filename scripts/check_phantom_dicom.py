#!/usr/bin/env python3
"""Read a phantom exam.dcm with pydicom and print the attributes a reader gets, as one JSON object.

Usage: check_phantom_dicom.py EXAM.dcm

The integration tests compare this output with the settings and the rendered frames, so
the file is checked by an independent DICOM implementation. Needs pydicom and numpy
(scripts/requirements.txt).
"""

import hashlib
import json
import sys

import numpy as np
import pydicom


def describe(path):
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    regions = [
        {
            "x0": int(item.RegionLocationMinX0),
            "y0": int(item.RegionLocationMinY0),
            "x1": int(item.RegionLocationMaxX1),
            "y1": int(item.RegionLocationMaxY1),
            "data_type": int(item.RegionDataType),
            "spatial_format": int(item.RegionSpatialFormat),
        }
        for item in ds.SequenceOfUltrasoundRegions
    ]
    return {
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "sop_class": str(ds.SOPClassUID),
        "media_sop_class": str(ds.file_meta.MediaStorageSOPClassUID),
        "sop_instance_matches_meta": ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID,
        "manufacturer": str(ds.Manufacturer),
        "photometric": str(ds.PhotometricInterpretation),
        "frames": int(ds.NumberOfFrames),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "bits_allocated": int(ds.BitsAllocated),
        "frame_time_ms": float(ds.FrameTime),
        "frame_increment_pointer": "%08X" % int(ds.FrameIncrementPointer),
        "pixel_shape": list(pixels.shape),
        "pixel_dtype": str(pixels.dtype),
        "pixel_sha256": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
        "regions": regions,
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check_phantom_dicom.py EXAM.dcm")
    print(json.dumps(describe(sys.argv[1])))


if __name__ == "__main__":
    main()
