//! The store writes the socket tasks ask for ([`Job`] over an unbounded channel), applied in the
//! order they were asked: the socket tasks never wait for the database, and the writes about one
//! device (registered → updated → expired; queued → finished) cannot overtake each other.
//!
//! The worker drains what is waiting (up to [`MAX_BATCH`] jobs) and writes it in ONE transaction
//! (`Store::apply_lwm2m_writes`): during a registration storm one commit (one fsync on SQLite)
//! serves hundreds of registrations instead of four commits each. Acknowledged means durable
//! (ARCHITECTURE.md): a queued request's `durable` signal (the HTTP API answers `Pending` only
//! after it) and a [`Job::Barrier`] are answered after the commit that holds their job. When a
//! batch fails, its jobs are retried one by one, each in its own transaction, so that one bad row
//! (e.g. a device deleted meanwhile) loses only its own job. A failed job is logged and the next
//! one goes on.

use chrono::{DateTime, Utc};
use lwm2m_proto::lwm2m::server::CommitTicket;
use tokio::sync::{mpsc, oneshot};

use super::directory::RegistrationInfo;
use super::socket::Command;
use crate::fleet::registry::Connectivity;
use crate::store::lwm2m::{Lwm2mWrite, RegistrationEventKind, RequestStatus, StoredObservation};
use crate::store::{Store, StoreError};

/// One write.
#[derive(Debug)]
pub(crate) enum Job {
    /// A Register was accepted: save it, append to the history (a reboot is audited too), and
    /// drive the lifecycle (first registration → active) with connectivity online.
    Registered {
        info: RegistrationInfo,
        reboot: bool,
    },
    /// An Update: save it, online and last seen now.
    Updated { info: RegistrationInfo },
    /// The registration ended: delete it (if still this one), history, and connectivity
    /// offline unless `mark_offline` is false (it moved to the other socket).
    Ended {
        endpoint: String,
        registration_id: String,
        kind: RegistrationEventKind,
        at: DateTime<Utc>,
        mark_offline: bool,
    },
    /// Connectivity alone (a queue-mode device fell asleep).
    Connectivity {
        endpoint: String,
        connectivity: Connectivity,
    },
    /// A request waits for its device; `durable` is told when it is stored.
    Queue {
        id: String,
        endpoint: String,
        operation_json: String,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        durable: Option<oneshot::Sender<bool>>,
    },
    /// A stored request ended.
    Finish {
        id: String,
        status: RequestStatus,
        at: DateTime<Utc>,
        result_json: String,
    },
    /// The firmware version a device reported (`inventory`), written only when it changed.
    Firmware { endpoint: String, version: String },
    /// An observation was established: keep it for a restart; `durable` is told when it is
    /// stored.
    Observed {
        observation: StoredObservation,
        durable: oneshot::Sender<bool>,
    },
    /// An observation ended.
    ObservationEnded { endpoint: String, observation: u64 },
    /// Answers once every job before it is done (shutdown, tests).
    Barrier(oneshot::Sender<()>),
    /// `job` (a registration change the engine staged, `Registered`, `Updated` or `Ended`), and
    /// once its transaction is over, whether it was stored goes back to the socket task as
    /// [`Command::Committed`] with `ticket`: the engine answers the device only then.
    Commit {
        job: Box<Job>,
        ticket: CommitTicket,
        reply: mpsc::UnboundedSender<Command>,
    },
}

pub(crate) type JobSender = mpsc::UnboundedSender<Job>;

/// Most jobs written in one transaction: bounds the time the write lock is held (other writers,
/// e.g. the HTTP API, wait for it) and the work redone when a batch has to be retried.
pub(crate) const MAX_BATCH: usize = 256;

/// How long a partial batch waits for more jobs before it is written (group commit). Devices
/// now wait for the commit before they are answered (a closed loop): without the wait, the first
/// Register of a wave is committed alone, the rest queue behind it, and a storm degenerates into
/// many small transactions.
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// Applies jobs until every sender is gone.
pub(crate) async fn run(store: Store, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() < MAX_BATCH {
            tokio::time::sleep(GATHER).await;
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        apply_batch(&store, batch.drain(..)).await;
    }
}

/// Who is told when a write is durable.
enum Signal {
    Durable(oneshot::Sender<bool>),
    Barrier(oneshot::Sender<()>),
    Commit(mpsc::UnboundedSender<Command>, CommitTicket),
}

