//! Invitations on SQLite and (when `TEST_DATABASE_URL` is set) PostgreSQL: the migration
//! that moves invited memberships and unclaimed accounts to invitations, and listing and
//! revoking them.

#![allow(clippy::unwrap_used, missing_docs)]

use permissions::BuiltinRole;
use tenancy::ports::{
    AddMemberRequest, AuditContext, CreateUserRequest, InvitationRepository, MemberAdder,
    RevokeInvitationError, RoleChoice, UserRepository,
};
use tenancy::{Email, InvitationId, InvitationStatus, OrgId, PersonName, UserId};
use tenancy_store::{SeaOrmOrgRepository, SeaOrmUserRepository};
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;

struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_inv", 4).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env;
    the_migration_moves_invited_members_to_invitations_and_frees_unclaimed_addresses,
    invitations_are_listed_and_revoked_once,
);

const MIGRATION: &str = "m20261206_000010_invitations";

/// An invitation row: address, built-in role, phone, committee, status.
type Row = (String, String, Option<String>, Option<String>, String);

fn ctx(actor: Uuid) -> AuditContext {
    AuditContext {
        actor: audit::Actor::User(actor),
        request: audit::RequestMeta::default(),
    }
}

/// A user with this password hash and phone, named "Acc Ount".
async fn user(db: &ScratchDb, id: Uuid, email: &str, hash: &str, phone: Option<&str>) {
    let now = persistence::now_micros();
    db.exec(
        "INSERT INTO users (id, email, first_name, last_name, password_hash, status, \
         is_platform_admin, version, created_at, updated_at, phone) \
         VALUES (?, ?, 'Acc', 'Ount', ?, 'active', ?, 1, ?, ?, ?)",
        vec![
            id.into(),
            email.into(),
            hash.into(),
            false.into(),
            now.into(),
            now.into(),
            phone.map(str::to_owned).into(),
        ],
    )
    .await;
}

