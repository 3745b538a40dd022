#!/usr/bin/env bash
# Ferrite's performance figures (issue 3): builds release binaries, starts the server on a temporary
# SQLite database, runs every `ferrite-sim bench` scenario BENCH_ROUNDS times (default 2) and prints
# a summary table with the ratios against the floors measured in the same run: a bare UDP echo
# loop (ferrite-sim bench echo-server) and `openssl s_server` doing DTLS PSK handshakes.
# Costs are CPU time of the measured process from /proc/<pid>/stat (utime + stime), so they hold on
# a shared, noisy machine better than wall-clock rates; the load average is printed with them.
#
# Settings (environment): BENCH_ROUNDS (2), BENCH_DEVICES (10000, registered for the RSS figure),
# BENCH_READ_DEVICES (200), BENCH_READS (4000), BENCH_READS_K8 (1000, reads of 8 paths),
# BENCH_HANDSHAKES (2000), BENCH_OPENSSL (2000), BENCH_FLEET_READS (20000 CoAP reads through
# POST /api/v1/fleet/read, BENCH_READ_DEVICES devices per request),
# BENCH_SECONDS (8, Send and echo), BENCH_PORT_BASE (25600: uses +80 HTTP, +83 CoAP, +84 CoAPS,
# +85 openssl, +86 echo), BENCH_JSON (results file, one JSON line per scenario run),
# RUST_LOG (server log level, default warn: per-event info lines are not the engine's cost),
# BENCH_BIN_DIR (use ferrite and ferrite-sim from there instead of building).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/env.sh
source scripts/env.sh
# shellcheck source=scripts/bench-env.sh
source scripts/bench-env.sh
ensure_apt_packages openssl

rounds="${BENCH_ROUNDS:-2}"
devices="${BENCH_DEVICES:-10000}"
read_devices="${BENCH_READ_DEVICES:-200}"
reads="${BENCH_READS:-4000}"
handshakes="${BENCH_HANDSHAKES:-2000}"
openssl_handshakes="${BENCH_OPENSSL:-2000}"
reads_k8="${BENCH_READS_K8:-1000}"
fleet_reads="${BENCH_FLEET_READS:-20000}"
seconds="${BENCH_SECONDS:-8}"
base="${BENCH_PORT_BASE:-25600}"
json="${BENCH_JSON:-${TMPDIR:-/tmp}/ferrite-bench-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"

echo "load average before the build: $(cut -d' ' -f1-3 /proc/loadavg)"
bench_binaries

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

bench_server_env bench.db
coap="coap://$FERRITE_COAP_ADDR"
coaps="coaps://$FERRITE_COAPS_ADDR"
: > "$json"

server_pid=""
start_server() {
    "$bin/ferrite" serve >> "$work/server.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    wait_for_server "$server_pid"
}
stop_server() { stop_server_pid "$server_pid"; }

common=(--json "$json" --progress lines)

start_server
"$sim" bench provision --http "$http" --devices "$devices" --security nosec --endpoint-prefix bn-
"$sim" bench provision --http "$http" --devices "$devices" --security psk --endpoint-prefix bd-
stop_server

