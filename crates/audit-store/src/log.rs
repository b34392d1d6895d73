//! The query side: [`SeaOrmAuditLog`] implements the domain's [`AuditLog`] port.

use std::collections::BTreeMap;

use audit::truncate_to_micros;
use audit::{
    Action, ActionCount, AuditCursor, AuditEvent, AuditFilter, AuditLog, AuditStats, BoxError,
    CategoryDayCount, ChainHead, ChainId, ChainReadError, DayCount, GetAuditError, Page,
    PageRequest, QueryAuditError, Selection, StatsAuditError, TimeRange,
};
use persistence::{Database, StorageError};
use sea_orm::sea_query::{Alias, Cond, Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Value};
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use crate::personal::open_events;
use crate::schema::{
    AuditChainHeads, AuditEvents, CorruptRow, RowLocation, event_from_row, head_from_row,
    parse_chain, seq_value, time_expr,
};

/// [`AuditLog`] on SeaORM (PostgreSQL or SQLite). Reads go to [`Database::reader`] (the
/// replica, if configured), so a listing may lag the primary slightly.
///
/// Every query is confined to one chain (`chain_id = …`, which names its tenant's
/// rows); a filtered page also constrains `org_id` / `district_id`, so that the planner
/// uses the tenant-leading filter indexes.
///
/// [`AuditLog::find`] and [`AuditLog::get`] return events *opened*: sealed personal
/// fields decrypted, or [`audit::ERASED`] where the subject was erased.
/// [`AuditLog::chain_events`] returns them as stored (closed), for verification and
/// archiving; either form has the same hash.
#[derive(Debug, Clone)]
pub struct SeaOrmAuditLog {
    db: Database,
}

impl SeaOrmAuditLog {
    /// A log over `db`.
    #[must_use]
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The database this log reads.
    #[must_use]
    pub fn database(&self) -> &Database {
        &self.db
    }
}

