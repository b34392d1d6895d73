//! The member search's in-process indexes (`member-search`), one per org, built lazily
//! from the primary on the org's first search and kept in a bounded set.
//!
//! # Invalidation
//! The after-commit dispatcher ([`crate::dispatch`]) calls [`SearchIndexes::org_changed`]
//! for every org whose directory it retires: the org's index is dropped here at once and a
//! `search:org:{org}:{origin}` message goes out on the [`InvalidationBus`], which every
//! other instance applies when it arrives (Redis pub/sub, milliseconds). The next search
//! rebuilds the index from the primary. A build that was under way when its org changed
//! is not kept (a per-org generation), so a search never answers from an index older than
//! the last invalidation its instance applied; [`INDEX_TTL`] bounds the staleness if a
//! message is lost.
//!
//! # Privacy
//! The index holds every member of the org with every searchable field; what each member
//! shows other members (the directory policy and their choices, as
//! [`tenancy::privacy::visibility`] says for a member viewer) is each member's
//! [`member_search::Member::hidden`], applied for the directory audience, so a hidden
//! field neither matches nor shows; a member not in the directory today (unlisted, or
//! lapsed in the confirmation cycle) hides every field, so nothing of theirs matches or
//! is suggested ("did you mean") to other members. An index serves only the day it was
//! built (the cycle's deadline passes at a date). Which members an audience may see at all (listed,
//! the confirmation cycle) and the list filters are then applied by the database to the
//! ranked ids ([`tenancy_store::SeaOrmMemberDirectory::page_of_ranked`]), by the same
//! rules as the list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache::InvalidationBus;
use member_search::{Field, FieldSet, Member, MemberIndex};
use tenancy::privacy::{Viewer, in_directory, visibility};
use tenancy::{OrgId, RoleAssignment};
use tenancy_store::{IndexSource, SeaOrmMemberDirectory};
use uuid::Uuid;

/// How long an index is kept without an invalidation (bounds staleness if a bus message
/// is lost).
pub const INDEX_TTL: Duration = Duration::from_secs(10 * 60);

/// The memory the indexes may take together (by `member-search`'s estimate); the least
/// recently used are dropped beyond it (an index larger than it is used once, not kept).
pub const DEFAULT_BUDGET_BYTES: usize = 256 * 1024 * 1024;

const MESSAGE_PREFIX: &str = "search:org:";

struct Entry {
    index: Arc<MemberIndex>,
    bytes: usize,
    built: Instant,
    /// The day it was built: who is in the directory depends on the date (the
    /// confirmation cycle), so an index serves only the day it was built.
    day: time::Date,
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Uuid, Entry>,
    /// Per org: how many invalidations it has had (a build keeps its index only if none
    /// came while it ran).
    generations: HashMap<Uuid, u64>,
    /// Per org being built: the lock its concurrent first searches wait on (one build,
    /// not one per request).
    building: HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>,
    bytes: usize,
    clock: u64,
}

