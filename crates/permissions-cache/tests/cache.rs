//! The permission cache end to end: SQLite always and PostgreSQL when `TEST_DATABASE_URL`
//! is set (a fresh database per test), Redis from `TEST_REDIS_URL` (a unique key prefix
//! per test, deleted at the end) and, for the outage test, a private `redis-server`.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache::{InvalidationBus, RedisCache};
use permissions::BuiltinRole::{self, CommitteeLead};
use permissions::{
    PermissionKey as K, PermissionService, PermissionStore, SettingChange, SettingsUpdate,
};
use permissions_cache::{CacheError, CacheLayerStats, Invalidation, PermissionCache};
use support::{Env, PrivateRedis, eventually, redis_get, redis_url, wait_for};
use time::OffsetDateTime;
use uuid::Uuid;

both_backends!(
    two_instances_see_each_others_changes,
    read_your_writes_loads_from_the_database,
    concurrent_cold_misses_load_once,
    redis_down_answers_from_l1_and_the_database,
    redis_outage_is_survived_and_recovered,
    counters_move_per_layer,
    member_contexts_follow_member_and_org_changes,
    service_writes_through_the_port_invalidate,
    l1_tables_never_hold_more_bytes_than_their_budgets,
);

/// `budget.approve` needs a board member by default: a committee lead is denied.
const KEY: K = K::BudgetApprove;

/// Sets the org's minimum role of `key` through the store; returns the new version (the
/// consistency token).
async fn set_min_role(env: &Env, org: Uuid, key: K, role: BuiltinRole) -> u64 {
    let (_, version) = env
        .store
        .load_org_chain_versioned(org)
        .await
        .expect("load chain")
        .expect("org exists");
    let update = SettingsUpdate::Change(vec![SettingChange {
        key,
        min_role: Some(role),
        enabled: Some(true),
    }]);
    env.store
        .save_org_settings(org, version, &update)
        .await
        .expect("save setting")
}

/// An org with one active committee lead: `(org, lead)`.
async fn org_with_lead(env: &Env) -> (Uuid, Uuid) {
    let (org, lead) = (Uuid::now_v7(), Uuid::now_v7());
    env.org(org).await;
    env.active_member(org, lead, "committee_lead").await;
    (org, lead)
}

async fn check(cache: &PermissionCache, org: Uuid, user: Uuid, min: Option<u64>) -> Option<bool> {
    cache
        .check(org, user, KEY, OffsetDateTime::now_utc(), min)
        .await
        .expect("check")
}

/// What moved between `before` and `after`, per layer. `invalidations_applied` is left
/// out (zero): parallel tests share the Redis channel, and their messages reach every
/// instance.
fn delta(after: CacheLayerStats, before: CacheLayerStats) -> CacheLayerStats {
    CacheLayerStats {
        l1_hits: after.l1_hits - before.l1_hits,
        l1_misses: after.l1_misses - before.l1_misses,
        l2_hits: after.l2_hits - before.l2_hits,
        l2_misses: after.l2_misses - before.l2_misses,
        l2_skipped: after.l2_skipped - before.l2_skipped,
        db_loads: after.db_loads - before.db_loads,
        redis_errors: after.redis_errors - before.redis_errors,
        invalidations_applied: 0,
    }
}

/// A change made through instance A (store write + `org_changed`, or a membership change +
/// `member_changed`) is effective at once on A and, once the invalidation message arrived,
/// on B (separate L1, separate bus subscription, same Redis and database).
async fn two_instances_see_each_others_changes(env: &Env) {
    let Some(url) = redis_url() else {
        return;
    };
    let (org, lead) = org_with_lead(env).await;
    let a = env.cache_on(&url, env.settings()).await;
    let b = env.cache_on(&url, env.settings()).await;
    assert_eq!(check(&a, org, lead, None).await, Some(false));
    assert_eq!(check(&b, org, lead, None).await, Some(false));
    assert_eq!(b.stats().l2_hits, 2, "B found what A loaded in L2");
    assert_eq!(b.stats().db_loads, 0);
    let mut b_applied = b.applied_invalidations();

    let token = set_min_role(env, org, KEY, CommitteeLead).await;
    a.org_changed(&[org]).await;
    assert_eq!(check(&a, org, lead, None).await, Some(true), "A: at once");
    wait_for(&mut b_applied, Invalidation::Org(org)).await;
    assert_eq!(
        check(&b, org, lead, None).await,
        Some(true),
        "B: on receipt"
    );
    let compiled = b.compiled_org(org, None).await.expect("load").expect("org");
    assert_eq!(compiled.generation(), token);

    env.exec(
        "UPDATE memberships SET status = 'suspended' WHERE org_id = ? AND user_id = ?",
        vec![org.into(), lead.into()],
    )
    .await;
    a.member_changed(org, lead).await;
    assert_eq!(check(&a, org, lead, None).await, Some(false));
    wait_for(&mut b_applied, Invalidation::Member { org, user: lead }).await;
    assert_eq!(check(&b, org, lead, None).await, Some(false));
    assert_eq!(a.stats().redis_errors + b.stats().redis_errors, 0);
}

