//! Pure presentation logic of the console (no browser, no reactivity), so it is unit-tested on
//! the host: times, durations, values with units, write-value parsing by LwM2M type, query
//! strings, tag filters, and the plain-language text of API errors.

use api_types::{Connectivity, LifecycleState, Role};
use serde_json::Value as Json;

// ---------------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------------

/// Percent-encodes `text` for a URL path segment or query component (RFC 3986 §2.3: only the
/// unreserved characters stay as they are).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (a path parameter the router may hand over still encoded); text
/// without a valid escape is kept as it is.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(h), Some(l)) => {
                let hex = |c: u8| char::from(c).to_digit(16);
                match (hex(*h), hex(*l)) {
                    (Some(h), Some(l)) => u8::try_from(h * 16 + l).ok(),
                    _ => None,
                }
            }
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.extend(bytes.get(i).copied());
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `?k=v&k2=v2` from pairs (empty values left out); empty when no pair remains.
pub fn query_string(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v.trim())))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The console's link to a device page.
pub fn device_href(endpoint: &str) -> String {
    format!("/devices/{}", percent_encode(endpoint))
}

/// The tag filter as the API wants it (`key:value`) from what an operator types (`key=value`,
/// or already `key:value`).
pub fn tag_filter(input: &str) -> Result<String, String> {
    let input = input.trim();
    let split = input.split_once('=').or_else(|| input.split_once(':'));
    match split {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
            Ok(format!("{}:{}", k.trim(), v.trim()))
        }
        _ => Err(format!(
            "Tag filter \"{input}\" needs the form key=value, e.g. region=north"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Seconds since the Unix epoch of an RFC 3339 time (`2025-01-31T12:00:00.123456Z`,
/// `…+02:00`); None when it is not one.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    let text = text.trim();
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (date, rest) = text.split_at_checked(10)?;
    let mut parts = date.split('-');
    let (year, month, day) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, zone) = rest.split_at_checked(8)?;
    let mut hms = clock.split(':');
    let (h, m, s) = (num(hms.next()?)?, num(hms.next()?)?, num(hms.next()?)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let (fraction, zone) = match zone.strip_prefix('.') {
        Some(after) => {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let (frac, zone) = after.split_at_checked(digits)?;
            let value: f64 = format!("0.{frac}").parse().ok()?;
            (value, zone)
        }
        None => (0.0, zone),
    };
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (oh, om) = zone.get(1..)?.split_once(':')?;
            sign * (num(oh)? * 3600 + num(om)? * 60)
        }
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - offset;
    Some(seconds as f64 + fraction)
}

/// `2025-01-31 12:00:00 UTC` for seconds since the Unix epoch.
pub fn utc_text(unix_seconds: f64) -> String {
    let secs = unix_seconds.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An RFC 3339 time as `2025-01-31 12:00:00 UTC` (the text itself when it does not parse).
pub fn time_text(rfc3339: &str) -> String {
    parse_rfc3339(rfc3339).map_or_else(|| rfc3339.to_owned(), utc_text)
}

/// A duration in words: `45 s`, `12 min`, `1 h 30 min`, `2 d 3 h`.
pub fn duration_text(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) if s == 0 => format!("{m} min"),
        (0, 0, _) => format!("{m} min {s} s"),
        (0, _, 0) => format!("{h} h"),
        (0, _, _) => format!("{h} h {m} min"),
        (_, 0, _) => format!("{d} d"),
        _ => format!("{d} d {h} h"),
    }
}

/// How long ago `then` was, relative to `now` (both seconds since the Unix epoch):
/// `just now`, `5 min ago`, `3 h ago`, `2 d ago`; a time ahead of now is `in 5 min`.
pub fn relative_time(then: f64, now: f64) -> String {
    let delta = now - then;
    let span = delta.abs();
    if span < 10.0 {
        return "just now".to_owned();
    }
    let words = if span < 60.0 {
        format!("{} s", span as u64)
    } else if span < 3600.0 {
        format!("{} min", (span / 60.0) as u64)
    } else if span < 86_400.0 {
        format!("{} h", (span / 3600.0) as u64)
    } else {
        format!("{} d", (span / 86_400.0) as u64)
    };
    if delta >= 0.0 {
        format!("{words} ago")
    } else {
        format!("in {words}")
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// How many bytes a base64 text decodes to.
fn base64_len(text: &str) -> usize {
    let text = text.trim_end_matches('=');
    text.len() * 3 / 4
}

/// A value as an operator reads it: with its unit, times as UTC dates, opaque data by size,
/// object links as `/o/i`, no value as `—`.
pub fn value_text(ty: &str, value: &Json, unit: Option<&str>) -> String {
    let core = match (ty, value) {
        (_, Json::Null) => return "—".to_owned(),
        ("Time", Json::Number(n)) => match n.as_f64() {
            Some(secs) => return utc_text(secs),
            None => n.to_string(),
        },
        ("Opaque", Json::String(b64)) => {
            let bytes = base64_len(b64);
            return format!(
                "{bytes} byte{} of binary data",
                if bytes == 1 { "" } else { "s" }
            );
        }
        ("Objlnk", Json::String(link)) => match link.split_once(':') {
            Some((o, i)) => format!("→ /{o}/{i}"),
            None => link.clone(),
        },
        (_, Json::String(s)) => s.clone(),
        (_, Json::Bool(b)) => if *b { "true" } else { "false" }.to_owned(),
        (_, Json::Number(n)) => number_text(n),
        (_, other) => other.to_string(),
    };
    match unit.map(unit_text) {
        Some(unit) if !unit.is_empty() => format!("{core} {unit}"),
        _ => core,
    }
}

/// A unit from the object model as people write it: the OMA registry's `/100` (hundredths, e.g.
/// 3/0/9 Battery Level) is a percentage.
pub fn unit_text(unit: &str) -> &str {
    match unit.trim() {
        "/100" => "%",
        other => other,
    }
}

/// A number without float noise (`3.3000000000000003` → `3.3`).
fn number_text(n: &serde_json::Number) -> String {
    if n.is_f64()
        && let Some(f) = n.as_f64()
    {
        let rounded = format!("{f:.6}");
        let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
        return trimmed.to_owned();
    }
    n.to_string()
}

/// The JSON value to write for what an operator typed, by the resource's LwM2M type; an error
/// says what is expected.
pub fn parse_write_value(ty: &str, text: &str) -> Result<Json, String> {
    let trimmed = text.trim();
    match ty {
        "Integer" | "Time" => trimmed
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| format!("Enter a whole number (got \"{trimmed}\")")),
        "Unsigned Integer" => trimmed
            .parse::<u64>()
            .map(Json::from)
            .map_err(|_| format!("Enter a whole number of 0 or more (got \"{trimmed}\")")),
        "Float" => trimmed
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("Enter a number such as 3.5 (got \"{trimmed}\")")),
        "Boolean" => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Json::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Json::Bool(false)),
            _ => Err(format!("Enter true or false (got \"{trimmed}\")")),
        },
        "Objlnk" => {
            let link = trimmed.trim_start_matches('/').replace('/', ":");
            match link.split_once(':') {
                Some((o, i)) if o.parse::<u16>().is_ok() && i.parse::<u16>().is_ok() => {
                    Ok(Json::String(link))
                }
                _ => Err(format!(
                    "Enter an object link as object:instance, e.g. 3:0 (got \"{trimmed}\")"
                )),
            }
        }
        // Strings keep their spaces; Opaque is base64 text, checked by the server.
        _ => Ok(Json::String(text.to_owned())),
    }
}

