//! Where the frames of a DICOM file lie: the Pixel Data (7FE0,0010) element's position and,
//! for encapsulated transfer syntaxes, the fragments of each frame (PS3.5 A.4).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;

use dicom_core::header::{HasLength, Header};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_parser::dataset::lazy_read::LazyDataSetReader;
use dicom_parser::dataset::LazyDataToken;
use dicom_parser::stateful::decode::StatefulDecode;

use super::header::PixelEncoding;
use crate::source::SourceError;

/// The top-level Pixel Data element of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelDataElement {
    /// File offset of the first byte after the element header.
    pub value_offset: u64,
    /// Declared value length, `None` for an encapsulated (undefined length) element.
    pub length: Option<u32>,
    pub vr: VR,
}

/// Finds the top-level Pixel Data element by walking the data set from `dataset_offset`,
/// skipping every value without reading it into memory.
pub fn locate_pixel_data(
    file: File,
    dataset_offset: u64,
    transfer_syntax_uid: &str,
) -> Result<PixelDataElement, SourceError> {
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

    let syntax = TransferSyntaxRegistry
        .get(transfer_syntax_uid)
        .ok_or_else(|| {
            SourceError::Unsupported(format!("transfer syntax {transfer_syntax_uid} is unknown"))
        })?;
    let mut reader = BufReader::new(file);
    reader
        .seek(SeekFrom::Start(dataset_offset))
        .map_err(|e| SourceError::Malformed(format!("cannot seek to the data set: {e}")))?;
    let mut tokens =
        LazyDataSetReader::new_with_ts(reader, syntax).map_err(|e| malformed_data_set(&e))?;

    let mut depth = 0usize;
    let mut found: Option<(Option<u32>, VR)> = None;
    while let Some(token) = tokens.advance() {
        let token = token.map_err(|e| malformed_data_set(&e))?;
        match &token {
            LazyDataToken::ElementHeader(header)
                if depth == 0 && header.tag() == tags::PIXEL_DATA =>
            {
                found = Some((header.length().get(), header.vr()));
                break;
            }
            LazyDataToken::PixelSequenceStart if depth == 0 => {
                found = Some((None, VR::OB));
                break;
            }
            LazyDataToken::SequenceStart { .. }
            | LazyDataToken::ItemStart { .. }
            | LazyDataToken::PixelSequenceStart => depth += 1,
            LazyDataToken::SequenceEnd | LazyDataToken::ItemEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
        // Values are skipped, not read: only their position matters here.
        token.skip().map_err(|e| malformed_data_set(&e))?;
    }

    let Some((length, vr)) = found else {
        return Err(SourceError::Malformed(
            "the file has no Pixel Data (7FE0,0010) element".to_string(),
        ));
    };
    let value_offset = tokens.into_decoder().position();
    Ok(PixelDataElement {
        value_offset,
        length,
        vr,
    })
}

fn malformed_data_set(error: &dyn std::error::Error) -> SourceError {
    SourceError::Malformed(format!(
        "invalid DICOM data set: {}",
        super::error_chain(error)
    ))
}

/// One item of an encapsulated pixel data element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// File offset of the first byte of the item value.
    pub offset: u64,
    pub length: u32,
}

/// The fragments of an encapsulated element and which of them make up each frame.
#[derive(Clone, Debug, Default)]
pub struct FragmentIndex {
    pub fragments: Vec<Fragment>,
    /// For each frame, the range of `fragments` it spans.
    pub frames: Vec<Range<usize>>,
}

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const SEQUENCE_DELIMITATION: Tag = Tag(0xFFFE, 0xE0DD);

/// An upper bound on fragments per frame, so a crafted file cannot make the index grow
/// without bound before any frame is decoded.
/// NOTE: chosen well above what scanners write (one fragment per frame); not from PS3.5.
const MAX_FRAGMENTS_PER_FRAME: u64 = 256;

/// Walks the items of an encapsulated element starting at `value_offset` (the Basic Offset
/// Table item first) and assigns fragments to `frames` frames.
///
/// The rules, in order: the Basic Offset Table when it is not empty; one fragment per frame
/// when the counts match; all fragments for a single frame; for JPEG, fragments up to one
/// that ends with an EOI marker. Anything else is [`SourceError::Malformed`].
pub fn index_fragments(
    file: &mut File,
    value_offset: u64,
    file_len: u64,
    frames: u64,
    encoding: PixelEncoding,
) -> Result<FragmentIndex, SourceError> {
    let max_fragments = frames.saturating_mul(MAX_FRAGMENTS_PER_FRAME);
    let mut position = value_offset;
    let mut offset_table: Option<Vec<u32>> = None;
    let mut fragments = Vec::new();

    loop {
        let (tag, length) = read_item_header(file, position, file_len)?;
        position += 8;
        if tag == SEQUENCE_DELIMITATION {
            break;
        }
        if tag != ITEM {
            return Err(SourceError::Malformed(format!(
                "encapsulated pixel data has element {tag} at byte {} where an item was \
                 expected",
                position - 8
            )));
        }
        if u64::from(length) > file_len.saturating_sub(position) {
            return Err(SourceError::Malformed(format!(
                "pixel data is truncated: the fragment at byte {} declares {length} bytes \
                 but the file ends at byte {file_len}",
                position - 8
            )));
        }
        if offset_table.is_none() {
            offset_table = Some(read_offset_table(file, position, length)?);
        } else {
            if fragments.len() as u64 >= max_fragments {
                return Err(SourceError::Limit(format!(
                    "encapsulated pixel data has more than {max_fragments} fragments for \
                     {frames} frames"
                )));
            }
            fragments.push(Fragment {
                offset: position,
                length,
            });
        }
        position += u64::from(length);
    }

    let offset_table = offset_table.unwrap_or_default();
    let frame_ranges = assign_frames(file, &fragments, &offset_table, frames, encoding)?;
    Ok(FragmentIndex {
        fragments,
        frames: frame_ranges,
    })
}

