//! `--api URL --api-token T`: the simulator enters its meters in the server's fleet registry
//! through the HTTP API before it starts them, so that a run needs no manual provisioning step.
//!
//! - What exists is read first with one `GET /api/v1/devices/export` (CSV, no keys).
//! - Missing DTLS meters are created with `POST /api/v1/devices/import`, a CSV of
//!   `endpoint,serial,model,psk_identity,psk_key_hex` in chunks of [`IMPORT_CHUNK`] rows; the key
//!   is the one the meter derives from the fleet secret ([`psk_key`]), so the simulator never
//!   has to remember a server-generated key.
//! - Missing NoSec meters are created one by one with `POST /api/v1/devices`
//!   (`security_mode: nosec`; the CSV import only knows PSK devices), on a few threads.
//! - Re-running is idempotent: a meter already in the registry is reused as it is, with the key
//!   derived again from `--psk-secret` (the secret is the simulator's local key material). The
//!   registry cannot confirm a key (it never answers one) and the API has no key rotation, so an
//!   existing device whose security mode or PSK identity differs from what the meter will
//!   present, or that is decommissioned, is reported as a conflict and the run does not start.
//!
//! The HTTP client is a few lines of HTTP/1.1 over `std::net::TcpStream` (`Connection: close`,
//! plain `http://` only): the simulator needs four requests, not an HTTP stack.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use thiserror::Error;

use crate::meter::{Profile, ProfileParams, Security, endpoint_name, psk_key};

/// Rows per import request (about 1 MB of CSV).
pub const IMPORT_CHUNK: usize = 10_000;
/// Parallel connections for one-by-one creation.
const CREATE_THREADS: usize = 2;
/// Attempts of one creation answered 5xx (the server's SQLite store answers 500 "database is
/// locked" to concurrent writers instead of waiting for the lock; see the report).
const CREATE_ATTEMPTS: u32 = 8;
/// How long one HTTP exchange may take (an import of 10,000 rows writes 10,000 audit rows).
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Why provisioning failed.
#[derive(Debug, Error)]
pub enum ProvisionError {
    /// The `--api` value is not `http://HOST:PORT`.
    #[error("--api {0:?}: expected http://HOST:PORT (https is not supported)")]
    BadUrl(String),
    /// Connecting, sending or reading failed.
    #[error("{method} {path}: {source}")]
    Io {
        /// The request method.
        method: &'static str,
        /// The request path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server answered with an unexpected status.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// The request method.
        method: &'static str,
        /// The request path.
        path: String,
        /// The status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The answer could not be understood.
    #[error("{0}")]
    Protocol(String),
    /// Rows the server refused, or existing devices that do not match the simulated meters.
    #[error("{count} meter(s) cannot be provisioned; first: {first:?}")]
    Conflicts {
        /// How many.
        count: usize,
        /// The first few, `endpoint: reason`.
        first: Vec<String>,
    },
}

/// Where the API is and how to authenticate.
#[derive(Clone)]
pub struct ApiClient {
    addr: SocketAddr,
    host: String,
    token: String,
}

// Hand-written: the token must never reach a log line.
impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl ApiClient {
    /// `url` is `http://HOST:PORT` (a trailing `/` or `/api/v1` is accepted).
    pub fn new(url: &str, token: &str) -> Result<ApiClient, ProvisionError> {
        let bad = || ProvisionError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let host = rest
            .trim_end_matches('/')
            .trim_end_matches("/api/v1")
            .trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let with_port = if host.starts_with('[') && !host.contains("]:")
            || !host.starts_with('[') && !host.contains(':')
        {
            format!("{host}:80")
        } else {
            host.to_owned()
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(ApiClient {
            addr,
            host: host.to_owned(),
            token: token.to_owned(),
        })
    }

    /// One request; `path` starts with `/api/v1/`.
    pub fn request(
        &self,
        method: &'static str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<HttpAnswer, ProvisionError> {
        let io = |source| ProvisionError::Io {
            method,
            path: path.to_owned(),
            source,
        };
        let mut stream =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(10)).map_err(io)?;
        stream.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(io)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
             content-type: {content_type}\r\naccept: application/json, text/csv\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            self.host,
            self.token,
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(io)?;
        stream.write_all(body).map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(io)?;
        parse_answer(&raw).ok_or_else(|| {
            ProvisionError::Protocol(format!("{method} {path}: malformed HTTP answer"))
        })
    }

    fn expect(
        &self,
        method: &'static str,
        path: &str,
        content_type: &str,
        body: &[u8],
        ok: &[u16],
    ) -> Result<HttpAnswer, ProvisionError> {
        let answer = self.request(method, path, content_type, body)?;
        if ok.contains(&answer.status) {
            Ok(answer)
        } else {
            Err(ProvisionError::Status {
                method,
                path: path.to_owned(),
                status: answer.status,
                body: String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
                    .into_owned(),
            })
        }
    }
}

/// Splits a `Connection: close` HTTP/1.1 answer into status and body.
fn parse_answer(raw: &[u8]) -> Option<HttpAnswer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(raw.get(..split)?).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.get(split + 4..)?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some(HttpAnswer { status, body })
}

