//! [`MemoryObjectStore`]: a compact in-memory [`ObjectStore`] that enforces the object model's
//! operations (OMA LwM2M TS Core 1.1 §6.3 and the R/W/E column of the object definitions) and
//! records the paths the application changes, so observations fire.

use std::collections::BTreeMap;

use lwm2m_objects::{
    MAX_ID, Node, ObjectInstance, ObjectModel, Path, Resource, ResourceDef, ResourceValue, Value,
};

use super::store::{ObjectStore, StoreError, WriteMode};

/// Objects and instances held in memory, checked against an [`ObjectModel`].
///
/// Layout, chosen for the simulator's 10,000+ clients: one `BTreeMap` entry per object instance,
/// holding its resources in a `Vec` sorted by ID (no per-resource tree nodes). Resources of
/// objects the model does not define are allowed any operation.
///
/// Enforcement (TS Core 1.1 §6.3): unknown object, instance or resource → 4.04; a server write
/// to a resource without `W`, an execute of one without `E`, a read of one without `R` → 4.05; a
/// value that cannot be converted to the declared type or lies outside the declared range → 4.00.
/// [`set`](Self::set) and [`insert_instance`](Self::insert_instance) are the application's own
/// access and bypass the operation checks.
#[derive(Debug, Clone)]
pub struct MemoryObjectStore {
    model: &'static ObjectModel,
    /// Supported object IDs, ascending (objects may have no instance).
    objects: Vec<u16>,
    /// Instances by (object, instance); resources sorted by ID.
    instances: BTreeMap<(u16, u16), Vec<Resource>>,
    /// Paths changed by the application, not yet taken by the client.
    changes: Vec<Path>,
}

