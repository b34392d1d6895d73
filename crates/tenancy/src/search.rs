//! Member search, the same on every backend: the normalized search document stored with
//! each membership, the parsed query, and the fuzzy ranking.
//!
//! The database only proposes candidates (PostgreSQL: trigram and word indexes; SQLite:
//! an FTS5 trigram index); [`SearchQuery::score`] decides what matches and in which
//! order, so both backends answer alike. A query matches a member when **every** query
//! word matches some word of the member's document: exactly, as a prefix, inside a word
//! (3+ letters), or with typos (one edit — insertion, deletion, substitution or
//! transposition of neighbours — in words of 4–7 letters, two in longer words).
//!
//! ```
//! use tenancy::search::{SearchQuery, document};
//!
//! let doc = document("John", "Smith", "john.smith@example.org", None, Some("Book Fair"), &["Ava".into()]);
//! let q = SearchQuery::parse("Jonh Smiht").unwrap();
//! assert!(q.score(&doc).is_some());
//! assert!(SearchQuery::parse("Jane").unwrap().score(&doc).is_none());
//! ```

/// Why a search text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SearchQueryError {
    /// Nothing searchable in it (only punctuation or spaces).
    #[error("the search text has no letters or digits")]
    Empty,
    /// Longer than [`SearchQuery::MAX_CHARS`] characters.
    #[error("the search text is longer than {} characters", SearchQuery::MAX_CHARS)]
    TooLong,
    /// More than [`SearchQuery::MAX_WORDS`] words.
    #[error("the search text has more than {} words", SearchQuery::MAX_WORDS)]
    TooManyWords,
}

/// Lower-cases, folds common accents (é → e, ß → ss) and turns everything but letters
/// and digits into single spaces.
#[must_use]
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars().flat_map(char::to_lowercase) {
        let folded = fold(c);
        if folded.is_empty() {
            if !space {
                out.push(' ');
                space = true;
            }
        } else {
            out.push_str(folded);
            space = false;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// One lower-case character as plain letters/digits ("" for a separator).
fn fold(c: char) -> &'static str {
    const PLAIN: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
    if c.is_ascii_alphanumeric() {
        let i = PLAIN.find(c).unwrap_or(0);
        return &PLAIN[i..=i];
    }
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' => "i",
        'ł' | 'ľ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'þ' => "th",
        _ => "",
    }
}

/// The searchable document of a member: names, e-mail (in parts), phone digits,
/// committee and children's names, normalized, with a leading and trailing space so
/// word boundaries are visible to trigram indexes.
#[must_use]
pub fn document(
    first_name: &str,
    last_name: &str,
    email: &str,
    phone: Option<&str>,
    committee: Option<&str>,
    children: &[String],
) -> String {
    let phone_digits: String = phone
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let mut parts = vec![first_name, last_name, email, &phone_digits];
    parts.extend(committee);
    parts.extend(children.iter().map(String::as_str));
    let body = normalize(&parts.join(" "));
    format!(" {body} ")
}

/// The stored sort key of the member list's name order: last name, then first name,
/// lower-cased (kept with each membership so the order is served by an index).
#[must_use]
pub fn sort_name(first_name: &str, last_name: &str) -> String {
    format!(
        "{}\u{1f}{}",
        last_name.to_lowercase(),
        first_name.to_lowercase()
    )
}

/// A parsed search text: its normalized words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

impl SearchQuery {
    /// The longest accepted search text, in characters.
    pub const MAX_CHARS: usize = 100;
    /// The most words a search may have.
    pub const MAX_WORDS: usize = 8;

