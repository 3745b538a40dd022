//! Configuration of an [`super::Lwm2mClient`]: who it is (endpoint name, version, binding), how
//! long it registers for, which content formats it answers in, and the queue-mode wake window.

use std::time::Duration;

use lwm2m_objects::{ContentFormat, ObjectModel};

use crate::coap::CoapConfig;
use crate::lwm2m::registration::{Binding, DEFAULT_LIFETIME, Lwm2mVersion};

/// How long a queue-mode client stays reachable after it sent something: MAX_TRANSMIT_WAIT
/// with the RFC 7252 defaults (OMA LwM2M TS Core 1.1 §6.5 "Queue Mode": the client stays awake
/// for MAX_TRANSMIT_WAIT after each transmission).
pub const DEFAULT_QUEUE_AWAKE_TIME: Duration = Duration::from_secs(93);

/// The configuration of one client. `ClientConfig::new("meter-1", Lwm2mVersion::V1_1)` gives
/// the defaults: lifetime 86 400 s, binding `U`, the version's preferred format (TLV for 1.0,
/// SenML CBOR for 1.1+), Send in SenML CBOR, Confirmable notifications.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The endpoint client name (`ep`).
    pub endpoint: String,
    /// Registration lifetime in seconds (`lt`).
    pub lifetime: u32,
    /// The enabler version the client registers with (`lwm2m`).
    pub version: Lwm2mVersion,
    /// Transport binding and queue mode (`b`, `Q`).
    pub binding: Binding,
    /// MSISDN (`sms`), if any.
    pub sms_number: Option<String>,
    /// The format for responses and notifications when the server sends no Accept option. Must
    /// be one the client encodes for its version (TLV; SenML JSON or CBOR for 1.1+); `None`
    /// picks TLV for 1.0 and SenML CBOR for 1.1+.
    pub preferred_format: Option<ContentFormat>,
    /// The format of Send (`/dp`) payloads: SenML CBOR (default) or SenML JSON.
    pub send_format: ContentFormat,
    /// Send notifications as Confirmable messages (RFC 7641 §4.5: the client learns when the
    /// server is gone). Default true.
    pub confirmable_notifications: bool,
    /// How long a queue-mode client stays awake after sending (default
    /// [`DEFAULT_QUEUE_AWAKE_TIME`]).
    pub queue_awake_time: Duration,
    /// Object definitions used to decode writes (TLV and text carry no types). Shared by every
    /// client: a custom model is leaked once (`Box::leak`) and referenced by all.
    pub model: &'static ObjectModel,
    /// The CoAP transmission parameters and bounds.
    pub coap: CoapConfig,
}

impl ClientConfig {
    /// The defaults for `endpoint` registering as `version`.
    pub fn new(endpoint: impl Into<String>, version: Lwm2mVersion) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.into(),
            lifetime: DEFAULT_LIFETIME,
            version,
            binding: Binding::UDP,
            sms_number: None,
            preferred_format: None,
            send_format: ContentFormat::SenmlCbor,
            confirmable_notifications: true,
            queue_awake_time: DEFAULT_QUEUE_AWAKE_TIME,
            model: ObjectModel::builtin(),
            coap: CoapConfig::default(),
        }
    }

    /// Sets the lifetime.
    pub fn with_lifetime(mut self, seconds: u32) -> ClientConfig {
        self.lifetime = seconds;
        self
    }

    /// Sets the binding.
    pub fn with_binding(mut self, binding: Binding) -> ClientConfig {
        self.binding = binding;
        self
    }

    /// Turns queue mode on (binding `UQ` in 1.0, `b=U&Q` in 1.1).
    pub fn with_queue_mode(mut self) -> ClientConfig {
        self.binding.queue = true;
        self
    }

    /// Sets the preferred response format.
    pub fn with_preferred_format(mut self, format: ContentFormat) -> ClientConfig {
        self.preferred_format = Some(format);
        self
    }
}

/// The settings the client keeps after construction (the CoAP part lives in the endpoint).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub endpoint: String,
    pub lifetime: u32,
    pub version: Lwm2mVersion,
    pub binding: Binding,
    pub sms_number: Option<String>,
    pub preferred_format: ContentFormat,
    pub send_format: ContentFormat,
    pub confirmable_notifications: bool,
    pub queue_awake_time: Duration,
    pub model: &'static ObjectModel,
}

/// Whether a client of `version` encodes responses in `format` (TS Core 1.0 §6.4 / 1.1 §7.4:
/// TLV everywhere, SenML from 1.1; text and opaque for single values, decided per payload).
pub(crate) fn encodes(version: Lwm2mVersion, format: ContentFormat) -> bool {
    match format {
        ContentFormat::Tlv | ContentFormat::Text | ContentFormat::Opaque => true,
        ContentFormat::LegacyTlv => version == Lwm2mVersion::V1_0,
        ContentFormat::SenmlJson | ContentFormat::SenmlCbor => version.is_1_1_or_later(),
        ContentFormat::LinkFormat
        | ContentFormat::Cbor
        | ContentFormat::Lwm2mJson
        | ContentFormat::Lwm2mCbor
        | ContentFormat::LegacyJson => false,
    }
}

/// Whether a client of `version` decodes request bodies in `format`.
pub(crate) fn decodes(version: Lwm2mVersion, format: ContentFormat) -> bool {
    match format {
        ContentFormat::Tlv
        | ContentFormat::LegacyTlv
        | ContentFormat::Text
        | ContentFormat::Opaque
        | ContentFormat::Lwm2mJson
        | ContentFormat::LegacyJson => true,
        ContentFormat::SenmlJson | ContentFormat::SenmlCbor => version.is_1_1_or_later(),
        // LwM2M CBOR is LwM2M 1.2; this client speaks 1.0 and 1.1.
        ContentFormat::LinkFormat | ContentFormat::Cbor | ContentFormat::Lwm2mCbor => false,
    }
}

impl Settings {
    pub(crate) fn from_config(config: ClientConfig) -> (Settings, CoapConfig) {
        let default_format = if config.version.is_1_1_or_later() {
            ContentFormat::SenmlCbor
        } else {
            ContentFormat::Tlv
        };
        let preferred_format = config
            .preferred_format
            .filter(|f| {
                encodes(config.version, *f)
                    && matches!(
                        f,
                        ContentFormat::Tlv | ContentFormat::SenmlJson | ContentFormat::SenmlCbor
                    )
            })
            .unwrap_or(default_format);
        let send_format = match config.send_format {
            ContentFormat::SenmlJson => ContentFormat::SenmlJson,
            _ => ContentFormat::SenmlCbor,
        };
        let settings = Settings {
            endpoint: config.endpoint,
            lifetime: config.lifetime.max(1),
            version: config.version,
            binding: config.binding,
            sms_number: config.sms_number,
            preferred_format,
            send_format,
            confirmable_notifications: config.confirmable_notifications,
            queue_awake_time: config.queue_awake_time,
            model: config.model,
        };
        (settings, config.coap)
    }
}