async fn the_migration_moves_invited_members_to_invitations_and_frees_unclaimed_addresses(
    env: &Env,
) {
    let db = &env.0;
    // Back to just before the migration.
    let status = db.db.migration_status().await.unwrap();
    let at = status.iter().position(|m| m.name == MIGRATION).unwrap();
    let later = u32::try_from(status.len() - at).unwrap();
    db.db.migrate_down(later).await.unwrap();

    let unusable = format!(
        "$argon2id$v=19$m=19456,t=2,p=1${}${}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    let (org, other) = (Uuid::now_v7(), Uuid::now_v7());
    db.org(org, None, None).await;
    db.org(other, None, None).await;
    let admin = Uuid::now_v7();
    db.active_member(org, admin, "admin").await;
    // Created by an invitation, never claimed: only an invited membership.
    let squatted = Uuid::now_v7();
    user(
        db,
        squatted,
        "squatted@example.org",
        &unusable,
        Some("555-0101"),
    )
    .await;
    db.member(org, squatted, Ok("committee_lead"), "invited")
        .await;
    db.exec(
        "UPDATE memberships SET committee = 'Garden', profile = ? WHERE user_id = ?",
        vec![
            serde_json::json!({"children": [{"name": "Kid", "grade": "3"}]}).into(),
            squatted.into(),
        ],
    )
    .await;
    // A real account attached by an invitation: the membership moves, the account stays.
    let real = Uuid::now_v7();
    user(db, real, "real@example.org", "$argon2id$real", None).await;
    db.member(org, real, Ok("volunteer"), "invited").await;
    db.member(other, real, Ok("volunteer"), "active").await;
    // Password-less but an active member elsewhere: kept.
    let kept = Uuid::now_v7();
    user(db, kept, "kept@example.org", &unusable, None).await;
    db.member(other, kept, Ok("volunteer"), "active").await;

    db.db.migrate().await.unwrap();

    let rows = db
        .rows(
            "SELECT email, builtin_role, first_name, last_name, phone, committee, profile, \
             status, invited_by FROM invitations WHERE org_id = ? ORDER BY email",
            vec![org.into()],
        )
        .await;
    let got: Vec<Row> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "email").unwrap(),
                r.try_get("", "builtin_role").unwrap(),
                r.try_get("", "phone").unwrap(),
                r.try_get("", "committee").unwrap(),
                r.try_get("", "status").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "real@example.org".into(),
                "volunteer".into(),
                None,
                None,
                "pending".into()
            ),
            (
                "squatted@example.org".into(),
                "committee_lead".into(),
                Some("555-0101".into()),
                Some("Garden".into()),
                "pending".into()
            ),
        ]
    );
    let profile: serde_json::Value = rows[1].try_get("", "profile").unwrap();
    assert_eq!(profile["children"][0]["name"], "Kid");
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM memberships WHERE status = 'invited'",
            vec![]
        )
        .await,
        0
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM memberships WHERE org_id = ?",
            vec![org.into()]
        )
        .await,
        1,
        "the admin"
    );
    let ids = |id: Uuid| async move {
        db.count(
            "SELECT COUNT(*) AS n FROM users WHERE id = ?",
            vec![id.into()],
        )
        .await
    };
    assert_eq!(ids(squatted).await, 0, "the unclaimed account is gone");
    assert_eq!(ids(real).await, 1);
    assert_eq!(ids(kept).await, 1, "an active member elsewhere stays");

    // The address is free: its owner can register.
    let users = SeaOrmUserRepository::new(db.db.clone());
    let registered = users
        .create_user(
            &ctx(admin),
            CreateUserRequest {
                email: Email::parse("squatted@example.org").unwrap(),
                first_name: PersonName::parse("Sam").unwrap(),
                last_name: PersonName::parse("Owner").unwrap(),
                password_hash: "$argon2id$owner".into(),
                locale: None,
            },
        )
        .await;
    assert!(registered.is_ok(), "{registered:?}");

    // The moved invitations read back through the repository.
    let orgs = SeaOrmOrgRepository::new(db.db.clone());
    let listed = orgs
        .list_invitations(
            OrgId::from_uuid(org),
            Some(InvitationStatus::Pending),
            None,
            10,
            persistence::now_micros(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    let squat = listed
        .iter()
        .find(|i| i.email.as_str() == "squatted@example.org")
        .unwrap();
    assert_eq!(squat.profile.first_name.as_str(), "Acc");
    assert_eq!(squat.profile.children[0].grade.as_deref(), Some("3"));
    assert!(squat.expires_at > persistence::now_micros() + time::Duration::days(13));
}

async fn invitations_are_listed_and_revoked_once(env: &Env) {
    let db = &env.0;
    let (org, other, admin, other_admin) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    db.org(org, None, None).await;
    db.org(other, None, None).await;
    db.active_member(org, admin, "admin").await;
    db.active_member(other, other_admin, "admin").await;
    let orgs = SeaOrmOrgRepository::new(db.db.clone());
    let invite = |org: Uuid, actor: Uuid, email: &str| AddMemberRequest {
        org_id: OrgId::from_uuid(org),
        actor: UserId::from_uuid(actor),
        email: Email::parse(email).unwrap(),
        first_name: PersonName::parse("Ana").unwrap(),
        last_name: PersonName::parse("Lopez").unwrap(),
        phone: None,
        role: RoleChoice::Builtin(BuiltinRole::Volunteer),
        committee: None,
        children: Vec::new(),
        valid_for: tenancy::DEFAULT_INVITATION_TTL,
    };
    let mut ids = Vec::new();
    for e in ["a@example.org", "b@example.org", "c@example.org"] {
        ids.push(
            orgs.add_member(&ctx(admin), invite(org, admin, e))
                .await
                .unwrap()
                .id,
        );
    }
    let theirs = orgs
        .add_member(
            &ctx(other_admin),
            invite(other, other_admin, "a@example.org"),
        )
        .await
        .unwrap();
    let now = persistence::now_micros();
    let org_id = OrgId::from_uuid(org);

    // Newest first, in pages; only this org's.
    let page = orgs
        .list_invitations(org_id, None, None, 2, now)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|i| i.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let rest = orgs
        .list_invitations(org_id, None, Some(ids[1]), 2, now)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|i| i.id).collect::<Vec<_>>(), [ids[0]]);

    // Revoked once; then 'ended'. Another org's invitation or an unknown id: not found.
    let revoked = orgs
        .revoke_invitation(&ctx(admin), org_id, ids[0], now)
        .await
        .unwrap();
    assert_eq!(
        (revoked.status, revoked.version),
        (InvitationStatus::Revoked, 2)
    );
    assert!(matches!(
        orgs.revoke_invitation(&ctx(admin), org_id, ids[0], now).await,
        Err(RevokeInvitationError::Ended(e)) if e.status == InvitationStatus::Revoked
    ));
    for id in [theirs.id, InvitationId::new()] {
        assert!(matches!(
            orgs.revoke_invitation(&ctx(admin), org_id, id, now).await,
            Err(RevokeInvitationError::NotFound)
        ));
    }
    // Expired is computed on read, and an expired invitation cannot be revoked.
    let later = now + time::Duration::days(15);
    let expired = orgs
        .list_invitations(org_id, Some(InvitationStatus::Expired), None, 10, later)
        .await
        .unwrap();
    assert_eq!(expired.len(), 2, "b and c, not the revoked a");
    assert!(matches!(
        orgs.revoke_invitation(&ctx(admin), org_id, ids[1], later).await,
        Err(RevokeInvitationError::Ended(e)) if e.status == InvitationStatus::Expired
    ));
    let revoked_list = orgs
        .list_invitations(org_id, Some(InvitationStatus::Revoked), None, 10, now)
        .await
        .unwrap();
    assert_eq!(
        revoked_list.iter().map(|i| i.id).collect::<Vec<_>>(),
        [ids[0]]
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'invitation.revoke' \
             AND org_id = ?",
            vec![org.into()]
        )
        .await,
        1
    );
}
