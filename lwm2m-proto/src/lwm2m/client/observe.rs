//! Observations the server holds on the client (OMA LwM2M TS Core 1.1 §6.4.1, RFC 7641 §4) and
//! when they notify: a change is notified no sooner than `pmin` after the previous notification
//! and only if the thresholds (`gt`, `lt`, `st`) find it notable; a notification goes out at
//! `pmax` even without change (§5.1.2).

use std::time::{Duration, Instant};

use lwm2m_objects::codec::{Record, encode, encode_records};
use lwm2m_objects::{ContentFormat, Node, Path, ResourceValue};

use super::attributes::NotifyAttributes;
use super::store::ObjectStore;
use super::{ClientEvent, Lwm2mClient, SERVER};
use crate::coap::{Code, ContentFormat as CoapFormat, Response, Token};

/// One observation: about 100 bytes; a client has a handful.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub(crate) token: Token,
    /// The observed path; the root (`/`) for an Observe-Composite, whose paths are `composite`.
    pub(crate) path: Path,
    /// Observe-Composite (TS Core 1.1 §6.4.1, `FETCH /` with Observe): the paths it covers,
    /// notified together as SenML records. Its notification attributes are the root's (the
    /// server's defaults unless set on `/`), and thresholds do not apply.
    pub(crate) composite: Option<Vec<Path>>,
    /// The format of the response that established it; notifications use the same.
    pub(crate) format: ContentFormat,
    /// The attributes in force (inherited and defaulted), recomputed when they change.
    pub(crate) attrs: NotifyAttributes,
    pub(crate) last_sent: Instant,
    /// The numeric value last notified, for `gt`/`lt`/`st`.
    pub(crate) last_value: Option<f64>,
    /// A change not yet notified.
    pub(crate) changed: bool,
}

impl Observation {
    fn pmin(&self) -> Duration {
        Duration::from_secs(u64::from(self.attrs.pmin.unwrap_or(0)))
    }

    /// `pmax`, when it applies: TS Core 1.1 §5.1.2 ignores a `pmax` not greater than `pmin`.
    fn pmax(&self) -> Option<Duration> {
        let pmin = self.attrs.pmin.unwrap_or(0);
        self.attrs
            .pmax
            .filter(|&pmax| pmax > 0 && pmax > pmin)
            .map(|pmax| Duration::from_secs(u64::from(pmax)))
    }

    /// When this observation next needs attention.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let on_change = self.changed.then(|| self.last_sent + self.pmin());
        let periodic = self.pmax().map(|p| self.last_sent + p);
        on_change.into_iter().chain(periodic).min()
    }
}

/// The numeric value of a single resource or resource instance, for thresholds.
pub(crate) fn numeric(node: &Node) -> Option<f64> {
    match node {
        Node::Resource(r) => match &r.value {
            ResourceValue::Single(v) => v.as_f64(),
            ResourceValue::Multiple(_) => None,
        },
        Node::ResourceInstance { value, .. } => value.as_f64(),
        _ => None,
    }
}

impl<S: ObjectStore> Lwm2mClient<S> {
    pub(crate) fn next_observation_deadline(&self) -> Option<Instant> {
        self.observations
            .iter()
            .filter_map(Observation::deadline)
            .min()
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        let seq = self.next_observe_seq & 0x00FF_FFFF;
        self.next_observe_seq = self.next_observe_seq.wrapping_add(1);
        seq
    }

    /// Registers an observation just answered with 2.05 (replacing one with the same token,
    /// RFC 7641 §4.1).
    pub(crate) fn start_observation(
        &mut self,
        now: Instant,
        token: Token,
        path: Path,
        format: ContentFormat,
        value: Option<f64>,
    ) {
        self.start(now, token, path, None, format, value);
    }

    /// Registers an Observe-Composite just answered with 2.05; its events name the root.
    pub(crate) fn start_composite_observation(
        &mut self,
        now: Instant,
        token: Token,
        paths: Vec<Path>,
        format: ContentFormat,
    ) {
        self.start(now, token, Path::Root, Some(paths), format, None);
    }

    fn start(
        &mut self,
        now: Instant,
        token: Token,
        path: Path,
        composite: Option<Vec<Path>>,
        format: ContentFormat,
        value: Option<f64>,
    ) {
        self.observations.retain(|o| o.token != token);
        let attrs = self.effective_attributes(&path);
        self.observations.push(Observation {
            token,
            path,
            composite,
            format,
            attrs,
            last_sent: now,
            last_value: value,
            changed: false,
        });
        self.events
            .push_back(ClientEvent::ObservationStarted { path });
    }

    /// Ends the observation with `token` (Observe = 1, RST, unacknowledged notification).
    pub(crate) fn stop_observation(&mut self, token: Token) {
        if let Some(at) = self.observations.iter().position(|o| o.token == token) {
            let obs = self.observations.swap_remove(at);
            self.coap.forget_observer(SERVER, token);
            self.events
                .push_back(ClientEvent::ObservationStopped { path: obs.path });
        }
    }

    pub(crate) fn on_observer_gone(&mut self, token: Token) {
        self.stop_observation(token);
    }

    /// Ends every observation (De-register, new registration, expiry).
    pub(crate) fn stop_all_observations(&mut self) {
        for obs in std::mem::take(&mut self.observations) {
            self.coap.forget_observer(SERVER, obs.token);
            self.events
                .push_back(ClientEvent::ObservationStopped { path: obs.path });
        }
        self.observations.shrink_to_fit();
    }

