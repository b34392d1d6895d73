//! Member spreadsheets: the columns, reading an uploaded CSV or XLSX file row by row, and
//! writing rows as CSV or XLSX.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tenancy::{Child, Membership, MembershipStatus, User};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A spreadsheet format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SheetFormat {
    /// RFC 4180 CSV, UTF-8.
    Csv,
    /// Office Open XML workbook (first sheet).
    Xlsx,
}

impl SheetFormat {
    /// The MIME type.
    #[must_use]
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The file extension.
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }
}

/// The export's columns, in order. The importer reads the ones it knows by name
/// (`email`, `first_name`, `last_name`, `phone`, `role`, `committee`, `children`) and
/// ignores the rest, so an export imports back as it is.
pub const COLUMNS: [&str; 11] = [
    "user_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "role",
    "status",
    "committee",
    "children",
    "joined_at",
    "last_active_at",
];

/// Children in one cell: `Ana (3); Ben (K); Cleo`.
#[must_use]
pub fn children_cell(children: &[Child]) -> String {
    children
        .iter()
        .map(|c| match &c.grade {
            Some(g) => format!("{} ({g})", c.name),
            None => c.name.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses a children cell (see [`children_cell`]).
#[must_use]
pub fn parse_children(cell: &str) -> Vec<Child> {
    cell.split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| match (c.rfind('('), c.ends_with(')')) {
            (Some(open), true) => Child {
                name: c[..open].trim().to_owned(),
                grade: Some(c[open + 1..c.len() - 1].trim().to_owned()).filter(|g| !g.is_empty()),
            },
            _ => Child {
                name: c.to_owned(),
                grade: None,
            },
        })
        .collect()
}

fn status_str(s: MembershipStatus) -> &'static str {
    match s {
        MembershipStatus::Active => "active",
        MembershipStatus::Invited => "invited",
        MembershipStatus::Suspended => "suspended",
    }
}

/// One member as text cells, in [`COLUMNS`] order (times as RFC 3339).
#[must_use]
pub fn text_cells(u: &User, m: &Membership) -> [String; 11] {
    let t = |x: Option<OffsetDateTime>| x.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default();
    [
        u.id.to_string(),
        u.email.to_string(),
        u.first_name.to_string(),
        u.last_name.to_string(),
        u.phone.clone().unwrap_or_default(),
        m.role.name().to_owned(),
        status_str(m.status).to_owned(),
        m.committee.clone().unwrap_or_default(),
        children_cell(&m.children),
        t(Some(m.joined_at)),
        t(u.last_active_at),
    ]
}

/// Appends `field` as one CSV field (quoted when needed; a leading `=`, `+`, `-`, `@`
/// is prefixed with `'` so a spreadsheet does not run it as a formula).
pub fn push_csv_field(buf: &mut String, field: &str) {
    let guarded;
    let field = if field.starts_with(['=', '+', '-', '@']) {
        guarded = format!("'{field}");
        guarded.as_str()
    } else {
        field
    };
    if field.contains([',', '"', '\r', '\n']) {
        buf.push('"');
        buf.push_str(&field.replace('"', "\"\""));
        buf.push('"');
    } else {
        buf.push_str(field);
    }
}

/// Appends one CSV line (CRLF-terminated).
pub fn push_csv_line<S: AsRef<str>>(buf: &mut String, cells: &[S]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            buf.push(',');
        }
        push_csv_field(buf, c.as_ref());
    }
    buf.push_str("\r\n");
}

/// The CSV header line.
#[must_use]
pub fn csv_header() -> String {
    let mut s = String::new();
    push_csv_line(&mut s, &COLUMNS);
    s
}

/// One row read from an uploaded file: its row number (the header is row 1) and its
/// cells by normalized column name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawRow {
    /// The row number in the file (header = 1).
    pub row: i64,
    /// Cells by column name (`email`, `first_name`, …), trimmed; empty cells omitted.
    pub cells: BTreeMap<String, String>,
}

impl RawRow {
    /// A cell's text (empty if absent).
    #[must_use]
    pub fn get(&self, column: &str) -> &str {
        self.cells.get(column).map_or("", String::as_str)
    }
}

