//! The domain rules through [`Accounts`], on a [`MemoryStore`] and a
//! [`ManualClock`]: no server, no database, no sleeps.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;

use super::{Accounts, AccountsConfig};
use crate::{
    Timestamp,
    audit::AuditKind,
    clock::ManualClock,
    error::Error,
    oauth::{
        AuthorizationRequest, Callback, ExternalIdentity, IdentityProvider, OAuthConfig, OAuthOutcome, ProviderError,
        ProviderInfo, ProviderKind, StartedFlow,
    },
    password::HashParams,
    second_factor::{FactorKey, FactorKeys, FactorSettings, PasskeySettings, RelyingParty},
    session::{ClientInfo, SessionPolicy},
    store::memory::MemoryStore,
};

mod factors;
mod oauth_callback;
mod passkeys;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const HOUR: Duration = Duration::from_secs(3600);
const PASSWORD: &str = "correct horse battery";
const REDIRECT_URI: &str = "https://app.example/callback";

/// A provider that says every code belongs to `identity`.
struct FakeProvider {
    info: ProviderInfo,
    identity: ExternalIdentity,
    flows: AtomicU32,
}

#[async_trait]
impl IdentityProvider for FakeProvider {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, ProviderError> {
        let state = format!("state-{}", self.flows.fetch_add(1, Ordering::SeqCst));
        Ok(AuthorizationRequest {
            url: format!("https://idp.example/authorize?state={state}&redirect_uri={redirect_uri}"),
            state,
            pkce_verifier: "verifier".into(),
            nonce: None,
        })
    }

    async fn exchange(
        &self,
        _code: &str,
        _redirect_uri: &str,
        _pkce_verifier: &str,
        _nonce: Option<&str>,
    ) -> Result<ExternalIdentity, ProviderError> {
        Ok(self.identity.clone())
    }
}

struct Kit {
    accounts: Accounts,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    client: ClientInfo,
}

/// Sessions idle out after 10 hours, slide at most hourly and end after a
/// day; the process cache is off, so every check reads the store.
/// The origin the kit's relying party allows.
const PASSKEY_ORIGIN: &str = "https://localhost";

fn kit() -> Result<Kit, Error> {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(1_700_000_000_000)));
    let config = AccountsConfig {
        sessions: SessionPolicy { expires_in: 10 * HOUR, update_age: HOUR, absolute_lifetime: 24 * HOUR },
        hashing: HashParams { memory_kib: 64, iterations: 1, parallelism: 1 },
        validated_cache_ttl: Duration::ZERO,
        oauth: OAuthConfig { redirect_uris: vec![REDIRECT_URI.into()], ..OAuthConfig::default() },
        second_factors: FactorSettings {
            keys: Some(FactorKeys::new(FactorKey::from_bytes(&[7; 32]).map_err(Error::Internal)?, Vec::new())),
            passkeys: Some(Arc::new(
                RelyingParty::new(
                    &PasskeySettings {
                        rp_id: "localhost".into(),
                        rp_name: "Keyport".into(),
                        origins: vec![PASSKEY_ORIGIN.into()],
                    },
                    Duration::from_secs(300),
                )
                .map_err(Error::Internal)?,
            )),
            ..FactorSettings::default()
        },
        ..AccountsConfig::default()
    };
    let provider = FakeProvider {
        info: ProviderInfo { id: "idp".into(), display_name: "IdP".into(), kind: ProviderKind::Oidc },
        identity: ExternalIdentity {
            subject: "subject-1".into(),
            email: Some("ann@example.com".into()),
            email_verified: true,
            name: Some("Ann".into()),
        },
        flows: AtomicU32::new(0),
    };
    let accounts = Accounts::new(store.clone(), clock.clone(), config)?.with_providers(vec![Arc::new(provider)]);
    Ok(Kit { accounts, store, clock, client: ClientInfo::default() })
}

/// Signs up through `kit`, which does not require verified addresses.
async fn sign_up(
    kit: &Kit,
    email: &str,
    password: &str,
    name: &str,
) -> Result<crate::SessionGrant, Box<dyn std::error::Error>> {
    let outcome = kit.accounts.sign_up(email, password, name, &kit.client).await?;
    Ok(outcome.into_grant().ok_or("sign-up did not sign in")?)
}

