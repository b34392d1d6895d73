//! XLSX (Office Open XML workbook): the first sheet, read as a stream of XML events
//! from the zip, under [`SheetLimits`].
//!
//! Every zip entry read goes through a guard that counts the bytes **as they are
//! inflated** (per entry and in total; the sizes in the zip headers are not trusted),
//! bounds the longest XML token (so the XML parser's buffer stays small: a run of
//! whitespace between tags is not kept past its first 64 bytes), and refuses `<!`
//! constructs (DOCTYPE, comments, CDATA: no spreadsheet program writes them in these
//! parts). The shared-strings table is loaded first, under its own caps, into one
//! string with an end offset per entry. A row holds at most [`SheetLimits::max_columns`]
//! cells: a cell reference is only used as a column number, never to size anything.
//!
//! Cell values: shared and inline strings as text, numbers in their shortest form
//! (`5551234567`, not `5551234567.0`), booleans as `true` / `false`, errors as empty.
//! Number formats (dates) are not read: a date cell is its serial number.

use std::cell::Cell;
use std::io::{BufReader, Read, Seek};

use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::{Cap, Counters, ReadError, RowBuilder, SheetLimits, SheetRow};

/// Whitespace kept of a whitespace-only text between tags.
const KEPT_WHITESPACE: usize = 64;

fn malformed(message: impl Into<String>) -> ReadError {
    ReadError::Malformed {
        format: "XLSX",
        message: message.into(),
    }
}

/// Why the guard stopped a zip entry.
#[derive(Debug, Clone, Copy)]
enum Tripped {
    /// Past this inflated-bytes cap (the entry's or the total's).
    Inflated(u64),
    Token,
    Markup,
}

impl std::fmt::Display for Tripped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Inflated(_) => "inflated size cap",
            Self::Token => "XML token cap",
            Self::Markup => "markup declaration",
        })
    }
}

impl std::error::Error for Tripped {}

/// Counts and filters the inflated bytes of one zip entry (see the module docs).
struct Guard<'c, R> {
    inner: R,
    limits: &'c SheetLimits,
    total: &'c Cell<u64>,
    entry: u64,
    /// Bytes of the current token (since the last `<` or `>`), whitespace runs aside.
    run: usize,
    /// In a text that has been whitespace only since the last `>`.
    blank_text: bool,
    blank_kept: usize,
    after_lt: bool,
}

impl<'c, R: Read> Guard<'c, R> {
    fn new(inner: R, limits: &'c SheetLimits, total: &'c Cell<u64>) -> Self {
        Self {
            inner,
            limits,
            total,
            entry: 0,
            run: 0,
            blank_text: false,
            blank_kept: 0,
            after_lt: false,
        }
    }
}

impl<R: Read> Read for Guard<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            self.entry += n as u64;
            let total = self.total.get() + n as u64;
            self.total.set(total);
            if self.entry > self.limits.max_entry_inflated_bytes {
                let cap = self.limits.max_entry_inflated_bytes;
                return Err(std::io::Error::other(Tripped::Inflated(cap)));
            }
            if total > self.limits.max_total_inflated_bytes {
                let cap = self.limits.max_total_inflated_bytes;
                return Err(std::io::Error::other(Tripped::Inflated(cap)));
            }
            let mut kept = 0;
            for i in 0..n {
                let b = buf[i];
                let keep = match b {
                    b'<' => {
                        self.run = 0;
                        self.blank_text = false;
                        self.after_lt = true;
                        true
                    }
                    b'>' => {
                        self.run = 0;
                        self.blank_text = true;
                        self.blank_kept = 0;
                        self.after_lt = false;
                        true
                    }
                    _ => {
                        if self.after_lt && b == b'!' {
                            return Err(std::io::Error::other(Tripped::Markup));
                        }
                        self.after_lt = false;
                        if self.blank_text && matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                            self.blank_kept += 1;
                            self.blank_kept <= KEPT_WHITESPACE
                        } else {
                            self.blank_text = false;
                            self.run += 1;
                            if self.run > self.limits.max_xml_token_bytes {
                                return Err(std::io::Error::other(Tripped::Token));
                            }
                            true
                        }
                    }
                };
                if keep {
                    buf[kept] = b;
                    kept += 1;
                }
            }
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

type Xml<'c, R> = quick_xml::Reader<BufReader<Guard<'c, R>>>;

