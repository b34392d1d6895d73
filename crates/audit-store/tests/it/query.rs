//! (e) Filters and keyset pagination; (f) statistics.

use std::collections::BTreeSet;

use audit::{
    Action, Actor, AuditEvent, AuditFilter, AuditLog, AuditStats, Category, ChainId, ChangeType,
    NewAuditEvent, PageRequest, QueryAuditError, TenantScope, TimeRange,
};
use audit_store::AuditedTx;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::harness::{TestDb, load_chain};

const T0: OffsetDateTime = datetime!(2025-03-01 22:00 UTC);
const ACTIONS: [&str; 4] = [
    "permission.update",
    "member.role_change",
    "auth.sign_in",
    "data.export",
];

/// A varied event: `i` decides actor, action, entity, change type, category and time
/// (several events share a timestamp, so ties are broken by id).
fn varied(scope: TenantScope, i: u32) -> NewAuditEvent {
    let actor = match i % 3 {
        0 => Actor::User(Uuid::from_u128(1)),
        1 => Actor::ApiKey(Uuid::from_u128(2)),
        _ => Actor::System,
    };
    let action = Action::new(ACTIONS[(i % 4) as usize]).unwrap();
    let base = if i % 4 >= 2 {
        NewAuditEvent::activity(scope, actor, action, "user", format!("u{}", i % 5))
    } else {
        NewAuditEvent::audit(
            scope,
            actor,
            action,
            ["permission_setting", "member"][(i % 2) as usize],
            format!("e{}", i % 5),
            [ChangeType::Create, ChangeType::Update, ChangeType::Delete][(i % 3) as usize],
        )
    };
    // Spread over three UTC days, in 20-minute steps, four events per timestamp; the
    // sub-microsecond part must be dropped on the way in.
    base.at(T0 + Duration::minutes(20 * i64::from(i / 4)) + Duration::nanoseconds(999))
}

async fn record_all(
    db: &TestDb,
    events: impl IntoIterator<Item = NewAuditEvent>,
) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for e in events {
        let tx = AuditedTx::begin(&db.db).await.unwrap();
        tx.record(e).await.unwrap();
        out.extend(tx.commit().await.unwrap());
    }
    out
}

/// All pages of `filter`, fetching `limit` at a time; `between` runs between fetches.
async fn walk<F, Fut>(
    db: &TestDb,
    filter: &AuditFilter,
    limit: u32,
    mut between: F,
) -> Vec<AuditEvent>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let log = db.log();
    let mut page = PageRequest::first(limit);
    let mut seen = Vec::new();
    for round in 0.. {
        let result = log.find(filter.clone(), page).await.unwrap();
        assert!(result.items.len() <= limit as usize);
        seen.extend(result.items);
        between(round).await;
        match result.next_cursor {
            Some(cursor) => page = PageRequest::new(limit, Some(cursor)),
            None => break,
        }
    }
    seen
}

fn newest_first(events: &[AuditEvent], filter: &AuditFilter) -> Vec<Uuid> {
    let mut hits: Vec<&AuditEvent> = events.iter().filter(|e| filter.matches(e)).collect();
    hits.sort_by_key(|e| std::cmp::Reverse((e.body.occurred_at, e.id())));
    hits.iter().map(|e| e.id()).collect()
}

fn ids(events: &[AuditEvent]) -> Vec<Uuid> {
    events.iter().map(AuditEvent::id).collect()
}

