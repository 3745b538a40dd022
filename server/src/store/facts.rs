//! Registration facts looked up together: every Register is checked against the registry
//! (`Store::may_register`), and during a registration storm hundreds of checks wait at once.
//! Instead of one query each (on SQLite each one a round trip to the connection's worker thread,
//! measured as much CPU as the query itself), the checks that are waiting are answered by one
//! `SELECT … WHERE endpoint IN (…)`.
//!
//! No added wait: the first check starts a drain task at once; checks arriving while its query
//! runs are answered by its next query, so a batch grows only under load. When a batched query
//! fails, each check runs its own query, so that every caller sees its own error as before.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use super::rows::FactsRow;
use super::{Backend, Store, StoreError};

/// Most endpoints in one query (a bound value each; far below both engines' limits).
const MAX_BATCH: usize = 512;

/// What a waiting check is told: its row (None: not in the registry), or `Err(())` when the
/// batched query failed and it should look itself up.
type Answer = Result<Option<FactsRow>, ()>;

/// The checks waiting for their facts, and whether a drain task is running.
#[derive(Debug, Default)]
pub(crate) struct FactsBatcher {
    state: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    running: bool,
    queue: Vec<(String, oneshot::Sender<Answer>)>,
}

impl FactsBatcher {
    /// Takes up to [`MAX_BATCH`] waiting checks; none left: the drain task ends.
    fn take(&self) -> Vec<(String, oneshot::Sender<Answer>)> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.queue.is_empty() {
            state.running = false;
            return Vec::new();
        }
        let cut = state.queue.len().min(MAX_BATCH);
        let rest = state.queue.split_off(cut);
        std::mem::replace(&mut state.queue, rest)
    }
}

/// `SELECT … WHERE endpoint IN ($1, …, $count)`.
fn select_many(count: usize) -> String {
    format!(
        "SELECT endpoint, state, security_mode, psk_identity, credentials_revoked FROM devices \
         WHERE endpoint IN ({})",
        super::lwm2m::placeholder_list(1, count)
    )
}

impl Store {
    /// The registration facts of `endpoint` (None: not in the registry), looked up with the
    /// other checks waiting at the same time.
    pub(crate) async fn registration_facts_batched(
        &self,
        endpoint: &str,
    ) -> Result<Option<FactsRow>, StoreError> {
        let (tell, told) = oneshot::channel();
        let start = {
            let mut state = self
                .facts
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.queue.push((endpoint.to_owned(), tell));
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            // A task of its own: the caller's future may be dropped, the drain must go on for
            // the others.
            let store = self.clone();
            tokio::spawn(async move { store.drain_facts().await });
        }
        match told.await {
            Ok(Ok(row)) => Ok(row),
            // The batch failed (or its task is gone): alone, with its own error.
            Ok(Err(())) | Err(_) => self.registration_facts_one(endpoint).await,
        }
    }

    async fn registration_facts_one(&self, endpoint: &str) -> Result<Option<FactsRow>, StoreError> {
        // (`on_backend!` is defined after this module's declaration.)
        Ok(match &self.backend {
            Backend::Sqlite(backend) => backend.registration_facts(endpoint).await,
            Backend::Postgres(backend) => backend.registration_facts(endpoint).await,
        }?)
    }

    async fn drain_facts(&self) {
        loop {
            let batch = self.facts.take();
            if batch.is_empty() {
                return;
            }
            let rows = if let [(endpoint, _)] = batch.as_slice() {
                // Alone: the cached one-row statement.
                self.registration_facts_one(endpoint)
                    .await
                    .map(|row| row.into_iter().collect::<Vec<_>>())
            } else {
                // The text depends on the batch size: not kept in the statement cache.
                let text = super::lwm2m::for_engine(self.backend_kind(), select_many(batch.len()));
                on_pool!(self, pool => {
                    let mut query = sqlx::query_as::<_, FactsRow>(sqlx::AssertSqlSafe(text))
                        .persistent(false);
                    for (endpoint, _) in &batch {
                        query = query.bind(endpoint.as_str());
                    }
                    query.fetch_all(pool).await
                })
                .map_err(StoreError::from)
            };
            match rows {
                Ok(rows) => {
                    let found: HashMap<String, FactsRow> = rows
                        .into_iter()
                        .map(|row| (row.endpoint.clone(), row))
                        .collect();
                    for (endpoint, tell) in batch {
                        // The check may have stopped waiting.
                        let _ = tell.send(Ok(found.get(&endpoint).cloned()));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, checks = batch.len(), "batched registration check failed; each check retries alone");
                    for (_, tell) in batch {
                        let _ = tell.send(Err(()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fleet::lifecycle::{Actor, LifecycleState, SystemComponent};
    use crate::fleet::registry::{NewDevice, SecurityMode};
    use crate::store::tests::on_both;

    #[test]
    fn the_batched_query_numbers_its_placeholders() {
        assert_eq!(
            select_many(3),
            "SELECT endpoint, state, security_mode, psk_identity, credentials_revoked FROM \
             devices WHERE endpoint IN ($1, $2, $3)"
        );
    }

    /// Many concurrent checks (known, unknown, the same endpoint twice) each get their own
    /// device's facts, as one at a time did.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_checks_get_their_own_facts() {
        on_both(|store| async move {
            for n in 0..50 {
                let mut new = NewDevice::psk(&format!("facts-{n}"), "s", "m");
                new.security_mode = SecurityMode::NoSec;
                store
                    .create_device(new, &Actor::system(SystemComponent::Registration))
                    .await
                    .unwrap();
            }
            store
                .transition(
                    "facts-7",
                    LifecycleState::Active,
                    &Actor::system(SystemComponent::Registration),
                    None,
                )
                .await
                .unwrap();
            let mut checks = tokio::task::JoinSet::new();
            for n in 0..120 {
                let store = store.clone();
                // 0..59: 50 devices, 10 unknown; then every known one again.
                let endpoint = format!("facts-{}", n % 60);
                checks.spawn(async move {
                    let row = store.registration_facts_batched(&endpoint).await.unwrap();
                    (endpoint, row)
                });
            }
            let mut answered = 0;
            while let Some(done) = checks.join_next().await {
                let (endpoint, row) = done.unwrap();
                let n: usize = endpoint.trim_start_matches("facts-").parse().unwrap();
                match row {
                    Some(row) => {
                        assert!(n < 50, "{endpoint}");
                        assert_eq!(row.endpoint, endpoint);
                        let expected = if n == 7 { "active" } else { "registered" };
                        assert_eq!(row.state, expected, "{endpoint}");
                    }
                    None => assert!(n >= 50, "{endpoint} not found"),
                }
                answered += 1;
            }
            assert_eq!(answered, 120);
            // The drain task ended and the next check starts a new one.
            assert!(
                store
                    .registration_facts_batched("facts-1")
                    .await
                    .unwrap()
                    .is_some()
            );
        })
        .await;
    }
}