/// A hint for the write input of a type.
pub fn write_hint(ty: &str) -> &'static str {
    match ty {
        "Integer" => "whole number",
        "Unsigned Integer" => "whole number ≥ 0",
        "Float" => "number",
        "Boolean" => "true or false",
        "Time" => "seconds since 1970-01-01 UTC",
        "Opaque" => "base64",
        "Objlnk" => "object:instance",
        _ => "text",
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and roles
// ---------------------------------------------------------------------------------------------

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::FieldService => "field-service",
        Role::FleetManager => "fleet-manager",
        Role::Admin => "admin",
    }
}

pub const STATES: [LifecycleState; 6] = [
    LifecycleState::Registered,
    LifecycleState::Provisioned,
    LifecycleState::Active,
    LifecycleState::Suspended,
    LifecycleState::Updating,
    LifecycleState::Decommissioned,
];

pub const CONNECTIVITIES: [Connectivity; 3] = [
    Connectivity::Online,
    Connectivity::Sleeping,
    Connectivity::Offline,
];

pub fn state_name(state: LifecycleState) -> &'static str {
    match state {
        LifecycleState::Registered => "registered",
        LifecycleState::Provisioned => "provisioned",
        LifecycleState::Active => "active",
        LifecycleState::Suspended => "suspended",
        LifecycleState::Updating => "updating",
        LifecycleState::Decommissioned => "decommissioned",
    }
}

