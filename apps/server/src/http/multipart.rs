//! A small streaming reader of `multipart/form-data` bodies (RFC 7578 over RFC 2046):
//! fed the body chunk by chunk, it yields each part's headers and then its data in
//! pieces, keeping in memory only what may still be the start of a boundary (and a
//! part's header block, capped at [`MAX_PART_HEADER_BYTES`]). It knows nothing of
//! what the parts mean: the upload extractor decides which parts it accepts.

use actix_web::web::{Bytes, BytesMut};

/// The cap on one part's header block (all its header lines together).
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;

/// The longest boundary RFC 2046 allows.
const MAX_BOUNDARY_LEN: usize = 70;

/// How far past a delimiter the end of its line may be (transport padding).
const MAX_PADDING: usize = 64;

/// Why a multipart body (or its `Content-Type`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The `Content-Type` has no `boundary` parameter.
    #[error("the multipart/form-data Content-Type has no boundary parameter")]
    MissingBoundary,
    /// The boundary is empty, longer than 70 characters or has characters RFC 2046
    /// does not allow.
    #[error(
        "the multipart boundary is invalid: 1 to 70 letters, digits or '()+_,-./:=? (no trailing space)"
    )]
    InvalidBoundary,
    /// The `Content-Type` header itself could not be parsed.
    #[error("the Content-Type header could not be parsed")]
    BadContentType,
    /// A boundary line is followed by something other than the end of the line or `--`.
    #[error(
        "a multipart boundary line is malformed (the boundary appears inside a part, or text follows it)"
    )]
    BadBoundaryLine,
    /// The body ended before the closing boundary (`--boundary--`).
    #[error("the multipart body ends before its closing boundary")]
    Truncated,
    /// A part's header block is longer than [`MAX_PART_HEADER_BYTES`].
    #[error("a part's headers exceed {MAX_PART_HEADER_BYTES} bytes")]
    HeadersTooLarge,
    /// A part's header line is not `Name: value` (or is not UTF-8, or folded).
    #[error("a part has a malformed header line")]
    BadHeader,
    /// A part has no `Content-Disposition: form-data; name="…"` (or two of them).
    #[error("each part needs one Content-Disposition: form-data header with a name")]
    BadDisposition,
    /// A part names a `Content-Transfer-Encoding` other than 7bit, 8bit or binary.
    #[error("a part uses a Content-Transfer-Encoding (only 7bit, 8bit or binary are read)")]
    UnsupportedEncoding,
}

impl MultipartError {
    /// A stable machine code for the error (the field error's `code`).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::MissingBoundary => "missing_boundary",
            Self::InvalidBoundary => "invalid_boundary",
            Self::BadContentType => "invalid_content_type",
            Self::HeadersTooLarge => "part_headers_too_large",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::BadBoundaryLine | Self::Truncated | Self::BadHeader | Self::BadDisposition => {
                "malformed_multipart"
            }
        }
    }
}

/// A media type split into its lower-cased `type/subtype` and its parameters (names
/// lower-cased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lower-cased.
    pub essence: String,
    /// The parameters in order.
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// Parses a `Content-Type` value.
    ///
    /// # Errors
    /// [`MultipartError::BadContentType`] for a value that is not `type/subtype *(; name=value)`.
    pub fn parse(value: &str) -> Result<Self, MultipartError> {
        let (essence, rest) = value.split_once(';').unwrap_or((value, ""));
        let essence = essence.trim().to_ascii_lowercase();
        let Some((t, s)) = essence.split_once('/') else {
            return Err(MultipartError::BadContentType);
        };
        if !is_token(t) || !is_token(s) {
            return Err(MultipartError::BadContentType);
        }
        let params = parse_params(rest).ok_or(MultipartError::BadContentType)?;
        Ok(Self { essence, params })
    }

    /// The first value of parameter `name` (lower-case).
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The boundary of a `multipart/*` type, checked against RFC 2046.
    ///
    /// # Errors
    /// [`MultipartError::MissingBoundary`] or [`MultipartError::InvalidBoundary`].
    pub fn boundary(&self) -> Result<&str, MultipartError> {
        let b = self
            .param("boundary")
            .ok_or(MultipartError::MissingBoundary)?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
        if b.is_empty() || b.len() > MAX_BOUNDARY_LEN || !b.chars().all(allowed) || b.ends_with(' ')
        {
            return Err(MultipartError::InvalidBoundary);
        }
        if self.params.iter().filter(|(n, _)| n == "boundary").count() > 1 {
            return Err(MultipartError::InvalidBoundary);
        }
        Ok(b)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses `*(; name=value)` with token or quoted-string values (`\x` unescapes to
/// `x`); `None` when malformed. A trailing `;` is tolerated.
fn parse_params(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', '\t', ';']);
        if s.is_empty() {
            return Some(out);
        }
        let (name, rest) = s.split_once('=')?;
        let name = name.trim();
        if !is_token(name) {
            return None;
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (value, rest) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => value.push(chars.next()?.1),
                    c => value.push(c),
                }
            }
            (value, &quoted[end?..])
        } else {
            let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
            let value = &rest[..end];
            if value.is_empty() {
                return None;
            }
            (value.to_owned(), &rest[end..])
        };
        let rest = rest.trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(';')) {
            return None;
        }
        out.push((name.to_ascii_lowercase(), value));
        s = rest;
    }
}

