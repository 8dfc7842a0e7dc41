//! The example website, without a web framework: its configuration, route
//! rules, forms, pages and what each handler answers. `examples/axum-app`
//! and `examples/actix-app` serve it with `keyport-axum` and
//! `keyport-actix`: their handlers take the extractors, call the request's
//! `Auth`, hand the result to a [`Site`] method and turn the [`Answer`] into
//! their framework's response, so both sites behave the same by
//! construction.
//!
//! Pages: `/` (public), `/sign-up` and `/sign-in` (forms, and a "Sign in
//! with ..." button per provider configured in Keyport), `/dashboard` and
//! `/sessions` (need a session), `/admin` (needs the `admin` role), and
//! `POST /sign-out`. Through the mailbox: `/forgot-password` and
//! `/reset-password` (public), `GET /verify-email` (the link's page) and
//! `POST /verify-email/send` (needs a session); signing in with a mailed
//! code or link: `POST /sign-in/email/start`, then `/sign-in/email`. A user
//! with a second factor continues at `/sign-in/second-factor`. Two-step
//! verification: `/two-factor` (status; `POST /two-factor/enroll`,
//! `/two-factor/confirm`, `/two-factor/disable`) and `/sign-in/step-up`
//! (a code again, for changes that need a recent second factor). Passkeys:
//! `/passkeys` (list, rename, delete; `POST /passkeys/start` then
//! `POST /passkeys` add one), `POST /sign-in/passkey/start` then
//! `POST /sign-in/passkey` (a passkey alone signs in), a "Use a passkey"
//! button on the second-factor page, and `POST /sign-in/step-up/passkey`.
//! Passkeys need the site on an origin Keyport's `[passkeys]` allows (and a
//! host name, such as `localhost`, not an IP address). Social sign-in: `POST /oauth/start/{provider}` sends the
//! browser to the provider, which sends it back to `GET /oauth/callback`;
//! `POST /oauth/link/{provider}` (needs a session) links a provider account
//! the same way. The route rules in [`settings`] decide who may see what;
//! the handlers only read the `Principal` the middleware found.
//!
//! Configuration, from the environment ([`Config::from_env`]):
//! - `KEYPORT_URL`: where Keyport serves gRPC [default: `http://127.0.0.1:50051`]
//! - `LISTEN`: the address to serve the site on [default: `127.0.0.1:3000`]
//! - `PUBLIC_URL`: the site's address in the browser; the OAuth callback is
//!   `{PUBLIC_URL}/oauth/callback`, which must be in Keyport's
//!   `[oauth] redirect_uris` [default: `http://` and the address listened on]
//! - `RUST_LOG`: log filter [default: `info`]
//!
//! The session cookie is `__Host-keyport_session` (`Secure`, `HttpOnly`,
//! `SameSite=Lax`). Browsers accept `Secure` cookies from
//! `http://localhost` and `http://127.0.0.1`, so the site works over plain
//! HTTP on this machine; anywhere else, serve it over HTTPS.

mod html;

use std::{env, net::SocketAddr, process::ExitCode, sync::Arc};

use keyport_client::{
    ApiKeyInfo, CacheConfig, CreatedApiKey, Error, FactorAnswer, FactorStatus, FinishedOAuth, InvitationInfo,
    KeyportClient, Member, OrganizationInfo, Passkey, PasskeyCeremony, Principal, Reason, SessionCache, SessionSummary,
    SignedIn, TotpEnrollment,
    web::{AuthSettings, FirstFactor, Guard, RouteRules, SignedUp, safe_return_path},
};
use serde::Deserialize;

/// Where a first factor goes when the user has a second one.
const SECOND_FACTOR_PAGE: &str = "/sign-in/second-factor";

/// Where a successful sign-in goes when no (valid) `return_to` was given.
const AFTER_SIGN_IN: &str = "/dashboard";

/// The OAuth callback's path; the redirect URI is `PUBLIC_URL` and this.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// What a site's `main` returns once it stopped: failure, and the error
/// on stderr after the binary's `name`, if it stopped on one.
pub fn exit_code(name: &str, stopped: Result<(), Box<dyn std::error::Error + Send + Sync>>) -> ExitCode {
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` [default: `info`].
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

/// The site's configuration, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where Keyport serves gRPC (`KEYPORT_URL`).
    pub keyport_url: String,
    /// The address to serve the site on (`LISTEN`).
    pub listen: String,
    /// The site's address in the browser (`PUBLIC_URL`), if set.
    pub public_url: Option<String>,
}

impl Config {
    /// `KEYPORT_URL`, `LISTEN` and `PUBLIC_URL`, with their defaults.
    pub fn from_env() -> Self {
        Self {
            keyport_url: env::var("KEYPORT_URL").unwrap_or_else(|_| "http://127.0.0.1:50051".to_owned()),
            listen: env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned()),
            public_url: env::var("PUBLIC_URL").ok(),
        }
    }

    /// The middleware's guard: one client and one cache for the whole
    /// process (every worker shares them). The cache keeps validated
    /// sessions for up to a minute and drops them the moment Keyport reports
    /// a sign-out or revocation. Call it on the runtime the site runs on:
    /// the cache's background task is spawned there.
    pub fn guard(&self) -> Result<Guard, Error> {
        let client = KeyportClient::builder(self.keyport_url.clone()).build()?;
        Ok(Guard::new(SessionCache::start(client, CacheConfig::default()), settings().shared()))
    }

    /// The site served with `guard` on `address` (the bound one, which is
    /// the OAuth callback's default host). Prints the line the browser test
    /// waits for (and reads the port from), naming the binary `name`.
    pub fn site(&self, name: &str, guard: Guard, address: SocketAddr) -> Site {
        let public_url = self.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
        let callback = format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'));
        println!("{name} listening on http://{address} (Keyport at {}; OAuth callback {callback})", self.keyport_url);
        Site::new(guard, callback)
    }
}

/// Who may see what. First matching rule wins; everything else is public
/// (and still knows who is signed in, through `Option<Principal>`).
pub fn settings() -> AuthSettings {
    let rules = RouteRules::new()
        .protect("/dashboard(.*)")
        .protect("/sessions(.*)")
        .protect("/oauth/link/(.*)")
        .protect("/verify-email/send")
        .protect("/two-factor(.*)")
        .protect("/passkeys(.*)")
        .protect("/api-keys(.*)")
        .protect("/organizations(.*)")
        .protect("/invitations(.*)")
        // Machine callers: a session or an API key with `notes:read`.
        .require_permission("/api/notes", "notes:read")
        .protect("/sign-in/step-up(.*)")
        .require_role("/admin(.*)", "admin");
    // Signed-out browsers asking for a protected page are sent to
    // `/sign-in?return_to=<the page>` (the defaults).
    AuthSettings::new(rules)
}

/// What a handler answers, for the example to turn into its framework's
/// response: a page, or a `303 See Other`, with `Set-Cookie` headers in the
/// adapter's `CookieHeader` type `C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<C> {
    /// The HTTP status.
    pub status: u16,
    /// Where a `303 See Other` goes: a path on this site or, starting social
    /// sign-in, the provider. After a form POST, the browser follows it with
    /// a GET. `None` for a page.
    pub location: Option<String>,
    /// The HTML page; empty for a redirect.
    pub html: String,
    /// Headers to add with `Set-Cookie`.
    pub cookies: Vec<C>,
}

impl<C> Answer<C> {
    fn page(status: u16, html: String) -> Self {
        Self { status, location: None, html, cookies: Vec::new() }
    }

    fn see_other(location: impl Into<String>) -> Self {
        Self { status: 303, location: Some(location.into()), html: String::new(), cookies: Vec::new() }
    }

    fn with_cookies(mut self, cookies: impl IntoIterator<Item = C>) -> Self {
        self.cookies.extend(cookies);
        self
    }
}

/// `GET /dashboard`'s query.
#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    /// Set after a social sign-in created the account.
    welcome: Option<String>,
    /// The provider just linked.
    linked: Option<String>,
    /// Set once a verification link was mailed.
    verify: Option<String>,
}

