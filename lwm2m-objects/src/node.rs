//! Typed nodes of the object tree: an object, an object instance, a resource (single or
//! multiple-instance), or one resource instance; and the conversion between a node and the flat
//! list of `(path, value)` entries that SenML and LwM2M JSON carry.

use std::collections::BTreeMap;

use crate::path::Path;
use crate::value::Value;

/// The content found at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// All instances of an object (`/3`).
    Object {
        id: u16,
        instances: BTreeMap<u16, ObjectInstance>,
    },
    /// One object instance (`/3/0`).
    Instance(ObjectInstance),
    /// One resource (`/3/0/7`), single or multiple-instance.
    Resource(Resource),
    /// One instance of a multiple-instance resource (`/3/0/7/1`).
    ResourceInstance { id: u16, value: Value },
}

/// An object instance and its resources, by resource ID.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectInstance {
    pub id: u16,
    pub resources: BTreeMap<u16, Resource>,
}

/// A resource with its value(s).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: u16,
    pub value: ResourceValue,
}

/// The value of a single-instance resource, or the instances of a multiple-instance one.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceValue {
    Single(Value),
    Multiple(BTreeMap<u16, Value>),
}

/// Why a flat list of entries does not form the node asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TreeError {
    #[error("{path} is not inside the requested path {requested}")]
    OutsideRequest { requested: Path, path: Path },
    #[error(
        "{path} names a {depth}-segment path; values belong to resources or resource instances"
    )]
    NotAValuePath { path: Path, depth: usize },
    #[error("{path} is given both as a single resource and with resource instances")]
    MixedMultiplicity { path: Path },
    #[error("no value was found for the requested path {requested}")]
    Empty { requested: Path },
    #[error("the root path cannot hold a single node; use entries per object")]
    RootNode,
}

impl Resource {
    pub fn single(id: u16, value: Value) -> Resource {
        Resource {
            id,
            value: ResourceValue::Single(value),
        }
    }

    pub fn multiple(id: u16, instances: impl IntoIterator<Item = (u16, Value)>) -> Resource {
        Resource {
            id,
            value: ResourceValue::Multiple(instances.into_iter().collect()),
        }
    }
}

impl ObjectInstance {
    pub fn new(id: u16, resources: impl IntoIterator<Item = Resource>) -> ObjectInstance {
        ObjectInstance {
            id,
            resources: resources.into_iter().map(|r| (r.id, r)).collect(),
        }
    }

    /// The value of single-instance resource `id`, if present.
    pub fn value(&self, id: u16) -> Option<&Value> {
        match &self.resources.get(&id)?.value {
            ResourceValue::Single(v) => Some(v),
            ResourceValue::Multiple(_) => None,
        }
    }
}

impl Node {
    /// Appends every value in this node to `out` as `(path, value)`, in path order. `at` is the
    /// path this node was read from (its object ID and instance ID come from there).
    pub fn flatten_into<'a>(&'a self, at: &Path, out: &mut Vec<(Path, &'a Value)>) {
        fn resource<'a>(o: u16, i: u16, r: &'a Resource, out: &mut Vec<(Path, &'a Value)>) {
            match &r.value {
                ResourceValue::Single(v) => out.push((Path::Resource(o, i, r.id), v)),
                ResourceValue::Multiple(values) => {
                    for (ri, v) in values {
                        out.push((Path::ResourceInstance(o, i, r.id, *ri), v));
                    }
                }
            }
        }
        fn instance<'a>(o: u16, inst: &'a ObjectInstance, out: &mut Vec<(Path, &'a Value)>) {
            for r in inst.resources.values() {
                resource(o, inst.id, r, out);
            }
        }
        match (self, *at) {
            (Node::Object { id, instances }, _) => {
                for inst in instances.values() {
                    instance(*id, inst, out);
                }
            }
            (Node::Instance(inst), p) => {
                if let Some(o) = p.object_id() {
                    instance(o, inst, out);
                }
            }
            (Node::Resource(r), p) => {
                if let (Some(o), Some(i)) = (p.object_id(), p.instance_id()) {
                    resource(o, i, r, out);
                }
            }
            (Node::ResourceInstance { id, value }, p) => {
                if let (Some(o), Some(i), Some(r)) =
                    (p.object_id(), p.instance_id(), p.resource_id())
                {
                    out.push((Path::ResourceInstance(o, i, r, *id), value));
                }
            }
        }
    }

    /// Every value in this node as `(path, value)`, in path order.
    pub fn flatten(&self, at: &Path) -> Vec<(Path, &Value)> {
        let mut out = Vec::new();
        self.flatten_into(at, &mut out);
        out
    }