impl MemoryObjectStore {
    /// An empty store checked against `model` (usually [`ObjectModel::builtin`]).
    pub fn new(model: &'static ObjectModel) -> MemoryObjectStore {
        MemoryObjectStore {
            model,
            objects: Vec::new(),
            instances: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    /// The model the store checks against.
    pub fn model(&self) -> &'static ObjectModel {
        self.model
    }

    /// Declares `object` supported (listed at registration even without instances).
    pub fn support(&mut self, object: u16) {
        if let Err(at) = self.objects.binary_search(&object) {
            self.objects.insert(at, object);
        }
    }

    /// Adds or replaces an instance as the application sets it up (no operation checks).
    pub fn insert_instance(&mut self, object: u16, instance: ObjectInstance) {
        self.support(object);
        let mut resources: Vec<Resource> = instance.resources.into_values().collect();
        resources.shrink_to_fit();
        self.instances.insert((object, instance.id), resources);
    }

    /// Builder form of [`insert_instance`](Self::insert_instance) with `(resource, value)` pairs.
    pub fn with_instance(
        mut self,
        object: u16,
        instance: u16,
        values: impl IntoIterator<Item = (u16, Value)>,
    ) -> MemoryObjectStore {
        let resources = values.into_iter().map(|(id, v)| Resource::single(id, v));
        self.insert_instance(object, ObjectInstance::new(instance, resources));
        self
    }

    /// Sets a resource or resource instance as the application (no operation checks) and records
    /// the change for observers. The instance must exist.
    pub fn set(&mut self, path: Path, value: Value) -> Result<(), StoreError> {
        let (o, i, r, ri) = match path {
            Path::Resource(o, i, r) => (o, i, r, None),
            Path::ResourceInstance(o, i, r, ri) => (o, i, r, Some(ri)),
            _ => return Err(StoreError::NotAllowed),
        };
        let resources = self
            .instances
            .get_mut(&(o, i))
            .ok_or(StoreError::NotFound)?;
        let slot = resource_slot(resources, r);
        match (ri, &mut slot.value) {
            (None, v) => *v = ResourceValue::Single(value),
            (Some(ri), ResourceValue::Multiple(values)) => {
                values.insert(ri, value);
            }
            (Some(ri), v) => *v = ResourceValue::Multiple(BTreeMap::from([(ri, value)])),
        }
        self.changes.push(path);
        Ok(())
    }

    /// The value of a single-instance resource or a resource instance.
    pub fn get(&self, path: &Path) -> Option<&Value> {
        let (o, i, r) = (path.object_id()?, path.instance_id()?, path.resource_id()?);
        let resources = self.instances.get(&(o, i))?;
        let res = find(resources, r)?;
        match (&res.value, path.resource_instance_id()) {
            (ResourceValue::Single(v), None) => Some(v),
            (ResourceValue::Multiple(values), Some(ri)) => values.get(&ri),
            _ => None,
        }
    }

    /// Whether instance `/object/instance` exists.
    pub fn has_instance(&self, object: u16, instance: u16) -> bool {
        self.instances.contains_key(&(object, instance))
    }

    fn def(&self, object: u16, resource: u16) -> Lookup {
        match self.model.object(object) {
            None => Lookup::UnknownObject,
            Some(obj) => match obj.resource(resource) {
                Some(def) => Lookup::Defined(def),
                None => Lookup::Undefined,
            },
        }
    }

    fn readable(&self, object: u16, resource: u16) -> bool {
        match self.def(object, resource) {
            Lookup::Defined(def) => def.operations.read,
            Lookup::UnknownObject | Lookup::Undefined => true,
        }
    }

    fn read_instance(&self, object: u16, instance: u16, resources: &[Resource]) -> ObjectInstance {
        let readable = resources
            .iter()
            .filter(|r| self.readable(object, r.id))
            .cloned();
        ObjectInstance::new(instance, readable)
    }

    /// Checks that the server may write `resource` with `value`, converting it to the declared
    /// type. `creating`: Create may set read-only resources (TS Core 1.1 §6.3.6).
    fn check_resource(
        &self,
        object: u16,
        mut resource: Resource,
        creating: bool,
    ) -> Result<Resource, StoreError> {
        let def = match self.def(object, resource.id) {
            Lookup::UnknownObject => return Ok(resource),
            Lookup::Undefined => return Err(StoreError::NotFound),
            Lookup::Defined(def) => def,
        };
        if !(def.operations.write || (creating && def.operations.read)) {
            return Err(StoreError::NotAllowed);
        }
        match &mut resource.value {
            ResourceValue::Single(v) => {
                if def.multiple {
                    return Err(StoreError::BadRequest("a multiple-instance resource"));
                }
                *v = checked_value(def, std::mem::replace(v, Value::None))?;
            }
            ResourceValue::Multiple(values) => {
                if !def.multiple {
                    return Err(StoreError::BadRequest("a single-instance resource"));
                }
                for v in values.values_mut() {
                    *v = checked_value(def, std::mem::replace(v, Value::None))?;
                }
            }
        }
        Ok(resource)
    }

    /// Writes checked resources into an existing instance.
    fn write_instance(
        &mut self,
        object: u16,
        instance: u16,
        content: ObjectInstance,
        mode: WriteMode,
    ) -> Result<(), StoreError> {
        if !self.instances.contains_key(&(object, instance)) {
            return Err(StoreError::NotFound);
        }
        let checked = content
            .resources
            .into_values()
            .map(|r| self.check_resource(object, r, false))
            .collect::<Result<Vec<_>, _>>()?;
        let writable = |store: &MemoryObjectStore, id: u16| match store.def(object, id) {
            Lookup::Defined(def) => def.operations.write,
            _ => true,
        };
        let keep: Vec<bool> = match self.instances.get(&(object, instance)) {
            Some(resources) => resources
                .iter()
                .map(|r| mode == WriteMode::PartialUpdate || !writable(self, r.id))
                .collect(),
            None => return Err(StoreError::NotFound),
        };
        let resources = self
            .instances
            .get_mut(&(object, instance))
            .ok_or(StoreError::NotFound)?;
        // Replace (§6.3.3): writable resources absent from the payload go away.
        let mut flags = keep.into_iter();
        resources.retain(|_| flags.next().unwrap_or(true));
        for r in checked {
            merge_resource(resources, r, mode);
        }
        Ok(())
    }
}

/// What the model says about a resource.
enum Lookup {
    /// The object is not in the model: anything goes.
    UnknownObject,
    /// The object is known but does not define the resource.
    Undefined,
    Defined(&'static ResourceDef),
}

fn checked_value(def: &ResourceDef, value: Value) -> Result<Value, StoreError> {
    let value = value
        .coerce(def.ty)
        .map_err(|_| StoreError::BadRequest("value of the wrong type"))?;
    match def.range {
        Some(range) if !range.allows(&value) => {
            Err(StoreError::BadRequest("value out of the declared range"))
        }
        _ => Ok(value),
    }
}

fn find(resources: &[Resource], id: u16) -> Option<&Resource> {
    resources
        .binary_search_by_key(&id, |r| r.id)
        .ok()
        .and_then(|at| resources.get(at))
}

/// The resource `id`, inserted (empty single value) in order if absent.
fn resource_slot(resources: &mut Vec<Resource>, id: u16) -> &mut Resource {
    let at = match resources.binary_search_by_key(&id, |r| r.id) {
        Ok(at) => at,
        Err(at) => {
            resources.insert(at, Resource::single(id, Value::None));
            at
        }
    };
    // `at` is in bounds: found by the search or just inserted there.
    &mut resources[at]
}

fn merge_resource(resources: &mut Vec<Resource>, r: Resource, mode: WriteMode) {
    let slot = resource_slot(resources, r.id);
    match (mode, &mut slot.value, r.value) {
        // §6.3.3: a partial update of a multiple-instance resource adds or replaces instances.
        (WriteMode::PartialUpdate, ResourceValue::Multiple(old), ResourceValue::Multiple(new)) => {
            old.extend(new);
        }
        (_, value, new) => *value = new,
    }
}

impl ObjectStore for MemoryObjectStore {
    fn read(&self, path: &Path) -> Result<Node, StoreError> {
        match *path {
            Path::Root => Err(StoreError::NotAllowed),
            Path::Object(o) => {
                if self.objects.binary_search(&o).is_err() {
                    return Err(StoreError::NotFound);
                }
                let instances = self
                    .instances
                    .range((o, 0)..=(o, MAX_ID))
                    .map(|(&(_, i), rs)| (i, self.read_instance(o, i, rs)))
                    .collect();
                Ok(Node::Object { id: o, instances })
            }
            Path::Instance(o, i) => {
                let rs = self.instances.get(&(o, i)).ok_or(StoreError::NotFound)?;
                Ok(Node::Instance(self.read_instance(o, i, rs)))
            }
            Path::Resource(o, i, r) | Path::ResourceInstance(o, i, r, _) => {
                let rs = self.instances.get(&(o, i)).ok_or(StoreError::NotFound)?;
                let Some(res) = find(rs, r) else {
                    // An executable resource holds no value: reading it is not allowed, not
                    // missing (TS Core 1.1 §6.3.1).
                    return match self.def(o, r) {
                        Lookup::Defined(def) if def.operations.execute => {
                            Err(StoreError::NotAllowed)
                        }
                        _ => Err(StoreError::NotFound),
                    };
                };
                if !self.readable(o, r) {
                    return Err(StoreError::NotAllowed);
                }
                match (path.resource_instance_id(), &res.value) {
                    (None, _) => Ok(Node::Resource(res.clone())),
                    (Some(ri), ResourceValue::Multiple(values)) => values
                        .get(&ri)
                        .map(|v| Node::ResourceInstance {
                            id: ri,
                            value: v.clone(),
                        })
                        .ok_or(StoreError::NotFound),
                    (Some(_), ResourceValue::Single(_)) => Err(StoreError::NotFound),
                }
            }
        }
    }

