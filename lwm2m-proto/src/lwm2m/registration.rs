//! Register and Update parameters (OMA LwM2M TS Core 1.1 §6.2.1, §6.2.2, Table 6.2.1-1 and
//! 6.2.2-1; TS Core 1.0 §5.3.1 for the 1.0 forms), read from and written to CoAP Uri-Query options.

use std::fmt;

/// The LwM2M enabler version a client registers with (`lwm2m=` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lwm2mVersion {
    /// LwM2M 1.0 (TLV, LwM2M JSON, queue mode in the binding).
    V1_0,
    /// LwM2M 1.1 (SenML, composite operations, Send).
    V1_1,
    /// Served as 1.1 where the two differ.
    V1_2,
}

impl Lwm2mVersion {
    /// The `lwm2m=` text: `"1.0"`, `"1.1"`, `"1.2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lwm2mVersion::V1_0 => "1.0",
            Lwm2mVersion::V1_1 => "1.1",
            Lwm2mVersion::V1_2 => "1.2",
        }
    }

    /// Whether this version has Read-Composite, Observe-Composite, Send and SenML (1.1+).
    pub fn is_1_1_or_later(self) -> bool {
        self >= Lwm2mVersion::V1_1
    }
}

impl fmt::Display for Lwm2mVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport bindings a client declares (`b=`), plus queue mode.
///
/// In 1.0 queue mode is a binding letter (`UQ`, `SQ`, `UQS`); in 1.1 it is the separate `Q`
/// parameter and `b` lists transports only (`U`, `T`, `S`, `N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Binding {
    /// `U`: CoAP over UDP (or DTLS).
    pub udp: bool,
    /// `T`: CoAP over TCP (or TLS), 1.1+.
    pub tcp: bool,
    /// `S`: SMS.
    pub sms: bool,
    /// `N`: non-IP, 1.1+.
    pub non_ip: bool,
    /// Queue mode: the client sleeps between updates and is reachable only after it talks.
    pub queue: bool,
}

impl Binding {
    /// UDP without queue mode: what an absent `b` means (TS Core 1.1 Table 6.2.1-1 default `U`).
    pub const UDP: Binding = Binding {
        udp: true,
        tcp: false,
        sms: false,
        non_ip: false,
        queue: false,
    };

    /// Reads a `b=` value. `Q` is accepted in any version (1.0 clients put it here).
    pub fn parse(text: &str) -> Result<Binding, RegistrationError> {
        let bad = || RegistrationError::InvalidValue {
            param: "b",
            value: text.to_owned(),
        };
        if text.is_empty() {
            return Err(bad());
        }
        let mut binding = Binding::default();
        for c in text.chars() {
            let flag = match c {
                'U' => &mut binding.udp,
                'T' => &mut binding.tcp,
                'S' => &mut binding.sms,
                'N' => &mut binding.non_ip,
                'Q' => &mut binding.queue,
                _ => return Err(bad()),
            };
            if *flag {
                return Err(bad());
            }
            *flag = true;
        }
        if !(binding.udp || binding.tcp || binding.sms || binding.non_ip) {
            return Err(bad());
        }
        Ok(binding)
    }

    /// The `b=` text for `version`: 1.0 carries queue mode as `Q` after the transport letters.
    pub fn to_text(self, version: Lwm2mVersion) -> String {
        let mut s = String::new();
        if self.udp {
            s.push('U');
        }
        if self.queue && version == Lwm2mVersion::V1_0 {
            s.push('Q');
        }
        if self.sms {
            s.push('S');
        }
        if self.tcp {
            s.push('T');
        }
        if self.non_ip {
            s.push('N');
        }
        s
    }
}

/// Why a Register or Update query was refused, with the CoAP response code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// A mandatory parameter (`ep`) is absent.
    #[error("the mandatory parameter {0:?} is missing")]
    Missing(&'static str),
    /// A parameter's value cannot be read.
    #[error("parameter {param:?} has an invalid value {value:?}")]
    InvalidValue {
        /// The parameter's name.
        param: &'static str,
        /// What was given (shortened).
        value: String,
    },
    /// A parameter appears twice.
    #[error("parameter {0:?} is given twice")]
    Duplicate(String),
    /// The `lwm2m=` version is not one this server serves.
    #[error("LwM2M version {0:?} is not supported (this server serves 1.0, 1.1 and 1.2)")]
    UnsupportedVersion(String),
}

impl RegistrationError {
    /// The CoAP response code (TS Core 1.1 Table 6.2.1-1): 4.12 for an unsupported version so
    /// the client can fall back to an older one, 4.00 otherwise.
    pub fn coap_code(&self) -> (u8, u8) {
        match self {
            RegistrationError::UnsupportedVersion(_) => (4, 12),
            _ => (4, 0),
        }
    }
}

