//! The validated name of what happened, e.g. `permission.update`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid [`Action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The action is empty.
    #[error("action is empty")]
    Empty,
    /// The action is longer than [`Action::MAX_LEN`] bytes.
    #[error("action is longer than {max} bytes", max = Action::MAX_LEN)]
    TooLong,
    /// The action has a single segment; at least `<subject>.<verb>` is required.
    #[error("action needs at least two dot-separated segments")]
    TooFewSegments,
    /// A segment is empty (leading, trailing or doubled dot).
    #[error("action has an empty segment at byte {position}")]
    EmptySegment {
        /// Byte offset of the empty segment.
        position: usize,
    },
    /// A segment does not start with a lowercase ASCII letter.
    #[error("action segment at byte {position} must start with a lowercase letter")]
    BadSegmentStart {
        /// Byte offset of the offending character.
        position: usize,
    },
    /// A character other than `a-z`, `0-9`, `_` or `.`.
    #[error("action has an invalid character at byte {position}")]
    InvalidChar {
        /// Byte offset of the offending character.
        position: usize,
    },
}

/// What happened, as lowercase dot-separated segments: `permission.update`,
/// `auth.sign_in`, `member.role.change`.
///
/// Rules: at least two segments, each `[a-z][a-z0-9_]*`, at most [`Action::MAX_LEN`]
/// bytes in total. The first segment is the subject area ([`Action::namespace`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action(Cow<'static, str>);

impl Action {
    /// Maximum length of an action in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `action`.
    ///
    /// # Errors
    /// [`ActionError`] describing the first rule the string breaks.
    pub fn new(action: impl Into<String>) -> Result<Self, ActionError> {
        let action = action.into();
        validate(action.as_bytes())?;
        Ok(Self(Cow::Owned(action)))
    }

    /// An action from a literal, validated at compile time when used in a `const`.
    ///
    /// # Panics
    /// If `action` is invalid (a compile error in const context).
    #[must_use]
    pub const fn from_static(action: &'static str) -> Self {
        match validate(action.as_bytes()) {
            Ok(()) => Self(Cow::Borrowed(action)),
            Err(_) => panic!("invalid audit action literal"),
        }
    }

    /// The action as a string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first segment (`permission` in `permission.update`).
    #[must_use]
    pub fn namespace(&self) -> &str {
        self.segments().next().unwrap_or_default()
    }

    /// The dot-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

const fn validate(bytes: &[u8]) -> Result<(), ActionError> {
    if bytes.is_empty() {
        return Err(ActionError::Empty);
    }
    if bytes.len() > Action::MAX_LEN {
        return Err(ActionError::TooLong);
    }
    let mut segments = 1;
    let mut segment_start = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'.' {
            if segment_start {
                return Err(ActionError::EmptySegment { position: i });
            }
            segments += 1;
            segment_start = true;
        } else if segment_start {
            if !b.is_ascii_lowercase() {
                return Err(if b.is_ascii_digit() || b == b'_' {
                    ActionError::BadSegmentStart { position: i }
                } else {
                    ActionError::InvalidChar { position: i }
                });
            }
            segment_start = false;
        } else if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(ActionError::InvalidChar { position: i });
        }
        i += 1;
    }
    if segment_start {
        return Err(ActionError::EmptySegment {
            position: bytes.len(),
        });
    }
    if segments < 2 {
        return Err(ActionError::TooFewSegments);
    }
    Ok(())
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Action {
    type Err = ActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Action {
    type Error = ActionError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Action> for String {
    fn from(action: Action) -> Self {
        action.0.into_owned()
    }
}

impl AsRef<str> for Action {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Well-known activity actions (recorded with [`crate::Category::Activity`]), from the
/// catalog [`crate::EventType`].
pub mod activity {
    use super::Action;

    /// A user signed in.
    pub const SIGN_IN: Action = crate::EventType::AuthSignIn.action();
    /// A user signed out (session revoked by its owner).
    pub const SIGN_OUT: Action = crate::EventType::AuthSignOut.action();
    /// A sign-in attempt failed.
    pub const SIGN_IN_FAILED: Action = crate::EventType::AuthSignInFailed.action();
    /// A user changed their password.
    pub const PASSWORD_CHANGE: Action = crate::EventType::AuthPasswordChange.action();
    /// A user updated their profile.
    pub const PROFILE_UPDATE: Action = crate::EventType::UserProfileUpdate.action();
    /// Data was exported (e.g. a member list).
    pub const DATA_EXPORT: Action = crate::EventType::DataExport.action();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_dotted_segments() {
        for ok in [
            "permission.update",
            "auth.sign_in",
            "member.role.change",
            "a.b",
            "v2.x9_",
        ] {
            let action = Action::new(ok).expect(ok);
            assert_eq!(action.as_str(), ok);
        }
        assert_eq!(activity::SIGN_IN.namespace(), "auth");
        assert_eq!(
            Action::new("member.role.change")
                .expect("valid")
                .segments()
                .collect::<Vec<_>>(),
            ["member", "role", "change"]
        );
    }

    #[test]
    fn rejects_invalid_actions() {
        use ActionError::*;
        let cases = [
            ("", Empty),
            ("permission", TooFewSegments),
            (".update", EmptySegment { position: 0 }),
            ("permission.", EmptySegment { position: 11 }),
            ("permission..update", EmptySegment { position: 11 }),
            ("Permission.update", InvalidChar { position: 0 }),
            ("permission.Update", InvalidChar { position: 11 }),
            ("permission.1update", BadSegmentStart { position: 11 }),
            ("permission._x", BadSegmentStart { position: 11 }),
            ("permission.up-date", InvalidChar { position: 13 }),
            ("permission.up date", InvalidChar { position: 13 }),
            ("permission.mise_à_jour", InvalidChar { position: 16 }),
        ];
        for (input, expected) in cases {
            assert_eq!(Action::new(input), Err(expected), "{input:?}");
        }
        let long = format!("a.{}", "b".repeat(Action::MAX_LEN));
        assert_eq!(Action::new(long), Err(TooLong));
    }

    #[test]
    fn serde_validates() {
        let json = serde_json::to_string(&activity::DATA_EXPORT).expect("serialize");
        assert_eq!(json, "\"data.export\"");
        let back: Action = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, activity::DATA_EXPORT);
        assert!(serde_json::from_str::<Action>("\"DATA.EXPORT\"").is_err());
    }

    #[test]
    fn static_and_owned_compare_equal() {
        assert_eq!(
            Action::new("auth.sign_in").expect("valid"),
            activity::SIGN_IN
        );
    }
}
