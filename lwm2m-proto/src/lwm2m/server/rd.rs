//! The Client Registration interface (OMA LwM2M TS Core 1.1 §6.2; TS 1.0 §5.3): Register
//! (`POST /rd?…`) with the application's verdict, Update (`POST /rd/{id}?…`), De-register
//! (`DELETE /rd/{id}`), and the routing of every request a client sends to the server.

use std::net::SocketAddr;
use std::time::Instant;

use lwm2m_objects::link::{RegistrationLinks, parse_registration};

use super::commit::Change;
use super::events::{RefusalReason, RegistrationTicket, Rejection, ServerEvent};
use super::registrations::{PeerAuth, RegisteredObjects, Registration, RegistrationId};
use super::{Lwm2mServer, PendingRegister, TimerKey, deadline};
use crate::coap::option::ContentFormat as CoapFormat;
use crate::coap::{Code, Method, Request, Responder, Response};
use crate::lwm2m::registration::{RegisterParams, RegistrationError, UpdateParams};

/// Why [`Lwm2mServer::accept_registration`] or [`Lwm2mServer::reject_registration`] could not
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The ticket was already answered, never issued, or forgotten after
    /// [`crate::coap::CoapConfig::pending_request_timeout`].
    #[error("no such Register request is waiting")]
    UnknownTicket,
    /// The CoAP layer no longer holds the request (answered too late); the client will retry.
    #[error("the Register request has expired")]
    Expired,
    /// [`super::ServerConfig::max_registrations`] reached; the client was answered 5.03.
    #[error("too many registrations")]
    TooManyRegistrations,
}

/// The `ep=` value of a query that failed to parse, for diagnostics.
fn endpoint_in(query: &[String]) -> Option<String> {
    query
        .iter()
        .find_map(|q| q.strip_prefix("ep="))
        .filter(|ep| !ep.is_empty())
        .map(|ep| ep.chars().take(64).collect())
}

/// Reads a registration payload: link format (RFC 6690, Content-Format 40 or none).
fn read_links(request: &Request) -> Result<RegistrationLinks, RefusalReason> {
    if let Some(cf) = request.content_format()
        && cf != CoapFormat::LINK_FORMAT
    {
        return Err(RefusalReason::UnsupportedContentFormat(cf.0));
    }
    let text = std::str::from_utf8(&request.payload).map_err(|_| RefusalReason::PayloadNotUtf8)?;
    parse_registration(text).map_err(RefusalReason::InvalidLinks)
}

fn code_of(e: &RegistrationError) -> Code {
    let (class, detail) = e.coap_code();
    Code::new(class, detail)
}

impl Lwm2mServer {
    /// Accepts a Register: the client gets 2.01 Created with Location-Path `rd/{id}`, the
    /// application [`ServerEvent::Registered`]. A previous registration of the same endpoint is
    /// replaced (a reboot): its observations and in-flight operations end, its queued operations
    /// carry over to the new one. With [`super::ServerConfig::persist_before_answer`] set, all of
    /// this waits for [`Lwm2mServer::commit_succeeded`] of the [`ServerEvent::PersistChange`]
    /// emitted now; the returned ID is the one the registration will have.
    pub fn accept_registration(
        &mut self,
        now: Instant,
        ticket: RegistrationTicket,
    ) -> Result<RegistrationId, TicketError> {
        let pending = self
            .tickets
            .remove(&ticket)
            .ok_or(TicketError::UnknownTicket)?;
        self.timers.cancel(TimerKey::Ticket(ticket));
        let endpoint = &pending.params.endpoint;
        let reboot = self.by_endpoint.contains_key(endpoint) || self.commit_pending_for(endpoint);
        if !reboot && self.registrations_with_staged() >= self.config.max_registrations {
            self.answer(
                now,
                pending.responder,
                Response::new(Code::SERVICE_UNAVAILABLE),
            );
            self.drain_coap(now, None);
            return Err(TicketError::TooManyRegistrations);
        }
        if !self.coap.is_pending(&pending.responder) {
            return Err(TicketError::Expired);
        }
        let id = self.fresh_registration_id();
        let PendingRegister {
            responder,
            peer,
            auth,
            params,
            objects,
        } = pending;
        let RegisterParams {
            endpoint,
            lifetime,
            version,
            binding,
            sms_number,
        } = params;
        let registration = Registration {
            id,
            endpoint,
            version,
            binding,
            lifetime,
            sms_number,
            objects,
            peer,
            auth,
            registered_at: now,
            last_update: now,
        };
        self.stage_or_apply(
            now,
            responder,
            Change::Register {
                registration,
                reboot,
            },
        );
        self.drain_coap(now, None);
        Ok(id)
    }

