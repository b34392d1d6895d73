//! The member search's in-process indexes (`member-search`), one per org, built lazily
//! from the primary on the org's first search and kept in a bounded set.
//!
//! Each kept org holds an [`OrgSearch`]: the index and the member rows it was built from
//! (the documents), so a search without list filters answers its page from memory — no
//! database round trip — as a dedicated search engine answers from its stored fields.
//!
//! # Keeping current
//! The after-commit dispatcher ([`crate::dispatch`]) calls
//! - [`SearchIndexes::member_changed`] for a change to one member (joined, left, edited,
//!   their role, their privacy choices, their profile): the member's row is read again
//!   from the primary and replaced in the kept index in place (or removed), here at once
//!   and on every other instance when its `search:member:{org}:{user}:{origin}` message
//!   arrives on the [`InvalidationBus`] (Redis pub/sub, milliseconds);
//! - [`SearchIndexes::org_changed`] for a change to the whole org (its directory policy,
//!   its roles, a bulk change): the org's index is dropped here and, through a
//!   `search:org:{org}:{origin}` message, everywhere; the next search rebuilds it.
//!
//! A build that was under way when its org had either change is not kept (a per-org
//! generation, bumped before the change is read), so a search never answers from an
//! index older than the last change its instance applied; member refreshes of one org
//! are applied one at a time, each reading the primary after the last. [`INDEX_TTL`]
//! bounds the staleness if a message is lost; a lagging subscriber drops everything.
//!
//! # Privacy
//! The index holds every member of the org with every searchable field; what each member
//! shows other members (the directory policy and their choices, as
//! [`tenancy::privacy::visibility`] says for a member viewer) is each member's
//! [`member_search::Member::hidden`], applied for the directory audience, so a hidden
//! field neither matches nor shows; a member not in the directory today (unlisted, or
//! lapsed in the confirmation cycle) hides every field, so nothing of theirs matches or
//! is suggested ("did you mean") to other members, and [`OrgSearch::page`] admits them
//! only to an audience that reads the record. An index serves only the day it was built
//! (the cycle's deadline passes at a date). The list filters are applied by the database
//! to the ranked ids ([`tenancy_store::SeaOrmMemberDirectory::page_of_ranked`]), by the
//! same rules as the list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cache::InvalidationBus;
use member_search::{Field, FieldSet, Member, MemberIndex};
use tenancy::directory::{Audience, MemberPage, MemberRow};
use tenancy::privacy::{DirectoryPolicy, PrivacyChoices, Viewer, in_directory, visibility};
use tenancy::search::SearchQuery;
use tenancy::{
    Child, Email, Membership, MembershipStatus, OrgId, PersonName, RoleAssignment, User, UserId,
    UserStatus,
};
use tenancy_store::{IndexSource, SeaOrmMemberDirectory};
use time::OffsetDateTime;
use uuid::Uuid;

/// How long an index is kept without an invalidation (bounds staleness if a bus message
/// is lost).
pub const INDEX_TTL: Duration = Duration::from_secs(10 * 60);

/// The memory the indexes may take together (by `member-search`'s estimate); the least
/// recently used are dropped beyond it (an index larger than it is used once, not kept).
pub const DEFAULT_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// The most members an org may have for [`OrgSearch::database_could_match`] to scan
/// their documents rather than leave the answer to the database.
pub const SCAN_LIMIT: usize = 1_000;

const ORG_PREFIX: &str = "search:org:";
const MEMBER_PREFIX: &str = "search:member:";

/// One member's stored document: their row without what the index's
/// [`member_search::Member`] already holds (names, e-mail, committee: kept once), and the
/// privacy choices they made (none: the defaults).
#[derive(Debug)]
struct Document {
    account_status: UserStatus,
    created_at: OffsetDateTime,
    phone: Option<Box<str>>,
    account_active_at: Option<OffsetDateTime>,
    role: RoleAssignment,
    status: MembershipStatus,
    children: Box<[Child]>,
    role_ends_at: Option<OffsetDateTime>,
    version: i64,
    joined_at: OffsetDateTime,
    active_at: Option<OffsetDateTime>,
    details_confirmed_at: Option<OffsetDateTime>,
    choices: Option<Box<PrivacyChoices>>,
    /// The membership's whole search document ([`tenancy::search::document`], as the
    /// database stores it): what the SQL search would score.
    search_doc: Box<str>,
}

