//! "Who may hand out what" in the store, on SQLite and (when `TEST_DATABASE_URL` is set)
//! PostgreSQL: membership changes and additions decide against the keys the actor holds
//! in the write's own transaction — the org's settings as they are now, grants not
//! handed on.

#![allow(clippy::unwrap_used, missing_docs)]

use permissions::{KeySet, PermissionKey};
use tenancy::ports::{
    AddMemberError, AddMemberRequest, AuditContext, ChangeMemberError, ChangeMemberRequest,
    OrgRepository, RoleChoice,
};
use tenancy::rules::RoleChangeRefused;
use tenancy::{Email, OrgId, PersonName, RoleId, UserId};
use tenancy_store::{Notices, SeaOrmOrgRepository, add_members_in};
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;

struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_ho", 4).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env; roles_are_given_only_with_keys_held_now);

fn ctx(actor: Uuid) -> AuditContext {
    AuditContext {
        actor: audit::Actor::User(actor),
        request: audit::RequestMeta::default(),
    }
}

fn give(org: Uuid, actor: Uuid, target: Uuid, role: Uuid) -> ChangeMemberRequest {
    ChangeMemberRequest {
        org_id: OrgId::from_uuid(org),
        actor: UserId::from_uuid(actor),
        target: UserId::from_uuid(target),
        expected_version: None,
        role: Some(RoleChoice::Custom(RoleId(role))),
        status: None,
        role_ends_at: None,
        committee: None,
        children: None,
        account: tenancy::ports::AccountChanges::default(),
    }
}

fn not_held(keys: &[PermissionKey]) -> KeySet {
    keys.iter().copied().collect()
}

fn refused_keys<T: std::fmt::Debug>(r: Result<T, ChangeMemberError>) -> KeySet {
    match r {
        Err(ChangeMemberError::Refused(RoleChangeRefused::KeysNotHeld(e))) => e.keys,
        other => panic!("expected KeysNotHeld, got {other:?}"),
    }
}

async fn roles_are_given_only_with_keys_held_now(env: &Env) {
    let db = &env.0;
    let repo = SeaOrmOrgRepository::new(db.db.clone());
    let (org, board, vol, vol2) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    db.org(org, None, None).await;
    db.active_member(org, Uuid::now_v7(), "admin").await;
    db.active_member(org, board, "board_member").await;
    db.active_member(org, vol, "volunteer").await;
    db.active_member(org, vol2, "volunteer").await;
    let (treasurer, registrar, deputy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    db.role(
        org,
        treasurer,
        "Treasurer",
        "volunteer",
        &["budget.approve"],
    )
    .await;
    db.role(org, registrar, "Registrar", "volunteer", &["users.remove"])
        .await;
    db.role(org, deputy, "Deputy", "volunteer", &["users.edit_roles"])
        .await;

    // users.remove is the admin's: the board member can't give a role carrying it.
    assert_eq!(
        refused_keys(
            repo.change_member(&ctx(board), give(org, board, vol, registrar))
                .await
        ),
        not_held(&[PermissionKey::UsersRemove])
    );
    // budget.approve is the board's: fine.
    repo.change_member(&ctx(board), give(org, board, vol, treasurer))
        .await
        .unwrap();

    // Disabled for the org now: held by nobody, so given by nobody.
    db.exec(
        "INSERT INTO org_permission_settings (org_id, key, min_role, enabled, locked, updated_by, updated_at) \
         VALUES (?, 'budget.approve', 'board_member', ?, ?, NULL, ?)",
        vec![
            org.into(),
            false.into(),
            false.into(),
            persistence::now_micros().into(),
        ],
    )
    .await;
    assert_eq!(
        refused_keys(
            repo.change_member(&ctx(board), give(org, board, vol2, treasurer))
                .await
        ),
        not_held(&[PermissionKey::BudgetApprove])
    );

    // A key granted directly is held, but not handed on.
    db.exec(
        "INSERT INTO permission_grants (org_id, user_id, key, granted_by, reason, expires_at, created_at) \
         VALUES (?, ?, 'users.edit_roles', NULL, NULL, NULL, ?)",
        vec![org.into(), board.into(), persistence::now_micros().into()],
    )
    .await;
    assert_eq!(
        refused_keys(
            repo.change_member(&ctx(board), give(org, board, vol2, deputy))
                .await
        ),
        not_held(&[PermissionKey::UsersEditRoles])
    );

    // Adding members (one by one or by import) follows the same rule.
    let txn = db.db.begin_for_org(org).await.unwrap();
    let outcomes = add_members_in(
        &txn,
        &ctx(board),
        &Notices::none(),
        vec![AddMemberRequest {
            org_id: OrgId::from_uuid(org),
            actor: UserId::from_uuid(board),
            email: Email::parse("new@example.org").unwrap(),
            first_name: PersonName::parse("New").unwrap(),
            last_name: PersonName::parse("Member").unwrap(),
            phone: None,
            role: RoleChoice::Custom(RoleId(registrar)),
            committee: None,
            children: Vec::new(),
            valid_for: time::Duration::days(14),
        }],
    )
    .await
    .unwrap();
    drop(txn);
    match &outcomes[0] {
        Err(AddMemberError::Refused(RoleChangeRefused::KeysNotHeld(e))) => {
            assert_eq!(e.keys, not_held(&[PermissionKey::UsersRemove]));
        }
        other => panic!("expected KeysNotHeld, got {other:?}"),
    }
}
