//! Observe (OMA LwM2M TS Core 1.1 §6.4.1, RFC 7641): notifications on change no sooner than
//! `pmin`, at `pmax` without change, thresholds, inheritance and server defaults, cancellation by
//! Observe = 1 and by RST, and the end of observations with the registration.

use std::time::Duration;

use lwm2m_objects::codec::decode;
use lwm2m_objects::{ContentFormat, Node, ObjectModel, Path, Resource, Value};

use super::*;
use crate::coap::{CancelMode, ContentFormat as CoapFormat};

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn registered() -> Harness {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1).with_lifetime(86_400));
    h.register();
    h
}

fn write_attributes(h: &mut Harness, path: &str, query: &[&str]) {
    let mut r = Request::put().with_path(p(path).segments());
    for q in query {
        r = r.with_query(q);
    }
    assert_eq!(h.request(r).code, Code::CHANGED);
}

/// Starts an observation from the server; returns its request ID and the first response.
fn observe(h: &mut Harness, request: Request) -> (RequestId, Response) {
    let id = h
        .server
        .request(h.now, CLIENT_ADDR, request.with_observe(0));
    h.pump();
    let first = h.take_response(id).expect("the first response");
    (id, first)
}

fn value_of(response: &Response, path: &str) -> Value {
    let format = ContentFormat::from_u16(response.content_format().unwrap().0).unwrap();
    match decode(format, &p(path), &response.payload, ObjectModel::builtin()).unwrap() {
        Node::Resource(Resource {
            value: lwm2m_objects::ResourceValue::Single(v),
            ..
        }) => v,
        other => panic!("not a single resource: {other:?}"),
    }
}

fn set(h: &mut Harness, path: &str, value: Value) {
    let now = h.now;
    h.client.with_store(now, |s| s.set(p(path), value)).unwrap();
    h.pump();
}

#[test]
fn change_is_notified_no_sooner_than_pmin_and_pmax_repeats() {
    let mut h = registered();
    write_attributes(&mut h, "/3/0/9", &["pmin=10", "pmax=60"]);
    let (id, first) = observe(&mut h, get("/3/0/9"));
    assert_eq!(first.code, Code::CONTENT);
    assert!(first.observe().is_some());
    assert_eq!(value_of(&first, "/3/0/9"), Value::Integer(87));
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStarted { path: p("/3/0/9") }]
    );
    assert_eq!(h.client.observed_paths().collect::<Vec<_>>(), [p("/3/0/9")]);
    // A change at 2 s waits for pmin (10 s after the first response).
    h.advance(secs(2));
    set(&mut h, "/3/0/9", Value::Integer(80));
    assert!(h.take_notifications(id).is_empty());
    h.advance(secs(7));
    assert!(h.take_notifications(id).is_empty());
    h.advance(secs(1));
    let n = h.take_notifications(id);
    assert_eq!(n.len(), 1);
    assert_eq!(value_of(&n[0], "/3/0/9"), Value::Integer(80));
    assert_eq!(h.elapsed(), secs(10));
    // Two changes within pmin are one notification with the latest value.
    set(&mut h, "/3/0/9", Value::Integer(79));
    set(&mut h, "/3/0/9", Value::Integer(78));
    h.advance(secs(10));
    let n = h.take_notifications(id);
    assert_eq!(n.len(), 1);
    assert_eq!(value_of(&n[0], "/3/0/9"), Value::Integer(78));
    // No change: one notification per pmax (60 s after the last one at 20 s).
    h.advance(secs(59));
    assert!(h.take_notifications(id).is_empty());
    h.advance(secs(1));
    assert_eq!(h.take_notifications(id).len(), 1);
    h.advance(secs(120));
    assert_eq!(h.take_notifications(id).len(), 2);
}

