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
///
/// Addresses are compared and reported in canonical form: on an IPv6
/// listener (`[::]`) an IPv4 peer appears as `::ffff:a.b.c.d`, which must
/// match `a.b.c.d` in `trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct ClientResolver {
    trusted_proxies: Vec<IpAddr>,
}

impl ClientResolver {
    /// Believes forwarded metadata only from `trusted_proxies`.
    pub fn new(trusted_proxies: Vec<IpAddr>) -> Self {
        Self { trusted_proxies: trusted_proxies.into_iter().map(|ip| ip.to_canonical()).collect() }
    }

    /// Whether the call comes from a trusted peer (a web app's middleware).
    pub fn is_trusted<T>(&self, request: &Request<T>) -> bool {
        peer_ip(request).is_some_and(|ip| self.trusts(ip))
    }

    /// The end user behind a call: forwarded values from a trusted peer,
    /// otherwise the peer itself.
    pub fn resolve<T>(&self, request: &Request<T>) -> ClientInfo {
        let peer = peer_ip(request);
        let metadata = request.metadata();
        let trusted = peer.is_some_and(|ip| self.trusts(ip));
        let forwarded_ip = trusted
            .then(|| metadata_str(metadata, CLIENT_IP_KEY))
            .flatten()
            .and_then(|raw| raw.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical());
        // A trusted peer is a web app's middleware: its own `user-agent` is
        // its gRPC library's, not the end user's, so only the forwarded one counts.
        let agent = match trusted {
            true => metadata_str(metadata, USER_AGENT_KEY),
            false => metadata_str(metadata, "user-agent"),
        };
        ClientInfo {
            ip_address: forwarded_ip.or(peer).map(|ip| ip.to_string()),
            user_agent: agent.map(truncate_user_agent),
        }
    }
}

impl ClientResolver {
    fn trusts(&self, canonical_ip: IpAddr) -> bool {
        self.trusted_proxies.contains(&canonical_ip)
    }
}

/// The peer's address in canonical form.
fn peer_ip<T>(request: &Request<T>) -> Option<IpAddr> {
    request.remote_addr().map(|addr| addr.ip().to_canonical())
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

    fn from_peer(peer: &str, forwarded_ip: &str) -> Request<()> {
        let mut request = Request::new(());
        request.extensions_mut().insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(peer.parse().unwrap()),
        });
        request.metadata_mut().insert(CLIENT_IP_KEY, forwarded_ip.parse().unwrap());
        request
    }

    #[test]
    fn ipv4_mapped_peers_match_their_ipv4_address() {
        let resolver = ClientResolver::new(vec!["127.0.0.1".parse().unwrap()]);
        let request = from_peer("[::ffff:127.0.0.1]:4000", "203.0.113.9");
        assert!(resolver.is_trusted(&request));
        assert_eq!(resolver.resolve(&request).ip_address.as_deref(), Some("203.0.113.9"));
    }

    #[test]
    fn ipv4_mapped_entries_in_the_trusted_list_match_ipv4_peers() {
        let resolver = ClientResolver::new(vec!["::ffff:10.0.0.1".parse().unwrap()]);
        assert!(resolver.is_trusted(&from_peer("10.0.0.1:4000", "203.0.113.9")));
    }

    #[test]
    fn addresses_are_reported_in_canonical_form() {
        let resolver = ClientResolver::new(vec!["127.0.0.1".parse().unwrap()]);
        // Forwarded by a trusted peer, in mapped form.
        let info = resolver.resolve(&from_peer("127.0.0.1:4000", "::ffff:203.0.113.9"));
        assert_eq!(info.ip_address.as_deref(), Some("203.0.113.9"));
        // An untrusted mapped peer counts as its IPv4 address.
        let info = resolver.resolve(&from_peer("[::ffff:198.51.100.4]:4000", "203.0.113.9"));
        assert_eq!(info.ip_address.as_deref(), Some("198.51.100.4"));
        // Real IPv6 addresses stay as they are.
        let info = resolver.resolve(&from_peer("[2001:db8::1]:4000", "203.0.113.9"));
        assert_eq!(info.ip_address.as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn user_agents_are_bounded() {
        let long = "é".repeat(400);
        assert!(truncate_user_agent(&long).len() <= MAX_USER_AGENT_BYTES);
    }
}
