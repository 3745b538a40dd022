//! Queue mode (TS Transport 1.1 "Queue Mode Operation"): requests to a sleeping client wait for
//! it to talk, expire, survive a reboot, go back to the queue when the client fell asleep.

use super::*;

fn read_battery() -> Operation {
    Operation::Read(Path::Resource(3, 0, 9))
}

fn battery(level: i64) -> Response {
    content(
        Format::SenmlCbor,
        Path::Resource(3, 0, 9),
        &Node::Resource(Resource::single(9, Value::Integer(level))),
    )
}

#[test]
fn a_request_to_a_sleeping_client_waits_for_its_update() {
    let mut net = Net::new(config());
    let (dev, _) = registered_sleeper(&mut net, "q");
    // Just registered: awake, so a request goes out at once.
    let op = net
        .server
        .request(net.now, "q", read_battery())
        .expect("sent");
    net.flush();
    net.serve(dev, |_| battery(90));
    assert!(matches!(net.outcome(op), OpOutcome::Content(_)));
    net.take_events();
    // 93 s after it last spoke it sleeps.
    net.advance(Duration::from_secs(93));
    assert!(!net.server.is_reachable(net.now, "q"));
    let op = net
        .server
        .request(net.now, "q", read_battery())
        .expect("queued");
    net.flush();
    let expires_at = net.now + Duration::from_secs(86_400);
    assert_eq!(
        net.take_events(),
        [ServerEvent::OpQueued {
            op,
            endpoint: "q".into(),
            expires_at
        }]
    );
    assert!(net.devices[dev].inbox.is_empty());
    assert_eq!(
        net.server.queued_ops("q"),
        [QueuedOpInfo {
            op,
            operation: read_battery(),
            expires_at
        }]
    );
    net.advance(Duration::from_secs(600));
    assert!(net.devices[dev].inbox.is_empty());
    // It wakes up and updates: the queued read follows the 2.04.
    net.update(dev, &[], "");
    let request = net.serve(dev, |_| battery(89));
    assert_eq!(request.path(), ["3", "0", "9"]);
    assert!(matches!(net.outcome(op), OpOutcome::Content(_)));
    assert!(net.server.queued_ops("q").is_empty());
}

#[test]
fn a_queued_request_expires_when_the_client_never_wakes() {
    let mut net = Net::new(config());
    registered_sleeper(&mut net, "q"); // lifetime 3600 s
    net.advance(Duration::from_secs(100));
    let short = net
        .server
        .request_with_expiry(net.now, "q", read_battery(), Duration::from_secs(1800))
        .expect("queued");
    let long = net
        .server
        .request(net.now, "q", read_battery())
        .expect("queued");
    net.advance(Duration::from_secs(1799));
    assert_eq!(net.completion(short), None);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.completion(short), Some(&Err(OpError::Expired)));
    assert_eq!(net.server.queued_ops("q").len(), 1);
    // The registration itself runs out before the 24 h default expiry.
    net.advance(Duration::from_secs(2000));
    assert_eq!(
        net.completion(long),
        Some(&Err(OpError::RegistrationExpired))
    );
    assert!(net.server.registration("q").is_none());
}

#[test]
fn the_queue_is_bounded() {
    let mut cfg = config();
    cfg.max_queued = 2;
    let mut net = Net::new(cfg);
    registered_sleeper(&mut net, "q");
    net.advance(Duration::from_secs(100));
    for _ in 0..2 {
        net.server
            .request(net.now, "q", read_battery())
            .expect("queued");
    }
    assert_eq!(
        net.server.request(net.now, "q", read_battery()),
        Err(OpError::QueueFull)
    );
    assert_eq!(net.server.stats().queued_ops, 2);
}

#[test]
fn queued_requests_carry_over_to_the_registration_after_a_reboot() {
    let mut net = Net::new(config());
    let (dev, first) = registered_sleeper(&mut net, "q");
    net.advance(Duration::from_secs(100));
    let op = net
        .server
        .request(net.now, "q", read_battery())
        .expect("queued");
    net.take_events();
    let second = net.register(dev, &["ep=q", "lt=3600", "lwm2m=1.1", "Q"], METER_LINKS);
    assert!(net.events.iter().any(|e| matches!(
        e,
        ServerEvent::Registered { replaced: Some(old), .. } if old.id == first.id
    )));
    net.serve(dev, |_| battery(77));
    assert!(matches!(net.outcome(op), OpOutcome::Content(_)));
    assert_eq!(net.server.registration("q").map(|r| r.id), Some(second.id));
}

#[test]
fn a_request_that_times_out_because_the_client_fell_asleep_goes_back_to_the_queue() {
    let mut net = Net::new(config());
    let (dev, _) = registered_sleeper(&mut net, "q");
    net.advance(Duration::from_secs(30));
    // Awake, so the request is sent, but the device has already switched its radio off.
    net.devices[dev].online = false;
    let op = net
        .server
        .request(net.now, "q", read_battery())
        .expect("sent");
    net.flush();
    net.advance(Duration::from_secs(100));
    assert_eq!(net.completion(op), None);
    assert!(matches!(
        net.take_events().as_slice(),
        [ServerEvent::OpQueued { op: o, .. }] if *o == op
    ));
    assert_eq!(net.server.queued_ops("q").len(), 1);
    assert!(!net.server.is_reachable(net.now, "q"));
    // Back online with an Update: sent again and answered.
    net.devices[dev].online = true;
    net.devices[dev].inbox.clear();
    net.update(dev, &[], "");
    net.serve(dev, |_| battery(70));
    assert!(matches!(net.outcome(op), OpOutcome::Content(_)));
}

#[test]
fn a_notification_or_send_also_wakes_the_queue() {
    let mut net = Net::new(config());
    let (dev, _) = registered_sleeper(&mut net, "q");
    net.advance(Duration::from_secs(100));
    let op = net
        .server
        .request(net.now, "q", read_battery())
        .expect("queued");
    let record = Record::new(Path::Resource(10243, 0, 14), Value::Float(5.0));
    let send = Request::post()
        .with_path(["dp"])
        .with_content_format(ContentFormat::SENML_CBOR)
        .with_payload(codec::encode_records(Format::SenmlCbor, &[record]).expect("encodes"));
    net.send(dev, send);
    net.serve(dev, |_| battery(60));
    assert!(matches!(net.outcome(op), OpOutcome::Content(_)));
}
