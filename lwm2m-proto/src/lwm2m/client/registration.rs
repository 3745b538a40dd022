//! The registration interface, client side (OMA LwM2M TS Core 1.1 §6.2): Register (`POST /rd`),
//! Update (`POST /rd/{location}`) before the lifetime runs out or on demand, De-register
//! (`DELETE /rd/{location}`), and what happens when they fail.

use std::time::{Duration, Instant};

use super::links::{fingerprint, registration_links};
use super::store::ObjectStore;
use super::{
    ClientError, ClientEvent, Lwm2mClient, RegistrationOperation, RegistrationState,
    RequestFailure, SERVER,
};
use crate::coap::{Code, ContentFormat as CoapFormat, FailureReason, Request, RequestId, Response};
use crate::lwm2m::registration::{RegisterParams, UpdateParams};

/// How long before the lifetime ends the automatic Update is sent: a tenth of the lifetime, at
/// least 10 s (room for CoAP retransmissions), at most half of it.
pub(crate) fn renew_margin(lifetime: u32) -> Duration {
    let lifetime = u64::from(lifetime);
    Duration::from_secs((lifetime / 10).max(10).min(lifetime / 2))
}

/// The registration state machine.
#[derive(Debug)]
pub(crate) enum Registration {
    Unregistered,
    Registering {
        request: RequestId,
        sent_at: Instant,
    },
    Registered(Box<Session>),
    Deregistering {
        request: RequestId,
    },
}

/// A registration the server accepted.
#[derive(Debug)]
pub(crate) struct Session {
    /// Location-Path segments joined by `/` (`rd/5a3f`).
    location: String,
    /// When the last successful Register or Update was sent: the server's lifetime counts from
    /// about then, so the client's deadlines are computed from it (conservatively early).
    refreshed_at: Instant,
    /// Whether the automatic Update is armed; disarmed after an Update failed (the application
    /// decides the retry) until the next success.
    auto_update: bool,
    /// Fingerprint of the object links the server last received.
    links: u64,
    /// The Update in flight.
    update: Option<UpdateInFlight>,
    /// An Update asked for while another was in flight.
    queued: Option<UpdateParams>,
}

#[derive(Debug)]
struct UpdateInFlight {
    request: RequestId,
    sent_at: Instant,
    params: UpdateParams,
    /// Fingerprint of the links sent with it, if any.
    links: Option<u64>,
}

impl Registration {
    pub(crate) fn state(&self) -> RegistrationState {
        match self {
            Registration::Unregistered => RegistrationState::Unregistered,
            Registration::Registering { .. } => RegistrationState::Registering,
            Registration::Registered(_) => RegistrationState::Registered,
            Registration::Deregistering { .. } => RegistrationState::Deregistering,
        }
    }

    pub(crate) fn location(&self) -> Option<&str> {
        match self {
            Registration::Registered(s) => Some(&s.location),
            _ => None,
        }
    }

    /// Whether `id` is a registration request of ours.
    pub(crate) fn owns(&self, id: RequestId) -> bool {
        match self {
            Registration::Registering { request, .. } | Registration::Deregistering { request } => {
                *request == id
            }
            Registration::Registered(s) => s.update.as_ref().is_some_and(|u| u.request == id),
            Registration::Unregistered => false,
        }
    }

    /// The next registration deadline: the automatic Update, or the end of the lifetime.
    pub(crate) fn deadline(&self, lifetime: u32) -> Option<Instant> {
        let Registration::Registered(s) = self else {
            return None;
        };
        let expiry = s.refreshed_at + Duration::from_secs(u64::from(lifetime));
        if s.auto_update && s.update.is_none() {
            Some(expiry - renew_margin(lifetime))
        } else {
            Some(expiry)
        }
    }
}

