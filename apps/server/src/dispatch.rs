//! The after-commit dispatcher: the one place a committed transaction's change events
//! become cache invalidations on every instance.
//!
//! Every store appends its events with `audit_store::append_in` inside its
//! [`persistence::WriteTx`]; the transaction hands them here after it committed (the
//! composition root installs [`Dispatcher`] with [`persistence::Database::set_after_commit`]).
//! [`effects`] is the table — one exhaustive `match` over [`EventType`] — of what each
//! kind of change invalidates; [`Dispatcher`] coalesces a transaction's effects (a
//! 500-row import retires its org once, not 500 times) and applies them. No route or
//! store invalidates a cache by hand.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use audit::{AfterCommit, AuditEvent, EventType};
use uuid::Uuid;

use crate::auth::AuthService;
use crate::authz::Authz;

/// Members changed in one org in one transaction above which the whole org is retired
/// at once (one counter bump) instead of member by member.
const MEMBERS_PER_ORG_COALESCED: usize = 16;

/// A cache invalidation a change implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// The org's permission table and every member context of it, and its directory
    /// pages (settings, templates, grants, roles, placement, bulk member changes).
    Org(Uuid),
    /// One member's context and the org's directory pages.
    Member {
        /// The org.
        org: Uuid,
        /// The member.
        user: Uuid,
    },
    /// The org's directory pages only (pending invitations, "last active").
    Directory(Uuid),
    /// The directory pages and search indexes of every org the user belongs to (a
    /// profile edit changes names, an address change the e-mail).
    UserDirectories(Uuid),
    /// The directory pages of every org the user belongs to, not their search indexes: a
    /// sign-in moves "last active" only, which nothing searches.
    SignIn(Uuid),
    /// The user's account view (`GET /me`): their account or one of their memberships
    /// changed. Never coalesced into the org (each user is one scope of one call).
    Account(Uuid),
    /// What the org's members' account views show of it (its name, status, roles).
    OrgFacts(Uuid),
    /// A revoked credential (API key), forgotten by every instance's credential cache.
    Credential(Uuid),
    /// The change queued e-mail: wake this instance's mail worker (the others find it
    /// on their next poll).
    Mail,
}

