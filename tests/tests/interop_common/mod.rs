//! Shared by the interop tests (`interop_wakaama.rs`, `interop_nodelib.rs`,
//! `interop_aiocoap.rs`): finding an external LwM2M client that `scripts/interop.sh` built (FAIL
//! in CI when it is missing, SKIP locally), running it as a child process (killed on drop, stdin
//! kept open through a pipe, its output collected for assertions), and a few lines of HTTP/1.1
//! for the server's JSON API.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The static admin token of `tests::harness::TestServer`.
pub const TOKEN: &str = "e2e-token-0123456789";

/// The path in environment variable `var`, when it names an existing file or directory. In CI
/// (`CI=true`) a missing tool fails the test; elsewhere the test prints `SKIPPED: …` and passes.
pub fn tool(var: &str, what: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from);
    match path {
        Some(p) if p.exists() => Some(p),
        _ => {
            let why = format!(
                "{what} not available: set {var} (eval \"$(bash scripts/interop.sh)\" builds it)"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}");
            }
            println!("SKIPPED: {why}");
            None
        }
    }
}

/// A free UDP port on 127.0.0.1 for a client that wants its local port on the command line.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// An external client process: killed when dropped; stdout and stderr collected line by line.
pub struct External {
    pub child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<String>>,
    name: String,
}

fn collect(reader: impl AsyncRead + Unpin + Send + 'static, output: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = output.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

impl External {
    pub fn spawn(name: &str, mut command: Command) -> External {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), output.clone());
        collect(child.stderr.take().unwrap(), output.clone());
        External {
            stdin: child.stdin.take(),
            child,
            output,
            name: name.to_owned(),
        }
    }

    /// Whether the process has exited (and with which status code).
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| status.code())
    }

    /// Everything the client printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends one command line on the client's stdin.
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        // One write: Wakaama acts on whatever one read() returns, so "quit" written before its
        // newline made it exit at once and the newline's write failed with EPIPE.
        let sent = async {
            stdin.write_all(format!("{line}\n").as_bytes()).await?;
            stdin.flush().await
        }
        .await;
        if let Err(error) = sent {
            let status = self.child.try_wait();
            panic!(
                "cannot send {line:?} to {} ({error}; exit status {status:?}); it printed:\n{}",
                self.name,
                self.output()
            );
        }
    }

    /// Waits up to `patience` for `needle` in the client's output (after `from` bytes of it).
    pub async fn wait_for(&self, needle: &str, from: usize, patience: Duration) -> String {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let out = self.output();
            if let Some(found) = out.get(from..).and_then(|tail| {
                tail.find(needle)
                    .map(|at| tail[at..].lines().next().unwrap_or("").to_owned())
            }) {
                return found;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} did not print {needle:?} within {patience:?}; it printed:\n{out}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `patience` for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, patience: Duration) -> Option<i32> {
        match tokio::time::timeout(patience, self.child.wait()).await {
            Ok(status) => status.unwrap().code(),
            Err(_) => panic!(
                "{} still running after {patience:?}; it printed:\n{}",
                self.name,
                self.output()
            ),
        }
    }
}

/// One HTTP exchange with the server's API; the status and the JSON body (Null if none).
pub async fn http(addr: SocketAddr, method: &str, uri: &str, body: Option<Json>) -> (u16, Json) {
    tests::http::json(addr, TOKEN, method, uri, body, Duration::from_secs(40)).await
}

/// POST `body` to `/api/v1/devices/{endpoint}/{operation}`, expecting 200; the answer.
pub async fn op(addr: SocketAddr, endpoint: &str, operation: &str, body: Json) -> Json {
    let (status, answer) = http(
        addr,
        "POST",
        &format!("/api/v1/devices/{endpoint}/{operation}"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{operation} {body} → {answer}");
    answer
}

/// Observes through `POST .../observe` (`body`: `{"path": …}` or `{"paths": […]}`), expecting
/// an established observation: its number and the answer (first values).
pub async fn observe(addr: SocketAddr, endpoint: &str, body: Json) -> (u64, Json) {
    let observed = op(addr, endpoint, "observe", body).await;
    let observation = observed["observation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no observation established: {observed}"));
    (observation, observed)
}

/// Cancels observation `observation` of `endpoint` by its number, expecting it cancelled.
pub async fn cancel(addr: SocketAddr, endpoint: &str, observation: u64) {
    let (status, cancelled) = http(
        addr,
        "DELETE",
        &format!("/api/v1/devices/{endpoint}/observe?observation={observation}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["cancelled"], serde_json::json!([observation]));
}

/// Reads `paths`; the answer's values.
pub async fn read(addr: SocketAddr, endpoint: &str, paths: &[&str]) -> Json {
    op(
        addr,
        endpoint,
        "read",
        serde_json::json!({ "paths": paths }),
    )
    .await
}

/// The value at `path` in a read answer.
pub fn value_of<'a>(body: &'a Json, path: &str) -> &'a Json {
    body["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values in {body}"))
        .iter()
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {body}"))
}

/// The device's live registration (`GET /api/v1/devices/{endpoint}/registration`).
pub async fn registration(addr: SocketAddr, endpoint: &str) -> Json {
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/devices/{endpoint}/registration"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}
