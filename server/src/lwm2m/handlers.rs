//! What a socket task does with each `ServerEvent` of its LwM2M engine: registration decisions
//! against the fleet registry (spawned, the verdict comes back as a command), the shared
//! directory, store writes through the persistence worker, `DeviceEvent`s for listeners, and the
//! completion of requests made through the service handle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lwm2m_proto::lwm2m::server::{
    Change, CommitTicket, ObservationId, OpError, OpId, OpOutcome, PeerAuth, Registration,
    RegistrationTicket, Rejection, ServerEvent,
};
use tokio::sync::{mpsc, oneshot};

use super::directory::RegistrationInfo;
use super::error::ServiceError;
use super::events::{DeviceEvent, OperationResult};
use super::persist::Job;
use super::socket::{Command, Shared, SocketTask, wall};
use super::stored::StoredOperation;
use super::view::{OutcomeView, content_records, records_view, unix_seconds};
use crate::store::lwm2m::{RegistrationEventKind, RequestStatus, StoredObservation, Transport};

impl SocketTask {
    pub(crate) fn on_engine_event(&mut self, now: Instant, event: ServerEvent) {
        match event {
            ServerEvent::RegistrationRequest {
                ticket,
                peer,
                auth,
                params,
                links: _,
            } => self.decide(ticket, peer, auth, params.endpoint),
            ServerEvent::PersistChange { ticket, change } => {
                self.persist_change(now, ticket, change);
            }
            ServerEvent::CommitTimedOut { ticket, change } => {
                self.on_commit_timed_out(now, ticket, &change);
            }
            ServerEvent::Registered {
                registration,
                replaced,
            } => self.on_registered(now, &registration, replaced.is_some()),
            ServerEvent::Updated {
                registration,
                previous,
            } => self.on_updated(now, &registration, registration.peer != previous.peer),
            ServerEvent::Deregistered { registration } => {
                let persisted = self.persisted_first();
                self.on_ended(
                    &registration,
                    RegistrationEventKind::Deregistered,
                    persisted,
                );
            }
            ServerEvent::Expired { registration } => {
                self.on_ended(&registration, RegistrationEventKind::Expired, false);
            }
            ServerEvent::RegistrationRefused {
                peer,
                auth,
                endpoint,
                code,
                reason,
            } => {
                tracing::info!(
                    %peer,
                    endpoint = endpoint.as_deref().unwrap_or("-"),
                    identity = identity_of(&auth).unwrap_or("-"),
                    %code,
                    ?reason,
                    "registration request refused by the LwM2M engine"
                );
                self.shared.publish(DeviceEvent::RegistrationRefused {
                    endpoint,
                    address: peer,
                    coap_code: code.to_string(),
                    reason: format!("{reason:?}"),
                    at: Utc::now(),
                });
            }
            ServerEvent::OpQueued {
                op,
                endpoint,
                expires_at,
            } => self.on_op_queued(now, op, endpoint, expires_at),
            ServerEvent::OpCompleted {
                op,
                endpoint,
                outcome,
            } => self.on_op_completed(op, endpoint, outcome),
            ServerEvent::Notification {
                observation,
                endpoint,
                paths,
                content,
                seq: _,
            } => {
                self.counters.notifications += 1;
                if !self.shared.listened() {
                    return;
                }
                let at = Utc::now();
                let (values, error) = match &content {
                    Ok(content) => (content_records(content, unix_seconds(at)), None),
                    Err(error) => (Vec::new(), Some(error.to_string())),
                };
                self.shared.publish(DeviceEvent::Notification {
                    endpoint,
                    observation: observation.as_u64(),
                    paths: paths.iter().map(ToString::to_string).collect(),
                    values,
                    initial: false,
                    error,
                    at,
                });
            }
            ServerEvent::ObservationEnded {
                observation,
                endpoint,
                reason,
            } => {
                self.shared.persist(Job::ObservationEnded {
                    endpoint: endpoint.clone(),
                    observation: observation.as_u64(),
                });
                self.shared.publish(DeviceEvent::ObservationEnded {
                    endpoint,
                    observation: observation.as_u64(),
                    reason: format!("{reason:?}"),
                });
            }
            ServerEvent::Send {
                endpoint,
                registration: _,
                records,
            } => {
                // Readings go to listeners only for now; the metering pipeline will consume them.
                self.counters.sends += 1;
                if !self.shared.listened() {
                    return;
                }
                let at = Utc::now();
                self.shared.publish(DeviceEvent::Send {
                    endpoint,
                    records: records_view(&records, unix_seconds(at)),
                    at,
                });
            }
            ServerEvent::SendRefused {
                peer,
                endpoint,
                code,
                reason,
            } => tracing::info!(
                %peer,
                endpoint = endpoint.as_deref().unwrap_or("-"),
                %code,
                ?reason,
                "LwM2M Send refused"
            ),
        }
    }

