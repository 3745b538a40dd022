//! Device-management operations (TS Core 1.1 §6.3) end to end: the request the device sees
//! (method, path, Accept / Content-Format, payload) and the typed outcome the server reports.

use std::collections::BTreeMap;

use lwm2m_objects::ObjectModel;
use lwm2m_objects::link::Attributes;

use super::*;
use crate::coap::Method;
use crate::coap::option::URI_QUERY;

fn decode_request(format: Format, path: Path, request: &Request) -> Node {
    codec::decode(format, &path, &request.payload, ObjectModel::builtin()).expect("decodes")
}

#[test]
fn read_device_object_from_1_0_and_1_1_clients_with_the_right_accept() {
    let mut net = Net::new(config());
    let v10 = net.device(PeerAuth::NoSec);
    net.register(v10, &["ep=old", "lwm2m=1.0"], METER_LINKS_1_0);
    let (v11, _) = registered_meter(&mut net, "new");
    let json = net.device(PeerAuth::NoSec);
    net.register(
        json,
        &["ep=json", "lwm2m=1.1"],
        r#"</>;rt="oma.lwm2m";ct=110,</3/0>"#,
    );
    let expected = Node::Instance(device_instance());
    for (dev, ep, format) in [
        (v10, "old", Format::Tlv),
        (v11, "new", Format::SenmlCbor),
        (json, "json", Format::SenmlJson),
    ] {
        let op = net
            .server
            .request(net.now, ep, Operation::Read(Path::Instance(3, 0)))
            .expect("sent");
        net.flush();
        let request = net.serve(dev, |_| content(format, Path::Instance(3, 0), &expected));
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.path(), ["3", "0"]);
        assert_eq!(
            request.accept(),
            Some(ContentFormat(format.to_u16())),
            "{ep}"
        );
        // Decoded and typed through the object model.
        assert_eq!(
            net.outcome(op),
            OpOutcome::Content(Content::Node {
                path: Path::Instance(3, 0),
                node: expected.clone()
            }),
            "{ep}"
        );
    }
}

#[test]
fn write_replace_is_put_and_partial_update_is_post() {
    let mut net = Net::new(config());
    let v10 = net.device(PeerAuth::NoSec);
    net.register(v10, &["ep=old"], METER_LINKS_1_0);
    let (v11, _) = registered_meter(&mut net, "new");
    let instance = ObjectInstance::new(
        0,
        [
            Resource::single(1, Value::Integer(600)),
            Resource::single(7, Value::String("UQ".into())),
        ],
    );
    let node = Node::Instance(instance);
    for (dev, ep, format, mode, method) in [
        (v10, "old", Format::Tlv, WriteMode::Replace, Method::Put),
        (
            v11,
            "new",
            Format::SenmlCbor,
            WriteMode::PartialUpdate,
            Method::Post,
        ),
    ] {
        let write = Operation::Write {
            path: Path::Instance(1, 0),
            node: node.clone(),
            mode,
        };
        let op = net.server.request(net.now, ep, write).expect("sent");
        net.flush();
        let request = net.serve(dev, |_| Response::new(Code::CHANGED));
        assert_eq!(request.method, method);
        assert_eq!(request.path(), ["1", "0"]);
        assert_eq!(
            request.content_format(),
            Some(ContentFormat(format.to_u16()))
        );
        assert_eq!(decode_request(format, Path::Instance(1, 0), &request), node);
        assert_eq!(net.outcome(op), OpOutcome::Changed);
    }
}

#[test]
fn execute_sends_its_arguments_as_text() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let op = net
        .server
        .request(
            net.now,
            "m",
            Operation::Execute {
                path: Path::Resource(3, 0, 4),
                args: Some("0='reboot-now',1".into()),
            },
        )
        .expect("sent");
    net.flush();
    let request = net.serve(dev, |_| Response::new(Code::CHANGED));
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.path(), ["3", "0", "4"]);
    assert_eq!(request.payload, b"0='reboot-now',1");
    assert_eq!(request.content_format(), Some(ContentFormat::TEXT_PLAIN));
    assert_eq!(net.outcome(op), OpOutcome::Changed);
    // Without arguments: no payload, no Content-Format.
    let execute = Operation::Execute {
        path: Path::Resource(3, 0, 4),
        args: None,
    };
    let op = net.server.request(net.now, "m", execute).expect("sent");
    net.flush();
    let request = net.serve(dev, |_| Response::new(Code::METHOD_NOT_ALLOWED));
    assert!(request.payload.is_empty() && request.content_format().is_none());
    assert_eq!(
        net.completion(op),
        Some(&Err(OpError::Coap {
            code: Code::METHOD_NOT_ALLOWED,
            diagnostic: None
        }))
    );
}