    /// Parses a search text.
    ///
    /// # Errors
    /// [`SearchQueryError`] when it is empty, too long or has too many words.
    pub fn parse(text: &str) -> Result<Self, SearchQueryError> {
        if text.chars().count() > Self::MAX_CHARS {
            return Err(SearchQueryError::TooLong);
        }
        let words: Vec<String> = normalize(text)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            return Err(SearchQueryError::Empty);
        }
        if words.len() > Self::MAX_WORDS {
            return Err(SearchQueryError::TooManyWords);
        }
        Ok(Self { words })
    }

    /// The normalized words.
    #[must_use]
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// How well `doc` (a [`document`]) matches, in `(0, 1]`; `None` if some word of the
    /// query matches no word of the document. Higher is better: exact words beat
    /// prefixes, which beat infixes, which beat typos.
    #[must_use]
    pub fn score(&self, doc: &str) -> Option<f32> {
        let mut total = 0.0_f32;
        for q in &self.words {
            let best = doc
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| word_score(q, w))
                .fold(0.0_f32, f32::max);
            if best <= 0.0 {
                return None;
            }
            total += best;
        }
        #[allow(clippy::cast_precision_loss, reason = "at most MAX_WORDS words")]
        Some(total / self.words.len() as f32)
    }
}

/// The typos tolerated in a query word of `len` characters.
fn allowed_edits(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

fn word_score(q: &str, w: &str) -> f32 {
    if q == w {
        return 1.0;
    }
    if w.starts_with(q) {
        return 0.9;
    }
    if q.len() >= 3 && w.contains(q) {
        return 0.75;
    }
    let allowed = allowed_edits(q.chars().count());
    if allowed == 0 {
        return 0.0;
    }
    match edit_distance(q, w, allowed) {
        Some(1) => 0.6,
        Some(2) => 0.45,
        _ => 0.0,
    }
}

/// Optimal-string-alignment distance between `a` and `b` (Levenshtein plus swaps of
/// neighbours), or `None` if it exceeds `max`. Allocates nothing for words of up to
/// [`SHORT_WORD`] characters (a search compares every word of an org's directory).
#[must_use]
pub fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let (len_a, len_b) = (a.chars().count(), b.chars().count());
    if len_a.abs_diff(len_b) > max {
        return None;
    }
    if len_a <= SHORT_WORD && len_b <= SHORT_WORD {
        let (mut chars_a, mut chars_b) = (['\0'; SHORT_WORD], ['\0'; SHORT_WORD]);
        for (slot, c) in chars_a.iter_mut().zip(a.chars()) {
            *slot = c;
        }
        for (slot, c) in chars_b.iter_mut().zip(b.chars()) {
            *slot = c;
        }
        let mut rows = [0usize; 3 * (SHORT_WORD + 1)];
        osa(&chars_a[..len_a], &chars_b[..len_b], max, &mut rows)
    } else {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut rows = vec![0usize; 3 * (b.len() + 1)];
        osa(&a, &b, max, &mut rows)
    }
}

/// Words up to this many characters are compared on the stack.
pub const SHORT_WORD: usize = 32;