/// Decodes a chunked body (RFC 9112 §7.1).
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(body.get(..line_end)?).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        let start = line_end + 2;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(start..start.checked_add(size)?)?);
        body = body.get(start + size + 2..)?;
    }
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines in the fields we read).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// What the registry holds about one endpoint (from the export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// `psk` or `nosec`.
    pub security_mode: String,
    /// The PSK identity, empty for NoSec.
    pub psk_identity: String,
    /// Lifecycle state.
    pub state: String,
}

/// The registry's devices by endpoint (`GET /api/v1/devices/export`).
pub fn existing_devices(api: &ApiClient) -> Result<HashMap<String, Existing>, ProvisionError> {
    let answer = api.expect("GET", "/api/v1/devices/export", "text/plain", b"", &[200])?;
    let text = String::from_utf8_lossy(&answer.body);
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or(""));
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| ProvisionError::Protocol(format!("the export has no {name:?} column")))
    };
    let (ep, mode, identity, state) = (
        column("endpoint")?,
        column("security_mode")?,
        column("psk_identity")?,
        column("state")?,
    );
    let mut out = HashMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f = csv_fields(line);
        let get = |i: usize| f.get(i).cloned().unwrap_or_default();
        out.insert(
            get(ep),
            Existing {
                security_mode: get(mode),
                psk_identity: get(identity),
                state: get(state),
            },
        );
    }
    Ok(out)
}

/// What the meters of a fleet need in the registry.
#[derive(Debug, Clone)]
pub struct ProvisionPlan {
    /// Number of meters.
    pub meters: u32,
    /// Endpoint prefix.
    pub endpoint_prefix: String,
    /// NoSec or PSK (identity prefix and fleet secret).
    pub security: Security,
    /// The profiles (for each meter's model and serial number in the registry).
    pub profiles: ProfileParams,
    /// Factory bootstrap (`--bootstrap`): over coaps:// the meters are created with their factory
    /// credential (PUT as `bootstrap_psk_identity` / `bootstrap_psk_key_hex`) and the server makes
    /// the DM keys; over coap:// they are plain NoSec devices.
    pub bootstrap: Option<crate::meter::BootstrapSettings>,
}

/// What provisioning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionReport {
    /// Devices created now.
    pub created: usize,
    /// Devices that were already there and match (reused; keys derived from the secret).
    pub reused: usize,
}

impl std::fmt::Display for ProvisionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "provisioned: {} created, {} already in the registry (reused)",
            self.created, self.reused
        )
    }
}

