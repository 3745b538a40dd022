#!/usr/bin/env bash
# Builds and runs Ferrite on this machine with SQLite: one command on a fresh clone.
# Settings: FERRITE_* environment variables or a TOML file (see `ferrite --help`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

data="${FERRITE_DATA_DIR:-$root/ferrite-data}"
mkdir -p "$data"
export FERRITE_DATABASE_URL="${FERRITE_DATABASE_URL:-sqlite://$data/ferrite.db}"

# An admin API token for this installation, made once and kept in the data directory (0600).
if [ -z "${FERRITE_API_TOKEN:-}" ]; then
    if [ ! -s "$data/api-token" ]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$data/api-token")
    fi
    FERRITE_API_TOKEN="$(cat "$data/api-token")"
    export FERRITE_API_TOKEN
    echo "Admin API token: kept in $data/api-token (mode 0600)"
fi

# The server key that seals the device PSKs at rest, made once and kept beside the database (0600):
# losing it makes the stored keys unreadable.
if [ -z "${FERRITE_SECRET_KEY:-}" ]; then
    if [ ! -s "$data/secret-key" ]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$data/secret-key")
    fi
    FERRITE_SECRET_KEY="$(cat "$data/secret-key")"
    export FERRITE_SECRET_KEY
fi

# The web console (wasm), served by the server at /: built (and its tools installed) when needed.
bash scripts/console.sh
export FERRITE_CONSOLE_DIR="${FERRITE_CONSOLE_DIR:-$CARGO_TARGET_DIR/console-dist}"

cargo build --release -p server --bin ferrite
echo "Ferrite console on http://${FERRITE_HTTP_ADDR:-127.0.0.1:8080}/ (first admin: FERRITE_ADMIN_USER/FERRITE_ADMIN_PASSWORD or \`ferrite user add\`)"
echo "Ferrite HTTP API on http://${FERRITE_HTTP_ADDR:-127.0.0.1:8080}/api/v1 (try: curl -H \"Authorization: Bearer \$(cat $data/api-token)\" http://${FERRITE_HTTP_ADDR:-127.0.0.1:8080}/api/v1/objects)"
exec "$CARGO_TARGET_DIR/release/ferrite" serve "$@"
