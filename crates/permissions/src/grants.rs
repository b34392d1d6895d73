//! Writing direct grants: what a grant asks for.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::PermissionKey;
use crate::member::Grant;

/// A direct grant to write: one key to one member, optionally from `starts_at` and until
/// `expires_at`, with a reason, and who granted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGrant {
    /// The member receiving the grant.
    pub user_id: Uuid,
    /// The key.
    pub key: PermissionKey,
    /// When it starts counting; `None`: at once.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    /// When it stops counting; `None`: never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Why (shown in the audit log).
    pub reason: Option<String>,
    /// Who granted it (set by [`PermissionService::grant`](crate::PermissionService::grant)).
    pub granted_by: Option<Uuid>,
}

impl NewGrant {
    /// The grant as the check sees it.
    #[must_use]
    pub fn grant(&self) -> Grant {
        Grant {
            key: self.key,
            starts_at: self.starts_at,
            expires_at: self.expires_at,
            reason: self.reason.clone(),
        }
    }
}
