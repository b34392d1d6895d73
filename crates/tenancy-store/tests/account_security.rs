//! Refresh tokens and second factors under concurrency, on SQLite and (when
//! `TEST_DATABASE_URL` is set) PostgreSQL: a refresh token or a TOTP time step is spent
//! by exactly one of several concurrent requests, and a refresh token presented twice
//! revokes its whole session.

#![allow(clippy::unwrap_used, missing_docs)]

use tenancy::ports::{AuditContext, NewSession, SessionRepository};
use tenancy::{RefreshRefused, SecondFactorRefused, UserId};
use tenancy_store::{SeaOrmAccountSecurity, SeaOrmSessionRepository, SecondFactor};
use test_support::{Backend, ScratchDb, TestEnv};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

struct Env(ScratchDb);

impl TestEnv for Env {
    async fn open(backend: Backend) -> Option<Self> {
        Some(Self(ScratchDb::open(backend, "ptoc_as", 8).await?))
    }

    async fn finish(self) {
        self.0.finish().await;
    }
}

test_support::both_backends!(crate::Env; concurrent_refreshes_spend_a_token_once_and_the_loser_revokes_the_family, a_totp_step_is_spent_by_one_of_concurrent_sign_ins);

fn ctx(user: Uuid) -> AuditContext {
    AuditContext {
        actor: audit::Actor::User(user),
        request: audit::RequestMeta::default(),
    }
}

fn later() -> OffsetDateTime {
    (OffsetDateTime::now_utc() + Duration::days(1))
        .replace_nanosecond(0)
        .unwrap()
}

async fn concurrent_refreshes_spend_a_token_once_and_the_loser_revokes_the_family(env: &Env) {
    let db = &env.0;
    let user = Uuid::now_v7();
    db.user(user, "active", false).await;
    let sessions = SeaOrmSessionRepository::new(db.db.clone());
    let store = SeaOrmAccountSecurity::new(db.db.clone());
    let session = Uuid::now_v7();
    sessions
        .create_session(
            &ctx(user),
            NewSession {
                id: session,
                user_id: UserId::from_uuid(user),
                revocation_id: format!("rev-{session}"),
                expires_at: later(),
                refresh_digest: "a".repeat(64),
                second_factor: false,
                known_device: false,
            },
        )
        .await
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let attempts = (0..4).map(|i| {
        let store = store.clone();
        async move {
            store
                .rotate_refresh(&ctx(user), &"a".repeat(64), format!("{i:064}"), now)
                .await
                .unwrap()
        }
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    // One spends it; the first loser finds it spent and revokes the family; later
    // losers find it spent (reused) or, once the family is revoked, its session ended.
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    let reused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(RefreshRefused::Reused { session: s }) if *s == session))
        .count();
    let ended = outcomes
        .iter()
        .filter(|o| matches!(o, Err(RefreshRefused::Expired)))
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(reused >= 1 && reused + ended == 3, "{outcomes:?}");
    // The reuse revoked the session and every refresh token of it, the winner's too.
    assert!(!sessions.session_is_live(session, now).await.unwrap());
    assert_eq!(
        db.count(
            "SELECT COUNT(*) AS n FROM refresh_tokens WHERE used_at IS NULL",
            vec![]
        )
        .await,
        0
    );
    let winner = outcomes.iter().position(Result::is_ok).unwrap();
    let next = store
        .rotate_refresh(&ctx(user), &format!("{winner:064}"), "b".repeat(64), now)
        .await
        .unwrap();
    assert!(
        matches!(
            next,
            Err(RefreshRefused::Expired | RefreshRefused::Reused { .. })
        ),
        "{next:?}"
    );
}

async fn a_totp_step_is_spent_by_one_of_concurrent_sign_ins(env: &Env) {
    let db = &env.0;
    let user = Uuid::now_v7();
    db.user(user, "active", false).await;
    let store = SeaOrmAccountSecurity::new(db.db.clone());
    let me = UserId::from_uuid(user);
    assert!(
        store
            .begin_totp(&ctx(user), me, "sealed".into())
            .await
            .unwrap()
    );
    let at = |step: u64| move |_: Uuid, _: &str| Some(step);
    store
        .confirm_totp(&ctx(user), me, at(100), vec!["c".repeat(64)])
        .await
        .unwrap()
        .unwrap();
    let expires = later();
    for i in 0..4 {
        store
            .create_challenge(&ctx(user), me, format!("{i:064}"), expires)
            .await
            .unwrap();
    }
    let now = OffsetDateTime::now_utc();
    let attempts = (0..4).map(|i| {
        let store = store.clone();
        async move {
            store
                .complete_challenge(
                    &ctx(user),
                    &format!("{i:064}"),
                    SecondFactor::Totp(at(101)),
                    now,
                )
                .await
                .unwrap()
        }
    });
    let outcomes = futures_util::future::join_all(attempts).await;
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    let reused = outcomes
        .iter()
        .filter(|o| **o == Err(SecondFactorRefused::CodeReused))
        .count();
    assert_eq!((won, reused), (1, 3), "{outcomes:?}");
    // A losing challenge is still live: an older step is refused as reused; the
    // recovery code works once.
    let loser = format!("{:064}", outcomes.iter().position(Result::is_err).unwrap());
    let older = store
        .complete_challenge(&ctx(user), &loser, SecondFactor::Totp(at(99)), now)
        .await
        .unwrap();
    assert_eq!(older, Err(SecondFactorRefused::CodeReused));
    type Check = fn(Uuid, &str) -> Option<u64>;
    let recovered = store
        .complete_challenge(
            &ctx(user),
            &loser,
            SecondFactor::<Check>::Recovery("c".repeat(64)),
            now,
        )
        .await
        .unwrap();
    assert_eq!(recovered, Ok(me));
    let again = store
        .complete_challenge(
            &ctx(user),
            &loser,
            SecondFactor::<Check>::Recovery("c".repeat(64)),
            now,
        )
        .await
        .unwrap();
    assert_eq!(again, Err(SecondFactorRefused::ChallengeExpired));
}