/// With a consistency token newer than the cached table, the next call loads from the
/// database (the table and the member contexts recorded under the older generation).
async fn read_your_writes_loads_from_the_database(env: &Env) {
    let (org, lead) = org_with_lead(env).await;
    let cache = env.cache().await;
    assert_eq!(check(&cache, org, lead, None).await, Some(false));

    // Another instance wrote; its invalidation has not reached this one yet.
    let token = set_min_role(env, org, KEY, CommitteeLead).await;
    assert_eq!(token, 2);
    assert_eq!(
        check(&cache, org, lead, None).await,
        Some(false),
        "without the token: this instance's (older) L1"
    );
    let before = cache.stats();
    assert_eq!(check(&cache, org, lead, Some(token)).await, Some(true));
    let step = delta(cache.stats(), before);
    assert_eq!(step.l1_misses, 2, "table and member behind the token");
    assert_eq!(step.db_loads, 2, "both loaded from the database");
    assert_eq!(step.l2_hits, 0, "L2 holds the older generation only");

    let before = cache.stats();
    assert_eq!(check(&cache, org, lead, Some(token)).await, Some(true));
    assert_eq!(check(&cache, org, lead, Some(1)).await, Some(true));
    assert_eq!(check(&cache, org, lead, None).await, Some(true));
    let step = delta(cache.stats(), before);
    assert_eq!((step.l1_hits, step.l1_misses, step.db_loads), (6, 0, 0));
    let compiled = cache.compiled_org(org, Some(token)).await.expect("load");
    assert_eq!(compiled.map(|c| c.generation()), Some(token));

    // A token from the future: the database's state is the freshest there is.
    let compiled = cache
        .compiled_org(org, Some(token + 10))
        .await
        .expect("load");
    assert_eq!(compiled.map(|c| c.generation()), Some(token));
}

/// N concurrent cold lookups of one org (then of one member) load from the database once.
async fn concurrent_cold_misses_load_once(env: &Env) {
    const N: usize = 16;
    let (org, lead) = org_with_lead(env).await;
    let cache = env.cache().await;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                cache.compiled_org(org, None).await
            })
        })
        .collect();
    for task in tasks {
        let compiled = task.await.expect("join").expect("load").expect("org");
        assert_eq!(compiled.generation(), 1);
    }
    let stats = cache.stats();
    assert_eq!(stats.db_loads, 1, "{stats:?}");
    assert_eq!(stats.l1_hits + stats.l1_misses, N as u64);

    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let cache = cache.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                cache
                    .check(org, lead, KEY, OffsetDateTime::now_utc(), None)
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("check"), Some(false));
    }
    assert_eq!(cache.stats().db_loads, 2, "one more load: the member");
}

