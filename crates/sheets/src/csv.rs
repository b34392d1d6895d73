//! CSV: the one writer of the project (RFC 4180, with the formula guard) and the
//! capped reader.
//!
//! **Formula guard** (OWASP "CSV injection"): a spreadsheet runs a cell as a formula
//! when it starts with `=`, `+`, `-` or `@` — also after leading spaces or line breaks
//! in some programs — and `\t` / `\r` at the start are the OWASP list's other two
//! triggers. Such a field is written with a leading `'`, which spreadsheets show as
//! text and which [`unguard`] removes again when the file is imported.

use std::io::Read;

use crate::{Counters, ReadError, RowBuilder, SheetLimits, SheetRow};

/// Whether `field` needs the formula guard (see the module documentation).
#[must_use]
pub fn needs_guard(field: &str) -> bool {
    field.starts_with(['\t', '\r'])
        || field
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .starts_with(['=', '+', '-', '@'])
}

/// A field as written before the guard: `'=1+2` → `=1+2`; anything else unchanged.
#[must_use]
pub fn unguard(field: &str) -> &str {
    match field.strip_prefix('\'') {
        Some(rest) if needs_guard(rest) => rest,
        _ => field,
    }
}

/// Appends `field` as one CSV field: formula-guarded, and quoted (inner quotes
/// doubled) when it holds a comma, a quote, CR or LF.
pub fn push_field(buf: &mut String, field: &str) {
    let guarded;
    let field = if needs_guard(field) {
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
pub fn push_line<S: AsRef<str>>(buf: &mut String, cells: &[S]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            buf.push(',');
        }
        push_field(buf, c.as_ref());
    }
    buf.push_str("\r\n");
}

fn malformed(message: impl Into<String>) -> ReadError {
    ReadError::Malformed {
        format: "CSV",
        message: message.into(),
    }
}