impl<S: ObjectStore> Lwm2mClient<S> {
    /// Sends Register (`POST /rd?ep=…&lt=…&lwm2m=…&b=…` with the object links, TS Core 1.1
    /// §6.2.1). Registering again while registered starts a new registration (the server treats
    /// it as a reboot). [`ClientEvent::Registered`] or [`ClientEvent::RegistrationFailed`]
    /// follows.
    pub fn register(&mut self, now: Instant) -> Result<(), ClientError> {
        if matches!(
            self.registration,
            Registration::Registering { .. } | Registration::Deregistering { .. }
        ) {
            return Err(ClientError::Busy);
        }
        self.last_now = Some(now);
        self.send_register(now);
        self.after_input(now);
        Ok(())
    }

    /// Sends De-register (`DELETE /rd/{location}`, TS Core 1.1 §6.2.3). Observations end at
    /// once; [`ClientEvent::Deregistered`] or [`ClientEvent::RegistrationFailed`] follows, and
    /// the client is unregistered either way.
    pub fn deregister(&mut self, now: Instant) -> Result<(), ClientError> {
        let Registration::Registered(session) = &mut self.registration else {
            return Err(match self.registration {
                Registration::Unregistered => ClientError::NotRegistered,
                _ => ClientError::Busy,
            });
        };
        self.last_now = Some(now);
        if let Some(update) = session.update.take() {
            self.coap.cancel(now, update.request);
        }
        let segments: Vec<&str> = session.location.split('/').collect();
        let request = self
            .coap
            .request(now, SERVER, Request::delete().with_path(segments));
        self.registration = Registration::Deregistering { request };
        self.stop_all_observations();
        self.after_input(now);
        Ok(())
    }

    fn send_register(&mut self, now: Instant) {
        // A Register in flight or an Update of the old registration is superseded.
        if let Registration::Registered(s) = &self.registration
            && let Some(update) = &s.update
        {
            self.coap.cancel(now, update.request);
        }
        let params = RegisterParams {
            endpoint: self.settings.endpoint.clone(),
            lifetime: self.settings.lifetime,
            version: self.settings.version,
            binding: self.settings.binding,
            sms_number: self.settings.sms_number.clone(),
        };
        let links = registration_links(&self.store, self.settings.version, self.settings.model);
        let mut request = Request::post()
            .with_path(["rd"])
            .with_content_format(CoapFormat::LINK_FORMAT)
            .with_payload(links);
        for argument in params.to_query() {
            request = request.with_query(argument);
        }
        let request = self.coap.request(now, SERVER, request);
        self.registration = Registration::Registering {
            request,
            sent_at: now,
        };
    }

    /// Sends the Update now, or queues it behind the one in flight.
    pub(crate) fn start_update(
        &mut self,
        now: Instant,
        params: UpdateParams,
    ) -> Result<(), ClientError> {
        let Registration::Registered(session) = &mut self.registration else {
            return Err(match self.registration {
                Registration::Unregistered => ClientError::NotRegistered,
                _ => ClientError::Busy,
            });
        };
        if session.update.is_some() {
            let queued = session.queued.get_or_insert_with(UpdateParams::default);
            queued.lifetime = params.lifetime.or(queued.lifetime);
            queued.binding = params.binding.or(queued.binding);
            queued.sms_number = params.sms_number.or(queued.sms_number.take());
            return Ok(());
        }
        self.send_update(now, params);
        Ok(())
    }

    fn send_update(&mut self, now: Instant, params: UpdateParams) {
        let links = registration_links(&self.store, self.settings.version, self.settings.model);
        let Registration::Registered(session) = &mut self.registration else {
            return;
        };
        let segments: Vec<&str> = session.location.split('/').collect();
        let mut request = Request::post().with_path(segments);
        for argument in params.to_query(self.settings.version) {
            request = request.with_query(argument);
        }
        // TS Core 1.1 §6.2.2: the object links go along only when they changed.
        let print = fingerprint(&links);
        let sent_links = (print != session.links).then_some(print);
        if sent_links.is_some() {
            request = request
                .with_content_format(CoapFormat::LINK_FORMAT)
                .with_payload(links);
        }
        let request = self.coap.request(now, SERVER, request);
        session.update = Some(UpdateInFlight {
            request,
            sent_at: now,
            params,
            links: sent_links,
        });
    }

