//! Batched member additions (`add_members_in`, the import job's path) on SQLite and
//! (when `TEST_DATABASE_URL` is set) PostgreSQL: each request is decided exactly as the
//! one-by-one operation would, in order, and becomes an invitation of the org with its
//! audit event; no account is attached or created.

#![allow(clippy::unwrap_used, missing_docs)]

use audit::{AuditLog, ChainVerifier, TenantScope};
use audit_store::SeaOrmAuditLog;
use permissions::BuiltinRole;
use tenancy::ports::{AddMemberError, AddMemberRequest, AuditContext, RoleChoice};
use tenancy::rules::RoleChangeRefused;
use tenancy::{Email, InvitationStatus, OrgId, PersonName, RoleId, UserId};
use tenancy_store::{Notices, add_members_in};
use test_support::{Backend, ScratchDb, TestEnv};
use uuid::Uuid;

struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_ts", 4).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env; a_batch_decides_each_request_in_order, the_actor_rank_and_the_org_bind_the_whole_batch, a_lapsed_invitation_makes_room_for_a_new_one);

fn request(org: Uuid, actor: Uuid, email: &str, first: &str, role: RoleChoice) -> AddMemberRequest {
    AddMemberRequest {
        org_id: OrgId::from_uuid(org),
        actor: UserId::from_uuid(actor),
        email: Email::parse(email).unwrap(),
        first_name: PersonName::parse(first).unwrap(),
        last_name: PersonName::parse("Rivera").unwrap(),
        phone: Some(" 555-0100 ".into()),
        role,
        committee: Some("Garden".into()),
        children: Vec::new(),
        valid_for: tenancy::DEFAULT_INVITATION_TTL,
    }
}

fn ctx(actor: Uuid) -> AuditContext {
    AuditContext {
        actor: audit::Actor::User(actor),
        request: audit::RequestMeta::default(),
    }
}

/// What an outcome was, in a comparable form.
fn kind<T>(outcome: &Result<T, AddMemberError>) -> String {
    match outcome {
        Ok(_) => "added".into(),
        Err(AddMemberError::AlreadyMember { .. }) => "already_member".into(),
        Err(AddMemberError::AlreadyInvited { .. }) => "already_invited".into(),
        Err(AddMemberError::UnknownRole) => "unknown_role".into(),
        Err(AddMemberError::Refused(RoleChangeRefused::RoleFull { .. })) => "role_full".into(),
        Err(AddMemberError::Refused(RoleChangeRefused::AboveOwnRank { .. })) => {
            "above_own_rank".into()
        }
        Err(e) => format!("{e:?}"),
    }
}

async fn member_invites(db: &ScratchDb, org: Uuid) -> Vec<audit::AuditEvent> {
    let log = SeaOrmAuditLog::new(db.db.clone());
    let chain = TenantScope::org(org).chain_id();
    let mut events = log.chain_events(chain, 1, 10_000).await.unwrap();
    let mut verifier = ChainVerifier::new(chain);
    for e in &events {
        verifier.push(e).expect("the org's chain is intact");
    }
    // As stored, the invitees' values are sealed (issue #17): read them with their keys.
    audit_store::open_events(db.db.primary(), &mut events)
        .await
        .unwrap();
    events
        .into_iter()
        .filter(|e| e.body.action.as_str() == "member.invite")
        .collect()
}

async fn a_batch_decides_each_request_in_order(env: &Env) {
    let db = &env.0;
    let (org, admin, account, member) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    db.org(org, None, None).await;
    db.active_member(org, admin, "admin").await;
    db.user(account, "active", false).await; // an account, not a member of this org
    db.active_member(org, member, "volunteer").await;
    let treasurer = Uuid::now_v7();
    db.role(org, treasurer, "Treasurer", "board_member", &[])
        .await;
    db.exec(
        "UPDATE org_roles SET max_holders = 1 WHERE id = ?",
        vec![treasurer.into()],
    )
    .await;
    let email_of = |id: Uuid| format!("{}@example.test", id.simple());
    let builtin = RoleChoice::Builtin;

    let mut reqs = vec![
        request(
            org,
            admin,
            "ana@example.org",
            "Ana",
            builtin(BuiltinRole::Volunteer),
        ),
        request(
            org,
            admin,
            &email_of(account),
            "Typed",
            builtin(BuiltinRole::CommitteeLead),
        ),
        request(
            org,
            admin,
            &email_of(member),
            "Mo",
            builtin(BuiltinRole::Volunteer),
        ),
        request(
            org,
            admin,
            "ANA@example.org",
            "Ana",
            builtin(BuiltinRole::Volunteer),
        ),
        request(
            org,
            admin,
            "tre@example.org",
            "Tre",
            RoleChoice::Custom(RoleId(treasurer)),
        ),
        request(
            org,
            admin,
            "tre2@example.org",
            "Tre",
            RoleChoice::Custom(RoleId(treasurer)),
        ),
        request(
            org,
            admin,
            "who@example.org",
            "Who",
            RoleChoice::Custom(RoleId(Uuid::now_v7())),
        ),
    ];
    // Enough more to need several multi-row inserts.
    for i in 0..300 {
        reqs.push(request(
            org,
            admin,
            &format!("p{i}@example.org"),
            "Pat",
            builtin(BuiltinRole::Volunteer),
        ));
    }
    let txn = db.db.begin_for_org(org).await.unwrap();
    let outcomes = add_members_in(&txn, &ctx(admin), &Notices::none(), reqs)
        .await
        .unwrap();
    txn.commit().await.unwrap();

    let kinds: Vec<String> = outcomes.iter().map(kind).collect();
    assert_eq!(
        kinds[..7],
        [
            "added",
            "added",
            "already_member",
            "already_invited",
            "added",
            "role_full",
            "unknown_role"
        ]
    );
    assert!(kinds[7..].iter().all(|k| k == "added"), "{kinds:?}");
    let added: Vec<_> = outcomes.into_iter().filter_map(Result::ok).collect();
    assert_eq!(added.len(), 303);
    // The address with an account is invited exactly like the others: what was typed,
    // nothing of the account.
    let with_account = &added[1];
    assert_eq!(with_account.email.as_str(), email_of(account));
    assert_eq!(with_account.profile.first_name.as_str(), "Typed");
    assert_eq!(with_account.role.rank(), BuiltinRole::CommitteeLead);
    assert_eq!(with_account.status, InvitationStatus::Pending);
    assert_eq!(with_account.invited_by, Some(UserId::from_uuid(admin)));
    assert_eq!(
        added[0].profile.phone.as_deref(),
        Some("555-0100"),
        "trimmed"
    );
    assert_eq!(
        added[2].role.rank(),
        BuiltinRole::BoardMember,
        "the treasurer"
    );

    // Stored: the invitations; no membership, no account.
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM memberships WHERE org_id = ?",
            vec![org.into()]
        )
        .await,
        2
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM invitations WHERE org_id = ? AND status = 'pending' \
             AND committee = 'Garden' AND phone = '555-0100'",
            vec![org.into()]
        )
        .await,
        303
    );
    assert_eq!(
        db.count("SELECT COUNT(*) AS n FROM users", vec![]).await,
        3,
        "no account is created"
    );

    // One `member.invite` event per invitation, in order, on an intact chain, holding
    // what was typed.
    let events = member_invites(db, org).await;
    assert_eq!(events.len(), 303);
    let audited: Vec<String> = events.iter().map(|e| e.body.entity_id.clone()).collect();
    let expected: Vec<String> = added.iter().map(|a| a.id.to_string()).collect();
    assert_eq!(audited, expected);
    let logged = events[1].body.new_value.as_ref().unwrap();
    assert_eq!(logged["profile"]["first_name"], "Typed");
    assert!(
        !logged.to_string().contains(&account.to_string()),
        "the account's id is not logged"
    );
}