impl Document {
    fn of((user, membership): MemberRow, choices: Option<PrivacyChoices>) -> Self {
        let children: Vec<String> = membership.children.iter().map(|c| c.name.clone()).collect();
        let search_doc = tenancy::search::document(
            user.first_name.as_str(),
            user.last_name.as_str(),
            user.email.as_str(),
            user.phone.as_deref(),
            membership.committee.as_deref(),
            &children,
        )
        .into_boxed_str();
        Self {
            search_doc,
            account_status: user.status,
            created_at: user.created_at,
            phone: user.phone.map(String::into_boxed_str),
            account_active_at: user.last_active_at,
            role: membership.role,
            status: membership.status,
            children: membership.children.into_boxed_slice(),
            role_ends_at: membership.role_ends_at,
            version: membership.version,
            joined_at: membership.joined_at,
            active_at: membership.last_active_at,
            details_confirmed_at: membership.details_confirmed_at,
            choices: choices.map(Box::new),
        }
    }

    /// The row again, with the names, e-mail and committee of `member`.
    fn row(&self, org: OrgId, member: &Member) -> Option<MemberRow> {
        let user = User {
            id: UserId::from_uuid(member.id),
            email: Email::parse(&member.email).ok()?,
            first_name: PersonName::parse(&member.first_name).ok()?,
            last_name: PersonName::parse(&member.last_name).ok()?,
            status: self.account_status,
            created_at: self.created_at,
            phone: self.phone.as_deref().map(str::to_owned),
            last_active_at: self.account_active_at,
        };
        let membership = Membership {
            org_id: org,
            user_id: user.id,
            role: self.role.clone(),
            status: self.status,
            committee: member.committee.clone(),
            children: self.children.to_vec(),
            role_ends_at: self.role_ends_at,
            version: self.version,
            joined_at: self.joined_at,
            last_active_at: self.active_at,
            details_confirmed_at: self.details_confirmed_at,
        };
        Some((user, membership))
    }

    fn heap_bytes(&self) -> usize {
        let role = match &self.role {
            RoleAssignment::Builtin { .. } => 0,
            RoleAssignment::Custom { name, .. } => name.capacity(),
        };
        let children: usize = self
            .children
            .iter()
            .map(|c| {
                std::mem::size_of::<Child>()
                    + c.name.capacity()
                    + c.grade.as_ref().map_or(0, String::capacity)
            })
            .sum();
        self.phone.as_ref().map_or(0, |p| p.len())
            + self.search_doc.len()
            + role
            + children
            + self
                .choices
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<PrivacyChoices>())
    }
}

/// One org's member search: the index, the rows it pages from and the directory policy
/// they were read under. See the [module documentation](self).
#[derive(Debug)]
pub struct OrgSearch {
    org: OrgId,
    index: MemberIndex,
    documents: HashMap<Uuid, Document>,
    policy: DirectoryPolicy,
    /// The day it was built: who is in the directory depends on the date (the
    /// confirmation cycle), so it serves only that day.
    day: time::Date,
}

/// A kept org search, shared by the searches reading it and the refreshes changing it.
pub type SharedSearch = Arc<RwLock<OrgSearch>>;

impl OrgSearch {
    /// The search of `org`'s members in `source`, as of today.
    #[must_use]
    pub fn build(org: OrgId, source: IndexSource) -> Self {
        let IndexSource {
            rows,
            privacy,
            policy,
        } = source;
        let mut choices: HashMap<Uuid, PrivacyChoices> =
            privacy.into_iter().map(|(u, c)| (u.as_uuid(), c)).collect();
        let day = persistence::now_micros().date();
        let mut documents = HashMap::with_capacity(rows.len());
        let members: Vec<Member> = rows
            .into_iter()
            .map(|row| {
                let id = row.0.id.as_uuid();
                let chosen = choices.remove(&id);
                let member = member_of(&row, chosen.as_ref(), &policy, day);
                documents.insert(id, Document::of(row, chosen));
                member
            })
            .collect();
        Self {
            org,
            index: MemberIndex::build(members),
            documents,
            policy,
            day,
        }
    }

    /// The index.
    #[must_use]
    pub const fn index(&self) -> &MemberIndex {
        &self.index
    }

    /// Replaces (or adds) one member's row and choices.
    pub fn upsert(&mut self, row: MemberRow, choices: Option<PrivacyChoices>) {
        let id = row.0.id.as_uuid();
        self.index
            .upsert(member_of(&row, choices.as_ref(), &self.policy, self.day));
        self.documents.insert(id, Document::of(row, choices));
    }

