//! `ferrite-sim`: the simulated smart-meter fleet. For now it only describes the object model the
//! meters will expose; the meters themselves come with the simulator issue, on top of the
//! `lwm2m-proto` client side.

use clap::{Parser, Subcommand};
use lwm2m_objects::ObjectModel;

/// Ferrite's meter simulator: many LwM2M smart meters in one process, for tests and load.
#[derive(Debug, Parser)]
#[command(name = "ferrite-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the LwM2M objects a simulated meter knows, with their resources.
    Objects,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Objects => {
            for object in ObjectModel::builtin().objects() {
                println!(
                    "/{} {} (version {})",
                    object.id, object.name, object.version
                );
                for r in object.resources {
                    let units = r.units.map(|u| format!(" [{u}]")).unwrap_or_default();
                    println!(
                        "  /{}/x/{} {} {} {}{}",
                        object.id,
                        r.id,
                        r.name,
                        r.operations.as_str(),
                        r.ty,
                        units
                    );
                }
            }
            Ok(())
        }
    }
}
