//! Tenant scope of an event and the chain (tenant key) it is sealed into.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string could not be parsed into one of this crate's value types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {input:?}")]
pub struct ParseError {
    /// What was being parsed (e.g. `"chain id"`).
    pub what: &'static str,
    /// The rejected input.
    pub input: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, input: &str) -> Self {
        Self {
            what,
            input: input.to_owned(),
        }
    }
}

/// The tenant an audit event belongs to: an organization and/or a district.
///
/// * org set (district optional): an org event; the district, when the org belongs to
///   one, is recorded as context but does not change the chain;
/// * only district set: a district-level event (templates, schools, locks);
/// * neither set: a platform event (district management by platform admins).
///
/// The scope decides the event's chain: see [`TenantScope::chain_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TenantScope {
    /// The organization (the primary tenant), if the event is about one.
    #[serde(default)]
    pub org_id: Option<Uuid>,
    /// The district, for district-level events or as context of an org event.
    #[serde(default)]
    pub district_id: Option<Uuid>,
}

impl TenantScope {
    /// The platform scope (no org, no district).
    pub const PLATFORM: Self = Self {
        org_id: None,
        district_id: None,
    };

    /// An org event, without district context.
    #[must_use]
    pub const fn org(org_id: Uuid) -> Self {
        Self {
            org_id: Some(org_id),
            district_id: None,
        }
    }

    /// An org event, recording the district the org belongs to.
    #[must_use]
    pub const fn org_in_district(org_id: Uuid, district_id: Uuid) -> Self {
        Self {
            org_id: Some(org_id),
            district_id: Some(district_id),
        }
    }

    /// A district-level event.
    #[must_use]
    pub const fn district(district_id: Uuid) -> Self {
        Self {
            org_id: None,
            district_id: Some(district_id),
        }
    }

    /// The chain the event is sealed into: the org's chain when an org is set, else the
    /// district's, else the platform chain.
    #[must_use]
    pub const fn chain_id(&self) -> ChainId {
        match (self.org_id, self.district_id) {
            (Some(org), _) => ChainId::Org(org),
            (None, Some(district)) => ChainId::District(district),
            (None, None) => ChainId::Platform,
        }
    }
}

impl From<TenantScope> for ChainId {
    fn from(scope: TenantScope) -> Self {
        scope.chain_id()
    }
}

/// Identifies one hash chain, which is also the tenant key of the audit log.
///
/// Every tenant has exactly one chain. Its string form (used in the canonical encoding,
/// in storage and in the API) is `org:<uuid>`, `district:<uuid>` or `platform`, with the
/// UUID in lowercase hyphenated form; parsing accepts only that exact form so that the
/// string form of a chain is unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ChainId {
    /// The platform chain.
    Platform,
    /// A district's chain.
    District(Uuid),
    /// An organization's chain.
    Org(Uuid),
}

impl ChainId {
    /// The scope of events sealed into this chain (without district context).
    #[must_use]
    pub const fn scope(&self) -> TenantScope {
        match *self {
            Self::Platform => TenantScope::PLATFORM,
            Self::District(id) => TenantScope::district(id),
            Self::Org(id) => TenantScope::org(id),
        }
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Platform => f.write_str("platform"),
            Self::District(id) => write!(f, "district:{id}"),
            Self::Org(id) => write!(f, "org:{id}"),
        }
    }
}

/// Parses a UUID only in its lowercase hyphenated form.
pub(crate) fn parse_canonical_uuid(s: &str) -> Option<Uuid> {
    Uuid::try_parse(s)
        .ok()
        .filter(|id| id.hyphenated().to_string() == s)
}

impl FromStr for ChainId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError::new("chain id", s);
        if s == "platform" {
            return Ok(Self::Platform);
        }
        let (kind, id) = s.split_once(':').ok_or_else(err)?;
        let id = parse_canonical_uuid(id).ok_or_else(err)?;
        match kind {
            "org" => Ok(Self::Org(id)),
            "district" => Ok(Self::District(id)),
            _ => Err(err()),
        }
    }
}

impl TryFrom<String> for ChainId {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<ChainId> for String {
    fn from(chain: ChainId) -> Self {
        chain.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    const DISTRICT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);

    #[test]
    fn scope_decides_chain() {
        assert_eq!(TenantScope::org(ORG).chain_id(), ChainId::Org(ORG));
        assert_eq!(
            TenantScope::org_in_district(ORG, DISTRICT).chain_id(),
            ChainId::Org(ORG)
        );
        assert_eq!(
            TenantScope::district(DISTRICT).chain_id(),
            ChainId::District(DISTRICT)
        );
        assert_eq!(TenantScope::PLATFORM.chain_id(), ChainId::Platform);
    }

    #[test]
    fn chain_id_string_round_trips() {
        for chain in [
            ChainId::Platform,
            ChainId::Org(ORG),
            ChainId::District(DISTRICT),
        ] {
            let s = chain.to_string();
            assert_eq!(s.parse::<ChainId>(), Ok(chain));
            let json = serde_json::to_string(&chain).expect("serialize");
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<ChainId>(&json).expect("parse"),
                chain
            );
        }
        assert_eq!(
            ChainId::Org(ORG).to_string(),
            "org:01900000-0000-7000-8000-000000000001"
        );
    }

    #[test]
    fn chain_id_rejects_non_canonical_forms() {
        for bad in [
            "",
            "Platform",
            "org:",
            "org:01900000-0000-7000-8000-00000000000G",
            "org:01900000-0000-7000-8000-00000000000A",
            "org:01900000000070008000000000000001",
            "school:01900000-0000-7000-8000-000000000001",
            " org:01900000-0000-7000-8000-000000000001",
        ] {
            assert!(bad.parse::<ChainId>().is_err(), "{bad:?} accepted");
        }
    }
}
