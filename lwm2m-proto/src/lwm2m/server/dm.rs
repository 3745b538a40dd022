//! Operations on registered clients (OMA LwM2M TS Core 1.1 §6.3, §6.4): sending them through the
//! CoAP layer, queueing them for sleeping clients (queue mode, TS Transport 1.1 "Queue Mode
//! Operation") and for in-flight slots, expiring them, and turning responses, notifications and
//! failures into events.

use std::time::{Duration, Instant};

use super::events::{ObservationEndReason, ServerEvent};
use super::mapping::{self, Built, ObserveTarget};
use super::ops::{ObservationId, OpError, OpId, OpOutcome, Operation};
use super::registrations::RegisteredObjects;
use super::{InFlight, Lwm2mServer, Observation, QueuedOp, RegistrationId, TimerKey, deadline};
use crate::coap::{CancelMode, FailureReason, RequestId, Response};

/// A queued operation, as [`Lwm2mServer::queued_ops`] reports it for persistence.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedOpInfo {
    /// The operation's ID.
    pub op: OpId,
    /// The operation, to re-submit after a restart.
    pub operation: Operation,
    /// When it fails with [`OpError::Expired`] if the client has not woken up.
    pub expires_at: Instant,
}

/// A summary of an established observation.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationInfo {
    /// Its ID.
    pub observation: ObservationId,
    /// The observed path(s).
    pub paths: Vec<lwm2m_objects::Path>,
}

impl Lwm2mServer {
    /// Sends `operation` to `endpoint`, or queues it if the client is asleep (queue mode) or all
    /// its in-flight slots are taken (then [`ServerEvent::OpQueued`]); a queued operation expires
    /// after [`super::ServerConfig::queued_request_expiry`]. The outcome arrives as
    /// [`ServerEvent::OpCompleted`]. Errors here (unknown endpoint, invalid operation, full
    /// queue, …) mean nothing was sent and no event follows.
    ///
    /// Content formats follow what the client registered (see the `formats` rules: TLV for 1.0,
    /// SenML CBOR for 1.1+, SenML JSON for a client that lists only that).
    pub fn request(
        &mut self,
        now: Instant,
        endpoint: &str,
        operation: Operation,
    ) -> Result<OpId, OpError> {
        let expiry = self.config.queued_request_expiry;
        self.request_with_expiry(now, endpoint, operation, expiry)
    }

    /// [`request`](Self::request) with its own queue expiry (e.g. the remaining time of a
    /// request re-submitted after a restart).
    pub fn request_with_expiry(
        &mut self,
        now: Instant,
        endpoint: &str,
        operation: Operation,
        expiry: Duration,
    ) -> Result<OpId, OpError> {
        let id = *self
            .by_endpoint
            .get(endpoint)
            .ok_or(OpError::UnknownEndpoint)?;
        let result = if let Operation::CancelObservation(observation) = operation {
            self.cancel_observation(now, id, observation)
        } else {
            self.submit(now, id, operation, expiry)
        };
        self.drain_coap(now, None);
        result
    }