#[test]
fn create_posts_the_instance_to_its_object_and_delete_removes_it() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::NoSec);
    net.register(dev, &["ep=old"], METER_LINKS_1_0);
    let instance = ObjectInstance::new(
        1,
        [
            Resource::single(0, Value::Integer(2)),
            Resource::single(1, Value::Integer(300)),
            Resource::single(7, Value::String("U".into())),
        ],
    );
    let create = Operation::Create {
        object: 1,
        instance: instance.clone(),
    };
    let op = net.server.request(net.now, "old", create).expect("sent");
    net.flush();
    let request = net.serve(dev, |_| {
        Response::new(Code::CREATED).with_location_path(["1", "1"])
    });
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.path(), ["1"]);
    assert_eq!(request.content_format(), Some(ContentFormat::LWM2M_TLV));
    // TLV wraps the resources in an Object Instance TLV carrying the ID (TS Core 1.1 §6.3.6).
    assert_eq!(
        decode_request(Format::Tlv, Path::Object(1), &request),
        Node::Object {
            id: 1,
            instances: BTreeMap::from([(1, instance)])
        }
    );
    assert_eq!(
        net.outcome(op),
        OpOutcome::Created {
            instance: Some(Path::Instance(1, 1))
        }
    );
    let op = net
        .server
        .request(net.now, "old", Operation::Delete(Path::Instance(1, 1)))
        .expect("sent");
    net.flush();
    let request = net.serve(dev, |_| Response::new(Code::DELETED));
    assert_eq!(
        (request.method, request.path()),
        (Method::Delete, args(&["1", "1"]))
    );
    assert_eq!(net.outcome(op), OpOutcome::Deleted);
}

#[test]
fn discover_returns_links_with_their_attributes() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let op = net
        .server
        .request(net.now, "m", Operation::Discover(Path::Instance(3, 0)))
        .expect("sent");
    net.flush();
    // TS Core 1.1 §6.3.2 example shape.
    let body = "</3/0>;pmin=10,</3/0/1>,</3/0/6>;dim=2,</3/0/9>;gt=50;lt=10.5;st=1";
    let request = net.serve(dev, |_| {
        Response::new(Code::CONTENT)
            .with_content_format(ContentFormat::LINK_FORMAT)
            .with_payload(body)
    });
    assert_eq!(request.accept(), Some(ContentFormat::LINK_FORMAT));
    let OpOutcome::Links(links) = net.outcome(op) else {
        panic!("links");
    };
    let paths: Vec<Path> = links.iter().map(|l| l.path).collect();
    assert_eq!(
        paths,
        [
            Path::Instance(3, 0),
            Path::Resource(3, 0, 1),
            Path::Resource(3, 0, 6),
            Path::Resource(3, 0, 9)
        ]
    );
    assert_eq!(links[0].attributes.pmin, Some(10));
    assert_eq!(links[2].attributes.dim, Some(2));
    assert_eq!(
        (
            links[3].attributes.gt,
            links[3].attributes.lt,
            links[3].attributes.st
        ),
        (Some(50.0), Some(10.5), Some(1.0))
    );
    // A broken answer is an error, not a panic.
    let op = net
        .server
        .request(net.now, "m", Operation::Discover(Path::Object(3)))
        .expect("sent");
    net.flush();
    net.serve(dev, |_| Response::new(Code::CONTENT).with_payload("</3/0"));
    assert!(matches!(
        net.completion(op),
        Some(Err(OpError::InvalidLinks(_)))
    ));
}

#[test]
fn write_attributes_is_put_with_a_query_string() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let attributes = Attributes {
        pmin: Some(10),
        pmax: Some(900),
        st: Some(0.5),
        epmin: Some(1),
        epmax: Some(60),
        ..Attributes::default()
    };
    let op = net
        .server
        .request(
            net.now,
            "m",
            Operation::WriteAttributes {
                path: Path::Resource(10243, 0, 14),
                attributes,
            },
        )
        .expect("sent");
    net.flush();
    let request = net.serve(dev, |_| Response::new(Code::CHANGED));
    assert_eq!(request.method, Method::Put);
    assert_eq!(request.path(), ["10243", "0", "14"]);
    let query: Vec<&[u8]> = request.options.get_all(URI_QUERY).collect();
    assert_eq!(
        query,
        [
            &b"pmin=10"[..],
            b"pmax=900",
            b"st=0.5",
            b"epmin=1",
            b"epmax=60"
        ]
    );
    assert!(request.payload.is_empty());
    assert_eq!(net.outcome(op), OpOutcome::Changed);
}

