#!/usr/bin/env bash
# Runs every test of Ferrite on a fresh machine: installs what is missing (idempotently), then
# formats-check, builds and tests the whole workspace, the wasm build, the benches (once, as
# tests), the fuzz targets (build only), the web console build and its real-browser tests.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: wasm32 target"
ensure_wasm_target

step "system packages: openssl (DTLS interop peer), PostgreSQL (second store backend)"
ensure_apt_packages openssl
eval "$(bash scripts/pg.sh)"
echo "FERRITE_TEST_POSTGRES_URL=$FERRITE_TEST_POSTGRES_URL"

step "independent LwM2M clients for the interop tests: Wakaama (gcc), lwm2m-node-lib (npm), aiocoap (pip)"
eval "$(bash scripts/interop.sh)"
echo "FERRITE_WAKAAMA_CLIENT=$FERRITE_WAKAAMA_CLIENT FERRITE_NODE_LWM2M_DIR=$FERRITE_NODE_LWM2M_DIR"

step "format check"
cargo fmt --all -- --check

step "workspace tests (LWM2M_REGISTRY_DIR=${LWM2M_REGISTRY_DIR:-unset})"
# --all-targets builds the ferrite binary in the same run: the flood test uses that one.
export FERRITE_BINARY="$CARGO_TARGET_DIR/debug/ferrite"
cargo test --workspace --all-targets

step "lwm2m-objects builds for wasm32-unknown-unknown"
cargo build -p lwm2m-objects --target wasm32-unknown-unknown

step "fuzz targets compile"
# Type-check only: running them needs cargo-fuzz and sanitizers (see fuzz/README.md).
cargo check --manifest-path fuzz/Cargo.toml --bins

step "web console: size-optimised wasm build (scripts/console.sh)"
bash scripts/console.sh

step "browser tests: the console in chromium against a real server and simulated meters"
bash tests/browser/run.sh

step "all tests passed"