/// `POST /sign-up`'s form.
#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    /// The new account's email.
    pub email: String,
    /// The new account's name (optional).
    #[serde(default)]
    pub name: String,
    /// The new account's password.
    pub password: String,
}

/// `GET /sign-in`'s query.
#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    /// The page to come back to.
    return_to: Option<String>,
    /// Set after a password reset.
    reset: Option<String>,
}

/// `POST /sign-in`'s form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    /// The account's email.
    pub email: String,
    /// The account's password.
    pub password: String,
    /// The page to come back to.
    return_to: Option<String>,
}

/// `GET /oauth/callback`'s query (Keyport reads the rest of it).
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    /// The provider's refusal (`access_denied`...), if it refused.
    error: Option<String>,
}

/// `GET /sessions`' query: what the last revocation did.
#[derive(Debug, Deserialize)]
pub struct SessionsQuery {
    revoked: Option<String>,
    others: Option<String>,
}

/// `POST /forgot-password`'s form.
#[derive(Debug, Deserialize)]
pub struct ForgotPasswordForm {
    /// The address to send a reset link to.
    pub email: String,
}

/// `GET /reset-password` and `GET /verify-email`: the link's token.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    /// The `kpm_...` token from the mail's link.
    #[serde(default)]
    pub token: String,
}

/// `POST /sign-in/email/start`'s form.
#[derive(Debug, Deserialize)]
pub struct EmailSignInForm {
    /// The address to send a code and a link to.
    pub email: String,
}

/// `POST /sign-in/email`'s form.
#[derive(Debug, Deserialize)]
pub struct EmailCodeForm {
    /// The mailed six-digit code.
    pub code: String,
}

/// `POST /sign-in/second-factor`'s form: a code, or a passkey's answer.
#[derive(Debug, Deserialize)]
pub struct SecondFactorForm {
    /// The authenticator app's code, or a backup code.
    #[serde(default)]
    pub code: String,
    /// A passkey's answer (`PublicKeyCredential` JSON), from the page's script.
    #[serde(default)]
    pub credential: String,
}

impl SecondFactorForm {
    /// The answer the form carries.
    pub fn answer(&self) -> FactorAnswer<'_> {
        if self.credential.is_empty() { factor_answer(&self.code) } else { FactorAnswer::Passkey(&self.credential) }
    }
}

/// `POST /sign-in/step-up`'s form: a code, or a passkey's answer to the
/// ceremony `POST /sign-in/step-up/passkey` started.
#[derive(Debug, Deserialize)]
pub struct StepUpForm {
    /// The authenticator app's code, or a backup code.
    #[serde(default)]
    pub code: String,
    /// The passkey step-up's ceremony.
    #[serde(default)]
    pub ceremony: String,
    /// A passkey's answer (`PublicKeyCredential` JSON).
    #[serde(default)]
    pub credential: String,
    /// The page to come back to.
    #[serde(default)]
    pub return_to: Option<String>,
}

/// `POST /passkeys`' form: a started registration's answer.
#[derive(Debug, Deserialize)]
pub struct PasskeyForm {
    /// The registration's ceremony.
    pub ceremony: String,
    /// The browser's answer (`PublicKeyCredential` JSON).
    #[serde(default)]
    pub credential: String,
    /// A name for the passkey (optional).
    #[serde(default)]
    pub name: String,
}

/// `POST /passkeys/rename` and `POST /passkeys/delete`'s form.
#[derive(Debug, Deserialize)]
pub struct PasskeyIdForm {
    /// The passkey.
    pub id: String,
    /// The new name (renaming only).
    #[serde(default)]
    pub name: String,
}

/// `POST /sign-in/passkey`'s form.
#[derive(Debug, Deserialize)]
pub struct PasskeySignInForm {
    /// The browser's answer (`PublicKeyCredential` JSON).
    #[serde(default)]
    pub credential: String,
}

/// `POST /api-keys`' form.
#[derive(Debug, Deserialize)]
pub struct ApiKeyForm {
    /// What the key is for.
    pub name: String,
    /// The one permission it may use.
    pub scope: String,
}

/// A form naming one thing by its id (`POST /api-keys/revoke`,
/// `/organizations/switch`, `/invitations/accept`), or the query of
/// `GET /organizations/members`.
#[derive(Debug, Deserialize)]
pub struct IdForm {
    /// The id.
    pub id: String,
}

