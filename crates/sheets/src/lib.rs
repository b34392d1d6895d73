//! Uploaded spreadsheets, read as a stream under hard caps, and the project's one CSV
//! writer.
//!
//! An upload is untrusted input that a few KiB can turn into gigabytes of work: a
//! compressed XLSX inflates a thousandfold, a cell reference like `XFD1048576` asks a
//! dense reader for a grid of 17 billion cells, a CSV line can be one endless field.
//! This crate reads both formats row by row and checks every cap **while reading**
//! ([`SheetLimits`]): inflated bytes per zip entry and in total (counted as they are
//! decompressed, never taken from the zip headers), rows, columns, bytes per cell and
//! per row, the shared-strings table, zip entries and the longest XML token. Nothing is
//! ever allocated by a cell's coordinates: a row holds at most
//! [`SheetLimits::max_columns`] cells, and a cell beyond that is refused.
//!
//! - [`read_csv`] / [`read_xlsx`]: call back once per non-empty row ([`SheetRow`]); the
//!   callback returns `false` to stop (the client went away). [`Counters`] tell what
//!   was read, also after an error.
//! - [`csv`]: the CSV writer with the formula guard (used by every CSV the service
//!   writes) and the CSV reader.
//! - [`ReadError`]: what was refused; [`ReadError::is_too_large`] tells the caps that
//!   are about size (HTTP 413) from malformed input (422).

pub mod csv;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod xlsx;

#[cfg(test)]
mod props;

pub use csv::read_csv;
pub use xlsx::read_xlsx;

/// The hard caps of one read. The defaults fit a member list of the service's
/// import (at most 50,000 people, a few dozen columns) with room to spare, and bound
/// a read to well under a second of work and a few tens of MiB of memory whatever
/// the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetLimits {
    /// Rows after the header (rows with a non-empty cell: blank rows and records are
    /// bounded by the bytes that hold them).
    pub max_rows: u64,
    /// Columns: a non-empty cell beyond this column is refused.
    pub max_columns: usize,
    /// Bytes (UTF-8) of one cell's text.
    pub max_cell_bytes: usize,
    /// Bytes of one row's cells together (CSV: of one record as written, i.e. a line).
    pub max_row_bytes: usize,
    /// Bytes one zip entry may inflate to (XLSX).
    pub max_entry_inflated_bytes: u64,
    /// Bytes all zip entries read may inflate to together (XLSX).
    pub max_total_inflated_bytes: u64,
    /// Entries of the shared-strings table (XLSX; loaded before the sheet).
    pub max_shared_strings: usize,
    /// Bytes of text of the shared-strings table together (XLSX).
    pub max_shared_strings_bytes: u64,
    /// Entries in the zip archive (XLSX).
    pub max_zip_entries: usize,
    /// Bytes of the longest XML token (a tag, or a text between tags; whitespace-only
    /// text is not kept past its first 64 bytes). Bounds the XML parser's buffer.
    pub max_xml_token_bytes: usize,
}

impl Default for SheetLimits {
    fn default() -> Self {
        Self {
            max_rows: 50_000,
            max_columns: 64,
            max_cell_bytes: 4 * 1024,
            max_row_bytes: 64 * 1024,
            max_entry_inflated_bytes: 64 * 1024 * 1024,
            max_total_inflated_bytes: 96 * 1024 * 1024,
            max_shared_strings: 1_000_000,
            max_shared_strings_bytes: 16 * 1024 * 1024,
            max_zip_entries: 1_000,
            max_xml_token_bytes: 64 * 1024,
        }
    }
}

/// A size cap that refused the file (HTTP 413).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// [`SheetLimits::max_rows`].
    Rows,
    /// [`SheetLimits::max_entry_inflated_bytes`] / [`SheetLimits::max_total_inflated_bytes`].
    InflatedBytes,
    /// [`SheetLimits::max_shared_strings`] / [`SheetLimits::max_shared_strings_bytes`].
    SharedStrings,
    /// [`SheetLimits::max_zip_entries`].
    ZipEntries,
}

impl Cap {
    /// The cap's name (`rows`, `inflated_bytes`, `shared_strings`, `zip_entries`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rows => "rows",
            Self::InflatedBytes => "inflated_bytes",
            Self::SharedStrings => "shared_strings",
            Self::ZipEntries => "zip_entries",
        }
    }

    fn describe(self, limit: u64) -> String {
        match self {
            Self::Rows => format!("the file has more than {limit} rows"),
            Self::InflatedBytes => {
                format!("the workbook unpacks to more than {limit} bytes")
            }
            Self::SharedStrings => {
                format!("the workbook's shared strings exceed {limit} (entries or bytes)")
            }
            Self::ZipEntries => format!("the workbook has more than {limit} parts"),
        }
    }
}

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not valid CSV / XLSX (or a construct this reader does not accept).
    #[error("the file cannot be read as {format}: {message}")]
    Malformed {
        /// `CSV` or `XLSX`.
        format: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A size cap (HTTP 413).
    #[error("{}", cap.describe(*limit))]
    TooLarge {
        /// Which cap.
        cap: Cap,
        /// Its value.
        limit: u64,
    },
    /// A non-empty cell beyond [`SheetLimits::max_columns`].
    #[error("row {row} has a value in column {column}; at most {limit} columns are read")]
    TooManyColumns {
        /// The row number (the first row is 1).
        row: u64,
        /// The cell's column (the first column is 1).
        column: u64,
        /// The cap.
        limit: usize,
    },
    /// A cell longer than [`SheetLimits::max_cell_bytes`].
    #[error("row {row}, column {column}: the cell is longer than {limit} bytes")]
    CellTooLarge {
        /// The row number (the first row is 1).
        row: u64,
        /// The cell's column (the first column is 1).
        column: u64,
        /// The cap.
        limit: usize,
    },
    /// A row longer than [`SheetLimits::max_row_bytes`].
    #[error("row {row} is longer than {limit} bytes")]
    RowTooLarge {
        /// The row number (the first row is 1).
        row: u64,
        /// The cap.
        limit: usize,
    },
}

