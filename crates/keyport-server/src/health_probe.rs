//! `keyport health`: asks a running Keyport whether it is serving, for
//! container health checks and scripts that have no gRPC tooling.

use std::{net::SocketAddr, time::Duration};

use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// How long the probe waits for the connection and the answer together.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the probe has no serving status to report.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing answered in time.
    #[error("no answer from {0} within {PROBE_TIMEOUT:?}")]
    Timeout(SocketAddr),
    /// The connection failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// Where the probe connected.
        address: SocketAddr,
        /// The transport's error.
        source: tonic::transport::Error,
    },
    /// The server answered the check with an error.
    #[error("health check failed: {0}")]
    Check(#[from] tonic::Status),
}

/// The address to probe for a server listening on `listen`: a wildcard
/// address is reached through loopback.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let mut address = listen;
    if address.ip().is_unspecified() {
        address.set_ip(match listen {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    address
}

/// Checks the overall health service (`""`) of the plaintext server at
/// `address`.
pub async fn probe(address: SocketAddr) -> Result<ServingStatus, ProbeError> {
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|source| ProbeError::Connect { address, source })?
            .connect()
            .await
            .map_err(|source| ProbeError::Connect { address, source })?;
        let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await?;
        Ok(answer.into_inner().status())
    };
    tokio::time::timeout(PROBE_TIMEOUT, check).await.map_err(|_| ProbeError::Timeout(address))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_probed_on_loopback() {
        let probed = |listen: &str| probe_address(listen.parse().unwrap()).to_string();
        assert_eq!(probed("0.0.0.0:50051"), "127.0.0.1:50051");
        assert_eq!(probed("[::]:50051"), "[::1]:50051");
        assert_eq!(probed("10.0.0.7:1"), "10.0.0.7:1");
    }
}
