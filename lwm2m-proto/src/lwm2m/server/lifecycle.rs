//! How registrations begin and end outside the Register/Update/De-register exchange: restoring
//! them after a restart, removing them at the application's request, lifetime expiry (OMA LwM2M
//! TS Core 1.1 §6.2.1: no Update within the lifetime), and what ending one does to its
//! operations, observations and queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lwm2m_objects::Path;

use super::events::{ObservationEndReason, ServerEvent};
use super::mapping::{self, ObserveTarget};
use super::ops::{ObservationId, OpError, OpOutcome, Operation};
use super::registrations::{Registration, RegistrationId, RestoredRegistration};
use super::{Lwm2mServer, Observation, QueuedOp, RegState, TimerKey, deadline};
use crate::coap::Token;

/// Why [`Lwm2mServer::restore_registration`] refused a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Another registration has this ID.
    #[error("the registration ID is already in use")]
    DuplicateId,
    /// The endpoint is already registered (it registered again since the restart).
    #[error("the endpoint is already registered")]
    EndpointRegistered,
    /// [`super::ServerConfig::max_registrations`] reached.
    #[error("too many registrations")]
    TooManyRegistrations,
}

/// An established observation as the application persists it ([`Lwm2mServer::observation_record`])
/// and puts back after a restart ([`Lwm2mServer::restore_observation`]): enough to recognise the
/// client's next notification (its token, from the registration's address) and to decode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservationRecord {
    /// The observation's number, kept across the restart (the application's handle).
    pub observation: ObservationId,
    /// The client.
    pub endpoint: String,
    /// The registration it was made in; an observation does not outlive its registration.
    pub registration: RegistrationId,
    /// The CoAP token the notifications carry.
    pub token: Token,
    /// The observed path(s).
    pub paths: Vec<Path>,
    /// Observe-Composite (even with one path) rather than Observe.
    pub composite: bool,
}

/// Why [`Lwm2mServer::restore_observation`] refused an observation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreObservationError {
    /// The endpoint is not registered, or under another registration (it registered again).
    #[error("the registration it belonged to is gone")]
    RegistrationGone,
    /// Another observation has this number.
    #[error("the observation number is already in use")]
    DuplicateId,
    /// Another exchange with the client uses the token.
    #[error("the token is already in use")]
    TokenInUse,
    /// [`super::ServerConfig::max_observations`] observations already exist for this client.
    #[error("too many observations for this client")]
    TooManyObservations,
    /// The observation cannot be made for this registration (e.g. a composite for a 1.0 client).
    #[error("the observation cannot be made: {0}")]
    Invalid(OpError),
}

/// Why a registration ends; decides the error its operations fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndReason {
    Deregistered,
    Expired,
    Replaced,
    Removed,
}

impl EndReason {
    pub(super) fn op_error(self) -> OpError {
        match self {
            EndReason::Deregistered => OpError::Deregistered,
            EndReason::Expired => OpError::RegistrationExpired,
            EndReason::Replaced => OpError::Replaced,
            EndReason::Removed => OpError::Removed,
        }
    }

    fn observation_end(self) -> ObservationEndReason {
        match self {
            EndReason::Deregistered => ObservationEndReason::Deregistered,
            EndReason::Expired => ObservationEndReason::RegistrationExpired,
            EndReason::Replaced => ObservationEndReason::Replaced,
            EndReason::Removed => ObservationEndReason::Removed,
        }
    }
}

impl Lwm2mServer {
    /// Restores a registration persisted before a restart. Its lifetime runs on from the
    /// persisted last update (one already past its lifetime expires once the grace period is
    /// over, with [`ServerEvent::Expired`]); a queue-mode client counts as asleep unless its last
    /// update is within the awake window. No event.
    pub fn restore_registration(
        &mut self,
        now: Instant,
        restored: RestoredRegistration,
    ) -> Result<(), RestoreError> {
        if self.registrations.contains_key(&restored.id) {
            return Err(RestoreError::DuplicateId);
        }
        if self.by_endpoint.contains_key(&restored.endpoint) {
            return Err(RestoreError::EndpointRegistered);
        }
        if self.registrations.len() >= self.config.max_registrations {
            return Err(RestoreError::TooManyRegistrations);
        }
        let since = restored.since_last_update;
        // Instants before the process started may not exist; the deadlines below are computed
        // from `now` so they hold either way.
        let last_update = now.checked_sub(since).unwrap_or(now);
        let registered_at = now.checked_sub(restored.since_registered).unwrap_or(now);
        let remaining = Duration::from_secs(u64::from(restored.lifetime)).saturating_sub(since);
        let expires_at = deadline(now, remaining + self.config.lifetime_grace);
        let awake_until = deadline(now, self.config.queue_awake_window.saturating_sub(since));
        let registration = Registration {
            id: restored.id,
            endpoint: restored.endpoint,
            version: restored.version,
            binding: restored.binding,
            lifetime: restored.lifetime,
            sms_number: restored.sms_number,
            objects: restored.objects,
            peer: restored.peer,
            auth: restored.auth,
            registered_at,
            last_update,
        };
        self.insert_registration(RegState {
            reg: registration,
            expires_at,
            awake_until,
            in_flight: Vec::new(),
            waiting: Default::default(),
            observations: Vec::new(),
        });
        Ok(())
    }