    /// Removes one member (no longer a member of the org).
    pub fn remove(&mut self, user: Uuid) {
        self.index.remove(user);
        self.documents.remove(&user);
    }

    /// The page of `ids` (in that order; `more` says whether a next page exists) for
    /// `audience`, from the stored rows: a directory audience gets only members in the
    /// directory today (the same rule as the list, [`in_directory`]).
    #[must_use]
    pub fn page(&self, audience: Audience, ids: &[Uuid], more: bool) -> MemberPage {
        let none = PrivacyChoices::default();
        let mut rows = Vec::with_capacity(ids.len());
        let mut privacy = Vec::new();
        for id in ids {
            let (Some(doc), Some(member)) = (self.documents.get(id), self.index.get(*id)) else {
                continue;
            };
            let chosen = doc.choices.as_deref();
            if audience == Audience::Directory
                && !in_directory(
                    &self.policy,
                    chosen.unwrap_or(&none),
                    doc.details_confirmed_at,
                    doc.joined_at,
                    self.day,
                )
            {
                continue;
            }
            // Names and addresses were parsed when read: this cannot fail.
            let Some(row) = doc.row(self.org, member) else {
                continue;
            };
            if let Some(c) = chosen {
                privacy.push((UserId::from_uuid(*id), c.clone()));
            }
            rows.push(row);
        }
        MemberPage {
            rows,
            more,
            policy: self.policy.clone(),
            privacy,
        }
    }

    /// Whether the SQL search could find any member for `query`: `false` when the org
    /// has at most [`SCAN_LIMIT`] members and none of their whole search documents is
    /// matched by it ([`SearchQuery::score`]), the test the SQL search applies to its
    /// candidates. A directory audience is scored on less of each document (what it is
    /// shown), which matches no more words, and the SQL search reads a subset of the
    /// members the index holds (every member), so `false` means it would find nothing.
    /// Larger orgs are not scanned (`true`): their database search is indexed.
    #[must_use]
    pub fn database_could_match(&self, query: &SearchQuery) -> bool {
        self.documents.len() > SCAN_LIMIT
            || self
                .documents
                .values()
                .any(|d| query.score(&d.search_doc).is_some())
    }

    /// A rough count of the heap bytes of the index (the search structures).
    #[must_use]
    pub fn index_bytes(&self) -> usize {
        self.index.approx_heap_bytes()
    }

    /// A rough count of the heap bytes of the stored rows (the documents pages are read
    /// from; what the index holds already is not stored twice).
    #[must_use]
    pub fn document_bytes(&self) -> usize {
        // Each map slot: key, value and a control byte, at a load factor of ~7/8.
        let slot = (std::mem::size_of::<(Uuid, Document)>() + 1) * 8 / 7;
        self.documents.values().map(|d| slot + d.heap_bytes()).sum()
    }
}

/// How `row` is indexed: with what they hide from other members.
fn member_of(
    row: &MemberRow,
    chosen: Option<&PrivacyChoices>,
    policy: &DirectoryPolicy,
    today: time::Date,
) -> Member {
    let (user, membership) = row;
    let none = PrivacyChoices::default();
    let chosen = chosen.unwrap_or(&none);
    let shown = visibility(Viewer::Member, policy, chosen);
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
        policy,
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
}

struct Entry {
    search: SharedSearch,
    /// The estimated bytes of the index and of its documents, as built.
    bytes: (usize, usize),
    built: Instant,
    /// The day it was built (an index serves only that day).
    day: time::Date,
    used: u64,
}

impl Entry {
    fn fresh(&self) -> bool {
        self.built.elapsed() < INDEX_TTL && self.day == persistence::now_micros().date()
    }

    fn total(&self) -> usize {
        self.bytes.0 + self.bytes.1
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Uuid, Entry>,
    /// Per org: how many changes it has had (a build keeps its index only if none came
    /// while it ran).
    generations: HashMap<Uuid, u64>,
    /// Per org being built: the lock its concurrent first searches wait on (one build,
    /// not one per request).
    building: HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>,
    /// Per org being refreshed: member refreshes of one org apply one at a time.
    refreshing: HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>,
    bytes: usize,
    clock: u64,
}

/// The per-org searches; see the [module documentation](self). Cheap to clone.
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

/// A change another instance announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    Org(Uuid),
    Member { org: Uuid, user: Uuid },
}

/// Which of the per-org lock maps.
#[derive(Clone, Copy)]
enum LockKind {
    Build,
    Refresh,
}

