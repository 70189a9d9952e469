//! The HTTP service example (`examples/service.rs`) run on a free port against the real server:
//! requests over real HTTP, a transfer committed and one rolled back, concurrent transfers that
//! conserve money, bad requests named, `/metrics` scraped, and a graceful shutdown that leaves
//! no backend behind.
mod common;

#[path = "../examples/service.rs"]
#[allow(dead_code)]
mod service;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request on a fresh connection; the status code and the body.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the service");
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_string())
}

/// The value of a Prometheus sample, by its name and labels as printed (`name{pool="x"}`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_serves_transfers_and_metrics_and_shuts_down_cleanly() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("service");
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder in this test binary");
    let pool = service::build_pool(&common::with_app(&url, &app, None))
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service::serve(listener, pool.clone(), metrics, async {
        let _ = stopped.await;
    }));

    // Accounts unique to this run, so runs sharing the server do not meet.
    let a = common::unique("alice");
    let b = common::unique("bob");
    // Requests that check a connection out, for the metrics below.
    let checkouts = std::sync::atomic::AtomicUsize::new(0);
    let call = |method: &'static str, path: String| {
        checkouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move { http(addr, method, &path).await }
    };
    let balance = |id: &str| {
        let get = call("GET", format!("/accounts/{id}"));
        async move {
            let (status, body) = get.await;
            assert_eq!(status, 200, "{body}");
            body.trim().parse::<i64>().unwrap()
        }
    };

    assert_eq!(
        call("POST", format!("/accounts/{a}/deposit/100")).await,
        (200, "100\n".into())
    );
    // The other account does not exist yet: the transfer finds it missing and rolls back.
    let (status, body) = call("POST", format!("/transfer/{a}/{b}/30")).await;
    assert_eq!(
        (status, body.as_str()),
        (404, format!("no account {b:?}\n").as_str())
    );
    assert_eq!(balance(&a).await, 100);
    assert_eq!(
        call("POST", format!("/accounts/{b}/deposit/5")).await,
        (200, "5\n".into())
    );
    assert_eq!(
        call("POST", format!("/transfer/{a}/{b}/30")).await,
        (200, "ok\n".into())
    );
    assert_eq!((balance(&a).await, balance(&b).await), (70, 35));
    // Too much: the table's check refuses the debit and the transaction keeps nothing.
    assert_eq!(
        call("POST", format!("/transfer/{a}/{b}/1000")).await,
        (409, "not enough money\n".into())
    );
    assert_eq!((balance(&a).await, balance(&b).await), (70, 35));

    // Bad requests are named and never reach the pool.
    let (status, body) = http(addr, "POST", &format!("/accounts/{a}/deposit/-5")).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "amount must be positive, got -5\n")
    );
    let (status, _) = http(addr, "POST", &format!("/accounts/{a}/deposit/lots")).await;
    assert_eq!(status, 400, "a non-number amount is refused by the router");
    let (status, _) = http(addr, "GET", "/nowhere").await;
    assert_eq!(status, 404);

    // 24 transfers at once, 12 each way, through a pool of at most 4: all succeed (rows are
    // locked in id order, so opposite transfers do not deadlock) and the total stays 105.
    let transfers: Vec<_> = (0..24)
        .map(|i| {
            let path = if i % 2 == 0 {
                format!("/transfer/{a}/{b}/1")
            } else {
                format!("/transfer/{b}/{a}/2")
            };
            tokio::spawn(async move { http(addr, "POST", &path).await })
        })
        .collect();
    checkouts.fetch_add(transfers.len(), std::sync::atomic::Ordering::Relaxed);
    for t in transfers {
        assert_eq!(t.await.unwrap(), (200, "ok\n".into()));
    }
    assert_eq!(
        (balance(&a).await, balance(&b).await),
        (70 - 12 + 24, 35 + 12 - 24)
    );
    assert!(
        pool.status().size <= 4,
        "the preset's ceiling holds: {:?}",
        pool.status()
    );

    // One more: build_pool's own checkout, which made the table.
    let pool_requests = checkouts.into_inner() + 1;
    // /metrics: the pool's series under its name, described, and every checkout counted once
    // the next housekeeping pass publishes (one a second by default).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let last = loop {
        let (status, text) = http(addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        let counted = sample(&text, "pool_checkouts_total{pool=\"service\"}");
        if counted.is_some_and(|n| n >= pool_requests as f64) {
            assert_eq!(counted, Some(pool_requests as f64), "{text}");
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pool_requests} checkouts not counted in /metrics within 5 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(last.contains("# HELP pool_checkouts_total"), "{last}");
    let open = sample(&last, "pool_connections{pool=\"service\"}").expect("the size gauge");
    assert!((1.0..=4.0).contains(&open), "pool_connections {open}");
    assert!(common::backends(&admin, &app).await >= 1);

    // Graceful shutdown: the server stops, the pool closes, its backends leave the server.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
    assert!(pool.is_closed());
    assert_eq!(pool.status().size, 0, "{:?}", pool.status());
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            common::backends(&admin, &app).await == 0
        })
        .await,
        "backends left after shutdown"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
    admin
        .execute(
            "DELETE FROM service_accounts WHERE id = ANY($1)",
            &[&vec![a, b]],
        )
        .await
        .unwrap();
}
