//! `cargo run -p xtask -- <task>`: project chores. The work lives in the library so tests reuse it.
//!
//! Tasks:
//! - `gen-objects [--registry DIR] [--check]`: (re)generates `lwm2m-objects/src/registry.rs` from
//!   the OMA registry XML in DIR (default: `$LWM2M_REGISTRY_DIR`, else `../shared/lwm2m-registry`
//!   from the workspace root). With `--check`, only compares and exits with status 1 on a
//!   difference.
//!
//! Arguments are parsed with plain `std::env::args`: two flags on a developer-only chores binary
//! do not justify compiling clap.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use xtask::objects;

const USAGE: &str = "\
usage: cargo run -p xtask -- gen-objects [--registry DIR] [--check]

  gen-objects    write lwm2m-objects/src/registry.rs from the OMA registry object XML
  --registry DIR the registry folder (default: $LWM2M_REGISTRY_DIR, else
                 ../shared/lwm2m-registry from the workspace root)
  --check        do not write; exit with status 1 when the committed file differs";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("gen-objects") => gen_objects(args),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown task {other:?}\n{USAGE}"),
        None => bail!("no task given\n{USAGE}"),
    }
}

fn gen_objects(mut args: impl Iterator<Item = String>) -> anyhow::Result<ExitCode> {
    let mut registry: Option<PathBuf> = None;
    let mut check = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--registry" => match args.next() {
                Some(dir) => registry = Some(dir.into()),
                None => bail!("--registry needs a directory\n{USAGE}"),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => match other.strip_prefix("--registry=") {
                Some(dir) => registry = Some(dir.into()),
                None => bail!("unknown argument {other:?}\n{USAGE}"),
            },
        }
    }
    let registry = registry.unwrap_or_else(objects::default_registry_dir);
    let generated = objects::generate(&registry)?;
    let output = xtask::workspace_root().join(objects::OUTPUT_PATH);

    if check {
        let committed = std::fs::read_to_string(&output)
            .with_context(|| format!("reading {}", output.display()))?;
        return Ok(match objects::first_difference(&generated, &committed) {
            None => {
                println!("{} is up to date", objects::OUTPUT_PATH);
                ExitCode::SUCCESS
            }
            Some(diff) => {
                eprintln!(
                    "{} is out of date with the registry in {}; run `{}`.\n{diff}",
                    objects::OUTPUT_PATH,
                    registry.display(),
                    objects::REGENERATE_COMMAND
                );
                ExitCode::FAILURE
            }
        });
    }

    let unchanged = std::fs::read_to_string(&output).is_ok_and(|old| old == generated);
    if !unchanged {
        std::fs::write(&output, &generated)
            .with_context(|| format!("writing {}", output.display()))?;
    }
    println!(
        "{} {} from {}",
        if unchanged { "unchanged:" } else { "wrote" },
        objects::OUTPUT_PATH,
        registry.display()
    );
    Ok(ExitCode::SUCCESS)
}
