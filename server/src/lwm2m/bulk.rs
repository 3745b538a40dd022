//! Requests to many devices at once ([`Lwm2mService::request_many`], behind
//! `POST /api/v1/fleet/read`): reading a resource across a fleet (firmware versions, signal
//! strength, a register) should cost what the CoAP exchanges cost, not an HTTP request, a store
//! query and a channel round trip per device.
//!
//! So: the lifecycle of every endpoint is checked with ONE store query
//! (`Store::lifecycle_states`), the requests go to each socket task as ONE command
//! (`Command::SubmitMany`, one ack message back), and the completions come back on one channel
//! that the caller drains in bursts. Each request is otherwise exactly what
//! [`Lwm2mService::request`] sends: same engine call, same tracking, same events.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lwm2m_proto::lwm2m::server::Operation;
use tokio::sync::{mpsc, oneshot};

use super::socket::{BatchRequest, Command, SubmitBatch};
use super::{Lwm2mService, OpResult, OperationId, ServiceError, Transport, is_dm_write};
use crate::fleet::lifecycle::{self, LifecycleState};

/// Completions taken from the channel per wake-up of the caller.
const COMPLETIONS_PER_WAKE: usize = 256;

/// Whether `operation` may go to a device in `state` (None: not in the registry) registered on
/// `transport` (None: not registered): the checks of `Lwm2mService::request`.
pub(super) fn admit(
    endpoint: &str,
    state: Option<LifecycleState>,
    transport: Option<Transport>,
    name: &'static str,
    writes: bool,
) -> Result<Transport, ServiceError> {
    let state = state.ok_or_else(|| ServiceError::UnknownDevice(endpoint.to_owned()))?;
    let transport = transport.ok_or_else(|| ServiceError::NotRegistered(endpoint.to_owned()))?;
    // A registered device whose first-registration transition (→ active) is still being
    // written counts as active already: the transition is certain.
    let state = match state {
        LifecycleState::Registered | LifecycleState::Provisioned => LifecycleState::Active,
        state => state,
    };
    let allowed = if writes {
        lifecycle::allows_dm_write(state)
    } else {
        lifecycle::allows_dm_read(state)
    };
    if !allowed {
        return Err(ServiceError::NotAllowed {
            endpoint: endpoint.to_owned(),
            operation: name,
            state,
        });
    }
    Ok(transport)
}

