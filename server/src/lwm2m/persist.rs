//! The store writes the socket tasks ask for, applied one at a time in the order they were asked
//! ([`Job`] over an unbounded channel): the socket tasks never wait for the database, and the
//! writes about one device (registered → updated → expired; queued → finished) cannot overtake
//! each other. A failed write is logged and the next one goes on.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::directory::RegistrationInfo;
use crate::fleet::registry::Connectivity;
use crate::store::lwm2m::{RegistrationEventKind, RequestStatus};
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
    /// Answers once every job before it is done (shutdown, tests).
    Barrier(oneshot::Sender<()>),
}

pub(crate) type JobSender = mpsc::UnboundedSender<Job>;

/// Applies jobs until every sender is gone.
pub(crate) async fn run(store: Store, mut jobs: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = jobs.recv().await {
        apply(&store, job).await;
    }
}

async fn apply(store: &Store, job: Job) {
    match job {
        Job::Registered { info, reboot } => {
            let endpoint = info.endpoint.clone();
            let result = registered(store, &info, reboot).await;
            log_failure(&endpoint, "save the registration", result);
        }
        Job::Updated { info } => {
            let result = async {
                store.save_lwm2m_registration(&info.to_stored()).await?;
                store
                    .set_connectivity(&info.endpoint, Connectivity::Online, Some(info.last_update))
                    .await
            }
            .await;
            log_failure(&info.endpoint, "save the update", result);
        }
        Job::Ended {
            endpoint,
            registration_id,
            kind,
            at,
            mark_offline,
        } => {
            let result = async {
                store
                    .delete_lwm2m_registration(&endpoint, &registration_id)
                    .await?;
                store
                    .record_registration_event(&endpoint, at, kind, &registration_id, None)
                    .await?;
                if !mark_offline {
                    return Ok(());
                }
                // A de-registering device was heard now; an expired or removed one was not.
                let last_seen = (kind == RegistrationEventKind::Deregistered).then_some(at);
                store
                    .set_connectivity(&endpoint, Connectivity::Offline, last_seen)
                    .await
            }
            .await;
            log_failure(&endpoint, "record the end of the registration", result);
        }
        Job::Connectivity {
            endpoint,
            connectivity,
        } => {
            let result = store.set_connectivity(&endpoint, connectivity, None).await;
            log_failure(&endpoint, "update connectivity", result);
        }
        Job::Queue {
            id,
            endpoint,
            operation_json,
            created_at,
            expires_at,
            durable,
        } => {
            let result = store
                .insert_queued_request(&id, &endpoint, &operation_json, created_at, expires_at)
                .await;
            let stored = result.is_ok();
            log_failure(&endpoint, "persist a queued request", result);
            if let Some(durable) = durable {
                // The requester may have stopped waiting.
                let _ = durable.send(stored);
            }
        }
        Job::Finish {
            id,
            status,
            at,
            result_json,
        } => {
            let result = store
                .finish_queued_request(&id, status, at, Some(&result_json))
                .await;
            log_failure(&id, "record the result of a queued request", result);
        }
        Job::Barrier(done) => {
            let _ = done.send(());
        }
    }
}

async fn registered(
    store: &Store,
    info: &RegistrationInfo,
    reboot: bool,
) -> Result<(), StoreError> {
    store.save_lwm2m_registration(&info.to_stored()).await?;
    let kind = if reboot {
        RegistrationEventKind::Reboot
    } else {
        RegistrationEventKind::Registered
    };
    let address = info.address.to_string();
    store
        .record_registration_event(
            &info.endpoint,
            info.last_update,
            kind,
            &info.registration_id,
            Some(&address),
        )
        .await?;
    if reboot {
        store.audit_reboot(&info.endpoint, info.last_update).await?;
    }
    // First registration → active, audited as system:registration (fleet::lifecycle).
    store
        .record_registration(&info.endpoint, Connectivity::Online, info.last_update)
        .await?;
    Ok(())
}

fn log_failure<T>(subject: &str, what: &str, result: Result<T, StoreError>) {
    if let Err(error) = result {
        tracing::error!(subject, %error, "cannot {what}");
    }
}
