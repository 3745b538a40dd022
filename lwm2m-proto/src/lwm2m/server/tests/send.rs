//! The clients' Send (`POST /dp`, TS Core 1.1 §6.4.6) and its refusals (TS Transport 1.1
//! Table 6.7-4).

use super::*;

const ENERGY: Path = Path::Resource(10243, 0, 14);

fn send_request(format: Format, records: &[Record]) -> Request {
    Request::post()
        .with_path(["dp"])
        .with_content_format(ContentFormat(format.to_u16()))
        .with_payload(codec::encode_records(format, records).expect("encodes"))
}

/// A day's store-and-forward backlog: 15-minute cumulative energy readings with their times.
fn readings(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            path: ENERGY,
            time: Some(1_700_000_000.0 + 900.0 * i as f64),
            value: Some(Value::Float(1000.0 + 0.25 * i as f64)),
        })
        .collect()
}

#[test]
fn send_with_a_time_series_is_delivered_and_answered_2_04() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "m");
    for format in [Format::SenmlCbor, Format::SenmlJson] {
        let records = readings(96);
        let req = net.send(dev, send_request(format, &records));
        assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::CHANGED));
        let events = net.take_events();
        assert_eq!(
            events,
            [ServerEvent::Send {
                endpoint: "m".into(),
                registration: reg.id,
                records
            }],
            "{format:?}"
        );
    }
}

/// A LwM2M 1.2 client may Send in LwM2M CBOR (11544, no times): decoded like SenML.
#[test]
fn send_in_lwm2m_cbor_is_delivered() {
    let mut net = Net::new(config());
    let (dev, reg) = registered_meter(&mut net, "m");
    let records = vec![
        Record::new(ENERGY, Value::Float(1234.5)),
        Record::new(Path::Resource(3, 0, 9), Value::Integer(87)),
    ];
    let req = net.send(dev, send_request(Format::Lwm2mCbor, &records));
    assert_eq!(net.response(dev, req).map(|r| r.code), Some(Code::CHANGED));
    let mut expected = records;
    expected.sort_by_key(|r| r.path.ids());
    assert_eq!(
        net.take_events(),
        [ServerEvent::Send {
            endpoint: "m".into(),
            registration: reg.id,
            records: expected
        }]
    );
}

#[test]
fn sends_that_cannot_be_taken_are_refused() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    let stranger = net.device(PeerAuth::NoSec);
    let cases = [
        // Not registered at all: 4.04 (Table 6.7-4 "Reported Object was not registered").
        (
            stranger,
            send_request(Format::SenmlCbor, &readings(1)),
            Code::NOT_FOUND,
        ),
        // An instance the client did not register: 4.04.
        (
            dev,
            send_request(
                Format::SenmlCbor,
                &[Record::new(Path::Resource(10243, 7, 14), Value::Float(1.0))],
            ),
            Code::NOT_FOUND,
        ),
        // Not SenML: 4.00.
        (
            dev,
            Request::post()
                .with_path(["dp"])
                .with_content_format(ContentFormat::LWM2M_TLV)
                .with_payload(vec![0xc1, 0x00, 0x01]),
            Code::BAD_REQUEST,
        ),
        // Undecodable: 4.00.
        (
            dev,
            Request::post()
                .with_path(["dp"])
                .with_content_format(ContentFormat::SENML_JSON)
                .with_payload("[{\"n\":"),
            Code::BAD_REQUEST,
        ),
    ];
    for (who, request, code) in cases {
        let req = net.send(who, request);
        assert_eq!(net.response(who, req).map(|r| r.code), Some(code));
    }
    let reasons: Vec<SendRefusal> = net
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::SendRefused { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 4);
    assert_eq!(reasons[0], SendRefusal::NotRegistered);
    assert_eq!(
        reasons[1],
        SendRefusal::InstanceNotRegistered(Path::Resource(10243, 7, 14))
    );
    assert_eq!(
        reasons[2],
        SendRefusal::UnsupportedContentFormat(Some(11542))
    );
    assert!(matches!(reasons[3], SendRefusal::DecodeFailed(_)));
}

#[test]
fn a_send_from_the_right_address_with_another_identity_is_forbidden() {
    let mut net = Net::new(config());
    let (dev, _) = registered_meter(&mut net, "m");
    // Same address, other identity (e.g. the NoSec socket while it registered over DTLS).
    let addr = net.devices[dev].addr;
    let mut coap = CoapEndpoint::new(CoapConfig::default(), 99);
    coap.request(
        net.now,
        net.server_addr,
        send_request(Format::SenmlCbor, &readings(1)),
    );
    while let Some(t) = coap.poll_transmit() {
        net.server
            .handle_datagram(net.now, addr, PeerAuth::NoSec, &t.bytes);
    }
    net.flush();
    assert!(matches!(
        net.take_events().as_slice(),
        [ServerEvent::SendRefused {
            code,
            reason: SendRefusal::IdentityMismatch,
            ..
        }] if *code == Code::FORBIDDEN
    ));
}
