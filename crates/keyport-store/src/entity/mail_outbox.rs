//! The `mail_outbox` table.

use sea_orm::entity::prelude::*;

/// A row of `mail_outbox`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    /// Message id (UUIDv7, time-ordered).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Message kind (`verify_email`, `reset_password`, ...).
    pub kind: String,
    /// Recipient address.
    pub recipient: String,
    /// Rendered subject.
    pub subject: String,
    /// Rendered text part; emptied once sent.
    pub text_body: String,
    /// Rendered HTML part; emptied once sent.
    pub html_body: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// When a courier may (next) take it; a claim pushes it past the lease.
    pub next_attempt_at: i64,
    /// Queue time.
    pub created_at: i64,
    /// Delivery time.
    pub sent_at: Option<i64>,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// `mail_outbox` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
