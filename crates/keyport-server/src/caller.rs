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

#[cfg(test)]
mod properties {
    use std::net::{Ipv4Addr, SocketAddr};

    use proptest::prelude::*;
    use tonic::metadata::AsciiMetadataValue;

    use super::*;

    /// Addresses of every form: IPv4, IPv6, IPv4 mapped into IPv6.
    fn address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u16; 8]>().prop_map(IpAddr::from),
            any::<[u8; 4]>().prop_map(|octets| IpAddr::V6(Ipv4Addr::from(octets).to_ipv6_mapped())),
        ]
    }

    /// What a peer may put in `x-keyport-client-ip`: addresses, padded or
    /// not, with ports or zones, near-addresses, runs thousands long, any
    /// bytes (what a header cannot hold is not sent at all).
    fn forwarded_ip() -> impl Strategy<Value = Vec<u8>> {
        let text = prop_oneof![
            (address(), "[ \t]{0,3}", "[ \t]{0,3}").prop_map(|(ip, before, after)| format!("{before}{ip}{after}")),
            (address(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port).to_string()),
            (address(), "%[a-z0-9]{1,8}").prop_map(|(ip, zone)| format!("{ip}{zone}")),
            (address(), address()).prop_map(|(a, b)| format!("{a}, {b}")),
            "[0-9a-fA-F.:]{0,48}",
            (address(), 1..4096usize).prop_map(|(ip, n)| format!("{ip}{}", "0".repeat(n))),
            "\\PC{0,32}",
        ];
        prop_oneof![6 => text.prop_map(String::into_bytes), 1 => proptest::collection::vec(any::<u8>(), 0..64)]
    }

    /// A user agent as sent: printable, sometimes long, sometimes not ASCII.
    fn user_agent() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof!["[ -~]{0,1200}", "\\PC{0,600}"].prop_map(String::into_bytes)
    }

    /// The address of a forwarded value, by the rule the resolver
    /// documents: one IP address, surrounding whitespace aside.
    fn spelled_address(value: &[u8]) -> Option<IpAddr> {
        std::str::from_utf8(value).ok()?.trim().parse().ok()
    }

    /// A call from `peer` carrying whichever of the values a header can hold.
    fn call(peer: IpAddr, forwarded_ip: &[u8], forwarded_agent: &[u8], own_agent: &[u8]) -> Request<()> {
        let mut request = Request::new(());
        request.extensions_mut().insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(peer, 4000)),
        });
        for (key, value) in
            [(CLIENT_IP_KEY, forwarded_ip), (USER_AGENT_KEY, forwarded_agent), ("user-agent", own_agent)]
        {
            if let Ok(value) = AsciiMetadataValue::try_from(value) {
                request.metadata_mut().insert(key, value);
            }
        }
        request
    }

    /// The peer, the trusted list, and whether the peer is on it (in its
    /// own form or the other IPv4 form).
    fn peer_and_proxies() -> impl Strategy<Value = (IpAddr, Vec<IpAddr>, bool)> {
        (address(), proptest::collection::vec(address(), 0..3), any::<bool>(), any::<bool>()).prop_map(
            |(peer, mut proxies, listed, other_form)| {
                if listed {
                    let entry = match (peer.to_canonical(), other_form) {
                        (IpAddr::V4(v4), true) => IpAddr::V6(v4.to_ipv6_mapped()),
                        (canonical, true) => canonical,
                        (_, false) => peer,
                    };
                    proxies.push(entry);
                }
                let trusted = proxies.iter().any(|proxy| proxy.to_canonical() == peer.to_canonical());
                (peer, proxies, trusted)
            },
        )
    }

    proptest! {
        /// Whatever an untrusted peer sends, the call is reported as the
        /// peer's own address with the peer's own user agent.
        #[test]
        fn an_untrusted_peer_is_its_own_client(
            (peer, proxies, _) in peer_and_proxies(),
            ip in forwarded_ip(),
            agent in user_agent(),
            own in user_agent(),
        ) {
            let mut proxies = proxies;
            proxies.retain(|proxy| proxy.to_canonical() != peer.to_canonical());
            let request = call(peer, &ip, &agent, &own);
            let resolver = ClientResolver::new(proxies);
            prop_assert!(!resolver.is_trusted(&request));
            let info = resolver.resolve(&request);
            prop_assert_eq!(info.ip_address, Some(peer.to_canonical().to_string()));
            let own = std::str::from_utf8(&own).ok().filter(|own| own.is_ascii() && !own.is_empty());
            match (info.user_agent.as_deref(), own) {
                (Some(reported), Some(own)) => prop_assert!(own.starts_with(reported), "{reported:?}"),
                (reported, own) => prop_assert!(reported.is_none() && own.is_none(), "{reported:?} {own:?}"),
            }
        }

        /// From a trusted peer, a forwarded value that is one IP address
        /// is the client, in canonical form; anything else (a port, a zone,
        /// a list, a long run, junk, bytes) is ignored for the peer's own.
        #[test]
        fn a_trusted_peer_forwards_an_address_or_nothing(
            (peer, proxies, trusted) in peer_and_proxies(),
            ip in forwarded_ip(),
        ) {
            let mut proxies = proxies;
            if !trusted {
                proxies.push(peer);
            }
            let request = call(peer, &ip, b"", b"");
            let resolver = ClientResolver::new(proxies);
            prop_assert!(resolver.is_trusted(&request));
            let expected = spelled_address(&ip).unwrap_or(peer).to_canonical();
            prop_assert_eq!(resolver.resolve(&request).ip_address, Some(expected.to_string()));
        }

        /// The user agent reported is the forwarded one for a trusted peer
        /// and the peer's own otherwise; at most 512 bytes of it, whole if
        /// it fits, and never one the headers did not carry.
        #[test]
        fn user_agents_are_the_right_one_and_bounded(
            (peer, proxies, trusted) in peer_and_proxies(),
            agent in user_agent(),
            own in user_agent(),
        ) {
            let request = call(peer, b"", &agent, &own);
            let info = ClientResolver::new(proxies).resolve(&request);
            let sent = if trusted { &agent } else { &own };
            let sent = std::str::from_utf8(sent).ok().filter(|sent| sent.is_ascii() && !sent.is_empty());
            match (info.user_agent.as_deref(), sent) {
                (Some(reported), Some(sent)) => {
                    prop_assert!(reported.len() <= MAX_USER_AGENT_BYTES, "{} bytes", reported.len());
                    prop_assert!(sent.starts_with(reported));
                    prop_assert_eq!(reported.len(), sent.len().min(MAX_USER_AGENT_BYTES));
                }
                (reported, sent) => prop_assert!(reported.is_none() && sent.is_none(), "{reported:?} {sent:?}"),
            }
        }
    }
}
