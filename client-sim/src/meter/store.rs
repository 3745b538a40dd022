//! [`MeterStore`]: the meter's objects as the LwM2M client serves them. Static and writable
//! resources live in a [`MemoryObjectStore`] (which enforces the object model's operations);
//! the values that move with simulated time (current time, battery, memory, signal, error codes,
//! traffic counters, the power meter's readings) are held compactly in [`Live`] and laid over
//! whatever the inner store returns, so a multiple-instance resource such as the error codes
//! (3/0/11) can shrink as well as grow.

use lwm2m_objects::{Node, ObjectInstance, ObjectModel, Path, Resource, ResourceValue, Value};
use lwm2m_proto::lwm2m::client::{MemoryObjectStore, ObjectStore, StoreError, WriteMode};

use super::dynamics::{DeviceValues, Electrical, Reading};
use super::firmware::{self, FirmwareSettings};
use super::profile::{MANUFACTURER, Profile};
use crate::rng::Rng;

/// The moving values of one meter.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Simulated Unix time of the latest input (3/0/13 Current Time).
    pub now: i64,
    /// Objects 3 and 4 values, once computed.
    pub device: Option<DeviceValues>,
    /// The reading the power meter object shows (the newest, or on a 1.0 meter the one being
    /// notified).
    pub reading: Option<Reading>,
    /// Voltage, current, frequency.
    pub electrical: Option<Electrical>,
    /// Bytes sent and received (object 7).
    pub tx_bytes: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Datagrams sent and received.
    pub messages: u32,
    /// Largest datagram, bytes.
    pub max_message: u32,
}

/// The store behind one meter's LwM2M client.
#[derive(Debug, Clone)]
pub struct MeterStore {
    inner: MemoryObjectStore,
    /// The moving values.
    pub live: Live,
    /// Paths whose live value changed, for observations.
    changes: Vec<Path>,
    /// The version of a downloaded (checked) firmware package, until it is installed.
    pending_firmware: Option<Box<str>>,
    /// A Package URI written (5/0/1) that the meter has not started fetching yet.
    pending_pull: Option<Box<str>>,
    /// Injected package faults (none in most runs: no allocation).
    package_faults: Option<Box<PackageFaults>>,
}

/// Rates of the faults injected into received packages, and their generator.
#[derive(Debug, Clone)]
struct PackageFaults {
    settings: FirmwareSettings,
    rng: Rng,
}

/// Where a resource's value comes from when it is in [`Live`].
fn live_value(live: &Live, object: u16, resource: u16) -> Option<ResourceValue> {
    let single = |v: Value| Some(ResourceValue::Single(v));
    match (object, resource) {
        (3, 13) => single(Value::Time(live.now)),
        (3, 7) => live.device.as_ref().map(|d| {
            // Instance 0 the mains (230 V nominal, in mV), instance 1 the backup cell.
            let mains = live
                .electrical
                .map_or(230_000, |e| (e.voltage * 1000.0).round() as i64);
            ResourceValue::Multiple(
                [
                    (0, Value::Integer(mains)),
                    (1, Value::Integer(d.battery_mv)),
                ]
                .into(),
            )
        }),
        (3, 9) => live
            .device
            .as_ref()
            .and_then(|d| single(Value::Integer(d.battery_level))),
        (3, 10) => live
            .device
            .as_ref()
            .and_then(|d| single(Value::Integer(d.memory_free_kb))),
        (3, 11) => live.device.as_ref().map(|d| {
            ResourceValue::Multiple(
                d.error_codes
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (i as u16, Value::Integer(*c)))
                    .collect(),
            )
        }),
        (3, 20) => live
            .device
            .as_ref()
            .and_then(|d| single(Value::Integer(d.battery_status))),
        (4, 2) => live
            .device
            .as_ref()
            .and_then(|d| single(Value::Integer(d.rssi))),
        (4, 3) => live
            .device
            .as_ref()
            .and_then(|d| single(Value::Integer(d.link_quality))),
        (7, 2) => single(Value::Integer((live.tx_bytes / 1000) as i64)),
        (7, 3) => single(Value::Integer((live.rx_bytes / 1000) as i64)),
        (7, 4) => single(Value::Integer(i64::from(live.max_message))),
        (7, 5) => single(Value::Integer(
            ((live.tx_bytes + live.rx_bytes) / u64::from(live.messages.max(1))) as i64,
        )),
        (10243, r) => {
            let reading = live.reading?;
            let e = live.electrical;
            let pf = f64::from(reading.power_factor);
            let kw = round3(f64::from(reading.power_kw));
            let v = match r {
                4 => e?.voltage,
                5 => e?.current,
                6 => kw,
                7 => round3(kw * pf.acos().tan()),
                10 => round3(kw / pf.max(0.1)),
                11 => pf,
                14 => reading.active_kwh,
                15 => reading.reactive_kvarh,
                17 => e?.frequency,
                _ => return None,
            };
            single(Value::Float(v))
        }
        _ => None,
    }
}

