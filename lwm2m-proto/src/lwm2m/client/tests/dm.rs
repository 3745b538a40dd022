//! Device management (OMA LwM2M TS Core 1.1 §6.3): every operation's success and its error
//! codes — 4.00, 4.01, 4.04, 4.05, 4.06, 4.15.

use lwm2m_objects::codec::{Record, decode, decode_records, encode, encode_records};
use lwm2m_objects::link::parse_discover;
use lwm2m_objects::{ContentFormat, Node, ObjectInstance, ObjectModel, Path, Resource, Value};

use super::*;
use crate::coap::{ContentFormat as CoapFormat, Method};
use crate::lwm2m::client::NotifyAttributes;

fn p(s: &str) -> Path {
    s.parse().unwrap()
}

fn cf(f: ContentFormat) -> CoapFormat {
    CoapFormat(f.to_u16())
}

fn registered(version: Lwm2mVersion) -> Harness {
    let mut h = Harness::new(config(version));
    h.register();
    h
}

fn decoded(response: &Response, path: &str) -> Node {
    let format = ContentFormat::from_u16(response.content_format().unwrap().0).unwrap();
    decode(format, &p(path), &response.payload, ObjectModel::builtin()).unwrap()
}

fn put(path: &str, format: ContentFormat, node: &Node) -> Request {
    Request::put()
        .with_path(p(path).segments())
        .with_content_format(cf(format))
        .with_payload(encode(format, &p(path), node).unwrap())
}

fn text_put(path: &str, text: &str) -> Request {
    Request::put()
        .with_path(p(path).segments())
        .with_content_format(CoapFormat::TEXT_PLAIN)
        .with_payload(text)
}

#[test]
fn read_answers_in_the_version_default_format() {
    let mut h = registered(Lwm2mVersion::V1_0);
    let r = h.request(get("/3/0"));
    assert_eq!(r.code, Code::CONTENT);
    assert_eq!(r.content_format(), Some(CoapFormat::LWM2M_TLV));
    let Node::Instance(device) = decoded(&r, "/3/0") else {
        panic!("an instance")
    };
    assert_eq!(device.value(0), Some(&Value::String("Ferrite".into())));
    assert!(!device.resources.contains_key(&4), "Reboot is not readable");
    let mut h = registered(Lwm2mVersion::V1_1);
    let r = h.request(get("/3/0/9"));
    assert_eq!(r.content_format(), Some(CoapFormat::SENML_CBOR));
    assert_eq!(
        decoded(&r, "/3/0/9"),
        Node::Resource(Resource::single(9, Value::Integer(87)))
    );
    // Object, resource instance.
    let r = h.request(get("/10243"));
    let Node::Object { instances, .. } = decoded(&r, "/10243") else {
        panic!("an object")
    };
    assert_eq!(instances[&0].value(14), Some(&Value::Float(1234.5)));
    let r = h.request(get("/3/0/7/1"));
    assert_eq!(
        decoded(&r, "/3/0/7/1"),
        Node::ResourceInstance {
            id: 1,
            value: Value::Integer(5000)
        }
    );
}

#[test]
fn read_honours_accept_or_answers_4_06() {
    let mut h = registered(Lwm2mVersion::V1_1);
    for (format, path) in [
        (ContentFormat::SenmlJson, "/3/0"),
        (ContentFormat::SenmlCbor, "/3/0"),
        (ContentFormat::Tlv, "/3/0"),
        (ContentFormat::Text, "/3/0/0"),
    ] {
        let r = h.request(get(path).with_accept(cf(format)));
        assert_eq!(r.code, Code::CONTENT, "{format:?}");
        assert_eq!(r.content_format(), Some(cf(format)));
    }
    let r = h.request(get("/3/0/0").with_accept(CoapFormat::TEXT_PLAIN));
    assert_eq!(r.payload, b"Ferrite");
    for (accept, path) in [
        (CoapFormat::TEXT_PLAIN, "/3/0"),     // text carries one value
        (CoapFormat::OCTET_STREAM, "/3/0/0"), // a String is not opaque
        (CoapFormat::LWM2M_JSON, "/3/0"),     // decoded, not encoded
        (CoapFormat(9999), "/3/0"),
    ] {
        let r = h.request(get(path).with_accept(accept));
        assert_eq!(r.code, Code::NOT_ACCEPTABLE, "{accept:?} {path}");
    }
    // SenML is 1.1: a 1.0 client refuses it.
    let mut h = registered(Lwm2mVersion::V1_0);
    let r = h.request(get("/3/0").with_accept(CoapFormat::SENML_JSON));
    assert_eq!(r.code, Code::NOT_ACCEPTABLE);
    // A 1.1 client configured for SenML JSON answers in it without Accept.
    let mut h =
        Harness::new(config(Lwm2mVersion::V1_1).with_preferred_format(ContentFormat::SenmlJson));
    h.register();
    let r = h.request(get("/4/0"));
    assert_eq!(r.content_format(), Some(CoapFormat::SENML_JSON));
}