impl Lwm2mService {
    /// Sends every `(endpoint, operation)` and waits up to `wait` for all the answers; the
    /// results are in the order of `requests`. Each result is what [`Lwm2mService::request`]
    /// would have given for that request alone (unknown or unregistered device, lifecycle
    /// refusal, the device's error, [`OpResult::Pending`] when `wait` ran out or the device
    /// sleeps). An endpoint may appear several times (several paths of one device). Only a
    /// store failure fails the whole call.
    pub async fn request_many(
        &self,
        requests: Vec<(String, Operation)>,
        wait: Duration,
    ) -> Result<Vec<Result<OpResult, ServiceError>>, ServiceError> {
        let started = Instant::now();
        let unique: HashSet<&str> = requests.iter().map(|(e, _)| e.as_str()).collect();
        let names: Vec<&str> = unique.into_iter().collect();
        let states = self.store().lifecycle_states(&names).await?;

        let mut results: Vec<Option<Result<OpResult, ServiceError>>> =
            (0..requests.len()).map(|_| None).collect();
        let ids = OperationId::random_many(requests.len());
        let transports = self
            .inner
            .shared
            .directory
            .transports(requests.iter().map(|(e, _)| e.as_str()));
        let mut batches: HashMap<Transport, Vec<BatchRequest>> = HashMap::new();
        for (((index, (endpoint, operation)), &id), transport) in
            requests.into_iter().enumerate().zip(&ids).zip(transports)
        {
            let admitted = admit(
                &endpoint,
                states.get(&endpoint).copied(),
                transport,
                operation.name(),
                is_dm_write(&operation),
            );
            match admitted {
                Ok(transport) => batches.entry(transport).or_default().push(BatchRequest {
                    index,
                    id,
                    endpoint,
                    operation,
                }),
                Err(error) => {
                    if let Some(slot) = results.get_mut(index) {
                        *slot = Some(Err(error));
                    }
                }
            }
        }

        let (completions, mut completed) = mpsc::unbounded_channel();
        let mut acks = Vec::new();
        let mut outstanding = 0;
        for (transport, requests) in batches {
            let indexes: Vec<usize> = requests.iter().map(|r| r.index).collect();
            let (ack, acked) = oneshot::channel();
            let sent = self.sender(transport).and_then(|sender| {
                sender
                    .send(Command::SubmitMany(Box::new(SubmitBatch {
                        requests,
                        completions: completions.clone(),
                        acks: ack,
                    })))
                    .map_err(|_| ServiceError::Unavailable)
            });
            match sent {
                Ok(()) => {
                    outstanding += indexes.len();
                    acks.push((indexes, acked));
                }
                Err(_) => {
                    for index in indexes {
                        if let Some(slot) = results.get_mut(index) {
                            *slot = Some(Err(ServiceError::Unavailable));
                        }
                    }
                }
            }
        }
        // Only the tracked requests hold senders now: the channel closes when all are done.
        drop(completions);

        let mut queued = vec![false; results.len()];
        let mut durable = Vec::new();
        for (indexes, acked) in acks {
            match acked.await {
                Ok(answers) => {
                    for (index, answer) in answers {
                        match answer {
                            Ok(ack) => {
                                if let Some(q) = queued.get_mut(index) {
                                    *q = ack.queued;
                                }
                                durable.extend(ack.durable.map(|d| (index, d)));
                            }
                            Err(error) => {
                                outstanding -= 1;
                                if let Some(slot) = results.get_mut(index) {
                                    *slot = Some(Err(error.into()));
                                }
                            }
                        }
                    }
                }
                Err(_) => {
                    // The socket stopped before answering.
                    for index in indexes {
                        outstanding -= 1;
                        if let Some(slot) = results.get_mut(index) {
                            *slot = Some(Err(ServiceError::Unavailable));
                        }
                    }
                }
            }
        }
        for (index, stored) in join_all(
            durable
                .into_iter()
                .map(|(index, d)| async move { (index, matches!(d.await, Ok(true))) }),
        )
        .await
        {
            if !stored {
                // It waits in the engine's queue all the same; only a restart would lose it.
                tracing::warn!(
                    operation = %ids.get(index).map(ToString::to_string).unwrap_or_default(),
                    "a queued request could not be persisted"
                );
            }
        }

        let deadline = tokio::time::Instant::from_std(started + wait);
        let mut burst = Vec::with_capacity(COMPLETIONS_PER_WAKE);
        while outstanding > 0 {
            let received = tokio::time::timeout_at(
                deadline,
                completed.recv_many(&mut burst, COMPLETIONS_PER_WAKE),
            )
            .await;
            match received {
                // Closed: the socket task stopped; what is left stays unanswered.
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    for (index, outcome) in burst.drain(..) {
                        let (Some(slot), Some(&operation)) =
                            (results.get_mut(index), ids.get(index))
                        else {
                            continue;
                        };
                        if slot.is_none() {
                            outstanding -= 1;
                        }
                        *slot = Some(match outcome {
                            Ok(outcome) => Ok(OpResult::Done { operation, outcome }),
                            Err(error) => Err(error.into()),
                        });
                    }
                }
            }
        }
        let stopped = completed.is_closed() && completed.is_empty();
        Ok(results
            .into_iter()
            .zip(ids)
            .zip(queued)
            .map(|((result, operation), queued)| {
                result.unwrap_or(if stopped && !queued {
                    Err(ServiceError::Unavailable)
                } else {
                    Ok(OpResult::Pending { operation, queued })
                })
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_for_a_batch_are_distinct() {
        let ids = OperationId::random_many(1000);
        assert_eq!(ids.len(), 1000);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
        assert!(OperationId::random_many(0).is_empty());
    }

    #[test]
    fn admission_follows_the_single_request_rules() {
        let read = |state, transport| admit("m", state, transport, "Read", false);
        let write = |state, transport| admit("m", state, transport, "Write", true);
        assert!(matches!(
            read(None, Some(Transport::Coap)),
            Err(ServiceError::UnknownDevice(e)) if e == "m"
        ));
        assert!(matches!(
            read(Some(LifecycleState::Active), None),
            Err(ServiceError::NotRegistered(_))
        ));
        // Registered/provisioned devices that registered count as active.
        assert_eq!(
            read(Some(LifecycleState::Registered), Some(Transport::Coaps)).unwrap(),
            Transport::Coaps
        );
        assert!(write(Some(LifecycleState::Provisioned), Some(Transport::Coap)).is_ok());
        // Suspended: reads only.
        assert!(read(Some(LifecycleState::Suspended), Some(Transport::Coap)).is_ok());
        assert!(matches!(
            write(Some(LifecycleState::Suspended), Some(Transport::Coap)),
            Err(ServiceError::NotAllowed {
                state: LifecycleState::Suspended,
                ..
            })
        ));
        assert!(matches!(
            read(Some(LifecycleState::Decommissioned), Some(Transport::Coap)),
            Err(ServiceError::NotAllowed { .. })
        ));
    }
}
