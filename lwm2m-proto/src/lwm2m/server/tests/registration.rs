//! The Client Registration interface (TS Core 1.1 §6.2): Register with the application's verdict,
//! refusals, Update (lifetime, binding, objects, NAT rebinding), De-register, lifetime expiry,
//! reboot, restore after restart, caps.

use super::*;
use crate::lwm2m::registration::{Binding, Lwm2mVersion, RegistrationError};

#[test]
fn register_1_0_and_1_1_clients_with_their_params_and_links() {
    let mut net = Net::new(config());
    let old = net.device(PeerAuth::NoSec);
    let new = net.device(PeerAuth::Psk {
        identity: "psk-meter-2".into(),
    });
    net.register_request(old, &["ep=meter-1", "lt=120", "b=UQ"], METER_LINKS_1_0);
    let events = net.take_events();
    let [
        ServerEvent::RegistrationRequest {
            ticket,
            peer,
            auth,
            params,
            links,
        },
    ] = events.as_slice()
    else {
        panic!("expected one RegistrationRequest, got {events:?}");
    };
    assert_eq!(*peer, net.devices[old].addr);
    assert_eq!(*auth, PeerAuth::NoSec);
    assert_eq!(params.endpoint, "meter-1");
    assert_eq!(params.version, Lwm2mVersion::V1_0);
    assert_eq!(params.lifetime, 120);
    assert!(params.binding.queue);
    assert_eq!(
        links.objects.keys().copied().collect::<Vec<_>>(),
        [1, 3, 4, 5, 10243]
    );
    let ticket = *ticket;
    // Nothing is answered until the application decides; the CoAP layer ACKs meanwhile.
    net.advance(Duration::from_secs(5));
    assert!(net.devices[old].events.is_empty());
    let id = net
        .server
        .accept_registration(net.now, ticket)
        .expect("accepted");
    net.flush();
    let registered = net.take_events();
    let [
        ServerEvent::Registered {
            registration,
            replaced: None,
        },
    ] = registered.as_slice()
    else {
        panic!("expected Registered, got {registered:?}");
    };
    assert_eq!(registration.id, id);
    assert_eq!(registration.endpoint, "meter-1");
    assert!(registration.objects.has_instance(10243, 0));
    // A separate 2.01 with the location reached the device.
    let response = net.devices[old]
        .events
        .iter()
        .find_map(|e| match e {
            Event::Response { response, .. } => Some(response),
            _ => None,
        })
        .expect("2.01");
    assert_eq!(response.code, Code::CREATED);
    assert_eq!(response.location_path(), ["rd".to_string(), id.to_string()]);
    assert_eq!(id.to_string().len(), 8);

    let reg = net.register(new, &["ep=meter-2", "lwm2m=1.1", "b=U"], METER_LINKS);
    assert_eq!(reg.version, Lwm2mVersion::V1_1);
    assert_eq!(reg.lifetime, 86_400, "TS Core 1.1 Table 6.2.1-1 default");
    assert_eq!(
        reg.auth,
        PeerAuth::Psk {
            identity: "psk-meter-2".into()
        }
    );
    assert_eq!(reg.objects.content_formats(), [60, 110, 112, 11542]);
    assert_ne!(reg.id, id);
    assert_eq!(net.server.stats().registrations, 2);
    assert_eq!(net.server.registration("meter-1").map(|r| r.id), Some(id));
}

#[test]
fn the_application_can_refuse_a_register() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::Psk {
        identity: "someone-else".into(),
    });
    let req = net.register_request(dev, &["ep=meter-1"], METER_LINKS_1_0);
    let ticket = match net.take_events().pop() {
        Some(ServerEvent::RegistrationRequest { ticket, .. }) => ticket,
        other => panic!("{other:?}"),
    };
    net.server
        .reject_registration(net.now, ticket, Rejection::Forbidden)
        .expect("pending");
    net.flush();
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::FORBIDDEN)
    );
    assert_eq!(net.server.stats().registrations, 0);
    // The ticket is used up.
    assert_eq!(
        net.server.accept_registration(net.now, ticket),
        Err(TicketError::UnknownTicket)
    );
}