/// `GET /organizations`' query.
#[derive(Debug, Deserialize)]
pub struct OrganizationsQuery {
    /// An invitation to accept (the link of an invitation mail).
    pub invitation: Option<String>,
}

/// `POST /organizations`' form.
#[derive(Debug, Deserialize)]
pub struct OrganizationForm {
    /// Display name.
    pub name: String,
    /// Unique handle.
    pub slug: String,
}

/// `POST /organizations/invite`'s form.
#[derive(Debug, Deserialize)]
pub struct InviteForm {
    /// The organization.
    pub organization: String,
    /// The address to invite.
    pub email: String,
    /// The role it gives.
    pub role: String,
}

/// `GET /passkeys`' query: what the last change did.
#[derive(Debug, Deserialize)]
pub struct PasskeysQuery {
    added: Option<String>,
    renamed: Option<String>,
    deleted: Option<String>,
}

/// `POST /reset-password`'s form.
#[derive(Debug, Deserialize)]
pub struct ResetPasswordForm {
    /// The link's token, carried through the form.
    pub token: String,
    /// The new password.
    pub password: String,
}

/// `POST /sessions/revoke`'s form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    /// The session to end.
    pub session_id: String,
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Site {
    /// The middleware's guard: its client lists providers, its settings
    /// name the cookies.
    guard: Guard,
    /// The redirect URI of every OAuth flow: `{PUBLIC_URL}/oauth/callback`.
    callback: Arc<str>,
}

impl Site {
    /// The site whose handlers use `guard`, with OAuth redirect URI `callback`.
    pub fn new(guard: Guard, callback: impl Into<Arc<str>>) -> Self {
        Self { guard, callback: callback.into() }
    }

    /// The middleware's guard.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The redirect URI of every OAuth flow: `{PUBLIC_URL}/oauth/callback`.
    pub fn callback(&self) -> &str {
        &self.callback
    }

    // ----- Pages -----

    /// `GET /`.
    pub fn home<C>(&self, user: Option<&Principal>) -> Answer<C> {
        Answer::page(200, html::home(user))
    }

    /// Any other path.
    pub fn not_found<C>(&self, user: Option<&Principal>) -> Answer<C> {
        Answer::page(404, html::problem(user, "Not found", "There is no page here."))
    }

    /// `GET /dashboard`.
    pub async fn dashboard<C>(&self, user: &Principal, query: &DashboardQuery) -> Answer<C> {
        let providers = self.providers().await;
        let notice = match (&query.linked, &query.welcome, &query.verify) {
            (Some(id), _, _) => Some(format!("Linked your {} account.", html::provider_name(&providers, id))),
            (None, Some(_), _) => Some("Welcome! Your account was created.".to_owned()),
            (None, None, Some(_)) => Some("A verification link is on its way to your mailbox.".to_owned()),
            (None, None, None) => None,
        };
        Answer::page(200, html::dashboard(user, &providers, notice.as_deref()))
    }

    /// `GET /admin`: the route rule already refused anyone without the role.
    pub fn admin<C>(&self, user: &Principal) -> Answer<C> {
        Answer::page(200, html::admin(user))
    }

    // ----- Sign-up and sign-in -----

    /// `GET /sign-up`.
    pub async fn sign_up_page<C>(&self, user: Option<&Principal>) -> Answer<C> {
        let providers = self.providers().await;
        Answer::page(
            200,
            html::sign_up(user, &html::SignUpForm { providers: &providers, ..html::SignUpForm::default() }),
        )
    }

    /// `POST /sign-up`, once `Auth::sign_up` answered `signed_up`: the cookie
    /// header signs the new account in at once, a "check your mail" page
    /// when Keyport requires verified addresses, or the form again.
    pub async fn signed_up<C>(
        &self,
        user: Option<&Principal>,
        form: &SignUpForm,
        signed_up: Result<SignedUp<C>, Error>,
    ) -> Answer<C> {
        match signed_up {
            Ok(SignedUp::SignedIn(_, cookie)) => Answer::see_other(AFTER_SIGN_IN).with_cookies([cookie]),
            Ok(_) => Answer::page(
                200,
                html::done(
                    user,
                    "Check your mail",
                    "We mailed you a link. Follow it to verify your address, then sign in.",
                ),
            ),
            Err(error) => {
                let (status, message) = form_error(&error);
                let providers = self.providers().await;
                let again = html::SignUpForm {
                    email: &form.email,
                    name: &form.name,
                    error: Some(&message),
                    providers: &providers,
                };
                Answer::page(status, html::sign_up(user, &again))
            }
        }
    }

    /// `GET /sign-in`.
    pub async fn sign_in_page<C>(&self, user: Option<&Principal>, query: &SignInQuery) -> Answer<C> {
        let return_to = query.return_to.as_deref().and_then(safe_return_path);
        let notice = match (return_to, query.reset.is_some()) {
            (_, true) => Some("Your password was changed. Sign in with the new one."),
            (Some(_), false) => Some("Sign in to see that page."),
            (None, false) => None,
        };
        let providers = self.providers().await;
        let form = html::SignInForm { return_to, notice, providers: &providers, ..html::SignInForm::default() };
        Answer::page(200, html::sign_in(user, &form))
    }

    /// `POST /sign-in`, once `Auth::sign_in` answered `signed_in`: back to
    /// the page asked for (never anywhere but a path on this site: no open
    /// redirect), or the form again.
    pub async fn signed_in<C>(
        &self,
        user: Option<&Principal>,
        form: &SignInForm,
        signed_in: Result<(FirstFactor, C), Error>,
    ) -> Answer<C> {
        let return_to = form.return_to.as_deref().and_then(safe_return_path);
        match signed_in {
            Ok((FirstFactor::SignedIn(_), cookie)) => {
                Answer::see_other(return_to.unwrap_or(AFTER_SIGN_IN)).with_cookies([cookie])
            }
            Ok((_, cookie)) => Answer::see_other(SECOND_FACTOR_PAGE).with_cookies([cookie]),
            Err(error) => {
                let (status, message) = form_error(&error);
                let providers = self.providers().await;
                let again = html::SignInForm {
                    email: &form.email,
                    return_to,
                    error: Some(&message),
                    notice: None,
                    providers: &providers,
                };
                Answer::page(status, html::sign_in(user, &again))
            }
        }
    }

