//! SeaORM entities, one module per table. Times are milliseconds since the
//! Unix epoch; ids are text.

pub mod account;
pub mod api_key;
pub mod audit_event;
pub mod backup_code;
pub mod email_sign_in;
pub mod email_token;
pub mod invitation;
pub mod mail_outbox;
pub mod membership;
pub mod oauth_flow;
pub mod organization;
pub mod passkey;
pub mod passkey_ceremony;
pub mod password;
pub mod role;
pub mod service_account;
pub mod session;
pub mod sign_in_challenge;
pub mod signing_key;
pub mod totp_factor;
pub mod user;
