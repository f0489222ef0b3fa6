//! Float32 arrays in NumPy's `.npy` format: little endian, C order, header versions 1 to 3.
//!
//! The header is parsed and its shape checked against the file's real length before the
//! data buffer is allocated, so a header that declares an absurd shape costs nothing.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header accepted. NumPy 2.4 rejects headers over 10,000 bytes by default
/// (`_MAX_HEADER_SIZE`), so 64 KiB leaves room for long shapes without a huge read.
pub const MAX_HEADER_BYTES: usize = 64 << 10;

/// Largest data section accepted: 1 GiB, far above any tensor this program handles.
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// Error from reading or writing a `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be opened, read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid `.npy` file, or the data does not match the header.
    #[error("invalid .npy file {}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    /// A valid `.npy` file that this reader does not handle (another dtype, Fortran order).
    #[error("unsupported .npy file {}: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
}

/// A dense float32 array in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, last axis fastest.
    pub data: Vec<f32>,
}

/// Fields of the header dictionary.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Reads a float32 `.npy` file.
///
/// Accepts descr `<f4` (or `|f4`/`=f4` on little-endian hosts) in C order; anything else is
/// [`NpyError::Unsupported`]. The data section must hold exactly the declared shape.
pub fn read_f32(path: &Path) -> Result<Array, NpyError> {
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::new(file);

    let (header_text, header_end) = read_header_text(&mut reader, path)?;
    let header = parse_header(&header_text).map_err(|reason| malformed(path, reason))?;
    check_header(&header, path)?;

    let count = element_count(&header.shape).ok_or_else(|| {
        malformed(
            path,
            format!("shape {:?} overflows the address space", header.shape),
        )
    })?;
    let data_len = file_len.saturating_sub(header_end);
    let expected = (count as u64).saturating_mul(4);
    if data_len != expected {
        return Err(malformed(
            path,
            format!(
                "shape {:?} needs {expected} data bytes but the file has {data_len}",
                header.shape
            ),
        ));
    }
    if expected > MAX_DATA_BYTES {
        return Err(NpyError::Unsupported {
            path: path.to_path_buf(),
            reason: format!("{expected} data bytes exceed the limit of {MAX_DATA_BYTES}"),
        });
    }

    let mut bytes = vec![0u8; expected as usize];
    reader.read_exact(&mut bytes).map_err(io)?;
    let data = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(Array {
        shape: header.shape,
        data,
    })
}

/// Writes `data` with `shape` as a version 1.0 `.npy` file (`<f4`, C order).
///
/// A `data` length other than the product of `shape` is [`NpyError::Malformed`], and
/// nothing is written.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    if element_count(shape) != Some(data.len()) {
        return Err(malformed(
            path,
            format!("shape {shape:?} does not hold {} values", data.len()),
        ));
    }
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };

    let header = format_header(shape);
    let mut writer = BufWriter::new(File::create(path).map_err(io)?);
    writer.write_all(&header).map_err(io)?;
    for value in data {
        writer.write_all(&value.to_le_bytes()).map_err(io)?;
    }
    writer.flush().map_err(io)
}

fn malformed(path: &Path, reason: String) -> NpyError {
    NpyError::Malformed {
        path: path.to_path_buf(),
        reason,
    }
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Reads the magic, version and header; returns the header text and the data offset.
fn read_header_text(reader: &mut impl Read, path: &Path) -> Result<(String, u64), NpyError> {
    let mut preamble = [0u8; 8];
    reader
        .read_exact(&mut preamble)
        .map_err(|_| malformed(path, "file is shorter than the 8-byte preamble".into()))?;
    if &preamble[..6] != MAGIC {
        return Err(malformed(path, "missing the \\x93NUMPY magic".into()));
    }

    let major = preamble[6];
    let length_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => {
            return Err(NpyError::Unsupported {
                path: path.to_path_buf(),
                reason: format!(
                    "format version {major}.{} (expected 1, 2 or 3)",
                    preamble[7]
                ),
            })
        }
    };
    let mut length = [0u8; 4];
    reader
        .read_exact(&mut length[..length_bytes])
        .map_err(|_| malformed(path, "truncated header length".into()))?;
    let header_len = u32::from_le_bytes(length) as usize;
    if header_len > MAX_HEADER_BYTES {
        return Err(malformed(
            path,
            format!("header length {header_len} exceeds the limit of {MAX_HEADER_BYTES}"),
        ));
    }

    let mut text = vec![0u8; header_len];
    reader
        .read_exact(&mut text)
        .map_err(|_| malformed(path, format!("header of {header_len} bytes is truncated")))?;
    let text =
        String::from_utf8(text).map_err(|_| malformed(path, "header is not valid UTF-8".into()))?;
    let end = (8 + length_bytes + header_len) as u64;
    Ok((text, end))
}