impl ReadError {
    /// Whether a size cap refused the file (HTTP 413); otherwise the file is malformed
    /// or has a row, column or cell this service does not take (422).
    #[must_use]
    pub const fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

/// What a read has done so far (kept up to date while reading, so it also tells how
/// far a refused file got).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Rows with a non-empty cell handed to the callback (the header included).
    pub rows: u64,
    /// Non-empty cells handed to the callback.
    pub cells_delivered: u64,
    /// The longest cell handed to the callback (bytes).
    pub largest_cell: usize,
    /// The most cells of one row handed to the callback.
    pub widest_row: usize,
    /// Bytes read from the file (CSV) or inflated from the zip entries (XLSX).
    pub bytes: u64,
    /// Shared strings loaded (XLSX).
    pub shared_strings: u64,
    /// Bytes of shared-string text loaded (XLSX).
    pub shared_string_bytes: u64,
}

/// One non-empty row: its number in the file (the first row is 1; XLSX: the sheet's
/// row number, CSV: the record's) and its cells by column (the first column is index
/// 0; empty cells are empty strings; never longer than [`SheetLimits::max_columns`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetRow {
    /// The row number.
    pub number: u64,
    /// The cells, untrimmed.
    pub cells: Vec<String>,
}

/// Collects one row's cells under the column, cell and row caps.
#[derive(Debug)]
struct RowBuilder {
    number: u64,
    cells: Vec<String>,
    bytes: usize,
}

impl RowBuilder {
    const fn new(number: u64) -> Self {
        Self {
            number,
            cells: Vec::new(),
            bytes: 0,
        }
    }

    /// Sets the cell at `column` (0-based) to `value`; empty and whitespace-only values
    /// beyond the column cap are ignored (a formatted empty cell far right is harmless).
    fn set(&mut self, column: u64, value: String, limits: &SheetLimits) -> Result<(), ReadError> {
        let blank = value.trim().is_empty();
        let index = usize::try_from(column).unwrap_or(usize::MAX);
        if index >= limits.max_columns {
            if blank {
                return Ok(());
            }
            return Err(ReadError::TooManyColumns {
                row: self.number,
                column: column.saturating_add(1),
                limit: limits.max_columns,
            });
        }
        if value.len() > limits.max_cell_bytes {
            return Err(ReadError::CellTooLarge {
                row: self.number,
                column: column.saturating_add(1),
                limit: limits.max_cell_bytes,
            });
        }
        if blank {
            return Ok(());
        }
        if self.cells.len() <= index {
            self.cells.resize(index + 1, String::new());
        }
        let old = std::mem::replace(&mut self.cells[index], value);
        self.bytes = self.bytes - old.len() + self.cells[index].len();
        if self.bytes > limits.max_row_bytes {
            return Err(ReadError::RowTooLarge {
                row: self.number,
                limit: limits.max_row_bytes,
            });
        }
        Ok(())
    }

    /// The row, counted against [`SheetLimits::max_rows`], or `None` when it has no
    /// non-empty cell (blank rows are not counted: they cost no more than the bytes
    /// that hold them, which the other caps bound).
    fn finish(
        self,
        counters: &mut Counters,
        limits: &SheetLimits,
    ) -> Result<Option<SheetRow>, ReadError> {
        let filled = self.cells.iter().filter(|c| !c.is_empty()).count();
        if filled == 0 {
            return Ok(None);
        }
        count_row(counters, limits)?;
        counters.cells_delivered += filled as u64;
        counters.widest_row = counters.widest_row.max(self.cells.len());
        counters.largest_cell = self
            .cells
            .iter()
            .map(String::len)
            .max()
            .unwrap_or_default()
            .max(counters.largest_cell);
        Ok(Some(SheetRow {
            number: self.number,
            cells: self.cells,
        }))
    }
}

/// Counts a row against [`SheetLimits::max_rows`] (the header row is free); the row
/// that would pass the cap is refused, not counted.
fn count_row(counters: &mut Counters, limits: &SheetLimits) -> Result<(), ReadError> {
    if counters.rows >= limits.max_rows.saturating_add(1) {
        return Err(ReadError::TooLarge {
            cap: Cap::Rows,
            limit: limits.max_rows,
        });
    }
    counters.rows += 1;
    Ok(())
}
