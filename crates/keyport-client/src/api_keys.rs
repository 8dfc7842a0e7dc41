//! API keys ([`KeyportClient`] methods over `keyport.v1.ApiKeyService`):
//! a signed-in user creates, lists, revokes and rotates their own keys.
//! Checking a key is [`KeyportClient::authorize`] (or the web middleware).

use std::time::{Duration, SystemTime};

use keyport_proto::v1::{self, api_key_service_client::ApiKeyServiceClient};
use tonic::Status;

use crate::{
    client::{ClientInfo, KeyportClient},
    error::Error,
    principal::system_time,
};

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// The key's id (safe to show).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The permissions it may use, sorted.
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it stops working; `None` for never.
    pub expires_at: Option<SystemTime>,
    /// When it was last used (to within Keyport's interval).
    pub last_used_at: Option<SystemTime>,
    /// Most checks per minute; 0 for no limit of its own.
    pub rate_limit_per_minute: u32,
}

/// A key just created or rotated, with its secret: show it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKeyInfo,
    /// The key itself (`kpa_...`), a bearer credential. Keyport keeps only
    /// its hash: this is the one time it can be shown.
    pub secret: String,
}

/// What a new key should be ([`KeyportClient::create_api_key`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewApiKey {
    /// What it is for (1-64 characters).
    pub name: String,
    /// The permissions it may use: granted to the user now.
    pub scopes: Vec<String>,
    /// How long it works; `None` for Keyport's default.
    pub expires_in: Option<Duration>,
    /// Most checks per minute; 0 for no limit of its own.
    pub rate_limit_per_minute: u32,
}

impl KeyportClient {
    /// Creates a key for `token`'s user (needs a recent sign-in, and a
    /// recent second factor if they have one).
    pub async fn create_api_key(
        &self,
        token: &str,
        new: NewApiKey,
        client: &ClientInfo,
    ) -> Result<CreatedApiKey, Error> {
        let message = v1::CreateApiKeyRequest {
            name: new.name,
            scopes: new.scopes,
            expires_in: new.expires_in.and_then(|lifetime| prost_types::Duration::try_from(lifetime).ok()),
            rate_limit_per_minute: new.rate_limit_per_minute,
            service_account_id: String::new(),
        };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { ApiKeyServiceClient::new(channel).create_api_key(request).await }
            })
            .await?;
        created(response.api_key, response.secret)
    }

    /// The keys of `token`'s user, newest first.
    pub async fn list_api_keys(&self, token: &str, client: &ClientInfo) -> Result<Vec<ApiKeyInfo>, Error> {
        let response = self
            .idempotent(|channel| {
                let request = self.request(v1::ListApiKeysRequest::default(), Some(token), client);
                async move { ApiKeyServiceClient::new(channel).list_api_keys(request).await }
            })
            .await?;
        Ok(response.api_keys.iter().map(info).collect())
    }

    /// Revokes the key `id` of `token`'s user, at once everywhere.
    pub async fn revoke_api_key(&self, token: &str, id: &str, client: &ClientInfo) -> Result<(), Error> {
        let message = v1::RevokeApiKeyRequest { api_key_id: id.to_owned(), service_account_id: String::new() };
        self.idempotent(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { ApiKeyServiceClient::new(channel).revoke_api_key(request).await }
        })
        .await?;
        Ok(())
    }

    /// Replaces the key `id` with a new one; the old one works for `grace`
    /// more (at most 7 days; revoked at once with none).
    pub async fn rotate_api_key(
        &self,
        token: &str,
        id: &str,
        grace: Duration,
        client: &ClientInfo,
    ) -> Result<CreatedApiKey, Error> {
        let message = v1::RotateApiKeyRequest {
            api_key_id: id.to_owned(),
            service_account_id: String::new(),
            grace: (!grace.is_zero()).then(|| prost_types::Duration::try_from(grace).ok()).flatten(),
        };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { ApiKeyServiceClient::new(channel).rotate_api_key(request).await }
            })
            .await?;
        created(response.api_key, response.secret)
    }
}

fn created(key: Option<v1::ApiKey>, secret: String) -> Result<CreatedApiKey, Error> {
    let key = key.ok_or_else(|| Error::from(Status::internal("Keyport answered without the key")))?;
    Ok(CreatedApiKey { key: info(&key), secret })
}

fn info(key: &v1::ApiKey) -> ApiKeyInfo {
    ApiKeyInfo {
        id: key.id.clone(),
        name: key.name.clone(),
        scopes: key.scopes.clone(),
        created_at: system_time(key.created_at.as_ref()),
        expires_at: key.expires_at.as_ref().map(|at| system_time(Some(at))),
        last_used_at: key.last_used_at.as_ref().map(|at| system_time(Some(at))),
        rate_limit_per_minute: key.rate_limit_per_minute,
    }
}
