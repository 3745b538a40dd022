//! Register, Update, De-register (OMA LwM2M TS Core 1.1 §6.2): the request the client sends,
//! the automatic Update timing, 4.04 → re-register, failures without hidden retries, lifetime
//! expiry, queue mode's wake window.

use std::time::Duration;

use lwm2m_objects::link::parse_registration;
use lwm2m_objects::{ObjectInstance, Resource, Value};

use super::*;
use crate::coap::{ContentFormat as CoapFormat, FailureReason, Method};
use crate::lwm2m::client::{ClientError, RegistrationOperation, RegistrationState, RequestFailure};
use crate::lwm2m::registration::{Binding, UpdateParams};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn register_1_1_sends_query_and_object_links() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    let request = h.register();
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.path(), ["rd"]);
    assert_eq!(
        request.query(),
        ["ep=meter-1", "lt=300", "lwm2m=1.1", "b=U"]
    );
    assert_eq!(request.content_format(), Some(CoapFormat::LINK_FORMAT));
    let text = String::from_utf8(request.payload.clone()).unwrap();
    assert!(
        text.starts_with("</>;rt=\"oma.lwm2m\";ct=\"110 112 11542\","),
        "{text}"
    );
    let links = parse_registration(&text).unwrap();
    assert_eq!(links.content_formats, [110, 112, 11542]);
    // The Security object is never listed (TS Core 1.1 §6.2.1).
    let objects: Vec<u16> = links.objects.keys().copied().collect();
    assert_eq!(objects, [1, 3, 4, 5, 10243]);
    assert_eq!(links.objects[&3].version.as_deref(), Some("1.2"));
    assert_eq!(links.objects[&4].version.as_deref(), Some("1.3"));
    assert_eq!(links.objects[&10243].version.as_deref(), Some("2.0"));
    assert!(links.objects[&10243].instances.contains(&0));
    assert_eq!(h.client.state(), RegistrationState::Registered);
    assert_eq!(h.client.location(), Some("rd/5a3f"));
}

#[test]
fn register_1_0_queue_mode_puts_q_in_the_binding() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_0).with_queue_mode());
    let request = h.register();
    assert_eq!(
        request.query(),
        ["ep=meter-1", "lt=300", "lwm2m=1.0", "b=UQ"]
    );
    let text = String::from_utf8(request.payload).unwrap();
    assert!(text.starts_with("</1>;ver=1.2,</1/0>,"), "{text}");
    let mut h = Harness::new(config(Lwm2mVersion::V1_1).with_queue_mode());
    let request = h.register();
    assert_eq!(
        request.query(),
        ["ep=meter-1", "lt=300", "lwm2m=1.1", "b=U", "Q"]
    );
}

#[test]
fn automatic_update_before_the_lifetime_runs_out() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.register();
    // lifetime 300 s: margin max(30, 10) = 30 s, so the Update goes out at 270 s.
    h.advance(secs(269));
    assert!(h.inbox.is_empty());
    let update = h.until_request(secs(5)).expect("an Update");
    assert_eq!(h.elapsed(), secs(270));
    assert_eq!(update.method, Method::Post);
    assert_eq!(update.path(), ["rd", "5a3f"]);
    assert!(update.query().is_empty());
    assert!(update.payload.is_empty(), "objects unchanged: no payload");
    h.answer(Response::new(Code::CHANGED));
    assert_eq!(h.take_events(), [ClientEvent::Updated]);
    // And again, indefinitely, every 270 s.
    h.advance(secs(269));
    let update = h.until_request(secs(2)).expect("a second Update");
    assert_eq!(update.path(), ["rd", "5a3f"]);
    assert_eq!(h.elapsed(), secs(540));
}

#[test]
fn margin_is_a_tenth_at_least_ten_seconds_at_most_half() {
    use crate::lwm2m::client::registration::renew_margin;
    assert_eq!(renew_margin(86_400), secs(8_640));
    assert_eq!(renew_margin(300), secs(30));
    assert_eq!(renew_margin(60), secs(10));
    assert_eq!(renew_margin(12), secs(6));
    assert_eq!(renew_margin(1), secs(0));
}