    /// Checks a Register against the fleet registry in a spawned task; the verdict comes back as
    /// a [`Command::Decision`].
    fn decide(
        &mut self,
        ticket: RegistrationTicket,
        peer: SocketAddr,
        auth: PeerAuth,
        endpoint: String,
    ) {
        let Some(reply) = self.shared.sender(self.transport).cloned() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        self.shared
            .runtime
            .spawn(decide(shared, reply, ticket, peer, auth, endpoint));
    }

    fn registration_info(&self, now: Instant, registration: &Registration) -> RegistrationInfo {
        RegistrationInfo::new(
            registration,
            self.transport,
            wall(now, registration.registered_at),
            wall(now, registration.last_update),
        )
    }

    fn track_sleep(&mut self, now: Instant, registration: &Registration) {
        if registration.binding.queue {
            self.sleep
                .set(&registration.endpoint, now + self.awake_window);
        } else {
            self.sleep.clear(&registration.endpoint);
        }
    }

    /// Whether the engine's registration changes are persisted before they apply (their
    /// `Registered` / `Updated` / `Deregistered` events then come after the commit and need no
    /// write of their own).
    fn persisted_first(&self) -> bool {
        self.engine.config().persist_before_answer.is_some()
    }

    /// Writes a staged registration change; the worker reports the commit back as
    /// [`Command::Committed`] and only then does the engine apply and answer it.
    fn persist_change(&mut self, now: Instant, ticket: CommitTicket, change: Change) {
        let Some(reply) = self.shared.sender(self.transport).cloned() else {
            return;
        };
        let job = match change {
            Change::Register {
                registration,
                reboot,
            } => Job::Registered {
                info: self.registration_info(now, &registration),
                reboot,
            },
            Change::Update { registration, .. } => Job::Updated {
                info: self.registration_info(now, &registration),
            },
            Change::Deregister { registration } => Job::Ended {
                endpoint: registration.endpoint.clone(),
                registration_id: registration.id.to_string(),
                kind: RegistrationEventKind::Deregistered,
                at: Utc::now(),
                mark_offline: true,
            },
        };
        self.shared.persist(Job::Commit {
            job: Box::new(job),
            ticket,
            reply,
        });
    }

    /// No commit outcome came in time: the engine answered 5.03 and kept what it had. The write
    /// may still land, so the store is set back to the engine's state for the endpoint by a
    /// write queued after it (the worker applies jobs in order).
    fn on_commit_timed_out(&mut self, now: Instant, ticket: CommitTicket, change: &Change) {
        let endpoint = change.endpoint().to_owned();
        tracing::warn!(
            %endpoint,
            ticket = ticket.as_u64(),
            transport = %self.transport,
            "a registration change was not stored in time; the device is answered 5.03 and the change is undone"
        );
        let current = self.engine.registration(&endpoint).cloned();
        let job = match current {
            Some(registration) => Job::Updated {
                info: self.registration_info(now, &registration),
            },
            None => Job::Ended {
                registration_id: change.registration().id.to_string(),
                kind: RegistrationEventKind::Removed,
                at: Utc::now(),
                // Registered on the other socket: that one keeps it online.
                mark_offline: self.shared.directory.get(&endpoint).is_none(),
                endpoint,
            },
        };
        self.shared.persist(job);
    }

    fn on_registered(&mut self, now: Instant, registration: &Registration, reboot: bool) {
        let info = self.registration_info(now, registration);
        if let Some(previous) = self.shared.directory.insert(info.clone())
            && previous.transport != self.transport
        {
            // The device moved between NoSec and DTLS: end its stale registration there, without
            // marking it offline (it is online here).
            if let Some(other) = self.shared.sender(previous.transport) {
                let _ = other.send(Command::Remove {
                    endpoint: previous.endpoint.clone(),
                    registration_id: Some(previous.registration_id.clone()),
                    kind: RegistrationEventKind::Removed,
                    mark_offline: false,
                    reply: None,
                });
            }
        }
        tracing::info!(
            endpoint = %registration.endpoint,
            registration_id = %registration.id,
            transport = %self.transport,
            peer = %registration.peer,
            identity = identity_of(&registration.auth).unwrap_or("-"),
            version = %registration.version,
            lifetime = registration.lifetime,
            queue_mode = registration.binding.queue,
            reboot,
            "device registered"
        );
        self.track_sleep(now, registration);
        if !self.persisted_first() {
            self.shared.persist(Job::Registered {
                info: info.clone(),
                reboot,
            });
        }
        self.shared.publish(DeviceEvent::Registered {
            registration: info,
            reboot,
        });
    }

