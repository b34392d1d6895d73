//! Deliveries queued from the committed change-event record.
//!
//! Every enabled endpoint has a position in its org's chain (`cursor_seq`, set at
//! creation to the endpoint's own `webhook.create` event). [`queue_new_events`] reads
//! each endpoint's events after it with [`audit::read_page`] (the events API's reader:
//! no gap, no duplicate, events up to the head read first), keeps those its filter
//! names, and in **one transaction** inserts their deliveries (unique per endpoint and
//! event: a second insert is nothing) and moves the position on — conditional on the
//! position it read, so two instances doing the same work cannot both move it, and a
//! crash loses both or neither. A committed event is therefore queued for every
//! endpoint that was enabled and matching, exactly once, however late the worker runs.
//!
//! Endpoints receive what the org's admins see (only admins manage webhooks).

use std::collections::{BTreeMap, BTreeSet};

use audit::changes::{ChangePageError, Receiver, read_page};
use audit::{AuditLog, ChainId};
use persistence::statement;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::{SeaOrmWebhooks, StoreFailure, insert_delivery, seq_value};

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
        for sub in subs.iter().filter(|s| s.cursor < head) {
            queued += queue_endpoint(store, log, chain, sub).await?;
        }
    }
    Ok(queued)
}

/// Queues one endpoint's events up to the head it finds.
async fn queue_endpoint<L: AuditLog>(
    store: &SeaOrmWebhooks,
    log: &L,
    chain: ChainId,
    sub: &Subscription,
) -> Result<u64, StoreFailure> {
    let wanted: BTreeSet<&'static str> = audit::changes::publications()
        .iter()
        .map(|p| p.name)
        .filter(|n| sub.events.contains(*n))
        .collect();
    let selection = admin_receiver().selection(Some(&wanted));
    let mut cursor = sub.cursor;
    let mut queued = 0;
    loop {
        let page = match read_page(log, chain, Some(cursor), &selection, PAGE).await {
            Ok(page) => page,
            Err(ChangePageError::Expired { floor }) => {
                tracing::warn!(endpoint = %sub.id, org = %sub.org, from = cursor, to = floor,
                    "webhooks: events after the endpoint's position were archived before they were queued; skipping them");
                if !advance(store, sub, cursor, floor, &[]).await? {
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
        if !advance(store, sub, cursor, page.next, &messages).await? {
            // Another worker moved it (or the endpoint changed): its work.
            return Ok(queued);
        }
        queued += messages.len() as u64;
        cursor = page.next;
    }
}

/// In one transaction: the deliveries of `messages`, and the endpoint's position from
/// `from` to `to` (only if it is still at `from` and enabled). `false` when it was not.
async fn advance(
    store: &SeaOrmWebhooks,
    sub: &Subscription,
    from: u64,
    to: u64,
    messages: &[(u64, &'static str, String)],
) -> Result<bool, StoreFailure> {
    let tx = store.db.begin_for_org(sub.org).await?;
    let moved = tx
        .execute_raw(statement(
            tx.get_database_backend(),
            "UPDATE webhook_endpoints SET cursor_seq = ? \
             WHERE org_id = ? AND id = ? AND cursor_seq = ? AND enabled = ?",
            vec![
                seq_value(to).into(),
                sub.org.into(),
                sub.id.into(),
                seq_value(from).into(),
                true.into(),
            ],
        ))
        .await?;
    if moved.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    for (seq, kind, body) in messages {
        insert_delivery(&tx, sub.org, sub.id, Uuid::now_v7(), kind, Some(*seq), body).await?;
    }
    tx.commit().await?;
    Ok(true)
}