    /// The automatic Update and the end of the lifetime.
    pub(crate) fn registration_timers(&mut self, now: Instant) {
        let lifetime = self.settings.lifetime;
        let Registration::Registered(session) = &mut self.registration else {
            return;
        };
        let expiry = session.refreshed_at + Duration::from_secs(u64::from(lifetime));
        if now >= expiry {
            if let Some(update) = session.update.take() {
                self.coap.cancel(now, update.request);
            }
            self.registration = Registration::Unregistered;
            self.stop_all_observations();
            self.events.push_back(ClientEvent::RegistrationExpired);
            return;
        }
        if session.auto_update && session.update.is_none() && now >= expiry - renew_margin(lifetime)
        {
            let params = session.queued.take().unwrap_or_default();
            self.send_update(now, params);
        }
    }

    /// The answer to Register, Update or De-register.
    pub(crate) fn on_registration_answer(
        &mut self,
        now: Instant,
        answer: Result<Response, FailureReason>,
    ) {
        let failure = |answer: Result<Response, FailureReason>| match answer {
            Ok(r) => RequestFailure::Rejected(r.code),
            Err(reason) => RequestFailure::Transport(reason),
        };
        match std::mem::replace(&mut self.registration, Registration::Unregistered) {
            Registration::Registering { sent_at, .. } => match answer {
                Ok(r) if r.code == Code::CREATED && !r.location_path().is_empty() => {
                    let location = r.location_path().join("/");
                    // A new registration is a new session: the server forgot observations.
                    self.stop_all_observations();
                    let links =
                        registration_links(&self.store, self.settings.version, self.settings.model);
                    self.registration = Registration::Registered(Box::new(Session {
                        location: location.clone(),
                        refreshed_at: sent_at,
                        auto_update: true,
                        links: fingerprint(&links),
                        update: None,
                        queued: None,
                    }));
                    self.events.push_back(ClientEvent::Registered { location });
                }
                other => self.events.push_back(ClientEvent::RegistrationFailed {
                    operation: RegistrationOperation::Register,
                    reason: failure(other),
                }),
            },
            Registration::Registered(mut session) => {
                let Some(update) = session.update.take() else {
                    self.registration = Registration::Registered(session);
                    return;
                };
                match answer {
                    Ok(r) if r.code == Code::CHANGED => {
                        if let Some(lt) = update.params.lifetime {
                            self.settings.lifetime = lt.max(1);
                        }
                        if let Some(b) = update.params.binding {
                            self.settings.binding = b;
                        }
                        if update.params.sms_number.is_some() {
                            self.settings.sms_number = update.params.sms_number;
                        }
                        if let Some(links) = update.links {
                            session.links = links;
                        }
                        session.refreshed_at = update.sent_at;
                        session.auto_update = true;
                        let queued = session.queued.take();
                        self.registration = Registration::Registered(session);
                        self.events.push_back(ClientEvent::Updated);
                        if let Some(params) = queued {
                            self.send_update(now, params);
                        }
                    }
                    // TS Core 1.1 §6.2.2: 4.04 on Update means the server lost the
                    // registration; the client registers again.
                    Ok(r) if r.code == Code::NOT_FOUND => self.send_register(now),
                    other => {
                        // The registration may still be valid until its lifetime ends; no
                        // automatic retry (the application decides).
                        session.auto_update = false;
                        self.registration = Registration::Registered(session);
                        self.events.push_back(ClientEvent::RegistrationFailed {
                            operation: RegistrationOperation::Update,
                            reason: failure(other),
                        });
                    }
                }
            }
            Registration::Deregistering { .. } => match answer {
                Ok(r) if r.code == Code::DELETED => {
                    self.events.push_back(ClientEvent::Deregistered);
                }
                other => self.events.push_back(ClientEvent::RegistrationFailed {
                    operation: RegistrationOperation::Deregister,
                    reason: failure(other),
                }),
            },
            Registration::Unregistered => {}
        }
    }
}
