//! Decode/encode cost of a full Device object instance (/3/0) in TLV, SenML JSON and SenML CBOR,
//! through the public `codec::{decode, encode}` API: what a server pays per Read of /3/0.
//!
//! Kept short on purpose (small samples, 1 s measurement per case) so the whole run stays well
//! under a minute on a shared 2-core machine: `cargo bench -p lwm2m-objects --bench codecs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lwm2m_objects::codec::{self, ContentFormat};
use lwm2m_objects::{Node, ObjectInstance, ObjectModel, Path, Resource, Value};

/// A smart meter's /3/0 as it would answer a Read: every readable resource of the Device object
/// (OMA object 3, Device); the executable ones (4 Reboot, 5 Factory Reset,
/// 12 Reset Error Code) carry no value and are absent.
fn device_instance() -> Node {
    let s = |v: &str| Value::String(v.to_owned());
    Node::Instance(ObjectInstance::new(
        0,
        [
            Resource::single(0, s("Ferrite Metering GmbH")),
            Resource::single(1, s("FM-3000 Smart Electricity Meter")),
            Resource::single(2, s("FM3K-2024-000123456")),
            Resource::single(3, s("4.2.17+build.8812")),
            // Power sources: 0 = DC power, 1 = internal battery.
            Resource::multiple(6, [(0, Value::Integer(0)), (1, Value::Integer(1))]),
            // Millivolts and milliamperes per power source.
            Resource::multiple(
                7,
                [(0, Value::Integer(230_400)), (1, Value::Integer(3_600))],
            ),
            Resource::multiple(8, [(0, Value::Integer(125)), (1, Value::Integer(4))]),
            Resource::single(9, Value::Integer(87)),
            Resource::single(10, Value::Integer(1_842)),
            Resource::multiple(11, [(0, Value::Integer(0))]),
            Resource::single(13, Value::Time(1_767_225_600)),
            Resource::single(14, s("+01:00")),
            Resource::single(15, s("Europe/Berlin")),
            Resource::single(16, s("UQ")),
            Resource::single(17, s("electricity-meter")),
            Resource::single(18, s("HW-rev-C")),
            Resource::single(19, s("metrology-2.9.1")),
            Resource::single(20, Value::Integer(0)),
            Resource::single(21, Value::Integer(8_192)),
        ],
    ))
}

fn codecs(c: &mut Criterion) {
    let path = Path::Instance(3, 0);
    let node = device_instance();
    let model = ObjectModel::builtin();
    let mut group = c.benchmark_group("device_3_0");
    for (name, format) in [
        ("tlv", ContentFormat::Tlv),
        ("senml_json", ContentFormat::SenmlJson),
        ("senml_cbor", ContentFormat::SenmlCbor),
    ] {
        let bytes = match codec::encode(format, &path, &node) {
            Ok(bytes) => bytes,
            Err(e) => panic!("{name}: the Device instance does not encode: {e}"),
        };
        // Benchmark what is correct: the payload must decode back to the instance.
        match codec::decode(format, &path, &bytes, model) {
            Ok(decoded) if decoded == node => {}
            other => panic!("{name}: {} bytes decode to {other:?}", bytes.len()),
        }
        println!("{name}: /3/0 is {} bytes", bytes.len());
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| codec::encode(format, black_box(&path), black_box(&node)))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| codec::decode(format, black_box(&path), black_box(&bytes), model))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = codecs
}
criterion_main!(benches);
