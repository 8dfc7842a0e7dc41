//! [`Auth`]: the sign-in, sign-up, sign-out, social sign-in, session and
//! mailbox (verify, reset) steps a handler takes for one request, written
//! once for every adapter.

use std::sync::Arc;

use super::{
    guard::{FirstFactor, Guard, Reply, RequestView, SignedUp, refusal_for},
    reply::Refusal,
};
use tonic::Status;

use crate::{
    KeyportClient, SessionCache,
    api_keys::{ApiKeyInfo, CreatedApiKey, NewApiKey},
    client::{ClientInfo, EmailProof, FactorAnswer, FinishedOAuth, SignedIn},
    error::Error,
    factors::{FactorStatus, TotpEnrollment},
    organizations::{InvitationInfo, Member, OrganizationInfo},
    passkeys::{Passkey, PasskeyCeremony},
    principal::{Principal, SessionSummary},
};

/// A handler's permission check that failed ([`Auth::require`]): why, and
/// the answer to send, as the middleware would have sent it for a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Why.
    pub refusal: Refusal,
    /// What to answer: the app's refusal page, else the default (a redirect
    /// to sign in or an HTML page for browsers, JSON for API clients).
    pub reply: Reply,
}

/// Sign-in, sign-up, sign-out and session management for one request, with
/// its client details and token captured.
///
/// Framework-free: each adapter's `Auth` extractor builds one with
/// [`Auth::new`] from the guard its middleware left on the request, and
/// derefs to it. `C` is the adapter's `Set-Cookie` header type (each
/// adapter's `CookieHeader`, which its framework knows how to add to a
/// response); `String`, the raw header value, by default.
#[derive(Debug, Clone)]
pub struct Auth<C = String> {
    guard: Guard,
    client: ClientInfo,
    token: Option<String>,
    query: Option<String>,
    cookies: Option<String>,
    /// What a refusal's answer depends on.
    request: Snapshot,
    _cookie: std::marker::PhantomData<fn(String) -> C>,
}

/// The parts of the request a refusal's answer depends on.
#[derive(Debug, Clone)]
struct Snapshot {
    method: String,
    path: String,
    accept: Option<String>,
    fetch_mode: Option<String>,
}

impl RequestView for (&Snapshot, Option<&str>) {
    fn method(&self) -> &str {
        &self.0.method
    }
    fn path(&self) -> &str {
        &self.0.path
    }
    fn query(&self) -> Option<&str> {
        self.1
    }
    fn header(&self, name: &str) -> Option<&str> {
        match name {
            "accept" => self.0.accept.as_deref(),
            "sec-fetch-mode" => self.0.fetch_mode.as_deref(),
            _ => None,
        }
    }
    fn peer_ip(&self) -> Option<String> {
        None
    }
}

impl<C: From<String>> Auth<C> {
    /// The steps for `request`, through `guard`: the caller's address and
    /// agent, its session token (bearer first, then cookie), the query (an
    /// OAuth callback's answer) and the `Cookie` header (the flow's binding).
    pub fn new(guard: Guard, request: &impl RequestView) -> Self {
        Self {
            client: guard.client_info(request),
            token: guard.token_of(request).map(str::to_owned),
            query: request.query().map(str::to_owned),
            cookies: request.header("cookie").map(str::to_owned),
            request: Snapshot {
                method: request.method().to_owned(),
                path: request.path().to_owned(),
                accept: request.header("accept").map(str::to_owned),
                fetch_mode: request.header("sec-fetch-mode").map(str::to_owned),
            },
            guard,
            _cookie: std::marker::PhantomData,
        }
    }

    /// The guard the steps go through.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The caller's address and agent, as forwarded to Keyport.
    pub fn client_info(&self) -> &ClientInfo {
        &self.client
    }

    /// Checks in a handler that the caller's roles grant `permission`
    /// (`resource:action`): Keyport decides, through the guard's cache, as
    /// for [`RouteRules::require_permission`](super::RouteRules::require_permission).
    /// The principal when they do; otherwise the refusal to answer with
    /// (`FORBIDDEN`, `UNAUTHENTICATED` without a valid session,
    /// `PERMISSION_UNKNOWN` for a name outside Keyport's catalogue,
    /// `AUTH_UNAVAILABLE`).
    pub async fn require(&self, permission: &str) -> Result<Arc<Principal>, Denied> {
        self.require_all(&[permission]).await
    }

