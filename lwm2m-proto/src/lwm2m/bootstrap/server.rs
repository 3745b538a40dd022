//! [`BootstrapServer`]: the LwM2M Bootstrap-Server side of the client-initiated bootstrap (OMA
//! LwM2M TS Core 1.1 §6.1.3 / §5.2.7, TS Transport 1.1 §6.1 "Bootstrap Interface" mapping),
//! sans I/O on top of one [`CoapEndpoint`].
//!
//! Per client the sequence is: Bootstrap-Request `POST /bs?ep=…[&pct=…]` → the application's
//! verdict (a ticket, as for Register) → 2.04 → Bootstrap-Discover `/` → Bootstrap-Delete of the
//! old LwM2M server accounts → (Bootstrap-Discover `/0` when the bootstrap account's instance is
//! still unknown) → Bootstrap-Write `/0/x` (Security) → Bootstrap-Write `/1/y` (Server) →
//! Bootstrap-Finish `POST /bs`. One request is on the wire per client at a time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_objects::codec::encode;
use lwm2m_objects::link::parse_discover;
use lwm2m_objects::{ContentFormat, Node, Path};

use super::account::ServerAccount;
use crate::coap::{
    CoapConfig, CoapEndpoint, Code, ContentFormat as CoapFormat, Event, FailureReason, Method,
    Request, RequestId, Responder, Response, Transmit,
};
use crate::lwm2m::server::PeerAuth;

/// Names a Bootstrap-Request waiting for [`BootstrapServer::accept`] or
/// [`BootstrapServer::reject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BootstrapTicket(u64);

/// Configuration of a [`BootstrapServer`].
#[derive(Debug, Clone, PartialEq)]
pub struct BootstrapServerConfig {
    /// The CoAP endpoint's configuration.
    pub coap: CoapConfig,
    /// Bootstrap sequences running at once; a Bootstrap-Request beyond is answered 5.03.
    /// Default 10 000.
    pub max_sessions: usize,
    /// Bootstrap-Requests waiting for the application's verdict; 5.03 beyond. Default 4096.
    pub max_pending: usize,
    /// How long a ticket waits for the application before it is forgotten (the client
    /// retries). Default 60 s.
    pub ticket_timeout: Duration,
}

impl Default for BootstrapServerConfig {
    fn default() -> BootstrapServerConfig {
        BootstrapServerConfig {
            coap: CoapConfig::default(),
            max_sessions: 10_000,
            max_pending: 4096,
            ticket_timeout: Duration::from_secs(60),
        }
    }
}

/// A step of the sequence, named in [`BootstrapEvent::Failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapStep {
    /// Bootstrap-Discover `/` or `/0`.
    Discover,
    /// Bootstrap-Delete.
    Delete,
    /// Bootstrap-Write of the Security instance.
    WriteSecurity,
    /// Bootstrap-Write of the Server instance.
    WriteServer,
    /// Bootstrap-Finish.
    Finish,
}

/// Why a bootstrap sequence stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapFailure {
    /// The client answered with this error code.
    Rejected(Code),
    /// No answer, RST or a transfer failure.
    Transport(FailureReason),
    /// The write could not be encoded in the chosen format.
    Encode,
    /// A newer Bootstrap-Request of the same endpoint replaced the sequence.
    Superseded,
}

/// What the application must know about, from [`BootstrapServer::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapEvent {
    /// A client asks to be bootstrapped: decide with [`BootstrapServer::accept`] (giving the
    /// account to write) or [`BootstrapServer::reject`].
    Request {
        /// The ticket to answer.
        ticket: BootstrapTicket,
        /// The client's address.
        peer: SocketAddr,
        /// Its transport identity (the DTLS PSK identity, or NoSec).
        auth: PeerAuth,
        /// The endpoint name (`ep`).
        endpoint: String,
        /// The preferred content format (`pct`, LwM2M 1.1), if given.
        preferred_format: Option<u16>,
    },
    /// A malformed Bootstrap-Request, or one refused for capacity, was answered `code`.
    Refused {
        /// The client's address.
        peer: SocketAddr,
        /// The endpoint name when it could be read.
        endpoint: Option<String>,
        /// The answer.
        code: Code,
    },
    /// Bootstrap-Finish was acknowledged (2.04): the client now holds the account.
    Finished {
        /// The endpoint.
        endpoint: String,
        /// The client's address.
        peer: SocketAddr,
        /// Its transport identity.
        auth: PeerAuth,
        /// Where the account was written: `/0/{security}` and `/1/{server}`.
        security_instance: u16,
        /// See `security_instance`.
        server_instance: u16,
    },
    /// The sequence stopped at `step`; the client will ask again (TS Core 1.1 §6.1.3).
    Failed {
        /// The endpoint.
        endpoint: String,
        /// The client's address.
        peer: SocketAddr,
        /// Where it stopped.
        step: BootstrapStep,
        /// Why.
        reason: BootstrapFailure,
    },
}