    fn on_updated(&mut self, now: Instant, registration: &Registration, address_changed: bool) {
        let info = self.registration_info(now, registration);
        self.shared.directory.insert(info.clone());
        if address_changed {
            tracing::info!(
                endpoint = %registration.endpoint,
                peer = %registration.peer,
                "registration updated from a new address"
            );
        } else {
            tracing::debug!(endpoint = %registration.endpoint, "registration updated");
        }
        self.track_sleep(now, registration);
        if !self.persisted_first() {
            self.shared.persist(Job::Updated { info: info.clone() });
        }
        self.shared.publish(DeviceEvent::Updated {
            registration: info,
            address_changed,
        });
    }

    /// `persisted`: the end is already in the store (a De-register committed before it applied).
    fn on_ended(
        &mut self,
        registration: &Registration,
        kind: RegistrationEventKind,
        persisted: bool,
    ) {
        let endpoint = registration.endpoint.clone();
        let registration_id = registration.id.to_string();
        self.sleep.clear(&endpoint);
        self.shared
            .directory
            .remove_if(&endpoint, self.transport, &registration_id);
        let at = Utc::now();
        tracing::info!(%endpoint, %registration_id, transport = %self.transport, ?kind, "registration ended");
        if !persisted {
            self.shared.persist(Job::Ended {
                endpoint: endpoint.clone(),
                registration_id: registration_id.clone(),
                kind,
                at,
                mark_offline: true,
            });
        }
        let event = if kind == RegistrationEventKind::Expired {
            DeviceEvent::Expired {
                endpoint,
                registration_id,
                at,
            }
        } else {
            DeviceEvent::Deregistered {
                endpoint,
                registration_id,
                at,
            }
        };
        self.shared.publish(event);
    }

    fn on_op_queued(&mut self, now: Instant, op: OpId, endpoint: String, expires_at: Instant) {
        let expires_wall = {
            let ahead = expires_at.saturating_duration_since(now);
            Utc::now() + chrono::Duration::from_std(ahead).unwrap_or_default()
        };
        let mut durable = None;
        // Only a queue-mode device's request may wait past a restart for its next wake-up: it is
        // persisted. An always-reachable device's request waits only for a free NSTART slot
        // (RFC 7252 §4.7), for milliseconds; persisting it cost a durable write per extra path
        // of a multi-path read, and in-flight requests are not restored anyway.
        let queue_mode = self
            .engine
            .registration(&endpoint)
            .is_some_and(|r| r.binding.queue);
        let Some(tracked) = self.ops.get_mut(&op) else {
            return;
        };
        if queue_mode
            && !tracked.persisted
            && let Some(stored) = tracked
                .operation
                .as_ref()
                .and_then(StoredOperation::from_operation)
        {
            let (tell, told) = tokio::sync::oneshot::channel();
            self.shared.persist(Job::Queue {
                id: tracked.id.to_string(),
                endpoint: endpoint.clone(),
                operation_json: stored.to_json(),
                created_at: tracked.created_at,
                expires_at: expires_wall,
                durable: Some(tell),
            });
            tracked.persisted = true;
            tracked.operation = None;
            durable = Some(told);
        }
        let id = tracked.id;
        if let Some((submitted, queued, signal)) = self.submitting.as_mut()
            && *submitted == op
        {
            *queued = true;
            if durable.is_some() {
                *signal = durable;
            }
        }
        tracing::debug!(%endpoint, operation = %id, "request queued for a sleeping device");
        self.counters.ops_queued += 1;
        self.shared.publish(DeviceEvent::OperationQueued {
            endpoint,
            operation: id,
            expires_at: expires_wall,
        });
    }

    /// Keeps established observation `observation` for a restart (see `restore`); the receiver
    /// is told once it is stored.
    fn persist_observation(
        &mut self,
        observation: ObservationId,
    ) -> Option<oneshot::Receiver<bool>> {
        let record = self.engine.observation_record(observation)?;
        let (durable, stored) = oneshot::channel();
        self.shared.persist(Job::Observed {
            observation: StoredObservation {
                endpoint: record.endpoint,
                observation: observation.as_u64(),
                registration_id: record.registration.to_string(),
                token: hex::encode(record.token.as_bytes()),
                paths: record.paths.iter().map(ToString::to_string).collect(),
                composite: record.composite,
                created_at: Utc::now(),
            },
            durable,
        });
        Some(stored)
    }

