//! Errors: the port's operations use the domain's enums ([`permissions::LoadError`],
//! [`permissions::UpdateSettingsError`], [`GrantError`], [`RevokeGrantError`],
//! [`TemplateError`]); a storage failure keeps its cause as a
//! [`permissions::StoreFailure`] source.

use permissions::{StoreFailure, UpdateSettingsError};

/// A boxed error for `Storage` variants: a [`persistence::StorageError`] (the edge
/// downcasts it to tell an outage from a bug), an [`audit::AppendAuditError`] or a
/// [`permissions::LoadError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use permissions::{GrantError, RevokeGrantError, TemplateError};

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

impl From<Failure> for StoreFailure {
    fn from(failure: Failure) -> Self {
        Self(failure.boxed())
    }
}

impl From<Failure> for TemplateError {
    fn from(failure: Failure) -> Self {
        Self::Storage(failure.into())
    }
}

impl From<Failure> for GrantError {
    fn from(failure: Failure) -> Self {
        Self::Storage(failure.into())
    }
}

impl From<Failure> for RevokeGrantError {
    fn from(failure: Failure) -> Self {
        Self::Storage(failure.into())
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
