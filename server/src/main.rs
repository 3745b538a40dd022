//! The `ferrite` binary: parses the command line, sets up logging and runs the server. Everything
//! else lives in the `server` library so tests can drive it without a process.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = server::cli::Cli::parse();
    server::cli::run(cli)
}
