//! The clients' Send (`POST /dp`, OMA LwM2M TS Core 1.1 §6.4.6): SenML records pushed by a
//! registered client (metering data, buffered readings with their times).

use std::net::SocketAddr;
use std::time::Instant;

use lwm2m_objects::{ContentFormat as Format, ObjectModel, Path, codec};

use super::Lwm2mServer;
use super::events::{SendRefusal, ServerEvent};
use super::registrations::PeerAuth;
use crate::coap::{Code, Request, Responder, Response};

impl Lwm2mServer {
    /// Send (TS Core 1.1 §6.4.6): SenML records from a registered client, answered 2.04. Refusals
    /// follow TS Transport 1.1 Table 6.7-4 — 4.04 "Reported Object was not registered to the
    /// LwM2M Server", which is also the answer to a sender with no registration at all (as
    /// Wakaama does), and 4.00 for anything undecodable — plus 4.03 for a registered address
    /// speaking with another identity.
    pub(super) fn on_send(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        auth: &PeerAuth,
        request: &Request,
        responder: Responder,
    ) {
        let refuse = |server: &mut Lwm2mServer, responder, endpoint, code, reason| {
            server.answer(now, responder, Response::new(code));
            server.events.push_back(ServerEvent::SendRefused {
                peer,
                endpoint,
                code,
                reason,
            });
        };
        let Some(&id) = self.by_peer.get(&peer) else {
            return refuse(
                self,
                responder,
                None,
                Code::NOT_FOUND,
                SendRefusal::NotRegistered,
            );
        };
        let Some(state) = self.registrations.get(&id) else {
            return refuse(
                self,
                responder,
                None,
                Code::NOT_FOUND,
                SendRefusal::NotRegistered,
            );
        };
        let endpoint = state.reg.endpoint.clone();
        if state.reg.auth != *auth {
            let reason = SendRefusal::IdentityMismatch;
            return refuse(self, responder, Some(endpoint), Code::FORBIDDEN, reason);
        }
        let cf = request.content_format().map(|cf| cf.0);
        let Some(format) = cf
            .and_then(Format::from_u16)
            .filter(|f| matches!(f, Format::SenmlJson | Format::SenmlCbor | Format::Lwm2mCbor))
        else {
            let reason = SendRefusal::UnsupportedContentFormat(cf);
            return refuse(self, responder, Some(endpoint), Code::BAD_REQUEST, reason);
        };
        let model = ObjectModel::builtin();
        let records = match codec::decode_records(format, &Path::Root, &request.payload, model) {
            Ok(records) => records,
            Err(e) => {
                let reason = SendRefusal::DecodeFailed(e);
                return refuse(self, responder, Some(endpoint), Code::BAD_REQUEST, reason);
            }
        };
        let unregistered = self.registrations.get(&id).and_then(|state| {
            let objects = &state.reg.objects;
            records
                .iter()
                .find(|r| match (r.path.object_id(), r.path.instance_id()) {
                    (Some(o), Some(i)) => !objects.has_instance(o, i),
                    (Some(o), None) => !objects.has_object(o),
                    _ => false,
                })
                .map(|r| r.path)
        });
        if let Some(path) = unregistered {
            let reason = SendRefusal::InstanceNotRegistered(path);
            return refuse(self, responder, Some(endpoint), Code::NOT_FOUND, reason);
        }
        self.answer(now, responder, Response::new(Code::CHANGED));
        self.events.push_back(ServerEvent::Send {
            endpoint,
            registration: id,
            records,
        });
        self.client_spoke(now, id);
    }
}
