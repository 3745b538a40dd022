//! The client side of the bootstrap interface (OMA LwM2M TS Core 1.1 §6.1, TS Transport 1.1
//! §6.1): Bootstrap-Request (`POST /bs?ep=…[&pct=…]`), then the Bootstrap-Server's Discover,
//! Delete and Write on the Security (0) and Server (1) objects, answered from the
//! [`ObjectStore`] with the bootstrap account kept, and Bootstrap-Finish, after which the
//! application registers with the account it received ([`BootstrapOutcome::Finished`]).
//!
//! While a bootstrap is under way every request that arrives is a bootstrap operation (the I/O
//! shell connects the client to the bootstrap server); the registration interface is untouched.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lwm2m_objects::codec::decode;
use lwm2m_objects::link::{Attributes, DiscoverLink, encode_discover};
use lwm2m_objects::{ContentFormat, ObjectInstance, Path, Value};

use super::config::decodes;
use super::store::ObjectStore;
use super::{ClientError, Lwm2mClient, RequestFailure, SERVER};
use crate::coap::{
    Code, ContentFormat as CoapFormat, FailureReason, Method, Request, RequestId, Responder,
    Response,
};
use crate::lwm2m::bootstrap::{ServerAccount, is_bootstrap_account, security, server_object};

/// How long the client waits for the bootstrap server's next operation before giving up
/// (TS Core 1.1 §6.1.3 leaves it to the client; EXCHANGE_LIFETIME with the RFC 7252 defaults).
const BOOTSTRAP_IDLE_TIMEOUT: Duration = Duration::from_secs(247);

/// How a bootstrap ended, from [`Lwm2mClient::poll_bootstrap`].
#[derive(Debug, Clone, PartialEq)]
pub enum BootstrapOutcome {
    /// Bootstrap-Finish arrived and the store holds a complete LwM2M server account: connect
    /// to `account.server_uri` with its credentials and [`Lwm2mClient::register`]. The client's
    /// lifetime and binding already follow the account.
    Finished {
        /// The account (the first non-bootstrap one, by Security instance ID).
        account: ServerAccount,
    },
    /// The Bootstrap-Request was refused or got no answer, or the server stopped midway.
    Failed {
        /// Why.
        reason: RequestFailure,
    },
}

#[derive(Debug, Default)]
pub(crate) enum BootstrapState {
    #[default]
    Idle,
    /// The Bootstrap-Request is in flight; bootstrap operations may already arrive (reordering).
    Requesting { request: RequestId, until: Instant },
    /// Accepted: waiting for operations and Bootstrap-Finish until `until`.
    InProgress { until: Instant },
}

/// The client's bootstrap state and finished outcomes.
#[derive(Debug, Default)]
pub(crate) struct Bootstrap {
    pub state: BootstrapState,
    pub outcomes: VecDeque<BootstrapOutcome>,
}

impl Bootstrap {
    pub(crate) fn active(&self) -> bool {
        !matches!(self.state, BootstrapState::Idle)
    }

    pub(crate) fn owns(&self, id: RequestId) -> bool {
        matches!(self.state, BootstrapState::Requesting { request, .. } if request == id)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            BootstrapState::Idle => None,
            BootstrapState::Requesting { until, .. } | BootstrapState::InProgress { until } => {
                Some(until)
            }
        }
    }
}

type Answer = Result<Response, Code>;

impl<S: ObjectStore> Lwm2mClient<S> {
    /// Sends Bootstrap-Request (`POST /bs?ep={endpoint}`, with `pct` = the preferred format for
    /// 1.1) to the bootstrap server the I/O shell is connected to. The outcome arrives from
    /// [`poll_bootstrap`](Self::poll_bootstrap).
    pub fn bootstrap(&mut self, now: Instant) -> Result<(), ClientError> {
        if self.bootstrap.active() {
            return Err(ClientError::Busy);
        }
        self.last_now = Some(now);
        let mut request = Request::post()
            .with_path(["bs"])
            .with_query(format!("ep={}", self.settings.endpoint));
        if self.settings.version.is_1_1_or_later() {
            request =
                request.with_query(format!("pct={}", self.settings.preferred_format.to_u16()));
        }
        let request = self.coap.request(now, SERVER, request);
        self.bootstrap.state = BootstrapState::Requesting {
            request,
            until: now + BOOTSTRAP_IDLE_TIMEOUT,
        };
        self.after_input(now);
        Ok(())
    }

    /// Whether a bootstrap is under way.
    pub fn is_bootstrapping(&self) -> bool {
        self.bootstrap.active()
    }

    /// The next finished bootstrap (drain after every input while bootstrapping).
    pub fn poll_bootstrap(&mut self) -> Option<BootstrapOutcome> {
        self.bootstrap.outcomes.pop_front()
    }

