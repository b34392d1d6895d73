//! [`CacheError`].

use permissions::LoadError;

/// The cache could not answer. Redis failures never end up here (the cache then answers
/// from L1 and the database); only configuration errors and database failures do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The Redis URL given to [`PermissionCache::new`](crate::PermissionCache::new) is
    /// not valid.
    #[error("invalid redis url: {0}")]
    InvalidRedisUrl(String),
    /// Loading from the permission store failed (or it holds invalid data).
    #[error(transparent)]
    Load(#[from] LoadError),
}
