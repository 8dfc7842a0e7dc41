//! `OAuthService`: social sign-in against a real OpenID Connect provider
//! (`oidc-provider` from npm, started by the test) and a GitHub-shaped
//! OAuth2 server, with the attacks RFC 9700 and ASVS V10 care about.

use std::time::Duration;

use keyport_oauth::{ProviderKindSetting, ProviderSettings};
use keyport_proto::v1::{
    FinishOAuthRequest, FinishOAuthResponse, ListLinkedAccountsRequest, ListProvidersRequest, StartOAuthRequest,
    StartOAuthResponse, UnlinkAccountRequest, finish_o_auth_response::Outcome,
    o_auth_service_client::OAuthServiceClient,
};
use keyport_tests::{
    Backend, TestServer,
    github::{self, FakeGitHub, GitHubEmail, GitHubUser},
    grpc::{authed, reason},
    oidc::{self, Login, OidcProvider, Tamper},
};
use tonic::{Status, transport::Channel};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    oidc_signs_up_then_signs_in_the_same_user,
    github_signs_up_with_the_primary_verified_email,
    a_signed_in_user_links_and_unlinks_explicitly,
    the_last_sign_in_method_cannot_be_unlinked,
    an_unverified_account_is_never_taken_over,
    verified_emails_on_both_sides_link_automatically,
    state_must_be_present_correct_bound_and_unused,
    redirect_uris_must_match_the_allow_list,
    expired_flows_are_refused,
    provider_errors_are_reported,
    codes_are_single_use_and_pkce_bound,
    tampered_id_tokens_are_refused,
    many_people_finish_at_once,
);

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Keyport with both providers configured.
struct Harness {
    keyport: TestServer,
    oidc: OidcProvider,
    github: FakeGitHub,
}

impl Harness {
    async fn start(backend: Backend) -> Result<Self, BoxError> {
        let oidc = OidcProvider::start(&[REDIRECT])?;
        let github = FakeGitHub::start(&[REDIRECT])?;
        let providers = vec![
            ProviderSettings {
                id: "corp".into(),
                kind: ProviderKindSetting::Oidc,
                display_name: "Corp SSO".into(),
                issuer: oidc.issuer().into(),
                client_id: oidc::CLIENT_ID.into(),
                client_secret: oidc::CLIENT_SECRET.into(),
                ..settings()
            },
            ProviderSettings {
                id: "github".into(),
                kind: ProviderKindSetting::Github,
                display_name: "GitHub".into(),
                client_id: github::CLIENT_ID.into(),
                client_secret: github::CLIENT_SECRET.into(),
                authorize_url: github.authorize_url(),
                token_url: github.token_url(),
                api_base_url: github.api_url().into(),
                ..settings()
            },
        ];
        let keyport = TestServer::start_with(backend, |config| {
            config.oauth.redirect_uris = vec![REDIRECT.into()];
            config.oauth.providers = providers;
        })
        .await?;
        Ok(Self { keyport, oidc, github })
    }

    fn oauth(&self) -> OAuthServiceClient<Channel> {
        OAuthServiceClient::new(self.keyport.channel())
    }

    async fn start_flow(&self, provider: &str) -> Result<StartOAuthResponse, Status> {
        let request = StartOAuthRequest { provider_id: provider.into(), redirect_uri: REDIRECT.into(), link: false };
        Ok(self.oauth().start_o_auth(request).await?.into_inner())
    }

    /// Starts a flow, logs in at the OIDC provider as `login`, and finishes.
    async fn oidc_sign_in(&self, login: &Login) -> Result<FinishOAuthResponse, BoxError> {
        let started = self.start_flow("corp").await?;
        self.oidc.next_login(login).await?;
        let callback = self.oidc.follow(&started.authorization_url).await?;
        Ok(self.finish(&started, callback.code.unwrap_or_default(), callback.state.unwrap_or_default()).await?)
    }