/// Why [`BootstrapServer::accept`] or [`BootstrapServer::reject`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapTicketError {
    /// The ticket was answered already, or forgotten after its timeout.
    #[error("unknown or expired bootstrap ticket")]
    Unknown,
    /// Too many sequences are running; the request was answered 5.03.
    #[error("too many bootstrap sequences running")]
    Busy,
}

#[derive(Debug)]
struct Pending {
    responder: Responder,
    peer: SocketAddr,
    auth: PeerAuth,
    endpoint: String,
    preferred_format: Option<u16>,
    expires_at: Instant,
}

/// What is on the wire for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    DiscoverRoot,
    Delete(Path),
    DiscoverSecurity,
    WriteSecurity,
    WriteServer,
    Finish,
}

impl Action {
    fn step(self) -> BootstrapStep {
        match self {
            Action::DiscoverRoot | Action::DiscoverSecurity => BootstrapStep::Discover,
            Action::Delete(_) => BootstrapStep::Delete,
            Action::WriteSecurity => BootstrapStep::WriteSecurity,
            Action::WriteServer => BootstrapStep::WriteServer,
            Action::Finish => BootstrapStep::Finish,
        }
    }
}

#[derive(Debug)]
struct Session {
    peer: SocketAddr,
    auth: PeerAuth,
    account: ServerAccount,
    format: ContentFormat,
    /// The request on the wire and what it is.
    request: RequestId,
    action: Action,
    /// What comes after it.
    plan: VecDeque<Action>,
    /// The Security instances of the bootstrap account, once known.
    bootstrap_instances: Option<BTreeSet<u16>>,
    /// Server instances left after the deletes, when known (none after `Delete /1`).
    server_instances: BTreeSet<u16>,
    security_instance: u16,
    server_instance: u16,
}

/// The format of the writes: the client's `pct` when it is one we encode instances in, else TLV
/// (mandatory for 1.0 clients and supported by practically every 1.1 client).
fn write_format(pct: Option<u16>) -> ContentFormat {
    match pct.and_then(ContentFormat::from_u16) {
        Some(f @ (ContentFormat::SenmlCbor | ContentFormat::SenmlJson | ContentFormat::Tlv)) => f,
        _ => ContentFormat::Tlv,
    }
}

/// The lowest instance ID not in `used`.
fn free_id(used: &BTreeSet<u16>) -> u16 {
    (0..u16::MAX).find(|id| !used.contains(id)).unwrap_or(0)
}

/// What a Bootstrap-Discover answer says about objects 0 and 1.
#[derive(Debug, Default, PartialEq, Eq)]
struct Discovered {
    /// Security instances with their `ssid` (None: no ssid attribute).
    security: Vec<(u16, Option<String>, bool)>,
    /// Server instances.
    server: Vec<u16>,
}

fn parse_discovered(payload: &[u8]) -> Option<Discovered> {
    let text = std::str::from_utf8(payload).ok()?;
    let links = parse_discover(text).ok()?;
    let mut found = Discovered::default();
    for link in links {
        match link.path {
            Path::Instance(0, i) => {
                let ssid = link.attributes.ssid.map(|s| s.to_string());
                let uri = link.attributes.uri.is_some();
                found.security.push((i, ssid, uri));
            }
            Path::Instance(1, i) => found.server.push(i),
            _ => {}
        }
    }
    Some(found)
}

/// The LwM2M Bootstrap-Server engine, one per socket.
///
/// # Call order
///
/// As [`crate::lwm2m::server::Lwm2mServer`]: feed [`handle_datagram`](Self::handle_datagram)
/// (with the peer's [`PeerAuth`]), [`handle_timeout`](Self::handle_timeout) and the
/// application's [`accept`](Self::accept) / [`reject`](Self::reject); after each input drain
/// [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event); re-arm the
/// timer from [`poll_timeout`](Self::poll_timeout). `now` must not go backwards.
#[derive(Debug)]
pub struct BootstrapServer {
    coap: CoapEndpoint,
    config: BootstrapServerConfig,
    pending: HashMap<BootstrapTicket, Pending>,
    next_ticket: u64,
    sessions: HashMap<String, Session>,
    by_request: HashMap<RequestId, String>,
    events: VecDeque<BootstrapEvent>,
}

