//! Accepting connections: a cap on open connections, back-off when the
//! process runs out of file descriptors, TCP keepalive, and closing
//! connections that go quiet.
//!
//! tonic's own `TcpIncoming` has none of these: half-open sockets stayed
//! forever, and at the descriptor limit its accept loop retried at once,
//! spinning a core while new clients timed out.

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::Stream;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::ServerConfig;

/// First pause after an accept error; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(5);
/// Longest pause between accept attempts while errors persist.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning per this interval for a repeated accept problem.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How connections are accepted and when they are closed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a new connection may stay silent; `None`: forever.
    pub handshake_timeout: Option<Duration>,
    /// How long an established connection may stay silent; `None`: forever.
    pub idle_timeout: Option<Duration>,
    /// Idle time before TCP keepalive probes; `None`: no probes.
    pub tcp_keepalive: Option<Duration>,
}

impl ConnectionLimits {
    /// The limits `server` configures.
    pub(crate) fn of(server: &ServerConfig) -> Self {
        Self {
            max_connections: server.max_connections.max(1),
            handshake_timeout: ServerConfig::millis(server.handshake_timeout_ms),
            idle_timeout: ServerConfig::millis(server.idle_timeout_ms),
            tcp_keepalive: ServerConfig::millis(server.tcp_keepalive_ms),
        }
    }
}

/// The connections accepted on `listener`, for `serve_with_incoming`.
/// Accept errors are handled here (never yielded), so the stream never fails.
pub(crate) fn incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
) -> impl Stream<Item = Result<Connection, Infallible>> + Send + 'static {
    let acceptor = Acceptor {
        listener,
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        limits,
        at_capacity: Throttled::default(),
        failing: Throttled::default(),
    };
    futures::stream::unfold(acceptor, |mut acceptor| async move {
        let connection = acceptor.next().await;
        Some((Ok(connection), acceptor))
    })
}

struct Acceptor {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    limits: ConnectionLimits,
    at_capacity: Throttled,
    failing: Throttled,
}