/// An invalid Redis URL is refused; Redis on a dead port is not an error: every answer is
/// right, nothing fails, nothing hangs.
async fn redis_down_answers_from_l1_and_the_database(env: &Env) {
    let invalid = PermissionCache::new(
        env.store.clone(),
        Some("not a redis url"),
        InvalidationBus::local_only(),
        env.settings(),
    )
    .await;
    assert!(matches!(invalid, Err(CacheError::InvalidRedisUrl(_))));

    let dead = "redis://127.0.0.1:1";
    let mut settings = env.settings();
    settings.redis_connect_wait = Duration::from_millis(200);
    let publisher = RedisCache::connect(dead, Duration::from_millis(200))
        .await
        .expect("valid url");
    let bus = InvalidationBus::with_redis(dead, publisher, Duration::from_millis(200))
        .await
        .expect("valid url");
    let started = Instant::now();
    let cache = PermissionCache::new(env.store.clone(), Some(dead), bus, settings)
        .await
        .expect("an unreachable redis is not an error");
    assert!(!cache.l2_available());
    let (org, lead) = org_with_lead(env).await;

    assert_eq!(check(&cache, org, lead, None).await, Some(false));
    assert_eq!(check(&cache, org, lead, None).await, Some(false));
    let token = set_min_role(env, org, KEY, CommitteeLead).await;
    cache.org_changed(&[org]).await;
    assert_eq!(check(&cache, org, lead, None).await, Some(true));
    assert_eq!(check(&cache, org, lead, Some(token)).await, Some(true));
    env.exec(
        "DELETE FROM memberships WHERE org_id = ? AND user_id = ?",
        vec![org.into(), lead.into()],
    )
    .await;
    cache.member_changed(org, lead).await;
    assert_eq!(check(&cache, org, lead, None).await, None, "removed");
    assert_eq!(check(&cache, Uuid::now_v7(), lead, None).await, None);

    let stats = cache.stats();
    assert!(stats.redis_errors >= 1, "{stats:?}");
    assert_eq!((stats.l2_hits, stats.l2_misses), (0, 0), "{stats:?}");
    assert!(stats.l2_skipped >= 4, "{stats:?}");
    assert!(stats.l1_hits >= 2, "{stats:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded: {:?}",
        started.elapsed()
    );
}

/// A private Redis is frozen (timeouts), then killed and restarted (reconnect): answers
/// stay right throughout, a change made meanwhile reaches the other instance after the
/// recovery (its deferred generation bump is performed and re-published), and L2 serves
/// again afterwards.
async fn redis_outage_is_survived_and_recovered(env: &Env) {
    let Some(mut server) = PrivateRedis::start() else {
        return;
    };
    let url = server.url();
    let mut settings = env.settings();
    settings.redis_retry_interval = Duration::from_millis(100);
    let a = env.cache_on(&url, settings.clone()).await;
    let b = env.cache_on(&url, settings.clone()).await;
    let (org, lead) = org_with_lead(env).await;
    assert_eq!(check(&a, org, lead, None).await, Some(false));
    assert_eq!(check(&b, org, lead, None).await, Some(false));
    let gen_key = format!("{}gen:{org}", env.prefix);
    assert_eq!(redis_get(&url, &gen_key).await.as_deref(), Some("1"));
    let mut b_applied = b.applied_invalidations();

    // Frozen: commands time out.
    server.pause();
    let token = set_min_role(env, org, KEY, CommitteeLead).await;
    let started = Instant::now();
    a.org_changed(&[org]).await;
    assert!(started.elapsed() < Duration::from_secs(3), "time-bounded");
    assert!(!a.l2_available(), "circuit open");
    assert_eq!(check(&a, org, lead, Some(token)).await, Some(true));
    assert_eq!(check(&a, org, lead, None).await, Some(true));
    let stats = a.stats();
    assert!(
        stats.redis_errors >= 1 && stats.l2_skipped >= 1,
        "{stats:?}"
    );
    server.resume();
    assert!(
        eventually(Duration::from_secs(10), || a.l2_available()).await,
        "A recovers by itself"
    );
    assert_eq!(
        redis_get(&url, &gen_key).await.as_deref(),
        Some("2"),
        "the deferred bump was performed"
    );
    // B learns of the change through the re-published invalidation.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            wait_for(&mut b_applied, Invalidation::Org(org)).await;
            if check(&b, org, lead, None).await == Some(true) {
                return;
            }
        }
    })
    .await
    .expect("B sees the change after the recovery");

    // Killed: the connection drops; restarted empty on the same port.
    server.kill();
    a.org_changed(&[org]).await;
    assert_eq!(check(&a, org, lead, None).await, Some(true));
    assert!(!a.l2_available());
    server.restart();
    assert!(
        eventually(Duration::from_secs(15), || a.l2_available()).await,
        "A reconnects and recovers"
    );
    let before = a.stats();
    a.org_changed(&[org]).await;
    assert_eq!(check(&a, org, lead, None).await, Some(true));
    let step = delta(a.stats(), before);
    assert_eq!(step.l2_skipped, 0, "L2 used again: {step:?}");
    assert!(step.l2_misses >= 1, "{step:?}");
    let c = env.cache_on(&url, settings).await;
    assert_eq!(check(&c, org, lead, None).await, Some(true));
    assert_eq!(c.stats().l2_hits, 2, "served from the restarted L2");
}