    async fn finish(
        &self,
        started: &StartOAuthResponse,
        code: String,
        state: String,
    ) -> Result<FinishOAuthResponse, Status> {
        let request = FinishOAuthRequest {
            state,
            code,
            redirect_uri: REDIRECT.into(),
            binding: started.binding.clone(),
            error: String::new(),
        };
        Ok(self.oauth().finish_o_auth(request).await?.into_inner())
    }
}

fn settings() -> ProviderSettings {
    ProviderSettings {
        id: String::new(),
        kind: ProviderKindSetting::Oidc,
        display_name: String::new(),
        issuer: String::new(),
        client_id: String::new(),
        client_secret: String::new(),
        client_secret_env: String::new(),
        scopes: Vec::new(),
        authorize_url: String::new(),
        token_url: String::new(),
        api_base_url: String::new(),
    }
}

fn login(sub: &str, email: &str, email_verified: bool) -> Login {
    Login { sub: sub.into(), email: email.into(), email_verified, name: "Ada Lovelace".into() }
}

fn session_of(response: &FinishOAuthResponse) -> Result<(String, String), BoxError> {
    match &response.outcome {
        Some(Outcome::Session(grant)) => {
            let user = grant.user.as_ref().ok_or("no user")?;
            Ok((grant.token.clone(), user.id.clone()))
        }
        other => Err(format!("expected a session, got {other:?}").into()),
    }
}

async fn oidc_signs_up_then_signs_in_the_same_user(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    let providers = h.oauth().list_providers(ListProvidersRequest {}).await?.into_inner().providers;
    let ids: Vec<&str> = providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["corp", "github"]);

    let first = h.oidc_sign_in(&login("sub-1", "Ada@Example.com", true)).await?;
    assert!(first.new_user);
    let (token, user_id) = session_of(&first)?;
    let user = match &first.outcome {
        Some(Outcome::Session(grant)) => grant.user.clone().ok_or("no user")?,
        _ => return Err("no session".into()),
    };
    assert_eq!(
        (user.email.as_str(), user.email_verified, user.name.as_str()),
        ("ada@example.com", true, "Ada Lovelace")
    );
    h.keyport.sessions().get_session(keyport_proto::v1::GetSessionRequest { token }).await?;

    let again = h.oidc_sign_in(&login("sub-1", "ada@example.com", true)).await?;
    assert!(!again.new_user);
    assert_eq!(session_of(&again)?.1, user_id, "the same external identity is the same user");
    assert_eq!(h.keyport.count("users").await?, 1);
    assert_eq!(h.keyport.count("accounts").await?, 1);
    assert_eq!(h.keyport.count("oauth_flows").await?, 0, "finished flows are gone");
    Ok(())
}

async fn github_signs_up_with_the_primary_verified_email(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    let started = h.start_flow("github").await?;
    h.github.next_login(&GitHubUser {
        id: 4242,
        login: "octo".into(),
        name: "Octo Cat".into(),
        emails: vec![
            GitHubEmail { email: "old@example.com".into(), primary: false, verified: false },
            GitHubEmail { email: "octo@example.com".into(), primary: true, verified: true },
        ],
    });
    let callback = h.github.follow(&started.authorization_url).await?;
    let finished = h.finish(&started, callback.code.unwrap_or_default(), callback.state.unwrap_or_default()).await?;
    assert!(finished.new_user);
    let (token, _) = session_of(&finished)?;
    let accounts = h.oauth().list_linked_accounts(authed(ListLinkedAccountsRequest {}, &token)).await?.into_inner();
    let account = accounts.accounts.first().ok_or("no linked account")?;
    assert_eq!((account.provider_id.as_str(), account.subject.as_str()), ("github", "4242"));
    assert_eq!(account.email, "octo@example.com");
    let verified =
        h.keyport.scalar("SELECT COUNT(*) FROM users WHERE email = 'octo@example.com' AND email_verified").await?;
    assert_eq!(verified, 1);
    Ok(())
}

