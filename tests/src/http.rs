//! A minimal HTTP/1.1 client for end-to-end tests: one request per connection
//! (`Connection: close`), bearer token, JSON in and out. The tests crate has no HTTP client
//! dependency, and these few lines keep it that way.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP exchange; returns the status, the headers (lower-case) and the body. The answer
/// must arrive within `patience`.
///
/// # Panics
/// On connection failures, malformed responses and a late answer (a failed test).
#[allow(clippy::unwrap_used)]
pub async fn raw(
    addr: SocketAddr,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<&Json>,
    patience: Duration,
) -> (u16, String, Vec<u8>) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    send(
        addr,
        token,
        method,
        uri,
        "application/json",
        body.as_bytes(),
        patience,
    )
    .await
}

/// One HTTP exchange with a body of any content type (CSV imports); as [`raw`].
///
/// # Panics
/// On connection failures, malformed responses and a late answer (a failed test).
#[allow(clippy::unwrap_used)]
pub async fn send(
    addr: SocketAddr,
    token: &str,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &[u8],
    patience: Duration,
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {uri} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(patience, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
    let mut payload = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, head, payload)
}

/// Decodes an HTTP/1.1 chunked body (RFC 9112 §7.1).
#[allow(clippy::unwrap_used)]
pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// One exchange with a JSON answer (`Null` when the body is not JSON).
pub async fn json(
    addr: SocketAddr,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Json>,
    patience: Duration,
) -> (u16, Json) {
    let (status, _, payload) = raw(addr, token, method, uri, body.as_ref(), patience).await;
    (
        status,
        serde_json::from_slice(&payload).unwrap_or(Json::Null),
    )
}
