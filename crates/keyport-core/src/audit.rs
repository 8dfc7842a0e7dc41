//! The audit trail: security-relevant events, written to storage.

use uuid::Uuid;

use crate::{clock::Timestamp, session::ClientInfo, token::SessionId, user::UserId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// An account was created.
    SignUp,
    /// A sign-in succeeded.
    SignIn,
    /// A sign-in failed (wrong password, unknown email, or rate-limited).
    SignInFailed,
    /// A user ended their own session.
    SignOut,
    /// A session was revoked by its user from another session.
    SessionRevoked,
    /// A user ended all their other sessions.
    OtherSessionsRevoked,
    /// A user changed their password.
    PasswordChanged,
    /// A signed-in user gave a wrong password to confirm a sensitive change.
    PasswordConfirmationFailed,
    /// A user changed their profile.
    ProfileUpdated,
    /// A user deleted their account.
    UserDeleted,
    /// A user signed in through an OAuth provider.
    OAuthSignIn,
    /// A user signed up through an OAuth provider.
    OAuthSignUp,
    /// An OAuth sign-in failed (state, provider, id_token, or link refused).
    OAuthFailed,
    /// An external identity was linked to a user.
    AccountLinked,
    /// An external identity was unlinked from a user.
    AccountUnlinked,
    /// A verification link was mailed to a user.
    EmailVerificationRequested,
    /// A user verified their address.
    EmailVerified,
    /// A password-reset link was mailed to a user.
    PasswordResetRequested,
    /// A user set a new password through a reset link.
    PasswordReset,
    /// A user signed in with a mailed link or code.
    EmailSignIn,
    /// An email sign-in created the user.
    EmailSignUp,
    /// A wrong link or code was presented for an email sign-in.
    EmailSignInFailed,
    /// A user asked to move their account to another address.
    EmailChangeRequested,
    /// A change-of-address link moved an account to its new address.
    EmailChanged,
    /// A code to set a first password was mailed.
    PasswordSetupRequested,
    /// A first factor was passed by a user with a second factor: a sign-in
    /// challenge was issued.
    SignInChallenged,
    /// A wrong, reused or malformed second factor was presented.
    SecondFactorFailed,
    /// An authenticator app was turned on.
    TotpEnabled,
    /// An authenticator app was turned off.
    TotpDisabled,
    /// A user replaced their backup codes.
    BackupCodesRegenerated,
    /// A session passed a second factor again.
    SteppedUp,
    /// A user registered a passkey.
    PasskeyAdded,
    /// A user renamed a passkey.
    PasskeyRenamed,
    /// A user deleted a passkey.
    PasskeyDeleted,
    /// An administrator set a user's roles.
    RolesChanged,
    /// An administrator created a user.
    UserCreated,
    /// An administrator banned a user (and so ended their sessions).
    UserBanned,
    /// An administrator lifted a user's ban.
    UserUnbanned,
    /// An administrator ended every session of a user.
    UserSessionsRevoked,
    /// An administrator opened a session as a user (impersonation).
    ImpersonationStarted,
    /// An administrator defined a run-time role or changed its grants.
    RoleDefined,
    /// An administrator deleted a run-time role.
    RoleDeleted,
    /// An API key was created.
    ApiKeyCreated,
    /// An API key was revoked.
    ApiKeyRevoked,
    /// An API key was replaced by a new one.
    ApiKeyRotated,
    /// An admin created a service account.
    ServiceAccountCreated,
    /// An admin set a service account's roles.
    ServiceAccountRolesChanged,
    /// An admin deleted a service account and its keys.
    ServiceAccountDeleted,
    /// A user created an organization.
    OrganizationCreated,
    /// An organization was renamed.
    OrganizationRenamed,
    /// An organization was deleted.
    OrganizationDeleted,
    /// A member was given another role.
    MemberRoleChanged,
    /// A member was removed.
    MemberRemoved,
    /// A member left.
    MemberLeft,
    /// An organization changed owners.
    OwnershipTransferred,
    /// An address was invited to an organization.
    InvitationCreated,
    /// An invitation was withdrawn.
    InvitationRevoked,
    /// An invitation was accepted.
    InvitationAccepted,
}

