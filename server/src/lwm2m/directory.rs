//! The registrations every socket task currently holds, as one shared map read by the service
//! handle: it routes a request to the socket whose engine has the endpoint, and answers
//! `registrations()` without a round trip. Only socket tasks write it (their own entries).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{PoisonError, RwLock};

use chrono::{DateTime, Utc};
use lwm2m_proto::lwm2m::registration::{Binding, Lwm2mVersion};
use lwm2m_proto::lwm2m::server::{PeerAuth, Registration};
use serde::{Deserialize, Serialize};

use super::view::rfc3339;
use crate::store::lwm2m::{StoredRegistration, Transport};

/// A registered device as the service reports it (serde-friendly, wall-clock times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationInfo {
    pub endpoint: String,
    /// The `{id}` of the client's Location-Path `/rd/{id}`.
    pub registration_id: String,
    pub transport: Transport,
    /// `1.0`, `1.1` or `1.2`.
    pub lwm2m_version: String,
    /// Transports, 1.0 form (`U`, `UQ`, …).
    pub binding: String,
    pub queue_mode: bool,
    /// Seconds.
    pub lifetime: u32,
    pub sms_number: Option<String>,
    /// Registered objects, CoRE link format (`</1/0>,</3/0>,…`).
    pub objects: String,
    /// Where its datagrams come from.
    pub address: SocketAddr,
    /// The PSK identity of its DTLS session (None on NoSec).
    pub psk_identity: Option<String>,
    #[serde(with = "rfc3339")]
    pub registered_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub last_update: DateTime<Utc>,
}

impl RegistrationInfo {
    /// The info for an engine registration; `registered_at` and `last_update` are wall-clock
    /// times the caller computed from the engine's instants.
    pub(crate) fn new(
        registration: &Registration,
        transport: Transport,
        registered_at: DateTime<Utc>,
        last_update: DateTime<Utc>,
    ) -> RegistrationInfo {
        RegistrationInfo {
            endpoint: registration.endpoint.clone(),
            registration_id: registration.id.to_string(),
            transport,
            lwm2m_version: registration.version.as_str().to_owned(),
            binding: registration.binding.to_text(Lwm2mVersion::V1_0),
            queue_mode: registration.binding.queue,
            lifetime: registration.lifetime,
            sms_number: registration.sms_number.clone(),
            objects: registration.objects.link_format().to_owned(),
            address: registration.peer,
            psk_identity: match &registration.auth {
                PeerAuth::Psk { identity } => Some(identity.clone()),
                PeerAuth::NoSec => None,
            },
            registered_at,
            last_update,
        }
    }

    pub(crate) fn to_stored(&self) -> StoredRegistration {
        StoredRegistration {
            endpoint: self.endpoint.clone(),
            registration_id: self.registration_id.clone(),
            transport: self.transport,
            lwm2m_version: self.lwm2m_version.clone(),
            binding: self.binding.clone(),
            lifetime: self.lifetime,
            sms_number: self.sms_number.clone(),
            objects: self.objects.clone(),
            address: self.address.to_string(),
            psk_identity: self.psk_identity.clone(),
            registered_at: self.registered_at,
            last_update: self.last_update,
        }
    }

    /// The info of a persisted registration; None when its address or binding does not parse.
    pub(crate) fn from_stored(stored: &StoredRegistration) -> Option<RegistrationInfo> {
        let binding = Binding::parse(&stored.binding).ok()?;
        Some(RegistrationInfo {
            endpoint: stored.endpoint.clone(),
            registration_id: stored.registration_id.clone(),
            transport: stored.transport,
            lwm2m_version: stored.lwm2m_version.clone(),
            binding: stored.binding.clone(),
            queue_mode: binding.queue,
            lifetime: stored.lifetime,
            sms_number: stored.sms_number.clone(),
            objects: stored.objects.clone(),
            address: stored.address.parse().ok()?,
            psk_identity: stored.psk_identity.clone(),
            registered_at: stored.registered_at,
            last_update: stored.last_update,
        })
    }
}

/// Reads the `lwm2m=` text of a persisted registration.
pub(crate) fn parse_version(text: &str) -> Option<Lwm2mVersion> {
    match text {
        "1.0" => Some(Lwm2mVersion::V1_0),
        "1.1" => Some(Lwm2mVersion::V1_1),
        "1.2" => Some(Lwm2mVersion::V1_2),
        _ => None,
    }
}

/// endpoint → its registration, across sockets.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    entries: RwLock<HashMap<String, RegistrationInfo>>,
}

impl Directory {
    pub(crate) fn get(&self, endpoint: &str) -> Option<RegistrationInfo> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
            .cloned()
    }

    /// The socket each of `endpoints` is registered on, under one read lock and without
    /// copying the registrations (requests to many devices).
    pub(crate) fn transports<'a>(
        &self,
        endpoints: impl IntoIterator<Item = &'a str>,
    ) -> Vec<Option<Transport>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        endpoints
            .into_iter()
            .map(|endpoint| entries.get(endpoint).map(|info| info.transport))
            .collect()
    }

    pub(crate) fn all(&self) -> Vec<RegistrationInfo> {
        let mut all: Vec<RegistrationInfo> = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        all
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Records `info`; returns the entry it replaced.
    pub(crate) fn insert(&self, info: RegistrationInfo) -> Option<RegistrationInfo> {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(info.endpoint.clone(), info)
    }

    /// Removes `endpoint`'s entry if it is still registration `registration_id` on `transport`
    /// (a newer registration, possibly on the other socket, stays).
    pub(crate) fn remove_if(&self, endpoint: &str, transport: Transport, registration_id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries
            .get(endpoint)
            .is_some_and(|e| e.transport == transport && e.registration_id == registration_id)
        {
            entries.remove(endpoint);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(endpoint: &str, id: &str, transport: Transport) -> RegistrationInfo {
        RegistrationInfo {
            endpoint: endpoint.into(),
            registration_id: id.into(),
            transport,
            lwm2m_version: "1.1".into(),
            binding: "UQ".into(),
            queue_mode: true,
            lifetime: 60,
            sms_number: None,
            objects: "</3/0>".into(),
            address: "127.0.0.1:5".parse().unwrap(),
            psk_identity: None,
            registered_at: Utc::now(),
            last_update: Utc::now(),
        }
    }

    #[test]
    fn stale_removals_keep_the_newer_registration() {
        let directory = Directory::default();
        directory.insert(info("m", "aaaaaaaa", Transport::Coap));
        directory.insert(info("m", "bbbbbbbb", Transport::Coaps));
        directory.remove_if("m", Transport::Coap, "aaaaaaaa");
        assert_eq!(directory.get("m").unwrap().registration_id, "bbbbbbbb");
        directory.remove_if("m", Transport::Coaps, "bbbbbbbb");
        assert!(directory.get("m").is_none());
    }

    #[test]
    fn stored_form_round_trips() {
        let original = info("m", "aaaaaaaa", Transport::Coaps);
        let back = RegistrationInfo::from_stored(&original.to_stored()).unwrap();
        assert_eq!(back, original);
        assert_eq!(parse_version("1.2"), Some(Lwm2mVersion::V1_2));
        assert_eq!(parse_version("2.0"), None);
    }
}
