//! What a call says about its caller: the bearer token and the end user's
//! address and user agent.

use std::net::IpAddr;

use keyport_core::{ClientInfo, Error};
use tonic::{Request, metadata::MetadataMap};

/// Metadata key carrying the end user's IP address, set by trusted middleware.
pub const CLIENT_IP_KEY: &str = "x-keyport-client-ip";
/// Metadata key carrying the end user's user agent, set by trusted middleware.
pub const USER_AGENT_KEY: &str = "x-keyport-user-agent";
/// Longest user agent kept; the rest is cut.
const MAX_USER_AGENT_BYTES: usize = 512;

/// Reads the `authorization: Bearer <token>` metadata entry.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str, Error> {
    let value = metadata.get("authorization").ok_or(Error::Unauthenticated)?;
    let value = value.to_str().map_err(|_| Error::Unauthenticated)?;
    let (scheme, token) = value.split_once(' ').ok_or(Error::Unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthenticated);
    }
    Ok(token.trim())
}

/// Decides whose address and user agent a call reports.
#[derive(Debug, Clone, Default)]
pub struct ClientResolver {
    trusted_proxies: Vec<IpAddr>,
}

impl ClientResolver {
    /// Believes forwarded metadata only from `trusted_proxies`.
    pub fn new(trusted_proxies: Vec<IpAddr>) -> Self {
        Self { trusted_proxies }
    }

    /// Whether the call comes from a trusted peer (a web app's middleware).
    pub fn is_trusted<T>(&self, request: &Request<T>) -> bool {
        request.remote_addr().is_some_and(|addr| self.trusted_proxies.contains(&addr.ip()))
    }

    /// The end user behind a call: forwarded values from a trusted peer,
    /// otherwise the peer itself.
    pub fn resolve<T>(&self, request: &Request<T>) -> ClientInfo {
        let peer = request.remote_addr().map(|addr| addr.ip());
        let metadata = request.metadata();
        let trusted = peer.is_some_and(|ip| self.trusted_proxies.contains(&ip));
        let forwarded_ip = trusted
            .then(|| metadata_str(metadata, CLIENT_IP_KEY))
            .flatten()
            .and_then(|raw| raw.trim().parse::<IpAddr>().ok());
        let forwarded_agent = trusted.then(|| metadata_str(metadata, USER_AGENT_KEY)).flatten();
        ClientInfo {
            ip_address: forwarded_ip.or(peer).map(|ip| ip.to_string()),
            user_agent: forwarded_agent.or_else(|| metadata_str(metadata, "user-agent")).map(truncate_user_agent),
        }
    }
}

fn metadata_str<'a>(metadata: &'a MetadataMap, key: &str) -> Option<&'a str> {
    metadata.get(key).and_then(|value| value.to_str().ok()).filter(|value| !value.is_empty())
}

fn truncate_user_agent(raw: &str) -> String {
    let mut end = raw.len().min(MAX_USER_AGENT_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    raw[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token(&with_auth("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&with_auth("bearer abc")).unwrap(), "abc");
    }

    #[test]
    fn other_schemes_and_missing_headers_are_unauthenticated() {
        assert!(bearer_token(&MetadataMap::new()).is_err());
        assert!(bearer_token(&with_auth("Basic abc")).is_err());
        assert!(bearer_token(&with_auth("Bearer")).is_err());
    }

    #[test]
    fn forwarded_metadata_counts_only_from_trusted_peers() {
        let resolver = ClientResolver::new(vec!["10.0.0.1".parse().unwrap()]);
        let mut request = Request::new(());
        request.metadata_mut().insert(CLIENT_IP_KEY, "203.0.113.9".parse().unwrap());
        request.metadata_mut().insert(USER_AGENT_KEY, "Firefox".parse().unwrap());
        // No peer address at all: nothing is trusted.
        let info = resolver.resolve(&request);
        assert_eq!(info.ip_address, None);
        assert_eq!(info.user_agent, None);
    }

    #[test]
    fn user_agents_are_bounded() {
        let long = "é".repeat(400);
        assert!(truncate_user_agent(&long).len() <= MAX_USER_AGENT_BYTES);
    }
}
