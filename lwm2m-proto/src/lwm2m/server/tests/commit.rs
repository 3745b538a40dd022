//! Acknowledged means durable (`commit.rs`): with `persist_before_answer` set, Register, Update and
//! De-register take effect and are answered only after the application's commit; retransmissions
//! meanwhile are absorbed; a failed or missing commit is answered 5.03 and changes nothing.

use super::*;

const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

fn durable_net() -> Net {
    Net::new(ServerConfig {
        persist_before_answer: Some(COMMIT_TIMEOUT),
        ..config()
    })
}

/// The PersistChange events among `events`.
fn staged(events: &[ServerEvent]) -> Vec<(CommitTicket, Change)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::PersistChange { ticket, change } => Some((*ticket, change.clone())),
            _ => None,
        })
        .collect()
}

/// The device's final responses so far.
fn responses(net: &Net, dev: usize) -> Vec<Response> {
    net.devices[dev]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => Some(response.clone()),
            _ => None,
        })
        .collect()
}

/// Sends a Register for `ep`, accepts it and returns the staged commit (nothing answered yet).
fn accept_staged(net: &mut Net, dev: usize, ep: &str) -> (RequestId, CommitTicket, Registration) {
    let ep_arg = format!("ep={ep}");
    let req = net.register_request(dev, &[&ep_arg, "lt=300", "lwm2m=1.1"], METER_LINKS);
    let ticket = net
        .take_events()
        .into_iter()
        .find_map(|e| match e {
            ServerEvent::RegistrationRequest { ticket, .. } => Some(ticket),
            _ => None,
        })
        .expect("a RegistrationRequest");
    let id = net
        .server
        .accept_registration(net.now, ticket)
        .expect("accepted");
    net.flush();
    let events = net.take_events();
    let changes = staged(&events);
    let [(commit, Change::Register { registration, .. })] = changes.as_slice() else {
        panic!("expected one staged Register, got {events:?}");
    };
    assert_eq!(registration.id, id);
    (req, *commit, registration.clone())
}

/// Registers `ep` through a commit; returns the registration.
fn register_durably(net: &mut Net, dev: usize, ep: &str) -> Registration {
    let (req, commit, registration) = accept_staged(net, dev, ep);
    net.server
        .commit_succeeded(net.now, commit)
        .expect("staged");
    net.flush();
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::CREATED));
    net.devices[dev].location = Some(registration.id.to_string());
    net.take_events();
    registration
}

#[test]
fn a_register_is_answered_and_visible_only_after_its_commit() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    let (req, commit, registration) = accept_staged(&mut net, dev, "meter-d1");
    // Staged: not visible, not answered, not counted as registered.
    assert!(net.server.registration("meter-d1").is_none());
    assert_eq!(net.server.stats().registrations, 0);
    assert_eq!(net.server.stats().pending_commits, 1);
    // The store is slow: the CoAP layer acknowledges the request (RFC 7252 §5.2.2), the device
    // neither retransmits nor gets an answer.
    net.advance(Duration::from_secs(10));
    assert!(net.response(dev, req).is_none());
    assert!(net.server.registration("meter-d1").is_none());
    assert!(net.take_events().is_empty());

    net.server
        .commit_succeeded(net.now, commit)
        .expect("staged");
    net.flush();
    // A separate 2.01 with the staged ID's location.
    let response = net.response(dev, req).expect("2.01").clone();
    assert_eq!(response.code, Code::CREATED);
    assert_eq!(
        response.location_path(),
        ["rd".to_string(), registration.id.to_string()]
    );
    let events = net.take_events();
    let [
        ServerEvent::Registered {
            registration: r,
            replaced: None,
        },
    ] = events.as_slice()
    else {
        panic!("expected Registered, got {events:?}");
    };
    assert_eq!(*r, registration);
    assert_eq!(net.server.registration("meter-d1"), Some(&registration));
    assert_eq!(net.server.stats().pending_commits, 0);
    // The ticket is used up.
    assert_eq!(
        net.server.commit_succeeded(net.now, commit),
        Err(CommitError::UnknownTicket)
    );
}

