//! What the server keeps per registered client (OMA LwM2M TS Core 1.1 §6.2.1): the
//! [`Registration`], its short random [`RegistrationId`], the objects it registered in a compact
//! form ([`RegisteredObjects`]), the peer's authenticated identity ([`PeerAuth`]), and the data a
//! restarted server restores a registration from ([`RestoredRegistration`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lwm2m_objects::link::{LinkError, RegistrationLinks, parse_registration};

use crate::lwm2m::registration::{Binding, Lwm2mVersion};

/// Who the peer is, as the transport authenticated it. The engine never sees DTLS: the I/O shell
/// passes the PSK identity the DTLS handshake verified, or `NoSec` for the plain CoAP socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerAuth {
    /// Plain CoAP over UDP (only when the operator enabled NoSec).
    NoSec,
    /// DTLS with a pre-shared key; the identity the client presented and the handshake proved.
    Psk {
        /// The PSK identity.
        identity: String,
    },
}

/// The short random ID of a registration, the `{id}` of its Location-Path `/rd/{id}` (TS Core
/// 1.1 §6.2.1). Written as 8 lowercase Crockford base-32 characters (40 random bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistrationId(u64);

/// Crockford base 32, lowercase: no `i`, `l`, `o`, `u`, so IDs read back unambiguously.
const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The number of base-32 characters a generated ID is written with.
const ID_CHARS: u32 = 8;

impl RegistrationId {
    /// An ID from a random number (only its low 40 bits are used).
    pub(super) fn from_random(random: u64) -> RegistrationId {
        RegistrationId(random & ((1 << (5 * ID_CHARS)) - 1))
    }

    /// Reads the text form (as written by `Display`); `None` for anything else. At most 12
    /// characters, so the value fits in 60 bits and never overflows.
    pub fn parse(text: &str) -> Option<RegistrationId> {
        if text.is_empty() || text.len() > 12 {
            return None;
        }
        let mut value = 0u64;
        for b in text.bytes() {
            let digit = BASE32.iter().position(|c| *c == b)?;
            value = (value << 5) | digit as u64;
        }
        Some(RegistrationId(value))
    }
}

impl fmt::Display for RegistrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // At least ID_CHARS digits, more only for values from `parse` that need them.
        let mut digits = Vec::with_capacity(12);
        let mut v = self.0;
        while v > 0 || digits.len() < ID_CHARS as usize {
            digits.push(BASE32.get((v & 31) as usize).copied().unwrap_or(b'0'));
            v >>= 5;
        }
        digits.reverse();
        f.write_str(std::str::from_utf8(&digits).unwrap_or("?"))
    }
}

/// The instance ID that marks "object listed without instances"; 65535 is reserved in LwM2M
/// (TS Core 1.1 §7.1 MAX_ID 65534), so it never names a real instance.
const NO_INSTANCE: u16 = u16::MAX;

/// The objects and object instances a client registered (TS Core 1.1 §6.2.1), stored compactly:
/// the canonical link-format text (for persistence and for [`RegisteredObjects::links`]) plus
/// sorted `(object, instance)` pairs and the content formats, in boxed slices that cost nothing
/// when empty. A meter with eight object instances takes about 150 bytes of heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredObjects {
    text: Box<str>,
    /// `""` for the root `/`, else e.g. `"/lwm2m"`.
    root: Box<str>,
    /// Sorted `(object, instance)`; `(object, NO_INSTANCE)` for an object without instances.
    instances: Box<[(u16, u16)]>,
    root_formats: Box<[u16]>,
    /// `(object, format)` for `ct` given on object links.
    object_formats: Box<[(u16, u16)]>,
}

impl RegisteredObjects {
    /// The compact form of parsed registration links.
    pub fn new(links: &RegistrationLinks) -> RegisteredObjects {
        let mut instances = Vec::new();
        let mut object_formats = Vec::new();
        for (&object, o) in &links.objects {
            if o.instances.is_empty() {
                instances.push((object, NO_INSTANCE));
            }
            instances.extend(o.instances.iter().map(|&i| (object, i)));
            object_formats.extend(o.content_formats.iter().map(|&f| (object, f)));
        }
        instances.sort_unstable();
        let root = if links.root_path == "/" {
            ""
        } else {
            links.root_path.as_str()
        };
        RegisteredObjects {
            text: links.to_link_format().into_boxed_str(),
            root: root.into(),
            instances: instances.into_boxed_slice(),
            root_formats: links.content_formats.clone().into_boxed_slice(),
            object_formats: object_formats.into_boxed_slice(),
        }
    }

