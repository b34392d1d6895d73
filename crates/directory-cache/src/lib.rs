//! The member directory's two-level cache: member profiles (5 minutes) and list pages
//! (2 minutes), in a [`cache::ScopedCache`] scoped by org. Search pages are not kept
//! (their texts are nearly all different): a search goes to the wrapped directory.
//!
//! [`CachedDirectory`] implements the domain's [`MemberDirectory`] port over another
//! implementation (the database adapter): a page is answered from the per-instance L1,
//! else the shared Redis L2, else the wrapped directory. Profiles go through
//! [`CachedDirectory::profile`] with the caller's loader.
//!
//! # Invalidation
//! Everything cached for an org is retired at once by
//! [`CachedDirectory::org_changed`], which callers invoke after **every committed write
//! that changes what a list or a profile of the org shows**: adding, inviting,
//! importing, changing, suspending, removing or restoring a member, a member editing
//! their profile, officer terms ending, a sign-in (it moves "last active"). One call is
//! one Redis `INCR` of the org's generation counter plus one bus message, whatever was
//! cached; nothing is enumerated. A reader never gets a value loaded before the last
//! invalidation its instance applied: the writer's instance at once, the others when
//! the bus message arrives (the TTLs bound staleness if it is lost).
//!
//! Cached values are domain rows (not API views): the API still shapes every response,
//! for each viewer, from the rows, the org's directory policy and the members' privacy
//! choices cached with them (`tenancy::privacy::visibility`). Which members a page
//! holds depends on its audience (`tenancy::directory::Audience`: the record for admins,
//! the directory for other members), which is part of the request and so of the key: a
//! page selected for admins is never served to a member, and no viewer's own fields are
//! in a page's selection. A change of the directory policy (`org.update`) or of a
//! member's choices (`member.update`) retires the org's pages like any other write.

use std::time::Duration;

use cache::{InvalidationBus, RedisError, ScopedCache, ScopedSettings, ScopedStats};
use serde::{Deserialize, Serialize};
use tenancy::directory::{
    MemberDirectory, MemberListRequest, MemberPage, MemberRow, MemberSearchRequest,
};
use tenancy::ports::StorageFailure;
use tenancy::{OrgId, UserId};
use uuid::Uuid;

/// The Redis key prefix (bump the version when the cached format changes).
pub const KEY_PREFIX: &str = "ptoc:dir:v4:";

/// How long a profile is kept (per layer).
pub const PROFILE_TTL: Duration = Duration::from_secs(5 * 60);

/// How long a list or search page is kept (per layer).
pub const PAGE_TTL: Duration = Duration::from_secs(2 * 60);

/// What the directory caches.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Entry {
    /// A member and their account (`None`: not a member).
    Profile(Option<Box<MemberRow>>),
    /// A page of a list or a search.
    Page(MemberPage),
}

/// A [`MemberDirectory`] with the two-level cache in front; see the
/// [crate documentation](crate). Cheap to clone.
#[derive(Debug, Clone)]
pub struct CachedDirectory<D> {
    directory: D,
    cache: ScopedCache<Entry>,
}

impl<D: MemberDirectory> CachedDirectory<D> {
    /// `directory` behind a cache with Redis at `redis_url` as L2 (`None`: L1 only),
    /// invalidated through `bus`.
    ///
    /// # Errors
    /// [`RedisError::InvalidUrl`] when `redis_url` is not a Redis URL.
    pub async fn new(
        directory: D,
        redis_url: Option<&str>,
        bus: InvalidationBus,
    ) -> Result<Self, RedisError> {
        Self::with_settings(
            directory,
            redis_url,
            bus,
            ScopedSettings::new("dir", KEY_PREFIX),
        )
        .await
    }

    /// As [`Self::new`] with an L1 of `l1_max_bytes`.
    ///
    /// # Errors
    /// [`RedisError::InvalidUrl`] when `redis_url` is not a Redis URL.
    pub async fn with_l1_budget(
        directory: D,
        redis_url: Option<&str>,
        bus: InvalidationBus,
        l1_max_bytes: u64,
    ) -> Result<Self, RedisError> {
        let mut settings = ScopedSettings::new("dir", KEY_PREFIX);
        settings.l1_max_bytes = l1_max_bytes;
        Self::with_settings(directory, redis_url, bus, settings).await
    }

