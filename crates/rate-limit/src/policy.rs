//! Who is limited how: callers ([`Subject`]), their budget ([`Tier`]), endpoint
//! classes ([`RateClass`]), the configured quotas ([`Policy`]) and the keys buckets are
//! stored under.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::backoff::BackoffPolicy;
use crate::quota::Quota;

/// Whom a request is counted against: its API key, else its user, else its client
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An API key.
    ApiKey(Uuid),
    /// A signed-in user.
    User(Uuid),
    /// An unauthenticated client: its address (an IPv6 client by its /64, which one
    /// subscriber usually holds whole), or `None` when unknown.
    Ip(Option<IpAddr>),
    /// An account's address, by [`account_digest`] (whether or not an account has it):
    /// what is sent *to* someone, counted against them however many clients ask.
    Account(String),
}

impl Subject {
    /// The client-address subject of `ip`.
    #[must_use]
    pub fn ip(ip: Option<IpAddr>) -> Self {
        Self::Ip(ip)
    }

    /// The stable text of the subject inside bucket keys.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::ApiKey(id) => format!("key:{}", id.simple()),
            Self::User(id) => format!("user:{}", id.simple()),
            Self::Account(digest) => format!("acct:{digest}"),
            Self::Ip(None) => "ip:unknown".to_owned(),
            Self::Ip(Some(IpAddr::V4(v4))) => format!("ip:{v4}"),
            Self::Ip(Some(IpAddr::V6(v6))) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("ip:{v4}"),
                None => {
                    let s = v6.segments();
                    format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

/// The budget a caller draws on, decided per request: for organization routes the
/// caller's role in that org (a user may be admin in one org and volunteer in another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// An org admin.
    Admin,
    /// A board member.
    BoardMember,
    /// A committee lead.
    CommitteeLead,
    /// A volunteer.
    Volunteer,
    /// An API key.
    ApiKey,
    /// A signed-in user outside an org route (or not a member of the path's org).
    Authenticated,
    /// No (valid) credentials: counted per client address.
    Anonymous,
}

impl Tier {
    /// Every tier.
    pub const ALL: [Self; 7] = [
        Self::Admin,
        Self::BoardMember,
        Self::CommitteeLead,
        Self::Volunteer,
        Self::ApiKey,
        Self::Authenticated,
        Self::Anonymous,
    ];

    /// The `snake_case` name (bucket keys, metrics, configuration).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::BoardMember => "board_member",
            Self::CommitteeLead => "committee_lead",
            Self::Volunteer => "volunteer",
            Self::ApiKey => "api_key",
            Self::Authenticated => "authenticated",
            Self::Anonymous => "anonymous",
        }
    }

    /// The tier of a built-in role name (`admin`, `board_member`, …).
    #[must_use]
    pub fn of_role(role: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .take(4)
            .find(|tier| tier.as_str() == role)
    }

    /// The default quota: 1000 / 500 / 300 / 100 per 15 minutes for the four roles,
    /// 1000 for an API key, 300 for a signed-in user outside an org, 300 per client
    /// address without credentials.
    #[must_use]
    pub fn default_quota(self) -> Quota {
        let per_15m = |n| quota(n, 900);
        match self {
            Self::Admin | Self::ApiKey => per_15m(1000),
            Self::BoardMember => per_15m(500),
            Self::CommitteeLead | Self::Authenticated | Self::Anonymous => per_15m(300),
            Self::Volunteer => per_15m(100),
        }
    }
}

/// A class of endpoint with its own, stricter budget per caller, declared on the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RateClass {
    /// Listing a collection (e.g. an org's users).
    List,
    /// Creating a resource (e.g. a user).
    Create,
    /// Updating a resource.
    Update,
    /// Deleting a resource.
    Delete,
    /// Searching.
    Search,
    /// Exporting (files, streams).
    Export,
    /// Sign-in attempts, per client address (credential stuffing).
    SignIn,
}

impl RateClass {
    /// Every class.
    pub const ALL: [Self; 7] = [
        Self::List,
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Search,
        Self::Export,
        Self::SignIn,
    ];

