//! Deliveries queued from the committed change-event record.
//!
//! Every enabled endpoint has a position in its org's chain (`cursor_seq`, set at
//! creation to the endpoint's own `webhook.create` event). [`queue_new_events`] reads
//! the events after it with [`audit::read_page`] (the events API's reader: no gap, no
//! duplicate, events up to the head read first), keeps those the endpoint's filter
//! names, and in **one transaction** inserts their deliveries (unique per endpoint and
//! event: a second insert is nothing) and moves the position on — conditional on the
//! position it read, so two instances doing the same work cannot both move it, and a
//! crash loses both or neither. A committed event is therefore queued for every
//! endpoint that was enabled and matching, exactly once, however late the worker runs.
//!
//! Endpoints of an org at the same position with the same filter (the usual case once
//! they have caught up) are one *group*: their events are read once and their
//! deliveries inserted and positions moved in one transaction, each endpoint's move
//! still conditional on its own position (an endpoint another worker moved leaves the
//! group; the others go on).
//!
//! Endpoints receive what the org's admins see (only admins manage webhooks).

use std::collections::{BTreeMap, BTreeSet};

use audit::changes::{ChangePageError, Receiver, read_page};
use audit::{AuditLog, ChainId};
use persistence::statement;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{NewDelivery, SeaOrmWebhooks, StoreFailure, insert_deliveries, seq_value};

/// Events read per endpoint and step.
const PAGE: u32 = 200;

struct Subscription {
    org: Uuid,
    id: Uuid,
    cursor: u64,
    events: BTreeSet<String>,
}

/// The receiver endpoints are: an admin of the org (no one's subject).
fn admin_receiver() -> Receiver {
    Receiver {
        user: None,
        admin: true,
        holds: permissions::KeySet::all(),
    }
}

/// Queues the deliveries of every event committed since each enabled endpoint's
/// position (see the module documentation); how many were queued.
///
/// # Errors
/// Storage failures (what was committed before stays; the rest is done next time).
pub async fn queue_new_events<L: AuditLog>(
    store: &SeaOrmWebhooks,
    log: &L,
) -> Result<u64, StoreFailure> {
    let conn = store.db.primary();
    let rows = conn
        .query_all_raw(statement(
            conn.get_database_backend(),
            "SELECT org_id, id, cursor_seq, event_types FROM webhook_endpoints WHERE enabled = ?",
            vec![true.into()],
        ))
        .await?;
    let mut by_org: BTreeMap<Uuid, Vec<Subscription>> = BTreeMap::new();
    for row in &rows {
        let types: String = row.try_get("", "event_types")?;
        let sub = Subscription {
            org: row.try_get("", "org_id")?,
            id: row.try_get("", "id")?,
            cursor: u64::try_from(row.try_get::<i64>("", "cursor_seq")?).unwrap_or_default(),
            events: serde_json::from_str(&types).unwrap_or_default(),
        };
        by_org.entry(sub.org).or_default().push(sub);
    }
    let mut queued = 0;
    for (org, subs) in by_org {
        let chain = ChainId::Org(org);
        let head = log
            .chain_head(chain)
            .await
            .map_err(|e| StoreFailure(Box::new(e)))?
            .map_or(0, |h| h.seq);
        let mut groups: BTreeMap<(u64, BTreeSet<String>), Vec<Uuid>> = BTreeMap::new();
        for sub in subs.into_iter().filter(|s| s.cursor < head) {
            groups
                .entry((sub.cursor, sub.events))
                .or_default()
                .push(sub.id);
        }
        for ((cursor, events), endpoints) in groups {
            let group = Group {
                org,
                endpoints,
                events,
            };
            queued += queue_group(store, log, chain, group, cursor).await?;
        }
    }
    Ok(queued)
}

/// Endpoints of one org at the same position with the same filter.
struct Group {
    org: Uuid,
    endpoints: Vec<Uuid>,
    events: BTreeSet<String>,
}

/// Queues one group's events up to the head it finds.
async fn queue_group<L: AuditLog>(
    store: &SeaOrmWebhooks,
    log: &L,
    chain: ChainId,
    mut group: Group,
    mut cursor: u64,
) -> Result<u64, StoreFailure> {
    let wanted: BTreeSet<&'static str> = audit::changes::publications()
        .iter()
        .map(|p| p.name)
        .filter(|n| group.events.contains(*n))
        .collect();
    let selection = admin_receiver().selection(Some(&wanted));
    let mut queued = 0;
    loop {
        let page = match read_page(log, chain, Some(cursor), &selection, PAGE).await {
            Ok(page) => page,
            Err(ChangePageError::Expired { floor }) => {
                tracing::warn!(endpoints = ?group.endpoints, org = %group.org, from = cursor, to = floor,
                    "webhooks: events after the endpoints' position were archived before they were queued; skipping them");
                group.endpoints = advance(store, &group, cursor, floor, &[]).await?;
                if group.endpoints.is_empty() {
                    return Ok(queued);
                }
                cursor = floor;
                continue;
            }
            Err(ChangePageError::Storage(e)) => return Err(StoreFailure(Box::new(e))),
        };
        if page.next <= cursor {
            return Ok(queued);
        }
        let messages: Vec<(u64, &'static str, String)> = page
            .events
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.publication.name,
                    webhooks::event_body(e).to_string(),
                )
            })
            .collect();
        // Endpoints another worker moved (or that changed) are its work.
        group.endpoints = advance(store, &group, cursor, page.next, &messages).await?;
        if group.endpoints.is_empty() {
            return Ok(queued);
        }
        queued += (messages.len() * group.endpoints.len()) as u64;
        cursor = page.next;
    }
}

/// In one transaction: each of the group's endpoints' position moved from `from` to
/// `to` (only where it is still at `from` and enabled), and the deliveries of
/// `messages` to those that moved. Answers the endpoints that moved.
async fn advance(
    store: &SeaOrmWebhooks,
    group: &Group,
    from: u64,
    to: u64,
    messages: &[(u64, &'static str, String)],
) -> Result<Vec<Uuid>, StoreFailure> {
    let tx = store.db.begin_for_org(group.org).await?;
    let mut moved = Vec::with_capacity(group.endpoints.len());
    for &endpoint in &group.endpoints {
        let done = tx
            .execute_raw(statement(
                tx.get_database_backend(),
                "UPDATE webhook_endpoints SET cursor_seq = ? \
                 WHERE org_id = ? AND id = ? AND cursor_seq = ? AND enabled = ?",
                vec![
                    seq_value(to).into(),
                    group.org.into(),
                    endpoint.into(),
                    seq_value(from).into(),
                    true.into(),
                ],
            ))
            .await?;
        if done.rows_affected() > 0 {
            moved.push(endpoint);
        }
    }
    if moved.is_empty() {
        tx.rollback().await?;
        return Ok(moved);
    }
    let deliveries: Vec<NewDelivery<'_>> = moved
        .iter()
        .flat_map(|&endpoint| {
            messages.iter().map(move |(seq, kind, body)| NewDelivery {
                endpoint,
                event_type: kind,
                event_seq: *seq,
                payload: body,
            })
        })
        .collect();
    insert_deliveries(&tx, group.org, &deliveries).await?;
    tx.commit().await?;
    Ok(moved)
}
