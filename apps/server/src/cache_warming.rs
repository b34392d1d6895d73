//! Cache warming at start: in the background (readiness never waits for it), the
//! permission tables of the orgs whose members signed in during the last day, and those
//! members' contexts, are loaded into the permission cache, so the first checks after a
//! deploy or a restart are hits. Bounded by `CACHE_WARM_MAX_ORGS`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use persistence::Database;

use crate::authz::Authz;

/// How far back activity counts.
const ACTIVE_WITHIN: time::Duration = time::Duration::days(1);
/// Members warmed per org at most (the most recently signed-in first).
const MEMBERS_PER_ORG: u64 = 50;

/// How warm the cache is (for `/metrics`).
#[derive(Debug, Default)]
pub struct Warming {
    orgs: AtomicU64,
    members: AtomicU64,
    done: AtomicBool,
}

impl Warming {
    /// Orgs whose permission table was loaded so far.
    #[must_use]
    pub fn orgs(&self) -> u64 {
        self.orgs.load(Ordering::Relaxed)
    }

    /// Member contexts loaded so far.
    #[must_use]
    pub fn members(&self) -> u64 {
        self.members.load(Ordering::Relaxed)
    }

    /// Whether warming has finished (or was skipped).
    #[must_use]
    pub fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }
}

/// Starts warming in the background on the current runtime; `max_orgs == 0` only marks
/// it done.
/// Progress goes to `warming`.
pub fn spawn(db: Database, authz: Arc<Authz>, warming: Arc<Warming>, max_orgs: u32) {
    actix_web::rt::spawn(async move {
        warm(&db, &authz, &warming, max_orgs).await;
        warming.done.store(true, Ordering::Relaxed);
    });
}

async fn warm(db: &Database, authz: &Authz, warming: &Warming, max_orgs: u32) {
    if max_orgs == 0 {
        return;
    }
    let since = persistence::now_micros() - ACTIVE_WITHIN;
    let limit = u64::from(max_orgs).saturating_mul(MEMBERS_PER_ORG);
    let active = match tenancy_store::recently_active_members(db, since, limit).await {
        Ok(active) => active,
        Err(e) => {
            tracing::warn!(error = %e, "cache warming: active orgs not read; skipped");
            return;
        }
    };
    let started = std::time::Instant::now();
    let cache = authz.cache();
    let mut orgs: HashSet<uuid::Uuid> = HashSet::new();
    let mut per_org: std::collections::HashMap<uuid::Uuid, u64> = Default::default();
    for (org, user) in active {
        if !orgs.contains(&org) {
            if orgs.len() >= max_orgs as usize {
                continue;
            }
            if let Err(e) = cache.compiled_org(org, None).await {
                tracing::warn!(error = %e, "cache warming stopped");
                break;
            }
            orgs.insert(org);
            warming.orgs.fetch_add(1, Ordering::Relaxed);
        }
        let n = per_org.entry(org).or_default();
        if *n >= MEMBERS_PER_ORG {
            continue;
        }
        *n += 1;
        if cache.member(org, user, None).await.is_ok() {
            warming.members.fetch_add(1, Ordering::Relaxed);
        }
    }
    tracing::info!(
        orgs = warming.orgs(),
        members = warming.members(),
        took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "cache warmed"
    );
}