/// The largest lifetime accepted, in seconds (about 136 years: the u32 range).
pub const MAX_LIFETIME: u32 = u32::MAX;
/// The lifetime a Register without `lt` gets (TS Core 1.1 Table 6.2.1-1 default 86400 s).
pub const DEFAULT_LIFETIME: u32 = 86_400;
/// The longest endpoint name accepted, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 255;

/// The parameters of a Register request (`POST /rd?ep=…&lt=…&lwm2m=…&b=…&sms=…&Q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterParams {
    /// The endpoint client name (`ep`), unique in the fleet.
    pub endpoint: String,
    /// Registration lifetime in seconds (`lt`).
    pub lifetime: u32,
    /// The enabler version (`lwm2m`).
    pub version: Lwm2mVersion,
    /// Transport bindings and queue mode (`b`, `Q`).
    pub binding: Binding,
    /// The client's MSISDN (`sms`), if it gave one.
    pub sms_number: Option<String>,
}

/// The parameters of an Update request (`POST /rd/{id}?lt=…&b=…&sms=…`); absent means unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateParams {
    /// A new lifetime in seconds.
    pub lifetime: Option<u32>,
    /// New bindings.
    pub binding: Option<Binding>,
    /// A new MSISDN.
    pub sms_number: Option<String>,
}

