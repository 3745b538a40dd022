//! Information Reporting (TS Core 1.1 §6.4): Observe, notifications (single values and time
//! series), Cancel Observation (proactive and reactive), Observe-Composite, the observation cap.

use super::*;
use crate::coap::Method;

const ENERGY: Path = Path::Resource(10243, 0, 14);

fn energy(kwh: f64) -> Node {
    Node::Resource(Resource::single(14, Value::Float(kwh)))
}

/// Starts an observation of `path` on `dev`; the device accepts with `first`. Returns the op, the
/// observation and the token the device notifies with.
fn observe(
    net: &mut Net,
    dev: usize,
    ep: &str,
    operation: Operation,
    first: Response,
) -> (OpId, ObservationId, crate::coap::Token, Request) {
    let op = net.server.request(net.now, ep, operation).expect("sent");
    net.flush();
    let (request, responder) = net.next_request(dev);
    let token = responder.token();
    net.reply(dev, responder, first.with_observe(1));
    let OpOutcome::Observing { observation, .. } = net.outcome(op) else {
        panic!("expected an observation, got {:?}", net.completion(op));
    };
    (op, observation, token, request)
}

fn notify(net: &mut Net, dev: usize, token: crate::coap::Token, response: Response) {
    let (now, server) = (net.now, net.server_addr);
    net.devices[dev]
        .coap
        .notify(now, server, token, response, true)
        .expect("notify");
    net.flush();
}

fn notifications(events: &[ServerEvent]) -> Vec<(ObservationId, Result<Content, OpError>)> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Notification {
                observation,
                content,
                ..
            } => Some((*observation, content.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn observe_delivers_notifications_until_cancelled() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let first = content(Format::SenmlCbor, ENERGY, &energy(10.5));
    let (op, observation, token, request) =
        observe(&mut net, dev, "m", Operation::Observe(ENERGY), first);
    assert_eq!(request.observe(), Some(0));
    assert_eq!(request.accept(), Some(ContentFormat::SENML_CBOR));
    assert_eq!(
        net.outcome(op),
        OpOutcome::Observing {
            observation,
            content: Content::Node {
                path: ENERGY,
                node: energy(10.5)
            }
        }
    );
    net.take_events();
    for kwh in [10.6, 10.7] {
        notify(
            &mut net,
            dev,
            token,
            content(Format::SenmlCbor, ENERGY, &energy(kwh)),
        );
    }
    let events = net.take_events();
    assert_eq!(
        notifications(&events),
        [10.6, 10.7].map(|kwh| (
            observation,
            Ok(Content::Node {
                path: ENERGY,
                node: energy(kwh)
            })
        ))
    );
    assert!(matches!(
        &events[0],
        ServerEvent::Notification { endpoint, paths, .. } if endpoint == "m" && *paths == [ENERGY]
    ));
    assert_eq!(net.server.observations("m").len(), 1);
    // Cancel Observation: GET with Observe = 1 on the same token (RFC 7641 §3.6).
    let cancel = net
        .server
        .request(net.now, "m", Operation::CancelObservation(observation))
        .expect("sent");
    net.flush();
    let (request, responder) = net.next_request(dev);
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.observe(), Some(1));
    assert_eq!(request.path(), ["10243", "0", "14"]);
    assert_eq!(responder.token(), token);
    net.reply(
        dev,
        responder,
        content(Format::SenmlCbor, ENERGY, &energy(10.7)),
    );
    assert_eq!(net.outcome(cancel), OpOutcome::Cancelled { observation });
    assert!(net.events.contains(&ServerEvent::ObservationEnded {
        observation,
        endpoint: "m".into(),
        reason: ObservationEndReason::Cancelled
    }));
    assert!(net.server.observations("m").is_empty());
    assert_eq!(
        net.server
            .request(net.now, "m", Operation::CancelObservation(observation)),
        Err(OpError::UnknownObservation)
    );
}

