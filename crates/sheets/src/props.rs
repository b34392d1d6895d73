//! The reader's fuzz target, as property tests in the normal test run (bounded: 256
//! small cases per property, seconds in all; see [`cases`]): random workbooks (random sheet
//! XML with random cell references, huge ones included, random shared strings, random
//! sizes; truncated and corrupted zips) and random CSV bytes, read under random small
//! caps. Whatever the input, the reader never panics and never goes past a cap: rows
//! delivered ≤ `max_rows + 1` (the header), cells ≤ `max_cell_bytes`, rows ≤
//! `max_columns` cells, inflated bytes ≤ the cap plus one read buffer, shared strings
//! within theirs. Well-formed files within the caps read back exactly.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::testing::{self, cell_ref, escape};
use crate::{Counters, ReadError, SheetLimits, SheetRow, read_csv, read_xlsx};

/// The guard's read buffer: how far the inflated count may pass its cap before the
/// read that crossed it is refused.
const READ_SLACK: u64 = 64 * 1024;

fn limits() -> impl Strategy<Value = SheetLimits> {
    (
        0_u64..30,
        1_usize..12,
        1_usize..64,
        16_usize..512,
        (64_u64..20_000, 64_u64..30_000),
        (0_usize..20, 0_u64..300),
        16_usize..2_000,
    )
        .prop_map(
            |(rows, columns, cell, row, (entry, total), (strings, string_bytes), token)| {
                SheetLimits {
                    max_rows: rows,
                    max_columns: columns,
                    max_cell_bytes: cell,
                    max_row_bytes: row,
                    max_entry_inflated_bytes: entry,
                    max_total_inflated_bytes: total,
                    max_shared_strings: strings,
                    max_shared_strings_bytes: string_bytes,
                    max_zip_entries: 10,
                    max_xml_token_bytes: token,
                }
            },
        )
}

fn check_caps(rows: &[SheetRow], c: &Counters, limits: &SheetLimits) {
    assert!(
        rows.len() as u64 <= limits.max_rows + 1,
        "{} rows",
        rows.len()
    );
    assert_eq!(rows.len() as u64, c.rows);
    for r in rows {
        assert!(
            r.cells.len() <= limits.max_columns,
            "{} cells",
            r.cells.len()
        );
        assert!(r.cells.iter().all(|c| c.len() <= limits.max_cell_bytes));
        assert!(r.cells.iter().map(String::len).sum::<usize>() <= limits.max_row_bytes);
    }
    assert!(c.largest_cell <= limits.max_cell_bytes);
    assert!(c.widest_row <= limits.max_columns);
    assert!(c.shared_strings <= limits.max_shared_strings as u64);
    assert!(c.shared_string_bytes <= limits.max_shared_strings_bytes);
}

fn read_x(bytes: &[u8], limits: &SheetLimits) -> (Result<(), ReadError>, Vec<SheetRow>, Counters) {
    let mut counters = Counters::default();
    let mut rows = Vec::new();
    let r = read_xlsx(std::io::Cursor::new(bytes), limits, &mut counters, |r| {
        rows.push(r);
        true
    });
    check_caps(&rows, &counters, limits);
    assert!(
        counters.bytes <= limits.max_total_inflated_bytes + READ_SLACK,
        "{counters:?}"
    );
    (r, rows, counters)
}

fn read_c(bytes: &[u8], limits: &SheetLimits) -> (Result<(), ReadError>, Vec<SheetRow>) {
    let mut counters = Counters::default();
    let mut rows = Vec::new();
    let r = read_csv(bytes, limits, &mut counters, |r| {
        rows.push(r);
        true
    });
    check_caps(&rows, &counters, limits);
    (r, rows)
}

/// A column: mostly small, sometimes far right or at Excel's last column.
fn column() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0_u64..12, 1 => 12_u64..1_000, 1 => Just(16_383_u64)]
}

fn row_number() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 1_u64..40, 1 => Just(1_048_576_u64), 1 => any::<u64>()]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => (1_usize..3_000).prop_map(|n| "w".repeat(n)),
        6 => "[a-zA-Z0-9 @.&<>\"']{0,12}",
        3 => any::<String>().prop_map(|s| s.chars().filter(|c| !c.is_control()).take(40).collect()),
    ]
}

#[derive(Debug, Clone)]
enum Value {
    Inline(String),
    Shared(usize),
    Number(f64),
    Bool(bool),
    Raw(String),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::Inline),
        (0_usize..20).prop_map(Value::Shared),
        any::<f64>().prop_map(Value::Number),
        any::<bool>().prop_map(Value::Bool),
        "[<>&;#a-z0-9 =\"/]{0,30}".prop_map(Value::Raw),
    ]
}

fn cell_xml(out: &mut String, reference: Option<String>, v: &Value) {
    let r = reference.map(|r| format!(" r=\"{r}\"")).unwrap_or_default();
    match v {
        Value::Inline(s) => out.push_str(&format!(
            "<c{r} t=\"inlineStr\"><is><t>{}</t></is></c>",
            escape(s)
        )),
        Value::Shared(i) => out.push_str(&format!("<c{r} t=\"s\"><v>{i}</v></c>")),
        Value::Number(f) => out.push_str(&format!("<c{r}><v>{f}</v></c>")),
        Value::Bool(b) => out.push_str(&format!("<c{r} t=\"b\"><v>{}</v></c>", u8::from(*b))),
        Value::Raw(s) => out.push_str(&format!("<c{r}>{s}</c>")),
    }
}

