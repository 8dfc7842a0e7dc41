//! The storage contract: what the domain needs from a database, one trait
//! per area.
//!
//! | area | trait | what it keeps |
//! |---|---|---|
//! | users | [`UserStore`] | users, their passwords and profile |
//! | sessions | [`SessionStore`] | sessions |
//! | OAuth | [`OAuthStore`] | started OAuth flows and linked accounts |
//! | audit | [`AuditStore`] | the audit trail |
//! | mail | [`EmailTokenStore`], [`EmailSignInStore`], [`MailStore`] | one-time email tokens, started email sign-ins, the outbox |
//! | second factors | [`FactorStore`] | authenticator apps, backup codes, sign-in challenges |
//! | passkeys | [`PasskeyStore`] | passkeys and the ceremonies under way |
//! | roles | [`RoleStore`] | roles admins define at run time |
//! | API keys | [`ApiKeyStore`] | API keys and the service accounts that own them |
//! | organizations | [`OrganizationStore`] | organizations, memberships and invitations |
//! | access tokens | [`SigningKeyStore`] | the keys that sign them, sealed |
//! | throttling | [`CounterStore`] | request budgets and failed sign-ins (not part of [`Store`]: see its docs) |
//!
//! [`Store`] is all of them together, plus [`Store::ping`]: one store type
//! (the SQL store in `keyport-store`, or [`memory::MemoryStore`]) implements
//! every area, and each use case imports only the traits of the areas it
//! touches. A new area adds a trait here, a bound on [`Store`], and an
//! implementation in each store.
//!
//! Each method is one atomic unit of work; where an operation touches several
//! rows (sign-up, password change, deletion) the implementation runs it in a
//! transaction, so a failure leaves nothing half-written.
//!
//! Methods that end sessions or change a user take the [`SessionEvent`] that
//! other replicas must hear of, and emit it in the same transaction as the
//! change (PostgreSQL `NOTIFY` is transactional): a change is never committed
//! without its event, and the event is out before the call returns.
//!
//! [`SessionEvent`]: crate::events::SessionEvent

use async_trait::async_trait;

mod api_keys;
mod audit;
mod counters;
mod factors;
mod mail;
pub mod memory;
mod oauth;
mod organizations;
mod passkeys;
mod roles;
mod sessions;
mod signing_keys;
mod users;

pub use api_keys::{ApiKeyStore, KeyRefusal};
pub use audit::{AuditQuery, AuditStore, StoredAudit};
pub use counters::CounterStore;
pub use factors::{FactorStore, TotpFactor};
pub use mail::{EmailChange, EmailSignInStore, EmailTokenStore, MailStore};
pub use oauth::{OAuthStore, UnlinkOutcome};
pub use organizations::{Acceptance, CreateRefusal, MemberChange, OrganizationStore};
pub use passkeys::PasskeyStore;
pub use roles::{RoleStore, StoredRole};
pub use sessions::{SessionBasis, SessionStore};
pub use signing_keys::SigningKeyStore;
pub use users::{Credentials, UserQuery, UserStore};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. the email is taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached, or stayed busy too long.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The user the call is about is gone (deleted by a concurrent call).
    #[error("the user no longer exists")]
    NotFound,
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl From<StoreError> for crate::Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            // The caller's session went with the user.
            StoreError::NotFound => Self::Unauthenticated,
            StoreError::Conflict(cause) | StoreError::Other(cause) => Self::Internal(cause),
        }
    }
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Every area's storage in one: what [`crate::Accounts`] runs on.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + OAuthStore
    + AuditStore
    + EmailTokenStore
    + EmailSignInStore
    + MailStore
    + FactorStore
    + PasskeyStore
    + RoleStore
    + ApiKeyStore
    + OrganizationStore
    + SigningKeyStore
{
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
}

/// What [`crate::Accounts::sweep_expired`] removed, area by area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Sessions past their expiry ([`SessionStore::delete_expired_sessions`]).
    pub sessions: u64,
    /// OAuth flows past theirs ([`OAuthStore::delete_expired_oauth_flows`]).
    pub oauth_flows: u64,
    /// Email tokens past theirs
    /// ([`EmailTokenStore::delete_expired_email_tokens`]).
    pub email_tokens: u64,
    /// Email sign-ins past theirs
    /// ([`EmailSignInStore::delete_expired_email_sign_ins`]).
    pub email_sign_ins: u64,
    /// Sent and failed mails past the retention period
    /// ([`MailStore::delete_mail_before`]).
    pub mails: u64,
    /// Sign-in challenges past theirs
    /// ([`FactorStore::delete_expired_challenges`]).
    pub challenges: u64,
    /// Passkey ceremonies past theirs
    /// ([`PasskeyStore::delete_expired_ceremonies`]).
    pub ceremonies: u64,
    /// Throttling counters with nothing left to limit
    /// ([`CounterStore::delete_idle_counters`]).
    pub counters: u64,
    /// Audit events past the retention period
    /// ([`AuditStore::delete_audit_events_before`]).
    pub audit_events: u64,
    /// API keys expired for longer than they are kept to say so
    /// ([`ApiKeyStore::delete_api_keys_expired_before`]).
    pub api_keys: u64,
    /// Invitations past their expiry
    /// ([`OrganizationStore::delete_invitations_expired_before`]).
    pub invitations: u64,
    /// Access-token signing keys no live token needs
    /// ([`SigningKeyStore::delete_signing_keys_below`]).
    pub signing_keys: u64,
}