pub fn connectivity_name(c: Connectivity) -> &'static str {
    match c {
        Connectivity::Online => "online",
        Connectivity::Sleeping => "sleeping",
        Connectivity::Offline => "offline",
    }
}

/// The count of one state in the fleet summary.
pub fn state_count(counts: &api_types::StateCounts, state: LifecycleState) -> u64 {
    match state {
        LifecycleState::Registered => counts.registered,
        LifecycleState::Provisioned => counts.provisioned,
        LifecycleState::Active => counts.active,
        LifecycleState::Suspended => counts.suspended,
        LifecycleState::Updating => counts.updating,
        LifecycleState::Decommissioned => counts.decommissioned,
    }
}

/// The count of one connectivity in the fleet summary.
pub fn connectivity_count(counts: &api_types::ConnectivityCounts, c: Connectivity) -> u64 {
    match c {
        Connectivity::Online => counts.online,
        Connectivity::Sleeping => counts.sleeping,
        Connectivity::Offline => counts.offline,
    }
}

pub fn parse_state(text: &str) -> Option<LifecycleState> {
    STATES.into_iter().find(|s| state_name(*s) == text)
}

pub fn parse_connectivity(text: &str) -> Option<Connectivity> {
    CONNECTIVITIES
        .into_iter()
        .find(|c| connectivity_name(*c) == text)
}

/// An operator's lifecycle action (PRODUCT.md "Device lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Suspend,
    Resume,
    Decommission,
}

impl LifecycleAction {
    pub fn label(self) -> &'static str {
        match self {
            LifecycleAction::Suspend => "Suspend",
            LifecycleAction::Resume => "Resume",
            LifecycleAction::Decommission => "Decommission",
        }
    }

    /// The state the action asks for.
    pub fn target(self) -> LifecycleState {
        match self {
            LifecycleAction::Suspend => LifecycleState::Suspended,
            LifecycleAction::Resume => LifecycleState::Active,
            LifecycleAction::Decommission => LifecycleState::Decommissioned,
        }
    }
}

/// The actions `role` may take on a device in `state`: the legal transitions (suspend an active
/// device, resume a suspended one, decommission anything not yet decommissioned) that the role
/// allows (fleet-manager for suspend and resume, admin for decommission).
pub fn lifecycle_actions(role: Role, state: LifecycleState) -> Vec<LifecycleAction> {
    let mut actions = Vec::new();
    if role >= Role::FleetManager {
        match state {
            LifecycleState::Active => actions.push(LifecycleAction::Suspend),
            LifecycleState::Suspended => actions.push(LifecycleAction::Resume),
            _ => {}
        }
    }
    if role >= Role::Admin && state != LifecycleState::Decommissioned {
        actions.push(LifecycleAction::Decommission);
    }
    actions
}

// ---------------------------------------------------------------------------------------------
// Execute
// ---------------------------------------------------------------------------------------------

/// What executing a resource does to the meter when that is disruptive (the console then asks
/// for an explicit confirmation): reboot, factory reset, firmware update, bootstrap request.
/// Keyed by object and resource (TS Core 1.1 Appendix E: 3/0/4 Reboot, 3/0/5 Factory Reset,
/// 5/0/2 Update, 1/x/8 Bootstrap-Request Trigger).
pub fn execute_warning(path: &str) -> Option<&'static str> {
    let mut ids = path.trim_start_matches('/').split('/');
    let (object, _instance, resource) = (ids.next()?, ids.next()?, ids.next()?);
    match (object, resource) {
        ("3", "4") => Some(
            "The meter restarts: it stops metering and leaves the network until it registers again.",
        ),
        ("3", "5") => Some(
            "The meter erases its configuration and data and returns to factory settings. \
             This cannot be undone and may need a site visit to recover.",
        ),
        ("5", "2") => Some("The meter installs the downloaded firmware package and restarts."),
        ("1", "8") => {
            Some("The meter drops its server settings and asks the bootstrap server for new ones.")
        }
        _ => None,
    }
}