#[test]
fn bad_parameters_and_payloads_are_refused_without_asking_the_application() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::NoSec);
    // Unsupported version: 4.12 (TS Core 1.1 Table 6.2.1-1), only a diagnostic event.
    let req = net.register_request(dev, &["ep=meter-9", "lwm2m=2.0"], METER_LINKS);
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::PRECONDITION_FAILED)
    );
    let events = net.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    let ServerEvent::RegistrationRefused {
        endpoint, reason, ..
    } = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!(endpoint.as_deref(), Some("meter-9"));
    assert_eq!(
        *reason,
        RefusalReason::InvalidParameters(RegistrationError::UnsupportedVersion("2.0".into()))
    );
    // Missing ep, bad lifetime, bad binding: 4.00.
    for query in [&["lt=60"][..], &["ep=m", "lt=0"], &["ep=m", "b=X"]] {
        let req = net.register_request(dev, query, METER_LINKS);
        assert_eq!(
            net.response(dev, req).map(|r| r.code),
            Some(Code::BAD_REQUEST),
            "{query:?}"
        );
    }
    // Broken link format: 4.00.
    let req = net.register_request(dev, &["ep=m"], "</3/0>,<");
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::BAD_REQUEST)
    );
    let refusals = refused(&net.take_events());
    assert_eq!(refusals.len(), 4);
    assert!(refusals.iter().all(|(code, _)| *code == Code::BAD_REQUEST));
    assert!(matches!(refusals[3].1, RefusalReason::InvalidLinks(_)));
    // Wrong method on /rd, unknown resource.
    let req = net.send(dev, Request::get().with_path(["rd"]));
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::METHOD_NOT_ALLOWED)
    );
    let req = net.send(dev, Request::post().with_path(["bs"]));
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::NOT_FOUND)
    );
    assert_eq!(net.server.stats().registrations, 0);
    assert_eq!(net.server.stats().pending_registrations, 0);
}

#[test]
fn update_changes_lifetime_binding_objects_and_follows_a_new_address() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "meter-1");
    net.advance(Duration::from_secs(100));
    // NAT rebinding: the same device now comes from another port.
    let old_addr = net.devices[dev].addr;
    let new_addr = SocketAddr::from(([10, 0, 9, 9], 50_001));
    net.devices[dev].addr = new_addr;
    let req = net.update(
        dev,
        &["lt=600", "b=U"],
        "</1/0>,</3/0>,</10243/0>,</10243/1>",
    );
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::CHANGED));
    let events = net.take_events();
    let [
        ServerEvent::Updated {
            registration,
            previous,
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}");
    };
    assert_eq!(previous, &reg);
    assert_eq!(registration.id, reg.id);
    assert_eq!(registration.lifetime, 600);
    assert_eq!(previous.peer, old_addr);
    assert_eq!(registration.peer, new_addr);
    assert!(registration.objects.has_instance(10243, 1));
    assert!(!registration.objects.has_object(4));
    assert_eq!(registration.last_update, net.now);
    assert_eq!(registration.binding, Binding::UDP);
    // Requests now go to the new address.
    let op = net
        .server
        .request(net.now, "meter-1", Operation::Read(Path::Resource(3, 0, 9)))
        .expect("sent");
    net.flush();
    let (request, responder) = net.next_request(dev);
    assert_eq!(request.path(), ["3", "0", "9"]);
    let node = Node::Resource(Resource::single(9, Value::Integer(55)));
    net.reply(
        dev,
        responder,
        content(Format::SenmlCbor, Path::Resource(3, 0, 9), &node),
    );
    assert!(matches!(
        net.outcome(op),
        OpOutcome::Content(Content::Node { .. })
    ));
}