#[test]
fn a_time_series_notification_is_delivered_as_records() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let first = content(Format::SenmlCbor, ENERGY, &energy(10.0));
    let (_, observation, token, _) = observe(&mut net, dev, "m", Operation::Observe(ENERGY), first);
    net.take_events();
    // Store-and-forward: three buffered 15-minute readings in one notification.
    let series: Vec<Record> = [
        (1_700_000_000.0, 10.25),
        (1_700_000_900.0, 10.5),
        (1_700_001_800.0, 10.75),
    ]
    .into_iter()
    .map(|(t, kwh)| Record {
        path: ENERGY,
        time: Some(t),
        value: Some(Value::Float(kwh)),
    })
    .collect();
    notify(
        &mut net,
        dev,
        token,
        records_response(Format::SenmlCbor, &series),
    );
    assert_eq!(
        notifications(&net.take_events()),
        [(observation, Ok(Content::Records(series)))]
    );
}

#[test]
fn a_1_0_client_is_observed_in_tlv_and_can_end_the_observation() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::NoSec);
    net.register(dev, &["ep=old"], METER_LINKS_1_0);
    let first = content(
        Format::Tlv,
        Path::Instance(3, 0),
        &Node::Instance(device_instance()),
    );
    let (_, observation, token, request) = observe(
        &mut net,
        dev,
        "old",
        Operation::Observe(Path::Instance(3, 0)),
        first,
    );
    assert_eq!(request.accept(), Some(ContentFormat::LWM2M_TLV));
    net.take_events();
    let mut changed = device_instance();
    changed
        .resources
        .insert(9, Resource::single(9, Value::Integer(86)));
    let node = Node::Instance(changed);
    notify(
        &mut net,
        dev,
        token,
        content(Format::Tlv, Path::Instance(3, 0), &node),
    );
    assert_eq!(
        notifications(&net.take_events()),
        [(
            observation,
            Ok(Content::Node {
                path: Path::Instance(3, 0),
                node
            })
        )]
    );
    // The instance goes away: a response without Observe ends the observation (RFC 7641 §3.2).
    let (now, server) = (net.now, net.server_addr);
    net.devices[dev].coap.forget_observer(server, token);
    let end = Response::new(Code::NOT_FOUND);
    let mut end_msg = crate::coap::Message::new(
        crate::coap::MessageType::NonConfirmable,
        end.code,
        0x4242,
        token,
    );
    end_msg.options = end.options;
    let bytes = end_msg.encode().expect("encodes");
    let addr = net.devices[dev].addr;
    net.server
        .handle_datagram(now, addr, PeerAuth::NoSec, &bytes);
    net.flush();
    assert_eq!(
        net.take_events(),
        [ServerEvent::ObservationEnded {
            observation,
            endpoint: "old".into(),
            reason: ObservationEndReason::EndedByClient(Some(Code::NOT_FOUND))
        }]
    );
    assert!(net.server.observations("old").is_empty());
}

/// The records of a composite observation of the battery level and the active energy.
fn composite_values(battery: i64, kwh: f64) -> Vec<Record> {
    vec![
        Record::new(Path::Resource(3, 0, 9), Value::Integer(battery)),
        Record::new(ENERGY, Value::Float(kwh)),
    ]
}

/// Observe-Composite of the battery level and the active energy on meter "m" (device `dev`),
/// accepted with [`composite_values`]`(90, 1.5)`.
fn observe_composite(
    net: &mut Net,
    dev: usize,
) -> (OpId, ObservationId, crate::coap::Token, Request) {
    let first = records_response(Format::SenmlCbor, &composite_values(90, 1.5));
    observe(
        net,
        dev,
        "m",
        Operation::ObserveComposite(vec![Path::Resource(3, 0, 9), ENERGY]),
        first,
    )
}

