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
        if is_transient(&err) {
            Self::Unavailable(err.to_string())
        } else {
            Self::Query(err.to_string())
        }
    }
}

/// Whether `err` says the database cannot serve the request *now* but may in a moment:
/// unreachable, a connection lost mid-query, a pool exhausted or closed, SQLite busy or
/// locked, PostgreSQL shutting down, out of connections, a statement cancelled by its
/// `statement_timeout`, or a serialization failure or deadlock (the transaction was
/// rolled back; retrying it is safe). The edge answers
/// these with 503 and `Retry-After`, never 500.
#[must_use]
pub fn is_transient(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            is_transient_sqlx(e)
        }
        _ => false,
    }
}

fn is_transient_sqlx(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_)
        | Error::Tls(_)
        | Error::PoolTimedOut
        | Error::PoolClosed
        | Error::WorkerCrashed
        | Error::Protocol(_) => true,
        Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// Driver error codes that mean "try again": SQLite's primary and extended result
/// codes for BUSY (5, 261, 517, 773) and LOCKED (6, 262, 518); PostgreSQL's SQLSTATE
/// classes 08 (connection exception) and 53 (insufficient resources), `57P01`–`57P03`
/// (shutdown, cannot connect now), `57014` (query cancelled: a `statement_timeout` or
/// an operator's cancel), `40001` (serialization failure), `40P01` (deadlock) and
/// `55P03` (lock not available).
fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "5" | "261"
            | "517"
            | "773"
            | "6"
            | "262"
            | "518"
            | "57P01"
            | "57P02"
            | "57P03"
            | "57014"
            | "40001"
            | "40P01"
            | "55P03"
    ) || code.starts_with("08")
        || code.starts_with("53")
}

/// Boxes a driver error for a domain `Unexpected(..)` variant; the edge downcasts it
/// back to [`StorageError`] to tell an outage (503) from a bug (500).
pub fn boxed(err: DbErr) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(StorageError::from(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_busy_databases_and_retryable_conflicts_are_transient() {
        for code in [
            "5", "517", "6", "08006", "08003", "57P01", "57P03", "57014", "53300", "40001",
            "40P01", "55P03",
        ] {
            assert!(transient_code(code), "{code}");
        }
        for code in [
            "23505", "23503", "22P02", "42P01", "19", "1", "2067", "P0001",
        ] {
            assert!(!transient_code(code), "{code}");
        }
        let reset = DbErr::Query(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        )));
        assert!(StorageError::from(reset).is_unavailable());
        let timed_out = DbErr::Exec(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(
            sea_orm::sqlx::Error::PoolTimedOut,
        )));
        assert!(StorageError::from(timed_out).is_unavailable());
        let bug = DbErr::Query(sea_orm::RuntimeErr::Internal("syntax".into()));
        assert!(!StorageError::from(bug).is_unavailable());
        assert!(!StorageError::from(DbErr::RecordNotFound("x".into())).is_unavailable());
    }
}
