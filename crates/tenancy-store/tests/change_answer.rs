//! A member change answered from its own transaction, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL: what `change_member_answered` returns is what a
//! read after the commit finds — the account, the membership, the org's directory policy
//! and the member's privacy choices — whichever part of the member the change touched.

#![allow(clippy::unwrap_used, missing_docs)]

use permissions::BuiltinRole;
use tenancy::ports::{
    AccountChanges, AuditContext, ChangeMemberRequest, ChangedMember, OrgRepository, RoleChoice,
};
use tenancy::privacy::{Choice, NewChoices, PrivacyRepository};
use tenancy::{OrgId, PersonName, UserId};
use tenancy_store::{SeaOrmOrgRepository, SeaOrmPrivacy};
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;

struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_ca", 4).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env; the_answer_is_what_a_later_read_finds);

fn ctx(actor: Uuid) -> AuditContext {
    AuditContext {
        actor: audit::Actor::User(actor),
        request: audit::RequestMeta::default(),
    }
}

fn change(org: Uuid, actor: Uuid, target: Uuid) -> ChangeMemberRequest {
    ChangeMemberRequest {
        org_id: OrgId::from_uuid(org),
        actor: UserId::from_uuid(actor),
        target: UserId::from_uuid(target),
        expected_version: None,
        role: None,
        status: None,
        role_ends_at: None,
        committee: None,
        children: None,
        account: AccountChanges::default(),
    }
}

/// The answer against a fresh read of the same member after the commit.
async fn assert_matches_a_later_read(
    repo: &SeaOrmOrgRepository,
    privacy: &SeaOrmPrivacy,
    answer: &ChangedMember,
) {
    let org = answer.membership.org_id;
    let (user, membership) = repo.get_member(org, answer.user.id).await.unwrap().unwrap();
    let (policy, choices) = privacy.choices(org, answer.user.id).await.unwrap().unwrap();
    assert_eq!(answer.user, user);
    assert_eq!(answer.membership, membership);
    assert_eq!(answer.policy, policy);
    assert_eq!(answer.choices, choices);
}

async fn the_answer_is_what_a_later_read_finds(env: &Env) {
    let db = &env.0;
    let repo = SeaOrmOrgRepository::new(db.db.clone());
    let privacy = SeaOrmPrivacy::new(db.db.clone());
    let (org, admin, parent) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    db.org(org, None, None).await;
    db.active_member(org, admin, "admin").await;
    db.active_member(org, parent, "volunteer").await;
    // Choices of their own, so the answer cannot pass with the defaults.
    privacy
        .set_choices(
            &ctx(parent),
            OrgId::from_uuid(org),
            UserId::from_uuid(parent),
            None,
            NewChoices {
                listing: Some(Choice::Members),
                phone: Some(Choice::Hidden),
                email: None,
                committee: Some(Choice::Members),
                children_and_grades: None,
                notice_version: None,
            },
        )
        .await
        .unwrap();

    // A profile edit (the account is read for the search document).
    let mut edit = change(org, admin, parent);
    edit.committee = Some(Some("Book fair".to_owned()));
    let first = repo
        .change_member_answered(&ctx(admin), edit)
        .await
        .unwrap();
    assert_eq!(first.membership.committee.as_deref(), Some("Book fair"));
    assert_eq!(first.choices.phone, Some(Choice::Hidden));
    assert_matches_a_later_read(&repo, &privacy, &first).await;

    // A role change (nothing of the account is read for the rules).
    let mut promote = change(org, admin, parent);
    promote.role = Some(RoleChoice::Builtin(BuiltinRole::BoardMember));
    promote.expected_version = Some(first.membership.version);
    let second = repo
        .change_member_answered(&ctx(admin), promote)
        .await
        .unwrap();
    assert_eq!(second.membership.version, first.membership.version + 1);
    assert_eq!(second.membership.role.rank(), BuiltinRole::BoardMember);
    assert_matches_a_later_read(&repo, &privacy, &second).await;

    // An account edit (the answer shows the new name).
    let mut rename = change(org, admin, parent);
    rename.account.first_name = Some(PersonName::parse("Anaïs").unwrap());
    let third = repo
        .change_member_answered(&ctx(admin), rename)
        .await
        .unwrap();
    assert_eq!(third.user.first_name.as_str(), "Anaïs");
    assert_matches_a_later_read(&repo, &privacy, &third).await;

    // A refused change answers nothing and changes nothing.
    let mut stale = change(org, admin, parent);
    stale.committee = Some(None);
    stale.expected_version = Some(first.membership.version);
    assert!(
        repo.change_member_answered(&ctx(admin), stale)
            .await
            .is_err()
    );
    assert_matches_a_later_read(&repo, &privacy, &third).await;
}
