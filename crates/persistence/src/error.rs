use sea_orm::DbErr;

/// A storage failure that is not a domain outcome, classified for the edge:
/// an unavailable database is a 503, anything else a 500.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached (connection refused, pool closed or exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other driver or query failure.
    #[error("database error: {0}")]
    Query(String),
}

impl StorageError {
    /// Whether the failure means the database is unreachable (retryable, 503).
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<DbErr> for StorageError {
    fn from(err: DbErr) -> Self {
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(err.to_string()),
            other => Self::Query(other.to_string()),
        }
    }
}

/// Boxes a driver error for a domain `Unexpected(..)` variant; the edge downcasts it
/// back to [`StorageError`] to tell an outage (503) from a bug (500).
pub fn boxed(err: DbErr) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(StorageError::from(err))
}
