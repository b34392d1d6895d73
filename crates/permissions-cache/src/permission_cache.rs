//! [`PermissionCache`]: L1 (moka) → L2 (Redis) → database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use cache::InvalidationBus;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use permissions::{CompiledOrg, LoadError, MemberContext, PermissionKey, PermissionStore};
use permissions_store::SeaOrmPermissionStore;
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::codec;
use crate::error::CacheError;
use crate::message::Invalidation;
use crate::port::CachedPermissionStore;
use crate::settings::CacheSettings;
use crate::stats::{CacheLayerStats, Counters, bump};
use cache::generations::{Lookup, SharedGenerations as L2};

/// Number of invalidation stripes (a power of two).
const STRIPES: usize = 1024;

/// A compiled table in L1, with the stripe epoch read before it was loaded.
#[derive(Clone)]
struct OrgSlot {
    epoch: u64,
    compiled: Arc<CompiledOrg>,
    /// The table's heap size estimate (its JSON length), for the weigher.
    heap: usize,
}

impl OrgSlot {
    fn new(epoch: u64, compiled: Arc<CompiledOrg>) -> Self {
        let heap = cache::weight::json_len(&*compiled);
        Self {
            epoch,
            compiled,
            heap,
        }
    }
}

/// A member context (or "not a member") in L1: the stripe epoch read before it was
/// loaded, and the org generation it is known to be at least as fresh as.
#[derive(Clone)]
struct MemberSlot {
    epoch: u64,
    org_generation: u64,
    member: Option<Arc<MemberContext>>,
    /// The context's heap size estimate (its JSON length), for the weigher.
    heap: usize,
}

impl MemberSlot {
    /// Usable together with `org`: loaded after the org's last L1 invalidation that
    /// `org` reflects, and not older than `org`'s generation.
    fn fits(&self, org: &OrgSlot) -> bool {
        self.epoch >= org.epoch && self.org_generation >= org.compiled.generation()
    }
}

/// The L2 key of `org`'s compiled table without its generation suffix.
fn org_base(l2: &L2, org: Uuid) -> String {
    format!("{}org:{org}:g", l2.prefix())
}

/// The L2 key of a member context without its generation suffix.
fn member_base(l2: &L2, org: Uuid, user: Uuid) -> String {
    format!("{}member:{org}:{user}:g", l2.prefix())
}

fn fresh_enough(compiled: &CompiledOrg, min_generation: Option<u64>) -> bool {
    min_generation.is_none_or(|min| compiled.generation() >= min)
}

struct Inner {
    store: SeaOrmPermissionStore,
    orgs: Cache<Uuid, OrgSlot>,
    members: Cache<(Uuid, Uuid), MemberSlot>,
    /// The byte budgets of `orgs` and `members`.
    budgets: (u64, u64),
    l2: Option<L2>,
    bus: InvalidationBus,
    /// Per-stripe invalidation epochs (an org's stripe: low bits of its id). Bumped
    /// before every L1 eviction; see the crate documentation.
    epochs: [AtomicU64; STRIPES],
    counters: Arc<Counters>,
    applied: broadcast::Sender<Invalidation>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        if let Some(l2) = &self.l2 {
            l2.shutdown();
        }
    }
}