#[test]
fn notifications_use_the_observe_format_and_grow_their_sequence() {
    let mut h = registered();
    let (id, first) = observe(&mut h, get("/3/0").with_accept(CoapFormat::LWM2M_TLV));
    assert_eq!(first.content_format(), Some(CoapFormat::LWM2M_TLV));
    set(&mut h, "/3/0/9", Value::Integer(50));
    h.advance(secs(1));
    set(&mut h, "/3/0/13", Value::Time(42));
    let n = h.take_notifications(id);
    assert_eq!(
        n.len(),
        2,
        "pmin 0: each change of the instance is notified"
    );
    assert!(
        n.iter()
            .all(|r| r.content_format() == Some(CoapFormat::LWM2M_TLV))
    );
    let seqs: Vec<u32> = std::iter::once(&first)
        .chain(&n)
        .map(|r| r.observe().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let Node::Instance(device) = decode(
        ContentFormat::Tlv,
        &p("/3/0"),
        &n[1].payload,
        ObjectModel::builtin(),
    )
    .unwrap() else {
        panic!("an instance")
    };
    assert_eq!(device.value(9), Some(&Value::Integer(50)));
    assert_eq!(device.value(13), Some(&Value::Time(42)));
}

#[test]
fn thresholds_filter_numeric_changes() {
    let mut h = registered();
    write_attributes(&mut h, "/10243/0/6", &["st=0.5"]);
    let (id, _) = observe(&mut h, get("/10243/0/6"));
    set(&mut h, "/10243/0/6", Value::Float(0.5)); // moved 0.15 from 0.35
    set(&mut h, "/10243/0/6", Value::Float(0.7)); // 0.35
    assert!(h.take_notifications(id).is_empty());
    set(&mut h, "/10243/0/6", Value::Float(0.9)); // 0.55 from the last notified 0.35
    let n = h.take_notifications(id);
    assert_eq!(n.len(), 1);
    assert_eq!(value_of(&n[0], "/10243/0/6"), Value::Float(0.9));
    // gt: crossing 2.0 either way.
    write_attributes(&mut h, "/10243/0/6", &["st", "gt=2"]);
    set(&mut h, "/10243/0/6", Value::Float(1.5));
    assert!(h.take_notifications(id).is_empty());
    set(&mut h, "/10243/0/6", Value::Float(2.5));
    set(&mut h, "/10243/0/6", Value::Float(3.5));
    set(&mut h, "/10243/0/6", Value::Float(1.0));
    let values: Vec<Value> = h
        .take_notifications(id)
        .iter()
        .map(|r| value_of(r, "/10243/0/6"))
        .collect();
    assert_eq!(values, [Value::Float(2.5), Value::Float(1.0)]);
}

#[test]
fn server_defaults_and_inherited_attributes_apply() {
    let mut h = registered();
    // /1/0/3 Default Maximum Period = 20 s.
    let r = h.request(
        Request::put()
            .with_path(["1", "0", "3"])
            .with_content_format(CoapFormat::TEXT_PLAIN)
            .with_payload("20"),
    );
    assert_eq!(r.code, Code::CHANGED);
    let (id, _) = observe(&mut h, get("/4/0/2"));
    h.advance(secs(20));
    assert_eq!(h.take_notifications(id).len(), 1);
    // An object-level pmax overrides the default; a resource-level one overrides that.
    write_attributes(&mut h, "/4", &["pmax=50"]);
    h.advance(secs(49));
    assert!(h.take_notifications(id).is_empty());
    h.advance(secs(1));
    assert_eq!(h.take_notifications(id).len(), 1);
    write_attributes(&mut h, "/4/0/2", &["pmax=5"]);
    h.advance(secs(5));
    assert_eq!(h.take_notifications(id).len(), 1);
}

#[test]
fn observe_1_cancels_and_is_answered_like_a_read() {
    let mut h = registered();
    let (id, _) = observe(&mut h, get("/3/0/9"));
    h.take_events();
    assert!(h.server.cancel_observe(h.now, id, CancelMode::Proactive));
    h.pump();
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStopped { path: p("/3/0/9") }]
    );
    let ended = h
        .server_events
        .iter()
        .find_map(|e| match e {
            Event::ObservationEnded { id: got, response } if *got == id => Some(response.clone()),
            _ => None,
        })
        .expect("the observation ended");
    let response = ended.expect("the cancel was answered");
    assert_eq!(response.code, Code::CONTENT);
    assert_eq!(response.observe(), None);
    set(&mut h, "/3/0/9", Value::Integer(1));
    assert!(h.take_notifications(id).is_empty());
    assert_eq!(h.client.observed_paths().count(), 0);
}

