//! The `ferrite` command line: `ferrite serve` (the default) runs the server; flags override
//! environment variables, which override the configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat};

/// Ferrite: an LwM2M device-management server for smart-meter fleets.
///
/// Meters register over CoAP (RFC 7252) secured by DTLS 1.2 PSK; operators use the web console
/// and the HTTP API under /api/v1. Settings come from a TOML file (--config), then environment
/// variables, then flags, each overriding the one before.
#[derive(Debug, Parser)]
#[command(name = "ferrite", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for `serve`, which runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Print the effective configuration (file + environment + flags), secrets redacted, and exit.
    Config(ServeArgs),
    /// Manage operator accounts (`ferrite user add --name alice --role admin`).
    User(crate::accounts::cli::UserArgs),
}

/// Server settings. Each flag can also be given by the environment variable shown, and every
/// key can be put in the configuration file under the same name with underscores.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file; keys: http_addr, coap_addr, coaps_addr, nosec, bs_coap_addr,
    /// bs_coaps_addr, public_coaps_uri, database_url,
    /// api_token, log_format, secret_key, lifetime_grace_secs, queued_request_expiry_secs,
    /// secure_cookies, console_dir.
    #[arg(long, env = "FERRITE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API and web console [default: 127.0.0.1:8080].
    #[arg(long, env = "FERRITE_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Address of the plain CoAP endpoint; opened only when NoSec is enabled [default: 0.0.0.0:5683].
    #[arg(long, env = "FERRITE_COAP_ADDR", value_name = "ADDR")]
    pub coap_addr: Option<SocketAddr>,
    /// Address of the CoAP-over-DTLS endpoint [default: 0.0.0.0:5684].
    #[arg(long, env = "FERRITE_COAPS_ADDR", value_name = "ADDR")]
    pub coaps_addr: Option<SocketAddr>,
    /// Accept unsecured CoAP (NoSec). Off by default: only for labs and tests.
    #[arg(long, env = "FERRITE_NOSEC", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub nosec: Option<bool>,
    /// Bootstrap server, plain CoAP; opened only when NoSec is enabled [default: the CoAP IP, port 5783].
    #[arg(long, env = "FERRITE_BS_COAP_ADDR", value_name = "ADDR")]
    pub bs_coap_addr: Option<SocketAddr>,
    /// Bootstrap server, CoAP over DTLS [default: the CoAPS IP, port 5784].
    #[arg(long, env = "FERRITE_BS_COAPS_ADDR", value_name = "ADDR")]
    pub bs_coaps_addr: Option<SocketAddr>,
    /// LwM2M server URI that bootstrap writes to devices, e.g. coaps://lwm2m.example.com:5684
    /// [default: coaps:// and the bound CoAPS address].
    #[arg(long, env = "FERRITE_PUBLIC_COAPS_URI", value_name = "URI")]
    pub public_coaps_uri: Option<String>,
    /// Database: sqlite://FILE (default sqlite://ferrite.db, created on first start) or postgres://….
    #[arg(long, env = "FERRITE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Static admin bearer token for automation. Prefer the environment variable: flags are
    /// visible to other users of the machine.
    #[arg(
        long,
        env = "FERRITE_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// Log format: text (people) or json (log collectors). The level is set with RUST_LOG.
    #[arg(long, env = "FERRITE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Server key sealing the device PSKs at rest: 64 hex characters, the same on every start
    /// (scripts/run.sh makes one). Prefer the environment variable.
    #[arg(
        long,
        env = "FERRITE_SECRET_KEY",
        value_name = "HEX",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// Seconds a registration outlives its lifetime without an Update before it expires
    /// [default: 30].
    #[arg(long, env = "FERRITE_LIFETIME_GRACE_SECS", value_name = "SECONDS")]
    pub lifetime_grace_secs: Option<u64>,
    /// Seconds a request to a sleeping queue-mode device waits for it to wake [default: 86400].
    #[arg(
        long,
        env = "FERRITE_QUEUED_REQUEST_EXPIRY_SECS",
        value_name = "SECONDS"
    )]
    pub queued_request_expiry_secs: Option<u64>,
    /// Send the console session cookie only over HTTPS (set when the console is served over
    /// HTTPS, e.g. behind a TLS proxy) [default: false].
    #[arg(long, env = "FERRITE_SECURE_COOKIES", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub secure_cookies: Option<bool>,
    /// Directory of the built web console (scripts/console.sh), served at / [default: `console`
    /// beside the binary, else `../console-dist` from it].
    #[arg(long, env = "FERRITE_CONSOLE_DIR", value_name = "DIR")]
    pub console_dir: Option<PathBuf>,
}

impl ServeArgs {
    /// The effective configuration: defaults, then the file, then env/flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.http_addr {
            config.http_addr = v;
        }
        if let Some(v) = self.coap_addr {
            config.coap_addr = v;
        }
        if let Some(v) = self.coaps_addr {
            config.coaps_addr = v;
        }
        if let Some(v) = self.nosec {
            config.nosec = v;
        }
        if let Some(v) = self.bs_coap_addr {
            config.bs_coap_addr = Some(v);
        }
        if let Some(v) = self.bs_coaps_addr {
            config.bs_coaps_addr = Some(v);
        }
        if let Some(v) = &self.public_coaps_uri {
            config.public_coaps_uri = Some(v.clone()).filter(|u| !u.is_empty());
        }
        if let Some(v) = &self.database_url {
            config.database_url = v.clone();
        }
        if let Some(v) = &self.api_token {
            config.api_token = Some(v.clone()).filter(|t| !t.is_empty());
        }
        if let Some(v) = self.log_format {
            config.log_format = v;
        }
        if let Some(v) = &self.secret_key {
            config.secret_key = Some(v.clone()).filter(|k| !k.is_empty());
        }
        if let Some(v) = self.lifetime_grace_secs {
            config.lifetime_grace_secs = v;
        }
        if let Some(v) = self.queued_request_expiry_secs {
            config.queued_request_expiry_secs = v;
        }
        if let Some(v) = self.secure_cookies {
            config.secure_cookies = v;
        }
        if let Some(v) = &self.console_dir {
            config.console_dir = Some(v.clone());
        }
        Ok(config)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Config(args)) => {
            println!("{:#?}", args.resolve()?);
            Ok(())
        }
        Some(Command::Serve(args)) => serve(args),
        Some(Command::User(args)) => crate::accounts::cli::run(args),
        None => serve(cli.serve),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    crate::logging::init(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::run::run(config, shutdown_signal()))
}

/// Resolves on Ctrl-C or SIGTERM, so the server can finish what it acknowledged.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("ferrite-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ferrite.toml");
        std::fs::write(&file, "http_addr = \"127.0.0.1:9001\"\nnosec = true\n").unwrap();
        let cli = Cli::try_parse_from([
            "ferrite",
            "--config",
            file.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:9002",
        ])
        .unwrap();
        let config = cli.serve.resolve().unwrap();
        assert_eq!(
            config.http_addr,
            "127.0.0.1:9002".parse::<SocketAddr>().unwrap()
        );
        assert!(
            config.nosec,
            "the file's value stays where no flag overrides it"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn help_explains_every_setting() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        for word in [
            "FERRITE_HTTP_ADDR",
            "FERRITE_NOSEC",
            "FERRITE_DATABASE_URL",
            "FERRITE_API_TOKEN",
            "FERRITE_SECRET_KEY",
        ] {
            assert!(help.contains(word), "--help does not mention {word}");
        }
    }
}