#[test]
fn read_error_codes() {
    let mut h = registered(Lwm2mVersion::V1_1);
    for (path, code) in [
        (get("/3/1"), Code::NOT_FOUND),
        (get("/99"), Code::NOT_FOUND),
        (get("/3/0/99"), Code::NOT_FOUND),
        (get("/3/0/7/9"), Code::NOT_FOUND),
        (get("/3/0/4"), Code::METHOD_NOT_ALLOWED), // executable
        (get("/0/0"), Code::UNAUTHORIZED),         // Security
        (get("/0"), Code::UNAUTHORIZED),
        (Request::get().with_path(["foo"]), Code::NOT_FOUND),
        (Request::get(), Code::METHOD_NOT_ALLOWED),
        (
            Request::new(Method::Patch).with_path(["3", "0"]),
            Code::METHOD_NOT_ALLOWED,
        ),
    ] {
        let r = h.request(path.clone());
        assert_eq!(r.code, code, "{:?}", path.path());
        assert!(r.payload.is_empty());
    }
}

#[test]
fn write_replace_and_partial_update() {
    let mut h = registered(Lwm2mVersion::V1_0);
    // Replace a resource (text).
    let r = h.request(text_put("/3/0/13", "1700000100"));
    assert_eq!(r.code, Code::CHANGED);
    assert_eq!(
        h.client.store().get(&p("/3/0/13")),
        Some(&Value::Time(1_700_000_100))
    );
    assert_eq!(
        h.take_events(),
        [ClientEvent::Written { path: p("/3/0/13") }]
    );
    // Partial update of an instance (POST, TLV): only the lifetime changes.
    let update = ObjectInstance::new(0, [Resource::single(1, Value::Integer(600))]);
    let body = encode(
        ContentFormat::Tlv,
        &p("/1/0"),
        &Node::Instance(update.clone()),
    )
    .unwrap();
    let post = Request::post()
        .with_path(["1", "0"])
        .with_content_format(CoapFormat::LWM2M_TLV)
        .with_payload(body);
    assert_eq!(h.request(post).code, Code::CHANGED);
    let store = h.client.store();
    assert_eq!(store.get(&p("/1/0/1")), Some(&Value::Integer(600)));
    assert_eq!(store.get(&p("/1/0/7")), Some(&Value::String("U".into())));
    // Replace of the instance: writable resources left out go, read-only ones stay.
    let r = h.request(put("/1/0", ContentFormat::Tlv, &Node::Instance(update)));
    assert_eq!(r.code, Code::CHANGED);
    let store = h.client.store();
    assert_eq!(store.get(&p("/1/0/1")), Some(&Value::Integer(600)));
    assert_eq!(store.get(&p("/1/0/7")), None);
    assert_eq!(store.get(&p("/1/0/0")), Some(&Value::Integer(1)));
}

#[test]
fn write_in_senml_for_1_1() {
    let mut h = registered(Lwm2mVersion::V1_1);
    let node = Node::Resource(Resource::single(14, Value::String("+02:00".into())));
    for format in [ContentFormat::SenmlJson, ContentFormat::SenmlCbor] {
        let r = h.request(put("/3/0/14", format, &node));
        assert_eq!(r.code, Code::CHANGED, "{format:?}");
    }
    assert_eq!(
        h.client.store().get(&p("/3/0/14")),
        Some(&Value::String("+02:00".into()))
    );
}