/// Splits `name=value` (or a bare `name`) query arguments, refusing repeats.
fn arguments(query: &[String]) -> Result<Vec<(&str, Option<&str>)>, RegistrationError> {
    let mut out: Vec<(&str, Option<&str>)> = Vec::with_capacity(query.len());
    for arg in query {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (arg.as_str(), None),
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(RegistrationError::Duplicate(name.to_owned()));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn parse_lifetime(value: Option<&str>) -> Result<u32, RegistrationError> {
    let text = value.unwrap_or("");
    match text.parse::<u32>() {
        Ok(lt) if lt > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(lt),
        _ => Err(RegistrationError::InvalidValue {
            param: "lt",
            value: text.to_owned(),
        }),
    }
}

impl RegisterParams {
    /// Reads the Uri-Query arguments of a Register request. Unknown parameters are ignored
    /// (later enabler versions add some); a missing `lwm2m` means 1.0 (TS Core 1.0 clients may
    /// leave it out), a missing `b` means `U`, a missing `lt` means 86400 s.
    pub fn from_query(query: &[String]) -> Result<RegisterParams, RegistrationError> {
        let mut endpoint = None;
        let mut lifetime = DEFAULT_LIFETIME;
        let mut version = Lwm2mVersion::V1_0;
        let mut binding = Binding::UDP;
        let mut sms_number = None;
        let mut queue_param = false;
        for (name, value) in arguments(query)? {
            match name {
                "ep" => {
                    let ep = value.unwrap_or("");
                    if ep.is_empty()
                        || ep.len() > MAX_ENDPOINT_LEN
                        || ep.chars().any(|c| c.is_control())
                    {
                        return Err(RegistrationError::InvalidValue {
                            param: "ep",
                            value: ep.chars().take(64).collect(),
                        });
                    }
                    endpoint = Some(ep.to_owned());
                }
                "lt" => lifetime = parse_lifetime(value)?,
                "lwm2m" => {
                    version = match value.unwrap_or("") {
                        "1.0" => Lwm2mVersion::V1_0,
                        "1.1" => Lwm2mVersion::V1_1,
                        "1.2" => Lwm2mVersion::V1_2,
                        other => {
                            return Err(RegistrationError::UnsupportedVersion(
                                other.chars().take(16).collect(),
                            ));
                        }
                    }
                }
                "b" => binding = Binding::parse(value.unwrap_or(""))?,
                "sms" => sms_number = value.map(str::to_owned),
                "Q" => {
                    if value.is_some() {
                        return Err(RegistrationError::InvalidValue {
                            param: "Q",
                            value: value.unwrap_or("").to_owned(),
                        });
                    }
                    queue_param = true;
                }
                _ => {}
            }
        }
        binding.queue |= queue_param;
        let endpoint = endpoint.ok_or(RegistrationError::Missing("ep"))?;
        Ok(RegisterParams {
            endpoint,
            lifetime,
            version,
            binding,
            sms_number,
        })
    }

    /// The Uri-Query arguments for this Register, in the form `version` expects (queue mode as
    /// `Q` in 1.1+, as a binding letter in 1.0).
    pub fn to_query(&self) -> Vec<String> {
        let mut q = vec![
            format!("ep={}", self.endpoint),
            format!("lt={}", self.lifetime),
            format!("lwm2m={}", self.version),
            format!("b={}", self.binding.to_text(self.version)),
        ];
        if let Some(sms) = &self.sms_number {
            q.push(format!("sms={sms}"));
        }
        if self.binding.queue && self.version.is_1_1_or_later() {
            q.push("Q".to_owned());
        }
        q
    }
}

impl UpdateParams {
    /// Reads the Uri-Query arguments of an Update request; unknown parameters are ignored.
    pub fn from_query(query: &[String]) -> Result<UpdateParams, RegistrationError> {
        let mut params = UpdateParams::default();
        for (name, value) in arguments(query)? {
            match name {
                "lt" => params.lifetime = Some(parse_lifetime(value)?),
                "b" => params.binding = Some(Binding::parse(value.unwrap_or(""))?),
                "sms" => params.sms_number = value.map(str::to_owned),
                _ => {}
            }
        }
        Ok(params)
    }

    /// The Uri-Query arguments of this Update.
    pub fn to_query(&self, version: Lwm2mVersion) -> Vec<String> {
        let mut q = Vec::new();
        if let Some(lt) = self.lifetime {
            q.push(format!("lt={lt}"));
        }
        if let Some(b) = self.binding {
            q.push(format!("b={}", b.to_text(version)));
        }
        if let Some(sms) = &self.sms_number {
            q.push(format!("sms={sms}"));
        }
        q
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn register_1_1_with_queue_mode() {
        let p = RegisterParams::from_query(&q(&["ep=meter-1", "lt=300", "lwm2m=1.1", "b=U", "Q"]))
            .unwrap();
        assert_eq!(p.endpoint, "meter-1");
        assert_eq!(p.lifetime, 300);
        assert_eq!(p.version, Lwm2mVersion::V1_1);
        assert!(p.binding.udp && p.binding.queue);
    }

    #[test]
    fn register_1_0_defaults_and_uq_binding() {
        let p = RegisterParams::from_query(&q(&["ep=m"])).unwrap();
        assert_eq!(
            (p.lifetime, p.version, p.binding),
            (86_400, Lwm2mVersion::V1_0, Binding::UDP)
        );
        let p = RegisterParams::from_query(&q(&["ep=m", "lwm2m=1.0", "b=UQ"])).unwrap();
        assert!(p.binding.queue);
        assert_eq!(p.to_query(), q(&["ep=m", "lt=86400", "lwm2m=1.0", "b=UQ"]));
    }

    #[test]
    fn refusals_carry_their_coap_code() {
        let err = RegisterParams::from_query(&q(&["ep=m", "lwm2m=2.0"])).unwrap_err();
        assert_eq!(err.coap_code(), (4, 12));
        for bad in [
            &["lt=60"][..],
            &["ep="],
            &["ep=m", "lt=0"],
            &["ep=m", "lt=-5"],
            &["ep=m", "lt=99999999999"],
            &["ep=m", "b=X"],
            &["ep=m", "b=UU"],
            &["ep=m", "b=Q"],
            &["ep=m", "ep=n"],
            &["ep=m", "Q=1"],
        ] {
            let err = RegisterParams::from_query(&q(bad)).unwrap_err();
            assert_eq!(err.coap_code(), (4, 0), "{bad:?}: {err}");
        }
    }

    #[test]
    fn update_parameters_are_optional() {
        assert_eq!(
            UpdateParams::from_query(&[]).unwrap(),
            UpdateParams::default()
        );
        let u = UpdateParams::from_query(&q(&["lt=120", "b=U"])).unwrap();
        assert_eq!(u.lifetime, Some(120));
        assert_eq!(u.to_query(Lwm2mVersion::V1_1), q(&["lt=120", "b=U"]));
    }

    proptest! {
        #[test]
        fn register_query_round_trips(
            ep in "[a-zA-Z0-9:_.-]{1,40}",
            lt in 1u32..,
            v in prop_oneof![Just(Lwm2mVersion::V1_0), Just(Lwm2mVersion::V1_1), Just(Lwm2mVersion::V1_2)],
            queue in any::<bool>(),
        ) {
            let p = RegisterParams {
                endpoint: ep, lifetime: lt, version: v,
                binding: Binding { queue, ..Binding::UDP }, sms_number: None,
            };
            prop_assert_eq!(RegisterParams::from_query(&p.to_query()), Ok(p));
        }

        #[test]
        fn arbitrary_queries_never_panic(args in proptest::collection::vec(".{0,20}", 0..8)) {
            let _ = RegisterParams::from_query(&args);
            let _ = UpdateParams::from_query(&args);
        }
    }
}
