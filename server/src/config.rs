//! The server's one typed configuration, loaded from a TOML file, then overridden by environment
//! variables, then by command-line flags (the flag/env layer is `cli::ServeArgs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything `ferrite serve` needs to run. Defaults are safe: NoSec off, loopback HTTP.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP API and console listen address.
    pub http_addr: SocketAddr,
    /// Plain CoAP (NoSec) listen address; only opened when `nosec` is true.
    pub coap_addr: SocketAddr,
    /// CoAP over DTLS listen address.
    pub coaps_addr: SocketAddr,
    /// Whether unsecured CoAP is accepted at all (per device as well, once devices exist).
    pub nosec: bool,
    /// Bootstrap server, plain CoAP (only with `nosec`); None: `coap_addr`'s IP, port 5783.
    pub bs_coap_addr: Option<SocketAddr>,
    /// Bootstrap server, CoAP over DTLS; None: `coaps_addr`'s IP, port 5784.
    pub bs_coaps_addr: Option<SocketAddr>,
    /// The LwM2M server URI bootstrap writes to devices (`coaps://host:5684`); None: derived
    /// from the bound CoAPS address (set it whenever devices reach the server by another name).
    pub public_coaps_uri: Option<String>,
    /// `sqlite://path` (default, created on first start) or `postgres://…`.
    pub database_url: String,
    /// A static bearer token with admin rights for automation; none when unset.
    pub api_token: Option<String>,
    /// Log output: `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// The server key (64 hex characters, 32 bytes) that seals device PSKs at rest; the same key
    /// on every start. Required by `serve`; `scripts/run.sh` makes one per installation.
    pub secret_key: Option<String>,
    /// Seconds a registration outlives its lifetime without an Update before it expires: slack
    /// for an Update being retransmitted (OMA LwM2M TS Core 1.1 §6.2.1).
    pub lifetime_grace_secs: u64,
    /// Seconds a request to a sleeping queue-mode device waits for it to wake before it fails.
    pub queued_request_expiry_secs: u64,
    /// Mark the console's session cookie `Secure` (sent over HTTPS only). Turn on whenever the
    /// console is reached over HTTPS, e.g. behind a TLS-terminating proxy.
    pub secure_cookies: bool,
    /// The built web console (`scripts/console.sh`), served at `/`. None: `console` beside the
    /// binary, else `console-dist` beside its build directory; without one `/` says how to build it.
    pub console_dir: Option<PathBuf>,
    /// Thresholds of the diagnostic rules (`[diagnostics]` table of the configuration file; keys
    /// left out keep their defaults, see `GET /api/v1/diagnostics/rules`).
    pub diagnostics: ferrite_diagnostics::Thresholds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            coap_addr: SocketAddr::from(([0, 0, 0, 0], 5683)),
            coaps_addr: SocketAddr::from(([0, 0, 0, 0], 5684)),
            nosec: false,
            bs_coap_addr: None,
            bs_coaps_addr: None,
            public_coaps_uri: None,
            database_url: "sqlite://ferrite.db".to_owned(),
            api_token: None,
            log_format: LogFormat::Text,
            secret_key: None,
            lifetime_grace_secs: 30,
            queued_request_expiry_secs: 24 * 3600,
            secure_cookies: false,
            console_dir: None,
            diagnostics: ferrite_diagnostics::Thresholds::default(),
        }
    }
}

// Hand-written so that the API token never reaches a log line or a panic message.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("coap_addr", &self.coap_addr)
            .field("coaps_addr", &self.coaps_addr)
            .field("nosec", &self.nosec)
            .field("bs_coap_addr", &self.bs_coap_addr)
            .field("bs_coaps_addr", &self.bs_coaps_addr)
            .field("public_coaps_uri", &self.public_coaps_uri)
            .field("database_url", &redact_url(&self.database_url))
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("log_format", &self.log_format)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("lifetime_grace_secs", &self.lifetime_grace_secs)
            .field(
                "queued_request_expiry_secs",
                &self.queued_request_expiry_secs,
            )
            .field("secure_cookies", &self.secure_cookies)
            .field("console_dir", &self.console_dir)
            .field("diagnostics", &self.diagnostics)
            .finish()
    }
}

/// Removes a password from a database URL (`postgres://user:secret@host` → `postgres://user:***@host`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
}

impl Config {
    /// Reads a TOML file; keys left out keep their defaults, unknown keys are an error.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_refused() {
        let config = Config::from_toml("http_addr = \"0.0.0.0:9000\"\nnosec = true\n").unwrap();
        assert_eq!(
            config.http_addr,
            "0.0.0.0:9000".parse::<SocketAddr>().unwrap()
        );
        assert!(config.nosec);
        assert_eq!(config.coaps_addr, Config::default().coaps_addr);
        assert!(Config::from_toml("htp_addr = \"0.0.0.0:9000\"").is_err());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let config = Config {
            api_token: Some("s3cret-token".into()),
            secret_key: Some("ab".repeat(32)),
            database_url: "postgres://ferrite:pa55word@localhost/ferrite".into(),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret-token"), "{shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(!shown.contains(&"ab".repeat(32)), "{shown}");
        assert!(
            shown.contains("postgres://ferrite:***@localhost/ferrite"),
            "{shown}"
        );
    }
}
