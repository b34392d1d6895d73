//! SeaORM adapter of the tenancy ports (users, sessions, organizations, memberships,
//! custom roles) on PostgreSQL and SQLite.
//!
//! Every write runs in one database transaction together with its audit event
//! (`audit_store::append_event`), so a change and its record commit or roll back
//! together. Changes guarded by an org-wide invariant (the last admin, a role's
//! maximum holders) first lock the org row (`UPDATE organizations SET version =
//! version …`: a row lock on PostgreSQL, the write lock on SQLite), then re-check the
//! rule from `tenancy::rules` on what they read — so concurrent changes cannot break it.

mod account_security;
mod account_tokens;
mod add_members;
mod api_keys;
mod convert;
mod directory;
mod entity;
pub mod erasure;
mod invitations;
mod member_account;
mod notices;
mod orgs;
pub mod personal_data;
mod privacy;
mod roles;
mod sessions;
mod users;

pub use account_security::{Refreshed, SeaOrmAccountSecurity, SecondFactor, TotpEnrolment};
pub use account_tokens::SeaOrmAccountTokens;
pub use add_members::{add_member_in, add_members_in};
pub use api_keys::SeaOrmApiKeyRepository;
pub use directory::{IndexSource, RANKED_CAP, SEARCH_CANDIDATES, SeaOrmMemberDirectory};
pub use notices::{Notice, Notices, Notifier, Recipient};
pub use orgs::SeaOrmOrgRepository;
pub use privacy::SeaOrmPrivacy;
pub use sessions::{SeaOrmSessionRepository, recently_active_members};
pub use users::SeaOrmUserRepository;
