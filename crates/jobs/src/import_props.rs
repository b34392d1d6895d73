//! Property tests of the import parser (the CSV reader and row validation): whatever a
//! file holds, parsing ends in rows or a clear error, never a panic, and what a CSV
//! writer wrote reads back cell for cell.

use std::path::PathBuf;

use permissions::BuiltinRole;
use proptest::prelude::*;

use crate::import::{RoleIndex, validate};
use crate::table::{RawRow, ReadError, SheetFormat, read_rows};

fn temp_file(bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ptoc-import-prop-{}.csv", uuid::Uuid::now_v7()));
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

fn read_all(bytes: &[u8]) -> Result<Vec<RawRow>, ReadError> {
    let path = temp_file(bytes);
    let mut rows = Vec::new();
    let result = read_rows(&path, SheetFormat::Csv, |r| {
        rows.push(r);
        true
    });
    let _ = std::fs::remove_file(&path);
    result.map(|()| rows)
}

/// Checks every row like the importer does: a candidate, or issues naming that row.
fn validate_all(rows: &[RawRow]) {
    let roles = RoleIndex::new(&[]);
    let mut last = 1;
    for raw in rows {
        assert!(
            raw.row > last,
            "row numbers increase: {} after {last}",
            raw.row
        );
        last = raw.row;
        if let Err(issues) = validate(raw, &roles, BuiltinRole::Admin) {
            assert!(!issues.is_empty());
            assert!(issues.iter().all(|i| i.row == raw.row));
        }
    }
}

/// A cell as the reader gives it back: trimmed, without the export's formula guard.
fn as_read(v: &str) -> &str {
    sheets::csv::unguard(v.trim()).trim()
}

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z .'-]{0,20}",
        "[a-z]{1,8}@[a-z]{1,8}\\.org",
        any::<String>().prop_map(|s| s.chars().take(30).collect()),
        Just("\"quoted, with comma\"\n and newline".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_parse_to_rows_or_a_clear_error(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = b"email,first_name,last_name,role\n".to_vec();
        bytes.extend(body);
        match read_all(&bytes) {
            Ok(rows) => validate_all(&rows),
            // A clear error: malformed (e.g. invalid UTF-8) or no e-mail column.
            Err(ReadError::Sheet(sheets::ReadError::Malformed { .. }) | ReadError::MissingColumn(_)) => {}
            // The header is fixed: no column twice, no cap reached by 400 bytes.
            Err(e @ (ReadError::DuplicateColumn { .. } | ReadError::Sheet(_))) => {
                prop_assert!(false, "unexpected refusal: {e}");
            }
        }
    }

    #[test]
    fn written_csv_reads_back_cell_for_cell(rows in proptest::collection::vec(proptest::collection::vec(cell(), 4), 1..12)) {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["email", "first_name", "last_name", "committee"]).expect("header");
        for r in &rows {
            w.write_record(r).expect("row");
        }
        let bytes = w.into_inner().expect("flush");
        let read = read_all(&bytes).expect("a well-formed CSV reads");
        // Rows whose cells are all blank are skipped; the others come back as read.
        let expected: Vec<(usize, &Vec<String>)> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.iter().any(|c| !as_read(c).is_empty()))
            .collect();
        prop_assert_eq!(read.len(), expected.len());
        for (raw, (i, cells)) in read.iter().zip(expected) {
            prop_assert_eq!(raw.row, i64::try_from(i).expect("small") + 2);
            for (name, value) in ["email", "first_name", "last_name", "committee"].iter().zip(cells) {
                prop_assert_eq!(raw.get(name), as_read(value));
            }
        }
        validate_all(&read);
    }
}
