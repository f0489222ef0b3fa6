//! Palette colour lookup tables (PS3.3 C.7.6.3.1.5 and C.7.9): plain and segmented.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::source::SourceError;

/// The red, green and blue lookup tables of a PALETTE COLOR image, expanded.
#[derive(Clone, Debug, PartialEq)]
pub struct Palette {
    /// Pixel value mapped to entry 0 (second value of the descriptor).
    pub first_mapped: i32,
    /// Bits per entry: 8 or 16 (third value of the descriptor).
    pub bits: u16,
    /// Entries of each table at full precision, in R, G, B order, all the same length.
    pub tables: [Vec<u16>; 3],
}

struct Channel {
    name: &'static str,
    descriptor: Tag,
    data: Tag,
    segmented: Tag,
}

const CHANNELS: [Channel; 3] = [
    Channel {
        name: "red",
        descriptor: tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        data: tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        segmented: tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    },
    Channel {
        name: "green",
        descriptor: tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        data: tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        segmented: tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    },
    Channel {
        name: "blue",
        descriptor: tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        data: tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        segmented: tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    },
];

/// The largest table PS3.3 allows: a descriptor's first value of 0 means 65536 entries.
const MAX_ENTRIES: usize = 1 << 16;

impl Palette {
    /// Reads the three tables of `object`. `big_endian` is the byte order of the file, which
    /// decides how 8-bit entries packed into 16-bit words are unpacked.
    ///
    /// Errors: [`SourceError::Malformed`] when a descriptor or its data is missing, the
    /// tables differ in size, or a segmented table is invalid.
    pub fn from_header(
        object: &InMemDicomObject,
        big_endian: bool,
    ) -> Result<Palette, SourceError> {
        let mut tables: [Vec<u16>; 3] = Default::default();
        let mut layout = None;
        for (table, channel) in tables.iter_mut().zip(&CHANNELS) {
            let descriptor = read_descriptor(object, channel)?;
            if layout.is_some_and(|l| l != descriptor) {
                return Err(SourceError::Malformed(format!(
                    "the {} palette descriptor differs from the red one",
                    channel.name
                )));
            }
            layout = Some(descriptor);
            *table = read_table(object, channel, descriptor, big_endian)?;
        }
        let (_, first_mapped, bits) = layout.unwrap_or_default();
        Ok(Palette {
            first_mapped,
            bits,
            tables,
        })
    }

    /// The 16-bit-precision colour of pixel value `value`. Values below the first mapped
    /// value take entry 0 and values past the table take the last entry (PS3.3 C.7.6.3.1.5).
    pub fn lookup(&self, value: i32) -> [u16; 3] {
        let last = self.tables[0].len().saturating_sub(1);
        let index =
            (i64::from(value) - i64::from(self.first_mapped)).clamp(0, last as i64) as usize;
        [
            self.tables[0][index],
            self.tables[1][index],
            self.tables[2][index],
        ]
    }

    /// Bits to drop to bring an entry to 8 bits.
    pub fn shift_to_8_bits(&self) -> u32 {
        u32::from(self.bits.saturating_sub(8))
    }
}

/// (entries, first mapped value, bits per entry).
fn read_descriptor(
    object: &InMemDicomObject,
    channel: &Channel,
) -> Result<(usize, i32, u16), SourceError> {
    let invalid = |what: &str| {
        SourceError::Malformed(format!(
            "{} palette descriptor {} is {what}",
            channel.name, channel.descriptor
        ))
    };
    let element = object
        .get(channel.descriptor)
        .ok_or_else(|| invalid("missing"))?;
    let values = element
        .to_multi_int::<i32>()
        .map_err(|_| invalid("not numeric"))?;
    let [entries, first, bits] = values[..] else {
        return Err(invalid("not three values"));
    };
    // The entry count and the bit depth are unsigned, whatever the VR says.
    let entries = match entries as u16 {
        0 => MAX_ENTRIES,
        n => usize::from(n),
    };
    // PS3.3: the first mapped value is unsigned for unsigned pixel data (US), but the
    // descriptor may be encoded as SS, so a negative 16-bit value reads as its unsigned twin.
    let first = if element.vr() == dicom_core::VR::SS || first >= 0 {
        first
    } else {
        first & 0xFFFF
    };
    let bits = bits as u16;
    if bits != 8 && bits != 16 {
        return Err(invalid(&format!(
            "declaring {bits} bits per entry, not 8 or 16"
        )));
    }
    Ok((entries, first, bits))
}

fn read_table(
    object: &InMemDicomObject,
    channel: &Channel,
    (entries, _, bits): (usize, i32, u16),
    big_endian: bool,
) -> Result<Vec<u16>, SourceError> {
    if let Some(element) = object.get(channel.data) {
        let words = lut_words(element, channel.data)?;
        return plain_table(&words, entries, bits, big_endian).ok_or_else(|| {
            SourceError::Malformed(format!(
                "{} palette data {} holds {} words for {entries} entries of {bits} bits",
                channel.name,
                channel.data,
                words.len()
            ))
        });
    }
    if let Some(element) = object.get(channel.segmented) {
        let words = lut_words(element, channel.segmented)?;
        let codes = if bits == 8 {
            words_to_bytes(&words, big_endian)
        } else {
            words
        };
        let table = expand_segmented(&codes).map_err(|what| {
            SourceError::Malformed(format!(
                "{} segmented palette data {} is invalid: {what}",
                channel.name, channel.segmented
            ))
        })?;
        if table.len() != entries {
            log::debug!(
                "{} segmented palette expands to {} entries, the descriptor declares {entries}",
                channel.name,
                table.len()
            );
        }
        return Ok(table);
    }
    Err(SourceError::Malformed(format!(
        "{} palette data {} is missing",
        channel.name, channel.data
    )))
}

