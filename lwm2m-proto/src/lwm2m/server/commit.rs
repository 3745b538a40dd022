//! Acknowledged means durable (ARCHITECTURE.md): with
//! [`ServerConfig::persist_before_answer`](super::ServerConfig::persist_before_answer) set, an
//! accepted Register, an Update and a De-register (OMA LwM2M TS Core 1.1 §6.2.1–§6.2.3) are not
//! answered nor applied at once. The engine stages the change and emits
//! [`ServerEvent::PersistChange`] with a [`CommitTicket`]; the application writes the change to its
//! store and reports the outcome with [`Lwm2mServer::commit_succeeded`] or
//! [`Lwm2mServer::commit_failed`]. Only then does the client get 2.01 / 2.04 / 2.02 (or 5.03), and
//! only then does the in-memory registration change, so what the engine serves never runs ahead of
//! what the store holds. Without it (the default) changes apply and are answered immediately.
//!
//! A CoAP retransmission of the staged request is never processed twice: the CoAP layer
//! deduplicates it by message ID (RFC 7252 §4.5) and, once
//! [`CoapConfig::empty_ack_delay`](crate::coap::CoapConfig::empty_ack_delay) has passed, answers
//! it with the Empty ACK it sent; the verdict then goes out as a separate Confirmable response
//! (§5.2.2) that the CoAP layer retransmits until the client acknowledges it. A commit that never
//! comes is given up after the configured delay: the client gets 5.03 (TS Core 1.1 §6.2.1: try
//! again later) and the application [`ServerEvent::CommitTimedOut`], so it can log it and undo a
//! late write.

use std::time::{Duration, Instant};

use super::events::{ObservationEndReason, RefusalReason, ServerEvent};
use super::lifecycle::EndReason;
use super::registrations::{Registration, RegistrationId};
use super::{Lwm2mServer, RegState, TimerKey, deadline};
use crate::coap::{Code, Responder, Response};

/// Names a staged change waiting for [`Lwm2mServer::commit_succeeded`] or
/// [`Lwm2mServer::commit_failed`]. The number is public so that an application can carry it
/// through its own channels (and build one in tests); a ticket the engine did not issue is
/// simply unknown to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitTicket(pub u64);

impl CommitTicket {
    /// The ticket's number (for logs).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// A registration change to persist before the client is answered.
// Short-lived (one per request waiting for its commit), like `ServerEvent::Updated`'s pair.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An accepted Register. `reboot`: the endpoint was registered (or had a Register staged)
    /// when it was accepted, so this replaces that registration.
    Register {
        /// The new registration (its ID is the Location-Path the client will get).
        registration: Registration,
        /// It replaces an earlier registration of the endpoint.
        reboot: bool,
    },
    /// An Update: the registration as it will be after it.
    Update {
        /// After the Update.
        registration: Registration,
        /// Before it (what the store holds now).
        previous: Registration,
    },
    /// A De-register.
    Deregister {
        /// The registration that ends.
        registration: Registration,
    },
}

impl Change {
    /// The endpoint the change is about.
    pub fn endpoint(&self) -> &str {
        &self.registration().endpoint
    }

    /// The registration written (Register, Update) or removed (De-register).
    pub fn registration(&self) -> &Registration {
        match self {
            Change::Register { registration, .. }
            | Change::Update { registration, .. }
            | Change::Deregister { registration } => registration,
        }
    }
}

/// Why [`Lwm2mServer::commit_succeeded`] or [`Lwm2mServer::commit_failed`] could not act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// Already reported, never issued, or given up after the commit timeout
    /// ([`ServerEvent::CommitTimedOut`] was emitted then).
    #[error("no such change is waiting for its commit")]
    UnknownTicket,
}

/// A staged change and the request it answers.
#[derive(Debug)]
pub(super) struct PendingCommit {
    responder: Responder,
    change: Change,
}

/// What is staged for one endpoint. The store applies writes in the order they were staged, so
/// the changes of one endpoint may queue up as long as applying them in that order gives the
/// same result in the store (an upsert by endpoint, a delete by registration ID) and in memory:
/// Updates stack (each computed from the one before) and a De-register may follow them; an
/// Update or De-register behind a staged Register (a reboot) or De-register could resurrect or
/// overwrite a row, and is refused 5.03 until those are committed.
#[derive(Debug, Default)]
pub(super) struct Staged {
    count: u32,
    register: bool,
    deregister: bool,
    /// The result of the latest staged Update: the base of the next one.
    latest: Option<Registration>,
}

impl Lwm2mServer {
    /// Whether changes wait for the application's commit before they apply and are answered.
    pub(super) fn defers_answers(&self) -> Option<Duration> {
        self.config.persist_before_answer
    }

    /// Whether a change to `endpoint` is waiting for its commit.
    pub(super) fn commit_pending_for(&self, endpoint: &str) -> bool {
        self.commit_endpoints.contains_key(endpoint)
    }

