//! Ports: what the tenancy domain needs from storage, in the domain's words.

use std::future::Future;

use crate::{Email, Password, PersonName, User};

/// An adapter's own error, carried opaquely through the domain to the edge (which may
/// downcast it to classify an outage).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request to create a user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUserRequest {
    /// Sign-in address (unique, case-insensitive).
    pub email: Email,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// An already-computed password hash (PHC string); the domain never sees passwords.
    pub password_hash: String,
    /// The language messages to them are written in (`None`: English).
    pub locale: Option<crate::Language>,
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// An account with this e-mail address exists.
    #[error("an account with email {email} already exists")]
    Duplicate {
        /// The conflicting address.
        email: Email,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a user lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum FindUserError {
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Storage of user accounts.
#[cfg_attr(test, mockall::automock)]
pub trait UserRepository: Send + Sync + 'static {
    /// Creates a user (audited); fails with [`CreateUserError::Duplicate`] if the
    /// e-mail is taken.
    fn create_user(
        &self,
        ctx: &AuditContext,
        req: CreateUserRequest,
    ) -> impl Future<Output = Result<User, CreateUserError>> + Send;

    /// Makes `user` a platform admin if and only if there is none yet (atomic,
    /// audited); returns whether it did.
    fn promote_first_platform_admin(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
    ) -> impl Future<Output = Result<bool, FindUserError>> + Send;

    /// Finds a user by (normalized) e-mail address.
    fn find_user_by_email(
        &self,
        email: &Email,
    ) -> impl Future<Output = Result<Option<User>, FindUserError>> + Send;

    /// Sets the language `user`'s messages are written in (`None`: English) if the
    /// account is still at `expected_version`, audited `user.profile_update`.
    fn set_locale(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
        expected_version: i64,
        locale: Option<crate::Language>,
    ) -> impl Future<Output = Result<AccountWrite, FindUserError>> + Send;
}

/// What a conditional write of an account found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountWrite {
    /// Written (or already so): the account is at `version` now.
    Written {
        /// The account's version after the write.
        version: i64,
    },
    /// The account is no longer at the version read: nothing written.
    Stale {
        /// Its version now.
        current: i64,
    },
    /// No such active user.
    NotFound,
}

/// One-way password hashing (argon2id in the adapter). Async because a good hash is
/// deliberately slow and must not block request threads.
#[cfg_attr(test, mockall::automock)]
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a password into a self-describing PHC string.
    fn hash(&self, password: Password) -> impl Future<Output = Result<String, BoxError>> + Send;

    /// Checks a password against a stored PHC string.
    fn verify(
        &self,
        password: String,
        phc: String,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send;
}

pub use audit::AuditContext;

