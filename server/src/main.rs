//! The `ferrite` binary: parses the command line, sets up logging and runs the server. Everything
//! else lives in the `server` library so tests can drive it without a process.

use clap::Parser as _;

/// mimalloc instead of glibc's malloc, tuned by [`ALLOCATOR_SETTINGS`]. Measured with 10,000
/// registered devices (NoSec, RSS growth per device right after the registrations): glibc
/// 4.9–5.1 KB (per-thread arenas keep the freed pages of the registration storm; live data is
/// ~1.6 KB per device by heaptrack), glibc with 2 arenas 4.3 KB, mimalloc's defaults 5.2–5.8 KB,
/// mimalloc with these settings 3.4–3.5 KB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc reads its options from the environment once, before `main`; the workspace forbids the
/// `unsafe` its C API (`mi_option_set`) needs. So the binary re-executes itself once with these
/// set, unless the environment already sets them (an operator's own values win).
/// - `MIMALLOC_ARENA_EAGER_COMMIT=0`: commit arena memory as it is used, not 1 GiB ahead;
/// - `MIMALLOC_PURGE_DELAY=0`: return freed pages to the OS at once, not 10 ms later in 2 MiB
///   steps (the registration storm's transient buffers otherwise stay resident).
const ALLOCATOR_SETTINGS: [(&str, &str); 2] = [
    ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
    ("MIMALLOC_PURGE_DELAY", "0"),
];

fn main() -> anyhow::Result<()> {
    reexec_with_allocator_settings();
    let cli = server::cli::Cli::parse();
    server::cli::run(cli)
}

/// Replaces this process (same PID) by the same binary and arguments with
/// [`ALLOCATOR_SETTINGS`] in its environment; returns when they are already set or the exec
/// fails (the server then runs with mimalloc's defaults).
fn reexec_with_allocator_settings() {
    use std::os::unix::process::CommandExt as _;
    if ALLOCATOR_SETTINGS
        .iter()
        .all(|(name, _)| std::env::var_os(name).is_some())
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command.args(std::env::args_os().skip(1));
    for (name, value) in ALLOCATOR_SETTINGS {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    // Only returns on failure.
    let error = command.exec();
    eprintln!("ferrite: could not re-execute with the allocator settings ({error}); continuing");
}