#[test]
fn retransmissions_of_a_register_waiting_for_its_commit_are_not_processed_again() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    let now = net.now;
    let server_addr = net.server_addr;
    let register = Request::post()
        .with_path(["rd"])
        .with_query("ep=meter-dup")
        .with_query("lwm2m=1.1")
        .with_content_format(ContentFormat::LINK_FORMAT)
        .with_payload(METER_LINKS);
    let req = net.devices[dev].coap.request(now, server_addr, register);
    let bytes = net.devices[dev]
        .coap
        .poll_transmit()
        .expect("the Register")
        .bytes;
    let addr = net.devices[dev].addr;
    // The datagram arrives twice (duplicated by the network) before any answer.
    for _ in 0..2 {
        net.server
            .handle_datagram(now, addr, PeerAuth::NoSec, &bytes);
    }
    net.flush();
    let tickets: Vec<_> = net
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::RegistrationRequest { ticket, .. } => Some(ticket),
            _ => None,
        })
        .collect();
    assert_eq!(tickets.len(), 1, "one Register processed");
    net.server
        .accept_registration(net.now, tickets[0])
        .expect("accepted");
    net.flush();
    let (commit, _) = staged(&net.take_events()).pop().expect("staged");
    // The Empty ACK is lost: the device retransmits its CON (ACK_TIMEOUT 2–3 s), and the
    // server answers the copy with its Empty ACK again, without a new request or change.
    net.drop_to_devices = 1;
    net.advance(Duration::from_secs(8));
    // A late copy of the original datagram, after the Empty ACK went out: replayed ACK only.
    net.server
        .handle_datagram(net.now, addr, PeerAuth::NoSec, &bytes);
    net.flush();
    assert!(
        net.take_events().is_empty(),
        "duplicates raised no new request or change"
    );
    assert!(net.response(dev, req).is_none());
    assert_eq!(net.server.stats().pending_registrations, 0);
    assert_eq!(net.server.stats().pending_commits, 1);

    net.server
        .commit_succeeded(net.now, commit)
        .expect("staged");
    net.advance(Duration::from_secs(5));
    // One answer, as a separate response the device acknowledged (no retransmission of it is
    // left on the server), and one registration.
    let answers = responses(&net, dev);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].code, Code::CREATED);
    assert_eq!(net.server.stats().coap.sent_messages, 0);
    let registered = net
        .take_events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::Registered { .. }))
        .count();
    assert_eq!(registered, 1);
    assert_eq!(net.server.stats().registrations, 1);
}

#[test]
fn a_failed_commit_is_answered_5_03_and_keeps_the_previous_registration() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    let first = register_durably(&mut net, dev, "meter-f");
    // The device reboots and registers again; the store write fails.
    let (req, commit, second) = accept_staged(&mut net, dev, "meter-f");
    assert_ne!(first.id, second.id);
    net.server.commit_failed(net.now, commit).expect("staged");
    net.flush();
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::SERVICE_UNAVAILABLE)
    );
    assert!(net.take_events().is_empty(), "nothing happened");
    assert_eq!(net.server.registration("meter-f"), Some(&first));
    assert_eq!(net.server.stats().pending_commits, 0);
}

#[test]
fn a_commit_that_never_comes_is_answered_5_03_and_reported() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    let (req, commit, registration) = accept_staged(&mut net, dev, "meter-t");
    net.advance(COMMIT_TIMEOUT - Duration::from_secs(1));
    assert!(net.response(dev, req).is_none());
    net.advance(Duration::from_secs(2));
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::SERVICE_UNAVAILABLE)
    );
    let events = net.take_events();
    let [
        ServerEvent::CommitTimedOut {
            ticket,
            change:
                Change::Register {
                    registration: r,
                    reboot: false,
                },
        },
    ] = events.as_slice()
    else {
        panic!("expected CommitTimedOut, got {events:?}");
    };
    assert_eq!((*ticket, r), (commit, &registration));
    assert!(net.server.registration("meter-t").is_none());
    // A commit after the timeout changes nothing.
    assert_eq!(
        net.server.commit_succeeded(net.now, commit),
        Err(CommitError::UnknownTicket)
    );
    assert!(net.server.registration("meter-t").is_none());
    assert_eq!(net.server.stats().pending_commits, 0);
    assert_eq!(net.server.stats().timers, 0);
}