#[test]
fn read_composite_fetches_several_paths_as_senml() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let paths = vec![Path::Resource(3, 0, 9), Path::Resource(4, 0, 2)];
    let op = net
        .server
        .request(net.now, "m", Operation::ReadComposite(paths.clone()))
        .expect("sent");
    net.flush();
    let answer = vec![
        Record::new(Path::Resource(3, 0, 9), Value::Integer(87)),
        Record::new(Path::Resource(4, 0, 2), Value::Integer(-97)),
    ];
    let request = net.serve(dev, |_| records_response(Format::SenmlCbor, &answer));
    assert_eq!(request.method, Method::Fetch);
    assert!(request.path().is_empty());
    assert_eq!(request.content_format(), Some(ContentFormat::SENML_CBOR));
    assert_eq!(request.accept(), Some(ContentFormat::SENML_CBOR));
    let names = codec::decode_records(
        Format::SenmlCbor,
        &Path::Root,
        &request.payload,
        ObjectModel::builtin(),
    )
    .expect("names");
    assert_eq!(names.iter().map(|r| r.path).collect::<Vec<_>>(), paths);
    assert!(names.iter().all(|r| r.value.is_none()));
    assert_eq!(
        net.outcome(op),
        OpOutcome::Content(Content::Records(answer))
    );
    // Not for a 1.0 client.
    let dev10 = net.device(PeerAuth::NoSec);
    net.register(dev10, &["ep=old"], METER_LINKS_1_0);
    assert!(matches!(
        net.server
            .request(net.now, "old", Operation::ReadComposite(paths)),
        Err(OpError::NotSupported { .. })
    ));
}

#[test]
fn errors_timeouts_and_undecodable_content_are_reported() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    assert_eq!(
        net.server
            .request(net.now, "nobody", Operation::Read(Path::Object(3))),
        Err(OpError::UnknownEndpoint)
    );
    let read = |net: &mut Net, path| {
        let now = net.now;
        let op = net
            .server
            .request(now, "m", Operation::Read(path))
            .expect("sent");
        net.flush();
        op
    };
    let op = read(&mut net, Path::Instance(3, 1));
    net.serve(dev, |_| Response::new(Code::NOT_FOUND));
    assert_eq!(
        net.completion(op),
        Some(&Err(OpError::Coap {
            code: Code::NOT_FOUND,
            diagnostic: None
        }))
    );
    let op = read(&mut net, Path::Resource(3, 0, 9));
    net.serve(dev, |_| {
        Response::new(Code::CONTENT)
            .with_content_format(ContentFormat::SENML_CBOR)
            .with_payload(vec![0xff, 0x00, 0x13])
    });
    assert!(matches!(
        net.completion(op),
        Some(Err(OpError::DecodeFailed(_)))
    ));
    // The device goes silent: MAX_TRANSMIT_WAIT later the read times out.
    net.devices[dev].online = false;
    let op = read(&mut net, Path::Resource(3, 0, 9));
    net.advance(Duration::from_secs(60));
    assert_eq!(net.completion(op), None);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.completion(op), Some(&Err(OpError::Timeout)));
}

#[test]
fn in_flight_cap_queues_the_rest_and_sends_it_in_order() {
    let mut cfg = config();
    cfg.max_in_flight = 1;
    let mut net = Net::new(cfg);
    let (dev, _) = registered_meter(&mut net, "m");
    let first = net
        .server
        .request(net.now, "m", Operation::Read(Path::Resource(3, 0, 0)))
        .expect("sent");
    let second = net
        .server
        .request(net.now, "m", Operation::Read(Path::Resource(3, 0, 1)))
        .expect("queued");
    net.flush();
    assert!(matches!(
        net.take_events().as_slice(),
        [ServerEvent::OpQueued { op, .. }] if *op == second
    ));
    assert_eq!(net.devices[dev].inbox.len(), 1);
    let text = |v: &str| {
        let v = v.to_owned();
        move |_: &Request| {
            Response::new(Code::CONTENT)
                .with_content_format(ContentFormat::TEXT_PLAIN)
                .with_payload(v)
        }
    };
    let request = net.serve(dev, text("Ferrite Meters"));
    assert_eq!(request.path(), ["3", "0", "0"]);
    let request = net.serve(dev, text("FM-100"));
    assert_eq!(request.path(), ["3", "0", "1"]);
    for (op, id, value) in [(first, 0, "Ferrite Meters"), (second, 1, "FM-100")] {
        let OpOutcome::Content(Content::Node { node, .. }) = net.outcome(op) else {
            panic!("content");
        };
        assert_eq!(
            node,
            Node::Resource(Resource::single(id, Value::String(value.into())))
        );
    }
}

#[test]
fn requests_go_under_an_alternate_root_path() {
    let mut net = Net::new(config());
    let dev = net.device(PeerAuth::NoSec);
    net.register(
        dev,
        &["ep=alt", "lwm2m=1.1"],
        r#"</lwm2m>;rt="oma.lwm2m",</lwm2m/3/0>"#,
    );
    let op = net
        .server
        .request(net.now, "alt", Operation::Read(Path::Resource(3, 0, 9)))
        .expect("sent");
    net.flush();
    let node = Node::Resource(Resource::single(9, Value::Integer(12)));
    let request = net.serve(dev, |_| {
        content(Format::SenmlCbor, Path::Resource(3, 0, 9), &node)
    });
    assert_eq!(request.path(), ["lwm2m", "3", "0", "9"]);
    assert_eq!(
        net.outcome(op),
        OpOutcome::Content(Content::Node {
            path: Path::Resource(3, 0, 9),
            node
        })
    );
}