    /// For an Update or De-register of `endpoint`: `Err(())` if it must wait (see [`Staged`]),
    /// else the registration as it will be once the staged Updates are committed, if any.
    pub(super) fn staged_base(&self, endpoint: &str) -> Result<Option<&Registration>, ()> {
        match self.commit_endpoints.get(endpoint) {
            None => Ok(None),
            Some(s) if s.register || s.deregister => Err(()),
            Some(s) => Ok(s.latest.as_ref()),
        }
    }

    /// Applies `change` now, or stages it until the application's commit.
    pub(super) fn stage_or_apply(&mut self, now: Instant, responder: Responder, change: Change) {
        let Some(timeout) = self.defers_answers() else {
            self.apply(now, responder, change);
            return;
        };
        let ticket = CommitTicket(self.next_commit);
        self.next_commit += 1;
        let staged = self
            .commit_endpoints
            .entry(change.endpoint().to_owned())
            .or_default();
        staged.count += 1;
        match &change {
            Change::Register { .. } => staged.register = true,
            Change::Deregister { .. } => staged.deregister = true,
            Change::Update { registration, .. } => staged.latest = Some(registration.clone()),
        }
        self.timers
            .set(TimerKey::Commit(ticket), deadline(now, timeout));
        self.commits.insert(
            ticket,
            PendingCommit {
                responder,
                change: change.clone(),
            },
        );
        self.events
            .push_back(ServerEvent::PersistChange { ticket, change });
    }

    /// The application stored the change of `ticket`: it applies now and the client gets its
    /// answer (2.01 with the Location-Path, 2.04, 2.02), then the usual
    /// [`ServerEvent::Registered`] / [`ServerEvent::Updated`] / [`ServerEvent::Deregistered`].
    /// Report commits in the order of their [`ServerEvent::PersistChange`] events.
    ///
    /// An Update whose registration ended meanwhile (expired, removed, replaced) is answered
    /// 4.04, as it would have been had it arrived a moment later; the application's own record
    /// of that end, written after the Update, leaves the store consistent.
    pub fn commit_succeeded(
        &mut self,
        now: Instant,
        ticket: CommitTicket,
    ) -> Result<(), CommitError> {
        let pending = self.take_commit(ticket)?;
        self.apply(now, pending.responder, pending.change);
        self.drain_coap(now, None);
        Ok(())
    }

    /// The application could not store the change of `ticket`: nothing changes and the client
    /// is answered 5.03 Service Unavailable (TS Core 1.1 §6.2.1: it tries again later).
    pub fn commit_failed(&mut self, now: Instant, ticket: CommitTicket) -> Result<(), CommitError> {
        let pending = self.take_commit(ticket)?;
        self.answer(
            now,
            pending.responder,
            Response::new(Code::SERVICE_UNAVAILABLE),
        );
        self.drain_coap(now, None);
        Ok(())
    }

    /// The commit timer of `ticket` fired: the client gets 5.03, the application
    /// [`ServerEvent::CommitTimedOut`]. The endpoint's other staged changes are given up with
    /// it: later ones may build on it, and the application's undo must come after all of them.
    pub(super) fn on_commit_timeout(&mut self, now: Instant, ticket: CommitTicket) {
        let Some(endpoint) = self
            .commits
            .get(&ticket)
            .map(|p| p.change.endpoint().to_owned())
        else {
            return;
        };
        let mut tickets: Vec<CommitTicket> = self
            .commits
            .iter()
            .filter(|(_, p)| p.change.endpoint() == endpoint)
            .map(|(t, _)| *t)
            .collect();
        tickets.sort_unstable();
        for ticket in tickets {
            let Ok(pending) = self.take_commit(ticket) else {
                continue;
            };
            let unavailable = Response::new(Code::SERVICE_UNAVAILABLE);
            self.answer(now, pending.responder, unavailable);
            self.events.push_back(ServerEvent::CommitTimedOut {
                ticket,
                change: pending.change,
            });
        }
    }

    fn take_commit(&mut self, ticket: CommitTicket) -> Result<PendingCommit, CommitError> {
        let pending = self
            .commits
            .remove(&ticket)
            .ok_or(CommitError::UnknownTicket)?;
        self.timers.cancel(TimerKey::Commit(ticket));
        let endpoint = pending.change.endpoint();
        if let Some(staged) = self.commit_endpoints.get_mut(endpoint) {
            staged.count = staged.count.saturating_sub(1);
            if staged.count == 0 {
                self.commit_endpoints.remove(endpoint);
            }
        }
        Ok(pending)
    }

    fn apply(&mut self, now: Instant, responder: Responder, change: Change) {
        match change {
            Change::Register { registration, .. } => {
                self.apply_register(now, responder, registration);
            }
            Change::Update {
                registration,
                previous,
            } => self.apply_update(now, responder, registration, previous),
            Change::Deregister { registration } => {
                self.apply_deregister(now, responder, registration);
            }
        }
    }