    /// The `snake_case` name (bucket keys, metrics, configuration, OpenAPI).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Search => "search",
            Self::Export => "export",
            Self::SignIn => "sign_in",
        }
    }

    /// The default quota: list 100/min, create 10/min, update 50/min, delete 10/min,
    /// search 30/min, export 5 per 5 min, sign-in 30/min per address.
    #[must_use]
    pub fn default_quota(self) -> Quota {
        match self {
            Self::List => quota(100, 60),
            Self::Create | Self::Delete => quota(10, 60),
            Self::Update => quota(50, 60),
            Self::Search | Self::SignIn => quota(30, 60),
            Self::Export => quota(5, 300),
        }
    }
}

impl fmt::Display for RateClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn quota(limit: u32, secs: u64) -> Quota {
    Quota::per_secs(limit, secs)
}

/// One bucket a request is checked against: its name (inside the subject's keys) and
/// quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// `tier:<tier>` or `class:<class>`.
    pub name: String,
    /// Its quota.
    pub quota: Quota,
    /// What the bucket limits, for metrics (`<class>` or `<tier>`).
    pub label: &'static str,
}

/// The configured quotas (`None`: that tier or class is not limited) and the sign-in
/// back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Per tier.
    pub tiers: BTreeMap<Tier, Option<Quota>>,
    /// Per endpoint class.
    pub classes: BTreeMap<RateClass, Option<Quota>>,
    /// Sign-in attempts per account (normalized e-mail) from clients without a device
    /// token for it, and per device token.
    pub sign_in_account: BackoffPolicy,
    /// Sign-in attempts per client address.
    pub sign_in_ip: BackoffPolicy,
}

impl Default for Policy {
    /// The issue's defaults; sign-in: 5 free attempts per account and 20 per address,
    /// then 1 s doubling up to 15 min, forgotten 15 min after the last failure.
    fn default() -> Self {
        let backoff = |free| BackoffPolicy {
            free_failures: free,
            base: Duration::from_secs(1),
            max: Duration::from_secs(900),
            window: Duration::from_secs(900),
        };
        Self {
            tiers: Tier::ALL
                .into_iter()
                .map(|t| (t, Some(t.default_quota())))
                .collect(),
            classes: RateClass::ALL
                .into_iter()
                .map(|c| (c, Some(c.default_quota())))
                .collect(),
            sign_in_account: backoff(5),
            sign_in_ip: backoff(20),
        }
    }
}

impl Policy {
    /// The buckets of one request: its tier's, then its class's (each when limited).
    #[must_use]
    pub fn buckets(&self, tier: Tier, class: Option<RateClass>) -> Vec<Bucket> {
        let mut out = Vec::with_capacity(2);
        if let Some(Some(quota)) = self.tiers.get(&tier) {
            out.push(Bucket {
                name: format!("tier:{}", tier.as_str()),
                quota: *quota,
                label: tier.as_str(),
            });
        }
        if let Some(class) = class
            && let Some(Some(quota)) = self.classes.get(&class)
        {
            out.push(Bucket {
                name: format!("class:{}", class.as_str()),
                quota: *quota,
                label: class.as_str(),
            });
        }
        out
    }
}

/// The storage key of `bucket` for `subject`: `{prefix}rl:{<subject>}:<bucket>`. The
/// subject is the Redis Cluster hash tag, so one request's buckets share a slot.
#[must_use]
pub fn bucket_key(prefix: &str, subject: &Subject, bucket: &str) -> String {
    format!("{prefix}rl:{{{}}}:{bucket}", subject.key())
}

/// The hex digest identifying an account in back-off keys (and device tokens): SHA-256
/// of its normalized (trimmed, lower-case) e-mail, first 16 bytes, so addresses are not
/// stored.
#[must_use]
pub fn account_digest(email: &str) -> String {
    let normalized = email.trim().to_lowercase();
    let digest = Sha256::digest(normalized.as_bytes());
    hex::encode(&digest[..16])
}

/// The back-off key of an account. Every back-off key carries the hash tag
/// `{sign_in}`, so one attempt's keys (account or device, and address) share a Redis
/// Cluster slot and are reserved by one script.
#[must_use]
pub fn account_backoff_key(prefix: &str, email: &str) -> String {
    format!("{prefix}bo:{{sign_in}}:acct:{}", account_digest(email))
}

/// The back-off key of a device token (by its id, hashed).
#[must_use]
pub fn device_backoff_key(prefix: &str, device: &str) -> String {
    let digest = Sha256::digest(device.as_bytes());
    format!("{prefix}bo:{{sign_in}}:dev:{}", hex::encode(&digest[..16]))
}