#[test]
fn observe_composite_and_its_reactive_cancellation() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let (op, observation, token, request) = observe_composite(&mut net, dev);
    assert_eq!(
        (request.method, request.observe()),
        (Method::Fetch, Some(0))
    );
    assert!(matches!(
        net.outcome(op),
        OpOutcome::Observing { content: Content::Records(r), .. } if r == composite_values(90, 1.5)
    ));
    net.take_events();
    notify(
        &mut net,
        dev,
        token,
        records_response(Format::SenmlCbor, &composite_values(89, 1.75)),
    );
    assert_eq!(
        notifications(&net.take_events()),
        [(
            observation,
            Ok(Content::Records(composite_values(89, 1.75)))
        )]
    );
    // Cancelled at once (reactively); the next notification is rejected with RST.
    let cancel = net
        .server
        .request(net.now, "m", Operation::CancelObservation(observation))
        .expect("cancelled");
    net.flush();
    assert!(net.devices[dev].inbox.is_empty());
    assert_eq!(net.outcome(cancel), OpOutcome::Cancelled { observation });
    net.take_events();
    notify(
        &mut net,
        dev,
        token,
        records_response(Format::SenmlCbor, &composite_values(88, 2.0)),
    );
    assert!(notifications(&net.take_events()).is_empty());
    assert!(
        net.devices[dev]
            .events
            .iter()
            .any(|e| matches!(e, Event::ObserverGone { .. }))
    );
}

#[test]
fn observe_answered_without_observe_is_a_plain_read_and_the_cap_holds() {
    let mut cfg = config();
    cfg.max_observations = 1;
    let mut net = Net::new(cfg);
    let (dev, _) = registered_meter(&mut net, "m");
    let op = net
        .server
        .request(net.now, "m", Operation::Observe(ENERGY))
        .expect("sent");
    net.flush();
    // The cap counts observations being set up too.
    assert_eq!(
        net.server
            .request(net.now, "m", Operation::Observe(Path::Resource(3, 0, 9))),
        Err(OpError::TooManyObservations)
    );
    net.serve(dev, |_| content(Format::SenmlCbor, ENERGY, &energy(3.0)));
    assert_eq!(
        net.outcome(op),
        OpOutcome::Content(Content::Node {
            path: ENERGY,
            node: energy(3.0)
        })
    );
    assert!(net.server.observations("m").is_empty());
    // Now there is room again.
    assert!(
        net.server
            .request(net.now, "m", Operation::Observe(ENERGY))
            .is_ok()
    );
}

/// A "restart": a new server with `reg` restored as the application would after reading it back.
/// The old server's events go with it (operation IDs start again from 0).
fn restarted(net: &mut Net, reg: &Registration) {
    net.events.clear();
    net.taken = 0;
    net.server = Lwm2mServer::new(config(), 7);
    let restored = RestoredRegistration {
        id: reg.id,
        endpoint: reg.endpoint.clone(),
        version: reg.version,
        binding: reg.binding,
        lifetime: reg.lifetime,
        sms_number: reg.sms_number.clone(),
        objects: reg.objects.clone(),
        peer: reg.peer,
        auth: reg.auth.clone(),
        since_registered: Duration::from_secs(10),
        since_last_update: Duration::from_secs(10),
    };
    net.server
        .restore_registration(net.now, restored)
        .expect("registration restored");
}