impl SearchIndexes {
    /// Indexes built from `directory` (read from the primary), kept current through `bus`
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
                    Ok(message) => match listener.parse(&message) {
                        Some(Message::Org(org)) => listener.drop_local(org),
                        Some(Message::Member { org, user }) => {
                            // Off the listener: a slow read must not hold up the drops.
                            let refresher = listener.clone();
                            tokio::spawn(async move { refresher.refresh_local(org, user).await });
                        }
                        None => {}
                    },
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

    fn parse(&self, message: &str) -> Option<Message> {
        if let Some(rest) = message.strip_prefix(ORG_PREFIX) {
            let (org, origin) = rest.split_once(':')?;
            if Uuid::parse_str(origin).ok()? == self.origin {
                return None;
            }
            return Some(Message::Org(Uuid::parse_str(org).ok()?));
        }
        let rest = message.strip_prefix(MEMBER_PREFIX)?;
        let mut parts = rest.splitn(3, ':');
        let (org, user, origin) = (parts.next()?, parts.next()?, parts.next()?);
        if Uuid::parse_str(origin).ok()? == self.origin {
            return None;
        }
        Some(Message::Member {
            org: Uuid::parse_str(org).ok()?,
            user: Uuid::parse_str(user).ok()?,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps (no invariant spans two
        // statements that can panic): keep using them.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The per-org lock of `kind`, created on first use.
    fn org_lock(&self, kind: LockKind, org: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut inner = self.lock();
        let map = match kind {
            LockKind::Build => &mut inner.building,
            LockKind::Refresh => &mut inner.refreshing,
        };
        map.entry(org).or_default().clone()
    }

    /// Forgets the per-org lock of `kind` once nobody else holds or waits on it.
    fn release_org_lock(&self, kind: LockKind, org: Uuid, held: &Arc<tokio::sync::Mutex<()>>) {
        let mut inner = self.lock();
        let map = match kind {
            LockKind::Build => &mut inner.building,
            LockKind::Refresh => &mut inner.refreshing,
        };
        if map
            .get(&org)
            .is_some_and(|l| Arc::ptr_eq(l, held) && Arc::strong_count(l) <= 2)
        {
            map.remove(&org);
        }
    }

    fn drop_local(&self, org: Uuid) {
        let mut inner = self.lock();
        *inner.generations.entry(org).or_default() += 1;
        if let Some(e) = inner.entries.remove(&org) {
            inner.bytes -= e.total();
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

    /// Call after every committed write that changes what `orgs` as a whole are
    /// searched by (their directory policy, their roles, bulk changes): drops their
    /// indexes here and on every other instance.
    pub async fn org_changed(&self, orgs: &[Uuid]) {
        for &org in orgs {
            self.drop_local(org);
        }
        for &org in orgs {
            self.bus
                .publish(&format!("{ORG_PREFIX}{org}:{}", self.origin))
                .await;
        }
    }

    /// Call after every committed write that changes one member of `org` (their
    /// membership, profile or privacy choices): their row is read again and replaced in
    /// the kept index, here and on every other instance.
    pub async fn member_changed(&self, org: Uuid, user: Uuid) {
        self.refresh_local(org, user).await;
        self.bus
            .publish(&format!("{MEMBER_PREFIX}{org}:{user}:{}", self.origin))
            .await;
    }

    /// Re-reads `user`'s row in `org` from the primary into the kept index (if any).
    async fn refresh_local(&self, org: Uuid, user: Uuid) {
        let serial = self.org_lock(LockKind::Refresh, org);
        {
            let _one_at_a_time = serial.lock().await;
            // Before the read: a build under way may have read the member as they were.
            let kept = {
                let mut inner = self.lock();
                *inner.generations.entry(org).or_default() += 1;
                inner.entries.get(&org).map(|e| e.search.clone())
            };
            if let Some(search) = kept {
                match self
                    .directory
                    .index_member(OrgId::from_uuid(org), UserId::from_uuid(user))
                    .await
                {
                    Ok(found) => {
                        let mut search = search
                            .write()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        match found {
                            Some((row, choices)) => search.upsert(row, choices),
                            None => search.remove(user),
                        }
                    }
                    Err(e) => {
                        // Unknown state: drop the index (the next search rebuilds it).
                        tracing::warn!(error = %e, %org, %user, "could not re-read a member for the search index; dropping it");
                        self.drop_local(org);
                    }
                }
            }
        }
        self.release_org_lock(LockKind::Refresh, org, &serial);
    }

    /// The search of `org`: the kept one, else built from the primary.
    ///
    /// # Errors
    /// The database's failure while building.
    pub async fn get(&self, org: OrgId) -> Result<SharedSearch, tenancy::ports::StorageFailure> {
        if let Some(search) = self.kept(org.as_uuid()) {
            return Ok(search);
        }
        let build_lock = self.org_lock(LockKind::Build, org.as_uuid());
        let result = {
            let _one_build = build_lock.lock().await;
            self.get_or_build(org).await
        };
        self.release_org_lock(LockKind::Build, org.as_uuid(), &build_lock);
        result
    }

    /// The kept, fresh search of `org`, marked as used.
    fn kept(&self, key: Uuid) -> Option<SharedSearch> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.entries.get_mut(&key)?;
        if e.fresh() {
            e.used = now;
            Some(e.search.clone())
        } else {
            None
        }
    }

    async fn get_or_build(
        &self,
        org: OrgId,
    ) -> Result<SharedSearch, tenancy::ports::StorageFailure> {
        let key = org.as_uuid();
        let generation = {
            if let Some(search) = self.kept(key) {
                return Ok(search);
            }
            self.lock()
                .generations
                .get(&key)
                .copied()
                .unwrap_or_default()
        };
        let source = self.directory.index_source(org).await?;
        let built = build_off_the_executor(org, source).await?;
        let bytes = (built.index_bytes(), built.document_bytes());
        let search = Arc::new(RwLock::new(built));
        let mut inner = self.lock();
        let current = inner.generations.get(&key).copied().unwrap_or_default();
        if current == generation && bytes.0 + bytes.1 <= self.budget {
            inner.clock += 1;
            let used = inner.clock;
            let entry = Entry {
                search: search.clone(),
                bytes,
                built: Instant::now(),
                day: persistence::now_micros().date(),
                used,
            };
            inner.bytes += entry.total();
            if let Some(old) = inner.entries.insert(key, entry) {
                inner.bytes -= old.total();
            }
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
                    inner.bytes -= e.total();
                }
            }
        }
        Ok(search)
    }

    /// A new search of `org` from the primary, not kept (for a request that must see its
    /// own writes, whichever instance made them).
    ///
    /// # Errors
    /// The database's failure.
    pub async fn fresh(&self, org: OrgId) -> Result<SharedSearch, tenancy::ports::StorageFailure> {
        let source = self.directory.index_source(org).await?;
        Ok(Arc::new(RwLock::new(
            build_off_the_executor(org, source).await?,
        )))
    }

    /// How many orgs have a search kept, and the estimated bytes of their indexes and
    /// of their documents (as built).
    #[must_use]
    pub fn usage(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        let (index, documents) = inner
            .entries
            .values()
            .fold((0, 0), |(i, d), e| (i + e.bytes.0, d + e.bytes.1));
        (inner.entries.len(), index, documents)
    }

    /// The byte budget the kept searches share.
    #[must_use]
    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// [`OrgSearch::build`] on the blocking pool: ~150 ms of CPU for 20,000 members would
/// otherwise stall every request of the worker thread.
async fn build_off_the_executor(
    org: OrgId,
    source: IndexSource,
) -> Result<OrgSearch, tenancy::ports::StorageFailure> {
    tokio::task::spawn_blocking(move || OrgSearch::build(org, source))
        .await
        .map_err(|e| tenancy::ports::StorageFailure(Box::new(e)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use permissions::BuiltinRole;
    use tenancy::privacy::Choice;

    fn row(org: OrgId, first: &str, last: &str, email: &str) -> MemberRow {
        let now = persistence::now_micros();
        let user = User {
            id: UserId::new(),
            email: Email::parse(email).expect("email"),
            first_name: PersonName::parse(first).expect("name"),
            last_name: PersonName::parse(last).expect("name"),
            status: UserStatus::Active,
            created_at: now,
            phone: Some("+1 555 0100".to_owned()),
            last_active_at: Some(now),
        };
        let membership = Membership {
            org_id: org,
            user_id: user.id,
            role: RoleAssignment::Builtin {
                role: BuiltinRole::Volunteer,
            },
            status: MembershipStatus::Active,
            committee: Some("Garden".to_owned()),
            children: vec![Child {
                name: "Ivy".to_owned(),
                grade: Some("2".to_owned()),
            }],
            role_ends_at: None,
            version: 3,
            joined_at: now,
            last_active_at: None,
            details_confirmed_at: Some(now),
        };
        (user, membership)
    }

    fn ids_of(page: &MemberPage) -> Vec<Uuid> {
        page.rows.iter().map(|(u, _)| u.id.as_uuid()).collect()
    }

    #[test]
    fn pages_give_back_the_rows_as_read_and_leave_unlisted_members_to_the_record() {
        let org = OrgId::new();
        let ada = row(org, "Ada", "Lovelace", "ada@example.org");
        let rosa = row(org, "Rosa", "Quintero", "rosa@example.org");
        let unlisted = PrivacyChoices {
            listing: Some(Choice::Hidden),
            ..PrivacyChoices::default()
        };
        let search = OrgSearch::build(
            org,
            IndexSource {
                rows: vec![ada.clone(), rosa.clone()],
                privacy: vec![(rosa.0.id, unlisted.clone())],
                policy: DirectoryPolicy::default(),
            },
        );
        let both = [ada.0.id.as_uuid(), rosa.0.id.as_uuid()];
        let record = search.page(Audience::Record, &both, true);
        assert_eq!(record.rows, vec![ada.clone(), rosa.clone()]);
        assert!(record.more);
        assert_eq!(record.privacy, vec![(rosa.0.id, unlisted)]);
        let directory = search.page(Audience::Directory, &both, false);
        assert_eq!(ids_of(&directory), vec![ada.0.id.as_uuid()]);
        assert!(search.document_bytes() > 0 && search.index_bytes() > 0);
    }

    #[test]
    fn a_member_is_replaced_and_removed_in_place() {
        let org = OrgId::new();
        let ada = row(org, "Ada", "Lovelace", "ada@example.org");
        let mut search = OrgSearch::build(
            org,
            IndexSource {
                rows: vec![ada.clone()],
                privacy: Vec::new(),
                policy: DirectoryPolicy::default(),
            },
        );
        let found = |s: &OrgSearch, q: &str| -> Vec<Uuid> {
            let hits = s
                .index()
                .search(&member_search::SearchRequest::new(q))
                .expect("search")
                .hits;
            hits.iter().map(|h| h.id).collect()
        };
        let id = ada.0.id.as_uuid();
        assert_eq!(found(&search, "Lovelace"), vec![id]);
        let mut renamed = ada.clone();
        renamed.0.last_name = PersonName::parse("Byron").expect("name");
        renamed.1.version = 4;
        search.upsert(renamed.clone(), None);
        assert_eq!(found(&search, "Byron"), vec![id]);
        assert!(found(&search, "Lovelace").is_empty());
        assert_eq!(
            search.page(Audience::Record, &[id], false).rows,
            vec![renamed]
        );
        search.remove(id);
        assert!(found(&search, "Byron").is_empty());
        assert!(search.page(Audience::Record, &[id], false).rows.is_empty());
    }

    #[test]
    fn the_database_is_asked_only_when_some_whole_document_could_match() {
        let org = OrgId::new();
        let q = |text: &str| SearchQuery::parse(text).expect("query");
        // Phone "+1 555 0100", committee "Garden", child "Ivy" (see `row`).
        let search = OrgSearch::build(
            org,
            IndexSource {
                rows: vec![row(org, "Ada", "Lovelace", "ada@example.org")],
                privacy: Vec::new(),
                policy: DirectoryPolicy::default(),
            },
        );
        // What only the SQL search matches (phone digits, a child's name, inside a
        // word, a typo there) is worth asking for; what nothing matches is not.
        for text in ["15550100", "Ivy", "ovela", "Lovleace", "Ivy Garden"] {
            assert!(search.database_could_match(&q(text)), "{text}");
        }
        for text in ["Zebulon", "Ivy Zebulon", "99999999"] {
            assert!(!search.database_could_match(&q(text)), "{text}");
        }
        // A document the database holds is compared whole, as the database scores it.
        let doc = tenancy::search::document(
            "Ada",
            "Lovelace",
            "ada@example.org",
            Some("+1 555 0100"),
            Some("Garden"),
            &["Ivy".to_owned()],
        );
        let kept = search.documents.values().next().expect("one member");
        assert_eq!(&*kept.search_doc, doc.as_str());

        // Past the scan's limit the database decides.
        let rows = (0..=SCAN_LIMIT)
            .map(|i| row(org, "Ada", "Lovelace", &format!("ada{i}@example.org")))
            .collect();
        let large = OrgSearch::build(
            org,
            IndexSource {
                rows,
                privacy: Vec::new(),
                policy: DirectoryPolicy::default(),
            },
        );
        assert!(large.database_could_match(&q("Zebulon")));
    }
}
