//! Properties of a provider's callback (`state`, `code`, `error` and the
//! browser's binding) through [`crate::Accounts::finish_oauth`]: whatever
//! arrives, the answer is an error or the one flow it belongs to.

use std::sync::Arc;

use async_trait::async_trait;
use proptest::prelude::*;

use super::{Kit, REDIRECT_URI, kit};
use crate::{
    audit::AuditKind,
    error::Error,
    oauth::{
        AuthorizationRequest, Callback, ExternalIdentity, IdentityProvider, OAuthOutcome, ProviderError, ProviderInfo,
        ProviderKind, StartedFlow,
    },
};

/// Longest callback parameter `finish_oauth` looks up (its `MAX_CALLBACK_PARAM`).
const MAX_PARAM: usize = 2048;

/// A provider that issues the state the test chose, and says every code
/// belongs to one identity.
struct ScriptedProvider {
    info: ProviderInfo,
    state: String,
}

#[async_trait]
impl IdentityProvider for ScriptedProvider {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, ProviderError> {
        Ok(AuthorizationRequest {
            url: format!("https://idp.example/authorize?redirect_uri={redirect_uri}"),
            state: self.state.clone(),
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
        Ok(ExternalIdentity {
            subject: "subject-1".into(),
            email: Some("ann@example.com".into()),
            email_verified: true,
            name: Some("Ann".into()),
        })
    }
}

/// Runs `body` on a fresh kit whose provider `idp` issues `state`, with
/// one flow started: each case on its own store, clock and runtime.
fn with_flow<F>(state: &str, body: impl FnOnce(Kit, StartedFlow) -> F) -> Result<(), TestCaseError>
where
    F: Future<Output = Result<(), TestCaseError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime.block_on(async {
        let mut kit = kit().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let provider = ScriptedProvider {
            info: ProviderInfo { id: "idp".into(), display_name: "IdP".into(), kind: ProviderKind::Oidc },
            state: state.to_owned(),
        };
        kit.accounts = kit.accounts.clone().with_providers(vec![Arc::new(provider)]);
        let flow = kit
            .accounts
            .start_oauth("idp", REDIRECT_URI, None, &kit.client)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        body(kit, flow).await
    })
}

/// States as providers make them (oauth2's are 22 base64url characters).
fn issued_state() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{16,64}"
}

/// A callback parameter: any printable text, empty, or just under and
/// over the longest that is looked up.
fn param() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,64}",
        1 => Just(String::new()),
        1 => "[A-Za-z0-9_-]{2040,2100}",
    ]
}

proptest! {
    /// Whatever a callback carries, the answer is never a panic, and unless
    /// it carries both the flow's state and its binding (one or both are
    /// replaced by anything else), it is `OAuthStateInvalid` (the stable
    /// reason `OAUTH_STATE_INVALID`), and the failure is audited.
    #[test]
    fn a_callback_without_the_flows_secrets_is_refused(
        state in issued_state(),
        (sent_state, binding) in prop_oneof![
            (param().prop_map(Some), Just(None)),
            (Just(None), param().prop_map(Some)),
            (param().prop_map(Some), param().prop_map(Some)),
        ],
        code in param(),
        error in param(),
    ) {
        with_flow(&state, |kit, flow| async move {
            let callback = Callback {
                state: sent_state.unwrap_or_else(|| flow.state.clone()),
                code,
                redirect_uri: REDIRECT_URI.into(),
                binding: binding.unwrap_or_else(|| flow.binding.clone()),
                error,
            };
            prop_assume!(callback.state != flow.state || callback.binding != flow.binding);
            let refused = kit.accounts.finish_oauth(&callback, &kit.client).await;
            prop_assert!(matches!(refused, Err(Error::OAuthStateInvalid)), "{refused:?}");
            let audit = kit.store.audit_trail().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let failed: Vec<_> = audit.iter().filter(|event| event.kind == AuditKind::OAuthFailed).collect();
            prop_assert_eq!(failed.len(), 1);
            Ok(())
        })?;
    }

    /// Changing any one character of a flow's state refuses the callback
    /// with `OAuthStateInvalid`, and leaves the flow to its browser, whose
    /// own callback still signs in. Each case changes every position in
    /// turn, mostly to characters a state may hold.
    #[test]
    fn a_changed_state_is_refused(
        state in issued_state(),
        replacements in proptest::collection::vec(prop_oneof![3 => "[A-Za-z0-9_-]", 1 => "\\PC"], 64),
    ) {
        let issued = state.clone();
        with_flow(&issued, |kit, flow| async move {
            let genuine = kit.callback(&flow);
            for (index, original) in state.char_indices() {
                let new = replacements[index].chars().next().unwrap_or('A');
                if new == original {
                    continue;
                }
                let mut changed = state.clone();
                changed.replace_range(index..index + original.len_utf8(), new.encode_utf8(&mut [0; 4]));
                let forged = Callback { state: changed, ..genuine.clone() };
                let refused = kit.accounts.finish_oauth(&forged, &kit.client).await;
                prop_assert!(matches!(refused, Err(Error::OAuthStateInvalid)), "{:?}: {refused:?}", forged.state);
            }
            let finished = kit.accounts.finish_oauth(&genuine, &kit.client).await;
            prop_assert!(matches!(finished, Ok(OAuthOutcome::SignedIn { .. })), "{finished:?}");
            Ok(())
        })?;
    }

    /// On a live flow, any `error` is the provider's refusal, quoted in at
    /// most 64 printable characters; any `code` is exchanged if it is
    /// 1-2048 bytes and refused otherwise; nothing panics.
    #[test]
    fn any_code_or_error_of_a_live_flow_is_answered(state in issued_state(), code in param(), error in param()) {
        with_flow(&state, |kit, flow| async move {
            let callback = Callback { code: code.clone(), error: error.clone(), ..kit.callback(&flow) };
            let finished = kit.accounts.finish_oauth(&callback, &kit.client).await;
            if !error.is_empty() {
                let Err(Error::OAuthProviderError(message)) = &finished else {
                    return Err(TestCaseError::fail(format!("{finished:?}")));
                };
                let quoted = message.strip_prefix("the provider answered ").unwrap_or(message);
                prop_assert!(quoted.chars().count() <= 64 && quoted.chars().all(|c| c.is_ascii_graphic()), "{message:?}");
            } else if code.is_empty() || code.len() > MAX_PARAM {
                prop_assert!(matches!(finished, Err(Error::OAuthProviderError(_))), "{finished:?}");
            } else {
                prop_assert!(matches!(finished, Ok(OAuthOutcome::SignedIn { .. })), "{finished:?}");
            }
            Ok(())
        })?;
    }
}
