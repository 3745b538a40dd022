//! A LwM2M socket task's own thread: a current-thread tokio runtime that drives one socket task
//! (CoAP or CoAPS) and nothing else.
//!
//! Why not the server's multi-thread runtime: a socket task hands every completed request to
//! a waiting HTTP handler and every event to the listeners (SSE, metrics, inventory). On the
//! shared runtime each of those wake-ups made an idle worker thread come and steal the woken
//! task, and the socket task itself moved between workers with the epoll readiness: measured
//! on 2 cores (`ferrite-sim bench fleet-reads`, 200 NoSec devices, 4 runs each), 36.6 µs of
//! server CPU per read with the socket tasks on the shared runtime, 23.3 µs when nothing ran on
//! a second worker. On its own thread a socket task keeps its epoll, its caches and its timers,
//! the two sockets still run in parallel, and the rest of the server keeps its worker threads
//! for HTTP and the store.
//!
//! The thread runs until [`IoThread`] is dropped: the service stops the
//! socket tasks first (its shutdown signal), awaits them, then lets the thread go.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A socket task's thread and its runtime's handle.
#[derive(Debug)]
pub(crate) struct IoThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IoThread {
    /// Starts the thread (named `name`) with an empty current-thread runtime (I/O and timers).
    pub(crate) fn start(name: &str) -> std::io::Result<IoThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Drives every task spawned on the handle until told to stop (or the sender
                // is dropped); what is still running then is cancelled with the runtime.
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            })?;
        Ok(IoThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the thread's runtime context: a tokio socket created there is registered
    /// with the thread's own reactor.
    pub(crate) fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        let _context = self.handle.enter();
        f()
    }

    /// Spawns `task` on the thread; the handle can be awaited from any runtime.
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for IoThread {
    /// Stops the thread (what still runs on it is cancelled) and waits for it to end.
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            // Quick: its block_on returns at once, then the runtime drops its tasks.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_on_the_thread_and_sockets_use_its_reactor() {
        let io = IoThread::start("test-io").unwrap();
        let socket = io
            .enter(|| {
                let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                std.set_nonblocking(true).unwrap();
                tokio::net::UdpSocket::from_std(std)
            })
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let echoed = io.spawn(async move {
            let mut buf = [0u8; 16];
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            socket.send_to(&buf[..n], from).await.unwrap();
            std::thread::current().name().map(str::to_owned)
        });
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", addr).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert_eq!(echoed.await.unwrap().as_deref(), Some("test-io"));
    }

    #[tokio::test]
    async fn dropping_it_cancels_what_still_runs() {
        let io = IoThread::start("test-io").unwrap();
        let forever = io.spawn(std::future::pending::<()>());
        drop(io);
        assert!(forever.await.unwrap_err().is_cancelled());
    }
}