/// [`edit_distance`] over characters, with `rows` (at least three rows of `b.len() + 1`)
/// as the working space: the row before the previous one, the previous one and the
/// current one, in turn.
fn osa(a: &[char], b: &[char], max: usize, rows: &mut [usize]) -> Option<usize> {
    let width = b.len() + 1;
    let row = |i: usize| (i % 3) * width;
    for (j, cell) in rows[..width].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = (row(i), row(i - 1), row(i + 1));
        rows[cur] = i;
        let mut row_min = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev + j] + 1)
                .min(rows[cur + j - 1] + 1)
                .min(rows[prev + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[prev2 + j - 2] + 1);
            }
            rows[cur + j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return None;
        }
    }
    let d = rows[row(a.len()) + b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> String {
        document(
            "John",
            "Smith",
            "John.Smith@Example.org",
            Some("+1 (555) 010-2030"),
            Some("Book Fair"),
            &["Zoë".into(), "Liam".into()],
        )
    }

    #[test]
    fn documents_are_normalized_with_boundaries() {
        assert_eq!(
            doc(),
            " john smith john smith example org 15550102030 book fair zoe liam "
        );
        assert_eq!(normalize("  Ñandú--Straße! "), "nandu strasse");
    }

    #[test]
    fn typos_in_names_still_match() {
        let d = doc();
        for q in [
            "Jonh Smiht",
            "jhon",
            "smith",
            "Smi",
            "mith",
            "zoe",
            "ZOË",
            "5550102030",
            "book fair",
            "example.org",
        ] {
            let query = SearchQuery::parse(q).expect(q);
            assert!(query.score(&d).is_some(), "{q} should match");
        }
        for q in ["Jane", "Smith Jane", "xyz", "jo smiht x"] {
            let query = SearchQuery::parse(q).expect(q);
            assert_eq!(query.score(&d), None, "{q} should not match");
        }
    }

    #[test]
    fn better_matches_rank_higher() {
        let d = doc();
        let score = |q: &str| {
            SearchQuery::parse(q)
                .expect("query")
                .score(&d)
                .expect("match")
        };
        assert!(score("john smith") > score("jo smi"));
        assert!(score("jo smi") > score("jonh smiht"));
        assert!((score("john smith") - 1.0).abs() < f32::EPSILON);
    }

    #[test]
    fn bad_queries_are_refused() {
        assert_eq!(SearchQuery::parse(" .,- "), Err(SearchQueryError::Empty));
        assert_eq!(
            SearchQuery::parse(&"a".repeat(101)),
            Err(SearchQueryError::TooLong)
        );
        assert_eq!(
            SearchQuery::parse("a b c d e f g h i"),
            Err(SearchQueryError::TooManyWords)
        );
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("jonh", "john", 2), Some(1));
        assert_eq!(edit_distance("smiht", "smith", 2), Some(1));
        assert_eq!(edit_distance("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance("kitten", "sitting", 2), None);
        assert_eq!(edit_distance("", "abc", 3), Some(3));
        assert_eq!(edit_distance("abc", "", 3), Some(3));
        assert_eq!(edit_distance("", "", 0), Some(0));
        assert_eq!(edit_distance("ab", "ba", 1), Some(1));
        assert_eq!(edit_distance("abcd", "a", 2), None);
    }

    /// The stack path and the heap path (words over [`SHORT_WORD`] characters) agree
    /// with a plain full-matrix implementation, on words of many scripts.
    #[test]
    fn edit_distance_agrees_with_the_full_matrix() {
        fn full(a: &str, b: &str) -> usize {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
            for (i, row) in d.iter_mut().enumerate() {
                row[0] = i;
            }
            for (j, cell) in d[0].iter_mut().enumerate() {
                *cell = j;
            }
            for i in 1..=a.len() {
                for j in 1..=b.len() {
                    let cost = usize::from(a[i - 1] != b[j - 1]);
                    d[i][j] = (d[i - 1][j] + 1)
                        .min(d[i][j - 1] + 1)
                        .min(d[i - 1][j - 1] + cost);
                    if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                        d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
                    }
                }
            }
            d[a.len()][b.len()]
        }
        let long_a = "a".repeat(SHORT_WORD + 3) + "xy";
        let long_b = "a".repeat(SHORT_WORD + 3) + "yx";
        let words = [
            "",
            "a",
            "jon",
            "john",
            "jonh",
            "johann",
            "smith",
            "smiht",
            "müller",
            "mueller",
            "ngọc",
            "ngoc",
            "Алексей",
            "Алексе",
            "李小龙",
            "李龙",
            "محمد",
            "محمود",
            "kitten",
            "sitting",
            long_a.as_str(),
            long_b.as_str(),
        ];
        for a in words {
            for b in words {
                let d = full(a, b);
                for max in 0..4 {
                    assert_eq!(
                        edit_distance(a, b, max),
                        (d <= max).then_some(d),
                        "{a} {b} {max}"
                    );
                }
            }
        }
    }
}
