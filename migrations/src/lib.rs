//! Keyport's database schema, as SeaORM migrations.
//!
//! Migrations describe tables with the schema builder only and never import
//! the store's entities: an entity may change later, a shipped migration
//! must not. Times are `BIGINT` milliseconds since the Unix epoch, which
//! SQLite and PostgreSQL store and compare alike.

use sea_orm_migration::prelude::*;

mod m0001_identity;
mod m0002_oauth;
mod m0003_mail;
mod m0004_email_sign_in;
mod m0005_throttling;
mod m0006_second_factors;
mod m0007_passkeys;
mod m0008_bans;
mod m0009_impersonation;
mod m0010_roles;
mod m0011_audit_targets;
mod m0012_api_keys;
mod m0013_organizations;
mod m0014_signing_keys;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_identity::Migration),
            Box::new(m0002_oauth::Migration),
            Box::new(m0003_mail::Migration),
            Box::new(m0004_email_sign_in::Migration),
            Box::new(m0005_throttling::Migration),
            Box::new(m0006_second_factors::Migration),
            Box::new(m0007_passkeys::Migration),
            Box::new(m0008_bans::Migration),
            Box::new(m0009_impersonation::Migration),
            Box::new(m0010_roles::Migration),
            Box::new(m0011_audit_targets::Migration),
            Box::new(m0012_api_keys::Migration),
            Box::new(m0013_organizations::Migration),
            Box::new(m0014_signing_keys::Migration),
        ]
    }
}
