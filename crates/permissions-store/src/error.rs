//! Errors of the store's own operations (templates and grants). The port's operations use
//! the domain's [`permissions::LoadError`] and [`permissions::UpdateSettingsError`].

use permissions::{PermissionKey, ScopeRef, UpdateSettingsError};

/// A boxed error for `Storage` variants: a [`persistence::StorageError`] (the edge
/// downcasts it to tell an outage from a bug), an [`audit::AppendAuditError`] or a
/// [`permissions::LoadError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Changing a district's or school's settings (its template) was refused or failed.
/// Nothing was saved.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No such district or school.
    #[error("district or school not found")]
    NotFound,
    /// A school setting for a key its district locked (`PERMISSION_LOCKED`).
    #[error("`{key}` is locked by {by} and cannot be changed here")]
    Locked {
        /// The locked key.
        key: PermissionKey,
        /// The scope that locked it.
        by: ScopeRef,
    },
    /// The store (or the audit log) failed.
    #[error("permission store failure")]
    Storage(#[source] BoxError),
}

/// Granting or revoking a direct grant was refused or failed. Nothing was saved.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// No such org.
    #[error("organization not found")]
    OrgNotFound,
    /// The user is not a member of the org (grants belong to memberships).
    #[error("the user is not a member of the organization")]
    NotMember,
    /// The reason is longer than [`MAX_REASON_CHARS`](crate::MAX_REASON_CHARS) characters.
    #[error("the reason is longer than {} characters", crate::MAX_REASON_CHARS)]
    ReasonTooLong,
    /// The store (or the audit log) failed.
    #[error("permission store failure")]
    Storage(#[source] BoxError),
}

/// Internal failure of a write, before it is mapped to the operation's error.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A driver error.
    Db(sea_orm::DbErr),
    /// A read inside the write failed (including invalid stored data).
    Load(permissions::LoadError),
    /// The audit append failed.
    Audit(audit::AppendAuditError),
}

impl From<sea_orm::DbErr> for Failure {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Db(err)
    }
}

impl From<permissions::LoadError> for Failure {
    fn from(err: permissions::LoadError) -> Self {
        Self::Load(err)
    }
}

impl From<audit::AppendAuditError> for Failure {
    fn from(err: audit::AppendAuditError) -> Self {
        Self::Audit(err)
    }
}

impl Failure {
    /// As a boxed source error.
    pub(crate) fn boxed(self) -> BoxError {
        match self {
            Self::Db(err) => persistence::boxed(err),
            Self::Load(err) => Box::new(err),
            Self::Audit(err) => Box::new(err),
        }
    }
}

impl From<Failure> for TemplateError {
    fn from(failure: Failure) -> Self {
        Self::Storage(failure.boxed())
    }
}

impl From<Failure> for GrantError {
    fn from(failure: Failure) -> Self {
        Self::Storage(failure.boxed())
    }
}

impl From<Failure> for UpdateSettingsError {
    fn from(failure: Failure) -> Self {
        let message = match failure {
            Failure::Db(err) => {
                let err = persistence::StorageError::from(err);
                if err.is_unavailable() {
                    return Self::Unavailable(err.to_string());
                }
                err.to_string()
            }
            Failure::Load(err) => return err.into(),
            Failure::Audit(err) => {
                let source = std::error::Error::source(&err);
                let message = match source {
                    Some(source) => format!("{err}: {source}"),
                    None => err.to_string(),
                };
                // A lost race for the audit chain, or the database gone mid-append: the
                // save can be retried (503), it is not a bug.
                let unavailable = err.is_retryable()
                    || source
                        .and_then(|s| s.downcast_ref::<persistence::StorageError>())
                        .is_some_and(persistence::StorageError::is_unavailable);
                if unavailable {
                    return Self::Unavailable(message);
                }
                message
            }
        };
        Self::Unexpected(message)
    }
}
