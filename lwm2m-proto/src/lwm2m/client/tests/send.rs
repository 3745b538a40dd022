//! Send (`POST /dp`, OMA LwM2M TS Core 1.1 §6.4.4): a time series in SenML, its outcome as an
//! event, and the refusals (1.0 client, not registered).

use std::time::Duration;

use lwm2m_objects::codec::{Record, decode_records};
use lwm2m_objects::{ContentFormat, ObjectModel, Path, Value};

use super::*;
use crate::coap::{ContentFormat as CoapFormat, FailureReason, Method};
use crate::lwm2m::client::{ClientError, RequestFailure, SendId};

/// Four 15-minute readings of the active energy register (kWh) with their timestamps.
fn readings() -> Vec<Record> {
    (0..4)
        .map(|i| Record {
            path: Path::Resource(10243, 0, 14),
            time: Some(1_700_000_000.0 + 900.0 * f64::from(i)),
            value: Some(Value::Float(1234.5 + 0.4 * f64::from(i))),
        })
        .collect()
}

#[test]
fn send_posts_a_senml_time_series() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    h.register();
    let id = h.client.send(h.now, &readings()).unwrap();
    assert_eq!(id, SendId(0));
    h.pump();
    let request = h.answer(Response::new(Code::CHANGED));
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.path(), ["dp"]);
    assert_eq!(request.content_format(), Some(CoapFormat::SENML_CBOR));
    let got = decode_records(
        ContentFormat::SenmlCbor,
        &Path::Root,
        &request.payload,
        ObjectModel::builtin(),
    )
    .unwrap();
    assert_eq!(got, readings());
    assert_eq!(
        h.take_events(),
        [ClientEvent::SendCompleted { id, result: Ok(()) }]
    );
    // A second send gets the next ID; JSON when configured.
    let mut h = Harness::new(ClientConfig {
        send_format: ContentFormat::SenmlJson,
        ..config(Lwm2mVersion::V1_1)
    });
    h.register();
    h.client.send(h.now, &readings()).unwrap();
    let second = h.client.send(h.now, &readings()[..1]).unwrap();
    assert_eq!(second, SendId(1));
    h.pump();
    let first = h.answer(Response::new(Code::CHANGED));
    assert_eq!(first.content_format(), Some(CoapFormat::SENML_JSON));
    h.answer(Response::new(Code::CHANGED));
    assert_eq!(h.take_events().len(), 2);
}

#[test]
fn send_failures_are_reported() {
    let mut h = Harness::new(config(Lwm2mVersion::V1_1));
    assert_eq!(
        h.client.send(h.now, &readings()),
        Err(ClientError::NotRegistered)
    );
    h.register();
    let rejected = h.client.send(h.now, &readings()).unwrap();
    h.pump();
    h.answer(Response::new(Code::NOT_FOUND));
    assert_eq!(
        h.take_events(),
        [ClientEvent::SendCompleted {
            id: rejected,
            result: Err(RequestFailure::Rejected(Code::NOT_FOUND))
        }]
    );
    h.drop_uplink = true;
    let lost = h.client.send(h.now, &readings()).unwrap();
    h.advance(Duration::from_secs(100));
    assert_eq!(
        h.take_events(),
        [ClientEvent::SendCompleted {
            id: lost,
            result: Err(RequestFailure::Transport(FailureReason::Timeout))
        }]
    );
    let mut h = Harness::new(config(Lwm2mVersion::V1_0));
    h.register();
    assert_eq!(
        h.client.send(h.now, &readings()),
        Err(ClientError::NotSupported(Lwm2mVersion::V1_0))
    );
}