/// What a committed event of type `kind` invalidates. The table of the write path:
/// adding an [`EventType`] does not compile until its row is written here.
#[must_use]
pub fn effects(kind: EventType, event: &AuditEvent) -> Vec<Effect> {
    let org = event.body.scope.org_id;
    let entity = || Uuid::parse_str(&event.body.entity_id).ok();
    let member = || match (org, entity()) {
        (Some(org), Some(user)) => vec![Effect::Member { org, user }, Effect::Account(user)],
        (Some(org), None) => vec![Effect::Org(org)],
        _ => Vec::new(),
    };
    let account = || entity().map(Effect::Account);
    let whole_org = || org.map(Effect::Org).into_iter().collect();
    match kind {
        EventType::MemberCreate
        | EventType::MemberErase
        | EventType::MemberJoin
        | EventType::MemberLeave
        | EventType::MemberRemove
        | EventType::MemberRestore
        | EventType::MemberRoleChange
        | EventType::MemberTermEnd
        | EventType::MemberUpdate => member(),
        // Invitations queue their e-mail with them.
        EventType::MemberInvite | EventType::InvitationResend => org
            .map(Effect::Directory)
            .into_iter()
            .chain([Effect::Mail])
            .collect(),
        EventType::InvitationAccept
        | EventType::InvitationDecline
        | EventType::InvitationRevoke => org.map(Effect::Directory).into_iter().collect(),
        // Links and notices by e-mail.
        EventType::AuthEmailVerificationSent
        | EventType::AuthEmailChangeRequest
        | EventType::AuthPasswordResetRequest => vec![Effect::Mail],
        // The account's version moves on.
        EventType::AuthPasswordChange
        | EventType::AuthPasswordReset
        | EventType::AuthTwoFactorDisable => account().into_iter().chain([Effect::Mail]).collect(),
        // An org's notification queues its instant e-mails with it (the stream's unread
        // counts follow from the store's `InboxObserver`: the event names no recipients).
        EventType::NotificationSend => vec![Effect::Mail],
        // A changed address shows in every directory the user is in.
        EventType::AuthEmailChange => entity()
            .map(Effect::UserDirectories)
            .into_iter()
            .chain(account())
            .collect(),
        // What the caller's own view shows of their account.
        EventType::AuthEmailVerified
        | EventType::AuthRegister
        | EventType::AuthTwoFactorEnable
        | EventType::PlatformAdminBootstrap
        | EventType::UserErase => account().into_iter().collect(),
        // A sign-in from a new device queues its notice with it.
        EventType::AuthSignIn => entity()
            .map(Effect::SignIn)
            .into_iter()
            .chain([Effect::Mail])
            .collect(),
        // The creator's first membership; the org's placement; anything that changes
        // what its settings resolve to or who holds what.
        EventType::OrgCreate
        | EventType::OrgDistrictChange
        | EventType::OrgMove
        | EventType::PermissionGrant
        | EventType::PermissionRevoke
        | EventType::PermissionInheritedUpdate
        | EventType::RoleCreate
        | EventType::RoleUpdate
        | EventType::RoleDelete => whole_org(),
        // Every member of a deleted org loses their membership at once.
        EventType::OrgDelete => whole_org(),
        // An org's own setting; a template's change reaches each org below through its
        // own `permission.inherited_update` event.
        EventType::PermissionUpdate => whole_org(),
        EventType::ApiKeyRevoke => entity().map(Effect::Credential).into_iter().collect(),
        // A name or the account's language.
        EventType::UserProfileUpdate => entity()
            .map(Effect::UserDirectories)
            .into_iter()
            .chain(account())
            .collect(),
        // The org's settings, its directory policy among them: what its directory
        // pages hold and show; its name.
        EventType::OrgUpdate => org
            .into_iter()
            .flat_map(|o| [Effect::Directory(o), Effect::OrgFacts(o)])
            .collect(),
        // Nothing cached depends on these (sessions are evicted by `AuthService`, which
        // revokes them: the credential cache is keyed by the session it holds).
        EventType::ApiKeyCreate
        | EventType::AuditArchive
        | EventType::AuditRetentionUpdate
        | EventType::AuthRecoveryCodeUse
        | EventType::AuthRefreshReuse
        | EventType::AuthSignInChallenge
        | EventType::AuthSignInFailed
        | EventType::AuthSignOut
        | EventType::AuthTokenRefresh
        | EventType::AuthTwoFactorEnrol
        | EventType::AuthTwoFactorFailed
        | EventType::DataExport
        | EventType::DistrictCreate
        | EventType::DistrictDelete
        | EventType::DistrictUpdate
        | EventType::DistrictStaffAdd
        | EventType::DistrictStaffChange
        | EventType::DistrictStaffRemove
        | EventType::JobCancel
        | EventType::OrgSignupCodeRotate
        | EventType::SchoolCreate
        | EventType::SchoolDelete
        | EventType::SchoolMove
        | EventType::SchoolUpdate => Vec::new(),
        // Webhook endpoints are read by the webhook worker from the database (it is
        // woken for every committed org event, see `Dispatcher::committed`).
        EventType::WebhookCreate
        | EventType::WebhookDelete
        | EventType::WebhookDisable
        | EventType::WebhookPing
        | EventType::WebhookRedeliver
        | EventType::WebhookSecretRotate
        | EventType::WebhookUpdate => Vec::new(),
    }
}

/// The effects of one committed transaction, deduplicated and coalesced: an org
/// retired whole absorbs its members and directory; many members of one org become
/// the org.
#[must_use]
pub fn plan(events: &[AuditEvent]) -> BTreeSet<Effect> {
    let mut all = BTreeSet::new();
    for event in events {
        match EventType::of(&event.body.action) {
            Some(kind) => all.extend(effects(kind, event)),
            None => {
                // Not in the catalog (an event recorded outside the stores): be safe.
                tracing::warn!(action = %event.body.action, "dispatching an event outside the catalog");
                all.extend(event.body.scope.org_id.map(Effect::Org));
            }
        }
    }
    let mut members_per_org = std::collections::BTreeMap::<Uuid, usize>::new();
    for effect in &all {
        if let Effect::Member { org, .. } = effect {
            *members_per_org.entry(*org).or_default() += 1;
        }
    }
    for (org, n) in members_per_org {
        if n > MEMBERS_PER_ORG_COALESCED {
            all.insert(Effect::Org(org));
        }
    }
    let whole: BTreeSet<Uuid> = all
        .iter()
        .filter_map(|e| match e {
            Effect::Org(o) => Some(*o),
            _ => None,
        })
        .collect();
    all.retain(|e| match e {
        Effect::Member { org, .. } | Effect::Directory(org) => !whole.contains(org),
        _ => true,
    });
    all
}

/// Applies the plan of every committed transaction to the caches. Installed once on the
/// database by the composition root.
pub struct Dispatcher {
    bus: cache::InvalidationBus,
    events: crate::event_hub::EventHub,
    authz: Arc<Authz>,
    directory: directory_cache::CachedDirectory<tenancy_store::SeaOrmMemberDirectory>,
    search: crate::search_index::SearchIndexes,
    accounts: crate::account_views::AccountViews,
    auth: Arc<AuthService>,
    orgs: tenancy_store::SeaOrmOrgRepository,
    mail_wake: Arc<tokio::sync::Notify>,
    webhook_wake: Arc<tokio::sync::Notify>,
}

