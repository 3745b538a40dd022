//! Requests to many devices at once ([`Lwm2mService::request_many`], behind
//! `POST /api/v1/fleet/read`): reading a resource across a fleet (firmware versions, signal
//! strength, a register) should cost what the CoAP exchanges cost, not an HTTP request, a store
//! query and a channel round trip per device.
//!
//! So: the lifecycle of every endpoint is checked with ONE store query
//! (`Store::lifecycle_states`), the requests go to each socket task as ONE command
//! (`Command::SubmitMany`, one ack message back), and the outcomes collect in ONE
//! [`BatchSink`] that wakes the caller once, when the last is in (or the caller's wait ends).
//! Each request is otherwise exactly what [`Lwm2mService::request`] sends: same engine call,
//! same tracking, same events.
//!
//! Why a sink and not a channel: a channel wakes its receiver for every burst of answers, and
//! the receiver runs on another thread than the socket task; each wake-up made an idle worker
//! thread run, then park again. Filling a slot wakes nobody.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use lwm2m_proto::lwm2m::server::{OpError, OpOutcome, Operation};
use tokio::sync::{Notify, oneshot};

use super::socket::{BatchRequest, Command, SubmitBatch};
use super::{Lwm2mService, OpResult, OperationId, ServiceError, Transport, is_dm_write};
use crate::fleet::lifecycle::{self, LifecycleState};

/// What became of one request of a batch: its outcome, or None when its slot was dropped
/// unfilled (the engine refused it, or the socket task stopped).
type Filled = (usize, Option<Result<OpOutcome, OpError>>);

/// Where the outcomes of one `request_many` call collect.
#[derive(Debug)]
pub(crate) struct BatchSink {
    filled: Mutex<Vec<Filled>>,
    /// Slots not yet filled or dropped.
    open: AtomicUsize,
    /// Told once, when `open` reaches zero.
    all_in: Notify,
}

impl BatchSink {
    /// A sink and its `n` slots (indexes 0..n, as the caller numbers its requests).
    fn new(indexes: impl ExactSizeIterator<Item = usize>) -> (Arc<BatchSink>, Vec<BatchSlot>) {
        let sink = Arc::new(BatchSink {
            filled: Mutex::new(Vec::with_capacity(indexes.len())),
            open: AtomicUsize::new(indexes.len()),
            all_in: Notify::new(),
        });
        let slots = indexes
            .map(|index| BatchSlot {
                index,
                sink: Some(Arc::clone(&sink)),
            })
            .collect();
        (sink, slots)
    }