#[test]
fn update_answered_404_registers_again() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.register();
    h.until_request(secs(300)).expect("an Update");
    h.answer(Response::new(Code::NOT_FOUND));
    assert!(h.take_events().is_empty());
    assert_eq!(h.client.state(), RegistrationState::Registering);
    let register = h.inbox.front().map(|(r, _)| r.clone()).expect("a Register");
    assert_eq!(register.path(), ["rd"]);
    assert!(!register.payload.is_empty());
    h.answer(Response::new(Code::CREATED).with_location_path(["rd", "77"]));
    assert_eq!(
        h.take_events(),
        [ClientEvent::Registered {
            location: "rd/77".into()
        }]
    );
}

#[test]
fn update_failure_is_reported_once_then_the_lifetime_expires() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.register();
    h.until_request(secs(300)).expect("an Update");
    h.answer(Response::new(Code::BAD_REQUEST));
    assert_eq!(
        h.take_events(),
        [ClientEvent::RegistrationFailed {
            operation: RegistrationOperation::Update,
            reason: RequestFailure::Rejected(Code::BAD_REQUEST),
        }]
    );
    // No hidden retry: nothing more is sent until the lifetime ends at 300 s.
    let sent_before = h.sent.len();
    h.advance(secs(29));
    assert_eq!(h.sent.len(), sent_before);
    assert_eq!(h.client.state(), RegistrationState::Registered);
    h.advance(secs(1));
    assert_eq!(h.take_events(), [ClientEvent::RegistrationExpired]);
    assert_eq!(h.client.state(), RegistrationState::Unregistered);
    h.advance(secs(300));
    assert_eq!(h.client.poll_timeout(), None, "nothing left to do");
    assert!(h.inbox.is_empty());
}

#[test]
fn update_timeout_is_a_transport_failure() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1).with_lifetime(3600));
    h.register();
    h.drop_uplink = true;
    // The Update leaves at 3240 s, is retransmitted 4 times and times out after at most
    // MAX_TRANSMIT_WAIT (93 s).
    h.advance(secs(3240 + 93));
    let updates = h.sent.iter().filter(|(_, m)| m.code == Code::POST).count();
    assert_eq!(updates, 1 + 1 + 4, "register + update + 4 retransmissions");
    assert_eq!(
        h.take_events(),
        [ClientEvent::RegistrationFailed {
            operation: RegistrationOperation::Update,
            reason: RequestFailure::Transport(FailureReason::Timeout),
        }]
    );
    h.advance(secs(3600 - 3240 - 93));
    assert_eq!(h.take_events(), [ClientEvent::RegistrationExpired]);
}

#[test]
fn register_failures_leave_the_client_unregistered() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.client.register(h.now).unwrap();
    assert_eq!(h.client.register(h.now), Err(ClientError::Busy));
    h.pump();
    h.answer(Response::new(Code::FORBIDDEN));
    assert_eq!(
        h.take_events(),
        [ClientEvent::RegistrationFailed {
            operation: RegistrationOperation::Register,
            reason: RequestFailure::Rejected(Code::FORBIDDEN),
        }]
    );
    assert_eq!(h.client.state(), RegistrationState::Unregistered);
    // 2.01 without a Location-Path is no registration either.
    h.client.register(h.now).unwrap();
    h.pump();
    h.answer(Response::new(Code::CREATED));
    assert!(matches!(
        h.take_events().as_slice(),
        [ClientEvent::RegistrationFailed { .. }]
    ));
    // Timeout.
    h.drop_uplink = true;
    h.client.register(h.now).unwrap();
    h.advance(secs(100));
    assert_eq!(
        h.take_events(),
        [ClientEvent::RegistrationFailed {
            operation: RegistrationOperation::Register,
            reason: RequestFailure::Transport(FailureReason::Timeout),
        }]
    );
    assert_eq!(
        h.client.update(h.now, UpdateParams::default()),
        Err(ClientError::NotRegistered)
    );
    assert_eq!(h.client.deregister(h.now), Err(ClientError::NotRegistered));
}

