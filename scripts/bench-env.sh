# Shared set-up for the benchmark scripts (scripts/bench.sh, scripts/instructions.sh): sourced
# after scripts/env.sh, not run. Needs `root`, `work` (a temporary directory) and `base` (the
# first of the ports it uses, +80 HTTP, +83 CoAP, +84 CoAPS, +85/+86 bootstrap).

# Sets `bin` and `sim`: the release binaries, built unless BENCH_BIN_DIR names a directory with
# ferrite and ferrite-sim.
bench_binaries() {
    if [ -n "${BENCH_BIN_DIR:-}" ]; then
        bin="$BENCH_BIN_DIR"
    else
        cargo build --release -p server -p client-sim --bin ferrite --bin ferrite-sim
        bin="$CARGO_TARGET_DIR/release"
    fi
    sim="$bin/ferrite-sim"
}

# Exports the server's configuration (fresh API token and secret key, a SQLite database named
# $1 in $work, NoSec on, every socket on loopback from $base) and sets `http`.
bench_server_env() {
    random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    FERRITE_API_TOKEN="$(random_hex)"
    FERRITE_SECRET_KEY="$(random_hex)"
    export FERRITE_API_TOKEN FERRITE_SECRET_KEY
    export FERRITE_DATABASE_URL="sqlite://$work/$1"
    export FERRITE_NOSEC=true
    export FERRITE_HTTP_ADDR="127.0.0.1:$((base + 80))"
    export FERRITE_COAP_ADDR="127.0.0.1:$((base + 83))"
    export FERRITE_COAPS_ADDR="127.0.0.1:$((base + 84))"
    # The bootstrap server's sockets too: their defaults (5783/5784) may be held by another server.
    export FERRITE_BS_COAP_ADDR="127.0.0.1:$((base + 85))"
    export FERRITE_BS_COAPS_ADDR="127.0.0.1:$((base + 86))"
    export RUST_LOG="${RUST_LOG:-warn}"
    http="http://$FERRITE_HTTP_ADDR"
}

# Waits until the server with PID $1 answers the API (at most $2 tenths of a second, default
# 300); exits the script with its log ($work/server.log) if it dies or never answers.
wait_for_server() {
    local pid="$1" tries="${2:-300}"
    for _ in $(seq 1 "$tries"); do
        if curl -fsS -o /dev/null -H "Authorization: Bearer $FERRITE_API_TOKEN" "$http/api/v1/objects" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "the server died" >&2; exit 1; }
        sleep 0.1
    done
    echo "the server did not answer on $http" >&2
    exit 1
}

# Stops the server with PID $1 (SIGTERM, then waits for it).
stop_server_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