#[test]
fn updates_apply_after_their_commit_and_stack_in_order() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    let registered = register_durably(&mut net, dev, "meter-u");
    net.advance(Duration::from_secs(60));
    let req = net.update(dev, &["lt=900"], "");
    let events = net.take_events();
    let changes = staged(&events);
    let [
        (
            commit,
            Change::Update {
                registration,
                previous,
            },
        ),
    ] = changes.as_slice()
    else {
        panic!("expected a staged Update, got {events:?}");
    };
    assert_eq!(*previous, registered);
    assert_eq!(registration.lifetime, 900);
    assert_eq!(registration.last_update, net.now);
    // Not applied yet.
    assert_eq!(
        net.server.registration("meter-u").map(|r| r.lifetime),
        Some(300)
    );
    // A second Update meanwhile (a new message; from another port, since the device's own CoAP
    // endpoint keeps to NSTART 1) is staged on top of the first one.
    let other = net.device(PeerAuth::NoSec);
    net.devices[other].location = net.devices[dev].location.clone();
    let second = net.update(other, &["b=UQ"], "");
    let changes = staged(&net.take_events());
    let [
        (
            commit_2,
            Change::Update {
                registration: stacked,
                previous: base,
            },
        ),
    ] = changes.as_slice()
    else {
        panic!("expected a second staged Update, got {changes:?}");
    };
    assert_eq!(base, registration, "built on the first Update");
    assert_eq!((stacked.lifetime, stacked.binding.queue), (900, true));

    net.server
        .commit_succeeded(net.now, *commit)
        .expect("staged");
    net.server
        .commit_succeeded(net.now, *commit_2)
        .expect("staged");
    net.flush();
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::CHANGED));
    assert_eq!(
        net.response(other, second).map(|r| r.code),
        Some(Code::CHANGED)
    );
    let updated = net
        .take_events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::Updated { .. }))
        .count();
    assert_eq!(updated, 2);
    let now = net.server.registration("meter-u").expect("registered");
    assert_eq!((now.lifetime, now.binding.queue), (900, true));
    // The lifetime runs from the commit: still registered 900 s later minus a little.
    net.advance(Duration::from_secs(890));
    assert!(net.server.registration("meter-u").is_some());
}

#[test]
fn a_deregister_may_follow_a_staged_update_but_nothing_may_follow_a_staged_deregister() {
    // Wakaama sends its De-register ("quit") while its Update may still be unanswered.
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    register_durably(&mut net, dev, "meter-q");
    let update = net.update(dev, &["lt=900"], "");
    let location = net.devices[dev].location.clone().expect("registered");
    let other = net.device(PeerAuth::NoSec);
    let delete = net.send(
        other,
        Request::delete().with_path(["rd", location.as_str()]),
    );
    let changes = staged(&net.take_events());
    assert!(
        matches!(
            changes.as_slice(),
            [(_, Change::Update { .. }), (_, Change::Deregister { .. })]
        ),
        "{changes:?}"
    );
    // Behind a staged De-register, an Update could bring the deleted row back: 5.03.
    let third = net.device(PeerAuth::NoSec);
    net.devices[third].location = Some(location.clone());
    let late = net.update(third, &[], "");
    assert_eq!(
        net.response(third, late).map(|r| r.code),
        Some(Code::SERVICE_UNAVAILABLE)
    );
    assert_eq!(
        refused(&net.take_events()),
        [(Code::SERVICE_UNAVAILABLE, RefusalReason::ChangePending)]
    );
    for (ticket, _) in changes {
        net.server
            .commit_succeeded(net.now, ticket)
            .expect("staged");
    }
    net.flush();
    assert_eq!(
        net.response(dev, update).map(|r| r.code),
        Some(Code::CHANGED)
    );
    assert_eq!(
        net.response(other, delete).map(|r| r.code),
        Some(Code::DELETED)
    );
    assert!(net.server.registration("meter-q").is_none());
}

#[test]
fn a_commit_timeout_gives_up_the_endpoints_later_changes_too() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    let registered = register_durably(&mut net, dev, "meter-z");
    let first = net.update(dev, &["lt=900"], "");
    let other = net.device(PeerAuth::NoSec);
    net.devices[other].location = net.devices[dev].location.clone();
    net.advance(Duration::from_secs(10));
    let second = net.update(other, &["lt=1200"], "");
    assert_eq!(staged(&net.take_events()).len(), 2);
    // The first one's commit never comes: both are answered 5.03 when it times out.
    net.advance(COMMIT_TIMEOUT - Duration::from_secs(9));
    for (d, req) in [(dev, first), (other, second)] {
        assert_eq!(
            net.response(d, req).map(|r| r.code),
            Some(Code::SERVICE_UNAVAILABLE)
        );
    }
    let timed_out = net
        .take_events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::CommitTimedOut { .. }))
        .count();
    assert_eq!(timed_out, 2);
    assert_eq!(net.server.registration("meter-z"), Some(&registered));
    assert_eq!(net.server.stats().pending_commits, 0);
}

