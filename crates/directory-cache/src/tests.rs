use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use permissions::BuiltinRole;
use tenancy::directory::{MemberFilter, MemberSort};
use tenancy::{Email, Membership, MembershipStatus, PersonName, RoleAssignment, User, UserStatus};
use time::OffsetDateTime;

use super::*;

/// A directory whose answers name how many loads it has served (so a test sees whether
/// an answer came from the cache or from a new load).
#[derive(Debug, Clone, Default)]
struct CountingDirectory {
    loads: Arc<AtomicU32>,
}

impl CountingDirectory {
    fn loads(&self) -> u32 {
        self.loads.load(Ordering::SeqCst)
    }

    fn next(&self, org: OrgId) -> MemberPage {
        let n = self.loads.fetch_add(1, Ordering::SeqCst) + 1;
        MemberPage {
            rows: vec![row(org, &format!("Load{n}"))],
            more: false,
            policy: tenancy::privacy::DirectoryPolicy::default(),
            privacy: Vec::new(),
        }
    }
}

impl MemberDirectory for CountingDirectory {
    async fn list(&self, req: &MemberListRequest) -> Result<MemberPage, StorageFailure> {
        Ok(self.next(req.org))
    }

    async fn search(&self, req: &MemberSearchRequest) -> Result<MemberPage, StorageFailure> {
        Ok(self.next(req.org))
    }
}

fn row(org: OrgId, first: &str) -> MemberRow {
    let now =
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let user = User {
        id: UserId::new(),
        email: Email::parse("ana@example.org").expect("valid"),
        first_name: PersonName::parse(first).expect("valid"),
        last_name: PersonName::parse("Smith").expect("valid"),
        status: UserStatus::Active,
        created_at: now,
        phone: Some("+1 555 0100".into()),
        last_active_at: Some(now),
    };
    let membership = Membership {
        org_id: org,
        user_id: user.id,
        role: RoleAssignment::builtin(BuiltinRole::BoardMember),
        status: MembershipStatus::Active,
        committee: Some("Fundraising".into()),
        children: Vec::new(),
        role_ends_at: None,
        version: 3,
        joined_at: now,
        last_active_at: Some(now),
        details_confirmed_at: None,
    };
    (user, membership)
}

fn list_request(org: OrgId, limit: u32) -> MemberListRequest {
    MemberListRequest {
        org,
        filter: MemberFilter::default(),
        sort: MemberSort::Name,
        descending: false,
        after: None,
        limit,
        audience: tenancy::directory::Audience::Record,
    }
}

fn first_name(page: &MemberPage) -> String {
    page.rows
        .first()
        .map(|(u, _)| u.first_name.to_string())
        .unwrap_or_default()
}

fn settings() -> ScopedSettings {
    ScopedSettings::new("dir", format!("test:dir:{}:", Uuid::new_v4().simple()))
}

async fn cached(
    redis: Option<&str>,
    bus: InvalidationBus,
    s: ScopedSettings,
) -> (CountingDirectory, CachedDirectory<CountingDirectory>) {
    let fake = CountingDirectory::default();
    let dir = CachedDirectory::with_settings(fake.clone(), redis, bus, s)
        .await
        .expect("valid redis url");
    (fake, dir)
}

/// Two orgs in different L1 stripes (the low bits of their ids differ).
fn two_orgs() -> (OrgId, OrgId) {
    (
        OrgId::from_uuid(Uuid::from_u128(1)),
        OrgId::from_uuid(Uuid::from_u128(2)),
    )
}

#[tokio::test]
async fn pages_are_cached_per_request_until_their_org_changes() {
    let (fake, dir) = cached(None, InvalidationBus::local_only(), settings()).await;
    let (org, other) = two_orgs();
    let first = dir.list(&list_request(org, 20)).await.expect("loads");
    assert_eq!(first_name(&first), "Load1");
    // The same request is answered from the cache, with the same rows.
    assert_eq!(
        dir.list(&list_request(org, 20)).await.expect("cached"),
        first
    );
    // Another page size is another page.
    assert_eq!(
        first_name(&dir.list(&list_request(org, 10)).await.expect("loads")),
        "Load2"
    );
    assert_eq!(
        first_name(&dir.list(&list_request(other, 20)).await.expect("loads")),
        "Load3"
    );
    assert_eq!(fake.loads(), 3);

    dir.org_changed(&[org.as_uuid()]).await;
    assert_eq!(
        first_name(&dir.list(&list_request(org, 20)).await.expect("reloads")),
        "Load4"
    );
    // The other org's page is untouched.
    assert_eq!(
        first_name(&dir.list(&list_request(other, 20)).await.expect("cached")),
        "Load3"
    );
    assert_eq!(fake.loads(), 4);
    let stats = dir.stats();
    assert_eq!((stats.l1_hits, stats.loads), (2, 4));
}

#[tokio::test]
async fn search_pages_are_not_kept() {
    let (fake, dir) = cached(None, InvalidationBus::local_only(), settings()).await;
    let (org, _) = two_orgs();
    let req = MemberSearchRequest {
        org,
        query: tenancy::search::SearchQuery::parse("Smith").expect("a query"),
        filter: MemberFilter::default(),
        offset: 0,
        limit: 20,
        audience: tenancy::directory::Audience::Record,
    };
    assert_eq!(first_name(&dir.search(&req).await.expect("loads")), "Load1");
    // The same search again reads the directory again; the cache holds nothing.
    assert_eq!(first_name(&dir.search(&req).await.expect("loads")), "Load2");
    assert_eq!(fake.loads(), 2);
    let stats = dir.stats();
    assert_eq!((stats.l1_hits, stats.l1_misses, stats.loads), (0, 0, 0));
    assert_eq!(dir.l1_bytes().await.bytes, 0);
}