    /// The answer to the Bootstrap-Request: 2.04 starts the sequence (TS Transport 1.1 §6.1).
    pub(crate) fn on_bootstrap_answer(
        &mut self,
        now: Instant,
        answer: Result<Response, FailureReason>,
    ) {
        match answer {
            Ok(r) if r.code == Code::CHANGED => {
                self.bootstrap.state = BootstrapState::InProgress {
                    until: now + BOOTSTRAP_IDLE_TIMEOUT,
                };
            }
            other => {
                self.bootstrap.state = BootstrapState::Idle;
                let reason = match other {
                    Ok(r) => RequestFailure::Rejected(r.code),
                    Err(reason) => RequestFailure::Transport(reason),
                };
                self.bootstrap
                    .outcomes
                    .push_back(BootstrapOutcome::Failed { reason });
            }
        }
    }

    /// Gives up when the bootstrap server went quiet.
    pub(crate) fn bootstrap_timers(&mut self, now: Instant) {
        if self.bootstrap.deadline().is_some_and(|at| now >= at) {
            self.bootstrap.state = BootstrapState::Idle;
            self.bootstrap.outcomes.push_back(BootstrapOutcome::Failed {
                reason: RequestFailure::Transport(FailureReason::Timeout),
            });
        }
    }

    /// Answers one operation of the bootstrap server.
    pub(crate) fn on_bootstrap_request(
        &mut self,
        now: Instant,
        request: Request,
        responder: Responder,
    ) {
        if let BootstrapState::InProgress { until } | BootstrapState::Requesting { until, .. } =
            &mut self.bootstrap.state
        {
            *until = now + BOOTSTRAP_IDLE_TIMEOUT;
        }
        let answer = self.bootstrap_dispatch(&request);
        let response = answer.unwrap_or_else(Response::new);
        let finished = request.method == Method::Post
            && request.path() == ["bs"]
            && response.code == Code::CHANGED;
        let _ = self.coap.respond(now, responder, response);
        if finished {
            self.finish_bootstrap();
        }
    }

    fn bootstrap_dispatch(&mut self, request: &Request) -> Answer {
        if request.method == Method::Post && request.path() == ["bs"] {
            // Bootstrap-Finish: acceptable only with a usable server account (TS Core 1.1
            // §6.1.7.6: otherwise 4.06 Not Acceptable).
            return match self.bootstrapped_account() {
                Some(_) => Ok(Response::new(Code::CHANGED)),
                None => Err(Code::NOT_ACCEPTABLE),
            };
        }
        let Ok(path) = Path::from_segments(&request.path()) else {
            return Err(Code::NOT_FOUND);
        };
        match request.method {
            Method::Get if request.accept() == Some(CoapFormat::LINK_FORMAT) => {
                self.bootstrap_discover(&path)
            }
            Method::Put => self.bootstrap_write(&path, request),
            Method::Delete => self.bootstrap_delete(&path),
            _ => Err(Code::METHOD_NOT_ALLOWED),
        }
    }

    fn security_instance(&self, id: u16) -> Option<ObjectInstance> {
        self.store.bootstrap_read_instance(0, id)
    }

    fn instances_of(&self, object: u16) -> Vec<u16> {
        self.store
            .objects()
            .into_iter()
            .find(|(o, _)| *o == object)
            .map(|(_, ids)| ids)
            .unwrap_or_default()
    }

    /// Bootstrap-Discover (TS Core 1.1 §6.1.7.1): on `/` the version and every object instance,
    /// Security instances with `ssid` (server accounts) and `uri`, Server instances with
    /// `ssid`; on `/o` that object. A 1.0 client lists the instances without attributes.
    fn bootstrap_discover(&self, path: &Path) -> Answer {
        let v11 = self.settings.version.is_1_1_or_later();
        let mut links = Vec::new();
        let objects = self.store.objects();
        let wanted: Vec<&(u16, Vec<u16>)> = match *path {
            Path::Root => {
                links.push(DiscoverLink {
                    path: Path::Root,
                    attributes: Attributes {
                        lwm2m: Some(self.settings.version.to_string()),
                        ..Attributes::default()
                    },
                });
                objects.iter().collect()
            }
            Path::Object(o) => {
                let found: Vec<_> = objects.iter().filter(|(id, _)| *id == o).collect();
                if found.is_empty() {
                    return Err(Code::NOT_FOUND);
                }
                found
            }
            _ => return Err(Code::BAD_REQUEST),
        };
        for (object, instances) in wanted {
            if instances.is_empty() {
                links.push(DiscoverLink {
                    path: Path::Object(*object),
                    attributes: Attributes::default(),
                });
            }
            for &i in instances {
                let mut attributes = Attributes::default();
                if v11 {
                    self.describe(*object, i, &mut attributes);
                }
                links.push(DiscoverLink {
                    path: Path::Instance(*object, i),
                    attributes,
                });
            }
        }
        Ok(Response::new(Code::CONTENT)
            .with_content_format(CoapFormat::LINK_FORMAT)
            .with_payload(encode_discover(&links)))
    }

