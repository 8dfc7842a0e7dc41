//! TLS and mutual TLS between services and Keyport, with certificates made
//! by `openssl` for the test: the server's, and a client's signed by a CA
//! that Keyport trusts.

use std::process::Command;

use keyport_client::{ClientInfo, KeyportClient, Reason};
use keyport_server::Config;
use keyport_tests::TestServer;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Files of a throw-away PKI.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1/localhost, a client
    /// certificate from the same CA, and a second, untrusted CA.
    fn create() -> Result<Self, BoxError> {
        let pki = Self { dir: tempfile::tempdir()? };
        for ca in ["ca", "other-ca"] {
            pki.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ])?;
        }
        std::fs::write(pki.path("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")?;
        std::fs::write(pki.path("client.ext"), "extendedKeyUsage=clientAuth\n")?;
        for (leaf, ca) in [("server", "ca"), ("client", "ca"), ("stranger", "other-ca")] {
            pki.openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={leaf}"),
                "-keyout",
                &format!("{leaf}.key"),
                "-out",
                &format!("{leaf}.csr"),
            ])?;
            let ext = if leaf == "server" { "server.ext" } else { "client.ext" };
            pki.openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{leaf}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                ext,
                "-out",
                &format!("{leaf}.pem"),
            ])?;
        }
        Ok(pki)
    }

    fn openssl(&self, args: &[&str]) -> Result<(), BoxError> {
        let output = Command::new("openssl").args(args).current_dir(self.dir.path()).output()?;
        if !output.status.success() {
            return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
        }
        Ok(())
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BoxError> {
        Ok(std::fs::read(self.path(name))?)
    }

    fn configure(&self, config: &mut Config, mutual: bool) {
        config.server.tls_cert_file = self.path("server.pem");
        config.server.tls_key_file = self.path("server.key");
        if mutual {
            config.server.tls_client_ca_file = self.path("ca.pem");
        }
    }

    /// Client TLS trusting `ca`, presenting `identity` (a leaf name) if any.
    fn client(&self, ca: &str, identity: Option<&str>) -> Result<ClientTlsConfig, BoxError> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.read(&format!("{ca}.pem"))?))
            .domain_name("localhost");
        if let Some(leaf) = identity {
            tls = tls
                .identity(Identity::from_pem(self.read(&format!("{leaf}.pem"))?, self.read(&format!("{leaf}.key"))?));
        }
        Ok(tls)
    }
}

async fn sign_up(endpoint: &str, tls: Option<ClientTlsConfig>, email: &str) -> Result<(), keyport_client::Error> {
    let mut builder = KeyportClient::builder(endpoint).retries(0, std::time::Duration::ZERO);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder.build()?.sign_up(email, "correct horse battery staple", "", &ClientInfo::default()).await.map(|_| ())
}

fn is_openssl_missing() -> bool {
    Command::new("openssl").arg("version").output().is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_and_requires_client_certificates_when_configured() -> Result<(), BoxError> {
    if is_openssl_missing() {
        return Err("openssl is needed to make the test certificates".into());
    }
    let pki = Pki::create()?;
    let server = TestServer::start_tls(|config| pki.configure(config, true), pki.client("ca", Some("client"))?).await?;
    let endpoint = format!("https://{}", server.addr);

    // The Rust SDK with the CA and a client certificate: served.
    sign_up(&endpoint, Some(pki.client("ca", Some("client"))?), "ann@example.com").await?;
    assert_eq!(server.count("users").await?, 1);

    // No client certificate, one from an untrusted CA, an untrusted server, plaintext: refused.
    let refused = [
        ("no client certificate", Some(pki.client("ca", None)?), endpoint.clone()),
        ("untrusted client CA", Some(pki.client("ca", Some("stranger"))?), endpoint.clone()),
        ("untrusted server", Some(pki.client("other-ca", Some("client"))?), endpoint.clone()),
        ("plaintext", None, format!("http://{}", server.addr)),
    ];
    for (case, tls, endpoint) in refused {
        let error = sign_up(&endpoint, tls, &format!("{}@example.com", case.replace(' ', "-"))).await.unwrap_err();
        // A refused handshake reads as unreachable; plaintext breaks HTTP/2
        // itself, with whichever code the transport picks.
        if case != "plaintext" {
            assert_eq!(error.reason(), &Reason::Unavailable, "{case}: {error}");
        }
    }
    assert_eq!(server.count("users").await?, 1, "nothing got through");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_without_client_certificates_unless_asked() -> Result<(), BoxError> {
    if is_openssl_missing() {
        return Err("openssl is needed to make the test certificates".into());
    }
    let pki = Pki::create()?;
    let server = TestServer::start_tls(|config| pki.configure(config, false), pki.client("ca", None)?).await?;
    sign_up(&format!("https://{}", server.addr), Some(pki.client("ca", None)?), "bob@example.com").await?;
    assert_eq!(server.count("users").await?, 1);
    Ok(())
}