/// Execute arguments as typed, checked against the grammar of TS Core 1.1 §5.4.5 (a
/// comma-separated list of `digit` or `digit='value'`, the value without `'`): `Ok(None)` for
/// none, the text to send, or why it is not valid.
pub fn parse_execute_args(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    const HINT: &str = "Arguments are a comma-separated list like 0 or 0='text',1";
    let mut rest = text;
    loop {
        let mut chars = rest.chars();
        match chars.next() {
            Some(c) if c.is_ascii_digit() => {}
            _ => return Err(HINT.to_owned()),
        }
        rest = chars.as_str();
        if let Some(after) = rest.strip_prefix("='") {
            let end = after.find('\'').ok_or_else(|| HINT.to_owned())?;
            let value = after.get(..end).unwrap_or_default();
            if value.chars().any(|c| c.is_control()) {
                return Err("Argument values cannot hold control characters".to_owned());
            }
            rest = after.get(end + 1..).unwrap_or_default();
        }
        if rest.is_empty() {
            return Ok(Some(text.to_owned()));
        }
        rest = rest.strip_prefix(',').ok_or_else(|| HINT.to_owned())?;
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What a failed API call came to, in words for an operator: what happened, then the HTTP status
/// (and the device's CoAP code) for whoever takes the ticket. `error` and `message` are the
/// body's code and sentence, when the server sent one.
pub fn plain_error(status: u16, error: &str, message: &str, coap_code: Option<&str>) -> String {
    let coap = coap_code.map(|c| format!(", CoAP {c}")).unwrap_or_default();
    let detail = |m: &str| -> String {
        let m = m.trim().trim_end_matches('.');
        if m.is_empty() {
            String::new()
        } else {
            format!(": {m}")
        }
    };
    let text = match (status, error) {
        (504, _) | (_, "timeout") => "The device did not answer in time".to_owned(),
        (_, "expired") => "The request expired before the device woke up".to_owned(),
        (_, "unknown_device") => "The server does not know this device".to_owned(),
        (_, "not_registered") => {
            "The device is not registered right now (it may be offline or asleep)".to_owned()
        }
        (_, "registration_ended") => {
            "The device's registration ended while the request was running".to_owned()
        }
        (404, "device_error") => "The device does not have this object or resource".to_owned(),
        (405, _) => "The device does not allow this operation on this resource".to_owned(),
        (_, "device_error") => format!("The device refused the request{}", detail(message)),
        (_, "bad_response") => "The device's answer could not be understood".to_owned(),
        (_, "busy") | (429, _) => {
            format!(
                "The device is busy or has too many observations{}",
                detail(message)
            )
        }
        (_, "not_allowed") | (409, _) => format!("Not allowed now{}", detail(message)),
        (503, _) | (_, "unavailable") => "The device service is not running".to_owned(),
        (403, _) => "Your role does not allow this".to_owned(),
        (401, _) => "Your session has expired".to_owned(),
        (404, _) => format!("Not found{}", detail(message)),
        (413, _) => "The file is too large".to_owned(),
        (400, _) | (_, "bad_request") | (_, "invalid_request") => {
            format!("The request was not valid{}", detail(message))
        }
        (s, _) if s >= 500 => "The server ran into an error; try again".to_owned(),
        _ => format!("The request failed{}", detail(message)),
    };
    format!("{text} ({status}{coap})")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn disruptive_executes_are_named() {
        assert!(execute_warning("/3/0/4").unwrap().contains("restarts"));
        assert!(
            execute_warning("/3/0/5")
                .unwrap()
                .contains("cannot be undone")
        );
        assert!(execute_warning("/5/0/2").is_some());
        assert!(execute_warning("/1/3/8").is_some());
        assert_eq!(
            execute_warning("/3/0/12"),
            None,
            "Reset Error Code is harmless"
        );
        assert_eq!(
            execute_warning("/1/0/4"),
            None,
            "Registration Update Trigger"
        );
        assert_eq!(execute_warning("/3"), None);
        assert_eq!(execute_warning(""), None);
    }

    #[test]
    fn execute_arguments_follow_the_grammar() {
        assert_eq!(parse_execute_args("  "), Ok(None));
        assert_eq!(parse_execute_args("0"), Ok(Some("0".into())));
        assert_eq!(
            parse_execute_args(" 0='a, b',1 "),
            Ok(Some("0='a, b',1".into()))
        );
        assert_eq!(parse_execute_args("5=''"), Ok(Some("5=''".into())));
        for bad in ["a", "10", "0=", "0='open", "0,", ",0", "0;1", "0 ='x'"] {
            assert!(parse_execute_args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_encode_everything_but_unreserved() {
        assert_eq!(percent_encode("meter-01.a_b~"), "meter-01.a_b~");
        assert_eq!(percent_encode("a b/c:d&e"), "a%20b%2Fc%3Ad%26e");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(
            query_string(&[
                ("q", "m 1".into()),
                ("state", String::new()),
                ("tag", "r:n".into())
            ]),
            "?q=m%201&tag=r%3An"
        );
        assert_eq!(query_string(&[("q", "  ".into())]), "");
        assert_eq!(device_href("urn:imei:1"), "/devices/urn%3Aimei%3A1");
        assert_eq!(percent_decode("urn%3Aimei%3a1"), "urn:imei:1");
        assert_eq!(percent_decode("%C3%A9 100%"), "é 100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode(&percent_encode("a b/c")), "a b/c");
    }

    #[test]
    fn tag_filters_take_equals_or_colon() {
        assert_eq!(tag_filter("region=north").unwrap(), "region:north");
        assert_eq!(tag_filter(" region : north ").unwrap(), "region:north");
        assert!(tag_filter("region").unwrap_err().contains("key=value"));
        assert!(tag_filter("=north").is_err());
    }

    #[test]
    fn rfc3339_times_parse_and_print_in_utc() {
        // 2025-01-31T12:00:00Z is 1738324800 (date -u -d 2025-01-31T12:00:00Z +%s).
        assert_eq!(parse_rfc3339("2025-01-31T12:00:00Z"), Some(1_738_324_800.0));
        assert_eq!(
            parse_rfc3339("2025-01-31T12:00:00.5Z"),
            Some(1_738_324_800.5)
        );
        assert_eq!(
            parse_rfc3339("2025-01-31T14:00:00+02:00"),
            Some(1_738_324_800.0)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        for bad in [
            "",
            "2025-13-01T00:00:00Z",
            "2025-01-31",
            "2025-01-31T12:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(utc_text(1_738_324_800.9), "2025-01-31 12:00:00 UTC");
        // A leap day and a date before the epoch.
        assert_eq!(utc_text(1_709_164_800.0), "2024-02-29 00:00:00 UTC");
        assert_eq!(utc_text(-86_400.0), "1969-12-31 00:00:00 UTC");
        assert_eq!(
            time_text("2025-01-31T12:00:00.123456Z"),
            "2025-01-31 12:00:00 UTC"
        );
        assert_eq!(time_text("garbage"), "garbage");
    }

    #[test]
    fn durations_and_relative_times_read_naturally() {
        assert_eq!(duration_text(45), "45 s");
        assert_eq!(duration_text(300), "5 min");
        assert_eq!(duration_text(330), "5 min 30 s");
        assert_eq!(duration_text(3600), "1 h");
        assert_eq!(duration_text(5400), "1 h 30 min");
        assert_eq!(duration_text(86_400), "1 d");
        assert_eq!(duration_text(97_200), "1 d 3 h");
        assert_eq!(relative_time(1000.0, 1003.0), "just now");
        assert_eq!(relative_time(1000.0, 1045.0), "45 s ago");
        assert_eq!(relative_time(1000.0, 1000.0 + 720.0), "12 min ago");
        assert_eq!(relative_time(0.0, 3.0 * 86_400.0), "3 d ago");
        assert_eq!(relative_time(1000.0 + 300.0, 1000.0), "in 5 min");
    }

    #[test]
    fn values_show_with_units_and_by_type() {
        assert_eq!(value_text("Integer", &json!(87), Some("%")), "87 %");
        assert_eq!(value_text("Integer", &json!(87), Some("/100")), "87 %");
        assert_eq!(unit_text(" dBm "), "dBm");
        assert_eq!(
            value_text("Float", &json!(3.3000000000000003), Some("V")),
            "3.3 V"
        );
        assert_eq!(value_text("Float", &json!(-110.0), Some("dBm")), "-110 dBm");
        assert_eq!(value_text("Boolean", &json!(true), None), "true");
        assert_eq!(
            value_text("Time", &json!(1_738_324_800), Some("s")),
            "2025-01-31 12:00:00 UTC"
        );
        assert_eq!(
            value_text("Opaque", &json!("AAEC"), None),
            "3 bytes of binary data"
        );
        assert_eq!(value_text("Objlnk", &json!("3:0"), None), "→ /3/0");
        assert_eq!(value_text("String", &json!("Acme"), Some("")), "Acme");
        assert_eq!(value_text("none", &Json::Null, None), "—");
    }

    #[test]
    fn write_values_are_parsed_by_type_with_helpful_errors() {
        assert_eq!(parse_write_value("Integer", " 300 ").unwrap(), json!(300));
        assert!(
            parse_write_value("Integer", "3.5")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(parse_write_value("Unsigned Integer", "-1").is_err());
        assert_eq!(parse_write_value("Float", "2.5").unwrap(), json!(2.5));
        assert!(parse_write_value("Float", "NaN").is_err());
        assert_eq!(parse_write_value("Boolean", "Yes").unwrap(), json!(true));
        assert_eq!(parse_write_value("Boolean", "0").unwrap(), json!(false));
        assert!(parse_write_value("Boolean", "maybe").is_err());
        assert_eq!(parse_write_value("Objlnk", "/3/0").unwrap(), json!("3:0"));
        assert!(parse_write_value("Objlnk", "3").is_err());
        assert_eq!(parse_write_value("String", " U ").unwrap(), json!(" U "));
        assert_eq!(write_hint("Float"), "number");
    }

    #[test]
    fn lifecycle_actions_follow_role_and_state() {
        use LifecycleAction::*;
        assert!(lifecycle_actions(Role::FieldService, LifecycleState::Active).is_empty());
        assert_eq!(
            lifecycle_actions(Role::FleetManager, LifecycleState::Active),
            vec![Suspend]
        );
        assert_eq!(
            lifecycle_actions(Role::FleetManager, LifecycleState::Suspended),
            vec![Resume]
        );
        assert_eq!(
            lifecycle_actions(Role::Admin, LifecycleState::Active),
            vec![Suspend, Decommission]
        );
        assert_eq!(
            lifecycle_actions(Role::Admin, LifecycleState::Registered),
            vec![Decommission]
        );
        assert!(lifecycle_actions(Role::Admin, LifecycleState::Decommissioned).is_empty());
        assert_eq!(Suspend.target(), LifecycleState::Suspended);
        assert_eq!(parse_state("updating"), Some(LifecycleState::Updating));
        assert_eq!(parse_connectivity("sleeping"), Some(Connectivity::Sleeping));
        assert_eq!(parse_state(""), None);
    }

    #[test]
    fn errors_read_as_plain_language_with_the_status() {
        assert_eq!(
            plain_error(504, "timeout", "no answer within 30000 ms", None),
            "The device did not answer in time (504)"
        );
        assert_eq!(
            plain_error(404, "device_error", "4.04 Not Found", Some("4.04")),
            "The device does not have this object or resource (404, CoAP 4.04)"
        );
        assert_eq!(
            plain_error(404, "not_registered", "x", None),
            "The device is not registered right now (it may be offline or asleep) (404)"
        );
        assert_eq!(
            plain_error(
                409,
                "not_allowed",
                "Write is not allowed while suspended.",
                None
            ),
            "Not allowed now: Write is not allowed while suspended (409)"
        );
        assert_eq!(
            plain_error(502, "device_error", "4.01 Unauthorized", Some("4.01")),
            "The device refused the request: 4.01 Unauthorized (502, CoAP 4.01)"
        );
        assert_eq!(
            plain_error(403, "forbidden", "", None),
            "Your role does not allow this (403)"
        );
        assert_eq!(
            plain_error(500, "internal", "internal error", None),
            "The server ran into an error; try again (500)"
        );
    }
}