#[test]
fn an_update_whose_registration_expired_while_it_was_persisted_gets_4_04() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    register_durably(&mut net, dev, "meter-x");
    // The Update comes at the very end of the lifetime (300 s + 30 s grace).
    net.advance(Duration::from_secs(329));
    let req = net.update(dev, &[], "");
    let (commit, _) = staged(&net.take_events()).pop().expect("staged");
    net.advance(Duration::from_secs(2));
    assert!(matches!(
        net.take_events().as_slice(),
        [ServerEvent::Expired { .. }]
    ));
    net.server
        .commit_succeeded(net.now, commit)
        .expect("staged");
    net.flush();
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::NOT_FOUND)
    );
    assert!(net.server.registration("meter-x").is_none());
}

#[test]
fn a_deregister_ends_the_registration_after_its_commit() {
    let mut net = durable_net();
    let dev = net.device(PeerAuth::NoSec);
    let registered = register_durably(&mut net, dev, "meter-g");
    let location = net.devices[dev].location.clone().expect("registered");
    let req = net.send(dev, Request::delete().with_path(["rd", location.as_str()]));
    let events = net.take_events();
    let changes = staged(&events);
    let [(commit, Change::Deregister { registration })] = changes.as_slice() else {
        panic!("expected a staged De-register, got {events:?}");
    };
    assert_eq!(*registration, registered);
    assert!(net.server.registration("meter-g").is_some());
    net.server
        .commit_succeeded(net.now, *commit)
        .expect("staged");
    net.flush();
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::DELETED));
    assert!(matches!(
        net.take_events().as_slice(),
        [ServerEvent::Deregistered { .. }]
    ));
    assert!(net.server.registration("meter-g").is_none());
}

#[test]
fn registers_staged_back_to_back_apply_in_commit_order() {
    let mut net = durable_net();
    let a = net.device(PeerAuth::NoSec);
    let b = net.device(PeerAuth::NoSec);
    // The same endpoint registers from two addresses before either is committed.
    let (req_a, commit_a, first) = accept_staged(&mut net, a, "meter-2x");
    let (req_b, commit_b, second) = accept_staged(&mut net, b, "meter-2x");
    assert_ne!(first.id, second.id);
    net.server.commit_succeeded(net.now, commit_a).expect("a");
    net.server.commit_succeeded(net.now, commit_b).expect("b");
    net.flush();
    assert_eq!(net.response(a, req_a).map(|r| r.code), Some(Code::CREATED));
    assert_eq!(net.response(b, req_b).map(|r| r.code), Some(Code::CREATED));
    let replaced: Vec<_> = net
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Registered {
                registration,
                replaced,
            } => Some((registration.id, replaced.map(|r| r.id))),
            _ => None,
        })
        .collect();
    assert_eq!(replaced, [(first.id, None), (second.id, Some(first.id))]);
    assert_eq!(net.server.registration("meter-2x"), Some(&second));
    assert_eq!(net.server.stats().registrations, 1);
}

#[test]
fn without_the_setting_changes_apply_at_once() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::NoSec);
    let reg = net.register(dev, &["ep=meter-now", "lwm2m=1.1"], METER_LINKS);
    assert!(staged(&net.events).is_empty());
    assert_eq!(net.server.registration("meter-now"), Some(&reg));
}

#[test]
fn staged_registers_count_against_the_registration_cap() {
    let mut net = Net::new(ServerConfig {
        persist_before_answer: Some(COMMIT_TIMEOUT),
        max_registrations: 1,
        ..config()
    });
    let a = net.device(PeerAuth::NoSec);
    let b = net.device(PeerAuth::NoSec);
    let (_, commit, _) = accept_staged(&mut net, a, "meter-cap-a");
    // A is not registered yet, but will be: B would exceed the cap.
    let req = net.register_request(b, &["ep=meter-cap-b"], METER_LINKS);
    assert_eq!(
        net.response(b, req).map(|r| r.code),
        Some(Code::SERVICE_UNAVAILABLE)
    );
    assert_eq!(
        refused(&net.take_events()),
        [(
            Code::SERVICE_UNAVAILABLE,
            RefusalReason::TooManyRegistrations
        )]
    );
    // A's reboot (from a new port: its first Register is still unanswered) is not a new
    // registration.
    let a2 = net.device(PeerAuth::NoSec);
    let (_, again, _) = accept_staged(&mut net, a2, "meter-cap-a");
    net.server.commit_succeeded(net.now, commit).expect("a");
    net.server
        .commit_succeeded(net.now, again)
        .expect("a again");
    assert_eq!(net.server.stats().registrations, 1);
}