#[test]
fn write_error_codes() {
    let mut h = registered(Lwm2mVersion::V1_0);
    let senml = put(
        "/3/0/13",
        ContentFormat::SenmlJson,
        &Node::Resource(Resource::single(13, Value::Time(5))),
    );
    let too_long = "x".repeat(300);
    for (request, code) in [
        (text_put("/3/0/0", "Acme"), Code::METHOD_NOT_ALLOWED), // read-only
        (text_put("/3/0/99", "1"), Code::NOT_FOUND),
        (text_put("/3/7/13", "1"), Code::NOT_FOUND),
        (text_put("/3/0/13", "noon"), Code::BAD_REQUEST), // not a Time
        (text_put("/5/0/1", &too_long), Code::BAD_REQUEST), // Package URI is 0..255 bytes
        (text_put("/0/0/0", "coap://evil"), Code::UNAUTHORIZED),
        (text_put("/3", "1"), Code::METHOD_NOT_ALLOWED),
        (
            Request::put().with_path(["3", "0", "13"]).with_payload("1"),
            Code::BAD_REQUEST, // no Content-Format
        ),
        (
            text_put("/3/0/13", "1").with_content_format(CoapFormat(9999)),
            Code::UNSUPPORTED_CONTENT_FORMAT,
        ),
        (senml, Code::UNSUPPORTED_CONTENT_FORMAT), // SenML is 1.1
        (
            Request::put()
                .with_path(["3", "0"])
                .with_content_format(CoapFormat::LWM2M_TLV)
                .with_payload(vec![0xFF]),
            Code::BAD_REQUEST, // truncated TLV
        ),
    ] {
        let r = h.request(request.clone());
        assert_eq!(r.code, code, "{:?}", request.path());
    }
    assert!(h.take_events().is_empty(), "nothing was written");
    assert_eq!(
        h.client.store().get(&p("/3/0/0")),
        Some(&Value::String("Ferrite".into()))
    );
}

#[test]
fn execute_reports_the_event_with_arguments() {
    let mut h = registered(Lwm2mVersion::V1_1);
    let reboot = Request::post().with_path(["3", "0", "4"]);
    assert_eq!(h.request(reboot).code, Code::CHANGED);
    let update = Request::post()
        .with_path(["5", "0", "2"])
        .with_content_format(CoapFormat::TEXT_PLAIN)
        .with_payload("0='now',1");
    assert_eq!(h.request(update).code, Code::CHANGED);
    assert_eq!(
        h.take_events(),
        [
            ClientEvent::Executed {
                path: p("/3/0/4"),
                args: None
            },
            ClientEvent::Executed {
                path: p("/5/0/2"),
                args: Some("0='now',1".into())
            },
        ]
    );
    for (path, code) in [
        (["3", "0", "0"], Code::METHOD_NOT_ALLOWED), // read-only, not executable
        (["3", "0", "99"], Code::NOT_FOUND),
        (["3", "1", "4"], Code::NOT_FOUND),
    ] {
        assert_eq!(h.request(Request::post().with_path(path)).code, code);
    }
    let bad_args = Request::post()
        .with_path(["3", "0", "4"])
        .with_payload(vec![0xFF, 0xFE]);
    assert_eq!(h.request(bad_args).code, Code::BAD_REQUEST);
    assert!(h.take_events().is_empty());
}

#[test]
fn writing_the_lifetime_sends_an_update_with_it() {
    let mut h = registered(Lwm2mVersion::V1_1);
    assert_eq!(h.request(text_put("/1/0/1", "600")).code, Code::CHANGED);
    let update = h.answer(Response::new(Code::CHANGED));
    assert_eq!(update.path(), ["rd", "5a3f"]);
    assert_eq!(update.query(), ["lt=600"]);
    assert_eq!(h.client.lifetime(), 600);
    // Writing the same value again changes nothing.
    assert_eq!(h.request(text_put("/1/0/1", "600")).code, Code::CHANGED);
    assert!(h.inbox.is_empty());
}