/// Writes `jobs` in one transaction (or one by one when that fails), then answers their signals.
/// Returns how many transactions it took (for the tests).
pub(crate) async fn apply_batch(store: &Store, jobs: impl IntoIterator<Item = Job>) -> usize {
    let mut writes = Vec::new();
    // Signals with the index of their write (None: a barrier, answered after everything).
    let mut signals: Vec<(Option<usize>, Signal)> = Vec::new();
    for job in jobs {
        let (write, signal) = job.into_write();
        let index = write.map(|write| {
            writes.push(write);
            writes.len() - 1
        });
        if let Some(signal) = signal {
            signals.push((index, signal));
        }
    }
    let mut transactions = 0;
    let mut stored = vec![false; writes.len()];
    if !writes.is_empty() {
        transactions += 1;
        match store.apply_lwm2m_writes(&writes).await {
            Ok(outcomes) => {
                for ((write, outcome), stored) in writes.iter().zip(outcomes).zip(&mut stored) {
                    *stored = outcome.is_ok();
                    log_failure(write, outcome);
                }
            }
            Err(error) if writes.len() == 1 => {
                if let Some(write) = writes.first() {
                    log_failure(write, Err(error));
                }
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    jobs = writes.len(),
                    "a batch of LwM2M store writes failed; retrying them one by one"
                );
                for (write, stored) in writes.iter().zip(&mut stored) {
                    transactions += 1;
                    let outcome = match store.apply_lwm2m_writes(std::slice::from_ref(write)).await
                    {
                        Ok(mut outcomes) => outcomes.pop().unwrap_or(Ok(())),
                        Err(error) => Err(error),
                    };
                    *stored = outcome.is_ok();
                    log_failure(write, outcome);
                }
            }
        }
    }
    // Commit outcomes go back to their socket task as one command per task and batch: one
    // wake-up for up to MAX_BATCH registrations.
    type Outcomes = Vec<(CommitTicket, bool)>;
    let mut commits: Vec<(mpsc::UnboundedSender<Command>, Outcomes)> = Vec::new();
    for (index, signal) in signals {
        let stored = index.and_then(|i| stored.get(i).copied()).unwrap_or(false);
        // The requester may have stopped waiting.
        match signal {
            Signal::Durable(tell) => {
                let _ = tell.send(stored);
            }
            Signal::Barrier(done) => {
                let _ = done.send(());
            }
            Signal::Commit(reply, ticket) => {
                match commits.iter_mut().find(|(r, _)| r.same_channel(&reply)) {
                    Some((_, outcomes)) => outcomes.push((ticket, stored)),
                    None => commits.push((reply, vec![(ticket, stored)])),
                }
            }
        }
    }
    for (reply, outcomes) in commits {
        // A closed channel: the socket is stopping and its devices will ask again.
        let _ = reply.send(Command::Committed(outcomes));
    }
    transactions
}

impl Job {
    fn into_write(self) -> (Option<Lwm2mWrite>, Option<Signal>) {
        let write = match self {
            Job::Registered { info, reboot } => Lwm2mWrite::Registered {
                registration: info.to_stored(),
                reboot,
            },
            Job::Updated { info } => Lwm2mWrite::Updated {
                registration: info.to_stored(),
            },
            Job::Ended {
                endpoint,
                registration_id,
                kind,
                at,
                mark_offline,
            } => Lwm2mWrite::Ended {
                endpoint,
                registration_id,
                kind,
                at,
                mark_offline,
            },
            Job::Connectivity {
                endpoint,
                connectivity,
            } => Lwm2mWrite::Connectivity {
                endpoint,
                connectivity,
            },
            Job::Queue {
                id,
                endpoint,
                operation_json,
                created_at,
                expires_at,
                durable,
            } => {
                let write = Lwm2mWrite::Queue {
                    id,
                    endpoint,
                    operation_json,
                    created_at,
                    expires_at,
                };
                return (Some(write), durable.map(Signal::Durable));
            }
            Job::Finish {
                id,
                status,
                at,
                result_json,
            } => Lwm2mWrite::Finish {
                id,
                status,
                at,
                result_json,
            },
            Job::Firmware { endpoint, version } => Lwm2mWrite::Firmware { endpoint, version },
            Job::Observed {
                observation,
                durable,
            } => {
                let write = Lwm2mWrite::Observed { observation };
                return (Some(write), Some(Signal::Durable(durable)));
            }
            Job::ObservationEnded {
                endpoint,
                observation,
            } => Lwm2mWrite::ObservationEnded {
                endpoint,
                observation,
            },
            Job::Barrier(done) => return (None, Some(Signal::Barrier(done))),
            Job::Commit { job, ticket, reply } => {
                let (write, _) = job.into_write();
                return (write, Some(Signal::Commit(reply, ticket)));
            }
        };
        (Some(write), None)
    }
}