    /// Refuses a Register with `rejection`'s code.
    pub fn reject_registration(
        &mut self,
        now: Instant,
        ticket: RegistrationTicket,
        rejection: Rejection,
    ) -> Result<(), TicketError> {
        let pending = self
            .tickets
            .remove(&ticket)
            .ok_or(TicketError::UnknownTicket)?;
        self.timers.cancel(TimerKey::Ticket(ticket));
        let result = self
            .coap
            .respond(now, pending.responder, Response::new(rejection.code()))
            .map_err(|_| TicketError::Expired);
        self.drain_coap(now, None);
        result
    }

    /// A request from a client: the `/rd` and `/dp` resources of the server.
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: &PeerAuth,
        request: Request,
        responder: Responder,
    ) {
        let path = request.path();
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        match (segments.as_slice(), request.method) {
            (["rd"], Method::Post) => self.on_register(now, peer, auth, &request, responder),
            (["rd", id], Method::Post) => self.on_update(now, peer, auth, id, &request, responder),
            (["rd", id], Method::Delete) => self.on_deregister(now, peer, auth, id, responder),
            (["rd"] | ["rd", _], _) => self.refuse(
                now,
                responder,
                peer,
                auth,
                None,
                Code::METHOD_NOT_ALLOWED,
                RefusalReason::MethodNotAllowed,
            ),
            (["dp"], Method::Post) => self.on_send(now, peer, auth, &request, responder),
            (["dp"], _) => {
                self.answer(now, responder, Response::new(Code::METHOD_NOT_ALLOWED));
            }
            _ => self.answer(now, responder, Response::new(Code::NOT_FOUND)),
        }
    }

    /// Answers `code` and reports the refusal.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn refuse(
        &mut self,
        now: Instant,
        responder: Responder,
        peer: SocketAddr,
        auth: &PeerAuth,
        endpoint: Option<String>,
        code: Code,
        reason: RefusalReason,
    ) {
        self.answer(now, responder, Response::new(code));
        self.events.push_back(ServerEvent::RegistrationRefused {
            peer,
            auth: auth.clone(),
            endpoint,
            code,
            reason,
        });
    }

    /// Register (TS Core 1.1 §6.2.1): checks what the engine can check, then asks the
    /// application with a [`ServerEvent::RegistrationRequest`].
    fn on_register(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: &PeerAuth,
        request: &Request,
        responder: Responder,
    ) {
        let query = request.query();
        let params = match RegisterParams::from_query(&query) {
            Ok(params) => params,
            Err(e) => {
                let code = code_of(&e);
                let endpoint = endpoint_in(&query);
                let reason = RefusalReason::InvalidParameters(e);
                return self.refuse(now, responder, peer, auth, endpoint, code, reason);
            }
        };
        let endpoint = Some(params.endpoint.clone());
        let links = match read_links(request) {
            Ok(links) => links,
            Err(reason) => {
                return self.refuse(
                    now,
                    responder,
                    peer,
                    auth,
                    endpoint,
                    Code::BAD_REQUEST,
                    reason,
                );
            }
        };
        if self.tickets.len() >= self.config.max_pending_registrations {
            let reason = RefusalReason::TooManyPendingRegistrations;
            let code = Code::SERVICE_UNAVAILABLE;
            return self.refuse(now, responder, peer, auth, endpoint, code, reason);
        }
        if !self.by_endpoint.contains_key(&params.endpoint)
            && !self.commit_pending_for(&params.endpoint)
            && self.registrations_with_staged() >= self.config.max_registrations
        {
            let reason = RefusalReason::TooManyRegistrations;
            let code = Code::SERVICE_UNAVAILABLE;
            return self.refuse(now, responder, peer, auth, endpoint, code, reason);
        }
        let ticket = RegistrationTicket(self.next_ticket);
        self.next_ticket += 1;
        self.tickets.insert(
            ticket,
            PendingRegister {
                responder,
                peer,
                auth: auth.clone(),
                params: params.clone(),
                objects: RegisteredObjects::new(&links),
            },
        );
        let at = deadline(now, self.config.coap.pending_request_timeout);
        self.timers.set(TimerKey::Ticket(ticket), at);
        self.events.push_back(ServerEvent::RegistrationRequest {
            ticket,
            peer,
            auth: auth.clone(),
            params,
            links,
        });
    }

    /// Finds the registration an Update or De-register names, checking the sender's identity;
    /// refuses (4.04 / 4.03) and returns `None` otherwise.
    fn registration_for(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: &PeerAuth,
        id_text: &str,
        responder: Responder,
    ) -> Option<(RegistrationId, Responder)> {
        let found = RegistrationId::parse(id_text).filter(|id| self.registrations.contains_key(id));
        let Some(id) = found else {
            let reason = RefusalReason::UnknownRegistration;
            self.refuse(now, responder, peer, auth, None, Code::NOT_FOUND, reason);
            return None;
        };
        let state = self.registrations.get(&id)?;
        if state.reg.auth != *auth {
            // Another identity naming this registration: not the device that registered it.
            let endpoint = Some(state.reg.endpoint.clone());
            let reason = RefusalReason::IdentityMismatch { registration: id };
            self.refuse(
                now,
                responder,
                peer,
                auth,
                endpoint,
                Code::FORBIDDEN,
                reason,
            );
            return None;
        }
        if self.staged_base(&state.reg.endpoint).is_err() {
            // A reboot or De-register is being persisted (see `commit::Staged`).
            let endpoint = Some(state.reg.endpoint.clone());
            let (code, reason) = (Code::SERVICE_UNAVAILABLE, RefusalReason::ChangePending);
            self.refuse(now, responder, peer, auth, endpoint, code, reason);
            return None;
        }
        Some((id, responder))
    }

    /// Update (TS Core 1.1 §6.2.2): new lifetime, binding, SMS number or objects; a new source
    /// address is a NAT rebinding and becomes the registration's address. Resets the lifetime and
    /// wakes a queue-mode client.
    fn on_update(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: &PeerAuth,
        id_text: &str,
        request: &Request,
        responder: Responder,
    ) {
        let Some((id, responder)) = self.registration_for(now, peer, auth, id_text, responder)
        else {
            return;
        };
        let endpoint = self.registrations.get(&id).map(|s| s.reg.endpoint.clone());
        let params = match UpdateParams::from_query(&request.query()) {
            Ok(params) => params,
            Err(e) => {
                let code = code_of(&e);
                let reason = RefusalReason::InvalidParameters(e);
                return self.refuse(now, responder, peer, auth, endpoint, code, reason);
            }
        };
        let objects = if request.payload.is_empty() {
            None
        } else {
            match read_links(request) {
                Ok(links) => Some(RegisteredObjects::new(&links)),
                Err(reason) => {
                    let code = Code::BAD_REQUEST;
                    return self.refuse(now, responder, peer, auth, endpoint, code, reason);
                }
            }
        };
        let Some(state) = self.registrations.get(&id) else {
            return;
        };
        // Stacked on the Updates still being persisted, if any.
        let previous = match self.staged_base(&state.reg.endpoint) {
            Ok(Some(latest)) => latest.clone(),
            _ => state.reg.clone(),
        };
        let mut registration = previous.clone();
        if let Some(lifetime) = params.lifetime {
            registration.lifetime = lifetime;
        }
        if let Some(binding) = params.binding {
            registration.binding = binding;
        }
        if params.sms_number.is_some() {
            registration.sms_number = params.sms_number;
        }
        if let Some(objects) = objects {
            registration.objects = objects;
        }
        registration.peer = peer;
        registration.last_update = now;
        self.stage_or_apply(
            now,
            responder,
            Change::Update {
                registration,
                previous,
            },
        );
    }

    /// De-register (TS Core 1.1 §6.2.3).
    fn on_deregister(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: &PeerAuth,
        id_text: &str,
        responder: Responder,
    ) {
        let Some((id, responder)) = self.registration_for(now, peer, auth, id_text, responder)
        else {
            return;
        };
        let Some(registration) = self.registrations.get(&id).map(|s| s.reg.clone()) else {
            return;
        };
        self.stage_or_apply(now, responder, Change::Deregister { registration });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_found_in_a_refused_query() {
        let q = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            endpoint_in(&q(&["lwm2m=9.9", "ep=meter-1"])),
            Some("meter-1".into())
        );
        assert_eq!(endpoint_in(&q(&["ep="])), None);
        assert_eq!(endpoint_in(&q(&["lt=5"])), None);
    }

    #[test]
    fn registration_payload_must_be_link_format() {
        let r = Request::post()
            .with_content_format(CoapFormat::SENML_JSON)
            .with_payload("</3/0>");
        assert_eq!(
            read_links(&r),
            Err(RefusalReason::UnsupportedContentFormat(110))
        );
        let r = Request::post().with_payload(vec![0xff, 0xfe]);
        assert_eq!(read_links(&r), Err(RefusalReason::PayloadNotUtf8));
        let r = Request::post().with_payload("</3/0>,<");
        assert!(matches!(
            read_links(&r),
            Err(RefusalReason::InvalidLinks(_))
        ));
        let r = Request::post()
            .with_content_format(CoapFormat::LINK_FORMAT)
            .with_payload("</3/0>");
        assert_eq!(read_links(&r).map(|l| l.objects.len()), Ok(1));
    }
}