/// One part's headers, as far as `multipart/form-data` uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeaders {
    /// The form field's name (`Content-Disposition: form-data; name="…"`).
    pub name: String,
    /// The file name, when given (`filename`, else `filename*` as sent).
    pub filename: Option<String>,
    /// The part's own `Content-Type`, when given.
    pub content_type: Option<String>,
}

impl PartHeaders {
    fn parse(block: &[u8]) -> Result<Self, MultipartError> {
        let text = std::str::from_utf8(block).map_err(|_| MultipartError::BadHeader)?;
        let mut disposition = None;
        let mut content_type = None;
        for line in text.split("\r\n").filter(|_| !text.is_empty()) {
            if line.starts_with([' ', '\t']) || line.chars().any(|c| c.is_control() && c != '\t') {
                return Err(MultipartError::BadHeader);
            }
            let (name, value) = line.split_once(':').ok_or(MultipartError::BadHeader)?;
            if !is_token(name) {
                return Err(MultipartError::BadHeader);
            }
            let value = value.trim_matches([' ', '\t']);
            let name = name.to_ascii_lowercase();
            let refused = match name.as_str() {
                "content-disposition" => disposition
                    .replace(value)
                    .map(|_| MultipartError::BadDisposition),
                "content-type" => content_type
                    .replace(value.to_owned())
                    .map(|_| MultipartError::BadHeader),
                "content-transfer-encoding" => (!["7bit", "8bit", "binary"]
                    .iter()
                    .any(|e| value.eq_ignore_ascii_case(e)))
                .then_some(MultipartError::UnsupportedEncoding),
                _ => None,
            };
            if let Some(e) = refused {
                return Err(e);
            }
        }
        let disposition = disposition.ok_or(MultipartError::BadDisposition)?;
        let (kind, rest) = disposition.split_once(';').unwrap_or((disposition, ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return Err(MultipartError::BadDisposition);
        }
        let params = parse_params(rest).ok_or(MultipartError::BadDisposition)?;
        let one = |key: &str| -> Result<Option<String>, MultipartError> {
            let mut found = params.iter().filter(|(n, _)| n == key);
            let first = found.next().map(|(_, v)| v.clone());
            if found.next().is_some() {
                return Err(MultipartError::BadDisposition);
            }
            Ok(first)
        };
        let name = one("name")?.ok_or(MultipartError::BadDisposition)?;
        let filename = match one("filename")? {
            Some(f) => Some(f),
            None => one("filename*")?,
        };
        Ok(Self {
            name,
            filename,
            content_type,
        })
    }
}

/// What the reader found next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A part begins.
    Part(PartHeaders),
    /// Some of the current part's data (never empty).
    Data(Bytes),
    /// The current part ended.
    PartEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary (the preamble is skipped).
    Preamble,
    /// Just after a delimiter: `--` closes the body, else the end of the line.
    AfterDelimiter,
    /// Reading a part's header block.
    Headers,
    /// Reading a part's data.
    Body,
    /// A part's data ended at a delimiter; [`Event::PartEnd`] is next.
    BodyEnded,
    /// After the closing delimiter (the epilogue is skipped).
    Done,
}

