//! Custom connects: a stream the application supplies for each connect (a Unix socket at a path
//! of its choosing, an SSH or kube port-forward tunnel, a cloud SQL connector), instead of
//! tokio-postgres dialing the connection string's hosts.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use crate::keepalive::Keepalives;

/// Any byte stream a custom connect can return (besides TCP and Unix sockets).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// The stream a custom connect ([`PgManager::connector`](crate::PgManager::connector)) hands
/// the adapter: the Postgres protocol runs over it.
#[non_exhaustive]
pub enum PgStream {
    /// A TCP connection: the manager's keepalives and `tcp_user_timeout` are set on it.
    Tcp(TcpStream),
    /// A Unix socket.
    #[cfg(unix)]
    Unix(UnixStream),
    /// Anything else (a TLS tunnel, an in-process pipe): used as it is.
    Other(Box<dyn Stream>),
}

impl std::fmt::Debug for PgStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgStream::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            #[cfg(unix)]
            PgStream::Unix(s) => f.debug_tuple("Unix").field(s).finish(),
            PgStream::Other(_) => f.write_str("Other(..)"),
        }
    }
}

impl PgStream {
    /// Sets the manager's TCP settings on a TCP stream (nothing on others).
    pub(crate) fn tune(
        &self,
        keepalives: Option<Keepalives>,
        user_timeout: Option<Duration>,
    ) -> io::Result<()> {
        let PgStream::Tcp(tcp) = self else {
            return Ok(());
        };
        let socket = socket2::SockRef::from(tcp);
        match keepalives {
            Some(k) => {
                let ka = socket2::TcpKeepalive::new()
                    .with_time(k.idle)
                    .with_interval(k.interval);
                #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
                let ka = ka.with_retries(k.retries);
                socket.set_tcp_keepalive(&ka)?;
            }
            None => socket.set_keepalive(false)?,
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(t) = user_timeout {
            socket.set_tcp_user_timeout(Some(t))?;
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = user_timeout;
        socket.set_nodelay(true)?;
        Ok(())
    }
}

macro_rules! each {
    ($self:ident, |$s:ident| $e:expr) => {
        match $self.get_mut() {
            PgStream::Tcp($s) => $e,
            #[cfg(unix)]
            PgStream::Unix($s) => $e,
            PgStream::Other($s) => $e,
        }
    };
}

impl AsyncRead for PgStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, |s| Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, |s| Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, |s| Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, |s| Pin::new(s).poll_shutdown(cx))
    }
}

/// The future a custom connect returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<PgStream>> + Send>>;

/// A custom connect, as the manager keeps it.
pub(crate) type Connector = Arc<dyn Fn(&tokio_postgres::Config) -> ConnectFuture + Send + Sync>;