    fn write(&mut self, path: &Path, node: Node, mode: WriteMode) -> Result<(), StoreError> {
        match (*path, node) {
            (Path::Instance(o, i), Node::Instance(content)) => {
                self.write_instance(o, i, content, mode)
            }
            (Path::Resource(o, i, _), Node::Resource(res)) => {
                let content = ObjectInstance::new(i, [res]);
                self.write_instance(o, i, content, mode)
            }
            (Path::ResourceInstance(o, i, r, _), Node::ResourceInstance { id, value }) => {
                let res = Resource::multiple(r, [(id, value)]);
                let content = ObjectInstance::new(i, [res]);
                self.write_instance(o, i, content, WriteMode::PartialUpdate)
            }
            (Path::Root | Path::Object(_), _) => Err(StoreError::NotAllowed),
            _ => Err(StoreError::BadRequest("content does not match the path")),
        }
    }

    fn execute(&mut self, path: &Path, _args: Option<&str>) -> Result<(), StoreError> {
        let Path::Resource(o, i, r) = *path else {
            return Err(StoreError::NotAllowed);
        };
        if !self.instances.contains_key(&(o, i)) {
            return Err(StoreError::NotFound);
        }
        match self.def(o, r) {
            Lookup::Defined(def) if def.operations.execute => Ok(()),
            Lookup::Defined(_) => Err(StoreError::NotAllowed),
            Lookup::Undefined => Err(StoreError::NotFound),
            Lookup::UnknownObject => {
                let present = self
                    .instances
                    .get(&(o, i))
                    .is_some_and(|rs| find(rs, r).is_some());
                if present {
                    Ok(())
                } else {
                    Err(StoreError::NotFound)
                }
            }
        }
    }