/// The back-off key of a client address.
#[must_use]
pub fn ip_backoff_key(prefix: &str, ip: Option<IpAddr>) -> String {
    format!("{prefix}bo:{{sign_in}}:{}", Subject::Ip(ip).key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_distinct_stable_keys() {
        let id = Uuid::from_u128(0x0123);
        assert_eq!(
            Subject::ApiKey(id).key(),
            "key:00000000000000000000000000000123"
        );
        assert_eq!(
            Subject::User(id).key(),
            "user:00000000000000000000000000000123"
        );
        assert_eq!(
            Subject::ip("203.0.113.7".parse().ok()).key(),
            "ip:203.0.113.7"
        );
        assert_eq!(Subject::ip(None).key(), "ip:unknown");
        // A v4-mapped address is the v4 client; v6 clients by their /64.
        assert_eq!(
            Subject::ip("::ffff:203.0.113.7".parse().ok()).key(),
            "ip:203.0.113.7"
        );
        let a = Subject::ip("2001:db8:1:2:aaaa::1".parse().ok()).key();
        let b = Subject::ip("2001:db8:1:2:bbbb::9".parse().ok()).key();
        assert_eq!(a, b);
        assert_eq!(a, "ip6:2001:db8:1:2::/64");
        assert_ne!(a, Subject::ip("2001:db8:1:3::1".parse().ok()).key());
    }

    #[test]
    fn keys_share_the_subject_hash_tag() {
        let s = Subject::User(Uuid::from_u128(7));
        assert_eq!(
            bucket_key("p:", &s, "tier:admin"),
            "p:rl:{user:00000000000000000000000000000007}:tier:admin"
        );
        let a = account_backoff_key("p:", " Jane@Example.org ");
        assert_eq!(a, account_backoff_key("p:", "jane@example.org"));
        assert!(a.starts_with("p:bo:{sign_in}:acct:") && !a.contains("jane"));
        assert_eq!(
            ip_backoff_key("p:", "10.0.0.1".parse().ok()),
            "p:bo:{sign_in}:ip:10.0.0.1"
        );
        let d = device_backoff_key("p:", "0123");
        assert!(d.starts_with("p:bo:{sign_in}:dev:") && !d.contains("0123"));
    }

    #[test]
    fn default_policy_matches_the_issue() {
        let p = Policy::default();
        let q = |t: Tier| p.tiers[&t].map(|q| q.to_string());
        assert_eq!(q(Tier::Admin).as_deref(), Some("1000/15m"));
        assert_eq!(q(Tier::BoardMember).as_deref(), Some("500/15m"));
        assert_eq!(q(Tier::CommitteeLead).as_deref(), Some("300/15m"));
        assert_eq!(q(Tier::Volunteer).as_deref(), Some("100/15m"));
        let c = |c: RateClass| p.classes[&c].map(|q| q.to_string());
        assert_eq!(c(RateClass::List).as_deref(), Some("100/1m"));
        assert_eq!(c(RateClass::Create).as_deref(), Some("10/1m"));
        assert_eq!(c(RateClass::Update).as_deref(), Some("50/1m"));
        assert_eq!(c(RateClass::Delete).as_deref(), Some("10/1m"));
        assert_eq!(c(RateClass::Search).as_deref(), Some("30/1m"));
        assert_eq!(c(RateClass::Export).as_deref(), Some("5/5m"));
    }

    #[test]
    fn a_request_checks_its_tier_and_its_class() {
        let mut p = Policy::default();
        let names = |b: Vec<Bucket>| b.into_iter().map(|b| b.name).collect::<Vec<_>>();
        assert_eq!(
            names(p.buckets(Tier::Volunteer, Some(RateClass::Export))),
            ["tier:volunteer", "class:export"]
        );
        assert_eq!(names(p.buckets(Tier::Anonymous, None)), ["tier:anonymous"]);
        p.tiers.insert(Tier::Anonymous, None);
        assert!(p.buckets(Tier::Anonymous, None).is_empty());
        assert_eq!(
            names(p.buckets(Tier::Anonymous, Some(RateClass::SignIn))),
            ["class:sign_in"]
        );
        assert_eq!(Tier::of_role("board_member"), Some(Tier::BoardMember));
        assert_eq!(Tier::of_role("api_key"), None);
    }
}