    /// Reads link-format text (a Register payload, or [`link_format`](Self::link_format) as
    /// persisted).
    pub fn parse(text: &str) -> Result<RegisteredObjects, LinkError> {
        parse_registration(text).map(|links| RegisteredObjects::new(&links))
    }

    /// The links in canonical link format (what to persist).
    pub fn link_format(&self) -> &str {
        &self.text
    }

    /// The links, parsed again from the stored text.
    pub fn links(&self) -> RegistrationLinks {
        // The text is our own encoding of parsed links, which parses back.
        parse_registration(&self.text).unwrap_or_default()
    }

    /// The client's LwM2M root path: `/` unless it registered an alternate path (`/lwm2m`).
    pub fn root_path(&self) -> &str {
        if self.root.is_empty() {
            "/"
        } else {
            &self.root
        }
    }

    /// The root path as Uri-Path segments (empty for `/`).
    pub(super) fn root_segments(&self) -> impl Iterator<Item = &str> + '_ {
        self.root.split('/').filter(|s| !s.is_empty())
    }

    /// Whether the client registered object `object`.
    pub fn has_object(&self, object: u16) -> bool {
        let start = self.instances.partition_point(|&(o, _)| o < object);
        self.instances.get(start).is_some_and(|&(o, _)| o == object)
    }

    /// Whether the client registered instance `instance` of `object`.
    pub fn has_instance(&self, object: u16, instance: u16) -> bool {
        instance != NO_INSTANCE && self.instances.binary_search(&(object, instance)).is_ok()
    }

    /// The registered `(object, instance)` pairs, in order (objects without instances are not
    /// listed; see [`objects`](Self::objects)).
    pub fn instances(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.instances
            .iter()
            .copied()
            .filter(|&(_, i)| i != NO_INSTANCE)
    }

    /// The registered object IDs, in order.
    pub fn objects(&self) -> Vec<u16> {
        let mut out: Vec<u16> = self.instances.iter().map(|&(o, _)| o).collect();
        out.dedup();
        out
    }

    /// The content formats of the root link (`ct=` on `</>`), TS Core 1.1 §6.2.1.
    pub fn content_formats(&self) -> &[u16] {
        &self.root_formats
    }

    /// The content formats given on `object`'s links, if any.
    pub fn object_content_formats(&self, object: u16) -> Vec<u16> {
        self.object_formats
            .iter()
            .filter(|&&(o, _)| o == object)
            .map(|&(_, f)| f)
            .collect()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.text.len()
            + self.root.len()
            + std::mem::size_of_val(&*self.instances)
            + std::mem::size_of_val(&*self.root_formats)
            + std::mem::size_of_val(&*self.object_formats)
    }
}

impl Default for RegisteredObjects {
    fn default() -> RegisteredObjects {
        RegisteredObjects::new(&RegistrationLinks::default())
    }
}

/// A registered LwM2M client (TS Core 1.1 §6.2.1), as the server keeps it and reports it in
/// events. Instants are on the engine's clock; the application records wall-clock time itself
/// when it persists a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The ID in the client's Location-Path `/rd/{id}`.
    pub id: RegistrationId,
    /// The endpoint client name (`ep`).
    pub endpoint: String,
    /// The enabler version the client registered with (1.2 is served as 1.1).
    pub version: Lwm2mVersion,
    /// Transport bindings and queue mode.
    pub binding: Binding,
    /// Lifetime in seconds: without an Update within it the registration expires.
    pub lifetime: u32,
    /// The client's MSISDN, if it gave one.
    pub sms_number: Option<String>,
    /// Its objects and object instances.
    pub objects: RegisteredObjects,
    /// Where its datagrams come from (updated on Update: NAT rebinding).
    pub peer: SocketAddr,
    /// The identity it registered with; Update and De-register must come with the same.
    pub auth: PeerAuth,
    /// When it registered.
    pub registered_at: Instant,
    /// When it last registered or updated.
    pub last_update: Instant,
}

