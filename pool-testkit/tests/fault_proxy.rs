//! The fault proxy's own promises, on loopback sockets: what gets through under each fault.
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use pool_testkit::{Fault, FaultProxy};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// An upstream that greets every connection with `up` and keeps it open.
async fn greeting_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"up").await;
            held.push(s);
        }
    });
    addr
}

/// Did the upstream's greeting reach this client? (A reset, a close or a refused connect all
/// mean no.)
fn got_through(client: std::io::Result<TcpStream>) -> bool {
    let Ok(mut client) = client else {
        return false;
    };
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 2];
    matches!(client.read(&mut buf), Ok(n) if n > 0)
}

/// Connections that arrive under `Reset` are reset, and those the proxy accepted just before
/// `Refuse` took over are refused too: whichever fault a connection meets, it never reaches
/// the upstream. (A connection accepted under `Reset` and handled after the change used to be
/// relayed, so a pool's replacement could pass under `Refuse`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_new_gets_through_reset_then_refuse() {
    let upstream = greeting_upstream().await;
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let addr = proxy.addr();
    assert!(
        tokio::task::spawn_blocking(move || got_through(TcpStream::connect(addr)))
            .await
            .unwrap(),
        "under Pass the greeting gets through"
    );
    for round in 0..20 {
        proxy.set(Fault::Reset);
        let clients: Vec<_> = tokio::task::spawn_blocking(move || {
            (0..32).map(|_| TcpStream::connect(addr)).collect()
        })
        .await
        .unwrap();
        proxy.set(Fault::Refuse);
        let through = tokio::task::spawn_blocking(move || {
            clients.into_iter().map(got_through).filter(|&g| g).count()
        })
        .await
        .unwrap();
        assert_eq!(through, 0, "round {round}: {through} of 32 got through");
        // Each connection's task ends just after its client sees the reset.
        let mut waited = 0;
        while proxy.open() > 0 && waited < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(proxy.open(), 0, "round {round}: connections left open");
        proxy.set(Fault::Pass);
    }
    assert!(proxy.resets() > 0);
}