async fn a_signed_in_user_links_and_unlinks_explicitly(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    let link = StartOAuthRequest { provider_id: "corp".into(), redirect_uri: REDIRECT.into(), link: true };
    // Linking needs a session.
    let status = h.oauth().start_o_auth(link.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "UNAUTHENTICATED");
    let started = h.oauth().start_o_auth(authed(link, &token)).await?.into_inner();
    h.oidc.next_login(&login("corp-ann", "ann.work@corp.example", false)).await?;
    let callback = h.oidc.follow(&started.authorization_url).await?;
    let finished = h.finish(&started, callback.code.unwrap_or_default(), callback.state.unwrap_or_default()).await?;
    let Some(Outcome::Linked(account)) = finished.outcome else { return Err("expected a link".into()) };
    assert_eq!(account.subject, "corp-ann");

    // The linked identity now signs in as ann, whatever its email says.
    let signed_in = h.oidc_sign_in(&login("corp-ann", "ann.work@corp.example", false)).await?;
    let ann = h.keyport.scalar("SELECT COUNT(*) FROM users").await?;
    assert_eq!(ann, 1);
    assert!(!signed_in.new_user);

    let unlink = UnlinkAccountRequest { provider_id: "corp".into(), subject: "corp-ann".into() };
    h.oauth().unlink_account(authed(unlink.clone(), &token)).await?;
    let status = h.oauth().unlink_account(authed(unlink, &token)).await.unwrap_err();
    assert_eq!(reason(&status), "LINKED_ACCOUNT_NOT_FOUND");
    assert_eq!(h.keyport.count("accounts").await?, 0);
    Ok(())
}

async fn the_last_sign_in_method_cannot_be_unlinked(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    let (token, _) = session_of(&h.oidc_sign_in(&login("only-way", "solo@example.com", true)).await?)?;
    let unlink = UnlinkAccountRequest { provider_id: "corp".into(), subject: "only-way".into() };
    let status = h.oauth().unlink_account(authed(unlink, &token)).await.unwrap_err();
    assert_eq!(reason(&status), "LAST_SIGN_IN_METHOD");
    assert_eq!(h.keyport.count("accounts").await?, 1);
    Ok(())
}

async fn an_unverified_account_is_never_taken_over(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    h.keyport.sign_up("victim@example.com").await?;
    // The Keyport account's email is unverified: even a provider that
    // vouches for the address may not join it, nor one that does not.
    for verified in [true, false] {
        let status = h.oidc_sign_in(&login("attacker", "victim@example.com", verified)).await.unwrap_err();
        let status = status.downcast_ref::<Status>().ok_or("not a status")?;
        assert_eq!(reason(status), "ACCOUNT_LINK_REFUSED");
    }
    assert_eq!(h.keyport.count("users").await?, 1);
    assert_eq!(h.keyport.count("accounts").await?, 0);
    assert_eq!(h.keyport.count("sessions").await?, 1, "no session for the attacker");
    let audited = h.keyport.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'oauth_failed'").await?;
    assert_eq!(audited, 2);
    Ok(())
}

async fn verified_emails_on_both_sides_link_automatically(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    h.keyport.sign_up("ann@example.com").await?;
    sea_orm::ConnectionTrait::execute_unprepared(&h.keyport.db, "UPDATE users SET email_verified = TRUE").await?;
    let unverified = h.oidc_sign_in(&login("g-ann", "ann@example.com", false)).await.unwrap_err();
    assert_eq!(reason(unverified.downcast_ref::<Status>().ok_or("not a status")?), "ACCOUNT_LINK_REFUSED");
    let finished = h.oidc_sign_in(&login("g-ann", "ann@example.com", true)).await?;
    assert!(!finished.new_user);
    assert_eq!(h.keyport.count("users").await?, 1);
    assert_eq!(h.keyport.count("accounts").await?, 1);
    Ok(())
}