psk_hex="000102030405060708090a0b0c0d0e0f"
for round in $(seq 1 "$rounds"); do
    echo "== round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    # NoSec: a fresh server, so the RSS growth is the registrations' alone.
    start_server
    "$sim" bench register --server "$coap" --devices "$devices" --endpoint-prefix bn- \
        --server-pid "$server_pid" --label "nosec r$round" "${common[@]}"
    for k in 1 8; do
        n="$reads"; [ "$k" = 8 ] && n="$reads_k8"
        "$sim" bench reads --server "$coap" --http "$http" --devices "$read_devices" \
            --endpoint-prefix bn- --lwm2m 1.0 --paths "$k" --requests "$n" \
            --server-pid "$server_pid" --label "nosec k$k r$round" "${common[@]}"
    done
    "$sim" bench fleet-reads --server "$coap" --http "$http" --devices "$read_devices" \
        --endpoint-prefix bn- --lwm2m 1.0 --paths 1 --reads "$fleet_reads" \
        --server-pid "$server_pid" --label "nosec fleet r$round" "${common[@]}"
    "$sim" bench reads --server "$coap" --http "$http" --devices 0 --requests "$reads" \
        --server-pid "$server_pid" --label "http-floor r$round" "${common[@]}"
    "$sim" bench send --server "$coap" --devices 100 --endpoint-prefix bn- \
        --duration "${seconds}s" --server-pid "$server_pid" --label "nosec r$round" "${common[@]}"
    stop_server
    # DTLS PSK on a fresh server (keys loaded from the store at start).
    start_server
    "$sim" bench register --server "$coaps" --devices "$devices" --endpoint-prefix bd- \
        --server-pid "$server_pid" --label "dtls r$round" "${common[@]}"
    "$sim" bench handshake --server "$coaps" --devices "$handshakes" --endpoint-prefix bd- \
        --server-pid "$server_pid" --label "ferrite r$round" "${common[@]}"
    for k in 1 8; do
        n="$reads"; [ "$k" = 8 ] && n="$reads_k8"
        "$sim" bench reads --server "$coaps" --http "$http" --devices "$read_devices" \
            --endpoint-prefix bd- --lwm2m 1.0 --paths "$k" --requests "$n" \
            --server-pid "$server_pid" --label "dtls k$k r$round" "${common[@]}"
    done
    "$sim" bench fleet-reads --server "$coaps" --http "$http" --devices "$read_devices" \
        --endpoint-prefix bd- --lwm2m 1.0 --paths 1 --reads "$fleet_reads" \
        --server-pid "$server_pid" --label "dtls fleet r$round" "${common[@]}"
    stop_server
    # The floors, in the same round.
    "$sim" bench echo-server --bind "127.0.0.1:$((base + 86))" > "$work/echo.out" &
    echo_pid=$!
    pids+=("$echo_pid")
    sleep 0.3
    "$sim" bench echo --target "127.0.0.1:$((base + 86))" --sockets 64 --duration "${seconds}s" \
        --server-pid "$echo_pid" --label "udp r$round" "${common[@]}"
    kill "$echo_pid" 2>/dev/null || true
    wait "$echo_pid" 2>/dev/null || true
    openssl s_server -dtls1_2 -nocert -psk "$psk_hex" -psk_identity bench \
        -cipher PSK-AES128-CCM8 -accept "127.0.0.1:$((base + 85))" -quiet \
        < /dev/null > "$work/openssl.log" 2>&1 &
    openssl_pid=$!
    pids+=("$openssl_pid")
    sleep 0.5
    "$sim" bench handshake --server "coaps://127.0.0.1:$((base + 85))" \
        --devices "$openssl_handshakes" --concurrency 1 --workers 1 \
        --psk-identity bench --psk-key-hex "$psk_hex" \
        --server-pid "$openssl_pid" --label "openssl r$round" "${common[@]}"
    kill "$openssl_pid" 2>/dev/null || true
    wait "$openssl_pid" 2>/dev/null || true
done

echo
echo "== summary (results: $json; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    label = r["label"].rsplit(" r", 1)
    key = (r["scenario"], label[0])
    rnd = label[1] if len(label) > 1 else "1"
    by.setdefault(rnd, {})[key] = r

def cpu(r):
    return (r.get("process") or {}).get("cpu_us_per_op")

def fmt(v, unit=""):
    return "-" if v is None else (f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v}{unit}")

