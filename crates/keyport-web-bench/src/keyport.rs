//! A real `keyport` process for the benchmark, on a free port.

use std::{path::Path, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::BoxError;

/// A running `keyport serve`, killed on drop.
pub(crate) struct Keyport {
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
    _child: Child,
    _data: tempfile::TempDir,
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
        Ok(Self { endpoint: format!("http://{address}"), _child: child, _data: data })
    }
}

/// The string value of `"key":"value"` in a JSON log line.
fn json_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}