    /// What the application persists of established observation `observation`; `None` when it
    /// has ended.
    pub fn observation_record(&self, observation: ObservationId) -> Option<ObservationRecord> {
        let obs = self.observations.get(&observation)?;
        let state = self.registrations.get(&obs.registration)?;
        let token = self.coap.token_of(obs.request)?;
        Some(ObservationRecord {
            observation,
            endpoint: state.reg.endpoint.clone(),
            registration: obs.registration,
            token,
            paths: obs.target.paths(),
            composite: matches!(obs.target, ObserveTarget::Composite(_)),
        })
    }

    /// Puts back an observation persisted before a restart, after its registration was restored
    /// ([`restore_registration`](Self::restore_registration)). Nothing is sent: the client still
    /// observes, and its next notification arrives as [`ServerEvent::Notification`] under the
    /// same number. The request is built again from the registration (same paths, same content
    /// format), so a proactive Cancel Observation repeats the original. No event.
    pub fn restore_observation(
        &mut self,
        record: ObservationRecord,
    ) -> Result<(), RestoreObservationError> {
        let id = *self
            .by_endpoint
            .get(&record.endpoint)
            .filter(|id| **id == record.registration)
            .ok_or(RestoreObservationError::RegistrationGone)?;
        if self.observations.contains_key(&record.observation) {
            return Err(RestoreObservationError::DuplicateId);
        }
        let state = self
            .registrations
            .get(&id)
            .ok_or(RestoreObservationError::RegistrationGone)?;
        if state.observations.len() >= self.config.max_observations {
            return Err(RestoreObservationError::TooManyObservations);
        }
        // Built as the Observe was (mapping refuses an empty composite); its target comes back
        // with the request.
        let operation = match (record.composite, record.paths.as_slice()) {
            (true, paths) => Operation::ObserveComposite(paths.to_vec()),
            (false, [path]) => Operation::Observe(*path),
            (false, _) => {
                return Err(RestoreObservationError::Invalid(OpError::Invalid {
                    operation: "Observe",
                    reason: "an observation has one path, a composite one at least one",
                }));
            }
        };
        let built = mapping::build(&operation, state.reg.version, &state.reg.objects)
            .map_err(RestoreObservationError::Invalid)?;
        let Some(target) = built.observe else {
            return Err(RestoreObservationError::Invalid(OpError::Invalid {
                operation: "Observe",
                reason: "not an observation",
            }));
        };
        let request = self
            .coap
            .restore_observation(state.reg.peer, record.token, built.request)
            .ok_or(RestoreObservationError::TokenInUse)?;
        self.add_observation(
            record.observation,
            Observation {
                registration: id,
                request,
                target,
                format: built.format,
                cancel_op: None,
            },
        );
        // New observations get numbers after every restored one.
        self.next_observation = self.next_observation.max(record.observation.0 + 1);
        Ok(())
    }

    /// Numbers new observations from `next` on (or later): after a restart the application
    /// hands back the first number its store never saw given, so that the number of an
    /// observation that ended before the restart, which an API caller may still hold, is not
    /// given to another. Never moves the numbering back.
    pub fn number_observations_from(&mut self, next: ObservationId) {
        self.next_observation = self.next_observation.max(next.0);
    }

    /// Removes `endpoint`'s registration at the application's request (e.g. the device was
    /// decommissioned): its operations fail with [`OpError::Removed`], its observations end.
    /// The client is not told; its next Update gets 4.04 and it registers again (which the
    /// application may then reject).
    pub fn remove_registration(&mut self, now: Instant, endpoint: &str) -> Option<Registration> {
        let id = *self.by_endpoint.get(endpoint)?;
        let removed = self
            .end_registration(now, id, EndReason::Removed)
            .map(|(reg, _)| reg);
        self.drain_coap(now, None);
        removed
    }