#[test]
fn an_observation_restored_after_a_restart_keeps_its_number_token_and_cancellation() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "m");
    // Two observations, so that the restored one is not number 0.
    let battery = content(
        Format::SenmlCbor,
        Path::Resource(3, 0, 9),
        &Node::Resource(Resource::single(9, Value::Integer(90))),
    );
    observe(
        &mut net,
        dev,
        "m",
        Operation::Observe(Path::Resource(3, 0, 9)),
        battery,
    );
    let first = content(Format::SenmlCbor, ENERGY, &energy(10.5));
    let (_, observation, token, _) = observe(&mut net, dev, "m", Operation::Observe(ENERGY), first);
    let record = net.server.observation_record(observation).expect("record");
    assert_eq!(
        record,
        ObservationRecord {
            observation,
            endpoint: "m".into(),
            registration: reg.id,
            token,
            paths: vec![ENERGY],
            composite: false,
        }
    );

    restarted(&mut net, &reg);
    net.server
        .restore_observation(record.clone())
        .expect("observation restored");
    assert_eq!(
        net.server.restore_observation(record.clone()),
        Err(RestoreObservationError::DuplicateId)
    );
    let same_token = ObservationRecord {
        observation: ObservationId::from_u64(77),
        ..record.clone()
    };
    assert_eq!(
        net.server.restore_observation(same_token),
        Err(RestoreObservationError::TokenInUse)
    );
    let other_registration = ObservationRecord {
        observation: ObservationId::from_u64(78),
        registration: RegistrationId::parse("zzzz").expect("id"),
        ..record.clone()
    };
    assert_eq!(
        net.server.restore_observation(other_registration),
        Err(RestoreObservationError::RegistrationGone)
    );
    assert!(
        net.take_events().is_empty(),
        "restoring sends and tells nothing"
    );
    assert!(net.devices[dev].inbox.is_empty());
    assert_eq!(
        net.server
            .observations("m")
            .iter()
            .map(|o| (o.observation, o.paths.clone()))
            .collect::<Vec<_>>(),
        [(observation, vec![ENERGY])]
    );

    // The device notifies as before (its sequence numbers run on): the new server delivers it
    // under the same number, decoded in the format the observation was made with.
    notify(
        &mut net,
        dev,
        token,
        content(Format::SenmlCbor, ENERGY, &energy(11.0)),
    );
    assert_eq!(
        notifications(&net.take_events()),
        [(
            observation,
            Ok(Content::Node {
                path: ENERGY,
                node: energy(11.0)
            })
        )]
    );
    assert!(
        !net.devices[dev]
            .events
            .iter()
            .any(|e| matches!(e, Event::ObserverGone { .. })),
        "the notification was not rejected"
    );

    // A new observation does not reuse a restored number, nor one the application's store saw
    // given before the restart (its high-water mark; the numbering never moves back).
    net.server
        .number_observations_from(ObservationId::from_u64(40));
    net.server
        .number_observations_from(ObservationId::from_u64(5));
    let battery = content(
        Format::SenmlCbor,
        Path::Resource(3, 0, 9),
        &Node::Resource(Resource::single(9, Value::Integer(80))),
    );
    let (_, fresh, fresh_token, _) = observe(
        &mut net,
        dev,
        "m",
        Operation::Observe(Path::Resource(3, 0, 9)),
        battery,
    );
    assert!(fresh > observation, "{fresh} after {observation}");
    assert_eq!(fresh, ObservationId::from_u64(40));
    assert_ne!(fresh_token, token);

    // Proactive Cancel Observation repeats the original request with Observe = 1.
    let cancel = net
        .server
        .request(net.now, "m", Operation::CancelObservation(observation))
        .expect("sent");
    net.flush();
    let (request, responder) = net.next_request(dev);
    assert_eq!(request.method, Method::Get);
    assert_eq!(request.observe(), Some(1));
    assert_eq!(request.path(), ["10243", "0", "14"]);
    assert_eq!(request.accept(), Some(ContentFormat::SENML_CBOR));
    assert_eq!(responder.token(), token);
    net.reply(
        dev,
        responder,
        content(Format::SenmlCbor, ENERGY, &energy(11.0)),
    );
    assert_eq!(net.outcome(cancel), OpOutcome::Cancelled { observation });
    assert!(net.server.observation_record(observation).is_none());
}

#[test]
fn a_composite_observation_is_restored_and_an_impossible_one_refused() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "m");
    let (_, observation, token, _) = observe_composite(&mut net, dev);
    let record = net.server.observation_record(observation).expect("record");
    assert!(record.composite);
    assert_eq!(record.paths, [Path::Resource(3, 0, 9), ENERGY]);

    restarted(&mut net, &reg);
    let empty = ObservationRecord {
        observation: ObservationId::from_u64(9),
        token: crate::coap::Token::new(&[9]).expect("token"),
        paths: Vec::new(),
        ..record.clone()
    };
    assert!(matches!(
        net.server.restore_observation(empty),
        Err(RestoreObservationError::Invalid(_))
    ));
    net.server
        .restore_observation(record)
        .expect("observation restored");
    notify(
        &mut net,
        dev,
        token,
        records_response(Format::SenmlCbor, &composite_values(89, 1.75)),
    );
    assert_eq!(
        notifications(&net.take_events()),
        [(
            observation,
            Ok(Content::Records(composite_values(89, 1.75)))
        )]
    );
}