#[test]
fn rst_to_a_notification_cancels() {
    let mut h = registered();
    let (id, _) = observe(&mut h, get("/3/0/9"));
    h.take_events();
    // Reactive: the server forgets; the next notification is answered with RST.
    assert!(h.server.cancel_observe(h.now, id, CancelMode::Reactive));
    set(&mut h, "/3/0/9", Value::Integer(2));
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStopped { path: p("/3/0/9") }]
    );
    let before = h.sent.len();
    set(&mut h, "/3/0/9", Value::Integer(3));
    assert_eq!(h.sent.len(), before, "no more notifications");
}

#[test]
fn unacknowledged_notification_ends_the_observation() {
    let mut h = registered();
    let (_, _) = observe(&mut h, get("/3/0/9"));
    h.take_events();
    h.drop_uplink = true;
    set(&mut h, "/3/0/9", Value::Integer(2));
    h.advance(secs(100));
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStopped { path: p("/3/0/9") }]
    );
}

#[test]
fn failed_observe_registers_nothing() {
    let mut h = registered();
    let (_, first) = observe(&mut h, get("/3/0/99"));
    assert_eq!(first.code, Code::NOT_FOUND);
    assert_eq!(first.observe(), None);
    assert!(h.take_events().is_empty());
    assert_eq!(h.client.observed_paths().count(), 0);
}

#[test]
fn notify_changed_from_the_application() {
    let mut h = registered();
    let (id, _) = observe(&mut h, get("/10243/0/14"));
    // The application changes the value without the store reporting it...
    h.client.store_mut().insert_instance(
        10243,
        lwm2m_objects::ObjectInstance::new(0, [Resource::single(14, Value::Float(1300.0))]),
    );
    // ...and says so.
    let now = h.now;
    h.client.notify_changed(now, p("/10243/0"));
    h.pump();
    let n = h.take_notifications(id);
    assert_eq!(n.len(), 1);
    assert_eq!(value_of(&n[0], "/10243/0/14"), Value::Float(1300.0));
}

#[test]
fn observations_end_with_delete_deregister_and_new_registration() {
    let mut h = registered();
    h.client.store_mut().support(3331);
    h.client.store_mut().insert_instance(
        3331,
        lwm2m_objects::ObjectInstance::new(1, [Resource::single(5700, Value::Float(1.0))]),
    );
    observe(&mut h, get("/3331/1/5700"));
    observe(&mut h, get("/3/0/9"));
    h.take_events();
    assert_eq!(
        h.request(Request::delete().with_path(["3331", "1"])).code,
        Code::DELETED
    );
    let events = h.take_events();
    assert!(events.contains(&ClientEvent::ObservationStopped {
        path: p("/3331/1/5700")
    }));
    h.answer(Response::new(Code::CHANGED)); // the Update after the delete
    assert_eq!(h.take_events(), [ClientEvent::Updated]);
    // A new registration drops the rest.
    h.client.register(h.now).unwrap();
    h.pump();
    h.answer(Response::new(Code::CREATED).with_location_path(["rd", "6"]));
    assert_eq!(
        h.take_events(),
        [
            ClientEvent::ObservationStopped { path: p("/3/0/9") },
            ClientEvent::Registered {
                location: "rd/6".into()
            },
        ]
    );
    assert_eq!(h.client.observed_paths().count(), 0);
    observe(&mut h, get("/3/0/9"));
    h.take_events();
    h.client.deregister(h.now).unwrap();
    h.pump();
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStopped { path: p("/3/0/9") }]
    );
}