/// The reader: [`push`](Self::push) chunks in, take [`next_event`](Self::next_event)s
/// out until it answers `None`, and at the end of the body call
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct MultipartReader {
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
    /// Where the search for the end of the header block resumes (bytes before it were
    /// searched already), so a block sent a byte at a time is still read in linear time.
    header_scan: usize,
}

impl MultipartReader {
    /// A reader for `boundary` (already checked by [`ContentType::boundary`]).
    #[must_use]
    pub fn new(boundary: &str) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first boundary may open the body without a line break before it.
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"\r\n");
        Self {
            delimiter,
            buf,
            state: State::Preamble,
            header_scan: 0,
        }
    }

    /// Adds the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.state == State::Done {
            return;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held that may still be (the start of) a delimiter or a header block.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next event from what was pushed so far; `None` when more input is needed
    /// (or the body is complete).
    ///
    /// # Errors
    /// A [`MultipartError`] for a malformed body; the reader is then unusable.
    pub fn next_event(&mut self) -> Result<Option<Event>, MultipartError> {
        loop {
            match self.state {
                State::Done => {
                    self.buf.clear();
                    return Ok(None);
                }
                State::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(i) => {
                        let _ = self.buf.split_to(i + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let _ = self.buf.split_to(self.buf.len() - keep);
                        }
                        return Ok(None);
                    }
                },
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        continue;
                    }
                    let Some(eol) = find(&self.buf, b"\r\n") else {
                        if self.buf.len() > MAX_PADDING
                            || self.buf.iter().any(|b| !matches!(b, b' ' | b'\t' | b'\r'))
                        {
                            return Err(MultipartError::BadBoundaryLine);
                        }
                        return Ok(None);
                    };
                    if self.buf[..eol].iter().any(|b| !matches!(b, b' ' | b'\t')) {
                        return Err(MultipartError::BadBoundaryLine);
                    }
                    let _ = self.buf.split_to(eol + 2);
                    self.state = State::Headers;
                }
                State::Headers => {
                    let from = self.header_scan;
                    let block_end = if self.buf.starts_with(b"\r\n") {
                        Some((0, 2))
                    } else {
                        find(&self.buf[from..], b"\r\n\r\n").map(|i| (from + i, from + i + 4))
                    };
                    let Some((end, skip)) = block_end else {
                        if self.buf.len() > MAX_PART_HEADER_BYTES + 4 {
                            return Err(MultipartError::HeadersTooLarge);
                        }
                        self.header_scan = self.buf.len().saturating_sub(3);
                        return Ok(None);
                    };
                    self.header_scan = 0;
                    if end > MAX_PART_HEADER_BYTES {
                        return Err(MultipartError::HeadersTooLarge);
                    }
                    let headers = PartHeaders::parse(&self.buf[..end])?;
                    let _ = self.buf.split_to(skip);
                    self.state = State::Body;
                    return Ok(Some(Event::Part(headers)));
                }
                State::Body => match find(&self.buf, &self.delimiter) {
                    Some(i) => {
                        let data = self.buf.split_to(i).freeze();
                        let _ = self.buf.split_to(self.delimiter.len());
                        self.state = State::BodyEnded;
                        if !data.is_empty() {
                            return Ok(Some(Event::Data(data)));
                        }
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() <= keep {
                            return Ok(None);
                        }
                        let data = self.buf.split_to(self.buf.len() - keep).freeze();
                        return Ok(Some(Event::Data(data)));
                    }
                },
                State::BodyEnded => {
                    self.state = State::AfterDelimiter;
                    return Ok(Some(Event::PartEnd));
                }
            }
        }
    }

    /// Ends the body: every event must have been taken.
    ///
    /// # Errors
    /// [`MultipartError::Truncated`] unless the closing boundary was read.
    pub fn finish(&self) -> Result<(), MultipartError> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(MultipartError::Truncated)
        }
    }
}

