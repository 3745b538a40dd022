//! PostgreSQL only: follows the lifecycle changes every node commits (`pg_notify` on
//! [`CHANNEL`] in the transaction of each state change) and forgets the lifecycle cache
//! (`lifecycle_cache.rs`) on each, so a node never keeps a state another node changed for longer
//! than a notification takes to arrive. The cache is on only while this listens: off until the
//! first `LISTEN`, off again when the connection fails (and forgotten when it comes back, as
//! notifications may have been missed meanwhile).
//!
//! One task per store with its own connection (not one of the pool's); [`Follower::stop`]
//! (called by `Store::close`) ends it, and so does dropping the last clone of the store.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::lifecycle_cache::LifecycleCache;

/// The notification channel of lifecycle changes.
pub(super) const CHANNEL: &str = "ferrite_lifecycle";

/// The longest wait between two attempts to listen again.
const MAX_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Follower {
    task: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Follower {
    /// Starts following changes on the database at `url` for `cache`.
    pub(super) fn start(url: &str, cache: &Arc<LifecycleCache>) -> Follower {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(follow(url.to_owned(), Arc::downgrade(cache), stopped));
        Follower {
            task: Mutex::new(Some((stop, task))),
        }
    }

    /// Stops listening and waits until the connection is given up.
    pub(super) async fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, task)) = task {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

async fn follow(url: String, cache: Weak<LifecycleCache>, mut stop: oneshot::Receiver<()>) {
    let mut retry = Duration::from_millis(100);
    loop {
        let listening = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let listened = tokio::select! {
            _ = &mut stop => return,
            listened = listening => listened,
        };
        let mut listener = match listened {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for lifecycle changes; the lifecycle cache stays off");
                tokio::select! {
                    _ = &mut stop => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        retry = Duration::from_millis(100);
        match cache.upgrade() {
            Some(cache) => cache.set_enabled(true),
            None => return,
        }
        loop {
            let next = tokio::select! {
                _ = &mut stop => return,
                next = listener.try_recv() => next,
            };
            let Some(cache) = cache.upgrade() else {
                return;
            };
            match next {
                Ok(Some(_)) => cache.forget(),
                // The connection was lost and made again: changes may have gone unheard.
                Ok(None) => cache.forget(),
                Err(error) => {
                    cache.set_enabled(false);
                    tracing::warn!(%error, "lost the lifecycle-change listener; the lifecycle cache is off until it is back");
                    break;
                }
            }
        }
    }
}
