//! [`ServerAccount`]: the LwM2M server account a bootstrap server delivers — one Security object
//! instance (object 0, OMA LwM2M TS Core 1.1 Appendix E.1) and one Server object instance
//! (object 1, Appendix E.2) tied together by the Short Server ID — and its conversion to and from
//! object instances, used by both sides of the bootstrap interface.

use std::fmt;

use lwm2m_objects::{ObjectInstance, Resource, ResourceValue, Value};

/// Security object resources (TS Core 1.1 Appendix E.1).
pub(crate) mod security {
    pub const SERVER_URI: u16 = 0;
    pub const BOOTSTRAP_SERVER: u16 = 1;
    pub const SECURITY_MODE: u16 = 2;
    pub const IDENTITY: u16 = 3;
    pub const SERVER_PUBLIC_KEY: u16 = 4;
    pub const SECRET_KEY: u16 = 5;
    pub const SHORT_SERVER_ID: u16 = 10;
}

/// Server object resources (TS Core 1.1 Appendix E.2).
pub(crate) mod server {
    pub const SHORT_SERVER_ID: u16 = 0;
    pub const LIFETIME: u16 = 1;
    pub const DEFAULT_PMIN: u16 = 2;
    pub const DEFAULT_PMAX: u16 = 3;
    pub const NOTIFICATION_STORING: u16 = 6;
    pub const BINDING: u16 = 7;
}

/// Security Mode (resource 0/x/2, TS Core 1.1 Appendix E.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSecurity {
    /// 0: pre-shared key (the identity in /0/x/3, the key in /0/x/5).
    Psk,
    /// 3: no security.
    NoSec,
}

impl AccountSecurity {
    /// The value of resource 0/x/2.
    pub fn mode(self) -> i64 {
        match self {
            AccountSecurity::Psk => 0,
            AccountSecurity::NoSec => 3,
        }
    }

    fn from_mode(mode: i64) -> Option<AccountSecurity> {
        match mode {
            0 => Some(AccountSecurity::Psk),
            3 => Some(AccountSecurity::NoSec),
            _ => None,
        }
    }
}

/// One LwM2M server account as the bootstrap server writes it. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAccount {
    /// LwM2M Server URI (0/x/0), e.g. `coaps://lwm2m.example.com:5684`.
    pub server_uri: String,
    /// Security Mode (0/x/2).
    pub security: AccountSecurity,
    /// PSK identity (0/x/3); empty for NoSec.
    pub identity: Vec<u8>,
    /// PSK (0/x/5); empty for NoSec.
    pub secret_key: Vec<u8>,
    /// Short Server ID (0/x/10 and 1/y/0), 1–65534.
    pub short_server_id: u16,
    /// Registration lifetime in seconds (1/y/1).
    pub lifetime: u32,
    /// Default minimum period (1/y/2), if any.
    pub default_pmin: Option<u32>,
    /// Default maximum period (1/y/3), if any.
    pub default_pmax: Option<u32>,
    /// Binding (1/y/7): `U`, `UQ`, …
    pub binding: String,
    /// Notification Storing When Disabled or Offline (1/y/6).
    pub notification_storing: bool,
}

impl fmt::Debug for ServerAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerAccount")
            .field("server_uri", &self.server_uri)
            .field("security", &self.security)
            .field("identity", &String::from_utf8_lossy(&self.identity))
            .field("secret_key", &"<redacted>")
            .field("short_server_id", &self.short_server_id)
            .field("lifetime", &self.lifetime)
            .field("default_pmin", &self.default_pmin)
            .field("default_pmax", &self.default_pmax)
            .field("binding", &self.binding)
            .field("notification_storing", &self.notification_storing)
            .finish()
    }
}

fn integer(instance: &ObjectInstance, id: u16) -> Option<i64> {
    match instance.resources.get(&id)?.value {
        ResourceValue::Single(Value::Integer(v)) => Some(v),
        ResourceValue::Single(Value::UnsignedInteger(v)) => i64::try_from(v).ok(),
        _ => None,
    }
}

