//! The L2 value format: compact JSON with a format version.
//!
//! * compiled table: `{"v":1,"o":<CompiledOrg>}`;
//! * member context: `{"v":1,"g":<org generation>,"m":<MemberContext or null>}` (`null`
//!   caches "not a member").
//!
//! A value of another format version, or one that does not parse, is a miss (and gets
//! overwritten by the next load).

use permissions::{CompiledOrg, MemberContext};
use serde::{Deserialize, Serialize};

/// The format version written into every value.
pub(crate) const FORMAT: u32 = 1;

#[derive(Serialize)]
struct OrgOut<'a> {
    v: u32,
    o: &'a CompiledOrg,
}

#[derive(Deserialize)]
struct OrgIn {
    v: u32,
    o: CompiledOrg,
}

#[derive(Serialize)]
struct MemberOut<'a> {
    v: u32,
    g: u64,
    m: Option<&'a MemberContext>,
}

#[derive(Deserialize)]
struct MemberIn {
    v: u32,
    g: u64,
    m: Option<MemberContext>,
}

pub(crate) fn encode_org(org: &CompiledOrg) -> Option<String> {
    serde_json::to_string(&OrgOut { v: FORMAT, o: org }).ok()
}

pub(crate) fn decode_org(bytes: &[u8]) -> Option<CompiledOrg> {
    serde_json::from_slice::<OrgIn>(bytes)
        .ok()
        .filter(|value| value.v == FORMAT)
        .map(|value| value.o)
}

pub(crate) fn encode_member(org_generation: u64, member: Option<&MemberContext>) -> Option<String> {
    serde_json::to_string(&MemberOut {
        v: FORMAT,
        g: org_generation,
        m: member,
    })
    .ok()
}

/// `(org generation, member)`.
pub(crate) fn decode_member(bytes: &[u8]) -> Option<(u64, Option<MemberContext>)> {
    serde_json::from_slice::<MemberIn>(bytes)
        .ok()
        .filter(|value| value.v == FORMAT)
        .map(|value| (value.g, value.m))
}

#[cfg(test)]
mod tests {
    use permissions::{BuiltinRole, OrgChain, RoleRef};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn values_round_trip_and_other_versions_are_misses() {
        let org = CompiledOrg::compile(&OrgChain::standalone(Uuid::from_u128(1)), 4);
        let text = encode_org(&org).expect("encode");
        assert_eq!(decode_org(text.as_bytes()), Some(org));
        let member =
            MemberContext::active(Uuid::from_u128(2), RoleRef::builtin(BuiltinRole::Admin));
        let text = encode_member(4, Some(&member)).expect("encode");
        assert_eq!(decode_member(text.as_bytes()), Some((4, Some(member))));
        let text = encode_member(5, None).expect("encode");
        assert_eq!(decode_member(text.as_bytes()), Some((5, None)));
        assert_eq!(decode_member(br#"{"v":2,"g":5,"m":null}"#), None);
        assert_eq!(decode_org(b"not json"), None);
    }
}