/// Why an uploaded file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is not valid CSV / XLSX.
    #[error("the file cannot be read as {format}: {message}")]
    Malformed {
        /// The expected format.
        format: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The header row lacks a required column.
    #[error("the header row has no `{0}` column")]
    MissingColumn(&'static str),
}

/// A header cell as a column name: lower case, runs of other characters as `_`
/// (`First Name` → `first_name`, `E-mail` → `email`).
#[must_use]
pub fn column_name(header: &str) -> String {
    let mut out = String::new();
    for c in header.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    match out.as_str() {
        "e_mail" | "email_address" | "mail" => "email".to_owned(),
        "first" | "given_name" | "firstname" => "first_name".to_owned(),
        "last" | "family_name" | "surname" | "lastname" => "last_name".to_owned(),
        "phone_number" | "telephone" | "mobile" => "phone".to_owned(),
        _ => out,
    }
}

fn row_of(headers: &[String], row: i64, cells: impl Iterator<Item = String>) -> RawRow {
    let cells = headers
        .iter()
        .zip(cells)
        .filter_map(|(h, c)| {
            let c = c.trim();
            // Undo the CSV export's formula guard (`'=…`, `'+…`).
            let c = match c.strip_prefix('\'') {
                Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
                _ => c,
            }
            .to_owned();
            (!h.is_empty() && !c.is_empty()).then(|| (h.clone(), c))
        })
        .collect();
    RawRow { row, cells }
}

/// Reads `path` row by row, calling `each` for every non-empty data row; stops early
/// when `each` returns `false`. CSV is streamed (constant memory); an XLSX sheet is
/// loaded whole (the upload is size-capped). Blocking: run it off the async runtime.
///
/// # Errors
/// [`ReadError`] for a malformed file or a header without `email`.
pub fn read_rows(
    path: &Path,
    format: SheetFormat,
    mut each: impl FnMut(RawRow) -> bool,
) -> Result<(), ReadError> {
    match format {
        SheetFormat::Csv => {
            let bad = |e: csv::Error| ReadError::Malformed {
                format: "CSV",
                message: e.to_string(),
            };
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .has_headers(true)
                .from_path(path)
                .map_err(bad)?;
            let headers: Vec<String> = reader
                .headers()
                .map_err(bad)?
                .iter()
                .map(|h| column_name(h.trim_start_matches('\u{feff}')))
                .collect();
            if !headers.iter().any(|h| h == "email") {
                return Err(ReadError::MissingColumn("email"));
            }
            let mut record = csv::StringRecord::new();
            let mut row = 1;
            while reader.read_record(&mut record).map_err(bad)? {
                row += 1;
                let raw = row_of(&headers, row, record.iter().map(str::to_owned));
                if raw.cells.is_empty() {
                    continue;
                }
                if !each(raw) {
                    break;
                }
            }
            Ok(())
        }
        SheetFormat::Xlsx => {
            use calamine::Reader;
            let bad = |e: String| ReadError::Malformed {
                format: "XLSX",
                message: e,
            };
            let mut book: calamine::Xlsx<_> = calamine::open_workbook(path)
                .map_err(|e: calamine::XlsxError| bad(e.to_string()))?;
            let sheet = book
                .worksheet_range_at(0)
                .ok_or_else(|| bad("the workbook has no sheet".to_owned()))?
                .map_err(|e| bad(e.to_string()))?;
            let mut rows = sheet.rows();
            let headers: Vec<String> = rows
                .next()
                .map(|r| r.iter().map(|c| column_name(&cell_text(c))).collect())
                .unwrap_or_default();
            if !headers.iter().any(|h| h == "email") {
                return Err(ReadError::MissingColumn("email"));
            }
            let first = i64::from(sheet.start().map_or(0, |(r, _)| r)) + 1;
            for (i, r) in rows.enumerate() {
                let raw = row_of(
                    &headers,
                    first + 1 + i64::try_from(i).unwrap_or(i64::MAX),
                    r.iter().map(cell_text),
                );
                if raw.cells.is_empty() {
                    continue;
                }
                if !each(raw) {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// A cell's text: numbers without a trailing `.0` (phone numbers typed as numbers),
/// dates as RFC 3339.
fn cell_text(c: &calamine::Data) -> String {
    use calamine::Data;
    match c {
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => excel_serial_to_rfc3339(d.as_f64()).unwrap_or_default(),
        Data::Error(_) | Data::Empty => String::new(),
    }
}

/// Seconds from the Excel epoch (1899-12-30) to the Unix epoch.
const EXCEL_UNIX_OFFSET_DAYS: f64 = 25_569.0;

/// An Excel date serial (days since 1899-12-30, UTC) as an RFC 3339 time.
#[must_use]
pub fn excel_serial_to_rfc3339(serial: f64) -> Option<String> {
    let secs = ((serial - EXCEL_UNIX_OFFSET_DAYS) * 86_400.0).round();
    if !secs.is_finite() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "rounded and range-checked by time"
    )]
    let t = OffsetDateTime::from_unix_timestamp(secs as i64).ok()?;
    t.format(&Rfc3339).ok()
}

/// Writes members into an XLSX workbook in constant-memory mode (rows go to a temporary
/// file as they are written): a bold header row, text cells, and dates as real Excel
/// dates.
pub struct XlsxWriter {
    book: rust_xlsxwriter::Workbook,
    row: u32,
    date: rust_xlsxwriter::Format,
}

impl std::fmt::Debug for XlsxWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XlsxWriter")
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

/// Writing an XLSX file failed.
#[derive(Debug, thiserror::Error)]
#[error("writing the workbook: {0}")]
pub struct XlsxError(String);

fn xe(e: rust_xlsxwriter::XlsxError) -> XlsxError {
    XlsxError(e.to_string())
}

impl XlsxWriter {
    /// A workbook with one sheet (`Members`) and its header row; temporary files go to
    /// `tmp_dir`.
    ///
    /// # Errors
    /// The writer's.
    pub fn new(tmp_dir: &Path) -> Result<Self, XlsxError> {
        let mut book = rust_xlsxwriter::Workbook::new();
        book.set_tempdir(tmp_dir).map_err(xe)?;
        let bold = rust_xlsxwriter::Format::new().set_bold();
        let sheet = book.add_worksheet_with_constant_memory().map_err(xe)?;
        sheet.set_name("Members").map_err(xe)?;
        for (col, name) in (0_u16..).zip(COLUMNS) {
            sheet
                .write_string_with_format(0, col, name, &bold)
                .map_err(xe)?;
        }
        Ok(Self {
            book,
            row: 0,
            date: rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        })
    }

    /// Appends one member.
    ///
    /// # Errors
    /// The writer's.
    pub fn push(&mut self, u: &User, m: &Membership) -> Result<(), XlsxError> {
        self.row += 1;
        let row = self.row;
        let cells = text_cells(u, m);
        let sheet = self.book.worksheet_from_index(0).map_err(xe)?;
        for (col, text) in (0_u16..).zip(cells.iter()) {
            let name = COLUMNS[usize::from(col)];
            let time = match name {
                "joined_at" => Some(m.joined_at),
                "last_active_at" => u.last_active_at,
                _ => None,
            };
            match time {
                Some(t) => {
                    let dt = rust_xlsxwriter::ExcelDateTime::from_timestamp(t.unix_timestamp())
                        .map_err(xe)?;
                    sheet
                        .write_datetime_with_format(row, col, &dt, &self.date)
                        .map_err(xe)?;
                }
                None if text.is_empty() => {}
                None => {
                    sheet.write_string(row, col, text).map_err(xe)?;
                }
            }
        }
        Ok(())
    }

    /// Rows written.
    #[must_use]
    pub fn rows(&self) -> u32 {
        self.row
    }

    /// Writes the finished workbook to `path`.
    ///
    /// # Errors
    /// The writer's.
    pub fn save(mut self, path: &Path) -> Result<(), XlsxError> {
        self.book.save(path).map_err(xe)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn children_cells_round_trip() {
        let kids = vec![
            Child {
                name: "Ana".into(),
                grade: Some("3".into()),
            },
            Child {
                name: "Ben".into(),
                grade: None,
            },
        ];
        let cell = children_cell(&kids);
        assert_eq!(cell, "Ana (3); Ben");
        assert_eq!(parse_children(&cell), kids);
        assert!(parse_children("  ").is_empty());
    }

    #[test]
    fn header_names_are_normalized() {
        assert_eq!(column_name(" First Name "), "first_name");
        assert_eq!(column_name("E-mail"), "email");
        assert_eq!(column_name("joined_at"), "joined_at");
    }

    #[test]
    fn csv_fields_are_quoted_and_formula_guarded() {
        let mut s = String::new();
        push_csv_line(&mut s, &["a,b", "say \"hi\"", "=SUM(A1)", "plain"]);
        assert_eq!(s, "\"a,b\",\"say \"\"hi\"\"\",'=SUM(A1),plain\r\n");
    }
}