/// The element's value as 16-bit words in numeric order (the parser already applied the
/// file's byte order).
fn lut_words(element: &dicom_object::mem::InMemElement, tag: Tag) -> Result<Vec<u16>, SourceError> {
    element
        .to_multi_int::<u16>()
        .or_else(|_| {
            element.to_bytes().map(|bytes| {
                bytes
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                    .collect()
            })
        })
        .map_err(|e| SourceError::Malformed(format!("palette data {tag} is not binary: {e}")))
}

/// Bytes of `words` in file order.
fn words_to_bytes(words: &[u16], big_endian: bool) -> Vec<u16> {
    let mut bytes = Vec::with_capacity(words.len() * 2);
    for &word in words {
        let pair = if big_endian {
            word.to_be_bytes()
        } else {
            word.to_le_bytes()
        };
        bytes.extend(pair.iter().map(|&b| u16::from(b)));
    }
    bytes
}

/// A plain table: one word per entry, or for 8-bit entries possibly one byte per entry
/// packed two to a word.
fn plain_table(words: &[u16], entries: usize, bits: u16, big_endian: bool) -> Option<Vec<u16>> {
    if words.len() == entries {
        return Some(words.to_vec());
    }
    if bits == 8 && words.len() == entries.div_ceil(2) {
        let mut bytes = words_to_bytes(words, big_endian);
        bytes.truncate(entries);
        return Some(bytes);
    }
    None
}

/// Expands segmented table data (PS3.3 C.7.9.2): discrete (opcode 0), linear (1) and
/// indirect (2) segments.
pub fn expand_segmented(codes: &[u16]) -> Result<Vec<u16>, String> {
    let mut table = Vec::new();
    expand_segments(codes, 0, None, &mut table, 0)?;
    Ok(table)
}

/// Expands segments from `start`, at most `max_segments` of them when given.
fn expand_segments(
    codes: &[u16],
    start: usize,
    max_segments: Option<usize>,
    table: &mut Vec<u16>,
    depth: u32,
) -> Result<(), String> {
    // An indirect segment may not point at another indirect segment (C.7.9.2.3); one level
    // of nesting is all a valid table needs.
    if depth > 1 {
        return Err("an indirect segment points at another indirect segment".to_string());
    }
    let code = |i: usize| {
        codes
            .get(i)
            .copied()
            .ok_or_else(|| format!("a segment runs past the end of the {} words", codes.len()))
    };
    let mut i = start;
    let mut segments = 0;
    // A trailing pad word is allowed after the last segment.
    while i + 1 < codes.len() && max_segments.is_none_or(|max| segments < max) {
        let opcode = code(i)?;
        let length = usize::from(code(i + 1)?);
        i += 2;
        match opcode {
            0 => {
                let values = codes
                    .get(i..i + length)
                    .ok_or_else(|| "a discrete segment runs past the end".to_string())?;
                table.extend_from_slice(values);
                i += length;
            }
            1 => {
                let y0 = *table
                    .last()
                    .ok_or_else(|| "the first segment is a linear segment".to_string())?;
                let y1 = code(i)?;
                i += 1;
                push_linear(table, y0, y1, length);
            }
            2 => {
                if table.is_empty() {
                    return Err("the first segment is an indirect segment".to_string());
                }
                // The offset is two words, least significant first, counted in words
                // from the start of the data (as pydicom 3.0 reads it).
                let offset = usize::from(code(i)?) | usize::from(code(i + 1)?) << 16;
                i += 2;
                expand_segments(codes, offset, Some(length), table, depth + 1)?;
            }
            other => return Err(format!("segment opcode {other} is unknown")),
        }
        if table.len() > MAX_ENTRIES {
            return Err(format!("the table grows past {MAX_ENTRIES} entries"));
        }
        segments += 1;
    }
    if max_segments.is_some_and(|max| segments < max) {
        return Err("an indirect segment names more segments than there are".to_string());
    }
    Ok(())
}

/// Appends `length` values on the line from `y0` (excluded) to `y1` (included), rounded
/// half to even.
fn push_linear(table: &mut Vec<u16>, y0: u16, y1: u16, length: usize) {
    let (y0, y1) = (f64::from(y0), f64::from(y1));
    for k in 1..=length {
        let y = y0 + (y1 - y0) * k as f64 / length as f64;
        table.push(y.round_ties_even() as u16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_discrete_linear_indirect() {
        // Discrete [0, 10], linear to 40 in 3 steps, then the first segment again.
        let codes = [0, 2, 0, 10, 1, 3, 40, 2, 1, 0, 0];
        let table = expand_segmented(&codes).unwrap();
        assert_eq!(table, [0, 10, 20, 30, 40, 0, 10]);
    }

    #[test]
    fn segmented_linear_first_rejected() {
        assert!(expand_segmented(&[1, 3, 40]).is_err());
    }

    #[test]
    fn segmented_self_pointing_indirect_rejected() {
        // The indirect segment at word 3 points at itself.
        let codes = [0, 1, 5, 2, 1, 3, 0];
        assert!(expand_segmented(&codes).is_err());
    }
}