    /// As [`Self::new`] with explicit settings (tests use their own key prefix).
    ///
    /// # Errors
    /// [`RedisError::InvalidUrl`] when `redis_url` is not a Redis URL.
    pub async fn with_settings(
        directory: D,
        redis_url: Option<&str>,
        bus: InvalidationBus,
        settings: ScopedSettings,
    ) -> Result<Self, RedisError> {
        Ok(Self {
            directory,
            cache: ScopedCache::new(redis_url, bus, settings).await?,
        })
    }

    /// The wrapped directory (uncached reads, e.g. exports that page through everything).
    pub fn uncached(&self) -> &D {
        &self.directory
    }

    /// The member `user` of `org` with their account, or `None`: cached for
    /// [`PROFILE_TTL`], else read with `load`.
    ///
    /// # Errors
    /// The loader's failure.
    pub async fn profile<F>(
        &self,
        org: OrgId,
        user: UserId,
        load: F,
    ) -> Result<Option<MemberRow>, StorageFailure>
    where
        F: Future<Output = Result<Option<MemberRow>, StorageFailure>>,
    {
        // Boxed: the database loaders' futures are large, and so would every caller's be.
        let load = Box::pin(load);
        let entry = Box::pin(self.cache.get_or_load(
            org.as_uuid(),
            format!("profile:{user}"),
            PROFILE_TTL,
            async { load.await.map(|row| Entry::Profile(row.map(Box::new))) },
        ))
        .await?;
        match &*entry {
            Entry::Profile(row) => Ok(row.as_deref().cloned()),
            Entry::Page(_) => Err(mismatch()),
        }
    }

    /// Call after every committed write that changes what `orgs` list, find or show
    /// (see the [crate documentation](crate)).
    pub async fn org_changed(&self, orgs: &[Uuid]) {
        self.cache.invalidate(orgs).await;
    }

    /// L1's weight now and its budget, in bytes (cache `directory`).
    pub async fn l1_bytes(&self) -> cache::CacheBytes {
        let (bytes, budget) = self.cache.l1_bytes().await;
        cache::CacheBytes {
            name: "directory",
            bytes,
            budget,
        }
    }

    /// Counts per layer.
    #[must_use]
    pub fn stats(&self) -> ScopedStats {
        self.cache.stats()
    }

    async fn page<F>(&self, org: OrgId, key: String, load: F) -> Result<MemberPage, StorageFailure>
    where
        F: Future<Output = Result<MemberPage, StorageFailure>>,
    {
        let load = Box::pin(load);
        let entry = Box::pin(self.cache.get_or_load(org.as_uuid(), key, PAGE_TTL, async {
            load.await.map(Entry::Page)
        }))
        .await?;
        match &*entry {
            Entry::Page(page) => Ok(page.clone()),
            Entry::Profile(_) => Err(mismatch()),
        }
    }
}

/// A cached value of the wrong kind (keys of the two kinds never collide; the L2 checks
/// the full key): reported as a storage failure rather than served.
fn mismatch() -> StorageFailure {
    StorageFailure("directory cache entry of the wrong kind".into())
}

impl<D: MemberDirectory> MemberDirectory for CachedDirectory<D> {
    async fn list(&self, req: &MemberListRequest) -> Result<MemberPage, StorageFailure> {
        // The request's full description is the key: every filter, the order, the cursor
        // and the page size.
        self.page(req.org, format!("list:{req:?}"), self.directory.list(req))
            .await
    }

    /// Not cached: search texts are nearly all different (people type different
    /// names, and type-ahead sends every prefix once), so a kept page is seldom asked
    /// again and only costs memory and a Redis write. (The in-process search index
    /// answers most searches without this; the database search is its fallback.)
    async fn search(&self, req: &MemberSearchRequest) -> Result<MemberPage, StorageFailure> {
        self.directory.search(req).await
    }
}

#[cfg(test)]
mod tests;
