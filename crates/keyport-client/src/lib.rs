//! The Rust SDK for Keyport.
//!
//! - [`KeyportClient`]: typed calls over one endpoint or several replicas
//!   ([`KeyportClient::builder_for`]), with per-attempt deadlines, failover
//!   away from replicas that do not answer, retries of idempotent calls on
//!   another replica, and errors whose [`Reason`] is an enum. Calls that
//!   change something are never replayed once they may have reached a server.
//! - [`SessionCache`]: a bounded cache of validated sessions, fed by
//!   `WatchSessionEvents` so that revocations reach it at once; it serves
//!   nothing while its event stream is down, resubscribes through another
//!   replica when its own stops answering, and remembers refused tokens
//!   briefly so junk cookies do not each cost a call.
//! - [`web`]: the framework-free core of the Axum and Actix-web middleware:
//!   token extraction, route rules, cookies, CSRF and redirect decisions.

mod access_tokens;
mod api_keys;
mod authorization;
mod cache;
mod client;
mod clock;
mod endpoints;
mod error;
mod factors;
pub mod grpc;
mod organizations;
mod passkeys;
mod principal;
mod refusals;
pub mod web;

pub use access_tokens::{
    AccessTokenClaims, AccessTokenVerifier, Actor, IssuedAccessToken, JwksDocument, VerifierConfig, VerifyError,
};
pub use api_keys::{ApiKeyInfo, CreatedApiKey, NewApiKey};
pub use authorization::Authorized;
pub use cache::{CacheConfig, CacheStats, Decision, SessionCache};
pub use client::{
    ClientBuilder, ClientInfo, EmailProof, FactorAnswer, FinishedOAuth, KeyportClient, OAuthCallback,
    SecondFactorChallenge, SignInOutcome, SignUpOutcome, SignedIn, StartedEmailSignIn, StartedOAuth, is_traceparent,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Reason};
pub use factors::{FactorStatus, TotpEnrollment};
pub use organizations::{InvitationInfo, Member, OrganizationInfo};
pub use passkeys::{Passkey, PasskeyCeremony};
pub use principal::{ApiKeyCaller, Assurance, Principal, SessionSummary, ValidatedSession};