impl Kit {
    fn callback(&self, flow: &StartedFlow) -> Callback {
        Callback {
            state: flow.state.clone(),
            code: "code".into(),
            redirect_uri: REDIRECT_URI.into(),
            binding: flow.binding.clone(),
            error: String::new(),
        }
    }

    fn audited(&self, kind: AuditKind) -> Result<usize, Error> {
        Ok(self.store.audit_trail()?.iter().filter(|event| event.kind == kind).count())
    }
}

#[tokio::test]
async fn signs_up_then_signs_in() -> TestResult {
    let kit = kit()?;
    let signed_up = sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    let caller = kit.accounts.authenticate(&signed_up.token).await?;
    assert_eq!(caller.user, signed_up.user);
    assert_eq!(caller.user.roles, ["user"]);

    let signed_in =
        kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await?.into_grant().ok_or("challenged")?;
    assert_eq!(signed_in.user.id, signed_up.user.id);
    assert_ne!(signed_in.session.id, signed_up.session.id);
    let sessions = kit.accounts.list_sessions(&caller).await?;
    assert_eq!(sessions.len(), 2);
    assert_eq!((kit.audited(AuditKind::SignUp)?, kit.audited(AuditKind::SignIn)?), (1, 1));
    Ok(())
}

#[tokio::test]
async fn an_email_signs_up_once() -> TestResult {
    let kit = kit()?;
    sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    let again =
        kit.accounts.sign_up("ann@example.com", "another passphrase", "Other Ann", &kit.client).await.map(|_| ());
    assert!(matches!(again, Err(Error::EmailTaken)), "{again:?}");
    let first =
        kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await?.into_grant().ok_or("challenged")?;
    assert_eq!(first.user.name, "Ann", "the first account is untouched");
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_fail_alike() -> TestResult {
    let kit = kit()?;
    sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    let wrong = kit.accounts.sign_in("ann@example.com", "not the password", &kit.client).await;
    let unknown = kit.accounts.sign_in("bob@example.com", PASSWORD, &kit.client).await;
    assert!(matches!(wrong, Err(Error::InvalidCredentials)), "{wrong:?}");
    assert!(matches!(unknown, Err(Error::InvalidCredentials)), "{unknown:?}");
    assert_eq!(kit.audited(AuditKind::SignInFailed)?, 2);
    Ok(())
}

#[tokio::test]
async fn sessions_slide_then_expire_on_the_clock() -> TestResult {
    let kit = kit()?;
    let grant = sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    assert!(!kit.accounts.authenticate(&grant.token).await?.refreshed, "fresh sessions are a pure read");

    kit.clock.advance(2 * HOUR);
    let slid = kit.accounts.authenticate(&grant.token).await?;
    assert!(slid.refreshed);
    assert_eq!(slid.session.expires_at, grant.session.created_at.saturating_add(12 * HOUR));
    kit.clock.advance(HOUR / 2);
    assert!(!kit.accounts.authenticate(&grant.token).await?.refreshed, "at most one write per update_age");

    kit.clock.advance(10 * HOUR);
    let expired = kit.accounts.authenticate(&grant.token).await;
    assert!(matches!(expired, Err(Error::SessionExpired)), "{expired:?}");
    assert_eq!(kit.accounts.sweep_expired().await?.sessions, 1);
    let swept = kit.accounts.authenticate(&grant.token).await;
    assert!(matches!(swept, Err(Error::Unauthenticated)), "{swept:?}");
    Ok(())
}

#[tokio::test]
async fn use_does_not_outlive_the_absolute_lifetime() -> TestResult {
    let kit = kit()?;
    let grant = sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    for _ in 0..23 {
        kit.clock.advance(HOUR);
        kit.accounts.authenticate(&grant.token).await?;
    }
    kit.clock.advance(HOUR);
    let capped = kit.accounts.authenticate(&grant.token).await;
    assert!(matches!(capped, Err(Error::SessionExpired)), "{capped:?}");
    Ok(())
}

#[tokio::test]
async fn revoked_sessions_end_at_once() -> TestResult {
    let kit = kit()?;
    let first = sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    let second =
        kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await?.into_grant().ok_or("challenged")?;
    let third =
        kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await?.into_grant().ok_or("challenged")?;
    let bob = sign_up(&kit, "bob@example.com", PASSWORD, "Bob").await?;
    let caller = kit.accounts.authenticate(&first.token).await?;

    kit.accounts.revoke_session(&caller, second.session.id.as_str(), &kit.client).await?;
    let revoked = kit.accounts.authenticate(&second.token).await;
    assert!(matches!(revoked, Err(Error::Unauthenticated)), "{revoked:?}");
    let again = kit.accounts.revoke_session(&caller, second.session.id.as_str(), &kit.client).await;
    assert!(matches!(again, Err(Error::SessionNotFound)), "{again:?}");
    let bobs = kit.accounts.revoke_session(&caller, bob.session.id.as_str(), &kit.client).await;
    assert!(matches!(bobs, Err(Error::SessionNotFound)), "another user's session: {bobs:?}");
    kit.accounts.authenticate(&bob.token).await?;

    assert_eq!(kit.accounts.revoke_other_sessions(&caller, &kit.client).await?, 1);
    assert!(matches!(kit.accounts.authenticate(&third.token).await, Err(Error::Unauthenticated)));
    kit.accounts.sign_out(&caller, &kit.client).await?;
    assert!(matches!(kit.accounts.authenticate(&first.token).await, Err(Error::Unauthenticated)));
    Ok(())
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions() -> TestResult {
    let kit = kit()?;
    let first = sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    let other =
        kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await?.into_grant().ok_or("challenged")?;
    let caller = kit.accounts.authenticate(&first.token).await?;
    let refused = kit.accounts.change_password(&caller, "not the password", "new passphrase", &kit.client).await;
    assert!(matches!(refused, Err(Error::InvalidCredentials)), "{refused:?}");

    assert_eq!(kit.accounts.change_password(&caller, PASSWORD, "new passphrase", &kit.client).await?, 1);
    assert!(matches!(kit.accounts.authenticate(&other.token).await, Err(Error::Unauthenticated)));
    kit.accounts.authenticate(&first.token).await?;
    let old = kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await;
    assert!(matches!(old, Err(Error::InvalidCredentials)), "{old:?}");
    kit.accounts.sign_in("ann@example.com", "new passphrase", &kit.client).await?.into_grant().ok_or("challenged")?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_user_deletes_their_sessions_password_and_linked_accounts() -> TestResult {
    let kit = kit()?;
    let grant = sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    let other =
        kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await?.into_grant().ok_or("challenged")?;
    let caller = kit.accounts.authenticate(&grant.token).await?;
    let flow = kit.accounts.start_oauth("idp", REDIRECT_URI, Some(&caller), &kit.client).await?;
    let linked = kit.accounts.finish_oauth(&kit.callback(&flow), &kit.client).await?;
    assert!(matches!(linked, OAuthOutcome::Linked(ref account) if account.user_id == caller.user.id), "{linked:?}");

    let refused = kit.accounts.delete_current_user(&caller, "not the password", &kit.client).await;
    assert!(matches!(refused, Err(Error::InvalidCredentials)), "{refused:?}");
    kit.accounts.delete_current_user(&caller, PASSWORD, &kit.client).await?;

    for token in [&grant.token, &other.token] {
        let gone = kit.accounts.authenticate(token).await;
        assert!(matches!(gone, Err(Error::Unauthenticated)), "{gone:?}");
    }
    let password = kit.accounts.sign_in("ann@example.com", PASSWORD, &kit.client).await;
    assert!(matches!(password, Err(Error::InvalidCredentials)), "{password:?}");
    // The identity is no longer linked to anyone: signing in with it makes
    // a new user.
    let flow = kit.accounts.start_oauth("idp", REDIRECT_URI, None, &kit.client).await?;
    match kit.accounts.finish_oauth(&kit.callback(&flow), &kit.client).await? {
        OAuthOutcome::SignedIn { grant: fresh, new_user } => {
            assert!(new_user);
            assert_ne!(fresh.user.id, caller.user.id);
        }
        other => return Err(format!("expected a sign-in, got {other:?}").into()),
    }
    assert_eq!(kit.audited(AuditKind::UserDeleted)?, 1, "the trail outlives the user");
    Ok(())
}

#[tokio::test]
async fn an_oauth_flow_finishes_once() -> TestResult {
    let kit = kit()?;
    let flow = kit.accounts.start_oauth("idp", REDIRECT_URI, None, &kit.client).await?;
    let callback = kit.callback(&flow);
    let first = kit.accounts.finish_oauth(&callback, &kit.client).await?;
    assert!(matches!(first, OAuthOutcome::SignedIn { new_user: true, .. }), "{first:?}");
    let replay = kit.accounts.finish_oauth(&callback, &kit.client).await;
    assert!(matches!(replay, Err(Error::OAuthStateInvalid)), "{replay:?}");

    // A wrong binding burns the flow: the right one cannot use it after.
    let flow = kit.accounts.start_oauth("idp", REDIRECT_URI, None, &kit.client).await?;
    let stolen = Callback { binding: "someone else's browser".into(), ..kit.callback(&flow) };
    assert!(matches!(kit.accounts.finish_oauth(&stolen, &kit.client).await, Err(Error::OAuthStateInvalid)));
    assert!(matches!(
        kit.accounts.finish_oauth(&kit.callback(&flow), &kit.client).await,
        Err(Error::OAuthStateInvalid)
    ));
    assert_eq!(kit.audited(AuditKind::OAuthFailed)?, 3);
    Ok(())
}

#[tokio::test]
async fn an_oauth_flow_expires_and_is_swept() -> TestResult {
    let kit = kit()?;
    let flow = kit.accounts.start_oauth("idp", REDIRECT_URI, None, &kit.client).await?;
    kit.clock.advance(kit.accounts.config().oauth.flow_lifetime);
    let late = kit.accounts.finish_oauth(&kit.callback(&flow), &kit.client).await;
    assert!(matches!(late, Err(Error::OAuthStateInvalid)), "{late:?}");

    kit.accounts.start_oauth("idp", REDIRECT_URI, None, &kit.client).await?;
    kit.clock.advance(kit.accounts.config().oauth.flow_lifetime);
    assert_eq!(kit.accounts.sweep_expired().await?.oauth_flows, 1);
    Ok(())
}

fn mail_settings(ttl: Duration) -> Result<crate::mail::MailSettings, Box<dyn std::error::Error>> {
    Ok(crate::mail::MailSettings {
        templates: crate::mail::MailTemplates::load(None, "Acme")?,
        public_base_url: "https://app.example".into(),
        verify_email_path: "/verify".into(),
        reset_password_path: "/reset".into(),
        forgot_password_path: "/forgot".into(),
        change_email_path: "/change-email".into(),
        verify_email_ttl: ttl,
        reset_password_ttl: ttl,
        recipient_limits: crate::mail::RecipientLimits::default(),
        sign_in_path: "/sign-in/email".into(),
        sign_in_ttl: Duration::from_secs(600),
    })
}

/// The token in the newest queued mail's link.
fn newest_link_token(store: &MemoryStore) -> Result<String, Box<dyn std::error::Error>> {
    let outbox = store.outbox()?;
    let text = &outbox.last().ok_or("no mail queued")?.text;
    let start = text.find("?token=").ok_or("no link")? + "?token=".len();
    Ok(text[start..].split_whitespace().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn without_mail_settings_the_mail_flows_are_refused() -> TestResult {
    let kit = kit()?;
    let grant = sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    let caller = kit.accounts.authenticate(&grant.token).await?;
    let reset = kit.accounts.request_password_reset("ann@example.com", &kit.client).await;
    assert!(matches!(reset, Err(Error::MailDisabled)), "{reset:?}");
    let verify = kit.accounts.request_email_verification(&caller, &kit.client).await;
    assert!(matches!(verify, Err(Error::MailDisabled)), "{verify:?}");
    assert!(kit.store.outbox()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn link_lifetimes_are_capped_and_links_use_the_configured_base() -> TestResult {
    let mut kit = kit()?;
    // A day asked for; a reset link still dies after an hour.
    kit.accounts = kit.accounts.clone().with_mail(mail_settings(24 * HOUR)?);
    sign_up(&kit, "ann@example.com", PASSWORD, "Ann").await?;
    kit.accounts.request_password_reset("ann@example.com", &kit.client).await?;
    // The lookup and the mail run after the answer.
    for _ in 0..100 {
        if !kit.store.outbox()?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outbox = kit.store.outbox()?;
    assert!(outbox[0].text.contains("https://app.example/reset?token=kpm_"), "{}", outbox[0].text);
    assert!(outbox[0].text.contains("1 hour"), "{}", outbox[0].text);
    let token = newest_link_token(&kit.store)?;
    kit.clock.advance(HOUR + Duration::from_secs(1));
    let late = kit.accounts.reset_password(&token, "a new passphrase here", &kit.client).await;
    assert!(matches!(late, Err(Error::EmailTokenInvalid)), "{late:?}");
    Ok(())
}