type RandomRow = (Option<u64>, Vec<(Option<u64>, Value)>);

fn sheet(rows: &[RandomRow]) -> String {
    let mut xml = String::from("<worksheet><dimension ref=\"A1:XFD1048576\"/><sheetData>");
    for (number, cells) in rows {
        match number {
            Some(n) => xml.push_str(&format!("<row r=\"{n}\">")),
            None => xml.push_str("<row>"),
        }
        for (col, v) in cells {
            let reference = col.map(|c| cell_ref(c, number.unwrap_or(1)));
            cell_xml(&mut xml, reference, v);
        }
        xml.push_str("</row>");
    }
    xml.push_str("</sheetData></worksheet>");
    xml
}

fn shared(strings: &[String]) -> String {
    let mut xml = String::from("<sst count=\"4294967295\" uniqueCount=\"4294967295\">");
    for s in strings {
        xml.push_str(&format!("<si><t>{}</t></si>", escape(s)));
    }
    xml.push_str("</sst>");
    xml
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(Damage::Flip),
    ]
}

fn apply(mut file: Vec<u8>, d: &Damage) -> Vec<u8> {
    match d {
        Damage::None => {}
        Damage::Truncate(at) => file.truncate(at % (file.len() + 1)),
        Damage::Flip(flips) => {
            let n = file.len();
            for (at, b) in flips {
                file[at % n] ^= b | 1;
            }
        }
    }
    file
}

/// Well-formed, within the caps: what the model says each row holds.
fn model_rows(rows: &[Vec<(u64, String)>]) -> Vec<(u64, BTreeMap<u64, String>)> {
    rows.iter()
        .enumerate()
        .map(|(i, cells)| {
            let cells: BTreeMap<u64, String> = cells
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .cloned()
                .collect();
            (i as u64 + 1, cells)
        })
        .filter(|(_, c)| !c.is_empty())
        .collect()
}

/// Cases per property: 256 by default (a few seconds in all); `SHEETS_FUZZ_CASES`
/// runs longer (`SHEETS_FUZZ_CASES=100000 cargo nextest run -p sheets props`).
fn cases() -> u32 {
    std::env::var("SHEETS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_workbooks_never_panic_nor_pass_a_cap(
        rows in proptest::collection::vec(
            (proptest::option::of(row_number()), proptest::collection::vec((proptest::option::of(column()), value()), 0..8)),
            0..24,
        ),
        strings in proptest::option::of(proptest::collection::vec(text(), 0..24)),
        d in damage(),
        limits in limits(),
    ) {
        let file = testing::workbook(&sheet(&rows), strings.as_deref().map(shared).as_deref());
        let _ = read_x(&apply(file, &d), &limits);
    }

    #[test]
    fn random_bytes_as_xlsx_or_csv_never_panic_nor_pass_a_cap(
        bytes in proptest::collection::vec(any::<u8>(), 0..2_000),
        limits in limits(),
    ) {
        let _ = read_x(&bytes, &limits);
        let _ = read_c(&bytes, &limits);
        // The same bytes as a sheet and as shared strings inside a valid zip.
        let text = String::from_utf8_lossy(&bytes);
        let _ = read_x(&testing::workbook(&text, Some(&text)), &limits);
    }

    #[test]
    fn random_csv_never_panics_nor_passes_a_cap(
        records in proptest::collection::vec(proptest::collection::vec(text(), 0..10), 0..24),
        junk in proptest::collection::vec(any::<u8>(), 0..64),
        limits in limits(),
    ) {
        let mut body = Vec::new();
        for r in &records {
            body.extend(r.iter().map(|c| format!("\"{}\"", c.replace('"', "\"\""))).collect::<Vec<_>>().join(",").as_bytes());
            body.extend(b"\r\n");
        }
        body.extend(junk);
        let _ = read_c(&body, &limits);
    }

    #[test]
    fn well_formed_workbooks_within_the_caps_read_back_exactly(
        rows in proptest::collection::vec(
            proptest::collection::btree_map(0_u64..10, "[a-zA-Z0-9 @.&<>\"']{0,12}", 0..6),
            0..20,
        ),
        shared_strings in any::<bool>(),
    ) {
        let rows: Vec<Vec<(u64, String)>> = rows.into_iter().map(|m| m.into_iter().collect()).collect();
        let mut strings = Vec::new();
        let mut xml = String::from("<worksheet><sheetData>");
        for (i, cells) in rows.iter().enumerate() {
            let n = i as u64 + 1;
            xml.push_str(&format!("<row r=\"{n}\">"));
            for (col, v) in cells {
                let v = if shared_strings {
                    strings.push(v.clone());
                    Value::Shared(strings.len() - 1)
                } else {
                    Value::Inline(v.clone())
                };
                cell_xml(&mut xml, Some(cell_ref(*col, n)), &v);
            }
            xml.push_str("</row>");
        }
        xml.push_str("</sheetData></worksheet>");
        let file = testing::workbook(&xml, shared_strings.then(|| shared(&strings)).as_deref());
        let limits = SheetLimits::default();
        let (r, got, _) = read_x(&file, &limits);
        prop_assert!(r.is_ok(), "{r:?}");
        let got: Vec<(u64, BTreeMap<u64, String>)> = got
            .into_iter()
            .map(|r| {
                let cells = r.cells.into_iter().enumerate().filter(|(_, v)| !v.is_empty()).map(|(i, v)| (i as u64, v)).collect();
                (r.number, cells)
            })
            .collect();
        prop_assert_eq!(got, model_rows(&rows));
    }
}