impl AuditKind {
    /// Stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "sign_up",
            Self::SignIn => "sign_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignOut => "sign_out",
            Self::SessionRevoked => "session_revoked",
            Self::OtherSessionsRevoked => "other_sessions_revoked",
            Self::PasswordChanged => "password_changed",
            Self::PasswordConfirmationFailed => "password_confirmation_failed",
            Self::ProfileUpdated => "profile_updated",
            Self::UserDeleted => "user_deleted",
            Self::OAuthSignIn => "oauth_sign_in",
            Self::OAuthSignUp => "oauth_sign_up",
            Self::OAuthFailed => "oauth_failed",
            Self::AccountLinked => "account_linked",
            Self::AccountUnlinked => "account_unlinked",
            Self::EmailVerificationRequested => "email_verification_requested",
            Self::EmailVerified => "email_verified",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::EmailSignIn => "email_sign_in",
            Self::EmailSignUp => "email_sign_up",
            Self::EmailSignInFailed => "email_sign_in_failed",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::PasswordSetupRequested => "password_setup_requested",
            Self::SignInChallenged => "sign_in_challenged",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::TotpEnabled => "totp_enabled",
            Self::TotpDisabled => "totp_disabled",
            Self::BackupCodesRegenerated => "backup_codes_regenerated",
            Self::SteppedUp => "stepped_up",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRenamed => "passkey_renamed",
            Self::PasskeyDeleted => "passkey_deleted",
            Self::RolesChanged => "roles_changed",
            Self::UserCreated => "user_created",
            Self::UserBanned => "user_banned",
            Self::UserUnbanned => "user_unbanned",
            Self::UserSessionsRevoked => "user_sessions_revoked",
            Self::ImpersonationStarted => "impersonation_started",
            Self::RoleDefined => "role_defined",
            Self::RoleDeleted => "role_deleted",
            Self::ApiKeyCreated => "api_key_created",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::ApiKeyRotated => "api_key_rotated",
            Self::ServiceAccountCreated => "service_account_created",
            Self::ServiceAccountRolesChanged => "service_account_roles_changed",
            Self::ServiceAccountDeleted => "service_account_deleted",
            Self::OrganizationCreated => "organization_created",
            Self::OrganizationRenamed => "organization_renamed",
            Self::OrganizationDeleted => "organization_deleted",
            Self::MemberRoleChanged => "member_role_changed",
            Self::MemberRemoved => "member_removed",
            Self::MemberLeft => "member_left",
            Self::OwnershipTransferred => "ownership_transferred",
            Self::InvitationCreated => "invitation_created",
            Self::InvitationRevoked => "invitation_revoked",
            Self::InvitationAccepted => "invitation_accepted",
        }
    }
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unique, time-ordered id.
    pub id: Uuid,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: AuditKind,
    /// The user concerned, when known.
    pub user_id: Option<UserId>,
    /// The session concerned, when there is one.
    pub session_id: Option<SessionId>,
    /// Where the request came from.
    pub client: ClientInfo,
    /// Short machine-readable detail (e.g. `unknown_email`, the attempted email).
    pub detail: Option<String>,
    /// The user an admin's action was about (the row's user is the admin).
    pub target: Option<UserId>,
}

impl AuditEvent {
    /// An event of `kind` at `at`, from `client`.
    pub fn new(kind: AuditKind, at: Timestamp, client: &ClientInfo) -> Self {
        Self {
            id: at.uuid_v7(),
            at,
            kind,
            user_id: None,
            session_id: None,
            client: client.clone(),
            detail: None,
            target: None,
        }
    }

    /// Names the user concerned.
    pub fn user(mut self, user_id: UserId) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Names the session concerned.
    pub fn session(mut self, session_id: &SessionId) -> Self {
        self.session_id = Some(session_id.clone());
        self
    }

    /// Names the user an admin's action was about.
    pub fn target(mut self, user_id: UserId) -> Self {
        self.target = Some(user_id);
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The event with how many sessions its change ended, after its detail
    /// (`revoked:<n>`, or `<detail>:revoked:<n>`).
    pub fn revoked(mut self, ended: u64) -> Self {
        self.detail = Some(match self.detail.take() {
            Some(detail) => format!("{detail}:revoked:{ended}"),
            None => format!("revoked:{ended}"),
        });
        self
    }
}