impl Dispatcher {
    /// A dispatcher over the app's caches and its live events, whose messages to other
    /// instances go out on `bus` in one message per transaction; `orgs` finds a user's
    /// orgs; `mail_wake` wakes the mail worker, `webhook_wake` the webhook worker.
    #[must_use]
    #[allow(clippy::too_many_arguments, reason = "the composition root's one call")]
    pub fn new(
        bus: cache::InvalidationBus,
        events: crate::event_hub::EventHub,
        authz: Arc<Authz>,
        directory: directory_cache::CachedDirectory<tenancy_store::SeaOrmMemberDirectory>,
        search: crate::search_index::SearchIndexes,
        accounts: crate::account_views::AccountViews,
        auth: Arc<AuthService>,
        orgs: tenancy_store::SeaOrmOrgRepository,
        mail_wake: Arc<tokio::sync::Notify>,
        webhook_wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            bus,
            events,
            authz,
            directory,
            search,
            accounts,
            auth,
            orgs,
            mail_wake,
            webhook_wake,
        }
    }

    async fn apply(&self, plan: BTreeSet<Effect>) {
        let mut directory = BTreeSet::new();
        // The orgs whose search indexes are rebuilt whole.
        let mut searched_whole = BTreeSet::new();
        // The members replaced in place in their org's search index.
        let mut searched_members = BTreeSet::new();
        // The orgs whose directory changed only in "last active" (kept search indexes).
        let mut last_active_only = BTreeSet::new();
        let mut whole = Vec::new();
        // Users and orgs whose account views are retired (one call for all).
        let mut account_views = BTreeSet::new();
        for effect in plan {
            match effect {
                Effect::Org(org) => {
                    whole.push(org);
                    account_views.insert(org);
                    directory.insert(org);
                    searched_whole.insert(org);
                }
                Effect::Member { org, user } => {
                    self.authz.member_changed(org, user).await;
                    directory.insert(org);
                    searched_members.insert((org, user));
                }
                Effect::Directory(org) => {
                    directory.insert(org);
                    searched_whole.insert(org);
                }
                Effect::UserDirectories(user) => {
                    for org in self.orgs_of(user).await {
                        directory.insert(org);
                        searched_members.insert((org, user));
                    }
                }
                Effect::SignIn(user) => {
                    last_active_only.extend(self.orgs_of(user).await);
                }
                Effect::Account(id) | Effect::OrgFacts(id) => {
                    account_views.insert(id);
                }
                Effect::Credential(key) => self.auth.api_key_revoked(key).await,
                Effect::Mail => self.mail_wake.notify_one(),
            }
        }
        if !whole.is_empty() {
            self.authz.orgs_changed(&whole).await;
        }
        if !account_views.is_empty() {
            let scopes: Vec<Uuid> = account_views.into_iter().collect();
            self.accounts.invalidate(&scopes).await;
        }
        // Their search indexes, here and (over the bus) on every instance: rebuilt
        // whole, or the changed members replaced in place.
        if !searched_whole.is_empty() {
            let orgs: Vec<Uuid> = searched_whole.iter().copied().collect();
            self.search.org_changed(&orgs).await;
        }
        for (org, user) in searched_members {
            if !searched_whole.contains(&org) {
                self.search.member_changed(org, user).await;
            }
        }
        directory.extend(last_active_only);
        if !directory.is_empty() {
            let orgs: Vec<Uuid> = directory.into_iter().collect();
            self.directory.org_changed(&orgs).await;
        }
    }

    /// The orgs `user` belongs to; none (logged) when they cannot be listed — the
    /// directory's TTL then bounds the staleness.
    async fn orgs_of(&self, user: Uuid) -> Vec<Uuid> {
        use tenancy::ports::OrgRepository;
        match self
            .orgs
            .memberships_of(tenancy::UserId::from_uuid(user))
            .await
        {
            Ok(memberships) => memberships
                .iter()
                .map(|(org, _)| org.id.as_uuid())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, %user, "could not list a user's orgs to retire their directory pages");
                Vec::new()
            }
        }
    }
}

impl AfterCommit for Dispatcher {
    fn committed<'a>(
        &'a self,
        events: &'a [AuditEvent],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // Every cache's and stream's message to the other instances in one Redis
            // message (this instance applies each at once).
            self.bus
                .batched(Box::pin(async {
                    // Caches first: a stream's client reacting to an event reads fresh
                    // state.
                    self.apply(plan(events)).await;
                    self.events.committed(events).await;
                }))
                .await;
            // Webhooks read the committed record themselves (at least once even if this
            // wake is lost): wake this instance's worker for an org's published event
            // or a webhook change (a ping, a redelivery).
            if events.iter().any(wakes_webhooks) {
                self.webhook_wake.notify_one();
            }
        })
    }
}

