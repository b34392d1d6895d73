//! Member changes racing on one org, on SQLite and (when `TEST_DATABASE_URL` is set)
//! PostgreSQL: they serialize on the org's row lock (`persistence::ORG_LOCK`, taken with
//! the org's row), so the last-admin rule holds however they interleave.

#![allow(clippy::unwrap_used, missing_docs)]

use permissions::BuiltinRole;
use tenancy::ports::{
    AccountChanges, AuditContext, ChangeMemberError, ChangeMemberRequest, OrgRepository, RoleChoice,
};
use tenancy::{MembershipStatus, OrgId, UserId};
use tenancy_store::SeaOrmOrgRepository;
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;

struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_mr", 4).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env; two_admins_demoting_each_other_leave_one_admin);

fn demote(org: Uuid, actor: Uuid, target: Uuid) -> ChangeMemberRequest {
    ChangeMemberRequest {
        org_id: OrgId::from_uuid(org),
        actor: UserId::from_uuid(actor),
        target: UserId::from_uuid(target),
        expected_version: None,
        role: Some(RoleChoice::Builtin(BuiltinRole::Volunteer)),
        status: None,
        role_ends_at: None,
        committee: None,
        children: None,
        account: AccountChanges::default(),
    }
}

fn ctx(actor: Uuid) -> AuditContext {
    AuditContext {
        actor: audit::Actor::User(actor),
        request: audit::RequestMeta::default(),
    }
}

async fn two_admins_demoting_each_other_leave_one_admin(env: &Env) {
    let db = &env.0;
    for _ in 0..5 {
        let repo = SeaOrmOrgRepository::new(db.db.clone());
        let (org, a, b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        db.org(org, None, None).await;
        db.active_member(org, a, "admin").await;
        db.active_member(org, b, "admin").await;
        let (ctx_a, ctx_b) = (ctx(a), ctx(b));
        let (one, two) = tokio::join!(
            repo.change_member(&ctx_a, demote(org, a, b)),
            repo.change_member(&ctx_b, demote(org, b, a)),
        );
        let won = [&one, &two].iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "exactly one demotion wins: {one:?} / {two:?}");
        for lost in [one, two].into_iter().filter_map(Result::err) {
            // The loser is no admin any more when its turn comes (or would leave none).
            assert!(
                matches!(lost, ChangeMemberError::Refused(_)),
                "the losing demotion is refused by the rules, not failed: {lost:?}"
            );
        }
        let mut admins = 0;
        for user in [a, b] {
            let m = repo
                .get_membership(OrgId::from_uuid(org), UserId::from_uuid(user))
                .await
                .unwrap()
                .unwrap();
            if m.role.rank() == BuiltinRole::Admin && m.status == MembershipStatus::Active {
                admins += 1;
            }
        }
        assert_eq!(admins, 1, "the org keeps exactly one active admin");
    }
}