impl AuditLog for SeaOrmAuditLog {
    async fn find(
        &self,
        filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>, QueryAuditError> {
        find(self.db.reader(), &filter, &page).await
    }

    async fn get(&self, tenant: ChainId, id: Uuid) -> Result<Option<AuditEvent>, GetAuditError> {
        get(self.db.reader(), tenant, id)
            .await
            .map_err(GetAuditError::Storage)
    }

    async fn stats(
        &self,
        tenant: ChainId,
        range: TimeRange,
    ) -> Result<AuditStats, StatsAuditError> {
        stats(self.db.reader(), tenant, range)
            .await
            .map_err(StatsAuditError::Storage)
    }

    async fn daily(&self, filter: AuditFilter) -> Result<Vec<CategoryDayCount>, StatsAuditError> {
        daily(self.db.reader(), &filter)
            .await
            .map_err(StatsAuditError::Storage)
    }

    async fn chain_head(&self, chain: ChainId) -> Result<Option<ChainHead>, ChainReadError> {
        chain_head(self.db.reader(), chain)
            .await
            .map_err(ChainReadError::Storage)
    }

    async fn chain_events(
        &self,
        chain: ChainId,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, ChainReadError> {
        chain_events(self.db.reader(), chain, from_seq, limit)
            .await
            .map_err(ChainReadError::Storage)
    }

    async fn changes(
        &self,
        chain: ChainId,
        seqs: (u64, u64),
        selection: &Selection,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, ChainReadError> {
        changes(self.db.reader(), chain, seqs, selection, limit)
            .await
            .map_err(ChainReadError::Storage)
    }

    async fn archived_through(&self, chain: ChainId) -> Result<u64, ChainReadError> {
        crate::retention::latest_cut(self.db.reader(), chain)
            .await
            .map(|cut| cut.map_or(0, |c| c.last_seq))
            .map_err(ChainReadError::Storage)
    }
}

fn db_err(err: DbErr) -> BoxError {
    Box::new(StorageError::from(err))
}

fn corrupt(err: CorruptRow) -> BoxError {
    Box::new(err)
}

/// `chain_id = …` alone: an event's chain is derived from its tenant
/// (`TenantScope::chain_id`), so it names the tenant's rows, and `ix_audit_chain_time`
/// serves it in time order. Adding the tenant column, which it implies, misleads
/// PostgreSQL: it takes the two as independent and, in a prepared statement's generic
/// plan, sorts every event of the tenant to return one page (docs/decisions.md, "An
/// audit page reads its page, not its tenant's history").
fn chain_cond(chain: ChainId) -> Cond {
    Cond::all().add(Expr::col(AuditEvents::ChainId).eq(chain.to_string()))
}

/// `chain_id = …` plus the tenant column the filter indexes (`ix_audit_org_actor`, …)
/// lead with.
fn tenant_cond(chain: ChainId) -> Cond {
    let cond = Cond::all().add(Expr::col(AuditEvents::ChainId).eq(chain.to_string()));
    match chain {
        ChainId::Org(org) => cond.add(Expr::col(AuditEvents::OrgId).eq(Value::Uuid(Some(org)))),
        ChainId::District(district) => cond
            .add(Expr::col(AuditEvents::DistrictId).eq(Value::Uuid(Some(district))))
            .add(Expr::col(AuditEvents::OrgId).is_null()),
        ChainId::Platform => cond,
    }
}

/// Every column of an event row. The sealed parts are read as text on both backends
/// (a no-op cast on SQLite): parsed straight into their type, not through a JSON tree
/// first, which an audit page does for each of its events.
fn select_events() -> SelectStatement {
    Query::select()
        .columns(
            AuditEvents::COLUMNS
                .into_iter()
                .filter(|c| !matches!(c, AuditEvents::Sealed)),
        )
        .expr_as(
            Expr::cust(r#"CAST("sealed" AS TEXT)"#),
            Alias::new("sealed"),
        )
        .from(AuditEvents::Table)
        .to_owned()
}

fn filter_cond(filter: &AuditFilter, backend: DbBackend) -> Cond {
    // A filter on a column an org's filter index holds: that index, which leads with
    // the tenant column; else the chain's time order.
    let by_filter_index = filter.actor.is_some()
        || filter.action.is_some()
        || filter.entity_type.is_some()
        || filter.entity_id.is_some()
        || filter.category.is_some();
    let mut cond = if by_filter_index {
        tenant_cond(filter.tenant)
    } else {
        chain_cond(filter.tenant)
    };
    if let Some(actor) = filter.actor {
        cond = cond.add(Expr::col(AuditEvents::ActorKind).eq(actor.kind()));
        cond = cond.add(match actor.id() {
            Some(id) => Expr::col(AuditEvents::ActorId).eq(Value::Uuid(Some(id))),
            None => Expr::col(AuditEvents::ActorId).is_null(),
        });
    }
    if let Some(action) = &filter.action {
        cond = cond.add(Expr::col(AuditEvents::Action).eq(action.as_str()));
    }
    if let Some(entity_type) = &filter.entity_type {
        cond = cond.add(Expr::col(AuditEvents::EntityType).eq(entity_type.as_str()));
    }
    if let Some(entity_id) = &filter.entity_id {
        cond = cond.add(Expr::col(AuditEvents::EntityId).eq(entity_id.as_str()));
    }
    if let Some(change_type) = filter.change_type {
        cond = cond.add(Expr::col(AuditEvents::ChangeType).eq(change_type.as_str()));
    }
    if let Some(category) = filter.category {
        cond = cond.add(Expr::col(AuditEvents::Category).eq(category.as_str()));
    }
    // Stored times are whole microseconds, so `t >= b` (and `t < b`) is the same as
    // comparing with `b` rounded *up* to the microsecond; a bound rounded down would
    // admit an event the domain's `AuditFilter::matches` rejects.
    if let Some(from) = filter.from {
        cond =
            cond.add(Expr::col(AuditEvents::OccurredAt).gte(time_expr(backend, ceil_micros(from))));
    }
    if let Some(to) = filter.to {
        cond = cond.add(Expr::col(AuditEvents::OccurredAt).lt(time_expr(backend, ceil_micros(to))));
    }
    cond
}

/// `at` rounded up to whole microseconds (UTC).
fn ceil_micros(at: OffsetDateTime) -> OffsetDateTime {
    let floor = truncate_to_micros(at);
    if floor == at {
        floor
    } else {
        floor
            .checked_add(Duration::microseconds(1))
            .unwrap_or(floor)
    }
}

/// `(occurred_at, id) < (cursor.occurred_at, cursor.id)`, spelled out for portability.
fn cursor_cond(cursor: &AuditCursor, backend: DbBackend) -> Cond {
    let at = || time_expr(backend, cursor.occurred_at());
    Cond::any()
        .add(Expr::col(AuditEvents::OccurredAt).lt(at()))
        .add(
            Cond::all()
                .add(Expr::col(AuditEvents::OccurredAt).eq(at()))
                .add(Expr::col(AuditEvents::Id).lt(Value::Uuid(Some(cursor.id())))),
        )
}

/// The query of one page of `filter`'s events, newest first.
fn page_query(filter: &AuditFilter, page: &PageRequest, backend: DbBackend) -> SelectStatement {
    let mut cond = filter_cond(filter, backend);
    if let Some(cursor) = page.cursor() {
        cond = cond.add(cursor_cond(&cursor, backend));
    }
    select_events()
        .cond_where(cond)
        .order_by(AuditEvents::OccurredAt, Order::Desc)
        .order_by(AuditEvents::Id, Order::Desc)
        .limit(u64::from(page.fetch_limit()))
        .to_owned()
}

pub(crate) async fn find<C: ConnectionTrait>(
    conn: &C,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditEvent>, QueryAuditError> {
    filter.validate()?;
    let backend = conn.get_database_backend();
    let query = page_query(filter, page, backend);
    let rows = conn
        .query_all(&query)
        .await
        .map_err(|e| QueryAuditError::Storage(db_err(e)))?;
    let mut events = rows
        .iter()
        .map(|row| event_from_row(row, backend))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueryAuditError::Storage(corrupt(e)))?;
    open_events(conn, &mut events)
        .await
        .map_err(QueryAuditError::Storage)?;
    Ok(Page::from_overfetch(events, page, None))
}

pub(crate) async fn get<C: ConnectionTrait>(
    conn: &C,
    tenant: ChainId,
    id: Uuid,
) -> Result<Option<AuditEvent>, BoxError> {
    let backend = conn.get_database_backend();
    let query = select_events()
        .cond_where(tenant_cond(tenant).add(Expr::col(AuditEvents::Id).eq(Value::Uuid(Some(id)))))
        .to_owned();
    let row = conn.query_one(&query).await.map_err(db_err)?;
    let Some(mut event) = row
        .map(|row| event_from_row(&row, backend))
        .transpose()
        .map_err(corrupt)?
    else {
        return Ok(None);
    };
    open_events(conn, std::slice::from_mut(&mut event)).await?;
    Ok(Some(event))
}

pub(crate) async fn stats<C: ConnectionTrait>(
    conn: &C,
    tenant: ChainId,
    range: TimeRange,
) -> Result<AuditStats, BoxError> {
    let backend = conn.get_database_backend();
    let in_range = chain_cond(tenant)
        .add(Expr::col(AuditEvents::OccurredAt).gte(time_expr(backend, range.from())))
        .add(Expr::col(AuditEvents::OccurredAt).lt(time_expr(backend, range.to())));

    let per_action_query = Query::select()
        .column(AuditEvents::Action)
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(AuditEvents::Table)
        .cond_where(in_range.clone())
        .group_by_col(AuditEvents::Action)
        .to_owned();
    let mut total = 0_u64;
    let mut per_action = Vec::new();
    for row in conn.query_all(&per_action_query).await.map_err(db_err)? {
        let action: String = row.try_get("", "action").map_err(db_err)?;
        let count = count_of(&row)?;
        let action = Action::new(action.clone()).map_err(|e| {
            corrupt(CorruptRow {
                location: RowLocation {
                    chain_id: Some(tenant.to_string()),
                    ..RowLocation::default()
                },
                column: "action",
                detail: format!("{e}: {action:?}"),
            })
        })?;
        total += count;
        per_action.push(ActionCount { action, count });
    }
    per_action.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.action.cmp(&b.action)));

    // The UTC calendar day of each event: PostgreSQL converts the timestamptz; SQLite
    // stores UTC text whose first ten characters are the date.
    let day_expr = match backend {
        DbBackend::Sqlite => "substr(occurred_at, 1, 10)",
        _ => "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    };
    let per_day_query = Query::select()
        .expr_as(Expr::cust(day_expr), Alias::new("day"))
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(AuditEvents::Table)
        .cond_where(in_range)
        .add_group_by([Expr::cust(day_expr)])
        .to_owned();
    let mut per_day = BTreeMap::new();
    for row in conn.query_all(&per_day_query).await.map_err(db_err)? {
        let day: String = row.try_get("", "day").map_err(db_err)?;
        let date = Date::parse(&day, format_description!("[year]-[month]-[day]")).map_err(|e| {
            corrupt(CorruptRow {
                location: RowLocation {
                    chain_id: Some(tenant.to_string()),
                    ..RowLocation::default()
                },
                column: "occurred_at",
                detail: format!("{e}: {day:?}"),
            })
        })?;
        *per_day.entry(date).or_insert(0) += count_of(&row)?;
    }
    Ok(AuditStats {
        range,
        total,
        per_action,
        per_day: per_day
            .into_iter()
            .map(|(day, count)| DayCount { day, count })
            .collect(),
    })
}

/// The UTC calendar day of `occurred_at`: PostgreSQL converts the timestamptz; SQLite
/// stores UTC text whose first ten characters are the date.
fn day_expr(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => "substr(occurred_at, 1, 10)",
        _ => "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    }
}

fn parse_day(tenant: ChainId, day: &str) -> Result<Date, BoxError> {
    Date::parse(day, format_description!("[year]-[month]-[day]")).map_err(|e| {
        corrupt(CorruptRow {
            location: RowLocation {
                chain_id: Some(tenant.to_string()),
                ..RowLocation::default()
            },
            column: "occurred_at",
            detail: format!("{e}: {day:?}"),
        })
    })
}

/// Counts per UTC day and category of the events matching `filter`.
pub(crate) async fn daily<C: ConnectionTrait>(
    conn: &C,
    filter: &AuditFilter,
) -> Result<Vec<CategoryDayCount>, BoxError> {
    filter.validate().map_err(|e| Box::new(e) as BoxError)?;
    let backend = conn.get_database_backend();
    let day = day_expr(backend);
    let query = Query::select()
        .expr_as(Expr::cust(day), Alias::new("day"))
        .column(AuditEvents::Category)
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(AuditEvents::Table)
        .cond_where(filter_cond(filter, backend))
        .add_group_by([Expr::cust(day), Expr::col(AuditEvents::Category)])
        .to_owned();
    let mut days: BTreeMap<Date, CategoryDayCount> = BTreeMap::new();
    for row in conn.query_all(&query).await.map_err(db_err)? {
        let text: String = row.try_get("", "day").map_err(db_err)?;
        let date = parse_day(filter.tenant, &text)?;
        let category: String = row.try_get("", "category").map_err(db_err)?;
        let n = count_of(&row)?;
        let entry = days.entry(date).or_insert(CategoryDayCount {
            day: date,
            audit: 0,
            activity: 0,
        });
        match category.as_str() {
            "activity" => entry.activity += n,
            _ => entry.audit += n,
        }
    }
    Ok(days.into_values().collect())
}

fn count_of(row: &sea_orm::QueryResult) -> Result<u64, BoxError> {
    let n: i64 = row.try_get("", "n").map_err(db_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn chain_head<C: ConnectionTrait>(
    conn: &C,
    chain: ChainId,
) -> Result<Option<ChainHead>, BoxError> {
    let backend = conn.get_database_backend();
    let query = Query::select()
        .columns([AuditChainHeads::Seq, AuditChainHeads::Hash])
        .from(AuditChainHeads::Table)
        .and_where(Expr::col(AuditChainHeads::ChainId).eq(chain.to_string()))
        .and_where(Expr::col(AuditChainHeads::Seq).gt(0))
        .to_owned();
    let Some(row) = conn.query_one(&query).await.map_err(db_err)? else {
        return Ok(None);
    };
    let head = head_from_row(&row, backend, Some(chain)).map_err(corrupt)?;
    Ok(Some(ChainHead {
        chain,
        seq: head.seq,
        hash: head.hash,
    }))
}

/// The heads of every non-empty chain (one consistent read).
pub(crate) async fn all_chain_heads<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<ChainHead>, BoxError> {
    let backend = conn.get_database_backend();
    let query = Query::select()
        .columns([
            AuditChainHeads::ChainId,
            AuditChainHeads::Seq,
            AuditChainHeads::Hash,
        ])
        .from(AuditChainHeads::Table)
        .and_where(Expr::col(AuditChainHeads::Seq).gt(0))
        .order_by(AuditChainHeads::ChainId, Order::Asc)
        .to_owned();
    conn.query_all(&query)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| {
            let head = head_from_row(row, backend, None).map_err(corrupt)?;
            Ok(ChainHead {
                chain: parse_chain(&head.chain_id).map_err(corrupt)?,
                seq: head.seq,
                hash: head.hash,
            })
        })
        .collect()
}

pub(crate) async fn chain_events<C: ConnectionTrait>(
    conn: &C,
    chain: ChainId,
    from_seq: u64,
    limit: u32,
) -> Result<Vec<AuditEvent>, BoxError> {
    let Some(from) = seq_value(from_seq) else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let query = select_events()
        .and_where(Expr::col(AuditEvents::ChainId).eq(chain.to_string()))
        .and_where(Expr::col(AuditEvents::Seq).gte(from))
        .order_by(AuditEvents::Seq, Order::Asc)
        .limit(u64::from(limit))
        .to_owned();
    conn.query_all(&query)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| event_from_row(row, backend).map_err(corrupt))
        .collect()
}

/// The events of `chain` in `(after, upto]` that `selection` selects, ascending, opened.
pub(crate) async fn changes<C: ConnectionTrait>(
    conn: &C,
    chain: ChainId,
    (after, upto): (u64, u64),
    selection: &Selection,
    limit: u32,
) -> Result<Vec<AuditEvent>, BoxError> {
    let (Some(after), Some(upto)) = (seq_value(after), seq_value(upto)) else {
        return Ok(Vec::new());
    };
    if limit == 0 || upto <= after || selection.is_empty() {
        return Ok(Vec::new());
    }
    let actions = |list: &[Action]| {
        list.iter()
            .map(|a| a.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let mut any = Cond::any();
    if !selection.everyone.is_empty() {
        any = any.add(Expr::col(AuditEvents::Action).is_in(actions(&selection.everyone)));
    }
    if let Some(me) = selection.own_entity.as_deref()
        && !selection.own.is_empty()
    {
        any = any.add(
            Cond::all()
                .add(Expr::col(AuditEvents::Action).is_in(actions(&selection.own)))
                .add(Expr::col(AuditEvents::EntityId).eq(me)),
        );
    }
    let backend = conn.get_database_backend();
    let query = select_events()
        .cond_where(
            chain_cond(chain)
                .add(Expr::col(AuditEvents::Seq).gt(after))
                .add(Expr::col(AuditEvents::Seq).lte(upto))
                .add(any),
        )
        .order_by(AuditEvents::Seq, Order::Asc)
        .limit(u64::from(limit))
        .to_owned();
    let mut events = conn
        .query_all(&query)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| event_from_row(row, backend).map_err(corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    open_events(conn, &mut events).await?;
    Ok(events)
}

#[cfg(test)]
mod plan_tests {
    use super::*;
    use audit::{Action, Actor, ChangeType, NewAuditEvent, TenantScope};
    use sea_orm::sea_query::PostgresQueryBuilder;
    use sea_orm::{Statement, TransactionTrait};

    #[test]
    fn an_unfiltered_page_names_its_chain_only() {
        let org = Uuid::now_v7();
        let (sql, _) = page_query(
            &AuditFilter::new(ChainId::Org(org)),
            &PageRequest::first(20),
            DbBackend::Postgres,
        )
        .build(PostgresQueryBuilder);
        assert!(
            sql.contains(r#"WHERE "chain_id" = $1 ORDER BY "occurred_at" DESC, "id" DESC"#),
            "{sql}"
        );
        assert!(!sql.contains("org_id\" ="), "{sql}");
        let mut filtered = AuditFilter::new(ChainId::Org(org));
        filtered.category = Some(audit::Category::Audit);
        let (sql, _) = page_query(&filtered, &PageRequest::first(20), DbBackend::Postgres)
            .build(PostgresQueryBuilder);
        assert!(sql.contains(r#""org_id" = $2"#), "{sql}");
    }

    /// PostgreSQL switches a prepared statement to its generic plan after a few runs:
    /// that plan must read the page through `ix_audit_chain_time`, not sort the org's
    /// whole history.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_generic_plan_of_a_page_reads_the_chain_index_in_order() {
        let Some(scratch) =
            test_support::ScratchDb::open(test_support::Backend::Postgres, "ptoc_as_plan", 4).await
        else {
            return;
        };
        let (busy, quiet) = (Uuid::now_v7(), Uuid::now_v7());
        for (org, n) in [(busy, 600_usize), (quiet, 30)] {
            let tx = scratch.db.begin_write().await.expect("begin");
            let events = (0..n)
                .map(|i| {
                    NewAuditEvent::audit(
                        TenantScope::org(org),
                        Actor::System,
                        Action::new("member.update").expect("action"),
                        "member",
                        i.to_string(),
                        ChangeType::Update,
                    )
                })
                .collect();
            crate::append::append_in(&tx, events).await.expect("append");
            tx.commit().await.expect("commit");
        }
        let conn = scratch.db.primary();
        conn.execute_unprepared("ANALYZE audit_events")
            .await
            .expect("analyze");
        let (sql, _) = page_query(
            &AuditFilter::new(ChainId::Org(busy)),
            &PageRequest::first(20),
            DbBackend::Postgres,
        )
        .build(PostgresQueryBuilder);
        let tx = conn.begin().await.expect("begin");
        for statement in [
            "SET LOCAL plan_cache_mode = force_generic_plan".to_owned(),
            format!("PREPARE audit_page AS {sql}"),
        ] {
            tx.execute_unprepared(&statement).await.expect(&statement);
        }
        let plan = tx
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("EXPLAIN (FORMAT JSON) EXECUTE audit_page('org:{busy}', 21)"),
            ))
            .await
            .expect("explain")
            .expect("a plan");
        let plan: serde_json::Value = plan.try_get_by_index(0).expect("json plan");
        let text = plan.to_string();
        assert!(text.contains("ix_audit_chain_time"), "{text}");
        assert!(!text.contains("\"Sort\""), "{text}");
        assert!(!text.contains("Bitmap"), "{text}");
        drop(tx);
        scratch.finish().await;
    }
}