    // ----- Social sign-in -----

    /// The providers configured in Keyport, for the "Sign in with ..." buttons;
    /// none (and a warning) when Keyport cannot say.
    async fn providers(&self) -> Vec<html::Provider> {
        match self.guard.list_providers().await {
            Ok(providers) => providers,
            Err(error) => {
                tracing::warn!(%error, "could not list the sign-in providers");
                Vec::new()
            }
        }
    }

    /// `POST /oauth/start/{provider}` ("Sign in with {provider}"), once
    /// `Auth::start_oauth` answered `started`: the browser goes to the
    /// provider with a cookie binding the flow to it.
    pub fn oauth_started<C>(&self, user: Option<&Principal>, started: Result<(String, C), Error>) -> Answer<C> {
        match started {
            Ok((authorization_url, cookie)) => Answer::see_other(authorization_url).with_cookies([cookie]),
            Err(error) => self.oauth_failed(user, &error, None),
        }
    }

    /// `POST /oauth/link/{provider}` ("Link {provider}"), once
    /// `Auth::link_oauth` answered `started`: the same, for the signed-in
    /// user (the route rule already sent anyone else to sign in).
    pub fn link_started<C>(&self, user: &Principal, started: Result<(String, C), Error>) -> Answer<C> {
        match started {
            Ok((authorization_url, cookie)) => Answer::see_other(authorization_url).with_cookies([cookie]),
            Err(error) if is_signed_out(&error) => Answer::see_other("/sign-in?return_to=%2Fdashboard"),
            Err(error) => self.oauth_failed(Some(user), &error, None),
        }
    }

    /// `GET /oauth/callback`, where the provider sends the browser back,
    /// once `Auth::finish_oauth` answered `finished`: Keyport checked the
    /// state, the binding cookie and the provider's answer, then signed in
    /// (or up, or linked); the answer deletes the binding cookie and sets
    /// the session's.
    pub fn oauth_finished<C: From<String>>(
        &self,
        user: Option<&Principal>,
        query: &CallbackQuery,
        finished: Result<(FinishedOAuth, Vec<C>), Error>,
    ) -> Answer<C> {
        match finished {
            Ok((finished, cookies)) => {
                let location = match finished {
                    FinishedOAuth::SignedIn { new_user: true, .. } => format!("{AFTER_SIGN_IN}?welcome=1"),
                    FinishedOAuth::SignedIn { new_user: false, .. } => AFTER_SIGN_IN.to_owned(),
                    FinishedOAuth::Challenge(_) => SECOND_FACTOR_PAGE.to_owned(),
                    FinishedOAuth::Linked { provider_id, .. } => linked_page(&provider_id),
                };
                Answer::see_other(location).with_cookies(cookies)
            }
            Err(error) => {
                // The flow is over either way: drop its binding cookie too.
                let clear = C::from(self.guard.settings().cookie.clear_oauth_binding());
                self.oauth_failed(user, &error, query.error.as_deref()).with_cookies([clear])
            }
        }
    }

    fn oauth_failed<C>(&self, user: Option<&Principal>, error: &Error, provider_said: Option<&str>) -> Answer<C> {
        tracing::info!(%error, "social sign-in failed");
        let (status, page) = html::oauth_failed(user, error, provider_said, &self.callback);
        Answer::page(status, page)
    }

    // ----- Through the mailbox: verify the address, reset the password -----

    /// `POST /verify-email/send`, once `Auth::request_email_verification`
    /// answered `requested`.
    pub fn verification_requested<C>(&self, user: &Principal, requested: Result<(), Error>) -> Answer<C> {
        match requested {
            Ok(()) => Answer::see_other("/dashboard?verify=sent"),
            Err(error) if is_signed_out(&error) => Answer::see_other("/sign-in?return_to=%2Fdashboard"),
            Err(error) => mail_refused(Some(user), &error),
        }
    }

    /// `GET /verify-email?token=...`, once `Auth::verify_email` answered `verified`.
    pub fn email_verified<C>(&self, user: Option<&Principal>, verified: Result<(), Error>) -> Answer<C> {
        match verified {
            Ok(()) => Answer::page(200, html::done(user, "Email verified", "Thank you: your address is verified.")),
            Err(error) => link_refused(user, &error, "/dashboard", "send a new one from your dashboard"),
        }
    }

    /// `GET /forgot-password`.
    pub fn forgot_password_page<C>(&self, user: Option<&Principal>) -> Answer<C> {
        Answer::page(200, html::forgot_password(user, "", None))
    }

    /// `POST /forgot-password`, once `Auth::request_password_reset` answered
    /// `requested`: the same page for every address, known or not.
    pub fn password_reset_requested<C>(
        &self,
        user: Option<&Principal>,
        form: &ForgotPasswordForm,
        requested: Result<(), Error>,
    ) -> Answer<C> {
        match requested {
            Ok(()) => Answer::page(200, html::reset_link_sent(user)),
            Err(error) if *error.reason() == Reason::InvalidArgument => {
                Answer::page(422, html::forgot_password(user, &form.email, Some("Enter a valid email address.")))
            }
            Err(error) => mail_refused(user, &error),
        }
    }

    /// `GET /reset-password?token=...`: the form; Keyport checks the token
    /// when it is posted.
    pub fn reset_password_page<C>(&self, user: Option<&Principal>, query: &LinkQuery) -> Answer<C> {
        Answer::page(200, html::reset_password(user, &query.token, None))
    }