fn log_failure(write: &Lwm2mWrite, result: Result<(), StoreError>) {
    if let Err(error) = result {
        let what = match write {
            Lwm2mWrite::Registered { .. } => "save the registration",
            Lwm2mWrite::Updated { .. } => "save the update",
            Lwm2mWrite::Ended { .. } => "record the end of the registration",
            Lwm2mWrite::Connectivity { .. } => "update connectivity",
            Lwm2mWrite::Queue { .. } => "persist a queued request",
            Lwm2mWrite::Finish { .. } => "record the result of a queued request",
            Lwm2mWrite::Firmware { .. } => "record the firmware version",
            Lwm2mWrite::Observed { .. } => "persist an observation",
            Lwm2mWrite::ObservationEnded { .. } => "delete an ended observation",
        };
        tracing::error!(subject = write.subject(), %error, "cannot {what}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The worker's batching on SQLite (a temporary file, reopened for the restart case) and on
    //! PostgreSQL (a scratch database, when `FERRITE_TEST_POSTGRES_URL` is set).

    use chrono::SubsecRound;

    use super::*;
    use crate::fleet::lifecycle::{Actor, LifecycleState, SystemComponent};
    use crate::fleet::registry::{NewDevice, SecurityMode};
    use crate::fleet::secrets::ServerKey;
    use crate::store::lwm2m::{StoredRegistration, Transport};
    use crate::store::tests::on_both;

    async fn device(store: &Store, endpoint: &str) {
        let mut new = NewDevice::psk(endpoint, "s", "m");
        new.security_mode = SecurityMode::NoSec;
        store
            .create_device(new, &Actor::system(SystemComponent::Registration))
            .await
            .unwrap();
    }

    fn info(endpoint: &str) -> RegistrationInfo {
        let at = Utc::now().trunc_subsecs(6);
        RegistrationInfo::from_stored(&StoredRegistration {
            endpoint: endpoint.into(),
            registration_id: "aaaaaaaa".into(),
            transport: Transport::Coap,
            lwm2m_version: "1.1".into(),
            binding: "UQ".into(),
            lifetime: 300,
            sms_number: None,
            objects: "</1/0>,</3/0>".into(),
            address: "192.0.2.7:40000".into(),
            psk_identity: None,
            registered_at: at,
            last_update: at,
        })
        .unwrap()
    }

    fn queue(id: &str, endpoint: &str) -> (Job, oneshot::Receiver<bool>) {
        let (tell, told) = oneshot::channel();
        let now = Utc::now();
        let job = Job::Queue {
            id: id.into(),
            endpoint: endpoint.into(),
            operation_json: "{}".into(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            durable: Some(tell),
        };
        (job, told)
    }

    #[tokio::test]
    async fn many_jobs_are_written_in_one_transaction_and_acknowledged_after_it() {
        on_both(|store| async move {
            let mut jobs = Vec::new();
            for n in 0..100 {
                let endpoint = format!("storm-{n}");
                device(&store, &endpoint).await;
                jobs.push(Job::Registered {
                    info: info(&endpoint),
                    reboot: false,
                });
            }
            let (job, durable) = queue("00000000000000c1", "storm-7");
            jobs.push(job);
            let (done, barrier) = oneshot::channel();
            jobs.push(Job::Barrier(done));
            assert_eq!(apply_batch(&store, jobs).await, 1, "one transaction");
            assert_eq!(durable.await, Ok(true));
            assert_eq!(barrier.await, Ok(()));
            assert_eq!(store.lwm2m_registrations().await.unwrap().len(), 100);
            let device = store.get_device("storm-99").await.unwrap().unwrap();
            assert_eq!(device.state, LifecycleState::Active);
            assert_eq!(device.connectivity, Connectivity::Online);
            assert!(
                store
                    .queued_request("00000000000000c1")
                    .await
                    .unwrap()
                    .is_some()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn firmware_versions_are_written_in_the_batch_transaction() {
        on_both(|store| async move {
            for endpoint in ["fw-1", "fw-2"] {
                device(&store, endpoint).await;
            }
            let firmware = |endpoint: &str, version: &str| Job::Firmware {
                endpoint: endpoint.into(),
                version: version.into(),
            };
            let jobs = vec![
                Job::Registered {
                    info: info("fw-1"),
                    reboot: false,
                },
                firmware("fw-1", "1.0.0"),
                firmware("fw-2", "2.0.0"),
                // Refused by validation: only this one is lost.
                firmware("fw-2", ""),
                // Not in the registry: ignored.
                firmware("fw-gone", "1.0.0"),
            ];
            assert_eq!(apply_batch(&store, jobs).await, 1, "one transaction");
            for (endpoint, version) in [("fw-1", "1.0.0"), ("fw-2", "2.0.0")] {
                let device = store.get_device(endpoint).await.unwrap().unwrap();
                assert_eq!(device.firmware_version.as_deref(), Some(version));
            }
            let active = store.get_device("fw-1").await.unwrap().unwrap();
            assert_eq!(active.state, LifecycleState::Active);
        })
        .await;
    }

    #[tokio::test]
    async fn staged_changes_are_reported_to_their_socket_after_the_commit_in_one_command() {
        on_both(|store| async move {
            device(&store, "commit-1").await;
            let (reply, mut commands) = mpsc::unbounded_channel();
            let commit = |endpoint: &str, ticket: u64| Job::Commit {
                job: Box::new(Job::Registered {
                    info: info(endpoint),
                    reboot: false,
                }),
                ticket: CommitTicket(ticket),
                reply: reply.clone(),
            };
            // The second device does not exist: its write fails, the first one's stands.
            let jobs = vec![commit("commit-1", 1), commit("commit-gone", 2)];
            apply_batch(&store, jobs).await;
            match commands.try_recv() {
                Ok(Command::Committed(outcomes)) => assert_eq!(
                    outcomes,
                    [(CommitTicket(1), true), (CommitTicket(2), false)]
                ),
                other => panic!("expected Committed, got {other:?}"),
            }
            assert!(commands.try_recv().is_err(), "one command for the batch");
            let stored = store.lwm2m_registration("commit-1").await.unwrap().unwrap();
            assert_eq!(stored.registration_id, "aaaaaaaa");
            assert!(
                store
                    .lwm2m_registration("commit-gone")
                    .await
                    .unwrap()
                    .is_none()
            );
        })
        .await;
    }

    #[tokio::test]
    async fn a_failing_job_does_not_lose_the_others() {
        on_both(|store| async move {
            device(&store, "good-1").await;
            device(&store, "good-2").await;
            let (good, good_durable) = queue("00000000000000d1", "good-2");
            // No such device: the foreign key refuses both rows and the batch fails.
            let (bad, bad_durable) = queue("00000000000000d2", "gone");
            let jobs = vec![
                Job::Registered {
                    info: info("good-1"),
                    reboot: false,
                },
                bad,
                Job::Registered {
                    info: info("gone"),
                    reboot: false,
                },
                good,
                Job::Connectivity {
                    endpoint: "good-2".into(),
                    connectivity: Connectivity::Sleeping,
                },
            ];
            // The batch, then each of the five alone.
            assert_eq!(apply_batch(&store, jobs).await, 6);
            assert_eq!(bad_durable.await, Ok(false));
            assert_eq!(good_durable.await, Ok(true));
            let stored: Vec<_> = store
                .lwm2m_registrations()
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.endpoint)
                .collect();
            assert_eq!(stored, ["good-1"]);
            assert!(
                store
                    .queued_request("00000000000000d1")
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                store
                    .queued_request("00000000000000d2")
                    .await
                    .unwrap()
                    .is_none()
            );
            let good_2 = store.get_device("good-2").await.unwrap().unwrap();
            assert_eq!(good_2.connectivity, Connectivity::Sleeping);
        })
        .await;
    }

    #[tokio::test]
    async fn after_the_acknowledgement_a_restarted_store_finds_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url, ServerKey::from_bytes([7; 32]))
            .await
            .unwrap();
        for endpoint in ["sleeper-1", "sleeper-2"] {
            device(&store, endpoint).await;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = tokio::spawn(run(store.clone(), rx));
        for endpoint in ["sleeper-1", "sleeper-2"] {
            tx.send(Job::Registered {
                info: info(endpoint),
                reboot: false,
            })
            .unwrap();
        }
        let (job, durable) = queue("00000000000000e1", "sleeper-2");
        tx.send(job).unwrap();
        // Acknowledged: from here on the request must survive a crash.
        assert_eq!(durable.await, Ok(true));
        // A crash: the worker and the pool go away without any further write.
        worker.abort();
        let _ = worker.await;
        drop(tx);
        store.close().await;

        let store = Store::connect(&url, ServerKey::from_bytes([7; 32]))
            .await
            .unwrap();
        let pending = store.pending_queued_requests().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, "00000000000000e1");
        // The registrations sent before it are in the same or an earlier commit.
        assert_eq!(store.lwm2m_registrations().await.unwrap().len(), 2);
        store.close().await;
    }
}