/// The caching adapter in front of the permission store: per-instance moka L1, shared
/// Redis L2, the database behind. See the [crate documentation](crate) for the design.
///
/// Cheap to clone (one `Arc`); clones share everything.
#[derive(Clone)]
pub struct PermissionCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PermissionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermissionCache")
            .field("l2", &self.inner.l2)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PermissionCache {
    /// A cache over `store`, with Redis at `redis_url` as L2 (`None`: L1 and database
    /// only), evicting its L1 on every message of `bus`.
    ///
    /// Subscribes to `bus` before returning (no later invalidation is missed) and spawns
    /// the listener and the Redis probe on the current Tokio runtime. An unreachable Redis
    /// is not an error: the cache starts degraded and recovers by itself.
    ///
    /// # Errors
    /// [`CacheError::InvalidRedisUrl`] when `redis_url` is not a Redis URL.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub async fn new(
        store: SeaOrmPermissionStore,
        redis_url: Option<&str>,
        bus: InvalidationBus,
        settings: CacheSettings,
    ) -> Result<Self, CacheError> {
        let counters = Arc::new(Counters::default());
        let l2 = match redis_url {
            Some(url) => Some(
                L2::connect(url, &settings.generations())
                    .await
                    .map_err(|e| CacheError::InvalidRedisUrl(e.to_string()))?,
            ),
            None => None,
        };
        let receiver = bus.subscribe();
        let (applied, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            store,
            orgs: Cache::builder()
                .max_capacity(settings.l1_org_bytes)
                .weigher(|_: &Uuid, slot: &OrgSlot| {
                    cache::weight::entry_bytes::<Uuid, OrgSlot>(slot.heap)
                })
                .time_to_live(settings.l1_ttl)
                .build(),
            members: Cache::builder()
                .max_capacity(settings.l1_member_bytes)
                .weigher(|_: &(Uuid, Uuid), slot: &MemberSlot| {
                    cache::weight::entry_bytes::<(Uuid, Uuid), MemberSlot>(slot.heap)
                })
                .time_to_live(settings.l1_ttl)
                .build(),
            budgets: (settings.l1_org_bytes, settings.l1_member_bytes),
            l2,
            bus,
            epochs: std::array::from_fn(|_| AtomicU64::new(0)),
            counters,
            applied,
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = vec![tokio::spawn(listen(Arc::downgrade(&inner), receiver)).abort_handle()];
        if let Some(l2) = &inner.l2 {
            let probe = cache::generations::probe(
                Arc::downgrade(&inner),
                |inner| inner.l2.as_ref(),
                l2.wake(),
                recovered,
            );
            tasks.push(tokio::spawn(probe).abort_handle());
        }
        *inner.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
        Ok(Self { inner })
    }

    /// The compiled table of `org`, at least at generation `min_generation` when given
    /// (a consistency token returned by a write); `None` for an unknown org.
    ///
    /// L1 hit: one moka lookup. Otherwise L2, then the database; concurrent misses of
    /// the same org load once. A cached table older than `min_generation` is a miss; if
    /// the database itself is older (a token from the future), its state is returned.
    ///
    /// # Errors
    /// [`CacheError::Load`] when the database fails. Redis failures are not errors.
    pub async fn compiled_org(
        &self,
        org: Uuid,
        min_generation: Option<u64>,
    ) -> Result<Option<Arc<CompiledOrg>>, CacheError> {
        Ok(self
            .org_slot(org, min_generation)
            .await?
            .map(|slot| slot.compiled))
    }

    /// The membership of `user` in `org` (any status), at least as fresh as the org's
    /// table at `min_generation`; `None` when the org is unknown or `user` is not a
    /// member.
    ///
    /// # Errors
    /// [`CacheError::Load`] when the database fails.
    pub async fn member(
        &self,
        org: Uuid,
        user: Uuid,
        min_generation: Option<u64>,
    ) -> Result<Option<Arc<MemberContext>>, CacheError> {
        let Some(org_slot) = self.org_slot(org, min_generation).await? else {
            return Ok(None);
        };
        Ok(self.member_slot(&org_slot, org, user).await?.member)
    }

    /// [`permissions::check`] of `user`'s `key` in `org` at `now`, from state at least
    /// at `min_generation`: `Some(allowed)`, or `None` when the org is unknown or `user`
    /// is not a member (callers answer both as "denied" / 404).
    ///
    /// Warm, this is two moka lookups, two `Arc` clones and the check: no I/O and no
    /// allocation.
    ///
    /// # Errors
    /// [`CacheError::Load`] when the database fails.
    pub async fn check(
        &self,
        org: Uuid,
        user: Uuid,
        key: PermissionKey,
        now: OffsetDateTime,
        min_generation: Option<u64>,
    ) -> Result<Option<bool>, CacheError> {
        let Some(org_slot) = self.org_slot(org, min_generation).await? else {
            return Ok(None);
        };
        let member_slot = self.member_slot(&org_slot, org, user).await?;
        Ok(member_slot
            .member
            .as_deref()
            .map(|member| permissions::check(&org_slot.compiled, member, key, now)))
    }

    /// Call after a write that changed what `orgs` resolve or who holds what in them (an
    /// org settings save, a district or school template change with the orgs it returned,
    /// a grant or revoke, a custom role change). In order:
    ///
    /// 1. bumps each org's L2 generation counter (one round trip for all), so no instance
    ///    reads the old L2 values again; while Redis fails, the bumps are deferred to its
    ///    recovery (and done before L2 is read again);
    /// 2. evicts this instance's L1 for the orgs (their member contexts included), so the
    ///    next request here reloads;
    /// 3. publishes `perm:org:<id>` for each org, so every other instance evicts too.
    pub async fn org_changed(&self, orgs: &[Uuid]) {
        if orgs.is_empty() {
            return;
        }
        if let Some(l2) = &self.inner.l2 {
            l2.bump_or_defer(orgs).await;
        }
        for &org in orgs {
            self.inner.apply(Invalidation::Org(org)).await;
        }
        let messages: Vec<String> = orgs
            .iter()
            .filter_map(|&org| Invalidation::Org(org).to_message())
            .collect();
        futures_util::future::join_all(messages.iter().map(|m| self.inner.bus.publish(m))).await;
    }

    /// Call after a change to one membership that does not bump the org's
    /// `permissions_version` (joining, leaving, suspension, role change, user
    /// disabled): bumps the org's L2 generation (the org's L2 member contexts and table
    /// are then reloaded once), evicts the member here and publishes
    /// `perm:member:<org>:<user>`.
    pub async fn member_changed(&self, org: Uuid, user: Uuid) {
        if let Some(l2) = &self.inner.l2 {
            l2.bump_or_defer(&[org]).await;
        }
        let invalidation = Invalidation::Member { org, user };
        self.inner.apply(invalidation).await;
        if let Some(message) = invalidation.to_message() {
            self.inner.bus.publish(&message).await;
        }
    }

    /// `store` (typically the request's audited store) behind the domain's
    /// [`PermissionStore`] port with this cache in front: see [`CachedPermissionStore`].
    #[must_use]
    pub fn port<S: PermissionStore>(&self, store: S) -> CachedPermissionStore<S> {
        CachedPermissionStore::new(self.clone(), store)
    }

    /// The L1 tables' weights now (pending evictions applied first) and budgets, in
    /// bytes: `permission_orgs` and `permission_members`.
    pub async fn l1_bytes(&self) -> [cache::CacheBytes; 2] {
        let inner = &self.inner;
        inner.orgs.run_pending_tasks().await;
        inner.members.run_pending_tasks().await;
        [
            cache::CacheBytes {
                name: "permission_orgs",
                bytes: inner.orgs.weighted_size(),
                budget: inner.budgets.0,
            },
            cache::CacheBytes {
                name: "permission_members",
                bytes: inner.members.weighted_size(),
                budget: inner.budgets.1,
            },
        ]
    }

    /// Hit and miss counts per layer since creation.
    #[must_use]
    pub fn stats(&self) -> CacheLayerStats {
        let mut stats = self.inner.counters.snapshot();
        stats.redis_errors = self.inner.l2.as_ref().map_or(0, L2::errors);
        stats
    }

    /// Whether Redis is configured and currently used (the circuit is closed).
    #[must_use]
    pub fn l2_available(&self) -> bool {
        self.inner.l2.as_ref().is_some_and(L2::usable)
    }

    /// A receiver of every invalidation this instance applies to its L1 from now on
    /// (its own and those received from other instances; [`Invalidation::All`] after
    /// the bus lagged or Redis recovered). For tests and diagnostics.
    #[must_use]
    pub fn applied_invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.inner.applied.subscribe()
    }

    /// The org's L1 slot, fresh enough for `min_generation`.
    async fn org_slot(
        &self,
        org: Uuid,
        min_generation: Option<u64>,
    ) -> Result<Option<OrgSlot>, CacheError> {
        if let Some(slot) = self.inner.orgs.get(&org).await
            && fresh_enough(&slot.compiled, min_generation)
        {
            bump(&self.inner.counters.l1_hits);
            return Ok(Some(slot));
        }
        bump(&self.inner.counters.l1_misses);
        Box::pin(self.inner.load_org(org, min_generation)).await
    }

    /// The member's L1 slot, fitting `org_slot`.
    async fn member_slot(
        &self,
        org_slot: &OrgSlot,
        org: Uuid,
        user: Uuid,
    ) -> Result<MemberSlot, CacheError> {
        if let Some(slot) = self.inner.members.get(&(org, user)).await
            && slot.fits(org_slot)
        {
            bump(&self.inner.counters.l1_hits);
            return Ok(slot);
        }
        bump(&self.inner.counters.l1_misses);
        Box::pin(self.inner.load_member(org_slot, org, user)).await
    }
}