    /// `POST /reset-password`, once `Auth::reset_password` answered `reset`:
    /// every session ended, so the user signs in again with the new password.
    pub fn password_reset<C: From<String>>(
        &self,
        user: Option<&Principal>,
        form: &ResetPasswordForm,
        reset: Result<u32, Error>,
    ) -> Answer<C> {
        match reset {
            // This browser's session ended too: drop its cookie.
            Ok(_) => {
                Answer::see_other("/sign-in?reset=1").with_cookies([C::from(self.guard.settings().cookie.clear())])
            }
            Err(error)
                if matches!(
                    error.reason(),
                    Reason::WeakPassword
                        | Reason::PasswordTooLong
                        | Reason::PasswordTooCommon
                        | Reason::PasswordContainsEmail
                ) =>
            {
                Answer::page(422, html::reset_password(user, &form.token, Some(&capitalise(error.message()))))
            }
            Err(error) => link_refused(user, &error, "/forgot-password", "ask for a new one"),
        }
    }

    // ----- Sign-in with a mailed code or link -----

    /// `POST /sign-in/email/start`, once `Auth::start_email_sign_in`
    /// answered `started`: the binding cookie, and on to the code form.
    pub fn email_sign_in_started<C>(&self, user: Option<&Principal>, started: Result<C, Error>) -> Answer<C> {
        match started {
            Ok(binding) => Answer::see_other("/sign-in/email").with_cookies([binding]),
            Err(error) if *error.reason() == Reason::InvalidArgument => {
                Answer::page(422, html::email_code(user, Some("Enter a valid email address.")))
            }
            Err(error) => mail_refused(user, &error),
        }
    }

    /// `GET /sign-in/email` without a token: the code form.
    pub fn email_code_page<C>(&self, user: Option<&Principal>) -> Answer<C> {
        Answer::page(200, html::email_code(user, None))
    }

    /// `POST /sign-in/email` (the code) or `GET /sign-in/email?token=...`
    /// (the link), once `Auth::finish_email_sign_in` answered `finished`.
    pub fn email_signed_in<C>(
        &self,
        user: Option<&Principal>,
        finished: Result<(FirstFactor, bool, Vec<C>), Error>,
    ) -> Answer<C> {
        match finished {
            Ok((FirstFactor::SecondFactorRequired(_), _, cookies)) => {
                Answer::see_other(SECOND_FACTOR_PAGE).with_cookies(cookies)
            }
            Ok((_, new_user, cookies)) => {
                let location = if new_user { format!("{AFTER_SIGN_IN}?welcome=1") } else { AFTER_SIGN_IN.to_owned() };
                Answer::see_other(location).with_cookies(cookies)
            }
            Err(error) if *error.reason() == Reason::EmailTokenInvalid => Answer::page(
                400,
                html::email_code(
                    user,
                    Some("That code or link does not work (wrong, used, expired, or from another browser)."),
                ),
            ),
            Err(error) => link_refused(user, &error, "/sign-in", "sign in again"),
        }
    }

    // ----- Second factors -----

    /// `GET /sign-in/second-factor`: the code form of a sign-in's second
    /// step, and a passkey button when `Auth::challenge_passkey_options`
    /// found the challenge's passkey request.
    pub fn second_factor_page<C>(&self, user: Option<&Principal>, passkey_options: Option<String>) -> Answer<C> {
        Answer::page(200, html::second_factor(user, passkey_options.as_deref(), None))
    }

    /// `POST /sign-in/second-factor`, once `Auth::complete_sign_in` (with
    /// [`SecondFactorForm::answer`]) answered `completed`; the page again
    /// shows `passkey_options` (`Auth::challenge_passkey_options`).
    pub fn second_factor_completed<C>(
        &self,
        user: Option<&Principal>,
        passkey_options: Option<String>,
        completed: Result<(SignedIn, Vec<C>), Error>,
    ) -> Answer<C> {
        match completed {
            Ok((_, cookies)) => Answer::see_other(AFTER_SIGN_IN).with_cookies(cookies),
            Err(error) if *error.reason() == Reason::SecondFactorInvalid => Answer::page(
                400,
                html::second_factor(
                    user,
                    passkey_options.as_deref(),
                    Some("That code does not work (wrong, already used, or expired)."),
                ),
            ),
            Err(error) => link_refused(user, &error, "/sign-in", "sign in again"),
        }
    }

    /// `GET /two-factor`, once `Auth::list_factors` answered `status`.
    pub fn two_factor_page<C>(&self, user: &Principal, status: Result<FactorStatus, Error>) -> Answer<C> {
        match status {
            Ok(status) => Answer::page(200, html::two_factor(user, &status)),
            Err(error) => unavailable(Some(user), &error),
        }
    }

    /// `POST /two-factor/enroll`, once `Auth::enroll_totp` answered
    /// `started`: the QR code and the first-code form.
    pub fn totp_enrollment<C>(&self, user: &Principal, started: Result<TotpEnrollment, Error>) -> Answer<C> {
        match started {
            Ok(enrollment) => Answer::page(200, html::totp_enrollment(user, &enrollment, None)),
            Err(error) if *error.reason() == Reason::ReauthenticationRequired => Answer::page(
                403,
                html::problem_with_link(
                    Some(user),
                    "Sign in again first",
                    "Setting up two-step verification needs a sign-in from the last 10 minutes.",
                    "/sign-in?return_to=%2Ftwo-factor",
                    "sign in again",
                ),
            ),
            Err(error) => unavailable(Some(user), &error),
        }
    }

    /// `POST /two-factor/confirm`, once `Auth::confirm_totp` answered
    /// `confirmed`: the backup codes, shown once.
    pub fn totp_confirmed<C>(&self, user: &Principal, confirmed: Result<Vec<String>, Error>) -> Answer<C> {
        match confirmed {
            Ok(codes) => Answer::page(200, html::backup_codes(user, &codes)),
            Err(error) if *error.reason() == Reason::SecondFactorInvalid => Answer::page(
                400,
                html::problem_with_link(
                    Some(user),
                    "That code does not work",
                    "Check the time on your phone and start again.",
                    "/two-factor",
                    "start again",
                ),
            ),
            Err(error) if *error.reason() == Reason::SecondFactorNotEnrolled => Answer::see_other("/two-factor"),
            Err(error) => unavailable(Some(user), &error),
        }
    }