    /// The lifetime timer fired (TS Core 1.1 §6.2.1: the registration is removed when no Update
    /// arrives within the lifetime).
    pub(super) fn on_lifetime_end(&mut self, now: Instant, id: RegistrationId) {
        let due = self
            .registrations
            .get(&id)
            .is_some_and(|s| s.expires_at <= now);
        if !due {
            return;
        }
        if let Some((registration, _)) = self.end_registration(now, id, EndReason::Expired) {
            self.events.push_back(ServerEvent::Expired { registration });
        }
    }

    /// Ends registration `id`: its in-flight operations fail and its observations end (events
    /// now), its queued operations fail too unless it is being replaced, in which case they are
    /// returned for the new registration.
    pub(super) fn end_registration(
        &mut self,
        now: Instant,
        id: RegistrationId,
        reason: EndReason,
    ) -> Option<(Registration, VecDeque<QueuedOp>)> {
        let state = self.registrations.remove(&id)?;
        let endpoint = state.reg.endpoint.clone();
        if self.by_endpoint.get(&endpoint) == Some(&id) {
            self.by_endpoint.remove(&endpoint);
        }
        if self.by_peer.get(&state.reg.peer) == Some(&id) {
            self.by_peer.remove(&state.reg.peer);
        }
        self.timers.cancel(TimerKey::Lifetime(id));
        for request in &state.in_flight {
            self.coap.cancel(now, *request);
            if let Some(flight) = self.requests.remove(request) {
                self.events.push_back(ServerEvent::OpCompleted {
                    op: flight.op,
                    endpoint: endpoint.clone(),
                    outcome: Err(reason.op_error()),
                });
            }
        }
        self.end_observations(
            now,
            &endpoint,
            &state.observations,
            reason.observation_end(),
            Some(reason.op_error()),
        );
        let mut waiting = state.waiting;
        for queued in &waiting {
            self.timers.cancel(TimerKey::QueuedOp(id, queued.op));
        }
        if reason != EndReason::Replaced {
            for queued in waiting.drain(..) {
                self.events.push_back(ServerEvent::OpCompleted {
                    op: queued.op,
                    endpoint: endpoint.clone(),
                    outcome: Err(reason.op_error()),
                });
            }
        }
        Some((state.reg, waiting))
    }

    /// Ends `observations` of `endpoint` on our side, reactively: the client's next notification
    /// is answered with RST (RFC 7641 §3.6). A cancellation under way completes with
    /// `cancel_error`, or as cancelled when `None`.
    pub(super) fn end_observations(
        &mut self,
        now: Instant,
        endpoint: &str,
        observations: &[ObservationId],
        reason: ObservationEndReason,
        cancel_error: Option<OpError>,
    ) {
        for &observation in observations {
            let Some(obs) = self.observations.remove(&observation) else {
                continue;
            };
            self.observation_by_request.remove(&obs.request);
            self.coap.cancel(now, obs.request);
            if let Some(state) = self.registrations.get_mut(&obs.registration) {
                state.observations.retain(|o| *o != observation);
            }
            if let Some(op) = obs.cancel_op {
                let outcome = match &cancel_error {
                    Some(e) => Err(e.clone()),
                    None => Ok(OpOutcome::Cancelled { observation }),
                };
                self.events.push_back(ServerEvent::OpCompleted {
                    op,
                    endpoint: endpoint.to_owned(),
                    outcome,
                });
            }
            self.events.push_back(ServerEvent::ObservationEnded {
                observation,
                endpoint: endpoint.to_owned(),
                reason: reason.clone(),
            });
        }
    }

    /// Indexes a new registration and arms its timers (including its carried-over queue's).
    pub(super) fn insert_registration(&mut self, state: RegState) {
        let id = state.reg.id;
        self.by_endpoint.insert(state.reg.endpoint.clone(), id);
        self.by_peer.insert(state.reg.peer, id);
        self.timers.set(TimerKey::Lifetime(id), state.expires_at);
        for queued in &state.waiting {
            self.timers
                .set(TimerKey::QueuedOp(id, queued.op), queued.expires_at);
        }
        self.registrations.insert(id, state);
    }

    pub(super) fn lifetime_end(&self, now: Instant, lifetime: u32) -> Instant {
        deadline(
            now,
            Duration::from_secs(u64::from(lifetime)) + self.config.lifetime_grace,
        )
    }

    /// A random registration ID not in use.
    pub(super) fn fresh_registration_id(&mut self) -> RegistrationId {
        loop {
            let id = RegistrationId::from_random(self.rng.next_u64());
            if !self.registrations.contains_key(&id) && !self.id_is_staged(id) {
                return id;
            }
        }
    }
}
