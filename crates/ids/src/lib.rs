//! The identifiers the domains share, defined once: an org is an [`OrgId`] in tenancy,
//! permissions-adjacent code, districts and audit alike, never a bare UUID in one place
//! and a newtype in another.
//!
//! Every id wraps a UUID v7 (time-ordered, so new rows append to indexes), serializes as
//! the plain UUID string, and converts from and to [`Uuid`] explicitly (reading storage
//! or a path); [`Default`] and `new` mint a fresh one.

use std::fmt;

use serde::{Deserialize, Serialize};
pub use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered (UUID v7) identifier.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing identifier (e.g. one read from storage or a path).
            #[must_use]
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(
    /// Identifies an organization (PTO/PTA), the primary tenant.
    OrgId
);
id_type!(
    /// Identifies a user account (one person, possibly in several orgs).
    UserId
);
id_type!(
    /// Identifies an invitation (unique within its org).
    InvitationId
);
id_type!(
    /// Identifies a school district.
    DistrictId
);
id_type!(
    /// Identifies a school.
    SchoolId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_v7() {
        let a = OrgId::new();
        let b = OrgId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a <= b);
    }

    #[test]
    fn ids_serialize_as_their_uuid_and_convert_both_ways() {
        let raw = Uuid::now_v7();
        let id = DistrictId::from_uuid(raw);
        assert_eq!(
            serde_json::to_value(id).expect("serialize"),
            serde_json::json!(raw.to_string())
        );
        assert_eq!(Uuid::from(id), raw);
        assert_eq!(SchoolId::from(raw).to_string(), raw.to_string());
    }
}