pub async fn filters_and_pages_are_exact(db: &TestDb) {
    let org = Uuid::now_v7();
    let district = Uuid::now_v7();
    let scope = TenantScope::org_in_district(org, district);
    let chain = scope.chain_id();
    let events = record_all(db, (0..40).map(|i| varied(scope, i))).await;
    // Other tenants' events, at the same times, must never show up.
    record_all(
        db,
        (0..8).map(|i| varied(TenantScope::district(district), i)),
    )
    .await;
    record_all(
        db,
        (0..8).map(|i| varied(TenantScope::org(Uuid::now_v7()), i)),
    )
    .await;
    record_all(db, (0..4).map(|i| varied(TenantScope::PLATFORM, i))).await;

    let all = AuditFilter::new(chain);
    let filters = [
        all.clone(),
        AuditFilter {
            actor: Some(Actor::System),
            ..all.clone()
        },
        AuditFilter {
            actor: Some(Actor::User(Uuid::from_u128(1))),
            ..all.clone()
        },
        AuditFilter {
            action: Some(Action::new("member.role_change").unwrap()),
            ..all.clone()
        },
        AuditFilter {
            entity_type: Some("member".into()),
            ..all.clone()
        },
        AuditFilter {
            entity_type: Some("permission_setting".into()),
            entity_id: Some("e4".into()),
            ..all.clone()
        },
        AuditFilter {
            change_type: Some(ChangeType::Delete),
            ..all.clone()
        },
        AuditFilter {
            change_type: Some(ChangeType::None),
            ..all.clone()
        },
        AuditFilter {
            category: Some(Category::Activity),
            ..all.clone()
        },
        AuditFilter {
            category: Some(Category::Audit),
            ..all.clone()
        },
        AuditFilter {
            from: Some(T0 + Duration::hours(1)),
            to: Some(T0 + Duration::hours(3)),
            ..all.clone()
        },
        AuditFilter {
            // Bounds with sub-microsecond parts and offsets.
            from: Some(datetime!(2025-03-02 01:20:00.0000005 +02:00)),
            category: Some(Category::Audit),
            ..all.clone()
        },
        AuditFilter {
            to: Some(T0),
            ..all.clone()
        },
        AuditFilter::new(ChainId::District(district)),
        AuditFilter::new(ChainId::Platform),
    ];
    let district_events = load_chain(&db.log(), ChainId::District(district)).await;
    let platform_events = load_chain(&db.log(), ChainId::Platform).await;
    for filter in &filters {
        let pool: &[AuditEvent] = match filter.tenant {
            ChainId::District(_) => &district_events,
            ChainId::Platform => &platform_events,
            ChainId::Org(_) => &events,
        };
        let expected = newest_first(pool, filter);
        for limit in [1, 3, 7, 200] {
            let seen = walk(db, filter, limit, |_| async {}).await;
            assert_eq!(ids(&seen), expected, "filter {filter:?}, limit {limit}");
        }
    }
    assert!(
        filters[0].tenant == chain && newest_first(&events, &filters[0]).len() == 40,
        "the unfiltered listing has every event"
    );

    // Pages stay exact while new events are written between fetches: newer ones land
    // before the cursor (not seen), a backdated one behind it is seen once, in order.
    let written = std::cell::RefCell::new(Vec::new());
    let backdated_at = T0 - Duration::days(1);
    let seen = walk(db, &all, 4, |round| {
        let new = if round == 2 {
            varied(scope, 1).at(backdated_at)
        } else {
            varied(scope, 0).at(OffsetDateTime::now_utc())
        };
        let fut = record_all(db, [new]);
        let written = &written;
        async move {
            let stored = fut.await;
            written.borrow_mut().extend(stored);
        }
    })
    .await;
    let written = written.into_inner();
    let seen_ids = ids(&seen);
    let unique: BTreeSet<Uuid> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "no duplicates across pages");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].body.occurred_at, w[0].id()) > (w[1].body.occurred_at, w[1].id())),
        "strictly newest first"
    );
    let original: Vec<Uuid> = seen_ids
        .iter()
        .copied()
        .filter(|id| events.iter().any(|e| e.id() == *id))
        .collect();
    assert_eq!(original, newest_first(&events, &all), "no gaps");
    let backdated = written
        .iter()
        .find(|e| e.body.occurred_at == backdated_at)
        .unwrap();
    assert_eq!(seen_ids.last(), Some(&backdated.id()));
    assert!(
        written
            .iter()
            .filter(|e| e.body.occurred_at != backdated_at)
            .all(|e| !unique.contains(&e.id()))
    );

    // Single events, confined to their tenant.
    let log = db.log();
    let one = &events[17];
    assert_eq!(log.get(chain, one.id()).await.unwrap().as_ref(), Some(one));
    assert_eq!(
        log.get(ChainId::District(district), one.id())
            .await
            .unwrap(),
        None
    );
    assert_eq!(log.get(chain, Uuid::now_v7()).await.unwrap(), None);

    // An impossible range is refused.
    let reversed = AuditFilter {
        from: Some(T0 + Duration::hours(1)),
        to: Some(T0),
        ..all
    };
    assert!(matches!(
        log.find(reversed, PageRequest::default()).await,
        Err(QueryAuditError::InvalidFilter(_))
    ));
}

pub async fn stats_count_per_action_and_day(db: &TestDb) {
    let scope = TenantScope::org(Uuid::now_v7());
    let chain = scope.chain_id();
    record_all(db, (0..60).map(|i| varied(scope, i))).await;
    record_all(
        db,
        (0..10).map(|i| varied(TenantScope::org(Uuid::now_v7()), i)),
    )
    .await;
    let events = load_chain(&db.log(), chain).await;
    let log = db.log();

    let ranges = [
        TimeRange::new(T0 - Duration::days(1), T0 + Duration::days(5)).unwrap(),
        // Day boundaries: [2025-03-02 00:00, 2025-03-03 00:00) — exclusive end.
        TimeRange::new(
            datetime!(2025-03-02 0:00 UTC),
            datetime!(2025-03-03 0:00 UTC),
        )
        .unwrap(),
        // Offsets and odd bounds.
        TimeRange::new(
            datetime!(2025-03-02 03:20:00 +02:00),
            datetime!(2025-03-02 18:40:00.000001 UTC),
        )
        .unwrap(),
        TimeRange::new(T0, T0).unwrap(),
    ];
    for range in ranges {
        let stats = log.stats(chain, range).await.unwrap();
        assert_eq!(
            stats,
            AuditStats::from_events(range, &events),
            "range {range:?}"
        );
    }
    let full = log.stats(chain, ranges[0]).await.unwrap();
    assert_eq!(full.total, 60);
    // 15 timestamps from 03-01 22:00 in 20-minute steps, four events each.
    assert_eq!(
        full.per_day
            .iter()
            .map(|d| (d.day, d.count))
            .collect::<Vec<_>>(),
        [
            (time::macros::date!(2025 - 03 - 01), 24),
            (time::macros::date!(2025 - 03 - 02), 36)
        ]
    );
    assert_eq!(full.per_action.len(), 4);
    assert!(full.per_action.iter().all(|a| a.count == 15));
    let day = log.stats(chain, ranges[1]).await.unwrap();
    assert_eq!(day.per_day.len(), 1);
    assert_eq!(day.per_day[0].day, time::macros::date!(2025 - 03 - 02));
    assert_eq!(day.total, 36);
    assert_eq!(log.stats(chain, ranges[3]).await.unwrap().total, 0);
}

crate::both_backends!(filters_and_pages_are_exact, stats_count_per_action_and_day);
