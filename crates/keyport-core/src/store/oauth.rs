//! Storage of the OAuth area: started flows and linked accounts.

use async_trait::async_trait;

use super::StoreResult;
use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    oauth::{LinkedAccount, OAuthFlow},
    session::Session,
    user::{User, UserId},
};

/// Started OAuth flows and the external identities linked to users.
#[async_trait]
pub trait OAuthStore: Send + Sync + 'static {
    /// Stores a started OAuth flow.
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()>;

    /// Removes and returns the flow with this state hash: a flow can be
    /// taken once, however many callers race for it.
    async fn take_oauth_flow(&self, state_hash: &[u8; 32]) -> StoreResult<Option<OAuthFlow>>;

    /// Deletes the flows past their expiry at `now`; returns how many.
    async fn delete_expired_oauth_flows(&self, now: Timestamp) -> StoreResult<u64>;

    /// The linked account for an external identity, with its user.
    async fn find_linked_account(&self, provider_id: &str, subject: &str)
    -> StoreResult<Option<(LinkedAccount, User)>>;

    /// Creates a user without a password, their linked account and a first
    /// session. [`StoreError::Conflict`](super::StoreError::Conflict) when
    /// the email or identity is taken.
    async fn create_oauth_user(
        &self,
        user: &User,
        account: &LinkedAccount,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Links an external identity to an existing user.
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the
    /// identity is linked already, [`StoreError::NotFound`](super::StoreError::NotFound)
    /// when the user is gone.
    async fn link_account(&self, account: &LinkedAccount, audit: &AuditEvent) -> StoreResult<()>;

    /// The accounts linked to a user, oldest first.
    async fn list_linked_accounts(&self, user_id: UserId) -> StoreResult<Vec<LinkedAccount>>;

    /// Unlinks an account unless it is the user's last way to sign in (no
    /// password and no other account).
    async fn unlink_account(
        &self,
        user_id: UserId,
        provider_id: &str,
        subject: &str,
        audit: &AuditEvent,
    ) -> StoreResult<UnlinkOutcome>;
}

/// What [`OAuthStore::unlink_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkOutcome {
    /// The account was unlinked.
    Unlinked,
    /// The user has no such account.
    NotFound,
    /// It is the user's last way to sign in; nothing changed.
    LastSignInMethod,
}