/// Cold, warm, a second instance, and after a member change: each layer's counters.
async fn counters_move_per_layer(env: &Env) {
    let with_redis = redis_url().is_some();
    let (org, lead) = org_with_lead(env).await;
    let a = env.cache().await;
    let mut a_applied = a.applied_invalidations();
    let zero = CacheLayerStats::default();
    assert_eq!(delta(a.stats(), zero), zero);

    assert_eq!(check(&a, org, lead, None).await, Some(false));
    let l2 = u64::from(with_redis);
    assert_eq!(
        delta(a.stats(), zero),
        CacheLayerStats {
            l1_misses: 2,
            l2_misses: 2 * l2,
            db_loads: 2,
            ..CacheLayerStats::default()
        }
    );
    assert_eq!(check(&a, org, lead, None).await, Some(false));
    assert!(a.compiled_org(org, None).await.expect("load").is_some());
    assert!(a.member(org, lead, None).await.expect("load").is_some());
    let warm = a.stats();
    assert_eq!((warm.l1_hits, warm.l1_misses, warm.db_loads), (5, 2, 2));

    if with_redis {
        let b = env.cache().await;
        assert_eq!(check(&b, org, lead, None).await, Some(false));
        assert_eq!(
            delta(b.stats(), zero),
            CacheLayerStats {
                l1_misses: 2,
                l2_hits: 2,
                ..CacheLayerStats::default()
            }
        );
        // B changes the member; A applies B's message (once, from Redis).
        b.member_changed(org, lead).await;
        wait_for(&mut a_applied, Invalidation::Member { org, user: lead }).await;
    } else {
        // A changes the member: applied by itself, then once more from its bus.
        a.member_changed(org, lead).await;
        wait_for(&mut a_applied, Invalidation::Member { org, user: lead }).await;
        wait_for(&mut a_applied, Invalidation::Member { org, user: lead }).await;
    }
    let before = a.stats();
    assert_eq!(check(&a, org, lead, None).await, Some(false));
    let step = delta(a.stats(), before);
    assert_eq!(
        step,
        CacheLayerStats {
            l1_hits: 1,
            l1_misses: 1,
            l2_misses: l2,
            db_loads: 1,
            ..CacheLayerStats::default()
        },
        "the table stays, the member reloads"
    );
    assert!(a.stats().invalidations_applied >= 1);
}

/// Member contexts never outlive a change: an org-level change that does not bump the
/// version (a custom role's extra keys), joining, suspension.
async fn member_contexts_follow_member_and_org_changes(env: &Env) {
    let (org, lead) = org_with_lead(env).await;
    let (treasurer_role, treasurer, newcomer) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    env.role(org, treasurer_role, "Treasurer", "committee_lead", &[])
        .await;
    env.user(treasurer).await;
    env.member(org, treasurer, Err(treasurer_role), "active")
        .await;
    env.user(newcomer).await;
    let cache = env.cache().await;

    assert_eq!(
        check(&cache, Uuid::now_v7(), lead, None).await,
        None,
        "unknown org"
    );
    let unknown = cache
        .compiled_org(Uuid::now_v7(), None)
        .await
        .expect("load");
    assert!(unknown.is_none());
    assert_eq!(
        check(&cache, org, newcomer, None).await,
        None,
        "not a member"
    );
    assert_eq!(check(&cache, org, treasurer, None).await, Some(false));
    let member = cache.member(org, treasurer, None).await.expect("load");
    assert_eq!(member.expect("member").role.name, "Treasurer");

    // The custom role gains the key (the tenancy store's write: no version bump).
    env.exec(
        "UPDATE org_roles SET extra_keys = ? WHERE org_id = ? AND id = ?",
        vec![
            serde_json::json!(["budget.approve"]).into(),
            org.into(),
            treasurer_role.into(),
        ],
    )
    .await;
    assert_eq!(
        check(&cache, org, treasurer, None).await,
        Some(false),
        "still cached"
    );
    // org_changed retires the org's member contexts, although the compiled table's
    // generation stays the same.
    cache.org_changed(&[org]).await;
    assert_eq!(check(&cache, org, treasurer, None).await, Some(true));
    assert_eq!(env.version(org).await, 1);

    // Joining: the cached "not a member" goes.
    env.member(org, newcomer, Ok("board_member"), "active")
        .await;
    cache.member_changed(org, newcomer).await;
    assert_eq!(check(&cache, org, newcomer, None).await, Some(true));

    // Suspension.
    env.exec(
        "UPDATE memberships SET status = 'suspended' WHERE org_id = ? AND user_id = ?",
        vec![org.into(), newcomer.into()],
    )
    .await;
    cache.member_changed(org, newcomer).await;
    assert_eq!(check(&cache, org, newcomer, None).await, Some(false));
    assert_eq!(check(&cache, org, lead, None).await, Some(false));
}

