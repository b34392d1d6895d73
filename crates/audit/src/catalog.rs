//! The catalog of change-event types: every action the system records, as data.
//!
//! The audit events appended in a unit of work **are** its change events
//! (`shared/spec/events.md` allows either): they are written in the transaction of the
//! change, ordered per tenant by the chain's sequence number, and handed after commit
//! to one dispatcher ([`AfterCommit`]). Writers name what happened with an
//! [`EventType`], so an event outside this catalog cannot be recorded by the stores,
//! and the dispatcher matches the type exhaustively: a new type does not compile until
//! its effects are stated.

use std::future::Future;
use std::pin::Pin;

use crate::{Action, AuditEvent};

macro_rules! catalog {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// What happened, one variant per recorded action (`member.invite`,
        /// `permission.update`, …).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            /// Every type, in catalog order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The action string (`<subject>.<verb>`).
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

catalog! {
    /// An API key was created.
    ApiKeyCreate = "api_key.create",
    /// An API key was revoked (by an admin, or with its creator's rights).
    ApiKeyRevoke = "api_key.revoke",
    /// The audit log was archived (a segment moved to cold storage).
    AuditArchive = "audit.archive",
    /// An org's audit retention changed.
    AuditRetentionUpdate = "audit.retention_update",
    /// A user's address changed (the new one proven by its link).
    AuthEmailChange = "auth.email_change",
    /// A user asked to change their address: a link went to the new one, a notice to
    /// the old one.
    AuthEmailChangeRequest = "auth.email_change_request",
    /// A user proved their address (a verification link).
    AuthEmailVerified = "auth.email_verified",
    /// A link to prove an address was sent.
    AuthEmailVerificationSent = "auth.email_verification_sent",
    /// A user changed their password (their other sessions end).
    AuthPasswordChange = "auth.password_change",
    /// A password was set from a reset link (every session ends).
    AuthPasswordReset = "auth.password_reset",
    /// A password-reset link was sent (only when the account exists).
    AuthPasswordResetRequest = "auth.password_reset_request",
    /// A recovery code was spent to complete a sign-in.
    AuthRecoveryCodeUse = "auth.recovery_code_use",
    /// An already-rotated refresh token was presented again: the whole session family
    /// was revoked.
    AuthRefreshReuse = "auth.refresh_reuse",
    /// An account was registered.
    AuthRegister = "auth.register",
    /// A user signed in.
    AuthSignIn = "auth.sign_in",
    /// The password of an account with two-factor sign-in was right: a second-factor
    /// challenge was issued.
    AuthSignInChallenge = "auth.sign_in_challenge",
    /// A sign-in attempt failed.
    AuthSignInFailed = "auth.sign_in_failed",
    /// A user signed out (a session ended).
    AuthSignOut = "auth.sign_out",
    /// A session's refresh token was rotated (a new access token issued).
    AuthTokenRefresh = "auth.token_refresh",
    /// Two-factor sign-in was turned off.
    AuthTwoFactorDisable = "auth.two_factor_disable",
    /// Two-factor sign-in was confirmed and is on (recovery codes issued).
    AuthTwoFactorEnable = "auth.two_factor_enable",
    /// A TOTP enrolment began (a secret issued, not yet confirmed).
    AuthTwoFactorEnrol = "auth.two_factor_enrol",
    /// A second-factor code (TOTP or recovery) was refused.
    AuthTwoFactorFailed = "auth.two_factor_failed",
    /// Data was exported.
    DataExport = "data.export",
    /// A district was created.
    DistrictCreate = "district.create",
    /// A district was deleted (its schools and orgs detached).
    DistrictDelete = "district.delete",
    /// A district was renamed or re-coded.
    DistrictUpdate = "district.update",
    /// Someone became district staff.
    DistrictStaffAdd = "district_staff.add",
    /// A district staff member's role changed.
    DistrictStaffChange = "district_staff.change",
    /// Someone stopped being district staff.
    DistrictStaffRemove = "district_staff.remove",
    /// An invitation was accepted (its member is recorded as `member.create`).
    InvitationAccept = "invitation.accept",
    /// An invitation was declined by the owner of its address.
    InvitationDecline = "invitation.decline",
    /// An invitation's e-mail was sent again, with a new link.
    InvitationResend = "invitation.resend",
    /// A pending invitation was revoked.
    InvitationRevoke = "invitation.revoke",
    /// A background job was cancelled.
    JobCancel = "job.cancel",
    /// A member was added with an existing account.
    MemberCreate = "member.create",
    /// What an org held about a member was erased on their request (issue #17).
    MemberErase = "member.erase",
    /// Someone was invited (a pending membership).
    MemberInvite = "member.invite",
    /// Someone joined with the org's code.
    MemberJoin = "member.join",
    /// A member left the org (removed themselves).
    MemberLeave = "member.leave",
    /// A member was removed (or left).
    MemberRemove = "member.remove",
    /// A removed member was restored.
    MemberRestore = "member.restore",
    /// A member's role changed.
    MemberRoleChange = "member.role.change",
    /// An officer's term ended (back to volunteer).
    MemberTermEnd = "member.term_end",
    /// A member's status, committee or profile changed.
    MemberUpdate = "member.update",
    /// An org's officers sent a notification to members (counts only, not the message).
    NotificationSend = "notification.send",
    /// An organization was created.
    OrgCreate = "org.create",
    /// An organization was deleted (archived: its memberships ended, its invitations
    /// and API keys revoked; its history kept).
    OrgDelete = "org.delete",
    /// An org's district changed with its school's (a school move or a district delete).
    OrgDistrictChange = "org.district.change",
    /// An org moved to another school.
    OrgMove = "org.move",
    /// An org's sign-up code was rotated.
    OrgSignupCodeRotate = "org.signup_code.rotate",
    /// An org's name, kind or branding changed.
    OrgUpdate = "org.update",
    /// A permission was granted to a member.
    PermissionGrant = "permission.grant",
    /// A template above an org (district, school, platform) changed, so the org's
    /// effective settings changed: one event in each affected org's chain.
    PermissionInheritedUpdate = "permission.inherited_update",
    /// A member's grant was revoked.
    PermissionRevoke = "permission.revoke",
    /// A permission setting (org) or template (district, school, platform) changed.
    PermissionUpdate = "permission.update",
    /// The first platform admin was created.
    PlatformAdminBootstrap = "platform.admin_bootstrap",
    /// A custom role was created.
    RoleCreate = "role.create",
    /// A custom role nobody held was deleted.
    RoleDelete = "role.delete",
    /// A custom role's name, rank, extra keys or maximum changed.
    RoleUpdate = "role.update",
    /// A school was created.
    SchoolCreate = "school.create",
    /// A school with no orgs left was deleted (its templates with it).
    SchoolDelete = "school.delete",
    /// A school moved to another district (its orgs with it).
    SchoolMove = "school.move",
    /// A school was renamed or re-coded.
    SchoolUpdate = "school.update",
    /// An account was erased: its data gone, its audit keys destroyed.
    UserErase = "user.erase",
    /// A user edited their own profile.
    UserProfileUpdate = "user.profile_update",
    /// A webhook endpoint was registered (never its secret).
    WebhookCreate = "webhook.create",
    /// A webhook endpoint was deleted (its deliveries with it).
    WebhookDelete = "webhook.delete",
    /// A webhook endpoint was disabled because its receiver answered `410 Gone`.
    WebhookDisable = "webhook.disable",
    /// A test message was queued to a webhook endpoint.
    WebhookPing = "webhook.ping",
    /// A webhook delivery was queued again by hand.
    WebhookRedeliver = "webhook.redeliver",
    /// A webhook endpoint's signing secret was replaced (never the secret).
    WebhookSecretRotate = "webhook.secret_rotate",
    /// A webhook endpoint's URL, event types or enabled state changed.
    WebhookUpdate = "webhook.update",
}

impl EventType {
    /// The type an action names, if it is in the catalog.
    #[must_use]
    pub fn of(action: &Action) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == action.as_str())
    }

    /// The action to record.
    #[must_use]
    pub const fn action(self) -> Action {
        Action::from_static(self.as_str())
    }
}

impl From<EventType> for Action {
    fn from(t: EventType) -> Self {
        t.action()
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The port the unit of work calls after it committed: it receives the transaction's
/// events (in append order) and turns them into everything they imply (cache
/// invalidations on every instance; later stream fan-out, webhooks, notifications).
///
/// Called once per committed transaction that recorded events, after the commit and
/// before the writer returns, so the writer's next read sees the change. It cannot
/// fail the write: the change is already durable.
pub trait AfterCommit: Send + Sync + 'static {
    /// Handles one committed transaction's events.
    fn committed<'a>(
        &'a self,
        events: &'a [AuditEvent],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_a_valid_unique_action_and_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for &t in EventType::ALL {
            let action = Action::new(t.as_str()).expect("valid action");
            assert_eq!(EventType::of(&action), Some(t));
            assert!(seen.insert(t.as_str()), "{t} listed twice");
        }
        assert_eq!(
            EventType::of(&Action::from_static("member.role_change")),
            None
        );
    }
}