/// The per-org search indexes; see the [module documentation](self). Cheap to clone.
#[derive(Clone)]
pub struct SearchIndexes {
    directory: SeaOrmMemberDirectory,
    bus: InvalidationBus,
    origin: Uuid,
    budget: usize,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for SearchIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndexes")
            .field("origin", &self.origin)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl SearchIndexes {
    /// Indexes built from `directory` (read from the primary), invalidated through `bus`
    /// (this instance listens to it from now on). Must be called inside a Tokio runtime.
    #[must_use]
    pub fn new(directory: SeaOrmMemberDirectory, bus: InvalidationBus, budget: usize) -> Self {
        let this = Self {
            directory,
            bus,
            origin: Uuid::new_v4(),
            budget,
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let mut messages = this.bus.subscribe();
        let listener = this.clone();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => {
                        if let Some(org) = listener.parse(&message) {
                            listener.drop_local(org);
                        }
                    }
                    // Messages were missed: drop everything (rebuilt on demand).
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        listener.drop_all();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        this
    }

    fn parse(&self, message: &str) -> Option<Uuid> {
        let (org, origin) = message.strip_prefix(MESSAGE_PREFIX)?.split_once(':')?;
        if Uuid::parse_str(origin).ok()? == self.origin {
            return None;
        }
        Uuid::parse_str(org).ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (no invariant spans two
        // statements that can panic): keep using them.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn drop_local(&self, org: Uuid) {
        let mut inner = self.lock();
        *inner.generations.entry(org).or_default() += 1;
        if let Some(e) = inner.entries.remove(&org) {
            inner.bytes -= e.bytes;
        }
    }

    fn drop_all(&self) {
        let mut inner = self.lock();
        let orgs: Vec<Uuid> = inner.entries.keys().copied().collect();
        for org in orgs {
            *inner.generations.entry(org).or_default() += 1;
        }
        inner.entries.clear();
        inner.bytes = 0;
    }

    /// Call after every committed write that changes what `orgs`' members are found by:
    /// drops their indexes here and on every other instance.
    pub async fn org_changed(&self, orgs: &[Uuid]) {
        for &org in orgs {
            self.drop_local(org);
        }
        for &org in orgs {
            self.bus
                .publish(&format!("{MESSAGE_PREFIX}{org}:{}", self.origin))
                .await;
        }
    }

    /// The index of `org`: the kept one, else built from the primary.
    ///
    /// # Errors
    /// The database's failure while building.
    pub async fn get(
        &self,
        org: OrgId,
    ) -> Result<Arc<MemberIndex>, tenancy::ports::StorageFailure> {
        if let Some(index) = self.kept(org.as_uuid()) {
            return Ok(index);
        }
        let build_lock = self
            .lock()
            .building
            .entry(org.as_uuid())
            .or_default()
            .clone();
        let result = {
            let _one_build = build_lock.lock().await;
            self.get_or_build(org).await
        };
        let mut inner = self.lock();
        if inner
            .building
            .get(&org.as_uuid())
            .is_some_and(|l| Arc::ptr_eq(l, &build_lock) && Arc::strong_count(l) <= 2)
        {
            inner.building.remove(&org.as_uuid());
        }
        result
    }

    /// The kept, fresh index of `org`, marked as used.
    fn kept(&self, key: Uuid) -> Option<Arc<MemberIndex>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.entries.get_mut(&key)?;
        if e.built.elapsed() < INDEX_TTL && e.day == persistence::now_micros().date() {
            e.used = now;
            Some(e.index.clone())
        } else {
            None
        }
    }

    async fn get_or_build(
        &self,
        org: OrgId,
    ) -> Result<Arc<MemberIndex>, tenancy::ports::StorageFailure> {
        let key = org.as_uuid();
        let generation = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            let fresh = inner.entries.get(&key).is_some_and(|e| {
                e.built.elapsed() < INDEX_TTL && e.day == persistence::now_micros().date()
            });
            if fresh && let Some(e) = inner.entries.get_mut(&key) {
                e.used = now;
                return Ok(e.index.clone());
            }
            inner.generations.get(&key).copied().unwrap_or_default()
        };
        let source = self.directory.index_source(org).await?;
        let index = Arc::new(build_off_the_executor(source).await?);
        let bytes = index.approx_heap_bytes();
        let mut inner = self.lock();
        let current = inner.generations.get(&key).copied().unwrap_or_default();
        if current == generation && bytes <= self.budget {
            inner.clock += 1;
            let used = inner.clock;
            if let Some(old) = inner.entries.insert(
                key,
                Entry {
                    index: index.clone(),
                    bytes,
                    built: Instant::now(),
                    day: persistence::now_micros().date(),
                    used,
                },
            ) {
                inner.bytes -= old.bytes;
            }
            inner.bytes += bytes;
            while inner.bytes > self.budget {
                let Some(oldest) = inner
                    .entries
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                if let Some(e) = inner.entries.remove(&oldest) {
                    inner.bytes -= e.bytes;
                }
            }
        }
        Ok(index)
    }

    /// A new index of `org` from the primary, not kept (for a request that must see its
    /// own writes, whichever instance made them).
    ///
    /// # Errors
    /// The database's failure.
    pub async fn fresh(
        &self,
        org: OrgId,
    ) -> Result<Arc<MemberIndex>, tenancy::ports::StorageFailure> {
        let source = self.directory.index_source(org).await?;
        Ok(Arc::new(build_off_the_executor(source).await?))
    }

    /// How many orgs have an index kept, and their estimated bytes.
    #[must_use]
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }

    /// The byte budget the kept indexes share.
    #[must_use]
    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// [`build`] on the blocking pool: ~150 ms of CPU for 20,000 members would otherwise
/// stall every request of the worker thread.
async fn build_off_the_executor(
    source: IndexSource,
) -> Result<MemberIndex, tenancy::ports::StorageFailure> {
    tokio::task::spawn_blocking(move || build(source))
        .await
        .map_err(|e| tenancy::ports::StorageFailure(Box::new(e)))
}

/// The index of an org's members: each with what they hide from other members.
#[must_use]
pub fn build(source: IndexSource) -> MemberIndex {
    let IndexSource {
        rows,
        privacy,
        policy,
    } = source;
    let choices: HashMap<Uuid, tenancy::privacy::PrivacyChoices> =
        privacy.into_iter().map(|(u, c)| (u.as_uuid(), c)).collect();
    let none = tenancy::privacy::PrivacyChoices::default();
    let today = persistence::now_micros().date();
    MemberIndex::build(rows.into_iter().map(|(user, membership)| {
        let chosen = choices.get(&user.id.as_uuid()).unwrap_or(&none);
        let shown = visibility(Viewer::Member, &policy, chosen);
        let mut hidden = FieldSet::NONE;
        if !shown.email {
            hidden = hidden.with(Field::Email);
        }
        if !shown.committee {
            hidden = hidden.with(Field::Committee);
        }
        // Not in the directory today (unlisted, or lapsed in the confirmation cycle):
        // nothing of theirs matches or is suggested to other members.
        if !in_directory(
            &policy,
            chosen,
            membership.details_confirmed_at,
            membership.joined_at,
            today,
        ) {
            hidden = FieldSet::ALL;
        }
        Member {
            id: user.id.as_uuid(),
            first_name: user.first_name.as_str().to_owned(),
            last_name: user.last_name.as_str().to_owned(),
            email: user.email.as_str().to_owned(),
            committee: membership.committee.clone(),
            role: role_name(&membership.role),
            status: status_name(membership.status).to_owned(),
            hidden,
        }
    }))
}

/// A role's facet value: the built-in role's name or the custom role's.
#[must_use]
pub fn role_name(role: &RoleAssignment) -> String {
    match role {
        RoleAssignment::Builtin { role } => role.as_str().to_owned(),
        RoleAssignment::Custom { name, .. } => name.clone(),
    }
}

/// A status's facet value.
#[must_use]
pub const fn status_name(status: tenancy::MembershipStatus) -> &'static str {
    match status {
        tenancy::MembershipStatus::Active => "active",
        tenancy::MembershipStatus::Invited => "invited",
        tenancy::MembershipStatus::Suspended => "suspended",
    }
}