    /// The operations waiting for `endpoint`, oldest first (to persist them).
    pub fn queued_ops(&self, endpoint: &str) -> Vec<QueuedOpInfo> {
        self.by_endpoint
            .get(endpoint)
            .and_then(|id| self.registrations.get(id))
            .map(|state| {
                state
                    .waiting
                    .iter()
                    .map(|q| QueuedOpInfo {
                        op: q.op,
                        operation: q.operation.clone(),
                        expires_at: q.expires_at,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The established observations of `endpoint`.
    pub fn observations(&self, endpoint: &str) -> Vec<ObservationInfo> {
        let Some(state) = self
            .by_endpoint
            .get(endpoint)
            .and_then(|id| self.registrations.get(id))
        else {
            return Vec::new();
        };
        state
            .observations
            .iter()
            .filter_map(|id| {
                let obs = self.observations.get(id)?;
                Some(ObservationInfo {
                    observation: *id,
                    paths: obs.target.paths(),
                })
            })
            .collect()
    }

    fn next_op_id(&mut self) -> OpId {
        let op = OpId(self.next_op);
        self.next_op += 1;
        op
    }

    fn submit(
        &mut self,
        now: Instant,
        id: RegistrationId,
        operation: Operation,
        expiry: Duration,
    ) -> Result<OpId, OpError> {
        let max_in_flight = self.config.max_in_flight.max(1);
        let (max_queued, max_observations) = (self.config.max_queued, self.config.max_observations);
        let state = self
            .registrations
            .get(&id)
            .ok_or(OpError::UnknownEndpoint)?;
        // Validate and encode now, so a bad operation is refused at once even when it would wait.
        let built = mapping::build(&operation, state.reg.version, &state.reg.objects)?;
        if built.observe.is_some() {
            let pending = state
                .in_flight
                .iter()
                .filter(|r| self.requests.get(r).is_some_and(|f| f.observe.is_some()))
                .count()
                + state
                    .waiting
                    .iter()
                    .filter(|q| {
                        matches!(
                            q.operation,
                            Operation::Observe(_) | Operation::ObserveComposite(_)
                        )
                    })
                    .count();
            if state.observations.len() + pending >= max_observations {
                return Err(OpError::TooManyObservations);
            }
        }
        let send_now = state.reachable(now)
            && state.waiting.is_empty()
            && state.in_flight.len() < max_in_flight;
        if !send_now && state.waiting.len() >= max_queued {
            return Err(OpError::QueueFull);
        }
        let endpoint = state.reg.endpoint.clone();
        let op = self.next_op_id();
        let expires_at = deadline(now, expiry);
        if send_now {
            self.send_built(now, id, op, operation, expires_at, built);
        } else {
            self.enqueue(id, op, operation, expires_at, false);
            self.events.push_back(ServerEvent::OpQueued {
                op,
                endpoint,
                expires_at,
            });
        }
        Ok(op)
    }

    fn enqueue(
        &mut self,
        id: RegistrationId,
        op: OpId,
        operation: Operation,
        expires_at: Instant,
        front: bool,
    ) {
        let Some(state) = self.registrations.get_mut(&id) else {
            return;
        };
        let queued = QueuedOp {
            op,
            operation,
            expires_at,
        };
        if front {
            state.waiting.push_front(queued);
        } else {
            state.waiting.push_back(queued);
        }
        self.timers.set(TimerKey::QueuedOp(id, op), expires_at);
    }

    fn send_built(
        &mut self,
        now: Instant,
        id: RegistrationId,
        op: OpId,
        operation: Operation,
        expires_at: Instant,
        built: Built,
    ) {
        let Some(state) = self.registrations.get_mut(&id) else {
            return;
        };
        let request = self.coap.request(now, state.reg.peer, built.request);
        state.in_flight.push(request);
        self.requests.insert(
            request,
            InFlight {
                op,
                registration: id,
                operation,
                expires_at,
                expect: built.expect,
                format: built.format,
                observe: built.observe,
            },
        );
    }

    /// Sends queued operations while the client is reachable and slots are free, serially in
    /// the order they were queued.
    pub(super) fn pump(&mut self, now: Instant, id: RegistrationId) {
        let max_in_flight = self.config.max_in_flight.max(1);
        loop {
            let Some(state) = self.registrations.get_mut(&id) else {
                return;
            };
            if !state.reachable(now) || state.in_flight.len() >= max_in_flight {
                return;
            }
            let Some(queued) = state.waiting.pop_front() else {
                return;
            };
            self.timers.cancel(TimerKey::QueuedOp(id, queued.op));
            // Built again: the client may have re-registered with other formats meanwhile.
            match mapping::build(&queued.operation, state.reg.version, &state.reg.objects) {
                Ok(built) => {
                    self.send_built(
                        now,
                        id,
                        queued.op,
                        queued.operation,
                        queued.expires_at,
                        built,
                    );
                }
                Err(e) => {
                    let endpoint = state.reg.endpoint.clone();
                    self.events.push_back(ServerEvent::OpCompleted {
                        op: queued.op,
                        endpoint,
                        outcome: Err(e),
                    });
                }
            }
        }
    }

    /// The client sent something (Update, Send, a response, a notification): a queue-mode client
    /// is awake for the window (TS Transport 1.1 "Queue Mode Operation"), so its queue is served.
    pub(super) fn client_spoke(&mut self, now: Instant, id: RegistrationId) {
        let window = self.config.queue_awake_window;
        if let Some(state) = self.registrations.get_mut(&id) {
            state.awake_until = state.awake_until.max(deadline(now, window));
        }
        self.pump(now, id);
    }

    /// A queued operation's expiry passed.
    pub(super) fn on_queued_op_expired(&mut self, id: RegistrationId, op: OpId) {
        let Some(state) = self.registrations.get_mut(&id) else {
            return;
        };
        let Some(index) = state.waiting.iter().position(|q| q.op == op) else {
            return;
        };
        state.waiting.remove(index);
        let endpoint = state.reg.endpoint.clone();
        self.events.push_back(ServerEvent::OpCompleted {
            op,
            endpoint,
            outcome: Err(OpError::Expired),
        });
    }

    /// Indexes established observation `observation` (by number, by CoAP request and under its
    /// registration).
    pub(super) fn add_observation(&mut self, observation: ObservationId, obs: Observation) {
        self.observation_by_request.insert(obs.request, observation);
        if let Some(state) = self.registrations.get_mut(&obs.registration) {
            state.observations.push(observation);
        }
        self.observations.insert(observation, obs);
    }

    /// Takes the in-flight record of `request` off its registration.
    fn take_in_flight(&mut self, request: RequestId) -> Option<(InFlight, String)> {
        let flight = self.requests.remove(&request)?;
        let state = self.registrations.get_mut(&flight.registration)?;
        state.in_flight.retain(|r| *r != request);
        Some((flight, state.reg.endpoint.clone()))
    }

    /// The final response to one of our requests.
    pub(super) fn on_response(&mut self, now: Instant, request: RequestId, response: Response) {
        let Some((flight, endpoint)) = self.take_in_flight(request) else {
            return;
        };
        let id = flight.registration;
        let established = response.is_success() && response.observe().is_some();
        let outcome = match (&flight.observe, established) {
            (Some(target), true) => {
                match mapping::observed_content(target, flight.format, &response) {
                    Ok(content) => {
                        let observation = ObservationId(self.next_observation);
                        self.next_observation += 1;
                        self.add_observation(
                            observation,
                            Observation {
                                registration: id,
                                request,
                                target: target.clone(),
                                format: flight.format,
                                cancel_op: None,
                            },
                        );
                        Ok(OpOutcome::Observing {
                            observation,
                            content,
                        })
                    }
                    Err(e) => {
                        // Nobody could use notifications we cannot decode: forget it, the next
                        // one is answered with RST (RFC 7641 §3.6).
                        self.coap.cancel(now, request);
                        Err(e)
                    }
                }
            }
            // An Observe the client answered without Observe is a plain read (RFC 7641 §3.1).
            _ => {
                // take_in_flight found the registration, so the fallback is not built.
                let none;
                let objects = match self.registrations.get(&id) {
                    Some(state) => &state.reg.objects,
                    None => {
                        none = RegisteredObjects::default();
                        &none
                    }
                };
                mapping::outcome(&flight.expect, flight.format, &response, objects)
            }
        };
        self.events.push_back(ServerEvent::OpCompleted {
            op: flight.op,
            endpoint,
            outcome,
        });
        self.client_spoke(now, id);
    }

    /// One of our requests failed in the CoAP layer.
    pub(super) fn on_request_failed(
        &mut self,
        now: Instant,
        request: RequestId,
        reason: FailureReason,
    ) {
        let Some((flight, endpoint)) = self.take_in_flight(request) else {
            return;
        };
        let id = flight.registration;
        let queue_mode = self
            .registrations
            .get(&id)
            .is_some_and(|s| s.reg.binding.queue);
        if queue_mode && reason == FailureReason::Timeout && now < flight.expires_at {
            // The client went back to sleep: keep the request for its next wake-up (TS 1.0
            // Queue Mode: "If a request is unsuccessful then it is returned to the queue").
            if let Some(state) = self.registrations.get_mut(&id) {
                state.awake_until = now;
            }
            let expires_at = flight.expires_at;
            self.enqueue(id, flight.op, flight.operation, expires_at, true);
            self.events.push_back(ServerEvent::OpQueued {
                op: flight.op,
                endpoint,
                expires_at,
            });
            return;
        }
        let error = match reason {
            FailureReason::Timeout => OpError::Timeout,
            FailureReason::Reset => OpError::Reset,
            other => OpError::Transport(other),
        };
        self.events.push_back(ServerEvent::OpCompleted {
            op: flight.op,
            endpoint,
            outcome: Err(error),
        });
        self.pump(now, id);
    }

    /// A notification of an established observation (TS Core 1.1 §6.4.5 Notify).
    pub(super) fn on_notification(
        &mut self,
        now: Instant,
        request: RequestId,
        response: Response,
        seq: u32,
    ) {
        let Some(&observation) = self.observation_by_request.get(&request) else {
            return;
        };
        let Some(obs) = self.observations.get(&observation) else {
            return;
        };
        let id = obs.registration;
        let Some(state) = self.registrations.get(&id) else {
            return;
        };
        let content = if response.is_success() {
            mapping::observed_content(&obs.target, obs.format, &response)
        } else {
            Err(mapping::error_of(&response))
        };
        self.events.push_back(ServerEvent::Notification {
            observation,
            endpoint: state.reg.endpoint.clone(),
            paths: obs.target.paths(),
            content,
            seq,
        });
        self.client_spoke(now, id);
    }

    /// An observation ended in the CoAP layer: the client ended it, or our proactive
    /// cancellation completed.
    pub(super) fn on_observation_ended(
        &mut self,
        now: Instant,
        request: RequestId,
        response: Option<Response>,
    ) {
        let Some(observation) = self.observation_by_request.remove(&request) else {
            return;
        };
        let Some(obs) = self.observations.remove(&observation) else {
            return;
        };
        let id = obs.registration;
        let Some(state) = self.registrations.get_mut(&id) else {
            return;
        };
        state.observations.retain(|o| *o != observation);
        let endpoint = state.reg.endpoint.clone();
        let reason = match obs.cancel_op {
            Some(op) => {
                self.events.push_back(ServerEvent::OpCompleted {
                    op,
                    endpoint: endpoint.clone(),
                    outcome: Ok(OpOutcome::Cancelled { observation }),
                });
                ObservationEndReason::Cancelled
            }
            None => ObservationEndReason::EndedByClient(response.as_ref().map(|r| r.code)),
        };
        self.events.push_back(ServerEvent::ObservationEnded {
            observation,
            endpoint,
            reason,
        });
        if response.is_some() {
            self.client_spoke(now, id);
        }
    }

    /// Cancel Observation (TS Core 1.1 §6.4.3). Proactive (GET with Observe 1, RFC 7641 §3.6)
    /// when the client is reachable and the observation is single-path; otherwise reactive: the
    /// observation is forgotten now and the client's next notification is answered with RST
    /// (also RFC 7641 §3.6). Observe-Composite is always cancelled reactively, because the CoAP
    /// layer's proactive cancellation is a GET, not the FETCH with Observe 1 that Cancel
    /// Observe-Composite is.
    fn cancel_observation(
        &mut self,
        now: Instant,
        id: RegistrationId,
        observation: ObservationId,
    ) -> Result<OpId, OpError> {
        let reachable = self
            .registrations
            .get(&id)
            .is_some_and(|s| s.reachable(now));
        let obs = self
            .observations
            .get(&observation)
            .filter(|o| o.registration == id)
            .ok_or(OpError::UnknownObservation)?;
        if obs.cancel_op.is_some() {
            return Err(OpError::Invalid {
                operation: "Cancel Observation",
                reason: "a cancellation is already under way",
            });
        }
        let request = obs.request;
        let proactive = reachable && matches!(obs.target, ObserveTarget::Single(_));
        let op = self.next_op_id();
        if proactive {
            if let Some(obs) = self.observations.get_mut(&observation) {
                obs.cancel_op = Some(op);
            }
            self.coap
                .cancel_observe(now, request, CancelMode::Proactive);
            return Ok(op);
        }
        self.coap.cancel_observe(now, request, CancelMode::Reactive);
        self.observations.remove(&observation);
        self.observation_by_request.remove(&request);
        let endpoint = match self.registrations.get_mut(&id) {
            Some(state) => {
                state.observations.retain(|o| *o != observation);
                state.reg.endpoint.clone()
            }
            None => String::new(),
        };
        self.events.push_back(ServerEvent::OpCompleted {
            op,
            endpoint: endpoint.clone(),
            outcome: Ok(OpOutcome::Cancelled { observation }),
        });
        self.events.push_back(ServerEvent::ObservationEnded {
            observation,
            endpoint,
            reason: ObservationEndReason::Cancelled,
        });
        Ok(op)
    }
}