    /// `POST /two-factor/disable`, once `Auth::disable_totp` answered
    /// `disabled`; without a recent second factor, to the step-up page.
    pub fn totp_disabled<C>(&self, user: &Principal, disabled: Result<u32, Error>) -> Answer<C> {
        match disabled {
            Ok(_) => {
                Answer::page(200, html::done(Some(user), "Two-step verification is off", "Your other sessions ended."))
            }
            Err(error) if *error.reason() == Reason::StepUpRequired => {
                Answer::see_other("/sign-in/step-up?return_to=%2Ftwo-factor")
            }
            Err(error) if *error.reason() == Reason::SecondFactorNotEnrolled => Answer::see_other("/two-factor"),
            Err(error) => unavailable(Some(user), &error),
        }
    }

    /// `GET /sign-in/step-up`: a code again, for a page that needs a recent
    /// second factor.
    pub fn step_up_page<C>(&self, user: &Principal, query: &SignInQuery) -> Answer<C> {
        let return_to = query.return_to.as_deref().and_then(safe_return_path);
        Answer::page(200, html::step_up(user, return_to, None))
    }

    /// `POST /sign-in/step-up/passkey`, once `Auth::start_passkey_step_up`
    /// answered `started`: the button that asks the passkey.
    pub fn passkey_step_up_page<C>(
        &self,
        user: &Principal,
        form: &StepUpForm,
        started: Result<PasskeyCeremony, Error>,
    ) -> Answer<C> {
        let return_to = form.return_to.as_deref().and_then(safe_return_path);
        match started {
            Ok(ceremony) => Answer::page(200, html::step_up_passkey(user, return_to, &ceremony)),
            Err(error) if *error.reason() == Reason::SecondFactorNotEnrolled => Answer::page(
                400,
                html::step_up(user, return_to, Some("You have no passkey: use your authenticator app.")),
            ),
            Err(error) => unavailable(Some(user), &error),
        }
    }

    /// `POST /sign-in/step-up`, once [`step_up`] answered `stepped`.
    pub fn stepped_up<C>(&self, user: &Principal, form: &StepUpForm, stepped: Result<(), Error>) -> Answer<C> {
        let return_to = form.return_to.as_deref().and_then(safe_return_path);
        match stepped {
            Ok(()) => Answer::see_other(return_to.unwrap_or(AFTER_SIGN_IN)),
            Err(error) if matches!(error.reason(), Reason::SecondFactorInvalid | Reason::PasskeyInvalid) => {
                Answer::page(400, html::step_up(user, return_to, Some("That did not work: try again.")))
            }
            Err(error) if *error.reason() == Reason::SecondFactorNotEnrolled => Answer::see_other("/two-factor"),
            Err(error) => link_refused(Some(user), &error, "/sign-in/step-up", "try again"),
        }
    }

    // ----- API keys -----

    /// `GET /api-keys`, once `Auth::list_api_keys` answered `listed`; with
    /// the key just made (`created`), shown this once.
    pub fn api_keys_page<C>(
        &self,
        user: &Principal,
        listed: Result<Vec<ApiKeyInfo>, Error>,
        created: Option<Result<CreatedApiKey, Error>>,
    ) -> Answer<C> {
        let (created, problem) = match created {
            Some(Ok(created)) => (Some(created), None),
            Some(Err(error)) => (None, Some(refusal_text(&error))),
            None => (None, None),
        };
        match listed {
            Ok(keys) => {
                let status = if problem.is_some() { 400 } else { 200 };
                Answer::page(status, html::api_keys(user, &keys, created.as_ref(), problem.as_deref()))
            }
            Err(error) => Answer::page(503, html::problem(Some(user), "Keyport did not answer", &error.to_string())),
        }
    }

    /// `POST /api-keys/revoke`, once `Auth::revoke_api_key` answered.
    pub fn api_key_revoked<C>(&self, user: &Principal, revoked: Result<(), Error>) -> Answer<C> {
        match revoked {
            Ok(()) => Answer::see_other("/api-keys"),
            Err(error) => Answer::page(400, html::problem(Some(user), "Not revoked", &refusal_text(&error))),
        }
    }

    /// `GET /api/notes`: the route rule let a session or a key with
    /// `notes:read` through.
    pub fn notes<C>(&self, caller: &Principal) -> Answer<C> {
        let by = match &caller.api_key {
            Some(key) => format!("key {}", key.name),
            None => "session".to_owned(),
        };
        Answer::page(200, format!("notes for {} ({by})", caller.email))
    }

    // ----- Organizations -----

    /// `GET /organizations`, once `Auth::list_my_organizations` answered;
    /// `?invitation=<id>` (the link of an invitation mail) fills in the
    /// invitation to accept.
    pub fn organizations_page<C>(
        &self,
        user: &Principal,
        query: &OrganizationsQuery,
        listed: Result<Vec<OrganizationInfo>, Error>,
    ) -> Answer<C> {
        let invitation = query.invitation.as_deref().unwrap_or_default();
        match listed {
            Ok(organizations) => Answer::page(200, html::organizations(user, &organizations, invitation, None)),
            Err(error) => Answer::page(503, html::problem(Some(user), "Keyport did not answer", &error.to_string())),
        }
    }

    /// An organization change (`POST /organizations`, `/organizations/switch`,
    /// `/invitations/accept`): back to the list, or the refusal.
    pub fn organization_changed<C, T>(&self, user: &Principal, changed: Result<T, Error>) -> Answer<C> {
        match changed {
            Ok(_) => Answer::see_other("/organizations"),
            Err(error) => Answer::page(400, html::organizations(user, &[], "", Some(&refusal_text(&error)))),
        }
    }

    /// `GET /organizations/members?id=...`, once `Auth::list_members` (and,
    /// for a manager, `Auth::list_invitations`) answered.
    pub fn members_page<C>(
        &self,
        user: &Principal,
        organization_id: &str,
        members: Result<Vec<Member>, Error>,
        invitations: Result<Vec<InvitationInfo>, Error>,
    ) -> Answer<C> {
        match members {
            Ok(members) => {
                let invitations = invitations.ok();
                Answer::page(200, html::members(user, organization_id, &members, invitations.as_deref(), None))
            }
            Err(error) => Answer::page(404, html::problem(Some(user), "No such organization", &refusal_text(&error))),
        }
    }