#[test]
fn update_for_an_unknown_id_is_4_04_and_another_identity_is_4_03() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "meter-1");
    let req = net.send(dev, Request::post().with_path(["rd", "zzzzzzzz"]));
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::NOT_FOUND)
    );
    assert_eq!(
        refused(&net.take_events()),
        [(Code::NOT_FOUND, RefusalReason::UnknownRegistration)]
    );
    // Another device (another PSK identity) names meter-1's registration.
    let intruder = net.device(PeerAuth::Psk {
        identity: "id-meter-666".into(),
    });
    let location = reg.id.to_string();
    for request in [
        Request::post()
            .with_path(["rd", location.as_str()])
            .with_query("lt=10"),
        Request::delete().with_path(["rd", location.as_str()]),
    ] {
        let req = net.send(intruder, request);
        assert_eq!(
            net.response(intruder, req).map(|r| r.code),
            Some(Code::FORBIDDEN)
        );
    }
    let refusals = refused(&net.take_events());
    assert_eq!(
        refusals,
        vec![
            (
                Code::FORBIDDEN,
                RefusalReason::IdentityMismatch {
                    registration: reg.id
                }
            );
            2
        ]
    );
    assert_eq!(net.server.registration("meter-1"), Some(&reg));
    // A bad Update parameter: 4.00, registration unchanged.
    let req = net.update(dev, &["lt=abc"], "");
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::BAD_REQUEST)
    );
    assert_eq!(net.server.registration("meter-1"), Some(&reg));
}

#[test]
fn deregister_removes_the_registration() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "meter-1");
    let location = reg.id.to_string();
    let req = net.send(dev, Request::delete().with_path(["rd", location.as_str()]));
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::DELETED));
    assert_eq!(
        net.take_events(),
        [ServerEvent::Deregistered { registration: reg }]
    );
    assert!(net.server.registration("meter-1").is_none());
    // Again: the ID is gone.
    let req = net.send(dev, Request::delete().with_path(["rd", location.as_str()]));
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::NOT_FOUND)
    );
    assert_eq!(net.server.stats().timers, 0);
}

#[test]
fn a_registration_without_update_expires_after_lifetime_and_grace() {
    let mut cfg = config();
    cfg.lifetime_grace = Duration::from_secs(10);
    let mut net = Net::new(cfg);
    let (dev, reg) = registered_meter(&mut net, "meter-1"); // lt=300
    // An Update at 250 s postpones the end to 250 + 300 + 10.
    net.advance(Duration::from_secs(250));
    net.update(dev, &[], "");
    net.take_events();
    net.advance(Duration::from_secs(305));
    assert!(net.take_events().is_empty());
    assert!(net.server.registration("meter-1").is_some());
    net.advance(Duration::from_secs(10));
    let events = net.take_events();
    let [ServerEvent::Expired { registration }] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(registration.id, reg.id);
    assert_eq!(net.now - net.start, Duration::from_secs(565));
    assert!(net.server.registration("meter-1").is_none());
    // Its late Update is 4.04: the client registers again.
    let req = net.update(dev, &[], "");
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::NOT_FOUND)
    );
}

#[test]
fn a_second_register_is_a_reboot_that_replaces_the_first() {
    let mut net = Net::new(config());
    let (dev, first) = registered_meter(&mut net, "meter-1");
    let observe = net
        .server
        .request(
            net.now,
            "meter-1",
            Operation::Observe(Path::Resource(3, 0, 9)),
        )
        .expect("sent");
    net.flush();
    let node = Node::Resource(Resource::single(9, Value::Integer(80)));
    net.serve(dev, |_| {
        content(Format::SenmlCbor, Path::Resource(3, 0, 9), &node).with_observe(1)
    });
    let OpOutcome::Observing { observation, .. } = net.outcome(observe) else {
        panic!("observing");
    };
    // A read the device never answers: it reboots meanwhile.
    let read = net
        .server
        .request(net.now, "meter-1", Operation::Read(Path::Instance(3, 0)))
        .expect("sent");
    net.flush();
    net.devices[dev].inbox.clear();
    net.take_events();
    let second = net.register(dev, &["ep=meter-1", "lt=300", "lwm2m=1.1"], METER_LINKS);
    assert_ne!(second.id, first.id);
    let events = net.take_events();
    assert_eq!(
        events,
        [
            ServerEvent::OpCompleted {
                op: read,
                endpoint: "meter-1".into(),
                outcome: Err(OpError::Replaced)
            },
            ServerEvent::ObservationEnded {
                observation,
                endpoint: "meter-1".into(),
                reason: ObservationEndReason::Replaced
            },
            ServerEvent::Registered {
                registration: second.clone(),
                replaced: Some(first.clone())
            },
        ]
    );
    assert!(net.server.registration_by_id(first.id).is_none());
    assert!(net.server.observations("meter-1").is_empty());
    assert_eq!(net.server.stats().in_flight_ops, 0);
    // The old location is dead.
    let req = net.send(
        dev,
        Request::post().with_path(["rd", first.id.to_string().as_str()]),
    );
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::NOT_FOUND)
    );
}

