//! Scenario tests of [`CoapEndpoint`]: a client/server pair on a virtual clock over a lossy link
//! (see `coap::testing`), plus raw-datagram tables for the malformed-input rules of RFC 7252.
//! One file per concern; shared helpers here.

mod blockwise;
mod malformed;
mod observe;
mod reliability;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use super::*;
use crate::coap::testing::ClientLog;

/// Requests the test server application saw.
pub(super) type RequestLog = Rc<RefCell<Vec<Request>>>;

pub(super) fn cfg() -> CoapConfig {
    CoapConfig::default()
}

/// A server application that answers every request at once with 2.05 and `body(request)`.
pub(super) fn echo_app(
    body: impl Fn(&Request) -> Vec<u8> + 'static,
) -> (impl FnMut(&mut CoapEndpoint, Instant, Event), RequestLog) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let app = move |ep: &mut CoapEndpoint, now: Instant, e: Event| {
        if let Event::Request {
            request, responder, ..
        } = e
        {
            let payload = body(&request);
            log.borrow_mut().push(request);
            let r = Response::new(Code::CONTENT).with_payload(payload);
            ep.respond(now, responder, r).expect("pending");
        }
    };
    (app, seen)
}

pub(super) fn responses(events: &ClientLog) -> Vec<(RequestId, &Response)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Response { id, response } => Some((*id, response)),
            _ => None,
        })
        .collect()
}

pub(super) fn count_final(events: &ClientLog) -> usize {
    events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { .. } | Event::RequestFailed { .. }))
        .count()
}

pub(super) fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}
