//! Erasure (issue #17): a user deletes their account (`DELETE /api/v2/me`), an org's
//! admin erases a member on their request (`POST /orgs/{org_id}/users/{user_id}/erase`).
//!
//! One unit of work per request: the rule (`tenancy::erasure::decide`) on what the
//! store holds, then — in one transaction — every org's record of the person, the
//! jobs' rows and files that name them, their e-mails, their account, and their keys in
//! the audit trail (whose events stay and still verify: crypto-shredding), with
//! `member.erase` / `user.erase` recorded. After commit: their sessions end on every
//! instance, the `.eml` files written for them without SMTP are deleted, and SQLite's
//! WAL is emptied so no old page image keeps what was deleted.

use actix_web::http::Method;
use garde::Validate;
use rate_limit::RateClass;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tenancy::UserId;
use tenancy::erasure::{ErasedCounts, ErasureReason, ErasureReceipt, ErasureScope};
use tenancy::ports::{AuditContext, StorageFailure};
use uuid::Uuid;

use crate::auth::{Caller, OrgMember};
use crate::http::{
    ApiError, ApiRoutes, ErrorCode, FieldError, IfMatch, Json, Path, Reply, RouteDoc, Tagged,
};
use crate::state::State;

pub(super) fn register(r: &mut ApiRoutes) {
    r.route(
        Method::DELETE,
        "/api/v2/me",
        erase_me,
        RouteDoc::new("erase_me", "Delete your account and erase your data", "me")
            .description("Needs the account's `password`. Erases, at once and for good: every org's record of you (memberships, profiles, children, committees, privacy choices, removed memberships kept for restoring, direct grants, invitations to your address), reads of your record logged by orgs, your sessions, second factor, recovery codes and e-mailed links, your district roles, e-mails to you (queued, sent, and their files), job rows that name you and the stored export files of your orgs, and the account itself. In the audit trail the events stay (the chains and signed digests still verify) but every personal field about you — sealed under a key per person — becomes unreadable: its key is destroyed (`[erased]`). Answers a receipt of what was removed; recorded as `member.erase` in each org and `user.erase`, without your data. 409 (`details.reason`) for the last active admin of an org (`last_admin`, with `org_ids`: make someone else admin first) and for a platform admin (`platform_admin`).")
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::Conflict, ErrorCode::ValidationFailed]),
    );
    r.post(
        "/api/v2/orgs/{org_id}/users/{user_id}/erase",
        erase_member,
        RouteDoc::new("erase_member", "Erase a member's data on their request (admins)", "members")
            .description("For a member's deletion request (give the `reason`, recorded with the erasure). Erases what this org holds about them — membership, profile, children, committee, privacy choices, a removed membership, direct grants, API keys they created (revoked), invitations to their address, reads of their record, e-mails from this org to them, job rows that name them and the org's stored export files — and destroys their keys in this org's audit chain (the events stay and verify; their personal fields read `[erased]`). When nothing else holds the account (no other membership, no district role, not a platform admin), the account goes too, as with `DELETE /api/v2/me`. Not undoable; answers a receipt. 409 for the org's last active admin (`last_admin`) and for yourself (`yourself`: delete your own account instead); 404 for someone who is not a member.")
            .org_admin()
            .rate_class(RateClass::Delete)
            .errors(&[ErrorCode::Conflict, ErrorCode::ValidationFailed]),
    );
    r.get(
        "/api/v2/orgs/{org_id}/member-retention",
        get_member_retention,
        RouteDoc::new("get_member_retention", "How long the org keeps removed members' records (admins)", "privacy")
            .description("`removed_member_days` (default 365, one school year; `version` 0 until set): a member who left or was removed can be restored until then; after it, a scheduled job erases what the org still holds about them (`member.erase` by the system, as `POST …/users/{user_id}/erase` would; the account stays).")
            .org_admin(),
    );
    r.route(
        Method::PUT,
        "/api/v2/orgs/{org_id}/member-retention",
        put_member_retention,
        RouteDoc::new("put_member_retention", "Set how long the org keeps removed members' records (admins)", "privacy")
            .description("`removed_member_days` between 30 and 3650. Send the `version` you read (or `If-Match`): 428 without, 412 when stale. Audited as `org.update` on `member_retention`.")
            .org_admin()
            .rate_class(RateClass::Update)
            .errors(&[ErrorCode::VersionMismatch, ErrorCode::PreconditionRequired, ErrorCode::ValidationFailed]),
    );
}

/// An org's retention period for removed members.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MemberRetentionView {
    /// Days a removed member's record is kept (30 to 3650; default 365).
    pub removed_member_days: u16,
    /// 0 until the org sets it, then 1, 2, …
    pub version: i64,
    /// When it was last set (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub updated_at: Option<time::OffsetDateTime>,
}

impl From<tenancy_store::erasure::MemberRetention> for MemberRetentionView {
    fn from(r: tenancy_store::erasure::MemberRetention) -> Self {
        Self {
            removed_member_days: r.days.days(),
            version: r.version,
            updated_at: r.updated_at,
        }
    }
}