#[test]
fn version_1_2_is_served_as_1_1() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::NoSec);
    let reg = net.register(dev, &["ep=m12", "lwm2m=1.2"], "</3/0>");
    assert_eq!(reg.version, Lwm2mVersion::V1_2);
    net.server
        .request(net.now, "m12", Operation::Read(Path::Instance(3, 0)))
        .expect("sent");
    net.flush();
    let (request, _) = net.next_request(dev);
    assert_eq!(request.accept(), Some(ContentFormat::SENML_CBOR));
}

#[test]
fn a_restored_registration_keeps_its_id_and_remaining_lifetime() {
    let mut cfg = config();
    cfg.lifetime_grace = Duration::ZERO;
    let mut net = Net::new(cfg);
    let dev = net.device(PeerAuth::NoSec);
    let addr = net.devices[dev].addr;
    let id = RegistrationId::parse("4kz9a0c1").expect("id");
    let restored = RestoredRegistration {
        id,
        endpoint: "meter-r".into(),
        version: Lwm2mVersion::V1_0,
        binding: Binding::UDP,
        lifetime: 600,
        sms_number: None,
        objects: RegisteredObjects::parse(METER_LINKS_1_0).expect("links"),
        peer: addr,
        auth: PeerAuth::NoSec,
        since_registered: Duration::from_secs(5000),
        since_last_update: Duration::from_secs(500),
    };
    net.server
        .restore_registration(net.now, restored.clone())
        .expect("restored");
    assert_eq!(
        net.server.restore_registration(net.now, restored.clone()),
        Err(RestoreError::DuplicateId)
    );
    assert!(net.take_events().is_empty());
    // The device's Update to its old location works.
    net.devices[dev].location = Some("4kz9a0c1".into());
    net.advance(Duration::from_secs(50));
    let req = net.update(dev, &[], "");
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::CHANGED));
    net.take_events();
    // Without it, another restored one expires 100 s after the restart (600 − 500).
    let other = RestoredRegistration {
        id: RegistrationId::parse("00000abc").expect("id"),
        endpoint: "meter-s".into(),
        ..restored
    };
    let t0 = net.now;
    net.server
        .restore_registration(net.now, other)
        .expect("restored");
    net.advance(Duration::from_secs(99));
    assert!(net.take_events().is_empty());
    net.advance(Duration::from_secs(1));
    assert!(matches!(
        net.take_events().as_slice(),
        [ServerEvent::Expired { registration }] if registration.endpoint == "meter-s"
    ));
    assert_eq!(net.now - t0, Duration::from_secs(100));
}

#[test]
fn caps_on_registrations_and_pending_registers_answer_5_03() {
    let mut cfg = config();
    cfg.max_registrations = 2;
    cfg.max_pending_registrations = 1;
    let mut net = Net::new(cfg);
    registered_meter(&mut net, "m1");
    let (dev2, _) = registered_meter(&mut net, "m2");
    let dev3 = net.device(PeerAuth::NoSec);
    let req = net.register_request(dev3, &["ep=m3"], "</3/0>");
    assert_eq!(
        net.response(dev3, req).map(|r| r.code),
        Some(Code::SERVICE_UNAVAILABLE)
    );
    assert_eq!(
        refused(&net.take_events()),
        [(
            Code::SERVICE_UNAVAILABLE,
            RefusalReason::TooManyRegistrations
        )]
    );
    // A registered endpoint may still register again (reboot).
    net.register_request(dev2, &["ep=m2"], "</3/0>");
    let events = net.take_events();
    assert!(matches!(
        events.as_slice(),
        [ServerEvent::RegistrationRequest { .. }]
    ));
    // While that one waits, a second pending Register is over the pending cap.
    let dev4 = net.device(PeerAuth::NoSec);
    let req = net.register_request(dev4, &["ep=m1"], "</3/0>");
    assert_eq!(
        net.response(dev4, req).map(|r| r.code),
        Some(Code::SERVICE_UNAVAILABLE)
    );
    assert_eq!(
        refused(&net.take_events()),
        [(
            Code::SERVICE_UNAVAILABLE,
            RefusalReason::TooManyPendingRegistrations
        )]
    );
    assert_eq!(net.server.stats().pending_registrations, 1);
    // An unanswered ticket is forgotten after the CoAP pending-request timeout.
    net.advance(Duration::from_secs(250));
    assert_eq!(net.server.stats().pending_registrations, 0);
}

