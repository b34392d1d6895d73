//! Database migrations: one set that runs on both PostgreSQL (production) and SQLite
//! (the embedded default). Backend-specific extras (row-level security, trigram
//! indexes) are added inside a migration behind a backend check, so the two schemas
//! agree on every table, column, key and constraint.
//!
//! Every tenant-owned table carries its tenant id (`org_id` or `district_id`) as the
//! leading column of its keys and indexes, so isolation is checkable and the schema can
//! later be distributed by tenant.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_users;
mod m20261122_000002_create_tenancy;
mod m20261122_000003_create_auth;
mod m20261122_000004_create_permissions;
mod m20261122_000005_create_audit;
mod m20261122_000006_create_audit_retention;
mod m20261122_000007_row_level_security;
mod m20261122_000008_member_directory;
mod m20261122_000009_jobs;
mod m20261206_000010_invitations;
mod m20261206_000011_school_settings_rls;
mod m20261206_000020_mail_outbox;
mod m20261206_000030_account_security;
mod m20261206_000040_account_tokens;
mod m20261206_000050_account_preferences;
mod m20261206_000060_grant_windows_and_template_versions;
mod m20261206_000080_directory_privacy;
mod m20261206_000090_audit_personal_data;
mod m20261206_000095_resource_versions;
mod m20261206_000110_personal_data_exports;
mod m20261206_000120_member_retention;
mod m20261206_000130_children_data_and_confirmation;
mod m20261206_000140_idempotency_keys;
mod m20261206_000170_notifications;
mod m20261206_000180_webhooks;
mod m20261206_000190_webhook_retry_wake;
mod m20261207_000200_audit_chain_time;

pub use m20261122_000007_row_level_security::TENANT_TABLES;
pub use m20261122_000009_jobs::JOB_TABLES;
pub use m20261206_000011_school_settings_rls::SCHOOL_TABLES;
pub use m20261206_000020_mail_outbox::MAIL_TABLES;
pub use m20261206_000080_directory_privacy::PRIVACY_TABLES;
pub use m20261206_000090_audit_personal_data::AUDIT_KEY_TABLES;
pub use m20261206_000110_personal_data_exports::PERSONAL_EXPORT_TABLES;
pub use m20261206_000120_member_retention::MEMBER_RETENTION_TABLES;
pub use m20261206_000170_notifications::NOTIFICATION_TABLES;
pub use m20261206_000180_webhooks::WEBHOOK_TABLES;

/// The ordered list of all migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_users::Migration),
            Box::new(m20261122_000002_create_tenancy::Migration),
            Box::new(m20261122_000003_create_auth::Migration),
            Box::new(m20261122_000004_create_permissions::Migration),
            Box::new(m20261122_000005_create_audit::Migration),
            Box::new(m20261122_000006_create_audit_retention::Migration),
            Box::new(m20261122_000007_row_level_security::Migration),
            Box::new(m20261122_000008_member_directory::Migration),
            Box::new(m20261122_000009_jobs::Migration),
            Box::new(m20261206_000010_invitations::Migration),
            Box::new(m20261206_000011_school_settings_rls::Migration),
            Box::new(m20261206_000020_mail_outbox::Migration),
            Box::new(m20261206_000030_account_security::Migration),
            Box::new(m20261206_000040_account_tokens::Migration),
            Box::new(m20261206_000050_account_preferences::Migration),
            Box::new(m20261206_000060_grant_windows_and_template_versions::Migration),
            Box::new(m20261206_000080_directory_privacy::Migration),
            Box::new(m20261206_000090_audit_personal_data::Migration),
            Box::new(m20261206_000095_resource_versions::Migration),
            Box::new(m20261206_000110_personal_data_exports::Migration),
            Box::new(m20261206_000120_member_retention::Migration),
            Box::new(m20261206_000130_children_data_and_confirmation::Migration),
            Box::new(m20261206_000140_idempotency_keys::Migration),
            Box::new(m20261206_000170_notifications::Migration),
            Box::new(m20261206_000180_webhooks::Migration),
            Box::new(m20261206_000190_webhook_retry_wake::Migration),
            Box::new(m20261207_000200_audit_chain_time::Migration),
        ]
    }
}
