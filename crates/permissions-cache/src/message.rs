//! [`Invalidation`]: the eviction orders carried by the invalidation bus.

use uuid::Uuid;

const ORG: &str = "perm:org:";
const MEMBER: &str = "perm:member:";

/// An eviction applied to an instance's L1. On the bus (channel
/// [`cache::INVALIDATION_CHANNEL`]) it travels as text: `perm:org:<org>` or
/// `perm:member:<org>:<user>`; other messages on the channel belong to other caches and
/// are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// The org's compiled table and, with it, every member context of the org.
    Org(Uuid),
    /// One member context.
    Member {
        /// The org.
        org: Uuid,
        /// The user.
        user: Uuid,
    },
    /// Everything (local only, never published): after the bus lagged or after Redis
    /// came back, when messages may have been missed.
    All,
}

impl Invalidation {
    /// The bus message (`None` for [`Invalidation::All`], which is never published).
    #[must_use]
    pub fn to_message(&self) -> Option<String> {
        match self {
            Self::Org(org) => Some(format!("{ORG}{org}")),
            Self::Member { org, user } => Some(format!("{MEMBER}{org}:{user}")),
            Self::All => None,
        }
    }

    /// Parses a bus message; `None` for anything that is not a permission invalidation.
    #[must_use]
    pub fn parse(message: &str) -> Option<Self> {
        if let Some(org) = message.strip_prefix(ORG) {
            return Uuid::parse_str(org).ok().map(Self::Org);
        }
        let (org, user) = message.strip_prefix(MEMBER)?.split_once(':')?;
        Some(Self::Member {
            org: Uuid::parse_str(org).ok()?,
            user: Uuid::parse_str(user).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_foreign_ones_are_ignored() {
        let org = Uuid::from_u128(7);
        let user = Uuid::from_u128(9);
        for inv in [Invalidation::Org(org), Invalidation::Member { org, user }] {
            let text = inv.to_message().expect("published kinds have a message");
            assert_eq!(Invalidation::parse(&text), Some(inv));
        }
        assert_eq!(
            Invalidation::parse(&format!("perm:org:{org}")),
            Some(Invalidation::Org(org))
        );
        assert_eq!(Invalidation::All.to_message(), None);
        for foreign in ["tenancy:org:1", "perm:org:nope", "perm:member:x", ""] {
            assert_eq!(Invalidation::parse(foreign), None);
        }
    }
}
