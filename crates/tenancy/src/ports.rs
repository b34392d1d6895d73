//! Ports: what the tenancy domain needs from storage, in the domain's words.

use std::future::Future;

use crate::{Email, Password, PersonName, User};

/// An adapter's own error, carried opaquely through the domain to the edge (which may
/// downcast it to classify an outage).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request to create a user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUserRequest {
    /// Sign-in address (unique, case-insensitive).
    pub email: Email,
    /// Given name.
    pub first_name: PersonName,
    /// Family name.
    pub last_name: PersonName,
    /// An already-computed password hash (PHC string); the domain never sees passwords.
    pub password_hash: String,
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// An account with this e-mail address exists.
    #[error("an account with email {email} already exists")]
    Duplicate {
        /// The conflicting address.
        email: Email,
    },
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Why a user lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum FindUserError {
    /// Storage failed.
    #[error("storage failure")]
    Unexpected(#[source] BoxError),
}

/// Storage of user accounts.
#[cfg_attr(test, mockall::automock)]
pub trait UserRepository: Send + Sync + 'static {
    /// Creates a user; fails with [`CreateUserError::Duplicate`] if the e-mail is taken.
    fn create_user(
        &self,
        req: CreateUserRequest,
    ) -> impl Future<Output = Result<User, CreateUserError>> + Send;

    /// Finds a user by (normalized) e-mail address.
    fn find_user_by_email(
        &self,
        email: &Email,
    ) -> impl Future<Output = Result<Option<User>, FindUserError>> + Send;
}

/// One-way password hashing (argon2id in the adapter). Async because a good hash is
/// deliberately slow and must not block request threads.
#[cfg_attr(test, mockall::automock)]
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a password into a self-describing PHC string.
    fn hash(&self, password: Password) -> impl Future<Output = Result<String, BoxError>> + Send;

    /// Checks a password against a stored PHC string.
    fn verify(
        &self,
        password: String,
        phc: String,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send;
}
