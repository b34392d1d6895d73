//! The permission catalog: every key with its module, a description and its platform
//! default. The catalog is data in code; [`CATALOG_VERSION`] changes whenever it does.

use serde::Serialize;

use crate::keys::{Module, PermissionKey};
use crate::role::BuiltinRole;

/// Version of the catalog below. Bump it whenever a key, a description or a default changes,
/// so clients and caches can tell catalogs apart.
pub const CATALOG_VERSION: u32 = 1;

/// A platform default: the setting a key has before any district, school or org touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct DefaultSetting {
    /// Lowest built-in role that holds the key.
    pub min_role: BuiltinRole,
    /// Whether the key can be held at all.
    pub enabled: bool,
}

/// One row of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CatalogEntry {
    /// The key.
    pub key: PermissionKey,
    /// The module of the key (same as `key.module()`).
    pub module: Module,
    /// A human sentence describing what the key allows.
    pub description: &'static str,
    /// The platform default.
    pub default: DefaultSetting,
}

impl CatalogEntry {
    const fn new(key: PermissionKey, min_role: BuiltinRole, description: &'static str) -> Self {
        Self {
            key,
            module: key.module(),
            description,
            default: DefaultSetting {
                min_role,
                enabled: true,
            },
        }
    }
}

/// The catalog, in key order: `catalog()[k.index()].key == k`.
///
/// Defaults: viewing is for volunteers; creating, editing and coordinating for committee
/// leads; approving, sending, deleting, inviting and managing money for board members;
/// role changes and removals for admins. Every key is enabled by default.
///
/// ```
/// use permissions::{catalog, BuiltinRole, PermissionKey};
///
/// let entry = &catalog()[PermissionKey::BudgetApprove.index()];
/// assert_eq!(entry.key, PermissionKey::BudgetApprove);
/// assert_eq!(entry.default.min_role, BuiltinRole::BoardMember);
/// ```
#[must_use]
pub fn catalog() -> &'static [CatalogEntry; PermissionKey::COUNT] {
    &CATALOG
}

/// The platform default of one key.
#[must_use]
pub fn platform_default(key: PermissionKey) -> DefaultSetting {
    CATALOG[key.index()].default
}

static CATALOG: [CatalogEntry; PermissionKey::COUNT] = {
    use BuiltinRole::{Admin, BoardMember, CommitteeLead, Volunteer};
    use PermissionKey as K;
    [
        CatalogEntry::new(
            K::CommunicationsView,
            Volunteer,
            "Read announcements and messages.",
        ),
        CatalogEntry::new(
            K::CommunicationsCreate,
            CommitteeLead,
            "Draft announcements and messages.",
        ),
        CatalogEntry::new(
            K::CommunicationsSend,
            BoardMember,
            "Send announcements and messages to members.",
        ),
        CatalogEntry::new(
            K::CommunicationsDelete,
            BoardMember,
            "Delete announcements and messages.",
        ),
        CatalogEntry::new(K::BudgetView, Volunteer, "See budgets and expenses."),
        CatalogEntry::new(
            K::BudgetCreate,
            CommitteeLead,
            "Create budgets and expense requests.",
        ),
        CatalogEntry::new(
            K::BudgetEdit,
            CommitteeLead,
            "Edit budgets and expense requests.",
        ),
        CatalogEntry::new(
            K::BudgetDelete,
            BoardMember,
            "Delete budgets and expense requests.",
        ),
        CatalogEntry::new(
            K::BudgetApprove,
            BoardMember,
            "Approve or reject budgets and expenses.",
        ),
        CatalogEntry::new(K::EventsView, Volunteer, "See events."),
        CatalogEntry::new(K::EventsCreate, CommitteeLead, "Create events."),
        CatalogEntry::new(K::EventsEdit, CommitteeLead, "Edit events."),
        CatalogEntry::new(K::EventsDelete, BoardMember, "Delete events."),
        CatalogEntry::new(
            K::EventsManageVolunteers,
            CommitteeLead,
            "Assign and manage event volunteers.",
        ),
        CatalogEntry::new(
            K::FundraisingView,
            Volunteer,
            "See fundraising campaigns and totals.",
        ),
        CatalogEntry::new(
            K::FundraisingCreate,
            CommitteeLead,
            "Create fundraising campaigns.",
        ),
        CatalogEntry::new(
            K::FundraisingEdit,
            CommitteeLead,
            "Edit fundraising campaigns.",
        ),
        CatalogEntry::new(
            K::FundraisingManage,
            BoardMember,
            "Manage fundraising money, close and archive campaigns.",
        ),
        CatalogEntry::new(K::DocumentsView, Volunteer, "Read shared documents."),
        CatalogEntry::new(
            K::DocumentsUpload,
            CommitteeLead,
            "Upload shared documents.",
        ),
        CatalogEntry::new(K::DocumentsDelete, BoardMember, "Delete shared documents."),
        CatalogEntry::new(K::TeacherRequestsView, Volunteer, "See teacher requests."),
        CatalogEntry::new(
            K::TeacherRequestsCreate,
            CommitteeLead,
            "Create teacher requests.",
        ),
        CatalogEntry::new(
            K::TeacherRequestsFulfill,
            CommitteeLead,
            "Fulfil teacher requests.",
        ),
        CatalogEntry::new(K::UsersView, Volunteer, "See the member directory."),
        CatalogEntry::new(K::UsersInvite, BoardMember, "Invite new members."),
        CatalogEntry::new(K::UsersEditRoles, Admin, "Change members' roles."),
        CatalogEntry::new(K::UsersRemove, Admin, "Suspend or remove members."),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_in_key_order_and_complete() {
        assert_eq!(catalog().len(), 28);
        for (entry, key) in catalog().iter().zip(PermissionKey::ALL) {
            assert_eq!(entry.key, key);
            assert_eq!(entry.module, key.module());
            assert!(!entry.description.is_empty());
            assert!(entry.default.enabled);
        }
    }

    #[test]
    fn defaults_follow_the_spec_rules() {
        for entry in catalog() {
            let action = entry.key.as_str().split_once('.').map(|(_, action)| action);
            let expected = match (entry.key, action) {
                (PermissionKey::UsersEditRoles | PermissionKey::UsersRemove, _) => {
                    Some(BuiltinRole::Admin)
                }
                (PermissionKey::UsersInvite, _) => Some(BuiltinRole::BoardMember),
                (_, Some("view")) => Some(BuiltinRole::Volunteer),
                (_, Some("create")) => Some(BuiltinRole::CommitteeLead),
                (_, Some("approve" | "send" | "delete")) => Some(BuiltinRole::BoardMember),
                _ => None,
            };
            if let Some(expected) = expected {
                assert_eq!(entry.default.min_role, expected, "{}", entry.key);
            }
        }
    }
}