impl Registration {
    /// Heap bytes held by this value (strings and the object links).
    pub fn heap_bytes(&self) -> usize {
        let identity = match &self.auth {
            PeerAuth::Psk { identity } => identity.capacity(),
            PeerAuth::NoSec => 0,
        };
        self.endpoint.capacity()
            + self.sms_number.as_ref().map_or(0, String::capacity)
            + self.objects.heap_bytes()
            + identity
    }
}

/// A registration as persisted, for [`Lwm2mServer::restore_registration`] after a restart.
/// Times are durations before `now` rather than instants, because a monotonic clock cannot name a
/// time before the process (or the machine) started.
///
/// [`Lwm2mServer::restore_registration`]: super::Lwm2mServer::restore_registration
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredRegistration {
    /// The ID the client knows (its Location-Path).
    pub id: RegistrationId,
    /// The endpoint client name.
    pub endpoint: String,
    /// Enabler version.
    pub version: Lwm2mVersion,
    /// Bindings and queue mode.
    pub binding: Binding,
    /// Lifetime in seconds.
    pub lifetime: u32,
    /// MSISDN.
    pub sms_number: Option<String>,
    /// Objects, e.g. from [`RegisteredObjects::parse`] of the persisted link format.
    pub objects: RegisteredObjects,
    /// Last known address.
    pub peer: SocketAddr,
    /// The identity it registered with.
    pub auth: PeerAuth,
    /// How long ago it registered.
    pub since_registered: Duration,
    /// How long ago it last registered or updated: the lifetime runs on from there.
    pub since_last_update: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_print_as_eight_base32_chars_and_parse_back() {
        let id = RegistrationId::from_random(0xFFFF_FFFF_FFFF_FFFF);
        assert_eq!(id.to_string(), "zzzzzzzz");
        assert_eq!(RegistrationId::parse("zzzzzzzz"), Some(id));
        let small = RegistrationId::from_random(1);
        assert_eq!(small.to_string(), "00000001");
        assert_eq!(RegistrationId::parse("00000001"), Some(small));
        for bad in ["", "ABC", "0000000u", "0123456789abc", "a/b"] {
            assert_eq!(RegistrationId::parse(bad), None, "{bad}");
        }
        // Longer (restored) IDs print in full.
        let long = RegistrationId::parse("123456789abc").expect("12 chars");
        assert_eq!(long.to_string(), "123456789abc");
    }

    #[test]
    fn compact_links_answer_membership_and_formats() {
        // TS Core 1.1 §6.2.1 example shape, with an alternate root and per-object ct.
        let text = r#"</lwm2m>;rt="oma.lwm2m";ct="110 112",</lwm2m/1/0>,</lwm2m/3/0>,</lwm2m/3303>;ct=11542,</lwm2m/10243/0>,</lwm2m/10243/2>"#;
        let objects = RegisteredObjects::parse(text).expect("parses");
        assert_eq!(objects.root_path(), "/lwm2m");
        assert_eq!(objects.root_segments().collect::<Vec<_>>(), ["lwm2m"]);
        assert!(objects.has_object(3303) && !objects.has_instance(3303, 0));
        assert!(objects.has_instance(10243, 2) && !objects.has_instance(10243, 1));
        assert!(!objects.has_object(5));
        assert_eq!(objects.objects(), [1, 3, 3303, 10243]);
        assert_eq!(
            objects.instances().collect::<Vec<_>>(),
            [(1, 0), (3, 0), (10243, 0), (10243, 2)]
        );
        assert_eq!(objects.content_formats(), [110, 112]);
        assert_eq!(objects.object_content_formats(3303), [11542]);
        assert!(objects.object_content_formats(3).is_empty());
        // The canonical text parses back to the same thing.
        assert_eq!(
            RegisteredObjects::parse(objects.link_format()).expect("own text"),
            objects
        );
        assert_eq!(objects.links().objects.len(), 4);
        assert!(objects.heap_bytes() < 256, "{}", objects.heap_bytes());
    }

    proptest! {
        #[test]
        fn id_text_round_trips(v in any::<u64>()) {
            let id = RegistrationId::from_random(v);
            prop_assert_eq!(RegistrationId::parse(&id.to_string()), Some(id));
        }

        #[test]
        fn parsing_arbitrary_id_text_never_panics(s in ".{0,20}") {
            let _ = RegistrationId::parse(&s);
        }
    }
}