/// A new retention period.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct PutMemberRetentionBody {
    /// Days to keep a removed member's record (30 to 3650).
    #[garde(range(min = 30, max = 3650))]
    pub removed_member_days: i64,
    /// The version you read (or send `If-Match`).
    #[garde(range(min = 0))]
    pub version: Option<i64>,
}

async fn get_member_retention(
    state: State,
    member: OrgMember,
) -> Result<Tagged<MemberRetentionView>, ApiError> {
    let current = tenancy_store::erasure::member_retention(&state.db, member.org_id()).await?;
    let view = MemberRetentionView::from(current);
    Ok(Tagged {
        version: view.version,
        data: view,
    })
}

async fn put_member_retention(
    state: State,
    member: OrgMember,
    if_match: IfMatch,
    Json(body): Json<PutMemberRetentionBody>,
) -> Result<Reply<MemberRetentionView>, ApiError> {
    let version = body.version.or(if_match.0).ok_or_else(|| {
        ApiError::new(
            ErrorCode::PreconditionRequired,
            "send the version you read, as `version` or in an `If-Match` header",
        )
    })?;
    let days = tenancy::erasure::RetentionDays::new(body.removed_member_days).map_err(|e| {
        ApiError::validation(vec![FieldError {
            field: "removed_member_days".into(),
            code: "invalid_value".into(),
            message: e.to_string(),
        }])
    })?;
    let set = tenancy_store::erasure::set_member_retention(
        &state.db,
        &member.audit_context(),
        member.org_id(),
        days,
        version,
    )
    .await?;
    Ok(Reply(set.into()))
}

/// Confirms the deletion of the caller's account.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct EraseMeBody {
    /// The account's password.
    #[garde(length(chars, min = 1, max = 128))]
    pub password: String,
}

/// Why the member's data is erased.
#[derive(Debug, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct EraseMemberBody {
    /// The request this fulfils (3 to 500 characters), e.g. "asked by e-mail on 2026-12-01".
    #[garde(length(chars, min = 3, max = 500))]
    pub reason: String,
}

/// Path of one member.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ErasePath {
    /// Org id (resolved by the route's guard).
    #[allow(dead_code, reason = "documents the path parameter")]
    pub org_id: Uuid,
    /// The member's user id.
    pub user_id: Uuid,
}

/// What was removed, by kind.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErasedCountsView {
    /// Memberships (role, committee, children, profile).
    pub memberships: u64,
    /// Removed memberships kept for restoring.
    pub removed_memberships: u64,
    /// Directory privacy choices.
    pub privacy_choices: u64,
    /// Data-access log entries about the person.
    pub access_log_entries: u64,
    /// Invitations to their address.
    pub invitations: u64,
    /// Direct permission grants to them.
    pub permission_grants: u64,
    /// Sessions and refresh tokens.
    pub sessions: u64,
    /// Second factors, recovery codes, sign-in challenges, e-mailed links.
    pub sign_in_secrets: u64,
    /// District roles.
    pub district_roles: u64,
    /// E-mails to them (queued or sent) and their files.
    pub emails: u64,
    /// Rows of import and export jobs naming them.
    pub job_records: u64,
    /// Stored member-export file parts withdrawn (an export lists many people: withdrawn
    /// whole) and personal data exports removed.
    pub export_files: u64,
    /// Their keys destroyed in the audit trail (one per chain and person or invitation).
    pub audit_keys: u64,
    /// Audit chains that held personal fields about them (now unreadable there).
    pub audit_chains: u64,
    /// The account itself (0 or 1).
    pub accounts: u64,
}

impl From<ErasedCounts> for ErasedCountsView {
    fn from(c: ErasedCounts) -> Self {
        Self {
            memberships: c.memberships,
            removed_memberships: c.removed_memberships,
            privacy_choices: c.privacy_choices,
            access_log_entries: c.access_log_entries,
            invitations: c.invitations,
            permission_grants: c.permission_grants,
            sessions: c.sessions,
            sign_in_secrets: c.sign_in_secrets,
            district_roles: c.district_roles,
            emails: c.emails,
            job_records: c.job_records,
            export_files: c.export_files,
            audit_keys: c.audit_keys,
            audit_chains: c.audit_chains,
            accounts: c.accounts,
        }
    }
}

/// The receipt of an erasure: what was removed, and when.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErasureReceiptView {
    /// The erased person.
    pub user_id: Uuid,
    /// `account` (everything), `org` (what one org held) or `retention` (what an org
    /// still held about a former member, erased on schedule).
    pub scope: String,
    /// The org, for `org`.
    pub org_id: Option<Uuid>,
    /// When the erasure was committed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String")]
    pub erased_at: time::OffsetDateTime,
    /// Whether the account itself was erased.
    pub account_erased: bool,
    /// What was removed.
    pub removed: ErasedCountsView,
}

