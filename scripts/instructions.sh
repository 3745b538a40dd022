#!/usr/bin/env bash
# Server user-space instructions per fleet read, counted by valgrind's callgrind: a figure that
# does not move with the machine's load, unlike the CPU times of scripts/bench.sh (the same binary
# measures 11.8-23 µs per DTLS read from run to run on a shared 2-core machine, but within 0.5 %
# here). Kernel time (the UDP send and receive path) is not counted.
#
# How: the server runs under callgrind; BENCH_DEVICES devices register through ferrite-sim; the
# counters are zeroed, A fleet reads run and are dumped, zeroed again, B fleet reads run and are
# dumped. (dump B - dump A) / (B - A) is the cost of one read: the handshakes, registrations and
# HTTP set-up both runs share cancel out. Prints one line per transport, and the top functions
# by their own instructions per read with TOP=n.
#
# Settings (environment): MODES ("dtls nosec"), BENCH_DEVICES (200), A (2000), B (10000),
# TOP (0), BENCH_PORT_BASE (27600), BENCH_BIN_DIR (use ferrite and ferrite-sim from there instead of
# building), KEEP (directory to keep the callgrind files in).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh
# shellcheck source=scripts/bench-env.sh
source scripts/bench-env.sh
ensure_apt_packages valgrind

modes="${MODES:-dtls nosec}"
devices="${BENCH_DEVICES:-200}"
a="${A:-2000}"
b="${B:-10000}"
top="${TOP:-0}"
base="${BENCH_PORT_BASE:-27600}"
if [ "$b" -le "$a" ]; then
    echo "B ($b) must be larger than A ($a)" >&2
    exit 2
fi
bench_binaries

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

bench_server_env instructions.db
# The binary re-executes itself to set these unless they are set (see server/src/main.rs); under
# valgrind that exec would leave the measured process.
export MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0

stop_server() {
    stop_server_pid "$server_pid"
    server_pid=""
}
summary() { grep -m1 '^summary:' "$1" | awk '{print $2}'; }

for mode in $modes; do
    case "$mode" in
        dtls) security=psk url="coaps://$FERRITE_COAPS_ADDR" prefix=id- ;;
        nosec) security=nosec url="coap://$FERRITE_COAP_ADDR" prefix=in- ;;
        *) echo "unknown mode $mode (dtls or nosec)" >&2; exit 2 ;;
    esac
    "$bin/ferrite" serve >> "$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_server "$server_pid"
    "$sim" bench provision --http "$http" --devices "$devices" --security "$security" \
        --endpoint-prefix "$prefix" > /dev/null
    stop_server
    out="$work/callgrind.$mode"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin/ferrite" serve \
        >> "$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_server "$server_pid" 1200
    "$sim" bench register --server "$url" --devices "$devices" --endpoint-prefix "$prefix" \
        --progress none > /dev/null
    for n in "$a" "$b"; do
        callgrind_control -z "$server_pid" > /dev/null 2>&1
        "$sim" bench fleet-reads --server "$url" --http "$http" --devices "$devices" \
            --endpoint-prefix "$prefix" --lwm2m 1.0 --paths 1 --reads "$n" --progress none \
            > "$work/reads.$mode.$n"
        grep -q ' 0 failed' "$work/reads.$mode.$n" || { cat "$work/reads.$mode.$n" >&2; exit 1; }
        callgrind_control -d "$server_pid" > /dev/null 2>&1
    done
    stop_server
    first="$(summary "$out.1")"
    second="$(summary "$out.2")"
    echo "$mode: $(( (second - first) / (b - a) )) server user-space instructions per fleet read" \
        "($devices devices, ($second - $first) / ($b - $a))"
    if [ "$top" -gt 0 ]; then
        python3 - "$out.1" "$out.2" "$((b - a))" "$top" <<'PY'
import collections, re, sys

def self_costs(path):
    names, costs, fn, skip = {}, collections.Counter(), None, False
    def name(token):
        m = re.match(r'\((\d+)\)(?: (.*))?', token)
        if not m:
            return token
        i, n = m.groups()
        if n:
            names[i] = n
        return names.get(i, i)
    for line in open(path):
        line = line.rstrip('\n')
        if line.startswith('fn='):
            fn = name(line[3:])
        elif line.startswith('cfn='):
            name(line[4:])
        elif line.startswith('calls='):
            skip = True
        elif line and (line[0].isdigit() or line[0] in '+-*'):
            if skip:
                skip = False
                continue
            parts = line.split()
            if len(parts) >= 2 and fn:
                costs[fn] += int(parts[1])
    return costs

first, second = self_costs(sys.argv[1]), self_costs(sys.argv[2])
n = float(sys.argv[3])
rows = sorted(((k, (second[k] - first.get(k, 0)) / n) for k in second), key=lambda r: -r[1])
for k, v in rows[: int(sys.argv[4])]:
    print(f"  {v:8.0f}  {k[:120]}")
PY
    fi
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP"
        cp "$out".* "$KEEP/"
    fi
done
