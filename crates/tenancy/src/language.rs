//! The language an account reads its messages in.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A BCP 47 language tag as people send it (`es`, `es-MX`, `pt-BR`, `zh-Hant-TW`):
/// a 2–3 letter primary language, then up to four subtags of 1–8 letters or digits,
/// 35 characters at most. Normalized: primary language lower case, region upper case,
/// `_` read as `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

/// What [`Language::parse`] accepts without control characters (which every edge
/// refuses in any text, [`crate::text::is_forbidden`]), as an ECMA-262 pattern for API
/// schemas (with a 35-character limit on the whole text, surrounding white space
/// included). The white space around is Rust's `trim` set less the control characters —
/// not ECMA's `\s`, which also has U+FEFF and the vertical tab.
pub const LANGUAGE_TAG_PATTERN: &str = concat!(
    r"^[\t\n\r \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*",
    r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,4}",
    r"[\t\n\r \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
);

/// Why a text is not a language tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a language tag (e.g. `en`, `es-MX`)")]
pub struct LanguageError(String);

impl Language {
    /// Parses and normalizes a tag.
    ///
    /// # Errors
    /// [`LanguageError`] for anything that is not a plausible tag.
    pub fn parse(tag: &str) -> Result<Self, LanguageError> {
        let bad = || LanguageError(tag.chars().take(40).collect());
        let tag = tag.trim();
        if tag.is_empty() || tag.len() > 35 {
            return Err(bad());
        }
        let mut parts = tag.split(['-', '_']);
        let primary = parts.next().unwrap_or_default();
        if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad());
        }
        let mut out = primary.to_ascii_lowercase();
        for (i, part) in parts.enumerate() {
            if i >= 4
                || part.is_empty()
                || part.len() > 8
                || !part.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(bad());
            }
            out.push('-');
            // Regions (`MX`) upper case, scripts (`Hant`) title case, the rest lower.
            match part.len() {
                2 if part.bytes().all(|b| b.is_ascii_alphabetic()) => {
                    out.push_str(&part.to_ascii_uppercase())
                }
                4 if part.bytes().all(|b| b.is_ascii_alphabetic()) => {
                    out.push_str(&part[..1].to_ascii_uppercase());
                    out.push_str(&part[1..].to_ascii_lowercase());
                }
                _ => out.push_str(&part.to_ascii_lowercase()),
            }
        }
        Ok(Self(out))
    }

    /// The first tag of an `Accept-Language` header that parses, by order of weight
    /// (`es-MX,es;q=0.9,en;q=0.8` → `es-MX`); `*` and `q=0` entries are skipped.
    #[must_use]
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(u16, usize, Self)> = None;
        for (i, item) in header.split(',').take(20).enumerate() {
            let mut fields = item.split(';');
            let tag = fields.next().unwrap_or_default().trim();
            let weight = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .map_or(Some(1000), |q| {
                    q.trim()
                        .parse::<f32>()
                        .ok()
                        .map(|q| (q.clamp(0.0, 1.0) * 1000.0) as u16)
                });
            let (Some(weight), Ok(lang)) = (weight, Self::parse(tag)) else {
                continue;
            };
            if weight == 0 {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(w, j, _)| weight > *w || (weight == *w && i < *j))
            {
                best = Some((weight, i, lang));
            }
        }
        best.map(|(_, _, lang)| lang)
    }

    /// The tag.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Language {
    type Error = LanguageError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Language> for String {
    fn from(l: Language) -> Self {
        l.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalized() {
        for (input, want) in [
            ("es", "es"),
            ("ES_mx", "es-MX"),
            (" pt-br ", "pt-BR"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
        ] {
            assert_eq!(
                Language::parse(input).map(String::from),
                Ok(want.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn non_tags_are_refused() {
        for input in [
            "",
            "e",
            "english",
            "es-",
            "es--MX",
            "1s",
            "es-MX-a-b-c-d",
            "es MX",
            "<b>",
            &"a".repeat(36),
        ] {
            assert!(Language::parse(input).is_err(), "{input:?}");
        }
    }

    /// The schema's pattern and the parser agree.
    #[test]
    fn the_schema_pattern_accepts_what_parse_accepts() {
        let pattern = regex::Regex::new(LANGUAGE_TAG_PATTERN).unwrap();
        let mut texts: Vec<String> = [
            "en",
            "es-MX",
            " pt_br ",
            "zh-Hant-TW",
            "es-419",
            "",
            "e",
            "english",
            "es-",
            "es--MX",
            "1s",
            "es-MX-a-b-c-d",
            "es MX",
            "<b>",
            "abc-12345678-1234",
            "de-DE-1996",
            "\ten\n",
            "\u{b}en",
            "en\u{c}",
            "\u{feff}en",
            "\u{a0}en\u{3000}",
            "en\u{85}",
            "\u{2028}es-MX\u{2029}",
        ]
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
        // Every short text over a small alphabet, too.
        let alphabet = ['a', 'B', '1', '-', '_', ' '];
        let mut layer = vec![String::new()];
        for _ in 0..5 {
            layer = layer
                .iter()
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(layer.iter().cloned());
        }
        for t in texts.iter().filter(|t| t.chars().count() <= 35) {
            let api_accepts =
                Language::parse(t).is_ok() && crate::text::first_forbidden(t).is_none();
            assert_eq!(pattern.is_match(t), api_accepts, "{t:?}");
        }
    }

    #[test]
    fn accept_language_picks_the_heaviest_tag() {
        let pick = |h: &str| Language::from_accept_language(h).map(String::from);
        assert_eq!(pick("es-MX,es;q=0.9,en;q=0.8"), Some("es-MX".into()));
        assert_eq!(pick("en;q=0.5, es;q=0.9"), Some("es".into()));
        assert_eq!(pick("*, fr;q=0.1"), Some("fr".into()));
        assert_eq!(pick("es;q=0, en;q=0.2"), Some("en".into()));
        assert_eq!(pick("da, en-gb;q=0.8"), Some("da".into()));
        assert_eq!(pick("garbage;;;"), None);
        assert_eq!(pick(""), None);
    }
}
