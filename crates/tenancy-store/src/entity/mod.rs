//! SeaORM entities: this adapter's private view of the tables.

pub(crate) mod account_tokens;
pub(crate) mod api_keys;
pub(crate) mod data_access_log;
pub(crate) mod directory_policies;
pub(crate) mod invitations;
pub(crate) mod member_privacy;
pub(crate) mod memberships;
pub(crate) mod org_roles;
pub(crate) mod organizations;
pub(crate) mod recovery_codes;
pub(crate) mod refresh_tokens;
pub(crate) mod removed_memberships;
pub(crate) mod schools;
pub(crate) mod sessions;
pub(crate) mod sign_in_challenges;
pub(crate) mod totp_credentials;
pub(crate) mod users;