#[test]
fn registration_update_trigger_sends_an_update() {
    let mut h = registered(Lwm2mVersion::V1_1);
    let r = h.request(Request::post().with_path(["1", "0", "8"]));
    assert_eq!(r.code, Code::CHANGED);
    let update = h.inbox.front().map(|(r, _)| r.clone()).expect("an Update");
    assert_eq!(update.path(), ["rd", "5a3f"]);
}

fn energy(id: u16) -> ObjectInstance {
    ObjectInstance::new(
        id,
        [
            Resource::single(5700, Value::Float(12.5)),
            Resource::single(5750, Value::String("mains".into())),
        ],
    )
}

#[test]
fn create_and_delete_instances_then_update_the_links() {
    let mut h = registered(Lwm2mVersion::V1_0);
    h.client.store_mut().support(3331);
    let object = Node::Object {
        id: 3331,
        instances: [(5, energy(5))].into(),
    };
    let create = Request::post()
        .with_path(["3331"])
        .with_content_format(CoapFormat::LWM2M_TLV)
        .with_payload(encode(ContentFormat::Tlv, &p("/3331"), &object).unwrap());
    let r = h.request(create.clone());
    assert_eq!(r.code, Code::CREATED);
    assert_eq!(r.location_path(), ["3331", "5"]);
    assert_eq!(
        h.take_events(),
        [ClientEvent::Created { path: p("/3331/5") }]
    );
    assert_eq!(
        h.client.store().get(&p("/3331/5/5700")),
        Some(&Value::Float(12.5))
    );
    // The client tells the server its new objects (TS Core 1.1 §6.2.2).
    let update = h.answer(Response::new(Code::CHANGED));
    assert_eq!(update.path(), ["rd", "5a3f"]);
    assert!(
        String::from_utf8(update.payload)
            .unwrap()
            .contains("</3331/5>")
    );
    // The same ID again: 4.00.
    assert_eq!(h.request(create).code, Code::BAD_REQUEST);
    // Resources alone: the client picks the ID.
    let bare = Request::post()
        .with_path(["3331"])
        .with_content_format(CoapFormat::LWM2M_TLV)
        .with_payload(
            encode(
                ContentFormat::Tlv,
                &p("/3331/0"),
                &Node::Instance(energy(0)),
            )
            .unwrap(),
        );
    let r = h.request(bare);
    assert_eq!(r.location_path(), ["3331", "0"]);
    h.answer(Response::new(Code::CHANGED));
    // Delete.
    let r = h.request(Request::delete().with_path(["3331", "5"]));
    assert_eq!(r.code, Code::DELETED);
    assert!(!h.client.store().has_instance(3331, 5));
    let update = h.answer(Response::new(Code::CHANGED));
    assert!(
        !String::from_utf8(update.payload)
            .unwrap()
            .contains("</3331/5>")
    );
    h.take_events();
    for (request, code) in [
        (Request::delete().with_path(["3331", "5"]), Code::NOT_FOUND),
        (
            Request::delete().with_path(["3331"]),
            Code::METHOD_NOT_ALLOWED,
        ),
        (
            Request::delete().with_path(["3", "0", "1"]),
            Code::METHOD_NOT_ALLOWED,
        ),
        (Request::delete().with_path(["0", "0"]), Code::UNAUTHORIZED),
        (
            // Device is a single-instance object that exists.
            Request::post()
                .with_path(["3"])
                .with_content_format(CoapFormat::LWM2M_TLV)
                .with_payload(
                    encode(
                        ContentFormat::Tlv,
                        &p("/3/1"),
                        &Node::Instance(ObjectInstance::new(
                            1,
                            [Resource::single(13, Value::Time(1))],
                        )),
                    )
                    .unwrap(),
                ),
            Code::BAD_REQUEST,
        ),
        (
            Request::post()
                .with_path(["9"])
                .with_content_format(CoapFormat::LWM2M_TLV)
                .with_payload(
                    encode(
                        ContentFormat::Tlv,
                        &p("/9/0"),
                        &Node::Instance(ObjectInstance::new(0, [])),
                    )
                    .unwrap(),
                ),
            Code::NOT_FOUND, // object 9 is not supported by this meter
        ),
    ] {
        assert_eq!(
            h.request(request.clone()).code,
            code,
            "{:?}",
            request.path()
        );
    }
    assert!(h.take_events().is_empty());
    assert!(h.inbox.is_empty(), "failed operations trigger no Update");
}