fn xml<'c, R: Read>(inner: R, limits: &'c SheetLimits, total: &'c Cell<u64>) -> Xml<'c, R> {
    let mut reader = quick_xml::Reader::from_reader(BufReader::with_capacity(
        32 * 1024,
        Guard::new(inner, limits, total),
    ));
    let config = reader.config_mut();
    config.trim_text(false);
    config.expand_empty_elements = true;
    config.check_end_names = false;
    config.check_comments = false;
    reader
}

/// Maps a parser error, telling the guard's refusals apart.
fn xml_error(e: &quick_xml::Error, limits: &SheetLimits) -> ReadError {
    if let quick_xml::Error::Io(io) = e
        && let Some(tripped) = io.get_ref().and_then(|e| e.downcast_ref::<Tripped>())
    {
        return match tripped {
            Tripped::Inflated(limit) => ReadError::TooLarge {
                cap: Cap::InflatedBytes,
                limit: *limit,
            },
            Tripped::Token => malformed(format!(
                "a tag or value is longer than {} bytes",
                limits.max_xml_token_bytes
            )),
            Tripped::Markup => malformed("DOCTYPE, comments and CDATA are not accepted"),
        };
    }
    malformed(e.to_string())
}

/// The text of an entity or character reference (`&amp;`, `&#x41;`).
fn reference(r: &BytesRef<'_>) -> Result<String, ReadError> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| malformed(e.to_string()))? {
        return Ok(c.to_string());
    }
    quick_xml::escape::resolve_predefined_entity(r)
        .map(str::to_owned)
        .ok_or_else(|| malformed(format!("unknown entity `&{};`", &**r)))
}

/// An attribute's unescaped value by its full name.
fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, ReadError> {
    match e
        .try_get_attribute(name)
        .map_err(|e| malformed(e.to_string()))?
    {
        Some(a) => Ok(Some(
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| malformed(e.to_string()))?
                .into_owned(),
        )),
        None => Ok(None),
    }
}

/// The index of the zip entry `name` (exact, else ignoring case and a leading `/`).
fn entry_index<R: Read + Seek>(zip: &zip::ZipArchive<R>, name: &str) -> Option<usize> {
    let name = name.trim_start_matches('/');
    zip.index_for_name(name).or_else(|| {
        zip.file_names()
            .position(|n| n.is_ok_and(|n| n.trim_start_matches('/').eq_ignore_ascii_case(name)))
    })
}

/// Opens entry `index` for reading (decompressing).
fn open<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    index: usize,
) -> Result<zip::read::ZipFile<'_, R>, ReadError> {
    zip.by_index(index).map_err(|e| malformed(e.to_string()))
}

/// Where the first sheet and the shared strings are: from the workbook and its
/// relationships, falling back to the usual names.
fn locate<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    limits: &SheetLimits,
    total: &Cell<u64>,
) -> Result<(String, String), ReadError> {
    let mut sheet_rel = None;
    if let Some(i) = entry_index(zip, "xl/workbook.xml") {
        let mut reader = xml(open(zip, i)?, limits, total);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) if e.local_name().as_ref() == "sheet" => {
                    sheet_rel = e
                        .attributes()
                        .with_checks(false)
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == "id" && a.key.prefix().is_some())
                        .map(|a| a.value.into_owned());
                    break;
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => return Err(xml_error(&e, limits)),
            }
        }
    }
    let mut sheet = None;
    let mut strings = None;
    if let Some(i) = entry_index(zip, "xl/_rels/workbook.xml.rels") {
        let mut reader = xml(open(zip, i)?, limits, total);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) if e.local_name().as_ref() == "Relationship" => {
                    let (Some(id), Some(target)) = (attr(&e, "Id")?, attr(&e, "Target")?) else {
                        continue;
                    };
                    let kind = attr(&e, "Type")?.unwrap_or_default();
                    let path = match target.strip_prefix('/') {
                        Some(abs) => abs.to_owned(),
                        None => format!("xl/{target}"),
                    };
                    if sheet_rel.as_deref() == Some(id.as_str()) {
                        sheet = Some(path);
                    } else if kind.ends_with("/sharedStrings") {
                        strings = Some(path);
                    }
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => return Err(xml_error(&e, limits)),
            }
        }
    }
    Ok((
        sheet.unwrap_or_else(|| "xl/worksheets/sheet1.xml".to_owned()),
        strings.unwrap_or_else(|| "xl/sharedStrings.xml".to_owned()),
    ))
}

/// The shared-strings table: all texts in one string, an end offset per entry.
#[derive(Debug, Default)]
struct SharedStrings {
    text: String,
    ends: Vec<usize>,
}