impl Inner {
    fn epoch(&self, org: Uuid) -> &AtomicU64 {
        // The low bits of the id (random in v4 and v7 ids).
        let stripe = usize::try_from(org.as_u64_pair().1 % STRIPES as u64).unwrap_or(0);
        &self.epochs[stripe]
    }

    /// Evicts per `invalidation`: first bumps the stripe epoch, so a load that started
    /// before (and may have read older state) cannot stay cached, then removes the entry.
    async fn apply(&self, invalidation: Invalidation) {
        match invalidation {
            Invalidation::Org(org) => {
                self.epoch(org).fetch_add(1, Ordering::SeqCst);
                self.orgs.invalidate(&org).await;
            }
            Invalidation::Member { org, user } => {
                self.epoch(org).fetch_add(1, Ordering::SeqCst);
                self.members.invalidate(&(org, user)).await;
            }
            Invalidation::All => {
                for epoch in &self.epochs {
                    epoch.fetch_add(1, Ordering::SeqCst);
                }
                self.orgs.invalidate_all();
                self.members.invalidate_all();
            }
        }
        bump(&self.counters.invalidations_applied);
        let _ = self.applied.send(invalidation);
    }

    /// The slow path of [`PermissionCache::org_slot`]: L2, then the database, once per
    /// key however many callers wait.
    async fn load_org(
        &self,
        org: Uuid,
        min_generation: Option<u64>,
    ) -> Result<Option<OrgSlot>, CacheError> {
        let result = self
            .orgs
            .entry(org)
            .and_try_compute_with(|current| async move {
                let current = current.map(moka::Entry::into_value);
                if let Some(slot) = &current
                    && fresh_enough(&slot.compiled, min_generation)
                {
                    // Loaded by the caller we waited for.
                    return Ok(Op::Nop);
                }
                // Never go back behind what this instance already saw.
                let floor =
                    min_generation.max(current.as_ref().map(|slot| slot.compiled.generation()));
                let epoch = self.epoch(org).load(Ordering::SeqCst);
                Ok::<_, LoadError>(match self.fetch_org(org, floor).await? {
                    Some(compiled) => Op::Put(OrgSlot::new(epoch, compiled)),
                    None => Op::Remove,
                })
            })
            .await?;
        Ok(match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                let slot = entry.into_value();
                if self.epoch(org).load(Ordering::SeqCst) != slot.epoch {
                    // Invalidated while loading: answer this caller, but keep nothing.
                    self.orgs.invalidate(&org).await;
                }
                Some(slot)
            }
            CompResult::Unchanged(entry) => Some(entry.into_value()),
            CompResult::StillNone(_) | CompResult::Removed(_) => None,
        })
    }

    /// The org's compiled table from L2 (if at least at `floor`) or the database.
    async fn fetch_org(
        &self,
        org: Uuid,
        floor: Option<u64>,
    ) -> Result<Option<Arc<CompiledOrg>>, LoadError> {
        let mut store_under = None;
        let mut seed = false;
        let l2 = self.l2.as_ref();
        if let Some(l2) = l2 {
            if !l2.usable() {
                bump(&self.counters.l2_skipped);
            } else {
                match l2.lookup(org, org_base(l2, org)).await {
                    Some(Lookup::Found { counter, value }) => {
                        if let Some(compiled) = value
                            .as_deref()
                            .and_then(codec::decode_org)
                            .filter(|compiled| fresh_enough(compiled, floor))
                        {
                            bump(&self.counters.l2_hits);
                            return Ok(Some(Arc::new(compiled)));
                        }
                        bump(&self.counters.l2_misses);
                        store_under = Some(counter);
                    }
                    Some(Lookup::NoCounter) => {
                        bump(&self.counters.l2_misses);
                        seed = true;
                    }
                    None => bump(&self.counters.l2_skipped),
                }
            }
        }
        if let (true, Some(l2)) = (seed, l2) {
            // Seed the counter from a version read before the table is loaded: the table
            // stored under it is then at least as fresh as the counter.
            let Some(version) = self.store.permissions_version(org).await? else {
                return Ok(None);
            };
            store_under = l2.seed(org, version, org_base(l2, org)).await;
        }
        bump(&self.counters.db_loads);
        let Some(compiled) = self.store.compile_org(org).await? else {
            return Ok(None);
        };
        if let (Some(counter), Some(l2)) = (store_under, l2)
            && let Some(value) = codec::encode_org(&compiled)
        {
            l2.store(format!("{}{counter}", org_base(l2, org)), value)
                .await;
        }
        Ok(Some(Arc::new(compiled)))
    }

    /// The slow path of [`PermissionCache::member_slot`].
    async fn load_member(
        &self,
        org_slot: &OrgSlot,
        org: Uuid,
        user: Uuid,
    ) -> Result<MemberSlot, CacheError> {
        let result = self
            .members
            .entry((org, user))
            .and_try_compute_with(|current| async move {
                if let Some(entry) = current
                    && entry.value().fits(org_slot)
                {
                    return Ok(Op::Nop);
                }
                let epoch = self.epoch(org).load(Ordering::SeqCst);
                let (org_generation, member) = self
                    .fetch_member(org, user, org_slot.compiled.generation())
                    .await?;
                let heap = member.as_deref().map_or(0, cache::weight::json_len);
                Ok::<_, LoadError>(Op::Put(MemberSlot {
                    epoch,
                    org_generation,
                    member,
                    heap,
                }))
            })
            .await?;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                let slot = entry.into_value();
                if self.epoch(org).load(Ordering::SeqCst) != slot.epoch {
                    self.members.invalidate(&(org, user)).await;
                }
                Ok(slot)
            }
            CompResult::Unchanged(entry) => Ok(entry.into_value()),
            // Never produced (the closure only puts or leaves an existing entry).
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(CacheError::Load(
                LoadError::Unexpected("member cache entry vanished".to_owned()),
            )),
        }
    }

    /// The member from L2 (if labelled at least `org_generation`) or the database, with
    /// the org generation it is known to be as fresh as.
    async fn fetch_member(
        &self,
        org: Uuid,
        user: Uuid,
        org_generation: u64,
    ) -> Result<(u64, Option<Arc<MemberContext>>), LoadError> {
        let mut store_under = None;
        let l2 = self.l2.as_ref();
        if let Some(l2) = l2 {
            if !l2.usable() {
                bump(&self.counters.l2_skipped);
            } else {
                match l2.lookup(org, member_base(l2, org, user)).await {
                    Some(Lookup::Found { counter, value }) => {
                        if let Some((generation, member)) = value
                            .as_deref()
                            .and_then(codec::decode_member)
                            .filter(|(generation, _)| *generation >= org_generation)
                        {
                            bump(&self.counters.l2_hits);
                            return Ok((generation, member.map(Arc::new)));
                        }
                        bump(&self.counters.l2_misses);
                        store_under = Some(counter);
                    }
                    // The compiled table's load seeds the counter; without one, skip L2.
                    Some(Lookup::NoCounter) => bump(&self.counters.l2_misses),
                    None => bump(&self.counters.l2_skipped),
                }
            }
        }
        bump(&self.counters.db_loads);
        let member = self.store.load_member(org, user).await?;
        if let (Some(counter), Some(l2)) = (store_under, l2)
            && let Some(value) = codec::encode_member(org_generation, member.as_ref())
        {
            l2.store(format!("{}{counter}", member_base(l2, org, user)), value)
                .await;
        }
        Ok((org_generation, member.map(Arc::new)))
    }
}

/// Applies every bus message to the L1 of the instance (until it is dropped).
async fn listen(inner: Weak<Inner>, mut messages: broadcast::Receiver<String>) {
    loop {
        let received = messages.recv().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match received {
            Ok(text) => {
                if let Some(invalidation) = Invalidation::parse(&text) {
                    inner.apply(invalidation).await;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "permission cache missed invalidations; evicting its whole L1"
                );
                inner.apply(Invalidation::All).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Once Redis is back (see [`cache::generations::probe`]): evicts the whole L1
/// (invalidations from other instances may have been missed meanwhile) and re-publishes
/// the deferred generation bumps.
async fn recovered(inner: Arc<Inner>, flushed: Vec<Uuid>) {
    inner.apply(Invalidation::All).await;
    for org in flushed {
        if let Some(message) = Invalidation::Org(org).to_message() {
            inner.bus.publish(&message).await;
        }
    }
    tracing::info!("redis is reachable again; permission cache uses L2 again");
}