async fn state_must_be_present_correct_bound_and_unused(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    let started = h.start_flow("corp").await?;
    h.oidc.next_login(&login("s", "s@example.com", true)).await?;
    let callback = h.oidc.follow(&started.authorization_url).await?;
    let code = callback.code.clone().unwrap_or_default();
    let state = callback.state.clone().unwrap_or_default();
    assert_eq!(state, started.state);

    for (bad_state, why) in [("", "missing"), ("not-the-state", "wrong"), (&*"s".repeat(5000), "oversized")] {
        let status = h.finish(&started, code.clone(), bad_state.into()).await.unwrap_err();
        assert_eq!(reason(&status), "OAUTH_STATE_INVALID", "{why}");
    }
    // The right state from another browser (no or a wrong binding) is refused, and burns the flow.
    let mut other_browser = started.clone();
    other_browser.binding = "someone-elses-binding".into();
    let status = h.finish(&other_browser, code.clone(), state.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_STATE_INVALID");
    let status = h.finish(&started, code, state).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_STATE_INVALID", "a flow is single-use, even after a failure");

    // A successful flow cannot be replayed.
    let started = h.start_flow("corp").await?;
    h.oidc.next_login(&login("s", "s@example.com", true)).await?;
    let callback = h.oidc.follow(&started.authorization_url).await?;
    let (code, state) = (callback.code.unwrap_or_default(), callback.state.unwrap_or_default());
    h.finish(&started, code.clone(), state.clone()).await?;
    let status = h.finish(&started, code, state).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_STATE_INVALID");
    assert_eq!(h.keyport.count("sessions").await?, 1);
    Ok(())
}

async fn redirect_uris_must_match_the_allow_list(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    for uri in [
        "http://127.0.0.1:9/oauth/callback/",
        "http://evil.example/oauth/callback",
        "",
        "http://127.0.0.1:9/oauth/callback?x=1",
    ] {
        let request = StartOAuthRequest { provider_id: "corp".into(), redirect_uri: uri.into(), link: false };
        let status = h.oauth().start_o_auth(request).await.unwrap_err();
        assert_eq!(reason(&status), "REDIRECT_URI_NOT_ALLOWED", "{uri}");
    }
    let unknown = StartOAuthRequest { provider_id: "nope".into(), redirect_uri: REDIRECT.into(), link: false };
    assert_eq!(reason(&h.oauth().start_o_auth(unknown).await.unwrap_err()), "OAUTH_PROVIDER_UNKNOWN");

    let started = h.start_flow("corp").await?;
    let request = FinishOAuthRequest {
        state: started.state.clone(),
        code: "whatever".into(),
        redirect_uri: "http://evil.example/oauth/callback".into(),
        binding: started.binding.clone(),
        error: String::new(),
    };
    let status = h.oauth().finish_o_auth(request).await.unwrap_err();
    assert_eq!(reason(&status), "REDIRECT_URI_NOT_ALLOWED", "the finish must use the start's redirect URI");
    assert_eq!(h.keyport.count("oauth_flows").await?, 0);
    Ok(())
}

async fn expired_flows_are_refused(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    let started = h.start_flow("corp").await?;
    h.oidc.next_login(&login("late", "late@example.com", true)).await?;
    let callback = h.oidc.follow(&started.authorization_url).await?;
    h.keyport.clock.advance(Duration::from_secs(10 * 60 + 1));
    let status =
        h.finish(&started, callback.code.unwrap_or_default(), callback.state.unwrap_or_default()).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_STATE_INVALID");
    assert_eq!(h.keyport.count("users").await?, 0);
    Ok(())
}

async fn provider_errors_are_reported(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    let started = h.start_flow("corp").await?;
    h.oidc.next_error("access_denied").await?;
    let callback = h.oidc.follow(&started.authorization_url).await?;
    assert_eq!(callback.error.as_deref(), Some("access_denied"));
    let request = FinishOAuthRequest {
        state: callback.state.unwrap_or_default(),
        code: String::new(),
        redirect_uri: REDIRECT.into(),
        binding: started.binding.clone(),
        error: "access_denied".into(),
    };
    let status = h.oauth().finish_o_auth(request).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_PROVIDER_ERROR");
    assert_eq!(h.keyport.count("users").await?, 0);
    Ok(())
}

async fn codes_are_single_use_and_pkce_bound(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    // Flow A's code presented with flow B: Keyport sends B's PKCE verifier.
    let a = h.start_flow("corp").await?;
    let b = h.start_flow("corp").await?;
    h.oidc.next_login(&login("p", "p@example.com", true)).await?;
    let code_a = h.oidc.follow(&a.authorization_url).await?.code.unwrap_or_default();
    let status = h.finish(&b, code_a.clone(), b.state.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_PROVIDER_ERROR", "PKCE verifier mismatch");

    // The provider keeps a code whose exchange failed verification: flow A
    // still works with its own verifier. Once redeemed, the code is dead.
    h.finish(&a, code_a.clone(), a.state.clone()).await?;
    let c = h.start_flow("corp").await?;
    let status = h.finish(&c, code_a, c.state.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_PROVIDER_ERROR", "code reuse");

    // The same on the GitHub path.
    let e = h.start_flow("github").await?;
    h.github.next_login(&GitHubUser {
        id: 7,
        login: "g".into(),
        name: String::new(),
        emails: vec![GitHubEmail { email: "g@example.com".into(), primary: true, verified: true }],
    });
    let code_e = h.github.follow(&e.authorization_url).await?.code.unwrap_or_default();
    let d = h.start_flow("github").await?;
    let status = h.finish(&d, code_e, d.state.clone()).await.unwrap_err();
    assert_eq!(reason(&status), "OAUTH_PROVIDER_ERROR");
    assert_eq!(h.keyport.count("users").await?, 1, "only flow A signed anyone up");
    Ok(())
}

async fn tampered_id_tokens_are_refused(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    for tamper in Tamper::ALL {
        let started = h.start_flow("corp").await?;
        h.oidc.next_login(&login("t", "t@example.com", true)).await?;
        h.oidc.tamper_next_token(tamper).await?;
        let callback = h.oidc.follow(&started.authorization_url).await?;
        let status = h
            .finish(&started, callback.code.unwrap_or_default(), callback.state.unwrap_or_default())
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "OAUTH_ID_TOKEN_INVALID", "{tamper:?}");
    }
    assert_eq!(h.keyport.count("users").await?, 0);
    assert_eq!(h.keyport.count("sessions").await?, 0);
    Ok(())
}

async fn many_people_finish_at_once(backend: Backend) -> TestResult {
    let h = Harness::start(backend).await?;
    // Eight people at the provider's consent screen...
    let mut pending = Vec::new();
    for i in 0..8 {
        let started = h.start_flow("corp").await?;
        h.oidc.next_login(&login(&format!("sub-{i}"), &format!("p{i}@example.com"), true)).await?;
        let callback = h.oidc.follow(&started.authorization_url).await?;
        pending.push((started, callback.code.unwrap_or_default(), callback.state.unwrap_or_default()));
    }
    // ...come back at the same moment: each is signed up, none gets INTERNAL.
    let results = futures::future::join_all(
        pending.iter().map(|(started, code, state)| h.finish(started, code.clone(), state.clone())),
    )
    .await;
    for result in &results {
        if let Err(status) = result {
            panic!("a concurrent FinishOAuth failed: {status:?}");
        }
    }
    assert_eq!(h.keyport.count("users").await?, 8);

    // One callback replayed eight times at once: exactly one wins.
    let started = h.start_flow("corp").await?;
    h.oidc.next_login(&login("sub-replayed", "r@example.com", true)).await?;
    let callback = h.oidc.follow(&started.authorization_url).await?;
    let (code, state) = (callback.code.unwrap_or_default(), callback.state.unwrap_or_default());
    let replays = futures::future::join_all((0..8).map(|_| h.finish(&started, code.clone(), state.clone()))).await;
    assert_eq!(replays.iter().filter(|r| r.is_ok()).count(), 1);
    for status in replays.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(reason(status), "OAUTH_STATE_INVALID", "{status:?}");
    }
    Ok(())
}
