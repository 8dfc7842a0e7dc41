//! `AuthorizationService.Authorize` ([`KeyportClient::authorize`]): the
//! permissions a request needs, decided for its session in one call.

use std::time::Duration;

use keyport_proto::v1::{self, authorization_service_client::AuthorizationServiceClient};
use tonic::Status;

use crate::{
    client::{ClientInfo, KeyportClient},
    error::Error,
    principal::{Principal, key_principal, principal},
};

/// A decided check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// Per asked permission, in the order asked: allowed or not.
    pub decisions: Vec<(String, bool)>,
    /// Who is asking.
    pub principal: Principal,
    /// Every permission the principal's roles grant, sorted.
    pub granted: Vec<String>,
    /// Whether the call pushed the session's expiry forward.
    pub refreshed: bool,
    /// How long a cache fed by `WatchSessionEvents` may reuse the answer.
    pub cache_ttl: Duration,
    /// The organization decided in (named, or the session's active one),
    /// and the user's role there (`None` when not a member).
    pub organization: Option<(String, Option<String>)>,
}

impl Authorized {
    /// Whether every asked permission is allowed.
    pub fn allowed(&self) -> bool {
        self.decisions.iter().all(|(_, allowed)| *allowed)
    }
}

impl KeyportClient {
    /// Decides `permissions` (`resource:action`, 1 to 32) for `token`, a
    /// session token or an API key (`kpa_...`; see [`Principal::api_key`]). A name outside the server's catalogue fails with
    /// [`crate::Reason::PermissionUnknown`], not a deny.
    pub async fn authorize(&self, token: &str, permissions: &[&str], client: &ClientInfo) -> Result<Authorized, Error> {
        self.authorize_in(token, "", permissions, client).await
    }

    /// Like [`KeyportClient::authorize`], in the organization
    /// `organization_id` (empty: the session's active one): the user's
    /// roles and their role in it both count; not a member, only their own
    /// roles.
    pub async fn authorize_in(
        &self,
        token: &str,
        organization_id: &str,
        permissions: &[&str],
        client: &ClientInfo,
    ) -> Result<Authorized, Error> {
        let message = v1::AuthorizeRequest {
            token: token.to_owned(),
            permissions: permissions.iter().map(|permission| (*permission).to_owned()).collect(),
            organization_id: organization_id.to_owned(),
        };
        let response = self
            .idempotent(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { AuthorizationServiceClient::new(channel).authorize(request).await }
            })
            .await?;
        let principal = match (&response.api_key, &response.user, &response.session) {
            (Some(key), user, _) => key_principal(key, user.as_ref(), response.service_account.as_ref()),
            (None, Some(user), Some(session)) => Some(principal(user, session)),
            _ => None,
        };
        let Some(principal) = principal else {
            return Err(Status::internal("Authorize answered without a user, session or key").into());
        };
        Ok(Authorized {
            principal,
            decisions: response.decisions.into_iter().map(|decision| (decision.permission, decision.allowed)).collect(),
            granted: response.granted,
            refreshed: response.refreshed,
            cache_ttl: response.cache_ttl.and_then(|ttl| Duration::try_from(ttl).ok()).unwrap_or_default(),
            organization: Some(response.organization_id)
                .filter(|id| !id.is_empty())
                .map(|id| (id, Some(response.organization_role).filter(|role| !role.is_empty()))),
        })
    }
}