fn read_item_header(
    file: &mut File,
    position: u64,
    file_len: u64,
) -> Result<(Tag, u32), SourceError> {
    if file_len.saturating_sub(position) < 8 {
        return Err(SourceError::Malformed(format!(
            "pixel data is truncated: the file ends at byte {file_len} inside the encapsulated \
             pixel data, with no sequence delimiter"
        )));
    }
    let mut bytes = [0u8; 8];
    read_at(file, position, &mut bytes)?;
    let group = u16::from_le_bytes([bytes[0], bytes[1]]);
    let element = u16::from_le_bytes([bytes[2], bytes[3]]);
    let length = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    Ok((Tag(group, element), length))
}

fn read_offset_table(file: &mut File, position: u64, length: u32) -> Result<Vec<u32>, SourceError> {
    if length % 4 != 0 {
        return Err(SourceError::Malformed(format!(
            "basic offset table length {length} is not a multiple of 4"
        )));
    }
    let mut bytes = vec![0u8; length as usize];
    read_at(file, position, &mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn assign_frames(
    file: &mut File,
    fragments: &[Fragment],
    offset_table: &[u32],
    frames: u64,
    encoding: PixelEncoding,
) -> Result<Vec<Range<usize>>, SourceError> {
    let frame_count = usize::try_from(frames)
        .map_err(|_| SourceError::Limit(format!("{frames} frames do not fit in memory")))?;
    if fragments.is_empty() {
        return Err(SourceError::Malformed(
            "encapsulated pixel data has no fragments".to_string(),
        ));
    }
    if !offset_table.is_empty() {
        return frames_from_offset_table(fragments, offset_table, frame_count);
    }
    if fragments.len() == frame_count {
        return Ok((0..frame_count).map(|i| i..i + 1).collect());
    }
    if frame_count == 1 {
        let all_fragments = 0..fragments.len();
        return Ok(std::iter::once(all_fragments).collect());
    }
    if encoding == PixelEncoding::JpegBaseline {
        return frames_from_jpeg_markers(file, fragments, frame_count);
    }
    Err(SourceError::Malformed(format!(
        "encapsulated pixel data has {} fragments for {frames} frames and no offset table",
        fragments.len()
    )))
}

/// Splits fragments at the Basic Offset Table entries, which count bytes from the first
/// byte of the first fragment's item header.
fn frames_from_offset_table(
    fragments: &[Fragment],
    offset_table: &[u32],
    frame_count: usize,
) -> Result<Vec<Range<usize>>, SourceError> {
    if offset_table.len() != frame_count {
        return Err(SourceError::Malformed(format!(
            "basic offset table has {} entries for {frame_count} frames",
            offset_table.len()
        )));
    }
    let first_item = fragments[0].offset - 8;
    let mut starts = Vec::with_capacity(frame_count);
    for (frame, &entry) in offset_table.iter().enumerate() {
        let item_offset = first_item + u64::from(entry);
        let start = fragments
            .iter()
            .position(|f| f.offset - 8 == item_offset)
            .ok_or_else(|| {
                SourceError::Malformed(format!(
                    "basic offset table entry {entry} of frame {frame} does not point at a \
                     fragment"
                ))
            })?;
        if starts.last().is_some_and(|&previous| start <= previous) {
            return Err(SourceError::Malformed(format!(
                "basic offset table entry {entry} of frame {frame} is not increasing"
            )));
        }
        starts.push(start);
    }
    let mut ranges = Vec::with_capacity(frame_count);
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(fragments.len());
        ranges.push(start..end);
    }
    Ok(ranges)
}

/// Groups fragments into frames, each frame ending with the fragment whose last bytes are
/// the JPEG EOI marker (FFD9), allowing one trailing pad byte.
fn frames_from_jpeg_markers(
    file: &mut File,
    fragments: &[Fragment],
    frame_count: usize,
) -> Result<Vec<Range<usize>>, SourceError> {
    let mut ranges = Vec::with_capacity(frame_count);
    let mut start = 0;
    for (i, fragment) in fragments.iter().enumerate() {
        if ends_with_eoi(file, fragment)? {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    if ranges.len() != frame_count || start != fragments.len() {
        return Err(SourceError::Malformed(format!(
            "encapsulated pixel data has {} fragments making {} JPEG images for {frame_count} \
             frames",
            fragments.len(),
            ranges.len()
        )));
    }
    Ok(ranges)
}

fn ends_with_eoi(file: &mut File, fragment: &Fragment) -> Result<bool, SourceError> {
    let tail_len = fragment.length.min(3) as usize;
    let mut tail = [0u8; 3];
    let tail = &mut tail[..tail_len];
    read_at(
        file,
        fragment.offset + u64::from(fragment.length) - tail_len as u64,
        tail,
    )?;
    let ends = |t: &[u8]| t.len() >= 2 && t[t.len() - 2..] == [0xFF, 0xD9];
    Ok(ends(tail) || (tail.last() == Some(&0) && ends(&tail[..tail.len() - 1])))
}

/// Reads exactly `buffer.len()` bytes at `position`.
pub fn read_at(file: &mut File, position: u64, buffer: &mut [u8]) -> Result<(), SourceError> {
    file.seek(SeekFrom::Start(position))
        .and_then(|_| file.read_exact(buffer))
        .map_err(|e| {
            SourceError::Malformed(format!(
                "cannot read {} bytes at byte {position}: {e}",
                buffer.len()
            ))
        })
}