#[test]
fn update_on_demand_changes_the_lifetime_and_binding() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.register();
    h.advance(secs(10));
    let params = UpdateParams {
        lifetime: Some(600),
        binding: Some(Binding {
            queue: true,
            ..Binding::UDP
        }),
        sms_number: None,
    };
    h.client.update(h.now, params).unwrap();
    h.pump();
    let update = h.answer(Response::new(Code::CHANGED));
    assert_eq!(update.query(), ["lt=600", "b=U"]);
    assert_eq!(h.client.lifetime(), 600);
    assert_eq!(h.take_events(), [ClientEvent::Updated]);
    // Counted from when the Update was sent (10 s): 10 + 600 − 60.
    h.advance(secs(539));
    assert!(h.inbox.is_empty());
    h.until_request(secs(2)).expect("the automatic Update");
    assert_eq!(h.elapsed(), secs(550));
}

#[test]
fn update_carries_the_links_when_objects_changed_and_queues_behind_one_in_flight() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.register();
    h.client.store_mut().insert_instance(
        3303,
        ObjectInstance::new(0, [Resource::single(5700, Value::Float(21.5))]),
    );
    h.client.update(h.now, UpdateParams::default()).unwrap();
    h.client
        .update(
            h.now,
            UpdateParams {
                lifetime: Some(400),
                ..UpdateParams::default()
            },
        )
        .unwrap();
    h.pump();
    assert_eq!(h.inbox.len(), 1, "the second Update waits for the first");
    let first = h.answer(Response::new(Code::CHANGED));
    let links = parse_registration(std::str::from_utf8(&first.payload).unwrap()).unwrap();
    assert!(links.objects[&3303].instances.contains(&0));
    let second = h.answer(Response::new(Code::CHANGED));
    assert_eq!(second.query(), ["lt=400"]);
    assert!(second.payload.is_empty(), "the server has the new links");
    assert_eq!(
        h.take_events(),
        [ClientEvent::Updated, ClientEvent::Updated]
    );
    assert_eq!(h.client.lifetime(), 400);
}

#[test]
fn deregister_deletes_the_registration() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.register();
    h.client.deregister(h.now).unwrap();
    assert_eq!(h.client.state(), RegistrationState::Deregistering);
    assert_eq!(h.client.register(h.now), Err(ClientError::Busy));
    h.pump();
    let delete = h.answer(Response::new(Code::DELETED));
    assert_eq!(delete.method, Method::Delete);
    assert_eq!(delete.path(), ["rd", "5a3f"]);
    assert_eq!(h.take_events(), [ClientEvent::Deregistered]);
    assert_eq!(h.client.state(), RegistrationState::Unregistered);
    // No Update is scheduled any more.
    h.advance(secs(1000));
    assert!(h.inbox.is_empty());
}

#[test]
fn queue_mode_client_sleeps_after_the_awake_window() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1).with_queue_mode());
    assert!(!h.client.is_awake(h.now), "nothing sent yet");
    h.register();
    // The Register went out at 0 s: awake until 93 s (MAX_TRANSMIT_WAIT).
    assert_eq!(h.client.awake_until(), Some(h.start + secs(93)));
    assert!(h.client.is_awake(h.now));
    h.advance(secs(93));
    assert!(!h.client.is_awake(h.now));
    // The automatic Update wakes it again.
    h.until_request(secs(300)).expect("an Update");
    assert!(h.client.is_awake(h.now));
    assert_eq!(h.client.awake_until(), Some(h.start + secs(270 + 93)));
    // Without queue mode the client is always awake.
    let h = Harness::new(config(Lwm2mVersion::V1_1));
    assert!(h.client.is_awake(h.now));
}
