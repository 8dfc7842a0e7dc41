//! Who is calling a web app: the user and session behind a token.

use std::time::{Duration, SystemTime};

use keyport_proto::v1;

/// The signed-in user and their session, as the middleware hands it to handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id (UUIDv7).
    pub user_id: String,
    /// The user's normalised email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Roles, sorted.
    pub roles: Vec<String>,
    /// The session's id (safe to show; not a credential).
    pub session_id: String,
    /// When the session expires unless used again.
    pub expires_at: SystemTime,
    /// Whether the user has a second factor on.
    pub two_factor_enabled: bool,
    /// How strongly the user proved who they are in this session.
    pub assurance: Assurance,
    /// When they last proved it: the sign-in, or a later step-up.
    pub authenticated_at: SystemTime,
    /// The admin acting as the user, for a session an admin opened by
    /// impersonation (`AdminService.ImpersonateUser`): show it, and do not
    /// take the session's actions as the user's own.
    pub impersonator_id: Option<String>,
    /// The API key the request came with, for a machine caller; `None`
    /// for a session. A key's principal has no session (`session_id` is
    /// empty), and for a service account's key `user_id` is the service
    /// account's id, `name` its name and `email` empty.
    pub api_key: Option<ApiKeyCaller>,
    /// The organization the session works in
    /// (`OrganizationService.SetActiveOrganization`); `None` for none.
    pub active_organization_id: Option<String>,
}

/// The API key behind a request (see [`Principal::api_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyCaller {
    /// The key's id (safe to show; not a credential).
    pub id: String,
    /// What the key is for, as its creator named it.
    pub name: String,
    /// The permissions the key may use, sorted.
    pub scopes: Vec<String>,
    /// The service account owning the key; `None` for a user's key.
    pub service_account_id: Option<String>,
}

/// How strongly a session's user proved who they are (NIST SP 800-63B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Assurance {
    /// One factor: a password, an identity provider or the mailbox.
    #[default]
    Aal1,
    /// Two factors.
    Aal2,
}

impl Principal {
    /// A made-up principal for tests with an [offline
    /// guard](crate::web::Guard::offline): ids derived from `email`, the
    /// name its local part, the email verified, the session valid for an hour.
    #[expect(clippy::disallowed_methods, reason = "a test principal's hour starts on the wall clock")]
    pub fn for_tests(email: &str, roles: &[&str]) -> Self {
        let mut roles: Vec<String> = roles.iter().map(|role| (*role).to_owned()).collect();
        roles.sort();
        Self {
            user_id: format!("test-user-{email}"),
            email: email.to_owned(),
            name: email.split('@').next().unwrap_or_default().to_owned(),
            email_verified: true,
            roles,
            session_id: format!("test-session-{email}"),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
            two_factor_enabled: false,
            assurance: Assurance::Aal1,
            authenticated_at: SystemTime::now(),
            impersonator_id: None,
            api_key: None,
            active_organization_id: None,
        }
    }

    /// Whether the user has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// A `GetSession` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedSession {
    /// Who the token belongs to.
    pub principal: Principal,
    /// The server pushed the expiry forward: re-issue the cookie.
    pub refreshed: bool,
    /// How long the answer may be cached by a subscribed cache.
    pub cache_ttl: Duration,
}

pub(crate) fn system_time(timestamp: Option<&prost_types::Timestamp>) -> SystemTime {
    let Some(t) = timestamp else { return SystemTime::UNIX_EPOCH };
    let seconds = Duration::from_secs(u64::try_from(t.seconds).unwrap_or(0));
    let nanos = Duration::from_nanos(u64::try_from(t.nanos).unwrap_or(0));
    SystemTime::UNIX_EPOCH + seconds + nanos
}

pub(crate) fn principal(user: &v1::User, session: &v1::Session) -> Principal {
    Principal {
        user_id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        email_verified: user.email_verified,
        roles: user.roles.clone(),
        session_id: session.id.clone(),
        expires_at: system_time(session.expires_at.as_ref()),
        two_factor_enabled: user.two_factor_enabled,
        assurance: if session.assurance_level() == v1::AssuranceLevel::Aal2 {
            Assurance::Aal2
        } else {
            Assurance::Aal1
        },
        authenticated_at: system_time(session.authenticated_at.as_ref()),
        impersonator_id: Some(session.impersonator_id.clone()).filter(|id| !id.is_empty()),
        api_key: None,
        active_organization_id: Some(session.active_organization_id.clone()).filter(|id| !id.is_empty()),
    }
}

/// The principal of an API key: its owner, a user or a service account.
/// `None` when the answer names neither.
pub(crate) fn key_principal(
    key: &v1::ApiKey,
    user: Option<&v1::User>,
    account: Option<&v1::ServiceAccount>,
) -> Option<Principal> {
    let (user_id, email, name, email_verified, roles, two_factor_enabled) = match (user, account) {
        (Some(user), _) => (
            user.id.clone(),
            user.email.clone(),
            user.name.clone(),
            user.email_verified,
            user.roles.clone(),
            user.two_factor_enabled,
        ),
        (None, Some(account)) => {
            (account.id.clone(), String::new(), account.name.clone(), false, account.roles.clone(), false)
        }
        (None, None) => return None,
    };
    Some(Principal {
        user_id,
        email,
        name,
        email_verified,
        roles,
        session_id: String::new(),
        // A key that does not expire: the end of year 9999.
        expires_at: key
            .expires_at
            .as_ref()
            .map_or(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799), |at| system_time(Some(at))),
        two_factor_enabled,
        assurance: Assurance::Aal1,
        authenticated_at: system_time(key.created_at.as_ref()),
        impersonator_id: None,
        api_key: Some(ApiKeyCaller {
            id: key.id.clone(),
            name: key.name.clone(),
            scopes: key.scopes.clone(),
            service_account_id: Some(key.service_account_id.clone()).filter(|id| !id.is_empty()),
        }),
        active_organization_id: None,
    })
}

/// One of a user's sessions, as listed for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session's id, to revoke it.
    pub id: String,
    /// Sign-in time.
    pub created_at: SystemTime,
    /// Idle expiry.
    pub expires_at: SystemTime,
    /// Address it was created from.
    pub ip_address: String,
    /// User agent it was created from.
    pub user_agent: String,
    /// Whether it is the session that asked.
    pub current: bool,
}

pub(crate) fn summary(session: &v1::Session) -> SessionSummary {
    SessionSummary {
        id: session.id.clone(),
        created_at: system_time(session.created_at.as_ref()),
        expires_at: system_time(session.expires_at.as_ref()),
        ip_address: session.ip_address.clone(),
        user_agent: session.user_agent.clone(),
        current: session.current,
    }
}