impl Acceptor {
    async fn next(&mut self) -> Connection {
        let mut backoff = MIN_BACKOFF;
        loop {
            // The permit comes first: at the cap, clients wait in the kernel's
            // backlog instead of costing a descriptor each.
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    if let Some(suppressed) = self.at_capacity.should_log() {
                        tracing::warn!(
                            max_connections = self.limits.max_connections,
                            suppressed,
                            "connection limit reached; new connections wait"
                        );
                    }
                    match self.permits.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        // Never closed; waiting again would be the same.
                        Err(_) => continue,
                    }
                }
            };
            match self.listener.accept().await {
                Ok((stream, remote_addr)) => {
                    return Connection::new(stream, remote_addr, permit, &self.limits);
                }
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    if let Some(suppressed) = self.failing.should_log() {
                        if is_out_of_descriptors(&error) {
                            tracing::warn!(%error, suppressed, "cannot accept connections: out of file descriptors; backing off");
                        } else {
                            tracing::warn!(%error, suppressed, "accepting a connection failed; backing off");
                        }
                    }
                    // The pending connection stays in the backlog; retrying at
                    // once would only spin until a descriptor frees up.
                    drop(permit);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Errors about one connection that went away before it was accepted.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

/// `EMFILE` (process) or `ENFILE` (system): no descriptor for a new socket.
fn is_out_of_descriptors(error: &io::Error) -> bool {
    // Linux, the BSDs and macOS agree on these numbers.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(error.raw_os_error(), Some(EMFILE | ENFILE))
}

/// Lets a repeated warning through at most once per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    /// `Some(number of warnings dropped since the last one)` when this one may be logged.
    fn should_log(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// An accepted TCP connection that holds one of the [`ConnectionLimits`]
/// slots until dropped, and fails its reads once the peer has been silent
/// for too long (hyper then closes it).
pub(crate) struct Connection {
    stream: TcpStream,
    info: TcpConnectInfo,
    silence: Silence,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    fn new(
        stream: TcpStream,
        remote_addr: std::net::SocketAddr,
        slot: OwnedSemaphorePermit,
        limits: &ConnectionLimits,
    ) -> Self {
        // Small gRPC frames must not wait for Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        if let Some(time) = limits.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new().with_time(time);
            if let Err(error) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%error, "cannot set TCP keepalive");
            }
        }
        let info = TcpConnectInfo { local_addr: stream.local_addr().ok(), remote_addr: Some(remote_addr) };
        Self { stream, info, silence: Silence::new(limits.handshake_timeout, limits.idle_timeout), _slot: slot }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.silence.heard();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.silence.poll_too_long(cx) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// How long the peer has said nothing, against the allowed silence.
///
/// Reads only note the time; the timer is re-armed lazily when it fires,
/// so the hot path costs no timer update per read.
struct Silence {
    idle: Option<Duration>,
    last_heard: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Silence {
    fn new(handshake: Option<Duration>, idle: Option<Duration>) -> Self {
        // Without a handshake limit the first silence counts as idle time.
        let first = handshake.or(idle);
        Self { idle, last_heard: None, timer: first.map(|limit| Box::pin(tokio::time::sleep(limit))) }
    }

    fn heard(&mut self) {
        if self.idle.is_none() {
            // The handshake limit ends with the first bytes.
            self.timer = None;
        }
        self.last_heard = Some(Instant::now());
    }

    /// Whether the allowed silence is over; otherwise the timer wakes `cx`.
    fn poll_too_long(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timer) = self.timer.as_mut() else { return false };
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = match (self.last_heard, self.idle) {
                (Some(heard), Some(idle)) => heard + idle,
                _ => return true,
            };
            if due <= Instant::now() {
                return true;
            }
            timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn limits(max_connections: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections,
            handshake_timeout: Some(Duration::from_millis(200)),
            idle_timeout: Some(Duration::from_millis(400)),
            tcp_keepalive: Some(Duration::from_secs(60)),
        }
    }

    async fn accept_one(connections: &mut (impl Stream<Item = Result<Connection, Infallible>> + Unpin)) -> Connection {
        use futures::StreamExt;
        match connections.next().await {
            Some(Ok(connection)) => connection,
            None => panic!("the stream of connections ended"),
        }
    }

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(24)));
        assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(23)));
        assert!(!is_out_of_descriptors(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        assert!(is_per_connection(&io::Error::from(io::ErrorKind::ConnectionAborted)));
    }

    #[test]
    fn repeated_warnings_are_counted_not_logged() {
        let mut throttled = Throttled::default();
        assert_eq!(throttled.should_log(), Some(0));
        assert_eq!(throttled.should_log(), None);
        assert_eq!(throttled.should_log(), None);
        assert_eq!(throttled.suppressed, 2);
    }

    #[tokio::test]
    async fn silent_connections_fail_their_reads_and_talking_ones_do_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connections = Box::pin(incoming(listener, limits(8)));
        let mut talker = TcpStream::connect(addr).await.unwrap();
        let mut talking = accept_one(&mut connections).await;
        assert_eq!(talking.connect_info().remote_addr, talker.local_addr().ok());
        // Each byte arrives within the idle limit, for longer than the limit in total.
        let writer = tokio::spawn(async move {
            for _ in 0..8 {
                talker.write_all(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            talker
        });
        let mut buf = [0; 1];
        for _ in 0..8 {
            talking.read_exact(&mut buf).await.unwrap();
        }
        let _talker = writer.await.unwrap();
        // Then silence: the read fails once the idle limit is over.
        let error = talking.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn a_full_server_accepts_again_once_a_connection_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connections = Box::pin(incoming(listener, limits(1)));
        let _first_client = TcpStream::connect(addr).await.unwrap();
        let first = accept_one(&mut connections).await;
        let _second_client = TcpStream::connect(addr).await.unwrap();
        let mut next = tokio::spawn(async move { accept_one(&mut connections).await });
        // The cap holds while the first connection is open...
        tokio::select! {
            _ = &mut next => panic!("accepted past the cap"),
            () = tokio::task::yield_now() => {}
        }
        assert!(!next.is_finished());
        // ...and its slot comes back when it is dropped.
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(10), next).await.unwrap().unwrap();
        drop(second);
    }
}