impl From<ErasureReceipt> for ErasureReceiptView {
    fn from(r: ErasureReceipt) -> Self {
        let (scope, org_id) = match r.scope {
            ErasureScope::Account => ("account", None),
            ErasureScope::Org(org) => ("org", Some(org.as_uuid())),
            ErasureScope::Retention(org) => ("retention", Some(org.as_uuid())),
        };
        Self {
            user_id: r.user_id.as_uuid(),
            scope: scope.to_owned(),
            org_id,
            erased_at: r.erased_at,
            account_erased: r.account_erased,
            removed: r.removed.into(),
        }
    }
}

async fn erase_me(
    state: State,
    caller: Caller,
    Json(body): Json<EraseMeBody>,
) -> Result<Reply<ErasureReceiptView>, ApiError> {
    let me = caller.user_id();
    state
        .auth
        .check_password(me, "password", body.password)
        .await?;
    // The erasure's own events carry no personal data of the person erased: not
    // even the address or browser of the request (they would outlive the erasure).
    let mut ctx = caller.audit_context();
    ctx.request.ip = None;
    ctx.request.user_agent = None;
    let receipt = erase_person(&state, &ctx, ErasureScope::Account, me, me, None).await?;
    // The answers kept for the account's `Idempotency-Key`s name what it created; they
    // would otherwise outlive the erasure by up to a day.
    let caller = rate_limit::Subject::User(me.as_uuid()).key();
    if let Err(e) = state.idempotency.forget_caller(&caller).await {
        tracing::warn!(error = %e, "forgetting an erased account's idempotency keys failed; they expire within a day");
    }
    Ok(Reply(receipt.into()))
}

async fn erase_member(
    state: State,
    member: OrgMember,
    Path(p): Path<ErasePath>,
    Json(body): Json<EraseMemberBody>,
) -> Result<Reply<ErasureReceiptView>, ApiError> {
    let reason = ErasureReason::parse(&body.reason).map_err(|e| {
        ApiError::validation(vec![FieldError {
            field: "reason".into(),
            code: "invalid_value".into(),
            message: e.to_string(),
        }])
    })?;
    let receipt = erase_person(
        &state,
        &member.audit_context(),
        ErasureScope::Org(member.org_id()),
        member.user_id()?,
        UserId::from_uuid(p.user_id),
        Some(&reason),
    )
    .await?;
    Ok(Reply(receipt.into()))
}

/// The jobs' and the outbox's part of an erasure (in its transaction); also used by
/// the scheduled retention erasure (`startup`).
pub struct JobsAndMail;

impl tenancy_store::erasure::ErasureParticipant for JobsAndMail {
    async fn erase_in(
        &self,
        tx: &persistence::WriteTx,
        person: &tenancy_store::erasure::ErasedPerson,
        counts: &mut ErasedCounts,
    ) -> Result<(), StorageFailure> {
        let orgs: Vec<Uuid> = person.orgs.iter().map(|o| o.as_uuid()).collect();
        let needles: Vec<String> = person
            .email
            .iter()
            .cloned()
            .chain([person.user.to_string()])
            .collect();
        let scope = if person.account {
            ::jobs::JobScope::Everywhere(&orgs)
        } else {
            ::jobs::JobScope::Orgs(&orgs)
        };
        let jobs = ::jobs::erase_person_in(tx, scope, &needles)
            .await
            .map_err(|e| StorageFailure(Box::new(e)))?;
        counts.job_records += jobs.records;
        counts.export_files += jobs.file_parts;
        if let Some(email) = &person.email {
            // An org's erasure that keeps the account removes only that org's e-mails.
            let only_org = if person.account {
                None
            } else {
                orgs.first().copied()
            };
            let mails = mail::Outbox::erase_recipient_in(tx, email, only_org)
                .await
                .map_err(|e| StorageFailure(Box::new(e)))?;
            counts.emails += u64::try_from(mails.len()).unwrap_or(u64::MAX);
        }
        Ok(())
    }
}

/// The erasure service: one unit of work in the store (with the jobs' and the
/// outbox's part), then what lies outside the database: sessions forgotten on every
/// instance, `.eml` files deleted.
async fn erase_person(
    state: &State,
    ctx: &AuditContext,
    scope: ErasureScope,
    actor: UserId,
    subject: UserId,
    reason: Option<&ErasureReason>,
) -> Result<ErasureReceipt, ApiError> {
    let request = tenancy_store::erasure::ErasureRequest {
        ctx,
        scope,
        actor: Some(actor),
        subject,
        reason,
    };
    let done = tenancy_store::erasure::erase_person(&state.db, request, &JobsAndMail).await?;
    let mut receipt = done.receipt;
    if receipt.account_erased {
        state.auth.sessions_ended(&done.sessions).await;
        if let (Some(dir), Some(email)) = (state.mail_files.clone(), done.person.email) {
            let files = tokio::task::spawn_blocking(move || {
                mail::FileTransport::forget_address(&dir, &email)
            })
            .await;
            match files {
                Ok(Ok(n)) => receipt.removed.emails += n,
                Ok(Err(e)) => tracing::warn!(error = %e, "erasure: removing mail files failed"),
                Err(e) => tracing::warn!(error = %e, "erasure: the mail-file task stopped"),
            }
        }
    }
    Ok(receipt)
}