#[test]
fn remove_registration_ends_it_without_telling_the_client() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "meter-1");
    let read = net
        .server
        .request(net.now, "meter-1", Operation::Read(Path::Instance(3, 0)))
        .expect("sent");
    net.flush();
    let removed = net.server.remove_registration(net.now, "meter-1");
    assert_eq!(removed, Some(reg));
    assert_eq!(net.completion(read), None, "not yet polled");
    net.flush();
    assert_eq!(net.completion(read), Some(&Err(OpError::Removed)));
    // The device's late answer is dropped; its next Update is 4.04.
    let (_, responder) = net.next_request(dev);
    net.reply(dev, responder, Response::new(Code::CONTENT));
    let req = net.update(dev, &[], "");
    assert_eq!(
        net.response(dev, req).map(|r| r.code),
        Some(Code::NOT_FOUND)
    );
}

#[test]
fn a_new_address_ends_the_observations_made_from_the_old_one() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "meter-1");
    let path = Path::Resource(3, 0, 9);
    let op = net
        .server
        .request(net.now, "meter-1", Operation::Observe(path))
        .expect("sent");
    net.flush();
    let node = Node::Resource(Resource::single(9, Value::Integer(80)));
    net.serve(dev, |_| {
        content(Format::SenmlCbor, path, &node).with_observe(1)
    });
    let OpOutcome::Observing { observation, .. } = net.outcome(op) else {
        panic!("observing");
    };
    net.take_events();
    // Same address: the observation stays.
    net.update(dev, &[], "");
    assert!(matches!(
        net.take_events().as_slice(),
        [ServerEvent::Updated { .. }]
    ));
    assert_eq!(net.server.observations("meter-1").len(), 1);
    net.devices[dev].addr = SocketAddr::from(([10, 0, 9, 9], 50_001));
    net.update(dev, &[], "");
    let events = net.take_events();
    assert_eq!(
        events[0],
        ServerEvent::ObservationEnded {
            observation,
            endpoint: "meter-1".into(),
            reason: ObservationEndReason::AddressChanged
        }
    );
    assert!(matches!(events[1], ServerEvent::Updated { .. }));
    assert!(net.server.observations("meter-1").is_empty());
}

#[test]
fn lost_datagrams_are_retransmitted_without_a_second_ticket() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::NoSec);
    // The server's Empty ACK (sent after 1 s while the application thinks) is lost: the device
    // retransmits its Register, which deduplication absorbs (RFC 7252 §4.5).
    let req = net.register_request(dev, &["ep=lossy", "lt=300"], METER_LINKS_1_0);
    net.drop_to_devices = 1;
    net.advance(Duration::from_secs(10));
    let events = net.take_events();
    let tickets: Vec<RegistrationTicket> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::RegistrationRequest { ticket, .. } => Some(*ticket),
            _ => None,
        })
        .collect();
    assert_eq!(tickets.len(), 1, "{events:?}");
    // The verdict goes out as a separate Confirmable response; its first copy is lost too.
    net.server
        .accept_registration(net.now, tickets[0])
        .expect("accepted");
    net.drop_to_devices = 1;
    net.advance(Duration::from_secs(10));
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::CREATED));
    assert_eq!(net.server.stats().registrations, 1);
    // A Read whose request is lost is retransmitted by the server and completes.
    let op = net
        .server
        .request(net.now, "lossy", Operation::Read(Path::Resource(3, 0, 9)))
        .expect("sent");
    net.drop_to_devices = 1;
    net.advance(Duration::from_secs(5));
    let node = Node::Resource(Resource::single(9, Value::Integer(40)));
    net.drop_to_server = 1; // and the piggybacked answer is lost once as well
    net.serve(dev, |_| {
        content(Format::Tlv, Path::Resource(3, 0, 9), &node)
    });
    net.advance(Duration::from_secs(10));
    assert_eq!(
        net.outcome(op),
        OpOutcome::Content(Content::Node {
            path: Path::Resource(3, 0, 9),
            node
        })
    );
}