    /// `POST /organizations/invite`, once `Auth::create_invitation` answered.
    pub fn invited<C>(
        &self,
        user: &Principal,
        organization_id: &str,
        invited: Result<InvitationInfo, Error>,
    ) -> Answer<C> {
        match invited {
            Ok(_) => Answer::see_other(format!("/organizations/members?id={organization_id}")),
            Err(error) => Answer::page(400, html::problem(Some(user), "Not invited", &refusal_text(&error))),
        }
    }

    // ----- Passkeys -----

    /// `GET /passkeys`, once `Auth::list_passkeys` answered `listed`.
    pub fn passkeys_page<C>(
        &self,
        user: &Principal,
        query: &PasskeysQuery,
        listed: Result<Vec<Passkey>, Error>,
    ) -> Answer<C> {
        let notice = match (&query.added, &query.renamed, &query.deleted) {
            (Some(_), _, _) => Some("Passkey added. Your other sessions ended."),
            (None, Some(_), _) => Some("Passkey renamed."),
            (None, None, Some(_)) => Some("Passkey deleted. Your other sessions ended."),
            (None, None, None) => None,
        };
        match listed {
            Ok(list) => Answer::page(200, html::passkeys(user, &list, notice)),
            Err(error) => passkey_refused(user, &error),
        }
    }

    /// `POST /passkeys/start`, once `Auth::start_passkey_registration`
    /// answered `started`: the page that creates the passkey.
    pub fn passkey_registration<C>(&self, user: &Principal, started: Result<PasskeyCeremony, Error>) -> Answer<C> {
        match started {
            Ok(ceremony) => Answer::page(200, html::passkey_registration(user, &ceremony)),
            Err(error) => passkey_refused(user, &error),
        }
    }

    /// `POST /passkeys`, once `Auth::finish_passkey_registration` answered.
    pub fn passkey_registered<C>(&self, user: &Principal, finished: Result<Passkey, Error>) -> Answer<C> {
        match finished {
            Ok(_) => Answer::see_other("/passkeys?added=1"),
            Err(error) => passkey_refused(user, &error),
        }
    }

    /// `POST /passkeys/rename`, once `Auth::rename_passkey` answered.
    pub fn passkey_renamed<C>(&self, user: &Principal, renamed: Result<Passkey, Error>) -> Answer<C> {
        match renamed {
            Ok(_) => Answer::see_other("/passkeys?renamed=1"),
            Err(error) => passkey_refused(user, &error),
        }
    }

    /// `POST /passkeys/delete`, once `Auth::delete_passkey` answered;
    /// without a recent second factor, to the step-up page.
    pub fn passkey_deleted<C>(&self, user: &Principal, deleted: Result<u32, Error>) -> Answer<C> {
        match deleted {
            Ok(_) => Answer::see_other("/passkeys?deleted=1"),
            Err(error) => passkey_refused(user, &error),
        }
    }

    /// `POST /sign-in/passkey/start`, once `Auth::start_passkey_sign_in`
    /// answered `started`: the page that asks for a passkey, and the cookie
    /// that binds the ceremony to this browser.
    pub fn passkey_sign_in_page<C>(&self, user: Option<&Principal>, started: Result<(String, C), Error>) -> Answer<C> {
        match started {
            Ok((options, cookie)) => Answer::page(200, html::passkey_sign_in(user, &options)).with_cookies([cookie]),
            Err(error) if *error.reason() == Reason::PasskeysDisabled => {
                Answer::page(404, html::problem(user, "No passkeys here", "This site does not take passkeys."))
            }
            Err(error) => unavailable(user, &error),
        }
    }

    /// `POST /sign-in/passkey`, once `Auth::finish_passkey_sign_in` answered.
    pub fn passkey_signed_in<C>(
        &self,
        user: Option<&Principal>,
        finished: Result<(SignedIn, Vec<C>), Error>,
    ) -> Answer<C> {
        match finished {
            Ok((_, cookies)) => Answer::see_other(AFTER_SIGN_IN).with_cookies(cookies),
            Err(error) if *error.reason() == Reason::PasskeyInvalid => Answer::page(
                401,
                html::problem_with_link(
                    user,
                    "That passkey did not sign you in",
                    "It is not registered here, or the attempt expired.",
                    "/sign-in",
                    "try again",
                ),
            ),
            Err(error) => unavailable(user, &error),
        }
    }

    // ----- Sign-out and sessions -----

    /// `POST /sign-out`, once `Auth::sign_out` answered `signed_out`: it
    /// ended the session in Keyport (every app sharing it sees that at once)
    /// and the cookie header deletes the cookie; it succeeds if there was no
    /// session.
    pub fn signed_out<C>(&self, signed_out: Result<C, Error>) -> Answer<C> {
        match signed_out {
            Ok(cookie) => Answer::see_other("/").with_cookies([cookie]),
            Err(error) => unavailable(None, &error),
        }
    }

    /// `GET /sessions`, once `Auth::list_sessions` answered `listed`.
    pub fn sessions<C>(
        &self,
        user: &Principal,
        query: &SessionsQuery,
        listed: Result<Vec<SessionSummary>, Error>,
    ) -> Answer<C> {
        let notice = match (query.revoked.as_deref(), query.others.as_deref().and_then(|n| n.parse::<u32>().ok())) {
            (Some("gone"), _) => Some("That session had already ended.".to_owned()),
            (Some(_), _) => Some("Session revoked.".to_owned()),
            (None, Some(1)) => Some("Signed out 1 other session.".to_owned()),
            (None, Some(n)) => Some(format!("Signed out {n} other sessions.")),
            (None, None) => None,
        };
        match listed {
            Ok(list) => Answer::page(200, html::sessions(user, &list, notice.as_deref())),
            Err(error) if is_signed_out(&error) => Answer::see_other("/sign-in?return_to=%2Fsessions"),
            Err(error) => unavailable(Some(user), &error),
        }
    }

    /// `POST /sessions/revoke`, once `Auth::revoke_session` answered `revoked`.
    pub fn revoked_session<C>(&self, user: &Principal, revoked: Result<(), Error>) -> Answer<C> {
        match revoked {
            Ok(()) => Answer::see_other("/sessions?revoked=1"),
            Err(error) if *error.reason() == Reason::SessionNotFound => Answer::see_other("/sessions?revoked=gone"),
            Err(error) if is_signed_out(&error) => Answer::see_other("/sign-in?return_to=%2Fsessions"),
            Err(error) => unavailable(Some(user), &error),
        }
    }

