//! Project chores run with `cargo run -p xtask -- <task>`; the library half lets tests reuse them.
//!
//! - [`objects`]: generates `lwm2m-objects/src/registry.rs` from the OMA LwM2M registry XML.

pub mod objects;

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the root `Cargo.toml`).
///
/// xtask always lives at `<root>/xtask`, so the root is its manifest directory's parent; taking it
/// from the compile-time manifest path lets the tool run from any working directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