impl SharedStrings {
    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }
}

fn load_shared_strings<R: Read>(
    reader: &mut Xml<'_, R>,
    limits: &SheetLimits,
    counters: &mut Counters,
) -> Result<SharedStrings, ReadError> {
    let too_large = |limit: u64| ReadError::TooLarge {
        cap: Cap::SharedStrings,
        limit,
    };
    let mut table = SharedStrings::default();
    let (mut in_si, mut in_t, mut in_phonetic) = (false, false, false);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_error(&e, limits))?;
        let text = match event {
            Event::Start(e) => {
                match e.local_name().as_ref() {
                    "si" => in_si = true,
                    "rPh" => in_phonetic = true,
                    "t" if in_si && !in_phonetic => in_t = true,
                    _ => {}
                }
                continue;
            }
            Event::End(e) => {
                match e.local_name().as_ref() {
                    "si" if in_si => {
                        in_si = false;
                        if table.ends.len() >= limits.max_shared_strings {
                            return Err(too_large(limits.max_shared_strings as u64));
                        }
                        table.ends.push(table.text.len());
                        counters.shared_strings += 1;
                    }
                    "rPh" => in_phonetic = false,
                    "t" => in_t = false,
                    _ => {}
                }
                continue;
            }
            Event::Text(t) if in_t => t.xml10_content().into_owned(),
            Event::CData(t) if in_t => t.xml10_content().into_owned(),
            Event::GeneralRef(r) if in_t => reference(&r)?,
            Event::Eof => return Ok(table),
            _ => continue,
        };
        if (table.text.len() + text.len()) as u64 > limits.max_shared_strings_bytes {
            return Err(too_large(limits.max_shared_strings_bytes));
        }
        table.text.push_str(&text);
        counters.shared_string_bytes = table.text.len() as u64;
    }
}

/// A cell reference's column (0-based): the letters of `AB12`; `None` without letters.
fn column_of(reference: &str) -> Option<u64> {
    let letters = reference
        .bytes()
        .take_while(u8::is_ascii_alphabetic)
        .collect::<Vec<_>>();
    if letters.is_empty() {
        return None;
    }
    Some(
        letters
            .iter()
            .fold(0_u64, |acc, b| {
                acc.saturating_mul(26)
                    .saturating_add(u64::from(b.to_ascii_uppercase() - b'A') + 1)
            })
            .saturating_sub(1),
    )
}

/// A number as text: integral values without a fraction (`5551234567`), others in
/// their shortest form; anything unparsable as it is.
fn number_text(v: &str) -> String {
    let v = v.trim();
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Ok(f) if f.is_finite() => f.to_string(),
        _ => v.to_owned(),
    }
}

/// The cell being read.
struct CellState {
    column: u64,
    kind: String,
    value: String,
    in_value: bool,
    in_inline: bool,
    in_text: bool,
    in_phonetic: bool,
}

/// Reads the first sheet of the workbook in `input`, calling `each` for every row with
/// a non-empty cell (the header row included), in order; stops when `each` returns
/// `false`. `counters` is kept up to date while reading.
///
/// # Errors
/// [`ReadError`]: a cap exceeded, or not a readable workbook.
pub fn read_xlsx<R: Read + Seek>(
    input: R,
    limits: &SheetLimits,
    counters: &mut Counters,
    each: impl FnMut(SheetRow) -> bool,
) -> Result<(), ReadError> {
    let total = Cell::new(0);
    let result = read_workbook(input, limits, counters, &total, each);
    counters.bytes = total.get();
    result
}