/// Whether a committed event may have queued webhook deliveries: an org's published
/// change event, or a webhook change (a ping, a redelivery, an endpoint enabled).
fn wakes_webhooks(event: &AuditEvent) -> bool {
    event.body.scope.org_id.is_some()
        && EventType::of(&event.body.action)
            .is_some_and(|t| t.publication().is_some() || t.as_str().starts_with("webhook."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::{Actor, AuditContext, ChangeType, RequestMeta, TenantScope};

    fn sealed(scope: TenantScope, kind: EventType, entity: Uuid) -> AuditEvent {
        let ctx = AuditContext {
            actor: Actor::System,
            request: RequestMeta::default(),
        };
        let new = ctx.change(
            scope,
            kind,
            ("x", entity.to_string()),
            ChangeType::Update,
            (None, None),
        );
        audit::seal(new, None).expect("seal")
    }

    #[test]
    fn org_changes_and_webhook_changes_wake_the_webhook_worker_sign_ins_do_not() {
        let org = Uuid::now_v7();
        let user = Uuid::now_v7();
        assert!(wakes_webhooks(&sealed(
            TenantScope::org(org),
            EventType::MemberJoin,
            user
        )));
        // Unpublished, but it queued a message.
        assert!(wakes_webhooks(&sealed(
            TenantScope::org(org),
            EventType::WebhookPing,
            user
        )));
        assert!(!wakes_webhooks(&sealed(
            TenantScope::PLATFORM,
            EventType::AuthSignIn,
            user
        )));
    }

    #[test]
    fn a_bulk_change_retires_its_org_once_and_absorbs_members() {
        let org = Uuid::now_v7();
        let events: Vec<AuditEvent> = (0..40)
            .map(|_| {
                sealed(
                    TenantScope::org(org),
                    EventType::MemberCreate,
                    Uuid::now_v7(),
                )
            })
            .collect();
        let plan = plan(&events);
        let orgs_and_members: BTreeSet<Effect> = plan
            .iter()
            .filter(|e| !matches!(e, Effect::Account(_)))
            .copied()
            .collect();
        assert_eq!(orgs_and_members, BTreeSet::from([Effect::Org(org)]));
        // Each member's own view is still retired, one by one.
        let accounts: BTreeSet<Uuid> = events
            .iter()
            .map(|e| Uuid::parse_str(&e.body.entity_id).expect("a user id"))
            .collect();
        assert_eq!(plan.len() - 1, accounts.len());
        for user in accounts {
            assert!(plan.contains(&Effect::Account(user)), "{user}");
        }
    }

    #[test]
    fn a_sign_in_retires_directory_pages_but_a_name_change_also_search_indexes() {
        let user = Uuid::now_v7();
        let signed_in = [sealed(TenantScope::PLATFORM, EventType::AuthSignIn, user)];
        assert!(plan(&signed_in).contains(&Effect::SignIn(user)));
        assert!(!plan(&signed_in).contains(&Effect::UserDirectories(user)));
        let renamed = [sealed(
            TenantScope::PLATFORM,
            EventType::UserProfileUpdate,
            user,
        )];
        assert_eq!(
            plan(&renamed),
            BTreeSet::from([Effect::UserDirectories(user), Effect::Account(user)])
        );
    }

    #[test]
    fn a_few_member_changes_stay_per_member() {
        let org = Uuid::now_v7();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let events = [
            sealed(TenantScope::org(org), EventType::MemberRoleChange, a),
            sealed(TenantScope::org(org), EventType::MemberRemove, b),
            sealed(
                TenantScope::org(org),
                EventType::MemberInvite,
                Uuid::now_v7(),
            ),
        ];
        assert_eq!(
            plan(&events),
            BTreeSet::from([
                Effect::Member { org, user: a },
                Effect::Member { org, user: b },
                Effect::Account(a),
                Effect::Account(b),
                Effect::Directory(org),
                Effect::Mail,
            ])
        );
    }

    #[test]
    fn a_template_change_reaches_orgs_only_through_their_own_events() {
        let district = Uuid::now_v7();
        let org = Uuid::now_v7();
        let template = sealed(
            TenantScope::district(district),
            EventType::PermissionUpdate,
            Uuid::now_v7(),
        );
        assert!(plan(std::slice::from_ref(&template)).is_empty());
        let inherited = sealed(
            TenantScope::org_in_district(org, district),
            EventType::PermissionInheritedUpdate,
            Uuid::now_v7(),
        );
        assert_eq!(
            plan(&[template, inherited]),
            BTreeSet::from([Effect::Org(org)])
        );
    }
}