/// The first position of `needle` in `hay`. Linear for delimiters: they start with
/// `\r` and hold no other, so candidate matches never overlap.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(p) = hay[from..].iter().position(|&b| b == first) {
        let at = from + p;
        if hay.len() - at < needle.len() {
            return None;
        }
        if &hay[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Reads `body` fed in pieces of the given sizes; returns the parts (headers and
    /// data) or the first error.
    fn read(
        boundary: &str,
        body: &[u8],
        pieces: &[usize],
    ) -> Result<Vec<(PartHeaders, Vec<u8>)>, MultipartError> {
        let mut r = MultipartReader::new(boundary);
        let mut parts: Vec<(PartHeaders, Vec<u8>)> = Vec::new();
        let mut open = false;
        let mut rest = body;
        let mut sizes = pieces.iter().copied().cycle();
        loop {
            let n = sizes
                .next()
                .unwrap_or(rest.len())
                .clamp(1, rest.len().max(1));
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            r.push(chunk);
            while let Some(e) = r.next_event()? {
                match e {
                    Event::Part(h) => {
                        assert!(!open);
                        open = true;
                        parts.push((h, Vec::new()));
                    }
                    Event::Data(d) => {
                        assert!(open && !d.is_empty());
                        parts.last_mut().unwrap().1.extend_from_slice(&d);
                    }
                    Event::PartEnd => {
                        assert!(open);
                        open = false;
                    }
                }
                assert!(r.buffered() <= MAX_PART_HEADER_BYTES + 4 + chunk.len() + 80);
            }
            if rest.is_empty() {
                break;
            }
        }
        r.finish()?;
        assert!(!open);
        Ok(parts)
    }

    fn body(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"preamble to skip\r\n".to_vec();
        for (headers, data) in parts {
            out.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\nepilogue").as_bytes());
        out
    }

    #[test]
    fn reads_parts_with_their_headers() {
        let b = "----form 'x'(1)";
        let data = b"email\r\na@b.test\r\n--not the boundary\r\n\r\n".as_slice();
        let input = body(
            b,
            &[(
                "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".csv\"\r\nContent-Type: text/csv",
                data,
            )],
        );
        for pieces in [&[1][..], &[2], &[7], &[1000]] {
            let parts = read(b, &input, pieces).unwrap();
            assert_eq!(parts.len(), 1);
            assert_eq!(parts[0].0.name, "file");
            assert_eq!(parts[0].0.filename.as_deref(), Some("a \"b\".csv"));
            assert_eq!(parts[0].0.content_type.as_deref(), Some("text/csv"));
            assert_eq!(parts[0].1, data);
        }
    }

    #[test]
    fn body_may_open_with_the_boundary_and_parts_may_be_empty() {
        let input = b"--b\r\ncontent-disposition: form-data; name=a\r\n\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\nx\r\n--b--";
        let parts = read("b", input, &[3]).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].0.name.as_str(), parts[0].1.len()), ("a", 0));
        assert_eq!(
            (parts[1].0.name.as_str(), parts[1].1.as_slice()),
            ("c", &b"x"[..])
        );
        // No parts at all.
        assert_eq!(read("b", b"--b--", &[1]).unwrap(), vec![]);
    }

    #[test]
    fn refuses_malformed_bodies() {
        let cd = "Content-Disposition: form-data; name=\"file\"";
        let ok = body("b", &[(cd, b"x")]);
        // Truncated anywhere before the closing boundary.
        for cut in [0, 5, ok.len() - 12] {
            assert_eq!(
                read("b", &ok[..cut], &[4]),
                Err(MultipartError::Truncated),
                "{cut}"
            );
        }
        // No boundary at all.
        assert_eq!(
            read("b", b"just a csv\r\n", &[4]),
            Err(MultipartError::Truncated)
        );
        // The boundary followed by other text.
        assert_eq!(
            read(
                "b",
                b"--b\r\nContent-Disposition: form-data; name=f\r\n\r\nx\r\n--bb\r\n",
                &[4]
            ),
            Err(MultipartError::BadBoundaryLine)
        );
        // No disposition, not form-data, no name, a name twice.
        for h in [
            "Content-Type: text/csv",
            "Content-Disposition: attachment; name=file",
            "Content-Disposition: form-data; filename=a.csv",
            "Content-Disposition: form-data; name=a; name=b",
            "Content-Disposition: form-data; name=\"unterminated",
        ] {
            assert_eq!(
                read("b", &body("b", &[(h, b"x")]), &[5]),
                Err(MultipartError::BadDisposition),
                "{h}"
            );
        }
        for h in [
            format!("{cd}\r\n folded"),
            format!("{cd}\r\nno colon"),
            format!("{cd}\r\nX-Ctl: a\u{1}b"),
        ] {
            assert_eq!(
                read("b", &body("b", &[(&h, b"x")]), &[5]),
                Err(MultipartError::BadHeader),
                "{h}"
            );
        }
        assert_eq!(
            read(
                "b",
                &body(
                    "b",
                    &[(
                        &format!("{cd}\r\nContent-Transfer-Encoding: base64"),
                        b"eA=="
                    )]
                ),
                &[5]
            ),
            Err(MultipartError::UnsupportedEncoding)
        );
        // A part without headers.
        assert_eq!(
            read("b", b"--b\r\n\r\nx\r\n--b--", &[3]),
            Err(MultipartError::BadDisposition)
        );
        // Endless headers: refused at the cap, holding no more than it.
        let mut endless = b"--b\r\nX-Long: ".to_vec();
        endless.extend(std::iter::repeat_n(b'a', 1 << 20));
        assert_eq!(
            read("b", &endless, &[1024]),
            Err(MultipartError::HeadersTooLarge)
        );
    }

    #[test]
    fn content_type_and_boundary() {
        let m =
            ContentType::parse("Multipart/Form-Data; charset=utf-8; boundary=\"a b:c\"").unwrap();
        assert_eq!(m.essence, "multipart/form-data");
        assert_eq!(m.boundary(), Ok("a b:c"));
        let m = ContentType::parse(
            "multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
        )
        .unwrap();
        assert_eq!(m.boundary(), Ok("----WebKitFormBoundary7MA4YWxkTrZu0gW"));
        assert_eq!(
            ContentType::parse("multipart/form-data")
                .unwrap()
                .boundary(),
            Err(MultipartError::MissingBoundary)
        );
        for bad in [
            "boundary=\"\"",
            "boundary=\"ends with space \"",
            &format!("boundary={}", "x".repeat(71)),
            "boundary=a;boundary=b",
            "boundary=\"new\r\nline\"",
            "boundary=\"a\\\"b\"",
        ] {
            let m = ContentType::parse(&format!("multipart/form-data; {bad}")).unwrap();
            assert_eq!(m.boundary(), Err(MultipartError::InvalidBoundary), "{bad}");
        }
        for bad in [
            "multipart",
            "multipart/form-data; boundary",
            "a b/c",
            "x/y; =v",
            "x/y; b=\"open",
        ] {
            assert_eq!(
                ContentType::parse(bad),
                Err(MultipartError::BadContentType),
                "{bad}"
            );
        }
    }

    #[test]
    fn find_is_exact() {
        assert_eq!(find(b"ab\r\n--b", b"\r\n--b"), Some(2));
        assert_eq!(find(b"\r\r\n--", b"\r\n--b"), None);
        assert_eq!(find(b"\r\n-\r\n--bx", b"\r\n--b"), Some(3));
        assert_eq!(find(b"", b"\r\n"), None);
    }

    proptest! {
        /// Any data (with near-boundaries in it), split anywhere, reads back exactly.
        #[test]
        fn any_split_reads_the_same(
            chunks in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40),
                    Just(b"\r\n--bounx".to_vec()),
                    Just(b"\r\n--boun\r\n".to_vec()),
                    Just(b"--bound".to_vec()),
                    Just(b"\r\n".to_vec()),
                ],
                0..20,
            ),
            second in proptest::collection::vec(any::<u8>(), 0..64),
            pieces in proptest::collection::vec(1usize..23, 1..6),
        ) {
            let data: Vec<u8> = chunks.concat();
            // Data that holds the delimiter itself cannot be sent with this boundary.
            prop_assume!(find(&data, b"\r\n--bound").is_none());
            prop_assume!(find(&second, b"\r\n--bound").is_none());
            let input = body("bound", &[
                ("Content-Disposition: form-data; name=\"file\"; filename=\"x.xlsx\"", &data),
                ("Content-Disposition: form-data; name=\"other\"", &second),
            ]);
            let parts = read("bound", &input, &pieces).unwrap();
            prop_assert_eq!(parts.len(), 2);
            prop_assert_eq!(&parts[0].1, &data);
            prop_assert_eq!(&parts[1].1, &second);
        }
    }
}