impl BootstrapServer {
    /// A server with `config`; `seed` drives CoAP tokens and message IDs (unpredictable in
    /// production).
    pub fn new(config: BootstrapServerConfig, seed: u64) -> BootstrapServer {
        BootstrapServer {
            coap: CoapEndpoint::new(config.coap.clone(), seed),
            config,
            pending: HashMap::new(),
            next_ticket: 1,
            sessions: HashMap::new(),
            by_request: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Processes one datagram from `peer`, authenticated as `auth`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: PeerAuth,
        bytes: &[u8],
    ) {
        self.coap.handle_datagram(now, peer, bytes);
        self.drain(now, Some(&auth));
    }

    /// Runs the timers due at `now` (retransmissions, forgotten tickets).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.coap.handle_timeout(now);
        self.pending.retain(|_, p| p.expires_at > now);
        self.drain(now, None);
    }

    /// The next datagram to send (through the peer's DTLS session on a DTLS socket).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.coap.poll_transmit()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tickets = self.pending.values().map(|p| p.expires_at).min();
        [self.coap.poll_timeout(), tickets]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<BootstrapEvent> {
        self.events.pop_front()
    }

    /// Sequences running.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Tickets waiting for the application.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Accepts a Bootstrap-Request: answers 2.04 and starts writing `account`. A sequence
    /// already running for the endpoint is abandoned (its client asked again).
    pub fn accept(
        &mut self,
        now: Instant,
        ticket: BootstrapTicket,
        account: ServerAccount,
    ) -> Result<(), BootstrapTicketError> {
        let pending = self
            .pending
            .remove(&ticket)
            .ok_or(BootstrapTicketError::Unknown)?;
        if let Some(old) = self.sessions.remove(&pending.endpoint) {
            self.by_request.remove(&old.request);
            self.coap.cancel(now, old.request);
            self.events.push_back(BootstrapEvent::Failed {
                endpoint: pending.endpoint.clone(),
                peer: old.peer,
                step: old.action.step(),
                reason: BootstrapFailure::Superseded,
            });
        }
        if self.sessions.len() >= self.config.max_sessions {
            let _ = self.coap.respond(
                now,
                pending.responder,
                Response::new(Code::SERVICE_UNAVAILABLE),
            );
            return Err(BootstrapTicketError::Busy);
        }
        if self
            .coap
            .respond(now, pending.responder, Response::new(Code::CHANGED))
            .is_err()
        {
            return Err(BootstrapTicketError::Unknown);
        }
        let request = self.coap.request(
            now,
            pending.peer,
            Request::get()
                .with_path(Vec::<String>::new())
                .with_accept(CoapFormat::LINK_FORMAT),
        );
        self.by_request.insert(request, pending.endpoint.clone());
        self.sessions.insert(
            pending.endpoint,
            Session {
                peer: pending.peer,
                auth: pending.auth,
                account,
                format: write_format(pending.preferred_format),
                request,
                action: Action::DiscoverRoot,
                plan: VecDeque::new(),
                bootstrap_instances: None,
                server_instances: BTreeSet::new(),
                security_instance: 0,
                server_instance: 0,
            },
        );
        self.drain(now, None);
        Ok(())
    }

    /// Refuses a Bootstrap-Request with `code` (4.00 Bad Request for an unknown endpoint,
    /// 4.03 Forbidden when its credentials do not allow it, 5.03 to come back later).
    pub fn reject(
        &mut self,
        now: Instant,
        ticket: BootstrapTicket,
        code: Code,
    ) -> Result<(), BootstrapTicketError> {
        let pending = self
            .pending
            .remove(&ticket)
            .ok_or(BootstrapTicketError::Unknown)?;
        let _ = self
            .coap
            .respond(now, pending.responder, Response::new(code));
        self.drain(now, None);
        Ok(())
    }

    /// Abandons `endpoint`'s running sequence (e.g. its credentials were revoked). Returns
    /// whether one was running.
    pub fn abort(&mut self, now: Instant, endpoint: &str) -> bool {
        let Some(session) = self.sessions.remove(endpoint) else {
            return false;
        };
        self.by_request.remove(&session.request);
        self.coap.cancel(now, session.request);
        true
    }

    fn drain(&mut self, now: Instant, auth: Option<&PeerAuth>) {
        while let Some(event) = self.coap.poll_event() {
            match event {
                Event::Request {
                    peer,
                    request,
                    responder,
                } => self.on_request(now, peer, auth, request, responder),
                Event::Response { id, response } => self.on_answer(now, id, Ok(response)),
                Event::RequestFailed { id, reason } => self.on_answer(now, id, Err(reason)),
                Event::Notification { .. }
                | Event::ObservationEnded { .. }
                | Event::ObserverGone { .. } => {}
            }
        }
    }