#[tokio::test]
async fn a_directory_page_and_a_record_page_never_share_an_entry() {
    let (fake, dir) = cached(None, InvalidationBus::local_only(), settings()).await;
    let (org, _) = two_orgs();
    let record = list_request(org, 20);
    let directory = MemberListRequest {
        audience: tenancy::directory::Audience::Directory,
        ..record.clone()
    };
    assert_eq!(
        first_name(&dir.list(&record).await.expect("loads")),
        "Load1"
    );
    // The same page for another audience is loaded for it, not served from the record's.
    assert_eq!(
        first_name(&dir.list(&directory).await.expect("loads")),
        "Load2"
    );
    assert_eq!(
        first_name(&dir.list(&record).await.expect("cached")),
        "Load1"
    );
    assert_eq!(
        first_name(&dir.list(&directory).await.expect("cached")),
        "Load2"
    );
    assert_eq!(fake.loads(), 2);
}

#[tokio::test]
async fn profiles_are_cached_and_retired_with_their_org() {
    let (_, dir) = cached(None, InvalidationBus::local_only(), settings()).await;
    let (org, _) = two_orgs();
    let user = UserId::new();
    let loads = AtomicU32::new(0);
    let load = || async {
        let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Some(row(org, &format!("Profile{n}"))))
    };
    let name = |r: Option<MemberRow>| r.map(|(u, _)| u.first_name.to_string());
    assert_eq!(
        name(dir.profile(org, user, load()).await.expect("loads")).as_deref(),
        Some("Profile1")
    );
    assert_eq!(
        name(dir.profile(org, user, load()).await.expect("cached")).as_deref(),
        Some("Profile1")
    );
    // A page of the same org does not collide with the profile.
    let _ = dir.list(&list_request(org, 20)).await.expect("loads");
    dir.org_changed(&[org.as_uuid()]).await;
    assert_eq!(
        name(dir.profile(org, user, load()).await.expect("reloads")).as_deref(),
        Some("Profile2")
    );
    // "Not a member" is cached too, and retired the same way.
    let stranger = UserId::new();
    assert_eq!(
        dir.profile(org, stranger, async { Ok(None) })
            .await
            .expect("loads"),
        None
    );
    assert_eq!(
        name(dir.profile(org, stranger, load()).await.expect("cached")),
        None,
        "the cached absence is served"
    );
    // Loader failures are returned and not cached.
    let failed = dir
        .profile(org, UserId::new(), async {
            Err(StorageFailure("down".into()))
        })
        .await;
    assert!(failed.is_err());
}

#[tokio::test]
async fn an_invalidation_on_one_instance_reaches_the_other() {
    let bus = InvalidationBus::local_only();
    let s = settings();
    let (fake_a, a) = cached(None, bus.clone(), s.clone()).await;
    let (fake_b, b) = cached(None, bus.clone(), s).await;
    let (org, _) = two_orgs();
    let _ = a.list(&list_request(org, 20)).await.expect("loads");
    let _ = b.list(&list_request(org, 20)).await.expect("loads");
    let mut seen = bus.subscribe();
    a.org_changed(&[org.as_uuid()]).await;
    assert!(
        seen.recv()
            .await
            .is_ok_and(|m| m.contains(&org.to_string()))
    );
    // Let b's listener apply the message (it is queued on the same runtime).
    for _ in 0..100 {
        if b.stats().invalidations_applied > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let _ = b.list(&list_request(org, 20)).await.expect("reloads");
    assert_eq!((fake_a.loads(), fake_b.loads()), (1, 2));
}

/// With Redis: instances share loaded pages through L2, and an invalidation makes
/// every instance's L2 lookup miss (the org's generation moved).
#[tokio::test]
async fn instances_share_pages_through_redis_and_invalidation_retires_them() {
    let Ok(url) = std::env::var("TEST_REDIS_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "TEST_REDIS_URL is required under CI=true"
        );
        return;
    };
    let s = settings();
    let (fake_a, a) = cached(Some(&url), InvalidationBus::local_only(), s.clone()).await;
    let (fake_b, b) = cached(Some(&url), InvalidationBus::local_only(), s.clone()).await;
    let (org, _) = two_orgs();
    let loaded = a.list(&list_request(org, 20)).await.expect("loads");
    let shared = b.list(&list_request(org, 20)).await.expect("from redis");
    assert_eq!(shared, loaded, "b got a's page from L2");
    assert_eq!((fake_a.loads(), fake_b.loads()), (1, 0));
    assert_eq!(b.stats().l2_hits, 1);

    a.org_changed(&[org.as_uuid()]).await;
    // A third instance (empty L1) must not find the retired page in Redis.
    let (fake_c, c) = cached(Some(&url), InvalidationBus::local_only(), s).await;
    let fresh = c.list(&list_request(org, 20)).await.expect("loads");
    assert_eq!(fake_c.loads(), 1);
    assert_ne!(fresh, loaded);
}