/// A storage failure that is not a domain outcome.
#[derive(Debug, thiserror::Error)]
#[error("storage failure")]
pub struct StorageFailure(#[source] pub BoxError);

/// A request to create an organization; its creator becomes its first admin.
#[derive(Debug, Clone)]
pub struct CreateOrgRequest {
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: crate::OrgKind,
    /// The school it belongs to (and through it a district), if any.
    pub school_id: Option<uuid::Uuid>,
    /// Its signup code.
    pub signup_code: crate::SignupCode,
    /// The creator, who becomes the first admin.
    pub creator: crate::UserId,
}

/// Why an organization could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrgError {
    /// The signup code is in use.
    #[error("signup code already in use")]
    SignupCodeTaken,
    /// The school does not exist.
    #[error("no such school")]
    SchoolNotFound,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Changes to an organization's settings (absent fields stay as they are).
#[derive(Debug, Clone, Default)]
pub struct OrgChanges {
    /// New name.
    pub name: Option<String>,
    /// New kind.
    pub kind: Option<crate::OrgKind>,
    /// New branding (free-form JSON: colours, logo URL).
    pub branding: Option<serde_json::Value>,
    /// New signup code (rotation).
    pub signup_code: Option<crate::SignupCode>,
}

/// Why an organization could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum UpdateOrgError {
    /// No such org.
    #[error("no such organization")]
    NotFound,
    /// It changed since the version the caller saw.
    #[error("the organization changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// The new signup code is in use.
    #[error("signup code already in use")]
    SignupCodeTaken,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Why joining an organization failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinOrgError {
    /// No org has that code (or it is not active).
    #[error("no organization has that signup code")]
    UnknownCode,
    /// The user is a member already.
    #[error("already a member of this organization")]
    AlreadyMember,
    /// An admin removed the user from this org: only an admin can bring them back
    /// (by restoring the membership); the signup code does not.
    #[error("you were removed from this organization; an admin can restore your membership")]
    RemovedByAdmin,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// A change of one member's role (or status), checked against
/// [`crate::rules`] inside the storing transaction so concurrent changes cannot break
/// the invariants (e.g. two admins demoting each other).
#[derive(Debug, Clone)]
pub struct ChangeMemberRequest {
    /// The org.
    pub org_id: crate::OrgId,
    /// Who asks (must be a member).
    pub actor: crate::UserId,
    /// Whose membership changes.
    pub target: crate::UserId,
    /// The version the caller saw, if it sent one.
    pub expected_version: Option<i64>,
    /// New role, if changing.
    pub role: Option<RoleChoice>,
    /// New status, if changing.
    pub status: Option<crate::MembershipStatus>,
    /// New end of term (`Some(None)` clears it).
    pub role_ends_at: Option<Option<time::OffsetDateTime>>,
    /// New committee (`Some(None)` clears it).
    pub committee: Option<Option<String>>,
    /// New list of children (replaces the old list).
    pub children: Option<Vec<crate::Child>>,
    /// Changes to the member's account (names, phone, e-mail), under
    /// [`crate::rules::check_account_edit`].
    pub account: AccountChanges,
}

/// A member as a change left them, read in the change's own transaction: what the
/// answer to the change shows, without a second read that could see a later write.
#[derive(Debug, Clone)]
pub struct ChangedMember {
    /// Their account.
    pub user: User,
    /// Their membership after the change.
    pub membership: crate::Membership,
    /// The org's directory policy.
    pub policy: crate::privacy::DirectoryPolicy,
    /// Their privacy choices in the org (the defaults if they made none).
    pub choices: crate::privacy::PrivacyChoices,
}

/// Changes to a member's account as the org shows it (absent fields stay as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChanges {
    /// New given name.
    pub first_name: Option<PersonName>,
    /// New family name.
    pub last_name: Option<PersonName>,
    /// New phone number (`Some(None)` clears it).
    pub phone: Option<Option<String>>,
    /// New sign-in address.
    pub email: Option<Email>,
}

impl AccountChanges {
    /// Whether nothing changes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl ChangeMemberRequest {
    /// Whether the request changes only profile data (committee, children), which a
    /// member may do for themselves.
    #[must_use]
    pub fn is_profile_only(&self) -> bool {
        self.role.is_none() && self.status.is_none() && self.role_ends_at.is_none()
    }
}

/// A role named by the client: built-in, or a custom role of the org by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChoice {
    /// A built-in role.
    Builtin(permissions::BuiltinRole),
    /// A custom role of the org.
    Custom(crate::RoleId),
}

