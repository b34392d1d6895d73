use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tenancy::Password;
use tenancy::ports::{BoxError, PasswordHasher};

/// argon2id password hashing (RFC 9106), run on the blocking pool so request threads
/// never stall on it.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    params: Params,
}

impl Argon2Hasher {
    /// OWASP's recommended argon2id parameters: 19 MiB memory, 2 iterations, 1 lane.
    pub fn recommended() -> Result<Self, BoxError> {
        Ok(Self {
            params: Params::new(19 * 1024, 2, 1, None).map_err(|e| e.to_string())?,
        })
    }

    /// Cheap parameters for tests only (hashing still real, just fast).
    pub fn fast_for_tests() -> Result<Self, BoxError> {
        Ok(Self {
            params: Params::new(Params::MIN_M_COST, 1, 1, None).map_err(|e| e.to_string())?,
        })
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: Password) -> Result<String, BoxError> {
        let argon = self.argon();
        tokio::task::spawn_blocking(move || {
            argon
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| BoxError::from(e.to_string()))
        })
        .await
        .map_err(|e| BoxError::from(e.to_string()))?
    }

    async fn verify(&self, password: String, phc: String) -> Result<bool, BoxError> {
        let argon = self.argon();
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&phc).map_err(|e| BoxError::from(e.to_string()))?;
            Ok(argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| BoxError::from(e.to_string()))?
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
}
