//! A minimal Prometheus endpoint for the demo: installs the Prometheus recorder and serves its
//! text at `/metrics` on a TCP address (one request per connection, no HTTP library).

use std::io;
use std::net::SocketAddr;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Installs the Prometheus recorder as the global `metrics` recorder and serves `/metrics` on
/// `addr` in a background task. Returns the address bound (for port 0) and the handle.
///
/// # Errors
/// The bind error, or a recorder already installed.
pub async fn serve_metrics(addr: SocketAddr) -> io::Result<(SocketAddr, PrometheusHandle)> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| io::Error::other(format!("a metrics recorder is already installed: {e}")))?;
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let h = handle.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let response = if request.starts_with("GET /metrics") {
                    let body = h.render();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok((bound, handle))
}

/// One `GET /metrics` to a [`serve_metrics`] endpoint at `addr`: the whole HTTP response (status
/// line, headers and the Prometheus text).
///
/// # Errors
/// The connect, write or read error.
pub async fn scrape(addr: SocketAddr) -> io::Result<String> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut text = String::new();
    socket.read_to_string(&mut text).await?;
    Ok(text)
}
