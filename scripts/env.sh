# Shared set-up for scripts/run.sh and scripts/test.sh (sourced, not run).
# A cargo target directory outside the clone, shared between runs and clones, so CI and fresh
# clones do not rebuild everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ferrite/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The OMA registry is kept beside the project (../shared), never inside it.
if [ -z "${LWM2M_REGISTRY_DIR:-}" ] && [ -d "$root/../shared/lwm2m-registry" ]; then
    export LWM2M_REGISTRY_DIR="$(cd "$root/../shared/lwm2m-registry" && pwd)"
fi

ensure_wasm_target() {
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        rustup target add wasm32-unknown-unknown
    fi
}

# Installs Debian packages whose commands are missing (apt-get update once per run, only if needed).
ensure_apt_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}"
    fi
}
