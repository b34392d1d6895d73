//! Errors of the operations and ports, one enum per operation.

use crate::keys::PermissionKey;
use crate::scope::ScopeRef;

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
    /// A change targets a key locked by a district or school (`PERMISSION_LOCKED`). Names
    /// the first locked key of the batch.
    #[error("`{key}` is locked by {by} and cannot be changed by the organization")]
    Locked {
        /// The locked key.
        key: PermissionKey,
        /// The scope that locked it.
        by: ScopeRef,
    },
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