    /// Ends the observations at and below a deleted instance.
    pub(crate) fn stop_observations_under(&mut self, path: &Path) {
        let tokens: Vec<Token> = self
            .observations
            .iter()
            .filter(|o| match &o.composite {
                None => path.contains(&o.path),
                // A composite one ends when none of its paths is left.
                Some(paths) => paths.iter().all(|p| path.contains(p)),
            })
            .map(|o| o.token)
            .collect();
        for token in tokens {
            self.stop_observation(token);
        }
    }

    /// Marks observations related to a change at `path` (above or below it).
    pub(crate) fn mark_changed(&mut self, path: &Path) {
        let related = |observed: &Path| observed.contains(path) || path.contains(observed);
        for obs in &mut self.observations {
            let hit = match &obs.composite {
                None => related(&obs.path),
                Some(paths) => paths.iter().any(related),
            };
            if hit {
                obs.changed = true;
            }
        }
    }

    /// The server's default periods: resources 2 (Default Minimum Period) and 3 (Default Maximum
    /// Period) of the first LwM2M Server object instance (TS Core 1.1 Appendix E.2), if present.
    fn server_defaults(&self) -> NotifyAttributes {
        let Some(instance) = self
            .store
            .objects()
            .into_iter()
            .find(|(o, _)| *o == 1)
            .and_then(|(_, ids)| ids.first().copied())
        else {
            return NotifyAttributes::default();
        };
        let period = |r: u16| -> Option<u32> {
            let node = self.store.read(&Path::Resource(1, instance, r)).ok()?;
            let value = numeric(&node)?;
            (value >= 0.0).then_some(value.min(f64::from(u32::MAX)) as u32)
        };
        NotifyAttributes {
            pmin: period(2),
            pmax: period(3),
            ..NotifyAttributes::default()
        }
    }

    pub(crate) fn effective_attributes(&self, path: &Path) -> NotifyAttributes {
        self.attributes.effective(path, self.server_defaults())
    }

    /// Recomputes every observation's attributes (after Write-Attributes or a write to `/1`).
    pub(crate) fn refresh_observation_attributes(&mut self) {
        if self.observations.is_empty() {
            return;
        }
        let defaults = self.server_defaults();
        for obs in &mut self.observations {
            obs.attrs = self.attributes.effective(&obs.path, defaults);
        }
    }

    /// Sends the notifications that are due at `now`.
    pub(crate) fn service_observations(&mut self, now: Instant) {
        let mut at = 0;
        while at < self.observations.len() {
            let Some(obs) = self.observations.get(at) else {
                break;
            };
            let periodic = obs.pmax().is_some_and(|p| now >= obs.last_sent + p);
            let on_change = obs.changed && now >= obs.last_sent + obs.pmin();
            if !(periodic || on_change) {
                at += 1;
                continue;
            }
            let (token, path, format) = (obs.token, obs.path, obs.format);
            if let Some(paths) = obs.composite.clone() {
                if let Some(obs) = self.observations.get_mut(at) {
                    obs.changed = false;
                    obs.last_sent = now;
                }
                self.send_composite_notification(now, token, &paths, format);
                at += 1;
                continue;
            }
            let node = match self.store.read(&path) {
                Ok(node) => node,
                Err(_) => {
                    // The target is gone or unreadable. RFC 7641 §4.2 would end the observation
                    // with a 4.04 without Observe, which `CoapEndpoint::notify` cannot send (it
                    // always numbers notifications): stop quietly instead.
                    self.stop_observation(token);
                    continue;
                }
            };
            let value = numeric(&node);
            let notable = periodic || obs.attrs.change_is_notable(obs.last_value, value);
            if let Some(obs) = self.observations.get_mut(at) {
                obs.changed = false;
                if notable {
                    obs.last_sent = now;
                    obs.last_value = value;
                }
            }
            if notable {
                self.send_notification(now, token, &path, format, &node);
            }
            at += 1;
        }
    }

    /// The values of an Observe-Composite's paths as SenML records (the paths that cannot be
    /// read now are left out, as in its first answer).
    pub(crate) fn composite_records(&self, paths: &[Path]) -> (Vec<Record>, bool) {
        let mut records = Vec::new();
        let mut found = false;
        for path in paths {
            if let Ok(node) = self.store.read(path) {
                found = true;
                records.extend(node.flatten(path).into_iter().map(|(p, v)| Record {
                    path: p,
                    time: None,
                    value: Some(v.clone()),
                }));
            }
        }
        (records, found)
    }

    fn send_composite_notification(
        &mut self,
        now: Instant,
        token: Token,
        paths: &[Path],
        format: ContentFormat,
    ) {
        let (records, _) = self.composite_records(paths);
        if let Ok(payload) = encode_records(format, &records) {
            self.notify_content(now, token, format, payload);
        }
    }

    fn send_notification(
        &mut self,
        now: Instant,
        token: Token,
        path: &Path,
        format: ContentFormat,
        node: &Node,
    ) {
        if let Ok(payload) = encode(format, path, node) {
            self.notify_content(now, token, format, payload);
        }
    }

    /// Sends `payload` as the next 2.05 notification of the observation with `token`.
    fn notify_content(
        &mut self,
        now: Instant,
        token: Token,
        format: ContentFormat,
        payload: Vec<u8>,
    ) {
        let response = Response::new(Code::CONTENT)
            .with_content_format(CoapFormat(format.to_u16()))
            .with_payload(payload);
        let seq = self.next_seq();
        let confirmable = self.settings.confirmable_notifications;
        let _ = self
            .coap
            .notify(now, SERVER, token, response.with_observe(seq), confirmable);
    }
}
