//! A `keyport serve` process of the test's own, on port 0, whose addresses
//! are read from its JSON log.

use std::{net::SocketAddr, path::Path, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running `keyport serve`; killed when dropped.
pub(crate) struct Served {
    /// Where gRPC is served.
    pub(crate) grpc: SocketAddr,
    /// Where metrics are served, when they are on.
    pub(crate) metrics: Option<SocketAddr>,
    child: Child,
    _log: Lines<BufReader<ChildStdout>>,
}

impl Served {
    /// Starts `keyport serve` on SQLite in `data_dir`, with `env` set, and
    /// waits until it logs its gRPC address.
    pub(crate) async fn start(data_dir: &Path, env: &[(&str, &str)]) -> Result<Self, BoxError> {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_keyport")), data_dir, env).await
    }

    /// Like [`Served::start`], with no file it writes allowed past
    /// `max_file_kib` KiB (the soft `RLIMIT_FSIZE`): a disk that fills up.
    /// Past it, writes fail with `EFBIG` (`SIGXFSZ` is ignored).
    pub(crate) async fn start_limited(data_dir: &Path, max_file_kib: u64) -> Result<Self, BoxError> {
        let mut command = Command::new("bash");
        command
            .args(["-c", r#"trap '' XFSZ; ulimit -S -f "$1"; shift; exec "$@""#, "keyport-limited"])
            .arg(max_file_kib.to_string())
            .arg(env!("CARGO_BIN_EXE_keyport"));
        Self::spawn(command, data_dir, &[]).await
    }

    /// Lifts the file size limit of [`Served::start_limited`]: space freed.
    pub(crate) async fn lift_file_limit(&self) -> Result<(), BoxError> {
        let pid = self.child.id().ok_or("keyport has exited")?;
        let status = Command::new("prlimit").arg(format!("--pid={pid}")).arg("--fsize=unlimited").status().await?;
        if !status.success() {
            return Err(format!("prlimit failed: {status}").into());
        }
        Ok(())
    }

    async fn spawn(mut command: Command, data_dir: &Path, env: &[(&str, &str)]) -> Result<Self, BoxError> {
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json", "serve"])
            .env_remove("KEYPORT_CONFIG")
            .env("KEYPORT_HASHING__MEMORY_KIB", "1024")
            .env("KEYPORT_HASHING__ITERATIONS", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut log = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut metrics = None;
        let grpc = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = log.next_line().await? {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                let address = || event["address"].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
                match event["message"].as_str() {
                    Some("serving metrics") => metrics = address(),
                    Some("keyport serving gRPC") => return Ok::<_, BoxError>(address()),
                    _ => {}
                }
            }
            Ok(None)
        })
        .await??
        .ok_or("keyport exited before serving")?;
        Ok(Self { grpc, metrics, child, _log: log })
    }

    /// A channel to its gRPC port.
    pub(crate) async fn channel(&self) -> Result<Channel, BoxError> {
        Ok(Channel::from_shared(format!("http://{}", self.grpc))?.connect().await?)
    }

    /// Stops it with SIGKILL and waits for it.
    pub(crate) async fn kill(mut self) -> Result<(), BoxError> {
        self.child.kill().await?;
        Ok(())
    }
}

/// `GET path` over plain HTTP/1.1; the status code and the body.
pub(crate) async fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String), BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status = head.split(' ').nth(1).ok_or("no status")?.parse()?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Ok((status, if chunked { dechunk(body)? } else { body.to_owned() }))
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut body: &str) -> Result<String, BoxError> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("truncated chunk")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or("short chunk")?);
        body = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}