/// A `PermissionService` over the cached port: its save invalidates as part of the write
/// (here at once, on the other instance on receipt) through the database's after-commit
/// dispatcher, members come from the cache, and a save that changes nothing invalidates
/// nothing.
async fn service_writes_through_the_port_invalidate(env: &Env) {
    let (org, lead) = org_with_lead(env).await;
    let a = env.cache().await;
    env.dispatch_to(a.clone());
    let b = match redis_url() {
        Some(url) => Some(env.cache_on(&url, env.settings()).await),
        None => None,
    };
    let service = PermissionService::new(a.port(env.store.clone()));
    assert_eq!(check(&a, org, lead, None).await, Some(false));
    if let Some(b) = &b {
        assert_eq!(check(b, org, lead, None).await, Some(false));
    }
    let mut b_applied = b.as_ref().map(PermissionCache::applied_invalidations);
    let member = service.store().load_member(org, lead).await.expect("load");
    assert_eq!(member.map(|m| m.role.counts_as), Some(CommitteeLead));

    let mut a_applied = a.applied_invalidations();
    let change = SettingChange {
        key: KEY,
        min_role: Some(CommitteeLead),
        enabled: None,
    };
    let token = service
        .update_settings(org, 1, &[change])
        .await
        .expect("update");
    assert_eq!(token, 2);
    assert_eq!(check(&a, org, lead, None).await, Some(true), "at once");
    if let (Some(b), Some(applied)) = (&b, &mut b_applied) {
        wait_for(applied, Invalidation::Org(org)).await;
        assert_eq!(check(b, org, lead, None).await, Some(true), "on receipt");
    }

    // A applied its own eviction, then its bus echoes it in-process (not again from
    // Redis: the bus skips its own messages there).
    for _ in 0..2 {
        wait_for(&mut a_applied, Invalidation::Org(org)).await;
    }
    assert_eq!(check(&a, org, lead, None).await, Some(true));
    let before = a.stats();
    let same = service
        .update_settings(org, token, &[change])
        .await
        .expect("no-op update");
    assert_eq!(same, token);
    assert_eq!(check(&a, org, lead, None).await, Some(true));
    assert_eq!(
        delta(a.stats(), before).l1_hits,
        2,
        "nothing was invalidated"
    );
}

/// Both L1 tables are bounded by bytes: with small budgets, loading more orgs and members
/// than fit never takes either over its budget, and both hold something.
async fn l1_tables_never_hold_more_bytes_than_their_budgets(env: &Env) {
    let mut settings = env.settings();
    settings.l1_org_bytes = 8_000;
    settings.l1_member_bytes = 4_000;
    let cache = PermissionCache::new(
        env.store.clone(),
        None,
        InvalidationBus::local_only(),
        settings,
    )
    .await
    .expect("cache");
    for i in 0..40 {
        let (org, lead) = org_with_lead(env).await;
        assert!(check(&cache, org, lead, None).await.is_some(), "a member");
        for size in cache.l1_bytes().await {
            assert!(
                size.bytes <= size.budget,
                "{} over budget after {i} orgs: {size:?}",
                size.name
            );
        }
    }
    let sizes = cache.l1_bytes().await;
    assert_eq!(
        sizes.iter().map(|s| s.name).collect::<Vec<_>>(),
        ["permission_orgs", "permission_members"]
    );
    assert!(sizes.iter().all(|s| s.bytes > 0), "{sizes:?}");
}
