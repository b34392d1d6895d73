//! The caller's own account as `GET /me` shows it, answered from a two-level cache
//! instead of the database (issue #20: it was the mix's dearest read, four queries).
//!
//! One [`cache::ScopedCache`] holds two kinds of entries, each in its own scope:
//! - **per user** (scope: the user's id): what the account shows (name, address, whether
//!   it is proven, language, version) and the user's memberships as (org, role, status);
//! - **per org** (scope: the org's id): what those memberships show of the org (its
//!   name, whether it is archived, its custom roles' names and ranks), shared by every
//!   member's view.
//!
//! # Invalidation
//! The after-commit dispatcher (`crate::dispatch`) retires a user's scope after every
//! committed change of their account or of one of their memberships
//! (`Effect::Account`, never coalesced into the org: a 500-row import retires 500 users
//! in one call), and an org's scope after every change of its name, status or roles
//! (`Effect::Org`, `Effect::OrgFacts`). The org's part being separate, renaming an org
//! or a role retires one scope, not every member's. Both kinds of entry live
//! [`TTL`] at most, which bounds staleness if an invalidation message is lost.
//!
//! A membership whose org is archived is not shown: archiving (`org.delete`) ends every
//! membership of the org, so the user's entry may still list it until its own reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cache::{InvalidationBus, RedisError, ScopedCache, ScopedSettings, ScopedStats};
use permissions::BuiltinRole;
use serde::{Deserialize, Serialize};
use tenancy::ports::{OrgRepository, SessionRepository, StorageFailure};
use tenancy::{Language, MembershipStatus, OrgId, OrgStatus, RoleAssignment, User, UserId};
use uuid::Uuid;

/// The Redis key prefix (bump the version when the cached format changes).
pub const KEY_PREFIX: &str = "ptoc:acct:v1:";

/// How long an entry is kept (per layer).
pub const TTL: Duration = Duration::from_secs(5 * 60);

/// The key of a user's entry in their scope.
const ACCOUNT_KEY: &str = "account";
/// The key of an org's entry in its scope.
const ORG_KEY: &str = "org";

/// What the cache holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Entry {
    /// A user's part (`None`: no such user).
    Account(Option<Box<AccountPart>>),
    /// An org's part (`None`: no such org).
    Org(Option<OrgPart>),
}

/// A user's part of the view.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountPart {
    /// The account (its phone and last sign-in are not kept: the view shows neither).
    user: User,
    email_verified: bool,
    locale: Option<Language>,
    version: i64,
    memberships: Vec<MembershipPart>,
}

/// One membership as the user's part holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MembershipPart {
    org_id: Uuid,
    role: RolePart,
    status: MembershipStatus,
}

/// A membership's role: a built-in one, or a custom role named by the org's part.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum RolePart {
    Builtin(BuiltinRole),
    Custom(Uuid),
}

/// An org's part of its members' views.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrgPart {
    name: String,
    archived: bool,
    /// Custom roles: id → (name, rank).
    roles: HashMap<Uuid, (String, BuiltinRole)>,
}

/// The caller's account with their memberships (what `GET /me` shows).
#[derive(Debug, Clone)]
pub struct AccountView {
    /// The account.
    pub user: User,
    /// Whether the address is proven.
    pub email_verified: bool,
    /// The language of the account's e-mail (`None`: English).
    pub locale: Option<Language>,
    /// The account's version.
    pub version: i64,
    /// Their memberships, in the order they joined.
    pub memberships: Vec<MembershipShown>,
}

/// One membership in an [`AccountView`].
#[derive(Debug, Clone)]
pub struct MembershipShown {
    /// The org.
    pub org_id: OrgId,
    /// Its name.
    pub org_name: String,
    /// The role (a custom role without its extra keys: the view shows its name and rank).
    pub role: RoleAssignment,
    /// The membership's status.
    pub status: MembershipStatus,
}

/// `GET /me`'s cache over the account and org stores; see the [module documentation](self).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccountViews {
    sessions: tenancy_store::SeaOrmSessionRepository,
    orgs: tenancy_store::SeaOrmOrgRepository,
    cache: ScopedCache<Entry>,
}

impl AccountViews {
    /// The views over `sessions` (accounts) and `orgs`, with Redis at `redis_url` as L2
    /// (`None`: L1 only) and an L1 of `l1_max_bytes`, invalidated through `bus`.
    ///
    /// # Errors
    /// [`RedisError::InvalidUrl`] when `redis_url` is not a Redis URL.
    pub async fn new(
        sessions: tenancy_store::SeaOrmSessionRepository,
        orgs: tenancy_store::SeaOrmOrgRepository,
        redis_url: Option<&str>,
        bus: InvalidationBus,
        l1_max_bytes: u64,
    ) -> Result<Self, RedisError> {
        let mut settings = ScopedSettings::new("acct", KEY_PREFIX);
        settings.l1_max_bytes = l1_max_bytes;
        Ok(Self {
            sessions,
            orgs,
            cache: ScopedCache::new(redis_url, bus, settings).await?,
        })
    }