    fn put(&self, index: usize, outcome: Option<Result<OpOutcome, OpError>>) {
        self.filled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((index, outcome));
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A stored permit: the caller may not be waiting yet.
            self.all_in.notify_one();
        }
    }

    /// Waits until every slot is filled or dropped, or until `deadline`.
    async fn wait(&self, deadline: tokio::time::Instant) {
        if self.open.load(Ordering::Acquire) > 0 {
            let _ = tokio::time::timeout_at(deadline, self.all_in.notified()).await;
        }
    }

    /// What has come in so far.
    fn take(&self) -> Vec<Filled> {
        std::mem::take(&mut *self.filled.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The place of one request's outcome in its [`BatchSink`]: filled once by the socket task, or
/// reported as unanswered when dropped unfilled.
#[derive(Debug)]
pub(crate) struct BatchSlot {
    index: usize,
    sink: Option<Arc<BatchSink>>,
}

impl BatchSlot {
    pub(crate) fn fill(mut self, outcome: Result<OpOutcome, OpError>) {
        if let Some(sink) = self.sink.take() {
            sink.put(self.index, Some(outcome));
        }
    }
}

impl Drop for BatchSlot {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.put(self.index, None);
        }
    }
}

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
        let (sink, slots) = BatchSink::new(0..requests.len());
        let mut batches: HashMap<Transport, Vec<BatchRequest>> = HashMap::new();
        for ((((index, (endpoint, operation)), &id), transport), slot) in requests
            .into_iter()
            .enumerate()
            .zip(&ids)
            .zip(transports)
            .zip(slots)
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
                    slot,
                }),
                Err(error) => {
                    if let Some(slot) = results.get_mut(index) {
                        *slot = Some(Err(error));
                    }
                }
            }
        }

        let mut acks = Vec::new();
        for (transport, requests) in batches {
            let indexes: Vec<usize> = requests.iter().map(|r| r.index).collect();
            let (ack, acked) = oneshot::channel();
            let sent = self.sender(transport).and_then(|sender| {
                sender
                    .send(Command::SubmitMany(Box::new(SubmitBatch {
                        requests,
                        acks: ack,
                    })))
                    .map_err(|_| ServiceError::Unavailable)
            });
            match sent {
                Ok(()) => acks.push((indexes, acked)),
                Err(_) => {
                    for index in indexes {
                        if let Some(slot) = results.get_mut(index) {
                            *slot = Some(Err(ServiceError::Unavailable));
                        }
                    }
                }
            }
        }
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

        sink.wait(tokio::time::Instant::from_std(started + wait))
            .await;
        for (index, filled) in sink.take() {
            let (Some(slot), Some(&operation)) = (results.get_mut(index), ids.get(index)) else {
                continue;
            };
            if slot.is_some() {
                // Refused (its ack said why) or not sent: the slot was dropped unfilled.
                continue;
            }
            *slot = Some(match filled {
                Some(Ok(outcome)) => Ok(OpResult::Done { operation, outcome }),
                Some(Err(error)) => Err(error.into()),
                // Taken, then dropped unanswered: the socket task stopped.
                None => Err(ServiceError::Unavailable),
            });
        }
        Ok(results
            .into_iter()
            .zip(ids)
            .zip(queued)
            .map(|((result, operation), queued)| {
                result.unwrap_or(Ok(OpResult::Pending { operation, queued }))
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn content() -> Result<OpOutcome, OpError> {
        Ok(OpOutcome::Changed)
    }

    #[tokio::test]
    async fn the_sink_wakes_its_caller_once_every_slot_is_filled_or_dropped() {
        let (sink, slots) = BatchSink::new(0..3);
        let mut slots = slots.into_iter();
        let (a, b, c) = (
            slots.next().unwrap(),
            slots.next().unwrap(),
            slots.next().unwrap(),
        );
        a.fill(content());
        let filler = std::thread::spawn(move || {
            b.fill(Err(OpError::Timeout));
            drop(c);
        });
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        tokio::time::timeout(Duration::from_secs(10), sink.wait(far))
            .await
            .expect("woken when the last slot resolved");
        filler.join().unwrap();
        let mut filled = sink.take();
        filled.sort_by_key(|(index, _)| *index);
        assert!(matches!(
            filled.as_slice(),
            [
                (0, Some(Ok(OpOutcome::Changed))),
                (1, Some(Err(OpError::Timeout))),
                (2, None),
            ]
        ));
        // Everything was taken.
        assert!(sink.take().is_empty());
    }

    #[tokio::test]
    async fn the_wait_ends_at_the_deadline_with_what_came_in() {
        let (sink, slots) = BatchSink::new(0..2);
        let mut slots = slots.into_iter();
        slots.next().unwrap().fill(content());
        let pending = slots.next().unwrap();
        sink.wait(tokio::time::Instant::now() + Duration::from_millis(20))
            .await;
        let filled = sink.take();
        assert_eq!(filled.len(), 1);
        assert_eq!(filled.first().map(|(i, _)| *i), Some(0));
        // A late answer still lands (and is dropped with the sink).
        pending.fill(content());
        assert_eq!(sink.take().len(), 1);
    }

    #[tokio::test]
    async fn an_empty_batch_does_not_wait() {
        let (sink, slots) = BatchSink::new(0..0);
        assert!(slots.is_empty());
        tokio::time::timeout(
            Duration::from_secs(5),
            sink.wait(tokio::time::Instant::now() + Duration::from_secs(60)),
        )
        .await
        .expect("nothing to wait for");
    }

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
