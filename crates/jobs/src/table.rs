//! Member spreadsheets: the columns, reading an uploaded CSV or XLSX file row by row
//! (through the capped stream reader of the `sheets` crate), and writing rows as CSV
//! (the `sheets` writer, formula-guarded) or XLSX.

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

pub use sheets::csv::{push_field as push_csv_field, push_line as push_csv_line};
pub use sheets::{Counters, SheetLimits};

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
    /// The reader refused the file: malformed, or past a cap of [`SheetLimits`]
    /// ([`sheets::ReadError::is_too_large`] tells the size caps apart).
    #[error(transparent)]
    Sheet(#[from] sheets::ReadError),
    /// The header row lacks a required column.
    #[error("the header row has no `{0}` column")]
    MissingColumn(&'static str),
    /// Two header cells name the same column (after normalization: `email`, `E-mail`).
    #[error("the header row has the column `{name}` twice (columns {first} and {second})")]
    DuplicateColumn {
        /// The normalized name.
        name: String,
        /// The first one's position (the first column is 1).
        first: usize,
        /// The second one's position.
        second: usize,
    },
}

impl ReadError {
    /// Whether a size cap refused the file (HTTP 413 rather than 422).
    #[must_use]
    pub const fn is_too_large(&self) -> bool {
        matches!(self, Self::Sheet(e) if e.is_too_large())
    }
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

fn row_of(headers: &[String], row: &sheets::SheetRow) -> RawRow {
    let cells = headers
        .iter()
        .zip(&row.cells)
        .filter_map(|(h, c)| {
            // Undo the CSV export's formula guard (`'=…`, `'+…`).
            let c = sheets::csv::unguard(c.trim()).trim().to_owned();
            (!h.is_empty() && !c.is_empty()).then(|| (h.clone(), c))
        })
        .collect();
    RawRow {
        row: i64::try_from(row.number).unwrap_or(i64::MAX),
        cells,
    }
}

/// The header row's column names; refuses a header without `email` and one naming a
/// column twice.
fn header_names(header: Option<&sheets::SheetRow>) -> Result<Vec<String>, ReadError> {
    let headers: Vec<String> = header
        .map(|h| h.cells.iter().map(|c| column_name(c)).collect())
        .unwrap_or_default();
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        if let Some(first) = headers[..i].iter().position(|x| x == h) {
            return Err(ReadError::DuplicateColumn {
                name: h.clone(),
                first: first + 1,
                second: i + 1,
            });
        }
    }
    if !headers.iter().any(|h| h == "email") {
        return Err(ReadError::MissingColumn("email"));
    }
    Ok(headers)
}

/// Reads `path` row by row under the default [`SheetLimits`], calling `each` for every
/// non-empty data row; stops early when `each` returns `false`. See [`read_rows_with`].
///
/// # Errors
/// [`ReadError`]: a malformed file, a cap exceeded, a bad header.
pub fn read_rows(
    path: &Path,
    format: SheetFormat,
    each: impl FnMut(RawRow) -> bool,
) -> Result<(), ReadError> {
    read_rows_with(
        path,
        format,
        &SheetLimits::default(),
        &mut Counters::default(),
        each,
    )
}

/// Reads `path` as a stream (CSV or the first XLSX sheet) under `limits`, calling
/// `each` for every non-empty data row (the first non-empty row is the header); stops
/// early when `each` returns `false`. Memory stays bounded by the caps whatever the
/// file holds; `counters` tells how far the read got. Blocking: run it off the async
/// runtime.
///
/// # Errors
/// [`ReadError`]: a malformed file, a cap exceeded (checked while reading), a header
/// without `email` or with a column twice.
pub fn read_rows_with(
    path: &Path,
    format: SheetFormat,
    limits: &SheetLimits,
    counters: &mut Counters,
    mut each: impl FnMut(RawRow) -> bool,
) -> Result<(), ReadError> {
    let file = std::fs::File::open(path).map_err(|e| {
        ReadError::Sheet(sheets::ReadError::Malformed {
            format: "upload",
            message: e.to_string(),
        })
    })?;
    let mut headers: Option<Vec<String>> = None;
    let mut failed = None;
    let on_row = |row: sheets::SheetRow| -> bool {
        match &headers {
            None => match header_names(Some(&row)) {
                Ok(h) => {
                    headers = Some(h);
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            },
            Some(h) => {
                let raw = row_of(h, &row);
                raw.cells.is_empty() || each(raw)
            }
        }
    };
    match format {
        SheetFormat::Csv => {
            sheets::read_csv(std::io::BufReader::new(file), limits, counters, on_row)?
        }
        SheetFormat::Xlsx => {
            sheets::read_xlsx(std::io::BufReader::new(file), limits, counters, on_row)?
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if headers.is_none() {
        header_names(None)?;
    }
    Ok(())
}

/// A flag that stops a read (or any blocking work checking it) when the request that
/// started it is gone: keep the [`CancelOnDrop`] of [`Cancel::on_drop`] in the request's
/// future and check [`Cancel::is_cancelled`] per row on the blocking thread.
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// Whether the work should stop.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks the work to stop.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// A guard that cancels when dropped (the request future was dropped, or ended).
    #[must_use]
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// Cancels its [`Cancel`] when dropped.
#[derive(Debug)]
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// [`read_rows_with`] that also stops (with `Ok`) at the first row after `cancel` was
/// set: the rows delivered after a cancellation are at most one.
///
/// # Errors
/// As [`read_rows_with`].
pub fn read_rows_until(
    path: &Path,
    format: SheetFormat,
    limits: &SheetLimits,
    counters: &mut Counters,
    cancel: &Cancel,
    mut each: impl FnMut(RawRow) -> bool,
) -> Result<(), ReadError> {
    read_rows_with(path, format, limits, counters, |row| {
        !cancel.is_cancelled() && each(row)
    })
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
    fn temp(bytes: &[u8], ext: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("ptoc-table-{}.{ext}", uuid::Uuid::now_v7()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn read(bytes: &[u8], format: SheetFormat) -> Result<Vec<RawRow>, ReadError> {
        let path = temp(bytes, format.extension());
        let mut rows = Vec::new();
        let r = read_rows(&path, format, |r| {
            rows.push(r);
            true
        });
        std::fs::remove_file(&path).unwrap();
        r.map(|()| rows)
    }

    #[test]
    fn duplicate_header_columns_are_refused_naming_the_column() {
        let r = read(
            b"email,First Name,E-mail\na@x.org,Ann,b@x.org\n",
            SheetFormat::Csv,
        );
        match r {
            Err(ReadError::DuplicateColumn {
                name,
                first,
                second,
            }) => {
                assert_eq!((name.as_str(), first, second), ("email", 1, 3));
            }
            other => panic!("{other:?}"),
        }
        let e = read(b"email,First Name,E-mail\n", SheetFormat::Csv).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the header row has the column `email` twice (columns 1 and 3)"
        );
        let xlsx = sheets::testing::workbook(
            &sheets::testing::sheet_xml(&[vec!["Email", "Phone", "phone number"]]),
            None,
        );
        assert!(matches!(
            read(&xlsx, SheetFormat::Xlsx),
            Err(ReadError::DuplicateColumn { ref name, .. }) if name == "phone"
        ));
        // Unnamed columns may repeat.
        assert_eq!(
            read(b"email,,\na@x.org,1,2\n", SheetFormat::Csv)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn xlsx_rows_read_by_header_with_sheet_row_numbers() {
        let xlsx = sheets::testing::workbook(
            &sheets::testing::sheet_xml(&[
                vec!["E-mail", "First Name", "Phone"],
                vec!["a@x.org", " Ann ", "'+1 555"],
                vec!["", "", ""],
                vec!["b@x.org", "Bo", ""],
            ]),
            None,
        );
        let rows = read(&xlsx, SheetFormat::Xlsx).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[0].get("first_name"), "Ann");
        assert_eq!(rows[0].get("phone"), "+1 555");
        assert_eq!(rows[1].row, 4);
        assert!(matches!(
            read(b"name\nAnn\n", SheetFormat::Csv),
            Err(ReadError::MissingColumn("email"))
        ));
        assert!(matches!(
            read(b"", SheetFormat::Csv),
            Err(ReadError::MissingColumn("email"))
        ));
    }

    #[test]
    fn a_cancelled_read_stops_at_the_next_row() {
        let mut body = b"email\n".to_vec();
        for i in 0..40_000 {
            body.extend(format!("p{i}@x.org\n").as_bytes());
        }
        for format in [SheetFormat::Csv, SheetFormat::Xlsx] {
            let bytes = match format {
                SheetFormat::Csv => body.clone(),
                SheetFormat::Xlsx => sheets::testing::workbook_with_sheet_entry(
                    sheets::testing::repeated(
                        "xl/worksheets/sheet1.xml",
                        b"<worksheet><sheetData><row><c t=\"inlineStr\"><is><t>email</t></is></c></row>",
                        b"<row><c t=\"inlineStr\"><is><t>p@x.org</t></is></c></row>",
                        40_000,
                        b"</sheetData></worksheet>",
                    ),
                    None,
                ),
            };
            let path = temp(&bytes, format.extension());
            let cancel = Cancel::default();
            // The request future holds the guard; dropping it (the client went away)
            // sets the flag, which the reader sees at its next row.
            let mut guard = Some(cancel.on_drop());
            let mut counters = Counters::default();
            let mut seen = 0;
            read_rows_until(
                &path,
                format,
                &SheetLimits::default(),
                &mut counters,
                &cancel,
                |_| {
                    seen += 1;
                    if seen == 10 {
                        drop(guard.take());
                    }
                    true
                },
            )
            .unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(seen, 10, "{format:?}: no row after the cancellation");
            assert_eq!(
                counters.rows, 12,
                "{format:?}: the header, 10 rows, and the one that saw the flag"
            );
        }
    }
    /// The caps fit the service's own export: a sheet written like the XLSX export
    /// (constant memory, text cells, dates as dates), measured per row, fits 50,000
    /// rows with generous values in the per-part unpacked cap.
    #[test]
    fn the_caps_fit_a_full_export() {
        const ROWS: u32 = 2_000;
        let dir = std::env::temp_dir();
        let path = dir.join(format!("ptoc-caps-{}.xlsx", uuid::Uuid::now_v7()));
        let mut book = rust_xlsxwriter::Workbook::new();
        book.set_tempdir(&dir).unwrap();
        let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
        let sheet = book.add_worksheet_with_constant_memory().unwrap();
        for (col, name) in (0_u16..).zip(COLUMNS) {
            sheet.write_string(0, col, name).unwrap();
        }
        for row in 1..=ROWS {
            let cells = [
                uuid::Uuid::now_v7().to_string(),
                format!("firstname.lastname{row}@some-long-school-domain.org"),
                "Maximiliana-Jo".to_owned(),
                "Featherstonehaugh".to_owned(),
                "+1 (555) 123-4567".to_owned(),
                "committee_lead".to_owned(),
                "active".to_owned(),
                "Fundraising and Events".to_owned(),
                "Ana (3); Benjamin (K); Cleo (5)".to_owned(),
            ];
            for (col, text) in (0_u16..).zip(&cells) {
                sheet.write_string(row, col, text).unwrap();
            }
            let t = rust_xlsxwriter::ExcelDateTime::from_timestamp(1_700_000_000).unwrap();
            sheet.write_datetime_with_format(row, 9, &t, &date).unwrap();
            sheet
                .write_datetime_with_format(row, 10, &t, &date)
                .unwrap();
        }
        book.save(&path).unwrap();
        let limits = SheetLimits::default();
        let mut counters = Counters::default();
        let mut rows = 0;
        read_rows_with(&path, SheetFormat::Xlsx, &limits, &mut counters, |r| {
            rows += 1;
            r.get("joined_at").starts_with("45")
        })
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(rows, ROWS);
        let per_row = counters.bytes / u64::from(ROWS);
        assert!(
            per_row * limits.max_rows < limits.max_entry_inflated_bytes,
            "{per_row} bytes per row: 50,000 rows must fit the cap"
        );
    }
    /// A workbook as a spreadsheet program saves it (shared strings, numbers, booleans,
    /// a second sheet) reads back by header from the first sheet.
    #[test]
    fn a_saved_workbook_with_shared_strings_reads_back() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("ptoc-sst-{}.xlsx", uuid::Uuid::now_v7()));
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for (col, name) in (0_u16..).zip(["E-Mail", "First name", "Last name", "Phone", "Active"]) {
            sheet.write_string(0, col, name).unwrap();
        }
        sheet.write_string(1, 0, "ann@x.org").unwrap();
        sheet.write_string(1, 1, "Ann & <Bo>").unwrap();
        sheet.write_string(1, 2, "Able").unwrap();
        sheet.write_number(1, 3, 5_551_234_567.0).unwrap();
        sheet.write_boolean(1, 4, true).unwrap();
        sheet.write_string(3, 0, "cy@x.org").unwrap();
        sheet.write_number(3, 3, 1.5).unwrap();
        let other = book.add_worksheet();
        other.write_string(0, 0, "not this sheet").unwrap();
        book.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let rows = read(&bytes, SheetFormat::Xlsx).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[0].get("email"), "ann@x.org");
        assert_eq!(rows[0].get("first_name"), "Ann & <Bo>");
        assert_eq!(rows[0].get("phone"), "5551234567");
        assert_eq!(rows[0].get("active"), "true");
        assert_eq!((rows[1].row, rows[1].get("phone")), (4, "1.5"));
    }
}