    /// `POST /sessions/revoke-others`, once `Auth::revoke_other_sessions`
    /// answered `revoked` (how many).
    pub fn revoked_other_sessions<C>(&self, user: &Principal, revoked: Result<u32, Error>) -> Answer<C> {
        match revoked {
            Ok(count) => Answer::see_other(format!("/sessions?others={count}")),
            Err(error) if is_signed_out(&error) => Answer::see_other("/sign-in?return_to=%2Fsessions"),
            Err(error) => unavailable(Some(user), &error),
        }
    }
}

/// The second factor a typed code is: six digits are the authenticator
/// app's, anything else a backup code.
pub fn factor_answer(code: &str) -> FactorAnswer<'_> {
    let digits = code.trim();
    if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        FactorAnswer::Totp(digits)
    } else {
        FactorAnswer::BackupCode(code)
    }
}

/// The dashboard announcing the link (provider ids are `a-z 0-9 - _`).
fn linked_page(provider_id: &str) -> String {
    if provider_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        format!("{AFTER_SIGN_IN}?linked={provider_id}")
    } else {
        AFTER_SIGN_IN.to_owned()
    }
}

fn is_signed_out(error: &Error) -> bool {
    matches!(error.reason(), Reason::Unauthenticated | Reason::SessionExpired)
}

/// What to tell someone whose sign-up or sign-in failed: the status and
/// the message.
fn form_error(error: &Error) -> (u16, String) {
    match error.reason() {
        Reason::InvalidCredentials => (401, "Wrong email or password.".to_owned()),
        Reason::EmailTaken => (409, "An account with this email already exists.".to_owned()),
        // Keyport's messages for these are written for people
        // ("password must be at least 8 characters").
        Reason::WeakPassword | Reason::PasswordTooLong => (422, capitalise(error.message())),
        Reason::InvalidArgument => {
            let message = match error.field_violations() {
                [] => capitalise(error.message()),
                violations => violations
                    .iter()
                    .map(|(field, description)| format!("{}: {description}.", capitalise(field)))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            (422, message)
        }
        Reason::RateLimited => (429, "Too many failed attempts. Wait a little and try again.".to_owned()),
        Reason::EmailNotVerified => {
            (403, "Verify your email address first: follow the link we mailed you when you signed up.".to_owned())
        }
        _ => {
            tracing::warn!(%error, "keyport call failed");
            (503, "Signing in is unavailable right now. Try again shortly.".to_owned())
        }
    }
}

/// A mail that could not be requested: not set up, or too many for now.
fn mail_refused<C>(user: Option<&Principal>, error: &Error) -> Answer<C> {
    match error.reason() {
        Reason::MailDisabled => Answer::page(
            503,
            html::problem(
                user,
                "Mail is not set up",
                "This Keyport has no mail delivery configured ([mail] in its config).",
            ),
        ),
        Reason::RateLimited => Answer::page(
            429,
            html::problem(user, "Not so fast", "Several mails went out already. Wait a little and try again."),
        ),
        _ => unavailable(user, error),
    }
}

/// A verification or reset link that no longer works.
fn link_refused<C>(user: Option<&Principal>, error: &Error, again: &str, how: &str) -> Answer<C> {
    match error.reason() {
        Reason::EmailTokenInvalid => Answer::page(
            400,
            html::problem_with_link(
                user,
                "This link no longer works",
                "It was used already, replaced by a newer one, or it expired.",
                again,
                how,
            ),
        ),
        Reason::SignInChallengeInvalid => Answer::page(
            400,
            html::problem_with_link(
                user,
                "Sign in again",
                "This sign-in took too long or had too many wrong codes.",
                again,
                how,
            ),
        ),
        Reason::RateLimited => Answer::page(429, html::problem(user, "Not so fast", "Wait a little and try again.")),
        _ => unavailable(user, error),
    }
}

/// Steps up a session with what `form` carries: a passkey's answer to its
/// ceremony, or a code.
pub async fn step_up<C: From<String>>(auth: &keyport_client::web::Auth<C>, form: &StepUpForm) -> Result<(), Error> {
    if form.credential.is_empty() {
        auth.step_up(factor_answer(&form.code)).await
    } else {
        auth.step_up_with_passkey(&form.ceremony, &form.credential).await
    }
}

/// What to show when a passkey call failed.
/// What a refusal says, with its reason for the curious.
fn refusal_text(error: &Error) -> String {
    format!("{} ({:?})", error.message(), error.reason())
}

fn passkey_refused<C>(user: &Principal, error: &Error) -> Answer<C> {
    match error.reason() {
        Reason::StepUpRequired => Answer::see_other("/sign-in/step-up?return_to=%2Fpasskeys"),
        Reason::ReauthenticationRequired => Answer::page(
            403,
            html::problem_with_link(
                Some(user),
                "Sign in again first",
                "Adding a passkey needs a sign-in from the last 10 minutes.",
                "/sign-in?return_to=%2Fpasskeys",
                "sign in again",
            ),
        ),
        Reason::PasskeyInvalid => Answer::page(
            400,
            html::problem_with_link(
                Some(user),
                "That did not work",
                "The passkey's answer was refused.",
                "/passkeys",
                "start again",
            ),
        ),
        Reason::PasskeyNotFound => Answer::see_other("/passkeys"),
        Reason::InvalidArgument => Answer::page(
            400,
            html::problem_with_link(
                Some(user),
                "That name does not work",
                "Use 1 to 64 characters.",
                "/passkeys",
                "try again",
            ),
        ),
        Reason::PasskeysDisabled => {
            Answer::page(404, html::problem(Some(user), "No passkeys here", "This site does not take passkeys."))
        }
        _ => unavailable(Some(user), error),
    }
}

fn unavailable<C>(user: Option<&Principal>, error: &Error) -> Answer<C> {
    tracing::warn!(%error, "keyport call failed");
    Answer::page(503, html::problem(user, "Try again", "Keyport is unavailable right now. Try again shortly."))
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