#[test]
fn discover_lists_instances_resources_dim_and_attributes() {
    let mut h = registered(Lwm2mVersion::V1_1);
    let r = h.request(
        Request::put()
            .with_path(["3", "0", "9"])
            .with_query("pmin=10")
            .with_query("pmax=60"),
    );
    assert_eq!(r.code, Code::CHANGED);
    let discover = |path: &str| get(path).with_accept(CoapFormat::LINK_FORMAT);
    let r = h.request(discover("/3"));
    assert_eq!(r.code, Code::CONTENT);
    assert_eq!(r.content_format(), Some(CoapFormat::LINK_FORMAT));
    let text = String::from_utf8(r.payload).unwrap();
    assert!(
        text.starts_with("</3>;ver=1.2,</3/0>,</3/0/0>,</3/0/1>,</3/0/3>,</3/0/4>,</3/0/7>;dim=2,"),
        "{text}"
    );
    let links = parse_discover(&text).unwrap();
    let battery = links.iter().find(|l| l.path == p("/3/0/9")).unwrap();
    assert_eq!(battery.attributes.pmin, Some(10));
    assert_eq!(battery.attributes.pmax, Some(60));
    let r = h.request(discover("/3/0/7"));
    assert_eq!(r.payload, b"</3/0/7>;dim=2");
    let r = h.request(discover("/3/0/9"));
    assert_eq!(r.payload, b"</3/0/9>;pmin=10;pmax=60");
    for (path, code) in [
        ("/3/0/99", Code::NOT_FOUND),
        ("/3/5", Code::NOT_FOUND),
        ("/77", Code::NOT_FOUND),
        ("/0", Code::UNAUTHORIZED),
    ] {
        assert_eq!(h.request(discover(path)).code, code, "{path}");
    }
    assert_eq!(
        h.request(Request::get().with_accept(CoapFormat::LINK_FORMAT))
            .code,
        Code::METHOD_NOT_ALLOWED
    );
}

#[test]
fn write_attributes_sets_unsets_and_refuses() {
    let mut h = registered(Lwm2mVersion::V1_1);
    let wa = |path: &str, query: &[&str]| {
        let mut r = Request::put().with_path(p(path).segments());
        for q in query {
            r = r.with_query(q);
        }
        r
    };
    assert_eq!(
        h.request(wa("/10243/0/6", &["pmin=5", "gt=1.5", "st=0.1"]))
            .code,
        Code::CHANGED
    );
    assert_eq!(
        h.client.attributes(&p("/10243/0/6")),
        NotifyAttributes {
            pmin: Some(5),
            gt: Some(1.5),
            st: Some(0.1),
            ..NotifyAttributes::default()
        }
    );
    assert_eq!(h.request(wa("/10243/0/6", &["gt"])).code, Code::CHANGED);
    assert_eq!(h.client.attributes(&p("/10243/0/6")).gt, None);
    assert_eq!(h.request(wa("/10243", &["pmax=900"])).code, Code::CHANGED);
    for (path, query, code) in [
        ("/10243/0", &["gt=5"][..], Code::BAD_REQUEST), // thresholds belong to resources
        ("/10243/0/6", &["dim=3"][..], Code::BAD_REQUEST), // not writable
        ("/10243/0/6", &["pmin=soon"][..], Code::BAD_REQUEST),
        ("/10243/0/6", &["lt=9", "gt=3"][..], Code::BAD_REQUEST),
        ("/10243/0/99", &["pmin=1"][..], Code::NOT_FOUND),
        ("/10243/4", &["pmin=1"][..], Code::NOT_FOUND),
        ("/0/0", &["pmin=1"][..], Code::UNAUTHORIZED),
    ] {
        assert_eq!(h.request(wa(path, query)).code, code, "{path} {query:?}");
    }
    assert_eq!(h.client.attributes(&p("/10243")).pmax, Some(900));
}