    fn on_op_completed(&mut self, op: OpId, endpoint: String, outcome: Result<OpOutcome, OpError>) {
        let stored = match &outcome {
            Ok(OpOutcome::Observing { observation, .. }) => self.persist_observation(*observation),
            _ => None,
        };
        let Some(mut tracked) = self.ops.remove(&op) else {
            return;
        };
        // Acknowledged means durable: the caller hears "observing" once the observation is
        // stored (a few milliseconds: the persistence worker's group commit), so an observation
        // the API confirmed survives a crash. The socket does not wait for it.
        if let Some(stored) = stored
            && let Some(completion) = tracked.completion.take()
        {
            let answer = outcome.clone();
            self.shared.runtime.spawn(async move {
                if stored.await != Ok(true) {
                    tracing::warn!(
                        "an observation could not be stored; it works until the server restarts"
                    );
                }
                completion.send(answer);
            });
        }
        match &outcome {
            Ok(_) => self.counters.ops_succeeded += 1,
            Err(_) => self.counters.ops_failed += 1,
        }
        // The event and the stored result are views of the outcome: built only when someone
        // listens or the request is persisted, not for every read of a fleet read.
        let listened = self.shared.listened();
        let at = Utc::now();
        let result = (listened || tracked.persisted).then(|| match &outcome {
            Ok(outcome) => OperationResult::Succeeded {
                outcome: OutcomeView::new(outcome, unix_seconds(at)),
            },
            Err(error) => OperationResult::Failed {
                error: ServiceError::from(error.clone()).to_view(),
            },
        });
        if tracked.persisted
            && let Some(result) = &result
        {
            let status = match &outcome {
                Ok(_) => RequestStatus::Completed,
                Err(OpError::Expired) => RequestStatus::Expired,
                Err(_) => RequestStatus::Failed,
            };
            self.shared.persist(Job::Finish {
                id: tracked.id.to_string(),
                status,
                at,
                result_json: serde_json::to_string(result).unwrap_or_default(),
            });
        }
        // The Observe's answer is the observation's first value: a reading like the ones after
        // it, and the only copy of one when the device's confirmable notification arrived
        // before its piggybacked answer and stood as the response.
        if listened
            && let Ok(OpOutcome::Observing {
                observation,
                content,
            }) = &outcome
        {
            let paths = match &tracked.operation {
                Some(lwm2m_proto::lwm2m::server::Operation::Observe(path)) => {
                    vec![path.to_string()]
                }
                Some(lwm2m_proto::lwm2m::server::Operation::ObserveComposite(paths)) => {
                    paths.iter().map(ToString::to_string).collect()
                }
                _ => Vec::new(),
            };
            self.shared.publish(DeviceEvent::Notification {
                endpoint: endpoint.clone(),
                observation: observation.as_u64(),
                paths,
                values: content_records(content, unix_seconds(at)),
                initial: true,
                error: None,
                at,
            });
        }
        if let Some(completion) = tracked.completion {
            completion.send(outcome);
        }
        if listened && let Some(result) = result {
            self.shared.publish(DeviceEvent::OperationCompleted {
                endpoint,
                operation: tracked.id,
                result,
                at,
            });
        }
    }
}

fn identity_of(auth: &PeerAuth) -> Option<&str> {
    match auth {
        PeerAuth::Psk { identity } => Some(identity),
        PeerAuth::NoSec => None,
    }
}

/// The registration decision (PRODUCT.md "Security"): the endpoint must be in the fleet registry
/// and not decommissioned, a DTLS identity must be the endpoint's own, NoSec only where allowed.
/// Refusals are answered 4.03 Forbidden (TS Core 1.1 §6.2.1), a store failure 5.03.
async fn decide(
    shared: Arc<Shared>,
    reply: mpsc::UnboundedSender<Command>,
    ticket: RegistrationTicket,
    peer: SocketAddr,
    auth: PeerAuth,
    endpoint: String,
) {
    let identity = identity_of(&auth);
    let transport = if identity.is_some() {
        Transport::Coaps
    } else {
        Transport::Coap
    };
    let verdict = match shared
        .store
        .may_register(&endpoint, identity, shared.nosec)
        .await
    {
        Ok(Ok(state)) => {
            tracing::debug!(%endpoint, %peer, %transport, %state, "registration allowed");
            Ok(())
        }
        Ok(Err(refusal)) => {
            tracing::warn!(
                %endpoint,
                %peer,
                %transport,
                identity = identity.unwrap_or("-"),
                reason = %refusal,
                "registration refused (4.03)"
            );
            shared.publish(DeviceEvent::RegistrationRefused {
                endpoint: Some(endpoint.clone()),
                address: peer,
                coap_code: Rejection::Forbidden.code().to_string(),
                reason: refusal.to_string(),
                at: Utc::now(),
            });
            Err(Rejection::Forbidden)
        }
        Err(error) => {
            tracing::error!(%endpoint, %peer, %error, "cannot check a registration; answered 5.03");
            Err(Rejection::ServiceUnavailable)
        }
    };
    // A closed channel means the socket is stopping; the client will retry elsewhere or later.
    let _ = reply.send(Command::Decision { ticket, verdict });
}