    /// `user`'s account with their memberships (`None`: no such user).
    ///
    /// # Errors
    /// The stores' failure.
    pub async fn account(&self, user: UserId) -> Result<Option<AccountView>, StorageFailure> {
        match self.compose(user, false).await? {
            Some(view) => Ok(view),
            // A user's part named a custom role its cached org part does not know (the
            // org's part was loaded before the role was given; both are retired by that
            // change, and this instance has not applied one yet): both from the stores.
            None => self.compose(user, true).await?.ok_or_else(|| {
                StorageFailure("a membership names a role its org does not have".into())
            }),
        }
    }

    /// The view from both parts, cached or (`fresh`) read from the stores; `None` when
    /// a membership names a custom role the org's part does not know.
    async fn compose(
        &self,
        user: UserId,
        fresh: bool,
    ) -> Result<Option<Option<AccountView>>, StorageFailure> {
        let entry = self.account_part(user, fresh).await?;
        let Entry::Account(Some(account)) = &*entry else {
            return Ok(Some(None));
        };
        let mut memberships = Vec::with_capacity(account.memberships.len());
        for m in &account.memberships {
            let org_entry = self.org_part(m.org_id, fresh).await?;
            let Entry::Org(Some(org)) = &*org_entry else {
                continue;
            };
            if org.archived {
                continue;
            }
            let role = match m.role {
                RolePart::Builtin(role) => RoleAssignment::builtin(role),
                RolePart::Custom(id) => match org.roles.get(&id) {
                    Some((name, rank)) => RoleAssignment::Custom {
                        id: tenancy::RoleId(id),
                        name: name.clone(),
                        counts_as: *rank,
                        extra_keys: permissions::KeySet::default(),
                    },
                    None => return Ok(None),
                },
            };
            memberships.push(MembershipShown {
                org_id: OrgId::from_uuid(m.org_id),
                org_name: org.name.clone(),
                role,
                status: m.status,
            });
        }
        Ok(Some(Some(AccountView {
            user: account.user.clone(),
            email_verified: account.email_verified,
            locale: account.locale.clone(),
            version: account.version,
            memberships,
        })))
    }

    /// Call after a committed change of these users' accounts or memberships, or of
    /// these orgs' names, status or roles (ids of either kind, in one call).
    pub async fn invalidate(&self, scopes: &[Uuid]) {
        self.cache.invalidate(scopes).await;
    }

    /// Counts per layer.
    #[must_use]
    pub fn stats(&self) -> ScopedStats {
        self.cache.stats()
    }

    /// L1's weight and budget, in bytes (`ptoc_cache_bytes{cache="account_views"}`).
    pub async fn l1_bytes(&self) -> cache::CacheBytes {
        let (bytes, budget) = self.cache.l1_bytes().await;
        cache::CacheBytes {
            name: "account_views",
            bytes,
            budget,
        }
    }

    /// A user's part, from the cache or (`fresh`) from the stores.
    async fn account_part(&self, user: UserId, fresh: bool) -> Result<Arc<Entry>, StorageFailure> {
        if fresh {
            let part = self.load_account(user).await?;
            return Ok(Arc::new(Entry::Account(part.map(Box::new))));
        }
        self.cache
            .get_or_load(user.as_uuid(), ACCOUNT_KEY.to_owned(), TTL, async {
                let part = self.load_account(user).await?;
                Ok(Entry::Account(part.map(Box::new)))
            })
            .await
    }

    /// An org's part, from the cache or (`fresh`) from the stores.
    async fn org_part(&self, org: Uuid, fresh: bool) -> Result<Arc<Entry>, StorageFailure> {
        if fresh {
            let part = self.load_org(OrgId::from_uuid(org)).await?;
            return Ok(Arc::new(Entry::Org(part)));
        }
        self.cache
            .get_or_load(org, ORG_KEY.to_owned(), TTL, async {
                self.load_org(OrgId::from_uuid(org)).await.map(Entry::Org)
            })
            .await
    }

    async fn load_account(&self, user: UserId) -> Result<Option<AccountPart>, StorageFailure> {
        let Some(creds) = self.sessions.credentials_by_id(user).await? else {
            return Ok(None);
        };
        let memberships = self.orgs.memberships_of(user).await?;
        let mut shown = creds.user;
        shown.phone = None;
        shown.last_active_at = None;
        Ok(Some(AccountPart {
            user: shown,
            email_verified: creds.email_verified,
            locale: creds.locale,
            version: creds.version,
            memberships: memberships
                .into_iter()
                .map(|(org, m)| MembershipPart {
                    org_id: org.id.as_uuid(),
                    role: match m.role {
                        RoleAssignment::Builtin { role } => RolePart::Builtin(role),
                        RoleAssignment::Custom { id, .. } => RolePart::Custom(id.0),
                    },
                    status: m.status,
                })
                .collect(),
        }))
    }

    async fn load_org(&self, org: OrgId) -> Result<Option<OrgPart>, StorageFailure> {
        let Some(found) = self.orgs.get_org(org).await? else {
            return Ok(None);
        };
        let roles = self.orgs.list_roles(org).await?;
        Ok(Some(OrgPart {
            name: found.name,
            archived: found.status == OrgStatus::Archived,
            roles: roles
                .into_iter()
                .map(|r| (r.id.0, (r.name, r.counts_as)))
                .collect(),
        }))
    }
}
