//! A TCP proxy that injects faults between a pool and a real server.
//!
//! # Implementation details
//!
//! One accept task and one task per proxied connection, all watching the current [`Fault`]
//! through a `watch` channel, so a change applies at once to connections already open: `Reset`
//! aborts them with an RST, `Blackhole` stops forwarding (bytes are read and dropped, sockets
//! stay open), `Latency` delays every forwarded chunk. `Refuse` closes the listening socket, so
//! new connects get `ECONNREFUSED`; it listens again on the same port when the fault changes.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Stop listening: new connects are refused (also one accepted just before the change and
    /// not yet piped); open connections carry on.
    Refuse,
    /// Reset every open connection, and every new one as it arrives.
    Reset,
    /// Keep every socket open but forward nothing, in either direction.
    Blackhole,
    /// Forward everything, each chunk after this delay.
    Latency(Duration),
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    reset: AtomicU64,
    /// Connections accepted and not yet closed or reset (also those still connecting upstream).
    open: AtomicU64,
}

/// A running fault proxy. Dropping it stops accepting and closes every proxied connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<Fault>,
    counters: Arc<Counters>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream`.
    ///
    /// # Errors
    /// If the listening socket cannot be bound.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = listen("127.0.0.1:0".parse().expect("a literal address"))?;
        let addr = listener.local_addr()?;
        let (fault, watch) = watch::channel(Fault::Pass);
        let counters = Arc::new(Counters::default());
        let accept_task = tokio::spawn(accept_loop(
            listener,
            addr,
            upstream,
            watch,
            Arc::clone(&counters),
        ));
        Ok(FaultProxy {
            addr,
            fault,
            counters,
            accept_task,
        })
    }

    /// The address to connect to instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the fault; it applies at once, also to open connections.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Connections reset so far (also those reset as they arrive).
    pub fn resets(&self) -> u64 {
        self.counters.reset.load(Ordering::Relaxed)
    }

    /// Connections accepted and not yet ended, whether piped to the upstream or still on their
    /// way there: after a [`Fault::Reset`], 0 once every connection that was accepted has been
    /// reset.
    pub fn open(&self) -> u64 {
        self.counters.open.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        // Closing the channel ends every connection task.
        self.fault.send_replace(Fault::Reset);
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut watch: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    let mut listener = Some(listener);
    loop {
        let fault = *watch.borrow_and_update();
        if fault == Fault::Refuse {
            listener = None; // stop listening: connects are refused
            if watch.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match listen(addr) {
                Ok(l) => l,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((client, _)) = accepted {
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    // Counted from the accept, so `open() == 0` also rules out a connection
                    // still on its way to the upstream.
                    counters.open.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(pipe(client, upstream, watch.clone(), Arc::clone(&counters)));
                }
            }
            changed = watch.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        listener = Some(l);
    }
}

enum End {
    Closed,
    Reset,
}

async fn pipe(
    client: TcpStream,
    upstream: SocketAddr,
    watch: watch::Receiver<Fault>,
    counters: Arc<Counters>,
) {
    relay(client, upstream, watch, &counters).await;
    counters.open.fetch_sub(1, Ordering::Relaxed);
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut watch: watch::Receiver<Fault>,
    counters: &Counters,
) {
    let _ = client.set_nodelay(true);
    // A connection accepted just before the fault changed to `Refuse` is refused as well: it
    // is new, and `Refuse` means no new connection gets through.
    if matches!(*watch.borrow(), Fault::Reset | Fault::Refuse) {
        reset(&client, None, counters);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(&client, None, counters);
        return;
    };
    let _ = server.set_nodelay(true);
    let end = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let mut up = vec![0u8; 16 * 1024];
        let mut down = vec![0u8; 16 * 1024];
        loop {
            let fault = *watch.borrow_and_update();
            if fault == Fault::Reset {
                break End::Reset;
            }
            let step = tokio::select! {
                r = cr.read(&mut up) => forward(r, &up, &mut sw, fault).await,
                r = sr.read(&mut down) => forward(r, &down, &mut cw, fault).await,
                changed = watch.changed() => if changed.is_err() { Err(()) } else { Ok(()) },
            };
            if step.is_err() {
                break End::Closed;
            }
        }
    };
    if let End::Reset = end {
        reset(&client, Some(&server), counters);
    }
}

async fn forward<W>(read: io::Result<usize>, buf: &[u8], to: &mut W, fault: Fault) -> Result<(), ()>
where
    W: AsyncWrite + Unpin,
{
    let n = match read {
        Ok(0) | Err(_) => return Err(()),
        Ok(n) => n,
    };
    match fault {
        Fault::Blackhole => Ok(()),
        Fault::Latency(d) => {
            tokio::time::sleep(d).await;
            to.write_all(&buf[..n]).await.map_err(drop)
        }
        _ => to.write_all(&buf[..n]).await.map_err(drop),
    }
}

fn reset(client: &TcpStream, server: Option<&TcpStream>, counters: &Counters) {
    counters.reset.fetch_add(1, Ordering::Relaxed);
    // Linger 0: closing sends an RST instead of a FIN (and does not block).
    let _ = socket2::SockRef::from(client).set_linger(Some(Duration::ZERO));
    if let Some(s) = server {
        let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    }
}
