//! The pool's own sockets: TCP with keepalives and `TCP_USER_TIMEOUT` set before the startup
//! handshake (and read back from the kernel), or a Unix-domain socket.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// TCP keepalive settings. The defaults (idle 60 s, interval 10 s, 6 probes) notice a dead
/// peer within about two minutes instead of Linux's two hours and eleven minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalives {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub retries: u32,
}

impl Default for Keepalives {
    fn default() -> Self {
        Keepalives {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(10),
            retries: 6,
        }
    }
}

/// A connection's socket options as the kernel reports them (`getsockopt`), read right after
/// they were set. `None` for a Unix-domain socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`.
    pub keepalive_idle: Duration,
    /// `TCP_KEEPINTVL`.
    pub keepalive_interval: Duration,
    /// `TCP_KEEPCNT`.
    pub keepalive_retries: u32,
    /// `TCP_USER_TIMEOUT` (`None` when unset).
    pub user_timeout: Option<Duration>,
    /// The local address, as the server sees the client (`client_port` in `pg_stat_activity`).
    pub local_addr: SocketAddr,
}

/// A socket to the server: TCP or Unix-domain.
#[derive(Debug)]
pub enum PgStream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix-domain socket.
    Unix(UnixStream),
}

pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    keepalives: Option<Keepalives>,
    user_timeout: Option<Duration>,
) -> io::Result<(PgStream, SocketOptions)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let sock = SockRef::from(&stream);
    if let Some(k) = keepalives {
        let params = TcpKeepalive::new()
            .with_time(k.idle)
            .with_interval(k.interval)
            .with_retries(k.retries);
        sock.set_tcp_keepalive(&params)?;
    }
    if let Some(t) = user_timeout {
        sock.set_tcp_user_timeout(Some(t))?;
    }
    let options = SocketOptions {
        keepalive: sock.keepalive()?,
        keepalive_idle: sock.keepalive_time()?,
        keepalive_interval: sock.keepalive_interval()?,
        keepalive_retries: sock.keepalive_retries()?,
        user_timeout: sock.tcp_user_timeout()?,
        local_addr: stream.local_addr()?,
    };
    Ok((PgStream::Tcp(stream), options))
}

pub(crate) async fn connect_unix(dir: &Path, port: u16) -> io::Result<PgStream> {
    let path = dir.join(format!(".s.PGSQL.{port}"));
    Ok(PgStream::Unix(UnixStream::connect(path).await?))
}

impl AsyncRead for PgStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            PgStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PgStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            PgStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            PgStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PgStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            PgStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PgStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            PgStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PgStream::Tcp(s) => s.is_write_vectored(),
            PgStream::Unix(s) => s.is_write_vectored(),
        }
    }
}