fn read_workbook<R: Read + Seek>(
    input: R,
    limits: &SheetLimits,
    counters: &mut Counters,
    total: &Cell<u64>,
    mut each: impl FnMut(SheetRow) -> bool,
) -> Result<(), ReadError> {
    let mut zip = zip::ZipArchive::new(input).map_err(|e| malformed(e.to_string()))?;
    if zip.len() > limits.max_zip_entries {
        return Err(ReadError::TooLarge {
            cap: Cap::ZipEntries,
            limit: limits.max_zip_entries as u64,
        });
    }
    let (sheet_path, strings_path) = locate(&mut zip, limits, total)?;
    let strings = match entry_index(&zip, &strings_path) {
        Some(i) => {
            let mut reader = xml(open(&mut zip, i)?, limits, total);
            load_shared_strings(&mut reader, limits, counters)?
        }
        None => SharedStrings::default(),
    };
    let index = entry_index(&zip, &sheet_path)
        .ok_or_else(|| malformed(format!("the workbook has no sheet `{sheet_path}`")))?;
    let mut reader = xml(open(&mut zip, index)?, limits, total);
    let mut buf = Vec::new();
    let mut in_data = false;
    let mut row: Option<RowBuilder> = None;
    let mut last_row = 0_u64;
    let mut next_column = 0_u64;
    let mut cell: Option<CellState> = None;
    loop {
        buf.clear();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_error(&e, limits))?;
        let text = match event {
            Event::Start(e) => {
                match e.local_name().as_ref() {
                    "sheetData" => in_data = true,
                    "row" if in_data => {
                        let number = match attr(&e, "r")? {
                            Some(r) => r
                                .trim()
                                .parse::<u64>()
                                .map_err(|_| malformed(format!("bad row number `{r}`")))?,
                            None => last_row + 1,
                        };
                        last_row = number;
                        next_column = 0;
                        row = Some(RowBuilder::new(number));
                    }
                    "c" if row.is_some() => {
                        let column = match attr(&e, "r")? {
                            Some(r) => column_of(&r).unwrap_or(next_column),
                            None => next_column,
                        };
                        next_column = column.saturating_add(1);
                        cell = Some(CellState {
                            column,
                            kind: attr(&e, "t")?.unwrap_or_default(),
                            value: String::new(),
                            in_value: false,
                            in_inline: false,
                            in_text: false,
                            in_phonetic: false,
                        });
                    }
                    name => {
                        if let Some(c) = cell.as_mut() {
                            match name {
                                "v" => c.in_value = true,
                                "is" => c.in_inline = true,
                                "rPh" => c.in_phonetic = true,
                                "t" if c.in_inline && !c.in_phonetic => c.in_text = true,
                                _ => {}
                            }
                        }
                    }
                }
                continue;
            }
            Event::End(e) => {
                match e.local_name().as_ref() {
                    "sheetData" => return Ok(()),
                    "row" => {
                        cell = None;
                        let done = match row.take() {
                            Some(b) => b.finish(counters, limits)?,
                            None => None,
                        };
                        if let Some(done) = done
                            && !each(done)
                        {
                            return Ok(());
                        }
                    }
                    "c" => {
                        if let (Some(c), Some(r)) = (cell.take(), row.as_mut()) {
                            let value = cell_value(
                                c.kind.as_str(),
                                c.value,
                                &strings,
                                r,
                                c.column,
                                limits,
                            )?;
                            r.set(c.column, value, limits)?;
                        }
                    }
                    name => {
                        if let Some(c) = cell.as_mut() {
                            match name {
                                "v" => c.in_value = false,
                                "is" => c.in_inline = false,
                                "rPh" => c.in_phonetic = false,
                                "t" => c.in_text = false,
                                _ => {}
                            }
                        }
                    }
                }
                continue;
            }
            Event::Eof => return Ok(()),
            _ if !cell.as_ref().is_some_and(|c| c.in_value || c.in_text) => continue,
            Event::Text(t) => t.xml10_content().into_owned(),
            Event::CData(t) => t.xml10_content().into_owned(),
            Event::GeneralRef(r) => reference(&r)?,
            _ => continue,
        };
        if let (Some(c), Some(r)) = (cell.as_mut(), row.as_ref()) {
            if c.value.len() + text.len() > limits.max_cell_bytes {
                return Err(ReadError::CellTooLarge {
                    row: r.number,
                    column: c.column.saturating_add(1),
                    limit: limits.max_cell_bytes,
                });
            }
            c.value.push_str(&text);
        }
    }
}