    fn create(
        &mut self,
        object: u16,
        instance: Option<u16>,
        content: ObjectInstance,
    ) -> Result<u16, StoreError> {
        if self.objects.binary_search(&object).is_err() {
            return Err(StoreError::NotFound);
        }
        let existing = self.instances.range((object, 0)..=(object, MAX_ID)).count();
        if let Some(def) = self.model.object(object)
            && !def.multiple
            && existing > 0
        {
            return Err(StoreError::BadRequest(
                "single-instance object already exists",
            ));
        }
        let id = match instance {
            Some(id) if self.instances.contains_key(&(object, id)) => {
                return Err(StoreError::BadRequest("instance already exists"));
            }
            Some(id) => id,
            None => (0..=MAX_ID)
                .find(|id| !self.instances.contains_key(&(object, *id)))
                .ok_or(StoreError::Internal)?,
        };
        let mut resources = content
            .resources
            .into_values()
            .map(|r| self.check_resource(object, r, true))
            .collect::<Result<Vec<_>, _>>()?;
        resources.sort_by_key(|r| r.id);
        resources.shrink_to_fit();
        self.instances.insert((object, id), resources);
        Ok(id)
    }

    fn bootstrap_read_instance(&self, object: u16, instance: u16) -> Option<ObjectInstance> {
        let resources = self.instances.get(&(object, instance))?;
        Some(ObjectInstance::new(instance, resources.iter().cloned()))
    }

    fn bootstrap_write(&mut self, path: &Path, node: Node) -> Result<(), StoreError> {
        match (*path, node) {
            (Path::Object(o), Node::Object { instances, .. }) => {
                for (_, instance) in instances {
                    self.bootstrap_write(
                        &Path::Instance(o, instance.id),
                        Node::Instance(instance),
                    )?;
                }
                Ok(())
            }
            (Path::Instance(o, i), Node::Instance(instance)) => {
                self.support(o);
                let resources = self.instances.entry((o, i)).or_default();
                for (_, r) in instance.resources {
                    merge_resource(resources, r, WriteMode::Replace);
                }
                self.changes.push(*path);
                Ok(())
            }
            (Path::Resource(o, i, _), Node::Resource(r)) => {
                let resources = self
                    .instances
                    .get_mut(&(o, i))
                    .ok_or(StoreError::NotFound)?;
                merge_resource(resources, r, WriteMode::Replace);
                self.changes.push(*path);
                Ok(())
            }
            _ => Err(StoreError::BadRequest(
                "not an object, instance or resource",
            )),
        }
    }

    fn delete(&mut self, path: &Path) -> Result<(), StoreError> {
        let Path::Instance(o, i) = *path else {
            return Err(StoreError::NotAllowed);
        };
        self.instances
            .remove(&(o, i))
            .map(|_| ())
            .ok_or(StoreError::NotFound)
    }

    fn objects(&self) -> Vec<(u16, Vec<u16>)> {
        self.objects
            .iter()
            .map(|&o| {
                let ids = self
                    .instances
                    .range((o, 0)..=(o, MAX_ID))
                    .map(|(&(_, i), _)| i)
                    .collect();
                (o, ids)
            })
            .collect()
    }

    fn resources(&self, object: u16, instance: u16) -> Result<Vec<(u16, Option<u16>)>, StoreError> {
        let rs = self
            .instances
            .get(&(object, instance))
            .ok_or(StoreError::NotFound)?;
        let mut out: Vec<(u16, Option<u16>)> = rs
            .iter()
            .map(|r| match &r.value {
                ResourceValue::Single(_) => (r.id, None),
                ResourceValue::Multiple(values) => {
                    (r.id, Some(u16::try_from(values.len()).unwrap_or(u16::MAX)))
                }
            })
            .collect();
        // Executable resources hold no value; the mandatory ones always exist (Discover lists
        // them), optional ones when the application stored a `Value::None` for them.
        if let Some(def) = self.model.object(object) {
            for r in def
                .resources
                .iter()
                .filter(|r| r.operations.execute && r.mandatory)
            {
                if let Err(at) = out.binary_search_by_key(&r.id, |(id, _)| *id) {
                    out.insert(at, (r.id, None));
                }
            }
        }
        Ok(out)
    }

    fn pop_change(&mut self) -> Option<Path> {
        self.changes.pop()
    }
}
