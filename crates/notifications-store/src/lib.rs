//! Notifications on the database (see the `notifications` crate for the rules).
//!
//! - [`SeaOrmNotifications::send_to_org`]: an org's notification, in **one**
//!   tenant-scoped transaction: the recipients resolved from the org's active members,
//!   each one's preferences applied ([`notifications::Preferences::plan`]), the inbox
//!   and digest rows inserted, the `instant` e-mails put in the outbox
//!   ([`mail::Outbox::enqueue_all`]) and one `notification.send` audit event with the
//!   counts (not the message).
//! - The inbox of a user across orgs (system scope: a user reads their own rows).
//! - Preferences, versioned (`PUT` with the version read).
//! - [`SeaOrmNotifications::run_daily_digest`]: one e-mail per user per UTC day with the
//!   items waiting for their digest; the key (`user_id`, `day`) of
//!   `notification_digests` makes a second run of the same day send nothing more.
//! - After a commit that changed inboxes (a send with inbox items, an item read, all
//!   read, an item deleted), the installed [`InboxObserver`] is told whose
//!   ([`SeaOrmNotifications::with_observer`]): the app pushes their unread counts.

use std::collections::BTreeMap;

use audit::{AuditContext, ChangeType, EventType, TenantScope};
use notifications::{
    Audience, Channel, Delivery, InboxObserver, Kind, Notification, PreferenceError, Preferences,
    StorageFailure, UnreadCount,
};
use persistence::{Database, now_micros, statement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// Rows per multi-row insert (11 columns: 2,200 bind parameters).
const CHUNK: usize = 200;

/// A failure of this adapter as the domain's opaque storage failure (driver errors
/// through [`persistence::boxed`], so the edge tells an unavailable database apart).
trait Fail {
    fn fail(self) -> StorageFailure;
}

impl Fail for DbErr {
    fn fail(self) -> StorageFailure {
        StorageFailure(persistence::boxed(self))
    }
}

impl Fail for mail::MailError {
    fn fail(self) -> StorageFailure {
        StorageFailure(Box::new(self))
    }
}

impl Fail for audit::AppendAuditError {
    fn fail(self) -> StorageFailure {
        StorageFailure(Box::new(self))
    }
}

fn failure<E: Fail>(e: E) -> StorageFailure {
    e.fail()
}

/// The store.
#[derive(Clone)]
pub struct SeaOrmNotifications {
    db: Database,
    observer: Option<std::sync::Arc<dyn InboxObserver>>,
}

impl std::fmt::Debug for SeaOrmNotifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaOrmNotifications")
            .field("db", &self.db)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// A notification to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Its kind.
    pub kind: Kind,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
}

/// What a send did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Active members the audience resolved to.
    pub recipients: u64,
    /// Inbox items created.
    pub in_app: u64,
    /// E-mails queued now.
    pub emailed: u64,
    /// Items waiting for their recipient's daily digest.
    pub digest: u64,
}

/// Why a send stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No such org.
    #[error("no such org")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageFailure),
}

/// Why preferences were not stored.
#[derive(Debug, thiserror::Error)]
pub enum SetPreferencesError {
    /// They changed since the version sent.
    #[error("the preferences changed since version {current}")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// A rule refused a choice.
    #[error(transparent)]
    Refused(#[from] PreferenceError),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageFailure),
}

/// What a digest run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestReport {
    /// E-mails queued.
    pub emails: u64,
    /// Items they carry.
    pub items: u64,
}

/// An inbox page's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCounts {
    /// Items in the inbox.
    pub total: u64,
    /// Of which unread.
    pub unread: u64,
}

struct Recipient {
    user: Uuid,
    email: String,
    locale: Option<String>,
    prefs: Preferences,
}

fn prefs_json(p: &Preferences) -> String {
    let mut map: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (k, c, d) in p.entries() {
        map.entry(k.as_str())
            .or_default()
            .insert(c.as_str(), d.as_str());
    }
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
}

fn parse_delivery(s: &str) -> Option<Delivery> {
    [Delivery::Instant, Delivery::DailyDigest, Delivery::Off]
        .into_iter()
        .find(|d| d.as_str() == s)
}

