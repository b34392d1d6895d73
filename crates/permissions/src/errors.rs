//! Errors of the operations and ports, one enum per operation.

use crate::handout::{GrantWindowError, NotHeld};
use crate::locks::LockedKeys;

/// Loading permission data failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The stored data could not be turned into domain values (e.g. an unknown key or role).
    #[error("stored permission data is invalid: {0}")]
    InvalidData(String),
    /// The store cannot answer now but may in a moment (unreachable, connection lost,
    /// busy): the caller should retry. The message is for logs, not for clients.
    #[error("permission store unavailable: {0}")]
    Unavailable(String),
    /// The store failed otherwise. The message is for logs, not for clients.
    #[error("permission store failure: {0}")]
    Unexpected(String),
}

/// Updating (or resetting) an org's settings was refused or failed. Nothing was saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateSettingsError {
    /// Changes target keys locked by a district or school (`PERMISSION_LOCKED`). Names
    /// every locked key of the batch and who locked it.
    #[error(transparent)]
    Locked(LockedKeys),
    /// The org's settings changed since the caller read them (`VERSION_MISMATCH`).
    #[error("settings version {expected} is stale; the current version is {actual}")]
    VersionMismatch {
        /// The version the caller based its changes on.
        expected: u64,
        /// The current version.
        actual: u64,
    },
    /// No such org.
    #[error("organization not found")]
    NotFound,
    /// The store cannot answer now but may in a moment (see [`LoadError::Unavailable`]).
    #[error("permission store unavailable: {0}")]
    Unavailable(String),
    /// The store failed. The message is for logs, not for clients.
    #[error("permission store failure: {0}")]
    Unexpected(String),
}

impl From<LoadError> for UpdateSettingsError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Unexpected(other.to_string()),
        }
    }
}

impl LoadError {
    /// Whether a retry may succeed (the store was unavailable).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl UpdateSettingsError {
    /// Whether a retry may succeed (the store was unavailable).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A boxed error: the store's own failure, kept whole as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The store (or the audit log written with a change) failed. The cause is kept as the
/// error's [`source`](std::error::Error::source), not flattened into text, so the edge can
/// tell an outage (a retry may succeed: 503) from a bug (500) by walking it.
#[derive(Debug, thiserror::Error)]
#[error("permission store failure")]
pub struct StoreFailure(#[source] pub BoxError);

impl StoreFailure {
    /// Wraps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

impl From<LoadError> for StoreFailure {
    fn from(error: LoadError) -> Self {
        Self::new(error)
    }
}

/// Granting a key directly to a member was refused or failed. Nothing was saved.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// Nobody grants themselves anything.
    #[error("you cannot grant yourself a permission")]
    SelfGrant,
    /// The window `starts_at <= now < expires_at` would never (or no longer) be open.
    #[error(transparent)]
    Window(#[from] GrantWindowError),
    /// The key is locked above the org (`PERMISSION_LOCKED`): a grant would not count.
    #[error(transparent)]
    Locked(LockedKeys),
    /// The actor does not hold the key through their own role (nobody gives what they
    /// don't hold).
    #[error(transparent)]
    NotHeld(#[from] NotHeld),
    /// No such org.
    #[error("organization not found")]
    OrgNotFound,
    /// The user is not a member of the org (grants belong to memberships).
    #[error("the user is not a member of the organization")]
    NotMember,
    /// The reason is longer than [`MAX_GRANT_REASON_CHARS`] characters.
    #[error("the reason is longer than {MAX_GRANT_REASON_CHARS} characters")]
    ReasonTooLong,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StoreFailure),
}

/// The longest reason a grant may carry, in characters.
pub const MAX_GRANT_REASON_CHARS: usize = 500;

impl From<LoadError> for GrantError {
    fn from(error: LoadError) -> Self {
        Self::Storage(error.into())
    }
}

/// Revoking a direct grant failed. (Revoking a grant that does not exist is not an error:
/// the operation answers `false`.)
#[derive(Debug, thiserror::Error)]
pub enum RevokeGrantError {
    /// No such org.
    #[error("organization not found")]
    OrgNotFound,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StoreFailure),
}

/// Changing a district's or school's settings (its template) was refused or failed.
/// Nothing was saved.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No such district or school.
    #[error("district or school not found")]
    NotFound,
    /// School settings for keys its district locked (`PERMISSION_LOCKED`), every one named.
    #[error(transparent)]
    Locked(LockedKeys),
    /// The template changed since the caller read it (`VERSION_MISMATCH`).
    #[error("template version {expected} is stale; the current version is {actual}")]
    VersionMismatch {
        /// The version the caller based its changes on.
        expected: u64,
        /// The current version.
        actual: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StoreFailure),
}

impl From<LoadError> for TemplateError {
    fn from(error: LoadError) -> Self {
        Self::Storage(error.into())
    }
}

/// Checking exception keys (a custom role's extra keys) against the locks above an org
/// refused them or failed.
#[derive(Debug, thiserror::Error)]
pub enum ExceptionKeysError {
    /// No such org.
    #[error("organization not found")]
    OrgNotFound,
    /// Keys locked above the org (`PERMISSION_LOCKED`), every one named.
    #[error(transparent)]
    Locked(LockedKeys),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StoreFailure),
}

impl From<LoadError> for ExceptionKeysError {
    fn from(error: LoadError) -> Self {
        Self::Storage(error.into())
    }
}