    /// Like [`Auth::require`], for every one of `permissions`.
    pub async fn require_all(&self, permissions: &[&str]) -> Result<Arc<Principal>, Denied> {
        let Some(token) = self.token.as_deref() else {
            return Err(self.denied(Refusal::Unauthenticated { reason: "UNAUTHENTICATED" }));
        };
        match self.guard.authorize(&self.client, token, permissions).await {
            Ok(decision) if !permissions.is_empty() && decision.all() => Ok(decision.principal),
            Ok(_) => Err(self.denied(Refusal::Forbidden)),
            Err(error) => Err(self.denied(refusal_for(&error))),
        }
    }

    /// Like [`Auth::require`], in the organization `organization_id`: the
    /// user's roles, or their role in it, must grant `permission` (as
    /// [`RouteRules::require_permission_in_org`](super::RouteRules::require_permission_in_org)).
    /// A user who is not a member is refused (`FORBIDDEN`).
    pub async fn require_in(&self, organization_id: &str, permission: &str) -> Result<Arc<Principal>, Denied> {
        let Some(token) = self.token.as_deref() else {
            return Err(self.denied(Refusal::Unauthenticated { reason: "UNAUTHENTICATED" }));
        };
        match self.guard.authorize_in(&self.client, token, organization_id, &[permission]).await {
            Ok(decision) if decision.all() => Ok(decision.principal),
            Ok(_) => Err(self.denied(Refusal::Forbidden)),
            Err(error) if *error.reason() == crate::Reason::InvalidArgument => Err(self.denied(Refusal::Forbidden)),
            Err(error) => Err(self.denied(refusal_for(&error))),
        }
    }

    fn denied(&self, refusal: Refusal) -> Denied {
        let reply = self.guard.refusal_reply(&(&self.request, self.query.as_deref()), refusal);
        Denied { refusal, reply }
    }

    /// Starts "Sign in with `provider_id`": redirect the browser to the
    /// returned URL, with the returned header binding the flow to it.
    /// `redirect_uri` is your callback's full URL, allowed in Keyport's config.
    pub async fn start_oauth(&self, provider_id: &str, redirect_uri: &str) -> Result<(String, C), Error> {
        let (url, cookie) = self.guard.start_oauth(&self.client, provider_id, redirect_uri, None).await?;
        Ok((url, C::from(cookie)))
    }

    /// Starts linking `provider_id` to the signed-in user (needs a session).
    pub async fn link_oauth(&self, provider_id: &str, redirect_uri: &str) -> Result<(String, C), Error> {
        let (url, cookie) =
            self.guard.start_oauth(&self.client, provider_id, redirect_uri, Some(self.session_token())).await?;
        Ok((url, C::from(cookie)))
    }

    /// Finishes a flow on your callback route (`redirect_uri` as at the
    /// start). Returns the outcome and the headers to send: the binding
    /// cookie deleted and, on sign-in, the session cookie.
    pub async fn finish_oauth(&self, redirect_uri: &str) -> Result<(FinishedOAuth, Vec<C>), Error> {
        let (finished, cookies) = self
            .guard
            .finish_oauth(
                &self.client,
                self.token.as_deref(),
                redirect_uri,
                self.query.as_deref(),
                self.cookies.as_deref(),
            )
            .await?;
        Ok((finished, cookies.into_iter().map(C::from).collect()))
    }