fn parse_prefs(text: Option<&str>) -> Preferences {
    let mut p = Preferences::default();
    let Some(map) = text
        .and_then(|t| serde_json::from_str::<BTreeMap<String, BTreeMap<String, String>>>(t).ok())
    else {
        return p;
    };
    for kind in Kind::ALL {
        for channel in Channel::ALL {
            if let Some(d) = map
                .get(kind.as_str())
                .and_then(|m| m.get(channel.as_str()))
                .and_then(|d| parse_delivery(d))
            {
                // A stored choice the rules refuse cannot exist; the default stays.
                let _ = p.set(kind, channel, d);
            }
        }
    }
    p
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn notification(row: &QueryResult) -> Result<Notification, DbErr> {
    let kind: String = row.try_get("", "kind")?;
    Ok(Notification {
        id: row.try_get("", "id")?,
        org_id: row.try_get("", "org_id")?,
        kind: Kind::parse(&kind)
            .ok_or_else(|| DbErr::Custom(format!("notifications: bad kind {kind:?}")))?,
        title: row.try_get("", "title")?,
        body: row.try_get("", "body")?,
        sender: row.try_get("", "sender_id")?,
        created_at: row.try_get("", "created_at")?,
        read_at: row.try_get("", "read_at")?,
    })
}

const COLUMNS: &str = "id, org_id, kind, title, body, sender_id, created_at, read_at";

impl SeaOrmNotifications {
    /// A store on `db` that tells nobody about inbox changes.
    #[must_use]
    pub const fn new(db: Database) -> Self {
        Self { db, observer: None }
    }

    /// The same store, telling `observer` whose inboxes a committed change touched.
    #[must_use]
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn InboxObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Tells the observer (if any) that `users`' inboxes changed; after the commit.
    async fn changed(&self, users: &[Uuid]) {
        if let Some(o) = &self.observer
            && !users.is_empty()
        {
            o.inbox_changed(users).await;
        }
    }

    fn backend(&self) -> DbBackend {
        self.db.primary().get_database_backend()
    }

    /// Sends `n` from `sender` to `audience` in `org` (see the crate documentation);
    /// returns the send's id (its audit event's entity id) and what it did.
    ///
    /// # Errors
    /// [`SendError::NotFound`] for an unknown org; storage failures (nothing stored).
    pub async fn send_to_org(
        &self,
        ctx: &AuditContext,
        org: Uuid,
        sender: Uuid,
        n: &Outgoing,
        audience: &Audience,
    ) -> Result<(Uuid, SendOutcome), SendError> {
        let send_id = Uuid::now_v7();
        let tx = self.db.begin_for_org(org).await.map_err(failure)?;
        let backend = tx.get_database_backend();
        let Some(org_row) = tx
            .query_one_raw(statement(
                backend,
                "SELECT district_id FROM organizations WHERE id = ?",
                vec![org.into()],
            ))
            .await
            .map_err(failure)?
        else {
            return Err(SendError::NotFound);
        };
        let district: Option<Uuid> = org_row.try_get("", "district_id").map_err(failure)?;
        let recipients = resolve(&tx, backend, org, audience).await?;
        let now = now_micros();
        let mut outcome = SendOutcome {
            recipients: recipients.len() as u64,
            ..SendOutcome::default()
        };
        let mut rows: Vec<Vec<Value>> = Vec::new();
        let mut messages = Vec::new();
        let mut inboxes = Vec::new();
        for r in &recipients {
            let plan = r.prefs.plan(n.kind);
            if plan.in_app {
                inboxes.push(r.user);
            }
            if plan.stored() {
                let digest = plan.email == Delivery::DailyDigest;
                outcome.in_app += u64::from(plan.in_app);
                outcome.digest += u64::from(digest);
                rows.push(vec![
                    Uuid::now_v7().into(),
                    r.user.into(),
                    Some(org).into(),
                    n.kind.as_str().into(),
                    n.title.clone().into(),
                    n.body.clone().into(),
                    Some(sender).into(),
                    plan.in_app.into(),
                    digest.into(),
                    now.into(),
                ]);
            }
            if plan.email == Delivery::Instant
                && let Ok(to) = mail::Address::parse(&r.email)
            {
                messages.push(
                    mail::Message::new(
                        to,
                        mail::Locale::from_tag(r.locale.as_deref().unwrap_or_default()),
                        mail::MailKind::Notification {
                            title: n.title.clone(),
                            body: n.body.clone(),
                        },
                    )
                    .for_org(org),
                );
            }
        }
        outcome.emailed = messages.len() as u64;
        insert_rows(&tx, backend, rows).await?;
        mail::Outbox::enqueue_all(&tx, &messages)
            .await
            .map_err(failure)?;
        let scope = match district {
            Some(d) => TenantScope::org_in_district(org, d),
            None => TenantScope::org(org),
        };
        let event = ctx.change(
            scope,
            EventType::NotificationSend,
            ("notification", send_id.to_string()),
            ChangeType::Create,
            (
                None,
                Some(serde_json::json!({
                    "kind": n.kind.as_str(),
                    "audience": audience.as_str(),
                    "recipients": outcome.recipients,
                    "in_app": outcome.in_app,
                    "emailed": outcome.emailed,
                    "digest": outcome.digest,
                })),
            ),
        );
        audit_store::append_in(&tx, vec![event])
            .await
            .map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        self.changed(&inboxes).await;
        Ok((send_id, outcome))
    }

    /// A page of `user`'s inbox, newest first: items before `before` (an id), unread
    /// ones only if asked.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(
        &self,
        user: Uuid,
        unread_only: bool,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Notification>, StorageFailure> {
        let mut sql =
            format!("SELECT {COLUMNS} FROM notifications WHERE user_id = ? AND in_app = ?");
        let mut values: Vec<Value> = vec![user.into(), true.into()];
        if unread_only {
            sql.push_str(" AND read_at IS NULL");
        }
        if let Some(b) = before {
            sql.push_str(" AND id < ?");
            values.push(b.into());
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let rows = self
            .db
            .reader()
            .query_all_raw(statement(self.backend(), &sql, values))
            .await
            .map_err(failure)?;
        rows.iter()
            .map(notification)
            .collect::<Result<_, _>>()
            .map_err(failure)
    }

    /// How many items `user`'s inbox holds, and how many are unread.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn counts(&self, user: Uuid) -> Result<InboxCounts, StorageFailure> {
        let row = self
            .db
            .reader()
            .query_one_raw(statement(
                self.backend(),
                "SELECT COUNT(*) AS total, COUNT(read_at) AS seen FROM notifications \
                 WHERE user_id = ? AND in_app = ?",
                vec![user.into(), true.into()],
            ))
            .await
            .map_err(failure)?;
        let (total, seen) = match row {
            Some(r) => (
                r.try_get::<i64>("", "total").map_err(failure)?,
                r.try_get::<i64>("", "seen").map_err(failure)?,
            ),
            None => (0, 0),
        };
        let total = u64::try_from(total).unwrap_or_default();
        let seen = u64::try_from(seen).unwrap_or_default();
        Ok(InboxCounts {
            total,
            unread: total.saturating_sub(seen),
        })
    }

    /// Marks one of `user`'s items read (already read: unchanged); `None` if they have
    /// no such item.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn mark_read(
        &self,
        user: Uuid,
        id: Uuid,
    ) -> Result<Option<Notification>, StorageFailure> {
        let tx = self.db.begin_write().await.map_err(failure)?;
        let backend = tx.get_database_backend();
        let marked = tx
            .execute_raw(statement(
                backend,
                "UPDATE notifications SET read_at = ? \
                 WHERE user_id = ? AND id = ? AND in_app = ? AND read_at IS NULL",
                vec![now_micros().into(), user.into(), id.into(), true.into()],
            ))
            .await
            .map_err(failure)?
            .rows_affected();
        let row = tx
            .query_one_raw(statement(
                backend,
                &format!(
                    "SELECT {COLUMNS} FROM notifications WHERE user_id = ? AND id = ? AND in_app = ?"
                ),
                vec![user.into(), id.into(), true.into()],
            ))
            .await
            .map_err(failure)?;
        let item = row
            .as_ref()
            .map(notification)
            .transpose()
            .map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        if marked > 0 {
            self.changed(&[user]).await;
        }
        Ok(item)
    }

    /// Marks every unread item of `user` read; returns how many.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn mark_all_read(&self, user: Uuid) -> Result<u64, StorageFailure> {
        let tx = self.db.begin_write().await.map_err(failure)?;
        let done = tx
            .execute_raw(statement(
                tx.get_database_backend(),
                "UPDATE notifications SET read_at = ? \
                 WHERE user_id = ? AND in_app = ? AND read_at IS NULL",
                vec![now_micros().into(), user.into(), true.into()],
            ))
            .await
            .map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        if done.rows_affected() > 0 {
            self.changed(&[user]).await;
        }
        Ok(done.rows_affected())
    }

    /// Deletes one of `user`'s items (it leaves their digest too); `false` if they
    /// have no such item.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn delete(&self, user: Uuid, id: Uuid) -> Result<bool, StorageFailure> {
        let tx = self.db.begin_write().await.map_err(failure)?;
        let done = tx
            .execute_raw(statement(
                tx.get_database_backend(),
                "DELETE FROM notifications WHERE user_id = ? AND id = ? AND in_app = ?",
                vec![user.into(), id.into(), true.into()],
            ))
            .await
            .map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        if done.rows_affected() > 0 {
            self.changed(&[user]).await;
        }
        Ok(done.rows_affected() > 0)
    }

    /// `user`'s preferences and their version (0: never set, the defaults).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn preferences(&self, user: Uuid) -> Result<(Preferences, i64), StorageFailure> {
        let row = self
            .db
            .primary()
            .query_one_raw(statement(
                self.backend(),
                "SELECT choices, version FROM notification_preferences WHERE user_id = ?",
                vec![user.into()],
            ))
            .await
            .map_err(failure)?;
        match row {
            None => Ok((Preferences::default(), 0)),
            Some(r) => {
                let text: String = r.try_get("", "choices").map_err(failure)?;
                let version: i64 = r.try_get("", "version").map_err(failure)?;
                Ok((parse_prefs(Some(&text)), version))
            }
        }
    }

    /// Replaces `user`'s preferences: the defaults, with `choices` applied through the
    /// rules ([`Preferences::set`]), if the stored version is `expected`.
    ///
    /// # Errors
    /// [`SetPreferencesError`].
    pub async fn set_preferences(
        &self,
        user: Uuid,
        expected: i64,
        choices: &[(Kind, Channel, Delivery)],
    ) -> Result<(Preferences, i64), SetPreferencesError> {
        let mut prefs = Preferences::default();
        for &(k, c, d) in choices {
            prefs.set(k, c, d)?;
        }
        let tx = self.db.begin_write().await.map_err(failure)?;
        let backend = tx.get_database_backend();
        let current = tx
            .query_one_raw(statement(
                backend,
                "SELECT version FROM notification_preferences WHERE user_id = ?",
                vec![user.into()],
            ))
            .await
            .map_err(failure)?
            .map(|r| r.try_get::<i64>("", "version"))
            .transpose()
            .map_err(failure)?
            .unwrap_or(0);
        if current != expected {
            return Err(SetPreferencesError::VersionMismatch { current });
        }
        let version = current + 1;
        let (sql, values): (&str, Vec<Value>) = if current == 0 {
            (
                "INSERT INTO notification_preferences (user_id, choices, version, updated_at) \
                 VALUES (?, ?, ?, ?)",
                vec![
                    user.into(),
                    prefs_json(&prefs).into(),
                    version.into(),
                    now_micros().into(),
                ],
            )
        } else {
            (
                "UPDATE notification_preferences SET choices = ?, version = ?, updated_at = ? \
                 WHERE user_id = ? AND version = ?",
                vec![
                    prefs_json(&prefs).into(),
                    version.into(),
                    now_micros().into(),
                    user.into(),
                    current.into(),
                ],
            )
        };
        let done = tx
            .execute_raw(statement(backend, sql, values))
            .await
            .map_err(failure)?;
        if done.rows_affected() != 1 {
            return Err(SetPreferencesError::VersionMismatch { current });
        }
        tx.commit().await.map_err(failure)?;
        Ok((prefs, version))
    }

    /// Sends each user with items waiting for their digest one e-mail for `day` (a UTC
    /// day), unless they had one that day already: then their items wait for the next
    /// day's. Several instances may run it at once: the key (`user_id`, `day`) lets one
    /// digest per user and day through.
    ///
    /// # Errors
    /// Storage failures (the users done so far stay done).
    pub async fn run_daily_digest(&self, day: time::Date) -> Result<DigestReport, StorageFailure> {
        let backend = self.backend();
        let day = format!(
            "{:04}-{:02}-{:02}",
            day.year(),
            u8::from(day.month()),
            day.day()
        );
        let users = self
            .db
            .primary()
            .query_all_raw(statement(
                backend,
                "SELECT DISTINCT user_id FROM notifications WHERE digest_pending = ? \
                 AND user_id NOT IN (SELECT user_id FROM notification_digests WHERE day = ?)",
                vec![true.into(), day.clone().into()],
            ))
            .await
            .map_err(failure)?
            .iter()
            .map(|r| r.try_get::<Uuid>("", "user_id"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failure)?;
        let mut report = DigestReport::default();
        for user in users {
            let items = self.digest_one(user, &day).await?;
            if items > 0 {
                report.emails += 1;
                report.items += items;
            }
        }
        Ok(report)
    }

    async fn digest_one(&self, user: Uuid, day: &str) -> Result<u64, StorageFailure> {
        let tx = self.db.begin_write().await.map_err(failure)?;
        let backend = tx.get_database_backend();
        let Some(account) = tx
            .query_one_raw(statement(
                backend,
                "SELECT email, locale FROM users WHERE id = ?",
                vec![user.into()],
            ))
            .await
            .map_err(failure)?
        else {
            return Ok(0);
        };
        let email: String = account.try_get("", "email").map_err(failure)?;
        let locale: Option<String> = account.try_get("", "locale").map_err(failure)?;
        let rows = tx
            .query_all_raw(statement(
                backend,
                "SELECT id, title, body FROM notifications \
                 WHERE user_id = ? AND digest_pending = ? ORDER BY id",
                vec![user.into(), true.into()],
            ))
            .await
            .map_err(failure)?;
        let mut ids: Vec<Uuid> = Vec::with_capacity(rows.len());
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            ids.push(r.try_get("", "id").map_err(failure)?);
            items.push(mail::DigestItem {
                title: r.try_get("", "title").map_err(failure)?,
                body: r.try_get("", "body").map_err(failure)?,
            });
        }
        let Ok(to) = mail::Address::parse(&email) else {
            return Ok(0);
        };
        if items.is_empty() {
            return Ok(0);
        }
        let count = items.len() as u64;
        let message = mail::Message::new(
            to,
            mail::Locale::from_tag(locale.as_deref().unwrap_or_default()),
            mail::MailKind::NotificationDigest { items },
        );
        // The day's one digest: a second run (or instance) of the same day inserts
        // nothing here, and sends nothing.
        let claimed = tx
            .execute_raw(statement(
                backend,
                "INSERT INTO notification_digests (user_id, day, items, message_id, sent_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, day) DO NOTHING",
                vec![
                    user.into(),
                    day.into(),
                    i32::try_from(count).unwrap_or(i32::MAX).into(),
                    message.id.into(),
                    now_micros().into(),
                ],
            ))
            .await
            .map_err(failure)?;
        if claimed.rows_affected() == 0 {
            return Ok(0);
        }
        for chunk in ids.chunks(CHUNK) {
            let mut values: Vec<Value> = vec![false.into(), user.into()];
            values.extend(chunk.iter().map(|id| Value::from(*id)));
            tx.execute_raw(statement(
                backend,
                &format!(
                    "UPDATE notifications SET digest_pending = ? WHERE user_id = ? AND id IN ({})",
                    placeholders(chunk.len())
                ),
                values,
            ))
            .await
            .map_err(failure)?;
        }
        mail::Outbox::enqueue(&tx, &message)
            .await
            .map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        Ok(count)
    }
}