struct Wanted {
    endpoint: String,
    serial: String,
    model: &'static str,
    /// PSK identity and key (hex), for DTLS.
    psk: Option<(String, String)>,
    /// Factory bootstrap identity and key (hex), for `--bootstrap`.
    bootstrap: Option<(String, String)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Enters the plan's meters in the registry (see the module documentation). `progress` is
/// called with (done, total) now and then.
pub fn provision(
    api: &ApiClient,
    plan: &ProvisionPlan,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<ProvisionReport, ProvisionError> {
    let existing = existing_devices(api)?;
    let mut report = ProvisionReport::default();
    let mut conflicts = Vec::new();
    let mut missing = Vec::new();
    for i in 0..plan.meters {
        let endpoint = endpoint_name(&plan.endpoint_prefix, i);
        let psk = match &plan.security {
            Security::NoSec => None,
            Security::Psk {
                identity_prefix,
                secret,
            } => {
                let identity = format!("{identity_prefix}{endpoint}");
                let key = hex(&psk_key(secret, &identity));
                Some((identity, key))
            }
        };
        // A NoSec fleet bootstraps in clear: the device is a plain NoSec one.
        let bootstrap = plan.bootstrap.as_ref().filter(|bs| bs.secure).map(|bs| {
            let identity = format!("{}{endpoint}", bs.identity_prefix);
            let key = hex(&psk_key(&bs.secret, &identity));
            (identity, key)
        });
        // A bootstrapped meter gets its DM identity from the server: any one will do.
        let psk = if bootstrap.is_some() { None } else { psk };
        if let Some(have) = existing.get(&endpoint) {
            let want_mode = if psk.is_some() || bootstrap.is_some() {
                "psk"
            } else {
                "nosec"
            };
            let want_identity = psk
                .as_ref()
                .map_or(have.psk_identity.as_str(), |(id, _)| id.as_str());
            if have.state == "decommissioned" {
                conflicts.push(format!("{endpoint}: decommissioned in the registry"));
            } else if have.security_mode != want_mode {
                conflicts.push(format!(
                    "{endpoint}: registered as {}, the meter uses {want_mode}",
                    have.security_mode
                ));
            } else if have.psk_identity != want_identity {
                conflicts.push(format!(
                    "{endpoint}: PSK identity {:?} in the registry, the meter presents {want_identity:?}",
                    have.psk_identity
                ));
            } else {
                report.reused += 1;
            }
            continue;
        }
        let profile = Profile::generate(&plan.profiles, i);
        missing.push(Wanted {
            endpoint,
            serial: profile.serial_number(),
            model: profile.model_def().name,
            psk,
            bootstrap,
        });
    }
    if !conflicts.is_empty() {
        return Err(ProvisionError::Conflicts {
            count: conflicts.len(),
            first: conflicts.into_iter().take(5).collect(),
        });
    }
    let total = missing.len();
    progress(0, total);
    let (psk, nosec): (Vec<Wanted>, Vec<Wanted>) =
        missing.into_iter().partition(|w| w.psk.is_some());
    let mut done = 0;
    for chunk in psk.chunks(IMPORT_CHUNK) {
        let (created, refused) = import_chunk(api, chunk)?;
        report.created += created;
        conflicts.extend(refused);
        done += chunk.len();
        progress(done, total);
    }
    let (created, existed, refused) = create_each(api, &nosec, &|n| progress(done + n, total))?;
    report.created += created;
    report.reused += existed;
    conflicts.extend(refused);
    if !conflicts.is_empty() {
        return Err(ProvisionError::Conflicts {
            count: conflicts.len(),
            first: conflicts.into_iter().take(5).collect(),
        });
    }
    Ok(report)
}

/// Imports PSK meters; returns (created, refusals).
fn import_chunk(api: &ApiClient, chunk: &[Wanted]) -> Result<(usize, Vec<String>), ProvisionError> {
    let mut csv = String::from("endpoint,serial,model,psk_identity,psk_key_hex\n");
    for w in chunk {
        let (identity, key) = w.psk.clone().unwrap_or_default();
        // Endpoint names, serials and identities of simulated meters never need quoting.
        csv.push_str(&format!(
            "{},{},{},{identity},{key}\n",
            w.endpoint, w.serial, w.model
        ));
    }
    let answer = api.expect(
        "POST",
        "/api/v1/devices/import",
        "text/csv",
        csv.as_bytes(),
        &[200],
    )?;
    let report: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|e| ProvisionError::Protocol(format!("import report: {e}")))?;
    if let Some(why) = report.get("aborted").and_then(|a| a.as_str()) {
        return Err(ProvisionError::Protocol(format!("import aborted: {why}")));
    }
    let mut created = 0;
    let mut refused = Vec::new();
    for row in report["rows"].as_array().into_iter().flatten() {
        let endpoint = row["endpoint"].as_str().unwrap_or("?");
        match row["status"].as_str() {
            Some("accepted") => created += 1,
            _ => refused.push(format!(
                "{endpoint}: {}",
                row["reason"].as_str().unwrap_or("not imported")
            )),
        }
    }
    Ok((created, refused))
}

/// Creates NoSec meters one by one on a few connections; returns (created, already there,
/// refusals).
fn create_each(
    api: &ApiClient,
    wanted: &[Wanted],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(usize, usize, Vec<String>), ProvisionError> {
    let next = AtomicUsize::new(0);
    let created = AtomicUsize::new(0);
    let existed = AtomicUsize::new(0);
    let refused = Mutex::new(Vec::new());
    let failure: Mutex<Option<ProvisionError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..CREATE_THREADS.min(wanted.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(w) = wanted.get(i) else { return };
                    if failure.lock().map_or(true, |f| f.is_some()) {
                        return;
                    }
                    let body = match &w.bootstrap {
                        None => json!({
                            "endpoint": w.endpoint,
                            "serial": w.serial,
                            "model": w.model,
                            "security_mode": "nosec",
                        }),
                        Some((identity, key)) => json!({
                            "endpoint": w.endpoint,
                            "serial": w.serial,
                            "model": w.model,
                            "security_mode": "psk",
                            "bootstrap_psk_identity": identity,
                            "bootstrap_psk_key_hex": key,
                        }),
                    }
                    .to_string();
                    let mut attempt = 0;
                    let answer = loop {
                        let answer = api.request(
                            "POST",
                            "/api/v1/devices",
                            "application/json",
                            body.as_bytes(),
                        );
                        attempt += 1;
                        match answer {
                            Ok(a) if a.status >= 500 && attempt < CREATE_ATTEMPTS => {
                                let wait = 20u64 << attempt.min(6);
                                std::thread::sleep(Duration::from_millis(
                                    wait + (i as u64 * 7919) % wait,
                                ));
                            }
                            other => break other,
                        }
                    };
                    match answer {
                        Ok(a) if a.status == 201 => {
                            let n = created.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_multiple_of(500) {
                                progress(n);
                            }
                        }
                        // Created meanwhile (by a retried attempt or a parallel run): it is
                        // a NoSec device of that name, which is all a NoSec meter needs.
                        Ok(a) if a.status == 409 => {
                            existed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(a) => {
                            if let Ok(mut r) = refused.lock() {
                                r.push(format!(
                                    "{}: HTTP {} {}",
                                    w.endpoint,
                                    a.status,
                                    String::from_utf8_lossy(&a.body[..a.body.len().min(200)])
                                ));
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok((
        created.into_inner(),
        existed.into_inner(),
        refused.into_inner().unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn api_urls() {
        let a = ApiClient::new("http://127.0.0.1:8080", "t").unwrap();
        assert_eq!(a.addr, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        let a = ApiClient::new("http://127.0.0.1:8080/api/v1/", "t").unwrap();
        assert_eq!(a.host, "127.0.0.1:8080");
        let a = ApiClient::new("http://127.0.0.1", "t").unwrap();
        assert_eq!(a.addr.port(), 80);
        assert!(ApiClient::new("https://127.0.0.1:8443", "t").is_err());
        assert!(ApiClient::new("http://", "t").is_err());
        assert!(ApiClient::new("http://h:1/x", "t").is_err());
        // The token stays out of Debug output.
        assert!(!format!("{a:?}").contains("\"t\""));
    }

    #[test]
    fn answers_plain_and_chunked() {
        let a = parse_answer(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (201, &b"{}"[..]));
        // RFC 9112 §7.1 example shape: sizes in hex, a zero-size last chunk.
        let a = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.body, b"Wikipedia ");
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\n").is_none());
        assert!(
            parse_answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").is_none()
        );
    }

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(csv_fields("a,b,,c"), ["a", "b", "", "c"]);
        assert_eq!(
            csv_fields("x,\"k=v;a=\"\"b\"\"\",y"),
            ["x", "k=v;a=\"b\"", "y"]
        );
    }
}