async fn a_lapsed_invitation_makes_room_for_a_new_one(env: &Env) {
    let db = &env.0;
    let (org, admin) = (Uuid::now_v7(), Uuid::now_v7());
    db.org(org, None, None).await;
    db.active_member(org, admin, "admin").await;
    let add = |email: &'static str| async move {
        let txn = db.db.begin_for_org(org).await.unwrap();
        let out = add_members_in(
            &txn,
            &ctx(admin),
            &Notices::none(),
            vec![request(
                org,
                admin,
                email,
                "Ana",
                RoleChoice::Builtin(BuiltinRole::Volunteer),
            )],
        )
        .await
        .unwrap()
        .pop()
        .unwrap();
        txn.commit().await.unwrap();
        out
    };
    let first = add("ana@example.org").await.unwrap();
    assert_eq!(kind(&add("ana@example.org").await), "already_invited");
    // Past its expiry: the address can be invited again; the old one is stored expired.
    db.exec(
        "UPDATE invitations SET expires_at = ? WHERE id = ?",
        vec![
            (persistence::now_micros() - time::Duration::DAY).into(),
            first.id.as_uuid().into(),
        ],
    )
    .await;
    let second = add("ana@example.org").await.unwrap();
    assert_ne!(second.id, first.id);
    let statuses = db
        .rows(
            "SELECT status FROM invitations WHERE org_id = ? ORDER BY id",
            vec![org.into()],
        )
        .await
        .iter()
        .map(|r| r.try_get::<String>("", "status").unwrap())
        .collect::<Vec<_>>();
    assert_eq!(statuses, ["expired", "pending"]);
}

async fn the_actor_rank_and_the_org_bind_the_whole_batch(env: &Env) {
    let db = &env.0;
    let (org, other, board) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    db.org(org, None, None).await;
    db.org(other, None, None).await;
    db.active_member(org, board, "board_member").await;
    let builtin = RoleChoice::Builtin;

    let txn = db.db.begin_for_org(org).await.unwrap();
    let outcomes = add_members_in(
        &txn,
        &ctx(board),
        &Notices::none(),
        vec![
            request(
                org,
                board,
                "a@example.org",
                "Al",
                builtin(BuiltinRole::Admin),
            ),
            request(
                org,
                board,
                "b@example.org",
                "Bo",
                builtin(BuiltinRole::BoardMember),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes.iter().map(kind).collect::<Vec<_>>(),
        ["above_own_rank", "added"]
    );

    // Not a member of the other org: every request is refused, nothing written.
    let outcomes = add_members_in(
        &txn,
        &ctx(board),
        &Notices::none(),
        vec![request(
            other,
            board,
            "c@example.org",
            "Cy",
            builtin(BuiltinRole::Volunteer),
        )],
    )
    .await
    .unwrap();
    assert!(matches!(outcomes[..], [Err(AddMemberError::NotFound)]));

    // A batch may not mix orgs.
    let mixed = add_members_in(
        &txn,
        &ctx(board),
        &Notices::none(),
        vec![
            request(
                org,
                board,
                "d@example.org",
                "Di",
                builtin(BuiltinRole::Volunteer),
            ),
            request(
                other,
                board,
                "e@example.org",
                "Ed",
                builtin(BuiltinRole::Volunteer),
            ),
        ],
    )
    .await;
    assert!(mixed.is_err());
    txn.commit().await.unwrap();
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM invitations WHERE org_id = ?",
            vec![org.into()]
        )
        .await,
        1
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM invitations WHERE org_id = ?",
            vec![other.into()]
        )
        .await,
        0
    );
    assert_eq!(member_invites(db, org).await.len(), 1);
}
