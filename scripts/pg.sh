#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for Ferrite's tests and benchmarks, idempotently:
#   - installs Debian's postgresql when initdb/pg_ctl are missing (apt-get update once);
#   - creates a cluster in ${FERRITE_PG_DIR:-$HOME/.cache/ferrite/pg} (owned by `postgres`
#     when run as root: initdb refuses to run as root);
#   - starts it on 127.0.0.1:${FERRITE_PG_PORT:-55432} with a private socket directory;
#   - creates the role ferrite/ferrite with CREATEDB (tests create one database each).
# Prints only the export line on stdout, so that  eval "$(bash scripts/pg.sh)"  works; progress
# goes to stderr. Running it again while the cluster is up just prints the line.
set -euo pipefail

pg_dir="${FERRITE_PG_DIR:-$HOME/.cache/ferrite/pg}"
port="${FERRITE_PG_PORT:-55432}"
data="$pg_dir/data"
sockets="$pg_dir/sockets"
log="$pg_dir/postgres.log"
url="postgres://ferrite:ferrite@127.0.0.1:$port/postgres"

say() { printf 'pg.sh: %s\n' "$*" >&2; }

find_bin_dir() {
    local candidate
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    # Debian keeps the server binaries out of PATH, one directory per major version.
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! bin="$(find_bin_dir)"; then
    if [ "$(id -u)" -ne 0 ]; then
        say "PostgreSQL is not installed and this is not root: install the 'postgresql' package"
        exit 1
    fi
    say "installing Debian's postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
    bin="$(find_bin_dir)" || { say "postgresql installed but initdb/pg_ctl not found"; exit 1; }
fi

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

mkdir -p "$pg_dir" "$sockets"
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        say "creating the system user postgres"
        useradd --system --home-dir "$pg_dir" --shell /bin/sh postgres
    fi
    chown postgres "$pg_dir" "$sockets"
    # The postgres user must be able to reach the directory (e.g. under /root/.cache): grant
    # traversal (not reading) on the parents, only if it is missing.
    if ! as_owner test -x "$pg_dir"; then
        parent="$pg_dir"
        while [ "$parent" != "/" ]; do
            parent="$(dirname "$parent")"
            chmod o+x "$parent"
        done
    fi
fi

if [ ! -f "$data/PG_VERSION" ]; then
    say "creating a cluster in $data"
    # Local socket: trust (only the owner can reach the private socket directory); TCP on
    # loopback: password, as a real deployment would.
    init_args=(-D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8)
    as_owner "$bin/initdb" "${init_args[@]}" --locale=C.UTF-8 >&2 \
        || as_owner "$bin/initdb" "${init_args[@]}" >&2
fi

if as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "already running on 127.0.0.1:$port"
else
    say "starting on 127.0.0.1:$port (log: $log)"
    touch "$log"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$log"; fi
    as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$sockets -c max_connections=200 -c fsync=on" \
        start >&2
fi

psql_admin() {
    as_owner "$bin/psql" -h "$sockets" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"
}
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'ferrite'")" != "1" ]; then
    say "creating role ferrite"
    psql_admin -c "CREATE ROLE ferrite LOGIN PASSWORD 'ferrite' CREATEDB" >&2
fi

echo "export FERRITE_TEST_POSTGRES_URL=$url"