    /// The `ssid` and `uri` attributes of a Security or Server instance.
    fn describe(&self, object: u16, instance: u16, attributes: &mut Attributes) {
        let ssid = |v: Option<Value>| match v {
            Some(Value::Integer(n)) => u16::try_from(n).ok(),
            Some(Value::UnsignedInteger(n)) => u16::try_from(n).ok(),
            _ => None,
        };
        match object {
            0 => {
                let Some(sec) = self.security_instance(instance) else {
                    return;
                };
                if let Some(Value::String(uri)) = sec.value(security::SERVER_URI).cloned() {
                    attributes.uri = Some(uri);
                }
                if !is_bootstrap_account(&sec) {
                    attributes.ssid = ssid(sec.value(security::SHORT_SERVER_ID).cloned());
                }
            }
            1 => {
                attributes.ssid = self
                    .store
                    .bootstrap_read_instance(1, instance)
                    .and_then(|srv| ssid(srv.value(server_object::SHORT_SERVER_ID).cloned()));
            }
            _ => {}
        }
    }

    /// Bootstrap-Write (TS Core 1.1 §6.1.7.4): `PUT` on an object, instance or resource,
    /// creating what does not exist.
    fn bootstrap_write(&mut self, path: &Path, request: &Request) -> Answer {
        if matches!(path, Path::Root | Path::ResourceInstance(..)) {
            return Err(Code::METHOD_NOT_ALLOWED);
        }
        let cf = request.content_format().ok_or(Code::BAD_REQUEST)?;
        let format = ContentFormat::from_u16(cf.0)
            .filter(|f| decodes(self.settings.version, *f))
            .ok_or(Code::UNSUPPORTED_CONTENT_FORMAT)?;
        let node = decode(format, path, &request.payload, self.settings.model)
            .map_err(|_| Code::BAD_REQUEST)?;
        self.store
            .bootstrap_write(path, node)
            .map_err(|e| e.code())?;
        Ok(Response::new(Code::CHANGED))
    }

    /// Bootstrap-Delete (TS Core 1.1 §6.1.7.5): `/`, `/o` or `/o/i`; the bootstrap account's
    /// Security instance and the Device object are never deleted.
    fn bootstrap_delete(&mut self, path: &Path) -> Answer {
        let targets: Vec<Path> = match *path {
            Path::Root => self
                .store
                .objects()
                .into_iter()
                .filter(|(o, _)| *o != 3)
                .flat_map(|(o, ids)| ids.into_iter().map(move |i| Path::Instance(o, i)))
                .collect(),
            Path::Object(o) => self
                .instances_of(o)
                .into_iter()
                .map(|i| Path::Instance(o, i))
                .collect(),
            Path::Instance(..) => vec![*path],
            _ => return Err(Code::BAD_REQUEST),
        };
        for target in targets {
            if let Path::Instance(0, i) = target
                && self
                    .security_instance(i)
                    .is_some_and(|s| is_bootstrap_account(&s))
            {
                continue;
            }
            match self.store.delete(&target) {
                // Deleting what is not there is not an error during bootstrap.
                Ok(()) | Err(super::StoreError::NotFound) => {}
                Err(e) => return Err(e.code()),
            }
        }
        Ok(Response::new(Code::DELETED))
    }

    /// The first LwM2M server account in the store (Security instance that is not the bootstrap
    /// account, with a Server instance of the same Short Server ID).
    fn bootstrapped_account(&self) -> Option<ServerAccount> {
        let servers: Vec<ObjectInstance> = self
            .instances_of(1)
            .into_iter()
            .filter_map(|i| self.store.bootstrap_read_instance(1, i))
            .collect();
        self.instances_of(0).into_iter().find_map(|i| {
            let sec = self.security_instance(i)?;
            servers
                .iter()
                .find_map(|srv| ServerAccount::from_instances(&sec, srv))
        })
    }

    fn finish_bootstrap(&mut self) {
        self.bootstrap.state = BootstrapState::Idle;
        let Some(account) = self.bootstrapped_account() else {
            return;
        };
        self.settings.lifetime = account.lifetime.max(1);
        if let Ok(binding) = crate::lwm2m::registration::Binding::parse(&account.binding) {
            self.settings.binding = binding;
        }
        self.bootstrap
            .outcomes
            .push_back(BootstrapOutcome::Finished { account });
    }
}