/// Why a membership change failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeMemberError {
    /// The target (or the actor) is not a member.
    #[error("no such member")]
    NotFound,
    /// The custom role does not exist in this org.
    #[error("no such role in this organization")]
    UnknownRole,
    /// The membership changed since the version the caller saw.
    #[error("the member changed (now at version {current})")]
    VersionMismatch {
        /// Current version.
        current: i64,
    },
    /// A rule refused it.
    #[error(transparent)]
    Refused(#[from] crate::rules::RoleChangeRefused),
    /// Another account has the new e-mail address.
    #[error("the address {email} belongs to another account")]
    EmailTaken {
        /// The address.
        email: Email,
    },
    /// Children were sent while the org keeps no children's data.
    #[error(transparent)]
    ChildrenNotCollected(#[from] crate::privacy::ChildrenNotCollected),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// A member removed softly, as kept for restoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedMember {
    /// The membership as it was at removal.
    pub membership: crate::Membership,
    /// When it was removed.
    pub removed_at: time::OffsetDateTime,
    /// Who removed it (a user; `None` for the system or an API key).
    pub removed_by: Option<crate::UserId>,
}

/// Why a removed member could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreMemberError {
    /// There is no removed membership of that user in the org (or the actor is not a
    /// member).
    #[error("no removed member to restore")]
    NotFound,
    /// The user is a member again (they rejoined).
    #[error("the user is already a member")]
    AlreadyMember,
    /// A rule refused it (a role above the actor's; a full custom role).
    #[error(transparent)]
    Refused(#[from] crate::rules::RoleChangeRefused),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// A request to define a custom role.
#[derive(Debug, Clone)]
pub struct CreateRoleRequest {
    /// The org.
    pub org_id: crate::OrgId,
    /// Name (unique in the org, case-insensitively).
    pub name: String,
    /// Rank it counts as.
    pub counts_as: permissions::BuiltinRole,
    /// Keys it always holds.
    pub extra_keys: permissions::KeySet,
    /// Maximum holders.
    pub max_holders: Option<u32>,
}

/// Why a custom role could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateRoleError {
    /// The name is taken in this org.
    #[error("a role with this name exists")]
    DuplicateName,
    /// The name is a built-in role's name.
    #[error("the name of a built-in role cannot be reused")]
    ReservedName,
    /// No such organization.
    #[error("no such organization")]
    OrgNotFound,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Changes to a custom role (absent fields stay as they are).
#[derive(Debug, Clone, Default)]
pub struct RoleChanges {
    /// New name (unique in the org, case-insensitively; not a built-in role's name).
    pub name: Option<String>,
    /// New rank it counts as.
    pub counts_as: Option<permissions::BuiltinRole>,
    /// New set of extra keys (replaces the old set).
    pub extra_keys: Option<permissions::KeySet>,
    /// New maximum of holders (`Some(None)` lifts the limit).
    pub max_holders: Option<Option<u32>>,
}

/// A request to change a custom role, checked against [`crate::rules`] inside the
/// storing transaction.
#[derive(Debug, Clone)]
pub struct UpdateRoleRequest {
    /// The org.
    pub org_id: crate::OrgId,
    /// Who asks (must be a member; see [`crate::rules::check_role_edit`]).
    pub actor: crate::UserId,
    /// The role.
    pub role_id: crate::RoleId,
    /// The version the caller read.
    pub expected_version: i64,
    /// What changes.
    pub changes: RoleChanges,
}

/// Why a custom role could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateRoleError {
    /// No such role in this org (or the actor is not a member).
    #[error("no such role in this organization")]
    NotFound,
    /// The role changed since the version the caller saw.
    #[error("the role changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// The new name is taken in this org.
    #[error("a role with this name exists")]
    DuplicateName,
    /// The new name is a built-in role's name.
    #[error("the name of a built-in role cannot be reused")]
    ReservedName,
    /// The new maximum is below the number of members holding the role now.
    #[error("{holders} member(s) hold the role: the maximum cannot go below that")]
    BelowHolders {
        /// Members holding it now.
        holders: u64,
    },
    /// A rule refused it (a rank above the actor's, a key they don't hold, the last
    /// admin).
    #[error(transparent)]
    Refused(#[from] crate::rules::RoleChangeRefused),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Why a custom role could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteRoleError {
    /// No such role in this org (or the actor is not a member).
    #[error("no such role in this organization")]
    NotFound,
    /// The role changed since the version the caller saw.
    #[error("the role changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// Members hold the role, or pending invitations offer it: they are moved to
    /// another role first (nobody's rights change as a side effect of a delete).
    #[error("{members} member(s) hold the role and {invitations} pending invitation(s) offer it")]
    InUse {
        /// Members holding it (any status).
        members: u64,
        /// Pending invitations offering it.
        invitations: u64,
    },
    /// A rule refused it (a role above the actor's rank or carrying keys they don't
    /// hold).
    #[error(transparent)]
    Refused(#[from] crate::rules::RoleChangeRefused),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// What deleting an org did, besides closing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeletedOrg {
    /// Memberships ended (kept aside with the org, not restorable by members).
    pub members: u64,
    /// Pending invitations revoked.
    pub invitations: u64,
    /// Live API keys revoked.
    pub api_keys: u64,
}

/// Why an org could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteOrgError {
    /// No such (live) org.
    #[error("no such organization")]
    NotFound,
    /// It changed since the version the caller saw.
    #[error("the organization changed (now at version {current})")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// A request to add someone to an org: it becomes an [`crate::Invitation`] of the org
/// with the role and the profile exactly as typed. No account is looked up, attached or
/// created, so the outcome is the same whether or not the address has an account.
#[derive(Debug, Clone)]
pub struct AddMemberRequest {
    /// The org.
    pub org_id: crate::OrgId,
    /// Who adds them (must be a member; may not assign a role above their own).
    pub actor: crate::UserId,
    /// Their e-mail address.
    pub email: Email,
    /// Given name, as typed.
    pub first_name: PersonName,
    /// Family name, as typed.
    pub last_name: PersonName,
    /// Phone number, as typed.
    pub phone: Option<String>,
    /// Their role.
    pub role: RoleChoice,
    /// Committee, if any.
    pub committee: Option<String>,
    /// Children (profile data).
    pub children: Vec<crate::Child>,
    /// How long the invitation stays open.
    pub valid_for: time::Duration,
}

/// Why someone could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddMemberError {
    /// The org does not exist, or the actor is not a member of it.
    #[error("no such organization or member")]
    NotFound,
    /// The address belongs to a member of this org (this org's own data).
    #[error("{email} is already a member of this organization")]
    AlreadyMember {
        /// Their address.
        email: Email,
    },
    /// This org has a pending invitation for the address.
    #[error("{email} has a pending invitation to this organization")]
    AlreadyInvited {
        /// Their address.
        email: Email,
    },
    /// The custom role does not exist in this org.
    #[error("no such role in this organization")]
    UnknownRole,
    /// A rule refused it (a role above the actor's own, a full custom role).
    #[error(transparent)]
    Refused(#[from] crate::rules::RoleChangeRefused),
    /// Children were sent while the org keeps no children's data.
    #[error(transparent)]
    ChildrenNotCollected(#[from] crate::privacy::ChildrenNotCollected),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Adding members (the org's invite flow and bulk import); audited like every write.
pub trait MemberAdder: Send + Sync + 'static {
    /// Invites someone (see [`AddMemberRequest`]); fails with
    /// [`AddMemberError::AlreadyMember`] or [`AddMemberError::AlreadyInvited`].
    fn add_member(
        &self,
        ctx: &AuditContext,
        req: AddMemberRequest,
    ) -> impl Future<Output = Result<crate::Invitation, AddMemberError>> + Send;
}

/// Why an invitation could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeInvitationError {
    /// The org has no invitation with that id.
    #[error("no such invitation")]
    NotFound,
    /// It is no longer pending.
    #[error(transparent)]
    Ended(#[from] crate::InvitationEnded),
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Who accepts an invitation from its link.
#[derive(Debug, Clone)]
pub enum Claimant {
    /// A signed-in account; its address must be the invited one.
    Account(crate::UserId),
    /// A new account for the invited address (the link proves it), with these names
    /// and this password (hashed).
    NewAccount {
        /// Given name.
        first_name: crate::PersonName,
        /// Family name.
        last_name: crate::PersonName,
        /// The password's hash.
        password_hash: String,
    },
}

/// An accepted invitation: the account (new or existing) and its new membership.
#[derive(Debug, Clone)]
pub struct AcceptedInvitation {
    /// The account.
    pub user: User,
    /// Whether the account was created by this acceptance.
    pub created: bool,
    /// The org.
    pub org: crate::Organization,
    /// The membership, active.
    pub membership: crate::Membership,
}

/// Why an invitation could not be accepted or declined.
#[derive(Debug, thiserror::Error)]
pub enum AnswerInvitationError {
    /// The link is unknown or the invitation expired.
    #[error(transparent)]
    Refused(#[from] crate::TokenRefused),
    /// The invitation was accepted, declined or revoked already.
    #[error(transparent)]
    Ended(#[from] crate::InvitationEnded),
    /// A new account was asked for, but the address has one: sign in, then accept.
    #[error("an account with this address exists; sign in to accept")]
    AccountExists,
    /// The signed-in account's address is not the invited one.
    #[error("the invitation is for another address")]
    WrongAccount,
    /// The signed-in account's address is not verified yet.
    #[error("verify your e-mail address first")]
    NotVerified,
    /// The account is a member of the org already.
    #[error("you are a member of this organization already")]
    AlreadyMember,
    /// Storage failure.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// An org's invitations, as its admins list and revoke them.
pub trait InvitationRepository: Send + Sync + 'static {
    /// The org's invitations, newest first, after `after` (an id of the previous
    /// page); at most `limit`; only those with status `status` at `now` if given.
    fn list_invitations(
        &self,
        org: crate::OrgId,
        status: Option<crate::InvitationStatus>,
        after: Option<crate::InvitationId>,
        limit: u64,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<crate::Invitation>, StorageFailure>> + Send;

    /// One invitation of the org, if it exists.
    fn get_invitation(
        &self,
        org: crate::OrgId,
        id: crate::InvitationId,
    ) -> impl Future<Output = Result<Option<crate::Invitation>, StorageFailure>> + Send;

    /// Revokes a pending invitation of the org (audited `invitation.revoke`).
    fn revoke_invitation(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        id: crate::InvitationId,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<crate::Invitation, RevokeInvitationError>> + Send;

    /// Sends a pending invitation again with a new link (the old link stops working),
    /// audited `invitation.resend`.
    fn resend_invitation(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        id: crate::InvitationId,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<crate::Invitation, RevokeInvitationError>> + Send;

    /// Accepts the pending invitation whose link carries `token`, as `claimant`: the
    /// membership is created with the invited role and profile, the address counts as
    /// proven, and (for a new account) the account is created — in one transaction,
    /// audited (`invitation.accept`, `member.create`, and `auth.register` for a new
    /// account).
    fn accept_invitation(
        &self,
        ctx: &AuditContext,
        token: &crate::OneTimeToken,
        claimant: Claimant,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<AcceptedInvitation, AnswerInvitationError>> + Send;

    /// The pending invitations to `email` in every org, newest first.
    fn invitations_to(
        &self,
        email: &crate::Email,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<crate::Invitation>, StorageFailure>> + Send;

    /// Accepts (`accept`) or declines a pending invitation of `org` to the signed-in
    /// `user`, whose address must be the invited one and verified. Returns the
    /// membership when accepted.
    fn answer_invitation(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
        org: crate::OrgId,
        id: crate::InvitationId,
        accept: bool,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Option<AcceptedInvitation>, AnswerInvitationError>> + Send;
}

/// Why an e-mail change could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    /// No such active user.
    #[error("no such account")]
    NoAccount,
    /// The new address is the current one.
    #[error("this is already the account's address")]
    Unchanged,
    /// Another account has the address.
    #[error("the address {email} belongs to another account")]
    Taken {
        /// The address.
        email: crate::Email,
    },
    /// Storage failure.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Why an e-mailed link could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UseTokenError {
    /// The link is unknown, expired or used.
    #[error(transparent)]
    Refused(#[from] crate::TokenRefused),
    /// The new address of an e-mail change belongs to another account by now.
    #[error("the address {email} belongs to another account")]
    AddressTaken {
        /// The address.
        email: crate::Email,
    },
    /// Storage failure.
    #[error(transparent)]
    Unexpected(#[from] StorageFailure),
}

/// Address verification and password reset. Tokens are stored by digest only, are for
/// one user and one address, expire, and open something once; every step is audited in
/// its transaction, and the message carrying a token is queued in that same
/// transaction (so a rolled-back step sends nothing).
pub trait AccountTokenRepository: Send + Sync + 'static {
    /// Issues `token` to prove `user`'s current address (earlier unused ones stop
    /// working) and queues its message. Returns the address; `None` when there is no
    /// such active user.
    fn issue_email_verification(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
        token: &crate::OneTimeToken,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Option<crate::Email>, StorageFailure>> + Send;

    /// Starts changing `user`'s address to `new_email`: issues `token` for the new
    /// address (queueing the link to it) and tells the current address. The address
    /// changes only when the link is followed ([`Self::verify_email`]).
    fn request_email_change(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
        new_email: &crate::Email,
        token: &crate::OneTimeToken,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<(), EmailChangeError>> + Send;

    /// Marks the address the token was sent to as proven, if it is still the user's;
    /// for an e-mail change's token, makes that address the user's (proven).
    fn verify_email(
        &self,
        ctx: &AuditContext,
        token: &crate::OneTimeToken,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<crate::UserId, UseTokenError>> + Send;

    /// Issues `token` to reset the password of the active account with `email`, if there
    /// is one, and queues its message; whether there was (the caller answers the same
    /// either way).
    fn issue_password_reset(
        &self,
        ctx: &AuditContext,
        email: &crate::Email,
        token: &crate::OneTimeToken,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StorageFailure>> + Send;

    /// Sets the password of the token's user to `password_hash`, ends every session of
    /// theirs and every other reset link, proves the address (the link reached it), and
    /// queues the "password changed" message. Returns the user and the ended sessions.
    fn reset_password(
        &self,
        ctx: &AuditContext,
        token: &crate::OneTimeToken,
        password_hash: String,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<(crate::UserId, Vec<uuid::Uuid>), UseTokenError>> + Send;
}

/// Storage of organizations, memberships and custom roles. Every write method stores
/// its audit event in the same transaction as the change.
pub trait OrgRepository: Send + Sync + 'static {
    /// Creates an org with its creator as first admin.
    fn create_org(
        &self,
        ctx: &AuditContext,
        req: CreateOrgRequest,
    ) -> impl Future<Output = Result<(crate::Organization, crate::Membership), CreateOrgError>> + Send;

    /// Loads an org.
    fn get_org(
        &self,
        id: crate::OrgId,
    ) -> impl Future<Output = Result<Option<crate::Organization>, StorageFailure>> + Send;

    /// Updates an org's settings (optimistic concurrency when a version is given).
    fn update_org(
        &self,
        ctx: &AuditContext,
        id: crate::OrgId,
        expected_version: Option<i64>,
        changes: OrgChanges,
    ) -> impl Future<Output = Result<crate::Organization, UpdateOrgError>> + Send;

    /// Adds `user` as an active volunteer of the active org with `code`.
    fn join_by_code(
        &self,
        ctx: &AuditContext,
        code: &crate::SignupCode,
        user: crate::UserId,
    ) -> impl Future<Output = Result<(crate::Organization, crate::Membership), JoinOrgError>> + Send;

    /// One membership.
    fn get_membership(
        &self,
        org: crate::OrgId,
        user: crate::UserId,
    ) -> impl Future<Output = Result<Option<crate::Membership>, StorageFailure>> + Send;

    /// One member with their account.
    fn get_member(
        &self,
        org: crate::OrgId,
        user: crate::UserId,
    ) -> impl Future<Output = Result<Option<(User, crate::Membership)>, StorageFailure>> + Send;

    /// Every membership of a user, with its org.
    fn memberships_of(
        &self,
        user: crate::UserId,
    ) -> impl Future<Output = Result<Vec<(crate::Organization, crate::Membership)>, StorageFailure>> + Send;

    /// Changes a member's role/status/term, enforcing [`crate::rules`] atomically.
    fn change_member(
        &self,
        ctx: &AuditContext,
        req: ChangeMemberRequest,
    ) -> impl Future<Output = Result<crate::Membership, ChangeMemberError>> + Send;

    /// [`change_member`](Self::change_member), answered with the member as the change
    /// left them ([`ChangedMember`]), read in the same transaction.
    fn change_member_answered(
        &self,
        ctx: &AuditContext,
        req: ChangeMemberRequest,
    ) -> impl Future<Output = Result<ChangedMember, ChangeMemberError>> + Send;

    /// Removes a member (never the last active admin), softly: the membership is kept
    /// aside (`member.remove`) and [`restore_member`](Self::restore_member) brings it
    /// back. A removed member holds no permissions.
    fn remove_member(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        actor: crate::UserId,
        target: crate::UserId,
    ) -> impl Future<Output = Result<(), ChangeMemberError>> + Send;

    /// Restores a removed member with their role, status and profile (`member.restore`).
    /// Their custom role, if it was deleted meanwhile, becomes `volunteer`.
    fn restore_member(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        actor: crate::UserId,
        target: crate::UserId,
    ) -> impl Future<Output = Result<crate::Membership, RestoreMemberError>> + Send;

    /// Removed (restorable) members of the org with their accounts, by user id after
    /// `after`; at most `limit`.
    fn list_removed(
        &self,
        org: crate::OrgId,
        after: Option<crate::UserId>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<(User, RemovedMember)>, StorageFailure>> + Send;

    /// Defines a custom role.
    fn create_role(
        &self,
        ctx: &AuditContext,
        req: CreateRoleRequest,
    ) -> impl Future<Output = Result<crate::CustomRole, CreateRoleError>> + Send;

    /// One custom role of the org.
    fn get_role(
        &self,
        org: crate::OrgId,
        id: crate::RoleId,
    ) -> impl Future<Output = Result<Option<crate::CustomRole>, StorageFailure>> + Send;

    /// Changes a custom role (`role.update`), enforcing [`crate::rules::check_role_edit`]
    /// and [`crate::rules::check_role_rerank`] atomically. Its holders' permissions
    /// follow at once.
    fn update_role(
        &self,
        ctx: &AuditContext,
        req: UpdateRoleRequest,
    ) -> impl Future<Output = Result<crate::CustomRole, UpdateRoleError>> + Send;

    /// Deletes a custom role nobody holds and no pending invitation offers
    /// (`role.delete`), within the actor's reach ([`crate::rules::check_role_edit`]).
    /// Ended invitations that named it keep its rank as a built-in role.
    fn delete_role(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        actor: crate::UserId,
        id: crate::RoleId,
        expected_version: i64,
    ) -> impl Future<Output = Result<(), DeleteRoleError>> + Send;

    /// Deletes an org softly (`org.delete`): it is archived and detached from its school,
    /// every membership ends (kept aside with the org), pending invitations and live API
    /// keys are revoked; the org row, its roles, settings and audit chain stay.
    fn delete_org(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        expected_version: i64,
    ) -> impl Future<Output = Result<DeletedOrg, DeleteOrgError>> + Send;

    /// The org's custom roles.
    fn list_roles(
        &self,
        org: crate::OrgId,
    ) -> impl Future<Output = Result<Vec<crate::CustomRole>, StorageFailure>> + Send;

    /// Ends every officer term that is over at `now` (the member falls back to
    /// volunteer), auditing each; returns the members whose term ended.
    fn end_expired_terms(
        &self,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<(crate::OrgId, crate::UserId)>, StorageFailure>> + Send;
}

/// A session to store at sign-in.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Session id (in the token).
    pub id: uuid::Uuid,
    /// The user.
    pub user_id: crate::UserId,
    /// The token's revocation id.
    pub revocation_id: String,
    /// When the session (its refresh tokens) ends; access tokens expire sooner.
    pub expires_at: time::OffsetDateTime,
    /// The SHA-256 (hex) of the session's first refresh token.
    pub refresh_digest: String,
    /// Whether the sign-in passed a second factor (TOTP or recovery code).
    pub second_factor: bool,
    /// Whether the client proved an earlier sign-in to this account (a device token).
    /// When not, and the account has signed in before, its owner is told by e-mail.
    pub known_device: bool,
}

/// A user's stored credentials, for sign-in.
#[derive(Debug, Clone)]
pub struct StoredCredentials {
    /// The user.
    pub user: User,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// Whether the user is a platform admin.
    pub is_platform_admin: bool,
    /// Whether the user proved their address (a verification or invitation link).
    pub email_verified: bool,
    /// The language messages to them are written in (`None`: English).
    pub locale: Option<crate::Language>,
    /// The account's version (every change of the account row bumps it).
    pub version: i64,
}

/// Storage of sessions and credentials. Writes are audited as activity events.
pub trait SessionRepository: Send + Sync + 'static {
    /// The credentials of the (non-deleted) user with this e-mail.
    fn credentials(
        &self,
        email: &Email,
    ) -> impl Future<Output = Result<Option<StoredCredentials>, StorageFailure>> + Send;

    /// The credentials of a user by id.
    fn credentials_by_id(
        &self,
        user: crate::UserId,
    ) -> impl Future<Output = Result<Option<StoredCredentials>, StorageFailure>> + Send;

    /// Stores a new session (activity `auth.sign_in`).
    fn create_session(
        &self,
        ctx: &AuditContext,
        session: NewSession,
    ) -> impl Future<Output = Result<crate::Session, StorageFailure>> + Send;

    /// Records a failed sign-in (activity `auth.sign_in_failed`) for a known user.
    fn record_failed_sign_in(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
    ) -> impl Future<Output = Result<(), StorageFailure>> + Send;

    /// One session of a user (`None` if absent or another user's).
    fn get_session(
        &self,
        user: crate::UserId,
        session: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<crate::Session>, StorageFailure>> + Send;

    /// The user's sessions, newest first.
    fn list_sessions(
        &self,
        user: crate::UserId,
    ) -> impl Future<Output = Result<Vec<crate::Session>, StorageFailure>> + Send;

    /// Revokes one of the user's sessions; returns its revocation id if it was live.
    fn revoke_session(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
        session: uuid::Uuid,
    ) -> impl Future<Output = Result<Option<String>, StorageFailure>> + Send;

    /// Replaces the password hash and revokes every other session of the user
    /// (activity `auth.password_change`); returns the revoked revocation ids.
    fn change_password(
        &self,
        ctx: &AuditContext,
        user: crate::UserId,
        new_hash: String,
        keep_session: Option<uuid::Uuid>,
    ) -> impl Future<Output = Result<Vec<String>, StorageFailure>> + Send;

    /// Whether the session with this id is live (not revoked, not expired) at `now`.
    fn session_is_live(
        &self,
        session: uuid::Uuid,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StorageFailure>> + Send;
}

/// An integration's API key, as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Key id (in the token).
    pub id: uuid::Uuid,
    /// The org it is bound to.
    pub org_id: crate::OrgId,
    /// A name for people.
    pub name: String,
    /// The permission keys it grants.
    pub permissions: permissions::KeySet,
    /// Who created it.
    pub created_by: Option<crate::UserId>,
    /// When it was created.
    pub created_at: time::OffsetDateTime,
    /// When it expires.
    pub expires_at: time::OffsetDateTime,
    /// When it was last used (updated at most about once a minute).
    pub last_used_at: Option<time::OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<time::OffsetDateTime>,
}

/// An API key to store.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Key id (in the token).
    pub id: uuid::Uuid,
    /// The org.
    pub org_id: crate::OrgId,
    /// Name.
    pub name: String,
    /// The token's revocation id.
    pub revocation_id: String,
    /// Granted keys.
    pub permissions: permissions::KeySet,
    /// Creator.
    pub created_by: crate::UserId,
    /// Expiry.
    pub expires_at: time::OffsetDateTime,
}

/// Storage of API keys; writes are audited.
pub trait ApiKeyRepository: Send + Sync + 'static {
    /// Stores a new key.
    fn create_api_key(
        &self,
        ctx: &AuditContext,
        key: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StorageFailure>> + Send;

    /// The org's keys, newest first.
    fn list_api_keys(
        &self,
        org: crate::OrgId,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StorageFailure>> + Send;

    /// Revokes a key of the org; `false` if there was no live key with that id.
    fn revoke_api_key(
        &self,
        ctx: &AuditContext,
        org: crate::OrgId,
        id: uuid::Uuid,
    ) -> impl Future<Output = Result<bool, StorageFailure>> + Send;

    /// The creator of the key if it is live (not revoked, not expired) at `now`; `None`
    /// for a dead key, or one whose creator's account is gone. Requests then check the
    /// creator's current rights: a key dies with them.
    fn live_api_key_creator(
        &self,
        org: crate::OrgId,
        id: uuid::Uuid,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Option<crate::UserId>, StorageFailure>> + Send;

    /// Records a use of the key.
    fn touch_api_key(
        &self,
        org: crate::OrgId,
        id: uuid::Uuid,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<(), StorageFailure>> + Send;
}