/// Reads CSV (RFC 4180, UTF-8, a leading BOM dropped, records of any length) from
/// `input`, calling `each` for every record with a non-empty cell, the first (header)
/// record included; stops when `each` returns `false`. Every field is decoded into a
/// buffer of [`SheetLimits::max_cell_bytes`], so no field, record or line grows past
/// the caps in memory. `counters` is kept up to date while reading.
///
/// # Errors
/// [`ReadError`]: a cap exceeded (too many rows, columns, a cell or record too long),
/// invalid UTF-8, or the input's I/O error.
pub fn read_csv(
    input: impl Read,
    limits: &SheetLimits,
    counters: &mut Counters,
    mut each: impl FnMut(SheetRow) -> bool,
) -> Result<(), ReadError> {
    use csv_core::ReadFieldResult;
    let mut input = std::io::BufReader::with_capacity(64 * 1024, input);
    let mut reader = csv_core::ReaderBuilder::new().build();
    // One byte more than a cell may hold: a full buffer means "too long".
    let mut field = vec![0_u8; limits.max_cell_bytes + 1];
    let mut len = 0;
    let mut column: u64 = 0;
    let mut row: Option<RowBuilder> = None;
    let mut record_bytes = 0_usize;
    let mut records = 0_u64;
    let mut at_eof = false;
    loop {
        let chunk: &[u8] = if at_eof {
            &[]
        } else {
            std::io::BufRead::fill_buf(&mut input).map_err(|e| malformed(e.to_string()))?
        };
        if chunk.is_empty() {
            at_eof = true;
        }
        let (result, read, written) = reader.read_field(chunk, &mut field[len..]);
        std::io::BufRead::consume(&mut input, read);
        counters.bytes += read as u64;
        record_bytes += read;
        len += written;
        let number = records + 1;
        if record_bytes > limits.max_row_bytes {
            return Err(ReadError::RowTooLarge {
                row: number,
                limit: limits.max_row_bytes,
            });
        }
        match result {
            ReadFieldResult::InputEmpty => {}
            ReadFieldResult::OutputFull => {
                return Err(ReadError::CellTooLarge {
                    row: number,
                    column: column + 1,
                    limit: limits.max_cell_bytes,
                });
            }
            ReadFieldResult::Field { record_end } => {
                if len > limits.max_cell_bytes {
                    return Err(ReadError::CellTooLarge {
                        row: number,
                        column: column + 1,
                        limit: limits.max_cell_bytes,
                    });
                }
                let bytes = &field[..len];
                let bytes = if number == 1 && column == 0 {
                    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
                } else {
                    bytes
                };
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    malformed(format!(
                        "row {number}, column {}: not valid UTF-8",
                        column + 1
                    ))
                })?;
                let builder = row.get_or_insert_with(|| RowBuilder::new(number));
                builder.set(column, text.to_owned(), limits)?;
                len = 0;
                column += 1;
                if record_end {
                    records += 1;
                    column = 0;
                    record_bytes = 0;
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
            }
            ReadFieldResult::End => return Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use crate::Cap;

    fn read(bytes: &[u8], limits: &SheetLimits) -> (Result<Vec<SheetRow>, ReadError>, Counters) {
        let mut counters = Counters::default();
        let mut rows = Vec::new();
        let r = read_csv(bytes, limits, &mut counters, |r| {
            rows.push(r);
            true
        });
        (r.map(|()| rows), counters)
    }

    #[test]
    fn fields_are_quoted_and_formula_guarded() {
        let mut s = String::new();
        push_line(
            &mut s,
            &["a,b", "say \"hi\"", "=SUM(A1)", "plain", "\tx", " @x", "-1"],
        );
        assert_eq!(
            s,
            "\"a,b\",\"say \"\"hi\"\"\",'=SUM(A1),plain,'\tx,' @x,'-1\r\n"
        );
        for v in [
            "=1", "+1", "-1", "@a", "\tx", "\rx", "  =x", "\n+x", "plain",
        ] {
            let mut s = String::new();
            push_field(&mut s, v);
            let written = s.trim_matches('"').replace("\"\"", "\"");
            assert_eq!(unguard(&written), v, "{v:?} round-trips");
            assert_eq!(written.starts_with('\''), needs_guard(v), "{v:?}");
        }
        // A value typed as `'=x` reads back as `=x` (the guard's one ambiguity): text
        // either way in a spreadsheet.
        assert_eq!(unguard("'=x"), "=x");
    }

    #[test]
    fn records_read_with_row_numbers_bom_and_blank_lines() {
        let (rows, c) = read(
            b"\xEF\xBB\xBFemail,name\r\na@x.org,\"Ann, B\"\r\n\r\n,\r\nb@x.org\n",
            &SheetLimits::default(),
        );
        let rows = rows.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].cells, ["email", "name"]);
        assert_eq!((rows[1].number, rows[1].cells[1].as_str()), (2, "Ann, B"));
        // The record of empty fields keeps its number but is neither delivered nor
        // counted.
        assert_eq!((rows[2].number, rows[2].cells[0].as_str()), (4, "b@x.org"));
        assert_eq!(c.rows, 3);
    }

    #[test]
    fn too_many_rows_stop_at_the_cap() {
        let limits = SheetLimits {
            max_rows: 10,
            ..SheetLimits::default()
        };
        let mut body = b"email\n".to_vec();
        for i in 0..1_000 {
            body.extend(format!("p{i}@x.org\n").as_bytes());
        }
        let (r, c) = read(&body, &limits);
        assert!(matches!(
            r,
            Err(ReadError::TooLarge {
                cap: Cap::Rows,
                limit: 10
            })
        ));
        assert_eq!(c.rows, 11, "stopped at the first row past the cap");
        assert!(c.bytes < 64 * 1024 + 200, "read no further than one buffer");
    }

    #[test]
    fn a_huge_cell_or_too_many_columns_are_refused_early() {
        let limits = SheetLimits::default();
        let mut body = b"email,name\nx@y.org,".to_vec();
        body.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
        let (r, c) = read(&body, &limits);
        assert!(
            matches!(
                r,
                Err(ReadError::CellTooLarge {
                    row: 2,
                    column: 2,
                    limit: 4096
                })
            ),
            "{r:?}"
        );
        assert!(c.bytes < 128 * 1024, "{c:?}");

        let mut body = b"email\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', 1).chain(std::iter::repeat_n(b',', 1_000_000)));
        let (r, c) = read(&body, &limits);
        assert!(
            matches!(r, Err(ReadError::RowTooLarge { row: 2, .. })),
            "a line of a million empty fields: {r:?}"
        );
        assert!(c.bytes < 256 * 1024, "{c:?}");

        let mut body = b"email\n".to_vec();
        body.extend(std::iter::repeat_n(b"x,".as_slice(), 100).flatten());
        let (r, _) = read(&body, &limits);
        assert!(
            matches!(
                r,
                Err(ReadError::TooManyColumns {
                    row: 2,
                    column: 65,
                    limit: 64
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn a_long_record_is_refused() {
        let limits = SheetLimits {
            max_row_bytes: 100,
            ..SheetLimits::default()
        };
        let body = format!("a,b,c\n{},{}\n", "x".repeat(60), "y".repeat(60));
        let (r, _) = read(body.as_bytes(), &limits);
        assert!(
            matches!(r, Err(ReadError::RowTooLarge { row: 2, limit: 100 })),
            "{r:?}"
        );
    }

    #[test]
    fn the_callback_stops_the_read() {
        let mut body = b"email\n".to_vec();
        for i in 0..10_000 {
            body.extend(format!("p{i}@x.org\n").as_bytes());
        }
        let mut counters = Counters::default();
        let mut seen = 0;
        read_csv(
            body.as_slice(),
            &SheetLimits::default(),
            &mut counters,
            |_| {
                seen += 1;
                seen < 5
            },
        )
        .unwrap();
        assert_eq!(seen, 5);
        assert_eq!(counters.rows, 5);
    }
}