/// The Package URI (5/0/1) a write carries, whether it names the resource or the instance.
fn package_uri(path: &Path, node: &Node) -> Option<String> {
    let text = |r: &Resource| match &r.value {
        ResourceValue::Single(Value::String(u)) => Some(u.clone()),
        _ => None,
    };
    match (path, node) {
        (Path::Resource(5, 0, 1), Node::Resource(r)) => text(r),
        (Path::Instance(5, 0), Node::Instance(i)) => i.resources.get(&1).and_then(text),
        _ => None,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The resources of object 10243 that [`Live`] provides.
const METER_LIVE_RESOURCES: [u16; 9] = [4, 5, 6, 7, 10, 11, 14, 15, 17];

fn overlay_instance(live: &Live, object: u16, instance: &mut ObjectInstance) {
    if instance.id != 0 {
        return;
    }
    for (id, res) in instance.resources.iter_mut() {
        if let Some(v) = live_value(live, object, *id) {
            res.value = v;
        }
    }
}

impl MeterStore {
    /// The objects of a meter with `profile`: 1 (server account: `lifetime`, binding), 3, 4, 5,
    /// 6, 7 and 10243, at simulated time `now`.
    pub fn new(profile: &Profile, lifetime: u32, now: f64) -> MeterStore {
        let model = profile.model_def();
        let binding = if profile.queue_mode { "UQ" } else { "U" };
        let s = |t: &str| Value::String(t.to_owned());
        let int = Value::Integer;
        let mut store = MemoryObjectStore::new(ObjectModel::builtin())
            .with_instance(
                1,
                0,
                [
                    (0, int(1)),
                    (1, int(i64::from(lifetime))),
                    (6, Value::Boolean(true)),
                    (7, s(binding)),
                ],
            )
            .with_instance(
                6,
                0,
                [
                    (0, Value::Float(f64::from(profile.latitude))),
                    (1, Value::Float(f64::from(profile.longitude))),
                    (2, Value::Float(35.0)),
                    (3, Value::Float(25.0)),
                    (5, Value::Time(now as i64)),
                ],
            )
            .with_instance(
                7,
                0,
                [
                    (0, int(0)),
                    (1, int(0)),
                    (2, int(0)),
                    (3, int(0)),
                    (4, int(0)),
                    (5, int(0)),
                    (8, int(0)),
                ],
            );
        store.insert_instance(
            3,
            ObjectInstance::new(
                0,
                [
                    Resource::single(0, s(MANUFACTURER)),
                    Resource::single(1, s(model.name)),
                    Resource::single(2, s(&profile.serial_number())),
                    Resource::single(3, s(profile.firmware_version())),
                    // Mains and the internal backup battery (3/0/6: 6 AC, 1 internal battery).
                    Resource::multiple(6, [(0, int(6)), (1, int(1))]),
                    // 3/0/7 and 3/0/11 come from `Live`; a bare placeholder keeps them listed
                    // without the cost of a multiple-instance map.
                    Resource::single(7, Value::None),
                    Resource::single(9, int(100)),
                    Resource::single(10, int(model.memory_kb / 2)),
                    Resource::single(11, Value::None),
                    Resource::single(13, Value::Time(now as i64)),
                    Resource::single(14, s("+00:00")),
                    Resource::single(15, s("Etc/UTC")),
                    Resource::single(16, s(binding)),
                    Resource::single(17, s("single-phase electricity meter")),
                    Resource::single(18, s(model.hardware)),
                    Resource::single(19, s(profile.firmware_version())),
                    Resource::single(20, int(0)),
                    Resource::single(21, int(model.memory_kb)),
                ],
            ),
        );
        store.insert_instance(
            4,
            ObjectInstance::new(
                0,
                [
                    Resource::single(0, int(model.bearer)),
                    Resource::single(2, int(-85)),
                    Resource::single(3, int(-8)),
                    Resource::multiple(4, [(0, s(&profile.ip_address()))]),
                    Resource::single(8, int(i64::from(profile.cell_id))),
                    Resource::single(9, int(i64::from(profile.mnc))),
                    Resource::single(10, int(262)),
                    Resource::single(12, int(i64::from(profile.cell_id >> 12) & 0xFFFF)),
                ],
            ),
        );
        store.insert_instance(
            5,
            ObjectInstance::new(
                0,
                [
                    Resource::single(1, s("")),
                    Resource::single(3, int(0)),
                    Resource::single(5, int(0)),
                    Resource::single(6, s("")),
                    Resource::single(7, s("")),
                    // CoAP and CoAPS (pull), push and pull both.
                    Resource::multiple(8, [(0, int(0)), (1, int(1))]),
                    Resource::single(9, int(2)),
                    Resource::single(12, Value::Time(now as i64)),
                ],
            ),
        );
        let mut power = vec![
            Resource::single(0, s(MANUFACTURER)),
            Resource::single(1, s(model.name)),
            Resource::single(2, s(&profile.serial_number())),
            Resource::single(3, s("single-phase smart meter")),
        ];
        power.extend(
            METER_LIVE_RESOURCES
                .iter()
                .map(|r| Resource::single(*r, Value::Float(0.0))),
        );
        store.insert_instance(10243, ObjectInstance::new(0, power));
        MeterStore {
            inner: store,
            live: Live {
                now: now as i64,
                ..Live::default()
            },
            changes: Vec::new(),
            pending_firmware: None,
            pending_pull: None,
            package_faults: None,
        }
    }

    /// Injects integrity (5) and unsupported-package (6) failures into received packages at the
    /// rates of `settings`, drawing from `rng`.
    pub fn set_package_faults(&mut self, settings: &FirmwareSettings, rng: Rng) {
        self.package_faults = (settings.integrity > 0.0 || settings.unsupported > 0.0).then(|| {
            Box::new(PackageFaults {
                settings: settings.clone(),
                rng,
            })
        });
    }

    /// A Package URI the meter should fetch now (written to 5/0/1 since the last call).
    pub fn take_pull_request(&mut self) -> Option<String> {
        self.pending_pull.take().map(String::from)
    }

    /// A pull ended: check the package, or report the failure's Update Result code.
    pub fn download_finished(&mut self, outcome: Result<Vec<u8>, i64>) {
        if self.firmware_state() != firmware::state::DOWNLOADING {
            return; // reset meanwhile
        }
        match outcome {
            Ok(bytes) => self.receive_package(&bytes),
            Err(code) => self.set_firmware(firmware::state::IDLE, code),
        }
    }

    /// The inner store (static and written values).
    pub fn inner(&self) -> &MemoryObjectStore {
        &self.inner
    }

    /// The inner store, mutably (e.g. the firmware state).
    pub fn inner_mut(&mut self) -> &mut MemoryObjectStore {
        &mut self.inner
    }

    /// Sets the device values, recording the resources that changed.
    pub fn set_device(&mut self, values: DeviceValues) {
        let old = self.live.device.take();
        let changed =
            |f: &dyn Fn(&DeviceValues) -> i64| old.as_ref().is_none_or(|o| f(o) != f(&values));
        let mut paths = Vec::new();
        if changed(&|d| d.battery_mv) {
            paths.push(Path::Resource(3, 0, 7));
        }
        if changed(&|d| d.battery_level) {
            paths.push(Path::Resource(3, 0, 9));
        }
        if changed(&|d| d.memory_free_kb) {
            paths.push(Path::Resource(3, 0, 10));
        }
        if old
            .as_ref()
            .is_none_or(|o| o.error_codes != values.error_codes)
        {
            paths.push(Path::Resource(3, 0, 11));
        }
        if changed(&|d| d.battery_status) {
            paths.push(Path::Resource(3, 0, 20));
        }
        if changed(&|d| d.rssi) {
            paths.push(Path::Resource(4, 0, 2));
        }
        if changed(&|d| d.link_quality) {
            paths.push(Path::Resource(4, 0, 3));
        }
        self.changes.extend(paths);
        self.live.device = Some(values);
    }

    /// Shows `reading` (and the electrical values) in object 10243; observers of it are due.
    pub fn set_reading(&mut self, reading: Reading, electrical: Option<Electrical>) {
        self.live.reading = Some(reading);
        if electrical.is_some() {
            self.live.electrical = electrical;
        }
        self.changes.push(Path::Instance(10243, 0));
    }

    /// Forgets the recorded changes (after setting up, before any observer exists).
    pub fn clear_changes(&mut self) {
        self.changes.clear();
        self.changes.shrink_to_fit();
        while self.inner.pop_change().is_some() {}
    }

    /// 5/0/3.
    pub fn firmware_state(&self) -> i64 {
        match self.inner.get(&Path::Resource(5, 0, 3)) {
            Some(Value::Integer(v)) => *v,
            _ => firmware::state::IDLE,
        }
    }

    /// 5/0/5.
    pub fn firmware_result(&self) -> i64 {
        match self.inner.get(&Path::Resource(5, 0, 5)) {
            Some(Value::Integer(v)) => *v,
            _ => firmware::result::INITIAL,
        }
    }

    /// 3/0/3.
    pub fn firmware_version(&self) -> String {
        match self.inner.get(&Path::Resource(3, 0, 3)) {
            Some(Value::String(v)) => v.clone(),
            _ => String::new(),
        }
    }

    fn set_firmware(&mut self, state: i64, result: i64) {
        // The paths exist (set up in `new`); a failure would only skip a notification.
        let _ = self
            .inner
            .set(Path::Resource(5, 0, 3), Value::Integer(state));
        let _ = self
            .inner
            .set(Path::Resource(5, 0, 5), Value::Integer(result));
        let _ = self
            .inner
            .set(Path::Resource(5, 0, 12), Value::Time(self.live.now));
    }

    fn receive_package(&mut self, bytes: &[u8]) {
        // A package of one NUL byte (or none) resets the state machine.
        if bytes.is_empty() || bytes == [0] {
            self.pending_firmware = None;
            self.set_firmware(firmware::state::IDLE, firmware::result::INITIAL);
            return;
        }
        let model = match self.inner.get(&Path::Resource(3, 0, 1)) {
            Some(Value::String(m)) => m.clone(),
            _ => String::new(),
        };
        let memory_kb = match self.inner.get(&Path::Resource(3, 0, 21)) {
            Some(Value::Integer(m)) => *m,
            _ => 0,
        };
        let injected = self
            .package_faults
            .as_mut()
            .and_then(|f| f.settings.package_fault(&mut f.rng));
        match injected.map_or_else(|| firmware::check(bytes, &model, memory_kb), Err) {
            Ok(package) => {
                self.pending_firmware = Some(package.version.into_boxed_str());
                self.set_firmware(firmware::state::DOWNLOADED, firmware::result::INITIAL);
            }
            Err(code) => {
                self.pending_firmware = None;
                self.set_firmware(firmware::state::IDLE, code);
            }
        }
    }

    /// After the restart that follows Execute Update: installs the pending version (3/0/3,
    /// 3/0/19, 5/0/7, result 1) and returns it, or reports `failure` (an Update Result code,
    /// e.g. 8) and keeps the old one. A restart in the middle of a pull loses the transfer
    /// (result 4).
    pub fn finish_update(&mut self, failure: Option<i64>) -> Option<String> {
        if self.firmware_state() == firmware::state::DOWNLOADING {
            self.pending_pull = None;
            self.set_firmware(firmware::state::IDLE, firmware::result::CONNECTION_LOST);
            return None;
        }
        if self.firmware_state() != firmware::state::UPDATING {
            return None;
        }
        let version = self.pending_firmware.take();
        match (failure, version) {
            (None, Some(version)) => {
                let installed = version.into_string();
                let v = Value::String(installed.clone());
                let _ = self.inner.set(Path::Resource(3, 0, 3), v.clone());
                let _ = self.inner.set(Path::Resource(3, 0, 19), v.clone());
                let _ = self.inner.set(Path::Resource(5, 0, 7), v);
                let _ = self
                    .inner
                    .set(Path::Resource(5, 0, 6), Value::String("ferrite-fw".into()));
                self.set_firmware(firmware::state::IDLE, firmware::result::SUCCESS);
                Some(installed)
            }
            (failure, _) => {
                self.set_firmware(firmware::state::IDLE, failure.unwrap_or(8));
                None
            }
        }
    }

    /// Records traffic for object 7 (no notification: counters move with every datagram).
    pub fn count_traffic(&mut self, sent: bool, bytes: usize) {
        let bytes32 = u32::try_from(bytes).unwrap_or(u32::MAX);
        if sent {
            self.live.tx_bytes = self.live.tx_bytes.saturating_add(bytes as u64);
        } else {
            self.live.rx_bytes = self.live.rx_bytes.saturating_add(bytes as u64);
        }
        self.live.messages = self.live.messages.saturating_add(1);
        self.live.max_message = self.live.max_message.max(bytes32);
    }

    /// Announces the traffic counters as changed (once per reading, not per datagram).
    pub fn traffic_changed(&mut self) {
        self.changes.push(Path::Resource(7, 0, 2));
        self.changes.push(Path::Resource(7, 0, 3));
    }
}

impl ObjectStore for MeterStore {
    fn read(&self, path: &Path) -> Result<Node, StoreError> {
        // Instances of the live multiple-instance resources are not in the inner store.
        if let Path::ResourceInstance(3, 0, r @ (7 | 11), ri) = *path {
            return match live_value(&self.live, 3, r) {
                Some(ResourceValue::Multiple(mut values)) => values
                    .remove(&ri)
                    .map(|value| Node::ResourceInstance { id: ri, value })
                    .ok_or(StoreError::NotFound),
                _ => Err(StoreError::NotFound),
            };
        }
        let mut node = self.inner.read(path)?;
        match &mut node {
            Node::Object { id, instances } => {
                for instance in instances.values_mut() {
                    overlay_instance(&self.live, *id, instance);
                }
            }
            Node::Instance(instance) => {
                if let Some(o) = path.object_id() {
                    overlay_instance(&self.live, o, instance);
                }
            }
            Node::Resource(res) => {
                if path.instance_id() == Some(0)
                    && let Some(o) = path.object_id()
                    && let Some(v) = live_value(&self.live, o, res.id)
                {
                    res.value = v;
                }
            }
            Node::ResourceInstance { id, value } => {
                if path.instance_id() == Some(0)
                    && let (Some(o), Some(r)) = (path.object_id(), path.resource_id())
                    && let Some(v) = live_value(&self.live, o, r)
                {
                    match v {
                        ResourceValue::Multiple(mut values) => match values.remove(id) {
                            Some(v) => *value = v,
                            None => return Err(StoreError::NotFound),
                        },
                        ResourceValue::Single(_) => return Err(StoreError::NotFound),
                    }
                }
            }
        }
        Ok(node)
    }

    fn write(&mut self, path: &Path, node: Node, mode: WriteMode) -> Result<(), StoreError> {
        // The firmware package is checked, never stored (TS Core 1.1 §E.6).
        if *path == Path::Resource(5, 0, 0) {
            let Node::Resource(Resource {
                value: ResourceValue::Single(value),
                ..
            }) = node
            else {
                return Err(StoreError::BadRequest(
                    "the package is a single opaque value",
                ));
            };
            let bytes = match value {
                Value::Opaque(b) | Value::Untyped(b) => b,
                Value::String(s) => s.into_bytes(),
                _ => return Err(StoreError::BadRequest("the package is opaque")),
            };
            self.receive_package(&bytes);
            return Ok(());
        }
        let uri = package_uri(path, &node);
        self.inner.write(path, node, mode)?;
        match uri {
            // An empty Package URI resets the state machine.
            Some(u) if u.is_empty() => {
                self.pending_pull = None;
                self.pending_firmware = None;
                self.set_firmware(firmware::state::IDLE, firmware::result::INITIAL);
            }
            // A URI starts a pull (TS Core 1.1 §E.6.1: Idle → Downloading).
            Some(u) => {
                self.pending_firmware = None;
                self.pending_pull = Some(u.into_boxed_str());
                self.set_firmware(firmware::state::DOWNLOADING, firmware::result::INITIAL);
            }
            None => {}
        }
        Ok(())
    }

    fn execute(&mut self, path: &Path, args: Option<&str>) -> Result<(), StoreError> {
        if *path == Path::Resource(5, 0, 2) {
            // Update only from Downloaded (TS Core 1.1 §E.6.1).
            if self.firmware_state() != firmware::state::DOWNLOADED {
                return Err(StoreError::NotAllowed);
            }
            self.set_firmware(firmware::state::UPDATING, firmware::result::INITIAL);
        }
        self.inner.execute(path, args)
    }

    fn create(
        &mut self,
        object: u16,
        instance: Option<u16>,
        content: ObjectInstance,
    ) -> Result<u16, StoreError> {
        self.inner.create(object, instance, content)
    }

    fn delete(&mut self, path: &Path) -> Result<(), StoreError> {
        self.inner.delete(path)
    }

    // Bootstrap (`--bootstrap`): the Security (0) and Server (1) instances the bootstrap server
    // writes live in the plain store, like the rest of the static objects.
    fn bootstrap_write(&mut self, path: &Path, node: Node) -> Result<(), StoreError> {
        self.inner.bootstrap_write(path, node)
    }

    fn bootstrap_read_instance(&self, object: u16, instance: u16) -> Option<ObjectInstance> {
        self.inner.bootstrap_read_instance(object, instance)
    }

    fn objects(&self) -> Vec<(u16, Vec<u16>)> {
        self.inner.objects()
    }

    fn resources(&self, object: u16, instance: u16) -> Result<Vec<(u16, Option<u16>)>, StoreError> {
        let mut out = self.inner.resources(object, instance)?;
        // The instance counts of the live multiple-instance resources.
        if (object, instance) == (3, 0) {
            for (id, dim) in out.iter_mut() {
                if let Some(ResourceValue::Multiple(values)) = live_value(&self.live, 3, *id) {
                    *dim = Some(u16::try_from(values.len()).unwrap_or(u16::MAX));
                }
            }
        }
        Ok(out)
    }

    fn pop_change(&mut self) -> Option<Path> {
        self.changes.pop().or_else(|| self.inner.pop_change())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::meter::profile::ProfileParams;

    fn store() -> MeterStore {
        let p = Profile::generate(&ProfileParams::default(), 0);
        MeterStore::new(&p, 300, 1_700_000_000.0)
    }

    fn values(codes: Vec<i64>) -> DeviceValues {
        DeviceValues {
            battery_level: 55,
            battery_mv: 3_490,
            battery_status: 0,
            memory_free_kb: 120,
            error_codes: codes,
            rssi: -92,
            link_quality: -9,
        }
    }

    #[test]
    fn live_values_overlay_reads_at_every_depth() {
        let mut s = store();
        s.live.now = 1_700_000_123;
        s.set_device(values(vec![1, 4]));
        let Node::Instance(i) = s.read(&Path::Instance(3, 0)).unwrap() else {
            panic!("instance expected");
        };
        assert_eq!(i.value(13), Some(&Value::Time(1_700_000_123)));
        assert_eq!(i.value(9), Some(&Value::Integer(55)));
        assert_eq!(i.value(0), Some(&Value::String(MANUFACTURER.into())));
        let Node::Resource(codes) = s.read(&Path::Resource(3, 0, 11)).unwrap() else {
            panic!("resource expected");
        };
        assert_eq!(
            codes.value,
            ResourceValue::Multiple([(0, Value::Integer(1)), (1, Value::Integer(4))].into())
        );
        // The list shrinks when an error clears.
        s.set_device(values(vec![0]));
        assert_eq!(
            s.read(&Path::ResourceInstance(3, 0, 11, 0)).unwrap(),
            Node::ResourceInstance {
                id: 0,
                value: Value::Integer(0)
            }
        );
        assert_eq!(
            s.read(&Path::ResourceInstance(3, 0, 11, 1)),
            Err(StoreError::NotFound)
        );
        let Node::Object { instances, .. } = s.read(&Path::Object(4)).unwrap() else {
            panic!("object expected");
        };
        assert_eq!(instances[&0].value(2), Some(&Value::Integer(-92)));
    }

    #[test]
    fn changes_name_only_what_moved() {
        let mut s = store();
        s.set_device(values(vec![0]));
        while s.pop_change().is_some() {}
        let mut next = values(vec![0]);
        next.battery_level = 54;
        s.set_device(next);
        assert_eq!(s.pop_change(), Some(Path::Resource(3, 0, 9)));
        assert_eq!(s.pop_change(), None);
    }

    #[test]
    fn power_meter_shows_the_reading() {
        let mut s = store();
        let r = Reading {
            seq: 3,
            time: 1_700_000_100,
            active_kwh: 1234.567,
            reactive_kvarh: 300.25,
            power_kw: 1.5,
            power_factor: 0.95,
        };
        s.set_reading(r, None);
        assert_eq!(s.pop_change(), Some(Path::Instance(10243, 0)));
        let Node::Instance(i) = s.read(&Path::Instance(10243, 0)).unwrap() else {
            panic!("instance expected");
        };
        assert_eq!(i.value(14), Some(&Value::Float(1234.567)));
        assert_eq!(i.value(11), Some(&Value::Float(f64::from(0.95f32))));
        assert_eq!(i.value(6), Some(&Value::Float(1.5)));
    }

    #[test]
    fn server_cannot_write_read_only_resources() {
        let mut s = store();
        let err = s.write(
            &Path::Resource(3, 0, 9),
            Node::Resource(Resource::single(9, Value::Integer(1))),
            WriteMode::Replace,
        );
        assert_eq!(err, Err(StoreError::NotAllowed));
        assert!(s.execute(&Path::Resource(3, 0, 4), None).is_ok());
    }
}