#[test]
fn observed_instance_deleted_by_the_application_stops_quietly() {
    let mut h = registered();
    h.client.store_mut().support(3331);
    h.client.store_mut().insert_instance(
        3331,
        lwm2m_objects::ObjectInstance::new(1, [Resource::single(5700, Value::Float(1.0))]),
    );
    let (id, _) = observe(&mut h, get("/3331/1/5700"));
    h.take_events();
    use crate::lwm2m::client::ObjectStore;
    h.client.store_mut().delete(&p("/3331/1")).unwrap();
    let now = h.now;
    h.client.notify_changed(now, p("/3331/1/5700"));
    h.pump();
    assert!(h.take_notifications(id).is_empty());
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStopped {
            path: p("/3331/1/5700")
        }]
    );
}

/// The SenML records of a composite answer or notification, by path.
fn composite_values(response: &Response) -> Vec<(Path, Value)> {
    let format = ContentFormat::from_u16(response.content_format().unwrap().0).unwrap();
    lwm2m_objects::codec::decode_records(
        format,
        &Path::Root,
        &response.payload,
        ObjectModel::builtin(),
    )
    .unwrap()
    .into_iter()
    .map(|r| (r.path, r.value.unwrap()))
    .collect()
}

fn fetch_observe(format: ContentFormat, paths: &[&str]) -> Request {
    let names: Vec<lwm2m_objects::codec::Record> = paths
        .iter()
        .map(|s| lwm2m_objects::codec::Record {
            path: p(s),
            time: None,
            value: None,
        })
        .collect();
    Request::new(crate::coap::Method::Fetch)
        .with_content_format(CoapFormat(format.to_u16()))
        .with_payload(lwm2m_objects::codec::encode_records(format, &names).unwrap())
}

#[test]
fn observe_composite_notifies_all_its_paths_together_and_is_cancelled_by_observe_1() {
    let mut h = registered();
    let (id, first) = observe(
        &mut h,
        fetch_observe(ContentFormat::SenmlCbor, &["/3/0/9", "/3/0/0", "/3/0/77"]),
    );
    assert_eq!(first.code, Code::CONTENT);
    assert!(first.observe().is_some());
    assert_eq!(first.content_format(), Some(CoapFormat::SENML_CBOR));
    let values = composite_values(&first);
    assert!(
        values.contains(&(p("/3/0/9"), Value::Integer(87))),
        "{values:?}"
    );
    assert!(values.iter().any(|(path, _)| *path == p("/3/0/0")));
    assert_eq!(values.len(), 2, "the missing /3/0/77 is left out");
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStarted { path: Path::Root }]
    );

    // A change of one of its paths notifies all of them; a change elsewhere does not.
    set(&mut h, "/3/0/9", Value::Integer(80));
    let notified = h.take_notifications(id);
    assert_eq!(notified.len(), 1);
    let values = composite_values(&notified[0]);
    assert!(
        values.contains(&(p("/3/0/9"), Value::Integer(80))),
        "{values:?}"
    );
    assert!(values.iter().any(|(path, _)| *path == p("/3/0/0")));
    set(&mut h, "/3/0/13", Value::Integer(1_700_000_100));
    assert!(h.take_notifications(id).is_empty());

    // Observe = 1 on the same token cancels; answered as a Read-Composite.
    assert!(h.server.cancel_observe(h.now, id, CancelMode::Proactive));
    h.pump();
    assert_eq!(
        h.take_events(),
        [ClientEvent::ObservationStopped { path: Path::Root }]
    );
    set(&mut h, "/3/0/9", Value::Integer(1));
    assert!(h.take_notifications(id).is_empty());
    assert_eq!(h.client.observed_paths().count(), 0);
}

#[test]
fn observe_composite_is_refused_by_a_1_0_client() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_0).with_lifetime(86_400));
    h.register();
    let (_, first) = observe(&mut h, fetch_observe(ContentFormat::SenmlJson, &["/3/0/9"]));
    assert_eq!(first.code, Code::METHOD_NOT_ALLOWED);
    assert_eq!(h.client.observed_paths().count(), 0);
}