lines, ratios = [], {}
for rnd in sorted(by):
    g = by[rnd]
    get = lambda s, l: g.get((s, l))
    echo = cpu(get("echo", "udp")) if get("echo", "udp") else None
    ossl = cpu(get("handshake", "openssl")) if get("handshake", "openssl") else None
    floor = cpu(get("reads", "http-floor")) if get("reads", "http-floor") else None
    out = {}
    for name, s, l in [("register nosec", "register", "nosec"), ("register dtls", "register", "dtls"),
                       ("handshake ferrite", "handshake", "ferrite"), ("handshake openssl", "handshake", "openssl"),
                       ("read nosec k1", "reads", "nosec k1"), ("read nosec k8", "reads", "nosec k8"),
                       ("read dtls k1", "reads", "dtls k1"), ("read dtls k8", "reads", "dtls k8"),
                       ("fleet read nosec", "fleet-reads", "nosec fleet"), ("fleet read dtls", "fleet-reads", "dtls fleet"),
                       ("http floor", "reads", "http-floor"), ("send nosec", "send", "nosec"), ("udp echo", "echo", "udp")]:
        r = get(s, l)
        if not r:
            continue
        p = r.get("process") or {}
        out[name] = r
        lines.append(f"r{rnd} {name:18} {r['per_second']:10.1f}/s  p50 {r['latency']['p50_ms']:7.2f} ms  p99 {r['latency']['p99_ms']:8.2f} ms  "
                     f"CPU {fmt(p.get('cpu_us_per_op'), ' µs/op'):>16}  RSS/dev {fmt(p.get('rss_per_device') if s == 'register' else None, ' B'):>8}"
                     f"  ok {r['ops']} failed {r['failed']}  load {fmt(r.get('load_average'))}")
    def slope(t):
        a, b = out.get(f"read {t} k1"), out.get(f"read {t} k8")
        if a and b and cpu(a) is not None and cpu(b) is not None:
            return (cpu(b) - cpu(a)) / 7.0
    rr = {}
    for t in ("nosec", "dtls"):
        s = slope(t)
        k1 = out.get(f"read {t} k1")
        rr[f"{t} per extra path of a k8 read µs (NSTART-queued)"] = s
        if echo:
            rr[f"{t} per extra path / echo"] = s / echo if s is not None else None
            if k1 and floor is not None:
                rr[f"{t} read k1 - http floor, µs"] = cpu(k1) - floor
                rr[f"{t} (read k1 - http floor) / echo (target {'3' if t == 'nosec' else '4'}x)"] = (cpu(k1) - floor) / echo
            if k1:
                rr[f"{t} read incl. HTTP / echo"] = cpu(k1) / echo
            fleet = out.get(f"fleet read {t}")
            if fleet and cpu(fleet) is not None:
                rr[f"{t} fleet read / echo (target {'3' if t == 'nosec' else '4'}x)"] = cpu(fleet) / echo
    if echo:
        rr["udp echo µs"] = echo
    if ossl:
        rr["openssl handshake µs"] = ossl
    if out.get("send nosec") and echo:
        rr["send / echo"] = cpu(out["send nosec"]) / echo
    if ossl and out.get("register dtls"):
        rr["(DTLS handshake+Register) / openssl handshake (target 2.5x)"] = cpu(out["register dtls"]) / ossl
    if ossl and out.get("handshake ferrite"):
        rr["ferrite handshake / openssl handshake"] = cpu(out["handshake ferrite"]) / ossl
    for t, target in (("nosec", 4096), ("dtls", 8192)):
        r = out.get(f"register {t}")
        if r and r.get("process"):
            rr[f"RSS per {t} device B (target {target})"] = float(r["process"]["rss_per_device"])
    for k, v in rr.items():
        ratios.setdefault(k, []).append(v)
print("\n".join(lines))
print()
print(f"{'ratio / figure':64} " + "  ".join(f"{'r' + k:>8}" for k in sorted(by)) + "   spread")
for k, vs in ratios.items():
    vals = [v for v in vs if v is not None]
    spread = f"{(max(vals) - min(vals)) / (sum(vals) / len(vals)) * 100:5.1f} %" if len(vals) > 1 and sum(vals) else "    -"
    print(f"{k:64} " + "  ".join(f"{v:8.2f}" if v is not None else f"{'-':>8}" for v in vs) + f"   {spread}")
PY
