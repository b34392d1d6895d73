//! Validated inputs: display names and grade levels.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The display name of a district or school: trimmed, inner runs of whitespace
/// collapsed to one space, 1 to [`DisplayName::MAX_CHARS`] characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

/// Why a string is not an acceptable display name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    /// Empty after trimming.
    #[error("name must not be empty")]
    Empty,
    /// Longer than [`DisplayName::MAX_CHARS`] characters.
    #[error("name must have at most {max} characters", max = DisplayName::MAX_CHARS)]
    TooLong,
    /// Contains a control character.
    #[error("name must not contain control characters")]
    ControlCharacter,
}

impl DisplayName {
    /// The longest name, in characters (the column is `varchar(200)`).
    pub const MAX_CHARS: usize = 200;

    /// Parses and normalizes a name.
    ///
    /// ```
    /// let n = districts::DisplayName::parse("  Springfield   Unified ").unwrap();
    /// assert_eq!(n.as_str(), "Springfield Unified");
    /// ```
    ///
    /// # Errors
    /// [`DisplayNameError`] naming the rule the input breaks.
    pub fn parse(raw: &str) -> Result<Self, DisplayNameError> {
        if raw.chars().any(|c| c.is_control() && !c.is_whitespace()) {
            return Err(DisplayNameError::ControlCharacter);
        }
        let joined = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if joined.is_empty() {
            return Err(DisplayNameError::Empty);
        }
        if joined.chars().count() > Self::MAX_CHARS {
            return Err(DisplayNameError::TooLong);
        }
        Ok(Self(joined))
    }

    /// The normalized name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = DisplayNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DisplayName> for String {
    fn from(value: DisplayName) -> Self {
        value.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The grades a school teaches, normalized: each one of `PK` (pre-kindergarten), `TK`
/// (transitional kindergarten), `K`, `1` … `12`; without duplicates; in school order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct GradeLevels(Vec<String>);

/// Why a list is not an acceptable set of grade levels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GradeLevelError {
    /// An entry is not a known grade.
    #[error("unknown grade level {0:?} (expected PK, TK, K or 1-12)")]
    Unknown(String),
}

/// Every grade, in school order.
const GRADES: [&str; 15] = [
    "PK", "TK", "K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
];

impl GradeLevels {
    /// Parses grade levels: case-insensitive, surrounding spaces and leading zeros
    /// ignored, `PRE-K`/`PREK` accepted for `PK`; duplicates removed; sorted in school
    /// order.
    ///
    /// ```
    /// let g = districts::GradeLevels::parse(["2", " k", "01", "1"]).unwrap();
    /// assert_eq!(g.as_slice(), ["K", "1", "2"]);
    /// ```
    ///
    /// # Errors
    /// [`GradeLevelError::Unknown`] for the first entry that is not a grade.
    pub fn parse<I, S>(raw: I) -> Result<Self, GradeLevelError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut seen = [false; GRADES.len()];
        for entry in raw {
            let entry = entry.as_ref();
            let index = grade_index(entry).ok_or_else(|| GradeLevelError::Unknown(entry.into()))?;
            if let Some(slot) = seen.get_mut(index) {
                *slot = true;
            }
        }
        Ok(Self(
            GRADES
                .iter()
                .zip(seen)
                .filter(|(_, present)| *present)
                .map(|(g, _)| (*g).to_owned())
                .collect(),
        ))
    }

    /// The grades, in school order.
    #[must_use]
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The grades as owned strings.
    #[must_use]
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

fn grade_index(raw: &str) -> Option<usize> {
    let upper = raw.trim().to_ascii_uppercase();
    let canonical = match upper.as_str() {
        "PRE-K" | "PREK" | "PK" => "PK",
        "TK" => "TK",
        "K" | "KG" => "K",
        digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            let trimmed = digits.trim_start_matches('0');
            if trimmed.is_empty() {
                return None;
            }
            return GRADES.iter().position(|g| *g == trimmed);
        }
        _ => return None,
    };
    GRADES.iter().position(|g| *g == canonical)
}

impl TryFrom<Vec<String>> for GradeLevels {
    type Error = GradeLevelError;
    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<GradeLevels> for Vec<String> {
    fn from(value: GradeLevels) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_bounded() {
        assert_eq!(
            DisplayName::parse(" a \t b ").map(String::from),
            Ok("a b".to_owned())
        );
        assert_eq!(DisplayName::parse("   "), Err(DisplayNameError::Empty));
        assert_eq!(
            DisplayName::parse("a\u{0}b"),
            Err(DisplayNameError::ControlCharacter)
        );
        assert!(DisplayName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            DisplayName::parse(&"é".repeat(201)),
            Err(DisplayNameError::TooLong)
        );
    }

    #[test]
    fn grades_are_canonical() {
        let g =
            GradeLevels::parse(["12", "pre-k", "K", "k", "003", "tk"]).map(GradeLevels::into_vec);
        assert_eq!(
            g,
            Ok(vec![
                "PK".into(),
                "TK".into(),
                "K".into(),
                "3".into(),
                "12".into()
            ])
        );
        assert_eq!(
            GradeLevels::parse(Vec::<String>::new()),
            Ok(GradeLevels::default())
        );
        assert_eq!(
            GradeLevels::parse(["13"]),
            Err(GradeLevelError::Unknown("13".into()))
        );
        assert_eq!(
            GradeLevels::parse(["0"]),
            Err(GradeLevelError::Unknown("0".into()))
        );
        assert!(GradeLevels::parse(["first"]).is_err());
    }

    #[test]
    fn grades_deserialize_through_parse() {
        let g: Result<GradeLevels, _> = serde_json::from_str(r#"["2","1","1"]"#);
        assert_eq!(
            g.ok().map(GradeLevels::into_vec),
            Some(vec!["1".into(), "2".into()])
        );
        let bad: Result<GradeLevels, _> = serde_json::from_str(r#"["x"]"#);
        assert!(bad.is_err());
    }
}
