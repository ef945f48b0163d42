#!/usr/bin/env bash
# Make PostgreSQL and Redis answer on 127.0.0.1 for the tests, on a Debian or Ubuntu machine.
#
# What is missing is installed with apt and what is down is started (containers run no systemd, so
# PostgreSQL through pg_ctlcluster and Redis as a daemon of its own). The tests then log in to
# PostgreSQL over TCP as the role rnnlab_test with a password: this script creates that role (CREATEDB,
# for the tests' per-session databases) and its database rnnlab_test, and makes pg_hba.conf ask that
# role for its password, so no test passes only because the server trusts local connections.
#
# RNNLAB_TEST_DATABASE_URL / RNNLAB_TEST_REDIS_URL point the tests at servers of your own instead:
# for each one set, this script neither installs nor starts anything. A server that does not come up is
# fatal: the tests need both and must fail, not skip, without them.
set -euo pipefail

TEST_ROLE=rnnlab_test
# Not a secret: the role can only create and drop its own databases. tests/conftest.py uses the same.
TEST_PASSWORD=rnnlab_test
HBA_LINE="host all $TEST_ROLE 127.0.0.1/32 scram-sha-256  # rnnlab tests: password, never trust"

log() { echo "services: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# The superuser over the local unix socket (peer authentication as the postgres system user). From /,
# since the postgres user may not be allowed into this checkout (psql warns about it).
as_postgres() (
    cd /
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres -- "$@"
    fi
)

apt_install() {
    log "installing $* with apt"
    as_root apt-get update -qq
    # C.UTF-8 so that the cluster the postgresql package creates stores text as UTF-8, not SQL_ASCII.
    as_root env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

wait_until() {
    local what=$1
    shift
    local deadline=$((SECONDS + 60))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            log "$what did not come up on 127.0.0.1 within 60 s"
            exit 1
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

psql_superuser() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p 5432 "$@"; }

start_postgres() {
    log "starting PostgreSQL"
    if [ -z "$(pg_lsclusters -h)" ]; then
        local version
        version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
        log "creating PostgreSQL cluster $version/main"
        as_root env LANG=C.UTF-8 LC_ALL=C.UTF-8 pg_createcluster "$version" main >/dev/null
    fi
    # Every Debian cluster that is down: "15 main 5432 down ...".
    pg_lsclusters -h | while read -r version cluster _port status _; do
        if [ "$status" = down ]; then
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
        fi
    done
}

require_password_for_test_role() {
    local hba
    if ! hba=$(psql_superuser -At -c "SHOW hba_file"); then
        log "PostgreSQL answers on 127.0.0.1:5432 but not to the postgres superuser over the local socket;"
        log "set RNNLAB_TEST_DATABASE_URL to a role with CREATEDB on it instead"
        exit 1
    fi
    if ! as_postgres grep -qxF "$HBA_LINE" "$hba"; then
        log "pg_hba.conf: password login over TCP for $TEST_ROLE"
        # First line: pg_hba.conf is first match wins, so a later trust line cannot shadow it.
        as_postgres sed -i "1i $HBA_LINE" "$hba"
        psql_superuser -c "SELECT pg_reload_conf()" >/dev/null
    fi
}

create_test_role_and_database() {
    # Idempotent: the role is created once and its password and rights are set on every run.
    psql_superuser -d postgres <<SQL
SET password_encryption = 'scram-sha-256';
SELECT format('CREATE ROLE %I', '$TEST_ROLE')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$TEST_ROLE') \\gexec
ALTER ROLE $TEST_ROLE WITH LOGIN CREATEDB NOSUPERUSER PASSWORD '$TEST_PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', '$TEST_ROLE', '$TEST_ROLE')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$TEST_ROLE') \\gexec
SQL
}

ensure_postgres() {
    # Debian's packaging (pg_ctlcluster), a server and the client; the postgresql package brings all three.
    if ! command -v pg_ctlcluster >/dev/null || ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null \
        || ! command -v psql >/dev/null; then
        apt_install postgresql
    fi
    if ! pg_up; then
        start_postgres
        wait_until PostgreSQL pg_up
    fi
    require_password_for_test_role
    create_test_role_and_database
}

# ---------------------------------------------------------------------------------------------
# Redis

# PING over bash's /dev/tcp: needs no redis-cli, so a Redis that already runs needs nothing installed.
redis_up() (
    reply=""
    exec 3<>/dev/tcp/127.0.0.1/6379 || exit 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || true
    [ "${reply%$'\r'}" = "+PONG" ]
) 2>/dev/null

start_redis() {
    if ! command -v redis-server >/dev/null; then
        apt_install redis-server
    fi
    # The package may have started its own service; otherwise run one for the tests, nothing persisted.
    if ! redis_up; then
        log "starting Redis"
        local dir=${TMPDIR:-/tmp}/rnnlab-test-redis
        mkdir -p "$dir"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
    fi
}

ensure_redis() {
    if ! redis_up; then
        start_redis
        wait_until Redis redis_up
    fi
}

# ---------------------------------------------------------------------------------------------

if [ -z "${RNNLAB_TEST_DATABASE_URL:-}" ]; then
    ensure_postgres
fi
if [ -z "${RNNLAB_TEST_REDIS_URL:-}" ]; then
    ensure_redis
fi
