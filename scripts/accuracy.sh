#!/usr/bin/env bash
# Diagnosis accuracy (issue 7): starts `ferrite` on a temporary SQLite database, then
# `ferrite-sim accuracy` runs simulated meters with problem profiles (weak signal, dying battery,
# periodic reboots, memory leak, error codes, bad firmware) on an accelerated clock, starts several
# diagnostic sweeps through the HTTP API and scores the last one against the ground truth:
# precision and recall per problem and a confusion table, printed and written as JSON.
#
# Usage: scripts/accuracy.sh [--release] [OUT.json] [-- extra ferrite-sim accuracy options]
# Environment: METERS (default 1000), SPEED (simulated seconds per real second, default 1440),
# SWEEPS (default 5), SWEEP_INTERVAL (real, default 20s), PROBLEM_SHARE (default 0.3),
# BAD_FIRMWARE (a catalogue version that starts bad, default 3.0.2), SEED (default 7),
# BOOT_SAMPLES (1: the server samples /3/0 twice per boot of meters that restart often, with the
# default delays divided by SPEED so they mean the same in simulated time; 0: off; default 1),
# KEEP_DB (a directory: the server's database, configuration and log are copied there at the end).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh

profile=debug
build_flags=()
if [[ "${1:-}" == "--release" ]]; then
  profile=release
  build_flags=(--release)
  shift
fi
out="${1:-accuracy.json}"
[[ $# -gt 0 ]] && shift
[[ "${1:-}" == "--" ]] && shift

cargo build "${build_flags[@]}" -p server -p client-sim
bin="$CARGO_TARGET_DIR/$profile"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [[ -n "${KEEP_DB:-}" ]]; then
    mkdir -p "$KEEP_DB" && cp "$work"/ferrite.db* "$work/ferrite.toml" "$work/ferrite.log" "$KEEP_DB"/ || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"
}
http="127.0.0.1:$(free_port SOCK_STREAM)"
coap="127.0.0.1:$(free_port SOCK_DGRAM)"
token="accuracy-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

# The server's times are real time, the meters' simulated: the boot-sample delays (defaults
# 15 min and 2 h after a Register, one sampled boot per 4 h) are divided by the speed.
speed="${SPEED:-1440}"
python3 - "$speed" "${BOOT_SAMPLES:-1}" >"$work/ferrite.toml" <<'PY'
import sys
speed, on = float(sys.argv[1]), sys.argv[2] != "0"
print("[diagnostics]")
if on:
    print(f"boot_sample_first_secs = {900 / speed}")
    print(f"boot_sample_second_secs = {7200 / speed}")
    print(f"boot_sample_min_interval_secs = {14400 / speed}")
else:
    print("boot_sample_after_reboots = 0")
PY

FERRITE_CONFIG="$work/ferrite.toml" \
FERRITE_DATABASE_URL="sqlite://$work/ferrite.db" \
FERRITE_SECRET_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" \
FERRITE_API_TOKEN="$token" \
FERRITE_HTTP_ADDR="$http" \
FERRITE_COAP_ADDR="$coap" \
FERRITE_COAPS_ADDR="127.0.0.1:$(free_port SOCK_DGRAM)" \
FERRITE_BS_COAP_ADDR="127.0.0.1:$(free_port SOCK_DGRAM)" \
FERRITE_BS_COAPS_ADDR="127.0.0.1:$(free_port SOCK_DGRAM)" \
FERRITE_NOSEC=true \
RUST_LOG="${RUST_LOG:-warn}" \
  "$bin/ferrite" serve >"$work/ferrite.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/${http%:*}/${http#*:}") 2>/dev/null; then break; fi
  sleep 0.2
done

FERRITE_API_TOKEN="$token" "$bin/ferrite-sim" accuracy \
  --server "coap://$coap" --api "http://$http" \
  --meters "${METERS:-1000}" --endpoint-prefix acc- --seed "${SEED:-7}" \
  --speed "$speed" --problem-share "${PROBLEM_SHARE:-0.3}" --queue-share 0 \
  --bad-firmware "${BAD_FIRMWARE:-3.0.2}" --bad-firmware-effect reboots \
  --sweeps "${SWEEPS:-5}" --sweep-interval "${SWEEP_INTERVAL:-20s}" --sweep-rate 150 \
  --start-rate 200 --ground-truth "${out%.json}.truth.json" --report "$out" "$@"
echo "scores: $out; ground truth: ${out%.json}.truth.json"