fn check_header(header: &Header, path: &Path) -> Result<(), NpyError> {
    let little_endian_host = cfg!(target_endian = "little");
    let float32 = header.descr == "<f4"
        || (little_endian_host && (header.descr == "|f4" || header.descr == "=f4"));
    if !float32 {
        return Err(NpyError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "dtype `{}`: only little-endian float32 (`<f4`) is read; \
                 convert with `array.astype('<f4')`",
                header.descr
            ),
        });
    }
    if header.fortran_order {
        return Err(NpyError::Unsupported {
            path: path.to_path_buf(),
            reason: "Fortran order: save a C-order array (`numpy.ascontiguousarray`)".into(),
        });
    }
    Ok(())
}

/// Builds the magic, version 1.0 and a header padded with spaces to a multiple of 64 bytes.
fn format_header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');

    let mut bytes = Vec::with_capacity(10 + dict.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes
}

/// Parses the header's Python dict literal: string keys `descr`, `fortran_order`, `shape`.
fn parse_header(text: &str) -> Result<Header, String> {
    let mut parser = Parser {
        rest: text.trim_end(),
    };
    parser.expect('{')?;
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    loop {
        if parser.eat('}') {
            break;
        }
        let key = parser.string()?;
        parser.expect(':')?;
        match key.as_str() {
            "descr" => descr = Some(parser.string()?),
            "fortran_order" => fortran_order = Some(parser.boolean()?),
            "shape" => shape = Some(parser.tuple()?),
            other => return Err(format!("unexpected header key `{other}`")),
        }
        if !parser.eat(',') {
            parser.expect('}')?;
            break;
        }
    }
    if !parser.rest.trim().is_empty() {
        return Err("trailing text after the header dictionary".into());
    }
    Ok(Header {
        descr: descr.ok_or("header has no `descr`")?,
        fortran_order: fortran_order.ok_or("header has no `fortran_order`")?,
        shape: shape.ok_or("header has no `shape`")?,
    })
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "expected `{c}` in the header at `{}`",
                self.excerpt()
            ))
        }
    }

    fn excerpt(&self) -> String {
        self.rest.chars().take(20).collect()
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(format!("expected a string at `{}`", self.excerpt())),
        };
        let body = &self.rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| "unterminated string in the header".to_string())?;
        let value = body[..end].to_string();
        self.rest = &body[end + 1..];
        Ok(value)
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(value);
            }
        }
        Err(format!("expected True or False at `{}`", self.excerpt()))
    }

    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(dims);
            }
            dims.push(self.integer()?);
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(dims);
            }
        }
    }

    fn integer(&mut self) -> Result<usize, String> {
        self.skip_space();
        let digits = self.rest.len()
            - self
                .rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let (number, rest) = self.rest.split_at(digits);
        let value = number
            .parse()
            .map_err(|_| format!("expected a dimension at `{}`", self.excerpt()))?;
        self.rest = rest;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parses_numpy_output() {
        let header =
            parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1920), }   \n")
                .unwrap();
        assert_eq!(header.descr, "<f4");
        assert!(!header.fortran_order);
        assert_eq!(header.shape, vec![1, 1920]);
    }

    #[test]
    fn header_parses_scalar_and_one_axis() {
        let scalar = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': ()}").unwrap();
        assert!(scalar.shape.is_empty());
        let vector =
            parse_header("{'shape': (7,), 'fortran_order': True, 'descr': '<f4'}").unwrap();
        assert_eq!(vector.shape, vec![7]);
        assert!(vector.fortran_order);
    }

    #[test]
    fn header_rejects_junk() {
        assert!(parse_header("{'descr': '<f4', 'fortran_order': False}").is_err());
        assert!(parse_header("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}").is_err());
        assert!(parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}").is_err());
        assert!(parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x").is_err());
        assert!(parse_header("{'descr: '<f4'").is_err());
    }

    #[test]
    fn header_is_padded_to_64_bytes() {
        for shape in [vec![], vec![3], vec![1, 3, 224, 224]] {
            let bytes = format_header(&shape);
            assert_eq!(bytes.len() % 64, 0, "shape {shape:?}");
            assert_eq!(bytes.last(), Some(&b'\n'));
        }
    }
}
