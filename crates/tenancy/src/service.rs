//! The tenancy service: use cases over the ports.

use crate::ports::{
    AuditContext, BoxError, CreateUserError, CreateUserRequest, PasswordHasher, UserRepository,
};
use crate::{Email, Password, PersonName, User};

/// A request to open an account.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// Sign-in address.
    pub email: Email,
    /// Chosen password.
    pub password: Password,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// The language messages to them are written in (`None`: English).
    pub locale: Option<crate::Language>,
}

/// Why an account could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The e-mail address is taken.
    #[error("an account with email {email} already exists")]
    EmailTaken {
        /// The conflicting address.
        email: Email,
    },
    /// Storage or hashing failed.
    #[error("registration failed")]
    Unexpected(#[source] BoxError),
}

/// Account use cases, generic over the ports so tests can use mocks.
#[derive(Debug, Clone)]
pub struct AccountService<R, H> {
    users: R,
    hasher: H,
}

impl<R: UserRepository, H: PasswordHasher> AccountService<R, H> {
    /// A service over the given ports.
    pub fn new(users: R, hasher: H) -> Self {
        Self { users, hasher }
    }

    /// The user repository.
    pub fn users(&self) -> &R {
        &self.users
    }

    /// Opens an account: hashes the password and stores the user.
    pub async fn register(
        &self,
        ctx: &AuditContext,
        req: RegisterRequest,
    ) -> Result<User, RegisterError> {
        let password_hash = self
            .hasher
            .hash(req.password)
            .await
            .map_err(RegisterError::Unexpected)?;
        self.users
            .create_user(
                ctx,
                CreateUserRequest {
                    email: req.email,
                    first_name: req.first_name,
                    last_name: req.last_name,
                    password_hash,
                    locale: req.locale,
                },
            )
            .await
            .map_err(|e| match e {
                CreateUserError::Duplicate { email } => RegisterError::EmailTaken { email },
                CreateUserError::Unexpected(e) => RegisterError::Unexpected(e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockPasswordHasher, MockUserRepository};
    use crate::{UserId, UserStatus};

    fn ctx() -> AuditContext {
        AuditContext {
            actor: audit::Actor::System,
            request: audit::RequestMeta::default(),
        }
    }

    fn request() -> RegisterRequest {
        RegisterRequest {
            email: Email::parse("a@b.org").expect("email"),
            password: Password::parse("long enough secret".into()).expect("password"),
            first_name: PersonName::parse("Ann").expect("name"),
            last_name: PersonName::parse("Lee").expect("name"),
            locale: None,
        }
    }

    #[tokio::test]
    async fn stores_the_hash_never_the_password() {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Box::pin(async { Ok("$argon2id$fake".to_owned()) }));
        let mut users = MockUserRepository::new();
        users
            .expect_create_user()
            .withf(|_, r| r.password_hash == "$argon2id$fake")
            .returning(|_, r| {
                Box::pin(async move {
                    Ok(User {
                        id: UserId::new(),
                        email: r.email,
                        first_name: r.first_name,
                        last_name: r.last_name,
                        status: UserStatus::Active,
                        created_at: time::OffsetDateTime::UNIX_EPOCH,
                        phone: None,
                        last_active_at: None,
                    })
                })
            });
        let user = AccountService::new(users, hasher)
            .register(&ctx(), request())
            .await
            .expect("registered");
        assert_eq!(user.email.as_str(), "a@b.org");
    }

    #[tokio::test]
    async fn duplicate_email_is_a_domain_error() {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .returning(|_| Box::pin(async { Ok("h".to_owned()) }));
        let mut users = MockUserRepository::new();
        users.expect_create_user().returning(|_, r| {
            Box::pin(async move { Err(CreateUserError::Duplicate { email: r.email }) })
        });
        let err = AccountService::new(users, hasher)
            .register(&ctx(), request())
            .await
            .expect_err("duplicate");
        assert!(matches!(err, RegisterError::EmailTaken { .. }));
    }
}
