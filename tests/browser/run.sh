#!/usr/bin/env bash
# Real-browser tests of the web console, run by scripts/test.sh after the cargo tests: installs
# Debian's chromium and playwright-core (package-lock.json) idempotently, builds the server, the
# simulator and the console, then runs run.mjs (the scenarios). With CI=true a missing tool fails
# the run; elsewhere it prints SKIPPED.
#   bash tests/browser/run.sh             the scenarios
#   bash tests/browser/run.sh measure     fleet render timings with 10,000 and 100,000 devices
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

unavailable() {
    if [ "${CI:-}" = "true" ]; then
        echo "browser tests: $* (CI=true: failing instead of skipping)" >&2
        exit 1
    fi
    echo "SKIPPED: browser tests: $*"
    exit 0
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    unavailable "node and npm are not installed (Node.js 20 or newer)"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    unavailable "Node.js $(node --version) is too old for playwright-core (20 or newer)"
fi
if [ ! -x /usr/bin/chromium ]; then
    ensure_apt_packages chromium fonts-dejavu-core || true
    [ -x /usr/bin/chromium ] || unavailable "chromium could not be installed (apt-get install chromium)"
fi

# playwright-core exactly as locked; it drives /usr/bin/chromium (it downloads no browser).
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.ferrite-installed-lock; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error \
        && cp package-lock.json node_modules/.ferrite-installed-lock)
fi

# Cheap after `cargo test --workspace`: the debug binaries the harness starts.
cargo build -p server --bin ferrite -p client-sim --bin ferrite-sim
bash scripts/console.sh
export FERRITE_CONSOLE_DIR="$CARGO_TARGET_DIR/console-dist"
export FERRITE_BIN="$CARGO_TARGET_DIR/debug/ferrite"
export FERRITE_SIM_BIN="$CARGO_TARGET_DIR/debug/ferrite-sim"

case "${1:-test}" in
    measure) shift; exec node tests/browser/measure.mjs "$@" ;;
    *) exec node tests/browser/run.mjs ;;
esac