    /// Bootstrap-Request (TS Transport 1.1 §6.1: `POST /bs?ep={name}[&pct={format}]`).
    fn on_request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: Option<&PeerAuth>,
        request: Request,
        responder: Responder,
    ) {
        if request.method != Method::Post || request.path() != ["bs"] {
            let _ = self
                .coap
                .respond(now, responder, Response::new(Code::NOT_FOUND));
            return;
        }
        let mut endpoint = None;
        let mut pct = None;
        let mut malformed = false;
        for argument in request.query() {
            match argument.split_once('=') {
                Some(("ep", v)) if !v.is_empty() && v.len() <= 255 => endpoint = Some(v.to_owned()),
                Some(("pct", v)) => match v.parse::<u16>() {
                    Ok(n) => pct = Some(n),
                    Err(_) => malformed = true,
                },
                Some(("ep", _)) => malformed = true,
                // Unknown parameters are ignored (forward compatibility).
                _ => {}
            }
        }
        let refuse = |this: &mut BootstrapServer, responder, endpoint, code| {
            let _ = this.coap.respond(now, responder, Response::new(code));
            this.events.push_back(BootstrapEvent::Refused {
                peer,
                endpoint,
                code,
            });
        };
        let (Some(endpoint), false, Some(auth)) = (endpoint.clone(), malformed, auth) else {
            refuse(self, responder, endpoint, Code::BAD_REQUEST);
            return;
        };
        if self.pending.len() >= self.config.max_pending {
            refuse(self, responder, Some(endpoint), Code::SERVICE_UNAVAILABLE);
            return;
        }
        let ticket = BootstrapTicket(self.next_ticket);
        self.next_ticket = self.next_ticket.wrapping_add(1);
        self.pending.insert(
            ticket,
            Pending {
                responder,
                peer,
                auth: auth.clone(),
                endpoint: endpoint.clone(),
                preferred_format: pct,
                expires_at: now + self.config.ticket_timeout,
            },
        );
        self.events.push_back(BootstrapEvent::Request {
            ticket,
            peer,
            auth: auth.clone(),
            endpoint,
            preferred_format: pct,
        });
    }

    fn on_answer(&mut self, now: Instant, id: RequestId, answer: Result<Response, FailureReason>) {
        let Some(endpoint) = self.by_request.remove(&id) else {
            return;
        };
        let Some(mut session) = self.sessions.remove(&endpoint) else {
            return;
        };
        let action = session.action;
        let fail = |this: &mut BootstrapServer, session: Session, reason| {
            this.events.push_back(BootstrapEvent::Failed {
                endpoint: endpoint.clone(),
                peer: session.peer,
                step: action.step(),
                reason,
            });
        };
        let response = match answer {
            Ok(response) => response,
            Err(reason) => {
                fail(self, session, BootstrapFailure::Transport(reason));
                return;
            }
        };
        match action {
            Action::DiscoverRoot => {
                let discovered = (response.code == Code::CONTENT)
                    .then(|| parse_discovered(&response.payload))
                    .flatten();
                plan_after_discover(&mut session, discovered.as_ref());
            }
            // A client may answer 4.04 for what is already gone; the writes that follow replace
            // whatever is left.
            Action::Delete(_) => {}
            Action::DiscoverSecurity => {
                let remaining = (response.code == Code::CONTENT)
                    .then(|| parse_discovered(&response.payload))
                    .flatten()
                    .map(|d| d.security.iter().map(|(i, _, _)| *i).collect());
                // Only the bootstrap account is left after `Delete /0`. A client that answers
                // neither Discover is assumed to keep it at instance 0 (the common layout).
                session.bootstrap_instances = Some(remaining.unwrap_or_else(|| [0].into()));
            }
            Action::WriteSecurity | Action::WriteServer | Action::Finish => {
                if !response.code.is_response() || response.code.class() != 2 {
                    fail(self, session, BootstrapFailure::Rejected(response.code));
                    return;
                }
                if action == Action::Finish {
                    self.events.push_back(BootstrapEvent::Finished {
                        endpoint,
                        peer: session.peer,
                        auth: session.auth,
                        security_instance: session.security_instance,
                        server_instance: session.server_instance,
                    });
                    return;
                }
            }
        }
        let Some(next) = session.plan.pop_front() else {
            return;
        };
        let request = match self.build(&mut session, next) {
            Some(request) => request,
            None => {
                session.action = next;
                fail(self, session, BootstrapFailure::Encode);
                return;
            }
        };
        session.action = next;
        session.request = self.coap.request(now, session.peer, request);
        self.by_request.insert(session.request, endpoint.clone());
        self.sessions.insert(endpoint, session);
    }

    /// The CoAP request for `action`.
    fn build(&self, session: &mut Session, action: Action) -> Option<Request> {
        let format = session.format;
        Some(match action {
            Action::DiscoverRoot => Request::get()
                .with_path(Vec::<String>::new())
                .with_accept(CoapFormat::LINK_FORMAT),
            Action::DiscoverSecurity => Request::get()
                .with_path(["0"])
                .with_accept(CoapFormat::LINK_FORMAT),
            Action::Delete(path) => Request::delete().with_path(path.segments()),
            Action::WriteSecurity => {
                let used = session.bootstrap_instances.clone().unwrap_or_default();
                let id = free_id(&used);
                session.security_instance = id;
                let path = Path::Instance(0, id);
                let node = Node::Instance(session.account.security_instance(id));
                let payload = encode(format, &path, &node).ok()?;
                Request::put()
                    .with_path(path.segments())
                    .with_content_format(CoapFormat(format.to_u16()))
                    .with_payload(payload)
            }
            Action::WriteServer => {
                let id = free_id(&session.server_instances);
                session.server_instance = id;
                let path = Path::Instance(1, id);
                let node = Node::Instance(session.account.server_instance(id));
                let payload = encode(format, &path, &node).ok()?;
                Request::put()
                    .with_path(path.segments())
                    .with_content_format(CoapFormat(format.to_u16()))
                    .with_payload(payload)
            }
            Action::Finish => Request::post().with_path(["bs"]),
        })
    }
}

