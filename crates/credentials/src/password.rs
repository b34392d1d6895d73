use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tenancy::Password;
use tenancy::ports::{BoxError, PasswordHasher};
use tokio::sync::Semaphore;

/// How many hashes may run at once: one per core the process may use.
fn parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// argon2id password hashing (RFC 9106), run on the blocking pool so request threads
/// never stall on it.
///
/// At most one hash per core runs at a time ([`Argon2Hasher::free_slots`]); the rest
/// wait their turn. Each hash holds its memory cost (19 MiB) while it runs: a burst of
/// sign-ins would otherwise start a hash on every blocking thread at once (up to 512),
/// multiplying the server's memory without finishing any sooner on the same cores.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
    slots: Arc<Semaphore>,
}

impl Argon2Hasher {
    /// OWASP's recommended argon2id parameters: 19 MiB memory, 2 iterations, 1 lane.
    pub fn recommended() -> Result<Self, BoxError> {
        Ok(Self {
            params: Params::new(19 * 1024, 2, 1, None).map_err(|e| e.to_string())?,
            slots: Arc::new(Semaphore::new(parallelism())),
        })
    }

    /// Cheap parameters for tests only (hashing still real, just fast).
    pub fn fast_for_tests() -> Result<Self, BoxError> {
        Ok(Self {
            params: Params::new(Params::MIN_M_COST, 1, 1, None).map_err(|e| e.to_string())?,
            slots: Arc::new(Semaphore::new(parallelism())),
        })
    }

    /// How many more hashes could start now (of one per core; the rest wait).
    #[must_use]
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// Runs `work` on the blocking pool once a slot is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, BoxError> + Send + 'static,
    ) -> Result<T, BoxError> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|e| BoxError::from(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| BoxError::from(e.to_string()))?
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: Password) -> Result<String, BoxError> {
        let argon = self.argon();
        self.run(move || {
            argon
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| BoxError::from(e.to_string()))
        })
        .await
    }

    async fn verify(&self, password: String, phc: String) -> Result<bool, BoxError> {
        let argon = self.argon();
        self.run(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| BoxError::from(e.to_string()))?;
            Ok(argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = Argon2Hasher::fast_for_tests().expect("params");
        let pw = Password::parse("a long passphrase".into()).expect("pw");
        let phc = h.hash(pw).await.expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            h.verify("a long passphrase".into(), phc.clone())
                .await
                .expect("v")
        );
        assert!(!h.verify("wrong passphrase!".into(), phc).await.expect("v"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_there_are_slots() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Condvar, Mutex};
        let h = Argon2Hasher::fast_for_tests().expect("params");
        let slots = h.free_slots();
        assert_eq!(slots, parallelism());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        // Every job waits at the gate until the test opens it.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let started = Arc::new(tokio::sync::Notify::new());
        let tasks: Vec<_> = (0..4 * slots + 4)
            .map(|_| {
                let (h, running, most) = (h.clone(), running.clone(), most.clone());
                let (gate, started) = (gate.clone(), started.clone());
                tokio::spawn(async move {
                    h.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        started.notify_one();
                        let (open, cv) = &*gate;
                        let mut open = open.lock().map_err(|e| e.to_string())?;
                        while !*open {
                            open = cv.wait(open).map_err(|e| e.to_string())?;
                        }
                        drop(open);
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        while running.load(Ordering::SeqCst) < slots {
            started.notified().await;
        }
        // Every slot is taken by a waiting job: the others cannot start.
        assert_eq!(h.free_slots(), 0);
        assert_eq!(running.load(Ordering::SeqCst), slots);
        {
            let (open, cv) = &*gate;
            *open.lock().expect("gate") = true;
            cv.notify_all();
        }
        for t in tasks {
            t.await.expect("join").expect("run");
        }
        assert_eq!(most.load(Ordering::SeqCst), slots);
        // Every slot is free again.
        assert_eq!(h.free_slots(), slots);
    }
}