/// A cell's text by its type (`t`).
fn cell_value(
    kind: &str,
    raw: String,
    strings: &SharedStrings,
    row: &RowBuilder,
    column: u64,
    limits: &SheetLimits,
) -> Result<String, ReadError> {
    Ok(match kind {
        "s" => {
            let Ok(i) = raw.trim().parse::<usize>() else {
                return Err(malformed(format!(
                    "row {}: bad shared string index `{raw}`",
                    row.number
                )));
            };
            let s = strings.get(i).ok_or_else(|| {
                malformed(format!(
                    "row {}: shared string {i} does not exist",
                    row.number
                ))
            })?;
            if s.len() > limits.max_cell_bytes {
                return Err(ReadError::CellTooLarge {
                    row: row.number,
                    column: column.saturating_add(1),
                    limit: limits.max_cell_bytes,
                });
            }
            s.to_owned()
        }
        "b" => match raw.trim() {
            "1" => "true".to_owned(),
            "0" => "false".to_owned(),
            _ => raw,
        },
        "e" => String::new(),
        "" | "n" => number_text(&raw),
        _ => raw,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use crate::testing;

    fn read(bytes: &[u8], limits: &SheetLimits) -> (Result<Vec<SheetRow>, ReadError>, Counters) {
        let mut counters = Counters::default();
        let mut rows = Vec::new();
        let r = read_xlsx(std::io::Cursor::new(bytes), limits, &mut counters, |r| {
            rows.push(r);
            true
        });
        (r.map(|()| rows), counters)
    }

    #[test]
    fn shared_inline_numbers_and_booleans_read_as_text() {
        let sheet = r#"<worksheet><sheetData>
            <row r="2"><c r="A2" t="s"><v>0</v></c><c r="C2" t="inlineStr"><is><t>Ann &amp; Bo</t></is></c></row>
            <row r="3"><c r="A3"><v>5551234567</v></c><c r="B3"><v>1.5</v></c><c r="C3" t="b"><v>1</v></c><c r="D3" t="e"><v>#N/A</v></c></row>
            <row r="4"><c r="B4" t="s"><v>1</v></c></row>
            <row r="5"/>
        </sheetData></worksheet>"#;
        let strings = r#"<sst><si><t>email</t></si><si><r><t>rich </t></r><r><t>text</t></r><rPh><t>x</t></rPh></si></sst>"#;
        let file = testing::workbook(sheet, Some(strings));
        let (rows, c) = read(&file, &SheetLimits::default());
        let rows = rows.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].number, rows[0].cells.clone()),
            (
                2,
                vec!["email".to_owned(), String::new(), "Ann & Bo".to_owned()]
            )
        );
        assert_eq!(rows[1].cells, ["5551234567", "1.5", "true"]);
        assert_eq!(rows[2].cells, ["", "rich text"]);
        assert_eq!(c.rows, 3, "the blank row 5 is not counted");
        assert_eq!(c.shared_strings, 2);
    }

    #[test]
    fn a_cell_at_xfd1048576_is_refused_without_allocating_by_coordinates() {
        let sheet = r#"<worksheet><dimension ref="A1:XFD1048576"/><sheetData>
            <row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>
            <row r="1048576"><c r="XFD1048576"><v>1</v></c></row>
        </sheetData></worksheet>"#;
        let file = testing::workbook(sheet, None);
        assert!(file.len() < 4_000, "a small file: {}", file.len());
        let (r, c) = read(&file, &SheetLimits::default());
        assert!(
            matches!(
                r,
                Err(ReadError::TooManyColumns {
                    row: 1_048_576,
                    column: 16_384,
                    limit: 64
                })
            ),
            "{r:?}"
        );
        assert_eq!(c.rows, 1, "the header; the refused row is not counted");
        // An empty (formatted) cell there is harmless and ignored.
        let sheet = r#"<worksheet><sheetData>
            <row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>
            <row r="1048576"><c r="XFD1048576" s="1"/></row>
        </sheetData></worksheet>"#;
        let (rows, c) = read(&testing::workbook(sheet, None), &SheetLimits::default());
        assert_eq!(rows.unwrap().len(), 1);
        assert_eq!(c.widest_row, 1);
    }

    #[test]
    fn a_zip_bomb_trips_the_inflated_cap_early() {
        let limits = SheetLimits::default();
        // ~1 GiB of whitespace in the sheet, from a file of under 7 MB.
        let file = testing::workbook_with_sheet_entry(
            testing::repeated(
                "xl/worksheets/sheet1.xml",
                b"<worksheet><sheetData>",
                b" ",
                1 << 30,
                b"</sheetData></worksheet>",
            ),
            None,
        );
        assert!(file.len() < 8 << 20, "{}", file.len());
        let (r, c) = read(&file, &limits);
        assert!(
            matches!(
                r,
                Err(ReadError::TooLarge {
                    cap: Cap::InflatedBytes,
                    ..
                })
            ),
            "{r:?}"
        );
        assert!(
            c.bytes <= limits.max_entry_inflated_bytes + 64 * 1024,
            "stopped at the cap: {c:?}"
        );
    }

    #[test]
    fn ten_million_tiny_rows_stop_at_the_row_cap() {
        let limits = SheetLimits::default();
        let file = testing::workbook_with_sheet_entry(
            testing::repeated(
                "xl/worksheets/sheet1.xml",
                b"<worksheet><sheetData><row><c t=\"inlineStr\"><is><t>email</t></is></c></row>",
                b"<row><c><v>1</v></c></row>",
                10_000_000,
                b"</sheetData></worksheet>",
            ),
            None,
        );
        assert!(file.len() < 2 << 20, "{}", file.len());
        let (r, c) = read(&file, &limits);
        assert!(
            matches!(
                r,
                Err(ReadError::TooLarge {
                    cap: Cap::Rows,
                    limit: 50_000
                })
            ),
            "{r:?}"
        );
        assert_eq!(c.rows, 50_001, "the header and the cap's rows");
        assert!(c.bytes < 4 << 20, "read about the cap's rows: {c:?}");
    }

    #[test]
    fn long_cells_tokens_and_shared_strings_are_capped() {
        let limits = SheetLimits {
            max_shared_strings: 3,
            ..SheetLimits::default()
        };
        let big = "x".repeat(5_000);
        let sheet = format!(
            r#"<worksheet><sheetData><row r="1"><c t="inlineStr"><is><t>{big}</t></is></c></row></sheetData></worksheet>"#
        );
        let (r, _) = read(&testing::workbook(&sheet, None), &limits);
        assert!(
            matches!(
                r,
                Err(ReadError::CellTooLarge {
                    row: 1,
                    column: 1,
                    ..
                })
            ),
            "{r:?}"
        );

        let huge = "y".repeat(100_000);
        let sheet = format!(
            r#"<worksheet><sheetData><row r="1"><c><v>{huge}</v></c></row></sheetData></worksheet>"#
        );
        let (r, _) = read(&testing::workbook(&sheet, None), &limits);
        assert!(matches!(r, Err(ReadError::Malformed { .. })), "{r:?}");

        let strings =
            "<sst><si><t>a</t></si><si><t>b</t></si><si><t>c</t></si><si><t>d</t></si></sst>";
        let (r, c) = read(&testing::workbook("<worksheet/>", Some(strings)), &limits);
        assert!(
            matches!(
                r,
                Err(ReadError::TooLarge {
                    cap: Cap::SharedStrings,
                    limit: 3
                })
            ),
            "{r:?}"
        );
        assert_eq!(c.shared_strings, 3);

        let sheet = r#"<!DOCTYPE x [<!ENTITY a "aaaa">]><worksheet/>"#;
        let (r, _) = read(&testing::workbook(sheet, None), &limits);
        assert!(matches!(r, Err(ReadError::Malformed { .. })), "{r:?}");
    }

    #[test]
    fn the_callback_stops_the_read() {
        let file = testing::workbook_with_sheet_entry(
            testing::repeated(
                "xl/worksheets/sheet1.xml",
                b"<worksheet><sheetData>",
                b"<row><c><v>1</v></c></row>",
                40_000,
                b"</sheetData></worksheet>",
            ),
            None,
        );
        let mut counters = Counters::default();
        let mut seen = 0;
        read_xlsx(
            std::io::Cursor::new(file),
            &SheetLimits::default(),
            &mut counters,
            |_| {
                seen += 1;
                seen < 7
            },
        )
        .unwrap();
        assert_eq!(seen, 7);
        assert_eq!(counters.rows, 7);
    }

    #[test]
    fn the_total_inflated_cap_counts_every_part() {
        let limits = SheetLimits {
            max_entry_inflated_bytes: 100_000,
            max_total_inflated_bytes: 150_000,
            ..SheetLimits::default()
        };
        let strings = format!("<sst>{}</sst>", "<si><t>abc</t></si>".repeat(4_000));
        let sheet = format!(
            "<worksheet><sheetData>{}</sheetData></worksheet>",
            "<row><c t=\"s\"><v>1</v></c></row>".repeat(3_000)
        );
        assert!(strings.len() < 100_000 && sheet.len() < 100_000);
        let (r, c) = read(&testing::workbook(&sheet, Some(&strings)), &limits);
        assert!(
            matches!(
                r,
                Err(ReadError::TooLarge {
                    cap: Cap::InflatedBytes,
                    limit: 150_000
                })
            ),
            "{r:?}"
        );
        assert!(c.bytes <= 150_000 + 64 * 1024, "{c:?}");
    }

    #[test]
    fn garbage_is_malformed() {
        let (r, _) = read(b"PK\x03\x04 not really", &SheetLimits::default());
        assert!(matches!(r, Err(ReadError::Malformed { .. })), "{r:?}");
    }
}
