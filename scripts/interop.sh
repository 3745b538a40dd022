#!/usr/bin/env bash
# Gets the independent LwM2M clients the interop tests (tests/tests/interop_*.rs) run against,
# idempotently, into a cache outside the clone (nothing third-party enters the repository):
#   - Eclipse Wakaama's example client `lwm2mclient` (C, LwM2M 1.0; DTLS PSK through tinydtls),
#     from the sources bundled in the npm package node-red-contrib-lwm2m (pinned by SHA-256),
#     built with gcc twice: NoSec and DTLS.
#   - Telefonica's lwm2m-node-lib (Node.js, LwM2M 1.0, text values), installed with `npm ci` from
#     tests/interop/package-lock.json.
#   - aiocoap (Python CoAP stack) for tests/interop/aiocoap-client.py, an LwM2M 1.1 SenML JSON
#     client, installed with pip into a venv from tests/interop/requirements-aiocoap.txt (pinned
#     by hash).
# Prints `export NAME=value` lines on stdout (use: eval "$(bash scripts/interop.sh)"); progress
# goes to stderr. Exits non-zero when something cannot be fetched or built.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${FERRITE_INTEROP_CACHE:-$HOME/.cache/ferrite/interop}"
mkdir -p "$cache"

say() { printf 'interop: %s\n' "$*" >&2; }

# shellcheck source=scripts/env.sh
source "$root/scripts/env.sh"
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    ensure_apt_packages "${missing[@]}" >&2
fi

# --- Wakaama ------------------------------------------------------------------------------------
wakaama_pkg="node-red-contrib-lwm2m@2.12.3"
wakaama_tgz="$cache/node-red-contrib-lwm2m-2.12.3.tgz"
wakaama_sha256="3e8f4fc9bb3f68933baf010bb3c8dd50f846f338a9eee85f67d52c71e98681c8"
# Bump when the build below changes: the binaries are rebuilt when the stamp differs.
wakaama_build_id="wakaama-2.12.3-build-4"
src="$cache/wakaama-src"
bin="$cache/bin"

if [ ! -f "$wakaama_tgz" ] || ! echo "$wakaama_sha256  $wakaama_tgz" | sha256sum -c --status; then
    say "fetching $wakaama_pkg"
    rm -f "$wakaama_tgz"
    (cd "$cache" && npm pack --silent "$wakaama_pkg" >&2)
    echo "$wakaama_sha256  $wakaama_tgz" | sha256sum -c --status || {
        say "$wakaama_tgz does not have the pinned SHA-256"
        exit 1
    }
fi

if [ "$(cat "$bin/.stamp" 2>/dev/null)" != "$wakaama_build_id" ]; then
    say "building Wakaama lwm2mclient (NoSec and DTLS)"
    rm -rf "$src" "$bin"
    mkdir -p "$src" "$bin"
    tar -xzf "$wakaama_tgz" -C "$src"
    deps="$src/package/deps/wakatiwai/deps"
    w="$deps/wakaama"
    # Wakaama's example firmware object allocates 3 entries and fills 6 when the whole instance
    # is read (heap overflow; the client dies with SIGSEGV on Read /5/0). Fixed upstream later.
    sed -i 's/\*dataArrayP = lwm2m_data_new(3);/*dataArrayP = lwm2m_data_new(6);/' \
        "$w/examples/client/object_firmware.c"
    grep -q 'lwm2m_data_new(6)' "$w/examples/client/object_firmware.c"
    # The tests read the client's stdout as it goes: make it unbuffered.
    cat > "$src/unbuffered.c" <<'EOF'
#include <stdio.h>
__attribute__((constructor)) static void ferrite_unbuffered(void) { setvbuf(stdout, NULL, _IONBF, 0); }
EOF
    common=(-O1 -w -std=gnu99 -DLWM2M_CLIENT_MODE -DLWM2M_BOOTSTRAP -DLWM2M_SUPPORT_JSON
        -DLWM2M_LITTLE_ENDIAN -I "$w/core" -I "$w/examples/shared")
    core=("$w"/core/*.c "$w/core/er-coap-13/er-coap-13.c" "$w"/examples/client/*.c
        "$w/examples/shared/commandline.c" "$w/examples/shared/platform.c"
        "$w/examples/shared/memtrace.c" "$src/unbuffered.c")
    gcc "${common[@]}" "${core[@]}" "$w/examples/shared/connection.c" -o "$bin/lwm2mclient"
    t="$w/examples/shared/tinydtls"
    # tinydtls' generated config headers (dtls_config.h, tinydtls.h) ship in wakatiwai's deps.
    # Wakaama's dtlsconnection.c sets only the PSK callbacks, so its ClientHello offers just
    # TLS_PSK_WITH_AES_128_CCM_8 and carries no extensions (see interop_wakaama.rs).
    gcc "${common[@]}" -DWITH_TINYDTLS -DWITH_SHA256 -DDTLSv12 -DDTLS_PSK -I "$t" \
        -I "$deps/tinydtls" "${core[@]}" "$w/examples/shared/dtlsconnection.c" \
        "$t"/{ccm,crypto,dtls_debug,dtls_time,dtls,hmac,netq,peer,session}.c \
        "$t/sha2/sha2.c" "$t/aes/rijndael.c" "$t/ecc/ecc.c" -o "$bin/lwm2mclient-dtls"
    echo "$wakaama_build_id" > "$bin/.stamp"
fi

# --- lwm2m-node-lib -----------------------------------------------------------------------------
node_dir="$cache/node"
mkdir -p "$node_dir"
lock_sum="$(cat "$root/tests/interop/package.json" "$root/tests/interop/package-lock.json" | sha256sum | cut -c1-64)"
if [ "$(cat "$node_dir/.stamp" 2>/dev/null)" != "$lock_sum" ] || [ ! -d "$node_dir/node_modules/lwm2m-node-lib" ]; then
    say "installing lwm2m-node-lib (npm ci)"
    cp "$root/tests/interop/package.json" "$root/tests/interop/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --no-audit --no-fund --silent >&2)
    echo "$lock_sum" > "$node_dir/.stamp"
fi

# --- aiocoap -----------------------------------------------------------------------------------
venv="$cache/aiocoap"
requirements="$root/tests/interop/requirements-aiocoap.txt"
req_sum="$(sha256sum "$requirements" | cut -c1-64)"
if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$req_sum" ] || [ ! -x "$venv/bin/python" ]; then
    say "installing aiocoap (pip, pinned by hash)"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r "$requirements" >&2
    echo "$req_sum" > "$venv/.stamp"
fi

say "ready in $cache"
echo "export FERRITE_WAKAAMA_CLIENT=$bin/lwm2mclient"
echo "export FERRITE_WAKAAMA_CLIENT_DTLS=$bin/lwm2mclient-dtls"
echo "export FERRITE_NODE_LWM2M_DIR=$node_dir/node_modules"
echo "export FERRITE_AIOCOAP_PYTHON=$venv/bin/python"
