//! Second factors: an authenticator app (TOTP, RFC 6238) with single-use
//! backup codes, passkeys (WebAuthn; also a first factor), the challenge a sign-in answers when the user has one, and
//! the assurance level a session records.
//!
//! The use cases are in `accounts/factors.rs` (enrolment, step-up) and
//! `accounts/challenge.rs` (signing in past the second factor); their
//! storage is [`crate::store::FactorStore`].

use std::time::Duration;

mod backup_codes;
mod challenge;
mod one_time;
mod passkey;
mod sealing;
#[cfg(any(test, feature = "soft-passkey"))]
pub mod soft_passkey;
mod totp;

pub use backup_codes::{BACKUP_CODE_COUNT, BackupCode, backup_code_hash};
pub use challenge::{CHALLENGE_PREFIX, ChallengeToken, MAX_CHALLENGE_ANSWERS, SignInChallenge};
pub use passkey::{
    Assertion, CEREMONY_PREFIX, Ceremony, CeremonyPurpose, CeremonyToken, MAX_PASSKEY_NAME, PasskeyId, PasskeySettings,
    PasskeyUse, Registered, RelyingParty, Started, StoredPasskey,
};
pub use sealing::{FactorKey, FactorKeys, SealedSecret};
pub use totp::{TotpSecret, TotpStep};

/// How strongly a session's user proved who they are (NIST SP 800-63B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Assurance {
    /// One factor: a password, an identity provider or the mailbox.
    #[default]
    Aal1,
    /// A first factor and a second factor.
    Aal2,
}

impl Assurance {
    /// The level as stored (1 or 2).
    pub fn level(self) -> i16 {
        match self {
            Self::Aal1 => 1,
            Self::Aal2 => 2,
        }
    }

    /// The level read back from storage; anything but 2 is the lower one.
    pub fn from_level(level: i16) -> Self {
        if level == 2 { Self::Aal2 } else { Self::Aal1 }
    }
}

/// A kind of second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// A code from an authenticator app.
    Totp,
    /// One of the backup codes.
    BackupCode,
    /// A registered passkey.
    Passkey,
}

/// A second factor's answer, as typed.
#[derive(Debug, Clone, Copy)]
pub enum FactorAnswer<'a> {
    /// The six-digit code of the authenticator app.
    Totp(&'a str),
    /// One of the backup codes.
    BackupCode(&'a str),
    /// A passkey's answer (`PublicKeyCredential` JSON) to the request
    /// options of `ceremony`, or of the sign-in challenge when `None`.
    Passkey {
        /// The step-up ceremony (`kpk_...`) the options came with.
        ceremony: Option<&'a str>,
        /// The authenticator's answer.
        credential: &'a str,
    },
}

/// A checked second factor, to be used up in the same transaction as what
/// it grants (a session, a step-up): a cancelled call then uses up nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorUse {
    /// The authenticator app's code of this step: the user's latest used
    /// step becomes it, if it is still later than the last one.
    TotpStep(TotpStep),
    /// The unused backup code with this hash, used up at `at`.
    BackupCode {
        /// SHA-256 of the code.
        hash: [u8; 32],
        /// When it is used.
        at: crate::clock::Timestamp,
    },
    /// A passkey's answer: its counter and flags move forward, if no racing
    /// answer moved them first.
    Passkey(Box<PasskeyUse>),
}

/// Rules of the second factors.
#[derive(Debug, Clone)]
pub struct FactorSettings {
    /// The name authenticator apps show for the account (`otpauth` issuer).
    pub issuer: String,
    /// How recent the last proof of a user with a second factor must be
    /// for a sensitive call (and for anyone's `EnrollTotp`).
    pub fresh_for: Duration,
    /// How long a sign-in challenge works.
    pub challenge_ttl: Duration,
    /// How long an enrolment waits for its first code.
    pub enrollment_ttl: Duration,
    /// The keys that seal TOTP secrets at rest; `None` turns enrolment off.
    pub keys: Option<FactorKeys>,
    /// The passkeys' relying party; `None` turns passkeys off.
    pub passkeys: Option<std::sync::Arc<RelyingParty>>,
}

impl Default for FactorSettings {
    fn default() -> Self {
        Self {
            issuer: "Keyport".into(),
            fresh_for: Duration::from_secs(600),
            challenge_ttl: Duration::from_secs(300),
            enrollment_ttl: Duration::from_secs(600),
            keys: None,
            passkeys: None,
        }
    }
}
