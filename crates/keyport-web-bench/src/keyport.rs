//! A real `keyport` process for the benchmark, on a free port.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

use crate::BoxError;

/// The `iss` of the benchmark server's access tokens.
pub(crate) const ACCESS_TOKEN_ISSUER: &str = "https://bench.keyport.test";
/// Their one audience.
pub(crate) const ACCESS_TOKEN_AUDIENCE: &str = "bench";

/// A running `keyport serve`, killed on drop.
pub(crate) struct Keyport {
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
    binary: PathBuf,
    _child: Child,
    data: tempfile::TempDir,
}

impl Keyport {
    /// Starts `binary` on a fresh data directory and waits until it listens.
    pub(crate) async fn start(binary: &Path) -> Result<Self, BoxError> {
        let data = tempfile::tempdir()?;
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
            .arg(data.path())
            .env("RUST_LOG", "warn,keyport=info")
            // Every request comes from one address; budgets would skew it.
            .env("KEYPORT_REQUEST_LIMITS__BURST", "0")
            // Access tokens on, to time their verification.
            .env("KEYPORT_ACCESS_TOKENS__ISSUER", ACCESS_TOKEN_ISSUER)
            .env("KEYPORT_ACCESS_TOKENS__AUDIENCES", format!("[\"{ACCESS_TOKEN_AUDIENCE}\"]"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if line.contains("keyport serving gRPC")
                    && let Some(address) = json_field(&line, "address")
                {
                    return Ok::<_, BoxError>(address);
                }
            }
            Err("keyport exited before serving".into())
        })
        .await??;
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { endpoint: format!("http://{address}"), binary: binary.to_owned(), _child: child, data })
    }

    /// Creates an admin with `keyport admin create-user`, as an operator
    /// bootstraps one, on the running server's database.
    pub(crate) async fn create_admin(&self, email: &str, password: &str) -> Result<(), BoxError> {
        let mut child = Command::new(&self.binary)
            .arg("--data-dir")
            .arg(self.data.path())
            .args(["admin", "create-user", "--email", email, "--role", "admin", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin.write_all(format!("{password}\n").as_bytes()).await?;
        drop(stdin);
        if !child.wait().await?.success() {
            return Err("keyport admin create-user failed".into());
        }
        Ok(())
    }
}

/// The string value of `"key":"value"` in a JSON log line.
fn json_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}