    /// Signs in; the returned header sets the session cookie, or, when the
    /// user has a second factor ([`FirstFactor::SecondFactorRequired`]), the
    /// challenge's: send the browser to the page that asks for the code.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<(FirstFactor, C), Error> {
        let (first, cookie) = self.guard.sign_in(&self.client, self.token.as_deref(), email, password).await?;
        Ok((first, C::from(cookie)))
    }

    /// Finishes a sign-in that asked for a second factor, with the
    /// challenge cookie and the user's `answer`. Returns the session and the
    /// headers to send (challenge deleted, session cookie set).
    pub async fn complete_sign_in(&self, answer: FactorAnswer<'_>) -> Result<(SignedIn, Vec<C>), Error> {
        let (signed_in, cookies) =
            self.guard.complete_sign_in(&self.client, self.token.as_deref(), self.cookies.as_deref(), answer).await?;
        Ok((signed_in, cookies.into_iter().map(C::from).collect()))
    }

    /// Creates an account and signs it in (the returned header sets the
    /// cookie), or, when the server requires verified addresses, answers
    /// [`SignedUp::VerificationRequired`].
    pub async fn sign_up(&self, email: &str, password: &str, name: &str) -> Result<SignedUp<C>, Error> {
        Ok(match self.guard.sign_up(&self.client, self.token.as_deref(), email, password, name).await? {
            SignedUp::SignedIn(signed_in, cookie) => SignedUp::SignedIn(signed_in, C::from(cookie)),
            SignedUp::VerificationRequired => SignedUp::VerificationRequired,
        })
    }

    /// Starts an email sign-in for `email`; the returned header binds it to
    /// this browser. The same answer whether or not the address has an account.
    pub async fn start_email_sign_in(&self, email: &str) -> Result<C, Error> {
        Ok(C::from(self.guard.start_email_sign_in(&self.client, email).await?))
    }

    /// Finishes an email sign-in with the mailed code or link token and the
    /// browser's binding cookie. Returns the session (or the second-factor
    /// step), whether the account is new, and the headers to send (binding
    /// deleted, session or challenge cookie set).
    pub async fn finish_email_sign_in(&self, proof: EmailProof<'_>) -> Result<(FirstFactor, bool, Vec<C>), Error> {
        let (signed_in, new_user, cookies) = self
            .guard
            .finish_email_sign_in(&self.client, self.token.as_deref(), self.cookies.as_deref(), proof)
            .await?;
        Ok((signed_in, new_user, cookies.into_iter().map(C::from).collect()))
    }

    /// Mails a new verification link to `email` (for a user refused with
    /// `EmailNotVerified`); the same answer whether or not the account exists.
    pub async fn request_email_verification_for(&self, email: &str) -> Result<(), Error> {
        self.guard.request_email_verification_for(&self.client, email).await
    }

    /// Ends the request's session; the returned header deletes the cookie.
    pub async fn sign_out(&self) -> Result<C, Error> {
        Ok(C::from(self.guard.sign_out(&self.client, self.token.as_deref()).await?))
    }

    /// The caller's sessions, newest first.
    pub async fn list_sessions(&self) -> Result<Vec<SessionSummary>, Error> {
        self.guard.list_sessions(&self.client, self.session_token()).await
    }

    /// Ends one of the caller's sessions at once.
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), Error> {
        self.guard.revoke_session(&self.client, self.session_token(), session_id).await
    }

    /// Ends all the caller's other sessions; returns how many.
    pub async fn revoke_other_sessions(&self) -> Result<u32, Error> {
        self.guard.revoke_other_sessions(&self.client, self.session_token()).await
    }

    /// The caller's second factors.
    pub async fn list_factors(&self) -> Result<FactorStatus, Error> {
        self.guard.list_factors(&self.client, self.session_token()).await
    }

    /// Starts enrolling an authenticator app: show the QR code and ask for
    /// a first code (needs a recent sign-in: `Reason::ReauthenticationRequired`).
    pub async fn enroll_totp(&self) -> Result<TotpEnrollment, Error> {
        self.guard.enroll_totp(&self.client, self.session_token()).await
    }

    /// Turns the pending app on with its first code; returns the backup
    /// codes, to show once. The caller's other sessions end.
    pub async fn confirm_totp(&self, code: &str) -> Result<Vec<String>, Error> {
        self.guard.confirm_totp(&self.client, self.session_token(), code).await
    }

    /// Turns the app off (needs a recent second factor:
    /// `Reason::StepUpRequired`); returns how many other sessions ended.
    pub async fn disable_totp(&self) -> Result<u32, Error> {
        self.guard.disable_totp(&self.client, self.session_token()).await
    }

    /// Passes a second factor again on the caller's session (the step-up
    /// page of routes with `require_aal2` or `require_fresh`).
    pub async fn step_up(&self, answer: FactorAnswer<'_>) -> Result<(), Error> {
        self.guard.step_up(&self.client, self.session_token(), answer).await
    }

    /// The passkey request options of the sign-in challenge in this
    /// browser's cookie, for the second-factor page; `None` when the user
    /// has no passkey.
    pub fn challenge_passkey_options(&self) -> Option<String> {
        self.guard.challenge_passkey_options(self.cookies.as_deref())
    }

    /// Starts registering a passkey (needs a recent sign-in, and a recent
    /// second factor if the user has one).
    pub async fn start_passkey_registration(&self) -> Result<PasskeyCeremony, Error> {
        self.guard.start_passkey_registration(&self.client, self.session_token()).await
    }

    /// Finishes a passkey registration with the browser's answer; the
    /// caller's other sessions end.
    pub async fn finish_passkey_registration(
        &self,
        ceremony: &str,
        credential: &str,
        name: &str,
    ) -> Result<Passkey, Error> {
        self.guard.finish_passkey_registration(&self.client, self.session_token(), ceremony, credential, name).await
    }

    /// The caller's passkeys, oldest first.
    pub async fn list_passkeys(&self) -> Result<Vec<Passkey>, Error> {
        self.guard.list_passkeys(&self.client, self.session_token()).await
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename_passkey(&self, id: &str, name: &str) -> Result<Passkey, Error> {
        self.guard.rename_passkey(&self.client, self.session_token(), id, name).await
    }

    /// Deletes one of the caller's passkeys (needs a recent second factor:
    /// `Reason::StepUpRequired`); returns how many other sessions ended.
    pub async fn delete_passkey(&self, id: &str) -> Result<u32, Error> {
        self.guard.delete_passkey(&self.client, self.session_token(), id).await
    }

    /// Starts a sign-in with a passkey alone: the WebAuthn options for the
    /// page, and the header binding the ceremony to this browser.
    pub async fn start_passkey_sign_in(&self) -> Result<(String, C), Error> {
        let (options, cookie) = self.guard.start_passkey_sign_in(&self.client).await?;
        Ok((options, C::from(cookie)))
    }

    /// Finishes a passkey sign-in with the browser's answer and the
    /// ceremony cookie. Returns the session and the headers to send
    /// (ceremony deleted, session cookie set).
    pub async fn finish_passkey_sign_in(&self, credential: &str) -> Result<(SignedIn, Vec<C>), Error> {
        let (signed_in, cookies) = self
            .guard
            .finish_passkey_sign_in(&self.client, self.token.as_deref(), self.cookies.as_deref(), credential)
            .await?;
        Ok((signed_in, cookies.into_iter().map(C::from).collect()))
    }

    /// Starts a step-up with one of the caller's passkeys.
    pub async fn start_passkey_step_up(&self) -> Result<PasskeyCeremony, Error> {
        self.guard.start_passkey_step_up(&self.client, self.session_token()).await
    }

    /// Steps the caller's session up with a passkey's answer.
    pub async fn step_up_with_passkey(&self, ceremony: &str, credential: &str) -> Result<(), Error> {
        self.guard.step_up_with_passkey(&self.client, self.session_token(), ceremony, credential).await
    }

    /// Mails the signed-in user a link that verifies their address.
    pub async fn request_email_verification(&self) -> Result<(), Error> {
        self.guard.request_email_verification(&self.client, self.session_token()).await
    }

    /// Marks an address verified with the `token` of a verification link.
    pub async fn verify_email(&self, link_token: &str) -> Result<(), Error> {
        self.guard.verify_email(&self.client, link_token).await
    }

    /// Mails a password-reset link to `email` if an account has it.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), Error> {
        self.guard.request_password_reset(&self.client, email).await
    }

    /// Sets a new password with the `token` of a reset link; returns how
    /// many sessions ended. Nobody is signed in: send the user to sign in.
    pub async fn reset_password(&self, link_token: &str, new_password: &str) -> Result<u32, Error> {
        self.guard.reset_password(&self.client, link_token, new_password).await
    }

    /// The request's token for calls that need one: without a token,
    /// Keyport answers `UNAUTHENTICATED` to the empty one.
    fn session_token(&self) -> &str {
        self.token.as_deref().unwrap_or_default()
    }

    /// The client of the guard's Keyport (an offline guard has none).
    fn keyport(&self) -> Result<&KeyportClient, Error> {
        self.guard
            .cache()
            .map(SessionCache::client)
            .ok_or_else(|| Status::failed_precondition("an offline guard has no Keyport to ask").into())
    }

    /// The caller's API keys, newest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, Error> {
        self.keyport()?.list_api_keys(self.session_token(), &self.client).await
    }

    /// Creates an API key of the caller's; its secret is in the answer only.
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey, Error> {
        self.keyport()?.create_api_key(self.session_token(), new, &self.client).await
    }

    /// Revokes one of the caller's API keys.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), Error> {
        self.keyport()?.revoke_api_key(self.session_token(), id, &self.client).await
    }

    /// The caller's organizations, with their role in each.
    pub async fn list_my_organizations(&self) -> Result<Vec<OrganizationInfo>, Error> {
        self.keyport()?.list_my_organizations(self.session_token(), &self.client).await
    }

    /// Creates an organization the caller owns.
    pub async fn create_organization(&self, name: &str, slug: &str) -> Result<OrganizationInfo, Error> {
        self.keyport()?.create_organization(self.session_token(), name, slug, &self.client).await
    }

    /// Makes `organization_id` (empty: none) the session's active organization.
    pub async fn set_active_organization(&self, organization_id: &str) -> Result<(), Error> {
        self.keyport()?.set_active_organization(self.session_token(), organization_id, &self.client).await
    }

    /// The members of one of the caller's organizations.
    pub async fn list_members(&self, organization_id: &str) -> Result<Vec<Member>, Error> {
        self.keyport()?.list_members(self.session_token(), organization_id, &self.client).await
    }

    /// The pending invitations of an organization the caller manages.
    pub async fn list_invitations(&self, organization_id: &str) -> Result<Vec<InvitationInfo>, Error> {
        self.keyport()?.list_invitations(self.session_token(), organization_id, &self.client).await
    }

    /// Invites `email` to an organization the caller manages.
    pub async fn create_invitation(
        &self,
        organization_id: &str,
        email: &str,
        role: &str,
    ) -> Result<InvitationInfo, Error> {
        self.keyport()?.create_invitation(self.session_token(), organization_id, email, role, &self.client).await
    }

    /// Accepts an invitation to the caller's verified address.
    pub async fn accept_invitation(&self, id: &str) -> Result<OrganizationInfo, Error> {
        self.keyport()?.accept_invitation(self.session_token(), id, &self.client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Principal,
        web::{AuthSettings, RouteRules, tests::now},
    };

    struct View(Vec<(&'static str, &'static str)>);

    impl RequestView for View {
        fn method(&self) -> &str {
            "POST"
        }
        fn path(&self) -> &str {
            "/oauth/callback"
        }
        fn query(&self) -> Option<&str> {
            Some("state=s&code=c")
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        }
        fn peer_ip(&self) -> Option<String> {
            Some("192.0.2.7".into())
        }
    }

    fn offline() -> Guard {
        let settings = AuthSettings::new(RouteRules::new()).shared();
        Guard::offline(settings, [("ann-token", Principal::for_tests("ann@example.com", &[]))])
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Header(String);

    impl From<String> for Header {
        fn from(value: String) -> Self {
            Self(value)
        }
    }

    #[test]
    fn captures_the_callers_details_and_returns_the_adapters_header_type() {
        let view = View(vec![("user-agent", "test-agent"), ("cookie", "__Host-keyport_session=ann-token")]);
        let auth = Auth::<Header>::new(offline(), &view);
        assert_eq!(auth.client_info().ip_address.as_deref(), Some("192.0.2.7"));
        assert_eq!(auth.client_info().user_agent.as_deref(), Some("test-agent"));
        let Header(cleared) = now(auth.sign_out()).unwrap_or_else(|error| Header(error.to_string()));
        assert!(cleared.starts_with("__Host-keyport_session=;"), "{cleared}");
        let refused = now(auth.sign_in("ann@example.com", "password")).map(|(_, header)| header);
        assert_eq!(refused.err().map(|error| error.code()), Some(tonic::Code::FailedPrecondition));
    }
}
