#!/bin/sh
# First start: create the cluster, the user (with its password) and the database, as the official image
# does; every start: run the server in the foreground. The port is PGPORT (pg_isready reads it too), the
# address loopback only: the compose test runs on the host's network.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
    # UTF8, as the official image: without a locale initdb picks SQL_ASCII, whose text psycopg returns as bytes.
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    # initdb makes only the `postgres` database; the official image creates POSTGRES_DB (default: the user).
    if [ "$POSTGRES_DB" != postgres ]; then
        createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses=127.0.0.1