/// Plans the deletes and writes from the Discover `/` answer (TS Core 1.1 §6.1.7.1: the
/// bootstrap account's Security instance is listed without `ssid`, LwM2M server accounts with
/// theirs). When the answer does not tell which instance is the bootstrap account (no answer, a
/// 1.0 client, no attributes), `/0` and `/1` are deleted whole — the client keeps its
/// bootstrap account (§6.1.7.5) — and `/0` is discovered again to see what is left.
fn plan_after_discover(session: &mut Session, discovered: Option<&Discovered>) {
    let plan = &mut session.plan;
    let described = discovered.filter(|d| {
        d.security
            .iter()
            .any(|(_, ssid, uri)| ssid.is_some() || *uri)
    });
    match described {
        Some(d) => {
            let bootstrap: BTreeSet<u16> = d
                .security
                .iter()
                .filter(|(_, ssid, _)| ssid.is_none())
                .map(|(i, _, _)| *i)
                .collect();
            for (i, _, _) in d.security.iter().filter(|(_, ssid, _)| ssid.is_some()) {
                plan.push_back(Action::Delete(Path::Instance(0, *i)));
            }
            for i in &d.server {
                plan.push_back(Action::Delete(Path::Instance(1, *i)));
            }
            session.bootstrap_instances = Some(bootstrap);
        }
        None => {
            plan.push_back(Action::Delete(Path::Object(0)));
            plan.push_back(Action::Delete(Path::Object(1)));
            plan.push_back(Action::DiscoverSecurity);
        }
    }
    session.server_instances = BTreeSet::new();
    plan.push_back(Action::WriteSecurity);
    plan.push_back(Action::WriteServer);
    plan.push_back(Action::Finish);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn discover_answers_name_the_bootstrap_account() {
        // TS Core 1.1 §6.1.7.1 example of a Bootstrap-Discover answer on "/".
        let payload = br#"</>;lwm2m=1.1,</0/0>;uri="coap://bootstrap.example.com",</0/1>;ssid=101;uri="coaps://server_1.example.com",</1/0>;ssid=101,</3/0>"#;
        let d = parse_discovered(payload).unwrap();
        assert_eq!(
            d.security,
            vec![(0, None, true), (1, Some("101".into()), true)]
        );
        assert_eq!(d.server, vec![0]);
    }

    #[test]
    fn write_format_follows_pct_and_falls_back_to_tlv() {
        assert_eq!(write_format(Some(112)), ContentFormat::SenmlCbor);
        assert_eq!(write_format(Some(110)), ContentFormat::SenmlJson);
        assert_eq!(write_format(Some(11543)), ContentFormat::Tlv);
        assert_eq!(write_format(None), ContentFormat::Tlv);
        assert_eq!(free_id(&[0, 1, 3].into()), 2);
        assert_eq!(free_id(&BTreeSet::new()), 0);
    }
}