    /// Builds the node at `requested` from flat `(path, value)` entries (what SenML and LwM2M JSON
    /// carry). Every entry must lie inside `requested` and name a resource or resource instance.
    /// When a path repeats (a time series), the later entry wins: callers that want every point
    /// keep the records instead.
    pub fn from_entries(
        requested: &Path,
        entries: impl IntoIterator<Item = (Path, Value)>,
    ) -> Result<Node, TreeError> {
        let mut instances: BTreeMap<(u16, u16), ObjectInstance> = BTreeMap::new();
        for (path, value) in entries {
            if !requested.contains(&path) {
                return Err(TreeError::OutsideRequest {
                    requested: *requested,
                    path,
                });
            }
            match path {
                Path::Resource(o, i, r) => {
                    let inst = instances.entry((o, i)).or_insert_with(|| ObjectInstance {
                        id: i,
                        ..Default::default()
                    });
                    if let Some(Resource {
                        value: ResourceValue::Multiple(_),
                        ..
                    }) = inst.resources.get(&r)
                    {
                        return Err(TreeError::MixedMultiplicity { path });
                    }
                    inst.resources.insert(r, Resource::single(r, value));
                }
                Path::ResourceInstance(o, i, r, ri) => {
                    let inst = instances.entry((o, i)).or_insert_with(|| ObjectInstance {
                        id: i,
                        ..Default::default()
                    });
                    let res = inst
                        .resources
                        .entry(r)
                        .or_insert_with(|| Resource::multiple(r, std::iter::empty()));
                    match &mut res.value {
                        ResourceValue::Multiple(values) => {
                            values.insert(ri, value);
                        }
                        ResourceValue::Single(_) => {
                            return Err(TreeError::MixedMultiplicity {
                                path: Path::Resource(o, i, r),
                            });
                        }
                    }
                }
                other => {
                    return Err(TreeError::NotAValuePath {
                        path: other,
                        depth: other.depth(),
                    });
                }
            }
        }
        match *requested {
            Path::Root => Err(TreeError::RootNode),
            Path::Object(o) => Ok(Node::Object {
                id: o,
                instances: instances
                    .into_iter()
                    .map(|((_, i), inst)| (i, inst))
                    .collect(),
            }),
            Path::Instance(o, i) => match instances.remove(&(o, i)) {
                Some(inst) => Ok(Node::Instance(inst)),
                // An instance with no readable resource is legal (and is what an empty SenML
                // array means for a Read of an instance).
                None => Ok(Node::Instance(ObjectInstance {
                    id: i,
                    ..Default::default()
                })),
            },
            Path::Resource(o, i, r) => instances
                .remove(&(o, i))
                .and_then(|mut inst| inst.resources.remove(&r))
                .map(Node::Resource)
                .ok_or(TreeError::Empty {
                    requested: *requested,
                }),
            Path::ResourceInstance(o, i, r, ri) => instances
                .remove(&(o, i))
                .and_then(|mut inst| inst.resources.remove(&r))
                .and_then(|res| match res.value {
                    ResourceValue::Multiple(mut values) => values.remove(&ri),
                    ResourceValue::Single(_) => None,
                })
                .map(|value| Node::ResourceInstance { id: ri, value })
                .ok_or(TreeError::Empty {
                    requested: *requested,
                }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn entries_round_trip_through_a_node() {
        let entries = vec![
            (p("/3/0/0"), Value::String("Ferrite".into())),
            (p("/3/0/7/0"), Value::Integer(3800)),
            (p("/3/0/7/1"), Value::Integer(5000)),
            (p("/3/0/9"), Value::Integer(87)),
        ];
        let node = Node::from_entries(&p("/3/0"), entries.clone()).unwrap();
        let Node::Instance(inst) = &node else {
            panic!("{node:?}")
        };
        assert_eq!(inst.value(9), Some(&Value::Integer(87)));
        let flat: Vec<(Path, Value)> = node
            .flatten(&p("/3/0"))
            .into_iter()
            .map(|(p, v)| (p, v.clone()))
            .collect();
        assert_eq!(flat, entries);
    }

    #[test]
    fn rejects_entries_outside_the_request_and_mixed_multiplicity() {
        let err = Node::from_entries(&p("/3/0"), vec![(p("/4/0/2"), Value::Integer(1))]);
        assert!(matches!(err, Err(TreeError::OutsideRequest { .. })));
        let err = Node::from_entries(
            &p("/3/0"),
            vec![
                (p("/3/0/7"), Value::Integer(1)),
                (p("/3/0/7/0"), Value::Integer(1)),
            ],
        );
        assert!(matches!(err, Err(TreeError::MixedMultiplicity { .. })));
        let err = Node::from_entries(&p("/3"), vec![(p("/3/0"), Value::Integer(1))]);
        assert!(matches!(err, Err(TreeError::NotAValuePath { .. })));
        let err = Node::from_entries(&p("/3/0/1"), vec![]);
        assert!(matches!(err, Err(TreeError::Empty { .. })));
    }

    #[test]
    fn single_resource_and_resource_instance() {
        let node =
            Node::from_entries(&p("/3/0/9"), vec![(p("/3/0/9"), Value::Integer(5))]).unwrap();
        assert_eq!(node, Node::Resource(Resource::single(9, Value::Integer(5))));
        let node =
            Node::from_entries(&p("/3/0/7/1"), vec![(p("/3/0/7/1"), Value::Integer(5))]).unwrap();
        assert_eq!(
            node,
            Node::ResourceInstance {
                id: 1,
                value: Value::Integer(5)
            }
        );
    }
}
