#![allow(clippy::unwrap_used, reason = "test code")]

use persistence::DatabaseSettings;

use super::*;

/// A store on a fresh SQLite file (removed with the returned guard).
async fn store() -> (SqlIdempotencyStore, TempDir) {
    let dir = TempDir(std::env::temp_dir().join(format!("ptoc-idem-{}", Uuid::now_v7().simple())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = Database::connect(&DatabaseSettings::sqlite_in(&dir.0))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (SqlIdempotencyStore::new(db), dir)
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scope(caller: &str, key: &str) -> Scope {
    Scope {
        caller: caller.to_owned(),
        route: "POST /api/v2/orgs".to_owned(),
        key: key.to_owned(),
    }
}

fn answer() -> StoredResponse {
    StoredResponse {
        status: 201,
        location: Some("/api/v2/orgs/1".to_owned()),
        body: Some("{\"success\":true}".to_owned()),
    }
}

fn fresh(claim: Claim) -> Attempt {
    match claim {
        Claim::Fresh(a) => a,
        other => panic!("expected a fresh claim, got {other:?}"),
    }
}

#[tokio::test]
async fn a_completed_key_replays_and_refuses_another_body() {
    let (store, _dir) = store().await;
    let now = persistence::now_micros();
    let s = scope("user:a", "k1");
    let attempt = fresh(store.claim(&s, "h1", now).await.unwrap());
    assert_eq!(store.claim(&s, "h1", now).await.unwrap(), Claim::InFlight);
    store.complete(&attempt, &answer()).await.unwrap();
    assert_eq!(
        store.claim(&s, "h1", now).await.unwrap(),
        Claim::Replay(answer())
    );
    assert_eq!(store.claim(&s, "h2", now).await.unwrap(), Claim::Mismatch);
    // Another caller, or another route, has its own key.
    fresh(
        store
            .claim(&scope("user:b", "k1"), "h1", now)
            .await
            .unwrap(),
    );
    let other_route = Scope {
        route: "POST /api/v2/districts".to_owned(),
        ..s.clone()
    };
    fresh(store.claim(&other_route, "h1", now).await.unwrap());
}

#[tokio::test]
async fn a_released_key_runs_again() {
    let (store, _dir) = store().await;
    let now = persistence::now_micros();
    let s = scope("user:a", "k1");
    let attempt = fresh(store.claim(&s, "h1", now).await.unwrap());
    store.release(&attempt).await.unwrap();
    let again = fresh(store.claim(&s, "h2", now).await.unwrap());
    // The first attempt lost the key: completing it changes nothing.
    store.complete(&attempt, &answer()).await.unwrap();
    assert_eq!(store.claim(&s, "h2", now).await.unwrap(), Claim::InFlight);
    store.complete(&again, &answer()).await.unwrap();
    assert_eq!(
        store.claim(&s, "h2", now).await.unwrap(),
        Claim::Replay(answer())
    );
}

#[tokio::test]
async fn expired_keys_and_dead_claims_are_taken_over_and_purged() {
    let (store, _dir) = store().await;
    let then = persistence::now_micros();
    let s = scope("user:a", "k1");
    let attempt = fresh(store.claim(&s, "h1", then).await.unwrap());
    store.complete(&attempt, &answer()).await.unwrap();
    let almost = then + RETENTION - time::Duration::seconds(1);
    assert_eq!(
        store.claim(&s, "h2", almost).await.unwrap(),
        Claim::Mismatch
    );
    let later = then + RETENTION;
    fresh(store.claim(&s, "h2", later).await.unwrap());

    // A claim whose request died is taken over after the lease.
    let dead = scope("user:a", "k2");
    fresh(store.claim(&dead, "h1", then).await.unwrap());
    assert_eq!(
        store
            .claim(&dead, "h1", then + time::Duration::seconds(10))
            .await
            .unwrap(),
        Claim::InFlight
    );
    fresh(
        store
            .claim(&dead, "h1", then + IN_FLIGHT_LEASE)
            .await
            .unwrap(),
    );

    // The sweep removes what is older than the retention.
    let old = scope("user:a", "k3");
    fresh(store.claim(&old, "h1", then - RETENTION).await.unwrap());
    assert_eq!(
        store.purge(then - time::Duration::hours(1)).await.unwrap(),
        1
    );
    fresh(store.claim(&old, "h1", then).await.unwrap());
}

#[tokio::test]
async fn forgetting_a_caller_removes_only_their_keys() {
    let (store, _dir) = store().await;
    let now = persistence::now_micros();
    let mine = fresh(
        store
            .claim(&scope("user:a", "k1"), "h1", now)
            .await
            .unwrap(),
    );
    store.complete(&mine, &answer()).await.unwrap();
    fresh(
        store
            .claim(&scope("user:a", "k2"), "h1", now)
            .await
            .unwrap(),
    );
    let theirs = fresh(
        store
            .claim(&scope("user:b", "k1"), "h1", now)
            .await
            .unwrap(),
    );
    store.complete(&theirs, &answer()).await.unwrap();
    assert_eq!(store.forget_caller("user:a").await.unwrap(), 2);
    fresh(
        store
            .claim(&scope("user:a", "k1"), "h1", now)
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .claim(&scope("user:b", "k1"), "h1", now)
            .await
            .unwrap(),
        Claim::Replay(answer())
    );
}
