//! Building XLSX files in tests, without fixtures: a minimal workbook around a sheet,
//! and zip entries whose deflate stream is crafted so that a few bytes inflate to
//! gigabytes (a zip bomb, millions of rows) without the test ever holding them.
//!
//! The zip container is written by hand (stored or deflated entries, no zip64), so the
//! declared sizes are whatever the test says — the reader must not trust them anyway.

/// One zip entry, ready to be written.
#[derive(Debug, Clone)]
pub struct Entry {
    name: String,
    /// 0 = stored, 8 = deflated.
    method: u16,
    data: Vec<u8>,
    crc: u32,
    size: u32,
}

/// An entry stored as it is.
#[must_use]
pub fn stored(name: &str, bytes: &[u8]) -> Entry {
    Entry {
        name: name.to_owned(),
        method: 0,
        data: bytes.to_vec(),
        crc: crc32fast::hash(bytes),
        size: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
    }
}

/// An entry deflated (as fixed-Huffman literals).
#[must_use]
pub fn deflated(name: &str, bytes: &[u8]) -> Entry {
    repeated(name, bytes, b"", 0, b"")
}

/// An entry whose content is `head`, then `pattern` `times` times, then `tail`,
/// deflated as one fixed-Huffman block: the pattern once as literals, the rest as
/// back-references of 258 bytes each (about 13 bits per 258 bytes). The pattern must
/// be at most 32 KiB; the content must stay under 4 GiB.
#[must_use]
pub fn repeated(name: &str, head: &[u8], pattern: &[u8], times: u64, tail: &[u8]) -> Entry {
    let mut bits = Bits::default();
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman codes
    for &b in head {
        bits.literal(b);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(head);
    if times > 0 && !pattern.is_empty() {
        for &b in pattern {
            bits.literal(b);
        }
        let len = pattern.len() as u64;
        let mut left = len * (times - 1);
        let distance = u32::try_from(len).unwrap_or(u32::MAX);
        let mut copied = 0_u64;
        while left >= 258 {
            bits.match_258(distance);
            left -= 258;
            copied += 258;
        }
        for j in 0..left {
            let at = usize::try_from((copied + j) % len).unwrap_or_default();
            bits.literal(pattern[at]);
        }
        // CRC of the repetitions without producing them: combine by doubling.
        let mut unit = crc32fast::Hasher::new();
        unit.update(pattern);
        let mut n = times;
        let mut acc = crc32fast::Hasher::new();
        while n > 0 {
            if n & 1 == 1 {
                acc.combine(&unit);
            }
            let twice = unit.clone();
            unit.combine(&twice);
            n >>= 1;
        }
        crc.combine(&acc);
    }
    for &b in tail {
        bits.literal(b);
    }
    crc.update(tail);
    bits.code(0, 7); // end of block
    let size = crc.total_len();
    Entry {
        name: name.to_owned(),
        method: 8,
        data: bits.finish(),
        crc: crc.finalize(),
        size: u32::try_from(size).unwrap_or(u32::MAX),
    }
}

/// A zip archive of `entries`.
#[must_use]
pub fn zip(entries: &[Entry]) -> Vec<u8> {
    fn u16le(out: &mut Vec<u8>, v: u16) {
        out.extend(v.to_le_bytes());
    }
    fn u32le(out: &mut Vec<u8>, v: u32) {
        out.extend(v.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let name_len = u16::try_from(e.name.len()).unwrap_or(u16::MAX);
        let compressed = u32::try_from(e.data.len()).unwrap_or(u32::MAX);
        u32le(&mut out, 0x0403_4b50);
        for v in [20, 0, e.method, 0, 0x21] {
            u16le(&mut out, v);
        }
        for v in [e.crc, compressed, e.size] {
            u32le(&mut out, v);
        }
        u16le(&mut out, name_len);
        u16le(&mut out, 0);
        out.extend(e.name.as_bytes());
        out.extend(&e.data);

        u32le(&mut central, 0x0201_4b50);
        for v in [20, 20, 0, e.method, 0, 0x21] {
            u16le(&mut central, v);
        }
        for v in [e.crc, compressed, e.size] {
            u32le(&mut central, v);
        }
        for v in [name_len, 0, 0, 0, 0] {
            u16le(&mut central, v);
        }
        u32le(&mut central, 0);
        u32le(&mut central, offset);
        central.extend(e.name.as_bytes());
    }
    let cd_offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let cd_size = u32::try_from(central.len()).unwrap_or(u32::MAX);
    out.extend(central);
    let n = u16::try_from(entries.len()).unwrap_or(u16::MAX);
    u32le(&mut out, 0x0605_4b50);
    for v in [0, 0, n, n] {
        u16le(&mut out, v);
    }
    u32le(&mut out, cd_size);
    u32le(&mut out, cd_offset);
    u16le(&mut out, 0);
    out
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const WORKBOOK: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Members" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
const WORKBOOK_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;

/// A workbook whose first sheet is `sheet` (the sheet entry, named
/// `xl/worksheets/sheet1.xml`), with `shared_strings` as `xl/sharedStrings.xml`.
#[must_use]
pub fn workbook_with_sheet_entry(sheet: Entry, shared_strings: Option<Entry>) -> Vec<u8> {
    let mut entries = vec![
        stored("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        stored("_rels/.rels", RELS.as_bytes()),
        deflated("xl/workbook.xml", WORKBOOK.as_bytes()),
        stored("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.as_bytes()),
        sheet,
    ];
    entries.extend(shared_strings);
    zip(&entries)
}

/// A workbook whose first sheet's XML is `sheet`, with the shared-strings XML
/// `shared_strings` (both deflated).
#[must_use]
pub fn workbook(sheet: &str, shared_strings: Option<&str>) -> Vec<u8> {
    workbook_with_sheet_entry(
        deflated("xl/worksheets/sheet1.xml", sheet.as_bytes()),
        shared_strings.map(|s| deflated("xl/sharedStrings.xml", s.as_bytes())),
    )
}

/// Escapes text for XML.
#[must_use]
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A cell reference: column (0-based) and row (1-based) as `A1`.
#[must_use]
pub fn cell_ref(column: u64, row: u64) -> String {
    let mut letters = Vec::new();
    let mut c = column + 1;
    while c > 0 {
        let rem = u8::try_from((c - 1) % 26).unwrap_or_default();
        letters.push(b'A' + rem);
        c = (c - 1) / 26;
    }
    letters.reverse();
    format!("{}{row}", String::from_utf8_lossy(&letters))
}

/// A sheet of inline-string rows (row `i` of `rows` is row `i + 1`).
#[must_use]
pub fn sheet_xml<S: AsRef<str>>(rows: &[Vec<S>]) -> String {
    let mut xml = String::from("<worksheet><sheetData>");
    for (i, row) in rows.iter().enumerate() {
        let r = i as u64 + 1;
        xml.push_str(&format!("<row r=\"{r}\">"));
        for (j, v) in row.iter().enumerate() {
            xml.push_str(&format!(
                "<c r=\"{}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                cell_ref(j as u64, r),
                escape(v.as_ref())
            ));
        }
        xml.push_str("</row>");
    }
    xml.push_str("</sheetData></worksheet>");
    xml
}

/// A deflate bit stream (LSB first; Huffman codes MSB first).
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push((self.acc & 0xff) as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code of `len` bits, most significant first.
    fn code(&mut self, code: u32, len: u32) {
        let reversed = code.reverse_bits() >> (32 - len);
        self.put(reversed, len);
    }

    fn literal(&mut self, b: u8) {
        let b = u32::from(b);
        if b < 144 {
            self.code(0x30 + b, 8);
        } else {
            self.code(0x190 + (b - 144), 9);
        }
    }

    /// A back-reference of 258 bytes at `distance` (1..=32768).
    fn match_258(&mut self, distance: u32) {
        const BASE: [u32; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const EXTRA: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        self.code(0xC5, 8); // length symbol 285 = 258 bytes
        let i = BASE
            .iter()
            .rposition(|&b| b <= distance)
            .unwrap_or_default();
        self.code(u32::try_from(i).unwrap_or_default(), 5);
        self.put(distance - BASE[i], EXTRA[i]);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push((self.acc & 0xff) as u8);
        }
        self.out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn crafted_entries_inflate_to_what_they_say() {
        for (head, pattern, times, tail) in [
            (&b"<a>"[..], &b" "[..], 1_000_u64, &b"</a>"[..]),
            (b"", b"<row><c><v>1</v></c></row>", 777, b"!"),
            (b"h", b"\xff\x00xyz", 3, b""),
            (b"only literals", b"", 0, b""),
        ] {
            let e = repeated("x.xml", head, pattern, times, tail);
            let file = zip(&[e]);
            let mut z = zip::ZipArchive::new(std::io::Cursor::new(file)).unwrap();
            let mut out = Vec::new();
            z.by_index(0).unwrap().read_to_end(&mut out).unwrap();
            let mut expected = head.to_vec();
            for _ in 0..times {
                expected.extend(pattern);
            }
            expected.extend(tail);
            assert_eq!(out, expected);
        }
        assert_eq!(cell_ref(0, 1), "A1");
        assert_eq!(cell_ref(16_383, 1_048_576), "XFD1048576");
    }
}