impl UnreadCount for SeaOrmNotifications {
    async fn unread_count(&self, user: Uuid) -> Result<u64, StorageFailure> {
        Ok(self.counts(user).await?.unread)
    }
}

async fn insert_rows(
    tx: &persistence::WriteTx,
    backend: DbBackend,
    rows: Vec<Vec<Value>>,
) -> Result<(), StorageFailure> {
    for chunk in rows.chunks(CHUNK) {
        let tuple = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let sql = format!(
            "INSERT INTO notifications (id, user_id, org_id, kind, title, body, sender_id, \
             in_app, digest_pending, created_at) VALUES {}",
            vec![tuple; chunk.len()].join(", ")
        );
        let values = chunk.iter().flatten().cloned().collect();
        tx.execute_raw(statement(backend, &sql, values))
            .await
            .map_err(failure)?;
    }
    Ok(())
}

/// The active members of `org` the audience names, with their address and choices.
async fn resolve(
    tx: &persistence::WriteTx,
    backend: DbBackend,
    org: Uuid,
    audience: &Audience,
) -> Result<Vec<Recipient>, StorageFailure> {
    let mut sql = "SELECT m.user_id AS user_id, u.email AS email, u.locale AS locale, \
                   p.choices AS choices \
                   FROM memberships m JOIN users u ON u.id = m.user_id \
                   LEFT JOIN notification_preferences p ON p.user_id = m.user_id \
                   WHERE m.org_id = ? AND m.status = 'active' AND u.status = 'active'"
        .to_owned();
    let mut values: Vec<Value> = vec![org.into()];
    match audience {
        Audience::All => {}
        Audience::Members(ids) => {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&format!(" AND m.user_id IN ({})", placeholders(ids.len())));
            values.extend(ids.iter().map(|id| Value::from(*id)));
        }
        Audience::Roles { builtin, custom } => {
            let mut any = Vec::new();
            if !builtin.is_empty() {
                any.push(format!(
                    "(m.custom_role_id IS NULL AND m.builtin_role IN ({}))",
                    placeholders(builtin.len())
                ));
                values.extend(builtin.iter().map(|r| Value::from(r.clone())));
            }
            if !custom.is_empty() {
                any.push(format!(
                    "m.custom_role_id IN ({})",
                    placeholders(custom.len())
                ));
                values.extend(custom.iter().map(|id| Value::from(*id)));
            }
            if any.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&format!(" AND ({})", any.join(" OR ")));
        }
        Audience::Committees(names) => {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(&format!(
                " AND lower(m.committee) IN ({})",
                placeholders(names.len())
            ));
            values.extend(names.iter().map(|n| Value::from(n.to_lowercase())));
        }
    }
    sql.push_str(" ORDER BY m.user_id");
    let rows = tx
        .query_all_raw(statement(backend, &sql, values))
        .await
        .map_err(failure)?;
    rows.iter()
        .map(|r| {
            let choices: Option<String> = r.try_get("", "choices")?;
            Ok(Recipient {
                user: r.try_get("", "user_id")?,
                email: r.try_get("", "email")?,
                locale: r.try_get("", "locale")?,
                prefs: parse_prefs(choices.as_deref()),
            })
        })
        .collect::<Result<_, DbErr>>()
        .map_err(failure)
}

/// The time a digest run's day is taken from (UTC).
#[must_use]
pub fn utc_day(now: OffsetDateTime) -> time::Date {
    now.to_offset(time::UtcOffset::UTC).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_round_trip_through_json() {
        let mut p = Preferences::default();
        p.set(Kind::Announcement, Channel::Email, Delivery::Off)
            .unwrap_or(());
        assert_eq!(parse_prefs(Some(&prefs_json(&p))), p);
        assert_eq!(parse_prefs(None), Preferences::default());
        assert_eq!(parse_prefs(Some("not json")), Preferences::default());
    }
}
