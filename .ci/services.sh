#!/usr/bin/env bash
# Start the real PostgreSQL and Redis on 127.0.0.1 when they are down, then wait until both answer.
# The tests need them and must fail (not skip) without them, so a start that does not come up is fatal.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
    echo "services: starting PostgreSQL" >&2
    for version in $(ls /etc/postgresql 2>/dev/null); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
fi
if ! redis_up; then
    echo "services: starting Redis" >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

deadline=$((SECONDS + 60))
until pg_up && redis_up; do
    if [ $SECONDS -ge $deadline ]; then
        echo "services: PostgreSQL or Redis did not come up on 127.0.0.1 within 60 s" >&2
        exit 1
    fi
    sleep 0.5
done