fn names(paths: &[&str]) -> Vec<Record> {
    paths
        .iter()
        .map(|s| Record {
            path: p(s),
            time: None,
            value: None,
        })
        .collect()
}

fn fetch(format: ContentFormat, paths: &[&str]) -> Request {
    Request::new(Method::Fetch)
        .with_content_format(cf(format))
        .with_payload(encode_records(format, &names(paths)).unwrap())
}

#[test]
fn read_composite_gathers_several_paths() {
    let mut h = registered(Lwm2mVersion::V1_1);
    let r = h.request(fetch(
        ContentFormat::SenmlJson,
        &["/3/0/0", "/4/0/2", "/10243/0", "/3/9"],
    ));
    assert_eq!(r.code, Code::CONTENT);
    assert_eq!(r.content_format(), Some(CoapFormat::SENML_JSON));
    let records = decode_records(
        ContentFormat::SenmlJson,
        &Path::Root,
        &r.payload,
        ObjectModel::builtin(),
    )
    .unwrap();
    let got: Vec<(Path, Option<Value>)> = records.into_iter().map(|r| (r.path, r.value)).collect();
    assert_eq!(got[0], (p("/3/0/0"), Some(Value::String("Ferrite".into()))));
    assert_eq!(got[1], (p("/4/0/2"), Some(Value::Integer(-93))));
    assert_eq!(
        got.len(),
        2 + 4,
        "/10243/0 has four values, /3/9 does not exist"
    );
    // Accept picks the answer's format.
    let r =
        h.request(fetch(ContentFormat::SenmlJson, &["/3/0/9"]).with_accept(CoapFormat::SENML_CBOR));
    assert_eq!(r.content_format(), Some(CoapFormat::SENML_CBOR));
    assert_eq!(
        h.request(fetch(ContentFormat::SenmlCbor, &["/3/9", "/0/0"]))
            .code,
        Code::NOT_FOUND
    );
    let tlv = Request::new(Method::Fetch)
        .with_content_format(CoapFormat::LWM2M_TLV)
        .with_payload(vec![0xC1, 0x00, 0x01]);
    assert_eq!(h.request(tlv).code, Code::UNSUPPORTED_CONTENT_FORMAT);
    let r =
        h.request(fetch(ContentFormat::SenmlJson, &["/3/0/9"]).with_accept(CoapFormat::LWM2M_TLV));
    assert_eq!(r.code, Code::NOT_ACCEPTABLE);
    // Not in 1.0.
    let mut h = registered(Lwm2mVersion::V1_0);
    assert_eq!(
        h.request(fetch(ContentFormat::SenmlJson, &["/3/0/0"])).code,
        Code::METHOD_NOT_ALLOWED
    );
}

#[test]
fn write_composite_writes_each_record() {
    let mut h = registered(Lwm2mVersion::V1_1);
    let records = [
        Record::new(p("/3/0/13"), Value::Time(1_700_000_200)),
        Record::new(p("/1/0/1"), Value::Integer(900)),
    ];
    let request = Request::new(Method::IPatch)
        .with_content_format(CoapFormat::SENML_CBOR)
        .with_payload(encode_records(ContentFormat::SenmlCbor, &records).unwrap());
    assert_eq!(h.request(request).code, Code::CHANGED);
    assert_eq!(
        h.client.store().get(&p("/3/0/13")),
        Some(&Value::Time(1_700_000_200))
    );
    assert_eq!(
        h.client.store().get(&p("/1/0/1")),
        Some(&Value::Integer(900))
    );
    assert_eq!(
        h.take_events(),
        [
            ClientEvent::Written { path: p("/3/0/13") },
            ClientEvent::Written { path: p("/1/0/1") },
        ]
    );
    let read_only = [Record::new(p("/3/0/0"), Value::String("x".into()))];
    let request = Request::new(Method::IPatch)
        .with_content_format(CoapFormat::SENML_JSON)
        .with_payload(encode_records(ContentFormat::SenmlJson, &read_only).unwrap());
    assert_eq!(h.request(request).code, Code::METHOD_NOT_ALLOWED);
}
