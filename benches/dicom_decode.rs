//! Time to decode one DICOM frame into a display `Frame`, the per-frame cost of reading a
//! recorded cine.
//!
//! `native_rgb_640x480` reads uncompressed 8-bit RGB frames from a file the bench writes
//! itself. `jpeg_ybr422_640x480` reads the SonoSite JPEG Baseline cine that
//! scripts/fetch-test-data.sh puts in testdata/dicom/, and is skipped when it is missing.
//! Each iteration decodes the next frame of the file, wrapping around at the end.

use std::path::Path;

use ceus_edge::frame::Frame;
use ceus_edge::source::dicom::DicomSource;
use ceus_edge::source::OpenOptions;
use criterion::{criterion_group, criterion_main, Criterion};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

const ROWS: u16 = 480;
const COLUMNS: u16 = 640;
const FRAMES: u32 = 8;

/// Writes an Explicit VR Little Endian RGB cine of `FRAMES` frames with a 25 ms frame time.
fn write_native_rgb(path: &Path) {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.3.1")
        .media_storage_sop_instance_uid("2.25.1234")
        .transfer_syntax("1.2.840.10008.1.2.1")
        .build()
        .expect("a complete file meta group");

    let frame_len = usize::from(ROWS) * usize::from(COLUMNS) * 3;
    let pixels: Vec<u8> = (0..frame_len * FRAMES as usize)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut object = InMemDicomObject::new_empty();
    let us = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    object.put(us(tags::SAMPLES_PER_PIXEL, 3));
    object.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from("RGB"),
    ));
    object.put(us(tags::PLANAR_CONFIGURATION, 0));
    object.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(FRAMES.to_string()),
    ));
    object.put(DataElement::new(
        tags::FRAME_TIME,
        VR::DS,
        PrimitiveValue::from("25"),
    ));
    object.put(us(tags::ROWS, ROWS));
    object.put(us(tags::COLUMNS, COLUMNS));
    object.put(us(tags::BITS_ALLOCATED, 8));
    object.put(us(tags::BITS_STORED, 8));
    object.put(us(tags::HIGH_BIT, 7));
    object.put(us(tags::PIXEL_REPRESENTATION, 0));
    object.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));
    object
        .with_exact_meta(meta)
        .write_to_file(path)
        .expect("the bench file is written");
}

fn bench_frames(c: &mut Criterion, name: &str, path: &Path) {
    let mut source = DicomSource::open(path, &OpenOptions::default()).expect("the file opens");
    let frames = source.header().frames;
    let mut frame = Frame::empty();
    let mut index = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            source
                .read_frame_at(index, &mut frame)
                .expect("the frame decodes");
            index = (index + 1) % frames;
        })
    });
}

fn dicom_decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let native = dir.path().join("native_rgb.dcm");
    write_native_rgb(&native);
    bench_frames(c, "native_rgb_640x480", &native);

    let jpeg = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/dicom/pydicom-data/color3d_jpeg_baseline.dcm");
    if jpeg.exists() {
        bench_frames(c, "jpeg_ybr422_640x480", &jpeg);
    } else {
        eprintln!("skipping jpeg_ybr422_640x480: run scripts/fetch-test-data.sh first");
    }
}

criterion_group!(benches, dicom_decode);
criterion_main!(benches);