    /// Answers 2.01 and makes `registration` current, replacing the endpoint's previous one (a
    /// reboot: its observations and in-flight operations end, its queue carries over).
    fn apply_register(&mut self, now: Instant, responder: Responder, registration: Registration) {
        let id = registration.id;
        let created = Response::new(Code::CREATED).with_location_path(["rd", &id.to_string()]);
        // Err: the request expired meanwhile; the registration stands (the application has it),
        // the client registers again and replaces it.
        let _ = self.coap.respond(now, responder, created);
        let previous = self.by_endpoint.get(&registration.endpoint).copied();
        let (replaced, carried) = match previous {
            Some(old) => match self.end_registration(now, old, EndReason::Replaced) {
                Some((reg, waiting)) => (Some(reg), waiting),
                None => (None, Default::default()),
            },
            None => (None, Default::default()),
        };
        let expires_at = self.lifetime_end(now, registration.lifetime);
        self.insert_registration(RegState {
            reg: registration.clone(),
            expires_at,
            awake_until: deadline(now, self.config.queue_awake_window),
            in_flight: Vec::new(),
            waiting: carried,
            observations: Vec::new(),
        });
        self.events.push_back(ServerEvent::Registered {
            registration,
            replaced,
        });
        self.pump(now, id);
    }

    /// Answers 2.04 and makes `registration` (the Update's result) current; a new address ends
    /// the observations (RFC 7252 §5.3.2 binds them to the old one).
    fn apply_update(
        &mut self,
        now: Instant,
        responder: Responder,
        registration: Registration,
        previous: Registration,
    ) {
        let id = registration.id;
        let grace = self.config.lifetime_grace;
        let window = self.config.queue_awake_window;
        let Some(state) = self.registrations.get_mut(&id) else {
            // Ended while the Update was being persisted.
            let reason = RefusalReason::UnknownRegistration;
            let (peer, auth) = (registration.peer, registration.auth.clone());
            let endpoint = Some(registration.endpoint);
            self.refuse(
                now,
                responder,
                peer,
                &auth,
                endpoint,
                Code::NOT_FOUND,
                reason,
            );
            return;
        };
        let old_peer = state.reg.peer;
        state.reg = registration.clone();
        let lifetime = Duration::from_secs(u64::from(registration.lifetime));
        state.expires_at = deadline(now, lifetime + grace);
        state.awake_until = deadline(now, window);
        let expires_at = state.expires_at;
        self.timers.set(TimerKey::Lifetime(id), expires_at);
        if old_peer != registration.peer {
            if self.by_peer.get(&old_peer) == Some(&id) {
                self.by_peer.remove(&old_peer);
            }
            self.by_peer.insert(registration.peer, id);
            // CoAP binds an observation to the address it was made from (RFC 7252 §5.3.2
            // matches responses by endpoint and token), so notifications from the new address
            // would be rejected: end them here so the application can observe again.
            let observations = self
                .registrations
                .get(&id)
                .map(|s| s.observations.clone())
                .unwrap_or_default();
            let ended = ObservationEndReason::AddressChanged;
            self.end_observations(now, &registration.endpoint, &observations, ended, None);
        }
        self.answer(now, responder, Response::new(Code::CHANGED));
        self.events.push_back(ServerEvent::Updated {
            registration,
            previous,
        });
        self.pump(now, id);
    }

    /// Answers 2.02 and ends `registration` (if it is still there).
    fn apply_deregister(&mut self, now: Instant, responder: Responder, registration: Registration) {
        self.answer(now, responder, Response::new(Code::DELETED));
        if let Some((registration, _)) =
            self.end_registration(now, registration.id, EndReason::Deregistered)
        {
            self.events
                .push_back(ServerEvent::Deregistered { registration });
        }
    }

    /// Registrations that will exist once the staged Registers of new endpoints commit (for the
    /// [`super::ServerConfig::max_registrations`] cap).
    pub(super) fn registrations_with_staged(&self) -> usize {
        if self.registrations.len() + self.commits.len() < self.config.max_registrations {
            // Far from the cap (the usual case): no need to look at each staged change.
            return self.registrations.len();
        }
        self.registrations.len()
            + self
                .commits
                .values()
                .filter(|p| {
                    matches!(p.change, Change::Register { .. })
                        && !self.by_endpoint.contains_key(p.change.endpoint())
                })
                .count()
    }

    /// Whether a staged Register holds `id` (a fresh ID must not collide with it either).
    pub(super) fn id_is_staged(&self, id: RegistrationId) -> bool {
        self.commits.values().any(
            |p| matches!(&p.change, Change::Register { registration, .. } if registration.id == id),
        )
    }
}
