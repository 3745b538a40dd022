//! Proptest strategies shared by the codec tests: values of each type and object instances that
//! follow a definition from the object model.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::model::ObjectDef;
use crate::node::{ObjectInstance, Resource, ResourceValue};
use crate::value::{ObjLink, ResourceType, Value};

/// Any value of type `ty` (finite floats only: NaN never compares equal after a round trip).
pub fn value_of(ty: ResourceType) -> BoxedStrategy<Value> {
    match ty {
        ResourceType::String => ".{0,40}".prop_map(Value::String).boxed(),
        ResourceType::Corelnk => "</[0-9]{1,4}/[0-9]{1,3}>".prop_map(Value::Corelnk).boxed(),
        ResourceType::Integer => any::<i64>().prop_map(Value::Integer).boxed(),
        ResourceType::UnsignedInteger => any::<u64>().prop_map(Value::UnsignedInteger).boxed(),
        ResourceType::Float => any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(Value::Float)
            .boxed(),
        ResourceType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ResourceType::Opaque => proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(Value::Opaque)
            .boxed(),
        ResourceType::Time => any::<i64>().prop_map(Value::Time).boxed(),
        ResourceType::Objlnk => (any::<u16>(), any::<u16>())
            .prop_map(|(object, instance)| Value::Objlnk(ObjLink { object, instance }))
            .boxed(),
        ResourceType::None => Just(Value::None).boxed(),
    }
}

/// An instance `id` of `def` with a random subset of its readable, valued resources, each with a
/// value of its declared type (multiple-instance resources get 0..4 instances with sparse IDs).
pub fn instance_of(def: &'static ObjectDef, id: u16) -> BoxedStrategy<ObjectInstance> {
    let resources: Vec<BoxedStrategy<Option<Resource>>> = def
        .resources
        .iter()
        .filter(|r| r.ty != ResourceType::None)
        .map(|r| {
            let rid = r.id;
            let single = value_of(r.ty);
            let content = if r.multiple {
                proptest::collection::btree_map(0u16..500, value_of(r.ty), 0..4)
                    .prop_map(move |m: BTreeMap<u16, Value>| Resource {
                        id: rid,
                        value: ResourceValue::Multiple(m),
                    })
                    .boxed()
            } else {
                single.prop_map(move |v| Resource::single(rid, v)).boxed()
            };
            proptest::option::of(content).boxed()
        })
        .collect();
    resources
        .prop_map(move |rs| ObjectInstance::new(id, rs.into_iter().flatten()))
        .boxed()
}
