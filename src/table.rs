//! Cohort tables: CSV files with a header row, read whole into memory.
//!
//! Fields are separated by commas; a field may be quoted with `"`, a doubled `""` inside
//! quotes being a literal quote. Quoted fields cannot span lines. Every row must have as
//! many fields as the header. Numeric columns are parsed on request, and an empty or
//! non-numeric cell is an error naming its line and column: nothing is imputed.

use std::path::Path;

use thiserror::Error;

/// Largest table read, checked before reading: far above a cohort of 1920 features for
/// thousands of exams (about 40 MB per 1000 rows at full precision).
pub const MAX_TABLE_BYTES: u64 = 1 << 30;

/// Failure to read or interpret a cohort table.
#[derive(Debug, Error, PartialEq)]
pub enum TableError {
    #[error("cannot read table {path}: {message}")]
    Io { path: String, message: String },
    #[error("table {path} is {size} bytes, above the {max}-byte limit")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("the table has no header row")]
    Empty,
    #[error("line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("column {name:?} not found in the header; available: {available}")]
    MissingColumn { name: String, available: String },
    #[error("column {name:?} appears more than once in the header")]
    DuplicateColumn { name: String },
    #[error("line {line}, column {column:?}: the cell is empty; fill it or drop the row")]
    EmptyCell { line: usize, column: String },
    #[error("line {line}, column {column:?}: {value:?} is not a number")]
    NotNumeric {
        line: usize,
        column: String,
        value: String,
    },
    #[error("line {line}, column {column:?}: {value:?} is not a label; use 0 or 1")]
    NotLabel {
        line: usize,
        column: String,
        value: String,
    },
}

/// A table of text cells with named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    /// Data rows, each with one cell per header.
    pub rows: Vec<Vec<String>>,
    /// 1-based line number of each data row in the file, for messages.
    pub lines: Vec<usize>,
}

impl Table {
    /// Reads a CSV file after checking its size against [`MAX_TABLE_BYTES`].
    pub fn read(path: &Path) -> Result<Table, TableError> {
        let io_error = |e: std::io::Error| TableError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let size = std::fs::metadata(path).map_err(io_error)?.len();
        if size > MAX_TABLE_BYTES {
            return Err(TableError::TooLarge {
                path: path.display().to_string(),
                size,
                max: MAX_TABLE_BYTES,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io_error)?;
        Table::parse(&text)
    }

    /// Parses CSV text. Blank lines are skipped; a byte-order mark is ignored.
    pub fn parse(text: &str) -> Result<Table, TableError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((header_line, header)) = lines.next() else {
            return Err(TableError::Empty);
        };
        let headers: Vec<String> = split_fields(header, header_line)?
            .into_iter()
            .map(|h| h.trim().to_string())
            .collect();
        for (i, name) in headers.iter().enumerate() {
            if headers[..i].contains(name) {
                return Err(TableError::DuplicateColumn { name: name.clone() });
            }
        }

        let mut rows = Vec::new();
        let mut numbers = Vec::new();
        for (line, content) in lines {
            let fields = split_fields(content, line)?;
            if fields.len() != headers.len() {
                return Err(TableError::Malformed {
                    line,
                    message: format!(
                        "{} fields, but the header has {}",
                        fields.len(),
                        headers.len()
                    ),
                });
            }
            rows.push(fields);
            numbers.push(line);
        }
        Ok(Table {
            headers,
            rows,
            lines: numbers,
        })
    }

    /// Returns the position of a column by name.
    pub fn column_index(&self, name: &str) -> Result<usize, TableError> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| TableError::MissingColumn {
                name: name.to_string(),
                available: summarise(&self.headers),
            })
    }

    /// Parses a column as f64 values. Errors name the line and column of an empty or
    /// non-numeric cell; "nan" and "inf" are rejected too.
    pub fn numeric_column(&self, name: &str) -> Result<Vec<f64>, TableError> {
        let index = self.column_index(name)?;
        self.numeric_at(index)
    }

    /// Parses the column at `index` as f64 values.
    pub fn numeric_at(&self, index: usize) -> Result<Vec<f64>, TableError> {
        let column = &self.headers[index];
        self.rows
            .iter()
            .zip(&self.lines)
            .map(|(row, &line)| {
                let cell = row[index].trim();
                if cell.is_empty() {
                    return Err(TableError::EmptyCell {
                        line,
                        column: column.clone(),
                    });
                }
                match cell.parse::<f64>() {
                    Ok(value) if value.is_finite() => Ok(value),
                    _ => Err(TableError::NotNumeric {
                        line,
                        column: column.clone(),
                        value: cell.to_string(),
                    }),
                }
            })
            .collect()
    }

    /// Parses a binary label column: 1 (positive) or 0 (negative), also written 1.0 or 0.0.
    pub fn label_column(&self, name: &str) -> Result<Vec<bool>, TableError> {
        let index = self.column_index(name)?;
        self.rows
            .iter()
            .zip(&self.lines)
            .map(|(row, &line)| match row[index].trim() {
                "1" | "1.0" => Ok(true),
                "0" | "0.0" => Ok(false),
                "" => Err(TableError::EmptyCell {
                    line,
                    column: name.to_string(),
                }),
                other => Err(TableError::NotLabel {
                    line,
                    column: name.to_string(),
                    value: other.to_string(),
                }),
            })
            .collect()
    }

    /// Returns a column's cells as trimmed text.
    pub fn text_column(&self, name: &str) -> Result<Vec<&str>, TableError> {
        let index = self.column_index(name)?;
        Ok(self.rows.iter().map(|row| row[index].trim()).collect())
    }
}

/// Lists up to 8 header names for a message.
fn summarise(headers: &[String]) -> String {
    let mut text = headers
        .iter()
        .take(8)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if headers.len() > 8 {
        text.push_str(&format!(", ... ({} columns)", headers.len()));
    }
    text
}

/// Splits one line into fields, honouring double quotes.
fn split_fields(line: &str, number: usize) -> Result<Vec<String>, TableError> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return Err(TableError::Malformed {
            line: number,
            message: "a quoted field is not closed on this line".to_string(),
        });
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_crlf() {
        let table = Table::parse("a,\"b,c\"\r\n1,\"x \"\"y\"\"\"\r\n").unwrap();
        assert_eq!(table.headers, vec!["a", "b,c"]);
        assert_eq!(table.rows[0], vec!["1", "x \"y\""]);
    }

    #[test]
    fn non_numeric_cell_named() {
        let table = Table::parse("id,age\n1,40\n2,forty\n").unwrap();
        let error = table.numeric_column("age").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3, column \"age\": \"forty\" is not a number"
        );
    }

    #[test]
    fn empty_cell_named() {
        let table = Table::parse("id,age\n1,\n").unwrap();
        let error = table.numeric_column("age").unwrap_err();
        assert!(
            matches!(error, TableError::EmptyCell { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn short_row_rejected() {
        let error = Table::parse("a,b\n1\n").unwrap_err();
        assert!(
            matches!(error, TableError::Malformed { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn label_must_be_binary() {
        let table = Table::parse("y\n1\n0\n2\n").unwrap();
        let error = table.label_column("y").unwrap_err();
        assert!(
            matches!(error, TableError::NotLabel { line: 4, .. }),
            "{error}"
        );
    }
}