fn opaque(instance: &ObjectInstance, id: u16) -> Vec<u8> {
    match instance.resources.get(&id).map(|r| &r.value) {
        Some(ResourceValue::Single(Value::Opaque(v))) => v.clone(),
        Some(ResourceValue::Single(Value::String(s))) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// Whether a Security instance is the Bootstrap-Server account (0/x/1 true).
pub(crate) fn is_bootstrap_account(instance: &ObjectInstance) -> bool {
    matches!(
        instance
            .resources
            .get(&security::BOOTSTRAP_SERVER)
            .map(|r| &r.value),
        Some(ResourceValue::Single(Value::Boolean(true)))
    )
}

impl ServerAccount {
    /// The Security object instance `/0/{id}` (Bootstrap-Server false).
    pub fn security_instance(&self, id: u16) -> ObjectInstance {
        ObjectInstance::new(
            id,
            [
                Resource::single(security::SERVER_URI, Value::String(self.server_uri.clone())),
                Resource::single(security::BOOTSTRAP_SERVER, Value::Boolean(false)),
                Resource::single(
                    security::SECURITY_MODE,
                    Value::Integer(self.security.mode()),
                ),
                Resource::single(security::IDENTITY, Value::Opaque(self.identity.clone())),
                Resource::single(security::SERVER_PUBLIC_KEY, Value::Opaque(Vec::new())),
                Resource::single(security::SECRET_KEY, Value::Opaque(self.secret_key.clone())),
                Resource::single(
                    security::SHORT_SERVER_ID,
                    Value::Integer(i64::from(self.short_server_id)),
                ),
            ],
        )
    }

    /// The Server object instance `/1/{id}`.
    pub fn server_instance(&self, id: u16) -> ObjectInstance {
        let mut resources = vec![
            Resource::single(
                server::SHORT_SERVER_ID,
                Value::Integer(i64::from(self.short_server_id)),
            ),
            Resource::single(server::LIFETIME, Value::Integer(i64::from(self.lifetime))),
        ];
        if let Some(pmin) = self.default_pmin {
            resources.push(Resource::single(
                server::DEFAULT_PMIN,
                Value::Integer(i64::from(pmin)),
            ));
        }
        if let Some(pmax) = self.default_pmax {
            resources.push(Resource::single(
                server::DEFAULT_PMAX,
                Value::Integer(i64::from(pmax)),
            ));
        }
        resources.push(Resource::single(
            server::NOTIFICATION_STORING,
            Value::Boolean(self.notification_storing),
        ));
        resources.push(Resource::single(
            server::BINDING,
            Value::String(self.binding.clone()),
        ));
        ObjectInstance::new(id, resources)
    }

    /// Reads an account back from a Security instance (not the bootstrap one) and the Server
    /// instance with the same Short Server ID; `None` when a mandatory resource is missing or
    /// the security mode is one this implementation does not use (RPK, certificates).
    pub fn from_instances(
        security_instance: &ObjectInstance,
        server_instance: &ObjectInstance,
    ) -> Option<ServerAccount> {
        if is_bootstrap_account(security_instance) {
            return None;
        }
        let server_uri = match &security_instance
            .resources
            .get(&security::SERVER_URI)?
            .value
        {
            ResourceValue::Single(Value::String(s)) => s.clone(),
            _ => return None,
        };
        let security =
            AccountSecurity::from_mode(integer(security_instance, security::SECURITY_MODE)?)?;
        let ssid = integer(security_instance, security::SHORT_SERVER_ID)?;
        if integer(server_instance, server::SHORT_SERVER_ID)? != ssid {
            return None;
        }
        let short_server_id = u16::try_from(ssid).ok()?;
        let lifetime = u32::try_from(integer(server_instance, server::LIFETIME)?).ok()?;
        let period = |id| integer(server_instance, id).and_then(|v| u32::try_from(v).ok());
        let binding = match server_instance
            .resources
            .get(&server::BINDING)
            .map(|r| &r.value)
        {
            Some(ResourceValue::Single(Value::String(s))) => s.clone(),
            _ => "U".to_owned(),
        };
        let notification_storing = matches!(
            server_instance
                .resources
                .get(&server::NOTIFICATION_STORING)
                .map(|r| &r.value),
            Some(ResourceValue::Single(Value::Boolean(true)))
        );
        Some(ServerAccount {
            server_uri,
            security,
            identity: opaque(security_instance, security::IDENTITY),
            secret_key: opaque(security_instance, security::SECRET_KEY),
            short_server_id,
            lifetime,
            default_pmin: period(server::DEFAULT_PMIN),
            default_pmax: period(server::DEFAULT_PMAX),
            binding,
            notification_storing,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn account() -> ServerAccount {
        ServerAccount {
            server_uri: "coaps://dm.example.com:5684".into(),
            security: AccountSecurity::Psk,
            identity: b"dm-meter-1".to_vec(),
            secret_key: vec![0xAB; 16],
            short_server_id: 101,
            lifetime: 3600,
            default_pmin: Some(10),
            default_pmax: Some(600),
            binding: "U".into(),
            notification_storing: true,
        }
    }

    #[test]
    fn instances_round_trip_and_debug_hides_the_key() {
        let a = account();
        let back =
            ServerAccount::from_instances(&a.security_instance(4), &a.server_instance(7)).unwrap();
        assert_eq!(back, a);
        let text = format!("{a:?}");
        assert!(text.contains("<redacted>"));
        assert!(!text.to_lowercase().contains("ab, ab"), "{text}");
    }

    #[test]
    fn mismatched_short_server_ids_and_bootstrap_accounts_are_not_accounts() {
        let a = account();
        let mut other = a.clone();
        other.short_server_id = 102;
        assert!(
            ServerAccount::from_instances(&a.security_instance(1), &other.server_instance(0))
                .is_none()
        );
        let mut bs = a.security_instance(0);
        bs.resources.insert(
            security::BOOTSTRAP_SERVER,
            Resource::single(security::BOOTSTRAP_SERVER, Value::Boolean(true)),
        );
        assert!(is_bootstrap_account(&bs));
        assert!(ServerAccount::from_instances(&bs, &a.server_instance(0)).is_none());
    }
}
