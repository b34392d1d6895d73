//! Tenancy domain: organizations (PTOs/PTAs, the primary tenant), users and their
//! memberships, with the ports the adapters implement.
//!
//! This crate is pure: it depends on no framework, database or cache crate. Values are
//! parsed once at the edge into types that cannot hold invalid states
//! ([`Email`], [`SignupCode`], [`PersonName`]), and persistence is reached only through
//! the port traits in [`ports`].

pub mod directory;
mod email;
pub mod erasure;
mod invitation;
mod language;
mod membership;
mod names;
mod org;
mod password;
pub mod ports;
pub mod privacy;
pub mod rules;
pub mod search;
pub mod service;
mod session;
mod signup_code;
pub mod text;
mod token;
mod user;

pub use email::{Email, EmailError};
pub use ids::{InvitationId, OrgId, UserId};
pub use invitation::{
    DEFAULT_INVITATION_TTL, Invitation, InvitationEnded, InvitationStatus, InvitedProfile,
};
pub use language::{LANGUAGE_TAG_PATTERN, Language, LanguageError};
pub use membership::{Child, CustomRole, Membership, MembershipStatus, RoleAssignment, RoleId};
pub use names::{NameError, PersonName};
pub use org::{OrgKind, OrgStatus, Organization};
pub use password::{Password, PasswordError};
pub use session::{
    CHALLENGE_MAX_FAILURES, RefreshRefused, SecondFactorRefused, Session, totp_step_is_fresh,
};
pub use signup_code::{SignupCode, SignupCodeError};
pub use token::{OneTimeToken, PASSWORD_RESET_TTL, TokenPurpose, TokenRefused, VERIFY_EMAIL_TTL};
pub use user::{User, UserStatus};
